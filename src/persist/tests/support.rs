//! Shared helpers: open a database on a simulated file system, and read its whole state.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::db::Database;
use crate::error::Result;
use crate::id::DocId;
use crate::options::{Durability, GcPolicy};
use crate::snapshot::Snapshot;
use crate::storage::sim_fs::SimFs;
use crate::sync::Arc;

/// The database directory on every simulated file system.
pub(crate) const DIR: &str = "/db";

/// Opens (or creates) the database in `/db` of `fs`, with manual GC, no automatic checkpoint
/// or compaction (tests call them), and the given durability.
pub(crate) fn open(fs: &Arc<SimFs>, durability: Durability) -> Result<Database> {
    open_on(
        Arc::clone(fs) as Arc<dyn crate::storage::vfs::Vfs>,
        durability,
    )
}

/// [`open`] through any `Vfs` (a tracing or delaying wrapper of a `SimFs`).
pub(crate) fn open_on(
    vfs: Arc<dyn crate::storage::vfs::Vfs>,
    durability: Durability,
) -> Result<Database> {
    Database::builder()
        .durability(durability)
        .gc(GcPolicy::Manual)
        .auto_compaction(crate::options::AutoCompaction::Off)
        .checkpoint_wal_bytes(u64::MAX)
        .checkpoint_interval(std::time::Duration::from_secs(1 << 30))
        .open_on(vfs, Path::new(DIR))
}

/// Every live document of every collection, at a fresh snapshot.
pub(crate) type State = BTreeMap<String, BTreeMap<DocId, Value>>;

/// The whole state of `db` at one snapshot.
pub(crate) fn state(db: &Database) -> State {
    snapshot_state(&db.snapshot())
}

/// Every live document of every collection at `snap`.
pub(crate) fn snapshot_state(snap: &Snapshot) -> State {
    let mut out = State::new();
    for name in snap.collection_names().unwrap() {
        let docs = snap
            .scan(&name)
            .unwrap()
            .into_iter()
            .map(|d| (d.id(), d.as_value().clone()))
            .collect();
        out.insert(name, docs);
    }
    out
}

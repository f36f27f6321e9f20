//! Online backup: the state at one snapshot, written as a new database directory that
//! `Database::open` accepts, while reads and writes go on.
//!
//! The backup is one sorted run holding every live document at the snapshot, and a manifest
//! whose checkpoint is the snapshot's timestamp. It is written under the target's own lock, and
//! its manifest is stored last, so an interrupted backup is never mistaken for a complete one:
//! a directory without a manifest but with a run is refused by open as damaged.

use std::path::Path;

use crate::engine::{scan_in, Engine};
use crate::error::{Error, Result};
use crate::mvcc::Timestamp;
use crate::persist::manifest_error;
use crate::persist::run::{self, CollectionState, Entry, RunWriter};
use crate::storage::lock::{DirLock, LockError};
use crate::storage::manifest::{Manifest, FORMAT_VERSION};
use crate::storage::segment_log::FIRST_SEGMENT;
use crate::storage::vfs::Vfs;
use crate::wal::record::RecordId;

/// What a backup wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupStats {
    /// The timestamp of the snapshot the backup holds.
    pub timestamp: Timestamp,
    /// Collections written.
    pub collections: usize,
    /// Documents written.
    pub documents: u64,
    /// Bytes of the data file written.
    pub bytes: u64,
}

/// Writes the state of `engine` at a fresh snapshot into `target`, which must be missing or an
/// empty directory.
pub(crate) fn backup(engine: &Engine, vfs: &dyn Vfs, target: &Path) -> Result<BackupStats> {
    let io = |what: &str| {
        let what = format!("{what} {}", target.display());
        move |e: std::io::Error| Error::io(what, &e)
    };
    vfs.create_dir_all(target).map_err(io("creating"))?;
    let _lock = DirLock::acquire(vfs, target).map_err(|e| match e {
        LockError::Locked { dir } => Error::Locked { path: dir },
        LockError::Io { dir, source } => Error::io(format!("locking {}", dir.display()), &source),
    })?;
    let existing = vfs.list(target).map_err(io("listing"))?;
    if existing
        .iter()
        .any(|name| name.as_os_str() != crate::storage::lock::LOCK_FILE)
    {
        return Err(Error::Io {
            context: format!("backing up into {}", target.display()),
            kind: std::io::ErrorKind::AlreadyExists,
            message: "the directory is not empty; back up into a new or empty directory".into(),
        });
    }

    let reg = engine.register();
    let ts = reg.timestamp();
    let result = write_run(engine, vfs, target, ts);
    engine.registry.unregister(reg);
    let mut stats = result?;
    stats.timestamp = ts;
    vfs.sync_dir(target).map_err(io("syncing"))?;
    Manifest {
        format_version: FORMAT_VERSION,
        generation: 1,
        wal_segments: vec![FIRST_SEGMENT],
        data_segments: vec![1],
        checkpoint: Some(ts.0),
    }
    .store(vfs, target)
    .map_err(|e| manifest_error(e, target))?;
    Ok(stats)
}

/// Writes run 1 of the backup: every collection and document visible at registered `ts`.
fn write_run(engine: &Engine, vfs: &dyn Vfs, target: &Path, ts: Timestamp) -> Result<BackupStats> {
    let catalog = engine.catalog.load_full();
    let path = target.join(run::run_name(1));
    let mut writer = RunWriter::create(vfs, &path).map_err(run::to_error)?;
    let mut stats = BackupStats::default();
    for name in catalog.names_at(ts) {
        let Some(inc) = catalog.visible(&name, ts) else {
            continue;
        };
        writer
            .push(&Entry::Collection {
                name: name.clone(),
                state: CollectionState::Live {
                    created: inc.created.0,
                },
            })
            .map_err(run::to_error)?;
        stats.collections += 1;
        // One collection at a time in memory, as handles on the versions (not copies).
        for (id, doc) in scan_in(&catalog, ts, &name) {
            let body = serde_json::to_vec(doc.as_value())
                .unwrap_or_else(|e| unreachable!("a JSON value failed to serialize: {e}"));
            writer
                .push(&Entry::Doc {
                    collection: name.clone(),
                    id: RecordId::from(&id),
                    ts: ts.0,
                    body: Some(body),
                })
                .map_err(run::to_error)?;
            stats.documents += 1;
        }
    }
    stats.bytes = writer.finish().map_err(run::to_error)?.bytes;
    Ok(stats)
}

//! `Snapshot`: a read-only, point-in-time view of the whole database.

use std::fmt;

use crate::catalog::Catalog;
use crate::document::{validate_collection_name, Document};
use crate::engine::{count_in, read_in, scan_in, Engine};
use crate::error::Result;
use crate::id::DocId;
use crate::mvcc::registry::Registration;
use crate::mvcc::Timestamp;
use crate::sync::Arc;

/// A read-only view of the database as of one commit timestamp.
///
/// Taking, reading and dropping a snapshot never waits for a committer and never delays one.
/// While any clone of a snapshot is alive, GC keeps every version it can see; dropping the last
/// clone releases them. Clones share one registration.
#[derive(Clone)]
pub struct Snapshot {
    pin: Arc<Pin>,
}

/// One registration in the snapshot registry, released when the last holder drops it.
struct Pin {
    engine: Arc<Engine>,
    ts: Timestamp,
    /// Loaded after registering: it holds every collection incarnation visible at `ts`, and
    /// reads through it skip loading the shared catalog cell.
    catalog: Arc<Catalog>,
    registration: Option<Registration>,
}

impl Drop for Pin {
    fn drop(&mut self) {
        if let Some(reg) = self.registration.take() {
            self.engine.registry.unregister(reg);
        }
    }
}

impl Snapshot {
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        let registration = engine.register();
        let ts = registration.timestamp();
        let catalog = engine.catalog.load_full();
        let pin = Pin {
            engine,
            ts,
            catalog,
            registration: Some(registration),
        };
        Snapshot { pin: Arc::new(pin) }
    }

    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.pin.engine
    }

    /// The commit timestamp this snapshot reads at: it sees exactly the commits numbered up to
    /// and including it.
    pub fn timestamp(&self) -> Timestamp {
        self.pin.ts
    }

    /// The document `id` of `collection`, or `None` if it does not exist at this snapshot. A
    /// collection that does not exist reads as empty.
    pub fn get(&self, collection: &str, id: impl Into<DocId>) -> Result<Option<Document>> {
        self.check(collection)?;
        Ok(read_in(
            &self.pin.catalog,
            self.pin.ts,
            collection,
            &id.into(),
        ))
    }

    /// Every document of `collection` at this snapshot, in `_id` order.
    pub fn scan(&self, collection: &str) -> Result<Vec<Document>> {
        self.check(collection)?;
        Ok(self
            .scan_with_ids(collection)
            .into_iter()
            .map(|(_, d)| d)
            .collect())
    }

    /// Number of documents in `collection` at this snapshot.
    pub fn len(&self, collection: &str) -> Result<usize> {
        self.check(collection)?;
        Ok(count_in(&self.pin.catalog, self.pin.ts, collection))
    }

    /// Names of the collections that exist at this snapshot, sorted.
    pub fn collection_names(&self) -> Result<Vec<String>> {
        self.pin.engine.check_open()?;
        Ok(self.pin.catalog.names_at(self.pin.ts))
    }

    pub(crate) fn scan_with_ids(&self, collection: &str) -> Vec<(DocId, Document)> {
        scan_in(&self.pin.catalog, self.pin.ts, collection)
    }

    /// The document as of this snapshot, without the closed or name checks (transactions have
    /// made them already).
    pub(crate) fn read_unchecked(&self, collection: &str, id: &DocId) -> Option<Document> {
        read_in(&self.pin.catalog, self.pin.ts, collection, id)
    }

    fn check(&self, collection: &str) -> Result<()> {
        self.pin.engine.check_open()?;
        validate_collection_name(collection)
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("timestamp", &self.pin.ts)
            .finish()
    }
}

//! `Database`, the cheap-to-clone handle on one database, and `DatabaseBuilder`. Wiring only:
//! the work happens in `engine`, `txn`, `gc` and `mvcc`.

use std::fmt;

use crate::collection::Collection;
use crate::document::validate_collection_name;
use crate::engine::Engine;
use crate::error::Result;
use crate::options::{GcPolicy, Options};
use crate::snapshot::Snapshot;
use crate::stats::{GcReport, Stats};
use crate::sync::{Arc, Ordering};
use crate::txn::transaction::Transaction;
use crate::txn::Isolation;

/// How many times `Database::transaction` runs a closure whose commit conflicts.
const MAX_TRANSACTION_ATTEMPTS: u32 = 16;

/// A database. Clone it freely: every clone is a handle on the same database.
#[derive(Clone)]
pub struct Database {
    engine: Arc<Engine>,
}

/// Configures a database before opening it.
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until a database is built from it"]
pub struct DatabaseBuilder {
    options: Options,
}

impl DatabaseBuilder {
    /// Largest accepted document, as bytes of compact JSON (default 16 MiB).
    pub fn max_document_size(mut self, bytes: usize) -> Self {
        self.options.max_document_size = bytes;
        self
    }

    /// When GC runs (default: a background pass every 500 ms when there is work).
    pub fn gc(mut self, policy: GcPolicy) -> Self {
        self.options.gc = policy;
        self
    }

    /// Builds a database that lives in memory only.
    pub fn in_memory(self) -> Database {
        let gc = self.options.gc;
        let engine = Arc::new(Engine::new(self.options));
        #[cfg(not(loom))]
        if let GcPolicy::Background { interval } = gc {
            crate::gc::Worker::start(&engine, interval);
        }
        #[cfg(loom)]
        let _ = gc;
        Database { engine }
    }
}

impl Database {
    /// A new, empty in-memory database with default settings.
    pub fn in_memory() -> Database {
        Self::builder().in_memory()
    }

    /// A builder for a database with non-default settings.
    pub fn builder() -> DatabaseBuilder {
        DatabaseBuilder::default()
    }

    /// A handle on collection `name`, which need not exist yet: the first write creates it.
    /// Fails only for an invalid name or a closed database.
    pub fn collection(&self, name: &str) -> Result<Collection> {
        self.engine.check_open()?;
        validate_collection_name(name)?;
        Ok(Collection::new(Arc::clone(&self.engine), name.to_owned()))
    }

    /// Names of the collections at the latest commit, sorted; empty once closed.
    pub fn collection_names(&self) -> Vec<String> {
        self.engine.collection_names()
    }

    /// Drops collection `name` and all its documents, as one commit. Snapshots taken before
    /// still read it; transactions that began before and write to it will conflict. Returns
    /// false if there was no such collection.
    pub fn drop_collection(&self, name: &str) -> Result<bool> {
        self.engine.check_open()?;
        validate_collection_name(name)?;
        self.engine.drop_collection(name)
    }

    /// Begins a snapshot-isolation transaction; its snapshot is taken now.
    pub fn begin(&self) -> Transaction {
        self.begin_with(Isolation::Snapshot)
    }

    /// Begins a transaction at the given isolation level; its snapshot is taken now. On a
    /// closed database every operation of the transaction fails with `Error::Closed`.
    pub fn begin_with(&self, isolation: Isolation) -> Transaction {
        Transaction::new(self.snapshot(), isolation)
    }

    /// Runs `f` in a snapshot-isolation transaction and commits it, running `f` again in a fresh
    /// transaction (with backoff, up to 16 attempts) when the commit, or `f` itself, fails with a
    /// retryable error. Any other error rolls back and is returned. `f` may therefore run more
    /// than once and should have no side effects outside the transaction.
    pub fn transaction<T>(&self, f: impl FnMut(&mut Transaction) -> Result<T>) -> Result<T> {
        self.transaction_with(Isolation::Snapshot, f)
    }

    /// `transaction` at the given isolation level.
    pub fn transaction_with<T>(
        &self,
        isolation: Isolation,
        mut f: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<T> {
        let mut attempt = 0;
        loop {
            let mut tx = self.begin_with(isolation);
            let outcome = f(&mut tx).and_then(|value| tx.commit().map(|()| value));
            match outcome {
                Err(e) if e.is_retryable() && attempt + 1 < MAX_TRANSACTION_ATTEMPTS => {
                    attempt += 1;
                    crate::sync::backoff(attempt);
                }
                other => return other,
            }
        }
    }

    /// A read-only view of the latest commit. On a closed database its reads fail with
    /// `Error::Closed`.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(Arc::clone(&self.engine))
    }

    /// Runs one GC pass now and reports what it reclaimed. Does nothing once closed.
    pub fn gc(&self) -> GcReport {
        if self.engine.is_closed() {
            return GcReport::default();
        }
        self.engine.gc_pass()
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        let engine = &self.engine;
        let last_commit_ts = engine.oracle.visible();
        let catalog = engine.catalog.load_full();
        let (mut collections, mut documents, mut versions) = (0, 0, 0);
        for (_, inc) in catalog.incarnations() {
            versions += inc.store.versions.load(Ordering::Relaxed);
            if inc.dropped.is_none() {
                collections += 1;
                documents += inc.store.live_docs.load(Ordering::Relaxed);
            }
        }
        Stats {
            collections,
            documents,
            versions,
            reclaimable_versions: versions.saturating_sub(documents),
            reclaimed_versions: engine.reclaimed.load(Ordering::Relaxed),
            open_snapshots: engine.registry.open_count(),
            last_commit_ts,
        }
    }

    /// Closes the database for every handle: waits for an in-flight commit, stops background
    /// work, and makes every later operation fail with `Error::Closed`. Closing twice is
    /// harmless.
    pub fn close(&self) -> Result<()> {
        if self.engine.mark_closed() {
            #[cfg(not(loom))]
            self.engine.gc_worker.stop();
        }
        Ok(())
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("last_commit_ts", &self.engine.oracle.visible())
            .finish()
    }
}

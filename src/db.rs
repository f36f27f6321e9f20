//! `Database`, the cheap-to-clone handle on one database, and `DatabaseBuilder`. Wiring only:
//! the work happens in `engine`, `txn`, `gc` and `mvcc`.

use std::fmt;
#[cfg(not(loom))]
use std::path::Path;
use std::time::Duration;

use crate::collection::Collection;
use crate::document::validate_collection_name;
use crate::engine::Engine;
#[cfg(not(loom))]
use crate::error::Error;
use crate::error::Result;
use crate::gc::Freeing;
use crate::options::{AutoCompaction, CompactionProgress, Durability, GcPolicy, Options};
#[cfg(not(loom))]
use crate::persist::{backup::BackupStats, compact::CompactionStats, verify::VerifyReport};
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

    /// When commits reach stable storage (default `Durability::Immediate`). Applies to
    /// databases opened on a directory.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.options.durability = durability;
        self
    }

    /// When the data files are compacted automatically (default: once a fifth of them, and at
    /// least 1 MiB, is reclaimable).
    pub fn auto_compaction(mut self, policy: AutoCompaction) -> Self {
        self.options.compaction = policy;
        self
    }

    /// Takes a checkpoint automatically once the WAL has grown by `bytes` since the last one
    /// (default 64 MiB). Open replays at most about this much WAL.
    pub fn checkpoint_wal_bytes(mut self, bytes: u64) -> Self {
        self.options.checkpoint.wal_bytes = bytes.max(1);
        self
    }

    /// Takes a checkpoint automatically once `interval` has passed since the last one and
    /// something was committed since (default 60 s).
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.options.checkpoint.interval = interval;
        self
    }

    /// Calls `f` as a compaction progresses (from the thread running it).
    pub fn on_compaction_progress(
        mut self,
        f: impl Fn(CompactionProgress) + Send + Sync + 'static,
    ) -> Self {
        self.options.on_progress = Some(crate::sync::PayloadArc::new(f));
        self
    }

    /// Seals WAL segments past `bytes` (default 64 MiB); tests make it small to rotate often.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn wal_segment_bytes(mut self, bytes: u64) -> Self {
        self.options.wal_segment_bytes = bytes;
        self
    }

    /// Builds a database that lives in memory only.
    pub fn in_memory(self) -> Database {
        let engine = Arc::new(Engine::new(self.options));
        Database::start(engine)
    }

    /// Opens the database in directory `path`, creating the directory and an empty database if
    /// missing, and recovering every commit acknowledged before a crash.
    #[cfg(not(loom))]
    pub fn open(self, path: impl AsRef<Path>) -> Result<Database> {
        self.open_on(Arc::new(crate::storage::std_fs::StdFs), path.as_ref())
    }

    /// `open` through a given file system (the crash and fault tests use a simulated one).
    #[cfg(not(loom))]
    pub(crate) fn open_on(
        self,
        vfs: Arc<dyn crate::storage::vfs::Vfs>,
        path: &Path,
    ) -> Result<Database> {
        if let Durability::Periodic(d) = self.options.durability {
            if d.is_zero() {
                return Err(Error::InvalidOption {
                    reason: "a periodic sync interval must be longer than zero".into(),
                });
            }
        }
        let mut engine = Engine::new(self.options);
        engine.persist = Some(crate::persist::recovery::open(vfs, path, &engine)?);
        let engine = Arc::new(engine);
        crate::persist::worker::Worker::start(&engine);
        Ok(Database::start(engine))
    }
}

impl Database {
    fn start(engine: Arc<Engine>) -> Database {
        #[cfg(not(loom))]
        if let GcPolicy::Background { interval } = engine.options.gc {
            crate::gc::Worker::start(&engine, interval);
        }
        Database { engine }
    }

    /// Opens the database in directory `path` with default settings (`Durability::Immediate`),
    /// creating it if missing. Fails with `Error::Locked` if it is open elsewhere.
    #[cfg(not(loom))]
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Self::builder().open(path)
    }

    /// Checks every checksum of every file of the (closed) database in `path`, changing
    /// nothing, and reports what it found.
    #[cfg(not(loom))]
    pub fn verify(path: impl AsRef<Path>) -> Result<VerifyReport> {
        crate::persist::verify::verify(&crate::storage::std_fs::StdFs, path.as_ref())
    }

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
                    #[cfg(not(loom))]
                    self.engine.await_installed();
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

    /// The engine behind this handle, for unit tests of its internals.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs one GC pass now and reports what it reclaimed. Does nothing once closed.
    pub fn gc(&self) -> GcReport {
        if self.engine.is_closed() {
            return GcReport::default();
        }
        self.engine.gc_pass(Freeing::Pass)
    }

    /// Persists the current state into the data files, so the next open replays only the WAL
    /// written after it. Also runs automatically. Does nothing for a database in memory.
    #[cfg(not(loom))]
    pub fn checkpoint(&self) -> Result<()> {
        self.engine.check_open()?;
        match &self.engine.persist {
            Some(p) => p.checkpoint(&self.engine.oracle).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Rewrites the data files keeping only the newest version of each live document, in
    /// bounded memory, while reads and writes go on. Also runs automatically. Does nothing for
    /// a database in memory, nor when the only data file is the one the last compaction wrote
    /// (`runs_merged` is then 0).
    #[cfg(not(loom))]
    pub fn compact(&self) -> Result<CompactionStats> {
        self.engine.check_open()?;
        match &self.engine.persist {
            Some(p) => p.compact(),
            None => Ok(CompactionStats::default()),
        }
    }

    /// Writes the state at one snapshot into `path` (a new or empty directory) as a database
    /// that `Database::open` accepts, while reads and writes go on. Works for a database in
    /// memory too.
    #[cfg(not(loom))]
    pub fn backup(&self, path: impl AsRef<Path>) -> Result<BackupStats> {
        self.engine.check_open()?;
        crate::persist::backup::backup(&self.engine, &crate::storage::std_fs::StdFs, path.as_ref())
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
        #[cfg_attr(
            loom,
            allow(unused_mut, reason = "only the durability layer adds to it")
        )]
        let mut stats = Stats {
            collections,
            documents,
            versions,
            reclaimable_versions: versions.saturating_sub(documents),
            reclaimed_versions: engine.reclaimed.load(Ordering::Relaxed),
            open_snapshots: engine.registry.open_count(),
            last_commit_ts,
            ..Stats::default()
        };
        #[cfg(not(loom))]
        if let Some(p) = &engine.persist {
            let c = &p.counters;
            stats.wal_bytes = p.wal.bytes();
            stats.data_bytes = c.data_bytes.load(Ordering::Relaxed);
            stats.live_bytes = c.live_bytes.load(Ordering::Relaxed);
            stats.reclaimable_bytes = stats.data_bytes.saturating_sub(stats.live_bytes);
            stats.last_checkpoint = p.last_checkpoint();
            stats.compactions = c.compactions.load(Ordering::Relaxed);
            stats.bytes_reclaimed = c.bytes_reclaimed.load(Ordering::Relaxed);
            stats.compaction_progress = p.progress();
        }
        stats
    }

    /// Closes the database for every handle: waits for an in-flight commit, stops background
    /// work, and makes every later operation fail with `Error::Closed`. Closing twice is
    /// harmless.
    pub fn close(&self) -> Result<()> {
        if self.engine.mark_closed() {
            #[cfg(not(loom))]
            {
                self.engine.gc_worker.stop();
                if let Some(p) = &self.engine.persist {
                    return p.close(&self.engine.oracle);
                }
            }
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

//! `Engine`: the shared state behind every handle (`Database`, `Collection`, `Snapshot`,
//! `Transaction`) and the read paths they share.
//!
//! Reads never take a lock a committer holds while it works: a read registers its timestamp
//! (lock-free, see `mvcc::registry`), loads the catalog (arc-swap), and walks a version chain
//! under an epoch guard inside the document map's shard read lock, which committers take for
//! writing only to insert a brand-new chain.

use crossbeam_epoch as epoch;
use crossbeam_utils::CachePadded;

use crate::catalog::Catalog;
use crate::document::Document;
use crate::error::{Error, Result};
use crate::id::{DocId, IdGenerator};
use crate::mvcc::chain::Limbo;
use crate::mvcc::registry::{Registration, SnapshotRegistry};
use crate::mvcc::Timestamp;
use crate::options::Options;
use crate::sync::{Arc, AtomicArc, AtomicBool, AtomicU64, Mutex, Ordering, PayloadArc};
use crate::txn::oracle::Oracle;

/// Shared state of one open database.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) options: Options,
    pub(crate) oracle: Oracle,
    pub(crate) registry: SnapshotRegistry,
    /// Published by the commit path before the commit's timestamp (see `catalog`).
    pub(crate) catalog: AtomicArc<Catalog>,
    /// Set once by `close` (SeqCst); read by every operation (Acquire) and, under the commit
    /// lock, by every commit, so no commit starts after `close` has taken the lock.
    closed: AtomicBool,
    /// Padded, as are the fields below it: written by inserts and by GC, they must not share a
    /// cache line with `closed`, which every operation reads.
    pub(crate) ids: CachePadded<IdGenerator>,
    /// Versions unlinked by GC since open (Relaxed: a statistic).
    pub(crate) reclaimed: CachePadded<AtomicU64>,
    /// Serializes GC passes; holds the watermark and visible timestamp of the last pass.
    pub(crate) gc_state: CachePadded<Mutex<crate::gc::LastPass>>,
    /// Versions GC has unlinked whose grace period has passed, until a committer or a pass frees
    /// them (see `gc::Freeing`).
    pub(crate) limbo: PayloadArc<Limbo>,
    #[cfg(not(loom))]
    pub(crate) gc_worker: crate::gc::Worker,
    /// The files of a database opened on a directory; `None` in memory.
    #[cfg(not(loom))]
    pub(crate) persist: Option<crate::persist::Persist>,
}

impl Engine {
    pub(crate) fn new(options: Options) -> Self {
        Self {
            options,
            oracle: Oracle::new(),
            registry: SnapshotRegistry::new(),
            catalog: AtomicArc::new(Arc::new(Catalog::default())),
            closed: AtomicBool::new(false),
            ids: CachePadded::new(IdGenerator::default()),
            reclaimed: CachePadded::new(AtomicU64::new(0)),
            gc_state: CachePadded::new(Mutex::new(crate::gc::LastPass::default())),
            limbo: PayloadArc::default(),
            #[cfg(not(loom))]
            gc_worker: crate::gc::Worker::default(),
            #[cfg(not(loom))]
            persist: None,
        }
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Whether commits are logged to a WAL (the database is on disk).
    #[cfg_attr(
        loom,
        allow(clippy::unused_self, reason = "under loom no database is on disk")
    )]
    pub(crate) fn logs_writes(&self) -> bool {
        #[cfg(not(loom))]
        return self.persist.is_some();
        #[cfg(loom)]
        false
    }

    /// `check_open`, and for a durable database, that no write or sync has failed. Checked
    /// under the commit lock before validation: a failed commit may have left versions that are
    /// installed but never published, which a later commit must not validate against.
    pub(crate) fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        #[cfg(not(loom))]
        if let Some(persist) = &self.persist {
            persist.check_writable()?;
        }
        Ok(())
    }

    /// Waits (briefly, with backoff) until every commit installed so far is visible, so that a
    /// transaction retried after a conflict takes a snapshot that includes the commit it lost to.
    /// Without this, a retry begun while that commit waits for its sync would see the old
    /// version again and conflict again. Gives up if the writer is poisoned or after 5 s.
    #[cfg(not(loom))]
    pub(crate) fn await_installed(&self) {
        let target = self.oracle.installed();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut attempt = 0;
        while self.oracle.visible() < target
            && self.check_writable().is_ok()
            && std::time::Instant::now() < deadline
        {
            attempt += 1;
            crate::sync::backoff(attempt.min(8));
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Marks the database closed and waits for an in-flight commit to finish. Returns false if
    /// it was already closed.
    pub(crate) fn mark_closed(&self) -> bool {
        let slot = self.oracle.begin_commit();
        let first = !self.closed.swap(true, Ordering::SeqCst);
        drop(slot);
        first
    }

    /// Registers a snapshot at the latest visible timestamp.
    pub(crate) fn register(&self) -> Registration {
        self.registry.register(|| self.oracle.visible())
    }

    /// Runs `f` at a freshly registered latest timestamp (the auto-commit read path).
    pub(crate) fn at_latest<R>(&self, f: impl FnOnce(Timestamp) -> R) -> Result<R> {
        self.check_open()?;
        let reg = self.register();
        let out = f(reg.timestamp());
        self.registry.unregister(reg);
        Ok(out)
    }

    /// The document `id` of `collection` as of `ts`; a missing collection reads as empty.
    /// `ts` must be registered.
    pub(crate) fn read_at(&self, ts: Timestamp, collection: &str, id: &DocId) -> Option<Document> {
        self.catalog
            .with(|catalog| read_in(catalog, ts, collection, id))
    }

    /// Every document of `collection` visible at `ts`, in `_id` order. `ts` must be registered.
    pub(crate) fn scan_at(&self, ts: Timestamp, collection: &str) -> Vec<(DocId, Document)> {
        scan_in(&self.catalog.load_full(), ts, collection)
    }

    /// Number of documents of `collection` visible at `ts`. `ts` must be registered.
    pub(crate) fn count_at(&self, ts: Timestamp, collection: &str) -> usize {
        count_in(&self.catalog.load_full(), ts, collection)
    }

    pub(crate) fn collection_names(&self) -> Vec<String> {
        self.at_latest(|ts| self.catalog.with(|c| c.names_at(ts)))
            .unwrap_or_default()
    }
}

// The read paths take the catalog explicitly, so a `Snapshot` can use the catalog it loaded
// once, after registering, for all its reads (see the catalog rule in `catalog`).

/// The document `id` of `collection` as of registered timestamp `ts`.
pub(crate) fn read_in(
    catalog: &Catalog,
    ts: Timestamp,
    collection: &str,
    id: &DocId,
) -> Option<Document> {
    let inc = catalog.visible(collection, ts)?;
    let guard = epoch::pin();
    inc.store
        .chains
        .read(id, |chain| chain.read(ts, &guard))
        .flatten()
}

/// Every document of `collection` visible at registered timestamp `ts`, in `_id` order.
pub(crate) fn scan_in(
    catalog: &Catalog,
    ts: Timestamp,
    collection: &str,
) -> Vec<(DocId, Document)> {
    let Some(inc) = catalog.visible(collection, ts) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut guard = epoch::pin();
    let mut seen = 0u32;
    inc.store.chains.for_each(|id, chain| {
        if let Some(doc) = chain.read(ts, &guard) {
            out.push((id.clone(), doc));
        }
        seen = seen.wrapping_add(1);
        if seen.is_multiple_of(1024) {
            // Long pins hold back epoch reclamation for everyone; let it advance.
            guard.repin();
        }
    });
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Number of documents of `collection` visible at registered timestamp `ts`.
pub(crate) fn count_in(catalog: &Catalog, ts: Timestamp, collection: &str) -> usize {
    let Some(inc) = catalog.visible(collection, ts) else {
        return 0;
    };
    if let Some(live) = inc.store.live_docs_at(ts) {
        return usize::try_from(live).unwrap_or(usize::MAX);
    }
    let guard = epoch::pin();
    let mut n = 0;
    inc.store.chains.for_each(|_, chain| {
        if chain.read(ts, &guard).is_some() {
            n += 1;
        }
    });
    n
}

impl Drop for Engine {
    fn drop(&mut self) {
        // The GC thread holds only a weak reference; wake it so it exits now, not after its
        // interval.
        #[cfg(not(loom))]
        self.gc_worker.wake();
        #[cfg(not(loom))]
        if let Some(persist) = &self.persist {
            // The last handle went away without `close`: write out what `Periodic` and `None`
            // have queued, so dropping a database loses nothing a process crash would not.
            // Errors have nowhere to go; the WAL is poisoned and the next open replays it.
            persist.worker.wake();
            let _ = persist.close(&self.oracle);
        }
    }
}

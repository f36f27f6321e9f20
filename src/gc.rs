//! Garbage collection of old versions.
//!
//! A pass computes the low watermark `w` (the oldest registered snapshot, or the latest commit
//! if none is older; see `mvcc::registry`) and then, in every chain, keeps the newest version
//! with `commit_ts <= w` and everything newer, unlinking the rest; nothing at or above `w` can
//! reach the unlinked versions, and crossbeam-epoch frees them once no reader is still pinned
//! where it could have loaded them. Chains whose only remaining version is a tombstone at or
//! below `w` are removed from their map under the commit lock (so no commit is installing into
//! them), in small batches so writers are delayed only briefly. Collections dropped at or below
//! `w` leave the catalog, which frees their documents.
//!
//! Pruning chains needs no commit lock: committers only prepend at the head and GC only cuts
//! tails. Passes are serialized by `Engine::gc_state`. GC never touches files.

use crossbeam_epoch as epoch;

use crate::engine::Engine;
use crate::mvcc::Timestamp;
use crate::stats::GcReport;
use crate::sync::{Arc, Ordering};

/// Chains removed per hold of the commit lock.
const REMOVAL_BATCH: usize = 1024;

/// Roughly how many deferred frees one `flush` can run (crossbeam collects up to 8 bags of 64
/// per call, when the epoch allows).
const FREES_PER_FLUSH: u64 = 256;

impl Engine {
    /// Runs one GC pass.
    pub(crate) fn gc_pass(&self) -> GcReport {
        let mut last_watermark = self.gc_state.lock();
        let watermark = self.registry.watermark(self.oracle.visible());
        let mut report = GcReport {
            watermark,
            ..GcReport::default()
        };
        let catalog = self.catalog.load_full();
        for (_, inc) in catalog.incarnations() {
            let store = &inc.store;
            let mut dead = Vec::new();
            let mut freed = 0;
            let mut guard = epoch::pin();
            let mut visited = 0u32;
            store.chains.for_each(|id, chain| {
                let pruned = chain.prune(watermark, &guard);
                freed += pruned.freed;
                if pruned.dead {
                    dead.push(id.clone());
                }
                visited = visited.wrapping_add(1);
                if visited.is_multiple_of(1024) {
                    guard.repin();
                }
            });
            for batch in dead.chunks(REMOVAL_BATCH) {
                let lock = self.commit_lock();
                let removed: Vec<_> = batch
                    .iter()
                    .filter_map(|id| {
                        store
                            .chains
                            .remove_if(id, |c| c.is_dead_at(watermark, &guard))
                    })
                    .collect();
                drop(lock);
                // Each removed chain holds exactly its tombstone (older versions were pruned
                // above); dropping it here, outside every lock, frees it.
                freed += removed.len() as u64;
                drop(removed);
            }
            store.versions.fetch_sub(freed, Ordering::Relaxed);
            report.versions_reclaimed += freed;
        }
        drop(catalog);
        {
            let lock = self.commit_lock();
            let current = self.catalog.load_full();
            if let Some((next, versions)) = current.without_retired(watermark) {
                report.collections_retired =
                    current.incarnations().count() - next.incarnations().count();
                report.versions_reclaimed += versions;
                self.catalog.store(Arc::new(next));
            }
            drop(lock);
        }
        self.reclaimed
            .fetch_add(report.versions_reclaimed, Ordering::Relaxed);
        *last_watermark = watermark;
        drop(last_watermark);
        // crossbeam-epoch runs deferred frees in bounded steps (a few bags of 64) on whichever
        // thread pins next. Flushing here in proportion to what this pass unlinked makes the GC
        // thread do most of that freeing itself, instead of spreading it over readers' reads.
        let flushes = report.versions_reclaimed / FREES_PER_FLUSH + 4;
        for _ in 0..flushes {
            epoch::pin().flush();
        }
        report
    }

    /// True if a pass could reclaim something the last one could not: the watermark moved, or a
    /// dropped collection is waiting. A pass with an unchanged watermark finds nothing new,
    /// because every commit since the last pass carries a timestamp above that watermark.
    #[cfg(not(loom))]
    pub(crate) fn gc_wanted(&self) -> bool {
        let last = *self.gc_state.lock();
        let visible = self.oracle.visible();
        if visible == Timestamp::ZERO {
            return false;
        }
        self.registry.watermark(visible) != last
    }
}

#[cfg(not(loom))]
pub(crate) use worker::Worker;

#[cfg(not(loom))]
mod worker {
    use std::thread::{self, JoinHandle};
    use std::time::Duration;

    use crate::engine::Engine;
    use crate::sync::{Arc, Mutex};

    /// The background GC thread of one database.
    #[derive(Debug, Default)]
    pub(crate) struct Worker {
        handle: Mutex<Option<JoinHandle<()>>>,
    }

    impl Worker {
        /// Starts the thread. It holds only a weak reference, so dropping the last database
        /// handle ends it.
        pub(crate) fn start(engine: &Arc<Engine>, interval: Duration) {
            let weak = Arc::downgrade(engine);
            let spawned = thread::Builder::new()
                .name("snapbase-gc".into())
                .spawn(move || loop {
                    thread::park_timeout(interval);
                    let Some(engine) = weak.upgrade() else { return };
                    if engine.is_closed() {
                        return;
                    }
                    if engine.gc_wanted() {
                        engine.gc_pass();
                    }
                });
            // Without a thread the database still works; `gc()` reclaims on demand.
            if let Ok(handle) = spawned {
                *engine.gc_worker.handle.lock() = Some(handle);
            }
        }

        /// Wakes the thread so it notices the database closed, and waits for it unless called
        /// from the thread itself.
        pub(crate) fn stop(&self) {
            let handle = self.handle.lock().take();
            if let Some(handle) = handle {
                handle.thread().unpark();
                if handle.thread().id() != thread::current().id() {
                    let _ = handle.join();
                }
            }
        }

        /// Wakes the thread without waiting (used when the engine is dropped).
        pub(crate) fn wake(&self) {
            if let Some(handle) = self.handle.lock().as_ref() {
                handle.thread().unpark();
            }
        }
    }
}

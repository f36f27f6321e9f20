//! Garbage collection of old versions.
//!
//! A pass computes the low watermark `w` (the oldest registered snapshot, or the latest commit
//! if none is older; see `mvcc::registry`) and then, in every chain, keeps the newest version
//! with `commit_ts <= w` and everything newer, unlinking the rest; nothing at or above `w` can
//! reach the unlinked versions. They are freed once no reader is still pinned where it could have
//! loaded them: crossbeam-epoch decides when, and they then wait in `Engine::limbo`. Readers never
//! free them. An explicit `Database::gc` frees them itself before it returns; after a background
//! pass, committers free them, a few per version they write (`Freeing`), and the next background
//! pass frees what is left. Chains whose only remaining version is a tombstone at or below `w`
//! are removed from their map under the commit lock (so no commit is installing into them), in
//! small batches so writers are delayed only briefly. Collections dropped at or below `w` leave
//! the catalog, which frees their documents.
//!
//! Pruning chains needs no commit lock: committers only prepend at the head and GC only cuts
//! tails. Passes are serialized by `Engine::gc_state`. GC never touches files.

use crossbeam_epoch as epoch;

use crate::engine::Engine;
use crate::mvcc::chain::Retired;
#[cfg(not(loom))]
use crate::mvcc::Timestamp;
use crate::stats::GcReport;
use crate::sync::{Arc, Ordering};

/// Chains removed per hold of the commit lock.
const REMOVAL_BATCH: usize = 1024;

/// Unlinked versions handed to the epoch collector as one batch (see `mvcc::chain::Retired`).
const RETIRE_BATCH: usize = 1024;

/// Flushes of the epoch collector at the end of a pass: enough for the epoch to advance twice
/// and for the few deferred batch hand-overs of a pass to run.
const FLUSHES: usize = 8;

/// Versions a committer frees, at most, per version it writes. More than one, so writers free
/// their own garbage (one superseded version per write) and also work off a backlog.
const FREES_PER_WRITE: usize = 2;

/// Who frees the versions a pass unlinks, once the epoch collector lets them go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    loom,
    allow(dead_code, reason = "the background thread is not built under loom")
)]
pub(crate) enum Freeing {
    /// The pass, before it returns (`Database::gc`: the memory is back when it returns). It frees
    /// every 1,024 chains, while the versions may still be in its core's cache.
    Pass,
    /// The committers that follow, after their commits (`Engine::free_after_commit`); the next
    /// background pass frees what they left. A writer then pays for its garbage on its own
    /// thread, where the allocator reuses the memory at once, instead of a GC thread taking a
    /// core that readers could use (RESULTS.md, reads under a writer: with one reader, one
    /// writer and two cores, the reader beside the writer became about a sixth faster).
    Committers,
}

impl Engine {
    /// Frees some versions that passes unlinked and the epoch collector has released, on the
    /// committer's thread, after a commit of `written` versions (outside the commit lock).
    pub(crate) fn free_after_commit(&self, written: usize) {
        self.limbo
            .release_some(written.saturating_mul(FREES_PER_WRITE));
    }

    /// Runs one GC pass.
    pub(crate) fn gc_pass(&self, freeing: Freeing) -> GcReport {
        let mut last_watermark = self.gc_state.lock();
        let watermark = self.registry.watermark(self.oracle.visible());
        let mut report = GcReport {
            watermark,
            ..GcReport::default()
        };
        // What earlier passes retired, the collector has since let go of, and no committer has
        // freed.
        self.limbo.drain();
        let catalog = self.catalog.load_full();
        for (_, inc) in catalog.incarnations() {
            let store = &inc.store;
            let mut dead = Vec::new();
            let mut freed = 0;
            let mut guard = epoch::pin();
            let mut visited = 0u32;
            let mut retired = Retired::new();
            store.chains.for_each(|id, chain| {
                let pruned = chain.prune(watermark, &guard, &mut retired);
                freed += pruned.freed;
                if pruned.dead {
                    dead.push(id.clone());
                }
                visited = visited.wrapping_add(1);
                if visited.is_multiple_of(1024) {
                    if retired.len() >= RETIRE_BATCH {
                        std::mem::take(&mut retired).defer_into(&self.limbo, &guard);
                    }
                    guard.repin();
                    if freeing == Freeing::Pass {
                        // Free what became safe while its versions may still be in this core's
                        // cache; left to the end of a pass, a million frees each miss (1.7x the
                        // time of a `gc()` of 1M versions, measured).
                        guard.flush();
                        self.limbo.drain();
                    }
                }
            });
            retired.defer_into(&self.limbo, &guard);
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
        // The retired batches reach the limbo once the epoch has advanced past this pass's
        // guards, which flushing drives (each flush tries to advance it and runs what is due).
        // Whatever is not due yet waits for the next pass; a long-pinned reader can delay it.
        for _ in 0..FLUSHES {
            epoch::pin().flush();
        }
        if freeing == Freeing::Pass {
            self.limbo.drain();
        }
        report
    }

    /// True if a pass could reclaim something the last one could not: retired versions wait in
    /// the limbo to be freed, or the watermark moved and some collection holds garbage. A pass
    /// with an unchanged watermark unlinks nothing new, because every commit since the last pass
    /// carries a timestamp above that watermark.
    #[cfg(not(loom))]
    pub(crate) fn gc_wanted(&self) -> bool {
        if !self.limbo.is_empty() {
            return true;
        }
        let last = *self.gc_state.lock();
        let visible = self.oracle.visible();
        if visible == Timestamp::ZERO {
            return false;
        }
        self.registry.watermark(visible) != last && self.holds_garbage()
    }

    /// False only if no collection holds a version a pass could unlink, judged from the counters
    /// the commit path keeps. Every chain holds at least one version, and a chain without
    /// garbage holds exactly one, its live document; so a collection whose versions equal its
    /// live documents has nothing to reclaim. A dropped collection always waits for a pass.
    ///
    /// Without this, a workload that only inserts had the background thread walk every chain of
    /// every collection twice a second for nothing: 3% of the CPU samples of 16 durable
    /// committers (`cargo bench --bench durability -- --only 2`, 2 vCPUs), competing with them.
    /// The counters are updated one after the other, so a pass may run for nothing or be put
    /// off to the next interval while a commit is halfway through them; neither loses anything.
    #[cfg(not(loom))]
    fn holds_garbage(&self) -> bool {
        self.catalog.with(|catalog| {
            catalog.incarnations().any(|(_, inc)| {
                inc.dropped.is_some()
                    || inc.store.versions.load(Ordering::Relaxed)
                        > inc.store.live_docs.load(Ordering::Relaxed)
            })
        })
    }
}

#[cfg(not(loom))]
pub(crate) use worker::Worker;

#[cfg(not(loom))]
mod worker {
    use std::thread::{self, JoinHandle};
    use std::time::Duration;

    use super::Freeing;
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
                        engine.gc_pass(Freeing::Committers);
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

#[cfg(all(test, not(loom)))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use std::thread;
    use std::time::{Duration, Instant};

    use super::Freeing;
    use crate::{Database, GcPolicy};

    #[test]
    fn passes_free_the_versions_they_unlink() {
        let db = Database::builder().gc(GcPolicy::Manual).in_memory();
        let c = db.collection("c").unwrap();
        c.insert(json!({"_id": 1, "v": 0})).unwrap();
        let old = c.get(1).unwrap().unwrap();
        c.replace(1, json!({"v": 1})).unwrap();
        assert_eq!(old.handles(), 2);
        assert_eq!(db.gc().versions_reclaimed, 1);
        // Usually the pass that unlinked it frees it; when other tests keep the epoch from
        // advancing in time, a later pass does.
        let mut passes = 1;
        while old.handles() > 1 {
            db.gc();
            passes += 1;
            assert!(passes < 100_000, "an unlinked version was never freed");
        }
        assert_eq!(old["v"], 0);
    }

    #[test]
    fn background_passes_leave_the_frees_to_the_next_commits() {
        let db = Database::builder().gc(GcPolicy::Manual).in_memory();
        let c = db.collection("c").unwrap();
        c.insert(json!({"_id": 1, "v": 0})).unwrap();
        let old = c.get(1).unwrap().unwrap();
        c.replace(1, json!({"v": 1})).unwrap();
        let engine = db.engine();
        assert_eq!(engine.gc_pass(Freeing::Committers).versions_reclaimed, 1);
        // The pass ended without freeing it, whether or not the collector has handed it to the
        // limbo yet (other tests pin the collector too); wait for the hand-over.
        assert_eq!(old.handles(), 2);
        let mut flushes = 0;
        while engine.limbo.is_empty() {
            crossbeam_epoch::pin().flush();
            flushes += 1;
            assert!(flushes < 1_000_000, "the epoch never advanced");
        }
        assert_eq!(old.handles(), 2);
        // The next commit frees it, on the committer's thread.
        c.insert(json!({"_id": 2})).unwrap();
        assert_eq!(old.handles(), 1);
        assert!(engine.limbo.is_empty());
        assert_eq!(old["v"], 0);
    }

    #[test]
    fn background_passes_are_wanted_only_when_something_is_reclaimable() {
        let db = Database::builder().gc(GcPolicy::Manual).in_memory();
        let engine = db.engine();
        let c = db.collection("c").unwrap();
        for i in 0..100 {
            c.insert(json!({"_id": i})).unwrap();
        }
        // The watermark moved, but every chain holds one live version: nothing to unlink. (No
        // pass has run, so nothing waits in the limbo either.)
        assert!(!engine.holds_garbage());
        assert!(!engine.gc_wanted());

        c.replace(1, json!({"v": 1})).unwrap();
        assert!(
            engine.holds_garbage(),
            "a superseded version is reclaimable"
        );
        assert!(engine.gc_wanted());
        db.gc();
        assert!(!engine.holds_garbage());

        c.delete(2).unwrap();
        assert!(
            engine.holds_garbage(),
            "a tombstone and what it hides are reclaimable"
        );
        db.gc();
        assert!(!engine.holds_garbage());

        // A snapshot keeps the old version of 3 until it is released.
        let held = db.snapshot();
        c.replace(3, json!({"v": 1})).unwrap();
        db.gc();
        assert!(engine.holds_garbage());
        assert_eq!(held.get("c", 3).unwrap().unwrap().get("v"), None);
        drop(held);
        db.gc();
        assert!(!engine.holds_garbage());

        db.collection("gone")
            .unwrap()
            .insert(json!({"_id": 1}))
            .unwrap();
        assert!(!engine.holds_garbage());
        db.drop_collection("gone").unwrap();
        assert!(
            engine.holds_garbage(),
            "a dropped collection waits for a pass"
        );
        db.gc();
        assert!(!engine.holds_garbage());
        assert_eq!(db.collection_names(), vec!["c".to_owned()]);
        assert_eq!(db.stats().versions, 99);
    }

    #[test]
    fn after_writes_stop_the_background_thread_frees_what_committers_left() {
        let db = Database::builder()
            .gc(GcPolicy::Background {
                interval: Duration::from_millis(2),
            })
            .in_memory();
        let c = db.collection("c").unwrap();
        c.insert(json!({"_id": 1, "v": 0})).unwrap();
        let first = c.get(1).unwrap().unwrap();
        for v in 1..=2_000 {
            c.replace(1, json!({"v": v})).unwrap();
        }
        // No more commits: whatever the committers did not free, passes must.
        let started = Instant::now();
        while first.handles() > 1
            || !db.engine().limbo.is_empty()
            || db.stats().reclaimable_versions > 0
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "old versions were never freed once writes stopped"
            );
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(first["v"], 0);
        assert_eq!(c.get(1).unwrap().unwrap()["v"], 2_000);
    }
}

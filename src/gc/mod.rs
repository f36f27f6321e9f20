//! Garbage collection of old versions.
//!
//! A pass computes the low watermark `w` (the oldest registered snapshot, or the latest commit
//! if none is older; see `mvcc::registry`) and then, in every chain that may hold garbage (the
//! collection's `DirtySet`: those written to since a pass last left them with one live version),
//! keeps the newest version with `commit_ts <= w` and, of the newer ones, those visible to an
//! open snapshot or superseded after the latest commit, unlinking the rest (`mvcc::chain::Keep`).
//! So a snapshot held while documents churn pins only the versions it can see, and a pass costs
//! about what was written since the last one, not the size of the database.
//!
//! Unlinked versions are freed once no reader is still pinned where it could have loaded them:
//! crossbeam-epoch decides when, and they then wait in `Engine::limbo`. Readers never free them.
//! An explicit `Database::gc` frees them itself before it returns; after a background pass,
//! committers free them, a few per version they write (`Freeing`), and the next background
//! pass frees what is left. Chains whose only remaining version is a tombstone at or below `w`
//! are removed from their map under the commit lock (so no commit is installing into them), in
//! small batches so writers are delayed only briefly. Collections dropped at or below `w` leave
//! the catalog, which frees their documents.
//!
//! Pruning chains needs no commit lock: committers only prepend at the head and GC only rewrites
//! the `next` links of installed nodes. Passes are serialized by `Engine::gc_state`. GC never
//! touches files.

use crossbeam_epoch::{self as epoch, Guard};

use crate::catalog::CollectionStore;
use crate::engine::Engine;
use crate::id::DocId;
use crate::mvcc::chain::{Keep, Retired, VersionChain};
use crate::mvcc::Timestamp;
use crate::stats::GcReport;
use crate::sync::{Arc, Ordering};

pub(crate) use dirty::DirtySet;

mod dirty;

/// A pass walks the whole map, rather than looking up each dirty chain, once more than one
/// chain in this many is dirty.
const FULL_WALK_RATIO: usize = 4;

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

/// Where the last pass started from, for `Engine::gc_wanted`.
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(
    loom,
    allow(dead_code, reason = "the background thread is not built under loom")
)]
pub(crate) struct LastPass {
    watermark: Timestamp,
    visible: Timestamp,
}

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
        let mut last = self.gc_state.lock();
        let visible = self.oracle.visible();
        let mut open = Vec::new();
        let watermark = self.registry.watermark_and_open(visible, &mut open);
        let keep = Keep {
            watermark,
            visible,
            open: &open,
        };
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
            let dirty = store.dirty.take();
            let mut sweep = Sweep::new(self, keep, freeing);
            if dirty.len().saturating_mul(FULL_WALK_RATIO) > store.chains.len() {
                // Most chains are dirty: walking the map shard by shard beats a lookup each.
                store.chains.for_each(|id, chain| sweep.visit(id, chain));
            } else {
                for id in &dirty {
                    // Absent: a pass removed the chain after a delete, since it was marked.
                    store.chains.read(id, |chain| sweep.visit(id, chain));
                }
            }
            drop(dirty);
            report.chains_visited += sweep.visited;
            let freed = sweep.finish(store);
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
        *last = LastPass { watermark, visible };
        drop(last);
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
    /// the limbo to be freed, or some collection holds garbage and either the watermark moved
    /// or, with a snapshot older than the latest commit open, commits have been published since
    /// (versions they superseded may lie between two snapshots). A pass with the watermark and
    /// the visible timestamp both unchanged unlinks nothing new.
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
        let watermark = self.registry.watermark(visible);
        let moved = watermark != last.watermark || (watermark < visible && visible != last.visible);
        moved && self.holds_garbage()
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

/// One pass over the chains of one collection incarnation.
struct Sweep<'e> {
    engine: &'e Engine,
    keep: Keep<'e>,
    freeing: Freeing,
    guard: Guard,
    retired: Retired,
    /// Chains pruned so far.
    visited: u64,
    /// Versions unlinked so far.
    freed: u64,
    /// Chains whose only version visible at the watermark is a tombstone: removed at the end.
    dead: Vec<DocId>,
    /// Chains still holding versions a later pass must unlink: back into the dirty set.
    unsettled: Vec<DocId>,
}

impl<'e> Sweep<'e> {
    fn new(engine: &'e Engine, keep: Keep<'e>, freeing: Freeing) -> Self {
        Self {
            engine,
            keep,
            freeing,
            guard: epoch::pin(),
            retired: Retired::new(),
            visited: 0,
            freed: 0,
            dead: Vec::new(),
            unsettled: Vec::new(),
        }
    }

    /// Prunes one chain. Called inside the map's shard read lock, so it takes no other lock.
    fn visit(&mut self, id: &DocId, chain: &VersionChain) {
        chain.clear_dirty(&self.guard);
        let pruned = chain.prune_keeping(&self.keep, &self.guard, &mut self.retired);
        self.freed += pruned.freed;
        if pruned.dead {
            self.dead.push(id.clone());
        } else if !pruned.settled && chain.mark_dirty(&self.guard) {
            // Not yet marked again by a commit since the clear (which would have added it).
            self.unsettled.push(id.clone());
        }
        self.visited += 1;
        if self.visited.is_multiple_of(1024) {
            if self.retired.len() >= RETIRE_BATCH {
                std::mem::take(&mut self.retired).defer_into(&self.engine.limbo, &self.guard);
            }
            self.guard.repin();
            if self.freeing == Freeing::Pass {
                // Free what became safe while its versions may still be in this core's cache;
                // left to the end of a pass, a million frees each miss (1.7x the time of a
                // `gc()` of 1M versions, measured).
                self.guard.flush();
                self.engine.limbo.drain();
            }
        }
    }

    /// Hands the unlinked versions to the collector, removes the dead chains, gives the
    /// unsettled ones back to the dirty set, and returns the versions reclaimed.
    fn finish(self, store: &CollectionStore) -> u64 {
        let Self {
            engine,
            keep,
            guard,
            retired,
            mut freed,
            dead,
            unsettled,
            ..
        } = self;
        retired.defer_into(&engine.limbo, &guard);
        for batch in dead.chunks(REMOVAL_BATCH) {
            let lock = engine.commit_lock();
            let removed: Vec<_> = batch
                .iter()
                .filter_map(|id| {
                    store
                        .chains
                        .remove_if(id, |c| c.is_dead_at(keep.watermark, &guard))
                })
                .collect();
            drop(lock);
            // Each removed chain holds exactly its tombstone (older versions were pruned above);
            // dropping it here, outside every lock, frees it. A chain not removed was written
            // to since the prune, and that commit, finding its flag clear, added it back.
            freed += removed.len() as u64;
            drop(removed);
        }
        store.dirty.restore(unsettled);
        freed
    }
}

#[cfg(not(loom))]
pub(crate) use worker::Worker;

#[cfg(not(loom))]
mod worker;

#[cfg(all(test, not(loom)))]
mod tests;

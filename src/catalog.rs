//! The catalog: which collections exist at which timestamps.
//!
//! The catalog is itself multi-versioned. Each name maps to its incarnations, each live from its
//! `created_ts` until its `dropped_ts`. A snapshot at `t` sees the incarnation visible at `t` by
//! the same visibility rule as documents. That is how a dropped (or dropped and recreated)
//! collection still reads correctly in an older snapshot.
//!
//! The catalog is immutable and published through an `AtomicArc`: only the commit path (and GC
//! retiring dropped incarnations, under the commit lock) replaces it. It is always stored before
//! the visible timestamp of the commit that changed it is published, so a reader that has
//! acquired timestamp `t` and then loads the catalog sees every incarnation created at or before
//! `t`. Dropped incarnations stay until the GC watermark passes their `dropped_ts`, so a
//! registered snapshot never finds its incarnation gone.

use std::collections::BTreeMap;

use crossbeam_utils::CachePadded;

use crate::gc::DirtySet;
use crate::id::DocId;
use crate::mvcc::chain::VersionChain;
use crate::mvcc::count::CountHistory;
use crate::mvcc::{is_visible, Timestamp};
use crate::sync::{fence, Arc, AtomicU64, ConcurrentMap, Ordering};

/// The documents of one incarnation of a collection.
#[derive(Debug)]
pub(crate) struct CollectionStore {
    pub(crate) chains: ConcurrentMap<DocId, VersionChain>,
    // The counters below are written by every commit to this collection; each is padded to its
    // own cache line so those writes do not evict the map header every read loads.
    /// Commit timestamp of the latest commit that wrote to this incarnation (or dropped it).
    /// Written by the commit path under the commit lock, each time *before* that commit changes
    /// `live_docs`, with a Release fence between the two. Read by serializable validation under
    /// the same lock (Relaxed), and without it by [`CollectionStore::live_docs_at`], which
    /// reads it before and after `live_docs` like a sequence lock (Acquire, then an Acquire
    /// fence that pairs with the writer's).
    pub(crate) last_write: CachePadded<AtomicU64>,
    /// Live documents at the latest commit. Written under the commit lock, after
    /// `last_write`; read by `stats` (Relaxed: a counter) and by `live_docs_at` (see there).
    pub(crate) live_docs: CachePadded<AtomicU64>,
    /// `live_docs` after each of the last commits that changed it, for `live_docs_at` at
    /// snapshots that newer commits have passed.
    pub(crate) live_history: CountHistory,
    /// Versions linked in this incarnation's chains. Incremented under the commit lock,
    /// decremented by GC; read by `stats` (all Relaxed: counters only).
    pub(crate) versions: CachePadded<AtomicU64>,
    /// Chains that may hold versions GC can unlink: marked by the commit path, taken by passes.
    pub(crate) dirty: CachePadded<DirtySet>,
}

impl CollectionStore {
    fn new() -> Self {
        Self {
            chains: ConcurrentMap::default(),
            last_write: CachePadded::new(AtomicU64::new(0)),
            live_docs: CachePadded::new(AtomicU64::new(0)),
            live_history: CountHistory::default(),
            versions: CachePadded::new(AtomicU64::new(0)),
            dirty: CachePadded::default(),
        }
    }

    pub(crate) fn last_write(&self) -> Timestamp {
        Timestamp(self.last_write.load(Ordering::Relaxed))
    }

    /// The number of documents live at `ts`, without a walk: from `live_docs` if no commit
    /// after `ts` has written to this store, else from `live_history` if it reaches back to
    /// `ts`; `None` if neither can tell.
    ///
    /// Every commit at or before a snapshot's timestamp was installed before that timestamp
    /// was published, so `live_docs` counts all of them; it counts a later one only once that
    /// commit has stored its own timestamp in `last_write`, which it does before it changes
    /// `live_docs`. Reading `last_write` on both sides of the count, with the fences pairing,
    /// catches any such commit.
    pub(crate) fn live_docs_at(&self, ts: Timestamp) -> Option<u64> {
        let before = self.last_write.load(Ordering::Acquire);
        if before <= ts.0 {
            let live = self.live_docs.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.last_write.load(Ordering::Relaxed) == before {
                return Some(live);
            }
        }
        self.live_history.at(ts)
    }
}

/// One incarnation of a named collection.
#[derive(Debug, Clone)]
pub(crate) struct Incarnation {
    pub(crate) created: Timestamp,
    pub(crate) dropped: Option<Timestamp>,
    pub(crate) store: Arc<CollectionStore>,
}

impl Incarnation {
    fn visible_at(&self, ts: Timestamp) -> bool {
        is_visible(self.created, ts) && !self.dropped.is_some_and(|d| is_visible(d, ts))
    }
}

/// Name → incarnations, oldest first. At most one incarnation per name is not dropped.
///
/// Aligned to its own cache lines: inside its `Arc`, the reference counts (bumped by every
/// committer's `load_full`) then never share a line with the map root every reader walks.
#[derive(Debug, Default, Clone)]
#[repr(align(128))]
pub(crate) struct Catalog {
    entries: BTreeMap<String, Vec<Incarnation>>,
}

impl Catalog {
    /// The incarnation of `name` visible at `ts`.
    pub(crate) fn visible(&self, name: &str, ts: Timestamp) -> Option<&Incarnation> {
        self.entries
            .get(name)?
            .iter()
            .rev()
            .find(|inc| inc.visible_at(ts))
    }

    /// The incarnation new commits write to: the one not dropped.
    pub(crate) fn current(&self, name: &str) -> Option<&Incarnation> {
        self.entries
            .get(name)?
            .iter()
            .rev()
            .find(|inc| inc.dropped.is_none())
    }

    /// Names of collections visible at `ts`, sorted.
    pub(crate) fn names_at(&self, ts: Timestamp) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, incs)| incs.iter().any(|inc| inc.visible_at(ts)))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Every incarnation, dropped or not.
    pub(crate) fn incarnations(&self) -> impl Iterator<Item = (&str, &Incarnation)> {
        self.entries
            .iter()
            .flat_map(|(name, incs)| incs.iter().map(move |inc| (name.as_str(), inc)))
    }

    /// A copy with a new incarnation of `name` created at `ts`. Commit path only.
    pub(crate) fn with_created(
        &self,
        name: &str,
        ts: Timestamp,
    ) -> (Catalog, Arc<CollectionStore>) {
        let mut next = self.clone();
        let store = Arc::new(CollectionStore::new());
        next.entries
            .entry(name.to_owned())
            .or_default()
            .push(Incarnation {
                created: ts,
                dropped: None,
                store: Arc::clone(&store),
            });
        (next, store)
    }

    /// A copy with the current incarnation of `name` dropped at `ts`. Commit path only.
    pub(crate) fn with_dropped(&self, name: &str, ts: Timestamp) -> Catalog {
        let mut next = self.clone();
        if let Some(inc) = next
            .entries
            .get_mut(name)
            .and_then(|incs| incs.iter_mut().rev().find(|inc| inc.dropped.is_none()))
        {
            inc.dropped = Some(ts);
        }
        next
    }

    /// A copy without the incarnations dropped at or before `watermark`, and how many versions
    /// those held. Returns `None` if there is nothing to retire. GC only, under the commit lock.
    pub(crate) fn without_retired(&self, watermark: Timestamp) -> Option<(Catalog, u64)> {
        let retired = |inc: &Incarnation| inc.dropped.is_some_and(|d| is_visible(d, watermark));
        if !self.incarnations().any(|(_, inc)| retired(inc)) {
            return None;
        }
        let mut versions = 0;
        let mut next = self.clone();
        for incs in next.entries.values_mut() {
            incs.retain(|inc| {
                if retired(inc) {
                    versions += inc.store.versions.load(Ordering::Relaxed);
                    false
                } else {
                    true
                }
            });
        }
        next.entries.retain(|_, incs| !incs.is_empty());
        Some((next, versions))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// What the commit path does for commit `ts`, as seen by the counters: mark the store
    /// written, change the count, then record the new count.
    fn commit(store: &CollectionStore, ts: u64, live: u64) {
        store.last_write.store(ts, Ordering::Relaxed);
        store.live_docs.store(live, Ordering::Relaxed);
        store.live_history.record(Timestamp(ts), live);
    }

    #[test]
    fn live_docs_at_answers_from_the_counter_then_the_history() {
        let store = CollectionStore::new();
        assert_eq!(store.live_docs_at(Timestamp(0)), Some(0), "never written");
        commit(&store, 2, 5);
        commit(&store, 4, 7);
        assert_eq!(store.live_docs_at(Timestamp(4)), Some(7), "no newer commit");
        assert_eq!(store.live_docs_at(Timestamp(9)), Some(7));
        assert_eq!(
            store.live_docs_at(Timestamp(3)),
            Some(5),
            "from the history"
        );
        assert_eq!(
            store.live_docs_at(Timestamp(1)),
            None,
            "before anything recorded"
        );
        // A commit installed but not yet recorded (or published): the history still answers
        // for the published timestamps.
        store.last_write.store(5, Ordering::Relaxed);
        store.live_docs.store(8, Ordering::Relaxed);
        assert_eq!(store.live_docs_at(Timestamp(4)), Some(7));
    }
}

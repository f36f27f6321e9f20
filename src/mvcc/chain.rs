//! A document's version chain: a newest-first singly linked list of versions, managed with
//! crossbeam-epoch. This is the only module with `unsafe`.
//!
//! Writers: only the commit path prepends (`install`), and it is serialized by the commit lock,
//! so `head` has one writer at a time. GC (serialized by the GC lock) cuts the tail of the list
//! below the watermark (`prune`), concurrently with the commit path and with readers; it never
//! touches `head`. Removing a whole chain from its map happens under the commit lock.
//!
//! Readers: walk from `head` under an epoch guard, stopping at the first version visible to their
//! timestamp. A reader at timestamp `t` is registered (see `registry`), so the GC watermark
//! `w <= t`; GC keeps the newest version with `commit_ts <= w`, which is at or after the version
//! the reader needs, so no reader ever needs a node GC has unlinked. Unlinked nodes are freed
//! through `Guard::defer_destroy`, so even a reader that raced past the cut reads valid memory.
#![allow(unsafe_code)] // This module is the crate's one exception; every block has a SAFETY note.

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned, Shared};

use super::{is_visible, Timestamp};
use crate::document::Document;
use crate::sync::Ordering;

/// One committed version of a document. `body == None` is a tombstone (a delete).
struct Version {
    commit_ts: Timestamp,
    body: Option<Document>,
    /// The next older version. Written at creation (before `head` publishes the node) and by
    /// GC's `prune` (`swap` to null, AcqRel); read by readers walking the chain (Acquire).
    next: Atomic<Version>,
}

/// What `prune` did to one chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Versions unlinked and handed to the epoch collector.
    pub freed: u64,
    /// The only version left visible at the watermark is a tombstone at the head: the whole
    /// chain can be removed from its map (under the commit lock, re-checked with `is_dead_at`).
    pub dead: bool,
}

/// The version chain of one document.
pub struct VersionChain {
    /// Newest version. Written only by `install` (Release), under the commit lock; read by
    /// readers, the conflict check and GC (Acquire), which then see the node's contents.
    head: Atomic<Version>,
}

impl std::fmt::Debug for VersionChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VersionChain")
    }
}

impl Default for VersionChain {
    fn default() -> Self {
        Self::new()
    }
}

impl VersionChain {
    /// An empty chain.
    pub fn new() -> Self {
        Self {
            head: Atomic::null(),
        }
    }

    /// Prepends a version committed at `ts`. Commit path only (the commit lock serializes
    /// callers); `ts` is greater than every version already in the chain.
    pub fn install(&self, ts: Timestamp, body: Option<Document>, guard: &Guard) {
        // Relaxed: the commit lock orders us after the previous installer, the only other
        // writer of `head`.
        let head = self.head.load(Ordering::Relaxed, guard);
        let node = Owned::new(Version {
            commit_ts: ts,
            body,
            next: Atomic::from(head),
        });
        self.head.store(node, Ordering::Release);
    }

    /// The body visible at `ts`: `None` when no version is visible or the visible one is a
    /// tombstone.
    pub fn read(&self, ts: Timestamp, guard: &Guard) -> Option<Document> {
        let mut cur = self.head.load(Ordering::Acquire, guard);
        // SAFETY: `cur` was loaded from this chain under `guard`; nodes are freed only through
        // `defer_destroy` after being unlinked (prune) or when the chain itself is dropped with
        // exclusive access, so the node outlives `guard`.
        while let Some(v) = unsafe { cur.as_ref() } {
            if is_visible(v.commit_ts, ts) {
                return v.body.clone();
            }
            cur = v.next.load(Ordering::Acquire, guard);
        }
        None
    }

    /// Timestamp of the newest version and whether it is live (not a tombstone).
    pub fn newest(&self, guard: &Guard) -> Option<(Timestamp, bool)> {
        let head = self.head.load(Ordering::Acquire, guard);
        // SAFETY: as in `read`: loaded under `guard`, freed only via the epoch collector.
        unsafe { head.as_ref() }.map(|v| (v.commit_ts, v.body.is_some()))
    }

    /// Unlinks every version that no snapshot at or above `watermark` can see: everything older
    /// than the newest version with `commit_ts <= watermark`. GC only (one caller at a time).
    pub fn prune(&self, watermark: Timestamp, guard: &Guard) -> Pruned {
        let head = self.head.load(Ordering::Acquire, guard);
        let mut cur = head;
        // SAFETY: as in `read`.
        while let Some(v) = unsafe { cur.as_ref() } {
            if is_visible(v.commit_ts, watermark) {
                let mut out = Pruned {
                    freed: 0,
                    dead: cur == head && v.body.is_none(),
                };
                let mut tail = v.next.swap(Shared::null(), Ordering::AcqRel, guard);
                // SAFETY: `tail` heads the list just cut off this chain under `guard`.
                while let Some(old) = unsafe { tail.as_ref() } {
                    let next = old.next.load(Ordering::Acquire, guard);
                    // SAFETY: `tail` is unreachable from `head` now (we cut it, and only GC,
                    // which we are, cuts), and only this pass holds it, so it is destroyed once;
                    // readers that loaded it earlier are protected until their guards drop.
                    unsafe { guard.defer_destroy(tail) };
                    out.freed += 1;
                    tail = next;
                }
                return out;
            }
            cur = v.next.load(Ordering::Acquire, guard);
        }
        Pruned::default()
    }

    /// True if the newest version is a tombstone committed at or before `watermark`: no
    /// snapshot can see anything in this chain. Checked under the commit lock before removal.
    pub fn is_dead_at(&self, watermark: Timestamp, guard: &Guard) -> bool {
        self.newest(guard)
            .is_some_and(|(ts, live)| !live && is_visible(ts, watermark))
    }

    /// Number of versions currently linked (for tests; walks the whole chain).
    #[cfg(any(test, loom))]
    pub fn len(&self, guard: &Guard) -> usize {
        let mut n = 0;
        let mut cur = self.head.load(Ordering::Acquire, guard);
        // SAFETY: as in `read`.
        while let Some(v) = unsafe { cur.as_ref() } {
            n += 1;
            cur = v.next.load(Ordering::Acquire, guard);
        }
        n
    }

    /// True if the chain has no version.
    #[cfg(any(test, loom))]
    pub fn is_empty(&self, guard: &Guard) -> bool {
        self.head.load(Ordering::Acquire, guard).is_null()
    }
}

impl Drop for VersionChain {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no reader or writer holds this chain (readers reach chains
        // only through their map, from which it was removed under the shard's write lock), so no
        // guard can protect these nodes and they may be freed at once.
        let guard = unsafe { epoch::unprotected() };
        let mut cur = self.head.swap(Shared::null(), Ordering::Relaxed, guard);
        while !cur.is_null() {
            // SAFETY: exclusive access (see above); each node is reached once and owned by the
            // list, so turning it back into an `Owned` frees it exactly once.
            let owned = unsafe { cur.into_owned() };
            cur = owned.next.load(Ordering::Relaxed, guard);
            drop(owned);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::document::{prepare, IdRule};
    use crate::id::DocId;

    fn doc(v: i64) -> Document {
        let id = DocId::from(1);
        prepare(serde_json::json!({ "v": v }), IdRule::Fixed(&id), 1 << 20)
            .unwrap()
            .1
    }

    fn value(d: Option<Document>) -> Option<i64> {
        d.map(|d| d["v"].as_i64().unwrap())
    }

    #[test]
    fn reads_follow_the_visibility_rule_and_prune_keeps_what_the_watermark_needs() {
        let chain = VersionChain::new();
        let guard = epoch::pin();
        assert!(chain.is_empty(&guard));
        chain.install(Timestamp(2), Some(doc(20)), &guard);
        chain.install(Timestamp(4), Some(doc(40)), &guard);
        chain.install(Timestamp(6), None, &guard);
        assert_eq!(value(chain.read(Timestamp(1), &guard)), None);
        assert_eq!(value(chain.read(Timestamp(3), &guard)), Some(20));
        assert_eq!(value(chain.read(Timestamp(5), &guard)), Some(40));
        assert_eq!(value(chain.read(Timestamp(9), &guard)), None);
        assert_eq!(chain.newest(&guard), Some((Timestamp(6), false)));

        // Watermark 5: the version at 4 is what a snapshot at 5 sees; only the one at 2 goes.
        assert_eq!(
            chain.prune(Timestamp(5), &guard),
            Pruned {
                freed: 1,
                dead: false
            }
        );
        assert_eq!(chain.len(&guard), 2);
        assert_eq!(value(chain.read(Timestamp(5), &guard)), Some(40));
        assert!(!chain.is_dead_at(Timestamp(5), &guard));

        // Watermark 6: the tombstone is all anyone can see, and the chain is dead.
        assert_eq!(
            chain.prune(Timestamp(6), &guard),
            Pruned {
                freed: 1,
                dead: true
            }
        );
        assert_eq!(chain.len(&guard), 1);
        assert!(chain.is_dead_at(Timestamp(6), &guard));
        // Below every version nothing is pruned.
        assert_eq!(chain.prune(Timestamp(1), &guard), Pruned::default());
    }
}

//! A document's version chain: a newest-first singly linked list of versions, managed with
//! crossbeam-epoch. This is the only module with `unsafe`.
//!
//! Nodes are reference-counted `Version`s (see `version`); the chain owns one strong reference
//! per linked node, held as a raw pointer (`Arc::into_raw`) in crossbeam `Atomic` links.
//!
//! Writers: only the commit path prepends (`install`), and it is serialized by the commit lock,
//! so `head` has one writer at a time. GC (serialized by the GC lock) cuts the tail of the list
//! below the watermark, and unlinks versions above it that lie between two snapshots
//! (`prune_keeping`), concurrently with the commit path and with readers; it writes only the
//! `next` links of installed nodes, never `head`. Removing a whole chain from its map happens
//! under the commit lock.
//!
//! Readers: walk from `head` under an epoch guard, stopping at the first version visible to their
//! timestamp, and take a strong reference to it. A reader at timestamp `t` is registered (see
//! `registry`), so the GC watermark `w <= t`; GC keeps the newest version with `commit_ts <= w`,
//! which is at or after the version the reader needs, and above it every version whose
//! visibility interval holds an open snapshot's timestamp (`t` among them), so no reader ever
//! needs a node GC has unlinked. An unlinked node keeps its own `next`, so a reader standing on
//! it walks on into the chain. The chain's references to unlinked nodes are released only after a grace period of
//! the epoch collector (`Retired`), so a reader that loaded a pointer before the cut can still
//! safely take its own reference: the node is alive until every guard that could have seen it is
//! dropped. The release itself runs on the GC thread (`Limbo`), not in some reader's `pin`.
#![allow(unsafe_code)] // This module is the crate's one exception; every block has a SAFETY note.

use crossbeam_epoch::{self as epoch, Atomic, Guard, Shared};

use super::version::Version;
use super::{is_visible, Timestamp};
use crate::document::Document;
use crate::sync::{Ordering, PayloadArc as Arc, PayloadMutex};

/// What `prune` did to one chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Versions unlinked, whose chain references were handed to the epoch collector.
    pub freed: u64,
    /// The only version left visible at the watermark is a tombstone at the head: the whole
    /// chain can be removed from its map (under the commit lock, re-checked with `is_dead_at`).
    pub dead: bool,
    /// The chain is left with one version, a live one at or below the watermark: no later pass
    /// can unlink anything from it until a commit writes to it again.
    pub settled: bool,
}

/// What a GC pass must keep of a chain: the newest version at or below `watermark` and every
/// newer version, except one superseded at or before `visible` whose visibility interval holds
/// no timestamp of `open` (see `SnapshotRegistry::watermark_and_open`).
#[derive(Debug, Clone, Copy)]
pub struct Keep<'a> {
    /// The GC watermark: the oldest open snapshot, or `visible`.
    pub watermark: Timestamp,
    /// The visible timestamp the pass started from: every snapshot that registers later reads
    /// at or above it.
    pub visible: Timestamp,
    /// Timestamps of the open snapshots, sorted.
    pub open: &'a [u64],
}

impl Keep<'_> {
    /// True if a version committed at `ts`, and superseded (in the chain as it now is) by one
    /// committed at `superseded`, is visible to an open snapshot or may be to a later one.
    fn needs(&self, ts: Timestamp, superseded: Timestamp) -> bool {
        if superseded > self.visible {
            return true;
        }
        let first_at_or_after = self.open.partition_point(|&s| s < ts.0);
        self.open
            .get(first_at_or_after)
            .is_some_and(|&s| s < superseded.0)
    }
}

/// Tag bit of a chain's `head`: the chain may hold versions GC can unlink.
const DIRTY: usize = 1;

/// The version chain of one document.
pub struct VersionChain {
    /// Newest version. Written only by `install` (Release), under the commit lock; read by
    /// readers, the conflict check and GC (Acquire), which then see the node's contents.
    ///
    /// Its tag bit `DIRTY` says the chain may hold a version GC can unlink, and that its id is
    /// in its collection's dirty set (see `gc::dirty`). `install` sets it when it prepends to an
    /// existing version; GC clears it before a prune (`clear_dirty`) and sets it again if the
    /// prune left the chain unsettled (`mark_dirty`). Whoever sets it from clear adds the id to
    /// the set. Install's swap and GC's tag updates are read-modify-writes of this one word, so
    /// exactly one of them sees each clear-to-set change, and a prune after the clear loads
    /// any head installed before it (the clear continues the installer's release sequence).
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

/// A raw chain reference moved into a deferred release; raw pointers are not `Send`.
#[derive(Debug)]
struct ChainRef(*const Version);

// SAFETY: the pointer is a strong reference to a `Version`, which is `Send + Sync` (its fields
// are atomics and an immutable `Value`); releasing it on another thread is what `Arc` allows.
unsafe impl Send for ChainRef {}

impl ChainRef {
    /// Releases the chain's strong reference.
    ///
    /// # Safety
    /// The pointer came from `Arc::into_raw` and this reference is released exactly once.
    unsafe fn release(self) {
        // SAFETY: guaranteed by the caller.
        drop(unsafe { Arc::from_raw(self.0) });
    }
}

/// Chain references to versions `prune` has unlinked, not yet safe to release: a reader pinned
/// before the cut may still be about to take its own reference.
///
/// A batch reaches its release in two steps. `defer_into` hands it to the epoch collector, whose
/// deferred function only moves it into a `Limbo`; that function runs on whichever thread pins
/// next, often a reader, so it must be cheap. Committers after their commits, or a GC pass, then
/// take versions out of the limbo and release them, so the frees (a version and its document's
/// allocations) run on their threads.
#[derive(Debug, Default)]
pub struct Retired {
    refs: Vec<ChainRef>,
}

impl Retired {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Versions in the batch.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    /// True if the batch holds no version.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// Moves the batch into `limbo` once every thread pinned now has unpinned. `guard` may be
    /// any guard taken after the versions were unlinked: a reader that loaded one of them before
    /// the cut is still pinned now, or has finished with it.
    pub fn defer_into(mut self, limbo: &Arc<Limbo>, guard: &Guard) {
        if self.is_empty() {
            return;
        }
        let refs = std::mem::take(&mut self.refs);
        let limbo = Arc::clone(limbo);
        guard.defer(move || limbo.push(Ready(refs)));
    }
}

impl Drop for Retired {
    fn drop(&mut self) {
        // Reached with versions only if a pass unwound before handing its batch on: release
        // them through the collector directly, where the thread that runs them pays the frees.
        if !self.is_empty() {
            let refs = std::mem::take(&mut self.refs);
            epoch::pin().defer(move || drop(Ready(refs)));
        }
    }
}

/// Chain references whose grace period has passed: no reader can reach the versions any more.
/// Built only inside functions deferred through the epoch collector, or from references moved
/// out of another `Ready`; dropping it releases them.
struct Ready(Vec<ChainRef>);

impl Drop for Ready {
    fn drop(&mut self) {
        for chain_ref in self.0.drain(..) {
            // SAFETY: a `Ready` is built only from a `Retired` batch inside a function deferred
            // through the epoch collector, which runs after every guard that could have seen
            // the versions is gone, or from references moved out of such a `Ready`; each
            // reference was retired exactly once by `prune`, and moving it leaves no copy.
            unsafe { chain_ref.release() };
        }
    }
}

/// Batches whose grace period has passed, waiting for their owner to release them.
#[derive(Default)]
pub struct Limbo {
    ready: PayloadMutex<Vec<Ready>>,
}

impl std::fmt::Debug for Limbo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limbo")
    }
}

impl Limbo {
    fn push(&self, ready: Ready) {
        self.ready.lock().push(ready);
    }

    /// True if no batch waits to be released.
    pub fn is_empty(&self) -> bool {
        self.ready.lock().is_empty()
    }

    /// Releases up to `n` versions on the calling thread, unless another thread holds the limbo
    /// (then none: a committer calls this and must not wait); returns how many it released.
    ///
    /// The versions are taken out under the lock and freed after it, like `drain` does: the
    /// epoch collector's hand-over also takes the lock, and it may run in a reader's `pin`.
    pub fn release_some(&self, n: usize) -> usize {
        let taken = {
            let Some(mut ready) = self.ready.try_lock() else {
                return 0;
            };
            let mut taken = Vec::new();
            while let Some(batch) = ready.last_mut() {
                let want = n - taken.len();
                let keep = batch.0.len().saturating_sub(want);
                taken.extend(batch.0.drain(keep..));
                if batch.0.is_empty() {
                    ready.pop();
                }
                if taken.len() == n {
                    break;
                }
            }
            Ready(taken)
        };
        taken.0.len()
    }

    /// Releases every batch that has arrived, on the calling thread; returns how many versions
    /// that released.
    pub fn drain(&self) -> usize {
        let batches = std::mem::take(&mut *self.ready.lock());
        let released = batches.iter().map(|b| b.0.len()).sum();
        drop(batches);
        released
    }
}

impl VersionChain {
    /// An empty chain.
    pub fn new() -> Self {
        Self {
            head: Atomic::null(),
        }
    }

    /// Sets the dirty tag if it is clear, after a prune that left versions for a later pass.
    /// Returns true if it was clear: the caller must then add the id to the dirty set (a commit
    /// that installed since the clear has set it and added the id already).
    pub fn mark_dirty(&self, guard: &Guard) -> bool {
        self.head.fetch_or(DIRTY, Ordering::Relaxed, guard).tag() & DIRTY == 0
    }

    /// Clears the dirty tag before GC prunes the chain. A tag already clear is left alone, so
    /// a walk of the whole map does not write to every chain's cache line.
    pub fn clear_dirty(&self, guard: &Guard) {
        if self.head.load(Ordering::Relaxed, guard).tag() & DIRTY != 0 {
            self.head.fetch_and(!DIRTY, Ordering::Relaxed, guard);
        }
    }

    /// Prepends a version committed at `ts` (a tombstone if `body` is `None`). Commit path only
    /// (the commit lock serializes callers); `ts` is greater than every version in the chain.
    ///
    /// Prepending to an existing version sets the dirty tag; returns true if it was clear, and
    /// the caller must then add the id to its collection's dirty set.
    pub fn install(&self, ts: Timestamp, body: Option<Document>, guard: &Guard) -> bool {
        let node = body.map_or_else(|| Arc::new(Version::tombstone()), Document::into_version);
        node.mark_installed(ts);
        // Relaxed: the commit lock orders us after the previous installer, the only other
        // writer of the pointer (GC changes only the tag); the Release store or swap below
        // publishes `next` and `commit_ts`.
        let old = self.head.load(Ordering::Relaxed, guard);
        node.next.store(old.with_tag(0), Ordering::Relaxed);
        let new = Shared::from(Arc::into_raw(node));
        if old.is_null() {
            // A new chain, created under its shard's write lock with this install, so no pass
            // can be touching its tag: one live version, nothing for GC.
            self.head.store(new, Ordering::Release);
            false
        } else {
            let previous = self
                .head
                .swap(new.with_tag(DIRTY), Ordering::Release, guard);
            previous.tag() & DIRTY == 0
        }
    }

    /// The document visible at `ts`: `None` when no version is visible or the visible one is a
    /// tombstone.
    pub fn read(&self, ts: Timestamp, guard: &Guard) -> Option<Document> {
        let mut cur = self.head.load(Ordering::Acquire, guard);
        // SAFETY: `cur` was loaded from this chain under `guard`; the chain's reference to a
        // node is released only through the epoch collector after the node is unlinked (prune)
        // or when the chain is dropped with exclusive access, so the node outlives `guard`.
        while let Some(v) = unsafe { cur.as_ref() } {
            if is_visible(v.commit_ts(), ts) {
                v.body.as_ref()?;
                let raw = cur.as_raw();
                // SAFETY: `raw` came from `Arc::into_raw` and the chain's strong reference is
                // alive while `guard` is (see above), so taking another one is sound.
                unsafe { Arc::increment_strong_count(raw) };
                // SAFETY: the reference just taken is owned by the new `Arc`.
                let version = unsafe { Arc::from_raw(raw) };
                return Some(Document::from_version(version));
            }
            cur = v.next.load(Ordering::Acquire, guard);
        }
        None
    }

    /// Timestamp of the newest version and whether it is live (not a tombstone).
    pub fn newest(&self, guard: &Guard) -> Option<(Timestamp, bool)> {
        let head = self.head.load(Ordering::Acquire, guard);
        // SAFETY: as in `read`: loaded under `guard`, released only via the epoch collector.
        unsafe { head.as_ref() }.map(|v| (v.commit_ts(), v.body.is_some()))
    }

    /// Unlinks every version that no snapshot at or above `watermark` can see: everything older
    /// than the newest version with `commit_ts <= watermark`. The chain's references to the
    /// unlinked versions go to `retired`, to be released once no reader can still hold them. GC
    /// only (one caller at a time).
    #[cfg(any(test, loom))]
    pub fn prune(&self, watermark: Timestamp, guard: &Guard, retired: &mut Retired) -> Pruned {
        let keep = Keep {
            watermark,
            visible: watermark,
            open: &[],
        };
        self.prune_keeping(&keep, guard, retired)
    }

    /// Unlinks what `prune` does (the tail below the watermark's version), and also the
    /// versions above the watermark that `keep` says no snapshot needs. Such a version is
    /// unlinked by pointing the kept version above it at the one below it; its own `next` is
    /// left as it is, so a reader standing on it walks on to the same node, and no reader needs
    /// it (a reader is registered, so `keep` accounts for it). Its chain reference is retired
    /// like the cut tail's.
    pub fn prune_keeping(&self, keep: &Keep<'_>, guard: &Guard, retired: &mut Retired) -> Pruned {
        let head = self.head.load(Ordering::Acquire, guard);
        let mut cur = head;
        let mut unlinked = 0;
        // The newest version still linked above `cur`: whose `next` an unlink rewrites.
        let mut newer: Option<&Version> = None;
        // SAFETY: as in `read`.
        while let Some(v) = unsafe { cur.as_ref() } {
            let next = v.next.load(Ordering::Acquire, guard);
            if !is_visible(v.commit_ts(), keep.watermark) {
                match newer {
                    Some(above) if !keep.needs(v.commit_ts(), above.commit_ts()) => {
                        // GC is the only writer of an installed node's `next` (passes are
                        // serialized), so `above` still points at `v`. Release: a reader that
                        // loads the new link sees `next`'s contents, which this pass acquired.
                        above.next.store(next, Ordering::Release);
                        retired.refs.push(ChainRef(cur.as_raw()));
                        unlinked += 1;
                    }
                    _ => newer = Some(v),
                }
                cur = next;
                continue;
            }
            let mut out = Pruned {
                freed: unlinked,
                dead: cur == head && v.body.is_none(),
                settled: cur == head && v.body.is_some(),
            };
            // Most chains have nothing below the watermark's version. Checking before the swap
            // keeps a pass from writing to (and so taking from readers' caches) the cache line
            // of every document it visits; GC is the only writer of an installed node's `next`,
            // so the check cannot go stale before the swap.
            if next.is_null() {
                return out;
            }
            let mut tail = v.next.swap(Shared::null(), Ordering::AcqRel, guard);
            // SAFETY: `tail` heads the list just cut off this chain under `guard`.
            while let Some(old) = unsafe { tail.as_ref() } {
                let next = old.next.load(Ordering::Acquire, guard);
                // The cut list is unreachable from `head` now and only this pass (GC is
                // serialized) walks it, so each chain reference is retired once.
                retired.refs.push(ChainRef(tail.as_raw()));
                out.freed += 1;
                tail = next;
            }
            return out;
        }
        Pruned {
            freed: unlinked,
            ..Pruned::default()
        }
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
        // only through their map, from which it was removed under the shard's write lock), so
        // no guard can be about to take a reference through these links.
        let guard = unsafe { epoch::unprotected() };
        let mut cur = self.head.swap(Shared::null(), Ordering::Relaxed, guard);
        // SAFETY: exclusive access (see above).
        while let Some(v) = unsafe { cur.as_ref() } {
            let next = v.next.load(Ordering::Relaxed, guard);
            // SAFETY: each linked node holds one chain reference from `Arc::into_raw`, reached
            // once on this walk; `Document` handles hold their own references.
            unsafe { ChainRef(cur.as_raw()).release() };
            cur = next;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

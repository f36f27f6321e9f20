//! The timestamp oracle: the single serialization point of all commits.
//!
//! Load-bearing invariant (publication order): a commit installs every version it writes (and
//! publishes any catalog change) *before* it publishes its timestamp as visible, and it publishes
//! with Release. A reader that acquires visible timestamp `t` therefore finds every version with
//! `commit_ts <= t` already linked, and none of a later commit is visible to it, because those
//! carry timestamps greater than `t`. This is what makes every commit appear atomically.

use crossbeam_utils::CachePadded;

use crate::mvcc::Timestamp;
use crate::sync::{AtomicU64, Mutex, MutexGuard, Ordering};

/// Hands out commit timestamps and publishes them.
#[derive(Debug, Default)]
pub struct Oracle {
    /// Latest published commit timestamp. Written only by `CommitSlot::publish` (Release), while
    /// holding `commit_lock`; read by snapshots (Acquire), after which every version committed
    /// at or below it is reachable.
    /// Padded: every reader loads it, and the commit lock beside it is written twice per commit.
    visible: CachePadded<AtomicU64>,
    /// Serializes committers: validation, installation and publication of one commit happen
    /// while holding it; it holds the last published timestamp, so committers never read
    /// `visible`. Readers never take it.
    commit_lock: CachePadded<Mutex<Timestamp>>,
    /// The last timestamp installed, published or not. Written under `commit_lock` by
    /// `install_unpublished` (Relaxed); read by `Database::transaction`'s retry loop (Relaxed),
    /// which waits for `visible` to reach it so a retry's snapshot sees the commit it lost to.
    installed: AtomicU64,
}

/// The right to commit at `ts()`, held by exactly one committer at a time.
///
/// Dropping it without `publish` abandons the commit; the committer must then have installed
/// nothing, because the next commit reuses the same timestamp.
#[derive(Debug)]
#[must_use = "a commit slot does nothing until published"]
pub struct CommitSlot<'a> {
    oracle: &'a Oracle,
    ts: Timestamp,
    last: MutexGuard<'a, Timestamp>,
}

impl Oracle {
    /// An oracle at timestamp zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest published commit timestamp.
    pub fn visible(&self) -> Timestamp {
        Timestamp(self.visible.load(Ordering::Acquire))
    }

    /// Sets both the last and the visible timestamp to `ts` (open, after recovery, before any
    /// handle exists).
    pub fn recover(&self, ts: Timestamp) {
        *self.commit_lock.lock() = ts;
        self.visible.store(ts.0, Ordering::Release);
    }

    /// Publishes `ts`, a commit installed earlier by `CommitSlot::install_unpublished`, once it
    /// is durable. Called by one WAL leader at a time, in timestamp order, so `visible` only
    /// grows; Release pairs with the readers' Acquire exactly as `CommitSlot::publish` does.
    pub fn publish_durable(&self, ts: Timestamp) {
        self.visible.fetch_max(ts.0, Ordering::Release);
    }

    /// The last commit installed, which may not be visible yet (it waits for its sync).
    #[cfg(not(loom))]
    pub fn installed(&self) -> Timestamp {
        Timestamp(self.installed.load(Ordering::Relaxed))
    }

    /// Waits for the commit lock and returns the slot for the next commit.
    pub fn begin_commit(&self) -> CommitSlot<'_> {
        let last = self.commit_lock.lock();
        let ts = last.next();
        CommitSlot {
            oracle: self,
            ts,
            last,
        }
    }
}

impl CommitSlot<'_> {
    /// The timestamp this commit will carry.
    pub fn ts(&self) -> Timestamp {
        self.ts
    }

    /// Ends the commit without making it visible: later commits are ordered after it and see
    /// its versions when they validate, but readers do not, until the WAL leader that makes it
    /// durable calls `Oracle::publish_durable`. Everything it installed must already be linked.
    pub fn install_unpublished(mut self) {
        *self.last = self.ts;
        self.oracle.installed.store(self.ts.0, Ordering::Relaxed);
    }

    /// Makes the commit visible. Everything it installed must already be linked.
    pub fn publish(mut self) {
        *self.last = self.ts;
        self.oracle.visible.store(self.ts.0, Ordering::Release);
    }
}

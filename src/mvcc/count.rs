//! `CountHistory`: a counter's value after each of its last few changes, by commit timestamp,
//! so a snapshot can read what the counter was at its own timestamp.
//!
//! The collection store keeps its live-document count here (`catalog.rs`), which lets `len` at
//! a recent snapshot answer without walking the collection even while newer commits are
//! installed ahead of their publication (`Durability::Immediate`).

use std::collections::VecDeque;

use crate::mvcc::Timestamp;
use crate::sync::Mutex;

/// How many changes back a history reaches. A snapshot older than that many changes of the
/// counter gets no answer, and its caller counts another way.
pub(crate) const DEPTH: usize = 64;

/// The value after each of the last [`DEPTH`] changes, oldest first.
#[derive(Debug, Default)]
pub(crate) struct CountHistory {
    /// `(commit timestamp, value after that commit)`, in timestamp order. Written by the commit
    /// path under the commit lock; read by `at`. The lock is held for a push or a binary search,
    /// so a committer never waits long for a reader.
    changes: Mutex<VecDeque<(u64, u64)>>,
}

impl CountHistory {
    /// Records that commit `ts` left the counter at `value`. Called in timestamp order, by every
    /// commit that changes the counter, once its change is complete and before the commit is
    /// published.
    pub(crate) fn record(&self, ts: Timestamp, value: u64) {
        let mut changes = self.changes.lock();
        if changes.len() == DEPTH {
            changes.pop_front();
        }
        changes.push_back((ts.0, value));
    }

    /// The counter at `ts`: the value after the newest recorded change at or before `ts`.
    /// `None` if every recorded change is newer than `ts`: the history does not reach back
    /// that far (or nothing has been recorded since the database was opened).
    ///
    /// Exact because every change is recorded before its commit is published: a change at or
    /// before a published `ts` is already here, and none after the one found is at or before
    /// `ts`.
    pub(crate) fn at(&self, ts: Timestamp) -> Option<u64> {
        let changes = self.changes.lock();
        let newer = changes.partition_point(|&(t, _)| t <= ts.0);
        let (_, value) = changes.get(newer.checked_sub(1)?)?;
        Some(*value)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn answers_from_the_newest_change_at_or_before_the_timestamp() {
        let h = CountHistory::default();
        assert_eq!(h.at(Timestamp(5)), None);
        h.record(Timestamp(3), 10);
        h.record(Timestamp(7), 11);
        assert_eq!(h.at(Timestamp(2)), None, "older than anything recorded");
        assert_eq!(h.at(Timestamp(3)), Some(10));
        assert_eq!(h.at(Timestamp(6)), Some(10));
        assert_eq!(h.at(Timestamp(7)), Some(11));
        assert_eq!(h.at(Timestamp(100)), Some(11));
    }

    #[test]
    fn forgets_all_but_the_last_depth_changes() {
        let h = CountHistory::default();
        let depth = u64::try_from(DEPTH).unwrap_or(u64::MAX);
        for ts in 1..=depth + 1 {
            h.record(Timestamp(ts), ts * 2);
        }
        assert_eq!(h.at(Timestamp(1)), None, "the first change was forgotten");
        assert_eq!(h.at(Timestamp(2)), Some(4));
        assert_eq!(h.at(Timestamp(depth + 1)), Some((depth + 1) * 2));
    }
}

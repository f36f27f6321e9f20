//! Point-in-time counters reported by `Database::stats` and `Database::gc`.

use crate::mvcc::Timestamp;

/// Database counters, read without stopping readers or writers (each counter is exact, but
/// they are not read at one instant).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Collections that exist at the latest commit.
    pub collections: usize,
    /// Live documents at the latest commit, over all collections.
    pub documents: u64,
    /// Versions held in memory, including superseded versions and tombstones that some open
    /// snapshot may still need, and those of dropped collections not yet retired.
    pub versions: u64,
    /// Versions beyond one per live document: superseded versions and tombstones. GC frees each
    /// of them once no open snapshot can see it.
    pub reclaimable_versions: u64,
    /// Versions unlinked and freed by GC since the database was opened.
    pub reclaimed_versions: u64,
    /// Snapshots (including those of open transactions) currently registered.
    pub open_snapshots: usize,
    /// Timestamp of the latest commit.
    pub last_commit_ts: Timestamp,
}

/// What one GC pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct GcReport {
    /// The low watermark the pass used: the oldest open snapshot, or the latest commit.
    pub watermark: Timestamp,
    /// Versions unlinked and handed to the epoch collector.
    pub versions_reclaimed: u64,
    /// Dropped collections whose memory was released.
    pub collections_retired: usize,
}

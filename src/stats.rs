//! Point-in-time counters reported by `Database::stats` and `Database::gc`.

use crate::mvcc::Timestamp;
use crate::options::CompactionProgress;

/// Database counters, read without stopping readers or writers (each counter is exact, but
/// they are not read at one instant).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
    /// Bytes in the WAL segments (0 in memory).
    pub wal_bytes: u64,
    /// Bytes in the data files (0 in memory).
    pub data_bytes: u64,
    /// Bytes of the data files holding the newest version of a live document, as of the last
    /// checkpoint: what a fully compacted data file would hold, less its headers.
    pub live_bytes: u64,
    /// `data_bytes - live_bytes`: superseded versions, deletions and dropped collections that
    /// compaction reclaims.
    pub reclaimable_bytes: u64,
    /// Timestamp up to which the data files hold every commit, if a checkpoint was ever taken.
    pub last_checkpoint: Option<Timestamp>,
    /// Compactions run since open.
    pub compactions: u64,
    /// Bytes reclaimed by compaction since open.
    pub bytes_reclaimed: u64,
    /// Progress of the compaction running now, if any.
    pub compaction_progress: Option<CompactionProgress>,
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
    /// Version chains the pass looked at: those written to since they were last settled, or
    /// every chain of a collection where most were (then a walk is cheaper than lookups).
    pub chains_visited: u64,
}

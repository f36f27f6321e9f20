//! Configuration of a database, set through `DatabaseBuilder`.

use std::time::Duration;

use crate::document::DEFAULT_MAX_DOCUMENT_SIZE;

/// When old versions are reclaimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GcPolicy {
    /// A background thread runs a GC pass every `interval` when there may be work; `gc()` can
    /// still be called at any time. The versions a background pass unlinks are freed by the
    /// commits that follow it, a few per document written, so a writer pays for its own garbage
    /// and readers keep their CPU; once writes stop, the next pass frees the rest.
    Background {
        /// Time between passes.
        interval: Duration,
    },
    /// Only explicit `Database::gc` calls reclaim versions.
    Manual,
}

impl Default for GcPolicy {
    fn default() -> Self {
        GcPolicy::Background {
            interval: Duration::from_millis(500),
        }
    }
}

/// When a commit of a database opened on a directory reaches stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `commit` returns only after its WAL record is synced. Concurrent committers share one
    /// sync (group commit).
    #[default]
    Immediate,
    /// `commit` returns at once; a background thread writes and syncs the WAL every interval. A
    /// crash loses at most the commits of the last interval (plus the one sync in progress),
    /// never part of a transaction.
    Periodic(Duration),
    /// `commit` returns once its record is written to the operating system (no sync), which
    /// decides when it reaches the disk; concurrent committers share one write. A process crash loses nothing; a power failure can lose any
    /// commit since the last checkpoint or close, and can leave the WAL in a state that open
    /// reports as damaged.
    None,
}

/// When the data files are compacted automatically.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum AutoCompaction {
    /// Compact once the bytes the data files hold for superseded versions and deletions reach
    /// both `min_bytes` and `min_ratio` of the data files' size.
    Threshold {
        /// Reclaimable bytes needed before compacting.
        min_bytes: u64,
        /// Reclaimable fraction of the data files needed before compacting (0.0 to 1.0).
        min_ratio: f64,
    },
    /// Only `Database::compact` compacts.
    Off,
}

impl Default for AutoCompaction {
    fn default() -> Self {
        AutoCompaction::Threshold {
            min_bytes: 1 << 20,
            min_ratio: 0.2,
        }
    }
}

/// When a checkpoint is taken automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckpointPolicy {
    /// WAL bytes since the last checkpoint that trigger one.
    pub(crate) wal_bytes: u64,
    /// Time since the last checkpoint, with any commit since, that triggers one.
    pub(crate) interval: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            wal_bytes: 64 << 20,
            interval: Duration::from_secs(60),
        }
    }
}

/// Progress of a running compaction, reported to the callback set with
/// `DatabaseBuilder::on_compaction_progress` and through `Stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CompactionProgress {
    /// Bytes of the old data files read so far.
    pub bytes_read: u64,
    /// Bytes of the old data files in all.
    pub bytes_total: u64,
    /// Bytes written to the new data file so far.
    pub bytes_written: u64,
}

/// The compaction progress callback.
pub(crate) type ProgressFn = crate::sync::PayloadArc<dyn Fn(CompactionProgress) + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Options {
    pub(crate) max_document_size: usize,
    pub(crate) gc: GcPolicy,
    pub(crate) durability: Durability,
    pub(crate) checkpoint: CheckpointPolicy,
    pub(crate) compaction: AutoCompaction,
    pub(crate) on_progress: Option<ProgressFn>,
    /// WAL segments are sealed past this size.
    #[cfg_attr(loom, allow(dead_code, reason = "the WAL is not built under loom"))]
    pub(crate) wal_segment_bytes: u64,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("max_document_size", &self.max_document_size)
            .field("gc", &self.gc)
            .field("durability", &self.durability)
            .field("checkpoint", &self.checkpoint)
            .field("compaction", &self.compaction)
            .field("on_progress", &self.on_progress.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_document_size: DEFAULT_MAX_DOCUMENT_SIZE,
            gc: GcPolicy::default(),
            durability: Durability::default(),
            checkpoint: CheckpointPolicy::default(),
            compaction: AutoCompaction::default(),
            on_progress: None,
            wal_segment_bytes: 64 << 20,
        }
    }
}

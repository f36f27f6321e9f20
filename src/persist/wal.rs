//! The WAL writer of a database: group commit (`wal::group`) over `storage::segment_log`.
//!
//! One frame per sync is what makes every crash recoverable: `segment_log` may lose or tear
//! only the frame appended since the last successful sync, which it truncates as a torn tail.
//! A frame holds whole commit records (`wal::batch`), so a commit is recovered whole or not at
//! all.

use crate::error::{Error, Result};
use crate::storage::segment_log::{frame_len, LogError, SegmentLog};
use crate::wal::batch::frame_chunks;
use crate::wal::group::{GroupCommit, GroupLog};

/// The WAL of an open database.
pub(crate) type Wal = GroupCommit<SegmentLog>;

impl GroupLog for SegmentLog {
    /// Appends the group as one frame, or, if it is larger than a frame, as several frames
    /// split at record boundaries, each synced before the next is appended: at most one frame
    /// is ever un-synced.
    fn write_group(&mut self, group: &[u8], sync: bool, written: &mut u64) -> Result<()> {
        for chunk in frame_chunks(group) {
            self.append(chunk).map_err(log_error)?;
            *written += frame_len(chunk.len());
            if sync {
                self.sync().map_err(log_error)?;
            }
        }
        if sync && group.is_empty() {
            self.sync().map_err(log_error)?;
        }
        Ok(())
    }

    fn disk_bytes(&self) -> u64 {
        SegmentLog::disk_bytes(self)
    }
}

/// Converts a log error into the crate's error.
pub(crate) fn log_error(e: LogError) -> Error {
    match e {
        LogError::Corrupt {
            path,
            offset,
            reason,
        } => Error::Corrupt {
            path,
            offset: Some(offset),
            reason: reason.to_owned(),
        },
        LogError::PayloadTooLarge { len, max } => Error::DocumentTooLarge {
            size: len,
            max: max as usize,
        },
        LogError::Io { op, path, source } => Error::io(format!("{op} {}", path.display()), &source),
        LogError::Poisoned => Error::Poisoned {
            cause: "an earlier write to the log failed".to_owned(),
        },
    }
}

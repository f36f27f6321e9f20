//! Multi-version concurrency control: timestamps, the one visibility rule, per-document version
//! chains and the registry of open snapshots that bounds garbage collection.
//!
//! Knows nothing about collections, transactions or files.

pub(crate) mod chain;
pub(crate) mod count;
pub(crate) mod registry;
pub(crate) mod version;

use std::fmt;

/// A commit timestamp. Commits are numbered 1, 2, 3, …; a snapshot at `t` sees exactly the
/// commits numbered `t` and below. `Timestamp(0)` is the empty database before any commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub(crate) u64);

impl Timestamp {
    /// The timestamp of an empty database, before any commit.
    pub const ZERO: Timestamp = Timestamp(0);

    /// The raw number.
    pub fn get(self) -> u64 {
        self.0
    }

    pub(crate) fn next(self) -> Timestamp {
        Timestamp(self.0 + 1)
    }
}

impl From<u64> for Timestamp {
    fn from(raw: u64) -> Self {
        Timestamp(raw)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// THE visibility rule: a version committed at `version_ts` is visible to a snapshot taken at
/// `snapshot_ts` iff it committed at or before it. Every read path goes through this function.
#[inline]
pub(crate) fn is_visible(version_ts: Timestamp, snapshot_ts: Timestamp) -> bool {
    version_ts <= snapshot_ts
}

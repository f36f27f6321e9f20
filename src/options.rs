//! Configuration of a database, set through `DatabaseBuilder`.

use std::time::Duration;

use crate::document::DEFAULT_MAX_DOCUMENT_SIZE;

/// When old versions are reclaimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GcPolicy {
    /// A background thread runs a GC pass every `interval` when there may be work; `gc()` can
    /// still be called at any time.
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

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) max_document_size: usize,
    pub(crate) gc: GcPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_document_size: DEFAULT_MAX_DOCUMENT_SIZE,
            gc: GcPolicy::default(),
        }
    }
}

//! Errors of the run files.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Why a run could not be written, read or merged.
#[derive(Debug)]
#[non_exhaustive]
pub(crate) enum RunError {
    /// The run is damaged: its data cannot be trusted, and nothing is guessed.
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Offset in it of the damaged header field or frame.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// The run was written by a newer snapbase in a format this build cannot read.
    NewerFormat {
        /// The run file.
        path: PathBuf,
        /// The format it declares.
        found: u32,
        /// The newest format this build reads ([`RUN_FORMAT`](crate::persist::run::RUN_FORMAT)).
        supported: u32,
    },
    /// A writer was given a key not above the previous one: a bug in the caller. Nothing was
    /// written for that entry, and the writer can still be used.
    OutOfOrder {
        /// The run being written.
        path: PathBuf,
    },
    /// A writer was given an entry too large for one frame. Nothing was written for it, and
    /// the writer can still be used.
    EntryTooLarge {
        /// The run being written.
        path: PathBuf,
        /// The entry's encoded length in bytes (at least; counting stops at the body).
        len: usize,
        /// The maximum in bytes.
        max: u32,
    },
    /// An earlier error stopped the writer, reader or merge; it cannot go on. A run whose
    /// writer stopped is incomplete and must be discarded.
    Stopped {
        /// The run file.
        path: PathBuf,
    },
    /// A file operation failed.
    Io {
        /// What was being done, as a gerund phrase ("syncing", "creating").
        op: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Corrupt {
                path,
                offset,
                reason,
            } => write!(
                f,
                "the data file {} is damaged at byte {offset} ({reason}); the database cannot \
                 be opened safely, restore it from a backup",
                path.display()
            ),
            Self::NewerFormat {
                path,
                found,
                supported,
            } => write!(
                f,
                "the data file {} was written by a newer snapbase (format {found}, this build \
                 reads up to {supported}); upgrade snapbase to open the database",
                path.display()
            ),
            Self::OutOfOrder { path } => write!(
                f,
                "an entry for the data file {} was not above the previous one in key order; \
                 this is a bug in snapbase, and the entry was not written",
                path.display()
            ),
            Self::EntryTooLarge { path, len, max } => write!(
                f,
                "an entry of {len} bytes cannot be written to the data file {}: the maximum is \
                 {max} bytes",
                path.display()
            ),
            Self::Stopped { path } => write!(
                f,
                "an earlier error stopped work on the data file {}; it cannot be used further",
                path.display()
            ),
            Self::Io { op, path, source } => {
                write!(f, "{op} {} failed: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Corrupt { .. }
            | Self::NewerFormat { .. }
            | Self::OutOfOrder { .. }
            | Self::EntryTooLarge { .. }
            | Self::Stopped { .. } => None,
        }
    }
}

impl RunError {
    /// The run file the error is about.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Self::Corrupt { path, .. }
            | Self::NewerFormat { path, .. }
            | Self::OutOfOrder { path }
            | Self::EntryTooLarge { path, .. }
            | Self::Stopped { path }
            | Self::Io { path, .. } => path,
        }
    }
}

/// Converts a run error into the crate's error, at the boundary of the persistence layer.
pub(crate) fn to_error(e: RunError) -> Error {
    match e {
        RunError::Corrupt {
            path,
            offset,
            reason,
        } => Error::Corrupt {
            path,
            offset: Some(offset),
            reason,
        },
        RunError::NewerFormat {
            path,
            found,
            supported,
        } => Error::NewerFormat {
            path,
            found,
            supported,
        },
        RunError::EntryTooLarge { len, max, .. } => Error::DocumentTooLarge {
            size: len,
            max: usize::try_from(max).unwrap_or(usize::MAX),
        },
        RunError::Io { op, path, source } => Error::io(format!("{op} {}", path.display()), &source),
        // A writer stops only after a write or sync failed; a reader or merge only after an
        // error its caller has already been given.
        e @ RunError::Stopped { .. } => Error::Poisoned {
            cause: e.to_string(),
        },
        // A bug in the caller, not a fault of the disk: reported with its full sentence.
        e @ RunError::OutOfOrder { .. } => Error::io(
            format!("writing {}", e.path().display()),
            &io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
        ),
    }
}

/// Wraps an I/O error with what was being done to which file.
pub(super) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> RunError + 'a {
    move |source| RunError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Builds a [`RunError::Corrupt`].
pub(super) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> RunError {
    RunError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

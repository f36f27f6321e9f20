//! The directory lock: one open database per directory, across processes and within one.
//!
//! [`DirLock::acquire`] takes an exclusive lock on the file `LOCK` in the database directory
//! through [`Vfs::lock_exclusive`] (`File::try_lock` on the real file system, which locks the
//! open file description, so a second open in the same process is refused too). The lock is
//! advisory and never waits: a second opener gets [`LockError::Locked`] at once. Dropping the
//! [`DirLock`] releases it; so does the death of the process, so a crash never leaves a stale
//! lock behind. The file itself stays: its presence means nothing.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::storage::vfs::{Vfs, VfsLock};

/// The name of the lock file inside a database directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// How long a held lock is retried before `DirLock::acquire` reports `Locked`.
pub(crate) const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// An exclusive hold on a database directory, released on drop.
#[derive(Debug)]
pub(crate) struct DirLock {
    dir: PathBuf,
    _guard: Box<dyn VfsLock>,
}

impl DirLock {
    /// Locks `dir` (which must exist) by locking `dir/LOCK`, creating that file if it is
    /// missing. Fails with [`LockError::Locked`] if another process, or another handle in this
    /// one, holds the lock.
    ///
    /// A refusal is retried for up to [`LOCK_RETRY`] before it is reported. An `flock` belongs
    /// to the open file, and a process that any thread forks shares the lock file's descriptor
    /// until it execs (close-on-exec acts only then): a `close` that lands in that window leaves
    /// the lock held for a moment longer, and an immediate reopen would wrongly be refused.
    pub(crate) fn acquire(vfs: &dyn Vfs, dir: &Path) -> Result<DirLock, LockError> {
        let deadline = std::time::Instant::now() + LOCK_RETRY;
        loop {
            match vfs.lock_exclusive(&dir.join(LOCK_FILE)) {
                Ok(guard) => {
                    return Ok(DirLock {
                        dir: dir.to_path_buf(),
                        _guard: guard,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if std::time::Instant::now() >= deadline {
                        return Err(LockError::Locked {
                            dir: dir.to_path_buf(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(source) => {
                    return Err(LockError::Io {
                        dir: dir.to_path_buf(),
                        source,
                    })
                }
            }
        }
    }

    /// The locked directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Why a database directory could not be locked.
#[derive(Debug)]
#[non_exhaustive]
pub enum LockError {
    /// Another process, or another open handle in this process, holds the lock.
    Locked {
        /// The database directory.
        dir: PathBuf,
    },
    /// The lock file could not be created, opened or locked.
    Io {
        /// The database directory.
        dir: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Locked { dir } => write!(
                f,
                "the database at {} is locked by another process or another open handle in \
                 this process; close it first",
                dir.display()
            ),
            Self::Io { dir, source } => write!(
                f,
                "could not lock the database at {} (through its {LOCK_FILE} file): {source}",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Locked { .. } => None,
            Self::Io { source, .. } => Some(source),
        }
    }
}

#[cfg(test)]
mod tests;

//! The I/O seam: every file operation of the durability layer goes through [`Vfs`] and
//! [`VfsFile`], so that tests can swap the real file system (`std_fs`) for one that loses
//! un-synced data and injects faults (`sim_fs`).
//!
//! The traits promise only what a POSIX file system promises after a power loss, and the
//! simulator models exactly that promise, nothing kinder:
//!
//! - Bytes written by [`VfsFile::append`] and length changes by [`VfsFile::set_len`] are durable
//!   only once a later [`VfsFile::sync_data`] or [`VfsFile::sync_all`] of that file returns
//!   `Ok`. Until then a crash may keep, drop, tear or garble each of them.
//! - A file's *name* is a directory entry. Creating, renaming or removing a file is durable only
//!   once a later [`Vfs::sync_dir`] of its directory returns `Ok`; syncing the file itself does
//!   not make its name durable.
//! - A failed sync guarantees nothing, not even that retrying it will help: the kernel may have
//!   dropped the dirty pages and report success next time (fsyncgate). Callers must treat any
//!   sync error as fatal for the writer.
//!
//! Files are append-only: appends are the only writes, and `set_len` only truncates a torn tail
//! (or extends with zeros). This keeps the crash model small: un-synced data is always at the
//! end of a file.

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};

/// How [`Vfs::open`] treats an existing or a missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Creates the file; fails with `AlreadyExists` if it exists.
    CreateNew,
    /// Opens the file, creating it empty if it is missing.
    OpenOrCreate,
    /// Opens the file; fails with `NotFound` if it is missing.
    Existing,
}

/// A file system: the directory operations of the durability layer.
///
/// Paths are used as given; implementations do not normalize them.
pub trait Vfs: Send + Sync + Debug {
    /// Opens `path` for reading and appending. Creating a file adds a directory entry, which is
    /// durable only after [`Vfs::sync_dir`] of its parent.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>>;

    /// Renames `from` to `to`, atomically replacing `to` if it exists: after a crash `to` names
    /// either its old file or the new one, never neither. Durable only after [`Vfs::sync_dir`]
    /// of the directory; until then a crash may revert it.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes the file `path`. Open handles keep working on the unlinked file. Durable only
    /// after [`Vfs::sync_dir`] of its directory; until then a crash may bring the file back.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Makes every create, rename and remove of an entry in `dir` so far durable (`fsync` on the
    /// directory). Says nothing about the contents of the files in it.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// The names (not full paths) of the regular files in `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;

    /// Creates `dir` and its missing ancestors.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Whether a file or directory exists at `path` now (not necessarily durably).
    fn exists(&self, path: &Path) -> bool;

    /// Takes an exclusive advisory lock on the file `path`, creating it empty if it is missing
    /// (like [`OpenMode::OpenOrCreate`], the new name is durable only after [`Vfs::sync_dir`]).
    /// The lock is held until the returned guard is dropped, or the process dies.
    ///
    /// Never waits: fails with `io::ErrorKind::WouldBlock` if another holder has the lock,
    /// whether another process or another guard in this one.
    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn VfsLock>>;
}

/// A held lock from [`Vfs::lock_exclusive`]; dropping it releases the lock.
pub trait VfsLock: Send + Sync + Debug {}

/// An open file: positional reads, appends, positional writes, truncation and the two syncs.
pub trait VfsFile: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `offset`, returning how many were read (0 at or past
    /// the end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Fills `buf` from `offset`, failing with `UnexpectedEof` if the file ends first.
    fn read_exact_at(&self, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(offset, buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file ended before the requested range",
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += to_u64(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Appends `data` at the end of the file and returns the offset it was written at. Not
    /// durable until a later sync of this file succeeds. On error, any prefix of `data` may
    /// have been written.
    fn append(&self, data: &[u8]) -> io::Result<u64>;

    /// Writes `data` at `offset`, over what is there and past the end if it reaches that far
    /// (a gap before `offset` reads as zeros). Not durable until a later sync of this file
    /// succeeds; on error, or in a crash before that sync, any prefix of `data` may have been
    /// written, like [`VfsFile::append`].
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// The current length in bytes (including un-synced appends).
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Truncates (or zero-extends) the file to `len` bytes. Not durable until a later sync of
    /// this file succeeds.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// `fdatasync`: once it returns `Ok`, every byte appended and every length change made so
    /// far is durable, including the file size needed to read them back. The file's name is
    /// not (see [`Vfs::sync_dir`]). On error nothing is promised, and a retry that succeeds
    /// proves nothing either.
    fn sync_data(&self) -> io::Result<()>;

    /// `fsync`: [`VfsFile::sync_data`] plus the rest of the file's metadata (timestamps,
    /// permissions). For crash consistency the two are equivalent; the simulator treats them
    /// the same way.
    fn sync_all(&self) -> io::Result<()>;
}

/// Widens a buffer length or index to a file offset (usize is at most 64 bits on every target
/// we build for, so this never saturates in practice).
pub(crate) fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Sequential `Read` over a [`VfsFile`], from offset 0, for streaming readers of whole files.
#[derive(Debug)]
pub struct VfsReader {
    file: Box<dyn VfsFile>,
    offset: u64,
}

impl VfsReader {
    /// A reader at the start of `file`.
    pub fn new(file: Box<dyn VfsFile>) -> Self {
        Self { file, offset: 0 }
    }
}

impl io::Read for VfsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(self.offset, buf)?;
        self.offset += to_u64(n);
        Ok(n)
    }
}

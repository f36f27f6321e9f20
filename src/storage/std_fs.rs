//! The real [`Vfs`]: a thin layer over `std::fs`, the only implementation compiled into release
//! builds.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::storage::vfs::{OpenMode, Vfs, VfsFile, VfsLock};
use crate::sync::Mutex;

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

impl Vfs for StdFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let mut options = OpenOptions::new();
        // No O_APPEND: with it, Linux's `pwrite` ignores the offset, and `write_at` needs it.
        // Each file has one writing handle (the directory lock keeps other processes out), so
        // `append` finds the end from the file's length.
        options.read(true).write(true);
        match mode {
            OpenMode::CreateNew => options.create_new(true),
            OpenMode::OpenOrCreate => options.create(true),
            OpenMode::Existing => &mut options,
        };
        Ok(Box::new(StdFile {
            file: Mutex::new(options.open(path)?),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(PathBuf::from(entry.file_name()));
            }
        }
        names.sort();
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn VfsLock>> {
        // Write access is not needed for `flock`, but some platforms' locks require it.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(StdLock { _file: file })),
            Err(TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is locked by another holder", path.display()),
            )),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

/// A held exclusive lock: `File::try_lock` locks the open file description (`flock` on Linux),
/// so a second open of the same file conflicts even within this process, and closing the file
/// on drop releases the lock.
#[derive(Debug)]
struct StdLock {
    _file: File,
}

impl VfsLock for StdLock {}

/// An open file. The mutex makes "where the append landed" and the append itself one step, so
/// the returned offset is right even with concurrent appenders on this handle.
#[derive(Debug)]
struct StdFile {
    file: Mutex<File>,
}

impl VfsFile for StdFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file.lock().read_at(buf, offset)
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.lock().read_exact_at(buf, offset)
    }

    fn append(&self, data: &[u8]) -> io::Result<u64> {
        let file = self.file.lock();
        let offset = file.metadata()?.len();
        file.write_all_at(data, offset)?;
        Ok(offset)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.lock().write_all_at(data, offset)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.lock().metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.lock().set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.lock().sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.lock().sync_all()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::storage::temp_dir::TempDir;

    #[test]
    fn open_modes() {
        let dir = TempDir::new("stdfs-modes");
        let path = dir.0.join("a");
        assert!(!StdFs.exists(&path));
        let err = StdFs.open(&path, OpenMode::Existing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        StdFs.open(&path, OpenMode::CreateNew).unwrap();
        assert!(StdFs.exists(&path));
        let err = StdFs.open(&path, OpenMode::CreateNew).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        StdFs.open(&path, OpenMode::OpenOrCreate).unwrap();
        StdFs
            .open(&dir.0.join("b"), OpenMode::OpenOrCreate)
            .unwrap();
        assert!(StdFs.exists(&dir.0.join("b")));
    }

    #[test]
    fn append_read_truncate_sync() {
        let dir = TempDir::new("stdfs-append");
        let path = dir.0.join("log");
        let file = StdFs.open(&path, OpenMode::CreateNew).unwrap();
        assert!(file.is_empty().unwrap());
        assert_eq!(file.append(b"hello").unwrap(), 0);
        assert_eq!(file.append(b" world").unwrap(), 5);
        file.sync_data().unwrap();
        assert_eq!(file.len().unwrap(), 11);
        let mut buf = [0u8; 5];
        file.read_exact_at(6, &mut buf).unwrap();
        assert_eq!(&buf, b"world");
        assert_eq!(file.read_at(11, &mut buf).unwrap(), 0);
        let err = file.read_exact_at(8, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        file.set_len(5).unwrap();
        file.sync_all().unwrap();
        // Appends go to the new end after a truncation.
        assert_eq!(file.append(b"!").unwrap(), 5);
        drop(file);
        let again = StdFs.open(&path, OpenMode::Existing).unwrap();
        let mut all = vec![0u8; 6];
        again.read_exact_at(0, &mut all).unwrap();
        assert_eq!(all, b"hello!");
        // A second handle appends after the first handle's data.
        assert_eq!(again.append(b"?").unwrap(), 6);
    }

    #[test]
    fn rename_remove_list_sync_dir() {
        let dir = TempDir::new("stdfs-dirops");
        StdFs.create_dir_all(&dir.0.join("sub/deeper")).unwrap();
        for name in ["c", "a", "b"] {
            let f = StdFs.open(&dir.0.join(name), OpenMode::CreateNew).unwrap();
            f.append(name.as_bytes()).unwrap();
        }
        // Subdirectories are not files.
        let names = StdFs.list(&dir.0).unwrap();
        assert_eq!(names, ["a", "b", "c"].map(PathBuf::from));
        StdFs.rename(&dir.0.join("a"), &dir.0.join("b")).unwrap();
        let b = StdFs.open(&dir.0.join("b"), OpenMode::Existing).unwrap();
        let mut buf = [0u8; 1];
        b.read_exact_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"a");
        StdFs.remove(&dir.0.join("c")).unwrap();
        StdFs.sync_dir(&dir.0).unwrap();
        assert_eq!(StdFs.list(&dir.0).unwrap(), [PathBuf::from("b")]);
        assert_eq!(
            StdFs.remove(&dir.0.join("c")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(StdFs.sync_dir(&dir.0.join("missing")).is_err());
    }

    #[test]
    fn lock_exclusive_conflicts_within_the_process_and_releases_on_drop() {
        let dir = TempDir::new("stdfs-lock");
        let path = dir.0.join("LOCK");
        let held = StdFs.lock_exclusive(&path).unwrap();
        assert!(StdFs.exists(&path));
        // A separately opened file description of the same file does not get the lock either.
        let err = StdFs.lock_exclusive(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        // Another file is another lock.
        let other = StdFs.lock_exclusive(&dir.0.join("LOCK2")).unwrap();
        drop(held);
        let again = StdFs.lock_exclusive(&path).unwrap();
        drop((again, other));
        // A missing directory is an ordinary I/O error.
        let err = StdFs
            .lock_exclusive(&dir.0.join("missing/LOCK"))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}

//! The `Vfs` and `VfsFile` operations of the simulated file system, with fault injection.

use std::io;
use std::path::{Path, PathBuf};

use super::{
    crash, index, not_found, DirOp, FaultEffect, Inode, InodeId, OpKind, Pending, SimFs, State,
};
use crate::storage::vfs::{to_u64, OpenMode, Vfs, VfsFile, VfsLock};
use crate::sync::{Arc, Mutex};

impl Vfs for SimFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let inode = self.state.lock().open(path, mode)?;
        Ok(Box::new(SimFile {
            state: Arc::clone(&self.state),
            inode,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        if let Some(fault) = state.begin(Some(OpKind::Rename))? {
            return Err(fault.to_error());
        }
        let inode = *state.live.get(from).ok_or_else(|| not_found(from))?;
        let dir = state.dir_of(from)?;
        if state.dir_of(to)? != dir {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "simulated: renames across directories are not modelled",
            ));
        }
        if from == to {
            return Ok(());
        }
        if state.dirs.contains(to) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("simulated: {} is a directory", to.display()),
            ));
        }
        state.live.remove(from);
        state.live.insert(to.to_path_buf(), inode);
        let (from, to) = (from.to_path_buf(), to.to_path_buf());
        state.pending.push(Pending::Dir {
            dir,
            op: DirOp::Rename { from, to, inode },
        });
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        if let Some(fault) = state.begin(Some(OpKind::Remove))? {
            return Err(fault.to_error());
        }
        let inode = state.live.remove(path).ok_or_else(|| not_found(path))?;
        let dir = state.dir_of(path)?;
        let path = path.to_path_buf();
        state.pending.push(Pending::Dir {
            dir,
            op: DirOp::Remove { path, inode },
        });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        if let Some(fault) = state.begin(Some(OpKind::SyncDir))? {
            return Err(fault.to_error());
        }
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let (now_durable, still_pending) = std::mem::take(&mut state.pending)
            .into_iter()
            .partition(|p| matches!(p, Pending::Dir { dir: d, .. } if d == dir));
        state.pending = still_pending;
        for pending in now_durable {
            if let Pending::Dir { op, .. } = pending {
                op.apply(&mut state.durable);
            }
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let state = self.state.lock();
        state.alive()?;
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let mut names: Vec<PathBuf> = state
            .live
            .keys()
            .filter(|path| path.parent().unwrap_or(Path::new("")) == dir)
            .filter_map(|path| path.file_name().map(PathBuf::from))
            .collect();
        names.sort();
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        if let Some(fault) = state.begin(None)? {
            return Err(fault.to_error());
        }
        if let Some(file) = dir.ancestors().find(|a| state.live.contains_key(*a)) {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("simulated: {} is a file", file.display()),
            ));
        }
        for ancestor in dir.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    // Answers even after death: it has no way to report an error, and it changes nothing.
    fn exists(&self, path: &Path) -> bool {
        let state = self.state.lock();
        state.live.contains_key(path) || state.dirs.contains(path)
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn VfsLock>> {
        let mut state = self.state.lock();
        let inode = state.open(path, OpenMode::OpenOrCreate)?;
        // Like `flock`, the lock belongs to the file, not to its name.
        if !state.locks.insert(inode) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("simulated: {} is locked by another holder", path.display()),
            ));
        }
        Ok(Box::new(SimLock {
            state: Arc::clone(&self.state),
            inode,
        }))
    }
}

impl State {
    /// [`Vfs::open`] without the handle: counts the operation, applies faults, creates the file
    /// if `mode` asks for it, and returns its inode.
    fn open(&mut self, path: &Path, mode: OpenMode) -> io::Result<InodeId> {
        if let Some(fault) = self.begin(Some(OpKind::Open))? {
            return Err(fault.to_error());
        }
        let dir = self.dir_of(path)?;
        if self.dirs.contains(path) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("simulated: {} is a directory", path.display()),
            ));
        }
        match (self.live.get(path).copied(), mode) {
            (Some(_), OpenMode::CreateNew) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("simulated: {} already exists", path.display()),
            )),
            (Some(inode), _) => Ok(inode),
            (None, OpenMode::Existing) => Err(not_found(path)),
            (None, OpenMode::CreateNew | OpenMode::OpenOrCreate) => {
                let inode = self.next_inode;
                self.next_inode += 1;
                self.inodes.insert(inode, Inode::default());
                self.live.insert(path.to_path_buf(), inode);
                let path = path.to_path_buf();
                self.pending.push(Pending::Dir {
                    dir,
                    op: DirOp::Create { path, inode },
                });
                Ok(inode)
            }
        }
    }
}

/// A held simulated lock. Dropping it releases the lock in the file system it was taken in
/// (even after simulated process death: the crash image starts with no locks anyway).
#[derive(Debug)]
struct SimLock {
    state: Arc<Mutex<State>>,
    inode: InodeId,
}

impl VfsLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.state.lock().locks.remove(&self.inode);
    }
}

/// An open simulated file: a handle on an inode, which outlives its name.
#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    inode: InodeId,
}

impl SimFile {
    fn sync(&self) -> io::Result<()> {
        let mut state = self.state.lock();
        let fault = state.begin(Some(OpKind::Sync))?;
        let inode = state.inode(self.inode);
        match fault {
            None => inode.durable = Arc::clone(&inode.live),
            Some(f) if f.effect == FaultEffect::LyingPageCache => {
                inode.live = Arc::clone(&inode.durable);
            }
            Some(f) => return Err(f.to_error()),
        }
        state.settle(self.inode);
        fault.map_or(Ok(()), |f| Err(f.to_error()))
    }
}

impl SimFile {
    /// A write at `offset`, or at the end: applied to the live image at once, pending for the
    /// durable one until a sync. Returns where it went.
    fn write(&self, offset: Option<usize>, data: &[u8]) -> io::Result<u64> {
        let mut state = self.state.lock();
        let fault = state.begin(Some(OpKind::Write))?;
        let written = match fault {
            None => data,
            Some(f) if f.effect == FaultEffect::ShortWrite => &data[..data.len() / 2],
            Some(_) => &[],
        };
        let live = Arc::make_mut(&mut state.inode(self.inode).live);
        let offset = offset.unwrap_or(live.len());
        crash::write_at(live, offset, written);
        if !written.is_empty() {
            state.pending.push(Pending::Append {
                inode: self.inode,
                offset,
                data: Arc::from(written),
            });
        }
        fault.map_or(Ok(to_u64(offset)), |f| Err(f.to_error()))
    }
}

impl VfsFile for SimFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut state = self.state.lock();
        state.alive()?;
        let live = &state.inode(self.inode).live;
        let start = index(offset)?.min(live.len());
        let n = buf.len().min(live.len() - start);
        buf[..n].copy_from_slice(&live[start..start + n]);
        Ok(n)
    }

    fn append(&self, data: &[u8]) -> io::Result<u64> {
        self.write(None, data)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.write(Some(index(offset)?), data).map(drop)
    }

    fn len(&self) -> io::Result<u64> {
        let mut state = self.state.lock();
        state.alive()?;
        Ok(to_u64(state.inode(self.inode).live.len()))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = index(len)?;
        let mut state = self.state.lock();
        if let Some(fault) = state.begin(Some(OpKind::SetLen))? {
            return Err(fault.to_error());
        }
        Arc::make_mut(&mut state.inode(self.inode).live).resize(len, 0);
        state.pending.push(Pending::SetLen {
            inode: self.inode,
            len,
        });
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }
}

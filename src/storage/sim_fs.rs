//! `SimFs`: an in-memory [`Vfs`](crate::storage::vfs::Vfs) that models what a power loss leaves
//! on disk, and injects I/O errors, for crash and fault tests (RELIABILITY.md 1.4).
//!
//! Model. Files are inodes with a *live* image (what reads see) and a *durable* image (what
//! survives a power loss). Names map to inodes twice as well: the live namespace and the durable
//! one. Every change that is not yet durable is also recorded, in order, in one pending list:
//! appends and truncations, made durable by a sync of their file (the `RocksDB` fault FS's
//! `DropUnsyncedFileData`), and creates, renames and removes, made durable by `sync_dir` of
//! their directory (its `DeleteFilesCreatedAfterLastDirSync`). [`SimFs::crash`] turns durable
//! state plus some choice of pending operations into a new file system, like SQLite's crash VFS
//! (`test6.c`) and redb's crash backend.
//!
//! Simplifications. Harsher than a journaling file system: a crash treats each pending
//! operation independently (no journal ordering), except in `CrashMode::InOrder`. Kinder than
//! real disks, so the engine must not rely on them: directories are durable as soon as they are
//! created, and garbling is clipped to the bytes of the garbled append (a torn sector never
//! damages data an earlier sync made durable). Renames must stay within one directory: the
//! engine needs no more, and a cross-directory rename would need two directory syncs to model.
//!
//! Faults ([`SimFs::inject`]) and process death ([`SimFs::fail_after`]) count operations that can
//! change state: open (and `lock_exclusive`, which opens its lock file), append, `set_len`,
//! syncs, rename, remove, `sync_dir` and `create_dir_all`. Reads cannot change a crash image, so counting them would only multiply
//! crash points without adding new images; once the process is dead they fail too.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use crate::sync::{Arc, Mutex};

mod crash;
mod ops;
#[cfg(test)]
mod tests;

use crash::{Fate, SplitMix64};

/// Torn writes garble whole sectors, the unit a disk writes atomically (or not at all).
const SECTOR: usize = 512;

/// Which pending operations a crash keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Only durable state survives; every pending operation is lost. Deterministic.
    DropUnsynced,
    /// Each pending append is independently kept, dropped, torn (a random-length prefix kept)
    /// or garbled (some of its 512-byte sectors replaced by random bytes); each pending
    /// truncation, create, rename and remove is independently kept or reverted.
    Random,
    /// A random prefix of the pending operations, in order, survives; the last one, if an
    /// append, may be torn. Models a file system that persists operations in issue order.
    InOrder,
}

/// The kind of operation a [`Fault`] targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// [`Vfs::open`], with or without creating the file, and [`Vfs::lock_exclusive`].
    Open,
    /// [`VfsFile::append`].
    Write,
    /// [`VfsFile::set_len`].
    SetLen,
    /// [`VfsFile::sync_data`] and [`VfsFile::sync_all`].
    Sync,
    /// [`Vfs::rename`].
    Rename,
    /// [`Vfs::remove`].
    Remove,
    /// [`Vfs::sync_dir`].
    SyncDir,
}

/// The error an injected fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultError {
    /// An I/O error (`EIO`), reported as `io::ErrorKind::Other`.
    Eio,
    /// No space left on the device (`ENOSPC`), reported as `io::ErrorKind::StorageFull`.
    Enospc,
}

/// Whether a fault fires once or keeps firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Fails only the targeted operation (a transient error).
    Once,
    /// Fails the targeted operation and every later one of the same kind.
    Always,
}

/// What a failed operation leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultEffect {
    /// The operation changes nothing: a failed append writes nothing, a failed sync leaves the
    /// file's data live but un-synced (a later successful sync makes it durable).
    Clean,
    /// A failed append writes the first half of its data (un-synced) before failing. Other
    /// operations behave as `Clean`.
    ShortWrite,
    /// A failed sync discards the file's un-synced data from the live image too, so the next
    /// sync has nothing to write and reports success (fsyncgate, RELIABILITY.md 1.2). Other
    /// operations behave as `Clean`.
    LyingPageCache,
}

/// An injected I/O error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The operation kind that fails.
    pub op: OpKind,
    /// How many operations of that kind succeed first: 0 fails the very next one.
    pub nth: u64,
    /// The error returned.
    pub error: FaultError,
    /// Once or for good.
    pub persistence: Persistence,
    /// What the failed operation leaves behind.
    pub effect: FaultEffect,
}

impl Fault {
    /// An `EIO` on the `nth` (0-based) next operation of kind `op`, once, changing nothing.
    pub fn new(op: OpKind, nth: u64) -> Self {
        Self {
            op,
            nth,
            error: FaultError::Eio,
            persistence: Persistence::Once,
            effect: FaultEffect::Clean,
        }
    }

    fn to_error(self) -> io::Error {
        let op = self.op;
        match self.error {
            FaultError::Eio => {
                io::Error::other(format!("simulated EIO (injected fault) on {op:?}"))
            }
            FaultError::Enospc => io::Error::new(
                io::ErrorKind::StorageFull,
                format!("simulated ENOSPC (injected fault) on {op:?}"),
            ),
        }
    }
}

/// The simulated file system. Handles opened from it share its state; [`SimFs::snapshot`]
/// copies that state into an independent file system.
#[derive(Debug)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

type InodeId = u64;

#[derive(Debug, Clone)]
struct State {
    /// Never shrinks: unlinked files may still be open or come back in a crash.
    inodes: BTreeMap<InodeId, Inode>,
    next_inode: InodeId,
    live: BTreeMap<PathBuf, InodeId>,
    durable: BTreeMap<PathBuf, InodeId>,
    dirs: BTreeSet<PathBuf>,
    /// Every operation not yet durable, in issue order.
    pending: Vec<Pending>,
    /// Armed faults; `nth` counts down as operations of their kind go by.
    faults: Vec<Fault>,
    ops: u64,
    /// The operation count from which every operation fails.
    death_at: Option<u64>,
    /// Inodes locked by a live [`Vfs::lock_exclusive`](crate::storage::vfs::Vfs) guard. Locks
    /// belong to the process: a crash or a snapshot starts with none held.
    locks: BTreeSet<InodeId>,
}

/// Images are shared copy-on-write, so syncs, snapshots and crashes copy no file contents.
#[derive(Debug, Clone, Default)]
struct Inode {
    live: Arc<Vec<u8>>,
    durable: Arc<Vec<u8>>,
}

#[derive(Debug, Clone)]
enum Pending {
    Append {
        inode: InodeId,
        offset: usize,
        data: Arc<[u8]>,
    },
    SetLen {
        inode: InodeId,
        len: usize,
    },
    Dir {
        dir: PathBuf,
        op: DirOp,
    },
}

impl Pending {
    fn inode(&self) -> Option<InodeId> {
        match self {
            Self::Append { inode, .. } | Self::SetLen { inode, .. } => Some(*inode),
            Self::Dir { .. } => None,
        }
    }
}

/// A directory-entry change. Each carries its inode so it can be applied to any namespace, even
/// one where earlier operations were reverted.
#[derive(Debug, Clone)]
enum DirOp {
    Create {
        path: PathBuf,
        inode: InodeId,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
        inode: InodeId,
    },
    Remove {
        path: PathBuf,
        inode: InodeId,
    },
}

impl DirOp {
    fn apply(&self, names: &mut BTreeMap<PathBuf, InodeId>) {
        match self {
            Self::Create { path, inode } => {
                names.insert(path.clone(), *inode);
            }
            Self::Rename { from, to, inode } => {
                if names.get(from) == Some(inode) {
                    names.remove(from);
                }
                names.insert(to.clone(), *inode);
            }
            Self::Remove { path, inode } => {
                if names.get(path) == Some(inode) {
                    names.remove(path);
                }
            }
        }
    }
}

impl State {
    fn new() -> Self {
        Self {
            inodes: BTreeMap::new(),
            next_inode: 0,
            live: BTreeMap::new(),
            durable: BTreeMap::new(),
            // Relative and absolute paths both have a root to live in.
            dirs: [PathBuf::new(), PathBuf::from("/")].into(),
            pending: Vec::new(),
            faults: Vec::new(),
            ops: 0,
            death_at: None,
            locks: BTreeSet::new(),
        }
    }

    fn alive(&self) -> io::Result<()> {
        if self.death_at.is_some_and(|d| self.ops >= d) {
            return Err(io::Error::other(
                "simulated process death: every operation fails after fail_after",
            ));
        }
        Ok(())
    }

    /// Counts a state-changing operation and returns the fault it trips, if any. When two
    /// faults pick the same operation, the first injected fires and the other stays armed for
    /// the next operation of its kind.
    fn begin(&mut self, kind: Option<OpKind>) -> io::Result<Option<Fault>> {
        self.alive()?;
        self.ops += 1;
        let mut fired = None;
        self.faults.retain_mut(|fault| {
            if Some(fault.op) != kind {
                return true;
            }
            if fault.nth > 0 {
                fault.nth -= 1;
                return true;
            }
            if fired.is_some() {
                return true;
            }
            fired = Some(*fault);
            fault.persistence == Persistence::Always
        });
        Ok(fired)
    }

    fn inode(&mut self, id: InodeId) -> &mut Inode {
        self.inodes.entry(id).or_default()
    }

    fn dir_of(&self, path: &Path) -> io::Result<PathBuf> {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if self.dirs.contains(&dir) {
            Ok(dir)
        } else {
            Err(not_found(&dir))
        }
    }

    /// Drops `id`'s pending data operations: they are now durable, or lost for good.
    fn settle(&mut self, id: InodeId) {
        self.pending.retain(|p| p.inode() != Some(id));
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("simulated: {} does not exist", path.display()),
    )
}

fn index(offset: u64) -> io::Result<usize> {
    usize::try_from(offset).map_err(|_| io::Error::other("offset does not fit in memory"))
}

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

impl SimFs {
    /// An empty file system holding only the root directories `""` and `"/"`.
    pub fn new() -> Self {
        Self::from_state(State::new())
    }

    fn from_state(state: State) -> Self {
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// An independent copy of the whole state (images, pending operations, armed faults, the
    /// operation counter), so one state can be crashed several ways or run down several paths.
    /// File contents are shared copy-on-write, so this is cheap. File locks are not copied: the
    /// guards holding them belong to `self`, so the copy starts with none held.
    pub fn snapshot(&self) -> SimFs {
        let mut state = self.state.lock().clone();
        state.locks.clear();
        Self::from_state(state)
    }

    /// What a power loss at this instant leaves: a new file system holding durable state plus
    /// whatever `mode` keeps of the pending operations, with nothing pending, no faults armed,
    /// no file locks held (the process that held them died) and a fresh operation counter.
    /// `self` is unchanged.
    ///
    /// The result is a pure function of the state, `seed` and `mode`. The generator is
    /// splitmix64, written out here rather than taken from a crate, and the order of draws is
    /// fixed, so that a seed that once reproduced a bug keeps reproducing it in later versions.
    pub fn crash(&self, seed: u64, mode: CrashMode) -> SimFs {
        let state = self.state.lock();
        let mut rng = SplitMix64(seed);
        let mut images: BTreeMap<InodeId, Arc<Vec<u8>>> = state
            .inodes
            .iter()
            .map(|(&id, inode)| (id, Arc::clone(&inode.durable)))
            .collect();
        let mut names = state.durable.clone();
        let applied = match mode {
            CrashMode::DropUnsynced => 0,
            CrashMode::Random => state.pending.len(),
            CrashMode::InOrder => rng.below(state.pending.len() + 1),
        };
        for (i, op) in state.pending[..applied].iter().enumerate() {
            let fate = match mode {
                CrashMode::Random => Fate::draw(&mut rng, op),
                CrashMode::InOrder if i + 1 == applied && matches!(op, Pending::Append { .. }) => {
                    [Fate::Kept, Fate::Torn][rng.below(2)]
                }
                CrashMode::InOrder | CrashMode::DropUnsynced => Fate::Kept,
            };
            fate.apply(op, &mut images, &mut names, &mut rng);
        }
        let mut next = State::new();
        next.dirs.clone_from(&state.dirs);
        next.next_inode = state.next_inode;
        for &id in names.values() {
            let image = images.get(&id).cloned().unwrap_or_default();
            next.inodes.insert(
                id,
                Inode {
                    live: Arc::clone(&image),
                    durable: image,
                },
            );
        }
        next.live.clone_from(&names);
        next.durable = names;
        Self::from_state(next)
    }

    /// Arms `fault`. Several faults may be armed at once, each counting its own kind.
    pub fn inject(&self, fault: Fault) {
        self.state.lock().faults.push(fault);
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// How many state-changing operations have been attempted (see the module docs).
    pub fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    /// After `n` more state-changing operations, every operation fails, as if the process had
    /// died: looping `n = 0, 1, 2, …` and then calling [`SimFs::crash`] crashes a workload at
    /// every point.
    pub fn fail_after(&self, n: u64) {
        let mut state = self.state.lock();
        state.death_at = Some(state.ops + n);
    }
}

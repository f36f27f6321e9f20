//! `SimFs`: an in-memory [`Vfs`] that models what a power loss leaves on disk, and injects I/O
//! errors, for crash and fault tests (RELIABILITY.md 1.4).
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
//! change state: open, append, `set_len`, syncs, rename, remove, `sync_dir` and
//! `create_dir_all`. Reads cannot change a crash image, so counting them would only multiply
//! crash points without adding new images; once the process is dead they fail too.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use crate::storage::vfs::{to_u64, OpenMode, Vfs, VfsFile};
use crate::sync::{Arc, Mutex};

#[cfg(test)]
mod tests;

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
    /// [`Vfs::open`], with or without creating the file.
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
    /// File contents are shared copy-on-write, so this is cheap.
    pub fn snapshot(&self) -> SimFs {
        Self::from_state(self.state.lock().clone())
    }

    /// What a power loss at this instant leaves: a new file system holding durable state plus
    /// whatever `mode` keeps of the pending operations, with nothing pending, no faults armed
    /// and a fresh operation counter. `self` is unchanged.
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

/// What a crash does to one pending operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Kept,
    Dropped,
    Torn,
    Garbled,
}

impl Fate {
    fn draw(rng: &mut SplitMix64, op: &Pending) -> Self {
        match op {
            Pending::Append { .. } => {
                [Self::Kept, Self::Dropped, Self::Torn, Self::Garbled][rng.below(4)]
            }
            Pending::SetLen { .. } | Pending::Dir { .. } => {
                [Self::Kept, Self::Dropped][rng.below(2)]
            }
        }
    }

    fn apply(
        self,
        op: &Pending,
        images: &mut BTreeMap<InodeId, Arc<Vec<u8>>>,
        names: &mut BTreeMap<PathBuf, InodeId>,
        rng: &mut SplitMix64,
    ) {
        if self == Self::Dropped {
            return;
        }
        match op {
            Pending::Append {
                inode,
                offset,
                data,
            } => {
                let image = Arc::make_mut(images.entry(*inode).or_default());
                let kept = if self == Self::Torn {
                    &data[..rng.below(data.len())]
                } else {
                    data
                };
                write_at(image, *offset, kept);
                if self == Self::Garbled {
                    garble(image, *offset, data.len(), rng);
                }
            }
            Pending::SetLen { inode, len } => {
                Arc::make_mut(images.entry(*inode).or_default()).resize(*len, 0);
            }
            Pending::Dir { op, .. } => op.apply(names),
        }
    }
}

/// Writes `data` at `offset`, zero-filling any gap: a dropped earlier append leaves a hole.
fn write_at(image: &mut Vec<u8>, offset: usize, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let end = offset + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset..end].copy_from_slice(data);
}

/// Replaces with random bytes the part of `image[start..start + len]` in each of a random
/// non-empty set of the sectors it overlaps.
fn garble(image: &mut [u8], start: usize, len: usize, rng: &mut SplitMix64) {
    let end = start + len;
    let first = start / SECTOR;
    let last = (end - 1) / SECTOR;
    let forced = first + rng.below(last - first + 1);
    for sector in first..=last {
        if sector == forced || rng.below(2) == 0 {
            let lo = start.max(sector * SECTOR);
            let hi = end.min((sector + 1) * SECTOR);
            rng.fill(&mut image[lo..hi]);
        }
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and fixed forever here so that crash seeds
/// stay reproducible.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` (the modulo bias is below 2^-50 for our sizes); 0 if `n` is 0.
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next() % to_u64(n)).unwrap_or(0)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

impl Vfs for SimFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let mut state = self.state.lock();
        if let Some(fault) = state.begin(Some(OpKind::Open))? {
            return Err(fault.to_error());
        }
        let dir = state.dir_of(path)?;
        if state.dirs.contains(path) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("simulated: {} is a directory", path.display()),
            ));
        }
        let inode = match (state.live.get(path).copied(), mode) {
            (Some(_), OpenMode::CreateNew) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("simulated: {} already exists", path.display()),
                ))
            }
            (Some(inode), _) => inode,
            (None, OpenMode::Existing) => return Err(not_found(path)),
            (None, OpenMode::CreateNew | OpenMode::OpenOrCreate) => {
                let inode = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(inode, Inode::default());
                state.live.insert(path.to_path_buf(), inode);
                let path = path.to_path_buf();
                state.pending.push(Pending::Dir {
                    dir,
                    op: DirOp::Create { path, inode },
                });
                inode
            }
        };
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
        let mut state = self.state.lock();
        let fault = state.begin(Some(OpKind::Write))?;
        let written = match fault {
            None => data,
            Some(f) if f.effect == FaultEffect::ShortWrite => &data[..data.len() / 2],
            Some(_) => &[],
        };
        let live = Arc::make_mut(&mut state.inode(self.inode).live);
        let offset = live.len();
        live.extend_from_slice(written);
        if !written.is_empty() {
            state.pending.push(Pending::Append {
                inode: self.inode,
                offset,
                data: Arc::from(written),
            });
        }
        fault.map_or(Ok(to_u64(offset)), |f| Err(f.to_error()))
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

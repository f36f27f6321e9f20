//! `segment_log`: an append-only log of framed records split across segment files, the layer the
//! WAL and the data log of issue 3 sit on.
//!
//! # Files
//!
//! A log is the files `dir/{prefix}-{id:016x}.log` (lower-case hex), each a sequence of frames
//! (`storage::frame`) with nothing between or after them. Appends go to the segment with the
//! highest id, the *newest*; every other segment is *sealed*: it was `sync_all`ed before its
//! successor was created, so it is complete on disk and must never be damaged.
//!
//! # Recovery rule (RELIABILITY.md 1.3 item 3)
//!
//! [`SegmentLog::open`] replays every frame of every segment in id order. An incomplete or
//! invalid frame with no valid frame after it at the end of the newest segment is the torn tail
//! of an interrupted append: [`SegmentLog::cut_torn_tail`] truncates it and syncs the
//! truncation, and the first append does so itself if the caller has not. Open only reads, so
//! a caller that refuses what it finds in the records leaves the directory as it was. Any other
//! damage (an invalid frame followed by a valid one anywhere, or any damage
//! at all in a sealed segment) is [`LogError::Corrupt`]: open refuses, naming the file and
//! offset, rather than dropping records that were completely written.
//!
//! # Preallocation
//!
//! The newest segment keeps at least [`PREALLOCATE`] bytes of *written* zeros ahead of its
//! appends, topped up a chunk at a time by the append that uses up the margin, so a record
//! always lands in space an earlier (synced) append zero-filled. On ext4 an `fdatasync` after
//! a write that grows the file must also commit the new size to the journal, and one after a
//! write into a hole or an unwritten extent must commit the block allocation; into blocks that
//! already hold data it does neither. On the test VM a 2 KiB append (a group's frame) and its
//! `fdatasync` took 126–169 µs into holes and 100–116 µs into zeros (`scripts/fsync_probe.py`),
//! and a lone 168-byte record about the same either way. PostgreSQL zero-fills its WAL
//! segments for the same reason. The zeros cost one larger sync per chunk.
//!
//! The unwritten rest of the newest segment reads as zeros, which are never a valid frame, so
//! open takes zeros from the end of the last valid frame to the end of the file as the end of
//! the log, not as a torn tail; a crash may keep or drop an un-synced chunk of zeros, and
//! either reads the same. A segment is trimmed to its records before it is sealed, so sealed
//! segments hold frames and nothing else.
//!
//! Appends between two syncs are not ordered on disk: a crash may keep a later one and tear an
//! earlier one, which the next open reports as corruption. Callers that want to survive every
//! crash issue one [`SegmentLog::append`] per [`SegmentLog::sync`] (a commit group is one
//! record), as the tests here do.
//!
//! # Durability and errors (items 5 and 6)
//!
//! A record is durable once a later [`SegmentLog::sync`] returns `Ok`. Any I/O error from an
//! append, a sync or a removal poisons the log: that call reports the error and every later one
//! returns [`LogError::Poisoned`]. A failed fsync guarantees nothing, even after a retry that
//! succeeds, so the only recovery is to reopen, which replays what the disk actually holds.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::storage::frame::{self, FrameError, ScanEnd, HEADER_LEN, MAX_FRAME_LEN};
use crate::storage::vfs::{to_u64, OpenMode, Vfs, VfsFile};
use crate::sync::Arc;

/// The id of the first segment of a new log.
pub const FIRST_SEGMENT: u64 = 1;

/// How many bytes of written zeros the newest segment keeps ahead of its appends, and the chunk
/// it zero-fills at a time (see the module docs), at most to the segment's maximum size. Each
/// chunk makes one sync slower. With 16 committers on the test VM, 256 KiB chunks (a slow sync
/// in about every 128 group syncs) raised the p99 commit latency from about 0.5 ms to 0.64–0.84
/// ms; 1 MiB chunks (one in about 512) left it at 0.42–0.54 ms, for the same throughput.
#[cfg(not(test))]
pub const PREALLOCATE: u64 = 1 << 20;
/// Unit tests extend by a page: the simulated file system copies whole files at every crash
/// point, and small steps exercise the extension path more often.
#[cfg(test)]
pub const PREALLOCATE: u64 = 4096;

/// The zeros [`PREALLOCATE`] writes, a piece at a time.
///
/// One block for the life of the process, never written. A buffer allocated for each fill
/// (`vec![0; n]`, which is `calloc`) left the heap worse off than it found it: glibc hands out
/// fresh heap pages as zeros without touching them, `pwrite` read them from the kernel, which
/// maps the shared zero page for a read, and once the buffer was freed the allocator's next
/// writes to those pages each took a copy-on-write fault and a TLB shootdown of every CPU
/// running the process. On the 2-vCPU test VM, with 16 committers, those faults stalled a
/// committer for about 13 µs each, several times between two group syncs.
#[cfg(not(test))]
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
/// Unit tests fill a [`PREALLOCATE`] chunk in several pieces, as a real chunk is.
#[cfg(test)]
static ZEROS: [u8; 1000] = [0; 1000];

/// Where a record starts: its segment's id and the offset of its frame in that segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The id of the segment holding the record.
    pub segment: u64,
    /// The byte offset of the record's frame in that segment.
    pub offset: u64,
}

/// What [`SegmentLog::open`] found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Every record of every segment, in log order, with where it starts.
    pub records: Vec<(Position, Vec<u8>)>,
    /// The newest segment and the length of its records, if a torn tail follows them (still on
    /// disk until [`SegmentLog::cut_torn_tail`] or the first append).
    pub torn_tail: Option<(PathBuf, u64)>,
}

/// Why the log could not be opened, appended to or synced.
#[derive(Debug)]
#[non_exhaustive]
pub enum LogError {
    /// A segment is damaged where no crash could have damaged it: completely written records
    /// may be lost, so the log is not opened.
    Corrupt {
        /// The damaged segment.
        path: PathBuf,
        /// Offset in it of the first invalid frame.
        offset: u64,
        /// What is wrong there.
        reason: &'static str,
    },
    /// [`SegmentLog::append`] was given a payload longer than a frame can hold. Nothing was
    /// written and the log is not poisoned.
    PayloadTooLarge {
        /// The payload's length in bytes.
        len: usize,
        /// The maximum in bytes.
        max: u32,
    },
    /// A file operation failed. If it came from an append, a sync or a removal, the log is now
    /// poisoned.
    Io {
        /// What was being done, as a gerund phrase ("syncing", "creating").
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An earlier I/O error poisoned the log; nothing more can be written through it.
    Poisoned,
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Corrupt {
                path,
                offset,
                reason,
            } => write!(
                f,
                "the log segment {} is damaged at byte {offset} ({reason}); the database \
                 cannot be opened safely, restore it from a backup",
                path.display()
            ),
            Self::PayloadTooLarge { len, max } => write!(
                f,
                "a record of {len} bytes cannot be logged: the maximum is {max} bytes"
            ),
            Self::Io { op, path, source } => {
                write!(f, "{op} {} failed: {source}", path.display())
            }
            Self::Poisoned => {
                f.write_str("the log is poisoned after an I/O error; reopen the database")
            }
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Wraps an I/O error with what was being done to which file.
fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The segment appends go to.
#[derive(Debug)]
struct Newest {
    id: u64,
    path: PathBuf,
    file: Box<dyn VfsFile>,
    /// Bytes of records in the segment, including un-synced appends: where the next goes.
    len: u64,
    /// The file's length: `len` plus the preallocated zeros after it, or the torn tail.
    allocated: u64,
    /// Bytes after `len` are a torn tail, not zeros, until `cut_torn_tail` removes them.
    torn: bool,
}

/// An open log, the only writer of its segments (the caller holds the directory lock).
#[derive(Debug)]
pub struct SegmentLog {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    prefix: String,
    segment_max_bytes: u64,
    /// Ids of the segments on disk, oldest first; the last is `newest`, if there is one.
    segments: Vec<u64>,
    /// The id the first segment gets if there is none on disk.
    first_id: u64,
    /// `None` until the first append of a log that has no segment yet.
    newest: Option<Newest>,
    poisoned: bool,
    /// The frame `append` builds, kept between appends (up to [`KEEP_FRAME_BUFFER`] bytes of
    /// capacity). A frame allocated per append was, on the WAL's group-commit path, a fresh
    /// allocation in a heap whose free chunks the documents had taken: it often grew the heap
    /// (an `mprotect`) and faulted in a new page, about 3 µs of the leader's time before its
    /// write, while every committer of the group waited.
    frame: Vec<u8>,
}

/// The most capacity [`SegmentLog`] keeps for its next frame; a larger frame's buffer is
/// freed after its append. A group of ordinary commits fits; a bulk commit's frame need not
/// stay allocated.
const KEEP_FRAME_BUFFER: usize = 1 << 20;

impl SegmentLog {
    /// Opens the log `prefix` in the existing directory `dir` and replays it (see the module
    /// docs for the recovery rule). Reads only: a torn tail of the newest segment is reported in
    /// [`Replay::torn_tail`] and left for [`SegmentLog::cut_torn_tail`]. A directory with no segment is an empty log: the
    /// first segment is created by the first append.
    ///
    /// A segment is closed once appending a record would take it past `segment_max_bytes`; a
    /// record larger than that goes alone in a segment of its own.
    pub fn open(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        prefix: &str,
        segment_max_bytes: u64,
    ) -> Result<(SegmentLog, Replay), LogError> {
        let names = vfs.list(dir).map_err(io_err("listing", dir))?;
        let mut segments: Vec<u64> = names
            .iter()
            .filter_map(|name| parse_name(name.to_str()?, prefix))
            .collect();
        segments.sort_unstable();
        let mut log = SegmentLog {
            vfs,
            dir: dir.to_path_buf(),
            prefix: prefix.to_owned(),
            segment_max_bytes,
            segments,
            first_id: FIRST_SEGMENT,
            newest: None,
            poisoned: false,
            frame: Vec::new(),
        };
        let mut replay = Replay {
            records: Vec::new(),
            torn_tail: None,
        };
        let count = log.segments.len();
        for (i, &id) in log.segments.iter().enumerate() {
            let sealed = i + 1 < count;
            let newest = log.replay_segment(id, sealed, &mut replay)?;
            log.newest = newest;
        }
        Ok((log, replay))
    }

    /// Reads segment `id` into `replay`; for the newest segment, notes a torn tail and returns
    /// the open segment.
    fn replay_segment(
        &self,
        id: u64,
        sealed: bool,
        replay: &mut Replay,
    ) -> Result<Option<Newest>, LogError> {
        let path = self.segment_path(id);
        let file = self
            .vfs
            .open(&path, OpenMode::Existing)
            .map_err(io_err("opening", &path))?;
        let len = file.len().map_err(io_err("reading the length of", &path))?;
        let size = usize::try_from(len).map_err(|_| LogError::Corrupt {
            path: path.clone(),
            offset: 0,
            reason: "the segment is larger than this machine can address",
        })?;
        let mut bytes = vec![0; size];
        file.read_exact_at(0, &mut bytes)
            .map_err(io_err("reading", &path))?;
        let scan = frame::scan(&bytes, 0, MAX_FRAME_LEN);
        let corrupt = |offset: usize, reason| LogError::Corrupt {
            path: path.clone(),
            offset: to_u64(offset),
            reason,
        };
        let (valid_len, torn) = match scan.end {
            ScanEnd::Clean => (len, false),
            ScanEnd::Corrupt { offset, reason } => return Err(corrupt(offset, reason.as_str())),
            ScanEnd::TornTail { valid_up_to } if sealed => {
                return Err(corrupt(
                    valid_up_to,
                    "a sealed segment ends in an incomplete or damaged frame",
                ))
            }
            // Zeros after the newest segment's last record are its preallocated space; anything
            // else there is the torn tail of an interrupted append.
            ScanEnd::TornTail { valid_up_to } => (
                to_u64(valid_up_to),
                bytes[valid_up_to..].iter().any(|&b| b != 0),
            ),
        };
        for (offset, payload) in scan.records {
            let position = Position {
                segment: id,
                offset: to_u64(offset),
            };
            replay.records.push((position, bytes[payload].to_vec()));
        }
        if sealed {
            return Ok(None);
        }
        if torn {
            replay.torn_tail = Some((path.clone(), valid_len));
        }
        Ok(Some(Newest {
            id,
            path,
            file,
            len: valid_len,
            allocated: len,
            torn,
        }))
    }

    /// Appends one record to the newest segment, closing it and starting the next one first if
    /// the record would take it past the maximum size. The record is durable only after a later
    /// [`SegmentLog::sync`] returns `Ok`. An I/O error poisons the log.
    pub fn append(&mut self, payload: &[u8]) -> Result<Position, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let mut bytes = std::mem::take(&mut self.frame);
        bytes.clear();
        frame::encode(payload, &mut bytes).map_err(|e| match e {
            FrameError::PayloadTooLarge { len, max } => LogError::PayloadTooLarge { len, max },
            _ => LogError::PayloadTooLarge {
                len: payload.len(),
                max: MAX_FRAME_LEN,
            },
        })?;
        let result = self.append_frame(&bytes);
        if bytes.capacity() <= KEEP_FRAME_BUFFER {
            self.frame = bytes;
        }
        self.poison_on_error(result)
    }

    /// Truncates the torn tail [`SegmentLog::open`] found after the newest segment's records,
    /// if any, and syncs the truncation. Synced before anything is appended after the cut:
    /// otherwise a crash could bring the torn bytes back in front of records appended later.
    /// An I/O error poisons the log.
    pub fn cut_torn_tail(&mut self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let Some(newest) = self.newest.as_mut().filter(|n| n.torn) else {
            return Ok(());
        };
        let result = newest
            .file
            .set_len(newest.len)
            .map_err(io_err("truncating the torn tail of", &newest.path))
            .and_then(|()| {
                newest
                    .file
                    .sync_all()
                    .map_err(io_err("syncing the truncation of", &newest.path))
            });
        if result.is_ok() {
            newest.allocated = newest.len;
            newest.torn = false;
        }
        self.poison_on_error(result)
    }

    fn append_frame(&mut self, bytes: &[u8]) -> Result<Position, LogError> {
        self.cut_torn_tail()?;
        let frame_len = to_u64(bytes.len());
        let needs_new = match &self.newest {
            None => true,
            Some(n) => n.len > 0 && n.len.saturating_add(frame_len) > self.segment_max_bytes,
        };
        if needs_new {
            self.rotate()?;
        }
        let newest = self.newest.as_mut().ok_or(LogError::Poisoned)?;
        let offset = newest.len;
        let end = offset + frame_len;
        newest
            .file
            .write_at(offset, bytes)
            .map_err(io_err("appending to", &newest.path))?;
        newest.len = end;
        newest.allocated = newest.allocated.max(end);
        // Keep at least a chunk of written zeros ahead (see the module docs), never past the
        // segment's maximum size.
        if newest.allocated - end < PREALLOCATE && newest.allocated < self.segment_max_bytes {
            let target =
                (end.div_ceil(PREALLOCATE) * PREALLOCATE + PREALLOCATE).min(self.segment_max_bytes);
            while newest.allocated < target {
                let piece = ZEROS
                    .len()
                    .min(usize::try_from(target - newest.allocated).unwrap_or(usize::MAX));
                newest
                    .file
                    .write_at(newest.allocated, &ZEROS[..piece])
                    .map_err(io_err("zero-filling the space ahead in", &newest.path))?;
                newest.allocated += to_u64(piece);
            }
        }
        Ok(Position {
            segment: newest.id,
            offset,
        })
    }

    /// Seals the newest segment and creates the next one.
    ///
    /// Order matters. The old segment is trimmed to its records and `sync_all`ed *before* its
    /// successor is created, so a segment that has a successor on disk is always complete:
    /// that is what lets open treat any damage in a sealed segment as corruption. The new file's name is then made durable
    /// with `sync_dir` *before* anything is appended: a later [`SegmentLog::sync`] syncs only
    /// the file's data, and without the directory sync a crash could lose the whole file, and
    /// with it records whose sync had returned `Ok`.
    fn rotate(&mut self) -> Result<(), LogError> {
        let id = match &self.newest {
            Some(old) => {
                if old.allocated != old.len {
                    old.file
                        .set_len(old.len)
                        .map_err(io_err("trimming the sealed segment", &old.path))?;
                }
                old.file
                    .sync_all()
                    .map_err(io_err("syncing the sealed segment", &old.path))?;
                old.id + 1
            }
            None => self
                .segments
                .last()
                .map_or(self.first_id, |last| (last + 1).max(self.first_id)),
        };
        let path = self.segment_path(id);
        let file = self
            .vfs
            .open(&path, OpenMode::CreateNew)
            .map_err(io_err("creating", &path))?;
        self.newest = None;
        self.segments.push(id);
        self.vfs
            .sync_dir(&self.dir)
            .map_err(io_err("syncing the directory", &self.dir))?;
        self.newest = Some(Newest {
            id,
            path,
            file,
            len: 0,
            allocated: 0,
            torn: false,
        });
        Ok(())
    }

    /// Makes every record appended so far durable: `sync_data` of the newest segment (the
    /// others were synced when they were sealed). An I/O error poisons the log; the sync is
    /// never retried.
    pub fn sync(&mut self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let result = match &self.newest {
            Some(n) => n.file.sync_data().map_err(io_err("syncing", &n.path)),
            None => Ok(()),
        };
        self.poison_on_error(result)
    }

    /// Removes every sealed segment whose id is below `id`, then syncs the directory, so that
    /// a crash cannot bring them back once this returns `Ok`. The newest segment is never
    /// removed. For checkpoint cleanup: call it only once nothing needs those records. An I/O
    /// error poisons the log.
    pub fn remove_segments_before(&mut self, id: u64) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let result = self.remove_before(id);
        self.poison_on_error(result)
    }

    fn remove_before(&mut self, id: u64) -> Result<(), LogError> {
        let newest = self.newest.as_ref().map(|n| n.id);
        let doomed: Vec<u64> = self
            .segments
            .iter()
            .copied()
            .filter(|&s| s < id && Some(s) != newest)
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        for &s in &doomed {
            let path = self.segment_path(s);
            self.vfs.remove(&path).map_err(io_err("removing", &path))?;
            self.segments.retain(|&kept| kept != s);
        }
        self.vfs
            .sync_dir(&self.dir)
            .map_err(io_err("syncing the directory", &self.dir))
    }

    /// Makes the next segment created get at least id `id` (the owner knows that ids below it
    /// were used and deleted: reusing one would make its records look obsolete).
    pub fn set_first_segment(&mut self, id: u64) {
        self.first_id = id;
    }

    /// Seals the newest segment if it holds any record and starts the next one, so that every
    /// record appended so far is in a sealed (synced, complete) segment. Returns the id of the
    /// segment appends now go to. An I/O error poisons the log.
    pub fn seal(&mut self) -> Result<u64, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let needs_new = self.newest.as_ref().is_none_or(|n| n.len > 0);
        if needs_new {
            let result = self.rotate();
            self.poison_on_error(result)?;
        }
        self.newest.as_ref().map(|n| n.id).ok_or(LogError::Poisoned)
    }

    /// Bytes in the segments on disk, un-synced appends included. A segment whose length
    /// cannot be read counts as empty: this is a statistic.
    pub fn disk_bytes(&self) -> u64 {
        let newest = self.newest.as_ref().map(|n| n.id);
        let sealed: u64 = self
            .segments
            .iter()
            .filter(|&&id| Some(id) != newest)
            .map(|&id| {
                self.vfs
                    .open(&self.segment_path(id), OpenMode::Existing)
                    .and_then(|f| f.len())
                    .unwrap_or(0)
            })
            .sum();
        sealed + self.newest.as_ref().map_or(0, |n| n.len)
    }

    /// The ids of the segments on disk, oldest first.
    pub fn segments(&self) -> &[u64] {
        &self.segments
    }

    /// The path of segment `id`.
    pub fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(segment_name(&self.prefix, id))
    }

    /// Whether an I/O error has poisoned the log.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Poisons the log if `result` is an I/O error.
    fn poison_on_error<T>(&mut self, result: Result<T, LogError>) -> Result<T, LogError> {
        if matches!(result, Err(LogError::Io { .. })) {
            self.poisoned = true;
        }
        result
    }
}

/// The file name of segment `id` of the log `prefix`.
pub fn segment_name(prefix: &str, id: u64) -> String {
    format!("{prefix}-{id:016x}.log")
}

/// The id in a file name written by [`segment_name`] for `prefix`; `None` for any other name.
pub fn parse_name(name: &str, prefix: &str) -> Option<u64> {
    let hex = name
        .strip_prefix(prefix)?
        .strip_prefix('-')?
        .strip_suffix(".log")?;
    let canonical = hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    canonical.then(|| u64::from_str_radix(hex, 16).ok())?
}

/// Bytes a frame of `payload_len` bytes takes on disk.
pub fn frame_len(payload_len: usize) -> u64 {
    to_u64(HEADER_LEN + payload_len)
}

#[cfg(test)]
mod tests;

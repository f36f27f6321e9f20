//! run: an immutable, sorted data file, the on-disk form of a database's documents.
//!
//! A checkpoint writes a run holding the changes since the previous checkpoint, the compactor
//! merges all runs into one, and open merges all runs to load the state. Reads are never served
//! from runs (the engine is memory-resident), so a run needs only a streaming writer
//! ([`RunWriter`]), a streaming reader ([`RunReader`]) and a streaming k-way merge ([`Merge`]),
//! each in bounded memory whatever the file's size.
//!
//! # Byte layout of `data-{id:016x}.run`
//!
//! ```text
//! offset  size  field
//! 0       8     magic    RUN_MAGIC, b"SNAPRUN\0"
//! 8       4     format   RUN_FORMAT (1), u32 little-endian; a newer value is refused with
//!                        "upgrade snapbase", 0 is damage
//! 12      ..    entries  one frame per entry (storage::frame: [len u32 LE][crc32 u32 LE]
//!                        [payload]), keys strictly increasing
//! ..      ..    footer   exactly one frame holding the footer; the file ends exactly there
//! ```
//!
//! Every frame's payload is a [`RunFrame`] in bincode 2, `config::standard()` (varint integers,
//! little-endian), through serde; nothing may follow it inside the frame. `varint` is bincode's
//! (one byte below 251, else a marker byte 251/252/253 then a u16/u32/u64 LE), `str` a varint
//! length then UTF-8 bytes:
//!
//! ```text
//! frame     varint u32 tag: 0 Entry, 1 Footer
//!   Entry   varint u32 tag: 0 Collection, 1 Doc
//!     Collection  name str | state: varint u32 tag 0 Live, then created varint u64;
//!                                    1 Dropped, then at varint u64
//!     Doc         collection str | id | ts varint u64 | body: u8 0 (a tombstone), or u8 1 then
//!                 a varint length and the document's compact JSON
//!   Footer  entries varint u64 (the number of entry frames) | max_ts varint u64
//! id        varint u32 tag: 0 Int, then a zigzag varint i64; 1 Str, then a str (as wal::record)
//! ```
//!
//! The key of an entry is its collection name (byte-wise), then the `Collection` entry before
//! every document of that collection, then documents by id in [`DocId`](crate::id::DocId)
//! order (integers before strings, integers numerically, strings byte-wise). See [`cmp_key`].
//!
//! # Damage
//!
//! A run is referenced (by the manifest) only after it was completely written and synced, so
//! unlike a log it has no torn tail: every defect is corruption, reported as
//! [`RunError::Corrupt`] with the file and offset. That includes a missing footer, a footer
//! whose entry count or greatest timestamp disagrees with the entries, bytes after the footer,
//! and keys out of order. The header is not checksummed, but a damaged magic or a format of 0 is
//! corruption and any other format value is refused as newer, so no damage passes unnoticed.
//!
//! No length read from disk sizes an allocation: frame lengths over
//! [`MAX_FRAME_LEN`] are refused before reading, a frame's payload grows only with the bytes
//! the file really holds, and bincode reads strings and bodies as byte sequences whose
//! preallocation serde caps.
//!
//! # Merge
//!
//! [`Merge`] combines runs given oldest first into the live state, in key order. For a key
//! present in several runs the entry with the greatest timestamp wins (a `Collection` entry's
//! timestamp is its `created` or `at`), and on equal timestamps the newer run wins. A collection
//! whose winning state is `Dropped` is omitted with every document of it. A live collection is
//! followed by each of its documents whose winning entry has a body and a timestamp at or above
//! the collection's `created`: an older document belonged to an earlier incarnation of the
//! collection, which a drop ended.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::Error;
use crate::storage::frame::{self, Defect, FrameError, FrameReader, MAX_FRAME_LEN};
use crate::storage::vfs::{to_u64, OpenMode, Vfs, VfsFile};
use crate::wal::record::RecordId;

/// The first bytes of every run, whatever its format.
pub(crate) const RUN_MAGIC: [u8; 8] = *b"SNAPRUN\0";

/// The run format this build writes, and the newest it reads. Raise it whenever the layout
/// after the header changes; the magic and the position of this field never change.
pub(crate) const RUN_FORMAT: u32 = 1;

/// Bytes before the first frame: the magic, then the format.
const FILE_HEADER_LEN: u64 = 12;

const _: () = assert!(FILE_HEADER_LEN == RUN_MAGIC.len() as u64 + 4);

/// The writer appends its buffer once it holds this many bytes, so a run costs one write per
/// quarter mebibyte rather than one per entry.
const WRITE_BUFFER: usize = 256 << 10;

/// The reader's fixed buffer: the most of a run held in memory, beyond the entry being decoded.
const READ_BUFFER: usize = 64 << 10;

/// The most bytes a frame's payload may claim when decoded: the frame maximum.
const DECODE_LIMIT: usize = MAX_FRAME_LEN as usize;

/// The name of the run with id `id`: `data-{id:016x}.run`, lower-case hex, so names sort in id
/// order.
pub(crate) fn run_name(id: u64) -> String {
    format!("data-{id:016x}.run")
}

/// The id in a name [`run_name`] made, or `None` for any other name (only the canonical form,
/// 16 lower-case hex digits, is accepted, so one id never has two file names).
pub(crate) fn parse_run_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("data-")?.strip_suffix(".run")?;
    let canonical = hex.len() == 16
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !canonical {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// One entry of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Entry {
    /// A collection's state as of the run. Sorts before every document of that collection.
    Collection {
        /// The collection's name.
        #[serde(deserialize_with = "string_from_bytes")]
        name: String,
        /// Whether it exists, and since when.
        state: CollectionState,
    },
    /// A document version.
    Doc {
        /// The name of the collection holding the document.
        #[serde(deserialize_with = "string_from_bytes")]
        collection: String,
        /// The document's `_id`.
        id: RecordId,
        /// The commit timestamp of this version.
        ts: u64,
        /// The document's compact JSON, `None` for a tombstone (a delete). Read as a sequence,
        /// so its preallocation is capped by serde rather than sized from the claimed length.
        body: Option<Vec<u8>>,
    },
}

/// A collection's state as of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum CollectionState {
    /// The collection exists; its current incarnation was created at `created`.
    Live {
        /// The commit timestamp of the create.
        created: u64,
    },
    /// The collection was dropped at `at`, with every document in it.
    Dropped {
        /// The commit timestamp of the drop.
        at: u64,
    },
}

impl Entry {
    /// The name of the collection the entry belongs to.
    pub(crate) fn collection(&self) -> &str {
        match self {
            Entry::Collection { name, .. } => name,
            Entry::Doc { collection, .. } => collection,
        }
    }

    /// The timestamp the merge compares: a document's `ts`, a collection's `created` or `at`.
    pub(crate) fn ts(&self) -> u64 {
        match self {
            Entry::Collection {
                state: CollectionState::Live { created: ts } | CollectionState::Dropped { at: ts },
                ..
            }
            | Entry::Doc { ts, .. } => *ts,
        }
    }

    /// The document id, or `None` for a collection entry.
    fn id(&self) -> Option<&RecordId> {
        match self {
            Entry::Collection { .. } => None,
            Entry::Doc { id, .. } => Some(id),
        }
    }
}

/// The key order of entries: by collection name byte-wise, then the collection entry, then
/// documents by id in [`DocId`](crate::id::DocId) order.
pub(crate) fn cmp_key(a: &Entry, b: &Entry) -> Ordering {
    a.collection()
        .as_bytes()
        .cmp(b.collection().as_bytes())
        .then_with(|| match (a.id(), b.id()) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => cmp_id(a, b),
        })
}

/// [`DocId`](crate::id::DocId)'s order without building one: integers before strings, integers
/// numerically, strings byte-wise.
fn cmp_id(a: &RecordId, b: &RecordId) -> Ordering {
    match (a, b) {
        (RecordId::Int(a), RecordId::Int(b)) => a.cmp(b),
        (RecordId::Int(_), RecordId::Str(_)) => Ordering::Less,
        (RecordId::Str(_), RecordId::Int(_)) => Ordering::Greater,
        (RecordId::Str(a), RecordId::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
    }
}

/// The payload of one frame: an entry, or the footer that ends the run.
///
/// The entry is a `Cow` so the writer serializes a borrowed entry without cloning its body,
/// while the reader gets an owned one from the same type.
#[derive(Debug, Serialize, Deserialize)]
enum RunFrame<'a> {
    Entry(Cow<'a, Entry>),
    Footer {
        /// The number of entry frames before the footer.
        entries: u64,
        /// The greatest timestamp of any entry ([`Entry::ts`]), 0 if there are none.
        max_ts: u64,
    },
}

/// Deserializes a `String` from the bytes a serialized `str` consists of (in bincode a varint
/// length, then the bytes, the same as a `Vec<u8>`), so a claimed length reserves no more than
/// serde's capped preallocation; the bytes must be UTF-8. The same defence as `wal::record`'s.
fn string_from_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let bytes = Vec::<u8>::deserialize(d)?;
    String::from_utf8(bytes).map_err(serde::de::Error::custom)
}

/// What a completely written run holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RunSummary {
    /// The number of entries.
    pub(crate) entries: u64,
    /// The file's length in bytes, header and footer included.
    pub(crate) bytes: u64,
    /// The greatest timestamp of any entry ([`Entry::ts`]), 0 if there are none.
    pub(crate) max_ts: u64,
}

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
        /// The newest format this build reads ([`RUN_FORMAT`]).
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
fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RunError + 'a {
    move |source| RunError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Builds a [`RunError::Corrupt`].
fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> RunError {
    RunError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

/// The key of the last entry written or read, kept to check that the next one is above it.
/// Reuses its allocations, so checking costs no allocation per entry in the common case.
#[derive(Debug, Default)]
struct LastKey {
    /// `None` before the first entry.
    collection: Option<String>,
    /// The document id, `None` for a collection entry.
    id: Option<RecordId>,
}

impl LastKey {
    /// Whether `entry`'s key is strictly above the last one.
    fn is_below(&self, entry: &Entry) -> bool {
        let Some(collection) = &self.collection else {
            return true;
        };
        let by_name = collection.as_bytes().cmp(entry.collection().as_bytes());
        let ordering = by_name.then_with(|| match (&self.id, entry.id()) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => cmp_id(a, b),
        });
        ordering == Ordering::Less
    }

    /// Makes `entry`'s key the last one.
    fn set(&mut self, entry: &Entry) {
        match &mut self.collection {
            Some(name) if name == entry.collection() => {}
            slot => *slot = Some(entry.collection().to_owned()),
        }
        self.id = entry.id().cloned();
    }
}

/// Writes a run: entries in strictly increasing key order, then [`RunWriter::finish`].
///
/// Dropping a writer without finishing it leaves an incomplete file without a footer, which no
/// reader accepts; the caller removes it. After an I/O error the file is incomplete as well,
/// and every later call returns [`RunError::Stopped`].
#[derive(Debug)]
pub(crate) struct RunWriter {
    file: Box<dyn VfsFile>,
    path: PathBuf,
    /// Encoded frames not yet appended to the file.
    buf: Vec<u8>,
    /// The bincode of the frame being encoded, reused between entries.
    scratch: Vec<u8>,
    last: LastKey,
    entries: u64,
    max_ts: u64,
    /// Bytes appended to the file so far.
    written: u64,
    failed: bool,
}

impl RunWriter {
    /// Creates the run file `path`, which must not exist. Its name is durable only after the
    /// caller syncs the directory, which it does once [`RunWriter::finish`] returns.
    pub(crate) fn create(vfs: &dyn Vfs, path: &Path) -> Result<RunWriter, RunError> {
        let file = vfs
            .open(path, OpenMode::CreateNew)
            .map_err(io_err("creating", path))?;
        let mut buf = Vec::with_capacity(WRITE_BUFFER);
        buf.extend_from_slice(&RUN_MAGIC);
        buf.extend_from_slice(&RUN_FORMAT.to_le_bytes());
        Ok(RunWriter {
            file,
            path: path.to_path_buf(),
            buf,
            scratch: Vec::new(),
            last: LastKey::default(),
            entries: 0,
            max_ts: 0,
            written: 0,
            failed: false,
        })
    }

    /// Appends one entry; its key must be strictly above the previous entry's, else
    /// [`RunError::OutOfOrder`] and nothing is written. Returns the bytes the entry's frame
    /// takes on disk.
    ///
    /// Entries are buffered and appended in batches of about 256 KiB, so an error from an
    /// earlier entry's write may surface here.
    pub(crate) fn push(&mut self, entry: &Entry) -> Result<u64, RunError> {
        self.check_running()?;
        if !self.last.is_below(entry) {
            return Err(RunError::OutOfOrder {
                path: self.path.clone(),
            });
        }
        if let Entry::Doc {
            body: Some(body), ..
        } = entry
        {
            // Refused before encoding, so an oversized body is not copied first.
            if body.len() > DECODE_LIMIT {
                return Err(self.too_large(body.len()));
            }
        }
        let len = self.encode_frame(&RunFrame::Entry(Cow::Borrowed(entry)))?;
        self.last.set(entry);
        self.entries += 1;
        self.max_ts = self.max_ts.max(entry.ts());
        if self.buf.len() >= WRITE_BUFFER {
            self.flush()?;
        }
        Ok(len)
    }

    /// Writes the footer, appends what is buffered and `sync_all`s the file. The run is
    /// complete on disk when this returns `Ok`; its name is not durable until the caller syncs
    /// the directory.
    pub(crate) fn finish(mut self) -> Result<RunSummary, RunError> {
        self.check_running()?;
        self.encode_frame(&RunFrame::Footer {
            entries: self.entries,
            max_ts: self.max_ts,
        })?;
        self.flush()?;
        if let Err(e) = self.file.sync_all() {
            self.failed = true;
            return Err(io_err("syncing", &self.path)(e));
        }
        Ok(RunSummary {
            entries: self.entries,
            bytes: self.written,
            max_ts: self.max_ts,
        })
    }

    fn check_running(&self) -> Result<(), RunError> {
        if self.failed {
            return Err(RunError::Stopped {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    fn too_large(&self, len: usize) -> RunError {
        RunError::EntryTooLarge {
            path: self.path.clone(),
            len,
            max: MAX_FRAME_LEN,
        }
    }

    /// Encodes `frame` onto the buffer; returns its length on disk. Nothing is added on error.
    fn encode_frame(&mut self, frame: &RunFrame<'_>) -> Result<u64, RunError> {
        self.scratch.clear();
        bincode::serde::encode_into_std_write(
            frame,
            &mut self.scratch,
            bincode::config::standard(),
        )
        .unwrap_or_else(|e| unreachable!("encoding a run entry into memory failed: {e}"));
        let before = self.buf.len();
        let framed = frame::encode(&self.scratch, &mut self.buf);
        if self.scratch.capacity() > WRITE_BUFFER {
            self.scratch = Vec::new();
        }
        match framed {
            Ok(()) => Ok(to_u64(self.buf.len() - before)),
            Err(FrameError::PayloadTooLarge { len, .. }) => Err(self.too_large(len)),
            Err(e) => unreachable!("framing can only fail on the payload's length: {e}"),
        }
    }

    /// Appends the buffer to the file.
    fn flush(&mut self) -> Result<(), RunError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.append(&self.buf) {
            // Any prefix of the buffer may be on disk: the file can only be discarded.
            self.failed = true;
            return Err(io_err("writing", &self.path)(e));
        }
        self.written += to_u64(self.buf.len());
        self.buf.clear();
        // One huge entry must not keep its buffer for the rest of the run.
        if self.buf.capacity() > 2 * WRITE_BUFFER {
            self.buf.shrink_to(WRITE_BUFFER);
        }
        Ok(())
    }
}

/// Sequential reads of an open file through [`VfsFile::read_at`], for [`BufReader`].
#[derive(Debug)]
struct FileRead {
    file: Box<dyn VfsFile>,
    pos: u64,
}

impl Read for FileRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(self.pos, buf)?;
        self.pos += to_u64(n);
        Ok(n)
    }
}

/// Reads a run's entries in key order, holding one 64 KiB buffer and the entry being decoded,
/// never the whole file. Checks every checksum, the key order and the footer as it goes.
#[derive(Debug)]
pub(crate) struct RunReader {
    path: PathBuf,
    frames: FrameReader<BufReader<FileRead>>,
    /// The file's length when opened; a run never changes once written.
    len: u64,
    last: LastKey,
    entries: u64,
    max_ts: u64,
    /// Offset of the frame of the entry last returned.
    entry_offset: u64,
    /// Length on disk of the frame of the entry last returned, header included.
    entry_len: u64,
    state: ReadState,
}

/// Where a [`RunReader`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Entries,
    /// A valid footer was read: every later call returns `None`.
    Done,
    /// An error was returned: every later call returns [`RunError::Stopped`].
    Failed,
}

impl RunReader {
    /// Opens the run `path` and checks its magic and format.
    pub(crate) fn open(vfs: &dyn Vfs, path: &Path) -> Result<RunReader, RunError> {
        let file = vfs
            .open(path, OpenMode::Existing)
            .map_err(io_err("opening", path))?;
        let len = file.len().map_err(io_err("reading the length of", path))?;
        let mut header = [0; 12];
        if len < FILE_HEADER_LEN {
            return Err(corrupt(path, 0, "the file is shorter than a run's header"));
        }
        file.read_exact_at(0, &mut header)
            .map_err(io_err("reading", path))?;
        let [m0, m1, m2, m3, m4, m5, m6, m7, f0, f1, f2, f3] = header;
        if [m0, m1, m2, m3, m4, m5, m6, m7] != RUN_MAGIC {
            return Err(corrupt(
                path,
                0,
                "the file does not start with the run magic",
            ));
        }
        let format = u32::from_le_bytes([f0, f1, f2, f3]);
        if format > RUN_FORMAT {
            return Err(RunError::NewerFormat {
                path: path.to_path_buf(),
                found: format,
                supported: RUN_FORMAT,
            });
        }
        if format == 0 {
            return Err(corrupt(path, 8, "format version 0 does not exist"));
        }
        let read = FileRead {
            file,
            pos: FILE_HEADER_LEN,
        };
        Ok(RunReader {
            path: path.to_path_buf(),
            frames: FrameReader::new(BufReader::with_capacity(READ_BUFFER, read), MAX_FRAME_LEN),
            len,
            last: LastKey::default(),
            entries: 0,
            max_ts: 0,
            entry_offset: FILE_HEADER_LEN,
            entry_len: 0,
            state: ReadState::Entries,
        })
    }

    /// The run file being read.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length in bytes, header and footer included.
    pub(crate) fn file_len(&self) -> u64 {
        self.len
    }

    /// How many bytes of the file have been read and checked so far: up to the end of the last
    /// frame decoded (the whole file once the footer has been read).
    pub(crate) fn bytes_read(&self) -> u64 {
        FILE_HEADER_LEN + self.frames.offset()
    }

    /// The next entry in key order, or `None` after a valid footer (its entry count and
    /// greatest timestamp match the entries, and nothing follows it). Any damage, including
    /// keys out of order or a missing footer, is [`RunError::Corrupt`]; after an error every
    /// call returns [`RunError::Stopped`].
    // An Iterator of Results would make "ended at the footer" and "stopped at damage" look alike
    // to a `for` loop; `Result<Option<_>>` makes the caller handle both with `?`.
    pub(crate) fn next(&mut self) -> Result<Option<Entry>, RunError> {
        match self.state {
            ReadState::Entries => {}
            ReadState::Done => return Ok(None),
            ReadState::Failed => {
                return Err(RunError::Stopped {
                    path: self.path.clone(),
                })
            }
        }
        let result = self.read_entry();
        if result.is_err() {
            self.state = ReadState::Failed;
        }
        result
    }

    fn read_entry(&mut self) -> Result<Option<Entry>, RunError> {
        let offset = FILE_HEADER_LEN + self.frames.offset();
        let path = &self.path;
        let payload = match self.frames.next() {
            Ok(Some(payload)) => payload,
            Ok(None) => {
                return Err(corrupt(path, offset, "the file ends without a footer"));
            }
            Err(e) => return Err(frame_error(path, offset, e)),
        };
        let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
        let (decoded, used) = bincode::serde::decode_from_slice::<RunFrame<'_>, _>(
            &payload, config,
        )
        .map_err(|e| {
            corrupt(
                path,
                offset,
                format!("the frame's payload is malformed: {e}"),
            )
        })?;
        if used != payload.len() {
            return Err(corrupt(
                path,
                offset,
                format!(
                    "{} unexpected bytes follow the frame's payload",
                    payload.len() - used
                ),
            ));
        }
        match decoded {
            RunFrame::Entry(entry) => {
                let entry = entry.into_owned();
                if !self.last.is_below(&entry) {
                    return Err(corrupt(
                        path,
                        offset,
                        "the entry's key is not above the previous entry's",
                    ));
                }
                self.last.set(&entry);
                self.entries += 1;
                self.max_ts = self.max_ts.max(entry.ts());
                self.entry_offset = offset;
                self.entry_len = FILE_HEADER_LEN + self.frames.offset() - offset;
                Ok(Some(entry))
            }
            RunFrame::Footer { entries, max_ts } => {
                if entries != self.entries {
                    return Err(corrupt(
                        path,
                        offset,
                        format!(
                            "the footer counts {entries} entries but the file holds {}",
                            self.entries
                        ),
                    ));
                }
                if max_ts != self.max_ts {
                    return Err(corrupt(
                        path,
                        offset,
                        format!(
                            "the footer's greatest timestamp is {max_ts} but the entries' is {}",
                            self.max_ts
                        ),
                    ));
                }
                let end = FILE_HEADER_LEN + self.frames.offset();
                if end != self.len {
                    return Err(corrupt(
                        path,
                        end,
                        format!("{} bytes follow the footer", self.len.saturating_sub(end)),
                    ));
                }
                self.state = ReadState::Done;
                Ok(None)
            }
        }
    }

    /// What the run holds, once [`RunReader::next`] has returned `None`.
    fn summary(&self) -> RunSummary {
        RunSummary {
            entries: self.entries,
            bytes: self.len,
            max_ts: self.max_ts,
        }
    }
}

/// Turns a frame reader's error at `offset` in the run into a [`RunError`].
fn frame_error(path: &Path, offset: u64, e: FrameError) -> RunError {
    match e {
        FrameError::Io(source) => io_err("reading", path)(source),
        FrameError::Stopped { .. } => RunError::Stopped {
            path: path.to_path_buf(),
        },
        FrameError::Truncated { .. } => corrupt(
            path,
            offset,
            "the file ends inside a frame, before its footer",
        ),
        FrameError::LengthOverMax { .. } | FrameError::PayloadTooLarge { .. } => {
            corrupt(path, offset, Defect::LengthOverMax.as_str())
        }
        FrameError::ChecksumMismatch { .. } => {
            corrupt(path, offset, Defect::ChecksumMismatch.as_str())
        }
    }
}

/// Reads the whole run `path`, checking every checksum, the key order and the footer, and
/// returns what it holds. For `Database::verify` and tests.
pub(crate) fn verify_run(vfs: &dyn Vfs, path: &Path) -> Result<RunSummary, RunError> {
    let mut reader = RunReader::open(vfs, path)?;
    while reader.next()?.is_some() {}
    Ok(reader.summary())
}

/// One item of the merged state, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Merged {
    /// A live collection and the timestamp its current incarnation was created at.
    Collection {
        /// The collection's name.
        name: String,
        /// The commit timestamp of its current incarnation's create.
        created: u64,
    },
    /// The newest version of a live document.
    Doc {
        /// The name of the collection holding the document.
        collection: String,
        /// The document's `_id`.
        id: RecordId,
        /// The commit timestamp of this version.
        ts: u64,
        /// The document's compact JSON.
        body: Vec<u8>,
    },
}

/// The collection whose documents the merge is emitting or skipping.
#[derive(Debug)]
struct Current {
    name: String,
    /// When its live incarnation was created; `None` if it is dropped.
    created: Option<u64>,
}

/// A pending entry of one run: the smallest key that run has not yet given to the merge.
#[derive(Debug)]
struct Head {
    entry: Entry,
    /// Offset of its frame, for errors.
    offset: u64,
    /// Length of its frame on disk, header included.
    len: u64,
}

/// A streaming k-way merge of runs into the live state (see the module docs for the rules).
///
/// Holds one pending entry per run plus the winner of the key being resolved. Finding the
/// smallest key scans the pending entries, O(runs) per key: the compactor keeps the number of
/// runs small, and at a few dozen runs a scan is as cheap as a heap and simpler to get right.
#[derive(Debug)]
pub(crate) struct Merge {
    /// The runs, oldest first.
    readers: Vec<RunReader>,
    /// `heads[i]` is run `i`'s next entry, `None` once it is exhausted.
    heads: Vec<Option<Head>>,
    current: Option<Current>,
    /// Frame length of the entry behind the item last returned.
    last_bytes: u64,
    /// The run of the error returned, once there was one: the merge's position is then
    /// undefined, so it stops.
    failed: Option<PathBuf>,
}

impl Merge {
    /// A merge of `runs`, given oldest first (on equal timestamps a later run wins). Reads
    /// each run's first entry.
    pub(crate) fn new(runs: Vec<RunReader>) -> Result<Merge, RunError> {
        let mut readers = runs;
        let heads = readers
            .iter_mut()
            .map(read_head)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Merge {
            readers,
            heads,
            current: None,
            last_bytes: 0,
            failed: None,
        })
    }

    /// The next item of the merged state, in key order; `None` once every run is exhausted
    /// (each having ended at a valid footer). After an error every call returns an error.
    pub(crate) fn next(&mut self) -> Result<Option<Merged>, RunError> {
        if let Some(path) = &self.failed {
            return Err(RunError::Stopped { path: path.clone() });
        }
        let result = self.merge_next();
        if let Err(e) = &result {
            self.failed = Some(e.path().to_path_buf());
        }
        result
    }

    /// How many bytes of all the runs have been read so far, for progress reports: at most the
    /// sum of their [`RunReader::file_len`]s, reached once every run is exhausted.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.readers.iter().map(RunReader::bytes_read).sum()
    }

    /// The bytes on disk (frame header included) of the winning entry behind the item last
    /// returned by [`Merge::next`], 0 before the first: what that item costs in a run, the same
    /// as [`RunWriter::push`] returns when it is written again.
    pub(crate) fn last_bytes(&self) -> u64 {
        self.last_bytes
    }

    fn merge_next(&mut self) -> Result<Option<Merged>, RunError> {
        loop {
            let Some((winner, run)) = self.next_winner()? else {
                return Ok(None);
            };
            self.last_bytes = winner.len;
            match winner.entry {
                Entry::Collection { name, state } => match state {
                    CollectionState::Live { created } => {
                        self.current = Some(Current {
                            name: name.clone(),
                            created: Some(created),
                        });
                        return Ok(Some(Merged::Collection { name, created }));
                    }
                    CollectionState::Dropped { .. } => {
                        self.current = Some(Current {
                            name,
                            created: None,
                        });
                    }
                },
                Entry::Doc {
                    collection,
                    id,
                    ts,
                    body,
                } => {
                    // Collection entries sort before their documents, so if any run held one for
                    // this collection it has been resolved just before.
                    let created = match &self.current {
                        Some(current) if current.name == collection => current.created,
                        _ => {
                            return Err(corrupt(
                                self.readers[run].path(),
                                winner.offset,
                                format!(
                                    "a document of collection {collection:?} has no collection \
                                     entry in any run"
                                ),
                            ))
                        }
                    };
                    if let (Some(created), Some(body)) = (created, body) {
                        if ts >= created {
                            return Ok(Some(Merged::Doc {
                                collection,
                                id,
                                ts,
                                body,
                            }));
                        }
                    }
                }
            }
        }
    }

    /// Takes every pending entry with the smallest key, refilling each from its run, and
    /// returns the one that wins (greatest timestamp, then newest run) with its run's index.
    fn next_winner(&mut self) -> Result<Option<(Head, usize)>, RunError> {
        let mut min: Option<usize> = None;
        for (i, head) in self.heads.iter().enumerate() {
            let Some(head) = head else { continue };
            let smaller = match min.and_then(|m| self.heads[m].as_ref()) {
                Some(best) => cmp_key(&head.entry, &best.entry) == Ordering::Less,
                None => true,
            };
            if smaller {
                min = Some(i);
            }
        }
        let Some(first) = min else {
            return Ok(None);
        };
        let Some(mut winner) = self.take_head(first)? else {
            return Ok(None);
        };
        let mut winner_run = first;
        // Runs before `first` hold only greater keys: `first` is the first run with the smallest.
        for i in first + 1..self.heads.len() {
            let same_key = self.heads[i]
                .as_ref()
                .is_some_and(|h| cmp_key(&h.entry, &winner.entry) == Ordering::Equal);
            if !same_key {
                continue;
            }
            if let Some(candidate) = self.take_head(i)? {
                // `i` is newer than the current winner's run, so it wins ties.
                if candidate.entry.ts() >= winner.entry.ts() {
                    winner = candidate;
                    winner_run = i;
                }
            }
        }
        Ok(Some((winner, winner_run)))
    }

    /// Takes run `i`'s pending entry, if any, and reads its next one.
    fn take_head(&mut self, i: usize) -> Result<Option<Head>, RunError> {
        if self.heads[i].is_none() {
            return Ok(None);
        }
        let next = read_head(&mut self.readers[i])?;
        Ok(std::mem::replace(&mut self.heads[i], next))
    }
}

/// Reads `reader`'s next entry as a pending head.
fn read_head(reader: &mut RunReader) -> Result<Option<Head>, RunError> {
    Ok(reader.next()?.map(|entry| Head {
        entry,
        offset: reader.entry_offset,
        len: reader.entry_len,
    }))
}

#[cfg(test)]
mod tests;

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

use serde::{Deserialize, Serialize};

use crate::storage::frame::MAX_FRAME_LEN;
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
        #[serde(deserialize_with = "crate::wal::record::bytes::string_from_input")]
        name: String,
        /// Whether it exists, and since when.
        state: CollectionState,
    },
    /// A document version.
    Doc {
        /// The name of the collection holding the document.
        #[serde(deserialize_with = "crate::wal::record::bytes::string_from_input")]
        collection: String,
        /// The document's `_id`.
        id: RecordId,
        /// The commit timestamp of this version.
        ts: u64,
        /// The document's compact JSON, `None` for a tombstone (a delete). Read as a slice of
        /// the input (`wal::record::bytes`), so a claimed length allocates nothing the input
        /// does not hold.
        #[serde(
            serialize_with = "crate::wal::record::bytes::opt_bytes_at_once",
            deserialize_with = "crate::wal::record::bytes::opt_bytes_from_input"
        )]
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
/// documents by id in [`DocId`](crate::id::DocId) order (`RecordId`'s `Ord`).
pub(crate) fn cmp_key(a: &Entry, b: &Entry) -> Ordering {
    a.collection()
        .as_bytes()
        .cmp(b.collection().as_bytes())
        .then_with(|| match (a.id(), b.id()) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => a.cmp(b),
        })
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

mod error;
mod merge;
mod reader;
mod writer;

use error::{corrupt, io_err};
pub(crate) use error::{to_error, RunError};
pub(crate) use merge::{Merge, Merged};
pub(crate) use reader::{verify_run, RunReader};
use writer::LastKey;
pub(crate) use writer::RunWriter;

#[cfg(test)]
mod tests;

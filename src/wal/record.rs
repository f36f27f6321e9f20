//! record: the encoding of a WAL commit record, the payload of one WAL frame.
//!
//! One [`CommitRecord`] holds everything a committed transaction wrote, so recovery applies a
//! transaction whole or not at all: the frame around it (`storage::frame`) is valid or it is not.
//!
//! ```text
//! offset  size  field
//! 0       1     format   RECORD_FORMAT (1); a newer value is refused with "upgrade snapbase"
//! 1       n     body     the CommitRecord in bincode 2, config::standard() (varint integers,
//!                        little-endian), through serde; nothing may follow it
//! ```
//!
//! The body, field by field (`varint` is bincode's: one byte below 251, else a marker byte
//! 251/252/253 followed by a u16/u32/u64 LE; `str` is a varint length, then UTF-8 bytes):
//!
//! ```text
//! ts        varint u64        the commit timestamp
//! ops       varint count, then each op:
//!   tag     varint u32        0 Put, 1 Delete, 2 DropCollection, 3 CreateCollection
//!   Put               collection str | id | body: varint length, then the bytes
//!   Delete            collection str | id
//!   DropCollection    collection str
//!   CreateCollection  collection str   (a new incarnation, before the first Put into it)
//! id        varint u32 tag: 0 Int, then a zigzag varint i64; 1 Str, then a str
//! ```
//!
//! A `Put` body is the whole document (with its `_id`) as compact JSON (`serde_json::to_vec`):
//! bincode cannot decode a `serde_json::Value`, which needs a self-describing format. With
//! `serde_json`'s `float_roundtrip` feature the JSON reads back equal to what was written.
//!
//! Decoding never trusts a length in the input: bincode checks every claimed length against a
//! limit of the frame maximum before it reserves memory, strings and the body are read as byte
//! sequences (whose preallocation serde caps), and the whole input must be consumed.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::document::{parse_stored, Document};
use crate::id::DocId;

/// The format of a commit record, written as its first byte, before the bincode body.
///
/// Raise it whenever the body's layout changes; [`decode`] refuses any value above it.
pub(crate) const RECORD_FORMAT: u8 = 1;

/// The most bytes [`decode`] lets a record claim: 64 MiB + 64 KiB, the frame maximum
/// (`crate::storage::frame::MAX_FRAME_LEN`), since a record is one frame's payload.
const DECODE_LIMIT: usize = (64 << 20) + (64 << 10);

const _: () = assert!(DECODE_LIMIT == crate::storage::frame::MAX_FRAME_LEN as usize);

/// Everything one committed transaction wrote, in the order it is applied at recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CommitRecord {
    /// The commit timestamp.
    pub(crate) ts: u64,
    /// The transaction's writes.
    pub(crate) ops: Vec<RecordOp>,
}

/// One write of a committed transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RecordOp {
    /// Inserts or replaces a document.
    Put {
        /// The collection's name.
        #[serde(deserialize_with = "bytes::string_from_input")]
        collection: String,
        /// The document's `_id`.
        id: RecordId,
        /// The whole document, `_id` included, as compact JSON. Read as a slice of the input
        /// (`bytes`), so a claimed length allocates nothing the input does not hold.
        #[serde(
            serialize_with = "bytes::bytes_at_once",
            deserialize_with = "bytes::bytes_from_input"
        )]
        body: Vec<u8>,
    },
    /// Deletes a document.
    Delete {
        /// The collection's name.
        #[serde(deserialize_with = "bytes::string_from_input")]
        collection: String,
        /// The deleted document's `_id`.
        id: RecordId,
    },
    /// Drops a collection and every document in it.
    DropCollection {
        /// The collection's name.
        #[serde(deserialize_with = "bytes::string_from_input")]
        collection: String,
    },
    /// Creates a new incarnation of a collection; comes before the first `Put` into it.
    CreateCollection {
        /// The collection's name.
        #[serde(deserialize_with = "bytes::string_from_input")]
        collection: String,
    },
}

/// A document id as stored in a record: mirrors [`DocId`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RecordId {
    /// An integer id.
    Int(i64),
    /// A string id.
    Str(#[serde(deserialize_with = "bytes::string_from_input")] String),
}

impl From<&DocId> for RecordId {
    fn from(id: &DocId) -> Self {
        match (id.as_i64(), id.as_str()) {
            (Some(i), _) => RecordId::Int(i),
            (None, s) => RecordId::Str(s.unwrap_or_default().to_owned()),
        }
    }
}

/// [`DocId`]'s order without building one: integers before strings, integers numerically,
/// strings byte-wise. Runs are sorted by it, and checkpoints sort their changes by it.
impl Ord for RecordId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self, other) {
            (RecordId::Int(a), RecordId::Int(b)) => a.cmp(b),
            (RecordId::Int(_), RecordId::Str(_)) => Ordering::Less,
            (RecordId::Str(_), RecordId::Int(_)) => Ordering::Greater,
            (RecordId::Str(a), RecordId::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
        }
    }
}

impl PartialOrd for RecordId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl RecordId {
    /// The [`DocId`] this stands for.
    pub(crate) fn to_doc_id(&self) -> DocId {
        match self {
            RecordId::Int(i) => DocId::from(*i),
            RecordId::Str(s) => DocId::from(s.as_str()),
        }
    }

    /// [`RecordId::to_doc_id`], reusing a string id's allocation.
    pub(crate) fn into_doc_id(self) -> DocId {
        match self {
            RecordId::Int(i) => DocId::from(i),
            RecordId::Str(s) => DocId::from(s),
        }
    }
}

impl RecordOp {
    /// The document a `Put` writes, parsed from its JSON body; `None` for other operations.
    pub(crate) fn body_value(&self) -> Result<Option<serde_json::Value>, RecordError> {
        match self {
            RecordOp::Put { body, .. } => parse_stored(body).map(Some).map_err(RecordError::Body),
            RecordOp::Delete { .. }
            | RecordOp::DropCollection { .. }
            | RecordOp::CreateCollection { .. } => Ok(None),
        }
    }
}

/// The body a `Put` of `doc` logs: the document's compact JSON.
pub(crate) fn json_body(doc: &Document) -> Vec<u8> {
    serde_json::to_vec(doc.as_value())
        // A `Value` always serializes: its map keys are strings and it holds no other types.
        .unwrap_or_else(|e| unreachable!("a JSON value failed to serialize: {e}"))
}

/// A `Put` into `collection` of document `id`, whose body is `body` ([`json_body`]).
pub(crate) fn put(collection: &str, id: &DocId, body: Vec<u8>) -> RecordOp {
    RecordOp::Put {
        collection: collection.to_owned(),
        id: RecordId::from(id),
        body,
    }
}

/// Encodes `record`: the format byte, then the bincode body.
///
/// # Panics
///
/// Never: serializing these types into a `Vec` cannot fail.
pub(crate) fn encode(record: &CommitRecord) -> Vec<u8> {
    // Sized once: the commit path encodes under the commit lock, where growing the buffer a
    // doubling at a time would be several reallocations per commit.
    let mut out = Vec::with_capacity(encoded_len_bound(record));
    out.push(RECORD_FORMAT);
    // No limit here: the writer checks the framed length against the frame maximum.
    bincode::serde::encode_into_std_write(record, &mut out, bincode::config::standard())
        .unwrap_or_else(|e| unreachable!("encoding a commit record into memory failed: {e}"));
    out
}

/// At least the length [`encode`] produces for `record`: a bincode varint takes at most 9
/// bytes, an enum tag at most 1 (fewer than 251 variants), a byte field its varint length and
/// its bytes.
fn encoded_len_bound(record: &CommitRecord) -> usize {
    const VARINT: usize = 9;
    let field = |bytes: usize| VARINT + bytes;
    let id = |id: &RecordId| match id {
        RecordId::Int(_) => 1 + VARINT,
        RecordId::Str(s) => 1 + field(s.len()),
    };
    let ops: usize = record
        .ops
        .iter()
        .map(|op| {
            1 + match op {
                RecordOp::Put {
                    collection,
                    id: doc,
                    body,
                } => field(collection.len()) + id(doc) + field(body.len()),
                RecordOp::Delete {
                    collection,
                    id: doc,
                } => field(collection.len()) + id(doc),
                RecordOp::DropCollection { collection }
                | RecordOp::CreateCollection { collection } => field(collection.len()),
            }
        })
        .sum();
    1 + VARINT + VARINT + ops
}

/// Decodes a record written by [`encode`]. Never panics, whatever `bytes` hold, and reserves
/// no more memory than the frame maximum whatever lengths they claim.
pub(crate) fn decode(bytes: &[u8]) -> Result<CommitRecord, RecordError> {
    let (&format, body) = bytes.split_first().ok_or(RecordError::Empty)?;
    if format > RECORD_FORMAT {
        return Err(RecordError::NewerFormat { found: format });
    }
    if format != RECORD_FORMAT {
        return Err(RecordError::UnknownFormat { found: format });
    }
    let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
    let (record, used) = bincode::serde::decode_from_slice::<CommitRecord, _>(body, config)
        .map_err(RecordError::Malformed)?;
    if used != body.len() {
        return Err(RecordError::TrailingBytes {
            extra: body.len() - used,
        });
    }
    Ok(record)
}

/// Why a commit record could not be decoded.
#[derive(Debug)]
#[non_exhaustive]
pub(crate) enum RecordError {
    /// The input held no bytes at all.
    Empty,
    /// The record was written by a newer snapbase.
    NewerFormat {
        /// The format byte found.
        found: u8,
    },
    /// The format byte is not one snapbase ever wrote.
    UnknownFormat {
        /// The format byte found.
        found: u8,
    },
    /// The bincode body is damaged: cut short, an unknown tag, invalid UTF-8, or a length over
    /// the limit.
    Malformed(bincode::error::DecodeError),
    /// Bytes follow the end of the record.
    TrailingBytes {
        /// How many bytes follow it.
        extra: usize,
    },
    /// A `Put` body is not valid JSON.
    Body(serde_json::Error),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the commit record is empty: it has no format byte"),
            Self::NewerFormat { found } => write!(
                f,
                "the commit record has format {found}, newer than the {RECORD_FORMAT} this \
                 version of snapbase reads; upgrade snapbase to open this database"
            ),
            Self::UnknownFormat { found } => write!(
                f,
                "the commit record has format {found}, which no version of snapbase writes; \
                 the log is damaged there"
            ),
            Self::Malformed(e) => write!(f, "the commit record is malformed: {e}"),
            Self::TrailingBytes { extra } => write!(
                f,
                "the commit record is followed by {extra} unexpected bytes; the log is damaged \
                 there"
            ),
            Self::Body(e) => write!(f, "a document in the commit record is not valid JSON: {e}"),
        }
    }
}

impl std::error::Error for RecordError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Malformed(e) => Some(e),
            Self::Body(e) => Some(e),
            Self::Empty
            | Self::NewerFormat { .. }
            | Self::UnknownFormat { .. }
            | Self::TrailingBytes { .. } => None,
        }
    }
}

pub(crate) mod bytes;
#[cfg(test)]
mod tests;

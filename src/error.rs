//! The crate's error type. Every variant prints a sentence a user can act on.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::id::DocId;

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in snapbase.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A transaction lost a first-committer-wins race (or, in serializable mode, read data that
    /// changed before it committed). Nothing it wrote was applied; retrying may succeed.
    WriteConflict(WriteConflict),
    /// An insert named an `_id` that already exists in the collection.
    DuplicateId {
        /// The collection inserted into.
        collection: String,
        /// The `_id` that already exists.
        id: DocId,
    },
    /// The value is not a valid document (not a JSON object, nested too deeply, or an `_id`
    /// that contradicts the id the operation names).
    InvalidDocument {
        /// Why the document was refused.
        reason: String,
    },
    /// An `_id` that is neither a JSON integer (in the i64 range) nor a string.
    InvalidId {
        /// Why the id was refused.
        reason: String,
    },
    /// A collection name that is empty, longer than 64 bytes or not `[A-Za-z0-9_.-]`.
    InvalidCollectionName {
        /// The refused name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A document whose JSON encoding exceeds the configured maximum.
    DocumentTooLarge {
        /// The document's encoded size in bytes.
        size: usize,
        /// The configured maximum in bytes.
        max: usize,
    },
    /// A builder option has a value that cannot work.
    InvalidOption {
        /// Why it was refused.
        reason: String,
    },
    /// A commit whose WAL record would exceed the largest record the log can hold. Nothing was
    /// applied; split the commit into smaller ones.
    CommitTooLarge {
        /// The encoded record's size in bytes.
        size: usize,
        /// The maximum in bytes.
        max: usize,
    },
    /// An operation that needs an existing collection named one that does not exist.
    CollectionNotFound(String),
    /// The database was closed; no further operation is possible on any of its handles.
    Closed,
    /// Another `Database` (in this process or another) has the directory open.
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// A file operation failed. If it was a write or a sync, the database is now poisoned.
    Io {
        /// What failed, as a sentence fragment naming the file ("syncing /db/wal-…log").
        context: String,
        /// The operating system's error kind.
        kind: io::ErrorKind,
        /// The operating system's message.
        message: String,
    },
    /// An on-disk file is damaged where no crash could have damaged it. Nothing was dropped:
    /// the database refuses to open rather than lose acknowledged commits.
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// The byte offset of the damage, when known.
        offset: Option<u64>,
        /// What is wrong there.
        reason: String,
    },
    /// A file was written by a newer version of snapbase.
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// The format version found.
        found: u32,
        /// The newest format this build reads.
        supported: u32,
    },
    /// An earlier write or sync failed, so no write can be trusted to reach the disk any more.
    /// Reads of committed data keep working; reopen the database to write again.
    Poisoned {
        /// The failure that poisoned the database.
        cause: String,
    },
}

/// Why a transaction's commit was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteConflict {
    /// The collection where the conflict was found.
    pub collection: String,
    /// The document involved, when the conflict is about one document.
    pub id: Option<DocId>,
    /// What kind of conflict it was.
    pub kind: ConflictKind,
}

/// The kinds of commit conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConflictKind {
    /// Another transaction committed a write to a document this one wrote (first committer wins).
    WriteWrite,
    /// Serializable only: another transaction committed a change to a document this one read.
    ReadWrite,
    /// Serializable only: another transaction changed a collection this one scanned.
    ScanChanged,
    /// The collection was dropped (and perhaps recreated) after this transaction's snapshot.
    CollectionDropped,
}

impl Error {
    /// True for a commit conflict: the transaction applied nothing and may be retried.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::WriteConflict(_))
    }

    /// True when running the same transaction again can succeed.
    pub fn is_retryable(&self) -> bool {
        self.is_conflict()
    }

    /// True if the database is poisoned: no write can succeed until it is reopened.
    pub fn is_poisoned(&self) -> bool {
        matches!(self, Error::Poisoned { .. })
    }

    /// An I/O error of `context` ("syncing /db/wal-…log").
    pub(crate) fn io(context: impl Into<String>, source: &io::Error) -> Self {
        Error::Io {
            context: context.into(),
            kind: source.kind(),
            message: source.to_string(),
        }
    }

    pub(crate) fn invalid_document(reason: impl Into<String>) -> Self {
        Error::InvalidDocument {
            reason: reason.into(),
        }
    }

    pub(crate) fn conflict(collection: &str, id: Option<&DocId>, kind: ConflictKind) -> Self {
        Error::WriteConflict(WriteConflict {
            collection: collection.to_owned(),
            id: id.cloned(),
            kind,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WriteConflict(c) => c.fmt(f),
            Error::DuplicateId { collection, id } => write!(
                f,
                "a document with _id {id} already exists in collection '{collection}'"
            ),
            Error::InvalidDocument { reason } => write!(f, "invalid document: {reason}"),
            Error::InvalidId { reason } => write!(f, "invalid _id: {reason}"),
            Error::InvalidCollectionName { name, reason } => {
                write!(f, "invalid collection name {name:?}: {reason}")
            }
            Error::DocumentTooLarge { size, max } => write!(
                f,
                "the document is {size} bytes as JSON, over the maximum of {max} bytes"
            ),
            Error::InvalidOption { reason } => write!(f, "invalid option: {reason}"),
            Error::CommitTooLarge { size, max } => write!(
                f,
                "the commit is {size} bytes in the write-ahead log, over the maximum of {max} \
                 bytes; nothing was applied, split it into smaller commits"
            ),
            Error::CollectionNotFound(name) => write!(f, "collection '{name}' does not exist"),
            Error::Closed => f.write_str("the database is closed; reopen it to continue"),
            Error::Locked { path } => write!(
                f,
                "the database {} is locked: another process, or another open Database in this \
                 process, is using it",
                path.display()
            ),
            Error::Io {
                context, message, ..
            } => write!(f, "{context} failed: {message}"),
            Error::Corrupt {
                path,
                offset,
                reason,
            } => {
                write!(f, "the file {} is damaged", path.display())?;
                if let Some(offset) = offset {
                    write!(f, " at byte {offset}")?;
                }
                write!(
                    f,
                    " ({reason}); the database cannot be opened safely, restore it from a backup"
                )
            }
            Error::NewerFormat {
                path,
                found,
                supported,
            } => write!(
                f,
                "the file {} was written by a newer snapbase (format {found}; this build reads \
                 up to {supported}); upgrade snapbase to open it",
                path.display()
            ),
            Error::Poisoned { cause } => write!(
                f,
                "the database is poisoned, reopen it: an earlier write or sync failed ({cause}), \
                 so no later write can be trusted to reach the disk"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl fmt::Display for WriteConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.id {
            Some(id) => format!("document {id} in collection '{}'", self.collection),
            None => format!("collection '{}'", self.collection),
        };
        match self.kind {
            ConflictKind::WriteWrite => write!(
                f,
                "write conflict: {what} was changed by a transaction that committed after this \
                 one began; nothing was applied, retry the transaction"
            ),
            ConflictKind::ReadWrite => write!(
                f,
                "serialization conflict: {what}, which this transaction read, was changed by a \
                 transaction that committed after this one began; nothing was applied, retry \
                 the transaction"
            ),
            ConflictKind::ScanChanged => write!(
                f,
                "serialization conflict: {what}, which this transaction scanned, was changed by \
                 a transaction that committed after this one began; nothing was applied, retry \
                 the transaction"
            ),
            ConflictKind::CollectionDropped => write!(
                f,
                "write conflict: {what} was dropped after this transaction began; nothing was \
                 applied"
            ),
        }
    }
}

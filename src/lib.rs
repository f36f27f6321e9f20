//! snapbase: an embedded document database on a multi-version snapshot-isolation engine.
//!
//! Documents are JSON objects in named collections. Every commit creates new versions; readers
//! see a consistent snapshot without ever waiting for writers, writers are serialized through a
//! single commit point with first-committer-wins conflict detection, and versions no snapshot can
//! see any more are reclaimed by an epoch-based garbage collector.
//!
//! ```
//! use snapbase::{Database, Error, Isolation};
//! use serde_json::json;
//!
//! # fn main() -> Result<(), Error> {
//! let db = Database::in_memory();
//! let users = db.collection("users")?;
//! let ann = users.insert(json!({"name": "Ann", "age": 31}))?;
//! users.upsert(json!({"_id": 7, "name": "Bo"}))?;
//!
//! let before = db.snapshot();
//! db.transaction(|tx| {
//!     tx.replace("users", ann.clone(), json!({"name": "Ann", "age": 32}))?;
//!     tx.delete("users", 7)?;
//!     Ok(())
//! })?;
//!
//! assert_eq!(before.get("users", 7)?.unwrap()["name"], "Bo"); // the snapshot never changes
//! assert_eq!(users.get(ann)?.unwrap()["age"], 32);
//! assert_eq!(users.len()?, 1);
//!
//! let mut tx = db.begin_with(Isolation::Serializable);
//! tx.insert("users", json!({"_id": 8, "name": "Cy"}))?;
//! tx.commit()?;
//! # Ok(())
//! # }
//! ```

mod catalog;
mod collection;
mod db;
mod document;
mod engine;
mod error;
mod gc;
mod id;
mod mvcc;
mod options;
#[cfg(not(loom))]
mod persist;
mod snapshot;
mod stats;
#[cfg(not(loom))]
mod storage;
mod sync;
mod txn;
mod wal;

pub use crate::collection::Collection;
pub use crate::db::{Database, DatabaseBuilder};
pub use crate::document::{
    Document, DEFAULT_MAX_DOCUMENT_SIZE, MAX_COLLECTION_NAME_LEN, MAX_NESTING_DEPTH,
};
pub use crate::error::{ConflictKind, Error, Result, WriteConflict};
pub use crate::id::DocId;
pub use crate::mvcc::Timestamp;
pub use crate::options::{AutoCompaction, CompactionProgress, Durability, GcPolicy};
#[cfg(not(loom))]
pub use crate::persist::{backup::BackupStats, compact::CompactionStats, verify::VerifyReport};
pub use crate::snapshot::Snapshot;
pub use crate::stats::{GcReport, Stats};
pub use crate::txn::transaction::Transaction;
pub use crate::txn::Isolation;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Internals exposed only to the loom harness in `loom_tests/`; not public API.
#[cfg(loom)]
#[doc(hidden)]
pub mod __loom {
    pub use crate::mvcc::chain::{Keep, Limbo, Retired, VersionChain};
    pub use crate::mvcc::registry::SnapshotRegistry;
    pub use crate::txn::oracle::Oracle;
    pub use crate::wal::group::{GroupCommit, GroupLog};

    /// The error a log reports when its sync fails, for models that inject one.
    pub fn sync_error() -> crate::Error {
        crate::Error::io(
            "syncing the log",
            &std::io::Error::other("an injected fault"),
        )
    }

    /// Builds a document without validation, for models that install versions directly.
    pub fn document(value: serde_json::Value) -> crate::Document {
        crate::document::Document::from_raw(value)
    }
}

//! The engines under comparison, each behind [`Engine`]: the handful of operations the
//! workloads need, so that every engine does the same work.
//!
//! Every engine stores a document as its serialized JSON under its `_id` (key-value engines),
//! or as its natural document form (snapbase, PoloDB, SQLite's `doc TEXT` column), and every
//! read returns a parsed document, so that what is compared is "store and fetch a document".

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

/// Whether commits must be on stable storage when they return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is synced before it returns (fsync / fdatasync or the engine's equivalent).
    Durable,
    /// Commits may be lost on a crash (each engine's non-syncing mode).
    Relaxed,
}

/// A document read back. Engines that store bytes parse them; engines that keep parsed
/// documents hand out a shared reference, as their own API does, rather than a deep copy made
/// only for the harness (issue 4: "a parsed document, or an `Arc` of one").
#[derive(Debug, Clone)]
pub enum Doc {
    /// Parsed from the stored bytes by this read.
    Parsed(Value),
    /// The in-memory baseline's `Arc<Value>`.
    Shared(Arc<Value>),
    /// snapbase's `Document`, an `Arc` of the stored version.
    Snapbase(::snapbase::Document),
}

impl Deref for Doc {
    type Target = Value;

    fn deref(&self) -> &Value {
        match self {
            Doc::Parsed(value) => value,
            Doc::Shared(value) => value,
            Doc::Snapbase(doc) => doc,
        }
    }
}

impl PartialEq<Value> for Doc {
    fn eq(&self, other: &Value) -> bool {
        **self == *other
    }
}

/// The result type of engine operations: errors are reported as text, since each engine has
/// its own error type.
pub type EngineResult<T> = Result<T, String>;

/// One engine instance, opened on its own directory.
///
/// Implementations must be `Send + Sync`: the read phases share one instance between threads.
pub trait Engine: Send + Sync {
    /// Inserts every `(id, document)` in ONE transaction, committed with the durability the
    /// engine was opened with. `document` includes `_id`.
    fn insert_batch(&self, docs: &[(String, Value)]) -> EngineResult<()>;

    /// Replaces (or inserts) every document in one transaction.
    fn update_batch(&self, docs: &[(String, Value)]) -> EngineResult<()>;

    /// Deletes every id in one transaction; missing ids are ignored.
    fn delete_batch(&self, ids: &[String]) -> EngineResult<()>;

    /// The document with `id`, parsed (or shared, see [`Doc`]).
    fn get(&self, id: &str) -> EngineResult<Option<Doc>>;

    /// Up to `n` documents in `_id` order, from the first whose `_id` is at or after `start`,
    /// each parsed (or shared). Engines with `Capability::RangeScan` only.
    fn range(&self, start: &str, n: usize) -> EngineResult<Vec<Doc>> {
        let _ = (start, n);
        Err("this engine has no ordered range scans".to_owned())
    }

    /// Indexes the top-level string field `field` of every document, present and future.
    /// Engines with `Capability::SecondaryIndex` only.
    fn create_index(&self, field: &str) -> EngineResult<()> {
        let _ = field;
        Err("this engine has no secondary indexes".to_owned())
    }

    /// The documents whose top-level `field` equals `value`, found through the index that
    /// `create_index(field)` made.
    fn find_eq(&self, field: &str, value: &str) -> EngineResult<Vec<Doc>> {
        let _ = (field, value);
        Err("this engine has no secondary indexes".to_owned())
    }

    /// Number of documents.
    fn count(&self) -> EngineResult<u64>;

    /// The engine's own compaction, if it has one (`Ok(false)` if it has none).
    fn compact(&self) -> EngineResult<bool>;

    /// Makes everything durable and releases the engine (the directory may be measured after).
    fn close(self: Box<Self>) -> EngineResult<()>;
}

/// How to open an engine by name.
pub trait EngineKind: Sync {
    /// Stable name used on the command line and in results (`snapbase`, `sqlite`, `redb`, …).
    fn name(&self) -> &'static str;
    /// One line: the configuration used (durability setting, cache size, compression), for the
    /// fairness table in RESULTS.md.
    fn config(&self) -> String;
    /// Opens (creating) an instance in `dir`, an empty directory of its own.
    fn open(&self, dir: &Path, durability: Durability) -> EngineResult<Box<dyn Engine>>;
    /// Whether the engine supports the given phase capability (e.g. secondary indexes).
    fn supports(&self, capability: Capability) -> bool {
        let _ = capability;
        true
    }
    /// Whether the engine has a non-syncing mode (`Durability::Relaxed`); relaxed rows leave
    /// out an engine without one rather than run it durable beside relaxed engines.
    fn has_relaxed_mode(&self) -> bool {
        true
    }
}

/// Capabilities some phases need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Durable commits.
    Durability,
    /// Secondary indexes.
    SecondaryIndex,
    /// Ordered range scans by key.
    RangeScan,
}

// --- added by the harness engineer: the engines and the registry ---

#[cfg(test)]
mod conformance;
pub mod files;
pub mod fjall;
pub mod hashmap;
pub mod lmdb;
#[cfg(feature = "polodb")]
pub mod polodb;
pub mod redb;
pub mod sled;
pub mod snapbase;
pub mod sqlite;
pub mod surrealkv;

/// Every engine compiled in, in the order of the result tables' columns (snapbase first).
pub fn all() -> Vec<&'static dyn EngineKind> {
    vec![
        &snapbase::Snapbase,
        &snapbase::SnapbaseMem,
        &hashmap::HashMapKind,
        &files::Files,
        &sqlite::Sqlite,
        &redb::Redb,
        &sled::Sled,
        &fjall::Fjall,
        &lmdb::Lmdb,
        &surrealkv::SurrealKv,
        #[cfg(feature = "polodb")]
        &polodb::PoloDb,
    ]
}

/// The engine called `name`.
pub fn find(name: &str) -> Option<&'static dyn EngineKind> {
    all().into_iter().find(|kind| kind.name() == name)
}

/// The durability an engine runs the durable-or-not phases with: durable if it has it.
pub fn primary_durability(kind: &dyn EngineKind) -> Durability {
    if kind.supports(Capability::Durability) {
        Durability::Durable
    } else {
        Durability::Relaxed
    }
}

impl Durability {
    /// `durable` or `relaxed`, as in [`crate::results::Measurement::durability`].
    pub fn label(self) -> &'static str {
        match self {
            Durability::Durable => "durable",
            Durability::Relaxed => "relaxed",
        }
    }
}

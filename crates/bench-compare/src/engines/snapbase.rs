//! snapbase itself, on disk (`snapbase`: `Durability::Immediate` when durable,
//! `Durability::None` when relaxed) and in memory (`snapbase-mem`, relaxed only).
//!
//! Every document lives in one collection. A batch is one `insert_many` or one transaction,
//! except that a batch of more than [`MAX_DOCS_PER_COMMIT`] documents is split into commits of
//! that many: snapbase refuses a commit whose WAL record exceeds 64 MiB
//! (`Error::CommitTooLarge`), and the 1M-document bulk load is about 170 MB.

use std::path::Path;

use serde_json::Value;
use snapbase::{Collection, Database};

use super::{Capability, Doc, Durability, Engine, EngineKind, EngineResult};

/// Most documents in one commit: 100k documents of about 180 encoded bytes stay far below the
/// 64 MiB limit on one commit's WAL record.
const MAX_DOCS_PER_COMMIT: usize = 100_000;

/// The one collection every document is stored in.
const COLLECTION: &str = "docs";

/// snapbase on disk.
#[derive(Debug)]
pub struct Snapbase;

/// snapbase in memory (`Database::in_memory()`): no files, so relaxed only.
#[derive(Debug)]
pub struct SnapbaseMem;

/// What both kinds say about reads and batches.
const COMMON: &str =
    "one collection; get returns snapbase's Document (an Arc of the stored version, \
as the library's API does); insert clones each Value (the harness lends \
documents); batches over 100k documents are split into commits of 100k (a commit's WAL record \
is limited to 64 MiB); GC in the background every 500 ms (default)";

impl EngineKind for Snapbase {
    fn name(&self) -> &'static str {
        "snapbase"
    }

    fn config(&self) -> String {
        format!(
            "on disk; durable = Durability::Immediate (WAL fdatasync before a commit returns, \
             group commit), relaxed = Durability::None (written to the OS, no sync); automatic \
             checkpoints and compaction at their defaults; the compact phase is checkpoint() \
             then compact() (compaction merges the data runs, the checkpoint first moves the \
             WAL's commits into one); no cache setting (every document is in memory); no \
             compression; {COMMON}"
        )
    }

    fn open(&self, dir: &Path, durability: Durability) -> EngineResult<Box<dyn Engine>> {
        let mode = match durability {
            Durability::Durable => snapbase::Durability::Immediate,
            Durability::Relaxed => snapbase::Durability::None,
        };
        let db = Database::builder()
            .durability(mode)
            .open(dir)
            .map_err(|e| format!("opening {}: {e}", dir.display()))?;
        Instance::boxed(db, true)
    }

    fn supports(&self, capability: Capability) -> bool {
        // No secondary indexes or ordered range scans yet.
        capability == Capability::Durability
    }
}

impl EngineKind for SnapbaseMem {
    fn name(&self) -> &'static str {
        "snapbase-mem"
    }

    fn config(&self) -> String {
        format!("Database::in_memory(), relaxed only (nothing is written to disk); {COMMON}")
    }

    fn open(&self, _dir: &Path, durability: Durability) -> EngineResult<Box<dyn Engine>> {
        if durability == Durability::Durable {
            return Err("snapbase-mem has no durable mode".to_owned());
        }
        Instance::boxed(Database::in_memory(), false)
    }

    fn supports(&self, _capability: Capability) -> bool {
        // No durability (no files), no secondary indexes, no ordered range scans.
        false
    }
}

/// An open database and its one collection.
struct Instance {
    db: Database,
    docs: Collection,
    on_disk: bool,
}

impl Instance {
    fn boxed(db: Database, on_disk: bool) -> EngineResult<Box<dyn Engine>> {
        let docs = db.collection(COLLECTION).map_err(|e| e.to_string())?;
        Ok(Box::new(Instance { db, docs, on_disk }))
    }
}

impl Engine for Instance {
    fn insert_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        for chunk in docs.chunks(MAX_DOCS_PER_COMMIT) {
            self.docs
                .insert_many(chunk.iter().map(|(_, doc)| doc.clone()))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn update_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        if let [(_, doc)] = docs {
            // An auto-commit upsert checks its precondition at the commit point: no conflict.
            return self
                .docs
                .upsert(doc.clone())
                .map(|_| ())
                .map_err(|e| e.to_string());
        }
        for chunk in docs.chunks(MAX_DOCS_PER_COMMIT) {
            self.db
                .transaction(|tx| {
                    for (_, doc) in chunk {
                        tx.upsert(COLLECTION, doc.clone())?;
                    }
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn delete_batch(&self, ids: &[String]) -> EngineResult<()> {
        if let [id] = ids {
            return self
                .docs
                .delete(id.as_str())
                .map(|_| ())
                .map_err(|e| e.to_string());
        }
        for chunk in ids.chunks(MAX_DOCS_PER_COMMIT) {
            self.db
                .transaction(|tx| {
                    for id in chunk {
                        tx.delete(COLLECTION, id.as_str())?;
                    }
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn get(&self, id: &str) -> EngineResult<Option<Doc>> {
        self.docs
            .get(id)
            .map(|doc| doc.map(Doc::Snapbase))
            .map_err(|e| e.to_string())
    }

    fn count(&self) -> EngineResult<u64> {
        self.docs.len().map(|n| n as u64).map_err(|e| e.to_string())
    }

    fn compact(&self) -> EngineResult<bool> {
        if !self.on_disk {
            return Ok(false);
        }
        // Compaction merges the data runs only; the checkpoint first moves the commits still
        // in the WAL into a run (and lets the WAL be dropped), so that both are reclaimed.
        self.db.checkpoint().map_err(|e| e.to_string())?;
        self.db.compact().map(|_| true).map_err(|e| e.to_string())
    }

    fn close(self: Box<Self>) -> EngineResult<()> {
        self.db.close().map_err(|e| e.to_string())
    }
}

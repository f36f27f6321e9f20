//! sled 0.34 (the last stable release): a lock-free B-link tree over a log-structured page cache.
//!
//! Each document is stored as its serialized JSON under its `_id`; a batch is one atomic
//! `apply_batch`. sled has no per-commit durability setting: durable commits call `flush()`
//! after the batch, relaxed ones rely on sled's background flush every 500 ms.
//!
//! Caveat, recorded in the config line: on Linux sled 0.34's `flush()` writes its log with
//! `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)`, not `fsync`/`fdatasync` (seen with
//! strace: about 4 `sync_file_range` calls per durable commit and no fsync). `sync_file_range`
//! neither flushes the drive's write cache nor persists file metadata such as the file's size,
//! so sled's "durable" commits are cheaper than a real sync and not a guarantee; fjall's
//! benchmarks leave sled out of their durable workloads for this reason (spacejam/sled#1351).

use std::path::Path;

use serde_json::Value;

use super::{Capability, Doc, Durability, Engine, EngineKind, EngineResult};

/// sled's page cache (its default, stated so the configuration is explicit).
const CACHE_BYTES: u64 = 1 << 30;

/// sled's default background flush interval, used for relaxed commits.
const FLUSH_EVERY_MS: u64 = 500;

fn err(e: impl std::fmt::Display) -> String {
    format!("sled: {e}")
}

/// Opens [`SledEngine`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sled;

impl EngineKind for Sled {
    fn name(&self) -> &'static str {
        "sled"
    }

    fn config(&self) -> String {
        "sled 0.34, one tree _id -> JSON bytes, batches via apply_batch; durable = flush() \
         after each batch, relaxed = background flush every 500 ms; cache 1 GiB; no \
         compression; CAVEAT: flush() syncs with sync_file_range, not fsync (no drive-cache \
         flush, no metadata; sled#1351), so its durable commits are cheaper than a real sync \
         and not a guarantee"
            .to_string()
    }

    fn open(&self, dir: &Path, durability: Durability) -> EngineResult<Box<dyn Engine>> {
        let db = sled::Config::new()
            .path(dir.join("sled"))
            .cache_capacity(CACHE_BYTES)
            .use_compression(false)
            .flush_every_ms(Some(FLUSH_EVERY_MS))
            .open()
            .map_err(err)?;
        Ok(Box::new(SledEngine { db, durability }))
    }

    fn supports(&self, capability: Capability) -> bool {
        match capability {
            Capability::Durability | Capability::RangeScan => true,
            Capability::SecondaryIndex => false,
        }
    }
}

/// An open sled database.
#[derive(Debug)]
pub struct SledEngine {
    db: sled::Db,
    durability: Durability,
}

impl SledEngine {
    fn apply(&self, batch: sled::Batch) -> EngineResult<()> {
        self.db.apply_batch(batch).map_err(err)?;
        if self.durability == Durability::Durable {
            self.db.flush().map_err(err)?;
        }
        Ok(())
    }

    fn put_all(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        let mut batch = sled::Batch::default();
        for (id, doc) in docs {
            batch.insert(id.as_bytes(), serde_json::to_vec(doc).map_err(err)?);
        }
        self.apply(batch)
    }
}

impl Engine for SledEngine {
    fn insert_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.put_all(docs)
    }

    fn update_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.put_all(docs)
    }

    fn delete_batch(&self, ids: &[String]) -> EngineResult<()> {
        let mut batch = sled::Batch::default();
        for id in ids {
            batch.remove(id.as_bytes());
        }
        self.apply(batch)
    }

    fn range(&self, start: &str, n: usize) -> EngineResult<Vec<Doc>> {
        self.db
            .range(start.as_bytes()..)
            .take(n)
            .map(|entry| {
                let (_, value) = entry.map_err(err)?;
                serde_json::from_slice(&value).map(Doc::Parsed).map_err(err)
            })
            .collect()
    }

    fn get(&self, id: &str) -> EngineResult<Option<Doc>> {
        match self.db.get(id.as_bytes()).map_err(err)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(|v| Some(Doc::Parsed(v)))
                .map_err(err),
            None => Ok(None),
        }
    }

    fn count(&self) -> EngineResult<u64> {
        // sled's `len` walks the whole tree.
        u64::try_from(self.db.len()).map_err(err)
    }

    fn compact(&self) -> EngineResult<bool> {
        // sled has no compaction call: its page cache rewrites segments in the background.
        Ok(false)
    }

    fn close(self: Box<Self>) -> EngineResult<()> {
        self.db.flush().map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::conformance;

    #[test]
    fn sled_round_trip() {
        conformance::round_trip(&Sled, &[Durability::Durable, Durability::Relaxed], false);
    }
}

//! fjall 3: an LSM tree, used through its transactional keyspace (`SingleWriterTxDatabase`, the
//! mode redb's benchmark uses for fjall).
//!
//! Each document is stored as its serialized JSON under its `_id`; a batch is one write
//! transaction. Durable commits use `PersistMode::SyncAll` (fsync of the journal before `commit`
//! returns); relaxed ones fjall's default for transactions, `PersistMode::Buffer` (written to the
//! OS, not synced).

use std::path::Path;

use fjall::config::CompressionPolicy;
use fjall::{
    CompressionType, KeyspaceCreateOptions, PersistMode, Readable, SingleWriterTxDatabase,
    SingleWriterTxKeyspace,
};
use serde_json::Value;

use super::{Capability, Doc, Durability, Engine, EngineKind, EngineResult};

/// fjall's block cache, set to the same size as the other engines' caches.
const CACHE_BYTES: u64 = 1 << 30;

fn err(e: impl std::fmt::Display) -> String {
    format!("fjall: {e}")
}

/// Opens [`FjallEngine`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fjall;

impl EngineKind for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn config(&self) -> String {
        "fjall 3, SingleWriterTxDatabase, one keyspace _id -> JSON bytes; durable = \
         PersistMode::SyncAll per commit (fsync), relaxed = PersistMode::Buffer (fjall's \
         default: to the OS, unsynced); block cache 1 GiB; compression off (fjall's default \
         is LZ4 on levels 2+; turned off to match the uncompressed engines)"
            .to_string()
    }

    fn open(&self, dir: &Path, durability: Durability) -> EngineResult<Box<dyn Engine>> {
        let db = SingleWriterTxDatabase::builder(dir.join("fjall"))
            .cache_size(CACHE_BYTES)
            .open()
            .map_err(err)?;
        let docs = db
            .keyspace("docs", || {
                KeyspaceCreateOptions::default()
                    .data_block_compression_policy(CompressionPolicy::all(CompressionType::None))
            })
            .map_err(err)?;
        Ok(Box::new(FjallEngine {
            db,
            docs,
            durability,
        }))
    }

    fn supports(&self, capability: Capability) -> bool {
        match capability {
            Capability::Durability | Capability::RangeScan => true,
            Capability::SecondaryIndex => false,
        }
    }
}

/// An open fjall database and its one keyspace.
pub struct FjallEngine {
    db: SingleWriterTxDatabase,
    docs: SingleWriterTxKeyspace,
    durability: Durability,
}

impl std::fmt::Debug for FjallEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallEngine")
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl FjallEngine {
    fn write_tx(&self) -> fjall::SingleWriterWriteTx<'_> {
        match self.durability {
            Durability::Durable => self.db.write_tx().durability(Some(PersistMode::SyncAll)),
            Durability::Relaxed => self.db.write_tx(),
        }
    }

    fn put_all(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        let mut tx = self.write_tx();
        for (id, doc) in docs {
            tx.insert(
                &self.docs,
                id.as_str(),
                serde_json::to_vec(doc).map_err(err)?,
            );
        }
        tx.commit().map_err(err)
    }
}

impl Engine for FjallEngine {
    fn insert_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.put_all(docs)
    }

    fn update_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.put_all(docs)
    }

    fn delete_batch(&self, ids: &[String]) -> EngineResult<()> {
        let mut tx = self.write_tx();
        for id in ids {
            tx.remove(&self.docs, id.as_str());
        }
        tx.commit().map_err(err)
    }

    fn range(&self, start: &str, n: usize) -> EngineResult<Vec<Doc>> {
        self.db
            .read_tx()
            .range(&self.docs, start..)
            .take(n)
            .map(|guard| {
                let value = guard.value().map_err(err)?;
                serde_json::from_slice(&value).map(Doc::Parsed).map_err(err)
            })
            .collect()
    }

    fn get(&self, id: &str) -> EngineResult<Option<Doc>> {
        match self.docs.get(id).map_err(err)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(|v| Some(Doc::Parsed(v)))
                .map_err(err),
            None => Ok(None),
        }
    }

    fn count(&self) -> EngineResult<u64> {
        // An LSM tree has no exact count: this iterates a snapshot.
        let n = self.db.read_tx().len(&self.docs).map_err(err)?;
        u64::try_from(n).map_err(err)
    }

    fn compact(&self) -> EngineResult<bool> {
        // Flush the memtable so its data is compacted too, then a major compaction, which drops
        // tombstones and shadowed versions no snapshot can see. (`major_compact` is public but
        // hidden from fjall's documentation.)
        let keyspace = self.docs.inner();
        keyspace.rotate_memtable_and_wait().map_err(err)?;
        keyspace.major_compact().map_err(err)?;
        Ok(true)
    }

    fn close(self: Box<Self>) -> EngineResult<()> {
        self.db.persist(PersistMode::SyncAll).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::conformance;

    #[test]
    fn fjall_round_trip() {
        conformance::round_trip(&Fjall, &[Durability::Durable, Durability::Relaxed], true);
    }
}

//! redb: a copy-on-write B-tree in one file, one writer at a time, MVCC readers.
//!
//! Each document is stored as its serialized JSON under its `_id` in one table. Durability is
//! set per write transaction: `Durability::Immediate` (fsync before `commit` returns) or
//! `Durability::None` (not persisted until a later durable commit; redb's non-syncing mode).

use std::path::Path;
use std::sync::RwLock;

use redb::{
    Database, Durability as RedbDurability, ReadableDatabase, ReadableTableMetadata,
    TableDefinition,
};
use serde_json::Value;

use super::{Capability, Doc, Durability, Engine, EngineKind, EngineResult};

/// The one table: `_id` → serialized JSON document.
const DOCS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("docs");

/// redb's page cache, set to the same size as the other engines' caches.
const CACHE_BYTES: usize = 1 << 30;

fn err(e: impl std::fmt::Display) -> String {
    format!("redb: {e}")
}

/// Opens [`RedbEngine`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Redb;

impl EngineKind for Redb {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn config(&self) -> String {
        "redb, one table _id -> JSON bytes; durable = Durability::Immediate per commit \
         (fdatasync), relaxed = Durability::None (no sync); page cache 1 GiB; no compression \
         (redb has none)"
            .to_string()
    }

    fn open(&self, dir: &Path, durability: Durability) -> EngineResult<Box<dyn Engine>> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join("redb.db"))
            .map_err(err)?;
        // Create the table up front, so that readers never see "table does not exist".
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(DOCS).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(Box::new(RedbEngine {
            db: RwLock::new(db),
            durability,
        }))
    }

    fn supports(&self, capability: Capability) -> bool {
        // Ordered tables, but no secondary indexes (an index would be a second table the
        // adapter maintains by hand).
        capability != Capability::SecondaryIndex
    }
}

/// An open redb database.
///
/// The `RwLock` exists only because `Database::compact` takes `&mut self`: every other
/// operation takes the read side (one uncontended atomic next to redb's own read-transaction
/// bookkeeping), and `compact` the write side.
#[derive(Debug)]
pub struct RedbEngine {
    db: RwLock<Database>,
    durability: Durability,
}

impl RedbEngine {
    fn db(&self) -> EngineResult<std::sync::RwLockReadGuard<'_, Database>> {
        self.db
            .read()
            .map_err(|_| "redb: lock poisoned".to_string())
    }

    fn write(
        &self,
        f: impl FnOnce(&mut redb::Table<'_, &str, &[u8]>) -> EngineResult<()>,
    ) -> EngineResult<()> {
        let db = self.db()?;
        let mut txn = db.begin_write().map_err(err)?;
        txn.set_durability(match self.durability {
            Durability::Durable => RedbDurability::Immediate,
            Durability::Relaxed => RedbDurability::None,
        })
        .map_err(err)?;
        {
            let mut table = txn.open_table(DOCS).map_err(err)?;
            f(&mut table)?;
        }
        txn.commit().map_err(err)
    }

    fn put_all(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.write(|table| {
            for (id, doc) in docs {
                let bytes = serde_json::to_vec(doc).map_err(err)?;
                table.insert(id.as_str(), bytes.as_slice()).map_err(err)?;
            }
            Ok(())
        })
    }
}

impl Engine for RedbEngine {
    fn insert_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.put_all(docs)
    }

    fn update_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.put_all(docs)
    }

    fn delete_batch(&self, ids: &[String]) -> EngineResult<()> {
        self.write(|table| {
            for id in ids {
                table.remove(id.as_str()).map_err(err)?;
            }
            Ok(())
        })
    }

    fn range(&self, start: &str, n: usize) -> EngineResult<Vec<Doc>> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(err)?;
        let table = txn.open_table(DOCS).map_err(err)?;
        let mut out = Vec::with_capacity(n);
        for entry in table.range(start..).map_err(err)?.take(n) {
            let (_, value) = entry.map_err(err)?;
            out.push(Doc::Parsed(
                serde_json::from_slice(value.value()).map_err(err)?,
            ));
        }
        Ok(out)
    }

    fn get(&self, id: &str) -> EngineResult<Option<Doc>> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(err)?;
        let table = txn.open_table(DOCS).map_err(err)?;
        match table.get(id).map_err(err)? {
            Some(guard) => serde_json::from_slice(guard.value())
                .map(|v| Some(Doc::Parsed(v)))
                .map_err(err),
            None => Ok(None),
        }
    }

    fn count(&self) -> EngineResult<u64> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(err)?;
        let table = txn.open_table(DOCS).map_err(err)?;
        table.len().map_err(err)
    }

    fn compact(&self) -> EngineResult<bool> {
        let mut db = self
            .db
            .write()
            .map_err(|_| "redb: lock poisoned".to_string())?;
        // `compact` returns whether it could do anything; it ran either way.
        db.compact().map_err(err)?;
        Ok(true)
    }

    fn close(self: Box<Self>) -> EngineResult<()> {
        let db = self
            .db
            .into_inner()
            .map_err(|_| "redb: lock poisoned".to_string())?;
        if self.durability == Durability::Relaxed {
            // Make the non-durable commits durable: an empty Immediate commit persists them.
            let mut txn = db.begin_write().map_err(err)?;
            txn.set_durability(RedbDurability::Immediate).map_err(err)?;
            txn.commit().map_err(err)?;
        }
        drop(db);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::conformance;

    #[test]
    fn redb_round_trip() {
        conformance::round_trip(&Redb, &[Durability::Durable, Durability::Relaxed], true);
    }
}

//! PoloDB: an embedded, MongoDB-like document store over RocksDB (`TransactionDB`, built from
//! C++ source: hence the `polodb` cargo feature).
//!
//! Documents go in one collection as BSON (converted from and to JSON through serde), under the
//! `_id` they carry; a batch is one PoloDB transaction. Durability: every PoloDB transaction
//! commits with RocksDB's `sync = true` (hard-coded in polodb_core 5.3), and there is no option
//! to turn it off, so PoloDB has no relaxed mode and `open` refuses `Durability::Relaxed` rather
//! than run durable in a relaxed row. Its RocksDB runs with RocksDB's default options
//! (PoloDB exposes none): RocksDB's default block cache, not 1 GiB. polodb_core builds RocksDB
//! without any compression library (none of polodb-librocksdb-sys's snappy/lz4/zstd/zlib
//! features), so its tables are stored uncompressed, like the other engines' data.
//!
//! Point operations use the `{"_id": id}` filter, which PoloDB compiles to a primary-key lookup;
//! deletes are one `delete_one` per id inside the transaction, because an `{"_id": {"$in":
//! [...]}}` filter is not a primary-key query in PoloDB and would scan the collection.

use std::path::Path;

use polodb_core::bson::{doc, Document};
use polodb_core::options::UpdateOptions;
use polodb_core::{CollectionT, Database, IndexModel};
use serde_json::Value;

use super::{Capability, Doc, Durability, Engine, EngineKind, EngineResult};

/// The collection every document goes in.
const COLLECTION: &str = "docs";

fn err(e: impl std::fmt::Display) -> String {
    format!("polodb: {e}")
}

/// `doc` as the body of a `$set`: every field but `_id`, which PoloDB does not let an update
/// change.
fn set_fields(doc: &Value) -> EngineResult<Document> {
    let mut fields = polodb_core::bson::to_document(doc).map_err(err)?;
    fields.remove("_id");
    Ok(fields)
}

/// Opens [`PoloDbEngine`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoloDb;

impl EngineKind for PoloDb {
    fn name(&self) -> &'static str {
        "polodb"
    }

    fn config(&self) -> String {
        "PoloDB (MongoDB-like API over RocksDB TransactionDB), one collection, documents \
         as BSON; durable only: every transaction commits with RocksDB sync=true (fdatasync \
         of the WAL) and PoloDB has no option to relax it; RocksDB's default options, which \
         PoloDB does not expose: RocksDB's default block cache (not 1 GiB); no compression \
         (its RocksDB is built without snappy/lz4/zstd/zlib); no compaction call; the index \
         phase = create_index on data and find({data: value}); no range reads, since a $gte \
         filter on _id scans the whole collection in PoloDB 5.3"
            .to_string()
    }

    fn open(&self, dir: &Path, durability: Durability) -> EngineResult<Box<dyn Engine>> {
        if durability == Durability::Relaxed {
            return Err("polodb: no relaxed mode (every commit syncs)".to_string());
        }
        let db = Database::open_path(dir.join("polodb")).map_err(err)?;
        Ok(Box::new(PoloDbEngine { db }))
    }

    fn has_relaxed_mode(&self) -> bool {
        false
    }

    fn supports(&self, capability: Capability) -> bool {
        match capability {
            // `create_index` on a field, used by equality queries on it.
            Capability::Durability | Capability::SecondaryIndex => true,
            // A `$gte` filter on `_id` is not planned as a key range: PoloDB 5.3's codegen
            // uses the primary key only for an equality on `_id`, so every range read would
            // scan the whole collection.
            Capability::RangeScan => false,
        }
    }
}

/// An open PoloDB database.
pub struct PoloDbEngine {
    db: Database,
}

impl std::fmt::Debug for PoloDbEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoloDbEngine").finish_non_exhaustive()
    }
}

impl PoloDbEngine {
    /// Runs `f` on the collection inside one transaction, and commits it.
    fn in_transaction(
        &self,
        f: impl FnOnce(&polodb_core::TransactionalCollection<Value>) -> EngineResult<()>,
    ) -> EngineResult<()> {
        let txn = self.db.start_transaction().map_err(err)?;
        let collection = txn.collection::<Value>(COLLECTION);
        match f(&collection) {
            Ok(()) => txn.commit().map_err(err),
            Err(e) => {
                // The operation's error is the one to report; a failed rollback adds nothing.
                let _ = txn.rollback();
                Err(e)
            }
        }
    }
}

impl Engine for PoloDbEngine {
    fn insert_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.in_transaction(|c| {
            c.insert_many(docs.iter().map(|(_, doc)| doc))
                .map(drop)
                .map_err(err)
        })
    }

    fn update_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.in_transaction(|c| {
            for (id, doc) in docs {
                // `$set` of every field with upsert: how a MongoDB user updates a document by
                // `_id`. (It keeps fields the new version lacks; the workloads' documents all
                // have the same fields.)
                c.update_one_with_options(
                    doc! {"_id": id.as_str()},
                    doc! {"$set": set_fields(doc)?},
                    UpdateOptions::builder().upsert(true).build(),
                )
                .map_err(err)?;
            }
            Ok(())
        })
    }

    fn delete_batch(&self, ids: &[String]) -> EngineResult<()> {
        self.in_transaction(|c| {
            for id in ids {
                c.delete_one(doc! {"_id": id.as_str()}).map_err(err)?;
            }
            Ok(())
        })
    }

    fn get(&self, id: &str) -> EngineResult<Option<Doc>> {
        self.db
            .collection::<Value>(COLLECTION)
            .find_one(doc! {"_id": id})
            .map(|found| found.map(Doc::Parsed))
            .map_err(err)
    }

    fn create_index(&self, field: &str) -> EngineResult<()> {
        self.db
            .collection::<Value>(COLLECTION)
            .create_index(IndexModel {
                keys: doc! {field: 1},
                options: None,
            })
            .map_err(err)
    }

    fn find_eq(&self, field: &str, value: &str) -> EngineResult<Vec<Doc>> {
        self.db
            .collection::<Value>(COLLECTION)
            .find(doc! {field: value})
            .run()
            .map_err(err)?
            .map(|found| found.map(Doc::Parsed).map_err(err))
            .collect()
    }

    fn count(&self) -> EngineResult<u64> {
        // PoloDB counts by iterating the collection.
        self.db
            .collection::<Value>(COLLECTION)
            .count_documents()
            .map_err(err)
    }

    fn compact(&self) -> EngineResult<bool> {
        // PoloDB exposes no compaction: RocksDB compacts in the background.
        Ok(false)
    }

    fn close(self: Box<Self>) -> EngineResult<()> {
        // Dropping the last handle waits for RocksDB's background compactions, flushes the WAL
        // and closes the database.
        drop(self.db);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::conformance::{doc, temp_dir};

    #[test]
    fn polodb_round_trip() {
        let dir = temp_dir("polodb");
        assert!(PoloDb.open(&dir, Durability::Relaxed).is_err());
        let engine = PoloDb.open(&dir, Durability::Durable).unwrap();
        let docs: Vec<_> = (0..100).map(|i| doc(i, 0)).collect();
        engine.insert_batch(&docs).unwrap();
        assert_eq!(engine.get("id-0007").unwrap().as_deref(), Some(&docs[7].1));
        assert_eq!(engine.get("missing").unwrap().as_deref(), None);
        engine.create_index("tag").unwrap();
        let tagged = |tag: &str| -> Vec<Value> {
            let found = engine.find_eq("tag", tag).unwrap();
            found.iter().map(|d| Value::clone(d)).collect()
        };
        assert_eq!(tagged("tag-0042"), [docs[42].1.clone()]);
        assert!(tagged("no such tag").is_empty());
        let updates: Vec<_> = (0..50).map(|i| doc(i, 1)).chain([doc(200, 1)]).collect();
        engine.update_batch(&updates).unwrap();
        assert_eq!(engine.get("id-0007").unwrap().unwrap()["v"], 1);
        // The index follows updates and deletes.
        assert_eq!(tagged("tag-0007"), [doc(7, 1).1]);
        assert_eq!(
            engine.get("id-0200").unwrap().as_deref(),
            Some(&doc(200, 1).1)
        );
        let mut ids: Vec<String> = (0..25).map(|i| format!("id-{i:04}")).collect();
        ids.push("id-0200".into());
        ids.push("missing".into());
        engine.delete_batch(&ids).unwrap();
        assert_eq!(engine.get("id-0007").unwrap().as_deref(), None);
        assert!(tagged("tag-0007").is_empty());
        assert_eq!(engine.count().unwrap(), 75);
        assert!(!engine.compact().unwrap());
        engine.close().unwrap();

        let engine = PoloDb.open(&dir, Durability::Durable).unwrap();
        assert_eq!(engine.count().unwrap(), 75);
        assert_eq!(engine.get("id-0030").unwrap().unwrap()["v"], 1);
        assert_eq!(engine.get("id-0080").unwrap().as_deref(), Some(&docs[80].1));
        engine.close().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

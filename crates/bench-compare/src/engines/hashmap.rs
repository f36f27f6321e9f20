//! The in-memory baseline: a `RwLock<HashMap<String, Arc<Value>>>`, relaxed only. It is the
//! ceiling of "store and fetch a parsed document" with one lock and no versions: readers share
//! the lock, a writer excludes everyone for the length of its batch.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::Value;

use super::{Capability, Doc, Durability, Engine, EngineKind, EngineResult};

/// The `RwLock<HashMap>` baseline.
#[derive(Debug)]
pub struct HashMapKind;

impl EngineKind for HashMapKind {
    fn name(&self) -> &'static str {
        "hashmap"
    }

    fn config(&self) -> String {
        "std RwLock<HashMap<String, Arc<Value>>> in memory, relaxed only (nothing on disk); \
         a batch holds the write lock for its whole length; get clones the Arc under the read \
         lock and returns it"
            .to_owned()
    }

    fn open(&self, _dir: &Path, durability: Durability) -> EngineResult<Box<dyn Engine>> {
        if durability == Durability::Durable {
            return Err("hashmap has no durable mode".to_owned());
        }
        Ok(Box::new(Map::default()))
    }

    fn supports(&self, capability: Capability) -> bool {
        // Unordered and without indexes; `Capability::Durability` is not there either.
        let _ = capability;
        false
    }
}

#[derive(Default)]
struct Map {
    docs: RwLock<HashMap<String, Arc<Value>>>,
}

impl Engine for Map {
    fn insert_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.update_batch(docs)
    }

    fn update_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        let mut map = self.docs.write().unwrap_or_else(PoisonError::into_inner);
        for (id, doc) in docs {
            map.insert(id.clone(), Arc::new(doc.clone()));
        }
        Ok(())
    }

    fn delete_batch(&self, ids: &[String]) -> EngineResult<()> {
        let mut map = self.docs.write().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            map.remove(id);
        }
        Ok(())
    }

    fn get(&self, id: &str) -> EngineResult<Option<Doc>> {
        let doc = self
            .docs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned();
        Ok(doc.map(Doc::Shared))
    }

    fn count(&self) -> EngineResult<u64> {
        let map = self.docs.read().unwrap_or_else(PoisonError::into_inner);
        Ok(map.len() as u64)
    }

    fn compact(&self) -> EngineResult<bool> {
        Ok(false)
    }

    fn close(self: Box<Self>) -> EngineResult<()> {
        Ok(())
    }
}

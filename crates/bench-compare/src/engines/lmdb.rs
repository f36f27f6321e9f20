//! LMDB through heed: a copy-on-write B+tree in a memory-mapped file, one writer, MVCC readers.
//!
//! Each document is stored as its serialized JSON under its `_id` in the unnamed database; a
//! batch is one write transaction. Durable commits are LMDB's default (the data and meta pages
//! are synced before `commit` returns); relaxed ones open the environment with `NO_SYNC`
//! (nothing is synced until `force_sync`, which `close` calls).

use std::ops::Bound;
use std::path::Path;

use heed::types::{Bytes, Str};
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions};
use serde_json::Value;

use super::{Capability, Doc, Durability, Engine, EngineKind, EngineResult};

/// Size of the memory map, the largest the database file may grow to. It reserves address space
/// only: the file grows as pages are used, and the page cache is the OS's.
const MAP_SIZE: usize = 16 << 30;

/// Reader slots: more than the most threads any workload runs at once.
const MAX_READERS: u32 = 512;

fn err(e: impl std::fmt::Display) -> String {
    format!("lmdb: {e}")
}

/// Opens [`LmdbEngine`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lmdb;

impl EngineKind for Lmdb {
    fn name(&self) -> &'static str {
        "lmdb"
    }

    fn config(&self) -> String {
        "LMDB via heed, unnamed database _id -> JSON bytes; durable = default (fdatasync \
         per commit, meta page written O_DSYNC), relaxed = NO_SYNC env flag; map_size 16 GiB \
         (address space, not memory); no cache of its own (reads through mmap, so the OS page \
         cache is its cache, not capped at 1 GiB); no compression; no compaction call \
         (offline copy only)"
            .to_string()
    }

    fn open(&self, dir: &Path, durability: Durability) -> EngineResult<Box<dyn Engine>> {
        let path = dir.join("lmdb");
        std::fs::create_dir_all(&path).map_err(err)?;
        let mut options = EnvOpenOptions::new();
        options.map_size(MAP_SIZE).max_readers(MAX_READERS);
        if durability == Durability::Relaxed {
            // SAFETY: NO_SYNC only drops the fsync on commit: a crash of the OS may lose the
            // latest commits (or, per LMDB's docs, corrupt the database if the file system does
            // not preserve write order); a crash of this process loses nothing. That is the
            // relaxed mode being measured, and `close` syncs.
            unsafe {
                options.flags(EnvFlags::NO_SYNC);
            }
        }
        // SAFETY: the directory is this engine's own; nothing else in this process or any other
        // opens or modifies its files while the `Env` is open, and no transaction outlives it.
        let env = unsafe { options.open(&path) }.map_err(err)?;
        let wtxn = env.write_txn().map_err(err)?;
        let db = env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
                let db = opener.create_database::<Str, Bytes>(wtxn, None)?;
                Ok(CommitOrAbort::<_, ()>::Commit(db))
            })
            .map_err(err)?
            .unwrap_commit();
        Ok(Box::new(LmdbEngine { env, db }))
    }

    fn supports(&self, capability: Capability) -> bool {
        match capability {
            Capability::Durability | Capability::RangeScan => true,
            Capability::SecondaryIndex => false,
        }
    }
}

/// An open LMDB environment and its one database.
#[derive(Debug)]
pub struct LmdbEngine {
    env: Env,
    db: Database<'static, Str, Bytes>,
}

impl LmdbEngine {
    fn put_all(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        let mut wtxn = self.env.write_txn().map_err(err)?;
        for (id, doc) in docs {
            let bytes = serde_json::to_vec(doc).map_err(err)?;
            self.db.put(&mut wtxn, id, &bytes).map_err(err)?;
        }
        wtxn.commit().map_err(err)
    }
}

impl Engine for LmdbEngine {
    fn insert_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.put_all(docs)
    }

    fn update_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.put_all(docs)
    }

    fn delete_batch(&self, ids: &[String]) -> EngineResult<()> {
        let mut wtxn = self.env.write_txn().map_err(err)?;
        for id in ids {
            self.db.delete(&mut wtxn, id).map_err(err)?;
        }
        wtxn.commit().map_err(err)
    }

    fn range(&self, start: &str, n: usize) -> EngineResult<Vec<Doc>> {
        let rtxn = self.env.read_txn().map_err(err)?;
        let mut out = Vec::with_capacity(n);
        let bounds = (Bound::Included(start), Bound::Unbounded);
        for entry in self.db.range(&rtxn, &bounds).map_err(err)?.take(n) {
            let (_, bytes) = entry.map_err(err)?;
            out.push(Doc::Parsed(serde_json::from_slice(bytes).map_err(err)?));
        }
        Ok(out)
    }

    fn get(&self, id: &str) -> EngineResult<Option<Doc>> {
        let rtxn = self.env.read_txn().map_err(err)?;
        match self.db.get(&rtxn, id).map_err(err)? {
            Some(bytes) => serde_json::from_slice(bytes)
                .map(|v| Some(Doc::Parsed(v)))
                .map_err(err),
            None => Ok(None),
        }
    }

    fn count(&self) -> EngineResult<u64> {
        // LMDB keeps the entry count in the database's stat.
        let rtxn = self.env.read_txn().map_err(err)?;
        self.db.len(&rtxn).map_err(err)
    }

    fn compact(&self) -> EngineResult<bool> {
        // LMDB reuses freed pages but never shrinks its file; its only compaction is an offline
        // copy (`mdb_env_copy2` with MDB_CP_COMPACT) to a new file.
        Ok(false)
    }

    fn close(self: Box<Self>) -> EngineResult<()> {
        self.env.force_sync().map_err(err)?;
        let LmdbEngine { env, db: _ } = *self;
        env.prepare_for_closing().wait();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::conformance;

    #[test]
    fn lmdb_round_trip() {
        conformance::round_trip(&Lmdb, &[Durability::Durable, Durability::Relaxed], false);
    }
}

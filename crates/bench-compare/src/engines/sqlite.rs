//! SQLite (bundled, through rusqlite) used as a document store, the way people do: one table
//! `docs(id TEXT PRIMARY KEY, doc TEXT)` holding JSON, WAL journal mode, `synchronous=FULL` for
//! durable commits and `NORMAL` for relaxed ones.
//!
//! A `Connection` is not `Sync`, so the engine keeps a pool: each operation checks out an idle
//! connection (opening a new one when none is idle) and returns it afterwards. Threads that read
//! at the same time therefore use connections of their own, and WAL lets them read while a writer
//! commits. Write transactions begin `IMMEDIATE`, so that concurrent writers queue on SQLite's
//! write lock (with a busy timeout) instead of failing to upgrade a read lock.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;

use super::{Capability, Doc, Durability, Engine, EngineKind, EngineResult};

/// Page cache per connection, in KiB (SQLite's negative `cache_size` unit): 1 GiB, the same
/// size as the other engines' caches. SQLite's page cache is per connection.
const CACHE_KIB: i64 = 1 << 20;

/// How long a writer waits for SQLite's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(600);

fn err(e: impl std::fmt::Display) -> String {
    format!("sqlite: {e}")
}

/// Opens [`SqliteEngine`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sqlite;

impl EngineKind for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn config(&self) -> String {
        format!(
            "SQLite {} (bundled), table docs(id TEXT PRIMARY KEY, doc TEXT) holding JSON; \
             journal_mode=WAL; durable = synchronous=FULL (fsync of the WAL per commit), \
             relaxed = synchronous=NORMAL (syncs only at checkpoints); \
             page cache 1 GiB per connection, one pooled connection per concurrent thread \
             (so N reader threads may hold N caches); no mmap; no compression; range reads = \
             id >= ? ORDER BY id LIMIT 10 on the primary key; the index phase = an expression \
             index on json_extract(doc, '$.data'), queried with the same expression",
            rusqlite::version()
        )
    }

    fn open(&self, dir: &Path, durability: Durability) -> EngineResult<Box<dyn Engine>> {
        let engine = SqliteEngine {
            path: dir.join("sqlite.db"),
            durability,
            pool: Mutex::new(Vec::new()),
        };
        let conn = engine.connect()?;
        // WAL mode is a property of the database file: set once, kept by every connection.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("sqlite: journal_mode is {mode}, not wal"));
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS docs (id TEXT PRIMARY KEY, doc TEXT NOT NULL)",
        )
        .map_err(err)?;
        engine.checkin(conn)?;
        Ok(Box::new(engine))
    }

    fn supports(&self, capability: Capability) -> bool {
        match capability {
            // Durable commits; expression indexes on json_extract; ordered scans of the primary
            // key index.
            Capability::Durability | Capability::SecondaryIndex | Capability::RangeScan => true,
        }
    }
}

/// `json_extract(doc, '$.<field>')`, the expression both the index and the queries use;
/// `field` is spliced into SQL, so only plain names are accepted.
fn json_path(field: &str) -> EngineResult<String> {
    if !field.is_empty()
        && field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(format!("json_extract(doc, '$.{field}')"))
    } else {
        Err(format!(
            "sqlite: the field name {field:?} is not a plain identifier"
        ))
    }
}

/// An open SQLite database and its pool of connections.
#[derive(Debug)]
pub struct SqliteEngine {
    path: PathBuf,
    durability: Durability,
    /// Idle connections. The lock is held only to pop or push one.
    pool: Mutex<Vec<Connection>>,
}

impl SqliteEngine {
    /// Opens a new connection with the per-connection settings.
    fn connect(&self) -> EngineResult<Connection> {
        let conn = Connection::open(&self.path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        let synchronous = match self.durability {
            Durability::Durable => "FULL",
            Durability::Relaxed => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)
            .map_err(err)?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)
            .map_err(err)?;
        Ok(conn)
    }

    fn checkout(&self) -> EngineResult<Connection> {
        let idle = self
            .pool
            .lock()
            .map_err(|_| "sqlite: pool lock poisoned".to_string())?
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
    }

    fn checkin(&self, conn: Connection) -> EngineResult<()> {
        self.pool
            .lock()
            .map_err(|_| "sqlite: pool lock poisoned".to_string())?
            .push(conn);
        Ok(())
    }

    /// Runs `f` on a pooled connection, returning the connection to the pool afterwards.
    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> EngineResult<T>) -> EngineResult<T> {
        let mut conn = self.checkout()?;
        let result = f(&mut conn);
        self.checkin(conn)?;
        result
    }

    /// The documents `sql` selects (one `doc` column), parsed.
    fn query_docs(&self, sql: &str, params: &[&dyn rusqlite::ToSql]) -> EngineResult<Vec<Doc>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(sql).map_err(err)?;
            let rows = stmt
                .query_map(params, |row| row.get::<_, String>(0))
                .map_err(err)?;
            rows.map(|text| {
                serde_json::from_str(&text.map_err(err)?)
                    .map(Doc::Parsed)
                    .map_err(err)
            })
            .collect()
        })
    }

    /// Runs `sql` once per item in one `IMMEDIATE` transaction.
    fn write_each<T>(
        &self,
        sql: &str,
        items: &[T],
        mut bind: impl FnMut(&mut rusqlite::CachedStatement<'_>, &T) -> EngineResult<()>,
    ) -> EngineResult<()> {
        self.with_conn(|conn| {
            let txn = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            {
                let mut stmt = txn.prepare_cached(sql).map_err(err)?;
                for item in items {
                    bind(&mut stmt, item)?;
                }
            }
            txn.commit().map_err(err)
        })
    }
}

impl Engine for SqliteEngine {
    fn insert_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.write_each(
            "INSERT INTO docs (id, doc) VALUES (?1, ?2)",
            docs,
            |stmt, (id, doc)| {
                let text = serde_json::to_string(doc).map_err(err)?;
                stmt.execute(params![id, text]).map(drop).map_err(err)
            },
        )
    }

    fn update_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.write_each(
            "INSERT INTO docs (id, doc) VALUES (?1, ?2) \
             ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
            docs,
            |stmt, (id, doc)| {
                let text = serde_json::to_string(doc).map_err(err)?;
                stmt.execute(params![id, text]).map(drop).map_err(err)
            },
        )
    }

    fn delete_batch(&self, ids: &[String]) -> EngineResult<()> {
        self.write_each("DELETE FROM docs WHERE id = ?1", ids, |stmt, id| {
            stmt.execute(params![id]).map(drop).map_err(err)
        })
    }

    fn range(&self, start: &str, n: usize) -> EngineResult<Vec<Doc>> {
        let limit = i64::try_from(n).map_err(err)?;
        self.query_docs(
            "SELECT doc FROM docs WHERE id >= ?1 ORDER BY id LIMIT ?2",
            params![start, limit],
        )
    }

    fn create_index(&self, field: &str) -> EngineResult<()> {
        let sql = format!(
            "CREATE INDEX IF NOT EXISTS docs_{field} ON docs ({})",
            json_path(field)?
        );
        self.with_conn(|conn| conn.execute_batch(&sql).map_err(err))
    }

    fn find_eq(&self, field: &str, value: &str) -> EngineResult<Vec<Doc>> {
        // The same expression as the index's, so that the planner uses it.
        let sql = format!("SELECT doc FROM docs WHERE {} = ?1", json_path(field)?);
        self.query_docs(&sql, params![value])
    }

    fn get(&self, id: &str) -> EngineResult<Option<Doc>> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT doc FROM docs WHERE id = ?1")
                .map_err(err)?;
            let text: Option<String> = stmt
                .query_row(params![id], |row| row.get(0))
                .optional()
                .map_err(err)?;
            text.map(|t| serde_json::from_str(&t).map(Doc::Parsed).map_err(err))
                .transpose()
        })
    }

    fn count(&self) -> EngineResult<u64> {
        self.with_conn(|conn| {
            let n: i64 = conn
                .query_row("SELECT COUNT(*) FROM docs", [], |row| row.get(0))
                .map_err(err)?;
            u64::try_from(n).map_err(err)
        })
    }

    fn compact(&self) -> EngineResult<bool> {
        self.with_conn(|conn| {
            conn.execute_batch("VACUUM").map_err(err)?;
            // VACUUM goes through the WAL: checkpoint and truncate it so the file sizes show the
            // compacted database.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(err)?;
            Ok(true)
        })
    }

    fn close(self: Box<Self>) -> EngineResult<()> {
        let conns = self
            .pool
            .into_inner()
            .map_err(|_| "sqlite: pool lock poisoned".to_string())?;
        // The last connection to close checkpoints the WAL into the database file and syncs it.
        for conn in conns {
            conn.close().map_err(|(_, e)| err(e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::conformance::{self, doc, temp_dir};

    #[test]
    fn sqlite_round_trip() {
        conformance::round_trip(&Sqlite, &[Durability::Durable, Durability::Relaxed], true);
    }

    #[test]
    fn sqlite_reads_from_many_threads() {
        let dir = temp_dir("sqlite-threads");
        let engine = Sqlite.open(&dir, Durability::Relaxed).unwrap();
        let docs: Vec<_> = (0..100).map(|i| doc(i, 0)).collect();
        engine.insert_batch(&docs).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let engine = &engine;
                s.spawn(move || {
                    for i in 0..100 {
                        let id = format!("id-{:04}", (i + t * 7) % 100);
                        assert!(engine.get(&id).unwrap().is_some());
                    }
                });
            }
        });
        engine.close().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

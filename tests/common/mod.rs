//! Shared by the integration tests: where a test database lives.
//!
//! With `SNAPBASE_TEST_ON_DISK=1` every database a test builds through [`build`] is opened on a
//! fresh directory with `Durability::Immediate` instead of in memory, so the same isolation,
//! model and stress tests also run through the WAL, group commit and deferred publication.
//! `.ci/run` runs them both ways.
#![allow(dead_code, clippy::unwrap_used)]

use std::ops::Deref;
use std::path::PathBuf;

use snapbase::{Database, DatabaseBuilder};

/// A database, and the directory it lives in when on disk (removed on drop).
pub struct TestDb {
    db: Database,
    dir: Option<ScratchDir>,
}

impl Deref for TestDb {
    type Target = Database;
    fn deref(&self) -> &Database {
        &self.db
    }
}

impl TestDb {
    /// The database handle itself (clones share it).
    pub fn handle(&self) -> Database {
        self.db.clone()
    }

    /// Where the database lives, if on disk.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(|d| d.0.as_path())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Close before the directory goes, so the background thread stops writing into it.
        let _ = self.db.close();
        self.dir.take();
    }
}

/// True when tests run against databases on disk.
pub fn on_disk() -> bool {
    std::env::var("SNAPBASE_TEST_ON_DISK").is_ok_and(|v| v == "1")
}

/// Builds the database `builder` describes: in memory, or on a fresh directory if
/// `SNAPBASE_TEST_ON_DISK=1`.
pub fn build(builder: DatabaseBuilder) -> TestDb {
    if on_disk() {
        let dir = ScratchDir::new("test");
        let db = builder.open(&dir.0).unwrap();
        TestDb { db, dir: Some(dir) }
    } else {
        TestDb {
            db: builder.in_memory(),
            dir: None,
        }
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "snapbase-{name}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        Self(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

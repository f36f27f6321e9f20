//! A scratch directory for tests that touch the real file system.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use crate::storage::std_fs::StdFs;
use crate::storage::vfs::Vfs;
use crate::sync::{AtomicU64, Ordering};

/// A fresh directory under the system temp dir, removed on drop (even when a test fails).
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// Creates `snapbase-{name}-{pid}-{n}-{micros}`: unique across tests run in parallel and
    /// across concurrent test processes.
    pub(crate) fn new(name: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "snapbase-{name}-{}-{n}-{}",
            std::process::id(),
            crate::sync::clock_micros()
        ));
        StdFs.create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

//! persist: the durable side of a database opened on a directory.
//!
//! ```text
//! dir/LOCK                     exclusive lock (storage::lock)
//! dir/MANIFEST                 the live files (storage::manifest), replaced atomically
//! dir/wal-{id:016x}.log        WAL segments (storage::segment_log); frames of commit groups
//! dir/data-{id:016x}.run       data runs (persist::run): sorted, immutable
//! ```
//!
//! The engine is memory-resident: every read is served by the version chains, and the files
//! exist to rebuild them. A commit is durable once its record is in a synced WAL segment
//! (`wal`). A checkpoint (`checkpoint`) moves the WAL's changes into a new sorted run and
//! deletes the WAL segments it covered, so open replays only the WAL since. The compactor
//! (`compact`) merges every run into one, dropping superseded versions, tombstones and dropped
//! collections, streaming in bounded memory. Open (`recovery`) merges the runs, then replays
//! the WAL.

pub(crate) mod backup;
pub(crate) mod checkpoint;
pub(crate) mod compact;
pub(crate) mod loader;
pub(crate) mod recovery;
pub(crate) mod run;
pub(crate) mod space;
pub(crate) mod verify;
pub(crate) mod wal;
pub(crate) mod worker;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::mvcc::Timestamp;
use crate::options::{CompactionProgress, Durability, Options};
use crate::storage::lock::DirLock;
use crate::storage::manifest::{Manifest, ManifestError};
use crate::storage::vfs::Vfs;
use crate::sync::{Arc, AtomicU64, Mutex, Ordering};
use crate::txn::oracle::{CommitSlot, Oracle};

use self::space::Space;
use self::wal::Wal;

/// The prefix of WAL segment files.
pub(crate) const WAL_PREFIX: &str = "wal";

/// The id of a WAL segment's file name; `None` for any other name.
pub(crate) fn wal_segment_id(name: &str) -> Option<u64> {
    crate::storage::segment_log::parse_name(name, WAL_PREFIX)
}

/// The durable state of an open database.
#[derive(Debug)]
pub(crate) struct Persist {
    pub(crate) vfs: Arc<dyn Vfs>,
    pub(crate) dir: PathBuf,
    pub(crate) options: Options,
    pub(crate) wal: Wal,
    /// Serializes checkpoints, compactions and close; holds the current manifest and the
    /// accounting of the data files.
    pub(crate) files: Mutex<Files>,
    /// Released by `close`, so the directory can be opened again while handles still exist.
    lock: Mutex<Option<DirLock>>,
    /// Counters for `Stats` (Relaxed: statistics). Written under `files`.
    pub(crate) counters: Counters,
    pub(crate) worker: worker::Worker,
}

/// The manifest and what is known of the files it names.
#[derive(Debug)]
pub(crate) struct Files {
    pub(crate) manifest: Manifest,
    /// Live bytes per document in the data runs.
    pub(crate) space: Space,
    /// WAL bytes at the last checkpoint (the trigger counts from there).
    pub(crate) wal_bytes_at_checkpoint: u64,
    /// When the last checkpoint ended (or the database was opened).
    pub(crate) last_checkpoint_at: std::time::Instant,
    /// The id the next run gets. Never reused in one session, so a run left behind by a failed
    /// checkpoint or compaction (debris until the next open) never blocks a later one.
    pub(crate) next_run_id: u64,
    /// The run the last compaction of this session wrote. While the manifest names only that
    /// run, compacting again would rewrite it unchanged (a checkpoint adds a run, so any change
    /// since shows there), and `compact` skips it. `None` after open: unknown.
    pub(crate) compacted: Option<u64>,
}

impl Files {
    /// Takes the id of a new run.
    pub(crate) fn take_run_id(&mut self) -> u64 {
        let id = self.next_run_id;
        self.next_run_id += 1;
        id
    }
}

/// Statistics of the files, kept for `Database::stats`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) data_bytes: AtomicU64,
    pub(crate) live_bytes: AtomicU64,
    /// `u64::MAX` until the first checkpoint.
    pub(crate) last_checkpoint: AtomicU64,
    pub(crate) compactions: AtomicU64,
    pub(crate) bytes_reclaimed: AtomicU64,
    /// Progress of a running compaction: bytes read, total, written (all zero when idle).
    pub(crate) progress_read: AtomicU64,
    pub(crate) progress_total: AtomicU64,
    pub(crate) progress_written: AtomicU64,
}

impl Persist {
    pub(crate) fn check_writable(&self) -> Result<()> {
        self.wal.check_writable()
    }

    /// Ends commit `slot`, whose versions are installed and whose record is `record`, as the
    /// durability mode says (see `persist::wal`).
    pub(crate) fn commit(
        &self,
        slot: CommitSlot<'_>,
        record: &[u8],
        oracle: &Oracle,
    ) -> Result<()> {
        let ts = slot.ts();
        self.wal.enqueue(ts, record);
        match self.wal.durability() {
            // `None` waits for the write (not a sync) the same way, so a commit whose write
            // failed is never visible.
            Durability::Immediate | Durability::None => {
                slot.install_unpublished();
                self.wal.wait_durable(ts, oracle)
            }
            Durability::Periodic(_) => {
                slot.publish();
                Ok(())
            }
        }
    }

    /// Poisons the writer after a failed file operation outside the commit path, and returns
    /// the error.
    pub(crate) fn poison(&self, error: Error) -> Error {
        if !matches!(error, Error::Poisoned { .. }) {
            self.wal.poison(&error);
        }
        error
    }

    /// Stores `manifest` atomically. A failure poisons the writer: the directory may hold
    /// either manifest until a reopen finds out which.
    pub(crate) fn store_manifest(&self, manifest: &Manifest) -> Result<()> {
        manifest
            .store(&*self.vfs, &self.dir)
            .map_err(|e| self.poison(manifest_error(e, &self.dir)))
    }

    /// Syncs the directory, poisoning the writer on failure.
    pub(crate) fn sync_dir(&self) -> Result<()> {
        self.vfs.sync_dir(&self.dir).map_err(|e| {
            self.poison(Error::io(
                format!("syncing the directory {}", self.dir.display()),
                &e,
            ))
        })
    }

    /// Stops background work, flushes the WAL and releases the directory lock (close).
    /// Idempotent.
    pub(crate) fn close(&self, oracle: &Oracle) -> Result<()> {
        self.worker.stop();
        let _files = self.files.lock();
        let flushed = self.wal.flush(true, oracle);
        self.lock.lock().take();
        flushed
    }

    pub(crate) fn last_checkpoint(&self) -> Option<Timestamp> {
        match self.counters.last_checkpoint.load(Ordering::Relaxed) {
            u64::MAX => None,
            ts => Some(Timestamp(ts)),
        }
    }

    pub(crate) fn progress(&self) -> Option<CompactionProgress> {
        let total = self.counters.progress_total.load(Ordering::Relaxed);
        (total > 0).then(|| CompactionProgress {
            bytes_read: self.counters.progress_read.load(Ordering::Relaxed),
            bytes_total: total,
            bytes_written: self.counters.progress_written.load(Ordering::Relaxed),
        })
    }

    /// The path of a file in the database directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Converts a manifest error into the crate's error.
pub(crate) fn manifest_error(e: ManifestError, dir: &Path) -> Error {
    let path = dir.join(crate::storage::manifest::FILE_NAME);
    match e {
        ManifestError::NewerFormat { found, supported } => Error::NewerFormat {
            path,
            found,
            supported,
        },
        ManifestError::Corrupt { path, reason } => Error::Corrupt {
            path,
            offset: None,
            reason: reason.to_owned(),
        },
        ManifestError::Io { op, path, source } => {
            Error::io(format!("{op} {}", path.display()), &source)
        }
        other => Error::Corrupt {
            path,
            offset: None,
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;

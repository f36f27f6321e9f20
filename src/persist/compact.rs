//! The streaming compactor: merges every data run into one, keeping the newest version of each
//! live document and dropping superseded versions, tombstones and dropped collections.
//!
//! Memory: one read buffer and one pending entry per run, and the writer's buffer. Nothing in
//! it grows with the number of documents (RESULTS.md has the measurement at 100k, 1M and 5M).
//!
//! Readers and writers go on meanwhile: reads are served from memory, and commits go to the
//! WAL, which compaction does not touch. Checkpoints wait, since both replace the manifest.
//!
//! The swap, and what a crash after each step leaves:
//! 1. Write the merged run `R` and sync it and the directory. *Crash: `R` is debris, the old
//!    runs and manifest hold.*
//! 2. Store a manifest naming only `R`. *Crash: the new manifest holds; the old runs are
//!    debris, removed at open.*
//! 3. Remove the old runs and sync the directory.
//!
//! Dropping tombstones is safe because every run is merged: no older entry is left for a
//! tombstone to hide, so a deleted document can never come back.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::options::CompactionProgress;
use crate::persist::run::{self, CollectionState, Entry, Merge, Merged, RunReader, RunWriter};
use crate::persist::Persist;
use crate::sync::Ordering;

/// What one compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionStats {
    /// Data files merged: 0 if there was nothing to merge (no data file yet, or only the one
    /// the last compaction wrote).
    pub runs_merged: usize,
    /// Bytes of the data files before.
    pub bytes_before: u64,
    /// Bytes of the data file after.
    pub bytes_after: u64,
    /// Live documents written.
    pub documents: u64,
    /// How long it took.
    pub duration: Duration,
}

/// Progress is reported after about this many bytes read.
const PROGRESS_EVERY: u64 = 4 << 20;

impl Persist {
    /// Compacts the data runs (see the module docs). Serialized with checkpoints and close.
    pub(crate) fn compact(&self) -> Result<CompactionStats> {
        let mut files = self.files.lock();
        self.check_writable()?;
        let started = Instant::now();
        let old = files.manifest.data_segments.clone();
        if old.is_empty() {
            return Ok(CompactionStats::default());
        }
        if files.compacted.is_some_and(|run| old == [run]) {
            return Ok(self.nothing_merged(started));
        }
        let mut readers = Vec::with_capacity(old.len());
        let mut bytes_before = 0;
        for &id in &old {
            let reader = RunReader::open(&*self.vfs, &self.path(&run::run_name(id)))
                .map_err(run::to_error)?;
            bytes_before += reader.file_len();
            readers.push(reader);
        }
        let mut merge = Merge::new(readers).map_err(run::to_error)?;
        let id = files.take_run_id();
        let path = self.path(&run::run_name(id));
        let mut writer =
            RunWriter::create(&*self.vfs, &path).map_err(|e| self.poison(run::to_error(e)))?;

        let c = &self.counters;
        c.progress_total.store(bytes_before, Ordering::Relaxed);
        let mut documents = 0;
        let mut written = 0;
        let mut next_report = PROGRESS_EVERY;
        let result = (|| {
            while let Some(item) = merge.next().map_err(run::to_error)? {
                let entry = match item {
                    Merged::Collection { name, created } => Entry::Collection {
                        name,
                        state: CollectionState::Live { created },
                    },
                    Merged::Doc {
                        collection,
                        id,
                        ts,
                        body,
                    } => {
                        documents += 1;
                        Entry::Doc {
                            collection,
                            id,
                            ts,
                            body: Some(body),
                        }
                    }
                };
                written += writer
                    .push(&entry)
                    .map_err(|e| self.poison(run::to_error(e)))?;
                let read = merge.bytes_read();
                if read >= next_report {
                    next_report = read + PROGRESS_EVERY;
                    self.report(read, bytes_before, written);
                }
            }
            writer.finish().map_err(|e| self.poison(run::to_error(e)))
        })();
        c.progress_total.store(0, Ordering::Relaxed);
        let summary = result.inspect_err(|_| {
            // Best effort: a run no manifest names is debris the next open removes anyway.
            let _ = self.vfs.remove(&path);
        })?;
        self.report(bytes_before, bytes_before, summary.bytes);
        self.sync_dir()?;

        let mut manifest = files.manifest.clone();
        manifest.generation += 1;
        manifest.data_segments = vec![id];
        self.store_manifest(&manifest)?;
        files.manifest = manifest;
        files.compacted = Some(id);
        for &old_id in &old {
            let path = self.path(&run::run_name(old_id));
            self.vfs.remove(&path).map_err(|e| {
                self.poison(crate::error::Error::io(
                    format!("removing {}", path.display()),
                    &e,
                ))
            })?;
        }
        self.sync_dir()?;

        c.data_bytes.store(summary.bytes, Ordering::Relaxed);
        c.compactions.fetch_add(1, Ordering::Relaxed);
        c.bytes_reclaimed.fetch_add(
            bytes_before.saturating_sub(summary.bytes),
            Ordering::Relaxed,
        );
        Ok(CompactionStats {
            runs_merged: old.len(),
            bytes_before,
            bytes_after: summary.bytes,
            documents,
            duration: started.elapsed(),
        })
    }

    /// The outcome of a compaction that had only the last compaction's run to merge.
    fn nothing_merged(&self, started: Instant) -> CompactionStats {
        let bytes = self.counters.data_bytes.load(Ordering::Relaxed);
        CompactionStats {
            bytes_before: bytes,
            bytes_after: bytes,
            duration: started.elapsed(),
            ..CompactionStats::default()
        }
    }

    /// True if automatic compaction is due: the reclaimable bytes passed the threshold.
    pub(crate) fn compaction_due(&self) -> bool {
        let crate::options::AutoCompaction::Threshold {
            min_bytes,
            min_ratio,
        } = self.options.compaction
        else {
            return false;
        };
        let data = self.counters.data_bytes.load(Ordering::Relaxed);
        let reclaimable = data.saturating_sub(self.counters.live_bytes.load(Ordering::Relaxed));
        #[allow(clippy::cast_precision_loss, reason = "a ratio of byte counts")]
        let ratio_met = data > 0 && reclaimable as f64 >= min_ratio * data as f64;
        reclaimable >= min_bytes && ratio_met
    }

    fn report(&self, read: u64, total: u64, written: u64) {
        let c = &self.counters;
        c.progress_read.store(read, Ordering::Relaxed);
        c.progress_written.store(written, Ordering::Relaxed);
        if let Some(callback) = &self.options.on_progress {
            callback(CompactionProgress {
                bytes_read: read,
                bytes_total: total,
                bytes_written: written,
            });
        }
    }
}

//! Checkpoints: move the WAL's changes into a new sorted run, then delete the WAL they came
//! from, so that open replays only what was committed since.
//!
//! Steps, and what a crash after each leaves:
//! 1. Seal the WAL: write and sync everything queued, close the newest segment, start the
//!    next (`B`). Every commit so far is now in a sealed segment below `B`. *Crash: the WAL is
//!    complete; nothing else changed.*
//! 2. Read those segments, keep the newest change per document (and the collection creations
//!    and drops), sorted. The changes are gathered in a vector and folded (sorted by id, the
//!    newest kept) whenever it doubles, which costs less than a sorted map's insert per change
//!    and holds at most about twice the documents changed. Memory: the changes since the last
//!    checkpoint, which the WAL-size trigger bounds.
//! 3. Write them as run `R`, sync it and the directory. *Crash: `R` is debris (no manifest
//!    names it); open removes it and replays the WAL.*
//! 4. Store a manifest naming the runs plus `R`, the checkpoint timestamp and `B` as the first
//!    WAL segment. *Crash: the new manifest holds; the old segments are debris, and any of
//!    their records that replay would see are at or below the checkpoint, so they are skipped.*
//! 5. Remove the WAL segments below `B` and sync the directory.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::mem;

use crate::error::{Error, Result};
use crate::persist::run::{self, CollectionState, Entry, RunError, RunWriter};
use crate::persist::space::Space;
use crate::persist::wal::log_error;
use crate::persist::Persist;
use crate::storage::frame::{FrameReader, MAX_FRAME_LEN};
use crate::storage::vfs::{OpenMode, VfsReader};
use crate::sync::Ordering;
use crate::txn::oracle::Oracle;
use crate::wal::batch::split_batch;
use crate::wal::record::{self, RecordId, RecordOp};

/// Read buffer for the sealed WAL segments.
const READ_BUFFER: usize = 256 << 10;

/// A collection's changes are folded once they reach this many, and twice what the last fold
/// left: the folds of n changes cost O(n log n) in all, and each fold's sort finds the earlier
/// fold's output already in order. Small in tests, so that every checkpoint a test takes folds
/// several times.
const FOLD_AT: usize = if cfg!(test) { 8 } else { 4096 };

/// One document's change: the commit's timestamp and the new body (`None`: deleted).
#[derive(Debug)]
struct Change {
    id: RecordId,
    ts: u64,
    body: Option<Vec<u8>>,
}

/// The changes of one collection since the last checkpoint.
#[derive(Debug, Default)]
struct CollectionDelta {
    /// Set if the collection was created or dropped since; older entries are then dead.
    state: Option<CollectionState>,
    /// The changes, in commit order after the first `folded`, which are the newest change per
    /// document up to the last fold, in id order.
    changes: Vec<Change>,
    /// How many changes the last fold left.
    folded: usize,
}

impl CollectionDelta {
    fn push(&mut self, change: Change) {
        self.changes.push(change);
        if self.changes.len() >= FOLD_AT.max(2 * self.folded) {
            self.fold();
        }
    }

    /// Keeps only the newest change per document, in id order.
    fn fold(&mut self) {
        // Stable, so one document's changes stay in commit order: the last is the newest.
        self.changes.sort_by(|a, b| a.id.cmp(&b.id));
        // `dedup_by` passes the later element first and removes it on `true`; swapping first
        // keeps the later change in the earlier slot.
        self.changes.dedup_by(|later, kept| {
            let same = later.id == kept.id;
            if same {
                mem::swap(later, kept);
            }
            same
        });
        self.folded = self.changes.len();
    }

    /// The collection was created or dropped: every change before is dead.
    fn reset(&mut self, state: CollectionState) {
        self.state = Some(state);
        self.changes.clear();
        self.folded = 0;
    }
}

/// What a checkpoint did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CheckpointOutcome {
    /// The checkpoint timestamp: every commit at or below it is in the runs.
    pub(crate) ts: Option<u64>,
    /// Bytes of the run written (0 if there was nothing to write).
    pub(crate) run_bytes: u64,
}

impl Persist {
    /// Takes a checkpoint (see the module docs). Serialized with compaction and close.
    pub(crate) fn checkpoint(&self, oracle: &Oracle) -> Result<CheckpointOutcome> {
        let mut files = self.files.lock();
        self.check_writable()?;
        let (boundary, sealed) = self.wal.with_log(oracle, |log| {
            let boundary = log.seal().map_err(log_error)?;
            let sealed: Vec<_> = log
                .segments()
                .iter()
                .copied()
                .filter(|&s| s < boundary)
                .map(|s| log.segment_path(s))
                .collect();
            Ok((boundary, sealed))
        })?;

        let previous = files.manifest.checkpoint.unwrap_or(0);
        // A sealed segment that cannot be read back means the disk does not hold what was
        // synced: stop writing until a reopen looks at it.
        let (delta, max_ts) = self
            .read_delta(&sealed, previous)
            .map_err(|e| self.poison(e))?;

        let mut manifest = files.manifest.clone();
        manifest.generation += 1;
        manifest.wal_segments = vec![boundary];
        let mut run_bytes = 0;
        if let Some(ts) = max_ts {
            let id = files.take_run_id();
            let path = self.path(&run::run_name(id));
            let mut writer =
                RunWriter::create(&*self.vfs, &path).map_err(|e| self.poison(run::to_error(e)))?;
            for (name, mut cd) in delta {
                if let Some(state) = cd.state {
                    files.space.clear(&name);
                    writer
                        .push(&Entry::Collection {
                            name: name.clone(),
                            state,
                        })
                        .map_err(|e| self.poison(run::to_error(e)))?;
                }
                cd.fold();
                write_changes(&mut writer, &mut files.space, name, cd.changes)
                    .map_err(|e| self.poison(run::to_error(e)))?;
            }
            let summary = writer.finish().map_err(|e| self.poison(run::to_error(e)))?;
            self.sync_dir()?;
            run_bytes = summary.bytes;
            manifest.data_segments.push(id);
            manifest.checkpoint = Some(ts);
        }
        self.store_manifest(&manifest)?;
        files.manifest = manifest;
        self.wal.with_log(oracle, |log| {
            log.remove_segments_before(boundary).map_err(log_error)
        })?;

        files.wal_bytes_at_checkpoint = self.wal.bytes();
        files.last_checkpoint_at = std::time::Instant::now();
        let c = &self.counters;
        c.data_bytes.fetch_add(run_bytes, Ordering::Relaxed);
        c.live_bytes
            .store(files.space.live_bytes(), Ordering::Relaxed);
        if let Some(ts) = files.manifest.checkpoint {
            c.last_checkpoint.store(ts, Ordering::Relaxed);
        }
        Ok(CheckpointOutcome {
            ts: files.manifest.checkpoint,
            run_bytes,
        })
    }
}

impl Persist {
    /// Reads the sealed WAL segments into the newest change per document since `previous`,
    /// and the timestamp of the last commit they hold.
    fn read_delta(
        &self,
        sealed: &[std::path::PathBuf],
        previous: u64,
    ) -> Result<(BTreeMap<String, CollectionDelta>, Option<u64>)> {
        let mut delta: BTreeMap<String, CollectionDelta> = BTreeMap::new();
        let mut max_ts = None;
        // Reused between frames: a fresh buffer per frame costs a page fault per page of it.
        let mut payload = Vec::new();
        for path in sealed {
            let file = self
                .vfs
                .open(path, OpenMode::Existing)
                .map_err(|e| Error::io(format!("opening {}", path.display()), &e))?;
            let reader = BufReader::with_capacity(READ_BUFFER, VfsReader::new(file));
            let mut frames = FrameReader::new(reader, MAX_FRAME_LEN);
            loop {
                let offset = frames.offset();
                let corrupt = |reason: String| Error::Corrupt {
                    path: path.clone(),
                    offset: Some(offset),
                    reason,
                };
                if !frames
                    .next_into(&mut payload)
                    .map_err(|e| corrupt(e.to_string()))?
                {
                    break;
                }
                for bytes in split_batch(&payload).map_err(|r| corrupt(r.to_owned()))? {
                    let rec = record::decode(bytes).map_err(|e| corrupt(e.to_string()))?;
                    if rec.ts <= previous {
                        continue;
                    }
                    max_ts = Some(rec.ts);
                    add(&mut delta, rec.ts, rec.ops);
                }
            }
        }

        Ok((delta, max_ts))
    }

    /// True if the WAL has grown past the checkpoint trigger since the last checkpoint, or the
    /// checkpoint interval has passed with commits since.
    pub(crate) fn checkpoint_due(&self) -> bool {
        let files = self.files.lock();
        let grown = self
            .wal
            .bytes()
            .saturating_sub(files.wal_bytes_at_checkpoint);
        grown >= self.options.checkpoint.wal_bytes
            || (grown > 0 && files.last_checkpoint_at.elapsed() >= self.options.checkpoint.interval)
    }
}

/// Writes one collection's folded changes and records each live entry's size in `space`. One
/// entry is refilled per document, so neither the name nor the id is copied per document.
///
/// A deletion is written only if the document has a live entry in the runs. A tombstone exists
/// to hide older entries from the merge at open, and without a live one there is nothing to
/// hide: either no run holds the document since its collection was last created (older
/// entries are dead by the collection's entry), or its newest entry is already a tombstone.
/// So a document inserted and deleted between two checkpoints, as queues and TTL leave them,
/// costs the runs nothing.
fn write_changes(
    writer: &mut RunWriter,
    space: &mut Space,
    name: String,
    changes: Vec<Change>,
) -> std::result::Result<(), RunError> {
    let mut entry = Entry::Doc {
        collection: name,
        id: RecordId::Int(0),
        ts: 0,
        body: None,
    };
    for change in changes {
        let live = change.body.is_some();
        let id = if live {
            change.id
        } else {
            let doc_id = change.id.into_doc_id();
            if !space.is_live(entry.collection(), &doc_id) {
                continue;
            }
            RecordId::from(&doc_id)
        };
        if let Entry::Doc {
            id: slot, ts, body, ..
        } = &mut entry
        {
            (*slot, *ts, *body) = (id, change.ts, change.body);
        }
        let bytes = writer.push(&entry)?;
        if let Entry::Doc { collection, id, .. } = &mut entry {
            let id = mem::replace(id, RecordId::Int(0)).into_doc_id();
            space.set(collection, id, live.then_some(bytes));
        }
    }
    Ok(())
}

/// Folds one commit's operations into the delta.
fn add(delta: &mut BTreeMap<String, CollectionDelta>, ts: u64, ops: Vec<RecordOp>) {
    for op in ops {
        match op {
            RecordOp::CreateCollection { collection } => {
                let cd = delta.entry(collection).or_default();
                cd.reset(CollectionState::Live { created: ts });
            }
            RecordOp::DropCollection { collection } => {
                let cd = delta.entry(collection).or_default();
                cd.reset(CollectionState::Dropped { at: ts });
            }
            RecordOp::Put {
                collection,
                id,
                body,
            } => {
                let cd = delta.entry(collection).or_default();
                cd.push(Change {
                    id,
                    ts,
                    body: Some(body),
                });
            }
            RecordOp::Delete { collection, id } => {
                let cd = delta.entry(collection).or_default();
                cd.push(Change { id, ts, body: None });
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! Opening a database directory: lock it, read the manifest, remove files a crash left behind,
//! load the data runs, replay the WAL written since the last checkpoint.
//!
//! The order of the checks is what keeps a crash at any step harmless:
//! - A data run is written and synced completely before a manifest names it, so a run the
//!   manifest does not name is debris of an interrupted checkpoint or compaction, and is
//!   removed; a named run must be intact (any damage is corruption).
//! - WAL segments below the manifest's first WAL segment were covered by a checkpoint whose
//!   manifest is durable, so they are removed too.
//! - WAL records at or below the checkpoint timestamp are already in the runs (a crash between
//!   the manifest swap and the WAL trim leaves such records behind) and are skipped.

use std::path::Path;

use crossbeam_epoch as epoch;

use crate::document::Document;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::mvcc::Timestamp;
use crate::persist::loader;
use crate::persist::run::{self, Merge, RunReader};
use crate::persist::space::Space;
use crate::persist::wal::{log_error, Wal};
use crate::persist::{manifest_error, wal_segment_id, Counters, Files, Persist, WAL_PREFIX};
use crate::storage::lock::{DirLock, LockError};
use crate::storage::manifest::{Manifest, FORMAT_VERSION};
use crate::storage::segment_log::{segment_name, SegmentLog, FIRST_SEGMENT};
use crate::storage::vfs::Vfs;
use crate::sync::{Arc, Mutex, Ordering};
use crate::txn::commit::install;
use crate::wal::batch::split_batch;
use crate::wal::record::{self, RecordError, RecordOp};

/// Opens (creating if needed) the database in `dir` and loads it into `engine`, which must be
/// new and not yet shared.
pub(crate) fn open(vfs: Arc<dyn Vfs>, dir: &Path, engine: &Engine) -> Result<Persist> {
    let existed = vfs.exists(dir);
    vfs.create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating the directory {}", dir.display()), &e))?;
    if !existed {
        // The new directory's own name must be durable before anything in it is acknowledged.
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        vfs.sync_dir(parent)
            .map_err(|e| Error::io(format!("syncing the directory {}", parent.display()), &e))?;
    }
    let lock = DirLock::acquire(&*vfs, dir).map_err(|e| match e {
        LockError::Locked { dir } => Error::Locked { path: dir },
        LockError::Io { dir, source } => Error::io(
            format!("locking the database directory {}", dir.display()),
            &source,
        ),
    })?;
    Manifest::cleanup_temp(&*vfs, dir).map_err(|e| manifest_error(e, dir))?;
    let manifest = match Manifest::load(&*vfs, dir).map_err(|e| manifest_error(e, dir))? {
        Some(m) => m,
        None => create(&*vfs, dir)?,
    };
    let wal_start = manifest
        .wal_segments
        .first()
        .copied()
        .unwrap_or(FIRST_SEGMENT);
    remove_debris(&*vfs, dir, &manifest, wal_start)?;

    let counters = Counters::default();
    let checkpoint = manifest.checkpoint.unwrap_or(0);
    counters
        .last_checkpoint
        .store(manifest.checkpoint.unwrap_or(u64::MAX), Ordering::Relaxed);
    let mut space = Space::default();
    let mut data_bytes = 0;
    let mut last = load_runs(&*vfs, dir, &manifest, engine, &mut space, &mut data_bytes)?;
    last = last.max(checkpoint);
    counters.data_bytes.store(data_bytes, Ordering::Relaxed);
    counters
        .live_bytes
        .store(space.live_bytes(), Ordering::Relaxed);

    let options = engine.options.clone();
    let (mut log, replay) =
        SegmentLog::open(Arc::clone(&vfs), dir, WAL_PREFIX, options.wal_segment_bytes)
            .map_err(log_error)?;
    check_segments(&log, dir, wal_start)?;
    log.set_first_segment(wal_start);
    for (pos, payload) in &replay.records {
        let at = |reason: String| Error::Corrupt {
            path: log.segment_path(pos.segment),
            offset: Some(pos.offset),
            reason,
        };
        for bytes in split_batch(payload).map_err(|r| at(r.to_owned()))? {
            let rec = record::decode(bytes).map_err(|e| match e {
                RecordError::NewerFormat { found } => Error::NewerFormat {
                    path: log.segment_path(pos.segment),
                    found: u32::from(found),
                    supported: u32::from(record::RECORD_FORMAT),
                },
                other => at(other.to_string()),
            })?;
            if rec.ts <= checkpoint {
                continue;
            }
            // Every commit takes the next timestamp and is logged before any later one, so a
            // gap means whole records were lost where no crash could lose them.
            if rec.ts != last + 1 {
                return Err(at(format!(
                    "commit {} follows commit {last}: commits are missing or repeated",
                    rec.ts
                )));
            }
            apply(engine, Timestamp(rec.ts), rec.ops).map_err(at)?;
            last = rec.ts;
        }
    }
    // Only now that every record was accepted: an open refused above changes nothing on disk.
    log.cut_torn_tail().map_err(log_error)?;
    let wal_bytes = log.disk_bytes();
    engine.oracle.recover(Timestamp(last));
    Ok(Persist {
        vfs,
        dir: dir.to_path_buf(),
        wal: Wal::new(options.durability, log, wal_bytes, Timestamp(last)),
        options,
        files: Mutex::new(Files {
            next_run_id: next_run_id(&manifest),
            compacted: None,
            manifest,
            space,
            wal_bytes_at_checkpoint: 0,
            last_checkpoint_at: std::time::Instant::now(),
        }),
        lock: Mutex::new(Some(lock)),
        counters,
        worker: crate::persist::worker::Worker::default(),
    })
}

/// The live WAL segments must be `wal_start, wal_start + 1, …` with none missing: each was
/// created (and its name synced) before anything newer existed. With none at all, `wal_start`
/// must be the first id ever (a new database, or a backup), since a checkpoint creates its
/// first segment before the manifest that names it.
fn check_segments(log: &SegmentLog, dir: &Path, wal_start: u64) -> Result<()> {
    let expected = (wal_start..).take(log.segments().len());
    if let Some((found, want)) = log
        .segments()
        .iter()
        .zip(expected)
        .find(|(found, want)| **found != *want)
    {
        return Err(Error::Corrupt {
            path: dir.join(segment_name(WAL_PREFIX, want)),
            offset: None,
            reason: format!(
                "this WAL segment is missing (the next one present is {})",
                segment_name(WAL_PREFIX, *found)
            ),
        });
    }
    if log.segments().is_empty() && wal_start != FIRST_SEGMENT {
        return Err(Error::Corrupt {
            path: dir.join(segment_name(WAL_PREFIX, wal_start)),
            offset: None,
            reason: "this WAL segment, named by the manifest, is missing".to_owned(),
        });
    }
    Ok(())
}

/// Writes the first manifest of a new database, refusing a directory that already holds
/// database files without one (its manifest was lost: guessing could drop data).
fn create(vfs: &dyn Vfs, dir: &Path) -> Result<Manifest> {
    let names = list(vfs, dir)?;
    if let Some(name) = names
        .iter()
        .find(|n| wal_segment_id(n).is_some() || run::parse_run_name(n).is_some())
    {
        return Err(Error::Corrupt {
            path: dir.join(crate::storage::manifest::FILE_NAME),
            offset: None,
            reason: format!(
                "the manifest is missing, but the directory holds database files such as {name}"
            ),
        });
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        generation: 1,
        wal_segments: vec![FIRST_SEGMENT],
        data_segments: Vec::new(),
        checkpoint: None,
    };
    manifest
        .store(vfs, dir)
        .map_err(|e| manifest_error(e, dir))?;
    Ok(manifest)
}

fn list(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<String>> {
    Ok(vfs
        .list(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), &e))?
        .into_iter()
        .filter_map(|p| p.to_str().map(str::to_owned))
        .collect())
}

/// Removes runs the manifest does not name and WAL segments a checkpoint covered.
fn remove_debris(vfs: &dyn Vfs, dir: &Path, manifest: &Manifest, wal_start: u64) -> Result<()> {
    let mut removed = false;
    for name in list(vfs, dir)? {
        let debris = match (run::parse_run_name(&name), wal_segment_id(&name)) {
            (Some(id), _) => !manifest.data_segments.contains(&id),
            (_, Some(id)) => id < wal_start,
            _ => false,
        };
        if debris {
            let path = dir.join(&name);
            vfs.remove(&path)
                .map_err(|e| Error::io(format!("removing {}", path.display()), &e))?;
            removed = true;
        }
    }
    if removed {
        vfs.sync_dir(dir)
            .map_err(|e| Error::io(format!("syncing the directory {}", dir.display()), &e))?;
    }
    Ok(())
}

/// Merges the manifest's runs into `engine`; returns the greatest timestamp found.
fn load_runs(
    vfs: &dyn Vfs,
    dir: &Path,
    manifest: &Manifest,
    engine: &Engine,
    space: &mut Space,
    data_bytes: &mut u64,
) -> Result<u64> {
    let mut readers = Vec::with_capacity(manifest.data_segments.len());
    for &id in &manifest.data_segments {
        let path = dir.join(run::run_name(id));
        let reader = RunReader::open(vfs, &path).map_err(run::to_error)?;
        *data_bytes += reader.file_len();
        readers.push(reader);
    }
    let mut merge = Merge::new(readers).map_err(run::to_error)?;
    let first_run = dir.join(run::run_name(
        manifest.data_segments.first().copied().unwrap_or(0),
    ));
    loader::load(&mut merge, dir, &first_run, engine, space, *data_bytes)
}

/// Applies one recovered commit to `engine`, exactly as the commit path installed it.
fn apply(engine: &Engine, ts: Timestamp, ops: Vec<RecordOp>) -> std::result::Result<(), String> {
    let guard = epoch::pin();
    for op in ops {
        let catalog = engine.catalog.load_full();
        match op {
            RecordOp::CreateCollection { collection } => {
                let (next, _) = catalog.with_created(&collection, ts);
                engine.catalog.store(Arc::new(next));
            }
            RecordOp::DropCollection { collection } => {
                if let Some(inc) = catalog.current(&collection) {
                    inc.store.last_write.store(ts.0, Ordering::Relaxed);
                    engine
                        .catalog
                        .store(Arc::new(catalog.with_dropped(&collection, ts)));
                }
            }
            RecordOp::Put { .. } | RecordOp::Delete { .. } => {
                let body = op.body_value().map_err(|e| e.to_string())?;
                let (RecordOp::Put { collection, id, .. } | RecordOp::Delete { collection, id }) =
                    op
                else {
                    unreachable!("matched above")
                };
                let Some(inc) = catalog.current(&collection) else {
                    return Err(format!(
                        "commit {} writes to collection {collection}, which does not exist",
                        ts.0
                    ));
                };
                install(
                    &inc.store,
                    &id.to_doc_id(),
                    body.map(Document::from_raw),
                    ts,
                    &guard,
                );
            }
        }
    }
    Ok(())
}

/// The first run id above every run the manifest names (debris is gone by now).
fn next_run_id(manifest: &Manifest) -> u64 {
    manifest.data_segments.iter().max().map_or(1, |m| m + 1)
}

//! `Database::verify`: reads every file of a closed database and checks every checksum,
//! without changing anything.

use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::persist::run;
use crate::persist::{manifest_error, wal_segment_id, WAL_PREFIX};
use crate::storage::frame::{self, ScanEnd, MAX_FRAME_LEN};
use crate::storage::lock::{DirLock, LockError};
use crate::storage::manifest::Manifest;
use crate::storage::segment_log::{segment_name, FIRST_SEGMENT};
use crate::storage::vfs::{to_u64, OpenMode, Vfs};
use crate::wal::batch::split_batch;
use crate::wal::record;

/// What `Database::verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Files read (the manifest, data files, WAL segments).
    pub files: usize,
    /// Records whose checksum was verified (data entries and commit records).
    pub records: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Damage that would make open fail, or lose data. Empty when the database is intact.
    pub problems: Vec<String>,
    /// Findings that open handles by itself (a torn WAL tail from a crash, leftover files of an
    /// interrupted checkpoint or compaction).
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// True if no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} files, {} records, {} bytes checked: {}",
            self.files,
            self.records,
            self.bytes,
            if self.is_ok() {
                "no problems"
            } else {
                "DAMAGED"
            }
        )?;
        for p in &self.problems {
            writeln!(f, "problem: {p}")?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

/// Verifies the database in `dir`, which must not be open.
pub(crate) fn verify(vfs: &dyn Vfs, dir: &Path) -> Result<VerifyReport> {
    if !vfs.exists(dir) {
        return Err(Error::Io {
            context: format!("verifying {}", dir.display()),
            kind: std::io::ErrorKind::NotFound,
            message: "there is no such directory".into(),
        });
    }
    let _lock = DirLock::acquire(vfs, dir).map_err(|e| match e {
        LockError::Locked { dir } => Error::Locked { path: dir },
        LockError::Io { dir, source } => Error::io(format!("locking {}", dir.display()), &source),
    })?;
    let mut report = VerifyReport::default();
    let Some(manifest) = Manifest::load(vfs, dir).map_err(|e| manifest_error(e, dir))? else {
        report
            .problems
            .push(format!("{} holds no database (no MANIFEST)", dir.display()));
        return Ok(report);
    };
    report.files += 1;

    for &id in &manifest.data_segments {
        let path = dir.join(run::run_name(id));
        match run::verify_run(vfs, &path) {
            Ok(summary) => {
                report.files += 1;
                report.records += summary.entries;
                report.bytes += summary.bytes;
            }
            Err(e) => report.problems.push(run::to_error(e).to_string()),
        }
    }

    let wal_start = manifest
        .wal_segments
        .first()
        .copied()
        .unwrap_or(FIRST_SEGMENT);
    let names = vfs
        .list(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), &e))?;
    let mut wal = Vec::new();
    for name in names.iter().filter_map(|n| n.to_str()) {
        if let Some(id) = run::parse_run_name(name) {
            if !manifest.data_segments.contains(&id) {
                report.notes.push(format!(
                    "{name} is left over from an interrupted checkpoint or compaction; open \
                     removes it"
                ));
            }
        } else if let Some(id) = wal_segment_id(name) {
            if id < wal_start {
                report.notes.push(format!(
                    "{name} was covered by a checkpoint; open removes it"
                ));
            } else {
                wal.push(id);
            }
        }
    }
    wal.sort_unstable();
    if let Some((i, &id)) = wal
        .iter()
        .enumerate()
        .find(|&(i, &id)| id != wal_start + to_u64(i))
    {
        report.problems.push(format!(
            "WAL segment {} is missing (found {} in its place)",
            segment_name(WAL_PREFIX, wal_start + to_u64(i)),
            segment_name(WAL_PREFIX, id)
        ));
    }
    let checkpoint = manifest.checkpoint.unwrap_or(0);
    let mut next_ts = checkpoint + 1;
    for (i, &id) in wal.iter().enumerate() {
        let newest = i + 1 == wal.len();
        verify_wal_segment(vfs, dir, id, newest, checkpoint, &mut next_ts, &mut report)?;
    }
    Ok(report)
}

/// Checks one WAL segment's frames and records; `next_ts` is the timestamp the next commit
/// must carry (commits are logged in order, with none missing).
fn verify_wal_segment(
    vfs: &dyn Vfs,
    dir: &Path,
    id: u64,
    newest: bool,
    checkpoint: u64,
    next_ts: &mut u64,
    report: &mut VerifyReport,
) -> Result<()> {
    let path = dir.join(segment_name(WAL_PREFIX, id));
    let file = vfs
        .open(&path, OpenMode::Existing)
        .map_err(|e| Error::io(format!("opening {}", path.display()), &e))?;
    let len = file
        .len()
        .map_err(|e| Error::io(format!("reading the size of {}", path.display()), &e))?;
    let mut buf = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
    file.read_exact_at(0, &mut buf)
        .map_err(|e| Error::io(format!("reading {}", path.display()), &e))?;
    report.files += 1;
    report.bytes += len;
    let scan = frame::scan(&buf, 0, MAX_FRAME_LEN);
    for (offset, range) in &scan.records {
        let problem = match split_batch(&buf[range.clone()]) {
            Err(reason) => Some(reason.to_owned()),
            Ok(records) => records.iter().find_map(|bytes| {
                report.records += 1;
                match record::decode(bytes) {
                    Err(e) => Some(e.to_string()),
                    Ok(rec) if rec.ts <= checkpoint => None,
                    Ok(rec) if rec.ts != *next_ts => Some(format!(
                        "commit {} where commit {} was due: commits are missing or repeated",
                        rec.ts, *next_ts
                    )),
                    Ok(rec) => {
                        *next_ts = rec.ts + 1;
                        None
                    }
                }
            }),
        };
        if let Some(reason) = problem {
            report
                .problems
                .push(format!("{} at byte {offset}: {reason}", path.display()));
        }
    }
    match scan.end {
        ScanEnd::Clean => {}
        // The newest segment's zero-filled space ahead of its appends (see `segment_log`).
        ScanEnd::TornTail { valid_up_to }
            if newest && buf[valid_up_to..].iter().all(|&b| b == 0) => {}
        ScanEnd::TornTail { valid_up_to } if newest => report.notes.push(format!(
            "{} ends in {} bytes of an interrupted write at byte {valid_up_to}; open truncates \
             them",
            path.display(),
            len - to_u64(valid_up_to)
        )),
        ScanEnd::TornTail { valid_up_to } => report.problems.push(format!(
            "{} is damaged at byte {valid_up_to} (a sealed segment ends in an incomplete record)",
            path.display()
        )),
        ScanEnd::Corrupt { offset, reason } => report.problems.push(format!(
            "{} is damaged at byte {offset} ({reason})",
            path.display()
        )),
    }
    Ok(())
}

//! Log damage: what open and `verify` do with WAL segments, data runs and manifests that were
//! cut short, bit-flipped, given impossible lengths, written by a newer snapbase, lost, or left
//! over (issue 3, "Log damage"; RELIABILITY.md 1.3 item 3).
//!
//! The rule under test: a torn tail of the newest WAL segment is a crash, truncated durably to a
//! clean prefix of the commits; any other damage is `Error::Corrupt` naming the file (and the
//! offset, for logs and runs), and a failed open changes nothing on disk.
//!
//! Every case starts from a database written by the real commit path on a simulated file
//! system, closed cleanly, then damaged through the `Vfs` API. Every assertion names its case.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::support::{self, State, DIR};
use crate::db::Database;
use crate::error::{Error, Result};
use crate::options::{AutoCompaction, Durability, GcPolicy};
use crate::persist::run;
use crate::persist::verify::{verify, VerifyReport};
use crate::storage::frame::{self, ScanEnd, MAX_FRAME_LEN};
use crate::storage::manifest::{Manifest, FILE_NAME as MANIFEST, FORMAT_VERSION, TEMP_NAME};
use crate::storage::segment_log::segment_name;
use crate::storage::sim_fs::{CrashMode, SimFs};
use crate::storage::vfs::{OpenMode, Vfs};
use crate::sync::Arc;
use crate::wal::batch::split_batch;
use crate::wal::record::{self, CommitRecord, RecordId, RecordOp, RECORD_FORMAT};

// ---------------------------------------------------------------------------------------------
// Helpers on the simulated directory (the `pub(super)` ones are shared with `compaction`).

/// The database directory.
pub(super) fn dir() -> &'static Path {
    Path::new(DIR)
}

/// A file of the database directory.
fn path(name: &str) -> PathBuf {
    dir().join(name)
}

/// The whole live content of file `p`.
pub(super) fn read(fs: &SimFs, p: &Path) -> Vec<u8> {
    let file = fs
        .open(p, OpenMode::Existing)
        .unwrap_or_else(|e| panic!("opening {}: {e}", p.display()));
    let len = usize::try_from(file.len().unwrap()).unwrap();
    let mut buf = vec![0; len];
    file.read_exact_at(0, &mut buf).unwrap();
    buf
}

/// Replaces the content of the existing file `p` with `bytes`, durably.
pub(super) fn overwrite(fs: &SimFs, p: &Path, bytes: &[u8]) {
    let file = fs.open(p, OpenMode::Existing).unwrap();
    file.set_len(0).unwrap();
    file.append(bytes).unwrap();
    file.sync_data().unwrap();
}

/// Cuts the existing file `p` to `len` bytes, durably.
fn truncate(fs: &SimFs, p: &Path, len: usize) {
    let file = fs.open(p, OpenMode::Existing).unwrap();
    file.set_len(u64::try_from(len).unwrap()).unwrap();
    file.sync_data().unwrap();
}

/// Creates the file `p` holding `bytes`, durably (its name too).
fn create(fs: &SimFs, p: &Path, bytes: &[u8]) {
    let file = fs.open(p, OpenMode::CreateNew).unwrap();
    file.append(bytes).unwrap();
    file.sync_data().unwrap();
    fs.sync_dir(dir()).unwrap();
}

/// Removes the file `p`, durably.
fn remove(fs: &SimFs, p: &Path) {
    fs.remove(p).unwrap();
    fs.sync_dir(dir()).unwrap();
}

/// Every file of the database directory and its content.
pub(super) fn files(fs: &SimFs) -> BTreeMap<String, Vec<u8>> {
    fs.list(dir())
        .unwrap()
        .into_iter()
        .map(|name| {
            let name = name.to_str().unwrap().to_owned();
            let bytes = read(fs, &path(&name));
            (name, bytes)
        })
        .collect()
}

/// The files whose name has this prefix and suffix, sorted (so by id).
fn named(fs: &SimFs, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    fs.list(dir())
        .unwrap()
        .into_iter()
        .filter_map(|n| n.to_str().map(str::to_owned))
        .filter(|n| n.starts_with(prefix) && n.ends_with(suffix))
        .map(|n| path(&n))
        .collect()
}

/// The WAL segments, oldest first.
fn wal_segments(fs: &SimFs) -> Vec<PathBuf> {
    named(fs, "wal-", ".log")
}

/// The data runs, by id.
pub(super) fn runs(fs: &SimFs) -> Vec<PathBuf> {
    named(fs, "data-", ".run")
}

/// `verify` on the simulated directory.
pub(super) fn check(fs: &SimFs) -> VerifyReport {
    verify(fs, dir()).unwrap_or_else(|e| panic!("verify failed: {e}"))
}

/// Opens `/db` like `support::open`, sealing WAL segments past `segment_bytes`.
fn open_with_segments(fs: &Arc<SimFs>, segment_bytes: u64) -> Result<Database> {
    Database::builder()
        .durability(Durability::Immediate)
        .gc(GcPolicy::Manual)
        .auto_compaction(AutoCompaction::Off)
        .checkpoint_wal_bytes(u64::MAX)
        .checkpoint_interval(std::time::Duration::from_secs(1 << 30))
        .wal_segment_bytes(segment_bytes)
        .open_on(Arc::clone(fs) as Arc<dyn Vfs>, dir())
}

/// Opens with the default (large) segments, or small ones.
fn open(fs: &Arc<SimFs>, segment_bytes: Option<u64>) -> Result<Database> {
    match segment_bytes {
        None => support::open(fs, Durability::Immediate),
        Some(bytes) => open_with_segments(fs, bytes),
    }
}

/// The timestamp of the last commit of `db`.
fn last_ts(db: &Database) -> u64 {
    db.stats().last_commit_ts.0
}

/// Ten commits of every kind (insert, replace, delete, a multi-document transaction, drop and
/// re-creation of a collection, a larger document), one at a time. Returns the state after each,
/// keyed by its commit timestamp (0: the empty database).
fn ten_commits(db: &Database) -> BTreeMap<u64, State> {
    let mut states = BTreeMap::from([(0, State::new())]);
    let mut record = |db: &Database| {
        let ts = last_ts(db);
        let previous = *states.keys().next_back().unwrap();
        assert!(ts > previous, "commit {ts} after {previous}");
        states.insert(ts, support::state(db));
    };
    let c = db.collection("c").unwrap();
    let d = db.collection("d").unwrap();
    c.insert(json!({"_id": 1, "v": "one"})).unwrap();
    record(db);
    c.insert(json!({"_id": 2, "v": "two"})).unwrap();
    record(db);
    d.insert(json!({"_id": "a", "n": 1.5})).unwrap();
    record(db);
    db.transaction(|tx| {
        tx.replace("c", 1, json!({"v": "uno"}))?;
        tx.delete("c", 2)?;
        tx.insert("c", json!({"_id": 3, "v": [1, 2, 3]}))?;
        Ok(())
    })
    .unwrap();
    record(db);
    assert!(db.drop_collection("d").unwrap());
    record(db);
    d.insert(json!({"_id": "b", "n": -7})).unwrap();
    record(db);
    c.upsert(json!({"_id": "big", "text": "x".repeat(300)}))
        .unwrap();
    record(db);
    assert!(c.delete(1).unwrap());
    record(db);
    db.collection("e")
        .unwrap()
        .insert_many((0..4).map(|i| json!({"_id": i, "sq": i * i})))
        .unwrap();
    record(db);
    assert!(c.replace(3, json!({"v": "tres"})).unwrap());
    record(db);
    states
}

/// A fresh file system holding the ten commits, closed cleanly; and the state after each.
fn ten_commit_database(segment_bytes: Option<u64>) -> (Arc<SimFs>, BTreeMap<u64, State>) {
    let fs = Arc::new(SimFs::new());
    let db = open(&fs, segment_bytes).unwrap();
    let states = ten_commits(&db);
    db.close().unwrap();
    (fs, states)
}

/// One WAL frame: where it starts and ends in its segment, and the timestamp of its last commit.
#[derive(Debug, Clone, Copy)]
struct WalFrame {
    offset: usize,
    end: usize,
    ts: u64,
}

/// A WAL segment's frames, without the preallocated zeros that may follow them in the newest
/// segment (see `storage::segment_log`): the bytes the damage tests damage.
fn wal_bytes(fs: &SimFs, p: &Path) -> Vec<u8> {
    let mut bytes = read(fs, p);
    if let ScanEnd::TornTail { valid_up_to } = frame::scan(&bytes, 0, MAX_FRAME_LEN).end {
        if bytes[valid_up_to..].iter().all(|&b| b == 0) {
            bytes.truncate(valid_up_to);
        }
    }
    bytes
}

/// The frames of an intact WAL segment.
fn wal_frames(bytes: &[u8]) -> Vec<WalFrame> {
    let scan = frame::scan(bytes, 0, MAX_FRAME_LEN);
    assert_eq!(scan.end, ScanEnd::Clean, "the WAL segment is not intact");
    scan.records
        .into_iter()
        .map(|(offset, payload)| {
            let end = payload.end;
            let records = split_batch(&bytes[payload]).unwrap();
            let ts = record::decode(records.last().unwrap()).unwrap().ts;
            WalFrame { offset, end, ts }
        })
        .collect()
}

/// The error of a failed open, or a panic naming `case`.
fn open_error(fs: &Arc<SimFs>, case: &str) -> Error {
    match support::open(fs, Durability::Immediate) {
        Ok(_) => panic!("{case}: open succeeded on a damaged database"),
        Err(e) => e,
    }
}

/// Asserts `e` is `Corrupt` naming `file`, and returns its offset.
fn assert_corrupt(e: &Error, file: &Path, case: &str) -> Option<u64> {
    match e {
        Error::Corrupt { path, offset, .. } => {
            assert_eq!(path, file, "{case}: {e}");
            *offset
        }
        other => panic!(
            "{case}: expected Corrupt naming {}, got {other:?}",
            file.display()
        ),
    }
}

/// Asserts that `verify` reports a problem naming `file`, and changes nothing.
fn assert_verify_problem(fs: &SimFs, file: &Path, case: &str) {
    let before = files(fs);
    let report = check(fs);
    let name = file.display().to_string();
    assert!(
        report.problems.iter().any(|p| p.contains(&name)),
        "{case}: verify does not name {name}: {report}"
    );
    assert!(!report.is_ok(), "{case}: {report}");
    assert_eq!(files(fs), before, "{case}: verify changed the directory");
}

/// A record in a newer format: a valid frame holding one `[len][record]` whose format byte is
/// from the future.
fn newer_format_frame(ts: u64) -> Vec<u8> {
    let mut rec = record::encode(&CommitRecord { ts, ops: vec![] });
    rec[0] = RECORD_FORMAT + 1;
    let mut payload = u32::try_from(rec.len()).unwrap().to_le_bytes().to_vec();
    payload.extend_from_slice(&rec);
    let mut out = Vec::new();
    frame::encode(&payload, &mut out).unwrap();
    out
}

/// A valid WAL frame holding one commit `ts` that puts `{"_id": "zombie"}` into collection `c`.
fn zombie_frame(ts: u64) -> Vec<u8> {
    let rec = record::encode(&CommitRecord {
        ts,
        ops: vec![RecordOp::Put {
            collection: "c".into(),
            id: RecordId::Str("zombie".into()),
            body: br#"{"_id":"zombie"}"#.to_vec(),
        }],
    });
    let mut payload = u32::try_from(rec.len()).unwrap().to_le_bytes().to_vec();
    payload.extend_from_slice(&rec);
    let mut out = Vec::new();
    frame::encode(&payload, &mut out).unwrap();
    out
}

// ---------------------------------------------------------------------------------------------
// Torn tails of the newest WAL segment.

/// Cuts the newest segment at every byte of its last four frames (in a database with one WAL
/// segment, and in one with many small ones, where the cut may empty the newest segment).
#[test]
fn a_wal_cut_at_every_byte_of_its_last_records_recovers_a_clean_durable_prefix() {
    let mut cases = 0;
    for segment_bytes in [None, Some(256)] {
        let (base, states) = ten_commit_database(segment_bytes);
        let segments = wal_segments(&base);
        let newest = segments.last().unwrap().clone();
        if segment_bytes.is_some() {
            assert!(segments.len() >= 3, "{segments:?}");
        }
        let sealed_ts = segments[..segments.len() - 1]
            .iter()
            .flat_map(|s| wal_frames(&wal_bytes(&base, s)))
            .map(|f| f.ts)
            .max()
            .unwrap_or(0);
        let bytes = wal_bytes(&base, &newest);
        let frames = wal_frames(&bytes);
        let from = frames[frames.len().saturating_sub(4)].offset;
        for cut in from..=bytes.len() {
            let case = format!(
                "segments of {segment_bytes:?} bytes, {} cut at byte {cut} of {}",
                newest.display(),
                bytes.len()
            );
            let complete: Vec<_> = frames.iter().filter(|f| f.end <= cut).collect();
            let valid_end = complete.last().map_or(0, |f| f.end);
            let expect_ts = complete.last().map_or(sealed_ts, |f| f.ts);
            let expected = &states[&expect_ts];

            let fs = Arc::new(base.snapshot());
            truncate(&fs, &newest, cut);
            let report = check(&fs);
            assert!(report.is_ok(), "{case}: {report}");
            assert_eq!(
                report.notes.is_empty(),
                cut == valid_end,
                "{case}: a torn tail is a note, an intact log has none: {report}"
            );

            let db = support::open(&fs, Durability::Immediate)
                .unwrap_or_else(|e| panic!("{case}: open failed: {e}"));
            assert_eq!(&support::state(&db), expected, "{case}");
            assert_eq!(last_ts(&db), expect_ts, "{case}");
            assert_eq!(read(&fs, &newest).len(), valid_end, "{case}: not truncated");

            // The truncation was synced by open: a power loss now keeps it.
            let crashed = Arc::new(fs.crash(u64::try_from(cut).unwrap(), CrashMode::DropUnsynced));
            drop(db);
            assert_eq!(
                read(&crashed, &newest).len(),
                valid_end,
                "{case}: the truncation is not durable"
            );
            let db = support::open(&crashed, Durability::Immediate)
                .unwrap_or_else(|e| panic!("{case}: reopen after the crash failed: {e}"));
            assert_eq!(&support::state(&db), expected, "{case}: after the crash");

            // New commits go after the cut, and survive.
            db.collection("after")
                .unwrap()
                .insert(json!({"_id": 1, "cut": cut}))
                .unwrap();
            db.close().unwrap();
            let db = support::open(&crashed, Durability::Immediate)
                .unwrap_or_else(|e| panic!("{case}: reopen after a new commit failed: {e}"));
            let mut state = support::state(&db);
            let after = state.remove("after").unwrap_or_default();
            assert_eq!(&state, expected, "{case}: after a new commit");
            assert_eq!(after.len(), 1, "{case}: the new commit is lost");
            db.close().unwrap();
            assert!(check(&crashed).is_ok(), "{case}");
            cases += 1;
        }
    }
    assert!(cases > 200, "{cases} cuts");
}

/// Garbage after the last frame (what a crash mid-append leaves) is a torn tail: a note, and
/// cut. Zeros after it are the newest segment's preallocated space, or an extension a crash
/// kept without its data: no note, kept, and written over by the next commit.
#[test]
fn garbage_after_the_last_frame_is_truncated_and_zeros_are_kept() {
    let (base, states) = ten_commit_database(None);
    let newest = wal_segments(&base).pop().unwrap();
    let bytes = wal_bytes(&base, &newest);
    let full = states.values().next_back().unwrap();
    let mut seed = 0x5EED_u64;
    for len in [1, 3, 7, 8, 9, 20, 100, 600, 5000] {
        for zeros in [true, false] {
            let case = format!(
                "{len} bytes of {} appended",
                if zeros { "zeros" } else { "garbage" }
            );
            let tail: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    if zeros {
                        0
                    } else {
                        seed.to_le_bytes()[7]
                    }
                })
                .collect();
            let fs = Arc::new(base.snapshot());
            overwrite(&fs, &newest, &[bytes.as_slice(), &tail].concat());
            let report = check(&fs);
            assert!(
                report.is_ok() && report.notes.len() == usize::from(!zeros),
                "{case}: {report}"
            );
            let db =
                support::open(&fs, Durability::Immediate).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(&support::state(&db), full, "{case}");
            let expected_file = if zeros {
                [bytes.as_slice(), &tail].concat()
            } else {
                bytes.clone()
            };
            assert_eq!(
                read(&fs, &newest),
                expected_file,
                "{case}: the tail is not cut exactly, or zeros were cut"
            );
            // The next commit lands right after the last frame, whatever followed it.
            db.collection("after")
                .unwrap()
                .insert(json!({"_id": 1}))
                .unwrap();
            db.close().unwrap();
            let frames = wal_frames(&wal_bytes(&fs, &newest));
            assert_eq!(frames[frames.len() - 2].end, bytes.len(), "{case}");
            let db = support::open(&fs, Durability::Immediate).unwrap();
            assert!(
                db.collection("after").unwrap().get(1).unwrap().is_some(),
                "{case}"
            );
            db.close().unwrap();
        }
    }
}

/// A valid frame repeated at the end (a commit logged twice) is not a torn tail: its timestamp
/// does not follow the one before it.
#[test]
fn a_repeated_frame_is_corruption() {
    let (base, _) = ten_commit_database(None);
    let newest = wal_segments(&base).pop().unwrap();
    let bytes = wal_bytes(&base, &newest);
    let last = *wal_frames(&bytes).last().unwrap();
    let fs = Arc::new(base.snapshot());
    let doubled = [bytes.as_slice(), &bytes[last.offset..last.end]].concat();
    overwrite(&fs, &newest, &doubled);
    let before = files(&fs);
    let e = open_error(&fs, "a repeated last frame");
    let offset = assert_corrupt(&e, &newest, "a repeated last frame");
    assert_eq!(offset, Some(u64::try_from(bytes.len()).unwrap()), "{e}");
    assert_eq!(files(&fs), before, "the failed open changed the directory");
}

/// What open refuses, verify must report: a repeated frame has valid checksums but its
/// timestamps go back.
#[test]
fn verify_reports_a_repeated_frame_that_open_refuses() {
    let (base, _) = ten_commit_database(None);
    let newest = wal_segments(&base).pop().unwrap();
    let bytes = wal_bytes(&base, &newest);
    let last = *wal_frames(&bytes).last().unwrap();
    let fs = Arc::new(base.snapshot());
    let doubled = [bytes.as_slice(), &bytes[last.offset..last.end]].concat();
    overwrite(&fs, &newest, &doubled);
    open_error(&fs, "a repeated last frame");
    assert_verify_problem(&fs, &newest, "a repeated last frame");
}

// ---------------------------------------------------------------------------------------------
// Damage in the middle of the log, and in sealed segments.

/// Every bit of a frame in the middle of the newest segment, flipped in turn.
#[test]
fn a_flipped_bit_mid_wal_is_corruption_at_that_frame_and_changes_nothing() {
    let (base, states) = ten_commit_database(None);
    let newest = wal_segments(&base).pop().unwrap();
    let bytes = wal_bytes(&base, &newest);
    let frames = wal_frames(&bytes);
    let victim = frames[frames.len() / 2];
    let mut cases = 0;
    for byte in victim.offset..victim.end {
        for bit in 0..8 {
            let case = format!("bit {bit} of byte {byte} of {}", newest.display());
            let fs = Arc::new(base.snapshot());
            let mut damaged = bytes.clone();
            damaged[byte] ^= 1 << bit;
            overwrite(&fs, &newest, &damaged);
            let before = files(&fs);
            let e = open_error(&fs, &case);
            let offset = assert_corrupt(&e, &newest, &case);
            assert_eq!(
                offset,
                Some(u64::try_from(victim.offset).unwrap()),
                "{case}: {e}"
            );
            assert_eq!(
                files(&fs),
                before,
                "{case}: the failed open changed the directory"
            );
            assert_verify_problem(&fs, &newest, &case);
            cases += 1;
        }
    }
    assert!(cases >= 8 * 20, "{cases}");

    // The failed opens released the lock: once repaired, the database opens whole.
    let fs = Arc::new(base.snapshot());
    let mut damaged = bytes.clone();
    damaged[victim.offset + 9] ^= 4;
    overwrite(&fs, &newest, &damaged);
    open_error(&fs, "before the repair");
    overwrite(&fs, &newest, &bytes);
    let db = support::open(&fs, Durability::Immediate).unwrap();
    assert_eq!(&support::state(&db), states.values().next_back().unwrap());
    db.close().unwrap();
}

/// A sealed segment was synced before its successor existed, so no crash damages it: any damage,
/// at its tail too, is corruption.
#[test]
fn damage_in_a_sealed_segment_even_at_its_tail_is_corruption() {
    let (base, _) = ten_commit_database(Some(256));
    let segments = wal_segments(&base);
    assert!(segments.len() >= 3, "{segments:?}");
    let mut cases = 0;
    for seg in &segments[..segments.len() - 1] {
        let bytes = wal_bytes(&base, seg);
        let frames = wal_frames(&bytes);
        let last = *frames.last().unwrap();
        let last_offset = Some(u64::try_from(last.offset).unwrap());
        let mut damaged: Vec<(String, Vec<u8>, Option<u64>)> = Vec::new();
        for cut in 1..=9.min(last.end - last.offset) {
            damaged.push((
                format!("{cut} bytes cut"),
                bytes[..bytes.len() - cut].to_vec(),
                last_offset,
            ));
        }
        for bit in 0..8 {
            let mut b = bytes.clone();
            *b.last_mut().unwrap() ^= 1 << bit;
            damaged.push((
                format!("bit {bit} of the last byte flipped"),
                b,
                last_offset,
            ));
            let mut b = bytes.clone();
            b[0] ^= 1 << bit;
            damaged.push((format!("bit {bit} of the first byte flipped"), b, Some(0)));
        }
        let mut b = bytes.clone();
        b[last.offset..last.offset + 4].copy_from_slice(&0xFFFF_FFF0_u32.to_le_bytes());
        damaged.push(("a huge length in the last frame".into(), b, last_offset));
        damaged.push((
            "garbage after the last frame".into(),
            [bytes.as_slice(), b"garbage"].concat(),
            Some(u64::try_from(bytes.len()).unwrap()),
        ));
        for (what, b, expect_offset) in damaged {
            let case = format!("sealed segment {}: {what}", seg.display());
            let fs = Arc::new(base.snapshot());
            overwrite(&fs, seg, &b);
            let before = files(&fs);
            let e = open_error(&fs, &case);
            let offset = assert_corrupt(&e, seg, &case);
            assert_eq!(offset, expect_offset, "{case}: {e}");
            assert_eq!(
                files(&fs),
                before,
                "{case}: the failed open changed the directory"
            );
            assert_verify_problem(&fs, seg, &case);
            cases += 1;
        }
    }
    assert!(cases > 40, "{cases}");
}

/// A change made to a closed database's files.
type Damage = Box<dyn Fn(&SimFs)>;

/// A sealed segment that lost whole frames at its end, or a segment lost entirely, holds no
/// invalid frame, but acknowledged commits are gone: open must refuse rather than open a state
/// that lacks them.
#[test]
fn lost_frames_or_segments_of_a_sealed_wal_are_corruption() {
    let (base, states) = ten_commit_database(Some(256));
    let full = states.values().next_back().unwrap();
    let segments = wal_segments(&base);
    assert!(segments.len() >= 3, "{segments:?}");
    let mut silent = Vec::new();
    for seg in &segments[..segments.len() - 1] {
        let bytes = wal_bytes(&base, seg);
        let mut damaged: Vec<(String, Damage)> = Vec::new();
        for f in wal_frames(&bytes) {
            let s = seg.clone();
            damaged.push((
                format!("{} cut to {} bytes", seg.display(), f.offset),
                Box::new(move |fs| truncate(fs, &s, f.offset)),
            ));
        }
        let s = seg.clone();
        damaged.push((
            format!("{} removed", seg.display()),
            Box::new(move |fs| remove(fs, &s)),
        ));
        for (case, damage) in damaged {
            let fs = Arc::new(base.snapshot());
            damage(&fs);
            match support::open(&fs, Durability::Immediate) {
                // Nothing lost that shows: acceptable, if not ideal.
                Ok(db) if support::state(&db) == *full => {}
                Ok(db) => silent.push(format!("{case}: opens holding {:?}", support::state(&db))),
                // The gap may be found where it shows (a later commit into a missing
                // collection), so any file may be named.
                Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{case}: {e:?}"),
            }
        }
    }
    assert!(
        silent.is_empty(),
        "acknowledged commits lost without an error:\n{}",
        silent.join("\n")
    );
}

/// A length field of `0xFFFF_FFF0` (and other lengths over the maximum): a torn tail in the last
/// frame of the newest segment, corruption anywhere before a valid frame. Either way it is
/// rejected before anything is allocated for it (`frame::scan` checks the maximum first).
#[test]
fn a_huge_length_field_is_a_torn_tail_at_the_end_and_corruption_before_valid_frames() {
    let (base, states) = ten_commit_database(None);
    let newest = wal_segments(&base).pop().unwrap();
    let bytes = wal_bytes(&base, &newest);
    let frames = wal_frames(&bytes);
    let huge_lengths = [0xFFFF_FFF0_u32, u32::MAX, MAX_FRAME_LEN + 1, 1 << 31];
    for len in huge_lengths {
        let last = frames[frames.len() - 1];
        let case = format!("length {len:#x} in the last frame");
        let fs = Arc::new(base.snapshot());
        let mut b = bytes.clone();
        b[last.offset..last.offset + 4].copy_from_slice(&len.to_le_bytes());
        overwrite(&fs, &newest, &b);
        let db =
            support::open(&fs, Durability::Immediate).unwrap_or_else(|e| panic!("{case}: {e}"));
        let expect_ts = frames[frames.len() - 2].ts;
        assert_eq!(support::state(&db), states[&expect_ts], "{case}");
        assert_eq!(
            read(&fs, &newest).len(),
            last.offset,
            "{case}: not truncated"
        );
        db.close().unwrap();

        // Only a header, claiming a huge payload, at the end of the log.
        let case = format!("a lone header with length {len:#x} at the end");
        let fs = Arc::new(base.snapshot());
        let mut header = len.to_le_bytes().to_vec();
        header.extend_from_slice(&[0xAB; 4]);
        overwrite(&fs, &newest, &[bytes.as_slice(), &header].concat());
        let db =
            support::open(&fs, Durability::Immediate).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(
            &support::state(&db),
            states.values().next_back().unwrap(),
            "{case}"
        );
        assert_eq!(read(&fs, &newest), bytes, "{case}");
        db.close().unwrap();

        for victim in [
            frames[0],
            frames[frames.len() / 2],
            frames[frames.len() - 2],
        ] {
            let case = format!("length {len:#x} in the frame at byte {}", victim.offset);
            let fs = Arc::new(base.snapshot());
            let mut b = bytes.clone();
            b[victim.offset..victim.offset + 4].copy_from_slice(&len.to_le_bytes());
            overwrite(&fs, &newest, &b);
            let before = files(&fs);
            let e = open_error(&fs, &case);
            let offset = assert_corrupt(&e, &newest, &case);
            assert_eq!(
                offset,
                Some(u64::try_from(victim.offset).unwrap()),
                "{case}: {e}"
            );
            assert_eq!(files(&fs), before, "{case}");
            assert_verify_problem(&fs, &newest, &case);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Data runs.

/// A database whose state lives in two runs (with overwrites, deletes and a dropped collection)
/// and a WAL tail; returns its file system and final state.
fn database_with_runs() -> (Arc<SimFs>, State) {
    let fs = Arc::new(SimFs::new());
    let db = support::open(&fs, Durability::Immediate).unwrap();
    let c = db.collection("c").unwrap();
    c.insert_many((0..8).map(|i| json!({"_id": i, "v": i})))
        .unwrap();
    db.collection("gone")
        .unwrap()
        .insert(json!({"_id": "x"}))
        .unwrap();
    db.checkpoint().unwrap();
    c.replace(1, json!({"v": "new"})).unwrap();
    c.delete(2).unwrap();
    c.insert(json!({"_id": "s", "nested": {"a": [1, null, true]}}))
        .unwrap();
    db.drop_collection("gone").unwrap();
    db.checkpoint().unwrap();
    c.delete(3).unwrap();
    let state = support::state(&db);
    db.close().unwrap();
    assert_eq!(runs(&fs).len(), 2);
    (fs, state)
}

/// Every byte of every run flipped, and every run cut at every length: corruption naming the
/// run (a flipped format field reads as a newer format, as `run` documents), seen by verify too.
#[test]
fn any_damaged_byte_of_a_data_run_is_corruption_naming_the_run() {
    let (base, state) = database_with_runs();
    let mut cases = 0;
    for run_path in runs(&base) {
        let bytes = read(&base, &run_path);
        let mut damaged: Vec<(String, usize, Vec<u8>)> = Vec::new();
        for pos in 0..bytes.len() {
            let mut b = bytes.clone();
            b[pos] ^= 0xFF;
            damaged.push((format!("byte {pos} flipped"), pos, b));
        }
        for len in 0..bytes.len() {
            damaged.push((format!("cut to {len} bytes"), len, bytes[..len].to_vec()));
        }
        damaged.push((
            "a byte appended".into(),
            bytes.len(),
            [bytes.as_slice(), &[0]].concat(),
        ));
        for (what, pos, b) in damaged {
            let case = format!("{}: {what}", run_path.display());
            let fs = Arc::new(base.snapshot());
            overwrite(&fs, &run_path, &b);
            let before = files(&fs);
            let e = open_error(&fs, &case);
            match &e {
                Error::NewerFormat { path, found, .. } if (8..12).contains(&pos) => {
                    assert_eq!(path, &run_path, "{case}");
                    assert_ne!(*found, run::RUN_FORMAT, "{case}");
                }
                _ => {
                    let offset = assert_corrupt(&e, &run_path, &case);
                    let offset = offset.unwrap_or_else(|| panic!("{case}: no offset in {e}"));
                    assert!(offset <= u64::try_from(pos).unwrap(), "{case}: {e}");
                }
            }
            assert_eq!(
                files(&fs),
                before,
                "{case}: the failed open changed the directory"
            );
            assert_verify_problem(&fs, &run_path, &case);
            cases += 1;
        }
    }
    assert!(cases > 500, "{cases}");
    // Undamaged, it opens.
    let db = support::open(&base, Durability::Immediate).unwrap();
    assert_eq!(support::state(&db), state);
    db.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// The manifest, newer formats, a missing manifest, debris.

#[test]
fn a_damaged_manifest_is_corruption_and_changes_nothing() {
    let (base, _) = database_with_runs();
    let manifest = path(MANIFEST);
    let bytes = read(&base, &manifest);
    let mut damaged: Vec<(String, Vec<u8>)> = Vec::new();
    for pos in 0..bytes.len() {
        for bit in [0, 3, 7] {
            let mut b = bytes.clone();
            b[pos] ^= 1 << bit;
            damaged.push((format!("bit {bit} of byte {pos} flipped"), b));
        }
    }
    for len in 0..bytes.len() {
        damaged.push((format!("cut to {len} bytes"), bytes[..len].to_vec()));
    }
    damaged.push(("a byte appended".into(), [bytes.as_slice(), &[0]].concat()));
    for (what, b) in damaged {
        let case = format!("MANIFEST: {what}");
        let fs = Arc::new(base.snapshot());
        overwrite(&fs, &manifest, &b);
        let before = files(&fs);
        let e = open_error(&fs, &case);
        assert_corrupt(&e, &manifest, &case);
        assert!(
            e.to_string().contains("restore it from a backup"),
            "{case}: {e}"
        );
        assert_eq!(
            files(&fs),
            before,
            "{case}: the failed open changed the directory"
        );
        match verify(&*fs, dir()) {
            Err(Error::Corrupt { path, .. }) => assert_eq!(path, manifest, "{case}"),
            other => panic!("{case}: verify gave {other:?}"),
        }
    }
}

#[test]
fn a_manifest_in_a_newer_format_is_refused_with_an_upgrade_message() {
    let (base, _) = database_with_runs();
    let fs = Arc::new(base.snapshot());
    let current = Manifest::load(&*fs, dir()).unwrap().unwrap();
    Manifest {
        format_version: FORMAT_VERSION + 1,
        ..current
    }
    .store(&*fs, dir())
    .unwrap();
    let before = files(&fs);
    let e = open_error(&fs, "newer manifest");
    match &e {
        Error::NewerFormat {
            path,
            found,
            supported,
        } => {
            assert_eq!(path, &self::path(MANIFEST));
            assert_eq!((*found, *supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
        }
        other => panic!("expected NewerFormat, got {other:?}"),
    }
    assert!(e.to_string().contains("upgrade"), "{e}");
    assert_eq!(files(&fs), before, "the refused open changed the directory");
    assert!(
        matches!(verify(&*fs, dir()), Err(Error::NewerFormat { .. })),
        "verify must refuse a newer manifest too"
    );
}

#[test]
fn a_wal_record_in_a_newer_format_is_refused_with_an_upgrade_message() {
    let (base, states) = ten_commit_database(None);
    let newest = wal_segments(&base).pop().unwrap();
    let bytes = wal_bytes(&base, &newest);
    let last = *states.keys().next_back().unwrap();
    let frames = wal_frames(&bytes);

    // As the last frame, and between two valid frames.
    let at_end = [bytes.as_slice(), &newer_format_frame(last + 1)].concat();
    let mid = frames[frames.len() / 2];
    let in_middle = [
        &bytes[..mid.offset],
        newer_format_frame(mid.ts).as_slice(),
        &bytes[mid.offset..],
    ]
    .concat();
    for (what, b) in [("at the end", at_end), ("in the middle", in_middle)] {
        let case = format!("a newer-format record {what}");
        let fs = Arc::new(base.snapshot());
        overwrite(&fs, &newest, &b);
        let before = files(&fs);
        let e = open_error(&fs, &case);
        match &e {
            Error::NewerFormat {
                path,
                found,
                supported,
            } => {
                assert_eq!(path, &newest, "{case}");
                assert_eq!(
                    (*found, *supported),
                    (u32::from(RECORD_FORMAT) + 1, u32::from(RECORD_FORMAT)),
                    "{case}"
                );
            }
            other => panic!("{case}: expected NewerFormat, got {other:?}"),
        }
        assert!(e.to_string().contains("upgrade"), "{case}: {e}");
        assert_eq!(
            files(&fs),
            before,
            "{case}: the refused open changed the directory"
        );
        assert_verify_problem(&fs, &newest, &case);
    }
}

#[test]
fn a_data_run_in_a_newer_format_is_refused() {
    let (base, _) = database_with_runs();
    let run_path = runs(&base).pop().unwrap();
    let fs = Arc::new(base.snapshot());
    let mut b = read(&fs, &run_path);
    b[8..12].copy_from_slice(&(run::RUN_FORMAT + 1).to_le_bytes());
    overwrite(&fs, &run_path, &b);
    let e = open_error(&fs, "newer run");
    assert!(
        matches!(&e, Error::NewerFormat { path, found, .. } if *path == run_path && *found == run::RUN_FORMAT + 1),
        "{e:?}"
    );
    assert!(e.to_string().contains("upgrade"), "{e}");
}

/// A failed open changes nothing, even when the newest segment ends in a torn tail that a
/// successful open would truncate.
#[test]
fn an_open_refused_for_a_bad_record_does_not_truncate_the_torn_tail() {
    let (base, states) = ten_commit_database(None);
    let newest = wal_segments(&base).pop().unwrap();
    let bytes = wal_bytes(&base, &newest);
    let last = *states.keys().next_back().unwrap();
    let fs = Arc::new(base.snapshot());
    let b = [
        bytes.as_slice(),
        &newer_format_frame(last + 1),
        b"torn tail",
    ]
    .concat();
    overwrite(&fs, &newest, &b);
    let before = files(&fs);
    let e = open_error(&fs, "newer record then a torn tail");
    assert!(matches!(e, Error::NewerFormat { .. }), "{e:?}");
    assert_eq!(files(&fs), before, "the refused open changed the directory");
}

/// Removes some of the files.
type Strip = fn(&SimFs);

/// Database files without a manifest: the manifest was lost, and guessing could lose data. Open
/// refuses and deletes nothing.
#[test]
fn database_files_without_a_manifest_are_corruption_and_nothing_is_deleted() {
    let (base, _) = database_with_runs();
    let manifest = path(MANIFEST);
    let variants: [(&str, Strip); 3] = [
        ("runs and WAL", |_| {}),
        ("only runs", |fs| {
            for seg in wal_segments(fs) {
                remove(fs, &seg);
            }
        }),
        ("only WAL", |fs| {
            for r in runs(fs) {
                remove(fs, &r);
            }
        }),
    ];
    for (what, strip) in variants {
        let case = format!("no MANIFEST, {what}");
        let fs = Arc::new(base.snapshot());
        remove(&fs, &manifest);
        strip(&fs);
        let before = files(&fs);
        assert!(before.len() > 1, "{case}: {:?}", before.keys());
        let e = open_error(&fs, &case);
        assert_corrupt(&e, &manifest, &case);
        assert_eq!(
            files(&fs),
            before,
            "{case}: the failed open changed the directory"
        );
        let report = check(&fs);
        assert!(!report.is_ok(), "{case}: {report}");
        assert_eq!(files(&fs), before, "{case}: verify changed the directory");
    }
}

/// Files a crash leaves behind: a run the manifest does not name, WAL segments below the
/// manifest's first (one of them holding a valid commit that must not be replayed) and a
/// `MANIFEST.tmp`. Verify calls them notes; open removes them and the state is intact.
#[test]
fn leftover_runs_and_covered_wal_segments_are_removed_at_open() {
    let (base, state) = database_with_runs();
    let fs = Arc::new(base.snapshot());
    let manifest = Manifest::load(&*fs, dir()).unwrap().unwrap();
    let wal_start = manifest.wal_segments[0];
    assert!(wal_start >= 3, "two checkpoints: {manifest:?}");
    let stray_run = path(&run::run_name(
        manifest.data_segments.iter().max().unwrap() + 5,
    ));
    let live_run = runs(&fs).pop().unwrap();
    create(&fs, &stray_run, &read(&fs, &live_run));
    let old_wal = path(&segment_name(crate::persist::WAL_PREFIX, wal_start - 1));
    create(&fs, &old_wal, &zombie_frame(1 << 40));
    let older_wal = path(&segment_name(crate::persist::WAL_PREFIX, wal_start - 2));
    create(&fs, &older_wal, b"not even a frame");
    create(&fs, &path(TEMP_NAME), b"half a manifest");

    let before = files(&fs);
    let report = check(&fs);
    assert!(report.is_ok(), "{report}");
    for debris in [&stray_run, &old_wal, &older_wal] {
        let name = debris.file_name().unwrap().to_str().unwrap();
        assert!(
            report.notes.iter().any(|n| n.contains(name)),
            "verify does not note {name}: {report}"
        );
    }
    assert_eq!(files(&fs), before, "verify changed the directory");

    let db = support::open(&fs, Durability::Immediate).unwrap();
    assert_eq!(support::state(&db), state);
    for debris in [&stray_run, &old_wal, &older_wal, &path(TEMP_NAME)] {
        assert!(!fs.exists(debris), "{} was not removed", debris.display());
    }
    db.close().unwrap();
    let report = check(&fs);
    assert!(report.is_ok() && report.notes.is_empty(), "{report}");

    // The removal is durable.
    let crashed = Arc::new(fs.crash(7, CrashMode::DropUnsynced));
    for debris in [&stray_run, &old_wal, &older_wal] {
        assert!(!crashed.exists(debris), "{} came back", debris.display());
    }
    let db = support::open(&crashed, Durability::Immediate).unwrap();
    assert_eq!(support::state(&db), state);
    db.close().unwrap();
}

/// The manifest names a run that is missing: open refuses, and deletes nothing.
#[test]
fn a_missing_run_is_refused_and_nothing_is_deleted() {
    let (base, _) = database_with_runs();
    let fs = Arc::new(base.snapshot());
    let first = runs(&fs).remove(0);
    remove(&fs, &first);
    let before = files(&fs);
    let e = open_error(&fs, "missing run");
    assert!(
        e.to_string().contains(&first.display().to_string()),
        "the error does not name {}: {e}",
        first.display()
    );
    assert_eq!(files(&fs), before, "the failed open changed the directory");
    assert_verify_problem(&fs, &first, "missing run");
}

/// The WAL segment the manifest starts from is missing: here it was empty (a checkpoint had just
/// been taken), as a copy of the directory that skips empty files would leave it. Nothing is
/// lost yet, but a new log must not start below the manifest's first segment, which the next
/// open deletes as debris: commits acknowledged after this open must survive a reopen.
#[test]
fn commits_after_opening_without_the_first_wal_segment_are_not_deleted() {
    let (fs, _) = database_with_runs();
    let db = support::open(&fs, Durability::Immediate).unwrap();
    db.checkpoint().unwrap();
    let mut expected = support::state(&db);
    db.close().unwrap();
    let manifest = Manifest::load(&*fs, dir()).unwrap().unwrap();
    let segments = wal_segments(&fs);
    assert_eq!(segments.len(), 1, "{segments:?}");
    assert!(read(&fs, &segments[0]).is_empty());
    remove(&fs, &segments[0]);

    let db = match support::open(&fs, Durability::Immediate) {
        Err(e) => {
            assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
            return;
        }
        Ok(db) => db,
    };
    assert_eq!(support::state(&db), expected, "nothing was lost yet");
    db.collection("c")
        .unwrap()
        .insert(json!({"_id": "acknowledged"}))
        .unwrap();
    expected
        .get_mut("c")
        .unwrap()
        .insert("acknowledged".into(), json!({"_id": "acknowledged"}));
    db.close().unwrap();
    let segments = wal_segments(&fs);
    let db = support::open(&fs, Durability::Immediate).unwrap();
    assert_eq!(
        support::state(&db),
        expected,
        "an acknowledged commit is lost: it went to {segments:?}, and the manifest starts at \
         segment {}",
        manifest.wal_segments[0]
    );
    db.close().unwrap();
}

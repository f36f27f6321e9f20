//! Tests of the segmented log: round trips across rotations, torn tails cut at every offset, bit
//! flips, a crash at every operation, and injected faults.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::storage::sim_fs::{CrashMode, Fault, FaultEffect, OpKind, Persistence, SimFs};

const MODES: [CrashMode; 3] = [
    CrashMode::DropUnsynced,
    CrashMode::Random,
    CrashMode::InOrder,
];

/// Seeds per random crash mode at each crash point.
const SEEDS: u64 = 12;

/// Small, so that a dozen records rotate several times.
const MAX: u64 = 64;

fn dir() -> &'static Path {
    Path::new("/db")
}

/// A file system holding an empty `/db`.
fn fresh() -> Arc<SimFs> {
    let fs = SimFs::new();
    fs.create_dir_all(dir()).unwrap();
    Arc::new(fs)
}

fn open(fs: &Arc<SimFs>) -> Result<(SegmentLog, Replay), LogError> {
    let vfs: Arc<dyn Vfs> = Arc::clone(fs) as Arc<dyn Vfs>;
    SegmentLog::open(vfs, dir(), "wal", MAX)
}

/// Record `i`: distinct, of varying length (5 to 24 bytes).
fn record(i: usize) -> Vec<u8> {
    let len = 5 + (i * 7) % 20;
    (0..len)
        .map(|j| u8::try_from((i * 37 + j * 11) % 251).unwrap())
        .collect()
}

fn payloads(replay: &Replay) -> Vec<Vec<u8>> {
    replay.records.iter().map(|(_, p)| p.clone()).collect()
}

/// Appends and syncs records `0..n` one at a time; returns their positions.
fn write_synced(log: &mut SegmentLog, n: usize) -> Vec<Position> {
    (0..n)
        .map(|i| {
            let pos = log.append(&record(i)).unwrap();
            log.sync().unwrap();
            pos
        })
        .collect()
}

/// The live bytes of `path`.
fn read(fs: &SimFs, path: &Path) -> Vec<u8> {
    let file = fs.open(path, OpenMode::Existing).unwrap();
    let mut buf = vec![0; usize::try_from(file.len().unwrap()).unwrap()];
    file.read_exact_at(0, &mut buf).unwrap();
    buf
}

/// Durably replaces the contents of `path` with `bytes`.
fn overwrite(fs: &SimFs, path: &Path, bytes: &[u8]) {
    let file = fs.open(path, OpenMode::Existing).unwrap();
    file.set_len(0).unwrap();
    file.append(bytes).unwrap();
    file.sync_all().unwrap();
}

/// Every segment file's path and live bytes.
fn image(fs: &SimFs) -> Vec<(PathBuf, Vec<u8>)> {
    fs.list(dir())
        .unwrap()
        .into_iter()
        .map(|name| {
            let path = dir().join(name);
            let bytes = read(fs, &path);
            (path, bytes)
        })
        .collect()
}

#[test]
fn round_trip_across_rotations() {
    let fs = fresh();
    let (mut log, replay) = open(&fs).unwrap();
    assert!(replay.records.is_empty() && replay.torn_tail.is_none());
    let mut positions = write_synced(&mut log, 20);
    // A record over the maximum goes alone in a fresh segment, and the next one moves on.
    let big = vec![7; 100];
    positions.push(log.append(&big).unwrap());
    positions.push(log.append(&record(99)).unwrap());
    log.sync().unwrap();
    let [.., before, alone, after] = positions[..] else {
        unreachable!()
    };
    assert_eq!((alone.segment, alone.offset), (before.segment + 1, 0));
    assert_eq!((after.segment, after.offset), (alone.segment + 1, 0));
    assert!(log.segments().len() >= 5, "{:?}", log.segments());
    for (&id, next) in log.segments().iter().zip(&log.segments()[1..]) {
        assert_eq!(id + 1, *next);
        if *next != alone.segment + 1 {
            let len = read(&fs, &log.segment_path(id)).len();
            assert!(u64::try_from(len).unwrap() <= MAX.max(frame_len(100)));
        }
    }
    let mut expected: Vec<Vec<u8>> = (0..20).map(record).collect();
    expected.extend([big, record(99)]);
    drop(log);
    // Durable, not only live: reopen after losing everything un-synced.
    let fs = Arc::new(fs.crash(0, CrashMode::DropUnsynced));
    let (mut log, replay) = open(&fs).unwrap();
    assert_eq!(payloads(&replay), expected);
    let replayed: Vec<Position> = replay.records.iter().map(|(p, _)| *p).collect();
    assert_eq!(replayed, positions);
    assert_eq!(replay.torn_tail, None);
    // Appends continue in the newest segment.
    let next = log.append(b"next").unwrap();
    assert_eq!(next.segment, after.segment);
    assert_eq!(
        segment_name("wal", 0x1f),
        "wal-000000000000001f.log",
        "file names are pinned"
    );
}

#[test]
fn oversized_payload_is_refused_without_poisoning() {
    let fs = fresh();
    let (mut log, _) = open(&fs).unwrap();
    let huge = vec![0; MAX_FRAME_LEN as usize + 1];
    assert!(matches!(
        log.append(&huge),
        Err(LogError::PayloadTooLarge { .. })
    ));
    assert!(!log.is_poisoned());
    log.append(b"fine").unwrap();
}

#[test]
fn torn_tail_at_every_offset_is_truncated_durably() {
    let fs = fresh();
    let (mut log, _) = open(&fs).unwrap();
    let positions = write_synced(&mut log, 10);
    let newest = positions.last().unwrap().segment;
    let path = log.segment_path(newest);
    drop(log);
    let full = read(&fs, &path);
    // The newest segment must hold at least two records for the test to mean anything.
    let in_newest: Vec<&Position> = positions.iter().filter(|p| p.segment == newest).collect();
    assert!(in_newest.len() >= 2);
    let start = in_newest[in_newest.len() - 2].offset;
    let ends: Vec<u64> = (0..10)
        .map(|i| positions[i].offset + frame_len(record(i).len()))
        .collect();
    // The file goes on past the last record with preallocated zeros; cuts inside the records.
    assert!(to_u64(full.len()) > ends[9], "no preallocated tail");
    for cut in start..ends[9] {
        let fs = Arc::new(fs.snapshot());
        let file = fs.open(&path, OpenMode::Existing).unwrap();
        file.set_len(cut).unwrap();
        file.sync_all().unwrap();
        // Complete records: every one outside the newest segment, and those ending by `cut`.
        let kept = (0..10)
            .filter(|&i| positions[i].segment < newest || ends[i] <= cut)
            .count();
        let valid = positions[..kept]
            .iter()
            .zip(&ends)
            .filter(|(p, _)| p.segment == newest)
            .map(|(_, &e)| e)
            .next_back()
            .unwrap_or(0);
        let expected: Vec<Vec<u8>> = (0..kept).map(record).collect();
        let before = read(&fs, &path);
        let (mut log, replay) = open(&fs).unwrap();
        assert_eq!(payloads(&replay), expected, "cut at {cut}");
        let torn = (valid < cut).then(|| (path.clone(), valid));
        assert_eq!(replay.torn_tail, torn, "cut at {cut}");
        assert_eq!(
            read(&fs, &path),
            before,
            "cut at {cut}: open changed the segment"
        );
        log.cut_torn_tail().unwrap();
        drop(log);
        // The truncation is durable: a crash right after the cut keeps it.
        let fs = Arc::new(fs.crash(0, CrashMode::DropUnsynced));
        assert_eq!(read(&fs, &path).len(), usize::try_from(valid).unwrap());
        let states: Vec<_> = (0..3)
            .map(|_| {
                let (_, replay) = open(&fs).unwrap();
                (replay, image(&fs))
            })
            .collect();
        assert_eq!(payloads(&states[0].0), expected, "cut at {cut}");
        assert_eq!(states[0].0.torn_tail, None);
        assert!(states.iter().all(|s| *s == states[0]), "cut at {cut}");
    }
}

/// An append after an open that found a torn tail, with no `cut_torn_tail` in between, cuts
/// the tail first: the new record follows the last complete one, and no torn byte is left
/// after it to be read back as damage.
#[test]
fn an_append_after_a_torn_tail_cuts_it_first() {
    // One segment for every record, so the append lands where the tail was.
    let open = |fs: &Arc<SimFs>| {
        SegmentLog::open(
            Arc::clone(fs) as Arc<dyn Vfs>,
            dir(),
            "wal",
            4 * PREALLOCATE,
        )
    };
    let fs = fresh();
    let (mut log, _) = open(&fs).unwrap();
    let positions = write_synced(&mut log, 3);
    let path = log.segment_path(positions[2].segment);
    drop(log);
    let end = positions[2].offset + frame_len(record(2).len());
    let mut bytes = read(&fs, &path);
    bytes.truncate(usize::try_from(end).unwrap());
    // A frame header claiming 200 bytes, then only 100 of them: an interrupted append, longer
    // than the record that follows it.
    bytes.extend_from_slice(&[200, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
    bytes.extend_from_slice(&[0xa5; 100]);
    overwrite(&fs, &path, &bytes);

    let (mut log, replay) = open(&fs).unwrap();
    assert_eq!(replay.torn_tail, Some((path.clone(), end)));
    let pos = log.append(&record(3)).unwrap();
    log.sync().unwrap();
    assert_eq!(
        pos,
        Position {
            segment: positions[2].segment,
            offset: end
        },
        "the record takes the torn tail's place"
    );
    drop(log);

    let fs = Arc::new(fs.crash(0, CrashMode::DropUnsynced));
    let (_, replay) = open(&fs).unwrap();
    assert_eq!(payloads(&replay), (0..4).map(record).collect::<Vec<_>>());
    assert_eq!(replay.torn_tail, None);
}

/// Opens `fs`, requiring `Corrupt`; returns its path and offset.
fn corrupt_at(fs: &Arc<SimFs>) -> (PathBuf, u64) {
    match open(fs) {
        Err(LogError::Corrupt { path, offset, .. }) => (path, offset),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn bit_flips_in_sealed_segments_and_mid_newest_are_corruption() {
    let fs = fresh();
    let (mut log, _) = open(&fs).unwrap();
    let positions = write_synced(&mut log, 10);
    let ends: Vec<u64> = (0..10)
        .map(|i| positions[i].offset + frame_len(record(i).len()))
        .collect();
    let newest = positions[9].segment;
    let segments = log.segments().to_vec();
    drop(log);
    for id in segments {
        let (_, replay) = open(&fs).unwrap();
        let path = replay_path(&replay, id);
        let bytes = read(&fs, &path);
        // Every byte of every frame (the newest segment's preallocated zeros follow them).
        let frames_end = (0..10)
            .filter(|&i| positions[i].segment == id)
            .map(|i| ends[i])
            .max()
            .unwrap_or(0);
        for at in 0..usize::try_from(frames_end).unwrap() {
            let at64 = to_u64(at);
            let Some(i) = (0..10).find(|&i| {
                positions[i].segment == id && positions[i].offset <= at64 && at64 < ends[i]
            }) else {
                unreachable!("segments hold only frames")
            };
            let last_in_newest = id == newest && i == 9;
            let fs = Arc::new(fs.snapshot());
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << (at % 8);
            overwrite(&fs, &path, &damaged);
            if last_in_newest {
                // Indistinguishable from a torn write: truncated, nothing after it is lost.
                let (_, replay) = open(&fs).unwrap();
                assert_eq!(replay.records.len(), 9);
                assert_eq!(replay.torn_tail, Some((path.clone(), positions[9].offset)));
            } else {
                assert_eq!(corrupt_at(&fs), (path.clone(), positions[i].offset));
            }
        }
    }
}

/// The path of segment `id`, which some record of `replay` lies in.
fn replay_path(replay: &Replay, id: u64) -> PathBuf {
    assert!(replay.records.iter().any(|(p, _)| p.segment == id));
    dir().join(segment_name("wal", id))
}

#[test]
fn corruption_message_names_file_and_offset() {
    let err = LogError::Corrupt {
        path: PathBuf::from("/db/wal-0000000000000001.log"),
        offset: 42,
        reason: "frame checksum mismatch",
    };
    let text = err.to_string();
    assert!(text.contains("/db/wal-0000000000000001.log") && text.contains("byte 42"));
    assert_eq!(
        LogError::Poisoned.to_string(),
        "the log is poisoned after an I/O error; reopen the database"
    );
}

/// How far a workload got: records whose append was attempted and whose sync returned `Ok`.
struct Progress {
    attempted: usize,
    acked: usize,
}

/// Opens the log and appends and syncs `n` records one at a time, stopping at the first error.
/// After an error, checks that the log is poisoned.
fn workload(fs: &Arc<SimFs>, n: usize) -> Progress {
    let mut progress = Progress {
        attempted: 0,
        acked: 0,
    };
    let Ok((mut log, _)) = open(fs) else {
        return progress;
    };
    for i in 0..n {
        progress.attempted = i + 1;
        let result = log.append(&record(i)).and_then(|_| log.sync());
        if let Err(e) = result {
            assert!(matches!(e, LogError::Io { .. }), "{e:?}");
            assert!(matches!(log.append(b"x"), Err(LogError::Poisoned)));
            assert!(matches!(log.sync(), Err(LogError::Poisoned)));
            assert!(matches!(
                log.remove_segments_before(u64::MAX),
                Err(LogError::Poisoned)
            ));
            return progress;
        }
        progress.acked = i + 1;
    }
    progress
}

/// Crashes `fs` every way, requiring each image to reopen to a prefix of the attempted records
/// that holds every acknowledged one, and to accept appends after that. Returns the case count.
fn check_crashes(fs: &SimFs, progress: &Progress, context: &str) -> usize {
    let mut cases = 0;
    for mode in MODES {
        let seeds = if mode == CrashMode::DropUnsynced {
            1
        } else {
            SEEDS
        };
        for seed in 0..seeds {
            cases += 1;
            let after = Arc::new(fs.crash(seed, mode));
            let ctx = format!("{context}, {mode:?} seed {seed}");
            let (mut log, replay) = open(&after).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let got = payloads(&replay);
            assert!(got.len() >= progress.acked, "{ctx}: lost acked records");
            assert!(got.len() <= progress.attempted, "{ctx}: invented records");
            let expected: Vec<Vec<u8>> = (0..got.len()).map(record).collect();
            assert_eq!(got, expected, "{ctx}");
            log.append(b"after").unwrap();
            log.sync().unwrap();
            drop(log);
            let again = Arc::new(after.crash(0, CrashMode::DropUnsynced));
            let (_, replay) = open(&again).unwrap();
            assert_eq!(replay.records.len(), got.len() + 1, "{ctx}");
        }
    }
    cases
}

const RECORDS: usize = 12;

#[test]
fn crash_at_every_operation_keeps_a_prefix_with_every_acked_record() {
    let mut cases = 0;
    let mut points = 0;
    for n in 0.. {
        let fs = fresh();
        fs.fail_after(n);
        let progress = workload(&fs, RECORDS);
        points += 1;
        cases += check_crashes(&fs, &progress, &format!("fail_after({n})"));
        if progress.acked == RECORDS {
            break;
        }
    }
    assert!(points > 30, "only {points} crash points");
    println!("segment_log: {points} crash points, {cases} crash cases");
}

#[test]
fn injected_faults_poison_the_log_and_keep_the_synced_prefix() {
    let mut cases = 0;
    let kinds = [OpKind::Sync, OpKind::Write, OpKind::Open, OpKind::SyncDir];
    let effects = [
        FaultEffect::Clean,
        FaultEffect::ShortWrite,
        FaultEffect::LyingPageCache,
    ];
    for op in kinds {
        for effect in effects {
            for k in 0.. {
                let fs = fresh();
                fs.inject(Fault {
                    effect,
                    ..Fault::new(op, k)
                });
                let progress = workload(&fs, RECORDS);
                cases += check_crashes(&fs, &progress, &format!("{op:?} {effect:?} #{k}"));
                if progress.acked == RECORDS {
                    break;
                }
                assert!(progress.acked < progress.attempted);
            }
        }
    }
    println!("segment_log: {cases} fault cases");
}

#[test]
fn removing_old_segments_is_durable_and_spares_the_newest() {
    let fs = fresh();
    let (mut log, _) = open(&fs).unwrap();
    let positions = write_synced(&mut log, 12);
    let newest = positions[11].segment;
    let cut = positions[6].segment;
    log.remove_segments_before(cut).unwrap();
    assert_eq!(log.segments()[0], cut);
    log.remove_segments_before(u64::MAX).unwrap();
    assert_eq!(log.segments(), [newest]);
    drop(log);
    let fs = Arc::new(fs.crash(0, CrashMode::DropUnsynced));
    let (_, replay) = open(&fs).unwrap();
    let expected: Vec<Vec<u8>> = (0..12)
        .filter(|&i| positions[i].segment == newest)
        .map(record)
        .collect();
    assert_eq!(payloads(&replay), expected);
}

#[test]
fn foreign_files_are_ignored() {
    let fs = fresh();
    for name in [
        "MANIFEST",
        "data-0000000000000001.log",
        "wal-1.log",
        "wal-000000000000000G.log",
    ] {
        fs.open(&dir().join(name), OpenMode::CreateNew).unwrap();
    }
    let (mut log, replay) = open(&fs).unwrap();
    assert!(replay.records.is_empty());
    assert_eq!(log.append(b"a").unwrap().segment, FIRST_SEGMENT);
}

#[test]
fn records_land_in_zeros_written_ahead_and_sealing_trims_them() {
    let fs = fresh();
    let vfs: Arc<dyn Vfs> = Arc::clone(&fs) as Arc<dyn Vfs>;
    let (mut log, _) = SegmentLog::open(Arc::clone(&vfs), dir(), "wal", 4 * PREALLOCATE).unwrap();
    // Appends write zeros ahead and never extend the file with `set_len`: with this fault
    // armed for good, any `set_len` would fail the append.
    fs.inject(Fault {
        persistence: Persistence::Always,
        ..Fault::new(OpKind::SetLen, 0)
    });
    let first = log.append(&record(0)).unwrap();
    log.sync().unwrap();
    let path = log.segment_path(first.segment);
    let mut end = first.offset + frame_len(record(0).len());
    assert_eq!(
        to_u64(read(&fs, &path).len()),
        2 * PREALLOCATE,
        "the first append zero-fills up to a whole chunk past its own"
    );
    for i in 1..40 {
        let before = read(&fs, &path);
        let len = frame_len(record(i).len());
        assert!(
            to_u64(before.len()) >= end + len,
            "record {i} goes into zeros written ahead, not past the end of the file"
        );
        assert!(before[usize::try_from(end).unwrap()..]
            .iter()
            .all(|&b| b == 0));
        assert_eq!(log.append(&record(i)).unwrap().offset, end);
        log.sync().unwrap();
        end += len;
        let after = to_u64(read(&fs, &path).len());
        assert!(
            after - end >= PREALLOCATE,
            "at least a chunk of zeros stays ahead"
        );
        assert!(after - end < 2 * PREALLOCATE, "and less than two");
    }
    assert_eq!(
        log.disk_bytes(),
        end,
        "statistics count records, not the zeros ahead of them"
    );
    fs.clear_faults();
    drop(log);
    // A crash keeps the synced records and zeros; the zeros are not a torn tail.
    let synced_len = read(&fs, &path).len();
    let fs = Arc::new(fs.crash(0, CrashMode::DropUnsynced));
    let vfs: Arc<dyn Vfs> = Arc::clone(&fs) as Arc<dyn Vfs>;
    let (mut log, replay) =
        SegmentLog::open(Arc::clone(&vfs), dir(), "wal", 4 * PREALLOCATE).unwrap();
    assert_eq!(payloads(&replay), (0..40).map(record).collect::<Vec<_>>());
    assert_eq!(replay.torn_tail, None);
    assert_eq!(read(&fs, &path).len(), synced_len, "open kept the zeros");
    // A record longer than the margin is written whole; the zeros stop at the segment's
    // maximum size.
    let big = vec![9; usize::try_from(PREALLOCATE).unwrap()];
    assert!(end + frame_len(big.len()) < 2 * PREALLOCATE);
    log.append(&big).unwrap();
    log.sync().unwrap();
    assert_eq!(to_u64(read(&fs, &path).len()), 3 * PREALLOCATE);
    log.append(&big).unwrap();
    log.sync().unwrap();
    assert_eq!(to_u64(read(&fs, &path).len()), 4 * PREALLOCATE);
    log.append(&big).unwrap();
    log.sync().unwrap();
    let logical = end + 3 * frame_len(big.len());
    assert!(logical <= 4 * PREALLOCATE && logical + PREALLOCATE > 4 * PREALLOCATE);
    assert_eq!(
        to_u64(read(&fs, &path).len()),
        4 * PREALLOCATE,
        "zeros stop at the maximum size"
    );
    // Sealing trims the segment to its records before its successor exists.
    log.seal().unwrap();
    assert_eq!(to_u64(read(&fs, &path).len()), logical);
    drop(log);
    let (_, replay) = SegmentLog::open(vfs, dir(), "wal", 4 * PREALLOCATE).unwrap();
    assert_eq!(replay.records.len(), 43);
    assert_eq!(replay.torn_tail, None);
}

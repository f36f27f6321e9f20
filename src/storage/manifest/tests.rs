//! Tests of the manifest: round trips, damage of every kind, the newer-format refusal, a crash
//! at every operation of a replacement, and injected faults.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::storage::sim_fs::{CrashMode, Fault, FaultEffect, FaultError, OpKind, SimFs};

const MODES: [CrashMode; 3] = [
    CrashMode::DropUnsynced,
    CrashMode::Random,
    CrashMode::InOrder,
];

/// Seeds per crash mode at each crash point.
const SEEDS: u64 = 60;

fn dir() -> &'static Path {
    Path::new("/db")
}

fn manifest_path() -> PathBuf {
    dir().join(FILE_NAME)
}

fn temp_path() -> PathBuf {
    dir().join(TEMP_NAME)
}

/// The state before a replacement.
fn a() -> Manifest {
    Manifest::new(1, vec![1, 2], vec![10], None)
}

/// The state a replacement installs: every field differs from `a()`.
fn b() -> Manifest {
    Manifest::new(2, vec![2, 3, 4], vec![10, 11], Some(7))
}

/// A file system with `/db` and, if given, `initial` stored durably.
fn fs_with(initial: Option<&Manifest>) -> SimFs {
    let fs = SimFs::new();
    fs.create_dir_all(dir()).unwrap();
    if let Some(m) = initial {
        m.store(&fs, dir()).unwrap();
    }
    fs
}

/// Replaces the live `MANIFEST` (or `path`) with exactly `bytes`, bypassing `store`.
fn put(fs: &SimFs, path: &Path, bytes: &[u8]) {
    let file = fs.open(path, OpenMode::OpenOrCreate).unwrap();
    file.set_len(0).unwrap();
    file.append(bytes).unwrap();
}

/// The live bytes of `path`.
fn read(fs: &SimFs, path: &Path) -> Vec<u8> {
    let file = fs.open(path, OpenMode::Existing).unwrap();
    let mut buf = vec![0; usize::try_from(file.len().unwrap()).unwrap()];
    file.read_exact_at(0, &mut buf).unwrap();
    buf
}

/// Loads from `fs`, requiring `Corrupt` naming the manifest; returns the reason.
fn corrupt_reason(fs: &SimFs) -> &'static str {
    match Manifest::load(fs, dir()) {
        Err(ManifestError::Corrupt { path, reason }) => {
            assert_eq!(path, manifest_path());
            reason
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// A file holding `payload` framed after the magic, to test the payload checks.
fn with_payload(payload: &[u8]) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    frame::encode(payload, &mut bytes).unwrap();
    bytes
}

#[test]
fn round_trip() {
    let fs = fs_with(None);
    for m in [
        a(),
        b(),
        Manifest::new(0, vec![], vec![], None),
        Manifest::new(u64::MAX, vec![u64::MAX, 0], vec![], Some(0)),
        Manifest::new(3, vec![], (0..1000).collect(), Some(u64::MAX)),
    ] {
        m.store(&fs, dir()).unwrap();
        assert_eq!(Manifest::load(&fs, dir()).unwrap(), Some(m.clone()));
        assert!(!fs.exists(&temp_path()), "the temporary file was renamed");
        // Durable too, not only live.
        let after = fs.crash(0, CrashMode::DropUnsynced);
        assert_eq!(Manifest::load(&after, dir()).unwrap(), Some(m));
    }
}

#[test]
fn byte_layout_is_pinned() {
    let fs = fs_with(Some(&Manifest::new(0x0102, vec![3], vec![], Some(0x0A0B))));
    let bytes = read(&fs, &manifest_path());
    let mut payload = vec![
        1, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 1, 0x0B, 0x0A, 0, 0, 0, 0, 0, 0,
    ];
    payload.extend_from_slice(&[1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&bytes[..8], b"SNAPMAN1");
    assert_eq!(bytes[8..12], 37u32.to_le_bytes());
    assert_eq!(bytes[16..], payload[..]);
    assert_eq!(bytes, with_payload(&payload));
}

#[test]
fn empty_directory_has_no_manifest() {
    let fs = fs_with(None);
    assert_eq!(Manifest::load(&fs, dir()).unwrap(), None);
    // A temporary file alone is not a manifest: a crash before the first rename.
    put(&fs, &temp_path(), &a().encode().unwrap());
    assert_eq!(Manifest::load(&fs, dir()).unwrap(), None);
}

#[test]
fn newer_format_is_refused_with_a_clear_error() {
    for found in [2, u32::MAX] {
        let newer = Manifest {
            format_version: found,
            ..b()
        };
        let fs = fs_with(Some(&newer));
        let err = Manifest::load(&fs, dir()).unwrap_err();
        assert!(
            matches!(err, ManifestError::NewerFormat { found: f, supported: 1 } if f == found),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("upgrade snapbase"), "{message}");
        assert!(
            message.contains(&format!("format version {found}")),
            "{message}"
        );
    }
    // Only the version is read from a newer payload: its other fields may be anything.
    let fs = fs_with(None);
    put(&fs, &manifest_path(), &with_payload(&[9, 0, 0, 0, 0xFF]));
    assert!(matches!(
        Manifest::load(&fs, dir()),
        Err(ManifestError::NewerFormat { found: 9, .. })
    ));
}

#[test]
fn every_bit_flip_is_corruption() {
    let fs = fs_with(Some(&b()));
    let good = read(&fs, &manifest_path());
    for i in 0..good.len() {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[i] ^= 1 << bit;
            put(&fs, &manifest_path(), &bad);
            corrupt_reason(&fs);
        }
    }
}

#[test]
fn truncation_at_every_offset_is_corruption() {
    let fs = fs_with(Some(&b()));
    let good = read(&fs, &manifest_path());
    for len in 0..good.len() {
        put(&fs, &manifest_path(), &good[..len]);
        corrupt_reason(&fs);
    }
}

#[test]
fn trailing_bytes_are_corruption() {
    let fs = fs_with(Some(&a()));
    let good = read(&fs, &manifest_path());
    let mut second_record = good.clone();
    frame::encode(b"x", &mut second_record).unwrap();
    for tail in [&[0][..], &[0; 8], &good[8..], &second_record[good.len()..]] {
        put(&fs, &manifest_path(), &[&good[..], tail].concat());
        assert_eq!(corrupt_reason(&fs), "bytes follow the manifest record");
    }
}

#[test]
fn invalid_fields_behind_a_valid_checksum_are_corruption() {
    let fs = fs_with(None);
    let v1 = FORMAT_VERSION.to_le_bytes();
    let fixed = |flag: u8, id: u64| -> Vec<u8> {
        [&v1[..], &5u64.to_le_bytes(), &[flag], &id.to_le_bytes()].concat()
    };
    let empty_lists = [0u8; 8];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"SNAPMAN2".to_vec(),
            "the file does not start with the manifest magic",
        ),
        (MAGIC.to_vec(), "the file holds no record after its magic"),
        (with_payload(&[]), "the record is shorter than its fields"),
        (with_payload(&[0; 29]), "format version 0 does not exist"),
        (
            with_payload(&[&fixed(2, 0)[..], &empty_lists].concat()),
            "the checkpoint field is invalid",
        ),
        (
            with_payload(&[&fixed(0, 3)[..], &empty_lists].concat()),
            "the checkpoint field is invalid",
        ),
        (
            with_payload(&fixed(1, 3)),
            "the record is shorter than its fields",
        ),
        // A count far beyond the record: refused before it sizes a vector.
        (
            with_payload(&[&fixed(1, 3)[..], &u32::MAX.to_le_bytes()].concat()),
            "the record is shorter than its fields",
        ),
        (
            with_payload(&[&fixed(1, 3)[..], &empty_lists, &[0]].concat()),
            "the record is longer than its fields",
        ),
    ];
    for (bytes, reason) in cases {
        put(&fs, &manifest_path(), &bytes);
        assert_eq!(corrupt_reason(&fs), reason);
    }
    // A file longer than any manifest is refused before it is read.
    let huge = (MAGIC.len() + HEADER_LEN) as u64 + u64::from(MAX_PAYLOAD_LEN) + 1;
    let file = fs.open(&manifest_path(), OpenMode::OpenOrCreate).unwrap();
    file.set_len(huge).unwrap();
    assert_eq!(corrupt_reason(&fs), "the file is larger than any manifest");
    let message = Manifest::load(&fs, dir()).unwrap_err().to_string();
    assert!(message.contains("/db/MANIFEST"), "{message}");
}

#[test]
fn oversized_manifest_is_refused_before_writing() {
    let fs = fs_with(Some(&a()));
    let big = Manifest::new(2, (0..600_000).collect(), vec![], None);
    let ops = fs.ops();
    assert!(matches!(
        big.store(&fs, dir()),
        Err(ManifestError::TooLarge { .. })
    ));
    assert_eq!(fs.ops(), ops, "nothing was touched");
    assert_eq!(Manifest::load(&fs, dir()).unwrap(), Some(a()));
}

#[test]
fn cleanup_removes_only_the_temporary_file() {
    let fs = fs_with(Some(&a()));
    Manifest::cleanup_temp(&fs, dir()).unwrap();
    put(&fs, &temp_path(), b"half-written");
    // Load ignores it and does not remove it: it never writes.
    assert_eq!(Manifest::load(&fs, dir()).unwrap(), Some(a()));
    assert!(fs.exists(&temp_path()));
    Manifest::cleanup_temp(&fs, dir()).unwrap();
    assert!(!fs.exists(&temp_path()));
    assert_eq!(Manifest::load(&fs, dir()).unwrap(), Some(a()));
}

/// `A` stored durably, optionally with a stale, durable `MANIFEST.tmp` from an earlier crash.
fn before_replacement(stale_temp: bool) -> SimFs {
    let fs = fs_with(Some(&a()));
    if stale_temp {
        put(
            &fs,
            &temp_path(),
            b"stale garbage from an interrupted store",
        );
        fs.open(&temp_path(), OpenMode::Existing)
            .unwrap()
            .sync_all()
            .unwrap();
        fs.sync_dir(dir()).unwrap();
    }
    fs
}

/// Crashes `fs` every way and checks each image holds `A` or `B` (only `B` if `acked`), and
/// that the next store on it succeeds. Counts the crash cases and the generations found.
fn crash_every_way(fs: &SimFs, acked: bool, context: &str, seen: &mut Seen) {
    for mode in MODES {
        for seed in 0..SEEDS {
            let after = fs.crash(seed, mode);
            let found = Manifest::load(&after, dir())
                .unwrap_or_else(|e| panic!("{context} {mode:?} seed {seed}: {e}"))
                .unwrap_or_else(|| panic!("{context} {mode:?} seed {seed}: no manifest"));
            if acked {
                assert_eq!(
                    found,
                    b(),
                    "{context} {mode:?} seed {seed}: acknowledged B lost"
                );
            } else {
                assert!(
                    found == a() || found == b(),
                    "{context} {mode:?} seed {seed}"
                );
            }
            seen.cases += 1;
            seen.generations.insert(found.generation);
        }
    }
    // Recovery can move on from any of these states; one image per mode is enough for that.
    for mode in MODES {
        let after = fs.crash(1, mode);
        Manifest::cleanup_temp(&after, dir()).unwrap();
        let c = Manifest::new(3, vec![9], vec![], Some(8));
        c.store(&after, dir()).unwrap();
        assert_eq!(
            Manifest::load(&after.crash(2, mode), dir()).unwrap(),
            Some(c)
        );
    }
}

/// What the crashes of one test found.
#[derive(Debug, Default)]
struct Seen {
    cases: usize,
    generations: std::collections::BTreeSet<u64>,
}

#[test]
fn crash_at_every_operation_of_a_replacement_leaves_a_or_b() {
    let mut seen = Seen::default();
    for stale_temp in [false, true] {
        let base = before_replacement(stale_temp);
        let mut points = 0;
        for n in 0.. {
            let fs = base.snapshot();
            fs.fail_after(n);
            let stored = b().store(&fs, dir());
            let context = format!("stale_temp {stale_temp} n {n}:");
            crash_every_way(&fs, stored.is_ok(), &context, &mut seen);
            points += 1;
            if stored.is_ok() {
                break;
            }
        }
        // remove (if stale), create, write, sync, rename, sync_dir; then the completed store.
        assert_eq!(points, if stale_temp { 7 } else { 6 });
    }
    assert_eq!(seen.cases, 2340, "13 crash points × 3 modes × 60 seeds");
    // Not vacuous: some crashes kept the old manifest, some the new.
    assert_eq!(seen.generations, [1, 2].into());
    println!("manifest replacement: {} crash cases", seen.cases);
}

#[test]
fn injected_faults_leave_a_or_b() {
    let effects = [
        (FaultError::Eio, FaultEffect::Clean),
        (FaultError::Enospc, FaultEffect::ShortWrite),
        (FaultError::Eio, FaultEffect::LyingPageCache),
    ];
    let kinds = [
        OpKind::Remove,
        OpKind::Open,
        OpKind::Write,
        OpKind::Sync,
        OpKind::Rename,
        OpKind::SyncDir,
    ];
    let mut failures = 0;
    let mut seen = Seen::default();
    for (error, effect) in effects {
        for op in kinds {
            let base = before_replacement(true);
            for nth in 0.. {
                let fs = base.snapshot();
                fs.inject(Fault {
                    error,
                    effect,
                    ..Fault::new(op, nth)
                });
                let context = format!("{op:?} #{nth} {error:?} {effect:?}:");
                let Err(err) = b().store(&fs, dir()) else {
                    // The store does one operation of each kind: only the first can fail.
                    assert_eq!(nth, 1, "{context}");
                    break;
                };
                assert!(matches!(err, ManifestError::Io { .. }), "{context} {err:?}");
                assert!(err.to_string().contains(" failed: simulated "), "{err}");
                failures += 1;
                // Without a crash the live manifest is B only once the rename happened.
                let live = Manifest::load(&fs, dir()).unwrap().unwrap();
                assert_eq!(
                    live,
                    if op == OpKind::SyncDir { b() } else { a() },
                    "{context}"
                );
                fs.clear_faults();
                crash_every_way(&fs, false, &context, &mut seen);
            }
        }
    }
    assert_eq!(failures, effects.len() * kinds.len());
    assert_eq!(seen.generations, [1, 2].into());
    println!("manifest faults: {} crash cases", seen.cases);
}

//! Tests of runs: round trips in memory and on disk, the writer's order check, every merge rule,
//! damage of every kind (each byte flipped, each truncation, lengths that claim too much,
//! trailing bytes, newer formats), and merges checked against a `BTreeMap` model of a history.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::*;
use crate::id::DocId;
use crate::storage::frame;
use crate::storage::frame::Defect;
use crate::storage::sim_fs::{Fault, OpKind, SimFs};
use crate::storage::std_fs::StdFs;
use crate::storage::temp_dir::TempDir;
use crate::storage::vfs::{to_u64, OpenMode, Vfs};
use proptest::prelude::*;

/// An in-memory file system holding the directory `/db`.
fn sim() -> SimFs {
    let vfs = SimFs::new();
    vfs.create_dir_all(Path::new("/db")).unwrap();
    vfs
}

fn path(id: u64) -> PathBuf {
    Path::new("/db").join(run_name(id))
}

fn int(i: i64) -> RecordId {
    RecordId::Int(i)
}

fn s(s: &str) -> RecordId {
    RecordId::Str(s.to_owned())
}

fn live(name: &str, created: u64) -> Entry {
    Entry::Collection {
        name: name.to_owned(),
        state: CollectionState::Live { created },
    }
}

fn dropped(name: &str, at: u64) -> Entry {
    Entry::Collection {
        name: name.to_owned(),
        state: CollectionState::Dropped { at },
    }
}

fn doc(collection: &str, id: RecordId, ts: u64, body: &str) -> Entry {
    Entry::Doc {
        collection: collection.to_owned(),
        id,
        ts,
        body: Some(body.as_bytes().to_vec()),
    }
}

fn tomb(collection: &str, id: RecordId, ts: u64) -> Entry {
    Entry::Doc {
        collection: collection.to_owned(),
        id,
        ts,
        body: None,
    }
}

fn merged_coll(name: &str, created: u64) -> Merged {
    Merged::Collection {
        name: name.to_owned(),
        created,
    }
}

fn merged_doc(collection: &str, id: RecordId, ts: u64, body: &str) -> Merged {
    Merged::Doc {
        collection: collection.to_owned(),
        id,
        ts,
        body: body.as_bytes().to_vec(),
    }
}

fn write_run(vfs: &dyn Vfs, path: &Path, entries: &[Entry]) -> RunSummary {
    let mut writer = RunWriter::create(vfs, path).unwrap();
    for entry in entries {
        writer.push(entry).unwrap();
    }
    writer.finish().unwrap()
}

fn read_all(vfs: &dyn Vfs, path: &Path) -> Result<Vec<Entry>, RunError> {
    let mut reader = RunReader::open(vfs, path)?;
    let mut out = Vec::new();
    while let Some(entry) = reader.next()? {
        out.push(entry);
    }
    Ok(out)
}

/// Merges the runs `paths`, oldest first, into a list.
fn merge_all(vfs: &dyn Vfs, paths: &[PathBuf]) -> Result<Vec<Merged>, RunError> {
    let readers = paths
        .iter()
        .map(|p| RunReader::open(vfs, p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut merge = Merge::new(readers)?;
    let mut out = Vec::new();
    while let Some(item) = merge.next()? {
        out.push(item);
    }
    Ok(out)
}

/// Writes each list of entries as a run (ids 1, 2, …) and merges them, oldest first.
fn merge_runs(runs: &[Vec<Entry>]) -> Result<Vec<Merged>, RunError> {
    let vfs = sim();
    let paths: Vec<PathBuf> = (1..).take(runs.len()).map(path).collect();
    for (p, entries) in paths.iter().zip(runs) {
        write_run(&vfs, p, entries);
    }
    merge_all(&vfs, &paths)
}

fn file_bytes(vfs: &dyn Vfs, path: &Path) -> Vec<u8> {
    let file = vfs.open(path, OpenMode::Existing).unwrap();
    let mut bytes = vec![0; usize::try_from(file.len().unwrap()).unwrap()];
    file.read_exact_at(0, &mut bytes).unwrap();
    bytes
}

/// A fresh file system holding `bytes` at `path(1)`.
fn fs_with(bytes: &[u8]) -> SimFs {
    let vfs = sim();
    let file = vfs.open(&path(1), OpenMode::CreateNew).unwrap();
    file.append(bytes).unwrap();
    vfs
}

/// A run file built frame by frame, so tests can write what `RunWriter` never would.
fn raw_run(format: u32, frames: &[RunFrame<'_>]) -> Vec<u8> {
    let mut out = RUN_MAGIC.to_vec();
    out.extend_from_slice(&format.to_le_bytes());
    for f in frames {
        let payload = bincode::serde::encode_to_vec(f, bincode::config::standard()).unwrap();
        frame::encode(&payload, &mut out).unwrap();
    }
    out
}

fn entry_frame(entry: &Entry) -> RunFrame<'_> {
    RunFrame::Entry(Cow::Borrowed(entry))
}

/// The reason of a `Corrupt` error, failing the test on anything else.
fn corrupt_reason<T: fmt::Debug>(result: Result<T, RunError>) -> String {
    match result {
        Err(RunError::Corrupt { reason, .. }) => reason,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// A run touching every kind of entry: several collections (one dropped), int and string ids,
/// tombstones.
fn mixed() -> Vec<Entry> {
    vec![
        live("Zeta", 3),
        doc("Zeta", int(1), 4, r#"{"_id":1}"#),
        dropped("a", 40),
        doc("a", int(-5), 12, r#"{"_id":-5}"#),
        live("users", 2),
        doc("users", int(i64::MIN), 5, r#"{"_id":-9223372036854775808}"#),
        tomb("users", int(0), 30),
        doc("users", int(7), 21, r#"{"_id":7,"name":"Bo"}"#),
        doc("users", s(""), 8, r#"{"_id":""}"#),
        doc("users", s("Ann"), 9, r#"{"_id":"Ann","age":31}"#),
        tomb("users", s("ann"), 11),
        doc("users", s("é"), 10, r#"{"_id":"é"}"#),
        // Collection names are compared byte-wise: "users" < "users2" < "é".
        live("users2", 1),
        live("é", 6),
        tomb("é", s("x"), 7),
    ]
}

#[test]
fn run_names_round_trip_and_only_the_canonical_form_parses() {
    for id in [0, 1, 0xabc, u64::MAX] {
        assert_eq!(parse_run_name(&run_name(id)), Some(id));
    }
    assert_eq!(run_name(0x1f), "data-000000000000001f.run");
    for name in [
        "data-000000000000001F.run",
        "data-1f.run",
        "data-0000000000000001f.run",
        "data-+00000000000001f.run",
        "data-000000000000001f.log",
        "wal-000000000000001f.run",
        "data-000000000000001f.run.tmp",
        "data-00000000000000 f.run",
        "",
    ] {
        assert_eq!(parse_run_name(name), None, "{name}");
    }
}

#[test]
fn a_mixed_run_round_trips_with_its_summary() {
    let vfs = sim();
    let entries = mixed();
    let mut writer = RunWriter::create(&vfs, &path(1)).unwrap();
    let mut frame_bytes = 0;
    for entry in &entries {
        frame_bytes += writer.push(entry).unwrap();
    }
    let summary = writer.finish().unwrap();
    let len = to_u64(file_bytes(&vfs, &path(1)).len());
    assert_eq!(summary.entries, 15);
    assert_eq!(summary.max_ts, 40);
    assert_eq!(summary.bytes, len);
    // Header, the entries' frames, and the footer frame: nothing else.
    let footer = raw_run(
        RUN_FORMAT,
        &[RunFrame::Footer {
            entries: 15,
            max_ts: 40,
        }],
    );
    assert_eq!(len, frame_bytes + to_u64(footer.len()));
    assert_eq!(read_all(&vfs, &path(1)).unwrap(), entries);
    assert_eq!(verify_run(&vfs, &path(1)).unwrap(), summary);
}

#[test]
fn an_empty_run_round_trips() {
    let vfs = sim();
    let summary = write_run(&vfs, &path(1), &[]);
    assert_eq!(summary.entries, 0);
    assert_eq!(summary.max_ts, 0);
    assert_eq!(read_all(&vfs, &path(1)).unwrap(), []);
    assert_eq!(verify_run(&vfs, &path(1)).unwrap(), summary);
    assert_eq!(merge_all(&vfs, &[path(1)]).unwrap(), []);
}

#[test]
fn a_large_run_round_trips_on_the_real_disk() {
    let dir = TempDir::new("run");
    let p = dir.0.join(run_name(7));
    // Many small entries (several write batches and read buffers) and bodies larger than both
    // buffers, so frames straddle batch and buffer boundaries.
    let mut entries = vec![live("big", 1)];
    for i in 0..3000 {
        entries.push(doc(
            "big",
            int(i),
            2,
            &format!(r#"{{"_id":{i},"pad":"{}"}}"#, "x".repeat(100)),
        ));
    }
    entries.push(Entry::Doc {
        collection: "big".to_owned(),
        id: s("huge"),
        ts: 3,
        body: Some(vec![b'7'; 1 << 20]),
    });
    entries.push(Entry::Doc {
        collection: "big".to_owned(),
        id: s("huge2"),
        ts: 3,
        body: Some((0..300_000u32).map(|i| i.to_le_bytes()[0]).collect()),
    });
    let summary = write_run(&StdFs, &p, &entries);
    assert_eq!(summary.entries, 3003);
    assert_eq!(summary.max_ts, 3);
    assert_eq!(summary.bytes, std::fs::metadata(&p).unwrap().len());
    assert_eq!(read_all(&StdFs, &p).unwrap(), entries);
    assert_eq!(verify_run(&StdFs, &p).unwrap(), summary);
    let merged = merge_all(&StdFs, std::slice::from_ref(&p)).unwrap();
    assert_eq!(merged.len(), 3003);
}

#[test]
fn create_refuses_an_existing_file() {
    let vfs = sim();
    write_run(&vfs, &path(1), &[]);
    match RunWriter::create(&vfs, &path(1)) {
        Err(RunError::Io { op, source, .. }) => {
            assert_eq!(op, "creating");
            assert_eq!(source.kind(), io::ErrorKind::AlreadyExists);
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn the_writer_refuses_out_of_order_and_duplicate_keys_and_writes_nothing_for_them() {
    let vfs = sim();
    let mut writer = RunWriter::create(&vfs, &path(1)).unwrap();
    writer.push(&live("b", 1)).unwrap();
    writer.push(&doc("b", int(5), 2, "{}")).unwrap();
    let refused = [
        doc("b", int(5), 3, "{}"), // duplicate key, whatever the ts
        doc("b", int(4), 3, "{}"),
        live("b", 9), // a collection entry after its documents
        live("a", 9),
        doc("a", s("x"), 3, "{}"),
    ];
    for entry in &refused {
        match writer.push(entry) {
            Err(RunError::OutOfOrder { path: p }) => assert_eq!(p, path(1)),
            other => panic!("expected OutOfOrder for {entry:?}, got {other:?}"),
        }
    }
    // The writer is still usable, and the refused entries left no trace.
    writer.push(&doc("b", s("a"), 3, "{}")).unwrap();
    writer.push(&live("c", 4)).unwrap();
    assert_eq!(writer.finish().unwrap().entries, 4);
    assert_eq!(
        read_all(&vfs, &path(1)).unwrap(),
        [
            live("b", 1),
            doc("b", int(5), 2, "{}"),
            doc("b", s("a"), 3, "{}"),
            live("c", 4)
        ]
    );
}

#[test]
fn cmp_key_orders_ids_like_doc_id_and_collections_first() {
    let ids = [
        s("b"),
        int(i64::MAX),
        s(""),
        int(-1),
        s("\u{10000}"),
        int(0),
        s("a"),
        s("B"),
        int(i64::MIN),
        s("aa"),
        s("é"),
        int(1),
    ];
    let mut by_doc_id: Vec<&RecordId> = ids.iter().collect();
    by_doc_id.sort_by_key(|id| id.to_doc_id());
    let mut by_key: Vec<&RecordId> = ids.iter().collect();
    by_key.sort_by(|a, b| cmp_key(&tomb("c", (*a).clone(), 1), &tomb("c", (*b).clone(), 1)));
    assert_eq!(by_key, by_doc_id);
    for a in &ids {
        for b in &ids {
            assert_eq!(
                cmp_key(&tomb("c", a.clone(), 1), &tomb("c", b.clone(), 9)),
                a.to_doc_id().cmp(&b.to_doc_id()),
                "{a:?} vs {b:?}"
            );
        }
        // The collection entry sorts before every document of its collection, and after every
        // document of a collection whose name is smaller.
        assert_eq!(
            cmp_key(&live("c", 5), &tomb("c", a.clone(), 1)),
            Ordering::Less
        );
        assert_eq!(
            cmp_key(&dropped("c", 5), &tomb("bz", a.clone(), 1)),
            Ordering::Greater
        );
        assert_eq!(
            cmp_key(&tomb("c", a.clone(), 1), &live("c\0", 1)),
            Ordering::Less
        );
    }
    assert_eq!(cmp_key(&live("c", 5), &dropped("c", 9)), Ordering::Equal);
    assert_eq!(cmp_key(&live("Z", 1), &live("a", 1)), Ordering::Less);
    assert_eq!(cmp_key(&live("z", 1), &live("é", 1)), Ordering::Less);
}

#[test]
fn an_oversized_entry_is_refused_and_the_writer_goes_on() {
    let vfs = sim();
    let mut writer = RunWriter::create(&vfs, &path(1)).unwrap();
    writer.push(&live("c", 1)).unwrap();
    let huge = Entry::Doc {
        collection: "c".to_owned(),
        id: int(1),
        ts: 2,
        body: Some(vec![0; MAX_FRAME_LEN as usize + 1]),
    };
    match writer.push(&huge) {
        Err(RunError::EntryTooLarge { len, max, .. }) => {
            assert_eq!(len, MAX_FRAME_LEN as usize + 1);
            assert_eq!(max, MAX_FRAME_LEN);
        }
        other => panic!("expected EntryTooLarge, got {other:?}"),
    }
    writer.push(&doc("c", int(1), 2, "{}")).unwrap();
    writer.finish().unwrap();
    assert_eq!(read_all(&vfs, &path(1)).unwrap().len(), 2);
}

#[test]
fn a_write_error_stops_the_writer() {
    let vfs = sim();
    let mut writer = RunWriter::create(&vfs, &path(1)).unwrap();
    vfs.inject(Fault::new(OpKind::Write, 0));
    writer.push(&live("c", 1)).unwrap();
    let body = "x".repeat(WRITE_BUFFER);
    // The first push that fills the buffer appends it, and fails.
    match writer.push(&doc("c", int(1), 2, &body)) {
        Err(RunError::Io { op: "writing", .. }) => {}
        other => panic!("expected a write error, got {other:?}"),
    }
    assert!(matches!(
        writer.push(&doc("c", int(2), 2, "{}")),
        Err(RunError::Stopped { .. })
    ));
    assert!(matches!(writer.finish(), Err(RunError::Stopped { .. })));
    // Whatever reached the file, it is not a valid run.
    assert!(matches!(
        verify_run(&vfs, &path(1)),
        Err(RunError::Corrupt { .. })
    ));
}

#[test]
fn a_sync_error_fails_finish() {
    let vfs = sim();
    let mut writer = RunWriter::create(&vfs, &path(1)).unwrap();
    writer.push(&live("c", 1)).unwrap();
    vfs.inject(Fault::new(OpKind::Sync, 0));
    match writer.finish() {
        Err(e @ RunError::Io { op: "syncing", .. }) => {
            assert!(std::error::Error::source(&e).is_some());
        }
        other => panic!("expected a sync error, got {other:?}"),
    }
}

#[test]
fn merge_of_no_runs_is_empty() {
    assert_eq!(merge_runs(&[]).unwrap(), []);
}

#[test]
fn merge_takes_the_newest_ts_whichever_run_holds_it() {
    let runs = [
        // The oldest run holds the newest version of doc 1.
        vec![
            live("c", 1),
            doc("c", int(1), 9, "new1"),
            doc("c", int(2), 2, "old2"),
        ],
        vec![doc("c", int(1), 5, "old1"), doc("c", int(2), 6, "new2")],
        vec![doc("c", int(3), 4, "only3")],
    ];
    assert_eq!(
        merge_runs(&runs).unwrap(),
        [
            merged_coll("c", 1),
            merged_doc("c", int(1), 9, "new1"),
            merged_doc("c", int(2), 6, "new2"),
            merged_doc("c", int(3), 4, "only3"),
        ]
    );
}

#[test]
fn merge_on_equal_ts_takes_the_newer_run() {
    let runs = [
        vec![live("c", 1), doc("c", int(1), 5, "older run")],
        vec![doc("c", int(1), 5, "middle run")],
        vec![doc("c", int(1), 5, "newer run"), doc("c", int(2), 5, "two")],
        vec![tomb("c", int(2), 5)],
    ];
    assert_eq!(
        merge_runs(&runs).unwrap(),
        [merged_coll("c", 1), merged_doc("c", int(1), 5, "newer run")]
    );
    // The same for collection states: a drop and a create at the same ts.
    let runs = [
        vec![live("c", 3), doc("c", int(1), 3, "x")],
        vec![dropped("c", 3)],
    ];
    assert_eq!(merge_runs(&runs).unwrap(), []);
    let runs = [
        vec![dropped("c", 3)],
        vec![live("c", 3), doc("c", int(1), 3, "x")],
    ];
    assert_eq!(
        merge_runs(&runs).unwrap(),
        [merged_coll("c", 3), merged_doc("c", int(1), 3, "x")]
    );
}

#[test]
fn merge_lets_a_tombstone_hide_an_older_body_but_not_a_newer_one() {
    let runs = [
        vec![
            live("c", 1),
            doc("c", int(1), 2, "gone"),
            doc("c", s("k"), 8, "back"),
        ],
        vec![
            tomb("c", int(1), 3),
            tomb("c", s("k"), 4),
            tomb("c", s("only"), 5),
        ],
    ];
    assert_eq!(
        merge_runs(&runs).unwrap(),
        [merged_coll("c", 1), merged_doc("c", s("k"), 8, "back")]
    );
}

#[test]
fn merge_hides_a_dropped_collection_and_all_its_documents() {
    let runs = [
        vec![
            live("a", 1),
            doc("a", int(1), 1, "a1"),
            live("c", 1),
            doc("c", int(1), 2, "x"),
        ],
        vec![doc("c", int(2), 3, "y"), live("d", 4)],
        // Documents in the same run as the drop are hidden too, whatever their ts.
        vec![dropped("c", 5), doc("c", int(3), 4, "z")],
    ];
    assert_eq!(
        merge_runs(&runs).unwrap(),
        [
            merged_coll("a", 1),
            merged_doc("a", int(1), 1, "a1"),
            merged_coll("d", 4)
        ]
    );
    // An older drop loses to a newer create in an older run.
    let runs = [
        vec![live("c", 7), doc("c", int(1), 7, "x")],
        vec![dropped("c", 5)],
    ];
    assert_eq!(
        merge_runs(&runs).unwrap(),
        [merged_coll("c", 7), merged_doc("c", int(1), 7, "x")]
    );
}

#[test]
fn merge_after_a_drop_and_recreate_keeps_only_the_new_incarnation() {
    let runs = [
        vec![
            live("c", 1),
            doc("c", int(1), 2, "old1"),
            doc("c", int(2), 3, "old2"),
            doc("c", s("s"), 4, "old s"),
        ],
        vec![dropped("c", 5)],
        vec![
            live("c", 6),
            doc("c", int(2), 6, "new2"), // written with the create: ts == created is kept
            doc("c", int(3), 8, "new3"),
        ],
        // A stray version of the old incarnation in a newer run is still older than the create.
        vec![doc("c", s("s"), 4, "old s again")],
    ];
    assert_eq!(
        merge_runs(&runs).unwrap(),
        [
            merged_coll("c", 6),
            merged_doc("c", int(2), 6, "new2"),
            merged_doc("c", int(3), 8, "new3"),
        ]
    );
}

#[test]
fn merge_reports_frame_lengths_and_progress() {
    let vfs = sim();
    let older = [
        live("c", 1),
        doc("c", int(1), 2, "old"),
        doc("c", int(2), 2, "two"),
    ];
    let newer = [doc("c", int(1), 3, "a newer and longer body")];
    let mut lengths = Vec::new();
    for (p, entries) in [(path(1), &older[..]), (path(2), &newer[..])] {
        let mut writer = RunWriter::create(&vfs, &p).unwrap();
        lengths.push(
            entries
                .iter()
                .map(|e| writer.push(e).unwrap())
                .collect::<Vec<_>>(),
        );
        writer.finish().unwrap();
    }
    let readers = vec![
        RunReader::open(&vfs, &path(1)).unwrap(),
        RunReader::open(&vfs, &path(2)).unwrap(),
    ];
    let total: u64 = readers.iter().map(RunReader::file_len).sum();
    assert_eq!(
        total,
        to_u64(file_bytes(&vfs, &path(1)).len() + file_bytes(&vfs, &path(2)).len())
    );
    let mut merge = Merge::new(readers).unwrap();
    assert_eq!(merge.last_bytes(), 0);
    let mut read = merge.bytes_read();
    assert!(read > 2 * FILE_HEADER_LEN && read < total, "{read}");
    // Each item reports the frame length of the entry that won, from whichever run held it.
    for expected in [lengths[0][0], lengths[1][0], lengths[0][2]] {
        assert!(merge.next().unwrap().is_some());
        assert_eq!(merge.last_bytes(), expected);
        assert!(merge.bytes_read() >= read && merge.bytes_read() <= total);
        read = merge.bytes_read();
    }
    assert_eq!(merge.next().unwrap(), None);
    assert_eq!(merge.bytes_read(), total);
}

#[test]
fn merge_refuses_a_document_without_a_collection_entry() {
    let vfs = sim();
    write_run(&vfs, &path(1), &[live("a", 1), doc("a", int(1), 1, "x")]);
    write_run(
        &vfs,
        &path(2),
        &[doc("a", int(2), 2, "y"), doc("b", int(1), 3, "orphan")],
    );
    let readers = vec![
        RunReader::open(&vfs, &path(1)).unwrap(),
        RunReader::open(&vfs, &path(2)).unwrap(),
    ];
    let mut merge = Merge::new(readers).unwrap();
    assert_eq!(merge.next().unwrap(), Some(merged_coll("a", 1)));
    assert_eq!(merge.next().unwrap(), Some(merged_doc("a", int(1), 1, "x")));
    assert_eq!(merge.next().unwrap(), Some(merged_doc("a", int(2), 2, "y")));
    let err = merge.next().unwrap_err();
    match &err {
        RunError::Corrupt {
            path: p,
            offset,
            reason,
        } => {
            assert_eq!(p, &path(2));
            assert!(*offset > FILE_HEADER_LEN, "{offset}");
            assert!(reason.contains("\"b\" has no collection entry"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(err.to_string().contains(&run_name(2)), "{err}");
    // The merge stops there.
    assert!(matches!(merge.next(), Err(RunError::Stopped { .. })));
}

#[test]
fn merge_reports_a_damaged_run() {
    let vfs = sim();
    write_run(&vfs, &path(1), &[live("a", 1), doc("a", int(1), 1, "x")]);
    let mut bytes = raw_run(RUN_FORMAT, &[entry_frame(&live("a", 2))]);
    bytes.truncate(bytes.len() - 1);
    let file = vfs.open(&path(2), OpenMode::CreateNew).unwrap();
    file.append(&bytes).unwrap();
    let err = merge_all(&vfs, &[path(1), path(2)]).unwrap_err();
    assert!(
        matches!(&err, RunError::Corrupt { path: p, .. } if p == &path(2)),
        "{err:?}"
    );
}

/// A small run with a bit of everything, for the damage tests.
fn small_run() -> Vec<u8> {
    let vfs = sim();
    write_run(
        &vfs,
        &path(1),
        &[
            live("c", 1),
            doc("c", int(-3), 2, r#"{"_id":-3}"#),
            tomb("c", s("k"), 3),
            dropped("d", 4),
        ],
    );
    file_bytes(&vfs, &path(1))
}

#[test]
fn every_flipped_byte_is_detected() {
    let good = small_run();
    for i in 0..good.len() {
        for mask in [0x01, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[i] ^= mask;
            let vfs = fs_with(&bad);
            let result = verify_run(&vfs, &path(1));
            assert!(
                matches!(
                    result,
                    Err(RunError::Corrupt { .. } | RunError::NewerFormat { .. })
                ),
                "byte {i} ^ {mask:#x}: {result:?}"
            );
            assert!(read_all(&vfs, &path(1)).is_err());
        }
    }
}

#[test]
fn every_truncation_is_detected() {
    let good = small_run();
    for len in 0..good.len() {
        let vfs = fs_with(&good[..len]);
        let reason = corrupt_reason(verify_run(&vfs, &path(1)));
        if len >= 12 {
            assert!(
                reason.contains("footer"),
                "length {len}: the missing footer is named: {reason}"
            );
        }
    }
    assert!(verify_run(&fs_with(&good), &path(1)).is_ok());
}

#[test]
fn a_huge_length_field_is_corrupt_without_reading_it() {
    for len in [u32::MAX, MAX_FRAME_LEN + 1, MAX_FRAME_LEN] {
        let mut bytes = raw_run(RUN_FORMAT, &[]);
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(b"a few bytes, far fewer than claimed");
        let reason = corrupt_reason(verify_run(&fs_with(&bytes), &path(1)));
        if len > MAX_FRAME_LEN {
            assert_eq!(reason, Defect::LengthOverMax.as_str());
        } else {
            assert!(reason.contains("ends inside a frame"), "{reason}");
        }
    }
}

#[test]
fn a_bincode_length_claiming_too_much_is_corrupt() {
    // A valid frame whose payload is an entry whose body claims u64::MAX bytes.
    let mut payload = bincode::serde::encode_to_vec(
        entry_frame(&doc("c", int(1), 1, "")),
        bincode::config::standard(),
    )
    .unwrap();
    payload.pop(); // the body's length, 0
    payload.push(253);
    payload.extend_from_slice(&u64::MAX.to_le_bytes());
    payload.extend_from_slice(b"{}");
    let mut bytes = raw_run(RUN_FORMAT, &[entry_frame(&live("c", 1))]);
    frame::encode(&payload, &mut bytes).unwrap();
    let reason = corrupt_reason(verify_run(&fs_with(&bytes), &path(1)));
    assert!(reason.contains("malformed"), "{reason}");
}

#[test]
fn bytes_after_the_footer_are_corrupt() {
    let good = small_run();
    // A second footer, a stray entry frame, or a single byte.
    let footer = raw_run(
        RUN_FORMAT,
        &[RunFrame::Footer {
            entries: 4,
            max_ts: 4,
        }],
    );
    let entry = raw_run(RUN_FORMAT, &[entry_frame(&live("z", 9))]);
    for tail in [&footer[12..], &entry[12..], &[0][..]] {
        let mut bad = good.clone();
        bad.extend_from_slice(tail);
        match verify_run(&fs_with(&bad), &path(1)) {
            Err(RunError::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, to_u64(good.len()));
                assert!(reason.contains("follow the footer"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn a_newer_format_is_refused_as_newer_and_a_bad_header_as_corrupt() {
    let mut newer = small_run();
    newer[8..12].copy_from_slice(&(RUN_FORMAT + 1).to_le_bytes());
    let err = verify_run(&fs_with(&newer), &path(1)).unwrap_err();
    match &err {
        RunError::NewerFormat {
            found, supported, ..
        } => {
            assert_eq!((*found, *supported), (RUN_FORMAT + 1, RUN_FORMAT));
        }
        other => panic!("expected NewerFormat, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("upgrade snapbase") && message.contains(&run_name(1)),
        "{message}"
    );

    let mut zero = small_run();
    zero[8..12].copy_from_slice(&0u32.to_le_bytes());
    assert!(corrupt_reason(verify_run(&fs_with(&zero), &path(1))).contains("version 0"));

    let mut magic = small_run();
    magic[..8].copy_from_slice(b"SNAPMAN1");
    assert!(corrupt_reason(verify_run(&fs_with(&magic), &path(1))).contains("magic"));
}

#[test]
fn a_footer_that_disagrees_with_the_entries_is_corrupt() {
    let (a, b) = (live("a", 1), doc("a", int(1), 7, "{}"));
    for (entries, max_ts, expected) in [(1, 7, "counts 1"), (3, 7, "counts 3"), (2, 6, "timestamp")]
    {
        let bytes = raw_run(
            RUN_FORMAT,
            &[
                entry_frame(&a),
                entry_frame(&b),
                RunFrame::Footer { entries, max_ts },
            ],
        );
        let reason = corrupt_reason(verify_run(&fs_with(&bytes), &path(1)));
        assert!(reason.contains(expected), "{reason}");
    }
    let bytes = raw_run(
        RUN_FORMAT,
        &[
            entry_frame(&a),
            entry_frame(&b),
            RunFrame::Footer {
                entries: 2,
                max_ts: 7,
            },
        ],
    );
    assert!(verify_run(&fs_with(&bytes), &path(1)).is_ok());
}

#[test]
fn keys_out_of_order_on_disk_are_corrupt() {
    let (a, b) = (live("a", 1), live("b", 1));
    for order in [[&b, &a], [&a, &a]] {
        let bytes = raw_run(
            RUN_FORMAT,
            &[
                entry_frame(order[0]),
                entry_frame(order[1]),
                RunFrame::Footer {
                    entries: 2,
                    max_ts: 1,
                },
            ],
        );
        let vfs = fs_with(&bytes);
        let mut reader = RunReader::open(&vfs, &path(1)).unwrap();
        assert_eq!(reader.next().unwrap().as_ref(), Some(order[0]));
        assert!(corrupt_reason(reader.next()).contains("not above"));
        // The reader stops at the first error.
        assert!(matches!(reader.next(), Err(RunError::Stopped { .. })));
    }
}

#[test]
fn error_messages_are_sentences_naming_the_file() {
    let p = path(3);
    let errors = [
        corrupt(&p, 42, "frame checksum mismatch"),
        RunError::NewerFormat {
            path: p.clone(),
            found: 2,
            supported: 1,
        },
        RunError::OutOfOrder { path: p.clone() },
        RunError::EntryTooLarge {
            path: p.clone(),
            len: 9,
            max: 8,
        },
        RunError::Stopped { path: p.clone() },
        io_err("reading", &p)(io::Error::other("disk on fire")),
    ];
    for e in &errors {
        let message = e.to_string();
        assert!(message.contains(&run_name(3)), "{message}");
        assert_eq!(e.path(), p);
    }
    assert_eq!(
        errors[0].to_string(),
        "the data file /db/data-0000000000000003.run is damaged at byte 42 (frame checksum \
         mismatch); the database cannot be opened safely, restore it from a backup"
    );
    assert_eq!(
        errors[1].to_string(),
        "the data file /db/data-0000000000000003.run was written by a newer snapbase (format 2, \
         this build reads up to 1); upgrade snapbase to open the database"
    );
    assert!(std::error::Error::source(&errors[5]).is_some());
    assert!(std::error::Error::source(&errors[0]).is_none());
}

/// One step of a database history, for the model tests.
#[derive(Debug, Clone)]
enum Op {
    /// Writes a document, creating its collection first (at the same ts) if it does not exist.
    Put {
        coll: u8,
        id: u16,
        body: u16,
    },
    Delete {
        coll: u8,
        id: u16,
    },
    Drop {
        coll: u8,
    },
    /// Ends a run: everything changed since the last one is written as a new run.
    Checkpoint,
}

const COLLECTIONS: [&str; 4] = ["a", "B", "ab", "é"];

fn record_id(id: u16) -> RecordId {
    if id.is_multiple_of(3) {
        s(&format!("k{id}"))
    } else {
        int(i64::from(id) - 100)
    }
}

/// The live state a history leads to: per collection, its create ts and its documents.
type Model = BTreeMap<String, (u64, BTreeMap<DocId, (RecordId, u64, Vec<u8>)>)>;

/// Plays `ops`, writing a run at each checkpoint (and at the end) holding the newest entry of
/// every key changed since the previous run, exactly as a checkpoint would; returns the run
/// paths, oldest first, and the model's expected merge output.
fn play(vfs: &dyn Vfs, ops: &[Op]) -> (Vec<PathBuf>, Vec<Merged>) {
    let mut model = Model::new();
    let mut pending: BTreeMap<(String, Option<DocId>), Entry> = BTreeMap::new();
    let mut paths = Vec::new();
    let mut ts = 0;
    let mut checkpoint = |pending: &mut BTreeMap<_, Entry>| {
        let p = path(to_u64(paths.len()) + 1);
        let entries: Vec<Entry> = std::mem::take(pending).into_values().collect();
        write_run(vfs, &p, &entries);
        paths.push(p);
    };
    for op in ops {
        match *op {
            Op::Put { coll, id, body } => {
                let name = COLLECTIONS[usize::from(coll) % COLLECTIONS.len()];
                let id = record_id(id);
                ts += 1;
                let docs = &mut model
                    .entry(name.to_owned())
                    .or_insert_with(|| {
                        pending.insert((name.to_owned(), None), live(name, ts));
                        (ts, BTreeMap::new())
                    })
                    .1;
                let body = format!("{{\"v\":{body}}}").into_bytes();
                docs.insert(id.to_doc_id(), (id.clone(), ts, body.clone()));
                let entry = Entry::Doc {
                    collection: name.to_owned(),
                    id: id.clone(),
                    ts,
                    body: Some(body),
                };
                pending.insert((name.to_owned(), Some(id.to_doc_id())), entry);
            }
            Op::Delete { coll, id } => {
                let name = COLLECTIONS[usize::from(coll) % COLLECTIONS.len()];
                let id = record_id(id);
                if let Some((_, docs)) = model.get_mut(name) {
                    ts += 1;
                    docs.remove(&id.to_doc_id());
                    pending.insert((name.to_owned(), Some(id.to_doc_id())), tomb(name, id, ts));
                }
            }
            Op::Drop { coll } => {
                let name = COLLECTIONS[usize::from(coll) % COLLECTIONS.len()];
                if model.remove(name).is_some() {
                    ts += 1;
                    pending.insert((name.to_owned(), None), dropped(name, ts));
                }
            }
            Op::Checkpoint => checkpoint(&mut pending),
        }
    }
    checkpoint(&mut pending);
    let mut expected = Vec::new();
    for (name, (created, docs)) in model {
        expected.push(merged_coll(&name, created));
        for (id, ts, body) in docs.into_values() {
            expected.push(Merged::Doc {
                collection: name.clone(),
                id,
                ts,
                body,
            });
        }
    }
    (paths, expected)
}

/// splitmix64, for a long deterministic history.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn merge_of_several_large_runs_matches_the_model() {
    let mut rng = Rng(0x5eed);
    let mut ops = Vec::new();
    for i in 0..24_000u32 {
        if i > 0 && i % 4000 == 0 {
            ops.push(Op::Checkpoint);
        }
        let coll = u8::try_from(rng.below(4)).unwrap();
        // Ids spread over 0..3000, so each run holds thousands of distinct keys.
        let id = u16::try_from(rng.below(3000)).unwrap();
        ops.push(match rng.below(10_000) {
            // A few drops, each followed by a new incarnation.
            0..=2 => Op::Drop { coll },
            3..=1999 => Op::Delete { coll, id },
            _ => Op::Put {
                coll,
                id,
                body: u16::try_from(rng.below(1000)).unwrap(),
            },
        });
    }
    let vfs = sim();
    let (paths, expected) = play(&vfs, &ops);
    assert_eq!(paths.len(), 6);
    for p in &paths {
        assert!(
            verify_run(&vfs, p).unwrap().entries > 2000,
            "{}",
            p.display()
        );
    }
    assert!(expected.len() > 3000, "{}", expected.len());
    assert_eq!(merge_all(&vfs, &paths).unwrap(), expected);
    // Compaction: the merge written as one run and merged again is the same state.
    let compacted = path(99);
    let mut writer = RunWriter::create(&vfs, &compacted).unwrap();
    for item in &expected {
        let entry = match item.clone() {
            Merged::Collection { name, created } => live(&name, created),
            Merged::Doc {
                collection,
                id,
                ts,
                body,
            } => Entry::Doc {
                collection,
                id,
                ts,
                body: Some(body),
            },
        };
        writer.push(&entry).unwrap();
    }
    writer.finish().unwrap();
    assert_eq!(merge_all(&vfs, &[compacted]).unwrap(), expected);
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3u8, 0..12u16, any::<u16>()).prop_map(|(coll, id, body)| Op::Put { coll, id, body }),
        2 => (0..3u8, 0..12u16).prop_map(|(coll, id)| Op::Delete { coll, id }),
        1 => (0..3u8).prop_map(|coll| Op::Drop { coll }),
        1 => Just(Op::Checkpoint),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn merge_matches_the_model(ops in prop::collection::vec(op(), 0..200)) {
        let vfs = sim();
        let (paths, expected) = play(&vfs, &ops);
        prop_assert_eq!(merge_all(&vfs, &paths).unwrap(), expected);
    }
}

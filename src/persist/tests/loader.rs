//! Loading the data runs at open (`persist::loader`): on one thread for small runs and on two
//! for large ones, the same state, and the first invalid document in merge order reported.

use serde_json::json;

use super::damage::{dir, overwrite, read, runs};
use super::support::{self, State};
use crate::error::Error;
use crate::id::DocId;
use crate::options::Durability;
use crate::persist::loader::PARALLEL_BYTES;
use crate::persist::run::RUN_MAGIC;
use crate::storage::frame::{self, MAX_FRAME_LEN};
use crate::storage::sim_fs::SimFs;
use crate::sync::Arc;

/// 100 bytes, so that `n` documents make runs of about `n * 150` bytes.
const PAD: &str = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopq";

/// A database whose runs hold `n` documents of `c` (ids `0..n`, some replaced or deleted
/// after the first checkpoint) and `n / 2` of `s` (string ids), in two runs; its state.
fn database(n: i64) -> (Arc<SimFs>, State) {
    let fs = Arc::new(SimFs::new());
    let db = support::open(&fs, Durability::None).unwrap();
    let c = db.collection("c").unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(5_000) {
        c.insert_many(chunk.iter().map(|&i| json!({"_id": i, "v": i, "pad": PAD})))
            .unwrap();
    }
    db.checkpoint().unwrap();
    let s = db.collection("s").unwrap();
    for chunk in (0..n / 2).collect::<Vec<_>>().chunks(5_000) {
        s.insert_many(
            chunk
                .iter()
                .map(|&i| json!({"_id": format!("k{i}"), "pad": PAD})),
        )
        .unwrap();
    }
    for i in (0..n).step_by(7) {
        c.replace(i, json!({"v": -i})).unwrap();
    }
    for i in (3..n).step_by(11) {
        c.delete(i).unwrap();
    }
    db.checkpoint().unwrap();
    let state = support::state(&db);
    db.close().unwrap();
    (fs, state)
}

fn run_bytes(fs: &SimFs) -> u64 {
    runs(fs).iter().map(|p| read(fs, p).len() as u64).sum()
}

/// Makes document `id` of `c` invalid JSON in whichever run holds it, keeping every frame's
/// checksum valid: only the loader's parse can find it.
fn break_json(fs: &SimFs, id: i64) {
    let needle = format!(r#"{{"_id":{id},"v""#);
    for path in runs(fs) {
        let mut bytes = read(fs, &path);
        let start = RUN_MAGIC.len() + 4;
        let scan = frame::scan(&bytes, start, MAX_FRAME_LEN);
        let Some((pos, payload)) = scan.records.iter().find(|(_, payload)| {
            bytes[payload.clone()]
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        }) else {
            continue;
        };
        let mut changed = bytes[payload.clone()].to_vec();
        let at = changed
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap();
        // `{"_id":ID;"v"`: not JSON.
        changed[at + needle.len() - 4] = b';';
        let mut framed = Vec::new();
        frame::encode(&changed, &mut framed).unwrap();
        bytes[*pos..payload.end].copy_from_slice(&framed);
        overwrite(fs, &path, &bytes);
        return;
    }
    panic!("no run holds document {id}");
}

fn assert_invalid_document(e: &Error, id: i64) {
    match e {
        Error::Corrupt { path, reason, .. } => {
            assert_eq!(path, dir());
            assert!(
                reason.starts_with(&format!("document {id} of c is not valid JSON")),
                "{reason}"
            );
        }
        other => panic!("expected corruption naming document {id}, got {other}"),
    }
}

#[test]
fn small_runs_load_on_one_thread_and_large_ones_on_two_to_the_same_state() {
    for n in [300, 40_000] {
        let (fs, state) = database(n);
        let large = run_bytes(&fs) >= PARALLEL_BYTES;
        assert_eq!(
            large,
            n > 1_000,
            "{n} documents: runs of {} bytes",
            run_bytes(&fs)
        );
        for _ in 0..2 {
            let db = support::open(&fs, Durability::None).unwrap();
            assert_eq!(support::state(&db), state, "{n} documents");
            let c = db.collection("c").unwrap();
            assert_eq!(c.len().unwrap(), state["c"].len());
            db.close().unwrap();
        }
    }
}

#[test]
fn the_first_invalid_document_in_merge_order_is_reported_on_one_thread_or_two() {
    // Each pair lies in two batches, so a loader that went on after the first would report
    // the second.
    for (n, first, second) in [(3_000, 100, 2_501), (40_000, 20_000, 30_001)] {
        let (fs, state) = database(n);
        assert_eq!(run_bytes(&fs) >= PARALLEL_BYTES, n > 3_000);
        for id in [first, second] {
            // A live document as first written: a superseded body is dropped by the merge
            // unread.
            assert_eq!(state["c"][&DocId::from(id)]["v"], id);
        }
        break_json(&fs, second);
        break_json(&fs, first);
        let before = super::damage::files(&fs);
        for _ in 0..2 {
            let e = support::open(&fs, Durability::None).unwrap_err();
            assert_invalid_document(&e, first);
        }
        assert_eq!(
            super::damage::files(&fs),
            before,
            "a refused open changes nothing"
        );
    }
}

#[test]
fn damage_the_reader_finds_is_reported_on_two_threads_as_on_one() {
    for n in [3_000, 40_000] {
        let (fs, _) = database(n);
        let run = runs(&fs).into_iter().next().unwrap();
        let mut bytes = read(&fs, &run);
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        overwrite(&fs, &run, &bytes);
        let before = super::damage::files(&fs);
        match support::open(&fs, Durability::None).unwrap_err() {
            Error::Corrupt { path, .. } => assert_eq!(path, run, "{n} documents"),
            other => panic!("{n} documents: expected corruption of the run, got {other}"),
        }
        assert_eq!(
            super::damage::files(&fs),
            before,
            "a refused open changes nothing"
        );
    }
}

//! Databases opened on a directory: reopen, checkpoint, compaction, backup, verify, locking.
// The real engine only: under loom the library builds just what the models need.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

mod common;

use common::ScratchDir as Dir;
use serde_json::json;
use snapbase::{Database, Durability, Error};

#[test]
fn commits_survive_reopen_in_every_durability_mode() {
    for mode in [
        Durability::Immediate,
        Durability::Periodic(Duration::from_millis(5)),
        Durability::None,
    ] {
        let dir = Dir::new("reopen");
        {
            let db = Database::builder().durability(mode).open(&dir.0).unwrap();
            let users = db.collection("users").unwrap();
            users.insert(json!({"_id": 1, "name": "Ann"})).unwrap();
            users.insert(json!({"_id": 2, "name": "Bo"})).unwrap();
            users.replace(1, json!({"name": "Ann", "age": 3})).unwrap();
            users.delete(2).unwrap();
            db.collection("gone")
                .unwrap()
                .insert(json!({"x": 1}))
                .unwrap();
            db.drop_collection("gone").unwrap();
            db.close().unwrap();
        }
        let db = Database::open(&dir.0).unwrap();
        let users = db.collection("users").unwrap();
        assert_eq!(users.get(1).unwrap().unwrap()["age"], 3, "{mode:?}");
        assert!(users.get(2).unwrap().is_none(), "{mode:?}");
        assert_eq!(db.collection_names(), vec!["users".to_owned()], "{mode:?}");
        assert_eq!(db.stats().last_commit_ts.to_string(), "6", "{mode:?}");
    }
}

/// On disk the size of an auto-commit write is checked when the commit serializes it for the
/// WAL, not before: every operation still refuses a document over the limit with its exact
/// size, before anything is applied or logged, in memory and on disk alike.
#[test]
fn documents_over_the_size_limit_are_refused_on_disk_as_in_memory() {
    let dir = Dir::new("size-limit");
    let on_disk = || {
        Database::builder()
            .max_document_size(1024)
            .open(&dir.0)
            .unwrap()
    };
    let in_memory = || Database::builder().max_document_size(1024).in_memory();
    let big = json!({"_id": 9, "big": "x".repeat(2000)});
    let size = serde_json::to_vec(&big).unwrap().len();
    for (place, db) in [("on disk", on_disk()), ("in memory", in_memory())] {
        let c = db.collection("c").unwrap();
        c.insert(json!({"_id": 1, "a": 1})).unwrap();
        let before = db.stats().last_commit_ts;
        let refused: [(&str, snapbase::Result<()>); 5] = [
            ("insert", c.insert(big.clone()).map(drop)),
            ("upsert", c.upsert(big.clone()).map(drop)),
            (
                "replace",
                // The same length: `_id` 1 instead of 9.
                c.replace(1, json!({"_id": 1, "big": "x".repeat(2000)}))
                    .map(drop),
            ),
            (
                "insert_many",
                c.insert_many([json!({"_id": 2}), big.clone()]).map(drop),
            ),
            ("transaction", db.begin().insert("c", big.clone()).map(drop)),
        ];
        for (op, outcome) in refused {
            assert!(
                matches!(&outcome, Err(Error::DocumentTooLarge { size: s, max: 1024 }) if *s == size),
                "{place} {op}: {outcome:?}"
            );
        }
        assert_eq!(db.stats().last_commit_ts, before, "{place}");
        assert_eq!(c.len().unwrap(), 1, "{place}");
        assert_eq!(c.get(1).unwrap().unwrap()["a"], 1, "{place}");
        db.close().unwrap();
    }
    let db = on_disk();
    let c = db.collection("c").unwrap();
    assert_eq!(c.len().unwrap(), 1, "after reopening");
    assert!(c.get(2).unwrap().is_none() && c.get(9).unwrap().is_none());
}

#[test]
fn checkpoint_then_reopen_and_compaction_keep_the_state() {
    let dir = Dir::new("ckpt");
    {
        let db = Database::open(&dir.0).unwrap();
        let c = db.collection("c").unwrap();
        for i in 0..200 {
            c.insert(json!({"_id": i, "v": i})).unwrap();
        }
        db.checkpoint().unwrap();
        for i in 0..100 {
            c.replace(i, json!({"v": i * 10})).unwrap();
        }
        for i in 150..200 {
            c.delete(i).unwrap();
        }
        db.checkpoint().unwrap();
        let before = db.stats();
        assert!(before.reclaimable_bytes > 0, "{before:?}");
        let stats = db.compact().unwrap();
        assert_eq!(stats.runs_merged, 2);
        assert_eq!(stats.documents, 150);
        let after = db.stats();
        assert!(after.data_bytes < before.data_bytes, "{after:?}");
        c.insert(json!({"_id": 1000})).unwrap();
    }
    let db = Database::open(&dir.0).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.len().unwrap(), 151);
    assert_eq!(c.get(5).unwrap().unwrap()["v"], 50);
    assert_eq!(c.get(120).unwrap().unwrap()["v"], 120);
    assert!(c.get(170).unwrap().is_none());
    db.close().unwrap();
    let report = Database::verify(&dir.0).unwrap();
    assert!(report.is_ok(), "{report}");
}

#[test]
fn a_second_open_is_refused_until_close() {
    let dir = Dir::new("lock");
    let db = Database::open(&dir.0).unwrap();
    let err = Database::open(&dir.0).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(err.to_string().contains("locked"), "{err}");
    db.close().unwrap();
    let again = Database::open(&dir.0).unwrap();
    again.close().unwrap();
}

#[test]
fn backup_holds_the_snapshot_and_opens() {
    let dir = Dir::new("src");
    let target = Dir::new("backup");
    let db = Database::open(&dir.0).unwrap();
    let c = db.collection("c").unwrap();
    c.insert_many((0..50).map(|i| json!({"_id": i}))).unwrap();
    let stats = db.backup(&target.0).unwrap();
    assert_eq!(stats.documents, 50);
    c.insert(json!({"_id": 99})).unwrap();
    let copy = Database::open(&target.0).unwrap();
    assert_eq!(copy.collection("c").unwrap().len().unwrap(), 50);
    assert!(
        db.backup(&target.0).is_err(),
        "a non-empty target is refused"
    );
}

//! Public API behaviour: the contract in issue 2, one behaviour per test.
// The real engine only: under loom the library builds just what the models need.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

use serde_json::json;
use snapbase::{Database, DocId, Error, GcPolicy, Isolation};

fn db() -> Database {
    Database::builder().gc(GcPolicy::Manual).in_memory()
}

#[test]
fn crud_round_trip() {
    let db = db();
    let users = db.collection("users").unwrap();
    let id = users.insert(json!({"name": "Ann", "age": 31})).unwrap();
    assert!(id.as_str().is_some(), "generated ids are strings");
    let doc = users.get(id.clone()).unwrap().unwrap();
    assert_eq!(doc["name"], "Ann");
    assert_eq!(doc["_id"], id.to_value());
    assert!(users
        .replace(id.clone(), json!({"name": "Ann", "age": 32}))
        .unwrap());
    assert_eq!(users.get(id.clone()).unwrap().unwrap()["age"], 32);
    assert!(
        !users.replace(99, json!({"x": 1})).unwrap(),
        "replace of a missing doc is false"
    );
    assert_eq!(users.get(99).unwrap(), None, "and inserts nothing");
    assert_eq!(
        users.upsert(json!({"_id": 7, "name": "Bo"})).unwrap(),
        DocId::from(7)
    );
    assert_eq!(
        users.upsert(json!({"_id": 7, "name": "Bob"})).unwrap(),
        DocId::from(7)
    );
    assert_eq!(users.get(7).unwrap().unwrap()["name"], "Bob");
    assert_eq!(users.len().unwrap(), 2);
    assert!(users.delete(id.clone()).unwrap());
    assert!(!users.delete(id).unwrap());
    assert_eq!(users.len().unwrap(), 1);
    let ids = users
        .insert_many(vec![json!({"a": 1}), json!({"a": 2})])
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1], "generated ids increase");
    let all: Vec<_> = users.scan().unwrap().into_iter().collect();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["_id"], 7, "integers sort before strings");
}

#[test]
fn duplicate_insert_changes_nothing() {
    let db = db();
    let c = db.collection("c").unwrap();
    c.insert(json!({"_id": 1, "v": "first"})).unwrap();
    let err = c.insert(json!({"_id": 1, "v": "second"})).unwrap_err();
    assert!(matches!(err, Error::DuplicateId { .. }), "{err}");
    assert_eq!(c.get(1).unwrap().unwrap()["v"], "first");
    // insert_many is all or nothing, including duplicates within the batch.
    let err = c
        .insert_many(vec![json!({"_id": 2}), json!({"_id": 1})])
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateId { .. }));
    let err = c
        .insert_many(vec![json!({"_id": 3}), json!({"_id": 3})])
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateId { .. }));
    assert_eq!(c.len().unwrap(), 1);
    assert_eq!(
        db.stats().last_commit_ts.get(),
        1,
        "failed writes commit nothing"
    );
}

#[test]
fn bad_input_gets_clear_errors_and_changes_nothing() {
    let db = Database::builder()
        .gc(GcPolicy::Manual)
        .max_document_size(1024)
        .in_memory();
    let c = db.collection("c").unwrap();
    for (doc, want) in [
        (json!([1, 2]), "must be a JSON object"),
        (json!("x"), "must be a JSON object"),
        (json!({"_id": 1.5}), "not an integer"),
        (json!({"_id": [1]}), "must be an integer or a string"),
        (json!({"_id": {"a": 1}}), "must be an integer or a string"),
        (
            json!({"big": "x".repeat(2000)}),
            "over the maximum of 1024 bytes",
        ),
    ] {
        let err = c.insert(doc.clone()).unwrap_err();
        assert!(err.to_string().contains(want), "{doc}: {err}");
        assert!(!err.is_conflict() && !err.is_retryable());
    }
    let err = c.replace(1, json!({"_id": 2})).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    for name in ["", "a/b", "has space", "ünï", &"x".repeat(65)] {
        let err = db.collection(name).unwrap_err();
        assert!(
            matches!(err, Error::InvalidCollectionName { .. }),
            "{name:?}: {err}"
        );
        assert!(db.snapshot().get(name, 1).is_err());
        assert!(db.begin().insert(name, json!({})).is_err());
    }
    assert_eq!(db.stats().last_commit_ts.get(), 0);
    assert!(db.collection_names().is_empty());
}

#[test]
fn collections_are_created_on_first_write_and_dropped_atomically() {
    let db = db();
    let a = db.collection("a").unwrap();
    assert!(
        db.collection_names().is_empty(),
        "a handle alone creates nothing"
    );
    assert_eq!(a.len().unwrap(), 0);
    assert!(!a.delete(1).unwrap());
    assert!(
        db.collection_names().is_empty(),
        "a write that changes nothing creates nothing"
    );
    a.insert(json!({"_id": 1})).unwrap();
    db.collection("b")
        .unwrap()
        .insert(json!({"_id": 1}))
        .unwrap();
    assert_eq!(db.collection_names(), ["a", "b"]);
    let before = db.snapshot();
    assert!(db.drop_collection("a").unwrap());
    assert!(!db.drop_collection("a").unwrap());
    assert_eq!(db.collection_names(), ["b"]);
    assert_eq!(a.len().unwrap(), 0);
    assert_eq!(
        before.get("a", 1).unwrap().unwrap()["_id"],
        1,
        "old snapshots still see it"
    );
    assert_eq!(before.collection_names().unwrap(), ["a", "b"]);
    a.insert(json!({"_id": 2})).unwrap();
    assert_eq!(
        a.scan().unwrap().len(),
        1,
        "a recreated collection starts empty"
    );
    assert_eq!(before.scan("a").unwrap().len(), 1);
}

#[test]
fn transaction_sees_its_own_writes_and_commits_atomically() {
    let db = db();
    let mut tx = db.begin();
    tx.insert("users", json!({"_id": 1, "n": 1})).unwrap();
    tx.insert("orders", json!({"_id": 1, "user": 1})).unwrap();
    assert_eq!(tx.get("users", 1).unwrap().unwrap()["n"], 1);
    assert!(matches!(
        tx.insert("users", json!({"_id": 1})).unwrap_err(),
        Error::DuplicateId { .. }
    ));
    assert!(tx.delete("users", 1).unwrap());
    assert_eq!(tx.get("users", 1).unwrap(), None);
    assert!(!tx.replace("users", 1, json!({})).unwrap());
    tx.upsert("users", json!({"_id": 1, "n": 2})).unwrap();
    assert_eq!(
        db.collection_names(),
        Vec::<String>::new(),
        "nothing visible before commit"
    );
    tx.commit().unwrap();
    assert_eq!(
        db.collection("users").unwrap().get(1).unwrap().unwrap()["n"],
        2
    );
    assert_eq!(db.collection_names(), ["orders", "users"]);
}

#[test]
fn rollback_and_drop_discard_writes() {
    let db = db();
    let mut tx = db.begin();
    tx.insert("c", json!({"_id": 1})).unwrap();
    tx.rollback();
    {
        let mut tx = db.begin();
        tx.insert("c", json!({"_id": 2})).unwrap();
    }
    assert!(db.collection_names().is_empty());
    assert_eq!(
        db.stats().open_snapshots,
        0,
        "transactions release their snapshots"
    );
}

#[test]
fn transaction_helper_retries_conflicts() {
    let db = db();
    let c = db.collection("c").unwrap();
    c.insert(json!({"_id": 1, "n": 0})).unwrap();
    let mut runs = 0;
    let out = db
        .transaction(|tx| {
            runs += 1;
            let n = tx.get("c", 1)?.unwrap()["n"].as_i64().unwrap();
            if runs == 1 {
                // A competing commit lands after this attempt's snapshot.
                c.replace(1, json!({"n": 100})).unwrap();
            }
            tx.replace("c", 1, json!({"n": n + 1}))?;
            Ok(n + 1)
        })
        .unwrap();
    assert_eq!(runs, 2);
    assert_eq!(out, 101);
    assert_eq!(c.get(1).unwrap().unwrap()["n"], 101);
    // Non-retryable errors are returned at once.
    let err = db
        .transaction(|tx| tx.insert("c", json!({"_id": 1})))
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateId { .. }));
}

#[test]
fn closed_database_refuses_everything() {
    let db = db();
    let c = db.collection("c").unwrap();
    c.insert(json!({"_id": 1})).unwrap();
    let snap = db.snapshot();
    let mut tx = db.begin();
    db.close().unwrap();
    db.close().unwrap();
    let closed = |e: Error| {
        assert!(matches!(e, Error::Closed), "{e}");
        assert!(e.to_string().contains("closed"));
    };
    closed(c.insert(json!({})).unwrap_err());
    closed(c.get(1).unwrap_err());
    closed(c.len().unwrap_err());
    closed(snap.get("c", 1).unwrap_err());
    closed(tx.get("c", 1).unwrap_err());
    closed(db.collection("c").unwrap_err());
    closed(db.drop_collection("c").unwrap_err());
    closed(db.begin().commit().unwrap_err());
    closed(db.clone().snapshot().scan("c").unwrap_err());
    assert!(db.collection_names().is_empty());
}

#[test]
fn gc_returns_versions_to_one_per_live_document() {
    let db = db();
    let c = db.collection("c").unwrap();
    for i in 0..100 {
        c.insert(json!({"_id": i, "v": 0})).unwrap();
    }
    let old = db.snapshot();
    for round in 1..=5 {
        for i in 0..100 {
            c.replace(i, json!({"v": round})).unwrap();
        }
    }
    for i in 0..50 {
        c.delete(i).unwrap();
    }
    let s = db.stats();
    assert_eq!(s.documents, 50);
    assert_eq!(s.versions, 100 * 6 + 50);
    assert_eq!(s.open_snapshots, 1);
    db.gc();
    assert_eq!(
        old.get("c", 7).unwrap().unwrap()["v"],
        0,
        "the old snapshot keeps its values"
    );
    assert_eq!(old.len("c").unwrap(), 100);
    drop(old);
    let report = db.gc();
    let s = db.stats();
    assert_eq!(s.versions, 50, "{s:?} {report:?}");
    assert_eq!(s.reclaimable_versions, 0);
    assert_eq!(s.reclaimed_versions, 100 * 6);
    assert_eq!(s.open_snapshots, 0);
    assert_eq!(c.get(70).unwrap().unwrap()["v"], 5);
    assert_eq!(c.get(7).unwrap(), None);
}

#[test]
fn dropped_collections_are_retired_by_gc() {
    let db = db();
    let c = db.collection("c").unwrap();
    c.insert_many((0..10).map(|i| json!({"_id": i}))).unwrap();
    db.drop_collection("c").unwrap();
    assert_eq!(db.stats().versions, 10);
    let report = db.gc();
    assert_eq!(report.collections_retired, 1);
    assert_eq!(db.stats().versions, 0);
}

#[test]
fn background_gc_runs_by_itself() {
    let db = Database::builder()
        .gc(GcPolicy::Background {
            interval: std::time::Duration::from_millis(5),
        })
        .in_memory();
    let c = db.collection("c").unwrap();
    c.insert(json!({"_id": 1, "v": 0})).unwrap();
    for v in 1..100 {
        c.replace(1, json!({"v": v})).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while db.stats().versions > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "background GC never ran: {:?}",
            db.stats()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(db.stats().reclaimed_versions, 99);
    db.close().unwrap();
}

#[test]
fn serializable_is_opt_in() {
    let db = db();
    assert_eq!(db.begin().isolation(), Isolation::Snapshot);
    assert_eq!(
        db.begin_with(Isolation::Serializable).isolation(),
        Isolation::Serializable
    );
}

#[test]
fn documents_read_back_exactly() {
    let db = db();
    let c = db.collection("c").unwrap();
    let original =
        json!({"_id": "k", "z": 1, "a": [1.000_000_000_000_000_2, -0.0, 1e300], "m": {"y": null}});
    c.insert(original.clone()).unwrap();
    let back = c.get("k").unwrap().unwrap();
    assert_eq!(*back, original);
    let keys: Vec<_> = back.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["_id", "z", "a", "m"], "field order is kept");
}

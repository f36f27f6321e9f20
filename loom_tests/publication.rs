//! Commit publication through the whole engine: a multi-document, multi-collection commit is
//! seen whole or not at all, and a reader never sees a timestamp ahead of its versions.

use loom::thread;
use serde_json::json;
use snapbase::{Database, GcPolicy};

#[test]
fn multi_collection_commit_is_seen_whole_or_not_at_all() {
    loom::model(|| {
        let db = Database::builder().gc(GcPolicy::Manual).in_memory();
        let writer = {
            let db = db.clone();
            thread::spawn(move || {
                let mut tx = db.begin();
                tx.insert("a", json!({"_id": 1})).unwrap();
                tx.insert("b", json!({"_id": 1})).unwrap();
                tx.commit().unwrap();
            })
        };
        let snap = db.snapshot();
        let a = snap.get("a", 1).unwrap().is_some();
        let b = snap.get("b", 1).unwrap().is_some();
        assert_eq!(a, b, "a commit was seen half-applied");
        assert_eq!(a, snap.timestamp().get() == 1);
        writer.join().unwrap();
    });
}

#[test]
fn insert_many_is_seen_whole_or_not_at_all() {
    loom::model(|| {
        let db = Database::builder().gc(GcPolicy::Manual).in_memory();
        let c = db.collection("c").unwrap();
        c.insert(json!({"_id": 0})).unwrap();
        let writer = {
            let c = c.clone();
            thread::spawn(move || {
                c.insert_many(vec![json!({"_id": 1}), json!({"_id": 2})])
                    .unwrap();
            })
        };
        let snap = db.snapshot();
        let n = snap.scan("c").unwrap().len();
        assert!(n == 1 || n == 3, "saw {n} documents");
        assert_eq!(n == 3, snap.timestamp().get() == 2);
        writer.join().unwrap();
    });
}

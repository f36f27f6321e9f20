//! `len` without a walk (`CollectionStore::live_docs_at`): a snapshot's count agrees with its
//! scan while a commit changes the count, whichever way the two interleave.

use loom::thread;
use serde_json::json;
use snapbase::{Database, GcPolicy};

#[test]
fn len_agrees_with_scan_while_a_commit_changes_the_count() {
    loom::model(|| {
        let db = Database::builder().gc(GcPolicy::Manual).in_memory();
        let c = db.collection("c").unwrap();
        c.insert_many(vec![json!({"_id": 1}), json!({"_id": 2})])
            .unwrap();
        let writer = {
            let db = db.clone();
            thread::spawn(move || {
                // One commit that changes the count twice and leaves it where a reader that
                // summed only part of it would not: 2 -> 1 -> 2 -> 3.
                let mut tx = db.begin();
                tx.delete("c", 1).unwrap();
                tx.insert("c", json!({"_id": 3})).unwrap();
                tx.insert("c", json!({"_id": 4})).unwrap();
                tx.commit().unwrap();
            })
        };
        let snap = db.snapshot();
        let len = snap.len("c").unwrap();
        assert_eq!(len, snap.scan("c").unwrap().len());
        assert_eq!(len, if snap.timestamp().get() == 2 { 3 } else { 2 });
        writer.join().unwrap();
    });
}

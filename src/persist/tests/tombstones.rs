//! Checkpoints write a deletion only over a live entry in the runs: documents inserted and
//! deleted between two checkpoints leave nothing in the runs, and no skipped tombstone lets a
//! deleted document come back at open, whether its older entry is already a tombstone or
//! belongs to an earlier incarnation of its collection.

use std::collections::BTreeMap;

use serde_json::json;

use super::damage::runs;
use super::support::{self, State};
use crate::db::Database;
use crate::id::DocId;
use crate::options::Durability;
use crate::persist::run::{Entry, RunReader};
use crate::storage::sim_fs::SimFs;
use crate::sync::Arc;

fn open(fs: &Arc<SimFs>) -> Database {
    support::open(fs, Durability::Immediate).unwrap()
}

/// The document entries (collection, id, live) of the newest run.
fn newest_run_docs(fs: &SimFs) -> Vec<(String, DocId, bool)> {
    let path = runs(fs).into_iter().max().unwrap();
    let mut reader = RunReader::open(fs, &path).unwrap();
    let mut out = Vec::new();
    while let Some(entry) = reader.next().unwrap() {
        if let Entry::Doc {
            collection,
            id,
            body,
            ..
        } = entry
        {
            out.push((collection, id.into_doc_id(), body.is_some()));
        }
    }
    out
}

#[test]
fn inserted_then_deleted_documents_leave_no_tombstones_and_stay_deleted() {
    let fs = Arc::new(SimFs::new());
    let db = open(&fs);
    let q = db.collection("queue").unwrap();
    q.insert_many((0..10).map(|i| json!({"_id": i, "job": i})))
        .unwrap();
    let f = db.collection("f").unwrap();
    f.insert_many([json!({"_id": 1, "gen": 1}), json!({"_id": 2, "gen": 1})])
        .unwrap();
    db.checkpoint().unwrap();

    // A queue's traffic: 200 jobs in and out, and two of the first ten taken.
    for i in 100..300 {
        q.insert(json!({"_id": i, "job": i})).unwrap();
    }
    for i in 100..300 {
        assert!(q.delete(i).unwrap());
    }
    q.delete(3).unwrap();
    q.delete(4).unwrap();
    db.checkpoint().unwrap();
    let tombstone = |c: &str, id: i64| (c.to_owned(), DocId::from(id), false);
    assert_eq!(
        newest_run_docs(&fs),
        vec![tombstone("queue", 3), tombstone("queue", 4)]
    );

    // Document 3's newest entry is now a tombstone, and "f" starts a new incarnation: inserting
    // and deleting either again writes nothing, and neither older entry comes back.
    q.insert(json!({"_id": 3, "again": true})).unwrap();
    q.delete(3).unwrap();
    db.drop_collection("f").unwrap();
    let f = db.collection("f").unwrap();
    f.insert(json!({"_id": 1, "gen": 2})).unwrap();
    f.delete(1).unwrap();
    f.insert(json!({"_id": 3, "gen": 2})).unwrap();
    db.checkpoint().unwrap();
    assert_eq!(
        newest_run_docs(&fs),
        vec![("f".to_owned(), DocId::from(3), true)]
    );

    let mut expected = State::new();
    expected.insert(
        "queue".to_owned(),
        (0..10)
            .filter(|i| ![3, 4].contains(i))
            .map(|i| (DocId::from(i), json!({"_id": i, "job": i})))
            .collect(),
    );
    expected.insert(
        "f".to_owned(),
        BTreeMap::from([(DocId::from(3), json!({"_id": 3, "gen": 2}))]),
    );
    assert_eq!(support::state(&db), expected);
    let mut running = db.stats();
    db.close().unwrap();

    // Reopen, compact, reopen: the state holds, and so does the accounting a reopen computes.
    for _ in 0..2 {
        let db = open(&fs);
        assert_eq!(support::state(&db), expected);
        let stats = db.stats();
        assert_eq!(
            (stats.data_bytes, stats.live_bytes),
            (running.data_bytes, running.live_bytes)
        );
        db.compact().unwrap();
        assert_eq!(support::state(&db), expected);
        running = db.stats();
        db.close().unwrap();
    }
}

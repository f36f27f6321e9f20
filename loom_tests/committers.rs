//! Two committers on one document: exactly one wins, and the loser applies nothing.

use loom::thread;
use serde_json::json;
use snapbase::{Database, GcPolicy};

#[test]
fn two_committers_on_one_document_exactly_one_wins() {
    loom::model(|| {
        let db = Database::builder().gc(GcPolicy::Manual).in_memory();
        db.collection("c")
            .unwrap()
            .insert(json!({"_id": 1, "v": 0}))
            .unwrap();
        // Both snapshots are taken before either thread can commit.
        let txs: Vec<_> = (1..=2).map(|v| (v, db.begin())).collect();
        let handles: Vec<_> = txs
            .into_iter()
            .map(|(v, mut tx)| {
                thread::spawn(move || {
                    tx.replace("c", 1, json!({ "v": v })).unwrap();
                    tx.insert("c", json!({ "_id": 10 + v })).unwrap();
                    tx.commit().map(|()| v)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<i64> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        assert!(results
            .iter()
            .any(|r| r.as_ref().is_err_and(snapbase::Error::is_conflict)));
        let c = db.collection("c").unwrap();
        assert_eq!(c.get(1).unwrap().unwrap()["v"], winners[0]);
        let ids: Vec<_> = c.scan().unwrap().iter().map(|d| d["_id"].clone()).collect();
        let snap = db.snapshot();
        assert_eq!(
            ids,
            [json!(1), json!(10 + winners[0])],
            "exactly the winner's writes are applied (ts {}, stats {:?})",
            snap.timestamp(),
            db.stats()
        );
    });
}

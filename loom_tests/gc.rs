//! GC unlinking old versions races a reader pinned at an older snapshot: the reader still gets
//! its value and never touches freed memory. Meaningful in tier 2.

use crossbeam_epoch as epoch;
use loom::sync::Arc;
use loom::thread;
use serde_json::json;
use snapbase::__loom::{document, Limbo, Retired, VersionChain};
use snapbase::{Database, GcPolicy};

#[test]
fn prune_races_reader_at_the_watermark() {
    loom::model(|| {
        let chain = Arc::new(VersionChain::new());
        for ts in 1..=3u64 {
            chain.install(ts.into(), Some(document(json!({ "v": ts }))), &epoch::pin());
        }
        let limbo = std::sync::Arc::new(Limbo::default());
        let gc = {
            let (chain, limbo) = (chain.clone(), limbo.clone());
            thread::spawn(move || {
                let guard = epoch::pin();
                let mut retired = Retired::new();
                let freed = chain.prune(2.into(), &guard, &mut retired).freed;
                retired.defer_into(&limbo, &guard);
                freed
            })
        };
        // A reader registered at 2 (so the watermark is at most 2) reads while GC prunes.
        let guard = epoch::pin();
        let got = chain
            .read(2.into(), &guard)
            .map(|d| d["v"].as_u64().unwrap());
        drop(guard);
        assert_eq!(got, Some(2));
        assert_eq!(gc.join().unwrap(), 1);
        assert_eq!(chain.len(&epoch::pin()), 2);
        // As `Database::gc` does: push the deferred hand-over through and free what arrived.
        for _ in 0..4 {
            epoch::pin().flush();
        }
        limbo.drain();
    });
}

/// A database holding document 1 of collection "c" with `v: 0`, committed at timestamp 1.
fn one_document_db() -> Database {
    let db = Database::builder().gc(GcPolicy::Manual).in_memory();
    db.collection("c")
        .unwrap()
        .insert(json!({"_id": 1, "v": 0}))
        .unwrap();
    db
}

/// Commits `v: 1` to document 1 (timestamp 2).
fn replace_with_v1(db: &Database) {
    db.collection("c")
        .unwrap()
        .replace(1, json!({"v": 1}))
        .unwrap();
}

/// A thread that commits `v: 1` to document 1 (timestamp 2), then runs a GC pass.
fn update_then_gc(db: &Database) -> thread::JoinHandle<()> {
    let db = db.clone();
    thread::spawn(move || {
        replace_with_v1(&db);
        db.gc();
    })
}

#[test]
fn snapshot_survives_concurrent_update_and_gc() {
    loom::model(|| {
        let db = one_document_db();
        let old = db.snapshot();
        let writer = update_then_gc(&db);
        assert_eq!(old.get("c", 1).unwrap().unwrap()["v"], 0);
        writer.join().unwrap();
        assert_eq!(old.get("c", 1).unwrap().unwrap()["v"], 0);
        drop(old);
        db.gc();
        assert_eq!(db.stats().versions, 1);
    });
}

#[test]
fn snapshot_registration_races_gc() {
    loom::model(|| {
        let db = one_document_db();
        let writer = update_then_gc(&db);
        // Whatever timestamp the snapshot lands on, it reads that timestamp's value.
        let snap = db.snapshot();
        let want = snap.timestamp().get() - 1;
        assert_eq!(snap.get("c", 1).unwrap().unwrap()["v"], want);
        writer.join().unwrap();
        assert_eq!(snap.get("c", 1).unwrap().unwrap()["v"], want);
    });
}

/// A replace racing a pass: whether the commit marks the chain dirty before the pass takes the
/// collection's dirty set or after, that pass or the next reclaims the superseded version, and
/// the chain is not left marked once it is settled.
#[test]
fn a_replace_racing_a_pass_is_reclaimed_by_the_next() {
    loom::model(|| {
        let db = one_document_db();
        let writer = {
            let db = db.clone();
            thread::spawn(move || replace_with_v1(&db))
        };
        db.gc();
        writer.join().unwrap();
        db.gc();
        assert_eq!(db.stats().versions, 1);
        assert_eq!(db.gc().chains_visited, 0);
        assert_eq!(db.snapshot().get("c", 1).unwrap().unwrap()["v"], 1);
    });
}

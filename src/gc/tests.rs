//! GC passes: who frees, when a pass is wanted, what a pass visits.
#![allow(clippy::unwrap_used)]

use serde_json::json;

use std::thread;
use std::time::{Duration, Instant};

use super::Freeing;
use crate::{Collection, Database, Document, GcPolicy};

/// A database whose document 1 has been replaced once, and a handle on its old version (held
/// by the chain and by the test, until GC frees the chain's).
fn one_superseded_version() -> (Database, Collection, Document) {
    let db = Database::builder().gc(GcPolicy::Manual).in_memory();
    let c = db.collection("c").unwrap();
    c.insert(json!({"_id": 1, "v": 0})).unwrap();
    let old = c.get(1).unwrap().unwrap();
    c.replace(1, json!({"v": 1})).unwrap();
    (db, c, old)
}

#[test]
fn passes_free_the_versions_they_unlink() {
    let (db, _c, old) = one_superseded_version();
    assert_eq!(old.handles(), 2);
    assert_eq!(db.gc().versions_reclaimed, 1);
    // Usually the pass that unlinked it frees it; when other tests keep the epoch from
    // advancing in time, a later pass does.
    let mut passes = 1;
    while old.handles() > 1 {
        db.gc();
        passes += 1;
        assert!(passes < 100_000, "an unlinked version was never freed");
    }
    assert_eq!(old["v"], 0);
}

#[test]
fn background_passes_leave_the_frees_to_the_next_commits() {
    let (db, c, old) = one_superseded_version();
    let engine = db.engine();
    assert_eq!(engine.gc_pass(Freeing::Committers).versions_reclaimed, 1);
    // The pass ended without freeing it, whether or not the collector has handed it to the
    // limbo yet (other tests pin the collector too); wait for the hand-over.
    assert_eq!(old.handles(), 2);
    let mut flushes = 0;
    while engine.limbo.is_empty() {
        crossbeam_epoch::pin().flush();
        flushes += 1;
        assert!(flushes < 1_000_000, "the epoch never advanced");
    }
    assert_eq!(old.handles(), 2);
    // The next commit frees it, on the committer's thread.
    c.insert(json!({"_id": 2})).unwrap();
    assert_eq!(old.handles(), 1);
    assert!(engine.limbo.is_empty());
    assert_eq!(old["v"], 0);
}

#[test]
fn background_passes_are_wanted_only_when_something_is_reclaimable() {
    let db = Database::builder().gc(GcPolicy::Manual).in_memory();
    let engine = db.engine();
    let c = db.collection("c").unwrap();
    for i in 0..100 {
        c.insert(json!({"_id": i})).unwrap();
    }
    // The watermark moved, but every chain holds one live version: nothing to unlink. (No
    // pass has run, so nothing waits in the limbo either.)
    assert!(!engine.holds_garbage());
    assert!(!engine.gc_wanted());

    c.replace(1, json!({"v": 1})).unwrap();
    assert!(
        engine.holds_garbage(),
        "a superseded version is reclaimable"
    );
    assert!(engine.gc_wanted());
    db.gc();
    assert!(!engine.holds_garbage());

    c.delete(2).unwrap();
    assert!(
        engine.holds_garbage(),
        "a tombstone and what it hides are reclaimable"
    );
    db.gc();
    assert!(!engine.holds_garbage());

    // A snapshot keeps the old version of 3 until it is released.
    let held = db.snapshot();
    c.replace(3, json!({"v": 1})).unwrap();
    db.gc();
    assert!(engine.holds_garbage());
    assert_eq!(held.get("c", 3).unwrap().unwrap().get("v"), None);
    drop(held);
    db.gc();
    assert!(!engine.holds_garbage());

    db.collection("gone")
        .unwrap()
        .insert(json!({"_id": 1}))
        .unwrap();
    assert!(!engine.holds_garbage());
    db.drop_collection("gone").unwrap();
    assert!(
        engine.holds_garbage(),
        "a dropped collection waits for a pass"
    );
    db.gc();
    assert!(!engine.holds_garbage());
    assert_eq!(db.collection_names(), vec!["c".to_owned()]);
    assert_eq!(db.stats().versions, 99);
}

#[test]
fn after_writes_stop_the_background_thread_frees_what_committers_left() {
    let db = Database::builder()
        .gc(GcPolicy::Background {
            interval: Duration::from_millis(2),
        })
        .in_memory();
    let c = db.collection("c").unwrap();
    c.insert(json!({"_id": 1, "v": 0})).unwrap();
    let first = c.get(1).unwrap().unwrap();
    for v in 1..=2_000 {
        c.replace(1, json!({"v": v})).unwrap();
    }
    // No more commits: whatever the committers did not free, passes must.
    let started = Instant::now();
    while first.handles() > 1
        || !db.engine().limbo.is_empty()
        || db.stats().reclaimable_versions > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "old versions were never freed once writes stopped"
        );
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(first["v"], 0);
    assert_eq!(c.get(1).unwrap().unwrap()["v"], 2_000);
}

/// Reclaims everything reclaimable now, returning the last pass's report.
fn settle(db: &Database) -> crate::GcReport {
    let report = db.gc();
    assert_eq!(db.stats().reclaimable_versions, 0);
    report
}

/// A database with GC left to the test, holding documents `0..n` in collection "c".
fn with_documents(n: i64) -> (Database, Collection) {
    let db = Database::builder().gc(GcPolicy::Manual).in_memory();
    let c = db.collection("c").unwrap();
    c.insert_many((0..n).map(|i| json!({"_id": i}))).unwrap();
    (db, c)
}

#[test]
fn a_pass_visits_only_the_chains_written_since_they_settled() {
    let (db, c) = with_documents(10_000);
    // Inserts create chains with one live version each: nothing to visit.
    assert_eq!(settle(&db).chains_visited, 0);

    for i in 0..10 {
        c.replace(i, json!({"v": 1})).unwrap();
        c.replace(i, json!({"v": 2})).unwrap();
    }
    let report = settle(&db);
    assert_eq!((report.chains_visited, report.versions_reclaimed), (10, 20));
    assert_eq!(
        db.gc().chains_visited,
        0,
        "settled chains are not visited again"
    );

    // A delete leaves the document and its tombstone; the pass unlinks one and removes the
    // chain with the other.
    for i in 100..103 {
        assert!(c.delete(i).unwrap());
    }
    let report = settle(&db);
    assert_eq!((report.chains_visited, report.versions_reclaimed), (3, 6));
    assert_eq!(db.gc().chains_visited, 0);
    assert_eq!(db.stats().versions, 9_997);

    // An insert over a tombstone no pass has removed yet.
    assert!(c.delete(7).unwrap());
    c.insert(json!({"_id": 7, "back": true})).unwrap();
    let report = settle(&db);
    assert_eq!((report.chains_visited, report.versions_reclaimed), (1, 2));
    assert_eq!(c.get(7).unwrap().unwrap()["back"], true);
}

#[test]
fn chains_a_snapshot_still_needs_stay_marked_until_a_pass_can_settle_them() {
    let db = Database::builder().gc(GcPolicy::Manual).in_memory();
    let c = db.collection("c").unwrap();
    c.insert_many((0..1_000).map(|i| json!({"_id": i, "v": 0})))
        .unwrap();
    let held = db.snapshot();
    for i in 0..5 {
        c.replace(i, json!({"v": 1})).unwrap();
    }
    for _ in 0..3 {
        let report = db.gc();
        assert_eq!((report.chains_visited, report.versions_reclaimed), (5, 0));
    }
    let store = db
        .engine()
        .catalog
        .load_full()
        .current("c")
        .unwrap()
        .store
        .clone();
    assert_eq!(store.dirty.len(), 5);
    assert_eq!(held.get("c", 3).unwrap().unwrap()["v"], 0);
    drop(held);
    let report = settle(&db);
    assert_eq!((report.chains_visited, report.versions_reclaimed), (5, 5));
    assert_eq!(store.dirty.len(), 0);
    assert_eq!(db.gc().chains_visited, 0);
}

#[test]
fn a_pass_walks_every_chain_once_most_of_a_collection_is_dirty() {
    let (db, c) = with_documents(1_000);
    // Exactly a quarter dirty: still looked up one by one.
    for i in 0..250 {
        c.replace(i, json!({"v": 1})).unwrap();
    }
    assert_eq!(settle(&db).chains_visited, 250);
    // More than a quarter: a walk of the whole map, which reclaims the same.
    for i in 0..251 {
        c.replace(i, json!({"v": 2})).unwrap();
    }
    let report = settle(&db);
    assert_eq!(
        (report.chains_visited, report.versions_reclaimed),
        (1_000, 251)
    );
    assert_eq!(db.gc().chains_visited, 0);
}

/// A held snapshot keeps the version it reads and the latest, not every version between:
/// those are visible to no snapshot, open or to come, and a pass unlinks them. A background
/// pass is wanted for them although the snapshot keeps the watermark where it was.
#[test]
fn a_held_snapshot_pins_only_the_versions_it_can_see() {
    let db = Database::builder().gc(GcPolicy::Manual).in_memory();
    let engine = db.engine();
    let c = db.collection("c").unwrap();
    c.insert(json!({"_id": 1, "v": 0})).unwrap();
    let held = db.snapshot();
    assert!(!engine.gc_wanted(), "nothing superseded yet");
    for v in 1..=100 {
        c.replace(1, json!({ "v": v })).unwrap();
    }
    assert!(
        engine.gc_wanted(),
        "commits since the last pass, behind a held snapshot"
    );
    let report = db.gc();
    assert_eq!(report.watermark, held.timestamp());
    assert_eq!(report.versions_reclaimed, 99, "versions 1 to 99");
    assert_eq!(db.stats().versions, 2);
    assert!(!engine.gc_wanted(), "nothing committed since that pass");
    assert_eq!(held.get("c", 1).unwrap().unwrap()["v"], 0);
    assert_eq!(c.get(1).unwrap().unwrap()["v"], 100);
    // A second snapshot between two more replaces keeps its own version too.
    c.replace(1, json!({"v": 101})).unwrap();
    let middle = db.snapshot();
    c.replace(1, json!({"v": 102})).unwrap();
    c.replace(1, json!({"v": 103})).unwrap();
    assert_eq!(db.gc().versions_reclaimed, 2, "versions 100 and 102");
    assert_eq!(middle.get("c", 1).unwrap().unwrap()["v"], 101);
    assert_eq!(held.get("c", 1).unwrap().unwrap()["v"], 0);
    assert_eq!(db.stats().versions, 3);
}

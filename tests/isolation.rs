//! Isolation anomalies: every row of the Hermitage-style table in
//! `/work/shared/guides/RELIABILITY.md` ("Hermitage-style table for our snapshot isolation
//! (expected results)"), as deterministic single-threaded interleavings of explicit transaction
//! handles, each run under both `Isolation::Snapshot` and `Isolation::Serializable`.
//!
//! Notation follows the table: `w1(1,11)` = T1 writes doc 1 with value 11, `r2(1)` = T2 reads
//! doc 1, `c1` = T1 commits. Every transaction begins (takes its snapshot) before the first step
//! unless the row says otherwise. Writes are buffered and conflicts are detected at commit
//! (first committer wins). A predicate read is a `scan` filtered here; a predicate write is a
//! scan followed by a `replace`/`delete` of each match.
//!
//! Test names are `rowNN_<anomaly>::{snapshot,serializable}`, so a failure names the row and the
//! level.
// The real engine only: under loom the library builds just what the models need.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use common::TestDb;
use serde_json::json;
use snapbase::{ConflictKind, Database, Document, Error, GcPolicy, Isolation, Transaction};

/// Two `#[test]`s per row function: `row::snapshot` and `row::serializable`.
macro_rules! both_levels {
    ($($row:ident),* $(,)?) => {
        $(
            mod $row {
                #[test]
                fn snapshot() {
                    super::$row(snapbase::Isolation::Snapshot);
                }

                #[test]
                fn serializable() {
                    super::$row(snapbase::Isolation::Serializable);
                }
            }
        )*
    };
}

both_levels!(
    row01_g0_write_cycle,
    row02_g1a_aborted_read,
    row03_g1b_intermediate_read,
    row04_g1c_circular_flow,
    row05_otv_observed_transaction_vanishes,
    row06_pmp_read_predicate,
    row07_pmp_write_predicate,
    row08_p4_lost_update,
    row09_g_single_read_skew,
    row10_g_single_predicate,
    row11_g_single_write_predicate,
    row12_g2_item_write_skew,
    row13_g2_predicate,
    row14_g2_read_only_fekete,
    row15_blind_write_write,
    row16_disjoint_writes,
    row17_concurrent_create_same_id,
    row18_delete_vs_update,
    row19_read_own_writes,
    row20_read_only_never_aborts,
    row21_snapshot_survives_gc,
    conflicting_commit_applies_nothing,
);

/// Row 22: T1 writes `1 := 11` and the process stops before T1 commits; after reopening, T1 left
/// no trace and a committed T2 that followed it is intact. Always on disk, whatever
/// `SNAPBASE_TEST_ON_DISK` says (real process kills are in `tests/kill.rs`).
#[test]
fn row22_crash_mid_transaction_leaves_no_trace() {
    for iso in [Isolation::Snapshot, Isolation::Serializable] {
        let dir = common::ScratchDir::new("row22");
        {
            let db = Database::open(&dir.0).unwrap();
            db.collection("test")
                .unwrap()
                .insert_many([
                    json!({"_id": 1, "value": 10}),
                    json!({"_id": 2, "value": 20}),
                ])
                .unwrap();
            let mut t1 = db.begin_with(iso);
            w(&mut t1, 1, 11);
            let mut t2 = db.begin_with(iso);
            w(&mut t2, 2, 21);
            ok(t2.commit(), "c2");
            // The process stops: T1 never commits.
            db.close().unwrap();
            drop(t1);
        }
        let db = Database::open(&dir.0).unwrap();
        assert_eq!(state(&db), vec![(1, 10), (2, 21)], "{iso:?}");
        db.close().unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The setup of every row: collection `test` with `{1: 10, 2: 20}`.
fn setup() -> TestDb {
    let db = common::build(Database::builder().gc(GcPolicy::Manual));
    db.collection("test")
        .unwrap()
        .insert_many([
            json!({"_id": 1, "value": 10}),
            json!({"_id": 2, "value": 20}),
        ])
        .unwrap();
    db
}

/// `(id, value)` of each document, in the order given.
fn pairs(docs: &[Document]) -> Vec<(i64, i64)> {
    docs.iter()
        .map(|d| (d["_id"].as_i64().unwrap(), d["value"].as_i64().unwrap()))
        .collect()
}

/// The committed contents of `test` at a fresh snapshot.
fn state(db: &Database) -> Vec<(i64, i64)> {
    pairs(&db.collection("test").unwrap().scan().unwrap())
}

/// `r(id)`: the value of doc `id` as `tx` sees it, `None` if absent.
fn r(tx: &mut Transaction, id: i64) -> Option<i64> {
    tx.get("test", id)
        .unwrap()
        .map(|d| d["value"].as_i64().unwrap())
}

/// `r(all)`: every document of `test` as `tx` sees it.
fn r_all(tx: &mut Transaction) -> Vec<(i64, i64)> {
    pairs(&tx.scan("test").unwrap())
}

/// A predicate read: the documents of `test` whose value satisfies `pred`.
fn r_where(tx: &mut Transaction, pred: impl Fn(i64) -> bool) -> Vec<(i64, i64)> {
    r_all(tx).into_iter().filter(|&(_, v)| pred(v)).collect()
}

/// `w(id, value)`: replaces doc `id`, which `tx` must see.
fn w(tx: &mut Transaction, id: i64, value: i64) {
    assert!(
        tx.replace("test", id, json!({"value": value})).unwrap(),
        "w({id},{value}): the transaction must see doc {id}"
    );
}

/// `insert(id, value)`.
fn ins(tx: &mut Transaction, id: i64, value: i64) {
    tx.insert("test", json!({"_id": id, "value": value}))
        .unwrap();
}

/// `delete(id)`: doc `id` must be visible to `tx`.
fn del(tx: &mut Transaction, id: i64) {
    assert!(
        tx.delete("test", id).unwrap(),
        "delete({id}): the transaction must see doc {id}"
    );
}

/// Asserts that a commit succeeded.
#[track_caller]
fn ok(res: Result<(), Error>, step: &str) {
    if let Err(e) = res {
        panic!("{step}: expected the commit to succeed, got: {e}");
    }
}

/// Asserts that a commit failed with a conflict of the given kind.
#[track_caller]
fn conflict(res: Result<(), Error>, kind: ConflictKind, step: &str) {
    match res {
        Err(e @ Error::WriteConflict(_)) => {
            assert!(e.is_conflict() && e.is_retryable(), "{step}: {e}");
            let Error::WriteConflict(c) = e else {
                unreachable!()
            };
            assert_eq!(c.kind, kind, "{step}: wrong kind of conflict: {c}");
        }
        Err(e) => panic!("{step}: expected a conflict ({kind:?}), got another error: {e}"),
        Ok(()) => panic!("{step}: expected a conflict ({kind:?}), but the commit succeeded"),
    }
}

fn is_serializable(iso: Isolation) -> bool {
    iso == Isolation::Serializable
}

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

/// Row 1: G0 write cycle: w1(1,11) w2(1,12) w1(2,21) c1 w2(2,22) c2.
/// c1 ok; c2 CONFLICT; final {1:11, 2:21}.
fn row01_g0_write_cycle(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    let mut t2 = db.begin_with(iso);
    w(&mut t1, 1, 11);
    w(&mut t2, 1, 12);
    w(&mut t1, 2, 21);
    ok(t1.commit(), "c1");
    w(&mut t2, 2, 22);
    conflict(t2.commit(), ConflictKind::WriteWrite, "c2");
    assert_eq!(state(&db), [(1, 11), (2, 21)]);
}

/// Row 2: G1a aborted read: w1(1,101) r2(1) abort1 r2(1) c2.
/// Both reads → 10; c2 ok; final {1:10}.
fn row02_g1a_aborted_read(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    let mut t2 = db.begin_with(iso);
    w(&mut t1, 1, 101);
    assert_eq!(r(&mut t2, 1), Some(10), "r2(1) before abort1");
    t1.rollback();
    assert_eq!(r(&mut t2, 1), Some(10), "r2(1) after abort1");
    ok(t2.commit(), "c2");
    assert_eq!(state(&db), [(1, 10), (2, 20)]);
}

/// Row 3: G1b intermediate read: w1(1,101) r2(1) w1(1,11) c1 r2(1) c2.
/// Both reads → 10 (never 101); final {1:11}.
fn row03_g1b_intermediate_read(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    let mut t2 = db.begin_with(iso);
    w(&mut t1, 1, 101);
    assert_eq!(r(&mut t2, 1), Some(10), "r2(1) while T1 holds 101");
    w(&mut t1, 1, 11);
    ok(t1.commit(), "c1");
    assert_eq!(r(&mut t2, 1), Some(10), "r2(1) after c1");
    ok(t2.commit(), "c2 (read-only)");
    assert_eq!(state(&db), [(1, 11), (2, 20)]);
}

/// Row 4: G1c circular flow: w1(1,11) w2(2,22) r1(2) r2(1) c1 c2.
/// r1(2) → 20, r2(1) → 10; under snapshot isolation both commit, final {1:11, 2:22}.
///
/// Serializable deviates from the table's "same": with these reads the history is an
/// rw-antidependency cycle (T1 read 2 before T2's write, T2 read 1 before T1's write), i.e.
/// write skew, which no serial order explains (T1;T2 would have r2(1) → 11, T2;T1 would have
/// r1(2) → 22). Serializable mode must therefore refuse c2: T2 read doc 1, which T1 changed
/// after T2's snapshot. Final {1:11, 2:20}.
fn row04_g1c_circular_flow(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    let mut t2 = db.begin_with(iso);
    w(&mut t1, 1, 11);
    w(&mut t2, 2, 22);
    assert_eq!(r(&mut t1, 2), Some(20), "r1(2)");
    assert_eq!(r(&mut t2, 1), Some(10), "r2(1)");
    ok(t1.commit(), "c1");
    if is_serializable(iso) {
        conflict(t2.commit(), ConflictKind::ReadWrite, "c2");
        assert_eq!(state(&db), [(1, 11), (2, 20)]);
    } else {
        ok(t2.commit(), "c2");
        assert_eq!(state(&db), [(1, 11), (2, 22)]);
    }
}

/// Row 5: OTV observed transaction vanishes:
/// w1(1,11) w1(2,19) w2(1,12) c1 r3(1) w2(2,18) r3(2) c2 r3(2) r3(1) c3.
/// T3 reads 10, 20, 20, 10 (its snapshot); c2 CONFLICT; c3 ok; final {1:11, 2:19}.
/// Variant: T3 begins after c1 → reads 11 and 19 every time.
fn row05_otv_observed_transaction_vanishes(iso: Isolation) {
    for t3_begins_after_c1 in [false, true] {
        let (v1, v2) = if t3_begins_after_c1 {
            (11, 19)
        } else {
            (10, 20)
        };
        let variant = if t3_begins_after_c1 {
            "T3 begins after c1"
        } else {
            "T3 begins first"
        };
        let db = setup();
        let mut t1 = db.begin_with(iso);
        let mut t2 = db.begin_with(iso);
        let mut early_t3 = (!t3_begins_after_c1).then(|| db.begin_with(iso));
        w(&mut t1, 1, 11);
        w(&mut t1, 2, 19);
        w(&mut t2, 1, 12);
        ok(t1.commit(), "c1");
        let mut t3 = early_t3.take().unwrap_or_else(|| db.begin_with(iso));
        assert_eq!(r(&mut t3, 1), Some(v1), "{variant}: first r3(1)");
        w(&mut t2, 2, 18);
        assert_eq!(r(&mut t3, 2), Some(v2), "{variant}: first r3(2)");
        conflict(t2.commit(), ConflictKind::WriteWrite, "c2");
        assert_eq!(r(&mut t3, 2), Some(v2), "{variant}: r3(2) after c2");
        assert_eq!(r(&mut t3, 1), Some(v1), "{variant}: r3(1) after c2");
        ok(t3.commit(), "c3 (read-only)");
        assert_eq!(state(&db), [(1, 11), (2, 19)], "{variant}");
    }
}

/// Row 6: PMP (read predicate): r1(value=30) → ∅, insert2(3,30) c2, r1(value%3=0) c1.
/// Second read → ∅; both commit.
fn row06_pmp_read_predicate(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    let mut t2 = db.begin_with(iso);
    assert_eq!(r_where(&mut t1, |v| v == 30), [], "r1(value=30)");
    ins(&mut t2, 3, 30);
    ok(t2.commit(), "c2");
    assert_eq!(r_where(&mut t1, |v| v % 3 == 0), [], "r1(value%3=0)");
    ok(t1.commit(), "c1 (read-only)");
    assert_eq!(state(&db), [(1, 10), (2, 20), (3, 30)]);
}

/// Row 7: PMP (write predicate): update1(all +10) delete2(where value=20) c1 c2.
/// T2's snapshot sees doc 2 = 20 and deletes it; c1 ok; c2 CONFLICT; final {1:20, 2:30}.
fn row07_pmp_write_predicate(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    let mut t2 = db.begin_with(iso);
    for (id, v) in r_all(&mut t1) {
        w(&mut t1, id, v + 10);
    }
    let matches = r_where(&mut t2, |v| v == 20);
    assert_eq!(matches, [(2, 20)], "T2's predicate sees doc 2 = 20");
    for (id, _) in matches {
        del(&mut t2, id);
    }
    ok(t1.commit(), "c1");
    conflict(t2.commit(), ConflictKind::WriteWrite, "c2");
    assert_eq!(state(&db), [(1, 20), (2, 30)]);
}

/// Row 8: P4 lost update: r1(1) r2(1) w1(1,11) w2(1,11) c1 c2.
/// Reads → 10; c1 ok; c2 CONFLICT; final {1:11}.
fn row08_p4_lost_update(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    let mut t2 = db.begin_with(iso);
    assert_eq!(r(&mut t1, 1), Some(10), "r1(1)");
    assert_eq!(r(&mut t2, 1), Some(10), "r2(1)");
    w(&mut t1, 1, 11);
    w(&mut t2, 1, 11);
    ok(t1.commit(), "c1");
    conflict(t2.commit(), ConflictKind::WriteWrite, "c2");
    assert_eq!(state(&db), [(1, 11), (2, 20)]);
}

/// Row 9: G-single read skew: r1(1) r2(1) r2(2) w2(1,12) w2(2,18) c2 r1(2) c1.
/// r1(1) → 10, r1(2) → 20 (not 18); both commit.
fn row09_g_single_read_skew(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    let mut t2 = db.begin_with(iso);
    assert_eq!(r(&mut t1, 1), Some(10), "r1(1)");
    assert_eq!(r(&mut t2, 1), Some(10), "r2(1)");
    assert_eq!(r(&mut t2, 2), Some(20), "r2(2)");
    w(&mut t2, 1, 12);
    w(&mut t2, 2, 18);
    ok(t2.commit(), "c2");
    assert_eq!(r(&mut t1, 2), Some(20), "r1(2) must not see T2's 18");
    ok(t1.commit(), "c1 (read-only)");
    assert_eq!(state(&db), [(1, 12), (2, 18)]);
}

/// Row 10: G-single (predicate):
/// r1(value%5=0) update2(value=12 where value=10) c2 r1(value%3=0) c1.
/// First → {1:10, 2:20}; second → ∅; both commit.
fn row10_g_single_predicate(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    let mut t2 = db.begin_with(iso);
    assert_eq!(
        r_where(&mut t1, |v| v % 5 == 0),
        [(1, 10), (2, 20)],
        "r1(value%5=0)"
    );
    let matches = r_where(&mut t2, |v| v == 10);
    assert_eq!(matches, [(1, 10)]);
    for (id, _) in matches {
        w(&mut t2, id, 12);
    }
    ok(t2.commit(), "c2");
    assert_eq!(
        r_where(&mut t1, |v| v % 3 == 0),
        [],
        "r1(value%3=0) must not see T2's 12"
    );
    ok(t1.commit(), "c1 (read-only)");
    assert_eq!(state(&db), [(1, 12), (2, 20)]);
}

/// Row 11: G-single (write predicate):
/// r1(1) r2(all) w2(1,12) w2(2,18) c2 delete1(where value=20) c1.
/// T1 deletes doc 2 (20 in its snapshot); c1 CONFLICT; final {1:12, 2:18}.
fn row11_g_single_write_predicate(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    let mut t2 = db.begin_with(iso);
    assert_eq!(r(&mut t1, 1), Some(10), "r1(1)");
    assert_eq!(r_all(&mut t2), [(1, 10), (2, 20)], "r2(all)");
    w(&mut t2, 1, 12);
    w(&mut t2, 2, 18);
    ok(t2.commit(), "c2");
    let matches = r_where(&mut t1, |v| v == 20);
    assert_eq!(matches, [(2, 20)], "T1's predicate sees doc 2 = 20");
    for (id, _) in matches {
        del(&mut t1, id);
    }
    conflict(t1.commit(), ConflictKind::WriteWrite, "c1");
    assert_eq!(state(&db), [(1, 12), (2, 18)]);
}

/// Row 12: G2-item write skew: r1(1,2) r2(1,2) w1(1,11) w2(2,21) c1 c2.
/// Snapshot: both commit (allowed by SI), final {1:11, 2:21}.
/// Serializable: c2 aborts (it read doc 1, which T1 changed), final {1:11, 2:20}.
fn row12_g2_item_write_skew(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    let mut t2 = db.begin_with(iso);
    assert_eq!(r(&mut t1, 1), Some(10), "r1(1)");
    assert_eq!(r(&mut t1, 2), Some(20), "r1(2)");
    assert_eq!(r(&mut t2, 1), Some(10), "r2(1)");
    assert_eq!(r(&mut t2, 2), Some(20), "r2(2)");
    w(&mut t1, 1, 11);
    w(&mut t2, 2, 21);
    ok(t1.commit(), "c1");
    if is_serializable(iso) {
        conflict(t2.commit(), ConflictKind::ReadWrite, "c2");
        assert_eq!(state(&db), [(1, 11), (2, 20)]);
    } else {
        ok(t2.commit(), "c2 (write skew is allowed by SI)");
        assert_eq!(state(&db), [(1, 11), (2, 21)]);
    }
}

/// Row 13: G2 predicate:
/// r1(value%3=0) → ∅, r2(value%3=0) → ∅, insert1(3,30) insert2(4,42) c1 c2.
/// Snapshot: both commit (allowed); the predicate then → {3:30, 4:42}.
/// Serializable: c2 aborts (the collection it scanned changed); the predicate → {3:30}.
fn row13_g2_predicate(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    let mut t2 = db.begin_with(iso);
    assert_eq!(r_where(&mut t1, |v| v % 3 == 0), [], "r1(value%3=0)");
    assert_eq!(r_where(&mut t2, |v| v % 3 == 0), [], "r2(value%3=0)");
    ins(&mut t1, 3, 30);
    ins(&mut t2, 4, 42);
    ok(t1.commit(), "c1");
    if is_serializable(iso) {
        conflict(t2.commit(), ConflictKind::ScanChanged, "c2");
        let mut after = db.begin_with(iso);
        assert_eq!(r_where(&mut after, |v| v % 3 == 0), [(3, 30)]);
        assert_eq!(state(&db), [(1, 10), (2, 20), (3, 30)]);
    } else {
        ok(t2.commit(), "c2 (G2 is allowed by SI)");
        let mut after = db.begin_with(iso);
        assert_eq!(r_where(&mut after, |v| v % 3 == 0), [(3, 30), (4, 42)]);
        assert_eq!(state(&db), [(1, 10), (2, 20), (3, 30), (4, 42)]);
    }
}

/// Row 14: G2 read-only anomaly (Fekete et al.): b1 r1(all); b2 w2(2,25) c2; b3 r3(all) c3;
/// w1(1,0) c1. Here T2 and T3 begin where the row places `b2` and `b3`.
/// r1 → {10, 20}; r3 → {10, 25}; c2 and c3 ok.
/// Snapshot: c1 ok too (allowed), final {1:0, 2:25}.
/// Serializable: c1 aborts (the collection it scanned changed), final {1:10, 2:25}.
fn row14_g2_read_only_fekete(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    assert_eq!(r_all(&mut t1), [(1, 10), (2, 20)], "r1(all)");
    let mut t2 = db.begin_with(iso);
    w(&mut t2, 2, 25);
    ok(t2.commit(), "c2");
    let mut t3 = db.begin_with(iso);
    assert_eq!(r_all(&mut t3), [(1, 10), (2, 25)], "r3(all)");
    ok(t3.commit(), "c3 (read-only)");
    w(&mut t1, 1, 0);
    if is_serializable(iso) {
        conflict(t1.commit(), ConflictKind::ScanChanged, "c1");
        assert_eq!(state(&db), [(1, 10), (2, 25)]);
    } else {
        ok(t1.commit(), "c1 (allowed by SI)");
        assert_eq!(state(&db), [(1, 0), (2, 25)]);
    }
}

/// Row 15: Blind write-write: w1(1,11) w2(1,12) c1 c2, with no reads (upserts, which do not look at
/// the existing document). c2 CONFLICT; final {1:11}.
fn row15_blind_write_write(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    let mut t2 = db.begin_with(iso);
    t1.upsert("test", json!({"_id": 1, "value": 11})).unwrap();
    t2.upsert("test", json!({"_id": 1, "value": 12})).unwrap();
    ok(t1.commit(), "c1");
    conflict(t2.commit(), ConflictKind::WriteWrite, "c2");
    assert_eq!(state(&db), [(1, 11), (2, 20)]);
}

/// Row 16: Disjoint writes: w1(1,11) w2(2,22) c1 c2. Both commit (no false conflict), with checked
/// writes (`replace`, which in serializable mode also records a read of the document) and with
/// blind ones (`upsert`).
fn row16_disjoint_writes(iso: Isolation) {
    for blind in [false, true] {
        let db = setup();
        let mut t1 = db.begin_with(iso);
        let mut t2 = db.begin_with(iso);
        if blind {
            t1.upsert("test", json!({"_id": 1, "value": 11})).unwrap();
            t2.upsert("test", json!({"_id": 2, "value": 22})).unwrap();
        } else {
            w(&mut t1, 1, 11);
            w(&mut t2, 2, 22);
        }
        ok(t1.commit(), "c1");
        ok(t2.commit(), "c2");
        assert_eq!(state(&db), [(1, 11), (2, 22)], "blind={blind}");
    }
}

/// Row 17: Concurrent create, same id: insert1(3,a) insert2(3,b) c1 c2.
/// c2 CONFLICT; final doc 3 = a.
fn row17_concurrent_create_same_id(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    let mut t2 = db.begin_with(iso);
    t1.insert("test", json!({"_id": 3, "value": "a"})).unwrap();
    t2.insert("test", json!({"_id": 3, "value": "b"})).unwrap();
    ok(t1.commit(), "c1");
    conflict(t2.commit(), ConflictKind::WriteWrite, "c2");
    let test = db.collection("test").unwrap();
    assert_eq!(test.get(3).unwrap().unwrap()["value"], "a");
    assert_eq!(test.len().unwrap(), 3);
}

/// Row 18: Delete vs update: delete1(1) w2(1,15) c1 c2. c2 CONFLICT; doc 1 absent.
fn row18_delete_vs_update(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    let mut t2 = db.begin_with(iso);
    del(&mut t1, 1);
    w(&mut t2, 1, 15);
    ok(t1.commit(), "c1");
    conflict(t2.commit(), ConflictKind::WriteWrite, "c2");
    assert_eq!(db.collection("test").unwrap().get(1).unwrap(), None);
    assert_eq!(state(&db), [(2, 20)]);
}

/// Row 19: Read own writes: w1(1,11) r1(1) delete1(2) r1(2) scan1 c1.
/// r1(1) → 11; r1(2) → ∅; scan shows {1:11}; others see nothing before c1.
fn row19_read_own_writes(iso: Isolation) {
    let db = setup();
    let mut t1 = db.begin_with(iso);
    w(&mut t1, 1, 11);
    assert_eq!(r(&mut t1, 1), Some(11), "r1(1) sees its own write");
    del(&mut t1, 2);
    assert_eq!(r(&mut t1, 2), None, "r1(2) sees its own delete");
    assert_eq!(r_all(&mut t1), [(1, 11)], "scan1");
    let mut other = db.begin_with(iso);
    assert_eq!(
        r_all(&mut other),
        [(1, 10), (2, 20)],
        "uncommitted writes are private"
    );
    assert_eq!(state(&db), [(1, 10), (2, 20)]);
    ok(t1.commit(), "c1");
    assert_eq!(
        r_all(&mut other),
        [(1, 10), (2, 20)],
        "an older snapshot is unchanged"
    );
    ok(other.commit(), "read-only commit");
    assert_eq!(state(&db), [(1, 11)]);
}

/// Row 20: Read-only never aborts: r1(1) r1(2) while 1,000 commits update docs 1 and 2; then c1.
/// Every read comes from T1's one snapshot; c1 ok.
fn row20_read_only_never_aborts(iso: Isolation) {
    let db = setup();
    let test = db.collection("test").unwrap();
    let mut t1 = db.begin_with(iso);
    let start = t1.snapshot().timestamp();
    for i in 1..=1000_i64 {
        // Alternate auto-commit replaces and transactions that update both documents.
        if i % 2 == 0 {
            let id = if i % 4 == 0 { 1 } else { 2 };
            assert!(test.replace(id, json!({"value": 1000 + i})).unwrap());
        } else {
            let mut tx = db.begin_with(iso);
            w(&mut tx, 1, 1000 + i);
            w(&mut tx, 2, 2000 + i);
            ok(tx.commit(), "writer commit");
        }
        assert_eq!(r(&mut t1, 1), Some(10), "r1(1) after commit {i}");
        assert_eq!(r(&mut t1, 2), Some(20), "r1(2) after commit {i}");
        if i % 100 == 0 {
            assert_eq!(
                r_all(&mut t1),
                [(1, 10), (2, 20)],
                "r1(all) after commit {i}"
            );
        }
    }
    assert_eq!(t1.snapshot().timestamp(), start);
    assert_eq!(db.stats().last_commit_ts.get(), start.get() + 1000);
    ok(t1.commit(), "c1 (read-only)");
    // Last commits: 999 (transaction: {1: 1999, 2: 2999}), 1000 (auto-commit: {1: 2000}).
    assert_eq!(state(&db), [(1, 2000), (2, 2999)]);
}

/// Row 21: Snapshot survives GC:
/// r1(1) → 10; 10,000 commits to doc 1; force GC; r1(1) → 10; c1 ok.
/// Then, with the reader gone, another GC pass shrinks the version count.
///
/// Compaction (of on-disk data) is a later issue; the row's "+ compaction" part is added with it.
fn row21_snapshot_survives_gc(iso: Isolation) {
    let db = setup();
    let test = db.collection("test").unwrap();
    let mut t1 = db.begin_with(iso);
    assert_eq!(r(&mut t1, 1), Some(10), "r1(1) before the commits");
    for i in 1..=10_000_i64 {
        assert!(test.replace(1, json!({"value": 10 + i})).unwrap());
    }
    db.gc();
    assert_eq!(r(&mut t1, 1), Some(10), "r1(1) after 10,000 commits and GC");
    assert_eq!(r_all(&mut t1), [(1, 10), (2, 20)], "r1(all) after GC");
    let held = db.stats();
    assert!(
        held.versions >= 3,
        "the reader's version and the newest must both be kept: {held:?}"
    );
    ok(t1.commit(), "c1 (read-only)");
    assert_eq!(db.stats().open_snapshots, 0);
    let report = db.gc();
    let after = db.stats();
    assert!(
        after.versions < held.versions,
        "GC must shrink versions once the reader is gone: {held:?} -> {after:?} ({report:?})"
    );
    assert_eq!(
        after.versions, 2,
        "one version per live document: {after:?}"
    );
    assert_eq!(after.reclaimable_versions, 0);
    assert_eq!(state(&db), [(1, 10_010), (2, 20)]);
}

/// Extra: a conflicting commit applies NOTHING of a multi-document, multi-collection write set.
/// T1 creates collection `alpha` (doc 1), replaces `test`:1, deletes `test`:2, inserts `test`:3
/// and replaces `zeta`:1. T2 commits first a write that conflicts with exactly one of those, in
/// the first, middle or last collection of T1's write set. T1's commit is refused and no trace of
/// it is visible, not even after a later commit (which reuses the timestamp T1 did not take).
fn conflicting_commit_applies_nothing(iso: Isolation) {
    for conflict_in in ["alpha", "test", "zeta"] {
        let db = setup();
        db.collection("zeta")
            .unwrap()
            .insert(json!({"_id": 1, "value": 100}))
            .unwrap();
        let mut t1 = db.begin_with(iso);
        let mut t2 = db.begin_with(iso);
        t1.insert("alpha", json!({"_id": 1, "value": 1})).unwrap();
        w(&mut t1, 1, 11);
        del(&mut t1, 2);
        ins(&mut t1, 3, 30);
        assert!(t1.replace("zeta", 1, json!({"value": 101})).unwrap());
        match conflict_in {
            // T2 creates `alpha` too, with the same document id.
            "alpha" => {
                t2.insert("alpha", json!({"_id": 1, "value": -1})).unwrap();
            }
            "test" => w(&mut t2, 2, -20),
            _ => assert!(t2.replace("zeta", 1, json!({"value": -100})).unwrap()),
        }
        ok(t2.commit(), "c2");
        let before = db.stats();
        conflict(t1.commit(), ConflictKind::WriteWrite, conflict_in);
        let after = db.stats();
        assert_eq!(after.last_commit_ts, before.last_commit_ts, "{conflict_in}");
        assert_eq!(after.versions, before.versions, "{conflict_in}");
        assert_eq!(after.documents, before.documents, "{conflict_in}");

        // A later commit must not expose anything left behind at the reused timestamp.
        db.collection("later")
            .unwrap()
            .insert(json!({"_id": 1}))
            .unwrap();
        let expected_names: &[&str] = if conflict_in == "alpha" {
            &["alpha", "later", "test", "zeta"]
        } else {
            &["later", "test", "zeta"]
        };
        assert_eq!(db.collection_names(), expected_names, "{conflict_in}");
        let alpha = pairs(&db.collection("alpha").unwrap().scan().unwrap());
        let test = state(&db);
        let zeta = pairs(&db.collection("zeta").unwrap().scan().unwrap());
        match conflict_in {
            "alpha" => {
                assert_eq!(alpha, [(1, -1)]);
                assert_eq!(test, [(1, 10), (2, 20)]);
                assert_eq!(zeta, [(1, 100)]);
            }
            "test" => {
                assert_eq!(alpha, []);
                assert_eq!(test, [(1, 10), (2, -20)]);
                assert_eq!(zeta, [(1, 100)]);
            }
            _ => {
                assert_eq!(alpha, []);
                assert_eq!(test, [(1, 10), (2, 20)]);
                assert_eq!(zeta, [(1, -100)]);
            }
        }
    }
}

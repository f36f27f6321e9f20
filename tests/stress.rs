//! Concurrency stress, bounded in time and work: invariants that must hold under real threads.
//! Longer runs: `SNAPBASE_STRESS_SECS=600 cargo test --release --test stress -- --ignored`.
// The real engine only: under loom the library builds just what the models need.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use common::TestDb;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use snapbase::{Database, GcPolicy, Isolation};

const ACCOUNTS: i64 = 50;
const INITIAL: i64 = 1_000;

fn bank(gc: GcPolicy) -> TestDb {
    let db = common::build(Database::builder().gc(gc));
    db.collection("accounts")
        .unwrap()
        .insert_many((0..ACCOUNTS).map(|i| json!({"_id": i, "balance": INITIAL})))
        .unwrap();
    db
}

fn balance(doc: &snapbase::Document) -> i64 {
    doc["balance"].as_i64().unwrap()
}

/// Cheap deterministic per-thread random numbers (xorshift).
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

/// Lets the threads run for `duration`, and on past it until `enough` says they have done enough
/// work to prove something (a loaded machine may starve some of them), for at most a minute; the
/// caller's assertions then report what fell short.
fn run_for(duration: Duration, enough: impl Fn() -> bool) {
    let start = Instant::now();
    while start.elapsed() < duration || (!enough() && start.elapsed() < Duration::from_secs(60)) {
        thread::sleep(Duration::from_millis(10));
    }
}

/// Transfers between random accounts from several writer threads through `db.transaction`,
/// while reader threads check in every snapshot that money is neither created nor destroyed,
/// and a background GC reclaims constantly.
fn bank_transfers(duration: Duration, isolation: Isolation) {
    let db = bank(GcPolicy::Background {
        interval: Duration::from_millis(1),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let gave_up = Arc::new(AtomicU64::new(0));
    let checks = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for w in 0..3u64 {
        let (db, stop, committed, gave_up) =
            (db.clone(), stop.clone(), committed.clone(), gave_up.clone());
        handles.push(thread::spawn(move || {
            let mut next = rng(w + 1);
            while !stop.load(Ordering::Relaxed) {
                let from = i64::try_from(next() % ACCOUNTS as u64).unwrap();
                let to = i64::try_from(next() % ACCOUNTS as u64).unwrap();
                let amount = i64::try_from(next() % 50).unwrap();
                if from == to {
                    continue;
                }
                let outcome = db.transaction_with(isolation, |tx| {
                    let a = balance(&tx.get("accounts", from)?.unwrap());
                    let b = balance(&tx.get("accounts", to)?.unwrap());
                    tx.replace("accounts", from, json!({"balance": a - amount}))?;
                    tx.replace("accounts", to, json!({"balance": b + amount}))?;
                    Ok(())
                });
                match outcome {
                    Ok(()) => committed.fetch_add(1, Ordering::Relaxed),
                    // `transaction_with` gives up after a bounded number of conflicts. With three
                    // writers on 50 accounts and more busy threads than cores, a writer preempted
                    // inside its transaction can lose every attempt (a soak of minutes saw it).
                    // Such a transfer must commit nothing, which the timestamp count at the end
                    // checks, and it must stay rare.
                    Err(e) if e.is_conflict() => gave_up.fetch_add(1, Ordering::Relaxed),
                    Err(e) => panic!("a transfer failed with something other than a conflict: {e}"),
                };
            }
        }));
    }
    for _ in 0..2 {
        let (db, stop, checks) = (db.clone(), stop.clone(), checks.clone());
        handles.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let snap = db.snapshot();
                let docs = snap.scan("accounts").unwrap();
                assert_eq!(docs.len(), usize::try_from(ACCOUNTS).unwrap());
                let total: i64 = docs.iter().map(balance).sum();
                assert_eq!(
                    total,
                    ACCOUNTS * INITIAL,
                    "snapshot {} saw money move",
                    snap.timestamp()
                );
                // Point reads at the same snapshot agree with its scan.
                let first = snap.get("accounts", 0).unwrap().unwrap();
                assert_eq!(first, docs[0]);
                checks.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    run_for(duration, || {
        committed.load(Ordering::Relaxed) > 100 && checks.load(Ordering::Relaxed) > 10
    });
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let total: i64 = db
        .collection("accounts")
        .unwrap()
        .scan()
        .unwrap()
        .iter()
        .map(balance)
        .sum();
    assert_eq!(total, ACCOUNTS * INITIAL);
    assert!(
        committed.load(Ordering::Relaxed) > 100,
        "too little work to prove anything"
    );
    assert!(checks.load(Ordering::Relaxed) > 10, "readers barely ran");
    let (committed, gave_up) = (
        committed.load(Ordering::Relaxed),
        gave_up.load(Ordering::Relaxed),
    );
    assert!(
        gave_up * 1000 <= committed,
        "{gave_up} transfers ran out of retries against {committed} committed"
    );
    // The initial load, then exactly the transfers that reported success.
    assert_eq!(db.stats().last_commit_ts.get(), committed + 1);
    if std::env::var_os("SNAPBASE_STRESS_SECS").is_some() {
        println!("{isolation:?}: {committed} transfers committed, {gave_up} gave up");
    }
}

#[test]
fn bank_transfers_preserve_the_total_in_every_snapshot() {
    bank_transfers(Duration::from_secs(2), Isolation::Snapshot);
}

#[test]
fn bank_transfers_preserve_the_total_serializable() {
    bank_transfers(Duration::from_secs(1), Isolation::Serializable);
}

/// Read-modify-write increments of one hot counter: every successful commit counts exactly once
/// (no lost update under first-committer-wins).
#[test]
fn counter_has_no_lost_updates() {
    let db = common::build(Database::builder().gc(GcPolicy::Manual));
    let c = db.collection("c").unwrap();
    c.insert(json!({"_id": "n", "v": 0})).unwrap();
    let conflicts = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (db, conflicts) = (db.clone(), conflicts.clone());
            thread::spawn(move || {
                let mut done = 0;
                while done < 500 {
                    let mut tx = db.begin();
                    let v = tx.get("c", "n").unwrap().unwrap()["v"].as_i64().unwrap();
                    tx.replace("c", "n", json!({"v": v + 1})).unwrap();
                    match tx.commit() {
                        Ok(()) => done += 1,
                        Err(e) if e.is_conflict() => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(c.get("n").unwrap().unwrap()["v"], 2000);
    // Every attempt either committed or conflicted; each commit made exactly one version.
    assert_eq!(db.stats().versions, 2001);
    eprintln!("conflicts: {}", conflicts.load(Ordering::Relaxed));
}

/// A snapshot held across heavy churn and constant GC keeps reading the same values, while
/// versions newer than it are reclaimed.
#[test]
fn long_lived_snapshot_survives_churn_and_gc() {
    long_lived_snapshot(Duration::from_secs(2));
}

fn long_lived_snapshot(duration: Duration) {
    let db = common::build(Database::builder().gc(GcPolicy::Background {
        interval: Duration::from_millis(1),
    }));
    let c = db.collection("c").unwrap();
    c.insert_many((0..200).map(|i| json!({"_id": i, "v": i * 10})))
        .unwrap();
    let old = db.snapshot();
    let expected = old.scan("c").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let churned = Arc::new(AtomicU64::new(0));
    let checked = Arc::new(AtomicU64::new(0));
    let churn = {
        let (c, stop, churned) = (c.clone(), stop.clone(), churned.clone());
        thread::spawn(move || {
            let mut next = rng(7);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = i64::try_from(next() % 300).unwrap();
                match next() % 3 {
                    0 => {
                        c.delete(id).unwrap();
                    }
                    _ => {
                        c.upsert(json!({"_id": id, "v": -1})).unwrap();
                    }
                }
                n += 1;
                churned.store(n, Ordering::Relaxed);
            }
            n
        })
    };
    let gc = {
        let (db, stop) = (db.clone(), stop.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                db.gc();
            }
        })
    };
    let old_reader = {
        let (stop, checked) = (stop.clone(), checked.clone());
        thread::spawn(move || {
            let mut rounds = 0_u64;
            while !stop.load(Ordering::Relaxed) || rounds == 0 {
                assert_eq!(old.scan("c").unwrap(), expected);
                assert_eq!(old.get("c", 5).unwrap().unwrap()["v"], 50);
                rounds += 1;
                checked.store(rounds, Ordering::Relaxed);
            }
            (old, expected, rounds)
        })
    };
    run_for(duration, || {
        churned.load(Ordering::Relaxed) > 1000 && checked.load(Ordering::Relaxed) > 10
    });
    stop.store(true, Ordering::Relaxed);
    let (old, expected, rounds) = old_reader.join().unwrap();
    let writes = churn.join().unwrap();
    gc.join().unwrap();
    assert!(
        writes > 1000 && rounds > 10,
        "writes {writes}, rounds {rounds}"
    );
    assert_eq!(old.scan("c").unwrap(), expected);
    drop(old);
    db.gc();
    let s = db.stats();
    assert_eq!(
        s.versions, s.documents,
        "after the old snapshot is gone: {s:?}"
    );
    assert!(s.reclaimed_versions > writes / 2, "{s:?}");
}

/// Soak variants: `SNAPBASE_STRESS_SECS` seconds each (default 60).
#[test]
#[ignore = "soak test; run with --ignored (see scripts/soak.sh)"]
fn soak_bank_and_long_snapshot() {
    let secs = std::env::var("SNAPBASE_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    bank_transfers(Duration::from_secs(secs), Isolation::Snapshot);
    bank_transfers(Duration::from_secs(secs), Isolation::Serializable);
    long_lived_snapshot(Duration::from_secs(secs));
}

//! `commit`: the cost of committing writes, in memory, on snapbase and on the two baselines.
//!
//! Bench IDs (group `commit`; the time is per commit):
//! - `snapbase/insert_autocommit`: `collection.insert(doc)` of one small document (an
//!   auto-commit write: one commit).
//! - `snapbase/txn_10_inserts`: `db.begin()`, 10 `tx.insert("c", doc)`, `tx.commit()`.
//! - `rwlock_hashmap/insert`: `rwlock.write().insert(id, Arc::new(doc))`.
//! - `rwlock_hashmap/insert_10`: one write lock, 10 such inserts.
//! - `dashmap/insert`: `map.insert(id, Arc::new(doc))`.
//! - `dashmap/insert_10`: 10 such inserts (not atomic as a group).
//!
//! Documents are `{"_id": k, "name": "item", "n": k}` with fresh increasing ids; they are built
//! before the timed part. Each criterion sample starts from a new, empty engine (`iter_custom`),
//! so memory stays bounded and every engine grows from empty the same way.
//!
//! Percentiles: after the criterion benches, each operation is run again `LATENCY_SAMPLES`
//! times on a fresh engine, each one timed with `Instant`, and one line per operation is
//! printed to stdout:
//! `latency commit/<engine>/<op> n=.. p50=.. p99=.. p999=.. max=..` (plus a `latency
//! timer_overhead` line: the cost of the two `Instant::now()` calls, included in every sample).
//!
//! Run: `cargo bench --bench commit`.
#![allow(clippy::unwrap_used, reason = "a bench aborts on any engine error")]
#![allow(
    clippy::disallowed_types,
    reason = "DashMap is a baseline here; the loom concern applies only to src/"
)]

mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use common::{small_doc, Dash, RwLockMap, COLLECTION};
use criterion::Criterion;
use dashmap::DashMap;
use serde_json::Value;
use snapbase::{Database, GcPolicy};

/// Timed operations per engine and operation for the percentile lines (full run).
const LATENCY_SAMPLES: usize = 200_000;
/// The same when run as a smoke test (`cargo test --benches`).
const SMOKE_LATENCY_SAMPLES: usize = 2_000;
/// Documents per transaction in the `*_10` benches.
const BATCH: usize = 10;

/// One engine being written to; a fresh one is made per criterion sample.
trait Engine {
    /// Name used in bench IDs.
    const NAME: &'static str;
    /// Name of the single-document operation.
    const ONE: &'static str;
    /// Name of the 10-document operation.
    const TEN: &'static str;
    /// A new, empty engine.
    fn fresh() -> Self;
    /// Commits one document.
    fn insert_one(&self, id: i64, doc: Value);
    /// Commits `BATCH` documents as one unit.
    fn insert_batch(&self, docs: Vec<(i64, Value)>);
}

struct Snapbase {
    db: Database,
    coll: snapbase::Collection,
}

impl Engine for Snapbase {
    const NAME: &'static str = "snapbase";
    const ONE: &'static str = "insert_autocommit";
    const TEN: &'static str = "txn_10_inserts";
    fn fresh() -> Self {
        // Inserts leave nothing to collect; a manual policy keeps a GC thread out of the way.
        let db = Database::builder().gc(GcPolicy::Manual).in_memory();
        let coll = db.collection(COLLECTION).unwrap();
        Self { db, coll }
    }
    fn insert_one(&self, _id: i64, doc: Value) {
        black_box(self.coll.insert(doc).unwrap());
    }
    fn insert_batch(&self, docs: Vec<(i64, Value)>) {
        let mut tx = self.db.begin();
        for (_, doc) in docs {
            black_box(tx.insert(COLLECTION, doc).unwrap());
        }
        tx.commit().unwrap();
    }
}

struct RwLockHashMap(RwLockMap);

impl Engine for RwLockHashMap {
    const NAME: &'static str = "rwlock_hashmap";
    const ONE: &'static str = "insert";
    const TEN: &'static str = "insert_10";
    fn fresh() -> Self {
        Self(RwLock::new(HashMap::new()))
    }
    fn insert_one(&self, id: i64, doc: Value) {
        let doc = Arc::new(doc);
        black_box(self.0.write().unwrap().insert(id, doc));
    }
    fn insert_batch(&self, docs: Vec<(i64, Value)>) {
        let docs: Vec<_> = docs.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        let mut map = self.0.write().unwrap();
        for (id, doc) in docs {
            black_box(map.insert(id, doc));
        }
    }
}

struct DashMapEngine(Dash);

impl Engine for DashMapEngine {
    const NAME: &'static str = "dashmap";
    const ONE: &'static str = "insert";
    const TEN: &'static str = "insert_10";
    fn fresh() -> Self {
        Self(DashMap::new())
    }
    fn insert_one(&self, id: i64, doc: Value) {
        black_box(self.0.insert(id, Arc::new(doc)));
    }
    fn insert_batch(&self, docs: Vec<(i64, Value)>) {
        for (id, doc) in docs {
            black_box(self.0.insert(id, Arc::new(doc)));
        }
    }
}

/// `BATCH` fresh documents starting at id `first`.
fn batch(first: i64) -> Vec<(i64, Value)> {
    (first..).take(BATCH).map(|k| (k, small_doc(k))).collect()
}

fn bench_engine<E: Engine>(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit");
    group.bench_function(format!("{}/{}", E::NAME, E::ONE), |b| {
        b.iter_custom(|iters| {
            let engine = E::fresh();
            let n = usize::try_from(iters).unwrap();
            let docs: Vec<_> = (0..n).map(common::id).map(|k| (k, small_doc(k))).collect();
            let started = Instant::now();
            for (k, doc) in docs {
                engine.insert_one(k, doc);
            }
            let elapsed = started.elapsed();
            drop(engine);
            elapsed
        });
    });
    group.bench_function(format!("{}/{}", E::NAME, E::TEN), |b| {
        b.iter_custom(|iters| {
            let engine = E::fresh();
            let n = usize::try_from(iters).unwrap();
            let batches: Vec<_> = (0..n).map(|i| batch(common::id(i * BATCH))).collect();
            let started = Instant::now();
            for docs in batches {
                engine.insert_batch(docs);
            }
            let elapsed = started.elapsed();
            drop(engine);
            elapsed
        });
    });
    group.finish();
}

fn commit(c: &mut Criterion) {
    bench_engine::<Snapbase>(c);
    bench_engine::<RwLockHashMap>(c);
    bench_engine::<DashMapEngine>(c);
}

/// Prints `p50`, `p99`, `p99.9` and max of `samples` (nanoseconds) in one labelled line.
fn print_latency(label: &str, samples: &mut [u64]) {
    samples.sort_unstable();
    let n = samples.len();
    // Nearest-rank percentile.
    let at = |per_mille: usize| samples[(n * per_mille).div_ceil(1000).clamp(1, n) - 1];
    println!(
        "latency {label} n={n} p50={} p99={} p999={} max={}",
        common::fmt_ns(at(500)),
        common::fmt_ns(at(990)),
        common::fmt_ns(at(999)),
        common::fmt_ns(samples[n - 1]),
    );
}

/// Times every one of `samples` single inserts and every one of `samples` 10-document commits,
/// each on a fresh engine, and prints their percentiles.
fn latency_engine<E: Engine>(samples: usize) {
    let engine = E::fresh();
    let mut lat = Vec::with_capacity(samples);
    for k in (0..samples).map(common::id) {
        let doc = small_doc(k);
        let started = Instant::now();
        engine.insert_one(k, doc);
        lat.push(common::nanos(started.elapsed()));
    }
    drop(engine);
    print_latency(&format!("commit/{}/{}", E::NAME, E::ONE), &mut lat);

    let engine = E::fresh();
    lat.clear();
    for i in 0..samples {
        let docs = batch(common::id(i * BATCH));
        let started = Instant::now();
        engine.insert_batch(docs);
        lat.push(common::nanos(started.elapsed()));
    }
    drop(engine);
    print_latency(&format!("commit/{}/{}", E::NAME, E::TEN), &mut lat);
}

fn latencies() {
    let samples = common::scaled(LATENCY_SAMPLES, SMOKE_LATENCY_SAMPLES);
    let mut lat: Vec<u64> = (0..samples)
        .map(|_| {
            let started = Instant::now();
            common::nanos(black_box(started).elapsed())
        })
        .collect();
    print_latency("timer_overhead", &mut lat);
    latency_engine::<Snapbase>(samples);
    latency_engine::<RwLockHashMap>(samples);
    latency_engine::<DashMapEngine>(samples);
}

fn main() {
    // Defaults for this bench; command-line options (`--measurement-time`, ...) override them.
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    commit(&mut c);
    c.final_summary();
    if !std::env::args().any(|a| a == "--list") {
        latencies();
    }
}

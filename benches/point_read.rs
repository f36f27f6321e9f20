//! `point_read`: reads one document by id out of 1M (about 150 bytes each), on snapbase and on
//! the two baselines, single-threaded, with random ids from a pre-generated list.
//!
//! Bench IDs (group `point_read`; throughput is one read per iteration):
//! - `snapbase/snapshot_get`: `snap.get("c", id)` on one snapshot taken before the measurement.
//! - `snapbase/snapshot_per_read`: `db.snapshot().get("c", id)`: take, read, drop a snapshot.
//! - `snapbase/collection_get`: `collection.get(id)`, the auto-commit read at a fresh snapshot.
//! - `dashmap/get_arc_clone`: `map.get(&id).map(|v| Arc::clone(v.value()))`.
//! - `rwlock_hashmap/get_arc_clone`: `rwlock.read().get(&id).cloned()`.
//!
//! Target: `snapbase/snapshot_get` at most 2x `dashmap/get_arc_clone`.
//!
//! Run: `cargo bench --bench point_read`. The 1M-document databases are built once per run.
#![allow(clippy::unwrap_used, reason = "a bench aborts on any engine error")]
#![allow(
    clippy::disallowed_types,
    reason = "DashMap is a baseline here; the loom concern applies only to src/"
)]

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{IdCycle, COLLECTION};
use criterion::{Criterion, Throughput};
use snapbase::Database;

/// Documents in the database (full run).
const DOCS: usize = 1_000_000;
/// Documents in the database when run as a smoke test (`cargo test --benches`).
const SMOKE_DOCS: usize = 10_000;
/// Length of the pre-generated list of random ids (a power of two).
const IDS: usize = 1 << 20;

fn point_read(c: &mut Criterion) {
    let n = common::scaled(DOCS, SMOKE_DOCS);
    let started = Instant::now();
    let db = Database::in_memory();
    let coll = db.collection(COLLECTION).unwrap();
    common::load_snapbase(&coll, n);
    let (rwlock, dash) = common::build_baselines(n);
    let ids = common::random_ids(n, IDS, 0x5eed_0001);
    println!(
        "setup point_read: {n} documents loaded into snapbase and both baselines in {:.1?}",
        started.elapsed()
    );

    // Every engine holds the same documents.
    for &id in &ids[..1000] {
        let from_db = coll.get(id).unwrap().unwrap();
        let from_dash = dash.get(&id).map(|v| Arc::clone(v.value())).unwrap();
        assert_eq!(from_db.as_value(), &*from_dash);
        assert_eq!(from_db["n"], id);
    }

    let mut group = c.benchmark_group("point_read");
    group.throughput(Throughput::Elements(1));

    let snap = db.snapshot();
    group.bench_function("snapbase/snapshot_get", |b| {
        let mut next = IdCycle::new(&ids, 0);
        b.iter(|| snap.get(COLLECTION, black_box(next.next_id())).unwrap());
    });
    drop(snap);

    group.bench_function("snapbase/snapshot_per_read", |b| {
        let mut next = IdCycle::new(&ids, 0);
        b.iter(|| {
            db.snapshot()
                .get(COLLECTION, black_box(next.next_id()))
                .unwrap()
        });
    });

    group.bench_function("snapbase/collection_get", |b| {
        let mut next = IdCycle::new(&ids, 0);
        b.iter(|| coll.get(black_box(next.next_id())).unwrap());
    });

    group.bench_function("dashmap/get_arc_clone", |b| {
        let mut next = IdCycle::new(&ids, 0);
        b.iter(|| {
            dash.get(&black_box(next.next_id()))
                .map(|v| Arc::clone(v.value()))
        });
    });

    group.bench_function("rwlock_hashmap/get_arc_clone", |b| {
        let mut next = IdCycle::new(&ids, 0);
        b.iter(|| {
            rwlock
                .read()
                .unwrap()
                .get(&black_box(next.next_id()))
                .cloned()
        });
    });

    group.finish();

    if common::interleave() {
        interleaved(&db, &dash, &ids);
    }
}

/// The headline ratio, robust to a shared machine's drift: many short rounds, each measuring a
/// window of snapshot gets and a window of DashMap gets back to back (alternating which goes
/// first), and the median of the per-round ratios. The host's memory bandwidth varies within
/// tens of milliseconds, so rounds of 21 windows of 200,000 reads (the method until
/// 2026-11-23's fourth session) ranged from 0.8x to 2.8x within one run; windows of a
/// millisecond or two see nearly the same machine on both sides.
fn interleaved(db: &Database, dash: &common::Dash, ids: &[i64]) {
    const ROUNDS: usize = 1001;
    const WINDOW: u32 = 2_000;
    let snap = db.snapshot();
    let mut ratios = Vec::with_capacity(ROUNDS);
    let mut per_read = [Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS)];
    let mut next = IdCycle::new(ids, 0);
    for round in 0..ROUNDS {
        let mut ns = [0.0f64; 2];
        for which in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
            let started = Instant::now();
            for _ in 0..WINDOW {
                let id = black_box(next.next_id());
                if which == 0 {
                    black_box(snap.get(COLLECTION, id).unwrap());
                } else {
                    black_box(dash.get(&id).map(|v| Arc::clone(v.value())));
                }
            }
            #[allow(clippy::cast_precision_loss, reason = "display only")]
            let per = started.elapsed().as_nanos() as f64 / f64::from(WINDOW);
            ns[which] = per;
            per_read[which].push(per);
        }
        ratios.push(ns[0] / ns[1]);
    }
    // The baseline's per-read time is bimodal on a shared host (it is fast while more of its
    // table fits the caches the neighbours leave free), snapbase's much less so. The ratio in
    // the rounds where the baseline was fastest is the stricter figure; print it too.
    let mut by_baseline: Vec<(f64, f64)> = per_read[1]
        .iter()
        .copied()
        .zip(ratios.iter().copied())
        .collect();
    by_baseline.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut fastest: Vec<f64> = by_baseline[..ROUNDS / 4].iter().map(|r| r.1).collect();
    fastest.sort_by(f64::total_cmp);
    let fast_median = fastest[fastest.len() / 2];
    let decile = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 10], v[v.len() / 2], v[v.len() * 9 / 10])
    };
    let (r10, r50, r90) = decile(&mut ratios);
    let (s10, s50, s90) = decile(&mut per_read[0]);
    let (d10, d50, d90) = decile(&mut per_read[1]);
    println!(
        "interleaved point_read snapshot_get / dashmap get: median {r50:.2}x \
         (deciles {r10:.2}x-{r90:.2}x) over {ROUNDS} rounds of {WINDOW} reads each; \
         per read: snapshot_get {s50:.0} ns ({s10:.0}-{s90:.0}), \
         dashmap {d50:.0} ns ({d10:.0}-{d90:.0}); median ratio in the quarter of rounds \
         where dashmap was fastest: {fast_median:.2}x"
    );
}

fn main() {
    // Defaults for this bench; command-line options (`--measurement-time`, ...) override them.
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    point_read(&mut c);
    c.final_summary();
}

//! `read_under_write`: random point-read throughput of 1 and 2 reader threads while one writer
//! thread replaces random documents as fast as it can, against the same readers with no
//! writer, on snapbase and on the two baselines. 100k documents of about 150 bytes.
//!
//! Bench IDs (group `read_under_write`): `<engine>/readers=<1|2>/writer=<off|on>` with
//! `<engine>` one of
//! - `snapbase`: readers call `collection.get(id)` (auto-commit read at a fresh snapshot); the
//!   writer calls `collection.replace(id, doc)` (one commit per replacement; default background
//!   GC reclaims the superseded versions);
//! - `rwlock_hashmap`: readers `rwlock.read().get(&id).cloned()`; the writer
//!   `rwlock.write().insert(id, Arc::new(doc))`;
//! - `dashmap`: readers `map.get(&id).map(|v| Arc::clone(v.value()))`; the writer
//!   `map.insert(id, Arc::new(doc))`.
//!
//! One iteration is `READS_PER_ITER` random reads by each reader thread; criterion's throughput
//! is total reads per second over all readers (`Throughput::Elements(readers * READS_PER_ITER)`).
//! The measured interval runs from releasing the readers (a barrier) to the last reader's end;
//! the writer is started, and has committed at least once, before it, and stopped after it.
//! After each `writer=on` bench a `writer ...` line reports the writer's own rate.
//!
//! Run: `cargo bench --bench read_under_write`. With 2 readers and a writer on a 2-core machine
//! the three threads share two cores.
#![allow(clippy::unwrap_used, reason = "a bench aborts on any engine error")]
#![allow(
    clippy::disallowed_types,
    reason = "DashMap is a baseline here; the loom concern applies only to src/"
)]

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{Dash, IdCycle, Rng, RwLockMap, COLLECTION};
use criterion::{BenchmarkId, Criterion, Throughput};
use serde_json::Value;
use snapbase::{Collection, Database};

/// Documents in each engine (full run).
const DOCS: usize = 100_000;
/// Documents when run as a smoke test (`cargo test --benches`).
const SMOKE_DOCS: usize = 5_000;
/// Random reads per reader thread per iteration.
const READS_PER_ITER: usize = 10_000;
/// Length of the pre-generated list of random ids (a power of two).
const IDS: usize = 1 << 20;

/// One engine under test: what a reader and the writer do.
trait Engine: Sync {
    /// Name used in bench IDs.
    const NAME: &'static str;
    /// Reads document `id`; the result goes to `black_box`.
    fn read(&self, id: i64);
    /// Replaces document `id` with `doc`.
    fn write(&self, id: i64, doc: Value);
}

struct Snapbase(Collection);

impl Engine for Snapbase {
    const NAME: &'static str = "snapbase";
    fn read(&self, id: i64) {
        black_box(self.0.get(id).unwrap());
    }
    fn write(&self, id: i64, doc: Value) {
        assert!(self.0.replace(id, doc).unwrap());
    }
}

struct RwLockHashMap(RwLockMap);

impl Engine for RwLockHashMap {
    const NAME: &'static str = "rwlock_hashmap";
    fn read(&self, id: i64) {
        black_box(self.0.read().unwrap().get(&id).cloned());
    }
    fn write(&self, id: i64, doc: Value) {
        let doc = Arc::new(doc);
        let old = self.0.write().unwrap().insert(id, doc);
        drop(old); // outside the lock, as a careful user would
    }
}

struct DashMapEngine(Dash);

impl Engine for DashMapEngine {
    const NAME: &'static str = "dashmap";
    fn read(&self, id: i64) {
        black_box(self.0.get(&id).map(|v| Arc::clone(v.value())));
    }
    fn write(&self, id: i64, doc: Value) {
        let old = self.0.insert(id, Arc::new(doc));
        drop(old);
    }
}

/// Writes done and time spent by the writer over all runs of one bench.
#[derive(Default)]
struct WriterTally {
    writes: AtomicU64,
    nanos: AtomicU64,
}

impl WriterTally {
    /// The writer's rate over every run it took part in.
    fn per_sec(&self) -> f64 {
        #[allow(
            clippy::cast_precision_loss,
            reason = "display only; counts far below 2^52"
        )]
        let (writes, nanos) = (
            self.writes.load(Ordering::Relaxed) as f64,
            self.nanos.load(Ordering::Relaxed).max(1) as f64,
        );
        writes / (nanos / 1e9)
    }
}

/// One engine loaded with `n_docs` documents, and the random ids its readers read.
struct Fixture<'a, E> {
    engine: &'a E,
    n_docs: usize,
    ids: &'a [i64],
    /// Where in `ids` the next run starts, so runs do not repeat the same ids.
    cursor: AtomicUsize,
}

impl<'a, E> Fixture<'a, E> {
    fn new(engine: &'a E, n_docs: usize, ids: &'a [i64]) -> Self {
        Self {
            engine,
            n_docs,
            ids,
            cursor: AtomicUsize::new(0),
        }
    }
}

/// Runs `iters` iterations with `readers` reader threads, with or without a writer, and
/// returns the measured wall time.
fn run<E: Engine>(
    fx: &Fixture<'_, E>,
    readers: usize,
    writer: bool,
    iters: u64,
    tally: &WriterTally,
) -> Duration {
    let Fixture {
        engine,
        n_docs,
        ids,
        ref cursor,
    } = *fx;
    let reads = READS_PER_ITER * usize::try_from(iters).unwrap();
    let stop = AtomicBool::new(false);
    let writer_started = AtomicBool::new(false);
    let start_line = Barrier::new(readers + 1);
    // Each call starts its readers somewhere new in the id list.
    let base = cursor.fetch_add(reads * readers, Ordering::Relaxed);
    thread::scope(|s| {
        let writer_handle = writer.then(|| {
            s.spawn(|| {
                let mut rng = Rng::new(u64::try_from(base).unwrap() ^ 0xdead_beef);
                let started = Instant::now();
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let id = rng.id_below(n_docs);
                    engine.write(id, common::doc(id));
                    done += 1;
                    if done == 1 {
                        writer_started.store(true, Ordering::Release);
                    }
                }
                tally.writes.fetch_add(done, Ordering::Relaxed);
                tally
                    .nanos
                    .fetch_add(common::nanos(started.elapsed()), Ordering::Relaxed);
            })
        });
        if writer {
            while !writer_started.load(Ordering::Acquire) {
                thread::yield_now();
            }
        }
        let reader_handles: Vec<_> = (0..readers)
            .map(|r| {
                let start_line = &start_line;
                s.spawn(move || {
                    let mut next = IdCycle::new(ids, base + r * reads);
                    start_line.wait();
                    for _ in 0..reads {
                        engine.read(next.next_id());
                    }
                })
            })
            .collect();
        start_line.wait();
        let started = Instant::now();
        for h in reader_handles {
            h.join().unwrap();
        }
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        if let Some(h) = writer_handle {
            h.join().unwrap();
        }
        elapsed
    })
}

fn bench_engine<E: Engine>(c: &mut Criterion, engine: &E, n_docs: usize, ids: &[i64]) {
    let mut group = c.benchmark_group("read_under_write");
    let fx = Fixture::new(engine, n_docs, ids);
    for readers in [1, 2] {
        group.throughput(Throughput::Elements(
            u64::try_from(readers * READS_PER_ITER).unwrap(),
        ));
        for writer in [false, true] {
            let id = BenchmarkId::new(
                E::NAME,
                format!(
                    "readers={readers}/writer={}",
                    if writer { "on" } else { "off" }
                ),
            );
            let tally = WriterTally::default();
            group.bench_function(id.clone(), |b| {
                b.iter_custom(|iters| run(&fx, readers, writer, iters, &tally));
            });
            let writes = tally.writes.load(Ordering::Relaxed);
            // A bench skipped by a name filter ran no writer; say nothing for it.
            if writer && writes > 0 {
                let rate = tally.per_sec();
                println!(
                    "writer read_under_write/{}/readers={readers}/writer=on: {writes} writes in \
                     {}, {rate:.0} writes/s (whole writer lifetime, warm-up included)",
                    E::NAME,
                    common::fmt_ns(tally.nanos.load(Ordering::Relaxed)),
                );
            }
        }
    }
    group.finish();
}

/// Rounds of the interleaved comparison. A round's halves are short (tens of milliseconds) and
/// single rounds range from a third to twice the typical ratio, so a run takes many: with 21
/// (until 2026-11-23's fourth session) a run's median moved by about 5 points between runs.
const ROUNDS: usize = 101;
/// Iterations (of `READS_PER_ITER` reads per reader) in each half of a round.
const ROUND_ITERS: u64 = 10;

/// The headline ratio, robust to the slow drift of a shared machine: each round measures the
/// readers without and with the writer back to back (alternating which goes first), and the
/// median of the per-round ratios is printed as
/// `interleaved read_under_write/<engine>/readers=N: kept median .. (min .., max ..)`.
fn interleaved<E: Engine>(engine: &E, n_docs: usize, ids: &[i64]) {
    let fx = Fixture::new(engine, n_docs, ids);
    for readers in [1, 2] {
        let tally = WriterTally::default();
        let mut kept = Vec::with_capacity(ROUNDS);
        let mut rates = (0.0, 0.0);
        for round in 0..ROUNDS {
            let order = if round % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            let mut secs = [0.0; 2];
            for writer in order {
                secs[usize::from(writer)] =
                    run(&fx, readers, writer, ROUND_ITERS, &tally).as_secs_f64();
            }
            kept.push(secs[0] / secs[1]);
            #[allow(clippy::cast_precision_loss, reason = "display only; small counts")]
            let (reads, rounds) = (
                (readers as u64 * ROUND_ITERS * READS_PER_ITER as u64) as f64,
                ROUNDS as f64,
            );
            rates.0 += reads / secs[0] / 1e6 / rounds;
            rates.1 += reads / secs[1] / 1e6 / rounds;
        }
        let (median, min, max) = common::spread(&mut kept);
        // The writer's own rate shows whether it kept its share of the CPU: a writer that
        // blocks on the readers' locks leaves them more of it.
        let writes_per_sec = tally.per_sec();
        println!(
            "interleaved read_under_write/{}/readers={readers}: kept median {:.1}% (min {:.1}%, \
             max {:.1}%) over {ROUNDS} rounds; mean rate off {:.2} M reads/s, on {:.2} M reads/s; \
             writer {:.0}k writes/s",
            E::NAME,
            median * 100.0,
            min * 100.0,
            max * 100.0,
            rates.0,
            rates.1,
            writes_per_sec / 1e3,
        );
    }
}

/// Pairs of phases in the sustained comparison.
const SUSTAINED_PAIRS: usize = 3;
/// Iterations (of `READS_PER_ITER` reads per reader) in each sustained phase: about a second.
const SUSTAINED_ITERS: u64 = 200;

/// The steady state the short rounds of `interleaved` cannot show: phases of about a second,
/// without then with the writer, so that background work a writer causes (GC passes, and the
/// frees of what they unlink) falls inside the phase that caused it, as it would under a writer
/// that never stops. Prints the median of the per-pair ratios, as
/// `sustained read_under_write/<engine>/readers=N: kept median .. (min .., max ..)`.
fn sustained<E: Engine>(engine: &E, n_docs: usize, ids: &[i64]) {
    let fx = Fixture::new(engine, n_docs, ids);
    for readers in [1, 2] {
        let tally = WriterTally::default();
        let mut kept = Vec::with_capacity(SUSTAINED_PAIRS);
        let mut rates = Vec::with_capacity(SUSTAINED_PAIRS);
        for _ in 0..SUSTAINED_PAIRS {
            let off = run(&fx, readers, false, SUSTAINED_ITERS, &tally).as_secs_f64();
            let on = run(&fx, readers, true, SUSTAINED_ITERS, &tally).as_secs_f64();
            kept.push(off / on);
            #[allow(clippy::cast_precision_loss, reason = "display only; small counts")]
            let reads = (readers as u64 * SUSTAINED_ITERS * READS_PER_ITER as u64) as f64;
            rates.push(format!("{:.2}/{:.2}", reads / off / 1e6, reads / on / 1e6));
        }
        let (median, min, max) = common::spread(&mut kept);
        let writes_per_sec = tally.per_sec();
        println!(
            "sustained read_under_write/{}/readers={readers}: kept median {:.1}% (min {:.1}%, \
             max {:.1}%) over {SUSTAINED_PAIRS} pairs of {SUSTAINED_ITERS}-iteration phases; \
             M reads/s off/on per pair {}; writer {:.0}k writes/s",
            E::NAME,
            median * 100.0,
            min * 100.0,
            max * 100.0,
            rates.join(", "),
            writes_per_sec / 1e3,
        );
    }
}

fn read_under_write(c: &mut Criterion) {
    let n = common::scaled(DOCS, SMOKE_DOCS);
    let ids = common::random_ids(n, IDS, 0x5eed_0002);
    let started = Instant::now();

    let db = Database::in_memory();
    let coll = db.collection(COLLECTION).unwrap();
    common::load_snapbase(&coll, n);
    let (rwlock, dash) = common::build_baselines(n);
    println!(
        "setup read_under_write: {n} documents per engine in {:.1?}",
        started.elapsed()
    );

    let (snapbase, rwlock, dash) = (Snapbase(coll), RwLockHashMap(rwlock), DashMapEngine(dash));
    bench_engine(c, &snapbase, n, &ids);
    println!("snapbase stats after read_under_write: {:?}", db.stats());
    bench_engine(c, &rwlock, n, &ids);
    bench_engine(c, &dash, n, &ids);
    if common::interleave() {
        interleaved(&snapbase, n, &ids);
        interleaved(&rwlock, n, &ids);
        interleaved(&dash, n, &ids);
        sustained(&snapbase, n, &ids);
        sustained(&rwlock, n, &ids);
        sustained(&dash, n, &ids);
    }
}

fn main() {
    // Defaults for this bench; command-line options (`--measurement-time`, ...) override them.
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    read_under_write(&mut c);
    c.final_summary();
}

//! `gc`: time and memory to reclaim 1M superseded versions.
//!
//! snapbase: 100k documents (about 150 bytes each), then, while a snapshot taken before is
//! held, every document is replaced 10 times (in transactions of 10k replacements): 1M
//! superseded versions. The snapshot is dropped and `db.gc()` (policy `GcPolicy::Manual`) is
//! timed. Baselines keep superseded values alive the only way a map can, by holding the
//! `Arc<Value>`s that `insert` returned; their "GC" is dropping those 1M values, which is timed
//! the same way.
//!
//! Bench IDs (group `gc`; time per pass, i.e. per 1M versions):
//! - `snapbase/gc_1m_versions`: one `db.gc()` call. Setup (the 1M replacements) is untimed. It
//!   unlinks the versions and hands them to crossbeam-epoch, which frees them later; the untimed
//!   drain after each pass (see below) keeps that garbage from piling up across iterations.
//! - `rwlock_hashmap/drop_1m_superseded`, `dashmap/drop_1m_superseded`: dropping the 1M old
//!   `Arc<Value>`s that the 10 replacement rounds returned.
//!
//! Every iteration needs a new 1M-version setup (a few seconds), so this group sets its own
//! settings, which override `--warm-up-time`/`--measurement-time`: 10 samples of one pass each
//! plus one warm-up pass. criterion warns that it cannot complete 10 samples in the (tiny)
//! target time; that is expected.
//!
//! Memory: a counting global allocator tracks live heap bytes. Before each engine's bench, one
//! instrumented run per engine prints labelled lines to stdout:
//! - `memory gc/snapbase ...`: live heap before `gc()`, right after `gc()` returns, and after
//!   draining crossbeam-epoch's deferred frees (`pin().flush()` until the heap stops shrinking),
//!   with bytes reclaimed per version at both points, the drain's flush count and time. `gc()`
//!   frees nothing itself (it defers every free to crossbeam-epoch and allocates the deferred
//!   bags), so the figure "at `gc()` return" can be negative;
//! - `stats gc/snapbase before ...` / `stats gc/snapbase after ...`: `db.stats()` around the pass;
//! - `memory gc/<baseline> ...`: live heap before and after dropping the superseded values.
//!
//! A second group, `gc_pass`, measures a pass on a large database that only a few writes have
//! touched, the common case for a read-heavy store whose background GC runs every interval:
//! - `snapbase/pass_after_1k_replaces`: 1M documents; each iteration replaces 1,000 random
//!   documents (auto-commit, untimed), then times one `db.gc()`, which reclaims their 1,000
//!   superseded versions. What a pass costs should follow the writes, not the database size.
//! - Before it, one instrumented run prints `cpu gc/background ...`: the time on CPU the background
//!   GC thread (default policy) spends while one writer replaces 1,000 random documents a
//!   second for 5 s in the same 1M-document database (Linux only: read from `/proc`).
//!
//! Run: `cargo bench --bench gc`; `cargo bench --bench gc -- gc_pass` for the second group.
#![allow(clippy::unwrap_used, reason = "a bench aborts on any engine error")]
#![allow(
    clippy::disallowed_types,
    reason = "DashMap is a baseline here; the loom concern applies only to src/"
)]
#![allow(
    unsafe_code,
    reason = "the counting global allocator; every block has a SAFETY note"
)]
#![allow(
    clippy::cast_precision_loss,
    reason = "byte and version counts are only divided for display"
)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{doc, Dash, RwLockMap, COLLECTION};
use criterion::{Criterion, SamplingMode};
use serde_json::Value;
use snapbase::{Database, GcPolicy};

/// Live heap bytes: allocated minus freed, as requested by callers (`Layout::size`).
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes.
struct Counting;

// SAFETY: every method forwards to `System`, which implements `GlobalAlloc` correctly, with the
// caller's arguments unchanged; the only addition is updating an atomic counter, which neither
// allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller upholds `alloc`'s contract, which we pass on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller upholds the rest.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Documents in the database (full run).
const DOCS: usize = 100_000;
/// Documents when run as a smoke test (`cargo test --benches`).
const SMOKE_DOCS: usize = 2_000;
/// Times every document is replaced while the snapshot is held.
const ROUNDS: usize = 10;
/// Replacements per transaction during setup.
const TXN_CHUNK: usize = 10_000;

fn live() -> usize {
    LIVE.load(Ordering::SeqCst)
}

fn mib(bytes: usize) -> String {
    format!("{:.1}MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `a - b` as a signed number of bytes.
fn diff(a: usize, b: usize) -> f64 {
    a as f64 - b as f64
}

/// A snapbase database with documents `0..n`, collected only on demand.
fn snapbase_db(n: usize) -> Database {
    let db = Database::builder().gc(GcPolicy::Manual).in_memory();
    common::load_snapbase(&db.collection(COLLECTION).unwrap(), n);
    db
}

/// Replaces each of the `n` documents `ROUNDS` times while holding a snapshot taken before,
/// then drops the snapshot: `n * ROUNDS` superseded versions, all reclaimable.
fn supersede(db: &Database, n: usize) {
    let snapshot = db.snapshot();
    for _ in 0..ROUNDS {
        let mut start = 0;
        while start < n {
            let end = (start + TXN_CHUNK).min(n);
            let mut tx = db.begin();
            for id in (start..end).map(common::id) {
                assert!(tx.replace(COLLECTION, id, doc(id)).unwrap());
            }
            tx.commit().unwrap();
            start = end;
        }
    }
    drop(snapshot);
}

/// Lets crossbeam-epoch run the frees that GC deferred: pins and flushes until the live heap
/// has not reached a new low (by at least `DRAIN_SLACK` bytes) for `DRAIN_IDLE` flushes in a
/// row. (Each flush itself allocates and frees a queue node or two, so the heap never stops
/// moving entirely.) Returns the number of flushes up to the last new low.
fn drain_epoch() -> usize {
    const DRAIN_SLACK: usize = 64 * 1024;
    const DRAIN_IDLE: usize = 256;
    const MAX_FLUSHES: usize = 10_000_000;
    let mut low = live();
    let mut last_low_at = 0;
    for flush in 1..=MAX_FLUSHES {
        crossbeam_epoch::pin().flush();
        let now = live();
        if now + DRAIN_SLACK <= low {
            low = now;
            last_low_at = flush;
        } else if flush - last_low_at >= DRAIN_IDLE {
            break;
        }
    }
    last_low_at
}

/// A baseline map holding the current documents, plus the values it superseded.
trait Baseline {
    /// Name used in bench IDs and labels.
    const NAME: &'static str;
    /// A map holding documents `0..n`.
    fn build(n: usize) -> Self;
    /// Replaces document `id`, returning the value it replaced.
    fn replace(&self, id: i64, doc: Arc<Value>) -> Option<Arc<Value>>;
}

impl Baseline for RwLockMap {
    const NAME: &'static str = "rwlock_hashmap";
    fn build(n: usize) -> Self {
        common::build_baselines(n).0
    }
    fn replace(&self, id: i64, doc: Arc<Value>) -> Option<Arc<Value>> {
        self.write().unwrap().insert(id, doc)
    }
}

impl Baseline for Dash {
    const NAME: &'static str = "dashmap";
    fn build(n: usize) -> Self {
        common::build_baselines(n).1
    }
    fn replace(&self, id: i64, doc: Arc<Value>) -> Option<Arc<Value>> {
        self.insert(id, doc)
    }
}

/// Replaces each of the `n` documents `ROUNDS` times and returns the superseded values.
fn supersede_baseline<B: Baseline>(map: &B, n: usize) -> Vec<Arc<Value>> {
    let mut old = Vec::with_capacity(n * ROUNDS);
    for _ in 0..ROUNDS {
        for id in (0..n).map(common::id) {
            old.push(map.replace(id, Arc::new(doc(id))).unwrap());
        }
    }
    old
}

/// One instrumented pass on a fresh database: prints memory and stats lines.
fn report_snapbase_memory(n: usize) {
    let empty = live();
    let db = snapbase_db(n);
    let loaded = live();
    supersede(&db, n);
    let stats_before = db.stats();
    let before = live();
    let started = Instant::now();
    let report = db.gc();
    let gc_time = started.elapsed();
    let after_gc = live();
    let started = Instant::now();
    let flushes = drain_epoch();
    let drain_time = started.elapsed();
    let after_drain = live();
    let stats_after = db.stats();
    let versions = report.versions_reclaimed.max(1) as f64;
    println!(
        "memory gc/snapbase: {n} docs use {} ({:.0}B/doc); with {} superseded versions live heap \
         before gc={}, after gc() returns={}, after epoch drain={}; reclaimed per version: \
         {:.0}B at gc() return, {:.0}B after drain; gc() took {}, drain took {} ({flushes} \
         flushes)",
        mib(loaded - empty),
        diff(loaded, empty) / n as f64,
        report.versions_reclaimed,
        mib(before),
        mib(after_gc),
        mib(after_drain),
        diff(before, after_gc) / versions,
        diff(before, after_drain) / versions,
        common::fmt_ns(common::nanos(gc_time)),
        common::fmt_ns(common::nanos(drain_time)),
    );
    println!("stats gc/snapbase before: {stats_before:?}");
    println!("stats gc/snapbase after: {stats_after:?} ({report:?})");
    assert_eq!(report.versions_reclaimed, (n * ROUNDS) as u64);
}

/// The same measurement for a baseline: live heap around dropping the superseded values.
fn report_baseline_memory<B: Baseline>(n: usize) {
    let map = B::build(n);
    let old = supersede_baseline(&map, n);
    let values = old.len();
    let before = live();
    let started = Instant::now();
    drop(old);
    let drop_time = started.elapsed();
    let after = live();
    println!(
        "memory gc/{}: live heap before dropping {values} superseded values={}, after={}; \
         reclaimed per value: {:.0}B; drop took {}",
        B::NAME,
        mib(before),
        mib(after),
        diff(before, after) / values as f64,
        common::fmt_ns(common::nanos(drop_time)),
    );
}

fn bench_baseline<B: Baseline>(c: &mut Criterion, group_name: &str, n: usize) {
    let map = B::build(n);
    let mut group = c.benchmark_group(group_name);
    configure(&mut group);
    group.bench_function(format!("{}/drop_1m_superseded", B::NAME), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let old = supersede_baseline(&map, n);
                let started = Instant::now();
                drop(black_box(old));
                total += started.elapsed();
            }
            total
        });
    });
    group.finish();
}

fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_nanos(1))
        .measurement_time(Duration::from_millis(1));
}

fn gc(c: &mut Criterion) {
    let n = common::scaled(DOCS, SMOKE_DOCS);
    report_snapbase_memory(n);

    let db = snapbase_db(n);
    let mut group = c.benchmark_group("gc");
    configure(&mut group);
    group.bench_function("snapbase/gc_1m_versions", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                supersede(&db, n);
                let started = Instant::now();
                let report = black_box(db.gc());
                total += started.elapsed();
                assert_eq!(report.versions_reclaimed, (n * ROUNDS) as u64);
                drain_epoch();
            }
            total
        });
    });
    group.finish();
    drop(db);

    report_baseline_memory::<RwLockMap>(n);
    report_baseline_memory::<Dash>(n);
    bench_baseline::<RwLockMap>(c, "gc", n);
    bench_baseline::<Dash>(c, "gc", n);
}

/// Documents in the `gc_pass` database (full run) and as a smoke test.
const PASS_DOCS: usize = 1_000_000;
const PASS_SMOKE_DOCS: usize = 10_000;
/// Documents replaced between two timed passes.
const PASS_REPLACES: usize = 1_000;
/// The background-GC measurement: replaces a second, and for how long.
const TRICKLE_PER_SEC: u64 = 1_000;
const TRICKLE_TIME: Duration = Duration::from_secs(5);

/// Time on CPU of this process's thread named `name`, in nanoseconds, from the first field of
/// `/proc/self/task/*/schedstat`; `None` where there is no such thread or no such file.
fn thread_cpu(name: &str) -> Option<Duration> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim_end() != name {
            continue;
        }
        let schedstat = std::fs::read_to_string(dir.join("schedstat")).ok()?;
        let nanos = schedstat.split_whitespace().next()?.parse().ok()?;
        return Some(Duration::from_nanos(nanos));
    }
    None
}

/// One writer replaces `TRICKLE_PER_SEC` random documents a second, paced, while the default
/// background GC runs; prints the GC thread's CPU time over the run.
fn report_background_cpu(n: usize) {
    let db = Database::in_memory();
    let coll = db.collection(COLLECTION).unwrap();
    common::load_snapbase(&coll, n);
    let mut rng = common::Rng::new(0x5eed_0003);
    let cpu_before = thread_cpu("snapbase-gc");
    let started = Instant::now();
    let mut written = 0u64;
    while started.elapsed() < TRICKLE_TIME {
        let due = common::nanos(started.elapsed()) / 1_000_000 * TRICKLE_PER_SEC / 1000;
        while written < due {
            let id = rng.id_below(n);
            assert!(coll.replace(id, doc(id)).unwrap());
            written += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = started.elapsed();
    let cpu_after = thread_cpu("snapbase-gc");
    match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => {
            let used = after.saturating_sub(before);
            println!(
                "cpu gc/background: {n} docs, {written} replaces in {elapsed:.1?} \
                 ({TRICKLE_PER_SEC}/s): the GC thread used {} of CPU, {:.1}% of one core",
                common::fmt_ns(common::nanos(used)),
                used.as_secs_f64() * 100.0 / elapsed.as_secs_f64(),
            );
        }
        _ => println!("cpu gc/background: no per-thread CPU times on this system"),
    }
    println!("stats gc/background after: {:?}", db.stats());
}

fn gc_pass(c: &mut Criterion) {
    let n = common::scaled(PASS_DOCS, PASS_SMOKE_DOCS);
    if common::full_scale() {
        report_background_cpu(n);
    }
    let db = snapbase_db(n);
    let coll = db.collection(COLLECTION).unwrap();
    let mut rng = common::Rng::new(0x5eed_0004);
    let mut group = c.benchmark_group("gc_pass");
    group.sample_size(20);
    group.bench_function("snapbase/pass_after_1k_replaces", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut replaced = std::collections::HashSet::new();
                while replaced.len() < PASS_REPLACES {
                    let id = rng.id_below(n);
                    if replaced.insert(id) {
                        assert!(coll.replace(id, doc(id)).unwrap());
                    }
                }
                let started = Instant::now();
                let report = black_box(db.gc());
                total += started.elapsed();
                assert_eq!(report.versions_reclaimed, PASS_REPLACES as u64);
            }
            total
        });
    });
    group.finish();
}

fn main() {
    // The `gc` group overrides warm-up and measurement times (see the module docs).
    let mut c = Criterion::default().configure_from_args();
    gc(&mut c);
    gc_pass(&mut c);
    c.final_summary();
}

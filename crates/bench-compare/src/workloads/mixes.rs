//! Read-heavy mixes with a concurrent writer: YCSB-B-like (95% reads / 5% updates) and
//! YCSB-A-like (50% / 50%) on Zipfian keys, durable and relaxed; and the headline for
//! snapbase: the read throughput of N readers while one writer commits without pause, against
//! the same readers alone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::RngExt;

use crate::data::{self, Zipfian};
use crate::engines::{Capability, Durability, Engine, EngineResult};
use crate::measure::{histogram, record_latency, Ctx, Figure};

use super::{open, plural, together};

const SEED_IDS: u64 = 0x6d69_7865_0001;
const SEED_BODIES: u64 = 0x6d69_7865_0002;
const SEED_OPS: u64 = 0x6d69_7865_0003;

/// Documents per commit of the preload.
const PRELOAD_BATCH: usize = 100_000;
/// Bodies the updates cycle through.
const POOL: usize = 256;

pub fn run(ctx: &Ctx<'_>) -> EngineResult<()> {
    let mut modes = Vec::new();
    if ctx.kind.supports(Capability::Durability) {
        modes.push(Durability::Durable);
    }
    if ctx.kind.has_relaxed_mode() {
        modes.push(Durability::Relaxed);
    }
    let pool = data::data_pool(&mut data::rng(SEED_BODIES), POOL);
    for d in modes {
        let name = d.label();
        let boxed = open(ctx, d, name)?;
        let engine = boxed.as_ref();

        ctx.step(&format!("{name}: preload"));
        let keys = preload(engine, ctx.sizes.mix_docs)?;
        let zipf = Zipfian::new(keys.len())?;
        let run = Run {
            engine,
            keys: &keys,
            pool: &pool,
            duration: ctx.sizes.mix_duration,
        };

        let threads = ctx.sizes.mix_threads;
        for (mix, read_pct) in [("ycsb-b", 95), ("ycsb-a", 50)] {
            ctx.step(&format!("{name}: {mix}"));
            let roles = vec![Role::zipf(read_pct, &zipf); threads as usize];
            let (elapsed, tallies) = run.threads(&roles, true)?;
            let total = Tally::merge(&tallies);
            ctx.record(
                &format!("{mix} throughput"),
                d,
                Figure::rate(total.ops(), elapsed, "ops/s").with_threads(Some(threads)),
            );
            for (what, h) in [
                ("read", &total.read_latency),
                ("update", &total.write_latency),
            ] {
                if h.is_empty() {
                    continue;
                }
                let p99 = h.value_at_quantile(0.99) as f64 / 1e3;
                ctx.record(
                    &format!("{mix} {what} p99"),
                    d,
                    Figure::micros(p99).with_threads(Some(threads)),
                );
            }
        }

        if d == Durability::Relaxed {
            for &readers in &ctx.sizes.headline_readers {
                headline(ctx, &run, readers, d)?;
            }
        }

        ctx.step(&format!("{name}: close"));
        boxed.close()?;
        let dir = ctx.dir.join(name);
        std::fs::remove_dir_all(&dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// Reads of `readers` threads alone, then beside one writer; reports both rates, their ratio
/// and the writer's rate.
fn headline(ctx: &Ctx<'_>, run: &Run<'_>, readers: u32, d: Durability) -> EngineResult<()> {
    let t = Some(readers);
    let r = plural(readers, "reader");
    ctx.step(&format!("{r} alone"));
    let alone = vec![Role::uniform(100); readers as usize];
    let (elapsed, tallies) = run.threads(&alone, false)?;
    let alone_rate = Figure::rate(Tally::merge(&tallies).ops(), elapsed, "ops/s");
    ctx.record(&format!("reads alone, {r}"), d, alone_rate.with_threads(t));

    ctx.step(&format!("{r} beside a writer"));
    let mut roles = alone;
    roles.push(Role::uniform(0));
    let (elapsed, tallies) = run.threads(&roles, false)?;
    let (reader_tallies, writer) = tallies.split_at(readers as usize);
    let with_rate = Figure::rate(Tally::merge(reader_tallies).ops(), elapsed, "ops/s");
    ctx.record(
        &format!("reads beside a writer, {r}"),
        d,
        with_rate.with_threads(t),
    );
    ctx.record(
        &format!("beside a writer / alone, {r}"),
        d,
        Figure::percent(100.0 * with_rate.value / alone_rate.value.max(f64::MIN_POSITIVE))
            .with_threads(t),
    );
    ctx.record(
        &format!("writer beside {r}"),
        d,
        Figure::rate(Tally::merge(writer).ops(), elapsed, "commits/s").with_threads(t),
    );
    Ok(())
}

/// Loads `n` documents in commits of [`PRELOAD_BATCH`]; returns their ids.
fn preload(engine: &dyn Engine, n: usize) -> EngineResult<Vec<String>> {
    let mut ids_rng = data::rng(SEED_IDS);
    let mut body_rng = data::rng(SEED_BODIES);
    let mut keys = Vec::with_capacity(n);
    while keys.len() < n {
        let ids = data::random_ids(&mut ids_rng, PRELOAD_BATCH.min(n - keys.len()));
        engine.insert_batch(&data::documents(&mut body_rng, &ids, 0))?;
        keys.extend(ids);
    }
    let count = engine.count()?;
    if count == n as u64 {
        Ok(keys)
    } else {
        Err(format!("count after the preload is {count}, expected {n}"))
    }
}

/// How one thread picks its keys and operations.
#[derive(Clone, Copy)]
struct Role<'a> {
    /// Percentage of reads; the rest are single-document updates.
    read_pct: u32,
    /// `None` = uniform keys.
    zipf: Option<&'a Zipfian>,
}

impl<'a> Role<'a> {
    fn zipf(read_pct: u32, zipf: &'a Zipfian) -> Self {
        Role {
            read_pct,
            zipf: Some(zipf),
        }
    }

    fn uniform(read_pct: u32) -> Self {
        Role {
            read_pct,
            zipf: None,
        }
    }

    fn key(&self, rng: &mut SmallRng, n: usize) -> usize {
        match self.zipf {
            Some(z) => z.sample(rng),
            None => rng.random_range(0..n),
        }
    }
}

/// What one thread did.
struct Tally {
    reads: usize,
    writes: usize,
    read_latency: Histogram<u64>,
    write_latency: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            reads: 0,
            writes: 0,
            read_latency: histogram(),
            write_latency: histogram(),
        }
    }

    fn ops(&self) -> usize {
        self.reads + self.writes
    }

    fn merge(tallies: &[Tally]) -> Tally {
        let mut total = Tally::new();
        for t in tallies {
            total.reads += t.reads;
            total.writes += t.writes;
            for (into, from) in [
                (&mut total.read_latency, &t.read_latency),
                (&mut total.write_latency, &t.write_latency),
            ] {
                into.add(from)
                    .unwrap_or_else(|e| panic!("histograms share bounds: {e}"));
            }
        }
        total
    }
}

/// One timed mix: the engine, its keys, the update bodies and how long to run.
struct Run<'a> {
    engine: &'a dyn Engine,
    keys: &'a [String],
    pool: &'a [String],
    duration: Duration,
}

impl Run<'_> {
    /// Runs one thread per role for `self.duration`, all started together; returns the time
    /// they ran (see [`together`]) and each thread's tally (latencies only if `timed`).
    fn threads(&self, roles: &[Role<'_>], timed: bool) -> EngineResult<(Duration, Vec<Tally>)> {
        let stop = AtomicBool::new(false);
        together(
            roles.len(),
            || {
                thread::sleep(self.duration);
                stop.store(true, Ordering::Relaxed);
            },
            |i| self.worker(roles[i], i as u64, timed, &stop),
        )
    }

    fn worker(
        &self,
        role: Role<'_>,
        index: u64,
        timed: bool,
        stop: &AtomicBool,
    ) -> EngineResult<Tally> {
        let mut rng = data::rng(SEED_OPS ^ (index << 32));
        let mut tally = Tally::new();
        let n = self.keys.len();
        while !stop.load(Ordering::Relaxed) {
            let key = &self.keys[role.key(&mut rng, n)];
            let read = role.read_pct >= 100 || rng.random_range(0..100) < role.read_pct;
            let start = timed.then(Instant::now);
            if read {
                if self.engine.get(key)?.is_none() {
                    return Err(format!("document {key} was loaded but is not found"));
                }
                tally.reads += 1;
            } else {
                let version = (tally.writes + 1) as u64;
                let body = &self.pool[tally.writes % self.pool.len()];
                let doc = data::document(key, version, body);
                self.engine.update_batch(&[(key.clone(), doc)])?;
                tally.writes += 1;
            }
            if let Some(start) = start {
                let h = if read {
                    &mut tally.read_latency
                } else {
                    &mut tally.write_latency
                };
                record_latency(h, start.elapsed());
            }
        }
        Ok(tally)
    }
}

//! The original brief's workloads: 1k and 10k inserts with one (durable) commit each,
//! concurrent writes from 100 threads, latency percentiles of reads and writes, and the peak
//! memory of the process.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::data;
use crate::engines::{self, Capability, EngineResult};
use crate::measure::{histogram, peak_rss, record_latency, timed, Ctx, Figure};

use super::{open, skip_reason, together, verify_count, verify_sample};

const SEED_IDS: u64 = 0x6272_6965_0001;
const SEED_BODIES: u64 = 0x6272_6965_0002;
const SEED_READS: u64 = 0x6272_6965_0003;
const SEED_QUERIES: u64 = 0x6272_6965_0004;
/// The field the index phase indexes and queries: unique random text, so each query finds
/// exactly one document (like a lookup by e-mail address).
const INDEXED: &str = "data";

pub fn run(ctx: &Ctx<'_>) -> EngineResult<()> {
    let sizes = ctx.sizes;
    let d = engines::primary_durability(ctx.kind);
    let boxed = open(ctx, d, "db")?;
    let engine = boxed.as_ref();
    let mut ids_rng = data::rng(SEED_IDS);
    let mut body_rng = data::rng(SEED_BODIES);
    let mut keys = Vec::new();
    // `(_id, data)` of every document, for the index phase.
    let mut indexed: Vec<(String, String)> = Vec::new();
    let mut remember = |docs: &[(String, serde_json::Value)]| {
        indexed.extend(docs.iter().map(|(id, doc)| {
            (
                id.clone(),
                doc[INDEXED].as_str().unwrap_or_default().to_owned(),
            )
        }));
    };

    // 1k and 10k inserts, one commit each, each timed.
    let mut writes = histogram();
    for n in sizes.insert_runs {
        let phase = format!("{} inserts", crate::plan::thousands(n as f64));
        ctx.step(&phase);
        let ids = data::random_ids(&mut ids_rng, n);
        let docs = data::documents(&mut body_rng, &ids, 0);
        let start = Instant::now();
        for doc in &docs {
            let t = Instant::now();
            engine.insert_batch(std::slice::from_ref(doc))?;
            record_latency(&mut writes, t.elapsed());
        }
        let elapsed = start.elapsed();
        ctx.record(&phase, d, Figure::rate(n, elapsed, "commits/s"));
        verify_sample(engine, &docs)?;
        remember(&docs);
        keys.extend(ids);
    }
    ctx.record_percentiles("insert latency", d, Some(1), &writes);

    // Concurrent writers, one commit per insert.
    let threads = sizes.writer_threads;
    let phase = format!("{threads} concurrent writers");
    ctx.step(&phase);
    let per_thread: Vec<Vec<(String, serde_json::Value)>> = (0..threads)
        .map(|_| {
            let ids = data::random_ids(&mut ids_rng, sizes.writes_per_thread);
            data::documents(&mut body_rng, &ids, 0)
        })
        .collect();
    let (elapsed, latencies) = concurrent_inserts(engine, &per_thread)?;
    let total = per_thread.iter().map(Vec::len).sum();
    ctx.record(
        &phase,
        d,
        Figure::rate(total, elapsed, "commits/s").with_threads(Some(threads)),
    );
    ctx.record_percentiles(
        &format!("{threads} writers latency"),
        d,
        Some(threads),
        &latencies,
    );
    for docs in per_thread {
        verify_sample(engine, &docs)?;
        remember(&docs);
        keys.extend(docs.into_iter().map(|(id, _)| id));
    }
    verify_count(engine, keys.len())?;

    // Read latency: individually timed random point reads.
    ctx.step("read latency");
    let mut reads = histogram();
    let mut rng = data::rng(SEED_READS);
    for _ in 0..sizes.latency_reads {
        let key = &keys[rand::RngExt::random_range(&mut rng, 0..keys.len())];
        let t = Instant::now();
        let found = engine.get(key)?;
        record_latency(&mut reads, t.elapsed());
        if found.is_none() {
            return Err(format!("document {key} was written but is not found"));
        }
    }
    ctx.record_percentiles("read latency", d, Some(1), &reads);

    // A secondary index on `data`, then individually timed equality queries through it.
    let create = format!("create index on {INDEXED}");
    let query = "point query on a secondary index";
    match skip_reason(ctx, Capability::SecondaryIndex) {
        Some(why) => {
            ctx.skip(&create, d, None, why);
            ctx.skip(query, d, None, why);
        }
        None => {
            ctx.step(&create);
            let ((), elapsed) = timed(|| engine.create_index(INDEXED))?;
            ctx.record(&create, d, Figure::millis(elapsed));
            ctx.step(query);
            let (elapsed, latencies) = index_queries(engine, &indexed, sizes.index_queries)?;
            ctx.record(
                query,
                d,
                Figure::rate(sizes.index_queries, elapsed, "ops/s"),
            );
            ctx.record_percentiles("index query latency", d, Some(1), &latencies);
        }
    }

    ctx.step("close");
    boxed.close()?;
    ctx.record("peak RSS", d, Figure::mib(peak_rss()?));
    Ok(())
}

/// `n` equality queries on the indexed field for random documents of `indexed`, each timed;
/// each must find exactly its document.
fn index_queries(
    engine: &dyn engines::Engine,
    indexed: &[(String, String)],
    n: usize,
) -> EngineResult<(Duration, Histogram<u64>)> {
    let mut rng = data::rng(SEED_QUERIES);
    let mut latencies = histogram();
    let start = Instant::now();
    for _ in 0..n {
        let (id, value) = &indexed[rand::RngExt::random_range(&mut rng, 0..indexed.len())];
        let t = Instant::now();
        let found = engine.find_eq(INDEXED, value)?;
        record_latency(&mut latencies, t.elapsed());
        if found.len() != 1 || found[0]["_id"] != id.as_str() {
            return Err(format!(
                "{INDEXED} = {value} found {} document(s), expected only {id}",
                found.len()
            ));
        }
    }
    Ok((start.elapsed(), latencies))
}

/// Each thread inserts its documents one commit at a time, all threads started together.
/// Returns the time they took and the merged latency histogram.
fn concurrent_inserts(
    engine: &dyn engines::Engine,
    per_thread: &[Vec<(String, serde_json::Value)>],
) -> EngineResult<(Duration, Histogram<u64>)> {
    let (elapsed, histograms) = together(
        per_thread.len(),
        || {},
        |t| {
            let mut h = histogram();
            for doc in &per_thread[t] {
                let start = Instant::now();
                engine.insert_batch(std::slice::from_ref(doc))?;
                record_latency(&mut h, start.elapsed());
            }
            Ok(h)
        },
    )?;
    let mut merged = histogram();
    for h in &histograms {
        merged
            .add(h)
            .unwrap_or_else(|e| panic!("histograms share bounds: {e}"));
    }
    Ok((elapsed, merged))
}

//! redb's benchmark phases (PEERS.md section 4.1), translated to documents: bulk load in one
//! transaction, individual durable commits, batches of 1,000, count, random reads on 1 thread
//! and split over 1–8 threads, range reads (not in snapbase yet), deleting half in one
//! transaction, and the disk size after the deletions and after compaction.

use crate::data;
use crate::engines::{self, Capability, EngineResult};
use crate::measure::{disk_usage, peak_rss, timed, Ctx, Figure};
use crate::plan::thousands;

use super::{open, plural, random_reads, range_reads, skip_reason, verify_count, verify_sample};

/// Seeds of this workload's random streams.
const SEED_IDS: u64 = 0x7265_6462_0001;
const SEED_BODIES: u64 = 0x7265_6462_0002;
const SEED_READS: u64 = 0x7265_6462_0003;
const SEED_RANGES: u64 = 0x7265_6462_0004;
/// Documents per range read, as in redb's benchmark.
const RANGE_LEN: usize = 10;

pub fn run(ctx: &Ctx<'_>) -> EngineResult<()> {
    let sizes = ctx.sizes;
    let d = engines::primary_durability(ctx.kind);
    let boxed = open(ctx, d, "db")?;
    let engine = boxed.as_ref();
    let mut ids_rng = data::rng(SEED_IDS);
    let mut body_rng = data::rng(SEED_BODIES);
    let mut keys = Vec::new();

    // 1. Bulk load in one transaction (the batch is built before the clock starts).
    ctx.step("bulk load: generating documents");
    let ids = data::random_ids(&mut ids_rng, sizes.bulk_docs);
    let docs = data::documents(&mut body_rng, &ids, 0);
    ctx.step("bulk load");
    let ((), elapsed) = timed(|| engine.insert_batch(&docs))?;
    ctx.record("bulk load", d, Figure::rate(docs.len(), elapsed, "docs/s"));
    verify_sample(engine, &docs)?;
    drop(docs);
    keys.extend(ids);

    // 2. Individual commits of one document.
    ctx.step("individual commits");
    let ids = data::random_ids(&mut ids_rng, sizes.individual_commits);
    let docs = data::documents(&mut body_rng, &ids, 0);
    let ((), elapsed) = timed(|| {
        docs.iter()
            .try_for_each(|doc| engine.insert_batch(std::slice::from_ref(doc)))
    })?;
    ctx.record(
        "individual commits",
        d,
        Figure::rate(docs.len(), elapsed, "commits/s"),
    );
    verify_sample(engine, &docs)?;
    keys.extend(ids);

    // 3. Transactions of `batch_size` inserts.
    ctx.step("batch commits");
    let ids = data::random_ids(&mut ids_rng, sizes.batch_txns * sizes.batch_size);
    let docs = data::documents(&mut body_rng, &ids, 0);
    let ((), elapsed) = timed(|| {
        docs.chunks(sizes.batch_size)
            .try_for_each(|batch| engine.insert_batch(batch))
    })?;
    ctx.record(
        &format!("batch commits of {}", thousands(sizes.batch_size as f64)),
        d,
        Figure::rate(docs.len(), elapsed, "docs/s"),
    );
    verify_sample(engine, &docs)?;
    drop(docs);
    keys.extend(ids);

    // 4. Count.
    ctx.step("count");
    let (n, elapsed) = timed(|| engine.count())?;
    if n != keys.len() as u64 {
        return Err(format!("count is {n}, expected {}", keys.len()));
    }
    ctx.record("count", d, Figure::millis(elapsed));

    // 5. Random point reads on one thread.
    ctx.step("random reads");
    let elapsed = random_reads(engine, &keys, sizes.reads, 1, SEED_READS)?;
    ctx.record(
        "random reads",
        d,
        Figure::rate(sizes.reads, elapsed, "ops/s"),
    );

    // 6. Range reads of 10 from random `_id`s: engines with ordered scans.
    let phase = format!("random range reads of {RANGE_LEN}");
    match skip_reason(ctx, Capability::RangeScan) {
        Some(why) => ctx.skip(&phase, d, None, why),
        None => {
            ctx.step(&phase);
            let elapsed = range_reads(engine, &keys, sizes.range_reads, RANGE_LEN, SEED_RANGES)?;
            ctx.record(
                &phase,
                d,
                Figure::rate(sizes.range_reads, elapsed, "scans/s"),
            );
        }
    }

    // 7. Random reads split over 1, 2, 4, 8 threads.
    for &threads in &sizes.read_threads {
        let phase = format!("random reads, {}", plural(threads, "thread"));
        ctx.step(&phase);
        let seed = SEED_READS + u64::from(threads);
        let elapsed = random_reads(engine, &keys, sizes.threaded_reads, threads, seed)?;
        ctx.record(
            &phase,
            d,
            Figure::rate(sizes.threaded_reads, elapsed, "ops/s").with_threads(Some(threads)),
        );
    }

    // 8. Delete half in one transaction.
    ctx.step("delete half");
    let half = keys.len() / 2;
    let ((), elapsed) = timed(|| engine.delete_batch(&keys[..half]))?;
    ctx.record("delete half", d, Figure::rate(half, elapsed, "docs/s"));
    verify_count(engine, keys.len() - half)?;
    if engine.get(&keys[0])?.is_some() {
        return Err(format!("deleted document {} is still found", keys[0]));
    }

    // 9. Disk size after the deletions, and after the engine's own compaction.
    if ctx.kind.supports(Capability::Durability) {
        ctx.record("disk after deletes", d, Figure::mib(disk_usage(ctx.dir)?));
    } else {
        ctx.skip("disk after deletes", d, None, "in memory: no files");
    }
    ctx.step("compact");
    let (compacted, elapsed) = timed(|| engine.compact())?;
    if compacted {
        ctx.record("compact", d, Figure::millis(elapsed));
        ctx.record("disk after compact", d, Figure::mib(disk_usage(ctx.dir)?));
    } else {
        ctx.skip("compact", d, None, "no compaction");
        ctx.skip("disk after compact", d, None, "no compaction");
    }
    verify_count(engine, keys.len() - half)?;

    ctx.step("close");
    boxed.close()?;
    ctx.record("peak RSS", d, Figure::mib(peak_rss()?));
    Ok(())
}

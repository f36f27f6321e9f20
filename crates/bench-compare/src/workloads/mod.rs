//! The workloads, run inside a child process on one engine, and what they share: opening an
//! instance, checking that it stores what it was given, and timed random reads over threads.

mod brief;
mod mixes;
mod redb;

use std::path::PathBuf;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use crate::data;
use crate::engines::{Capability, Durability, Engine, EngineResult};
use crate::measure::Ctx;
use crate::plan::Workload;

/// Runs `ctx.workload` on `ctx.kind`, reporting each figure through `ctx.sink` as it is made.
pub fn run(ctx: &Ctx<'_>) -> EngineResult<()> {
    match ctx.workload {
        Workload::Redb => redb::run(ctx),
        Workload::Brief => brief::run(ctx),
        Workload::Mixes => mixes::run(ctx),
    }
}

/// The skip reason of phases that need what snapbase does not have yet.
pub const NOT_IN_SNAPBASE: &str = "not yet supported by snapbase";

/// `1 thread`, `4 threads`.
fn plural(n: u32, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Why a phase needing `capability` is skipped on `ctx.kind`, or `None` if it runs there:
/// snapbase does not have range scans or secondary indexes yet, and the peers run such phases
/// where they have the capability.
fn skip_reason(ctx: &Ctx<'_>, capability: Capability) -> Option<&'static str> {
    if ctx.kind.name().starts_with("snapbase") && capability != Capability::Durability {
        Some(NOT_IN_SNAPBASE)
    } else if ctx.kind.supports(capability) {
        None
    } else {
        Some(match capability {
            Capability::RangeScan => "no ordered range scans",
            Capability::SecondaryIndex => "no secondary indexes",
            Capability::Durability => "no durable mode",
        })
    }
}

/// `total` range reads of `len` documents each, from random existing `_id`s, on one thread;
/// returns the time they took. Every scan must start at its `_id` and hold the `len`
/// documents that follow in `_id` order (fewer only at the end of the key space); `keys` is
/// every `_id` stored.
fn range_reads(
    engine: &dyn Engine,
    keys: &[String],
    total: usize,
    len: usize,
    seed: u64,
) -> EngineResult<Duration> {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    let mut rng = data::rng(seed);
    let starts: Vec<usize> = (0..total)
        .map(|_| rand::RngExt::random_range(&mut rng, 0..sorted.len()))
        .collect();
    let check = |at: usize, found: &[crate::engines::Doc]| -> EngineResult<()> {
        let expected = &sorted[at..sorted.len().min(at + len)];
        let ids: Vec<&str> = found
            .iter()
            .map(|d| d["_id"].as_str().unwrap_or(""))
            .collect();
        if ids == expected {
            Ok(())
        } else {
            Err(format!(
                "a range read from {} found {ids:?}, expected {expected:?}",
                sorted[at]
            ))
        }
    };
    let start = Instant::now();
    for (i, &at) in starts.iter().enumerate() {
        let found = engine.range(&sorted[at], len)?;
        // Every scan's length and first `_id`; every 1,000th scan in full, which costs the
        // same on every engine.
        if found.len() != len.min(sorted.len() - at)
            || found.first().map(|d| d["_id"].as_str()) != Some(Some(sorted[at].as_str()))
            || i % 1000 == 0
        {
            check(at, &found)?;
        }
    }
    Ok(start.elapsed())
}

/// Opens an instance of the engine with `durability` in `ctx.dir/<name>`.
fn open(ctx: &Ctx<'_>, durability: Durability, name: &str) -> EngineResult<Box<dyn Engine>> {
    let dir: PathBuf = ctx.dir.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    ctx.kind.open(&dir, durability)
}

/// Checks that a few documents read back exactly as they were written, so that a broken
/// adapter fails loudly instead of being fast.
fn verify_sample(engine: &dyn Engine, docs: &[(String, serde_json::Value)]) -> EngineResult<()> {
    let step = (docs.len() / 64).max(1);
    for (id, doc) in docs.iter().step_by(step) {
        match engine.get(id)? {
            Some(found) if found == *doc => {}
            Some(found) => return Err(format!("document {id} read back as {}", *found)),
            None => return Err(format!("document {id} was written but is not found")),
        }
    }
    Ok(())
}

/// Checks that the engine counts `expected` documents.
fn verify_count(engine: &dyn Engine, expected: usize) -> EngineResult<()> {
    let n = engine.count()?;
    if n == expected as u64 {
        Ok(())
    } else {
        Err(format!("count is {n}, expected {expected}"))
    }
}

/// `total` uniformly random point reads of `keys` split over `threads` threads started
/// together; returns the time they took (see [`together`]). Every key must be found.
fn random_reads(
    engine: &dyn Engine,
    keys: &[String],
    total: usize,
    threads: u32,
    seed: u64,
) -> EngineResult<Duration> {
    let threads = threads.max(1) as usize;
    let (elapsed, _) = together(
        threads,
        || {},
        |t| {
            let share = total / threads + usize::from(t < total % threads);
            let mut rng = data::rng(seed ^ ((t as u64) << 32));
            let mut missing = 0usize;
            for _ in 0..share {
                let key = &keys[rand::RngExt::random_range(&mut rng, 0..keys.len())];
                if engine.get(key)?.is_none() {
                    missing += 1;
                }
            }
            if missing == 0 {
                Ok(())
            } else {
                Err(format!("{missing} of {share} reads found nothing"))
            }
        },
    )?;
    Ok(elapsed)
}

/// Runs `work(0)`, ..., `work(n - 1)` on `n` threads released together, while the calling
/// thread runs `meanwhile` (the mixes sleep and then raise their stop flag there).
///
/// Returns each thread's result and the time from the first thread's start to the last
/// one's end, as each thread measured it: timing from the calling thread would be wrong when
/// it is not scheduled at once after the release, as happens with more threads than cores.
fn together<T: Send>(
    n: usize,
    meanwhile: impl FnOnce(),
    work: impl Fn(usize) -> EngineResult<T> + Sync,
) -> EngineResult<(Duration, Vec<T>)> {
    let barrier = Barrier::new(n + 1);
    thread::scope(|s| {
        let workers: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, work) = (&barrier, &work);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let result = work(i);
                    (start, Instant::now(), result)
                })
            })
            .collect();
        barrier.wait();
        meanwhile();
        let mut span: Option<(Instant, Instant)> = None;
        let mut results = Vec::with_capacity(n);
        let mut outcome = Ok(());
        for worker in workers {
            match worker.join() {
                Ok((start, end, result)) => {
                    span = Some(span.map_or((start, end), |(s, e)| (s.min(start), e.max(end))));
                    match result {
                        Ok(value) => results.push(value),
                        Err(e) => outcome = outcome.and(Err(e)),
                    }
                }
                Err(_) => outcome = outcome.and(Err("a worker thread panicked".to_owned())),
            }
        }
        let elapsed = span.map_or(Duration::ZERO, |(start, end)| end - start);
        outcome.map(|()| (elapsed, results))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::engines::{self, EngineKind};
    use crate::plan::Sizes;
    use crate::results::Measurement;

    /// Runs `workload` at a tiny scale on `kind` and returns its measurements.
    fn run_tiny(kind: &dyn EngineKind, workload: Workload) -> Vec<Measurement> {
        let dir = std::env::temp_dir().join(format!(
            "bench-compare-test-{}-{}-{}",
            std::process::id(),
            kind.name(),
            workload.cli_name()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mut sizes = Sizes::at(0.001);
        sizes.writer_threads = 4;
        sizes.mix_duration = Duration::from_millis(20);
        sizes.read_threads = vec![1, 2];
        sizes.headline_readers = vec![1];
        let out = Mutex::new(Vec::new());
        let sink = |m: Measurement| out.lock().unwrap_or_else(|e| e.into_inner()).push(m);
        let ctx = Ctx {
            kind,
            workload,
            sizes: &sizes,
            dir: &dir,
            sink: &sink,
            progress: &|_: &str| {},
        };
        let outcome = run(&ctx);
        let _ = std::fs::remove_dir_all(&dir);
        outcome.unwrap_or_else(|e| panic!("{} {}: {e}", kind.name(), workload.id()));
        out.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn every_workload_runs_on_the_harness_engines() {
        for name in ["snapbase", "snapbase-mem", "hashmap", "files"] {
            let kind = engines::find(name).unwrap_or_else(|| panic!("{name} is registered"));
            for workload in Workload::ALL {
                let ms = run_tiny(kind, workload);
                assert!(!ms.is_empty(), "{name} {}", workload.id());
                for m in &ms {
                    assert_eq!(m.engine, name);
                    assert_eq!(m.workload, workload.id());
                    assert!(m.durability == "durable" || m.durability == "relaxed");
                    assert!(
                        m.skipped.is_some() || (m.value.is_finite() && m.value >= 0.0),
                        "{m:?}"
                    );
                }
                // Engines without a durable mode never report durable figures.
                if !kind.supports(engines::Capability::Durability) {
                    assert!(ms.iter().all(|m| m.durability == "relaxed"));
                }
            }
        }
    }
}

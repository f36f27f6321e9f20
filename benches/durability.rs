//! `durability`: the performance figures of issue 3, measured side by side in one run on one
//! disk. A plain `main` (no criterion) that prints one block per section and a summary table.
//!
//! Sections (`--only 1,3` runs a subset):
//! 1. **Physical floor vs durable commit.** The floor is a positional write of one record into
//!    a file zero-filled and synced beforehand (so neither the file's size nor its block
//!    allocation changes), then `File::sync_data`: the cheapest durable small write this file
//!    system offers. It runs against `collection.insert` of a ~150-byte document on a database
//!    in `Durability::Immediate` mode. The floor's record is as long as the WAL frame of one
//!    such commit (measured first from `stats().wal_bytes`). Rounds alternate which side goes
//!    first; the headline is the median of the per-round ratios of mean times (target ≤ 1.3×),
//!    with p50/p99 over every timed operation of each side. An append to a growing file + `sync_data` is measured in
//!    the same rounds for reference: it must also commit the new size to the journal.
//! 2. **Concurrent durable committers.** 1, 4, 16 and 64 threads each `insert` their own
//!    documents (auto-commit, `Immediate`) for a fixed time; commits/s per level. Every round
//!    measures every level, in alternating order; the headline is the median per-round ratio of
//!    the 16-thread rate to the 1-thread rate (target ≥ 10×). Commits per fsync is read off the
//!    WAL: in `Immediate` mode each WAL frame is one append and one `fdatasync`, and its payload
//!    holds one record per commit, so records / frames = commits per sync. Automatic
//!    checkpoints are off in this section so that every frame stays on disk to be counted.
//!    Each level is also run, back to back with the engine, on `RawGroupCommit`: the WAL's
//!    group-commit protocol on a bare file with no database around it, which shows what that
//!    protocol alone reaches on this machine (`engine / raw` column). `--levels 1,16` runs
//!    other thread counts (the first is the reference of the ratios).
//! 3. **Bulk load.** `insert_many` of N documents (1M at full scale) in batches of 10k per
//!    commit (a single 1M-document commit exceeds the 64 MiB commit limit), documents built
//!    before the clock starts. `Immediate` (durable when the last batch returns) against `None`
//!    followed by `close()` (which syncs the WAL). Default checkpoint and compaction triggers
//!    run in the background as they would in production.
//! 4. **Open time.** (a) N documents (1M) after `checkpoint()` + `close()`: the runs the load's
//!    automatic checkpoints left plus the final one; (b) the same after `compact()` (one run);
//!    (c) an empty checkpoint plus 100k single-insert commits in the WAL (a crash image: no
//!    checkpoint ran, so open replays all of them); (d) (b) plus 100k more single-insert commits
//!    in the WAL. The WAL commits are written in `Durability::None` mode to save time: with one
//!    writer that leaves exactly the files 100k `Immediate` commits would (one frame per
//!    commit), and dropping the database without `checkpoint()` leaves the files a crash would,
//!    since every commit was already written. Each open is timed alone (`Database::open` until
//!    it returns); `close()` and drop are outside the clock.
//! 5. **Compaction throughput.** N documents (1M) are written, checkpointed, overwritten and
//!    checkpointed again (two runs), then `compact()` is timed: MB/s of data files read
//!    (`bytes_before / duration`, 1 MB = 10^6 bytes). Files were just written, so they are read
//!    from the page cache. Each further round overwrites everything again (two runs again).
//!    The peak memory of `compact()` is measured by `examples/compaction_memory.rs`.
//! 6. **Disk size under automatic compaction.** `AutoCompaction::default()`, automatic
//!    checkpoints every 1 MiB of WAL (and after 1 s idle), `Immediate`; N documents (100k)
//!    overwritten `passes` times in random order, 1,000 replaces per transaction. After the
//!    background work settles (stats unchanged for 2 s), `(data_bytes + wal_bytes) /
//!    live_bytes` (target ≤ 1.3×) and the directory's size by listing it. The peak of the same
//!    ratio sampled after every transaction is printed too.
//!
//! Everything runs in a fresh directory under `target/` of the current directory (not
//! `/tmp`, which may be a tmpfs); its file system type is printed from `/proc/mounts`. The
//! directory is removed at the end unless `--keep` is given.
//!
//! Run: `cargo bench --bench durability` (full scale, several minutes and ~3 GiB of RAM);
//! `cargo bench --bench durability -- --quick` (under a minute); add `--scale F` to multiply
//! every document and operation count (not the number of rounds), `--only 2,4` to run some
//! sections, `--keep` to keep the directory. Without `--bench` (e.g. `cargo test --benches`)
//! it runs a tiny smoke scale (about 10 s in a debug build).
//!
//! The machine is shared: the load average at start and end is printed, and every headline is
//! a median of per-round ratios of measurements taken back to back.
#![allow(clippy::unwrap_used, reason = "a bench aborts on any engine error")]
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "counts, byte sizes and durations are only converted for display and scaling"
)]
#![allow(
    clippy::too_many_lines,
    reason = "each section is one straight-line script"
)]

mod common;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{doc, fmt_ns, nanos, spread, Rng, COLLECTION};
use serde_json::{json, Value};
use snapbase::{AutoCompaction, Database, Durability, GcPolicy};

/// Documents per `insert_many` commit in the bulk loads.
const BULK_BATCH: usize = 10_000;
/// Replaces per transaction in section 6.
const CHURN_BATCH: usize = 1_000;
/// Thread counts of section 2.
const LEVELS: [usize; 4] = [1, 4, 16, 64];
/// An interval long enough that the time trigger of checkpoints never fires.
const NEVER: Duration = Duration::from_secs(1_000_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Full,
    Quick,
    Smoke,
}

#[derive(Debug)]
struct Args {
    mode: Mode,
    scale: f64,
    only: Option<Vec<u32>>,
    levels: Vec<usize>,
    keep: bool,
}

impl Args {
    fn parse() -> Self {
        let mut bench = false;
        let mut test = false;
        let mut quick = false;
        let mut scale = 1.0;
        let mut only = None;
        let mut keep = false;
        let mut levels = LEVELS.to_vec();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (key, inline) = match arg.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            match key.as_str() {
                "--bench" => bench = true,
                "--test" | "--list" => test = true,
                "--quick" => quick = true,
                "--keep" => keep = true,
                "--scale" => {
                    let v = inline
                        .or_else(|| args.next())
                        .unwrap_or_else(|| panic!("--scale needs a value"));
                    scale = v
                        .parse()
                        .unwrap_or_else(|e| panic!("--scale takes a number: {e}"));
                }
                "--only" => {
                    let v = inline
                        .or_else(|| args.next())
                        .unwrap_or_else(|| panic!("--only needs a list"));
                    only = Some(
                        v.split(',')
                            .map(|s| {
                                s.trim()
                                    .parse()
                                    .unwrap_or_else(|e| panic!("--only takes 1..6: {e}"))
                            })
                            .collect(),
                    );
                }
                "--levels" => {
                    let v = inline
                        .or_else(|| args.next())
                        .unwrap_or_else(|| panic!("--levels needs a list"));
                    levels = v
                        .split(',')
                        .map(|s| {
                            s.trim()
                                .parse()
                                .unwrap_or_else(|e| panic!("--levels takes thread counts: {e}"))
                        })
                        .collect();
                }
                // cargo passes filters and flags of its own; ignore them.
                _ => {}
            }
        }
        let mode = if quick {
            Mode::Quick
        } else if bench && !test {
            Mode::Full
        } else {
            Mode::Smoke
        };
        Self {
            mode,
            scale,
            only,
            levels,
            keep,
        }
    }

    fn runs(&self, section: u32) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(&section))
    }
}

/// Sizes of every section.
#[derive(Debug, Clone)]
struct Config {
    floor_rounds: usize,
    floor_ops: usize,
    conc_rounds: usize,
    conc_time: Duration,
    bulk_docs: usize,
    bulk_rounds: usize,
    open_docs: usize,
    open_wal_commits: usize,
    open_repeats: usize,
    compact_docs: usize,
    compact_rounds: usize,
    auto_docs: usize,
    auto_passes: usize,
    levels: Vec<usize>,
}

impl Config {
    fn new(mode: Mode, scale: f64, levels: Vec<usize>) -> Self {
        let base = match mode {
            Mode::Full => Self {
                floor_rounds: 21,
                floor_ops: 500,
                conc_rounds: 11,
                conc_time: Duration::from_millis(500),
                bulk_docs: 1_000_000,
                bulk_rounds: 3,
                open_docs: 1_000_000,
                open_wal_commits: 100_000,
                open_repeats: 3,
                compact_docs: 1_000_000,
                compact_rounds: 3,
                auto_docs: 100_000,
                auto_passes: 10,
                levels: LEVELS.to_vec(),
            },
            Mode::Quick | Mode::Smoke => Self {
                floor_rounds: 7,
                floor_ops: 200,
                conc_rounds: 3,
                conc_time: Duration::from_millis(200),
                bulk_docs: 50_000,
                bulk_rounds: 1,
                open_docs: 50_000,
                open_wal_commits: 10_000,
                open_repeats: 2,
                compact_docs: 50_000,
                compact_rounds: 1,
                auto_docs: 20_000,
                auto_passes: 5,
                levels: LEVELS.to_vec(),
            },
        };
        let scale = if mode == Mode::Smoke {
            scale * 0.1
        } else {
            scale
        };
        let n = |x: usize| ((x as f64 * scale).round() as usize).max(1);
        Self {
            floor_ops: n(base.floor_ops).max(10),
            conc_time: base.conc_time.mul_f64(scale).max(Duration::from_millis(20)),
            bulk_docs: n(base.bulk_docs).max(BULK_BATCH),
            open_docs: n(base.open_docs),
            open_wal_commits: n(base.open_wal_commits),
            compact_docs: n(base.compact_docs),
            auto_docs: n(base.auto_docs).max(CHURN_BATCH),
            levels,
            ..base
        }
    }
}

/// Document ids never used before in this process.
static NEXT_ID: AtomicI64 = AtomicI64::new(0);

fn fresh_id() -> i64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The same shape and size as `doc(i)`, with different content (an overwrite).
fn doc_v(i: i64, version: usize) -> Value {
    json!({"_id": i, "name": format!("user-{i:06}"), "n": version, "pad": "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore."})
}

/// Nearest-rank percentile of sorted `samples` (per mille).
fn pct(sorted: &[u64], per_mille: usize) -> u64 {
    let n = sorted.len();
    sorted[(n * per_mille).div_ceil(1000).clamp(1, n) - 1]
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

fn mib(bytes: u64) -> String {
    format!("{:.1}MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn median_f(v: &mut [f64]) -> f64 {
    spread(v).0
}

fn median_d(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

/// The mount holding `dir`, from `/proc/mounts`: (mount point, device, fs type).
fn mount_of(dir: &Path) -> Option<(String, String, String)> {
    let dir = fs::canonicalize(dir).ok()?;
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (dev, mnt, ty) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(mnt)
                .then(|| (mnt.to_owned(), dev.to_owned(), ty.to_owned()))
        })
        .max_by_key(|(mnt, _, _)| mnt.len())
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`).
/// The process's resident memory, where `/proc` says (Linux).
///
/// Section 2 prints it per round: on a VM that reports freed memory back to its host, a heap
/// growing past the guest's pool of still-backed pages pays about 10 us per new page
/// (`scripts/page_fault_probe.py`), and with 16 or 64 committers that shows in the commit rate.
fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".into(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// Bytes of the files in `dir`: (sum of lengths, sum of allocated blocks), and the file count.
fn dir_size(dir: &Path) -> (u64, u64, usize) {
    let (mut len, mut alloc, mut files) = (0, 0, 0);
    for entry in fs::read_dir(dir).unwrap() {
        let meta = entry.unwrap().metadata().unwrap();
        if meta.is_file() {
            len += meta.len();
            alloc += meta.blocks() * 512;
            files += 1;
        }
    }
    (len, alloc, files)
}

/// Counts WAL frames (one per append + sync in `Immediate` mode) and the commit records in
/// them, reading only what was appended since the last call.
#[derive(Debug, Default)]
struct WalCounter {
    offsets: HashMap<PathBuf, u64>,
}

impl WalCounter {
    /// (frames, records, records per frame) appended to the WAL segments of `dir` since the
    /// last call.
    fn scan(&mut self, dir: &Path) -> (u64, u64, Vec<u64>) {
        let (mut frames, mut records) = (0, 0);
        let mut sizes = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let is_log = path.extension().is_some_and(|e| e == "log");
            if !(name.starts_with("wal-") && is_log) {
                continue;
            }
            let offset = self.offsets.get(&path).copied().unwrap_or(0);
            let mut file = File::open(&path).unwrap();
            file.seek(SeekFrom::Start(offset)).unwrap();
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            let mut p = 0;
            while p + 8 <= bytes.len() {
                let len = u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
                let end = p + 8 + len;
                // No frame is empty: a zero length is the newest segment's preallocated space.
                if len == 0 || end > bytes.len() {
                    break;
                }
                frames += 1;
                let mut q = p + 8;
                let mut in_frame = 0;
                while q + 4 <= end {
                    let rec = u32::from_le_bytes(bytes[q..q + 4].try_into().unwrap()) as usize;
                    q += 4 + rec;
                    in_frame += 1;
                }
                records += in_frame;
                sizes.push(in_frame);
                p = end;
            }
            self.offsets.insert(path, offset + p as u64);
        }
        (frames, records, sizes)
    }
}

/// Documents `ids` built ahead of the clock, in batches of `BULK_BATCH`.
fn batches(ids: std::ops::Range<usize>) -> Vec<Vec<Value>> {
    let ids: Vec<usize> = ids.collect();
    ids.chunks(BULK_BATCH)
        .map(|c| c.iter().map(|&i| doc(common::id(i))).collect())
        .collect()
}

/// Loads documents `0..n` in `insert_many` batches.
fn load(db: &Database, n: usize) {
    let coll = db.collection(COLLECTION).unwrap();
    for batch in batches(0..n) {
        coll.insert_many(batch).unwrap();
    }
}

/// Replaces documents `0..n` with version `v`, `BULK_BATCH` per transaction.
fn overwrite(db: &Database, n: usize, v: usize) {
    let mut start = 0;
    while start < n {
        let end = (start + BULK_BATCH).min(n);
        let mut tx = db.begin();
        for i in (start..end).map(common::id) {
            assert!(tx.replace(COLLECTION, i, doc_v(i, v)).unwrap());
        }
        tx.commit().unwrap();
        start = end;
    }
}

/// A database for building fixtures fast: `None` durability, no automatic checkpoint or
/// compaction, manual GC.
fn builder_db(dir: &Path) -> Database {
    Database::builder()
        .durability(Durability::None)
        .gc(GcPolicy::Manual)
        .auto_compaction(AutoCompaction::Off)
        .checkpoint_wal_bytes(u64::MAX)
        .checkpoint_interval(NEVER)
        .open(dir)
        .unwrap()
}

/// Headline figures for the final table: (metric, value, target).
type Summary = Vec<(String, String, String)>;

/// One section of the bench.
type Section = fn(&Config, &Path, &mut Summary);

// ---------------------------------------------------------------------------------------------
// 1. Floor vs durable commit.

fn section_floor(cfg: &Config, root: &Path, out: &mut Summary) {
    println!("\n## 1. write + fdatasync (floor) vs durable single-document insert");
    let dir = root.join("floor-db");
    let db = Database::builder()
        .durability(Durability::Immediate)
        .open(&dir)
        .unwrap();
    let coll = db.collection(COLLECTION).unwrap();
    // Warm-up: creates the collection; then the WAL bytes of one commit.
    for _ in 0..20 {
        coll.insert(doc(fresh_id())).unwrap();
    }
    let before = db.stats().wal_bytes;
    for _ in 0..100 {
        coll.insert(doc(fresh_id())).unwrap();
    }
    let per_commit = (db.stats().wal_bytes - before) / 100;
    let record = vec![0x5au8; usize::try_from(per_commit).unwrap()];
    let doc_len = serde_json::to_vec(&doc(1_000_000)).unwrap().len();
    println!(
        "document: {doc_len} B of compact JSON; WAL bytes per commit: {per_commit} \
         (frame header + record); floor record: {} B",
        record.len()
    );

    let floor_file = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(root.join("floor.log"))
        .unwrap();
    let ops = u64::try_from(cfg.floor_rounds * cfg.floor_ops + 20).unwrap();
    floor_file
        .write_all_at(&vec![0; usize::try_from(ops).unwrap() * record.len()], 0)
        .unwrap();
    floor_file.sync_all().unwrap();
    let mut floor_offset = 0u64;
    let mut append_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("append.log"))
        .unwrap();
    for _ in 0..20 {
        floor_file.write_all_at(&record, floor_offset).unwrap();
        floor_offset += record.len() as u64;
        floor_file.sync_data().unwrap();
        append_file.write_all(&record).unwrap();
        append_file.sync_data().unwrap();
    }

    let mut floor_lat = Vec::new();
    let mut append_lat = Vec::new();
    let mut commit_lat = Vec::new();
    let mut ratios = Vec::new();
    let mut append_ratios = Vec::new();
    for round in 0..cfg.floor_rounds {
        let docs: Vec<Value> = (0..cfg.floor_ops).map(|_| doc(fresh_id())).collect();
        let mut run_floor = |lat: &mut Vec<u64>| {
            let mut total = 0;
            for _ in 0..cfg.floor_ops {
                let t = Instant::now();
                floor_file.write_all_at(&record, floor_offset).unwrap();
                floor_file.sync_data().unwrap();
                let ns = nanos(t.elapsed());
                floor_offset += record.len() as u64;
                total += ns;
                lat.push(ns);
            }
            total
        };
        let mut run_append = |lat: &mut Vec<u64>| {
            let mut total = 0;
            for _ in 0..cfg.floor_ops {
                let t = Instant::now();
                append_file.write_all(&record).unwrap();
                append_file.sync_data().unwrap();
                let ns = nanos(t.elapsed());
                total += ns;
                lat.push(ns);
            }
            total
        };
        let run_commit = |lat: &mut Vec<u64>, docs: Vec<Value>| {
            let mut total = 0;
            for d in docs {
                let t = Instant::now();
                coll.insert(d).unwrap();
                let ns = nanos(t.elapsed());
                total += ns;
                lat.push(ns);
            }
            total
        };
        let (f, a, c) = if round % 2 == 0 {
            let f = run_floor(&mut floor_lat);
            let a = run_append(&mut append_lat);
            (f, a, run_commit(&mut commit_lat, docs))
        } else {
            let c = run_commit(&mut commit_lat, docs);
            let a = run_append(&mut append_lat);
            (run_floor(&mut floor_lat), a, c)
        };
        ratios.push(c as f64 / f as f64);
        append_ratios.push(a as f64 / f as f64);
    }
    let (med, min, max) = spread(&mut ratios);
    let (amed, amin, amax) = spread(&mut append_ratios);
    append_lat.sort_unstable();
    floor_lat.sort_unstable();
    commit_lat.sort_unstable();
    let line = |name: &str, s: &[u64]| {
        let mean = s.iter().sum::<u64>() / s.len() as u64;
        println!(
            "{name:<28} n={:<6} mean={:<9} p50={:<9} p99={:<9} p99.9={:<9} max={}",
            s.len(),
            fmt_ns(mean),
            fmt_ns(pct(s, 500)),
            fmt_ns(pct(s, 990)),
            fmt_ns(pct(s, 999)),
            fmt_ns(s[s.len() - 1]),
        );
    };
    line("floor write+fdatasync", &floor_lat);
    line("append (growing)+fdatasync", &append_lat);
    line("insert (Immediate)", &commit_lat);
    println!("growing append / floor: median {amed:.2}x (min {amin:.2}x, max {amax:.2}x)");
    println!(
        "commit / floor: median {med:.2}x (min {min:.2}x, max {max:.2}x) over {} rounds of {} \
         ops per side",
        cfg.floor_rounds, cfg.floor_ops
    );
    out.push((
        "durable insert / (write+fdatasync), median per-round ratio".into(),
        format!("{med:.2}x ({min:.2}-{max:.2}x)"),
        "<= 1.3x".into(),
    ));
    out.push((
        "floor p50 / p99".into(),
        format!(
            "{} / {}",
            fmt_ns(pct(&floor_lat, 500)),
            fmt_ns(pct(&floor_lat, 990))
        ),
        String::new(),
    ));
    out.push((
        "growing append+fdatasync p50 / p99 (reference)".into(),
        format!(
            "{} / {} ({amed:.2}x the floor)",
            fmt_ns(pct(&append_lat, 500)),
            fmt_ns(pct(&append_lat, 990))
        ),
        String::new(),
    ));
    out.push((
        "durable insert p50 / p99".into(),
        format!(
            "{} / {}",
            fmt_ns(pct(&commit_lat, 500)),
            fmt_ns(pct(&commit_lat, 990))
        ),
        String::new(),
    ));
    db.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 2. Concurrent committers.

/// Result of one timed level.
struct LevelRun {
    commits: u64,
    elapsed: Duration,
    latencies: Vec<u64>,
}

/// Runs `threads` threads calling their own `commit` (built by `make`) in a loop for `time`.
fn run_level<F>(threads: usize, time: Duration, make: impl Fn() -> F) -> LevelRun
where
    F: FnMut() + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let mut commit = make();
            let stop = Arc::clone(&stop);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut lat = Vec::with_capacity(4096);
                barrier.wait();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    commit();
                    lat.push(nanos(t.elapsed()));
                }
                lat
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    thread::sleep(time);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.join().unwrap());
    }
    let elapsed = started.elapsed();
    LevelRun {
        commits: latencies.len() as u64,
        elapsed,
        latencies,
    }
}

/// The zeros `RawGroupCommit` keeps ahead of its writes, a piece at a time.
static RAW_ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// The queue of `RawGroupCommit`.
#[derive(Debug, Default)]
struct RawQueue {
    batch: Vec<u8>,
    last: u64,
    done: u64,
    flushing: bool,
    /// Syncs done so far.
    syncs: u64,
}

/// The textbook group-commit protocol (enqueue under a lock; whoever finds no flush running
/// takes the whole queue, writes it with one write, `sync_data`s, marks it done and
/// `notify_all`s; the others block on the condition variable) on a bare file, with no database
/// around it. It keeps 1 MiB chunks of zeros written ahead of its writes, as the WAL does, so
/// the two sides pay the same sync.
#[derive(Debug)]
struct RawGroupCommit {
    queue: Mutex<RawQueue>,
    cond: Condvar,
    /// The file, where the next write goes, and how far it is zero-filled (1 MiB chunks kept
    /// ahead, as the WAL does).
    file: Mutex<(File, u64, u64)>,
}

impl RawGroupCommit {
    fn new(path: &Path) -> Self {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(path)
            .unwrap();
        Self {
            queue: Mutex::new(RawQueue::default()),
            cond: Condvar::new(),
            file: Mutex::new((file, 0, 0)),
        }
    }

    fn commit(&self, record: &[u8]) {
        let mut q = self.queue.lock().unwrap();
        q.last += 1;
        let seq = q.last;
        q.batch.extend_from_slice(record);
        loop {
            if q.done >= seq {
                return;
            }
            if q.flushing {
                q = self.cond.wait(q).unwrap();
                continue;
            }
            q.flushing = true;
            let batch = std::mem::take(&mut q.batch);
            let last = q.last;
            drop(q);
            {
                let mut guard = self.file.lock().unwrap();
                let (file, at, allocated) = &mut *guard;
                let end = *at + batch.len() as u64;
                file.write_all_at(&batch, *at).unwrap();
                *at = end;
                *allocated = (*allocated).max(end);
                if *allocated - end < 1 << 20 {
                    let target = (end.div_ceil(1 << 20) + 1) << 20;
                    // From one static block, as the WAL does: a buffer allocated per fill
                    // leaves the zero page mapped into the heap the engine's runs share
                    // (see `storage::segment_log::ZEROS`).
                    while *allocated < target {
                        let piece = RAW_ZEROS
                            .len()
                            .min(usize::try_from(target - *allocated).unwrap());
                        file.write_all_at(&RAW_ZEROS[..piece], *allocated).unwrap();
                        *allocated += piece as u64;
                    }
                }
                file.sync_data().unwrap();
            }
            q = self.queue.lock().unwrap();
            q.flushing = false;
            q.done = last;
            q.syncs += 1;
            self.cond.notify_all();
        }
    }
}

fn section_concurrent(cfg: &Config, root: &Path, out: &mut Summary) {
    println!(
        "\n## 2. durable commits/s with concurrent committers (Immediate, auto-commit insert), \
         and the same group-commit protocol on a bare file (raw)"
    );
    let dir = root.join("concurrent-db");
    let db = Database::builder()
        .durability(Durability::Immediate)
        .checkpoint_wal_bytes(u64::MAX)
        .checkpoint_interval(NEVER)
        .open(&dir)
        .unwrap();
    db.collection(COLLECTION)
        .unwrap()
        .insert(doc(fresh_id()))
        .unwrap();
    let record_len = {
        let before = db.stats().wal_bytes;
        db.collection(COLLECTION)
            .unwrap()
            .insert(doc(fresh_id()))
            .unwrap();
        // The raw model frames nothing: its record is the whole WAL frame of one commit.
        usize::try_from(db.stats().wal_bytes - before).unwrap()
    };
    let raw = Arc::new(RawGroupCommit::new(&root.join("raw-group-commit.log")));
    let mut counter = WalCounter::default();
    counter.scan(&dir);
    let n = cfg.levels.len();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut raw_rates: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut lat: Vec<Vec<u64>> = vec![Vec::new(); n];
    let mut frames = vec![0u64; n];
    let mut records = vec![0u64; n];
    let mut commits = vec![0u64; n];
    let mut raw_syncs = vec![0u64; n];
    let mut raw_commits = vec![0u64; n];
    let mut sizes: Vec<Vec<u64>> = vec![Vec::new(); n];
    for round in 0..cfg.conc_rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..n).collect()
        } else {
            (0..n).rev().collect()
        };
        for &li in &order {
            let threads = cfg.levels[li];
            let engine = || {
                let coll = db.collection(COLLECTION).unwrap();
                move || {
                    coll.insert(doc(fresh_id())).unwrap();
                }
            };
            let raw_run = || {
                let syncs = raw.queue.lock().unwrap().syncs;
                let record = vec![0x5au8; record_len];
                let r = run_level(threads, cfg.conc_time, || {
                    let raw = Arc::clone(&raw);
                    let record = record.clone();
                    move || raw.commit(&record)
                });
                (r, raw.queue.lock().unwrap().syncs - syncs)
            };
            let (r, (rr, rs)) = if round % 2 == 0 {
                let r = run_level(threads, cfg.conc_time, engine);
                (r, raw_run())
            } else {
                let rr = raw_run();
                (run_level(threads, cfg.conc_time, engine), rr)
            };
            let (f, rec, sz) = counter.scan(&dir);
            frames[li] += f;
            records[li] += rec;
            commits[li] += r.commits;
            sizes[li].extend(sz);
            rates[li].push(r.commits as f64 / r.elapsed.as_secs_f64());
            lat[li].extend(r.latencies);
            raw_rates[li].push(rr.commits as f64 / rr.elapsed.as_secs_f64());
            raw_syncs[li] += rs;
            raw_commits[li] += rr.commits;
        }
        let line: Vec<String> = (0..n)
            .map(|li| {
                format!(
                    "{}t {:.0}/s (raw {:.0}/s)",
                    cfg.levels[li], rates[li][round], raw_rates[li][round]
                )
            })
            .collect();
        println!(
            "  round {round:>2} (order {:?}): {}; {} documents, process RSS {}",
            order.iter().map(|&li| cfg.levels[li]).collect::<Vec<_>>(),
            line.join(", "),
            commits.iter().sum::<u64>() + 2,
            resident().map_or_else(|| "unknown".into(), mib)
        );
    }
    // Median (min, max) over rounds of a[li][round] / b[round].
    let per_round = |a: &[f64], b: &[f64]| -> (f64, f64, f64) {
        let mut v: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
        spread(&mut v)
    };
    println!(
        "{:<8} {:>10} {:>22} {:>10} {:>22} {:>22} {:>9} {:>9} {:>8} {:>8}",
        "threads",
        "commits/s",
        "vs first level",
        "raw /s",
        "raw vs first level",
        "engine / raw",
        "p50",
        "p99",
        "c/fsync",
        "raw c/f"
    );
    let fmt3 = |(m, lo, hi): (f64, f64, f64)| format!("{m:.2}x ({lo:.2}-{hi:.2}x)");
    for li in 0..n {
        let med = median_f(&mut rates[li].clone());
        let raw_med = median_f(&mut raw_rates[li].clone());
        let speedup = per_round(&rates[li], &rates[0]);
        let raw_speedup = per_round(&raw_rates[li], &raw_rates[0]);
        let vs_raw = per_round(&rates[li], &raw_rates[li]);
        lat[li].sort_unstable();
        let cpf = records[li] as f64 / frames[li].max(1) as f64;
        let raw_cpf = raw_commits[li] as f64 / raw_syncs[li].max(1) as f64;
        println!(
            "{:<8} {:>10.0} {:>22} {:>10.0} {:>22} {:>22} {:>9} {:>9} {:>8.2} {:>8.2}",
            cfg.levels[li],
            med,
            fmt3(speedup),
            raw_med,
            fmt3(raw_speedup),
            fmt3(vs_raw),
            fmt_ns(pct(&lat[li], 500)),
            fmt_ns(pct(&lat[li], 990)),
            cpf,
            raw_cpf,
        );
        let sz = &mut sizes[li];
        sz.sort_unstable();
        if !sz.is_empty() {
            let ones = sz.iter().filter(|&&x| x == 1).count();
            // The batch size the median commit rode in.
            let mut weighted: Vec<u64> = sz.iter().flat_map(|&x| vec![x; x as usize]).collect();
            weighted.sort_unstable();
            let secs_total = cfg.conc_time.as_secs_f64() * cfg.conc_rounds as f64;
            println!(
                "  engine, {} threads: {} fsyncs ({:.0}/s, one per {:.0}us); commits per fsync \
                 p50 {} p90 {} max {}; fsyncs carrying 1 commit {:.1}%; batch of the median \
                 commit {}",
                cfg.levels[li],
                sz.len(),
                sz.len() as f64 / secs_total,
                secs_total * 1e6 / sz.len() as f64,
                pct(sz, 500),
                pct(sz, 900),
                sz[sz.len() - 1],
                100.0 * ones as f64 / sz.len() as f64,
                pct(&weighted, 500),
            );
        }
        if records[li] != commits[li] {
            println!(
                "  note: {} commits acknowledged but {} records counted in the WAL",
                commits[li], records[li]
            );
        }
        out.push((
            format!("durable commits/s, {} thread(s) (median)", cfg.levels[li]),
            format!(
                "{med:.0}/s = {:.2}x first level; {cpf:.2} commits/fsync; raw group commit \
                 {raw_med:.0}/s = {:.2}x",
                speedup.0, raw_speedup.0
            ),
            if cfg.levels[li] == 16 {
                ">= 10x 1 thread".into()
            } else {
                String::new()
            },
        ));
    }
    println!(
        "{} rounds of {} per level and side; ratios are medians (min-max) of per-round ratios; \
         raw record {record_len} B",
        cfg.conc_rounds,
        secs(cfg.conc_time)
    );
    db.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 3. Bulk load.

fn section_bulk(cfg: &Config, root: &Path, out: &mut Summary) {
    println!(
        "\n## 3. bulk insert_many of {} docs, {BULK_BATCH} per commit",
        cfg.bulk_docs
    );
    let n = cfg.bulk_docs;
    let mut imm_rate = Vec::new();
    let mut imm_close_rate = Vec::new();
    let mut none_rate = Vec::new();
    let mut ratios = Vec::new();
    for round in 0..cfg.bulk_rounds {
        let run = |durability: Durability| -> (Duration, Duration) {
            let dir = root.join(format!("bulk-{round}-{durability:?}"));
            let db = Database::builder()
                .durability(durability)
                .open(&dir)
                .unwrap();
            let coll = db.collection(COLLECTION).unwrap();
            let docs = batches(0..n);
            let started = Instant::now();
            for batch in docs {
                coll.insert_many(batch).unwrap();
            }
            let loaded = started.elapsed();
            db.close().unwrap();
            let closed = started.elapsed();
            let (len, _, files) = dir_size(&dir);
            println!(
                "round {round} {durability:?}: inserts {} ({:.0} docs/s), incl. close {} \
                 ({:.0} docs/s); {files} files, {} on disk",
                secs(loaded),
                n as f64 / loaded.as_secs_f64(),
                secs(closed),
                n as f64 / closed.as_secs_f64(),
                mib(len),
            );
            drop(db);
            fs::remove_dir_all(&dir).unwrap();
            (loaded, closed)
        };
        let ((imm, imm_c), (_, none_c)) = if round % 2 == 0 {
            let a = run(Durability::Immediate);
            (a, run(Durability::None))
        } else {
            let b = run(Durability::None);
            (run(Durability::Immediate), b)
        };
        imm_rate.push(n as f64 / imm.as_secs_f64());
        imm_close_rate.push(n as f64 / imm_c.as_secs_f64());
        none_rate.push(n as f64 / none_c.as_secs_f64());
        ratios.push(none_c.as_secs_f64() / imm.as_secs_f64());
    }
    let (im, imin, imax) = spread(&mut imm_rate);
    let (nm, nmin, nmax) = spread(&mut none_rate);
    let icm = median_f(&mut imm_close_rate);
    let (rm, _, _) = spread(&mut ratios);
    println!(
        "Immediate: median {im:.0} docs/s (min {imin:.0}, max {imax:.0}); incl. close {icm:.0} \
         docs/s"
    );
    println!(
        "None + close: median {nm:.0} docs/s (min {nmin:.0}, max {nmax:.0}); time None+close / \
         Immediate: median {rm:.2}x over {} rounds",
        cfg.bulk_rounds
    );
    out.push((
        format!("bulk insert_many {n} docs, Immediate (10k/commit)"),
        format!("{im:.0} docs/s"),
        String::new(),
    ));
    out.push((
        format!("bulk insert_many {n} docs, None + close()"),
        format!("{nm:.0} docs/s"),
        String::new(),
    ));
}

// ---------------------------------------------------------------------------------------------
// 4. Open time.

/// Times `repeats` opens of `dir` (default options), checking the document count each time.
fn time_opens(dir: &Path, repeats: usize, docs: u64, label: &str) -> Duration {
    let mut times = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let db = Database::open(dir).unwrap();
        let t = started.elapsed();
        let stats = db.stats();
        assert_eq!(stats.documents, docs, "{label}: documents after open");
        times.push(t);
        db.close().unwrap();
        drop(db);
    }
    let (len, _, files) = dir_size(dir);
    let med = median_d(&mut times);
    println!(
        "{label:<52} median {} (min {}, max {}) over {repeats} opens; {files} files, {}",
        secs(med),
        secs(times[0]),
        secs(times[times.len() - 1]),
        mib(len),
    );
    med
}

/// Commits `n` single inserts (one WAL frame each) with no checkpoint, then drops the database.
fn wal_commits(dir: &Path, first: i64, n: usize) {
    let db = builder_db(dir);
    let coll = db.collection(COLLECTION).unwrap();
    for i in 0..n {
        coll.insert(doc(first + common::id(i))).unwrap();
    }
    let stats = db.stats();
    println!(
        "  wrote {n} single-insert commits: WAL {}, last checkpoint {:?}",
        mib(stats.wal_bytes),
        stats.last_checkpoint
    );
    drop(db);
}

fn section_open(cfg: &Config, root: &Path, out: &mut Summary) {
    let n = cfg.open_docs;
    let wal_n = cfg.open_wal_commits;
    println!("\n## 4. open time ({n} docs; {wal_n} commits in the WAL)");
    let dir = root.join("open-db");
    {
        // The load as a user would do it: default checkpoint triggers (64 MiB of WAL).
        let started = Instant::now();
        let db = Database::builder()
            .durability(Durability::None)
            .open(&dir)
            .unwrap();
        load(&db, n);
        db.checkpoint().unwrap();
        db.close().unwrap();
        println!("  built in {}", secs(started.elapsed()));
    }
    let after_ckpt = time_opens(
        &dir,
        cfg.open_repeats,
        n as u64,
        "(a) after checkpoint (runs as the load left them)",
    );
    {
        let db = builder_db(&dir);
        let stats = db.compact().unwrap();
        println!("  compacted: {stats:?}");
        db.close().unwrap();
    }
    let after_compact = time_opens(
        &dir,
        cfg.open_repeats,
        n as u64,
        "(b) after compact (one run)",
    );
    let crash_dir = root.join("open-crash-db");
    wal_commits(&crash_dir, 0, wal_n);
    let crash_only = time_opens(
        &crash_dir,
        cfg.open_repeats,
        wal_n as u64,
        "(c) crash image: no checkpoint, WAL commits only",
    );
    fs::remove_dir_all(&crash_dir).unwrap();
    wal_commits(&dir, common::id(n), wal_n);
    let crash_on_top = time_opens(
        &dir,
        cfg.open_repeats,
        (n + wal_n) as u64,
        "(d) (b) + WAL commits since its checkpoint (crash)",
    );
    fs::remove_dir_all(&dir).unwrap();
    out.push((
        format!("open {n} docs after checkpoint (load's runs / compacted)"),
        format!("{} / {}", secs(after_ckpt), secs(after_compact)),
        String::new(),
    ));
    out.push((
        format!("open after crash: {wal_n} WAL commits alone / on top of {n} docs"),
        format!("{} / {}", secs(crash_only), secs(crash_on_top)),
        String::new(),
    ));
}

// ---------------------------------------------------------------------------------------------
// 5. Compaction throughput.

fn section_compact(cfg: &Config, root: &Path, out: &mut Summary) {
    let n = cfg.compact_docs;
    println!(
        "\n## 5. compaction throughput ({n} docs, each round: overwrite all, checkpoint, compact)"
    );
    let dir = root.join("compact-db");
    let db = builder_db(&dir);
    load(&db, n);
    db.checkpoint().unwrap();
    let mut rates = Vec::new();
    for round in 0..cfg.compact_rounds {
        overwrite(&db, n, round + 1);
        db.checkpoint().unwrap();
        db.gc();
        let started = Instant::now();
        let s = db.compact().unwrap();
        let wall = started.elapsed();
        let rate = s.bytes_before as f64 / 1e6 / wall.as_secs_f64();
        println!(
            "round {round}: merged {} runs, {} -> {}, {} docs in {} ({rate:.1} MB/s read, {:.1} \
             MB/s written)",
            s.runs_merged,
            mib(s.bytes_before),
            mib(s.bytes_after),
            s.documents,
            secs(wall),
            s.bytes_after as f64 / 1e6 / wall.as_secs_f64(),
        );
        assert_eq!(s.documents, n as u64);
        rates.push(rate);
    }
    let (med, min, max) = spread(&mut rates);
    println!("compaction: median {med:.1} MB/s of data files read (min {min:.1}, max {max:.1})");
    out.push((
        format!("compaction throughput ({n} docs, 2 runs)"),
        format!("{med:.1} MB/s read"),
        String::new(),
    ));
    db.close().unwrap();
    drop(db);
    fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 6. Disk size under automatic compaction.

fn section_auto(cfg: &Config, root: &Path, out: &mut Summary) {
    let n = cfg.auto_docs;
    let passes = cfg.auto_passes;
    println!(
        "\n## 6. disk size under automatic compaction ({n} docs overwritten {passes} times, \
         {CHURN_BATCH} per transaction)"
    );
    let dir = root.join("auto-db");
    let db = Database::builder()
        .durability(Durability::Immediate)
        .auto_compaction(AutoCompaction::default())
        .checkpoint_wal_bytes(1 << 20)
        .checkpoint_interval(Duration::from_secs(1))
        .open(&dir)
        .unwrap();
    let coll = db.collection(COLLECTION).unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(CHURN_BATCH) {
        coll.insert_many(chunk.iter().map(|&i| doc(common::id(i))))
            .unwrap();
    }
    let mut rng = Rng::new(0x00d1_5c5a_1e00_0006);
    let mut peak = 0.0f64;
    let ratio = |s: &snapbase::Stats| (s.data_bytes + s.wal_bytes) as f64 / s.live_bytes as f64;
    let started = Instant::now();
    for pass in 0..passes {
        let mut order: Vec<i64> = (0..n).map(common::id).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.id_below(i + 1) as usize);
        }
        for chunk in order.chunks(CHURN_BATCH) {
            let mut tx = db.begin();
            for &i in chunk {
                assert!(tx.replace(COLLECTION, i, doc_v(i, pass + 1)).unwrap());
            }
            tx.commit().unwrap();
            let s = db.stats();
            if s.live_bytes > 0 {
                peak = peak.max(ratio(&s));
            }
        }
    }
    let churn = started.elapsed();
    let end = db.stats();
    println!(
        "churn took {} ({:.0} replaces/s); at its end: data {}, wal {}, live {}, ratio {:.2}x",
        secs(churn),
        (n * passes) as f64 / churn.as_secs_f64(),
        mib(end.data_bytes),
        mib(end.wal_bytes),
        mib(end.live_bytes),
        ratio(&end)
    );
    // Settle: no change in the file counters for 2 s and no compaction running (60 s at most).
    let key = |s: &snapbase::Stats| {
        (
            s.data_bytes,
            s.wal_bytes,
            s.live_bytes,
            s.compactions,
            s.last_checkpoint,
        )
    };
    let settle_start = Instant::now();
    let mut last = key(&db.stats());
    let mut stable_since = Instant::now();
    while settle_start.elapsed() < Duration::from_secs(60) {
        thread::sleep(Duration::from_millis(100));
        let s = db.stats();
        if key(&s) != last || s.compaction_progress.is_some() {
            last = key(&s);
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= Duration::from_secs(2) {
            break;
        }
    }
    let s = db.stats();
    let (len, alloc, files) = dir_size(&dir);
    let r = ratio(&s);
    println!(
        "settled after {}: data {}, wal {}, live {}, reclaimable {}; compactions {}, \
         reclaimed {}",
        secs(settle_start.elapsed()),
        mib(s.data_bytes),
        mib(s.wal_bytes),
        mib(s.live_bytes),
        mib(s.reclaimable_bytes),
        s.compactions,
        mib(s.bytes_reclaimed),
    );
    println!(
        "(data + wal) / live = {r:.3}x; directory: {files} files, {} by length ({:.3}x live), {} \
         allocated ({:.3}x live); peak ratio during the churn {peak:.2}x",
        mib(len),
        len as f64 / s.live_bytes as f64,
        mib(alloc),
        alloc as f64 / s.live_bytes as f64,
    );
    out.push((
        "(data + wal) / live after automatic compaction settles".into(),
        format!(
            "{r:.3}x (directory {:.3}x live; peak during churn {peak:.2}x)",
            len as f64 / s.live_bytes as f64
        ),
        "<= 1.3x".into(),
    ));
    db.close().unwrap();
    drop(db);
    fs::remove_dir_all(&dir).unwrap();
}

fn main() {
    let args = Args::parse();
    let cfg = Config::new(args.mode, args.scale, args.levels.clone());
    let cwd = std::env::current_dir().unwrap();
    let root = cwd
        .join("target")
        .join(format!("durability-bench-{}", std::process::id()));
    fs::create_dir_all(&root).unwrap();
    let mount = mount_of(&root);
    println!(
        "# durability bench: mode {:?}, scale {}",
        args.mode, args.scale
    );
    match &mount {
        Some((mnt, dev, ty)) => println!(
            "directory {} on {ty} ({dev} mounted at {mnt})",
            root.display()
        ),
        None => println!("directory {} (file system unknown)", root.display()),
    }
    println!(
        "available parallelism: {}",
        thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    println!("config: {cfg:?}");
    println!("load average at start: {}", loadavg());
    let started = Instant::now();
    let mut summary = Summary::new();
    let sections: [(u32, Section); 6] = [
        (1, section_floor),
        (2, section_concurrent),
        (3, section_bulk),
        (4, section_open),
        (5, section_compact),
        (6, section_auto),
    ];
    for (id, section) in sections {
        if args.runs(id) {
            let t = Instant::now();
            section(&cfg, &root, &mut summary);
            println!("(section {id} took {})", secs(t.elapsed()));
        }
    }
    println!(
        "\n## summary (file system: {})",
        mount.map_or("?".into(), |m| m.2)
    );
    println!("| metric | measured | target |\n|---|---|---|");
    for (metric, value, target) in &summary {
        println!("| {metric} | {value} | {target} |");
    }
    println!(
        "total {}; load average at end: {} (other processes share this machine's CPUs and disk)",
        secs(started.elapsed()),
        loadavg()
    );
    if args.keep {
        println!("kept {}", root.display());
    } else {
        fs::remove_dir_all(&root).unwrap();
    }
}

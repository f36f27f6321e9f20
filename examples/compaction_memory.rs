//! The peak extra memory of `Database::compact()` at several database sizes (issue 3: it must
//! not grow with the size of the database).
//!
//! For each size N: a database in a fresh directory under `target/` gets documents `0..N`
//! (about 150 bytes of JSON each) in `insert_many` batches of 10k, a checkpoint (data run 1),
//! then every document replaced once and a second checkpoint (run 2), so that `compact()` has
//! two runs of N entries each to merge and half of what it reads to drop. Background work is
//! off (manual GC, no automatic checkpoint or compaction), a GC pass frees the superseded
//! versions, and then:
//!
//! - `baseline` = heap bytes live just before `compact()`;
//! - the peak is reset to the baseline, `compact()` runs, and `peak - baseline` is its peak
//!   extra memory; `after - baseline` is what it left allocated.
//!
//! Then the database is closed and opened again, and the heap the open leaves allocated is
//! divided by N (`heap/doc reopened`), beside the same for the database as it was built
//! (`heap/doc built`: the baseline divided by N). The first holds documents parsed from the
//! data run; the second, documents as the program built them with `json!`.
//!
//! Heap bytes are counted by a `#[global_allocator]` wrapper around `std::alloc::System` (bytes
//! requested, `Layout::size`); nothing else allocates while `compact()` runs. The process's peak
//! RSS (`VmHWM`) is printed too, for scale: it is dominated by the in-memory documents.
//!
//! Memory needed: about 1.1 KB per document for the in-memory database (5M documents: ~6 GB), plus up to 500k superseded versions between GC passes.
//!
//! Run: `cargo run --release --example compaction_memory -- 100000 1000000 5000000`
//! (sizes default to 100000 and 1000000; `--keep` keeps the directories).
#![allow(
    unsafe_code,
    reason = "the counting global allocator; every block has a SAFETY note"
)]
#![allow(clippy::unwrap_used, reason = "an example aborts on any engine error")]
#![allow(
    clippy::cast_precision_loss,
    reason = "byte and document counts are only divided for display"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use snapbase::{AutoCompaction, Database, Durability, GcPolicy};

/// Live heap bytes: allocated minus freed, as requested by callers (`Layout::size`).
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The highest value `LIVE` reached since the last `reset_peak`.
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live and peak bytes.
struct Counting;

impl Counting {
    fn grew(bytes: usize) {
        let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }

    fn shrank(bytes: usize) {
        LIVE.fetch_sub(bytes, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System`, which implements `GlobalAlloc` correctly, with the
// caller's arguments unchanged; the only addition is updating atomic counters, which neither
// allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller upholds `alloc`'s contract, which we pass on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            Self::grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            Self::grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        Self::shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller upholds the rest.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Grow first so the peak counts the moment both blocks may exist.
            Self::grew(new_size);
            Self::shrank(layout.size());
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Documents per `insert_many` commit and per replacing transaction.
const BATCH: usize = 10_000;
/// Replaced documents between two GC passes while building.
const GC_EVERY: usize = 500_000;

/// 100 characters of padding, so that a document is about 150 bytes of compact JSON.
const PAD: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore.";

fn doc(i: i64, version: u32) -> Value {
    json!({"_id": i, "name": format!("user-{i:06}"), "n": version, "pad": PAD})
}

fn id(i: usize) -> i64 {
    i64::try_from(i).unwrap()
}

fn live() -> usize {
    LIVE.load(Ordering::SeqCst)
}

fn reset_peak() -> usize {
    let now = live();
    PEAK.store(now, Ordering::SeqCst);
    now
}

fn peak() -> usize {
    PEAK.load(Ordering::SeqCst)
}

fn mib(bytes: f64) -> String {
    let m = bytes / (1024.0 * 1024.0);
    // No "-0.00".
    let m = if m.abs() < 0.005 { 0.0 } else { m };
    format!("{m:.2} MiB")
}

/// `a - b` in bytes, signed.
fn diff(a: usize, b: usize) -> f64 {
    a as f64 - b as f64
}

/// Peak resident set size of this process, from `/proc/self/status`.
fn vm_hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

/// One row of the final table.
struct Row {
    docs: usize,
    runs: usize,
    bytes_before: u64,
    bytes_after: u64,
    baseline: usize,
    extra_peak: f64,
    left: f64,
    duration: Duration,
    /// Heap bytes the database held right after being opened again.
    reopened: f64,
}

fn measure(dir: &Path, n: usize) -> Row {
    let started = Instant::now();
    let db = Database::builder()
        .durability(Durability::None)
        .gc(GcPolicy::Manual)
        .auto_compaction(AutoCompaction::Off)
        .checkpoint_wal_bytes(u64::MAX)
        .checkpoint_interval(Duration::from_secs(1_000_000))
        .open(dir)
        .unwrap();
    let coll = db.collection("c").unwrap();
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        coll.insert_many((start..end).map(|i| doc(id(i), 0)))
            .unwrap();
        start = end;
    }
    db.checkpoint().unwrap();
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        let mut tx = db.begin();
        for i in (start..end).map(id) {
            assert!(tx.replace("c", i, doc(i, 1)).unwrap());
        }
        tx.commit().unwrap();
        start = end;
        if start % GC_EVERY == 0 {
            // A pass walks every document, so not after every batch.
            db.gc();
        }
    }
    db.checkpoint().unwrap();
    db.gc();
    println!(
        "{n} docs: built in {:.1}s; stats before compact: {:?}",
        started.elapsed().as_secs_f64(),
        db.stats()
    );

    let baseline = reset_peak();
    let stats = db.compact().unwrap();
    let top = peak();
    let after = live();
    println!("{n} docs: {stats:?}");
    println!(
        "{n} docs: heap before compact {}, peak during {}, after {}; extra peak {}, left {}; \
         process VmHWM so far {}",
        mib(baseline as f64),
        mib(top as f64),
        mib(after as f64),
        mib(diff(top, baseline)),
        mib(diff(after, baseline)),
        vm_hwm(),
    );
    assert_eq!(stats.documents, n as u64);
    db.close().unwrap();
    drop(db);
    let before_open = live();
    let db = Database::builder()
        .gc(GcPolicy::Manual)
        .auto_compaction(AutoCompaction::Off)
        .open(dir)
        .unwrap();
    let reopened = diff(live(), before_open);
    assert_eq!(db.collection("c").unwrap().len().unwrap(), n);
    println!(
        "{n} docs: heap per document as built {:.0} B, after reopening {:.0} B",
        baseline as f64 / n as f64,
        reopened / n as f64
    );
    db.close().unwrap();
    drop(db);
    Row {
        docs: n,
        runs: stats.runs_merged,
        bytes_before: stats.bytes_before,
        bytes_after: stats.bytes_after,
        baseline,
        extra_peak: diff(top, baseline),
        left: diff(after, baseline),
        duration: stats.duration,
        reopened,
    }
}

fn main() {
    let mut sizes = Vec::new();
    let mut keep = false;
    for arg in std::env::args().skip(1) {
        if arg == "--keep" {
            keep = true;
        } else {
            for s in arg.split(',') {
                sizes.push(s.trim().replace('_', "").parse::<usize>().unwrap());
            }
        }
    }
    if sizes.is_empty() {
        sizes = vec![100_000, 1_000_000];
    }
    let root = std::env::current_dir()
        .unwrap()
        .join("target")
        .join(format!("compaction-memory-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    println!("directory {}; sizes {sizes:?}", root.display());

    let mut rows = Vec::new();
    for &n in &sizes {
        let dir = root.join(format!("db-{n}"));
        rows.push(measure(&dir, n));
        if !keep {
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    println!(
        "\n| documents | runs merged | data before | data after | heap before compact | \
         compact() extra peak | left after | time | MB/s read | heap/doc built | heap/doc reopened |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2}s | {:.0} | {:.0} B | {:.0} B |",
            r.docs,
            r.runs,
            mib(r.bytes_before as f64),
            mib(r.bytes_after as f64),
            mib(r.baseline as f64),
            mib(r.extra_peak),
            mib(r.left),
            r.duration.as_secs_f64(),
            r.bytes_before as f64 / 1e6 / r.duration.as_secs_f64(),
            r.baseline as f64 / r.docs as f64,
            r.reopened / r.docs as f64,
        );
    }
    if !keep {
        std::fs::remove_dir_all(&root).unwrap();
    }
}

//! Helpers shared by the snapbase benches: the document generator, a small deterministic PRNG,
//! loaders for snapbase and for the two baselines (`RwLock<HashMap<i64, Arc<Value>>>` and
//! `DashMap<i64, Arc<Value>>`), and the scale switch between `cargo bench` and `cargo test`.
#![allow(
    dead_code,
    reason = "each bench binary compiles this module and uses only some of its helpers"
)]
#![allow(
    clippy::disallowed_types,
    reason = "DashMap is a baseline here; the loom concern applies only to src/"
)]

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use serde_json::{json, Value};
use snapbase::Collection;

/// The collection every bench uses.
pub const COLLECTION: &str = "c";

/// Documents per `insert_many` call when loading a database.
const LOAD_CHUNK: usize = 10_000;

/// 100 characters of padding, so that a document is about 150 bytes of compact JSON.
const PAD: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore.";

/// Baseline 1: a hash map behind a std reader-writer lock.
pub type RwLockMap = RwLock<HashMap<i64, Arc<Value>>>;

/// Baseline 2: a bare sharded concurrent map.
pub type Dash = DashMap<i64, Arc<Value>>;

/// True when the binary runs as a real benchmark (`cargo bench`), false when it runs as a smoke
/// test (`cargo test --benches`, `cargo bench -- --test`) or only lists benches (`--list`).
/// Criterion measures only when `--bench` is given without `--test`.
pub fn full_scale() -> bool {
    let mut bench = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--bench" => bench = true,
            "--test" | "--list" => return false,
            _ => {}
        }
    }
    bench
}

/// `full` when benchmarking, `smoke` otherwise (keeps `cargo test --all-targets` fast).
pub fn scaled(full: usize, smoke: usize) -> usize {
    if full_scale() {
        full
    } else {
        smoke
    }
}

/// A document of about 150 bytes of compact JSON:
/// `{"_id":i,"name":"user-i","n":i,"pad":"<100 chars>"}`.
pub fn doc(i: i64) -> Value {
    json!({"_id": i, "name": format!("user-{i:06}"), "n": i, "pad": PAD})
}

/// A small document (about 40 bytes of compact JSON) for the commit benches.
pub fn small_doc(i: i64) -> Value {
    json!({"_id": i, "name": "item", "n": i})
}

/// Converts a count or an index to a document id.
pub fn id(i: usize) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

/// The `SplitMix64` generator: tiny, fast and deterministic; plenty for picking random ids.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A random document id in `0..n`.
    pub fn id_below(&mut self, n: usize) -> i64 {
        let n = u64::try_from(n).unwrap_or(u64::MAX).max(1);
        i64::try_from(self.next_u64() % n).unwrap_or(0)
    }
}

/// `count` random ids in `0..n_docs`; `count` must be a power of two (see `IdCycle`).
pub fn random_ids(n_docs: usize, count: usize, seed: u64) -> Vec<i64> {
    assert!(count.is_power_of_two(), "count must be a power of two");
    let mut rng = Rng::new(seed);
    (0..count).map(|_| rng.id_below(n_docs)).collect()
}

/// Walks a pre-generated list of random ids forever, starting anywhere in it.
#[derive(Debug)]
pub struct IdCycle<'a> {
    ids: &'a [i64],
    mask: usize,
    pos: usize,
}

impl<'a> IdCycle<'a> {
    /// A cycle over `ids` (whose length is a power of two) starting at `start`.
    pub fn new(ids: &'a [i64], start: usize) -> Self {
        assert!(ids.len().is_power_of_two(), "length must be a power of two");
        Self {
            ids,
            mask: ids.len() - 1,
            pos: start,
        }
    }

    /// The next id.
    #[inline]
    pub fn next_id(&mut self) -> i64 {
        let id = self.ids[self.pos & self.mask];
        self.pos = self.pos.wrapping_add(1);
        id
    }
}

/// Inserts documents `0..n` (see `doc`) with `insert_many`, `LOAD_CHUNK` per commit.
pub fn load_snapbase(coll: &Collection, n: usize) {
    let mut start = 0;
    while start < n {
        let end = (start + LOAD_CHUNK).min(n);
        let inserted = coll.insert_many((start..end).map(|i| doc(id(i)))).unwrap();
        assert_eq!(inserted.len(), end - start);
        start = end;
    }
}

/// Both baselines holding documents `0..n`; they share the same `Arc<Value>`s.
pub fn build_baselines(n: usize) -> (RwLockMap, Dash) {
    let mut map = HashMap::with_capacity(n);
    let dash = DashMap::with_capacity(n);
    for i in 0..n {
        let v = Arc::new(doc(id(i)));
        dash.insert(id(i), Arc::clone(&v));
        map.insert(id(i), v);
    }
    (RwLock::new(map), dash)
}

/// Formats nanoseconds compactly (`812ns`, `3.41us`, `12.50ms`).
pub fn fmt_ns(ns: u64) -> String {
    #[allow(
        clippy::cast_precision_loss,
        reason = "display only; nanosecond counts far below 2^52"
    )]
    let f = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.2}us", f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", f / 1e6)
    } else {
        format!("{:.2}s", f / 1e9)
    }
}

/// Nanoseconds in a duration, saturating.
pub fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Median, minimum and maximum of `ratios` (which it sorts), for the interleaved comparisons
/// that the benches print after criterion's output.
pub fn spread(ratios: &mut [f64]) -> (f64, f64, f64) {
    ratios.sort_by(f64::total_cmp);
    (
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
    )
}

/// True when the interleaved comparisons should run: at full scale only (not under
/// `cargo test --benches`).
pub fn interleave() -> bool {
    full_scale()
}

//! The results of a run: what the child processes report and the parent writes to
//! `results.json`, prints as tables, renders as charts and writes into RESULTS.md.

use serde::{Deserialize, Serialize};

/// One measured figure: a phase of a workload on one engine configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Workload id: `redb-phases`, `brief`, `mixes`.
    pub workload: String,
    /// Phase name, e.g. `bulk load`, `random reads 4 threads`, `ycsb-b p99`.
    pub phase: String,
    /// Engine name (`snapbase`, `snapbase-mem`, `sqlite`, `redb`, ...).
    pub engine: String,
    /// `durable` or `relaxed`: rows never mix the two.
    pub durability: String,
    /// The figure.
    pub value: f64,
    /// Its unit: `ops/s`, `docs/s`, `ms`, `us`, `bytes`, `MiB`.
    pub unit: String,
    /// Whether a larger value is better (throughput) or worse (latency, size).
    pub higher_is_better: bool,
    /// Thread count for phases that vary it (the read-scaling chart uses it).
    pub threads: Option<u32>,
    /// Set instead of `value` when the engine cannot run the phase ("not yet supported by
    /// snapbase", "no compaction").
    pub skipped: Option<String>,
}

/// The machine and run a set of measurements came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunInfo {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// `git rev-parse --short HEAD` (with `-dirty` if the tree had changes).
    pub commit: String,
    /// The exact command line.
    pub command: String,
    /// CPU model, cores, RAM, file system of the data directory, kernel.
    pub cpu: String,
    pub cores: u32,
    pub ram: String,
    pub file_system: String,
    pub kernel: String,
    /// `--scale` (1.0 = the defaults of the issue; `--quick` is 0.01).
    pub scale: f64,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Results {
    pub info: RunInfo,
    /// Engine name → its configuration line (the fairness table).
    pub configs: Vec<(String, String)>,
    pub measurements: Vec<Measurement>,
}

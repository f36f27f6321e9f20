//! What a workload needs to measure and report: the recorder that turns figures into
//! [`Measurement`]s, latency histograms, the process's peak RSS and a directory's disk usage.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::engines::{Durability, EngineKind};
use crate::plan::{Sizes, Workload};
use crate::results::Measurement;

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// Where a workload's figures go as they are measured (the child prints each at once, so a
/// crash later in the run loses only the phases not reached).
pub type Sink<'a> = &'a (dyn Fn(Measurement) + Sync);

/// Everything a workload run needs: the engine, its directory, the sizes, the sink.
pub struct Ctx<'a> {
    pub kind: &'a dyn EngineKind,
    pub workload: Workload,
    pub sizes: &'a Sizes,
    /// An empty directory of the run's own.
    pub dir: &'a Path,
    pub sink: Sink<'a>,
    /// Progress lines (the child prints them on stderr).
    pub progress: &'a (dyn Fn(&str) + Sync),
}

impl Ctx<'_> {
    fn measurement(&self, phase: &str, durability: Durability) -> Measurement {
        Measurement {
            workload: self.workload.id().to_owned(),
            phase: phase.to_owned(),
            engine: self.kind.name().to_owned(),
            durability: durability.label().to_owned(),
            value: 0.0,
            unit: String::new(),
            higher_is_better: true,
            threads: None,
            skipped: None,
        }
    }

    /// Reports one figure.
    pub fn record(&self, phase: &str, durability: Durability, figure: Figure) {
        let mut m = self.measurement(phase, durability);
        m.value = figure.value;
        m.unit = figure.unit.to_owned();
        m.higher_is_better = figure.higher_is_better;
        m.threads = figure.threads;
        (self.sink)(m);
    }

    /// Reports a phase the engine does not run, and why.
    pub fn skip(&self, phase: &str, durability: Durability, threads: Option<u32>, why: &str) {
        let mut m = self.measurement(phase, durability);
        m.threads = threads;
        m.skipped = Some(why.to_owned());
        (self.sink)(m);
    }

    /// Says what the run is doing now.
    pub fn step(&self, what: &str) {
        (self.progress)(what);
    }

    /// Reports the three latency percentiles of `histogram` as `<phase> p50` and so on, in µs.
    pub fn record_percentiles(
        &self,
        phase: &str,
        durability: Durability,
        threads: Option<u32>,
        histogram: &Histogram<u64>,
    ) {
        for (name, q) in [("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999)] {
            let figure = Figure::micros(nanos_to_micros(histogram.value_at_quantile(q)));
            self.record(
                &format!("{phase} {name}"),
                durability,
                figure.with_threads(threads),
            );
        }
    }
}

/// A value, its unit and which way is better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figure {
    pub value: f64,
    pub unit: &'static str,
    pub higher_is_better: bool,
    pub threads: Option<u32>,
}

impl Figure {
    /// `count` operations in `elapsed`, as a rate in `unit` (`docs/s`, `ops/s`, `commits/s`).
    pub fn rate(count: usize, elapsed: Duration, unit: &'static str) -> Figure {
        // Counts stay far below 2^52.
        let per_second = count as f64 / elapsed.as_secs_f64().max(1e-9);
        Figure {
            value: per_second,
            unit,
            higher_is_better: true,
            threads: None,
        }
    }

    /// A duration in milliseconds (lower is better).
    pub fn millis(elapsed: Duration) -> Figure {
        Figure {
            value: elapsed.as_secs_f64() * 1e3,
            unit: "ms",
            higher_is_better: false,
            threads: None,
        }
    }

    /// A latency in microseconds (lower is better).
    pub fn micros(us: f64) -> Figure {
        Figure {
            value: us,
            unit: "µs",
            higher_is_better: false,
            threads: None,
        }
    }

    /// A size in MiB (lower is better).
    pub fn mib(bytes: u64) -> Figure {
        Figure {
            value: bytes as f64 / MIB,
            unit: "MiB",
            higher_is_better: false,
            threads: None,
        }
    }

    /// A percentage (higher is better).
    pub fn percent(value: f64) -> Figure {
        Figure {
            value,
            unit: "%",
            higher_is_better: true,
            threads: None,
        }
    }

    /// The same figure, for a phase run on `threads` threads.
    pub fn with_threads(mut self, threads: Option<u32>) -> Figure {
        self.threads = threads;
        self
    }
}

fn nanos_to_micros(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// A latency histogram in nanoseconds, from 1 ns to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3)
        .unwrap_or_else(|e| panic!("histogram bounds are valid: {e}"))
}

/// Records `elapsed` (saturated into the histogram's range).
pub fn record_latency(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    histogram.saturating_record(ns.max(1));
}

/// Runs `f` and returns its result with the time it took.
pub fn timed<T, E>(f: impl FnOnce() -> Result<T, E>) -> Result<(T, Duration), E> {
    let start = Instant::now();
    let value = f()?;
    Ok((value, start.elapsed()))
}

/// The process's peak resident set size (`VmHWM` of `/proc/self/status`), in bytes.
pub fn peak_rss() -> Result<u64, String> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    parse_status_kib(&status, "VmHWM:")
        .map(|kib| kib * 1024)
        .ok_or_else(|| "no VmHWM line in /proc/self/status".to_owned())
}

/// The value in kB of the `/proc/<pid>/status` line starting with `key`.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Disk space allocated to the files under `dir` (their blocks, as `du` counts them): sparse
/// or preallocated files count for what they really occupy.
pub fn disk_usage(dir: &Path) -> Result<u64, String> {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let meta =
            fs::symlink_metadata(&path).map_err(|e| format!("stat {}: {e}", path.display()))?;
        total += meta.blocks() * 512;
        if meta.is_dir() {
            let entries =
                fs::read_dir(&path).map_err(|e| format!("listing {}: {e}", path.display()))?;
            for entry in entries {
                stack.push(entry.map_err(|e| e.to_string())?.path());
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse() {
        let status = "Name:\tsnapbase-compare\nVmPeak:\t  123456 kB\nVmHWM:\t   20480 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(20480));
        assert_eq!(parse_status_kib(status, "VmRSS:"), None);
        assert!(peak_rss().is_ok_and(|b| b > 0));
    }

    #[test]
    fn rates_and_units() {
        let f = Figure::rate(500, Duration::from_millis(250), "ops/s");
        assert!((f.value - 2000.0).abs() < 1e-6);
        assert!(f.higher_is_better);
        assert!(!Figure::millis(Duration::from_millis(3)).higher_is_better);
        assert!((Figure::mib(3 * 1024 * 1024).value - 3.0).abs() < 1e-9);
    }

    #[test]
    fn histogram_percentiles_in_micros() {
        let mut h = histogram();
        for us in 1..=1000u64 {
            record_latency(&mut h, Duration::from_micros(us));
        }
        let p50 = nanos_to_micros(h.value_at_quantile(0.5));
        let p99 = nanos_to_micros(h.value_at_quantile(0.99));
        assert!((499.0..=501.0).contains(&p50), "{p50}");
        assert!((989.0..=991.0).contains(&p99), "{p99}");
    }
}

//! What a run does: the workloads and their sizes at a given `--scale`.

use std::time::Duration;

/// The three workloads of the issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// redb's benchmark phases, translated to documents.
    Redb,
    /// The original brief's workloads: small durable insert runs, 100 concurrent writers,
    /// latency percentiles, peak memory.
    Brief,
    /// Read-heavy mixes with a concurrent writer (YCSB-B-like, YCSB-A-like) and reads with
    /// and without one writer.
    Mixes,
}

impl Workload {
    /// Every workload, in the order they run and are reported.
    pub const ALL: [Workload; 3] = [Workload::Redb, Workload::Brief, Workload::Mixes];

    /// The name on the command line (`--workloads redb,brief,mixes`).
    pub fn cli_name(self) -> &'static str {
        match self {
            Workload::Redb => "redb",
            Workload::Brief => "brief",
            Workload::Mixes => "mixes",
        }
    }

    /// The id in results (`Measurement::workload`).
    pub fn id(self) -> &'static str {
        match self {
            Workload::Redb => "redb-phases",
            Workload::Brief => "brief",
            Workload::Mixes => "mixes",
        }
    }

    /// The section title in RESULTS.md.
    pub fn title(self) -> &'static str {
        match self {
            Workload::Redb => "redb's benchmark phases, as documents",
            Workload::Brief => {
                "The brief's workloads: durable inserts, 100 writers, latency, memory"
            }
            Workload::Mixes => "Read-heavy mixes with a concurrent writer",
        }
    }

    /// The workload with command-line name or id `name`.
    pub fn parse(name: &str) -> Option<Workload> {
        Workload::ALL
            .into_iter()
            .find(|w| w.cli_name() == name || w.id() == name)
    }
}

/// Sizes of every phase. `Sizes::at(1.0)` is the issue's defaults; `--quick` is 0.01.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizes {
    /// The `--scale` these sizes were derived from.
    pub scale: f64,
    // redb's phases
    /// Documents of the bulk load (one transaction).
    pub bulk_docs: usize,
    /// Individual durable commits of one document each.
    pub individual_commits: usize,
    /// Durable transactions of the batch phase.
    pub batch_txns: usize,
    /// Inserts per transaction of the batch phase (not scaled, it defines the phase).
    pub batch_size: usize,
    /// Random point reads on one thread.
    pub reads: usize,
    /// Random point reads split over each thread count of `read_threads`.
    pub threaded_reads: usize,
    /// Range reads of 10 documents from random `_id`s (engines with ordered scans).
    pub range_reads: usize,
    /// Thread counts of the read-scaling phase.
    pub read_threads: Vec<u32>,
    // the brief's
    /// The two runs of individual durable inserts.
    pub insert_runs: [usize; 2],
    /// Concurrent writer threads (not scaled, it defines the phase).
    pub writer_threads: u32,
    /// Individual durable inserts per writer thread.
    pub writes_per_thread: usize,
    /// Individually timed point reads for the read latency percentiles.
    pub latency_reads: usize,
    /// Individually timed equality queries through a secondary index (engines with them).
    pub index_queries: usize,
    // the mixes
    /// Documents loaded before the mixes.
    pub mix_docs: usize,
    /// Length of each timed mix.
    pub mix_duration: Duration,
    /// Client threads of the YCSB-like mixes.
    pub mix_threads: u32,
    /// Reader counts of the reads-under-a-writer phase.
    pub headline_readers: Vec<u32>,
}

/// `n × scale`, rounded, at least 1.
fn scaled(n: usize, scale: f64) -> usize {
    // Sizes stay far below 2^52: the conversions are exact enough.
    let value = (n as f64 * scale).round() as usize;
    value.max(1)
}

impl Sizes {
    /// The sizes at `scale` (1.0 = the issue's defaults).
    pub fn at(scale: f64) -> Sizes {
        let mix_ms = (3000.0 * scale).max(100.0);
        Sizes {
            scale,
            bulk_docs: scaled(1_000_000, scale),
            individual_commits: scaled(1_000, scale),
            batch_txns: scaled(100, scale),
            batch_size: 1_000,
            reads: scaled(1_000_000, scale),
            threaded_reads: scaled(1_000_000, scale),
            range_reads: scaled(500_000, scale),
            read_threads: vec![1, 2, 4, 8],
            insert_runs: [scaled(1_000, scale), scaled(10_000, scale)],
            writer_threads: 100,
            writes_per_thread: scaled(100, scale),
            latency_reads: scaled(100_000, scale),
            index_queries: scaled(100_000, scale),
            mix_docs: scaled(1_000_000, scale),
            mix_duration: Duration::from_millis(mix_ms as u64),
            mix_threads: 4,
            headline_readers: vec![1, 2, 4],
        }
    }

    /// One paragraph for RESULTS.md: what `workload` does at these sizes.
    pub fn describe(&self, workload: Workload) -> String {
        let n = |v: usize| thousands(v as f64);
        let threads = |t: &[u32]| t.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        match workload {
            Workload::Redb => format!(
                "Random 24-byte `_id`s (base64url, 32 characters), bodies of about 150 bytes \
                 (about 190 bytes of JSON per document). Bulk load of {} documents in one \
                 transaction; {} individual commits of one document; {} transaction(s) of {} \
                 inserts; count; {} random point reads on 1 thread; {} range reads of the 10 \
                 documents from a random `_id` on (engines with ordered scans; one run, where \
                 redb's benchmark takes the best of two); {} random point reads split \
                 over {} threads; deletion of half the documents in one transaction; disk size \
                 (allocated blocks) after the deletions and after the engine's own compaction; \
                 peak RSS of the process, which includes the harness's copy of the bulk-load \
                 batch (the same for every engine). Engines with a durable mode run it durable; \
                 the in-memory ones run relaxed, in rows of their own.",
                n(self.bulk_docs),
                n(self.individual_commits),
                n(self.batch_txns),
                n(self.batch_size),
                n(self.reads),
                n(self.range_reads),
                n(self.threaded_reads),
                threads(&self.read_threads),
            ),
            Workload::Brief => format!(
                "Into an empty store: {} then {} inserts, one commit each (durable where the \
                 engine can be), each timed; {} threads inserting {} document(s) each, one commit \
                 each, at the same time; {} individually timed random point reads; on engines \
                 with secondary indexes, an index on the `data` field (unique random text) built \
                 over those documents, then {} individually timed equality queries through it, \
                 each finding its one document. Latency percentiles are from hdrhistogram (3 significant digits). Peak RSS is the \
                 child process's high-water mark (`VmHWM`) at the end.",
                n(self.insert_runs[0]),
                n(self.insert_runs[1]),
                self.writer_threads,
                n(self.writes_per_thread),
                n(self.latency_reads),
                n(self.index_queries),
            ),
            Workload::Mixes => format!(
                "{} documents loaded, then each mix runs for {:.1} s. YCSB-B-like: {} client \
                 threads, 95% point reads / 5% single-document updates; YCSB-A-like: 50% / 50%; \
                 keys drawn from a Zipfian distribution (exponent {}). Run durable (each update \
                 a durable commit) by the engines that can, and relaxed by all. Reads under a \
                 writer (relaxed): N readers ({}) on uniformly random keys, alone, then while \
                 one writer replaces random documents one commit at a time without pause; the \
                 ratio is reads with the writer / reads alone.",
                n(self.mix_docs),
                self.mix_duration.as_secs_f64(),
                self.mix_threads,
                crate::data::ZIPF_EXPONENT,
                threads(&self.headline_readers),
            ),
        }
    }
}

/// `v` rounded to an integer with thousands separators: `1,234,567`.
pub fn thousands(v: f64) -> String {
    let rounded = v.round() as i128;
    let digits = rounded.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_sizes_are_the_issues() {
        let s = Sizes::at(1.0);
        assert_eq!(s.bulk_docs, 1_000_000);
        assert_eq!(s.individual_commits, 1_000);
        assert_eq!((s.batch_txns, s.batch_size), (100, 1_000));
        assert_eq!(s.insert_runs, [1_000, 10_000]);
        assert_eq!(s.writer_threads, 100);
    }

    #[test]
    fn quick_is_a_hundredth_with_floors() {
        let s = Sizes::at(0.01);
        assert_eq!(s.bulk_docs, 10_000);
        assert_eq!(s.individual_commits, 10);
        assert_eq!(s.batch_txns, 1);
        assert_eq!(s.insert_runs, [10, 100]);
        assert_eq!(s.writes_per_thread, 1);
        assert_eq!(s.mix_duration, Duration::from_millis(100));
        assert_eq!(Sizes::at(1e-9).bulk_docs, 1);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(-12_345.0), "-12,345");
    }

    #[test]
    fn workloads_parse_by_name_or_id() {
        assert_eq!(Workload::parse("redb"), Some(Workload::Redb));
        assert_eq!(Workload::parse("redb-phases"), Some(Workload::Redb));
        assert_eq!(Workload::parse("mixes"), Some(Workload::Mixes));
        assert_eq!(Workload::parse("nope"), None);
    }
}

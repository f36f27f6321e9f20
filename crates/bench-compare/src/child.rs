//! The child process's side: run one workload on one engine and report on stdout, and the
//! line protocol both sides share.
//!
//! stdout carries only `RESULT <json array of Measurement>` lines, one per figure as soon as it
//! is measured, so that a child that crashes half-way still reports the phases it finished.
//! stderr carries `PROGRESS <what>` lines for the parent's progress bar, an `ERROR <why>` line
//! if the workload fails, and whatever else the engine or a panic prints.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::engines;
use crate::measure::Ctx;
use crate::plan::{Sizes, Workload};
use crate::results::Measurement;
use crate::workloads;

/// Prefix of a stdout line carrying measurements.
pub const RESULT: &str = "RESULT ";
/// Prefix of a stderr line saying what the child is doing.
pub const PROGRESS: &str = "PROGRESS ";
/// Prefix of the stderr line saying why the workload failed.
pub const ERROR: &str = "ERROR ";

/// The stdout line reporting `measurements`.
pub fn result_line(measurements: &[Measurement]) -> String {
    // Measurements hold only strings, numbers and options: serializing cannot fail.
    let json = serde_json::to_string(measurements)
        .unwrap_or_else(|e| panic!("serializing measurements: {e}"));
    format!("{RESULT}{json}")
}

/// Every measurement of a child's stdout. Lines without the prefix are ignored (an engine may
/// print); a malformed `RESULT` line is an error.
pub fn parse_stdout(stdout: &str) -> Result<Vec<Measurement>, String> {
    let mut all = Vec::new();
    for (n, line) in stdout.lines().enumerate() {
        if let Some(json) = line.strip_prefix(RESULT) {
            let batch: Vec<Measurement> = serde_json::from_str(json)
                .map_err(|e| format!("stdout line {}: bad RESULT line: {e}", n + 1))?;
            all.extend(batch);
        }
    }
    Ok(all)
}

/// Runs `workload` on `engine` in `dir` and reports as the protocol says.
pub fn run(engine: &str, workload: &str, dir: &Path, sizes: &Sizes) -> ExitCode {
    let Some(kind) = engines::find(engine) else {
        eprintln!("{ERROR}no engine named {engine}");
        return ExitCode::FAILURE;
    };
    let Some(workload) = Workload::parse(workload) else {
        eprintln!("{ERROR}no workload named {workload}");
        return ExitCode::FAILURE;
    };
    let sink = |m: Measurement| {
        let mut out = std::io::stdout().lock();
        // A closed stdout means the parent is gone: nothing left to report to.
        let _ = writeln!(out, "{}", result_line(&[m]));
        let _ = out.flush();
    };
    let progress = |what: &str| eprintln!("{PROGRESS}{what}");
    let ctx = Ctx {
        kind,
        workload,
        sizes,
        dir,
        sink: &sink,
        progress: &progress,
    };
    match workloads::run(&ctx) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{ERROR}{e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(phase: &str, skipped: Option<&str>) -> Measurement {
        Measurement {
            workload: "brief".to_owned(),
            phase: phase.to_owned(),
            engine: "snapbase".to_owned(),
            durability: "durable".to_owned(),
            value: 1234.5,
            unit: "ops/s".to_owned(),
            higher_is_better: true,
            threads: Some(4),
            skipped: skipped.map(str::to_owned),
        }
    }

    #[test]
    fn result_lines_round_trip_among_other_output() {
        let a = sample("1,000 inserts", None);
        let b = sample("range", Some("not yet supported by snapbase"));
        let stdout = format!(
            "engine chatter\n{}\n\n{}\nmore chatter RESULT not at the start\n",
            result_line(std::slice::from_ref(&a)),
            result_line(std::slice::from_ref(&b)),
        );
        assert_eq!(parse_stdout(&stdout), Ok(vec![a, b]));
    }

    #[test]
    fn empty_stdout_has_no_measurements() {
        assert_eq!(parse_stdout(""), Ok(vec![]));
    }

    #[test]
    fn a_malformed_result_line_is_an_error() {
        let stdout = format!("{}\nRESULT [{{\"workload\":", result_line(&[]));
        let err = parse_stdout(&stdout).err().unwrap_or_default();
        assert!(err.contains("line 2"), "{err}");
    }
}

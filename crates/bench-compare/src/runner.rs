//! The parent's side: run one (engine, workload) cell in a child process of its own, follow
//! its progress, collect its measurements, and turn a failure or a crash into a failed cell.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::child::{self, ERROR, PROGRESS};
use crate::engines::{self, EngineKind};
use crate::plan::Workload;
use crate::results::Measurement;

/// The phase name of a failed cell's measurement.
pub const FAILED_PHASE: &str = "(run)";
/// Prefix of a failed cell's `skipped` reason.
pub const FAILED: &str = "failed: ";

/// Lines of a child's stderr kept to explain a failure.
const STDERR_TAIL: usize = 20;

/// What one child reported.
#[derive(Debug)]
pub struct Outcome {
    pub measurements: Vec<Measurement>,
    /// Why the child failed, if it did.
    pub failure: Option<String>,
    pub elapsed: Duration,
}

/// What a child needs besides its cell.
#[derive(Debug)]
pub struct ChildArgs<'a> {
    pub exe: &'a Path,
    pub scale: f64,
    pub timeout: Duration,
}

/// Runs `workload` on `kind` in a child process with `dir` (emptied first) as its data
/// directory. `progress` receives the child's progress lines. Never fails: a child that cannot
/// start, fails, crashes or times out gives an `Outcome` with a `failure`, plus a
/// [`failed_measurement`] among its measurements.
pub fn run_cell(
    args: &ChildArgs<'_>,
    kind: &dyn EngineKind,
    workload: Workload,
    dir: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> Outcome {
    let start = Instant::now();
    let (mut measurements, failure) = match spawn_and_collect(args, kind, workload, dir, progress) {
        Ok((measurements, failure)) => (measurements, failure),
        Err(e) => (Vec::new(), Some(e)),
    };
    if let Some(reason) = &failure {
        measurements.push(failed_measurement(kind, workload, reason));
    }
    Outcome {
        measurements,
        failure,
        elapsed: start.elapsed(),
    }
}

/// The measurement that marks a failed cell.
pub fn failed_measurement(kind: &dyn EngineKind, workload: Workload, reason: &str) -> Measurement {
    Measurement {
        workload: workload.id().to_owned(),
        phase: FAILED_PHASE.to_owned(),
        engine: kind.name().to_owned(),
        durability: engines::primary_durability(kind).label().to_owned(),
        value: 0.0,
        unit: String::new(),
        higher_is_better: true,
        threads: None,
        skipped: Some(format!("{FAILED}{reason}")),
    }
}

type Collected = (Vec<Measurement>, Option<String>);

fn spawn_and_collect(
    args: &ChildArgs<'_>,
    kind: &dyn EngineKind,
    workload: Workload,
    dir: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Collected, String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("emptying {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut child = Command::new(args.exe)
        .arg("--child")
        .arg(kind.name())
        .arg(workload.cli_name())
        .arg(dir)
        .arg("--scale")
        .arg(args.scale.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", args.exe.display()))?;
    let mut stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let tail = Mutex::new(VecDeque::new());

    let (status, out) = thread::scope(|s| {
        let out = s.spawn(move || {
            let mut text = String::new();
            stdout.read_to_string(&mut text).map(|_| text)
        });
        let tail = &tail;
        s.spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(what) = line.strip_prefix(PROGRESS) {
                    progress(what);
                    continue;
                }
                let mut tail = tail
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        let status = wait_with_timeout(&mut child, args.timeout);
        (status, out.join())
    });
    let tail: Vec<String> = tail
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into();

    let measurements = match out {
        Ok(Ok(text)) => child::parse_stdout(&text),
        Ok(Err(e)) => Err(format!("reading the child's stdout: {e}")),
        Err(_) => Err("the stdout reader panicked".to_owned()),
    };
    let (measurements, parse_failure) = match measurements {
        Ok(m) => (m, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let failure = match status {
        Ok(status) if status.success() => parse_failure,
        Ok(status) => Some(explain_failure(status, &tail)),
        Err(e) => Some(e),
    };
    Ok((measurements, failure))
}

/// Waits for `child`, killing it after `timeout`.
fn wait_with_timeout(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Result<ExitStatus, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "timed out after {} s and was killed",
                    timeout.as_secs()
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for the child: {e}")),
        }
    }
}

/// One line saying why a child failed: its `ERROR` line, else its panic message, else its
/// exit status and last stderr line.
pub fn explain_failure(status: ExitStatus, stderr_tail: &[String]) -> String {
    if let Some(error) = stderr_tail.iter().rev().find_map(|l| l.strip_prefix(ERROR)) {
        return error.to_owned();
    }
    let how = match (status.code(), status.signal()) {
        (_, Some(signal)) => format!("killed by signal {signal}"),
        (Some(code), None) => format!("exit code {code}"),
        (None, None) => "ended abnormally".to_owned(),
    };
    if let Some(i) = stderr_tail.iter().rposition(|l| l.contains("panicked at")) {
        let message = stderr_tail.get(i + 1).map_or("", String::as_str);
        return format!("{how}: {} {message}", stderr_tail[i].trim());
    }
    match stderr_tail.last() {
        Some(last) => format!("{how}; last stderr line: {last}"),
        None => how,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn failures_are_explained_by_the_best_line_available() {
        let exit_1 = ExitStatus::from_raw(1 << 8);
        let killed = ExitStatus::from_raw(9);
        assert_eq!(
            explain_failure(exit_1, &lines(&["noise", "ERROR count is 3, expected 4"])),
            "count is 3, expected 4"
        );
        let panic = lines(&[
            "thread 'main' panicked at src/engines/x.rs:10:5:",
            "index out of bounds",
        ]);
        let explained = explain_failure(ExitStatus::from_raw(101 << 8), &panic);
        assert!(explained.starts_with("exit code 101: thread 'main' panicked"));
        assert!(explained.ends_with("index out of bounds"));
        assert_eq!(explain_failure(killed, &[]), "killed by signal 9");
        assert_eq!(
            explain_failure(killed, &lines(&["Killed"])),
            "killed by signal 9; last stderr line: Killed"
        );
    }
}

//! `snapbase-compare`: runs the same workloads on snapbase and its peers, each (engine,
//! workload) in a child process of its own, and reports side by side: tables in the terminal,
//! `results.json`, SVG charts and a section of RESULTS.md.
//!
//! ```sh
//! cargo run --release -p bench-compare -- --quick                  # about 1/100 of the sizes
//! cargo run --release -p bench-compare -- --results-md RESULTS.md  # the full run
//! ```

mod charts;
mod child;
mod data;
mod engines;
mod machine;
mod measure;
mod plan;
mod report;
mod results;
mod runner;
mod workloads;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use crate::engines::EngineKind;
use crate::plan::{Sizes, Workload};
use crate::results::Results;

/// Runs the same workloads on snapbase and its peers, side by side.
#[derive(Debug, Parser)]
#[command(name = "snapbase-compare", version)]
struct Cli {
    /// About 1/100 of the default sizes (what CI runs); same as `--scale 0.01`.
    #[arg(long, conflicts_with = "scale")]
    quick: bool,
    /// Multiplies every size; 1 = the issue's defaults (1M documents, ...).
    #[arg(long)]
    scale: Option<f64>,
    /// Engines to run, comma-separated (default: every engine compiled in).
    #[arg(long, value_delimiter = ',')]
    engines: Vec<String>,
    /// Workloads to run, comma-separated: redb, brief, mixes (default: all).
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Where `results.json` is written.
    #[arg(long, default_value = "target/bench-compare")]
    out: PathBuf,
    /// Rewrites the section between the bench-compare markers of this file (RESULTS.md),
    /// appending the markers if missing.
    #[arg(long)]
    results_md: Option<PathBuf>,
    /// Where the SVG charts are written (default: docs/bench with --results-md, which links
    /// them from there, otherwise OUT/charts, so a trial run leaves the published charts alone).
    #[arg(long)]
    charts: Option<PathBuf>,
    /// Where the engines' data directories go (default: OUT/data); its file system is
    /// recorded with the results.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Kills a child process that runs longer than this many seconds (a failed cell).
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// Keeps each engine's data directory after its run instead of deleting it.
    #[arg(long)]
    keep_data: bool,
    /// Internal: run one workload on one engine in DIR and report on stdout.
    #[arg(long, num_args = 3, value_names = ["ENGINE", "WORKLOAD", "DIR"], hide = true)]
    child: Option<Vec<String>>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let scale = if cli.quick {
        0.01
    } else {
        cli.scale.unwrap_or(1.0)
    };
    if !(scale.is_finite() && scale > 0.0) {
        eprintln!("error: --scale must be a positive number");
        return ExitCode::FAILURE;
    }
    let sizes = Sizes::at(scale);
    if let Some(args) = &cli.child {
        return child::run(&args[0], &args[1], Path::new(&args[2]), &sizes);
    }
    match parent(&cli, &sizes) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The parent: runs every cell, then reports.
fn parent(cli: &Cli, sizes: &Sizes) -> Result<ExitCode, String> {
    let kinds = select_engines(&cli.engines)?;
    let workloads = select_workloads(&cli.workloads)?;
    let exe = std::env::current_exe().map_err(|e| format!("finding this executable: {e}"))?;
    std::fs::create_dir_all(&cli.out)
        .map_err(|e| format!("creating {}: {e}", cli.out.display()))?;
    let data_root = cli.data_dir.clone().unwrap_or_else(|| cli.out.join("data"));
    std::fs::create_dir_all(&data_root)
        .map_err(|e| format!("creating {}: {e}", data_root.display()))?;

    let mut results = Results {
        info: machine::describe(&data_root, command_line(), sizes.scale),
        configs: kinds
            .iter()
            .map(|k| (k.name().to_owned(), k.config()))
            .collect(),
        measurements: Vec::new(),
    };
    let failures = run_all(
        cli,
        sizes,
        &exe,
        &data_root,
        &kinds,
        &workloads,
        &mut results,
    );

    for &workload in &workloads {
        for table in report::tables(&results, workload.id()) {
            println!("\n{} — {}", workload.title(), table.durability);
            println!("{}", table.terminal());
            for note in table.skip_notes() {
                println!("  skipped: {note}");
            }
            for (engine, reason) in &table.failures {
                println!("  FAILED: {engine}: {reason}");
            }
        }
    }

    let json_path = cli.out.join("results.json");
    let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    std::fs::write(&json_path, json)
        .map_err(|e| format!("writing {}: {e}", json_path.display()))?;
    println!("\nwrote {}", json_path.display());

    let charts_dir = match (&cli.charts, &cli.results_md) {
        (Some(dir), _) => dir.clone(),
        (None, Some(_)) => PathBuf::from("docs/bench"),
        (None, None) => cli.out.join("charts"),
    };
    std::fs::create_dir_all(&charts_dir)
        .map_err(|e| format!("creating {}: {e}", charts_dir.display()))?;
    let charts = match charts::render(&results, &charts_dir) {
        Ok(charts) => {
            println!("wrote {} charts in {}", charts.len(), charts_dir.display());
            charts
        }
        Err(e) => {
            eprintln!("warning: charts not rendered: {e}");
            Vec::new()
        }
    };

    if let Some(md) = &cli.results_md {
        let md_dir = md
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let section = report::section(&results, sizes, &workloads, &charts, md_dir);
        let doc = match std::fs::read_to_string(md) {
            Ok(doc) => doc,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("reading {}: {e}", md.display())),
        };
        std::fs::write(md, report::replace_section(&doc, &section))
            .map_err(|e| format!("writing {}: {e}", md.display()))?;
        println!("rewrote the bench-compare section of {}", md.display());
    }

    if failures == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{failures} (engine, workload) runs failed; see the tables above");
        Ok(ExitCode::FAILURE)
    }
}

/// Runs every (workload, engine) cell, each in a child process; returns how many failed.
fn run_all(
    cli: &Cli,
    sizes: &Sizes,
    exe: &Path,
    data_root: &Path,
    kinds: &[&'static dyn EngineKind],
    workloads: &[Workload],
    results: &mut Results,
) -> usize {
    let interactive = std::io::stderr().is_terminal();
    let cells = (kinds.len() * workloads.len()) as u64;
    let bar = ProgressBar::new(cells);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    let args = runner::ChildArgs {
        exe,
        scale: sizes.scale,
        timeout: Duration::from_secs(cli.timeout),
    };
    let mut failures = 0;
    let mut done = 0;
    for &workload in workloads {
        for &kind in kinds {
            done += 1;
            let label = format!("{} · {}", workload.cli_name(), kind.name());
            bar.set_message(label.clone());
            if !interactive {
                eprintln!("[{done}/{cells}] {label}: running");
            }
            let dir = data_root.join(format!("{}-{}", workload.cli_name(), kind.name()));
            let last = Mutex::new(String::new());
            let progress = |what: &str| {
                bar.set_message(format!("{label}: {what}"));
                *last
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = what.to_owned();
            };
            let outcome = runner::run_cell(&args, kind, workload, &dir, &progress);
            if !cli.keep_data {
                let _ = std::fs::remove_dir_all(&dir);
            }
            let secs = outcome.elapsed.as_secs_f64();
            let line = match &outcome.failure {
                None => format!("{label}: done in {secs:.1} s"),
                Some(reason) => {
                    failures += 1;
                    format!("{label}: FAILED after {secs:.1} s: {reason}")
                }
            };
            if interactive {
                bar.println(line);
            } else {
                eprintln!("[{done}/{cells}] {line}");
            }
            results.measurements.extend(outcome.measurements);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    failures
}

/// The engines named on the command line (all if none), in registry order.
fn select_engines(names: &[String]) -> Result<Vec<&'static dyn EngineKind>, String> {
    let all = engines::all();
    if names.is_empty() {
        return Ok(all);
    }
    for name in names {
        if !all.iter().any(|k| k.name() == name) {
            let known: Vec<&str> = all.iter().map(|k| k.name()).collect();
            return Err(format!(
                "no engine named {name:?} in this build (engines: {}; PoloDB needs \
                 --features polodb)",
                known.join(", ")
            ));
        }
    }
    Ok(all
        .into_iter()
        .filter(|k| names.iter().any(|n| n == k.name()))
        .collect())
}

/// The workloads named on the command line (all if none), in their fixed order.
fn select_workloads(names: &[String]) -> Result<Vec<Workload>, String> {
    if names.is_empty() {
        return Ok(Workload::ALL.to_vec());
    }
    let mut chosen = Vec::new();
    for name in names {
        let w = Workload::parse(name)
            .ok_or_else(|| format!("no workload named {name:?} (workloads: redb, brief, mixes)"))?;
        chosen.push(w);
    }
    Ok(Workload::ALL
        .into_iter()
        .filter(|w| chosen.contains(w))
        .collect())
}

/// The command that reproduces this run, as it would be typed from the workspace root.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).map(|a| shell_quote(&a)).collect();
    let mut command = "cargo run --release -p bench-compare".to_owned();
    if cfg!(feature = "polodb") {
        command.push_str(" --features polodb");
    }
    if !args.is_empty() {
        command.push_str(" -- ");
        command.push_str(&args.join(" "));
    }
    command
}

/// `arg` quoted for a POSIX shell if it needs to be.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./,=:+@%".contains(&b));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_parses() {
        let cli = Cli::parse_from([
            "snapbase-compare",
            "--quick",
            "--engines",
            "snapbase,hashmap",
            "--workloads",
            "mixes,redb",
        ]);
        assert!(cli.quick);
        assert_eq!(cli.engines, ["snapbase", "hashmap"]);
        let workloads = select_workloads(&cli.workloads).unwrap_or_default();
        assert_eq!(workloads, [Workload::Redb, Workload::Mixes]);
        assert!(select_engines(&["nope".to_owned()]).is_err());
        assert!(Cli::try_parse_from(["x", "--quick", "--scale", "2"]).is_err());
        let child = Cli::parse_from(["x", "--child", "files", "brief", "/tmp/d", "--scale", "0.5"]);
        assert_eq!(
            child.child.as_deref(),
            Some(&["files".to_owned(), "brief".to_owned(), "/tmp/d".to_owned()][..])
        );
    }

    #[test]
    fn arguments_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("--scale"), "--scale");
        assert_eq!(shell_quote("a,b"), "a,b");
        assert_eq!(shell_quote("my dir"), "'my dir'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}

//! The results as tables: one per workload and durability (durable and relaxed figures never
//! share a table), engines as columns, phases as rows, each figure with its ratio to
//! snapbase's in the same row. Printed in the terminal with comfy-table and written into
//! RESULTS.md between two markers.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::plan::{thousands, Sizes, Workload};
use crate::results::{Measurement, Results};
use crate::runner::{FAILED, FAILED_PHASE};

/// The line before the generated section of RESULTS.md.
pub const BEGIN: &str = "<!-- bench-compare:begin -->";
/// The line after it.
pub const END: &str = "<!-- bench-compare:end -->";

/// The engines a row's ratios are relative to, in order of preference: snapbase on disk, and
/// in rows it has no figure in (relaxed rows of the in-memory engines), snapbase in memory.
const REFERENCES: [&str; 2] = ["snapbase", "snapbase-mem"];

/// One cell of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Value(f64),
    /// The engine does not run the phase, and why.
    Skipped(String),
    /// The engine's child process failed before reporting the phase.
    Failed,
    /// No figure (the engine runs this workload in the other durability, for instance).
    Missing,
}

/// One phase: its figure on each engine of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub phase: String,
    pub unit: String,
    pub higher_is_better: bool,
    pub cells: Vec<Cell>,
}

/// The figures of one workload in one durability.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub workload: String,
    pub durability: String,
    pub engines: Vec<String>,
    pub rows: Vec<Row>,
    /// `(engine, reason)` of each failed child.
    pub failures: Vec<(String, String)>,
}

/// `value` relative to `reference`: engine ÷ snapbase, whichever way is better (so 2.00× is
/// twice snapbase's throughput, or twice its latency). `None` if the reference is not a
/// positive finite number.
pub fn ratio(value: f64, reference: f64) -> Option<f64> {
    (reference.is_finite() && reference > 0.0 && value.is_finite()).then(|| value / reference)
}

/// The tables of `workload_id`: durable first, then relaxed, each only if it has a row.
/// Engines appear in the order of `results.configs`.
pub fn tables(results: &Results, workload_id: &str) -> Vec<Table> {
    ["durable", "relaxed"]
        .into_iter()
        .filter_map(|d| table(results, workload_id, d))
        .collect()
}

fn table(results: &Results, workload_id: &str, durability: &str) -> Option<Table> {
    let ms: Vec<&Measurement> = results
        .measurements
        .iter()
        .filter(|m| m.workload == workload_id && m.durability == durability)
        .collect();
    let mut engines: Vec<String> = results
        .configs
        .iter()
        .map(|(name, _)| name.clone())
        .filter(|name| ms.iter().any(|m| &m.engine == name))
        .collect();
    // Engines without a config line (should not happen) still get a column.
    for m in &ms {
        if !engines.contains(&m.engine) {
            engines.push(m.engine.clone());
        }
    }
    let failures: Vec<(String, String)> = ms
        .iter()
        .filter(|m| m.phase == FAILED_PHASE)
        .map(|m| {
            let reason = m.skipped.as_deref().unwrap_or_default();
            let reason = reason.strip_prefix(FAILED).unwrap_or(reason);
            (m.engine.clone(), reason.to_owned())
        })
        .collect();
    let mut rows: Vec<Row> = Vec::new();
    for m in ms.iter().filter(|m| m.phase != FAILED_PHASE) {
        let column = engines.iter().position(|e| e == &m.engine).unwrap_or(0);
        let row = match rows.iter().position(|r| r.phase == m.phase) {
            Some(i) => &mut rows[i],
            None => {
                rows.push(Row {
                    phase: m.phase.clone(),
                    unit: m.unit.clone(),
                    higher_is_better: m.higher_is_better,
                    cells: vec![Cell::Missing; engines.len()],
                });
                let last = rows.len() - 1;
                &mut rows[last]
            }
        };
        if row.unit.is_empty() {
            // A skipped phase reported first has no unit yet.
            row.unit.clone_from(&m.unit);
            row.higher_is_better = m.higher_is_better;
        }
        row.cells[column] = match &m.skipped {
            Some(why) => Cell::Skipped(why.clone()),
            None => Cell::Value(m.value),
        };
    }
    for (engine, _) in &failures {
        let column = engines.iter().position(|e| e == engine).unwrap_or(0);
        for row in &mut rows {
            if row.cells[column] == Cell::Missing {
                row.cells[column] = Cell::Failed;
            }
        }
    }
    (!rows.is_empty() || !failures.is_empty()).then(|| Table {
        workload: workload_id.to_owned(),
        durability: durability.to_owned(),
        engines,
        rows,
        failures,
    })
}

impl Table {
    /// The column the ratios of `row` are relative to.
    pub fn reference(&self, row: &Row) -> Option<usize> {
        REFERENCES.iter().find_map(|name| {
            let i = self.engines.iter().position(|e| e == name)?;
            matches!(row.cells[i], Cell::Value(_)).then_some(i)
        })
    }

    /// The text of cell `column` of `row`: the figure, then its ratio to the reference.
    pub fn cell_text(&self, row: &Row, column: usize) -> String {
        match &row.cells[column] {
            Cell::Value(v) => {
                let reference = self.reference(row);
                let r = reference
                    .filter(|&i| i != column)
                    .and_then(|i| match row.cells[i] {
                        Cell::Value(base) => ratio(*v, base),
                        _ => None,
                    });
                match r {
                    Some(r) => format!("{} ({})", format_number(*v), format_ratio(r)),
                    None => format_number(*v),
                }
            }
            Cell::Skipped(_) => "skipped".to_owned(),
            Cell::Failed => "failed".to_owned(),
            Cell::Missing => "—".to_owned(),
        }
    }

    /// The row's label: phase, unit and which way is better.
    pub fn row_label(row: &Row) -> String {
        let arrow = if row.higher_is_better { "↑" } else { "↓" };
        if row.unit.is_empty() {
            row.phase.clone()
        } else {
            format!("{} ({} {arrow})", row.phase, row.unit)
        }
    }

    /// One line per distinct reason a phase was skipped, naming the phases and engines.
    pub fn skip_notes(&self) -> Vec<String> {
        let mut by_reason: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for row in &self.rows {
            for (i, cell) in row.cells.iter().enumerate() {
                if let Cell::Skipped(why) = cell {
                    by_reason
                        .entry((row.phase.clone(), why.clone()))
                        .or_default()
                        .push(self.engines[i].clone());
                }
            }
        }
        by_reason
            .into_iter()
            .map(|((phase, why), engines)| format!("{phase}: {why} ({})", engines.join(", ")))
            .collect()
    }

    /// The table for the terminal.
    pub fn terminal(&self) -> comfy_table::Table {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        let mut header = vec![format!("{} ({})", self.workload, self.durability)];
        header.extend(self.engines.iter().cloned());
        t.set_header(header);
        for row in &self.rows {
            let mut cells = vec![Self::row_label(row)];
            cells.extend((0..self.engines.len()).map(|i| self.cell_text(row, i)));
            t.add_row(cells);
        }
        t
    }

    /// The table in Markdown, followed by its skip notes and failures.
    pub fn markdown(&self) -> String {
        let mut out = format!("| phase | {} |\n", self.engines.join(" | "));
        out.push_str(&format!("|---|{}\n", "---:|".repeat(self.engines.len())));
        for row in &self.rows {
            let cells: Vec<String> = (0..self.engines.len())
                .map(|i| self.cell_text(row, i))
                .collect();
            out.push_str(&format!(
                "| {} | {} |\n",
                Self::row_label(row),
                cells.join(" | ")
            ));
        }
        let notes = self.skip_notes();
        if !notes.is_empty() || !self.failures.is_empty() {
            out.push('\n');
        }
        for note in notes {
            out.push_str(&format!("- Skipped: {note}.\n"));
        }
        for (engine, reason) in &self.failures {
            out.push_str(&format!("- **{engine} failed**: {reason}\n"));
        }
        out
    }
}

/// `v` with three significant digits, or as an integer with separators from 1,000 up.
pub fn format_number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let magnitude = v.abs();
    if magnitude >= 1000.0 {
        return thousands(v);
    }
    if magnitude == 0.0 {
        return "0".to_owned();
    }
    // Digits after the point for three significant digits (at most 6).
    let decimals = (2 - magnitude.log10().floor() as i32).clamp(0, 6) as usize;
    format!("{v:.decimals$}")
}

/// A ratio as `0.52×`, `12.3×`, `140×`, `0.031×`.
pub fn format_ratio(r: f64) -> String {
    if r > 0.0 && r < 0.1 {
        // Two significant digits.
        let decimals = (1 - r.log10().floor() as i32).clamp(2, 8) as usize;
        format!("{r:.decimals$}×")
    } else if r >= 100.0 {
        format!("{r:.0}×")
    } else if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

/// `doc` with the text between [`BEGIN`] and [`END`] replaced by `section`, or with the
/// markers and `section` appended if the markers are missing.
pub fn replace_section(doc: &str, section: &str) -> String {
    let section = section.trim_end_matches('\n');
    if let Some(begin) = doc.find(BEGIN) {
        let after_begin = begin + BEGIN.len();
        if let Some(end) = doc[after_begin..].find(END) {
            let end = after_begin + end;
            return format!("{}{BEGIN}\n{section}\n{}", &doc[..begin], &doc[end..]);
        }
    }
    let mut out = doc.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&format!("{BEGIN}\n{section}\n{END}\n"));
    out
}

/// The RESULTS.md section of a run. `charts` are the rendered chart files, linked relative to
/// `md_dir` (the directory of RESULTS.md).
pub fn section(
    results: &Results,
    sizes: &Sizes,
    workloads: &[Workload],
    charts: &[PathBuf],
    md_dir: &Path,
) -> String {
    let info = &results.info;
    let mut out = String::new();
    out.push_str("## Side by side with the peers (`snapbase-compare`)\n\n");
    out.push_str(
        "Generated by `crates/bench-compare` (binary `snapbase-compare`); the text between the \
         `bench-compare` markers is rewritten by each run with `--results-md`.\n\n",
    );
    out.push_str(&format!("**Command:** `{}`\n\n", info.command));
    out.push_str(&format!(
        "**Machine:** {}, {} cores, {} RAM; data directory on {}; {}. **Date:** {}. \
         **Commit:** `{}`. **Scale:** {}{}.\n\n",
        info.cpu,
        info.cores,
        info.ram,
        info.file_system,
        info.kernel,
        info.date,
        info.commit,
        info.scale,
        if (info.scale - 1.0).abs() < f64::EPSILON {
            " (the issue's sizes)"
        } else {
            ""
        },
    ));
    out.push_str(
        "**Reading the tables.** Each engine runs each workload in a child process of its own, \
         so peak RSS and disk usage are its own. A cell is the engine's figure and, in \
         brackets, the figure divided by snapbase's in the same row (by `snapbase-mem`'s in \
         rows `snapbase` is not in): ↑ marks rows where higher is better (2.00× = twice \
         snapbase's throughput), ↓ rows where lower is better (2.00× = twice snapbase's latency \
         or size). Durable and relaxed configurations are in separate tables and never share a \
         row. Disk sizes are allocated blocks, as `du` counts them. — = not run in this \
         durability.\n\n",
    );

    out.push_str("### Configurations (fairness)\n\n| engine | configuration |\n|---|---|\n");
    for (engine, config) in &results.configs {
        out.push_str(&format!("| {engine} | {} |\n", config.replace('|', "\\|")));
    }
    out.push('\n');

    let mut linked = vec![false; charts.len()];
    for &workload in workloads {
        out.push_str(&format!(
            "### {}\n\n{}\n\n",
            workload.title(),
            sizes.describe(workload)
        ));
        for table in tables(results, workload.id()) {
            out.push_str(&format!(
                "#### {}\n\n{}\n",
                table.durability,
                table.markdown()
            ));
        }
        for (i, chart) in charts.iter().enumerate() {
            let stem = chart
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            if !linked[i] && (stem.contains(workload.id()) || stem.contains(workload.cli_name())) {
                linked[i] = true;
                out.push_str(&format!("![{stem}]({})\n\n", relative_link(chart, md_dir)));
            }
        }
    }
    if linked.iter().any(|l| !l) {
        out.push_str("### Charts\n\n");
        for (chart, _) in charts.iter().zip(&linked).filter(|(_, l)| !**l) {
            let stem = chart
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            out.push_str(&format!("![{stem}]({})\n\n", relative_link(chart, md_dir)));
        }
    }
    out
}

/// `path` relative to the directory `base`, with `/` separators (both made absolute first).
pub fn relative_link(path: &Path, base: &Path) -> String {
    let absolute = |p: &Path| {
        std::fs::canonicalize(p).unwrap_or_else(|_| {
            std::env::current_dir()
                .map(|cwd| cwd.join(p))
                .unwrap_or_else(|_| p.to_owned())
        })
    };
    let (path, base) = (absolute(path), absolute(base));
    let path_parts: Vec<Component<'_>> = path.components().collect();
    let base_parts: Vec<Component<'_>> = base.components().collect();
    let common = path_parts
        .iter()
        .zip(&base_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<String> = vec!["..".to_owned(); base_parts.len() - common];
    parts.extend(
        path_parts[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(engine: &str, durability: &str, phase: &str, value: f64) -> Measurement {
        Measurement {
            workload: "redb-phases".to_owned(),
            phase: phase.to_owned(),
            engine: engine.to_owned(),
            durability: durability.to_owned(),
            value,
            unit: "ops/s".to_owned(),
            higher_is_better: true,
            threads: None,
            skipped: None,
        }
    }

    fn results(measurements: Vec<Measurement>) -> Results {
        let configs = ["snapbase", "snapbase-mem", "hashmap", "sqlite"]
            .iter()
            .map(|e| ((*e).to_owned(), format!("{e} config")))
            .collect();
        Results {
            configs,
            measurements,
            ..Results::default()
        }
    }

    #[test]
    fn ratios_divide_by_the_reference() {
        assert_eq!(ratio(50.0, 100.0), Some(0.5));
        assert_eq!(ratio(300.0, 100.0), Some(3.0));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        assert_eq!(format_ratio(0.5), "0.50×");
        assert_eq!(format_ratio(12.34), "12.3×");
        assert_eq!(format_ratio(140.4), "140×");
        assert_eq!(format_ratio(0.0312), "0.031×");
        assert_eq!(format_ratio(0.00312), "0.0031×");
    }

    #[test]
    fn numbers_keep_three_significant_digits() {
        assert_eq!(format_number(1_234_567.8), "1,234,568");
        assert_eq!(format_number(123.4), "123");
        assert_eq!(format_number(12.34), "12.3");
        assert_eq!(format_number(1.234), "1.23");
        assert_eq!(format_number(0.01234), "0.0123");
        assert_eq!(format_number(0.0), "0");
    }

    #[test]
    fn durable_and_relaxed_figures_never_share_a_table() {
        let r = results(vec![
            m("snapbase", "durable", "bulk load", 200.0),
            m("sqlite", "durable", "bulk load", 100.0),
            m("snapbase-mem", "relaxed", "bulk load", 400.0),
            m("hashmap", "relaxed", "bulk load", 800.0),
        ]);
        let t = tables(&r, "redb-phases");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].durability, "durable");
        assert_eq!(t[0].engines, ["snapbase", "sqlite"]);
        assert_eq!(t[1].engines, ["snapbase-mem", "hashmap"]);
        // Durable ratios are to snapbase; relaxed ones, without snapbase, to snapbase-mem.
        assert_eq!(t[0].cell_text(&t[0].rows[0], 0), "200");
        assert_eq!(t[0].cell_text(&t[0].rows[0], 1), "100 (0.50×)");
        assert_eq!(t[1].cell_text(&t[1].rows[0], 1), "800 (2.00×)");
    }

    #[test]
    fn skipped_missing_and_failed_cells() {
        let mut skipped = m("snapbase", "durable", "range reads", 0.0);
        skipped.skipped = Some("not yet supported by snapbase".to_owned());
        let mut failed = m("sqlite", "durable", FAILED_PHASE, 0.0);
        failed.skipped = Some(format!("{FAILED}killed by signal 9"));
        let r = results(vec![
            m("snapbase", "durable", "bulk load", 200.0),
            skipped,
            m("hashmap", "durable", "bulk load", 6.0),
            failed,
        ]);
        let t = &tables(&r, "redb-phases")[0];
        assert_eq!(t.engines, ["snapbase", "hashmap", "sqlite"]);
        let range = &t.rows[1];
        assert_eq!(t.cell_text(range, 0), "skipped");
        assert_eq!(t.cell_text(range, 1), "—");
        assert_eq!(t.cell_text(range, 2), "failed");
        assert_eq!(
            t.skip_notes(),
            ["range reads: not yet supported by snapbase (snapbase)"]
        );
        let md = t.markdown();
        assert!(md.contains("| bulk load (ops/s ↑) | 200 | 6.00 (0.030×) | failed |"));
        assert!(md.contains("**sqlite failed**: killed by signal 9"));
    }

    #[test]
    fn the_section_replaces_what_is_between_the_markers() {
        let doc = format!("# Results\n\nintro\n\n{BEGIN}\nold table\n{END}\n\n## Later\n");
        let new = replace_section(&doc, "new table\n");
        assert_eq!(
            new,
            format!("# Results\n\nintro\n\n{BEGIN}\nnew table\n{END}\n\n## Later\n")
        );
        // Idempotent.
        assert_eq!(replace_section(&new, "new table"), new);
    }

    #[test]
    fn missing_markers_are_appended_at_the_end() {
        assert_eq!(
            replace_section("# Results\nlast line", "section"),
            format!("# Results\nlast line\n\n{BEGIN}\nsection\n{END}\n")
        );
        assert_eq!(
            replace_section("", "section"),
            format!("{BEGIN}\nsection\n{END}\n")
        );
        // An end marker before the begin marker does not count.
        let doc = format!("{END}\n{BEGIN}\n");
        assert!(replace_section(&doc, "s").ends_with(&format!("{BEGIN}\ns\n{END}\n")));
    }

    #[test]
    fn links_are_relative_to_the_results_file() {
        assert_eq!(
            relative_link(Path::new("/a/docs/bench/x.svg"), Path::new("/a")),
            "docs/bench/x.svg"
        );
        assert_eq!(
            relative_link(Path::new("/a/target/c/x.svg"), Path::new("/a/docs")),
            "../target/c/x.svg"
        );
    }
}

//! SVG charts of a run, rendered with plotters into `docs/bench/` (or any directory).
//!
//! # Contract
//!
//! [`render`] takes the whole [`Results`] of a run and a directory (created if missing), writes
//! every chart the measurements allow, and returns the paths written, in a stable order:
//! workloads and durability classes in order of first appearance in `measurements`, and
//! within each, `throughput`, `latency`, `size`, then `read-scaling`. It never invents a
//! figure: every bar and point is one [`Measurement::value`]. Skipped measurements
//! (`skipped: Some(..)`) and non-finite values are left out; a panel names the engines it left
//! out under its title ("not run: …").
//!
//! # Files
//!
//! Names are `<workload>-<durability>-<kind>.svg`, with the workload and durability slugged
//! (lowercase, anything but `[a-z0-9]` becomes `-`):
//!
//! - `<workload>-<durability>-throughput.svg`: one panel per phase whose unit ends in `/s`
//!   (`ops/s`, `docs/s`, `commits/s`, …), a horizontal bar per engine, labelled with its value.
//! - `<workload>-<durability>-latency.svg`: the same for units `ns`, `us`, `µs`, `ms`, `s`.
//! - `<workload>-<durability>-size.svg`: the same for units `bytes`, `B`, `KiB`, `MiB`, `GiB`.
//! - `<workload>-<durability>-read-scaling.svg`: read throughput by thread count, one line per
//!   engine (see below).
//!
//! Durable and relaxed measurements never share a file, so no chart compares a durable
//! configuration of one engine with a relaxed one of another. A phase is one panel per
//! `(phase, threads, unit)`; a panel whose phase name does not mention threads gets
//! ", N threads" (", 1 thread") appended to its title when `threads` is set. Each engine keeps
//! one colour and one position (order of first appearance in `configs`, then in
//! `measurements`) in every chart.
//!
//! # Read scaling: the naming the harness follows
//!
//! The read-scaling chart takes, per workload and durability class, every throughput
//! measurement whose phase name **starts with `random reads`** and whose `threads` is
//! `Some(n)`; x is `n`, y the value, one line per engine. The intended naming is phase
//! `random reads` with `threads: Some(1 | 2 | 4 | 8)` for the reads split over threads, and the
//! single-threaded 1M-read phase either under the same name with `threads: Some(1)` (if it *is*
//! the 1-thread point) or under another name / `threads: None` (it is then only a bar). If the
//! same engine has several measurements for one thread count, the first is used. The chart is
//! drawn only when at least two distinct thread counts are present.
//!
//! # Scales
//!
//! An axis is linear from zero unless its values are all positive and span at least
//! [`LOG_SPREAD`] (max / min), in which case it is logarithmic (base 10) and its label says
//! "log scale". The thread axis is spaced by log2 so that 1, 2, 4, 8 are evenly apart.
//!
//! # No fonts needed
//!
//! plotters is built without its `ttf` feature, so it measures text with its built-in estimate
//! (about 0.7 em per character) instead of loading a font through fontconfig, and the SVG
//! backend writes `<text>` elements that the viewer renders with its own `sans-serif`. Nothing
//! here touches the system's fonts; the unit test below proves it renders every chart kind.

use std::fs;
use std::path::{Path, PathBuf};

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::results::{Measurement, Results};

/// Max / min ratio from which a value axis becomes logarithmic.
pub const LOG_SPREAD: f64 = 100.0;

/// Phase-name prefix of the measurements in the read-scaling chart.
pub const READ_SCALING_PREFIX: &str = "random reads";

const FONT: &str = "sans-serif";
/// Width of one bar panel, in pixels; bar files hold two panels per row.
const PANEL_WIDTH: u32 = 600;
/// Height of one engine's row in a bar panel.
const BAR_ROW: u32 = 24;
/// Title and note lines above a bar panel's plot.
const PANEL_HEADER: u32 = 44;
/// Space below a plot for the value axis and its label.
const AXIS_AREA: u32 = 40;
/// Title lines at the top of every file.
const FILE_HEADER: u32 = 56;

/// Tableau 10 plus two: distinct, colour-blind-friendlier than plotters' default palette.
const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(57, 59, 121),
    RGBColor(173, 73, 74),
];

const NOTE_GREY: RGBColor = RGBColor(90, 90, 90);

/// Writes every chart of `results` into `dir` (created if missing) and returns the files
/// written. See the module docs for the files and what goes in them.
///
/// # Errors
///
/// A message naming the directory or file when the directory cannot be created or a chart
/// cannot be written.
pub fn render(results: &Results, dir: &Path) -> Result<Vec<PathBuf>, String> {
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let engines = Engines::of(results);
    let subtitle = subtitle(results);
    let mut written = Vec::new();

    for workload in distinct(results.measurements.iter().map(|m| m.workload.as_str())) {
        let in_workload: Vec<&Measurement> = results
            .measurements
            .iter()
            .filter(|m| m.workload == workload)
            .collect();
        for durability in distinct(in_workload.iter().map(|m| m.durability.as_str())) {
            let class: Vec<&Measurement> = in_workload
                .iter()
                .copied()
                .filter(|m| m.durability == durability)
                .collect();
            let stem = format!("{}-{}", slug(workload), slug(durability));

            for kind in [Kind::Throughput, Kind::Latency, Kind::Size] {
                let panels = panels(&class, kind, &engines);
                if panels.is_empty() {
                    continue;
                }
                let path = dir.join(format!("{stem}-{}.svg", kind.slug()));
                let title = format!("{workload}: {} ({durability})", kind.title());
                draw_bars(&path, &title, &subtitle, &panels, &engines)?;
                written.push(path);
            }

            if let Some(scaling) = read_scaling(&class, &engines) {
                let path = dir.join(format!("{stem}-read-scaling.svg"));
                let title = format!("{workload}: read throughput by thread count ({durability})");
                draw_scaling(&path, &title, &subtitle, &scaling, &engines)?;
                written.push(path);
            }
        }
    }
    Ok(written)
}

/// What a unit measures; each kind gets its own file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Throughput,
    Latency,
    Size,
}

impl Kind {
    fn of(unit: &str) -> Option<Kind> {
        match unit {
            u if u.ends_with("/s") => Some(Kind::Throughput),
            "ns" | "us" | "µs" | "ms" | "s" => Some(Kind::Latency),
            "bytes" | "B" | "KiB" | "MiB" | "GiB" => Some(Kind::Size),
            _ => None,
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Kind::Throughput => "throughput",
            Kind::Latency => "latency",
            Kind::Size => "size",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::Throughput => "throughput by engine",
            Kind::Latency => "latency by engine",
            Kind::Size => "size by engine",
        }
    }
}

/// Every engine's fixed position and colour across all charts.
struct Engines {
    order: Vec<String>,
}

impl Engines {
    fn of(results: &Results) -> Engines {
        let names = results
            .configs
            .iter()
            .map(|(name, _)| name.as_str())
            .chain(results.measurements.iter().map(|m| m.engine.as_str()));
        Engines {
            order: distinct(names).into_iter().map(str::to_owned).collect(),
        }
    }

    fn rank(&self, engine: &str) -> usize {
        self.order
            .iter()
            .position(|e| e == engine)
            .unwrap_or(self.order.len())
    }

    fn color(&self, engine: &str) -> RGBColor {
        PALETTE[self.rank(engine) % PALETTE.len()]
    }
}

/// One phase's bars: engines in [`Engines`] order.
struct Panel {
    title: String,
    unit: String,
    higher_is_better: bool,
    bars: Vec<(String, f64)>,
    /// Engines left out: `engine (reason)`.
    not_run: Vec<String>,
}

fn panels(class: &[&Measurement], kind: Kind, engines: &Engines) -> Vec<Panel> {
    let of_kind: Vec<&Measurement> = class
        .iter()
        .copied()
        .filter(|m| Kind::of(&m.unit) == Some(kind))
        .collect();
    let keys = distinct(
        of_kind
            .iter()
            .map(|m| (m.phase.as_str(), m.threads, m.unit.as_str())),
    );
    let mut panels = Vec::new();
    for (phase, threads, unit) in keys {
        let mut bars: Vec<(String, f64)> = Vec::new();
        let mut not_run = Vec::new();
        let mut higher_is_better = None;
        for m in of_kind
            .iter()
            .filter(|m| m.phase == phase && m.threads == threads && m.unit == unit)
        {
            if bars.iter().any(|(e, _)| *e == m.engine) {
                continue;
            }
            match (&m.skipped, m.value.is_finite()) {
                (Some(reason), _) => not_run.push(format!("{} ({reason})", m.engine)),
                (None, false) => not_run.push(format!("{} (no finite value)", m.engine)),
                (None, true) => {
                    higher_is_better.get_or_insert(m.higher_is_better);
                    bars.push((m.engine.clone(), m.value));
                }
            }
        }
        let Some(higher_is_better) = higher_is_better else {
            continue;
        };
        bars.sort_by_key(|(e, _)| engines.rank(e));
        let title = match threads {
            Some(1) if !phase.contains("thread") => format!("{phase}, 1 thread"),
            Some(n) if !phase.contains("thread") => format!("{phase}, {n} threads"),
            _ => phase.to_owned(),
        };
        panels.push(Panel {
            title,
            unit: unit.to_owned(),
            higher_is_better,
            bars,
            not_run,
        });
    }
    panels
}

/// The read-scaling chart's data: one series of `(threads, value)` per engine.
struct Scaling {
    unit: String,
    series: Vec<(String, Vec<(u32, f64)>)>,
}

fn read_scaling(class: &[&Measurement], engines: &Engines) -> Option<Scaling> {
    let points: Vec<&Measurement> = class
        .iter()
        .copied()
        .filter(|m| {
            m.phase.starts_with(READ_SCALING_PREFIX)
                && m.threads.is_some()
                && m.skipped.is_none()
                && m.value.is_finite()
                && Kind::of(&m.unit) == Some(Kind::Throughput)
        })
        .collect();
    let unit = points.first()?.unit.clone();
    let mut series: Vec<(String, Vec<(u32, f64)>)> = Vec::new();
    for m in points.iter().filter(|m| m.unit == unit) {
        let threads = m.threads.unwrap_or_default();
        let index = if let Some(i) = series.iter().position(|(e, _)| *e == m.engine) {
            i
        } else {
            series.push((m.engine.clone(), Vec::new()));
            series.len() - 1
        };
        let line = &mut series[index].1;
        if !line.iter().any(|(t, _)| *t == threads) {
            line.push((threads, m.value));
        }
    }
    for (_, line) in &mut series {
        line.sort_by_key(|(t, _)| *t);
    }
    series.sort_by_key(|(e, _)| engines.rank(e));
    let thread_counts = distinct(series.iter().flat_map(|(_, l)| l.iter().map(|(t, _)| *t)));
    (thread_counts.len() >= 2).then_some(Scaling { unit, series })
}

/// A value axis: linear from zero, or log10 when the values span [`LOG_SPREAD`] or more.
/// `lo`, `hi` and `ticks` are in plotted space (`log10(v)` on a log axis).
struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Axis {
    /// `headroom`: share of the plotted span added above the largest value (for value labels).
    fn new(values: &[f64], headroom: f64) -> Axis {
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        if min > 0.0 && max / min >= LOG_SPREAD {
            // Start a bit below the smallest value so that its bar stays visible.
            let lo = (min.log10() - 0.3).floor();
            let top = max.log10();
            let hi = top + headroom * (top - lo);
            // One tick per decade, or per few decades past ten of them.
            let decades = hi.floor() - lo;
            let every = (decades / 10.0).ceil().max(1.0);
            let ticks = (0..=10)
                .map(|i| lo + every * f64::from(i))
                .take_while(|t| *t <= hi)
                .collect();
            return Axis {
                log: true,
                lo,
                hi,
                ticks,
            };
        }
        let lo = if min.is_finite() { min.min(0.0) } else { 0.0 };
        let top = if max.is_finite() && max > lo {
            max
        } else {
            lo + 1.0
        };
        let hi = top + headroom * (top - lo);
        let step = nice_step(hi - lo);
        let first = (lo / step).floor() * step;
        // nice_step gives about six steps over the span: twelve is a bound, never reached.
        let ticks = (0..12)
            .map(|i| first + step * f64::from(i))
            .take_while(|t| *t <= hi + step * 1e-9)
            .collect();
        Axis {
            log: false,
            lo,
            hi,
            ticks,
        }
    }

    fn pos(&self, v: f64) -> f64 {
        if self.log {
            v.log10()
        } else {
            v
        }
    }

    fn label(&self, t: f64) -> String {
        format_value(if self.log { 10f64.powf(t) } else { t })
    }

    fn coord(&self) -> Ticked {
        Ticked {
            range: self.lo..self.hi,
            ticks: self.ticks.clone(),
        }
    }

    fn describe(&self, unit: &str) -> String {
        if self.log {
            format!("{unit} (log scale)")
        } else {
            unit.to_owned()
        }
    }
}

/// A linear `f64` coordinate whose grid lines and labels sit exactly at `ticks` (plotters'
/// own `with_key_points` wrapper loses the value formatter that `configure_mesh` needs).
struct Ticked {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = (value - self.range.start) / (self.range.end - self.range.start);
        let pixels = f64::from(limit.1 - limit.0) * share;
        #[allow(clippy::cast_possible_truncation)]
        let offset = pixels.round() as i32;
        limit.0 + offset
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // Bold points only: no light grid lines between the ticks.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// A 1-2-5 step giving about six ticks over `span`.
fn nice_step(span: f64) -> f64 {
    let raw = span / 6.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Three significant digits with a k / M / G suffix: `1.23M`, `45.6k`, `789`, `0.0123`.
fn format_value(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let exponent = v.abs().log10().floor();
    let scale = 10f64.powf(exponent - 2.0);
    let rounded = (v / scale).round() * scale;
    let (scaled, suffix) = match rounded.abs() {
        a if a >= 1e9 => (rounded / 1e9, "G"),
        a if a >= 1e6 => (rounded / 1e6, "M"),
        a if a >= 1e3 => (rounded / 1e3, "k"),
        _ => (rounded, ""),
    };
    let a = scaled.abs();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let decimals = if a >= 100.0 {
        0
    } else {
        (2.0 - a.log10().floor()).max(0.0) as usize
    };
    let text = format!("{scaled:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    format!("{text}{suffix}")
}

fn subtitle(results: &Results) -> String {
    let info = &results.info;
    let mut parts = vec![format!("scale {}", info.scale)];
    if !info.date.is_empty() {
        parts.push(info.date.clone());
    }
    if !info.commit.is_empty() {
        parts.push(format!("commit {}", info.commit));
    }
    if !info.cpu.is_empty() {
        parts.push(info.cpu.clone());
    }
    format!("snapbase-compare, {}", parts.join(", "))
}

/// Approximate width of `text` at `size` px, the way plotters estimates it without a font.
fn text_width(text: &str, size: u32) -> u32 {
    let chars = u32::try_from(text.chars().count()).unwrap_or(u32::MAX);
    chars.saturating_mul(size) * 6 / 10
}

/// Cuts `text` to about `width` pixels at `size` px.
fn fit(text: &str, size: u32, width: u32) -> String {
    let max = (width * 10 / 6 / size.max(1)) as usize;
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn draw_error(path: &Path, e: impl std::fmt::Display) -> String {
    format!("drawing {}: {e}", path.display())
}

/// Draws the file's title lines and returns the area below them.
fn file_area<'a>(
    path: &'a Path,
    size: (u32, u32),
    title: &str,
    subtitle: &str,
) -> Result<DrawingArea<SVGBackend<'a>, plotters::coord::Shift>, String> {
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
    let (header, body) = root.split_vertically(FILE_HEADER);
    let center = i32::try_from(size.0 / 2).unwrap_or(0);
    let title_style = TextStyle::from((FONT, 20).into_font().style(FontStyle::Bold))
        .pos(Pos::new(HPos::Center, VPos::Top));
    header
        .draw(&Text::new(title.to_owned(), (center, 8), title_style))
        .map_err(|e| draw_error(path, e))?;
    let sub_style = TextStyle::from((FONT, 13).into_font())
        .color(&NOTE_GREY)
        .pos(Pos::new(HPos::Center, VPos::Top));
    header
        .draw(&Text::new(
            fit(subtitle, 13, size.0),
            (center, 34),
            sub_style,
        ))
        .map_err(|e| draw_error(path, e))?;
    Ok(body)
}

fn draw_bars(
    path: &Path,
    title: &str,
    subtitle: &str,
    panels: &[Panel],
    engines: &Engines,
) -> Result<(), String> {
    let columns: u32 = if panels.len() > 1 { 2 } else { 1 };
    let rows = u32::try_from(panels.len())
        .unwrap_or(u32::MAX)
        .div_ceil(columns);
    let most_bars = panels.iter().map(|p| p.bars.len()).max().unwrap_or(1);
    let panel_height =
        PANEL_HEADER + BAR_ROW * u32::try_from(most_bars).unwrap_or(u32::MAX) + AXIS_AREA + 16;
    let size = (PANEL_WIDTH * columns, FILE_HEADER + rows * panel_height);
    let body = file_area(path, size, title, subtitle)?;
    let label_width = engines
        .order
        .iter()
        .map(|e| text_width(e, 13))
        .max()
        .unwrap_or(0)
        + 12;
    let areas = body.split_evenly((rows as usize, columns as usize));
    for (panel, area) in panels.iter().zip(&areas) {
        draw_panel(area, panel, engines, label_width).map_err(|e| draw_error(path, e))?;
    }
    body.present().map_err(|e| draw_error(path, e))
}

type AreaResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
    engines: &Engines,
    label_width: u32,
) -> AreaResult {
    let (width, _) = area.dim_in_pixel();
    let (header, plot) = area.split_vertically(PANEL_HEADER);
    let center = i32::try_from(width / 2).unwrap_or(0);
    let title_style = TextStyle::from((FONT, 15).into_font().style(FontStyle::Bold))
        .pos(Pos::new(HPos::Center, VPos::Top));
    header.draw(&Text::new(
        fit(&panel.title, 15, width),
        (center, 6),
        title_style,
    ))?;
    let mut note = String::from(if panel.higher_is_better {
        "higher is better"
    } else {
        "lower is better"
    });
    if !panel.not_run.is_empty() {
        note.push_str("; not run: ");
        note.push_str(&panel.not_run.join(", "));
    }
    let note_style = TextStyle::from((FONT, 12).into_font())
        .color(&NOTE_GREY)
        .pos(Pos::new(HPos::Center, VPos::Top));
    header.draw(&Text::new(
        fit(&note, 12, width.saturating_sub(16)),
        (center, 26),
        note_style,
    ))?;

    let values: Vec<f64> = panel.bars.iter().map(|(_, v)| *v).collect();
    let axis = Axis::new(&values, 0.22);
    let rows = panel.bars.len();
    #[allow(clippy::cast_precision_loss)]
    let row_count = rows as f64;
    // Row k (k = 0 at the top) spans y in [rows-1-k, rows-k]; its label sits at the centre.
    #[allow(clippy::cast_precision_loss)]
    let centre = |k: usize| row_count - k as f64 - 0.5;
    let y_ticks: Vec<f64> = (0..rows).map(centre).collect();
    let names: Vec<&str> = panel.bars.iter().map(|(e, _)| e.as_str()).collect();
    let plot_rows = u32::try_from(rows).unwrap_or(u32::MAX);
    let (plot, _) = plot.split_vertically(BAR_ROW * plot_rows + AXIS_AREA + 8);

    let mut chart = ChartBuilder::on(&plot)
        .margin_left(4)
        .margin_right(16)
        .margin_top(4)
        .x_label_area_size(AXIS_AREA)
        .y_label_area_size(label_width)
        .build_cartesian_2d(
            axis.coord(),
            Ticked {
                range: 0.0..row_count,
                ticks: y_ticks,
            },
        )?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .bold_line_style(RGBColor(225, 225, 225))
        .x_label_formatter(&|t| axis.label(*t))
        .y_label_formatter(&|y| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let k = (row_count - 0.5 - y).round().max(0.0) as usize;
            names.get(k).map(|s| (*s).to_owned()).unwrap_or_default()
        })
        .x_desc(axis.describe(&panel.unit))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 13))
        .draw()?;

    chart.draw_series(panel.bars.iter().enumerate().map(|(k, (engine, value))| {
        let y = centre(k);
        Rectangle::new(
            [(axis.lo, y - 0.32), (axis.pos(*value), y + 0.32)],
            engines.color(engine).filled(),
        )
    }))?;
    let value_style =
        TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    chart.draw_series(panel.bars.iter().enumerate().map(|(k, (_, value))| {
        EmptyElement::at((axis.pos(*value), centre(k)))
            + Text::new(format_value(*value), (4, 0), value_style.clone())
    }))?;
    Ok(())
}

fn draw_scaling(
    path: &Path,
    title: &str,
    subtitle: &str,
    scaling: &Scaling,
    engines: &Engines,
) -> Result<(), String> {
    const LEGEND: u32 = 190;
    let size = (900, FILE_HEADER + 460);
    let body = file_area(path, size, title, subtitle)?;
    let (plot, legend) = body.split_horizontally(size.0 - LEGEND);

    let threads: Vec<u32> = {
        let mut t = distinct(
            scaling
                .series
                .iter()
                .flat_map(|(_, l)| l.iter().map(|(t, _)| *t)),
        );
        t.sort_unstable();
        t
    };
    let x = |t: u32| f64::from(t.max(1)).log2();
    let (x_lo, x_hi) = (x(threads[0]), x(threads[threads.len() - 1]));
    let pad = (x_hi - x_lo).max(1.0) * 0.06;
    let x_ticks: Vec<f64> = threads.iter().map(|t| x(*t)).collect();
    let values: Vec<f64> = scaling
        .series
        .iter()
        .flat_map(|(_, l)| l.iter().map(|(_, v)| *v))
        .collect();
    let axis = Axis::new(&values, 0.08);

    let mut chart = ChartBuilder::on(&plot)
        .margin(16)
        .x_label_area_size(AXIS_AREA)
        .y_label_area_size(70)
        .build_cartesian_2d(
            Ticked {
                range: x_lo - pad..x_hi + pad,
                ticks: x_ticks,
            },
            axis.coord(),
        )
        .map_err(|e| draw_error(path, e))?;
    chart
        .configure_mesh()
        .bold_line_style(RGBColor(225, 225, 225))
        .x_label_formatter(&|v| format!("{}", 2f64.powf(*v).round()))
        .y_label_formatter(&|t| axis.label(*t))
        .x_desc("reader threads (log2 spacing)")
        .y_desc(axis.describe(&scaling.unit))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 13))
        .draw()
        .map_err(|e| draw_error(path, e))?;

    for (engine, line) in &scaling.series {
        let color = engines.color(engine);
        let points: Vec<(f64, f64)> = line.iter().map(|(t, v)| (x(*t), axis.pos(*v))).collect();
        chart
            .draw_series(std::iter::once(PathElement::new(
                points.clone(),
                color.stroke_width(2),
            )))
            .map_err(|e| draw_error(path, e))?;
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .map_err(|e| draw_error(path, e))?;
    }

    // The legend in its own column, so it never hides a line.
    let style = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (k, (engine, _)) in scaling.series.iter().enumerate() {
        let y = 40 + 22 * i32::try_from(k).unwrap_or(0);
        let color = engines.color(engine);
        legend
            .draw(&PathElement::new(
                vec![(8, y), (32, y)],
                color.stroke_width(2),
            ))
            .map_err(|e| draw_error(path, e))?;
        legend
            .draw(&Circle::new((20, y), 4, color.filled()))
            .map_err(|e| draw_error(path, e))?;
        legend
            .draw(&Text::new(
                fit(engine, 13, LEGEND - 44),
                (40, y),
                style.clone(),
            ))
            .map_err(|e| draw_error(path, e))?;
    }
    body.present().map_err(|e| draw_error(path, e))
}

/// The distinct items of `items`, in order of first appearance.
fn distinct<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen
}

/// A file-name-safe form: lowercase ASCII letters and digits, anything else becomes `-`.
fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::results::RunInfo;

    #[allow(clippy::too_many_arguments)]
    fn m(
        workload: &str,
        phase: &str,
        engine: &str,
        durability: &str,
        value: f64,
        unit: &str,
        threads: Option<u32>,
        skipped: Option<&str>,
    ) -> Measurement {
        Measurement {
            workload: workload.to_owned(),
            phase: phase.to_owned(),
            engine: engine.to_owned(),
            durability: durability.to_owned(),
            value,
            unit: unit.to_owned(),
            higher_is_better: unit.ends_with("/s"),
            threads,
            skipped: skipped.map(str::to_owned),
        }
    }

    /// Synthetic figures, only to exercise every chart kind: none of them is a measurement.
    fn synthetic() -> Results {
        let mut ms = Vec::new();
        let durable = ["snapbase", "sqlite", "redb"];
        for (i, engine) in durable.iter().enumerate() {
            let f = f64::from(u32::try_from(i).unwrap_or(0) + 1);
            ms.push(m(
                "redb-phases",
                "bulk load",
                engine,
                "durable",
                1e3 * f.powi(5),
                "docs/s",
                None,
                None,
            ));
            ms.push(m(
                "redb-phases",
                "individual commits",
                engine,
                "durable",
                100.0 * f,
                "ops/s",
                None,
                None,
            ));
            for t in [1, 2, 4, 8] {
                let v = 1e5 * f * f64::from(t);
                ms.push(m(
                    "redb-phases",
                    "random reads",
                    engine,
                    "durable",
                    v,
                    "reads/s",
                    Some(t),
                    None,
                ));
            }
            ms.push(m(
                "redb-phases",
                "disk size after deletes",
                engine,
                "durable",
                4e6 * f,
                "bytes",
                None,
                None,
            ));
            ms.push(m(
                "brief",
                "write p99",
                engine,
                "durable",
                50.0 * f,
                "us",
                None,
                None,
            ));
        }
        ms.push(m(
            "redb-phases",
            "indexed query",
            "snapbase",
            "durable",
            f64::NAN,
            "ops/s",
            None,
            Some("not yet supported by snapbase"),
        ));
        ms.push(m(
            "redb-phases",
            "indexed query",
            "sqlite",
            "durable",
            2e4,
            "ops/s",
            None,
            None,
        ));
        for (engine, f) in [("snapbase-mem", 3.0), ("hashmap", 5.0)] {
            ms.push(m(
                "redb-phases",
                "bulk load",
                engine,
                "relaxed",
                1e5 * f,
                "docs/s",
                None,
                None,
            ));
            for t in [1, 2, 4, 8] {
                let v = 2e5 * f * f64::from(t);
                ms.push(m(
                    "redb-phases",
                    "random reads",
                    engine,
                    "relaxed",
                    v,
                    "reads/s",
                    Some(t),
                    None,
                ));
            }
        }
        Results {
            info: RunInfo {
                date: "2000-01-01".to_owned(),
                commit: "test".to_owned(),
                scale: 0.01,
                ..RunInfo::default()
            },
            configs: Vec::new(),
            measurements: ms,
        }
    }

    /// How the SVG backend writes a `<text>` element's content.
    fn label(text: &str) -> String {
        format!(">\n{text}\n</text>")
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn renders_every_chart_kind_without_fonts() {
        let started = Instant::now();
        let dir = std::env::temp_dir().join(format!("snapbase-charts-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let written = render(&synthetic(), &dir.join("bench")).unwrap_or_else(|e| panic!("{e}"));

        let names: Vec<String> = written
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "redb-phases-durable-throughput.svg",
                "redb-phases-durable-size.svg",
                "redb-phases-durable-read-scaling.svg",
                "redb-phases-relaxed-throughput.svg",
                "redb-phases-relaxed-read-scaling.svg",
                "brief-durable-latency.svg",
            ]
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
        );
        for path in &written {
            let svg = read(path);
            assert!(svg.starts_with("<svg"), "{}", path.display());
            assert!(svg.trim_end().ends_with("</svg>"), "{}", path.display());
            assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
            assert!(svg.contains("scale 0.01, 2000-01-01, commit test"));
        }

        // Durable and relaxed never share a chart.
        let durable = read(&dir.join("bench/redb-phases-durable-throughput.svg"));
        for engine in ["snapbase", "sqlite", "redb"] {
            assert!(durable.contains(&label(engine)), "{engine}");
        }
        assert!(!durable.contains("hashmap") && !durable.contains("snapbase-mem"));
        // Bulk load spans 1k..243k docs/s: a log axis, and it says so.
        assert!(durable.contains("docs/s (log scale)"));
        assert!(durable.contains("individual commits"));
        assert!(durable.contains("\nops/s\n"), "linear axis label");
        assert!(durable.contains("random reads, 4 threads"));
        // The skipped measurement is no bar, but it is named.
        assert!(durable.contains("not run: snapbase (not yet supported by snapbase)"));
        assert!(durable.contains("higher is better"));

        let relaxed = read(&dir.join("bench/redb-phases-relaxed-throughput.svg"));
        assert!(relaxed.contains(&label("snapbase-mem")) && relaxed.contains(&label("hashmap")));
        assert!(!relaxed.contains("sqlite"));

        let scaling = read(&dir.join("bench/redb-phases-durable-read-scaling.svg"));
        assert!(scaling.contains("reader threads (log2 spacing)"));
        assert!(scaling.contains("reads/s"));
        for engine in ["snapbase", "sqlite", "redb"] {
            assert!(scaling.contains(&label(engine)), "{engine}");
        }
        for t in ["1", "2", "4", "8"] {
            assert!(scaling.contains(&label(t)), "tick {t}");
        }
        assert!(scaling.contains("<path") || scaling.contains("<polyline"));

        let latency = read(&dir.join("bench/brief-durable-latency.svg"));
        assert!(latency.contains("lower is better") && latency.contains("write p99"));
        let size = read(&dir.join("bench/redb-phases-durable-size.svg"));
        assert!(size.contains("bytes"));

        if std::env::var_os("CHARTS_KEEP").is_none() {
            let _ = fs::remove_dir_all(&dir);
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn nothing_to_draw_writes_nothing() {
        let dir =
            std::env::temp_dir().join(format!("snapbase-charts-empty-{}", std::process::id()));
        let mut results = synthetic();
        for m in &mut results.measurements {
            m.skipped = Some("no".to_owned());
        }
        let written = render(&results, &dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(written.is_empty());
        assert!(dir.is_dir());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn values_read_as_three_significant_digits() {
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(1_234_567.0), "1.23M");
        assert_eq!(format_value(45_678.0), "45.7k");
        assert_eq!(format_value(999.6), "1k");
        assert_eq!(format_value(789.0), "789");
        assert_eq!(format_value(12.34), "12.3");
        assert_eq!(format_value(0.012_34), "0.0123");
        assert_eq!(format_value(2e9), "2G");
    }

    #[test]
    fn axes_go_logarithmic_only_over_two_decades() {
        let linear = Axis::new(&[10.0, 990.0], 0.0);
        assert!(!linear.log && linear.lo == 0.0);
        assert!(linear.ticks.iter().all(|t| *t >= 0.0 && *t <= linear.hi));
        let log = Axis::new(&[10.0, 1000.0], 0.0);
        assert!(log.log);
        assert_eq!(log.ticks, [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(log.label(3.0), "1k");
        // Zero cannot sit on a log axis.
        assert!(!Axis::new(&[0.0, 1e6], 0.0).log);
    }

    #[test]
    fn slugs_are_file_name_safe() {
        assert_eq!(slug("redb-phases"), "redb-phases");
        assert_eq!(slug("YCSB B / 95%"), "ycsb-b-95");
    }
}

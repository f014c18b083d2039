//! Reports of a run: `report.md` (settings, the metrics table, per-category accuracy),
//! `report.json` (settings + metrics), and two PNG plots drawn with plotters:
//! `accuracy.png` (accuracy with its 95% interval per strategy) and
//! `accuracy-vs-server-tokens.png` (accuracy against mean server decode tokens per item, with
//! the random-routing segment from `local` to `server`). When a run holds `local` and `server`,
//! the learned router joins the table and the plots, cross-fitted
//! ([`crate::learned::cross_fitted`]).
//!
//! Text in the plots uses DejaVu Sans from `/usr/share/fonts/truetype/dejavu/` (Debian package
//! `fonts-dejavu-core`, installed by `scripts/setup`) or the file given to [`write`] (the CLI:
//! `--plot-font` or `$COLM_PLOT_FONT`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;

use crate::metrics::{summarize, StrategyMetrics, BASELINE};
use crate::runner::{read_records, read_settings, Record, RunSettings};
use crate::strategy::Arm;

/// Default font file of the plots.
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

/// The metrics table in Markdown: one row per strategy.
pub fn table(metrics: &[StrategyMetrics]) -> String {
    let judged = metrics.iter().any(|m| m.mean_score.is_some());
    let mut t = String::new();
    let head = if judged {
        "| strategy | items | mean rating (95% CI) | errors |"
    } else {
        "| strategy | items | accuracy % (95% CI) | recovery % (k/n) | regressions % (k/n) | errors |"
    };
    let _ = writeln!(
        t,
        "{head} client tokens/item (prompt + completion) | server tokens/item (prompt + completion) | server calls/item | latency p50 / p95 s |"
    );
    let cols = head.matches('|').count() - 1 + 4;
    let _ = writeln!(t, "|{}", "---|".repeat(cols));
    for m in metrics {
        let quality = match (&m.accuracy, &m.mean_score) {
            (Some(a), _) => {
                let ratio = |p: &Option<crate::metrics::Proportion>| {
                    p.map_or("–".to_owned(), |p| {
                        format!("{} ({}/{})", pct(p.rate), p.k, p.n)
                    })
                };
                let (rec, reg) = if m.strategy == BASELINE {
                    ("–".to_owned(), "–".to_owned())
                } else {
                    (ratio(&m.recovery), ratio(&m.regressions))
                };
                format!(
                    "{} ({}–{}) | {rec} | {reg}",
                    pct(a.rate),
                    pct(a.ci.0),
                    pct(a.ci.1)
                )
            }
            (None, Some((mean, (lo, hi)))) => format!("{mean:.2} ({lo:.2}–{hi:.2})"),
            (None, None) => "–".to_owned(),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {quality} | {} | {:.0} + {:.0} | {:.0} + {:.0} | {:.2} | {:.1} / {:.1} |",
            m.strategy,
            m.items,
            m.errors,
            m.tokens.client_prompt,
            m.tokens.client_completion,
            m.tokens.server_prompt,
            m.tokens.server_completion,
            m.server_calls_per_item,
            m.latency_p50_ms / 1000.0,
            m.latency_p95_ms / 1000.0
        );
    }
    t
}

/// Accuracy per category (MMLU subject, MT-Bench category) and strategy, in Markdown; empty
/// when the items have no categories.
pub fn category_table(records: &[Record]) -> String {
    let mut cells: BTreeMap<&str, BTreeMap<String, (f64, usize)>> = BTreeMap::new();
    let mut strategies: Vec<String> = Vec::new();
    for r in records {
        let Some(c) = r.category.as_deref() else {
            continue;
        };
        let name = r.strategy.to_string();
        if !strategies.contains(&name) {
            strategies.push(name.clone());
        }
        let cell = cells.entry(c).or_default().entry(name).or_default();
        cell.0 += r.score.as_ref().map_or(0.0, |s| s.value);
        cell.1 += 1;
    }
    if cells.is_empty() {
        return String::new();
    }
    let mut t = format!("| category | {} |\n", strategies.join(" | "));
    let _ = writeln!(t, "|---|{}", "---|".repeat(strategies.len()));
    for (c, row) in &cells {
        let vals: Vec<String> = strategies
            .iter()
            .map(|s| {
                row.get(s).map_or("–".into(), |(v, n)| {
                    format!("{:.2} (n={n})", v / *n as f64)
                })
            })
            .collect();
        let _ = writeln!(t, "| {c} | {} |", vals.join(" | "));
    }
    t
}

/// Writes `report.md`, `report.json`, `accuracy.png` and `accuracy-vs-server-tokens.png` (and,
/// when CoLM rows share server work, `accuracy-vs-server-tokens-10-clients.png`) for
/// the run in `run` into `to`; returns the paths written, `report.md` first. `command` is
/// quoted in the report when given.
///
/// # Errors
/// When the run cannot be read, has no records, or a file cannot be written (a missing plot
/// font is named).
pub fn write(
    run: &Path,
    to: &Path,
    command: Option<&str>,
    font: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let settings = read_settings(run)?;
    let records = read_records(run)?;
    anyhow::ensure!(!records.is_empty(), "{} has no records yet", run.display());
    let (routed, mut router_note) = learned_router_rows(&records);
    let (agreeing, agreement_note) = agreement_rows(&records);
    router_note.push_str(&agreement_note);
    let metrics = summarize(&[records.as_slice(), routed.as_slice(), agreeing.as_slice()].concat());
    // The anatomy needs the items (references); a data file that is not there skips it.
    let items = crate::suite::load(settings.suite, &settings.data, &settings.suite_options);
    let anatomy = items
        .as_ref()
        .map(|items| {
            let injected = settings
                .adversary
                .as_deref()
                .and_then(colm_core::answer::extract_answer);
            crate::anatomy::anatomy(&records, items, injected.as_deref())
        })
        .unwrap_or_default();
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let md_path = to.join("report.md");
    let mut md = markdown(&settings, &records, &metrics, command, &router_note);
    if !anatomy.is_empty() {
        md.push_str(
            "\n## Anatomy of the CoLM answers\n\nThe first collaborator's draft, the server's \
             guidance (read as an answer, with the suite's extraction) and the final answer, \
             each scored against the reference.\n\n",
        );
        md.push_str(&crate::anatomy::table(&anatomy));
    }
    let sharing = crate::anatomy::sharing(&records);
    if sharing.iter().any(|r| r.shared_decode > 0.0) {
        let server_alone = metrics
            .iter()
            .find(|m| m.strategy == Arm::SERVER)
            .map(|m| m.tokens.server_completion);
        md.push_str(
            "\n## Server decode tokens per client query, with sharing\n\nThe references and \
             their synthesis read no client text: a server computes them once per question for \
             every client asking it (shared), and the rest once per client. Per client query \
             with N clients asking each question: per-client + shared / N (mean tokens per \
             item; derived from the records, not measured with N live clients). Critical path: \
             the model time a client waits per query when its device and the server do not \
             share cores, max(draft, references) + guidance + refinement (engine prompt + \
             generation time at this run's concurrency, queueing excluded); a record's wall \
             time instead sums replayed calls.\n\n",
        );
        md.push_str(&crate::anatomy::sharing_table(&sharing, server_alone));
        md.push_str(
            "\n![accuracy vs server decode tokens per client query, 10 clients per question](accuracy-vs-server-tokens-10-clients.png)\n",
        );
    }
    std::fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    let json_path = to.join("report.json");
    let json = serde_json::json!({
        "settings": settings,
        "command": command,
        "metrics": metrics,
        "colm_anatomy": anatomy,
        "colm_sharing": sharing,
    });
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    register_font(font)?;
    let acc = to.join("accuracy.png");
    plot_accuracy(&metrics, settings.suite.name(), &acc)?;
    let frontier = to.join("accuracy-vs-server-tokens.png");
    let per_item = Axis {
        x: &server_decode,
        desc: "server decode (completion) tokens per item, mean",
    };
    plot_frontier(&metrics, settings.suite.name(), &frontier, &per_item)?;
    let mut written = vec![md_path, json_path, acc, frontier];
    if sharing.iter().any(|r| r.shared_decode > 0.0) {
        // CoLM's shared part paid once for ten clients; the other strategies pay per query.
        let shared_x = |m: &StrategyMetrics| {
            let name = m.strategy.to_string();
            sharing.iter().find(|r| r.strategy == name).map_or_else(
                || server_decode(m),
                |r| r.per_client(crate::anatomy::SHARING_CLIENTS),
            )
        };
        let path = to.join("accuracy-vs-server-tokens-10-clients.png");
        let axis = Axis {
            x: &shared_x,
            desc: "server decode tokens per client query, 10 clients per question (CoLM: shared part / 10)",
        };
        plot_frontier(&metrics, settings.suite.name(), &path, &axis)?;
        written.push(path);
    }
    Ok(written)
}

/// Target share of the server tokens for the learned router's row in a report.
pub const ROUTER_BUDGET: f64 = 0.5;

/// Folds of the learned router's cross-fitting in a report.
pub const ROUTER_FOLDS: usize = 3;

/// The learned router's rows ([`crate::learned::cross_fitted`], escalation `server`, budget
/// [`ROUTER_BUDGET`], [`ROUTER_FOLDS`] folds) and a paragraph saying how they were made — or
/// why there are none — when the run holds both `local` and `server`; nothing otherwise.
fn learned_router_rows(records: &[Record]) -> (Vec<Record>, String) {
    let has = |s: &Arm| records.iter().any(|r| r.strategy == *s);
    if !has(&BASELINE) || !has(&Arm::SERVER) {
        return (Vec::new(), String::new());
    }
    match crate::learned::cross_fitted(records, &Arm::SERVER, ROUTER_BUDGET, ROUTER_FOLDS) {
        Ok(routed) => (
            routed,
            format!(
                "\nThe `{}` row was not run: it replays this run's `local` and `server` records \
                 through the learned router (`colm router train`, a logistic regression on the \
                 draft's confidence and length and the query's features), cross-fitted in \
                 {ROUTER_FOLDS} folds by item position — each fold routed by a router trained on \
                 the other folds to spend {:.0}% of the server tokens escalating every item would. \
                 An escalated item counts the draft's and the server's tokens and wall time.\n",
                crate::learned::CROSS_FITTED,
                100.0 * ROUTER_BUDGET
            ),
        ),
        Err(e) => (Vec::new(), format!("\nNo learned-router row: {e:#}.\n")),
    }
}

/// Shares of agreeing samples at which [`agreement_rows`] replays the agreement cascade.
pub const AGREEMENT_SHARES: [f64; 3] = [0.6, 0.8, 1.0];

/// The agreement cascade replayed at each of [`AGREEMENT_SHARES`]
/// ([`crate::agreement::replayed`]) and a paragraph saying how, when the run holds `local`,
/// `server` and `self-consistency` records with samples; nothing otherwise.
pub(crate) fn agreement_rows(records: &[Record]) -> (Vec<Record>, String) {
    let shares = crate::agreement::agreements(records);
    if shares.is_empty() || !records.iter().any(|r| r.strategy == Arm::SERVER) {
        return (Vec::new(), String::new());
    }
    let rows: Vec<Record> = AGREEMENT_SHARES
        .iter()
        .flat_map(|s| crate::agreement::replayed(records, *s))
        .collect();
    let note = format!(
        "
The `agreement-cascade` rows were not run: they replay this run's records. An item \
         stays `local` when at least the given share of its `{}` samples (the same draft prompt \
         at temperature 0.7) reach the local draft's final answer, and takes the `server` \
         answer otherwise, as `cascade:agree=N,share=S` would live. Every item counts the \
         samples' tokens and wall time; an escalated one also the server's.\n",
        crate::agreement::SAMPLES
    );
    (rows, note)
}

fn markdown(
    settings: &RunSettings,
    records: &[Record],
    metrics: &[StrategyMetrics],
    command: Option<&str>,
    router_note: &str,
) -> String {
    let mut md = format!("# {} — colm eval\n\n", settings.suite.name());
    if let Some(c) = command {
        let _ = writeln!(md, "Command:\n\n```sh\n{c}\n```\n");
    }
    let first = records.iter().map(|r| r.index).min().unwrap_or(0);
    let last = records.iter().map(|r| r.index).max().unwrap_or(0);
    let _ = writeln!(
        md,
        "- data: `{}` (items {first}–{last})\n- client(s): {}; server: {}{}\n- sampling: max {} tokens per step, temperature {}{}\n",
        settings.data.display(),
        settings.clients.join(", "),
        settings.server,
        settings
            .judge
            .as_ref()
            .map(|j| format!("; judge: {j}"))
            .unwrap_or_default(),
        settings.params.max_tokens,
        settings.params.temperature,
        if settings.params.temperature == 0.0 {
            " (greedy)"
        } else {
            ""
        },
    );
    if let Some(text) = &settings.adversary {
        let _ = writeln!(
            md,
            "- adversary: a client collaborator after the clients above answers every request \
             with this poisoned text:\n\n```text\n{text}\n```\n"
        );
    }
    let _ = writeln!(md, "- report written {} on {}\n", today_utc(), machine());
    md.push_str(&table(metrics));
    md.push_str(
        "\nAccuracy intervals are Wilson 95%. Recovery: share of the items `local` got wrong that \
         the strategy gets right (CoLM's metric on previously failed queries); regressions: \
         share of the items `local` got right that the strategy gets wrong. Tokens are means per \
         item in each model's own tokens; latency is an item's wall time.\n",
    );
    md.push_str(router_note);
    let replayed: u64 = records
        .iter()
        .flat_map(|r| &r.turns)
        .map(|t| u64::from(t.cached_calls))
        .sum();
    if replayed > 0 {
        let _ = writeln!(
            md,
            "\n{replayed} calls were identical requests (model, messages and sampling, seed \
             included) already answered in this run (for example the `local` draft that `colm` \
             and `cascade` start from, or the references one `colm:refs=N` shares with another) \
             and were replayed from the run's cache; their tokens are counted as spent, and their wall time as it \
             was when they ran."
        );
    }
    let cats = category_table(records);
    if !cats.is_empty() {
        md.push_str("\n## By category (mean score: accuracy, or rating)\n\n");
        md.push_str(&cats);
    }
    md.push_str("\n![accuracy](accuracy.png)\n\n![accuracy vs server tokens](accuracy-vs-server-tokens.png)\n");
    md
}

/// Today's date, UTC, as `YYYY-MM-DD` (civil-from-days, H. Hinnant's algorithm).
pub fn today_utc() -> String {
    date_of(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// The UTC date of a Unix time in seconds, `YYYY-MM-DD`.
pub fn date_of(secs: u64) -> String {
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The machine in one phrase: CPU model, cores, memory (from `/proc`, best effort).
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cpu}, {cores} cores, {mem_gib:.0} GiB RAM, no GPU used")
}

/// Registers the TrueType file `path` as the plots' font (once per process).
fn register_font(path: &Path) -> anyhow::Result<()> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let path = path.display();
        let bytes = std::fs::read(path.to_string()).map_err(|e| {
            format!("plot font {path}: {e} (install fonts-dejavu-core or set COLM_PLOT_FONT)")
        })?;
        // plotters keeps registered fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("plot font {path} is not a usable TrueType font"))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// (value, low, high) of the strategy's quality: accuracy % or mean rating.
fn quality(m: &StrategyMetrics) -> Option<(f64, f64, f64)> {
    match (&m.accuracy, &m.mean_score) {
        (Some(a), _) => Some((100.0 * a.rate, 100.0 * a.ci.0, 100.0 * a.ci.1)),
        (None, Some((v, (lo, hi)))) => Some((*v, *lo, *hi)),
        _ => None,
    }
}

fn quality_label(metrics: &[StrategyMetrics]) -> (&'static str, f64) {
    if metrics.iter().any(|m| m.accuracy.is_some()) {
        ("accuracy % (95% CI)", 100.0)
    } else {
        ("mean rating (95% CI)", 10.0)
    }
}

fn plot_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {e}")
}

/// Pixel height of one strategy's row in the accuracy plot: its name (14 px text) never
/// overlaps the next, whatever the number of strategies.
const ROW_PX: u32 = 30;

/// The accuracy plot: one horizontal bar per strategy with its 95% interval, the strategies'
/// names on the left axis (each on its own row), the first strategy on top.
fn plot_accuracy(metrics: &[StrategyMetrics], suite: &str, path: &Path) -> anyhow::Result<()> {
    let (label, top) = quality_label(metrics);
    let names: Vec<String> = metrics.iter().map(|m| m.strategy.to_string()).collect();
    let n = names.len().max(1);
    // About 8 px per character of the 14 px font, and room for the axis.
    let longest = names.iter().map(|s| s.chars().count()).max().unwrap_or(8);
    let label_px = u32::try_from(longest * 8 + 24)
        .unwrap_or(600)
        .clamp(90, 600);
    let height = u32::try_from(n).unwrap_or(1) * ROW_PX + 130;
    let root = BitMapBackend::new(path, (720 + label_px, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let rows = n as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{suite}: {label}"), ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(label_px)
        .build_cartesian_2d(0.0..top, 0.0..rows)
        .map_err(plot_err)?;
    // Row i (from the top) spans y in [rows - i - 1, rows - i]; its name sits at the middle.
    let row_of = |y: f64| {
        let i = rows - y - 0.5;
        (i >= 0.0 && (i - i.round()).abs() < 1e-6).then(|| i.round() as usize)
    };
    chart
        .configure_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|y| {
            row_of(*y)
                .and_then(|i| names.get(i).cloned())
                .unwrap_or_default()
        })
        .y_label_style(("sans-serif", 14))
        .x_desc(label)
        .x_max_light_lines(1)
        .disable_y_mesh()
        .draw()
        .map_err(plot_err)?;
    for (i, m) in metrics.iter().enumerate() {
        let Some((v, lo, hi)) = quality(m) else {
            continue;
        };
        let y = rows - i as f64 - 0.5;
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, y - 0.32), (v, y + 0.32)],
                color.mix(0.6).filled(),
            )))
            .map_err(plot_err)?;
        chart
            .draw_series(std::iter::once(ErrorBar::new_horizontal(
                y,
                lo,
                v,
                hi,
                BLACK.stroke_width(2),
                10,
            )))
            .map_err(plot_err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{v:.1}"),
                (hi + top * 0.01, y + 0.25),
                ("sans-serif", 14),
            )))
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// What the frontier plot puts on its x axis: per strategy, server decode tokens, and their
/// description.
struct Axis<'a> {
    x: &'a dyn Fn(&StrategyMetrics) -> f64,
    desc: &'a str,
}

/// Server decode tokens per item, mean: what one client query costs the server alone.
fn server_decode(m: &StrategyMetrics) -> f64 {
    m.tokens.server_completion
}

fn plot_frontier(
    metrics: &[StrategyMetrics],
    suite: &str,
    path: &Path,
    axis: &Axis<'_>,
) -> anyhow::Result<()> {
    let (label, top) = quality_label(metrics);
    let max_x = metrics
        .iter()
        .map(|m| (axis.x)(m))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.25;
    let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{suite}: {label} vs server decode tokens"),
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(-max_x * 0.03..max_x, 0.0..top)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(axis.desc)
        .y_desc(label)
        .draw()
        .map_err(plot_err)?;
    // Random routing (RouteLLM's reference): escalating a random share p of the items reaches
    // local + p·(server − local) for p of the server's tokens — the segment local–server.
    let point = |arm: &Arm| {
        let m = metrics.iter().find(|m| m.strategy == *arm)?;
        Some(((axis.x)(m), quality(m)?.0))
    };
    if let (Some(a), Some(b)) = (point(&BASELINE), point(&Arm::SERVER)) {
        chart
            .draw_series(DashedLineSeries::new(
                [a, b],
                6,
                4,
                BLACK.mix(0.4).stroke_width(1),
            ))
            .map_err(plot_err)?
            .label("random routing between local and server")
            .legend(|(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4).stroke_width(1))
            });
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(plot_err)?;
    }
    let font: TextStyle = ("sans-serif", 16).into_text_style(&root);
    let mut labelled = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        let Some((v, lo, hi)) = quality(m) else {
            continue;
        };
        let x = (axis.x)(m);
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(std::iter::once(ErrorBar::new_vertical(
                x,
                lo,
                v,
                hi,
                color.stroke_width(2),
                10,
            )))
            .map_err(plot_err)?;
        chart
            .draw_series(std::iter::once(Circle::new((x, v), 6, color.filled())))
            .map_err(plot_err)?;
        let (px, py) = chart.backend_coord(&(x, v));
        let name = m.strategy.to_string();
        let (w, h) = root.estimate_text_size(&name, &font).map_err(plot_err)?;
        labelled.push((name, color, (px, py, w as i32, h as i32)));
    }
    // Labels of nearby points (the cascades next to `server`) would print over each other.
    let (x_range, _) = chart.plotting_area().get_pixel_range();
    let boxes: Vec<_> = labelled.iter().map(|(_, _, b)| *b).collect();
    for ((name, color, (px, py, w, h)), (lx, ly)) in
        labelled.iter().zip(place_labels(&boxes, x_range.end))
    {
        if (ly + h / 2 - py).abs() > 1 {
            let end = if lx > *px { lx - 2 } else { lx + w + 2 };
            root.draw(&PathElement::new(
                [(*px, *py), (end, ly + h / 2)],
                color.stroke_width(1),
            ))
            .map_err(plot_err)?;
        }
        // The label in its point's colour, darkened to read on white.
        let ink = RGBColor(color.0 / 2, color.1 / 2, color.2 / 2);
        root.draw(&Text::new(name.to_string(), (lx, ly), font.color(&ink)))
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// A box in pixels: left, top, width, height.
type PixelBox = (i32, i32, i32, i32);

/// Whether two [`PixelBox`]es share any pixel.
fn overlaps(a: PixelBox, b: PixelBox) -> bool {
    a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3
}

/// Places one label per point so that no two labels, and no label and marker, overlap.
///
/// `points` are `(x, y, width, height)` in pixels: the point, and the size of its label. A
/// label goes to the right of its point (left when it would cross pixel column `right`), at
/// the point's height, or moved down or up in steps of its height until it is clear of the
/// labels placed before it and of every marker (a 16-pixel square); points are placed from the
/// top of the plot down. Returns each label's top-left corner, in the order of `points`.
fn place_labels(points: &[PixelBox], right: i32) -> Vec<(i32, i32)> {
    const GAP: i32 = 10;
    const MARK: i32 = 8;
    let markers: Vec<PixelBox> = points
        .iter()
        .map(|&(x, y, _, _)| (x - MARK, y - MARK, 2 * MARK, 2 * MARK))
        .collect();
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| (points[i].1, points[i].0));
    let mut placed: Vec<PixelBox> = Vec::with_capacity(points.len());
    let mut corners = vec![(0, 0); points.len()];
    for i in order {
        let (x, y, w, h) = points[i];
        let lx = if x + GAP + w > right {
            x - GAP - w
        } else {
            x + GAP
        };
        let free = |b: PixelBox| {
            placed
                .iter()
                .chain(&markers)
                .all(|other| !overlaps(b, *other))
        };
        // Offsets 0, +1, −1, +2, −2, … label heights; the point's height when none is free.
        let corner = (0..40)
            .map(|k| if k % 2 == 0 { k / 2 } else { -(k + 1) / 2 })
            .map(|k| (lx, y - h / 2 + k * h))
            .find(|&(bx, by)| free((bx, by, w, h)))
            .unwrap_or((lx, y - h / 2));
        placed.push((corner.0, corner.1, w, h));
        corners[i] = corner;
    }
    corners
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_nearby_points_do_not_overlap() {
        // Four points within a few pixels (the cascades beside `server`), one far away, and one
        // near the right edge whose label must go to its left.
        let points = [
            (700, 100, 200, 16),
            (703, 102, 150, 16),
            (698, 104, 180, 16),
            (701, 99, 60, 16),
            (100, 400, 80, 16),
            (880, 300, 120, 16),
        ];
        let placed = place_labels(&points, 900);
        let boxes: Vec<_> = placed
            .iter()
            .zip(&points)
            .map(|(&(x, y), &(_, _, w, h))| (x, y, w, h))
            .collect();
        for (i, a) in boxes.iter().enumerate() {
            assert!(
                a.0 + a.2 <= 900 || a.0 < points[i].0,
                "label {i} crosses the edge"
            );
            for b in &boxes[i + 1..] {
                let apart =
                    a.0 + a.2 <= b.0 || b.0 + b.2 <= a.0 || a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1;
                assert!(apart, "{a:?} overlaps {b:?}");
            }
        }
        // A lone point keeps its label beside it, at its height.
        assert_eq!(placed[4], (110, 392));
        assert!(placed[5].0 + 120 < 880);
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(951_782_400), "2000-02-29");
        assert_eq!(date_of(1_700_000_000), "2023-11-14");
        assert_eq!(date_of(1_798_675_200), "2026-12-31");
    }
}

//! What `colm ask` prints: a step (heading, text, and a footer with tokens, time and speed),
//! the end of a run (final answer, selections) and the per-model table. The live view of
//! steps as they run is [`crate::live`].

use std::collections::BTreeMap;

use colm_core::colm::{self, ColmRecord, ModelTotals, Step};
use colm_core::named::Named;
use colm_core::run::Run;
use colm_core::Timings;

/// What `colm ask` prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// Each step live ([`crate::live`]), the final answer and the per-model table.
    View,
    /// The whole record as JSON (`--json`).
    Json,
    /// The final answer only (`--quiet`).
    Quiet,
}

/// The end of a run: the final answer(s) and the per-model table.
pub(crate) fn print_run(run: &Run) {
    match run {
        Run::Colm(record) => print_summary(record),
        Run::Horizontal(record) => {
            println!(
                "\n══ final answer ({}) ══\n{}",
                record.strategy,
                record.answer.as_deref().unwrap_or("").trim()
            );
            if let Some(t) = &record.tally {
                println!("(vote: {} of {} answered {})", t.votes, t.drafts, t.answer);
            }
            print_totals(&run.usage_by_model(), record.wall_ms);
        }
        Run::Routed(record) => {
            println!(
                "\n══ final answer ({}) ══\n{}",
                record.route.name(),
                record.answer.trim()
            );
            print_totals(&run.usage_by_model(), 0.0);
        }
    }
}

/// A step's heading: `round 1 · draft · client-1 (model)` (`server` for a server step).
pub(crate) fn heading(
    kind: colm_core::step::StepKind,
    round: u32,
    collaborator: Option<&str>,
    model: &str,
) -> String {
    let who = collaborator.unwrap_or("server");
    let round = if round == 0 {
        String::new()
    } else {
        format!("round {round} · ")
    };
    format!("{round}{} · {who} ({model})", kind.as_str())
}

/// The line that ends a step (its heading is above its text): its token counts, time and
/// generation speed, that it made no call, or its failure.
pub(crate) fn step_footer(s: &Step) -> String {
    match &s.outcome {
        colm::StepOutcome::Ok { .. } if s.shared => {
            "   (shared from the server's store: no call for this request)".to_owned()
        }
        colm::StepOutcome::Ok { .. } if s.messages.is_empty() => "   (no model call)".to_owned(),
        colm::StepOutcome::Ok { completion: c } => format!(
            "   ({} prompt + {} completion tokens · {:.1} s · {:.0} tok/s gen)",
            c.usage.prompt_tokens,
            c.usage.completion_tokens,
            s.wall_ms / 1000.0,
            c.timings.generation_tokens_per_s(&c.usage),
        ),
        colm::StepOutcome::Failed { error } => {
            format!("   (FAILED after {:.1} s: {error})", s.wall_ms / 1000.0)
        }
        colm::StepOutcome::Cancelled { reason, usage } => format!(
            "   (cancelled after {:.1} s and {} completion tokens: {reason})",
            s.wall_ms / 1000.0,
            usage.completion_tokens
        ),
    }
}

fn print_summary(record: &ColmRecord) {
    if let Some(sel) = record
        .references
        .as_ref()
        .and_then(|r| r.selection.as_ref())
    {
        println!("\nSelected reference writers: {}", sel.chosen.join(", "));
    }
    if let Some(sel) = &record.selection {
        println!("\nSelected collaborators: {}", sel.chosen.join(", "));
        if let Some(r) = &sel.fallback_reason {
            println!("(selection fell back to all collaborators: {r})");
        }
    }
    for a in &record.final_answers {
        println!(
            "\n══ final answer · {} ({}) · from the {} of round {} ══\n{}",
            a.collaborator,
            a.model,
            a.from.as_str(),
            a.round,
            a.text.trim()
        );
    }
    print_totals(&record.usage_by_model(), record.wall_ms);
}

/// The per-model table (calls, tokens, speeds) and the wall time.
pub(crate) fn print_totals(usage_by_model: &BTreeMap<String, ModelTotals>, wall_ms: f64) {
    println!(
        "\n{:<30} {:>5} {:>8} {:>11} {:>9} {:>10}",
        "MODEL", "CALLS", "PROMPT", "COMPLETION", "PROMPT/s", "GEN/s"
    );
    for (name, t) in usage_by_model {
        let timings = Timings {
            prompt_ms: t.prompt_ms,
            generation_ms: t.generation_ms,
        };
        println!(
            "{:<30} {:>5} {:>8} {:>11} {:>9.1} {:>10.1}",
            name,
            t.calls,
            t.usage.prompt_tokens,
            t.usage.completion_tokens,
            timings.prompt_tokens_per_s(&t.usage),
            timings.generation_tokens_per_s(&t.usage),
        );
    }
    println!("wall time: {:.1} s", wall_ms / 1000.0);
}

//! Where a CoLM answer comes from: for every `colm` record of a single-turn suite scored by
//! extraction (GSM8K, ARC, MMLU), the collaborator's **draft**, the server's **guidance** and
//! the **final** answer are each scored against the reference, so a report can say whether
//! the loss is in the guidance (it states a wrong answer) or in the refinement (the client
//! does not follow a right one). In the reference modes the first **reference** (a server-side
//! collaborator's own answer) is scored too, and the guidance scored is the synthesis of the
//! references (in `reference-critique`, the review each client got is not scored: it is not an
//! answer).
//!
//! [`sharing`] gives what CoLM costs the server per client query when several clients ask the
//! same question: the steps made from server-side inputs only (references, their synthesis)
//! are computed once per question, the rest once per client.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use colm_core::colm::{ColmRecord, StepKind};
use serde::{Deserialize, Serialize};

use crate::metrics::Proportion;
use crate::runner::Record;
use crate::suite::{score_extracted, Item};

/// Draft, guidance and final answer scored, for one `colm` strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColmAnatomy {
    /// Strategy name.
    pub strategy: String,
    /// The first collaborator's round-1 draft is right.
    pub draft_right: Proportion,
    /// The first reference is right (reference modes; `None` for the modes without).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_right: Option<Proportion>,
    /// Some reference is right (strategies with several references): what a perfect
    /// aggregation of them could reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_reference_right: Option<Proportion>,
    /// References written per question: how many questions drew each number (reference modes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub references_drawn: BTreeMap<usize, usize>,
    /// The first collaborator kept its own answer instead of refining (`keep_draft`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_own: Option<Proportion>,
    /// The last round's guidance, read as an answer, is right.
    pub guidance_right: Proportion,
    /// The final answer is right.
    pub final_right: Proportion,
    /// Final right among the items whose guidance is right (the client follows good guidance).
    pub final_right_given_guidance_right: Proportion,
    /// Final right among the items whose guidance is wrong (the client resists bad guidance).
    pub final_right_given_guidance_wrong: Proportion,
    /// The final answer's extracted answer equals the draft's (the client keeps its answer).
    pub kept_draft_answer: Proportion,
    /// In a run with an adversary ([`crate::adversary`]): the guidance states the injected
    /// answer ([`crate::adversary::repeats_injection`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance_injected: Option<Proportion>,
    /// In a run with an adversary: the final answer is the injected answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_injected: Option<Proportion>,
}

/// The anatomy of every strategy whose records hold CoLM transcripts, in name order; items are
/// found by id in `items`. A round that wrote no draft (`draft=auto`: the guidance came first)
/// is scored with the `local` strategy's answer to the item, the very request its draft would
/// have been. Records without a CoLM transcript, a draft, guidance or an answer are left out.
/// `injected`: the answer a run's adversary injects, if any.
pub fn anatomy(records: &[Record], items: &[Item], injected: Option<&str>) -> Vec<ColmAnatomy> {
    let by_id: BTreeMap<&str, &Item> = items.iter().map(|i| (i.id.as_str(), i)).collect();
    let local: BTreeMap<&str, &str> = records
        .iter()
        .filter(|r| r.strategy == crate::strategy::Arm::LOCAL)
        .filter_map(|r| Some((r.item.as_str(), r.turns.first()?.answer.as_deref()?)))
        .collect();
    let mut rows: BTreeMap<String, Vec<Scored>> = BTreeMap::new();
    for r in records {
        let (Some(item), [turn]) = (by_id.get(r.item.as_str()), r.turns.as_slice()) else {
            continue;
        };
        let Ok(colm) = serde_json::from_value::<ColmRecord>(turn.transcript.clone()) else {
            continue;
        };
        let draft = colm
            .rounds
            .first()
            .and_then(|round| round.drafts.first())
            .and_then(|s| s.text())
            .or_else(|| local.get(r.item.as_str()).copied());
        let guidance = colm
            .rounds
            .last()
            .and_then(|round| round.guidance.as_ref())
            .and_then(|s| s.text());
        let (Some(draft), Some(guidance), Some(answer)) = (draft, guidance, colm.answer()) else {
            continue;
        };
        let (Some(d), Some(g), Some(f)) = (
            score_extracted(item, draft),
            score_extracted(item, guidance),
            score_extracted(item, answer),
        ) else {
            continue;
        };
        let right = |s: &crate::suite::Score| s.correct == Some(true);
        let reference_right = |s: &colm_core::colm::Step| {
            s.text()
                .and_then(|t| score_extracted(item, t))
                .is_some_and(|s| right(&s))
        };
        let reference = colm
            .references
            .as_ref()
            .map(|refs| refs.steps.first().is_some_and(reference_right));
        let references = colm.references.as_ref().map(|refs| {
            (
                refs.steps.iter().filter(|s| s.text().is_some()).count(),
                refs.steps.iter().any(reference_right),
            )
        });
        let first_id = colm
            .rounds
            .first()
            .and_then(|round| round.drafts.first().and_then(|d| d.collaborator.clone()));
        let kept_own = colm.config.keep_draft.map(|_| {
            colm.rounds
                .iter()
                .any(|round| first_id.as_ref().is_some_and(|id| round.kept.contains(id)))
        });
        let kept = d.extracted.is_some() && d.extracted == f.extracted;
        rows.entry(r.strategy.to_string())
            .or_default()
            .push(Scored {
                reference,
                references,
                kept_own,
                draft: right(&d),
                guidance: right(&g),
                fin: right(&f),
                kept,
                injected: injected.map(|x| {
                    (
                        crate::adversary::repeats_injection(guidance, x),
                        f.extracted.as_deref() == Some(x),
                    )
                }),
            });
    }
    rows.into_iter()
        .map(|(strategy, v)| {
            let n = v.len();
            let count = |f: fn(&Scored) -> bool| v.iter().filter(|x| f(x)).count();
            let g_right = count(|x| x.guidance);
            let with_refs: Vec<bool> = v.iter().filter_map(|x| x.reference).collect();
            let several: Vec<bool> = v
                .iter()
                .filter_map(|x| x.references)
                .filter(|&(n, _)| n > 1)
                .map(|(_, any)| any)
                .collect();
            let mut references_drawn = BTreeMap::new();
            for (n, _) in v.iter().filter_map(|x| x.references) {
                *references_drawn.entry(n).or_insert(0) += 1;
            }
            let kept: Vec<bool> = v.iter().filter_map(|x| x.kept_own).collect();
            ColmAnatomy {
                strategy,
                draft_right: Proportion::new(count(|x| x.draft), n),
                reference_right: (!with_refs.is_empty()).then(|| {
                    Proportion::new(with_refs.iter().filter(|&&r| r).count(), with_refs.len())
                }),
                any_reference_right: (!several.is_empty()).then(|| {
                    Proportion::new(several.iter().filter(|&&r| r).count(), several.len())
                }),
                references_drawn,
                kept_own: (!kept.is_empty())
                    .then(|| Proportion::new(kept.iter().filter(|&&k| k).count(), kept.len())),
                guidance_right: Proportion::new(g_right, n),
                final_right: Proportion::new(count(|x| x.fin), n),
                final_right_given_guidance_right: Proportion::new(
                    count(|x| x.guidance && x.fin),
                    g_right,
                ),
                final_right_given_guidance_wrong: Proportion::new(
                    count(|x| !x.guidance && x.fin),
                    n - g_right,
                ),
                kept_draft_answer: Proportion::new(count(|x| x.kept), n),
                guidance_injected: injected
                    .map(|_| Proportion::new(count(|x| x.injected.is_some_and(|(g, _)| g)), n)),
                final_injected: injected
                    .map(|_| Proportion::new(count(|x| x.injected.is_some_and(|(_, f)| f)), n)),
            }
        })
        .collect()
}

/// One record's scores.
struct Scored {
    reference: Option<bool>,
    /// (references written, some reference is right), in the reference modes.
    references: Option<(usize, bool)>,
    /// The first collaborator kept its own answer (`keep_draft` runs).
    kept_own: Option<bool>,
    draft: bool,
    guidance: bool,
    fin: bool,
    kept: bool,
    /// (guidance repeats the injected answer, final answer is it), in adversary runs.
    injected: Option<(bool, bool)>,
}

/// The anatomy as a Markdown table (empty for no rows).
pub fn table(rows: &[ColmAnatomy]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let cell = |p: &Proportion| format!("{:.1} ({}/{})", 100.0 * p.rate, p.k, p.n);
    let adversary = rows.iter().any(|r| r.guidance_injected.is_some());
    let mut t = String::from(
        "| strategy | draft right % | reference right % | any reference right % | references / question | guidance right % | final right % | final right when guidance right % | final right when guidance wrong % | final keeps the draft's answer % | kept its own answer % |",
    );
    t.push_str(if adversary {
        " guidance states the injected answer % | final is the injected answer % |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    } else {
        "\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    });
    for r in rows {
        let _ = write!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.strategy,
            cell(&r.draft_right),
            r.reference_right.as_ref().map_or("–".into(), cell),
            r.any_reference_right.as_ref().map_or("–".into(), cell),
            drawn(&r.references_drawn),
            cell(&r.guidance_right),
            cell(&r.final_right),
            cell(&r.final_right_given_guidance_right),
            cell(&r.final_right_given_guidance_wrong),
            cell(&r.kept_draft_answer),
            r.kept_own.as_ref().map_or("–".into(), cell),
        );
        if adversary {
            let opt = |p: &Option<Proportion>| p.as_ref().map_or("–".into(), cell);
            let _ = write!(
                t,
                " {} | {} |",
                opt(&r.guidance_injected),
                opt(&r.final_injected)
            );
        }
        t.push('\n');
    }
    t
}

/// References per question as `mean (n×count, …)`, e.g. `3.4 (3×40, 4×8, 8×2)`; `–` for none.
fn drawn(counts: &BTreeMap<usize, usize>) -> String {
    let questions: usize = counts.values().sum();
    if questions == 0 {
        return "–".into();
    }
    let total: usize = counts.iter().map(|(n, c)| n * c).sum();
    let spread: Vec<String> = counts.iter().map(|(n, c)| format!("{n}×{c}")).collect();
    format!(
        "{:.1} ({})",
        total as f64 / questions as f64,
        spread.join(", ")
    )
}

/// Clients per question in the report's sharing columns and plot.
pub const SHARING_CLIENTS: usize = 10;

/// Server decode tokens of one `colm` strategy per client query, split into the part computed
/// once per question (references and their synthesis: [`ColmRecord::shared_steps`]) and the
/// part computed per client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharingCost {
    /// Strategy name.
    pub strategy: String,
    /// Records counted.
    pub items: usize,
    /// Mean server decode tokens per item of the shared steps.
    pub shared_decode: f64,
    /// Mean server decode tokens per item of the per-client steps.
    pub private_decode: f64,
    /// Mean model time on a round's critical path, s: per round, max(drafts, references) +
    /// guidance + critiques + refinements, each the engine's prompt + generation time
    /// ([`colm_core::Timings`]; queueing excluded, batched at the run's concurrency). The
    /// client's wall time per query when device and server do not share cores.
    #[serde(default)]
    pub critical_path_s: f64,
}

impl SharingCost {
    /// Server decode tokens per client query when `clients` clients ask each question and the
    /// shared part is computed once: `private + shared / clients`.
    pub fn per_client(&self, clients: usize) -> f64 {
        self.private_decode + self.shared_decode / clients.max(1) as f64
    }
}

/// The [`SharingCost`] of every strategy whose records hold CoLM transcripts, in name order.
/// Server steps are selections, references and guidance (critiques included).
pub fn sharing(records: &[Record]) -> Vec<SharingCost> {
    let mut rows: BTreeMap<String, (usize, u64, u64, f64)> = BTreeMap::new();
    for r in records {
        let [turn] = r.turns.as_slice() else { continue };
        let Ok(colm) = serde_json::from_value::<ColmRecord>(turn.transcript.clone()) else {
            continue;
        };
        let decode = |s: &colm_core::colm::Step| {
            let server = matches!(
                s.kind,
                StepKind::Guidance | StepKind::Selection | StepKind::Reference
            );
            if server {
                s.completion().map_or(0, |c| c.usage.completion_tokens)
            } else {
                0
            }
        };
        let all: u64 = colm.steps().map(decode).sum();
        let shared: u64 = colm.shared_steps().map(decode).sum();
        let row = rows.entry(r.strategy.to_string()).or_default();
        row.0 += 1;
        row.1 += shared;
        row.2 += all - shared;
        row.3 += critical_path_ms(&colm) / 1000.0;
    }
    rows.into_iter()
        .map(|(strategy, (n, shared, private, path))| SharingCost {
            strategy,
            items: n,
            shared_decode: shared as f64 / n.max(1) as f64,
            private_decode: private as f64 / n.max(1) as f64,
            critical_path_s: path / n.max(1) as f64,
        })
        .collect()
}

/// Model time on the critical path of `colm`'s rounds, ms (see [`SharingCost::critical_path_s`]).
fn critical_path_ms(colm: &ColmRecord) -> f64 {
    let t = |s: &colm_core::colm::Step| {
        s.completion()
            .map_or(0.0, |c| c.timings.prompt_ms + c.timings.generation_ms)
    };
    let longest =
        |steps: &mut dyn Iterator<Item = &colm_core::colm::Step>| steps.map(t).fold(0.0, f64::max);
    let selection = colm.selection.iter().map(|s| t(&s.step)).sum::<f64>();
    let references = colm.references.as_ref().map_or(0.0, |r| {
        r.selection.as_ref().map_or(0.0, |s| t(&s.step)) + longest(&mut r.steps.iter())
    });
    let rounds: f64 = colm
        .rounds
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let first = if i == 0 {
                longest(&mut r.drafts.iter()).max(references)
            } else {
                0.0
            };
            first
                + r.guidance.as_ref().map_or(0.0, t)
                + longest(&mut r.critiques.iter())
                + longest(&mut r.refinements.iter())
        })
        .sum();
    selection + rounds
}

/// The sharing costs as a Markdown table (empty for no rows), next to `server_alone`, the
/// server strategy's mean decode tokens per item when known.
pub fn sharing_table(rows: &[SharingCost], server_alone: Option<f64>) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let share = |x: f64| server_alone.map_or("–".into(), |s| format!("{:.0}%", 100.0 * x / s));
    let mut t = String::from(
        "| strategy | items | shared decode / question | per-client decode | per client query, 1 client | per client query, 10 clients | 10 clients vs server alone | critical path s |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            t,
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.1} |",
            r.strategy,
            r.items,
            r.shared_decode,
            r.private_decode,
            r.per_client(1),
            r.per_client(SHARING_CLIENTS),
            share(r.per_client(SHARING_CLIENTS)),
            r.critical_path_s,
        );
    }
    t
}

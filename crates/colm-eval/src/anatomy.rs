//! Where a CoLM answer comes from: for every `colm` record of a single-turn suite scored by
//! extraction (GSM8K, ARC, MMLU), the collaborator's **draft**, the server's **guidance** and
//! the **final** answer are each scored against the reference, so a report can say whether
//! the loss is in the guidance (it states a wrong answer) or in the refinement (the client
//! does not follow a right one).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use colm_core::colm::ColmRecord;
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
}

/// The anatomy of every strategy whose records hold CoLM transcripts, in name order; items are
/// found by id in `items`. Records without a CoLM transcript, a draft, guidance or an answer
/// are left out.
pub fn anatomy(records: &[Record], items: &[Item]) -> Vec<ColmAnatomy> {
    let by_id: BTreeMap<&str, &Item> = items.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut rows: BTreeMap<&str, Vec<Scored>> = BTreeMap::new();
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
            .and_then(|s| s.text());
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
        let kept = d.extracted.is_some() && d.extracted == f.extracted;
        rows.entry(r.strategy.as_str()).or_default().push(Scored {
            draft: right(&d),
            guidance: right(&g),
            fin: right(&f),
            kept,
        });
    }
    rows.into_iter()
        .map(|(strategy, v)| {
            let n = v.len();
            let count = |f: fn(&Scored) -> bool| v.iter().filter(|x| f(x)).count();
            let g_right = count(|x| x.guidance);
            ColmAnatomy {
                strategy: strategy.to_owned(),
                draft_right: Proportion::new(count(|x| x.draft), n),
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
            }
        })
        .collect()
}

/// One record's three scores.
struct Scored {
    draft: bool,
    guidance: bool,
    fin: bool,
    kept: bool,
}

/// The anatomy as a Markdown table (empty for no rows).
pub fn table(rows: &[ColmAnatomy]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let cell = |p: &Proportion| format!("{:.1} ({}/{})", 100.0 * p.rate, p.k, p.n);
    let mut t = String::from(
        "| strategy | draft right % | guidance right % | final right % | final right when guidance right % | final right when guidance wrong % | final keeps the draft's answer % |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.strategy,
            cell(&r.draft_right),
            cell(&r.guidance_right),
            cell(&r.final_right),
            cell(&r.final_right_given_guidance_right),
            cell(&r.final_right_given_guidance_wrong),
            cell(&r.kept_draft_answer),
        );
    }
    t
}

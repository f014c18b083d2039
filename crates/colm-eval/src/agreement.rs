//! The agreement cascade replayed from a run's records: the device's greedy draft (`local`)
//! stays local when enough of the self-consistency samples of the same item (`self-consistency`,
//! the same draft prompt sampled at temperature 0.7) reach its final answer, and escalates to
//! the `server` answer otherwise — what `cascade:agree=N,share=S` does live
//! (`colm_core::vertical::AgreementConfig`), computed without a model call.
//!
//! An item counts the draft's and the samples' tokens and wall time, plus the server's when it
//! escalates. A failed sample counts as disagreement; a draft without an extractable answer
//! ([`colm_core::answer::extract_answer`]) always escalates.

use std::collections::BTreeMap;

use colm_core::answer::extract_answer;
use colm_core::colm::{Step, StepKind};

use crate::metrics::BASELINE;
use crate::runner::Record;
use crate::strategy::Arm;

/// The strategy whose samples are replayed.
pub const SAMPLES: &str = "self-consistency";

/// The strategy whose samples are replayed, as it ran: `self-consistency` with its defaults.
fn samples_arm() -> Option<Arm> {
    Arm::parse(SAMPLES).ok()
}

/// The share of `samples` (sample steps of a self-consistency transcript) whose extracted
/// answer equals the one of `draft`; `None` when the transcript holds no sample step.
fn share(draft: &str, samples: &[Step]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let target = extract_answer(draft);
    let agree = samples
        .iter()
        .filter_map(Step::text)
        .filter(|t| target.is_some() && extract_answer(t) == target)
        .count();
    Some(agree as f64 / samples.len() as f64)
}

/// The sample steps of a self-consistency record's single turn.
fn samples_of(record: &Record) -> Vec<Step> {
    record
        .turns
        .first()
        .and_then(|t| t.transcript.get("steps"))
        .and_then(|s| serde_json::from_value::<Vec<Step>>(s.clone()).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.kind == StepKind::Sample)
        .collect()
}

/// The agreement of each item's self-consistency samples with its `local` draft, by item id;
/// items without a single-turn `local` answer or without samples are left out.
pub fn agreements(records: &[Record]) -> BTreeMap<String, f64> {
    let samples = samples_arm();
    let drafts: BTreeMap<&str, &str> = records
        .iter()
        .filter(|r| r.strategy == BASELINE && r.turns.len() == 1)
        .filter_map(|r| Some((r.item.as_str(), r.turns[0].answer.as_deref()?)))
        .collect();
    records
        .iter()
        .filter(|r| Some(&r.strategy) == samples.as_ref())
        .filter_map(|r| {
            let draft = drafts.get(r.item.as_str())?;
            Some((r.item.clone(), share(draft, &samples_of(r))?))
        })
        .collect()
}

/// The replayed agreement cascade at `min_share`, one record per item that has `local`,
/// `self-consistency` and `server` records, ordered by item position; they are
/// [`Arm::AgreementCascade`] at `min_share`.
pub fn replayed(records: &[Record], min_share: f64) -> Vec<Record> {
    let by = |strategy: Option<&Arm>| -> BTreeMap<&str, &Record> {
        records
            .iter()
            .filter(|r| Some(&r.strategy) == strategy)
            .map(|r| (r.item.as_str(), r))
            .collect()
    };
    let samples_arm = samples_arm();
    let (local, samples, server) = (
        by(Some(&BASELINE)),
        by(samples_arm.as_ref()),
        by(Some(&Arm::SERVER)),
    );
    let shares = agreements(records);
    let mut out: Vec<Record> = shares
        .iter()
        .filter_map(|(item, share)| {
            let (l, s, x) = (
                local.get(item.as_str())?,
                samples.get(item.as_str())?,
                server.get(item.as_str())?,
            );
            let mut r = if *share >= min_share {
                (*l).clone()
            } else {
                let mut r = (*x).clone();
                r.tokens.sum(l.tokens);
                r.wall_ms += l.wall_ms;
                r
            };
            r.tokens.sum(s.tokens);
            r.wall_ms += s.wall_ms;
            r.strategy = Arm::AgreementCascade { share: min_share };
            Some(r)
        })
        .collect();
    out.sort_by_key(|r| r.index);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{RoleTokens, TurnOutcome};
    use colm_core::colm::StepOutcome;
    use colm_core::{Completion, ModelError};

    fn step(text: Option<&str>) -> Step {
        Step {
            kind: StepKind::Sample,
            round: 1,
            collaborator: Some("agent-1".into()),
            model: "small".into(),
            messages: Vec::new(),
            sampling: None,
            wall_ms: 10.0,
            outcome: match text {
                Some(t) => StepOutcome::Ok {
                    completion: Completion::text_only(t),
                },
                None => StepOutcome::Failed {
                    error: ModelError::Inference("out of memory".into()),
                },
            },
            shared: false,
        }
    }

    fn record(index: usize, strategy: &str, answer: &str, samples: &[Option<&str>]) -> Record {
        let client = if strategy == "server" { 0 } else { 10 };
        let turn = TurnOutcome {
            answer: Some(answer.into()),
            error: None,
            tokens: RoleTokens {
                client_completion: client,
                server_completion: 100 - client * 10,
                ..RoleTokens::default()
            },
            server_calls: u32::from(strategy == "server"),
            wall_ms: 100.0,
            cached_calls: 0,
            transcript: serde_json::json!({
                "steps": samples.iter().map(|s| step(*s)).collect::<Vec<_>>()
            }),
        };
        Record::of_turns(
            "gsm8k",
            &format!("t:{index}"),
            index,
            Arm::parse(strategy).unwrap(),
            vec![turn],
        )
    }

    #[test]
    fn agreement_decides_and_every_item_pays_for_its_samples() {
        let records = vec![
            // Item 1: 4 of 5 samples agree with the draft's 17.
            record(1, "local", "so 17", &[]),
            record(
                1,
                SAMPLES,
                "17",
                &[
                    Some("17"),
                    Some("it is 17"),
                    Some("17."),
                    Some("18"),
                    Some("17"),
                ],
            ),
            record(1, "server", "18", &[]),
            // Item 2: a failed sample and a draft of 5; 2 of 5 agree.
            record(2, "local", "5", &[]),
            record(
                2,
                SAMPLES,
                "6",
                &[Some("5"), None, Some("6"), Some("6"), Some("5")],
            ),
            record(2, "server", "6", &[]),
            // Item 3: no answer in the draft: escalates at any share.
            record(3, "local", "I do not know", &[]),
            record(3, SAMPLES, "3", &[Some("3"), Some("3")]),
            record(3, "server", "3", &[]),
            // Item 4: no server record: left out.
            record(4, "local", "1", &[]),
            record(4, SAMPLES, "1", &[Some("1")]),
        ];
        let a = agreements(&records);
        assert_eq!(a["t:1"], 0.8);
        assert_eq!(a["t:2"], 0.4);
        assert_eq!(a["t:3"], 0.0);

        let r = replayed(&records, 0.8);
        let answers: Vec<&str> = r
            .iter()
            .map(|r| r.turns[0].answer.as_deref().unwrap())
            .collect();
        assert_eq!(answers, ["so 17", "6", "3"]);
        assert!(r
            .iter()
            .all(|r| r.strategy.to_string() == "agreement-cascade:share=0.8"));
        // Local: draft + samples; escalated: draft + samples + server.
        assert_eq!(r[0].tokens.client_completion, 20);
        assert_eq!(r[0].tokens.server_completion, 0);
        assert_eq!(r[1].tokens.client_completion, 20);
        assert_eq!(r[1].tokens.server_completion, 100);
        assert_eq!(r[1].wall_ms, 300.0);

        // At share 0.4 item 2 stays local too.
        let r = replayed(&records, 0.4);
        assert_eq!(r[1].turns[0].answer.as_deref(), Some("5"));

        // The report adds one row per item and share, and says they were replayed.
        let (rows, note) = crate::report::agreement_rows(&records);
        assert_eq!(rows.len(), 3 * crate::report::AGREEMENT_SHARES.len());
        assert!(note.contains("not run"), "{note}");
        let without_server: Vec<Record> = records
            .into_iter()
            .filter(|r| r.strategy.to_string() != "server")
            .collect();
        assert!(crate::report::agreement_rows(&without_server).0.is_empty());
    }
}

//! The two aggregations of references that hand the client one of them unchanged: a vote of
//! their final answers ([`voted`], self-consistency) and the server model's choice of the most
//! consistent one ([`selected`], universal self-consistency).

use crate::model::{ChatModel, Completion, SamplingParams};
use crate::prompts;
use crate::query::Query;
use crate::step::{call, Step, StepKind, StepObserver, StepOutcome};

/// The model name of a guidance step chosen by a vote of the references (no model call).
pub const VOTE: &str = "vote";

/// The reference the server model names as the most consistent with the others
/// ([`crate::options::Aggregate::Select`], [`prompts::consistency_selection`]): a guidance step with the
/// selection call's messages and tokens whose text is that reference, unchanged. A reply that
/// names no reference in range gives the first reference, with the reply kept in the
/// completion's `fallback`; a failed call, the first reference likewise.
pub(super) async fn selected(
    query: &Query,
    texts: &[&str],
    model: &dyn ChatModel,
    params: &SamplingParams,
    round: u32,
    observer: Option<StepObserver<'_>>,
) -> Step {
    let mut step = call(
        StepKind::Guidance,
        round,
        None,
        model,
        prompts::consistency_selection(query, texts),
        params,
        None,
    )
    .await;
    let first = texts.first().copied().unwrap_or_default();
    match &mut step.outcome {
        StepOutcome::Ok { completion } => {
            match prompts::parse_consistency_choice(&completion.text, texts.len()) {
                Some(i) => completion.text = texts[i].to_owned(),
                None => {
                    completion.fallback = Some(format!(
                        "the reply named no reference from 1 to {}: {:?}; the first reference",
                        texts.len(),
                        completion.text.chars().take(200).collect::<String>()
                    ));
                    completion.text = first.to_owned();
                }
            }
        }
        StepOutcome::Failed { .. } | StepOutcome::Cancelled { .. } => {
            let error = step.problem().unwrap_or_default();
            let mut fallback = Completion::text_only(first.to_owned());
            fallback.fallback = Some(format!(
                "the selection failed: {error}; the first reference"
            ));
            step.outcome = StepOutcome::Ok {
                completion: fallback,
            };
        }
    }
    crate::step::announce(observer, &step);
    step
}

/// The reference a vote chooses ([`crate::options::Aggregate::Vote`]): among the written
/// references (the writers' steps; failed ones are skipped) whose final answer to `query` is the
/// majority's ([`crate::answer::tally_for`]), the one with the highest mean token log-probability
/// (ties: the first in pool order, the greedy one); with no extractable answer, the first
/// reference.
pub(super) fn voted(query: &str, references: &[Step]) -> String {
    let written: Vec<&Completion> = references.iter().filter_map(Step::completion).collect();
    let texts: Vec<&str> = written.iter().map(|c| c.text.as_str()).collect();
    let logprob = |c: &Completion| c.mean_logprob.unwrap_or(f64::NEG_INFINITY);
    let chosen = match crate::answer::tally_for(query, &texts) {
        None => written.first().copied(),
        Some(t) => written
            .iter()
            .copied()
            .filter(|c| crate::answer::extract_for(query, &c.text).as_deref() == Some(&t.answer))
            .fold(None, |best: Option<&Completion>, c| match best {
                Some(b) if logprob(b) >= logprob(c) => Some(b),
                _ => Some(c),
            }),
    };
    chosen.map(|c| c.text.clone()).unwrap_or_default()
}

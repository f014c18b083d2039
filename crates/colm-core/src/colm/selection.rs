//! Top-k selection of collaborators by the server model ([`crate::prompts::selection`]): the
//! prompt's answer parsed, and the selection recorded.

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;
use crate::model::{ChatModel, SamplingParams};
use crate::prompts;
use crate::step::{call, Step, StepKind, StepObserver, StepOutcome};

/// Outcome of top-k selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The server call.
    pub step: Step,
    /// Ids of the collaborators taking part, in their original order.
    pub chosen: Vec<String>,
    /// Why the selection fell back to all collaborators, when it did.
    pub fallback_reason: Option<String>,
}

/// Parses the server's answer to the selection prompt: 1-based numbers in `1..=n`.
///
/// Returns the first `k` distinct 0-based indices in the order given.
///
/// # Errors
/// A reason string when the answer has no number, a number outside `1..=n`, or fewer than
/// `k` distinct numbers.
pub fn parse_selection(text: &str, n: usize, k: usize) -> Result<Vec<usize>, Invalid> {
    let numbers: Vec<&str> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    if numbers.is_empty() {
        return Err(Invalid(format!(
            "no collaborator number in {:?}",
            short(text)
        )));
    }
    let mut chosen = Vec::new();
    for s in numbers {
        let i: usize = s
            .parse()
            .map_err(|_| format!("number {s} is out of range 1..={n}"))?;
        if i == 0 || i > n {
            return Err(Invalid(format!("number {i} is out of range 1..={n}")));
        }
        if !chosen.contains(&(i - 1)) {
            chosen.push(i - 1);
        }
    }
    if chosen.len() < k {
        return Err(Invalid(format!(
            "{} distinct collaborator numbers where {k} were asked for",
            chosen.len()
        )));
    }
    chosen.truncate(k);
    Ok(chosen)
}

fn short(text: &str) -> String {
    let t: String = text.chars().take(80).collect();
    if t.len() < text.len() {
        format!("{t}…")
    } else {
        t
    }
}

/// Top-k selection by `server` among `profiles` ([`prompts::selection`]); an unusable answer or
/// a failed call keeps every candidate, with the reason recorded.
pub(crate) async fn select(
    query: &str,
    profiles: &[prompts::CandidateProfile<'_>],
    k: usize,
    server: &dyn ChatModel,
    params: &SamplingParams,
    observer: Option<StepObserver<'_>>,
) -> Selection {
    let step = call(
        StepKind::Selection,
        0,
        None,
        server,
        prompts::selection(query, profiles, k),
        params,
        observer,
    )
    .await;
    let parsed = match &step.outcome {
        StepOutcome::Ok { completion } => parse_selection(&completion.text, profiles.len(), k),
        StepOutcome::Failed { .. } | StepOutcome::Cancelled { .. } => Err(Invalid(format!(
            "selection call failed: {}",
            step.problem().unwrap_or_default()
        ))),
    };
    let (chosen, fallback_reason) = match parsed {
        Ok(mut idx) => {
            idx.sort_unstable();
            (idx, None)
        }
        Err(reason) => ((0..profiles.len()).collect(), Some(reason.0)),
    };
    Selection {
        step,
        chosen: chosen
            .iter()
            .filter_map(|&i| profiles.get(i))
            .map(|p| p.id.to_owned())
            .collect(),
        fallback_reason,
    }
}

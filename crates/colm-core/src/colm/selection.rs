//! Top-k selection of collaborators: by the server model ([`crate::prompts::selection`]; the
//! prompt's answer parsed) or by sentence embeddings (no chat-model call), the selection
//! recorded.

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;
use std::time::Instant;

use crate::model::{cosine, ChatModel, Completion, EmbeddingModel, ModelError, SamplingParams};
use crate::prompts;
use crate::step::{announce, call, no_call_step, Step, StepKind, StepObserver, StepOutcome};

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

/// Model name of an embedding selection's step when no embedding model is loaded.
const NO_EMBEDDER: &str = "embedding";

/// Top-k selection among `profiles` by sentence embeddings, with no chat-model call: the `k`
/// whose descriptions' vectors are nearest to the query's (cosine similarity; ties go to the
/// earlier profile), `query` and descriptions embedded in one batch by `embedder` (an input
/// over its token limit is read up to the limit). The step (model: the embedder's name, no
/// messages, no chat tokens, its wall time in ms) has the chosen ids with their similarities
/// as text, for example `math 0.412, code 0.305`. No embedder, or one that fails, keeps every
/// candidate with the reason recorded, as an unusable model selection does.
pub async fn select_by_embedding(
    query: &str,
    profiles: &[prompts::CandidateProfile<'_>],
    k: usize,
    embedder: Option<&dyn EmbeddingModel>,
    observer: Option<StepObserver<'_>>,
) -> Selection {
    let every = || profiles.iter().map(|p| p.id.to_owned()).collect();
    let Some(embedder) = embedder else {
        let reason = "selector `embedding` needs an embedding model on the server \
                      (`--embedding-model`); none is loaded"
            .to_owned();
        return Selection {
            step: no_call_step(
                StepKind::Selection,
                0,
                NO_EMBEDDER,
                Err(ModelError::InvalidRequest(reason.clone())),
                observer,
            ),
            chosen: every(),
            fallback_reason: Some(reason),
        };
    };
    let start = Instant::now();
    let inputs: Vec<String> = std::iter::once(query.to_owned())
        .chain(profiles.iter().map(|p| p.description.to_owned()))
        .collect();
    let ranked = embedder
        .embed(&inputs)
        .await
        .and_then(|e| match e.vectors.split_first() {
            Some((q, descriptions)) if descriptions.len() == profiles.len() => {
                Ok(rank(q, descriptions, k))
            }
            _ => Err(ModelError::Inference(format!(
                "{} vectors for {} inputs",
                e.vectors.len(),
                inputs.len()
            ))),
        });
    let mut step = no_call_step(
        StepKind::Selection,
        0,
        embedder.name(),
        Ok(String::new()),
        None,
    );
    step.wall_ms = start.elapsed().as_secs_f64() * 1e3;
    let selection = match ranked {
        Ok(top) => {
            let text: Vec<String> = top
                .iter()
                .map(|&(i, sim)| format!("{} {sim:.3}", profiles[i].id))
                .collect();
            step.outcome = StepOutcome::Ok {
                completion: Completion::text_only(text.join(", ")),
            };
            let mut idx: Vec<usize> = top.iter().map(|&(i, _)| i).collect();
            idx.sort_unstable();
            Selection {
                step,
                chosen: idx.iter().map(|&i| profiles[i].id.to_owned()).collect(),
                fallback_reason: None,
            }
        }
        Err(error) => {
            let reason = format!("embedding selection failed: {error}");
            step.outcome = StepOutcome::Failed { error };
            Selection {
                step,
                chosen: every(),
                fallback_reason: Some(reason),
            }
        }
    };
    announce(observer, &selection.step);
    selection
}

/// The `k` indices of `descriptions` most similar to `query`, most similar first (ties to the
/// earlier), with their cosine similarities.
fn rank(query: &[f32], descriptions: &[Vec<f32>], k: usize) -> Vec<(usize, f32)> {
    let mut scored: Vec<(usize, f32)> = descriptions
        .iter()
        .enumerate()
        .map(|(i, d)| (i, cosine(query, d)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

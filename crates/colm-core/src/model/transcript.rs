//! The transcript of a served collaboration ([`Transcript`]): every step's text, writer, tokens
//! and time, without its prompt — what `colm serve` keeps in the interaction log and returns
//! from `GET /v1/colm/records/{id}`. The full record of a run (prompts included) is
//! [`crate::run::Run`]; [`Transcript`] is made from it (`Run::transcript`).

use serde::{Deserialize, Serialize};

use super::progress::StepKind;

/// One step of a [`Transcript`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptStep {
    /// What the step was (`draft`, `reference`, `guidance`, `refinement`, …).
    pub step: StepKind,
    /// Round number from 1; 0 for selection.
    pub round: u32,
    /// Who wrote it: the client collaborator's id, or a server-side reference writer's id
    /// (its role or model); `None` for other server steps (selection, guidance).
    pub collaborator: Option<String>,
    /// The model that ran the step (`vote` for a vote of references, which calls none).
    pub model: String,
    /// What the step wrote; `None` when it failed, or when texts are left out (a sensitive
    /// request, `--no-log-texts`).
    pub text: Option<String>,
    /// Why the step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How the step's text was arrived at, where it was not simply generated: a vote's tally
    /// (`42: 3 of 5 votes, 1 unextracted`), a fallback's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Prompt tokens of the call (0 for a step that made none).
    pub prompt_tokens: u64,
    /// Tokens the step generated.
    pub completion_tokens: u64,
    /// Wall time of the step, ms (includes queueing in the engine).
    pub wall_ms: f64,
    /// Taken from the server's store (an earlier request asking the same question wrote it):
    /// no call was made for this request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// Every step of a collaboration, in the order the strategy made them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// The steps.
    pub steps: Vec<TranscriptStep>,
}

impl Transcript {
    /// The transcript with every text left out (tokens, timings and errors kept).
    #[must_use]
    pub fn without_texts(mut self) -> Self {
        for s in &mut self.steps {
            s.text = None;
            s.note = None;
        }
        self
    }
}

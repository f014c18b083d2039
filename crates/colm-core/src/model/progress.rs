//! What a strategy reports while it runs: the kind of each step ([`StepKind`]) and a finished
//! step's [`Progress`] (streamed as [`super::StreamEvent::Progress`]; the step itself, with its
//! completion, is [`crate::step::Step`]).

use serde::{Deserialize, Serialize};

/// Kind of a step in the record.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Server picks the top-k collaborators.
    Selection,
    /// A server-side collaborator writes its own answer to the query.
    Reference,
    /// A collaborator answers alone.
    Draft,
    /// Server aggregates answers into guidance.
    Guidance,
    /// A collaborator revises its answer with the guidance.
    Refinement,
    /// One of several independent samples (self-consistency).
    Sample,
    /// A debater's update after reading its peers' answers (debate rounds ≥ 2).
    Debate,
    /// A proposer's answer in a mixture-of-agents layer.
    Proposal,
    /// The final aggregator of a mixture of agents.
    Aggregation,
}

impl StepKind {
    /// The kind's name as in the JSON record: `selection`, `reference`, `draft`, `guidance`,
    /// `refinement`, `sample`, `debate`, `proposal`, `aggregation`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Selection => "selection",
            StepKind::Reference => "reference",
            StepKind::Draft => "draft",
            StepKind::Guidance => "guidance",
            StepKind::Refinement => "refinement",
            StepKind::Sample => "sample",
            StepKind::Debate => "debate",
            StepKind::Proposal => "proposal",
            StepKind::Aggregation => "aggregation",
        }
    }
}

/// Where a step is when it is reported ([`Progress::phase`]).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepPhase {
    /// The step's call was made; nothing generated yet.
    Started,
    /// Text the step generated since its previous report ([`Progress::text`]).
    Text,
    /// The step ended (its tokens, wall time and error are set). Reports written before phases
    /// existed were all of finished steps, hence the default.
    #[default]
    Finished,
}

/// A step as a progress report. Every step is reported when it finishes (tokens, wall time,
/// error; no text). A caller that watches live ([`crate::step::Observe::live`]) also gets
/// each step as it starts and its text as it is generated (`phase: text`, the new text in
/// `text`); a step that generated nothing itself (a vote, a reference shared from the store)
/// sends its whole text in one `text` report before it finishes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// What the step was (`draft`, `reference`, `guidance`, …).
    pub step: StepKind,
    /// Round number from 1; 0 for selection.
    pub round: u32,
    /// Collaborator id for client steps; `None` for server steps.
    pub collaborator: Option<String>,
    /// The model that ran the step.
    pub model: String,
    /// Where the step is: `started`, `text` or `finished` (the default).
    #[serde(default)]
    pub phase: StepPhase,
    /// `phase: text`: the text generated since the previous report of this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Tokens the step generated (0 when it failed or made no call, and before it finished).
    pub completion_tokens: u64,
    /// Wall time of the step, ms (before it finished: the time since it started).
    pub wall_ms: f64,
    /// Why the step failed; `None` when it succeeded or has not finished.
    pub error: Option<String>,
    /// The step's result was shared: taken from the server's store, where an earlier request
    /// asking the same question left it (no model call was made for this request).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// Set in the `started` report of the step that writes the answer: its text arrives as the
    /// chunks' content deltas, not as `text` reports.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub answer: bool,
}

impl Progress {
    /// A report of a running step (`phase` `started` or `text`) of `model`, `wall_ms` after it
    /// started.
    pub fn running(
        step: StepKind,
        round: u32,
        collaborator: Option<&str>,
        model: &str,
        phase: StepPhase,
        text: Option<String>,
        wall_ms: f64,
    ) -> Self {
        Self {
            step,
            round,
            collaborator: collaborator.map(str::to_owned),
            model: model.to_owned(),
            phase,
            text,
            completion_tokens: 0,
            wall_ms,
            error: None,
            shared: false,
            answer: false,
        }
    }
}

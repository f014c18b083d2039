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

/// A step as a progress report: what finished, who ran it, how long it took and how many
/// tokens it wrote — no text (a colm-aware client shows it while the answer is pending).
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
    /// Tokens the step generated (0 when it failed or made no call).
    pub completion_tokens: u64,
    /// Wall time of the step, ms.
    pub wall_ms: f64,
    /// Why the step failed; `None` when it succeeded.
    pub error: Option<String>,
}

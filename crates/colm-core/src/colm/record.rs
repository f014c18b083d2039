//! What a collaboration leaves: its record ([`ColmRecord`]: selection, rounds, steps, final
//! answer) and why it could not finish ([`ColmError`], carrying the partial record).

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::config::ColmConfig;
use super::references::References;
use super::selection::Selection;
use crate::answer::VoteTally;
use crate::model::{ModelError, WireStats};
use crate::step::{totals_of, ModelTotals, Step, StepKind};

/// What became of the clients' round-1 drafts (a round record's `draft`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftOutcome {
    /// Written to the end (at once, or as the fallback when no guidance came).
    Written,
    /// Not started: the guidance arrived first and nothing reads a draft.
    Skipped,
    /// Started as the fallback when the guidance was late, then stopped when it arrived.
    Cancelled,
}

/// An answer that entered an aggregation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// Collaborator id.
    pub collaborator: String,
    /// The answer text aggregated.
    pub text: String,
}

/// One draft → guidance → refinement cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Round number from 1.
    pub round: u32,
    /// Draft calls made in this round (only round 1 drafts; later rounds start from the
    /// previous refinements); a fallback draft stopped when the guidance arrived is here as a
    /// cancelled step.
    pub drafts: Vec<Step>,
    /// Round 1: whether the drafts were written, skipped (the guidance came first and nothing
    /// reads them: `draft=auto`) or cancelled; `None` in later rounds and older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<DraftOutcome>,
    /// The answers the server aggregated in this round.
    pub aggregated: Vec<Contribution>,
    /// The server's aggregation (in reference modes, the synthesis of the references); `None`
    /// only in a partial record whose drafts all failed.
    pub guidance: Option<Step>,
    /// The guidance was made from server-side inputs only (no client text): the same for every
    /// client asking the question, so shareable.
    #[serde(default)]
    pub guidance_shared: bool,
    /// The vote the guidance is the outcome of (a vote of the references, or mode `vote` of
    /// the drafts): the final answers counted, their votes, extraction failures and ties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tally: Option<VoteTally>,
    /// The collaborators that kept their own answer instead of refining (`keep_draft`: the
    /// vote was weak and counted their answer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// `reference-critique`: the server's review of each collaborator's answer against the
    /// guidance above (the guidance that collaborator refines with), in collaborator order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub critiques: Vec<Step>,
    /// Refinement calls.
    pub refinements: Vec<Step>,
}

/// A collaborator's answer at the end of the collaboration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalAnswer {
    /// Collaborator id.
    pub collaborator: String,
    /// Its model.
    pub model: String,
    /// Its last successful answer.
    pub text: String,
    /// Which step produced it (a draft when every refinement of this collaborator failed).
    pub from: StepKind,
    /// Round of that step.
    pub round: u32,
}

/// The full record of one collaboration: every prompt and answer, per-model totals, timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColmRecord {
    /// Strategy name, `colm`.
    pub strategy: String,
    /// The query.
    pub query: String,
    /// Settings used.
    pub config: ColmConfig,
    /// Name of the server model.
    pub server_model: String,
    /// Top-k selection of the client collaborators, when it ran.
    pub selection: Option<Selection>,
    /// The server-side collaborators' references (reference modes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<References>,
    /// The rounds, in order.
    pub rounds: Vec<RoundRecord>,
    /// Each surviving collaborator's final answer, in collaborator order.
    pub final_answers: Vec<FinalAnswer>,
    /// Bytes the guidance moved over the network, when it did (a remote guide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire: Option<WireStats>,
    /// Wall time of the whole collaboration, ms.
    pub wall_ms: f64,
}

impl ColmRecord {
    /// Token and time totals per model name, derived from the steps.
    pub fn usage_by_model(&self) -> BTreeMap<String, ModelTotals> {
        totals_of(self.steps())
    }

    /// The first collaborator's final answer (the client of interest when K = 1).
    pub fn answer(&self) -> Option<&str> {
        self.final_answers.first().map(|a| a.text.as_str())
    }

    /// The step that gave the first collaborator's final answer (its draft or a refinement).
    pub fn answer_step(&self) -> Option<&Step> {
        let a = self.final_answers.first()?;
        let round = self.rounds.get(a.round.checked_sub(1)? as usize)?;
        let steps = match a.from {
            StepKind::Draft => &round.drafts,
            _ => &round.refinements,
        };
        steps
            .iter()
            .find(|s| s.collaborator.as_deref() == Some(&a.collaborator) && s.text().is_some())
    }

    /// The client steps (drafts and refinements) of every round, in order.
    pub fn client_steps(&self) -> impl Iterator<Item = &Step> {
        self.rounds
            .iter()
            .flat_map(|r| r.drafts.iter().chain(&r.refinements))
    }

    /// Every step in order: selection, the references (their selection, then each), then per
    /// round drafts, guidance, critiques, refinements.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.selection
            .iter()
            .map(|s| &s.step)
            .chain(self.references.iter().flat_map(References::all_steps))
            .chain(self.rounds.iter().flat_map(|r| {
                r.drafts
                    .iter()
                    .chain(r.guidance.iter())
                    .chain(r.critiques.iter())
                    .chain(r.refinements.iter())
            }))
    }

    /// The steps computed from server-side inputs only (reference selection, references, and
    /// guidance marked shared): what a server computes once per question for all its clients.
    pub fn shared_steps(&self) -> impl Iterator<Item = &Step> {
        self.references
            .iter()
            .flat_map(References::all_steps)
            .chain(
                self.rounds
                    .iter()
                    .filter(|r| r.guidance_shared)
                    .flat_map(|r| r.guidance.iter()),
            )
    }
}

/// Why a collaboration could not finish. Each variant carries the partial record.
#[derive(Debug, thiserror::Error)]
pub enum ColmError {
    /// The configuration or collaborator list is unusable.
    #[error("invalid collaboration settings: {0}")]
    InvalidConfig(String),
    /// Every collaborator failed at one stage.
    #[error("all {} collaborators failed at the {stage:?} stage of round {round}: {}",
        .errors.len(), ModelError::list(.errors))]
    AllCollaboratorsFailed {
        /// Round number.
        round: u32,
        /// Stage (draft or refinement).
        stage: StepKind,
        /// (collaborator id, error) for each.
        errors: Vec<(String, ModelError)>,
        /// Everything recorded up to the failure.
        partial: Box<ColmRecord>,
    },
    /// The server model failed to produce guidance.
    #[error("the server model failed to aggregate round {round}: {error}")]
    GuidanceFailed {
        /// Round number.
        round: u32,
        /// The server's error.
        error: ModelError,
        /// Everything recorded up to the failure.
        partial: Box<ColmRecord>,
    },
}

//! Horizontal (multi-agent) strategies over the same [`ChatModel`] trait as CoLM
//! (Yuan et al., "LLMs over networks", arXiv 2605.08626, horizontal collaboration):
//!
//! - [`self_consistency`]: n samples of one model, majority vote of the extracted answers
//!   (Wang et al. 2023, arXiv 2203.11171);
//! - [`debate`]: N agents over R rounds, each reading its peers' answers, peers given by a
//!   [`debate::Topology`] (fully connected, ring, star) (Du et al. 2023, arXiv 2305.14325);
//! - [`moa`]: layers of proposers and an aggregator (Wang et al. 2024, arXiv 2406.04692).
//!
//! Every strategy returns a [`StrategyRecord`]: each model call as a [`Step`] with its exact
//! messages, which agent (and which side, client or server) made it, the final answer and
//! per-model totals. A failed call is recorded and the strategy goes on with the others; when
//! nothing usable is left, a [`StrategyError`] carries the partial record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::answer::VoteTally;
use crate::model::{ChatModel, ModelError, SamplingParams};
use crate::query::Query;
use crate::step::{totals_of, ModelTotals, Step, StepKind};

pub mod debate;
pub mod moa;
pub mod self_consistency;
pub mod spec;

pub use spec::{Horizontal, HorizontalSpec};

/// Where a model runs: on the device (client) or on a shared server. Decides whose token
/// budget a call spends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// A device's own model.
    #[default]
    Client,
    /// A shared server's model.
    Server,
}

impl crate::named::Named for Side {}

/// A model taking part in a horizontal strategy.
#[derive(Clone)]
pub struct Agent {
    /// Unique id within the strategy, e.g. `agent-1`, `aggregator`.
    pub id: String,
    /// Client or server.
    pub side: Side,
    /// The agent's model.
    pub model: Arc<dyn ChatModel>,
}

impl Agent {
    /// An agent `id` on `side` running `model`.
    pub fn new(id: impl Into<String>, side: Side, model: Arc<dyn ChatModel>) -> Self {
        Self {
            id: id.into(),
            side,
            model,
        }
    }

    fn info(&self) -> AgentInfo {
        AgentInfo {
            id: self.id.clone(),
            side: self.side,
            model: self.model.name().to_owned(),
        }
    }
}

/// An agent as the record names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Agent id (the `collaborator` field of its steps).
    pub id: String,
    /// Client or server.
    pub side: Side,
    /// Model name.
    pub model: String,
}

/// The full record of one run of a horizontal strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyRecord {
    /// Strategy name: `self-consistency`, `debate` or `moa`.
    pub strategy: String,
    /// The query.
    pub query: String,
    /// The strategy's settings, as JSON.
    pub config: serde_json::Value,
    /// The agents, in order.
    pub agents: Vec<AgentInfo>,
    /// Every model call in the order the strategy made them (concurrent calls of one round
    /// in agent order); `collaborator` is the agent id.
    pub steps: Vec<Step>,
    /// The final answer; `None` only in a partial record.
    pub answer: Option<String>,
    /// The vote behind the answer, for strategies that vote.
    pub tally: Option<VoteTally>,
    /// Wall time, ms.
    pub wall_ms: f64,
}

impl StrategyRecord {
    /// Token and time totals per model name, derived from the steps.
    pub fn usage_by_model(&self) -> BTreeMap<String, ModelTotals> {
        totals_of(self.steps.iter())
    }

    /// The side of the agent that made `step`; `None` for a step of no listed agent.
    pub fn side_of(&self, step: &Step) -> Option<Side> {
        let id = step.collaborator.as_deref()?;
        self.agents.iter().find(|a| a.id == id).map(|a| a.side)
    }
}

/// Why a horizontal strategy could not finish. Variants after the first carry the partial
/// record.
#[derive(Debug, thiserror::Error)]
pub enum StrategyError {
    /// The settings or agent list are unusable.
    #[error("invalid strategy settings: {0}")]
    InvalidConfig(String),
    /// Every agent failed at one stage (round or layer).
    #[error("all {} agents failed at {stage:?} {round}: {}", .errors.len(), ModelError::list(.errors))]
    AllAgentsFailed {
        /// Round or layer number, from 1.
        round: u32,
        /// Stage.
        stage: StepKind,
        /// (agent id, error) for each.
        errors: Vec<(String, ModelError)>,
        /// Everything recorded up to the failure.
        partial: Box<StrategyRecord>,
    },
    /// The final aggregator failed.
    #[error("the aggregator failed: {error}")]
    AggregatorFailed {
        /// Its error.
        error: ModelError,
        /// Everything recorded up to the failure.
        partial: Box<StrategyRecord>,
    },
}

impl StrategyError {
    /// The partial record, when the strategy got as far as calling a model.
    pub fn partial(&self) -> Option<&StrategyRecord> {
        match self {
            StrategyError::InvalidConfig(_) => None,
            StrategyError::AllAgentsFailed { partial, .. }
            | StrategyError::AggregatorFailed { partial, .. } => Some(partial),
        }
    }
}

/// An empty record of `strategy` on `query`, for `agents`.
fn new_record(
    strategy: &str,
    query: &Query,
    config: &impl Serialize,
    agents: &[&Agent],
) -> StrategyRecord {
    StrategyRecord {
        strategy: strategy.to_owned(),
        query: query.server_text().into_owned(),
        config: serde_json::to_value(config).unwrap_or(serde_json::Value::Null),
        agents: agents.iter().map(|a| a.info()).collect(),
        steps: Vec::new(),
        answer: None,
        tally: None,
        wall_ms: 0.0,
    }
}

/// Fills in the wall time since `start`.
fn finish(mut record: StrategyRecord, start: Instant) -> StrategyRecord {
    record.wall_ms = start.elapsed().as_secs_f64() * 1000.0;
    record
}

/// The sampling of agent (or sample) `i`, from 0: `params` with seed `params.seed + i`, so that
/// agents sharing one model draw different samples when `temperature > 0` (greedy ignores it).
fn agent_params(params: &SamplingParams, i: usize) -> SamplingParams {
    SamplingParams {
        seed: params.seed.wrapping_add(i as u32),
        ..params.clone()
    }
}

/// Rejects an empty agent list and duplicate ids.
fn validate_agents<'a>(agents: impl IntoIterator<Item = &'a Agent>) -> Result<(), StrategyError> {
    let ids: Vec<&str> = agents.into_iter().map(|a| a.id.as_str()).collect();
    if ids.is_empty() {
        return Err(StrategyError::InvalidConfig("no agents".into()));
    }
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            return Err(StrategyError::InvalidConfig(format!(
                "agent id {id:?} is used twice"
            )));
        }
    }
    Ok(())
}

/// The answer chosen by a majority vote over `answers` (agent order): the text of the first
/// answer whose extracted answer is the majority's, with the tally; the first answer and no
/// tally when none has an extractable answer. `None` for no answers.
fn vote(answers: &[&str]) -> Option<(String, Option<VoteTally>)> {
    let first = answers.first()?;
    match crate::answer::tally(answers) {
        Some(t) => {
            let text = answers
                .iter()
                .find(|a| crate::answer::extract_answer(a).as_deref() == Some(t.answer.as_str()))
                .unwrap_or(first);
            Some(((*text).to_owned(), Some(t)))
        }
        None => Some(((*first).to_owned(), None)),
    }
}

#[cfg(test)]
mod tests;

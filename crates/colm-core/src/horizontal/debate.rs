//! Multi-agent debate (Du et al. 2023, "Improving Factuality and Reasoning in Language Models
//! through Multiagent Debate", arXiv 2305.14325).
//!
//! Round 1: every agent answers the query alone ([`prompts::draft`], a [`StepKind::Draft`]).
//! Rounds 2..=R: every agent reads the latest answers of its peers — who is a peer is the
//! [`Topology`] — and updates its own answer in its own continuing conversation
//! ([`prompts::debate_update`], a [`StepKind::Debate`]). The final answer is the majority of
//! the agents' last answers (the paper's evaluation), ties to the earlier agent.
//!
//! A failed call is recorded; the agent keeps its last good answer (peers still read it) and
//! takes part in the next round.

use std::time::Instant;

use futures::future::join_all;
use serde::{Deserialize, Serialize};

use super::{
    agent_params, finish, new_record, validate_agents, vote, Agent, StrategyError, StrategyRecord,
};
use crate::model::{ChatMessage, SamplingParams};
use crate::prompts;
use crate::query::Query;
use crate::step::{call, StepKind, StepObserver};

/// Who reads whom between debate rounds (named `full`, `ring`, `star`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topology {
    /// Every agent reads every other agent (the paper's setting); also read as
    /// `fully_connected`.
    #[default]
    #[serde(rename = "full", alias = "fully_connected", alias = "fully-connected")]
    FullyConnected,
    /// Agent i reads agents i − 1 and i + 1 (mod N).
    Ring,
    /// Agent 1 (the hub) reads every other agent; the others read only the hub. CoLM's shape,
    /// with the hub in the server's place.
    Star,
}

impl crate::named::Named for Topology {}

impl Topology {
    /// The 0-based indices agent `i` of `n` reads, ascending, never `i` itself.
    pub fn peers(self, i: usize, n: usize) -> Vec<usize> {
        let mut peers: Vec<usize> = match self {
            Topology::FullyConnected => (0..n).collect(),
            Topology::Ring if n > 0 => vec![(i + n - 1) % n, (i + 1) % n],
            Topology::Ring => Vec::new(),
            Topology::Star if i == 0 => (0..n).collect(),
            Topology::Star => vec![0],
        };
        peers.retain(|&j| j != i && j < n);
        peers.sort_unstable();
        peers.dedup();
        peers
    }
}

/// Settings of a debate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DebateConfig {
    /// Rounds R ≥ 1 (round 1 is the independent answers; the paper uses 2–4).
    pub rounds: u32,
    /// Who reads whom.
    pub topology: Topology,
    /// Sampling of every call; agent `i` (from 0) uses seed `params.seed + i`. Agents sharing
    /// one model need `temperature > 0` to differ (Du et al. sample; `colm`'s spec defaults to
    /// 0.7).
    pub params: SamplingParams,
}

impl Default for DebateConfig {
    fn default() -> Self {
        Self {
            rounds: 2,
            topology: Topology::FullyConnected,
            params: SamplingParams::default(),
        }
    }
}

/// An agent's conversation and latest good answer.
struct Debater<'a> {
    agent: &'a Agent,
    history: Vec<ChatMessage>,
    answer: Option<String>,
}

/// Runs the debate of `agents` (N ≥ 1, unique ids) on `query`.
///
/// # Errors
/// [`StrategyError::InvalidConfig`] for no agents, duplicate ids or zero rounds;
/// [`StrategyError::AllAgentsFailed`] when every agent fails in round 1, or every agent fails
/// in a later round (the record then holds every answer so far).
pub async fn run(
    query: &Query,
    agents: &[Agent],
    config: &DebateConfig,
    observer: Option<StepObserver<'_>>,
) -> Result<StrategyRecord, StrategyError> {
    validate_agents(agents)?;
    if config.rounds == 0 {
        return Err(StrategyError::InvalidConfig(
            "rounds must be at least 1".into(),
        ));
    }
    let start = Instant::now();
    let refs: Vec<&Agent> = agents.iter().collect();
    let mut record = new_record("debate", query, config, &refs);
    let mut debaters: Vec<Debater<'_>> = agents
        .iter()
        .map(|agent| Debater {
            agent,
            history: prompts::draft(query),
            answer: None,
        })
        .collect();
    let n = debaters.len();
    let params: Vec<SamplingParams> = (0..n).map(|i| agent_params(&config.params, i)).collect();
    for round in 1..=config.rounds {
        let requests: Vec<Vec<ChatMessage>> = if round == 1 {
            debaters.iter().map(|d| d.history.clone()).collect()
        } else {
            (0..n)
                .map(|i| {
                    let peers: Vec<&str> = config
                        .topology
                        .peers(i, n)
                        .into_iter()
                        .filter_map(|j| debaters[j].answer.as_deref())
                        .collect();
                    prompts::debate_update(&debaters[i].history, query, &peers)
                })
                .collect()
        };
        let kind = if round == 1 {
            StepKind::Draft
        } else {
            StepKind::Debate
        };
        let steps = join_all(debaters.iter().zip(requests).zip(&params).map(
            |((d, messages), params)| {
                call(
                    kind,
                    round,
                    Some(&d.agent.id),
                    d.agent.model.as_ref(),
                    messages,
                    params,
                    observer,
                )
            },
        ))
        .await;
        let mut errors = Vec::new();
        for (d, step) in debaters.iter_mut().zip(&steps) {
            match step.text() {
                Some(text) => {
                    d.history = step.messages.clone();
                    d.history.push(ChatMessage::assistant(text));
                    d.answer = Some(text.to_owned());
                }
                None => {
                    if let Some(e) = step.error() {
                        errors.push((d.agent.id.clone(), e.clone()));
                    }
                }
            }
        }
        record.steps.extend(steps);
        if errors.len() == n {
            return Err(StrategyError::AllAgentsFailed {
                round,
                stage: kind,
                errors,
                partial: Box::new(finish(record, start)),
            });
        }
    }
    let last: Vec<&str> = debaters
        .iter()
        .filter_map(|d| d.answer.as_deref())
        .collect();
    if let Some((answer, tally)) = vote(&last) {
        record.answer = Some(answer);
        record.tally = tally;
    }
    Ok(finish(record, start))
}

//! Self-consistency (Wang et al. 2023, "Self-Consistency Improves Chain of Thought Reasoning
//! in Language Models", arXiv 2203.11171): sample `n` answers of one model with temperature,
//! extract each final answer ([`crate::answer::extract_answer`]) and return the majority.

use std::time::Instant;

use futures::future::join_all;
use serde::{Deserialize, Serialize};

use super::{
    agent_params, finish, new_record, validate_agents, vote, Agent, StrategyError, StrategyRecord,
};
use crate::model::SamplingParams;
use crate::prompts;
use crate::query::Query;
use crate::step::{call, StepKind, StepObserver};

/// Settings of self-consistency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfConsistencyConfig {
    /// Samples drawn (n ≥ 1).
    pub samples: usize,
    /// Sampling of every sample; sample `i` (from 0) uses seed `params.seed + i`. Greedy
    /// (`temperature == 0`) would draw one answer n times, so the default is 0.7 (the paper
    /// samples with T = 0.5–0.7).
    pub params: SamplingParams,
}

impl Default for SelfConsistencyConfig {
    fn default() -> Self {
        Self {
            samples: 5,
            params: SamplingParams {
                temperature: 0.7,
                ..SamplingParams::default()
            },
        }
    }
}

/// Draws the samples concurrently (prompt [`prompts::draft`]) and votes.
///
/// The answer is the text of the first sample that gives the majority answer; with no
/// extractable answer in any sample, the first successful sample.
///
/// # Errors
/// [`StrategyError::InvalidConfig`] for zero samples; [`StrategyError::AllAgentsFailed`]
/// when every sample fails.
pub async fn run(
    query: &Query,
    agent: &Agent,
    config: &SelfConsistencyConfig,
    observer: Option<StepObserver<'_>>,
) -> Result<StrategyRecord, StrategyError> {
    validate_agents([agent])?;
    if config.samples == 0 {
        return Err(StrategyError::InvalidConfig(
            "samples must be at least 1".into(),
        ));
    }
    let start = Instant::now();
    let mut record = new_record("self-consistency", query, config, &[agent]);
    let params: Vec<SamplingParams> = (0..config.samples)
        .map(|i| agent_params(&config.params, i))
        .collect();
    record.steps = join_all(params.iter().map(|p| {
        call(
            StepKind::Sample,
            1,
            Some(&agent.id),
            agent.model.as_ref(),
            prompts::draft(query),
            p,
            observer,
        )
    }))
    .await;
    let answers: Vec<&str> = record.steps.iter().filter_map(|s| s.text()).collect();
    match vote(&answers) {
        Some((answer, tally)) => {
            record.answer = Some(answer);
            record.tally = tally;
            Ok(finish(record, start))
        }
        None => {
            let errors = record
                .steps
                .iter()
                .filter_map(|s| s.error().map(|e| (agent.id.clone(), e.clone())))
                .collect();
            Err(StrategyError::AllAgentsFailed {
                round: 1,
                stage: StepKind::Sample,
                errors,
                partial: Box::new(finish(record, start)),
            })
        }
    }
}

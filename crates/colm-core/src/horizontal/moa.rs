//! Mixture-of-agents (Wang et al. 2024, "Mixture-of-Agents Enhances Large Language Model
//! Capabilities", arXiv 2406.04692).
//!
//! Layer 1: every proposer answers the query alone ([`prompts::draft`]). Layers 2..=L: every
//! proposer answers again with the previous layer's responses in the aggregate-and-synthesize
//! prompt ([`prompts::moa_aggregate`]). Last: the aggregator synthesises the last layer's
//! responses into the final answer, with the same prompt. All calls are
//! [`StepKind::Proposal`] (round = layer) except the aggregator's [`StepKind::Aggregation`]
//! (round L + 1).
//!
//! A failed proposer is recorded and left out of the next layer's references; a layer where
//! every proposer fails ends the run.

use std::time::Instant;

use futures::future::join_all;
use serde::{Deserialize, Serialize};

use super::{
    agent_params, finish, new_record, validate_agents, Agent, StrategyError, StrategyRecord,
};
use crate::model::SamplingParams;
use crate::prompts;
use crate::query::Query;
use crate::step::{call, call_watched, StepKind, Watch};

/// Settings of a mixture of agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoaConfig {
    /// Proposer layers L ≥ 1 before the aggregator (the paper uses 3 with 6 proposers;
    /// "MoA-Lite" uses 2).
    pub layers: u32,
    /// Sampling of the proposers; proposer `i` (from 0) uses seed `proposer_params.seed + i`.
    /// Proposers sharing one model need `temperature > 0` to differ (the paper's proposers
    /// sample at 0.7; `colm`'s spec defaults to it).
    pub proposer_params: SamplingParams,
    /// Sampling of the aggregator.
    pub aggregator_params: SamplingParams,
}

impl Default for MoaConfig {
    fn default() -> Self {
        Self {
            layers: 1,
            proposer_params: SamplingParams::default(),
            aggregator_params: SamplingParams::default(),
        }
    }
}

/// Runs the mixture: `proposers` (≥ 1) in `config.layers` layers, then `aggregator`.
///
/// # Errors
/// [`StrategyError::InvalidConfig`] for no proposers, duplicate ids (aggregator included) or
/// zero layers; [`StrategyError::AllAgentsFailed`] when a whole layer fails;
/// [`StrategyError::AggregatorFailed`] when the aggregator fails (the partial record keeps
/// every proposal).
pub async fn run(
    query: &Query,
    proposers: &[Agent],
    aggregator: &Agent,
    config: &MoaConfig,
    watch: Watch<'_>,
) -> Result<StrategyRecord, StrategyError> {
    let observer = watch.steps;
    validate_agents(proposers)?;
    validate_agents(proposers.iter().chain([aggregator]))?;
    if config.layers == 0 {
        return Err(StrategyError::InvalidConfig(
            "layers must be at least 1".into(),
        ));
    }
    let start = Instant::now();
    let mut agents: Vec<&Agent> = proposers.iter().collect();
    agents.push(aggregator);
    let mut record = new_record("moa", query, config, &agents);
    let mut previous: Vec<String> = Vec::new();
    for layer in 1..=config.layers {
        let messages = if layer == 1 {
            prompts::draft(query)
        } else {
            let refs: Vec<&str> = previous.iter().map(String::as_str).collect();
            prompts::moa_aggregate(query, &refs)
        };
        let params: Vec<SamplingParams> = (0..proposers.len())
            .map(|i| agent_params(&config.proposer_params, i))
            .collect();
        let steps = join_all(proposers.iter().zip(&params).map(|(p, params)| {
            call(
                StepKind::Proposal,
                layer,
                Some(&p.id),
                p.model.as_ref(),
                messages.clone(),
                params,
                observer,
            )
        }))
        .await;
        let texts: Vec<String> = steps
            .iter()
            .filter_map(|s| s.text().map(str::to_owned))
            .collect();
        let errors: Vec<_> = proposers
            .iter()
            .zip(&steps)
            .filter_map(|(p, s)| s.error().map(|e| (p.id.clone(), e.clone())))
            .collect();
        record.steps.extend(steps);
        if texts.is_empty() {
            return Err(StrategyError::AllAgentsFailed {
                round: layer,
                stage: StepKind::Proposal,
                errors,
                partial: Box::new(finish(record, start)),
            });
        }
        previous = texts;
    }
    let refs: Vec<&str> = previous.iter().map(String::as_str).collect();
    // The aggregator writes the answer: stream it.
    let step = call_watched(
        StepKind::Aggregation,
        config.layers + 1,
        Some(&aggregator.id),
        aggregator.model.as_ref(),
        prompts::moa_aggregate(query, &refs),
        &config.aggregator_params,
        watch,
    )
    .await;
    let outcome = step
        .text()
        .map(str::to_owned)
        .ok_or_else(|| step.error().cloned());
    record.steps.push(step);
    match outcome {
        Ok(answer) => {
            record.answer = Some(answer);
            Ok(finish(record, start))
        }
        Err(error) => Err(StrategyError::AggregatorFailed {
            error: error.unwrap_or_else(|| {
                crate::model::ModelError::Inference("the aggregator returned nothing".into())
            }),
            partial: Box::new(finish(record, start)),
        }),
    }
}

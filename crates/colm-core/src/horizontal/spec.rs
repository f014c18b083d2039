//! Horizontal strategies named on a command line or in a model name, and built over the client
//! and server models at hand.
//!
//! Syntax: `name[:key=value,…]`, with
//! - `self-consistency[:n=5,t=0.7,on=client]` — n samples at temperature t of the first client
//!   model (`on=server`: of the server model);
//! - `debate[:agents=3,rounds=2,topology=full,t=0.7,on=client]` — agents run the client models
//!   in turn (`on=server`: all the server model); topology `full`, `ring` or `star`; agents
//!   sample at temperature t (agent i with seed + i), as Du et al. do, so that agents sharing a
//!   model do not all write the same greedy answer (`t=0`: the run's own sampling);
//! - `moa[:proposers=3,layers=1,t=0.7]` — proposers run the client models in turn and sample at
//!   temperature t (the paper's 0.7; proposer i with seed + i; `t=0`: the run's own sampling),
//!   the server model aggregates with the run's sampling (greedy by default).

use std::sync::Arc;

use super::debate::{DebateConfig, Topology};
use super::moa::MoaConfig;
use super::self_consistency::SelfConsistencyConfig;
use super::{debate, moa, self_consistency, Agent, Side, StrategyError, StrategyRecord};

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;
use crate::model::{ChatModel, SamplingParams};
use crate::named::Named;
use crate::options::text;
use crate::query::Query;
use crate::step::Watch;

/// Options of `self-consistency` (text keys `n`, `t`, `on`; `None`: the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SelfConsistencyOptions {
    /// Samples, at least 1 (default 5).
    #[serde(rename = "n")]
    pub samples: Option<usize>,
    /// Sampling temperature, above 0 (default 0.7).
    #[serde(rename = "t")]
    pub temperature: Option<f64>,
    /// Whose model samples: `client` (default: the first client model) or `server`.
    #[serde(rename = "on")]
    pub side: Option<Side>,
}

/// Options of `debate` (text keys `agents`, `rounds`, `topology`, `t`, `on`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DebateOptions {
    /// Agents, at least 1 (default 3); they run the client models in turn.
    pub agents: Option<usize>,
    /// Rounds, at least 1 (default 2).
    pub rounds: Option<u32>,
    /// Who reads whom: `full` (default), `ring` or `star`.
    pub topology: Option<Topology>,
    /// Agents' sampling temperature, ≥ 0 (default [`AGENT_TEMPERATURE`]; 0: the run's own
    /// sampling).
    #[serde(rename = "t")]
    pub temperature: Option<f64>,
    /// Whose models debate: `client` (default) or `server` (all the server model).
    #[serde(rename = "on")]
    pub side: Option<Side>,
}

/// Options of `moa` (text keys `proposers`, `layers`, `t`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MoaOptions {
    /// Proposers per layer, at least 1 (default 3); they run the client models in turn.
    pub proposers: Option<usize>,
    /// Proposer layers, at least 1 (default 1).
    pub layers: Option<u32>,
    /// Proposers' sampling temperature, ≥ 0 (default [`AGENT_TEMPERATURE`]; 0: the run's own
    /// sampling).
    #[serde(rename = "t")]
    pub temperature: Option<f64>,
}

/// A parsed horizontal strategy: its name and options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HorizontalSpec {
    /// Self-consistency.
    SelfConsistency(SelfConsistencyOptions),
    /// Debate.
    Debate(DebateOptions),
    /// Mixture of agents (client proposers, server aggregator).
    Moa(MoaOptions),
}

/// The names [`HorizontalSpec::parse`] accepts before the `:`.
pub const NAMES: [&str; 3] = ["self-consistency", "debate", "moa"];

/// The default sampling temperature of debate agents and MoA proposers.
pub const AGENT_TEMPERATURE: f64 = 0.7;

/// Checks a count given for `key`: at least 1.
fn at_least_one(key: &str, n: Option<usize>) -> Result<(), String> {
    match n {
        Some(0) => Err(format!("`{key}` must be a number ≥ 1, got `0`")),
        _ => Ok(()),
    }
}

/// Checks a temperature given for `t`: finite and ≥ 0 (> 0 when `positive`).
fn check_temperature(t: Option<f64>, positive: bool) -> Result<(), String> {
    match t {
        Some(t) if !t.is_finite() || t < 0.0 || (positive && t == 0.0) => Err(format!(
            "`t` must be a number {} 0, got `{t}`",
            if positive { ">" } else { "≥" }
        )),
        _ => Ok(()),
    }
}

impl SelfConsistencyOptions {
    const SAMPLES: usize = 5;
    const TEMPERATURE: f64 = 0.7;

    /// Every option at its default.
    pub fn defaults() -> Self {
        Self {
            samples: Some(Self::SAMPLES),
            temperature: Some(Self::TEMPERATURE),
            side: Some(Side::default()),
        }
    }

    fn check(&self) -> Result<(), String> {
        at_least_one("n", self.samples)?;
        check_temperature(self.temperature, true)
    }
}

impl DebateOptions {
    const AGENTS: usize = 3;
    const ROUNDS: u32 = 2;

    /// Every option at its default.
    pub fn defaults() -> Self {
        Self {
            agents: Some(Self::AGENTS),
            rounds: Some(Self::ROUNDS),
            topology: Some(Topology::default()),
            temperature: Some(AGENT_TEMPERATURE),
            side: Some(Side::default()),
        }
    }

    fn check(&self) -> Result<(), String> {
        at_least_one("agents", self.agents)?;
        at_least_one("rounds", self.rounds.map(|r| r as usize))?;
        check_temperature(self.temperature, false)
    }
}

impl MoaOptions {
    const PROPOSERS: usize = 3;
    const LAYERS: u32 = 1;

    /// Every option at its default.
    pub fn defaults() -> Self {
        Self {
            proposers: Some(Self::PROPOSERS),
            layers: Some(Self::LAYERS),
            temperature: Some(AGENT_TEMPERATURE),
        }
    }

    fn check(&self) -> Result<(), String> {
        at_least_one("proposers", self.proposers)?;
        at_least_one("layers", self.layers.map(|l| l as usize))?;
        check_temperature(self.temperature, false)
    }
}

/// `options` with the ones equal to their default left out: equal strategies compare equal.
fn canonical<T: Serialize + serde::de::DeserializeOwned + Clone>(options: T, defaults: &T) -> T {
    text::without_defaults(&options, defaults).unwrap_or(options)
}

impl HorizontalSpec {
    /// Parses one of [`NAMES`] with its options (module docs), through the text form of
    /// options ([`crate::options::text`]).
    ///
    /// # Errors
    /// A message naming the unknown strategy, key or bad value.
    pub fn parse(spec: &str) -> Result<Self, Invalid> {
        let (head, args) = spec.split_once(':').unwrap_or((spec, ""));
        let what = format!("{head} option");
        match head {
            "self-consistency" => {
                let o: SelfConsistencyOptions = text::parse(&what, args)?;
                o.check()?;
                Ok(HorizontalSpec::SelfConsistency(canonical(
                    o,
                    &SelfConsistencyOptions::defaults(),
                )))
            }
            "debate" => {
                let o: DebateOptions = text::parse(&what, args)?;
                o.check()?;
                Ok(HorizontalSpec::Debate(canonical(
                    o,
                    &DebateOptions::defaults(),
                )))
            }
            "moa" => {
                let o: MoaOptions = text::parse(&what, args)?;
                o.check()?;
                Ok(HorizontalSpec::Moa(canonical(o, &MoaOptions::defaults())))
            }
            other => Err(Invalid(format!(
                "unknown strategy `{other}` ({})",
                NAMES.join(", ")
            ))),
        }
    }

    /// The canonical name: the strategy with the options that differ from the defaults, in
    /// the order of the module docs (`debate:topology=ring`).
    pub fn name(&self) -> String {
        match self {
            HorizontalSpec::SelfConsistency(o) => {
                text::named("self-consistency", o, &SelfConsistencyOptions::defaults())
            }
            HorizontalSpec::Debate(o) => text::named("debate", o, &DebateOptions::defaults()),
            HorizontalSpec::Moa(o) => text::named("moa", o, &MoaOptions::defaults()),
        }
    }

    /// Builds the strategy over `clients` (used in turn; at least one) and `server`.
    ///
    /// # Errors
    /// A message when `clients` is empty.
    pub fn build(
        &self,
        clients: &[Arc<dyn ChatModel>],
        server: Arc<dyn ChatModel>,
    ) -> Result<Horizontal, Invalid> {
        if clients.is_empty() {
            return Err("at least one client model is needed".into());
        }
        let pick = |side: Side, i: usize| match side {
            Side::Client => clients[i % clients.len()].clone(),
            Side::Server => server.clone(),
        };
        Ok(match self {
            HorizontalSpec::SelfConsistency(o) => {
                let side = o.side.unwrap_or_default();
                Horizontal::SelfConsistency {
                    agent: Agent::new(format!("{}-1", side.name()), side, pick(side, 0)),
                    samples: o.samples.unwrap_or(SelfConsistencyOptions::SAMPLES),
                    temperature: o.temperature.unwrap_or(SelfConsistencyOptions::TEMPERATURE)
                        as f32,
                }
            }
            HorizontalSpec::Debate(o) => {
                let side = o.side.unwrap_or_default();
                Horizontal::Debate {
                    agents: (0..o.agents.unwrap_or(DebateOptions::AGENTS))
                        .map(|i| Agent::new(format!("agent-{}", i + 1), side, pick(side, i)))
                        .collect(),
                    rounds: o.rounds.unwrap_or(DebateOptions::ROUNDS),
                    topology: o.topology.unwrap_or_default(),
                    temperature: agent_temperature(o.temperature),
                }
            }
            HorizontalSpec::Moa(o) => Horizontal::Moa {
                proposers: (0..o.proposers.unwrap_or(MoaOptions::PROPOSERS))
                    .map(|i| {
                        Agent::new(
                            format!("proposer-{}", i + 1),
                            Side::Client,
                            pick(Side::Client, i),
                        )
                    })
                    .collect(),
                aggregator: Agent::new("aggregator", Side::Server, server.clone()),
                layers: o.layers.unwrap_or(MoaOptions::LAYERS),
                temperature: agent_temperature(o.temperature),
            },
        })
    }
}

/// An agent's temperature of the text form as the sampler takes it (default
/// [`AGENT_TEMPERATURE`]).
fn agent_temperature(t: Option<f64>) -> f32 {
    t.unwrap_or(AGENT_TEMPERATURE) as f32
}

/// A horizontal strategy ready to run.
#[derive(Clone)]
pub enum Horizontal {
    /// Self-consistency over one agent.
    SelfConsistency {
        /// The sampled agent.
        agent: Agent,
        /// Samples.
        samples: usize,
        /// Sampling temperature.
        temperature: f32,
    },
    /// Debate.
    Debate {
        /// The debaters.
        agents: Vec<Agent>,
        /// Rounds.
        rounds: u32,
        /// Who reads whom.
        topology: Topology,
        /// Agents' sampling temperature (0: the caller's sampling).
        temperature: f32,
    },
    /// Mixture of agents.
    Moa {
        /// Proposers of every layer.
        proposers: Vec<Agent>,
        /// The final aggregator.
        aggregator: Agent,
        /// Proposer layers.
        layers: u32,
        /// Proposers' sampling temperature (0: the caller's sampling).
        temperature: f32,
    },
}

impl Horizontal {
    /// Runs the strategy on `query`; `params` sets every call's sampling, except that
    /// self-consistency samples, debate agents and MoA proposers use the strategy's own
    /// temperature when it is above 0 (sample, agent or proposer i adds i to the seed).
    ///
    /// # Errors
    /// As the strategy's `run`.
    pub async fn run(
        &self,
        query: &Query,
        params: &SamplingParams,
        watch: Watch<'_>,
    ) -> Result<StrategyRecord, StrategyError> {
        let observer = watch.steps;
        match self {
            Horizontal::SelfConsistency {
                agent,
                samples,
                temperature,
            } => {
                let config = SelfConsistencyConfig {
                    samples: *samples,
                    params: with_temperature(params, *temperature),
                };
                self_consistency::run(query, agent, &config, observer).await
            }
            Horizontal::Debate {
                agents,
                rounds,
                topology,
                temperature,
            } => {
                let config = DebateConfig {
                    rounds: *rounds,
                    topology: *topology,
                    params: with_temperature(params, *temperature),
                };
                debate::run(query, agents, &config, observer).await
            }
            Horizontal::Moa {
                proposers,
                aggregator,
                layers,
                temperature,
            } => {
                let config = MoaConfig {
                    layers: *layers,
                    proposer_params: with_temperature(params, *temperature),
                    aggregator_params: params.clone(),
                };
                moa::run(query, proposers, aggregator, &config, watch).await
            }
        }
    }
}

/// `params` with `temperature` when it is above 0, else `params` as they are.
fn with_temperature(params: &SamplingParams, temperature: f32) -> SamplingParams {
    if temperature > 0.0 {
        SamplingParams {
            temperature,
            ..params.clone()
        }
    } else {
        params.clone()
    }
}

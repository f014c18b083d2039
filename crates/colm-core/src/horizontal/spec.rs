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

use crate::model::{ChatModel, SamplingParams};
use crate::query::Query;
use crate::step::Watch;

/// A parsed horizontal strategy.
#[derive(Debug, Clone, PartialEq)]
pub enum HorizontalSpec {
    /// Self-consistency.
    SelfConsistency {
        /// Samples n ≥ 1.
        samples: usize,
        /// Sampling temperature (> 0).
        temperature: f32,
        /// Whose model samples.
        side: Side,
    },
    /// Debate.
    Debate {
        /// Agents N ≥ 1.
        agents: usize,
        /// Rounds R ≥ 1.
        rounds: u32,
        /// Who reads whom.
        topology: Topology,
        /// Agents' sampling temperature (0: the run's own sampling).
        temperature: f32,
        /// Whose models debate.
        side: Side,
    },
    /// Mixture of agents (client proposers, server aggregator).
    Moa {
        /// Proposers per layer ≥ 1.
        proposers: usize,
        /// Proposer layers ≥ 1.
        layers: u32,
        /// Proposers' sampling temperature (0: the run's own sampling).
        temperature: f32,
    },
}

/// The names [`HorizontalSpec::parse`] accepts before the `:`.
pub const NAMES: [&str; 3] = ["self-consistency", "debate", "moa"];

/// Splits `key=value,…` into pairs.
///
/// # Errors
/// A message naming the item of `spec` that is not `key=value`.
pub fn options<'a>(spec: &str, args: &'a str) -> Result<Vec<(&'a str, &'a str)>, String> {
    args.split(',')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            kv.split_once('=')
                .ok_or_else(|| format!("`{kv}` in `{spec}` is not key=value"))
        })
        .collect()
}

/// Parses a whole number ≥ 1 given for `key`.
///
/// # Errors
/// A message naming the key and the value.
pub fn count(key: &str, value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("`{key}` must be a number ≥ 1, got `{value}`"))
}

/// Parses a temperature ≥ 0 given for `t`.
///
/// # Errors
/// A message naming the value when it is not a finite number ≥ 0.
pub fn temperature(value: &str) -> Result<f32, String> {
    value
        .parse::<f32>()
        .ok()
        .filter(|t| *t >= 0.0 && t.is_finite())
        .ok_or_else(|| format!("`t` must be a number ≥ 0, got `{value}`"))
}

/// The default sampling temperature of debate agents and MoA proposers.
pub const AGENT_TEMPERATURE: f32 = 0.7;

fn side(value: &str) -> Result<Side, String> {
    match value {
        "client" => Ok(Side::Client),
        "server" => Ok(Side::Server),
        other => Err(format!("`on` must be `client` or `server`, got `{other}`")),
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Client => "client",
        Side::Server => "server",
    }
}

impl HorizontalSpec {
    /// Parses one of [`NAMES`] with its options (module docs).
    ///
    /// # Errors
    /// A message naming the unknown strategy, key or bad value.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (head, args) = spec.split_once(':').unwrap_or((spec, ""));
        let opts = options(spec, args)?;
        let unknown =
            |key: &str, known: &str| Err(format!("unknown {head} option `{key}` ({known})"));
        match head {
            "self-consistency" => {
                let (mut samples, mut temperature, mut on) = (5, 0.7, Side::Client);
                for (key, value) in opts {
                    match key {
                        "n" => samples = count(key, value)?,
                        "t" => {
                            temperature = value
                                .parse::<f32>()
                                .ok()
                                .filter(|t| *t > 0.0 && t.is_finite())
                                .ok_or_else(|| format!("`t` must be a number > 0, got `{value}`"))?
                        }
                        "on" => on = side(value)?,
                        _ => return unknown(key, "n, t, on"),
                    }
                }
                Ok(HorizontalSpec::SelfConsistency {
                    samples,
                    temperature,
                    side: on,
                })
            }
            "debate" => {
                let (mut agents, mut rounds, mut topology, mut t, mut on) = (
                    3,
                    2,
                    Topology::FullyConnected,
                    AGENT_TEMPERATURE,
                    Side::Client,
                );
                for (key, value) in opts {
                    match key {
                        "agents" => agents = count(key, value)?,
                        "rounds" => rounds = count(key, value)? as u32,
                        "topology" => topology = Topology::parse(value)?,
                        "t" => t = temperature(value)?,
                        "on" => on = side(value)?,
                        _ => return unknown(key, "agents, rounds, topology, t, on"),
                    }
                }
                Ok(HorizontalSpec::Debate {
                    agents,
                    rounds,
                    topology,
                    temperature: t,
                    side: on,
                })
            }
            "moa" => {
                let (mut proposers, mut layers, mut t) = (3, 1, AGENT_TEMPERATURE);
                for (key, value) in opts {
                    match key {
                        "proposers" => proposers = count(key, value)?,
                        "layers" => layers = count(key, value)? as u32,
                        "t" => t = temperature(value)?,
                        _ => return unknown(key, "proposers, layers, t"),
                    }
                }
                Ok(HorizontalSpec::Moa {
                    proposers,
                    layers,
                    temperature: t,
                })
            }
            other => Err(format!("unknown strategy `{other}` ({})", NAMES.join(", "))),
        }
    }

    /// The canonical name: the strategy with the options that differ from the defaults, in
    /// the order of the module docs (`debate:topology=ring`).
    pub fn name(&self) -> String {
        let (head, opts) = match self {
            HorizontalSpec::SelfConsistency {
                samples,
                temperature,
                side,
            } => {
                let mut o = Vec::new();
                if *samples != 5 {
                    o.push(format!("n={samples}"));
                }
                if *temperature != 0.7 {
                    o.push(format!("t={temperature}"));
                }
                if *side != Side::Client {
                    o.push(format!("on={}", side_name(*side)));
                }
                ("self-consistency", o)
            }
            HorizontalSpec::Debate {
                agents,
                rounds,
                topology,
                temperature,
                side,
            } => {
                let mut o = Vec::new();
                if *agents != 3 {
                    o.push(format!("agents={agents}"));
                }
                if *rounds != 2 {
                    o.push(format!("rounds={rounds}"));
                }
                if *topology != Topology::FullyConnected {
                    o.push(format!("topology={}", topology.name()));
                }
                if *temperature != AGENT_TEMPERATURE {
                    o.push(format!("t={temperature}"));
                }
                if *side != Side::Client {
                    o.push(format!("on={}", side_name(*side)));
                }
                ("debate", o)
            }
            HorizontalSpec::Moa {
                proposers,
                layers,
                temperature,
            } => {
                let mut o = Vec::new();
                if *proposers != 3 {
                    o.push(format!("proposers={proposers}"));
                }
                if *layers != 1 {
                    o.push(format!("layers={layers}"));
                }
                if *temperature != AGENT_TEMPERATURE {
                    o.push(format!("t={temperature}"));
                }
                ("moa", o)
            }
        };
        if opts.is_empty() {
            head.to_owned()
        } else {
            format!("{head}:{}", opts.join(","))
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
    ) -> Result<Horizontal, String> {
        if clients.is_empty() {
            return Err("at least one client model is needed".into());
        }
        let pick = |side: Side, i: usize| match side {
            Side::Client => clients[i % clients.len()].clone(),
            Side::Server => server.clone(),
        };
        Ok(match self {
            HorizontalSpec::SelfConsistency {
                samples,
                temperature,
                side,
            } => Horizontal::SelfConsistency {
                agent: Agent::new(format!("{}-1", side_name(*side)), *side, pick(*side, 0)),
                samples: *samples,
                temperature: *temperature,
            },
            HorizontalSpec::Debate {
                agents,
                rounds,
                topology,
                temperature,
                side,
            } => Horizontal::Debate {
                agents: (0..*agents)
                    .map(|i| Agent::new(format!("agent-{}", i + 1), *side, pick(*side, i)))
                    .collect(),
                rounds: *rounds,
                topology: *topology,
                temperature: *temperature,
            },
            HorizontalSpec::Moa {
                proposers,
                layers,
                temperature,
            } => Horizontal::Moa {
                proposers: (0..*proposers)
                    .map(|i| {
                        Agent::new(
                            format!("proposer-{}", i + 1),
                            Side::Client,
                            pick(Side::Client, i),
                        )
                    })
                    .collect(),
                aggregator: Agent::new("aggregator", Side::Server, server.clone()),
                layers: *layers,
                temperature: *temperature,
            },
        })
    }
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

//! Strategies under evaluation: what answers a turn of an item.
//!
//! Specs on the command line (`--strategy`):
//! - `local`: the client model alone (the first `--client`), prompt [`prompts::draft`];
//! - `server`: the server model alone, the same prompt;
//! - `colm[:key=value,…]`: a CoLM collaboration run by [`ColmModel::collaborate`] — the code
//!   the server's virtual `colm` model runs — with keys `k` (client collaborators, default 1;
//!   the `--client` models in turn), `rounds` (default 1), `top_k` (server selection of the
//!   clients, default off), `mode` (`reference` default, `reference-critique`, `synthesis`,
//!   `critique`, `vote`, `auto`), and for the reference modes `refs` (references per query,
//!   default 1), `pool` (the server-side writers, all on the server model: `seeds`, default —
//!   writer 1 greedy with the run's sampling, so its reference is the `server` strategy's very
//!   request, writers 2.. at temperature 0.7 with seeds 1, 2, …; or `roles` — the four
//!   specialisations of [`prompts::SPECIALISATIONS`], greedy, top `refs` chosen by `select`),
//!   `select` (`keywords` default, `model`) and `drafts` (`on`: the client's draft is
//!   aggregated with the references; default `off`); for every mode, `refine` (`draft`: the
//!   client sees its draft next to the guidance; `guidance`: only the guidance, in the system
//!   prompt, as the CoLM reference code — not with the critique modes; default: the mode's,
//!   `GuidanceMode::default_refine`, named in the strategy only when another is asked for);
//! - `self-consistency[:n,t,on]`, `debate[:agents,rounds,topology,on]`, `moa[:proposers,layers]`:
//!   the horizontal strategies of `colm_core::horizontal` (options in
//!   `colm_core::horizontal::spec`), agents on the `--client` models in turn, the server model
//!   where a strategy puts one (MoA's aggregator, `on=server`). Tokens and server calls are
//!   counted by the side of the agent that made each call;
//! - `cascade:[tau=T,][agree=N,share=S,][to=remote|colm]`: the router of `colm_core::vertical`
//!   with only its confidence cascade — the client drafts, a draft with mean token
//!   log-probability below T escalates to the server model (`remote`, default) or to a CoLM
//!   round on the draft (`colm`). With `agree=N`, a draft that passed T (or every draft, without
//!   `tau`) is also sampled N more times at temperature 0.7 and escalates when fewer than a share
//!   S (default 0.75) of the samples reach its final answer (`AgreementConfig`).
//!
//! A multi-turn item (MT-Bench) is answered turn by turn: each turn sees the earlier turns and
//! the strategy's own earlier answers.

use std::sync::Arc;
use std::time::Instant;

use colm_core::colm::references::{ReferenceConfig, ReferenceWriter, Selector};
use colm_core::colm::{
    query_of, Collaborator, ColmConfig, ColmError, ColmModel, ColmRecord, Step, StepKind,
};
use colm_core::guidance::GuidanceMode;
use colm_core::horizontal::{spec, Horizontal, HorizontalSpec, Side, StrategyRecord};
use colm_core::prompts::RefineContext;
use colm_core::vertical::{AgreementConfig, Route, Router, RouterConfig, RouterRecord};
use colm_core::{prompts, ChatMessage, ChatModel, Completion, SamplingParams, Usage};
use serde::{Deserialize, Serialize};

/// A parsed `--strategy` value.
#[derive(Debug, Clone, PartialEq)]
pub enum StrategySpec {
    /// The client model alone.
    Local,
    /// The server model alone.
    Server,
    /// CoLM.
    Colm {
        /// Collaborators (K ≥ 1).
        k: usize,
        /// Rounds (R ≥ 1).
        rounds: u32,
        /// Top-k selection of the clients by the server, when set.
        top_k: Option<usize>,
        /// Guidance mode.
        mode: GuidanceMode,
        /// References per query and how their writers are selected.
        refs: ReferenceConfig,
        /// The server-side writers.
        pool: WriterPool,
        /// The client's draft is aggregated with the references.
        drafts: bool,
        /// What the refinement prompt shows besides the guidance (the mode's default when
        /// `None`).
        refine: Option<RefineContext>,
    },
    /// A horizontal strategy: self-consistency, debate or mixture-of-agents.
    Horizontal(HorizontalSpec),
    /// The device–cloud router's confidence cascade: the client drafts; a draft with mean
    /// token log-probability below `tau`, or whose sampled drafts agree too little with it,
    /// escalates on `to` (`colm` or `remote`).
    Cascade {
        /// Threshold τ, nats (≤ 0); `None`: only agreement decides.
        tau: Option<f64>,
        /// Agreement of sampled drafts, when set.
        agreement: Option<AgreementConfig>,
        /// Where escalations go.
        to: Route,
    },
}

impl StrategySpec {
    /// Parses `local`, `server` or `colm[:k=K,rounds=R,top_k=N,mode=M]`.
    ///
    /// # Errors
    /// A message naming the unknown strategy, key or value.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (head, args) = spec.split_once(':').unwrap_or((spec, ""));
        match head {
            "local" | "server" if !args.is_empty() => {
                Err(format!("strategy `{head}` takes no options (got `{args}`)"))
            }
            "local" => Ok(StrategySpec::Local),
            "server" => Ok(StrategySpec::Server),
            "colm" => {
                let defaults = ColmConfig::default();
                let (mut k, mut rounds, mut top_k, mut mode) = (1, 1, None, defaults.guidance_mode);
                let (mut refs, mut pool, mut drafts) =
                    (defaults.references, WriterPool::default(), false);
                let mut refine = None;
                let mut reference_keys = Vec::new();
                for (key, value) in spec::options(spec, args)? {
                    match key {
                        "k" => k = spec::count(key, value)?,
                        "rounds" => rounds = spec::count(key, value)? as u32,
                        "top_k" => top_k = Some(spec::count(key, value)?),
                        "mode" => mode = GuidanceMode::parse(value, None)?,
                        "refs" => refs.k = spec::count(key, value)?,
                        "pool" => pool = WriterPool::parse(value)?,
                        "select" => refs.selector = Selector::parse(value)?,
                        "drafts" => drafts = on_off(key, value)?,
                        "refine" => refine = Some(RefineContext::parse(value)?),
                        other => {
                            return Err(format!(
                                "unknown colm option `{other}` (k, rounds, top_k, mode, refs, \
                                 pool, select, drafts, refine)"
                            ))
                        }
                    }
                    if ["refs", "pool", "select", "drafts"].contains(&key) {
                        reference_keys.push(key);
                    }
                }
                mode.check_refine(refine.unwrap_or(mode.default_refine()))?;
                if let Some(key) = reference_keys.first().filter(|_| !mode.uses_references()) {
                    return Err(format!(
                        "`{key}` applies to the reference modes, not to mode={}",
                        mode.name()
                    ));
                }
                Ok(StrategySpec::Colm {
                    k,
                    rounds,
                    top_k,
                    mode,
                    refs,
                    pool,
                    drafts,
                    refine,
                })
            }
            "cascade" => {
                let (mut tau, mut to) = (None, Route::Remote);
                let (mut samples, mut share) = (None, None);
                for (key, value) in spec::options(spec, args)? {
                    match key {
                        "tau" => {
                            tau = Some(
                                value
                                    .parse::<f64>()
                                    .ok()
                                    .filter(|t| t.is_finite() && *t <= 0.0)
                                    .ok_or_else(|| {
                                        format!("`tau` must be a number ≤ 0, got `{value}`")
                                    })?,
                            )
                        }
                        "to" => to = Route::parse(value)?,
                        "agree" => {
                            samples = Some(value.parse::<usize>().map_err(|_| {
                                format!("`agree` is a number of samples, got `{value}`")
                            })?)
                        }
                        "share" => {
                            share = Some(value.parse::<f64>().map_err(|_| {
                                format!("`share` is a number in [0, 1], got `{value}`")
                            })?)
                        }
                        other => {
                            return Err(format!(
                                "unknown cascade option `{other}` (tau, agree, share, to)"
                            ))
                        }
                    }
                }
                let agreement = match (samples, share) {
                    (None, None) => None,
                    (None, Some(_)) => return Err("`share` needs `agree`".into()),
                    (Some(samples), share) => {
                        let a = AgreementConfig {
                            samples,
                            min_share: share.unwrap_or(AgreementConfig::default().min_share),
                            ..AgreementConfig::default()
                        };
                        a.validate()?;
                        Some(a)
                    }
                };
                if tau.is_none() && agreement.is_none() {
                    return Err("cascade needs `tau` or `agree`, e.g. cascade:tau=-0.3".into());
                }
                if to == Route::Local {
                    return Err("cascade escalates to `remote` or `colm`, not `local`".into());
                }
                Ok(StrategySpec::Cascade { tau, agreement, to })
            }
            h if spec::NAMES.contains(&h) => {
                Ok(StrategySpec::Horizontal(HorizontalSpec::parse(spec)?))
            }
            other => Err(format!(
                "unknown strategy `{other}` (local, server, colm, {})",
                spec::NAMES.join(", ")
            )),
        }
    }

    /// The canonical name: `local`, `server`, `colm`, or `colm:` with the options that differ
    /// from the defaults, in the order k, rounds, top_k, mode, refs, pool, select, drafts,
    /// refine (`colm:mode=critique`, `colm:refs=3,pool=roles`).
    pub fn name(&self) -> String {
        match self {
            StrategySpec::Local => "local".into(),
            StrategySpec::Server => "server".into(),
            StrategySpec::Colm {
                k,
                rounds,
                top_k,
                mode,
                refs,
                pool,
                drafts,
                refine,
            } => {
                let defaults = ColmConfig::default();
                let mut opts = Vec::new();
                if *k != 1 {
                    opts.push(format!("k={k}"));
                }
                if *rounds != 1 {
                    opts.push(format!("rounds={rounds}"));
                }
                if let Some(t) = top_k {
                    opts.push(format!("top_k={t}"));
                }
                if *mode != defaults.guidance_mode {
                    opts.push(format!("mode={}", mode.name()));
                }
                if refs.k != defaults.references.k {
                    opts.push(format!("refs={}", refs.k));
                }
                if *pool != WriterPool::default() {
                    opts.push(format!("pool={}", pool.name()));
                }
                if refs.selector != defaults.references.selector {
                    opts.push(format!("select={}", refs.selector.name()));
                }
                if *drafts {
                    opts.push("drafts=on".into());
                }
                if let Some(r) = refine.filter(|r| *r != mode.default_refine()) {
                    opts.push(format!("refine={}", r.name()));
                }
                if opts.is_empty() {
                    "colm".into()
                } else {
                    format!("colm:{}", opts.join(","))
                }
            }
            StrategySpec::Horizontal(h) => h.name(),
            StrategySpec::Cascade { tau, agreement, to } => {
                let mut opts = Vec::new();
                if let Some(t) = tau {
                    opts.push(format!("tau={t}"));
                }
                if let Some(a) = agreement {
                    opts.push(format!("agree={}", a.samples));
                    if a.min_share != AgreementConfig::default().min_share {
                        opts.push(format!("share={}", a.min_share));
                    }
                }
                if *to != Route::Remote {
                    opts.push(format!("to={}", to.name()));
                }
                format!("cascade:{}", opts.join(","))
            }
        }
    }
}

/// The server-side reference writers of a `colm` strategy, all on the server model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WriterPool {
    /// `refs` generalists: the first greedy with the run's sampling (the `server` strategy's
    /// request), the others at the agents' temperature ([`spec::AGENT_TEMPERATURE`]) with seeds
    /// 1, 2, ….
    #[default]
    Seeds,
    /// The four specialisations of [`prompts::SPECIALISATIONS`], with the run's sampling.
    Roles,
}

impl WriterPool {
    fn parse(value: &str) -> Result<Self, String> {
        match value {
            "seeds" => Ok(WriterPool::Seeds),
            "roles" => Ok(WriterPool::Roles),
            other => Err(format!("unknown pool `{other}` (seeds, roles)")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            WriterPool::Seeds => "seeds",
            WriterPool::Roles => "roles",
        }
    }

    /// The writers on `server` for `refs` references.
    pub fn writers(self, server: &Arc<dyn ChatModel>, refs: usize) -> Vec<ReferenceWriter> {
        match self {
            WriterPool::Seeds => (0..refs)
                .map(|i| {
                    let mut w = ReferenceWriter::generalist(server.clone());
                    w.id = format!("server-{}", i + 1);
                    if i > 0 {
                        w.temperature = Some(spec::AGENT_TEMPERATURE);
                        w.seed = u32::try_from(i).ok();
                    }
                    w
                })
                .collect(),
            WriterPool::Roles => prompts::SPECIALISATIONS
                .iter()
                .map(|s| ReferenceWriter::specialised(s, server.clone()))
                .collect(),
        }
    }
}

fn on_off(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        other => Err(format!("`{key}` is on or off, got `{other}`")),
    }
}

/// A client model and its declared specialisation (for top-k selection).
#[derive(Clone)]
pub struct Client {
    /// The model.
    pub model: Arc<dyn ChatModel>,
    /// Its specialisation.
    pub description: String,
}

/// Tokens spent on one answer, by role (client or server) and kind, in each model's own tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleTokens {
    /// Prompt tokens read by client models.
    pub client_prompt: u64,
    /// Tokens generated by client models.
    pub client_completion: u64,
    /// Prompt tokens read by the server model.
    pub server_prompt: u64,
    /// Tokens generated (decoded) by the server model.
    pub server_completion: u64,
}

impl RoleTokens {
    fn add(&mut self, server: bool, u: Usage) {
        if server {
            self.server_prompt += u.prompt_tokens;
            self.server_completion += u.completion_tokens;
        } else {
            self.client_prompt += u.prompt_tokens;
            self.client_completion += u.completion_tokens;
        }
    }

    /// Adds another answer's tokens.
    pub fn sum(&mut self, o: RoleTokens) {
        self.client_prompt += o.client_prompt;
        self.client_completion += o.client_completion;
        self.server_prompt += o.server_prompt;
        self.server_completion += o.server_completion;
    }
}

/// The outcome of one turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnOutcome {
    /// The answer, when there is one.
    pub answer: Option<String>,
    /// Why there is none (the error as reported by the model or the collaboration).
    pub error: Option<String>,
    /// Tokens by role.
    pub tokens: RoleTokens,
    /// Calls made to the server model.
    pub server_calls: u32,
    /// Wall time, ms; calls replayed from the run's cache ([`crate::cache`]) count at the wall
    /// time they took when they ran.
    pub wall_ms: f64,
    /// Calls answered from the run's cache of greedy calls instead of the model.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_calls: u32,
    /// The full transcript: `{messages, completion | error}` for one model, the CoLM record
    /// (every prompt and answer) for `colm`.
    pub transcript: serde_json::Value,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A strategy ready to answer.
pub struct Strategy {
    name: String,
    inner: Inner,
}

enum Inner {
    Single {
        model: Arc<dyn ChatModel>,
        server: bool,
    },
    Colm(ColmModel),
    Horizontal(Horizontal),
    Router(Router),
}

impl Strategy {
    /// Builds `spec` over `clients` (at least one) and `server`.
    ///
    /// # Errors
    /// A message when there is no client.
    pub fn new(
        spec: &StrategySpec,
        clients: &[Client],
        server: Arc<dyn ChatModel>,
    ) -> Result<Self, String> {
        let first = clients
            .first()
            .ok_or("at least one client model is needed")?;
        let inner = match spec {
            StrategySpec::Local => Inner::Single {
                model: first.model.clone(),
                server: false,
            },
            StrategySpec::Server => Inner::Single {
                model: server,
                server: true,
            },
            StrategySpec::Colm {
                k,
                rounds,
                top_k,
                mode,
                refs,
                pool,
                drafts,
                refine,
            } => {
                let collaborators = (0..*k)
                    .map(|i| {
                        let c = &clients[i % clients.len()];
                        Collaborator {
                            id: format!("client-{}", i + 1),
                            description: c.description.clone(),
                            model: c.model.clone(),
                        }
                    })
                    .collect();
                let config = ColmConfig {
                    rounds: *rounds,
                    top_k: *top_k,
                    guidance_mode: *mode,
                    references: *refs,
                    aggregate_drafts: *drafts,
                    refine: *refine,
                    ..ColmConfig::default()
                };
                let writers = pool.writers(&server, refs.k);
                Inner::Colm(
                    ColmModel::new("colm", collaborators, server, config).with_writers(writers),
                )
            }
            StrategySpec::Horizontal(h) => {
                let models: Vec<Arc<dyn ChatModel>> =
                    clients.iter().map(|c| c.model.clone()).collect();
                Inner::Horizontal(h.build(&models, server)?)
            }
            StrategySpec::Cascade { tau, agreement, to } => {
                let config = RouterConfig {
                    escalate_to: *to,
                    threshold: *tau,
                    agreement: agreement.clone(),
                    ..RouterConfig::default()
                };
                Inner::Router(Router::new(first.model.clone(), server, config))
            }
        };
        Ok(Self {
            name: spec.name(),
            inner,
        })
    }

    /// The strategy's canonical name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Answers the last user turn of `history` (alternating user / assistant messages, without
    /// a system message).
    pub async fn answer(&self, history: &[ChatMessage], params: &SamplingParams) -> TurnOutcome {
        let start = Instant::now();
        let (mut out, replayed) = crate::cache::replay_scope(self.run(history, params)).await;
        out.wall_ms = start.elapsed().as_secs_f64() * 1000.0 + replayed.wall_ms;
        out.cached_calls = replayed.calls;
        out
    }

    async fn run(&self, history: &[ChatMessage], params: &SamplingParams) -> TurnOutcome {
        match &self.inner {
            Inner::Single { model, server } => {
                let mut messages = vec![ChatMessage::system(prompts::CLIENT_SYSTEM)];
                messages.extend_from_slice(history);
                single(model.as_ref(), *server, messages, params).await
            }
            Inner::Colm(colm) => match colm.collaborate(history, params).await {
                Ok(record) => colm_outcome(&record, record.answer().map(str::to_owned), None),
                Err(e) => match &e {
                    ColmError::AllCollaboratorsFailed { partial, .. }
                    | ColmError::GuidanceFailed { partial, .. } => {
                        colm_outcome(partial, None, Some(e.to_string()))
                    }
                    ColmError::InvalidConfig(_) => failed_outcome(e.to_string()),
                },
            },
            Inner::Router(r) => match r.answer(&query_of(history), false, params, None).await {
                Ok(record) => router_outcome(&record),
                Err(e) => failed_outcome(e.to_string()),
            },
            Inner::Horizontal(h) => match h.run(&query_of(history), params, None).await {
                Ok(record) => horizontal_outcome(&record, record.answer.clone(), None),
                Err(e) => match e.partial() {
                    Some(partial) => horizontal_outcome(partial, None, Some(e.to_string())),
                    None => failed_outcome(e.to_string()),
                },
            },
        }
    }
}

async fn single(
    model: &dyn ChatModel,
    server: bool,
    messages: Vec<ChatMessage>,
    params: &SamplingParams,
) -> TurnOutcome {
    let result = model.chat(&messages, params).await;
    let mut tokens = RoleTokens::default();
    let (answer, error, transcript) = match result {
        Ok(c) => {
            tokens.add(server, c.usage);
            let t = transcript(model.name(), &messages, Ok(&c));
            (Some(c.text), None, t)
        }
        Err(e) => {
            let t = transcript(model.name(), &messages, Err(&e.to_string()));
            (None, Some(e.to_string()), t)
        }
    };
    TurnOutcome {
        answer,
        error,
        tokens,
        server_calls: u32::from(server),
        wall_ms: 0.0,
        cached_calls: 0,
        transcript,
    }
}

fn transcript(
    model: &str,
    messages: &[ChatMessage],
    result: Result<&Completion, &str>,
) -> serde_json::Value {
    match result {
        Ok(c) => serde_json::json!({"model": model, "messages": messages, "completion": c}),
        Err(e) => serde_json::json!({"model": model, "messages": messages, "error": e}),
    }
}

/// A turn that made no model call.
fn failed_outcome(error: String) -> TurnOutcome {
    TurnOutcome {
        answer: None,
        error: Some(error),
        tokens: RoleTokens::default(),
        server_calls: 0,
        wall_ms: 0.0,
        cached_calls: 0,
        transcript: serde_json::Value::Null,
    }
}

/// Tokens by role and server calls over `steps`, with the answer and the record as the
/// transcript. `server` tells a server step; a step without messages (a vote) made no call.
fn outcome<'s>(
    steps: impl Iterator<Item = &'s Step>,
    server: impl Fn(&Step) -> bool,
    answer: Option<String>,
    error: Option<String>,
    record: &impl Serialize,
) -> TurnOutcome {
    let mut tokens = RoleTokens::default();
    let mut server_calls = 0;
    for step in steps {
        let on_server = server(step);
        server_calls += u32::from(on_server && !step.messages.is_empty());
        if let Some(c) = step.completion() {
            tokens.add(on_server, c.usage);
        }
    }
    TurnOutcome {
        answer,
        error,
        tokens,
        server_calls,
        wall_ms: 0.0,
        cached_calls: 0,
        transcript: serde_json::to_value(record).unwrap_or(serde_json::Value::Null),
    }
}

/// Server steps of a routed query are those of no collaborator.
fn router_outcome(record: &RouterRecord) -> TurnOutcome {
    let answer = Some(record.answer.clone());
    outcome(
        record.steps.iter(),
        |s| s.collaborator.is_none(),
        answer,
        None,
        record,
    )
}

/// Server steps of a horizontal strategy are those of its server-side agents.
fn horizontal_outcome(
    record: &StrategyRecord,
    answer: Option<String>,
    error: Option<String>,
) -> TurnOutcome {
    let server = |s: &Step| record.side_of(s) == Some(Side::Server);
    outcome(record.steps.iter(), server, answer, error, record)
}

/// Server steps of CoLM are the selections, the references and the guidance (critiques
/// included).
fn colm_outcome(record: &ColmRecord, answer: Option<String>, error: Option<String>) -> TurnOutcome {
    let server = |s: &Step| {
        matches!(
            s.kind,
            StepKind::Guidance | StepKind::Selection | StepKind::Reference
        )
    };
    outcome(record.steps(), server, answer, error, record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_name_canonically() {
        assert_eq!(StrategySpec::parse("local").unwrap(), StrategySpec::Local);
        assert_eq!(StrategySpec::parse("colm").unwrap().name(), "colm");
        assert_eq!(
            StrategySpec::parse("colm:mode=reference,refs=1,pool=seeds,drafts=off")
                .unwrap()
                .name(),
            "colm"
        );
        assert_eq!(
            StrategySpec::parse("colm:drafts=on,select=model,pool=roles,refs=3,rounds=2")
                .unwrap()
                .name(),
            "colm:rounds=2,refs=3,pool=roles,select=model,drafts=on"
        );
        assert_eq!(
            StrategySpec::parse("colm:mode=critique,k=1")
                .unwrap()
                .name(),
            "colm:mode=critique"
        );
        assert_eq!(
            StrategySpec::parse("colm:mode=vote,top_k=2,k=3,rounds=2")
                .unwrap()
                .name(),
            "colm:k=3,rounds=2,top_k=2,mode=vote"
        );
        assert_eq!(
            StrategySpec::parse("colm:mode=reference-critique")
                .unwrap()
                .name(),
            "colm:mode=reference-critique"
        );
        // The refinement form is named only when it is not the mode's default.
        let (default, other) = match RefineContext::REFERENCE_DEFAULT {
            RefineContext::Draft => ("draft", "guidance"),
            RefineContext::Guidance => ("guidance", "draft"),
        };
        assert_eq!(
            StrategySpec::parse(&format!("colm:refine={other},refs=3"))
                .unwrap()
                .name(),
            format!("colm:refs=3,refine={other}")
        );
        assert_eq!(
            StrategySpec::parse(&format!("colm:refine={default}"))
                .unwrap()
                .name(),
            "colm"
        );
        assert_eq!(
            StrategySpec::parse("colm:mode=synthesis,refine=draft")
                .unwrap()
                .name(),
            "colm:mode=synthesis"
        );
        assert_eq!(
            StrategySpec::parse("debate:agents=3,topology=ring")
                .unwrap()
                .name(),
            "debate:topology=ring"
        );
        assert_eq!(
            StrategySpec::parse("cascade:to=colm,tau=-0.25")
                .unwrap()
                .name(),
            "cascade:tau=-0.25,to=colm"
        );
        assert_eq!(
            StrategySpec::parse("cascade:agree=4,tau=-0.1")
                .unwrap()
                .name(),
            "cascade:tau=-0.1,agree=4"
        );
        assert_eq!(
            StrategySpec::parse("cascade:agree=3,share=0.5")
                .unwrap()
                .name(),
            "cascade:agree=3,share=0.5"
        );
        for bad in [
            "colm:k=0",
            "colm:mode=loud",
            "colm:x=1",
            "colm:refs=0",
            "colm:pool=many",
            "colm:drafts=maybe",
            "colm:refine=nothing",
            "colm:mode=critique,refine=guidance",
            "colm:mode=reference-critique,refine=guidance",
            "colm:mode=synthesis,refs=3",
            "colm:k",
            "remote",
            "local:k=2",
            "debate:topology=mesh",
            "cascade",
            "cascade:tau=0.5",
            "cascade:tau=-1,to=local",
            "cascade:share=0.5",
            "cascade:agree=0",
            "cascade:agree=2,share=1.5",
            "cascade:agree=two",
        ] {
            assert!(StrategySpec::parse(bad).is_err(), "{bad}");
        }
    }
}

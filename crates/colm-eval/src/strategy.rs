//! Strategies under evaluation: what answers a turn of an item.
//!
//! A `--strategy` is a [`StrategySpec`] (its text form and defaults:
//! [`colm_core::strategy`]), built over the run's models by [`StrategySpec::build`] — the code
//! that builds `colm serve`'s virtual models: `local` runs the first `--client`; `colm` runs
//! CoLM with the `--client` models as its K collaborators in turn and, unless the run declares
//! writers, the spec's [`WriterPool`] on the server model (writer 1 of `seeds` sends the
//! `server` strategy's very request); horizontal strategies put their agents on the `--client`
//! models in turn and the server model where a strategy puts one (MoA's aggregator,
//! `on=server`); `cascade` runs the router of `colm_core::vertical` with only its confidence
//! cascade. Tokens and server calls are counted by the side of the step that made each call.
//!
//! A multi-turn item (MT-Bench) is answered turn by turn: each turn sees the earlier turns and
//! the strategy's own earlier answers.

use std::sync::Arc;
use std::time::Instant;

use colm_core::colm::{Collaborator, ColmRecord, Step, StepKind, Watch};
use colm_core::horizontal::{Side, StrategyRecord};
use colm_core::run::Run;
use colm_core::strategy::Parts;
use colm_core::vertical::{RouterConfig, RouterRecord};
use colm_core::{prompts, ChatMessage, ChatModel, Completion, Invalid, SamplingParams, Usage};
use serde::{Deserialize, Serialize};

pub use colm_core::strategy::{CascadeSpec, ColmOptions, StrategySpec, WriterPool};

/// What a record is an answer of: a strategy that ran, or an arm a report replays from the
/// records of others. In the records and reports it is one string, the strategy's text form
/// ([`StrategySpec`]) or `learned-router:budget=B` / `agreement-cascade:share=S`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Arm {
    /// A strategy that ran.
    Ran(StrategySpec),
    /// The learned router, cross-fitted over a run's `local` and escalation records
    /// ([`crate::learned::cross_fitted`]), for a share of the server tokens.
    LearnedRouter {
        /// Share of the escalation's server tokens it may spend.
        budget: f64,
    },
    /// The agreement cascade replayed from a run's self-consistency samples
    /// ([`crate::agreement`]).
    AgreementCascade {
        /// Agreement share that keeps a draft local.
        share: f64,
    },
}

impl Arm {
    /// The client model alone: the baseline of recovery and regressions.
    pub const LOCAL: Arm = Arm::Ran(StrategySpec::Local);
    /// The server model alone.
    pub const SERVER: Arm = Arm::Ran(StrategySpec::Server);
    /// Name of [`Arm::LearnedRouter`].
    pub const LEARNED_ROUTER: &'static str = "learned-router";
    /// Name of [`Arm::AgreementCascade`].
    pub const AGREEMENT_CASCADE: &'static str = "agreement-cascade";

    /// Parses the string form.
    ///
    /// # Errors
    /// As [`StrategySpec::parse`], or a bad `budget` / `share`.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let number = |v: &str, key: &str| {
            v.parse::<f64>()
                .map_err(|e| Invalid(format!("`{text}`: {key} {v:?}: {e}")))
        };
        let arm = |name: &str, key: &str| {
            text.strip_prefix(name)
                .and_then(|t| t.strip_prefix(':'))
                .and_then(|t| t.strip_prefix(key))
                .and_then(|t| t.strip_prefix('='))
        };
        if let Some(b) = arm(Self::LEARNED_ROUTER, "budget") {
            return Ok(Arm::LearnedRouter {
                budget: number(b, "budget")?,
            });
        }
        if let Some(s) = arm(Self::AGREEMENT_CASCADE, "share") {
            return Ok(Arm::AgreementCascade {
                share: number(s, "share")?,
            });
        }
        StrategySpec::parse(text).map(Arm::Ran)
    }
}

impl std::fmt::Display for Arm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arm::Ran(s) => write!(f, "{s}"),
            Arm::LearnedRouter { budget } => write!(f, "{}:budget={budget}", Self::LEARNED_ROUTER),
            Arm::AgreementCascade { share } => {
                write!(f, "{}:share={share}", Self::AGREEMENT_CASCADE)
            }
        }
    }
}

impl TryFrom<String> for Arm {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Arm::parse(&s)
    }
}

impl From<Arm> for String {
    fn from(a: Arm) -> String {
        a.to_string()
    }
}

impl From<StrategySpec> for Arm {
    fn from(s: StrategySpec) -> Self {
        Arm::Ran(s)
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
    /// Calls answered from the run's cache of calls instead of the model.
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
    spec: StrategySpec,
    name: String,
    inner: Inner,
}

enum Inner {
    Single {
        model: Arc<dyn ChatModel>,
        server: bool,
    },
    /// CoLM, a horizontal strategy or the cascade ([`StrategySpec::build`]).
    Built(Arc<dyn colm_core::run::Strategy>),
}

impl Strategy {
    /// Builds `spec` over `clients` (at least one) and `server`, with `embedder` for CoLM's
    /// `embedding` selector of reference writers.
    ///
    /// # Errors
    /// No client, or a strategy that cannot be built over these models.
    pub fn new(
        spec: &StrategySpec,
        clients: &[Client],
        server: Arc<dyn ChatModel>,
        embedder: Option<Arc<dyn colm_core::EmbeddingModel>>,
    ) -> Result<Self, Invalid> {
        let first = clients
            .first()
            .ok_or(Invalid::from("at least one client model is needed"))?;
        let inner = match spec {
            StrategySpec::Local => Inner::Single {
                model: first.model.clone(),
                server: false,
            },
            StrategySpec::Server => Inner::Single {
                model: server,
                server: true,
            },
            StrategySpec::Colm(_) | StrategySpec::Horizontal(_) | StrategySpec::Cascade(_) => {
                // CoLM's K collaborators take the client models in turn.
                let k = match spec {
                    StrategySpec::Colm(c) => c.k(),
                    _ => clients.len(),
                };
                let collaborators: Vec<Collaborator> = (0..k)
                    .map(|i| {
                        let client = &clients[i % clients.len()];
                        Collaborator::client(i, client.model.clone(), client.description.clone())
                    })
                    .collect();
                let parts = Parts {
                    clients: &collaborators,
                    server,
                    writers: &[],
                    store: None,
                    router: RouterConfig::default(),
                    ledger: None,
                    embedder,
                };
                Inner::Built(spec.build(&spec.name(), parts)?)
            }
        };
        Ok(Self {
            spec: spec.clone(),
            name: spec.name(),
            inner,
        })
    }

    /// The strategy's canonical name (its text form).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it runs.
    pub fn spec(&self) -> &StrategySpec {
        &self.spec
    }

    /// Answers the last user turn of `history` (alternating user / assistant messages, without
    /// a system message).
    pub async fn answer(&self, history: &[ChatMessage], params: &SamplingParams) -> TurnOutcome {
        let start = Instant::now();
        let (mut out, replayed) = crate::replay::replay_scope(self.run(history, params)).await;
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
            Inner::Built(strategy) => match strategy.run(history, params, Watch::default()).await {
                Ok(run) => run_outcome(&run, run.answer().map(str::to_owned), None),
                Err(e) => match &e.partial {
                    Some(partial) => run_outcome(partial, None, Some(e.message)),
                    None => failed_outcome(e.message),
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
        // A cancelled call counts what it had used.
        tokens.add(on_server, step.usage());
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

/// Tokens and server calls of a run, by the side of each step.
fn run_outcome(run: &Run, answer: Option<String>, error: Option<String>) -> TurnOutcome {
    match run {
        Run::Colm(r) => colm_outcome(r, answer, error),
        Run::Horizontal(r) => horizontal_outcome(r, answer, error),
        Run::Routed(r) => router_outcome(r),
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

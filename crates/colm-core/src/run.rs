//! One trait for every collaboration strategy, one record of a run, one error, and one way to
//! serve any strategy as a chat model.
//!
//! - [`Strategy`]: a strategy built over [`ChatModel`]s (CoLM: [`ColmModel`]; the horizontal
//!   strategies: [`Horizontal`]; the device–cloud cascade: [`Router`]) runs on a conversation
//!   and records every step. [`StrategySpec::build`](crate::strategy::StrategySpec::build)
//!   makes one from its text form.
//! - [`Run`]: the record of one run — the strategy's own record, with the steps, the answer
//!   and the per-model totals derived from the steps.
//! - [`RunError`]: why a run did not answer, with the partial record and the error as a caller
//!   sees it ([`ModelError`], which knows its HTTP status).
//! - [`StrategyModel`]: any strategy behind the [`ChatModel`] trait (the virtual models of
//!   `colm serve`, the routed endpoint of `colm client --router`).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::answer::VoteTally;
use crate::colm::{ColmError, ColmModel, ColmRecord};
use crate::horizontal::{Horizontal, StrategyRecord};
use crate::model::{
    ChatMessage, ChatModel, Completion, FinishReason, ModelError, SamplingParams, StreamEvent,
    Transcript, TranscriptStep,
};
use crate::named::Named;
use crate::query::Query;
use crate::step::{summed, totals_of, ModelTotals, Observe, Progress, Step, StepKind, Watch};
use crate::vertical::{Router, RouterRecord};

/// The record of one run of a strategy: the strategy's own record (serialised as it).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Run {
    /// A CoLM collaboration.
    Colm(Box<ColmRecord>),
    /// Self-consistency, debate or mixture-of-agents.
    Horizontal(StrategyRecord),
    /// A query routed by the device–cloud cascade.
    Routed(RouterRecord),
}

impl Run {
    /// Every step, in the order the strategy made them.
    pub fn steps(&self) -> Vec<&Step> {
        match self {
            Run::Colm(r) => r.steps().collect(),
            Run::Horizontal(r) => r.steps.iter().collect(),
            Run::Routed(r) => r.steps.iter().collect(),
        }
    }

    /// The answer (for CoLM, the first collaborator's final answer); `None` in a partial run.
    pub fn answer(&self) -> Option<&str> {
        match self {
            Run::Colm(r) => r.answer(),
            Run::Horizontal(r) => r.answer.as_deref(),
            Run::Routed(r) => Some(&r.answer),
        }
    }

    /// Token and time totals per model name, derived from the steps.
    pub fn usage_by_model(&self) -> BTreeMap<String, ModelTotals> {
        totals_of(self.steps().into_iter())
    }

    /// The answer as a chat completion: its text; `usage` and `timings` summed over every
    /// step of the run (what the deployment spent); `mean_logprob` and `finish_reason` of the
    /// step that wrote the answer. A routed query also carries its wire bytes and fallback.
    ///
    /// # Errors
    /// [`ModelError::Inference`] when the run has no answer.
    pub fn completion(&self) -> Result<Completion, ModelError> {
        if let Run::Routed(r) = self {
            return Ok(Completion {
                transcript: Some(Box::new(self.transcript())),
                ..r.completion()
            });
        }
        let text = self
            .answer()
            .ok_or_else(|| ModelError::Inference("the strategy produced no answer".into()))?
            .to_owned();
        let source = match self {
            Run::Colm(r) => r.final_answers.first().and_then(|a| {
                r.steps()
                    .filter(|s| {
                        s.kind == a.from
                            && s.round == a.round
                            && s.collaborator.as_deref() == Some(a.collaborator.as_str())
                    })
                    .find_map(Step::completion)
            }),
            _ => self
                .steps()
                .into_iter()
                .rev()
                .filter_map(Step::completion)
                .find(|c| c.text == text),
        };
        let (usage, timings) = summed(&self.usage_by_model());
        Ok(Completion {
            usage,
            mean_logprob: source.and_then(|c| c.mean_logprob),
            finish_reason: source.map_or(FinishReason::Stop, |c| c.finish_reason),
            timings,
            transcript: Some(Box::new(self.transcript())),
            ..Completion::text_only(text)
        })
    }

    /// Every step's text, writer, tokens and time, without prompts: a guidance step made by a
    /// vote notes its tally, a step that fell back notes why.
    pub fn transcript(&self) -> Transcript {
        let tallies: BTreeMap<u32, &VoteTally> = match self {
            Run::Colm(r) => r
                .rounds
                .iter()
                .filter_map(|round| round.tally.as_ref().map(|t| (round.round, t)))
                .collect(),
            _ => BTreeMap::new(),
        };
        let steps = self
            .steps()
            .into_iter()
            .map(|s| {
                let c = s.completion();
                let tally = (s.kind == StepKind::Guidance)
                    .then(|| tallies.get(&s.round))
                    .flatten();
                TranscriptStep {
                    step: s.kind,
                    round: s.round,
                    collaborator: s.collaborator.clone(),
                    model: s.model.clone(),
                    text: s.text().map(str::to_owned),
                    error: s.problem(),
                    note: tally
                        .map(|t| tally_note(t))
                        .or_else(|| c.and_then(|c| c.fallback.clone())),
                    prompt_tokens: s.usage().prompt_tokens,
                    completion_tokens: s.usage().completion_tokens,
                    wall_ms: s.wall_ms,
                    shared: s.shared,
                }
            })
            .collect();
        Transcript { steps }
    }
}

/// A vote's tally in words: `42: 3 of 5 votes, 1 unextracted, tie`.
fn tally_note(t: &VoteTally) -> String {
    let mut note = format!("{}: {} of {} votes", t.answer, t.votes, t.drafts);
    if t.answered < t.drafts {
        note.push_str(&format!(", {} unextracted", t.drafts - t.answered));
    }
    if t.tie {
        note.push_str(", tie");
    }
    note
}

/// Why a run did not answer.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RunError {
    /// The strategy's own account of the failure (names the stage and each participant).
    pub message: String,
    /// The failure as the caller sees it: when every participant failed the same way
    /// (overloaded, prompt too long, rate limited) that error, with its HTTP status; else an
    /// inference failure carrying `message`.
    pub error: ModelError,
    /// What was recorded before the failure, when anything was.
    pub partial: Option<Box<Run>>,
}

impl RunError {
    fn new(message: String, kept: Option<ModelError>, partial: Option<Run>) -> Self {
        Self {
            error: kept.unwrap_or_else(|| ModelError::Inference(message.clone())),
            message,
            partial: partial.map(Box::new),
        }
    }
}

/// A collaboration strategy built over chat models.
#[async_trait]
pub trait Strategy: Send + Sync {
    /// Runs on the conversation `messages` (its query: [`Query::from_messages`]) with the caller's
    /// sampling parameters for every step; `watch` sees each step as it finishes and receives
    /// the answer's text as it is generated when the strategy knows in advance which step
    /// writes it (see [`Watch`]).
    ///
    /// # Errors
    /// [`RunError`] when the strategy cannot answer.
    async fn run(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        watch: Watch<'_>,
    ) -> Result<Run, RunError>;

    /// Whether it can answer conversations with images: every call that reads the
    /// conversation goes to a model that accepts images. Default: no.
    fn accepts_images(&self) -> bool {
        false
    }
}

#[async_trait]
impl Strategy for ColmModel {
    fn accepts_images(&self) -> bool {
        ColmModel::accepts_images(self)
    }

    async fn run(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        watch: Watch<'_>,
    ) -> Result<Run, RunError> {
        self.collaborate(messages, params, watch)
            .await
            .map(|r| Run::Colm(Box::new(r)))
            .map_err(|e| {
                let message = e.to_string();
                let (kept, partial) = match e {
                    ColmError::AllCollaboratorsFailed {
                        errors, partial, ..
                    } => (
                        ModelError::common(errors.iter().map(|(_, err)| err)),
                        Some(Run::Colm(partial)),
                    ),
                    ColmError::GuidanceFailed { error, partial, .. } => {
                        (ModelError::common([&error]), Some(Run::Colm(partial)))
                    }
                    ColmError::InvalidConfig(_) => (None, None),
                };
                RunError::new(message, kept, partial)
            })
    }
}

#[async_trait]
impl Strategy for Horizontal {
    async fn run(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        watch: Watch<'_>,
    ) -> Result<Run, RunError> {
        Horizontal::run(self, &Query::from_messages(messages), params, watch)
            .await
            .map(Run::Horizontal)
            .map_err(|e| {
                // Every agent failing the same way keeps that error's meaning.
                let partial = e.partial().cloned();
                let kept = partial.as_ref().and_then(|p| {
                    let errors: Vec<&ModelError> = p.steps.iter().filter_map(Step::error).collect();
                    (errors.len() == p.steps.len())
                        .then(|| ModelError::common(errors))
                        .flatten()
                });
                RunError::new(e.to_string(), kept, partial.map(Run::Horizontal))
            })
    }
}

/// The query is flagged sensitive when the request says so ([`SamplingParams::sensitive`],
/// the chat request's `metadata.sensitive`; the detector applies either way). The route and
/// its reasons are logged at `info`. The answer is chosen after the draft is tested, so
/// nothing is streamed to `watch.answer`.
#[async_trait]
impl Strategy for Router {
    async fn run(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        watch: Watch<'_>,
    ) -> Result<Run, RunError> {
        let record = self
            .answer(
                &Query::from_messages(messages),
                params.sensitive,
                params,
                watch.steps,
            )
            .await
            .map_err(|e| RunError {
                message: e.to_string(),
                error: e,
                partial: None,
            })?;
        tracing::info!(
            route = record.route.name(),
            reasons = %record.reasons.join("; "),
            redacted = record.redacted,
            "routed"
        );
        Ok(Run::Routed(record))
    }
}

/// Any [`Strategy`] behind the [`ChatModel`] trait, so that whatever serves chat models (the
/// OpenAI-compatible API) serves collaboration unchanged: each chat is one run, answered with
/// [`Run::completion`]; a failed run is its [`RunError::error`] (a 503 stays a 503).
pub struct StrategyModel {
    name: String,
    strategy: Arc<dyn Strategy>,
    spec: Option<String>,
}

impl StrategyModel {
    /// `strategy`, served under `name`.
    pub fn new(name: impl Into<String>, strategy: Arc<dyn Strategy>) -> Self {
        Self {
            name: name.into(),
            strategy,
            spec: None,
        }
    }

    /// Names the strategy by `spec`, the canonical text of the spec it was built from
    /// (`StrategySpec::name`; [`ChatModel::strategy`]).
    #[must_use]
    pub fn with_spec(mut self, spec: String) -> Self {
        self.spec = Some(spec);
        self
    }
}

/// A live observer that sends every report of a run's steps — started, text as generated,
/// finished — as [`StreamEvent::Progress`]. The step that writes the answer sends its text as
/// [`StreamEvent::Delta`]s ([`Watch::answer`]), not twice.
struct Reports(futures::channel::mpsc::UnboundedSender<StreamEvent>);

/// How a streamed collaboration reaches its caller (a [`ChatModel::chat_streaming`] of a
/// strategy: [`StrategyModel`], the device's `colm client`): its steps' reports and the answer's
/// deltas through one channel, so they keep their order, with the answer's text counted.
///
/// ```text
/// let (relay, forward) = Relay::new(events.clone());
/// let run = async move { let r = strategy_run(relay.watch()).await; drop(relay); r };
/// let (completion, sent) = futures::join!(run, forward);
/// Relay::finish(&events, completion?, &sent)
/// ```
pub struct Relay {
    reports: Reports,
    answer: futures::channel::mpsc::UnboundedSender<StreamEvent>,
}

impl Relay {
    /// A relay to `events`, and the future that forwards to them until the relay is dropped,
    /// returning the answer's text it sent.
    pub fn new(
        events: futures::channel::mpsc::UnboundedSender<StreamEvent>,
    ) -> (Self, impl std::future::Future<Output = String>) {
        let (tx, mut rx) = futures::channel::mpsc::unbounded::<StreamEvent>();
        let forward = async move {
            let mut sent = String::new();
            while let Some(e) = futures::StreamExt::next(&mut rx).await {
                if let StreamEvent::Delta(t) = &e {
                    sent.push_str(t);
                }
                let _ = events.unbounded_send(e);
            }
            sent
        };
        let relay = Self {
            reports: Reports(tx.clone()),
            answer: tx,
        };
        (relay, forward)
    }

    /// The watch of the run: live reports of every step, the answer's deltas.
    pub fn watch(&self) -> Watch<'_> {
        Watch {
            steps: Some(&self.reports),
            answer: Some(&self.answer),
        }
    }

    /// Sends what `completion` holds beyond the text `sent` as it was generated (an answer
    /// chosen after the fact — a vote, a fallback — is sent whole here).
    ///
    /// # Errors
    /// [`ModelError::Inference`] when the streamed answer step failed midway and the run
    /// answered otherwise (the text already sent cannot be taken back).
    pub fn finish(
        events: &futures::channel::mpsc::UnboundedSender<StreamEvent>,
        completion: Completion,
        sent: &str,
    ) -> Result<Completion, ModelError> {
        match completion.text.strip_prefix(sent) {
            Some("") => {}
            Some(rest) => {
                let _ = events.unbounded_send(StreamEvent::Delta(rest.to_owned()));
            }
            None => {
                return Err(ModelError::Inference(format!(
                    "the streamed answer step failed after {} bytes and the strategy answered \
                     otherwise",
                    sent.len()
                )))
            }
        }
        Ok(completion)
    }
}

impl Observe for Reports {
    fn finished(&self, step: &Step) {
        let _ = self
            .0
            .unbounded_send(StreamEvent::Progress(Progress::from(step)));
    }

    fn live(&self) -> bool {
        true
    }

    fn running(&self, report: Progress) {
        let _ = self.0.unbounded_send(StreamEvent::Progress(report));
    }
}

#[async_trait]
impl ChatModel for StrategyModel {
    fn name(&self) -> &str {
        &self.name
    }

    async fn chat(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Completion, ModelError> {
        self.strategy
            .run(messages, params, Watch::default())
            .await
            .map_err(|e| e.error)?
            .completion()
    }

    /// Each step is sent as [`StreamEvent::Progress`] reports, live ([`Reports`]); the answer's text as
    /// [`StreamEvent::Delta`]s while it is generated when the strategy streams it, else whole
    /// at the end. When a streamed answer step failed midway and the run answered otherwise,
    /// the run fails (the text already sent cannot be taken back).
    async fn chat_streaming(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        events: futures::channel::mpsc::UnboundedSender<StreamEvent>,
    ) -> Result<Completion, ModelError> {
        let (relay, forward) = Relay::new(events.clone());
        let run = async move {
            let run = self.strategy.run(messages, params, relay.watch()).await;
            // Closes the relay, which ends `forward`.
            drop(relay);
            run
        };
        let (run, sent) = futures::join!(run, forward);
        Relay::finish(&events, run.map_err(|e| e.error)?.completion()?, &sent)
    }

    fn reports_progress(&self) -> bool {
        true
    }

    fn is_collaboration(&self) -> bool {
        true
    }

    fn strategy(&self) -> Option<String> {
        self.spec.clone()
    }

    fn accepts_images(&self) -> bool {
        self.strategy.accepts_images()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::colm::Collaborator;
    use crate::strategy::{Parts, StrategySpec};
    use crate::testing::Scripted;

    fn parts(clients: &[Collaborator], server: Arc<dyn ChatModel>) -> Parts<'_> {
        Parts {
            clients,
            server,
            writers: &[],
            store: None,
            router: crate::vertical::RouterConfig::default(),
            ledger: None,
            embedder: None,
        }
    }

    /// Every strategy built from its text form is served by the one wrapper, with the
    /// answer's text and the usage of every step.
    #[tokio::test]
    async fn every_strategy_is_served_by_one_chat_model() {
        let small = Scripted::new("small", |_| Ok("so the answer is 4".into()));
        let big = Scripted::new("big", |_| Ok("the answer is 4".into()));
        let clients = [
            Collaborator::client(0, small.clone(), "math"),
            Collaborator::client(1, small, "code"),
        ];
        let q = [ChatMessage::user("What is 2 + 2?")];
        let params = SamplingParams::default();
        for text in [
            "colm",
            "colm:k=2,mode=synthesis",
            "self-consistency:n=3",
            "debate:agents=2",
            "moa",
            "cascade:tau=0",
        ] {
            let spec = StrategySpec::parse(text).unwrap();
            let strategy = spec.build(text, parts(&clients, big.clone())).unwrap();
            let run = strategy.run(&q, &params, Watch::default()).await.unwrap();
            assert!(run.answer().is_some_and(|a| a.contains('4')), "{text}");
            let calls: u32 = run.usage_by_model().values().map(|t| t.calls).sum();
            assert!(
                calls as usize
                    >= run
                        .steps()
                        .iter()
                        .filter(|s| !s.messages.is_empty())
                        .count(),
                "{text}"
            );
            let c = StrategyModel::new(text, strategy)
                .chat(&q, &params)
                .await
                .unwrap();
            assert!(c.text.contains('4'), "{text}");
        }
        assert!(StrategySpec::Local
            .build("local", parts(&clients, big))
            .is_err());
    }

    /// Streamed, every strategy reports its steps as progress before the answer's text, and the
    /// text adds up to the answer: streamed by the answer step (CoLM's last refinement, the
    /// aggregator) or sent whole at the end (a vote, a cascade).
    #[tokio::test]
    async fn streamed_strategies_report_progress_then_the_answer() {
        let small = Scripted::new("small", |_| Ok("so the answer is 4".into()));
        let big = Scripted::new("big", |_| Ok("the answer is 4".into()));
        let clients = [
            Collaborator::client(0, small.clone(), "math"),
            Collaborator::client(1, small, "code"),
        ];
        let q = [ChatMessage::user("What is 2 + 2?")];
        for (text, streamed_by) in [
            ("colm:rounds=2", Some(crate::step::StepKind::Refinement)),
            ("moa", Some(crate::step::StepKind::Aggregation)),
            ("self-consistency:n=3", None),
            ("cascade:tau=0", None),
        ] {
            let spec = StrategySpec::parse(text).unwrap();
            let model = StrategyModel::new(
                text,
                spec.build(text, parts(&clients, big.clone())).unwrap(),
            );
            assert!(model.reports_progress());
            let (tx, rx) = futures::channel::mpsc::unbounded();
            let c = model
                .chat_streaming(&q, &SamplingParams::default(), tx)
                .await
                .unwrap();
            let events: Vec<StreamEvent> = futures::StreamExt::collect(rx).await;
            let first_delta = events
                .iter()
                .position(|e| matches!(e, StreamEvent::Delta(_)))
                .unwrap();
            let before: Vec<&Progress> = events[..first_delta]
                .iter()
                .filter_map(|e| match e {
                    StreamEvent::Progress(p) => Some(p),
                    StreamEvent::Delta(_) => None,
                })
                .collect();
            assert!(before.len() >= 2, "{text}: {events:?}");
            let deltas: String = events
                .iter()
                .filter_map(|e| match e {
                    StreamEvent::Delta(t) => Some(t.as_str()),
                    StreamEvent::Progress(_) => None,
                })
                .collect();
            assert_eq!(deltas, c.text, "{text}");
            // The step that streamed the answer is reported after its text, never before.
            if let Some(kind) = streamed_by {
                assert!(
                    events[first_delta..]
                        .iter()
                        .any(|e| matches!(e, StreamEvent::Progress(p) if p.step == kind)),
                    "{text}: {events:?}"
                );
            }
        }
    }

    /// Streamed, every step but the answer's is reported live: started, then its text, then
    /// finished, in that order; the answer step's text comes as the answer's deltas only.
    #[tokio::test]
    async fn streamed_steps_report_their_text_live() {
        let small = Scripted::new("small", |_| Ok("so the answer is 4".into()));
        let big = Scripted::new("big", |_| Ok("the answer is 4".into()));
        let clients = [Collaborator::client(0, small, "math")];
        // (draft=always: by default a draft nobody reads is not written when the guidance
        // comes first, as it does from a scripted server.)
        let spec = StrategySpec::parse("colm:draft=always").unwrap();
        let model = StrategyModel::new("colm", spec.build("colm", parts(&clients, big)).unwrap());
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let q = [ChatMessage::user("What is 2 + 2?")];
        let c = model
            .chat_streaming(&q, &SamplingParams::default(), tx)
            .await
            .unwrap();
        let events: Vec<StreamEvent> = futures::StreamExt::collect(rx).await;
        let reports: Vec<&Progress> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Progress(p) => Some(p),
                StreamEvent::Delta(_) => None,
            })
            .collect();
        let of = |kind: StepKind| -> Vec<&Progress> {
            reports.iter().copied().filter(|p| p.step == kind).collect()
        };
        use crate::step::{StepKind, StepPhase};
        for (kind, text) in [
            (StepKind::Draft, "so the answer is 4"),
            (StepKind::Reference, "the answer is 4"),
        ] {
            let r = of(kind);
            let phases: Vec<StepPhase> = r.iter().map(|p| p.phase).collect();
            assert_eq!(phases.first(), Some(&StepPhase::Started), "{kind:?}: {r:?}");
            assert_eq!(phases.last(), Some(&StepPhase::Finished), "{kind:?}: {r:?}");
            let streamed: String = r.iter().filter_map(|p| p.text.as_deref()).collect();
            assert_eq!(streamed, text, "{kind:?}");
        }
        // The guidance (one reference passed on) is announced with its whole text.
        assert!(of(StepKind::Guidance)
            .iter()
            .any(|p| p.text.as_deref() == Some("the answer is 4")));
        // The refinement's text is the answer's deltas, not text reports.
        let refinement = of(StepKind::Refinement);
        assert!(
            refinement.iter().all(|p| p.text.is_none()),
            "{refinement:?}"
        );
        let deltas: String = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Delta(t) => Some(t.as_str()),
                StreamEvent::Progress(_) => None,
            })
            .collect();
        assert_eq!(deltas, c.text);
    }

    /// A horizontal strategy whose every agent is overloaded is a 503, not a 500.
    #[tokio::test]
    async fn a_shared_failure_keeps_its_status_through_any_strategy() {
        let busy = Scripted::new("busy", |_| Err(ModelError::Overloaded { queued: 3 }));
        let clients = [Collaborator::client(0, busy.clone(), "")];
        let q = [ChatMessage::user("q")];
        for text in ["self-consistency:n=2", "colm", "cascade:tau=0"] {
            let spec = StrategySpec::parse(text).unwrap();
            let model = StrategyModel::new(
                text,
                spec.build(text, parts(&clients, busy.clone())).unwrap(),
            );
            let err = model
                .chat(&q, &SamplingParams::default())
                .await
                .unwrap_err();
            assert_eq!(err.status(), 503, "{text}: {err}");
        }
    }
}

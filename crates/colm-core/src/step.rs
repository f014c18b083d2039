//! The pieces every strategy records with: a [`Step`] (one model call with its exact prompt
//! and outcome, or a step that made no call), [`call`] to make one, the [`StepObserver`] that
//! sees steps as they finish, and per-model [`ModelTotals`] derived from steps.
//!
//! CoLM ([`crate::colm`]), the horizontal strategies ([`crate::horizontal`]) and the
//! device–cloud router ([`crate::vertical`]) all record their work as steps.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use futures::channel::mpsc::UnboundedSender;

pub use crate::model::progress::{Progress, StepKind, StepPhase};
use crate::model::{
    ChatMessage, ChatModel, Completion, ModelError, SamplingParams, StreamEvent, Timings, Usage,
};

/// Result of one model call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StepOutcome {
    /// The call returned a completion.
    Ok {
        /// What the model returned.
        completion: Completion,
    },
    /// The call failed; the error is kept, never replaced by an empty string.
    Failed {
        /// Why it failed.
        error: ModelError,
    },
    /// The call was stopped before it finished because its answer was no longer needed (a
    /// device's fallback draft, once the guidance arrived: `draft=auto`). Not a failure.
    Cancelled {
        /// Why it was stopped.
        reason: String,
        /// What the call had used by then (prompt tokens read, tokens generated; 0 for a
        /// remote model, which reports usage only when it answers).
        usage: Usage,
    },
}

/// One model call of the collaboration, with its full prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// What the step was.
    pub kind: StepKind,
    /// Round number from 1; 0 for selection.
    pub round: u32,
    /// Collaborator id for client steps; `None` for server steps.
    pub collaborator: Option<String>,
    /// Name of the model that ran the step.
    pub model: String,
    /// The exact messages sent.
    pub messages: Vec<ChatMessage>,
    /// The sampling the call was made with (token limit, temperature, top-p, seed); `None` for
    /// a step that made no call, and in records written before it was kept. With the messages
    /// it is the whole request, so a run can replay the call ([`ChatModel`] answers a request
    /// with a given seed the same way each time, up to batched floating-point order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<SamplingParams>,
    /// Wall time of the call as seen by the strategy, ms (includes queueing in the engine).
    pub wall_ms: f64,
    /// Completion or error.
    pub outcome: StepOutcome,
    /// Taken from the server's store, where an earlier request asking the same question left
    /// it: this request made no call for it (its messages, sampling and timings are empty).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

impl Step {
    /// The completion, if the call succeeded.
    pub fn completion(&self) -> Option<&Completion> {
        match &self.outcome {
            StepOutcome::Ok { completion } => Some(completion),
            StepOutcome::Failed { .. } | StepOutcome::Cancelled { .. } => None,
        }
    }
    /// The tokens the call used: its completion's, or what it had used when it was
    /// cancelled; zero when it failed.
    pub fn usage(&self) -> Usage {
        match &self.outcome {
            StepOutcome::Ok { completion } => completion.usage,
            StepOutcome::Cancelled { usage, .. } => *usage,
            StepOutcome::Failed { .. } => Usage::default(),
        }
    }
    /// Why the step has no text, as an error: its own, or an inference error saying it was
    /// cancelled and why; `None` when it succeeded.
    pub fn failure(&self) -> Option<ModelError> {
        match &self.outcome {
            StepOutcome::Ok { .. } => None,
            StepOutcome::Failed { error } => Some(error.clone()),
            StepOutcome::Cancelled { .. } => self.problem().map(ModelError::Inference),
        }
    }
    /// Why the step has no text: its error, or that it was cancelled (and why); `None` when
    /// it succeeded.
    pub fn problem(&self) -> Option<String> {
        match &self.outcome {
            StepOutcome::Ok { .. } => None,
            StepOutcome::Failed { error } => Some(error.to_string()),
            StepOutcome::Cancelled { reason, .. } => Some(format!("cancelled: {reason}")),
        }
    }
    /// The generated text, if the call succeeded.
    pub fn text(&self) -> Option<&str> {
        self.completion().map(|c| c.text.as_str())
    }
    /// The error, if the call failed.
    pub fn error(&self) -> Option<&ModelError> {
        match &self.outcome {
            StepOutcome::Failed { error } => Some(error),
            StepOutcome::Ok { .. } | StepOutcome::Cancelled { .. } => None,
        }
    }
}

/// Token and time totals of one model across the collaboration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelTotals {
    /// Summed token counts of successful calls.
    pub usage: Usage,
    /// Calls made.
    pub calls: u32,
    /// Calls that failed.
    pub failed_calls: u32,
    /// Summed prompt-processing time, ms.
    pub prompt_ms: f64,
    /// Summed generation time, ms.
    pub generation_ms: f64,
}

/// Watches a strategy's steps: each one when it finishes and, when [`Observe::live`], each
/// one as it starts and its text as it is generated (then every call streams).
/// Called from the strategy's task; must not block for long. Any `Fn(&Step)` is an observer
/// of finished steps.
pub trait Observe: Send + Sync {
    /// A step finished.
    fn finished(&self, step: &Step);
    /// Whether it watches running steps ([`Observe::running`]); default: no.
    fn live(&self) -> bool {
        false
    }
    /// A running step's report ([`StepPhase::Started`] or [`StepPhase::Text`]); called only
    /// when [`Observe::live`].
    fn running(&self, _report: Progress) {}
}

impl<F: Fn(&Step) + Send + Sync> Observe for F {
    fn finished(&self, step: &Step) {
        self(step);
    }
}

/// How a strategy reports its steps ([`Observe`]).
pub type StepObserver<'a> = &'a dyn Observe;

/// Reports `step`, which generated nothing while this request watched (a vote, a shared
/// reference, a failure before any call), to `observer`: when live, as started and with its
/// whole text, then finished.
pub fn announce(observer: Option<StepObserver<'_>>, step: &Step) {
    let Some(obs) = observer else { return };
    if obs.live() {
        let report = |phase, text| {
            let mut p = Progress::running(
                step.kind,
                step.round,
                step.collaborator.as_deref(),
                &step.model,
                phase,
                text,
                0.0,
            );
            p.shared = step.shared;
            p
        };
        obs.running(report(StepPhase::Started, None));
        if let Some(text) = step.text().filter(|t| !t.is_empty()) {
            obs.running(report(StepPhase::Text, Some(text.to_owned())));
        }
    }
    obs.finished(step);
}

/// How a caller watches a strategy run: each step as it finishes, and the answer's text as
/// it is generated. The strategy streams the step that writes its answer into `answer` when it
/// knows that step before making it (CoLM's last refinement of the first collaborator, the
/// mixture-of-agents aggregator); strategies that choose their answer afterwards (a vote, a
/// cascade's confidence test) stream nothing, and the caller sends the answer at the end.
#[derive(Clone, Copy, Default)]
pub struct Watch<'a> {
    /// Sees each step as it finishes.
    pub steps: Option<StepObserver<'a>>,
    /// Receives [`StreamEvent::Delta`]s of the answer as it is generated.
    pub answer: Option<&'a UnboundedSender<StreamEvent>>,
}

impl<'a> Watch<'a> {
    /// Watches the steps only.
    pub fn steps(observer: Option<StepObserver<'a>>) -> Self {
        Self {
            steps: observer,
            answer: None,
        }
    }
}

impl From<&Step> for Progress {
    fn from(s: &Step) -> Self {
        Self {
            step: s.kind,
            round: s.round,
            collaborator: s.collaborator.clone(),
            model: s.model.clone(),
            completion_tokens: s.usage().completion_tokens,
            phase: StepPhase::Finished,
            text: None,
            wall_ms: s.wall_ms,
            error: s.problem(),
            shared: s.shared,
            answer: false,
        }
    }
}

/// Makes one model call and records it as a [`Step`] (a failure is recorded, not raised);
/// `observer` sees the step as soon as it is made.
pub(crate) async fn call(
    kind: StepKind,
    round: u32,
    collaborator: Option<&str>,
    model: &dyn ChatModel,
    messages: Vec<ChatMessage>,
    params: &SamplingParams,
    observer: Option<StepObserver<'_>>,
) -> Step {
    let watch = Watch::steps(observer);
    call_watched(kind, round, collaborator, model, messages, params, watch).await
}

/// [`call`], streaming the generated text to `watch.answer` when set, and to a live observer
/// ([`Observe::live`]) as [`StepPhase::Text`] reports.
pub(crate) async fn call_watched(
    kind: StepKind,
    round: u32,
    collaborator: Option<&str>,
    model: &dyn ChatModel,
    messages: Vec<ChatMessage>,
    params: &SamplingParams,
    watch: Watch<'_>,
) -> Step {
    let start = Instant::now();
    let live = watch.steps.filter(|o| o.live());
    let report = |phase, text| {
        Progress::running(
            kind,
            round,
            collaborator,
            model.name(),
            phase,
            text,
            start.elapsed().as_secs_f64() * 1000.0,
        )
    };
    if let Some(o) = live {
        let mut started = report(StepPhase::Started, None);
        started.answer = watch.answer.is_some();
        o.running(started);
    }
    let result = if live.is_some() || watch.answer.is_some() {
        let (tx, mut rx) = futures::channel::mpsc::unbounded::<StreamEvent>();
        // The answer's text goes to `watch.answer` only: a caller sees it once.
        let relay = async {
            while let Some(e) = futures::StreamExt::next(&mut rx).await {
                match (watch.answer, live, &e) {
                    (Some(answer), _, _) => {
                        let _ = answer.unbounded_send(e);
                    }
                    (None, Some(o), StreamEvent::Delta(t)) => {
                        o.running(report(StepPhase::Text, Some(t.clone())));
                    }
                    _ => {}
                }
            }
        };
        futures::join!(model.chat_streaming(&messages, params, tx), relay).0
    } else {
        model.chat(&messages, params).await
    };
    let step = Step {
        kind,
        round,
        collaborator: collaborator.map(str::to_owned),
        model: model.name().to_owned(),
        messages,
        sampling: Some(params.clone()),
        wall_ms: start.elapsed().as_secs_f64() * 1000.0,
        outcome: match result {
            Ok(completion) => StepOutcome::Ok { completion },
            Err(error) => StepOutcome::Failed { error },
        },
        shared: false,
    };
    if let Some(obs) = watch.steps {
        obs.finished(&step);
    }
    step
}

/// A step that made no model call (a vote, a keyword selection, a single reference passed on
/// as guidance): `model` names what produced it, it has no messages and no tokens; `observer`
/// gets it [announced](announce).
pub fn no_call_step(
    kind: StepKind,
    round: u32,
    model: &str,
    text: Result<String, ModelError>,
    observer: Option<StepObserver<'_>>,
) -> Step {
    let outcome = match text {
        Ok(text) => StepOutcome::Ok {
            completion: Completion::text_only(text),
        },
        Err(error) => StepOutcome::Failed { error },
    };
    let step = Step {
        kind,
        round,
        collaborator: None,
        model: model.to_owned(),
        messages: Vec::new(),
        sampling: None,
        wall_ms: 0.0,
        outcome,
        shared: false,
    };
    announce(observer, &step);
    step
}

/// Token and time totals per model name over `steps`; a step without messages (a vote: no
/// model call) has none.
pub fn totals_of<'s>(steps: impl Iterator<Item = &'s Step>) -> BTreeMap<String, ModelTotals> {
    let mut map: BTreeMap<String, ModelTotals> = BTreeMap::new();
    for step in steps.filter(|s| !s.messages.is_empty()) {
        let t = map.entry(step.model.clone()).or_default();
        t.calls += 1;
        match &step.outcome {
            StepOutcome::Ok { completion } => {
                t.usage.add(completion.usage);
                t.prompt_ms += completion.timings.prompt_ms;
                t.generation_ms += completion.timings.generation_ms;
            }
            StepOutcome::Failed { .. } => t.failed_calls += 1,
            StepOutcome::Cancelled { usage, .. } => t.usage.add(*usage),
        }
    }
    map
}

/// Token counts and timings summed over every model: what a whole strategy run spent.
pub fn summed(usage_by_model: &BTreeMap<String, ModelTotals>) -> (Usage, Timings) {
    let mut usage = Usage::default();
    let mut timings = Timings::default();
    for t in usage_by_model.values() {
        usage.add(t.usage);
        timings.add(Timings {
            prompt_ms: t.prompt_ms,
            generation_ms: t.generation_ms,
        });
    }
    (usage, timings)
}

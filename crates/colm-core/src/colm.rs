//! The CoLM strategy (Huang, Huang, Zhang, AAAI 2026, arXiv 2511.06991) as pure async logic.
//!
//! One collaboration on a query, in the default [`GuidanceMode::Reference`] (the paper's data
//! flow):
//! 1. **drafts and references, at the same time**: every client collaborator drafts its answer
//!    on its own model while the server's top-k reference writers (server-side collaborators,
//!    [`references`]) write theirs and the references are synthesised into **guidance** (one
//!    reference is its own guidance) — none of this reads a draft, so a round costs
//!    max(draft, references + synthesis) + refinement;
//! 2. **sharing**: that server-side part reads no client text and is the same for every client
//!    asking the question (`guidance_shared`); with a [`references::ReferenceStore`] it is
//!    written once per question and served again to later askers. `reference-critique` then has
//!    the server compare each client's draft with the synthesis (private guidance per client);
//! 3. **refinement**: every client collaborator revises **its own** answer with its guidance, in
//!    the form of [`ColmConfig::refine`] (by default in this mode the CoLM reference code's: the
//!    guidance in the system prompt, the question asked again).
//!
//! Draft → guidance → refinement form a **round**; with `rounds > 1` the refinements of round *r* are aggregated
//! with the references in round *r + 1* (private, since it reads client answers). The modes
//! that only read drafts (`synthesis`, `critique`, `vote`, `auto`) skip the references and
//! aggregate the drafts instead; with `top_k` the server may first select the client
//! collaborators (legacy ablation; an unusable answer falls back to all). A collaborator whose call fails is recorded as failed and the
//! round goes on with the others (its last good answer is kept); when every collaborator
//! fails, or the server fails to produce guidance, [`run`] returns a [`ColmError`] that carries
//! the partial record, so nothing computed is lost.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::guidance::{DraftScreen, GuidanceMode};
use crate::model::{ChatModel, ModelError, SamplingParams, WireStats};
use crate::prompts::{self, RefineContext};
use crate::query::Query;
use crate::round;

pub mod guide;
pub mod references;
mod virtual_model;
pub(crate) use crate::step::{call, totals_of};
pub use crate::step::{ModelTotals, Step, StepKind, StepObserver, StepOutcome, Watch};
use references::{ReferenceConfig, ReferenceStore, ReferenceWriter, References};
pub use virtual_model::ColmModel;

/// A client model taking part in a collaboration.
#[derive(Clone)]
pub struct Collaborator {
    /// Unique id within the collaboration, e.g. `client-1`.
    pub id: String,
    /// Declared specialisation, shown to the server during top-k selection.
    pub description: String,
    /// The collaborator's own model.
    pub model: Arc<dyn ChatModel>,
}

impl Collaborator {
    /// The collaborator as the maker of a round's client steps.
    pub fn as_client(&self) -> round::Client<'_> {
        round::Client {
            id: Some(&self.id),
            model: self.model.as_ref(),
        }
    }

    /// The `i`-th client collaborator (from 0): id `client-{i + 1}`, as every entry point
    /// names them (`colm ask`, `colm serve`'s virtual models, `colm eval`).
    pub fn client(i: usize, model: Arc<dyn ChatModel>, description: impl Into<String>) -> Self {
        Self {
            id: format!("client-{}", i + 1),
            description: description.into(),
            model,
        }
    }
}

/// Settings of one collaboration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColmConfig {
    /// Draft → guidance → refinement rounds, at least 1 (the paper's default is 1).
    pub rounds: u32,
    /// When set and smaller than the number of collaborators, the server first selects this
    /// many collaborators (must be ≥ 1).
    pub top_k: Option<usize>,
    /// Sampling for the collaborators' drafts and refinements.
    pub client_params: SamplingParams,
    /// Sampling for the server's selection and guidance.
    pub server_params: SamplingParams,
    /// How the server makes guidance. Records written before the reference modes existed
    /// read as `Synthesis`, the mode they ran.
    #[serde(default = "legacy_mode")]
    pub guidance_mode: GuidanceMode,
    /// References per query and how their writers are chosen (reference modes).
    #[serde(default)]
    pub references: ReferenceConfig,
    /// Reference modes: also aggregate the clients' round-1 drafts with the references (an
    /// ablation; the guidance then reads client text and is private).
    #[serde(default)]
    pub aggregate_drafts: bool,
    /// What the refinement prompt shows the client besides the guidance: its own draft or, as
    /// the CoLM reference code, the guidance alone ([`prompts::RefineContext`]); `None`: the
    /// mode's default ([`GuidanceMode::default_refine`]; see [`ColmConfig::refine_context`]).
    /// `guidance` needs a mode whose guidance does not comment on the draft. A record holds the
    /// form that ran; records written before the option existed read as `draft`, the form they
    /// ran.
    #[serde(default = "legacy_refine")]
    pub refine: Option<RefineContext>,
    /// Which clients' answers the server model reads when it aggregates them
    /// ([`DraftScreen`]); records written before the option existed read as `all`.
    #[serde(default)]
    pub screen: DraftScreen,
    /// The server reads at most this many of the clients' answers when it aggregates them, the
    /// first ones (`None`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_drafts: Option<usize>,
}

fn legacy_mode() -> GuidanceMode {
    GuidanceMode::Synthesis
}

fn legacy_refine() -> Option<RefineContext> {
    Some(RefineContext::Draft)
}

impl ColmConfig {
    /// The refinement form that runs: `refine`, or the mode's default.
    pub fn refine_context(&self) -> RefineContext {
        self.refine
            .unwrap_or_else(|| self.guidance_mode.default_refine())
    }
}

impl Default for ColmConfig {
    fn default() -> Self {
        Self {
            rounds: 1,
            top_k: None,
            client_params: SamplingParams::default(),
            server_params: SamplingParams::default(),
            guidance_mode: GuidanceMode::Reference,
            references: ReferenceConfig::default(),
            aggregate_drafts: false,
            refine: None,
            screen: DraftScreen::All,
            max_drafts: None,
        }
    }
}

/// Outcome of top-k selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The server call.
    pub step: Step,
    /// Ids of the collaborators taking part, in their original order.
    pub chosen: Vec<String>,
    /// Why the selection fell back to all collaborators, when it did.
    pub fallback_reason: Option<String>,
}

/// An answer that entered an aggregation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// Collaborator id.
    pub collaborator: String,
    /// The answer text aggregated.
    pub text: String,
}

/// One draft → guidance → refinement cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Round number from 1.
    pub round: u32,
    /// Draft calls made in this round (only round 1 drafts; later rounds start from the
    /// previous refinements).
    pub drafts: Vec<Step>,
    /// The answers the server aggregated in this round.
    pub aggregated: Vec<Contribution>,
    /// The server's aggregation (in reference modes, the synthesis of the references); `None`
    /// only in a partial record whose drafts all failed.
    pub guidance: Option<Step>,
    /// The guidance was made from server-side inputs only (no client text): the same for every
    /// client asking the question, so shareable.
    #[serde(default)]
    pub guidance_shared: bool,
    /// `reference-critique`: the server's review of each collaborator's answer against the
    /// guidance above (the guidance that collaborator refines with), in collaborator order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub critiques: Vec<Step>,
    /// Refinement calls.
    pub refinements: Vec<Step>,
}

/// A collaborator's answer at the end of the collaboration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalAnswer {
    /// Collaborator id.
    pub collaborator: String,
    /// Its model.
    pub model: String,
    /// Its last successful answer.
    pub text: String,
    /// Which step produced it (a draft when every refinement of this collaborator failed).
    pub from: StepKind,
    /// Round of that step.
    pub round: u32,
}

/// The full record of one collaboration: every prompt and answer, per-model totals, timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColmRecord {
    /// Strategy name, `colm`.
    pub strategy: String,
    /// The query.
    pub query: String,
    /// Settings used.
    pub config: ColmConfig,
    /// Name of the server model.
    pub server_model: String,
    /// Top-k selection of the client collaborators, when it ran.
    pub selection: Option<Selection>,
    /// The server-side collaborators' references (reference modes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<References>,
    /// The rounds, in order.
    pub rounds: Vec<RoundRecord>,
    /// Each surviving collaborator's final answer, in collaborator order.
    pub final_answers: Vec<FinalAnswer>,
    /// Bytes the guidance moved over the network, when it did (a remote guide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire: Option<WireStats>,
    /// Wall time of the whole collaboration, ms.
    pub wall_ms: f64,
}

impl ColmRecord {
    /// Token and time totals per model name, derived from the steps.
    pub fn usage_by_model(&self) -> BTreeMap<String, ModelTotals> {
        totals_of(self.steps())
    }

    /// The first collaborator's final answer (the client of interest when K = 1).
    pub fn answer(&self) -> Option<&str> {
        self.final_answers.first().map(|a| a.text.as_str())
    }

    /// The step that gave the first collaborator's final answer (its draft or a refinement).
    pub fn answer_step(&self) -> Option<&Step> {
        let a = self.final_answers.first()?;
        let round = self.rounds.get(a.round.checked_sub(1)? as usize)?;
        let steps = match a.from {
            StepKind::Draft => &round.drafts,
            _ => &round.refinements,
        };
        steps
            .iter()
            .find(|s| s.collaborator.as_deref() == Some(&a.collaborator) && s.text().is_some())
    }

    /// The client steps (drafts and refinements) of every round, in order.
    pub fn client_steps(&self) -> impl Iterator<Item = &Step> {
        self.rounds
            .iter()
            .flat_map(|r| r.drafts.iter().chain(&r.refinements))
    }

    /// Every step in order: selection, the references (their selection, then each), then per
    /// round drafts, guidance, critiques, refinements.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.selection
            .iter()
            .map(|s| &s.step)
            .chain(self.references.iter().flat_map(References::all_steps))
            .chain(self.rounds.iter().flat_map(|r| {
                r.drafts
                    .iter()
                    .chain(r.guidance.iter())
                    .chain(r.critiques.iter())
                    .chain(r.refinements.iter())
            }))
    }

    /// The steps computed from server-side inputs only (reference selection, references, and
    /// guidance marked shared): what a server computes once per question for all its clients.
    pub fn shared_steps(&self) -> impl Iterator<Item = &Step> {
        self.references
            .iter()
            .flat_map(References::all_steps)
            .chain(
                self.rounds
                    .iter()
                    .filter(|r| r.guidance_shared)
                    .flat_map(|r| r.guidance.iter()),
            )
    }
}

/// Why a collaboration could not finish. Each variant carries the partial record.
#[derive(Debug, thiserror::Error)]
pub enum ColmError {
    /// The configuration or collaborator list is unusable.
    #[error("invalid collaboration settings: {0}")]
    InvalidConfig(String),
    /// Every collaborator failed at one stage.
    #[error("all {} collaborators failed at the {stage:?} stage of round {round}: {}",
        .errors.len(), format_errors(.errors))]
    AllCollaboratorsFailed {
        /// Round number.
        round: u32,
        /// Stage (draft or refinement).
        stage: StepKind,
        /// (collaborator id, error) for each.
        errors: Vec<(String, ModelError)>,
        /// Everything recorded up to the failure.
        partial: Box<ColmRecord>,
    },
    /// The server model failed to produce guidance.
    #[error("the server model failed to aggregate round {round}: {error}")]
    GuidanceFailed {
        /// Round number.
        round: u32,
        /// The server's error.
        error: ModelError,
        /// Everything recorded up to the failure.
        partial: Box<ColmRecord>,
    },
}

fn format_errors(errors: &[(String, ModelError)]) -> String {
    errors
        .iter()
        .map(|(id, e)| format!("{id}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses the server's answer to the selection prompt: 1-based numbers in `1..=n`.
///
/// Returns the first `k` distinct 0-based indices in the order given.
///
/// # Errors
/// A reason string when the answer has no number, a number outside `1..=n`, or fewer than
/// `k` distinct numbers.
pub fn parse_selection(text: &str, n: usize, k: usize) -> Result<Vec<usize>, String> {
    let numbers: Vec<&str> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    if numbers.is_empty() {
        return Err(format!("no collaborator number in {:?}", short(text)));
    }
    let mut chosen = Vec::new();
    for s in numbers {
        let i: usize = s
            .parse()
            .map_err(|_| format!("number {s} is out of range 1..={n}"))?;
        if i == 0 || i > n {
            return Err(format!("number {i} is out of range 1..={n}"));
        }
        if !chosen.contains(&(i - 1)) {
            chosen.push(i - 1);
        }
    }
    if chosen.len() < k {
        return Err(format!(
            "{} distinct collaborator numbers where {k} were asked for",
            chosen.len()
        ));
    }
    chosen.truncate(k);
    Ok(chosen)
}

fn short(text: &str) -> String {
    let t: String = text.chars().take(80).collect();
    if t.len() < text.len() {
        format!("{t}…")
    } else {
        t
    }
}

/// The answers at `shown` (indexes into `answers`), in order: what a screened aggregation read.
pub(crate) fn pick(answers: &[Contribution], shown: &[usize]) -> Vec<Contribution> {
    shown
        .iter()
        .filter_map(|&i| answers.get(i).cloned())
        .collect()
}

/// Top-k selection by `server` among `profiles` ([`prompts::selection`]); an unusable answer or
/// a failed call keeps every candidate, with the reason recorded.
pub(crate) async fn select(
    query: &str,
    profiles: &[prompts::CandidateProfile<'_>],
    k: usize,
    server: &dyn ChatModel,
    params: &SamplingParams,
    observer: Option<StepObserver<'_>>,
) -> Selection {
    let step = call(
        StepKind::Selection,
        0,
        None,
        server,
        prompts::selection(query, profiles, k),
        params,
        observer,
    )
    .await;
    let parsed = match &step.outcome {
        StepOutcome::Ok { completion } => parse_selection(&completion.text, profiles.len(), k),
        StepOutcome::Failed { error } => Err(format!("selection call failed: {error}")),
    };
    let (chosen, fallback_reason) = match parsed {
        Ok(mut idx) => {
            idx.sort_unstable();
            (idx, None)
        }
        Err(reason) => ((0..profiles.len()).collect(), Some(reason)),
    };
    Selection {
        step,
        chosen: chosen
            .iter()
            .filter_map(|&i| profiles.get(i))
            .map(|p| p.id.to_owned())
            .collect(),
        fallback_reason,
    }
}

/// The server side of a collaboration: the model that selects and aggregates, and the pool of
/// server-side collaborators that write references (empty: the aggregator itself, as one
/// generalist writer).
#[derive(Clone, Copy)]
pub struct ServerSide<'a> {
    /// Selects collaborators and aggregates into guidance.
    pub aggregator: &'a dyn ChatModel,
    /// Reference writers; top-k of them are selected per query.
    pub writers: &'a [ReferenceWriter],
    /// Where round 1's references and their synthesis are shared between requests asking the
    /// same question (`None`: written for this request alone).
    pub store: Option<&'a dyn ReferenceStore>,
}

/// Runs one CoLM collaboration on `query` with `server` as the aggregator and as the only
/// reference writer (see [`run_with`]).
///
/// # Errors
/// As [`run_with`].
pub async fn run(
    query: &Query,
    collaborators: &[Collaborator],
    server: &dyn ChatModel,
    config: &ColmConfig,
    observer: Option<StepObserver<'_>>,
) -> Result<ColmRecord, ColmError> {
    let side = ServerSide {
        aggregator: server,
        writers: &[],
        store: None,
    };
    run_with(query, collaborators, side, config, Watch::steps(observer)).await
}

/// Runs one CoLM collaboration on `query`.
///
/// `collaborators` are the client models (K ≥ 1, unique ids); `server` aggregates and holds the
/// reference writers. `watch.steps` sees each step as it completes; `watch.answer` receives
/// the answer's text as it is generated (the last round's refinement of the first active
/// collaborator).
///
/// # Errors
/// [`ColmError::InvalidConfig`] for zero rounds, `top_k == Some(0)`, zero references, no
/// collaborators or duplicate ids; [`ColmError::AllCollaboratorsFailed`] when every
/// collaborator fails at a stage; [`ColmError::GuidanceFailed`] when the server fails to
/// aggregate (in reference modes: also when every reference writer failed).
pub async fn run_with(
    query: &Query,
    collaborators: &[Collaborator],
    server: ServerSide<'_>,
    config: &ColmConfig,
    watch: Watch<'_>,
) -> Result<ColmRecord, ColmError> {
    let guide = guide::InProcess {
        aggregator: Some(server.aggregator),
        writers: server.writers,
        store: server.store,
        config,
    };
    round::run(query, collaborators, &guide, config, None, watch).await
}

pub(crate) fn validate(
    collaborators: &[Collaborator],
    config: &ColmConfig,
) -> Result<(), ColmError> {
    if collaborators.is_empty() {
        return Err(ColmError::InvalidConfig("no collaborators".into()));
    }
    if config.rounds == 0 {
        return Err(ColmError::InvalidConfig("rounds must be at least 1".into()));
    }
    if config.top_k == Some(0) {
        return Err(ColmError::InvalidConfig("top_k must be at least 1".into()));
    }
    config
        .guidance_mode
        .check_refine(config.refine_context())
        .map_err(ColmError::InvalidConfig)?;
    if config.references.k == 0 {
        return Err(ColmError::InvalidConfig(
            "the number of references must be at least 1".into(),
        ));
    }
    for (i, c) in collaborators.iter().enumerate() {
        if collaborators[..i].iter().any(|o| o.id == c.id) {
            return Err(ColmError::InvalidConfig(format!(
                "collaborator id {:?} is used twice",
                c.id
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

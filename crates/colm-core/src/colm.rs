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
use std::time::Instant;

use futures::future::join_all;
use serde::{Deserialize, Serialize};

use crate::guidance::{DraftScreen, GuidanceMode, GuidancePlan};
use crate::model::{ChatModel, ModelError, SamplingParams};
use crate::prompts::{self, GuidanceSource, RefineContext};
use crate::query::Query;
use crate::round;

pub mod references;
mod virtual_model;
pub(crate) use crate::step::{call, no_call_step, totals_of};
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
fn pick(answers: &[Contribution], shown: &[usize]) -> Vec<Contribution> {
    shown
        .iter()
        .filter_map(|&i| answers.get(i).cloned())
        .collect()
}

/// The guidance step of a vote (no model call; model `vote`), or the reason none could be made.
fn vote_step(
    round: u32,
    plan: Result<GuidancePlan, ModelError>,
    observer: Option<StepObserver<'_>>,
) -> Step {
    let text = match plan {
        Ok(GuidancePlan::Vote { tally, drafts }) => {
            Ok(GuidancePlan::vote_guidance(tally, drafts).text)
        }
        Ok(GuidancePlan::Call { .. }) => Err(ModelError::InvalidRequest(
            "a server call was planned, not a vote".into(),
        )),
        Err(error) => Err(error),
    };
    no_call_step(
        StepKind::Guidance,
        round,
        GuidanceMode::Vote.name(),
        text,
        observer,
    )
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

/// A collaborator still taking part, with its latest good answer.
struct Active<'c> {
    who: &'c Collaborator,
    text: String,
    from: StepKind,
    round: u32,
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
    validate(collaborators, config)?;
    // The query as the server's prompts quote it (computed once: it hashes any images).
    let asked = query.server_text();
    let observer = watch.steps;
    let refine = config.refine_context();
    let start = Instant::now();
    let aggregator = server.aggregator;
    let mut record = ColmRecord {
        strategy: "colm".into(),
        query: asked.to_string(),
        config: ColmConfig {
            refine: Some(refine),
            ..config.clone()
        },
        server_model: aggregator.name().to_owned(),
        selection: None,
        references: None,
        rounds: Vec::new(),
        final_answers: Vec::new(),
        wall_ms: 0.0,
    };
    let finish = |mut record: ColmRecord| {
        record.wall_ms = start.elapsed().as_secs_f64() * 1000.0;
        record
    };
    let mode = config.guidance_mode;
    let server_call = references::ServerCall {
        model: aggregator,
        params: &config.server_params,
    };

    // 1. Selection of the client collaborators (legacy top_k).
    let mut selected: Vec<&Collaborator> = collaborators.iter().collect();
    if let Some(k) = config.top_k.filter(|&k| k < collaborators.len()) {
        let profiles: Vec<prompts::CandidateProfile<'_>> = collaborators
            .iter()
            .map(|c| prompts::CandidateProfile {
                id: &c.id,
                description: &c.description,
            })
            .collect();
        let s = select(
            &asked,
            &profiles,
            k,
            aggregator,
            &config.server_params,
            observer,
        )
        .await;
        selected = collaborators
            .iter()
            .filter(|c| s.chosen.contains(&c.id))
            .collect();
        record.selection = Some(s);
    }

    // 2. Drafts on the clients and references on the server, at the same time.
    let drafts_fut = join_all(
        selected
            .iter()
            .map(|c| round::draft(query, c.as_client(), &config.client_params, observer)),
    );
    // Round 1's guidance reads no client text unless the drafts are aggregated: then the
    // references and their synthesis are written together, shared through the store.
    let references_fut = async {
        if !mode.uses_references() {
            None
        } else if config.aggregate_drafts {
            let refs = references::write_references(
                query,
                server.writers,
                &config.references,
                aggregator,
                &config.server_params,
                observer,
            )
            .await;
            Some((refs, None))
        } else {
            let shared = references::shared_guidance(
                query,
                server.writers,
                &config.references,
                server_call,
                server.store,
                observer,
            )
            .await;
            Some((shared.references, Some(shared.guidance)))
        }
    };
    let (draft_steps, refs) = futures::join!(drafts_fut, references_fut);
    let mut shared_guidance = None;
    if let Some((refs, guidance)) = refs {
        record.references = Some(refs);
        shared_guidance = guidance;
    }
    let mut active: Vec<Active<'_>> = Vec::new();
    let mut errors = Vec::new();
    for (c, step) in selected.iter().zip(&draft_steps) {
        match &step.outcome {
            StepOutcome::Ok { completion } => active.push(Active {
                who: c,
                text: completion.text.clone(),
                from: StepKind::Draft,
                round: 1,
            }),
            StepOutcome::Failed { error } => errors.push((c.id.clone(), error.clone())),
        }
    }
    let mut drafts = Some(draft_steps);
    if active.is_empty() {
        record.rounds.push(RoundRecord {
            round: 1,
            drafts: drafts.take().unwrap_or_default(),
            aggregated: Vec::new(),
            guidance_shared: shared_guidance.is_some(),
            guidance: shared_guidance.take(),
            critiques: Vec::new(),
            refinements: Vec::new(),
        });
        return Err(ColmError::AllCollaboratorsFailed {
            round: 1,
            stage: StepKind::Draft,
            errors,
            partial: Box::new(finish(record)),
        });
    }

    for round in 1..=config.rounds {
        // 3. Aggregation into guidance.
        let answers: Vec<Contribution> = active
            .iter()
            .map(|a| Contribution {
                collaborator: a.who.id.clone(),
                text: a.text.clone(),
            })
            .collect();
        let texts: Vec<&str> = answers.iter().map(|c| c.text.as_str()).collect();
        let (guidance_step, aggregated, shared) = match &record.references {
            Some(refs) => match shared_guidance.take() {
                // Round 1 read the references only: its synthesis is already written (shared).
                Some(step) => (step, Vec::new(), true),
                // Later rounds (and round 1 with the drafts aggregated) read client answers.
                None => {
                    let shown = config.screen.shown(&texts);
                    let texts: Vec<&str> = shown.iter().map(|&i| texts[i]).collect();
                    let step =
                        references::synthesise(query, refs, &texts, server_call, round, observer)
                            .await;
                    (step, pick(&answers, &shown), false)
                }
            },
            None => match GuidancePlan::new(&asked, &texts, mode, config.screen) {
                Ok(GuidancePlan::Call {
                    messages, shown, ..
                }) => {
                    let step = call(
                        StepKind::Guidance,
                        round,
                        None,
                        aggregator,
                        messages,
                        &config.server_params,
                        observer,
                    )
                    .await;
                    (step, pick(&answers, &shown), false)
                }
                // A vote counts every answer.
                plan => (vote_step(round, plan, observer), answers.clone(), false),
            },
        };
        let mut round_record = RoundRecord {
            round,
            drafts: drafts.take().unwrap_or_default(),
            aggregated,
            guidance: Some(guidance_step),
            guidance_shared: shared,
            critiques: Vec::new(),
            refinements: Vec::new(),
        };
        let guidance = match round_record.guidance.as_ref().map(|g| &g.outcome) {
            Some(StepOutcome::Ok { completion }) => completion.text.clone(),
            Some(StepOutcome::Failed { error }) => {
                let error = error.clone();
                record.rounds.push(round_record);
                record.final_answers = final_answers(&active);
                return Err(ColmError::GuidanceFailed {
                    round,
                    error,
                    partial: Box::new(finish(record)),
                });
            }
            None => String::new(),
        };

        // reference-critique: each collaborator's answer reviewed against the synthesis; a
        // failed review is recorded and that collaborator refines with the synthesis itself.
        let mut per_collaborator: Vec<String> = vec![guidance.clone(); active.len()];
        if mode == GuidanceMode::ReferenceCritique {
            let critiques = join_all(active.iter().map(|a| {
                references::critique(
                    query,
                    &guidance,
                    &a.text,
                    &a.who.id,
                    server_call,
                    round,
                    observer,
                )
            }))
            .await;
            for (g, step) in per_collaborator.iter_mut().zip(&critiques) {
                if let Some(text) = step.text() {
                    *g = text.to_owned();
                }
            }
            round_record.critiques = critiques;
        }
        let source = if mode == GuidanceMode::Reference && shared {
            GuidanceSource::References
        } else {
            GuidanceSource::ReadYourAnswer
        };

        // 4. Refinement, each collaborator with its own previous answer.
        let last = round == config.rounds;
        let refinements = join_all(active.iter().zip(&per_collaborator).enumerate().map(
            |(i, (a, g))| {
                // The first active collaborator's last refinement is the answer: stream it.
                let answer = watch.answer.filter(|_| last && i == 0);
                let input = round::Refine {
                    query,
                    own: &a.text,
                    guidance: g,
                    source,
                    form: refine,
                };
                round::refine(
                    input,
                    a.who.as_client(),
                    round,
                    &config.client_params,
                    Watch {
                        steps: observer,
                        answer,
                    },
                )
            },
        ))
        .await;
        let mut errors = Vec::new();
        for (a, step) in active.iter_mut().zip(&refinements) {
            match &step.outcome {
                StepOutcome::Ok { completion } => {
                    a.text = completion.text.clone();
                    a.from = StepKind::Refinement;
                    a.round = round;
                }
                StepOutcome::Failed { error } => errors.push((a.who.id.clone(), error.clone())),
            }
        }
        round_record.refinements = refinements;
        record.rounds.push(round_record);
        if errors.len() == active.len() {
            record.final_answers = final_answers(&active);
            return Err(ColmError::AllCollaboratorsFailed {
                round,
                stage: StepKind::Refinement,
                errors,
                partial: Box::new(finish(record)),
            });
        }
    }
    record.final_answers = final_answers(&active);
    Ok(finish(record))
}

fn validate(collaborators: &[Collaborator], config: &ColmConfig) -> Result<(), ColmError> {
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

fn final_answers(active: &[Active<'_>]) -> Vec<FinalAnswer> {
    active
        .iter()
        .map(|a| FinalAnswer {
            collaborator: a.who.id.clone(),
            model: a.who.model.name().to_owned(),
            text: a.text.clone(),
            from: a.from,
            round: a.round,
        })
        .collect()
}

#[cfg(test)]
mod tests;

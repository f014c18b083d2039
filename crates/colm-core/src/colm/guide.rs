//! What a client asks of a server in a CoLM round (Huang et al., AAAI 2026, §3): the
//! [`Guide`] trait, and [`InProcess`], the server side of a round written once — references and
//! their synthesis (shared per question through a [`ReferenceStore`]), the aggregation of the
//! clients' answers in the modes that read them, the reference critique, the vote.
//!
//! The round itself ([`crate::colm::round::run`]) is the client side: it drafts, asks its guide, and
//! refines. A guide answers two questions:
//! 1. [`Guide::shared`]: round 1's part that reads no client text (the references, and in
//!    `reference` mode their synthesis, which is then the guidance): asked while the clients
//!    draft, and the same for every client asking the question;
//! 2. [`Guide::guidance`]: the guidance of a round for the clients' latest answers
//!    ([`Ask::answers`]), made from the shared part where it is the guidance.
//!
//! `colm ask`, the virtual `colm` model and `colm eval` run the round over [`InProcess`] on their
//! own models; the server's guidance and session handlers answer with [`InProcess`] too; a
//! device (`colm-client`) runs the same round over a guide that asks a colm server over HTTP.

use async_trait::async_trait;

use super::config::ColmConfig;
use super::record::Contribution;
use super::references::{self, ReferenceStore, ReferenceWriter, References, ServerCall};
use super::selection::{select, Selection};
use crate::answer::VoteTally;
use crate::guidance::{GuidanceMode, GuidancePlan};
use crate::model::{ChatModel, EmbeddingModel, ModelError, WireStats};
use crate::prompts::CandidateProfile;
use crate::query::Query;
use crate::step::{call, no_call_step, Step, StepKind, StepObserver};

/// Round 1's part of the guidance that reads no client text ([`Guide::shared`]).
#[derive(Debug, Clone, Default)]
pub struct Shared {
    /// The references written (reference modes), when the guide has them.
    pub references: Option<References>,
    /// The guidance itself, when it reads no client text (`reference` mode without the
    /// drafts aggregated).
    pub guidance: Option<Step>,
    /// The vote that guidance is the outcome of (`aggregate=vote`), when the guide reports it
    /// (a remote guide; the in-process one counts it from the references).
    pub tally: Option<VoteTally>,
    /// Bytes this part moved over the network (a remote guide).
    pub wire: WireStats,
}

/// One question to a guide: the guidance of round `round` ([`Guide::guidance`]).
pub struct Ask<'a> {
    /// The query.
    pub query: &'a Query,
    /// Round number from 1.
    pub round: u32,
    /// The clients' latest answers (their drafts in round 1), in collaborator order.
    pub answers: &'a [Contribution],
    /// Round 1's shared part, as [`Guide::shared`] returned it (`None` in later rounds).
    pub shared: Option<Shared>,
    /// The references of this collaboration so far (round 1's), when written.
    pub references: Option<&'a References>,
}

/// A guide's answer to an [`Ask`].
#[derive(Debug, Clone)]
pub struct Guided {
    /// The aggregation: a server call, or a step without one (one reference, a vote, guidance
    /// fetched over the network); a failed step when no guidance could be made.
    pub guidance: Step,
    /// The guidance was made from server-side inputs only (no client text): the same for
    /// every client asking the question.
    pub shared: bool,
    /// The answers the aggregation read (after screening).
    pub aggregated: Vec<Contribution>,
    /// `reference-critique`: the review of each answer against the guidance, in the order of
    /// [`Ask::answers`] (empty otherwise, and when the guidance failed).
    pub critiques: Vec<Step>,
    /// References written for this ask, when the ask brought none (a later round asked of a
    /// guide that keeps nothing between asks: the server's handler).
    pub references: Option<References>,
    /// The mode that ran (`auto` becomes `vote` or `synthesis`).
    pub mode: GuidanceMode,
    /// The vote, when the guidance is one (`vote`, `auto` when the answers agreed).
    pub tally: Option<VoteTally>,
    /// Bytes moved over the network (a remote guide).
    pub wire: WireStats,
}

impl Guided {
    /// Guidance `step` made in `mode` from nothing but itself (no answer read, no critique).
    pub fn only(step: Step, mode: GuidanceMode, shared: bool) -> Self {
        Self {
            guidance: step,
            shared,
            aggregated: Vec::new(),
            critiques: Vec::new(),
            references: None,
            mode,
            tally: None,
            wire: WireStats::default(),
        }
    }

    /// The guidance for the answer at `index` of the ask: its critique when there is one (and
    /// it succeeded), else the guidance.
    pub fn for_answer(&self, index: usize) -> Option<&str> {
        self.critiques
            .get(index)
            .and_then(Step::text)
            .or_else(|| self.guidance.text())
    }
}

/// What a client asks of a server in a round (module docs).
#[async_trait]
pub trait Guide: Send + Sync {
    /// Name of the model that aggregates (a record's `server_model`).
    fn server_model(&self) -> &str;

    /// Round 1's part that reads no client text, asked while the clients draft; `None` where
    /// there is none (the modes that aggregate drafts only).
    async fn shared(&self, query: &Query, observer: Option<StepObserver<'_>>) -> Option<Shared>;

    /// The guidance of one round.
    async fn guidance(&self, ask: Ask<'_>, observer: Option<StepObserver<'_>>) -> Guided;

    /// Top-k selection of the client collaborators (the legacy `top_k`), by the server model;
    /// `None` when this guide does not select (every collaborator takes part).
    async fn select(
        &self,
        _query: &str,
        _profiles: &[CandidateProfile<'_>],
        _k: usize,
        _observer: Option<StepObserver<'_>>,
    ) -> Option<Selection> {
        None
    }
}

/// The server side of a round in this process: the model that selects and aggregates, the
/// server-side collaborators that write references (empty: the aggregator itself, as one
/// generalist writer), the store that shares round 1's work between askers, and the settings
/// (mode, references, screen, drafts aggregated, the server's sampling).
#[derive(Clone, Copy)]
pub struct InProcess<'a> {
    /// Selects collaborators and aggregates into guidance (`None`: only a vote can be made).
    pub aggregator: Option<&'a dyn ChatModel>,
    /// Reference writers; top-k of them are selected per query.
    pub writers: &'a [ReferenceWriter],
    /// Where round 1's references and their synthesis are shared between requests asking the
    /// same question (`None`: written for this request alone).
    pub store: Option<&'a dyn ReferenceStore>,
    /// The settings of the guidance.
    pub config: &'a ColmConfig,
    /// The embedding model of the `embedding` selector (`None`: not loaded).
    pub embedder: Option<&'a dyn EmbeddingModel>,
}

impl InProcess<'_> {
    /// The aggregator, or the error of a mode that needs one without it.
    fn server(&self) -> Result<ServerCall<'_>, ModelError> {
        let model = self.aggregator.ok_or_else(|| {
            ModelError::InvalidRequest(format!(
                "a server model is needed for {} guidance",
                self.config.guidance_mode.name()
            ))
        })?;
        Ok(ServerCall {
            model,
            params: &self.config.server_params,
            embedder: self.embedder,
        })
    }

    /// A failed guidance step of `round` saying why none could be made.
    fn failed(&self, round: u32, error: ModelError, observer: Option<StepObserver<'_>>) -> Step {
        no_call_step(
            StepKind::Guidance,
            round,
            self.server_model(),
            Err(error),
            observer,
        )
    }

    /// The references: written now (round 1 with the drafts aggregated: no synthesis yet), or
    /// with their synthesis through the store.
    async fn write(
        &self,
        query: &Query,
        with_synthesis: bool,
        observer: Option<StepObserver<'_>>,
    ) -> Result<Shared, ModelError> {
        let server = self.server()?;
        let config = &self.config.references;
        if with_synthesis {
            let shared = references::shared_guidance(
                query,
                self.writers,
                config,
                server,
                self.store,
                observer,
            )
            .await;
            Ok(Shared {
                references: Some(shared.references),
                guidance: Some(shared.guidance),
                tally: None,
                wire: WireStats::default(),
            })
        } else {
            let refs =
                references::write_references(query, self.writers, config, server, observer).await;
            Ok(Shared {
                references: Some(refs),
                guidance: None,
                tally: None,
                wire: WireStats::default(),
            })
        }
    }

    /// The answers of `ask` an aggregation reads: the first [`ColmConfig::max_drafts`].
    fn read<'b>(&self, ask: &Ask<'b>) -> &'b [Contribution] {
        let n = self.config.max_drafts.unwrap_or(usize::MAX);
        &ask.answers[..ask.answers.len().min(n)]
    }

    /// The guidance of the modes that read the answers only (synthesis, critique, vote, auto).
    async fn aggregate_answers(&self, ask: &Ask<'_>, observer: Option<StepObserver<'_>>) -> Guided {
        let asked = ask.query.server_text();
        let answers = self.read(ask);
        let texts: Vec<&str> = answers.iter().map(|c| c.text.as_str()).collect();
        let mode = self.config.guidance_mode;
        match GuidancePlan::new(&asked, &texts, mode, self.config.screen) {
            Ok(GuidancePlan::Call {
                messages,
                shown,
                mode,
                tally,
            }) => {
                let step = match self.server() {
                    Ok(server) => {
                        call(
                            StepKind::Guidance,
                            ask.round,
                            None,
                            server.model,
                            messages,
                            server.params,
                            observer,
                        )
                        .await
                    }
                    Err(e) => self.failed(ask.round, e, observer),
                };
                Guided {
                    aggregated: pick(answers, &shown),
                    tally,
                    ..Guided::only(step, mode, false)
                }
            }
            // A vote counts every answer.
            Ok(GuidancePlan::Vote { tally, drafts }) => {
                let text = GuidancePlan::vote_guidance(tally.clone(), drafts).text;
                let step = no_call_step(
                    StepKind::Guidance,
                    ask.round,
                    GuidanceMode::Vote.name(),
                    Ok(text),
                    observer,
                );
                Guided {
                    aggregated: answers.to_vec(),
                    tally,
                    ..Guided::only(step, GuidanceMode::Vote, false)
                }
            }
            Err(error) => Guided {
                aggregated: answers.to_vec(),
                ..Guided::only(
                    no_call_step(
                        StepKind::Guidance,
                        ask.round,
                        GuidanceMode::Vote.name(),
                        Err(error),
                        observer,
                    ),
                    mode,
                    false,
                )
            },
        }
    }
}

#[async_trait]
impl Guide for InProcess<'_> {
    fn server_model(&self) -> &str {
        self.aggregator.map_or("", ChatModel::name)
    }

    async fn shared(&self, query: &Query, observer: Option<StepObserver<'_>>) -> Option<Shared> {
        if !self.config.guidance_mode.uses_references() {
            return None;
        }
        // With the drafts aggregated, round 1's synthesis reads them: only the references
        // are written while the clients draft.
        let with_synthesis = !self.config.aggregate_drafts;
        Some(
            self.write(query, with_synthesis, observer)
                .await
                .unwrap_or_else(|e| Shared {
                    guidance: Some(self.failed(1, e, observer)),
                    ..Shared::default()
                }),
        )
    }

    async fn guidance(&self, mut ask: Ask<'_>, observer: Option<StepObserver<'_>>) -> Guided {
        let mode = self.config.guidance_mode;
        if !mode.uses_references() {
            return self.aggregate_answers(&ask, observer).await;
        }
        let round = ask.round;
        let shared = ask.shared.take();
        // A later round asked of a guide that keeps nothing: round 1's references again
        // (from the store when sharing is on).
        let mut written = None;
        if shared.is_none() && ask.references.is_none() {
            match self.write(ask.query, true, observer).await {
                Ok(s) => written = s.references,
                Err(e) => return Guided::only(self.failed(round, e, observer), mode, false),
            }
        }
        let (shared_refs, shared_guidance) = match shared {
            Some(s) => (s.references, s.guidance),
            None => (None, None),
        };
        let refs = shared_refs.as_ref().or(ask.references).or(written.as_ref());
        let (step, aggregated, is_shared) = match shared_guidance {
            // Round 1 read the references only: its synthesis is already written (shared).
            Some(step) => (step, Vec::new(), true),
            // Later rounds (and round 1 with the drafts aggregated) read the clients' answers.
            None => {
                let answers = self.read(&ask);
                let texts: Vec<&str> = answers.iter().map(|c| c.text.as_str()).collect();
                let shown = self.config.screen.shown(&texts);
                let shown_texts: Vec<&str> = shown.iter().map(|&i| texts[i]).collect();
                let step = match (self.server(), refs) {
                    (Ok(server), Some(refs)) => {
                        references::synthesise(
                            ask.query,
                            refs,
                            &shown_texts,
                            self.config.references.aggregate,
                            server,
                            round,
                            observer,
                        )
                        .await
                    }
                    (Err(e), _) => self.failed(round, e, observer),
                    (Ok(_), None) => self.failed(
                        round,
                        ModelError::Inference("no references to aggregate".into()),
                        observer,
                    ),
                };
                (step, pick(answers, &shown), false)
            }
        };
        // A vote of the references: its tally, counted again from the references it read.
        let tally = (self.config.references.aggregate == references::Aggregate::Vote
            && step.model == references::VOTE)
            .then(|| {
                refs.and_then(|r| crate::answer::tally_for(&ask.query.server_text(), &r.texts()))
            })
            .flatten();
        let mut guided = Guided {
            aggregated,
            references: written,
            tally,
            ..Guided::only(step, mode, is_shared)
        };
        // reference-critique: each answer reviewed against the synthesis; a failed review is
        // recorded and that client refines with the synthesis itself.
        if mode == GuidanceMode::ReferenceCritique {
            if let (Some(synthesis), Ok(server)) = (guided.guidance.text(), self.server()) {
                guided.critiques = futures::future::join_all(ask.answers.iter().map(|a| {
                    references::critique(
                        ask.query,
                        synthesis,
                        &a.text,
                        &a.collaborator,
                        server,
                        round,
                        observer,
                    )
                }))
                .await;
            }
        }
        guided
    }

    async fn select(
        &self,
        query: &str,
        profiles: &[CandidateProfile<'_>],
        k: usize,
        observer: Option<StepObserver<'_>>,
    ) -> Option<Selection> {
        let server = self.server().ok()?;
        Some(select(query, profiles, k, server.model, server.params, observer).await)
    }
}

/// The answers at `shown` (indexes into `answers`), in order: what a screened aggregation read.
pub(crate) fn pick(answers: &[Contribution], shown: &[usize]) -> Vec<Contribution> {
    shown
        .iter()
        .filter_map(|&i| answers.get(i).cloned())
        .collect()
}

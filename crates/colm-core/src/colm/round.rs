//! The CoLM round (Huang et al., AAAI 2026, §3), written once: a client **drafts** its own
//! answer to the query, asks a [`Guide`] for **guidance**, and **refines its own answer** with
//! it, over rounds ([`run`]). What the guide is differs by where the client runs: in process
//! ([`crate::colm::guide::InProcess`]: `colm ask`, the virtual `colm` model, `colm eval`, the
//! router's `colm` route, the server's guidance handlers), or a colm server over HTTP
//! (`colm-client`). [`draft`] and [`refine`] are the client's two steps.

use std::time::Instant;

use futures::future::join_all;

use super::config::{Collaborator, ColmConfig};
use super::guide::{Ask, Guide};
use super::record::{ColmError, ColmRecord, Contribution, DraftOutcome, FinalAnswer, RoundRecord};
use super::start;
use crate::answer::{extract_for, VoteTally};
use crate::guidance::GuidanceMode;
use crate::model::{SamplingParams, WireStats};
use crate::options::{Aggregate, RefineWhen};
use crate::prompts::{self, CandidateProfile, GuidanceSource, RefineContext};
use crate::query::Query;
use crate::step::{call_watched, Step, StepKind, StepOutcome, Watch};

pub use super::start::{draft, Client};

/// What a refinement reads: the query, the client's own latest answer, the guidance, what the
/// guidance was made from, and what the prompt shows besides it.
#[derive(Clone, Copy)]
pub struct Refine<'a> {
    /// The query.
    pub query: &'a Query,
    /// The client's own latest answer (its draft, or its previous refinement).
    pub own: &'a str,
    /// The guidance for this client.
    pub guidance: &'a str,
    /// Whether the guidance read the client's answer or only the server's references.
    pub source: GuidanceSource,
    /// Whether the prompt shows the client's answer or only the guidance.
    pub form: RefineContext,
}

/// Round `round`'s refinement: `client` revises its own answer with the guidance
/// ([`prompts::refinement`]); its text is streamed to `watch.answer` when set (the caller
/// knows this refinement is the answer). A failure is recorded in the step, not raised.
pub async fn refine(
    input: Refine<'_>,
    client: Client<'_>,
    round: u32,
    params: &SamplingParams,
    watch: Watch<'_>,
) -> Step {
    call_watched(
        StepKind::Refinement,
        round,
        client.id,
        client.model,
        prompts::refinement(
            input.query,
            input.own,
            input.guidance,
            input.source,
            input.form,
        ),
        params,
        watch,
    )
    .await
}

/// A collaborator still taking part, with its latest good answer (`None` before its first
/// refinement when it wrote no draft: `draft=auto`).
struct Active<'c> {
    who: &'c Collaborator,
    text: Option<String>,
    from: StepKind,
    round: u32,
}

/// One CoLM collaboration on `query`: the one round loop of colm (draft → guidance →
/// refinement, over `config.rounds` rounds), over client `collaborators` and a [`Guide`].
///
/// Round 1: the collaborators draft (unless `drafts` holds their drafts already, one per
/// collaborator, as the router's) while the guide writes its shared part
/// ([`Guide::shared`]); with `config.top_k`, the guide first selects the collaborators. Each
/// round the guide makes guidance from the collaborators' latest answers ([`Guide::guidance`])
/// and each collaborator refines **its own** answer with it (its critique, in
/// `reference-critique`), in the form of [`ColmConfig::refine_context`]. A collaborator whose
/// call fails is recorded and the round goes on with the others (its last good answer kept).
/// `watch.steps` sees each step as it completes; `watch.answer` receives the answer's text as
/// it is generated (the last round's refinement of the first active collaborator).
///
/// # Errors
/// [`ColmError::InvalidConfig`] for zero rounds, `top_k == Some(0)`, zero references, no
/// collaborators, duplicate ids or drafts that are not one per collaborator;
/// [`ColmError::AllCollaboratorsFailed`] when every collaborator fails at a stage;
/// [`ColmError::GuidanceFailed`] when the guide makes no guidance. Both carry the partial
/// record, so nothing computed is lost.
pub async fn run(
    query: &Query,
    collaborators: &[Collaborator],
    guide: &dyn Guide,
    config: &ColmConfig,
    drafts: Option<Vec<Step>>,
    watch: Watch<'_>,
) -> Result<ColmRecord, ColmError> {
    validate(collaborators, config)?;
    if drafts
        .as_ref()
        .is_some_and(|d| d.len() != collaborators.len())
    {
        return Err(ColmError::InvalidConfig(
            "the drafts given are not one per collaborator".into(),
        ));
    }
    // The query as the server's prompts quote it (computed once: it hashes any images).
    let asked = query.server_text();
    let observer = watch.steps;
    let refine = config.refine_context();
    let start = Instant::now();
    let mut record = ColmRecord {
        strategy: "colm".into(),
        query: asked.to_string(),
        config: ColmConfig {
            refine: Some(refine),
            ..config.clone()
        },
        server_model: guide.server_model().to_owned(),
        selection: None,
        references: None,
        rounds: Vec::new(),
        final_answers: Vec::new(),
        wire: None,
        wall_ms: 0.0,
    };
    let mut wire = WireStats::default();
    let finish = |mut record: ColmRecord, wire: WireStats| {
        record.wall_ms = start.elapsed().as_secs_f64() * 1000.0;
        record.wire = (wire != WireStats::default()).then_some(wire);
        record
    };
    let mode = config.guidance_mode;

    // 1. Selection of the client collaborators (legacy top_k).
    let mut selected: Vec<&Collaborator> = collaborators.iter().collect();
    if let Some(k) = config.top_k.filter(|&k| k < collaborators.len()) {
        let profiles: Vec<CandidateProfile<'_>> = collaborators
            .iter()
            .map(|c| CandidateProfile {
                id: &c.id,
                description: &c.description,
            })
            .collect();
        if let Some(s) = guide.select(&asked, &profiles, k, observer).await {
            selected = collaborators
                .iter()
                .filter(|c| s.chosen.contains(&c.id))
                .collect();
            record.selection = Some(s);
        }
    }

    // 2. Drafts on the clients and the shared part on the server: at the same time, or the
    // drafts only when needed (`draft=auto`: super::start).
    let given = drafts.map(|d| {
        collaborators
            .iter()
            .zip(d)
            .filter(|(c, _)| selected.iter().any(|s| s.id == c.id))
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
    });
    let begun = start::start(query, &selected, guide, config, given, observer).await;
    let (draft_steps, draft_outcome, mut shared) = (begun.drafts, begun.outcome, begun.shared);
    if let Some(s) = &mut shared {
        record.references = s.references.take();
        wire.add(s.wire);
    }
    let mut active: Vec<Active<'_>> = Vec::new();
    let mut errors = Vec::new();
    if draft_outcome == DraftOutcome::Written {
        for (c, step) in selected.iter().zip(&draft_steps) {
            match &step.outcome {
                StepOutcome::Ok { completion } => active.push(Active {
                    who: c,
                    text: Some(completion.text.clone()),
                    from: StepKind::Draft,
                    round: 1,
                }),
                _ => errors.extend(step.failure().map(|e| (c.id.clone(), e))),
            }
        }
    } else {
        // No draft to fall back on: each client's first answer is its refinement.
        active = selected
            .iter()
            .map(|c| Active {
                who: c,
                text: None,
                from: StepKind::Draft,
                round: 1,
            })
            .collect();
    }
    let mut drafts = Some(draft_steps);
    let mut draft_outcome = Some(draft_outcome);
    if active.is_empty() {
        let guidance = shared.and_then(|s| s.guidance);
        record.rounds.push(RoundRecord {
            round: 1,
            drafts: drafts.take().unwrap_or_default(),
            draft: draft_outcome,
            aggregated: Vec::new(),
            guidance_shared: guidance.is_some(),
            tally: None,
            kept: Vec::new(),
            guidance,
            critiques: Vec::new(),
            refinements: Vec::new(),
        });
        return Err(ColmError::AllCollaboratorsFailed {
            round: 1,
            stage: StepKind::Draft,
            errors,
            partial: Box::new(finish(record, wire)),
        });
    }

    for round in 1..=config.rounds {
        // 3. Guidance.
        let answers: Vec<Contribution> = active
            .iter()
            .filter_map(|a| {
                Some(Contribution {
                    collaborator: a.who.id.clone(),
                    text: a.text.clone()?,
                })
            })
            .collect();
        let ask = Ask {
            query,
            round,
            answers: &answers,
            shared: if round == 1 { shared.take() } else { None },
            references: record.references.as_ref(),
        };
        let mut guided = guide.guidance(ask, observer).await;
        wire.add(guided.wire);
        if record.references.is_none() {
            record.references = guided.references.take();
        }
        let per_collaborator: Vec<String> = (0..active.len())
            .map(|i| guided.for_answer(i).unwrap_or_default().to_owned())
            .collect();
        let source = match (
            mode == GuidanceMode::Reference && guided.shared,
            &guided.tally,
        ) {
            (true, Some(t)) => GuidanceSource::VotedReferences {
                votes: t.votes,
                references: t.drafts,
            },
            (true, None)
                if config.references.aggregate == Aggregate::Select && config.references.k > 1 =>
            {
                GuidanceSource::SelectedReference
            }
            (true, None) => GuidanceSource::References,
            (false, _) => GuidanceSource::ReadYourAnswer,
        };
        let mut round_record = RoundRecord {
            round,
            drafts: drafts.take().unwrap_or_default(),
            draft: draft_outcome.take(),
            aggregated: guided.aggregated,
            guidance_shared: guided.shared,
            tally: guided.tally,
            kept: Vec::new(),
            guidance: Some(guided.guidance),
            critiques: guided.critiques,
            refinements: Vec::new(),
        };
        if let Some(StepOutcome::Failed { error }) =
            round_record.guidance.as_ref().map(|g| &g.outcome)
        {
            let error = error.clone();
            record.rounds.push(round_record);
            record.final_answers = final_answers(&active);
            return Err(ColmError::GuidanceFailed {
                round,
                error,
                partial: Box::new(finish(record, wire)),
            });
        }

        // 4. Refinement, each collaborator with its own previous answer — unless the guidance
        // is a weak vote that counted the collaborator's own answer (`keep_draft`), or agrees
        // with it (`refine_when=disagreement`).
        let last = round == config.rounds;
        let keeps: Vec<bool> = active
            .iter()
            .zip(&per_collaborator)
            .map(|(a, g)| {
                a.text.as_deref().is_some_and(|own| {
                    keeps_own(config.keep_draft, round_record.tally.as_ref(), &asked, own)
                        || (config.refine_when == RefineWhen::Disagreement
                            && agrees(&asked, own, g))
                })
            })
            .collect();
        let refinements = join_all(
            active
                .iter()
                .zip(&per_collaborator)
                .zip(&keeps)
                .enumerate()
                .filter(|(_, (_, keep))| !**keep)
                .map(|(i, ((a, g), _))| {
                    // The first active collaborator's last refinement is the answer: stream it.
                    let answer = watch.answer.filter(|_| last && i == 0);
                    let input = Refine {
                        query,
                        own: a.text.as_deref().unwrap_or_default(),
                        guidance: g,
                        source,
                        form: refine,
                    };
                    self::refine(
                        input,
                        a.who.as_client(),
                        round,
                        &config.client_params,
                        Watch {
                            steps: observer,
                            answer,
                        },
                    )
                }),
        )
        .await;
        if let (true, Some(true), Some(tx), Some(Some(own))) = (
            last,
            keeps.first(),
            watch.answer,
            active.first().map(|a| &a.text),
        ) {
            let _ = tx.unbounded_send(crate::model::StreamEvent::Delta(own.clone()));
        }
        let mut errors = Vec::new();
        let refined = active.iter_mut().zip(&keeps).filter(|(_, keep)| !**keep);
        for ((a, _), step) in refined.zip(&refinements) {
            match &step.outcome {
                StepOutcome::Ok { completion } => {
                    a.text = Some(completion.text.clone());
                    a.from = StepKind::Refinement;
                    a.round = round;
                }
                _ => errors.extend(step.failure().map(|e| (a.who.id.clone(), e))),
            }
        }
        round_record.kept = active
            .iter()
            .zip(&keeps)
            .filter(|(_, keep)| **keep)
            .map(|(a, _)| a.who.id.clone())
            .collect();
        // A client that wrote no draft and whose refinement failed has no answer: it leaves.
        let all_failed = errors.len() == active.len();
        active.retain(|a| a.text.is_some());
        round_record.refinements = refinements;
        record.rounds.push(round_record);
        if all_failed {
            record.final_answers = final_answers(&active);
            return Err(ColmError::AllCollaboratorsFailed {
                round,
                stage: StepKind::Refinement,
                errors,
                partial: Box::new(finish(record, wire)),
            });
        }
    }
    record.final_answers = final_answers(&active);
    Ok(finish(record, wire))
}

/// Whether a client keeps `own` answer instead of refining (`keep_draft`): the guidance is a
/// vote (`tally`) whose share is below `threshold` and `own`'s final answer is among the
/// answers it counted (`own` answers `query`: [`extract_for`]).
fn keeps_own(threshold: Option<f64>, tally: Option<&VoteTally>, query: &str, own: &str) -> bool {
    match (threshold, tally) {
        (Some(t), Some(tally)) if tally.agreement() < t => {
            extract_for(query, own).is_some_and(|a| tally.counts.contains_key(&a))
        }
        _ => false,
    }
}

/// Whether `own` answer and `guidance` give the same final answer to `query`
/// (`refine_when=disagreement`); `false` when either has none.
fn agrees(query: &str, own: &str, guidance: &str) -> bool {
    match (extract_for(query, own), extract_for(query, guidance)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The final answers of the collaborators that have one.
fn final_answers(active: &[Active<'_>]) -> Vec<FinalAnswer> {
    active
        .iter()
        .filter_map(|a| {
            Some(FinalAnswer {
                collaborator: a.who.id.clone(),
                model: a.who.model.name().to_owned(),
                text: a.text.clone()?,
                from: a.from,
                round: a.round,
            })
        })
        .collect()
}

/// Checks `collaborators` and `config` before a round.
///
/// # Errors
/// [`ColmError::InvalidConfig`] naming the first problem.
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
        .map_err(|e| ColmError::InvalidConfig(e.0))?;
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

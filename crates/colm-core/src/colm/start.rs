//! Round 1's start: the client's draft step ([`draft`]) and the start of a round — the clients'
//! drafts and the guide's shared part ([`start`]), with the draft written only when something
//! needs it ([`crate::options::DraftPolicy`]).
//!
//! In the paper's round the clients draft while the server writes its references (Huang et
//! al., AAAI 2026, §3). In the default mode (`reference`, refined in the reference code's
//! form) nothing reads that draft: the refinement prompt holds the guidance and the question,
//! and the draft is only the answer a client falls back on when no guidance comes. So under
//! `draft=auto` a client asks for the guidance first: when it arrives within
//! [`ColmConfig::draft_wait_ms`] (a store hit arrives at once) the client refines without
//! drafting; when it is late the client drafts, as its fallback, and cancels that draft when
//! the guidance lands (the cancelled call is recorded with what it had used); when no guidance
//! can be made the draft is written to the end and is the answer.

use std::time::Duration;

use futures::future::{join_all, select, Either};

use super::config::{Collaborator, ColmConfig};
use super::guide::{Guide, Shared};
use super::record::DraftOutcome;
use crate::model::{ChatModel, Meter, SamplingParams};
use crate::prompts;
use crate::query::Query;
use crate::step::{call, Step, StepKind, StepObserver, StepOutcome};

/// The client who makes a step: its id in the record (`None` for an unnamed client) and its
/// model.
#[derive(Clone, Copy)]
pub struct Client<'a> {
    /// Collaborator id in the record (`client-1`, `local`, …).
    pub id: Option<&'a str>,
    /// The client's model.
    pub model: &'a dyn ChatModel,
}

impl Collaborator {
    /// The collaborator as the maker of a round's client steps.
    pub fn as_client(&self) -> Client<'_> {
        Client {
            id: Some(&self.id),
            model: self.model.as_ref(),
        }
    }
}

/// Round 1's draft: `client` answers `query` alone ([`prompts::draft`]).
pub async fn draft(
    query: &Query,
    client: Client<'_>,
    params: &SamplingParams,
    observer: Option<StepObserver<'_>>,
) -> Step {
    call(
        StepKind::Draft,
        1,
        client.id,
        client.model,
        prompts::draft(query),
        params,
        observer,
    )
    .await
}

/// Round 1's start: the drafts (written, cancelled, or none) and the shared part.
pub(super) struct Start {
    /// One step per selected client, or none when no draft was started.
    pub drafts: Vec<Step>,
    /// What became of them.
    pub outcome: DraftOutcome,
    /// The guide's shared part ([`Guide::shared`]).
    pub shared: Option<Shared>,
}

/// Why a fallback draft is stopped.
const NOT_NEEDED: &str = "the guidance arrived and nothing reads the draft";

/// Starts round 1 for the `selected` clients: their drafts (`given`: written already, as a
/// router's) and the guide's shared part, as `config` says ([`ColmConfig::drafts_at_once`],
/// module docs).
pub(super) async fn start(
    query: &Query,
    selected: &[&Collaborator],
    guide: &dyn Guide,
    config: &ColmConfig,
    given: Option<Vec<Step>>,
    observer: Option<StepObserver<'_>>,
) -> Start {
    let params = &config.client_params;
    let write_all = || {
        join_all(
            selected
                .iter()
                .map(|c| draft(query, c.as_client(), params, observer)),
        )
    };
    if let Some(drafts) = given {
        let shared = guide.shared(query, observer).await;
        return Start {
            drafts,
            outcome: DraftOutcome::Written,
            shared,
        };
    }
    if config.drafts_at_once() {
        let (drafts, shared) = futures::join!(write_all(), guide.shared(query, observer));
        return Start {
            drafts,
            outcome: DraftOutcome::Written,
            shared,
        };
    }
    let shared = Box::pin(guide.shared(query, observer));
    let wait = Box::pin(tokio::time::sleep(Duration::from_millis(
        config.draft_wait_ms,
    )));
    let shared = match select(shared, wait).await {
        Either::Left((shared, _)) if usable(shared.as_ref()) => {
            return Start {
                drafts: Vec::new(),
                outcome: DraftOutcome::Skipped,
                shared,
            }
        }
        // No guidance can be made: the drafts are the answers.
        Either::Left((shared, _)) => {
            return Start {
                drafts: write_all().await,
                outcome: DraftOutcome::Written,
                shared,
            }
        }
        Either::Right(((), shared)) => shared,
    };
    // The guidance is late: draft the fallback, each call on a meter of its own so that a
    // cancelled one knows what it used (the request's meter counts it too).
    let meters: Vec<_> = selected.iter().map(|_| Meter::for_call()).collect();
    let fallback = Box::pin(join_all(selected.iter().zip(&meters).map(|(c, m)| {
        Meter::scope(m.clone(), draft(query, c.as_client(), params, observer))
    })));
    let started = std::time::Instant::now();
    match select(shared, fallback).await {
        Either::Left((shared, _)) if usable(shared.as_ref()) => {
            // Dropping the drafts' futures stops their calls (the engine frees the sequence).
            let drafts = selected
                .iter()
                .zip(&meters)
                .map(|(c, m)| {
                    let step = cancelled(query, c, config, m.usage(), started);
                    if let Some(o) = observer {
                        o.finished(&step);
                    }
                    step
                })
                .collect();
            Start {
                drafts,
                outcome: DraftOutcome::Cancelled,
                shared,
            }
        }
        Either::Left((shared, fallback)) => Start {
            drafts: fallback.await,
            outcome: DraftOutcome::Written,
            shared,
        },
        Either::Right((drafts, shared)) => Start {
            drafts,
            outcome: DraftOutcome::Written,
            shared: shared.await,
        },
    }
}

/// Whether a shared part holds guidance a client can refine with.
fn usable(shared: Option<&Shared>) -> bool {
    shared
        .and_then(|s| s.guidance.as_ref())
        .is_some_and(|g| g.text().is_some())
}

/// The record of client `c`'s fallback draft, stopped after `used` tokens.
fn cancelled(
    query: &Query,
    c: &Collaborator,
    config: &ColmConfig,
    used: crate::model::Usage,
    started: std::time::Instant,
) -> Step {
    Step {
        kind: StepKind::Draft,
        round: 1,
        collaborator: Some(c.id.clone()),
        model: c.model.name().to_owned(),
        messages: prompts::draft(query),
        sampling: Some(config.client_params.clone()),
        wall_ms: started.elapsed().as_secs_f64() * 1000.0,
        outcome: StepOutcome::Cancelled {
            reason: NOT_NEEDED.into(),
            usage: used,
        },
        shared: false,
    }
}

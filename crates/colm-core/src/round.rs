//! The two client steps of a CoLM round (Huang et al., AAAI 2026, §3): a client **drafts** its
//! own answer to the query, and **refines its own draft** with the guidance it received. What
//! happens between them — how the guidance is made — differs by where the client runs: in
//! process ([`crate::colm::run_with`], several collaborators, references, critiques), on a
//! device asking a colm server (`colm-client`'s `CollabClient`), or through the device–cloud
//! router's `colm` route ([`crate::vertical::Router`]). These two functions are the one
//! definition of the client steps all of them use.

use crate::model::{ChatModel, SamplingParams};
use crate::prompts::{self, GuidanceSource, RefineContext};
use crate::query::Query;
use crate::step::{call, call_watched, Step, StepKind, StepObserver, Watch};

/// The client who makes a step: its id in the record (`None` for an unnamed client) and its
/// model.
#[derive(Clone, Copy)]
pub struct Client<'a> {
    /// Collaborator id in the record (`client-1`, `local`, …).
    pub id: Option<&'a str>,
    /// The client's model.
    pub model: &'a dyn ChatModel,
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

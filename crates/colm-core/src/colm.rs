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

use crate::model::{ChatModel, EmbeddingModel};
use crate::query::Query;

mod choose;
pub mod config;
pub mod guide;
pub mod paraphrase;
pub mod record;
pub mod references;
pub mod round;
pub mod selection;
mod start;
mod virtual_model;

pub use crate::step::{ModelTotals, Step, StepKind, StepObserver, StepOutcome, Watch};
pub use config::{Collaborator, ColmConfig};
pub use record::{ColmError, ColmRecord, Contribution, DraftOutcome, FinalAnswer, RoundRecord};
use references::{ReferenceStore, ReferenceWriter};
pub use selection::{parse_selection, Selection};
pub use virtual_model::ColmModel;

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
    /// The embedding model of the `embedding` selector of writers (`None`: not loaded).
    pub embedder: Option<&'a dyn EmbeddingModel>,
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
        embedder: None,
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
        embedder: server.embedder,
    };
    round::run(query, collaborators, &guide, config, None, watch).await
}

#[cfg(test)]
mod tests;

//! The whole CoLM strategy over its models, as a [`crate::run::Strategy`] (served as a chat
//! model by [`crate::run::StrategyModel`]).

use std::sync::Arc;

use super::config::{Collaborator, ColmConfig};
use super::record::{ColmError, ColmRecord};
use super::references::{ReferenceStore, ReferenceWriter};
use super::{run_with, ServerSide};
use crate::model::{ChatMessage, ChatModel, EmbeddingModel, SamplingParams};
use crate::query::Query;
use crate::step::Watch;

/// A CoLM collaboration over its models: the configured collaborators draft and refine,
/// `server` selects and aggregates, and the reference writers (by default `server` alone,
/// [`ColmModel::with_writers`] to set a pool) write references.
///
/// Per request, the caller's sampling parameters replace the configured ones for every step
/// (drafts, guidance, refinements). As a chat model ([`crate::run::StrategyModel`]) its answer
/// is the first collaborator's final answer ([`crate::run::Run::completion`]).
pub struct ColmModel {
    name: String,
    collaborators: Vec<Collaborator>,
    server: Arc<dyn ChatModel>,
    writers: Vec<ReferenceWriter>,
    store: Option<Arc<dyn ReferenceStore>>,
    embedder: Option<Arc<dyn EmbeddingModel>>,
    config: ColmConfig,
}

impl ColmModel {
    /// A virtual model named `name`.
    pub fn new(
        name: impl Into<String>,
        collaborators: Vec<Collaborator>,
        server: Arc<dyn ChatModel>,
        config: ColmConfig,
    ) -> Self {
        Self {
            name: name.into(),
            collaborators,
            server,
            writers: Vec::new(),
            store: None,
            embedder: None,
            config,
        }
    }

    /// The same model with `writers` as its server-side reference writers (empty: the server
    /// model alone).
    pub fn with_writers(mut self, writers: Vec<ReferenceWriter>) -> Self {
        self.writers = writers;
        self
    }

    /// The same model sharing round 1's references and their synthesis through `store` with
    /// every other request (and every other user of the store, such as the server's guidance
    /// API) asking the same question in the same scope.
    pub fn with_store(mut self, store: Arc<dyn ReferenceStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The same model with `embedder` for the `embedding` selector of reference writers.
    pub fn with_embedder(mut self, embedder: Arc<dyn EmbeddingModel>) -> Self {
        self.embedder = Some(embedder);
        self
    }

    /// The collaboration's settings.
    pub fn config(&self) -> &ColmConfig {
        &self.config
    }

    /// Whether it can answer conversations with images (CoLM over vision-language clients, as
    /// the paper extends it): every collaborator drafts and refines with the images, and — in
    /// the modes that write references — every reference writer (by default the server model)
    /// reads them too. Selection, aggregation and critiques read text only (the drafts, and
    /// the conversation with each image named by its digest).
    pub fn accepts_images(&self) -> bool {
        let clients = self.collaborators.iter().all(|c| c.model.accepts_images());
        let references = !self.config.guidance_mode.uses_references()
            || if self.writers.is_empty() {
                self.server.accepts_images()
            } else {
                self.writers.iter().all(|w| w.model.accepts_images())
            };
        clients && references
    }

    /// The name it is served under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the collaboration and returns the full record; `watch` sees each step as it
    /// finishes and receives the answer's text as it is generated.
    ///
    /// # Errors
    /// As [`run_with`].
    pub async fn collaborate(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        watch: Watch<'_>,
    ) -> Result<ColmRecord, ColmError> {
        let config = ColmConfig {
            client_params: params.clone(),
            server_params: params.clone(),
            ..self.config.clone()
        };
        let side = ServerSide {
            aggregator: self.server.as_ref(),
            writers: &self.writers,
            store: self.store.as_deref(),
            embedder: self.embedder.as_deref(),
        };
        run_with(
            &Query::from_messages(messages),
            &self.collaborators,
            side,
            &config,
            watch,
        )
        .await
    }
}

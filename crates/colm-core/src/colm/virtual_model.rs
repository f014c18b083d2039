//! The whole CoLM strategy behind the [`ChatModel`] trait, so that anything that serves chat
//! models (the OpenAI-compatible API) serves collaboration unchanged.

use std::sync::Arc;

use async_trait::async_trait;

use super::references::{ReferenceStore, ReferenceWriter};
use super::{run_with, Collaborator, ColmConfig, ColmError, ColmRecord, ServerSide};
use crate::model::{
    ChatMessage, ChatModel, Completion, FinishReason, ModelError, Role, SamplingParams,
};
use crate::step::summed;

/// A [`ChatModel`] that answers by running a CoLM collaboration: the configured collaborators
/// draft and refine, `server` selects and aggregates, and the reference writers (by default
/// `server` alone, [`ColmModel::with_writers`] to set a pool) write references.
///
/// Per request, the caller's sampling parameters replace the configured ones for every step
/// (drafts, guidance, refinements). The returned [`Completion`] is the first collaborator's
/// final answer; its `usage` and `timings` are summed over **every** step of the collaboration
/// (what the deployment spent), its `mean_logprob` and `finish_reason` are those of the step
/// that produced the answer.
pub struct ColmModel {
    name: String,
    collaborators: Vec<Collaborator>,
    server: Arc<dyn ChatModel>,
    writers: Vec<ReferenceWriter>,
    store: Option<Arc<dyn ReferenceStore>>,
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

    /// The collaboration's settings.
    pub fn config(&self) -> &ColmConfig {
        &self.config
    }

    /// Runs the collaboration and returns the full record.
    ///
    /// # Errors
    /// As [`run`].
    pub async fn collaborate(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
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
        };
        run_with(
            &query_of(messages),
            &self.collaborators,
            side,
            &config,
            None,
        )
        .await
    }
}

/// The query a chat becomes: the last user message, preceded by the earlier turns (if any)
/// as a transcript.
pub fn query_of(messages: &[ChatMessage]) -> String {
    let last_user = messages.iter().rposition(|m| m.role == Role::User);
    let Some(i) = last_user else {
        return messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n\n");
    };
    if i == 0 {
        return messages[0].content.clone();
    }
    let mut q = String::from("Earlier conversation:\n");
    for m in &messages[..i] {
        q.push_str(&format!("{}: {}\n", m.role.as_str(), m.content));
    }
    q.push_str(&format!("\nQuestion:\n{}", messages[i].content));
    q
}

/// The collaboration's failure as the caller's error: when every collaborator failed the same
/// way (all overloaded, all prompts too long, …) or the server model failed with a meaning
/// (overloaded, rate limited), that error and its status; else an inference failure naming all.
fn to_model_error(e: ColmError) -> ModelError {
    let kept = match &e {
        ColmError::AllCollaboratorsFailed { errors, .. } => {
            ModelError::common(errors.iter().map(|(_, err)| err))
        }
        ColmError::GuidanceFailed { error, .. } => ModelError::common([error]),
        ColmError::InvalidConfig(_) => None,
    };
    kept.unwrap_or_else(|| ModelError::Inference(e.to_string()))
}

#[async_trait]
impl ChatModel for ColmModel {
    fn name(&self) -> &str {
        &self.name
    }

    async fn chat(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Completion, ModelError> {
        let record = self
            .collaborate(messages, params)
            .await
            .map_err(to_model_error)?;
        let (usage, timings) = summed(&record.usage_by_model);
        let answer = record
            .final_answers
            .first()
            .ok_or_else(|| ModelError::Inference("the collaboration produced no answer".into()))?;
        let source = record
            .steps()
            .filter(|s| {
                s.kind == answer.from
                    && s.round == answer.round
                    && s.collaborator.as_deref() == Some(answer.collaborator.as_str())
            })
            .find_map(|s| s.completion());
        Ok(Completion {
            text: answer.text.clone(),
            usage,
            mean_logprob: source.and_then(|c| c.mean_logprob),
            finish_reason: source.map_or(FinishReason::Stop, |c| c.finish_reason),
            timings,
            fallback: None,
            wire: None,
        })
    }
}

//! The router behind the [`ChatModel`] trait: a routed query is a chat model's answer, so
//! `colm client --router` serves it on the device's endpoint and `colm serve` hosts a
//! `cascade:…` strategy as a virtual model.

use async_trait::async_trait;

use super::Router;
use crate::colm::query_of;
use crate::model::{ChatMessage, ChatModel, Completion, ModelError, SamplingParams};

/// The device–cloud router ([`Router`]) behind the [`ChatModel`] trait, as `colm client
/// --router` serves it on the device's endpoint and `colm serve` a `cascade:…` virtual model: each chat's query ([`query_of`]) is routed,
/// flagged sensitive when the request says so ([`SamplingParams::sensitive`], the chat
/// request's `metadata.sensitive`; the detector applies either way). The completion is the answer,
/// with the tokens and times of every step (local and server together), the draft's
/// confidence, the bytes on the wire, and `fallback` when an escalation failed and the draft
/// answered. The route and its reasons are logged at `info`.
pub struct RoutedChat {
    name: String,
    router: Router,
}

impl RoutedChat {
    /// `router`, served under `name`.
    pub fn new(name: impl Into<String>, router: Router) -> Self {
        Self {
            name: name.into(),
            router,
        }
    }
}

#[async_trait]
impl ChatModel for RoutedChat {
    fn name(&self) -> &str {
        &self.name
    }

    /// # Errors
    /// The local model's error when the draft fails (nothing to answer with).
    async fn chat(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Completion, ModelError> {
        let record = self
            .router
            .answer(&query_of(messages), params.sensitive, params, None)
            .await?;
        tracing::info!(
            route = record.route.name(),
            reasons = %record.reasons.join("; "),
            redacted = record.redacted,
            "routed"
        );
        Ok(record.completion())
    }
}

//! Test helpers shared by the strategies' unit tests: a scripted [`ChatModel`] (no inference).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::model::{
    ChatMessage, ChatModel, Completion, ModelError, Role, SamplingParams, Timings, Usage,
};

type Script = dyn Fn(&[ChatMessage], &SamplingParams) -> Result<String, ModelError> + Send + Sync;

/// A model whose answers are computed by a closure over the prompt; records every prompt.
pub(crate) struct Scripted {
    name: String,
    script: Box<Script>,
    calls: Mutex<Vec<Vec<ChatMessage>>>,
}

impl Scripted {
    pub(crate) fn new(
        name: &str,
        script: impl Fn(&[ChatMessage]) -> Result<String, ModelError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Self::sampled(name, move |m, _| script(m))
    }

    /// A model whose answers also depend on the sampling parameters (seed, temperature).
    pub(crate) fn sampled(
        name: &str,
        script: impl Fn(&[ChatMessage], &SamplingParams) -> Result<String, ModelError>
            + Send
            + Sync
            + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            script: Box::new(script),
            calls: Mutex::new(Vec::new()),
        })
    }
    pub(crate) fn calls(&self) -> Vec<Vec<ChatMessage>> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl ChatModel for Scripted {
    fn name(&self) -> &str {
        &self.name
    }
    async fn chat(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Completion, ModelError> {
        self.calls.lock().unwrap().push(messages.to_vec());
        let text = (self.script)(messages, params)?;
        Ok(Completion {
            usage: Usage {
                prompt_tokens: messages.iter().map(|m| m.content.len() as u64).sum(),
                completion_tokens: text.len() as u64,
            },
            mean_logprob: Some(-0.5),
            timings: Timings {
                prompt_ms: 1.0,
                generation_ms: 2.0,
            },
            ..Completion::text_only(text)
        })
    }
}

pub(crate) fn last_user(messages: &[ChatMessage]) -> &str {
    messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.as_str())
        .unwrap_or("")
}

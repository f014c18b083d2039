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

    /// This model answering `delay_ms` after each call is made (the call is recorded at once);
    /// a call whose future is dropped first never answers.
    pub(crate) fn slow(self: Arc<Self>, delay_ms: u64) -> Arc<Slow> {
        Arc::new(Slow {
            inner: self,
            delay_ms,
        })
    }
}

/// A [`Scripted`] model that takes its time ([`Scripted::slow`]).
pub(crate) struct Slow {
    pub inner: Arc<Scripted>,
    delay_ms: u64,
}

#[async_trait]
impl ChatModel for Slow {
    fn name(&self) -> &str {
        &self.inner.name
    }
    async fn chat(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Completion, ModelError> {
        self.inner.calls.lock().unwrap().push(messages.to_vec());
        tokio::time::sleep(std::time::Duration::from_millis(self.delay_ms)).await;
        self.inner.calls.lock().unwrap().pop();
        self.inner.chat(messages, params).await
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
                cached_tokens: 0,
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

/// An embedding model over topics: one dimension per topic, counting the topic's words that a
/// text contains (lowercased substrings), then normalised; a text with none gets a vector of
/// zeros. `None` topics: every call fails.
pub(crate) struct Topics(pub(crate) Option<Vec<Vec<&'static str>>>);

#[async_trait]
impl crate::model::EmbeddingModel for Topics {
    fn name(&self) -> &str {
        "topics"
    }

    fn dimensions(&self) -> usize {
        self.0.as_ref().map_or(0, Vec::len)
    }

    fn max_tokens(&self) -> usize {
        usize::MAX
    }

    fn count_tokens(&self, text: &str) -> Result<usize, ModelError> {
        Ok(text.split_whitespace().count())
    }

    async fn embed(&self, inputs: &[String]) -> Result<crate::model::Embeddings, ModelError> {
        let topics = self
            .0
            .as_ref()
            .ok_or_else(|| ModelError::Inference("the encoder failed".into()))?;
        let vectors = inputs
            .iter()
            .map(|t| {
                let t = t.to_lowercase();
                let v: Vec<f32> = topics
                    .iter()
                    .map(|words| words.iter().filter(|w| t.contains(*w)).count() as f32)
                    .collect();
                let norm = v
                    .iter()
                    .map(|x| x * x)
                    .sum::<f32>()
                    .sqrt()
                    .max(f32::MIN_POSITIVE);
                v.iter().map(|x| x / norm).collect()
            })
            .collect();
        Ok(crate::model::Embeddings {
            vectors,
            prompt_tokens: 0,
        })
    }
}

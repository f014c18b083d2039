//! The chat-model trait every strategy is written against, and its request/response types.
//!
//! A [`ChatModel`] takes a list of [`ChatMessage`]s and [`SamplingParams`] and returns a
//! [`Completion`]: the text, token counts, the mean log-probability of the generated tokens
//! and timings. The embedded llama.cpp engine (`colm-engine`) and, later, remote
//! OpenAI-compatible endpoints implement it; strategies in this crate never know which.

use async_trait::async_trait;
use futures::channel::mpsc::UnboundedSender;

mod completion;
mod embed;
mod error;
mod message;
mod meter;
mod params;
pub mod progress;
mod transcript;

pub use completion::{
    Completion, FinishReason, ResidencyOutcome, Route, Timings, TokenLogprob, TopLogprob, Usage,
    WireStats,
};
pub use embed::{cosine, EmbeddingModel, Embeddings};
pub use error::ModelError;
pub use message::{ChatMessage, Role, Tool, ToolCall, ToolChoice};
pub use meter::Meter;
pub use params::{
    PromptReuse, ResponseFormat, SamplingParams, DEFAULT_MAX_TOKENS, MAX_TOP_LOGPROBS,
    PENALTY_LAST_N,
};
pub use transcript::{Transcript, TranscriptStep};

/// A chat model: messages and sampling parameters in; text, token counts, mean
/// log-probability and timings out.
///
/// Implementations must be cheap to share (`Arc<dyn ChatModel>`) and safe to call
/// concurrently; an implementation may serialise calls internally.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// The model's display name (catalog name, or file stem for a path).
    fn name(&self) -> &str;

    /// Runs one chat completion.
    ///
    /// # Errors
    /// [`ModelError::ContextOverflow`] when the prompt does not fit, [`ModelError::InvalidRequest`]
    /// for unusable parameters, [`ModelError::Inference`] when the model fails.
    async fn chat(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Completion, ModelError>;

    /// Requests waiting for this model, when it keeps a queue (for metrics).
    fn queue_depth(&self) -> Option<usize> {
        None
    }

    /// Requests this model is serving now (prefilling or decoding), when it knows (for
    /// metrics: with [`ChatModel::queue_depth`] at 0, the model is idle).
    fn active_requests(&self) -> Option<usize> {
        None
    }

    /// Tokens of `text` under this model's tokenizer (no special tokens), when the model
    /// can count them locally; `None` otherwise (remote or scripted models).
    fn count_tokens(&self, _text: &str) -> Option<usize> {
        None
    }

    /// Context window of one request (prompt and completion), tokens, when the model knows
    /// it locally; `None` otherwise (remote or scripted models). A server checks what a
    /// session will have to read against it when the session is created.
    fn context_window(&self) -> Option<usize> {
        None
    }

    /// Runs one chat completion, sending what it produces to `events` as it goes: the
    /// generated text as [`StreamEvent::Delta`]s (their concatenation equals the returned
    /// [`Completion::text`]) and, for a strategy, a [`StreamEvent::Progress`] for each step
    /// finished before the answer. A closed receiver does not stop generation; dropping the
    /// returned future does (the engine frees the request's sequence between decode steps).
    /// The default sends the whole text once, at the end.
    ///
    /// # Errors
    /// As [`ChatModel::chat`].
    async fn chat_streaming(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        events: UnboundedSender<StreamEvent>,
    ) -> Result<Completion, ModelError> {
        let completion = self.chat(messages, params).await?;
        StreamEvent::send_whole(&events, &completion);
        Ok(completion)
    }

    /// Continues `prompt` as it is, with no chat template (OpenAI's legacy
    /// `/v1/completions`), sending its deltas to `events` when given (as
    /// [`ChatModel::chat_streaming`]). The default refuses: only a model that reads raw text
    /// (the embedded engine) takes a prompt; a strategy or a chat endpoint does not.
    ///
    /// # Errors
    /// [`ModelError::InvalidRequest`] for a model that takes chat messages only; else as
    /// [`ChatModel::chat`].
    async fn complete(
        &self,
        prompt: &str,
        params: &SamplingParams,
        events: Option<UnboundedSender<StreamEvent>>,
    ) -> Result<Completion, ModelError> {
        let _ = (prompt, params, events);
        Err(ModelError::InvalidRequest(format!(
            "`{}` takes chat messages only (POST /v1/chat/completions)",
            self.name()
        )))
    }

    /// Whether [`ChatModel::complete`] continues raw prompts.
    fn accepts_prompts(&self) -> bool {
        false
    }

    /// Whether [`ChatModel::chat_streaming`] reports progress before its answer (a strategy
    /// whose first answer token comes after several model calls). A server answers streamed
    /// requests to such a model at once, with progress events, instead of waiting for the
    /// first token.
    fn reports_progress(&self) -> bool {
        false
    }

    /// Whether an answer is a collaboration of several model calls (a strategy, a device
    /// asking a server for guidance) rather than one model's decoding: request fields of one
    /// decoding (`n` > 1, `logprobs`, `logit_bias`, `response_format`, `tools`) do not apply
    /// to it, and a server refuses them by name.
    fn is_collaboration(&self) -> bool {
        false
    }

    /// The canonical text of the strategy a collaboration runs (`colm:k=2`,
    /// `cascade:tau=-0.3`), when it was built from one; `None` for one model.
    fn strategy(&self) -> Option<String> {
        None
    }

    /// Whether messages may carry images ([`ChatMessage::images`]): a vision-language model,
    /// or a collaboration whose every image-reading call goes to one.
    fn accepts_images(&self) -> bool {
        false
    }

    /// Whether requests may offer tools or hold tool calls and tool results (the model's
    /// chat template renders them); a model that does not answers such a request with
    /// [`ModelError::InvalidRequest`]. A remote model says yes and leaves it to its server.
    fn accepts_tools(&self) -> bool {
        false
    }

    /// The size of the model's vocabulary (token ids are below it), where known: the bound
    /// of `logit_bias` keys. `None`: not known here.
    fn vocab_size(&self) -> Option<u32> {
        None
    }
}

/// What a streamed chat sends while it runs ([`ChatModel::chat_streaming`]).
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The next piece of the answer's text (never splits a UTF-8 character).
    Delta(String),
    /// A step of a strategy finished (a draft, a reference, the guidance, …).
    Progress(progress::Progress),
}

impl StreamEvent {
    /// Sends `completion`'s whole text to `events` as one delta (none for an empty text): the
    /// stream of a model that cannot stream. A closed receiver is ignored.
    pub fn send_whole(events: &UnboundedSender<StreamEvent>, completion: &Completion) {
        if !completion.text.is_empty() {
            let _ = events.unbounded_send(StreamEvent::Delta(completion.text.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error survives a JSON record (a failed step is kept, never dropped).
    #[test]
    fn every_model_error_round_trips_through_json() {
        for e in [
            ModelError::ContextOverflow {
                prompt_tokens: 900,
                max_tokens: 512,
                n_ctx: 1024,
            },
            ModelError::InvalidRequest("empty messages".into()),
            ModelError::Overloaded { queued: 64 },
            ModelError::Inference("decode failed".into()),
        ] {
            let json = serde_json::to_value(&e).unwrap();
            assert!(json["kind"].is_string(), "{json}");
            assert_eq!(serde_json::from_value::<ModelError>(json).unwrap(), e);
        }
        assert_eq!(
            serde_json::to_value(ModelError::Inference("x".into())).unwrap(),
            serde_json::json!({"kind": "inference", "detail": "x"})
        );
    }
}

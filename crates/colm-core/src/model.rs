//! The chat-model trait every strategy is written against, and its request/response types.
//!
//! A [`ChatModel`] takes a list of [`ChatMessage`]s and [`SamplingParams`] and returns a
//! [`Completion`]: the text, token counts, the mean log-probability of the generated tokens
//! and timings. The embedded llama.cpp engine (`colm-engine`) and, later, remote
//! OpenAI-compatible endpoints implement it; strategies in this crate never know which.

use async_trait::async_trait;
use futures::channel::mpsc::UnboundedSender;
use serde::{Deserialize, Serialize};

/// Who wrote a message, with the names used by the OpenAI chat API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The user (or, in a collaboration, the party asking for an answer).
    User,
    /// The model's own earlier turns.
    Assistant,
    /// The result of a tool call the model asked for ([`ChatMessage::tool_call_id`] says
    /// which).
    Tool,
}

impl Role {
    /// The role's name as chat templates expect it: `system`, `user`, `assistant` or `tool`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Author of the message.
    pub role: Role,
    /// Plain-text content (empty for an assistant turn that only calls tools).
    pub content: String,
    /// The tools an assistant turn called (OpenAI's `tool_calls`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a [`Role::Tool`] message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Images of a user turn, shown before its text: each a URL as OpenAI's `image_url`
    /// content parts take it (`data:image/png;base64,…`, or `https://…` where the server
    /// allows it), validated by the server. Only models that accept images
    /// ([`ChatModel::accepts_images`]) get messages with images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

impl ChatMessage {
    /// A message of `role` with `content`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            images: Vec::new(),
        }
    }
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// A call of a tool by the model (OpenAI's `tool_calls[]` entry, type `function`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id (`call_…`), quoted back by the tool's answer.
    pub id: String,
    /// The function called.
    pub name: String,
    /// Its arguments: a JSON object, as text.
    pub arguments: String,
}

/// A tool the model may call (OpenAI's `tools[]` entry, type `function`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// The function's name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its arguments (an object schema).
    pub parameters: serde_json::Value,
}

/// Whether and which tool the model must call (OpenAI's `tool_choice`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides (the default when tools are given).
    #[default]
    Auto,
    /// No tool call: the tools are not shown to the model.
    None,
    /// At least one tool call (decoded under a grammar of the tools' schemas).
    Required,
    /// A call of this function (decoded under its schema).
    Function(String),
}

impl ToolChoice {
    fn is_auto(&self) -> bool {
        *self == ToolChoice::Auto
    }
}

/// How to sample a completion.
///
/// Greedy decoding (`temperature == 0.0`) is the default, so runs are deterministic on one
/// build of llama.cpp (greedy output can still differ between CPU builds, e.g. AVX2 vs AVX-512).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// Upper bound on generated tokens.
    pub max_tokens: u32,
    /// Softmax temperature; `0.0` means greedy (argmax).
    pub temperature: f32,
    /// Nucleus sampling mass in `(0, 1]`; `1.0` disables it. Ignored when greedy.
    pub top_p: f32,
    /// Seed of the random sampler. Ignored when greedy.
    pub seed: u32,
    /// Generation stops before the first occurrence of any of these strings; the stop string
    /// itself is not part of the returned text.
    pub stop: Vec<String>,
    /// Keep generating past end-of-generation tokens until `max_tokens` (for benchmarks, as
    /// llama-server's `ignore_eos`).
    #[serde(default)]
    pub ignore_eos: bool,
    /// A request flag, not a sampling setting: the query holds data that must not leave the
    /// device in clear (data residency: Yuan et al., "LLMs over networks", arXiv 2605.08626,
    /// vertical collaboration). Only a device–cloud router reads it (the query then stays local or
    /// leaves redacted, as its policy says); models ignore it. Left out of the serialized form
    /// when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
    /// Penalty in [-2, 2] subtracted from a token's logit once per earlier occurrence in the
    /// completion (OpenAI's `frequency_penalty`; llama.cpp's penalties sampler over the last
    /// [`PENALTY_LAST_N`] generated tokens). 0 disables it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frequency_penalty: f32,
    /// Penalty in [-2, 2] subtracted from a token's logit when it occurred at all in the
    /// completion (OpenAI's `presence_penalty`). 0 disables it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub presence_penalty: f32,
    /// Biases in [-100, 100] added to the logits of token ids of the model's vocabulary
    /// (OpenAI's `logit_bias`; -100 bans a token, 100 forces it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logit_bias: Vec<(u32, f32)>,
    /// Constrains the completion to JSON (OpenAI's `response_format`); `None`: free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Return each generated token's log-probability with this many most likely alternatives
    /// (0–20; OpenAI's `logprobs: true` with `top_logprobs`); `None`: no per-token data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    /// Tools the model may call (OpenAI's `tools`), rendered by the model's chat template;
    /// calls in the answer come back in [`Completion::tool_calls`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Whether and which tool must be called (OpenAI's `tool_choice`).
    #[serde(default, skip_serializing_if = "ToolChoice::is_auto")]
    pub tool_choice: ToolChoice,
}

impl SamplingParams {
    /// Checks the ranges of OpenAI's decoding fields: penalties in [-2, 2], logit biases in
    /// [-100, 100], at most [`MAX_TOP_LOGPROBS`] alternatives per token. The one definition
    /// of these limits, used by the server (a 400 naming the field) and the engine.
    ///
    /// # Errors
    /// The request field at fault and a message naming the value.
    pub fn check_ranges(&self) -> Result<(), (&'static str, String)> {
        if self.max_tokens == 0 {
            return Err(("max_tokens", "max_tokens must be at least 1".into()));
        }
        let t = self.temperature;
        // Request floats are narrowed away from zero (`colm_api::float`), so a value beyond a
        // bound by less than an f32 step is still beyond it here.
        if !(0.0..=2.0).contains(&t) {
            return Err((
                "temperature",
                format!("temperature must be in [0, 2], got {t}"),
            ));
        }
        let p = self.top_p;
        if !(p > 0.0 && p <= 1.0) {
            return Err(("top_p", format!("top_p must be in (0, 1], got {p}")));
        }
        for (name, p) in [
            ("frequency_penalty", self.frequency_penalty),
            ("presence_penalty", self.presence_penalty),
        ] {
            if !(-2.0..=2.0).contains(&p) {
                return Err((name, format!("{name} must be in [-2, 2], got {p}")));
            }
        }
        if let Some((t, b)) = self
            .logit_bias
            .iter()
            .find(|(_, b)| !(-100.0..=100.0).contains(b))
        {
            return Err((
                "logit_bias",
                format!("logit_bias of token {t} must be in [-100, 100], got {b}"),
            ));
        }
        if self.logprobs.is_some_and(|k| k > MAX_TOP_LOGPROBS) {
            return Err((
                "top_logprobs",
                format!("top_logprobs must be in [0, {MAX_TOP_LOGPROBS}]"),
            ));
        }
        Ok(())
    }
}

/// Most alternatives per token a request may ask for ([`SamplingParams::logprobs`], OpenAI's
/// `top_logprobs` limit).
pub const MAX_TOP_LOGPROBS: u32 = 20;

/// Generated tokens the frequency and presence penalties look back over (llama-server's
/// default `repeat_last_n`).
pub const PENALTY_LAST_N: i32 = 64;

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

/// A constraint on the completion's form (OpenAI's `response_format`, other than `text`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Any JSON object.
    JsonObject,
    /// JSON valid under a JSON Schema (constrained decoding: llguidance in the embedded
    /// engine).
    JsonSchema {
        /// The schema.
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        schema: serde_json::Value,
    },
}

impl ResponseFormat {
    /// The JSON Schema the completion must satisfy (`{"type": "object"}` for a JSON object).
    pub fn schema(&self) -> serde_json::Value {
        match self {
            ResponseFormat::JsonObject => serde_json::json!({"type": "object"}),
            ResponseFormat::JsonSchema { schema } => schema.clone(),
        }
    }
}

/// One generated token with its log-probability and the most likely alternatives at its
/// position (OpenAI's `logprobs.content[]` entry), under the model's unscaled distribution.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token's text (lossy UTF-8 when the token is part of a character).
    pub token: String,
    /// Natural-log probability.
    pub logprob: f64,
    /// The token's bytes.
    pub bytes: Vec<u8>,
    /// The most likely tokens at this position, most likely first (as many as requested).
    pub top_logprobs: Vec<TopLogprob>,
}

/// An alternative token at a position ([`TokenLogprob::top_logprobs`]).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    /// The token's text.
    pub token: String,
    /// Natural-log probability.
    pub logprob: f64,
    /// The token's bytes.
    pub bytes: Vec<u8>,
}

/// Tokens generated per step when a request does not say: every CLI flag, the server's
/// default for requests without `max_tokens`, and [`SamplingParams::default`] read it.
pub const DEFAULT_MAX_TOKENS: u32 = 512;

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            max_tokens: DEFAULT_MAX_TOKENS,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop: Vec::new(),
            ignore_eos: false,
            sensitive: false,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            logit_bias: Vec::new(),
            response_format: None,
            logprobs: None,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
        }
    }
}

/// Why generation ended, with the OpenAI API's names.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// The answer calls tools ([`Completion::tool_calls`]).
    #[serde(rename = "tool_calls")]
    ToolCalls,
}

/// Token counts of one call (or a sum of calls), in tokens of the model's own vocabulary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the templated prompt fed to the model.
    pub prompt_tokens: u64,
    /// Tokens generated (end-of-generation tokens excluded).
    pub completion_tokens: u64,
}

impl Usage {
    /// Adds another call's counts to these.
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
    }
}

/// Time spent by the model on one call, in milliseconds.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Prompt processing (prefill), ms.
    pub prompt_ms: f64,
    /// Token generation (decode), ms.
    pub generation_ms: f64,
}

impl Timings {
    /// Adds `other`'s times (calls made one after the other, or a total over calls).
    pub fn add(&mut self, other: Timings) {
        self.prompt_ms += other.prompt_ms;
        self.generation_ms += other.generation_ms;
    }
    /// Prompt tokens per second given the prompt size, or 0 when nothing was timed.
    pub fn prompt_tokens_per_s(&self, usage: &Usage) -> f64 {
        per_second(usage.prompt_tokens, self.prompt_ms)
    }
    /// Generated tokens per second given the completion size, or 0 when nothing was timed.
    pub fn generation_tokens_per_s(&self, usage: &Usage) -> f64 {
        per_second(usage.completion_tokens, self.generation_ms)
    }
}

fn per_second(tokens: u64, ms: f64) -> f64 {
    if ms > 0.0 {
        tokens as f64 * 1000.0 / ms
    } else {
        0.0
    }
}

/// What a model returns for one chat request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// Generated text, stop string excluded.
    pub text: String,
    /// Prompt and completion token counts.
    pub usage: Usage,
    /// Mean natural-log probability of the generated tokens under the model's unscaled
    /// distribution (temperature 1); `None` when no token was generated. A confidence signal
    /// for routing: closer to 0 is more confident.
    pub mean_logprob: Option<f64>,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// Time spent in the model.
    pub timings: Timings,
    /// Set when this completion is a fallback (e.g. a client's local draft because the server
    /// was unreachable or late): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Set when the query was sensitive (flagged, or with detected sensitive spans): whether it
    /// stayed on the device or left it redacted ([`ResidencyOutcome`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<ResidencyOutcome>,
    /// The route a router took for this answer (`local`, `remote`, `colm`), when one decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<crate::vertical::Route>,
    /// Bytes this completion put on the network, when it crossed one (client ↔ server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire: Option<WireStats>,
    /// Per-token log-probabilities, when requested ([`SamplingParams::logprobs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
    /// The tools the answer calls (then `text` holds what the model wrote besides the calls,
    /// often nothing, and `finish_reason` is [`FinishReason::ToolCalls`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

impl Completion {
    /// A completion that no model generated (a vote, a reference passed on, a scripted model):
    /// `text` with no tokens, no log-probability and no time.
    pub fn text_only(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            usage: Usage::default(),
            mean_logprob: None,
            finish_reason: FinishReason::Stop,
            timings: Timings::default(),
            fallback: None,
            residency: None,
            route: None,
            wire: None,
            logprobs: None,
            tool_calls: Vec::new(),
        }
    }
}

/// What data residency did with a sensitive query (flagged by the request's
/// `metadata.sensitive`, or holding spans the device's detector finds: Yuan et al., "LLMs over
/// networks", arXiv 2605.08626, vertical collaboration).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResidencyOutcome {
    /// Nothing of it left the device: the answer is the device's own.
    Local,
    /// It left the device with typed placeholders in place of the sensitive spans (and so did
    /// any draft sent with it); the placeholders were restored on the device.
    Redacted,
}

/// Bytes on the wire for one exchange (or a sum of exchanges), as sent: after compression.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireStats {
    /// Request body bytes sent.
    pub bytes_sent: u64,
    /// Response body bytes received.
    pub bytes_received: u64,
    /// Request body bytes before compression.
    pub bytes_sent_uncompressed: u64,
    /// Response body bytes after decompression.
    pub bytes_received_uncompressed: u64,
}

impl WireStats {
    /// Adds the bytes of another exchange.
    pub fn add(&mut self, other: WireStats) {
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.bytes_sent_uncompressed += other.bytes_sent_uncompressed;
        self.bytes_received_uncompressed += other.bytes_received_uncompressed;
    }
}

/// Errors a [`ChatModel`] can return.
///
/// In JSON records: `{"kind": "inference", "detail": "…"}`, `{"kind": "overloaded", "detail":
/// {"queued": 64}}` (adjacently tagged: an internal tag cannot hold the string variants).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ModelError {
    /// The prompt plus the requested completion does not fit in the context window. Never
    /// truncated silently.
    #[error(
        "prompt does not fit the context: {prompt_tokens} prompt tokens + {max_tokens} max tokens \
         > {n_ctx} context tokens"
    )]
    ContextOverflow {
        /// Tokens of the templated prompt.
        prompt_tokens: u64,
        /// Completion tokens requested.
        max_tokens: u64,
        /// Context window of the loaded model, tokens.
        n_ctx: u64,
    },
    /// The request itself is unusable (e.g. empty message list, bad sampling values).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The model's request queue is full; try again later. Never an unbounded wait.
    #[error("the model is overloaded: {queued} requests already queued; retry later")]
    Overloaded {
        /// Requests waiting when this one was refused.
        queued: u64,
    },
    /// A rate limit refused the call (an upstream's 429); retry after `retry_after_s` seconds
    /// when given.
    #[error("rate limited: {detail}")]
    RateLimited {
        /// Who refused, and why.
        detail: String,
        /// Seconds to wait before retrying, when known (the upstream's `Retry-After`).
        retry_after_s: Option<u64>,
    },
    /// The model's endpoint is temporarily unavailable (an upstream's 502/503/504, or it did
    /// not answer); retry after `retry_after_s` seconds when given.
    #[error("unavailable: {detail}")]
    Unavailable {
        /// Who is unavailable, and why.
        detail: String,
        /// Seconds to wait before retrying, when known.
        retry_after_s: Option<u64>,
    },
    /// The model could not run (engine stopped, decode failed, …).
    #[error("inference failed: {0}")]
    Inference(String),
}

impl ModelError {
    /// The HTTP status this error means to a caller: 400 for a context overflow or an invalid
    /// request (the caller's to fix), 429 when rate limited, 503 when overloaded or
    /// unavailable, 500 when inference failed.
    pub fn status(&self) -> u16 {
        match self {
            ModelError::ContextOverflow { .. } | ModelError::InvalidRequest(_) => 400,
            ModelError::RateLimited { .. } => 429,
            ModelError::Overloaded { .. } | ModelError::Unavailable { .. } => 503,
            ModelError::Inference(_) => 500,
        }
    }

    /// Whether the same call may succeed later (429 and 503: rate limited, overloaded,
    /// unavailable).
    pub fn retryable(&self) -> bool {
        matches!(self.status(), 429 | 503)
    }

    /// Seconds a caller should wait before retrying (`Retry-After`): the upstream's when it
    /// gave one, else 1 for a retryable error; `None` for the others.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            ModelError::RateLimited { retry_after_s, .. }
            | ModelError::Unavailable { retry_after_s, .. } => Some(retry_after_s.unwrap_or(1)),
            ModelError::Overloaded { .. } => Some(1),
            _ => None,
        }
    }

    /// The error of a step that failed for every participant, kept with its meaning: when all
    /// of `errors` have the same [`status`](Self::status) other than 500 (every collaborator
    /// overloaded, every prompt too long, …), the first of them; else `None` (the caller
    /// reports an inference failure that names them all).
    pub fn common<'e>(errors: impl IntoIterator<Item = &'e ModelError>) -> Option<ModelError> {
        let mut errors = errors.into_iter();
        let first = errors.next()?;
        let status = first.status();
        (status != 500 && errors.all(|e| e.status() == status)).then(|| first.clone())
    }
}

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
    Progress(crate::step::Progress),
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

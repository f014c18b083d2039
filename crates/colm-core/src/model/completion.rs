//! What a chat returns: the [`Completion`] (text, why it ended, tokens, timings,
//! log-probabilities, bytes on the wire, where it was answered).

use serde::{Deserialize, Serialize};

use super::message::ToolCall;
use super::transcript::Transcript;

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
    /// Of `prompt_tokens`, those whose KV cache the model reused from an earlier request
    /// instead of reading them again (OpenAI's `prompt_tokens_details.cached_tokens`;
    /// llama-server's prompt cache). 0 when nothing was reused or the model does not say.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    /// Adds another call's counts to these.
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cached_tokens += other.cached_tokens;
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
    pub route: Option<Route>,
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
    /// A strategy's answer: every step it took ([`Transcript`]); `None` for one model's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<Box<Transcript>>,
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
            transcript: None,
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

impl crate::named::Named for ResidencyOutcome {}

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

/// Where a query is answered.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// The device's model alone.
    Local,
    /// The local draft; the server model's reference (its own answer to the query, written
    /// without the draft: CoLM's reference mode, K = 1); the local refinement of the draft with it.
    Colm,
    /// The server model answers the query (also read as `server`).
    #[serde(alias = "server")]
    Remote,
}

impl crate::named::Named for Route {}

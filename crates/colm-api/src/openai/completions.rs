//! `POST /v1/completions` (OpenAI's legacy Completions API): a raw prompt continued with no
//! chat template. [`CompletionRequest`] in; [`TextCompletion`] out, or a stream of them.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::message::Stop;
use super::request::StreamOptions;
use super::response::CompletionUsage;

/// Most alternatives per token the legacy `logprobs` takes (OpenAI's limit).
pub const MAX_LEGACY_LOGPROBS: u32 = 5;

/// `max_tokens` when a completion request gives none (OpenAI's default for this API).
pub const DEFAULT_COMPLETION_MAX_TOKENS: u32 = 16;

/// `prompt`: one text or a list of texts (each continued on its own). OpenAI also takes token
/// ids; they are read so that the server can refuse them by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PromptInput {
    /// One prompt.
    One(String),
    /// Several prompts.
    Many(Vec<String>),
    /// Token ids (refused).
    Tokens(Vec<serde_json::Value>),
}

/// The body of `POST /v1/completions`. A field not listed here (`suffix`, `best_of`, …) is a
/// 400 naming it. The sampling fields mean what they mean in a chat request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompletionRequest {
    /// A hosted model that reads raw prompts (an embedded GGUF model; see `GET /v1/models`).
    pub model: String,
    /// The text(s) to continue, non-empty.
    pub prompt: PromptInput,
    /// Completion token limit, tokens; default 16 (as OpenAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature in [0, 2]; default 0 (greedy).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option"
    )]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass in (0, 1].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option"
    )]
    #[schema(exclusive_minimum = 0, maximum = 1)]
    pub top_p: Option<f32>,
    /// llama-server's and vLLM's `top_k`; 0 or absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// llama-server's and vLLM's `min_p` in [0, 1]; 0 or absent: off.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option"
    )]
    #[schema(minimum = 0, maximum = 1)]
    pub min_p: Option<f32>,
    /// llama-server's repeat penalty in (0, 10]; 1 or absent: off.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option"
    )]
    #[schema(exclusive_minimum = 0, maximum = 10)]
    pub repeat_penalty: Option<f32>,
    /// The same penalty under vLLM's name.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option"
    )]
    #[schema(exclusive_minimum = 0, maximum = 10)]
    pub repetition_penalty: Option<f32>,
    /// Penalty in [-2, 2] per earlier occurrence of a token.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option"
    )]
    #[schema(minimum = -2, maximum = 2)]
    pub frequency_penalty: Option<f32>,
    /// Penalty in [-2, 2] for a token that occurred.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option"
    )]
    #[schema(minimum = -2, maximum = 2)]
    pub presence_penalty: Option<f32>,
    /// Token id → bias in [-100, 100].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option_map"
    )]
    pub logit_bias: Option<HashMap<String, f32>>,
    /// Sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Stop strings (at most 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Choices per prompt, 1–8; not with `stream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 8)]
    pub n: Option<u32>,
    /// The log-probability of each generated token with this many most likely alternatives
    /// (0–5); not with `stream`, and not with `echo` (the prompt's own are not computed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 5)]
    pub logprobs: Option<u32>,
    /// Put the prompt before the completion in `text`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub echo: bool,
    /// Stream `text_completion` objects as server-sent events ending with `data: [DONE]`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Streaming options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Keep generating past end-of-generation tokens (llama-server's extension).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_eos: bool,
    /// `false`: read the whole prompt again (llama-server's extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_prompt: Option<bool>,
    /// An identifier of the end user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Every other field: a 400 naming the first of them.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(ignore)]
    pub unsupported: BTreeMap<String, serde_json::Value>,
}

/// The legacy `logprobs` object of a choice: per generated token (and in order) its text, its
/// log-probability, its most likely alternatives (text → log-probability) and where it starts
/// in `text` (characters).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LegacyLogprobs {
    /// Token texts.
    pub tokens: Vec<String>,
    /// Natural-log probabilities.
    pub token_logprobs: Vec<f64>,
    /// Alternatives per token.
    pub top_logprobs: Vec<BTreeMap<String, f64>>,
    /// Offsets in `text`, characters.
    pub text_offset: Vec<usize>,
}

/// One choice of a [`TextCompletion`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TextChoice {
    /// The generated text (after the prompt with `echo`).
    pub text: String,
    /// `prompt index × n + choice`.
    pub index: u32,
    /// With `logprobs`, else `null`.
    pub logprobs: Option<LegacyLogprobs>,
    /// `stop` or `length`; `null` in a stream's chunks before the last.
    pub finish_reason: Option<colm_core::FinishReason>,
}

/// The answer of `POST /v1/completions`, and each chunk of its stream (`object:
/// "text_completion"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TextCompletion {
    /// `cmpl-…`, the same in every chunk of a stream.
    pub id: String,
    /// `text_completion`.
    pub object: String,
    /// Unix time, s.
    pub created: u64,
    /// The model id as requested.
    pub model: String,
    /// The choices (one per chunk of a stream; none in its usage chunk).
    pub choices: Vec<TextChoice>,
    /// Tokens spent (in a stream, in its last chunk with `stream_options.include_usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<CompletionUsage>,
}

//! The answer of a chat completion: whole ([`ChatCompletion`]) or streamed in chunks
//! ([`ChatCompletionChunk`]), with `usage` and colm's `colm` extension.

use super::message::{calls_only, ToolCallObject};
use colm_core::step::Progress;
use colm_core::{
    Completion, FinishReason, ResidencyOutcome, Timings, TokenLogprob, Usage, WireStats,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// OpenAI's `usage` object, tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CompletionUsage {
    /// Tokens of the templated prompt(s).
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
    /// Of the prompt tokens, those read from a cache (OpenAI's field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// OpenAI's `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PromptTokensDetails {
    /// Prompt tokens whose KV cache the model reused from an earlier request (its prefix
    /// matched) rather than reading them again; counted in `prompt_tokens` too.
    #[serde(default)]
    pub cached_tokens: u64,
}

impl From<Usage> for CompletionUsage {
    fn from(u: Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: u.cached_tokens,
            }),
        }
    }
}

impl From<CompletionUsage> for Usage {
    fn from(u: CompletionUsage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_tokens: u.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
        }
    }
}

impl CompletionUsage {
    /// The usage of `u`, or `None` when nothing was spent (shown as `null`).
    pub fn spent(u: Usage) -> Option<Self> {
        (u != Usage::default()).then(|| u.into())
    }
}

/// colm's extension of a completion (and of the last stream chunk); OpenAI clients ignore it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ColmExtension {
    /// Mean natural-log probability of the generated tokens; `null` when none was generated
    /// or the model does not report it.
    pub mean_logprob: Option<f64>,
    /// Time spent in the model(s), ms.
    pub timings: Timings,
    /// Set when the answer is a fallback (e.g. a device's local draft because the server was
    /// unreachable): why. The response then also has the header `x-colm-fallback: true`.
    pub fallback: Option<String>,
    /// Set when the query was sensitive (`metadata.sensitive`, or spans the device's detector
    /// found): `local` (nothing left the device) or `redacted` (it left with placeholders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<ResidencyOutcome>,
    /// Set when a router decided where the query was answered (a served cascade, a device's
    /// router): `local`, `remote` or `colm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<colm_core::vertical::Route>,
    /// Bytes the answer moved on a network between device and server, when it crossed one.
    pub wire: Option<WireStats>,
}

impl From<&Completion> for ColmExtension {
    fn from(c: &Completion) -> Self {
        Self {
            mean_logprob: c.mean_logprob,
            timings: c.timings,
            fallback: c.fallback.clone(),
            residency: c.residency,
            route: c.route,
            wire: c.wire,
        }
    }
}

/// The assistant message of a choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: String,
    /// The answer; `null` when the answer only calls tools.
    pub content: Option<String>,
    /// The tools the answer calls (`finish_reason` is then `tool_calls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallObject>>,
}

impl From<&Completion> for AssistantMessage {
    fn from(c: &Completion) -> Self {
        let calls = !c.tool_calls.is_empty();
        Self {
            role: "assistant".into(),
            content: (!calls_only(calls, &c.text)).then(|| c.text.clone()),
            tool_calls: calls.then(|| c.tool_calls.iter().map(ToolCallObject::from).collect()),
        }
    }
}

/// One choice of a [`ChatCompletion`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Choice {
    /// Always 0 (`n` is 1).
    pub index: u32,
    /// The answer.
    pub message: AssistantMessage,
    /// Why generation ended: `stop` or `length`.
    pub finish_reason: FinishReason,
    /// Per-token log-probabilities when the request asked for them (`logprobs: true`), else
    /// `null`.
    pub logprobs: Option<ChoiceLogprobs>,
}

/// A choice's log-probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChoiceLogprobs {
    /// One entry per generated token, in order.
    pub content: Vec<TokenLogprob>,
}

/// The answer of `POST /v1/chat/completions` (`object: "chat.completion"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-…`.
    pub id: String,
    /// `chat.completion`.
    pub object: String,
    /// Unix time, s.
    pub created: u64,
    /// The model id as requested.
    pub model: String,
    /// One choice per completion asked for (`n`).
    pub choices: Vec<Choice>,
    /// Tokens spent.
    pub usage: CompletionUsage,
    /// colm's extension (absent from other servers' answers: then empty).
    #[serde(default)]
    pub colm: ColmExtension,
}

impl ChatCompletion {
    /// The response for completion `c` of `model`.
    pub fn new(id: String, created: u64, model: String, c: &Completion) -> Self {
        Self::with_choices(id, created, model, std::slice::from_ref(c))
    }

    /// The response with one choice per completion of `cs` (`n` > 1; at least one): `usage`
    /// and the `colm` timings are summed over them (every choice was generated), the other
    /// `colm` fields are the first's.
    pub fn with_choices(id: String, created: u64, model: String, cs: &[Completion]) -> Self {
        let mut usage = Usage::default();
        let mut timings = Timings::default();
        for c in cs {
            usage.add(c.usage);
            timings.add(c.timings);
        }
        let mut colm = cs.first().map(ColmExtension::from).unwrap_or_default();
        colm.timings = timings;
        Self {
            id,
            object: "chat.completion".into(),
            created,
            model,
            choices: cs
                .iter()
                .zip(0..)
                .map(|(c, index)| Choice {
                    index,
                    message: AssistantMessage::from(c),
                    finish_reason: c.finish_reason,
                    logprobs: c.logprobs.clone().map(|content| ChoiceLogprobs { content }),
                })
                .collect(),
            usage: usage.into(),
            colm,
        }
    }

    /// The completion this response describes: text, usage, finish reason and the `colm`
    /// extension's fields; `None` without a choice.
    pub fn completion(&self) -> Option<Completion> {
        let choice = self.choices.first()?;
        Some(Completion {
            text: choice.message.content.clone().unwrap_or_default(),
            usage: self.usage.into(),
            mean_logprob: self.colm.mean_logprob,
            finish_reason: choice.finish_reason,
            timings: self.colm.timings,
            fallback: self.colm.fallback.clone(),
            residency: self.colm.residency,
            route: self.colm.route,
            wire: self.colm.wire,
            logprobs: choice.logprobs.as_ref().map(|l| l.content.clone()),
            tool_calls: choice
                .message
                .tool_calls
                .iter()
                .flatten()
                .map(colm_core::ToolCall::from)
                .collect(),
            transcript: None,
        })
    }
}

/// The change a stream chunk brings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delta {
    /// `assistant`, in the first chunk only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Text generated since the previous chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool calls, each whole in one chunk (with its `index`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<DeltaToolCall>>,
}

/// A tool call in a stream chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeltaToolCall {
    /// Position of the call in the answer's `tool_calls`.
    pub index: u32,
    /// The call.
    #[serde(flatten)]
    pub call: ToolCallObject,
}

/// One choice of a [`ChatCompletionChunk`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChunkChoice {
    /// Always 0.
    pub index: u32,
    /// The change.
    pub delta: Delta,
    /// Set in the last chunk of the answer.
    pub finish_reason: Option<FinishReason>,
    /// Always `null`.
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<serde_json::Value>,
}

/// colm's extension of a stream chunk: a progress report, or (in the chunk with the finish
/// reason) the completion's [`ColmExtension`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ChunkExtension {
    /// A step of a virtual model's strategy finished before the answer (a draft, a reference,
    /// the guidance, …). The chunk's delta is empty, so OpenAI clients see nothing.
    Progress {
        /// The step.
        progress: Progress,
    },
    /// The completion's extension, in the chunk with the finish reason.
    Final(ColmExtension),
}

/// One server-sent event of a streamed answer (`object: "chat.completion.chunk"`). The stream
/// starts with a chunk whose delta holds the role (for a virtual model: at once, before any
/// model has answered), then — for a virtual model — a chunk with an empty delta and a `colm`
/// progress report for each step finished before the answer, then text deltas (a virtual
/// model streams its answer step as it is generated when the strategy knows that step in
/// advance: CoLM's refinement, the mixture-of-agents aggregator; else the answer comes in one
/// delta at the end), then a chunk with the finish reason and the `colm` extension, then
/// (with `stream_options.include_usage`) a chunk with no choices and the `usage`, then
/// `data: [DONE]`. An error after the headers were sent arrives as an [`ErrorBody`] event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionChunk {
    /// The same id in every chunk of a stream.
    pub id: String,
    /// `chat.completion.chunk`.
    pub object: String,
    /// Unix time, s.
    pub created: u64,
    /// The model id as requested.
    pub model: String,
    /// One choice, or none in the usage chunk.
    pub choices: Vec<ChunkChoice>,
    /// Tokens spent, in the usage chunk only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<CompletionUsage>,
    /// colm's extension: a progress report, or the completion's extension in the chunk with
    /// the finish reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colm: Option<ChunkExtension>,
}

impl ChatCompletionChunk {
    /// A chunk with one choice holding `delta` and `finish_reason`.
    pub fn new(
        id: &str,
        created: u64,
        model: &str,
        delta: Delta,
        finish_reason: Option<FinishReason>,
    ) -> Self {
        Self {
            id: id.to_owned(),
            object: "chat.completion.chunk".into(),
            created,
            model: model.to_owned(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason,
                logprobs: None,
            }],
            usage: None,
            colm: None,
        }
    }
}

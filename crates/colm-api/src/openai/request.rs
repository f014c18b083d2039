//! `POST /v1/chat/completions`'s body ([`ChatCompletionRequest`]): its fields, their checks,
//! and the request of a call to another server ([`ChatCompletionRequest::for_params`]).

use std::collections::{BTreeMap, HashMap};

use super::message::{RequestMessage, Stop};
use super::tool::{FunctionDefinition, NamedFunction, ToolChoiceParam, ToolParam};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `stream_options`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    /// Send a final chunk with `usage` (and no choices).
    #[serde(default)]
    pub include_usage: bool,
}

/// `response_format` as OpenAI accepts it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResponseFormatParam {
    /// Free text (the default). (Empty struct variants, not unit ones: serde refuses unknown
    /// fields only in struct variants of an internally tagged enum.)
    Text {},
    /// Any JSON object.
    JsonObject {},
    /// JSON valid under the given schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchemaFormat,
    },
}

/// `response_format.json_schema`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonSchemaFormat {
    /// The schema's name (a-z, A-Z, 0-9, `_`, `-`; up to 64 characters).
    pub name: String,
    /// What the schema is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema; absent: any JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    /// Whether the output must follow the schema exactly. colm always decodes under the
    /// schema (constrained decoding), so `false` is treated as `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// The body of `POST /v1/chat/completions`. A field not listed here is a 400 naming it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionRequest {
    /// Hosted model id (see `GET /v1/models`).
    pub model: String,
    /// The conversation.
    #[schema(min_items = 1)]
    pub messages: Vec<RequestMessage>,
    /// Completion token limit, tokens (legacy name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    /// Completion token limit, tokens (current name; wins over `max_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_completion_tokens: Option<u32>,
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
    /// Keep only the `top_k` most likely tokens before drawing (llama-server's and vLLM's
    /// extension); 0 or absent: off. Ignored when greedy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Drop tokens less likely than `min_p` × the most likely one, in [0, 1] (llama-server's
    /// and vLLM's extension); 0 or absent: off. Ignored when greedy.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option"
    )]
    #[schema(minimum = 0, maximum = 1)]
    pub min_p: Option<f32>,
    /// Penalty in (0, 10] for tokens among the last 64 (llama-server's name; 1 or absent: off).
    /// Applies when greedy too.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option"
    )]
    #[schema(exclusive_minimum = 0, maximum = 10)]
    pub repeat_penalty: Option<f32>,
    /// The same penalty under vLLM's and Hugging Face's name; a request giving both with
    /// different values is a 400.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option"
    )]
    #[schema(exclusive_minimum = 0, maximum = 10)]
    pub repetition_penalty: Option<f32>,
    /// Sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Stop strings (at most 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Keep generating past end-of-generation tokens up to the token limit (llama-server's
    /// extension of the same name; for benchmarks). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_eos: bool,
    /// `false`: read the whole prompt again rather than reuse the KV cache an earlier request
    /// left for its longest common prefix (llama-server's extension of the same name). Default
    /// true; greedy answers are the same either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_prompt: Option<bool>,
    /// Stream the answer as server-sent events of [`ChatCompletionChunk`]s ending with
    /// `data: [DONE]`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Streaming options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Number of choices, 1–8; above 1 for single models only, and not with `stream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 8)]
    pub n: Option<u32>,
    /// OpenAI's key–value metadata (strings). colm reads one key: `"sensitive": "true"` (or
    /// `"false"`) flags the query as sensitive for a device–cloud router (`colm client
    /// --router`): it stays on the device or leaves redacted, as the router's policy says.
    /// Other keys are logged with the request, nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<HashMap<String, String>>,
    /// Penalty in [-2, 2] per earlier occurrence of a token in the completion.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option"
    )]
    #[schema(minimum = -2, maximum = 2)]
    pub frequency_penalty: Option<f32>,
    /// Penalty in [-2, 2] for a token that occurred in the completion.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option"
    )]
    #[schema(minimum = -2, maximum = 2)]
    pub presence_penalty: Option<f32>,
    /// Token id (of the model's vocabulary, as a string) → bias in [-100, 100] added to its
    /// logit. Single models only.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option_map"
    )]
    pub logit_bias: Option<HashMap<String, f32>>,
    /// Return the log-probability of each generated token. Single models only; not with
    /// `stream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// With `logprobs`: the most likely alternatives per token, 0–20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 20)]
    pub top_logprobs: Option<u32>,
    /// Constrain the answer to JSON: `json_object`, or `json_schema` (decoded under the
    /// schema). Single models only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormatParam>,
    /// OpenAI's `store`: `false` keeps the request's record in the interaction log without its
    /// texts (query, answer, transcript's texts); `true` or absent: as the server logs texts
    /// (`colm serve --no-log-texts` and sensitive requests keep none either way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// An identifier of the end user, logged with the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Functions the model may call (single models whose chat template supports tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolParam>>,
    /// `none`, `auto` (default with tools), `required` or a named function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoiceParam>,
    /// `false`: at most one tool call per answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Every other field the request carried: the server answers 400 naming the first of them
    /// (a field it does not honour is never silently ignored).
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(ignore)]
    pub unsupported: BTreeMap<String, serde_json::Value>,
}

impl ChatCompletionRequest {
    /// A plain request for `model` with `messages` and every optional field unset.
    pub fn new(model: impl Into<String>, messages: &[colm_core::ChatMessage]) -> Self {
        Self {
            model: model.into(),
            messages: messages.iter().map(RequestMessage::from).collect(),
            max_tokens: None,
            max_completion_tokens: None,
            temperature: None,
            top_p: None,
            top_k: None,
            min_p: None,
            repeat_penalty: None,
            repetition_penalty: None,
            seed: None,
            stop: None,
            ignore_eos: false,
            cache_prompt: None,
            stream: false,
            stream_options: None,
            n: None,
            metadata: None,
            frequency_penalty: None,
            presence_penalty: None,
            logit_bias: None,
            logprobs: None,
            top_logprobs: None,
            response_format: None,
            store: None,
            user: None,
            tools: None,
            tool_choice: None,
            parallel_tool_calls: None,
            unsupported: BTreeMap::new(),
        }
    }
}

impl ChatCompletionRequest {
    /// The request that asks a server for a completion of `messages` by `model` with every
    /// sampling parameter of `params` (the inverse of the server's reading of a request;
    /// `sensitive` becomes `metadata.sensitive`).
    pub fn for_params(
        model: impl Into<String>,
        messages: &[colm_core::ChatMessage],
        params: &colm_core::SamplingParams,
    ) -> Self {
        let stop = match params.stop.as_slice() {
            [] => None,
            [one] => Some(Stop::One(one.clone())),
            many => Some(Stop::Many(many.to_vec())),
        };
        let nonzero = |x: f32| (x != 0.0).then_some(x);
        Self {
            max_tokens: Some(params.max_tokens),
            temperature: Some(params.temperature),
            top_p: Some(params.top_p),
            top_k: (params.top_k > 0).then_some(params.top_k),
            min_p: nonzero(params.min_p),
            repeat_penalty: (params.repeat_penalty != 1.0).then_some(params.repeat_penalty),
            seed: Some(i64::from(params.seed)),
            stop,
            ignore_eos: params.ignore_eos,
            cache_prompt: (!params.cache_prompt).then_some(false),
            metadata: params
                .sensitive
                .then(|| HashMap::from([("sensitive".to_owned(), "true".to_owned())])),
            frequency_penalty: nonzero(params.frequency_penalty),
            presence_penalty: nonzero(params.presence_penalty),
            logit_bias: (!params.logit_bias.is_empty()).then(|| {
                params
                    .logit_bias
                    .iter()
                    .map(|(t, b)| (t.to_string(), *b))
                    .collect()
            }),
            logprobs: params.logprobs.map(|_| true),
            top_logprobs: params.logprobs.filter(|&k| k > 0),
            response_format: params.response_format.as_ref().map(|f| match f {
                colm_core::ResponseFormat::JsonObject => ResponseFormatParam::JsonObject {},
                colm_core::ResponseFormat::JsonSchema { schema } => {
                    ResponseFormatParam::JsonSchema {
                        json_schema: JsonSchemaFormat {
                            name: "response".into(),
                            description: None,
                            schema: Some(schema.clone()),
                            strict: Some(true),
                        },
                    }
                }
            }),
            tools: (!params.tools.is_empty()).then(|| {
                params
                    .tools
                    .iter()
                    .map(|t| ToolParam {
                        kind: "function".into(),
                        function: FunctionDefinition {
                            name: t.name.clone(),
                            description: t.description.clone(),
                            parameters: Some(t.parameters.clone()),
                            strict: None,
                        },
                    })
                    .collect()
            }),
            tool_choice: match &params.tool_choice {
                colm_core::ToolChoice::Auto => None,
                colm_core::ToolChoice::None => Some(ToolChoiceParam::Mode("none".into())),
                colm_core::ToolChoice::Required => Some(ToolChoiceParam::Mode("required".into())),
                colm_core::ToolChoice::Function(name) => Some(ToolChoiceParam::Named {
                    kind: "function".into(),
                    function: NamedFunction { name: name.clone() },
                }),
            },
            ..Self::new(model, messages)
        }
    }
}

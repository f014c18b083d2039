//! The OpenAI-compatible chat API: request, response, stream chunk, model list and error
//! object, with the shapes of OpenAI's API reference (Chat Completions).
//!
//! Differences from OpenAI, on purpose: `temperature` defaults to 0 (greedy, reproducible)
//! and `max_tokens` to the server's default; only text content is accepted. A request field
//! the server does not honour is a 400 naming it, never silently ignored
//! ([`ChatCompletionRequest::unsupported`]). Responses carry an extra `colm` object
//! ([`ColmExtension`]) that OpenAI clients ignore.

use std::collections::{BTreeMap, HashMap};

use colm_core::step::Progress;
use colm_core::{
    Completion, FinishReason, ResidencyOutcome, Timings, TokenLogprob, Usage, WireStats,
};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::ToSchema;

impl RequestMessage {
    /// The roles a request message may have (`developer` is read as `system`).
    pub const ROLES: [&'static str; 5] = ["system", "developer", "user", "assistant", "tool"];
}

/// The schema of a message's `role`: one of [`RequestMessage::ROLES`].
fn role_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(RequestMessage::ROLES))
        .description(Some(
            "`system`, `developer` (treated as system), `user`, `assistant` or `tool`.",
        ))
}

/// `stop` as OpenAI accepts it: one string or a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop string.
    One(String),
    /// Up to four stop strings.
    Many(Vec<String>),
}

/// Message content: a string, or a list of `text` and `image_url` parts. Read by hand (not
/// `untagged`) so that an error inside a part names the part's path.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts.
    Parts(Vec<ContentPart>),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Content;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Content, E> {
                Ok(Content::Text(s.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Content, E> {
                Ok(Content::Text(s))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Content, A::Error> {
                let mut parts = Vec::new();
                while let Some(part) = seq.next_element()? {
                    parts.push(part);
                }
                Ok(Content::Parts(parts))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// One content part. An unknown field is refused by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentPart {
    /// Part type: `text`, or `image_url` (models that accept images only).
    #[serde(rename = "type")]
    pub kind: String,
    /// Text of a `text` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Image of an `image_url` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl>,
}

impl ContentPart {
    /// A `text` part.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            kind: "text".into(),
            text: Some(text.into()),
            image_url: None,
        }
    }

    /// An `image_url` part.
    pub fn image(url: impl Into<String>) -> Self {
        Self {
            kind: "image_url".into(),
            text: None,
            image_url: Some(ImageUrl {
                url: url.into(),
                detail: None,
            }),
        }
    }
}

/// The image of an `image_url` content part. An unknown field is refused by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageUrl {
    /// `data:image/png;base64,…` (PNG, JPEG, GIF, WebP), or `https://…` where the server
    /// allows it.
    pub url: String,
    /// `auto` only: the vision model reads every image at the resolution its projector takes
    /// (OpenAI's `low` and `high` are a 400, not silently ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = detail_schema)]
    pub detail: Option<String>,
}

impl ImageUrl {
    /// The values of `detail` the server honours.
    pub const DETAILS: [&'static str; 1] = ["auto"];
}

/// The schema of `image_url.detail`: one of [`ImageUrl::DETAILS`], or null.
fn detail_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Null,
        ]))
        .enum_values(Some(
            ImageUrl::DETAILS.iter().map(|d| Some(*d)).chain([None]),
        ))
        .description(Some(
            "`auto` (or absent): the model reads the image at its own resolution.",
        ))
}

/// One request message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestMessage {
    /// `system`, `developer` (treated as system), `user`, `assistant` or `tool`.
    #[schema(schema_with = role_schema)]
    pub role: String,
    /// The content; `null` only for an assistant turn with `tool_calls`.
    pub content: Option<Content>,
    /// An assistant turn's tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallObject>>,
    /// A `tool` message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Every other field of the message: a 400 naming the first of them.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(ignore)]
    pub unsupported: BTreeMap<String, serde_json::Value>,
}

impl From<&colm_core::ChatMessage> for RequestMessage {
    fn from(m: &colm_core::ChatMessage) -> Self {
        let calls = !m.tool_calls.is_empty();
        // Images go first, then the text (the order colm keeps them in).
        let content = if m.images.is_empty() {
            Content::Text(m.content.clone())
        } else {
            let mut parts: Vec<ContentPart> = m.images.iter().map(ContentPart::image).collect();
            parts.push(ContentPart::text(m.content.clone()));
            Content::Parts(parts)
        };
        Self {
            role: m.role.as_str().to_owned(),
            content: (!calls_only(calls, &m.content)).then_some(content),
            tool_calls: calls.then(|| m.tool_calls.iter().map(ToolCallObject::from).collect()),
            tool_call_id: m.tool_call_id.clone(),
            unsupported: BTreeMap::new(),
        }
    }
}

/// Whether an assistant turn only calls tools (it has calls and no text): its `content` is
/// then `null`, as OpenAI writes it.
fn calls_only(has_calls: bool, text: &str) -> bool {
    has_calls && text.is_empty()
}

/// A tool call as OpenAI writes it (`tool_calls[]` of an assistant message). Answers of
/// other servers may carry more fields, so they are collected, not refused, when read; a
/// request carrying one is a 400 naming it ([`ToolCallObject::unsupported_field`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCallObject {
    /// The call's id.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function called and its arguments.
    pub function: FunctionCall,
    /// Every other field of the call.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(ignore)]
    pub unsupported: BTreeMap<String, serde_json::Value>,
}

impl ToolCallObject {
    /// The first field of the call (`foo`, or `function.foo`) that OpenAI's API does not
    /// define, if any.
    pub fn unsupported_field(&self) -> Option<String> {
        self.unsupported.keys().next().cloned().or_else(|| {
            self.function
                .unsupported
                .keys()
                .next()
                .map(|k| format!("function.{k}"))
        })
    }
}

/// The function of a [`ToolCallObject`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// Its arguments: a JSON object, as text.
    pub arguments: String,
    /// Every other field of the function.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(ignore)]
    pub unsupported: BTreeMap<String, serde_json::Value>,
}

impl From<&colm_core::ToolCall> for ToolCallObject {
    fn from(c: &colm_core::ToolCall) -> Self {
        Self {
            id: c.id.clone(),
            kind: "function".into(),
            function: FunctionCall {
                name: c.name.clone(),
                arguments: c.arguments.clone(),
                unsupported: BTreeMap::new(),
            },
            unsupported: BTreeMap::new(),
        }
    }
}

impl From<&ToolCallObject> for colm_core::ToolCall {
    fn from(c: &ToolCallObject) -> Self {
        Self {
            id: c.id.clone(),
            name: c.function.name.clone(),
            arguments: c.function.arguments.clone(),
        }
    }
}

/// A tool of the request (`tools[]`): a function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolParam {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDefinition,
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionDefinition {
    /// Its name (a-z, A-Z, 0-9, `_`, `-`; up to 64 characters).
    pub name: String,
    /// What it does (shown to the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its arguments (an object schema; absent: no arguments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
    /// Whether calls must follow the schema exactly. Calls under `tool_choice` `required` or
    /// a named function are always decoded under it; with `auto` they are parsed as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `tool_choice`: `none`, `auto`, `required`, or a named function. Read by hand (not
/// `untagged`) so that an unknown field of a named choice is refused by name.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ToolChoiceParam {
    /// `none`, `auto` or `required`.
    Mode(String),
    /// `{"type": "function", "function": {"name": …}}`.
    Named {
        /// Always `function`.
        #[serde(rename = "type")]
        kind: String,
        /// The function to call.
        function: NamedFunction,
    },
}

impl<'de> Deserialize<'de> for ToolChoiceParam {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// A named choice as sent.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Named {
            #[serde(rename = "type")]
            kind: String,
            function: NamedFunction,
        }
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = ToolChoiceParam;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`none`, `auto`, `required` or {\"type\": \"function\", \"function\": {\"name\": …}}")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ToolChoiceParam, E> {
                Ok(ToolChoiceParam::Mode(s.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ToolChoiceParam, A::Error> {
                let named = Named::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ToolChoiceParam::Named {
                    kind: named.kind,
                    function: named.function,
                })
            }
        }
        d.deserialize_any(Visit)
    }
}

/// The function of a named `tool_choice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedFunction {
    /// Its name.
    pub name: String,
}

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
            seed: None,
            stop: None,
            ignore_eos: false,
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
            seed: Some(i64::from(params.seed)),
            stop,
            ignore_eos: params.ignore_eos,
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

/// OpenAI's `usage` object, tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CompletionUsage {
    /// Tokens of the templated prompt(s).
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
}

impl From<Usage> for CompletionUsage {
    fn from(u: Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
        }
    }
}

impl From<CompletionUsage> for Usage {
    fn from(u: CompletionUsage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
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

/// One entry of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelObject {
    /// The id to put in a request's `model` (a name or an alias).
    pub id: String,
    /// `model`.
    pub object: String,
    /// Unix time the server started, s.
    pub created: u64,
    /// `colm`.
    pub owned_by: String,
}

/// The answer of `GET /v1/models` (`object: "list"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    /// `list`.
    pub object: String,
    /// The hosted models, sorted by id.
    pub data: Vec<ModelObject>,
}

impl ModelList {
    /// The list of `ids`, all created at `created` (Unix s).
    pub fn new(ids: impl IntoIterator<Item = String>, created: u64) -> Self {
        Self {
            object: "list".into(),
            data: ids
                .into_iter()
                .map(|id| ModelObject {
                    id,
                    object: "model".into(),
                    created,
                    owned_by: "colm".into(),
                })
                .collect(),
        }
    }
}

/// OpenAI's error object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorObject {
    /// Human-readable message (for size errors, it names the sizes).
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `not_found_error`,
    /// `rate_limit_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, if any.
    pub param: Option<String>,
    /// Machine-readable code, e.g. `model_not_found`, `context_length_exceeded`,
    /// `overloaded`, `rate_limit_exceeded`, `session_closed`.
    pub code: Option<String>,
}

/// Every error body: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// The answer of `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

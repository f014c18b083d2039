//! The OpenAI-compatible chat API: `POST /v1/chat/completions` (plain and SSE streaming) and
//! `GET /v1/models`. The bodies are [`colm_api::openai`]'s (which lists the differences from
//! OpenAI); this module validates them and runs the hosted models.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use colm_api::openai::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChunkExtension, ColmExtension,
    CompletionUsage, Content, Delta, DeltaToolCall, ImageUrl, ModelList, RequestMessage,
    ResponseFormatParam, Stop, ToolCallObject, ToolChoiceParam,
};
use colm_core::{
    ChatMessage, Completion, FinishReason, ModelError, Query, ResponseFormat, Role, SamplingParams,
    StreamEvent, Tool, ToolChoice,
};
use futures::channel::mpsc;
use futures::StreamExt;

use crate::error::{ApiError, ErrorResponses};
use crate::images::ImageLimits;
use crate::log::{Recorder, Served};
use crate::AppState;

fn role(name: &str) -> Result<Role, ApiError> {
    match name {
        "system" | "developer" => Ok(Role::System),
        "user" => Ok(Role::User),
        "assistant" => Ok(Role::Assistant),
        "tool" => Ok(Role::Tool),
        other => Err(ApiError::invalid(
            format!(
                "unsupported message role `{other}` ({})",
                RequestMessage::ROLES.join(", ")
            ),
            Some("messages"),
        )),
    }
}

/// Validates the request and turns it into core messages and sampling parameters.
///
/// # Errors
/// 400 `invalid_request_error` naming the offending field.
pub fn to_core(
    req: &ChatCompletionRequest,
    default_max_tokens: u32,
    limits: ImageLimits,
) -> Result<(Vec<ChatMessage>, SamplingParams), ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::invalid(
            "`messages` must not be empty",
            Some("messages"),
        ));
    }
    if let Some(name) = req.unsupported.keys().next() {
        return Err(ApiError::invalid(
            format!(
                "`{name}` is not supported by this server (supported fields: {})",
                supported_fields().join(", ")
            ),
            Some(name),
        ));
    }
    if req.n.is_some_and(|n| !(1..=MAX_N).contains(&n)) {
        return Err(ApiError::invalid(
            format!("n must be in [1, {MAX_N}]"),
            Some("n"),
        ));
    }
    if req.top_logprobs.is_some() && req.logprobs != Some(true) {
        return Err(ApiError::invalid(
            "top_logprobs requires logprobs: true",
            Some("top_logprobs"),
        ));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        if let Some(name) = m.unsupported.keys().next() {
            return Err(ApiError::invalid(
                format!(
                    "`messages[{i}].{name}` is not supported by this server (message fields: \
                     role, content, tool_calls, tool_call_id)"
                ),
                Some("messages"),
            ));
        }
        let role = role(&m.role)?;
        let mut images = Vec::new();
        let content = match &m.content {
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for p in parts {
                    match (p.kind.as_str(), &p.text, &p.image_url) {
                        ("text", Some(t), None) => text.push_str(t),
                        ("image_url", None, Some(image)) if role == Role::User => {
                            if let Some(d) = image
                                .detail
                                .as_deref()
                                .filter(|d| !ImageUrl::DETAILS.contains(d))
                            {
                                return Err(ApiError::invalid(
                                    format!(
                                        "messages[{i}]: image_url.detail `{d}` is not supported \
                                         (the model reads every image at its own resolution; \
                                         use `auto` or leave it out)"
                                    ),
                                    Some("messages"),
                                ));
                            }
                            crate::images::check(&image.url, limits, i)?;
                            images.push(image.url.clone());
                        }
                        ("image_url", None, Some(_)) => {
                            return Err(ApiError::invalid(
                                format!("messages[{i}]: only user turns carry images"),
                                Some("messages"),
                            ))
                        }
                        (kind, _, _) => {
                            return Err(ApiError::invalid(
                                format!(
                                    "messages[{i}]: unsupported content part `{kind}` (a \
                                     `text` part has `text` only, an `image_url` part \
                                     `image_url` only)"
                                ),
                                Some("messages"),
                            ))
                        }
                    }
                }
                text
            }
            None if role == Role::Assistant && m.tool_calls.is_some() => String::new(),
            None => {
                return Err(ApiError::invalid(
                    format!(
                        "messages[{i}].content must not be null (only an assistant turn with \
                         tool_calls may omit it)"
                    ),
                    Some("messages"),
                ))
            }
        };
        if m.tool_calls.is_some() && role != Role::Assistant {
            return Err(ApiError::invalid(
                format!("messages[{i}]: only assistant turns carry tool_calls"),
                Some("messages"),
            ));
        }
        for (j, call) in m.tool_calls.iter().flatten().enumerate() {
            if let Some(name) = call.unsupported_field() {
                return Err(ApiError::invalid(
                    format!(
                        "`messages[{i}].tool_calls[{j}].{name}` is not supported by this server \
                         (tool call fields: id, type, function.name, function.arguments)"
                    ),
                    Some("messages"),
                ));
            }
        }
        if (role == Role::Tool) != m.tool_call_id.is_some() {
            return Err(ApiError::invalid(
                format!(
                    "messages[{i}]: a tool message, and only a tool message, needs tool_call_id"
                ),
                Some("messages"),
            ));
        }
        messages.push(ChatMessage {
            role,
            content,
            tool_calls: m
                .tool_calls
                .iter()
                .flatten()
                .map(colm_core::ToolCall::from)
                .collect(),
            tool_call_id: m.tool_call_id.clone(),
            images,
        });
    }
    let temperature = req.temperature.unwrap_or(0.0);
    let top_p = req.top_p.unwrap_or(1.0);
    let max_tokens = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(default_max_tokens);
    let stop = match &req.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    if stop.len() > 4 || stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            "stop takes up to 4 non-empty strings",
            Some("stop"),
        ));
    }
    let sensitive = match req.metadata.as_ref().and_then(|m| m.get("sensitive")) {
        None => false,
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        Some(v) => {
            return Err(ApiError::invalid(
                format!("metadata.sensitive must be \"true\" or \"false\", got {v:?}"),
                Some("metadata"),
            ))
        }
    };
    let mut logit_bias = Vec::new();
    for (token, &bias) in req.logit_bias.iter().flatten() {
        let id = token.parse::<u32>().map_err(|_| {
            ApiError::invalid(
                format!("logit_bias keys are token ids, got {token:?}"),
                Some("logit_bias"),
            )
        })?;
        logit_bias.push((id, bias));
    }
    logit_bias.sort_by_key(|&(id, _)| id);
    let response_format = match &req.response_format {
        None | Some(ResponseFormatParam::Text {}) => None,
        Some(ResponseFormatParam::JsonObject {}) => Some(ResponseFormat::JsonObject),
        Some(ResponseFormatParam::JsonSchema { json_schema }) => Some(match &json_schema.schema {
            None => ResponseFormat::JsonObject,
            Some(schema) if schema.is_object() => ResponseFormat::JsonSchema {
                schema: schema.clone(),
            },
            Some(_) => {
                return Err(ApiError::invalid(
                    "response_format.json_schema.schema must be a JSON object",
                    Some("response_format"),
                ))
            }
        }),
    };
    let (tools, tool_choice) = tools_of(req)?;
    let params = SamplingParams {
        max_tokens,
        temperature,
        top_p,
        // OpenAI seeds are 64-bit; llama.cpp's are 32-bit: keep the low bits.
        seed: req.seed.map_or(0, |s| s as u32),
        stop,
        ignore_eos: req.ignore_eos,
        sensitive,
        frequency_penalty: req.frequency_penalty.unwrap_or(0.0),
        presence_penalty: req.presence_penalty.unwrap_or(0.0),
        logit_bias,
        response_format,
        logprobs: (req.logprobs == Some(true)).then(|| req.top_logprobs.unwrap_or(0)),
        tools,
        tool_choice,
    };
    params
        .check_ranges()
        .map_err(|(field, message)| ApiError::invalid(message, Some(field)))?;
    Ok((messages, params))
}

/// The request's `tools` and `tool_choice` as core types.
///
/// # Errors
/// 400 for a tool that is not a function, a bad name, a schema that is not an object, an
/// unknown `tool_choice`, or a `tool_choice` without tools.
fn tools_of(req: &ChatCompletionRequest) -> Result<(Vec<Tool>, ToolChoice), ApiError> {
    let mut tools = Vec::new();
    for t in req.tools.iter().flatten() {
        let f = &t.function;
        let name_ok = !f.name.is_empty()
            && f.name.len() <= 64
            && f.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if t.kind != "function" || !name_ok {
            return Err(ApiError::invalid(
                format!(
                    "tools: `{}` of type `{}`: tools are functions named with a-z, A-Z, 0-9, \
                     `_`, `-` (up to 64)",
                    f.name, t.kind
                ),
                Some("tools"),
            ));
        }
        let parameters = match &f.parameters {
            None => serde_json::json!({"type": "object", "properties": {}}),
            Some(p) if p.is_object() => p.clone(),
            Some(_) => {
                return Err(ApiError::invalid(
                    format!(
                        "tools: the parameters of `{}` must be a JSON Schema object",
                        f.name
                    ),
                    Some("tools"),
                ))
            }
        };
        tools.push(Tool {
            name: f.name.clone(),
            description: f.description.clone(),
            parameters,
        });
    }
    let choice = match &req.tool_choice {
        None => ToolChoice::Auto,
        Some(ToolChoiceParam::Mode(m)) => match m.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(ApiError::invalid(
                    format!("tool_choice `{other}`: none, auto, required or a named function"),
                    Some("tool_choice"),
                ))
            }
        },
        Some(ToolChoiceParam::Named { function, .. }) => {
            if !tools.iter().any(|t| t.name == function.name) {
                return Err(ApiError::invalid(
                    format!(
                        "tool_choice names `{}`, which is not in `tools`",
                        function.name
                    ),
                    Some("tool_choice"),
                ));
            }
            ToolChoice::Function(function.name.clone())
        }
    };
    if tools.is_empty() && matches!(choice, ToolChoice::Required | ToolChoice::Function(_)) {
        return Err(ApiError::invalid(
            "tool_choice requires tools",
            Some("tool_choice"),
        ));
    }
    Ok((tools, choice))
}

/// Most choices a request may ask for (`n`).
pub const MAX_N: u32 = 8;

/// The request fields the server honours (every other field is a 400 naming it): the
/// properties of [`ChatCompletionRequest`]'s schema, so the OpenAPI document, the type and
/// this list are one.
pub fn supported_fields() -> &'static [String] {
    static FIELDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    FIELDS.get_or_init(|| {
        use utoipa::openapi::{schema::Schema, RefOr};
        match <ChatCompletionRequest as utoipa::PartialSchema>::schema() {
            RefOr::T(Schema::Object(o)) => o.properties.keys().cloned().collect(),
            _ => Vec::new(),
        }
    })
}

/// Checks the fields that apply to one kind of model only against the model asked for: a
/// virtual model (a strategy of several calls) takes none of `n` > 1, `logprobs`,
/// `logit_bias` (token ids of one vocabulary), `response_format`, `tools` or tool turns in
/// `messages`; a streamed request takes neither `n` > 1 nor `logprobs`.
///
/// # Errors
/// 400 naming the field.
pub fn check_fields_for(
    req: &ChatCompletionRequest,
    messages: &[ChatMessage],
    params: &SamplingParams,
    strategy: bool,
) -> Result<(), ApiError> {
    let n = req.n.unwrap_or(1);
    let single_only = [
        ("n", n > 1),
        ("logprobs", params.logprobs.is_some()),
        ("logit_bias", !params.logit_bias.is_empty()),
        ("response_format", params.response_format.is_some()),
        ("tools", !params.tools.is_empty()),
        (
            "messages",
            messages
                .iter()
                .any(|m| m.role == Role::Tool || !m.tool_calls.is_empty()),
        ),
    ];
    if strategy {
        if let Some((name, _)) = single_only.iter().find(|(_, set)| *set) {
            return Err(ApiError::invalid(
                format!(
                    "`{name}` applies to single models only; `{}` is a virtual model (a \
                     collaboration of several model calls)",
                    req.model
                ),
                Some(name),
            ));
        }
    }
    if req.stream {
        if let Some((name, _)) = single_only[..2].iter().find(|(_, set)| *set) {
            return Err(ApiError::invalid(
                format!("`{name}` is not supported with `stream: true`"),
                Some(name),
            ));
        }
    }
    Ok(())
}

/// The request body, or 413 over the configured limit / 400 when unreadable.
///
/// # Errors
/// As above, OpenAI-shaped.
pub fn read_body(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "request body over the limit of {} bytes",
                state.config().max_body_bytes
            ))
        } else {
            ApiError::invalid(r.body_text(), None)
        }
    })
}

/// The JSON body of a request to `route` as `T`: read within the limit, its size counted in
/// the metrics, then parsed.
///
/// # Errors
/// 413 over the limit; 400 as [`parse_json`].
pub fn parse_body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    route: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = read_body(state, body)?;
    state.metrics().request_bytes(route, body.len());
    parse_json(&body)
}

/// A JSON request body as `T`.
///
/// # Errors
/// 400 when it is not JSON, holds a NUL character, or is not a `T`; the message names the
/// path of the offending value (`messages[0].content[1].image_url`) and `param` its
/// top-level field.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let invalid =
        |e: serde_json::Error| ApiError::invalid(format!("invalid request body: {e}"), None);
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
    if let Some(path) = nul_at(&value, "") {
        return Err(ApiError::invalid(
            format!("`{path}` holds a NUL character (U+0000), which no model reads"),
            Some(path.split(['.', '[']).next().unwrap_or_default()),
        ));
    }
    integral_floats_as_integers(&mut value);
    let fields = value.clone();
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            // A flattened part (the guidance options) reports its errors at the root: name the
            // top-level field whose value the message quotes.
            match field_quoted(&fields, &inner.to_string()) {
                Some(field) => ApiError::invalid(
                    format!("invalid request body: `{field}`: {inner}"),
                    Some(&field),
                ),
                None => invalid(inner),
            }
        } else {
            ApiError::invalid(
                format!("invalid request body: `{path}`: {inner}"),
                Some(path.split(['.', '[']).next().unwrap_or_default()),
            )
        }
    })
}

/// The top-level field of `body` whose value `message` quotes (`unknown variant `shout``,
/// `invalid type: string "x"`).
fn field_quoted(body: &serde_json::Value, message: &str) -> Option<String> {
    let quoted = |open: char, close: char| {
        let start = message.find(open)? + open.len_utf8();
        let end = start + message[start..].find(close)?;
        Some(message[start..end].to_owned())
    };
    let token = quoted('`', '`').or_else(|| quoted('"', '"'))?;
    body.as_object()?.iter().find_map(|(k, v)| {
        let shown = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        (shown == token).then(|| k.clone())
    })
}

/// The path (`messages[0].content`) of the first string of `v`, key or value, holding a NUL
/// character: the tokenizers take C strings, so no request text may hold one.
fn nul_at(v: &serde_json::Value, at: &str) -> Option<String> {
    match v {
        serde_json::Value::String(s) => s.contains('\0').then(|| at.to_owned()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_at(x, &format!("{at}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, x)| {
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if k.contains('\0') {
                Some(path)
            } else {
                nul_at(x, &path)
            }
        }),
        _ => None,
    }
}

/// JSON has one number type: `2.0` is the integer 2 (JSON Schema's `integer` accepts it), so
/// every number with no fractional part is read as an integer wherever one is expected (a
/// float field reads an integer as well).
fn integral_floats_as_integers(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    *v = serde_json::Value::from(f as i64);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn completion_id() -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("chatcmpl-{t:x}{n:04x}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Header set on responses whose answer is a fallback (value: `true`).
pub const FALLBACK_HEADER: &str = "x-colm-fallback";

/// `GET /v1/models`.
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    summary = "Hosted models (names and aliases)",
    responses((status = 200, description = "The model list", body = ModelList), ErrorResponses))]
pub async fn list_models(State(state): State<AppState>) -> Json<ModelList> {
    Json(ModelList::new(state.model_ids(), state.created()))
}

/// `POST /v1/chat/completions`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai",
    summary = "Chat completion (OpenAI-compatible)",
    description = "A hosted model's answer, or a virtual model's collaboration. With `stream: \
        true` the answer is server-sent events of `chat.completion.chunk` objects ending with \
        `data: [DONE]`.",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The completion, or its stream", content(
            (ChatCompletion = "application/json"),
            (ChatCompletionChunk = "text/event-stream"),
        ), headers(
            ("x-colm-fallback" = String, description = "`true` when the answer is a fallback"),
            ("x-colm-record-id" = String, description = "The record id, for `POST /v1/colm/feedback`"),
        )),
        ErrorResponses,
    ))]
pub async fn chat_completions(
    State(state): State<AppState>,
    recorder: Option<Extension<Recorder>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let recorder = recorder.map(|Extension(r)| r).filter(Recorder::active);
    match handle(state, recorder, body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(status = %e.status, message = %e.message, "request rejected");
            e.into_response()
        }
    }
}

/// What the interaction log records of a chat request, filled in once it is answered or has
/// failed.
struct ChatLog {
    recorder: Recorder,
    model: String,
    /// [`crate::log::Interaction::strategy`].
    strategy: String,
    /// The last user turn.
    query: String,
    bytes_in: usize,
    sensitive: bool,
}

impl ChatLog {
    /// Records the answers `cs`.
    fn answered(&self, cs: &[Completion]) {
        self.recorder.chat(
            &self.model,
            &self.strategy,
            &self.query,
            self.bytes_in,
            self.sensitive,
            cs,
        );
    }

    /// Records the failure `e`, after `partial` was streamed.
    fn failed(&self, e: &ApiError, partial: &str) {
        self.answered(&[]);
        self.recorder.failed(&e.message, partial);
    }
}

/// The response to a chat whose model call failed with `e` before answering: the error, with
/// the failure recorded (when a log is kept).
fn failed(log: Option<&ChatLog>, e: ApiError) -> Response {
    tracing::info!(status = %e.status, message = %e.message, "model call failed");
    if let Some(log) = log {
        log.failed(&e, "");
    }
    let mut response = e.into_response();
    response.extensions_mut().insert(Served);
    response
}

async fn handle(
    state: AppState,
    recorder: Option<Recorder>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes_in = body.as_ref().map_or(0, Bytes::len);
    let req: ChatCompletionRequest = parse_body(&state, "/v1/chat/completions", body)?;
    let model = state
        .model(&req.model)
        .ok_or_else(|| ApiError::model_not_found(&req.model, &state.model_ids()))?;
    let config = state.config();
    let limits = ImageLimits {
        max_bytes: config.max_image_bytes,
        allow_urls: config.allow_image_urls,
    };
    let (messages, params) = to_core(&req, config.default_max_tokens, limits)?;
    if messages.iter().any(|m| !m.images.is_empty()) && !model.accepts_images() {
        return Err(ApiError::invalid(
            format!(
                "`{}` reads text only: send images to a vision-language model",
                req.model
            ),
            Some("messages"),
        ));
    }
    check_fields_for(&req, &messages, &params, model.is_collaboration())?;
    if let Some(user) = &req.user {
        tracing::info!(%user, model = %req.model, "chat completion for an end user");
    }
    let id = completion_id();
    let created = unix_now();
    let parallel_calls = req.parallel_tool_calls != Some(false);
    let log = recorder.map(|recorder| ChatLog {
        recorder,
        model: req.model.clone(),
        strategy: model.strategy().unwrap_or_else(|| {
            if model.is_collaboration() {
                "collaboration"
            } else {
                "model"
            }
            .to_owned()
        }),
        query: Query::from_messages(&messages).text,
        bytes_in,
        sensitive: params.sensitive,
    });
    if !req.stream {
        // n > 1: independent completions, decoded together; sampled ones with seeds
        // seed, seed + 1, …
        let n = req.n.unwrap_or(1);
        let runs = (0..n).map(|i| {
            let params = SamplingParams {
                seed: params.seed.wrapping_add(i),
                ..params.clone()
            };
            let (model, messages) = (model.clone(), &messages);
            async move { model.chat(messages, &params).await }
        });
        let cs: Vec<Completion> = match futures::future::try_join_all(runs).await {
            Ok(cs) => cs
                .into_iter()
                .map(|c| keep_calls(c, parallel_calls))
                .collect(),
            Err(e) => return Ok(failed(log.as_ref(), e.into())),
        };
        for c in &cs {
            state.record_tokens(&req.model, c.usage.prompt_tokens, c.usage.completion_tokens);
        }
        if let Some(log) = &log {
            log.answered(&cs);
        }
        let response = ChatCompletion::with_choices(id, created, req.model, &cs);
        let fallback = cs.iter().any(|c| c.fallback.is_some());
        let mut response = Json(response).into_response();
        response.extensions_mut().insert(Served);
        if fallback {
            response.headers_mut().insert(
                FALLBACK_HEADER,
                axum::http::HeaderValue::from_static("true"),
            );
        }
        return Ok(response);
    }

    // Streaming. A single model: errors found before the first token (unknown sizes, context
    // overflow) still get a proper status code, so wait for the first delta or the end before
    // answering. A strategy (several model calls before its first answer token): answer at
    // once, report its steps as they finish; its errors arrive in the stream.
    let (event_tx, mut events) = mpsc::unbounded::<StreamEvent>();
    let at_once = model.reports_progress();
    // The spawned work is the request's tenant's, as the handler's would be: it shares
    // (references) in the tenant's scope and its tokens are charged to the tenant.
    let tenant = crate::auth::current_tenant();
    let forward_tenant = tenant.clone();
    let work = tokio::spawn(async move {
        let run = model.chat_streaming(&messages, &params, event_tx);
        match tenant {
            Some(tenant) => crate::auth::as_tenant(tenant, run).await,
            None => run.await,
        }
    });
    // A caller that goes away (the response body is dropped) cancels the work: every model
    // call still running is dropped, and the engines free their sequences.
    let cancel = AbortOnDrop(work.abort_handle());
    let first = if at_once { None } else { events.next().await };
    let pending = match (&first, at_once) {
        (None, false) => match join(work).await {
            Ok(c) => Pending::Done(c),
            Err(e) => return Ok(failed(log.as_ref(), e)),
        },
        _ => Pending::Running(work),
    };
    let (sse_tx, sse) = mpsc::unbounded::<Event>();
    let metrics_state = state.clone();
    let model_id = req.model.clone();
    let chunk = move |delta: Delta, finish: Option<FinishReason>| {
        ChatCompletionChunk::new(&id, created, &req.model, delta, finish)
    };
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let role = Delta {
        role: Some("assistant".into()),
        content: Some(String::new()),
        tool_calls: None,
    };
    send(&sse_tx, &chunk(role, None));
    let event_chunk = move |e: StreamEvent| match e {
        StreamEvent::Delta(t) => chunk(
            Delta {
                content: Some(t),
                ..Delta::default()
            },
            None,
        ),
        StreamEvent::Progress(progress) => {
            let mut c = chunk(Delta::default(), None);
            c.colm = Some(ChunkExtension::Progress { progress });
            c
        }
    };
    // The text streamed so far: what the completion holds beyond it (an answer parsed whole,
    // such as one that may call tools) is sent at the end.
    let mut streamed = String::new();
    if let Some(e) = first {
        if let StreamEvent::Delta(t) = &e {
            streamed.push_str(t);
        }
        send(&sse_tx, &event_chunk(e));
    }
    let forward = async move {
        while let Some(e) = events.next().await {
            if let StreamEvent::Delta(t) = &e {
                streamed.push_str(t);
            }
            send(&sse_tx, &event_chunk(e));
        }
        let outcome = match pending {
            Pending::Done(c) => Ok(c),
            Pending::Running(task) => join(task).await,
        };
        match outcome.map(|c| keep_calls(c, parallel_calls)) {
            Ok(c) => {
                metrics_state.record_tokens(
                    &model_id,
                    c.usage.prompt_tokens,
                    c.usage.completion_tokens,
                );
                if let Some(log) = &log {
                    log.answered(std::slice::from_ref(&c));
                }
                if let Some(rest) = c.text.strip_prefix(streamed.as_str()) {
                    if !rest.is_empty() {
                        send(&sse_tx, &event_chunk(StreamEvent::Delta(rest.to_owned())));
                    }
                }
                if !c.tool_calls.is_empty() {
                    let mut calls = event_chunk(StreamEvent::Delta(String::new()));
                    calls.choices[0].delta = Delta {
                        tool_calls: Some(
                            c.tool_calls
                                .iter()
                                .zip(0..)
                                .map(|(call, index)| DeltaToolCall {
                                    index,
                                    call: ToolCallObject::from(call),
                                })
                                .collect(),
                        ),
                        ..Delta::default()
                    };
                    send(&sse_tx, &calls);
                }
                let mut last = event_chunk(StreamEvent::Delta(String::new()));
                last.choices[0].delta = Delta::default();
                last.choices[0].finish_reason = Some(c.finish_reason);
                last.colm = Some(ChunkExtension::Final(ColmExtension::from(&c)));
                send(&sse_tx, &last);
                if include_usage {
                    let mut u = event_chunk(StreamEvent::Delta(String::new()));
                    u.choices.clear();
                    u.usage = Some(CompletionUsage::from(c.usage));
                    send(&sse_tx, &u);
                }
            }
            Err(e) => {
                if let Some(log) = &log {
                    log.failed(&e, &streamed);
                }
                send(&sse_tx, &e.body());
            }
        }
        let _ = sse_tx.unbounded_send(Event::default().data("[DONE]"));
    };
    // The forwarder records the tokens: as the tenant's work.
    let forwarding = AbortOnDrop(
        tokio::spawn(async move {
            match forward_tenant {
                Some(tenant) => crate::auth::as_tenant(tenant, forward).await,
                None => forward.await,
            }
        })
        .abort_handle(),
    );
    let body = sse.map(move |e| {
        // The body owns the work: dropping it (the caller went away) aborts both tasks.
        let _owned = (&cancel, &forwarding);
        Ok::<Event, Infallible>(e)
    });
    let mut response = Sse::new(body)
        .keep_alive(KeepAlive::default())
        .into_response();
    response.extensions_mut().insert(Served);
    Ok(response)
}

/// `c` with only its first tool call unless `parallel` (`parallel_tool_calls: false`).
fn keep_calls(mut c: Completion, parallel: bool) -> Completion {
    if !parallel {
        c.tool_calls.truncate(1);
    }
    c
}

/// Aborts a task when dropped (tasks a response body owns).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends `v` as one server-sent event's JSON data (a closed stream drops it).
fn send<T: serde::Serialize>(tx: &mpsc::UnboundedSender<Event>, v: &T) {
    if let Ok(event) = Event::default().json_data(v) {
        let _ = tx.unbounded_send(event);
    }
}

/// A generation that already ended, or is still running.
enum Pending {
    Done(Completion),
    Running(tokio::task::JoinHandle<Result<Completion, ModelError>>),
}

async fn join(
    task: tokio::task::JoinHandle<Result<Completion, ModelError>>,
) -> Result<Completion, ApiError> {
    task.await
        .map_err(|e| ApiError::from(ModelError::Inference(format!("generation task: {e}"))))?
        .map_err(ApiError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const LIMITS: ImageLimits = ImageLimits {
        max_bytes: 1000,
        allow_urls: false,
    };

    fn req(body: Value) -> ChatCompletionRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn requests_map_to_core_types() {
        let r = req(json!({
            "model": "m",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]}
            ],
            "max_tokens": 9, "max_completion_tokens": 7, "stop": "\n", "seed": 42
        }));
        let (m, p) = to_core(&r, 512, LIMITS).unwrap();
        assert_eq!(m[0].role, Role::System);
        assert_eq!(m[1].content, "hi there");
        assert_eq!(p.max_tokens, 7);
        assert_eq!(p.stop, vec!["\n"]);
        assert_eq!(p.temperature, 0.0);
        assert_eq!(p.seed, 42);
        let r = req(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
        assert_eq!(to_core(&r, 300, LIMITS).unwrap().1.max_tokens, 300);
        assert!(!to_core(&r, 300, LIMITS).unwrap().1.sensitive);
        let r = req(json!({
            "model": "m", "messages": [{"role": "user", "content": "x"}],
            "metadata": {"sensitive": "true", "user_tag": "a"}
        }));
        assert!(to_core(&r, 300, LIMITS).unwrap().1.sensitive);
        let r = req(json!({
            "model": "m", "messages": [{"role": "user", "content": "x"}],
            "frequency_penalty": 0.5, "presence_penalty": -1, "logit_bias": {"17": -100, "3": 5},
            "logprobs": true, "top_logprobs": 3, "user": "u1",
            "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
        }));
        let (_, p) = to_core(&r, 300, LIMITS).unwrap();
        assert_eq!((p.frequency_penalty, p.presence_penalty), (0.5, -1.0));
        assert_eq!(p.logit_bias, vec![(3, 5.0), (17, -100.0)]);
        assert_eq!(p.logprobs, Some(3));
        assert_eq!(
            p.response_format,
            Some(ResponseFormat::JsonSchema {
                schema: json!({"type": "object"})
            })
        );
        // Tool turns and tools map to core types.
        let r = req(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "17 C"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
        }));
        let (m, tp) = to_core(&r, 300, LIMITS).unwrap();
        assert_eq!(m[1].content, "");
        assert_eq!(m[1].tool_calls[0].name, "get_weather");
        assert_eq!(m[2].role, Role::Tool);
        assert_eq!(m[2].tool_call_id.as_deref(), Some("call_1"));
        assert_eq!(tp.tool_choice, ToolChoice::Function("get_weather".into()));
        let back = ChatCompletionRequest::for_params("m", &m, &tp);
        assert_eq!(to_core(&back, 300, LIMITS).unwrap(), (m, tp));
        // The client's request for these parameters reads back as the same parameters.
        let back = ChatCompletionRequest::for_params("m", &[ChatMessage::user("x")], &p);
        assert_eq!(to_core(&back, 300, LIMITS).unwrap().1, p);
    }

    #[test]
    fn an_unsupported_field_is_named_with_the_supported_ones() {
        let fields = supported_fields();
        for f in ["model", "messages", "tools", "response_format", "n"] {
            assert!(fields.iter().any(|x| x == f), "{f}: {fields:?}");
        }
        assert!(!fields.iter().any(|x| x == "unsupported"));
        let r = req(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "prediction": {}}),
        );
        let e = to_core(&r, 100, LIMITS).unwrap_err();
        let m = e.body().error.message;
        assert_eq!(e.param.as_deref(), Some("prediction"));
        assert!(
            m.contains("`prediction`") && m.contains("tool_choice"),
            "{m}"
        );
    }

    #[test]
    fn single_model_fields_are_refused_for_virtual_models_and_streams() {
        let body = |extra: Value| {
            let mut b = json!({"model": "colm", "messages": [{"role": "user", "content": "x"}]});
            b.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            req(b)
        };
        for (extra, field) in [
            (json!({"n": 2}), "n"),
            (json!({"logprobs": true}), "logprobs"),
            (json!({"logit_bias": {"1": 1}}), "logit_bias"),
            (
                json!({"response_format": {"type": "json_object"}}),
                "response_format",
            ),
        ] {
            let r = body(extra);
            let (m, p) = to_core(&r, 100, LIMITS).unwrap();
            assert!(check_fields_for(&r, &m, &p, false).is_ok(), "{field}");
            let e = check_fields_for(&r, &m, &p, true).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(field));
        }
        let r = body(json!({"n": 2, "stream": true}));
        let (m, p) = to_core(&r, 100, LIMITS).unwrap();
        assert_eq!(
            check_fields_for(&r, &m, &p, false)
                .unwrap_err()
                .param
                .as_deref(),
            Some("n")
        );
        let r = body(json!({"response_format": {"type": "text"}, "stream": true, "user": "u"}));
        let (m, p) = to_core(&r, 100, LIMITS).unwrap();
        assert!(check_fields_for(&r, &m, &p, true).is_ok());
    }

    #[test]
    fn unknown_fields_of_nested_request_objects_are_named() {
        let with_message = |m: Value| json!({"model": "m", "messages": [m]});
        let image = |extra: Value| {
            let mut url = json!({"url": "data:image/png;base64,iVBORw0KGgo="});
            url.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            with_message(json!({"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": url}]}))
        };
        let call = |function: Value, extra: Value| {
            let mut c = json!({"id": "c1", "type": "function", "function": function});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            with_message(json!({"role": "assistant", "content": null, "tool_calls": [c]}))
        };
        let f = json!({"name": "f", "arguments": "{}"});
        let with = |extra: Value| {
            let mut b = with_message(json!({"role": "user", "content": "x"}));
            b.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            b
        };
        for (body, path, field) in [
            (
                image(json!({"zoom": 2})),
                "messages[0].content[1].image_url",
                "zoom",
            ),
            (
                with_message(
                    json!({"role": "user", "content": [{"type": "text", "text": "x", "lang": "en"}]}),
                ),
                "messages[0].content[0]",
                "lang",
            ),
            (
                with(
                    json!({"stream": true, "stream_options": {"include_usage": true, "continuous_usage_stats": true}}),
                ),
                "stream_options",
                "continuous_usage_stats",
            ),
            (
                with(json!({"response_format": {"type": "json_object", "schema": {}}})),
                "response_format",
                "schema",
            ),
            (
                with(
                    json!({"tools": [{"type": "function", "function": {"name": "f"}, "cache": true}]}),
                ),
                "tools[0]",
                "cache",
            ),
            (
                with(
                    json!({"tools": [{"type": "function", "function": {"name": "f", "returns": {}}}]}),
                ),
                "tools[0].function",
                "returns",
            ),
            (
                with(
                    json!({"tool_choice": {"type": "function", "function": {"name": "f"}, "force": 1}}),
                ),
                "tool_choice",
                "force",
            ),
        ] {
            let e = parse_json::<ChatCompletionRequest>(body.to_string().as_bytes()).unwrap_err();
            let m = e.body().error.message;
            assert!(
                m.contains(&format!("`{path}")) && m.contains(&format!("unknown field `{field}`")),
                "{path}: {m}"
            );
            assert_eq!(e.param.as_deref(), path.split(['.', '[']).next(), "{m}");
        }
        // A tool call's unknown field (answers of other servers may carry some, so they are
        // read) is refused in a request.
        for (body, named) in [
            (call(f.clone(), json!({"index": 0})), "tool_calls[0].index"),
            (
                call(
                    json!({"name": "f", "arguments": "{}", "strict": true}),
                    json!({}),
                ),
                "tool_calls[0].function.strict",
            ),
        ] {
            let r: ChatCompletionRequest = parse_json(body.to_string().as_bytes()).unwrap();
            let e = to_core(&r, 100, LIMITS).unwrap_err();
            let m = e.body().error.message;
            assert!(m.contains(named), "{m}");
        }
        // `detail` is honoured as `auto` only.
        for (detail, ok) in [("auto", true), ("high", false), ("low", false)] {
            let r: ChatCompletionRequest =
                parse_json(image(json!({ "detail": detail })).to_string().as_bytes()).unwrap();
            let out = to_core(&r, 100, LIMITS);
            assert_eq!(out.is_ok(), ok, "{detail}: {out:?}");
            if let Err(e) = out {
                assert!(e.body().error.message.contains("image_url.detail"));
            }
        }
        // The request the tests above start from is fine.
        let r: ChatCompletionRequest =
            parse_json(call(f, json!({})).to_string().as_bytes()).unwrap();
        assert!(to_core(&r, 100, LIMITS).is_ok());
    }

    #[test]
    fn bad_requests_name_the_field() {
        for (body, param) in [
            (json!({"model": "m", "messages": []}), "messages"),
            (
                json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
                "messages",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
                "messages",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3}),
                "temperature",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 0}),
                "top_p",
            ),
            (
                // Too small for f32, and still below 0 (narrowed away from zero).
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": -1e-200}),
                "temperature",
            ),
            (
                // Beyond the bound by less than an f32 step: still beyond it.
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 2.0000000000000004}),
                "temperature",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 1.0000000001}),
                "top_p",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
                "max_tokens",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 9}),
                "n",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [], "modalities": ["text"]}),
                "modalities",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x", "name": "ann"}]}),
                "messages",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": null}]}),
                "messages",
            ),
            (
                json!({"model": "m", "messages": [{"role": "tool", "content": "17"}]}),
                "messages",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes",
                       "tools": [{"type": "function", "function": {"name": "f"}}]}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                       "tools": [{"type": "function", "function": {"name": "f"}}],
                       "tool_choice": {"type": "function", "function": {"name": "g"}}}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                       "tools": [{"type": "function", "function": {"name": "bad name"}}]}),
                "tools",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}),
                "top_logprobs",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21}),
                "top_logprobs",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "presence_penalty": 2.5}),
                "presence_penalty",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"hello": 1}}),
                "logit_bias",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"5": 101}}),
                "logit_bias",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                       "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": [1]}}}),
                "response_format",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
                "max_tokens",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["a","b","c","d","e"]}),
                "stop",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "metadata": {"sensitive": "yes"}}),
                "metadata",
            ),
        ] {
            let e = to_core(&req(body.clone()), 512, LIMITS).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}");
            assert_eq!(e.body().error.kind, "invalid_request_error");
        }
    }

    #[test]
    fn overload_is_a_503_with_retry_after() {
        let r = ApiError::from(ModelError::Overloaded { queued: 64 }).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()["retry-after"], "1");
    }

    #[test]
    fn context_overflow_is_a_400_with_sizes() {
        let e = ApiError::from(ModelError::ContextOverflow {
            prompt_tokens: 900,
            max_tokens: 512,
            n_ctx: 1024,
        });
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.code, Some("context_length_exceeded"));
        let msg = e.body().error.message;
        assert!(
            msg.contains("900") && msg.contains("512") && msg.contains("1024"),
            "{msg}"
        );
    }
}

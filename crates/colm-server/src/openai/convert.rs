//! A chat completion request in core's terms: its messages (roles, text and image parts, tool
//! calls) and its sampling parameters, checked ([`to_core`]), and which request fields are
//! supported ([`check_fields_for`]).

use colm_api::openai::{
    ChatCompletionRequest, Content, ImageUrl, RequestMessage, ResponseFormatParam, Stop,
    ToolChoiceParam,
};
use colm_core::{ChatMessage, ResponseFormat, Role, SamplingParams, Tool, ToolChoice};

use crate::error::ApiError;
use crate::images::ImageLimits;

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
    refuse_unsupported::<ChatCompletionRequest>(&req.unsupported)?;
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
                     role, content, name, tool_calls, tool_call_id)"
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
            name: m.name.clone(),
        });
    }
    let temperature = req.temperature.unwrap_or(0.0);
    let top_p = req.top_p.unwrap_or(1.0);
    let max_tokens = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(default_max_tokens);
    // Named as the request gave it (`max_completion_tokens` wins over `max_tokens`).
    if max_tokens == 0 {
        let field = if req.max_completion_tokens.is_some() {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        return Err(ApiError::invalid(
            format!("{field} must be at least 1"),
            Some(field),
        ));
    }
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
    let repeat_penalty =
        match (req.repeat_penalty, req.repetition_penalty) {
            (Some(_), Some(_)) => return Err(ApiError::invalid(
                "repeat_penalty and repetition_penalty are one setting under two names; give one",
                Some("repetition_penalty"),
            )),
            (a, b) => a.or(b).unwrap_or(1.0),
        };
    let (tools, tool_choice) = tools_of(req)?;
    let params = SamplingParams {
        max_tokens,
        temperature,
        top_p,
        top_k: req.top_k.unwrap_or(0),
        min_p: req.min_p.unwrap_or(0.0),
        repeat_penalty,
        // OpenAI seeds are 64-bit; llama.cpp's are 32-bit: keep the low bits.
        seed: req.seed.map_or(0, |s| s as u32),
        stop,
        ignore_eos: req.ignore_eos,
        cache_prompt: req.cache_prompt.unwrap_or(true),
        sensitive,
        frequency_penalty: req.frequency_penalty.unwrap_or(0.0),
        presence_penalty: req.presence_penalty.unwrap_or(0.0),
        logit_bias,
        response_format,
        logprobs: (req.logprobs == Some(true)).then(|| req.top_logprobs.unwrap_or(0)),
        tools,
        tool_choice,
    };
    params.check_ranges().map_err(|(field, message)| {
        // The penalty is named as the request gave it.
        let field = match field {
            "repeat_penalty" if req.repeat_penalty.is_none() => "repetition_penalty",
            f => f,
        };
        ApiError::invalid(message.replace("repeat_penalty", field), Some(field))
    })?;
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

/// The fields of a request body type `T` (its schema's properties): what the server honours,
/// every other field being a 400 naming it — so the OpenAPI document, the type and this list
/// are one.
pub fn fields_of<T: utoipa::PartialSchema>() -> Vec<String> {
    use utoipa::openapi::{schema::Schema, RefOr};
    match T::schema() {
        RefOr::T(Schema::Object(o)) => o.properties.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The chat request's fields ([`fields_of`] [`ChatCompletionRequest`]), computed once.
pub fn supported_fields() -> &'static [String] {
    static FIELDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    FIELDS.get_or_init(fields_of::<ChatCompletionRequest>)
}

/// The 400 for the first of `unsupported` (the fields a body of type `T` does not have),
/// naming it and the fields `T` has.
///
/// # Errors
/// That 400, when `unsupported` is not empty.
pub fn refuse_unsupported<T: utoipa::PartialSchema>(
    unsupported: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<(), ApiError> {
    match unsupported.keys().next() {
        None => Ok(()),
        Some(name) => Err(ApiError::invalid(
            format!(
                "`{name}` is not supported by this server (supported fields: {})",
                fields_of::<T>().join(", ")
            ),
            Some(name),
        )),
    }
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

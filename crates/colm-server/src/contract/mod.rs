//! The OpenAPI document as served: the document generated from the routes and types
//! ([`crate::openapi`]) plus the rules the server enforces that depend on several fields at
//! once, written as JSON Schema conditionals (OpenAPI 3.1), so that a request the document
//! calls valid is one the server accepts and the other way round (checked by schemathesis in
//! `crates/colm-cli/tests/contract.rs`):
//!
//! - guidance and sessions: `model` is required (a string) unless `mode` is `vote`;
//!   `refs`, `selector`, `aggregate`, `adaptive` and `aggregate_drafts` apply to the reference
//!   modes only (`GuidanceOptions::REFERENCE_ONLY`); `adaptive` needs `aggregate: vote`; a session
//!   does not take `reference-critique`; one-shot guidance needs at least one draft in the
//!   modes that read them and exactly one for `reference-critique`;
//! - `auto_threshold` applies to `mode: auto` only; `screen` not to `vote` and
//!   `reference-critique`; `top_logprobs` needs `logprobs: true`;
//! - a message's `content` may be absent or null only in an assistant turn with `tool_calls`;
//!   a `tool` turn, and only a tool turn, has a `tool_call_id`;
//! - every `query` holds a non-blank character; feedback gives an `outcome` or a `score`;
//! - request bodies take no property the document does not name, at any depth (an unknown
//!   field is a 400 naming its path);
//! - a content part is a `text` part or an `image_url` part; only user turns carry images and
//!   only assistant turns tool calls; `stop` holds up to 4 non-empty strings,
//!   `metadata.sensitive` is `"true"` or `"false"`, `logit_bias` maps token ids to [-100, 100],
//!   tools are functions with names of a-z, A-Z, 0-9, `_`, `-`, `tool_choice` `required` or a
//!   named function needs tools; request integers are `u32`;
//! - per hosted model ([`Capabilities`]): a text-only model takes no image part; a model
//!   whose chat template renders no tools is offered none (or `tool_choice: none`) and gets
//!   no tool turns; `logit_bias` keys are token ids below the model's vocabulary size; a
//!   collaboration takes none of the fields of one decoding (`n` > 1, `logprobs`,
//!   `logit_bias`, `response_format`, `tools`);
//! - a stream has one choice and no `logprobs`;
//! - streamed answers document one event (`data` holding a JSON chunk, an error, or `[DONE]`;
//!   a session's `session`, `guidance` or `error` events);
//! - no string of a request body holds a NUL character (the tokenizers take C strings): every
//!   string schema of a request type says so with a pattern.
//!
//! What no static document can state, and the server answers with a 400: a prompt plus
//! `max_tokens` beyond the model's context (`context_length_exceeded`, naming both sizes), a
//! JSON Schema (`response_format`,
//! tool parameters) the constrained decoder cannot compile, a named `tool_choice` that is not
//! among `tools`, and with `--allow-image-urls` the server also takes `http(s)` image URLs.

use serde_json::{json, Value};

mod rules;
mod schema;

use rules::{guidance_rules, session_rules};
use schema::{
    below, closed, inline_flattened, merge, no_nul, stream_events, unsigned, REQUEST_TYPES,
};
#[cfg(test)]
mod tests;

/// What the hosted models take, by model id: the document's per-model rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Models that read text only (no image parts).
    pub text_only: Vec<String>,
    /// Models whose chat template renders no tools (no tools offered, no tool turns).
    pub without_tools: Vec<String>,
    /// Models with a known vocabulary size (`logit_bias` keys are token ids below it).
    pub vocab: Vec<(String, u32)>,
    /// Collaborations (strategies served as models): fields of one decoding (`n` > 1,
    /// `logprobs`, `logit_bias`, `response_format`, `tools`) do not apply to them.
    pub collaborations: Vec<String>,
    /// Models that continue raw prompts (`POST /v1/completions`).
    pub prompts: Vec<String>,
    /// Embedding models (`POST /v1/embeddings`) and the length of their vectors.
    pub embedders: Vec<(String, usize)>,
}

impl Capabilities {
    /// The capabilities of `models` (id, model).
    pub fn of<'a>(
        models: impl IntoIterator<Item = (&'a String, &'a std::sync::Arc<dyn colm_core::ChatModel>)>,
    ) -> Self {
        let mut caps = Self::default();
        for (id, m) in models {
            if !m.accepts_images() {
                caps.text_only.push(id.clone());
            }
            if m.is_collaboration() {
                caps.collaborations.push(id.clone());
            }
            if let Some(n) = m.vocab_size() {
                caps.vocab.push((id.clone(), n));
            }
            if !m.accepts_tools() {
                caps.without_tools.push(id.clone());
            }
            if m.accepts_prompts() {
                caps.prompts.push(id.clone());
            }
        }
        caps
    }
}

/// The served document: [`crate::openapi`] with the cross-field rules of the module docs,
/// and the per-model rules of `caps`: a chat request for a text-only model carries text
/// parts only; one for a model without tools offers none it may call (absent, empty, or
/// `tool_choice: none`) and holds no tool turns.
pub fn document(caps: &Capabilities) -> Value {
    let mut doc = serde_json::to_value(crate::openapi()).unwrap_or(Value::Null);
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return doc;
    };
    inline_flattened(schemas);
    // A non-blank character, and no NUL.
    let blank_free =
        json!({"type": "string", "minLength": 1, "pattern": "^[^\\u0000]*\\S[^\\u0000]*$"});
    for (name, rules) in [
        ("GuidanceRequest", guidance_rules()),
        ("CreateSession", session_rules()),
    ] {
        if let Some(s) = schemas.get_mut(name).and_then(Value::as_object_mut) {
            s.insert("allOf".into(), rules);
            if let Some(q) = s.get_mut("properties").and_then(|p| p.get_mut("query")) {
                merge(q, &blank_free);
            }
        }
    }
    // Feedback gives an outcome or a score (or both).
    if let Some(s) = schemas
        .get_mut("FeedbackRequest")
        .and_then(Value::as_object_mut)
    {
        s.insert(
            "anyOf".into(),
            json!([
                {"required": ["outcome"], "properties": {"outcome": {"not": {"type": "null"}}}},
                {"required": ["score"], "properties": {"score": {"type": "number"}}}
            ]),
        );
    }
    // top_logprobs needs logprobs.
    if let Some(s) = schemas
        .get_mut("ChatCompletionRequest")
        .and_then(Value::as_object_mut)
    {
        s.insert(
            "if".into(),
            json!({"required": ["top_logprobs"],
                   "properties": {"top_logprobs": {"type": "integer"}}}),
        );
        s.insert(
            "then".into(),
            json!({"required": ["logprobs"], "properties": {"logprobs": {"const": true}}}),
        );
    }
    // Content may be missing only in an assistant turn that calls tools.
    if let Some(s) = schemas
        .get_mut("RequestMessage")
        .and_then(Value::as_object_mut)
    {
        s.insert(
            "if".into(),
            json!({"required": ["role", "tool_calls"],
                   "properties": {"role": {"const": "assistant"},
                                  "tool_calls": {"type": "array", "minItems": 1}}}),
        );
        s.insert(
            "else".into(),
            json!({"required": ["content"], "properties": {"content": {"not": {"type": "null"}}}}),
        );
        // A tool turn, and only a tool turn, names the call it answers.
        s.insert(
            "allOf".into(),
            json!([{"if": {"required": ["role"], "properties": {"role": {"const": "tool"}}},
                    "then": {"required": ["tool_call_id"],
                             "properties": {"tool_call_id": {"type": "string"}}},
                    "else": {"properties": {"tool_call_id": {"type": "null"}}}}]),
        );
    }
    // Server-sent events: the schema of a `text/event-stream` answer is the schema of one event
    // (OpenAPI 3.2's `itemSchema`, as schemathesis reads it), whose `data` is JSON text.
    stream_events(&mut doc);
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return doc;
    };
    // Value rules of single fields the types cannot state.
    let set = |schemas: &mut serde_json::Map<String, Value>, pointer: &str, extra: Value| {
        let mut parts = pointer.splitn(2, '/');
        let name = parts.next().unwrap_or_default();
        let rest = parts.next().map(|r| format!("/{r}")).unwrap_or_default();
        if let Some(target) = schemas.get_mut(name).and_then(|s| s.pointer_mut(&rest)) {
            merge(target, &extra);
        }
    };
    // Stop strings: non-empty, at most 4.
    set(schemas, "Stop/oneOf/0", json!({"minLength": 1}));
    set(
        schemas,
        "Stop/oneOf/1",
        json!({"maxItems": 4, "items": {"type": "string", "minLength": 1}}),
    );
    // `metadata.sensitive` is "true" or "false".
    set(
        schemas,
        "ChatCompletionRequest/properties/metadata",
        json!({"properties": {"sensitive": {"enum": ["true", "false"]}}}),
    );
    // logit_bias: token ids (decimal u32) to a bias in [-100, 100].
    set(
        schemas,
        "ChatCompletionRequest/properties/logit_bias",
        json!({"propertyNames": {"type": "string", "pattern": "^\\+?[0-9]{1,9}$"},
               "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100}}),
    );
    // Tools are functions with names of a-z, A-Z, 0-9, `_`, `-` (1–64).
    set(
        schemas,
        "ToolParam/properties/type",
        json!({"const": "function"}),
    );
    set(
        schemas,
        "FunctionDefinition/properties/name",
        json!({"pattern": "^[a-zA-Z0-9_-]{1,64}$"}),
    );
    // tool_choice: a mode, or a function.
    set(
        schemas,
        "ToolChoiceParam/oneOf/0",
        json!({"enum": ["none", "auto", "required"]}),
    );
    set(
        schemas,
        "ToolChoiceParam/oneOf/1/properties/type",
        json!({"const": "function"}),
    );
    // A content part is a text part or an image part (with nothing else).
    let text_part = json!({"type": "object", "required": ["type", "text"],
        "properties": {"type": {"const": "text"}, "text": {"type": "string"}}});
    let image_part = json!({"type": "object", "required": ["type", "image_url"],
        "properties": {"type": {"const": "image_url"},
                       "image_url": {"$ref": "#/components/schemas/ImageUrl"}}});
    if let Some(part) = schemas.get_mut("ContentPart") {
        let description = part.get("description").cloned();
        *part = json!({"oneOf": [text_part.clone(), image_part]});
        if let (Some(d), Some(p)) = (description, part.as_object_mut()) {
            p.insert("description".into(), d);
        }
    }
    let text_only_content = json!({"properties": {"content": {"anyOf": [
        {"not": {"type": "array"}},
        {"type": "array", "items": text_part}]}}});
    // Only user turns carry images.
    if let Some(rules) = schemas
        .get_mut("RequestMessage")
        .and_then(|s| s.get_mut("allOf"))
        .and_then(Value::as_array_mut)
    {
        rules.push(json!({
            "if": {"required": ["role"], "properties": {"role": {"not": {"const": "user"}}}},
            "then": text_only_content}));
        // Only assistant turns carry tool calls.
        rules.push(json!({
            "if": {"required": ["role"], "properties": {"role": {"not": {"const": "assistant"}}}},
            "then": {"properties": {"tool_calls": {"type": "null"}}}}));
    }
    // What each hosted model takes.
    let for_models = |ids: &[String], then: Value| {
        json!({"if": {"required": ["model"], "properties": {"model": {"enum": ids}}},
               "then": then})
    };
    // `required` or a named function needs tools to call; a stream has one choice and no
    // logprobs.
    let one_choice = json!({"anyOf": [{"type": "null"}, {"maximum": 1}]});
    let no_logprobs = json!({"not": {"const": true}});
    let mut per_model = vec![
        json!({
            "if": {"required": ["tool_choice"], "properties": {"tool_choice": {"anyOf": [
                {"const": "required"}, {"type": "object"}]}}},
            "then": {"required": ["tools"],
                     "properties": {"tools": {"type": "array", "minItems": 1}}}}),
        json!({
            "if": {"required": ["stream"], "properties": {"stream": {"const": true}}},
            "then": {"properties": {"n": one_choice, "logprobs": no_logprobs}}}),
    ];
    if !caps.text_only.is_empty() {
        per_model.push(for_models(
            &caps.text_only,
            json!({"properties": {"messages": {"items": text_only_content}}}),
        ));
    }
    if !caps.without_tools.is_empty() {
        let none_or_empty = json!({"anyOf": [{"type": "null"}, {"type": "array", "maxItems": 0}]});
        per_model.push(for_models(
            &caps.without_tools,
            json!({"anyOf": [
                       {"properties": {"tools": none_or_empty}},
                       {"required": ["tool_choice"], "properties": {"tool_choice": {"const": "none"}}}],
                   "properties": {"messages": {"items": {"properties": {
                       "role": {"not": {"const": "tool"}},
                       "tool_calls": none_or_empty}}}}}),
        ));
    }
    if !caps.collaborations.is_empty() {
        per_model.push(for_models(
            &caps.collaborations,
            json!({"properties": {
                "n": one_choice,
                "logprobs": no_logprobs,
                "logit_bias": {"anyOf": [{"type": "null"}, {"maxProperties": 0}]},
                "response_format": {"anyOf": [{"type": "null"},
                                              {"properties": {"type": {"const": "text"}}}]},
                "tools": {"anyOf": [{"type": "null"}, {"type": "array", "maxItems": 0}]}}}),
        ));
    }
    for (id, n) in &caps.vocab {
        per_model.push(for_models(
            std::slice::from_ref(id),
            json!({"properties": {"logit_bias": {"propertyNames": {
                "pattern": format!("^\\+?0*({})$", below(*n))}}}}),
        ));
    }
    if let Some(s) = schemas
        .get_mut("ChatCompletionRequest")
        .and_then(Value::as_object_mut)
    {
        s.insert("allOf".into(), Value::Array(per_model));
    }
    // The repeat penalty under one name only.
    let one_penalty_name = json!({"not": {"required": ["repeat_penalty", "repetition_penalty"]}});
    if let Some(rules) = schemas
        .get_mut("ChatCompletionRequest")
        .and_then(|s| s.get_mut("allOf"))
        .and_then(Value::as_array_mut)
    {
        rules.push(one_penalty_name.clone());
    }
    // Texts to continue or embed: a non-empty string, or a non-empty list of them (no token
    // ids).
    let texts = |max: usize| {
        json!({"oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "minItems": 1, "maxItems": max,
             "items": {"type": "string", "minLength": 1}}]})
    };
    schemas.insert("PromptInput".into(), texts(1 << 16));
    schemas.insert(
        "EmbeddingInput".into(),
        texts(colm_api::openai::MAX_EMBEDDING_INPUTS),
    );
    // A model that takes it, or none at all (`false`: no request is valid).
    let models_enum = |ids: Vec<&String>| {
        if ids.is_empty() {
            json!({"not": {}})
        } else {
            json!({"type": "string", "enum": ids})
        }
    };
    set(
        schemas,
        "CompletionRequest/properties/model",
        models_enum(caps.prompts.iter().collect()),
    );
    set(
        schemas,
        "CompletionRequest/properties/logit_bias",
        json!({"propertyNames": {"type": "string", "pattern": "^\\+?[0-9]{1,9}$"},
               "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100}}),
    );
    let mut completion_rules = vec![
        one_penalty_name,
        // A stream: one prompt, one choice, no logprobs.
        json!({"if": {"required": ["stream"], "properties": {"stream": {"const": true}}},
               "then": {"properties": {
                   "prompt": {"anyOf": [{"type": "string"}, {"type": "array", "maxItems": 1}]},
                   "n": one_choice, "logprobs": {"type": "null"}}}}),
        // `echo` with `logprobs`: the prompt's own are not computed.
        json!({"if": {"required": ["echo"], "properties": {"echo": {"const": true}}},
               "then": {"properties": {"logprobs": {"type": "null"}}}}),
    ];
    for (id, n) in &caps.vocab {
        completion_rules.push(for_models(
            std::slice::from_ref(id),
            json!({"properties": {"logit_bias": {"propertyNames": {
                "pattern": format!("^\\+?0*({})$", below(*n))}}}}),
        ));
    }
    if let Some(s) = schemas
        .get_mut("CompletionRequest")
        .and_then(Value::as_object_mut)
    {
        s.insert("allOf".into(), Value::Array(completion_rules));
    }
    set(
        schemas,
        "EmbeddingRequest/properties/model",
        models_enum(caps.embedders.iter().map(|(id, _)| id).collect()),
    );
    let dimensions: Vec<Value> = caps
        .embedders
        .iter()
        .map(|(id, d)| {
            json!({"if": {"required": ["model"], "properties": {"model": {"const": id}}},
                   "then": {"properties": {"dimensions": {"anyOf": [
                       {"type": "null"}, {"const": d}]}}}})
        })
        .collect();
    if let Some(s) = schemas
        .get_mut("EmbeddingRequest")
        .and_then(Value::as_object_mut)
    {
        s.insert("allOf".into(), Value::Array(dimensions));
    }
    // Request integers read as u32 (utoipa writes them `int32`, which validators read as signed).
    for name in REQUEST_TYPES {
        if let Some(props) = schemas
            .get_mut(name)
            .and_then(|s| s.get_mut("properties"))
            .and_then(Value::as_object_mut)
        {
            for p in props.values_mut() {
                unsigned(p);
            }
        }
    }
    // No request string holds a NUL character.
    for name in REQUEST_TYPES {
        if let Some(s) = schemas.get_mut(name) {
            no_nul(s);
        }
    }
    // No request object takes a property the document does not name.
    for name in REQUEST_TYPES {
        if let Some(s) = schemas.get_mut(name) {
            closed(s);
        }
    }
    doc
}

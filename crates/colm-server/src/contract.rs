//! The OpenAPI document as served: the document generated from the routes and types
//! ([`crate::openapi`]) plus the rules the server enforces that depend on several fields at
//! once, written as JSON Schema conditionals (OpenAPI 3.1), so that a request the document
//! calls valid is one the server accepts and the other way round (checked by schemathesis in
//! `crates/colm-cli/tests/contract.rs`):
//!
//! - guidance and sessions: `model` is required (a string) unless `mode` is `vote`;
//!   `refs`, `selector` and `aggregate_drafts` apply to the reference modes only; a session
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

use colm_core::named::Named;
use colm_core::options::Mode;
use serde_json::{json, Value};

/// The modes that read drafts only (no references).
fn draft_modes() -> Vec<String> {
    Mode::ALL
        .iter()
        .filter(|m| !m.uses_references())
        .map(Named::name)
        .collect()
}

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

/// `format: uint32` and `maximum: 4294967295` on an `int32` schema with a minimum ≥ 0 and no
/// maximum (a `u32` field).
fn unsigned(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    let non_negative = map
        .get("minimum")
        .and_then(Value::as_f64)
        .is_some_and(|m| m >= 0.0);
    if map.get("format") == Some(&json!("int32")) && non_negative && !map.contains_key("maximum") {
        map.insert("format".into(), json!("uint32"));
        map.insert("maximum".into(), json!(u32::MAX));
    }
}

/// A regular expression (alternatives, no anchors) matching the decimal integers in [0, `n`)
/// written without leading zeros; `n` ≥ 1.
fn below(n: u32) -> String {
    let max: Vec<u32> = (n.saturating_sub(1))
        .to_string()
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    let k = max.len();
    let mut alts = vec!["0".to_owned()];
    // Fewer digits than the maximum.
    if k > 2 {
        alts.push(format!("[1-9][0-9]{{0,{}}}", k - 2));
    } else if k == 2 {
        alts.push("[1-9]".to_owned());
    }
    // As many digits: the maximum's first i digits, then a smaller digit, then any.
    for i in 0..k {
        let low = u32::from(i == 0);
        if max[i] > low {
            let prefix: String = max[..i].iter().map(u32::to_string).collect();
            let digit = if max[i] - 1 == low {
                low.to_string()
            } else {
                format!("[{low}-{}]", max[i] - 1)
            };
            let rest = k - i - 1;
            let tail = if rest > 0 {
                format!("[0-9]{{{rest}}}")
            } else {
                String::new()
            };
            alts.push(format!("{prefix}{digit}{tail}"));
        }
    }
    if max != [0] {
        alts.push(max.iter().map(u32::to_string).collect());
    }
    alts.join("|")
}

/// JSON text of the schema `name` in an event's `data`.
fn json_data(name: &str) -> Value {
    json!({"type": "string", "contentMediaType": "application/json",
           "contentSchema": {"$ref": format!("#/components/schemas/{name}")}})
}

/// The events of the two streams: a chat stream sends `ChatCompletionChunk`s (or an
/// `ErrorBody` when the model fails mid-answer) and ends with `data: [DONE]`; a session's
/// guidance stream sends a `session` event (the `SessionObject`), then `guidance`
/// (`GuidanceResponse`) or `error` (`ErrorBody`).
fn stream_events(doc: &mut Value) {
    let chat = json!({
        "type": "object", "required": ["data"],
        "description": "One server-sent event: `data` is a JSON `ChatCompletionChunk` (or an \
                        `ErrorBody` when the model fails mid-answer); the last is `[DONE]`.",
        "properties": {"data": {"type": "string"}},
        "if": {"properties": {"data": {"const": "[DONE]"}}},
        "else": {"properties": {"data": {"anyOf": [
            json_data("ChatCompletionChunk"), json_data("ErrorBody")]}}}});
    let session = json!({
        "type": "object", "required": ["event", "data"],
        "description": "One server-sent event: `session` (a `SessionObject`), then `guidance` \
                        (a `GuidanceResponse`) or `error` (an `ErrorBody`).",
        "oneOf": [
            {"properties": {"event": {"const": "session"}, "data": json_data("SessionObject")}},
            {"properties": {"event": {"const": "guidance"}, "data": json_data("GuidanceResponse")}},
            {"properties": {"event": {"const": "error"}, "data": json_data("ErrorBody")}}]});
    for (pointer, event) in [
        ("/paths/~1v1~1chat~1completions/post/responses/200/content/text~1event-stream", chat),
        (
            "/paths/~1v1~1colm~1sessions~1{id}~1guidance/get/responses/200/content/text~1event-stream",
            session,
        ),
    ] {
        if let Some(content) = doc.pointer_mut(pointer).and_then(Value::as_object_mut) {
            content.insert("schema".into(), event);
        }
    }
}

/// The request types that flatten another (`#[serde(flatten)]`, which utoipa writes as
/// `allOf` of a `$ref` and the type's own object) written as one object holding the properties
/// and requirements of both, so that the document can close it (`additionalProperties: false`)
/// and add its own rules.
fn inline_flattened(schemas: &mut serde_json::Map<String, Value>) {
    let names: Vec<String> = schemas.keys().cloned().collect();
    for name in names {
        let Some(parts) = schemas
            .get(&name)
            .and_then(|s| s.get("allOf"))
            .and_then(Value::as_array)
            .cloned()
        else {
            continue;
        };
        let mut properties = serde_json::Map::new();
        let mut required: Vec<Value> = Vec::new();
        for part in &parts {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(r) => match r
                    .strip_prefix("#/components/schemas/")
                    .and_then(|n| schemas.get(n))
                {
                    Some(s) => s.clone(),
                    None => continue,
                },
                None => part.clone(),
            };
            if let Some(p) = part.get("properties").and_then(Value::as_object) {
                properties.extend(p.clone());
            }
            if let Some(r) = part.get("required").and_then(Value::as_array) {
                required.extend(r.iter().cloned());
            }
        }
        if let Some(s) = schemas.get_mut(&name).and_then(Value::as_object_mut) {
            s.remove("allOf");
            s.insert("type".into(), json!("object"));
            s.insert("properties".into(), Value::Object(properties));
            if !required.is_empty() {
                s.insert("required".into(), Value::Array(required));
            }
        }
    }
}

/// `additionalProperties: false` on `schema` if it is an object schema with properties, and on
/// each such variant of its `oneOf`.
fn closed(schema: &mut Value) {
    if let Some(variants) = schema.get_mut("oneOf").and_then(Value::as_array_mut) {
        variants.iter_mut().for_each(closed);
    }
    if let Some(map) = schema.as_object_mut() {
        if map.contains_key("properties") {
            map.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
}

/// The request body types and every type they use.
const REQUEST_TYPES: [&str; 19] = [
    "ChatCompletionRequest",
    "RequestMessage",
    "Content",
    "ContentPart",
    "ImageUrl",
    "ToolCallObject",
    "FunctionCall",
    "ToolParam",
    "FunctionDefinition",
    "ToolChoiceParam",
    "NamedFunction",
    "StreamOptions",
    "ResponseFormatParam",
    "JsonSchemaFormat",
    "Stop",
    "GuidanceRequest",
    "CreateSession",
    "SubmitDraft",
    "FeedbackRequest",
];

/// Adds the no-NUL pattern to every string schema in `schema` (properties, items, variants).
fn no_nul(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let is_string = match map.get("type") {
                Some(Value::String(t)) => t == "string",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
                _ => false,
            };
            if is_string && !map.contains_key("enum") && !map.contains_key("pattern") {
                map.insert("pattern".into(), Value::String("^[^\\u0000]*$".into()));
            }
            for v in map.values_mut() {
                no_nul(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(no_nul),
        _ => {}
    }
}

/// `extra`'s keys set on `target` (an object).
fn merge(target: &mut Value, extra: &Value) {
    if let (Some(t), Some(e)) = (target.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            t.insert(k.clone(), v.clone());
        }
    }
}

/// `mode` present and one of `modes`.
fn mode_in<S: serde::Serialize>(modes: &[S]) -> Value {
    json!({"required": ["mode"], "properties": {"mode": {"enum": modes}}})
}

/// The rules both guidance requests and sessions follow.
fn common_rules() -> Vec<Value> {
    vec![
        // `model` is required unless voting (`auto` may synthesise).
        json!({"if": mode_in(&["vote"]),
               "else": {"required": ["model"], "properties": {"model": {"type": "string"}}}}),
        // The agreement threshold applies to `auto` only.
        json!({"if": {"not": mode_in(&["auto"])},
               "then": {"properties": {"auto_threshold": {"type": "null"}}}}),
        // A screen applies where a model reads a pool of drafts.
        json!({"if": mode_in(&["vote", "reference-critique"]),
               "then": {"properties": {"screen": {"type": "null"}}}}),
        // Reference options apply to the reference modes only.
        json!({"if": mode_in(&draft_modes()),
               "then": {"properties": {
                   "refs": {"type": "null"},
                   "selector": {"type": "null"},
                   "aggregate_drafts": {"type": "null"}}}}),
    ]
}

fn guidance_rules() -> Value {
    let mut rules = common_rules();
    let some_draft = json!({"required": ["drafts"], "properties": {"drafts": {"minItems": 1}}});
    // The modes that read drafts need one at least.
    rules.push(json!({"if": mode_in(&draft_modes()), "then": some_draft}));
    // reference-critique reviews exactly one.
    rules.push(json!({"if": mode_in(&["reference-critique"]),
        "then": {"required": ["drafts"], "properties": {"drafts": {"minItems": 1, "maxItems": 1}}}}));
    // In the reference modes, rounds ≥ 2 and aggregate_drafts read the drafts too.
    rules.push(json!({"if": {"anyOf": [
            {"required": ["round"], "properties": {"round": {"type": "integer", "minimum": 2}}},
            {"required": ["aggregate_drafts"], "properties": {"aggregate_drafts": {"const": true}}}]},
        "then": some_draft}));
    Value::Array(rules)
}

fn session_rules() -> Value {
    let mut rules = common_rules();
    rules.push(json!({"not": mode_in(&["reference-critique"])}));
    Value::Array(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ranges_are_exact() {
        for n in [1u32, 2, 9, 10, 11, 100, 101, 262_144, 151_936, 1_000_000] {
            let re = regex::Regex::new(&format!("^\\+?0*({})$", below(n))).unwrap();
            for v in (0..n.min(2000)).chain(n.saturating_sub(2000)..n) {
                assert!(re.is_match(&v.to_string()), "{v} < {n}");
            }
            for v in [n, n + 1, n * 10, u32::MAX] {
                assert!(!re.is_match(&v.to_string()), "{v} ≥ {n}");
            }
            assert!(re.is_match("+00"));
        }
    }

    #[test]
    fn the_served_document_states_the_cross_field_rules() {
        let caps = Capabilities {
            text_only: vec!["qwen".into()],
            without_tools: vec!["gemma".into()],
            vocab: vec![("gemma".into(), 262_144)],
            collaborations: vec!["colm".into()],
        };
        let doc = document(&caps);
        let schema = |name: &str| doc["components"]["schemas"][name].clone();
        let guidance = schema("GuidanceRequest");
        let rules = guidance["allOf"].as_array().unwrap();
        // `model` is required unless voting.
        assert!(rules
            .iter()
            .any(|r| r["if"]["properties"]["mode"]["enum"] == json!(["vote"])
                && r["else"]["required"] == json!(["model"])));
        assert!(schema("CreateSession")["allOf"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["not"]["properties"]["mode"]["enum"] == json!(["reference-critique"])));
        let query = &guidance["properties"]["query"];
        assert_eq!(query["minLength"], 1);
        assert!(query["pattern"].as_str().unwrap().contains("\\S"));
        assert_eq!(
            schema("ChatCompletionRequest")["additionalProperties"],
            false
        );
        // Nested request objects are closed too, the variants of a tagged union included.
        for name in ["ImageUrl", "ToolCallObject", "StreamOptions"] {
            assert_eq!(schema(name)["additionalProperties"], false, "{name}");
        }
        for (name, n) in [("ResponseFormatParam", 3), ("ContentPart", 2)] {
            let variants = schema(name)["oneOf"].as_array().unwrap().clone();
            assert_eq!(variants.len(), n);
            assert!(variants.iter().all(|v| v["additionalProperties"] == false));
        }
        // Per-model rules: the text-only model takes no image part, the model without a
        // tools template no tool.
        let per_model = schema("ChatCompletionRequest")["allOf"].clone();
        assert_eq!(
            per_model[2]["if"]["properties"]["model"]["enum"],
            json!(["qwen"])
        );
        assert!(per_model[2]["then"]
            .to_string()
            .contains("\"const\":\"text\""));
        assert_eq!(
            per_model[3]["if"]["properties"]["model"]["enum"],
            json!(["gemma"])
        );
        assert!(per_model[3]["then"]
            .to_string()
            .contains("\"const\":\"tool\""));
        assert_eq!(
            document(&Capabilities::default())["components"]["schemas"]["ChatCompletionRequest"]
                ["allOf"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(schema("Stop")["oneOf"][1]["maxItems"], 4);
        assert_eq!(
            per_model[4]["if"]["properties"]["model"]["enum"],
            json!(["colm"])
        );
        assert_eq!(per_model[1]["if"]["properties"]["stream"]["const"], true);
        assert!(
            per_model[5]["then"]["properties"]["logit_bias"]["propertyNames"]["pattern"]
                .as_str()
                .unwrap()
                .contains("26214[0-2]|262143")
        );
        assert_eq!(guidance["properties"]["round"]["maximum"], u32::MAX);
        assert_eq!(
            schema("ImageUrl")["properties"]["detail"]["enum"],
            json!(["auto", null])
        );
        assert_eq!(
            schema("RequestMessage")["else"]["required"],
            json!(["content"])
        );
        assert_eq!(
            schema("SubmitDraft")["properties"]["draft"]["pattern"],
            "^[^\\u0000]*$"
        );
    }
}

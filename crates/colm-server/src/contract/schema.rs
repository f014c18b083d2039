//! Rewrites of the generated JSON Schemas that hold for every request type: integers as
//! `u32`, closed objects, no NUL in strings, flattened parts inlined, streamed events.

use serde_json::{json, Value};

/// `format: uint32` and `maximum: 4294967295` on an `int32` schema with a minimum ≥ 0 and no
/// maximum (a `u32` field).
pub(super) fn unsigned(schema: &mut Value) {
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
pub(super) fn below(n: u32) -> String {
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
pub(super) fn json_data(name: &str) -> Value {
    json!({"type": "string", "contentMediaType": "application/json",
           "contentSchema": {"$ref": format!("#/components/schemas/{name}")}})
}

/// The events of the two streams: a chat stream sends `ChatCompletionChunk`s (or an
/// `ErrorBody` when the model fails mid-answer) and ends with `data: [DONE]`; a session's
/// guidance stream sends a `session` event (the `SessionObject`), then `guidance`
/// (`GuidanceResponse`) or `error` (`ErrorBody`).
pub(super) fn stream_events(doc: &mut Value) {
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
pub(super) fn inline_flattened(schemas: &mut serde_json::Map<String, Value>) {
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
pub(super) fn closed(schema: &mut Value) {
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
pub(super) const REQUEST_TYPES: [&str; 23] = [
    "ChatCompletionRequest",
    "CompletionRequest",
    "PromptInput",
    "EmbeddingRequest",
    "EmbeddingInput",
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
pub(super) fn no_nul(schema: &mut Value) {
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
pub(super) fn merge(target: &mut Value, extra: &Value) {
    if let (Some(t), Some(e)) = (target.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            t.insert(k.clone(), v.clone());
        }
    }
}

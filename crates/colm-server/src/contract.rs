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
//! - `auto_threshold` applies to `mode: auto` only; `top_logprobs` needs `logprobs: true`;
//! - a message's `content` may be absent or null only in an assistant turn with `tool_calls`;
//!   a `tool` turn, and only a tool turn, has a `tool_call_id`;
//! - every `query` holds a non-blank character;
//! - request bodies take no property the document does not name (an unknown field is a 400
//!   naming it);
//! - no string of a request body holds a NUL character (the tokenizers take C strings): every
//!   string schema of a request type says so with a pattern.

use serde_json::{json, Value};

/// The modes that read drafts only (no references).
const DRAFT_MODES: [&str; 4] = ["synthesis", "critique", "vote", "auto"];

/// The served document: [`crate::openapi`] with the cross-field rules of the module docs.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(crate::openapi()).unwrap_or(Value::Null);
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return doc;
    };
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
    // No request string holds a NUL character.
    for name in REQUEST_TYPES {
        if let Some(s) = schemas.get_mut(name) {
            no_nul(s);
        }
    }
    // The request types that collect unknown fields to refuse them by name take none.
    for name in ["ChatCompletionRequest", "RequestMessage"] {
        if let Some(s) = schemas.get_mut(name).and_then(Value::as_object_mut) {
            s.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
    doc
}

/// The request body types and every type they use.
const REQUEST_TYPES: [&str; 18] = [
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
fn mode_in(modes: &[&str]) -> Value {
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
        // Reference options apply to the reference modes only.
        json!({"if": mode_in(&DRAFT_MODES),
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
    rules.push(json!({"if": mode_in(&DRAFT_MODES), "then": some_draft}));
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
    fn the_served_document_states_the_cross_field_rules() {
        let doc = document();
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

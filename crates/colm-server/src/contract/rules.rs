//! The conditional rules of the guidance and session bodies (which options apply to which
//! modes), as JSON Schema `if`/`then`.

use colm_core::named::Named;
use colm_core::options::GuidanceOptions;
use colm_core::options::Mode;
use serde_json::{json, Value};

/// The modes that read drafts only (no references).
pub(super) fn draft_modes() -> Vec<String> {
    Mode::ALL
        .iter()
        .filter(|m| !m.uses_references())
        .map(Named::name)
        .collect()
}

/// `mode` present and one of `modes`.
pub(super) fn mode_in<S: serde::Serialize>(modes: &[S]) -> Value {
    json!({"required": ["mode"], "properties": {"mode": {"enum": modes}}})
}

/// The rules both guidance requests and sessions follow.
pub(super) fn common_rules() -> Vec<Value> {
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
        // Adaptive sampling stops on a vote: it needs `aggregate: vote`.
        json!({"if": {"required": ["adaptive"], "properties": {"adaptive": {"type": "number"}}},
               "then": {"required": ["aggregate"], "properties": {"aggregate": {"const": "vote"}}}}),
        // Reference options apply to the reference modes only.
        json!({"if": mode_in(&draft_modes()),
               "then": {"properties": GuidanceOptions::REFERENCE_ONLY
                   .iter()
                   .map(|f| ((*f).to_owned(), json!({"type": "null"})))
                   .collect::<serde_json::Map<_, _>>()}}),
    ]
}

pub(super) fn guidance_rules() -> Value {
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

pub(super) fn session_rules() -> Value {
    let mut rules = common_rules();
    rules.push(json!({"not": mode_in(&["reference-critique"])}));
    Value::Array(rules)
}

//! Tests of the chat API's request checks and conversions.

use super::*;
use crate::body::parse_json;
use crate::images::ImageLimits;
use axum::http::StatusCode;
use colm_core::{ChatMessage, ResponseFormat, Role, ToolChoice};
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
    let r: ChatCompletionRequest = parse_json(call(f, json!({})).to_string().as_bytes()).unwrap();
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
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0}),
            "max_completion_tokens",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "max_completion_tokens": 0}),
            "max_completion_tokens",
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
            json!({"model": "m", "messages": [{"role": "user", "content": "x", "refusal": "no"}]}),
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
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "min_p": 1.5}),
            "min_p",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "repeat_penalty": 0}),
            "repeat_penalty",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "repetition_penalty": 11}),
            "repetition_penalty",
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

//! The server's tests as a whole: every documented operation is served, other names reach
//! their hosted model, the documented limits are the enforced ones, each kind of body
//! conforms to the document.

use super::*;
use colm_api::collab::{CreateSession, GuidanceRequest, SubmitDraft};
use colm_api::openai::{ChatCompletionRequest, ErrorBody};
use serde_json::{json, Value};

/// A model that answers with its name (the state's lookups only read names).
struct Named(&'static str);

#[async_trait::async_trait]
impl ChatModel for Named {
    fn name(&self) -> &str {
        self.0
    }
    async fn chat(
        &self,
        _: &[colm_core::ChatMessage],
        _: &colm_core::SamplingParams,
    ) -> Result<colm_core::Completion, colm_core::ModelError> {
        Ok(colm_core::Completion::text_only(self.0))
    }
}

/// Validates `instance` against the document's schema `name` (OpenAPI 3.1 schemas are JSON
/// Schema 2020-12); returns the errors.
fn check(doc: &Value, name: &str, instance: &Value) -> Vec<String> {
    let schema = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"],
    });
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator
        .iter_errors(instance)
        .map(|e| format!("{name}: {e} at {}", e.instance_path))
        .collect()
}

/// Every operation of the generated document is served by [`router`] (neither the
/// fallback's 404 nor a 405), and the error each answers conforms to `ErrorBody`. The
/// reverse holds by construction: [`routes`] registers routes only through `routes!`,
/// which takes them from their annotations.
#[tokio::test]
async fn every_documented_operation_is_served() {
    let doc = serde_json::to_value(openapi()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(AppState::new([], ServerConfig::default()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let url = format!("http://{addr}{}", path.replace("{id}", "sess_unknown"));
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let mut req = http.request(method.clone(), &url);
            if method == reqwest::Method::POST {
                req = req.json(&json!({}));
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path}: documented, not served");
            assert!(
                !body.contains("no route for"),
                "{method} {path}: documented, not served"
            );
            if status >= 400 {
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(check(&doc, "ErrorBody", &v), Vec::<String>::new(), "{path}");
                let documented = &item[method.as_str().to_lowercase()]["responses"];
                assert!(
                    documented.get(status.to_string()).is_some(),
                    "{method} {path}: {status} undocumented"
                );
            }
            operations.push(format!("{method} {path}"));
        }
    }
    assert_eq!(operations.len(), 15, "{operations:?}");
    let r = http
        .get(format!("http://{addr}/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "an undocumented path is not served");
}

/// A hosted model answers to its other names, which are not listed and never shadow a
/// hosted id.
#[test]
fn other_names_reach_their_hosted_model() {
    let small: Arc<dyn ChatModel> = Arc::new(Named("qwen-0.5b"));
    let big: Arc<dyn ChatModel> = Arc::new(Named("qwen-1.5b"));
    let state = AppState::new(
        [("small".to_owned(), small), ("big".to_owned(), big)],
        ServerConfig::default(),
    )
    .with_other_names([
        ("qwen-0.5b".to_owned(), "small".to_owned()),
        ("big".to_owned(), "small".to_owned()),
        ("ghost".to_owned(), "nowhere".to_owned()),
    ])
    .unwrap();
    assert_eq!(state.model("qwen-0.5b").unwrap().name(), "qwen-0.5b");
    assert_eq!(state.model("big").unwrap().name(), "qwen-1.5b");
    assert!(state.model("ghost").is_none());
    assert_eq!(state.hosted_id("qwen-0.5b").as_deref(), Some("small"));
    assert_eq!(state.hosted_id("big").as_deref(), Some("big"));
    assert_eq!(state.hosted_id("ghost"), None);
    assert_eq!(state.model_ids(), ["big", "small"]);
    let shared = state.clone();
    assert!(state.with_other_names([]).is_err());
    drop(shared);
}

/// The limits the document states are the ones the server enforces (utoipa takes only
/// literals, so the constants are checked here).
#[test]
fn documented_limits_are_the_enforced_ones() {
    let doc = contract::document(&contract::Capabilities::default());
    let schema =
        |name: &str, field: &str| doc["components"]["schemas"][name]["properties"][field].clone();
    assert_eq!(
        schema("GuidanceRequest", "drafts")["maxItems"],
        collab::MAX_DRAFTS
    );
    assert_eq!(
        schema("GuidanceRequest", "refs")["maximum"],
        collab::MAX_REFS
    );
    assert_eq!(schema("CreateSession", "refs")["maximum"], collab::MAX_REFS);
    assert_eq!(schema("CreateSession", "k")["maximum"], collab::MAX_DRAFTS);
    assert_eq!(
        schema("CreateSession", "window_ms")["maximum"],
        sessions::MAX_WINDOW_MS
    );
    let wait = doc["paths"]["/v1/colm/sessions/{id}/guidance"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "wait_ms")
        .unwrap()
        .clone();
    assert_eq!(wait["schema"]["maximum"], sessions::MAX_WAIT_MS);
    assert_eq!(
        schema("ChatCompletionRequest", "n")["maximum"],
        openai::MAX_N
    );
    assert_eq!(
        schema("ChatCompletionRequest", "top_logprobs")["maximum"],
        colm_core::MAX_TOP_LOGPROBS
    );
}

/// A request and a response of each kind, serialised from the wire types, conform to the
/// document; requests missing what the server requires do not.
#[test]
fn each_kind_of_body_conforms_to_the_document() {
    let doc = serde_json::to_value(openapi()).unwrap();
    let messages = [colm_core::ChatMessage::user("What is 2 + 2?")];
    let mut chat = ChatCompletionRequest::new("qwen", &messages);
    chat.max_tokens = Some(64);
    chat.metadata = Some([("sensitive".to_owned(), "true".to_owned())].into());
    let guidance = GuidanceRequest {
        model: Some("qwen".into()),
        query: "What is 2 + 2?".into(),
        drafts: vec!["4".into()],
        options: colm_core::options::GuidanceOptions {
            mode: Some(colm_core::options::Mode::Synthesis),
            ..Default::default()
        },
        ..GuidanceRequest::default()
    };
    let session = CreateSession {
        query: "What is 2 + 2?".into(),
        k: Some(2),
        ..CreateSession::default()
    };
    let draft = SubmitDraft {
        draft: "4".into(),
        client: Some("phone".into()),
    };
    let c = colm_core::Completion::text_only("4");
    let completion = colm_api::ChatCompletion::new("chatcmpl-1".into(), 1, "qwen".into(), &c);
    let answer = colm_api::GuidanceResponse {
        trigger: Some(colm_api::Trigger::K),
        ..colm_api::GuidanceResponse::new(1, "synthesis", Some("qwen".into()), "4".into())
    };
    let error = ErrorBody {
        error: colm_api::ErrorObject {
            message: "m".into(),
            kind: "invalid_request_error".into(),
            param: None,
            code: None,
        },
    };
    let models = colm_api::ModelList::new(
        [
            ("qwen".to_owned(), None),
            (
                "colm".to_owned(),
                Some(colm_api::openai::ModelExtension {
                    strategy: Some("colm".to_owned()),
                    dimensions: None,
                }),
            ),
        ],
        1,
    );
    for (name, v) in [
        (
            "ChatCompletionRequest",
            serde_json::to_value(&chat).unwrap(),
        ),
        ("GuidanceRequest", serde_json::to_value(&guidance).unwrap()),
        ("CreateSession", serde_json::to_value(&session).unwrap()),
        ("SubmitDraft", serde_json::to_value(&draft).unwrap()),
        ("ChatCompletion", serde_json::to_value(&completion).unwrap()),
        ("GuidanceResponse", serde_json::to_value(&answer).unwrap()),
        ("ErrorBody", serde_json::to_value(&error).unwrap()),
        ("ModelList", serde_json::to_value(&models).unwrap()),
        // What the server accepts as "not given".
        (
            "GuidanceRequest",
            json!({"query": "q", "mode": null, "selector": null}),
        ),
    ] {
        assert_eq!(check(&doc, name, &v), Vec::<String>::new());
    }
    for (name, bad) in [
        ("GuidanceRequest", json!({"model": "qwen"})),
        ("GuidanceRequest", json!({"query": "q", "mode": "shout"})),
        (
            "GuidanceRequest",
            json!({"query": "q", "selector": "random"}),
        ),
        ("GuidanceRequest", json!({"query": ""})),
        ("CreateSession", json!({"query": "q", "k": 0})),
        (
            "ChatCompletionRequest",
            json!({"model": "m", "messages": []}),
        ),
        (
            "ChatCompletionRequest",
            json!({"model": "m", "messages": [], "temperature": 3}),
        ),
    ] {
        assert!(!check(&doc, name, &bad).is_empty(), "{name} accepted {bad}");
    }
}

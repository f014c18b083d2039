//! The interaction log of `colm serve --interaction-log` with a real model (gemma-3-270m) on a
//! real GSM8K question, in SQLite and in a real PostgreSQL server: every collaboration served
//! gets a record id and one record (a model call that failed too, with its error), sensitive
//! requests keep no texts, and feedback attaches to the record of the tenant that made the
//! request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use serde_json::{json, Value};

const MODEL: &str = "gemma-3-270m";

async fn post(client: &reqwest::Client, url: &str, body: Value) -> (u16, String, Value) {
    let r = client.post(url).json(&body).send().await.unwrap();
    let id = r
        .headers()
        .get("x-colm-record-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        id,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn every_collaboration_is_logged_once_with_feedback_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.sqlite");
    logs_every_collaboration(log.to_str().unwrap()).await;
}

#[tokio::test]
async fn every_collaboration_is_logged_once_with_feedback_in_postgres() {
    let pg = colm_test_support::LocalPostgres::start().await.unwrap();
    logs_every_collaboration(&pg.url).await;
}

async fn logs_every_collaboration(target: &str) {
    // The served cascades keep sensitive queries on the device.
    let router = std::env::temp_dir().join(format!("colm-log-router-{}.toml", std::process::id()));
    std::fs::write(&router, "[router]\nresidency = \"local\"\n").unwrap();
    let serve = common::start(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--model",
        MODEL,
        // A virtual model whose drafts all stay local (one call).
        "--colm-client",
        MODEL,
        "--colm-server",
        MODEL,
        "--colm-strategy",
        "cheap=cascade:tau=-100,to=remote",
        // … and one that escalates every query it may.
        "--colm-strategy",
        "private=cascade:tau=0,to=remote",
        "--router",
        router.to_str().unwrap(),
        "--interaction-log",
        target,
    ]);
    let base = &serve.base;
    let client = reqwest::Client::new();
    let q = "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and \
             bakes muffins for her friends every day with four. She sells the remainder at the \
             farmers' market daily for $2 per fresh duck egg. How much in dollars does she make \
             every day at the farmers' market?";
    let chat = format!("{base}/v1/chat/completions");
    let (status, plain_id, plain) = post(
        &client,
        &chat,
        json!({"model": MODEL, "max_tokens": 24, "messages": [{"role": "user", "content": q}]}),
    )
    .await;
    assert_eq!(status, 200, "{plain}");
    assert!(
        plain_id.starts_with("rec_") && plain_id.len() == 36,
        "{plain_id}"
    );
    let (status, streamed_id, _) = post(
        &client,
        &chat,
        json!({"model": MODEL, "max_tokens": 24, "stream": true,
               "messages": [{"role": "user", "content": q}]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, secret_id, _) = post(
        &client,
        &chat,
        json!({"model": MODEL, "max_tokens": 8, "metadata": {"sensitive": "true"},
               "messages": [{"role": "user", "content": "My card is 4111 1111 1111 1111."}]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, vote_id, vote) = post(
        &client,
        &format!("{base}/v1/colm/guidance"),
        json!({"query": q, "mode": "vote", "drafts": ["#### 18", "The answer is 18", "#### 20"]}),
    )
    .await;
    assert_eq!(status, 200, "{vote}");
    let (status, cascade_id, cascade) = post(
        &client,
        &chat,
        json!({"model": "cheap", "max_tokens": 16, "messages": [{"role": "user", "content": q}]}),
    )
    .await;
    assert_eq!(status, 200, "{cascade}");
    let (status, private_id, private) = post(
        &client,
        &chat,
        json!({"model": "private", "max_tokens": 8, "metadata": {"sensitive": "true"},
               "messages": [{"role": "user", "content": "My card is 4111 1111 1111 1111."}]}),
    )
    .await;
    assert_eq!(status, 200, "{private}");
    assert_eq!(private["colm"]["residency"], "local", "{private}");
    // A prompt the model's context cannot hold: refused by the model (a 400 naming the
    // sizes), recorded with the error, streamed or not.
    let long = "egg ".repeat(20_000);
    let mut overflow_ids = Vec::new();
    for stream in [false, true] {
        let (status, id, e) = post(
            &client,
            &chat,
            json!({"model": MODEL, "max_tokens": 8, "stream": stream,
                   "messages": [{"role": "user", "content": long}]}),
        )
        .await;
        assert_eq!(status, 400, "{e}");
        assert_eq!(e["error"]["code"], "context_length_exceeded", "{e}");
        overflow_ids.push(id);
    }
    // A request that serves nothing (a 400 before any model call) gets an id but no record.
    let (status, bad_id, _) = post(&client, &chat, json!({"model": MODEL})).await;
    assert_eq!(status, 400);
    assert!(bad_id.starts_with("rec_"));

    let feedback = format!("{base}/v1/colm/feedback");
    let (status, _, f) = post(
        &client,
        &feedback,
        json!({"record_id": plain_id, "outcome": "right"}),
    )
    .await;
    assert_eq!(status, 200, "{f}");
    assert_eq!(f["object"], "colm.feedback");
    let (status, _, _) = post(
        &client,
        &feedback,
        json!({"record_id": streamed_id, "outcome": "wrong", "score": 0.25}),
    )
    .await;
    assert_eq!(status, 200);
    for (body, want) in [
        (json!({"record_id": bad_id, "outcome": "right"}), 404),
        (json!({"record_id": "rec_x", "outcome": "right"}), 404),
        (json!({"record_id": plain_id}), 400),
        (json!({"record_id": plain_id, "score": 1.5}), 400),
        (json!({"record_id": plain_id, "outcome": "maybe"}), 400),
    ] {
        let (status, _, e) = post(&client, &feedback, body.clone()).await;
        assert_eq!(status, want, "{body}: {e}");
        assert!(e["error"]["message"].is_string(), "{e}");
    }

    let records = colm_server::log::InteractionLog::open_target(target, true)
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap();
    let find = |id: &str| records.iter().find(|(r, _)| r.id == id).cloned();
    assert_eq!(records.len(), 8, "{records:#?}");
    let (r, f) = find(&plain_id).unwrap();
    assert_eq!((r.route.as_str(), r.status), ("/v1/chat/completions", 200));
    assert_eq!(
        (r.model.as_deref(), r.strategy.as_deref()),
        (Some(MODEL), Some("model"))
    );
    assert!(r.prompt_tokens > 20 && r.completion_tokens > 0, "{r:?}");
    assert!(
        r.mean_logprob.is_some() && r.latency_ms > 0.0 && r.bytes_in > 100,
        "{r:?}"
    );
    assert!(r.bytes_out > 100, "{r:?}");
    assert_eq!(r.query.as_deref(), Some(q));
    assert_eq!(
        r.answer.as_deref(),
        plain["choices"][0]["message"]["content"].as_str()
    );
    assert_eq!(f.outcome.as_deref(), Some("right"));
    let (r, f) = find(&streamed_id).unwrap();
    assert!(r.completion_tokens > 0 && !r.answer.unwrap().is_empty());
    assert_eq!((f.outcome.as_deref(), f.score), (Some("wrong"), Some(0.25)));
    let (r, _) = find(&secret_id).unwrap();
    assert!(
        r.sensitive && r.query.is_none() && r.answer.is_none(),
        "{r:?}"
    );
    let (r, _) = find(&vote_id).unwrap();
    assert_eq!(r.strategy.as_deref(), Some("guidance:vote"));
    assert_eq!(r.answer.as_deref(), vote["guidance"].as_str());
    // A virtual model's record names its strategy by its canonical text.
    let (r, _) = find(&cascade_id).unwrap();
    assert_eq!(
        (r.model.as_deref(), r.strategy.as_deref()),
        (Some("cheap"), Some("cascade:tau=-100")),
        "{r:?}"
    );
    // … and where its router answered the query.
    assert_eq!(r.routed.as_deref(), Some("local"), "{r:?}");
    assert_eq!(cascade["colm"]["route"], "local", "{cascade}");
    for id in &overflow_ids {
        let (r, _) = find(id).unwrap();
        assert_eq!((r.status, r.model.as_deref()), (400, Some(MODEL)), "{r:?}");
        assert_eq!(r.query.as_deref(), Some(long.as_str()));
        let error = r.error.unwrap_or_default();
        assert!(error.contains("context"), "{error}");
        assert!(r.answer.is_none() && r.completion_tokens == 0);
    }
    assert_eq!(find(&plain_id).unwrap().0.routed, None);
    // What residency did with a sensitive query is kept (its texts are not).
    let (r, _) = find(&private_id).unwrap();
    assert_eq!(
        (r.residency, r.routed.as_deref(), r.query.as_ref()),
        (
            Some(colm_core::ResidencyOutcome::Local),
            Some("local"),
            None
        ),
        "{r:?}"
    );
    assert_eq!(find(&cascade_id).unwrap().0.residency, None);
    // The answers that did not fail carry no error.
    assert!(records
        .iter()
        .filter(|(r, _)| !overflow_ids.contains(&r.id))
        .all(|(r, _)| r.error.is_none()));
}

//! Two `colm serve` replicas sharing state in a real `redis-server` (`--state`), serving a
//! real model (gemma-3-270m) on real GSM8K questions: a session lives across replicas, shared
//! references are computed once per question for all replicas, and a replica killed while it
//! aggregates a session loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use colm_server::state::RedisState;
use colm_test_support::LocalRedis;
use common::{get_text, metric};
use serde_json::{json, Value};

const MODEL: &str = "gemma-3-270m";

/// `colm serve` of `MODEL` on one thread, on a random loopback port, with `extra` arguments.
fn serve(extra: &[&str]) -> common::Proc {
    let mut args = vec![
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--model",
        MODEL,
        "--threads",
        "1",
    ];
    args.extend_from_slice(extra);
    common::start(&args)
}

fn replica(redis: &str) -> common::Proc {
    serve(&["--state", redis, "--share-ttl", "600"])
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let r = client.post(url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = client.get(url).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The first `n` questions of GSM8K dev.
fn questions(n: usize) -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/gsm8k/dev.jsonl"
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .take(n)
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["question"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// `series` summed over the replicas' `/metrics` (a replica without it counts 0).
async fn total(client: &reqwest::Client, bases: &[&str], series: &str) -> f64 {
    let mut sum = 0.0;
    for b in bases {
        let text = get_text(client, &format!("{b}/metrics")).await;
        if text.lines().any(|l| l.starts_with(&format!("{series} "))) {
            sum += metric(&text, series);
        }
    }
    sum
}

#[tokio::test]
async fn replicas_share_sessions_and_references_through_redis() {
    let redis = LocalRedis::start().await.unwrap();
    let mut a = replica(&redis.url);
    let b = replica(&redis.url);
    let (ua, ub) = (a.base.clone(), b.base.clone());
    let client = reqwest::Client::new();
    let qs = questions(11);

    // A session created on a, drafts posted to both, guidance fetched from b (and a).
    let (status, s) = post(
        &client,
        &format!("{ua}/v1/colm/sessions"),
        json!({"query": qs[10], "model": MODEL, "mode": "synthesis", "k": 2, "max_tokens": 48}),
    )
    .await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    for (base, draft) in [
        (&ua, "She has 3 left, so the answer is 3."),
        (&ub, "#### 3"),
    ] {
        let (status, d) = post(
            &client,
            &format!("{base}/v1/colm/sessions/{id}/drafts"),
            json!({"draft": draft}),
        )
        .await;
        assert_eq!(status, 200, "{d}");
    }
    let (status, g) = get(
        &client,
        &format!("{ub}/v1/colm/sessions/{id}/guidance?wait_ms=60000"),
    )
    .await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(
        (g["drafts_used"].as_u64(), g["trigger"].as_str()),
        (Some(2), Some("k"))
    );
    assert!(!g["guidance"].as_str().unwrap().trim().is_empty(), "{g}");
    let (status, again) = get(&client, &format!("{ua}/v1/colm/sessions/{id}/guidance")).await;
    assert_eq!((status, &again["guidance"]), (200, &g["guidance"]));

    // 100 clients spread over both replicas, each asking the same 10 questions (in a
    // different order): the references of each question are computed once in all.
    let calls = format!("colm_model_calls_total{{model=\"{MODEL}\"}}");
    let calls_before = total(&client, &[&ua, &ub], &calls).await;
    let hits_before = total(&client, &[&ua, &ub], "colm_shared_guidance_hits_total").await;
    let asks = (0..100).map(|c| {
        let (client, qs) = (client.clone(), qs[..10].to_vec());
        let base = if c % 2 == 0 { ua.clone() } else { ub.clone() };
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in 0..10 {
                let q = &qs[(c + i) % 10];
                let (status, g) = post(
                    &client,
                    &format!("{base}/v1/colm/guidance"),
                    json!({"query": q, "model": MODEL, "mode": "reference", "max_tokens": 48}),
                )
                .await;
                assert_eq!(status, 200, "{g}");
                answers.push((q.clone(), g["guidance"].as_str().unwrap().to_owned()));
            }
            answers
        })
    });
    let mut by_question = std::collections::BTreeMap::<String, Vec<String>>::new();
    for a in futures::future::join_all(asks).await {
        for (q, g) in a.unwrap() {
            by_question.entry(q).or_default().push(g);
        }
    }
    // Every client got the one guidance of its question.
    assert_eq!(by_question.len(), 10);
    for (q, gs) in &by_question {
        assert!(gs.iter().all(|g| g == &gs[0]), "{q}: {} variants", gs.len());
    }
    let hits = total(&client, &[&ua, &ub], "colm_shared_guidance_hits_total").await - hits_before;
    let computed = total(&client, &[&ua, &ub], &calls).await - calls_before;
    assert_eq!(hits, 990.0, "1000 asks, 10 computed");
    // The model calls of 10 reference computations (the reference and its synthesis, as one
    // more question costs on a replica alone).
    let one_before = total(&client, &[&ua], &calls).await;
    let (status, _) = post(
        &client,
        &format!("{ua}/v1/colm/guidance"),
        json!({"query": qs[10], "model": MODEL, "mode": "reference", "max_tokens": 48}),
    )
    .await;
    assert_eq!(status, 200);
    let per_question = total(&client, &[&ua], &calls).await - one_before;
    assert!(per_question >= 1.0);
    assert_eq!(
        computed,
        10.0 * per_question,
        "{computed} calls for 10 questions"
    );

    // A replica killed while it aggregates a session: its session and drafts live on, and
    // the other replica takes the aggregation over when a's lease runs out.
    let (status, s) = post(
        &client,
        &format!("{ua}/v1/colm/sessions"),
        json!({"query": qs[0], "model": MODEL, "mode": "synthesis", "k": 2, "max_tokens": 200}),
    )
    .await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    for draft in ["Each day she sells 9 eggs: $18.", "#### 18"] {
        let (status, d) = post(
            &client,
            &format!("{ua}/v1/colm/sessions/{id}/drafts"),
            json!({"draft": draft}),
        )
        .await;
        assert_eq!(status, 200, "{d}");
    }
    let (_, shown) = get(&client, &format!("{ub}/v1/colm/sessions/{id}")).await;
    assert_eq!(shown["status"], "aggregating", "{shown}");
    let aggregations = "colm_session_aggregations_total{trigger=\"k\"}";
    let on_b = total(&client, &[&ub], aggregations).await;
    a.kill();
    let started = std::time::Instant::now();
    let (status, g) = get(
        &client,
        &format!("{ub}/v1/colm/sessions/{id}/guidance?wait_ms=60000"),
    )
    .await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["drafts_used"], 2, "{g}");
    assert!(!g["guidance"].as_str().unwrap().trim().is_empty(), "{g}");
    // b aggregated it (a died first), after a's lease ran out.
    assert_eq!(total(&client, &[&ub], aggregations).await, on_b + 1.0);
    eprintln!(
        "taken over and answered {:.1} s after the kill; {computed} model calls for 10 \
         questions asked 100 times over two replicas ({per_question} per question)",
        started.elapsed().as_secs_f64()
    );
}

/// A replica serving the cascade `cheap` (gemma drafts, every draft escalates to gemma as the
/// server, `to=remote`) under a server-token budget of `LIMIT` per hour; with `redis`, the
/// budget is kept there.
fn cascade_replica(router: &std::path::Path, redis: Option<&str>) -> common::Proc {
    let mut args = vec![
        "--colm-client",
        MODEL,
        "--colm-server",
        MODEL,
        "--colm-strategy",
        "cheap=cascade:tau=0,to=remote",
        "--router",
        router.to_str().unwrap(),
    ];
    if let Some(url) = redis {
        args.extend(["--state", url]);
    }
    serve(&args)
}

const LIMIT: u64 = 10_000;

/// Prompt tokens of the cascade's answer to `q` on `base` (the draft's, plus the server's when
/// it escalated).
async fn cascade_prompt_tokens(client: &reqwest::Client, base: &str, q: &str) -> u64 {
    let (status, v) = post(
        client,
        &format!("{base}/v1/chat/completions"),
        json!({"model": "cheap", "max_tokens": 32, "messages": [{"role": "user", "content": q}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v["usage"]["prompt_tokens"].as_u64().unwrap()
}

/// The server-token budget of a served cascade (`--router`) is one budget for the replicas
/// sharing Redis: what one spends is in the shared ledger, and another keeps its queries local
/// when that ledger is full; a replica without `--state` keeps its own.
#[tokio::test]
async fn replicas_spend_one_cascade_budget_through_redis() {
    use colm_core::vertical::TokenLedger;
    let redis = LocalRedis::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let router = dir.path().join("router.toml");
    std::fs::write(
        &router,
        format!("[router]\nserver_tokens_per_window = {LIMIT}\nwindow_s = 3600\n"),
    )
    .unwrap();
    let a = cascade_replica(&router, Some(&redis.url));
    let b = cascade_replica(&router, Some(&redis.url));
    let client = reqwest::Client::new();
    let q = &questions(1)[0];
    let ledger = RedisState::connect(&redis.url, "colm")
        .await
        .unwrap()
        .ledger("cheap");
    let hour = std::time::Duration::from_secs(3600);

    let escalated = cascade_prompt_tokens(&client, &a.base, q).await;
    let spent = ledger.spent(hour).await.unwrap();
    assert!(spent > 0, "a's escalation is in the shared ledger");
    // Fill the shared budget but for 10 tokens: b must see it and keep the query local.
    ledger.add(LIMIT - spent - 10, hour).await.unwrap();
    let kept = cascade_prompt_tokens(&client, &b.base, q).await;
    assert!(
        kept < escalated,
        "b stayed local ({kept} prompt tokens) where a escalated ({escalated})"
    );
    assert_eq!(
        ledger.spent(hour).await.unwrap(),
        LIMIT - 10,
        "b spent nothing"
    );
    // A replica keeping its budget to itself escalates as a did.
    let alone = cascade_replica(&router, None);
    assert_eq!(
        cascade_prompt_tokens(&client, &alone.base, q).await,
        escalated
    );
}

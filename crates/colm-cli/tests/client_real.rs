//! `colm serve` + `colm client` over loopback with real models: guidance flows, and a killed
//! server makes the client answer with its local draft, marked as a fallback, within its
//! deadline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use std::time::{Duration, Instant};

use common::{get_text, metric, start, SERIAL};
use serde_json::{json, Value};

const MODEL: &str = "qwen2.5-coder-0.5b-instruct";

/// Threads per process: the server and the clients run as separate processes, and
/// llama.cpp threads that together outnumber the cores slow every process down many times over
/// (the in-process turn-taking of `exclusive_compute` cannot help across processes).
const THREADS: &str = "1";

/// `colm serve` with MODEL on a free loopback port, with `extra` flags.
fn serve_with(extra: &[&str]) -> common::Proc {
    let mut args = vec![
        "serve",
        "--model",
        MODEL,
        "--bind",
        "127.0.0.1:0",
        "--ctx",
        "2048",
        "--threads",
        THREADS,
    ];
    args.extend_from_slice(extra);
    start(&args)
}

fn serve() -> common::Proc {
    serve_with(&[])
}

/// Two `colm client`s of `server`, named alice and bob, with `extra` flags.
fn alice_and_bob(server: &common::Proc, extra: &[&str]) -> Vec<common::Proc> {
    ["alice", "bob"]
        .iter()
        .map(|name| {
            let mut args = extra.to_vec();
            args.extend(["--name", name]);
            client(server, &args)
        })
        .collect()
}

/// Sends `question` to every client at once and returns their answers (each a 200).
async fn ask_all(
    http: &reqwest::Client,
    clients: &[common::Proc],
    question: &str,
    max_tokens: u32,
) -> Vec<Value> {
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens});
    futures::future::join_all(clients.iter().map(|c| {
        let (http, body) = (http.clone(), body.clone());
        let url = format!("{}/v1/chat/completions", c.base);
        async move {
            let r = http.post(&url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    }))
    .await
}

/// `colm client` of `server`, MODEL on both sides, on a free loopback port, with `extra` flags.
fn client(server: &common::Proc, extra: &[&str]) -> common::Proc {
    client_of(&server.base, extra)
}

/// A `colm client` of the server at `base`, with `extra` flags.
fn client_of(base: &str, extra: &[&str]) -> common::Proc {
    let mut args = vec![
        "client",
        "--server-url",
        base,
        "--model",
        MODEL,
        "--server-model",
        MODEL,
        "--listen",
        "127.0.0.1:0",
        "--ctx",
        "2048",
        "--threads",
        THREADS,
    ];
    args.extend_from_slice(extra);
    start(&args)
}

#[tokio::test]
async fn client_gets_guidance_then_falls_back_when_the_server_dies() {
    let _turn = SERIAL.lock().await;
    let server = serve();
    // Generous: the first request must get its guidance even on a loaded machine.
    let deadline_ms = 180_000u64;
    let deadline = deadline_ms.to_string();
    // The default round (`draft=auto`): the device asks for the guidance first and, as it
    // comes within the wait, refines without drafting.
    let client = client(
        &server,
        &["--deadline-ms", &deadline, "--draft-wait-ms", &deadline],
    );
    let http = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", client.base);
    let question = "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take?";
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": question}], "max_tokens": 24});

    let r = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let fell_back = r.headers().get("x-colm-fallback").is_some();
    let v: Value = r.json().await.unwrap();
    assert!(!fell_back, "{v}");
    assert!(!v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .trim()
        .is_empty());
    assert!(v["colm"]["fallback"].is_null(), "{v}");
    // The guidance exchange crossed the wire zstd-compressed both ways (the server only
    // decodes a zstd request body because it negotiates Content-Encoding).
    let wire = &v["colm"]["wire"];
    for field in [
        "bytes_sent",
        "bytes_received",
        "bytes_sent_uncompressed",
        "bytes_received_uncompressed",
    ] {
        assert!(wire[field].as_u64().unwrap() > 0, "{wire}");
    }
    // The refinement alone ran on the device.
    assert!(
        (1..=24).contains(&v["usage"]["completion_tokens"].as_u64().unwrap()),
        "{}",
        v["usage"]
    );

    // Streamed, the device reports each step live (the server's guidance when it arrives; no
    // draft, none being needed) and streams its refinement token by token.
    let streamed_steps = |url: String| {
        let (http, mut streamed) = (http.clone(), body.clone());
        streamed["stream"] = json!(true);
        async move {
            let r = http.post(&url).json(&streamed).send().await.unwrap();
            let text = r.text().await.unwrap();
            (common::sse_chunks(&text), text)
        }
    };
    let phases = |chunks: &[Value], step: &str| -> Vec<String> {
        chunks
            .iter()
            .map(|c| &c["colm"]["progress"])
            .filter(|p| p["step"] == step)
            .map(|p| p["phase"].as_str().unwrap_or("finished").to_owned())
            .collect()
    };
    let (chunks, text) = streamed_steps(url.clone()).await;
    assert!(phases(&chunks, "draft").is_empty(), "{text}");
    assert!(
        phases(&chunks, "guidance").iter().any(|p| p == "text"),
        "{text}"
    );
    let contents = common::content_chunks(&chunks);
    assert!(
        contents > 1,
        "the refinement came in {contents} chunk(s): {text}"
    );
    // A device that drafts at once (`--draft always`, the paper's round) reports its draft's
    // text as it is written.
    let drafting = client_of(
        &server.base,
        &["--deadline-ms", &deadline, "--draft", "always"],
    );
    let (chunks, text) = streamed_steps(format!("{}/v1/chat/completions", drafting.base)).await;
    let draft = phases(&chunks, "draft");
    assert_eq!(draft.first().map(String::as_str), Some("started"), "{text}");
    assert!(draft.iter().filter(|p| *p == "text").count() > 1, "{text}");
    assert_eq!(draft.last().map(String::as_str), Some("finished"), "{text}");
    drop(drafting);

    // A conversation: the device drafts and refines on the caller's turns, and the server's
    // references are about the last question in their context, so the answer can use what
    // only an earlier turn says.
    let conversation = json!({"model": MODEL, "max_tokens": 16, "messages": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "My name is Zorblax. Please remember it."},
        {"role": "assistant", "content": "Nice to meet you, Zorblax. I will remember your name."},
        {"role": "user", "content": "What is my name? Answer with the name only."}
    ]});
    let r = http.post(&url).json(&conversation).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["colm"]["fallback"].is_null(), "{v}");
    let answer = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(answer.contains("Zorblax"), "{answer}");

    drop(server);
    let started = Instant::now();
    let r = http.post(&url).json(&body).send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-colm-fallback"], "true");
    let v: Value = r.json().await.unwrap();
    let reason = v["colm"]["fallback"].as_str().unwrap();
    assert!(reason.contains("unreachable"), "{reason}");
    assert!(!v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .trim()
        .is_empty());
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= 24);
    // A dead server is known at once: the device drafts its answer then (no guidance will
    // come), in the draft's time, not the deadline's.
    assert!(took < Duration::from_millis(deadline_ms) / 3, "{took:?}");
}

/// Two `colm client`s answer the same question through one shared session on `colm serve`
/// (drafts-only `synthesis` mode): the session aggregates when both drafts are in (k = 2), both
/// clients refine with that guidance, and the drafts travel trimmed.
#[tokio::test]
async fn two_clients_complete_a_shared_session() {
    let _turn = SERIAL.lock().await;
    let server = serve();
    let clients = alice_and_bob(
        &server,
        &[
            "--deadline-ms",
            "120000",
            "--session-k",
            "2",
            "--session-window-ms",
            "100000",
            "--trim-draft-tokens",
            "8",
            "--mode",
            "synthesis",
        ],
    );
    let http = reqwest::Client::new();
    let question = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?";
    let answers = ask_all(&http, &clients, question, 64).await;
    for v in &answers {
        assert!(v["colm"]["fallback"].is_null(), "{v}");
        assert!(!v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .trim()
            .is_empty());
    }
    let metrics = get_text(&http, &format!("{}/metrics", server.base)).await;
    let value = |series: &str| metric(&metrics, series);
    assert_eq!(value("colm_session_drafts_total"), 2.0);
    assert_eq!(value("colm_session_aggregations_total{trigger=\"k\"}"), 1.0);
    // Trimmed drafts: at most 8 tokens of rationale + the final answer, in a small JSON body.
    let draft_bytes = value("colm_request_bytes_total{route=\"/v1/colm/sessions/{id}/drafts\"}");
    assert!(
        draft_bytes < 2.0 * 160.0,
        "{draft_bytes} bytes for two drafts"
    );
}

/// `colm client --router FILE`: every draft escalates (τ = 0) to the server model through the
/// server's chat endpoint, over the wire; a request flagged sensitive (`metadata`) stays on the
/// device (residency = local); a killed server leaves the local draft, flagged.
#[tokio::test]
async fn routed_client_escalates_then_stays_local_when_the_server_dies() {
    let _turn = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("router.toml");
    std::fs::write(
        &policy,
        "[router]\nescalate_to = \"remote\"\nthreshold = 0.0\nresidency = \"local\"\n",
    )
    .unwrap();
    let server = serve();
    let client = client(
        &server,
        &[
            "--deadline-ms",
            "120000",
            "--router",
            policy.to_str().unwrap(),
        ],
    );
    let http = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", client.base);
    let question = "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take?";
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": question}], "max_tokens": 24});

    let r = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["colm"]["fallback"].is_null(), "{v}");
    assert!(!v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .trim()
        .is_empty());
    // The escalation crossed the wire, and the answer counts the draft's and the server's
    // tokens.
    assert!(v["colm"]["wire"]["bytes_sent"].as_u64().unwrap() > 0, "{v}");
    assert!(
        v["usage"]["completion_tokens"].as_u64().unwrap() > 24,
        "{}",
        v["usage"]
    );
    let metrics = get_text(&http, &format!("{}/metrics", server.base)).await;
    assert!(
        metrics.contains("/v1/chat/completions"),
        "the server saw no chat completion:\n{metrics}"
    );

    // A request flagged sensitive stays on the device: nothing crosses the wire and only the
    // draft's tokens count; a flag that is not "true"/"false" is a 400 naming the field.
    let mut sensitive = body.clone();
    sensitive["metadata"] = json!({"sensitive": "true"});
    let r = http.post(&url).json(&sensitive).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["colm"]["wire"].is_null(), "{v}");
    assert!(v["colm"]["fallback"].is_null(), "{v}");
    assert!(
        v["usage"]["completion_tokens"].as_u64().unwrap() <= 24,
        "{v}"
    );
    sensitive["metadata"] = json!({"sensitive": "yes"});
    let r = http.post(&url).json(&sensitive).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "metadata", "{v}");

    drop(server);
    let r = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-colm-fallback"], "true");
    let v: Value = r.json().await.unwrap();
    let reason = v["colm"]["fallback"].as_str().unwrap();
    assert!(
        reason.contains("server failed") && reason.contains("unreachable"),
        "{reason}"
    );
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= 24);
}

/// A recording proxy in front of `target`: every request body that reaches it (decoded when
/// zstd-compressed) is kept, then the request goes on to `target` and its answer comes back.
/// It stands where the network is: what it records is what left the device.
async fn recording_proxy(
    target: String,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = seen.clone();
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (record, http, target) = (record.clone(), http.clone(), target.clone());
            async move {
                let zstd = headers
                    .get("content-encoding")
                    .is_some_and(|v| v.as_bytes() == b"zstd");
                let plain = if zstd {
                    zstd::decode_all(&body[..]).unwrap()
                } else {
                    body.to_vec()
                };
                record
                    .lock()
                    .unwrap()
                    .push(format!("{uri} {}", String::from_utf8_lossy(&plain)));
                let mut forward = http.request(method, format!("{target}{uri}"));
                for name in ["content-type", "content-encoding", "authorization"] {
                    if let Some(v) = headers.get(name) {
                        forward = forward.header(name, v.clone());
                    }
                }
                let r = forward.body(body).send().await.unwrap();
                let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
                let kind = r
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let bytes = r.bytes().await.unwrap();
                (status, [("content-type", kind)], bytes)
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

/// Residency without a router: a query holding an e-mail address and a card number leaves the
/// device redacted — the query and the draft sent into a shared session carry placeholders —
/// and the answer says so; a query flagged sensitive with nothing to redact, and any sensitive
/// query of a `--residency local` client, never leave the device.
#[tokio::test]
async fn sensitive_queries_leave_redacted_or_not_at_all() {
    let _turn = SERIAL.lock().await;
    let server = serve();
    let (proxy, seen) = recording_proxy(server.base.clone()).await;
    let redacting = client_of(
        &proxy,
        &[
            "--mode",
            "synthesis",
            "--session-k",
            "1",
            "--deadline-ms",
            "120000",
        ],
    );
    let local_only = client_of(&proxy, &["--residency", "local", "--deadline-ms", "120000"]);
    let http = reqwest::Client::new();
    let secret = ["anna.berg@example.com", "4111 1111 1111 1111"];
    let question = format!(
        "I am writing from {} and my card is {}. A robe takes 2 bolts of blue fiber and half \
         that much white fiber. How many bolts in total does it take? Repeat my e-mail address \
         and card number before the answer.",
        secret[0], secret[1]
    );
    let ask = |base: String, content: String, metadata: Option<Value>| {
        let http = http.clone();
        async move {
            let mut body = json!({"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 48});
            if let Some(m) = metadata {
                body["metadata"] = m;
            }
            let r = http
                .post(format!("{base}/v1/chat/completions"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let v = ask(redacting.base.clone(), question.clone(), None).await;
    assert_eq!(v["colm"]["residency"], "redacted", "{v}");
    assert!(v["colm"]["fallback"].is_null(), "{v}");
    let sent = seen.lock().unwrap().clone();
    assert!(
        sent.iter().any(|b| b.contains("/drafts")),
        "the draft went into a session: {sent:?}"
    );
    assert!(sent.iter().any(|b| b.contains("<EMAIL_1>")), "{sent:?}");
    for body in &sent {
        for s in secret {
            assert!(!body.contains(s), "`{s}` left the device: {body}");
        }
    }
    seen.lock().unwrap().clear();
    // Flagged sensitive with nothing to redact: stays on the device.
    let plain = "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take?";
    let v = ask(
        redacting.base.clone(),
        plain.into(),
        Some(json!({"sensitive": "true"})),
    )
    .await;
    assert_eq!(v["colm"]["residency"], "local", "{v}");
    assert!(v["colm"]["wire"].is_null(), "{v}");
    // A --residency local client keeps every sensitive query.
    let v = ask(local_only.base.clone(), question, None).await;
    assert_eq!(v["colm"]["residency"], "local", "{v}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    // A query with nothing sensitive goes out as it is, and the answer has no residency.
    let v = ask(local_only.base.clone(), plain.into(), None).await;
    assert!(v["colm"]["residency"].is_null(), "{v}");
    assert!(!seen.lock().unwrap().is_empty());
}

/// Two `colm client`s in the default `reference` mode, two rounds, on a server that shares
/// references: round 1 asks for guidance while drafting and needs no draft (one reference for
/// both clients, the other served from the store); round 2 sends each client's refinement into
/// one shared session (k = 2) whose guidance aggregates both with the stored reference.
#[tokio::test]
async fn reference_rounds_over_the_wire_share_one_reference() {
    let _turn = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("guidance.sqlite");
    let server = serve_with(&["--share-ttl", "600", "--store", store.to_str().unwrap()]);
    let clients = alice_and_bob(
        &server,
        &[
            "--deadline-ms",
            "180000",
            "--rounds",
            "2",
            "--session-k",
            "2",
            "--session-window-ms",
            "150000",
        ],
    );
    let http = reqwest::Client::new();
    let question = "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?";
    let answers = ask_all(&http, &clients, question, 48).await;
    for v in &answers {
        assert!(v["colm"]["fallback"].is_null(), "{v}");
        // Draft + two refinements, all local.
        assert!(
            v["usage"]["completion_tokens"].as_u64().unwrap() > 48,
            "{v}"
        );
    }
    let metrics = get_text(&http, &format!("{}/metrics", server.base)).await;
    let value = |series: &str| metric(&metrics, series);
    // Round 1: one reference written, one served from the store; round 2's session reads the
    // stored reference again (a hit) and both refinements.
    assert_eq!(value("colm_shared_guidance_hits_total"), 2.0);
    assert_eq!(value("colm_session_drafts_total"), 2.0);
    assert_eq!(value("colm_session_aggregations_total{trigger=\"k\"}"), 1.0);
    // Server model calls: one reference + one round-2 synthesis.
    assert_eq!(
        value(&format!("colm_model_calls_total{{model=\"{MODEL}\"}}")),
        2.0
    );
}

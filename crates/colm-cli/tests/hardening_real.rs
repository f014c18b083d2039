//! `colm serve` over loopback as a hostile web page and a hostile tenant would use it: every
//! request here is one a browser or a careless client really sends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use std::time::Duration;

use common::SERIAL;
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN};
use serde_json::{json, Value};

/// `colm serve` on a free loopback port with the smallest model and `args`.
fn serve_tiny(args: &[&str]) -> common::Proc {
    let mut all = vec![
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--model",
        "gemma-3-270m",
        "--ctx",
        "512",
    ];
    all.extend_from_slice(args);
    common::start(&all)
}

/// [`serve_tiny`] with the API keys `keys` (lines of a key file) and `args`; the directory
/// holds the key file (and whatever else a test puts there).
fn serve_tenants(keys: &str, args: &[&str]) -> (tempfile::TempDir, common::Proc) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, keys).unwrap();
    let mut all = vec!["--api-key-file", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let server = serve_tiny(&all);
    (dir, server)
}

/// A web page cannot drive a loopback server: a DNS-rebinding `Host` gets 403 before any key
/// check, a "simple" cross-site body (`text/plain`, form-encoded, no type) gets 415, CORS
/// answers only the origins the operator listed, and the framework's own error answers (405)
/// are OpenAI-shaped too. Also: the `Bearer` scheme is read in any case (RFC 9110 §11.1).
#[tokio::test]
async fn a_web_page_cannot_drive_a_loopback_server() {
    let _turn = SERIAL.lock().await;
    let (_dir, server) = serve_tenants(
        "acme sk-acme\n",
        &[
            "--default-max-tokens",
            "4",
            "--cors-origin",
            "http://app.example",
        ],
    );
    let http = reqwest::Client::new();
    let base = &server.base;
    let port = base.rsplit(':').next().unwrap();
    let session = json!({"query": "What is 6 times 7?", "model": "gemma-3-270m"}).to_string();
    let error = |v: &Value| v["error"]["code"].as_str().unwrap_or_default().to_owned();

    // The request of the DNS-rebinding attack: refused before the key is even asked for.
    let r = http
        .post(format!("{base}/v1/colm/sessions"))
        .header(HOST, format!("evil.example:{port}"))
        .header(ORIGIN, "http://evil.example")
        .header(CONTENT_TYPE, "text/plain")
        .body(session.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(error(&v), "host_not_allowed", "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("evil.example"));
    let r = http
        .get(format!("{base}/health"))
        .header(HOST, "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no route answers a foreign host");
    // The loopback names are served (`localhost`, with the port; the key in lower case).
    let r = http
        .get(format!("{base}/v1/models"))
        .header(HOST, format!("localhost:{port}"))
        .header(AUTHORIZATION, "bearer sk-acme")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // Bodies a page can send without a preflight are refused unread, whatever they hold.
    for kind in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut req = http
            .post(format!("{base}/v1/colm/sessions"))
            .bearer_auth("sk-acme")
            .body(session.clone());
        if let Some(kind) = kind {
            req = req.header(CONTENT_TYPE, kind);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 415, "{kind:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(error(&v), "unsupported_media_type", "{kind:?}: {v}");
    }
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("sk-acme")
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(
            json!({"model": "gemma-3-270m", "messages": [{"role": "user", "content": "Hi"}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // CORS: the listed origin's preflight and reads are allowed; another origin gets no
    // `Access-Control-Allow-Origin`, so its page cannot read the answer.
    let preflight = |origin: &'static str| {
        http.request(
            reqwest::Method::OPTIONS,
            format!("{base}/v1/chat/completions"),
        )
        .header(ORIGIN, origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
    };
    let allowed = |h: &HeaderMap| {
        h.get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let r = preflight("http://app.example").await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(allowed(r.headers()).as_deref(), Some("http://app.example"));
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let r = preflight("http://evil.example").await.unwrap();
    assert_eq!(allowed(r.headers()), None);
    for (origin, expected) in [
        ("http://app.example", Some("http://app.example")),
        ("http://evil.example", None),
    ] {
        let r = http
            .get(format!("{base}/v1/models"))
            .bearer_auth("sk-acme")
            .header(ORIGIN, origin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(allowed(r.headers()).as_deref(), expected, "{origin}");
    }

    // A method a route does not serve: 405 with `Allow` and an OpenAI-shaped body.
    let r = http
        .delete(format!("{base}/v1/models"))
        .bearer_auth("sk-acme")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().contains_key("allow"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("DELETE /v1/models"));
}

/// Without `--cors-origin` CORS is off: a preflight is a 405 (OpenAI-shaped) with no
/// `Access-Control-Allow-Origin`; `--allowed-host` replaces the loopback names.
#[tokio::test]
async fn cors_is_off_by_default_and_operators_name_their_hosts() {
    let _turn = SERIAL.lock().await;
    let server = serve_tiny(&["--allowed-host", "colm.internal"]);
    let http = reqwest::Client::new();
    let base = &server.base;
    let r = http
        .request(reqwest::Method::OPTIONS, format!("{base}/v1/models"))
        .header(HOST, "colm.internal")
        .header(ORIGIN, "http://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].is_string(), "{v}");
    for (host, status) in [("colm.internal:80", 200), ("127.0.0.1", 403)] {
        let r = http
            .get(format!("{base}/v1/models"))
            .header(HOST, host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{host}");
    }
}

/// Reads from `stream` until the server closes it or `limit` passes; returns what arrived and
/// whether the server closed the connection (read 0 bytes, or reset).
async fn until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> (String, bool) {
    use tokio::io::AsyncReadExt as _;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// When the server closed `stream` (within `limit`, else the test fails).
async fn closed_at(stream: &mut tokio::net::TcpStream, limit: Duration) -> tokio::time::Instant {
    let (_, closed) = until_closed(stream, limit).await;
    assert!(closed, "an idle connection stays open");
    tokio::time::Instant::now()
}

/// Slow and idle connections are closed within their timeouts (raw sockets, as slowloris
/// does): a connection that sends nothing, headers that stop mid-way, a body that stops mid-way (408 `body_timeout`), a
/// kept-alive connection left idle; and `--max-connections` holds a further connection in the
/// backlog until one closes. (`axum::serve`'s defaults kept all of these open.) The limits
/// here are 1 s; a closed connection is awaited for up to 30 s, which no timing noise reaches
/// and an unlimited server never meets.
#[tokio::test]
async fn stalled_and_idle_connections_are_closed() {
    use tokio::io::AsyncWriteExt as _;
    let _turn = SERIAL.lock().await;
    let server = serve_tiny(&[
        "--header-timeout-ms",
        "1000",
        "--body-timeout-ms",
        "1000",
        "--max-connections",
        "2",
    ]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let connect = || tokio::net::TcpStream::connect(addr.clone());
    let wait = Duration::from_secs(30);

    // Headers that stop mid-way.
    let mut s = connect().await.unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-")
        .await
        .unwrap();
    let (_, closed) = until_closed(&mut s, wait).await;
    assert!(closed, "a connection stalled mid-headers stays open");

    // A body that stops mid-way: 408, OpenAI-shaped, and the connection closes.
    let mut s = connect().await.unwrap();
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\": ",
    )
    .await
    .unwrap();
    let (answer, closed) = until_closed(&mut s, wait).await;
    assert!(closed, "a connection stalled mid-body stays open: {answer}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");

    // A kept-alive connection, idle after its answer.
    let mut s = connect().await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let (answer, closed) = until_closed(&mut s, wait).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle kept-alive connection stays open");

    // Two connections at most: a third is served only once the header timeout has closed
    // one of the first two (an unlimited server answers it at once).
    let mut first = connect().await.unwrap();
    let mut second = connect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = connect().await.unwrap();
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let sent = tokio::time::Instant::now();
    let (_, _, (answer, answered)) = tokio::join!(
        closed_at(&mut first, wait),
        closed_at(&mut second, wait),
        async {
            let (answer, _) = until_closed(&mut third, wait).await;
            (answer, tokio::time::Instant::now())
        }
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Not before the header timeout (1 s from 200 ms before it was sent) could free a place:
    // a lower bound, which no load on the machine can break.
    assert!(
        answered - sent >= Duration::from_millis(600),
        "the third connection was served after {:?}, while two were open",
        answered - sent
    );
}

/// The content deltas of the server-sent events in `sse` (whole events only).
fn deltas(sse: &str) -> Vec<String> {
    sse.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// A tenant that closes its stream early is charged what the model generated for it: its
/// tokens in `/metrics`, its budget spent by them, and a record with status 499, the tokens
/// and the text streamed. A budget then refuses it as it would a tenant reading to the end.
#[tokio::test]
async fn a_stream_closed_early_is_charged_and_recorded() {
    let _turn = SERIAL.lock().await;
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("log.db");
    let (_dir, server) = serve_tenants(
        "acme sk-acme\nops sk-ops\n",
        &[
            "--token-budget",
            "3600",
            "--protect-ops",
            "--operator",
            "ops",
            "--interaction-log",
            log.to_str().unwrap(),
        ],
    );
    let http = reqwest::Client::new();
    let base = &server.base;
    let body = json!({"model": "gemma-3-270m", "max_tokens": 400, "stream": true,
        "messages": [{"role": "user", "content": "Count from 1 to 500, one number per line."}]});
    let mut r = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("sk-acme")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-colm-record-id"].to_str().unwrap().to_owned();
    let mut sse = String::new();
    while deltas(&sse).len() < 20 {
        let chunk = r
            .chunk()
            .await
            .unwrap()
            .expect("the stream ended before 20 deltas");
        sse.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        !sse.contains("[DONE]"),
        "the answer ended before it was cut"
    );
    drop(r);
    let read = deltas(&sse).concat();

    // The record: written once the server has seen the stream closed.
    let mut record = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let records = colm_server::log::InteractionLog::open_target(log.to_str().unwrap(), true)
            .await
            .unwrap()
            .read_all()
            .await
            .unwrap();
        record = records.into_iter().map(|(r, _)| r).find(|r| r.id == id);
        if record.is_some() {
            break;
        }
    }
    let record = record.expect("no record of the cut stream");
    assert_eq!(record.status, 499, "{record:?}");
    assert_eq!(record.model.as_deref(), Some("gemma-3-270m"));
    assert!(
        record.prompt_tokens > 5 && (20..400).contains(&record.completion_tokens),
        "{record:?}"
    );
    let streamed = record.answer.clone().unwrap_or_default();
    assert!(streamed.starts_with(&read), "{streamed:?} vs {read:?}");
    assert!(record.error.unwrap_or_default().contains("went away"));

    // Counted and charged as the record says (the budget refills 1 token a second).
    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth("sk-ops")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| common::metric(&metrics, series);
    assert_eq!(
        value("colm_tenant_completion_tokens_total{tenant=\"acme\"}"),
        record.completion_tokens as f64
    );
    assert_eq!(
        value("colm_tenant_prompt_tokens_total{tenant=\"acme\"}"),
        record.prompt_tokens as f64
    );
    let spent = 3600.0 - value("colm_tenant_budget_tokens{tenant=\"acme\"}");
    let used = (record.prompt_tokens + record.completion_tokens) as f64;
    assert!(
        spent > used - 30.0 && spent <= used,
        "spent {spent}, used {used}"
    );
}

/// One tenant at its cap of open sessions is refused (429, with the seconds until its earliest
/// session is due) while another tenant still creates and joins sessions.
#[tokio::test]
async fn a_tenant_at_its_session_cap_shuts_out_no_other() {
    let _turn = SERIAL.lock().await;
    let (_dir, server) = serve_tenants(
        "acme sk-acme\nglobex sk-globex\n",
        &["--max-sessions-per-tenant", "3"],
    );
    let http = reqwest::Client::new();
    let url = format!("{}/v1/colm/sessions", server.base);
    let create = |key: &'static str, n: u32| {
        http.post(&url)
            .bearer_auth(key)
            .json(
                &json!({"query": format!("What is {n} times 7?"), "model": "gemma-3-270m",
                          "window_ms": 20000, "max_tokens": 16}),
            )
            .send()
    };
    for n in 0..3 {
        assert_eq!(create("sk-acme", n).await.unwrap().status(), 201);
    }
    let r = create("sk-acme", 3).await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "session_limit_exceeded", "{e}");
    // Joining one of its open sessions is still allowed; another tenant is unaffected.
    assert_eq!(create("sk-acme", 0).await.unwrap().status(), 200);
    for n in 0..3 {
        assert_eq!(create("sk-globex", n).await.unwrap().status(), 201);
    }

    // A session its model could never aggregate (the context holds 512 tokens) is refused when
    // it is created, or fed such a draft: 400 naming the sizes and the field.
    let long = "egg ".repeat(600);
    let r = http
        .post(&url)
        .bearer_auth("sk-globex")
        .json(&json!({"query": long, "model": "gemma-3-270m", "max_tokens": 16}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "context_length_exceeded", "{e}");
    assert_eq!(e["error"]["param"], "query", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("512"),
        "{e}"
    );
    let created: Value = create("sk-globex", 0).await.unwrap().json().await.unwrap();
    let r = http
        .post(format!("{url}/{}/drafts", created["id"].as_str().unwrap()))
        .bearer_auth("sk-globex")
        .json(&json!({"draft": long}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "draft", "{e}");
}

/// A tenant's requests in flight are capped (`--max-concurrent-per-tenant`): with one stream
/// open, its next request gets 429 `concurrency_limit_exceeded` while another tenant is served;
/// the place frees when the stream's body is gone.
#[tokio::test]
async fn a_tenant_at_its_concurrency_quota_waits_alone() {
    let _turn = SERIAL.lock().await;
    let (_dir, server) = serve_tenants(
        "acme sk-acme\nglobex sk-globex\n",
        &["--max-concurrent-per-tenant", "1"],
    );
    let http = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", server.base);
    let ask = |key: &'static str, max_tokens: u32, stream: bool| {
        http.post(&url)
            .bearer_auth(key)
            .json(
                &json!({"model": "gemma-3-270m", "max_tokens": max_tokens, "stream": stream,
                "messages": [{"role": "user", "content": "Count from 1 to 500."}]}),
            )
            .send()
    };
    let mut open = ask("sk-acme", 400, true).await.unwrap();
    assert_eq!(open.status(), 200);
    assert!(open.chunk().await.unwrap().is_some());
    let r = ask("sk-acme", 4, false).await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "concurrency_limit_exceeded", "{e}");
    assert_eq!(ask("sk-globex", 4, false).await.unwrap().status(), 200);
    drop(open);
    let mut status = 0;
    for _ in 0..50 {
        status = ask("sk-acme", 4, false).await.unwrap().status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the closed stream's place was not freed");
}

//! `colm serve` in front of real serving engines: two llama.cpp `llama-server` replicas of one
//! model (gemma-3-270m), behind an API key, hosted as one upstream model configured by
//! `[[upstreams]]` tables (alias, key file, `max_concurrent`), one killed under load; text
//! completions relayed to the replicas' own `/v1/completions`.
//!
//! The `llama-server` binary is taken from `LLAMA_SERVER`; `scripts/test` builds one from the
//! llama-cpp-python sdist on the engine's vendored llama.cpp (`bench/build-llama-peer.sh
//! llama-server`) and sets it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::metric;
use serde_json::{json, Value};

/// The key both llama-servers require.
const KEY: &str = "replica-secret";

/// A `llama-server` on a free loopback port, with two slots; killed when dropped.
struct LlamaServer {
    child: Child,
    base: String,
}

impl LlamaServer {
    async fn start(bin: &str, gguf: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .args([
                "-m",
                gguf,
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .args(["-c", "2048", "-np", "2", "-t", "1", "--metrics"])
            .args(["--api-key", KEY])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        let s = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ok = client
                .get(format!("{}/health", s.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "llama-server on {} not healthy",
                s.base
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Requests it is processing now (its Prometheus gauge).
    async fn processing(&self, client: &reqwest::Client) -> f64 {
        let m = client
            .get(format!("{}/metrics", self.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metric(&m, "llamacpp:requests_processing")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn ask(client: reqwest::Client, url: String, i: usize) -> (u16, Value) {
    let body = json!({"model": "small", "max_tokens": 40,
        "messages": [{"role": "user", "content": format!("Count from {i} to {}, one number per line.", i + 30)}]});
    let r = client.post(&url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn two_llama_server_replicas_one_killed_under_load() {
    let bin = std::env::var("LLAMA_SERVER").unwrap_or_else(|_| {
        panic!(
            "set LLAMA_SERVER to a llama-server binary (scripts/test builds one with \
             bench/build-llama-peer.sh llama-server)"
        )
    });
    let out = Command::new(env!("CARGO_BIN_EXE_colm"))
        .args(["models", "path", "gemma-3-270m"])
        .output()
        .unwrap();
    assert!(out.status.success(), "gemma-3-270m is not pulled");
    let gguf = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut a = LlamaServer::start(&bin, &gguf).await;
    let mut b = LlamaServer::start(&bin, &gguf).await;
    // Served as `gemma` and `small`; each replica gets one chat at a time though it has two
    // slots; the key comes from a file next to the configuration.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("replica.key"), format!("{KEY}\n")).unwrap();
    let config = dir.path().join("colm.toml");
    let table = |base: &str| {
        format!(
            "[[upstreams]]\nname = \"gemma\"\nbase_url = \"{base}/v1\"\naliases = [\"small\"]\n\
             key_file = \"replica.key\"\nmax_concurrent = 1\n"
        )
    };
    std::fs::write(&config, table(&a.base) + &table(&b.base)).unwrap();
    let colm = common::start(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
    ]);
    let client = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", colm.base);

    // A streamed chat is relayed chunk by chunk, with the upstream's usage.
    let body = json!({"model": "gemma", "max_tokens": 24, "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Count from 1 to 20."}]});
    let sse = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(sse.status().as_u16(), 200);
    let sse = sse.text().await.unwrap();
    let chunks = common::sse_chunks(&sse);
    let pieces = common::content_chunks(&chunks);
    assert!(pieces >= 3, "{pieces} content chunks in\n{sse}");
    let usage = chunks
        .iter()
        .find(|c| c["usage"].is_object())
        .expect("usage chunk");
    assert!(
        usage["usage"]["completion_tokens"].as_u64().unwrap() >= 3,
        "{sse}"
    );
    assert!(sse.trim_end().ends_with("data: [DONE]"), "{sse}");

    // A text completion goes to the replicas' own `/v1/completions`: the raw prompt continued
    // greedily as llama-server continues it when asked directly; streamed, piece by piece.
    let prompt = json!({"model": "small", "prompt": "1, 2, 3, 4,", "max_tokens": 12,
        "temperature": 0});
    let (status, relayed) = {
        let r = client
            .post(format!("{}/v1/completions", colm.base))
            .json(&prompt)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200, "{relayed}");
    let direct: Value = client
        .post(format!("{}/v1/completions", a.base))
        .bearer_auth(KEY)
        .json(&prompt)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = relayed["choices"][0]["text"].as_str().unwrap();
    assert!(!text.is_empty(), "{relayed}");
    assert_eq!(text, direct["choices"][0]["text"].as_str().unwrap());
    assert!(relayed["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let mut streamed = prompt.clone();
    streamed["stream"] = json!(true);
    let sse = client
        .post(format!("{}/v1/completions", colm.base))
        .json(&streamed)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let pieces: Vec<String> = common::sse_chunks(&sse)
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str().map(str::to_owned))
        .collect();
    assert!(pieces.len() >= 3, "{sse}");
    assert_eq!(pieces.concat(), text, "{sse}");

    // Twelve chats at once spread over both replicas, one at a time on each
    // (`max_concurrent = 1`); replica a is killed while it serves.
    let chats: Vec<_> = (0..12)
        .map(|i| tokio::spawn(ask(client.clone(), url.clone(), i)))
        .collect();
    let waited = Instant::now();
    while a.processing(&client).await < 1.0 {
        assert!(waited.elapsed() < Duration::from_secs(60), "a never busy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut b_busy = false;
    for _ in 0..5 {
        assert!(
            a.processing(&client).await <= 1.0,
            "max_concurrent exceeded on a"
        );
        let on_b = b.processing(&client).await;
        assert!(on_b <= 1.0, "max_concurrent exceeded on b");
        b_busy |= on_b == 1.0;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(b_busy, "b idle: not balanced");
    a.kill();
    let mut busiest = 0.0f64;
    while !chats.iter().all(tokio::task::JoinHandle::is_finished) {
        busiest = busiest.max(b.processing(&client).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        busiest, 1.0,
        "max_concurrent exceeded on b after the failover"
    );
    // No chat is lost: those in flight on a fail over to b.
    for chat in chats {
        let (status, body) = chat.await.unwrap();
        assert_eq!(status, 200, "{body}");
        let text = body["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(!text.trim().is_empty(), "{body}");
        assert!(body["usage"]["completion_tokens"].as_u64().unwrap() >= 1);
    }
    // The survivor takes the load.
    for i in 0..3 {
        let (status, body) = ask(client.clone(), url.clone(), i).await;
        assert_eq!(status, 200, "{body}");
    }
    // With no replica left, a chat gets a clear OpenAI-shaped error, not a hang.
    b.kill();
    let (status, body) = ask(client.clone(), url.clone(), 0).await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("unreachable"), "{body}");
}

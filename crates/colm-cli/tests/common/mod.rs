//! Helpers shared by the integration tests that start `colm` processes on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)] // test helpers

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running `colm` process (server or client); killed when dropped, however the test ends.
pub struct Proc {
    child: Child,
    /// `http://127.0.0.1:PORT` from its "listening on" line.
    pub base: String,
}

impl Proc {
    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `colm ARGS…` and waits for its first stdout line, "… listening on http://ADDR …".
pub fn start(args: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_colm"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split("listening on ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    Proc { child, base }
}

/// POSTs a JSON body (given as text, so malformed bodies can be sent): (status, body text).
pub async fn post(client: &reqwest::Client, url: &str, body: String) -> (u16, String) {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// GETs `url` and returns the body text (any status).
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// Tests of one binary that start model processes take turns: on a 2-core machine, parallel
/// model processes only slow each other down.
#[allow(dead_code)] // not every test binary uses it
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The value of the Prometheus series `series` (name with labels, e.g.
/// `colm_model_calls_total{model="m"}`) in `metrics`; panics naming it when missing.
#[allow(dead_code)] // not every test binary reads metrics
pub fn metric(metrics: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} missing in\n{metrics}"))
}

/// The path of `rel` under the shared benchmark data: `$COLM_DATA`, else `../shared/data` next
/// to the checkout.
pub fn data(rel: &str) -> String {
    let root = std::env::var("COLM_DATA")
        .unwrap_or_else(|_| format!("{}/../../../shared/data", env!("CARGO_MANIFEST_DIR")));
    format!("{root}/{rel}")
}

/// Question `n` (from 1) of GSM8K's dev set ([`data`]`("gsm8k/dev.jsonl")`).
pub fn gsm8k_question(n: usize) -> String {
    let path = data("gsm8k/dev.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let item: serde_json::Value = serde_json::from_str(text.lines().nth(n - 1).unwrap()).unwrap();
    item["question"].as_str().unwrap().to_owned()
}

/// The JSON chunks of a streamed chat answer (`data:` lines of server-sent events, `[DONE]`
/// left out).
pub fn sse_chunks(sse: &str) -> Vec<serde_json::Value> {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// How many of `chunks` carry answer text (a non-empty content delta).
pub fn content_chunks(chunks: &[serde_json::Value]) -> usize {
    chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .count()
}

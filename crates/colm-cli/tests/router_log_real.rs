//! `colm router train --from <log>` and `colm router eval` on a deployment's interaction log in a
//! real PostgreSQL: a `colm serve` hosting two real models (gemma-3-270m as the device's,
//! qwen2.5-coder-0.5b-instruct as the escalation) answers real GSM8K questions, each answer is
//! graded against the reference and the grade posted as feedback, and the router learns from
//! the log: its training and held-back items, and the outcomes it reports, are the ones the
//! test graded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use std::process::Command;

use colm_eval::suite::{gsm8k, Reference};
use serde_json::{json, Value};

const LOCAL: &str = "gemma-3-270m";
const ESCALATION: &str = "qwen2.5-coder-0.5b-instruct";
const ITEMS: usize = 15;
const HOLDOUT_EVERY: usize = 3;

/// Asks `model` the question; (record id, answer text).
async fn ask(
    client: &reqwest::Client,
    base: &str,
    model: &str,
    q: &str,
    sensitive: bool,
) -> (String, String) {
    // The device writes shorter answers than the server.
    let max_tokens = if model == LOCAL { 256 } else { 512 };
    let mut body = json!({"model": model, "max_tokens": max_tokens,
                          "messages": [{"role": "user", "content": q}]});
    if sensitive {
        body["metadata"] = json!({"sensitive": "true"});
    }
    let r = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-colm-record-id"].to_str().unwrap().to_owned();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    (
        id,
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

async fn feedback(client: &reqwest::Client, base: &str, id: &str, right: bool) {
    let r = client
        .post(format!("{base}/v1/colm/feedback"))
        .json(&json!({"record_id": id, "outcome": if right { "right" } else { "wrong" }}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

fn colm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_colm"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn router_learns_from_a_postgres_interaction_log_with_feedback() {
    let pg = colm_test_support::LocalPostgres::start().await.unwrap();
    let serve = common::start(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--model",
        LOCAL,
        "--model",
        ESCALATION,
        "--interaction-log",
        &pg.url,
    ]);
    let base = &serve.base;
    let client = reqwest::Client::new();
    let items = gsm8k::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/gsm8k/dev.jsonl"
    )))
    .unwrap();
    // (local right, escalation right) per item, in the order asked.
    let mut graded = Vec::new();
    for item in items.iter().take(ITEMS) {
        let Reference::Number { value } = &item.reference else {
            panic!("GSM8K items have numbers")
        };
        let q = &item.turns[0];
        let mut outcome = [false; 2];
        for (slot, model) in [LOCAL, ESCALATION].into_iter().enumerate() {
            let (id, answer) = ask(&client, base, model, q, false).await;
            let right = gsm8k::score(&answer, value).correct == Some(true);
            feedback(&client, base, &id, right).await;
            outcome[slot] = right;
        }
        graded.push((outcome[0], outcome[1]));
    }
    // A sensitive answer with feedback keeps no texts: it cannot be paired, and is counted.
    let (id, _) = ask(&client, base, LOCAL, &items[ITEMS].turns[0], true).await;
    feedback(&client, base, &id, false).await;
    // Records are written after their response: wait for the last one to be in.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    let dir = tempfile::tempdir().unwrap();
    let router = dir.path().join("router.json");
    let holdout = HOLDOUT_EVERY.to_string();
    let data = [
        "--from",
        pg.url.as_str(),
        "--local",
        LOCAL,
        "--escalation",
        ESCALATION,
        "--holdout-every",
        holdout.as_str(),
    ];
    let mut train_args = vec!["router", "train", "--budget", "0.5", "--out"];
    train_args.push(router.to_str().unwrap());
    train_args.extend(data);
    let (ok, out, err) = colm(&train_args);
    assert!(
        err.contains("1 answers with feedback have no texts kept"),
        "{err}"
    );
    let train: Vec<(bool, bool)> = (1..=ITEMS)
        .filter(|i| i % HOLDOUT_EVERY != 0)
        .map(|i| graded[i - 1])
        .collect();
    let helps = train.iter().filter(|(l, e)| *e && !*l).count();
    println!(
        "graded (local, escalation): {graded:?}; helps on {helps} of {}",
        train.len()
    );
    if helps == 0 || helps == train.len() {
        assert!(!ok && err.contains("nothing to learn"), "{out}{err}");
        assert!(
            err.contains(&format!("helps on {helps} of {}", train.len())),
            "{err}"
        );
        return;
    }
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!(
            "trained on {} items ({helps} where escalating helped)",
            train.len()
        )),
        "{out}"
    );
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&router).unwrap()).unwrap();
    assert_eq!(saved["escalation"], ESCALATION);

    let mut eval_args = vec!["router", "eval", "--model", router.to_str().unwrap()];
    eval_args.extend(data);
    let (ok, md, err) = colm(&eval_args);
    assert!(ok, "{md}{err}");
    let test: Vec<(bool, bool)> = (1..=ITEMS)
        .filter(|i| i % HOLDOUT_EVERY == 0)
        .map(|i| graded[i - 1])
        .collect();
    let pct = |n: usize| format!("{:.1}%", 100.0 * n as f64 / test.len() as f64);
    let local = test.iter().filter(|(l, _)| *l).count();
    let esc = test.iter().filter(|(_, e)| *e).count();
    assert!(
        md.contains(&format!("Held back: {} items", test.len())),
        "{md}"
    );
    assert!(
        md.contains(&format!("`{LOCAL}` alone {}", pct(local)))
            && md.contains(&format!("`{ESCALATION}` alone {}", pct(esc))),
        "{md}"
    );
    assert!(!md.contains(&pg.url), "no credentials in the report");
    // Another escalation than the router was trained for is refused.
    let mut wrong = eval_args.clone();
    let at = wrong.iter().position(|a| *a == ESCALATION).unwrap();
    wrong[at] = LOCAL;
    let (ok, _, err) = colm(&wrong);
    assert!(
        !ok && err.contains("was trained for the escalation"),
        "{err}"
    );
}

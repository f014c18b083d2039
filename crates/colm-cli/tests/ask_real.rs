//! `colm ask` end to end with real models on a real benchmark item: every step must produce
//! text and the JSON record must be complete.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

/// The first question of `../shared/data/gsm8k/dev.jsonl` (or `$COLM_DATA/gsm8k/dev.jsonl`).
fn first_gsm8k_question() -> String {
    let data = std::env::var("COLM_DATA")
        .unwrap_or_else(|_| format!("{}/../../../shared/data", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{data}/gsm8k/dev.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    first["question"].as_str().unwrap().to_owned()
}

/// The tests take turns: each run uses every core, and two at once mostly wait on each other.
static SERIAL: Mutex<()> = Mutex::new(());

fn ask(args: &[&str]) -> Value {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(env!("CARGO_BIN_EXE_colm"))
        .arg("ask")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "colm ask failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn text_of(step: &Value) -> &str {
    assert_eq!(step["outcome"]["status"], "ok", "{step}");
    step["outcome"]["completion"]["text"].as_str().unwrap()
}

#[test]
fn default_models_complete_a_round_on_gsm8k() {
    let question = first_gsm8k_question();
    let rec = ask(&["--max-tokens", "48", &question]);
    assert_eq!(rec["strategy"], "colm");
    assert_eq!(rec["query"], question.as_str());
    assert_eq!(rec["server_model"], "qwen2.5-coder-1.5b-instruct");
    let rounds = rec["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 1);
    let round = &rounds[0];
    let drafts = round["drafts"].as_array().unwrap();
    assert_eq!(drafts.len(), 1);
    let draft = text_of(&drafts[0]);
    assert!(!draft.trim().is_empty());
    assert_eq!(drafts[0]["model"], "qwen2.5-coder-0.5b-instruct");
    let guidance = text_of(&round["guidance"]);
    assert!(!guidance.trim().is_empty());
    // The server saw the draft.
    let g_prompt = round["guidance"]["messages"].to_string();
    assert!(g_prompt.contains(&serde_json::to_string(draft.trim()).unwrap()[1..10]));
    let refinements = round["refinements"].as_array().unwrap();
    assert_eq!(refinements.len(), 1);
    assert!(!text_of(&refinements[0]).trim().is_empty());
    // The refinement prompt holds the client's own draft as its assistant turn.
    let own = refinements[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant")
        .unwrap();
    assert_eq!(own["content"], draft);
    for step in drafts.iter().chain([&round["guidance"]]).chain(refinements) {
        let usage = &step["outcome"]["completion"]["usage"];
        let completion = usage["completion_tokens"].as_u64().unwrap();
        assert!((1..=48).contains(&completion), "{usage}");
        assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
        assert!(step["wall_ms"].as_f64().unwrap() > 0.0);
    }
    let finals = rec["final_answers"].as_array().unwrap();
    assert_eq!(finals.len(), 1);
    assert_eq!(finals[0]["from"], "refinement");
    assert_eq!(finals[0]["text"], text_of(&refinements[0]));
    let usage = rec["usage_by_model"].as_object().unwrap();
    assert_eq!(usage["qwen2.5-coder-0.5b-instruct"]["calls"], 2);
    assert_eq!(usage["qwen2.5-coder-1.5b-instruct"]["calls"], 1);
    assert!(rec["wall_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn server_selects_top_k_among_two_clients() {
    let question = first_gsm8k_question();
    let rec = ask(&[
        "--client",
        "qwen2.5-coder-0.5b-instruct",
        "--client",
        "gemma-3-270m",
        "--top-k",
        "1",
        "--max-tokens",
        "24",
        &question,
    ]);
    let sel = &rec["selection"];
    assert!(!text_of(&sel["step"]).is_empty());
    let chosen = sel["chosen"].as_array().unwrap();
    // Either a valid pick of one, or a recorded fallback to both.
    if sel["fallback_reason"].is_null() {
        assert_eq!(chosen.len(), 1, "{sel}");
    } else {
        assert_eq!(chosen.len(), 2, "{sel}");
    }
    let drafts = rec["rounds"][0]["drafts"].as_array().unwrap();
    assert_eq!(drafts.len(), chosen.len());
    assert_eq!(rec["final_answers"].as_array().unwrap().len(), chosen.len());
}

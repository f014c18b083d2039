//! `colm eval` end to end with real models on real benchmark items: records with transcripts,
//! resuming, refusing a folder of another run, and the report with its plots.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use common::data;

fn colm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_colm"))
        .args(args)
        .output()
        .unwrap()
}

fn records(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn gsm8k_run_resumes_and_reports() {
    let _turn = common::SERIAL.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    let gsm8k = data("gsm8k/dev.jsonl");
    let small = "qwen2.5-coder-0.5b-instruct";
    let args = [
        "eval",
        "gsm8k",
        "--data",
        &gsm8k,
        "--limit",
        "2",
        "--strategy",
        "local",
        "--strategy",
        "server",
        "--strategy",
        "colm",
        "--strategy",
        "colm:mode=critique",
        "--client",
        small,
        "--server",
        small,
        "--max-tokens",
        "192",
        "--ctx",
        "2048",
        "--parallel",
        "1",
        "--out",
        out_s,
    ];
    let first = colm(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 8, "2 items × 4 strategies");
    for r in &recs {
        assert!(r["error"].is_null(), "{r}");
        let score = &r["score"];
        assert!(score["correct"].is_boolean(), "{r}");
        assert!(r["wall_ms"].as_f64().unwrap() > 0.0);
    }
    let colm_rec = recs
        .iter()
        .find(|r| r["strategy"] == "colm:mode=critique")
        .unwrap();
    assert_eq!(colm_rec["server_calls"], 1);
    assert!(colm_rec["tokens"]["server_completion"].as_u64().unwrap() > 0);
    let transcript = &colm_rec["turns"][0]["transcript"];
    assert_eq!(transcript["config"]["guidance_mode"], "critique");
    let guidance_prompt = &transcript["rounds"][0]["guidance"]["messages"][0]["content"];
    assert!(guidance_prompt
        .as_str()
        .unwrap()
        .contains("Do not write a full solution"));
    let local = recs.iter().find(|r| r["strategy"] == "local").unwrap();
    assert_eq!(local["tokens"]["server_prompt"], 0);
    assert_eq!(local["server_calls"], 0);
    // CoLM's draft is the `local` request: answered once, replayed, tokens still counted.
    for colm_rec in recs
        .iter()
        .filter(|r| r["strategy"] == "colm:mode=critique")
    {
        let turn = &colm_rec["turns"][0];
        assert_eq!(turn["cached_calls"], 1, "{turn}");
        let local = recs
            .iter()
            .find(|r| r["strategy"] == "local" && r["item"] == colm_rec["item"])
            .unwrap();
        let draft = &turn["transcript"]["rounds"][0]["drafts"][0]["outcome"]["completion"];
        let local_completion = &local["turns"][0]["transcript"]["completion"];
        assert_eq!(draft["text"], local_completion["text"]);
        assert!(
            colm_rec["tokens"]["client_completion"].as_u64().unwrap()
                >= local_completion["usage"]["completion_tokens"]
                    .as_u64()
                    .unwrap()
        );
    }

    // The default CoLM: the server's own answer is the reference (the `server` strategy's very
    // request, replayed), passed on as guidance without a call; as it comes at once and
    // nothing reads a draft (`draft=auto`), the client refines without drafting.
    for colm_rec in recs.iter().filter(|r| r["strategy"] == "colm") {
        let turn = &colm_rec["turns"][0];
        assert_eq!(turn["cached_calls"], 1, "{turn}");
        let round = &turn["transcript"]["rounds"][0];
        assert_eq!(round["draft"], "skipped", "{round}");
        assert!(round["drafts"].as_array().unwrap().is_empty(), "{round}");
        assert_eq!(colm_rec["server_calls"], 1, "{colm_rec}");
        let server = recs
            .iter()
            .find(|r| r["strategy"] == "server" && r["item"] == colm_rec["item"])
            .unwrap();
        let t = &turn["transcript"];
        assert_eq!(t["config"]["guidance_mode"], "reference");
        let reference = &t["references"]["steps"][0]["outcome"]["completion"]["text"];
        assert_eq!(
            reference,
            &server["turns"][0]["transcript"]["completion"]["text"]
        );
        assert_eq!(
            &t["rounds"][0]["guidance"]["outcome"]["completion"]["text"],
            reference
        );
        assert_eq!(t["rounds"][0]["guidance_shared"], true);
        assert_eq!(
            colm_rec["tokens"]["server_completion"],
            server["tokens"]["server_completion"]
        );
    }

    // A rerun finds everything done and writes nothing.
    let again = colm(&args);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing left to run"));
    assert_eq!(records(&out).len(), 8);

    // Another server in the same folder is refused before any model loads.
    let mut other = args.to_vec();
    let i = other.iter().position(|a| *a == "--server").unwrap();
    other[i + 1] = "gemma-3-270m";
    let refused = colm(&other);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("other settings") && err.contains("server"),
        "{err}"
    );

    // The report: Markdown with the table, JSON metrics, two PNG plots.
    let report = colm(&["eval", "report", out_s]);
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| local | 2 |") && md.contains("| colm:mode=critique | 2 |"),
        "{md}"
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["metrics"].as_array().unwrap().len(), 4);
    // The anatomy scores CoLM's draft apart: the same prompt, greedy, as `local`'s answer.
    assert!(md.contains("## Anatomy of the CoLM answers"), "{md}");
    let anatomy_of = |name: &str| {
        json["colm_anatomy"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["strategy"] == name)
            .unwrap()
            .clone()
    };
    let anatomy = anatomy_of("colm:mode=critique");
    assert!(anatomy.get("reference_right").is_none(), "{anatomy}");
    let reference = anatomy_of("colm");
    assert_eq!(reference["reference_right"]["n"], 2, "{reference}");
    // (Its rounds wrote no draft: `local`'s answer, the same request, stands for it.)
    assert_eq!(reference["draft_right"]["n"], 2, "{reference}");
    // With sharing, the reference is the shared part of the default CoLM's server tokens.
    assert!(
        md.contains("## Server decode tokens per client query, with sharing"),
        "{md}"
    );
    let sharing = &json["colm_sharing"];
    assert!(
        sharing
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["strategy"] == "colm"
                && r["shared_decode"].as_f64().unwrap() > 0.0
                && r["private_decode"] == 0.0),
        "{sharing}"
    );
    assert_eq!(anatomy["draft_right"]["n"], 2);
    let local_right = recs
        .iter()
        .filter(|r| r["strategy"] == "local" && r["score"]["correct"] == true)
        .count();
    assert_eq!(anatomy["draft_right"]["k"], local_right, "{anatomy}");
    assert_eq!(reference["draft_right"]["k"], local_right, "{reference}");
    for png in ["accuracy.png", "accuracy-vs-server-tokens.png"] {
        let bytes = std::fs::read(out.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{png}");
    }
}

#[test]
fn unknown_strategies_and_missing_data_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let bad = colm(&[
        "eval",
        "arc",
        "--strategy",
        "colm:mode=loud",
        "--data",
        &data("arc/arc-challenge-dev.jsonl"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("`mode`") && stderr.contains("unknown value `loud`"),
        "{stderr}"
    );
    let missing = colm(&[
        "eval",
        "gsm8k",
        "--data",
        "/nonexistent/dev.jsonl",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/dev.jsonl"));
}

#[test]
fn humaneval_and_mmlu_items_are_scored_with_real_answers() {
    let _turn = common::SERIAL.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let small = "qwen2.5-coder-0.5b-instruct";
    let common_args = [
        "--limit",
        "1",
        "--strategy",
        "local",
        "--client",
        small,
        "--server",
        small,
        "--max-tokens",
        "256",
        "--ctx",
        "2048",
        "--parallel",
        "1",
    ];
    // One local answer to the first item of `suite`, run with `extra` options; its record.
    let first_record = |suite: &str, extra: &[&str], rel: &str| {
        let out_dir = dir.path().join(suite);
        let data_path = data(rel);
        let mut args = vec!["eval", suite];
        args.extend(extra);
        args.extend([
            "--data",
            data_path.as_str(),
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        args.extend(common_args);
        let out = colm(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        records(&out_dir).remove(0)
    };
    // HumanEval/0: the answer's code runs against the published tests in python3.
    let r = &first_record("humaneval", &[], "humaneval/HumanEval.jsonl.gz");
    assert_eq!(r["item"], "humaneval:HumanEval/0");
    assert!(r["error"].is_null(), "{r}");
    assert!(
        r["score"]["extracted"]
            .as_str()
            .unwrap()
            .contains("has_close_elements"),
        "{r}"
    );
    assert!(r["score"]["detail"]["timed_out"] == false, "{r}");
    // MMLU 5-shot, one subject: the prompt holds the five dev examples; a letter is scored.
    let r = &first_record("mmlu", &["--five-shot", "--subject", "anatomy"], "mmlu");
    assert_eq!(r["item"], "mmlu:anatomy:1");
    assert_eq!(r["category"], "anatomy");
    let prompt = r["turns"][0]["transcript"]["messages"][1]["content"]
        .as_str()
        .unwrap();
    assert_eq!(prompt.matches("\nAnswer: ").count(), 5);
    assert!(r["score"]["correct"].is_boolean(), "{r}");
}

/// Self-consistency, debate and mixture-of-agents through `colm eval` and `colm ask` on GSM8K
/// item 1, with qwen2.5-coder-0.5b as client and server: the same model on both sides, so the
/// tokens are counted by the side of the agent, not by the model's name.
#[test]
fn horizontal_strategies_run_on_real_models() {
    let _turn = common::SERIAL.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let gsm8k = data("gsm8k/dev.jsonl");
    let small = "qwen2.5-coder-0.5b-instruct";
    let run = colm(&[
        "eval",
        "gsm8k",
        "--data",
        &gsm8k,
        "--limit",
        "1",
        "--strategy",
        "self-consistency:n=2",
        "--strategy",
        "debate:agents=2,rounds=2",
        "--strategy",
        "moa:proposers=2",
        "--client",
        small,
        "--server",
        small,
        "--max-tokens",
        "128",
        "--ctx",
        "4096",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let recs = records(&out);
    let by = |name: &str| recs.iter().find(|r| r["strategy"] == name).unwrap();
    for r in &recs {
        assert!(r["error"].is_null(), "{r}");
        assert!(r["score"]["correct"].is_boolean(), "{r}");
    }

    let sc = by("self-consistency:n=2");
    let t = &sc["turns"][0]["transcript"];
    assert_eq!(t["steps"].as_array().unwrap().len(), 2);
    assert!(t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["kind"] == "sample"));
    assert_eq!(sc["server_calls"], 0);
    assert_eq!(sc["tokens"]["server_completion"], 0);

    let debate = by("debate:agents=2"); // rounds=2 is the default, left out of the name
    let steps = debate["turns"][0]["transcript"]["steps"]
        .as_array()
        .unwrap();
    assert_eq!(steps.len(), 4);
    let update = steps[2]["messages"].as_array().unwrap();
    let last = update.last().unwrap()["content"].as_str().unwrap();
    assert!(last.contains("One agent solution"), "{last}");
    // The debater's own round-1 answer is in its conversation.
    assert_eq!(update[update.len() - 2]["role"], "assistant");
    assert_eq!(debate["server_calls"], 0);

    let moa = by("moa:proposers=2");
    let steps = moa["turns"][0]["transcript"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[2]["kind"], "aggregation");
    let system = steps[2]["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("Responses from models:\n1. "), "{system}");
    assert_eq!(moa["server_calls"], 1);
    assert!(moa["tokens"]["server_completion"].as_u64().unwrap() > 0);
    assert!(moa["tokens"]["client_completion"].as_u64().unwrap() > 0);

    // `colm ask --strategy` runs the same code and prints the record.
    let ask = colm(&[
        "ask",
        "--strategy",
        "debate:agents=2,rounds=1,topology=ring",
        "--client",
        small,
        "--server",
        small,
        "--max-tokens",
        "64",
        "--json",
        "What is 12 times 3? Answer with the number.",
    ]);
    assert!(
        ask.status.success(),
        "{}",
        String::from_utf8_lossy(&ask.stderr)
    );
    let record: Value = serde_json::from_slice(&ask.stdout).unwrap();
    assert_eq!(record["strategy"], "debate");
    assert_eq!(record["config"]["topology"], "ring");
    assert_eq!(record["steps"].as_array().unwrap().len(), 2);
    assert!(!record["answer"].as_str().unwrap().is_empty());
    let bad = colm(&["ask", "--strategy", "debate:topology=mesh"]);
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("debate option `topology`: unknown value `mesh`") && said.contains("`ring`"),
        "{said}"
    );
}

/// MT-Bench's second turn through the `colm` strategy: every client call and the reference
/// writer see the first turn (the question and the answer given) as chat messages, and the
/// answer refers to what was asked then.
#[test]
fn mt_bench_second_turns_reach_colm_as_a_conversation() {
    let _turn = common::SERIAL.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let small = "qwen2.5-coder-0.5b-instruct";
    let data = data("mt_bench");
    let args = [
        "eval",
        "mt-bench",
        "--data",
        &data,
        "--limit",
        "1",
        // (Drafting at once, so the draft's conversation can be checked beside the reference's.)
        "--strategy",
        "colm:draft=always",
        "--client",
        small,
        "--server",
        small,
        "--judge",
        small,
        "--max-tokens",
        "48",
        "--ctx",
        "2048",
        "--parallel",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    let run = colm(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let turns = recs[0]["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2, "{}", recs[0]);
    let first_answer = turns[0]["answer"].as_str().unwrap();
    let second = &turns[1]["transcript"];
    let roles = |messages: &Value| -> Vec<String> {
        messages
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap().to_owned())
            .collect()
    };
    let draft = &second["rounds"][0]["drafts"][0]["messages"];
    assert_eq!(
        roles(draft),
        ["system", "user", "assistant", "user"],
        "{draft}"
    );
    assert!(draft[1]["content"].as_str().unwrap().contains("Hawaii"));
    assert_eq!(draft[2]["content"], first_answer);
    assert!(draft[3]["content"]
        .as_str()
        .unwrap()
        .contains("Start every sentence with the letter A"));
    let reference = &second["references"]["steps"][0]["messages"];
    assert_eq!(
        reference, draft,
        "the generalist writer answers the same chat"
    );
    let refinement = &second["rounds"][0]["refinements"][0]["messages"];
    assert_eq!(roles(refinement), ["system", "user", "assistant", "user"]);
    assert_eq!(refinement[2]["content"], first_answer);
}

//! `colm router train | eval` and the learned router's row in `colm eval report`, on the logged
//! outcomes of a real run: the committed records of ARC-Challenge dev items 1–100
//! (`docs/results/arc-100/run/`, client qwen2.5-coder-0.5b-instruct, server
//! qwen2.5-coder-1.5b-instruct). No model runs: the router learns from logs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::path::Path;
use std::process::{Command, Output};

fn colm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_colm"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A copy of the committed ARC run, so the report is written outside the repository.
fn arc_run(dir: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/results/arc-100/run");
    let run = dir.join("arc");
    std::fs::create_dir_all(&run).unwrap();
    for f in ["run.json", "records.jsonl"] {
        std::fs::copy(src.join(f), run.join(f)).unwrap();
    }
    run.to_str().unwrap().to_owned()
}

#[test]
fn router_trains_and_evaluates_on_logged_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let run = arc_run(dir.path());
    let model = dir.path().join("router.json");
    let model_s = model.to_str().unwrap();
    let said = ok(
        &colm(&[
            "router", "train", "--from", &run, "--budget", "0.5", "--out", model_s,
        ]),
        "router train",
    );
    assert!(said.contains("trained on"), "{said}");
    let router: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    // 100 items, every 3rd held back: 67 train.
    assert_eq!(router["trained_on"][0], 67);
    assert_eq!(router["escalation"], "server");
    assert_eq!(router["weights"].as_array().unwrap().len(), 6);
    let md_path = dir.path().join("router.md");
    let md = ok(
        &colm(&[
            "router",
            "eval",
            "--from",
            &run,
            "--model",
            model_s,
            "--out",
            md_path.to_str().unwrap(),
        ]),
        "router eval",
    );
    assert_eq!(std::fs::read_to_string(&md_path).unwrap(), md);
    assert!(md.contains("33 items"), "{md}");

    // A budget outside 0–1 and a run without the escalation strategy are clear errors.
    let bad = colm(&["router", "train", "--from", &run, "--budget", "2"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--budget"));
    let bad = colm(&[
        "router",
        "train",
        "--from",
        &run,
        "--escalation",
        "debate",
        "--out",
        model_s,
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no `debate` records"));
}

#[test]
fn report_puts_the_cross_fitted_learned_router_on_the_frontier() {
    let dir = tempfile::tempdir().unwrap();
    let run = arc_run(dir.path());
    let to = dir.path().join("report");
    ok(
        &colm(&["eval", "report", &run, "--out", to.to_str().unwrap()]),
        "eval report",
    );
    let md = std::fs::read_to_string(to.join("report.md")).unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with("| learned-router:budget=0.5 |"))
        .unwrap_or_else(|| panic!("no learned-router row in\n{md}"));
    // Every item is routed, by a router that did not see it.
    assert!(
        row.starts_with("| learned-router:budget=0.5 | 100 |"),
        "{row}"
    );
    assert!(md.contains("cross-fitted in 3 folds"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(to.join("report.json")).unwrap()).unwrap();
    let metrics = json["metrics"].as_array().unwrap();
    let get = |name: &str| {
        metrics
            .iter()
            .find(|m| m["strategy"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let (local, server, routed) = (
        get("local"),
        get("server"),
        get("learned-router:budget=0.5"),
    );
    let decode = |m: &serde_json::Value| m["tokens"]["server_completion"].as_f64().unwrap();
    // Some items escalate, not all: the router spends less of the server than `server` does.
    assert!(decode(routed) > 0.0 && decode(routed) < decode(server));
    let acc = |m: &serde_json::Value| m["accuracy"]["rate"].as_f64().unwrap();
    assert!(acc(routed) >= acc(local), "{routed} vs {local}");
}

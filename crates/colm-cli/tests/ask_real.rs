//! `colm ask` end to end with real models on a real benchmark item: every step must produce
//! text and the JSON record must be complete.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

mod common;

use common::gsm8k_question;

fn first_gsm8k_question() -> String {
    gsm8k_question(1)
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
    // The paper's round: the client drafts while the server writes its reference.
    let rec = ask(&["--max-tokens", "48", "--draft", "always", &question]);
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
    // The server's own reference, written with the draft prompt (it never saw the draft), is
    // the guidance: one reference, no synthesis call.
    let refs = rec["references"]["steps"].as_array().unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0]["kind"], "reference");
    assert_eq!(refs[0]["model"], "qwen2.5-coder-1.5b-instruct");
    assert_eq!(refs[0]["messages"], drafts[0]["messages"]);
    let guidance = text_of(&round["guidance"]);
    assert!(!guidance.trim().is_empty());
    assert_eq!(guidance, text_of(&refs[0]));
    assert_eq!(round["guidance"]["messages"].as_array().unwrap().len(), 0);
    assert_eq!(round["guidance_shared"], true);
    let refinements = round["refinements"].as_array().unwrap();
    assert_eq!(refinements.len(), 1);
    assert!(!text_of(&refinements[0]).trim().is_empty());
    // The default refinement form in reference mode, as the CoLM reference code: the guidance
    // in the system prompt, then the question; the draft stays out of it.
    assert_eq!(rec["config"]["refine"], "guidance");
    let messages = refinements[0]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().unwrap();
    assert!(system.contains(guidance.trim()), "{system}");
    assert_eq!(messages[1]["content"], question.as_str());
    assert!(!messages.iter().any(|m| m["content"] == draft));
    for step in drafts.iter().chain(refs).chain(refinements) {
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
    assert_eq!(calls(&rec, "qwen2.5-coder-0.5b-instruct"), 2);
    assert_eq!(calls(&rec, "qwen2.5-coder-1.5b-instruct"), 1);
    assert!(rec["wall_ms"].as_f64().unwrap() > 0.0);
}

/// Three specialised writers on the server model, two references per query chosen by keywords
/// (math for a GSM8K item), synthesised into guidance by the server model.
#[test]
fn specialised_writers_are_selected_and_synthesised_on_gsm8k() {
    let question = first_gsm8k_question();
    let big = "qwen2.5-coder-1.5b-instruct";
    let (math, creative, chat) = (
        format!("{big}:role=math"),
        format!("{big}:role=creative"),
        format!("{big}:role=conversation"),
    );
    let rec = ask(&[
        "--refs",
        "2",
        "--writer",
        &math,
        "--writer",
        &creative,
        "--writer",
        &chat,
        "--refine",
        "draft",
        "--max-tokens",
        "32",
        &question,
    ]);
    // `--refine draft`: the client's own draft is its previous turn in the refinement prompt.
    let refinement = &rec["rounds"][0]["refinements"][0]["messages"];
    assert_eq!(refinement[2]["role"], "assistant");
    assert_eq!(
        refinement[2]["content"].as_str(),
        Some(text_of(&rec["rounds"][0]["drafts"][0]))
    );
    let refs = &rec["references"];
    let chosen = refs["selection"]["chosen"].as_array().unwrap();
    assert_eq!(chosen.len(), 2, "{refs}");
    assert!(chosen.contains(&Value::from("math")), "{refs}");
    assert!(refs["selection"]["step"]["messages"]
        .as_array()
        .unwrap()
        .is_empty());
    let steps = refs["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    let systems: Vec<&str> = steps
        .iter()
        .map(|s| s["messages"][0]["content"].as_str().unwrap())
        .collect();
    assert!(
        systems[0].starts_with("You are an expert mathematician"),
        "{systems:?}"
    );
    assert_ne!(systems[0], systems[1]);
    let g = &rec["rounds"][0]["guidance"];
    let g_system = g["messages"][0]["content"].as_str().unwrap();
    assert!(
        g_system.contains("synthesize these responses"),
        "{g_system}"
    );
    for s in steps {
        let head: String = text_of(s).chars().take(20).collect();
        assert!(
            g_system.contains(&head),
            "{head:?} not in the synthesis prompt"
        );
    }
    // No client answer reached the synthesis (they would be quoted between <answer> tags), and
    // the round's guidance is marked shared.
    assert!(!g_system.contains("<answer>"), "{g_system}");
    assert!(rec["rounds"][0]["aggregated"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(rec["rounds"][0]["guidance_shared"], true);
    assert_eq!(calls(&rec, big), 3, "two references + one synthesis");
}

#[test]
fn the_strategy_text_form_runs_pools_and_single_models() {
    let question = gsm8k_question(2);
    let big = "qwen2.5-coder-1.5b-instruct";
    // Two references from the `roles` pool on the server model, chosen by keywords; the
    // `--refine` flag overrides the strategy's own `refine=`.
    let rec = ask(&[
        "--strategy",
        "colm:refs=2,pool=roles,refine=guidance",
        "--refine",
        "draft",
        "--max-tokens",
        "16",
        &question,
    ]);
    let refs = &rec["references"];
    let chosen = refs["selection"]["chosen"].as_array().unwrap();
    assert_eq!(chosen.len(), 2, "{refs}");
    assert!(chosen.contains(&Value::from("math")), "{refs}");
    assert_eq!(rec["config"]["refine"], "draft");
    assert_eq!(rec["config"]["references"]["k"], 2);
    assert_eq!(calls(&rec, big), 3);
    // `server`: the server model alone, with the draft prompt.
    let single = ask(&["--strategy", "server", "--max-tokens", "16", &question]);
    assert_eq!(single["strategy"], "server");
    assert_eq!(single["model"], big);
    assert_eq!(single["messages"][1]["content"], question.as_str());
    assert!(!single["completion"]["text"].as_str().unwrap().is_empty());
}

/// A GGUF without a chat template (gemma-3-270m's) runs with `--chat-template`: a llama.cpp
/// built-in name or a Jinja file; without one, or with a name llama.cpp does not know, the
/// error says what to give.
#[test]
fn any_gguf_runs_with_a_chat_template_named_or_from_a_file() {
    let gguf = Command::new(env!("CARGO_BIN_EXE_colm"))
        .args(["models", "path", "gemma-3-270m"])
        .output()
        .unwrap();
    let gguf = String::from_utf8(gguf.stdout).unwrap().trim().to_owned();
    let question = gsm8k_question(2);
    let run = |extra: &[&str]| {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        Command::new(env!("CARGO_BIN_EXE_colm"))
            .args(["ask", "--json", "--strategy", "local", "--client", &gguf])
            .args(["--max-tokens", "8"])
            .args(extra)
            .arg(&question)
            .output()
            .unwrap()
    };
    let none = run(&[]);
    assert!(!none.status.success());
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(err.contains("--chat-template NAME|FILE"), "{err}");
    let named = run(&["--chat-template", "gemma"]);
    assert!(
        named.status.success(),
        "{}",
        String::from_utf8_lossy(&named.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gemma.jinja");
    std::fs::write(
        &file,
        "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}\
         <end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
    )
    .unwrap();
    let from_file = run(&["--chat-template", file.to_str().unwrap()]);
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );
    let a: Value = serde_json::from_slice(&named.stdout).unwrap();
    let b: Value = serde_json::from_slice(&from_file.stdout).unwrap();
    assert_eq!(
        a["completion"]["text"], b["completion"]["text"],
        "the same template"
    );
    let unknown = run(&["--chat-template", "no-such-template"]);
    assert!(!unknown.status.success());
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(err.contains("chat template no-such-template"), "{err}");
}

#[test]
fn a_strategy_loads_only_the_models_it_calls() {
    let question = gsm8k_question(2);
    // A model that cannot load is no error where it is not called.
    let missing = "/nonexistent/never-loaded.gguf";
    let local = ask(&[
        "--strategy",
        "local",
        "--server",
        missing,
        "--max-tokens",
        "8",
        &question,
    ]);
    assert_eq!(local["model"], "qwen2.5-coder-0.5b-instruct");
    let server = ask(&[
        "--strategy",
        "server",
        "--client",
        missing,
        "--max-tokens",
        "8",
        &question,
    ]);
    assert_eq!(server["model"], "qwen2.5-coder-1.5b-instruct");
    // Where it is called, it is one.
    let out = Command::new(env!("CARGO_BIN_EXE_colm"))
        .args(["ask", "--strategy", "colm", "--server", missing, &question])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(missing));
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
        "--mode",
        "synthesis",
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

/// `colm ask --router FILE` on GSM8K item 1 ("Janet's ducks…") with "Janet" configured as a
/// sensitive name: redacted escalation, residency on the device, the server-token budget, and
/// a bad router file refused with the key and the file named.
#[test]
fn router_file_routes_a_real_item_with_residency_and_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let q = first_gsm8k_question();
    let file = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let routed = |path: &str| ask(&["--router", path, "--max-tokens", "64", &q]);

    // Every draft escalates (τ = 0); the name leaves the device as a placeholder.
    let redact = file(
        "redact.toml",
        "[router]\nescalate_to = \"remote\"\nthreshold = 0.0\nsensitive_names = [\"Janet\"]\n",
    );
    let r = routed(&redact);
    assert_eq!(r["route"], "remote", "{r}");
    assert_eq!(r["redacted"], true);
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert!(text_of(&steps[0]).len() > 10);
    let sent = steps[1]["messages"].to_string();
    assert!(
        sent.contains("<NAME_1>") && !sent.contains("Janet"),
        "{sent}"
    );
    let answer = r["answer"].as_str().unwrap();
    assert!(!answer.is_empty() && !answer.contains("<NAME_"), "{answer}");
    assert_eq!(r["fallback"], Value::Null);

    // Residency "local": the same query never leaves the device.
    let stay = file(
        "stay.toml",
        "[router]\nescalate_to = \"remote\"\nthreshold = 0.0\nresidency = \"local\"\n\
         sensitive_names = [\"Janet\"]\n",
    );
    let r = routed(&stay);
    assert_eq!(r["route"], "local", "{r}");
    assert_eq!(r["steps"].as_array().unwrap().len(), 1);
    assert!(
        r["reasons"].to_string().contains("stays on the device"),
        "{r}"
    );
    assert_eq!(r["answer"].as_str(), Some(text_of(&r["steps"][0])));

    // A server-token budget smaller than one escalation keeps the query local.
    let budget = file(
        "budget.toml",
        "[router]\nescalate_to = \"colm\"\nthreshold = 0.0\nserver_tokens_per_window = 10\n",
    );
    let r = routed(&budget);
    assert_eq!(r["route"], "local", "{r}");
    assert!(
        r["reasons"].to_string().contains("server-token budget"),
        "{r}"
    );

    // A bad file is refused, naming the key and the file.
    let bad = file("bad.toml", "[router]\nthreshold = 0.5\n");
    let out = Command::new(env!("CARGO_BIN_EXE_colm"))
        .args(["ask", "--json", "--router", &bad, &q])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("threshold") && err.contains("bad.toml"),
        "{err}"
    );
}

/// The agreement cascade on GSM8K item 2 ("A robe takes 2 bolts…"): the device samples two
/// more drafts, and the route follows their agreement with the draft's final answer
/// (min_share 1: both must agree to stay local).
#[test]
fn agreement_of_sampled_drafts_decides_the_route_on_a_real_item() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("agree.toml");
    std::fs::write(
        &policy,
        "[router]\nescalate_to = \"remote\"\n[router.agreement]\nsamples = 2\nmin_share = 1.0\n",
    )
    .unwrap();
    let r = ask(&[
        "--router",
        policy.to_str().unwrap(),
        "--max-tokens",
        "320",
        &gsm8k_question(2),
    ]);
    let steps = r["steps"].as_array().unwrap();
    let kinds: Vec<&str> = steps.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(&kinds[..3], ["draft", "sample", "sample"], "{r}");
    for s in &steps[..3] {
        assert!(text_of(s).len() > 10, "{s}");
    }
    let share = r["agreement"].as_f64().unwrap();
    assert!([0.0, 0.5, 1.0].contains(&share), "{r}");
    assert!(r["reasons"].to_string().contains("agreement"), "{r}");
    if share == 1.0 {
        assert_eq!(r["route"], "local", "{r}");
        assert_eq!(steps.len(), 3);
    } else {
        assert_eq!(r["route"], "remote", "{r}");
        assert_eq!(steps.len(), 4);
    }
}

/// Model calls `model` made in a JSON record: its steps (objects with `kind`, `model`,
/// `messages` and `outcome`) wherever they are, a step without messages (a vote, one reference
/// passed on) making no call — the totals a record derives from its steps.
fn calls(rec: &Value, model: &str) -> usize {
    match rec {
        Value::Object(o) => {
            let is_call = o.contains_key("outcome")
                && o.get("model") == Some(&Value::from(model))
                && o["messages"].as_array().is_some_and(|m| !m.is_empty());
            usize::from(is_call) + o.values().map(|v| calls(v, model)).sum::<usize>()
        }
        Value::Array(a) => a.iter().map(|v| calls(v, model)).sum(),
        _ => 0,
    }
}

/// `colm ask` with the question on stdin: the step view shows each step (heading, its text,
/// a footer with tokens and time) and the final answer; `--quiet` prints the final answer
/// alone, the same text as the view's final answer (greedy decoding).
#[test]
fn a_piped_question_is_answered_step_by_step_or_quietly() {
    use std::io::Write as _;
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = |extra: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_colm"))
            .args([
                "ask",
                "--client",
                "gemma-3-270m",
                "--server",
                "gemma-3-270m",
            ])
            .args(["--max-tokens", "32"])
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"What is 6 times 7?\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let view = run(&["--draft", "always"]);
    assert!(view.contains("Query: What is 6 times 7?"), "{view}");
    for heading in [
        "── round 1 · draft · client-1",
        "── round 1 · reference",
        "── round 1 · refinement",
    ] {
        assert!(view.contains(heading), "no {heading:?} in {view}");
    }
    assert!(view.contains("completion tokens ·"), "{view}");
    let quiet = run(&["--quiet"]);
    assert!(
        !quiet.contains("──") && !quiet.contains("Query:"),
        "{quiet}"
    );
    let (_, final_answer) = view.split_once("══ final answer").unwrap();
    let final_answer = final_answer.split_once("══\n").unwrap().1;
    assert!(
        final_answer.starts_with(quiet.trim()),
        "{quiet:?} vs {final_answer:?}"
    );
    assert!(!quiet.trim().is_empty());
}

/// With no question and nothing on stdin (`/dev/null`, as under CI), `colm ask` asks the sample
/// question and says so.
#[test]
fn no_question_asks_the_sample_question_and_says_so() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(env!("CARGO_BIN_EXE_colm"))
        .args(["ask", "--strategy", "local", "--client", "gemma-3-270m"])
        .args(["--server", "gemma-3-270m", "--max-tokens", "8", "--quiet"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("asking a sample question"), "{stderr}");
}

/// `draft=auto` (the default) on real models: a draft nobody reads is not written when the
/// guidance comes within the wait, and a fallback draft started because the guidance was late
/// is cancelled when it lands, its tokens kept in the record.
#[test]
fn the_draft_is_written_only_when_needed() {
    let question = first_gsm8k_question();
    let skipped = ask(&["--max-tokens", "32", "--draft-wait-ms", "600000", &question]);
    let round = &skipped["rounds"][0];
    assert_eq!(round["draft"], "skipped", "{round}");
    assert!(round["drafts"].as_array().unwrap().is_empty());
    assert!(!text_of(&round["refinements"][0]).trim().is_empty());
    assert_eq!(skipped["final_answers"][0]["from"], "refinement");
    // A slow client (1.5B) and a fast server (0.5B), a core each (so neither waits for the
    // other), drafting at once: the server's reference lands while the draft is being written.
    let cancelled = ask(&[
        "--client",
        "qwen2.5-coder-1.5b-instruct",
        "--server",
        "qwen2.5-coder-0.5b-instruct",
        "--threads",
        "1",
        "--max-tokens",
        "48",
        "--draft-wait-ms",
        "0",
        &question,
    ]);
    let round = &cancelled["rounds"][0];
    assert_eq!(round["draft"], "cancelled", "{round}");
    let outcome = &round["drafts"][0]["outcome"];
    assert_eq!(outcome["status"], "cancelled", "{outcome}");
    let used = outcome["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(used < 48, "{outcome}");
    assert!(
        outcome["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
        "{outcome}"
    );
    assert!(!text_of(&round["refinements"][0]).trim().is_empty());
}

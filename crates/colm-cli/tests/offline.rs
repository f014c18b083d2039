//! Commands that run no model: removing models from the cache, and where `colm eval` looks
//! for its data (flags, `COLM_DATA`, the `[eval]` table of a `--config` file).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

fn colm(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_colm"));
    cmd.args(args).env_remove("COLM_DATA");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn models_rm_removes_a_cached_model_and_says_when_there_is_none() {
    let home = tempfile::tempdir().unwrap();
    let models = home.path().join("models");
    std::fs::create_dir_all(models.join("all-minilm-l6-v2")).unwrap();
    std::fs::write(models.join("gemma-3-270m-q4_k_m.gguf"), b"GGUF").unwrap();
    std::fs::write(models.join("all-minilm-l6-v2/config.json"), b"{}").unwrap();
    let env = [("COLM_HOME", home.path().to_str().unwrap())];
    let out = colm(&["models", "rm", "gemma-3-270m", "all-minilm-l6-v2"], &env);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("removed gemma-3-270m"),
        "{}",
        text(&out)
    );
    assert!(!models.join("gemma-3-270m-q4_k_m.gguf").exists());
    assert!(!models.join("all-minilm-l6-v2").exists());
    let again = colm(&["models", "rm", "gemma-3-270m"], &env);
    assert!(again.status.success());
    assert!(
        text(&again).contains("gemma-3-270m is not cached"),
        "{}",
        text(&again)
    );
    let unknown = colm(&["models", "rm", "gpt-9"], &env);
    assert!(!unknown.status.success());
    assert!(text(&unknown).contains("gpt-9"), "{}", text(&unknown));
}

#[test]
fn eval_data_is_looked_for_where_the_user_said_and_missing_data_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let empty = empty.to_str().unwrap();
    // --data-dir, then COLM_DATA: the error names the place and the public source.
    for (args, env) in [
        (vec!["--data-dir", empty], vec![]),
        (vec![], vec![("COLM_DATA", empty)]),
    ] {
        let mut all = vec!["eval", "gsm8k", "--out", out, "--limit", "1"];
        all.extend(args);
        let o = colm(&all, &env);
        assert!(!o.status.success());
        let t = text(&o);
        assert!(t.contains(&format!("{empty}/gsm8k/dev.jsonl")), "{t}");
        assert!(t.contains("openai/grade-school-math"), "{t}");
    }
    // `data_dir` under `[eval]` of a --config file, relative to the file.
    let config = dir.path().join("colm.toml");
    std::fs::write(&config, "[eval]\ndata_dir = \"empty\"\n").unwrap();
    let o = colm(
        &[
            "eval",
            "arc",
            "--out",
            out,
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains(&format!("{empty}/arc/arc-challenge-dev.jsonl")),
        "{t}"
    );
    assert!(t.contains("ARC-Challenge"), "{t}");
}

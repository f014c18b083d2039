//! `colm serve` as a drop-in for what people already run (issue: embeddings, text completions,
//! the fields clients send), checked with the clients themselves: the official `openai` Python
//! SDK and LangChain's `OpenAIEmbeddings` (installed by `scripts/test`), against a real server
//! hosting qwen2.5-coder-0.5b and all-MiniLM-L6-v2, its vectors compared with
//! sentence-transformers' (`tests/fixtures/embeddings`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[tokio::test]
async fn openai_sdk_and_langchain_use_embeddings_completions_and_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.sqlite");
    let server = common::start(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--model",
        "qwen2.5-coder-0.5b-instruct=small",
        "--colm-client",
        "qwen2.5-coder-0.5b-instruct",
        "--colm-server",
        "qwen2.5-coder-0.5b-instruct",
        "--embedding-model",
        "all-minilm-l6-v2",
        "--interaction-log",
        log.to_str().unwrap(),
        "--ctx",
        "1024",
    ]);
    let python = std::env::var("COLM_PYTHON").unwrap_or_else(|_| "python3".into());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = tokio::process::Command::new(&python)
        .arg(format!("{root}/tests/sdk/openai_dropin.py"))
        .args([&server.base, "small", "all-minilm-l6-v2"])
        .arg(format!(
            "{root}/tests/fixtures/embeddings/all-minilm-l6-v2.json"
        ))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "openai_dropin.py failed (are openai and langchain-openai installed?)\n{stdout}\n{stderr}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok: ")).count(),
        15,
        "{stdout}"
    );
}

//! `colm serve` as a drop-in for what people already run (issue: embeddings, text completions,
//! the fields clients send), checked with the clients themselves: the official `openai` Python
//! SDK and LangChain's `OpenAIEmbeddings` (installed by `scripts/test`), against a real server
//! hosting qwen2.5-coder-0.5b and all-MiniLM-L6-v2, its vectors compared with
//! sentence-transformers' (`tests/fixtures/embeddings`); and where colm itself compares texts by
//! embedding (paraphrase sharing, the `embedding` selector of reference writers).

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

/// `--share-paraphrases`: a paraphrase of a stored question is served its references; a
/// near-duplicate with a number changed is not, however similar its vector.
#[tokio::test]
async fn paraphrases_share_references_and_changed_numbers_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("guidance.sqlite");
    let server = common::start(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--model",
        "qwen2.5-coder-0.5b-instruct=small",
        "--share-ttl",
        "600",
        "--store",
        store.to_str().unwrap(),
        "--share-paraphrases",
        "0.8",
        "--default-max-tokens",
        "16",
    ]);
    let client = reqwest::Client::new();
    let ask = |query: &str| {
        let (client, url) = (client.clone(), format!("{}/v1/colm/guidance", server.base));
        let body = serde_json::json!({"model": "small", "query": query}).to_string();
        async move {
            let (status, text) = common::post(&client, &url, body).await;
            assert_eq!(status, 200, "{text}");
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        }
    };
    let original = "A robe takes 2 bolts of blue fiber and half that much white fiber. How many \
                    bolts in total does it take?";
    let first = ask(original).await;
    assert_eq!(first["shared"], false);
    let paraphrase = "How many bolts in total does a robe take if it needs 2 bolts of blue fiber \
                      and half that much white fiber?";
    let second = ask(paraphrase).await;
    assert_eq!(second["shared"], true, "{second}");
    assert_eq!(second["guidance"], first["guidance"]);
    assert!(second["usage"].is_null());
    let changed = "A robe takes 3 bolts of blue fiber and half that much white fiber. How many \
                   bolts in total does it take?";
    let third = ask(changed).await;
    assert_eq!(third["shared"], false, "{third}");
    assert!(third["usage"]["completion_tokens"].as_u64().unwrap() > 0);
}

/// `selector: "embedding"` in the guidance API: among declared role writers, the one whose
/// description is nearest the question writes its reference (a GSM8K item: `math`, a poem:
/// `creative`); a server serving no embedding model refuses it with a 400 naming `selector`.
#[tokio::test]
async fn the_embedding_selector_chooses_writers_over_http() {
    const MODEL: &str = "qwen2.5-coder-0.5b-instruct";
    let writers: Vec<String> = ["math", "code", "conversation", "creative"]
        .iter()
        .map(|r| format!("{MODEL}:role={r}"))
        .collect();
    let mut args = vec![
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--model",
        MODEL,
        "--default-max-tokens",
        "8",
    ];
    for w in &writers {
        args.extend(["--writer", w.as_str()]);
    }
    let bare = common::start(&args);
    args.extend(["--embedding-model", "all-minilm-l6-v2"]);
    let embeds = common::start(&args);
    let client = reqwest::Client::new();
    let ask = |base: &str, query: &str| {
        let (client, url) = (client.clone(), format!("{base}/v1/colm/guidance"));
        let body = serde_json::json!({"model": MODEL, "query": query, "selector": "embedding"});
        async move { common::post(&client, &url, body.to_string()).await }
    };
    let gsm8k = "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning \
                 and bakes muffins for her friends every day with four. She sells the remainder \
                 at the farmers' market daily for $2 per fresh duck egg. How much in dollars does \
                 she make every day at the farmers' market?";
    for (query, writer) in [
        (gsm8k, "math"),
        ("Write a short poem about the sea at night.", "creative"),
    ] {
        let (status, text) = ask(&embeds.base, query).await;
        assert_eq!(status, 200, "{text}");
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
        let refs = answer["references"].as_array().unwrap();
        assert_eq!(refs.len(), 1, "{answer}");
        assert_eq!(refs[0]["writer"], writer, "{query}");
    }
    let (status, text) = ask(&bare.base, gsm8k).await;
    assert_eq!(status, 400, "{text}");
    let error: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["param"], "selector", "{text}");
    assert!(text.contains("--embedding-model"), "{text}");
}

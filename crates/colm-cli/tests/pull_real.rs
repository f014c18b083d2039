//! `colm models pull URL|hf:OWNER/REPO/FILE` against an HTTP server on loopback serving the
//! real gemma-3-270m GGUF: the sha256 recorded on the first pull, a later pull verifying the
//! cached file without fetching it again, a file that changed at its source refused, `hf:`
//! resolved through `HF_ENDPOINT`, and the pulled model answering `colm ask` under its name.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use colm_models::{catalog, Cache};

/// What the loopback server serves, and how often it was asked.
struct Served {
    gguf: Bytes,
    changed: AtomicBool,
    gets: AtomicUsize,
}

async fn file(State(s): State<Arc<Served>>) -> Bytes {
    s.gets.fetch_add(1, Ordering::SeqCst);
    if s.changed.load(Ordering::SeqCst) {
        Bytes::from_static(b"GGUF, but another file")
    } else {
        s.gguf.clone()
    }
}

async fn colm(args: &[&str], home: &str, hf: &str) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_colm"))
        .args(args)
        .env("COLM_HOME", home)
        .env("HF_ENDPOINT", hf)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn models_pulled_by_url_are_recorded_verified_and_used_by_name() {
    // The real gemma-3-270m from the usual cache, served as someone else's file.
    let entry = catalog::find("gemma-3-270m").unwrap();
    let real = Cache::in_home(std::env::var_os("COLM_HOME").map(Into::into))
        .unwrap()
        .ensure(
            &colm_models::ModelRef::Catalog(entry),
            &colm_models::PullOptions {
                progress: false,
                ..Default::default()
            },
        )
        .unwrap();
    let served = Arc::new(Served {
        gguf: Bytes::from(std::fs::read(&real).unwrap()),
        changed: AtomicBool::new(false),
        gets: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/files/tiny-gemma.gguf", get(file))
        .route(
            "/someone/models-GGUF/resolve/main/other-gemma.gguf",
            get(file),
        )
        .with_state(served.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let home = tempfile::tempdir().unwrap();
    let home = home.path().to_str().unwrap().to_owned();
    let url = format!("{base}/files/tiny-gemma.gguf");

    // First pull: fetched, its sha256 recorded (the catalog's, since it is the same file).
    let (ok, out, err) = colm(&["models", "pull", &url], &home, &base).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("tiny-gemma  {home}/models/pulled/tiny-gemma.gguf")),
        "{out}"
    );
    assert!(out.contains(entry.sha256), "{out}");
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{home}/models/pulled/tiny-gemma.gguf.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["sha256"], entry.sha256);
    assert_eq!(record["source"], url.as_str());
    assert_eq!(served.gets.load(Ordering::SeqCst), 1);
    let (ok, out, _) = colm(&["models", "list"], &home, &base).await;
    assert!(
        ok && out.contains("tiny-gemma") && out.contains(&format!("from {url}")),
        "{out}"
    );

    // Again: the cached file is verified against the record, not fetched.
    let (ok, out, err) = colm(&["models", "pull", &url], &home, &base).await;
    assert!(ok, "{out}{err}");
    assert_eq!(served.gets.load(Ordering::SeqCst), 1);

    // Used by its name (this GGUF has no template of its own: the catalog gives one).
    let (ok, out, err) = colm(
        &[
            "ask",
            "--client",
            "tiny-gemma",
            "--chat-template",
            "gemma",
            "--strategy",
            "local",
            "--max-tokens",
            "8",
            "--quiet",
            "What is 2 + 2?",
        ],
        &home,
        &base,
    )
    .await;
    assert!(ok && !out.trim().is_empty(), "{out}{err}");

    // The source now serves another file: with the cached copy gone, the pull refuses it.
    served.changed.store(true, Ordering::SeqCst);
    std::fs::remove_file(format!("{home}/models/pulled/tiny-gemma.gguf")).unwrap();
    let (ok, out, err) = colm(&["models", "pull", &url], &home, &base).await;
    assert!(!ok, "{out}");
    assert!(err.contains("changed since its first pull"), "{err}");
    assert!(!std::path::Path::new(&format!("{home}/models/pulled/tiny-gemma.gguf")).exists());
    served.changed.store(false, Ordering::SeqCst);

    // hf:OWNER/REPO/FILE, the hub moved to the loopback server with HF_ENDPOINT.
    let (ok, out, err) = colm(
        &["models", "pull", "hf:someone/models-GGUF/other-gemma.gguf"],
        &home,
        &base,
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("other-gemma") && out.contains(entry.sha256),
        "{out}"
    );
    let (ok, out, _) = colm(&["models", "path", "other-gemma"], &home, &base).await;
    assert!(
        ok && out.trim().ends_with("pulled/other-gemma.gguf"),
        "{out}"
    );
    let (ok, out, _) = colm(&["models", "rm", "other-gemma"], &home, &base).await;
    assert!(ok && out.contains("removed other-gemma"), "{out}");

    // What cannot be pulled is said before anything is fetched: no file, a catalog's name.
    let (ok, _, err) = colm(&["models", "pull", "hf:someone/only-a-repo"], &home, &base).await;
    assert!(!ok && err.contains("hf:OWNER/REPO/FILE"), "{err}");
    let gets = served.gets.load(Ordering::SeqCst);
    let (ok, _, err) = colm(
        &["models", "pull", &format!("{base}/files/gemma-3-270m.gguf")],
        &home,
        &base,
    )
    .await;
    assert!(!ok && err.contains("name of a catalog model"), "{err}");
    assert_eq!(served.gets.load(Ordering::SeqCst), gets);
}

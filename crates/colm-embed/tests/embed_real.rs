//! Our vectors against the ones the Python `sentence-transformers` package computes for the
//! same sentences (`scripts/embedding-reference.py`, committed as a fixture so no torch is
//! needed here), on the real all-MiniLM-L6-v2 from the cache; and the `embedding` selector of
//! reference writers on real questions.

#![allow(clippy::unwrap_used)] // test helpers

use colm_core::colm::selection::select_by_embedding;
use colm_core::prompts::{CandidateProfile, SPECIALISATIONS};
use colm_embed::Embedder;
use colm_models::{embedders, Cache, PullOptions};

/// The catalog's default embedding model, pulled when missing.
fn load(name: &str) -> Embedder {
    let entry = embedders::find(name).unwrap();
    let cache = Cache::in_home(std::env::var_os("COLM_HOME").map(Into::into)).unwrap();
    let dir = cache
        .ensure_embedder(
            entry,
            &PullOptions {
                progress: false,
                ..PullOptions::default()
            },
        )
        .unwrap();
    Embedder::load(&dir, entry).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn vectors_match_sentence_transformers() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/embeddings/all-minilm-l6-v2.json"
    ))
    .unwrap();
    let entry = embedders::find(fixture["model"].as_str().unwrap()).unwrap();
    let embedder = load(entry.name);
    let sentences: Vec<String> = fixture["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    let reference: Vec<Vec<f32>> = serde_json::from_value(fixture["embeddings"].clone()).unwrap();
    // In batches as a request sends them, and one at a time: padding must not move a vector.
    let together = embedder.embed(&sentences).unwrap();
    assert_eq!(together.vectors.len(), sentences.len());
    let mut lowest = f64::MAX;
    for (i, (ours, theirs)) in together.vectors.iter().zip(&reference).enumerate() {
        assert_eq!(ours.len(), entry.dimensions);
        let c = cosine(ours, theirs);
        lowest = lowest.min(c);
        assert!(c >= 0.999, "sentence {i} {:?}: cosine {c}", &sentences[i]);
        let alone = embedder.embed(&sentences[i..=i]).unwrap();
        let c = cosine(&alone.vectors[0], theirs);
        assert!(c >= 0.999, "sentence {i} alone: cosine {c}");
        let norm: f64 = ours
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    eprintln!(
        "lowest cosine to sentence-transformers over {} sentences: {lowest:.7}",
        sentences.len()
    );
    // The long sentence is read up to the model's 256 tokens (and matched the reference, which
    // sentence-transformers cut there too); the tokens read are counted after the cut.
    let long = sentences.last().unwrap();
    assert!(embedder.count_tokens(long).unwrap() > entry.max_tokens);
    let read: usize = sentences
        .iter()
        .map(|s| embedder.count_tokens(s).unwrap().min(entry.max_tokens))
        .sum();
    assert_eq!(together.prompt_tokens, read as u64);
    // A paraphrase is nearer than another question.
    let v = embedder
        .embed(&[
            "How many eggs does Janet sell each day?",
            "Each day, how many of her eggs does Janet sell?",
            "What is the capital of France?",
        ])
        .unwrap()
        .vectors;
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.3);
}

/// Each of the four specialisations is the embedding selector's first choice for a question
/// of its kind (a GSM8K dev item, a HumanEval-style request, a fact, a poem), with no chat
/// model loaded.
#[tokio::test]
async fn the_embedding_selector_picks_the_writer_of_the_questions_kind() {
    let embedder = load(embedders::DEFAULT_EMBEDDER);
    let profiles: Vec<CandidateProfile<'_>> = SPECIALISATIONS
        .iter()
        .map(|s| CandidateProfile {
            id: s.id,
            description: s.description,
        })
        .collect();
    let gsm8k = std::fs::read_to_string("../../../shared/data/gsm8k/dev.jsonl")
        .ok()
        .and_then(|t| t.lines().next().map(str::to_owned))
        .and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .and_then(|v| v["question"].as_str().map(str::to_owned))
        .expect("GSM8K dev item 1 in ../shared/data");
    for (question, writer) in [
        (gsm8k.as_str(), "math"),
        (
            "Write a Python function that returns the longest palindromic substring of a string.",
            "code",
        ),
        (
            "Which gas do plants take in from the air to make sugar?",
            "conversation",
        ),
        ("Write a short poem about the sea at night.", "creative"),
    ] {
        let sel = select_by_embedding(question, &profiles, 1, Some(&embedder), None).await;
        assert_eq!(sel.chosen, [writer], "{question}: {:?}", sel.step.text());
        assert!(sel.fallback_reason.is_none());
        assert_eq!(sel.step.model, embedders::DEFAULT_EMBEDDER);
        eprintln!("{writer}: {}", sel.step.text().unwrap_or_default());
    }
}

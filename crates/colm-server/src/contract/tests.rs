//! Tests of the served OpenAPI document.

use super::*;

#[test]
fn token_ranges_are_exact() {
    for n in [1u32, 2, 9, 10, 11, 100, 101, 262_144, 151_936, 1_000_000] {
        let re = regex::Regex::new(&format!("^\\+?0*({})$", below(n))).unwrap();
        for v in (0..n.min(2000)).chain(n.saturating_sub(2000)..n) {
            assert!(re.is_match(&v.to_string()), "{v} < {n}");
        }
        for v in [n, n + 1, n * 10, u32::MAX] {
            assert!(!re.is_match(&v.to_string()), "{v} ≥ {n}");
        }
        assert!(re.is_match("+00"));
    }
}

#[test]
fn the_served_document_states_the_cross_field_rules() {
    let caps = Capabilities {
        text_only: vec!["qwen".into()],
        without_tools: vec!["gemma".into()],
        vocab: vec![("gemma".into(), 262_144)],
        collaborations: vec!["colm".into()],
        prompts: vec!["gemma".into()],
        embedders: vec![("minilm".into(), 384)],
    };
    let doc = document(&caps);
    // Text completions name a model that reads prompts; embeddings an embedding model, with
    // its own length; texts are non-empty and never token ids.
    let completions = doc["components"]["schemas"]["CompletionRequest"].clone();
    assert_eq!(completions["properties"]["model"]["enum"], json!(["gemma"]));
    let embeddings = doc["components"]["schemas"]["EmbeddingRequest"].clone();
    assert_eq!(embeddings["properties"]["model"]["enum"], json!(["minilm"]));
    assert_eq!(
        embeddings["allOf"][0]["then"]["properties"]["dimensions"]["anyOf"][1]["const"],
        384
    );
    let input = doc["components"]["schemas"]["EmbeddingInput"].clone();
    assert_eq!(input["oneOf"][1]["items"]["minLength"], 1);
    assert_eq!(input["oneOf"][1]["maxItems"], 2048);
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    let guidance = schema("GuidanceRequest");
    let rules = guidance["allOf"].as_array().unwrap();
    // `model` is required unless voting.
    assert!(rules
        .iter()
        .any(|r| r["if"]["properties"]["mode"]["enum"] == json!(["vote"])
            && r["else"]["required"] == json!(["model"])));
    assert!(schema("CreateSession")["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["not"]["properties"]["mode"]["enum"] == json!(["reference-critique"])));
    let query = &guidance["properties"]["query"];
    assert_eq!(query["minLength"], 1);
    assert!(query["pattern"].as_str().unwrap().contains("\\S"));
    assert_eq!(
        schema("ChatCompletionRequest")["additionalProperties"],
        false
    );
    // Nested request objects are closed too, the variants of a tagged union included.
    for name in ["ImageUrl", "ToolCallObject", "StreamOptions"] {
        assert_eq!(schema(name)["additionalProperties"], false, "{name}");
    }
    for (name, n) in [("ResponseFormatParam", 3), ("ContentPart", 2)] {
        let variants = schema(name)["oneOf"].as_array().unwrap().clone();
        assert_eq!(variants.len(), n);
        assert!(variants.iter().all(|v| v["additionalProperties"] == false));
    }
    // Per-model rules: the text-only model takes no image part, the model without a
    // tools template no tool.
    let per_model = schema("ChatCompletionRequest")["allOf"].clone();
    assert_eq!(
        per_model[2]["if"]["properties"]["model"]["enum"],
        json!(["qwen"])
    );
    assert!(per_model[2]["then"]
        .to_string()
        .contains("\"const\":\"text\""));
    assert_eq!(
        per_model[3]["if"]["properties"]["model"]["enum"],
        json!(["gemma"])
    );
    assert!(per_model[3]["then"]
        .to_string()
        .contains("\"const\":\"tool\""));
    assert_eq!(
        document(&Capabilities::default())["components"]["schemas"]["ChatCompletionRequest"]
            ["allOf"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(schema("Stop")["oneOf"][1]["maxItems"], 4);
    assert_eq!(
        per_model[4]["if"]["properties"]["model"]["enum"],
        json!(["colm"])
    );
    assert_eq!(per_model[1]["if"]["properties"]["stream"]["const"], true);
    assert!(
        per_model[5]["then"]["properties"]["logit_bias"]["propertyNames"]["pattern"]
            .as_str()
            .unwrap()
            .contains("26214[0-2]|262143")
    );
    assert_eq!(guidance["properties"]["round"]["maximum"], u32::MAX);
    assert_eq!(
        schema("ImageUrl")["properties"]["detail"]["enum"],
        json!(["auto", null])
    );
    assert_eq!(
        schema("RequestMessage")["else"]["required"],
        json!(["content"])
    );
    assert_eq!(
        schema("SubmitDraft")["properties"]["draft"]["pattern"],
        "^[^\\u0000]*$"
    );
}

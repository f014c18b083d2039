//! The engine on real GGUF models: templates, size errors, stop strings, log-probabilities.
//! Models are pulled into the cache if missing (`colm models pull` does the same).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use futures::StreamExt;

use colm_core::{ChatMessage, ChatModel, FinishReason, ModelError, PromptReuse, SamplingParams};
use colm_engine::{EngineConfig, EngineError, LlamaEngine};
use colm_models::{catalog, Cache, ModelRef, PullOptions};

fn model_path(name: &str) -> std::path::PathBuf {
    let cache = Cache::in_home(std::env::var_os("COLM_HOME").map(Into::into)).unwrap();
    let r = ModelRef::parse(name).unwrap();
    let opts = PullOptions {
        progress: false,
        ..PullOptions::default()
    };
    cache.ensure(&r, &opts).unwrap()
}

const CLIENT: &str = "qwen2.5-coder-0.5b-instruct";

#[tokio::test]
async fn qwen_chat_counts_tokens_and_reports_confidence() {
    let engine = LlamaEngine::load(CLIENT, model_path(CLIENT), EngineConfig::default())
        .await
        .unwrap();
    assert_eq!(engine.info().chat_template, "gguf");
    let params = SamplingParams {
        max_tokens: 12,
        ..Default::default()
    };
    let out = engine
        .chat(&[ChatMessage::user("What is 7 times 6?")], &params)
        .await
        .unwrap();
    assert!(!out.text.trim().is_empty());
    assert!(out.usage.completion_tokens >= 1 && out.usage.completion_tokens <= 12);
    // The templated prompt is longer than the question alone (system + role markers).
    assert!(out.usage.prompt_tokens > 10, "{:?}", out.usage);
    let lp = out.mean_logprob.unwrap();
    assert!(lp.is_finite() && lp <= 0.0, "{lp}");
    assert!(out.timings.prompt_ms > 0.0 && out.timings.generation_ms > 0.0);
    if out.finish_reason == FinishReason::Length {
        assert_eq!(out.usage.completion_tokens, 12);
    }

    // Stop strings: cut a greedy output at a piece of itself; the rerun (same build, greedy)
    // must end right before the first occurrence.
    let long = SamplingParams {
        max_tokens: 40,
        ..Default::default()
    };
    let q = [ChatMessage::user(
        "List the numbers from 1 to 20, separated by spaces.",
    )];
    let full = engine.chat(&q, &long).await.unwrap().text;
    let chars: Vec<char> = full.chars().collect();
    assert!(chars.len() > 8, "{full:?}");
    let stop: String = chars[5..8].iter().collect();
    let cut = full.find(&stop).unwrap();
    let stopped = engine
        .chat(
            &q,
            &SamplingParams {
                stop: vec![stop.clone()],
                ..long.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(stopped.text, full[..cut], "stop {stop:?}");
    assert_eq!(stopped.finish_reason, FinishReason::Stop);

    // Streaming: the deltas add up to the same text, the stop string never leaks out.
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let streamed = engine
        .chat_streaming(
            &q,
            &SamplingParams {
                stop: vec![stop.clone()],
                ..long
            },
            tx,
        )
        .await
        .unwrap();
    let deltas: Vec<String> = rx
        .map(|e| match e {
            colm_core::StreamEvent::Delta(t) => t,
            other => panic!("a model streams only text: {other:?}"),
        })
        .collect()
        .await;
    assert!(deltas.len() > 1, "{deltas:?}");
    assert_eq!(deltas.concat(), streamed.text);
    assert_eq!(streamed.text, stopped.text);
}

#[tokio::test]
async fn oversized_prompt_is_an_error_naming_both_sizes() {
    let config = EngineConfig {
        n_ctx: 256,
        ..EngineConfig::default()
    };
    let engine = LlamaEngine::load(CLIENT, model_path(CLIENT), config)
        .await
        .unwrap();
    let long_question = "Janet's ducks lay 16 eggs per day. ".repeat(80);
    let err = engine
        .chat(
            &[ChatMessage::user(long_question)],
            &SamplingParams::default(),
        )
        .await
        .unwrap_err();
    match &err {
        ModelError::ContextOverflow {
            prompt_tokens,
            max_tokens,
            n_ctx,
        } => {
            assert!(*prompt_tokens > 256, "{prompt_tokens}");
            assert_eq!(*max_tokens, 512);
            assert_eq!(*n_ctx, 256);
            assert_eq!(u64::from(engine.info().n_ctx), *n_ctx);
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("256 context tokens"), "{msg}");
    // A prompt that fits still works afterwards.
    let ok = engine
        .chat(
            &[ChatMessage::user("Hi")],
            &SamplingParams {
                max_tokens: 4,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(ok.usage.completion_tokens >= 1);
}

#[tokio::test]
async fn base_model_without_template_needs_a_named_one() {
    let entry = catalog::find("gemma-3-270m").unwrap();
    let path = model_path(entry.name);
    let err = LlamaEngine::load("gemma", &path, EngineConfig::default())
        .await
        .err()
        .expect("loading a template-less GGUF without a template must fail");
    assert!(matches!(err, EngineError::NoChatTemplate { .. }), "{err}");
    let config = EngineConfig {
        chat_template: entry.chat_template.map(str::to_owned),
        n_ctx: 512,
        ..EngineConfig::default()
    };
    let engine = LlamaEngine::load("gemma", &path, config).await.unwrap();
    let out = engine
        .chat(
            &[ChatMessage::user("The capital of France is")],
            &SamplingParams {
                max_tokens: 8,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(out.usage.prompt_tokens > 5);
    assert!(out.usage.completion_tokens <= 8);
    // A named template has no Jinja source to render tools with: tools are refused.
    let tools = SamplingParams {
        tools: vec![colm_core::Tool {
            name: "f".into(),
            description: None,
            parameters: serde_json::json!({"type": "object"}),
        }],
        ..Default::default()
    };
    let e = engine
        .chat(&[ChatMessage::user("Call f.")], &tools)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not support tools"), "{e}");
}

#[tokio::test]
async fn a_full_queue_refuses_at_once() {
    let config = EngineConfig {
        max_queue: 1,
        n_ctx: 512,
        ..EngineConfig::default()
    };
    let engine = LlamaEngine::load(CLIENT, model_path(CLIENT), config)
        .await
        .unwrap();
    let params = SamplingParams {
        max_tokens: 24,
        ignore_eos: true,
        ..Default::default()
    };
    let q = [ChatMessage::user("Count to ten.")];
    let results = futures::future::join_all((0..4).map(|_| engine.chat(&q, &params))).await;
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(ModelError::Overloaded { .. })))
        .count();
    let served = results.iter().filter(|r| r.is_ok()).count();
    assert!(refused >= 1, "{results:?}");
    assert!(served >= 1, "{results:?}");
    assert_eq!(refused + served, 4, "{results:?}");
    assert_eq!(engine.queued(), 0);
}

/// Continuous batching: four greedy requests in flight at once are decoded in shared batches
/// and each gets the text it gets alone; a request whose caller gives up frees its sequence.
///
/// Batches of another size may round differently and flip a near-tie between two tokens (as in
/// llama.cpp, whose CPU kernels split the work by batch size), and which requests share a batch
/// depends on timing. So the questions have confident answers, and one of the four may differ
/// after its first tokens; a sequence mix-up (wrong sequence id, wrong logits row) changes all
/// of them from the first token.
#[tokio::test]
async fn concurrent_requests_share_batches_and_match_sequential_output() {
    let config = EngineConfig {
        n_ctx: 512,
        n_parallel: 4,
        ..EngineConfig::default()
    };
    let engine = std::sync::Arc::new(
        LlamaEngine::load(CLIENT, model_path(CLIENT), config)
            .await
            .unwrap(),
    );
    assert_eq!(engine.info().n_parallel, 4);
    assert_eq!(engine.info().n_ctx, 512);
    let questions = [
        "What is 7 times 6?",
        "Name the capital of France.",
        "What is the largest planet in the solar system?",
        "Count from 1 to 10.",
    ];
    let params = SamplingParams {
        max_tokens: 24,
        ..Default::default()
    };
    let mut alone = Vec::new();
    for q in questions {
        alone.push(
            engine
                .chat(&[ChatMessage::user(q)], &params)
                .await
                .unwrap()
                .text,
        );
    }
    assert_eq!(engine.stats().peak_sequences, 1);
    let together = futures::future::join_all(questions.iter().map(|q| {
        let engine = std::sync::Arc::clone(&engine);
        let params = params.clone();
        async move { engine.chat(&[ChatMessage::user(*q)], &params).await }
    }))
    .await;
    let stats = engine.stats();
    assert_eq!(stats.peak_sequences, 4, "{stats:?}");
    let together: Vec<String> = together.into_iter().map(|t| t.unwrap().text).collect();
    let mut differ = Vec::new();
    for ((q, a), t) in questions.iter().zip(&alone).zip(&together) {
        let same_start = a.chars().take(8).eq(t.chars().take(8));
        assert!(same_start, "{q}: batched {t:?} vs alone {a:?}");
        if t != a {
            differ.push(format!("{q}: batched {t:?} vs alone {a:?}"));
        }
    }
    assert!(differ.len() <= 1, "{differ:#?}");

    // A caller that gives up: its sequence is freed and later requests still work.
    let slow = SamplingParams {
        max_tokens: 200,
        ignore_eos: true,
        ..Default::default()
    };
    let haiku = [ChatMessage::user("Write a long poem about rain.")];
    let dropped = engine.chat(&haiku, &slow);
    let _ = tokio::time::timeout(std::time::Duration::from_millis(300), dropped).await;
    let again = engine
        .chat(&[ChatMessage::user(questions[0])], &params)
        .await
        .unwrap();
    assert_eq!(again.text, alone[0]);
    assert_eq!(engine.stats().active_sequences, 0);
    assert!(engine.stats().batch_tokens > 0);
}

/// Question `n` (from 1) of `../shared/data/gsm8k/dev.jsonl` (or `$COLM_DATA/gsm8k/dev.jsonl`).
fn gsm8k_question(n: usize) -> String {
    let data = std::env::var("COLM_DATA")
        .unwrap_or_else(|_| format!("{}/../../../shared/data", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{data}/gsm8k/dev.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let item: serde_json::Value = serde_json::from_str(text.lines().nth(n - 1).unwrap()).unwrap();
    item["question"].as_str().unwrap().to_owned()
}

/// The request fields of OpenAI's API that shape one completion, on a real GSM8K question:
/// `response_format` (the output parses under the schema), `logprobs`/`top_logprobs` (one
/// entry per generated token, alternatives ordered, the greedy token first among them),
/// `logit_bias` (a banned token never appears) and the frequency penalty (fewer repeats).
#[tokio::test]
async fn request_fields_shape_the_completion() {
    use colm_core::ResponseFormat;
    let engine = LlamaEngine::load(CLIENT, model_path(CLIENT), EngineConfig::default())
        .await
        .unwrap();
    let question = [ChatMessage::user(format!(
        "{}\nAnswer in JSON with the fields \"reasoning\" and \"answer\".",
        gsm8k_question(1)
    ))];

    // json_schema: decoded under the schema, so the text parses and holds the typed fields.
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "reasoning": {"type": "string", "maxLength": 200},
            "answer": {"type": "integer"}
        },
        "required": ["reasoning", "answer"],
        "additionalProperties": false
    });
    let constrained = SamplingParams {
        max_tokens: 160,
        response_format: Some(ResponseFormat::JsonSchema { schema }),
        ..Default::default()
    };
    let out = engine.chat(&question, &constrained).await.unwrap();
    assert_eq!(out.finish_reason, FinishReason::Stop, "{:?}", out.text);
    let v: serde_json::Value = serde_json::from_str(&out.text)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", out.text));
    assert!(v["answer"].is_i64(), "{v}");
    assert!(v["reasoning"].is_string(), "{v}");
    assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    // json_object: any object.
    let object = SamplingParams {
        max_tokens: 160,
        response_format: Some(ResponseFormat::JsonObject),
        ..Default::default()
    };
    let out = engine.chat(&question, &object).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&out.text)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", out.text));
    assert!(v.is_object(), "{v}");
    // A schema that does not compile is the caller's error.
    let bad = SamplingParams {
        response_format: Some(ResponseFormat::JsonSchema {
            schema: serde_json::json!({"type": "no-such-type"}),
        }),
        ..Default::default()
    };
    let e = engine.chat(&question, &bad).await.unwrap_err();
    assert!(matches!(e, ModelError::InvalidRequest(_)), "{e:?}");

    // logprobs with 3 alternatives: one entry per token; greedy picks the most likely.
    let free = [ChatMessage::user(gsm8k_question(2))];
    let probed = SamplingParams {
        max_tokens: 24,
        logprobs: Some(3),
        ..Default::default()
    };
    let out = engine.chat(&free, &probed).await.unwrap();
    let lp = out.logprobs.as_ref().unwrap();
    assert_eq!(lp.len(), out.usage.completion_tokens as usize);
    let text: Vec<u8> = lp.iter().flat_map(|t| t.bytes.clone()).collect();
    assert!(
        String::from_utf8_lossy(&text).starts_with(out.text.trim_end()),
        "{:?}",
        out.text
    );
    for t in lp {
        assert_eq!(t.top_logprobs.len(), 3);
        assert_eq!(
            t.top_logprobs[0].bytes, t.bytes,
            "greedy takes the top token"
        );
        assert!((t.top_logprobs[0].logprob - t.logprob).abs() < 1e-9);
        assert!(t
            .top_logprobs
            .windows(2)
            .all(|w| w[0].logprob >= w[1].logprob));
        assert!(t.logprob <= 0.0);
    }
    let mean = lp.iter().map(|t| t.logprob).sum::<f64>() / lp.len() as f64;
    assert!((mean - out.mean_logprob.unwrap()).abs() < 1e-6);
    let plain = engine
        .chat(
            &free,
            &SamplingParams {
                max_tokens: 24,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(plain.logprobs.is_none());
    assert_eq!(plain.text, out.text, "logprobs do not change the answer");

    // logit_bias -100 on the first greedy token: it is never generated.
    let first = lp[0].bytes.clone();
    let first_id = match engine.tokenize(std::str::from_utf8(&first).unwrap())[..] {
        [id] => id,
        ref ids => panic!("{first:?} is {ids:?}"),
    };
    let banned = SamplingParams {
        max_tokens: 24,
        logit_bias: vec![(first_id, -100.0)],
        logprobs: Some(0),
        ..Default::default()
    };
    let out = engine.chat(&free, &banned).await.unwrap();
    let lp = out.logprobs.unwrap();
    assert!(lp.iter().all(|t| t.bytes != first), "{:?}", out.text);
    let e = engine
        .chat(
            &free,
            &SamplingParams {
                logit_bias: vec![(u32::MAX - 1, 1.0)],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("vocabulary"), "{e}");

    // frequency_penalty: a list that repeats a word repeats it less.
    let repeat = [ChatMessage::user(
        "Write the word apple twenty times, separated by commas.",
    )];
    let count = |s: &str| s.to_lowercase().matches("apple").count();
    let base = SamplingParams {
        max_tokens: 60,
        ..Default::default()
    };
    let unpenalised = engine.chat(&repeat, &base).await.unwrap().text;
    let penalised = engine
        .chat(
            &repeat,
            &SamplingParams {
                frequency_penalty: 2.0,
                ..base.clone()
            },
        )
        .await
        .unwrap()
        .text;
    assert!(
        count(&penalised) < count(&unpenalised),
        "{penalised:?} vs {unpenalised:?}"
    );
}

/// Tools through the model's own chat template (Qwen2.5's): with `tool_choice` `required` the
/// answer is a call of the tool with arguments valid under its schema; the tool's result in a
/// `tool` turn reaches the model, which answers with it; `none` hides the tools (a model
/// without a Jinja template refuses them: `base_model_without_template_needs_a_named_one`).
#[tokio::test]
async fn tools_are_called_through_the_chat_template() {
    use colm_core::{Role, Tool, ToolChoice};
    let engine = LlamaEngine::load(CLIENT, model_path(CLIENT), EngineConfig::default())
        .await
        .unwrap();
    let weather = Tool {
        name: "get_weather".into(),
        description: Some("The current weather of a city.".into()),
        parameters: serde_json::json!({
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city's name."}},
            "required": ["city"]
        }),
    };
    let question = [ChatMessage::user(
        "What is the weather like in Paris today?",
    )];
    let required = SamplingParams {
        max_tokens: 64,
        tools: vec![weather.clone()],
        tool_choice: ToolChoice::Required,
        ..Default::default()
    };
    let out = engine.chat(&question, &required).await.unwrap();
    assert_eq!(out.finish_reason, FinishReason::ToolCalls, "{out:?}");
    assert_eq!(out.tool_calls.len(), 1, "{out:?}");
    let call = &out.tool_calls[0];
    assert_eq!(call.name, "get_weather");
    let args: serde_json::Value = serde_json::from_str(&call.arguments).unwrap();
    assert!(args["city"].as_str().unwrap().contains("Paris"), "{args}");
    // `auto`: the model decides; asked about the weather with a weather tool, it calls it.
    let auto = SamplingParams {
        tool_choice: ToolChoice::Auto,
        ..required.clone()
    };
    let out = engine.chat(&question, &auto).await.unwrap();
    assert_eq!(out.tool_calls.len(), 1, "{out:?}");
    assert_eq!(out.tool_calls[0].name, "get_weather");

    // The tool's result comes back in a `tool` turn; the answer uses it.
    let mut conversation = question.to_vec();
    conversation.push(ChatMessage {
        tool_calls: vec![call.clone()],
        ..ChatMessage::assistant("")
    });
    conversation.push(ChatMessage {
        tool_call_id: Some(call.id.clone()),
        ..ChatMessage::new(Role::Tool, r#"{"temperature_c": 17, "sky": "sunny"}"#)
    });
    let answer = engine.chat(&conversation, &auto).await.unwrap();
    assert!(answer.tool_calls.is_empty(), "{answer:?}");
    assert!(answer.text.contains("17"), "{:?}", answer.text);

    // `none`: the tools are not shown and nothing is parsed as a call.
    let none = SamplingParams {
        tool_choice: ToolChoice::None,
        ..required.clone()
    };
    let out = engine.chat(&question, &none).await.unwrap();
    assert!(out.tool_calls.is_empty() && !out.text.is_empty(), "{out:?}");
    // A named function that is not offered is the caller's error.
    let e = engine
        .chat(
            &question,
            &SamplingParams {
                tool_choice: ToolChoice::Function("get_time".into()),
                ..required.clone()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ModelError::InvalidRequest(_)), "{e:?}");
}

/// Prompt reuse (llama-server's `cache_prompt`) on one sequence, a real GSM8K question with a
/// follow-up. Keeping prompts only (`PromptReuse::Prompt`), the second turn skips the first
/// turn's prompt and answers exactly as a cold read does (`cache_prompt: false`, and an engine
/// with the cache off). Keeping answers too (`All`, llama-server's way), it also skips the
/// first turn's answer, reading little more than the new turn.
#[tokio::test]
async fn a_second_turn_skips_what_the_first_left() {
    let config = EngineConfig {
        n_ctx: 2048,
        n_parallel: 1,
        ..EngineConfig::default()
    };
    let load = |prompt_cache| {
        LlamaEngine::load(
            CLIENT,
            model_path(CLIENT),
            EngineConfig {
                prompt_cache,
                ..config.clone()
            },
        )
    };
    let params = SamplingParams {
        max_tokens: 48,
        ..Default::default()
    };
    let mut turns = vec![ChatMessage::user(gsm8k_question(3))];
    let follow_up = |turns: &mut Vec<ChatMessage>, answer: &str| {
        turns.push(ChatMessage::assistant(answer));
        turns.push(ChatMessage::user(
            "Check your answer step by step and give the final number.",
        ));
    };

    let exact = load(PromptReuse::Prompt).await.unwrap();
    let first = exact.chat(&turns, &params).await.unwrap();
    assert_eq!(first.usage.cached_tokens, 0, "{:?}", first.usage);
    follow_up(&mut turns, &first.text);
    let second = exact.chat(&turns, &params).await.unwrap();
    let u = second.usage;
    assert_eq!(u.cached_tokens, first.usage.prompt_tokens, "{u:?}");
    assert_eq!(exact.stats().cached_tokens, u.cached_tokens);
    let fresh = SamplingParams {
        cache_prompt: false,
        ..params.clone()
    };
    let cold = exact.chat(&turns, &fresh).await.unwrap();
    assert_eq!(cold.usage.cached_tokens, 0);
    assert_eq!(cold.usage.prompt_tokens, u.prompt_tokens);
    assert_eq!(cold.text, second.text, "reused vs read again");
    // The same request once more finds all but its last token kept.
    let repeat = exact.chat(&turns, &params).await.unwrap();
    assert_eq!(repeat.usage.cached_tokens, u.prompt_tokens - 1);
    assert_eq!(repeat.text, second.text);
    drop(exact);

    let off = load(PromptReuse::Off).await.unwrap();
    off.chat(&turns[..1], &params).await.unwrap();
    let unkept = off.chat(&turns, &params).await.unwrap();
    assert_eq!(unkept.usage.cached_tokens, 0);
    assert_eq!(unkept.text, second.text, "cache on vs off");
    drop(off);

    let all = load(PromptReuse::All).await.unwrap();
    let first = all.chat(&turns[..1], &params).await.unwrap();
    let mut turns = turns[..1].to_vec();
    follow_up(&mut turns, &first.text);
    let second = all.chat(&turns, &params).await.unwrap();
    let new = second.usage.prompt_tokens - second.usage.cached_tokens;
    // What is read again: the new turn and its template, and the few answer tokens that
    // tokenize differently inside the template than as generated.
    assert!(
        second.usage.cached_tokens > first.usage.prompt_tokens + first.usage.completion_tokens / 2
            && new < 40,
        "first {:?}, second {:?}",
        first.usage,
        second.usage
    );
    assert!(!second.text.trim().is_empty());
}

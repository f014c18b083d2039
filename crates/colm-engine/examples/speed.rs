//! Measures the engine's prompt-processing and generation speed the way llama-bench's
//! `pp512` / `tg128` do, through the same `ChatModel` path `colm ask` uses.
//!
//! ```sh
//! cargo run --release -p colm-engine --example speed -- MODEL.gguf [THREADS] [REPS]
//! ```
//! Prints one JSON object per repetition: prompt tokens and tok/s, generated tokens and tok/s.
//! The prompt is ≈512 tokens of text (templated); generation ignores end-of-generation tokens so
//! exactly 128 tokens are generated. Unlike llama-bench's tg128 (empty context), generation here
//! follows the prompt, as in real use.

use colm_core::{ChatMessage, ChatModel, SamplingParams};
use colm_engine::{EngineConfig, LlamaEngine};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: speed MODEL.gguf [THREADS] [REPS]")?;
    let threads: u32 = args.next().map_or(Ok(2), |s| s.parse())?;
    let reps: u32 = args.next().map_or(Ok(3), |s| s.parse())?;
    let config = EngineConfig {
        n_threads: Some(threads),
        n_ctx: std::env::var("N_CTX")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1024),
        ..EngineConfig::default()
    };
    let engine = LlamaEngine::load("bench", &path, config).await?;
    // ≈ 10 tokens per sentence with Qwen2.5's tokenizer; the template adds ≈ 20.
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(49);
    let messages = [ChatMessage::user(text)];
    let params = SamplingParams {
        max_tokens: 128,
        ignore_eos: true,
        ..SamplingParams::default()
    };
    for rep in 0..=reps {
        let out = engine.chat(&messages, &params).await?;
        if rep == 0 {
            continue; // warm-up, as llama-bench does
        }
        println!(
            "{{\"threads\": {threads}, \"prompt_tokens\": {}, \"pp_tok_s\": {:.2}, \
             \"gen_tokens\": {}, \"tg_tok_s\": {:.2}}}",
            out.usage.prompt_tokens,
            out.timings.prompt_tokens_per_s(&out.usage),
            out.usage.completion_tokens,
            out.timings.generation_tokens_per_s(&out.usage),
        );
    }
    Ok(())
}

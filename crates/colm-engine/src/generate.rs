//! One chat completion on an engine thread: template, tokenize, size check, prefill, decode.

use std::time::Instant;

use futures::channel::mpsc::UnboundedSender;

use colm_core::{
    ChatMessage, Completion, FinishReason, ModelError, SamplingParams, Timings, Usage,
};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

fn inference<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> ModelError + '_ {
    move |e| ModelError::Inference(format!("{what}: {e}"))
}

/// Checks sampling values; returns a message for [`ModelError::InvalidRequest`].
fn validate(messages: &[ChatMessage], params: &SamplingParams) -> Result<(), String> {
    if messages.is_empty() {
        return Err("messages must not be empty".into());
    }
    if params.max_tokens == 0 {
        return Err("max_tokens must be at least 1".into());
    }
    if !params.temperature.is_finite() || params.temperature < 0.0 {
        return Err(format!(
            "temperature must be a finite number >= 0, got {}",
            params.temperature
        ));
    }
    if !(params.top_p > 0.0 && params.top_p <= 1.0) {
        return Err(format!("top_p must be in (0, 1], got {}", params.top_p));
    }
    if params.stop.iter().any(String::is_empty) {
        return Err("stop strings must not be empty".into());
    }
    Ok(())
}

/// Runs one completion. The KV cache is cleared first: requests do not share state.
pub(crate) fn generate(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    template: &LlamaChatTemplate,
    messages: &[ChatMessage],
    params: &SamplingParams,
    deltas: Option<&UnboundedSender<String>>,
) -> Result<Completion, ModelError> {
    validate(messages, params).map_err(ModelError::InvalidRequest)?;
    let chat = messages
        .iter()
        .map(|m| LlamaChatMessage::new(m.role.as_str().to_owned(), m.content.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ModelError::InvalidRequest(format!("message content: {e}")))?;
    let prompt = model
        .apply_chat_template(template, &chat, true)
        .map_err(inference("chat template"))?;
    let vocab = model.vocab();
    let tokens = vocab.tokenize(prompt.as_bytes(), true, true);
    let n_ctx = u64::from(ctx.n_ctx());
    let prompt_tokens = tokens.len() as u64;
    if tokens.is_empty() || prompt_tokens + u64::from(params.max_tokens) > n_ctx {
        return Err(ModelError::ContextOverflow {
            prompt_tokens,
            max_tokens: u64::from(params.max_tokens),
            n_ctx,
        });
    }

    // Prefill.
    let started = Instant::now();
    ctx.clear_kv_cache();
    let n_batch = (ctx.n_batch() as usize).max(1);
    let mut batch = LlamaBatch::new(n_batch, 1);
    let last = tokens.len() - 1;
    for (c, chunk) in tokens.chunks(n_batch).enumerate() {
        batch.clear();
        for (j, &token) in chunk.iter().enumerate() {
            let pos = c * n_batch + j;
            batch
                .add(token, to_pos(pos)?, &[0], pos == last)
                .map_err(inference("batch"))?;
        }
        ctx.decode(&mut batch).map_err(inference("prompt decode"))?;
    }
    let prompt_ms = started.elapsed().as_secs_f64() * 1000.0;

    // Decode.
    let started = Instant::now();
    let mut sampler = if params.temperature == 0.0 {
        LlamaSampler::greedy()
    } else {
        LlamaSampler::chain_simple([
            LlamaSampler::top_p(params.top_p, 1),
            LlamaSampler::temp(params.temperature),
            LlamaSampler::dist(params.seed),
        ])
    };
    let max_stop = params.stop.iter().map(String::len).max().unwrap_or(0);
    let mut out: Vec<u8> = Vec::new();
    let mut logprob_sum = 0.0f64;
    let mut generated: u32 = 0;
    let mut emitted = 0usize;
    let mut finish = FinishReason::Length;
    let mut pos = tokens.len();
    let mut idx = batch.n_tokens() - 1;
    while generated < params.max_tokens {
        let token = sampler.sample(ctx, idx);
        if vocab.is_eog(token) && !params.ignore_eos {
            finish = FinishReason::Stop;
            break;
        }
        logprob_sum += token_logprob(ctx.get_logits_ith(idx), token);
        generated += 1;
        let before = out.len();
        vocab.token_to_piece_into(token, &mut out, false, None);
        if let Some(cut) = find_stop(&out, before.saturating_sub(max_stop), &params.stop) {
            out.truncate(cut);
            finish = FinishReason::Stop;
            break;
        }
        if let Some(tx) = deltas {
            // Hold back what could still become a stop string.
            let end = out.len().saturating_sub(max_stop.saturating_sub(1));
            emitted = send_delta(tx, &out, emitted, end);
        }
        if generated == params.max_tokens {
            break;
        }
        batch.clear();
        batch
            .add(token, to_pos(pos)?, &[0], true)
            .map_err(inference("batch"))?;
        pos += 1;
        ctx.decode(&mut batch).map_err(inference("decode"))?;
        idx = 0;
    }
    if let Some(tx) = deltas {
        if emitted < out.len() {
            let _ = tx.unbounded_send(String::from_utf8_lossy(&out[emitted..]).into_owned());
        }
    }
    let generation_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Completion {
        text: String::from_utf8_lossy(&out).into_owned(),
        usage: Usage {
            prompt_tokens,
            completion_tokens: u64::from(generated),
        },
        mean_logprob: (generated > 0).then(|| logprob_sum / f64::from(generated)),
        finish_reason: finish,
        timings: Timings {
            prompt_ms,
            generation_ms,
        },
        fallback: None,
        wire: None,
    })
}

/// Sends `out[emitted..end]` as a delta, stopping short of an incomplete UTF-8 sequence at the
/// end; returns the new `emitted` offset. Invalid sequences are sent lossily.
pub(crate) fn send_delta(
    tx: &UnboundedSender<String>,
    out: &[u8],
    emitted: usize,
    end: usize,
) -> usize {
    let Some(bytes) = out.get(emitted..end).filter(|b| !b.is_empty()) else {
        return emitted;
    };
    let (text, sent) = match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), bytes.len()),
        // An incomplete sequence at the end: send the valid part, keep the rest for later.
        Err(e) if e.error_len().is_none() => {
            let valid = e.valid_up_to();
            (String::from_utf8_lossy(&bytes[..valid]).into_owned(), valid)
        }
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), bytes.len()),
    };
    if sent > 0 {
        let _ = tx.unbounded_send(text);
    }
    emitted + sent
}

fn to_pos(pos: usize) -> Result<i32, ModelError> {
    i32::try_from(pos).map_err(|_| ModelError::Inference(format!("position {pos} overflows")))
}

/// Natural-log probability of `token` under softmax(`logits`) at temperature 1.
pub(crate) fn token_logprob(logits: &[f32], token: LlamaToken) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    usize::try_from(token.0)
        .ok()
        .and_then(|i| logits.get(i))
        .map_or(f64::NAN, |&l| f64::from(l - max) - sum.ln())
}

/// Byte offset of the earliest stop string that occurs in `out` at or after `from`.
pub(crate) fn find_stop(out: &[u8], from: usize, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter_map(|s| {
            let s = s.as_bytes();
            out.get(from..)?
                .windows(s.len())
                .position(|w| w == s)
                .map(|p| p + from)
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprob_is_a_log_softmax() {
        let logits = [1.0f32, 2.0, 3.0];
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        let lp = token_logprob(&logits, LlamaToken(2));
        assert!((lp - (3.0 - z.ln())).abs() < 1e-6);
        let total: f64 = (0..3)
            .map(|i| token_logprob(&logits, LlamaToken(i)).exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!(token_logprob(&logits, LlamaToken(7)).is_nan());
    }

    #[test]
    fn stop_strings_cut_at_the_earliest() {
        let stops = vec!["\n\n".to_owned(), "END".to_owned()];
        assert_eq!(find_stop(b"abc END x\n\n", 0, &stops), Some(4));
        assert_eq!(find_stop(b"abc", 0, &stops), None);
        assert_eq!(find_stop(b"END abc", 2, &stops), None);
        assert_eq!(find_stop(b"ab", 5, &stops), None);
    }

    #[test]
    fn deltas_never_split_a_utf8_character() {
        let (tx, mut rx) = futures::channel::mpsc::unbounded();
        let text = "é€ok".as_bytes(); // 2 + 3 + 2 bytes
        let mut emitted = 0;
        for end in 1..=text.len() {
            emitted = send_delta(&tx, text, emitted, end);
        }
        assert_eq!(emitted, text.len());
        drop(tx);
        let mut parts = Vec::new();
        while let Ok(p) = rx.try_recv() {
            parts.push(p);
        }
        assert_eq!(parts, vec!["é", "€", "o", "k"]);
    }

    #[test]
    fn bad_params_are_rejected() {
        let m = [ChatMessage::user("hi")];
        let ok = SamplingParams::default();
        assert!(validate(&m, &ok).is_ok());
        assert!(validate(&[], &ok).is_err());
        for p in [
            SamplingParams {
                max_tokens: 0,
                ..ok.clone()
            },
            SamplingParams {
                temperature: -1.0,
                ..ok.clone()
            },
            SamplingParams {
                top_p: 0.0,
                ..ok.clone()
            },
            SamplingParams {
                stop: vec![String::new()],
                ..ok.clone()
            },
        ] {
            assert!(validate(&m, &p).is_err(), "{p:?}");
        }
    }
}

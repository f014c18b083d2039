//! Requests on an engine thread: template, tokenize, size check ([`prepare`]), then a
//! [`Slot`] per request that is fed into shared decode batches.

use std::sync::Arc;
use std::time::Instant;

use futures::channel::mpsc::UnboundedSender;

use colm_core::{
    ChatMessage, Completion, FinishReason, Meter, ModelError, SamplingParams, StreamEvent, Timings,
    TokenLogprob, TopLogprob, Usage, PENALTY_LAST_N,
};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;
use llama_cpp_2::token::LlamaToken;
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use tokio::sync::oneshot;

use crate::tools;

fn inference<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> ModelError + '_ {
    move |e| ModelError::Inference(format!("{what}: {e}"))
}

/// Checks sampling values; returns a message for [`ModelError::InvalidRequest`].
fn validate(messages: &[ChatMessage], params: &SamplingParams) -> Result<(), String> {
    if messages.is_empty() {
        return Err("messages must not be empty".into());
    }
    if messages.iter().any(|m| !m.images.is_empty()) {
        return Err("this model reads text only: send images to a vision-language model".into());
    }
    if params.stop.iter().any(String::is_empty) {
        return Err("stop strings must not be empty".into());
    }
    params.check_ranges().map_err(|(_, message)| message)?;
    Ok(())
}

/// llguidance's parser factory for `model`, built on first use and kept in `cache` (building
/// it walks the whole vocabulary: hundreds of ms for 150k tokens).
///
/// # Errors
/// The factory cannot be built for this vocabulary (the message says why).
pub(crate) fn grammars<'c>(
    cache: &'c mut Option<Result<ParserFactory, String>>,
    model: &LlamaModel,
) -> Result<&'c ParserFactory, String> {
    cache
        .get_or_insert_with(|| {
            let env = LlamaSampler::llguidance_tok_env(model);
            ParserFactory::new_simple(&env).map_err(|e| format!("JSON constraints: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The sampler chain of a request: logit biases, then the repeat/frequency/presence penalties,
/// then the JSON constraint (llguidance, compiled from the schema by `grammars`), then greedy
/// selection or top-k → top-p → min-p → temperature → seeded draw (llama-server's order).
///
/// # Errors
/// [`ModelError::InvalidRequest`] for a token id outside the vocabulary or a schema that does
/// not compile.
pub(crate) fn sampler<'g>(
    model: &LlamaModel,
    params: &SamplingParams,
    grammars: impl FnOnce() -> Result<&'g ParserFactory, String>,
) -> Result<LlamaSampler, ModelError> {
    let n_vocab = model.n_vocab();
    let mut chain = Vec::new();
    if !params.logit_bias.is_empty() {
        let mut biases = Vec::with_capacity(params.logit_bias.len());
        for &(token, bias) in &params.logit_bias {
            let id = i32::try_from(token)
                .ok()
                .filter(|&t| t < n_vocab)
                .ok_or_else(|| {
                    ModelError::InvalidRequest(format!(
                        "logit_bias: token {token} is not in the vocabulary (0..{n_vocab})"
                    ))
                })?;
            biases.push(LlamaLogitBias::new(LlamaToken(id), bias));
        }
        chain.push(LlamaSampler::logit_bias(n_vocab, &biases));
    }
    if params.frequency_penalty != 0.0
        || params.presence_penalty != 0.0
        || params.repeat_penalty != 1.0
    {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            PENALTY_LAST_N,
            params.repeat_penalty,
            params.frequency_penalty,
            params.presence_penalty,
        ));
    }
    let tool_grammar =
        tools::grammar(&params.tools, &params.tool_choice).map_err(ModelError::InvalidRequest)?;
    let constraint = match (&params.response_format, tool_grammar) {
        (Some(_), Some(_)) => {
            return Err(ModelError::InvalidRequest(
                "response_format and a required tool_choice cannot be combined".into(),
            ))
        }
        (Some(format), None) => Some((
            TopLevelGrammar::from_json_schema(format.schema()),
            "response_format",
        )),
        (None, Some(lark)) => Some((TopLevelGrammar::from_lark(lark), "tool_choice")),
        (None, None) => None,
    };
    if let Some((grammar, field)) = constraint {
        let factory = grammars().map_err(ModelError::Inference)?;
        let parser = factory
            .create_parser(grammar)
            .map_err(|e| ModelError::InvalidRequest(format!("{field}: {e}")))?;
        chain.push(LlamaSampler::from(Matcher::new(Ok(parser))));
    }
    if params.temperature == 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if params.top_k > 0 {
            chain.push(LlamaSampler::top_k(
                i32::try_from(params.top_k).unwrap_or(i32::MAX),
            ));
        }
        chain.push(LlamaSampler::top_p(params.top_p, 1));
        if params.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(params.min_p, 1));
        }
        chain.push(LlamaSampler::temp(params.temperature));
        chain.push(LlamaSampler::dist(params.seed));
    }
    Ok(LlamaSampler::chain_simple(chain))
}

/// How an engine turns chat messages into a prompt: llama.cpp's built-in templater (for the
/// GGUF's template or a named one) and, for requests with tools, the GGUF's Jinja template
/// compiled once ([`crate::tools::Renderer`]; or why the model cannot take tools).
pub(crate) struct Templates {
    /// llama.cpp's templater.
    pub builtin: LlamaChatTemplate,
    /// The renderer of requests with tools.
    pub tools: Result<tools::Renderer, String>,
}

/// What a request reads: a chat (templated), or a raw prompt (OpenAI's legacy completions).
pub(crate) enum Input {
    /// Chat messages, rendered by the chat template.
    Chat(Vec<ChatMessage>),
    /// Text continued as it is (a BOS token first where the model wants one; special-token
    /// texts in it read as those tokens, as llama-server reads a prompt).
    Text(String),
}

/// Templates and tokenizes a request and checks that prompt + `max_tokens` fit one sequence of
/// `n_ctx_seq` tokens. A request with tools (or tool turns) is rendered by the model's Jinja
/// template ([`crate::tools::Renderer`]), other chats by llama.cpp's templater; a raw prompt is
/// read as it is.
///
/// # Errors
/// [`ModelError::InvalidRequest`] for invalid parameters or tools the template cannot render,
/// [`ModelError::ContextOverflow`] when the prompt does not fit.
pub(crate) fn prepare(
    model: &LlamaModel,
    templates: &Templates,
    n_ctx_seq: u32,
    input: &Input,
    params: &SamplingParams,
) -> Result<Vec<LlamaToken>, ModelError> {
    let messages = match input {
        Input::Chat(messages) => messages.as_slice(),
        Input::Text(prompt) => {
            if prompt.is_empty() {
                return Err(ModelError::InvalidRequest("the prompt is empty".into()));
            }
            if !params.tools.is_empty() {
                return Err(ModelError::InvalidRequest(
                    "tools need a chat (POST /v1/chat/completions)".into(),
                ));
            }
            validate(&[ChatMessage::user(prompt.as_str())], params)
                .map_err(ModelError::InvalidRequest)?;
            return fit(
                model.vocab().tokenize(prompt.as_bytes(), true, true),
                params,
                n_ctx_seq,
            );
        }
    };
    validate(messages, params).map_err(ModelError::InvalidRequest)?;
    let vocab = model.vocab();
    let (prompt, add_bos) = if tools::needed(messages, params) {
        let renderer = templates
            .tools
            .as_ref()
            .map_err(|why| ModelError::InvalidRequest(why.clone()))?;
        let prompt = renderer
            .render(messages, &params.tools, &params.tool_choice)
            .map_err(ModelError::InvalidRequest)?;
        let add_bos = !renderer.writes_bos(&prompt);
        (prompt, add_bos)
    } else {
        let chat = messages
            .iter()
            .map(|m| {
                LlamaChatMessage::new(m.role.as_str().to_owned(), m.content_with_name().into())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ModelError::InvalidRequest(format!("message content: {e}")))?;
        let prompt = model
            .apply_chat_template(&templates.builtin, &chat, true)
            .map_err(inference("chat template"))?;
        (prompt, true)
    };
    fit(
        vocab.tokenize(prompt.as_bytes(), add_bos, true),
        params,
        n_ctx_seq,
    )
}

/// `tokens` when they and `max_tokens` fit a sequence of `n_ctx_seq` tokens.
///
/// # Errors
/// [`ModelError::ContextOverflow`] with the sizes.
fn fit(
    tokens: Vec<LlamaToken>,
    params: &SamplingParams,
    n_ctx_seq: u32,
) -> Result<Vec<LlamaToken>, ModelError> {
    let prompt_tokens = tokens.len() as u64;
    let n_ctx = u64::from(n_ctx_seq);
    if tokens.is_empty() || prompt_tokens + u64::from(params.max_tokens) > n_ctx {
        return Err(ModelError::ContextOverflow {
            prompt_tokens,
            max_tokens: u64::from(params.max_tokens),
            n_ctx,
        });
    }
    Ok(tokens)
}

/// One request being served in its own sequence (`seq_id`) of the shared context: its prompt
/// is fed in chunks, then one sampled token per decode batch, next to the other sequences'
/// tokens (continuous batching, as llama-server's slots).
pub(crate) struct Slot {
    /// Sequence id in the context's KV cache.
    pub seq: i32,
    params: SamplingParams,
    deltas: Option<UnboundedSender<StreamEvent>>,
    reply: oneshot::Sender<Result<Completion, ModelError>>,
    prompt: Vec<LlamaToken>,
    /// Leading prompt tokens whose KV cache an earlier request left (not read again).
    reused: usize,
    prefilled: usize,
    /// Generated tokens fed to the model (their KV is in the cache after the prompt's).
    fed: Vec<LlamaToken>,
    /// Sampled and not yet decoded.
    next: Option<LlamaToken>,
    pos: usize,
    /// Batch index of this slot's logits in the batch being decoded.
    logits_at: Option<i32>,
    sampler: LlamaSampler,
    max_stop: usize,
    out: Vec<u8>,
    emitted: usize,
    generated: u32,
    logprob_sum: f64,
    /// Per-token log-probabilities, when the request asked for them.
    logprobs: Option<Vec<TokenLogprob>>,
    admitted: Instant,
    first_logits: Option<Instant>,
    /// The caller's request meter: every prompt token fed and token sampled is added as it is
    /// processed, so a request cancelled midway is charged what it used.
    meter: Option<Arc<Meter>>,
}

/// What a slot's step produced.
pub(crate) enum Step {
    /// Still generating (or still prefilling).
    Running,
    /// Finished with this reason; call [`Slot::complete`].
    Done(FinishReason),
}

impl Slot {
    /// A slot for a prepared prompt (see [`prepare`]) whose first `reused` tokens are in the
    /// sequence's KV cache already (counted as read: in the meter and `prompt_tokens`, and as
    /// `cached_tokens`).
    #[allow(clippy::too_many_arguments)] // one per part of a request
    pub(crate) fn new(
        seq: i32,
        prompt: Vec<LlamaToken>,
        reused: usize,
        params: SamplingParams,
        sampler: LlamaSampler,
        deltas: Option<UnboundedSender<StreamEvent>>,
        reply: oneshot::Sender<Result<Completion, ModelError>>,
        meter: Option<Arc<Meter>>,
    ) -> Self {
        // An answer that may call tools is parsed whole at the end: its text is not streamed.
        let deltas = deltas.filter(|_| !tools::offered(&params));
        let reused = reused.min(prompt.len().saturating_sub(1));
        if let Some(m) = &meter {
            m.add_prompt(reused as u64);
        }
        Self {
            logprobs: params.logprobs.map(|_| Vec::new()),
            seq,
            max_stop: params.stop.iter().map(String::len).max().unwrap_or(0),
            params,
            deltas,
            reply,
            prompt,
            reused,
            prefilled: reused,
            fed: Vec::new(),
            next: None,
            pos: reused,
            logits_at: None,
            sampler,
            out: Vec::new(),
            emitted: 0,
            generated: 0,
            logprob_sum: 0.0,
            admitted: Instant::now(),
            first_logits: None,
            meter,
        }
    }

    /// The tokens whose KV this slot's sequence holds, at positions 0..: the prompt read so far,
    /// then the generated tokens fed back.
    pub(crate) fn kv_tokens(&self) -> (&[LlamaToken], &[LlamaToken]) {
        (&self.prompt[..self.prefilled], &self.fed)
    }

    /// True when the caller has gone away (its reply future was dropped).
    pub(crate) fn cancelled(&self) -> bool {
        self.reply.is_closed()
    }

    /// True while prompt tokens remain to be fed.
    pub(crate) fn prefilling(&self) -> bool {
        self.prefilled < self.prompt.len()
    }

    /// Adds this slot's next input to `batch`: its sampled token (1 token), or up to `budget`
    /// prompt tokens. Returns the number of tokens added.
    pub(crate) fn feed(
        &mut self,
        batch: &mut LlamaBatch,
        budget: usize,
    ) -> Result<usize, ModelError> {
        self.logits_at = None;
        if let Some(token) = self.next.take() {
            if budget == 0 {
                self.next = Some(token);
                return Ok(0);
            }
            self.logits_at = Some(batch.n_tokens());
            batch
                .add(token, to_pos(self.pos)?, &[self.seq], true)
                .map_err(inference("batch"))?;
            self.fed.push(token);
            self.pos += 1;
            return Ok(1);
        }
        let take = budget.min(self.prompt.len() - self.prefilled);
        for i in self.prefilled..self.prefilled + take {
            let last = i + 1 == self.prompt.len();
            if last {
                self.logits_at = Some(batch.n_tokens());
            }
            batch
                .add(self.prompt[i], to_pos(i)?, &[self.seq], last)
                .map_err(inference("batch"))?;
        }
        self.prefilled += take;
        self.pos = self.prefilled;
        if let Some(m) = &self.meter {
            m.add_prompt(take as u64);
        }
        Ok(take)
    }

    /// After the batch was decoded: samples this slot's token if its logits were computed,
    /// cuts stop strings, streams the new text.
    pub(crate) fn step(&mut self, ctx: &LlamaContext<'_>, model: &LlamaModel) -> Step {
        let Some(idx) = self.logits_at.take() else {
            return Step::Running;
        };
        self.first_logits.get_or_insert_with(Instant::now);
        let vocab = model.vocab();
        let token = self.sampler.sample(ctx, idx);
        if vocab.is_eog(token) && !self.params.ignore_eos {
            return Step::Done(FinishReason::Stop);
        }
        let logits = ctx.get_logits_ith(idx);
        // One pass over the vocabulary per token: the entry, when asked for, holds the
        // token's log-probability.
        match (&mut self.logprobs, self.params.logprobs) {
            (Some(out), Some(k)) => {
                let entry = token_entry(logits, token, k as usize, model);
                self.logprob_sum += entry.logprob;
                out.push(entry);
            }
            _ => self.logprob_sum += token_logprob(logits, token),
        }
        self.generated += 1;
        if let Some(m) = &self.meter {
            m.add_completion(1);
        }
        let before = self.out.len();
        vocab.token_to_piece_into(token, &mut self.out, false, None);
        let from = before.saturating_sub(self.max_stop);
        if let Some(cut) = find_stop(&self.out, from, &self.params.stop) {
            self.out.truncate(cut);
            return Step::Done(FinishReason::Stop);
        }
        if let Some(tx) = &self.deltas {
            // Hold back what could still become a stop string.
            let end = self
                .out
                .len()
                .saturating_sub(self.max_stop.saturating_sub(1));
            self.emitted = send_delta(tx, &self.out, self.emitted, end);
        }
        if self.generated >= self.params.max_tokens {
            return Step::Done(FinishReason::Length);
        }
        self.next = Some(token);
        Step::Running
    }

    /// Sends the finished completion (or `error`) to the caller.
    pub(crate) fn complete(self, result: Result<FinishReason, ModelError>) {
        let result = result.map(|finish| {
            if let Some(tx) = &self.deltas {
                if self.emitted < self.out.len() {
                    let rest = String::from_utf8_lossy(&self.out[self.emitted..]).into_owned();
                    let _ = tx.unbounded_send(StreamEvent::Delta(rest));
                }
            }
            let first = self.first_logits.unwrap_or(self.admitted);
            let text = String::from_utf8_lossy(&self.out).into_owned();
            let (text, tool_calls) = if tools::offered(&self.params) {
                tools::parse_calls(&text, &self.params.tools)
            } else {
                (text, Vec::new())
            };
            let finish = if tool_calls.is_empty() {
                finish
            } else {
                FinishReason::ToolCalls
            };
            Completion {
                text,
                usage: Usage {
                    prompt_tokens: self.prompt.len() as u64,
                    completion_tokens: u64::from(self.generated),
                    cached_tokens: self.reused as u64,
                },
                mean_logprob: (self.generated > 0)
                    .then(|| self.logprob_sum / f64::from(self.generated)),
                finish_reason: finish,
                timings: Timings {
                    prompt_ms: (first - self.admitted).as_secs_f64() * 1000.0,
                    generation_ms: first.elapsed().as_secs_f64() * 1000.0,
                },
                fallback: None,
                residency: None,
                route: None,
                wire: None,
                transcript: None,
                logprobs: self.logprobs,
                tool_calls,
            }
        });
        let _ = self.reply.send(result);
    }
}

/// Sends `out[emitted..end]` as a delta, stopping short of an incomplete UTF-8 sequence at the
/// end; returns the new `emitted` offset. Invalid sequences are sent lossily.
pub(crate) fn send_delta(
    tx: &UnboundedSender<StreamEvent>,
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
        let _ = tx.unbounded_send(StreamEvent::Delta(text));
    }
    emitted + sent
}

fn to_pos(pos: usize) -> Result<i32, ModelError> {
    i32::try_from(pos).map_err(|_| ModelError::Inference(format!("position {pos} overflows")))
}

/// Natural-log probability of `token` under softmax(`logits`) at temperature 1.
pub(crate) fn token_logprob(logits: &[f32], token: LlamaToken) -> f64 {
    let logprob = log_softmax(logits);
    usize::try_from(token.0)
        .ok()
        .and_then(|i| logits.get(i))
        .map_or(f64::NAN, |&l| logprob(l))
}

/// The log-softmax of one logit of `logits` (temperature 1), as a function of that logit.
fn log_softmax(logits: &[f32]) -> impl Fn(f32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_z = logits
        .iter()
        .map(|&l| f64::from((l - max).exp()))
        .sum::<f64>()
        .ln();
    move |l: f32| f64::from(l - max) - log_z
}

/// The [`TokenLogprob`] of `token` with the `k` most likely tokens at its position, from the
/// position's raw `logits` (temperature 1, before any constraint).
fn token_entry(logits: &[f32], token: LlamaToken, k: usize, model: &LlamaModel) -> TokenLogprob {
    let logprob = log_softmax(logits);
    let piece = |t: LlamaToken| {
        let mut bytes = Vec::new();
        model
            .vocab()
            .token_to_piece_into(t, &mut bytes, false, None);
        (String::from_utf8_lossy(&bytes).into_owned(), bytes)
    };
    let mut ids: Vec<usize> = (0..logits.len()).collect();
    let k = k.min(ids.len());
    if k > 0 {
        ids.select_nth_unstable_by(k - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
    }
    ids.truncate(k);
    ids.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let top_logprobs = ids
        .into_iter()
        .filter_map(|i| {
            let t = LlamaToken(i32::try_from(i).ok()?);
            let (text, bytes) = piece(t);
            Some(TopLogprob {
                token: text,
                logprob: logprob(logits[i]),
                bytes,
            })
        })
        .collect();
    let (text, bytes) = piece(token);
    TokenLogprob {
        token: text,
        logprob: usize::try_from(token.0)
            .ok()
            .and_then(|i| logits.get(i))
            .map_or(f64::NAN, |&l| logprob(l)),
        bytes,
        top_logprobs,
    }
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
        while let Ok(StreamEvent::Delta(p)) = rx.try_recv() {
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

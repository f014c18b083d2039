//! How to generate: [`SamplingParams`] (sampling, length, penalties, tools, response format,
//! log-probabilities), one definition read by every engine and the API.

use serde::{Deserialize, Serialize};

use super::message::{Tool, ToolChoice};

/// How to sample a completion.
///
/// Greedy decoding (`temperature == 0.0`) is the default, so runs are deterministic on one
/// build of llama.cpp (greedy output can still differ between CPU builds, e.g. AVX2 vs AVX-512).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// Upper bound on generated tokens.
    pub max_tokens: u32,
    /// Softmax temperature; `0.0` means greedy (argmax).
    pub temperature: f32,
    /// Nucleus sampling mass in `(0, 1]`; `1.0` disables it. Ignored when greedy.
    pub top_p: f32,
    /// Seed of the random sampler. Ignored when greedy.
    pub seed: u32,
    /// Generation stops before the first occurrence of any of these strings; the stop string
    /// itself is not part of the returned text.
    pub stop: Vec<String>,
    /// Keep generating past end-of-generation tokens until `max_tokens` (for benchmarks, as
    /// llama-server's `ignore_eos`).
    #[serde(default)]
    pub ignore_eos: bool,
    /// Keep only the `k` most likely tokens before drawing (llama.cpp's and vLLM's `top_k`);
    /// 0 disables it. Ignored when greedy.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub top_k: u32,
    /// Drop tokens whose probability is below `min_p` × the most likely token's (llama.cpp's
    /// and vLLM's `min_p`, in [0, 1]); 0 disables it. Ignored when greedy.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_p: f32,
    /// Divides a positive logit (multiplies a negative one) of a token seen in the last
    /// [`PENALTY_LAST_N`] tokens (llama.cpp's `repeat_penalty`, vLLM's `repetition_penalty`;
    /// CTRL, Keskar et al. 2019, §4.1); in (0, 10], 1 disables it. Applies when greedy too.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub repeat_penalty: f32,
    /// Whether an engine may reuse the KV cache an earlier request left for the longest
    /// common prefix of this prompt (llama-server's `cache_prompt`, default true). Greedy
    /// answers are the same either way; `false` reads the whole prompt again.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub cache_prompt: bool,
    /// A request flag, not a sampling setting: the query holds data that must not leave the
    /// device in clear (data residency: Yuan et al., "LLMs over networks", arXiv 2605.08626,
    /// vertical collaboration). Only a device–cloud router reads it (the query then stays local or
    /// leaves redacted, as its policy says); models ignore it. Left out of the serialized form
    /// when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
    /// Penalty in [-2, 2] subtracted from a token's logit once per earlier occurrence in the
    /// completion (OpenAI's `frequency_penalty`; llama.cpp's penalties sampler over the last
    /// [`PENALTY_LAST_N`] generated tokens). 0 disables it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frequency_penalty: f32,
    /// Penalty in [-2, 2] subtracted from a token's logit when it occurred at all in the
    /// completion (OpenAI's `presence_penalty`). 0 disables it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub presence_penalty: f32,
    /// Biases in [-100, 100] added to the logits of token ids of the model's vocabulary
    /// (OpenAI's `logit_bias`; -100 bans a token, 100 forces it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logit_bias: Vec<(u32, f32)>,
    /// Constrains the completion to JSON (OpenAI's `response_format`); `None`: free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Return each generated token's log-probability with this many most likely alternatives
    /// (0–20; OpenAI's `logprobs: true` with `top_logprobs`); `None`: no per-token data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    /// Tools the model may call (OpenAI's `tools`), rendered by the model's chat template;
    /// calls in the answer come back in [`Completion::tool_calls`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Whether and which tool must be called (OpenAI's `tool_choice`).
    #[serde(default, skip_serializing_if = "ToolChoice::is_auto")]
    pub tool_choice: ToolChoice,
}

impl SamplingParams {
    /// Checks the ranges of OpenAI's decoding fields: penalties in [-2, 2], logit biases in
    /// [-100, 100], at most [`MAX_TOP_LOGPROBS`] alternatives per token. The one definition
    /// of these limits, used by the server (a 400 naming the field) and the engine.
    ///
    /// # Errors
    /// The request field at fault and a message naming the value.
    pub fn check_ranges(&self) -> Result<(), (&'static str, String)> {
        if self.max_tokens == 0 {
            return Err(("max_tokens", "max_tokens must be at least 1".into()));
        }
        let t = self.temperature;
        // Request floats are narrowed away from zero (`colm_api::float`), so a value beyond a
        // bound by less than an f32 step is still beyond it here.
        if !(0.0..=2.0).contains(&t) {
            return Err((
                "temperature",
                format!("temperature must be in [0, 2], got {t}"),
            ));
        }
        let p = self.top_p;
        if !(p > 0.0 && p <= 1.0) {
            return Err(("top_p", format!("top_p must be in (0, 1], got {p}")));
        }
        for (name, p) in [
            ("frequency_penalty", self.frequency_penalty),
            ("presence_penalty", self.presence_penalty),
        ] {
            if !(-2.0..=2.0).contains(&p) {
                return Err((name, format!("{name} must be in [-2, 2], got {p}")));
            }
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err((
                "min_p",
                format!("min_p must be in [0, 1], got {}", self.min_p),
            ));
        }
        let r = self.repeat_penalty;
        if !(r > 0.0 && r <= 10.0) {
            return Err((
                "repeat_penalty",
                format!("repeat_penalty must be in (0, 10], got {r}"),
            ));
        }
        if let Some((t, b)) = self
            .logit_bias
            .iter()
            .find(|(_, b)| !(-100.0..=100.0).contains(b))
        {
            return Err((
                "logit_bias",
                format!("logit_bias of token {t} must be in [-100, 100], got {b}"),
            ));
        }
        if self.logprobs.is_some_and(|k| k > MAX_TOP_LOGPROBS) {
            return Err((
                "top_logprobs",
                format!("top_logprobs must be in [0, {MAX_TOP_LOGPROBS}]"),
            ));
        }
        Ok(())
    }
}

/// Most alternatives per token a request may ask for ([`SamplingParams::logprobs`], OpenAI's
/// `top_logprobs` limit).
pub const MAX_TOP_LOGPROBS: u32 = 20;

/// Generated tokens the frequency and presence penalties look back over (llama-server's
/// default `repeat_last_n`).
pub const PENALTY_LAST_N: i32 = 64;

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

fn is_zero_u32(x: &u32) -> bool {
    *x == 0
}

fn one() -> f32 {
    1.0
}

fn is_one(x: &f32) -> bool {
    *x == 1.0
}

/// What an engine keeps of a finished request for the next request to reuse (llama-server's
/// prompt cache): a request then reads only what follows the longest prefix it shares with what
/// a free sequence keeps. A request opts out with [`SamplingParams::cache_prompt`] `false`.
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptReuse {
    /// Nothing: every prompt is read from the start.
    Off,
    /// The prompt tokens it read. Their KV cache is computed as a cold read computes it (in
    /// prompt batches), so a greedy answer is the same with and without reuse (tested).
    Prompt,
    /// The prompt and the tokens it generated, as llama-server does: a chat's next turn reads
    /// only the new turn. The generated tokens' KV cache was computed one token at a time, which
    /// rounds differently from a prompt batch on the CPU backend, so a greedy answer can part
    /// from a cold read's after some tokens (llama-server's documentation warns of the same
    /// for `cache_prompt`).
    #[default]
    All,
}

impl crate::named::Named for PromptReuse {}

/// A constraint on the completion's form (OpenAI's `response_format`, other than `text`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Any JSON object.
    JsonObject,
    /// JSON valid under a JSON Schema (constrained decoding: llguidance in the embedded
    /// engine).
    JsonSchema {
        /// The schema.
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        schema: serde_json::Value,
    },
}

impl ResponseFormat {
    /// The JSON Schema the completion must satisfy (`{"type": "object"}` for a JSON object).
    pub fn schema(&self) -> serde_json::Value {
        match self {
            ResponseFormat::JsonObject => serde_json::json!({"type": "object"}),
            ResponseFormat::JsonSchema { schema } => schema.clone(),
        }
    }
}

/// Tokens generated per step when a request does not say: every CLI flag, the server's
/// default for requests without `max_tokens`, and [`SamplingParams::default`] read it.
pub const DEFAULT_MAX_TOKENS: u32 = 512;

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            max_tokens: DEFAULT_MAX_TOKENS,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            seed: 0,
            stop: Vec::new(),
            ignore_eos: false,
            cache_prompt: true,
            sensitive: false,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            logit_bias: Vec::new(),
            response_format: None,
            logprobs: None,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
        }
    }
}

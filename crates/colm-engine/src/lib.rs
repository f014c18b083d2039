//! colm-engine: GGUF models run in process through llama.cpp (`llama-cpp-2`), behind the
//! [`ChatModel`] trait of `colm-core`.
//!
//! Each loaded model gets **one engine thread** that owns the model and its context and
//! serves up to [`EngineConfig::n_parallel`] requests at once with continuous batching (each
//! request is a sequence of one shared context; every decode batch carries one new token of
//! each generating sequence plus prompt chunks of newly admitted ones); callers talk to it through an async handle,
//! [`LlamaEngine`], which is cheap to share (`Arc`). Prompts are built with the model's own
//! chat template from the GGUF metadata (or a named llama.cpp template for models without
//! one). Decoding is greedy by default, with temperature / top-p / seed sampling, a
//! `max_tokens` bound and stop strings. A prompt that does not fit the context window is an
//! error naming the sizes, never truncated.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use colm_core::{ChatMessage, ChatModel, SamplingParams};
//! use colm_engine::{EngineConfig, LlamaEngine};
//! let engine = LlamaEngine::load("qwen", "model.gguf", EngineConfig::default()).await?;
//! let out = engine
//!     .chat(&[ChatMessage::user("2+2?")], &SamplingParams::default())
//!     .await?;
//! println!("{} ({} tokens)", out.text, out.usage.completion_tokens);
//! # Ok(()) }
//! ```

mod generate;
mod reuse;
mod tools;

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use colm_core::{
    ChatMessage, ChatModel, Completion, FinishReason, ModelError, PromptReuse, SamplingParams,
    StreamEvent,
};
use futures::channel::mpsc::UnboundedSender;
use generate::{Slot, Step, Templates};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use reuse::PromptCache;
use tokio::sync::{mpsc, oneshot};

/// Settings of one loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Context window in tokens (prompt + completion). Capped at the model's training context.
    pub n_ctx: u32,
    /// CPU threads for prompt processing and generation; `None` = all available cores.
    pub n_threads: Option<u32>,
    /// Tokens per decode call during prompt processing (llama.cpp `n_batch` = `n_ubatch`).
    pub n_batch: u32,
    /// Memory-map the GGUF file (faster load; file pages count in RSS).
    pub use_mmap: bool,
    /// The chat template to use instead of the GGUF's own (required for a GGUF without one):
    /// a llama.cpp built-in template name (`chatml`, `gemma`, `llama3`, …), or a Jinja
    /// template's text — read by llama.cpp's templater, which recognises the template family by
    /// its markers, and rendered with minijinja for requests with tools.
    pub chat_template: Option<String>,
    /// Requests that may wait for a free sequence; one more is refused with
    /// [`ModelError::Overloaded`] (at least 1).
    pub max_queue: usize,
    /// Sequences decoded together (continuous batching; llama-server's `-np`). Each has its
    /// own `n_ctx`-token KV cache, so memory grows with `n_ctx × n_parallel`.
    pub n_parallel: u32,
    /// Decode calls of every model loaded with this flag take turns (one process-wide lock).
    /// When each model uses all cores, two models decoding at once only oversubscribe them:
    /// ggml's threads spin at barriers while the other model's threads hold the cores, and
    /// both slow down many times over (measured here: a CoLM round with the client and server
    /// models busy together went from ~40 s to several minutes). Turn it off when models are
    /// given disjoint cores (`n_threads` summing to at most the core count).
    pub exclusive_compute: bool,
    /// What a finished request leaves in its sequence's KV cache for the next request with the
    /// same leading tokens to skip (llama-server's prompt cache, on there too by default): a
    /// chat's next turn, or a refinement after its draft, reads only what is new. A request
    /// opts out with `cache_prompt: false`. See [`PromptReuse`] for which answers stay
    /// bit-identical.
    pub prompt_cache: PromptReuse,
    /// Fewest leading tokens worth reusing: a request sharing fewer with every free sequence
    /// takes the least recently used one (leaving better matches for others).
    pub prompt_cache_min: u32,
}

/// The turn taken by decode calls of models with [`EngineConfig::exclusive_compute`].
static COMPUTE_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            n_ctx: 8192,
            n_threads: None,
            n_batch: 512,
            use_mmap: true,
            chat_template: None,
            max_queue: 64,
            n_parallel: 4,
            exclusive_compute: true,
            prompt_cache: PromptReuse::All,
            prompt_cache_min: 16,
        }
    }
}

/// Errors while loading a model.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// llama.cpp's backend could not be initialised.
    #[error("llama.cpp backend failed to initialise: {0}")]
    Backend(String),
    /// The file is missing or not a loadable GGUF.
    #[error("cannot load model {path}: {reason}")]
    Load {
        /// The GGUF path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The GGUF has no chat template and none was configured.
    #[error(
        "model {path} has no chat template in its GGUF metadata; give one with \
         --chat-template NAME|FILE: one of llama.cpp's built-in templates (for example \
         `chatml`, `llama3`, `gemma`, `mistral-v7`, `phi3`) or a Jinja file"
    )]
    NoChatTemplate {
        /// The GGUF path.
        path: PathBuf,
    },
    /// The context could not be created (usually memory).
    #[error("cannot create a {n_ctx}-token context for {path}: {reason}")]
    Context {
        /// The GGUF path.
        path: PathBuf,
        /// Requested context size, tokens.
        n_ctx: u32,
        /// What went wrong.
        reason: String,
    },
    /// The engine thread could not be started or died while loading.
    #[error("engine thread failed: {0}")]
    Thread(String),
}

/// Facts about a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Display name.
    pub name: String,
    /// GGUF path.
    pub path: PathBuf,
    /// Context window of one request (sequence) in use, tokens (llama.cpp may round the
    /// requested size up).
    pub n_ctx: u32,
    /// Sequences decoded together (continuous batching).
    pub n_parallel: u32,
    /// Context window the model was trained with, tokens.
    pub n_ctx_train: u32,
    /// Parameter count.
    pub n_params: u64,
    /// Size of the weights, bytes.
    pub size_bytes: u64,
    /// Threads in use.
    pub n_threads: u32,
    /// Where the chat template came from: `gguf` or the configured name.
    pub chat_template: String,
    /// Whether the chat template renders tool definitions, tool calls and tool results.
    pub tools: bool,
}

/// Describes how llama.cpp was compiled into this binary: `native` when built with
/// `-C target-cpu=native` (GGML_NATIVE on, see `.cargo/config.toml`), with the SIMD features
/// the compiler targeted; `portable` otherwise.
pub fn build_info() -> String {
    let mut features = Vec::new();
    if cfg!(target_feature = "avx2") {
        features.push("avx2");
    }
    if cfg!(target_feature = "fma") {
        features.push("fma");
    }
    if cfg!(target_feature = "avx512f") {
        features.push("avx512f");
    }
    if cfg!(target_feature = "avx512vnni") {
        features.push("avx512vnni");
    }
    let kind = if cfg!(target_feature = "avx2") {
        "native"
    } else {
        "portable"
    };
    format!("llama.cpp {kind} build ({})", features.join(", "))
}

fn backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp logs go to `tracing` (target `llama-cpp-2`), filtered like our own.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Backend(e.clone()))
}

struct Job {
    input: generate::Input,
    params: SamplingParams,
    deltas: Option<UnboundedSender<StreamEvent>>,
    reply: oneshot::Sender<Result<Completion, ModelError>>,
    /// The caller's request meter ([`colm_core::Meter::current`] when it submitted).
    meter: Option<Arc<colm_core::Meter>>,
}

/// Async handle to a model served by its own engine thread.
///
/// Up to [`EngineConfig::n_parallel`] requests are decoded together (continuous batching),
/// admitted in arrival order; at most
/// [`EngineConfig::max_queue`] wait, and one more is refused at once with
/// [`ModelError::Overloaded`]. Dropping the last handle stops the thread once its queue is
/// drained.
pub struct LlamaEngine {
    info: ModelInfo,
    /// Shared with the engine thread; read-only here (tokenizer).
    model: Arc<LlamaModel>,
    jobs: mpsc::Sender<Job>,
    counters: Arc<Counters>,
}

/// Live counters of an engine thread (see [`LlamaEngine::stats`]).
#[derive(Debug, Default)]
struct Counters {
    decode_batches: AtomicU64,
    batch_tokens: AtomicU64,
    active: AtomicU64,
    peak_active: AtomicU64,
    cached_tokens: AtomicU64,
}

/// What an engine has done so far: how well continuous batching fills its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStats {
    /// `llama_decode` calls.
    pub decode_batches: u64,
    /// Tokens over all decoded batches (prompt + generated).
    pub batch_tokens: u64,
    /// Requests being served now (each one sequence).
    pub active_sequences: u64,
    /// Most requests ever served at once.
    pub peak_sequences: u64,
    /// Prompt tokens not read again because an earlier request left them in the KV cache
    /// ([`EngineConfig::prompt_cache`]).
    pub cached_tokens: u64,
}

impl LlamaEngine {
    /// Loads the GGUF at `path` on a new engine thread and waits until it is ready.
    ///
    /// # Errors
    /// [`EngineError`] when the backend, file, chat template or context cannot be set up.
    pub async fn load(
        name: impl Into<String>,
        path: impl AsRef<Path>,
        config: EngineConfig,
    ) -> Result<Self, EngineError> {
        let name = name.into();
        let path = path.as_ref().to_path_buf();
        let (jobs, rx) = mpsc::channel(config.max_queue.max(1));
        let (ready_tx, ready_rx) = oneshot::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name(format!("engine-{name}"))
            .spawn(move || engine_thread(name, path, config, ready_tx, rx, &thread_counters))
            .map_err(|e| EngineError::Thread(e.to_string()))?;
        let (info, model) = ready_rx
            .await
            .map_err(|_| EngineError::Thread("engine thread exited while loading".into()))??;
        Ok(Self {
            info,
            model,
            jobs,
            counters,
        })
    }

    /// Counters of the engine thread so far.
    pub fn stats(&self) -> EngineStats {
        let c = &self.counters;
        EngineStats {
            decode_batches: c.decode_batches.load(Ordering::Relaxed),
            batch_tokens: c.batch_tokens.load(Ordering::Relaxed),
            active_sequences: c.active.load(Ordering::Relaxed),
            peak_sequences: c.peak_active.load(Ordering::Relaxed),
            cached_tokens: c.cached_tokens.load(Ordering::Relaxed),
        }
    }

    /// Facts about the loaded model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The token ids of `text` in this model's vocabulary (no BOS; special-token text is
    /// plain text): the ids `logit_bias` takes.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), false, false)
            .into_iter()
            .filter_map(|t| u32::try_from(t.0).ok())
            .collect()
    }

    /// Requests waiting in the queue (the one being served not included).
    pub fn queued(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }
}

#[async_trait]
impl ChatModel for LlamaEngine {
    fn name(&self) -> &str {
        &self.info.name
    }

    async fn chat(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Completion, ModelError> {
        self.submit(messages, params, None).await
    }

    async fn chat_streaming(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        deltas: UnboundedSender<StreamEvent>,
    ) -> Result<Completion, ModelError> {
        self.submit(messages, params, Some(deltas)).await
    }

    async fn complete(
        &self,
        prompt: &str,
        params: &SamplingParams,
        deltas: Option<UnboundedSender<StreamEvent>>,
    ) -> Result<Completion, ModelError> {
        self.send(generate::Input::Text(prompt.to_owned()), params, deltas)
            .await
    }

    fn accepts_prompts(&self) -> bool {
        true
    }

    fn queue_depth(&self) -> Option<usize> {
        Some(self.queued())
    }

    fn active_requests(&self) -> Option<usize> {
        usize::try_from(self.stats().active_sequences).ok()
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        Some(self.tokenize(text).len())
    }

    fn context_window(&self) -> Option<usize> {
        usize::try_from(self.info.n_ctx).ok()
    }

    fn accepts_tools(&self) -> bool {
        self.info.tools
    }

    fn vocab_size(&self) -> Option<u32> {
        u32::try_from(self.model.n_vocab()).ok()
    }
}

impl LlamaEngine {
    async fn submit(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        deltas: Option<UnboundedSender<StreamEvent>>,
    ) -> Result<Completion, ModelError> {
        self.send(generate::Input::Chat(messages.to_vec()), params, deltas)
            .await
    }

    async fn send(
        &self,
        input: generate::Input,
        params: &SamplingParams,
        deltas: Option<UnboundedSender<StreamEvent>>,
    ) -> Result<Completion, ModelError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            input,
            params: params.clone(),
            deltas,
            reply,
            meter: colm_core::Meter::current(),
        };
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ModelError::Overloaded {
                queued: self.queued() as u64,
            },
            mpsc::error::TrySendError::Closed(_) => {
                ModelError::Inference("engine thread has stopped".into())
            }
        })?;
        rx.await
            .map_err(|_| ModelError::Inference("engine thread dropped the request".into()))?
    }
}

fn engine_thread(
    name: String,
    path: PathBuf,
    config: EngineConfig,
    ready: oneshot::Sender<Result<(ModelInfo, Arc<LlamaModel>), EngineError>>,
    jobs: mpsc::Receiver<Job>,
    counters: &Counters,
) {
    let setup = || -> Result<_, EngineError> {
        let backend = backend()?;
        if !path.is_file() {
            return Err(EngineError::Load {
                path: path.clone(),
                reason: "no such file".into(),
            });
        }
        let params = LlamaModelParams::default().with_use_mmap(config.use_mmap);
        let model =
            LlamaModel::load_from_file(backend, &path, &params).map_err(|e| EngineError::Load {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let gguf = model.chat_template(None).ok();
        // A given Jinja template renders tools too; a name leaves that to the GGUF's.
        let jinja = match &config.chat_template {
            Some(t) if t.contains("{%") || t.contains("{{") => Some(t.clone()),
            _ => gguf.as_ref().and_then(|t| t.to_string().ok()),
        };
        let (builtin, template_source) =
            match (&config.chat_template, gguf) {
                (Some(t), _) => {
                    let bad =
                        |reason: String| EngineError::Load {
                            path: path.clone(),
                            reason: format!(
                        "chat template {}: {reason} (give one of llama.cpp's built-in names, \
                         such as chatml, llama3, gemma, mistral-v7, phi3, or a Jinja file of a \
                         family llama.cpp recognises)",
                        if t.len() > 40 { "from the file" } else { t.as_str() }
                    ),
                        };
                    let template = LlamaChatTemplate::new(t).map_err(|e| bad(e.to_string()))?;
                    // Tried once here, so that an unknown template fails the load, not a request.
                    let probe = LlamaChatMessage::new("user".into(), "hi".into())
                        .map_err(|e| bad(e.to_string()))?;
                    model
                        .apply_chat_template(&template, &[probe], true)
                        .map_err(|e| bad(format!("llama.cpp cannot apply it ({e})")))?;
                    let source = if t.len() > 40 {
                        "jinja".to_owned()
                    } else {
                        t.clone()
                    };
                    (template, source)
                }
                (None, Some(t)) => (t, "gguf".to_owned()),
                (None, None) => return Err(EngineError::NoChatTemplate { path: path.clone() }),
            };
        let vocab = model.vocab();
        let text = |t: llama_cpp_2::token::LlamaToken| {
            vocab
                .text(t)
                .and_then(|c| c.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let tools = jinja
            .ok_or_else(|| "this model's chat template does not support tools".to_owned())
            .and_then(|t| tools::Renderer::new(t, text(vocab.bos()), text(vocab.eos())));
        let template = Templates { builtin, tools };
        let n_threads = config.n_threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1)
        });
        let n_ctx = config.n_ctx.min(model.n_ctx_train()).max(1);
        let info = ModelInfo {
            name: name.clone(),
            path: path.clone(),
            n_ctx,
            n_parallel: 1,
            n_ctx_train: model.n_ctx_train(),
            n_params: model.n_params(),
            size_bytes: model.size(),
            n_threads,
            chat_template: template_source,
            tools: template.tools.is_ok(),
        };
        Ok((backend, Arc::new(model), template, info))
    };
    let (backend, model, template, mut info) = match setup() {
        Ok(parts) => parts,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let threads = i32::try_from(info.n_threads).unwrap_or(1);
    let n_parallel = config.n_parallel.clamp(1, config.n_batch.max(1));
    // One KV stream per sequence (kv_unified off, as `llama-server -np N`): each sequence has
    // its own `n_ctx` cells and attends only to them.
    let ctx_params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(info.n_ctx.saturating_mul(n_parallel)))
        .with_n_batch(config.n_batch)
        .with_n_ubatch(config.n_batch)
        .with_n_seq_max(n_parallel)
        .with_kv_unified(false)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = match model.new_context(backend, ctx_params) {
        Ok(ctx) => {
            // llama.cpp may round the context up (e.g. to a multiple of 256): report what it uses.
            info.n_ctx = ctx.n_ctx() / n_parallel;
            ctx
        }
        Err(e) => {
            let _ = ready.send(Err(EngineError::Context {
                path: info.path.clone(),
                n_ctx: info.n_ctx,
                reason: e.to_string(),
            }));
            return;
        }
    };
    info.n_parallel = n_parallel;
    tracing::info!(model = %info.name, n_ctx = info.n_ctx, n_parallel, threads, "model loaded");
    let n_ctx_seq = info.n_ctx;
    if ready.send(Ok((info, Arc::clone(&model)))).is_err() {
        return;
    }
    let setup = Schedule {
        name: &name,
        model: &model,
        templates: &template,
        n_ctx_seq,
        n_parallel,
        exclusive: config.exclusive_compute,
        counters,
        cache: (config.prompt_cache, config.prompt_cache_min),
    };
    setup.run(&mut ctx, jobs);
}

/// The engine loop (continuous batching): admits queued requests into free sequences, builds
/// one batch per step from every active sequence (one sampled token each, then prompt chunks
/// up to `n_batch` tokens), decodes it, samples, and answers finished requests. Requests whose
/// caller went away are dropped between steps. Returns when every handle is dropped.
struct Schedule<'a> {
    name: &'a str,
    model: &'a LlamaModel,
    templates: &'a Templates,
    n_ctx_seq: u32,
    n_parallel: u32,
    exclusive: bool,
    counters: &'a Counters,
    /// [`EngineConfig::prompt_cache`] and [`EngineConfig::prompt_cache_min`].
    cache: (PromptReuse, u32),
}

impl Schedule<'_> {
    fn run(&self, ctx: &mut llama_cpp_2::context::LlamaContext<'_>, mut jobs: mpsc::Receiver<Job>) {
        let Self {
            name,
            model,
            templates,
            n_ctx_seq,
            n_parallel,
            exclusive,
            counters,
            cache,
        } = *self;
        let n_batch = (ctx.n_batch() as usize).max(1);
        let mut batch = LlamaBatch::new(n_batch, 1);
        let mut slots: Vec<Option<Slot>> = (0..n_parallel).map(|_| None).collect();
        let mut kept = PromptCache::new(slots.len(), cache.0, cache.1 as usize);
        // JSON constraints (llguidance), set up on the first request that asks for one.
        let mut grammars = None;
        loop {
            // Admit: wait for work when idle, otherwise take what is queued without waiting.
            while slots.iter().any(Option::is_none) {
                let job = if slots.iter().all(Option::is_none) {
                    match jobs.blocking_recv() {
                        Some(job) => job,
                        None => return,
                    }
                } else {
                    match jobs.try_recv() {
                        Ok(job) => job,
                        Err(_) => break,
                    }
                };
                let admitted =
                    generate::prepare(model, templates, n_ctx_seq, &job.input, &job.params)
                        .and_then(|prompt| {
                            let sampler = generate::sampler(model, &job.params, || {
                                generate::grammars(&mut grammars, model)
                            })?;
                            Ok((prompt, sampler))
                        });
                match admitted.map(|(prompt, sampler)| {
                    let free = (0..slots.len()).filter(|&i| slots[i].is_none());
                    let at = kept.place(free, &prompt, job.params.cache_prompt);
                    (prompt, sampler, at)
                }) {
                    Ok((prompt, sampler, Some(at))) => {
                        let reused = keep_prefix(ctx, at.seq, at.reused);
                        counters
                            .cached_tokens
                            .fetch_add(reused as u64, Ordering::Relaxed);
                        slots[at.seq] = Some(Slot::new(
                            at.seq as i32,
                            prompt,
                            reused,
                            job.params,
                            sampler,
                            job.deltas,
                            job.reply,
                            job.meter,
                        ));
                    }
                    Ok((_, _, None)) => {
                        let _ = job
                            .reply
                            .send(Err(ModelError::Inference("no free sequence".into())));
                    }
                    Err(e) => {
                        tracing::warn!(model = %name, error = %e, "request refused");
                        let _ = job.reply.send(Err(e));
                    }
                }
            }
            for slot in &mut slots {
                if slot.as_ref().is_some_and(Slot::cancelled) {
                    if let Some(s) = slot.take() {
                        tracing::debug!(model = %name, seq = s.seq, "request cancelled by its caller");
                        // What it read stays for the next request (its batches were decoded).
                        let (prompt, generated) = s.kv_tokens();
                        kept.keep(
                            usize::try_from(s.seq).unwrap_or(usize::MAX),
                            prompt,
                            generated,
                        );
                    }
                }
            }
            // Build the batch: generating sequences first (one token each), then prompt chunks.
            batch.clear();
            let mut used = 0usize;
            let mut failed: Vec<(usize, ModelError)> = Vec::new();
            for pass_prefill in [false, true] {
                for (i, slot) in slots.iter_mut().enumerate() {
                    let Some(s) = slot else { continue };
                    if s.prefilling() != pass_prefill {
                        continue;
                    }
                    match s.feed(&mut batch, n_batch - used) {
                        Ok(n) => used += n,
                        Err(e) => failed.push((i, e)),
                    }
                }
            }
            for (i, e) in failed {
                finish(ctx, &mut kept, &mut slots[i], Err(e));
            }
            let active = slots.iter().flatten().count() as u64;
            counters.active.store(active, Ordering::Relaxed);
            counters.peak_active.fetch_max(active, Ordering::Relaxed);
            if used == 0 {
                continue;
            }
            counters.decode_batches.fetch_add(1, Ordering::Relaxed);
            counters
                .batch_tokens
                .fetch_add(used as u64, Ordering::Relaxed);
            let turn = exclusive.then(|| COMPUTE_TURN.lock().unwrap_or_else(|e| e.into_inner()));
            let decoded = ctx.decode(&mut batch);
            drop(turn);
            if let Err(e) = decoded {
                // The sequences' cache state is unknown now: every active request fails.
                tracing::warn!(model = %name, error = %e, "decode failed");
                counters.active.store(0, Ordering::Relaxed);
                for slot in &mut slots {
                    finish(
                        ctx,
                        &mut kept,
                        slot,
                        Err(ModelError::Inference(format!("decode: {e}"))),
                    );
                }
                continue;
            }
            let mut done = Vec::new();
            for (i, slot) in slots.iter_mut().enumerate() {
                if let Some(s) = slot {
                    if let Step::Done(reason) = s.step(ctx, model) {
                        done.push((i, reason));
                    }
                }
            }
            // Counters first: a caller that reads them after its answer sees its slot freed.
            let active = slots.iter().flatten().count() - done.len();
            counters.active.store(active as u64, Ordering::Relaxed);
            for (i, reason) in done {
                finish(ctx, &mut kept, &mut slots[i], Ok(reason));
            }
        }
    }
}

/// Answers the slot's caller and frees its sequence: an answered request's tokens stay in the
/// KV cache for the next request ([`PromptCache`]); a failed one's are removed.
fn finish(
    ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
    kept: &mut PromptCache,
    slot: &mut Option<Slot>,
    result: Result<FinishReason, ModelError>,
) {
    if let Some(s) = slot.take() {
        let seq = usize::try_from(s.seq).unwrap_or(usize::MAX);
        if result.is_ok() {
            let (prompt, generated) = s.kv_tokens();
            kept.keep(seq, prompt, generated);
        } else {
            let _ = ctx.clear_kv_cache_seq(u32::try_from(s.seq).ok(), None, None);
            kept.forget(seq);
        }
        s.complete(result);
    }
}

/// Removes from sequence `seq`'s KV cache everything from position `reused` on; returns how
/// many leading tokens it still holds (`reused`, or 0 when the model's memory cannot remove a
/// suffix — recurrent models — and the whole sequence was cleared).
fn keep_prefix(
    ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
    seq: usize,
    reused: usize,
) -> usize {
    let seq = u32::try_from(seq).ok();
    if reused > 0 {
        if let (Ok(from), Some(_)) = (u32::try_from(reused), seq) {
            if matches!(ctx.clear_kv_cache_seq(seq, Some(from), None), Ok(true)) {
                return reused;
            }
        }
    }
    let _ = ctx.clear_kv_cache_seq(seq, None, None);
    0
}

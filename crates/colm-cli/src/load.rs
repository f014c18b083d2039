//! Resolving, pulling and loading models for the commands that run them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use colm_core::ChatModel;
use colm_engine::{EngineConfig, LlamaEngine};
use colm_models::{Cache, ModelRef, PullOptions};

/// The model cache: `$COLM_HOME/models`, or the platform cache directory's `colm/models`.
///
/// # Errors
/// No `COLM_HOME` and no cache directory.
pub fn cache() -> anyhow::Result<Cache> {
    Ok(Cache::in_home(
        std::env::var_os("COLM_HOME").map(PathBuf::from),
    )?)
}

/// How to pull: with a progress bar, pip run by `$COLM_PYTHON` (default `python3`).
pub fn pull_options() -> PullOptions {
    let mut opts = PullOptions::default();
    if let Some(python) = std::env::var_os("COLM_PYTHON") {
        opts.python = python.to_string_lossy().into_owned();
    }
    opts
}

/// A loaded model (an embedded engine, or an upstream endpoint) and its declared
/// specialisation.
pub struct Loaded {
    pub model: Arc<dyn ChatModel>,
    pub description: String,
}

/// Engine flags shared by the commands that run models.
#[derive(clap::Args, Clone, Debug)]
pub struct EngineArgs {
    /// Context window of one request, tokens (per model).
    #[arg(long, default_value_t = 8192)]
    pub ctx: u32,
    /// CPU threads per model (default: all cores).
    #[arg(long)]
    pub threads: Option<u32>,
    /// Requests decoded together per model (continuous batching); KV memory grows with
    /// ctx × parallel.
    #[arg(long, default_value_t = 4)]
    pub parallel: u32,
    /// What a finished request leaves in its sequence's KV cache for the next request sharing
    /// a prefix with it to skip: `all` (its prompt and answer, as llama-server: a chat's next
    /// turn reads only the new turn; greedy answers can part slightly from a cold read's),
    /// `prompt` (its prompt only: greedy answers are the same as without reuse) or `off`.
    /// Default `all`, `prompt` in `colm eval` (reproducible records). `cache_prompt: false`
    /// opts one request out.
    #[arg(long, value_enum)]
    pub prompt_cache: Option<colm_core::PromptReuse>,
    /// Chat template of the models given as `.gguf` paths (catalog models keep theirs): one of
    /// llama.cpp's built-in names (`chatml`, `llama3`, `gemma`, `mistral-v7`, `phi3`, …) or a
    /// Jinja file (read by llama.cpp's templater, which recognises the template family by its
    /// markers; requests with tools are rendered by the file itself). Needed for a GGUF that
    /// has none; overrides the GGUF's own otherwise.
    #[arg(long, value_name = "NAME|FILE")]
    pub chat_template: Option<String>,
}

impl EngineArgs {
    /// The template `--chat-template` gives: a file's text, or the name.
    ///
    /// # Errors
    /// A path-looking value (with a `/` or a `.jinja` ending) that cannot be read.
    fn template(&self) -> anyhow::Result<Option<String>> {
        let Some(t) = &self.chat_template else {
            return Ok(None);
        };
        let path = std::path::Path::new(t);
        if path.is_file() || t.contains('/') || t.ends_with(".jinja") {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--chat-template: cannot read {t}"))?;
            return Ok(Some(text));
        }
        Ok(Some(t.clone()))
    }
}

/// Pulls (if needed) and loads the catalog embedding model `name` (its vectors served at
/// `POST /v1/embeddings` and used where colm compares texts).
///
/// # Errors
/// A name that is not a catalog embedding model (the error lists them), a failed pull, or
/// files that do not load.
pub async fn load_embedder(name: &str) -> anyhow::Result<Arc<dyn colm_core::EmbeddingModel>> {
    let entry = colm_models::embedders::find(name).ok_or_else(|| {
        let known: Vec<&str> = colm_models::EMBEDDERS.iter().map(|e| e.name).collect();
        anyhow::anyhow!(
            "unknown embedding model {name:?}; the catalog's: {}",
            known.join(", ")
        )
    })?;
    let cache = cache()?;
    let started = std::time::Instant::now();
    let embedder = tokio::task::spawn_blocking(move || {
        let dir = cache.ensure_embedder(entry, &pull_options())?;
        anyhow::Ok(colm_embed::Embedder::load(&dir, entry)?)
    })
    .await
    .context("loading task")?
    .with_context(|| format!("embedding model {name}"))?;
    eprintln!(
        "loaded {} ({} MB, {}-dimensional vectors) in {:.1} s",
        entry.name,
        entry.size_bytes() / 1_000_000,
        entry.dimensions,
        started.elapsed().as_secs_f64()
    );
    Ok(Arc::new(embedder))
}

/// How to load models.
pub struct LoadOptions {
    /// Context, threads and parallel sequences per model.
    pub engine: EngineArgs,
    /// Requests that may wait per model.
    pub max_queue: usize,
    /// Print a line per loaded model on stderr.
    pub verbose: bool,
}

/// Resolves, pulls (if needed) and loads each distinct model once.
pub async fn load_models(
    specs: &[&str],
    opts: &LoadOptions,
) -> anyhow::Result<BTreeMap<String, Arc<Loaded>>> {
    let cache = cache()?;
    let mut refs: BTreeMap<String, ModelRef> = BTreeMap::new();
    for spec in specs {
        refs.insert((*spec).to_owned(), cache.resolve(spec)?);
    }
    let mut paths: BTreeMap<PathBuf, (ModelRef, Vec<String>)> = BTreeMap::new();
    for (spec, r) in refs {
        let cache = cache.clone();
        let r2 = r.clone();
        let path = tokio::task::spawn_blocking(move || cache.ensure(&r2, &pull_options()))
            .await
            .context("pull task")??;
        paths
            .entry(path)
            .or_insert_with(|| (r, Vec::new()))
            .1
            .push(spec);
    }
    // Models load one after the other: loading is I/O and memory bound, and parallel loads
    // would only compete for the same cores.
    let mut out = BTreeMap::new();
    let given = opts.engine.template()?;
    for (path, (r, specs)) in paths {
        let (template, description) = match &r {
            ModelRef::Catalog(e) => (e.chat_template.map(str::to_owned), e.description.to_owned()),
            ModelRef::Path(p) => (given.clone(), format!("GGUF model {}", p.display())),
        };
        let config = EngineConfig {
            n_ctx: opts.engine.ctx,
            n_threads: opts.engine.threads,
            n_parallel: opts.engine.parallel,
            max_queue: opts.max_queue,
            chat_template: template,
            prompt_cache: opts.engine.prompt_cache.unwrap_or_default(),
            // Models that each use every core take turns to decode (see EngineConfig).
            exclusive_compute: opts.engine.threads.is_none_or(|t| {
                std::thread::available_parallelism().map_or(true, |n| t as usize >= n.get())
            }),
            ..EngineConfig::default()
        };
        let started = std::time::Instant::now();
        let engine = LlamaEngine::load(r.name(), &path, config).await?;
        if opts.verbose {
            let info = engine.info();
            eprintln!(
                "loaded {} ({} MB, {} threads, {} parallel × {}-token context) in {:.1} s",
                info.name,
                info.size_bytes / 1_000_000,
                info.n_threads,
                info.n_parallel,
                info.n_ctx,
                started.elapsed().as_secs_f64()
            );
        }
        let model = Arc::new(Loaded {
            model: Arc::new(engine),
            description,
        });
        for s in specs {
            out.insert(s, model.clone());
        }
    }
    Ok(out)
}

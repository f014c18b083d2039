//! `colm client`: the device runtime behind a local OpenAI-compatible endpoint.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use colm_client::{CollabClient, RemoteConfig, SessionConfig};
use colm_core::run::StrategyModel;
use colm_core::vertical::{Residency, Router};
use colm_core::ChatModel;
use colm_remote::{Endpoint, RemoteChat};
use colm_server::{AppState, ServerConfig};

use crate::load::{load_models, EngineArgs, LoadOptions};
use colm_core::options::RoundOptions;

/// Arguments of `colm client`.
#[derive(Args)]
pub struct ClientArgs {
    /// TOML file of settings (`docs/colm.toml`): `[client]` and `[engine]` keys are these flags
    /// with `_` for `-`; flags given on the command line win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Base URL of the colm server, e.g. http://127.0.0.1:8080.
    #[arg(long, required_unless_present = "server")]
    pub server_url: Option<String>,
    /// Now --server-url (a model is `--server` elsewhere); read for one release, with a
    /// warning.
    #[arg(long, hide = true, conflicts_with = "server_url")]
    pub server: Option<String>,
    /// Local model (catalog name or .gguf path).
    #[arg(long)]
    pub model: String,
    /// Server model that writes the guidance.
    #[arg(long, default_value = "qwen2.5-coder-1.5b-instruct")]
    pub server_model: String,
    /// The collaboration's options: rounds, refinement form, and the guidance options sent
    /// with every guidance request.
    #[command(flatten, next_help_heading = "CoLM options")]
    pub colm: RoundOptions,
    /// Local address of the OpenAI-compatible endpoint (loopback only).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// File whose first key is sent to the server as `Authorization: Bearer …`.
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Time allowed for the guidance exchange, ms; past it the local draft is the answer.
    #[arg(long, default_value_t = 30_000)]
    pub deadline_ms: u64,
    /// Send drafts trimmed to a rationale of at most N tokens plus the final answer.
    #[arg(long, value_name = "N")]
    pub trim_draft_tokens: Option<usize>,
    /// Join a shared session on the server: aggregate once K clients sent drafts for the
    /// same question (or at the window's end) instead of one-shot guidance.
    #[arg(long, value_name = "K")]
    pub session_k: Option<usize>,
    /// Aggregation window of a shared session, ms (with --session-k).
    #[arg(long, default_value_t = 20_000)]
    pub session_window_ms: u64,
    /// This client's name in shared sessions (default: the local model's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Route each query with the device–cloud router and the policy of this TOML file
    /// (`docs/router.toml`): it stays local, goes to --server-model on the server (`remote`), or
    /// gets a CoLM round (`colm`, the guidance written by --server-model through the server's
    /// chat endpoint). Without it, every query gets a CoLM round.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["session_k", "trim_draft_tokens"])]
    pub router: Option<PathBuf>,
    /// What a sensitive query does (one with `metadata.sensitive: "true"`, or holding an e-mail
    /// address, a phone, card or account number, or a --sensitive-name): `redact` sends the
    /// query and its drafts with typed placeholders, restored on the device; `local` answers
    /// with the device's draft alone. The answer's `colm.residency` says which happened.
    /// (With --router, its file's `residency` applies.)
    #[arg(long, value_enum, default_value = "redact", conflicts_with = "router")]
    pub residency: Residency,
    /// A name treated as sensitive (repeatable; whole words, case-insensitive).
    #[arg(
        long = "sensitive-name",
        value_name = "NAME",
        conflicts_with = "router"
    )]
    pub sensitive_names: Vec<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to listen on {}: the client endpoint is for apps on this device; use a \
             loopback address",
            args.listen
        );
    }
    let server_url = crate::renamed::value(
        args.server_url.clone(),
        args.server.clone(),
        "colm client --server",
        "--server-url",
    )
    .context("--server-url is required")?;
    args.colm
        .check()
        .map_err(|e| anyhow::anyhow!("--{}: {e}", e.field.replace('_', "-")))?;
    let router = args
        .router
        .as_deref()
        .map(crate::route::RouterFile::load)
        .transpose()?;
    let api_key = match &args.api_key_file {
        Some(path) => Some(first_key(path)?),
        None => None,
    };
    let opts = LoadOptions {
        engine: args.engine.clone(),
        max_queue: 64,
        verbose: true,
    };
    let loaded = load_models(&[args.model.as_str()], &opts).await?;
    let local = loaded
        .get(&args.model)
        .with_context(|| format!("model {} was not loaded", args.model))?;
    let endpoint = Endpoint {
        api_key,
        deadline: Duration::from_millis(args.deadline_ms),
        ..Endpoint::new(&server_url)
    };
    let remote = RemoteConfig {
        endpoint,
        options: args.colm.clone(),
        trim_draft_tokens: args.trim_draft_tokens,
        session: args.session_k.map(|k| SessionConfig {
            k,
            window_ms: args.session_window_ms,
        }),
        client_name: args.name.clone(),
        residency: args.residency,
        sensitive_names: args.sensitive_names.clone(),
        ..RemoteConfig::new(&server_url, &args.server_model)
    };
    let name = local.model.name().to_owned();
    let model: Arc<dyn ChatModel> = match router {
        Some(file) => {
            let server: Arc<dyn ChatModel> = Arc::new(RemoteChat::new(
                remote.endpoint.clone(),
                remote.server_model.clone(),
            )?);
            let mut router = Router::new(local.model.clone(), server, file.router);
            if let Some(s) = file.speeds {
                router = router.with_speeds(s);
            }
            Arc::new(StrategyModel::new(name.clone(), Arc::new(router)))
        }
        None => Arc::new(CollabClient::new(
            name.clone(),
            local.model.clone(),
            remote,
        )?),
    };
    let hosted: Vec<(String, Arc<dyn ChatModel>)> = vec![(name.clone(), model)];
    let config = ServerConfig {
        hosts: colm_server::origin::HostPolicy::for_bind(args.listen),
        ..ServerConfig::default()
    };
    let state = AppState::new(hosted, config);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!(
        "colm client: listening on http://{addr} (model: {name}; {} {})",
        if args.router.is_some() {
            "routed by its policy to"
        } else {
            "guidance from"
        },
        server_url
    );
    std::io::stdout().flush()?;
    colm_server::serve(listener, state).await?;
    Ok(())
}

/// The first key of a key file (the format of `colm serve --api-key-file`): a client sends
/// the key itself, so a `sha256:` line (a digest, kept by servers) is an error.
fn first_key(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("API key file {}", path.display()))?;
    // A line is `[TENANT] KEY`, as the server's key file: the key is the last field.
    let key = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().last())
        .with_context(|| format!("API key file {} holds no key", path.display()))?;
    if key.starts_with("sha256:") {
        anyhow::bail!(
            "API key file {}: its first key is a digest (sha256:…); a client needs the key",
            path.display()
        );
    }
    Ok(key.to_owned())
}

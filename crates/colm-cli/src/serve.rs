//! `colm serve`: host models behind the OpenAI-compatible API.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use colm_core::colm::references::WriterSpec;
use colm_core::run::StrategyModel;
use colm_core::strategy::{ColmOptions, Parts, StrategySpec};
use colm_core::vertical::RouterConfig;
use colm_core::ChatModel;
use colm_remote::{RemoteChat, Replicas, Upstream};

use colm_core::colm::paraphrase::ParaphraseStore;
use colm_core::colm::references::ReferenceStore;
use colm_server::auth::AuthConfig;
use colm_server::origin::HostPolicy;
use colm_server::store::{GuidanceStore, SharedReferences};
use colm_server::{AppState, ServerConfig};

use crate::load::{load_models, EngineArgs, LoadOptions, Loaded};
use crate::registry::Registry;

/// Arguments of `colm serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// TOML file of settings (`docs/colm.toml`): `[serve]` and `[engine]` keys are these flags
    /// with `_` for `-`, `[[models]]`, `[[virtual_models]]` and `[[upstreams]]` stand for
    /// --model, --colm-strategy and --upstream; flags given on the command line win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Model to host, as `NAME` or `NAME=ALIAS` (catalog name or .gguf path); repeatable.
    #[arg(long = "model", required_unless_present_any = ["upstreams", "embedding_models"])]
    pub models: Vec<String>,
    /// Catalog embedding model to serve at `POST /v1/embeddings` (`all-minilm-l6-v2`; pulled
    /// on first use); repeatable; in the TOML file `embedding_model = ["…"]` under `[serve]`.
    /// The first is the one colm compares texts with (paraphrase sharing, `selector=embedding`
    /// in the guidance API and the virtual models).
    #[arg(long = "embedding-model", value_name = "NAME")]
    pub embedding_models: Vec<String>,
    /// A model on an OpenAI-compatible endpoint to host as well,
    /// `ID=BASE_URL[,model=M][,alias=A]…[,vision][,key_env=VAR|,key_file=PATH][,deadline_ms=N]
    /// [,max_concurrent=N]` (BASE_URL as OpenAI clients take it, `http://host:port/v1`; M: its
    /// name there, default ID; A: a further id it is served under; `vision`: it reads images;
    /// the bearer key from the environment variable VAR or the first line of PATH; N ms for a
    /// chat, default 120000; at most N chats to it at once, more wait); repeatable; in the
    /// TOML file as `[[upstreams]]` tables. Usable wherever a hosted model is: --colm-client,
    /// --colm-server, --writer. An ID given several times is one model on several replicas:
    /// least outstanding requests, failover on connection errors and 5xx, a failed replica
    /// cooled down and probed back (`colm_remote::replicas`).
    #[arg(long = "upstream")]
    pub upstreams: Vec<String>,
    /// Largest image of an `image_url` content part, decoded bytes.
    #[arg(long, default_value_t = colm_server::DEFAULT_MAX_IMAGE_BYTES)]
    pub max_image_bytes: usize,
    /// Pass `http(s)://` image URLs on to vision models (which fetch them); without it only
    /// `data:` URLs are accepted.
    #[arg(long)]
    pub allow_image_urls: bool,
    /// Address to listen on; anything but loopback requires `--api-key-file`.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// File of API keys, one per line (`#` comments): `[TENANT] KEY`, the key or `sha256:HEX`
    /// of it, after the tenant it belongs to (a key alone is a tenant of its own); the `/v1`
    /// routes then need `Authorization: Bearer KEY`. Sessions and shared references stay
    /// within a tenant.
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Requests per minute per tenant (429 with Retry-After above it).
    #[arg(long, requires = "api_key_file")]
    pub rate_limit: Option<u32>,
    /// Model tokens (prompt + completion) per hour per tenant, refilled continuously; a
    /// tenant that spent them gets 429 `insufficient_quota` with Retry-After.
    #[arg(long, value_name = "TOKENS", requires = "api_key_file", value_parser = clap::value_parser!(u64).range(1..))]
    pub token_budget: Option<u64>,
    /// Requests that run models (`POST`s) a tenant may have in flight, queued or running; one
    /// more gets 429 `concurrency_limit_exceeded` with Retry-After, so one tenant cannot fill
    /// a model's queue (`--max-queue`) for all.
    #[arg(long, default_value_t = 32,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_concurrent_per_tenant: usize,
    /// Tenants that share sessions and shared references with each other, comma-separated
    /// (repeatable: one group each; by default a tenant shares with no other).
    #[arg(
        long = "share-group",
        value_name = "TENANT,TENANT",
        requires = "api_key_file"
    )]
    pub share_groups: Vec<String>,
    /// Also require a key on `/metrics` and `/openapi.json`; `/metrics` then shows a tenant's
    /// key only its own tenant's series, and an --operator's key every series.
    #[arg(long, requires = "api_key_file")]
    pub protect_ops: bool,
    /// A tenant of the key file whose keys see every series of `/metrics` under
    /// --protect-ops (the operator's monitoring; repeatable).
    #[arg(long = "operator", value_name = "TENANT", requires = "protect_ops")]
    pub operators: Vec<String>,
    /// A host name the server answers to in the `Host` header (repeatable; `*`: any); others
    /// get 403 `host_not_allowed`, so a DNS-rebinding name cannot reach the API from a web
    /// page. Default: on a loopback address, `localhost`, `127.0.0.1`, `[::1]` and the bound
    /// address; elsewhere any (keys are required there).
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// A web origin (`https://app.example`) whose pages may call the API (CORS; repeatable).
    /// Default none: CORS off.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Requests that may wait per model; one more gets 503 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// Largest accepted request body, bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Time for a request's headers to arrive, and for the next request on an idle
    /// kept-alive connection, ms; a connection that stalls longer is closed.
    #[arg(long, value_name = "MS", default_value_t = colm_server::listen::HEADER_READ_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_ms: u64,
    /// Longest pause in the arrival of a request's body, ms (408 `body_timeout` after it).
    #[arg(long, value_name = "MS", default_value_t = colm_server::listen::BODY_READ_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_ms: u64,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = colm_server::listen::MAX_CONNECTIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,
    /// Sessions open at once (before their deadline), all tenants together (with `--state`,
    /// across replicas); one more gets 503 with Retry-After.
    #[arg(long, default_value_t = colm_server::sessions::MAX_OPEN,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_sessions: usize,
    /// Sessions one tenant may have open at once; one more gets 429
    /// `session_limit_exceeded` with Retry-After, for that tenant alone.
    #[arg(long, default_value_t = colm_server::sessions::MAX_OPEN_PER_TENANT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_sessions_per_tenant: usize,
    /// `max_tokens` for requests that give none.
    #[arg(long, default_value_t = colm_core::DEFAULT_MAX_TOKENS)]
    pub default_max_tokens: u32,
    /// Share references: the references written for a question and their synthesis are
    /// served again to clients asking the same (normalised) question within this many seconds,
    /// without calling a model — through the guidance API, sessions and the virtual model
    /// `colm` alike (what reads a client's draft is never shared).
    #[arg(long)]
    pub share_ttl: Option<u64>,
    /// Share references between paraphrases too: a question whose nearest stored question
    /// (cosine of their embeddings) is at least SIMILARITY, in (0, 1], and has the same
    /// numbers, quoted strings and names, is served that question's references
    /// (`colm_core::colm::paraphrase`). Embeds with the first --embedding-model (when none is
    /// given, all-minilm-l6-v2 is loaded and served).
    #[arg(long, value_name = "SIMILARITY", requires = "share_ttl",
          value_parser = similarity)]
    pub share_paraphrases: Option<f32>,
    /// SQLite file of shared references (default: `$COLM_HOME/guidance.sqlite`).
    #[arg(long, requires = "share_ttl", conflicts_with = "state")]
    pub store: Option<PathBuf>,
    /// Keep what replicas must share in this Redis (`redis://[user:password@]host:port[/db]`):
    /// sessions, shared references (with --share-ttl) and their single flight, rate-limit
    /// buckets and token budgets, so that any replica behind a load balancer serves any
    /// request (`colm_server::state`). Without it they stay in this process (and SQLite).
    #[arg(long, value_name = "URL")]
    pub state: Option<String>,
    /// Keep an interaction log in this SQLite file, or in PostgreSQL at a
    /// `postgres://user@host:port/db` URL (replicas writing one log): one record per
    /// collaboration served (chat completions, guidance, session guidance: route, model,
    /// tokens, timings, bytes, and the texts unless sensitive), its id in each response's
    /// `x-colm-record-id`, feedback through `POST /v1/colm/feedback` (`colm_server::log`).
    #[arg(long, value_name = "FILE|URL")]
    pub interaction_log: Option<String>,
    /// Keep no query or answer texts in the --interaction-log.
    #[arg(long, requires = "interaction_log")]
    pub no_log_texts: bool,
    /// Prefix of this deployment's keys in the --state Redis.
    #[arg(long, default_value = "colm", requires = "state")]
    pub state_prefix: String,
    /// Collaborator of the virtual model `colm` (repeatable); enables `colm`.
    #[arg(long = "colm-client", requires = "colm_server")]
    pub colm_clients: Vec<String>,
    /// Server model of the virtual model `colm` (selection and aggregation).
    #[arg(long, requires = "colm_clients")]
    pub colm_server: Option<String>,
    /// The options of the virtual model `colm` (each also a key of the strategy text form).
    #[command(flatten, next_help_heading = "Virtual model `colm`")]
    pub colm: ColmOptions,
    /// Flags renamed in 0.1 (`--colm-rounds` is `--rounds`, …), read for one release.
    #[command(flatten)]
    pub renamed: RenamedColmFlags,
    /// A server-side collaborator that writes references, `MODEL[:role=R,t=T,seed=S,id=I]`
    /// (MODEL: a hosted model's id; R: math, code, conversation, creative); repeatable. Used
    /// by `/v1/colm/guidance` in the reference modes and by the virtual model `colm`; without
    /// it, the aggregating model writes the one reference itself.
    #[arg(long = "writer")]
    pub writers: Vec<String>,
    /// Also host a strategy over the --colm-client and --colm-server models as a virtual model,
    /// NAME=STRATEGY in the text form of `colm_core::strategy` (repeatable): another CoLM
    /// configuration (`colm-critique=colm:mode=critique`), a horizontal strategy
    /// (`debate=debate:agents=3,topology=ring`, `moa=moa:proposers=2`,
    /// `sc=self-consistency:n=5`) or the cascade (`routed=cascade:tau=-0.1`: the first
    /// --colm-client drafts, an unsure draft escalates to the --colm-server model).
    #[arg(long = "colm-strategy", requires = "colm_server")]
    pub colm_strategies: Vec<String>,
    /// The routing policy of the served cascades (--colm-strategy NAME=cascade:…): a router
    /// file (`docs/router.toml`) whose `[router]` table sets their server-token budget
    /// (`server_tokens_per_window` per `window_s`), latency budget, residency and refine form;
    /// a cascade's own options (`tau`, `to`, agreement) take precedence. With --state the
    /// replicas spend each cascade's budget together (in Redis). A `[speeds]` table is refused:
    /// a served cascade measures its own speeds.
    #[arg(long, value_name = "FILE", requires = "colm_server")]
    pub router: Option<PathBuf>,
}

/// The flags of the virtual model `colm` before its options were [`ColmOptions`]: each is read
/// as its option, with a warning naming the new flag (for one release).
#[derive(Args, Debug, Default)]
pub struct RenamedColmFlags {
    /// Now --rounds.
    #[arg(long, hide = true)]
    pub colm_rounds: Option<String>,
    /// Now --top-k.
    #[arg(long, hide = true)]
    pub colm_top_k: Option<String>,
    /// Now --mode.
    #[arg(long, hide = true)]
    pub colm_mode: Option<String>,
    /// Now --refine.
    #[arg(long, hide = true)]
    pub colm_refine: Option<String>,
    /// Now --refs.
    #[arg(long, hide = true)]
    pub colm_refs: Option<String>,
}

impl RenamedColmFlags {
    /// The options the renamed flags give, warning once per flag.
    fn options(&self) -> anyhow::Result<ColmOptions> {
        let given = [
            ("rounds", &self.colm_rounds),
            ("top_k", &self.colm_top_k),
            ("mode", &self.colm_mode),
            ("refine", &self.colm_refine),
            ("refs", &self.colm_refs),
        ];
        let mut pairs = Vec::new();
        for (key, value) in given {
            if let Some(v) = value {
                let new = key.replace('_', "-");
                crate::renamed::warn(&format!("--colm-{new}"), &format!("--{new}"));
                pairs.push(format!("{key}={v}"));
            }
        }
        colm_core::options::text::parse("colm option", &pairs.join(","))
            .map_err(|e| anyhow::anyhow!("--colm-*: {e}"))
    }
}

/// Splits `NAME=ALIAS`; a `=` inside a path is taken as the alias separator only once, from
/// the right.
fn split_alias(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once('=') {
        Some((name, alias)) if !name.is_empty() && !alias.is_empty() => (name, Some(alias)),
        _ => (spec, None),
    }
}

/// A database URL as messages may show it: what follows its last `@` (no user or password).
pub(crate) fn without_credentials(url: &str) -> &str {
    url.rsplit('@').next().unwrap_or(url)
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if !colm_server::is_loopback(args.bind.ip()) && args.api_key_file.is_none() {
        anyhow::bail!(
            "refusing to listen on {} without API keys: give --api-key-file, or bind to a \
             loopback address (127.0.0.1, ::1)",
            args.bind
        );
    }
    let auth = match &args.api_key_file {
        Some(path) => Some(AuthConfig {
            keys: AuthConfig::keys_from_file(path)
                .with_context(|| format!("API key file {}", path.display()))?,
            requests_per_minute: args.rate_limit,
            tokens_per_hour: args.token_budget,
            max_concurrent: Some(args.max_concurrent_per_tenant),
            protect_ops: args.protect_ops,
            operators: args.operators.clone(),
            share_groups: args
                .share_groups
                .iter()
                .map(|g| g.split(',').map(|t| t.trim().to_owned()).collect())
                .collect(),
        }),
        None => None,
    };
    if let Some(auth) = &auth {
        auth.check_groups().map_err(anyhow::Error::msg)?;
    }
    // The flags of the virtual model `colm` are options of its strategy, checked as the text
    // form is, before any model loads.
    let colm_spec = args
        .colm
        .over(&args.renamed.options()?)
        .map_err(|e| anyhow::anyhow!("--{}: {e}", e.field.replace('_', "-")))?;
    let colm_clients = args.colm_clients.len();
    colm_spec
        .check_clients(colm_clients)
        .map_err(|e| anyhow::anyhow!("--colm-*: {e}"))?;
    let mut extra_strategies = Vec::new();
    for entry in &args.colm_strategies {
        let (id, text) = entry
            .split_once('=')
            .filter(|(id, _)| !id.is_empty())
            .with_context(|| format!("--colm-strategy {entry:?} is not NAME=STRATEGY"))?;
        let spec = StrategySpec::parse(text)
            .and_then(|s| match &s {
                StrategySpec::Colm(c) => c.check_clients(colm_clients).map(|()| s),
                _ => Ok(s),
            })
            .map_err(|e| anyhow::anyhow!("--colm-strategy {entry}: {e}"))?;
        extra_strategies.push((id.to_owned(), spec));
    }
    let redis = match &args.state {
        Some(url) => {
            let r = colm_server::state::RedisState::connect(url, &args.state_prefix)
                .await
                .with_context(|| format!("--state {}", without_credentials(url)))?;
            eprintln!(
                "shared state in {} (keys under {}:)",
                r.shown_url, args.state_prefix
            );
            Some(r)
        }
        None => None,
    };
    let store = match (args.share_ttl, &redis) {
        (Some(ttl), Some(r)) => {
            eprintln!("sharing references for {ttl} s in {}", r.shown_url);
            Some(Arc::new(SharedReferences::redis(
                r.clone(),
                Duration::from_secs(ttl),
            )))
        }
        (Some(ttl), None) => {
            let path = match &args.store {
                Some(p) => p.clone(),
                None => {
                    let models = crate::load::cache()?;
                    let root = models.dir().parent().unwrap_or(models.dir()).to_path_buf();
                    std::fs::create_dir_all(&root)
                        .with_context(|| format!("cannot create {}", root.display()))?;
                    root.join("guidance.sqlite")
                }
            };
            let store = GuidanceStore::open(&path, Duration::from_secs(ttl))
                .with_context(|| format!("guidance store {}", path.display()))?;
            eprintln!("sharing references for {ttl} s in {}", path.display());
            Some(Arc::new(SharedReferences::new(store)))
        }
        (None, _) => None,
    };
    let mut embedders = Vec::new();
    for name in &args.embedding_models {
        embedders.push(crate::load::load_embedder(name).await?);
    }
    // colm's own comparisons (paraphrases, the `embedding` selector) use the first embedding
    // model, loaded (and served) when one is needed and none is named.
    let selects_by_embedding = std::iter::once(&StrategySpec::Colm(colm_spec.clone()))
        .chain(extra_strategies.iter().map(|(_, s)| s))
        .any(|s| s.calls().embedder);
    if embedders.is_empty() && (args.share_paraphrases.is_some() || selects_by_embedding) {
        embedders.push(crate::load::load_embedder(colm_models::DEFAULT_EMBEDDER).await?);
    }
    let embedder = embedders.first().cloned();
    let embedder_names: Vec<String> = embedders.iter().map(|e| e.name().to_owned()).collect();
    // The store the collaborations read and write: the shared references, or a paraphrase
    // index over them.
    let guidance_store: Option<Arc<dyn ReferenceStore>> = match (&store, args.share_paraphrases) {
        (Some(shared), Some(similarity)) => {
            let embedder = embedder.clone().context("an embedding model was loaded")?;
            eprintln!(
                "sharing references between paraphrases (cosine ≥ {similarity} with {}, same \
                 numbers, quotes and names)",
                embedder.name()
            );
            Some(Arc::new(ParaphraseStore::new(
                shared.clone(),
                embedder,
                similarity,
            )))
        }
        (Some(shared), None) => Some(shared.clone() as Arc<dyn ReferenceStore>),
        (None, _) => None,
    };
    let upstreams = args
        .upstreams
        .iter()
        .map(|u| {
            let mut up = Upstream::parse(u).map_err(|e| anyhow::anyhow!("--upstream {e}"))?;
            if let Some(var) = &up.key_env {
                up.api_key = Some(std::env::var(var).with_context(|| {
                    format!(
                        "--upstream {}: environment variable {var} is not set",
                        up.name
                    )
                })?);
            }
            if let Some(path) = &up.key_file {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("--upstream {}: key file {}", up.name, path.display())
                })?;
                let key = text.lines().next().unwrap_or_default().trim();
                anyhow::ensure!(
                    !key.is_empty(),
                    "--upstream {}: key file {} is empty",
                    up.name,
                    path.display()
                );
                up.api_key = Some(key.to_owned());
            }
            Ok(up)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let is_upstream = |name: &str| {
        upstreams
            .iter()
            .any(|u| u.name == name || u.aliases.iter().any(|a| a == name))
    };
    // Whether `served` is another upstream's id (an alias may not take it).
    let is_upstream_id =
        |served: &str, id: &str| served != id && upstreams.iter().any(|u| u.name == served);
    let specs: Vec<(&str, Option<&str>)> = args.models.iter().map(|m| split_alias(m)).collect();
    let mut names: Vec<&str> = specs.iter().map(|(n, _)| *n).collect();
    // A collaborator or server named by an alias of --model is that model (no load of its own).
    let is_alias = |n: &str| specs.iter().any(|(_, a)| *a == Some(n));
    names.extend(args.colm_clients.iter().map(String::as_str));
    names.extend(args.colm_server.as_deref());
    names.retain(|n| !is_upstream(n) && !is_alias(n));
    let opts = LoadOptions {
        engine: args.engine.clone(),
        max_queue: args.max_queue,
        verbose: true,
    };
    let mut loaded = load_models(&names, &opts).await?;
    let mut hosted: Vec<(String, Arc<dyn ChatModel>)> = Vec::new();
    // An id given several times is one model on several replicas.
    let mut ids: Vec<&str> = Vec::new();
    for u in &upstreams {
        if !ids.contains(&u.name.as_str()) {
            ids.push(&u.name);
        }
    }
    for id in ids {
        let replicas: Vec<Upstream> = upstreams.iter().filter(|u| u.name == id).cloned().collect();
        if loaded.contains_key(id) {
            anyhow::bail!("model id {id:?} is given twice");
        }
        let model: Arc<dyn ChatModel> = match replicas.as_slice() {
            [u] => Arc::new(RemoteChat::upstream(u).with_context(|| format!("--upstream {id}"))?),
            _ => Arc::new(
                Replicas::new(&replicas).map_err(|e| anyhow::anyhow!("--upstream {id}: {e}"))?,
            ),
        };
        for u in &replicas {
            eprintln!(
                "upstream {id} → {} at {}{}",
                u.model,
                u.base_url,
                if u.vision { " (reads images)" } else { "" }
            );
        }
        // The aliases of every replica, each once.
        let mut aliases: Vec<&str> = Vec::new();
        for a in replicas.iter().flat_map(|u| &u.aliases) {
            if !aliases.contains(&a.as_str()) {
                aliases.push(a);
            }
        }
        for served in std::iter::once(id).chain(aliases.iter().copied()) {
            if hosted.iter().any(|(h, _)| h == served) || is_upstream_id(served, id) {
                anyhow::bail!("model id {served:?} is given twice");
            }
            hosted.push((served.to_owned(), model.clone()));
        }
        let description = match replicas.len() {
            1 => format!(
                "model {} on an OpenAI-compatible endpoint",
                replicas[0].model
            ),
            n => format!(
                "model {} on {n} OpenAI-compatible replicas",
                replicas[0].model
            ),
        };
        let entry = Arc::new(Loaded { model, description });
        for a in aliases {
            loaded.insert(a.to_owned(), entry.clone());
        }
        loaded.insert(id.to_owned(), entry);
    }
    let mut registry = Registry::new(&loaded);
    for (name, alias) in &specs {
        let m = registry.get(name)?;
        let id = alias.map_or_else(|| m.model.name().to_owned(), str::to_owned);
        if hosted.iter().any(|(h, _)| *h == id) {
            anyhow::bail!("model id {id:?} is given twice; use NAME=ALIAS to tell them apart");
        }
        hosted.push((id.clone(), m.model.clone()));
        registry.insert(&id, m);
    }
    let mut writers = Vec::new();
    for text in &args.writers {
        let spec = WriterSpec::parse(text).map_err(|e| anyhow::anyhow!("--writer {text}: {e}"))?;
        let model = registry
            .get(&spec.model)
            .with_context(|| format!("--writer {text}"))?;
        writers.push(spec.build(model.model.clone()));
    }
    if let Some(server) = &args.colm_server {
        if hosted.iter().any(|(h, _)| h == "colm") {
            anyhow::bail!("a hosted model is already called \"colm\": give it another alias");
        }
        let collaborators = registry
            .collaborators(&args.colm_clients)
            .context("--colm-client")?;
        let server = registry.get(server).context("--colm-server")?;
        let router = match &args.router {
            Some(path) => {
                let file = crate::route::RouterFile::load(path)?;
                anyhow::ensure!(
                    file.speeds.is_none(),
                    "--router {}: a served cascade measures its own speeds: leave out [speeds]",
                    path.display()
                );
                file.router
            }
            None => RouterConfig::default(),
        };
        // Every virtual model is a strategy over the same parts, served by one wrapper.
        let virtual_model = |id: &str, spec: &StrategySpec| -> anyhow::Result<Arc<dyn ChatModel>> {
            let parts = Parts {
                clients: &collaborators,
                server: server.model.clone(),
                writers: &writers,
                store: guidance_store.clone(),
                router: router.clone(),
                embedder: embedder.clone(),
                ledger: redis
                    .as_ref()
                    .map(|r| Arc::new(r.ledger(id)) as Arc<dyn colm_core::vertical::TokenLedger>),
            };
            let strategy = spec
                .build(id, parts)
                .map_err(|e| anyhow::anyhow!("{id}={spec}: {e}"))?;
            Ok(Arc::new(
                StrategyModel::new(id, strategy).with_spec(spec.name()),
            ))
        };
        hosted.push((
            "colm".to_owned(),
            virtual_model("colm", &StrategySpec::Colm(colm_spec.clone()))?,
        ));
        for (id, spec) in &extra_strategies {
            if hosted.iter().any(|(h, _)| h == id) {
                anyhow::bail!("model id {id:?} is given twice");
            }
            let model = virtual_model(id, spec).context("--colm-strategy")?;
            hosted.push((id.clone(), model));
        }
    }
    let ids: Vec<String> = hosted.iter().map(|(id, _)| id.clone()).collect();
    // A model served under an alias also answers to the names it was loaded by (its catalog
    // name or file) and its own name.
    let other_names: Vec<(String, String)> = registry
        .names()
        .filter_map(|(name, m)| {
            let (id, _) = hosted.iter().find(|(_, h)| Arc::ptr_eq(h, &m.model))?;
            Some((name.to_owned(), id.clone()))
        })
        .collect();
    let state = AppState::with_guidance_store(
        hosted,
        ServerConfig {
            max_body_bytes: args.max_body_bytes,
            default_max_tokens: args.default_max_tokens,
            auth,
            max_image_bytes: args.max_image_bytes,
            allow_image_urls: args.allow_image_urls,
            hosts: HostPolicy::of(&args.allowed_hosts, HostPolicy::for_bind(args.bind)),
            cors_origins: colm_server::origin::origins(&args.cors_origins)
                .map_err(|e| anyhow::anyhow!("--cors-origin: {e}"))?,
            connections: colm_server::listen::ConnectionLimits {
                header_read: Duration::from_millis(args.header_timeout_ms),
                body_read: Duration::from_millis(args.body_timeout_ms),
                max_connections: args.max_connections,
            },
            sessions: colm_server::sessions::store::OpenCaps {
                total: args.max_sessions,
                per_tenant: args.max_sessions_per_tenant,
            },
        },
        store,
    )
    .with_writers(writers)?
    .with_other_names(other_names)?
    .with_embedders(embedders)?;
    let state = match guidance_store {
        Some(s) => state.with_reference_store(s)?,
        None => state,
    };
    let state = match redis {
        Some(r) => state.with_shared_state(r)?,
        None => state,
    };
    let state = match &args.interaction_log {
        Some(target) => {
            let shown = without_credentials(target);
            let log = colm_server::log::InteractionLog::open_target(target, !args.no_log_texts)
                .await
                .with_context(|| format!("--interaction-log {shown}"))?;
            eprintln!("logging interactions in {shown}");
            state.with_log(log)?
        }
        None => state,
    };
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let addr = listener.local_addr()?;
    let ids: Vec<String> = ids.into_iter().chain(embedder_names).collect();
    println!(
        "colm serve: listening on http://{addr} (models: {})",
        ids.join(", ")
    );
    std::io::stdout().flush()?;
    colm_server::serve(listener, state).await?;
    Ok(())
}

/// A cosine similarity threshold in (0, 1].
fn similarity(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if x > 0.0 && x <= 1.0 => Ok(x),
        _ => Err(format!("a cosine similarity in (0, 1], got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_split_from_the_right() {
        assert_eq!(split_alias("qwen"), ("qwen", None));
        assert_eq!(split_alias("qwen=small"), ("qwen", Some("small")));
        assert_eq!(split_alias("/m/a=b.gguf=x"), ("/m/a=b.gguf", Some("x")));
        assert_eq!(split_alias("qwen="), ("qwen=", None));
    }
}

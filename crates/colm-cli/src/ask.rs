//! `colm ask`: one query answered by a strategy (`--strategy`, the text form of
//! [`colm_core::strategy`]; default a CoLM collaboration) with embedded models, printed step by
//! step or as JSON: `colm[:…]`, a horizontal strategy (self-consistency, debate,
//! mixture-of-agents), the `cascade:…` router or a single model (`local`, `server`).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;

use crate::load::{load_models, EngineArgs, LoadOptions};
use crate::print::{print_run, print_totals, Output};
use clap::Args;
use colm_core::colm::references::WriterSpec;
use colm_core::colm::{self, ColmConfig, ModelTotals, Watch};
use colm_core::strategy::{ColmOptions, Parts, StrategySpec};
use colm_core::vertical::RouterConfig;
use colm_core::{ChatMessage, ChatModel, SamplingParams};
use colm_engine::EngineConfig;

/// Default client model (DESIGN.md §4).
pub const DEFAULT_CLIENT: &str = "qwen2.5-coder-0.5b-instruct";
/// Default server model (DESIGN.md §4).
pub const DEFAULT_SERVER: &str = "qwen2.5-coder-1.5b-instruct";
/// The question asked when none is given: item 1 of GSM8K test (`../shared/data/gsm8k/dev.jsonl`),
/// reference answer 18.
pub const DEFAULT_QUERY: &str = "Janet\u{2019}s ducks lay 16 eggs per day. She eats three for \
breakfast every morning and bakes muffins for her friends every day with four. She sells the \
remainder at the farmers' market daily for $2 per fresh duck egg. How much in dollars does she \
make every day at the farmers' market?";

/// Arguments of `colm ask`.
#[derive(Args)]
pub struct AskArgs {
    /// The question; read from stdin when none is given and stdin is a pipe or a file that
    /// holds one; else a sample question (the first GSM8K test question, answer 18), said so.
    pub query: Option<String>,
    /// Client model (catalog name or .gguf path); repeat for K collaborators.
    #[arg(long = "client", default_value = DEFAULT_CLIENT)]
    pub clients: Vec<String>,
    /// Server model that selects collaborators and aggregates drafts into guidance.
    #[arg(long, default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Strategy, in the one text form of `colm_core::strategy` (the same as `colm eval
    /// --strategy` and `colm serve --colm-strategy`): colm[:key=value,…] (default; the keys are
    /// the colm options below, `colm:refs=3,selector=model`), a horizontal one —
    /// self-consistency[:n=5,t=0.7,on=client|server],
    /// debate[:agents=3,rounds=2,topology=full|ring|star,on=client|server],
    /// moa[:proposers=3,layers=1] — over the --client models and the --server model,
    /// cascade:tau=T[,agree=N,share=S,to=remote|colm] (the router with only its cascade), or
    /// local / server (one model, the draft prompt). The colm options below override the
    /// strategy's.
    #[arg(long, default_value = "colm")]
    pub strategy: StrategySpec,
    /// The options of a colm strategy (each also a key of its text form).
    #[command(flatten, next_help_heading = "CoLM options")]
    pub colm: ColmOptions,
    /// colm, reference modes: a server-side collaborator, `MODEL[:role=R,t=T,seed=S,id=I]` (R:
    /// math, code, conversation, creative); repeatable. Default: the --server model alone for
    /// one reference, else the strategy's `pool` on the --server model.
    #[arg(long = "writer")]
    pub writers: Vec<String>,
    /// Maximum tokens generated per step.
    #[arg(long, default_value_t = colm_core::DEFAULT_MAX_TOKENS)]
    pub max_tokens: u32,
    /// Sampling temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling mass (with temperature > 0).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Sampling seed (with temperature > 0).
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// Route the query with the device–cloud router instead: the first --client drafts, and
    /// the policy in this TOML file (`docs/router.toml`: cascade threshold, server-token and
    /// latency budgets, data residency) decides whether it stays local, goes to the --server
    /// model (`remote`) or gets a CoLM round (`colm`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["strategy", "rounds", "top_k", "mode"])]
    pub router: Option<std::path::PathBuf>,
    /// With --router: the query is sensitive whatever the detector finds (it stays on the
    /// device, or leaves with its detected spans replaced, as the router file says).
    #[arg(long, requires = "router")]
    pub sensitive: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Print the full record as JSON on stdout instead of the step-by-step view.
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,
    /// Print the final answer only (no steps, no status line, no table).
    #[arg(long, short)]
    pub quiet: bool,
}

/// The question of `colm ask`: the argument; else what stdin holds when it is not a terminal
/// (a pipe, a file); else — a terminal, or an empty stdin such as `/dev/null` — the sample
/// question, said on stderr.
///
/// # Errors
/// Stdin cannot be read.
fn question(given: Option<&str>) -> anyhow::Result<String> {
    use std::io::{IsTerminal, Read};
    if let Some(q) = given {
        return Ok(q.to_owned());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut text = String::new();
        stdin
            .lock()
            .read_to_string(&mut text)
            .context("reading the question from stdin")?;
        let text = text.trim();
        if !text.is_empty() {
            return Ok(text.to_owned());
        }
    }
    eprintln!(
        "No question given: asking a sample question (GSM8K test item 1, answer 18). \
         Give one as an argument, or pipe one in."
    );
    Ok(DEFAULT_QUERY.to_owned())
}

pub async fn run(args: AskArgs) -> anyhow::Result<()> {
    let query = question(args.query.as_deref())?;
    let output = match (args.json, args.quiet) {
        (true, _) => Output::Json,
        (_, true) => Output::Quiet,
        _ => Output::View,
    };
    let view = output == Output::View;
    // A bad router file fails before any model loads.
    let router = args
        .router
        .as_deref()
        .map(crate::route::RouterFile::load)
        .transpose()?;
    let colm_spec = match &args.strategy {
        StrategySpec::Colm(c) => args
            .colm
            .over(c)
            .map_err(|e| anyhow::anyhow!("--{}: {e}", e.field.replace('_', "-")))?,
        other => {
            if !args.colm.is_empty() {
                anyhow::bail!(
                    "the colm options ({}) do not apply to --strategy {other}",
                    colm_core::options::text::format(&args.colm)
                );
            }
            ColmOptions::default()
        }
    };
    colm_spec
        .check_clients(args.clients.len())
        .map_err(anyhow::Error::msg)?;
    // `cascade:…` is a router whose policy is only its confidence cascade.
    let router = match (router, &args.strategy) {
        (None, StrategySpec::Cascade(c)) => Some(crate::route::RouterFile {
            router: c.router_config(RouterConfig::default()),
            speeds: None,
        }),
        (router, _) => router,
    };
    let writer_specs = args
        .writers
        .iter()
        .map(|w| WriterSpec::parse(w).map_err(|e| anyhow::anyhow!("--writer {w}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Only the models the strategy calls are loaded (`local` never loads the server model).
    let spec = match &args.strategy {
        StrategySpec::Colm(_) => StrategySpec::Colm(colm_spec.clone()),
        other => other.clone(),
    };
    let calls = match &router {
        Some(_) => colm_core::strategy::Calls {
            clients: true,
            server: true,
            embedder: false,
        },
        None => spec.calls(),
    };
    let mut specs: Vec<&str> = Vec::new();
    if calls.clients {
        specs.extend(args.clients.iter().map(String::as_str));
    }
    if calls.server {
        specs.push(&args.server);
        specs.extend(writer_specs.iter().map(|w| w.model.as_str()));
    }
    let opts = LoadOptions {
        engine: args.engine.clone(),
        max_queue: EngineConfig::default().max_queue,
        verbose: view,
    };
    let models = load_models(&specs, &opts).await?;
    let registry = crate::registry::Registry::new(&models);
    let get = |spec: &str| registry.get(spec);
    let collaborators = if calls.clients {
        registry.collaborators(&args.clients)?
    } else {
        Vec::new()
    };
    let server = if calls.server {
        Some(get(&args.server)?)
    } else {
        None
    };
    let declared = if calls.server {
        writer_specs
            .iter()
            .map(|w| Ok(w.build(get(&w.model)?.model.clone())))
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    if let Some(server) = &server {
        let server_model: Arc<dyn ChatModel> = server.model.clone();
        let writers = colm_spec.writers(&server_model, &declared);
        colm::references::check_pool(&writers).map_err(anyhow::Error::msg)?;
    }
    // Past the single-model strategies, every strategy calls the server.
    let server_model = || {
        server
            .as_ref()
            .map(|s| s.model.clone())
            .context("this strategy calls the server model")
    };
    let params = SamplingParams {
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
        sensitive: args.sensitive,
        ..SamplingParams::default()
    };
    let config = colm_spec.config(ColmConfig {
        client_params: params.clone(),
        server_params: params,
        ..ColmConfig::default()
    });

    if view {
        let clients: Vec<&str> = collaborators.iter().map(|c| c.model.name()).collect();
        let shape = match (&args.strategy, &args.router) {
            (_, Some(path)) => format!("router {}", path.display()),
            (StrategySpec::Colm(_), None) => format!(
                "{} round(s) · {} guidance{}{}",
                config.rounds,
                config.guidance_mode.name(),
                if config.guidance_mode.uses_references() {
                    format!(" · {} reference(s)", config.references.k)
                } else {
                    String::new()
                },
                config
                    .top_k
                    .map(|k| format!(" · top-k {k}"))
                    .unwrap_or_default()
            ),
            (other, None) => other.name(),
        };
        let server = server.as_ref().map_or("(not called)", |s| s.model.name());
        let clients = if clients.is_empty() {
            "(not called)".to_owned()
        } else {
            clients.join(", ")
        };
        println!(
            "colm ask · clients {clients} · server {server} · {shape} · {}",
            colm_engine::build_info()
        );
        println!("\nQuery: {query}");
    }
    if let Some(file) = router {
        let local = collaborators
            .first()
            .map(|c| c.model.clone())
            .context("--router needs a --client")?;
        return crate::route::ask(
            file,
            &query,
            local,
            server_model()?,
            &config.client_params,
            output,
        )
        .await;
    }
    if let StrategySpec::Local | StrategySpec::Server = args.strategy {
        let model: Arc<dyn ChatModel> = match args.strategy {
            StrategySpec::Server => server_model()?,
            _ => collaborators
                .first()
                .map(|c| c.model.clone())
                .context("`local` needs a --client")?,
        };
        let messages = colm_core::prompts::draft(&colm_core::Query::new(query.as_str()));
        let completion = if view {
            // The answer as it is written.
            println!("\n══ answer ({}) ══", args.strategy);
            let (tx, mut rx) = futures::channel::mpsc::unbounded();
            let print = async {
                while let Some(e) = futures::StreamExt::next(&mut rx).await {
                    if let colm_core::StreamEvent::Delta(t) = e {
                        print!("{t}");
                        let _ = std::io::Write::flush(&mut std::io::stdout());
                    }
                }
            };
            let (c, ()) = futures::join!(
                model.chat_streaming(&messages, &config.client_params, tx),
                print
            );
            println!();
            c?
        } else {
            model.chat(&messages, &config.client_params).await?
        };
        if args.quiet {
            println!("{}", completion.text.trim());
        } else if args.json {
            let body = serde_json::json!({
                "strategy": args.strategy.name(),
                "model": model.name(),
                "messages": messages,
                "completion": completion,
            });
            println!("{}", serde_json::to_string_pretty(&body)?);
        } else {
            let mut totals = BTreeMap::new();
            totals.insert(
                model.name().to_owned(),
                ModelTotals {
                    calls: 1,
                    usage: completion.usage,
                    prompt_ms: completion.timings.prompt_ms,
                    generation_ms: completion.timings.generation_ms,
                    ..ModelTotals::default()
                },
            );
            print_totals(
                &totals,
                completion.timings.prompt_ms + completion.timings.generation_ms,
            );
        }
        return Ok(());
    }
    let live = crate::live::Live::new();
    let observer: Option<colm::StepObserver<'_>> = view.then_some(&live as _);
    // CoLM and the horizontal strategies: built from the spec as `colm serve` builds them.
    let embedder = match calls.embedder {
        true => Some(crate::load::load_embedder(colm_models::DEFAULT_EMBEDDER).await?),
        false => None,
    };
    let parts = Parts {
        clients: &collaborators,
        server: server_model()?,
        writers: &declared,
        store: None,
        router: RouterConfig::default(),
        ledger: None,
        embedder,
    };
    let strategy = spec
        .build(&spec.name(), parts)
        .map_err(anyhow::Error::msg)?;
    let messages = [ChatMessage::user(query.clone())];
    match strategy
        .run(&messages, &config.client_params, Watch::steps(observer))
        .await
    {
        Ok(run) => {
            live.done();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else if args.quiet {
                println!("{}", run.answer().unwrap_or_default().trim());
            } else {
                print_run(&run);
            }
            Ok(())
        }
        Err(e) => {
            live.done();
            if let (true, Some(p)) = (args.json, &e.partial) {
                let body = serde_json::json!({ "error": e.message, "partial": p });
                println!("{}", serde_json::to_string_pretty(&body)?);
            }
            Err(anyhow::anyhow!(e.message))
        }
    }
}

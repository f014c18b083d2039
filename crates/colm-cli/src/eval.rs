//! `colm eval`: run a benchmark suite with several strategies, and report a run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use colm_core::{ChatModel, SamplingParams};
use colm_engine::EngineConfig;
use colm_eval::adversary::Adversary;
use colm_eval::cache::{CachedModel, CallCache};
use colm_eval::runner::{self, Progress, Record, RunPlan, RunSettings};
use colm_eval::strategy::{Client, Strategy, StrategySpec};
use colm_eval::suite::{self, mt_bench, SuiteKind, SuiteOptions};
use colm_eval::{metrics, report};
use indicatif::{ProgressBar, ProgressStyle};

use crate::ask::{DEFAULT_CLIENT, DEFAULT_SERVER};
use crate::load::{load_models, EngineArgs, LoadOptions};

/// `colm eval` subcommands: one per suite, and `report`.
#[derive(Subcommand)]
pub enum EvalCommand {
    /// GSM8K grade-school maths (numeric answer).
    Gsm8k(RunArgs),
    /// ARC-Challenge science questions (multiple choice).
    Arc(RunArgs),
    /// MMLU (multiple choice, 43 subjects), 0-shot or 5-shot.
    Mmlu {
        #[command(flatten)]
        run: RunArgs,
        /// Prepend each subject's 5 dev examples (5-shot).
        #[arg(long)]
        five_shot: bool,
        /// Only this subject (repeatable), e.g. `anatomy`.
        #[arg(long = "subject")]
        subjects: Vec<String>,
    },
    /// HumanEval (Python functions, tests run in a python3 subprocess), pass@1.
    Humaneval(RunArgs),
    /// MT-Bench (two turns, rated 1–10 by a judge model with the published prompts).
    MtBench {
        #[command(flatten)]
        run: RunArgs,
        /// The judge model (default: the server model).
        #[arg(long)]
        judge: Option<String>,
    },
    /// Write report.md, report.json and plots for a run folder.
    Report(ReportArgs),
}

/// Arguments of `colm eval report`.
#[derive(Args)]
pub struct ReportArgs {
    /// The run folder (run.json + records.jsonl).
    pub run: PathBuf,
    /// Where to write report.md, report.json and the plots (default: the run folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Now --out.
    #[arg(long, hide = true, conflicts_with = "out")]
    pub to: Option<PathBuf>,
    /// The command that produced the run, quoted in the report.
    #[arg(long)]
    pub command: Option<String>,
    /// TrueType font of the plots.
    #[arg(long, env = "COLM_PLOT_FONT", default_value = report::FONT)]
    pub plot_font: PathBuf,
}

fn report(args: ReportArgs) -> anyhow::Result<()> {
    let to = crate::renamed::value(args.out.clone(), args.to.clone(), "--to", "--out")
        .unwrap_or_else(|| args.run.clone());
    let written = report::write(&args.run, &to, args.command.as_deref(), &args.plot_font)?;
    for p in &written {
        eprintln!("wrote {}", p.display());
    }
    if let Some(md) = written.first() {
        print!("{}", std::fs::read_to_string(md)?);
    }
    Ok(())
}

/// The data directories `colm eval` tries, in order, each with why: `--data-dir` (or
/// `COLM_DATA`, or the configuration's `data_dir`), else the checkout's `../shared/data`: beside
/// the checkout the running binary was built in (`target/release/colm` under it), then above
/// the current directory.
fn data_dirs(given: Option<&std::path::Path>) -> Vec<(String, PathBuf)> {
    if let Some(dir) = given {
        return vec![(
            "--data-dir, COLM_DATA or [eval] data_dir".into(),
            dir.to_path_buf(),
        )];
    }
    let mut dirs = Vec::new();
    let checkout = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .find(|d| d.join("crates/colm-cli/Cargo.toml").is_file())
            .map(std::path::Path::to_path_buf)
    });
    if let Some(root) = checkout {
        dirs.push((
            "beside the checkout colm was built in".into(),
            root.join("../shared/data"),
        ));
    }
    dirs.push((
        "above the current directory".into(),
        PathBuf::from("../shared/data"),
    ));
    dirs
}

/// Options shared by every suite.
#[derive(Args)]
pub struct RunArgs {
    /// The suite's data file (or folder, for MMLU and MT-Bench); default: its place in the
    /// data directory.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A data directory laid out as `../shared/data` (`gsm8k/dev.jsonl`, `arc/…`, `mmlu/`,
    /// `humaneval/…`, `mt_bench/`); default: the checkout's `../shared/data` (beside the
    /// checkout this binary was built in, or above the current directory).
    #[arg(long, env = "COLM_DATA", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML file of settings: the keys of `[eval]` are these flags with `_` for `-`
    /// (`data_dir = "…"`); flags given on the command line win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run folder: run.json + records.jsonl; a rerun resumes it.
    #[arg(long)]
    pub out: PathBuf,
    /// Strategy to run (repeatable): local, server, colm[:k=K,rounds=R,top_k=N,mode=M],
    /// self-consistency[:n=5,t=0.7,on=client|server],
    /// debate[:agents=3,rounds=2,topology=full|ring|star,on=client|server],
    /// moa[:proposers=3,layers=1] (client proposers, server aggregator),
    /// cascade:[tau=T,][agree=N,share=S,][to=remote|colm] (escalate drafts with mean
    /// log-probability below T, or whose N samples reach their answer less than S of the time;
    /// at least one of tau and agree).
    #[arg(long = "strategy", default_values = ["local", "server", "colm"])]
    pub strategies: Vec<String>,
    /// Items to run (from --offset); all when absent.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Items skipped from the start of the suite.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Client model (repeatable; the first is the client of `local`).
    #[arg(long = "client", default_value = DEFAULT_CLIENT)]
    pub clients: Vec<String>,
    /// Server model (the `server` strategy, CoLM's aggregator).
    #[arg(long, default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Maximum tokens generated per step.
    #[arg(long, default_value_t = colm_core::DEFAULT_MAX_TOKENS)]
    pub max_tokens: u32,
    /// Sampling temperature; 0 (default) = greedy, deterministic.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sampling seed (with temperature > 0).
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// Items in flight together within a strategy (batched by the engine); 1 keeps greedy
    /// runs exactly reproducible.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Call every model afresh: no reuse of identical calls across strategies (by default a
    /// request answered once in the run — model, messages and sampling, seed included — is
    /// replayed for the other strategies that send it: the `local` draft for `colm` and
    /// `cascade`, `colm:refs=3`'s references for `colm:refs=8`).
    #[arg(long)]
    pub no_cache: bool,
    /// Add a poisoned client collaborator after the `--client` models: every answer it gives
    /// is TEXT (default: colm_eval's built-in poisoned draft, which injects the answer 4242).
    /// With `colm:k=K` and K-1 clients, collaborator K is the adversary; the report then says
    /// how often the guidance repeats the injected answer.
    #[arg(long, value_name = "TEXT", num_args = 0..=1,
          default_missing_value = colm_eval::adversary::POISONED_DRAFT)]
    pub adversary: Option<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub async fn run(command: EvalCommand) -> anyhow::Result<()> {
    let (kind, args, opts, judge) = match command {
        EvalCommand::Report(args) => return report(args),
        EvalCommand::Gsm8k(a) => (SuiteKind::Gsm8k, a, SuiteOptions::default(), None),
        EvalCommand::Arc(a) => (SuiteKind::Arc, a, SuiteOptions::default(), None),
        EvalCommand::Humaneval(a) => (SuiteKind::Humaneval, a, SuiteOptions::default(), None),
        EvalCommand::Mmlu {
            run,
            five_shot,
            subjects,
        } => (
            SuiteKind::Mmlu,
            run,
            SuiteOptions {
                five_shot,
                subjects,
            },
            None,
        ),
        EvalCommand::MtBench { run, judge } => {
            let judge = judge.unwrap_or_else(|| run.server.clone());
            (
                SuiteKind::MtBench,
                run,
                SuiteOptions::default(),
                Some(judge),
            )
        }
    };
    let data = kind.find_data(args.data.as_deref(), &data_dirs(args.data_dir.as_deref()))?;
    let items = suite::load(kind, &data, &opts)?;
    let specs = args
        .strategies
        .iter()
        .map(|s| StrategySpec::parse(s).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let settings = RunSettings {
        suite: kind,
        data: data.clone(),
        suite_options: opts,
        clients: args.clients.clone(),
        server: args.server.clone(),
        judge: judge.clone(),
        params: SamplingParams {
            max_tokens: args.max_tokens,
            temperature: args.temperature,
            seed: args.seed,
            ..SamplingParams::default()
        },
        adversary: args.adversary.clone(),
    };
    // Refuse a mismatching folder before loading models.
    runner::open_run(&args.out, &settings)?;

    let mut names: Vec<&str> = args.clients.iter().map(String::as_str).collect();
    names.push(&args.server);
    if let Some(j) = &judge {
        names.push(j);
    }
    let load_opts = LoadOptions {
        engine: EngineArgs {
            parallel: args.engine.parallel.max(args.concurrency as u32),
            // Records that replay: reuse only what leaves answers bit-identical.
            prompt_cache: Some(
                args.engine
                    .prompt_cache
                    .unwrap_or(colm_core::PromptReuse::Prompt),
            ),
            ..args.engine.clone()
        },
        max_queue: EngineConfig::default().max_queue.max(args.concurrency * 4),
        verbose: true,
    };
    let models = load_models(&names, &load_opts).await?;
    let get = |n: &str| {
        models
            .get(n)
            .cloned()
            .with_context(|| format!("model {n} was not loaded"))
    };
    let cache = (!args.no_cache).then(|| {
        let cache = CallCache::new();
        let records = runner::read_records(&args.out).unwrap_or_default();
        let n = cache.warm(&records, &settings);
        if n > 0 {
            eprintln!("reusing {n} calls of the run's earlier records");
        }
        cache
    });
    let wrap = |m: Arc<dyn ChatModel>| -> Arc<dyn ChatModel> {
        match &cache {
            Some(c) => Arc::new(CachedModel::new(m, c.clone())),
            None => m,
        }
    };
    let clients = args
        .clients
        .iter()
        .map(|n| {
            get(n).map(|m| Client {
                model: wrap(m.model.clone()),
                description: m.description.clone(),
            })
        })
        .chain(args.adversary.iter().map(|text| {
            Ok(Client {
                model: Arc::new(Adversary::new(text.clone())),
                description: "a client collaborator".into(),
            })
        }))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let server: Arc<dyn ChatModel> = wrap(get(&args.server)?.model.clone());
    let embedder = match specs.iter().any(|s| s.calls().embedder) {
        true => Some(crate::load::load_embedder(colm_models::DEFAULT_EMBEDDER).await?),
        false => None,
    };
    let strategies = specs
        .iter()
        .map(|s| {
            Strategy::new(s, &clients, server.clone(), embedder.clone())
                .map(Arc::new)
                .map_err(anyhow::Error::msg)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let judge = match &judge {
        Some(j) => {
            let dir = data.clone();
            let prompts = mt_bench::judge_prompts(&dir)?;
            let model: Arc<dyn ChatModel> = get(j)?.model.clone();
            Some((model, Arc::new(prompts)))
        }
        None => None,
    };
    let plan = RunPlan {
        strategies,
        offset: args.offset,
        limit: args.limit,
        concurrency: args.concurrency,
    };
    eprintln!(
        "colm eval {} · {} items from {} · strategies {} · {}",
        kind.name(),
        args.limit
            .map_or(items.len().saturating_sub(args.offset), |l| l
                .min(items.len().saturating_sub(args.offset))),
        data.display(),
        specs
            .iter()
            .map(StrategySpec::name)
            .collect::<Vec<_>>()
            .join(", "),
        colm_engine::build_info()
    );
    let progress = Bar::new();
    runner::run(&args.out, &settings, &items, &plan, judge, &progress).await?;
    if let Some(c) = &cache {
        eprintln!("{} calls replayed from the cache", c.hits());
    }
    let records = runner::read_records(&args.out)?;
    eprintln!("\n{}", report::table(&metrics::summarize(&records)));
    eprintln!(
        "records in {}; `colm eval report {}` writes the report and plots",
        args.out.join("records.jsonl").display(),
        args.out.display()
    );
    Ok(())
}

/// Progress: an indicatif bar on a terminal, one line per item otherwise (logs of background
/// runs).
struct Bar {
    tty: bool,
    state: Mutex<BarState>,
}

struct BarState {
    bar: Option<ProgressBar>,
    strategy: String,
    total: usize,
    done: usize,
    right: usize,
    started: Instant,
}

impl Bar {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            state: Mutex::new(BarState {
                bar: None,
                strategy: String::new(),
                total: 0,
                done: 0,
                right: 0,
                started: Instant::now(),
            }),
        }
    }
}

impl Progress for Bar {
    fn start(&self, strategy: &str, pending: usize) {
        let Ok(mut s) = self.state.lock() else { return };
        s.strategy = strategy.to_owned();
        s.total = pending;
        s.done = 0;
        s.right = 0;
        s.started = Instant::now();
        if self.tty && pending > 0 {
            let bar = ProgressBar::new(pending as u64);
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix:>24} [{bar:30}] {pos}/{len} {msg} · {elapsed} elapsed, ETA {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(strategy.to_owned());
            s.bar = Some(bar);
        } else if pending == 0 {
            eprintln!("{strategy}: nothing left to run");
        }
    }

    fn record(&self, r: &Record) {
        let Ok(mut s) = self.state.lock() else { return };
        s.done += 1;
        s.right += usize::from(r.correct());
        let msg = format!("right {}/{}", s.right, s.done);
        if let Some(bar) = &s.bar {
            bar.set_message(msg);
            bar.inc(1);
        } else {
            let elapsed = s.started.elapsed().as_secs_f64();
            let eta = elapsed / s.done as f64 * (s.total - s.done) as f64;
            let outcome = match (&r.score, &r.error) {
                (Some(sc), _) => match sc.correct {
                    Some(true) => "right".to_owned(),
                    Some(false) => format!("wrong ({})", sc.extracted.as_deref().unwrap_or("-")),
                    None => format!("score {:.1}", sc.value),
                },
                (None, Some(e)) => format!("error: {e}"),
                (None, None) => "no score".to_owned(),
            };
            eprintln!(
                "{} {}/{} {} {} in {:.1} s · {msg} · ETA {:.0} min",
                s.strategy,
                s.done,
                s.total,
                r.item,
                outcome,
                r.wall_ms / 1000.0,
                eta / 60.0
            );
        }
    }

    fn finish(&self, _strategy: &str) {
        if let Ok(mut s) = self.state.lock() {
            if let Some(bar) = s.bar.take() {
                bar.finish();
            }
        }
    }
}

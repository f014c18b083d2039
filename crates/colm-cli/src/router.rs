//! `colm router`: train a routing policy on logged outcomes — a `colm eval` run's, or a
//! deployment's interaction log with feedback (`colm serve --interaction-log`) — and report its
//! accuracy–cost curve on held-back items next to the confidence cascade.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use colm_eval::learned::{
    curve, examples, gain_at, log_examples, split, CurvePoint, Example, LearnedRouter, LoggedAnswer,
};
use colm_eval::runner::read_records;
use colm_eval::strategy::Arm;

/// `colm router` subcommands.
#[derive(Subcommand)]
pub enum RouterCommand {
    /// Fit the learned router on a run (items not held back) and write it as JSON.
    Train(TrainArgs),
    /// Report a trained router's accuracy–cost curve on the run's held-back items.
    Eval(EvalArgs),
}

/// Where the logged outcomes are and which items are held back.
#[derive(Args)]
pub struct DataArgs {
    /// The logged outcomes: a `colm eval` run folder with the local and the escalation
    /// strategy on the same items, or an interaction log with feedback (the SQLite file or
    /// `postgres://…` URL `colm serve --interaction-log` wrote).
    #[arg(long = "from")]
    pub from: String,
    /// What answers on the device: a strategy of the run, or a model id of the log (its
    /// answers give the features and the local outcome).
    #[arg(long, default_value = "local")]
    pub local: String,
    /// What an escalation runs: a strategy of the run, or a model id of the log (its answers
    /// give the escalation's outcome and server tokens).
    #[arg(long, default_value = "server")]
    pub escalation: String,
    /// Items whose position is a multiple of this are held back for `router eval`.
    #[arg(long, default_value_t = 3)]
    pub holdout_every: usize,
}

/// Arguments of `colm router train`.
#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Target share (0–1) of the server tokens escalating every item would spend.
    #[arg(long, default_value_t = 0.5)]
    pub budget: f64,
    /// Where to write the router.
    #[arg(long, default_value = "router.json")]
    pub out: PathBuf,
}

/// Arguments of `colm router eval`.
#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The trained router.
    #[arg(long, default_value = "router.json")]
    pub model: PathBuf,
    /// Also write the report as Markdown here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Now --out.
    #[arg(long, hide = true, conflicts_with = "out")]
    pub to: Option<PathBuf>,
}

/// The examples of `data`, split into training and held-back items.
async fn load(data: &DataArgs) -> anyhow::Result<(Vec<Example>, Vec<Example>)> {
    let all = if Path::new(&data.from).is_dir() {
        let records = read_records(Path::new(&data.from))?;
        anyhow::ensure!(!records.is_empty(), "{} has no records", data.from);
        let arm = |s: &str| Arm::parse(s).map_err(anyhow::Error::msg);
        examples(&records, &arm(&data.local)?, &arm(&data.escalation)?)?
    } else {
        let answers = logged_answers(&data.from).await?;
        log_examples(&answers, &data.local, &data.escalation).with_context(|| {
            format!(
                "pairing the answers of {}",
                crate::serve::without_credentials(&data.from)
            )
        })?
    };
    Ok(split(&all, data.holdout_every))
}

/// The answers of the interaction log at `target` that carry feedback and their texts (a
/// record without texts — sensitive, or logged with `--no-log-texts` — cannot be paired by
/// query, and is counted on stderr).
async fn logged_answers(target: &str) -> anyhow::Result<Vec<LoggedAnswer>> {
    let records = colm_server::log::read_target(target)
        .await
        .with_context(|| {
            format!(
                "reading the interaction log {}",
                crate::serve::without_credentials(target)
            )
        })?;
    let mut without_texts = 0usize;
    let answers: Vec<LoggedAnswer> = records
        .into_iter()
        .filter(|(r, _)| r.status == 200 && r.error.is_none())
        .filter_map(|(r, f)| {
            let right = f.right()?;
            let (Some(model), Some(query), Some(answer)) = (r.model, r.query, r.answer) else {
                without_texts += 1;
                return None;
            };
            Some(LoggedAnswer {
                id: r.id,
                created_ms: r.created_ms,
                model,
                query,
                answer,
                mean_logprob: r.mean_logprob,
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                truncated: r.finish_reason.as_deref() == Some("length"),
                right,
            })
        })
        .collect();
    if without_texts > 0 {
        eprintln!(
            "{without_texts} answers with feedback have no texts kept (sensitive, or \
             --no-log-texts) and are left out"
        );
    }
    Ok(answers)
}

pub async fn run(command: RouterCommand) -> anyhow::Result<()> {
    match command {
        RouterCommand::Train(args) => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&args.budget),
                "--budget is a share of server tokens in 0–1, got {}",
                args.budget
            );
            let (train, _) = load(&args.data).await?;
            let router = LearnedRouter::train(&train, &args.data.escalation, args.budget)?;
            std::fs::write(&args.out, serde_json::to_string_pretty(&router)?)
                .with_context(|| format!("writing {}", args.out.display()))?;
            println!(
                "trained on {} items ({} where escalating helped); threshold {:.3} for {:.0}% of \
                 the server tokens; wrote {}",
                router.trained_on.0,
                router.trained_on.1,
                router.threshold,
                100.0 * args.budget,
                args.out.display()
            );
            Ok(())
        }
        RouterCommand::Eval(args) => {
            let text = std::fs::read_to_string(&args.model)
                .with_context(|| format!("reading {}", args.model.display()))?;
            let router: LearnedRouter = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", args.model.display()))?;
            anyhow::ensure!(
                router.escalation == args.data.escalation,
                "{} was trained for the escalation `{}`, not `{}` (--escalation)",
                args.model.display(),
                router.escalation,
                args.data.escalation
            );
            let (_, test) = load(&args.data).await?;
            anyhow::ensure!(!test.is_empty(), "no held-back items");
            let md = report(&router, &test, &args.data);
            print!("{md}");
            if let Some(to) =
                &crate::renamed::value(args.out.clone(), args.to.clone(), "--to", "--out")
            {
                std::fs::write(to, &md).with_context(|| format!("writing {}", to.display()))?;
            }
            Ok(())
        }
    }
}

/// The Markdown report: the router's operating point, then for token budgets of 0–100% the
/// accuracy and gain share of the learned router and of the confidence cascade.
fn report(router: &LearnedRouter, test: &[Example], data: &DataArgs) -> String {
    let learned: Vec<f64> = test
        .iter()
        .map(|e| router.probability(&e.features))
        .collect();
    // The cascade escalates the least confident drafts first.
    let cascade: Vec<f64> = test.iter().map(|e| -e.features[0]).collect();
    let (lc, cc) = (curve(test, &learned), curve(test, &cascade));
    let n = test.len();
    let escalated: Vec<&Example> = test
        .iter()
        .filter(|e| router.escalate(&e.features))
        .collect();
    let right = test
        .iter()
        .map(|e| {
            if router.escalate(&e.features) {
                e.escalation_right
            } else {
                e.local_right
            }
        })
        .filter(|r| *r)
        .count();
    let total: u64 = test.iter().map(|e| e.server_tokens).sum();
    let spent: u64 = escalated.iter().map(|e| e.server_tokens).sum();
    let mut md = format!(
        "# Learned router on `{}` (escalation: `{}`)\n\n\
         Held back: {n} items (positions that are multiples of {}); trained on {} items.\n\n\
         At its threshold {:.3} (chosen for {:.0}% of the server tokens on the training items) \
         the router escalates {} of {n} items, spends {:.1}% of the server tokens and is right \
         on {right} ({:.1}%); `{}` alone {:.1}%, `{}` alone {:.1}%.\n\n",
        crate::serve::without_credentials(&data.from),
        router.escalation,
        data.holdout_every,
        router.trained_on.0,
        router.threshold,
        100.0 * router.budget_share,
        escalated.len(),
        if total == 0 {
            0.0
        } else {
            100.0 * spent as f64 / total as f64
        },
        100.0 * right as f64 / n as f64,
        data.local,
        100.0 * lc[0].accuracy,
        router.escalation,
        100.0 * lc[n].accuracy,
    );
    md.push_str(
        "| server-token budget % | learned: accuracy % | learned: gain reached % | cascade: accuracy % | cascade: gain reached % |\n|---|---|---|---|---|\n",
    );
    let cell = |p: Option<CurvePoint>, f: fn(&CurvePoint) -> f64| {
        p.map_or("–".to_owned(), |p| format!("{:.1}", 100.0 * f(&p)))
    };
    for b in [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0] {
        let (l, c) = (gain_at(&lc, b), gain_at(&cc, b));
        let _ = writeln!(
            md,
            "| {:.0} | {} | {} | {} | {} |",
            100.0 * b,
            cell(l, |p| p.accuracy),
            cell(l, |p| p.gain_share),
            cell(c, |p| p.accuracy),
            cell(c, |p| p.gain_share),
        );
    }
    md.push_str(
        "\nGain reached: (accuracy − local) / (escalation − local), RouteLLM's PGR; the cascade \
         escalates the drafts of lowest mean token log-probability first. Each row is the most \
         accurate point of the curve within the budget.\n",
    );
    md
}

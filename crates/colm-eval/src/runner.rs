//! The resumable runner.
//!
//! A run lives in one folder: `run.json` (the settings, written at the first start) and
//! `records.jsonl` (one [`Record`] per item and strategy, appended and flushed as each
//! finishes, with the full transcript). A rerun with the same folder skips the (item,
//! strategy) pairs already answered, so an interrupted run resumes where it stopped; a pair
//! whose record failed (no answer, or no score) runs again and its new record supersedes the
//! old one ([`read_records`]); new
//! strategies or a larger `--limit` add records. Settings that change answers (suite, data,
//! models, sampling) must match the folder's `run.json`, or the run is refused.
//!
//! Strategies run one after the other over all items (so one model is busy at a time for
//! `local` and `server`); within a strategy, up to `concurrency` items are in flight together
//! (the engine batches them; 1 keeps greedy runs exactly reproducible), and records are
//! written in the order they finish.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use colm_core::{ChatMessage, ChatModel, SamplingParams};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::strategy::{Arm, RoleTokens, Strategy, TurnOutcome};
use crate::suite::mt_bench::{Judge, JudgePrompt};
use crate::suite::{self, Item, Score, SuiteKind, SuiteOptions};

/// Settings of a run, as stored in `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// The suite.
    pub suite: SuiteKind,
    /// The data file or folder.
    pub data: PathBuf,
    /// Suite options (MMLU shots and subjects).
    pub suite_options: SuiteOptions,
    /// Client models (catalog names or paths), first = the client of `local`.
    pub clients: Vec<String>,
    /// The server model.
    pub server: String,
    /// The judge model (MT-Bench).
    pub judge: Option<String>,
    /// Sampling of every step (greedy by default).
    pub params: SamplingParams,
    /// The text of a poisoned last client collaborator ([`crate::adversary`]), when the run
    /// has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversary: Option<String>,
}

/// Which items and strategies to run, and how.
#[derive(Clone)]
pub struct RunPlan {
    /// Strategies, in running order.
    pub strategies: Vec<Arc<Strategy>>,
    /// Items skipped from the start of the suite.
    pub offset: usize,
    /// Items run after the offset (all when `None`).
    pub limit: Option<usize>,
    /// Items in flight together within a strategy.
    pub concurrency: usize,
}

/// One answer to one item by one strategy, scored: a line of `records.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Suite name.
    pub suite: String,
    /// Item id.
    pub item: String,
    /// Position of the item in the suite, from 1.
    pub index: usize,
    /// Item category (MMLU subject, MT-Bench category).
    pub category: Option<String>,
    /// What answered: the strategy that ran (or an arm replayed by a report).
    pub strategy: Arm,
    /// Each turn's outcome, transcript included.
    pub turns: Vec<TurnOutcome>,
    /// The score, when every turn answered and scoring ran.
    pub score: Option<Score>,
    /// Why there is no score: a turn without an answer, or scoring that could not run.
    pub error: Option<String>,
    /// Tokens by role over all turns.
    pub tokens: RoleTokens,
    /// Server model calls over all turns.
    pub server_calls: u32,
    /// Wall time of all turns, ms (scoring excluded).
    pub wall_ms: f64,
    /// Bytes on the network, when the strategy used one (none in process).
    pub wire_bytes: Option<u64>,
}

impl Record {
    /// The record of `turns` of item `item` (the `index`-th of `suite`, from 1) answered by
    /// `strategy`, with the tokens, server calls and wall time of its turns summed.
    pub fn of_turns(
        suite: &str,
        item: &str,
        index: usize,
        strategy: Arm,
        turns: Vec<TurnOutcome>,
    ) -> Self {
        let mut tokens = RoleTokens::default();
        for t in &turns {
            tokens.sum(t.tokens);
        }
        Self {
            suite: suite.to_owned(),
            item: item.to_owned(),
            index,
            category: None,
            strategy,
            server_calls: turns.iter().map(|t| t.server_calls).sum(),
            wall_ms: turns.iter().map(|t| t.wall_ms).sum(),
            tokens,
            turns,
            score: None,
            error: None,
            wire_bytes: None,
        }
    }

    /// Right (`true`) only when scored correct; an error counts as wrong.
    pub fn correct(&self) -> bool {
        self.score.as_ref().and_then(|s| s.correct) == Some(true)
    }
}

/// Reads the records of a run folder (none when the file does not exist yet). An (item,
/// strategy) pair written more than once — a failed record rerun — is the last one written, at
/// the place of its first.
///
/// # Errors
/// When the file cannot be read or a line is not a record (the line number is named).
pub fn read_records(dir: &Path) -> anyhow::Result<Vec<Record>> {
    let path = dir.join("records.jsonl");
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        // A line cut by an interruption mid-write is the last one: ignore it, it reruns.
        match serde_json::from_str::<Record>(&line) {
            Ok(r) => out.push(r),
            Err(e) if e.is_eof() => {}
            Err(e) => return Err(e).with_context(|| format!("{} line {}", path.display(), i + 1)),
        }
    }
    let mut at: std::collections::HashMap<(String, String), usize> = Default::default();
    let mut latest: Vec<Record> = Vec::with_capacity(out.len());
    for r in out {
        // The text form is canonical: equal arms have equal keys.
        let key = (r.item.clone(), r.strategy.to_string());
        match at.get(&key) {
            Some(&i) => latest[i] = r,
            None => {
                at.insert(key, latest.len());
                latest.push(r);
            }
        }
    }
    Ok(latest)
}

/// Reads `run.json` of a run folder.
///
/// # Errors
/// When it is missing or malformed.
pub fn read_settings(dir: &Path) -> anyhow::Result<RunSettings> {
    let path = dir.join("run.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Writes `run.json` on the first start, or checks that it matches `settings`.
///
/// # Errors
/// When the folder holds a run with other settings (the differing ones are named), or on I/O
/// errors.
pub fn open_run(dir: &Path, settings: &RunSettings) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("run.json");
    if path.exists() {
        let old = read_settings(dir)?;
        if &old != settings {
            let a = serde_json::to_value(&old)?;
            let b = serde_json::to_value(settings)?;
            let differ: Vec<String> = match (a.as_object(), b.as_object()) {
                (Some(a), Some(b)) => a
                    .iter()
                    .filter(|(k, v)| b.get(*k) != Some(v))
                    .map(|(k, v)| format!("{k}: {v} in the folder, {} now", b[k.as_str()]))
                    .collect(),
                _ => Vec::new(),
            };
            anyhow::bail!(
                "{} holds a run with other settings ({}); use another --out folder",
                dir.display(),
                differ.join("; ")
            );
        }
        return Ok(());
    }
    std::fs::write(&path, serde_json::to_string_pretty(settings)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// A judge model and the judge prompts, shared by the items in flight.
pub type SharedJudge = (
    Arc<dyn ChatModel>,
    Arc<std::collections::BTreeMap<String, JudgePrompt>>,
);

/// Reports progress of a run; [`crate::runner::run`] calls it after each record.
pub trait Progress: Send + Sync {
    /// A strategy starts `pending` items.
    fn start(&self, strategy: &str, pending: usize);
    /// A record was written.
    fn record(&self, record: &Record);
    /// The strategy's items are done.
    fn finish(&self, strategy: &str);
}

/// Runs `plan` on `items` into `dir` (see the module docs). `judge` scores judged suites.
///
/// Returns the records written by this call.
///
/// # Errors
/// On I/O errors of the run folder. Model and scoring failures are recorded per item.
pub async fn run(
    dir: &Path,
    settings: &RunSettings,
    items: &[Item],
    plan: &RunPlan,
    judge: Option<SharedJudge>,
    progress: &dyn Progress,
) -> anyhow::Result<Vec<Record>> {
    open_run(dir, settings)?;
    // A record that failed (no answer, or scoring could not run) is not done: it runs again.
    let done: BTreeSet<(String, String)> = read_records(dir)?
        .into_iter()
        .filter(|r| r.error.is_none())
        .map(|r| (r.item, r.strategy.to_string()))
        .collect();
    let end = plan
        .limit
        .map_or(items.len(), |l| (plan.offset + l).min(items.len()));
    let selected: Vec<(usize, &Item)> = items
        .iter()
        .enumerate()
        .skip(plan.offset)
        .take(end.saturating_sub(plan.offset))
        .collect();
    let path = dir.join("records.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut written = Vec::new();
    for strategy in &plan.strategies {
        let pending: Vec<(usize, &Item)> = selected
            .iter()
            .filter(|(_, it)| !done.contains(&(it.id.clone(), strategy.name().to_owned())))
            .copied()
            .collect();
        progress.start(strategy.name(), pending.len());
        let suite_name = settings.suite.name();
        let mut stream = futures::stream::iter(pending.into_iter().map(|(i, item)| {
            let strategy = strategy.clone();
            let judge = judge.clone();
            async move {
                let j = judge.as_ref().map(|(m, p)| Judge {
                    model: m.as_ref(),
                    prompts: p.as_ref(),
                });
                run_item(suite_name, i + 1, item, &strategy, &settings.params, j).await
            }
        }))
        .buffer_unordered(plan.concurrency.max(1));
        while let Some(record) = stream.next().await {
            let line = serde_json::to_string(&record)?;
            writeln!(file, "{line}")
                .and_then(|()| file.flush())
                .with_context(|| format!("writing {}", path.display()))?;
            progress.record(&record);
            written.push(record);
        }
        progress.finish(strategy.name());
    }
    Ok(written)
}

/// Answers every turn of `item` with `strategy`, then scores the answers.
pub async fn run_item(
    suite: &str,
    index: usize,
    item: &Item,
    strategy: &Strategy,
    params: &SamplingParams,
    judge: Option<Judge<'_>>,
) -> Record {
    let mut history: Vec<ChatMessage> = Vec::new();
    let mut turns = Vec::new();
    let mut answers = Vec::new();
    let mut error = None;
    for turn in &item.turns {
        history.push(ChatMessage::user(turn.clone()));
        let out = strategy.answer(&history, params).await;
        let answer = out.answer.clone();
        let failed = out.error.clone();
        turns.push(out);
        match answer {
            Some(a) => {
                history.push(ChatMessage::assistant(a.clone()));
                answers.push(a);
            }
            None => {
                error = Some(failed.unwrap_or_else(|| "no answer".into()));
                break;
            }
        }
    }
    let score = if error.is_none() {
        match suite::score(item, &answers, judge).await {
            Ok(s) => Some(s),
            Err(e) => {
                error = Some(format!("scoring: {e}"));
                None
            }
        }
    } else {
        None
    };
    Record {
        category: item.category.clone(),
        score,
        error,
        ..Record::of_turns(
            suite,
            &item.id,
            index,
            Arm::Ran(strategy.spec().clone()),
            turns,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::RoleTokens;

    fn rec(item: &str, strategy: &str, error: Option<&str>) -> Record {
        Record {
            suite: "gsm8k".into(),
            item: item.into(),
            index: 1,
            category: None,
            strategy: Arm::parse(strategy).unwrap(),
            turns: Vec::new(),
            score: None,
            error: error.map(str::to_owned),
            tokens: RoleTokens::default(),
            server_calls: 0,
            wall_ms: 1.0,
            wire_bytes: None,
        }
    }

    #[test]
    fn a_rerun_record_supersedes_the_failed_one() {
        let dir = tempfile::tempdir().unwrap();
        let lines: String = [
            rec("a", "colm", Some("server overloaded")),
            rec("b", "colm", None),
            rec("a", "local", None),
            rec("a", "colm", None),
        ]
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
        std::fs::write(dir.path().join("records.jsonl"), lines).unwrap();
        let got = read_records(dir.path()).unwrap();
        let keys: Vec<(&str, String, bool)> = got
            .iter()
            .map(|r| (r.item.as_str(), r.strategy.to_string(), r.error.is_none()))
            .collect();
        assert_eq!(
            keys,
            [
                ("a", "colm".to_owned(), true),
                ("b", "colm".to_owned(), true),
                ("a", "local".to_owned(), true)
            ]
        );
    }
}

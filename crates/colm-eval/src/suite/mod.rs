//! Benchmark suites: loaders for the files as published (`../shared/data/README.md`), the
//! prompt each item becomes, and how an answer is scored.
//!
//! | suite | file | prompt | scoring |
//! |---|---|---|---|
//! | `gsm8k` | `gsm8k/dev.jsonl` | the question as is (zero-shot, as `colm ask`) | [`gsm8k::score`] |
//! | `arc` | `arc/arc-challenge-dev.jsonl` | question, lettered options, "answer with the letter" | [`choice::extract_choice`] |
//! | `mmlu` | `mmlu/test/*.csv` (+ `dev/` for 5-shot) | subject header, question, A–D options | [`choice::extract_choice`] |
//! | `humaneval` | `humaneval/HumanEval.jsonl.gz` | complete the function | [`humaneval::score`]: tests in `python3` |
//! | `mt-bench` | `mt_bench/question.jsonl` | two user turns | [`mt_bench::judge`]: 1–10 by a judge model |

use std::path::Path;

use serde::{Deserialize, Serialize};

pub mod choice;
pub mod gsm8k;
pub mod humaneval;
pub mod mmlu;
pub mod mt_bench;

/// A benchmark item: what the user asks (one or more turns) and what is right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Stable id within the suite: the 1-based line number for line-oriented files
    /// (`gsm8k:1`), the published id otherwise (`arc:Mercury_7175875`, `humaneval:HumanEval/0`).
    pub id: String,
    /// The user's turns, in order (two for MT-Bench, one otherwise).
    pub turns: Vec<String>,
    /// A grouping for per-group results (MMLU subject, MT-Bench category).
    pub category: Option<String>,
    /// What a correct answer is.
    pub reference: Reference,
}

/// The reference of an item, by kind of scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reference {
    /// A number (GSM8K's `#### N`), compared numerically.
    Number {
        /// The reference number as written.
        value: String,
    },
    /// One of several labelled options.
    Choice {
        /// The correct label, e.g. `C`.
        label: String,
        /// All labels offered, e.g. `A`–`D`.
        labels: Vec<String>,
        /// The options' texts, in label order.
        options: Vec<String>,
    },
    /// Code checked by running tests (HumanEval).
    Code {
        /// The function signature and docstring given to the model.
        prompt: String,
        /// The published test code (defines `check`).
        test: String,
        /// Name of the function under test.
        entry_point: String,
    },
    /// Judged by a model (MT-Bench); reference answers per turn for math, reasoning and coding.
    Judged {
        /// Reference answers per turn, when the suite has them.
        reference_turns: Option<Vec<String>>,
    },
}

/// The outcome of scoring one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Right or wrong, for suites scored that way; `None` for judged suites.
    pub correct: Option<bool>,
    /// The item's score: 1.0 / 0.0 for right / wrong, the mean judge rating (1–10) otherwise.
    pub value: f64,
    /// What was extracted from the answer (number, label, code), for inspection.
    pub extracted: Option<String>,
    /// Anything else the scorer observed (test output, judge ratings and texts).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl Score {
    /// A right/wrong score.
    pub fn binary(correct: bool, extracted: Option<String>) -> Self {
        Self {
            correct: Some(correct),
            value: if correct { 1.0 } else { 0.0 },
            extracted,
            detail: serde_json::Value::Null,
        }
    }
}

/// The suites colm knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuiteKind {
    /// GSM8K grade-school maths.
    Gsm8k,
    /// ARC-Challenge science questions (multiple choice).
    Arc,
    /// MMLU, 43 subjects (multiple choice), 0-shot or 5-shot.
    Mmlu,
    /// HumanEval code generation, pass@1.
    Humaneval,
    /// MT-Bench two-turn chat, judged 1–10.
    MtBench,
}

impl SuiteKind {
    /// The suite's name on the command line and in records.
    pub fn name(self) -> &'static str {
        match self {
            SuiteKind::Gsm8k => "gsm8k",
            SuiteKind::Arc => "arc",
            SuiteKind::Mmlu => "mmlu",
            SuiteKind::Humaneval => "humaneval",
            SuiteKind::MtBench => "mt-bench",
        }
    }

    /// The default data path relative to the project root.
    pub fn default_data(self) -> &'static str {
        match self {
            SuiteKind::Gsm8k => "../shared/data/gsm8k/dev.jsonl",
            SuiteKind::Arc => "../shared/data/arc/arc-challenge-dev.jsonl",
            SuiteKind::Mmlu => "../shared/data/mmlu",
            SuiteKind::Humaneval => "../shared/data/humaneval/HumanEval.jsonl.gz",
            SuiteKind::MtBench => "../shared/data/mt_bench",
        }
    }

    /// Whether scoring needs a judge model.
    pub fn needs_judge(self) -> bool {
        self == SuiteKind::MtBench
    }
}

/// Loader options that only some suites use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SuiteOptions {
    /// MMLU: prepend the subject's 5 dev examples (5-shot) instead of 0-shot.
    pub five_shot: bool,
    /// MMLU: only these subjects (file stems without `_test`); all when empty.
    pub subjects: Vec<String>,
}

/// Errors loading a suite.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A line or row is not in the published format.
    #[error("{path}, {at}: {message}")]
    Format {
        /// The path.
        path: String,
        /// Line or row.
        at: String,
        /// What is wrong.
        message: String,
    },
}

impl LoadError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        LoadError::Io {
            path: path.display().to_string(),
            source,
        }
    }
    pub(crate) fn format(path: &Path, at: impl Into<String>, message: impl Into<String>) -> Self {
        LoadError::Format {
            path: path.display().to_string(),
            at: at.into(),
            message: message.into(),
        }
    }
}

/// Loads every item of `kind` from `path` (a file, or a folder for MMLU and MT-Bench).
///
/// # Errors
/// [`LoadError`] when the data cannot be read or is not in the published format.
pub fn load(kind: SuiteKind, path: &Path, opts: &SuiteOptions) -> Result<Vec<Item>, LoadError> {
    match kind {
        SuiteKind::Gsm8k => gsm8k::load(path),
        SuiteKind::Arc => choice::load_arc(path),
        SuiteKind::Mmlu => mmlu::load(path, opts),
        SuiteKind::Humaneval => humaneval::load(path),
        SuiteKind::MtBench => mt_bench::load(path),
    }
}

/// Scores the answers to an item's turns (one answer per turn).
///
/// `judge` is the judge for judged suites (MT-Bench); it is not used otherwise.
///
/// # Errors
/// A message when scoring itself could not run (no judge given for a judged item, `python3`
/// missing, the judge model failing); a wrong answer is a score, not an error.
pub async fn score(
    item: &Item,
    answers: &[String],
    judge: Option<mt_bench::Judge<'_>>,
) -> Result<Score, String> {
    let last = answers.last().map(String::as_str).unwrap_or("");
    if let Some(s) = score_extracted(item, last) {
        return Ok(s);
    }
    match &item.reference {
        Reference::Number { .. } | Reference::Choice { .. } => {
            Err("unreachable: extracted references are scored above".into())
        }
        Reference::Code {
            prompt,
            test,
            entry_point,
        } => humaneval::score(prompt, last, test, entry_point).await,
        Reference::Judged { reference_turns } => {
            let judge = judge.ok_or("MT-Bench items need a judge model (--judge)")?;
            mt_bench::judge(judge, item, answers, reference_turns.as_deref()).await
        }
    }
}

/// Scores `text` against an item whose answer is extracted from text (a number or a choice);
/// `None` for items scored otherwise (code is run, chats are judged).
pub fn score_extracted(item: &Item, text: &str) -> Option<Score> {
    match &item.reference {
        Reference::Number { value } => Some(gsm8k::score(text, value)),
        Reference::Choice {
            label,
            labels,
            options,
        } => {
            let got = choice::extract_choice_with_options(text, labels, options);
            let correct = got.as_deref() == Some(label.as_str());
            Some(Score::binary(correct, got))
        }
        Reference::Code { .. } | Reference::Judged { .. } => None,
    }
}

pub(crate) fn read_text(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))
}

/// Parses JSON lines, naming the 1-based line of any malformed one.
pub(crate) fn json_lines<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<Vec<T>, LoadError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| LoadError::format(path, format!("line {}", i + 1), e.to_string()))
        })
        .collect()
}

/// A file of the shared benchmark data in tests: `$COLM_DATA/<rel>`, by default
/// `../shared/data/<rel>` from the project root.
#[cfg(test)]
pub(crate) fn test_data(rel: &str) -> std::path::PathBuf {
    let root = std::env::var("COLM_DATA")
        .unwrap_or_else(|_| format!("{}/../../../shared/data", env!("CARGO_MANIFEST_DIR")));
    Path::new(&root).join(rel)
}

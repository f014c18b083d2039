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

    /// Where the suite's data lies in a data directory (a copy of `../shared/data`, laid out as
    /// its README says): a file or a folder.
    pub fn data_path(self) -> &'static str {
        match self {
            SuiteKind::Gsm8k => "gsm8k/dev.jsonl",
            SuiteKind::Arc => "arc/arc-challenge-dev.jsonl",
            SuiteKind::Mmlu => "mmlu",
            SuiteKind::Humaneval => "humaneval/HumanEval.jsonl.gz",
            SuiteKind::MtBench => "mt_bench",
        }
    }

    /// The public release the data comes from (`../shared/data/README.md`), for the error of
    /// data that cannot be found.
    pub fn source(self) -> &'static str {
        match self {
            SuiteKind::Gsm8k => {
                "openai/grade-school-math on GitHub, grade_school_math/data/test.jsonl (its first \
                 1000 lines)"
            }
            SuiteKind::Arc => {
                "AI2's ARC-Challenge test split (allenai/ai2_arc on Hugging Face), as JSON lines, \
                 first 800"
            }
            SuiteKind::Mmlu => {
                "Hendrycks et al.'s MMLU release (hendrycks/test on GitHub), dev/ and test/ CSVs \
                 with a header question,choice0,choice1,choice2,choice3,answer"
            }
            SuiteKind::Humaneval => "openai/human-eval on GitHub, data/HumanEval.jsonl.gz",
            SuiteKind::MtBench => {
                "lm-sys/FastChat on GitHub, fastchat/llm_judge/data/mt_bench (question.jsonl, \
                 reference_answer/gpt-4.jsonl as reference_answer_gpt-4.jsonl) and \
                 llm_judge/data/judge_prompts.jsonl"
            }
        }
    }

    /// The suite's data: `explicit` when given (it must exist), else the first of `dirs` (data
    /// directories, in the order they are tried) that holds [`SuiteKind::data_path`].
    ///
    /// # Errors
    /// [`LoadError::NotFound`] naming every place looked and the data's public source.
    pub fn find_data(
        self,
        explicit: Option<&Path>,
        dirs: &[(String, std::path::PathBuf)],
    ) -> Result<std::path::PathBuf, LoadError> {
        let mut looked = Vec::new();
        if let Some(p) = explicit {
            if p.exists() {
                return Ok(p.to_path_buf());
            }
            looked.push(format!("{} (--data)", p.display()));
        } else {
            for (what, dir) in dirs {
                let p = dir.join(self.data_path());
                if p.exists() {
                    return Ok(p);
                }
                looked.push(format!("{} ({what})", p.display()));
            }
        }
        Err(LoadError::NotFound {
            suite: self.name(),
            looked,
            origin: self.source(),
        })
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
    /// No data where it was looked for.
    #[error(
        "no {suite} data; looked in:{}\nGive the file with --data, or a copy of the data \
         directory with --data-dir (or COLM_DATA, or data_dir under [eval] in a --config file). \
         The {suite} data comes from {origin}.",
        looked_list(.looked)
    )]
    NotFound {
        /// The suite.
        suite: &'static str,
        /// Each place looked, and why it was looked at.
        looked: Vec<String>,
        /// The public release of the data.
        origin: &'static str,
    },
}

fn looked_list(looked: &[String]) -> String {
    looked.iter().map(|l| format!("\n  - {l}")).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_found_in_the_first_directory_that_holds_it() {
        let shared = test_data("");
        let empty = tempfile::tempdir().unwrap();
        let dirs = [
            ("an empty one".to_owned(), empty.path().to_path_buf()),
            ("the shared one".to_owned(), shared.clone()),
        ];
        for kind in [
            SuiteKind::Gsm8k,
            SuiteKind::Arc,
            SuiteKind::Mmlu,
            SuiteKind::Humaneval,
            SuiteKind::MtBench,
        ] {
            assert_eq!(
                kind.find_data(None, &dirs).unwrap(),
                shared.join(kind.data_path())
            );
        }
        // Nowhere: every place looked is named, with why, and the public source.
        let err = SuiteKind::Gsm8k
            .find_data(None, &dirs[..1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no gsm8k data"), "{err}");
        assert!(
            err.contains(&format!(
                "{} (an empty one)",
                empty.path().join("gsm8k/dev.jsonl").display()
            )),
            "{err}"
        );
        assert!(err.contains("openai/grade-school-math"), "{err}");
        assert!(
            err.contains("--data-dir") && err.contains("COLM_DATA"),
            "{err}"
        );
        // An explicit file that is not there is not looked for elsewhere.
        let err = SuiteKind::Arc
            .find_data(Some(Path::new("/nonexistent/arc.jsonl")), &dirs)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/arc.jsonl (--data)"), "{err}");
        assert!(!err.contains("the shared one"), "{err}");
    }
}

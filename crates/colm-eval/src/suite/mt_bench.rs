//! MT-Bench (Zheng et al. 2023, FastChat `llm_judge`): 80 two-turn questions in 8 categories,
//! each turn rated 1–10 by a judge model with the published single-answer judge prompts.
//!
//! Judging follows FastChat: turn 1 with `single-v1` (`single-math-v1` with the reference
//! answer for the math, reasoning and coding categories), turn 2 with `single-v1-multi-turn`
//! (`single-math-v1-multi-turn`), greedy, up to [`JUDGE_MAX_TOKENS`] tokens; the rating is the
//! number in the last `[[N]]` (else `[N]`) of the judgment. The item's score is the mean of the
//! turns' ratings; a judgment without a rating fails the item's scoring (recorded, not 0).

use std::collections::BTreeMap;
use std::path::Path;

use colm_core::{ChatMessage, ChatModel, SamplingParams};
use serde::Deserialize;

use super::{json_lines, read_text, Item, LoadError, Reference, Score};

/// Tokens the judge may write per judgment (FastChat uses 2048).
pub const JUDGE_MAX_TOKENS: u32 = 2048;

/// Categories judged against a reference answer (FastChat's `NEED_REF_CATS`).
pub const NEED_REF: [&str; 3] = ["math", "reasoning", "coding"];

#[derive(Deserialize)]
struct Question {
    question_id: u64,
    category: String,
    turns: Vec<String>,
}

#[derive(Deserialize)]
struct RefAnswer {
    question_id: u64,
    choices: Vec<RefChoice>,
}

#[derive(Deserialize)]
struct RefChoice {
    turns: Vec<String>,
}

/// A published judge prompt.
#[derive(Debug, Clone, Deserialize)]
pub struct JudgePrompt {
    /// `single-v1`, `single-math-v1`, `single-v1-multi-turn`, …
    pub name: String,
    /// The judge's system prompt.
    pub system_prompt: String,
    /// The user message with `{question}`, `{answer}`, `{ref_answer_1}`, … placeholders.
    pub prompt_template: String,
}

/// Loads `question.jsonl` and `reference_answer_gpt-4.jsonl` from the MT-Bench folder. Ids are
/// `mt-bench:<question_id>`.
///
/// # Errors
/// [`LoadError`] for unreadable or malformed files.
pub fn load(dir: &Path) -> Result<Vec<Item>, LoadError> {
    let qpath = dir.join("question.jsonl");
    let questions: Vec<Question> = json_lines(&qpath, &read_text(&qpath)?)?;
    let rpath = dir.join("reference_answer_gpt-4.jsonl");
    let refs: Vec<RefAnswer> = json_lines(&rpath, &read_text(&rpath)?)?;
    let refs: BTreeMap<u64, Vec<String>> = refs
        .into_iter()
        .filter_map(|r| {
            r.choices
                .into_iter()
                .next()
                .map(|c| (r.question_id, c.turns))
        })
        .collect();
    Ok(questions
        .into_iter()
        .map(|q| Item {
            id: format!("mt-bench:{}", q.question_id),
            reference: Reference::Judged {
                reference_turns: if NEED_REF.contains(&q.category.as_str()) {
                    refs.get(&q.question_id).cloned()
                } else {
                    None
                },
            },
            turns: q.turns,
            category: Some(q.category),
        })
        .collect())
}

/// Loads `judge_prompts.jsonl` by name.
///
/// # Errors
/// [`LoadError`] for an unreadable or malformed file.
pub fn judge_prompts(dir: &Path) -> Result<BTreeMap<String, JudgePrompt>, LoadError> {
    let path = dir.join("judge_prompts.jsonl");
    let prompts: Vec<JudgePrompt> = json_lines(&path, &read_text(&path)?)?;
    Ok(prompts.into_iter().map(|p| (p.name.clone(), p)).collect())
}

/// A judge: a model and the published judge prompts.
#[derive(Clone, Copy)]
pub struct Judge<'a> {
    /// The judge model.
    pub model: &'a dyn ChatModel,
    /// The prompts from [`judge_prompts`].
    pub prompts: &'a BTreeMap<String, JudgePrompt>,
}

/// The rating in a judgment: the number in the last `[[N]]`, else in the last `[N]`.
pub fn parse_rating(judgment: &str) -> Option<f64> {
    for (open, close) in [("[[", "]]"), ("[", "]")] {
        let mut found = None;
        let mut rest = judgment;
        while let Some(i) = rest.find(open) {
            let after = &rest[i + open.len()..];
            if let Some(j) = after.find(close) {
                if let Ok(v) = after[..j].trim().parse::<f64>() {
                    found = Some(v);
                }
            }
            rest = after;
        }
        if found.is_some() {
            return found;
        }
    }
    None
}

fn fill(template: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in pairs {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// Judges both turns of `answers` with `judge` (see the module docs).
///
/// # Errors
/// A message when a judge prompt is missing, the judge fails, or a judgment has no
/// rating.
pub async fn judge(
    judge: Judge<'_>,
    item: &Item,
    answers: &[String],
    reference: Option<&[String]>,
) -> Result<Score, String> {
    let prompts = judge.prompts;
    let judge = judge.model;
    let with_ref = reference.is_some();
    let r = |i: usize| reference.and_then(|r| r.get(i)).map_or("", String::as_str);
    let q = |i: usize| item.turns.get(i).map_or("", String::as_str);
    let a = |i: usize| answers.get(i).map_or("", String::as_str);
    let mut ratings = Vec::new();
    let mut judgments = Vec::new();
    for turn in 0..item.turns.len().min(2) {
        let name = match (turn, with_ref) {
            (0, false) => "single-v1",
            (0, true) => "single-math-v1",
            (_, false) => "single-v1-multi-turn",
            (_, true) => "single-math-v1-multi-turn",
        };
        let p = prompts
            .get(name)
            .ok_or_else(|| format!("judge prompt {name} missing"))?;
        let user = fill(
            &p.prompt_template,
            &[
                ("question", q(0)),
                ("answer", a(0)),
                ("ref_answer_1", r(0)),
                ("question_1", q(0)),
                ("answer_1", a(0)),
                ("question_2", q(1)),
                ("answer_2", a(1)),
                ("ref_answer_2", r(1)),
            ],
        );
        let params = SamplingParams {
            max_tokens: JUDGE_MAX_TOKENS,
            ..SamplingParams::default()
        };
        let messages = [
            ChatMessage::system(p.system_prompt.clone()),
            ChatMessage::user(user),
        ];
        let c = judge
            .chat(&messages, &params)
            .await
            .map_err(|e| format!("judge {}: {e}", judge.name()))?;
        let rating = parse_rating(&c.text)
            .filter(|v| (1.0..=10.0).contains(v))
            .ok_or_else(|| {
                format!(
                    "no [[rating]] in the judgment of turn {}: {:?}",
                    turn + 1,
                    c.text
                )
            })?;
        ratings.push(rating);
        judgments.push(serde_json::json!({"prompt": name, "rating": rating, "judgment": c.text}));
    }
    let mean = ratings.iter().sum::<f64>() / ratings.len().max(1) as f64;
    Ok(Score {
        correct: None,
        value: mean,
        extracted: None,
        detail: serde_json::json!({ "judge": judge.name(), "turns": judgments }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_questions_and_references() {
        let dir = crate::suite::test_data("mt_bench");
        let items = load(&dir).unwrap();
        assert_eq!(items.len(), 80);
        assert!(items.iter().all(|i| i.turns.len() == 2));
        let math = items
            .iter()
            .find(|i| i.category.as_deref() == Some("math"))
            .unwrap();
        assert!(
            matches!(&math.reference, Reference::Judged { reference_turns: Some(r) } if r.len() == 2)
        );
        let prompts = judge_prompts(&dir).unwrap();
        for name in [
            "single-v1",
            "single-math-v1",
            "single-v1-multi-turn",
            "single-math-v1-multi-turn",
        ] {
            assert!(prompts.contains_key(name), "{name}");
        }
    }

    /// A judge that rates 4 when it sees a reference answer and 8 otherwise, and records the
    /// prompts it got.
    struct RefJudge(std::sync::Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl ChatModel for RefJudge {
        fn name(&self) -> &str {
            "ref-judge"
        }
        async fn chat(
            &self,
            messages: &[ChatMessage],
            _params: &SamplingParams,
        ) -> Result<colm_core::Completion, colm_core::ModelError> {
            let user = messages[1].content.clone();
            let rating = if user.contains("Reference") { 4 } else { 8 };
            self.0.lock().unwrap().push(user);
            Ok(colm_core::Completion::text_only(format!(
                "Fine. Rating: [[{rating}]]"
            )))
        }
    }

    #[tokio::test]
    async fn judging_fills_the_published_templates() {
        let dir = crate::suite::test_data("mt_bench");
        let items = load(&dir).unwrap();
        let prompts = judge_prompts(&dir).unwrap();
        let model = RefJudge(std::sync::Mutex::new(Vec::new()));
        let judge_ = Judge {
            model: &model,
            prompts: &prompts,
        };
        let answers = vec!["FIRST-ANSWER".to_owned(), "SECOND-ANSWER".to_owned()];
        for (category, want) in [("writing", 8.0), ("math", 4.0)] {
            let item = items
                .iter()
                .find(|i| i.category.as_deref() == Some(category))
                .unwrap();
            let Reference::Judged { reference_turns } = &item.reference else {
                panic!()
            };
            let s = judge(judge_, item, &answers, reference_turns.as_deref())
                .await
                .unwrap();
            assert_eq!(s.value, want, "{category}");
            assert_eq!(s.detail["turns"].as_array().unwrap().len(), 2);
        }
        let seen = model.0.lock().unwrap();
        assert_eq!(seen.len(), 4);
        for p in seen.iter() {
            assert!(
                !p.contains("{question") && !p.contains("{answer") && !p.contains("{ref_answer"),
                "{p}"
            );
            assert!(p.contains("FIRST-ANSWER"));
        }
        // Turn 2 shows the whole conversation.
        assert!(seen[1].contains("SECOND-ANSWER") && seen[1].contains("### User:"));
    }

    #[test]
    fn reads_ratings() {
        assert_eq!(parse_rating("Good answer. Rating: [[7]]"), Some(7.0));
        assert_eq!(
            parse_rating("Rating: [[5]] ... revised: [[8.5]]"),
            Some(8.5)
        );
        assert_eq!(parse_rating("I give it [6]."), Some(6.0));
        assert_eq!(parse_rating("Rating: seven"), None);
    }
}

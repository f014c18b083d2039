//! GSM8K (Cobbe et al. 2021): grade-school maths word problems with a numeric answer.
//!
//! Prompt: the question as is, zero-shot (what `colm ask` sends). Scoring: the model's final
//! answer is [`colm_core::answer::extract_answer`] (the last `\boxed{…}`, else what follows the
//! last "answer is" / "Answer:", else the last number; thousands separators, `$`, `%` and a
//! trailing `.0` removed); when that is not a number, the last number of the text. Right when
//! it equals the reference after `####` numerically (|a − b| < 1e-6).

use std::path::Path;

use colm_core::answer::{extract_answer, last_number};
use serde::Deserialize;

use super::{json_lines, read_text, Item, LoadError, Reference, Score};

#[derive(Deserialize)]
struct Line {
    question: String,
    answer: String,
}

/// Loads `dev.jsonl` (`{question, answer}` per line, `answer` ending in `#### N`). Ids are
/// `gsm8k:<line>` from 1.
///
/// # Errors
/// [`LoadError`] for an unreadable file, a malformed line or an answer without `####`.
pub fn load(path: &Path) -> Result<Vec<Item>, LoadError> {
    let lines: Vec<Line> = json_lines(path, &read_text(path)?)?;
    lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let value = l
                .answer
                .rsplit_once("####")
                .map(|(_, n)| n.trim().replace(',', ""))
                .ok_or_else(|| LoadError::format(path, format!("line {}", i + 1), "no `#### N`"))?;
            Ok(Item {
                id: format!("gsm8k:{}", i + 1),
                turns: vec![l.question],
                category: None,
                reference: Reference::Number { value },
            })
        })
        .collect()
}

/// The numeric final answer of `text` (see the module docs), normalised.
pub fn extract_number(text: &str) -> Option<String> {
    match extract_answer(text) {
        Some(a) if a.parse::<f64>().is_ok() => Some(a),
        _ => last_number(text),
    }
}

/// Scores `answer` against the reference number `value`.
pub fn score(answer: &str, value: &str) -> Score {
    let got = extract_number(answer);
    let correct = match (got.as_deref().map(str::parse::<f64>), value.parse::<f64>()) {
        (Some(Ok(a)), Ok(b)) => (a - b).abs() < 1e-6,
        _ => false,
    };
    Score::binary(correct, got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_the_published_file() {
        let items = load(&crate::suite::test_data("gsm8k/dev.jsonl")).unwrap();
        assert_eq!(items.len(), 1000);
        assert_eq!(items[0].id, "gsm8k:1");
        assert_eq!(items[0].reference, Reference::Number { value: "18".into() });
    }

    #[test]
    fn extracts_from_real_model_outputs() {
        // Endings of qwen2.5-coder-0.5b-instruct answers to GSM8K dev items 3, 11 and 12 and
        // of a runaway answer to item 53 (`colm eval gsm8k`, greedy, 2026-11-22).
        let item3 = "\\[ 130,000 - 80,000 = 50,000 \\]\n\nThus, the profit Josh made is \\(\\boxed{50000}\\).";
        assert_eq!(score(item3, "70000").extracted.as_deref(), Some("50000"));
        let item11 = "\\text{Total downloads} = 60 + 152 + 106.4 = 318.4\n\\]\n\nTherefore, the total number of downloads the program had over the three months is \\(\\boxed{318.4}\\).";
        assert_eq!(score(item11, "366").extracted.as_deref(), Some("318.4"));
        let item12 = "   - Total cost = $204 + $160 + $330 = $794.\n\nTherefore, the total cost of the pastries is \\(\\boxed{794}\\).";
        assert_eq!(score(item12, "694").extracted.as_deref(), Some("794"));
        let runaway = "19. Subtract the weight of the comic books from the total weight to find out how much weight is left.\n20. Subtract the weight";
        assert_eq!(
            score(runaway, "20").correct,
            Some(true),
            "the last number decides, as published"
        );
    }

    #[test]
    fn scores_numbers() {
        assert!(score("So she makes $18.00 a day.", "18").correct == Some(true));
        assert!(score("The answer is 1,250.", "1250").correct == Some(true));
        assert!(score("\\boxed{17}", "18").correct == Some(false));
        assert!(score("I cannot tell.", "18").correct == Some(false));
        // "answer is" followed by words: the last number decides.
        assert_eq!(
            extract_number("16 - 3 - 4 = 9 eggs, 9 * 2 = 18. The answer is eighteen dollars")
                .as_deref(),
            Some("18")
        );
    }
}

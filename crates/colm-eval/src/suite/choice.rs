//! Multiple-choice suites (ARC-Challenge, MMLU): the prompt with lettered options; the chosen
//! letter is read from an answer by core's [`extract_choice`] (rules in
//! [`colm_core::answer::choice`]), which a server's vote of references uses too.
//!
//! Prompt ([`prompt`]): the question, one `X. option` line per option, then "Explain your
//! reasoning briefly, then give the final answer as `Answer: X`".

use std::path::Path;

use serde::Deserialize;

use super::{json_lines, read_text, Item, LoadError, Reference};
pub use colm_core::answer::choice::{extract_choice, extract_choice_with_options};

/// The instruction that closes every multiple-choice prompt.
pub const INSTRUCTION: &str =
    "Explain your reasoning briefly, then give the final answer as \"Answer: X\", where X is \
     the letter of the correct option.";

/// The prompt of a multiple-choice question: question, `X. option` lines, [`INSTRUCTION`].
pub fn prompt(question: &str, labels: &[String], options: &[String]) -> String {
    let mut p = format!("{}\n\n", question.trim());
    for (l, o) in labels.iter().zip(options) {
        p.push_str(&format!("{l}. {}\n", o.trim()));
    }
    p.push('\n');
    p.push_str(INSTRUCTION);
    p
}

#[derive(Deserialize)]
struct ArcLine {
    id: String,
    question: String,
    choices: ArcChoices,
    #[serde(rename = "answerKey")]
    answer_key: String,
}

#[derive(Deserialize)]
struct ArcChoices {
    text: Vec<String>,
    label: Vec<String>,
}

/// Loads ARC-Challenge JSON lines (`{id, question, choices{text[], label[]}, answerKey}`).
/// Ids are `arc:<published id>`.
///
/// # Errors
/// [`LoadError`] for an unreadable file, a malformed line, or an answer key not among the
/// labels.
pub fn load_arc(path: &Path) -> Result<Vec<Item>, LoadError> {
    let lines: Vec<ArcLine> = json_lines(path, &read_text(path)?)?;
    lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            if !l.choices.label.contains(&l.answer_key)
                || l.choices.label.len() != l.choices.text.len()
            {
                return Err(LoadError::format(
                    path,
                    format!("line {}", i + 1),
                    format!(
                        "answer key {} not among labels {:?}",
                        l.answer_key, l.choices.label
                    ),
                ));
            }
            Ok(Item {
                id: format!("arc:{}", l.id),
                turns: vec![prompt(&l.question, &l.choices.label, &l.choices.text)],
                category: None,
                reference: Reference::Choice {
                    label: l.answer_key,
                    labels: l.choices.label,
                    options: l.choices.text,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_arc_as_published() {
        let items = load_arc(&crate::suite::test_data("arc/arc-challenge-dev.jsonl")).unwrap();
        assert_eq!(items.len(), 800);
        assert_eq!(items[0].id, "arc:Mercury_7175875");
        assert!(items[0].turns[0].contains("C. Planetary days will become shorter."));
        assert!(items[0].turns[0].ends_with(INSTRUCTION));
        assert!(matches!(&items[0].reference, Reference::Choice { label, .. } if label == "C"));
    }
}

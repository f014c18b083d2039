//! The final answer of a model's text, independent of any benchmark ([`extract_answer`]:
//! `\boxed{…}`, "the answer is …", the last number), and the majority among several texts
//! ([`tally`]) — what the vote guidance mode, self-consistency and the router's agreement
//! check count.

pub mod choice;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The majority answer among answers (the clients' drafts, or the server's references).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoteTally {
    /// The most frequent extracted answer (first seen wins ties).
    pub answer: String,
    /// Answers that gave it.
    pub votes: usize,
    /// Answers with an extractable final answer (`drafts - answered` failed extraction).
    pub answered: usize,
    /// All answers counted.
    pub drafts: usize,
    /// Another final answer had as many votes; `answer` is then the first seen of them.
    #[serde(default)]
    pub tie: bool,
    /// Every extracted final answer and its votes.
    #[serde(default)]
    pub counts: BTreeMap<String, usize>,
}

impl VoteTally {
    /// `votes / drafts`.
    pub fn agreement(&self) -> f64 {
        if self.drafts == 0 {
            0.0
        } else {
            self.votes as f64 / self.drafts as f64
        }
    }
}

/// The final answer of a text: the last `\boxed{…}`, else what follows the last
/// "answer is" / "Answer:", else the last number; numbers lose thousands separators, a
/// trailing `.0`, `$` and `%`. `None` when nothing answer-like is found.
pub fn extract_answer(text: &str) -> Option<String> {
    if let Some(start) = text.rfind("\\boxed{") {
        let rest = &text[start + 7..];
        let mut depth = 1;
        for (i, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(normalise(&rest[..i]));
                    }
                }
                _ => {}
            }
        }
    }
    let lower = text.to_lowercase();
    for marker in ["answer is", "answer:"] {
        if let Some(pos) = lower.rfind(marker) {
            let after = text.get(pos + marker.len()..).unwrap_or("");
            let line = after.lines().next().unwrap_or("").trim();
            if let Some(n) = last_number(line) {
                return Some(n);
            }
            let word = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(|c: char| !c.is_alphanumeric());
            if !word.is_empty() {
                return Some(normalise(word));
            }
        }
    }
    last_number(text)
}

/// The last number of `text` (`1,250` → `1250`, `-5`, `3.0` → `3`), normalised as
/// [`extract_answer`] does; `None` when there is none.
pub fn last_number(text: &str) -> Option<String> {
    let mut last = None;
    let mut current = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let next_is_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if c.is_ascii_digit()
            || ((c == '.' || c == ',') && !current.is_empty() && next_is_digit)
            || (c == '-' && current.is_empty() && next_is_digit)
        {
            current.push(c);
        } else if !current.is_empty() {
            last = Some(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        last = Some(current);
    }
    last.map(|n| normalise(&n))
}

fn normalise(answer: &str) -> String {
    let a = answer
        .trim()
        .trim_start_matches('$')
        .trim_end_matches(['%', '.'])
        .replace(',', "");
    let a = a.strip_suffix(".0").unwrap_or(&a).to_owned();
    a.trim().to_owned()
}

/// The final answer of `text` written in answer to `query`: for a multiple-choice query (its
/// lettered options, [`choice::options_in`]) the option chosen
/// ([`choice::extract_choice_with_options`]), else [`extract_answer`].
pub fn extract_for(query: &str, text: &str) -> Option<String> {
    match choice::options_in(query) {
        Some((labels, options)) => choice::extract_choice_with_options(text, &labels, &options),
        None => extract_answer(text),
    }
}

/// Majority of the answers extracted from `drafts`; `None` when no draft has one.
pub fn tally(drafts: &[&str]) -> Option<VoteTally> {
    tally_by(drafts, extract_answer)
}

/// [`tally`] of answers written to `query`, extracted by [`extract_for`].
pub fn tally_for(query: &str, drafts: &[&str]) -> Option<VoteTally> {
    tally_by(drafts, |d| extract_for(query, d))
}

/// Majority of the answers `extract` finds in `drafts`; `None` when it finds none.
fn tally_by(drafts: &[&str], extract: impl Fn(&str) -> Option<String>) -> Option<VoteTally> {
    let answers: Vec<String> = drafts.iter().filter_map(|d| extract(d)).collect();
    let mut counts = BTreeMap::new();
    for a in &answers {
        *counts.entry(a.clone()).or_insert(0) += 1;
    }
    let mut best: Option<(&str, usize)> = None;
    for a in &answers {
        let n = counts.get(a).copied().unwrap_or_default();
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((a, n));
        }
    }
    best.map(|(answer, votes)| VoteTally {
        answer: answer.to_owned(),
        votes,
        answered: answers.len(),
        drafts: drafts.len(),
        tie: counts.iter().any(|(a, &n)| n == votes && a != answer),
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_extracted_from_real_model_outputs() {
        // The first is the ending of a real qwen2.5-coder-0.5b-instruct draft (`colm ask` on
        // GSM8K item 1); the others are the usual shapes of final answers.
        let boxed =
            "Therefore, Janet makes \\(\\boxed{58}\\) dollars every day at the farmers' market.";
        assert_eq!(extract_answer(boxed).as_deref(), Some("58"));
        let dollars = "So she makes 9 * 2 = $18 every day.\nThe answer is $18.";
        assert_eq!(extract_answer(dollars).as_deref(), Some("18"));
        let commas = "The total cost is 1,250 dollars.";
        assert_eq!(extract_answer(commas).as_deref(), Some("1250"));
        let decimal = "It takes 3.0 bolts in total.";
        assert_eq!(extract_answer(decimal).as_deref(), Some("3"));
        let letter = "Answer: (B) photosynthesis";
        assert_eq!(extract_answer(letter).as_deref(), Some("B"));
        let nested = "\\boxed{\\frac{1}{2}}";
        assert_eq!(extract_answer(nested).as_deref(), Some("\\frac{1}{2}"));
        let negative = "The change in temperature is -5 degrees.";
        assert_eq!(extract_answer(negative).as_deref(), Some("-5"));
        assert_eq!(extract_answer("I do not know."), None);
    }

    #[test]
    fn tally_takes_the_majority() {
        let t = tally(&["so 18", "\\boxed{18}", "it is 20", "no idea"]).unwrap();
        assert_eq!(t.answer, "18");
        assert_eq!((t.votes, t.answered, t.drafts), (2, 3, 4));
        assert!((t.agreement() - 0.5).abs() < 1e-9);
        assert!(!t.tie);
        assert_eq!(t.counts.get("20"), Some(&1));
        assert!(tally(&["none", "nothing"]).is_none());
        let tied = tally(&["it is 20", "so 18"]).unwrap();
        assert_eq!((tied.answer.as_str(), tied.tie), ("20", true));
        // Written to a multiple-choice query, answers count the options they chose, quoted by
        // text or named by letter.
        let q = "Which is a gas?\nA. iron\nB. oxygen\nC. salt\nAnswer with the letter.";
        let t = tally_for(
            q,
            &["It is oxygen, which we breathe.", "Answer: B", "Answer: C"],
        )
        .unwrap();
        assert_eq!((t.answer.as_str(), t.votes, t.answered), ("B", 2, 3));
        assert_eq!(extract_for(q, "The answer is (C)."), Some("C".into()));
        assert_eq!(
            extract_for("How many eggs?", "So 18 eggs."),
            Some("18".into())
        );
    }
}

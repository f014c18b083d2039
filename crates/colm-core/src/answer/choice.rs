//! The option a multiple-choice answer chose, and the options of a multiple-choice query.
//!
//! Extraction ([`extract_choice`]), first rule that finds a label wins:
//! 1. the last `\boxed{…}` holding a label (`\boxed{C}`, `\boxed{\text{C}}`);
//! 2. the last "answer is" / "answer:" / "option is" / "choice is" marker followed by a label
//!    (`Answer: C`, `the correct answer is (C)`, `**Answer:** C.`, `answer is option C`);
//! 3. the last line that is only a label (`C`, `(C)`, `C.`, `**C**`);
//! 4. ([`extract_choice_with_options`]) the option whose full text the answer quotes, when it
//!    quotes exactly one.
//!
//! [`options_in`] reads the lettered options (`A. …` lines) of a query, so that a vote at the
//! server counts the options its references chose ([`super::extract_for`]).

/// The label chosen in `text` among `labels` (see the module docs for the rules), `None`
/// when no rule finds one. The options' texts are read back from the prompt lines the answer
/// may quote, so only labels are needed.
pub fn extract_choice(text: &str, labels: &[String]) -> Option<String> {
    let is_label = |s: &str| labels.iter().find(|l| l.as_str() == s).cloned();
    // 1. \boxed{…}
    if let Some(start) = text.rfind("\\boxed{") {
        let inner: String = text[start + 7..]
            .chars()
            .take_while(|&c| c != '}')
            .collect();
        let inner = inner.trim_start_matches("\\text{").trim();
        if let Some(l) = label_at_start(inner, labels) {
            return Some(l);
        }
    }
    // 2. markers
    let lower = text.to_lowercase();
    let mut best: Option<(usize, String)> = None;
    for marker in ["answer is", "answer:", "answer**", "option is", "choice is"] {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(marker) {
            let at = from + pos;
            let rest = &text[at + marker.len()..];
            let rest = rest.trim_start_matches(|c: char| {
                c.is_whitespace() || matches!(c, '*' | ':' | '(' | '"' | '\'' | '[' | '`')
            });
            let rest = strip_word(strip_word(rest, "option"), "choice");
            if let Some(l) = label_at_start(rest, labels) {
                if best.as_ref().is_none_or(|(b, _)| at >= *b) {
                    best = Some((at, l));
                }
            }
            from = at + marker.len();
        }
    }
    if let Some((_, l)) = best {
        return Some(l);
    }
    // 3. a line that is only a label
    for line in text.lines().rev() {
        let t = line
            .trim()
            .trim_matches(|c: char| matches!(c, '*' | '(' | ')' | '.' | ':' | '`'))
            .trim();
        if let Some(l) = is_label(t) {
            return Some(l);
        }
    }
    None
}

/// Reads a label at the start of `s` when it is not the start of a longer word (`C`, `C.`,
/// `C)`, `C:`), so "Carbon" is not `C`.
fn label_at_start(s: &str, labels: &[String]) -> Option<String> {
    labels
        .iter()
        .find(|l| {
            s.starts_with(l.as_str())
                && !s[l.len()..]
                    .chars()
                    .next()
                    .is_some_and(char::is_alphanumeric)
        })
        .cloned()
}

fn strip_word<'a>(s: &'a str, word: &str) -> &'a str {
    match s.get(..word.len()) {
        Some(head) if head.eq_ignore_ascii_case(word) => s[word.len()..].trim_start(),
        _ => s,
    }
}

/// [`extract_choice`], then rule 4: the option whose text the answer quotes, if exactly one.
pub fn extract_choice_with_options(
    text: &str,
    labels: &[String],
    options: &[String],
) -> Option<String> {
    extract_choice(text, labels).or_else(|| {
        let quoted: Vec<&String> = labels
            .iter()
            .zip(options)
            .filter(|(_, o)| o.trim().len() > 3 && text.contains(o.trim()))
            .map(|(l, _)| l)
            .collect();
        match quoted.as_slice() {
            [one] => Some((*one).clone()),
            _ => None,
        }
    })
}

/// The lettered options of a multiple-choice `query`: its lines `X. text` (or `X) text`) with
/// X running A, B, C, … from A, at least two of them; `(labels, options)`, `None` for a query
/// without such lines (a numbered list is not read as options).
pub fn options_in(query: &str) -> Option<(Vec<String>, Vec<String>)> {
    let (mut labels, mut options) = (Vec::new(), Vec::new());
    for line in query.lines() {
        let line = line.trim();
        let mut chars = line.chars();
        let (Some(label), Some(sep), Some(' ')) = (chars.next(), chars.next(), chars.next()) else {
            continue;
        };
        let next = char::from(b'A' + u8::try_from(labels.len()).unwrap_or(u8::MAX - b'A'));
        if label == next && matches!(sep, '.' | ')') && labels.len() < 26 {
            labels.push(label.to_string());
            options.push(line[3..].trim().to_owned());
        }
    }
    (labels.len() >= 2).then_some((labels, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abcd() -> Vec<String> {
        ["A", "B", "C", "D"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_options_of_a_query_are_its_lettered_lines() {
        let q = "Which is a gas?\n\nA. iron\nB. oxygen\nC. salt\n\nExplain, then answer.";
        let (labels, options) = options_in(q).unwrap();
        assert_eq!(labels, ["A", "B", "C"]);
        assert_eq!(options, ["iron", "oxygen", "salt"]);
        assert!(options_in("Janet has 3 ducks.\n1. She sells eggs.\n2. She bakes.").is_none());
        assert!(options_in("A. only one option").is_none());
        assert!(options_in("B. starts late\nC. and goes on").is_none());
    }

    #[test]
    fn reads_the_chosen_letter() {
        let l = abcd();
        for (text, want) in [
            (
                "Rotation faster means shorter days.\n\nAnswer: C",
                Some("C"),
            ),
            ("The correct answer is (B) because ...", Some("B")),
            ("**Answer:** D. Planetary gravity", Some("D")),
            ("So the answer is option A.", Some("A")),
            ("\\boxed{\\text{C}}", Some("C")),
            ("Let me think.\n\n**B**", Some("B")),
            ("Carbon dioxide is released.", None),
            ("Answer: Carbon", None),
            // The last marker wins: a first guess revised later.
            (
                "At first the answer is A. On reflection, the answer is D.",
                Some("D"),
            ),
        ] {
            assert_eq!(extract_choice(text, &l).as_deref(), want, "{text:?}");
        }
        let opts: Vec<String> = ["red", "green", "blue sky", "yellow"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            extract_choice_with_options("It must be the blue sky.", &l, &opts).as_deref(),
            Some("C")
        );
    }

    /// Endings of real qwen2.5-coder-0.5b-instruct answers to ARC-Challenge dev items (greedy,
    /// `colm eval arc` with the default prompt), with the letter the model chose.
    #[test]
    fn reads_real_arc_answers() {
        let l = abcd();
        for (text, want) in [
            (
                "Therefore, the correct flow of thermal energy is from the ice to the tea.\n\n\
                 The final answer is \\boxed{A}.",
                Some("A"),
            ),
            (
                "   - **D. Become deeper and wider:** This is the correct answer because the \
                 erosion process causes the river to become deeper and wider.\n\n3. **Final \
                 answer:**\n   The correct answer is \\boxed{D}.",
                Some("D"),
            ),
            (
                "D. Solar eclipse: This event occurs every year, regardless of the time of day.\n\n\
                 From the analysis, we can see that the most frequent natural event is sunrise.\n\n\
                 Answer: A",
                Some("A"),
            ),
            (
                "Given this analysis, the organ in fish that has the same function as the human \
                 lung is the heart.\n\nAnswer: B",
                Some("B"),
            ),
            // Cut at 512 tokens before any answer: nothing to read.
            (
                "- Potential energy is the energy that is converted into mechanical energy when \
                 an object is in motion. It is the energy that is stored in the object",
                None,
            ),
        ] {
            assert_eq!(extract_choice(text, &l).as_deref(), want, "{text:?}");
        }
    }
}

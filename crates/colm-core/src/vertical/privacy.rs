//! Data residency on the device: find sensitive spans in a query and replace them with typed
//! placeholders (`<EMAIL_1>`) before anything leaves the device, then put the values back
//! into the answer that comes back (Yuan et al., "LLMs over networks", arXiv 2605.08626: data
//! residency as a limit of device–cloud collaboration).
//!
//! Detected kinds ([`PiiKind`]): e-mail addresses; payment card numbers (13–19 digits, spaces
//! or dashes allowed, valid Luhn checksum); account numbers (IBAN shape: country, check digits,
//! 11–30 letters or digits, optionally grouped by 4); phone numbers (8–15 digits, optional
//! `+`, spaces, dots, dashes, parentheses); and names given in configuration (whole words,
//! case-insensitive).
//!
//! Rules that make the mapping reversible:
//! - overlapping detections keep the leftmost, then the longest, then the more specific kind
//!   (e-mail > card > account > phone > name);
//! - one value gets one placeholder everywhere it occurs (`<EMAIL_1>` twice for one address);
//! - a placeholder never collides with text already in the query: numbering skips any
//!   `<KIND_n>` the query itself contains;
//! - restoring replaces only the placeholders this redaction issued, in one pass (a restored
//!   value is never scanned again), and leaves anything else — including placeholders the
//!   model invented — as it is.

use std::sync::OnceLock;

use regex::Regex;

/// A kind of sensitive value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PiiKind {
    /// An e-mail address.
    Email,
    /// A payment card number (Luhn-valid).
    Card,
    /// A bank account number (IBAN shape).
    Account,
    /// A phone number.
    Phone,
    /// A name from the configuration.
    Name,
}

impl PiiKind {
    /// The placeholder tag: `EMAIL`, `CARD`, `ACCOUNT`, `PHONE`, `NAME`.
    pub fn tag(self) -> &'static str {
        match self {
            PiiKind::Email => "EMAIL",
            PiiKind::Card => "CARD",
            PiiKind::Account => "ACCOUNT",
            PiiKind::Phone => "PHONE",
            PiiKind::Name => "NAME",
        }
    }
}

/// A detected span: byte offsets `start..end` of the text and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// What it is.
    pub kind: PiiKind,
}

fn patterns() -> &'static [(PiiKind, Regex)] {
    static P: OnceLock<Vec<(PiiKind, Regex)>> = OnceLock::new();
    P.get_or_init(|| {
        let raw = [
            (
                PiiKind::Email,
                r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            ),
            // Whole runs of digits (a sub-run of a longer number is never taken): the digit
            // counts are checked in `plausible`.
            (PiiKind::Card, r"\d(?:[ -]?\d)+"),
            (
                PiiKind::Account,
                r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b",
            ),
            (PiiKind::Phone, r"\+?\d(?:[ .()-]{0,2}\d)+"),
        ];
        raw.into_iter()
            // The patterns are constants checked by the tests; one that failed to compile
            // would only disable its kind.
            .filter_map(|(k, r)| Regex::new(r).ok().map(|re| (k, re)))
            .collect()
    })
}

/// Whether a match of `kind`'s pattern is one: cards have 13–19 digits and a valid Luhn
/// checksum; phones 8–15 digits and are not ISO dates (`2024-01-15`).
fn plausible(kind: PiiKind, m: &str) -> bool {
    let digits = m.chars().filter(char::is_ascii_digit).count();
    match kind {
        PiiKind::Card => (13..=19).contains(&digits) && luhn(m),
        PiiKind::Phone => {
            let iso_date = m.len() == 10
                && m.char_indices().all(|(i, c)| {
                    if i == 4 || i == 7 {
                        c == '-'
                    } else {
                        c.is_ascii_digit()
                    }
                });
            (8..=15).contains(&digits) && !iso_date
        }
        _ => true,
    }
}

/// The Luhn checksum of the digits of `s` is valid.
fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 {
                    d2 - 9
                } else {
                    d2
                }
            } else {
                d
            }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// Finds sensitive spans.
#[derive(Debug, Clone, Default)]
pub struct Detector {
    names: Vec<Regex>,
}

impl Detector {
    /// A detector for the built-in kinds and these `names` (each matched as whole words,
    /// case-insensitive; empty names are ignored).
    pub fn new<S: AsRef<str>>(names: &[S]) -> Self {
        let names = names
            .iter()
            .map(|n| n.as_ref().trim())
            .filter(|n| !n.is_empty())
            .filter_map(|n| Regex::new(&format!(r"(?i)\b{}\b", regex::escape(n))).ok())
            .collect();
        Self { names }
    }

    /// The sensitive spans of `text`, ascending and non-overlapping (module rules).
    pub fn find(&self, text: &str) -> Vec<Span> {
        let mut all: Vec<Span> = Vec::new();
        for (kind, re) in patterns() {
            for m in re.find_iter(text) {
                if !plausible(*kind, m.as_str()) {
                    continue;
                }
                all.push(Span {
                    start: m.start(),
                    end: m.end(),
                    kind: *kind,
                });
            }
        }
        for re in &self.names {
            all.extend(re.find_iter(text).map(|m| Span {
                start: m.start(),
                end: m.end(),
                kind: PiiKind::Name,
            }));
        }
        all.sort_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then(b.end.cmp(&a.end))
                .then(a.kind.cmp(&b.kind))
        });
        let mut kept: Vec<Span> = Vec::new();
        for s in all {
            if kept.last().is_none_or(|k| s.start >= k.end) {
                kept.push(s);
            }
        }
        kept
    }

    /// Whether `text` holds anything sensitive.
    pub fn is_sensitive(&self, text: &str) -> bool {
        !self.find(text).is_empty()
    }

    /// Replaces every sensitive span of `text` with a placeholder (module rules).
    pub fn redact(&self, text: &str) -> Redaction {
        let mut map = Vec::new();
        let text = self.redact_into(text, &mut map);
        Redaction { text, map }
    }

    /// Redacts one more text that leaves the device beside `redaction`'s (a draft sent with a
    /// redacted query): a value already mapped keeps its placeholder, a new one gets the next
    /// free placeholder of its kind, and `redaction` then restores both. Returns the redacted
    /// text.
    pub fn redact_also(&self, redaction: &mut Redaction, text: &str) -> String {
        self.redact_into(text, &mut redaction.map)
    }

    /// `text` with every sensitive span replaced, issuing placeholders into `map`.
    fn redact_into(&self, text: &str, map: &mut Vec<(String, String)>) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for span in self.find(text) {
            let value = &text[span.start..span.end];
            let placeholder = match map.iter().find(|(_, v)| v == value) {
                Some((p, _)) => p.clone(),
                None => {
                    let tag = span.kind.tag();
                    let used = map
                        .iter()
                        .filter(|(p, _)| p.starts_with(&format!("<{tag}_")))
                        .count();
                    let mut n = used + 1;
                    let taken = |n: usize| {
                        let p = format!("<{tag}_{n}>");
                        text.contains(&p) || map.iter().any(|(q, _)| *q == p)
                    };
                    while taken(n) {
                        n += 1;
                    }
                    let p = format!("<{tag}_{n}>");
                    map.push((p.clone(), value.to_owned()));
                    p
                }
            };
            out.push_str(&text[last..span.start]);
            out.push_str(&placeholder);
            last = span.end;
        }
        out.push_str(&text[last..]);
        out
    }
}

/// A redacted text and the mapping back to the values (kept on the device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    /// The text with placeholders: what may leave the device.
    pub text: String,
    /// (placeholder, original value), in order of first occurrence.
    pub map: Vec<(String, String)>,
}

impl Redaction {
    /// Puts the original values back into `answer`: each placeholder this redaction issued
    /// becomes its value, in one left-to-right pass; anything else stays as it is.
    pub fn restore(&self, answer: &str) -> String {
        let mut out = String::with_capacity(answer.len());
        let mut rest = answer;
        while let Some(i) = rest.find('<') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            match self.map.iter().find(|(p, _)| tail.starts_with(p.as_str())) {
                Some((p, v)) => {
                    out.push_str(v);
                    rest = &tail[p.len()..];
                }
                None => {
                    out.push('<');
                    rest = &tail[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(d: &Detector, text: &str) -> Vec<(PiiKind, String)> {
        d.find(text)
            .into_iter()
            .map(|s| (s.kind, text[s.start..s.end].to_owned()))
            .collect()
    }

    #[test]
    fn a_draft_redacted_beside_its_query_shares_placeholders_and_restores() {
        let d = Detector::new(&["Ana Souza"]);
        let mut r = d.redact("Ana Souza (ana@example.org) asks: how many eggs?");
        let draft = d.redact_also(
            &mut r,
            "Dear Ana Souza, I wrote to ana@example.org and bo@example.net: 18 eggs.",
        );
        assert!(!draft.contains("ana@example.org") && !draft.contains("bo@example.net"));
        assert!(!draft.contains("Ana Souza"));
        assert_eq!(
            draft,
            "Dear <NAME_1>, I wrote to <EMAIL_1> and <EMAIL_2>: 18 eggs."
        );
        assert_eq!(
            r.restore("<NAME_1>: <EMAIL_2>"),
            "Ana Souza: bo@example.net"
        );
    }

    #[test]
    fn every_pattern_compiles() {
        assert_eq!(patterns().len(), 4);
    }

    #[test]
    fn finds_each_kind() {
        let d = Detector::new(&["Ana Souza"]);
        let text =
            "Mail ana.souza@example.org or call +1 (415) 555-0132; card 4111 1111 1111 1111, \
                    IBAN DE89 3704 0044 0532 0130 00. Ana Souza signed.";
        assert_eq!(
            kinds(&d, text),
            vec![
                (PiiKind::Email, "ana.souza@example.org".into()),
                (PiiKind::Phone, "+1 (415) 555-0132".into()),
                (PiiKind::Card, "4111 1111 1111 1111".into()),
                (PiiKind::Account, "DE89 3704 0044 0532 0130 00".into()),
                (PiiKind::Name, "Ana Souza".into()),
            ]
        );
    }

    #[test]
    fn ordinary_numbers_are_not_sensitive() {
        let d = Detector::new::<&str>(&[]);
        for text in [
            "Janet's ducks lay 16 eggs per day and she sells them for $2 each.",
            "In 2024 the population was 1,234,567.",
            "Compute 3.14159 * 2.",
            "The meeting is on 2024-01-15 at 10:30.",
            // 16 digits failing the Luhn check: not a card (and too long for a phone).
            "Order 4111 1111 1111 1112 shipped.",
        ] {
            assert!(!d.is_sensitive(text), "{text}: {:?}", d.find(text));
        }
    }

    #[test]
    fn overlapping_spans_keep_the_leftmost_longest() {
        // The name "Ana" lies inside the e-mail address; the e-mail wins.
        let d = Detector::new(&["ana", "Ana Souza"]);
        assert_eq!(
            kinds(&d, "write to ana@x.io, Ana Souza"),
            vec![
                (PiiKind::Email, "ana@x.io".into()),
                (PiiKind::Name, "Ana Souza".into())
            ]
        );
        // A card number also matches the phone pattern; the card (longer) wins.
        let d = Detector::new::<&str>(&[]);
        assert_eq!(
            kinds(&d, "4111111111111111"),
            vec![(PiiKind::Card, "4111111111111111".into())]
        );
    }

    #[test]
    fn repeated_values_share_a_placeholder_and_restore() {
        let d = Detector::new(&["Bob"]);
        let q = "Bob (bob@corp.com) asked; reply to bob@corp.com, not eve@corp.com. Thanks, BOB";
        let r = d.redact(q);
        assert_eq!(
            r.text,
            "<NAME_1> (<EMAIL_1>) asked; reply to <EMAIL_1>, not <EMAIL_2>. Thanks, <NAME_2>"
        );
        assert!(!r.text.contains("corp.com"));
        assert_eq!(r.restore(&r.text), q);
        assert_eq!(
            r.restore("Sent to <EMAIL_2> and <EMAIL_1>."),
            "Sent to eve@corp.com and bob@corp.com."
        );
    }

    #[test]
    fn placeholders_in_the_query_or_invented_by_the_model_are_left_alone() {
        let d = Detector::new::<&str>(&[]);
        // The user literally wrote "<EMAIL_1>": the redaction must not reuse that name.
        let q = "Template says <EMAIL_1>; my address is me@home.net";
        let r = d.redact(q);
        assert_eq!(r.text, "Template says <EMAIL_1>; my address is <EMAIL_2>");
        assert_eq!(r.restore(&r.text), q);
        // The model answers with a placeholder it made up, and a half one.
        assert_eq!(
            r.restore("Use <EMAIL_2>, not <EMAIL_9> or <EMAIL_"),
            "Use me@home.net, not <EMAIL_9> or <EMAIL_"
        );
    }

    #[test]
    fn restoring_is_one_pass() {
        // A configured name that looks like a placeholder must not be expanded twice.
        let d = Detector::new(&["Zed"]);
        let r = Redaction {
            text: String::new(),
            map: vec![
                ("<NAME_1>".into(), "<NAME_2>".into()),
                ("<NAME_2>".into(), "Zed".into()),
            ],
        };
        assert_eq!(r.restore("<NAME_1> and <NAME_2>"), "<NAME_2> and Zed");
        assert_eq!(d.redact("zed").restore("<NAME_1>"), "zed");
    }

    #[test]
    fn luhn_checks_digits() {
        assert!(luhn("4111 1111 1111 1111"));
        assert!(luhn("5500-0000-0000-0004"));
        assert!(!luhn("4111 1111 1111 1112"));
    }
}

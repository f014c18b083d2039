//! Paraphrase-aware sharing of server work: a question whose nearest stored question (cosine of
//! their embeddings) is at least a threshold *and* has the same literal signature — its
//! numbers, quoted strings and names — is served that question's shared references
//! ([`ParaphraseStore`], a [`ReferenceStore`] over another). Opt-in; without it a question
//! shares only with the same text (after the store's normalisation).
//!
//! The signature is what an embedding cannot be trusted with: "Janet sells 16 eggs" and
//! "Janet sells 15 eggs" are near-identical vectors with different answers. Requiring equal
//! signatures makes a share between questions whose numbers differ impossible by construction,
//! whatever the threshold (measured: `docs/benchmarks/paraphrase-sharing.md`).

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::references::ReferenceStore;
use crate::model::{cosine, EmbeddingModel};

/// The literal content of a question that a paraphrase must keep: its numbers (digits with
/// separators removed, trailing zeros of decimals dropped; number words up to twenty and the
/// tens read as digits) as a multiset — a number written twice counts twice, so changing one
/// of two equal numbers changes it — and its quoted strings and names (capitalised words that
/// are not common sentence openers) as sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signature {
    /// Numbers, normalised (`1,000` → `1000`, `2.50` → `2.5`, `three` → `3`), sorted, with
    /// repeats.
    pub numbers: Vec<String>,
    /// Text between double quotes (straight or curly), lower-cased.
    pub quoted: BTreeSet<String>,
    /// Capitalised words other than sentence openers and pronouns, without a possessive `'s`.
    pub names: BTreeSet<String>,
}

const NUMBER_WORDS: [(&str, &str); 28] = [
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("thirteen", "13"),
    ("fourteen", "14"),
    ("fifteen", "15"),
    ("sixteen", "16"),
    ("seventeen", "17"),
    ("eighteen", "18"),
    ("nineteen", "19"),
    ("twenty", "20"),
    ("thirty", "30"),
    ("forty", "40"),
    ("fifty", "50"),
    ("sixty", "60"),
    ("seventy", "70"),
    ("eighty", "80"),
    ("ninety", "90"),
];

/// Fraction words, read as the fraction (`two-thirds`: `2` and `1/3`).
const FRACTION_WORDS: &[(&str, &str)] = &[
    ("half", "1/2"),
    ("halves", "1/2"),
    ("third", "1/3"),
    ("thirds", "1/3"),
    ("quarter", "1/4"),
    ("quarters", "1/4"),
    ("fourths", "1/4"),
    ("fifth", "1/5"),
    ("fifths", "1/5"),
    ("sixths", "1/6"),
    ("eighths", "1/8"),
    ("tenths", "1/10"),
];

/// Words that open sentences or questions in capitals without naming anything.
const OPENERS: &[&str] = &[
    "a",
    "an",
    "the",
    "if",
    "how",
    "what",
    "when",
    "where",
    "which",
    "who",
    "whom",
    "whose",
    "why",
    "she",
    "he",
    "they",
    "it",
    "we",
    "you",
    "i",
    "her",
    "his",
    "their",
    "its",
    "our",
    "your",
    "my",
    "in",
    "on",
    "at",
    "each",
    "every",
    "there",
    "this",
    "that",
    "these",
    "those",
    "after",
    "before",
    "then",
    "so",
    "for",
    "to",
    "of",
    "by",
    "with",
    "and",
    "but",
    "or",
    "as",
    "all",
    "some",
    "any",
    "find",
    "calculate",
    "determine",
    "given",
    "assume",
    "suppose",
    "also",
    "however",
    "now",
    "today",
    "yesterday",
    "tomorrow",
    "one",
    "two",
    "three",
    "is",
    "are",
    "was",
    "were",
    "do",
    "does",
    "did",
    "can",
    "could",
    "will",
    "would",
    "should",
    "while",
    "during",
    "since",
    "because",
    "from",
    "over",
    "per",
    "let",
    "first",
    "second",
    "next",
    "last",
    "finally",
    "altogether",
    "together",
    "total",
    "ok",
    "okay",
    "yes",
    "no",
    "not",
    "please",
    "answer",
    "question",
    "both",
    "many",
    "much",
    "most",
];

/// The [`Signature`] of `text`.
pub fn signature(text: &str) -> Signature {
    let mut sig = Signature::default();
    // Quoted strings: between straight or curly double quotes.
    let mut rest = text;
    while let Some(open) = rest.find(['"', '\u{201c}']) {
        let after = &rest[open + rest[open..].chars().next().map_or(1, char::len_utf8)..];
        let Some(close) = after.find(['"', '\u{201d}']) else {
            break;
        };
        let quoted = after[..close].trim().to_lowercase();
        if !quoted.is_empty() {
            sig.quoted.insert(quoted);
        }
        rest = &after[close + after[close..].chars().next().map_or(1, char::len_utf8)..];
    }
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            // A number: digits, with `,` between digit groups and one decimal point.
            let mut digits = String::new();
            while i < chars.len() {
                let c = chars[i];
                let next_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
                if c.is_ascii_digit() {
                    digits.push(c);
                } else if c == ',' && next_digit {
                } else if c == '.' && next_digit && !digits.contains('.') {
                    digits.push('.');
                } else {
                    break;
                }
                i += 1;
            }
            if digits.contains('.') {
                digits = digits
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_owned();
            }
            let digits = digits.trim_start_matches('0');
            sig.numbers
                .push(if digits.is_empty() || digits.starts_with('.') {
                    format!("0{digits}")
                } else {
                    digits.to_owned()
                });
        } else if c.is_alphabetic() {
            let start = i;
            // Hyphens part words: `two-thirds` is `two` and `thirds`.
            while i < chars.len() && chars[i].is_alphanumeric() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let lower = word.to_lowercase();
            if let Some((_, n)) = NUMBER_WORDS
                .iter()
                .chain(FRACTION_WORDS)
                .find(|(w, _)| *w == lower)
            {
                sig.numbers.push((*n).to_owned());
            } else if word.chars().next().is_some_and(char::is_uppercase)
                && !OPENERS.contains(&lower.as_str())
            {
                sig.names.insert(lower);
            }
            // A possessive `'s` stays with its word (left out of names).
            if chars.get(i).is_some_and(|&c| c == '\'' || c == '\u{2019}')
                && chars.get(i + 1).is_some_and(|&c| c == 's')
            {
                i += 2;
            }
        } else {
            i += 1;
        }
    }
    sig.numbers.sort();
    sig
}

/// One stored question the index knows: its text as stored, its vector and signature.
struct Known {
    scope: String,
    text: String,
    vector: Vec<f32>,
    signature: Signature,
}

/// A [`ReferenceStore`] over `inner` that serves a question the entry of its nearest stored
/// paraphrase: the stored question of the same scope and [`Signature`] whose embedding has
/// the highest cosine with the question's, when that cosine is at least `threshold`. Questions
/// are indexed when stored through it (in this process's memory: replicas sharing a Redis
/// store each index what they stored). An embedding that fails falls back to the exact text
/// (logged), never failing the request.
pub struct ParaphraseStore {
    inner: Arc<dyn ReferenceStore>,
    embedder: Arc<dyn EmbeddingModel>,
    threshold: f32,
    known: Mutex<Vec<Known>>,
    /// Vectors of recent questions (a question is resolved at `lock`, `get` and `put`).
    vectors: Mutex<HashMap<String, Vec<f32>>>,
}

/// Questions whose vectors are kept between the calls of one ask (bounded memory).
const VECTOR_CACHE: usize = 1024;

impl ParaphraseStore {
    /// Paraphrase-aware sharing over `inner` with `embedder`'s vectors and cosine `threshold`
    /// in (0, 1].
    pub fn new(
        inner: Arc<dyn ReferenceStore>,
        embedder: Arc<dyn EmbeddingModel>,
        threshold: f32,
    ) -> Self {
        Self {
            inner,
            embedder,
            threshold,
            known: Mutex::new(Vec::new()),
            vectors: Mutex::new(HashMap::new()),
        }
    }

    async fn vector(&self, query: &str) -> Option<Vec<f32>> {
        if let Some(v) = self
            .vectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(query)
        {
            return Some(v.clone());
        }
        match self.embedder.embed(&[query.to_owned()]).await {
            Ok(mut e) => {
                let v = e.vectors.pop()?;
                let mut cache = self.vectors.lock().unwrap_or_else(PoisonError::into_inner);
                if cache.len() >= VECTOR_CACHE {
                    cache.clear();
                }
                cache.insert(query.to_owned(), v.clone());
                Some(v)
            }
            Err(e) => {
                tracing::warn!(error = %e, "embedding a question failed; sharing by its text");
                None
            }
        }
    }

    /// The stored question `query` shares with in `scope` ([`ParaphraseStore`]'s rule), and
    /// the cosine; `None` when there is none.
    pub async fn nearest(&self, query: &str, scope: &str) -> Option<(String, f32)> {
        let vector = self.vector(query).await?;
        let sig = signature(query);
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known
            .iter()
            .filter(|k| k.scope == scope && k.signature == sig)
            .map(|k| (k, cosine(&vector, &k.vector)))
            .filter(|(_, c)| *c >= self.threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(k, c)| (k.text.clone(), c))
    }

    /// The text `query` is stored under: its nearest paraphrase's, or its own.
    async fn canonical(&self, query: &str, scope: &str) -> String {
        match self.nearest(query, scope).await {
            Some((text, similarity)) if text != query => {
                tracing::info!(
                    similarity,
                    "a paraphrase of a stored question shares its references"
                );
                text
            }
            _ => query.to_owned(),
        }
    }
}

#[async_trait]
impl ReferenceStore for ParaphraseStore {
    async fn lock(&self, query: &str, scope: &str) -> Box<dyn Any + Send> {
        let canonical = self.canonical(query, scope).await;
        self.inner.lock(&canonical, scope).await
    }

    async fn get(&self, query: &str, scope: &str) -> Option<String> {
        let canonical = self.canonical(query, scope).await;
        self.inner.get(&canonical, scope).await
    }

    async fn put(&self, query: &str, scope: &str, value: &str) {
        self.inner.put(query, scope, value).await;
        if let Some(vector) = self.vector(query).await {
            let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
            if !known.iter().any(|k| k.scope == scope && k.text == query) {
                known.push(Known {
                    scope: scope.to_owned(),
                    text: query.to_owned(),
                    vector,
                    signature: signature(query),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_keep_numbers_quotes_and_names() {
        let s = signature(
            "Janet\u{2019}s ducks lay 16 eggs per day. She eats three and sells the rest for \
             $2.50 each, 1,000 in all, at the \"Green Market\" in Paris.",
        );
        let set = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<BTreeSet<_>>();
        assert_eq!(s.numbers, ["1000", "16", "2.5", "3"]);
        assert_eq!(s.quoted, set(&["green market"]));
        assert_eq!(s.names, set(&["janet", "green", "market", "paris"]));
        // A paraphrase keeps it; a changed number does not.
        let p = signature(
            "Every day Janet's ducks lay sixteen eggs; she eats 3 and sells the rest for $2.5 \
             each, 1000 in all, at the \u{201c}Green Market\u{201d} in Paris.",
        );
        assert_eq!(p, s);
        let changed = signature("Janet's ducks lay 17 eggs per day. She eats three.");
        assert_ne!(changed.numbers, s.numbers);
        assert_eq!(
            signature("It costs 0.50 or 00.5 dollars").numbers,
            ["0.5", "0.5"]
        );
        assert_ne!(
            signature("10 liters that are two-thirds water").numbers,
            signature("10 liters that are three-thirds water").numbers
        );
        // One of two equal numbers changed into the other number there: still a change.
        assert_ne!(
            signature("2 red and 3 blue, then 2 more").numbers,
            signature("3 red and 3 blue, then 2 more").numbers
        );
    }
}

//! Client text as data in colm's prompts: quotations a text cannot close, and delimiters a text
//! cannot forge, however it spells them.
//!
//! A delimiter is one of [`DELIMITERS`] as an opening or closing tag. [`defuse`] finds every
//! spelling a model could read as one — any case; `<` written as itself, as its fullwidth or
//! small forms (NFKC `<`) or as an HTML entity (`&lt;`, `&#60;`, `&#x3c;`); the `/` of a closing
//! tag in any NFKC form; whitespace, zero-width characters and soft hyphens between `<`, `/` and
//! the name or inside it; the name's letters in any NFKC form (fullwidth, mathematical) — and
//! replaces its `<` with `‹`, keeping the rest of the text as written.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

use crate::model::{ChatMessage, Role};

/// The tags that delimit quoted text in colm's prompts: client answers (`answer`), the
/// server's guidance (`guidance`) and its reference solution (`reference`).
pub const DELIMITERS: [&str; 3] = ["answer", "guidance", "reference"];

/// What replaces the `<` of a defused delimiter.
const DEFUSED: char = '‹';

/// `text` quoted as data between `<answer>` tags ([`quote_as`]).
pub fn quote(text: &str) -> String {
    quote_as("answer", text)
}

/// `text` quoted as data between `<tag>` and `</tag>` on lines of their own, its delimiters
/// defused ([`defuse`]): a text cannot close its own quotation nor open a fake one. The text is
/// otherwise kept as written (trimmed).
pub fn quote_as(tag: &str, text: &str) -> String {
    format!("<{tag}>\n{}\n</{tag}>", defuse(text.trim()))
}

/// `text` with the `<` of every delimiter it holds, however spelled (module docs), replaced by
/// `‹`; borrowed when it holds none (so a question without one reaches the model byte for
/// byte as written).
pub fn defuse(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut last = 0;
    let mut i = 0;
    while i < text.len() {
        let Some(open) = opening_at(text, i) else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            continue;
        };
        if names_delimiter(&text[i + open..]) {
            out.push_str(&text[last..i]);
            out.push(DEFUSED);
            last = i + open;
        }
        i += open;
    }
    if last == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// `messages` with the text of every turn but the system prompt defused ([`defuse`]): the
/// conversation a client sent, in a prompt that also quotes client text.
pub fn defuse_turns(mut messages: Vec<ChatMessage>) -> Vec<ChatMessage> {
    for m in messages.iter_mut().filter(|m| m.role != Role::System) {
        if let Cow::Owned(d) = defuse(&m.content) {
            m.content = d;
        }
    }
    messages
}

/// The byte length of a `<` spelling at byte `i` of `text`, if one starts there.
fn opening_at(text: &str, i: usize) -> Option<usize> {
    let rest = &text[i..];
    let c = rest.chars().next()?;
    if nfkc_is(c, "<") {
        return Some(c.len_utf8());
    }
    let bytes = rest.as_bytes();
    ["&lt;", "&#60;", "&#x3c;"]
        .into_iter()
        .find(|e| {
            bytes
                .get(..e.len())
                .is_some_and(|b| b.eq_ignore_ascii_case(e.as_bytes()))
        })
        .map(str::len)
}

/// Whether `c` normalises (NFKC) to `s`.
fn nfkc_is(c: char, s: &str) -> bool {
    std::iter::once(c).nfkc().eq(s.chars())
}

/// Characters a model reads past inside a tag: whitespace, zero-width characters (ZWSP, ZWNJ,
/// ZWJ, word joiner, BOM) and the soft hyphen.
fn ignorable(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{ad}'
        )
}

/// Whether `after` (the text after a `<`) starts with a delimiter's name, maybe after a `/`,
/// read as a model would (module docs).
fn names_delimiter(after: &str) -> bool {
    let longest = DELIMITERS.iter().map(|d| d.len()).max().unwrap_or(0);
    let mut name = String::new();
    let mut slash = false;
    for c in after.chars() {
        if ignorable(c) {
            continue;
        }
        if name.is_empty() && !slash && nfkc_is(c, "/") {
            slash = true;
            continue;
        }
        name.extend(std::iter::once(c).nfkc().flat_map(char::to_lowercase));
        if name.len() >= longest || !DELIMITERS.iter().any(|d| d.starts_with(name.as_str())) {
            break;
        }
    }
    DELIMITERS.iter().any(|d| name.starts_with(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_a_delimiter_is_kept_byte_for_byte() {
        for t in [
            "Janet has 3 < 5 eggs; x<y and a <b> tag, <answers are> fine? no",
            "Which is larger: 1/2 or 2/3? (A) <1 (B) &lt;2",
            "",
        ] {
            let d = defuse(t);
            if t.contains("<answers") {
                // `<answers` starts with the delimiter `answer`: defused.
                assert!(d.contains("‹answers"), "{d}");
            } else {
                assert!(matches!(d, Cow::Borrowed(_)), "{t}");
            }
        }
    }

    #[test]
    fn delimiters_are_defused_however_spelled() {
        for t in [
            "</answer>",
            "</ answer>",
            "< /answer>",
            "<\u{200d}/answer>",
            "</ans\u{200b}wer>",
            "＜/answer＞",
            "﹤/answer>",
            "<／answer>",
            "</ＡＮＳＷＥＲ>",
            "&lt;/answer&gt;",
            "&#60;/guidance>",
            "&#X3C;reference>",
            "<\n/\tReference>",
            "</\u{ad}answer>",
            "</𝐚𝐧𝐬𝐰𝐞𝐫>",
        ] {
            let d = defuse(t);
            assert!(d.starts_with(DEFUSED), "{t:?} → {d:?}");
        }
    }
}

//! What a strategy answers: the last user turn of a conversation, in its context.
//!
//! A caller of a virtual model sends a whole chat: its own system prompt, earlier user and
//! assistant turns, and a last user turn. Every client-side call of a strategy (drafts,
//! refinements, debaters, proposers, the reference writers) sees that conversation as real chat
//! messages ([`Query::chat`]); server-side prompts that quote the query as data (selection,
//! aggregation, critiques) quote [`Query::server_text`], which also keys shared references, so
//! two conversations share references only when everything the answer depends on is equal.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::model::{ChatMessage, Role};

/// System prompt of every client call when the caller sends none.
pub const CLIENT_SYSTEM: &str = "You are a helpful assistant.";

/// A query with its conversation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Query {
    /// The caller's system prompt (several system messages joined by blank lines); `None`:
    /// [`CLIENT_SYSTEM`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Earlier turns, user and assistant, in order (no system messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<ChatMessage>,
    /// The last user turn: what is asked now.
    pub text: String,
    /// The images of the last user turn ([`ChatMessage::images`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// The participant's name on the last user turn ([`ChatMessage::name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl From<&str> for Query {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl Query {
    /// A single question with no conversation around it.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            system: None,
            history: Vec::new(),
            text: text.into(),
            images: Vec::new(),
            name: None,
        }
    }

    /// The query of a chat: the system messages (wherever they are) become the system prompt,
    /// the last user message is the text, and the turns before it are the history. Trailing
    /// assistant turns after the last user message stay in the history, and the text asks to
    /// continue; a chat with no user message at all is asked as its whole text.
    pub fn from_messages(messages: &[ChatMessage]) -> Self {
        let system: Vec<&str> = messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        let turns: Vec<&ChatMessage> = messages.iter().filter(|m| m.role != Role::System).collect();
        let system = (!system.is_empty()).then(|| system.join("\n\n"));
        match turns.iter().rposition(|m| m.role == Role::User) {
            Some(i) if i + 1 == turns.len() => Self {
                system,
                history: turns[..i].iter().map(|m| (*m).clone()).collect(),
                text: turns[i].content.clone(),
                images: turns[i].images.clone(),
                name: turns[i].name.clone(),
            },
            // Trailing assistant turns: the history is the whole chat and the query asks to
            // go on from its end.
            Some(_) => Self {
                system,
                history: turns.iter().map(|m| (*m).clone()).collect(),
                text: "Continue.".into(),
                images: Vec::new(),
                name: None,
            },
            None => Self {
                system,
                history: Vec::new(),
                images: Vec::new(),
                name: None,
                text: turns
                    .iter()
                    .map(|m| m.content_with_name())
                    .collect::<Vec<_>>()
                    .join("\n\n"),
            },
        }
    }

    /// True when there is no conversation around the text (no system prompt, no history, no
    /// image, no participant's name).
    pub fn is_plain(&self) -> bool {
        self.system.is_none()
            && self.history.is_empty()
            && !self.has_images()
            && self.name.is_none()
    }

    /// Whether the conversation holds images (in the last turn or an earlier one).
    pub fn has_images(&self) -> bool {
        !self.images.is_empty() || self.history.iter().any(|m| !m.images.is_empty())
    }

    /// The system prompt of a client call: the caller's, or [`CLIENT_SYSTEM`].
    pub fn client_system(&self) -> &str {
        self.system.as_deref().unwrap_or(CLIENT_SYSTEM)
    }

    /// `base` (a prompt of ours: a specialisation, an aggregator's) followed by the caller's
    /// system prompt when there is one, so that a call with its own role still follows the
    /// caller's instructions.
    pub fn system_with(&self, base: &str) -> String {
        match &self.system {
            Some(s) => format!("{base}\n\n{s}"),
            None => base.to_owned(),
        }
    }

    /// The conversation as chat messages under `system`: `system`, the history, then the text
    /// as the last user turn.
    pub fn chat(&self, system: impl Into<String>) -> Vec<ChatMessage> {
        let mut messages = Vec::with_capacity(self.history.len() + 2);
        messages.push(ChatMessage::system(system));
        messages.extend(self.history.iter().cloned());
        messages.push(ChatMessage {
            images: self.images.clone(),
            name: self.name.clone(),
            ..ChatMessage::user(self.text.clone())
        });
        messages
    }

    /// The query as one text, for prompts that quote it as data and for the key of shared
    /// references: the text alone for a plain query; otherwise the system prompt and earlier
    /// turns as a transcript, then the text.
    pub fn server_text(&self) -> Cow<'_, str> {
        if self.is_plain() {
            return Cow::Borrowed(&self.text);
        }
        // Images are named by a digest of their URL: the text then differs when they do (it
        // keys shared references), without carrying them.
        let marks = |images: &[String]| -> String {
            images
                .iter()
                .map(|url| format!("[image {}]\n", digest(url)))
                .collect()
        };
        let mut q = String::from("Earlier conversation:\n");
        if let Some(s) = &self.system {
            q.push_str(&format!("system: {s}\n"));
        }
        for m in &self.history {
            q.push_str(&format!(
                "{}: {}{}\n",
                m.role.as_str(),
                marks(&m.images),
                m.content_with_name()
            ));
        }
        let named = match &self.name {
            Some(name) => format!("{name}: {}", self.text),
            None => self.text.clone(),
        };
        q.push_str(&format!("\nQuestion:\n{}{named}", marks(&self.images),));
        Cow::Owned(q)
    }
}

/// The name of an image URL in prompts and in keys of shared references: the hex SHA-256 of
/// the URL (a collision would share one image's references with another).
fn digest(url: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(url.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A query reduced to what makes two askings "the same question" (the one definition: the
/// server's shared references and sessions, the router's training pairs): Unicode lower case,
/// whitespace runs collapsed to one space, typographic apostrophes and quotes made plain,
/// surrounding whitespace and trailing punctuation removed.
pub fn normalise_query(query: &str) -> String {
    let mapped: String = query
        .chars()
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' => '\'',
            '\u{201C}' | '\u{201D}' => '"',
            c => c,
        })
        .collect::<String>()
        .to_lowercase();
    let collapsed = mapped.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .trim_end_matches(|c: char| c.is_ascii_punctuation() && c != ')' && c != ']')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A participant's name on the last user turn reaches the client's chat and the quoted
    /// question (so two participants asking the same words do not share one answer's key).
    #[test]
    fn the_last_turns_name_is_kept() {
        let chat = [ChatMessage {
            name: Some("alice".into()),
            ..ChatMessage::user("What is 2+2?")
        }];
        let q = Query::from_messages(&chat);
        assert_eq!(q.name.as_deref(), Some("alice"));
        assert!(!q.is_plain());
        assert_eq!(q.chat(q.client_system())[1], chat[0]);
        assert!(q.server_text().ends_with("Question:\nalice: What is 2+2?"));
        assert_ne!(q.server_text(), Query::new("What is 2+2?").server_text());
    }

    #[test]
    fn chats_become_queries_with_their_context() {
        let q = Query::from_messages(&[ChatMessage::user("q")]);
        assert!(q.is_plain());
        assert_eq!(q.server_text(), "q");
        assert_eq!(q.chat(q.client_system())[0].content, CLIENT_SYSTEM);

        let chat = [
            ChatMessage::system("be brief"),
            ChatMessage::user("What is 2+2?"),
            ChatMessage::assistant("4"),
            ChatMessage::user("And times 3?"),
        ];
        let q = Query::from_messages(&chat);
        assert_eq!(q.system.as_deref(), Some("be brief"));
        assert_eq!(q.history, chat[1..3].to_vec());
        assert_eq!(q.text, "And times 3?");
        // The client sees the caller's conversation as it was sent.
        assert_eq!(q.chat(q.client_system()), chat.to_vec());
        // A role of ours keeps the caller's instructions after it.
        assert_eq!(
            q.system_with("You are a mathematician."),
            "You are a mathematician.\n\nbe brief"
        );
        let t = q.server_text();
        assert!(
            t.contains("system: be brief")
                && t.contains("user: What is 2+2?")
                && t.contains("assistant: 4")
                && t.ends_with("Question:\nAnd times 3?"),
            "{t}"
        );
        // What the answer depends on is in the text that keys shared references.
        let other = Query::from_messages(&[
            ChatMessage::system("be brief"),
            ChatMessage::user("What is 2+5?"),
            ChatMessage::assistant("7"),
            ChatMessage::user("And times 3?"),
        ]);
        assert_ne!(other.server_text(), q.server_text());

        // A trailing assistant turn stays in the history; the query asks to continue.
        let q = Query::from_messages(&[
            ChatMessage::user("Tell a story."),
            ChatMessage::assistant("Once"),
        ]);
        assert_eq!(q.history.len(), 2);
        assert_eq!(q.text, "Continue.");
        // No user message: the text of the chat.
        let q = Query::from_messages(&[ChatMessage::system("s"), ChatMessage::assistant("a")]);
        assert_eq!(q.text, "a");
    }
}

//! The OpenAI-compatible API: chat request, response, stream chunk, embeddings, model list and
//! error object, with the shapes of OpenAI's API reference (Chat Completions, Embeddings).
//!
//! Differences from OpenAI, on purpose: `temperature` defaults to 0 (greedy, reproducible)
//! and `max_tokens` to the server's default; only text content is accepted. A request field
//! the server does not honour is a 400 naming it, never silently ignored
//! ([`ChatCompletionRequest::unsupported`]). Responses carry an extra `colm` object
//! ([`ColmExtension`]) that OpenAI clients ignore.

mod completions;
mod embeddings;
mod error;
mod message;
mod models;
mod request;
mod response;
mod tool;

pub use completions::*;
pub use embeddings::*;
pub use error::*;
pub use message::*;
pub use models::*;
pub use request::*;
pub use response::*;
pub use tool::*;

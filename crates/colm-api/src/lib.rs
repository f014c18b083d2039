//! colm-api: the wire types of colm's HTTP API, in one place for the server (`colm-server`)
//! and its clients (`colm-client`).
//!
//! - [`openai`]: the OpenAI-compatible chat API (`POST /v1/chat/completions`, `GET
//!   /v1/models`) and OpenAI's error object, following OpenAI's API reference (Chat
//!   Completions), with colm's `colm` extension object;
//! - [`collab`]: the collaboration API of CoLM (Huang et al., AAAI 2026, §3): one-shot guidance
//!   (`POST /v1/colm/guidance`) and shared sessions (`/v1/colm/sessions…`);
//! - [`record`]: the interaction log's records and their transcripts (`/v1/colm/records…`).
//!
//! Every type derives serde and [`utoipa::ToSchema`]; the server's `/openapi.json` is generated
//! from them and from its handlers, so the document cannot drift from what is parsed and sent.
//! Adding an API field is one field here (with its doc comment, which becomes its
//! description), plus its handling in the server.

pub mod collab;
pub mod float;
pub mod openai;
pub mod record;

pub use collab::{
    CreateSession, GuidanceRequest, GuidanceResponse, SentReference, SessionObject, SessionStatus,
    SubmitDraft, Trigger, WaitQuery,
};
pub use openai::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, CompletionUsage, ErrorBody,
    ErrorObject, Health, ModelList, ModelObject,
};

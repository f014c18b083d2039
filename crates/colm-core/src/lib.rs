//! colm-core: the protocol types and collaboration strategies of colm, as plain async logic
//! over one trait, [`ChatModel`]. No HTTP and no inference engine live here.
//!
//! - [`model`]: the [`ChatModel`] trait and its request/response types;
//! - [`colm`]: the CoLM strategy (draft → guidance → refinement over rounds, top-k selection);
//! - [`guidance`]: guidance modes (synthesis, critique, vote, auto) and answer extraction;
//! - [`horizontal`]: multi-agent strategies over the same trait — self-consistency, debate
//!   (with a topology), mixture-of-agents;
//! - [`options`]: the options of a collaboration, one typed value for every surface (API,
//!   CLI, TOML, text form);
//! - [`prompts`]: the prompts of each step, with their sources;
//! - [`query`]: what a strategy answers — the last user turn in its conversation;
//! - [`colm::round`]: a client's draft and its refinement with guidance, the steps every CoLM
//!   round is made of (in process, over the network, in the router);
//! - [`run`]: one [`run::Strategy`] trait for every strategy, the [`run::Run`] record, the
//!   [`run::RunError`], and [`run::StrategyModel`] serving any strategy as a chat model;
//! - [`step`]: what every strategy records — one model call ([`step::Step`]), per-model totals;
//! - [`strategy`]: one description of every strategy, with its one text form
//!   (`colm:refs=3,rounds=2`);
//! - [`vertical`]: device–cloud routing — confidence cascade, budgets, data residency.

pub mod answer;
pub mod colm;
pub mod guidance;
pub mod horizontal;
pub mod invalid;
pub mod model;
pub mod named;
pub mod options;
pub mod prompts;
pub mod query;
pub mod run;
pub mod step;
pub mod strategy;
#[cfg(test)]
mod testing;
pub mod vertical;

pub use invalid::Invalid;
pub use model::{
    cosine, ChatMessage, ChatModel, Completion, EmbeddingModel, Embeddings, FinishReason, Meter,
    ModelError, PromptReuse, ResidencyOutcome, ResponseFormat, Role, SamplingParams, StreamEvent,
    Timings, TokenLogprob, Tool, ToolCall, ToolChoice, TopLogprob, Transcript, TranscriptStep,
    Usage, WireStats, DEFAULT_MAX_TOKENS, MAX_TOP_LOGPROBS, PENALTY_LAST_N,
};
pub use query::Query;

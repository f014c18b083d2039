//! Server-side collaborators and their **references** (CoLM, Huang, Huang, Zhang, AAAI 2026,
//! arXiv 2511.06991, and its public reference code).
//!
//! The server holds a pool of [`ReferenceWriter`]s — strong models, each with an optional
//! specialisation (a system prompt and a one-line description, as the reference code's math /
//! code / conversation / creative assistants, [`prompts::SPECIALISATIONS`]) and its own
//! sampling. For a query, the top-k most relevant are **selected** ([`Selector`]: the server
//! model reading the descriptions, or a keyword match that needs no model call), each writes a
//! reference (its own answer to the query), and the references are **synthesised** into guidance
//! ([`synthesise`]; one reference is its own synthesis, without a call). None of this reads a
//! client's draft, so it is computed once per question and shared by every client asking it;
//! what does read a draft ([`critique`], aggregation with client answers) is private.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::join_all;
use serde::{Deserialize, Serialize};

use super::choose::{selected, voted};
use super::selection::{select, select_by_embedding, Selection};
use crate::invalid::Invalid;
use crate::model::{ChatModel, Completion, EmbeddingModel, ModelError, SamplingParams};
use crate::named::Named;
use crate::prompts::{self, CandidateProfile, Specialisation};
use crate::query::Query;
use crate::step::{call, no_call_step, Step, StepKind, StepObserver, StepOutcome};

/// A server-side collaborator that writes references.
#[derive(Clone)]
pub struct ReferenceWriter {
    /// Unique id within the pool, e.g. `math`.
    pub id: String,
    /// One-line specialisation read by top-k selection.
    pub description: String,
    /// System prompt of its reference; `None` for a generalist (then its prompt is exactly the
    /// client's draft prompt, [`prompts::draft`]).
    pub system: Option<String>,
    /// The model that writes.
    pub model: Arc<dyn ChatModel>,
    /// Its own temperature; `None` keeps the request's server sampling.
    pub temperature: Option<f32>,
    /// Its own seed; `None` keeps the request's.
    pub seed: Option<u32>,
}

impl ReferenceWriter {
    /// A generalist writer on `model` (id: the model's name), with the request's sampling.
    pub fn generalist(model: Arc<dyn ChatModel>) -> Self {
        Self {
            id: model.name().to_owned(),
            description: "general assistant".into(),
            system: None,
            model,
            temperature: None,
            seed: None,
        }
    }

    /// A writer on `model` with the specialisation `spec` (id: the specialisation's).
    pub fn specialised(spec: &Specialisation, model: Arc<dyn ChatModel>) -> Self {
        Self {
            id: spec.id.to_owned(),
            description: spec.description.to_owned(),
            system: Some(spec.system.to_owned()),
            model,
            temperature: None,
            seed: None,
        }
    }

    /// The sampling of its reference: `base` with the writer's temperature and seed.
    pub fn params(&self, base: &SamplingParams) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature.unwrap_or(base.temperature),
            seed: self.seed.unwrap_or(base.seed),
            ..base.clone()
        }
    }

    /// What identifies the writer's references: id, model, system prompt and sampling. Two
    /// pools with the same signatures write the same references (a key of shared references).
    pub fn signature(&self) -> String {
        format!(
            "{}|{}|{}|{:?}|{:?}",
            self.id,
            self.model.name(),
            self.system.as_deref().unwrap_or(""),
            self.temperature,
            self.seed
        )
    }
}

/// A reference writer as written on a command line: `MODEL[:key=value,…]` with keys `role`
/// (a specialisation of [`prompts::SPECIALISATIONS`]: `math`, `code`, `conversation`,
/// `creative`), `t` (temperature), `seed` and `id` (default: the role, else the model).
#[derive(Debug, Clone, PartialEq)]
pub struct WriterSpec {
    /// The model's name (as hosted or in the catalog).
    pub model: String,
    /// Id in the pool.
    pub id: Option<String>,
    /// Specialisation.
    pub role: Option<&'static Specialisation>,
    /// Own temperature.
    pub temperature: Option<f32>,
    /// Own seed.
    pub seed: Option<u32>,
}

/// The options of a writer's text form: the keys of [`WriterSpec`] (`role`, `t`, `seed`,
/// `id`), read through [`crate::options::text`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct WriterOptions {
    role: Option<String>,
    #[serde(rename = "t")]
    temperature: Option<f64>,
    seed: Option<u32>,
    id: Option<String>,
}

impl WriterSpec {
    /// Parses `MODEL[:role=R,t=T,seed=S,id=I]`.
    ///
    /// # Errors
    /// A message naming the unknown key, role or bad value.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let (model, opts) = text.split_once(':').unwrap_or((text, ""));
        if model.is_empty() {
            return Err(Invalid(format!("writer `{text}` names no model")));
        }
        let o: WriterOptions = crate::options::text::parse("writer option", opts)?;
        let role = match &o.role {
            None => None,
            Some(r) => Some(prompts::specialisation(r).ok_or_else(|| {
                let names: Vec<&str> = prompts::SPECIALISATIONS.iter().map(|s| s.id).collect();
                format!("unknown role `{r}` ({})", names.join(", "))
            })?),
        };
        if let Some(t) = o.temperature.filter(|t| !(t.is_finite() && *t >= 0.0)) {
            return Err(Invalid(format!("`t` must be a number ≥ 0, got `{t}`")));
        }
        if o.id.as_deref() == Some("") {
            return Err("`id` must not be empty".into());
        }
        Ok(WriterSpec {
            model: model.to_owned(),
            id: o.id,
            role,
            temperature: o.temperature.map(|t| t as f32),
            seed: o.seed,
        })
    }

    /// The writer on `model`.
    pub fn build(&self, model: Arc<dyn ChatModel>) -> ReferenceWriter {
        let mut w = match self.role {
            Some(role) => ReferenceWriter::specialised(role, model),
            None => ReferenceWriter::generalist(model),
        };
        if let Some(id) = &self.id {
            w.id.clone_from(id);
        }
        w.temperature = self.temperature;
        w.seed = self.seed;
        w
    }
}

/// Checks that the ids of `pool` are unique.
///
/// # Errors
/// A message naming the first id used twice (give the writers `id=` to tell them apart).
pub fn check_pool(pool: &[ReferenceWriter]) -> Result<(), Invalid> {
    for (i, w) in pool.iter().enumerate() {
        if pool[..i].iter().any(|o| o.id == w.id) {
            return Err(Invalid(format!(
                "reference writer id {:?} is used twice (give one `id=…`)",
                w.id
            )));
        }
    }
    Ok(())
}

pub use super::choose::VOTE;
pub use crate::options::{Aggregate, Selector};

/// How many references, chosen how.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReferenceConfig {
    /// References per query (top-k among the writers), at least 1; a pool this size or smaller
    /// is used whole, without selection.
    pub k: usize,
    /// How the k writers are chosen from a larger pool.
    #[serde(default)]
    pub selector: Selector,
    /// How several references become guidance (left out of records at its default).
    #[serde(default, skip_serializing_if = "Aggregate::is_synthesis")]
    pub aggregate: Aggregate,
    /// Draw the references adaptively until their vote is settled with this confidence, `k`
    /// being the most ([`settled`]); `None`: all `k` at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<f64>,
}

impl Default for ReferenceConfig {
    fn default() -> Self {
        Self {
            k: 1,
            selector: Selector::default(),
            aggregate: Aggregate::default(),
            adaptive: None,
        }
    }
}

/// The references of one query: the selection among the writers (when the pool was larger
/// than k) and one [`StepKind::Reference`] step per selected writer, in pool order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct References {
    /// Top-k selection among the writers, when it ran.
    pub selection: Option<Selection>,
    /// The reference calls (failed ones recorded with their error).
    pub steps: Vec<Step>,
    /// Served from a [`ReferenceStore`]: written for an earlier request asking the same
    /// question; the steps keep their texts but made no call for this one (no messages, no
    /// tokens).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stored: bool,
    /// Drawn adaptively: how settled the vote was when the drawing stopped ([`settled`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

impl References {
    /// The texts of the references that were written.
    pub fn texts(&self) -> Vec<&str> {
        self.steps.iter().filter_map(Step::text).collect()
    }

    /// Every step: the selection's, then the references.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.selection.iter().map(|s| &s.step).chain(&self.steps)
    }
}

/// Words that say nothing of a query's subject (left out of keyword matching).
const STOP_WORDS: [&str; 24] = [
    "the", "and", "for", "are", "was", "were", "with", "that", "this", "what", "which", "who",
    "has", "have", "had", "from", "she", "her", "his", "they", "them", "their", "does", "did",
];

fn words(text: &str) -> BTreeSet<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 3 && !STOP_WORDS.contains(w))
        .map(str::to_owned)
        .collect()
}

/// The `k` descriptions that share the most distinct words (3 letters or more, stop words
/// left out) with `query`; a query with a digit also matches a description that mentions
/// `numbers`. Ties go to the earlier description. Returns 0-based indices in ascending order.
pub fn select_by_keywords(query: &str, descriptions: &[&str], k: usize) -> Vec<usize> {
    let q = words(query);
    let has_digit = query.chars().any(|c| c.is_ascii_digit());
    let mut scored: Vec<(usize, usize)> = descriptions
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let dw = words(d);
            let score =
                q.intersection(&dw).count() + usize::from(has_digit && dw.contains("numbers"));
            (i, score)
        })
        .collect();
    scored.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut chosen: Vec<usize> = scored.into_iter().take(k).map(|(i, _)| i).collect();
    chosen.sort_unstable();
    chosen
}

/// Selects `config.k` writers of `pool` for `query` and has each write its reference,
/// concurrently — or, with `config.adaptive`, in pool order in turns: first as many as could
/// settle the vote by agreeing, then one at a time until the vote of their final answers is
/// [`settled`] with that confidence or all `k` have written (`References::confidence` keeps
/// how settled it was). An empty pool means one generalist writer: `server.model` itself.
/// Selection by the server model runs on `server.model` with `server.params`, selection by
/// embedding on `server.embedder`; an unusable selection falls back to the whole pool
/// (recorded). A writer that fails is recorded with its error.
pub async fn write_references(
    query: &Query,
    pool: &[ReferenceWriter],
    config: &ReferenceConfig,
    server: ServerCall<'_>,
    observer: Option<StepObserver<'_>>,
) -> References {
    let ServerCall {
        model: server,
        params,
        embedder,
    } = server;
    if pool.is_empty() {
        let step = call(
            StepKind::Reference,
            1,
            Some(server.name()),
            server,
            prompts::reference(query, None),
            params,
            observer,
        )
        .await;
        return References {
            selection: None,
            steps: vec![step],
            stored: false,
            confidence: None,
        };
    }
    let mut chosen: Vec<&ReferenceWriter> = pool.iter().collect();
    let mut selection = None;
    if config.k < pool.len() {
        let profiles: Vec<CandidateProfile<'_>> = pool
            .iter()
            .map(|w| CandidateProfile {
                id: &w.id,
                description: &w.description,
            })
            .collect();
        let s = match config.selector {
            Selector::Model => {
                select(
                    &query.server_text(),
                    &profiles,
                    config.k,
                    server,
                    params,
                    observer,
                )
                .await
            }
            Selector::Embedding => {
                select_by_embedding(
                    &query.server_text(),
                    &profiles,
                    config.k,
                    embedder,
                    observer,
                )
                .await
            }
            Selector::Keywords => {
                let descriptions: Vec<&str> = profiles.iter().map(|p| p.description).collect();
                let idx = select_by_keywords(&query.server_text(), &descriptions, config.k);
                let ids: Vec<String> = idx.iter().map(|&i| pool[i].id.clone()).collect();
                Selection {
                    step: no_call_step(
                        StepKind::Selection,
                        0,
                        &Selector::Keywords.name(),
                        Ok(ids.join(", ")),
                        observer,
                    ),
                    chosen: ids,
                    fallback_reason: None,
                }
            }
        };
        chosen = pool.iter().filter(|w| s.chosen.contains(&w.id)).collect();
        selection = Some(s);
    }
    let Some(wanted) = config.adaptive else {
        let steps = draw(&chosen, query, params, observer).await;
        return References {
            selection,
            steps,
            stored: false,
            confidence: None,
        };
    };
    // Adaptive: first as many as could settle the vote by agreeing, then one at a time.
    let first = (1..=chosen.len())
        .find(|&n| settled(n, 0) >= wanted)
        .unwrap_or(chosen.len());
    let mut steps = draw(&chosen[..first], query, params, observer).await;
    let asked = query.server_text();
    let mut confidence = vote_settled(&asked, &steps);
    while confidence < wanted && steps.len() < chosen.len() {
        steps.extend(draw(&chosen[steps.len()..=steps.len()], query, params, observer).await);
        confidence = vote_settled(&asked, &steps);
    }
    References {
        selection,
        steps,
        stored: false,
        confidence: Some(confidence),
    }
}

/// The references of `writers` for `query`, written concurrently.
async fn draw(
    writers: &[&ReferenceWriter],
    query: &Query,
    params: &SamplingParams,
    observer: Option<StepObserver<'_>>,
) -> Vec<Step> {
    join_all(writers.iter().map(|w| async move {
        call(
            StepKind::Reference,
            1,
            Some(&w.id),
            w.model.as_ref(),
            prompts::reference(query, w.system.as_deref()),
            &w.params(params),
            observer,
        )
        .await
    }))
    .await
}

/// How settled a vote is: the probability, under a uniform prior, that the answer with
/// `leader` votes is truly more frequent than the one with `runner_up` votes —
/// P(p > 1/2) for p ~ Beta(leader + 1, runner_up + 1), Adaptive-Consistency's Beta stopping
/// criterion (Aggarwal et al. 2023, §2.2). For integer parameters it is a binomial tail,
/// P(Binomial(leader + runner_up + 1, 1/2) ≤ leader). Two agreeing answers give 0.875, three
/// 0.9375, four 0.969; 3 against 1 gives 0.8125.
pub fn settled(leader: usize, runner_up: usize) -> f64 {
    let n = leader + runner_up + 1;
    // Σ_{j ≤ leader} C(n, j) / 2^n, term by term in floating point (n ≤ 17 here).
    let mut term = 0.5f64.powi(i32::try_from(n).unwrap_or(i32::MAX));
    let mut sum = term;
    for j in 0..leader {
        term *= (n - j) as f64 / (j + 1) as f64;
        sum += term;
    }
    sum.min(1.0)
}

/// [`settled`] for the final answers of the references written so far to `query`
/// ([`crate::answer::extract_for`]; an answer that cannot be extracted counts for none).
fn vote_settled(query: &str, steps: &[Step]) -> f64 {
    let texts: Vec<&str> = steps.iter().filter_map(Step::text).collect();
    let mut counts: Vec<usize> = crate::answer::tally_for(query, &texts)
        .map(|t| t.counts.into_values().collect())
        .unwrap_or_default();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    settled(
        counts.first().copied().unwrap_or(0),
        counts.get(1).copied().unwrap_or(0),
    )
}

/// A server model and the sampling of its calls, and the server's embedding model.
#[derive(Clone, Copy)]
pub struct ServerCall<'a> {
    /// The model.
    pub model: &'a dyn ChatModel,
    /// Its sampling.
    pub params: &'a SamplingParams,
    /// The embedding model of [`Selector::Embedding`] (`None`: not loaded; that selection
    /// falls back to every writer, recorded).
    pub embedder: Option<&'a dyn EmbeddingModel>,
}

/// The guidance made from `references` (and `client_answers`, quoted as data, when given):
/// with one reference and no client answer, the reference itself (a step without a model
/// call, model `reference`); otherwise one call to `server` with
/// [`prompts::reference_synthesis`]. With no reference written, a failed step saying so.
pub async fn synthesise(
    query: &Query,
    references: &References,
    client_answers: &[&str],
    aggregate: Aggregate,
    server: ServerCall<'_>,
    round: u32,
    observer: Option<StepObserver<'_>>,
) -> Step {
    let texts = references.texts();
    if client_answers.is_empty() && texts.len() > 1 {
        match aggregate {
            Aggregate::Vote => {
                let chosen = voted(&query.server_text(), &references.steps);
                return no_call_step(StepKind::Guidance, round, VOTE, Ok(chosen), observer);
            }
            Aggregate::Select => {
                return selected(query, &texts, server.model, server.params, round, observer).await
            }
            Aggregate::Synthesis => {}
        }
    }
    match (texts.as_slice(), client_answers.is_empty()) {
        ([], _) => no_call_step(
            StepKind::Guidance,
            round,
            "reference",
            // The writers' common failure keeps its meaning (all overloaded: 503).
            Err(
                ModelError::common(references.steps.iter().filter_map(Step::error)).unwrap_or_else(
                    || {
                        ModelError::Inference(format!(
                            "no reference to synthesise: all {} reference writers failed",
                            references.steps.len()
                        ))
                    },
                ),
            ),
            observer,
        ),
        ([only], true) => no_call_step(
            StepKind::Guidance,
            round,
            "reference",
            Ok((*only).to_owned()),
            observer,
        ),
        (texts, _) => {
            call(
                StepKind::Guidance,
                round,
                None,
                server.model,
                prompts::reference_synthesis(query, texts, client_answers),
                server.params,
                observer,
            )
            .await
        }
    }
}

/// Round 1's server-side work in the reference modes, made from server-side inputs only (the
/// question, the writers, the aggregator): the references and their synthesis. It is the same
/// for every client asking the question, so a [`ReferenceStore`] may keep it for the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedGuidance {
    /// The references.
    pub references: References,
    /// Their synthesis (round 1's guidance).
    pub guidance: Step,
}

impl SharedGuidance {
    /// The same work served again: the texts are kept, while the calls (messages, tokens,
    /// timings) belong to the request that made them; `references.stored` is set.
    fn replayed(mut self) -> Self {
        let replay = |step: &mut Step| {
            step.messages.clear();
            step.sampling = None;
            step.wall_ms = 0.0;
            step.shared = true;
            if let StepOutcome::Ok { completion } = &mut step.outcome {
                *completion = Completion::text_only(std::mem::take(&mut completion.text));
            }
        };
        if let Some(sel) = &mut self.references.selection {
            replay(&mut sel.step);
        }
        self.references.steps.iter_mut().for_each(replay);
        replay(&mut self.guidance);
        self.references.stored = true;
        self
    }
}

/// Where a server keeps [`SharedGuidance`] between requests, keyed by (question, scope) (see
/// [`scope`]); the server crate's implementations are SQLite with a TTL (one server) and
/// Redis (replicas). Implementations never fail a request: a store that cannot read or write
/// logs it and behaves as empty.
#[async_trait]
pub trait ReferenceStore: Send + Sync {
    /// Waits for the single-flight gate of (`query`, `scope`) and holds it while the returned
    /// guard lives, so that concurrent askers of one question wait for the first's answer.
    async fn lock(&self, query: &str, scope: &str) -> Box<dyn Any + Send>;
    /// The value stored for (`query`, `scope`), if fresh.
    async fn get(&self, query: &str, scope: &str) -> Option<String>;
    /// Stores `value` for (`query`, `scope`).
    async fn put(&self, query: &str, scope: &str, value: &str);
}

/// What shared references depend on besides the question: the aggregator, the writers'
/// signatures ([`ReferenceWriter::signature`]), the number of references and the selector, and
/// the server sampling (token limit, temperature, top-p, seed). Two requests with equal scopes
/// and questions get the same [`SharedGuidance`].
pub fn scope(
    aggregator: &str,
    writers: &[ReferenceWriter],
    config: &ReferenceConfig,
    params: &SamplingParams,
) -> String {
    let sigs: Vec<String> = writers.iter().map(ReferenceWriter::signature).collect();
    // The default aggregation adds nothing, so that keys stored before it existed still match.
    let mut aggregate = match config.aggregate {
        Aggregate::Synthesis => String::new(),
        other => format!("\u{1f}aggregate={}", other.name()),
    };
    if let Some(c) = config.adaptive {
        aggregate.push_str(&format!("\u{1f}adaptive={c}"));
    }
    format!(
        "reference\u{1f}{aggregator}\u{1f}k={}\u{1f}{}\u{1f}max={}\u{1f}t={}\u{1f}p={}\u{1f}seed={}\u{1f}{}{aggregate}",
        config.k,
        config.selector.name(),
        params.max_tokens,
        params.temperature,
        params.top_p,
        params.seed,
        sigs.join("\u{1e}")
    )
}

/// The references of `pool` for `query` and their synthesis by `server` (round 1, no client
/// text): with a `store`, taken from it when an earlier request stored them (returned replayed,
/// `references.stored` set) and written once otherwise — concurrent askers wait for the first
/// (single flight) — and stored when the synthesis succeeded.
pub async fn shared_guidance(
    query: &Query,
    pool: &[ReferenceWriter],
    config: &ReferenceConfig,
    server: ServerCall<'_>,
    store: Option<&dyn ReferenceStore>,
    observer: Option<StepObserver<'_>>,
) -> SharedGuidance {
    let write = || async {
        let references = write_references(query, pool, config, server, observer).await;
        let guidance = synthesise(
            query,
            &references,
            &[],
            config.aggregate,
            server,
            1,
            observer,
        )
        .await;
        SharedGuidance {
            references,
            guidance,
        }
    };
    let Some(store) = store else {
        return write().await;
    };
    let scope = scope(server.model.name(), pool, config, server.params);
    // The key holds the conversation around the query too (its transcript).
    let key = query.server_text();
    let _flight = store.lock(&key, &scope).await;
    let stored = store
        .get(&key, &scope)
        .await
        .and_then(|v| serde_json::from_str::<SharedGuidance>(&v).ok());
    if let Some(shared) = stored {
        let shared = shared.replayed();
        for step in shared.references.steps.iter().chain([&shared.guidance]) {
            crate::step::announce(observer, step);
        }
        return shared;
    }
    let shared = write().await;
    if shared.guidance.text().is_some() {
        if let Ok(value) = serde_json::to_string(&shared) {
            store.put(&key, &scope, &value).await;
        }
    }
    shared
}

/// The server's review of one client's `answer` against the shared `synthesis`
/// ([`prompts::reference_critique`]): a guidance step for `collaborator` (private to it).
pub async fn critique(
    query: &Query,
    synthesis: &str,
    answer: &str,
    collaborator: &str,
    server: ServerCall<'_>,
    round: u32,
    observer: Option<StepObserver<'_>>,
) -> Step {
    call(
        StepKind::Guidance,
        round,
        Some(collaborator),
        server.model,
        prompts::reference_critique(&query.server_text(), synthesis, answer),
        server.params,
        observer,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompts::SPECIALISATIONS;

    #[test]
    fn keyword_selection_matches_the_query_subject() {
        let d: Vec<&str> = SPECIALISATIONS.iter().map(|s| s.description).collect();
        let gsm = "Janet's ducks lay 16 eggs per day. How much in dollars does she make?";
        assert_eq!(select_by_keywords(gsm, &d, 1), vec![0], "math");
        let code = "Write a python function that reverses a list.";
        assert_eq!(select_by_keywords(code, &d, 1), vec![1], "code");
        let poem = "Write a short poem about the sea in the style of a story.";
        assert_eq!(select_by_keywords(poem, &d, 1), vec![3], "creative");
        // No overlap at all: the first k, in order.
        assert_eq!(select_by_keywords("zzz", &d, 2), vec![0, 1]);
        assert_eq!(select_by_keywords(gsm, &d, 9).len(), 4);
    }

    #[test]
    fn writer_specs_parse() {
        let w = WriterSpec::parse("big:role=math,t=0.7,seed=3").unwrap();
        assert_eq!(w.model, "big");
        assert_eq!(w.role.map(|r| r.id), Some("math"));
        assert_eq!((w.temperature, w.seed), (Some(0.7), Some(3)));
        assert_eq!(WriterSpec::parse("big").unwrap().role, None);
        // An id that looks like a number is still an id.
        assert_eq!(
            WriterSpec::parse("big:id=7").unwrap().id.as_deref(),
            Some("7")
        );
        for bad in [
            "",
            ":role=math",
            "big:role=poet",
            "big:t=-1",
            "big:x=1",
            "big:seed",
            "big:seed=-1",
            "big:id=",
        ] {
            assert!(WriterSpec::parse(bad).is_err(), "{bad}");
        }
    }
}

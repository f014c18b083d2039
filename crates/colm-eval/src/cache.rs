//! Reuse of model calls across the strategies of a run, and across its sessions.
//!
//! Several strategies send a model the very same request: the `local` draft is also the first
//! step of `colm` and of every `cascade`, a cascade's escalation to the server is the `server`
//! strategy's request, and `colm:refs=8` draws the references of `colm:refs=3` and five more
//! (writer `i` samples with seed `i`). A request — the model, the exact messages and every
//! sampling parameter, the seed included — is answered the same way each time (greedy decoding,
//! or a draw from the engine's sampler seeded per request), so a run answers each distinct
//! request once and replays it for the other strategies, as evaluation harnesses do with their
//! request caches (lm-evaluation-harness `--use_cache`, HELM). The strategies run the same
//! code either way; only the model below them is wrapped ([`CachedModel`]).
//!
//! - **Key**: the model's name, the exact messages and every sampling parameter.
//! - **Warm start**: [`CallCache::warm`] indexes the calls already in a run folder's records —
//!   the one-call transcripts (`local`, `server`) and every step that kept its sampling (a
//!   CoLM round's drafts, references and refinements) — so a later session's strategies reuse
//!   them too.
//! - **Latency**: a replayed call counts at the wall time it took when it ran (queueing
//!   included), added to the item's wall time through [`crate::replay::replay_scope`]; [`TurnOutcome`]
//!   reports how many calls were replayed.
//!
//! Batched decoding is not bit-reproducible run to run (concurrency > 1, or several references
//! decoded together), so a replayed answer is one the model gave to that request in this run,
//! not necessarily the one a fresh call would give.
//!
//! [`TurnOutcome`]: crate::strategy::TurnOutcome

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use colm_core::{ChatMessage, ChatModel, Completion, ModelError, SamplingParams};

use crate::replay::REPLAYED;
use crate::runner::{Record, RunSettings};

/// A cached answer and the wall time its call took, ms.
#[derive(Clone)]
struct Entry {
    completion: Completion,
    wall_ms: f64,
}

/// The calls answered so far in a run, shared by every [`CachedModel`] of the run.
#[derive(Default)]
pub struct CallCache {
    entries: Mutex<HashMap<String, Entry>>,
    /// Requests running now, by key: a second asking waits on the lock.
    running: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    hits: AtomicU64,
}

/// The cache key of a call: the whole request.
fn key(model: &str, messages: &[ChatMessage], params: &SamplingParams) -> Option<String> {
    serde_json::to_string(&(model, messages, params)).ok()
}

/// The calls of a record's transcript: one-call transcripts (`{model, messages, completion}`,
/// made with the run's sampling `run`) and, anywhere in a strategy's transcript, each
/// successful [`colm_core::colm::Step`] that kept its sampling and messages, with its wall
/// time (ms; `None` for a one-call transcript, whose turn's wall time is the call's).
fn calls_in(
    value: &serde_json::Value,
    run: &SamplingParams,
    out: &mut Vec<(String, Completion, Option<f64>)>,
) {
    use serde_json::Value;
    let parse = |v: &Value| -> Option<(String, Vec<ChatMessage>)> {
        let model = v.get("model")?.as_str()?.to_owned();
        let messages: Vec<ChatMessage> = serde_json::from_value(v.get("messages")?.clone()).ok()?;
        (!messages.is_empty()).then_some((model, messages))
    };
    match value {
        Value::Object(map) => {
            let one_call = map.get("completion").and_then(|c| {
                let (model, messages) = parse(value)?;
                let completion: Completion = serde_json::from_value(c.clone()).ok()?;
                Some((key(&model, &messages, run)?, completion, None))
            });
            let step = map.get("sampling").and_then(|s| {
                let sampling: SamplingParams = serde_json::from_value(s.clone()).ok()?;
                let (model, messages) = parse(value)?;
                let completion = map.get("outcome")?.get("completion")?;
                let completion: Completion = serde_json::from_value(completion.clone()).ok()?;
                let wall_ms = map.get("wall_ms").and_then(Value::as_f64);
                Some((key(&model, &messages, &sampling)?, completion, wall_ms))
            });
            match one_call.or(step) {
                Some(call) => out.push(call),
                None => map.values().for_each(|v| calls_in(v, run, out)),
            }
        }
        Value::Array(items) => items.iter().for_each(|v| calls_in(v, run, out)),
        _ => {}
    }
}

impl CallCache {
    /// An empty cache.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Indexes the calls in the transcripts of `records`, which ran with `settings.params`
    /// (see [`calls_in`]). Returns how many calls were added.
    pub fn warm(&self, records: &[Record], settings: &RunSettings) -> usize {
        let Ok(mut entries) = self.entries.lock() else {
            return 0;
        };
        let mut added = 0;
        for turn in records.iter().flat_map(|r| &r.turns) {
            let mut calls = Vec::new();
            calls_in(&turn.transcript, &settings.params, &mut calls);
            for (k, completion, wall_ms) in calls {
                let wall_ms = wall_ms.unwrap_or(turn.wall_ms);
                if entries
                    .insert(
                        k,
                        Entry {
                            completion,
                            wall_ms,
                        },
                    )
                    .is_none()
                {
                    added += 1;
                }
            }
        }
        added
    }

    /// Calls answered from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    fn get(&self, key: &str) -> Option<Entry> {
        self.entries.lock().ok()?.get(key).cloned()
    }

    fn put(&self, key: String, entry: Entry) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.entry(key).or_insert(entry);
        }
    }

    /// The lock of a request: held by its first asking while it runs.
    fn running(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(running.entry(key.to_owned()).or_default())
    }

    fn finished(&self, key: &str) {
        if let Ok(mut running) = self.running.lock() {
            running.remove(key);
        }
    }

    /// The cached answer of `key`, counted as a replay that adds `wall_ms` to its item.
    fn replay(&self, key: &str, charge_time: bool) -> Option<Completion> {
        let hit = self.get(key)?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        // Outside a replay scope there is no item to charge the time to.
        let _ = REPLAYED.try_with(|r| {
            let mut v = r.get();
            v.calls += 1;
            if charge_time {
                v.wall_ms += hit.wall_ms;
            }
            r.set(v);
        });
        Some(hit.completion)
    }
}

/// A [`ChatModel`] that answers repeated requests from a [`CallCache`].
pub struct CachedModel {
    inner: Arc<dyn ChatModel>,
    cache: Arc<CallCache>,
}

impl CachedModel {
    /// Wraps `inner` over `cache`.
    pub fn new(inner: Arc<dyn ChatModel>, cache: Arc<CallCache>) -> Self {
        Self { inner, cache }
    }
}

#[async_trait]
impl ChatModel for CachedModel {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn chat(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Completion, ModelError> {
        let Some(k) = key(self.inner.name(), messages, params) else {
            return self.inner.chat(messages, params).await;
        };
        if let Some(hit) = self.cache.replay(&k, true) {
            return Ok(hit);
        }
        let lock = self.cache.running(&k);
        let _turn = lock.lock().await;
        // Asked while it ran: its answer is here now (a failed first asking left none).
        if let Some(hit) = self.cache.replay(&k, false) {
            return Ok(hit);
        }
        let start = Instant::now();
        let outcome = self.inner.chat(messages, params).await;
        if let Ok(completion) = &outcome {
            self.cache.put(
                k.clone(),
                Entry {
                    completion: completion.clone(),
                    wall_ms: start.elapsed().as_secs_f64() * 1000.0,
                },
            );
        }
        self.cache.finished(&k);
        outcome
    }

    fn queue_depth(&self) -> Option<usize> {
        self.inner.queue_depth()
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.inner.count_tokens(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::replay_scope;

    /// Answers with the number of calls so far, or fails when `fail` is set.
    struct Counting {
        calls: std::sync::atomic::AtomicU32,
        fail: bool,
    }

    impl Counting {
        fn new(fail: bool) -> Arc<Self> {
            Arc::new(Self {
                calls: Default::default(),
                fail,
            })
        }
        fn calls(&self) -> u32 {
            self.calls.load(Ordering::Relaxed)
        }
    }

    #[async_trait]
    impl ChatModel for Counting {
        fn name(&self) -> &str {
            "m"
        }
        async fn chat(
            &self,
            _messages: &[ChatMessage],
            _params: &SamplingParams,
        ) -> Result<Completion, ModelError> {
            let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
            // Long enough for a second asking to arrive while this one runs.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if self.fail {
                return Err(ModelError::Inference("down".into()));
            }
            Ok(Completion::text_only(format!("answer {n}")))
        }
    }

    #[tokio::test]
    async fn greedy_calls_are_answered_once_and_replayed_with_their_time() {
        let model = Counting::new(false);
        let cache = CallCache::new();
        let cached = CachedModel::new(model.clone(), cache.clone());
        let greedy = SamplingParams::default();
        let msgs = vec![ChatMessage::user("q")];
        let (first, r1) = replay_scope(cached.chat(&msgs, &greedy)).await;
        let (second, r2) = replay_scope(cached.chat(&msgs, &greedy)).await;
        assert_eq!(first.unwrap().text, "answer 1");
        assert_eq!(second.unwrap().text, "answer 1");
        assert_eq!(model.calls(), 1);
        assert_eq!(r1.calls, 0);
        assert_eq!(r2.calls, 1);
        assert_eq!(cache.hits(), 1);

        // Other messages or other parameters (another seed too): the model is called.
        let other = vec![ChatMessage::user("q"), ChatMessage::user("more")];
        cached.chat(&other, &greedy).await.unwrap();
        let longer = SamplingParams {
            max_tokens: 7,
            ..SamplingParams::default()
        };
        cached.chat(&msgs, &longer).await.unwrap();
        let sampled = SamplingParams {
            temperature: 0.7,
            ..SamplingParams::default()
        };
        let a = cached.chat(&msgs, &sampled).await.unwrap();
        let b = cached.chat(&msgs, &sampled).await.unwrap();
        assert_eq!(a.text, b.text, "the same seeded request is replayed");
        let reseeded = SamplingParams {
            seed: 1,
            ..sampled.clone()
        };
        let c = cached.chat(&msgs, &reseeded).await.unwrap();
        assert_ne!(a.text, c.text);
        assert_eq!(model.calls(), 5);
    }

    /// A CoLM transcript's steps that kept their sampling are calls a later session replays;
    /// a step served from the reference store (no messages) and a step without a call are not.
    #[test]
    fn the_steps_of_a_round_transcript_are_calls_to_replay() {
        use colm_core::step::{no_call_step, StepKind};
        let sampled = SamplingParams {
            temperature: 0.7,
            seed: 2,
            ..SamplingParams::default()
        };
        let msgs = vec![ChatMessage::user("q")];
        let mut written = no_call_step(StepKind::Reference, 1, "big", Ok("ref 2".into()), None);
        written.messages = msgs.clone();
        written.sampling = Some(sampled.clone());
        written.wall_ms = 1234.0;
        let mut stored = written.clone();
        stored.messages.clear();
        let vote = no_call_step(StepKind::Guidance, 1, "vote", Ok("ref 2".into()), None);
        let transcript = serde_json::json!({
            "references": {"steps": [written, stored]},
            "rounds": [{"guidance": vote}],
        });
        let mut calls = Vec::new();
        calls_in(&transcript, &SamplingParams::default(), &mut calls);
        assert_eq!(calls.len(), 1);
        let (k, completion, wall_ms) = &calls[0];
        assert_eq!(Some(k.clone()), key("big", &msgs, &sampled));
        assert_eq!(
            (completion.text.as_str(), *wall_ms),
            ("ref 2", Some(1234.0))
        );

        // A one-call transcript is a call made with the run's sampling.
        let one = serde_json::json!({"model": "small", "messages": msgs, "completion": completion});
        let mut calls = Vec::new();
        calls_in(&one, &SamplingParams::default(), &mut calls);
        assert_eq!(calls.len(), 1);
        assert_eq!(
            Some(calls[0].0.clone()),
            key("small", &msgs, &SamplingParams::default())
        );
    }

    #[tokio::test]
    async fn failed_calls_are_not_cached() {
        let model = Counting::new(true);
        let cached = CachedModel::new(model.clone(), CallCache::new());
        let msgs = vec![ChatMessage::user("q")];
        assert!(cached
            .chat(&msgs, &SamplingParams::default())
            .await
            .is_err());
        assert!(cached
            .chat(&msgs, &SamplingParams::default())
            .await
            .is_err());
        assert_eq!(model.calls(), 2);
    }

    #[tokio::test]
    async fn a_request_asked_again_while_it_runs_is_answered_once() {
        let model = Counting::new(false);
        let cached = CachedModel::new(model.clone(), CallCache::new());
        let msgs = vec![ChatMessage::user("q")];
        let greedy = SamplingParams::default();
        let ((a, ra), (b, rb)) = tokio::join!(
            replay_scope(cached.chat(&msgs, &greedy)),
            replay_scope(cached.chat(&msgs, &greedy))
        );
        assert_eq!(a.unwrap().text, "answer 1");
        assert_eq!(b.unwrap().text, "answer 1");
        assert_eq!(model.calls(), 1);
        // The second asking is a replay that adds no time: its item waited.
        assert_eq!(ra.calls + rb.calls, 1);
        assert_eq!(ra.wall_ms + rb.wall_ms, 0.0);
        // A failed first asking leaves the second to run on its own.
        let failing = Counting::new(true);
        let cached = CachedModel::new(failing.clone(), CallCache::new());
        let (a, b) = tokio::join!(cached.chat(&msgs, &greedy), cached.chat(&msgs, &greedy));
        assert!(a.is_err() && b.is_err());
        assert_eq!(failing.calls(), 2);
    }
}

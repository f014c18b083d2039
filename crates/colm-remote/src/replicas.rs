//! Several replicas of one upstream model, served under one name (the remote layer).
//!
//! `colm serve --upstream ID=URL` given twice or more with the same `ID` hosts one model whose
//! chats go to one replica each:
//!
//! - **Balancing**: least outstanding requests — the replica with the fewest chats in flight
//!   from this server takes the next one (ties go round robin), as load balancers do for
//!   requests of very different lengths (Envoy's and NGINX's `least_request` / `least_conn`);
//!   a replica whose `max_concurrent` slots are all taken only when every one is full (the
//!   chat then waits for a slot within its deadline).
//! - **Failover**: a replica that cannot be reached, misses its deadline or answers 5xx (or an
//!   unreadable body) is left for the next replica, each tried at most once per chat, within
//!   the chat's deadline; a 4xx is the caller's (a 400 stays a 400, a 429 stays a 429 with its
//!   `Retry-After`) and is returned at once.
//! - **Cool-down**: a replica that failed is passed over for [`Replicas::COOLDOWN`], doubled
//!   for each further failure in a row up to [`Replicas::MAX_COOLDOWN`]; when it ends, the
//!   next chat that picks it probes it back (a success clears its record). When every replica
//!   left untried is cooling down, the one whose cool-down ends first is tried anyway: a chat
//!   is never refused while a replica may still answer.
//!
//! With one replica the model is a plain [`RemoteChat`], which retries transient failures with
//! a backoff instead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use colm_core::{ChatMessage, ChatModel, Completion, ModelError, SamplingParams, StreamEvent};
use futures::channel::mpsc::UnboundedSender;

use crate::{RemoteChat, Upstream, UpstreamSpecError};

/// One upstream model on several replicas ([module docs](self)).
pub struct Replicas {
    name: String,
    vision: bool,
    deadline: Duration,
    replicas: Vec<Replica>,
    /// Round-robin start among equally loaded replicas.
    next: AtomicUsize,
}

struct Replica {
    chat: RemoteChat,
    base_url: String,
    /// Chats in flight on it from this server.
    outstanding: AtomicUsize,
    health: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    /// Failures in a row.
    failures: u32,
    /// Passed over until then.
    cooled_until: Option<Instant>,
}

/// What a replica is asked.
#[derive(Clone, Copy)]
enum Work<'a> {
    /// A chat.
    Chat(&'a [ChatMessage]),
    /// A text completion of a raw prompt.
    Text(&'a str),
}

/// Counts a chat in flight on a replica for as long as it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Self(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Replicas {
    /// The first cool-down of a failed replica.
    pub const COOLDOWN: Duration = Duration::from_secs(2);
    /// The longest cool-down.
    pub const MAX_COOLDOWN: Duration = Duration::from_secs(60);

    /// One model over `upstreams`, the replicas of one id: the first one's name, `vision` and
    /// deadline stand for all.
    ///
    /// # Errors
    /// A message when `upstreams` is empty, names differ, or an HTTP client cannot be built.
    pub fn new(upstreams: &[Upstream]) -> Result<Self, UpstreamSpecError> {
        Self::build(upstreams).map_err(UpstreamSpecError)
    }

    fn build(upstreams: &[Upstream]) -> Result<Self, String> {
        let first = upstreams.first().ok_or("no replica given")?;
        if let Some(u) = upstreams.iter().find(|u| u.name != first.name) {
            return Err(format!(
                "replicas of {:?} and {:?} in one model",
                first.name, u.name
            ));
        }
        if let Some(u) = upstreams.iter().find(|u| u.vision != first.vision) {
            return Err(format!(
                "replica {} of {:?} differs from {} in `vision`",
                u.base_url, first.name, first.base_url
            ));
        }
        let replicas = upstreams
            .iter()
            .map(|u| {
                Ok(Replica {
                    chat: RemoteChat::upstream(u).map_err(|e| format!("{}: {e}", u.base_url))?,
                    base_url: u.base_url.clone(),
                    outstanding: AtomicUsize::new(0),
                    health: Mutex::default(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            name: first.name.clone(),
            vision: first.vision,
            deadline: first.deadline,
            replicas,
            next: AtomicUsize::new(0),
        })
    }

    /// The replica for the next attempt among those not `tried`: the least loaded of those
    /// not cooling down (one with a free slot of its `max_concurrent` before one without),
    /// else the one whose cool-down ends first; `None` when all were tried.
    fn pick(&self, tried: &[bool]) -> Option<usize> {
        let now = Instant::now();
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let untried = (0..n).map(|k| (start + k) % n).filter(|&i| !tried[i]);
        let cooled = |i: usize| {
            let h = self.replicas[i]
                .health
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            h.cooled_until.filter(|&t| t > now)
        };
        let ready = untried
            .clone()
            .filter(|&i| cooled(i).is_none())
            .min_by_key(|&i| {
                let r = &self.replicas[i];
                (r.chat.is_full(), r.outstanding.load(Ordering::SeqCst))
            });
        ready.or_else(|| untried.min_by_key(|&i| cooled(i)))
    }

    /// Replica `i` answered: its failures are forgotten.
    fn succeeded(&self, i: usize) {
        let mut h = self.replicas[i]
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *h = Health::default();
    }

    /// Replica `i` failed: cooled down for [`Self::COOLDOWN`] × 2^(failures in a row − 1),
    /// at most [`Self::MAX_COOLDOWN`].
    fn failed(&self, i: usize) {
        let mut h = self.replicas[i]
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        h.failures = h.failures.saturating_add(1);
        let wait = Self::COOLDOWN
            .saturating_mul(1 << (h.failures - 1).min(5))
            .min(Self::MAX_COOLDOWN);
        h.cooled_until = Some(Instant::now() + wait);
    }

    /// Whether a failure is the replica's (fail over) rather than the request's.
    fn fails_over(e: &ModelError) -> bool {
        e.status() >= 500
    }
}

#[async_trait]
impl ChatModel for Replicas {
    fn name(&self) -> &str {
        &self.name
    }

    fn accepts_images(&self) -> bool {
        self.vision
    }

    fn accepts_tools(&self) -> bool {
        true
    }

    fn active_requests(&self) -> Option<usize> {
        Some(
            self.replicas
                .iter()
                .map(|r| r.outstanding.load(Ordering::SeqCst))
                .sum(),
        )
    }

    /// # Errors
    /// A 4xx of the replica that answered, as [`RemoteChat`] maps it; when every replica
    /// failed (or the deadline passed), the last failure, [`ModelError::Unavailable`] or
    /// [`ModelError::Inference`] naming the replica.
    async fn chat(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Completion, ModelError> {
        self.serve(Work::Chat(messages), params, None).await
    }

    /// Streams the answer of one replica delta by delta; fails over as [`Replicas::chat`]
    /// does while nothing was relayed (after that, a failure is the caller's error).
    ///
    /// # Errors
    /// As [`Replicas::chat`]; a stream cut after part of the answer was relayed.
    async fn chat_streaming(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        events: UnboundedSender<StreamEvent>,
    ) -> Result<Completion, ModelError> {
        self.serve(Work::Chat(messages), params, Some(&events))
            .await
    }

    fn accepts_prompts(&self) -> bool {
        true
    }

    /// `prompt` continued by one replica's `…/completions`, failed over as a chat is.
    ///
    /// # Errors
    /// As [`Replicas::chat`]; `logprobs` is refused.
    async fn complete(
        &self,
        prompt: &str,
        params: &SamplingParams,
        events: Option<UnboundedSender<StreamEvent>>,
    ) -> Result<Completion, ModelError> {
        if let Some(r) = self.replicas.first() {
            r.chat.relayable(params)?;
        }
        self.serve(Work::Text(prompt), params, events.as_ref())
            .await
    }
}

impl Replicas {
    /// A chat (or a text completion) on one replica after another ([module docs](self)),
    /// streamed to `events` when given: a failure after part of a stream was relayed is not
    /// failed over.
    async fn serve(
        &self,
        work: Work<'_>,
        params: &SamplingParams,
        events: Option<&UnboundedSender<StreamEvent>>,
    ) -> Result<Completion, ModelError> {
        let start = Instant::now();
        let mut tried = vec![false; self.replicas.len()];
        let mut last = None;
        while let Some(i) = self.pick(&tried) {
            let left = self.deadline.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            tried[i] = true;
            let replica = &self.replicas[i];
            let outcome = {
                let _in_flight = InFlight::enter(&replica.outstanding);
                match (work, events) {
                    (Work::Chat(messages), Some(tx)) => {
                        replica.chat.stream_once(messages, params, left, tx).await
                    }
                    (Work::Chat(messages), None) => {
                        (replica.chat.chat_once(messages, params, left))
                            .await
                            .map_err(|e| (e, false))
                    }
                    (Work::Text(prompt), events) => {
                        replica.chat.text_once(prompt, params, left, events).await
                    }
                }
            };
            match outcome {
                Ok(c) => {
                    self.succeeded(i);
                    return Ok(c);
                }
                Err((e, relayed)) if Self::fails_over(&e) => {
                    self.failed(i);
                    if relayed {
                        return Err(e);
                    }
                    tracing::warn!(model = %self.name, replica = %replica.base_url, error = %e,
                        "replica failed; failing over");
                    last = Some(e);
                }
                Err((e, _)) => return Err(e),
            }
        }
        Err(self.none_answered(last))
    }

    /// The error of a chat no replica answered: the last failure, else the deadline's.
    fn none_answered(&self, last: Option<ModelError>) -> ModelError {
        last.unwrap_or_else(|| ModelError::Unavailable {
            detail: format!(
                "no replica of {} answered within the deadline ({} ms)",
                self.name,
                self.deadline.as_millis()
            ),
            retry_after_s: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::responder;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"4"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

    /// A base URL where nothing listens (connection refused).
    fn dead() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    }

    fn pool(urls: &[&str]) -> Replicas {
        let ups: Vec<Upstream> = urls
            .iter()
            .map(|u| Upstream::parse(&format!("m={u},deadline_ms=5000")).unwrap())
            .collect();
        Replicas::new(&ups).unwrap()
    }

    fn count(c: &Arc<AtomicUsize>) -> usize {
        c.load(Ordering::SeqCst)
    }

    async fn ask(p: &Replicas) -> Result<Completion, ModelError> {
        p.chat(&[ChatMessage::user("2+2?")], &SamplingParams::default())
            .await
    }

    #[tokio::test]
    async fn a_dead_replica_is_failed_over_and_cooled_down() {
        let (up, answered) = responder("200 OK", "", ANSWER);
        let down = dead();
        let p = pool(&[&down, &up]);
        // The first chat starts at the dead replica, fails over to the live one.
        assert_eq!(ask(&p).await.unwrap().text, "4");
        assert_eq!(count(&answered), 1);
        // The dead one cools down: the next chats go straight to the live one.
        for _ in 0..3 {
            assert_eq!(ask(&p).await.unwrap().text, "4");
        }
        assert_eq!(count(&answered), 4);
        assert_eq!(p.active_requests(), Some(0));
        let h = p.replicas[0].health.lock().unwrap();
        assert_eq!(h.failures, 1);
        assert!(h.cooled_until.is_some_and(|t| t > Instant::now()));
    }

    #[tokio::test]
    async fn a_5xx_fails_over_and_a_4xx_is_the_callers() {
        let (broken, _) = responder(
            "500 Internal Server Error",
            "",
            r#"{"error":{"message":"CUDA error","type":"server_error","param":null,"code":null}}"#,
        );
        let (up, answered) = responder("200 OK", "", ANSWER);
        assert_eq!(ask(&pool(&[&broken, &up])).await.unwrap().text, "4");
        assert_eq!(count(&answered), 1);
        let (limited, _) = responder(
            "429 Too Many Requests",
            "retry-after: 7\r\n",
            r#"{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        );
        let (up2, answered2) = responder("200 OK", "", ANSWER);
        let e = ask(&pool(&[&limited, &up2])).await.unwrap_err();
        assert!(
            matches!(
                &e,
                ModelError::RateLimited {
                    retry_after_s: Some(7),
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(count(&answered2), 0, "a 429 is not failed over");
    }

    #[tokio::test]
    async fn when_every_replica_fails_the_last_failure_is_returned() {
        let (a, b) = (dead(), dead());
        let p = pool(&[&a, &b]);
        let e = ask(&p).await.unwrap_err();
        assert_eq!(e.status(), 503, "{e}");
        assert!(e.to_string().contains("unreachable"), "{e}");
        // Both cooling down: a chat still tries them (the first to end its cool-down first).
        let e = ask(&p).await.unwrap_err();
        assert_eq!(e.status(), 503, "{e}");
        assert_eq!(p.replicas[0].health.lock().unwrap().failures, 2);
    }

    #[test]
    fn the_least_loaded_ready_replica_is_picked_and_cool_downs_double() {
        let p = pool(&[
            "http://127.0.0.1:1",
            "http://127.0.0.1:2",
            "http://127.0.0.1:3",
        ]);
        p.replicas[0].outstanding.store(2, Ordering::SeqCst);
        p.replicas[1].outstanding.store(1, Ordering::SeqCst);
        p.replicas[2].outstanding.store(3, Ordering::SeqCst);
        assert_eq!(p.pick(&[false; 3]), Some(1));
        assert_eq!(p.pick(&[false, true, false]), Some(0));
        p.failed(0);
        assert_eq!(p.pick(&[false, true, false]), Some(2), "0 is cooling down");
        assert_eq!(
            p.pick(&[false, true, true]),
            Some(0),
            "tried anyway when alone"
        );
        assert_eq!(p.pick(&[true; 3]), None);
        let until =
            |i: usize| p.replicas[i].health.lock().unwrap().cooled_until.unwrap() - Instant::now();
        assert!(until(0) <= Replicas::COOLDOWN);
        p.failed(0);
        assert!(until(0) > Replicas::COOLDOWN && until(0) <= Replicas::COOLDOWN * 2);
        for _ in 0..10 {
            p.failed(0);
        }
        assert!(until(0) <= Replicas::MAX_COOLDOWN);
        p.succeeded(0);
        assert!(p.replicas[0].health.lock().unwrap().cooled_until.is_none());
        assert!(Replicas::new(&[]).is_err());
    }
}

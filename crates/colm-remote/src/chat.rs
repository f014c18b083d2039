//! [`RemoteChat`]: a model on a colm server or on any OpenAI-compatible endpoint (an
//! [`Upstream`]) as a [`ChatModel`], over a [`Link`] (deadline, retries, compression).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use colm_api::openai::{ChatCompletion, ChatCompletionRequest, CompletionUsage, StreamOptions};
use colm_core::{
    ChatMessage, ChatModel, Completion, ModelError, SamplingParams, StreamEvent, Timings,
};
use futures::channel::mpsc::UnboundedSender;

use crate::link::{missed, Endpoint, Failure, Link, Reply};
use crate::Upstream;

/// A remote model as a [`ChatModel`]: each chat is one `POST …/chat/completions` to the
/// endpoint, with its API key, retries of transient failures and deadline ([`Endpoint`]);
/// zstd-compressed to a colm server ([`RemoteChat::new`]: the device–cloud router
/// `colm_core::vertical::Router` uses it as its server model in `colm client --router`), plain
/// to an upstream ([`RemoteChat::upstream`]).
pub struct RemoteChat {
    pub(crate) link: Link,
    /// The id it is known by here (the remote model's name unless served under another).
    name: String,
    /// The model's name at the endpoint.
    pub(crate) model: String,
    /// Path of the chat completions route below `base_url` (the text completions route is
    /// beside it: `…/completions`).
    pub(crate) path: &'static str,
    /// Whether the remote model reads images.
    vision: bool,
    /// Slots of [`Upstream::max_concurrent`]: one per chat in flight to the endpoint.
    slots: Option<(tokio::sync::Semaphore, usize)>,
}

impl RemoteChat {
    /// The model `model` of the colm server at `endpoint`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(endpoint: Endpoint, model: impl Into<String>) -> Result<Self, reqwest::Error> {
        let model = model.into();
        Ok(Self {
            name: model.clone(),
            model,
            path: "/v1/chat/completions",
            vision: false,
            slots: None,
            link: Link::new(endpoint)?,
        })
    }

    /// The model of an upstream endpoint: requests go uncompressed, with every field of the
    /// caller's request ([`ChatCompletionRequest::for_params`]) and images as `image_url`
    /// parts.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn upstream(u: &Upstream) -> Result<Self, reqwest::Error> {
        let endpoint = Endpoint {
            api_key: u.api_key.clone(),
            deadline: u.deadline,
            compress: false,
            ..Endpoint::new(u.base_url.clone())
        };
        Ok(Self {
            name: u.name.clone(),
            model: u.model.clone(),
            path: "/chat/completions",
            vision: u.vision,
            slots: u
                .max_concurrent
                .map(|n| (tokio::sync::Semaphore::new(n), n)),
            link: Link::new(endpoint)?,
        })
    }

    /// A slot of [`Upstream::max_concurrent`] (none without a limit), waited for within
    /// `timeout`; returns it and the time left of `timeout`.
    ///
    /// # Errors
    /// [`ModelError::Unavailable`] (transient) when no slot frees within `timeout`.
    pub(crate) async fn slot(
        &self,
        timeout: Duration,
    ) -> Result<(Option<tokio::sync::SemaphorePermit<'_>>, Duration), Failure> {
        let Some((slots, n)) = &self.slots else {
            return Ok((None, timeout));
        };
        let started = Instant::now();
        match tokio::time::timeout(timeout, slots.acquire()).await {
            Ok(Ok(permit)) => Ok((Some(permit), timeout.saturating_sub(started.elapsed()))),
            _ => Err(Failure {
                transient: true,
                error: ModelError::Unavailable {
                    detail: format!(
                        "all {n} slots of {} (max_concurrent) stayed busy for {} ms",
                        self.link.endpoint().base_url,
                        timeout.as_millis()
                    ),
                    retry_after_s: None,
                },
            }),
        }
    }

    /// Whether every slot of [`Upstream::max_concurrent`] is taken (a chat would wait).
    pub(crate) fn is_full(&self) -> bool {
        self.slots
            .as_ref()
            .is_some_and(|(s, _)| s.available_permits() == 0)
    }

    /// One attempt at a chat within `timeout`, no retry (a pool of [`Replicas`] fails over
    /// instead).
    pub(crate) async fn chat_once(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        timeout: Duration,
    ) -> Result<Completion, ModelError> {
        let body = self.body(messages, params);
        self.attempt(&body, timeout).await.map_err(|f| f.error)
    }

    /// One streamed attempt within `timeout`: `stream: true` with usage, each content delta
    /// of the answer's server-sent events relayed to `events` as it arrives. A failure after a
    /// delta was relayed is not transient (the caller has part of an answer).
    async fn attempt_streaming(
        &self,
        body: &ChatCompletionRequest,
        timeout: Duration,
        events: &UnboundedSender<StreamEvent>,
    ) -> Result<Completion, Failure> {
        self.relay_stream(self.path, body, timeout, events, |choice| {
            choice["delta"]["content"].as_str()
        })
        .await
    }

    /// One streamed attempt of `body` to `path` within `timeout`: the text of each chunk's
    /// first choice (`text_of`) relayed to `events` as it arrives, the finish reason and usage
    /// read from the chunks. A failure after a delta was relayed is not transient.
    pub(crate) async fn relay_stream(
        &self,
        path: &str,
        body: &impl serde::Serialize,
        timeout: Duration,
        events: &UnboundedSender<StreamEvent>,
        text_of: impl Fn(&serde_json::Value) -> Option<&str>,
    ) -> Result<Completion, Failure> {
        let started = Instant::now();
        let (_slot, timeout) = self.slot(timeout).await?;
        let (req, mut wire) =
            self.link
                .request(reqwest::Method::POST, path, Some(body), timeout, false)?;
        let mut response = req.send().await.map_err(|e| missed(e, timeout))?;
        if !response.status().is_success() {
            return Err(Reply::read(response, path, timeout, wire).await?.failure());
        }
        let mut answer = Completion::text_only("");
        let mut relayed = false;
        let mut pending: Vec<u8> = Vec::new();
        let unreadable = |e: String| {
            Failure::fatal(ModelError::Inference(format!(
                "unreadable stream from {path}: {e}"
            )))
        };
        'stream: loop {
            let bytes = match response.chunk().await {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    let mut f = missed(e, timeout);
                    f.transient &= !relayed;
                    return Err(f);
                }
            };
            wire.bytes_received += bytes.len() as u64;
            wire.bytes_received_uncompressed += bytes.len() as u64;
            pending.extend_from_slice(&bytes);
            // Server-sent events: one `data: JSON` line per chunk, `data: [DONE]` at the end.
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = String::from_utf8(line).map_err(|e| unreadable(e.to_string()))?;
                let Some(data) = line.trim().strip_prefix("data:").map(str::trim) else {
                    continue;
                };
                if data == "[DONE]" {
                    break 'stream;
                }
                let chunk: serde_json::Value =
                    serde_json::from_str(data).map_err(|e| unreadable(e.to_string()))?;
                if let Some(e) = chunk.get("error") {
                    let message = e
                        .get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("error event");
                    return Err(Failure::fatal(ModelError::Inference(format!(
                        "the endpoint's stream failed: {message}"
                    ))));
                }
                let choice = &chunk["choices"][0];
                if let Some(text) = text_of(choice).filter(|t| !t.is_empty()) {
                    answer.text.push_str(text);
                    let _ = events.unbounded_send(StreamEvent::Delta(text.to_owned()));
                    relayed = true;
                }
                if let Ok(reason) = serde_json::from_value(choice["finish_reason"].clone()) {
                    answer.finish_reason = reason;
                }
                if let Ok(usage) = serde_json::from_value::<CompletionUsage>(chunk["usage"].clone())
                {
                    answer.usage = usage.into();
                }
            }
        }
        answer.timings = Timings {
            prompt_ms: 0.0,
            generation_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        answer.wire = Some(wire);
        Ok(answer)
    }

    /// Whether a chat with `params` can be streamed from the endpoint: not with tools (their
    /// calls arrive in pieces) or log-probabilities (they come whole).
    fn streams(params: &SamplingParams) -> bool {
        params.tools.is_empty() && params.logprobs.is_none()
    }

    /// A streamed chat of one attempt within `timeout` (a pool of [`Replicas`] fails over
    /// instead); `Err((error, relayed))` says whether part of the answer was relayed.
    pub(crate) async fn stream_once(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        timeout: Duration,
        events: &UnboundedSender<StreamEvent>,
    ) -> Result<Completion, (ModelError, bool)> {
        if !Self::streams(params) {
            let c = self
                .chat_once(messages, params, timeout)
                .await
                .map_err(|e| (e, false))?;
            StreamEvent::send_whole(events, &c);
            return Ok(c);
        }
        let body = self.stream_body(messages, params);
        self.attempt_streaming(&body, timeout, events)
            .await
            .map_err(|f| (f.error, !f.transient))
    }

    /// The request of a chat: the remote model and every field of `params`.
    fn body(&self, messages: &[ChatMessage], params: &SamplingParams) -> ChatCompletionRequest {
        ChatCompletionRequest::for_params(self.model.clone(), messages, params)
    }

    /// The request of a streamed chat, with usage in the last chunk.
    fn stream_body(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> ChatCompletionRequest {
        ChatCompletionRequest {
            stream: true,
            stream_options: Some(StreamOptions {
                include_usage: true,
            }),
            ..self.body(messages, params)
        }
    }

    /// One chat within `timeout`, no retry.
    pub(crate) async fn attempt(
        &self,
        body: &ChatCompletionRequest,
        timeout: Duration,
    ) -> Result<Completion, Failure> {
        self.exchange(
            self.path,
            body,
            timeout,
            "chat completion",
            |r: ChatCompletion| r.completion(),
        )
        .await
    }

    /// One request of `body` to `path` within `timeout` (a slot of `max_concurrent` first),
    /// its answer read by `read` (`None`: no choice, an error naming `what`), with the
    /// exchange's wall time and wire bytes.
    pub(crate) async fn exchange<R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
        timeout: Duration,
        what: &str,
        read: impl FnOnce(R) -> Option<Completion>,
    ) -> Result<Completion, Failure> {
        let started = Instant::now();
        let (_slot, timeout) = self.slot(timeout).await?;
        let reply = self
            .link
            .exchange(reqwest::Method::POST, path, Some(body), timeout)
            .await?;
        let completion = read(reply.parse(path)?).ok_or_else(|| {
            Failure::fatal(ModelError::Inference(format!("{what} without a choice")))
        })?;
        Ok(Completion {
            // The exchange's wall time, which includes the server's own.
            timings: Timings {
                prompt_ms: 0.0,
                generation_ms: started.elapsed().as_secs_f64() * 1000.0,
            },
            wire: Some(reply.wire),
            ..completion
        })
    }
}

#[async_trait]
impl ChatModel for RemoteChat {
    fn name(&self) -> &str {
        &self.name
    }

    fn accepts_images(&self) -> bool {
        self.vision
    }

    fn accepts_tools(&self) -> bool {
        true
    }

    fn accepts_prompts(&self) -> bool {
        true
    }

    /// `POST …/completions` at the endpoint ([`RemoteChat::text_completion`]).
    ///
    /// # Errors
    /// As [`ChatModel::chat`]; `logprobs` is refused (the legacy shape is not read back).
    async fn complete(
        &self,
        prompt: &str,
        params: &SamplingParams,
        events: Option<UnboundedSender<StreamEvent>>,
    ) -> Result<Completion, ModelError> {
        self.text_completion(prompt, params, events).await
    }

    /// # Errors
    /// The server's error with its meaning kept: [`ModelError::RateLimited`] for a 429 (with
    /// its `Retry-After`), [`ModelError::Unavailable`] for 502–504, a missed deadline or an
    /// unreachable server, [`ModelError::InvalidRequest`] for a 400 or 413 (a context overflow
    /// names the sizes), [`ModelError::Inference`] otherwise.
    ///
    /// The answer's usage is added to the request's [`colm_core::Meter`].
    async fn chat(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Completion, ModelError> {
        let meter = colm_core::Meter::current();
        let body = self.body(messages, params);
        let c = self
            .link
            .retrying("chat completion", |left| self.attempt(&body, left))
            .await?;
        if let Some(m) = meter {
            m.add(c.usage);
        }
        Ok(c)
    }

    /// Relays the endpoint's stream delta by delta (the whole answer at once for chats with
    /// tools or log-probabilities); transient failures are retried until a delta was relayed.
    ///
    /// # Errors
    /// As [`ChatModel::chat`]; a stream cut after part of the answer was relayed is a
    /// [`ModelError::Unavailable`] and not retried.
    ///
    /// The request's [`colm_core::Meter`] gets the endpoint's usage when the answer is whole
    /// (the endpoint reports no usage before): a caller that counts a cut stream counts its
    /// deltas.
    async fn chat_streaming(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        events: UnboundedSender<StreamEvent>,
    ) -> Result<Completion, ModelError> {
        if !Self::streams(params) {
            let c = self.chat(messages, params).await?;
            StreamEvent::send_whole(&events, &c);
            return Ok(c);
        }
        let meter = colm_core::Meter::current();
        let body = self.stream_body(messages, params);
        let c = self
            .link
            .retrying("streamed chat completion", |left| {
                self.attempt_streaming(&body, left, &events)
            })
            .await?;
        if let Some(m) = meter {
            m.add(c.usage);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::responder;
    use std::sync::Arc;

    /// Model `qwen` of a colm server at `url`, retried after 10 ms.
    fn remote(url: &str) -> Result<RemoteChat, reqwest::Error> {
        let endpoint = Endpoint {
            backoff: Duration::from_millis(10),
            ..Endpoint::new(url)
        };
        RemoteChat::new(endpoint, "qwen")
    }

    #[tokio::test]
    async fn an_upstream_429_stays_a_429_with_its_retry_after_once_retries_are_spent() {
        let (url, count) = responder(
            "429 Too Many Requests",
            "retry-after: 7\r\n",
            r#"{"error":{"message":"rate limit of the key","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}"#,
        );
        let chat = remote(&url).unwrap();
        let err = chat
            .chat(&[ChatMessage::user("q")], &SamplingParams::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ModelError::RateLimited { retry_after_s: Some(7), detail } if detail.contains("rate limit of the key")),
            "{err:?}"
        );
        assert_eq!(err.status(), 429);
        // Two retries, as configured, then the error.
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_upstream_context_overflow_stays_the_callers_400_with_the_sizes() {
        let (url, count) = responder(
            "400 Bad Request",
            "",
            r#"{"error":{"message":"prompt does not fit the context: 900 prompt tokens + 512 max tokens > 1024 context tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        );
        let err = remote(&url)
            .unwrap()
            .chat(&[ChatMessage::user("q")], &SamplingParams::default())
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
        assert!(err.to_string().contains("900 prompt tokens"), "{err}");
        assert_eq!(
            count.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "not retried"
        );
    }

    /// An upstream with `max_concurrent=2` gets at most two chats at once from six callers,
    /// and a chat that finds every slot taken past its deadline is told so.
    #[tokio::test]
    async fn an_upstream_gets_at_most_max_concurrent_chats_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (open, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (o, p) = (open.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let (o, p) = (o.clone(), p.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let mut got = Vec::new();
                    // Headers and the whole body (the request is small: one read or a few).
                    while !String::from_utf8_lossy(&got).contains("\"messages\"") {
                        let n = sock.read(&mut buf).await.unwrap();
                        got.extend_from_slice(&buf[..n]);
                    }
                    let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    o.fetch_sub(1, Ordering::SeqCst);
                    let body = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"4"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    sock.write_all(answer.as_bytes()).await.unwrap();
                });
            }
        });
        let up = Upstream::parse(&format!("m={url},max_concurrent=2")).unwrap();
        let chat = Arc::new(RemoteChat::upstream(&up).unwrap());
        let calls = (0..6).map(|_| {
            let chat = chat.clone();
            tokio::spawn(async move {
                chat.chat(&[ChatMessage::user("q")], &SamplingParams::default())
                    .await
            })
        });
        for c in futures::future::join_all(calls).await {
            assert_eq!(c.unwrap().unwrap().text, "4");
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        // Both slots held: a chat with 100 ms to go waits them out and fails, naming them.
        let (_a, _) = chat.slot(Duration::from_secs(1)).await.unwrap();
        let (_b, _) = chat.slot(Duration::from_secs(1)).await.unwrap();
        assert!(chat.is_full());
        let e = chat
            .chat_once(
                &[ChatMessage::user("q")],
                &SamplingParams::default(),
                Duration::from_millis(100),
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), 503);
        assert!(e.to_string().contains("all 2 slots"), "{e}");
    }

    #[tokio::test]
    async fn an_upstream_stream_is_relayed_delta_by_delta_with_its_usage() {
        let (url, _) = responder(
            "200 OK",
            "",
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n\
             data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"length\"}]}\n\n\
             data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n\
             data: [DONE]\n\n",
        );
        let up = Upstream::parse(&format!("m={url}")).unwrap();
        let chat = RemoteChat::upstream(&up).unwrap();
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let c = chat
            .chat_streaming(&[ChatMessage::user("hi")], &SamplingParams::default(), tx)
            .await
            .unwrap();
        assert_eq!(c.text, "Hello");
        assert_eq!(c.finish_reason, colm_core::FinishReason::Length);
        assert_eq!((c.usage.prompt_tokens, c.usage.completion_tokens), (5, 2));
        let deltas: Vec<StreamEvent> = futures::StreamExt::collect(rx).await;
        assert!(
            matches!(deltas.as_slice(), [StreamEvent::Delta(a), StreamEvent::Delta(b)] if a == "Hel" && b == "lo"),
            "{deltas:?}"
        );
    }

    #[tokio::test]
    async fn an_overloaded_server_is_unavailable_with_its_retry_after() {
        let (url, _) = responder(
            "503 Service Unavailable",
            "retry-after: 2\r\n",
            r#"{"error":{"message":"the model is overloaded","type":"server_error","param":null,"code":"overloaded"}}"#,
        );
        let err = remote(&url)
            .unwrap()
            .chat(&[ChatMessage::user("q")], &SamplingParams::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::Unavailable {
                    retry_after_s: Some(2),
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

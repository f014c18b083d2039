//! The model side of the network: [`RemoteChat`], a model on a colm server or on any
//! OpenAI-compatible endpoint (an [`Upstream`], `colm serve --upstream`), over the same link
//! (deadline, retries, compression) as the device's guidance exchanges.

use super::*;

/// The server model as a [`ChatModel`] over the network: each chat is one
/// `POST /v1/chat/completions` to the colm server (model [`RemoteConfig::server_model`]),
/// zstd-compressed, with the API key, retries of transient failures and the deadline of
/// [`RemoteConfig`]. The device–cloud router (`colm_core::vertical::Router`) uses it as its
/// server model in `colm client --router`.
pub struct RemoteChat {
    link: Link,
    /// The id it is known by here (the remote model's name unless served under another).
    name: String,
    /// Path of the chat completions route below `base_url`.
    path: &'static str,
    /// Whether the remote model reads images.
    vision: bool,
    /// Slots of [`Upstream::max_concurrent`]: one per chat in flight to the endpoint.
    slots: Option<(tokio::sync::Semaphore, usize)>,
}

/// A model on an OpenAI-compatible endpoint (vLLM, llama-server, Ollama, a hosted API,
/// another colm server): an **upstream** that `colm serve` hosts as one of its models.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The id colm serves it under.
    pub name: String,
    /// Further ids it is served under (`alias=`, repeatable).
    pub aliases: Vec<String>,
    /// The endpoint's base URL, as OpenAI clients take it (`http://host:port/v1`): chats go
    /// to `{base_url}/chat/completions`.
    pub base_url: String,
    /// The model's name at the endpoint.
    pub model: String,
    /// Bearer key, if the endpoint needs one.
    pub api_key: Option<String>,
    /// The environment variable the key is to be read from (`key_env=`), by the command line
    /// program: a library does not read the environment.
    pub key_env: Option<String>,
    /// The file the key is to be read from (`key_file=`: its first line), by the command line
    /// program.
    pub key_file: Option<std::path::PathBuf>,
    /// Whether the model reads images (a vision-language model).
    pub vision: bool,
    /// Time allowed for one chat (its timeout), waiting for a slot and retries of transient
    /// failures included.
    pub deadline: Duration,
    /// Chats this server sends the endpoint at once (`max_concurrent=`); more wait for a
    /// slot within their deadline. `None`: no limit.
    pub max_concurrent: Option<usize>,
}

impl Upstream {
    /// The options of [`Upstream::parse`], as its error messages list them.
    pub const OPTIONS: &'static str =
        "model=, alias=, vision, key_env=, key_file=, deadline_ms=, max_concurrent=";

    /// Parses `NAME=BASE_URL[,model=M][,alias=A]…[,vision][,key_env=VAR][,key_file=PATH]
    /// [,deadline_ms=N][,max_concurrent=N]` (the form of `colm serve --upstream`): `model`
    /// defaults to NAME, the key is to be read from the environment variable VAR or the file
    /// PATH ([`Upstream::key_env`], [`Upstream::key_file`]; the caller sets `api_key`), the
    /// deadline defaults to 120 s, concurrency is unlimited by default.
    ///
    /// # Errors
    /// A message naming what is malformed.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (name, rest) = spec
            .split_once('=')
            .filter(|(n, r)| !n.is_empty() && !r.is_empty())
            .ok_or_else(|| format!("{spec:?} is not NAME=BASE_URL[,options]"))?;
        let mut parts = rest.split(',');
        let base_url = parts
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(format!("{spec:?}: the base URL must be http(s)://…"));
        }
        let mut up = Self {
            name: name.to_owned(),
            aliases: Vec::new(),
            base_url,
            model: name.to_owned(),
            api_key: None,
            key_env: None,
            key_file: None,
            vision: false,
            deadline: Duration::from_secs(120),
            max_concurrent: None,
        };
        let number = |key: &str, v: &str| {
            v.parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{spec:?}: {key}={v} is not a positive number"))
        };
        for option in parts {
            match option.split_once('=') {
                Some(("model", m)) if !m.is_empty() => up.model = m.to_owned(),
                Some(("alias", a)) if !a.is_empty() => up.aliases.push(a.to_owned()),
                Some(("key_env", var)) if !var.is_empty() => up.key_env = Some(var.to_owned()),
                Some(("key_file", f)) if !f.is_empty() => up.key_file = Some(f.into()),
                Some(("deadline_ms", ms)) => {
                    up.deadline = Duration::from_millis(number("deadline_ms", ms)?);
                }
                Some(("max_concurrent", n)) => {
                    let n = number("max_concurrent", n)?;
                    up.max_concurrent = Some(usize::try_from(n).unwrap_or(usize::MAX));
                }
                None if option == "vision" => up.vision = true,
                _ => {
                    return Err(format!(
                        "{spec:?}: unknown option {option:?} ({})",
                        Self::OPTIONS
                    ))
                }
            }
        }
        if up.key_env.is_some() && up.key_file.is_some() {
            return Err(format!("{spec:?}: give key_env= or key_file=, not both"));
        }
        Ok(up)
    }
}

impl RemoteChat {
    /// The server model named in `remote`, at the colm server `remote.base_url`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(remote: RemoteConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            name: remote.server_model.clone(),
            path: "/v1/chat/completions",
            vision: false,
            slots: None,
            link: Link::new(remote)?,
        })
    }

    /// The model of an upstream endpoint: requests go uncompressed, with every field of the
    /// caller's request ([`ChatCompletionRequest::for_params`]) and images as `image_url`
    /// parts.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn upstream(u: &Upstream) -> Result<Self, reqwest::Error> {
        let remote = RemoteConfig {
            api_key: u.api_key.clone(),
            deadline: u.deadline,
            compress: false,
            ..RemoteConfig::new(u.base_url.clone(), u.model.clone())
        };
        Ok(Self {
            name: u.name.clone(),
            path: "/chat/completions",
            vision: u.vision,
            slots: u
                .max_concurrent
                .map(|n| (tokio::sync::Semaphore::new(n), n)),
            link: Link::new(remote)?,
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
                        self.link.remote.base_url,
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
        let started = Instant::now();
        let (_slot, timeout) = self.slot(timeout).await?;
        let (req, mut wire) =
            self.link
                .request(reqwest::Method::POST, self.path, Some(body), timeout, false)?;
        let mut response = req.send().await.map_err(|e| missed(e, timeout))?;
        if !response.status().is_success() {
            return Err(Reply::read(response, self.path, timeout, wire)
                .await?
                .failure());
        }
        let mut answer = Completion::text_only("");
        let mut relayed = false;
        let mut pending: Vec<u8> = Vec::new();
        let unreadable = |e: String| {
            Failure::fatal(ModelError::Inference(format!(
                "unreadable stream from {}: {e}",
                self.path
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
                if let Some(text) = choice["delta"]["content"]
                    .as_str()
                    .filter(|t| !t.is_empty())
                {
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
        ChatCompletionRequest::for_params(self.link.remote.server_model.clone(), messages, params)
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

    async fn attempt(
        &self,
        body: &ChatCompletionRequest,
        timeout: Duration,
    ) -> Result<Completion, Failure> {
        let started = Instant::now();
        let (_slot, timeout) = self.slot(timeout).await?;
        let reply = self
            .link
            .exchange(reqwest::Method::POST, self.path, Some(body), timeout)
            .await?;
        let response: ChatCompletion = reply.parse(self.path)?;
        let completion = response.completion().ok_or_else(|| {
            Failure::fatal(ModelError::Inference(
                "chat completion without a choice".into(),
            ))
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

    /// # Errors
    /// The server's error with its meaning kept: [`ModelError::RateLimited`] for a 429 (with
    /// its `Retry-After`), [`ModelError::Unavailable`] for 502–504, a missed deadline or an
    /// unreachable server, [`ModelError::InvalidRequest`] for a 400 or 413 (a context overflow
    /// names the sizes), [`ModelError::Inference`] otherwise.
    async fn chat(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Completion, ModelError> {
        let body = self.body(messages, params);
        self.link
            .retrying("chat completion", |left| self.attempt(&body, left))
            .await
    }

    /// Relays the endpoint's stream delta by delta (the whole answer at once for chats with
    /// tools or log-probabilities); transient failures are retried until a delta was relayed.
    ///
    /// # Errors
    /// As [`ChatModel::chat`]; a stream cut after part of the answer was relayed is a
    /// [`ModelError::Unavailable`] and not retried.
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
        let body = self.stream_body(messages, params);
        self.link
            .retrying("streamed chat completion", |left| {
                self.attempt_streaming(&body, left, &events)
            })
            .await
    }
}

//! Text completions through a [`RemoteChat`]'s endpoint: `POST …/completions` (OpenAI's
//! legacy Completions API, which llama-server, vLLM, Ollama and colm serve all take), so that
//! `colm serve`'s `/v1/completions` reaches upstream models too.

use std::collections::BTreeMap;
use std::time::Duration;

use colm_api::openai::{
    ChatCompletionRequest, CompletionRequest, PromptInput, StreamOptions, TextCompletion,
};
use colm_core::{Completion, FinishReason, ModelError, SamplingParams, StreamEvent};
use futures::channel::mpsc::UnboundedSender;

use crate::link::Failure;
use crate::RemoteChat;

impl RemoteChat {
    /// `Ok` when a text completion with `params` can be relayed.
    ///
    /// # Errors
    /// [`ModelError::InvalidRequest`] for `logprobs` (the legacy shape is not read back).
    pub(crate) fn relayable(&self, params: &SamplingParams) -> Result<(), ModelError> {
        match params.logprobs {
            Some(_) => Err(ModelError::InvalidRequest(format!(
                "`logprobs` of a text completion is not relayed from `{}`'s endpoint",
                self.model
            ))),
            None => Ok(()),
        }
    }

    /// The text completions route, beside the chat completions route.
    fn completions_path(&self) -> &'static str {
        match self.path {
            "/v1/chat/completions" => "/v1/completions",
            _ => "/completions",
        }
    }

    /// The request continuing `prompt` with `params`: the sampling fields as a chat request
    /// carries them ([`ChatCompletionRequest::for_params`], the one mapping), on the legacy
    /// route's body.
    fn completion_body(
        &self,
        prompt: &str,
        params: &SamplingParams,
        stream: bool,
    ) -> CompletionRequest {
        let chat = ChatCompletionRequest::for_params(self.model.clone(), &[], params);
        CompletionRequest {
            model: chat.model,
            prompt: PromptInput::One(prompt.to_owned()),
            max_tokens: chat.max_tokens,
            temperature: chat.temperature,
            top_p: chat.top_p,
            top_k: chat.top_k,
            min_p: chat.min_p,
            repeat_penalty: chat.repeat_penalty,
            repetition_penalty: None,
            frequency_penalty: chat.frequency_penalty,
            presence_penalty: chat.presence_penalty,
            logit_bias: chat.logit_bias,
            seed: chat.seed,
            stop: chat.stop,
            n: None,
            logprobs: None,
            echo: false,
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
            ignore_eos: chat.ignore_eos,
            cache_prompt: chat.cache_prompt,
            user: None,
            unsupported: BTreeMap::new(),
        }
    }

    /// `prompt` continued by the endpoint's model, with retries of transient failures; with
    /// `events`, streamed and each text delta relayed as it arrives (retried until one was).
    /// The answer's usage is added to the request's [`colm_core::Meter`].
    ///
    /// # Errors
    /// As [`colm_core::ChatModel::chat`]; [`ModelError::InvalidRequest`] for `logprobs` (the
    /// legacy shape is not read back from an endpoint).
    pub(crate) async fn text_completion(
        &self,
        prompt: &str,
        params: &SamplingParams,
        events: Option<UnboundedSender<StreamEvent>>,
    ) -> Result<Completion, ModelError> {
        self.relayable(params)?;
        let meter = colm_core::Meter::current();
        let path = self.completions_path();
        let body = self.completion_body(prompt, params, events.is_some());
        let c = match &events {
            None => {
                self.link
                    .retrying("text completion", |left| {
                        self.attempt_text(path, &body, left)
                    })
                    .await?
            }
            Some(events) => {
                self.link
                    .retrying("streamed text completion", |left| {
                        self.relay_stream(path, &body, left, events, |choice| {
                            choice["text"].as_str()
                        })
                    })
                    .await?
            }
        };
        if let Some(m) = meter {
            m.add(c.usage);
        }
        Ok(c)
    }

    /// One attempt at a text completion within `timeout`, no retry (a pool of
    /// [`crate::Replicas`] fails over instead); `Err((error, relayed))` says whether part of a
    /// streamed answer was relayed.
    pub(crate) async fn text_once(
        &self,
        prompt: &str,
        params: &SamplingParams,
        timeout: Duration,
        events: Option<&UnboundedSender<StreamEvent>>,
    ) -> Result<Completion, (ModelError, bool)> {
        let path = self.completions_path();
        let body = self.completion_body(prompt, params, events.is_some());
        match events {
            None => self
                .attempt_text(path, &body, timeout)
                .await
                .map_err(|f| (f.error, false)),
            Some(events) => self
                .relay_stream(path, &body, timeout, events, |choice| {
                    choice["text"].as_str()
                })
                .await
                .map_err(|f| (f.error, !f.transient)),
        }
    }

    /// One text completion within `timeout`, no retry.
    async fn attempt_text(
        &self,
        path: &str,
        body: &CompletionRequest,
        timeout: Duration,
    ) -> Result<Completion, Failure> {
        self.exchange(
            path,
            body,
            timeout,
            "text completion",
            |r: TextCompletion| {
                let choice = r.choices.first()?;
                Some(Completion {
                    usage: r.usage.map(Into::into).unwrap_or_default(),
                    finish_reason: choice.finish_reason.unwrap_or(FinishReason::Stop),
                    ..Completion::text_only(choice.text.clone())
                })
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use colm_core::ChatModel;

    use crate::testing::responder;
    use crate::{RemoteChat, Upstream};

    const ANSWER: &str = r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" 5, 6","logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":8,"completion_tokens":4,"total_tokens":12}}"#;

    /// An upstream's text completion is read back as a completion with its usage; `logprobs`
    /// is refused before anything is sent.
    #[tokio::test]
    async fn an_upstream_continues_a_prompt_and_logprobs_are_refused() {
        let (url, count) = responder("200 OK", "", ANSWER);
        let up = Upstream::parse(&format!("m={url}/v1")).unwrap();
        let chat = RemoteChat::upstream(&up).unwrap();
        assert!(chat.accepts_prompts());
        let params = colm_core::SamplingParams::default();
        let c = chat.complete("1, 2, 3, 4,", &params, None).await.unwrap();
        assert_eq!(c.text, " 5, 6");
        assert_eq!((c.usage.prompt_tokens, c.usage.completion_tokens), (8, 4));
        assert_eq!(c.finish_reason, colm_core::FinishReason::Length);
        let with_logprobs = colm_core::SamplingParams {
            logprobs: Some(1),
            ..params
        };
        let e = chat.complete("1,", &with_logprobs, None).await.unwrap_err();
        assert!(e.to_string().contains("logprobs"), "{e}");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}

//! An upstream: a model on an OpenAI-compatible endpoint that `colm serve --upstream` hosts,
//! and the `NAME=BASE_URL[,options]` form that names one.

use std::time::Duration;

use thiserror::Error;

/// A malformed `--upstream` value, or replicas of one id that disagree; the message names
/// what is wrong.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct UpstreamSpecError(pub(crate) String);

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
    pub fn parse(spec: &str) -> Result<Self, UpstreamSpecError> {
        Self::parse_text(spec).map_err(UpstreamSpecError)
    }

    fn parse_text(spec: &str) -> Result<Self, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_parse_with_their_options() {
        let u = Upstream::parse(
            "vlm=http://gpu:9000/v1/,model=llava,vision,key_env=VLM_KEY,deadline_ms=5000",
        )
        .unwrap();
        assert_eq!(
            (u.name.as_str(), u.base_url.as_str(), u.model.as_str()),
            ("vlm", "http://gpu:9000/v1", "llava")
        );
        assert!(u.vision && u.api_key.is_none());
        assert_eq!(u.key_env.as_deref(), Some("VLM_KEY"));
        assert_eq!(u.deadline, Duration::from_millis(5000));
        assert_eq!(u.max_concurrent, None);
        let plain = Upstream::parse("gpt=https://api.example/v1").unwrap();
        assert_eq!((plain.model.as_str(), plain.vision), ("gpt", false));
        let full = Upstream::parse(
            "big=http://h:1/v1,alias=strong,alias=writer,key_file=k.txt,max_concurrent=4",
        )
        .unwrap();
        assert_eq!(full.aliases, ["strong", "writer"]);
        assert_eq!(
            full.key_file.as_deref(),
            Some(std::path::Path::new("k.txt"))
        );
        assert_eq!(full.max_concurrent, Some(4));
        for (bad, says) in [
            ("novalue", "NAME=BASE_URL"),
            ("x=ftp://h/v1", "http(s)"),
            ("x=http://h/v1,colour=red", "unknown option"),
            ("x=http://h/v1,deadline_ms=soon", "not a positive number"),
            ("x=http://h/v1,max_concurrent=0", "not a positive number"),
            ("x=http://h/v1,key_env=K,key_file=f", "not both"),
        ] {
            let e = Upstream::parse(bad).unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }
}

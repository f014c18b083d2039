//! `colm ask --router FILE`: one query through the device–cloud router of
//! `colm_core::vertical` (confidence cascade, server-token and latency budgets, data residency,
//! fallback on a failed server call), with the policy read from a TOML file (`docs/router.toml`
//! is a commented example).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use colm_core::colm::StepObserver;
use colm_core::named::Named;
use colm_core::vertical::{Router, RouterConfig, RouterRecord, SpeedEstimate};
use colm_core::{ChatModel, Query, SamplingParams};
use serde::Deserialize;

/// A router file: the `[router]` table ([`RouterConfig`]'s keys, each optional) and, for the
/// latency budget, an optional `[speeds]` table ([`SpeedEstimate`]: tokens/s and ms).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterFile {
    /// The policy.
    #[serde(default)]
    pub router: RouterConfig,
    /// Measured speeds; without them the latency budget is not checked.
    pub speeds: Option<SpeedEstimate>,
}

impl RouterFile {
    /// Parses and checks a router file's text.
    ///
    /// # Errors
    /// TOML syntax, an unknown key or a value of the wrong type (as the `toml` crate names
    /// them, with line and column), a threshold above 0 (a mean log-probability is ≤ 0), an
    /// agreement setting out of range, a window that is not positive, or a speed that is not
    /// positive.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: Self = toml::from_str(text)?;
        let r = &file.router;
        if let Some(t) = r.threshold {
            anyhow::ensure!(
                t <= 0.0,
                "router.threshold is a mean token log-probability (≤ 0), got {t}"
            );
        }
        if let Some(a) = &r.agreement {
            a.validate().map_err(|e| anyhow::anyhow!("router.{e}"))?;
        }
        anyhow::ensure!(
            r.window_s > 0.0,
            "router.window_s must be > 0 seconds, got {}",
            r.window_s
        );
        if let Some(s) = &file.speeds {
            for (key, v) in [
                ("server_prompt_tok_s", s.server_prompt_tok_s),
                ("server_gen_tok_s", s.server_gen_tok_s),
                ("local_gen_tok_s", s.local_gen_tok_s),
            ] {
                anyhow::ensure!(v > 0.0, "speeds.{key} must be > 0 tokens/s, got {v}");
            }
            anyhow::ensure!(
                s.rtt_ms >= 0.0,
                "speeds.rtt_ms must be ≥ 0, got {}",
                s.rtt_ms
            );
        }
        Ok(file)
    }

    /// Reads and parses `path`.
    ///
    /// # Errors
    /// As [`RouterFile::parse`], with the path named; or the file cannot be read.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the router file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in the router file {}", path.display()))
    }
}

/// Routes `query` between `local` and `server` (flagged sensitive when `params.sensitive`) and
/// prints the steps (unless `json`), the route with its reasons, and the answer — or the whole
/// [`RouterRecord`] as JSON.
///
/// # Errors
/// The local model's error when the draft fails.
pub async fn ask(
    file: RouterFile,
    query: &str,
    local: Arc<dyn ChatModel>,
    server: Arc<dyn ChatModel>,
    params: &SamplingParams,
    output: crate::print::Output,
) -> anyhow::Result<()> {
    use crate::print::Output;
    let mut router = Router::new(local, server, file.router);
    if let Some(s) = file.speeds {
        router = router.with_speeds(s);
    }
    let live = crate::live::Live::new();
    let observer: Option<StepObserver<'_>> = (output == Output::View).then_some(&live as _);
    let record = router
        .answer(&Query::new(query), params.sensitive, params, observer)
        .await;
    live.done();
    let record = record?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&record)?),
        Output::Quiet => println!("{}", record.answer.trim()),
        Output::View => print_record(&record),
    }
    Ok(())
}

fn print_record(r: &RouterRecord) {
    println!("\nroute: {}", r.route.name());
    for reason in &r.reasons {
        println!("  · {reason}");
    }
    if r.redacted {
        println!("  · what left the device had placeholders; the answer has them restored");
    }
    if let Some(f) = &r.fallback {
        println!("  · fallback: {f}");
    }
    println!(
        "\n══ final answer ({}) ══\n{}",
        r.route.name(),
        r.answer.trim()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use colm_core::vertical::{Residency, Route};

    #[test]
    fn the_documented_example_parses() {
        let text = include_str!("../../../docs/router.toml");
        let f = RouterFile::parse(text).unwrap();
        assert_eq!(f.router.escalate_to, Route::Remote);
        assert_eq!(f.router.threshold, Some(-0.1));
        assert_eq!(f.router.residency, Residency::Redact);
        assert_eq!(f.router.sensitive_names, vec!["Janet".to_owned()]);
        assert!(f.speeds.is_some());
        assert_eq!(f.router.agreement, None);
        // The commented-out agreement table parses once turned on.
        let on = text.replace("#[router.agreement]", "[router.agreement]");
        let on = on
            .lines()
            .map(|l| {
                l.strip_prefix('#')
                    .filter(|r| r.contains(" = "))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let f = RouterFile::parse(&on).unwrap();
        let a = f.router.agreement.unwrap();
        assert_eq!((a.samples, a.temperature, a.min_share), (4, 0.7, 0.75));
    }

    #[test]
    fn an_empty_file_is_the_default_policy() {
        let f = RouterFile::parse("").unwrap();
        assert_eq!(f.router, RouterConfig::default());
        assert_eq!(f.speeds, None);
    }

    #[test]
    fn bad_files_name_what_is_wrong() {
        for (text, says) in [
            ("[router]\nthreshold = 0.5\n", "threshold"),
            ("[router]\nwindow_s = 0\n", "window_s"),
            ("[router]\nescalate_to = \"cloud\"\n", "escalate_to"),
            ("[router]\ntau = -0.1\n", "tau"),
            ("[routing]\n", "routing"),
            (
                "[speeds]\nserver_prompt_tok_s = 0\nserver_gen_tok_s = 1\nlocal_gen_tok_s = 1\nrtt_ms = 1\n",
                "server_prompt_tok_s",
            ),
            ("[router\n", "router"),
            ("[router.agreement]\nmin_share = 2\n", "agreement.min_share"),
            ("[router.agreement]\nsamples = 0\n", "agreement.samples"),
            ("[router.agreement]\nvotes = 3\n", "votes"),
        ] {
            let err = format!("{:#}", RouterFile::parse(text).unwrap_err());
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }
}

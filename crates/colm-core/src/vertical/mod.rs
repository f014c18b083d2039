//! Vertical (device–cloud) collaboration: a router that decides, per query, whether the
//! device answers alone (`local`), refines its draft with the server's reference (`colm`: the
//! server model answers the query, the draft stays on the device), or hands the query to the
//! server model (`remote`) — under limits of confidence, server-token and
//! latency budgets, connectivity and data residency (Yuan et al., "LLMs over networks",
//! arXiv 2605.08626, vertical collaboration; the confidence cascade after FrugalGPT, Chen et
//! al. 2023, arXiv 2305.05176).
//!
//! Order of the checks for one query ([`Router::answer`]):
//! 1. the local model drafts (always: it is the answer whenever the query stays local);
//! 2. **cascade**: a draft whose mean token log-probability is ≥ τ stays local; with
//!    [`AgreementConfig`], the device also samples a few more drafts and the draft stays local
//!    only when enough of them reach its final answer (agreement of sampled drafts as a
//!    confidence signal, after self-consistency, Wang et al. 2023, arXiv 2203.11171; sampled
//!    only when the log-probability check, if any, passed);
//! 3. **residency**: a query with sensitive spans either stays local or leaves the device with
//!    typed placeholders ([`privacy`]), restored on the device (the draft never leaves it);
//! 4. **budgets**: escalation stays local when the server tokens spent in the current window
//!    plus this request's estimate exceed the budget, or when the estimated latency of the
//!    escalation exceeds the latency budget — estimated from speeds given
//!    ([`Router::with_speeds`]) or, without them, measured on this router's own calls
//!    ([`Router::speeds`]);
//! 5. **connectivity**: a server call that fails leaves the local draft as the answer, flagged.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::colm::round;
use crate::invalid::Invalid;
use crate::model::{
    ChatModel, Completion, FinishReason, ModelError, ResidencyOutcome, SamplingParams,
};
use crate::prompts::{self, RefineContext};
use crate::query::Query;
use crate::step::{call, Step, StepKind, StepObserver};

pub mod budget;
mod escalate;
pub mod privacy;
pub mod redacted;
pub mod residency;
pub mod speed;

pub use budget::{LedgerError, LocalLedger, Reservation, TokenLedger};
pub use residency::{Decision, Residency};
pub use speed::SpeedEstimate;

use privacy::Detector;

pub use crate::model::Route;

/// Router settings (the `[router]` table of a TOML file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// Where an escalated query goes: `colm` or `remote`.
    pub escalate_to: Route,
    /// Cascade threshold τ on the draft's mean token log-probability (nats, ≤ 0): a draft at
    /// or above it stays local. `None`: always escalate (subject to the other limits).
    pub threshold: Option<f64>,
    /// Server tokens (prompt + completion) allowed per window; `None`: unlimited.
    pub server_tokens_per_window: Option<u64>,
    /// Length of the token-budget window, seconds.
    pub window_s: f64,
    /// Latency budget of one request, ms, checked against the estimated escalation time;
    /// `None`: unlimited.
    pub latency_budget_ms: Option<f64>,
    /// Queries flagged sensitive, or with detected sensitive spans: what they may do.
    pub residency: Residency,
    /// Names treated as sensitive (whole words, case-insensitive), beside e-mail addresses,
    /// phone, card and account numbers.
    pub sensitive_names: Vec<String>,
    /// Agreement of sampled drafts as a second cascade signal (`[router.agreement]`); `None`:
    /// only the mean log-probability decides.
    pub agreement: Option<AgreementConfig>,
    /// What the `colm` route's refinement prompt shows besides the reference: the draft
    /// (`draft`) or the reference alone (`guidance`, as the CoLM reference code); default: the
    /// reference mode's ([`crate::guidance::GuidanceMode::default_refine`]).
    pub refine: RefineContext,
}

/// The agreement signal of the cascade: `samples` more drafts of the query, sampled on the
/// device at `temperature` (sample i with seed + 1 + i), and the share of them whose extracted
/// final answer ([`crate::answer::extract_answer`]) equals the draft's. The draft stays
/// local when the share is at least `min_share`; a draft without an extractable answer, or a
/// failed sample, counts as disagreement. Costs `samples` local generations per query that
/// passes the log-probability check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgreementConfig {
    /// Drafts sampled beside the greedy one (≥ 1). Default 4.
    pub samples: usize,
    /// Their temperature (> 0). Default 0.7, as self-consistency samples.
    pub temperature: f32,
    /// Least share of the samples, in [0, 1], that must agree with the draft. Default 0.75.
    pub min_share: f64,
}

impl Default for AgreementConfig {
    fn default() -> Self {
        Self {
            samples: 4,
            temperature: 0.7,
            min_share: 0.75,
        }
    }
}

impl AgreementConfig {
    /// Checks the ranges above.
    ///
    /// # Errors
    /// A message naming the key out of range.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.samples == 0 {
            return Err("agreement.samples must be at least 1".into());
        }
        if !(self.temperature > 0.0 && self.temperature <= 2.0) {
            return Err(Invalid(format!(
                "agreement.temperature must be in (0, 2], got {}",
                self.temperature
            )));
        }
        if !(0.0..=1.0).contains(&self.min_share) {
            return Err(Invalid(format!(
                "agreement.min_share must be in [0, 1], got {}",
                self.min_share
            )));
        }
        Ok(())
    }
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            escalate_to: Route::Colm,
            threshold: None,
            server_tokens_per_window: None,
            window_s: 3600.0,
            latency_budget_ms: None,
            residency: Residency::Redact,
            sensitive_names: Vec::new(),
            agreement: None,
            refine: crate::guidance::GuidanceMode::Reference.default_refine(),
        }
    }
}

/// The record of one routed query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterRecord {
    /// The query as the user wrote it.
    pub query: String,
    /// The route taken.
    pub route: Route,
    /// Why, one line per check that decided (`confidence -0.41 < τ -0.30`, …).
    pub reasons: Vec<String>,
    /// The draft's mean token log-probability.
    pub confidence: Option<f64>,
    /// With [`AgreementConfig`], when the samples were drawn: the share of them that reached
    /// the draft's final answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// Whether what left the device had placeholders in place of sensitive spans.
    pub redacted: bool,
    /// Set when the query was sensitive: it stayed on the device, or left redacted
    /// (`redacted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<ResidencyOutcome>,
    /// Every model call: the draft, the agreement samples (`sample` steps, when drawn), then
    /// the server call and the refinement when escalated.
    /// Server steps have `collaborator: None`; the messages are those actually sent
    /// (redacted when `redacted`).
    pub steps: Vec<Step>,
    /// The answer (placeholders restored).
    pub answer: String,
    /// Set when an escalation failed and the local draft answered: why.
    pub fallback: Option<String>,
}

impl RouterRecord {
    /// The record as one completion, as a device endpoint serves it: the answer, the tokens
    /// and times of every step (local and server together), the draft's confidence, the bytes
    /// on the wire (summed over the steps that crossed it), the finish reason of the step that
    /// gave the answer (the draft when local, else the last step), and the fallback reason.
    pub fn completion(&self) -> Completion {
        let (usage, timings) = crate::step::summed(&crate::step::totals_of(self.steps.iter()));
        let done: Vec<&Completion> = self.steps.iter().filter_map(|s| s.completion()).collect();
        let wire = done.iter().filter_map(|c| c.wire).reduce(|mut a, b| {
            a.add(b);
            a
        });
        Completion {
            text: self.answer.clone(),
            usage,
            mean_logprob: self.confidence,
            finish_reason: match self.route {
                Route::Local => done.first(),
                _ => done.last(),
            }
            .map_or(FinishReason::Stop, |c| c.finish_reason),
            timings,
            fallback: self.fallback.clone(),
            residency: self.residency,
            route: Some(self.route),
            wire,
            logprobs: None,
            tool_calls: Vec::new(),
            transcript: None,
        }
    }
}

/// A device–cloud router over a local model and a server model.
pub struct Router {
    local: Arc<dyn ChatModel>,
    server: Arc<dyn ChatModel>,
    config: RouterConfig,
    detector: Detector,
    speeds: Option<SpeedEstimate>,
    measured: Mutex<Measured>,
    ledger: Arc<dyn TokenLedger>,
}

/// Speeds observed on the router's own calls, as exponential moving averages (weight
/// [`Measured::ALPHA`] on the newest call).
#[derive(Debug, Default)]
struct Measured {
    /// Local generation, tokens/s, from each draft's generation time.
    local_gen_tok_s: Option<f64>,
    /// Server tokens generated per second of the escalation's whole wall time (round trip and
    /// prompt processing folded in).
    server_tok_s: Option<f64>,
}

impl Measured {
    const ALPHA: f64 = 0.3;

    fn mix(old: Option<f64>, new: f64) -> Option<f64> {
        if !new.is_finite() || new <= 0.0 {
            return old;
        }
        Some(old.map_or(new, |o| (1.0 - Self::ALPHA) * o + Self::ALPHA * new))
    }
}

impl Router {
    /// A router between `local` and `server`.
    pub fn new(
        local: Arc<dyn ChatModel>,
        server: Arc<dyn ChatModel>,
        config: RouterConfig,
    ) -> Self {
        let detector = Detector::new(&config.sensitive_names);
        Self {
            local,
            server,
            config,
            detector,
            speeds: None,
            measured: Mutex::new(Measured::default()),
            ledger: Arc::new(LocalLedger::default()),
        }
    }

    /// Keeps the server-token budget's spending in `ledger` (shared by replicas) instead of
    /// this router's memory.
    pub fn with_ledger(mut self, ledger: Arc<dyn TokenLedger>) -> Self {
        self.ledger = ledger;
        self
    }

    /// Sets the speeds used by the latency budget. Without them the router measures its own:
    /// until its first escalation the latency budget is not checked (a reason says so).
    pub fn with_speeds(mut self, speeds: SpeedEstimate) -> Self {
        self.speeds = Some(speeds);
        self
    }

    /// The speeds the latency budget uses: those given with [`Router::with_speeds`], else
    /// those measured on this router's calls — local generation tokens/s from the drafts'
    /// generation time, and server tokens generated per second of an escalation's wall time
    /// (reported as `server_gen_tok_s`, with prompt processing and round trip folded in:
    /// `server_prompt_tok_s` infinite, `rtt_ms` 0) — once one escalation has run; `None`
    /// before.
    pub fn speeds(&self) -> Option<SpeedEstimate> {
        if self.speeds.is_some() {
            return self.speeds;
        }
        let m = self.measured.lock().ok()?;
        Some(SpeedEstimate {
            server_prompt_tok_s: f64::INFINITY,
            server_gen_tok_s: m.server_tok_s?,
            local_gen_tok_s: m.local_gen_tok_s?,
            rtt_ms: 0.0,
        })
    }

    fn observe(&self, local: Option<&Completion>, server: Option<(&Completion, f64)>) {
        let Ok(mut m) = self.measured.lock() else {
            return;
        };
        if let Some(c) = local {
            let tok_s = c.usage.completion_tokens as f64 * 1000.0 / c.timings.generation_ms;
            m.local_gen_tok_s = Measured::mix(m.local_gen_tok_s, tok_s);
        }
        if let Some((c, wall_ms)) = server {
            let tok_s = c.usage.completion_tokens as f64 * 1000.0 / wall_ms;
            m.server_tok_s = Measured::mix(m.server_tok_s, tok_s);
        }
    }

    /// The settings.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    fn window(&self) -> Duration {
        Duration::from_secs_f64(self.config.window_s.max(0.0))
    }

    /// Server tokens spent in the current window.
    ///
    /// # Errors
    /// The ledger cannot be read.
    pub async fn spent_in_window(&self) -> Result<u64, LedgerError> {
        self.ledger.spent(self.window()).await
    }

    /// Draws the agreement samples (steps appended to `record`) and returns the share that
    /// reached the draft's final answer (also stored in `record.agreement`).
    async fn agreement(
        &self,
        query: &Query,
        draft: &str,
        config: &AgreementConfig,
        params: &SamplingParams,
        observer: Option<StepObserver<'_>>,
        record: &mut RouterRecord,
    ) -> f64 {
        let sampling: Vec<SamplingParams> = (0..config.samples)
            .map(|i| SamplingParams {
                temperature: config.temperature,
                seed: params.seed.wrapping_add(1).wrapping_add(i as u32),
                ..params.clone()
            })
            .collect();
        let steps = futures::future::join_all(sampling.iter().map(|p| {
            call(
                StepKind::Sample,
                1,
                Some("local"),
                self.local.as_ref(),
                prompts::draft(query),
                p,
                observer,
            )
        }))
        .await;
        let target = crate::answer::extract_answer(draft);
        let agree = steps
            .iter()
            .filter_map(Step::text)
            .filter(|t| target.is_some() && crate::answer::extract_answer(t) == target)
            .count();
        record.steps.extend(steps);
        let share = agree as f64 / config.samples.max(1) as f64;
        record.agreement = Some(share);
        share
    }

    /// The device's model as the maker of the `colm` route's client steps (id `local`).
    fn local_client(&self) -> round::Client<'_> {
        round::Client {
            id: Some("local"),
            model: self.local.as_ref(),
        }
    }

    /// Routes and answers `query`; `sensitive` flags it as sensitive whatever the detector
    /// finds.
    ///
    /// # Errors
    /// The local model's error when the draft fails (there is nothing to answer with).
    pub async fn answer(
        &self,
        query: &Query,
        sensitive: bool,
        params: &SamplingParams,
        observer: Option<StepObserver<'_>>,
    ) -> Result<RouterRecord, ModelError> {
        let start = Instant::now();
        let draft = round::draft(query, self.local_client(), params, observer).await;
        let completion = match (draft.completion(), draft.error()) {
            (Some(c), _) => c.clone(),
            (None, Some(e)) => return Err(e.clone()),
            (None, None) => return Err(ModelError::Inference("the draft returned nothing".into())),
        };
        self.observe(Some(&completion), None);
        let mut record = RouterRecord {
            query: query.server_text().into_owned(),
            route: Route::Local,
            reasons: Vec::new(),
            confidence: completion.mean_logprob,
            agreement: None,
            redacted: false,
            residency: None,
            steps: vec![draft],
            answer: completion.text.clone(),
            fallback: None,
        };
        let route = self.config.escalate_to;
        if route == Route::Local {
            record
                .reasons
                .push("escalation is off (escalate_to = local)".into());
            return Ok(record);
        }

        // 2. Cascade: log-probability, then (only if that passed) agreement of samples.
        let mut confident = None;
        if let Some(tau) = self.config.threshold {
            confident = Some(match completion.mean_logprob {
                Some(c) if c >= tau => {
                    record
                        .reasons
                        .push(format!("confidence {c:.3} ≥ τ {tau:.3}"));
                    true
                }
                Some(c) => {
                    record
                        .reasons
                        .push(format!("confidence {c:.3} < τ {tau:.3}"));
                    false
                }
                None => {
                    record
                        .reasons
                        .push("no confidence (empty draft): escalate".into());
                    false
                }
            });
        }
        if let (Some(a), None | Some(true)) = (&self.config.agreement, confident) {
            let share = self
                .agreement(query, &completion.text, a, params, observer, &mut record)
                .await;
            let agrees = share >= a.min_share;
            record.reasons.push(format!(
                "agreement {share:.2} of {} samples {} {:.2}",
                a.samples,
                if agrees { "≥" } else { "<" },
                a.min_share
            ));
            confident = Some(agrees);
        }
        if confident == Some(true) {
            if let Some(last) = record.reasons.last_mut() {
                last.push_str(": stays local");
            }
            return Ok(record);
        }

        // 3. Residency: only the query (with its conversation) leaves the device, on either
        // route.
        let (query_out, restore) =
            match self
                .config
                .residency
                .decide(&self.detector, &query.server_text(), sensitive)
            {
                Decision::Leave => (query.clone(), None),
                Decision::StayLocal(why) => {
                    record.reasons.push(why);
                    record.residency = Some(ResidencyOutcome::Local);
                    return Ok(record);
                }
                // Redacted, the conversation leaves as one transcript with placeholders.
                Decision::Redact(r, why) => {
                    record.reasons.push(why);
                    record.redacted = true;
                    record.residency = Some(ResidencyOutcome::Redacted);
                    (Query::new(r.text.clone()), Some(r))
                }
            };

        // 4. Budgets. The server answers the query on either route: as the answer (`remote`)
        // or as the reference the draft is refined with (`colm`).
        let messages = match route {
            Route::Remote => prompts::draft(&query_out),
            _ => prompts::reference(&query_out, None),
        };
        let chars: usize = messages.iter().map(|m| m.content.len()).sum();
        let prompt_estimate = self
            .server
            .count_tokens(
                &messages
                    .iter()
                    .map(|m| m.content.as_str())
                    .collect::<String>(),
            )
            .map_or(chars.div_ceil(4) as u64, |n| n as u64);
        let completion_estimate = completion.usage.completion_tokens.max(1);
        if let Some(budget) = self.config.latency_budget_ms {
            match self.speeds() {
                Some(s) => {
                    let est = s.escalation_ms(route, prompt_estimate, completion_estimate);
                    let left = budget - start.elapsed().as_secs_f64() * 1000.0;
                    if est > left {
                        record.reasons.push(format!(
                            "latency: ~{est:.0} ms to escalate > {left:.0} ms left of \
                             {budget:.0} ms: stays local"
                        ));
                        return Ok(record);
                    }
                }
                None => record
                    .reasons
                    .push("latency budget not checked: no speeds given or measured yet".into()),
            }
        }

        // Reserved last: a query kept local by the checks above holds no reservation.
        let reservation = match self.config.server_tokens_per_window {
            None => None,
            Some(limit) => {
                let need = prompt_estimate + completion_estimate;
                match self.ledger.reserve(need, limit, self.window()).await {
                    Ok(Reservation::Reserved { id, .. }) => Some(id),
                    Ok(Reservation::Refused { spent }) => {
                        record.reasons.push(format!(
                            "server-token budget: {spent} spent + ~{need} needed > {limit} per \
                             {} s: stays local",
                            self.config.window_s
                        ));
                        return Ok(record);
                    }
                    Err(e) => {
                        record
                            .reasons
                            .push(format!("server-token budget unknown ({e}): stays local"));
                        return Ok(record);
                    }
                }
            }
        };

        // 5. Escalate; a failed server call leaves the draft (connectivity).
        let escalation = match route {
            Route::Remote => {
                self.remote(&query_out, restore.as_ref(), params, observer)
                    .await
            }
            _ => {
                let draft = record.steps[0].clone();
                self.collaborate(query, draft, restore, params, observer)
                    .await
            }
        };
        let tokens: u64 = escalation
            .server_steps
            .iter()
            .filter(|s| !s.messages.is_empty())
            .filter_map(|s| {
                let c = s.completion()?;
                self.observe(None, Some((c, s.wall_ms)));
                Some(c.usage.prompt_tokens + c.usage.completion_tokens)
            })
            .sum();
        let recorded = match &reservation {
            Some(id) => self.ledger.settle(id, tokens, self.window()).await,
            None if tokens > 0 => self.ledger.add(tokens, self.window()).await,
            None => Ok(()),
        };
        if let Err(e) = recorded {
            tracing::warn!(error = %e, tokens, "server tokens not recorded in the budget");
        }
        record.steps.extend(escalation.server_steps);
        record.steps.extend(escalation.client_steps);
        match escalation.outcome {
            Err(server_error) => {
                record.fallback = Some(format!("server failed, answered locally: {server_error}"));
            }
            Ok(answer) => {
                record.route = route;
                match answer {
                    Ok(text) => record.answer = text,
                    Err(e) => {
                        record.fallback = Some(format!("refinement failed, the draft answers: {e}"))
                    }
                }
            }
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests;

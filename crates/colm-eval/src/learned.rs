//! A routing policy learned from logged outcomes (Yuan et al., "LLMs over networks", arXiv
//! 2605.08626: routing policies learned from logs; evaluation after RouteLLM, Ong et al. 2024,
//! arXiv 2406.18665).
//!
//! From a `colm eval` run holding the `local` strategy and an escalation strategy (`server` by
//! default) on the same items, each item becomes an [`Example`]: features of the local draft
//! and the query ([`FEATURES`]), whether local and escalation were right, and the escalation's
//! server tokens. A logistic regression (linfa-logistic, L2-regularised) predicts whether
//! escalating **helps** (escalation right, local wrong). The router escalates the items whose
//! predicted probability is at least a threshold, chosen on the training items so that the
//! escalations spend at most a target share of the server tokens escalating everything would.
//!
//! [`curve`] sweeps the threshold on held-back items: for each share of server tokens, the
//! accuracy, and the **share of the server's gain reached** (RouteLLM's PGR):
//! `(accuracy − local) / (escalation − local)`.
//!
//! [`cross_fitted`] routes every item of a run with routers trained on the other folds, so that
//! the learned router gets a point on a run's quality–cost frontier ([`crate::report`]) next to
//! the strategies that ran on all the items.

use std::collections::BTreeMap;

use anyhow::Context;
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::runner::Record;
use crate::strategy::Arm;

/// Names of the features, in the order of [`Example::features`]: the draft's mean token
/// log-probability (nats), its completion tokens, whether it hit the token limit (0/1),
/// whether no answer could be extracted from it (0/1), the query's length in characters, and
/// how many numbers the query holds.
pub const FEATURES: [&str; 6] = [
    "mean_logprob",
    "draft_tokens",
    "truncated",
    "no_answer",
    "query_chars",
    "query_numbers",
];

/// One item as the router sees it, with the logged outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Item id.
    pub item: String,
    /// Position of the item in the suite, from 1.
    pub index: usize,
    /// Feature values, in [`FEATURES`] order.
    pub features: Vec<f64>,
    /// The local answer was right.
    pub local_right: bool,
    /// The escalation's answer was right.
    pub escalation_right: bool,
    /// Server tokens (prompt + completion) the escalation spent.
    pub server_tokens: u64,
}

impl Example {
    /// Escalating helps: the escalation is right where local was wrong.
    pub fn helps(&self) -> bool {
        self.escalation_right && !self.local_right
    }
}

/// The feature vector ([`FEATURES`] order) of a local answer: its mean token log-probability
/// (nats), completion tokens, whether it hit the token limit, whether no answer could be
/// extracted from it, and its query.
fn feature_vector(
    mean_logprob: f64,
    tokens: f64,
    truncated: bool,
    no_answer: bool,
    query: &str,
) -> Vec<f64> {
    let numbers = query
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .count();
    vec![
        mean_logprob,
        tokens,
        f64::from(u8::from(truncated)),
        f64::from(u8::from(no_answer)),
        query.chars().count() as f64,
        numbers as f64,
    ]
}

/// The features of a local record: from its transcript (`{messages, completion}`) and score.
fn features(r: &Record) -> Option<Vec<f64>> {
    let t = &r.turns.first()?.transcript;
    let c = &t["completion"];
    let query = t["messages"]
        .as_array()?
        .iter()
        .rev()
        .find(|m| m["role"] == "user")?["content"]
        .as_str()?;
    Some(feature_vector(
        c["mean_logprob"].as_f64()?,
        c["usage"]["completion_tokens"].as_f64()?,
        c["finish_reason"] == "length",
        r.score.as_ref().is_none_or(|s| s.extracted.is_none()),
        query,
    ))
}

/// Pairs each record of the `local` strategy (the client model alone: `local` in a run) with
/// the `escalation` strategy's record of the same item.
///
/// # Errors
/// When the run has no `escalation` records, or no item has both with a confidence logged.
pub fn examples(records: &[Record], local: &Arm, escalation: &Arm) -> anyhow::Result<Vec<Example>> {
    let esc: BTreeMap<&str, &Record> = records
        .iter()
        .filter(|r| r.strategy == *escalation)
        .map(|r| (r.item.as_str(), r))
        .collect();
    anyhow::ensure!(!esc.is_empty(), "the run has no `{escalation}` records");
    let mut out: Vec<Example> = records
        .iter()
        .filter(|r| r.strategy == *local)
        .filter_map(|r| {
            let e = esc.get(r.item.as_str())?;
            Some(Example {
                item: r.item.clone(),
                index: r.index,
                features: features(r)?,
                local_right: r.correct(),
                escalation_right: e.correct(),
                server_tokens: e.tokens.server_prompt + e.tokens.server_completion,
            })
        })
        .collect();
    anyhow::ensure!(
        !out.is_empty(),
        "no item has both a `{local}` record with a logged confidence and a `{escalation}` record"
    );
    out.sort_by_key(|e| e.index);
    Ok(out)
}

/// One answer of a deployment's interaction log (`colm serve --interaction-log`) that carries
/// feedback: what [`log_examples`] pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedAnswer {
    /// The record id.
    pub id: String,
    /// When the request arrived, Unix ms.
    pub created_ms: u64,
    /// The model id asked.
    pub model: String,
    /// The query (the last user turn).
    pub query: String,
    /// The answer text.
    pub answer: String,
    /// The answer's mean token log-probability (nats), when the model gave one.
    pub mean_logprob: Option<f64>,
    /// Prompt tokens of the answer's model calls.
    pub prompt_tokens: u64,
    /// Completion tokens of the answer's model calls.
    pub completion_tokens: u64,
    /// Whether the answer hit the token limit (`finish_reason` `length`).
    pub truncated: bool,
    /// The feedback: the answer was right.
    pub right: bool,
}

use colm_core::query::normalise_query;

/// Pairs, per [normalised query](normalise_query), the latest answer of model `local` with
/// the latest answer of model `escalation` (RouteLLM learns from such pairs of a weak and a
/// strong model's outcomes on one query). The features are the local answer's
/// ([`FEATURES`]; `no_answer` when [`colm_core::answer::extract_answer`] finds no final
/// answer in its text); the outcomes are the feedback; the server tokens are the escalation's
/// prompt and completion tokens. Examples are numbered from 1 in the order of their local
/// answers' arrival, so [`split`] holds back the same records every time.
///
/// # Errors
/// When no answer is of model `escalation` or of model `local` (the models present are named),
/// or no query has both with a log-probability.
pub fn log_examples(
    answers: &[LoggedAnswer],
    local: &str,
    escalation: &str,
) -> anyhow::Result<Vec<Example>> {
    let latest = |model: &str| -> BTreeMap<String, &LoggedAnswer> {
        let mut by: BTreeMap<String, &LoggedAnswer> = BTreeMap::new();
        for a in answers.iter().filter(|a| a.model == model) {
            let slot = by.entry(normalise_query(&a.query)).or_insert(a);
            if (a.created_ms, &a.id) > (slot.created_ms, &slot.id) {
                *slot = a;
            }
        }
        by
    };
    let (loc, esc) = (latest(local), latest(escalation));
    let models = || {
        let mut m: Vec<&str> = answers.iter().map(|a| a.model.as_str()).collect();
        m.sort_unstable();
        m.dedup();
        m.join(", ")
    };
    for (name, set) in [(local, &loc), (escalation, &esc)] {
        anyhow::ensure!(
            !set.is_empty(),
            "no answer of model `{name}` has feedback (models with feedback: {})",
            models()
        );
    }
    let mut pairs: Vec<(&LoggedAnswer, &LoggedAnswer)> = loc
        .iter()
        .filter_map(|(q, l)| Some((*l, *esc.get(q)?)))
        .filter(|(l, _)| l.mean_logprob.is_some())
        .collect();
    anyhow::ensure!(
        !pairs.is_empty(),
        "no query has both a `{local}` answer with a log-probability and a `{escalation}` answer, \
         each with feedback"
    );
    pairs.sort_by(|a, b| (a.0.created_ms, &a.0.id).cmp(&(b.0.created_ms, &b.0.id)));
    Ok(pairs
        .into_iter()
        .enumerate()
        .map(|(i, (l, e))| Example {
            item: l.id.clone(),
            index: i + 1,
            features: feature_vector(
                l.mean_logprob.unwrap_or_default(),
                l.completion_tokens as f64,
                l.truncated,
                colm_core::answer::extract_answer(&l.answer).is_none(),
                &l.query,
            ),
            local_right: l.right,
            escalation_right: e.right,
            server_tokens: e.prompt_tokens + e.completion_tokens,
        })
        .collect())
}

/// Splits examples deterministically: items whose position is a multiple of `every` are held
/// back for evaluation, the others train.
pub fn split(examples: &[Example], every: usize) -> (Vec<Example>, Vec<Example>) {
    let every = every.max(2);
    examples.iter().cloned().partition(|e| e.index % every != 0)
}

/// A trained router: standardisation, logistic weights and the escalation threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnedRouter {
    /// Feature names ([`FEATURES`]).
    pub features: Vec<String>,
    /// Feature means on the training items.
    pub mean: Vec<f64>,
    /// Feature standard deviations on the training items (1 where constant).
    pub std: Vec<f64>,
    /// Logistic weights on the standardised features.
    pub weights: Vec<f64>,
    /// Logistic intercept.
    pub intercept: f64,
    /// Escalate when the predicted probability that escalation helps is ≥ this.
    pub threshold: f64,
    /// Target share of the all-escalation server tokens the threshold was chosen for.
    pub budget_share: f64,
    /// What an escalation runs: the strategy (from an eval run) or the model (from an
    /// interaction log) the router was trained for.
    pub escalation: String,
    /// Training items, and those where escalating helped.
    pub trained_on: (usize, usize),
}

impl LearnedRouter {
    /// Fits the regression on `train` and picks the threshold for `budget_share` (0–1) of the
    /// server tokens.
    ///
    /// # Errors
    /// When `train` is empty, holds one class only (escalation never or always helps), or the
    /// fit fails.
    pub fn train(train: &[Example], escalation: &str, budget_share: f64) -> anyhow::Result<Self> {
        anyhow::ensure!(!train.is_empty(), "no training items");
        let positives = train.iter().filter(|e| e.helps()).count();
        anyhow::ensure!(
            positives > 0 && positives < train.len(),
            "escalation helps on {positives} of {} training items: nothing to learn",
            train.len()
        );
        let d = FEATURES.len();
        let n = train.len() as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| train.iter().map(|e| e.features[j]).sum::<f64>() / n)
            .collect();
        let std: Vec<f64> = (0..d)
            .map(|j| {
                let v = train
                    .iter()
                    .map(|e| (e.features[j] - mean[j]).powi(2))
                    .sum::<f64>()
                    / n;
                if v > 1e-12 {
                    v.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let x = Array2::from_shape_fn((train.len(), d), |(i, j)| {
            (train[i].features[j] - mean[j]) / std[j]
        });
        let y: Array1<usize> = train.iter().map(|e| usize::from(e.helps())).collect();
        let model = LogisticRegression::default()
            .alpha(1.0)
            .max_iterations(200)
            .fit(&Dataset::new(x, y))
            .context("fitting the logistic regression")?;
        let mut router = Self {
            features: FEATURES.iter().map(|s| (*s).to_owned()).collect(),
            mean,
            std,
            weights: model.params().to_vec(),
            intercept: model.intercept(),
            threshold: 1.0,
            budget_share,
            escalation: escalation.to_owned(),
            trained_on: (train.len(), positives),
        };
        router.threshold = router.threshold_for(train, budget_share);
        Ok(router)
    }

    /// The predicted probability that escalating `features` helps.
    pub fn probability(&self, features: &[f64]) -> f64 {
        let z: f64 = features
            .iter()
            .zip(&self.mean)
            .zip(&self.std)
            .zip(&self.weights)
            .map(|(((x, m), s), w)| w * (x - m) / s)
            .sum::<f64>()
            + self.intercept;
        1.0 / (1.0 + (-z).exp())
    }

    /// Whether to escalate `features`.
    pub fn escalate(&self, features: &[f64]) -> bool {
        self.probability(features) >= self.threshold
    }

    /// The lowest threshold whose escalations on `examples` spend at most `share` of the
    /// server tokens escalating all of them would (1.0 + ε, i.e. never, when even the most
    /// likely item does not fit).
    fn threshold_for(&self, examples: &[Example], share: f64) -> f64 {
        let total: u64 = examples.iter().map(|e| e.server_tokens).sum();
        let mut scored: Vec<(f64, u64)> = examples
            .iter()
            .map(|e| (self.probability(&e.features), e.server_tokens))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut spent = 0u64;
        let mut threshold = 1.0 + f64::EPSILON;
        for (p, tokens) in scored {
            if (spent + tokens) as f64 > share * total as f64 {
                break;
            }
            spent += tokens;
            threshold = p;
        }
        threshold
    }
}

/// One point of an accuracy–cost curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Items escalated.
    pub escalated: usize,
    /// Share of the all-escalation server tokens spent (0–1).
    pub server_token_share: f64,
    /// Accuracy of the routed answers (0–1).
    pub accuracy: f64,
    /// Share of the escalation's gain over local reached (RouteLLM's PGR); 0 when escalating
    /// everything gains nothing.
    pub gain_share: f64,
}

/// The accuracy–cost curve of escalating items in decreasing order of `scores` (one per
/// example; higher = escalate first), from none to all.
pub fn curve(examples: &[Example], scores: &[f64]) -> Vec<CurvePoint> {
    let n = examples.len().max(1) as f64;
    let total: u64 = examples.iter().map(|e| e.server_tokens).sum();
    let local = examples.iter().filter(|e| e.local_right).count() as f64 / n;
    let all = examples.iter().filter(|e| e.escalation_right).count() as f64 / n;
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut right = examples.iter().filter(|e| e.local_right).count() as f64;
    let mut spent = 0u64;
    let point = |escalated: usize, right: f64, spent: u64| {
        let accuracy = right / n;
        CurvePoint {
            escalated,
            server_token_share: if total == 0 {
                0.0
            } else {
                spent as f64 / total as f64
            },
            accuracy,
            gain_share: if (all - local).abs() < 1e-12 {
                0.0
            } else {
                (accuracy - local) / (all - local)
            },
        }
    };
    let mut out = vec![point(0, right, 0)];
    for (j, &i) in order.iter().enumerate() {
        let e = &examples[i];
        right += f64::from(u8::from(e.escalation_right)) - f64::from(u8::from(e.local_right));
        spent += e.server_tokens;
        out.push(point(j + 1, right, spent));
    }
    out
}

/// The most accurate point of `curve` that spends at most `budget` (0–1) of the server tokens.
pub fn gain_at(curve: &[CurvePoint], budget: f64) -> Option<CurvePoint> {
    curve
        .iter()
        .filter(|p| p.server_token_share <= budget + 1e-9)
        .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
        .copied()
}

/// Name of the learned router's rows in a run's report ([`cross_fitted`]).
pub const CROSS_FITTED: &str = Arm::LEARNED_ROUTER;

/// The learned router's answers on every item of a run, **cross-fitted** so that its point can
/// stand next to the strategies that ran on all items: the items are split into `folds` by
/// position (`index % folds`), and each fold is routed by a router trained (as
/// [`LearnedRouter::train`], for `budget_share` of the server tokens) on the other folds only,
/// so no item is routed by a router that saw its outcome.
///
/// An escalated item takes the `escalation` record's answer and score and spends both records'
/// tokens and wall time (the draft is written before the router decides and is kept when it
/// does not escalate); an item kept on the device is the `local` record. The records are named
/// `learned-router:budget=B` ([`CROSS_FITTED`]) and ordered by item position; items missing
/// either record are left out.
///
/// # Errors
/// As [`examples`]; and when a fold's training items hold one class only (the fold is named).
pub fn cross_fitted(
    records: &[Record],
    escalation: &Arm,
    budget_share: f64,
    folds: usize,
) -> anyhow::Result<Vec<Record>> {
    let folds = folds.max(2);
    let all = examples(records, &crate::metrics::BASELINE, escalation)?;
    let by = |strategy: &Arm| -> BTreeMap<&str, &Record> {
        records
            .iter()
            .filter(|r| r.strategy == *strategy)
            .map(|r| (r.item.as_str(), r))
            .collect()
    };
    let (local, esc) = (by(&crate::metrics::BASELINE), by(escalation));
    let name = Arm::LearnedRouter {
        budget: budget_share,
    };
    let mut out = Vec::with_capacity(all.len());
    for fold in 0..folds {
        let (test, train): (Vec<Example>, Vec<Example>) =
            all.iter().cloned().partition(|e| e.index % folds == fold);
        if test.is_empty() {
            continue;
        }
        let router = LearnedRouter::train(&train, &escalation.to_string(), budget_share)
            .with_context(|| format!("training on the items outside fold {}/{folds}", fold + 1))?;
        for e in &test {
            let (Some(l), Some(x)) = (local.get(e.item.as_str()), esc.get(e.item.as_str())) else {
                continue;
            };
            let mut r = if router.escalate(&e.features) {
                let mut r = (*x).clone();
                r.tokens.sum(l.tokens);
                r.wall_ms += l.wall_ms;
                r
            } else {
                (*l).clone()
            };
            r.strategy.clone_from(&name);
            out.push(r);
        }
    }
    out.sort_by_key(|r| r.index);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::RoleTokens;

    fn record(index: usize, strategy: &str, logprob: f64, right: bool) -> Record {
        let turn = crate::strategy::TurnOutcome {
            answer: Some("42".into()),
            error: None,
            tokens: RoleTokens {
                server_completion: if strategy == "server" { 100 } else { 0 },
                client_completion: if strategy == "local" { 50 } else { 0 },
                ..RoleTokens::default()
            },
            server_calls: u32::from(strategy == "server"),
            wall_ms: 1000.0,
            cached_calls: 0,
            transcript: serde_json::json!({
                "messages": [{"role": "user", "content": format!("Question {index} with 3 apples")}],
                "completion": {
                    "mean_logprob": logprob,
                    "usage": {"completion_tokens": 50},
                    "finish_reason": "stop",
                },
            }),
        };
        Record {
            score: Some(crate::suite::Score::binary(right, Some("42".into()))),
            ..Record::of_turns(
                "gsm8k",
                &format!("t:{index}"),
                index,
                Arm::parse(strategy).unwrap(),
                vec![turn],
            )
        }
    }

    /// Every item is routed once, by a router that did not train on it; with a budget that
    /// covers the unsure drafts, the cross-fitted router escalates exactly those and is right on
    /// all, and an escalated item spends the draft's and the server's tokens.
    #[test]
    fn cross_fitted_routes_every_item_with_a_router_that_did_not_see_it() {
        let mut records = Vec::new();
        for i in 1..=60 {
            let unsure = i % 4 != 0;
            let lp = if unsure { -0.6 - 0.01 * i as f64 } else { -0.1 };
            records.push(record(i, "local", lp, !unsure));
            records.push(record(i, "server", lp, true));
        }
        let routed = cross_fitted(&records, &Arm::SERVER, 0.8, 3).unwrap();
        assert_eq!(routed.len(), 60);
        assert!(routed.windows(2).all(|w| w[0].index < w[1].index));
        assert!(routed
            .iter()
            .all(|r| r.strategy.to_string() == "learned-router:budget=0.8"));
        assert!(
            routed.iter().all(Record::correct),
            "every unsure draft escalated"
        );
        let escalated: Vec<&Record> = routed.iter().filter(|r| r.server_calls == 1).collect();
        // All 45 unsure drafts, and not every sure one (the budget is 80%).
        assert!((45..60).contains(&escalated.len()), "{}", escalated.len());
        assert!(escalated
            .iter()
            .all(|r| r.tokens.server_completion == 100 && r.tokens.client_completion == 50));
        assert!(escalated.iter().all(|r| (r.wall_ms - 2000.0).abs() < 1e-9));
        // A budget of nothing keeps every item on the device.
        let kept = cross_fitted(&records, &Arm::SERVER, 0.0, 3).unwrap();
        assert_eq!(kept.iter().filter(|r| r.correct()).count(), 15);
        // Nothing to learn in a fold is an error that names the fold.
        let hopeless: Vec<Record> = (1..=9)
            .flat_map(|i| {
                [
                    record(i, "local", -0.5, false),
                    record(i, "server", -0.5, true),
                ]
            })
            .collect();
        let err = cross_fitted(&hopeless, &Arm::SERVER, 0.5, 3).unwrap_err();
        assert!(format!("{err:#}").contains("fold 1/3"), "{err:#}");
    }

    fn ex(index: usize, logprob: f64, local: bool, esc: bool) -> Example {
        Example {
            item: format!("t:{index}"),
            index,
            features: vec![logprob, 200.0, 0.0, 0.0, 300.0, 3.0],
            local_right: local,
            escalation_right: esc,
            server_tokens: 100,
        }
    }

    /// Low confidence ⇔ local wrong and escalation right: the regression must learn it, and
    /// its curve must beat escalating at random.
    #[test]
    fn learns_that_low_confidence_drafts_gain_from_escalation() {
        let examples: Vec<Example> = (1..=60)
            .map(|i| {
                let unsure = i % 3 != 0;
                let lp = if unsure { -0.6 - 0.01 * i as f64 } else { -0.1 };
                ex(i, lp, !unsure, true)
            })
            .collect();
        let (train, test) = split(&examples, 4);
        assert_eq!(test.len(), 15);
        let router = LearnedRouter::train(&train, "server", 0.5).unwrap();
        let sure = router.probability(&[-0.1, 200.0, 0.0, 0.0, 300.0, 3.0]);
        let unsure = router.probability(&[-0.9, 200.0, 0.0, 0.0, 300.0, 3.0]);
        assert!(unsure > sure, "{unsure} vs {sure}");
        assert!(router.escalate(&[-0.9, 200.0, 0.0, 0.0, 300.0, 3.0]));
        let scores: Vec<f64> = test
            .iter()
            .map(|e| router.probability(&e.features))
            .collect();
        let c = curve(&test, &scores);
        assert_eq!(c.len(), test.len() + 1);
        assert_eq!(c[0].gain_share, 0.0);
        assert!((c.last().unwrap().gain_share - 1.0).abs() < 1e-9);
        // Escalating only the unsure items reaches the full gain with fewer tokens.
        let unsure_share = test.iter().filter(|e| !e.local_right).count() as f64 / 15.0;
        let p = gain_at(&c, unsure_share).unwrap();
        assert!((p.gain_share - 1.0).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn one_class_or_no_data_is_an_error() {
        let all_help: Vec<Example> = (1..=10).map(|i| ex(i, -0.5, false, true)).collect();
        assert!(LearnedRouter::train(&all_help, "server", 0.5).is_err());
        assert!(LearnedRouter::train(&[], "server", 0.5).is_err());
    }

    fn answer(id: &str, ms: u64, model: &str, query: &str, lp: f64, right: bool) -> LoggedAnswer {
        LoggedAnswer {
            id: id.into(),
            created_ms: ms,
            model: model.into(),
            query: query.into(),
            answer: "The answer is 18.".into(),
            mean_logprob: Some(lp),
            prompt_tokens: 40,
            completion_tokens: 60,
            truncated: false,
            right,
        }
    }

    /// Answers of two models to one query pair up across spacing and case, the latest answer
    /// of a model wins, unpaired queries are left out, and the order is the local answers'.
    #[test]
    fn log_answers_pair_by_normalised_query() {
        let answers = vec![
            answer("rec_b", 20, "small", "How many  eggs?", -0.9, false),
            answer("rec_a", 10, "small", "What is 2 + 3?", -0.2, true),
            answer("rec_c", 30, "big", "how many eggs?", -0.1, true),
            answer("rec_d", 40, "big", "What is 2 + 3?", -0.1, false),
            answer("rec_e", 50, "big", "What is 2 + 3?", -0.1, true),
            answer("rec_f", 60, "small", "Unpaired 7?", -0.5, false),
        ];
        let ex = log_examples(&answers, "small", "big").unwrap();
        assert_eq!(ex.len(), 2);
        assert_eq!((ex[0].item.as_str(), ex[0].index), ("rec_a", 1));
        assert_eq!((ex[1].item.as_str(), ex[1].index), ("rec_b", 2));
        assert!(
            ex[0].local_right && ex[0].escalation_right,
            "rec_e is the latest"
        );
        assert!(ex[1].helps());
        assert_eq!(ex[1].features, vec![-0.9, 60.0, 0.0, 0.0, 15.0, 0.0]);
        assert_eq!(ex[0].features[5], 2.0);
        assert_eq!(ex[0].server_tokens, 100);
        let err = log_examples(&answers, "small", "huge").unwrap_err();
        assert!(
            err.to_string().contains("models with feedback: big, small"),
            "{err}"
        );
    }
}

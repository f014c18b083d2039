//! Metrics of a run, per strategy.
//!
//! - **accuracy** = right / items, with the Wilson score interval at 95% ([`wilson`]); an item
//!   with an error (no answer, scoring failed) counts as wrong and is also counted apart;
//! - **recovery** = among the items the client got wrong alone (`local`), the share the
//!   strategy gets right — CoLM's headline metric, accuracy on "previously failed queries"
//!   (Huang et al., AAAI 2026, §5);
//! - **regressions** = among the items `local` got right, the share the strategy gets wrong;
//! - judged suites (MT-Bench): mean rating with a normal 95% interval (1.96 · sd / √n);
//! - tokens by role (mean per item), server calls, latency p50 / p95 of an item's wall time.
//!
//! Recovery and regressions use the items both the strategy and `local` answered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::runner::Record;
use crate::strategy::Arm;

/// The baseline strategy of recovery and regressions.
pub const BASELINE: Arm = Arm::LOCAL;

/// Wilson score interval for `k` successes in `n` trials at 95% (z = 1.96): `(low, high)`;
/// `(0, 0)` when `n == 0`. Source: Wilson (1927), as recommended in `../shared/data/README.md`.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let z = 1.96_f64;
    let n_f = n as f64;
    let p = k as f64 / n_f;
    let denom = 1.0 + z * z / n_f;
    let centre = (p + z * z / (2.0 * n_f)) / denom;
    let half = z * ((p * (1.0 - p) / n_f) + z * z / (4.0 * n_f * n_f)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// A proportion with its Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Proportion {
    /// Successes.
    pub k: usize,
    /// Trials.
    pub n: usize,
    /// k / n (0 when n = 0).
    pub rate: f64,
    /// 95% Wilson interval.
    pub ci: (f64, f64),
}

impl Proportion {
    /// `k` of `n`.
    pub fn new(k: usize, n: usize) -> Self {
        Self {
            k,
            n,
            rate: if n == 0 { 0.0 } else { k as f64 / n as f64 },
            ci: wilson(k, n),
        }
    }
}

/// Mean tokens per item by role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MeanTokens {
    /// Client prompt tokens.
    pub client_prompt: f64,
    /// Client completion tokens.
    pub client_completion: f64,
    /// Server prompt tokens.
    pub server_prompt: f64,
    /// Server completion (decode) tokens.
    pub server_completion: f64,
}

/// The metrics of one strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyMetrics {
    /// The strategy (its text form in JSON).
    pub strategy: Arm,
    /// Items with a record.
    pub items: usize,
    /// Right answers over items (binary suites).
    pub accuracy: Option<Proportion>,
    /// Mean score and its 95% interval (judged suites: rating 1–10).
    pub mean_score: Option<(f64, (f64, f64))>,
    /// Share of `local`'s wrong items answered right.
    pub recovery: Option<Proportion>,
    /// Share of `local`'s right items answered wrong.
    pub regressions: Option<Proportion>,
    /// Items without a score (no answer or scoring failed).
    pub errors: usize,
    /// Mean tokens per item by role.
    pub tokens: MeanTokens,
    /// Server model calls per item.
    pub server_calls_per_item: f64,
    /// Median wall time of an item, ms.
    pub latency_p50_ms: f64,
    /// 95th percentile wall time of an item, ms.
    pub latency_p95_ms: f64,
    /// Mean bytes on the wire per item, when a network was used.
    pub wire_bytes_per_item: Option<f64>,
}

/// The `q`-quantile (0–1) of `values` by the nearest-rank method; 0 for none.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Metrics per strategy, in the order strategies first appear in `records`. When an item
/// has several records for one strategy (it should not), the last counts.
pub fn summarize(records: &[Record]) -> Vec<StrategyMetrics> {
    // Strategies in order of first appearance, each with its records by item.
    let mut by: Vec<(&Arm, BTreeMap<&str, &Record>)> = Vec::new();
    for r in records {
        let at = match by.iter().position(|(s, _)| **s == r.strategy) {
            Some(i) => i,
            None => {
                by.push((&r.strategy, BTreeMap::new()));
                by.len() - 1
            }
        };
        by[at].1.insert(&r.item, r);
    }
    let baseline = by
        .iter()
        .find(|(s, _)| **s == BASELINE)
        .map(|(_, recs)| recs.clone());
    by.iter()
        .map(|(name, recs)| metrics(name, recs, baseline.as_ref()))
        .collect()
}

fn metrics(
    name: &Arm,
    recs: &BTreeMap<&str, &Record>,
    baseline: Option<&BTreeMap<&str, &Record>>,
) -> StrategyMetrics {
    let n = recs.len();
    let binary = recs
        .values()
        .any(|r| r.score.as_ref().is_some_and(|s| s.correct.is_some()));
    let correct = recs.values().filter(|r| r.correct()).count();
    let scores: Vec<f64> = recs
        .values()
        .filter_map(|r| r.score.as_ref().map(|s| s.value))
        .collect();
    let mean_score = (!binary && !scores.is_empty()).then(|| {
        let m = scores.iter().sum::<f64>() / scores.len() as f64;
        let var =
            scores.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (scores.len().max(2) - 1) as f64;
        let half = 1.96 * (var / scores.len() as f64).sqrt();
        (m, (m - half, m + half))
    });
    let (recovery, regressions) = match (binary, baseline) {
        (true, Some(base)) => {
            let (mut failed, mut recovered, mut solved, mut regressed) = (0, 0, 0, 0);
            for (item, r) in recs {
                let Some(b) = base.get(item) else { continue };
                if b.correct() {
                    solved += 1;
                    regressed += usize::from(!r.correct());
                } else {
                    failed += 1;
                    recovered += usize::from(r.correct());
                }
            }
            (
                Some(Proportion::new(recovered, failed)),
                Some(Proportion::new(regressed, solved)),
            )
        }
        _ => (None, None),
    };
    let nf = n.max(1) as f64;
    let sum = |f: fn(&Record) -> u64| recs.values().map(|r| f(r)).sum::<u64>() as f64 / nf;
    let latencies: Vec<f64> = recs.values().map(|r| r.wall_ms).collect();
    let wire: Vec<u64> = recs.values().filter_map(|r| r.wire_bytes).collect();
    StrategyMetrics {
        strategy: name.clone(),
        items: n,
        accuracy: binary.then(|| Proportion::new(correct, n)),
        mean_score,
        recovery,
        regressions,
        errors: recs.values().filter(|r| r.score.is_none()).count(),
        tokens: MeanTokens {
            client_prompt: sum(|r| r.tokens.client_prompt),
            client_completion: sum(|r| r.tokens.client_completion),
            server_prompt: sum(|r| r.tokens.server_prompt),
            server_completion: sum(|r| r.tokens.server_completion),
        },
        server_calls_per_item: recs
            .values()
            .map(|r| f64::from(r.server_calls))
            .sum::<f64>()
            / nf,
        latency_p50_ms: percentile(&latencies, 0.5),
        latency_p95_ms: percentile(&latencies, 0.95),
        wire_bytes_per_item: (!wire.is_empty())
            .then(|| wire.iter().sum::<u64>() as f64 / wire.len() as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::RoleTokens;
    use crate::suite::Score;

    #[test]
    fn wilson_matches_published_values() {
        // 50 of 100: 0.404–0.596; 0 of 10: 0–0.278 (standard tables).
        let (lo, hi) = wilson(50, 100);
        assert!(
            (lo - 0.4038).abs() < 1e-3 && (hi - 0.5962).abs() < 1e-3,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson(0, 10);
        assert!(lo == 0.0 && (hi - 0.2775).abs() < 1e-3, "{hi}");
        assert_eq!(wilson(0, 0), (0.0, 0.0));
    }

    fn rec(item: &str, strategy: &str, correct: bool, ms: f64) -> Record {
        Record {
            suite: "gsm8k".into(),
            item: item.into(),
            index: 1,
            category: None,
            strategy: Arm::parse(strategy).unwrap(),
            turns: Vec::new(),
            score: Some(Score::binary(correct, None)),
            error: None,
            tokens: RoleTokens {
                server_completion: 10,
                ..RoleTokens::default()
            },
            server_calls: 1,
            wall_ms: ms,
            wire_bytes: None,
        }
    }

    #[test]
    fn recovery_and_regressions_are_against_local() {
        // local: right on 1, 2; wrong on 3, 4, 5. colm: right on 1, 3, 4; wrong on 2, 5.
        let local = [true, true, false, false, false];
        let colm = [true, false, true, true, false];
        let mut records = Vec::new();
        for (i, (l, c)) in local.iter().zip(colm).enumerate() {
            records.push(rec(&format!("i{i}"), "local", *l, 100.0));
            records.push(rec(&format!("i{i}"), "colm", c, 100.0 * (i + 1) as f64));
        }
        let m = summarize(&records);
        assert_eq!(m[0].strategy, Arm::LOCAL);
        assert_eq!(m[0].recovery.unwrap().k, 0);
        let colm = &m[1];
        assert_eq!(colm.accuracy.unwrap().k, 3);
        let rec = colm.recovery.unwrap();
        assert_eq!((rec.k, rec.n), (2, 3));
        let reg = colm.regressions.unwrap();
        assert_eq!((reg.k, reg.n), (1, 2));
        assert_eq!(colm.latency_p50_ms, 300.0);
        assert_eq!(colm.latency_p95_ms, 500.0);
        assert_eq!(colm.tokens.server_completion, 10.0);
    }
}

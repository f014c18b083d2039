//! Unit tests of the router's decisions with scripted models (mean log-probability −0.5).

use std::sync::Arc;

use super::*;
use crate::model::ChatMessage;
use crate::named::Named;
use crate::testing::{last_user, Scripted};

/// A device that drafts `DRAFT: 17` and refines (a prompt in either form, with the guidance)
/// to `REFINED: 18`.
fn local() -> Arc<Scripted> {
    Scripted::new("small", |m| {
        Ok(if m.iter().any(|x| x.content.contains("<guidance>")) {
            "REFINED: 18".into()
        } else {
            "DRAFT: 17".into()
        })
    })
}

/// A server echoing what it was sent after `SERVER:`.
fn server() -> Arc<Scripted> {
    Scripted::new("big", |m| Ok(format!("SERVER: {}", last_user(m))))
}

fn sent(model: &Scripted) -> String {
    model
        .calls()
        .iter()
        .flatten()
        .map(|m: &ChatMessage| m.content.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

fn router(config: RouterConfig) -> (Router, Arc<Scripted>, Arc<Scripted>) {
    let (l, s) = (local(), server());
    (Router::new(l.clone(), s.clone(), config), l, s)
}

#[tokio::test]
async fn confident_drafts_stay_local_and_others_escalate() {
    let p = SamplingParams::default();
    let (r, _, s) = router(RouterConfig {
        threshold: Some(-0.6),
        escalate_to: Route::Remote,
        ..RouterConfig::default()
    });
    let rec = r.answer(&Query::new("Q?"), false, &p, None).await.unwrap();
    assert_eq!(
        (rec.route, rec.answer.as_str()),
        (Route::Local, "DRAFT: 17")
    );
    assert!(rec.reasons[0].contains("≥ τ"), "{:?}", rec.reasons);
    assert!(s.calls().is_empty());

    let (r, _, s) = router(RouterConfig {
        threshold: Some(-0.4),
        escalate_to: Route::Remote,
        ..RouterConfig::default()
    });
    let rec = r.answer(&Query::new("Q?"), false, &p, None).await.unwrap();
    assert_eq!(
        (rec.route, rec.answer.as_str()),
        (Route::Remote, "SERVER: Q?")
    );
    assert_eq!(rec.steps.len(), 2);
    assert_eq!(s.calls().len(), 1);
    assert!(r.spent_in_window().await.unwrap() > 0);
}

#[tokio::test]
async fn colm_route_refines_the_draft_with_the_servers_reference_on_the_device() {
    let (r, l, s) = router(RouterConfig::default());
    let rec = r
        .answer(&Query::new("Q?"), false, &SamplingParams::default(), None)
        .await
        .unwrap();
    assert_eq!(rec.route, Route::Colm);
    assert_eq!(rec.answer, "REFINED: 18");
    // The server answered the query itself; the draft never left the device.
    assert!(!sent(&s).contains("DRAFT: 17"));
    assert_eq!(s.calls()[0], prompts::reference(&Query::new("Q?"), None));
    let refinement = &l.calls()[1];
    assert!(refinement
        .iter()
        .any(|m| m.content.contains("<guidance>\nSERVER: Q?")));
    // The draft is in the refinement prompt only in the `draft` form.
    assert_eq!(
        refinement.iter().any(|m| m.content.contains("DRAFT: 17")),
        RouterConfig::default().refine == prompts::RefineContext::Draft
    );
    let kinds: Vec<StepKind> = rec.steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [StepKind::Draft, StepKind::Reference, StepKind::Refinement]
    );
}

#[tokio::test]
async fn sensitive_queries_stay_local_or_leave_redacted_and_come_back_restored() {
    let q = "Write to ana@corp.com about card 4111 1111 1111 1111 for Ana.";
    let p = SamplingParams::default();
    let (r, _, s) = router(RouterConfig {
        residency: Residency::Local,
        escalate_to: Route::Remote,
        ..RouterConfig::default()
    });
    let rec = r.answer(&Query::new(q), false, &p, None).await.unwrap();
    assert_eq!(rec.route, Route::Local);
    assert!(rec.reasons[0].contains("EMAIL, CARD"), "{:?}", rec.reasons);
    assert!(s.calls().is_empty());

    let (r, _, s) = router(RouterConfig {
        escalate_to: Route::Remote,
        sensitive_names: vec!["Ana".into()],
        ..RouterConfig::default()
    });
    let rec = r.answer(&Query::new(q), false, &p, None).await.unwrap();
    let out = sent(&s);
    assert!(!out.contains("ana@corp.com") && !out.contains("4111") && !out.contains("Ana"));
    assert!(out.contains("<EMAIL_1>") && out.contains("<CARD_1>") && out.contains("<NAME_1>"));
    assert!(rec.redacted);
    // The server echoed the placeholders; the device restores them.
    assert_eq!(rec.answer, format!("SERVER: {q}"));

    // Flagged sensitive with nothing to replace: the query cannot leave.
    let (r, _, s) = router(RouterConfig::default());
    let rec = r.answer(&Query::new("Q?"), true, &p, None).await.unwrap();
    assert_eq!(rec.route, Route::Local);
    assert!(s.calls().is_empty());
}

#[tokio::test]
async fn budgets_keep_queries_local() {
    let p = SamplingParams::default();
    // Enough for one escalation ("Q?" prompt ≈ 1 token per 4 chars), not two.
    let (r, _, s) = router(RouterConfig {
        escalate_to: Route::Remote,
        server_tokens_per_window: Some(40),
        ..RouterConfig::default()
    });
    let first = r.answer(&Query::new("Q?"), false, &p, None).await.unwrap();
    assert_eq!(first.route, Route::Remote);
    let second = r.answer(&Query::new("Q?"), false, &p, None).await.unwrap();
    assert_eq!(second.route, Route::Local);
    assert!(
        second.reasons[0].contains("server-token budget"),
        "{:?}",
        second.reasons
    );
    assert_eq!(s.calls().len(), 1);

    let slow = SpeedEstimate {
        server_prompt_tok_s: 10.0,
        server_gen_tok_s: 1.0,
        local_gen_tok_s: 30.0,
        rtt_ms: 80.0,
    };
    let (r, _, s) = router(RouterConfig {
        escalate_to: Route::Remote,
        latency_budget_ms: Some(1000.0),
        ..RouterConfig::default()
    });
    let r = r.with_speeds(slow);
    let rec = r.answer(&Query::new("Q?"), false, &p, None).await.unwrap();
    assert_eq!(rec.route, Route::Local);
    assert!(rec.reasons[0].starts_with("latency"), "{:?}", rec.reasons);
    assert!(s.calls().is_empty());
    assert!(slow.escalation_ms(Route::Colm, 10, 9) > slow.escalation_ms(Route::Remote, 10, 9));
}

/// A server that yields to other tasks before answering, so that concurrent escalations
/// overlap.
struct Yielding(Arc<Scripted>);

#[async_trait::async_trait]
impl ChatModel for Yielding {
    fn name(&self) -> &str {
        self.0.name()
    }
    async fn chat(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Completion, ModelError> {
        tokio::task::yield_now().await;
        self.0.chat(messages, params).await
    }
}

/// Two escalations at once under a budget for one (by the router's estimate): the first
/// reserves its estimate before its server call, so the second stays local, and the budget
/// then holds what the server reported, not the estimate.
#[tokio::test]
async fn concurrent_escalations_cannot_pass_the_budget_together() {
    let p = SamplingParams::default();
    let q = Query::new("Q?");
    // The router's estimate: the prompt at 4 characters a token, and the draft's length.
    let prompt: usize = prompts::draft(&q).iter().map(|m| m.content.len()).sum();
    let estimate = prompt.div_ceil(4) as u64 + "DRAFT: 17".len() as u64;
    let s = server();
    let r = Router::new(
        local(),
        Arc::new(Yielding(s.clone())),
        RouterConfig {
            escalate_to: Route::Remote,
            server_tokens_per_window: Some(2 * estimate - 1),
            ..RouterConfig::default()
        },
    );
    let (a, b) = tokio::join!(r.answer(&q, false, &p, None), r.answer(&q, false, &p, None));
    let mut routes = [a.unwrap().route, b.unwrap().route];
    routes.sort_by_key(|r| *r == Route::Local);
    assert_eq!(routes, [Route::Remote, Route::Local]);
    assert_eq!(s.calls().len(), 1);
    let reported: u64 = s.calls()[0]
        .iter()
        .map(|m| m.content.len() as u64)
        .sum::<u64>()
        + format!("SERVER: {}", last_user(&s.calls()[0])).len() as u64;
    assert_eq!(r.spent_in_window().await.unwrap(), reported);
}

#[tokio::test]
async fn an_unreachable_server_leaves_the_draft_flagged() {
    let down = Scripted::new("big", |_| {
        Err(ModelError::Inference("connection refused".into()))
    });
    let r = Router::new(local(), down, RouterConfig::default());
    let rec = r
        .answer(&Query::new("Q?"), false, &SamplingParams::default(), None)
        .await
        .unwrap();
    assert_eq!(
        (rec.route, rec.answer.as_str()),
        (Route::Local, "DRAFT: 17")
    );
    assert!(rec.fallback.unwrap().contains("connection refused"));
    assert!(rec.steps[1].error().is_some());
    assert_eq!(Route::parse("server").unwrap(), Route::Remote);
    assert!(Route::parse("cloud").is_err());
}

/// Without given speeds, the router measures its own: the first escalation runs with the
/// latency budget unchecked, and the next query is held to the budget with the speeds it
/// measured (the scripted models generate in 2 ms; a budget of 0 ms leaves no time).
#[tokio::test]
async fn latency_budget_uses_measured_speeds_once_there_are_some() {
    let p = SamplingParams::default();
    let (r, _, s) = router(RouterConfig {
        escalate_to: Route::Remote,
        latency_budget_ms: Some(0.0),
        ..RouterConfig::default()
    });
    assert_eq!(r.speeds(), None);
    let first = r.answer(&Query::new("Q?"), false, &p, None).await.unwrap();
    assert_eq!(first.route, Route::Remote);
    assert!(
        first.reasons.iter().any(|x| x.contains("not checked")),
        "{:?}",
        first.reasons
    );
    let measured = r.speeds().unwrap();
    // "DRAFT: 17" is 9 scripted tokens generated in 2 ms.
    assert!(
        (measured.local_gen_tok_s - 4500.0).abs() < 1e-6,
        "{measured:?}"
    );
    assert!(measured.server_gen_tok_s > 0.0 && measured.rtt_ms == 0.0);
    let second = r.answer(&Query::new("Q?"), false, &p, None).await.unwrap();
    assert_eq!(second.route, Route::Local);
    assert!(
        second.reasons[0].starts_with("latency"),
        "{:?}",
        second.reasons
    );
    assert_eq!(s.calls().len(), 1);
}

/// A device model whose greedy draft answers 17 and whose samples answer 17 or 19 by seed:
/// seeds 1..=agreeing give 17, later seeds 19.
fn sampling_local(agreeing: u32) -> Arc<Scripted> {
    Scripted::sampled("small", move |_, p| {
        Ok(if p.temperature == 0.0 || p.seed <= agreeing {
            "The answer is 17.".into()
        } else {
            "The answer is 19.".into()
        })
    })
}

fn agreement_router(
    agreeing: u32,
    threshold: Option<f64>,
) -> (Router, Arc<Scripted>, Arc<Scripted>) {
    let (l, s) = (sampling_local(agreeing), server());
    let config = RouterConfig {
        escalate_to: Route::Remote,
        threshold,
        agreement: Some(AgreementConfig::default()),
        ..RouterConfig::default()
    };
    (Router::new(l.clone(), s.clone(), config), l, s)
}

#[tokio::test]
async fn agreeing_samples_keep_the_draft_local_and_disagreeing_ones_escalate() {
    let p = SamplingParams::default();
    // 3 of 4 samples (seeds 1–3) agree: 0.75 ≥ 0.75.
    let (r, l, s) = agreement_router(3, None);
    let rec = r.answer(&Query::new("Q?"), false, &p, None).await.unwrap();
    assert_eq!(rec.route, Route::Local);
    assert_eq!(rec.answer, "The answer is 17.");
    assert_eq!(rec.agreement, Some(0.75));
    assert_eq!(l.calls().len(), 5);
    assert!(s.calls().is_empty());
    assert!(
        rec.reasons[0].contains("≥ 0.75: stays local"),
        "{:?}",
        rec.reasons
    );
    let kinds: Vec<StepKind> = rec.steps.iter().map(|s| s.kind).collect();
    assert_eq!(kinds[0], StepKind::Draft);
    assert!(kinds[1..].iter().all(|k| *k == StepKind::Sample));
    // The served completion counts the samples' tokens and keeps the draft's finish reason.
    let c = rec.completion();
    assert_eq!(
        c.usage.completion_tokens,
        5 * rec.steps[0].completion().unwrap().usage.completion_tokens
    );

    // 2 of 4 agree: escalate.
    let (r, _, s) = agreement_router(2, None);
    let rec = r.answer(&Query::new("Q?"), false, &p, None).await.unwrap();
    assert_eq!(rec.route, Route::Remote);
    assert_eq!(rec.agreement, Some(0.5));
    assert_eq!(s.calls().len(), 1);
    assert!(rec.reasons[0].contains("agreement 0.50 of 4 samples < 0.75"));
}

#[tokio::test]
async fn agreement_is_sampled_only_after_the_log_probability_check_passes() {
    let p = SamplingParams::default();
    // Scripted drafts have mean log-probability −0.5: below τ = −0.4, no samples drawn.
    let (r, l, _) = agreement_router(4, Some(-0.4));
    let rec = r.answer(&Query::new("Q?"), false, &p, None).await.unwrap();
    assert_eq!(rec.route, Route::Remote);
    assert_eq!(rec.agreement, None);
    assert_eq!(l.calls().len(), 1);
    // Above τ = −0.6, the samples decide: all agree.
    let (r, l, _) = agreement_router(4, Some(-0.6));
    let rec = r.answer(&Query::new("Q?"), false, &p, None).await.unwrap();
    assert_eq!(rec.route, Route::Local);
    assert_eq!(l.calls().len(), 5);
    assert_eq!(rec.reasons.len(), 2, "{:?}", rec.reasons);
}

#[tokio::test]
async fn a_draft_without_an_answer_or_failed_samples_count_as_disagreement() {
    let p = SamplingParams::default();
    let l = Scripted::sampled("small", |_, p| {
        if p.temperature == 0.0 {
            Ok("I am not sure.".into())
        } else {
            Ok("I am not sure either.".into())
        }
    });
    let config = RouterConfig {
        escalate_to: Route::Remote,
        agreement: Some(AgreementConfig::default()),
        ..RouterConfig::default()
    };
    let rec = Router::new(l, server(), config)
        .answer(&Query::new("Q?"), false, &p, None)
        .await
        .unwrap();
    assert_eq!((rec.route, rec.agreement), (Route::Remote, Some(0.0)));

    let l = Scripted::sampled("small", |_, p| {
        if p.temperature == 0.0 || p.seed == 1 {
            Ok("The answer is 17.".into())
        } else {
            Err(ModelError::Inference("out of memory".into()))
        }
    });
    let config = RouterConfig {
        escalate_to: Route::Remote,
        agreement: Some(AgreementConfig {
            samples: 2,
            min_share: 0.5,
            ..AgreementConfig::default()
        }),
        ..RouterConfig::default()
    };
    let rec = Router::new(l, server(), config)
        .answer(&Query::new("Q?"), false, &p, None)
        .await
        .unwrap();
    // 1 of 2 agree (the failure is recorded as a step, not as an answer).
    assert_eq!((rec.route, rec.agreement), (Route::Local, Some(0.5)));
    assert!(rec.steps[2].error().is_some());
}

#[test]
fn agreement_settings_are_checked() {
    assert!(AgreementConfig::default().validate().is_ok());
    for (bad, key) in [
        (
            AgreementConfig {
                samples: 0,
                ..AgreementConfig::default()
            },
            "samples",
        ),
        (
            AgreementConfig {
                temperature: 0.0,
                ..AgreementConfig::default()
            },
            "temperature",
        ),
        (
            AgreementConfig {
                min_share: 1.5,
                ..AgreementConfig::default()
            },
            "min_share",
        ),
    ] {
        assert!(bad.validate().unwrap_err().0.contains(key));
    }
}

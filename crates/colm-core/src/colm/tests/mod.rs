//! Unit tests of the CoLM strategy logic with scripted models (no inference).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::references::{Aggregate, ReferenceConfig, ReferenceWriter, Selector};
use super::*;
use crate::guidance::GuidanceMode;
use crate::model::{ChatMessage, Completion, ModelError, Role, SamplingParams};
use crate::prompts::{self, RefineContext};
use crate::query::Query;
use crate::run::StrategyModel;
use crate::testing::{last_user, Scripted};

/// The message of a refinement prompt that carries the guidance: the system prompt in the
/// `guidance` form, the last user turn in the `draft` form.
fn guided(messages: &[ChatMessage]) -> &str {
    messages
        .iter()
        .rev()
        .find(|m| m.content.contains("<guidance>"))
        .map_or("", |m| m.content.as_str())
}

/// A refinement prompt in either form: the draft as an assistant turn, or the guidance in the
/// system prompt.
fn is_refinement(messages: &[ChatMessage]) -> bool {
    messages.iter().any(|m| {
        m.role == Role::Assistant || (m.role == Role::System && m.content.contains("<guidance>"))
    })
}

/// A client that drafts `DRAFT-<tag>` and refines to `REFINED-<tag>-<n>` (n = count of its
/// refinements so far).
fn client(tag: &'static str) -> Arc<Scripted> {
    let n = Arc::new(Mutex::new(0));
    Scripted::new(&format!("model-{tag}"), move |m| {
        if is_refinement(m) {
            let mut n = n.lock().unwrap();
            *n += 1;
            Ok(format!("REFINED-{tag}-{n}"))
        } else {
            Ok(format!("DRAFT-{tag}"))
        }
    })
}

fn failing(name: &str) -> Arc<Scripted> {
    Scripted::new(name, |_| {
        Err(ModelError::Inference("device out of memory".into()))
    })
}

/// A server that answers selection prompts with `selection` and aggregations with GUIDANCE.
fn server(selection: &'static str) -> Arc<Scripted> {
    Scripted::new("server", move |m| {
        if last_user(m).contains("Reply with their numbers only") {
            Ok(selection.into())
        } else {
            Ok("GUIDANCE: the answer is 18".into())
        }
    })
}

/// The drafts-only mode the tests of selection, failures and rounds were written for.
fn synthesis() -> ColmConfig {
    ColmConfig {
        guidance_mode: GuidanceMode::Synthesis,
        ..Default::default()
    }
}

fn collab(id: &str, model: Arc<Scripted>) -> Collaborator {
    Collaborator {
        id: id.into(),
        description: format!("{id} specialises in something"),
        model,
    }
}

#[test]
fn parse_selection_accepts_numbers_in_text() {
    assert_eq!(parse_selection("1, 3", 3, 2), Ok(vec![0, 2]));
    assert_eq!(parse_selection("Models 2 and 1.", 3, 2), Ok(vec![1, 0]));
    assert_eq!(parse_selection("3, 3, 1", 3, 2), Ok(vec![2, 0]));
    assert_eq!(parse_selection("1, 2, 3", 3, 2), Ok(vec![0, 1]));
}

#[test]
fn parse_selection_rejects_unusable_answers() {
    assert!(parse_selection("none of them", 3, 1).is_err());
    assert!(parse_selection("4", 3, 1).is_err());
    assert!(parse_selection("0, 1", 3, 1).is_err());
    assert!(parse_selection("2, 2", 3, 2).is_err());
    assert!(parse_selection("99999999999999999999999", 3, 1).is_err());
}

#[tokio::test]
async fn selection_limits_drafts_to_chosen_collaborators() {
    let (a, b, c) = (client("a"), client("b"), client("c"));
    let collabs = [
        collab("client-1", a.clone()),
        collab("client-2", b.clone()),
        collab("client-3", c.clone()),
    ];
    let srv = server("3, 1");
    let cfg = ColmConfig {
        top_k: Some(2),
        ..Default::default()
    };
    let rec = run(&Query::new("q"), &collabs, srv.as_ref(), &cfg, None)
        .await
        .unwrap();
    let sel = rec.selection.as_ref().unwrap();
    assert_eq!(sel.chosen, vec!["client-1", "client-3"]);
    assert!(sel.fallback_reason.is_none());
    assert!(b.calls().is_empty(), "unselected collaborator was called");
    assert_eq!(a.calls().len(), 2);
    assert_eq!(c.calls().len(), 2);
    assert_eq!(rec.final_answers.len(), 2);
    // The selection prompt lists every candidate with its description.
    let prompt = last_user(&srv.calls()[0]).to_owned();
    assert!(prompt.contains("client-2 — client-2 specialises"));
}

#[tokio::test]
async fn unusable_selection_falls_back_to_all() {
    let collabs = [
        collab("client-1", client("a")),
        collab("client-2", client("b")),
        collab("client-3", client("c")),
    ];
    for answer in ["I cannot decide", "7"] {
        let srv = server(answer);
        let cfg = ColmConfig {
            top_k: Some(1),
            ..Default::default()
        };
        let rec = run(&Query::new("q"), &collabs, srv.as_ref(), &cfg, None)
            .await
            .unwrap();
        let sel = rec.selection.as_ref().unwrap();
        assert_eq!(sel.chosen.len(), 3, "answer {answer:?}");
        assert!(sel.fallback_reason.is_some());
        assert_eq!(rec.rounds[0].drafts.len(), 3);
    }
}

#[tokio::test]
async fn top_k_not_smaller_than_k_skips_selection() {
    let collabs = [collab("client-1", client("a"))];
    let srv = server("1");
    let cfg = ColmConfig {
        top_k: Some(3),
        ..synthesis()
    };
    let rec = run(&Query::new("q"), &collabs, srv.as_ref(), &cfg, None)
        .await
        .unwrap();
    assert!(rec.selection.is_none());
    assert_eq!(srv.calls().len(), 1, "only the aggregation call");
}

#[tokio::test]
async fn failed_collaborator_is_recorded_and_round_goes_on() {
    let good = client("a");
    let bad = failing("model-bad");
    let collabs = [
        collab("client-1", bad.clone()),
        collab("client-2", good.clone()),
    ];
    let srv = server("");
    let rec = run(&Query::new("q"), &collabs, srv.as_ref(), &synthesis(), None)
        .await
        .unwrap();
    let round = &rec.rounds[0];
    assert_eq!(round.drafts.len(), 2);
    assert!(matches!(
        round.drafts[0].error(),
        Some(ModelError::Inference(m)) if m.contains("out of memory")
    ));
    assert_eq!(round.drafts[1].text(), Some("DRAFT-a"));
    // Only the surviving draft is aggregated, and only the survivor refines.
    assert_eq!(round.aggregated.len(), 1);
    assert_eq!(round.aggregated[0].collaborator, "client-2");
    let agg_prompt = last_user(&srv.calls()[0]).to_owned();
    assert!(agg_prompt.contains("DRAFT-a"));
    assert_eq!(round.refinements.len(), 1);
    assert_eq!(bad.calls().len(), 1);
    assert_eq!(rec.final_answers.len(), 1);
    assert_eq!(rec.answer(), Some("REFINED-a-1"));
    assert_eq!(rec.usage_by_model()["model-bad"].failed_calls, 1);
}

#[tokio::test]
async fn all_collaborators_failing_is_an_error_naming_each() {
    let collabs = [
        collab("client-1", failing("x")),
        collab("client-2", failing("y")),
    ];
    let srv = server("");
    let err = run(&Query::new("q"), &collabs, srv.as_ref(), &synthesis(), None)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("all 2 collaborators failed"), "{msg}");
    assert!(
        msg.contains("client-1") && msg.contains("client-2"),
        "{msg}"
    );
    match err {
        ColmError::AllCollaboratorsFailed { partial, stage, .. } => {
            assert_eq!(stage, StepKind::Draft);
            assert_eq!(partial.rounds[0].drafts.len(), 2);
            assert_eq!(partial.usage_by_model()["x"].failed_calls, 1);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(srv.calls().is_empty(), "server must not be called");
}

#[tokio::test]
async fn guidance_failure_keeps_the_drafts() {
    let collabs = [collab("client-1", client("a"))];
    let srv = failing("server");
    let err = run(
        &Query::new("q"),
        &collabs,
        srv.as_ref(),
        &ColmConfig::default(),
        None,
    )
    .await
    .unwrap_err();
    match err {
        ColmError::GuidanceFailed { partial, round, .. } => {
            assert_eq!(round, 1);
            assert_eq!(partial.rounds[0].drafts[0].text(), Some("DRAFT-a"));
            assert_eq!(partial.answer(), Some("DRAFT-a"));
            assert_eq!(partial.final_answers[0].from, StepKind::Draft);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn max_drafts_bounds_the_answers_the_server_reads() {
    let collabs = [
        collab("client-1", client("a")),
        collab("client-2", client("b")),
        collab("client-3", client("c")),
    ];
    let srv = server("");
    let cfg = ColmConfig {
        max_drafts: Some(2),
        ..synthesis()
    };
    let rec = run(&Query::new("q"), &collabs, srv.as_ref(), &cfg, None)
        .await
        .unwrap();
    let read: Vec<&str> = rec.rounds[0]
        .aggregated
        .iter()
        .map(|c| c.collaborator.as_str())
        .collect();
    assert_eq!(read, ["client-1", "client-2"]);
    let prompt = last_user(&srv.calls()[0]).to_owned();
    assert!(
        prompt.contains("DRAFT-b") && !prompt.contains("DRAFT-c"),
        "{prompt}"
    );
    // Every client still refines with the guidance.
    assert_eq!(rec.final_answers.len(), 3);
}

#[tokio::test]
async fn runs_the_configured_number_of_rounds() {
    let a = client("a");
    let collabs = [collab("client-1", a.clone())];
    let srv = server("");
    let cfg = ColmConfig {
        rounds: 3,
        ..synthesis()
    };
    let rec = run(&Query::new("q"), &collabs, srv.as_ref(), &cfg, None)
        .await
        .unwrap();
    assert_eq!(rec.rounds.len(), 3);
    assert_eq!(srv.calls().len(), 3, "one aggregation per round");
    assert_eq!(a.calls().len(), 4, "one draft + three refinements");
    assert_eq!(rec.rounds[0].drafts.len(), 1);
    assert!(rec.rounds[1].drafts.is_empty());
    // Round 2 aggregates the refinement of round 1.
    assert_eq!(rec.rounds[1].aggregated[0].text, "REFINED-a-1");
    assert_eq!(rec.answer(), Some("REFINED-a-3"));
    assert_eq!(rec.final_answers[0].round, 3);
    assert_eq!(rec.steps().count(), 7);
}

#[tokio::test]
async fn refinement_prompt_holds_the_collaborators_own_draft() {
    let (a, b) = (client("a"), client("b"));
    let collabs = [collab("client-1", a.clone()), collab("client-2", b.clone())];
    let srv = server("");
    let cfg = ColmConfig {
        rounds: 2,
        refine: Some(RefineContext::Draft),
        ..Default::default()
    };
    run(
        &Query::new("How many eggs?"),
        &collabs,
        srv.as_ref(),
        &cfg,
        None,
    )
    .await
    .unwrap();
    let a_calls = a.calls();
    let refine1 = &a_calls[1];
    let own: Vec<&ChatMessage> = refine1
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .collect();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].content, "DRAFT-a");
    assert!(!refine1.iter().any(|m| m.content.contains("DRAFT-b")));
    assert!(last_user(refine1).contains("GUIDANCE: the answer is 18"));
    assert_eq!(refine1[1].content, "How many eggs?");
    // In round 2 the "own previous answer" is the round-1 refinement.
    let refine2 = &a_calls[2];
    assert!(refine2
        .iter()
        .any(|m| m.role == Role::Assistant && m.content == "REFINED-a-1"));
}

#[tokio::test]
async fn totals_and_observer_cover_every_step() {
    let collabs = [collab("client-1", client("a"))];
    let srv = server("");
    let seen = Mutex::new(Vec::new());
    let obs = |s: &Step| seen.lock().unwrap().push(s.kind);
    let rec = run(
        &Query::new("q"),
        &collabs,
        srv.as_ref(),
        &synthesis(),
        Some(&obs),
    )
    .await
    .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![StepKind::Draft, StepKind::Guidance, StepKind::Refinement]
    );
    let client_totals = rec.usage_by_model()["model-a"];
    assert_eq!(client_totals.calls, 2);
    assert_eq!(
        client_totals.usage.completion_tokens,
        ("DRAFT-a".len() + "REFINED-a-1".len()) as u64
    );
    assert_eq!(rec.usage_by_model()["server"].calls, 1);
    // The record round-trips through JSON.
    let json = serde_json::to_string(&rec).unwrap();
    let back: ColmRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rec);
}

#[tokio::test]
async fn invalid_settings_are_rejected() {
    let srv = server("");
    let none: [Collaborator; 0] = [];
    assert!(matches!(
        run(
            &Query::new("q"),
            &none,
            srv.as_ref(),
            &ColmConfig::default(),
            None
        )
        .await,
        Err(ColmError::InvalidConfig(_))
    ));
    let collabs = [collab("c", client("a")), collab("c", client("b"))];
    assert!(matches!(
        run(&Query::new("q"), &collabs, srv.as_ref(), &ColmConfig::default(), None).await,
        Err(ColmError::InvalidConfig(m)) if m.contains("twice")
    ));
    let one = [collab("c", client("a"))];
    for cfg in [
        ColmConfig {
            rounds: 0,
            ..Default::default()
        },
        ColmConfig {
            top_k: Some(0),
            ..Default::default()
        },
    ] {
        assert!(matches!(
            run(&Query::new("q"), &one, srv.as_ref(), &cfg, None).await,
            Err(ColmError::InvalidConfig(_))
        ));
    }
}

#[tokio::test]
async fn virtual_model_answers_with_the_collaboration() {
    let a = client("a");
    let srv = server("");
    let model = served(ColmModel::new(
        "colm",
        vec![collab("client-1", a.clone())],
        srv.clone(),
        ColmConfig::default(),
    ));
    let params = SamplingParams {
        max_tokens: 7,
        ..Default::default()
    };
    let out = model
        .chat(&[ChatMessage::user("How many eggs?")], &params)
        .await
        .unwrap();
    assert_eq!(model.name(), "colm");
    assert_eq!(out.text, "REFINED-a-1");
    // Usage is the sum over draft, guidance and refinement.
    let expected = "DRAFT-a".len() + "GUIDANCE: the answer is 18".len() + "REFINED-a-1".len();
    assert_eq!(out.usage.completion_tokens, expected as u64);
    assert_eq!(out.timings.generation_ms, 6.0);
    assert_eq!(out.mean_logprob, Some(-0.5));
    // The caller's question reached the draft prompt.
    assert_eq!(a.calls()[0][1].content, "How many eggs?");
}

#[tokio::test]
async fn virtual_model_reports_context_overflow_as_such() {
    let over = Scripted::new("small", |_| {
        Err(ModelError::ContextOverflow {
            prompt_tokens: 900,
            max_tokens: 512,
            n_ctx: 1024,
        })
    });
    let model = served(ColmModel::new(
        "colm",
        vec![collab("client-1", over)],
        server(""),
        ColmConfig::default(),
    ));
    let err = model
        .chat(&[ChatMessage::user("q")], &SamplingParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ModelError::ContextOverflow { n_ctx: 1024, .. }),
        "{err}"
    );
    let err = served(ColmModel::new(
        "colm",
        vec![collab("client-1", failing("x"))],
        server(""),
        ColmConfig::default(),
    ))
    .chat(&[ChatMessage::user("q")], &SamplingParams::default())
    .await
    .unwrap_err();
    assert!(matches!(err, ModelError::Inference(m) if m.contains("client-1")));
}

#[tokio::test]
async fn virtual_model_keeps_the_meaning_of_a_shared_failure() {
    let busy = |name: &str| Scripted::new(name, |_| Err(ModelError::Overloaded { queued: 64 }));
    let limited = |name: &str| {
        Scripted::new(name, |_| {
            Err(ModelError::RateLimited {
                detail: "upstream 429".into(),
                retry_after_s: Some(7),
            })
        })
    };
    let ask = |collaborators: Vec<Collaborator>| async move {
        served(ColmModel::new(
            "colm",
            collaborators,
            server(""),
            ColmConfig::default(),
        ))
        .chat(&[ChatMessage::user("q")], &SamplingParams::default())
        .await
        .unwrap_err()
    };
    // Every collaborator overloaded: 503 with Retry-After, not a 500.
    let err = ask(vec![
        collab("client-1", busy("a")),
        collab("client-2", busy("b")),
    ])
    .await;
    assert!(
        matches!(err, ModelError::Overloaded { queued: 64 }),
        "{err}"
    );
    assert_eq!(
        (err.status(), err.retryable(), err.retry_after_s()),
        (503, true, Some(1))
    );
    // An upstream's 429 stays a 429 with its Retry-After.
    let err = ask(vec![collab("client-1", limited("a"))]).await;
    assert_eq!((err.status(), err.retry_after_s()), (429, Some(7)), "{err}");
    // Different failures: an inference failure naming each.
    let err = ask(vec![
        collab("client-1", busy("a")),
        collab("client-2", failing("b")),
    ])
    .await;
    assert_eq!(err.status(), 500);
    assert!(err.to_string().contains("client-1") && err.to_string().contains("client-2"));
}

/// A caller's conversation (its system prompt, earlier turns, the last question) reaches every
/// client-side call as chat messages: the draft is the chat as sent, the server's reference
/// writer answers the same chat, and the refinement keeps the caller's system prompt and turns
/// around the guidance. Server prompts that quote the query (synthesis) quote the transcript.
#[tokio::test]
async fn a_conversation_reaches_every_call_as_chat_messages() {
    let chat = vec![
        ChatMessage::system("Answer in French."),
        ChatMessage::user("What is 2+2?"),
        ChatMessage::assistant("Quatre."),
        ChatMessage::user("And times 3?"),
    ];
    let a = Scripted::new("client", |m| {
        Ok(if guided(m).is_empty() {
            "DRAFT".into()
        } else {
            "REFINED".into()
        })
    });
    let srv = Scripted::new("server", |_| Ok("Douze.".into()));
    for (mode, refine) in [
        (GuidanceMode::Reference, RefineContext::Guidance),
        (GuidanceMode::Synthesis, RefineContext::Draft),
    ] {
        let model = served(ColmModel::new(
            "colm",
            vec![collab("client-1", a.clone())],
            srv.clone(),
            ColmConfig {
                guidance_mode: mode,
                refine: Some(refine),
                ..Default::default()
            },
        ));
        let out = model.chat(&chat, &SamplingParams::default()).await.unwrap();
        assert_eq!(out.text, "REFINED");
    }
    let client_calls = a.calls();
    // Reference mode: draft = the chat as sent; refinement = the caller's system prompt with
    // the guidance after it, then the same turns.
    assert_eq!(client_calls[0], chat);
    let refinement = &client_calls[1];
    assert!(
        refinement[0].content.starts_with("Answer in French.")
            && refinement[0]
                .content
                .contains("<guidance>\nDouze.\n</guidance>"),
        "{refinement:?}"
    );
    assert_eq!(refinement[1..], chat[1..]);
    // Synthesis mode, draft form: the chat, the client's draft as its turn, then the request
    // quoting the last question.
    assert_eq!(client_calls[2], chat);
    let refinement = &client_calls[3];
    assert_eq!(refinement[..4], chat[..]);
    assert_eq!(refinement[4], ChatMessage::assistant("DRAFT"));
    assert!(refinement[5].content.ends_with("And times 3?"));
    let server_calls = srv.calls();
    // The generalist reference writer answers the chat as sent.
    assert_eq!(server_calls[0], chat);
    // The synthesis quotes the transcript, earlier turns included.
    let aggregation = last_user(&server_calls[1]);
    assert!(
        aggregation.contains("assistant: Quatre.")
            && aggregation.contains("Question:\nAnd times 3?"),
        "{aggregation}"
    );
}

#[tokio::test]
async fn guidance_modes_choose_the_server_prompt_or_a_vote() {
    let numbers = |tag: &'static str, answer: &'static str| {
        Scripted::new(tag, move |m| {
            Ok(if is_refinement(m) {
                format!("refined, still {answer}")
            } else {
                format!("so the answer is {answer}")
            })
        })
    };
    let collabs = [
        collab("client-1", numbers("a", "18")),
        collab("client-2", numbers("b", "18")),
        collab("client-3", numbers("c", "20")),
    ];
    // Critique: the server gets the review prompt, and its review is the guidance.
    let srv = server("1");
    let cfg = ColmConfig {
        guidance_mode: GuidanceMode::Critique,
        ..Default::default()
    };
    let rec = run(&Query::new("q"), &collabs, srv.as_ref(), &cfg, None)
        .await
        .unwrap();
    let calls = srv.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0][0].content.contains("Do not write a full solution"));
    let refinement = &rec.rounds[0].refinements[0].messages;
    assert!(refinement[3].content.contains("GUIDANCE: the answer is 18"));
    // Vote: no server call; the guidance names the majority; no totals for the vote step.
    let srv = server("1");
    let cfg = ColmConfig {
        guidance_mode: GuidanceMode::Vote,
        ..Default::default()
    };
    let rec = run(&Query::new("q"), &collabs, srv.as_ref(), &cfg, None)
        .await
        .unwrap();
    assert!(srv.calls().is_empty());
    let g = rec.rounds[0].guidance.as_ref().unwrap();
    assert_eq!(g.model, "vote");
    assert!(g
        .text()
        .unwrap()
        .starts_with("2 of 3 collaborators answered 18"));
    assert!(!rec.usage_by_model().contains_key("vote"));
    assert_eq!(rec.final_answers.len(), 3);
    // A vote with nothing to count says so, and the clients refine with that.
    let silent = [collab("client-1", client("a"))];
    let rec = run(&Query::new("q"), &silent, srv.as_ref(), &cfg, None)
        .await
        .unwrap();
    let g = rec.rounds[0].guidance.as_ref().unwrap().text().unwrap();
    assert!(g.starts_with("None of the 1 collaborators"), "{g}");
}

/// The collaboration served as a chat model, as `colm serve` serves it.
fn served(model: ColmModel) -> StrategyModel {
    StrategyModel::new("colm", Arc::new(model))
}

mod drafting;
mod ensembles;
mod references;

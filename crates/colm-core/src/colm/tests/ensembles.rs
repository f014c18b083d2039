//! Unit tests of the server-side ensembles: references aggregated by a vote or a selection,
//! drawn adaptively, the vote's share stated to the client, a client keeping its own answer.

use super::references::reference_server;
use super::*;
use crate::colm::guide::Guide as _;

/// A vote of `k` references (no other option).
fn vote_of(k: usize) -> ColmConfig {
    ColmConfig {
        references: ReferenceConfig {
            k,
            aggregate: Aggregate::Vote,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// One CoLM run of `collabs` on `query` with `writers` and `aggregator` on the server side (no
/// store).
async fn run_on(
    query: &Query,
    collabs: &[Collaborator],
    aggregator: &dyn crate::model::ChatModel,
    writers: &[ReferenceWriter],
    cfg: &ColmConfig,
) -> ColmRecord {
    let side = ServerSide {
        aggregator,
        writers,
        store: None,
        embedder: None,
    };
    run_with(query, collabs, side, cfg, Watch::default())
        .await
        .unwrap()
}

/// `aggregate=vote`: the guidance is the majority's reference, chosen without a server call;
/// with no extractable answer it is the first reference.
#[tokio::test]
async fn a_vote_of_references_guides_with_the_majoritys_reference() {
    let srv = reference_server();
    let collabs = [collab("client-1", client("a"))];
    let cfg = vote_of(3);
    for (pool, guidance, stated) in [
        (
            answering(&["The answer is 20.", "So she makes $18.", "\\boxed{18}"]),
            "So she makes $18.",
            // The refinement prompt states the vote's share.
            Some("answered the question below 3 times; 2 of the 3 answers reach the same"),
        ),
        (
            answering(&["I cannot tell.", "Nothing to add."]),
            "I cannot tell.",
            None,
        ),
    ] {
        let calls_before = srv.calls().len();
        let rec = run_on(&Query::new("q"), &collabs, srv.as_ref(), &pool, &cfg).await;
        let g = rec.rounds[0].guidance.as_ref().unwrap();
        assert_eq!((g.model.as_str(), g.text()), ("vote", Some(guidance)));
        assert_eq!(srv.calls().len(), calls_before, "no server call");
        let prompt = &rec.rounds[0].refinements[0].messages[0].content;
        let tally = rec.rounds[0].tally.as_ref();
        match stated {
            Some(share) => {
                assert!(prompt.contains(share), "{prompt}");
                let t = tally.expect("the round records its vote");
                assert_eq!((t.votes, t.answered, t.drafts, t.tie), (2, 3, 3, false));
            }
            // No extractable answer: no vote to state, nothing recorded.
            None => {
                assert!(
                    prompt.contains("synthesised from their answers"),
                    "{prompt}"
                );
                assert!(tally.is_none());
            }
        }
    }
    // The guide reports the vote it made (what the guidance API answers with).
    let pool = answering(&["The answer is 20.", "So she makes $18.", "\\boxed{18}"]);
    let guide = super::guide::InProcess {
        aggregator: Some(srv.as_ref()),
        writers: &pool,
        store: None,
        config: &cfg,
        embedder: None,
    };
    let q = Query::new("q");
    let shared = guide.shared(&q, None).await;
    let guided = guide
        .guidance(
            super::guide::Ask {
                query: &q,
                round: 1,
                answers: &[],
                shared,
                references: None,
            },
            None,
        )
        .await;
    let t = guided.tally.expect("a vote's tally");
    assert_eq!((t.answer.as_str(), t.votes, t.drafts), ("18", 2, 3));
    // The option reads from the text form and is checked against the mode.
    let o = crate::strategy::ColmOptions::parse_options("refs=3,aggregate=vote").unwrap();
    assert_eq!(o.guidance().aggregate(), Aggregate::Vote);
    assert!(crate::strategy::ColmOptions::parse_options("mode=vote,aggregate=vote").is_err());
}

/// Writers answering `answers` in pool order (`w1`, `w2`, …).
fn answering(answers: &[&'static str]) -> Vec<ReferenceWriter> {
    answers
        .iter()
        .enumerate()
        .map(|(i, &text)| ReferenceWriter {
            id: format!("w{}", i + 1),
            description: "d".into(),
            system: None,
            model: Scripted::new(&format!("w{}", i + 1), move |_| Ok(text.into())),
            temperature: None,
            seed: None,
        })
        .collect()
}

#[tokio::test]
async fn adaptive_sampling_stops_when_the_vote_is_settled() {
    // Adaptive-Consistency's Beta rule: P(p > 1/2), p ~ Beta(leader + 1, runner-up + 1).
    assert!((super::super::references::settled(0, 0) - 0.5).abs() < 1e-12);
    assert!((super::super::references::settled(2, 0) - 0.875).abs() < 1e-12);
    assert!((super::super::references::settled(3, 0) - 0.9375).abs() < 1e-12);
    assert!((super::super::references::settled(3, 1) - 0.8125).abs() < 1e-12);
    assert!((super::super::references::settled(6, 1) - (1.0 - 9.0 / 256.0)).abs() < 1e-12);

    let srv = reference_server();
    let collabs = [collab("client-1", client("a"))];
    let cfg = |adaptive: f64| ColmConfig {
        references: ReferenceConfig {
            k: 8,
            aggregate: Aggregate::Vote,
            adaptive: Some(adaptive),
            ..Default::default()
        },
        ..Default::default()
    };
    let drawn = |answers: &[&'static str], adaptive: f64| {
        let pool = answering(answers);
        let srv = srv.clone();
        let collabs = collabs.clone();
        async move {
            let rec = run_on(
                &Query::new("q"),
                &collabs,
                srv.as_ref(),
                &pool,
                &cfg(adaptive),
            )
            .await;
            let refs = rec.references.unwrap();
            let ids: Vec<String> = refs
                .steps
                .iter()
                .filter_map(|s| s.collaborator.clone())
                .collect();
            (
                ids,
                refs.confidence.unwrap(),
                rec.rounds[0].tally.clone().unwrap(),
            )
        }
    };
    let agree = ["18", "18", "18", "18", "18", "18", "18", "18"];
    // 0.9: three agreeing answers settle it (0.9375), drawn together.
    let (ids, confidence, tally) = drawn(&agree, 0.9).await;
    assert_eq!(ids, ["w1", "w2", "w3"]);
    assert!((confidence - 0.9375).abs() < 1e-12);
    assert_eq!((tally.votes, tally.drafts), (3, 3));
    // 0.95: four.
    assert_eq!(drawn(&agree, 0.95).await.0.len(), 4);
    // A dissent draws one more at a time until the leader is settled: 18 ×3 against 20 is
    // 0.8125, 18 ×4 against 20 is 0.89, 18 ×5 against 20 is 0.9375.
    let split = ["18", "20", "18", "18", "18", "18", "18", "18"];
    let (ids, confidence, tally) = drawn(&split, 0.9).await;
    assert_eq!(ids.len(), 6);
    assert!(confidence >= 0.9);
    assert_eq!(
        (tally.answer.as_str(), tally.votes, tally.drafts),
        ("18", 5, 6)
    );
    // Never settled: all eight, the confidence it reached recorded.
    let spread = ["1", "2", "3", "4", "5", "6", "7", "8"];
    let (ids, confidence, tally) = drawn(&spread, 0.9).await;
    assert_eq!(ids.len(), 8);
    assert!(confidence < 0.9);
    assert!(tally.tie, "eight different answers tie");
    // The option: a confidence in (0.5, 1) with aggregate=vote only.
    let parse = crate::strategy::ColmOptions::parse_options;
    assert!(parse("refs=8,aggregate=vote,adaptive=0.9").is_ok());
    assert!(parse("refs=8,adaptive=0.9").is_err());
    assert!(parse("refs=8,aggregate=vote,adaptive=1").is_err());
    assert!(parse("refs=8,aggregate=vote,adaptive=0.5").is_err());
}

#[tokio::test]
async fn select_hands_the_client_the_reference_the_server_names() {
    let collabs = [collab("client-1", client("a"))];
    let cfg = ColmConfig {
        references: ReferenceConfig {
            k: 3,
            aggregate: Aggregate::Select,
            ..Default::default()
        },
        ..Default::default()
    };
    let pool = answering(&["It is red.", "Blue, because of scattering.", "It is blue."]);
    for (reply, guidance, fallback) in [
        (
            "The most consistent response is Response 3.",
            "It is blue.",
            false,
        ),
        ("I cannot decide.", "It is red.", true),
    ] {
        let srv = Scripted::new("server", move |m| {
            assert!(m[0].content.contains("Select the most consistent response"));
            Ok(reply.into())
        });
        let rec = run_on(&Query::new("sky?"), &collabs, srv.as_ref(), &pool, &cfg).await;
        let g = rec.rounds[0].guidance.as_ref().unwrap();
        assert_eq!(
            g.text(),
            Some(guidance),
            "the reference itself, not a rewrite"
        );
        assert_eq!(g.model, "server");
        assert_eq!(srv.calls().len(), 1, "one selection call");
        let c = g.completion().unwrap();
        assert_eq!(c.fallback.is_some(), fallback, "{:?}", c.fallback);
        let prompt = &rec.rounds[0].refinements[0].messages[0].content;
        assert!(
            prompt.contains("most consistent with the others"),
            "{prompt}"
        );
    }
}

#[tokio::test]
async fn a_client_keeps_its_answer_when_the_vote_is_weak_and_counted_it() {
    let srv = reference_server();
    // Two clients: one agrees with the minority (20), one with no answer the vote counted.
    let says = |name: &'static str, draft: &'static str| {
        Scripted::new(name, move |m| {
            Ok(if is_refinement(m) {
                "refined: 18"
            } else {
                draft
            }
            .into())
        })
    };
    let collabs = [
        collab("client-1", says("c1", "I think it is 20.")),
        collab("client-2", says("c2", "It is 7.")),
    ];
    let pool = answering(&["The answer is 20.", "So she makes $18.", "\\boxed{18}"]);
    for (keep_draft, kept, first_answer) in [
        // 2 of 3 is below 0.8: client-1's 20 was voted for, so it keeps it; client-2 refines.
        (Some(0.8), vec!["client-1".to_owned()], "I think it is 20."),
        // 2 of 3 is not below 0.6: both refine.
        (Some(0.6), Vec::new(), "refined: 18"),
        (None, Vec::new(), "refined: 18"),
    ] {
        let cfg = ColmConfig {
            references: ReferenceConfig {
                k: 3,
                aggregate: Aggregate::Vote,
                ..Default::default()
            },
            keep_draft,
            ..Default::default()
        };
        let rec = run_on(&Query::new("q"), &collabs, srv.as_ref(), &pool, &cfg).await;
        let r = &rec.rounds[0];
        assert_eq!(r.kept, kept);
        assert_eq!(r.refinements.len(), 2 - kept.len());
        assert_eq!(rec.final_answers[0].text, first_answer);
        let from = if kept.is_empty() {
            StepKind::Refinement
        } else {
            StepKind::Draft
        };
        assert_eq!(rec.final_answers[0].from, from);
        assert_eq!(rec.final_answers[1].text, "refined: 18");
    }
    let parse = crate::strategy::ColmOptions::parse_options;
    assert!(parse("refs=3,aggregate=vote,keep_draft=0.8").is_ok());
    assert!(parse("keep_draft=0").is_err());
    assert!(parse("keep_draft=1.5").is_err());
}

#[tokio::test]
async fn a_vote_on_a_multiple_choice_query_counts_the_options_chosen() {
    let srv = reference_server();
    let collabs = [collab("client-1", client("a"))];
    let cfg = vote_of(3);
    // The first quotes option B's text without its letter; a number-only extractor would find
    // nothing there and let the lone "C" tie with "B".
    let pool = answering(&["We breathe oxygen.", "Answer: C", "The answer is B."]);
    let q = Query::new("Which is a gas?\nA. iron\nB. oxygen\nC. salt\n\nAnswer with the letter.");
    let rec = run_on(&q, &collabs, srv.as_ref(), &pool, &cfg).await;
    let t = rec.rounds[0].tally.as_ref().unwrap();
    assert_eq!((t.answer.as_str(), t.votes, t.answered), ("B", 2, 3));
    let g = rec.rounds[0].guidance.as_ref().unwrap();
    assert_eq!(g.text(), Some("We breathe oxygen."));
}

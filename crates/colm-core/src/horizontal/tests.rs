//! Unit tests of the horizontal strategies' logic with scripted models (no inference).

use std::sync::Arc;

use super::debate::{DebateConfig, Topology};
use super::moa::MoaConfig;
use super::self_consistency::SelfConsistencyConfig;
use super::*;
use crate::model::{ChatMessage, Role};
use crate::named::Named;
use crate::step::Watch;
use crate::testing::{last_user, Scripted};

fn agent(id: &str, side: Side, model: Arc<Scripted>) -> Agent {
    Agent::new(id, side, model)
}

fn failing(name: &str) -> Arc<Scripted> {
    Scripted::new(name, |_| {
        Err(ModelError::Inference("device out of memory".into()))
    })
}

#[tokio::test]
async fn self_consistency_samples_with_distinct_seeds_and_votes() {
    let answers = ["18", "18", "7", "18", "3"];
    let model = Scripted::sampled("small", move |_, p| {
        assert!(p.temperature > 0.0, "samples must not be greedy");
        Ok(format!(
            "… so the answer is {}.",
            answers[p.seed as usize % 5]
        ))
    });
    let a = agent("client-1", Side::Client, model.clone());
    let record = self_consistency::run(
        &Query::new("Q?"),
        &a,
        &SelfConsistencyConfig::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(model.calls().len(), 5);
    assert_eq!(record.steps.len(), 5);
    assert!(record.steps.iter().all(|s| s.kind == StepKind::Sample));
    let tally = record.tally.clone().unwrap();
    assert_eq!(
        (tally.answer.as_str(), tally.votes, tally.drafts),
        ("18", 3, 5)
    );
    assert_eq!(record.answer.as_deref(), Some("… so the answer is 18."));
    assert_eq!(record.usage_by_model()["small"].calls, 5);
}

#[tokio::test]
async fn self_consistency_records_failed_samples_and_fails_when_all_do() {
    let model = Scripted::sampled("small", |_, p| {
        if p.seed == 1 {
            Err(ModelError::Inference("boom".into()))
        } else {
            Ok("answer is 4".into())
        }
    });
    let a = agent("c", Side::Client, model);
    let config = SelfConsistencyConfig {
        samples: 3,
        ..SelfConsistencyConfig::default()
    };
    let record = self_consistency::run(&Query::new("Q?"), &a, &config, None)
        .await
        .unwrap();
    assert_eq!(
        record.steps.iter().filter(|s| s.error().is_some()).count(),
        1
    );
    assert_eq!(record.tally.unwrap().drafts, 2);

    let a = agent("c", Side::Client, failing("small"));
    let err = self_consistency::run(&Query::new("Q?"), &a, &config, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("device out of memory"), "{err}");
    assert_eq!(err.partial().unwrap().steps.len(), 3);
    let zero = SelfConsistencyConfig {
        samples: 0,
        ..config
    };
    assert!(matches!(
        self_consistency::run(&Query::new("Q?"), &a, &zero, None).await,
        Err(StrategyError::InvalidConfig(_))
    ));
}

#[test]
fn topologies_name_each_agents_peers() {
    let full = Topology::FullyConnected;
    assert_eq!(full.peers(0, 3), vec![1, 2]);
    assert_eq!(full.peers(1, 3), vec![0, 2]);
    assert_eq!(Topology::Ring.peers(0, 4), vec![1, 3]);
    assert_eq!(Topology::Ring.peers(2, 4), vec![1, 3]);
    assert_eq!(Topology::Ring.peers(0, 2), vec![1]);
    assert_eq!(Topology::Star.peers(0, 3), vec![1, 2]);
    assert_eq!(Topology::Star.peers(2, 3), vec![0]);
    for t in [full, Topology::Ring, Topology::Star] {
        assert!(t.peers(0, 1).is_empty());
        assert_eq!(Topology::parse(&t.name()), Ok(t));
    }
    assert_eq!(full.name(), "full");
    assert_eq!(Topology::parse("fully_connected"), Ok(full));
    assert!(Topology::parse("mesh").is_err());
}

/// A debater answering `first` alone, then `then` once it has read peers.
fn debater(name: &'static str, first: &'static str, then: &'static str) -> Arc<Scripted> {
    Scripted::new(name, move |m| {
        Ok(if last_user(m).contains("other agents") {
            format!("Updated: the answer is {then}")
        } else {
            format!("The answer is {first}")
        })
    })
}

#[tokio::test]
async fn debate_shows_peers_by_topology_and_votes_on_last_answers() {
    let (a, b, c) = (
        debater("m-a", "5", "7"),
        debater("m-b", "7", "7"),
        debater("m-c", "9", "9"),
    );
    let agents = [
        agent("agent-1", Side::Server, a.clone()),
        agent("agent-2", Side::Client, b.clone()),
        agent("agent-3", Side::Client, c.clone()),
    ];
    let config = DebateConfig {
        topology: Topology::Star,
        ..DebateConfig::default()
    };
    let record = debate::run(&Query::new("Q?"), &agents, &config, None)
        .await
        .unwrap();
    assert_eq!(record.steps.len(), 6);
    let kinds: Vec<StepKind> = record.steps.iter().map(|s| s.kind).collect();
    assert_eq!(&kinds[..3], &[StepKind::Draft; 3]);
    assert_eq!(&kinds[3..], &[StepKind::Debate; 3]);
    // The hub reads both spokes; a spoke reads only the hub; each keeps its own conversation.
    let hub = &a.calls()[1];
    assert!(last_user(hub).contains("answer is 7") && last_user(hub).contains("answer is 9"));
    let spoke = &c.calls()[1];
    assert!(last_user(spoke).contains("answer is 5"));
    assert!(!last_user(spoke).contains("answer is 7"));
    assert_eq!(spoke[2], ChatMessage::assistant("The answer is 9"));
    assert_eq!(spoke.iter().filter(|m| m.role == Role::User).count(), 2);
    // Last answers 7, 7, 9 → 7, the first agent's text.
    assert_eq!(record.answer.as_deref(), Some("Updated: the answer is 7"));
    assert_eq!(record.tally.as_ref().unwrap().votes, 2);
    assert_eq!(record.side_of(&record.steps[0]), Some(Side::Server));
    assert_eq!(record.side_of(&record.steps[4]), Some(Side::Client));
}

#[tokio::test]
async fn debate_agent_failing_later_keeps_its_last_answer() {
    let flaky = Scripted::new("flaky", |m| {
        if last_user(m).contains("other agents") {
            Err(ModelError::Inference("lost".into()))
        } else {
            Ok("The answer is 3".into())
        }
    });
    let agents = [
        agent("agent-1", Side::Client, flaky),
        agent("agent-2", Side::Client, debater("m-b", "4", "3")),
    ];
    let config = DebateConfig {
        rounds: 3,
        ..DebateConfig::default()
    };
    let record = debate::run(&Query::new("Q?"), &agents, &config, None)
        .await
        .unwrap();
    assert_eq!(record.steps.len(), 6);
    assert_eq!(
        record.steps.iter().filter(|s| s.error().is_some()).count(),
        2
    );
    assert_eq!(record.tally.as_ref().unwrap().answer, "3");
    assert_eq!(record.answer.as_deref(), Some("The answer is 3"));

    let all_fail = [agent("x", Side::Client, failing("f"))];
    let err = debate::run(&Query::new("Q?"), &all_fail, &config, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StrategyError::AllAgentsFailed { round: 1, .. }),
        "{err}"
    );
    let dup = [
        agent("x", Side::Client, failing("f")),
        agent("x", Side::Client, failing("g")),
    ];
    assert!(matches!(
        debate::run(&Query::new("Q?"), &dup, &config, None).await,
        Err(StrategyError::InvalidConfig(_))
    ));
}

/// A proposer answering `tag-L<layer>` (layer 1 alone, later layers with references).
fn proposer(tag: &'static str) -> Arc<Scripted> {
    Scripted::new(tag, move |m| {
        let layered = m[0].content.contains("Responses from models:");
        Ok(format!("{tag}-L{}", if layered { 2 } else { 1 }))
    })
}

#[tokio::test]
async fn moa_layers_pass_responses_up_to_the_aggregator() {
    let (p1, p2) = (proposer("p1"), proposer("p2"));
    let agg = Scripted::new("big", |m| {
        Ok(format!("FINAL from [{}]", m[0].content.len()))
    });
    let proposers = [
        agent("proposer-1", Side::Client, p1.clone()),
        agent("proposer-2", Side::Client, p2.clone()),
    ];
    let aggregator = agent("aggregator", Side::Server, agg.clone());
    let config = MoaConfig {
        layers: 2,
        ..MoaConfig::default()
    };
    let record = moa::run(
        &Query::new("Q?"),
        &proposers,
        &aggregator,
        &config,
        Watch::default(),
    )
    .await
    .unwrap();
    assert_eq!(record.steps.len(), 5);
    let layer2 = &p1.calls()[1];
    assert!(layer2[0].content.contains("1. p1-L1") && layer2[0].content.contains("2. p2-L1"));
    assert_eq!(layer2[1], ChatMessage::user("Q?"));
    let final_prompt = &agg.calls()[0];
    assert!(final_prompt[0].content.contains("1. p1-L2\n2. p2-L2"));
    assert!(record.answer.as_deref().unwrap().starts_with("FINAL"));
    assert_eq!(record.steps[4].kind, StepKind::Aggregation);
    assert_eq!(record.steps[4].round, 3);
    assert_eq!(record.side_of(&record.steps[4]), Some(Side::Server));
}

#[tokio::test]
async fn moa_failures_are_recorded_and_errors_keep_the_proposals() {
    let proposers = [
        agent("proposer-1", Side::Client, proposer("p1")),
        agent("proposer-2", Side::Client, failing("p2")),
    ];
    let agg = Scripted::new("big", |m| Ok(m[0].content.clone()));
    let record = moa::run(
        &Query::new("Q?"),
        &proposers,
        &agent("aggregator", Side::Server, agg),
        &MoaConfig::default(),
        Watch::default(),
    )
    .await
    .unwrap();
    // The failed proposer is left out of the aggregator's references.
    let answer = record.answer.clone().unwrap();
    assert!(answer.ends_with("1. p1-L1"), "{answer}");
    assert_eq!(record.usage_by_model()["p2"].failed_calls, 1);

    let bad_agg = agent("aggregator", Side::Server, failing("big"));
    let err = moa::run(
        &Query::new("Q?"),
        &proposers,
        &bad_agg,
        &MoaConfig::default(),
        Watch::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StrategyError::AggregatorFailed { .. }),
        "{err}"
    );
    assert_eq!(err.partial().unwrap().steps.len(), 3);
    let clash = agent("proposer-1", Side::Server, failing("big"));
    assert!(matches!(
        moa::run(
            &Query::new("Q?"),
            &proposers,
            &clash,
            &MoaConfig::default(),
            Watch::default()
        )
        .await,
        Err(StrategyError::InvalidConfig(_))
    ));
}

#[test]
fn specs_parse_name_canonically_and_reject_bad_options() {
    let sc = HorizontalSpec::parse("self-consistency").unwrap();
    assert_eq!(
        sc,
        HorizontalSpec::SelfConsistency(spec::SelfConsistencyOptions::default())
    );
    assert_eq!(sc.name(), "self-consistency");
    for (spec, name) in [
        ("debate:topology=ring,agents=3", "debate:topology=ring"),
        ("debate:on=server,rounds=3", "debate:rounds=3,on=server"),
        ("moa:layers=2,proposers=2", "moa:proposers=2,layers=2"),
        ("self-consistency:n=3,t=1", "self-consistency:n=3,t=1"),
        ("debate:t=0,agents=3", "debate:t=0"),
        ("debate:t=0.7", "debate"),
        ("moa:t=1.2", "moa:t=1.2"),
    ] {
        let parsed = HorizontalSpec::parse(spec).unwrap();
        assert_eq!(parsed.name(), name);
        assert_eq!(HorizontalSpec::parse(name).unwrap(), parsed);
    }
    for bad in [
        "debate:agents=0",
        "debate:topology=mesh",
        "self-consistency:t=0",
        "self-consistency:on=cloud",
        "moa:k=2",
        "moa:layers",
        "self-consistency:n=x",
        "moa:t=-1",
        "debate:t=hot",
        "vote",
    ] {
        assert!(HorizontalSpec::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn built_strategies_put_agents_on_their_sides() {
    let small: Arc<dyn ChatModel> = debater("small", "2", "2");
    let big: Arc<dyn ChatModel> = debater("big", "2", "2");
    let built = HorizontalSpec::parse("moa:proposers=2")
        .unwrap()
        .build(std::slice::from_ref(&small), big.clone())
        .unwrap();
    let record = built
        .run(
            &Query::new("Q?"),
            &crate::SamplingParams::default(),
            Watch::default(),
        )
        .await
        .unwrap();
    let sides: Vec<(String, Side)> = record
        .agents
        .iter()
        .map(|a| (a.model.clone(), a.side))
        .collect();
    assert_eq!(
        sides,
        [
            ("small".to_owned(), Side::Client),
            ("small".to_owned(), Side::Client),
            ("big".to_owned(), Side::Server)
        ]
    );
    let debate = HorizontalSpec::parse("debate:on=server,agents=2,rounds=1")
        .unwrap()
        .build(std::slice::from_ref(&small), big)
        .unwrap()
        .run(
            &Query::new("Q?"),
            &crate::SamplingParams::default(),
            Watch::default(),
        )
        .await
        .unwrap();
    assert!(debate
        .agents
        .iter()
        .all(|a| a.side == Side::Server && a.model == "big"));
    assert!(HorizontalSpec::parse("moa")
        .unwrap()
        .build(&[], small)
        .is_err());
}

/// One model shared by every agent: with the spec's default temperature, agents (and MoA
/// proposers) sample with distinct seeds and so can differ; the aggregator keeps the caller's
/// greedy sampling; `t=0` leaves every call to the caller's sampling.
#[tokio::test]
async fn agents_sharing_a_model_sample_with_distinct_seeds() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let shared = Scripted::sampled("small", move |_, p| {
        log.lock().unwrap().push((p.temperature, p.seed));
        Ok(format!("the answer is {}.", p.seed))
    });
    let big_seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let big_log = big_seen.clone();
    let big = Scripted::sampled("big", move |_, p| {
        big_log.lock().unwrap().push(p.temperature);
        Ok("the answer is 1.".into())
    });
    let clients: Vec<Arc<dyn ChatModel>> = vec![shared.clone()];
    let greedy = crate::SamplingParams {
        seed: 10,
        ..crate::SamplingParams::default()
    };
    let debate = HorizontalSpec::parse("debate:agents=3,rounds=1")
        .unwrap()
        .build(&clients, big.clone())
        .unwrap();
    let record = debate
        .run(&Query::new("Q?"), &greedy, Watch::default())
        .await
        .unwrap();
    let mut calls = seen.lock().unwrap().clone();
    calls.sort_by_key(|c| c.1);
    assert_eq!(calls, [(0.7, 10), (0.7, 11), (0.7, 12)]);
    let answers: std::collections::BTreeSet<&str> =
        record.steps.iter().filter_map(|s| s.text()).collect();
    assert_eq!(answers.len(), 3, "three distinct samples");

    seen.lock().unwrap().clear();
    HorizontalSpec::parse("moa:proposers=2")
        .unwrap()
        .build(&clients, big.clone())
        .unwrap()
        .run(&Query::new("Q?"), &greedy, Watch::default())
        .await
        .unwrap();
    let mut calls = seen.lock().unwrap().clone();
    calls.sort_by_key(|c| c.1);
    assert_eq!(calls, [(0.7, 10), (0.7, 11)]);
    assert_eq!(
        *big_seen.lock().unwrap(),
        [0.0],
        "the aggregator stays greedy"
    );

    seen.lock().unwrap().clear();
    HorizontalSpec::parse("debate:agents=2,rounds=1,t=0")
        .unwrap()
        .build(&clients, big)
        .unwrap()
        .run(&Query::new("Q?"), &greedy, Watch::default())
        .await
        .unwrap();
    assert!(seen.lock().unwrap().iter().all(|c| c.0 == 0.0));
}

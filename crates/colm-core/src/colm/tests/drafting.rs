//! `draft=auto`: the draft only when something reads it (super::super::start), with scripted
//! models that take their time.

use super::*;
use crate::options::DraftPolicy;
use crate::testing::Slow;

/// The default mode as `colm:draft=auto` runs it: `reference` guidance, refined in the
/// reference code's form, waiting `wait_ms` for the guidance before drafting.
fn auto(wait_ms: u64) -> ColmConfig {
    ColmConfig {
        draft: DraftPolicy::Auto,
        draft_wait_ms: wait_ms,
        refine: Some(RefineContext::Guidance),
        ..Default::default()
    }
}

async fn round(client: Arc<Slow>, server: &dyn ChatModel, config: &ColmConfig) -> ColmRecord {
    let collabs = [Collaborator {
        id: "client-1".into(),
        description: String::new(),
        model: client,
    }];
    match run(
        &Query::new("What is 9 + 9?"),
        &collabs,
        server,
        config,
        None,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn guidance_in_time_means_no_draft() {
    let device = client("a");
    let rec = round(device.clone().slow(0), server("").as_ref(), &auto(1000)).await;
    let r1 = &rec.rounds[0];
    assert_eq!(r1.draft, Some(DraftOutcome::Skipped));
    assert!(r1.drafts.is_empty());
    // One call, the refinement; it is the answer.
    assert_eq!(device.calls().len(), 1);
    assert_eq!(rec.answer(), Some("REFINED-a-1"));
    assert_eq!(rec.final_answers[0].from, StepKind::Refinement);
}

#[tokio::test]
async fn late_guidance_cancels_the_fallback_draft() {
    let device = client("a");
    let slow_server = server("").slow(150);
    let rec = round(device.clone().slow(2000), slow_server.as_ref(), &auto(20)).await;
    let r1 = &rec.rounds[0];
    assert_eq!(r1.draft, Some(DraftOutcome::Cancelled));
    assert!(
        matches!(r1.drafts[0].outcome, StepOutcome::Cancelled { .. }),
        "{:?}",
        r1.drafts[0]
    );
    assert!(r1.drafts[0].problem().unwrap().starts_with("cancelled"));
    // Stopped when the guidance came, not when the draft would have finished.
    // (The refinement, on the same slow device, takes its 2 s after that.)
    assert!(r1.drafts[0].wall_ms < 1500.0, "{}", r1.drafts[0].wall_ms);
    assert_eq!(rec.answer(), Some("REFINED-a-1"));
}

#[tokio::test]
async fn without_guidance_the_fallback_draft_is_the_answer() {
    let device = client("a");
    let down = failing("server");
    for wait in [0, 5_000] {
        let collabs = [collab("client-1", device.clone())];
        let err = run(&Query::new("q"), &collabs, down.as_ref(), &auto(wait), None)
            .await
            .unwrap_err();
        let ColmError::GuidanceFailed { partial, .. } = err else {
            panic!("{err}")
        };
        assert_eq!(partial.rounds[0].draft, Some(DraftOutcome::Written));
        assert_eq!(partial.answer(), Some("DRAFT-a"), "wait {wait}");
    }
}

#[tokio::test]
async fn modes_that_read_the_draft_draft_at_once() {
    for config in [
        ColmConfig {
            refine: Some(RefineContext::Draft),
            ..auto(1000)
        },
        ColmConfig {
            guidance_mode: GuidanceMode::Synthesis,
            refine: None,
            ..auto(1000)
        },
        ColmConfig {
            draft: DraftPolicy::Always,
            ..auto(1000)
        },
    ] {
        let device = client("a");
        let rec = round(device.clone().slow(0), server("").as_ref(), &config).await;
        assert_eq!(rec.rounds[0].draft, Some(DraftOutcome::Written));
        assert_eq!(rec.rounds[0].drafts[0].text(), Some("DRAFT-a"));
        assert_eq!(device.calls().len(), 2);
    }
}

/// `refine_when=disagreement`: a draft whose final answer the guidance shares is kept without
/// a refinement call; one that disagrees is refined.
#[tokio::test]
async fn agreeing_drafts_are_kept_without_refining() {
    let config = ColmConfig {
        refine_when: crate::options::RefineWhen::Disagreement,
        refine: Some(RefineContext::Draft),
        ..Default::default()
    };
    for (draft, refined) in [("So the answer is 18.", false), ("The answer is 17.", true)] {
        let device = Scripted::new("device", move |m| {
            Ok(if is_refinement(m) {
                "REFINED 18"
            } else {
                draft
            }
            .into())
        });
        let rec = round(device.clone().slow(0), server("").as_ref(), &config).await;
        assert_eq!(device.calls().len(), 1 + usize::from(refined), "{draft}");
        assert_eq!(rec.rounds[0].kept.is_empty(), refined, "{draft}");
        let want = if refined { "REFINED 18" } else { draft };
        assert_eq!(rec.answer(), Some(want));
    }
}

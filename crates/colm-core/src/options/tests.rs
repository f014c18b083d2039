//! Tests of the collaboration options: the text form, checks, canonical names, merging.

use super::*;
use crate::colm::ColmConfig;

fn colm(args: &str) -> Result<ColmOptions, crate::invalid::Invalid> {
    let o: ColmOptions = text::parse("colm option", args)?;
    o.check()?;
    Ok(o)
}

#[test]
fn the_text_form_goes_through_serde_and_keeps_the_old_spellings() {
    let o = colm("refs=3,select=model,drafts=on,rounds=2").unwrap();
    assert_eq!(o.guidance().refs, Some(3));
    assert_eq!(o.guidance().selector, Some(Selector::Model));
    assert_eq!(o.guidance().aggregate_drafts, Some(true));
    assert_eq!(o.round.rounds, Some(2));
    assert_eq!(
        text::format(&o.canonical()),
        "rounds=2,refs=3,selector=model,aggregate_drafts=true"
    );
    let e = colm("x=1").unwrap_err();
    assert!(
        e.0.contains("`x`") && e.0.contains("refs") && e.0.contains("top_k"),
        "{e}"
    );
    let e = colm("mode=loud").unwrap_err();
    assert!(
        e.0.contains("loud") && e.0.contains("reference-critique"),
        "{e}"
    );
    assert!(colm("drafts=maybe").is_err());
    assert!(colm("refs=0").is_err());
    assert!(colm("refs=9").is_err());
    assert!(colm("mode=synthesis,refs=3").is_err());
    assert!(colm("mode=vote,screen=agreeing").is_err());
    assert!(colm("mode=critique,refine=guidance").is_err());
    assert!(colm("auto_threshold=0.5").is_err());
    assert!(colm("mode=auto,auto_threshold=0.5").is_ok());
    assert!(colm("k").is_err());
}

#[test]
fn names_are_the_serde_names() {
    for m in Mode::ALL {
        assert_eq!(Mode::parse(&m.name()), Ok(m));
        assert_eq!(m.with_threshold(None).name(), m.name());
    }
    assert_eq!(Mode::ReferenceCritique.name(), "reference-critique");
    let e = Mode::parse("loud").unwrap_err();
    assert!(e.0.contains("loud") && e.0.contains("vote"), "{e}");
}

#[test]
fn flags_over_a_strategy_win_and_defaults_drop_out_of_the_canonical_form() {
    let base = colm("refs=3,rounds=2").unwrap();
    let top = colm("rounds=1,selector=model").unwrap();
    let o = top.over(&base).unwrap();
    assert_eq!(text::format(&o.canonical()), "refs=3,selector=model");
    let synth = ColmOptions {
        round: RoundOptions {
            guidance: GuidanceOptions {
                mode: Some(Mode::Synthesis),
                ..GuidanceOptions::default()
            },
            ..RoundOptions::default()
        },
        ..ColmOptions::default()
    };
    assert!(synth.over(&base).is_err(), "refs with synthesis");
    assert_eq!(
        text::format(
            &colm("mode=reference,refs=1,pool=seeds")
                .unwrap()
                .canonical()
        ),
        ""
    );
    assert_eq!(
        text::format(&colm("mode=synthesis,refine=draft").unwrap().canonical()),
        "mode=synthesis"
    );
}

#[test]
fn max_drafts_is_an_option_of_every_form_and_bounds_the_answers_read() {
    let o = colm("mode=synthesis,max_drafts=2").unwrap();
    assert_eq!(text::format(&o.canonical()), "mode=synthesis,max_drafts=2");
    assert_eq!(o.config(ColmConfig::default()).max_drafts, Some(2));
    // All (16) is the default: left out of the canonical form and of the settings.
    let all = colm("max_drafts=16").unwrap();
    assert_eq!(text::format(&all.canonical()), "");
    assert_eq!(all.config(ColmConfig::default()).max_drafts, None);
    assert!(colm("max_drafts=0").is_err());
    assert!(colm("max_drafts=17").is_err());
    let g: GuidanceOptions = serde_json::from_str(r#"{"max_drafts": 3}"#).unwrap();
    assert_eq!(g.max_drafts, Some(3));
}

#[test]
fn the_json_form_is_the_api_form() {
    let g: GuidanceOptions =
        serde_json::from_str(r#"{"mode":"auto","auto_threshold":0.75,"screen":"agreeing"}"#)
            .unwrap();
    assert_eq!(g.mode(), GuidanceMode::Auto { threshold: 0.75 });
    assert_eq!(g.screen(), DraftScreen::Agreeing);
    assert!(serde_json::from_str::<GuidanceOptions>(r#"{"aggregate_drafts":"yes"}"#).is_err());
}

#[test]
fn pool_t_sets_the_temperature_of_the_sampled_writers() {
    let o = colm("refs=3,aggregate=vote,pool_t=0.5").unwrap();
    let server: std::sync::Arc<dyn crate::model::ChatModel> =
        crate::testing::Scripted::new("big", |_| Ok("18".into()));
    let w = o.pool().writers(&server, o.guidance().refs(), o.pool_t());
    let t: Vec<Option<f32>> = w.iter().map(|w| w.temperature).collect();
    assert_eq!(
        t,
        [None, Some(0.5), Some(0.5)],
        "the first writer stays greedy"
    );
    assert_eq!(
        text::format(&o.canonical()),
        "refs=3,aggregate=vote,pool_t=0.5"
    );
    // The default is left out of the canonical form.
    let d = colm("refs=3,pool_t=0.3").unwrap();
    assert_eq!(text::format(&d.canonical()), "refs=3");
    for bad in [
        "pool_t=0",
        "pool_t=-1",
        "mode=vote,pool_t=0.3",
        "pool=roles,pool_t=0.3",
    ] {
        assert!(colm(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_draft_policy_and_when_to_refine_are_options() {
    let base = ColmConfig::default();
    let plain = colm("").unwrap().config(base.clone());
    assert_eq!(
        (plain.draft, plain.draft_wait_ms, plain.refine_when),
        (DraftPolicy::Auto, 3000, RefineWhen::Always)
    );
    let always = colm("draft=always,draft_wait_ms=10")
        .unwrap()
        .config(base.clone());
    assert_eq!(
        (always.draft, always.draft_wait_ms),
        (DraftPolicy::Always, 10)
    );
    // Refining on disagreement compares the draft: it implies drafting at once …
    let agreeing = colm("refine_when=disagreement").unwrap().config(base);
    assert_eq!(
        (agreeing.draft, agreeing.refine_when),
        (DraftPolicy::Always, RefineWhen::Disagreement)
    );
    assert!(agreeing.drafts_at_once());
    // … and cannot go with a draft written only when needed.
    let e = colm("draft=auto,refine_when=disagreement").unwrap_err();
    assert!(e.to_string().contains("refine_when"), "{e}");
    assert!(colm("draft=sometimes").is_err());
    // Defaults are left out of the canonical text.
    assert_eq!(
        text::format(&colm("draft=auto,draft_wait_ms=3000").unwrap().canonical()),
        ""
    );
}

//! Tests of the interaction log on SQLite and PostgreSQL.

use super::store::SCHEMA;
use super::*;
use rusqlite::Connection;

/// What any backend must do with records and feedback.
async fn keeps_records_and_their_tenants_feedback(log: InteractionLog, quiet: InteractionLog) {
    let r = Interaction {
        id: "rec_a".into(),
        created_ms: 1_700_000_000_000,
        tenant: "acme".into(),
        route: "/v1/chat/completions".into(),
        status: 200,
        model: Some("qwen".into()),
        strategy: Some("model".into()),
        prompt_tokens: 42,
        completion_tokens: 7,
        mean_logprob: Some(-0.25),
        finish_reason: Some("stop".into()),
        latency_ms: 812.5,
        bytes_in: 300,
        bytes_out: 900,
        sensitive: false,
        query: Some("How many eggs?".into()),
        answer: Some("18".into()),
        error: None,
        routed: Some("colm".into()),
        residency: None,
        transcript: Some(colm_core::Transcript {
            steps: vec![colm_core::TranscriptStep {
                step: colm_core::step::StepKind::Reference,
                round: 1,
                collaborator: Some("math".into()),
                model: "qwen".into(),
                text: Some("She has 18 eggs.".into()),
                error: None,
                note: None,
                prompt_tokens: 30,
                completion_tokens: 6,
                wall_ms: 400.0,
                shared: true,
            }],
        }),
    };
    let secret = Interaction {
        id: "rec_b".into(),
        created_ms: r.created_ms + 1,
        sensitive: true,
        query: Some("my card 4111 1111 1111 1111".into()),
        residency: Some(colm_core::ResidencyOutcome::Redacted),
        ..r.clone()
    };
    // A stream cut by a model error after some text.
    let failed = Interaction {
        id: "rec_c".into(),
        created_ms: r.created_ms + 2,
        prompt_tokens: 0,
        completion_tokens: 0,
        answer: Some("The ans".into()),
        error: Some("upstream: connection reset".into()),
        ..r.clone()
    };
    log.append(&r).await.unwrap();
    log.append(&secret).await.unwrap();
    log.append(&failed).await.unwrap();
    assert!(log.append(&r).await.is_err(), "an id is kept once");
    let right = Feedback {
        outcome: Some("right".into()),
        score: Some(0.5),
    };
    assert!(log.feedback("rec_a", "acme", &right).await.unwrap());
    assert!(!log.feedback("rec_a", "globex", &right).await.unwrap());
    assert!(!log.feedback("rec_zzz", "acme", &right).await.unwrap());
    let all = log.read_all().await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], (r.clone(), right.clone()));
    assert_eq!(all[2].0, failed);
    assert_eq!(
        (all[1].0.query.as_ref(), all[1].0.answer.as_ref()),
        (None, None)
    );
    assert_eq!(all[1].1, Feedback::default());
    assert_eq!(
        all[1].0.residency,
        Some(colm_core::ResidencyOutcome::Redacted)
    );
    // A sensitive record keeps its transcript's shape, not its texts.
    let steps = &all[1].0.transcript.as_ref().unwrap().steps;
    assert_eq!(
        (steps[0].text.as_ref(), steps[0].completion_tokens),
        (None, 6)
    );
    // A tenant reads its own records, newest first, and no other tenant's.
    assert_eq!(
        log.get("rec_a", "acme").await.unwrap(),
        Some((r.clone(), right.clone()))
    );
    assert_eq!(log.get("rec_a", "globex").await.unwrap(), None);
    let recent: Vec<String> = log
        .recent("acme", 2)
        .await
        .unwrap()
        .into_iter()
        .map(|(r, _)| r.id)
        .collect();
    assert_eq!(recent, ["rec_c", "rec_b"]);
    assert!(log.recent("globex", 10).await.unwrap().is_empty());
    // Texts turned off by the operator.
    quiet.append(&r).await.unwrap();
    let kept = quiet.read_all().await.unwrap();
    assert_eq!(
        (kept[0].0.query.as_ref(), kept[0].0.prompt_tokens),
        (None, 42)
    );
}

#[tokio::test]
async fn sqlite_keeps_records_and_feedback() {
    let dir = std::env::temp_dir().join(format!("colm-log-{}", crate::state::random_token()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = InteractionLog::open(&dir.join("a.sqlite"), true).unwrap();
    let quiet = InteractionLog::open(&dir.join("b.sqlite"), false).unwrap();
    keeps_records_and_their_tenants_feedback(log, quiet).await;
    let target = dir.join("a.sqlite");
    assert_eq!(
        read_target(target.to_str().unwrap()).await.unwrap().len(),
        3
    );
    // A log of the first schema: read as it is, then given the new columns when opened.
    let old = dir.join("old.sqlite");
    Connection::open(&old)
        .unwrap()
        .execute_batch(&format!("{}{OLD_ROW}", first_schema()))
        .unwrap();
    let read = read_target(old.to_str().unwrap()).await.unwrap();
    assert_eq!(
        (read[0].0.id.as_str(), read[0].0.error.as_ref()),
        ("rec_old", None)
    );
    writes_errors_once_opened(InteractionLog::open(&old, true).unwrap()).await;
    // Reading a log that is not there is an error, and creates nothing.
    let missing = dir.join("missing.sqlite");
    assert!(read_target(missing.to_str().unwrap()).await.is_err());
    assert!(!missing.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The same against a real PostgreSQL server.
#[tokio::test]
async fn postgres_keeps_records_and_feedback() {
    let pg = colm_test_support::LocalPostgres::start().await.unwrap();
    let log = InteractionLog::open_target(&pg.url, true).await.unwrap();
    // A second database for the log without texts.
    let (admin, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin.batch_execute("CREATE DATABASE quiet").await.unwrap();
    let quiet_url = pg.url.replace("/postgres", "/quiet");
    let quiet = InteractionLog::open_target(&quiet_url, false)
        .await
        .unwrap();
    keeps_records_and_their_tenants_feedback(log, quiet).await;
    assert_eq!(read_target(&pg.url).await.unwrap().len(), 3);
    // A log of the first schema.
    admin.batch_execute("CREATE DATABASE old").await.unwrap();
    let old_url = pg.url.replace("/postgres", "/old");
    let (old, conn) = tokio_postgres::connect(&old_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    old.batch_execute(&format!("{}{OLD_ROW}", first_schema()))
        .await
        .unwrap();
    let read = read_target(&old_url).await.unwrap();
    assert_eq!(
        (read[0].0.id.as_str(), read[0].0.error.as_ref()),
        ("rec_old", None)
    );
    writes_errors_once_opened(InteractionLog::open_target(&old_url, true).await.unwrap()).await;
}

/// [`SCHEMA`] as it was before [`ADDED_COLUMNS`].
fn first_schema() -> String {
    let s = SCHEMA.replace(",\n    error TEXT,\n    routed TEXT\n", "\n");
    assert!(!s.contains("error") && !s.contains("routed"));
    s
}

/// A record written with the first schema.
const OLD_ROW: &str = "INSERT INTO interactions (id, created_ms, tenant, route, status,
    prompt_tokens, completion_tokens, latency_ms, bytes_in, bytes_out, sensitive)
    VALUES ('rec_old', 1, '', '/v1/chat/completions', 200, 3, 4, 5.0, 6, 7, FALSE);";

/// `log`, opened on a log of the first schema, keeps a failed record's error.
async fn writes_errors_once_opened(log: InteractionLog) {
    let failed = Interaction {
        id: "rec_new".into(),
        created_ms: 2,
        status: 500,
        error: Some("out of memory".into()),
        ..Interaction::default()
    };
    log.append(&failed).await.unwrap();
    let all = log.read_all().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].0, failed);
}

#[test]
fn feedback_is_right_by_outcome_else_by_score() {
    let fb = |outcome: Option<&str>, score| Feedback {
        outcome: outcome.map(str::to_owned),
        score,
    };
    assert_eq!(fb(Some("wrong"), Some(0.9)).right(), Some(false));
    assert_eq!(fb(Some("right"), None).right(), Some(true));
    assert_eq!(fb(None, Some(0.5)).right(), Some(true));
    assert_eq!(fb(None, Some(0.49)).right(), Some(false));
    assert_eq!(fb(None, None).right(), None);
}

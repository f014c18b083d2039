//! Tests of the key check, the rate and budget buckets and reservations.
use super::*;

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    assert_eq!(bearer_key("Bearer sk-1"), Some("sk-1"));
    assert_eq!(bearer_key("bearer sk-1"), Some("sk-1"));
    assert_eq!(bearer_key("BEARER  sk-1 "), Some("sk-1"));
    assert_eq!(bearer_key("Basic c2s="), None);
    assert_eq!(bearer_key("Bearer "), None);
    assert_eq!(bearer_key("Bearersk-1"), None);
}

fn budget_config() -> AuthConfig {
    AuthConfig {
        tokens_per_hour: Some(3600),
        keys: vec![
            ApiKey {
                digest: digest("a"),
                tenant: "acme".into(),
            },
            ApiKey {
                digest: digest("g"),
                tenant: "globex".into(),
            },
        ],
        ..AuthConfig::default()
    }
}

/// The budget checks, for buckets in memory or in Redis.
async fn budgets_are_spent_overdrawn_and_refilled(auth: Auth) {
    assert!(auth.budget_left("acme").await.is_ok());
    // A request may overdraw the budget; the next one waits until it is positive again,
    // at 1 token per second (3600 per hour).
    auth.charge("acme", 3610.0);
    // (With Redis the charge is sent in the background.)
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let wait = auth.budget_left("acme").await.unwrap_err();
    assert!((10..=12).contains(&wait), "{wait}");
    // Another tenant's budget is its own.
    assert!(auth.budget_left("globex").await.is_ok());
    let left = auth.budgets_left().await.unwrap();
    assert_eq!(left[1].0, "globex");
    assert!((3599.0..=3600.0).contains(&left[1].1), "{left:?}");
    assert!(left[0].1 < 0.0, "{left:?}");
}

/// The rate checks, for buckets in memory or in Redis.
async fn buckets_allow_the_burst_then_say_when(auth: Auth) {
    assert!(auth.take("k").await.is_ok());
    assert!(auth.take("k").await.is_ok());
    let wait = auth.take("k").await.unwrap_err();
    assert!((1..=30).contains(&wait), "{wait}");
    // Buckets are per tenant.
    assert!(auth.take("other").await.is_ok());
}

fn rate_config() -> AuthConfig {
    AuthConfig {
        requests_per_minute: Some(2),
        ..AuthConfig::with_keys(["k"])
    }
}

/// Requests running together each reserve their estimate first: the second of two that
/// would pass the budget together waits (for as long as the refill takes), until the first
/// settles with what it used; a reservation larger than the whole budget needs all of it.
#[tokio::test]
async fn reservations_of_requests_running_together_cannot_pass_the_budget() {
    let auth = Auth::new(budget_config());
    assert!(auth.reserve("acme", 3000).await.is_ok());
    let wait = auth.reserve("acme", 3000).await.unwrap_err();
    assert!((2399..=2401).contains(&wait), "{wait}");
    assert!(auth.reserve("globex", 3000).await.is_ok(), "its own budget");
    // The first used 100 of its 3000: the rest comes back.
    auth.charge("acme", 100.0 - 3000.0);
    assert!(auth.reserve("acme", 3000).await.is_ok());
    auth.charge("acme", -3000.0);
    assert!(auth.reserve("acme", 10_000).await.is_err(), "3500 left");
    auth.charge("acme", -100.0);
    assert!(auth.reserve("acme", 10_000).await.is_ok(), "a full budget");
    assert!(Auth::new(AuthConfig::default())
        .reserve("acme", u64::MAX)
        .await
        .is_ok());
}

#[tokio::test]
async fn a_token_budget_is_spent_overdrawn_and_refilled_per_tenant() {
    budgets_are_spent_overdrawn_and_refilled(Auth::new(budget_config())).await;
    // Without a budget nothing is counted.
    let free = Auth::new(AuthConfig::with_keys(["k"]));
    free.charge("k", f64::MAX);
    assert!(free.budget_left("k").await.is_ok());
    assert!(free.budgets_left().await.is_none());
}

#[tokio::test]
async fn bucket_allows_the_burst_then_says_when() {
    buckets_allow_the_burst_then_say_when(Auth::new(rate_config())).await;
}

/// The same limits kept in a real Redis hold across two servers (two `Auth`s, as two
/// replicas have).
#[tokio::test]
async fn limits_in_redis_hold_across_replicas() {
    let redis = colm_test_support::LocalRedis::start().await.unwrap();
    let state = crate::state::RedisState::connect(&redis.url, "t1")
        .await
        .unwrap();
    budgets_are_spent_overdrawn_and_refilled(Auth::new(budget_config()).shared(state.clone()))
        .await;
    let other = Auth::new(budget_config()).shared(
        crate::state::RedisState::connect(&redis.url, "t1")
            .await
            .unwrap(),
    );
    assert!(
        other.budget_left("acme").await.is_err(),
        "spent on the other replica"
    );
    let a = Auth::new(rate_config()).shared(state.clone());
    let b = Auth::new(rate_config()).shared(
        crate::state::RedisState::connect(&redis.url, "t1")
            .await
            .unwrap(),
    );
    assert!(a.take("k").await.is_ok());
    assert!(b.take("k").await.is_ok());
    assert!(
        a.take("k").await.is_err(),
        "two of two taken, one on each replica"
    );
    let fresh = Auth::new(rate_config()).shared(
        crate::state::RedisState::connect(&redis.url, "t2")
            .await
            .unwrap(),
    );
    buckets_allow_the_burst_then_say_when(fresh).await;
}

#[test]
fn key_files_skip_blanks_and_comments() {
    let dir = std::env::temp_dir().join(format!("colm-keys-{}", std::process::id()));
    // sk-two given by its digest: sha256("sk-two").
    let hashed: String = digest("sk-two")
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    std::fs::write(
        &dir,
        format!(
            "# team keys\n\nsk-one\n  acme  sha256:{hashed}  \nacme sk-three\nglobex sk-four\n"
        ),
    )
    .unwrap();
    let keys = AuthConfig::keys_from_file(&dir).unwrap();
    assert_eq!(keys.len(), 4);
    assert_eq!(keys[0], ApiKey::alone(digest("sk-one")));
    assert_eq!(keys[1].digest, digest("sk-two"));
    assert_eq!(
        (keys[1].tenant.as_str(), keys[2].tenant.as_str()),
        ("acme", "acme")
    );
    let mut config = AuthConfig {
        keys,
        ..AuthConfig::default()
    };
    let tenant = |k: &str| config.tenant_of(k).map(|t| (t.name, t.scope));
    assert_eq!(tenant("sk-two"), Some(("acme".into(), "acme".into())));
    assert_eq!(tenant("sk-three"), tenant("sk-two"));
    assert!(tenant("sk-one").is_some_and(|(n, s)| n.starts_with("key-") && n == s));
    assert_eq!(tenant("sk-five"), None);
    assert_eq!(tenant(&hashed), None);
    // A share group puts two tenants in one scope, on purpose.
    config.share_groups = vec![vec!["globex".into(), "acme".into()]];
    assert!(config.check_groups().is_ok());
    let tenant = |k: &str| config.tenant_of(k).map(|t| (t.name, t.scope));
    assert_eq!(
        tenant("sk-four"),
        Some(("globex".into(), "group:acme,globex".into()))
    );
    assert_eq!(
        tenant("sk-two"),
        Some(("acme".into(), "group:acme,globex".into()))
    );
    config.share_groups = vec![vec!["initech".into()]];
    assert!(config.check_groups().unwrap_err().0.contains("initech"));
    std::fs::write(&dir, "a b c\n").unwrap();
    assert!(AuthConfig::keys_from_file(&dir).is_err());
    std::fs::write(&dir, "ac/me sk-1\n").unwrap();
    assert!(AuthConfig::keys_from_file(&dir).is_err());
    std::fs::write(&dir, "sha256:abc\n").unwrap();
    let e = AuthConfig::keys_from_file(&dir).unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
    std::fs::write(&dir, "# nothing\n").unwrap();
    assert!(AuthConfig::keys_from_file(&dir).is_err());
    let _ = std::fs::remove_file(&dir);
}

//! API keys, tenants and per-tenant rate limits for the `/v1` routes (and, with
//! [`AuthConfig::protect_ops`], `/metrics` and `/openapi.json`).
//!
//! Keys are sent as `Authorization: Bearer KEY` (as OpenAI clients do). A missing or unknown
//! key gets 401 `invalid_api_key`; a tenant over its rate gets 429 `rate_limit_exceeded` with
//! a `Retry-After` header (seconds). The rate is a token bucket per tenant:
//! `requests_per_minute` requests of burst, refilled continuously. A tenant may also have a
//! **token budget** ([`AuthConfig::tokens_per_hour`]): the model tokens (prompt and
//! completion) its requests cost, in a bucket of that size refilled continuously; a tenant
//! whose bucket is empty gets 429 `insufficient_quota` with a `Retry-After` until it refills.
//! A chat completion first reserves its estimate ([`Auth::reserve`]: it runs only when the
//! bucket holds it, or the whole bucket for an estimate larger than that), then settles with
//! what its model calls used however it ended ([`crate::charge`]). Work a session does for all
//! its clients is charged to the tenant that created it.
//!
//! **Tenants.** Every key belongs to a tenant: the key file names it (`TENANT KEY`), or a key
//! given alone is a tenant of its own. What colm shares between requests — open sessions and
//! the shared references and their synthesis — is shared only within a tenant's **sharing
//! scope**: the tenant itself, or the group an operator put it in on purpose
//! ([`AuthConfig::share_groups`]). The scope of the request being served is a task-local
//! ([`sharing_scope`]), set by the middleware, so every store reads it without it being passed
//! through the strategies; code that finds none shares nothing. Without keys every request is
//! of one anonymous tenant.
//!
//! The server keeps only the SHA-256 of each key (a key file may hold the digests,
//! `sha256:HEX`, instead of the keys) and compares a presented key's digest with every stored
//! one in constant time ([`subtle`]), so neither memory nor timing gives a key away.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::RedisState;

/// The SHA-256 of an API key: all the server keeps of it.
pub type KeyDigest = [u8; 32];

/// The digest of `key`.
pub fn digest(key: &str) -> KeyDigest {
    use sha2::Digest as _;
    sha2::Sha256::digest(key.as_bytes()).into()
}

/// An accepted API key: its digest and the tenant it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// SHA-256 of the key.
    pub digest: KeyDigest,
    /// The tenant's name (letters, digits, `-`, `_`, `.`).
    pub tenant: String,
}

impl ApiKey {
    /// A key of its own tenant, named `key-` and the first 8 hex digits of its digest.
    pub fn alone(digest: KeyDigest) -> Self {
        let tenant = format!(
            "key-{}",
            digest[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        Self { digest, tenant }
    }
}

/// Who a request is from: its tenant and the scope it shares sessions and references in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The tenant's name (`""` on a server without keys).
    pub name: String,
    /// The sharing scope: the tenant's name, or `group:` and the sorted names of the tenants of
    /// its share group.
    pub scope: String,
}

impl Tenant {
    /// The one tenant of a server without keys.
    pub fn anonymous() -> Self {
        Self {
            name: String::new(),
            scope: String::new(),
        }
    }
}

tokio::task_local! {
    static TENANT: Tenant;
}

/// The sharing scope of the request being served (see the module docs); `None` outside a
/// request's task, where nothing may be shared.
pub fn sharing_scope() -> Option<String> {
    TENANT.try_with(|t| t.scope.clone()).ok()
}

/// The tenant of the request being served; `None` outside a request's task.
pub fn current_tenant() -> Option<Tenant> {
    TENANT.try_with(Clone::clone).ok()
}

/// Runs `f` as `tenant`'s work (for work a request hands to a spawned task): it shares in the
/// tenant's scope and its tokens are charged to the tenant.
pub async fn as_tenant<F: std::future::Future>(tenant: Tenant, f: F) -> F::Output {
    TENANT.scope(tenant, f).await
}

/// Keys, tenants and limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// The accepted API keys.
    pub keys: Vec<ApiKey>,
    /// Requests per minute per tenant; `None` = unlimited.
    pub requests_per_minute: Option<u32>,
    /// Model tokens (prompt + completion) per hour per tenant; `None` = unlimited.
    pub tokens_per_hour: Option<u64>,
    /// `POST` requests in flight (queued or running) per tenant ([`crate::inflight`]);
    /// `None` = only the server's caps.
    pub max_concurrent: Option<usize>,
    /// Also require a key on `/metrics` and `/openapi.json` (open by default: monitoring and
    /// clients' code generators read them). Then `/metrics` shows every series to the keys of
    /// the [`AuthConfig::operators`] and to any other key only its own tenant's series.
    pub protect_ops: bool,
    /// Tenants whose keys see every series of `/metrics` under [`AuthConfig::protect_ops`]
    /// (the operator's monitoring); none by default.
    pub operators: Vec<String>,
    /// Groups of tenants that share sessions and shared references with each other (the
    /// operator's choice; by default a tenant shares with no other). A tenant is in at most one
    /// group.
    pub share_groups: Vec<Vec<String>>,
}

impl AuthConfig {
    /// The configuration accepting `keys` (given in clear, each its own tenant), with no rate
    /// limit.
    pub fn with_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            keys: keys.into_iter().map(|k| ApiKey::alone(digest(k))).collect(),
            ..Self::default()
        }
    }

    /// Reads keys from a file: one per line, `[TENANT] KEY`, where KEY is the key itself or
    /// `sha256:` and the lower- or upper-case hex SHA-256 of the key (so the file need not hold
    /// the key) and TENANT names the tenant the key belongs to (letters, digits, `-`, `_`,
    /// `.`; a key without one is a tenant of its own, [`ApiKey::alone`]); blank lines and
    /// lines starting with `#` are skipped.
    ///
    /// # Errors
    /// The file cannot be read, a line has more than two fields or a bad tenant name, a
    /// `sha256:` key is not 64 hex digits, or the file holds no key.
    pub fn keys_from_file(path: &Path) -> std::io::Result<Vec<ApiKey>> {
        let text = std::fs::read_to_string(path)?;
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let invalid = |msg: &str| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} line {}: {msg}", path.display(), n + 1),
                )
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (tenant, key) = match fields.as_slice() {
                [key] => (None, *key),
                [tenant, key] => (Some(*tenant), *key),
                _ => return Err(invalid("expected `[TENANT] KEY`")),
            };
            let digest = match key.strip_prefix("sha256:") {
                Some(hex) => {
                    parse_hex(hex).ok_or_else(|| invalid("sha256: needs 64 hex digits"))?
                }
                None => digest(key),
            };
            keys.push(match tenant {
                Some(t) => {
                    check_tenant_name(t).map_err(|e| invalid(&e))?;
                    ApiKey {
                        digest,
                        tenant: t.to_owned(),
                    }
                }
                None => ApiKey::alone(digest),
            });
        }
        if keys.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} holds no API key", path.display()),
            ));
        }
        Ok(keys)
    }

    /// Checks the share groups and the operators against the keys: every tenant named is a
    /// tenant of some key, and in one share group at most.
    ///
    /// # Errors
    /// A message naming the unknown or repeated tenant.
    pub fn check_groups(&self) -> Result<(), colm_core::Invalid> {
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.operators {
            if !self.keys.iter().any(|k| &k.tenant == t) {
                return Err(colm_core::Invalid(format!(
                    "operator `{t}` is a tenant with no key"
                )));
            }
        }
        for group in &self.share_groups {
            for t in group {
                if !self.keys.iter().any(|k| &k.tenant == t) {
                    return Err(colm_core::Invalid(format!(
                        "share group names tenant `{t}`, which has no key"
                    )));
                }
                if !seen.insert(t.as_str()) {
                    return Err(colm_core::Invalid(format!(
                        "tenant `{t}` is in more than one share group"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The tenant of `key`, when it is accepted: its digest is compared with every stored one
    /// in constant time (no early exit), and the match's index is selected without branching.
    pub fn tenant_of(&self, key: &str) -> Option<Tenant> {
        use subtle::{ConditionallySelectable as _, ConstantTimeEq as _};
        let presented = digest(key);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, k) in self.keys.iter().enumerate() {
            let hit = k.digest.ct_eq(&presented);
            index.conditional_assign(&(i as u32), hit);
            found |= hit;
        }
        if !bool::from(found) {
            return None;
        }
        let name = self.keys.get(index as usize)?.tenant.clone();
        let scope = match self.share_groups.iter().find(|g| g.contains(&name)) {
            Some(group) => {
                let mut members = group.clone();
                members.sort();
                members.dedup();
                format!("group:{}", members.join(","))
            }
            None => name.clone(),
        };
        Some(Tenant { name, scope })
    }
}

/// A tenant name is 1 to 64 letters, digits, `-`, `_` or `.`.
fn check_tenant_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tenant `{name}`: use 1 to 64 letters, digits, `-`, `_` or `.`"
        ))
    }
}

/// 32 bytes from 64 hex digits.
fn parse_hex(hex: &str) -> Option<KeyDigest> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Authentication state shared by the middleware.
#[derive(Clone)]
pub struct Auth {
    config: Arc<AuthConfig>,
    buckets: Arc<Mutex<HashMap<String, (f64, Instant)>>>,
    budgets: Arc<Mutex<HashMap<String, (f64, Instant)>>>,
    inflight: crate::inflight::InFlight,
    /// Where the buckets live when replicas share them (`None`: in `buckets` and `budgets`).
    redis: Option<RedisState>,
}

/// The two kinds of bucket a tenant has.
#[derive(Clone, Copy)]
enum Kind {
    /// Requests per minute.
    Rate,
    /// Model tokens per hour.
    Budget,
}

impl Auth {
    /// Middleware state for `config`.
    pub fn new(config: AuthConfig) -> Self {
        Self {
            config: Arc::new(config),
            buckets: Arc::default(),
            budgets: Arc::default(),
            inflight: crate::inflight::InFlight::default(),
            redis: None,
        }
    }

    /// The same, keeping the rate-limit buckets and token budgets in the Redis replicas share
    /// ([`crate::state`]): a tenant's limits hold across replicas.
    #[must_use]
    pub fn shared(mut self, redis: RedisState) -> Self {
        self.redis = Some(redis);
        self
    }

    /// Whether `/metrics` and `/openapi.json` need a key too.
    pub fn protects_ops(&self) -> bool {
        self.config.protect_ops
    }

    /// Whether `tenant` sees every tenant's metrics ([`AuthConfig::operators`]).
    pub fn is_operator(&self, tenant: &str) -> bool {
        self.config.operators.iter().any(|o| o == tenant)
    }

    /// Capacity and per-second refill of a bucket of `kind`; `None` when that limit is off.
    fn limits(&self, kind: Kind) -> Option<(f64, f64)> {
        match kind {
            Kind::Rate => self.config.requests_per_minute.map(|rpm| {
                let c = f64::from(rpm.max(1));
                (c, c / 60.0)
            }),
            Kind::Budget => self.config.tokens_per_hour.map(|per_hour| {
                let c = per_hour.max(1) as f64;
                (c, c / 3600.0)
            }),
        }
    }

    /// [`refill`] of `tenant`'s bucket of `kind` (Ok when that limit is off), in memory or in
    /// Redis; a Redis failure lets the request through and is logged.
    async fn bucket(&self, kind: Kind, tenant: &str, need: f64, cost: f64) -> Result<f64, u64> {
        let Some((capacity, per_second)) = self.limits(kind) else {
            return Ok(0.0);
        };
        let Some(redis) = &self.redis else {
            let map = match kind {
                Kind::Rate => &self.buckets,
                Kind::Budget => &self.budgets,
            };
            return refill(map, tenant, capacity, per_second, need, cost);
        };
        let name = match kind {
            Kind::Rate => format!("rate:{tenant}"),
            Kind::Budget => format!("budget:{tenant}"),
        };
        match redis.refill(&name, capacity, per_second, need, cost).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, tenant, "limit not checked: shared state failed");
                Ok(capacity)
            }
        }
    }

    /// Takes one request from `tenant`'s bucket; `Err(seconds)` until the next one is
    /// allowed.
    async fn take(&self, tenant: &str) -> Result<(), u64> {
        self.bucket(Kind::Rate, tenant, 1.0, 1.0).await.map(drop)
    }

    /// Whether `tenant` has budget left (its bucket holds a token); `Err(seconds)` until it
    /// does.
    async fn budget_left(&self, tenant: &str) -> Result<(), u64> {
        self.bucket(Kind::Budget, tenant, 1.0, 0.0).await.map(drop)
    }

    /// Reserves `tokens` of `tenant`'s budget for a request about to run: taken at once when
    /// the budget holds them (all of it, for a reservation larger than the whole budget), so
    /// that requests running together see each other's reservations and cannot pass the
    /// budget together; `Err(seconds)` until it will hold them ([`Auth::budget_spent`]). The
    /// request settles with [`Auth::charge`] of what it used less what it reserved.
    pub async fn reserve(&self, tenant: &str, tokens: u64) -> Result<(), u64> {
        let Some((capacity, _)) = self.limits(Kind::Budget) else {
            return Ok(());
        };
        let cost = tokens as f64;
        self.bucket(Kind::Budget, tenant, cost.min(capacity).max(1.0), cost)
            .await
            .map(drop)
    }

    /// The 429 of a tenant whose budget is spent, to retry in `wait` seconds.
    pub fn budget_spent(&self, wait: u64) -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "this tenant's token budget ({} tokens per hour) is spent; retry in {wait} s",
                self.config.tokens_per_hour.unwrap_or_default()
            ),
            kind: "insufficient_quota",
            param: None,
            code: Some("insufficient_quota"),
            retry_after: Some(wait),
        }
    }

    /// Charges `tokens` model tokens to `tenant`'s budget (the bucket may go below zero; a
    /// negative charge gives back what a reservation took beyond the use); with Redis the
    /// charge is sent in the background.
    pub fn charge(&self, tenant: &str, tokens: f64) {
        let Some((capacity, per_second)) = self.limits(Kind::Budget) else {
            return;
        };
        let cost = tokens;
        if self.redis.is_none() {
            let _ = refill(&self.budgets, tenant, capacity, per_second, f64::MIN, cost);
            return;
        }
        let (auth, tenant) = (self.clone(), tenant.to_owned());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = auth.bucket(Kind::Budget, &tenant, f64::MIN, cost).await;
            });
        }
    }

    /// Tokens left in each tenant's budget now (`None` without budgets).
    pub async fn budgets_left(&self) -> Option<Vec<(String, f64)>> {
        self.config.tokens_per_hour?;
        let mut names: Vec<String> = self.config.keys.iter().map(|k| k.tenant.clone()).collect();
        names.sort();
        names.dedup();
        let mut left = Vec::with_capacity(names.len());
        for t in names {
            let n = self
                .bucket(Kind::Budget, &t, f64::MIN, 0.0)
                .await
                .unwrap_or_default();
            left.push((t, n));
        }
        Some(left)
    }
}

fn lock_map(
    m: &Mutex<HashMap<String, (f64, Instant)>>,
) -> std::sync::MutexGuard<'_, HashMap<String, (f64, Instant)>> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A token bucket of `capacity` refilled at `per_second`: refills `key`'s bucket to now, then
/// takes `cost` if the bucket holds at least `need` and returns what it holds after; else
/// `Err(seconds)` until it will hold `need`.
fn refill(
    buckets: &Mutex<HashMap<String, (f64, Instant)>>,
    key: &str,
    capacity: f64,
    per_second: f64,
    need: f64,
    cost: f64,
) -> Result<f64, u64> {
    let now = Instant::now();
    let mut buckets = lock_map(buckets);
    let (tokens, last) = buckets.entry(key.to_owned()).or_insert((capacity, now));
    *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * per_second).min(capacity);
    *last = now;
    if *tokens >= need {
        *tokens -= cost;
        Ok(*tokens)
    } else {
        Err(((need - *tokens) / per_second).ceil() as u64)
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: message.to_owned(),
        kind: "invalid_request_error",
        param: None,
        code: Some("invalid_api_key"),
        retry_after: None,
    }
}

/// The middleware of a server without keys: every request is of the anonymous tenant.
pub async fn anonymous(mut request: Request, next: Next) -> Response {
    let tenant = Tenant::anonymous();
    request.extensions_mut().insert(tenant.clone());
    as_tenant(tenant, next.run(request)).await
}

/// The middleware of the `/v1` routes: checks the bearer key, its tenant's rate and token
/// budget, and serves the request as its tenant (a [`Tenant`] extension, and its sharing
/// scope).
pub async fn require_key(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    admit(&auth, request, next, true).await
}

/// The middleware of `/metrics` and `/openapi.json` under [`AuthConfig::protect_ops`]: the key
/// and the rate as for `/v1`, but no token budget (they cost no model tokens, and an operator
/// must still see the metrics of a tenant whose budget is spent).
pub async fn require_key_ops(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    admit(&auth, request, next, false).await
}

/// The key of an `Authorization` value of the `Bearer` scheme, the scheme's name in any case
/// (RFC 9110 §11.1: `bearer KEY` too); `None` for another scheme or an empty key.
fn bearer_key(value: &str) -> Option<&str> {
    let (scheme, key) = value.trim_start().split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

async fn admit(auth: &Auth, mut request: Request, next: Next, spends_tokens: bool) -> Response {
    let key = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_key);
    let Some(key) = key else {
        return unauthorized("missing API key: send `Authorization: Bearer KEY`").into_response();
    };
    let Some(tenant) = auth.config.tenant_of(key) else {
        return unauthorized("incorrect API key").into_response();
    };
    if let Err(wait) = auth.take(&tenant.name).await {
        let e = ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("rate limit reached for this tenant; retry in {wait} s"),
            kind: "requests",
            param: None,
            code: Some("rate_limit_exceeded"),
            retry_after: Some(wait),
        };
        return answered_for(&tenant, e.into_response());
    }
    let budget = if spends_tokens {
        auth.budget_left(&tenant.name).await
    } else {
        Ok(())
    };
    if let Err(wait) = budget {
        return answered_for(&tenant, auth.budget_spent(wait).into_response());
    }
    // A request that runs models holds one of the tenant's places until its body is sent.
    let place = match auth.config.max_concurrent {
        Some(quota) if spends_tokens && request.method() == axum::http::Method::POST => {
            match auth.inflight.enter(&tenant.name, quota) {
                Ok(place) => Some(place),
                Err(wait) => {
                    let e = ApiError {
                        status: StatusCode::TOO_MANY_REQUESTS,
                        message: format!(
                            "this tenant has {quota} requests in flight, its most; retry in \
                             {wait} s"
                        ),
                        kind: "requests",
                        param: None,
                        code: Some("concurrency_limit_exceeded"),
                        retry_after: Some(wait),
                    };
                    return answered_for(&tenant, e.into_response());
                }
            }
        }
        _ => None,
    };
    request.extensions_mut().insert(tenant.clone());
    let response = as_tenant(tenant.clone(), next.run(request)).await;
    let response = match place {
        Some(place) => place.hold(response),
        None => response,
    };
    answered_for(&tenant, response)
}

/// `response` marked as answered for `tenant` (its name, for the per-tenant metrics).
fn answered_for(tenant: &Tenant, mut response: Response) -> Response {
    response
        .extensions_mut()
        .insert(AnsweredFor(tenant.name.clone()));
    response
}

/// The tenant a response was answered for (a response extension set by [`require_key`]).
#[derive(Debug, Clone)]
pub struct AnsweredFor(pub String);

#[cfg(test)]
mod tests;

//! State shared by colm server replicas (`colm serve --state redis://…`).
//!
//! By default a server keeps its state to itself: sessions, single-flight gates, rate-limit
//! buckets and token budgets in memory, shared references in SQLite ([`crate::store`]). With
//! a Redis URL every replica reads and writes them in one Redis (a standalone server, not a
//! Cluster: a script touches keys it derives from the ones it is given), so a load balancer
//! may send any request of a session to any replica:
//!
//! | what | keys (under the prefix, default `colm`) | written by |
//! |---|---|---|
//! | rate-limit buckets, token budgets | `{p}:bucket:{name}` hash `tokens`, `last` | [`RedisState::refill`] (one script: refill and take, atomically) |
//! | shared references | `{p}:ref:{sha256}` string, expiring after the share TTL | [`crate::store::SharedReferences`] |
//! | single flight of references | `{p}:lock:{sha256}` lease, renewed while held | [`RedisState::lock`] |
//! | sessions | `{p}:sess:{id}` hash, `…:clients`, `…:drafts` lists, `{p}:open:{sha256}` | [`crate::sessions`] |
//! | a served cascade's server-token budget | `{p}:ledger:{model}` sorted set of spendings by ms | [`RedisLedger`] |
//!
//! Time in the scripts is Redis's own clock (`TIME`), except for session deadlines and leases,
//! which compare the replicas' clocks (keep them in sync, as NTP does, well within a lease).
//!
//! A Redis error in a request's path is the request's 503 (`state_unavailable`), except for
//! the rate limit and budgets, which let the request through and log the error (a limiter
//! that is down must not take the service down with it).

use std::sync::Arc;
use std::time::Duration;

use colm_core::vertical::{LedgerError, Reservation};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use sha2::{Digest, Sha256};

/// Errors of the shared state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Redis could not be reached or refused a command.
    #[error("shared state (Redis): {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored value did not decode.
    #[error("shared state (Redis): unreadable value: {0}")]
    Decode(String),
}

/// A connection to the Redis that replicas share, with its scripts.
#[derive(Clone)]
pub struct RedisState {
    conn: ConnectionManager,
    prefix: String,
    /// Where it is, without credentials (for logs and errors).
    pub shown_url: String,
}

/// Refills a token bucket to now and takes `cost` if it holds `need` (ARGV: capacity,
/// per-second rate, need, cost). Returns `{1, tokens after}` or `{0, seconds until need}`.
const REFILL: &str = r"
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local need, cost = tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local tokens = tonumber(v[1]) or capacity
local last = tonumber(v[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - last) * rate)
local ok = tokens >= need
if ok then tokens = tokens - cost end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'last', string.format('%.6f', now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
if ok then return {1, string.format('%.17g', tokens)} end
return {0, tostring(math.ceil((need - tokens) / rate))}
";

/// Takes a lease `KEYS[1]` for token ARGV[1] for ARGV[2] ms if free; 1 when taken.
const TAKE_LEASE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
";

/// Renews (ARGV[2] ms) or, with ARGV[2] = 0, drops the lease `KEYS[1]` if token ARGV[1]
/// holds it.
const KEEP_LEASE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
";

/// The ledger KEYS[1] (members `{id}:{tokens}`, scored by Redis's clock in ms): drops the
/// spendings older than ARGV[3] ms and sums the others; then, unless that sum plus ARGV[2]
/// tokens passes ARGV[4], records ARGV[2] (when not 0) now as `{ARGV[1]}:{ARGV[2]}`, the key
/// expiring ARGV[3] ms after its newest spending. Returns `{1, sum}` (recorded) or
/// `{0, sum}` (refused).
const LEDGER_RESERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[3])))
local sum = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  sum = sum + tonumber(string.match(m, ':(%d+)$'))
end
if sum + tonumber(ARGV[2]) > tonumber(ARGV[4]) then return {0, sum} end
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[1] .. ':' .. ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {1, sum}
";

/// Settles the reservation ARGV[1] (a member `{id}:{tokens}` of the ledger KEYS[1]) at ARGV[2]
/// tokens, keeping its score (or now, Redis's clock, when it has left the window); 0 drops it.
/// The key expires ARGV[3] ms after.
const LEDGER_SETTLE: &str = r"
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) == 0 then return 1 end
if not score then
  local t = redis.call('TIME')
  score = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
redis.call('ZADD', KEYS[1], score, string.match(ARGV[1], '^(.*):%d+$') .. ':' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// A router's server-token budget kept in Redis ([`RedisState::ledger`]), so that the
/// replicas serving one cascade spend one budget: a sorted set of spendings scored by
/// Redis's clock (ms). Reading, adding and reserving are one script that drops the spendings
/// outside the window and sums the rest (O(spendings in the window)); a reservation's id is
/// its member, `{random}:{tokens}`.
#[derive(Clone)]
pub struct RedisLedger {
    state: RedisState,
    key: String,
}

fn window_ms(window: Duration) -> u64 {
    u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisLedger {
    /// Runs [`LEDGER_RESERVE`] for `tokens` under `limit` as member `{id}:{tokens}`:
    /// (recorded, tokens in the window before).
    async fn reserve_as(
        &self,
        id: &str,
        tokens: u64,
        limit: u64,
        window: Duration,
    ) -> Result<(bool, u64), LedgerError> {
        let (recorded, sum): (i64, i64) = Script::new(LEDGER_RESERVE)
            .key(&self.key)
            .arg(id)
            .arg(tokens)
            .arg(window_ms(window))
            .arg(limit)
            .invoke_async(&mut self.state.conn())
            .await
            .map_err(|e| LedgerError(format!("{}: {e}", self.state.shown_url)))?;
        Ok((recorded == 1, u64::try_from(sum).unwrap_or(0)))
    }
}

#[async_trait::async_trait]
impl colm_core::vertical::TokenLedger for RedisLedger {
    async fn spent(&self, window: Duration) -> Result<u64, LedgerError> {
        Ok(self.reserve_as("", 0, u64::MAX, window).await?.1)
    }

    async fn reserve(
        &self,
        tokens: u64,
        limit: u64,
        window: Duration,
    ) -> Result<Reservation, LedgerError> {
        let id = random_token();
        let (recorded, spent) = self.reserve_as(&id, tokens, limit, window).await?;
        Ok(if recorded {
            Reservation::Reserved {
                id: format!("{id}:{tokens}"),
                spent,
            }
        } else {
            Reservation::Refused { spent }
        })
    }

    async fn settle(&self, id: &str, tokens: u64, window: Duration) -> Result<(), LedgerError> {
        let _: i64 = Script::new(LEDGER_SETTLE)
            .key(&self.key)
            .arg(id)
            .arg(tokens)
            .arg(window_ms(window))
            .invoke_async(&mut self.state.conn())
            .await
            .map_err(|e| LedgerError(format!("{}: {e}", self.state.shown_url)))?;
        Ok(())
    }
}

/// A held lease ([`RedisState::lock`]): renewed in the background every third of its length
/// while it lives, dropped when it is dropped. If the replica dies, the lease runs out and
/// another takes it.
pub struct Lease {
    renew: tokio::task::JoinHandle<()>,
    state: RedisState,
    key: String,
    token: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renew.abort();
        let (state, key, token) = (self.state.clone(), self.key.clone(), self.token.clone());
        // Dropping cannot wait: the release runs on its own (the lease would run out anyway).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut conn = state.conn.clone();
                let released: Result<i64, _> = Script::new(KEEP_LEASE)
                    .key(&key)
                    .arg(&token)
                    .arg(0)
                    .invoke_async(&mut conn)
                    .await;
                if let Err(e) = released {
                    tracing::warn!(error = %e, key, "lease not released; it runs out");
                }
            });
        }
    }
}

/// 128 bits from the operating system's generator, as 32 hex digits: ids that cannot be
/// guessed (sessions, records) and lease tokens.
pub fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness (never seen on Linux): fall back to a counter mixed with a
        // randomly seeded hash, still unique within the process.
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        bytes[..8].copy_from_slice(&h.finish().to_le_bytes());
        bytes[8..].copy_from_slice(&n.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// This machine's clock, Unix ms (session deadlines and leases, record times).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// SHA-256 of `text`, hex: keys of unbounded texts (questions, scopes) have a fixed length.
pub fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl RedisState {
    /// The lease of a single-flight lock: renewed every third of it while held.
    pub const LEASE: Duration = Duration::from_secs(15);

    /// Connects to `url` (`redis://[user:password@]host:port[/db]`, or `rediss://`); keys go
    /// under `prefix`. The connection reconnects by itself after a failure.
    ///
    /// # Errors
    /// The URL is malformed, or Redis does not answer a `PING`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StateError> {
        let client = redis::Client::open(url)?;
        let info = client.get_connection_info();
        let shown_url = format!("redis://{}/{}", info.addr(), info.redis_settings().db());
        let mut conn = ConnectionManager::new(client).await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            shown_url,
        })
    }

    /// The server-token ledger of the served cascade `model` (key `{prefix}:ledger:{model}`).
    pub fn ledger(&self, model: &str) -> RedisLedger {
        RedisLedger {
            state: self.clone(),
            key: self.key("ledger", model),
        }
    }

    /// The key `{prefix}:{kind}:{name}`.
    pub fn key(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{name}", self.prefix)
    }

    /// A connection (a cheap clone of the shared multiplexed one).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The token bucket `name` of `capacity`, refilled at `per_second` (Redis's clock): takes
    /// `cost` if it holds at least `need` and returns what it holds after, else
    /// `Err(seconds)` until it will hold `need` — as [`crate::auth`]'s buckets in memory.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn refill(
        &self,
        name: &str,
        capacity: f64,
        per_second: f64,
        need: f64,
        cost: f64,
    ) -> Result<Result<f64, u64>, StateError> {
        let mut conn = self.conn();
        let (ok, value): (i64, String) = Script::new(REFILL)
            .key(self.key("bucket", name))
            .arg(capacity)
            .arg(per_second)
            .arg(need)
            .arg(cost)
            .invoke_async(&mut conn)
            .await?;
        let number = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| StateError::Decode(format!("bucket {name}: {v:?}")))
        };
        Ok(if ok == 1 {
            Ok(number(&value)?)
        } else {
            Err(number(&value)?.max(0.0) as u64)
        })
    }

    /// The string at `key`, if any.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn get(&self, key: &str) -> Result<Option<String>, StateError> {
        Ok(self.conn().get(key).await?)
    }

    /// Sets `key` to `value` for `ttl`.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StateError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let _: () = self.conn().pset_ex(key, value, ms).await?;
        Ok(())
    }

    /// Takes the lease `key` ([`Self::LEASE`], renewed while the returned [`Lease`] lives),
    /// waiting (polling every 50 ms) while another replica holds it.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn lock(&self, key: &str) -> Result<Lease, StateError> {
        let token = random_token();
        let lease_ms = u64::try_from(Self::LEASE.as_millis()).unwrap_or(15_000);
        let mut conn = self.conn();
        loop {
            let taken: i64 = Script::new(TAKE_LEASE)
                .key(key)
                .arg(&token)
                .arg(lease_ms)
                .invoke_async(&mut conn)
                .await?;
            if taken == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (state, k, t) = (self.clone(), key.to_owned(), token.clone());
        let renew = tokio::spawn(async move {
            let mut conn = state.conn();
            loop {
                tokio::time::sleep(Self::LEASE / 3).await;
                let kept: Result<i64, _> = Script::new(KEEP_LEASE)
                    .key(&k)
                    .arg(&t)
                    .arg(lease_ms)
                    .invoke_async(&mut conn)
                    .await;
                match kept {
                    Ok(1) => {}
                    Ok(_) => {
                        tracing::warn!(
                            key = k,
                            "lease lost (ran out); another replica may take it"
                        );
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, key = k, "lease not renewed"),
                }
            }
        });
        Ok(Lease {
            renew,
            state: self.clone(),
            key: key.to_owned(),
            token,
        })
    }
}

/// Where shared state lives: `None` is this process (the embedded default).
pub type Shared = Option<Arc<RedisState>>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use colm_core::vertical::{LocalLedger, TokenLedger};

    /// The ledger contract: what is added counts in the window, and not after it.
    async fn ledger_counts_within_the_window(a: &dyn TokenLedger, b: &dyn TokenLedger) {
        let window = Duration::from_millis(600);
        assert_eq!(a.spent(window).await.unwrap(), 0);
        a.add(30, window).await.unwrap();
        b.add(12, window).await.unwrap();
        assert_eq!(a.spent(window).await.unwrap(), 42);
        assert_eq!(b.spent(window).await.unwrap(), 42);
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(b.spent(window).await.unwrap(), 0, "out of the window");
        b.add(5, window).await.unwrap();
        assert_eq!(a.spent(window).await.unwrap(), 5);
    }

    /// The reservation contract: a reservation counts at once for every replica, one that
    /// would pass the limit is refused, and settling replaces (or, at 0, drops) its tokens.
    async fn reservations_hold_the_limit(a: &dyn TokenLedger, b: &dyn TokenLedger) {
        let window = Duration::from_secs(60);
        let Reservation::Reserved { id, spent: 0 } = a.reserve(30, 50, window).await.unwrap()
        else {
            panic!("an empty ledger reserves")
        };
        assert_eq!(
            b.reserve(30, 50, window).await.unwrap(),
            Reservation::Refused { spent: 30 }
        );
        a.settle(&id, 12, window).await.unwrap();
        assert_eq!(b.spent(window).await.unwrap(), 12);
        let Reservation::Reserved { id, spent: 12 } = b.reserve(30, 50, window).await.unwrap()
        else {
            panic!("12 + 30 <= 50 reserves")
        };
        assert_eq!(a.spent(window).await.unwrap(), 42);
        b.settle(&id, 0, window).await.unwrap();
        assert_eq!(a.spent(window).await.unwrap(), 12, "settled at 0: dropped");
    }

    #[tokio::test]
    async fn a_local_ledger_counts_within_the_window() {
        let l = LocalLedger::default();
        ledger_counts_within_the_window(&l, &l).await;
        let l = LocalLedger::default();
        reservations_hold_the_limit(&l, &l).await;
    }

    /// Two replicas' ledgers of one cascade spend one budget in a real Redis; another
    /// cascade's ledger is apart.
    #[tokio::test]
    async fn replicas_spend_one_ledger_in_redis() {
        let redis = colm_test_support::LocalRedis::start().await.unwrap();
        let a = RedisState::connect(&redis.url, "t")
            .await
            .unwrap()
            .ledger("cheap");
        let b = RedisState::connect(&redis.url, "t")
            .await
            .unwrap()
            .ledger("cheap");
        ledger_counts_within_the_window(&a, &b).await;
        let a = RedisState::connect(&redis.url, "t")
            .await
            .unwrap()
            .ledger("reserved");
        let b = RedisState::connect(&redis.url, "t")
            .await
            .unwrap()
            .ledger("reserved");
        reservations_hold_the_limit(&a, &b).await;
        let other = RedisState::connect(&redis.url, "t")
            .await
            .unwrap()
            .ledger("other");
        assert_eq!(other.spent(Duration::from_secs(60)).await.unwrap(), 0);
    }
}

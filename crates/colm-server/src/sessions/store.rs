//! Where sessions live: this process's memory (the default) or the Redis replicas share
//! ([`crate::state`]). Both keep the same record and make the same atomic steps, so the
//! session logic of [`super`] is written once:
//!
//! - [`SessionStore::join_or_create`]: the open session of a question key, or a new one;
//! - [`SessionStore::add_draft`]: a draft, while the session is open and before its deadline;
//! - [`SessionStore::claim`]: Open → Aggregating when `k` drafts are in or the deadline passed,
//!   or taking over an aggregation whose lease ran out (its replica died): the claimer
//!   aggregates, renewing its lease ([`SessionStore::renew`]);
//! - [`SessionStore::finish`]: Done, with the outcome, kept [`super::KEEP_FINISHED`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use colm_api::collab::{CreateSession, GuidanceResponse, SessionStatus as Status, Trigger};
use colm_api::openai::ErrorBody;
use redis::Script;
use serde::{Deserialize, Serialize};

use crate::state::{RedisState, StateError};

/// What every replica needs to serve a session, fixed at its creation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    /// `sess_` and 32 hex digits.
    pub id: String,
    /// The sharing scope that sees it.
    pub scope: String,
    /// The tenant that created it (its aggregation is charged to it).
    pub owner: String,
    /// The question key it is the open session of: the SHA-256 (hex) of its scope, normalised
    /// question, round and guidance spec.
    pub key: String,
    /// The creating request: every replica rebuilds the guidance spec from it.
    pub request: CreateSession,
    /// The model aggregating (as the spec resolved it).
    pub model: Option<String>,
    /// The guidance mode's name.
    pub mode: String,
    /// Drafts that trigger aggregation.
    pub k: usize,
    /// The round.
    pub round: u32,
    /// Creation, Unix ms.
    pub created_ms: u64,
    /// Aggregation window from creation, ms.
    pub window_ms: u64,
}

impl Meta {
    /// The deadline, Unix ms.
    pub fn deadline_ms(&self) -> u64 {
        self.created_ms.saturating_add(self.window_ms)
    }
}

/// The outcome of an aggregation as stored: the guidance or the error answered for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stored {
    /// The guidance.
    Guidance(Box<GuidanceResponse>),
    /// The error: HTTP status, body and `Retry-After` seconds.
    Error {
        /// HTTP status.
        status: u16,
        /// The OpenAI-shaped body.
        body: ErrorBody,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
}

/// A session as read.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// What was fixed at creation.
    pub meta: Meta,
    /// Its state.
    pub status: Status,
    /// `(client, draft)` in arrival order.
    pub drafts: Vec<(String, String)>,
    /// The aggregation's outcome, once done.
    pub outcome: Option<Stored>,
    /// Until when its aggregator holds it, Unix ms (0: none).
    pub lease_until_ms: u64,
}

impl Snapshot {
    /// Whether someone should claim it now ([`SessionStore::claim`] decides atomically).
    pub fn due(&self, now_ms: u64) -> bool {
        match self.status {
            Status::Open => self.drafts.len() >= self.meta.k || now_ms >= self.meta.deadline_ms(),
            Status::Aggregating => self.lease_until_ms < now_ms,
            Status::Done => false,
        }
    }
}

/// A failure of the store (Redis): the request's 503.
pub type Fallible<T> = Result<T, StateError>;

/// One session in memory.
struct Entry {
    snap: Snapshot,
    trigger: Option<Trigger>,
    /// When it finished, Unix ms.
    finished_ms: Option<u64>,
}

/// Sessions in this process.
#[derive(Default)]
struct Memory {
    by_id: Mutex<HashMap<String, Entry>>,
    open: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where sessions live ([module docs](self)).
pub enum SessionStore {
    /// This process.
    Memory(MemoryStore),
    /// Redis, shared by replicas.
    Redis(RedisState),
}

/// The in-memory store (opaque).
pub struct MemoryStore(Memory, tokio::sync::watch::Sender<u64>);

impl Default for SessionStore {
    fn default() -> Self {
        Self::Memory(MemoryStore(
            Memory::default(),
            tokio::sync::watch::channel(0).0,
        ))
    }
}

/// The reply of [`SessionStore::join_or_create`].
pub enum Joined {
    /// The open session of the key.
    Joined(Meta),
    /// The new session.
    Created(Meta),
    /// A cap on open sessions is reached.
    Full {
        /// The tenant's own cap (else the server's).
        tenant: bool,
        /// The earliest deadline of the sessions that count against it (Unix ms): one of
        /// them stops counting then at the latest.
        frees_at_ms: u64,
    },
}

/// Caps on the sessions open at once (not yet due for aggregation: before their deadline and
/// short of their `k` drafts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenCaps {
    /// All tenants together (in Redis: across all replicas).
    pub total: usize,
    /// Each named tenant (the anonymous tenant of a server without keys has only `total`).
    pub per_tenant: usize,
}

/// Creates the session ARGV[2] (meta ARGV[3], deadline ARGV[4], k ARGV[5], kept ARGV[6] ms)
/// unless the open session of key KEYS[1] (hashes under ARGV[1]) is open before its deadline
/// at ARGV[7]: returns `{1, meta}` (joined) or `{0, meta}` (created); `{2, deadline}` when the
/// sorted set KEYS[2] of open sessions (scored by their deadlines) holds ARGV[8], `{3,
/// deadline}` when the tenant's set KEYS[3] holds ARGV[9] (0: no tenant cap), with the
/// earliest deadline in the full set.
const CREATE: &str = r"
local id = redis.call('GET', KEYS[1])
if id then
  local v = redis.call('HMGET', ARGV[1] .. id, 'status', 'deadline', 'meta')
  if v[1] == 'open' and tonumber(v[2]) > tonumber(ARGV[7]) then return {1, v[3]} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[7])
local function first(set) return redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')[2] end
if tonumber(ARGV[9]) > 0 and redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[9]) then
  return {3, first(KEYS[3])}
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[8]) then return {2, first(KEYS[2])} end
redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), ARGV[2])
redis.call('ZADD', KEYS[3], tonumber(ARGV[4]), ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[6])
local h = ARGV[1] .. ARGV[2]
redis.call('HSET', h, 'meta', ARGV[3], 'status', 'open', 'deadline', ARGV[4], 'k', ARGV[5],
  'lease', '0', 'openkey', KEYS[1], 'tenantset', KEYS[3])
redis.call('PEXPIRE', h, ARGV[6])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[6])
return {0, ARGV[3]}
";

/// Adds draft ARGV[3] of client ARGV[2] (or `client-N` when ARGV[1] is `0`) to session hash
/// KEYS[1] (lists KEYS[2], KEYS[3]) if open before its deadline at ARGV[4]: `{1, drafts}`,
/// `{0, status}` when closed, `{-1, ''}` when missing.
const ADD: &str = r"
local v = redis.call('HMGET', KEYS[1], 'status', 'deadline')
if not v[1] then return {-1, ''} end
if v[1] ~= 'open' then return {0, v[1]} end
if tonumber(ARGV[4]) >= tonumber(v[2]) then return {0, 'aggregating'} end
local n = redis.call('LLEN', KEYS[3])
local client = ARGV[2]
if ARGV[1] == '0' then client = 'client-' .. (n + 1) end
redis.call('RPUSH', KEYS[2], client)
redis.call('RPUSH', KEYS[3], ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return {1, tostring(n + 1)}
";

/// Claims session ARGV[3] (hash KEYS[1], drafts KEYS[2]) at ARGV[1] for a lease of ARGV[2] ms
/// if due: `{1, trigger}` or `{0, ''}`; an open session claimed leaves the set KEYS[3] of open
/// ones and its tenant's.
const CLAIM: &str = r"
local v = redis.call('HMGET', KEYS[1], 'status', 'deadline', 'k', 'lease', 'trigger', 'openkey',
  'tenantset')
if not v[1] then return {0, ''} end
local now = tonumber(ARGV[1])
local trigger
if v[1] == 'open' then
  if redis.call('LLEN', KEYS[2]) >= tonumber(v[3]) then trigger = 'k'
  elseif now >= tonumber(v[2]) then trigger = 'deadline'
  else return {0, ''} end
  if redis.call('GET', v[6]) == ARGV[3] then redis.call('DEL', v[6]) end
  redis.call('ZREM', KEYS[3], ARGV[3])
  if v[7] then redis.call('ZREM', v[7], ARGV[3]) end
elseif v[1] == 'aggregating' and tonumber(v[4]) < now then
  trigger = v[5]
else
  return {0, ''}
end
redis.call('HSET', KEYS[1], 'status', 'aggregating', 'lease', tostring(now + tonumber(ARGV[2])),
  'trigger', trigger)
return {1, trigger}
";

/// Extends the lease of the aggregating session KEYS[1] to ARGV[1].
const RENEW: &str = r"
if redis.call('HGET', KEYS[1], 'status') ~= 'aggregating' then return 0 end
redis.call('HSET', KEYS[1], 'lease', ARGV[1])
return 1
";

/// Finishes session KEYS[1] (lists KEYS[2], KEYS[3]) with outcome ARGV[1], kept ARGV[2] ms.
const FINISH: &str = r"
redis.call('HSET', KEYS[1], 'status', 'done', 'outcome', ARGV[1], 'lease', '0')
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
return 1
";

fn status_of(text: &str) -> Option<Status> {
    [Status::Open, Status::Aggregating, Status::Done]
        .into_iter()
        .find(|s| s.as_str() == text)
}

fn trigger_of(text: &str) -> Trigger {
    if text == Trigger::K.as_str() {
        Trigger::K
    } else {
        Trigger::Deadline
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Redis keys of session `id`: hash, clients, drafts.
fn redis_keys(redis: &RedisState, id: &str) -> [String; 3] {
    let h = redis.key("sess", id);
    [h.clone(), format!("{h}:clients"), format!("{h}:drafts")]
}

/// The Redis sorted set of open sessions' ids, scored by their deadlines (Unix ms).
fn open_set(redis: &RedisState) -> String {
    redis.key("sessions", "open")
}

/// The Redis sorted set of `tenant`'s open sessions' ids, scored by their deadlines.
fn tenant_set(redis: &RedisState, tenant: &str) -> String {
    redis.key("sessions:open", &crate::state::digest(tenant))
}

impl SessionStore {
    /// Sessions in Redis.
    pub fn redis(redis: RedisState) -> Self {
        Self::Redis(redis)
    }

    /// The open session of `key` (open, before its deadline at `now_ms`), or `fresh` stored
    /// as a new one, or [`Joined::Full`] when `caps` are reached: sessions open (before their
    /// deadline, not yet claimed for aggregation; in Redis, across all replicas) of
    /// `fresh.owner`, or of everyone; `kept`: how long a new session's keys may live at most.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn join_or_create(
        &self,
        key: &str,
        fresh: Meta,
        now_ms: u64,
        kept: Duration,
        caps: OpenCaps,
    ) -> Fallible<Joined> {
        // The anonymous tenant of a server without keys has the total cap only.
        let per_tenant = if fresh.owner.is_empty() {
            0
        } else {
            caps.per_tenant.max(1)
        };
        match self {
            Self::Memory(MemoryStore(m, _)) => {
                let mut open = lock(&m.open);
                let mut by_id = lock(&m.by_id);
                if let Some(e) = open.get(key).and_then(|id| by_id.get(id)) {
                    if e.snap.status == Status::Open && e.snap.meta.deadline_ms() > now_ms {
                        return Ok(Joined::Joined(e.snap.meta.clone()));
                    }
                }
                // Sweep: finished sessions past KEEP_FINISHED, and any past `kept`.
                let keep = ms(super::KEEP_FINISHED);
                by_id.retain(|_, e| {
                    e.finished_ms
                        .is_none_or(|f| now_ms.saturating_sub(f) < keep)
                        && now_ms.saturating_sub(e.snap.meta.created_ms) < ms(kept)
                });
                open.retain(|_, id| by_id.get(id).is_some_and(|e| e.snap.status == Status::Open));
                // What counts: open sessions before their deadlines (their earliest deadline
                // says when one stops counting).
                let (mut total, mut own) = (0, 0);
                let (mut first, mut own_first) = (u64::MAX, u64::MAX);
                for e in open.values().filter_map(|id| by_id.get(id)) {
                    let deadline = e.snap.meta.deadline_ms();
                    if deadline <= now_ms {
                        continue;
                    }
                    total += 1;
                    first = first.min(deadline);
                    if e.snap.meta.owner == fresh.owner {
                        own += 1;
                        own_first = own_first.min(deadline);
                    }
                }
                if per_tenant > 0 && own >= per_tenant {
                    return Ok(Joined::Full {
                        tenant: true,
                        frees_at_ms: own_first,
                    });
                }
                if total >= caps.total {
                    return Ok(Joined::Full {
                        tenant: false,
                        frees_at_ms: first,
                    });
                }
                open.insert(key.to_owned(), fresh.id.clone());
                by_id.insert(
                    fresh.id.clone(),
                    Entry {
                        snap: Snapshot {
                            meta: fresh.clone(),
                            status: Status::Open,
                            drafts: Vec::new(),
                            outcome: None,
                            lease_until_ms: 0,
                        },
                        trigger: None,
                        finished_ms: None,
                    },
                );
                Ok(Joined::Created(fresh))
            }
            Self::Redis(r) => {
                let meta =
                    serde_json::to_string(&fresh).map_err(|e| StateError::Decode(e.to_string()))?;
                let mut conn = r.conn();
                let (joined, meta): (i64, String) = Script::new(CREATE)
                    .key(r.key("open", key))
                    .key(open_set(r))
                    .key(tenant_set(r, &fresh.owner))
                    .arg(r.key("sess", ""))
                    .arg(&fresh.id)
                    .arg(meta)
                    .arg(fresh.deadline_ms())
                    .arg(fresh.k)
                    .arg(ms(kept))
                    .arg(now_ms)
                    .arg(caps.total)
                    .arg(per_tenant)
                    .invoke_async(&mut conn)
                    .await?;
                if joined == 2 || joined == 3 {
                    return Ok(Joined::Full {
                        tenant: joined == 3,
                        frees_at_ms: meta.parse::<f64>().map_or(now_ms, |d| d as u64),
                    });
                }
                let meta: Meta =
                    serde_json::from_str(&meta).map_err(|e| StateError::Decode(e.to_string()))?;
                Ok(if joined == 1 {
                    Joined::Joined(meta)
                } else {
                    Joined::Created(meta)
                })
            }
        }
    }

    /// Session `id` as it is now, `None` when unknown (or expired).
    ///
    /// # Errors
    /// Redis errors; an unreadable record.
    pub async fn load(&self, id: &str) -> Fallible<Option<Snapshot>> {
        match self {
            Self::Memory(MemoryStore(m, _)) => Ok(lock(&m.by_id).get(id).map(|e| e.snap.clone())),
            Self::Redis(r) => {
                let [h, clients, drafts] = redis_keys(r, id);
                let mut conn = r.conn();
                let (fields, clients, drafts): (Vec<Option<String>>, Vec<String>, Vec<String>) =
                    redis::pipe()
                        .cmd("HMGET")
                        .arg(&h)
                        .arg(&["meta", "status", "outcome", "lease"])
                        .lrange(&clients, 0, -1)
                        .lrange(&drafts, 0, -1)
                        .query_async(&mut conn)
                        .await?;
                let decode = |e: String| StateError::Decode(format!("session {id}: {e}"));
                let [Some(meta), Some(status), outcome, lease] =
                    <[Option<String>; 4]>::try_from(fields)
                        .map_err(|_| decode("field count".into()))?
                else {
                    return Ok(None);
                };
                Ok(Some(Snapshot {
                    meta: serde_json::from_str(&meta).map_err(|e| decode(e.to_string()))?,
                    status: status_of(&status).ok_or_else(|| decode(status.clone()))?,
                    drafts: clients.into_iter().zip(drafts).collect(),
                    outcome: outcome
                        .map(|o| serde_json::from_str(&o))
                        .transpose()
                        .map_err(|e| decode(e.to_string()))?,
                    lease_until_ms: lease.and_then(|l| l.parse().ok()).unwrap_or(0),
                }))
            }
        }
    }

    /// Adds `draft` of `client` (default `client-N`, N its position) to session `id` if it is
    /// open before its deadline at `now_ms`: `Ok(drafts now)`, or `Err(status)` (a session
    /// past its deadline counts as aggregating); `None` when unknown.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn add_draft(
        &self,
        id: &str,
        client: Option<String>,
        draft: String,
        now_ms: u64,
    ) -> Fallible<Option<Result<usize, Status>>> {
        match self {
            Self::Memory(MemoryStore(m, _)) => {
                let mut by_id = lock(&m.by_id);
                let Some(e) = by_id.get_mut(id) else {
                    return Ok(None);
                };
                let s = &mut e.snap;
                if s.status != Status::Open {
                    return Ok(Some(Err(s.status)));
                }
                if now_ms >= s.meta.deadline_ms() {
                    return Ok(Some(Err(Status::Aggregating)));
                }
                let client = client.unwrap_or_else(|| format!("client-{}", s.drafts.len() + 1));
                s.drafts.push((client, draft));
                Ok(Some(Ok(s.drafts.len())))
            }
            Self::Redis(r) => {
                let keys = redis_keys(r, id);
                let mut conn = r.conn();
                let (code, value): (i64, String) = Script::new(ADD)
                    .key(&keys[0])
                    .key(&keys[1])
                    .key(&keys[2])
                    .arg(if client.is_some() { "1" } else { "0" })
                    .arg(client.unwrap_or_default())
                    .arg(draft)
                    .arg(now_ms)
                    .invoke_async(&mut conn)
                    .await?;
                Ok(match code {
                    1 => Some(Ok(value.parse().unwrap_or(0))),
                    0 => Some(Err(status_of(&value).unwrap_or(Status::Aggregating))),
                    _ => None,
                })
            }
        }
    }

    /// Claims session `id` for aggregation if due at `now_ms` ([`Snapshot::due`]), for a
    /// lease of `lease`: the trigger and the drafts to aggregate, `None` when not due or
    /// claimed by another.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn claim(
        &self,
        id: &str,
        now_ms: u64,
        lease: Duration,
    ) -> Fallible<Option<(Trigger, Snapshot)>> {
        match self {
            Self::Memory(MemoryStore(m, _)) => {
                let mut by_id = lock(&m.by_id);
                let Some(e) = by_id.get_mut(id) else {
                    return Ok(None);
                };
                if !e.snap.due(now_ms) {
                    return Ok(None);
                }
                let trigger = match (e.snap.status, e.trigger) {
                    (Status::Aggregating, Some(t)) => t,
                    _ if e.snap.drafts.len() >= e.snap.meta.k => Trigger::K,
                    _ => Trigger::Deadline,
                };
                if e.snap.status == Status::Open {
                    let mut open = lock(&m.open);
                    if open.get(&e.snap.meta.key).is_some_and(|v| v == id) {
                        open.remove(&e.snap.meta.key);
                    }
                }
                e.snap.status = Status::Aggregating;
                e.snap.lease_until_ms = now_ms.saturating_add(ms(lease));
                e.trigger = Some(trigger);
                Ok(Some((trigger, e.snap.clone())))
            }
            Self::Redis(r) => {
                let keys = redis_keys(r, id);
                let mut conn = r.conn();
                let (claimed, trigger): (i64, String) = Script::new(CLAIM)
                    .key(&keys[0])
                    .key(&keys[2])
                    .key(open_set(r))
                    .arg(now_ms)
                    .arg(ms(lease))
                    .arg(id)
                    .invoke_async(&mut conn)
                    .await?;
                if claimed != 1 {
                    return Ok(None);
                }
                Ok(self
                    .load(id)
                    .await?
                    .map(|snap| (trigger_of(&trigger), snap)))
            }
        }
    }

    /// Extends the lease of the aggregating session `id` to `until_ms`.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn renew(&self, id: &str, until_ms: u64) -> Fallible<()> {
        match self {
            Self::Memory(MemoryStore(m, _)) => {
                if let Some(e) = lock(&m.by_id).get_mut(id) {
                    if e.snap.status == Status::Aggregating {
                        e.snap.lease_until_ms = until_ms;
                    }
                }
                Ok(())
            }
            Self::Redis(r) => {
                let mut conn = r.conn();
                let _: i64 = Script::new(RENEW)
                    .key(redis_keys(r, id)[0].clone())
                    .arg(until_ms)
                    .invoke_async(&mut conn)
                    .await?;
                Ok(())
            }
        }
    }

    /// Session `id` is done with `outcome`, kept [`super::KEEP_FINISHED`].
    ///
    /// # Errors
    /// Redis errors.
    pub async fn finish(&self, id: &str, outcome: &Stored, now_ms: u64) -> Fallible<()> {
        match self {
            Self::Memory(MemoryStore(m, changed)) => {
                if let Some(e) = lock(&m.by_id).get_mut(id) {
                    e.snap.status = Status::Done;
                    e.snap.outcome = Some(outcome.clone());
                    e.snap.lease_until_ms = 0;
                    e.finished_ms = Some(now_ms);
                }
                changed.send_modify(|n| *n = n.wrapping_add(1));
                Ok(())
            }
            Self::Redis(r) => {
                let keys = redis_keys(r, id);
                let value = serde_json::to_string(outcome)
                    .map_err(|e| StateError::Decode(e.to_string()))?;
                let mut conn = r.conn();
                let _: i64 = Script::new(FINISH)
                    .key(&keys[0])
                    .key(&keys[1])
                    .key(&keys[2])
                    .arg(value)
                    .arg(ms(super::KEEP_FINISHED))
                    .invoke_async(&mut conn)
                    .await?;
                Ok(())
            }
        }
    }

    /// A waiter for the next change, taken before reading a session so that no change
    /// between the read and the wait is missed.
    pub fn waiter(&self) -> Waiter {
        match self {
            Self::Memory(MemoryStore(_, changed)) => Waiter(Some(changed.subscribe())),
            Self::Redis(_) => Waiter(None),
        }
    }
}

/// Waits for sessions to change ([`SessionStore::waiter`]).
pub struct Waiter(Option<tokio::sync::watch::Receiver<u64>>);

impl Waiter {
    /// Waits up to `at_most`: in memory until a session finishes, with Redis one poll interval
    /// (50 ms).
    pub async fn wait(self, at_most: Duration) {
        match self.0 {
            Some(mut rx) => {
                let _ = tokio::time::timeout(at_most, rx.changed()).await;
            }
            None => tokio::time::sleep(at_most.min(Duration::from_millis(50))).await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use colm_test_support::LocalRedis;

    fn meta(id: &str, key: &str, owner: &str, now_ms: u64) -> Meta {
        Meta {
            id: id.to_owned(),
            scope: String::new(),
            owner: owner.to_owned(),
            key: key.to_owned(),
            request: CreateSession::default(),
            model: None,
            mode: "reference".to_owned(),
            k: 1,
            round: 1,
            created_ms: now_ms,
            window_ms: 60_000,
        }
    }

    /// Creates (or joins) session `id` of question `key` for tenant `owner` at `now_ms`,
    /// under caps of 3 open sessions in all and 2 per tenant.
    async fn create_for(s: &SessionStore, id: &str, key: &str, owner: &str, now_ms: u64) -> Joined {
        let caps = OpenCaps {
            total: 3,
            per_tenant: 2,
        };
        s.join_or_create(
            key,
            meta(id, key, owner, now_ms),
            now_ms,
            Duration::from_secs(120),
            caps,
        )
        .await
        .unwrap()
    }

    async fn create(s: &SessionStore, id: &str, key: &str, now_ms: u64) -> Joined {
        create_for(s, id, key, "acme", now_ms).await
    }

    /// The cap contract on stores `a` and `b` (two replicas, or one store twice): two open
    /// sessions of a tenant, then `Full` (the tenant's cap, freeing at the earliest deadline)
    /// for a new question while an open one can still be joined and another tenant can still
    /// create; then the total cap; a session claimed for aggregation, or past its deadline,
    /// frees its place.
    async fn caps_open_sessions(a: &SessionStore, b: &SessionStore) {
        let now = crate::state::now_ms();
        let deadline = now + 60_000;
        assert!(matches!(
            create(a, "s1", "q1", now).await,
            Joined::Created(_)
        ));
        assert!(matches!(
            create(b, "s2", "q2", now).await,
            Joined::Created(_)
        ));
        assert!(matches!(
            create(a, "s3", "q3", now + 5).await,
            Joined::Full { tenant: true, frees_at_ms } if frees_at_ms == deadline
        ));
        assert!(matches!(create(b, "s4", "q1", now).await, Joined::Joined(m) if m.id == "s1"));
        assert!(matches!(
            create_for(b, "g1", "q9", "globex", now + 10).await,
            Joined::Created(_)
        ));
        assert!(matches!(
            create_for(a, "i1", "q8", "initech", now).await,
            Joined::Full { tenant: false, frees_at_ms } if frees_at_ms == deadline
        ));
        a.add_draft("s1", None, "draft".into(), now).await.unwrap();
        let claimed = b.claim("s1", now, Duration::from_secs(10)).await.unwrap();
        assert!(claimed.is_some(), "one draft of k = 1 makes it due");
        assert!(matches!(
            create(b, "s3", "q3", now).await,
            Joined::Created(_)
        ));
        assert!(matches!(
            create(a, "s5", "q5", now).await,
            Joined::Full { tenant: true, .. }
        ));
        // Once the deadlines of s2 and s3 have passed, acme's sessions count no more.
        assert!(matches!(
            create(a, "s6", "q6", deadline).await,
            Joined::Created(_)
        ));
    }

    #[tokio::test]
    async fn memory_caps_open_sessions() {
        let s = SessionStore::default();
        caps_open_sessions(&s, &s).await;
    }

    /// Two replicas' stores on one real Redis share the cap.
    #[tokio::test]
    async fn redis_caps_open_sessions_across_replicas() {
        let redis = LocalRedis::start().await.unwrap();
        let a = SessionStore::redis(
            crate::state::RedisState::connect(&redis.url, "t")
                .await
                .unwrap(),
        );
        let b = SessionStore::redis(
            crate::state::RedisState::connect(&redis.url, "t")
                .await
                .unwrap(),
        );
        caps_open_sessions(&a, &b).await;
    }
}

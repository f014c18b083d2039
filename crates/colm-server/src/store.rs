//! Shared references: the references a server's collaborators wrote for a question and the
//! guidance synthesised from them are stored and served again to later clients asking the same
//! (normalised) question within a TTL, without calling a model. SQLite (embedded, `rusqlite`
//! with the bundled library), so it survives restarts; or Redis, shared by replicas
//! ([`crate::state`]).
//!
//! Only what is computed from server-side inputs is stored: the question and the server's own
//! references — never anything that read a client's draft (a synthesis of drafts, a critique),
//! which would carry one client's text to another. The key is (normalised query, scope); the
//! scope names everything else the references depend on (aggregator, writers with their
//! prompts and sampling, number of references, selector, sampling), see
//! [`colm_core::colm::references::scope`]. Databases of earlier versions held draft-derived
//! guidance in a `shared_guidance` table: it is dropped on open.
//!
//! Sharing stops at the tenant: the scope is prefixed with the sharing scope of the request
//! being served ([`crate::auth`]), so two tenants never read each other's references unless an
//! operator put them in one share group.
//!
//! [`SharedReferences`] puts the store behind the core's
//! [`ReferenceStore`](colm_core::colm::references::ReferenceStore) with single flight, so the
//! guidance API, sessions and the virtual model `colm` share one set of references per
//! question.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use colm_core::colm::references::ReferenceStore;
use rusqlite::{params, Connection, OptionalExtension};

use crate::state::RedisState;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[error("guidance store: {0}")]
pub struct StoreError(#[from] rusqlite::Error);

/// The store.
pub struct GuidanceStore {
    conn: Mutex<Connection>,
    ttl: Duration,
}

pub use colm_core::query::normalise_query;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl GuidanceStore {
    /// Opens (creating if needed) the store at `path`; entries older than `ttl` are ignored.
    ///
    /// # Errors
    /// The database cannot be opened or its table created.
    pub fn open(path: &Path, ttl: Duration) -> Result<Self, StoreError> {
        Self::with(Connection::open(path)?, ttl)
    }

    /// A store in memory (lost on exit).
    ///
    /// # Errors
    /// The table cannot be created.
    pub fn in_memory(ttl: Duration) -> Result<Self, StoreError> {
        Self::with(Connection::open_in_memory()?, ttl)
    }

    fn with(conn: Connection, ttl: Duration) -> Result<Self, StoreError> {
        conn.execute_batch(
            "DROP TABLE IF EXISTS shared_guidance;
             CREATE TABLE IF NOT EXISTS shared_references (
                 query TEXT NOT NULL,
                 scope TEXT NOT NULL,
                 value TEXT NOT NULL,
                 created_unix INTEGER NOT NULL,
                 hits INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (query, scope)
             );",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
            ttl,
        })
    }

    /// The fresh value stored for `query` in `scope`, counting a hit.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn get(&self, query: &str, scope: &str) -> Result<Option<String>, StoreError> {
        let key = normalise_query(query);
        let oldest = now() - i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let found: Option<String> = conn
            .query_row(
                "SELECT value FROM shared_references
                 WHERE query = ?1 AND scope = ?2 AND created_unix >= ?3",
                params![key, scope, oldest],
                |row| row.get(0),
            )
            .optional()?;
        if found.is_some() {
            conn.execute(
                "UPDATE shared_references SET hits = hits + 1 WHERE query = ?1 AND scope = ?2",
                params![key, scope],
            )?;
        }
        Ok(found)
    }

    /// Stores (or replaces) `value` for `query` in `scope`.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn put(&self, query: &str, scope: &str, value: &str) -> Result<(), StoreError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.execute(
            "INSERT OR REPLACE INTO shared_references (query, scope, value, created_unix, hits)
             VALUES (?1, ?2, ?3, ?4, 0)",
            params![normalise_query(query), scope, value, now()],
        )?;
        Ok(())
    }
}

/// Where [`SharedReferences`] keeps its values.
enum Backend {
    /// This server's SQLite file.
    Sqlite(GuidanceStore),
    /// The Redis replicas share ([`crate::state`]), values expiring after `ttl`.
    Redis { redis: RedisState, ttl: Duration },
}

/// Shared references as the core's [`ReferenceStore`]: in a [`GuidanceStore`] (one server) or
/// in Redis (replicas, [`crate::state`]), with single flight per (normalised question, scope)
/// — within the process, and across replicas through a Redis lease — and hits counted for
/// `/metrics`. A failing read or write is logged and treated as a miss: the request is answered
/// with references written for it alone.
pub struct SharedReferences {
    backend: Backend,
    gates: Mutex<BTreeMap<String, Weak<tokio::sync::Mutex<()>>>>,
    hits: AtomicU64,
}

/// What [`SharedReferences::lock`] holds: this process's gate and, with Redis, the lease that
/// keeps other replicas waiting.
struct Flight {
    _gate: tokio::sync::OwnedMutexGuard<()>,
    _lease: Option<crate::state::Lease>,
}

impl SharedReferences {
    /// Shares through `store`.
    pub fn new(store: GuidanceStore) -> Self {
        Self::with(Backend::Sqlite(store))
    }

    /// Shares through the Redis of `redis`, each value kept for `ttl`.
    pub fn redis(redis: RedisState, ttl: Duration) -> Self {
        Self::with(Backend::Redis { redis, ttl })
    }

    fn with(backend: Backend) -> Self {
        Self {
            backend,
            gates: Mutex::default(),
            hits: AtomicU64::new(0),
        }
    }

    /// Requests answered from the store so far (by this server).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    fn gate(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        gates.retain(|_, g| g.strong_count() > 0);
        if let Some(g) = gates.get(key).and_then(Weak::upgrade) {
            return g;
        }
        let g = Arc::new(tokio::sync::Mutex::new(()));
        gates.insert(key.to_owned(), Arc::downgrade(&g));
        g
    }

    /// The Redis key of (`query`, `scope`) of `kind` (`ref`, `lock`).
    fn redis_key(redis: &RedisState, kind: &str, query: &str, scope: &str) -> String {
        redis.key(kind, &crate::state::digest(&flight_key(query, scope)))
    }
}

/// The question (normalised) within `scope`: what one flight and one stored value are of.
fn flight_key(query: &str, scope: &str) -> String {
    format!("{scope}\u{1f}{}", normalise_query(query))
}

/// `scope` within the sharing scope of the request being served
/// ([`crate::auth::sharing_scope`]); `None` outside a request, where nothing is shared.
fn tenant_scope(scope: &str) -> Option<String> {
    crate::auth::sharing_scope().map(|tenant| format!("{tenant}\u{1d}{scope}"))
}

/// Shares only within the sharing scope of the request being served (its tenant, or the share
/// group an operator put it in): the scope a strategy gives is prefixed with it. Outside a
/// request's scope nothing is read or stored.
#[async_trait]
impl ReferenceStore for SharedReferences {
    async fn lock(&self, query: &str, scope: &str) -> Box<dyn Any + Send> {
        let Some(scope) = tenant_scope(scope) else {
            return Box::new(());
        };
        let gate = self.gate(&flight_key(query, &scope)).lock_owned().await;
        let lease = match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Redis { redis, .. } => {
                match redis
                    .lock(&Self::redis_key(redis, "lock", query, &scope))
                    .await
                {
                    Ok(lease) => Some(lease),
                    Err(e) => {
                        tracing::warn!(error = %e, "no single flight across replicas for this question");
                        None
                    }
                }
            }
        };
        Box::new(Flight {
            _gate: gate,
            _lease: lease,
        })
    }

    async fn get(&self, query: &str, scope: &str) -> Option<String> {
        let scope = tenant_scope(scope)?;
        let found = match &self.backend {
            Backend::Sqlite(store) => store.get(query, &scope).map_err(|e| e.to_string()),
            Backend::Redis { redis, .. } => redis
                .get(&Self::redis_key(redis, "ref", query, &scope))
                .await
                .map_err(|e| e.to_string()),
        };
        match found {
            Ok(found) => {
                if found.is_some() {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                }
                found
            }
            Err(e) => {
                tracing::warn!(error = %e, "shared references not read; writing them anew");
                None
            }
        }
    }

    async fn put(&self, query: &str, scope: &str, value: &str) {
        let Some(scope) = tenant_scope(scope) else {
            return;
        };
        let stored = match &self.backend {
            Backend::Sqlite(store) => store.put(query, &scope, value).map_err(|e| e.to_string()),
            Backend::Redis { redis, ttl } => redis
                .put(&Self::redis_key(redis, "ref", query, &scope), value, *ttl)
                .await
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = stored {
            tracing::warn!(error = %e, "shared references not stored");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_normalise() {
        assert_eq!(
            normalise_query("  Janet\u{2019}s ducks   lay\n16 eggs?  "),
            "janet's ducks lay 16 eggs"
        );
        assert_eq!(normalise_query("f(x)"), "f(x)");
        assert_ne!(normalise_query("2+2"), normalise_query("2+3"));
    }

    #[test]
    fn shared_guidance_survives_a_reopen_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.sqlite");
        let store = GuidanceStore::open(&path, Duration::from_secs(60)).unwrap();
        assert_eq!(store.get("Q?", "m").unwrap(), None);
        store.put("Q?", "m", "use 9 eggs").unwrap();
        assert_eq!(
            store.get(" q ", "m").unwrap().as_deref(),
            Some("use 9 eggs")
        );
        assert_eq!(store.get("Q?", "other-model").unwrap(), None);
        drop(store);
        let reopened = GuidanceStore::open(&path, Duration::from_secs(60)).unwrap();
        assert_eq!(
            reopened.get("q", "m").unwrap().as_deref(),
            Some("use 9 eggs")
        );
        let expired = GuidanceStore::open(&path, Duration::ZERO).unwrap();
        // created_unix == now passes a zero TTL within the same second only; force an old entry.
        expired
            .conn
            .lock()
            .unwrap()
            .execute(
                "UPDATE shared_references SET created_unix = created_unix - 10",
                [],
            )
            .unwrap();
        assert_eq!(expired.get("q", "m").unwrap(), None);
    }
}

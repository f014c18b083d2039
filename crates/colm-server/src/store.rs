//! Shared guidance: guidance synthesised for a question is stored and served again to later
//! clients asking the same (normalised) question within a TTL, without calling the server
//! model. SQLite (embedded, `rusqlite` with the bundled library), so it survives restarts.
//!
//! Only `synthesis` guidance is shared: it is about the question, while a critique is about one
//! client's draft. The key is (normalised query, server model).

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[error("guidance store: {0}")]
pub struct StoreError(#[from] rusqlite::Error);

/// The store.
pub struct GuidanceStore {
    conn: Mutex<Connection>,
    ttl: Duration,
}

/// A query reduced to what makes two askings "the same question": Unicode lower case,
/// whitespace runs collapsed to one space, typographic apostrophes and quotes made plain,
/// surrounding whitespace and trailing punctuation removed.
pub fn normalise_query(query: &str) -> String {
    let mapped: String = query
        .chars()
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' => '\'',
            '\u{201C}' | '\u{201D}' => '"',
            c => c,
        })
        .collect::<String>()
        .to_lowercase();
    let collapsed = mapped.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .trim_end_matches(|c: char| c.is_ascii_punctuation() && c != ')' && c != ']')
        .to_owned()
}

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
            "CREATE TABLE IF NOT EXISTS shared_guidance (
                 query TEXT NOT NULL,
                 model TEXT NOT NULL,
                 guidance TEXT NOT NULL,
                 created_unix INTEGER NOT NULL,
                 hits INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (query, model)
             );",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
            ttl,
        })
    }

    /// Fresh guidance for `query` by `model`, counting a hit.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn get(&self, query: &str, model: &str) -> Result<Option<String>, StoreError> {
        let key = normalise_query(query);
        let oldest = now() - i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let found: Option<String> = conn
            .query_row(
                "SELECT guidance FROM shared_guidance
                 WHERE query = ?1 AND model = ?2 AND created_unix >= ?3",
                params![key, model, oldest],
                |row| row.get(0),
            )
            .optional()?;
        if found.is_some() {
            conn.execute(
                "UPDATE shared_guidance SET hits = hits + 1 WHERE query = ?1 AND model = ?2",
                params![key, model],
            )?;
        }
        Ok(found)
    }

    /// Stores (or replaces) the guidance for `query` by `model`.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn put(&self, query: &str, model: &str, guidance: &str) -> Result<(), StoreError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.execute(
            "INSERT OR REPLACE INTO shared_guidance (query, model, guidance, created_unix, hits)
             VALUES (?1, ?2, ?3, ?4, 0)",
            params![normalise_query(query), model, guidance, now()],
        )?;
        Ok(())
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
                "UPDATE shared_guidance SET created_unix = created_unix - 10",
                [],
            )
            .unwrap();
        assert_eq!(expired.get("q", "m").unwrap(), None);
    }
}

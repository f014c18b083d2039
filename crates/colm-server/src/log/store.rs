//! Where records are kept: SQLite (one file, WAL) or PostgreSQL, one table and the same
//! statements for both; reading a log back for training ([`read_target`]).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{params, Connection};

use crate::state::now_ms;

use super::{Feedback, Interaction, LogError};

/// Where the log is.
enum Backend {
    Sqlite(Arc<Mutex<Connection>>),
    Postgres(tokio_postgres::Client),
}

/// The log ([module docs](self)).
pub struct InteractionLog {
    backend: Backend,
    texts: bool,
}

/// The table, in the SQL both SQLite and PostgreSQL read (SQLite maps the type names to its
/// affinities).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS interactions (
    id TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    route TEXT NOT NULL,
    status INTEGER NOT NULL,
    model TEXT,
    strategy TEXT,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    mean_logprob DOUBLE PRECISION,
    finish_reason TEXT,
    latency_ms DOUBLE PRECISION NOT NULL,
    bytes_in BIGINT NOT NULL,
    bytes_out BIGINT NOT NULL,
    sensitive BOOLEAN NOT NULL,
    query TEXT,
    answer TEXT,
    outcome TEXT,
    score DOUBLE PRECISION,
    feedback_ms BIGINT,
    error TEXT,
    routed TEXT
);
CREATE INDEX IF NOT EXISTS interactions_created ON interactions (created_ms);
";

/// Columns added to [`SCHEMA`] after its first version: a log opened for writing gets them
/// (`ALTER TABLE … ADD COLUMN`); read only, a log without one reads it as NULL.
pub(super) const ADDED_COLUMNS: [&str; 4] = ["error", "routed", "transcript", "residency"];

const INSERT: &str = "INSERT INTO interactions (id, created_ms, tenant, route, status, model,
    strategy, prompt_tokens, completion_tokens, mean_logprob, finish_reason, latency_ms, bytes_in,
    bytes_out, sensitive, query, answer, error, routed, transcript, residency)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
    $19, $20, $21)";

/// (SQLite numbers `$N` parameters in order of first appearance: they appear here in order.)
const FEEDBACK: &str = "UPDATE interactions SET outcome = $1, score = $2, feedback_ms = $3
    WHERE id = $4 AND tenant = $5";

/// The SELECT of records followed by `tail` (a WHERE and ORDER BY clause); `present`: whether
/// the table has each of the [`ADDED_COLUMNS`] (one that is missing reads as NULL). The columns
/// are in the order [`interaction_of`] reads them.
fn select(present: [bool; ADDED_COLUMNS.len()], tail: &str) -> String {
    let added: Vec<&str> = ADDED_COLUMNS
        .iter()
        .zip(present)
        .map(|(c, p)| if p { *c } else { "CAST(NULL AS TEXT)" })
        .collect();
    format!(
        "SELECT id, created_ms, tenant, route, status, model, strategy, prompt_tokens,
        completion_tokens, mean_logprob, finish_reason, latency_ms, bytes_in, bytes_out, sensitive,
        query, answer, outcome, score, {} FROM interactions {tail}",
        added.join(", ")
    )
}

/// Every record, oldest first.
const ALL: &str = "ORDER BY created_ms, id";
/// One record of a tenant: `$1` id, `$2` tenant.
const ONE: &str = "WHERE id = $1 AND tenant = $2";
/// A tenant's newest records: `$1` tenant, `$2` how many.
const RECENT: &str = "WHERE tenant = $1 ORDER BY created_ms DESC, id DESC LIMIT $2";

/// A record and its feedback from a row of [`select`]: `$row.$get::<_, T>(i)` reads column `i`
/// (`rusqlite`'s `get` and `tokio-postgres`'s `try_get` have that shape).
macro_rules! interaction_of {
    ($row:expr, $get:ident) => {{
        let r = $row;
        Ok::<_, _>((
            Interaction {
                id: r.$get(0)?,
                created_ms: to_u64(r.$get(1)?),
                tenant: r.$get(2)?,
                route: r.$get(3)?,
                status: u16::try_from(r.$get::<_, i32>(4)?).unwrap_or(0),
                model: r.$get(5)?,
                strategy: r.$get(6)?,
                prompt_tokens: to_u64(r.$get(7)?),
                completion_tokens: to_u64(r.$get(8)?),
                mean_logprob: r.$get(9)?,
                finish_reason: r.$get(10)?,
                latency_ms: r.$get(11)?,
                bytes_in: to_u64(r.$get(12)?),
                bytes_out: to_u64(r.$get(13)?),
                sensitive: r.$get(14)?,
                query: r.$get(15)?,
                answer: r.$get(16)?,
                error: r.$get(19)?,
                routed: r.$get(20)?,
                transcript: r
                    .$get::<_, Option<String>>(21)?
                    .and_then(|t| serde_json::from_str(&t).ok()),
                residency: r
                    .$get::<_, Option<String>>(22)?
                    .and_then(|n| colm_core::named::Named::parse(&n).ok()),
            },
            Feedback {
                outcome: r.$get(17)?,
                score: r.$get(18)?,
            },
        ))
    }};
}

/// Which of the [`ADDED_COLUMNS`] a table with the columns `names` has.
fn present(names: &[String]) -> [bool; ADDED_COLUMNS.len()] {
    ADDED_COLUMNS.map(|c| names.iter().any(|n| n == c))
}

/// [`present`] for the SQLite log `conn`.
fn sqlite_present(conn: &Connection) -> Result<[bool; ADDED_COLUMNS.len()], rusqlite::Error> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('interactions')")?;
    let names = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(present(&names))
}

/// Adds the [`ADDED_COLUMNS`] the SQLite log `conn` lacks.
fn sqlite_add_columns(conn: &Connection) -> Result<(), rusqlite::Error> {
    for (column, there) in ADDED_COLUMNS.into_iter().zip(sqlite_present(conn)?) {
        if !there {
            conn.execute_batch(&format!(
                "ALTER TABLE interactions ADD COLUMN {column} TEXT"
            ))?;
        }
    }
    Ok(())
}

fn lock(m: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The integer columns of a record as stored: created_ms, prompt and completion tokens,
/// bytes in and out; and the status.
struct Columns {
    ints: [i64; 5],
    status: i32,
}

impl Columns {
    fn of(r: &Interaction) -> Self {
        Self {
            ints: [
                to_i64(r.created_ms),
                to_i64(r.prompt_tokens),
                to_i64(r.completion_tokens),
                to_i64(r.bytes_in),
                to_i64(r.bytes_out),
            ],
            status: i32::from(r.status),
        }
    }
}

impl InteractionLog {
    /// Opens (creating if needed) the SQLite log at `path`; `texts`: keep query and answer
    /// texts of requests that are not sensitive.
    ///
    /// # Errors
    /// The database cannot be opened or its table created.
    pub fn open(path: &Path, texts: bool) -> Result<Self, LogError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(SCHEMA)?;
        sqlite_add_columns(&conn)?;
        Ok(Self {
            backend: Backend::Sqlite(Arc::new(Mutex::new(conn))),
            texts,
        })
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user[:password]@host:port/db`,
    /// no TLS) and creates the table if needed.
    ///
    /// # Errors
    /// The server cannot be reached or refuses.
    pub async fn connect(url: &str, texts: bool) -> Result<Self, LogError> {
        let client = pg_client(url).await?;
        client.batch_execute(SCHEMA).await?;
        for column in ADDED_COLUMNS {
            client
                .batch_execute(&format!(
                    "ALTER TABLE interactions ADD COLUMN IF NOT EXISTS {column} TEXT"
                ))
                .await?;
        }
        Ok(Self {
            backend: Backend::Postgres(client),
            texts,
        })
    }

    /// [`InteractionLog::connect`] for a `postgres://` or `postgresql://` URL, else
    /// [`InteractionLog::open`] of the path.
    ///
    /// # Errors
    /// As those.
    pub async fn open_target(target: &str, texts: bool) -> Result<Self, LogError> {
        if is_postgres(target) {
            Self::connect(target, texts).await
        } else {
            Self::open(Path::new(target), texts)
        }
    }

    /// Runs `f` on the SQLite connection on a blocking thread.
    async fn sqlite<T: Send + 'static>(
        conn: &Arc<Mutex<Connection>>,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, LogError> {
        let conn = Arc::clone(conn);
        tokio::task::spawn_blocking(move || f(&lock(&conn)).map_err(LogError::from))
            .await
            .map_err(|e| LogError::Task(e.to_string()))?
    }

    /// Appends `r` (its texts left out when sensitive or texts are off).
    ///
    /// # Errors
    /// Database errors (a record id used twice among them).
    pub async fn append(&self, r: &Interaction) -> Result<(), LogError> {
        let keep = self.texts && !r.sensitive;
        let r = if keep {
            r.clone()
        } else {
            r.clone().without_texts()
        };
        let c = Columns::of(&r);
        let transcript = r
            .transcript
            .as_ref()
            .and_then(|t| serde_json::to_string(t).ok());
        let residency = r.residency.map(|o| colm_core::named::Named::name(&o));
        match &self.backend {
            Backend::Sqlite(conn) => {
                Self::sqlite(conn, move |db| {
                    db.execute(
                        INSERT,
                        params![
                            r.id,
                            c.ints[0],
                            r.tenant,
                            r.route,
                            c.status,
                            r.model,
                            r.strategy,
                            c.ints[1],
                            c.ints[2],
                            r.mean_logprob,
                            r.finish_reason,
                            r.latency_ms,
                            c.ints[3],
                            c.ints[4],
                            r.sensitive,
                            r.query,
                            r.answer,
                            r.error,
                            r.routed,
                            transcript,
                            residency,
                        ],
                    )
                    .map(drop)
                })
                .await
            }
            Backend::Postgres(client) => {
                client
                    .execute(
                        INSERT,
                        &[
                            &r.id,
                            &c.ints[0],
                            &r.tenant,
                            &r.route,
                            &c.status,
                            &r.model,
                            &r.strategy,
                            &c.ints[1],
                            &c.ints[2],
                            &r.mean_logprob,
                            &r.finish_reason,
                            &r.latency_ms,
                            &c.ints[3],
                            &c.ints[4],
                            &r.sensitive,
                            &r.query,
                            &r.answer,
                            &r.error,
                            &r.routed,
                            &transcript,
                            &residency,
                        ],
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// Attaches `feedback` to record `id` of `tenant`; `false` when the tenant has no such
    /// record.
    ///
    /// # Errors
    /// Database errors.
    pub async fn feedback(
        &self,
        id: &str,
        tenant: &str,
        feedback: &Feedback,
    ) -> Result<bool, LogError> {
        let now = to_i64(now_ms());
        let (id, tenant, fb) = (id.to_owned(), tenant.to_owned(), feedback.clone());
        let n = match &self.backend {
            Backend::Sqlite(conn) => {
                Self::sqlite(conn, move |db| {
                    db.execute(FEEDBACK, params![fb.outcome, fb.score, now, id, tenant])
                })
                .await?
            }
            Backend::Postgres(client) => usize::try_from(
                client
                    .execute(FEEDBACK, &[&fb.outcome, &fb.score, &now, &id, &tenant])
                    .await?,
            )
            .unwrap_or(0),
        };
        Ok(n == 1)
    }

    /// Every record with its feedback, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn read_all(&self) -> Result<Vec<(Interaction, Feedback)>, LogError> {
        self.query(ALL, Args::None).await
    }

    /// Record `id` of `tenant` with its feedback; `None` when the tenant has no such record.
    ///
    /// # Errors
    /// Database errors.
    pub async fn get(
        &self,
        id: &str,
        tenant: &str,
    ) -> Result<Option<(Interaction, Feedback)>, LogError> {
        let args = Args::Two(id.to_owned(), tenant.to_owned());
        Ok(self.query(ONE, args).await?.into_iter().next())
    }

    /// The newest `limit` records of `tenant`, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn recent(
        &self,
        tenant: &str,
        limit: u32,
    ) -> Result<Vec<(Interaction, Feedback)>, LogError> {
        self.query(RECENT, Args::Limit(tenant.to_owned(), i64::from(limit)))
            .await
    }

    /// The records [`select`]ed with `tail` and its `args`.
    async fn query(
        &self,
        tail: &str,
        args: Args,
    ) -> Result<Vec<(Interaction, Feedback)>, LogError> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let tail = tail.to_owned();
                Self::sqlite(conn, move |db| read_sqlite(db, &tail, &args)).await
            }
            Backend::Postgres(client) => {
                let names = client
                    .query(
                        "SELECT column_name::TEXT FROM information_schema.columns
                         WHERE table_schema = current_schema() AND table_name = 'interactions'",
                        &[],
                    )
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<Vec<String>, _>>()?;
                let sql = select(present(&names), tail);
                let rows = match &args {
                    Args::None => client.query(&sql, &[]).await?,
                    Args::Two(a, b) => client.query(&sql, &[a, b]).await?,
                    Args::Limit(a, n) => client.query(&sql, &[a, n]).await?,
                };
                rows.iter()
                    .map(|r| interaction_of!(r, try_get))
                    .collect::<Result<_, tokio_postgres::Error>>()
                    .map_err(LogError::from)
            }
        }
    }

    /// Appends `r` in the background, logging a failure.
    pub(super) fn append_later(self: &Arc<Self>, r: Interaction) {
        let log = Arc::clone(self);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = log.append(&r).await {
                    tracing::warn!(error = %e, record = %r.id, "interaction not logged");
                }
            });
        }
    }
}

/// A PostgreSQL client of `url` (no TLS), its connection driven in the background.
async fn pg_client(url: &str) -> Result<tokio_postgres::Client, LogError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "interaction log connection ended");
        }
    });
    Ok(client)
}

fn is_postgres(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

/// Every record with its feedback, oldest first, of the log at `target` (a `postgres://` URL
/// or a SQLite file), read only: nothing is created.
///
/// # Errors
/// The log cannot be reached or opened, or holds no interaction table.
pub async fn read_target(target: &str) -> Result<Vec<(Interaction, Feedback)>, LogError> {
    if is_postgres(target) {
        let log = InteractionLog {
            backend: Backend::Postgres(pg_client(target).await?),
            texts: true,
        };
        log.read_all().await
    } else {
        let path = std::path::PathBuf::from(target);
        tokio::task::spawn_blocking(move || read_file(&path))
            .await
            .map_err(|e| LogError::Task(e.to_string()))?
    }
}

/// The parameters of a query's `tail`.
enum Args {
    /// None.
    None,
    /// Two texts (`$1`, `$2`).
    Two(String, String),
    /// A text (`$1`) and a count (`$2`).
    Limit(String, i64),
}

/// The records of the SQLite log `conn` [`select`]ed with `tail` and its `args`.
fn read_sqlite(
    conn: &Connection,
    tail: &str,
    args: &Args,
) -> Result<Vec<(Interaction, Feedback)>, rusqlite::Error> {
    let mut stmt = conn.prepare(&select(sqlite_present(conn)?, tail))?;
    let read = |r: &rusqlite::Row<'_>| interaction_of!(r, get);
    let rows = match args {
        Args::None => stmt.query_map([], read)?,
        Args::Two(a, b) => stmt.query_map(params![a, b], read)?,
        Args::Limit(a, n) => stmt.query_map(params![a, n], read)?,
    };
    rows.collect()
}

/// Reads every record of the SQLite log file at `path` (read only).
///
/// # Errors
/// The file cannot be opened or is not a log.
pub fn read_file(path: &Path) -> Result<Vec<(Interaction, Feedback)>, LogError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(read_sqlite(&conn, ALL, &Args::None)?)
}

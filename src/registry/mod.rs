//! The registry: runs, step executions, model versions, tags and the tag history, kept in the
//! state database (DESIGN.md §5.3).
//!
//! # Mechanism
//! One code path for SQLite (the default, a file in the cache dir) and Postgres (for teams):
//! everything goes through [`sqlx::AnyPool`] with runtime-bound SQL that both engines accept
//! (`$1` placeholders, `TEXT`/`BIGINT` columns, RFC 3339 UTC timestamps and JSON stored as
//! `TEXT`, `INSERT … ON CONFLICT … DO NOTHING`). Migrations are an ordered list of statements
//! (`schema.rs`), applied in one transaction and recorded in `schema_version`.
//!
//! # Concurrency
//! Two processes may share the database (two runs, a run and a `promote`). Every read-modify-write
//! is one transaction whose *first statement is a write* on the row that guards it (the tag's row
//! in `tags`, or a row of `counters` for run ids and version registration):
//! - on SQLite that statement takes the database write lock at once, waiting on the busy timeout
//!   (10 s), which is what `BEGIN IMMEDIATE` would do, so the reads that follow see the latest
//!   state and cannot go stale;
//! - on Postgres it takes the row lock, the portable spelling of `SELECT … FOR UPDATE`.
//!
//! Tag updates are additionally compare-and-set on the tag's history sequence number, and any
//! transaction that loses a race (busy database, serialization failure, unique violation of a
//! concurrent first insert) is rolled back and retried with a short backoff. So concurrent moves
//! lose no update, and the history of a tag is a complete chain: each event's `from` is the
//! previous event's `to`.
//!
//! # Limits
//! Version ids embed a UTC timestamp; they sort by creation order within one registry even when
//! clocks disagree (a new id is never earlier than the newest existing one), but ids from two
//! *different* registries are only as comparable as the two clocks. See `docs/registry.md`.

pub mod deploy;
mod experiments;
pub mod integrity;
mod lazy;
pub mod links;
mod recorder;
mod render;
mod runs;
mod schema;
mod sqlite_file;
mod tags;
mod versions;
pub mod views;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};

pub use experiments::{Experiment, Point};
pub use lazy::Opening;
pub use recorder::RunRecorder;
pub use render::{render_history, render_runs, render_tags, render_versions};
pub use runs::host_name;
pub(crate) use runs::process_exists;
pub use runs::{NewRun, Run, RunSummary, StepRecord, StepStart};
pub use tags::{TagEvent, TagMove};
pub use versions::{Blob, NewVersion, Version, VersionEvent};

/// A run's id: a counter local to one registry.
pub type RunId = i64;

/// How long a SQLite connection waits for another process's write lock.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;
/// How many times a transaction that lost a race is retried before giving up.
const MAX_ATTEMPTS: u32 = 60;
/// Unique violations a transaction is retried for before the violation is the error.
const MAX_CONFLICTS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("unsupported state database URL `{url}` (expected `sqlite://PATH` or `postgres://…`)")]
    UnsupportedUrl { url: String },
    #[error("cannot open the state database `{url}`")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the state database is damaged: `{}` {why}", path.display())]
    Damaged {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("the state database `{url}` has schema version {found}, newer than this mlbuild knows ({known})")]
    SchemaTooNew { url: String, found: i64, known: i64 },
    #[error("state database error while {context}")]
    Query {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("the state database stayed busy: gave up {what} after {attempts} attempts")]
    Contention { what: &'static str, attempts: u32 },
    #[error("corrupt registry data: {0}")]
    Corrupt(String),
    #[error("invalid {what} `{value}` (expected one of: {expected})")]
    InvalidValue {
        what: &'static str,
        value: String,
        expected: String,
    },
    #[error("run {0} does not exist")]
    UnknownRun(RunId),
    #[error("version `{0}` does not exist")]
    UnknownVersion(String),
    #[error("tag `{0}` does not exist")]
    UnknownTag(String),
    #[error("tag `{tag}` has nothing to roll back to (it points at `{current}`, the oldest move not yet rolled back)")]
    NothingToRollBack { tag: String, current: String },
    #[error("version `{version}` never held tag `{tag}`")]
    NeverHeld { tag: String, version: String },
    #[error("invalid tag name `{0}`")]
    InvalidTag(String),
    #[error("tag `{tag}` cannot point at version `{version}`: it cannot be served from this store ({error}); nothing was changed")]
    Unready {
        tag: String,
        version: String,
        error: String,
    },
}

impl RegistryError {
    /// What the user can do about it, for the `hint:` line.
    pub fn hint(&self) -> Option<String> {
        match self {
            RegistryError::UnsupportedUrl { .. } => Some(
                "set `MLBUILD_STATE_URL` to `sqlite:///path/to/state.db` or `postgres://user@host/db`"
                    .into(),
            ),
            RegistryError::Open { url, .. } if url.starts_with("sqlite:") => {
                Some("check that the directory of the database file exists and is writable".into())
            }
            RegistryError::Open { .. } => Some(
                "check that the Postgres server is reachable and that `MLBUILD_STATE_URL` names an existing database".into(),
            ),
            RegistryError::Damaged { path, .. } => Some(damage_hint(path)),
            RegistryError::SchemaTooNew { .. } => {
                Some("a newer mlbuild has upgraded this database; upgrade mlbuild".into())
            }
            RegistryError::Contention { .. } => Some(
                "another mlbuild process kept the state database locked; try again".into(),
            ),
            RegistryError::UnknownVersion(_) => {
                Some("run `mlbuild versions` to list the registered versions".into())
            }
            RegistryError::UnknownTag(_) => Some("run `mlbuild tags` to list the tags".into()),
            RegistryError::NothingToRollBack { tag, .. } => Some(format!(
                "run `mlbuild history {tag}` to see its moves; `mlbuild promote {tag} VERSION` moves it anywhere"
            )),
            RegistryError::NeverHeld { tag, .. } => Some(format!(
                "run `mlbuild history {tag}` to see the versions it held; `mlbuild promote {tag} VERSION` moves it to any version"
            )),
            RegistryError::InvalidTag(_) => Some(TAG_RULE.into()),
            RegistryError::Unready { tag, .. } => Some(format!(
                "`mlbuild cache pull` restores its blobs from the remote cache, `mlbuild run` rebuilds a version it trained, and `mlbuild deploy --mojo FILE --tag {tag}` registers a file you hold; `mlbuild cache verify` names the repair of every damaged version"
            )),
            RegistryError::Query { source, .. } if is_sqlite_damage(source) => Some(
                "the state database is damaged; see \"A damaged state database\" in docs/registry.md".into(),
            ),
            RegistryError::Query { .. }
            | RegistryError::Corrupt(_)
            | RegistryError::InvalidValue { .. }
            | RegistryError::UnknownRun(_) => None,
        }
    }

    /// A unique constraint the transaction ran into.
    fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            RegistryError::Query { source: sqlx::Error::Database(db), .. } if db.is_unique_violation()
        )
    }

    /// A lost race that a retry of the whole transaction resolves.
    fn is_transient(&self) -> bool {
        let RegistryError::Query { source, .. } = self else {
            return false;
        };
        match source {
            sqlx::Error::PoolTimedOut => true,
            sqlx::Error::Database(db) => {
                if db.is_unique_violation() {
                    // A concurrent first insert (of a tag row, a version, a schema table) won:
                    // the retry reads what it wrote.
                    return true;
                }
                matches!(
                    db.code().as_deref(),
                    // SQLite: BUSY, BUSY_RECOVERY, BUSY_SNAPSHOT, LOCKED, LOCKED_SHAREDCACHE.
                    Some("5" | "261" | "517" | "6" | "262")
                    // Postgres: serialization failure, deadlock detected.
                    | Some("40001" | "40P01")
                )
            }
            _ => false,
        }
    }
}

/// How to get going again after [`RegistryError::Damaged`] (tested by hand: docs/registry.md).
fn damage_hint(path: &Path) -> String {
    let p = path.display();
    format!(
        "mlbuild does not change it. Restore it from a backup; or recover what SQLite can still \
         read into a new file (`sqlite3 '{p}' .recover | sqlite3 '{p}.recovered'`) and put that \
         in its place; or move it aside to start a new, empty registry: `mv '{p}' \
         '{p}.damaged'`. The exact steps are under \"A damaged state database\" in \
         docs/registry.md"
    )
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// SQLite's "database disk image is malformed" (11) or "file is not a database" (26).
fn is_sqlite_damage(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    db.code()
        .and_then(|c| c.parse::<i64>().ok())
        .is_some_and(|c| matches!(c & 0xff, 11 | 26))
}

/// Wraps a sqlx error with what we were doing.
/// The next id of counter `name` (`run`, `experiment`) within `tx`. The counter row is the
/// lock: ids are allocated one at a time on both engines.
async fn next_id(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    what: &'static str,
) -> Result<i64> {
    use sqlx::Row;
    // One statement (both engines know `RETURNING`): the write takes the lock and answers.
    sqlx::query("UPDATE counters SET value = value + 1 WHERE name = $1 RETURNING value")
        .bind(name)
        .fetch_one(&mut **tx)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db(what))
}

fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> RegistryError {
    move |source| RegistryError::Query { context, source }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The state database. Cheap to clone (clones share its connection).
#[derive(Debug, Clone)]
pub struct Registry {
    pool: AnyPool,
    /// SQLite's one connection, taken from the pool by the first statement and held until
    /// [`Registry::close`]: sqlx pings a connection each time it goes back to the pool, which on
    /// SQLite is a round trip to the connection's thread after every statement.
    held: std::sync::Arc<tokio::sync::Mutex<Option<PoolConnection<Any>>>>,
    /// Whether the database is a SQLite file (its WAL is checkpointed on [`Registry::close`]).
    sqlite: bool,
    /// Whether this is the empty in-memory stand-in of a database that does not exist yet
    /// ([`Registry::open_read`]).
    stand_in: bool,
    /// The schema version of the database: [`schema::current`] once opened for writing; a read
    /// ([`Registry::open_read`]) takes an older schema as it is (see `schema::has`).
    schema: i64,
    /// The SQLite file of a registry opened for writing: marked verified when it is closed.
    file: Option<std::path::PathBuf>,
}

/// The `sqlite://` URL of a database file, created when missing.
/// What a tag name may be, for hints: it names the file `models/<TAG>.zip`.
pub const TAG_RULE: &str = "a tag is 1–100 letters, digits, `.`, `_` and `-`, not starting with `.` or `-` (it names `models/<TAG>.zip`), e.g. `production`";

/// Whether `tag` is a valid tag name ([`TAG_RULE`]): it can never name a path outside `models/`.
pub fn is_valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 100
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub fn sqlite_url(path: &Path) -> String {
    // The path part of a SQLite URL is percent-decoded by sqlx: escape what would end it.
    let mut escaped = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '?' => escaped.push_str("%3F"),
            '#' => escaped.push_str("%23"),
            c => escaped.push(c),
        }
    }
    format!("sqlite://{escaped}?mode=rwc")
}

/// The name of the user moving a tag: `$USER`, `$LOGNAME`, else `unknown`.
pub fn current_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .find(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// The connection one statement (or transaction) runs on: SQLite's held connection, or a
/// Postgres connection from the pool for this statement (a connection held for the life of
/// `ui` or `serve` could go stale when the server restarts; the pool tests it instead).
enum Conn<'a> {
    Held(tokio::sync::MappedMutexGuard<'a, PoolConnection<Any>>),
    Pooled(PoolConnection<Any>),
}

impl std::ops::Deref for Conn<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            Conn::Held(held) => held,
            Conn::Pooled(pooled) => pooled,
        }
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Conn::Held(held) => held,
            Conn::Pooled(pooled) => pooled,
        }
    }
}

impl Registry {
    fn new(
        pool: AnyPool,
        sqlite: bool,
        stand_in: bool,
        schema: i64,
        file: Option<std::path::PathBuf>,
    ) -> Registry {
        Registry {
            pool,
            held: Default::default(),
            sqlite,
            stand_in,
            schema,
            file,
        }
    }

    /// The connection for the next statement or transaction (one at a time: the pool has one).
    async fn conn(&self) -> Result<Conn<'_>> {
        let acquire = || async {
            self.pool
                .acquire()
                .await
                .map_err(db("connecting to the state database"))
        };
        if !self.sqlite {
            return Ok(Conn::Pooled(acquire().await?));
        }
        let mut held = self.held.lock().await;
        if held.is_none() {
            *held = Some(acquire().await?);
        }
        tokio::sync::MutexGuard::try_map(held, Option::as_mut)
            .map(Conn::Held)
            .map_err(|_| RegistryError::Corrupt("the state database's connection was lost".into()))
    }

    /// Opens (creating if needed) the state database at `url` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Registry> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);

        let (backend, url) = if url.starts_with("sqlite:") {
            let url = if url.contains("mode=") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(RegistryError::UnsupportedUrl {
                url: crate::redact::safe_url(url),
            });
        };
        let shown = crate::redact::safe_url(&url);
        let file = match backend {
            Backend::Sqlite => sqlite_file::path_of(&url),
            Backend::Postgres => None,
        };
        let found = match &file {
            Some(path) => sqlite_file::prepare(path, url.contains("mode=rwc"), &shown).await?,
            None => sqlite_file::Found::Unknown,
        };
        let open_error = |source| RegistryError::Open {
            url: shown.clone(),
            source,
        };

        // One connection: a command's statements go one at a time anyway, and each further
        // connection costs an open of the file, its log and its PRAGMAs (and, on SQLite, a
        // thread of its own).
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            // A SQLite connection does not go stale: no ping before each statement.
            .test_before_acquire(backend == Backend::Postgres)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        use sqlx::Executor;
                        // In WAL mode, NORMAL syncs at checkpoints instead of every commit:
                        // still never corrupt, and a no-op run's bookkeeping stays cheap. A
                        // power cut may lose the last few commits (never half of one). Both
                        // PRAGMAs in one statement string: one round trip to SQLite's thread.
                        conn.execute(
                            format!(
                                "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; \
                                 PRAGMA synchronous = NORMAL"
                            )
                            .as_str(),
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(open_error)?;

        let version = match found {
            sqlite_file::Found::Existing { schema, .. } => Some(schema),
            sqlite_file::Found::Created => Some(schema::current()),
            sqlite_file::Found::Unknown => None,
        };
        let registry = Registry::new(
            pool,
            backend == Backend::Sqlite,
            false,
            schema::current(),
            file,
        );
        let wal = matches!(found, sqlite_file::Found::Existing { wal: true, .. });
        registry.settle(wal, version, &shown).await?;
        Ok(registry)
    }

    /// Brings an opened database into shape for writing: WAL mode unless its header says so
    /// already (`wal`), and the current schema unless `version` (found by the file's check, if
    /// any) is it.
    async fn settle(&self, wal: bool, version: Option<i64>, shown: &str) -> Result<()> {
        if self.sqlite && !wal {
            // WAL lets readers work while another process writes. The mode is stored in the
            // file (its header says so), so only the first open changes it; switching needs a
            // lock that the busy timeout does not wait for, hence the retry.
            retry("enabling WAL", || async {
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&mut *self.conn().await?)
                    .await
                    .map_err(db("enabling WAL"))?;
                Ok(Some(()))
            })
            .await?;
        }
        let version = match version {
            Some(v) => Some(v),
            // Postgres, or a file not checked above: a database that has the table at the
            // current version needs no migration (any other answer goes through it).
            None => schema::read_version(&mut *self.conn().await?).await.ok(),
        };
        if version != Some(schema::current()) {
            retry("migrating the schema", || async {
                schema::migrate_once(&mut *self.conn().await?, shown).await
            })
            .await?;
        }
        Ok(())
    }

    /// Opens the state database for a command that only reads (`status`, `versions`, `tags`,
    /// `predict`, …; DESIGN.md §8). Nothing is created and nothing is written: a SQLite file is
    /// opened without `c`reate and every connection is `query_only` (Postgres: a read-only
    /// session); no migration runs. A database that does not exist yet (no SQLite file, or no
    /// `schema_version` table) reads as an empty registry, "no versions yet". An older schema is
    /// read as it is (reads of newer tables see nothing) until a writing command upgrades it; a
    /// newer one is [`RegistryError::SchemaTooNew`].
    pub async fn open_read(url: &str) -> Result<Registry> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let shown = crate::redact::safe_url(url);
        let open_error = |source| RegistryError::Open {
            url: shown.clone(),
            source,
        };
        let mut checked = None;
        let (backend, url) = if url.starts_with("sqlite:") {
            use std::str::FromStr;
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(open_error)?;
            if !options.get_filename().is_file() {
                return Registry::empty().await;
            }
            // A damaged file is reported as such, never read as "no versions yet".
            checked = Some(sqlite_file::prepare(options.get_filename(), false, &shown).await?);
            let mode = match sqlite_file::has_log(options.get_filename()) {
                true => "mode=ro",
                false => "mode=rw",
            };
            let url = if url.contains("mode=rwc") || url.contains("mode=rw") {
                url.replacen("mode=rwc", mode, 1)
                    .replacen("mode=rw", mode, 1)
            } else if url.contains("mode=") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&{mode}")
            } else {
                format!("{url}?{mode}")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(RegistryError::UnsupportedUrl { url: shown });
        };
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            // A SQLite connection does not go stale: no ping before each statement.
            .test_before_acquire(backend == Backend::Postgres)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    use sqlx::Executor;
                    if backend == Backend::Sqlite {
                        conn.execute(
                            format!(
                                "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; \
                                 PRAGMA query_only = ON"
                            )
                            .as_str(),
                        )
                        .await?;
                    } else {
                        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(open_error)?;
        let mut registry = Registry::new(pool, backend == Backend::Sqlite, false, 0, None);
        let read = match checked {
            Some(sqlite_file::Found::Existing { schema, .. }) => Ok(schema),
            _ => schema::read_version(&mut *registry.conn().await?).await,
        };
        registry.schema = match read {
            Ok(found) => found,
            Err(e) if schema::is_missing_table(&e) => 0,
            Err(e) => return Err(e),
        };
        if registry.schema == 0 {
            registry.close().await;
            return Registry::empty().await;
        }
        schema::check_not_newer(registry.schema, &shown)?;
        Ok(registry)
    }

    /// A registry with nothing in it, in memory: what a read sees before the first write.
    async fn empty() -> Result<Registry> {
        let shown = "sqlite::memory:";
        // One connection, kept for the life of the pool: an in-memory database lives and dies
        // with its connection.
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect(shown)
            .await
            .map_err(|source| RegistryError::Open {
                url: shown.into(),
                source,
            })?;
        let registry = Registry::new(pool, true, true, schema::current(), None);
        schema::migrate_once(&mut *registry.conn().await?, shown).await?;
        sqlx::query("PRAGMA query_only = ON")
            .execute(&mut *registry.conn().await?)
            .await
            .map_err(db("opening an empty registry"))?;
        Ok(registry)
    }

    /// Whether this registry stands in for a database that does not exist yet: it reads as
    /// empty, and a later open may find the database a run has made since.
    pub fn is_stand_in(&self) -> bool {
        self.stand_in
    }

    /// Closes the pool, waiting for connections to finish. On SQLite the WAL is checkpointed
    /// into `state.db` and truncated first, so what a command wrote is in the file itself when
    /// it exits, whoever copies or reads it next (the last connection's close removes the
    /// `-wal` and `-shm` files, but it may still be under way when the process exits). A
    /// registry opened for reading ([`Registry::open_read`]) never checkpoints: a log left by a
    /// killed writer stays for the next writer.
    pub async fn close(&self) {
        let folded = self.file.is_some()
            && match self.conn().await {
                Ok(mut conn) => sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut *conn)
                    .await
                    .is_ok(),
                Err(_) => false,
            };
        // Closed here, not given back to the pool (which would ping it first); the close is
        // over (`-wal` and `-shm` removed) when this returns.
        let held = self.held.lock().await.take();
        if let Some(conn) = held {
            let _ = sqlx::Connection::close(conn.detach()).await;
        }
        self.pool.close().await;
        if let (true, Some(file)) = (folded, &self.file) {
            sqlite_file::mark_verified(file, self.schema);
        }
    }
}

/// Runs one attempt of a transaction until it succeeds: `Ok(None)` and transient errors (a lost
/// race) retry after a short, jittered backoff.
async fn retry<T, F, Fut>(what: &'static str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let mut conflicts = 0;
    for n in 1..=MAX_ATTEMPTS {
        match attempt().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            // A lost race for a first insert resolves on the next attempt; the same row
            // conflicting again and again is no race (a counter behind its table, say): the
            // error itself is the answer, not "the database stayed busy".
            Err(e) if e.is_unique_violation() => {
                conflicts += 1;
                if conflicts >= MAX_CONFLICTS {
                    return Err(e);
                }
            }
            Err(e) if e.is_transient() => {}
            Err(e) => return Err(e),
        }
        let jitter = u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
                % 7,
        );
        tokio::time::sleep(Duration::from_millis(2 * u64::from(n.min(25)) + jitter)).await;
    }
    Err(RegistryError::Contention {
        what,
        attempts: MAX_ATTEMPTS,
    })
}

/// Now, as stored: RFC 3339, UTC, milliseconds.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

//! Portable migrations: an ordered list, each a list of single statements (Postgres prepares
//! one statement at a time), applied in one transaction and recorded in `schema_version`.
//!
//! Append new migrations at the end; never edit one that has shipped.

use sqlx::{AnyConnection, Row};

use super::{db, RegistryError, Result};

/// Migration `n` (1-based) brings the schema from version `n - 1` to `n`.
pub(super) const MIGRATIONS: &[&[&str]] = &[
    V1,
    V2_RUN_HOSTS,
    V3_VERSION_EVENTS,
    V4_RUN_ORIGIN,
    V5_STEP_STARTS,
    V6_EXPERIMENTS,
    V7_RUNNING_INDEX,
];

const V1: &[&str] = &[
    // Row locks that serialize id allocation (`run`) and version registration (`version`).
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    "INSERT INTO counters (name, value) VALUES ('run', 0)",
    "INSERT INTO counters (name, value) VALUES ('version', 0)",
    "CREATE TABLE runs (
        id BIGINT PRIMARY KEY,
        project TEXT NOT NULL,
        command TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        report TEXT
    )",
    "CREATE TABLE step_runs (
        run BIGINT NOT NULL,
        step TEXT NOT NULL,
        attempt BIGINT NOT NULL,
        status TEXT NOT NULL,
        step_key TEXT NOT NULL,
        duration_ms BIGINT NOT NULL,
        reason TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    )",
    "CREATE INDEX step_runs_by_run ON step_runs (run)",
    "CREATE TABLE versions (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        model TEXT NOT NULL,
        canonical TEXT NOT NULL UNIQUE,
        algo TEXT NOT NULL,
        metrics TEXT NOT NULL,
        card TEXT NOT NULL,
        provenance TEXT NOT NULL,
        run BIGINT
    )",
    "CREATE TABLE tags (
        tag TEXT PRIMARY KEY,
        version TEXT NOT NULL REFERENCES versions (id),
        seq BIGINT NOT NULL,
        stack_top BIGINT
    )",
    "CREATE TABLE tag_history (
        tag TEXT NOT NULL,
        seq BIGINT NOT NULL,
        from_version TEXT,
        to_version TEXT NOT NULL,
        moved_at TEXT NOT NULL,
        moved_by TEXT NOT NULL,
        reason TEXT NOT NULL,
        kind TEXT NOT NULL,
        parent BIGINT,
        PRIMARY KEY (tag, seq)
    )",
];

/// Where each run runs, so a run whose process is gone can be marked `interrupted`.
const V2_RUN_HOSTS: &[&str] = &[
    "ALTER TABLE runs ADD COLUMN host TEXT",
    "ALTER TABLE runs ADD COLUMN pid BIGINT",
];

/// A version's history: its bytes restored or replaced (`versions::VersionEvent`).
const V3_VERSION_EVENTS: &[&str] = &["CREATE TABLE version_events (
        version TEXT NOT NULL REFERENCES versions (id),
        seq BIGINT NOT NULL,
        at TEXT NOT NULL,
        by_user TEXT NOT NULL,
        kind TEXT NOT NULL,
        blob TEXT NOT NULL,
        from_digest TEXT NOT NULL,
        to_digest TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (version, seq)
    )"];

/// Who started a run, at which commit, and the error it ended with (as the CLI printed it).
const V4_RUN_ORIGIN: &[&str] = &[
    "ALTER TABLE runs ADD COLUMN git_commit TEXT",
    "ALTER TABLE runs ADD COLUMN user_name TEXT",
    "ALTER TABLE runs ADD COLUMN error TEXT",
];

/// The step a run is executing now (since when), written when the step starts, so a reader
/// (the UI's live view) sees the step before it ends.
const V5_STEP_STARTS: &[&str] = &[
    "ALTER TABLE runs ADD COLUMN current_step TEXT",
    "ALTER TABLE runs ADD COLUMN current_attempt BIGINT",
    "ALTER TABLE runs ADD COLUMN current_since TEXT",
];

/// Experiments (`mlbuild exp run`): a grid, and per point its overrides, run and version.
const V6_EXPERIMENTS: &[&str] = &[
    "INSERT INTO counters (name, value) VALUES ('experiment', 0) ON CONFLICT (name) DO NOTHING",
    "CREATE TABLE experiments (
        id BIGINT PRIMARY KEY,
        project TEXT NOT NULL,
        started_at TEXT NOT NULL,
        grid TEXT NOT NULL
    )",
    "CREATE TABLE experiment_points (
        experiment BIGINT NOT NULL,
        point BIGINT NOT NULL,
        overrides TEXT NOT NULL,
        run BIGINT,
        version TEXT,
        status TEXT NOT NULL,
        PRIMARY KEY (experiment, point)
    )",
];

/// The runs still `running`, by project: what every `run`'s interrupted-run check
/// ([`super::Registry::mark_interrupted`]) looks for. Without it the check read the whole
/// `runs` table, so a fully cached run grew slower with the project's history (30,000 runs:
/// 7.4 -> 12.1 ms; docs/performance.md).
const V7_RUNNING_INDEX: &[&str] =
    &["CREATE INDEX runs_running ON runs (project) WHERE status = 'running'"];

/// The schema version that records experiments.
pub(super) const EXPERIMENTS: i64 = 6;

/// The schema version whose `runs` rows record the step under way.
pub(super) const STEP_STARTS: i64 = 5;

/// The schema version whose `runs` rows record their origin and error.
pub(super) const RUN_ORIGIN: i64 = 4;

/// The schema version this build writes.
pub(super) fn current() -> i64 {
    MIGRATIONS.len() as i64
}

/// One attempt at bringing the schema up to date (see [`super::retry`]).
pub(super) async fn migrate_once(conn: &mut AnyConnection, url: &str) -> Result<Option<()>> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_version (id BIGINT PRIMARY KEY, version BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await
    .map_err(db("creating `schema_version`"))?;
    sqlx::query(
        "INSERT INTO schema_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
    )
    .execute(&mut *conn)
    .await
    .map_err(db("initialising `schema_version`"))?;

    let found = read_version(conn).await?;
    if found == current() {
        return Ok(Some(()));
    }
    check_not_newer(found, url)?;

    let mut tx = sqlx::Connection::begin(&mut *conn)
        .await
        .map_err(db("starting a migration"))?;
    // Write first: takes the lock (see the module doc of `registry`), so two processes
    // opening a fresh database do not both migrate.
    sqlx::query("UPDATE schema_version SET version = version WHERE id = 1")
        .execute(&mut *tx)
        .await
        .map_err(db("locking `schema_version`"))?;
    let found: i64 = sqlx::query("SELECT version FROM schema_version WHERE id = 1")
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db("reading the schema version"))?;
    check_not_newer(found, url)?;
    for (index, statements) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        for statement in statements.iter() {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(db("applying a migration"))?;
        }
        sqlx::query("UPDATE schema_version SET version = $1 WHERE id = 1")
            .bind(index as i64 + 1)
            .execute(&mut *tx)
            .await
            .map_err(db("recording a migration"))?;
    }
    tx.commit().await.map_err(db("committing a migration"))?;
    Ok(Some(()))
}

pub(super) async fn read_version(conn: &mut AnyConnection) -> Result<i64> {
    sqlx::query("SELECT version FROM schema_version WHERE id = 1")
        .fetch_one(conn)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db("reading the schema version"))
}

/// The schema version that created `table` (0: none does).
fn introduced(table: &str) -> i64 {
    let create = format!("CREATE TABLE {table} ");
    MIGRATIONS
        .iter()
        .position(|m| m.iter().any(|s| s.starts_with(&create)))
        .map_or(0, |i| i as i64 + 1)
}

/// Whether a database at schema version `schema` has `table`: a read of an older schema
/// ([`super::Registry::open_read`]) finds nothing in a table a later migration adds.
pub(super) fn has(schema: i64, table: &str) -> bool {
    let at = introduced(table);
    at != 0 && schema >= at
}

/// Whether a query failed because the table does not exist (a database never initialised).
pub(super) fn is_missing_table(e: &RegistryError) -> bool {
    let RegistryError::Query {
        source: sqlx::Error::Database(db),
        ..
    } = e
    else {
        return false;
    };
    // Postgres: undefined_table; SQLite has no code of its own for it.
    db.code().as_deref() == Some("42P01") || db.message().contains("no such table")
}

pub(super) fn check_not_newer(found: i64, url: &str) -> Result<()> {
    if found > current() {
        return Err(RegistryError::SchemaTooNew {
            url: url.to_string(),
            found,
            known: current(),
        });
    }
    Ok(())
}

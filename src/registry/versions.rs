//! Versions: a MOJO, by canonical digest, with its card, metrics and provenance.
//!
//! A version id is `v` + the UTC creation time `YYYYMMDD.HHMMSS` + `-` + the first 6 hex digits
//! of the canonical digest, e.g. `v20250314.093012-3fa9c1`. All ids have the same length, so
//! byte order is time order. Registration is serialized (the `version` counter row is locked
//! first) and a new id's time is never earlier than the newest existing id's: if the clock says
//! otherwise, or two versions are registered within one second, the time is bumped by whole
//! seconds. So `ORDER BY id` is creation order, ids never collide, and `created_at` keeps the
//! true registration time.

use chrono::{NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{db, retry, Registry, RegistryError, Result, RunId};

const ID_TIME_FORMAT: &str = "%Y%m%d.%H%M%S";

/// What `conclude` or `deploy` registers.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVersion {
    /// blake3 of the MOJO bytes as H2O gave them.
    pub model: String,
    /// The canonical MOJO digest (reference/h2o-rest.md §9): a version's identity.
    pub canonical: String,
    pub algo: String,
    pub metrics: Value,
    /// blake3 of the model card blob.
    pub card: String,
    pub provenance: Value,
    pub run: Option<RunId>,
}

/// A registered version; serialized as is by `versions --json` and `show --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Version {
    pub id: String,
    pub created_at: String,
    pub model: String,
    pub canonical: String,
    pub algo: String,
    pub metrics: Value,
    pub card: String,
    pub provenance: Value,
    pub run: Option<i64>,
}

const COLUMNS: &str = "id, created_at, model, canonical, algo, metrics, card, provenance, run";

impl Registry {
    /// The version of a canonical MOJO digest, if registered.
    pub async fn find_by_canonical(&self, canonical: &str) -> Result<Option<Version>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM versions WHERE canonical = $1"
        ))
        .bind(canonical)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("looking up a version by digest"))?;
        row.map(|row| version_from_row(&row)).transpose()
    }

    /// A version by id.
    pub async fn get(&self, id: &str) -> Result<Option<Version>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM versions WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a version"))?;
        row.map(|row| version_from_row(&row)).transpose()
    }

    /// All versions, oldest first.
    pub async fn versions(&self) -> Result<Vec<Version>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM versions ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing versions"))?;
        rows.iter().map(version_from_row).collect()
    }

    /// Registers a version, or returns the one that already has this canonical digest (then
    /// unchanged, and `false`). Idempotent, also under concurrent calls.
    pub async fn register(&self, new: NewVersion) -> Result<(Version, bool)> {
        if new.canonical.len() < 6 || !new.canonical.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RegistryError::InvalidValue {
                what: "canonical MOJO digest",
                value: new.canonical.clone(),
                expected: "a hex digest",
            });
        }
        let canonical = new.canonical.to_ascii_lowercase();
        let metrics = new.metrics.to_string();
        let provenance = new.provenance.to_string();
        retry("registering a version", || async {
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(db("registering a version"))?;
            // Lock first (module doc of `registry`), then look.
            sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'version'")
                .execute(&mut *tx)
                .await
                .map_err(db("locking the version list"))?;
            let existing = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM versions WHERE canonical = $1"
            ))
            .bind(&canonical)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("looking up a version by digest"))?;
            if let Some(row) = existing {
                return Ok(Some((version_from_row(&row)?, false)));
            }
            let newest: Option<String> =
                sqlx::query("SELECT id FROM versions ORDER BY id DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await
                    .and_then(|row| row.map(|row| row.try_get(0)).transpose())
                    .map_err(db("reading the newest version"))?;
            let now = Utc::now();
            let id = next_id(newest.as_deref(), now.naive_utc(), &canonical);
            let version = Version {
                id,
                created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                model: new.model.clone(),
                canonical: canonical.clone(),
                algo: new.algo.clone(),
                metrics: new.metrics.clone(),
                card: new.card.clone(),
                provenance: new.provenance.clone(),
                run: new.run,
            };
            sqlx::query(&format!(
                "INSERT INTO versions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ))
            .bind(&version.id)
            .bind(&version.created_at)
            .bind(&version.model)
            .bind(&version.canonical)
            .bind(&version.algo)
            .bind(&metrics)
            .bind(&version.card)
            .bind(&provenance)
            .bind(version.run)
            .execute(&mut *tx)
            .await
            .map_err(db("registering a version"))?;
            tx.commit().await.map_err(db("registering a version"))?;
            Ok(Some((version, true)))
        })
        .await
    }
}

/// The id of a version registered at `now`, after the version `newest` (see the module doc).
pub(super) fn next_id(newest: Option<&str>, now: NaiveDateTime, canonical: &str) -> String {
    let mut time = now.and_utc().timestamp();
    if let Some(previous) = newest.and_then(id_time) {
        time = time.max(previous + 1);
    }
    let time = chrono::DateTime::from_timestamp(time, 0)
        .unwrap_or_else(|| now.and_utc())
        .naive_utc();
    format!("v{}-{}", time.format(ID_TIME_FORMAT), &canonical[..6])
}

/// The time (unix seconds) embedded in a version id.
fn id_time(id: &str) -> Option<i64> {
    let stamp = id.strip_prefix('v')?.get(..15)?;
    NaiveDateTime::parse_from_str(stamp, ID_TIME_FORMAT)
        .ok()
        .map(|t| t.and_utc().timestamp())
}

fn version_from_row(row: &AnyRow) -> Result<Version> {
    let get = |e: sqlx::Error| RegistryError::Corrupt(format!("version row: {e}"));
    let id: String = row.try_get(0).map_err(get)?;
    let json = |column: usize, what: &str| -> Result<Value> {
        let text: String = row.try_get(column).map_err(get)?;
        serde_json::from_str(&text)
            .map_err(|e| RegistryError::Corrupt(format!("{what} of version `{id}`: {e}")))
    };
    Ok(Version {
        created_at: row.try_get(1).map_err(get)?,
        model: row.try_get(2).map_err(get)?,
        canonical: row.try_get(3).map_err(get)?,
        algo: row.try_get(4).map_err(get)?,
        metrics: json(5, "metrics")?,
        card: row.try_get(6).map_err(get)?,
        provenance: json(7, "provenance")?,
        run: row.try_get(8).map_err(get)?,
        id,
    })
}

//! Versions: a MOJO, by canonical digest, with its card, metrics and provenance.
//!
//! A version id is `v` + the UTC creation time `YYYYMMDD.HHMMSS` + `-` + the first 6 hex digits
//! of the canonical digest, e.g. `v20250314.093012-3fa9c1`. All ids have the same length, so
//! byte order is time order. Registration is serialized (the `version` counter row is locked
//! first) and a new id's time is never earlier than the newest existing id's: if the clock says
//! otherwise, or two versions are registered within one second, the time is bumped by whole
//! seconds. So `ORDER BY id` is creation order, ids never collide, and `created_at` keeps the
//! true registration time.
//!
//! # Repairs
//! A version names its bytes by blake3 (`model`, `card`, `provenance.plots`). MOJO bytes are never
//! reproducible, so when a version's MOJO blob is lost (quarantined as corrupt, deleted) a rebuild
//! yields other bytes with the same canonical digest. [`Registry::repair_blob`] then points the
//! version at them (or records that the same bytes were restored), as an event of the version's
//! history (`version_events`), shown by `show VERSION`. The identity (`canonical`) never changes.

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

/// One of the blobs a version names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blob {
    Mojo,
    Card,
    /// A plot of the card, by name (`provenance.plots`).
    Plot(String),
}

impl Blob {
    /// As stored and shown: `mojo`, `card`, `plot:<name>`.
    pub fn name(&self) -> String {
        match self {
            Blob::Mojo => "mojo".into(),
            Blob::Card => "card".into(),
            Blob::Plot(name) => format!("plot:{name}"),
        }
    }

    /// For messages: `MOJO`, `card`, `roc plot`.
    pub fn describe(&self) -> String {
        match self {
            Blob::Mojo => "MOJO".into(),
            Blob::Card => "card".into(),
            Blob::Plot(name) => format!("{name} plot"),
        }
    }
}

impl Version {
    /// The blobs this version needs to be served and shown, with their digests.
    pub fn blobs(&self) -> Vec<(Blob, String)> {
        let mut out = vec![
            (Blob::Mojo, self.model.clone()),
            (Blob::Card, self.card.clone()),
        ];
        if let Some(plots) = self.provenance["plots"].as_object() {
            for (name, digest) in plots {
                if let Some(d) = digest.as_str() {
                    out.push((Blob::Plot(name.clone()), d.to_string()));
                }
            }
        }
        out
    }

    fn digest_of(&self, blob: &Blob) -> Option<&str> {
        match blob {
            Blob::Mojo => Some(&self.model),
            Blob::Card => Some(&self.card),
            Blob::Plot(name) => self.provenance["plots"][name].as_str(),
        }
    }
}

/// An event of a version's history, as `show VERSION --json` prints it (`history`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionEvent {
    /// RFC 3339, UTC.
    pub at: String,
    pub by: String,
    /// `restored`: the same bytes put back (from the remote cache or a file); `replaced`: the
    /// version now names other bytes (a rebuilt MOJO with the same canonical digest).
    pub kind: String,
    /// `mojo`, `card` or `plot:<name>`.
    pub blob: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

pub(super) const COLUMNS: &str =
    "id, created_at, model, canonical, algo, metrics, card, provenance, run";

impl Registry {
    /// Every tag and its version, in tag order: [`Registry::tags`] and a [`Registry::get`] of
    /// each, in one query.
    pub async fn tagged(&self) -> Result<Vec<(String, Version)>> {
        let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("v.{c}")).collect();
        let rows = sqlx::query(&format!(
            "SELECT {}, t.tag FROM tags t JOIN versions v ON v.id = t.version ORDER BY t.tag",
            columns.join(", ")
        ))
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db("listing tags and their versions"))?;
        rows.iter()
            .map(|row| {
                let tag: String = row
                    .try_get(columns.len())
                    .map_err(|e| RegistryError::Corrupt(format!("tag row: {e}")))?;
                Ok((tag, version_from_row(row)?))
            })
            .collect()
    }

    /// The version of a canonical MOJO digest, if registered.
    pub async fn find_by_canonical(&self, canonical: &str) -> Result<Option<Version>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM versions WHERE canonical = $1"
        ))
        .bind(canonical)
        .fetch_optional(&mut *self.conn().await?)
        .await
        .map_err(db("looking up a version by digest"))?;
        row.map(|row| version_from_row(&row)).transpose()
    }

    /// A version by id.
    pub async fn get(&self, id: &str) -> Result<Option<Version>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM versions WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *self.conn().await?)
            .await
            .map_err(db("reading a version"))?;
        row.map(|row| version_from_row(&row)).transpose()
    }

    /// All versions, oldest first.
    pub async fn versions(&self) -> Result<Vec<Version>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM versions ORDER BY id"))
            .fetch_all(&mut *self.conn().await?)
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
                expected: "a hex digest".into(),
            });
        }
        let canonical = new.canonical.to_ascii_lowercase();
        let metrics = new.metrics.to_string();
        let provenance = new.provenance.to_string();
        retry("registering a version", || async {
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn)
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

impl Registry {
    /// The history of version `id`, oldest first (empty on a schema older than the table).
    pub async fn version_events(&self, id: &str) -> Result<Vec<VersionEvent>> {
        if !super::schema::has(self.schema, "version_events") {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT at, by_user, kind, blob, from_digest, to_digest, reason \
             FROM version_events WHERE version = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db("reading a version's history"))?;
        rows.iter()
            .map(|row| {
                let get = |e: sqlx::Error| RegistryError::Corrupt(format!("version event: {e}"));
                Ok(VersionEvent {
                    at: row.try_get(0).map_err(get)?,
                    by: row.try_get(1).map_err(get)?,
                    kind: row.try_get(2).map_err(get)?,
                    blob: row.try_get(3).map_err(get)?,
                    from: row.try_get(4).map_err(get)?,
                    to: row.try_get(5).map_err(get)?,
                    reason: row.try_get(6).map_err(get)?,
                })
            })
            .collect()
    }

    /// Records a repair of `blob` of version `id`: `to == from` means the same bytes were
    /// restored; otherwise the version is pointed at `to` (for the MOJO, the caller has checked
    /// that `to` has the version's canonical digest). A compare-and-set on `from`: returns
    /// `false`, changing nothing, when the version no longer names `from` (a concurrent repair
    /// won).
    pub async fn repair_blob(
        &self,
        id: &str,
        blob: &Blob,
        from: &str,
        to: &str,
        by: &str,
        reason: &str,
    ) -> Result<bool> {
        retry("repairing a version", || async {
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(db("repairing a version"))?;
            // Lock the version's row first (module doc of `registry`), then look.
            sqlx::query("UPDATE versions SET model = model WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db("locking a version"))?;
            let row = sqlx::query(&format!("SELECT {COLUMNS} FROM versions WHERE id = $1"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("reading a version"))?
                .ok_or_else(|| RegistryError::UnknownVersion(id.to_string()))?;
            let mut version = version_from_row(&row)?;
            if version.digest_of(blob) != Some(from) {
                return Ok(Some(false));
            }
            if from != to {
                let (column, value) = match blob {
                    Blob::Mojo => ("model", to.to_string()),
                    Blob::Card => ("card", to.to_string()),
                    Blob::Plot(name) => {
                        version.provenance["plots"][name] = Value::String(to.to_string());
                        ("provenance", version.provenance.to_string())
                    }
                };
                sqlx::query(&format!("UPDATE versions SET {column} = $1 WHERE id = $2"))
                    .bind(value)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("repointing a version"))?;
            }
            let seq: i64 =
                sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM version_events WHERE version = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .and_then(|row| row.try_get(0))
                    .map_err(db("reading a version's history"))?;
            sqlx::query(
                "INSERT INTO version_events \
                 (version, seq, at, by_user, kind, blob, from_digest, to_digest, reason) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(id)
            .bind(seq + 1)
            .bind(super::now_rfc3339())
            .bind(by)
            .bind(if from == to { "restored" } else { "replaced" })
            .bind(blob.name())
            .bind(from)
            .bind(to)
            .bind(reason)
            .execute(&mut *tx)
            .await
            .map_err(db("recording a repair"))?;
            tx.commit().await.map_err(db("repairing a version"))?;
            Ok(Some(true))
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

pub(super) fn version_from_row(row: &AnyRow) -> Result<Version> {
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

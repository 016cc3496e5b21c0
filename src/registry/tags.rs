//! Tags: named pointers to versions, moved transactionally, with an append-only history.
//!
//! # Rollback is an undo stack
//! Each tag keeps a stack of the moves that can be undone. A move (`promote`, `conclude`, or a
//! `rollback --to` a version that is not on the stack) pushes itself. A plain `rollback` pops the
//! latest move still on the stack and returns the tag to that move's `from`; a second rollback
//! pops the one before, and so on, so rollbacks walk back through history instead of swapping
//! two versions back and forth. The first assignment of a tag cannot be undone (there is no
//! earlier version). `rollback --to V` pops moves until the tag is back at `V` when `V` is on
//! the stack; otherwise, if `V` held the tag at some point, it is a new (undoable) move.
//!
//! The stack lives in the history itself: each `move` event stores in `parent` the stack top it
//! was pushed on, each `undo` event stores the event it popped (the deepest one), and the tag's
//! row stores the current top. Invariant: the top event's `to` is the tag's current version.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::versions::{version_from_row, COLUMNS};
use super::{db, now_rfc3339, retry, Registry, RegistryError, Result, Version};

/// The result of a tag move. A no-op (the tag already pointed there) has `from == Some(to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagMove {
    pub tag: String,
    pub from: Option<String>,
    pub to: String,
}

impl TagMove {
    /// Whether the tag actually moved.
    pub fn changed(&self) -> bool {
        self.from.as_deref() != Some(self.to.as_str())
    }
}

/// One entry of a tag's history, as `history TAG --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagEvent {
    pub tag: String,
    pub from: Option<String>,
    pub to: String,
    /// RFC 3339, UTC.
    pub at: String,
    pub by: String,
    pub reason: String,
}

/// The tag's row, read after locking it.
struct Current {
    version: String,
    seq: i64,
    stack_top: Option<i64>,
}

/// A history row as the undo logic needs it.
struct Event {
    seq: i64,
    from: Option<String>,
    parent: Option<i64>,
}

/// Whether a version may take a tag: `Err` says why not (its MOJO or transform is missing or
/// damaged here). Checked inside the move's transaction, on the version it will actually point
/// at, before anything is written.
pub type Ready<'a> = dyn Fn(&Version) -> std::result::Result<(), String> + Sync + 'a;

/// Every version may take a tag (for callers that just stored and verified its MOJO).
pub fn always_ready(_version: &Version) -> std::result::Result<(), String> {
    Ok(())
}

/// What to write for a move.
struct Change<'a> {
    to: &'a str,
    by: &'a str,
    reason: &'a str,
    kind: &'static str,
    /// `move`: the stack top it is pushed on; `undo`: the deepest event it popped.
    parent: Option<i64>,
    /// The stack top after the change; `None` = this event itself (a push).
    new_top: Option<Option<i64>>,
}

impl Registry {
    /// Every tag and the version it points at.
    pub async fn tags(&self) -> Result<BTreeMap<String, String>> {
        let rows = sqlx::query("SELECT tag, version FROM tags ORDER BY tag")
            .fetch_all(&mut *self.conn().await?)
            .await
            .map_err(db("listing tags"))?;
        rows.iter()
            .map(|row| {
                let get = |e: sqlx::Error| RegistryError::Corrupt(format!("tag row: {e}"));
                Ok((row.try_get(0).map_err(get)?, row.try_get(1).map_err(get)?))
            })
            .collect()
    }

    /// Points `tag` at `to` (creating the tag), recording who and why. Moving a tag to the
    /// version it already has records nothing.
    pub async fn move_tag(&self, tag: &str, to: &str, by: &str, reason: &str) -> Result<TagMove> {
        self.move_tag_if(tag, to, by, reason, &always_ready).await
    }

    /// [`move_tag`](Registry::move_tag), refused ([`RegistryError::Unready`], nothing written)
    /// when `ready` says the version's MOJO is not usable.
    pub async fn move_tag_if(
        &self,
        tag: &str,
        to: &str,
        by: &str,
        reason: &str,
        ready: &Ready<'_>,
    ) -> Result<TagMove> {
        if !super::is_valid_tag(tag) {
            return Err(RegistryError::InvalidTag(tag.to_string()));
        }
        retry("moving a tag", || async {
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(db("moving a tag"))?;
            let current = lock_tag(&mut tx, tag).await?;
            let version = version_of(&mut tx, to).await?;
            if let Some(current) = &current {
                if current.version == to {
                    return Ok(Some(no_op(tag, to)));
                }
            }
            check_ready(ready, tag, &version)?;
            let change = Change {
                to,
                by,
                reason,
                kind: "move",
                parent: current.as_ref().and_then(|c| c.stack_top),
                new_top: None,
            };
            let Some(moved) = apply(&mut tx, tag, current, change).await? else {
                return Ok(None);
            };
            tx.commit().await.map_err(db("moving a tag"))?;
            Ok(Some(moved))
        })
        .await
    }

    /// Moves `tag` back: without `to`, undoes its latest move not yet undone; with `to`, returns
    /// it to that version, which must have held the tag before. See the module doc.
    pub async fn rollback(&self, tag: &str, to: Option<&str>, by: &str) -> Result<TagMove> {
        self.rollback_if(tag, to, by, &always_ready).await
    }

    /// [`rollback`](Registry::rollback), refused ([`RegistryError::Unready`], nothing written)
    /// when `ready` says the MOJO of the version it would return to is not usable.
    pub async fn rollback_if(
        &self,
        tag: &str,
        to: Option<&str>,
        by: &str,
        ready: &Ready<'_>,
    ) -> Result<TagMove> {
        retry("rolling back a tag", || async {
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(db("rolling back a tag"))?;
            let Some(current) = lock_tag(&mut tx, tag).await? else {
                return Err(RegistryError::UnknownTag(tag.to_string()));
            };
            let nothing = || RegistryError::NothingToRollBack {
                tag: tag.to_string(),
                current: current.version.clone(),
            };
            let (target, popped, version) = match to {
                None => {
                    let top = current.stack_top.ok_or_else(nothing)?;
                    let event = load_event(&mut tx, tag, top).await?;
                    let target = event.from.clone().ok_or_else(nothing)?;
                    let version = version_of(&mut tx, &target).await?;
                    (target, Some(event), version)
                }
                Some(wanted) => {
                    let version = version_of(&mut tx, wanted).await?;
                    if wanted == current.version {
                        return Ok(Some(no_op(tag, wanted)));
                    }
                    let mut next = current.stack_top;
                    let mut found = None;
                    while let Some(seq) = next {
                        let event = load_event(&mut tx, tag, seq).await?;
                        if event.from.as_deref() == Some(wanted) {
                            found = Some(event);
                            break;
                        }
                        next = event.parent;
                    }
                    if found.is_none() && !held(&mut tx, tag, wanted).await? {
                        return Err(RegistryError::NeverHeld {
                            tag: tag.to_string(),
                            version: wanted.to_string(),
                        });
                    }
                    (wanted.to_string(), found, version)
                }
            };
            check_ready(ready, tag, &version)?;
            let reason = format!("rollback to {target}");
            let change = match &popped {
                Some(event) => Change {
                    to: &target,
                    by,
                    reason: &reason,
                    kind: "undo",
                    parent: Some(event.seq),
                    new_top: Some(event.parent),
                },
                None => Change {
                    to: &target,
                    by,
                    reason: &reason,
                    kind: "move",
                    parent: current.stack_top,
                    new_top: None,
                },
            };
            let Some(moved) = apply(&mut tx, tag, Some(current), change).await? else {
                return Ok(None);
            };
            tx.commit().await.map_err(db("rolling back a tag"))?;
            Ok(Some(moved))
        })
        .await
    }

    /// Every move of `tag`, oldest first.
    pub async fn history(&self, tag: &str) -> Result<Vec<TagEvent>> {
        let rows = sqlx::query(
            "SELECT tag, from_version, to_version, moved_at, moved_by, reason \
             FROM tag_history WHERE tag = $1 ORDER BY seq",
        )
        .bind(tag)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db("reading a tag's history"))?;
        if rows.is_empty() {
            return Err(RegistryError::UnknownTag(tag.to_string()));
        }
        rows.iter().map(event_from_row).collect()
    }
}

fn no_op(tag: &str, version: &str) -> TagMove {
    TagMove {
        tag: tag.to_string(),
        from: Some(version.to_string()),
        to: version.to_string(),
    }
}

/// Locks the tag's row (a write first: see the module doc of `registry`) and reads it.
async fn lock_tag(tx: &mut Transaction<'_, Any>, tag: &str) -> Result<Option<Current>> {
    sqlx::query("UPDATE tags SET seq = seq WHERE tag = $1")
        .bind(tag)
        .execute(&mut **tx)
        .await
        .map_err(db("locking a tag"))?;
    let row = sqlx::query("SELECT version, seq, stack_top FROM tags WHERE tag = $1")
        .bind(tag)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db("reading a tag"))?;
    row.map(|row| {
        let get = |e: sqlx::Error| RegistryError::Corrupt(format!("tag `{tag}`: {e}"));
        Ok(Current {
            version: row.try_get(0).map_err(get)?,
            seq: row.try_get(1).map_err(get)?,
            stack_top: row.try_get(2).map_err(get)?,
        })
    })
    .transpose()
}

/// Version `id` (which must exist), read in the move's transaction.
async fn version_of(tx: &mut Transaction<'_, Any>, id: &str) -> Result<Version> {
    let found = sqlx::query(&format!("SELECT {COLUMNS} FROM versions WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db("looking up a version"))?;
    match found {
        Some(row) => version_from_row(&row),
        None => Err(RegistryError::UnknownVersion(id.to_string())),
    }
}

fn check_ready(ready: &Ready<'_>, tag: &str, version: &Version) -> Result<()> {
    ready(version).map_err(|error| RegistryError::Unready {
        tag: tag.to_string(),
        version: version.id.clone(),
        error,
    })
}

async fn load_event(tx: &mut Transaction<'_, Any>, tag: &str, seq: i64) -> Result<Event> {
    let row =
        sqlx::query("SELECT from_version, parent FROM tag_history WHERE tag = $1 AND seq = $2")
            .bind(tag)
            .bind(seq)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db("reading a tag's history"))?
            .ok_or_else(|| {
                RegistryError::Corrupt(format!("tag `{tag}`: history event {seq} is missing"))
            })?;
    let get = |e: sqlx::Error| RegistryError::Corrupt(format!("tag `{tag}` event {seq}: {e}"));
    Ok(Event {
        seq,
        from: row.try_get(0).map_err(get)?,
        parent: row.try_get(1).map_err(get)?,
    })
}

/// Whether `version` ever held `tag`.
async fn held(tx: &mut Transaction<'_, Any>, tag: &str, version: &str) -> Result<bool> {
    let row = sqlx::query(
        "SELECT seq FROM tag_history WHERE tag = $1 AND (to_version = $2 OR from_version = $2) LIMIT 1",
    )
    .bind(tag)
    .bind(version)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db("reading a tag's history"))?;
    Ok(row.is_some())
}

/// Writes a change: the tag's row (compare-and-set on `seq`) and its history event. `None`
/// means a concurrent move won; the caller retries.
async fn apply(
    tx: &mut Transaction<'_, Any>,
    tag: &str,
    current: Option<Current>,
    change: Change<'_>,
) -> Result<Option<TagMove>> {
    let seq = current.as_ref().map_or(1, |c| c.seq + 1);
    let top = change.new_top.unwrap_or(Some(seq));
    match &current {
        None => {
            // A concurrent first move fails here on the primary key and is retried.
            sqlx::query("INSERT INTO tags (tag, version, seq, stack_top) VALUES ($1, $2, $3, $4)")
                .bind(tag)
                .bind(change.to)
                .bind(seq)
                .bind(top)
                .execute(&mut **tx)
                .await
                .map_err(db("creating a tag"))?;
        }
        Some(current) => {
            let updated = sqlx::query(
                "UPDATE tags SET version = $1, seq = $2, stack_top = $3 WHERE tag = $4 AND seq = $5",
            )
            .bind(change.to)
            .bind(seq)
            .bind(top)
            .bind(tag)
            .bind(current.seq)
            .execute(&mut **tx)
            .await
            .map_err(db("moving a tag"))?;
            if updated.rows_affected() != 1 {
                return Ok(None);
            }
        }
    }
    let from = current.map(|c| c.version);
    sqlx::query(
        "INSERT INTO tag_history \
         (tag, seq, from_version, to_version, moved_at, moved_by, reason, kind, parent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tag)
    .bind(seq)
    .bind(from.clone())
    .bind(change.to)
    .bind(now_rfc3339())
    .bind(change.by)
    .bind(change.reason)
    .bind(change.kind)
    .bind(change.parent)
    .execute(&mut **tx)
    .await
    .map_err(db("recording a tag move"))?;
    Ok(Some(TagMove {
        tag: tag.to_string(),
        from,
        to: change.to.to_string(),
    }))
}

fn event_from_row(row: &AnyRow) -> Result<TagEvent> {
    let get = |e: sqlx::Error| RegistryError::Corrupt(format!("tag history row: {e}"));
    Ok(TagEvent {
        tag: row.try_get(0).map_err(get)?,
        from: row.try_get(1).map_err(get)?,
        to: row.try_get(2).map_err(get)?,
        at: row.try_get(3).map_err(get)?,
        by: row.try_get(4).map_err(get)?,
        reason: row.try_get(5).map_err(get)?,
    })
}

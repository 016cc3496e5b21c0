//! The SQLite state file: created atomically, and checked before it is used.
//!
//! # Why
//! A damaged file must never be taken for an empty registry (that loses the history and
//! re-registers every model) nor be written to. So:
//! - **Creation is atomic.** A missing database is created and migrated at a temporary path in
//!   the same directory, then linked into place (`link`, which never replaces an existing file;
//!   two processes racing to create it agree on the first). So the file at the real path always
//!   has mlbuild's schema, and an existing file without it — 0 bytes, random bytes, someone
//!   else's database — is damage, never "new".
//! - **An existing file is checked first**, on one connection, before the pool opens: its
//!   header, `PRAGMA quick_check` (every page of every b-tree read once: ~3 ms for 1 MB, ~50 ms
//!   for 80 MB) and the `schema_version` table. Damage is reported at once as
//!   [`RegistryError::Damaged`], naming the file; nothing is written to it (no WAL switch, no
//!   migration). A file exactly as an mlbuild writer left it (`state.db.verified` records its
//!   size, modification time and inode, and its schema version, after the writer closed it) is
//!   not checked again: only SQLite, through mlbuild, wrote it since its last check.
//! - A write-ahead log (`state.db-wal`) left without its database is damage too: a new database
//!   at that path would replay the old log into itself.
//!
//! In-memory databases and URLs whose `mode` is not `rwc` skip the creation step.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};

use super::{schema, RegistryError, Result};

/// The first 16 bytes of every SQLite 3 database.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// Length of the database header (the first page starts with it).
const HEADER_LEN: usize = 100;

/// The database file a `sqlite:` URL names, or `None` for an in-memory database.
pub(super) fn path_of(url: &str) -> Option<PathBuf> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

fn damaged(path: &Path, why: impl Into<String>) -> RegistryError {
    RegistryError::Damaged {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// The path of a database's write-ahead log.
fn wal_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Whether the database at `path` has a write-ahead log with frames in it: a writer is under
/// way, or one was killed after committing. A connection that only reads then opens the file
/// read-only (`mode=ro`): a read-write one, closed last, would checkpoint that log into the
/// file and delete it, changing `state.db` from a command that only reads. (Without such a log
/// a read-only open would leave empty `-wal` and `-shm` files behind, which a read-write
/// `query_only` connection removes, so that stays the default.)
pub(super) fn has_log(path: &Path) -> bool {
    fs::metadata(wal_of(path)).is_ok_and(|m| m.len() > 0)
}

/// What [`prepare`] found at the database's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// Created here, migrated to the current schema (not yet in WAL mode).
    Created,
    /// An existing, checked file at schema version `schema`; `wal`: its header says WAL mode.
    Existing { wal: bool, schema: i64 },
    /// Not there (and not to be created) or unreadable: the pool reports why when it opens.
    Unknown,
}

/// Makes sure the file at `path` is an mlbuild state database: creates it (atomically) when it
/// is missing and `create` is set, else checks it. `shown` is the URL for messages.
pub(super) async fn prepare(path: &Path, create: bool, shown: &str) -> Result<Found> {
    match fs::metadata(path) {
        Ok(meta) => check(path, &meta).await,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let wal = wal_of(path);
            if fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
                return Err(damaged(
                    path,
                    format!(
                        "is missing, but its write-ahead log `{}` is still there",
                        wal.display()
                    ),
                ));
            }
            create_atomically(path, shown).await?;
            Ok(Found::Created)
        }
        // Not found without `mode=rwc`, or unreadable: sqlx says why when it opens.
        Err(_) => Ok(Found::Unknown),
    }
}

/// Checks an existing file: its header, then (unless it is as mlbuild last left it, see
/// [`mark_verified`]) its pages and mlbuild's schema on a connection of its own.
async fn check(path: &Path, meta: &fs::Metadata) -> Result<Found> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    match fs::File::open(path) {
        Ok(file) => {
            if let Err(e) = file.take(HEADER_LEN as u64).read_to_end(&mut header) {
                return Err(damaged(path, format!("cannot be read: {e}")));
            }
        }
        // Permissions and the like: let the pool report it.
        Err(_) => return Ok(Found::Unknown),
    }
    if header.is_empty() {
        return Err(damaged(path, "is empty (0 bytes)"));
    }
    if header.len() < HEADER_LEN || &header[..16] != MAGIC {
        return Err(damaged(
            path,
            "is not a SQLite database (its header is wrong)",
        ));
    }
    // The file format's read and write versions are 2 in WAL mode.
    let wal = header[18] == 2 && header[19] == 2;
    if let Some(schema) = verified_schema(path, meta) {
        return Ok(Found::Existing { wal, schema });
    }
    let schema = check_pages(path).await?;
    Ok(Found::Existing { wal, schema })
}

/// `PRAGMA quick_check` and mlbuild's `schema_version`, on a connection of its own that writes
/// nothing. Returns the schema version.
async fn check_pages(path: &Path) -> Result<i64> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .read_only(has_log(path))
        .busy_timeout(Duration::from_millis(super::SQLITE_BUSY_TIMEOUT_MS));
    let classify = |e: sqlx::Error| match sqlite_damage(&e) {
        Some(why) => damaged(path, why),
        None => RegistryError::Open {
            url: path.display().to_string(),
            source: e,
        },
    };
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(classify)?;
    let verdict = async {
        let row = sqlx::query("PRAGMA quick_check(1)")
            .fetch_one(&mut conn)
            .await
            .map_err(classify)?;
        let first: String = row.try_get(0).map_err(classify)?;
        if first != "ok" {
            return Err(damaged(path, format!("fails SQLite's check ({first})")));
        }
        match sqlx::query("SELECT version FROM schema_version WHERE id = 1")
            .fetch_optional(&mut conn)
            .await
        {
            Ok(Some(row)) => row.try_get(0).map_err(classify),
            Ok(None) => Ok(0),
            Err(sqlx::Error::Database(e)) if e.message().contains("no such table") => Err(damaged(
                path,
                "is a SQLite database without mlbuild's tables (no `schema_version`)",
            )),
            Err(e) => Err(classify(e)),
        }
    }
    .await;
    let _ = conn.close().await;
    verdict
}

/// The file beside the database that says how mlbuild last left it.
fn marker_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".verified");
    PathBuf::from(name)
}

/// What identifies the file's state in the marker: size, modification time (ns) and inode.
fn stamp(meta: &fs::Metadata) -> String {
    let s = crate::store::FileStamp::of(meta);
    format!("{} {} {}", s.size, s.mtime_ns, s.inode)
}

/// The schema version recorded by [`mark_verified`] when the file is exactly as that left it
/// (same size, modification time and inode): such a file was checked, or created, and then
/// written only by mlbuild through SQLite, so its check is not repeated.
fn verified_schema(path: &Path, meta: &fs::Metadata) -> Option<i64> {
    let text = fs::read_to_string(marker_of(path)).ok()?;
    let (state, schema) = text.trim_end().rsplit_once(' ')?;
    (state == stamp(meta))
        .then(|| schema.parse().ok())
        .flatten()
}

/// Records, after a writer closed the database (its log folded into the file), the file's
/// state and schema version, so the next open skips the page check ([`verified_schema`]). A
/// failure to record only costs the next open its check.
pub(super) fn mark_verified(path: &Path, schema: i64) {
    let Ok(meta) = fs::metadata(path) else {
        return;
    };
    let marker = marker_of(path);
    let mut temp = marker.as_os_str().to_owned();
    temp.push(format!(".{}", std::process::id()));
    let temp = PathBuf::from(temp);
    if fs::write(&temp, format!("{} {schema}\n", stamp(&meta))).is_ok()
        && fs::rename(&temp, &marker).is_err()
    {
        let _ = fs::remove_file(&temp);
    }
}

/// "file is not a database" or "database disk image is malformed", as a reason.
fn sqlite_damage(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) if super::is_sqlite_damage(e) => {
            Some(format!("cannot be read by SQLite ({})", db.message()))
        }
        _ => None,
    }
}

/// Creates and migrates a new database at a temporary path beside `path`, then links it into
/// place. When another process got there first, its database is kept.
async fn create_atomically(path: &Path, shown: &str) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state.db".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let temp = dir.join(format!(".{name}.new-{}-{nanos}", std::process::id()));
    let cleanup = |temp: &Path| {
        let _ = fs::remove_file(temp);
        let mut journal = temp.as_os_str().to_owned();
        journal.push("-journal");
        let _ = fs::remove_file(PathBuf::from(journal));
    };
    let made = async {
        // The migrations go through the same portable code as every open.
        let any = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&super::sqlite_url(&temp))
            .await
            .map_err(|source| RegistryError::Open {
                url: shown.to_string(),
                source,
            })?;
        let migrated = match any.acquire().await {
            Ok(mut conn) => schema::migrate_once(&mut conn, shown).await,
            Err(e) => Err(super::db("creating the state database")(e)),
        };
        any.close().await;
        migrated?;
        if let Ok(file) = fs::File::open(&temp) {
            let _ = file.sync_all();
        }
        Ok::<(), RegistryError>(())
    }
    .await;
    if let Err(e) = made {
        cleanup(&temp);
        return Err(e);
    }
    let linked = fs::hard_link(&temp, path);
    let result = match linked {
        Ok(()) => Ok(()),
        // Another process created it meanwhile: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // A filesystem without hard links: a rename, if the path is still free.
        Err(_) if !path.exists() => fs::rename(&temp, path),
        Err(e) => Err(e),
    };
    cleanup(&temp);
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    result.map_err(|e| RegistryError::Open {
        url: shown.to_string(),
        source: sqlx::Error::Io(e),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{sqlite_url, Registry, RegistryError};
    use super::*;

    async fn open(path: &Path) -> std::result::Result<Registry, RegistryError> {
        Registry::open(&sqlite_url(path)).await
    }

    /// A registry with one run, closed: a real database to damage.
    async fn real_database(dir: &Path) -> PathBuf {
        let path = dir.join("state.db");
        let reg = open(&path).await.unwrap();
        reg.begin_run("p", "run", None).await.unwrap();
        reg.close().await;
        // Fold the write-ahead log into the file, as after any clean exit.
        let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
            .await
            .unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        path
    }

    /// Opening fails promptly with "damaged", names the file, and leaves its bytes alone.
    async fn assert_damaged(path: &Path) {
        let before = fs::read(path).unwrap();
        let started = std::time::Instant::now();
        let err = open(path)
            .await
            .expect_err("a damaged database must not open");
        let elapsed = started.elapsed();
        let text = err.to_string();
        assert!(
            matches!(err, RegistryError::Damaged { .. }),
            "{text} ({err:?})"
        );
        assert!(text.contains("the state database is damaged"), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        let hint = err.hint().unwrap();
        assert!(
            hint.contains(".recover") && hint.contains("mv ") && hint.contains("docs/registry.md"),
            "{hint}"
        );
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
        assert_eq!(fs::read(path).unwrap(), before, "the file was changed");
    }

    #[tokio::test]
    async fn random_bytes_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let bytes: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        fs::write(&path, bytes).unwrap();
        assert_damaged(&path).await;
    }

    #[tokio::test]
    async fn an_empty_file_is_damage_not_a_new_registry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        fs::write(&path, b"").unwrap();
        assert_damaged(&path).await;
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    }

    #[tokio::test]
    async fn a_truncated_file_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = real_database(dir.path()).await;
        let len = fs::metadata(&path).unwrap().len();
        assert!(len >= 8192, "{len}");
        let bytes = fs::read(&path).unwrap();
        // Half a page past the first: the schema page survives, the tables do not.
        fs::write(&path, &bytes[..4096 + 2048]).unwrap();
        assert_damaged(&path).await;
    }

    #[tokio::test]
    async fn a_valid_header_over_garbage_pages_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = real_database(dir.path()).await;
        let mut bytes = fs::read(&path).unwrap();
        for (i, b) in bytes.iter_mut().enumerate().skip(HEADER_LEN) {
            *b = (i.wrapping_mul(2654435761) >> 7) as u8;
        }
        assert_eq!(&bytes[..16], MAGIC);
        fs::write(&path, bytes).unwrap();
        assert_damaged(&path).await;
    }

    /// A writer's close records how it left the file; an open that finds it so trusts the
    /// record (here a doctored schema version shows it was read), and any change to the file
    /// brings the check back.
    #[tokio::test]
    async fn a_file_as_the_last_writer_left_it_is_not_checked_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = real_database(dir.path()).await;
        let reg = open(&path).await.unwrap();
        reg.close().await;
        let marker = marker_of(&path);
        let text = fs::read_to_string(&marker).expect("a writer's close marks the file");
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(
            verified_schema(&path, &meta),
            Some(schema::current()),
            "{text}"
        );
        // A read-only open writes no marker.
        fs::remove_file(&marker).unwrap();
        Registry::open_read(&sqlite_url(&path))
            .await
            .unwrap()
            .close()
            .await;
        assert!(!marker.exists());
        let (state, _) = text.trim_end().rsplit_once(' ').unwrap();
        fs::write(&marker, format!("{state} 99\n")).unwrap();
        let err = Registry::open_read(&sqlite_url(&path)).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::SchemaTooNew { found: 99, .. }),
            "{err:?}"
        );
        // The same bytes written again: another modification time, so a real check.
        let bytes = fs::read(&path).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        fs::write(&path, &bytes).unwrap();
        Registry::open_read(&sqlite_url(&path))
            .await
            .unwrap()
            .close()
            .await;
        // Garbage pages behind a good header, after a writer marked the file: found.
        let reg = open(&path).await.unwrap();
        reg.close().await;
        let mut bytes = fs::read(&path).unwrap();
        for (i, b) in bytes.iter_mut().enumerate().skip(HEADER_LEN) {
            *b = (i.wrapping_mul(2654435761) >> 7) as u8;
        }
        fs::write(&path, bytes).unwrap();
        assert_damaged(&path).await;
    }

    #[tokio::test]
    async fn someone_elses_database_is_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut conn = SqliteConnection::connect_with(
            &SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true),
        )
        .await
        .unwrap();
        sqlx::query("CREATE TABLE notes (t TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        assert_damaged(&path).await;
    }

    #[tokio::test]
    async fn a_log_without_its_database_is_not_replayed_into_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        fs::write(wal_of(&path), b"old log").unwrap();
        let err = open(&path).await.expect_err("must refuse");
        assert!(matches!(err, RegistryError::Damaged { .. }), "{err}");
        assert!(!path.exists(), "no database was created");
    }

    #[tokio::test]
    async fn a_new_database_appears_whole_and_racing_creators_share_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let opens: Vec<_> = (0..6)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { open(&path).await })
            })
            .collect();
        let mut ids = Vec::new();
        for o in opens {
            let reg = o.await.unwrap().unwrap();
            ids.push(reg.begin_run("p", "run", None).await.unwrap());
        }
        ids.sort();
        assert_eq!(ids, (1..=6).collect::<Vec<_>>(), "one database for all");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".new-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // And it opens again as an ordinary database.
        open(&path).await.unwrap();
    }
}

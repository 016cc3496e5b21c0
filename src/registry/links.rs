//! `models/<TAG>.zip`: the file of each tag, which holds the bytes of the version the tag names
//! (DESIGN.md §8).
//!
//! # Mechanism
//! Every command that moves a tag (`run`'s conclude, `promote`, `rollback`, `deploy`) takes
//! [`Lock`], an exclusive lock on `models/.lock`, *before* the tag's transaction and holds it
//! until the files are written by [`sync`]. Two such processes therefore serialise completely: a
//! move that commits first also writes its file first, and the later move overwrites it, so the
//! file never ends with the bytes of the move that lost the race. A process killed between the
//! commit and the rename leaves a stale (or missing) file; the next writer repairs it, since
//! [`sync`] checks the file of every tag, not only of the tag it moved.
//!
//! Commands that only read (`tags`, `show`, `serve`, `status`) call [`check`] and warn about a
//! stale file, naming the command that repairs it. They take a shared lock on `models/.lock`
//! when it exists (a writer's half-done move is never reported) and create nothing.
//!
//! A tag whose name in the registry is not a valid tag name (a damaged or hand-edited row,
//! say `../../x`) has no file: no path is built from it, readers warn, writers leave it alone.
//!
//! A file is fresh when its blake3 is the version's `model`. The digest comes from a stat cache
//! of its own (`v1/stat-models.json`, the store's [`StatCache`] rules: an unchanged file costs a
//! `stat`, a digest recorded within two seconds of the file's mtime is not trusted), so a fully cached `run` or
//! a `status` does not read and hash every tag's MOJO; only commands that write save it. When
//! the version's bytes are not in this store (a registry shared with another machine, a
//! quarantined blob), a stale file is removed rather than left holding another version's model,
//! and the caller warns.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fs4::fs_std::FileExt;

use super::{Registry, Result};
use crate::project::Paths;
use crate::report::Printer;
use crate::store::{write_atomic, RunLock, StatCache, Store, StoreError};

/// The lock file inside `models/`.
const LOCK_FILE: &str = ".lock";

/// Held by a command that moves tags, from before the move until the files follow it.
pub struct Lock {
    _held: RunLock,
}

/// Takes the exclusive lock of `models/` (creating the directory), calling `waiting` once if
/// another process holds it.
pub fn lock(models: &Path, waiting: impl FnOnce(&str)) -> Result<Lock, StoreError> {
    Ok(Lock {
        _held: RunLock::acquire(&models.join(LOCK_FILE), waiting)?,
    })
}

/// [`lock`], saying on `printer` when it has to wait.
pub fn lock_for(models: &Path, printer: &Printer) -> Result<Lock, StoreError> {
    lock(models, |holder| {
        printer.status(
            "Blocking",
            &format!(
                "waiting for another mlbuild process that is writing `models/` ({holder}; lock `{}`)",
                models.join(LOCK_FILE).display()
            ),
        )
    })
}

/// What a tag's file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Fresh,
    Missing,
    /// Other bytes: those of version `holds`, or of no registered version.
    Stale {
        holds: Option<String>,
    },
    /// The tag's name, as the registry holds it, is not a valid tag name (a damaged or
    /// hand-edited row): it has no file, and nothing is read, written or removed for it, since
    /// a name such as `../../x` would reach outside `models/`.
    BadName,
}

impl State {
    /// Whether [`sync`] writes the file (a missing or stale file of a well-named tag).
    fn needs_write(&self) -> bool {
        matches!(self, State::Missing | State::Stale { .. })
    }
}

/// A tag, the version it names and its file.
#[derive(Debug, Clone)]
pub struct Link {
    pub tag: String,
    pub version: String,
    /// blake3 of the version's MOJO: what the file must hold.
    pub model: String,
    /// `models/<TAG>.zip` (empty for [`State::BadName`], which has no file).
    pub path: PathBuf,
    pub state: State,
}

impl Link {
    /// `models/<TAG>.zip`, as messages name it.
    pub fn file(&self) -> String {
        format!("models/{}.zip", self.tag)
    }

    /// For a command that only reads: what is wrong, and the command that repairs it.
    pub fn warning(&self) -> Option<String> {
        let (tag, version, file) = (&self.tag, &self.version, self.file());
        let what = match &self.state {
            State::Fresh => return None,
            State::Missing => format!("`{file}` is missing"),
            State::Stale { holds: Some(other) } => {
                format!("`{file}` is stale: it holds version {other}")
            }
            State::Stale { holds: None } => {
                format!("`{file}` is stale: it holds the bytes of no registered version")
            }
            State::BadName => {
                return Some(format!(
                    "the registry holds a tag named `{}`, which is not a valid tag name ({}); its row is damaged, so it has no file in `models/` and no command moves it",
                    tag.escape_debug(),
                    super::TAG_RULE
                ))
            }
        };
        Some(format!(
            "{what}, but tag `{tag}` names version {version}; `mlbuild promote {tag} {version}` (or any `mlbuild run`) rewrites it"
        ))
    }
}

/// Every tag's link, as the files are now (their digests through `digests`).
async fn links(reg: &Registry, models: &Path, digests: &mut StatCache) -> Result<Vec<Link>> {
    let mut out = Vec::new();
    let mut versions = None;
    for (tag, version) in reg.tagged().await? {
        let id = version.id.clone();
        if !super::is_valid_tag(&tag) {
            out.push(Link {
                tag,
                version: id,
                model: version.model,
                path: PathBuf::new(),
                state: State::BadName,
            });
            continue;
        }
        let path = models.join(format!("{tag}.zip"));
        let digest = std::fs::metadata(&path).map(|meta| digests.digest_of(&path, &meta));
        let state = match digest {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::Missing,
            Err(_) | Ok(Err(_)) => State::Stale { holds: None },
            Ok(Ok(actual)) => {
                if actual == version.model {
                    State::Fresh
                } else {
                    if versions.is_none() {
                        versions = Some(reg.versions().await?);
                    }
                    let holds = versions
                        .iter()
                        .flatten()
                        .find(|v| v.model == actual)
                        .map(|v| v.id.clone());
                    State::Stale { holds }
                }
            }
        };
        out.push(Link {
            tag,
            version: id,
            model: version.model,
            path,
            state,
        });
    }
    Ok(out)
}

/// For commands that only read: every tag's link, read under a shared lock when a writer ever
/// took one (nothing is created; the stat cache is read, never saved).
pub async fn check(reg: &Registry, paths: &Paths) -> Result<Vec<Link>> {
    let mut digests = StatCache::load(&Store::existing(&paths.cache).models_stat_path());
    let _shared = shared_lock(&paths.models).await;
    links(reg, &paths.models, &mut digests).await
}

/// The shared lock of `models/`, when a writer ever created its lock file (`None`: none did).
async fn shared_lock(models: &Path) -> Option<File> {
    let file = File::open(models.join(LOCK_FILE)).ok()?;
    // A writer holds the lock for one tag move and a few file writes.
    while !FileExt::try_lock_shared(&file).unwrap_or(true) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Some(file)
}

/// Warns about every stale file (for commands that only read), among the tags `only` keeps.
pub async fn warn_stale(
    printer: &Printer,
    reg: &Registry,
    paths: &Paths,
    only: impl Fn(&Link) -> bool,
) -> Result<()> {
    for link in check(reg, paths).await?.iter().filter(|l| only(l)) {
        if let Some(w) = link.warning() {
            printer.warn(&w);
        }
    }
    Ok(())
}

/// What [`sync`] did to a file that was not fresh.
#[derive(Debug)]
pub enum Outcome {
    /// Now holds the version's bytes.
    Wrote,
    /// The version's bytes are not available here; a stale file was removed.
    Unavailable { error: String, removed: bool },
    /// Nothing: the tag's name is not valid ([`State::BadName`]); the caller warns.
    Skipped,
}

/// The links [`sync`] leaves alone and reports: those of tags with a bad name.
fn skipped(all: &[Link]) -> Vec<(Link, Outcome)> {
    all.iter()
        .filter(|l| l.state == State::BadName)
        .map(|l| (l.clone(), Outcome::Skipped))
        .collect()
}

/// Makes every tag's file hold its version's bytes (the caller holds [`Lock`], taken before it
/// moved any tag). Returns what it changed; fresh files are left alone.
pub async fn sync(
    reg: &Registry,
    store: &Store,
    models: &Path,
    lock: &Lock,
) -> anyhow::Result<Vec<(Link, Outcome)>> {
    Ok(sync_read(reg, store, models, lock).await?.1)
}

/// Removes the temporary files of `models/` (`.tmp…`, as [`write_atomic`] names them): with the
/// exclusive lock held no writer is between its write and its rename, so any there is left by
/// one that was killed.
fn sweep_temp_files(models: &Path) {
    let Ok(entries) = std::fs::read_dir(models) else {
        return;
    };
    for entry in entries.flatten() {
        let temp = entry.file_name().to_string_lossy().starts_with(".tmp");
        if temp && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// [`sync`], also returning every tag's link as it was read (before any rewrite).
pub async fn sync_read(
    reg: &Registry,
    store: &Store,
    models: &Path,
    _lock: &Lock,
) -> anyhow::Result<(Vec<Link>, Vec<(Link, Outcome)>)> {
    sweep_temp_files(models);
    let mut digests = StatCache::load(&store.models_stat_path());
    let all = links(reg, models, &mut digests).await?;
    // What it learnt of the files as they were; a rewritten file is hashed at the next check.
    digests.save()?;
    let mut out = skipped(&all);
    for link in all.iter().filter(|l| l.state.needs_write()).cloned() {
        let written = store
            .read_verified(&link.model)
            .and_then(|bytes| write_atomic(&link.path, &bytes));
        let outcome = match written {
            Ok(()) => Outcome::Wrote,
            Err(e) => {
                let removed =
                    link.state != State::Missing && std::fs::remove_file(&link.path).is_ok();
                Outcome::Unavailable {
                    // With its cause: "cannot replace `models/prod.zip`: Is a directory".
                    error: format!("{:#}", anyhow::Error::new(e)),
                    removed,
                }
            }
        };
        out.push((link, outcome));
    }
    Ok((all, out))
}

/// For a command that moved no tag (a replayed conclude): every tag's file made to hold its
/// version's bytes, as [`sync`] does, but the files are first checked as [`check`] does (under
/// the shared lock, creating nothing), and only when one is not fresh is the exclusive lock
/// taken and [`sync`] run (which checks again under it). So a no-op run writes nothing in
/// `models/`. Returns every tag's link as read, and what was changed.
pub async fn sync_if_stale(
    reg: &Registry,
    store: &Store,
    models: &Path,
    printer: &Printer,
) -> Result<(Vec<Link>, Vec<(Link, Outcome)>), anyhow::Error> {
    let mut digests = StatCache::load(&store.models_stat_path());
    let checked = {
        let _shared = shared_lock(models).await;
        links(reg, models, &mut digests).await?
    };
    // A run writes: what it hashed is remembered (nothing when every stat matched).
    digests.save()?;
    if !checked.iter().any(|l| l.state.needs_write()) {
        let skipped = skipped(&checked);
        return Ok((checked, skipped));
    }
    let lock = lock_for(models, printer)?;
    sync_read(reg, store, models, &lock).await
}

/// Every tag of `links`, with the version it names.
pub fn tags_of(links: &[Link]) -> std::collections::BTreeMap<String, String> {
    links
        .iter()
        .map(|l| (l.tag.clone(), l.version.clone()))
        .collect()
}

/// Prints what [`sync`] did: files of the tags in `moved` were expected to change and are not
/// mentioned; any other rewrite is a repair.
pub fn report(printer: &Printer, synced: &[(Link, Outcome)], moved: &[&str]) {
    for (link, outcome) in synced {
        match outcome {
            Outcome::Wrote if moved.contains(&link.tag.as_str()) => {}
            Outcome::Wrote => printer.status(
                "Repaired",
                &format!(
                    "`{}` ({}); it now holds version {} (tag `{}`)",
                    link.file(),
                    match &link.state {
                        State::Missing => "it was missing".to_string(),
                        State::Stale { holds: Some(v) } => format!("it held version {v}"),
                        _ => "it held other bytes".to_string(),
                    },
                    link.version,
                    link.tag
                ),
            ),
            Outcome::Skipped => {
                if let Some(w) = link.warning() {
                    printer.warn(&w)
                }
            }
            Outcome::Unavailable { error, removed } => printer.warn(&format!(
                "`{}` cannot hold version {} (tag `{}`): {error}{}; `mlbuild cache verify` says how to repair the version",
                link.file(),
                link.version,
                link.tag,
                if *removed {
                    "; the stale file was removed"
                } else {
                    ""
                }
            )),
        }
    }
}

/// How a tag moves: to a named version (`promote`) or back (`rollback`, to its previous
/// version or to a named one).
#[derive(Debug, Clone)]
pub enum Move {
    Promote { version: String, reason: String },
    Rollback { to: Option<String> },
}

/// Moves `tag` as `promote` and `rollback` do, from the CLI or the UI alike: the lock of
/// `models/` is taken first, the move is committed (recorded in the tag's history, by `by`),
/// then `models/TAG.zip` and any other stale link are synced under that lock.
pub async fn move_tag(
    reg: &Registry,
    store: &Store,
    models: &Path,
    printer: &Printer,
    tag: &str,
    how: Move,
    by: &str,
) -> anyhow::Result<(super::TagMove, Vec<(Link, Outcome)>)> {
    let lock = lock_for(models, printer)?;
    // A tag never moves to a version it could not serve: its MOJO (the tag's file) and its
    // transform (what predict and serve replay) must be whole here, or the tag would be left
    // unservable and `models/TAG.zip` removed.
    let ready = |version: &super::Version| {
        store
            .verified_path(&version.model)
            .map_err(|e| format!("its MOJO: {e}"))?;
        if let Some(transform) = version.provenance["transform"].as_str() {
            crate::transform::replay::Replay::stored(store, transform)
                .map_err(|e| format!("its transform: {e:#}"))?;
        }
        Ok(())
    };
    let moved = match how {
        Move::Promote { version, reason } => {
            reg.move_tag_if(tag, &version, by, &reason, &ready).await?
        }
        Move::Rollback { to } => reg.rollback_if(tag, to.as_deref(), by, &ready).await?,
    };
    crate::faultpoint::hit("tags.after-commit");
    let synced = sync(reg, store, models, &lock).await?;
    drop(lock);
    Ok((moved, synced))
}

//! `mlbuild cache push | pull | verify | gc`: the store as a whole.
//!
//! - `push` uploads the entries `ml.lock` names (blobs first, entry last) to the remote cache;
//!   `pull` restores them from it, each blob verified. A CI job can `pull` once, or let
//!   `run` restore step by step.
//! - `verify` re-hashes every blob (a corrupt one is moved to `v1/quarantine/` and reported),
//!   checks that every entry's outputs exist, and names every registered version whose MOJO,
//!   card or plot bytes are corrupt, or missing while a tag points at it, with the command that
//!   repairs it; any problem makes it exit 1.
//! - `gc` keeps what is reachable: the blobs of the versions tags point at (MOJO, card and the
//!   digests in their provenance), the entries of the keys in `ml.lock` and of the steps of the
//!   last `[cache] keep_runs` runs, and every blob those entries name; plus digests the stat
//!   cache and source memos refer to. Everything else in `ac/` and `cas/` goes, `tmp/` files
//!   older than an hour, and quarantined blobs older than [`QUARANTINE_DAYS`] days. It holds the run lock throughout, so no run writes meanwhile, and
//!   leaves younger `tmp/` files alone in any case. Profiles are small and kept.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Result;
use serde_json::Value;

use super::cli::CacheCommand;
use crate::config;
use crate::error::{Diagnostic, Exit};
use crate::project::Paths;
use crate::registry::Registry;
use crate::report::Printer;
use crate::store::lockfile::Lockfile;
use crate::store::remote::{self, is_digest, Remote, Restore};
use crate::store::{hash_file, AcLookup, ActionEntry, Store, QUARANTINE, QUARANTINE_DAYS};

/// `tmp/` files younger than this may belong to a writer; gc leaves them.
const TMP_GRACE: Duration = Duration::from_secs(3600);

pub(crate) async fn run(dir: &Path, printer: &Printer, cmd: CacheCommand) -> Result<Exit> {
    let paths = Paths::resolve(dir);
    let store = Store::open(&paths.cache)?;
    match cmd {
        CacheCommand::Push => push(&paths, &store, printer).await,
        CacheCommand::Pull => pull(&paths, &store, printer).await,
        CacheCommand::Verify => verify(&paths, &store, printer).await,
        CacheCommand::Gc { dry_run } => gc(&paths, &store, printer, dry_run).await,
    }
}

fn lock_keys(paths: &Paths) -> Result<Vec<(String, String)>> {
    let lock = Lockfile::load(&paths.lockfile)?.ok_or_else(|| {
        Diagnostic::new(format!(
            "`{}` does not exist: push and pull move the entries it names",
            paths.lockfile.display()
        ))
        .hint("run `mlbuild run` once to write it")
    })?;
    Ok(lock
        .steps
        .iter()
        .map(|s| {
            let name = if s.attempt == 1 {
                s.step.clone()
            } else {
                format!("{}#{}", s.step, s.attempt)
            };
            (name, s.key.clone())
        })
        .collect())
}

fn remote_for(paths: &Paths) -> Result<std::sync::Arc<Remote>> {
    let loaded = config::load(&paths.project, &[])?;
    remote::configured(&loaded.config.cache)?.ok_or_else(|| {
        Diagnostic::new("no remote cache is configured")
            .hint(format!(
                "set `{}` or `[cache] remote = \"http://…\"` in ml.toml",
                remote::URL_VAR
            ))
            .into()
    })
}

fn print_warnings(printer: &Printer, remote: &Remote) {
    for w in remote.take_warnings() {
        printer.warn(&w);
    }
}

async fn push(paths: &Paths, store: &Store, printer: &Printer) -> Result<Exit> {
    let remote = remote_for(paths)?;
    if remote.read_only() {
        return Err(Diagnostic::new(format!(
            "the remote cache `{}` is read-only here",
            remote.shown()
        ))
        .hint("unset `[cache] read_only` / `MLBUILD_REMOTE_READ_ONLY` to push")
        .into());
    }
    let (mut pushed, mut problems) = (0, Vec::new());
    for (step, key) in lock_keys(paths)? {
        match store.ac_get(&key) {
            AcLookup::Hit(entry) => {
                if remote.upload(store, &entry).await {
                    pushed += 1;
                } else {
                    problems.push(format!("{step}: not uploaded"));
                }
            }
            _ => problems.push(format!("{step}: no complete local entry for {key}")),
        }
        print_warnings(printer, &remote);
    }
    printer.status(
        "Pushed",
        &format!("{pushed} entries to `{}`", remote.shown()),
    );
    if problems.is_empty() {
        return Ok(Exit::Ok);
    }
    Err(Diagnostic::new(format!(
        "{} of the entries in ml.lock were not pushed: {}",
        problems.len(),
        problems.join("; ")
    ))
    .hint("run `mlbuild run` so that every step of ml.lock is in the local cache, then push again")
    .into())
}

async fn pull(paths: &Paths, store: &Store, printer: &Printer) -> Result<Exit> {
    let remote = remote_for(paths)?;
    let _lock = super::context::lock_runs(store, printer)?;
    let (mut pulled, mut local, mut missing) = (0, 0, Vec::new());
    for (step, key) in lock_keys(paths)? {
        if matches!(store.ac_get(&key), AcLookup::Hit(_)) {
            local += 1;
            continue;
        }
        match remote.restore(store, &key).await {
            Restore::Restored => pulled += 1,
            Restore::Miss => missing.push(step),
        }
        print_warnings(printer, &remote);
    }
    printer.status(
        "Pulled",
        &format!(
            "{pulled} entries from `{}` ({local} already local)",
            remote.shown()
        ),
    );
    if missing.is_empty() {
        return Ok(Exit::Ok);
    }
    Err(Diagnostic::new(format!(
        "the remote cache lacks (or could not give) {}: {}",
        if missing.len() == 1 { "one step" } else { "steps" },
        missing.join(", ")
    ))
    .hint("`mlbuild run` reruns what is missing; `mlbuild cache push` on a machine that has it uploads it")
    .into())
}

/// Every file directly inside `dir/*/` (the CAS fan-out) or `dir` itself.
fn files(dir: &Path, nested: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(read) = fs::read_dir(dir) else {
        return out;
    };
    for entry in read.flatten() {
        let path = entry.path();
        if nested && path.is_dir() {
            out.extend(files(&path, false));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn verify(paths: &Paths, store: &Store, printer: &Printer) -> Result<Exit> {
    let (mut blobs, mut bytes, mut problems) = (0u64, 0u64, Vec::new());
    for path in files(&store.root().join("cas"), true) {
        let name = name_of(&path);
        blobs += 1;
        bytes += path.metadata().map(|m| m.len()).unwrap_or(0);
        let actual = hash_file(&path)?;
        if actual != name {
            let moved = store.quarantine(&name, &actual);
            problems.push(format!("{moved}"));
        }
    }
    let mut entries = 0u64;
    for path in files(&store.root().join("ac"), false) {
        let Some(key) = name_of(&path).strip_suffix(".json").map(str::to_string) else {
            continue;
        };
        entries += 1;
        match store.ac_get(&key) {
            AcLookup::Hit(_) | AcLookup::Miss => {}
            AcLookup::Corrupt => problems.push(format!(
                "entry {key} is damaged (it does not parse, or its seal does not match its content)"
            )),
            AcLookup::OutputMissing(d) => {
                problems.push(format!("entry {key} names blob {d}, which is missing"))
            }
        }
    }
    let versions = damaged_versions(paths, store).await?;
    let damaged = versions.problems.len();
    problems.extend(versions.problems);
    for p in &problems {
        printer.data(p);
    }
    if versions.collected > 0 {
        printer.status(
            "Note",
            &format!(
                "{} untagged version{} {} no MOJO, card or plot in this store (`cache gc` collects them; not a problem)",
                versions.collected,
                if versions.collected == 1 { "" } else { "s" },
                if versions.collected == 1 { "has" } else { "have" },
            ),
        );
    }
    printer.status(
        "Verified",
        &format!(
            "{blobs} blobs ({}), {entries} entries and {} version{}: {} problem{}",
            human_bytes(bytes),
            versions.checked,
            if versions.checked == 1 { "" } else { "s" },
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        ),
    );
    if problems.is_empty() {
        return Ok(Exit::Ok);
    }
    Err(Diagnostic::new(format!(
        "the store has {} problem{}{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        match damaged {
            0 => String::new(),
            1 => "; one version cannot be served or shown whole".into(),
            n => format!("; {n} versions cannot be served or shown whole"),
        }
    ))
    .hint("run `mlbuild run`: steps whose outputs are gone rerun (or are restored from the remote cache) and the version they conclude is repaired; each damaged version above names its own repair")
    .into())
}

/// What [`damaged_versions`] found.
struct VersionCheck {
    checked: usize,
    /// One line per damaged blob of a version, with the command that repairs it.
    problems: Vec<String>,
    /// Untagged versions whose blobs are simply gone (collected by `cache gc`).
    collected: usize,
}

/// Every registered version whose MOJO, card or plots are not in this store: a problem when
/// the blob was found corrupt (it is in the quarantine) or a tag points at the version;
/// otherwise `cache gc` collected it, by design.
async fn damaged_versions(paths: &Paths, store: &Store) -> Result<VersionCheck> {
    let registry = Registry::open_read(&paths.state_url).await?;
    let tags = registry.tags().await?;
    let versions = registry.versions().await?;
    registry.close().await;
    // The canonical MOJO the committed `ml.lock` concludes: `mlbuild run` rebuilds that one.
    let locked = Lockfile::load(&paths.lockfile)
        .ok()
        .flatten()
        .and_then(|l| {
            l.entry("conclude", 1)
                .and_then(|e| e.outputs.get("mojo").cloned())
        });
    let mut out = VersionCheck {
        checked: versions.len(),
        problems: Vec::new(),
        collected: 0,
    };
    for v in &versions {
        let tagged: Vec<&str> = tags
            .iter()
            .filter(|(_, id)| **id == v.id)
            .map(|(t, _)| t.as_str())
            .collect();
        let mut gone = false;
        for (blob, digest) in v.blobs() {
            if store.contains(&digest) {
                continue;
            }
            let corrupt = store.quarantined(&digest);
            if !corrupt && tagged.is_empty() {
                gone = true;
                continue;
            }
            out.problems.push(format!(
                "version {}{}: its {} {} is {}; repair: {}",
                v.id,
                if tagged.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", tagged.join(", "))
                },
                blob.describe(),
                &digest[..12.min(digest.len())],
                if corrupt {
                    format!(
                        "corrupt (moved to `{}`)",
                        store.quarantine_path(&digest).display()
                    )
                } else {
                    "missing".to_string()
                },
                repair_command(v, locked.as_deref(), tagged.first().copied()),
            ));
        }
        if gone {
            out.collected += 1;
        }
    }
    Ok(out)
}

/// The command that puts a version's bytes back.
fn repair_command(v: &crate::registry::Version, locked: Option<&str>, tag: Option<&str>) -> String {
    if locked == Some(v.canonical.as_str()) {
        return "`mlbuild run` (it rebuilds the model, or restores it from the remote cache)"
            .into();
    }
    if v.provenance["source"] == "deploy" {
        return format!(
            "`mlbuild deploy --mojo {} --tag {}` with the same MOJO file",
            v.provenance["file"].as_str().unwrap_or("FILE.zip"),
            tag.unwrap_or("TAG")
        );
    }
    match v.provenance["git_commit"].as_str() {
        Some(commit) => {
            format!("`mlbuild run` with the configuration that trained it (git commit {commit})")
        }
        None => "`mlbuild run` with the configuration that trained it".into(),
    }
}

/// Every 64-hex string anywhere in `v`.
fn digests_in(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) if is_digest(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|v| digests_in(v, out)),
        Value::Object(o) => o.values().for_each(|v| digests_in(v, out)),
        _ => {}
    }
}

/// Keys and blobs that gc keeps.
struct Reachable {
    keys: BTreeSet<String>,
    blobs: BTreeSet<String>,
}

async fn reachable(paths: &Paths, store: &Store, keep_runs: u32) -> Result<Reachable> {
    let mut keys = BTreeSet::new();
    let mut blobs = BTreeSet::new();
    if let Some(lock) = Lockfile::load(&paths.lockfile)? {
        keys.extend(lock.steps.into_iter().map(|s| s.key));
    }
    let registry = Registry::open(&paths.state_url).await?;
    for run in registry.recent_runs(keep_runs).await? {
        keys.extend(registry.steps(run.id).await?.into_iter().map(|s| s.key));
    }
    for id in registry.tags().await?.values() {
        if let Some(v) = registry.get(id).await? {
            blobs.insert(v.model.clone());
            blobs.insert(v.card.clone());
            digests_in(&v.provenance, &mut blobs);
        }
    }
    registry.close().await;
    for key in &keys {
        let path = store.root().join("ac").join(format!("{key}.json"));
        if let Ok(text) = fs::read_to_string(&path) {
            if let Ok(entry) = serde_json::from_str::<ActionEntry>(&text) {
                blobs.extend(entry.outputs.into_values());
            }
        }
    }
    // The stat cache and the source memos name snapshots a later run may rely on.
    let mut memos = vec![store.root().join("stat.json")];
    memos.extend(files(&store.root().join("sources"), false));
    for memo in memos {
        if let Ok(bytes) = fs::read(&memo) {
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                digests_in(&v, &mut blobs);
            }
        }
    }
    Ok(Reachable { keys, blobs })
}

async fn gc(paths: &Paths, store: &Store, printer: &Printer, dry_run: bool) -> Result<Exit> {
    let keep_runs = match config::load(&paths.project, &[]) {
        Ok(loaded) => loaded.config.cache.keep_runs,
        Err(config::ConfigError::NotFound { .. }) => config::Cache::default().keep_runs,
        Err(e) => return Err(e.into()),
    };
    let _lock = super::context::lock_runs(store, printer)?;
    let keep = reachable(paths, store, keep_runs).await?;
    let mut doomed: Vec<(String, PathBuf, u64)> = Vec::new();
    for path in files(&store.root().join("ac"), false) {
        let name = name_of(&path);
        let key = name.strip_suffix(".json").unwrap_or(&name);
        if !keep.keys.contains(key) {
            doomed.push((format!("entry {key}"), path.clone(), size(&path)));
        }
    }
    for path in files(&store.root().join("cas"), true) {
        let name = name_of(&path);
        if !keep.blobs.contains(&name) {
            doomed.push((format!("blob {name}"), path.clone(), size(&path)));
        }
    }
    let now = SystemTime::now();
    for path in files(&store.root().join("tmp"), false) {
        let old = path
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > TMP_GRACE);
        if old {
            doomed.push((format!("tmp {}", name_of(&path)), path.clone(), size(&path)));
        }
    }
    let keep_quarantine = Duration::from_secs(QUARANTINE_DAYS * 24 * 3600);
    for path in files(&store.root().join(QUARANTINE), false) {
        let old = path
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > keep_quarantine);
        if old {
            doomed.push((
                format!("quarantined {}", name_of(&path)),
                path.clone(),
                size(&path),
            ));
        }
    }
    let total: u64 = doomed.iter().map(|d| d.2).sum();
    if dry_run {
        for (what, _, bytes) in &doomed {
            printer.data(&format!("would delete {what} ({})", human_bytes(*bytes)));
        }
        printer.status(
            "Would free",
            &format!("{} in {} files (dry run)", human_bytes(total), doomed.len()),
        );
        return Ok(Exit::Ok);
    }
    let mut freed = 0;
    for (_, path, bytes) in &doomed {
        match fs::remove_file(path) {
            Ok(()) => freed += bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => printer.warn(&format!("cannot delete `{}`: {e}", path.display())),
        }
    }
    printer.status(
        "Collected",
        &format!(
            "{} in {} files; kept {} entries and {} blobs",
            human_bytes(freed),
            doomed.len(),
            keep.keys.len(),
            keep.blobs.len()
        ),
    );
    Ok(Exit::Ok)
}

fn size(path: &Path) -> u64 {
    path.metadata().map(|m| m.len()).unwrap_or(0)
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_found_anywhere_in_json() {
        let d = "a".repeat(64);
        let v = serde_json::json!({"x": [{"y": d}], "z": "short", "n": 1});
        let mut out = BTreeSet::new();
        digests_in(&v, &mut out);
        assert_eq!(out, BTreeSet::from([d]));
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}

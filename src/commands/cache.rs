//! `mlbuild cache push | pull | verify | gc`: the store as a whole.
//!
//! - `push` uploads the entries `ml.lock` names (blobs first, entry last) to the remote cache;
//!   `pull` restores them from it, each blob verified. A CI job can `pull` once, or let
//!   `run` restore step by step.
//! - `verify` re-hashes every blob (a corrupt one is moved to `v1/quarantine/` and reported),
//!   checks that every entry's outputs exist, and names every registered version whose MOJO,
//!   card or plot bytes are corrupt, or missing while a tag points at it, with the command that
//!   repairs it; any problem makes it exit 1.
//! - `gc` keeps what is reachable: the blobs of the versions tags point at (MOJO, card, the
//!   digests in their provenance and those their transform names), the entries of the keys in `ml.lock` and of the steps of the
//!   last `[cache] keep_runs` runs, and every blob those entries name; plus digests the stat
//!   cache and source memos refer to ([`crate::store::maintenance`] has the rules). It holds
//!   the run lock throughout, so no run writes meanwhile, and the lock of `models/`, so no tag
//!   moves between reading the roots and the last delete. Profiles are small and kept.

use futures_util::stream::{self, StreamExt};
use std::path::Path;
use std::time::SystemTime;

use anyhow::Result;

use super::cli::CacheCommand;
use crate::config;
use crate::error::{Diagnostic, Exit};
use crate::project::Paths;
use crate::registry::{integrity, Registry};
use crate::report::Printer;
use crate::store::lockfile::Lockfile;
use crate::store::maintenance::{self, Doomed, Verified};
use crate::store::remote::{self, Remote, Restore};
use crate::store::{AcLookup, Store};

pub(crate) async fn run(dir: &Path, printer: &Printer, cmd: CacheCommand) -> Result<Exit> {
    let paths = Paths::resolve(dir);
    // What only reads (and quarantines what it finds corrupt) creates no bucket.
    let store = match cmd {
        CacheCommand::Verify | CacheCommand::Gc { dry_run: true } => Store::existing(&paths.cache),
        _ => Store::open(&paths.cache)?,
    };
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
    Ok(lock.named_keys())
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

/// How many entries `cache push` and `cache pull` transfer at once.
const TRANSFERS: usize = 4;

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
    let remote_ref = &remote;
    // A few entries at a time, each blob streamed from disk.
    let outcomes: Vec<Result<(), String>> = stream::iter(lock_keys(paths)?)
        .map(|(step, key)| async move {
            match store.ac_get(&key) {
                AcLookup::Hit(entry) if remote_ref.upload(store, &entry).await => Ok(()),
                AcLookup::Hit(_) => Err(format!("{step}: not uploaded")),
                _ => Err(format!("{step}: no complete local entry for {key}")),
            }
        })
        .buffer_unordered(TRANSFERS)
        .collect()
        .await;
    print_warnings(printer, &remote);
    let pushed = outcomes.iter().filter(|o| o.is_ok()).count();
    let mut problems: Vec<String> = outcomes.into_iter().filter_map(Result::err).collect();
    problems.sort();
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
    let remote_ref = &remote;
    // `None`: already local; `Some(Err(step))`: the remote lacks it.
    let outcomes: Vec<Option<Result<(), String>>> = stream::iter(lock_keys(paths)?)
        .map(|(step, key)| async move {
            if matches!(store.ac_get(&key), AcLookup::Hit(_)) {
                return None;
            }
            Some(match remote_ref.restore(store, &key).await {
                Restore::Restored => Ok(()),
                Restore::Miss => Err(step),
            })
        })
        .buffer_unordered(TRANSFERS)
        .collect()
        .await;
    print_warnings(printer, &remote);
    let local = outcomes.iter().filter(|o| o.is_none()).count();
    let pulled = outcomes
        .iter()
        .filter(|o| matches!(o, Some(Ok(()))))
        .count();
    let mut missing: Vec<String> = outcomes
        .into_iter()
        .flatten()
        .filter_map(Result::err)
        .collect();
    missing.sort();
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

async fn verify(paths: &Paths, store: &Store, printer: &Printer) -> Result<Exit> {
    let Verified {
        blobs,
        bytes,
        entries,
        mut problems,
        blob_problems,
    } = maintenance::verify(store)?;
    let versions = {
        let registry = Registry::open_read(&paths.state_url).await?;
        // The canonical MOJO the committed `ml.lock` concludes: `mlbuild run` rebuilds that one.
        let locked = Lockfile::load(&paths.lockfile)
            .ok()
            .flatten()
            .and_then(|l| {
                l.entry("conclude", 1)
                    .and_then(|e| e.outputs.get("mojo").cloned())
            });
        let check = integrity::damaged_versions(&registry, store, locked.as_deref()).await;
        registry.close().await;
        check?
    };
    let entry_problems = problems.len() - blob_problems;
    let damaged = versions.damaged;
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
    // Each kind counted apart: a version with two damaged blobs is one version, two problems.
    let mut found: Vec<String> = Vec::new();
    for (n, one, many) in [
        (blob_problems, "corrupt blob", "corrupt blobs"),
        (entry_problems, "damaged entry", "damaged entries"),
        (damaged, "damaged version", "damaged versions"),
    ] {
        match n {
            0 => {}
            1 => found.push(format!("1 {one}")),
            n => found.push(format!("{n} {many}")),
        }
    }
    printer.status(
        "Verified",
        &format!(
            "{blobs} blobs ({}), {entries} entries and {} version{}: {}",
            crate::report::human_bytes(bytes),
            versions.checked,
            if versions.checked == 1 { "" } else { "s" },
            if found.is_empty() {
                "no problems".to_string()
            } else {
                found.join(", ")
            }
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

async fn gc(paths: &Paths, store: &Store, printer: &Printer, dry_run: bool) -> Result<Exit> {
    let (keep_runs, exchange) = match config::load(&paths.project, &[]) {
        Ok(loaded) => (
            loaded.config.cache.keep_runs,
            crate::h2o::EngineConfig::resolve(paths, &loaded.config).exchange_dir,
        ),
        Err(config::ConfigError::NotFound { .. }) => (config::Cache::default().keep_runs, None),
        Err(e) => return Err(e.into()),
    };
    // Tags move under the lock of `models/` without the run lock (`promote`, `rollback`,
    // `deploy`): held from reading the tagged versions until the last delete, so a version
    // that takes a tag meanwhile keeps its blobs. A dry run deletes nothing, so it takes no
    // lock and opens the registry read-only: it creates nothing.
    let _locks = match dry_run {
        false => Some((
            super::context::lock_runs(store, printer)?,
            crate::registry::links::lock_for(&paths.models, printer)?,
        )),
        true => None,
    };
    let mut keep = {
        let registry = match dry_run {
            false => Registry::open(&paths.state_url).await?,
            true => Registry::open_read(&paths.state_url).await?,
        };
        let roots = integrity::gc_roots(&registry, store, keep_runs).await;
        registry.close().await;
        roots?
    };
    if let Some(lock) = Lockfile::load(&paths.lockfile)? {
        keep.keys.extend(lock.steps.into_iter().map(|s| s.key));
    }
    if let Some(dir) = exchange {
        sweep_exchange(&dir, printer, dry_run)?;
    }
    let doomed = maintenance::collectable(store, &mut keep, SystemTime::now());
    let total: u64 = doomed.iter().map(|d| d.bytes).sum();
    if dry_run {
        for d in &doomed {
            printer.data(&format!(
                "would delete {} ({})",
                d.what,
                crate::report::human_bytes(d.bytes)
            ));
        }
        printer.status(
            "Would free",
            &format!(
                "{} in {} files (dry run)",
                crate::report::human_bytes(total),
                doomed.len()
            ),
        );
        return Ok(Exit::Ok);
    }
    let mut freed = 0;
    for Doomed { path, bytes, .. } in &doomed {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        match removed {
            Ok(()) => freed += bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => printer.warn(&format!("cannot delete `{}`: {e}", path.display())),
        }
    }
    printer.status(
        "Collected",
        &format!(
            "{} in {} files; kept {} entries and {} blobs",
            crate::report::human_bytes(freed),
            doomed.len(),
            keep.keys.len(),
            keep.blobs.len()
        ),
    );
    Ok(Exit::Ok)
}

/// Removes from `[h2o] exchange_dir` what no running load needs (docs/h2o.md).
fn sweep_exchange(dir: &Path, printer: &Printer, dry_run: bool) -> Result<()> {
    let exchange = crate::h2o::exchange::Exchange::new(dir);
    let swept = exchange.sweep(SystemTime::now(), dry_run)?;
    printer.status(
        if dry_run { "Would sweep" } else { "Swept" },
        &format!(
            "{} in {} files and {} stale leases from the exchange `{}`",
            crate::report::human_bytes(swept.bytes),
            swept.files,
            swept.leases,
            exchange.layout_dir().display()
        ),
    );
    Ok(())
}

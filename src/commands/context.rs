//! What several commands open, each opened one way: the engine's configuration, the planner,
//! the registry (read-only for the commands that only read, DESIGN.md §8), the project's run
//! lock with its one "waiting" message, the step context, and the engine's release.

use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::{Diagnostic, Exit};
use crate::project::Paths;
use crate::registry::Registry;
use crate::report::Printer;
use crate::steps::EngineSlot;
use crate::store::{RunLock, Store};

/// The project's run lock (`run`, `watch`, `cache gc`, `cache pull`), saying once that it waits
/// when another process holds it.
pub(crate) fn lock_runs(store: &Store, printer: &Printer) -> Result<RunLock> {
    Ok(RunLock::acquire(&store.run_lock_path(), |holder| {
        printer.status(
            "Blocking",
            &format!("waiting for another mlbuild run in this project to finish ({holder})"),
        )
    })?)
}

/// Releases the engine a run or watch used, on every path (success, error, Ctrl-C): stops a
/// managed node, or cancels the jobs and removes the keys on a node it does not own, within
/// [`crate::h2o::RELEASE_BUDGET`]; `cut_short` (a second Ctrl-C) skips the wait.
pub(crate) async fn release_engine(
    engine: &EngineSlot,
    printer: &Printer,
    cut_short: impl Future<Output = ()>,
) {
    let engine = engine.lock().await.take();
    if let Some(engine) = engine {
        let released = engine
            .release(crate::h2o::RELEASE_BUDGET, cut_short, &|m| {
                printer.status("Engine", m)
            })
            .await;
        if let Some(w) = released.warning() {
            printer.warn(&w);
        }
    }
}

/// The registry of a command that only reads (DESIGN.md §8): creates nothing, migrates nothing
/// ([`Registry::open_read`]); a project without a state database has no versions yet.
pub(crate) async fn open_registry_read(dir: &Path) -> Result<Registry> {
    require_project_dir(dir)?;
    Ok(Registry::open_read(&Paths::resolve(dir).state_url).await?)
}

/// The registry, store and `models/` of a command that moves tags (`promote`, `rollback`).
pub(crate) async fn open_for_tags(dir: &Path) -> Result<(Registry, Store, PathBuf)> {
    let paths = Paths::resolve(dir);
    std::fs::create_dir_all(&paths.cache)
        .with_context(|| format!("creating `{}`", paths.cache.display()))?;
    let registry = Registry::open(&paths.state_url).await?;
    Ok((registry, Store::open(&paths.cache)?, paths.models))
}

/// A read command's project directory (`-C DIR`, else `.`) must exist; it is never created.
pub(crate) fn require_project_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    Err(Diagnostic::new(format!(
        "the project directory `{}` does not exist",
        dir.display()
    ))
    .hint("check the path given to `-C`")
    .into())
}

/// A read command's output: one pretty JSON document with `--json`, else the human table.
pub(crate) fn print_doc<T: serde::Serialize + ?Sized>(
    printer: &Printer,
    json: bool,
    doc: &T,
    render: impl Fn(&T) -> String,
) -> Result<Exit> {
    if json {
        printer.data(&serde_json::to_string_pretty(doc)?);
    } else {
        printer.data(render(doc).trim_end());
    }
    Ok(Exit::Ok)
}

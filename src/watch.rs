//! `mlbuild watch`: re-plan and rerun the stale steps whenever `ml.toml` or the data file
//! changes, keeping one H2O node warm between iterations.
//!
//! Mechanism: one engine slot and one planner live across iterations. Each iteration re-reads
//! `ml.toml` into the planner (salsa re-executes only the queries whose inputs changed), takes
//! the project's run lock, runs the pipeline, and releases the lock; then the loop polls the
//! watched files' (size, mtime, inode) every 300 ms. An error in an iteration (a half-written
//! `ml.toml`, a failed gate) is printed and the watch goes on. Ctrl-C or SIGTERM stops the
//! watch, cancels a running H2O job and stops the node, waiting for the JVM to exit.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::commands::{engine_config, interrupted, planner_for};
use crate::config;
use crate::error::{Diagnostic, Exit};
use crate::pipeline::{Ctx, EngineSlot, Outcome, Pipeline, RunOptions};
use crate::plan::Planner;
use crate::project::Paths;
use crate::registry::Registry;
use crate::report::Printer;
use crate::store::lockfile::Lockfile;
use crate::store::{RunLock, Store};

type Stamp = Vec<Option<(u64, i64, i64, u64)>>;

/// What lives across iterations.
struct Session<'a> {
    paths: &'a Paths,
    store: &'a Store,
    registry: &'a Registry,
    engine: &'a EngineSlot,
    /// The planner, with its memo tables from the previous iteration.
    planner: Option<Planner>,
    /// The `[h2o]` section the warm node was started for.
    warm_for: Option<String>,
}

fn stamp(files: &[PathBuf]) -> Stamp {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .map(|m| (m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
        })
        .collect()
}

/// The files whose edits trigger a new iteration.
fn watched(paths: &Paths) -> Vec<PathBuf> {
    let toml = paths.project.join("ml.toml");
    let mut files = vec![toml];
    if let Ok(loaded) = config::load(&paths.project, &[]) {
        // A file source is watched; a glob or a query is re-read on each iteration anyway.
        if let Some(path) = loaded.config.locate.path.as_deref() {
            if !crate::source::files::is_glob(path) {
                files.push(paths.project.join(path));
            }
        }
    }
    files
}

pub async fn watch(dir: &Path, printer: &Printer, overrides: Vec<String>) -> Result<Exit> {
    let paths = Paths::resolve(dir);
    let store = Store::open(&paths.cache)?;
    let registry = Registry::open(&paths.state_url).await?;
    let engine: EngineSlot = Arc::new(tokio::sync::Mutex::new(None));
    let mut session = Session {
        paths: &paths,
        store: &store,
        registry: &registry,
        engine: &engine,
        planner: None,
        warm_for: None,
    };
    let looping = async {
        loop {
            let files = watched(&paths);
            let before = stamp(&files);
            if let Err(e) = iterate(&mut session, printer, &overrides).await {
                crate::error::render(&e);
            }
            printer.status(
                "Watching",
                &format!("{} for changes (Ctrl-C to stop)", names(&paths, &files)),
            );
            // Wait for a change relative to what the iteration saw.
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let files_now = watched(&paths);
                if files_now != files || stamp(&files_now) != before {
                    break;
                }
            }
            // Let an editor finish writing before reading.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        _ = looping => {}
        _ = interrupted() => {}
    }
    let engine = engine.lock().await.take();
    if let Some(engine) = engine {
        let _ = engine.client.cancel_current_job().await;
        if let Err(e) = engine.shutdown().await {
            printer.warn(&format!("stopping H2O: {e}"));
        }
    }
    Err(Diagnostic::new("interrupted")
        .hint("the watch stopped; completed steps are cached")
        .exit(Exit::Interrupted)
        .into())
}

fn names(paths: &Paths, files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| {
            format!(
                "`{}`",
                f.strip_prefix(&paths.project).unwrap_or(f).display()
            )
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

async fn iterate(session: &mut Session<'_>, printer: &Printer, overrides: &[String]) -> Result<()> {
    let Session {
        paths,
        store,
        registry,
        engine,
        ..
    } = *session;
    let (planner, warm_for) = (&mut session.planner, &mut session.warm_for);
    let loaded = config::load(&paths.project, overrides)?;
    let lock_path = store.root().join("run.lock");
    let _lock = RunLock::acquire(&lock_path, |holder| {
        printer.status(
            "Blocking",
            &format!("waiting for another mlbuild run in this project to finish ({holder})"),
        )
    })?;
    let plan = match planner.take() {
        Some(mut p) => {
            p.set_text(loaded.source.clone(), overrides.to_vec());
            p.clear_records();
            p
        }
        None => planner_for(&loaded, overrides),
    };
    // A changed `[h2o]` section needs a different engine: stop the warm one.
    let engine_cfg = engine_config(paths, &loaded.config);
    let wanted = serde_json::to_string(&loaded.config.h2o)?;
    {
        let mut slot = engine.lock().await;
        if slot.is_some() && warm_for.as_deref() != Some(wanted.as_str()) {
            printer.status("Engine", "`[h2o]` changed: stopping the warm node");
            if let Some(e) = slot.take() {
                let _ = e.shutdown().await;
            }
        }
    }
    *warm_for = Some(wanted);
    let run_id = registry
        .begin_run(&paths.project_name(&loaded.config), "watch")
        .await?;
    let ctx = Ctx {
        paths,
        config: &loaded.config,
        store,
        printer,
        registry,
        engine,
        engine_config: engine_cfg,
        run_id,
        h2o_started: false,
    };
    let opts = RunOptions {
        overrides: overrides.to_vec(),
        ..Default::default()
    };
    let old_lock = Lockfile::load(&paths.lockfile)?;
    let mut pipeline = Pipeline::new(ctx, opts, old_lock, plan);
    let result = pipeline.run().await;
    *planner = Some(pipeline.into_planner());
    match result {
        Ok((outcome, _)) => {
            let status = match &outcome {
                Outcome::Ok { version: Some(v) } => {
                    printer.status("Finished", &format!("version {v}"));
                    "ok"
                }
                Outcome::Ok { .. } | Outcome::Planned => "ok",
                Outcome::Escalated(d) => {
                    crate::error::render(&anyhow::anyhow!(d.message.clone()));
                    "escalated"
                }
                Outcome::GateFailed(d) => {
                    crate::error::render(&anyhow::anyhow!(d.message.clone()));
                    "gate_failed"
                }
            };
            registry.finish_run(run_id, status, None).await?;
            Ok(())
        }
        Err(e) => {
            let _ = registry
                .finish_run(run_id, "failed", Some(&format!("{e:#}")))
                .await;
            Err(e)
        }
    }
}

//! `mlbuild watch`: re-plan and rerun the stale steps whenever `ml.toml` or the data file
//! changes, keeping one H2O node warm between iterations.
//!
//! Mechanism: one engine slot and one planner live across iterations. Each iteration re-reads
//! `ml.toml` into the planner (salsa re-executes only the queries whose inputs changed), takes
//! the project's run lock, runs the pipeline, and releases the lock; then the loop polls the
//! watched files' (size, mtime, inode) every 300 ms — `ml.toml` and the data file, or every
//! file a glob matches (re-expanded at each poll). A query source has no file to watch: the
//! watch reruns every `--interval` seconds (default 60), re-querying; unchanged rows rerun
//! nothing. An error in an iteration (a half-written
//! `ml.toml`, a failed gate) is printed and the watch goes on. Ctrl-C or SIGTERM stops the
//! watch and releases the engine as `run` does (`Engine::release`): the node it launched is
//! stopped, waiting for the JVM to exit; on a warm node of `mlbuild h2o start` or a remote
//! cluster, which are left running, the jobs it started are cancelled and what it created is
//! removed.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use super::context::{lock_runs, release_engine};
use crate::config;
use crate::error::{Diagnostic, Exit};
use crate::pipeline::{Outcome, Pipeline, RunOptions};
use crate::plan::Planner;
use crate::project::Paths;
use crate::registry::{Opening, Registry, RunRecorder};
use crate::report::Printer;
use crate::signal::interrupted;
use crate::status::RunStatus;
use crate::steps::{Ctx, EngineSlot, Mode};
use crate::store::lockfile::Lockfile;
use crate::store::Store;
use crate::watch::{names, requery_after, stamp, watched};

/// What lives across iterations.
struct Session<'a> {
    paths: &'a Paths,
    store: &'a Store,
    registry: &'a Opening,
    engine: &'a EngineSlot,
    /// The planner, with its memo tables from the previous iteration.
    planner: Option<Planner>,
    /// The `[h2o]` section the warm node was started for.
    warm_for: Option<String>,
}

pub(crate) async fn watch(
    dir: &Path,
    printer: &Printer,
    overrides: Vec<String>,
    interval: Option<u64>,
) -> Result<Exit> {
    let paths = Paths::resolve(dir);
    let store = Store::open(&paths.cache)?;
    let registry = Opening::ready(Registry::open(&paths.state_url).await?);
    let engine = Ctx::engine_slot();
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
            let (files, query) = watched(&paths);
            let before = stamp(&files);
            if let Err(e) = iterate(&mut session, printer, &overrides).await {
                super::diagnostics::render(printer, &e);
            }
            let every = requery_after(interval, query);
            printer.status(
                "Watching",
                &format!(
                    "{} for changes{} (Ctrl-C to stop)",
                    names(&paths, &files),
                    every
                        .map(|d| format!(", rerunning every {}s", d.as_secs()))
                        .unwrap_or_default()
                ),
            );
            // Wait for a change relative to what the iteration saw, or for the interval.
            let deadline = every.map(|d| tokio::time::Instant::now() + d);
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let (files_now, _) = watched(&paths);
                if files_now != files || stamp(&files_now) != before {
                    break;
                }
                if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    printer.status("Rerunning", "the interval passed: the source is read again");
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
    // As `run` does: stop a managed node, or cancel and remove this watch's work on a warm
    // node or remote cluster, within a budget a second Ctrl-C cuts short.
    release_engine(&engine, printer, interrupted()).await;
    registry.close().await;
    Err(Diagnostic::new("interrupted")
        .hint("the watch stopped; completed steps are cached")
        .exit(Exit::Interrupted)
        .into())
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
    let _lock = lock_runs(store, printer)?;
    let plan = match planner.take() {
        Some(mut p) => {
            p.set_text(loaded.source.clone(), overrides.to_vec());
            p.clear_records();
            p
        }
        None => Planner::for_config(&loaded, overrides),
    };
    // A changed `[h2o]` section needs a different engine: stop the warm one.
    let wanted = serde_json::to_string(&loaded.config.h2o)?;
    let warm = engine.lock().await.is_some();
    if warm && warm_for.as_deref() != Some(wanted.as_str()) {
        printer.status("Engine", "`[h2o]` changed: stopping the warm node");
        release_engine(engine, printer, std::future::pending()).await;
    }
    *warm_for = Some(wanted);
    let run = RunRecorder::new(
        registry,
        printer,
        &paths.project_name(&loaded.config),
        "watch",
        crate::project::git_head(&paths.project),
    );
    let ctx = Ctx::new(
        paths,
        &loaded.config,
        store,
        printer,
        registry,
        engine,
        Some(&run),
        Mode::Run,
    );
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
            // Recorded as `run` records it (status and report), then shown whole: an
            // escalation or a failed gate with its hint, as `run` prints it.
            crate::pipeline::finish_run(&run, &outcome).await?;
            match outcome {
                Outcome::Ok { version: Some(v) } => {
                    printer.status("Finished", &format!("version {v}"));
                }
                Outcome::Ok { .. } | Outcome::Planned => {}
                Outcome::Escalated(d) | Outcome::GateFailed(d) => {
                    super::diagnostics::render(printer, &anyhow::Error::from(d));
                }
            }
            Ok(())
        }
        Err(e) => {
            let _ = run.finish(RunStatus::Failed, Some(&format!("{e:#}"))).await;
            Err(e)
        }
    }
}

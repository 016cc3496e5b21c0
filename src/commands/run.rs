//! `mlbuild run`, `status` and `explain`: the pipeline run, or planned without running.

use std::path::Path;

use anyhow::Result;

use super::cli::RunArgs;
use super::context::{lock_runs, release_engine, require_project_dir};
use crate::config;
use crate::error::{Diagnostic, Exit};
use crate::fingerprint::Reason;
use crate::pipeline::{Outcome, Pipeline, PlanEntry, RunOptions};
use crate::plan::Planner;
use crate::project::{Paths, StepName};
use crate::registry::{self, Opening, RunRecorder};
use crate::report::{DoneEvent, Printer};
use crate::signal::interrupted;
use crate::status::RunStatus;
use crate::steps::{Ctx, Mode};
use crate::store::lockfile::Lockfile;
use crate::store::Store;

pub(crate) async fn run(dir: &Path, printer: &Printer, args: RunArgs) -> Result<Exit> {
    let opts = RunOptions {
        until: args.step.clone(),
        force: args.force.clone(),
        overrides: args.overrides.clone(),
        frozen: args.frozen,
        full_refresh: args.full_refresh,
    };
    if args.dry_run {
        let entries = plan(dir, printer, opts).await?;
        print_plan(printer, &entries, false);
        return Ok(Exit::Ok);
    }
    let paths = Paths::resolve(dir);
    let loaded = config::load(&paths.project, &args.overrides)?;
    let store = Store::open(&paths.cache)?
        .with_remote(crate::store::remote::configured(&loaded.config.cache)?);
    // Opened in the background while the walk plans; a fully cached run first needs it at
    // its end (docs/registry.md).
    let registry = Opening::start(&paths.state_url);
    let result = match lock_runs(&store, printer) {
        Ok(_lock) => run_on(&paths, &loaded, &store, &registry, printer, args, opts).await,
        Err(e) => Err(e),
    };
    // Closing checkpoints SQLite's WAL into `state.db`, so no `-wal`/`-shm` outlives the run
    // (a copy of the project, or the next reader, would otherwise meet them).
    registry.close().await;
    result
}

/// The run proper, on the opened store and registry, under the run lock.
async fn run_on(
    paths: &Paths,
    loaded: &config::Loaded,
    store: &Store,
    registry: &Opening,
    printer: &Printer,
    args: RunArgs,
    opts: RunOptions,
) -> Result<Exit> {
    let old_lock = Lockfile::load(&paths.lockfile)?;
    if args.frozen && old_lock.is_none() {
        return Err(
            Diagnostic::new("`--frozen` needs an `ml.lock`, and this project has none")
                .hint("run `mlbuild run` once without `--frozen` and commit `ml.lock`")
                .into(),
        );
    }
    let commit = crate::project::git_head(&paths.project);
    let run = RunRecorder::new(
        registry,
        printer,
        &paths.project_name(&loaded.config),
        "run",
        commit,
    );
    let result = walk(
        paths, loaded, store, registry, &run, printer, args, opts, old_lock,
    )
    .await;
    if let Err(e) = &result {
        // Kept with the run as the user saw it (the UI's run page shows it).
        let (lines, _) = super::diagnostics::rendered(e);
        let _ = run.record_error(&lines.join("\n")).await;
    }
    result
}

/// The walk of a started run: the pipeline under Ctrl-C, the engine's release, the run's
/// record and the command's answer.
#[allow(
    clippy::too_many_arguments,
    reason = "the opened project, the run's id and its options; a struct of them would be a context"
)]
async fn walk(
    paths: &Paths,
    loaded: &config::Loaded,
    store: &Store,
    registry: &Opening,
    run: &RunRecorder<'_>,
    printer: &Printer,
    args: RunArgs,
    opts: RunOptions,
    old_lock: Option<Lockfile>,
) -> Result<Exit> {
    let engine = Ctx::engine_slot();
    let ctx = Ctx::new(
        paths,
        &loaded.config,
        store,
        printer,
        registry,
        &engine,
        Some(run),
        Mode::Run,
    );
    let planner = Planner::for_config(loaded, &args.overrides);
    let mut pipeline = Pipeline::new(ctx, opts, old_lock, planner);
    let result = tokio::select! {
        r = pipeline.run() => Some(r),
        _ = interrupted() => None,
    };
    drop(pipeline);
    // A second Ctrl-C skips the wait for the engine's release.
    release_engine(&engine, printer, interrupted()).await;
    let Some(result) = result else {
        let _ = run.finish(RunStatus::Interrupted, None).await;
        return Err(Diagnostic::new("interrupted")
            .hint("run again: completed steps are cached")
            .exit(Exit::Interrupted)
            .into());
    };
    let (outcome, done) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = run.finish(RunStatus::Failed, Some(&format!("{e:#}"))).await;
            return Err(e);
        }
    };
    crate::faultpoint::hit("run.before-finish");
    printer.done(&done);
    crate::pipeline::finish_run(run, &outcome).await?;
    finished(printer, outcome, &done)
}

/// How a recorded run ends: an escalation or a failed gate is the command's error; a
/// registered version is named with the tags that point at it.
fn finished(printer: &Printer, outcome: Outcome, done: &DoneEvent) -> Result<Exit> {
    match outcome {
        Outcome::Escalated(d) | Outcome::GateFailed(d) => Err(d.into()),
        Outcome::Ok { version: Some(v) } => {
            let tags: Vec<&str> = done
                .tags
                .iter()
                .filter(|(_, id)| **id == v)
                .map(|(t, _)| t.as_str())
                .collect();
            let tags = if tags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", tags.join(", "))
            };
            printer.status("Finished", &format!("version {v}{tags}"));
            Ok(Exit::Ok)
        }
        Outcome::Ok { version: None } | Outcome::Planned => Ok(Exit::Ok),
    }
}

pub(crate) async fn status(
    dir: &Path,
    printer: &Printer,
    json: bool,
    overrides: Vec<String>,
    full_refresh: bool,
) -> Result<Exit> {
    let opts = RunOptions {
        overrides,
        full_refresh,
        ..Default::default()
    };
    let entries = plan(dir, printer, opts).await?;
    print_plan(printer, &entries, json);
    Ok(Exit::Ok)
}

pub(crate) async fn explain(
    dir: &Path,
    printer: &Printer,
    step: StepName,
    json: bool,
    opts: RunOptions,
) -> Result<Exit> {
    let entries = plan(dir, printer, opts).await?;
    let Some(entry) = entries
        .iter()
        .find(|e| e.step == step.0 && e.attempt == 1)
        .cloned()
    else {
        let names: Vec<&str> = entries
            .iter()
            .filter(|e| e.attempt == 1)
            .map(|e| e.step.as_str())
            .collect();
        let d = Diagnostic::new(format!("there is no step `{}`", step.0))
            .exit(crate::error::Exit::Usage);
        return Err(
            match crate::suggest::closest(&step.0, names.iter().copied()) {
                Some(s) => d.hint(format!("did you mean `{s}`?")),
                None => d.hint(format!("the steps are {}", names.join(", "))),
            }
            .into(),
        );
    };
    // A step behind a stale one is explained by that one's reason.
    let upstream = match &entry.detail {
        Reason::UpstreamStale { step } => entries.iter().find(|e| e.step == *step).cloned(),
        _ => None,
    };
    if json {
        let mut doc = serde_json::json!({
            "step": entry.step,
            "state": entry.state,
            "reason": entry.detail,
            "message": entry.reason,
        });
        if let Some(up) = &upstream {
            doc["upstream"] =
                serde_json::json!({ "step": up.step, "reason": up.detail, "message": up.reason });
        }
        printer.data(&serde_json::to_string_pretty(&doc)?);
    } else {
        printer.data(&format!(
            "{} is {}: {}",
            entry.step, entry.state, entry.reason
        ));
        if let Some(up) = upstream {
            printer.data(&format!("{} is {}: {}", up.step, up.state, up.reason));
        }
    }
    Ok(Exit::Ok)
}

/// Plans without running (never starts H2O; [`crate::pipeline::plan`]), then warns about stale
/// `models/` files as every reader does.
async fn plan(dir: &Path, printer: &Printer, opts: RunOptions) -> Result<Vec<PlanEntry>> {
    require_project_dir(dir)?;
    let paths = Paths::resolve(dir);
    // Opened (read-only) in the background while the walk plans.
    let opened = Opening::start_read(&paths.state_url);
    let entries = crate::pipeline::plan(&paths, &opened, printer, opts).await;
    let warned = match &entries {
        Ok(_) => match opened.get().await {
            Ok(registry) => registry::links::warn_stale(printer, registry, &paths, |_| true).await,
            Err(e) => Err(e),
        },
        Err(_) => Ok(()),
    };
    opened.close().await;
    let entries = entries?;
    warned?;
    Ok(entries)
}

fn print_plan(printer: &Printer, plan: &[PlanEntry], json: bool) {
    let rows = plan;
    if json {
        let rows: Vec<serde_json::Value> = rows.iter().map(PlanEntry::row).collect();
        printer.data(&serde_json::to_string_pretty(&rows).expect("json"));
        return;
    }
    for r in rows {
        let attempt = if r.attempt == 1 {
            String::new()
        } else {
            format!(" (attempt {})", r.attempt)
        };
        printer.data(&format!(
            "{:>9}  {:<6} {}{attempt}",
            r.step, r.state, r.reason
        ));
    }
}

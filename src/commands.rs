//! Command implementations: thin glue between the CLI, the pipeline and the registry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::cli::{Cli, Command, H2oCommand, MojoCommand, RunArgs};
use crate::config;
use crate::error::{Diagnostic, Exit};
use crate::fingerprint::Reason;
use crate::h2o::EngineConfig;
use crate::pipeline::{Ctx, EngineSlot, Mode, Outcome, Pipeline, PlanEntry, RunOptions};
use crate::plan::{PlanDb, Planner};
use crate::project::{Paths, Step};
use crate::registry::{self, Registry};
use crate::report::Printer;
use crate::store::lockfile::Lockfile;
use crate::store::{RunLock, Store};

pub async fn dispatch(cli: Cli) -> Result<Exit> {
    let dir = cli.global.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let json = matches!(
        &cli.command,
        Command::Run(RunArgs { json: true, .. })
            | Command::Status { json: true, .. }
            | Command::Explain { json: true, .. }
            | Command::Versions { json: true }
            | Command::Tags { json: true }
            | Command::History { json: true, .. }
            | Command::Show { json: true, .. }
            | Command::Diff { json: true, .. }
            | Command::Deploy { json: true, .. }
            | Command::Mojo(MojoCommand::Validate { json: true, .. })
            | Command::H2o(
                H2oCommand::Start { json: true }
                    | H2oCommand::Stop { json: true }
                    | H2oCommand::Status { json: true }
            )
    );
    let printer = Printer::new(json, cli.global.quiet, cli.global.verbose, cli.global.color);
    // A malformed user config is reported before anything runs (it may name the state DB).
    crate::user_config::load()?;
    match cli.command {
        Command::Run(args) => run(&dir, &printer, args).await,
        Command::Status {
            json,
            overrides,
            full_refresh,
        } => status(&dir, &printer, json, overrides, full_refresh).await,
        Command::Explain {
            step,
            json,
            overrides,
            force,
            full_refresh,
        } => explain(&dir, &printer, step, json, overrides, force, full_refresh).await,
        cmd @ (Command::Versions { .. }
        | Command::Show { .. }
        | Command::Diff { .. }
        | Command::Tags { .. }
        | Command::History { .. }) => {
            let reg = open_registry_read(&dir).await?;
            let result = read(&reg, &dir, &printer, cmd).await;
            // Closing lets SQLite remove the `-wal`/`-shm` files its readers open.
            reg.close().await;
            result
        }
        Command::Promote {
            tag,
            version,
            reason,
            json,
        } => {
            let (reg, store, models) = open_for_tags(&dir).await?;
            let lock = registry::links::lock_for(&models, &printer)?;
            let moved = reg
                .move_tag(&tag, &version, &registry::current_user(), &reason)
                .await?;
            crate::faultpoint::hit("tags.after-commit");
            let synced = registry::links::sync(&reg, &store, &models, &lock).await?;
            drop(lock);
            registry::links::report(&printer, &synced, &[tag.as_str()]);
            report_move(&printer, json, &moved)
        }
        Command::Rollback { tag, to, json } => {
            let (reg, store, models) = open_for_tags(&dir).await?;
            let lock = registry::links::lock_for(&models, &printer)?;
            let moved = reg
                .rollback(&tag, to.as_deref(), &registry::current_user())
                .await?;
            crate::faultpoint::hit("tags.after-commit");
            let synced = registry::links::sync(&reg, &store, &models, &lock).await?;
            drop(lock);
            registry::links::report(&printer, &synced, &[tag.as_str()]);
            report_move(&printer, json, &moved)
        }
        Command::Deploy {
            mojo,
            tag,
            reason,
            json,
        } => registry::deploy::command(&dir, &printer, &mojo, &tag, reason.as_deref(), json).await,
        Command::Mojo(MojoCommand::Validate { file, json }) => mojo_validate(&printer, &file, json),
        Command::Cache(cmd) => crate::store::cache_cmd::run(&dir, &printer, cmd).await,
        Command::H2o(cmd) => crate::h2o::warm_cmd::run(&dir, &printer, cmd).await,
        Command::Init { data, target } => init(&dir, &printer, data, target),
        Command::Predict {
            model,
            input,
            output,
        } => crate::predict::command(&dir, &printer, &model, &input, output.as_deref()).await,
        Command::Serve {
            model,
            host,
            port,
            max_body,
            max_rows,
        } => crate::serve::command(&dir, model, host, port, max_body, max_rows).await,
        Command::Watch {
            overrides,
            interval,
        } => crate::watch::watch(&dir, &printer, overrides, interval).await,
    }
}

/// The commands that only read the registry (DESIGN.md §8), on `reg` opened read-only.
async fn read(reg: &Registry, dir: &Path, printer: &Printer, cmd: Command) -> Result<Exit> {
    match cmd {
        Command::Versions { json } => {
            let versions = reg.versions().await?;
            print_doc(
                printer,
                json,
                versions.as_slice(),
                registry::render_versions,
            )
        }
        Command::Show {
            version,
            json,
            export,
        } => {
            if let Some(out) = &export {
                registry::commands::export_card(reg, dir, printer, &version, out).await?;
            }
            registry::commands::show(reg, dir, printer, &version, json).await
        }
        Command::Diff { old, new, json } => {
            registry::commands::diff(reg, dir, printer, &old, &new, json).await
        }
        Command::Tags { json } => {
            let tags = reg.tags().await?;
            print_doc(printer, json, &tags, registry::render_tags)?;
            let models = Paths::resolve(dir).models;
            registry::links::warn_stale(printer, reg, &models, |_| true).await?;
            Ok(Exit::Ok)
        }
        Command::History { tag, json } => {
            let events = reg.history(&tag).await?;
            print_doc(printer, json, events.as_slice(), registry::render_history)
        }
        _ => unreachable!("only read commands are dispatched here"),
    }
}

/// `mojo validate FILE`: the report on stdout (JSON or fields, warnings on stderr); an invalid
/// MOJO exits 1 with every error listed.
fn mojo_validate(printer: &Printer, file: &Path, json: bool) -> Result<Exit> {
    let bytes = crate::mojo::validate::read(file)?;
    let mut report = crate::mojo::validate::validate(&bytes);
    report.file = Some(file.display().to_string());
    if json {
        printer.data(&serde_json::to_string_pretty(&report)?);
    } else {
        printer.data(&report.render());
        for warning in &report.warnings {
            printer.warn(&warning.to_string());
        }
    }
    if report.valid {
        return Ok(Exit::Ok);
    }
    Err(Diagnostic::new(report.refusal())
        .hint("each code is explained in docs/mojo.md (\"Validating a MOJO\")")
        .into())
}

/// A read command's output: one pretty JSON document with `--json`, else the human table.
fn print_doc<T: serde::Serialize + ?Sized>(
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

fn report_move(printer: &Printer, json: bool, moved: &registry::TagMove) -> Result<Exit> {
    if json {
        printer.data(&serde_json::to_string_pretty(moved)?);
    } else {
        printer.status(
            "Tagged",
            &format!(
                "{} → {} (was {})",
                moved.tag,
                moved.to,
                moved.from.as_deref().unwrap_or("unset")
            ),
        );
    }
    Ok(Exit::Ok)
}

/// The registry, store and `models/` of a command that moves tags (`promote`, `rollback`).
async fn open_for_tags(dir: &Path) -> Result<(Registry, Store, PathBuf)> {
    let paths = Paths::resolve(dir);
    std::fs::create_dir_all(&paths.cache)
        .with_context(|| format!("creating `{}`", paths.cache.display()))?;
    let registry = Registry::open(&paths.state_url).await?;
    Ok((registry, Store::open(&paths.cache)?, paths.models))
}

/// The registry of a command that only reads (DESIGN.md §8): creates nothing, migrates nothing
/// ([`Registry::open_read`]); a project without a state database has no versions yet.
pub(crate) async fn open_registry_read(dir: &Path) -> Result<Registry> {
    require_project_dir(dir)?;
    Ok(Registry::open_read(&Paths::resolve(dir).state_url).await?)
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

pub(crate) fn planner_for(loaded: &config::Loaded, overrides: &[String]) -> Planner {
    Planner::new(
        PlanDb::default(),
        loaded.path.display().to_string(),
        loaded.source.clone(),
        overrides.to_vec(),
    )
}

pub(crate) fn engine_config(paths: &Paths, config: &config::Config) -> EngineConfig {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    EngineConfig {
        url: env("MLBUILD_H2O_URL").or_else(|| config.h2o.url.clone()),
        jar: env("MLBUILD_H2O_JAR")
            .map(PathBuf::from)
            .or_else(|| config.h2o.jar.as_ref().map(|j| paths.project.join(j))),
        version: config.h2o.version.clone(),
        nodes: config.h2o.nodes,
        memory: config.h2o.memory.clone(),
        work_dir: paths.cache.join("h2o"),
        tool_cache: paths.tool_cache.clone(),
    }
}

async fn run(dir: &Path, printer: &Printer, args: RunArgs) -> Result<Exit> {
    if args.dry_run {
        let opts = RunOptions {
            until: args.step,
            force: args.force.clone(),
            overrides: args.overrides.clone(),
            frozen: args.frozen,
            full_refresh: args.full_refresh,
        };
        let entries = plan(dir, printer, opts).await?;
        print_plan(printer, &entries, false);
        return Ok(Exit::Ok);
    }
    let paths = Paths::resolve(dir);
    let loaded = config::load(&paths.project, &args.overrides)?;
    let store = Store::open(&paths.cache)?
        .with_remote(crate::store::remote::configured(&loaded.config.cache)?);
    let lock_path = store.root().join("run.lock");
    let _lock = RunLock::acquire(&lock_path, |holder| {
        printer.status(
            "Blocking",
            &format!(
                "waiting for another mlbuild run in this project to finish ({holder}; lock `{}`)",
                lock_path.display()
            ),
        )
    })?;
    let registry = Registry::open(&paths.state_url).await?;
    let old_lock = Lockfile::load(&paths.lockfile)?;
    if args.frozen && old_lock.is_none() {
        return Err(
            Diagnostic::new("`--frozen` needs an `ml.lock`, and this project has none")
                .hint("run `mlbuild run` once without `--frozen` and commit `ml.lock`")
                .into(),
        );
    }
    let project_name = paths.project_name(&loaded.config);
    // We hold the run lock: a run of this project still `running` whose process is gone was
    // killed.
    for id in registry.mark_interrupted(&project_name).await? {
        printer.detail(
            1,
            &format!("run {id} was interrupted (its process is gone)"),
        );
    }
    let run_id = registry.begin_run(&project_name, "run").await?;
    let engine: EngineSlot = Arc::new(tokio::sync::Mutex::new(None));
    let ctx = Ctx {
        paths: &paths,
        config: &loaded.config,
        store: &store,
        printer,
        registry: &registry,
        engine: &engine,
        engine_config: engine_config(&paths, &loaded.config),
        run_id,
        h2o_started: false,
        mode: Mode::Run,
    };
    let opts = RunOptions {
        until: args.step,
        force: args.force.clone(),
        overrides: args.overrides.clone(),
        frozen: args.frozen,
        full_refresh: args.full_refresh,
    };
    let planner = planner_for(&loaded, &args.overrides);
    let mut pipeline = Pipeline::new(ctx, opts, old_lock, planner);
    let result = tokio::select! {
        r = pipeline.run() => Some(r),
        _ = interrupted() => None,
    };
    drop(pipeline);
    // Release the engine on every path (success, error, Ctrl-C): stop a managed node, or cancel
    // the run's jobs and remove its keys from a cluster it does not own; a 2nd Ctrl-C skips.
    let engine = engine.lock().await.take();
    if let Some(engine) = engine {
        let released = engine
            .release(crate::h2o::RELEASE_BUDGET, interrupted(), &|m| {
                printer.status("Engine", m)
            })
            .await;
        if let Some(w) = released.warning() {
            printer.warn(&w);
        }
    }
    let Some(result) = result else {
        let _ = registry.finish_run(run_id, "interrupted", None).await;
        return Err(Diagnostic::new("interrupted")
            .hint("run again: completed steps are cached")
            .exit(Exit::Interrupted)
            .into());
    };
    let (outcome, done) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = registry
                .finish_run(run_id, "failed", Some(&format!("{e:#}")))
                .await;
            return Err(e);
        }
    };
    crate::faultpoint::hit("run.before-finish");
    printer.done(&done);
    crate::pipeline::finish_run(&registry, run_id, &outcome).await?;
    match outcome {
        Outcome::Escalated(d) | Outcome::GateFailed(d) => Err(d.into()),
        Outcome::Ok { version } => {
            if let Some(v) = version {
                let tags: Vec<&String> = done
                    .tags
                    .iter()
                    .filter(|(_, id)| **id == v)
                    .map(|(t, _)| t)
                    .collect();
                let tags = if tags.is_empty() {
                    String::new()
                } else {
                    format!(
                        " [{}]",
                        tags.iter()
                            .map(|t| t.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                printer.status("Finished", &format!("version {v}{tags}"));
            }
            Ok(Exit::Ok)
        }
        Outcome::Planned => Ok(Exit::Ok),
    }
}

pub(crate) async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The plan, completed: steps after the first stale one are stale because of it (their keys
/// depend on outputs that do not exist yet).
fn complete_plan(plan: &[PlanEntry]) -> Vec<PlanEntry> {
    let mut rows = plan.to_vec();
    if let Some(first) = plan.iter().find(|p| p.state == "stale") {
        let seen: Vec<&str> = plan.iter().map(|p| p.step.as_str()).collect();
        for step in Step::ALL
            .iter()
            .map(|s| s.as_str())
            .filter(|s| !seen.contains(s))
        {
            let detail = Reason::UpstreamStale {
                step: first.step.clone(),
            };
            rows.push(PlanEntry {
                step: step.to_string(),
                attempt: 1,
                state: "stale",
                reason: detail.render(),
                detail,
            });
        }
    }
    rows
}

fn print_plan(printer: &Printer, plan: &[PlanEntry], json: bool) {
    let rows = complete_plan(plan);
    if json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|p| serde_json::json!({ "step": p.step, "attempt": p.attempt, "state": p.state, "reason": p.reason }))
            .collect();
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

/// Plans without running (never starts H2O): each step fresh or stale, with its reason. Reads
/// only ([`Mode::Plan`]): no run lock, no remote cache, the registry opened read-only.
async fn plan(dir: &Path, printer: &Printer, opts: RunOptions) -> Result<Vec<PlanEntry>> {
    require_project_dir(dir)?;
    let paths = Paths::resolve(dir);
    let loaded = config::load(&paths.project, &opts.overrides)?;
    let store = Store::open(&paths.cache)?;
    let registry = Registry::open_read(&paths.state_url).await?;
    let old_lock = Lockfile::load(&paths.lockfile)?;
    let engine: EngineSlot = Arc::new(tokio::sync::Mutex::new(None));
    let ctx = Ctx {
        paths: &paths,
        config: &loaded.config,
        store: &store,
        printer,
        registry: &registry,
        engine: &engine,
        engine_config: engine_config(&paths, &loaded.config),
        run_id: 0,
        h2o_started: false,
        mode: Mode::Plan,
    };
    let planner = planner_for(&loaded, &opts.overrides);
    let mut pipeline = Pipeline::new(ctx, opts, old_lock, planner);
    pipeline.run().await?;
    let entries = std::mem::take(&mut pipeline.plan);
    drop(pipeline);
    registry::links::warn_stale(printer, &registry, &paths.models, |_| true).await?;
    registry.close().await;
    Ok(entries)
}

async fn status(
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

async fn explain(
    dir: &Path,
    printer: &Printer,
    step: Step,
    json: bool,
    overrides: Vec<String>,
    force: Vec<Step>,
    full_refresh: bool,
) -> Result<Exit> {
    let opts = RunOptions {
        overrides,
        force,
        full_refresh,
        ..Default::default()
    };
    let entries = complete_plan(&plan(dir, printer, opts).await?);
    let entry = entries
        .iter()
        .find(|e| e.step == step.as_str() && e.attempt == 1)
        .cloned()
        .expect("the completed plan has every step");
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

fn init(
    dir: &Path,
    printer: &Printer,
    data: Option<PathBuf>,
    target: Option<String>,
) -> Result<Exit> {
    let path = dir.join("ml.toml");
    if path.exists() {
        return Err(
            Diagnostic::new(format!("`{}` already exists", path.display()))
                .hint("edit it, or remove it to start over")
                .into(),
        );
    }
    let Some(data) = data else {
        return Err(
            Diagnostic::new("`mlbuild init` needs a data file to describe")
                .hint("run `mlbuild init data/train.csv`")
                .exit(Exit::Usage)
                .into(),
        );
    };
    let file = if dir.join(&data).is_file() {
        dir.join(&data)
    } else {
        data.clone()
    };
    let header = crate::table::read_header(&file)?;
    let target = match target {
        Some(t) if header.contains(&t) => t,
        Some(t) => {
            return Err(
                Diagnostic::new(format!("column `{t}` is not in `{}`", data.display()))
                    .hint(format!(
                        "the columns are: {}",
                        crate::report::list_names(&header)
                    ))
                    .into(),
            )
        }
        None => header
            .last()
            .cloned()
            .context("the data file has no columns")?,
    };
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "project".into());
    // A project that runs on the data it was made from: identifiers and free text ignored, the
    // gate's null limit above what the data has (config::scaffold).
    let survey = crate::config::scaffold::survey(&file)?;
    let (text, notes) =
        crate::config::scaffold::render(&name, &data.display().to_string(), &target, &survey);
    crate::store::write_atomic(&path, text.as_bytes())?;
    printer.status(
        "Created",
        &format!("`{}` with target `{target}`", path.display()),
    );
    for note in notes {
        printer.status("Note", &note);
    }
    Ok(Exit::Ok)
}

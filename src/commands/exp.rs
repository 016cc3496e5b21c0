//! `mlbuild exp`: experiments over a grid of `--set` values (docs/experiments.md).
//!
//! `exp run` expands the grid (each `--set KEY=V1,V2` a dimension, the first flag varying
//! slowest) and runs its points one after another, each an ordinary run of the pipeline with
//! its overrides, on one engine slot (a managed node starts at the first execute that must run
//! and serves every later point), recorded in the registry as an experiment. A point registers
//! its version but moves no tag, fires no hook and writes no `ml.lock`; steps whose keys two
//! points share run once. `exp show` lists the newest experiment's points best first by the
//! primary metric, `exp promote POINT TAG` moves a tag to a point's version as `promote` does.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};

use super::context::{lock_runs, open_registry_read, release_engine, require_project_dir};
use crate::config;
use crate::error::{Diagnostic, Exit};
use crate::pipeline::{Outcome, Pipeline, RunOptions};
use crate::plan::Planner;
use crate::project::Paths;
use crate::registry::links::Move;
use crate::registry::{Opening, Point, Registry, RunRecorder};
use crate::report::Printer;
use crate::signal::interrupted;
use crate::status::RunStatus;
use crate::steps::{Ctx, EngineSlot, Mode};
use crate::store::lockfile::Lockfile;
use crate::store::Store;

/// Splits a `--set` value list on commas outside brackets, braces and quotes:
/// `2,4` → `2`, `4`; `["A","B"],[]` → `["A","B"]`, `[]`.
pub(crate) fn split_values(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in list.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' | '{' => depth += 1,
                ']' | '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(std::mem::take(&mut current).trim().to_string());
                    continue;
                }
                _ => {}
            },
        }
        current.push(c);
    }
    out.push(current.trim().to_string());
    out
}

/// The grid's points: each a list of `KEY=VALUE` overrides, in the order of the flags.
pub(crate) fn grid(sets: &[String]) -> Result<Vec<Vec<String>>> {
    let mut dims: Vec<(String, Vec<String>)> = Vec::new();
    for set in sets {
        let Some((key, values)) = set.split_once('=') else {
            return Err(Diagnostic::new(format!("`--set {set}` is not KEY=V1,V2,…"))
                .hint("e.g. `--set execute.max_models=2,4`")
                .exit(Exit::Usage)
                .into());
        };
        let key = key.trim();
        if dims.iter().any(|(k, _)| k == key) {
            return Err(Diagnostic::new(format!("`{key}` is set twice"))
                .hint("list every value of a key in one flag: `--set KEY=V1,V2`")
                .exit(Exit::Usage)
                .into());
        }
        let values = split_values(values);
        if values.iter().any(String::is_empty) {
            return Err(Diagnostic::new(format!("`--set {set}` has an empty value"))
                .hint("values are separated by commas; quote a string that holds one")
                .exit(Exit::Usage)
                .into());
        }
        dims.push((key.to_string(), values));
    }
    let mut points: Vec<Vec<String>> = vec![Vec::new()];
    for (key, values) in &dims {
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push(format!("{key}={v}"));
                    q
                })
            })
            .collect();
    }
    Ok(points)
}

/// `mlbuild exp run --set KEY=V1,V2 …`.
pub(crate) async fn run(
    dir: &Path,
    printer: &Printer,
    sets: &[String],
    json: bool,
) -> Result<Exit> {
    require_project_dir(dir)?;
    let points = grid(sets)?;
    let paths = Paths::resolve(dir);
    // Every point's config is checked before the first one runs: a bad value fails fast.
    for point in &points {
        config::load(&paths.project, point)?;
    }
    let base = config::load(&paths.project, &[])?;
    let store = Store::open(&paths.cache)?
        .with_remote(crate::store::remote::configured(&base.config.cache)?);
    let registry = Registry::open(&paths.state_url).await?;
    let opened = Opening::ready(registry.clone());
    let project = paths.project_name(&base.config);
    let id = registry.begin_experiment(&project, sets).await?;
    printer.status(
        "Experiment",
        &format!("{id}: {} points over {}", points.len(), sets.join(" ")),
    );
    let engine = Ctx::engine_slot();
    let mut recorded = Vec::new();
    let mut stopped = false;
    for (i, overrides) in points.iter().enumerate() {
        let n = i as u32 + 1;
        printer.status(
            "Point",
            &format!("{n}/{}: {}", points.len(), overrides.join(" ")),
        );
        let ran = tokio::select! {
            r = point(&paths, &store, &opened, &engine, printer, &project, overrides) => Some(r),
            _ = interrupted() => None,
        };
        stopped = ran.is_none();
        let p = recorded_point(printer, n, overrides, ran);
        registry.record_point(id, &p).await?;
        recorded.push(p);
        if stopped {
            break;
        }
    }
    release_engine(&engine, printer, interrupted()).await;
    registry.close().await;
    if json {
        printer.data(&serde_json::to_string(&json!({
            "event": "experiment", "id": id, "points": recorded,
        }))?);
    }
    if stopped {
        return Err(Diagnostic::new("interrupted")
            .hint("run the grid again: completed points are cached")
            .exit(Exit::Interrupted)
            .into());
    }
    let failed: Vec<String> = recorded
        .iter()
        .filter(|p| p.status != "ok")
        .map(|p| format!("{} ({})", p.point, p.status))
        .collect();
    printer.status(
        "Finished",
        &format!(
            "experiment {id}: {} of {} points registered a version; `mlbuild exp show` ranks them",
            recorded.iter().filter(|p| p.version.is_some()).count(),
            recorded.len()
        ),
    );
    if failed.is_empty() {
        Ok(Exit::Ok)
    } else {
        Err(Diagnostic::new(format!(
            "points that did not conclude: {}",
            failed.join(", ")
        ))
        .hint("`mlbuild exp show` lists every point; `mlbuild runs` has each point's run")
        .into())
    }
}

/// How point `n` ended, as recorded (`None`: interrupted); a failure is printed, not returned:
/// the grid goes on.
fn recorded_point(
    printer: &Printer,
    n: u32,
    overrides: &[String],
    ran: Option<Result<(i64, Outcome)>>,
) -> Point {
    let (run, version, status) = match ran {
        Some(Ok((run, outcome))) => match outcome {
            Outcome::Ok { version } => (Some(run), version, RunStatus::Ok),
            Outcome::Escalated(d) => {
                printer.warn(&format!("point {n} escalated: {}", d.message));
                (Some(run), None, RunStatus::Escalated)
            }
            Outcome::GateFailed(d) => {
                printer.warn(&format!("point {n}: {}", d.message));
                (Some(run), None, RunStatus::GateFailed)
            }
            Outcome::Planned => (Some(run), None, RunStatus::Ok),
        },
        Some(Err(e)) => {
            super::diagnostics::render(printer, &e);
            (None, None, RunStatus::Failed)
        }
        None => (None, None, RunStatus::Interrupted),
    };
    Point {
        point: n,
        overrides: overrides.to_vec(),
        run,
        version,
        status: status.as_str().to_string(),
    }
}

/// One point: an ordinary run with `overrides`, recorded as command `exp`, on `engine`.
async fn point(
    paths: &Paths,
    store: &Store,
    registry: &Opening,
    engine: &EngineSlot,
    printer: &Printer,
    project: &str,
    overrides: &[String],
) -> Result<(i64, Outcome)> {
    let loaded = config::load(&paths.project, overrides)?;
    let _lock = lock_runs(store, printer)?;
    let run = RunRecorder::new(
        registry,
        printer,
        project,
        "exp",
        crate::project::git_head(&paths.project),
    );
    let mut ctx = Ctx::new(
        paths,
        &loaded.config,
        store,
        printer,
        registry,
        engine,
        Some(&run),
        Mode::Run,
    );
    ctx.experiment = true;
    let opts = RunOptions {
        overrides: overrides.to_vec(),
        ..Default::default()
    };
    let planner = Planner::for_config(&loaded, overrides);
    let old_lock = Lockfile::load(&paths.lockfile)?;
    let mut pipeline = Pipeline::new(ctx, opts, old_lock, planner);
    match pipeline.run().await {
        Ok((outcome, done)) => {
            printer.done(&done);
            crate::pipeline::finish_run(&run, &outcome).await?;
            if let Outcome::Ok { version: Some(v) } = &outcome {
                printer.status("Registered", &format!("point's version {v} (no tag moved)"));
            }
            Ok((run.id().await?, outcome))
        }
        Err(e) => {
            let _ = run.finish(RunStatus::Failed, Some(&format!("{e:#}"))).await;
            Err(e)
        }
    }
}

/// The primary metric a version was judged on: its config's `define.metric`, else the default
/// of its problem as its holdout metrics reveal it (auc for binary, logloss for multiclass,
/// rmse for regression).
fn primary_metric(provenance: &Value, metrics: &Value) -> String {
    if let Some(m) = provenance["config"]["define"]["metric"].as_str() {
        return m.to_string();
    }
    ["auc", "logloss", "rmse"]
        .into_iter()
        .find(|m| metrics.get(*m).is_some())
        .unwrap_or("rmse")
        .to_string()
}

/// `mlbuild exp show [--json] [--all]`.
#[allow(
    clippy::too_many_lines,
    reason = "read the experiment, rank its points, then print them as JSON or a table"
)]
pub(crate) async fn show(dir: &Path, printer: &Printer, json: bool, all: bool) -> Result<Exit> {
    require_project_dir(dir)?;
    let paths = Paths::resolve(dir);
    let loaded = config::load(&paths.project, &[])?;
    let registry = open_registry_read(dir).await?;
    let Some(exp) = registry
        .latest_experiment(&paths.project_name(&loaded.config))
        .await?
    else {
        registry.close().await;
        return Err(Diagnostic::new("this project has no experiment yet")
            .hint("run one: `mlbuild exp run --set execute.max_models=2,4`")
            .into());
    };
    let mut rows = Vec::new();
    let mut metric_name: Option<String> = None;
    for p in &exp.points {
        let version = match &p.version {
            Some(v) => registry.get(v).await?,
            None => None,
        };
        let (metric, value) = match &version {
            Some(v) => {
                let m = primary_metric(&v.provenance, &v.metrics);
                let value = v.metrics[&m].as_f64();
                (Some(m), value)
            }
            None => (None, None),
        };
        if metric_name.is_none() {
            metric_name = metric;
        }
        let set: BTreeMap<String, String> = p
            .overrides
            .iter()
            .filter_map(|o| o.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        rows.push((p, set, value));
    }
    registry.close().await;
    let metric = metric_name.unwrap_or_else(|| "metric".into());
    let higher = crate::config::metric_is_higher_better(&metric);
    rows.sort_by(|a, b| match (a.2, b.2) {
        (Some(x), Some(y)) if higher => y.total_cmp(&x),
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.0.point.cmp(&b.0.point),
    });
    // Only the keys whose values differ between points, unless `--all`.
    let keys: Vec<String> = {
        let mut keys: Vec<String> = Vec::new();
        for (_, set, _) in &rows {
            for k in set.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        keys.into_iter()
            .filter(|k| {
                all || rows
                    .iter()
                    .map(|(_, s, _)| s.get(k))
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
                    > 1
            })
            .collect()
    };
    if json {
        let points: Vec<Value> = rows
            .iter()
            .map(|(p, set, value)| {
                let shown: BTreeMap<&String, &String> =
                    set.iter().filter(|(k, _)| keys.contains(k)).collect();
                json!({
                    "point": p.point,
                    "status": p.status,
                    "version": p.version,
                    "run": p.run,
                    "set": shown,
                    "metric": value,
                })
            })
            .collect();
        printer.data(&serde_json::to_string_pretty(&json!({
            "experiment": exp.id,
            "started_at": exp.started_at,
            "grid": exp.grid,
            "metric": metric,
            "higher_is_better": higher,
            "points": points,
        }))?);
        return Ok(Exit::Ok);
    }
    let mut header = vec!["point".to_string(), metric.clone()];
    header.extend(keys.iter().cloned());
    header.extend(["status".to_string(), "version".to_string()]);
    let mut table = vec![header];
    for (p, set, value) in &rows {
        let mut line = vec![
            p.point.to_string(),
            value.map_or("-".into(), |v| format!("{v:.4}")),
        ];
        line.extend(keys.iter().map(|k| set.get(k).cloned().unwrap_or_default()));
        line.push(p.status.clone());
        line.push(p.version.clone().unwrap_or_else(|| "-".into()));
        table.push(line);
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    printer.data(&format!(
        "experiment {} ({}), best first by {metric} ({} is better):",
        exp.id,
        exp.started_at,
        if higher { "higher" } else { "lower" }
    ));
    for r in table {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        printer.data(cells.join("  ").trim_end());
    }
    Ok(Exit::Ok)
}

/// `mlbuild exp promote POINT TAG`.
pub(crate) async fn promote(dir: &Path, printer: &Printer, point: u32, tag: &str) -> Result<Exit> {
    require_project_dir(dir)?;
    let paths = Paths::resolve(dir);
    let loaded = config::load(&paths.project, &[])?;
    let registry = open_registry_read(dir).await?;
    let exp = registry
        .latest_experiment(&paths.project_name(&loaded.config))
        .await?;
    registry.close().await;
    let Some(exp) = exp else {
        return Err(Diagnostic::new("this project has no experiment yet")
            .hint("run one: `mlbuild exp run --set execute.max_models=2,4`")
            .into());
    };
    let Some(p) = exp.points.iter().find(|p| p.point == point) else {
        return Err(Diagnostic::new(format!(
            "experiment {} has no point {point} (it has 1–{})",
            exp.id,
            exp.points.len()
        ))
        .hint("`mlbuild exp show` lists the points")
        .exit(Exit::Usage)
        .into());
    };
    let Some(version) = p.version.clone() else {
        return Err(Diagnostic::new(format!(
            "point {point} of experiment {} registered no version (it ended {})",
            exp.id, p.status
        ))
        .hint("promote a point that concluded: `mlbuild exp show` lists them")
        .into());
    };
    let reason = format!(
        "experiment {} point {point}: {}",
        exp.id,
        p.overrides.join(" ")
    );
    super::registry::move_tag(dir, printer, tag, Move::Promote { version, reason }, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_split_on_commas_outside_brackets_and_quotes() {
        assert_eq!(split_values("2,4"), ["2", "4"]);
        assert_eq!(split_values(r#"["A","B"],[]"#), [r#"["A","B"]"#, "[]"]);
        assert_eq!(split_values(r#""a,b",c"#), [r#""a,b""#, "c"]);
        assert_eq!(
            split_values("{ x = 1, y = 2 },{}"),
            ["{ x = 1, y = 2 }", "{}"]
        );
        assert_eq!(split_values("0.5"), ["0.5"]);
    }

    #[test]
    fn the_grid_varies_the_first_flag_slowest() {
        let g = grid(&["execute.max_models=2,4".into(), "prepare.seed=1,2".into()]).unwrap();
        assert_eq!(
            g,
            [
                ["execute.max_models=2", "prepare.seed=1"],
                ["execute.max_models=2", "prepare.seed=2"],
                ["execute.max_models=4", "prepare.seed=1"],
                ["execute.max_models=4", "prepare.seed=2"],
            ]
        );
        assert!(grid(&["novalues".into()]).is_err());
        assert!(grid(&["a=1".into(), "a=2".into()]).is_err());
        assert!(grid(&["a=1,,2".into()]).is_err());
    }
}

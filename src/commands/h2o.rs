//! `mlbuild h2o start | stop | status`: the project's warm node, as commands (see [`crate::h2o::warm`]
//! for the mechanism).
//!
//! - `start` needs the project's `ml.toml` (`[h2o] memory`, `version`, `jar`) and refuses a
//!   configured URL (runs would connect there, not to the warm node). It prints the node's URL on
//!   stdout, so `export MLBUILD_H2O_URL=$(mlbuild h2o start)` works too; Ctrl-C while it waits
//!   for the node kills the JVM.
//! - `stop` and `status` need only the cache dir, so they work after `ml.toml` broke.
//! - `--json`: one document on stdout, `{"status": …}` plus the record's fields.

use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};

use super::cli::H2oCommand;
use crate::config;
use crate::error::{Diagnostic, Exit};
use crate::h2o::warm::{self, Health, Record, Started, Stopped, WarmNode};
use crate::project::Paths;
use crate::report::Printer;
use crate::signal::interrupted;

pub(crate) async fn run(dir: &Path, printer: &Printer, cmd: H2oCommand) -> Result<Exit> {
    let paths = Paths::resolve(dir);
    match cmd {
        H2oCommand::Start { json } => start(&paths, printer, json).await,
        H2oCommand::Stop { json } => stop(&paths, printer, json).await,
        H2oCommand::Status { json } => status(&paths, printer, json).await,
    }
}

fn work_dir(paths: &Paths) -> std::path::PathBuf {
    crate::store::layout::engine_dir(&paths.cache)
}

/// The record as JSON, plus `status`, `uptime_secs` and the state file's path.
fn doc(status: &str, node: Option<&WarmNode>, paths: &Paths) -> Value {
    let mut doc = json!({ "status": status });
    if let Some(node) = node {
        if let Value::Object(fields) = serde_json::to_value(node).expect("the record serialises") {
            doc.as_object_mut().unwrap().extend(fields);
        }
        doc["uptime_secs"] = json!(node.uptime_secs());
    }
    doc["state_file"] = json!(warm::state_path(&work_dir(paths)));
    doc
}

/// `42s`, `3m07s`, `2h05m`.
fn uptime(node: &WarmNode) -> String {
    match node.uptime_secs() {
        Some(s) if s < 60 => format!("{s}s"),
        Some(s) if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        Some(s) => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        None => "unknown".into(),
    }
}

async fn start(paths: &Paths, printer: &Printer, json: bool) -> Result<Exit> {
    let loaded = config::load(&paths.project, &[])?;
    let cfg = crate::h2o::EngineConfig::resolve(paths, &loaded.config);
    if let Some(url) = &cfg.url {
        let from = if std::env::var("MLBUILD_H2O_URL").is_ok_and(|v| !v.is_empty()) {
            "`MLBUILD_H2O_URL`"
        } else {
            "`[h2o] url`"
        };
        return Err(Diagnostic::new(format!(
            "this project uses the H2O cluster at {} ({from}), so runs would not use a warm node",
            crate::redact::safe_url(url)
        ))
        .hint(format!("unset {from} to let runs use a local warm node"))
        .into());
    }
    let log = |msg: &str| printer.status("Engine", msg);
    let started = tokio::select! {
        r = warm::start(&cfg, &log) => r?,
        _ = interrupted() => {
            return Err(Diagnostic::new("interrupted")
                .hint("no node was left running")
                .exit(Exit::Interrupted)
                .into())
        }
    };
    let Started {
        node,
        launched,
        replaced,
    } = started;
    if let Some(why) = replaced {
        printer.warn(&format!("{why}; its record was replaced"));
    }
    if json {
        let status = if launched { "started" } else { "running" };
        printer.data(&serde_json::to_string_pretty(&doc(
            status,
            Some(&node),
            paths,
        ))?);
        return Ok(Exit::Ok);
    }
    if launched {
        printer.status(
            "Started",
            &format!(
                "a warm H2O {} node at {} (pid {}, memory {}); runs in this project use it until \
                 `mlbuild h2o stop`",
                node.version, node.url, node.pid, node.memory
            ),
        );
    } else {
        printer.status(
            "Running",
            &format!(
                "the warm H2O node at {} is already up (pid {}, for {}); nothing to do",
                node.url,
                node.pid,
                uptime(&node)
            ),
        );
    }
    printer.data(&node.url);
    Ok(Exit::Ok)
}

async fn stop(paths: &Paths, printer: &Printer, json: bool) -> Result<Exit> {
    let log = |msg: &str| printer.status("Engine", msg);
    let stopped = warm::stop(&work_dir(paths), &log).await?;
    let (status, node, message) = match &stopped {
        Stopped::NotRunning => (
            "not_running",
            None,
            "no warm H2O node is running".to_string(),
        ),
        Stopped::Unreadable(why) => (
            "not_running",
            None,
            format!("no warm H2O node is recorded ({why}; the file was removed)"),
        ),
        Stopped::Stale(node) => (
            "stale",
            Some(node),
            format!(
                "the warm H2O node at {} (pid {}) had already exited; its record was removed",
                node.url, node.pid
            ),
        ),
        Stopped::Stopped { node, killed } => (
            if *killed { "killed" } else { "stopped" },
            Some(node),
            format!(
                "the warm H2O node at {} (pid {}){}",
                node.url,
                node.pid,
                if *killed {
                    ", with SIGKILL: it did not exit within 10 s of SIGTERM"
                } else {
                    ""
                }
            ),
        ),
    };
    if json {
        let mut d = doc(status, node, paths);
        if let Some(d) = d.as_object_mut() {
            d.remove("uptime_secs");
        }
        printer.data(&serde_json::to_string_pretty(&d)?);
    } else {
        let verb = match stopped {
            Stopped::Stopped { .. } => "Stopped",
            Stopped::Stale(_) => "Removed",
            Stopped::NotRunning | Stopped::Unreadable(_) => "Skipped",
        };
        printer.status(verb, &message);
    }
    Ok(Exit::Ok)
}

async fn status(paths: &Paths, printer: &Printer, json: bool) -> Result<Exit> {
    let (state, node, health) = match warm::read(&work_dir(paths)) {
        Record::Absent => ("not_running", None, None),
        Record::Unreadable(why) => ("unreadable", None, Some(Err(why))),
        Record::Node(node) => match warm::probe(&node).await {
            Health::Alive(cloud) => ("running", Some(node), Some(Ok(cloud))),
            Health::Gone => ("stale", Some(node), None),
            Health::Unhealthy(why) => ("unhealthy", Some(node), Some(Err(why))),
        },
    };
    if json {
        let mut d = doc(state, node.as_ref(), paths);
        match &health {
            Some(Ok(cloud)) => d["cloud"] = serde_json::to_value(cloud)?,
            Some(Err(why)) => d["reason"] = json!(why),
            None => {}
        }
        printer.data(&serde_json::to_string_pretty(&d)?);
        return Ok(Exit::Ok);
    }
    let Some(node) = node else {
        match health {
            Some(Err(why)) => printer.data(&format!("not running ({why})")),
            _ => printer.data("not running"),
        }
        return Ok(Exit::Ok);
    };
    let headline = match (&health, state) {
        (Some(Ok(_)), _) => "running".to_string(),
        (Some(Err(why)), _) => format!("unhealthy: {why}"),
        (None, _) => format!(
            "stale: process {} is gone (the next run or `mlbuild h2o start` removes the record)",
            node.pid
        ),
    };
    let cloud = match &health {
        Some(Ok(c)) => format!(
            "{} ({} node{}, healthy, consensus)",
            c.cloud_name,
            c.cloud_size,
            if c.cloud_size == 1 { "" } else { "s" }
        ),
        _ => node.cloud_name.clone(),
    };
    let rows = [
        ("status", headline),
        ("url", node.url.clone()),
        ("pid", node.pid.to_string()),
        ("version", node.version.clone()),
        ("memory", node.memory.clone()),
        (
            "uptime",
            format!("{} (since {})", uptime(&node), node.started_at),
        ),
        ("cloud", cloud),
        ("log", node.log.display().to_string()),
    ];
    for (k, v) in rows {
        printer.data(&format!("{k:>8}  {v}"));
    }
    Ok(Exit::Ok)
}

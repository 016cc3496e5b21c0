//! Two OS processes moving the same tag at once (issue #5 point 5): on the same Postgres registry
//! (and on the default SQLite file), no move is lost and the history stays one unbroken chain.
//! Each worker runs `mlbuild promote` / `mlbuild rollback` as separate processes in a loop, so two
//! mlbuild processes are always contending for the tag.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::*;

const WORKERS: usize = 2;
const OPS: usize = 12;

#[test]
fn two_processes_promoting_on_postgres_lose_no_update() {
    let Some(db) = PgDb::create("the two-process Postgres promote test") else {
        return;
    };
    contend(Some(&db.url));
}

#[test]
fn two_processes_promoting_on_sqlite_lose_no_update() {
    contend(None);
}

/// What one `promote`/`rollback` process reported.
struct Op {
    reason: Option<String>,
    moved: Value,
}

#[allow(
    clippy::too_many_lines,
    reason = "one contention scenario: processes racing on one registry, then every invariant checked"
)]
fn contend(state_url: Option<&str>) {
    let p = Project::from_fixture("prostate");
    let command = |args: &[&str]| {
        let mut cmd = p.command(args);
        if let Some(url) = state_url {
            cmd.env("MLBUILD_STATE_URL", url);
        }
        cmd
    };
    // Versions whose MOJO bytes are in the project's store, so `models/production.zip` follows.
    let ids = register_versions(&p, state_url, WORKERS * OPS);
    let first = Run::from(
        command(&[
            "promote",
            "production",
            &ids[0],
            "--reason",
            "setup",
            "--json",
        ])
        .output()
        .unwrap(),
    )
    .ok();
    assert!(first.stdout.contains(&ids[0]));

    let ops: Vec<Op> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let ids = &ids;
                let command = &command;
                s.spawn(move || {
                    let mut ops = Vec::new();
                    for i in 0..OPS {
                        let (args, reason): (Vec<String>, _) = if i % 4 == 3 {
                            (vec!["rollback".into(), "production".into()], None)
                        } else {
                            let reason = format!("worker {w} op {i}");
                            let id = ids[w * OPS + i].clone();
                            let args = vec![
                                "promote".into(),
                                "production".into(),
                                id,
                                "--reason".into(),
                                reason.clone(),
                            ];
                            (args, Some(reason))
                        };
                        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
                        args.push("--json");
                        let run = Run::from(command(&args).output().unwrap());
                        if reason.is_none() && run.code == 1 && run.stderr.contains("roll back") {
                            continue; // nothing left to undo at that moment: a clear refusal
                        }
                        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
                        ops.push(Op {
                            reason,
                            moved: serde_json::from_str(&run.stdout).unwrap(),
                        });
                    }
                    ops
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });

    let history: Value = serde_json::from_str(
        &Run::from(
            command(&["history", "production", "--json"])
                .output()
                .unwrap(),
        )
        .ok()
        .stdout,
    )
    .unwrap();
    let history = history.as_array().unwrap();
    // One unbroken chain: every event starts where the previous one ended.
    assert_eq!(history[0]["from"], Value::Null);
    for pair in history.windows(2) {
        assert_eq!(pair[1]["from"], pair[0]["to"], "{history:#?}");
        assert_ne!(pair[1]["from"], pair[1]["to"]);
    }
    for e in history {
        for field in ["tag", "from", "to", "at", "by", "reason"] {
            assert!(e.get(field).is_some(), "history has `{field}`: {e}");
        }
    }
    // No update lost: every move a process reported is in the history, once.
    let changed: Vec<&Op> = ops
        .iter()
        .filter(|o| o.moved["from"] != o.moved["to"])
        .collect();
    assert_eq!(history.len(), 1 + changed.len(), "{history:#?}");
    let promoted: BTreeSet<&str> = changed.iter().filter_map(|o| o.reason.as_deref()).collect();
    let recorded: BTreeSet<&str> = history
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .filter(|r| r.starts_with("worker "))
        .collect();
    assert_eq!(promoted, recorded);
    let promotes = ops.iter().filter(|o| o.reason.is_some()).count();
    assert_eq!(
        promotes,
        WORKERS * (OPS - OPS / 4),
        "every promote succeeded"
    );

    // The tag and the model file agree with the last event; the file is whole.
    let tags: Value = serde_json::from_str(
        &Run::from(command(&["tags", "--json"]).output().unwrap())
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(tags["production"], history.last().unwrap()["to"]);
    let file = std::fs::read(p.file("models/production.zip")).unwrap();
    assert!(
        ids.iter().any(|id| file == mojo_bytes(id_index(&ids, id))),
        "models/production.zip is one version's MOJO, not a torn write"
    );
    eprintln!(
        "{} ops by {WORKERS} processes on {}: {} tag moves recorded",
        ops.len(),
        if state_url.is_some() {
            "Postgres"
        } else {
            "SQLite"
        },
        history.len()
    );
}

fn id_index(ids: &[String], id: &str) -> usize {
    ids.iter().position(|x| x == id).unwrap()
}

fn mojo_bytes(n: usize) -> Vec<u8> {
    format!("not a real MOJO, version {n}").into_bytes()
}

/// Registers `count` versions through the library, their bytes put in the project's store.
fn register_versions(p: &Project, state_url: Option<&str>, count: usize) -> Vec<String> {
    let cache = p.path.join("cache");
    let store = mlbuild::store::Store::open(&cache).unwrap();
    let url = match state_url {
        Some(u) => u.to_string(),
        None => mlbuild::registry::sqlite_url(&cache.join("state.db")),
    };
    runtime().block_on(async {
        let registry = mlbuild::registry::Registry::open(&url).await.unwrap();
        let mut ids = Vec::new();
        for n in 0..count {
            let model = store.put_bytes(&mojo_bytes(n)).unwrap();
            let (v, created) = registry
                .register(mlbuild::registry::NewVersion {
                    model,
                    canonical: format!("{n:064x}"),
                    algo: "GBM".into(),
                    metrics: serde_json::json!({ "auc": 0.8 }),
                    card: String::new(),
                    provenance: serde_json::json!({ "source": "registry_processes test" }),
                    run: None,
                })
                .await
                .unwrap();
            assert!(created);
            ids.push(v.id);
        }
        ids
    })
}

/// A run killed by SIGKILL stays `running` in the registry only until the next `run` of the
/// project, which finds its process gone and marks it `interrupted` (issue 11 point 9).
#[test]
fn a_killed_run_is_marked_interrupted_by_the_next_run() {
    let p = trained().clone_trained();
    // A run that escalates and then blocks in its hook: killed there, mid-run.
    p.edit("threshold = 0.70", "threshold = 0.9999");
    p.edit(
        "max_attempts = 2",
        "max_attempts = 1\n[modify.escalate]\ncommand = \"touch hook-started; sleep 20\"",
    );
    let mut cmd = p.command(&["run"]);
    cmd.env("MLBUILD_H2O_URL", "http://127.0.0.1:9")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    assert!(
        wait_until(60, || p.file("hook-started").exists()),
        "the run never reached its hook"
    );
    let hook_children = children_of(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    for pid in hook_children {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    let runs = || -> Vec<(i64, String)> {
        let url = format!("sqlite://{}", p.file("cache/state.db").display());
        runtime().block_on(async {
            let registry = mlbuild::registry::Registry::open(&url).await.unwrap();
            let runs = registry.recent_runs(100).await.unwrap();
            registry.close().await;
            runs.into_iter()
                .map(|r| (r.id, r.status.to_string()))
                .collect()
        })
    };
    let killed = runs()[0].clone();
    assert_eq!(killed.1, "running", "{killed:?}");

    p.edit("threshold = 0.9999", "threshold = 0.70");
    p.mlbuild_offline(&["run", "define"]).ok();
    let after = runs();
    let status = |id: i64| after.iter().find(|r| r.0 == id).unwrap().1.clone();
    assert_eq!(status(killed.0), "interrupted", "{after:?}");
    assert_eq!(after[0].1, "ok", "{after:?}");
}

/// The pids of a process's children (Linux `/proc`), so a test can stop what it started.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            for child in text
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
            {
                out.push(child);
                out.extend(children_of(child));
            }
        }
    }
    out
}

//! `mlbuild h2o start | stop | status`: a warm node that runs use, and that outlives them.
//!
//! These tests launch their own nodes (no `MLBUILD_H2O_URL`: `Project::command` removes it), so
//! each holds a [`WarmGuard`] that stops the node and kills any JVM of the project's cache dir
//! even when an assertion fails.

use serde_json::Value;

use crate::support::{jvms_mentioning, trained, wait_until, Project, Run};

fn cache_marker(p: &Project) -> String {
    p.file("cache").display().to_string()
}

/// `mlbuild h2o ARGS --json` in `p`, successful, as one JSON document.
pub(crate) fn h2o_json(p: &Project, args: &[&str]) -> Value {
    let mut all = vec!["h2o"];
    all.extend_from_slice(args);
    all.push("--json");
    let run = Run::from(p.command(&all).output().unwrap()).ok();
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("`{}` is not JSON ({e}):\n{}", all.join(" "), run.stdout))
}

/// Stops the project's warm node and kills every JVM of its cache dir when dropped.
pub(crate) struct WarmGuard(String, std::path::PathBuf);

impl WarmGuard {
    pub(crate) fn new(p: &Project) -> WarmGuard {
        WarmGuard(cache_marker(p), p.path.clone())
    }
}

impl Drop for WarmGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new(crate::support::BIN)
            .args(["-C"])
            .arg(&self.1)
            .args(["-q", "h2o", "stop"])
            .env_remove("MLBUILD_H2O_URL")
            .env_remove("MLBUILD_CACHE_DIR")
            .output();
        for pid in jvms_mentioning(&self.0) {
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: start, runs on the warm node, stop, in the order a user lives it"
)]
fn a_warm_node_serves_runs_until_stopped() {
    let p = trained().clone_trained();
    let _guard = WarmGuard::new(&p);
    let marker = cache_marker(&p);

    let started = h2o_json(&p, &["start"]);
    assert_eq!(started["status"], "started", "{started}");
    let url = started["url"].as_str().unwrap().to_string();
    let pid = started["pid"].as_u64().unwrap() as u32;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(started["version"], "3.46.0.11");
    assert_eq!(
        jvms_mentioning(&marker),
        vec![pid],
        "one JVM, the recorded one"
    );

    let status = h2o_json(&p, &["status"]);
    assert_eq!(status["status"], "running", "{status}");
    assert_eq!(status["url"], url.as_str());
    assert_eq!(status["cloud"]["healthy"], true, "{status}");

    // A second start is a no-op.
    let again = h2o_json(&p, &["start"]);
    assert_eq!(again["status"], "running", "{again}");
    assert_eq!(again["pid"], pid);
    assert_eq!(jvms_mentioning(&marker), vec![pid]);

    // A run that trains uses the warm node, launches nothing, and leaves it running.
    let run = Run::from(
        p.command(&["run", "--json", "--force", "execute"])
            .output()
            .unwrap(),
    )
    .ok();
    assert_eq!(run.done()["h2o_started"], true);
    assert_eq!(run.statuses()["execute"], "ran");
    assert!(
        run.stderr
            .contains(&format!("using the warm node at {url}")),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("starting a local H2O"),
        "{}",
        run.stderr
    );
    assert_eq!(
        jvms_mentioning(&marker),
        vec![pid],
        "the warm node lives on"
    );
    assert_eq!(h2o_json(&p, &["status"])["status"], "running");

    // Another `[h2o] memory` than the warm node's: a managed node, stopped after the run.
    let other = Run::from(
        p.command(&[
            "run",
            "--json",
            "--force",
            "execute",
            "--set",
            "h2o.memory=1g",
        ])
        .output()
        .unwrap(),
    )
    .ok();
    assert!(
        other.stderr.contains("not using the warm H2O node")
            && other.stderr.contains("starting a local H2O"),
        "{}",
        other.stderr
    );
    assert_eq!(
        jvms_mentioning(&marker),
        vec![pid],
        "only the warm node is left"
    );

    let stopped = h2o_json(&p, &["stop"]);
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    assert!(
        wait_until(10, || jvms_mentioning(&marker).is_empty()),
        "the JVM is gone: {:?}",
        jvms_mentioning(&marker)
    );
    assert_eq!(h2o_json(&p, &["status"])["status"], "not_running");
    assert_eq!(h2o_json(&p, &["stop"])["status"], "not_running");
    let human = Run::from(p.command(&["h2o", "status"]).output().unwrap()).ok();
    assert!(human.stdout.contains("not running"), "{}", human.stdout);
}

#[test]
fn a_stale_warm_node_is_replaced_by_a_managed_one() {
    let p = trained().clone_trained();
    let _guard = WarmGuard::new(&p);
    let marker = cache_marker(&p);

    let started = h2o_json(&p, &["start"]);
    let pid = started["pid"].as_u64().unwrap() as u32;
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    assert!(
        wait_until(10, || jvms_mentioning(&marker).is_empty()),
        "the killed JVM is gone"
    );
    assert_eq!(h2o_json(&p, &["status"])["status"], "stale");

    let run = Run::from(
        p.command(&["run", "--json", "--force", "execute"])
            .output()
            .unwrap(),
    )
    .ok();
    assert_eq!(run.done()["h2o_started"], true);
    assert!(
        run.stderr.contains("is gone; its record was removed")
            && run.stderr.contains("starting a local H2O"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("warning:").count(),
        1,
        "one warning:\n{}",
        run.stderr
    );
    assert!(
        jvms_mentioning(&marker).is_empty(),
        "the managed node was stopped: {:?}",
        jvms_mentioning(&marker)
    );
    assert_eq!(h2o_json(&p, &["status"])["status"], "not_running");
}

#[test]
fn start_refuses_a_configured_cluster_url() {
    let p = Project::from_fixture("prostate");
    let run = Run::from(
        p.command(&["h2o", "start"])
            .env("MLBUILD_H2O_URL", "http://127.0.0.1:9")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("MLBUILD_H2O_URL") && run.stderr.contains("hint:"),
        "{}",
        run.stderr
    );
    assert!(!p.file("cache/h2o/warm-node-v1.json").exists());
}

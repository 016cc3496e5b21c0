//! The managed node's life and runs that are interrupted or concurrent (issue #2 points 2, 8).

use std::process::Stdio;
use std::time::Duration;

use crate::support::*;

fn cache_marker(p: &Project) -> String {
    p.file("cache").display().to_string()
}

/// Starts `mlbuild run` with a managed node (no URL) and returns it once its JVM is up.
fn spawn_managed(p: &Project) -> std::process::Child {
    let child = p
        .command(&["run", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let marker = cache_marker(p);
    assert!(
        wait_until(120, || !jvms_mentioning(&marker).is_empty()),
        "the managed JVM started"
    );
    child
}

#[test]
fn managed_node_runs_the_pipeline_and_is_gone_afterwards() {
    let p = Project::from_fixture("prostate");
    let run = Run::from(p.command(&["run", "--json"]).output().unwrap()).ok();
    assert_eq!(run.done()["h2o_started"], true);
    assert!(
        run.stderr.contains("starting a local H2O 3.46.0.11 node"),
        "{}",
        run.stderr
    );
    assert!(
        jvms_mentioning(&cache_marker(&p)).is_empty(),
        "no JVM outlives the run"
    );
    // And the warm run starts none.
    let warm = Run::from(p.command(&["run", "--json"]).output().unwrap()).ok();
    assert_eq!(warm.done()["h2o_started"], false);
}

#[test]
fn sigkill_of_mlbuild_kills_the_jvm_and_the_next_run_succeeds() {
    let p = Project::from_fixture("prostate");
    let mut child = spawn_managed(&p);
    let marker = cache_marker(&p);
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    assert!(
        wait_until(30, || jvms_mentioning(&marker).is_empty()),
        "the JVM died with mlbuild: {:?}",
        jvms_mentioning(&marker)
    );
    // Whatever was interrupted, the next run completes.
    let run = p.mlbuild(&["run", "--json"]).ok();
    assert_eq!(run.done()["status"], "ok");
}

#[test]
fn ctrl_c_stops_the_node_cleanly() {
    let p = Project::from_fixture("prostate");
    let child = spawn_managed(&p);
    let marker = cache_marker(&p);
    std::thread::sleep(Duration::from_millis(500));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 130, "{}", run.stderr);
    assert!(run.stderr.contains("error: interrupted"), "{}", run.stderr);
    // mlbuild waited for the JVM before exiting.
    assert!(
        jvms_mentioning(&marker).is_empty(),
        "{:?}",
        jvms_mentioning(&marker)
    );
    let run = p.mlbuild(&["run", "--json"]).ok();
    assert_eq!(run.done()["status"], "ok");
}

#[test]
fn a_second_run_waits_for_the_first() {
    let p = trained().clone_trained();
    let lock_path = p.file("cache/v1/run.lock");
    let held = mlbuild::store::RunLock::acquire(&lock_path, |_| panic!("free")).unwrap();
    let child = p
        .command(&["run", "--json"])
        .env("MLBUILD_H2O_URL", "http://127.0.0.1:9")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    drop(held);
    let run = Run::from(child.wait_with_output().unwrap()).ok();
    assert!(
        run.stderr.contains("waiting for another mlbuild run"),
        "{}",
        run.stderr
    );
    assert!(run.statuses().values().all(|s| s == "cached"));
}

#[test]
fn a_corrupt_blob_is_detected_and_rebuilt() {
    let p = trained().clone_trained();
    // Corrupt the stored holdout predictions: monitor must not use them.
    let lock: serde_json::Value = serde_json::from_str(&p.read("ml.lock")).unwrap();
    let execute = lock["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "execute")
        .unwrap();
    let digest = execute["outputs"]["predictions"].as_str().unwrap();
    let blob = p.file(&format!("cache/v1/cas/{}/{}", &digest[..2], digest));
    std::fs::write(&blob, "tampered").unwrap();
    let run = p.mlbuild(&["run", "--json", "--force", "monitor"]);
    assert_ne!(run.code, 0, "a corrupt blob is never used");
    assert!(run.stderr.contains("corrupt"), "{}", run.stderr);
    // It was removed; the step that made it reruns and the next run succeeds.
    let run = p.mlbuild(&["run", "--json"]).ok();
    assert_eq!(run.statuses()["execute"], "ran");
}

/// Reads a child's stderr on a thread so the test can wait for lines as they come.
fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    rx
}

fn wait_for(
    rx: &std::sync::mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    needle: &str,
    secs: u64,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line.clone());
            if line.contains(needle) {
                return;
            }
        }
    }
    panic!(
        "`{needle}` did not appear within {secs}s:\n{}",
        seen.join("\n")
    );
}

/// `mlbuild watch` started with piped output, and its stderr lines as they come.
fn spawn_watch(
    mut cmd: std::process::Command,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stderr_lines(&mut child);
    (child, rx)
}

#[test]
fn watch_reruns_stale_steps_on_edits_and_keeps_one_node_warm() {
    let p = Project::from_fixture("prostate");
    let marker = cache_marker(&p);
    let (mut child, rx) = spawn_watch(p.command(&["watch"]));
    let mut seen = Vec::new();
    wait_for(&rx, &mut seen, "Watching", 180);
    assert!(
        seen.iter().any(|l| l.contains("ran conclude")),
        "the first iteration ran everything:\n{}",
        seen.join("\n")
    );
    let jvms = jvms_mentioning(&marker);
    assert_eq!(jvms.len(), 1, "one warm node");

    // A threshold edit: monitor and modify rerun, no training.
    seen.clear();
    p.edit("threshold = 0.70", "threshold = 0.65");
    wait_for(&rx, &mut seen, "Watching", 60);
    let text = seen.join("\n");
    assert!(
        text.contains("ran monitor") && text.contains("cached execute"),
        "{text}"
    );

    // An execute edit retrains on the same warm node.
    seen.clear();
    p.edit("max_models = 2", "max_models = 3");
    wait_for(&rx, &mut seen, "Watching", 120);
    let text = seen.join("\n");
    assert!(text.contains("ran execute"), "{text}");
    assert!(
        !text.contains("starting a local H2O"),
        "no second node: {text}"
    );
    assert_eq!(jvms_mentioning(&marker), jvms, "the same JVM");

    // A broken ml.toml is reported and the watch goes on.
    seen.clear();
    p.edit("max_models = 3", "max_models = \"x\"");
    wait_for(&rx, &mut seen, "Watching", 30);
    assert!(seen.join("\n").contains("error:"), "{}", seen.join("\n"));

    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        jvms_mentioning(&marker).is_empty(),
        "Ctrl-C stopped the node"
    );
}

#[test]
fn watch_follows_a_globs_files_and_reruns_on_an_interval() {
    let p = trained().clone_trained();
    let mut cmd = p.command(&["watch", "--interval", "2"]);
    cmd.env("MLBUILD_H2O_URL", shared_node());
    let (mut child, rx) = spawn_watch(cmd);
    let mut seen = Vec::new();
    wait_for(&rx, &mut seen, "Watching", 60);
    assert!(
        seen.iter().any(|l| l.contains("rerunning every 2s")),
        "{}",
        seen.join("\n")
    );
    // No edit: the interval alone starts the next iteration, which finds nothing stale.
    seen.clear();
    wait_for(&rx, &mut seen, "Watching", 30);
    let text = seen.join("\n");
    assert!(
        text.contains("the interval passed") && text.contains("cached conclude"),
        "{text}"
    );

    // A glob source: a new file that matches is a change, seen without touching ml.toml.
    p.edit("path = \"data/prostate.csv\"", "path = \"data/*.csv\"");
    std::thread::sleep(std::time::Duration::from_secs(1));
    p.write("data/extra.csv", "ID,AGE\n1,65\n");
    wait_for(
        &rx,
        &mut seen,
        "has different columns from `data/extra.csv`",
        60,
    );
    seen.clear();
    wait_for(&rx, &mut seen, "Watching", 30);
    assert!(
        seen.join("\n").contains("`data/extra.csv`"),
        "the glob's new file is watched: {}",
        seen.join("\n")
    );

    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    assert_eq!(child.wait().unwrap().code(), Some(130));
}

/// `watch` shows an escalation as `run` does — with its hint — and records the same run status
/// and report (it printed the message alone and recorded no report).
#[test]
fn watch_shows_and_records_an_escalation_as_run_does() {
    let p = trained().clone_trained();
    p.edit("threshold = 0.70", "threshold = 0.999");
    p.edit("max_attempts = 2", "max_attempts = 1");
    let mut cmd = p.command(&["watch"]);
    cmd.env("MLBUILD_H2O_URL", "http://127.0.0.1:9");
    let (mut child, rx) = spawn_watch(cmd);
    let mut seen = Vec::new();
    wait_for(&rx, &mut seen, "Watching", 60);
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    assert!(
        text.contains("error: escalated: the threshold was not met after 1 attempt"),
        "{text}"
    );
    assert!(text.contains("hint: loosen `define.threshold`"), "{text}");
    let url = mlbuild::registry::sqlite_url(&p.file("cache/state.db"));
    let runs = runtime().block_on(async {
        let registry = mlbuild::registry::Registry::open_read(&url).await.unwrap();
        registry.recent_runs(1).await.unwrap()
    });
    assert_eq!(runs[0].command, "watch");
    assert_eq!(runs[0].status.as_str(), "escalated");
    assert!(
        runs[0]
            .report
            .as_deref()
            .is_some_and(|r| r.starts_with("escalated: the threshold was not met")),
        "{:?}",
        runs[0]
    );
}

//! Nothing of a run outlives it on a cluster mlbuild does not own (issue 11, point 4): SIGINT
//! and SIGTERM during AutoML cancel the run's jobs and remove its frames, models and AutoML
//! project, on an external cluster (`MLBUILD_H2O_URL`), on a warm node and under `watch`; and a
//! successful run leaves nothing behind either (AutoML's validation split included).
//!
//! These tests own their nodes, so that "the node is empty" is a meaningful check: the external
//! tests share one node of this module (launched like the shared node, dying with the test
//! process) and run one at a time; the warm-node test starts its own with `mlbuild h2o start`.
//! A [`Scrub`] guard cancels every job and empties the node when a test ends, pass or fail.

use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::h2o_warm::{h2o_json, WarmGuard};
use crate::support::{launch_node, runtime, text_project, wait_until, Project, Run};

struct OwnNode {
    url: String,
    pid: u32,
    _node: mlbuild::h2o::LocalNode,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

static NODE: OnceLock<OwnNode> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::new(());

/// This module's node, and the right to use it alone.
fn own_node() -> (&'static str, MutexGuard<'static, ()>) {
    let (node, serial) = own_node_and_pid();
    (&node.url, serial)
}

fn own_node_and_pid() -> (&'static OwnNode, MutexGuard<'static, ()>) {
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let node = NODE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::Builder::new()
            .prefix("mlbuild-cancel-node-")
            .tempdir()
            .unwrap();
        let node = runtime.block_on(launch_node(dir.path().to_path_buf(), "1g", 1, None));
        OwnNode {
            url: node.url(),
            pid: node.pid(),
            _node: node,
            _runtime: runtime,
            _dir: dir,
        }
    });
    (node, serial)
}

fn h2o(method: reqwest::Method, url: String) -> Value {
    runtime().block_on(async {
        let resp = reqwest::Client::new()
            .request(method, &url)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        resp.json().await.unwrap_or(Value::Null)
    })
}

/// What a node holds: frame ids, model ids, and the RUNNING jobs as "description → destination".
#[derive(Debug, Default, PartialEq)]
struct Contents {
    frames: Vec<String>,
    models: Vec<String>,
    running: Vec<String>,
}

impl Contents {
    fn of(url: &str) -> Contents {
        let names = |v: Value, list: &str, id: &str| -> Vec<String> {
            v[list]
                .as_array()
                .unwrap_or(&Vec::new())
                .iter()
                .map(|x| x[id]["name"].as_str().unwrap_or("?").to_string())
                .collect()
        };
        let jobs = h2o(reqwest::Method::GET, format!("{url}/3/Jobs"));
        Contents {
            frames: names(
                h2o(reqwest::Method::GET, format!("{url}/3/Frames")),
                "frames",
                "frame_id",
            ),
            models: names(
                h2o(reqwest::Method::GET, format!("{url}/3/Models")),
                "models",
                "model_id",
            ),
            running: jobs["jobs"]
                .as_array()
                .unwrap_or(&Vec::new())
                .iter()
                .filter(|j| j["status"] == "RUNNING")
                .map(|j| {
                    format!(
                        "{} → {}",
                        j["description"].as_str().unwrap_or("?"),
                        j["dest"]["name"].as_str().unwrap_or("?")
                    )
                })
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        *self == Contents::default()
    }
}

/// Asserts that nothing is left on the node, after a short settle (a cancelled job takes up to
/// a second to end).
fn assert_empty(url: &str, what: &str) {
    wait_until(5, || Contents::of(url).is_empty());
    let left = Contents::of(url);
    assert!(left.is_empty(), "{what} left this on the node: {left:#?}");
}

/// Cancels every running job and removes every key of a node when dropped, so that a failed
/// test (say, an AutoML left running) does not spill into the next one.
struct Scrub(String);

impl Drop for Scrub {
    fn drop(&mut self) {
        let url = &self.0;
        let jobs = h2o(reqwest::Method::GET, format!("{url}/3/Jobs"));
        for j in jobs["jobs"].as_array().into_iter().flatten() {
            if j["status"] == "RUNNING" {
                let key = j["key"]["name"].as_str().unwrap_or_default();
                h2o(reqwest::Method::POST, format!("{url}/3/Jobs/{key}/cancel"));
            }
        }
        wait_until(10, || Contents::of(url).running.is_empty());
        h2o(reqwest::Method::DELETE, format!("{url}/3/DKV"));
    }
}

/// The prostate fixture with an AutoML that runs long enough to be interrupted.
fn long_automl() -> Project {
    let p = Project::from_fixture("prostate");
    make_long(&p);
    p
}

/// 20 models of three algorithms, 2 folds: it is cancelled about a second in, so the test
/// stays short.
fn make_long(p: &Project) {
    p.edit("max_models = 2", "max_models = 20");
    p.edit("nfolds = 0", "nfolds = 2");
    p.edit(
        "include_algos = [\"GLM\", \"GBM\"]",
        "include_algos = [\"GBM\", \"DRF\", \"XGBoost\"]",
    );
}

/// Starts `cmd`, waits until AutoML runs on the node at `url` and has built a model, sends
/// `signal`, and returns the finished run with the time from the signal to the exit.
fn interrupt_during_automl(url: &str, mut cmd: Command, signal: i32) -> (Run, Duration) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let building = wait_until(180, || {
        let c = Contents::of(url);
        c.running.iter().any(|j| j.starts_with("AutoML")) && !c.models.is_empty()
    });
    if !building {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "AutoML never ran with a model built: {:#?}\n{}",
            Contents::of(url),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let t = Instant::now();
    // SAFETY: plain syscall on our own child.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "mlbuild did not exit within 60 s of the signal:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = t.elapsed();
    (Run::from(child.wait_with_output().unwrap()), elapsed)
}

/// Exit 130, promptly (the release budget is 10 s; a cancel takes about one), saying so.
fn assert_interrupted(run: &Run, elapsed: Duration) {
    eprintln!("exit {} {elapsed:?} after the signal", run.code);
    assert_eq!(run.code, 130, "{}", run.stderr);
    assert!(
        elapsed < Duration::from_secs(15),
        "exited {elapsed:?} after the signal:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("error: interrupted"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("could not remove"),
        "everything was removed:\n{}",
        run.stderr
    );
}

fn external(p: &Project, url: &str, args: &[&str]) -> Command {
    let mut cmd = p.command(args);
    cmd.env("MLBUILD_H2O_URL", url);
    cmd
}

#[test]
fn sigint_on_an_external_cluster_cancels_automl_and_removes_the_run() {
    let (url, _serial) = own_node();
    let _scrub = Scrub(url.to_string());
    assert_empty(url, "an earlier test");
    let p = long_automl();
    let (run, elapsed) =
        interrupt_during_automl(url, external(&p, url, &["run", "--json"]), libc::SIGINT);
    assert_interrupted(&run, elapsed);
    assert!(
        run.stderr.contains("cancelling this run's H2O jobs"),
        "{}",
        run.stderr
    );
    assert_empty(url, "an interrupted run");
}

#[test]
fn sigterm_on_an_external_cluster_cancels_automl_and_removes_the_run() {
    let (url, _serial) = own_node();
    let _scrub = Scrub(url.to_string());
    assert_empty(url, "an earlier test");
    let p = long_automl();
    let (run, elapsed) =
        interrupt_during_automl(url, external(&p, url, &["run", "--json"]), libc::SIGTERM);
    assert_interrupted(&run, elapsed);
    assert_empty(url, "a terminated run");
}

#[test]
fn ctrl_c_on_watch_cancels_automl_and_removes_its_work() {
    let (url, _serial) = own_node();
    let _scrub = Scrub(url.to_string());
    assert_empty(url, "an earlier test");
    let p = long_automl();
    let (run, elapsed) = interrupt_during_automl(url, external(&p, url, &["watch"]), libc::SIGINT);
    assert_interrupted(&run, elapsed);
    assert_empty(url, "an interrupted watch");
}

#[test]
fn successful_runs_leave_nothing_on_an_external_cluster() {
    let (url, _serial) = own_node();
    let _scrub = Scrub(url.to_string());
    assert_empty(url, "an earlier test");
    // nfolds = 0: AutoML splits off a validation frame, which a cascade delete leaves behind.
    let p = Project::from_fixture("prostate");
    let run = Run::from(external(&p, url, &["run", "--json"]).output().unwrap()).ok();
    assert_eq!(run.statuses()["execute"], "ran");
    assert_empty(url, "a successful run");
    // Word2Vec (a model, a Rapids session and its frames) in prepare, then AutoML.
    let t = text_project();
    let run = Run::from(external(&t, url, &["run", "--json"]).output().unwrap()).ok();
    assert_eq!(run.statuses()["prepare"], "ran");
    assert_empty(url, "a successful run with Word2Vec");
    // The steps cleaned up after themselves: the run's end had nothing left to remove.
    assert!(
        !run.stderr.contains("cancelling this run's"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_warm_node_keeps_nothing_of_a_finished_or_interrupted_run() {
    let p = Project::from_fixture("prostate");
    let _guard = WarmGuard::new(&p);
    let started = h2o_json(&p, &["start"]);
    let url = started["url"].as_str().unwrap().to_string();
    let _scrub = Scrub(url.clone());

    let run = Run::from(p.command(&["run", "--json"]).output().unwrap()).ok();
    assert!(run.stderr.contains("using the warm node"), "{}", run.stderr);
    assert_empty(&url, "a successful run on the warm node");

    make_long(&p);
    let (run, elapsed) = interrupt_during_automl(&url, p.command(&["run", "--json"]), libc::SIGINT);
    assert_interrupted(&run, elapsed);
    assert!(run.stderr.contains("using the warm node"), "{}", run.stderr);
    assert_empty(&url, "an interrupted run on the warm node");
    assert_eq!(h2o_json(&p, &["status"])["status"], "running");
}

/// Resumes a JVM stopped with SIGSTOP when dropped (before the [`Scrub`] that needs it).
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        // SAFETY: plain syscall on the test's own node.
        unsafe {
            libc::kill(self.0 as i32, libc::SIGCONT);
        }
    }
}

/// Interrupts a run during AutoML after freezing the node (SIGSTOP: it accepts connections and
/// answers nothing); then `then` (e.g. a second signal), and returns the run and the time from
/// the first signal to the exit.
fn interrupt_with_a_frozen_node(then: impl FnOnce(u32)) -> (Run, Duration) {
    let (node, _serial) = own_node_and_pid();
    let url = node.url.as_str();
    let _scrub = Scrub(url.to_string());
    assert_empty(url, "an earlier test");
    let p = long_automl();
    let mut child = external(&p, url, &["run", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(180, || {
            let c = Contents::of(url);
            c.running.iter().any(|j| j.starts_with("AutoML")) && !c.models.is_empty()
        }),
        "AutoML never ran"
    );
    let _resume = Resume(node.pid);
    let t = Instant::now();
    // SAFETY: plain syscalls on the test's own node and child.
    unsafe {
        libc::kill(node.pid as i32, libc::SIGSTOP);
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    then(child.id());
    while child.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = t.elapsed();
    let _ = child.kill();
    (Run::from(child.wait_with_output().unwrap()), elapsed)
}

#[test]
fn an_unresponsive_cluster_costs_at_most_the_budget_and_is_reported() {
    let (run, elapsed) = interrupt_with_a_frozen_node(|_| {});
    assert_eq!(run.code, 130, "{}", run.stderr);
    assert!(
        elapsed >= Duration::from_secs(10) && elapsed < Duration::from_secs(15),
        "exited {elapsed:?} after the signal (budget 10 s):\n{}",
        run.stderr
    );
    let warning = run
        .stderr
        .lines()
        .find(|l| l.contains("could not remove everything this run made"))
        .unwrap_or_else(|| panic!("no warning:\n{}", run.stderr));
    assert!(
        warning.contains("it took longer than 10 s")
            && warning.contains("AutoML project `mlb")
            && warning.contains("@@CAPSULE`")
            && warning.contains("_train`")
            && warning.contains("(may still be running)"),
        "{warning}"
    );
}

#[test]
fn a_second_ctrl_c_skips_the_cleanup() {
    let (run, elapsed) = interrupt_with_a_frozen_node(|pid| {
        std::thread::sleep(Duration::from_secs(1));
        // SAFETY: plain syscall on our own child.
        unsafe {
            libc::kill(pid as i32, libc::SIGINT);
        }
    });
    assert_eq!(run.code, 130, "{}", run.stderr);
    assert!(
        elapsed < Duration::from_secs(4),
        "exited {elapsed:?} after the first signal:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("(interrupted again)") && run.stderr.contains("AutoML project `mlb"),
        "{}",
        run.stderr
    );
}

//! H2O as a cluster (issue 14): a real cloud of two JVMs on loopback, used through the
//! external-cluster path (`MLBUILD_H2O_URL`, declared `nodes = 2` and `threads`), and a managed
//! two-node cloud (`[h2o] nodes = 2`, no URL) that never outlives mlbuild.

use std::process::Stdio;
use std::sync::OnceLock;

use serde_json::Value;

use crate::support::*;

struct Cloud {
    url: String,
    _node: mlbuild::h2o::LocalNode,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// A cloud of two JVMs (1 thread and 1 GB each), started once for this test binary through
/// the same launcher as a managed engine: a unique `-name`, a flatfile of both nodes'
/// `127.0.0.1:port` lines, waited for until `/3/Cloud` reports 2 nodes in consensus.
fn two_node_cloud() -> &'static str {
    &cloud().url
}

fn cloud() -> &'static Cloud {
    static CLOUD: OnceLock<Cloud> = OnceLock::new();
    CLOUD.get_or_init(|| {
        let runtime = runtime();
        let dir = tempfile::tempdir().unwrap();
        let node = runtime.block_on(launch_node(dir.path().to_path_buf(), "1g", 2, Some(1)));
        Cloud {
            url: node.url(),
            _node: node,
            _runtime: runtime,
            _dir: dir,
        }
    })
}

/// Every line the cloud's nodes logged so far.
fn cloud_logs() -> String {
    logs_under(cloud()._dir.path())
}

/// `GET /3/Cloud` of the cluster at `url`.
fn cloud_status(url: &str) -> Value {
    runtime().block_on(async {
        reqwest::get(format!("{url}/3/Cloud"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

fn on_cloud(p: &Project, args: &[&str]) -> Run {
    let mut cmd = p.command(args);
    cmd.env("MLBUILD_H2O_URL", two_node_cloud());
    Run::from(cmd.output().unwrap())
}

fn cluster_project(h2o: &str) -> Project {
    let p = Project::from_fixture("prostate");
    let text = p.read("ml.toml");
    p.write("ml.toml", &format!("{text}\n[h2o]\n{h2o}\n"));
    p
}

fn canonical_model(p: &Project) -> String {
    locked_entry(p, "execute")["outputs"]["mojo"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The demo pipeline runs end to end on the cloud through its URL; forcing execute twice on
/// the same cloud gives the same canonical MOJO each time.
#[test]
fn the_demo_runs_on_a_two_node_cluster_and_reruns_reproducibly() {
    let cloud = two_node_cloud();
    let c = cloud_status(cloud);
    assert_eq!(c["cloud_size"], 2, "{c}");
    assert_eq!(c["consensus"], true);
    // Every request goes to the leader: a client given the other node is pointed at it.
    let leader = c["nodes"][0]["ip_port"].as_str().unwrap().to_string();
    let other = c["nodes"][1]["ip_port"].as_str().unwrap().to_string();
    let checked = runtime().block_on(async {
        mlbuild::h2o::Client::new(&format!("http://{other}"))
            .unwrap()
            .check_fingerprint(&mlbuild::h2o::Declared {
                version: "3.46.0.11".into(),
                nodes: 2,
                threads: Some(1),
            })
            .await
            .unwrap()
    });
    assert_eq!(checked.display_url(), format!("http://{leader}"));

    // The first run hands the data over through an exchange directory that the nodes read
    // (not hidden: H2O's default `-file_deny_glob` refuses paths with a `.` component).
    let shared = tempfile::Builder::new()
        .prefix("mlbuild-exchange")
        .tempdir()
        .unwrap();
    let p = cluster_project("nodes = 2\nthreads = 1");
    let mut cmd = p.command(&["run", "--json"]);
    cmd.env("MLBUILD_H2O_URL", cloud)
        .env("MLBUILD_H2O_EXCHANGE_DIR", shared.path());
    let run = Run::from(cmd.output().unwrap()).ok();
    assert_eq!(run.done()["status"], "ok", "{}", run.stderr);
    assert!(!run.stderr.contains("through one node"), "{}", run.stderr);
    let root = shared.path().join("mlbuild-exchange-v1");
    let imported = format!("ImportFiles?path={}", root.display()).replace('/', "%2F");
    let logs = cloud_logs();
    assert!(
        logs.contains(&format!("path={}", root.display())) || logs.contains(&imported),
        "the nodes imported from the exchange: {}",
        logs.lines()
            .filter(|l| l.contains("ImportFiles") || l.contains("PostFile"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let left: Vec<_> = walk(&root)
        .into_iter()
        .filter(|f| !f.ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "no run needs them any more: {left:?}");
    // Without it, the same cluster is fed by upload, with one warning.
    let run = on_cloud(&p, &["run", "--force", "execute"]).ok();
    assert_eq!(
        run.stderr.matches("through one node").count(),
        1,
        "one warning that the data goes through one node: {}",
        run.stderr
    );
    let lock: Value = serde_json::from_str(&p.read("ml.lock")).unwrap();
    assert_eq!(
        lock["engine"],
        serde_json::json!({ "version": "3.46.0.11", "nodes": 2, "threads": 1 })
    );
    let first = canonical_model(&p);
    on_cloud(&p, &["run", "--force", "execute"]).ok();
    assert_eq!(
        first,
        canonical_model(&p),
        "the same cloud trains the same model"
    );
}

/// What `ml.toml` declares is checked before any work on the cluster: a node count or a
/// thread count that differs fails with both values and a hint, and nothing runs on it.
#[test]
fn a_cluster_of_another_shape_is_refused_before_any_upload() {
    let p = cluster_project("nodes = 3\nthreads = 1");
    let run = on_cloud(&p, &["run"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("has 2 node(s), but 3 are declared")
            && run.stderr.contains("hint: set `[h2o] nodes = 2`"),
        "{}",
        run.stderr
    );
    let p = cluster_project("nodes = 2\nthreads = 2");
    let run = on_cloud(&p, &["run"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("runs 1 thread(s) per node, but `[h2o] threads = 2` is declared")
            && run.stderr.contains("hint: set `[h2o] threads = 1`"),
        "{}",
        run.stderr
    );
    // The single shared node is not a two-node cluster either.
    let run = {
        let mut cmd = p.command(&["run"]);
        cmd.env("MLBUILD_H2O_URL", shared_node());
        Run::from(cmd.output().unwrap())
    };
    assert!(
        run.stderr.contains("has 1 node(s), but 2 are declared"),
        "{}",
        run.stderr
    );
    // Refused at the engine's start: execute is recorded failed in each run, never ran.
    let runs: Value =
        serde_json::from_str(&p.mlbuild_offline(&["runs", "--json"]).ok().stdout).unwrap();
    for run in runs.as_array().unwrap() {
        assert_eq!(run["status"], "failed", "{run}");
        let before_execute =
            run["steps"]["ran"].as_u64().unwrap() + run["steps"]["cached"].as_u64().unwrap();
        assert_eq!(before_execute, 4, "define … confirm, not execute: {run}");
        assert_eq!(run["steps"]["failed"], 1, "{run}");
    }
}

/// An exchange directory that does not exist here is an error naming it, with a hint (never
/// created: a missing mount must not become a local directory the nodes cannot see); `cache
/// gc` removes what killed runs left in one.
#[test]
fn a_missing_exchange_dir_fails_clearly_and_gc_sweeps_a_killed_runs_leftovers() {
    let p = cluster_project("nodes = 2\nthreads = 1");
    let shared = tempfile::Builder::new()
        .prefix("mlbuild-exchange")
        .tempdir()
        .unwrap();
    let missing = shared.path().join("not-mounted");
    let mut cmd = p.command(&["run"]);
    cmd.env("MLBUILD_H2O_URL", two_node_cloud())
        .env("MLBUILD_H2O_EXCHANGE_DIR", &missing);
    let run = Run::from(cmd.output().unwrap());
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "could not import `{}` from the exchange directory: the directory does not exist here",
            missing.display()
        )) && run
            .stderr
            .contains("hint: `[h2o] exchange_dir` must be readable by every node"),
        "{}",
        run.stderr
    );
    assert!(!missing.exists());
    // A run killed while it held a lease: its lease names a pid that is gone.
    let root = shared.path().join("mlbuild-exchange-v1");
    std::fs::create_dir_all(root.join("leases")).unwrap();
    let digest = "ab".repeat(32);
    std::fs::write(root.join(format!("{digest}.csv")), "x\n1\n").unwrap();
    let host = mlbuild::registry::host_name().replace('.', "_");
    std::fs::write(
        root.join("leases")
            .join(format!("{digest}.{host}.{}.0", i32::MAX)),
        "",
    )
    .unwrap();
    let mut cmd = p.command(&["cache", "gc"]);
    cmd.env("MLBUILD_H2O_EXCHANGE_DIR", shared.path());
    let gc = Run::from(cmd.output().unwrap()).ok();
    assert!(
        gc.stderr
            .contains("Swept 4 B in 1 files and 1 stale leases"),
        "{}",
        gc.stderr
    );
    assert!(!root.join(format!("{digest}.csv")).exists());
}

/// `explain` names a change of the declared engine with old → new values.
#[test]
fn explain_names_an_engine_change() {
    let p = trained().clone_trained();
    let text = p.read("ml.toml");
    p.write(
        "ml.toml",
        &format!("{text}\n[h2o]\nnodes = 2\nthreads = 1\n"),
    );
    let out = p.mlbuild_offline(&["explain", "execute"]).ok().stdout;
    assert!(
        out.contains("engine changed: engine.nodes: 1 → 2, engine.threads: (none) → 1"),
        "{out}"
    );
}

/// Every H2O log line the project's managed nodes wrote (their logs stay after they stop).
fn h2o_logs(p: &Project) -> String {
    logs_under(&p.file("cache/h2o"))
}

/// Every file under `dir` (paths as text).
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                found.push(path.to_string_lossy().into_owned());
            }
        }
    }
    found
}

/// Every H2O log line written under `dir`.
fn logs_under(dir: &std::path::Path) -> String {
    walk(dir)
        .into_iter()
        .filter(|f| f.ends_with(".log"))
        .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
        .collect()
}

fn cloud_jvms(p: &Project) -> Vec<u32> {
    jvms_mentioning(&p.path.join("cache").to_string_lossy())
}

/// `[h2o] nodes = 2` without a URL launches a two-JVM cloud for the run and stops both JVMs
/// when the run succeeds, when mlbuild is interrupted, and when it is killed.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: a run, an interrupted run, a killed run, and what each leaves"
)]
fn a_managed_two_node_cloud_never_outlives_mlbuild() {
    let p = cluster_project("nodes = 2\nthreads = 1\nmemory = \"1g\"");
    let run = Run::from(p.command(&["run", "--json"]).output().unwrap()).ok();
    assert_eq!(run.done()["status"], "ok");
    assert_eq!(run.done()["h2o_started"], true);
    assert!(
        run.stderr.contains("pids "),
        "both JVMs named: {}",
        run.stderr
    );
    // A first run in a fresh cache will certainly execute: the cloud boots while the data
    // steps work, and each JVM maps the class-data archive (its `-Xlog:cds` verdict).
    assert!(
        run.stderr.contains("starting H2O in the background"),
        "{}",
        run.stderr
    );
    let verdicts: Vec<String> = walk(&p.file("cache/h2o"))
        .into_iter()
        .filter(|f| f.ends_with("cds.log"))
        .collect();
    assert_eq!(verdicts.len(), 2, "one per JVM: {verdicts:?}");
    for v in &verdicts {
        assert_eq!(
            mlbuild::h2o::cds::mapped(std::path::Path::new(v)),
            Some(true),
            "{v}"
        );
    }
    assert!(cloud_jvms(&p).is_empty(), "success leaves no JVM");
    // The managed cloud read the prepared files from the store (`ImportFiles`), not by upload.
    let logs = h2o_logs(&p);
    assert!(
        logs.matches("/3/ImportFiles").count() >= 2,
        "train and holdout imported where they lie"
    );

    // XGBoost's native libraries come from the tool cache, unpacked once: no JVM unpacks its
    // 157 MB copy. With that off (`MLBUILD_H2O_NATIVE_LIBS=0`) H2O unpacks into the JVM's temp
    // dir at every start and removes it only at a clean exit: mlbuild points that dir into the
    // node's own.
    let unpacked = || {
        walk(&p.file("cache/h2o"))
            .into_iter()
            .filter(|f| f.contains("libxgboost4j"))
            .collect::<Vec<_>>()
    };
    let mapped_libs = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .filter(|f| f.contains("libxgboost4j"))
            .map(str::to_string)
            .collect::<std::collections::BTreeSet<_>>()
    };
    for signal in [libc::SIGINT, libc::SIGKILL] {
        let mut cmd = p.command(&["run", "--force", "execute"]);
        if signal == libc::SIGKILL {
            cmd.env(mlbuild::h2o::native::ENV, "0");
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let both_up = wait_until(120, || cloud_jvms(&p).len() == 2);
        assert!(both_up, "two JVMs start: {:?}", cloud_jvms(&p));
        if signal == libc::SIGKILL {
            assert!(
                wait_until(60, || !unpacked().is_empty()),
                "unpacked in the node dirs"
            );
        } else {
            let native = mlbuild::h2o::native::dir_for(
                &mlbuild::h2o::default_tool_cache(),
                mlbuild::h2o::JAR_SHA256,
            );
            for pid in cloud_jvms(&p) {
                assert!(
                    wait_until(60, || !mapped_libs(pid).is_empty()),
                    "JVM {pid} loads XGBoost"
                );
                for lib in mapped_libs(pid) {
                    assert!(
                        std::path::Path::new(&lib).starts_with(&native),
                        "JVM {pid} maps {lib}, not from {}",
                        native.display()
                    );
                }
            }
            assert_eq!(
                unpacked(),
                Vec::<String>::new(),
                "nothing unpacked per node"
            );
        }
        // SAFETY: signals a child we started.
        unsafe { libc::kill(child.id() as i32, signal) };
        let _ = child.wait();
        let gone = wait_until(30, || cloud_jvms(&p).is_empty());
        assert!(gone, "signal {signal} leaves no JVM: {:?}", cloud_jvms(&p));
    }
    // The killed JVMs left their libraries in their node dirs (never in the machine's /tmp);
    // the next run's launch removes them, and its own at its end.
    assert!(
        !unpacked().is_empty(),
        "the killed nodes' libraries are in their node dirs"
    );
    Run::from(p.command(&["run", "--force", "execute"]).output().unwrap()).ok();
    assert_eq!(unpacked(), Vec::<String>::new());
}

type Lines = std::sync::Arc<std::sync::Mutex<String>>;

/// A child's stream, line by line, into a string readable while it grows.
fn collect_lines(stream: std::process::ChildStderr) -> (Lines, std::thread::JoinHandle<()>) {
    use std::io::BufRead;
    let log = Lines::default();
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    (log, reader)
}

/// Whether an AutoML job is running on the cluster at `url`.
fn automl_running(url: &str) -> bool {
    runtime().block_on(async {
        let Ok(resp) = reqwest::get(format!("{url}/3/Jobs")).await else {
            return false;
        };
        let jobs: Value = resp.json().await.unwrap_or_default();
        jobs["jobs"].as_array().is_some_and(|jobs| {
            jobs.iter().any(|j| {
                j["status"] == "RUNNING"
                    && j["description"]
                        .as_str()
                        .is_some_and(|d| d.contains("AutoML"))
            })
        })
    })
}

/// A node killed while execute trains fails the run with an error that says so (bounded: the
/// wait for a job checks the cloud's health), caches nothing of execute, and the next run
/// succeeds on a fresh cloud.
#[test]
fn a_node_killed_during_training_fails_the_run_and_the_next_run_succeeds() {
    let p = cluster_project("nodes = 2\nthreads = 1\nmemory = \"1g\"");
    let mut child = p
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (log, reader) = collect_lines(child.stderr.take().unwrap());
    let up = wait_until(180, || log.lock().unwrap().contains("H2O is up at "));
    assert!(up, "the cloud came up: {}", log.lock().unwrap());
    let url = {
        let text = log.lock().unwrap().clone();
        let at = text.find("H2O is up at ").unwrap() + "H2O is up at ".len();
        text[at..].split_whitespace().next().unwrap().to_string()
    };
    // Kill while AutoML trains.
    let training = wait_until(120, || automl_running(&url));
    assert!(training, "AutoML ran: {}", log.lock().unwrap());
    // Not the leader (`nodes[0]`, which mlbuild talks to): its death shows only as a job that
    // never ends and polls that hang.
    let cloud = cloud_status(&url);
    let member = cloud["nodes"][1]["pid"]
        .as_str()
        .map(|p| p.parse::<u32>().unwrap())
        .or_else(|| cloud["nodes"][1]["pid"].as_u64().map(|p| p as u32))
        .expect("the member's pid");
    assert!(cloud_jvms(&p).contains(&member), "{cloud}");
    // SAFETY: kills a JVM this test's run started.
    unsafe { libc::kill(member as i32, libc::SIGKILL) };
    let started = std::time::Instant::now();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let stderr = log.lock().unwrap().clone();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(150),
        "bounded: {:?}\n{stderr}",
        started.elapsed()
    );
    assert!(
        stderr.contains("error:") && stderr.contains("hint:"),
        "{stderr}"
    );
    eprintln!(
        "the run ended {:?} after the kill, with:\n{stderr}",
        started.elapsed()
    );
    assert!(wait_until(30, || cloud_jvms(&p).is_empty()), "no JVM left");
    let status = p.mlbuild_offline(&["status", "--json"]).ok().stdout;
    let status: Value = serde_json::from_str(&status).unwrap();
    let execute = status
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "execute")
        .unwrap();
    assert_eq!(
        execute["state"], "stale",
        "nothing of execute was cached: {status}"
    );
    let run = Run::from(p.command(&["run", "--json"]).output().unwrap()).ok();
    assert_eq!(run.done()["status"], "ok");
}

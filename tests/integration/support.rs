//! Test support: temp projects built from fixtures, the shared H2O node, event parsing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_mlbuild");

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct SharedNode {
    url: String,
    // Kept alive for the life of the test process; its launcher thread dies with the process,
    // and the JVM with it (PR_SET_PDEATHSIG).
    _node: mlbuild::h2o::LocalNode,
    _runtime: tokio::runtime::Runtime,
}

static NODE: OnceLock<SharedNode> = OnceLock::new();
static WORK: OnceLock<tempfile::TempDir> = OnceLock::new();

fn work_dir() -> &'static Path {
    WORK.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("mlbuild-tests-")
            .tempdir()
            .expect("temp dir")
    })
    .path()
}

/// The URL of the H2O node shared by every test (launched on first use).
pub fn shared_node() -> &'static str {
    if let Ok(url) = std::env::var("MLBUILD_TEST_H2O_URL") {
        return Box::leak(url.into_boxed_str());
    }
    &NODE
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            let node = runtime.block_on(launch_node(work_dir().join("shared-node"), "2g", 1, None));
            SharedNode {
                url: node.url(),
                _node: node,
                _runtime: runtime,
            }
        })
        .url
}

/// Launches a local H2O cloud of `nodes` JVMs (the pinned jar, `MLBUILD_H2O_JAR` if set) with
/// its files under `work_dir`: the shared node, the cancel tests' own node and the two-node
/// cloud all come from here.
pub async fn launch_node(
    work_dir: PathBuf,
    memory: &str,
    nodes: u32,
    threads: Option<u32>,
) -> mlbuild::h2o::LocalNode {
    let java = mlbuild::h2o::find_java().expect("tests need Java 8–17");
    let explicit = std::env::var_os("MLBUILD_H2O_JAR").map(PathBuf::from);
    let tool_cache = mlbuild::h2o::default_tool_cache();
    let jar = mlbuild::h2o::locate_or_provision_jar(explicit.as_deref(), &tool_cache, &|m| {
        eprintln!("[tests] {m}")
    })
    .expect("the pinned H2O jar");
    let native_libs = mlbuild::h2o::native::prepare(&jar, &tool_cache, explicit.is_some(), &|m| {
        eprintln!("[tests] {m}")
    });
    mlbuild::h2o::LocalNode::launch(&mlbuild::h2o::LaunchSpec {
        java: java.path,
        jar,
        memory: memory.into(),
        work_dir,
        nodes,
        threads,
        class_data: mlbuild::h2o::ClassData::None,
        native_libs,
    })
    .await
    .unwrap_or_else(|e| panic!("an H2O cloud of {nodes} node(s): {e}"))
}

/// A project in a temp dir: a fixture's `ml.toml` plus the data it names.
pub struct Project {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

/// The text fixture: generated reviews with a sentiment label, their text made Word2Vec
/// features (`tests/fixtures/text`).
pub fn text_project() -> Project {
    let p = Project::from_fixture("text");
    std::fs::copy(
        repo_root().join("tests/fixtures/text/reviews.csv"),
        p.file("data/reviews.csv"),
    )
    .unwrap();
    p
}

impl Project {
    pub fn from_fixture(name: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("proj-")
            .tempdir_in(work_dir())
            .unwrap();
        let path = dir.path().to_path_buf();
        std::fs::copy(
            repo_root()
                .join("tests/fixtures")
                .join(name)
                .join("ml.toml"),
            path.join("ml.toml"),
        )
        .unwrap();
        std::fs::create_dir_all(path.join("data")).unwrap();
        std::fs::copy(
            repo_root().join("data/prostate.csv"),
            path.join("data/prostate.csv"),
        )
        .unwrap();
        Project { _dir: dir, path }
    }

    /// A copy of this project (config, data, cache, state, lock): a cheap "already trained" start.
    pub fn clone_trained(&self) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("proj-")
            .tempdir_in(work_dir())
            .unwrap();
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", self.path.display()))
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let path = dir.path().to_path_buf();
        Project { _dir: dir, path }
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.file(rel)).unwrap()
    }

    pub fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.file(rel), text).unwrap();
    }

    /// Replaces `from` with `to` in `ml.toml` (exactly once).
    pub fn edit(&self, from: &str, to: &str) {
        let text = self.read("ml.toml");
        assert_eq!(
            text.matches(from).count(),
            1,
            "`{from}` must occur once in ml.toml"
        );
        self.write("ml.toml", &text.replacen(from, to, 1));
    }

    /// `mlbuild ARGS` in this project, on the shared node.
    pub fn mlbuild(&self, args: &[&str]) -> Run {
        let mut cmd = self.command(args);
        cmd.env("MLBUILD_H2O_URL", shared_node());
        Run::from(cmd.output().unwrap())
    }

    /// `mlbuild ARGS` where any attempt to reach H2O fails: proves a run needed no engine.
    pub fn mlbuild_offline(&self, args: &[&str]) -> Run {
        let mut cmd = self.command(args);
        cmd.env("MLBUILD_H2O_URL", "http://127.0.0.1:9");
        Run::from(cmd.output().unwrap())
    }

    /// A bare command on the shared node.
    pub fn command_on_node(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(args);
        cmd.env("MLBUILD_H2O_URL", shared_node());
        cmd
    }

    /// A bare command: isolated from the user's environment, no engine configured.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(&self.path)
            .args(args)
            .env_remove("MLBUILD_H2O_URL")
            .env_remove("MLBUILD_CACHE_DIR")
            .env_remove("MLBUILD_STATE_URL")
            .env_remove("MLBUILD_H2O_JAR")
            .env_remove("MLBUILD_REMOTE_CACHE")
            .env_remove("SSL_CERT_FILE")
            .env_remove("MLBUILD_SERVE_TOKEN")
            // The tester's own ~/.config/mlbuild/config.toml must not leak into tests.
            .env("MLBUILD_CONFIG", "")
            .env_remove("SSL_CERT_DIR")
            .env_remove("MLBUILD_REMOTE_TOKEN")
            .env_remove("MLBUILD_REMOTE_READ_ONLY")
            .env("MLBUILD_NO_PROGRESS", "1")
            .env("NO_COLOR", "1");
        cmd
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "mlbuild failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// `step[#attempt]` → status, for every step event.
    pub fn statuses(&self) -> BTreeMap<String, String> {
        self.events()
            .iter()
            .filter(|e| e["event"] == "step")
            .map(|e| {
                let attempt = e["attempt"].as_u64().unwrap_or(1);
                let name = if attempt == 1 {
                    e["step"].as_str().unwrap().to_string()
                } else {
                    format!("{}#{attempt}", e["step"].as_str().unwrap())
                };
                (name, e["status"].as_str().unwrap().to_string())
            })
            .collect()
    }

    /// The steps (attempt 1) that ran, in pipeline order.
    pub fn ran(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["event"] == "step" && e["status"] == "ran")
            .map(|e| e["step"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn done(&self) -> Value {
        self.events()
            .into_iter()
            .find(|e| e["event"] == "done")
            .unwrap_or_else(|| {
                panic!(
                    "no done event:\nstdout:\n{}\nstderr:\n{}",
                    self.stdout, self.stderr
                )
            })
    }

    pub fn step(&self, name: &str) -> Value {
        self.events()
            .into_iter()
            .find(|e| e["event"] == "step" && e["step"] == name)
            .unwrap()
    }
}

/// The trained fixture project, trained once per test binary and cloned by each scenario.
/// The shared trained project. Tests read and change copies of it (`clone_trained`), never it:
/// a command on it opens its SQLite WAL, and a copy taken meanwhile would carry the `-wal`.
pub fn trained() -> &'static Project {
    static TRAINED: OnceLock<Project> = OnceLock::new();
    TRAINED.get_or_init(|| {
        let p = Project::from_fixture("prostate");
        let run = p.mlbuild(&["run", "--json"]).ok();
        let statuses = run.statuses();
        assert!(
            statuses.values().all(|s| s == "ran"),
            "cold run ran everything: {statuses:?}"
        );
        p
    })
}

/// Pids of JVMs whose command line mentions `needle` (e.g. a project's cache dir).
pub fn jvms_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("h2o") && cmdline.contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

pub fn wait_until(timeout_s: u64, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed().as_secs() < timeout_s {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    f()
}

pub const ALL_STEPS: [&str; 8] = [
    "define", "locate", "prepare", "confirm", "execute", "monitor", "modify", "conclude",
];

/// Asserts that exactly `expected` ran (attempt 1) and every other step was cached.
pub fn assert_ran(run: &Run, expected: &[&str]) {
    let statuses = run.statuses();
    for step in ALL_STEPS {
        let want = if expected.contains(&step) {
            "ran"
        } else {
            "cached"
        };
        assert_eq!(
            statuses.get(step).map(String::as_str),
            Some(want),
            "step {step}: {statuses:?}\n{}",
            run.stderr
        );
    }
}

/// The entry `ml.lock` records for `step` (attempt 1).
pub fn locked_entry(p: &Project, step: &str) -> serde_json::Value {
    let lock: serde_json::Value = serde_json::from_str(&p.read("ml.lock")).unwrap();
    lock["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step && s["attempt"] == 1)
        .unwrap_or_else(|| panic!("no `{step}` in ml.lock"))
        .clone()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs statements against a database (test set-up only: values here are the test's own).
pub fn exec(url: &str, statements: &[String]) {
    runtime().block_on(async {
        sqlx::any::install_default_drivers();
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
        for s in statements {
            sqlx::query(s).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();
    })
}

/// A fresh Postgres database for one test, dropped afterwards; `None` (with a note) without a server.
pub struct PgDb {
    base: String,
    name: String,
    pub url: String,
}

impl PgDb {
    pub fn create(what: &str) -> Option<PgDb> {
        let Ok(base) = std::env::var("MLBUILD_TEST_POSTGRES_URL") else {
            eprintln!("note: MLBUILD_TEST_POSTGRES_URL is not set; skipping {what}");
            return None;
        };
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "mlbuild_it_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        exec(&base, &[format!("CREATE DATABASE {name}")]);
        let (without_query, query) = match base.split_once('?') {
            Some((u, q)) => (u, format!("?{q}")),
            None => (base.as_str(), String::new()),
        };
        let (scheme, rest) = without_query.split_once("://").unwrap();
        let authority = rest.split('/').next().unwrap();
        let url = format!("{scheme}://{authority}/{name}{query}");
        Some(PgDb { base, name, url })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        exec(
            &self.base,
            &[format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )],
        );
    }
}

/// A server process (`serve`, `ui`) and the URL it printed as `Listening on URL`; killed when
/// dropped. `log` holds its stderr so far.
pub struct Listening {
    pub child: std::process::Child,
    pub url: String,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` and waits (up to a minute) for its `Listening on URL` line.
pub fn listen(mut cmd: Command) -> Listening {
    use std::io::BufRead;
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(url) = line.strip_prefix("Listening on ") {
                let _ = tx.send(url.to_string());
            }
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let url = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the server did not start: {}", log.lock().unwrap()));
    Listening { child, url, log }
}

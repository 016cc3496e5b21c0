//! A warm local node: `mlbuild h2o start` launches one that outlives mlbuild, and runs in the
//! project use it instead of launching their own.
//!
//! Launch: the same java/jar discovery, command line and files as a managed node
//! ([`NodeCommand`]: loopback, free port pair, flatfile, `-ice_root`/logs under
//! `<cache>/h2o/<cloud name>/`), with a cloud name `mlbuild-warm-<hex>` (which the managed
//! launcher's stale-ice_root sweep never matches). Only the tie to mlbuild differs: no
//! `PR_SET_PDEATHSIG`, and `setsid()` before exec, so the JVM has no controlling terminal and
//! neither a terminal's Ctrl-C nor its hangup reaches it. Once `/3/Cloud` is healthy and the
//! fingerprint checks, the `Child` is dropped unreaped; when mlbuild exits, init adopts the JVM.
//! Ctrl-C *during* `h2o start` drops the launch future, whose guard kills and reaps the JVM.
//!
//! Record: `<cache>/h2o/warm-node-v1.json` ([`WarmNode`]), written temp-then-rename only after
//! the node is healthy. `start` and `stop` hold an exclusive lock on `<cache>/h2o/warm-node.lock`
//! (the OS drops it when the holder dies), so two concurrent `h2o start` launch one node.
//!
//! Liveness ([`probe`]): the pid's `/proc/<pid>/cmdline` must name the recorded cloud (a dead
//! JVM, a zombie, or a recycled pid all fail this), and `GET /3/Cloud` (5 s timeout) must answer
//! healthy, with consensus, one node, the recorded version and cloud name.
//!
//! Runs ([`lookup`]): with no URL configured, a live record whose version, memory and (explicit)
//! jar match the project's `[h2o]` is used like a remote cluster: never shut down by the run. A
//! record whose process is gone is removed (under the lock, if nobody else holds it). A node that
//! runs but does not answer, or does not match, is left alone: the run launches a managed node.
//!
//! Limits: a SIGKILL of `mlbuild h2o start` between spawn and record leaves an unrecorded JVM
//! (its dir is `mlbuild-warm-*` in the cache); `h2o stop` during a run takes the node from under
//! it (the run fails with an engine error); frames of an interrupted run stay on the warm node
//! until it stops.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::node::{random_u64, wait_healthy, NodeCommand};
use super::{
    find_java, locate_or_provision_jar, Client, CloudInfo, EngineConfig, H2oError, LaunchSpec,
};

/// The record's file name in the engine work dir (`<cache>/h2o/`); the format is in the name.
pub const STATE_FILE: &str = "warm-node-v1.json";
const LOCK_FILE: &str = "warm-node.lock";
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const STOP_GRACE: Duration = Duration::from_secs(10);
const KILL_GRACE: Duration = Duration::from_secs(5);

/// What `mlbuild h2o start` recorded about the node it launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmNode {
    pub url: String,
    pub pid: u32,
    pub cloud_name: String,
    /// The version the node reported when it came up.
    pub version: String,
    /// The JVM heap (`-Xmx`), as `[h2o] memory` gave it.
    pub memory: String,
    pub jar: PathBuf,
    pub java: PathBuf,
    /// `<cache>/h2o/<cloud name>/`.
    pub node_dir: PathBuf,
    /// The JVM's stdout and stderr.
    pub log: PathBuf,
    /// RFC 3339, UTC.
    pub started_at: String,
}

impl WarmNode {
    /// Seconds since `started_at` (None if it does not parse).
    pub fn uptime_secs(&self) -> Option<u64> {
        let t = chrono::DateTime::parse_from_rfc3339(&self.started_at).ok()?;
        let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds();
        Some(secs.max(0) as u64)
    }
}

/// The state file's path in the engine work dir.
pub fn state_path(work_dir: &Path) -> PathBuf {
    work_dir.join(STATE_FILE)
}

/// What the state file holds.
#[derive(Debug)]
pub enum Record {
    Absent,
    Node(WarmNode),
    /// Present but not a record (truncated, or another format): why.
    Unreadable(String),
}

pub fn read(work_dir: &Path) -> Record {
    let path = state_path(work_dir);
    match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Record::Absent,
        Err(e) => Record::Unreadable(format!("cannot read `{}`: {e}", path.display())),
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(node) => Record::Node(node),
            Err(e) => Record::Unreadable(format!(
                "`{}` is not a warm-node record: {e}",
                path.display()
            )),
        },
    }
}

fn write(work_dir: &Path, node: &WarmNode) -> Result<(), H2oError> {
    let path = state_path(work_dir);
    let mut tmp = tempfile::NamedTempFile::new_in(work_dir)
        .map_err(|e| H2oError::io("could not create a temp file in", work_dir, e))?;
    let json = serde_json::to_vec_pretty(node).expect("the record serialises");
    std::io::Write::write_all(&mut tmp, &json)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| H2oError::io("could not write", &path, e))?;
    tmp.persist(&path)
        .map_err(|e| H2oError::io("could not write", &path, e.error))?;
    Ok(())
}

/// Removes the record and the node's ice_root (its logs stay).
fn forget(work_dir: &Path, node: &WarmNode) {
    let _ = std::fs::remove_file(state_path(work_dir));
    super::node::remove_scratch(&node.node_dir);
}

/// How a recorded node is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Running, and `/3/Cloud` answers as recorded.
    Alive(CloudInfo),
    /// No such process (or the pid now belongs to another program): the record is stale.
    Gone,
    /// The JVM runs but does not answer as recorded: why.
    Unhealthy(String),
}

/// Whether the recorded pid is still that JVM: its command line names the recorded cloud.
/// A zombie's command line is empty, so an exited JVM fails this too.
pub fn process_is_node(node: &WarmNode) -> bool {
    match std::fs::read(format!("/proc/{}/cmdline", node.pid)) {
        Ok(cmdline) => cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == node.cloud_name.as_bytes()),
        Err(_) => false,
    }
}

pub async fn probe(node: &WarmNode) -> Health {
    if !process_is_node(node) {
        return Health::Gone;
    }
    let client = match Client::new(&node.url) {
        Ok(c) => c,
        Err(e) => return Health::Unhealthy(e.to_string()),
    };
    match client.cloud_with_timeout(PROBE_TIMEOUT).await {
        Err(e) => Health::Unhealthy(e.to_string()),
        Ok(c) if c.cloud_name != node.cloud_name => Health::Unhealthy(format!(
            "{} answers as cloud `{}`, not `{}`",
            node.url, c.cloud_name, node.cloud_name
        )),
        Ok(c) if c.version != node.version => Health::Unhealthy(format!(
            "{} runs H2O {}, recorded {}",
            node.url, c.version, node.version
        )),
        Ok(c) if !(c.healthy && c.consensus && c.cloud_size == 1) => Health::Unhealthy(format!(
            "`/3/Cloud` says healthy {}, consensus {}, {} node(s)",
            c.healthy, c.consensus, c.cloud_size
        )),
        Ok(c) => Health::Alive(c),
    }
}

/// The exclusive lock of `start` and `stop`; released when dropped (or when the holder dies).
struct WarmLock {
    _file: File,
}

fn open_lock(work_dir: &Path) -> Result<File, H2oError> {
    std::fs::create_dir_all(work_dir).map_err(|e| H2oError::io("could not create", work_dir, e))?;
    let path = work_dir.join(LOCK_FILE);
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| H2oError::io("could not open", &path, e))
}

fn try_lock(work_dir: &Path) -> Result<Option<WarmLock>, H2oError> {
    let file = open_lock(work_dir)?;
    let path = work_dir.join(LOCK_FILE);
    let got = fs4::fs_std::FileExt::try_lock_exclusive(&file)
        .map_err(|e| H2oError::io("could not lock", &path, e))?;
    Ok(got.then_some(WarmLock { _file: file }))
}

/// Waits for the lock (polling, so that the runtime and Ctrl-C stay responsive).
async fn lock(work_dir: &Path, log: &dyn Fn(&str)) -> Result<WarmLock, H2oError> {
    let mut told = false;
    loop {
        if let Some(lock) = try_lock(work_dir)? {
            return Ok(lock);
        }
        if !told {
            log("waiting for another `mlbuild h2o start` or `h2o stop` in this project …");
            told = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What [`start`] did.
#[derive(Debug)]
pub struct Started {
    pub node: WarmNode,
    /// False when a healthy warm node was already recorded (nothing was launched).
    pub launched: bool,
    /// Why an earlier record was dropped (its process was gone, or it was unreadable).
    pub replaced: Option<String>,
}

/// `mlbuild h2o start`: the recorded node when it is alive, else a new detached node, recorded.
/// `cfg.url` is ignored (the caller refuses a configured URL).
pub async fn start(cfg: &EngineConfig, log: &(dyn Fn(&str) + Sync)) -> Result<Started, H2oError> {
    let _lock = lock(&cfg.work_dir, log).await?;
    let mut replaced = None;
    match read(&cfg.work_dir) {
        Record::Absent => {}
        Record::Unreadable(why) => {
            let _ = std::fs::remove_file(state_path(&cfg.work_dir));
            replaced = Some(why);
        }
        Record::Node(node) => match probe(&node).await {
            Health::Alive(_) => {
                return Ok(Started {
                    node,
                    launched: false,
                    replaced: None,
                })
            }
            Health::Gone => {
                forget(&cfg.work_dir, &node);
                replaced = Some(format!(
                    "the warm node recorded at {} (pid {}) is gone",
                    node.url, node.pid
                ));
            }
            Health::Unhealthy(reason) => {
                return Err(H2oError::WarmNodeUnhealthy {
                    state: state_path(&cfg.work_dir),
                    pid: node.pid,
                    url: node.url,
                    reason,
                })
            }
        },
    }
    let node = launch(cfg, log).await?;
    if let Err(e) = write(&cfg.work_dir, &node) {
        kill_and_wait(&node).await;
        return Err(e);
    }
    Ok(Started {
        node,
        launched: true,
        replaced,
    })
}

/// Kills and reaps the spawned JVM, and removes its ice_root, unless disarmed (launch failed,
/// or was cancelled by Ctrl-C).
struct SpawnGuard(Option<Child>, PathBuf);

impl Drop for SpawnGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
            super::node::remove_scratch(&self.1);
        }
    }
}

async fn launch(cfg: &EngineConfig, log: &(dyn Fn(&str) + Sync)) -> Result<WarmNode, H2oError> {
    let java = find_java()?;
    let jar = locate_or_provision_jar(cfg.jar.as_deref(), &cfg.tool_cache, log)?;
    let jar = jar.canonicalize().unwrap_or(jar);
    log(&format!(
        "starting H2O ({}, Java {}) …",
        jar.display(),
        java.major
    ));
    let mut spec = LaunchSpec {
        java: java.path.clone(),
        jar: jar.clone(),
        memory: cfg.memory.clone(),
        work_dir: cfg.work_dir.clone(),
        nodes: 1,
        threads: None,
        class_data: super::ClassData::None,
        native_libs: None,
    };
    spec.native_libs = super::native::prepare(&spec.jar, &cfg.tool_cache, cfg.jar.is_some(), log);
    spec.class_data = super::cds::prepare(&spec, &cfg.tool_cache, cfg.jar.is_some(), log).await;
    let NodeCommand {
        mut cmd,
        port,
        cloud_name,
        node_dir,
        log_path,
    } = NodeCommand::new(&spec, format!("mlbuild-warm-{:08x}", random_u64() as u32))?;
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe. A new session: no controlling terminal, its own
        // process group, so the terminal's SIGINT/SIGHUP never reach the JVM.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = cmd.spawn().map_err(|e| H2oError::NodeStart {
        reason: format!("could not run `{}`: {e}", java.path.display()),
        log_path: log_path.clone(),
        log_tail: None,
    })?;
    let pid = child.id();
    let mut guard = SpawnGuard(Some(child), node_dir.clone());
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&url, &log_path, 1, || {
        let child = guard.0.as_mut()?;
        match child.try_wait() {
            Ok(Some(s)) => Some(format!("the JVM exited ({s}) before it was healthy")),
            Ok(None) => None,
            Err(e) => Some(format!("could not wait for the JVM: {e}")),
        }
    })
    .await?;
    Client::new(&url)?
        .check_fingerprint(&cfg.fingerprint())
        .await?;
    let cloud = Client::new(&url)?.cloud().await?;
    // From here on the JVM is on its own: dropping a `Child` neither kills nor reaps it, and
    // init adopts it when we exit.
    drop(guard.0.take());
    Ok(WarmNode {
        url,
        pid,
        cloud_name,
        version: cloud.version,
        memory: cfg.memory.clone(),
        jar,
        java: java.path,
        node_dir,
        log: log_path,
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// What [`stop`] did.
#[derive(Debug)]
pub enum Stopped {
    /// No record.
    NotRunning,
    /// The record was unreadable and was removed: why.
    Unreadable(String),
    /// The recorded process was already gone; the record was removed.
    Stale(WarmNode),
    /// Stopped: by SIGTERM, or (`killed`) by SIGKILL after the grace period.
    Stopped { node: WarmNode, killed: bool },
}

/// `mlbuild h2o stop`: SIGTERM, up to 10 s for the JVM to exit, then SIGKILL; the record, the
/// ice_root and the JVM's temp dir are removed.
pub async fn stop(work_dir: &Path, log: &dyn Fn(&str)) -> Result<Stopped, H2oError> {
    let _lock = lock(work_dir, log).await?;
    let node = match read(work_dir) {
        Record::Absent => return Ok(Stopped::NotRunning),
        Record::Unreadable(why) => {
            let _ = std::fs::remove_file(state_path(work_dir));
            return Ok(Stopped::Unreadable(why));
        }
        Record::Node(node) => node,
    };
    if !process_is_node(&node) {
        forget(work_dir, &node);
        return Ok(Stopped::Stale(node));
    }
    // SIGTERM, as for a managed node (0.4 s to exit against 2.4 s after `POST /3/Shutdown`);
    // a JVM that does not exit within the grace gets SIGKILL below.
    // SAFETY: plain syscall; the pid was just checked to be our JVM.
    unsafe {
        libc::kill(node.pid as libc::pid_t, libc::SIGTERM);
    }
    let killed = !wait_gone(&node, STOP_GRACE).await;
    if killed && !kill_and_wait(&node).await {
        return Err(H2oError::WarmNodeUnkillable { pid: node.pid });
    }
    forget(work_dir, &node);
    Ok(Stopped::Stopped { node, killed })
}

async fn wait_gone(node: &WarmNode, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    while process_is_node(node) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// SIGKILLs the recorded JVM (only if the pid is still it) and waits until it is gone.
async fn kill_and_wait(node: &WarmNode) -> bool {
    if process_is_node(node) {
        // SAFETY: plain syscall; the pid was just checked to be our JVM.
        unsafe {
            libc::kill(node.pid as libc::pid_t, libc::SIGKILL);
        }
    }
    wait_gone(node, KILL_GRACE).await
}

/// What a run finds when no URL is configured.
#[derive(Debug)]
pub enum Lookup {
    /// No warm node recorded.
    Absent,
    /// A live warm node that fits the project's `[h2o]`: connect to it.
    Use(WarmNode),
    /// The record was stale (or unreadable) and was removed: why.
    Stale(String),
    /// A warm node runs but is not used: why (unhealthy, or another version/memory/jar).
    Skip(String),
}

/// Decides whether a run uses the warm node; removes a stale record.
pub async fn lookup(cfg: &EngineConfig) -> Lookup {
    let node = match read(&cfg.work_dir) {
        Record::Absent => return Lookup::Absent,
        Record::Unreadable(why) => {
            if let Ok(Some(_lock)) = try_lock(&cfg.work_dir) {
                if matches!(read(&cfg.work_dir), Record::Unreadable(_)) {
                    let _ = std::fs::remove_file(state_path(&cfg.work_dir));
                }
            }
            return Lookup::Stale(format!("{why}; it was removed"));
        }
        Record::Node(node) => node,
    };
    match probe(&node).await {
        Health::Gone => {
            // Under the lock, and only if the record still names this node: a concurrent
            // `h2o start` may have just replaced it.
            if let Ok(Some(_lock)) = try_lock(&cfg.work_dir) {
                if matches!(read(&cfg.work_dir), Record::Node(n) if n == node) {
                    forget(&cfg.work_dir, &node);
                }
            }
            Lookup::Stale(format!(
                "the warm H2O node recorded at {} (pid {}) is gone; its record was removed",
                node.url, node.pid
            ))
        }
        Health::Unhealthy(why) => Lookup::Skip(format!(
            "the warm H2O node at {} (pid {}) does not answer as healthy ({why}); not using it \
             (`mlbuild h2o stop` stops it)",
            node.url, node.pid
        )),
        Health::Alive(_) => match mismatch(cfg, &node) {
            Some(why) => Lookup::Skip(format!(
                "not using the warm H2O node at {}: {why} (`mlbuild h2o stop` then `mlbuild h2o \
                 start` replaces it)",
                node.url
            )),
            None => Lookup::Use(node),
        },
    }
}

/// Why the project's `[h2o]` asks for another node than `node`, if it does.
pub fn mismatch(cfg: &EngineConfig, node: &WarmNode) -> Option<String> {
    if cfg.version != node.version {
        return Some(format!(
            "`[h2o] version` is {}, the warm node runs {}",
            cfg.version, node.version
        ));
    }
    if !cfg.memory.trim().eq_ignore_ascii_case(node.memory.trim()) {
        return Some(format!(
            "`[h2o] memory` is {}, the warm node has {}",
            cfg.memory, node.memory
        ));
    }
    if cfg.nodes != 1 {
        return Some(format!(
            "`[h2o] nodes` is {}, and a warm node is one node",
            cfg.nodes
        ));
    }
    if let Some(jar) = &cfg.jar {
        let jar = jar.canonicalize().unwrap_or_else(|_| jar.clone());
        if jar != node.jar {
            return Some(format!(
                "the configured jar `{}` is not the warm node's `{}`",
                jar.display(),
                node.jar.display()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(dir: &Path) -> WarmNode {
        WarmNode {
            url: "http://127.0.0.1:9".into(),
            // pid 0x7fffffff cannot exist (pid_max is at most 2^22).
            pid: 2147483647,
            cloud_name: "mlbuild-warm-0000abcd".into(),
            version: "3.46.0.11".into(),
            memory: "2g".into(),
            jar: "/x/h2o.jar".into(),
            java: "/usr/bin/java".into(),
            node_dir: dir.join("mlbuild-warm-0000abcd"),
            log: dir.join("mlbuild-warm-0000abcd/node.log"),
            started_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn cfg(dir: &Path) -> EngineConfig {
        EngineConfig {
            url: None,
            jar: None,
            version: "3.46.0.11".into(),
            nodes: 1,
            threads: None,
            memory: "2g".into(),
            exchange_dir: None,
            work_dir: dir.to_path_buf(),
            tool_cache: dir.join("tools"),
        }
    }

    #[test]
    fn record_round_trips_and_garbage_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read(dir.path()), Record::Absent));
        let n = node(dir.path());
        write(dir.path(), &n).unwrap();
        assert!(matches!(read(dir.path()), Record::Node(r) if r == n));
        std::fs::write(state_path(dir.path()), "{\"url\":").unwrap();
        assert!(matches!(read(dir.path()), Record::Unreadable(_)));
    }

    #[tokio::test]
    async fn an_unreadable_record_is_removed_by_a_run() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(state_path(dir.path()), "not json").unwrap();
        assert!(matches!(lookup(&cfg(dir.path())).await, Lookup::Stale(_)));
        assert!(matches!(read(dir.path()), Record::Absent));
    }

    #[test]
    fn a_dead_pid_is_gone_and_a_live_one_must_name_the_cloud() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = node(dir.path());
        assert!(!process_is_node(&n));
        // Our own pid is alive, but its command line does not name the cloud: a recycled pid.
        n.pid = std::process::id();
        assert!(!process_is_node(&n));
        // `$0` of the shell is the cloud name; `; true` keeps sh from exec'ing sleep.
        let mut sleeper = std::process::Command::new("sh")
            .args(["-c", "sleep 30; true", &n.cloud_name])
            .spawn()
            .unwrap();
        n.pid = sleeper.id();
        // Between fork and exec the child's command line is still ours.
        let t = Instant::now();
        while !process_is_node(&n) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(process_is_node(&n));
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert!(!process_is_node(&n));
    }

    #[tokio::test]
    async fn a_stale_record_is_removed_by_a_run_and_by_stop() {
        let dir = tempfile::tempdir().unwrap();
        let n = node(dir.path());
        std::fs::create_dir_all(n.node_dir.join("ice_root")).unwrap();
        write(dir.path(), &n).unwrap();
        assert!(matches!(lookup(&cfg(dir.path())).await, Lookup::Stale(_)));
        assert!(matches!(read(dir.path()), Record::Absent));
        assert!(!n.node_dir.join("ice_root").exists());

        write(dir.path(), &n).unwrap();
        assert!(matches!(
            stop(dir.path(), &|_| {}).await.unwrap(),
            Stopped::Stale(_)
        ));
        assert!(matches!(
            stop(dir.path(), &|_| {}).await.unwrap(),
            Stopped::NotRunning
        ));
        assert!(matches!(lookup(&cfg(dir.path())).await, Lookup::Absent));
    }

    #[test]
    fn another_version_memory_or_jar_is_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let n = node(dir.path());
        let mut c = cfg(dir.path());
        assert_eq!(mismatch(&c, &n), None);
        c.memory = "2G".into();
        assert_eq!(mismatch(&c, &n), None, "case does not matter");
        c.memory = "4g".into();
        assert!(mismatch(&c, &n).unwrap().contains("memory"));
        c = cfg(dir.path());
        c.version = "3.46.0.12".into();
        assert!(mismatch(&c, &n).unwrap().contains("version"));
        c = cfg(dir.path());
        c.jar = Some("/y/h2o.jar".into());
        assert!(mismatch(&c, &n).unwrap().contains("jar"));
        c.jar = Some("/x/h2o.jar".into());
        assert_eq!(mismatch(&c, &n), None);
    }

    #[test]
    fn uptime_counts_from_started_at() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = node(dir.path());
        n.started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        assert!(n.uptime_secs().unwrap() < 5);
        n.started_at = "yesterday".into();
        assert_eq!(n.uptime_secs(), None);
    }
}

//! A managed local H2O cloud: one JVM per node (one node unless `[h2o] nodes` says more), bound
//! to 127.0.0.1, gone when we are.
//!
//! Launch: for each node a free port pair P, P+1 (H2O uses P+1 internally); a unique cloud
//! name `mlbuild-<pid>-<hex>` and a flatfile listing every node's `127.0.0.1:P`, so that no
//! other H2O node on the machine can join; `-ice_root`, `-log_dir` and the JVM's stdout/stderr
//! (`node.log`) live in `<work_dir>/<cloud name>/` for the first node (the leader mlbuild talks
//! to) and `<work_dir>/<cloud name>/node-<i>/` for the others. Each JVM gets `-Xmx` of `[h2o]
//! memory` (per node) and `-nthreads` of `[h2o] threads` (or all cores), and its own process
//! group, so a terminal Ctrl-C reaches mlbuild only, which then shuts the cloud down in order.
//! The directories and command lines are built by [`NodeCommand`], which the warm node
//! (`super::warm`) shares.
//!
//! Parent death: each JVM is spawned with `PR_SET_PDEATHSIG = SIGKILL`. Linux delivers that
//! signal when the *thread* that forked the child exits, not the process, so the JVM is spawned
//! from a dedicated `std::thread` (the "keeper", one per JVM) that owns the `Child` and lives
//! exactly as long as the node: it waits for a stop request, kills and reaps the JVM, and records its exit. A
//! tokio blocking-pool thread would be wrong: it exits when idle and would take the JVM with it.
//!
//! Shutdown: the run has removed what it created over REST by then (`Engine::shutdown`), so
//! each JVM gets SIGTERM (H2O's shutdown hooks run, its logs are flushed; measured 0.38 s to
//! exit against 2.4 s after `POST /3/Shutdown`), up to [`SHUTDOWN_GRACE`] to exit, then SIGKILL;
//! in every case each process is reaped before `shutdown` returns. `Drop` is a synchronous
//! SIGKILL + reap, for error paths and panics. The ice_roots and the JVMs' temp dirs
//! (`-Djava.io.tmpdir`, where H2O unpacks XGBoost's 157 MB native library at every start and
//! removes it only at a clean exit) are removed afterwards; the logs stay.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::provision::tail_lines;
use super::{Client, H2oError};

/// How long the node may take to become healthy.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(180);
const HEALTH_POLL: Duration = Duration::from_millis(150);
/// How long a JVM may take to exit after SIGTERM before it is killed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What to launch, and where its files go.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub java: PathBuf,
    pub jar: PathBuf,
    /// JVM heap of each node, e.g. "2g".
    pub memory: String,
    /// Under the cache dir: the cloud gets `<work_dir>/<cloud name>/` for ice_roots and logs.
    pub work_dir: PathBuf,
    /// How many JVMs form the cloud (at least 1).
    pub nodes: u32,
    /// `-nthreads` of each node; all cores when unset.
    pub threads: Option<u32>,
    /// A class-data-sharing archive to map, or to write at exit ([`super::cds`]).
    pub class_data: ClassData,
    /// A directory holding XGBoost's native libraries, put first on the library path
    /// ([`super::native`]); H2O unpacks them from the jar when `None`.
    pub native_libs: Option<PathBuf>,
}

/// What a JVM does with a class-data-sharing archive ([`super::cds`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClassData {
    #[default]
    None,
    /// Map this archive (`-XX:SharedArchiveFile`), logging the JVM's verdict to `cds.log`.
    Use(PathBuf),
    /// Write the loaded classes here at a clean exit (`-XX:ArchiveClassesAtExit`).
    Dump(PathBuf),
}

impl LaunchSpec {
    /// One node with all cores: the default engine.
    pub fn single(java: PathBuf, jar: PathBuf, memory: String, work_dir: PathBuf) -> LaunchSpec {
        LaunchSpec {
            java,
            jar,
            memory,
            work_dir,
            nodes: 1,
            threads: None,
            class_data: ClassData::None,
            native_libs: None,
        }
    }
}

/// A running local H2O cloud of one or more JVMs. Dropping it kills every JVM (best effort,
/// synchronous).
pub struct LocalNode {
    /// The leader's (the first node's) URL.
    url: String,
    /// Every JVM's pid, the leader's first.
    pids: Vec<u32>,
    cloud_name: String,
    /// Every node's directory, the leader's first.
    node_dirs: Vec<PathBuf>,
    /// The leader's stdout/stderr.
    log_path: PathBuf,
    keepers: Vec<Keeper>,
}

/// The keeper thread's handle: a stop channel, the shared exit state, the join handle.
struct Keeper {
    stop: mpsc::Sender<Stop>,
    exit: Arc<ExitState>,
    thread: std::thread::JoinHandle<()>,
}

/// What a keeper is asked to do with its JVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGTERM, then keep reaping: the JVM ends by itself (or a later `Kill`).
    Term,
    /// SIGKILL and reap.
    Kill,
}

#[derive(Default)]
struct ExitState {
    status: Mutex<Option<Option<ExitStatus>>>,
    cond: Condvar,
}

impl ExitState {
    fn set(&self, s: Option<ExitStatus>) {
        *self.status.lock().unwrap() = Some(s);
        self.cond.notify_all();
    }
    fn get(&self) -> Option<Option<ExitStatus>> {
        *self.status.lock().unwrap()
    }
    fn wait(&self) {
        let mut g = self.status.lock().unwrap();
        while g.is_none() {
            g = self.cond.wait(g).unwrap();
        }
    }
}

impl LocalNode {
    /// Starts the JVMs and waits until `/3/Cloud` reports a healthy cloud of all of them.
    pub async fn launch(spec: &LaunchSpec) -> Result<LocalNode, H2oError> {
        remove_stale_ice_roots(&spec.work_dir);
        let cloud_name = format!("mlbuild-{}-{:08x}", std::process::id(), random_u64() as u32);
        let members = NodeCommand::cloud(spec, cloud_name.clone())?;
        let ports: Vec<u16> = members.iter().map(|m| m.port).collect();
        let mut node = LocalNode {
            url: format!("http://127.0.0.1:{}", members[0].port),
            pids: Vec::new(),
            cloud_name,
            node_dirs: members.iter().map(|m| m.node_dir.clone()).collect(),
            log_path: members[0].log_path.clone(),
            keepers: Vec::new(),
        };
        // On error, `node` is dropped, which kills and reaps the JVMs started so far.
        for member in members {
            let (keeper, pid) = spawn_kept(member, &spec.java)?;
            node.keepers.push(keeper);
            node.pids.push(pid);
        }
        // Every node, not only the first, must see the whole cloud in consensus: right after
        // the first does, another may still answer `consensus: false` for a moment.
        for port in ports {
            node.wait_healthy(&format!("http://127.0.0.1:{port}"), spec.nodes.max(1))
                .await?;
        }
        Ok(node)
    }

    async fn wait_healthy(&self, url: &str, nodes: u32) -> Result<(), H2oError> {
        wait_healthy(url, &self.log_path, nodes, || {
            self.keepers.iter().enumerate().find_map(|(i, k)| {
                let which = if self.keepers.len() > 1 {
                    format!("the JVM of node {} (pid {})", i + 1, self.pids[i])
                } else {
                    "the JVM".to_string()
                };
                k.exit.get().map(|status| match status {
                    Some(s) => format!("{which} exited ({s}) before the cloud was healthy"),
                    None => format!("{which} exited before the cloud was healthy"),
                })
            })
        })
        .await
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The leader's pid.
    pub fn pid(&self) -> u32 {
        self.pids[0]
    }

    /// Every JVM's pid, the leader's first.
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    pub fn cloud_name(&self) -> &str {
        &self.cloud_name
    }

    /// The JVM's stdout/stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether every JVM mapped the class-data archive it was given (`None`: none was given,
    /// or a JVM's `cds.log` cannot be read).
    pub fn class_data_mapped(&self) -> Option<bool> {
        let mut all = true;
        for dir in &self.node_dirs {
            all &= super::cds::mapped(&dir.join("cds.log"))?;
        }
        Some(all)
    }

    /// Whether every JVM has exited and been reaped.
    fn all_exited(&self) -> bool {
        self.keepers.iter().all(|k| k.exit.get().is_some())
    }

    /// Sends every JVM SIGTERM, waits up to [`SHUTDOWN_GRACE`], then SIGKILLs; returns once
    /// every JVM is reaped.
    pub async fn shutdown(self) -> Result<(), H2oError> {
        self.shutdown_within(SHUTDOWN_GRACE).await
    }

    /// [`LocalNode::shutdown`] with another grace (a JVM writing a class-data archive at exit
    /// takes seconds).
    pub async fn shutdown_within(mut self, grace: Duration) -> Result<(), H2oError> {
        for k in &self.keepers {
            // A keeper that has returned (its JVM exited) ignores it.
            let _ = k.stop.send(Stop::Term);
        }
        let deadline = Instant::now() + grace;
        while !self.all_exited() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for k in &self.keepers {
            let _ = k.stop.send(Stop::Kill);
        }
        while !self.all_exited() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.finish();
        Ok(())
    }

    /// Kills (if still running), reaps, joins the keepers and removes the ice_roots.
    /// Synchronous.
    fn finish(&mut self) {
        for k in &self.keepers {
            let _ = k.stop.send(Stop::Kill);
        }
        for k in self.keepers.drain(..) {
            k.exit.wait();
            let _ = k.thread.join();
        }
        for dir in &self.node_dirs {
            remove_scratch(dir);
        }
    }
}

/// Spawns a member's JVM from its own keeper thread (its own process group, killed when that
/// thread ends) and returns the keeper and the pid.
fn spawn_kept(member: NodeCommand, java: &Path) -> Result<(Keeper, u32), H2oError> {
    let NodeCommand {
        mut cmd,
        port,
        log_path,
        ..
    } = member;
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let parent = unsafe { libc::getpid() };
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent died before prctl took effect: we were re-parented already.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    let exit = Arc::new(ExitState::default());
    let (stop_tx, stop_rx) = mpsc::channel::<Stop>();
    let (pid_tx, pid_rx) = mpsc::channel::<std::io::Result<u32>>();
    let exit2 = exit.clone();
    let thread = std::thread::Builder::new()
        .name(format!("h2o-node-{port}"))
        .spawn(move || keeper_main(cmd, pid_tx, stop_rx, exit2))
        .map_err(|e| H2oError::NodeStart {
            reason: format!("could not start the keeper thread: {e}"),
            log_path: log_path.clone(),
            log_tail: None,
        })?;
    let failed = |reason: String| H2oError::NodeStart {
        reason,
        log_path: log_path.clone(),
        log_tail: None,
    };
    match pid_rx.recv() {
        Ok(Ok(pid)) => Ok((
            Keeper {
                stop: stop_tx,
                exit,
                thread,
            },
            pid,
        )),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(failed(format!("could not run `{}`: {e}", java.display())))
        }
        Err(_) => {
            let _ = thread.join();
            Err(failed("the keeper thread died".into()))
        }
    }
}

/// A node's directory, files and command line, ready to spawn. Shared by the managed node
/// ([`LocalNode::launch`]) and the warm one ([`super::warm`]), which differ only in how the
/// process is tied (or not) to mlbuild.
pub(crate) struct NodeCommand {
    pub cmd: Command,
    pub port: u16,
    pub cloud_name: String,
    /// `<work_dir>/<cloud name>/`: `ice_root/`, `logs/`, `flatfile.txt`, `node.log`.
    pub node_dir: PathBuf,
    /// The JVM's stdout and stderr.
    pub log_path: PathBuf,
}

impl NodeCommand {
    /// A one-node cloud's command (the warm node's); see [`NodeCommand::cloud`].
    pub(crate) fn new(spec: &LaunchSpec, cloud_name: String) -> Result<NodeCommand, H2oError> {
        let spec = LaunchSpec {
            nodes: 1,
            ..spec.clone()
        };
        let mut members = NodeCommand::cloud(&spec, cloud_name)?;
        Ok(members.remove(0))
    }

    /// The commands of a cloud of `spec.nodes` JVMs, the leader's first: creates each node's
    /// directory, picks a free port pair per node, writes the shared flatfile and opens the
    /// logs; no JVM is started.
    pub(crate) fn cloud(
        spec: &LaunchSpec,
        cloud_name: String,
    ) -> Result<Vec<NodeCommand>, H2oError> {
        let cloud_dir = spec.work_dir.join(&cloud_name);
        let ports = free_port_pairs(spec.nodes.max(1) as usize)?;
        std::fs::create_dir_all(&cloud_dir)
            .map_err(|e| H2oError::io("could not create", &cloud_dir, e))?;
        let flatfile = cloud_dir.join("flatfile.txt");
        let lines: String = ports.iter().map(|p| format!("127.0.0.1:{p}\n")).collect();
        std::fs::write(&flatfile, lines)
            .map_err(|e| H2oError::io("could not write", &flatfile, e))?;
        let threads = spec.threads.map_or("-1".to_string(), |t| t.to_string());
        ports
            .iter()
            .enumerate()
            .map(|(i, &port)| {
                let node_dir = match i {
                    0 => cloud_dir.clone(),
                    i => cloud_dir.join(format!("node-{i}")),
                };
                let ice_root = node_dir.join("ice_root");
                let log_dir = node_dir.join("logs");
                // The JVM's temp dir, ours to remove: unless `native_libs` names them, H2O
                // unpacks XGBoost's 157 MB native library there at every start and deletes it
                // only at a clean exit.
                let tmp = node_dir.join(SCRATCH[1]);
                for d in [&ice_root, &log_dir, &tmp] {
                    std::fs::create_dir_all(d)
                        .map_err(|e| H2oError::io("could not create", d, e))?;
                }
                let log_path = node_dir.join("node.log");
                let log_file = std::fs::File::create(&log_path)
                    .map_err(|e| H2oError::io("could not create", &log_path, e))?;
                let log_err = log_file
                    .try_clone()
                    .map_err(|e| H2oError::io("could not open", &log_path, e))?;
                let mut cmd = Command::new(&spec.java);
                jvm_options(&mut cmd, spec, &node_dir, &tmp);
                cmd.arg(format!("-Xmx{}", spec.memory))
                    .arg("-jar")
                    .arg(&spec.jar)
                    .args(["-ip", "127.0.0.1", "-web_ip", "127.0.0.1", "-port"])
                    .arg(port.to_string())
                    .arg("-name")
                    .arg(&cloud_name)
                    .arg("-flatfile")
                    .arg(&flatfile)
                    .arg("-ice_root")
                    .arg(&ice_root)
                    .arg("-log_dir")
                    .arg(&log_dir)
                    .args(["-nthreads", &threads])
                    .current_dir(&node_dir)
                    .stdin(Stdio::null())
                    .stdout(log_file)
                    .stderr(log_err);
                Ok(NodeCommand {
                    cmd,
                    port,
                    cloud_name: cloud_name.clone(),
                    node_dir,
                    log_path,
                })
            })
            .collect()
    }
}

/// Polls `/3/Cloud` at `url` until it reports a healthy cloud of `nodes` nodes in consensus.
/// `exited` says why a JVM is gone, once one is (then this fails at once, with the log's tail).
pub(crate) async fn wait_healthy(
    url: &str,
    log_path: &Path,
    nodes: u32,
    mut exited: impl FnMut() -> Option<String>,
) -> Result<(), H2oError> {
    let client = Client::new(url)?;
    let start = Instant::now();
    loop {
        if let Some(reason) = exited() {
            return Err(H2oError::NodeStart {
                reason,
                log_path: log_path.to_path_buf(),
                log_tail: log_tail(log_path),
            });
        }
        if let Ok(c) = client.cloud_with_timeout(Duration::from_secs(2)).await {
            if c.healthy && c.consensus && c.cloud_size == nodes {
                return Ok(());
            }
        }
        if start.elapsed() > HEALTH_TIMEOUT {
            return Err(H2oError::HealthTimeout {
                url: url.to_string(),
                secs: HEALTH_TIMEOUT.as_secs(),
                log_path: log_path.to_path_buf(),
                log_tail: log_tail(log_path),
            });
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}

/// The last 20 lines of a node's log, if it can be read.
pub(crate) fn log_tail(log_path: &Path) -> Option<String> {
    let text = std::fs::read(log_path).ok()?;
    Some(tail_lines(&String::from_utf8_lossy(&text), 20))
}

impl Drop for LocalNode {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The keeper thread: spawns the JVM (so that PDEATHSIG is tied to this thread), then waits for
/// a stop request or the JVM's own exit, and reaps it.
fn keeper_main(
    mut cmd: Command,
    pid_tx: mpsc::Sender<std::io::Result<u32>>,
    stop_rx: mpsc::Receiver<Stop>,
    exit: Arc<ExitState>,
) {
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = pid_tx.send(Err(e));
            exit.set(None);
            return;
        }
    };
    let _ = pid_tx.send(Ok(child.id()));
    drop(cmd);
    // Reaped within this long of its exit; shorter once it was asked to end.
    let mut every = Duration::from_millis(100);
    loop {
        match stop_rx.recv_timeout(every) {
            Ok(Stop::Term) => {
                if let Ok(None) = child.try_wait() {
                    // SAFETY: kill(2) on our own unreaped child: the pid cannot be reused yet.
                    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
                }
                every = Duration::from_millis(5);
            }
            // A kill request, or the LocalNode vanished without one.
            Ok(Stop::Kill) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Ok(Some(s)) = child.try_wait() {
                    exit.set(Some(s));
                    return;
                }
                let _ = child.kill();
                let status = child.wait().ok();
                exit.set(status);
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(s)) = child.try_wait() {
                    exit.set(Some(s));
                    return;
                }
            }
        }
    }
}

/// The JVM options before `-Xmx` of a node: the class-data archive, XGBoost's native
/// libraries, the temp dir inside the node's directory and, for a single node, the collector.
fn jvm_options(cmd: &mut Command, spec: &LaunchSpec, node_dir: &Path, tmp: &Path) {
    match &spec.class_data {
        ClassData::None => {}
        ClassData::Use(archive) => {
            let mut flag = std::ffi::OsString::from("-XX:SharedArchiveFile=");
            flag.push(archive);
            let mut log = std::ffi::OsString::from("-Xlog:cds=info,cds+dynamic=info:file=");
            log.push(node_dir.join("cds.log"));
            cmd.arg(flag).arg(log);
        }
        ClassData::Dump(archive) => {
            let mut flag = std::ffi::OsString::from("-XX:ArchiveClassesAtExit=");
            flag.push(archive);
            // The dump's own warnings (classes it cannot archive) stay out of node.log.
            cmd.arg(flag).arg("-Xlog:cds=off,cds+dynamic=off");
        }
    }
    if let Some(libs) = &spec.native_libs {
        cmd.env("LD_LIBRARY_PATH", super::native::library_path(libs));
    }
    let mut tmpdir = std::ffi::OsString::from("-Djava.io.tmpdir=");
    tmpdir.push(tmp);
    cmd.arg(tmpdir);
    if spec.nodes <= 1 {
        // One node: the throughput collector (AutoML's allocation-heavy work on few
        // cores; G1's concurrent threads compete with it). A cloud keeps G1, whose
        // short pauses keep heartbeats between nodes on time.
        cmd.arg("-XX:+UseParallelGC");
    }
}

/// The directories of a node that go when it stops (its logs stay): H2O's ice_root and the
/// JVM's temp dir.
pub(crate) const SCRATCH: [&str; 2] = ["ice_root", "tmp"];

/// Removes a node directory's [`SCRATCH`] dirs, and those of the nodes inside it (`node-<i>/`).
pub(crate) fn remove_scratch(node_dir: &Path) {
    for name in SCRATCH {
        let _ = std::fs::remove_dir_all(node_dir.join(name));
    }
    for e in std::fs::read_dir(node_dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with("node-") {
            remove_scratch(&e.path());
        }
    }
}

/// Removes the ice_root of earlier nodes whose mlbuild process is gone (killed before it could
/// clean up). Their logs stay. Node dirs are named `mlbuild-<pid>-<hex>`; a warm node's
/// `mlbuild-warm-<hex>` does not parse, so it is never touched here.
fn remove_stale_ice_roots(work_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix("mlbuild-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            remove_scratch(&e.path());
        }
    }
}

/// `n` distinct ports P such that P and P+1 are both free on 127.0.0.1 (TCP; P+1 also UDP).
/// Chosen at random below the Linux ephemeral range (32768+), so outgoing connections don't
/// take them.
fn free_port_pairs(n: usize) -> Result<Vec<u16>, H2oError> {
    use std::net::{TcpListener, UdpSocket};
    let mut found: Vec<u16> = Vec::new();
    for _ in 0..200 * n {
        let p = 20000 + (random_u64() % 12000) as u16;
        let p = p & !1;
        let ok = !found.contains(&p)
            && TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok();
        if ok {
            found.push(p);
            if found.len() == n {
                return Ok(found);
            }
        }
    }
    Err(H2oError::NodeStart {
        reason: "found no free port pair on 127.0.0.1 in 20000–32000".into(),
        log_path: PathBuf::new(),
        log_tail: None,
    })
}

/// A random number from std's per-process random hash keys (no `rand` dependency).
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_pairs_are_even_free_and_distinct() {
        let ports = free_port_pairs(3).unwrap();
        assert_eq!(ports.len(), 3);
        for p in &ports {
            assert_eq!(p % 2, 0);
            assert!((20000..32000).contains(p));
        }
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
    }

    #[test]
    fn stale_ice_roots_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // pid 0x7fffffff cannot exist (pid_max is at most 2^22).
        let stale = dir.path().join("mlbuild-2147483647-abcd");
        let mine = dir
            .path()
            .join(format!("mlbuild-{}-abcd", std::process::id()));
        // A warm node (`mlbuild h2o start`) outlives the mlbuild that launched it.
        let warm = dir.path().join("mlbuild-warm-abcd");
        for d in [&stale, &mine, &warm] {
            std::fs::create_dir_all(d.join("ice_root")).unwrap();
            std::fs::create_dir_all(d.join(SCRATCH[1])).unwrap();
            std::fs::create_dir_all(d.join("node-1").join(SCRATCH[1])).unwrap();
            std::fs::create_dir_all(d.join("logs")).unwrap();
        }
        remove_stale_ice_roots(dir.path());
        assert!(!stale.join("ice_root").exists());
        assert!(!stale.join(SCRATCH[1]).exists());
        assert!(!stale.join("node-1").join(SCRATCH[1]).exists());
        assert!(stale.join("logs").exists());
        assert!(mine.join("ice_root").exists());
        assert!(warm.join("ice_root").exists());
    }

    #[test]
    fn randoms_differ() {
        assert_ne!(random_u64(), random_u64());
    }

    /// The keeper machinery with a stand-in process: stop kills and reaps it.
    #[test]
    fn keeper_kills_and_reaps() {
        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        let exit = Arc::new(ExitState::default());
        let (stop_tx, stop_rx) = mpsc::channel();
        let (pid_tx, pid_rx) = mpsc::channel();
        let e2 = exit.clone();
        let t = std::thread::spawn(move || keeper_main(cmd, pid_tx, stop_rx, e2));
        let pid = pid_rx.recv().unwrap().unwrap();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        assert!(exit.get().is_none());
        stop_tx.send(Stop::Kill).unwrap();
        exit.wait();
        t.join().unwrap();
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    /// SIGTERM lets the process end by itself (a shell that traps it exits 7); a later kill
    /// request is then a no-op.
    #[test]
    fn keeper_terminates_gently_first() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap 'exit 7' TERM; while :; do sleep 0.01; done"]);
        let exit = Arc::new(ExitState::default());
        let (stop_tx, stop_rx) = mpsc::channel();
        let (pid_tx, pid_rx) = mpsc::channel();
        let e2 = exit.clone();
        let t = std::thread::spawn(move || keeper_main(cmd, pid_tx, stop_rx, e2));
        pid_rx.recv().unwrap().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        stop_tx.send(Stop::Term).unwrap();
        exit.wait();
        assert_eq!(exit.get().flatten().and_then(|s| s.code()), Some(7));
        let _ = stop_tx.send(Stop::Kill);
        t.join().unwrap();
    }
}

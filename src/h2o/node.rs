//! A managed local H2O node: one JVM per run, bound to 127.0.0.1, gone when we are.
//!
//! Launch: a free port pair P, P+1 (H2O uses P+1 internally), a unique cloud name
//! `mlbuild-<pid>-<hex>` and a one-line flatfile `127.0.0.1:P`, so that no other H2O node on
//! the machine can join; `-ice_root`, `-log_dir` and the JVM's stdout/stderr (`node.log`) live in
//! `<work_dir>/<cloud name>/`. The JVM gets its own process group, so a terminal Ctrl-C reaches
//! mlbuild only, which then shuts the node down in order. The directory and command line are
//! built by [`NodeCommand`], which the warm node (`super::warm`) shares.
//!
//! Parent death: the JVM is spawned with `PR_SET_PDEATHSIG = SIGKILL`. Linux delivers that
//! signal when the *thread* that forked the child exits, not the process, so the JVM is spawned
//! from a dedicated `std::thread` (the "keeper") that owns the `Child` and lives exactly as long
//! as the node: it waits for a stop request, kills and reaps the JVM, and records its exit. A
//! tokio blocking-pool thread would be wrong: it exits when idle and would take the JVM with it.
//!
//! Shutdown: `POST /3/Shutdown`, up to 10 s for the JVM to exit, then SIGKILL; in every case the
//! process is reaped before `shutdown` returns. `Drop` is a synchronous SIGKILL + reap, for
//! error paths and panics. The ice_root is removed afterwards; the logs stay.

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
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What to launch, and where its files go.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub java: PathBuf,
    pub jar: PathBuf,
    /// JVM heap, e.g. "2g".
    pub memory: String,
    /// Under the cache dir: each node gets `<work_dir>/<cloud name>/` for ice_root and logs.
    pub work_dir: PathBuf,
}

/// A running local H2O node. Dropping it kills the JVM (best effort, synchronous).
pub struct LocalNode {
    url: String,
    pid: u32,
    cloud_name: String,
    node_dir: PathBuf,
    log_path: PathBuf,
    keeper: Option<Keeper>,
}

/// The keeper thread's handle: a stop channel, the shared exit state, the join handle.
struct Keeper {
    stop: mpsc::Sender<()>,
    exit: Arc<ExitState>,
    thread: std::thread::JoinHandle<()>,
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
    /// Starts the JVM and waits until `/3/Cloud` reports a healthy cloud of one node.
    pub async fn launch(spec: &LaunchSpec) -> Result<LocalNode, H2oError> {
        remove_stale_ice_roots(&spec.work_dir);
        let cloud_name = format!("mlbuild-{}-{:08x}", std::process::id(), random_u64() as u32);
        let NodeCommand {
            mut cmd,
            port,
            cloud_name,
            node_dir,
            log_path,
        } = NodeCommand::new(spec, cloud_name)?;
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
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
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
        let pid = match pid_rx.recv() {
            Ok(Ok(pid)) => pid,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(H2oError::NodeStart {
                    reason: format!("could not run `{}`: {e}", spec.java.display()),
                    log_path,
                    log_tail: None,
                });
            }
            Err(_) => {
                let _ = thread.join();
                return Err(H2oError::NodeStart {
                    reason: "the keeper thread died".into(),
                    log_path,
                    log_tail: None,
                });
            }
        };

        let node = LocalNode {
            url: format!("http://127.0.0.1:{port}"),
            pid,
            cloud_name,
            node_dir,
            log_path,
            keeper: Some(Keeper {
                stop: stop_tx,
                exit,
                thread,
            }),
        };
        // On error, `node` is dropped here, which kills and reaps the JVM.
        node.wait_healthy().await?;
        Ok(node)
    }

    async fn wait_healthy(&self) -> Result<(), H2oError> {
        wait_healthy(&self.url, &self.log_path, || {
            self.exit_status().map(|status| match status {
                Some(s) => format!("the JVM exited ({s}) before it was healthy"),
                None => "the JVM exited before it was healthy".into(),
            })
        })
        .await
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn cloud_name(&self) -> &str {
        &self.cloud_name
    }

    /// The JVM's stdout/stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// `Some(status)` once the JVM has exited and been reaped.
    fn exit_status(&self) -> Option<Option<ExitStatus>> {
        self.keeper.as_ref().and_then(|k| k.exit.get())
    }

    /// Asks H2O to shut down, waits up to 10 s, then SIGKILLs; returns once the JVM is reaped.
    pub async fn shutdown(mut self) -> Result<(), H2oError> {
        if let Ok(client) = Client::new(&self.url) {
            // The node may already be dying; any answer (or none) is fine.
            let _ = client.shutdown_cluster().await;
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.exit_status().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some(k) = &self.keeper {
            // Idempotent when the JVM already exited: the keeper has returned.
            let _ = k.stop.send(());
        }
        while self.exit_status().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.finish();
        Ok(())
    }

    /// Kills (if still running), reaps, joins the keeper and removes the ice_root. Synchronous.
    fn finish(&mut self) {
        if let Some(k) = self.keeper.take() {
            let _ = k.stop.send(());
            k.exit.wait();
            let _ = k.thread.join();
        }
        let _ = std::fs::remove_dir_all(self.node_dir.join("ice_root"));
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
    /// Creates the node's directory, picks a free port pair, writes the flatfile and opens the
    /// log; the JVM is not started.
    pub(crate) fn new(spec: &LaunchSpec, cloud_name: String) -> Result<NodeCommand, H2oError> {
        let node_dir = spec.work_dir.join(&cloud_name);
        let ice_root = node_dir.join("ice_root");
        let log_dir = node_dir.join("logs");
        for d in [&ice_root, &log_dir] {
            std::fs::create_dir_all(d).map_err(|e| H2oError::io("could not create", d, e))?;
        }
        let port = free_port_pair()?;
        let flatfile = node_dir.join("flatfile.txt");
        std::fs::write(&flatfile, format!("127.0.0.1:{port}\n"))
            .map_err(|e| H2oError::io("could not write", &flatfile, e))?;
        let log_path = node_dir.join("node.log");
        let log_file = std::fs::File::create(&log_path)
            .map_err(|e| H2oError::io("could not create", &log_path, e))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| H2oError::io("could not open", &log_path, e))?;

        let mut cmd = Command::new(&spec.java);
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
            .args(["-nthreads", "-1"])
            .current_dir(&node_dir)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        Ok(NodeCommand {
            cmd,
            port,
            cloud_name,
            node_dir,
            log_path,
        })
    }
}

/// Polls `/3/Cloud` at `url` until it reports a healthy cloud of one node. `exited` says why
/// the JVM is gone, once it is (then this fails at once, with the log's tail).
pub(crate) async fn wait_healthy(
    url: &str,
    log_path: &Path,
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
            if c.healthy && c.consensus && c.cloud_size == 1 {
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
    stop_rx: mpsc::Receiver<()>,
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
    loop {
        match stop_rx.recv_timeout(Duration::from_millis(100)) {
            // A stop request, or the LocalNode vanished without one: kill.
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
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
            let _ = std::fs::remove_dir_all(e.path().join("ice_root"));
        }
    }
}

/// A port P such that P and P+1 are both free on 127.0.0.1 (TCP; P+1 also UDP). Chosen at
/// random below the Linux ephemeral range (32768+), so outgoing connections don't take it.
fn free_port_pair() -> Result<u16, H2oError> {
    use std::net::{TcpListener, UdpSocket};
    for _ in 0..200 {
        let p = 20000 + (random_u64() % 12000) as u16;
        let p = p & !1;
        let ok = TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok();
        if ok {
            return Ok(p);
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
    fn port_pair_is_even_and_free() {
        let p = free_port_pair().unwrap();
        assert_eq!(p % 2, 0);
        assert!((20000..32000).contains(&p));
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
            std::fs::create_dir_all(d.join("logs")).unwrap();
        }
        remove_stale_ice_roots(dir.path());
        assert!(!stale.join("ice_root").exists());
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
        stop_tx.send(()).unwrap();
        exit.wait();
        t.join().unwrap();
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}

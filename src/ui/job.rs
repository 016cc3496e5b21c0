//! The UI's Run button: one background `mlbuild run` of the project at a time.
//!
//! The run is this same binary started as a child (`mlbuild -C DIR --color never run`): the
//! same pipeline code, the project's run lock, the registry records the live view reads, and
//! the CLI's Ctrl-C handling. Cancel sends the child SIGINT, as Ctrl-C in a terminal would, so
//! the run cancels its H2O job, stops the node it started and records itself `interrupted`.
//! When the UI stops, a run it started is cancelled the same way and waited for.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use tokio::sync::Mutex;

/// How much of the run's output the UI keeps (its end).
const OUTPUT_TAIL: usize = 64 * 1024;

/// How long a cancelled or abandoned run gets to release its engine before it is killed.
const CANCEL_BUDGET: Duration = Duration::from_secs(90);

/// Where a run started from the UI stands. JSON: `GET /api/job`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// No run was started from this UI process.
    Idle,
    Running,
    /// Cancel was asked; the run is releasing its engine.
    Cancelling,
    /// The process ended with this exit code (none: killed by a signal).
    Finished {
        exit_code: Option<i32>,
    },
}

/// A run started from the UI, as `GET /api/job` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub state: JobState,
    pub pid: Option<u32>,
    pub started_at: Option<String>,
    pub cancelled: bool,
    /// The end of the run's output (stderr and stdout, as the terminal would show them).
    pub output: String,
}

struct Job {
    pid: u32,
    started_at: String,
    cancelled: bool,
    exit: Option<Option<i32>>,
    output: Arc<std::sync::Mutex<String>>,
}

/// The one background run of this UI process.
#[derive(Default)]
pub struct Jobs {
    job: Mutex<Option<Job>>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("a run started from this page is still under way (pid {0})")]
    Busy(u32),
    #[error("another mlbuild run holds this project's run lock ({0})")]
    Locked(String),
    #[error(transparent)]
    Spawn(#[from] anyhow::Error),
}

impl Jobs {
    /// What the current (or last) run started here is doing.
    pub async fn view(&self) -> JobView {
        let job = self.job.lock().await;
        match job.as_ref() {
            None => JobView {
                state: JobState::Idle,
                pid: None,
                started_at: None,
                cancelled: false,
                output: String::new(),
            },
            Some(j) => JobView {
                state: match (j.exit, j.cancelled) {
                    (Some(code), _) => JobState::Finished { exit_code: code },
                    (None, true) => JobState::Cancelling,
                    (None, false) => JobState::Running,
                },
                pid: Some(j.pid),
                started_at: Some(j.started_at.clone()),
                cancelled: j.cancelled,
                output: j.output.lock().map(|o| o.clone()).unwrap_or_default(),
            },
        }
    }

    /// Starts `mlbuild run` in `dir`, unless a run of ours is under way or another process
    /// holds the project's run lock (`lock`).
    pub async fn start(
        self: &Arc<Self>,
        dir: &std::path::Path,
        lock: &std::path::Path,
    ) -> Result<u32, StartError> {
        let mut slot = self.job.lock().await;
        if let Some(j) = slot.as_ref().filter(|j| j.exit.is_none()) {
            return Err(StartError::Busy(j.pid));
        }
        if let Some(holder) = crate::store::RunLock::holder(lock) {
            return Err(StartError::Locked(holder));
        }
        let exe = std::env::current_exe().context("finding the mlbuild executable")?;
        let mut child = tokio::process::Command::new(exe)
            .arg("-C")
            .arg(dir)
            .args(["--color", "never", "run"])
            .env("MLBUILD_NO_PROGRESS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting `mlbuild run`")?;
        let pid = child.id().context("the run exited before it started")?;
        let output = Arc::new(std::sync::Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(collect(Box::new(out), output.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(collect(Box::new(err), output.clone())));
        }
        *slot = Some(Job {
            pid,
            started_at: crate::registry::now_rfc3339(),
            cancelled: false,
            exit: None,
            output,
        });
        let jobs = self.clone();
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            for reader in readers {
                let _ = reader.await;
            }
            if let Some(job) = jobs.job.lock().await.as_mut() {
                job.exit = Some(status.and_then(|s| s.code()));
            }
        });
        Ok(pid)
    }

    /// Asks the run to stop (SIGINT, as Ctrl-C would). False when no run of ours is under way.
    pub async fn cancel(&self) -> bool {
        let mut slot = self.job.lock().await;
        let Some(job) = slot.as_mut().filter(|j| j.exit.is_none()) else {
            return false;
        };
        job.cancelled = true;
        interrupt(job.pid);
        true
    }

    /// On the UI's shutdown: cancels a run under way and waits for it to release its engine
    /// (killing it after [`CANCEL_BUDGET`]).
    pub async fn shutdown(&self) {
        if !self.cancel().await {
            return;
        }
        let deadline = tokio::time::Instant::now() + CANCEL_BUDGET;
        while tokio::time::Instant::now() < deadline {
            if !self.under_way().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let slot = self.job.lock().await;
        if let Some(job) = slot.as_ref().filter(|j| j.exit.is_none()) {
            // SAFETY: a signal to our own child, not yet reaped (so its pid is not reused).
            unsafe { libc::kill(job.pid as libc::pid_t, libc::SIGKILL) };
        }
    }

    /// Whether a run started here has not ended yet.
    pub async fn under_way(&self) -> bool {
        self.job
            .lock()
            .await
            .as_ref()
            .is_some_and(|j| j.exit.is_none())
    }
}

fn interrupt(pid: u32) {
    // SAFETY: sends a signal to the child we started; no memory is involved.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
}

/// Appends a stream to the output, keeping its last [`OUTPUT_TAIL`] bytes.
async fn collect(
    mut stream: Box<dyn AsyncRead + Send + Unpin>,
    output: Arc<std::sync::Mutex<String>>,
) {
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if let Ok(mut out) = output.lock() {
            out.push_str(&String::from_utf8_lossy(&buf[..n]));
            if out.len() > OUTPUT_TAIL {
                let mut cut = out.len() - OUTPUT_TAIL;
                while !out.is_char_boundary(cut) {
                    cut += 1;
                }
                out.drain(..cut);
            }
        }
    }
}

//! A run's rows in the registry, written when they must be.
//!
//! # Why
//! A run that executes nothing (every step cached) used to write its start row, a row per step
//! and its end, each a transaction of its own: ten commits, each several round trips to
//! sqlx's SQLite thread, a large part of a no-op run's time (docs/performance.md). Its rows
//! are now kept here and written in one transaction when it ends.
//! A run that executes a step writes its start row, with the rows so far, *before* that step
//! starts: the interrupted-run detection ([`Registry::mark_interrupted`]) and the UI's live
//! view read it while the step runs. From then on each row is written as it comes.
//!
//! What is recorded is the same either way: the run (its start time is when it started, not
//! when it was written), its steps with their times, its end. A fully cached run killed before
//! its end leaves no row: it executed nothing.

use std::sync::OnceLock;

use super::{Opening, Registry, Result, RunId, StepRecord};
use crate::report::Printer;
use crate::status::RunStatus;

/// The recorder of one run (`run`, `watch`'s rounds, `exp`'s points).
pub struct RunRecorder<'a> {
    registry: &'a Opening,
    printer: &'a Printer,
    project: String,
    command: &'static str,
    git_commit: Option<String>,
    started_at: String,
    id: OnceLock<RunId>,
    /// Set once the runs a dead process left `running` are marked (see [`RunRecorder::registry`]).
    marked: tokio::sync::OnceCell<()>,
    /// Steps recorded before the run's row was written.
    pending: tokio::sync::Mutex<Vec<StepRecord>>,
}

impl<'a> RunRecorder<'a> {
    /// A run of `project` by `command` (at git commit `git_commit`), starting now. Nothing is
    /// written yet.
    pub fn new(
        registry: &'a Opening,
        printer: &'a Printer,
        project: &str,
        command: &'static str,
        git_commit: Option<String>,
    ) -> RunRecorder<'a> {
        RunRecorder {
            registry,
            printer,
            project: project.to_string(),
            command,
            git_commit,
            started_at: super::now_rfc3339(),
            id: OnceLock::new(),
            marked: tokio::sync::OnceCell::new(),
            pending: tokio::sync::Mutex::new(Vec::new()),
        }
    }

    /// The registry, for the run and its steps: on first use, the runs of this project left
    /// `running` by a process that is gone are marked `interrupted` (the caller holds the
    /// project's run lock), so whatever the walk reads of past runs — a conclude that one of them
    /// did not finish — sees how they ended.
    pub async fn registry(&self) -> Result<&'a Registry> {
        let registry = self.registry.get().await?;
        self.marked
            .get_or_try_init(|| async {
                for id in registry.mark_interrupted(&self.project).await? {
                    self.printer.detail(
                        1,
                        &format!("run {id} was interrupted (its process is gone)"),
                    );
                }
                Ok::<(), super::RegistryError>(())
            })
            .await?;
        Ok(registry)
    }

    /// The run's id, once its row is written.
    pub fn known_id(&self) -> Option<RunId> {
        self.id.get().copied()
    }

    /// The run's id: its row (and the steps so far) written now if they are not yet.
    pub async fn id(&self) -> Result<RunId> {
        self.write(None).await
    }

    /// Writes the run's row, with `end` when it has ended, unless it is written already.
    async fn write(&self, end: Option<(RunStatus, Option<&str>)>) -> Result<RunId> {
        let mut pending = self.pending.lock().await;
        if let Some(id) = self.known_id() {
            return Ok(id);
        }
        let registry = self.registry().await?;
        let run = super::NewRun {
            project: &self.project,
            command: self.command,
            git_commit: self.git_commit.as_deref(),
            started_at: &self.started_at,
        };
        let id = registry.record_run(&run, &pending, end).await?;
        pending.clear();
        let _ = self.id.set(id);
        Ok(id)
    }

    /// Records a step execution: kept until the run's row is written, then written at once.
    pub async fn step(&self, step: StepRecord) -> Result<()> {
        let mut pending = self.pending.lock().await;
        match self.known_id() {
            Some(id) => {
                drop(pending);
                self.registry().await?.record_step(id, &step).await
            }
            None => {
                pending.push(step);
                Ok(())
            }
        }
    }

    /// A step is about to execute: the run's row is written first (an error here stops the
    /// run before the step), then the step under way (for the UI's live view; a failure to say
    /// so is not the run's failure).
    pub async fn start_step(&self, step: &str, attempt: u32) -> Result<()> {
        let id = self.id().await?;
        let _ = self.registry().await?.start_step(id, step, attempt).await;
        Ok(())
    }

    /// Records how the run ended: one transaction for a run whose row is not written yet.
    pub async fn finish(&self, status: RunStatus, report: Option<&str>) -> Result<()> {
        if let Some(id) = self.known_id() {
            return self.registry().await?.finish_run(id, status, report).await;
        }
        self.write(Some((status, report))).await.map(|_| ())
    }

    /// Keeps the error a failed run ended with (after [`RunRecorder::finish`]).
    pub async fn record_error(&self, error: &str) -> Result<()> {
        let id = self.id().await?;
        self.registry().await?.record_error(id, error).await
    }
}

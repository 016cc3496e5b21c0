//! Runs (one per `mlbuild run`) and the step executions recorded within them.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{db, now_rfc3339, retry, Registry, RegistryError, Result, RunId};
use crate::status::{RunStatus, StepStatus, UnknownStatus};

/// A run as recorded; `status` is `running` until [`Registry::finish_run`], or until
/// [`Registry::mark_interrupted`] finds its process gone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub id: RunId,
    pub project: String,
    pub command: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: RunStatus,
    pub report: Option<String>,
    /// The project's git commit when the run started (none outside a git work tree, or in a
    /// registry older than schema 4).
    pub git_commit: Option<String>,
    /// Who started it (`$USER`).
    pub user: Option<String>,
    /// The error a failed run ended with, as the CLI printed it (`error:`, `Caused by:`,
    /// `hint:` lines).
    pub error: Option<String>,
    /// The step this run started last and (while the run is `running`) may be executing now:
    /// a step whose record is not among the run's steps yet is under way. None before schema 5
    /// and for a run that executed nothing.
    pub current: Option<StepStart>,
}

impl Run {
    /// The step this run is executing now: the last one it started, while the run is
    /// `running` and that step has no record among `steps` (the run's records) yet.
    pub fn under_way<'a>(&'a self, steps: &[StepRecord]) -> Option<&'a StepStart> {
        let current = self.current.as_ref()?;
        let closed = steps
            .iter()
            .any(|s| s.step == current.step && s.attempt == current.attempt);
        (self.status == RunStatus::Running && !closed).then_some(current)
    }
}

/// A step execution that started: what `record_step` will close.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepStart {
    pub step: String,
    pub attempt: u32,
    pub since: String,
}

/// A run and how many of its step executions ended each way: a line of `mlbuild runs` and of
/// the UI's runs page. JSON: the run's fields plus `steps` (`ran`, `cached`, `restored`,
/// `failed` → count).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    #[serde(flatten)]
    pub run: Run,
    pub steps: std::collections::BTreeMap<String, usize>,
}

/// One step execution within a run: as recorded ([`StepRecord::now`]) and as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    pub step: String,
    pub attempt: u32,
    pub status: StepStatus,
    pub key: String,
    pub duration_ms: u64,
    pub reason: String,
    /// When it was recorded (RFC 3339, as stored).
    pub at: String,
}

/// A run's row as [`Registry::record_run`] writes it.
pub struct NewRun<'a> {
    pub project: &'a str,
    pub command: &'a str,
    pub git_commit: Option<&'a str>,
    /// When it started (RFC 3339, as stored).
    pub started_at: &'a str,
}

impl StepRecord {
    /// A step execution ending now, to record.
    pub fn now(
        step: &str,
        attempt: u32,
        status: StepStatus,
        key: &str,
        duration_ms: u64,
        reason: &str,
    ) -> StepRecord {
        StepRecord {
            step: step.to_string(),
            attempt,
            status,
            key: key.to_string(),
            duration_ms,
            reason: reason.to_string(),
            at: now_rfc3339(),
        }
    }
}

/// Rows of `step_runs` a statement inserts at most (8 parameters each: well under SQLite's
/// and Postgres' limits).
const STEPS_PER_INSERT: usize = 100;

/// The `INSERT` of `n` rows of `step_runs`.
fn steps_sql(n: usize) -> String {
    let values: Vec<String> = (0..n)
        .map(|i| {
            let p: Vec<String> = (1..=8).map(|k| format!("${}", i * 8 + k)).collect();
            format!("({})", p.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO step_runs \
         (run, step, attempt, status, step_key, duration_ms, reason, recorded_at) VALUES {}",
        values.join(", ")
    )
}

/// [`steps_sql`] of `steps.len()` rows with their values bound.
fn steps_query<'q>(
    sql: &'q str,
    run: RunId,
    steps: &'q [StepRecord],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut query = sqlx::query(sql);
    for s in steps {
        query = query
            .bind(run)
            .bind(s.step.as_str())
            .bind(i64::from(s.attempt))
            .bind(s.status.as_str())
            .bind(s.key.as_str())
            .bind(i64::try_from(s.duration_ms).unwrap_or(i64::MAX))
            .bind(s.reason.as_str())
            .bind(s.at.as_str());
    }
    query
}

/// Inserts `steps` of run `run` within `tx`, many rows a statement.
async fn insert_steps(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: RunId,
    steps: &[StepRecord],
) -> Result<()> {
    for chunk in steps.chunks(STEPS_PER_INSERT) {
        let sql = steps_sql(chunk.len());
        steps_query(&sql, run, chunk)
            .execute(&mut **tx)
            .await
            .map_err(db("recording a step"))?;
    }
    Ok(())
}

/// A status read back from a row: one this version does not know (written by a newer
/// mlbuild) is an error that names it.
fn parse_status<T: std::str::FromStr<Err = UnknownStatus>>(text: String) -> Result<T> {
    text.parse()
        .map_err(|e: UnknownStatus| RegistryError::InvalidValue {
            what: e.what,
            value: e.value,
            expected: e.expected,
        })
}

impl Registry {
    /// Records the start of a run, by the current user at `git_commit`, and returns its id
    /// (1, 2, … in this registry).
    pub async fn begin_run(
        &self,
        project: &str,
        command: &str,
        git_commit: Option<&str>,
    ) -> Result<RunId> {
        let run = NewRun {
            project,
            command,
            git_commit,
            started_at: &now_rfc3339(),
        };
        self.record_run(&run, &[], None).await
    }

    /// Records a run in one transaction: its row (`running`, or already ended with `end`'s
    /// status and report) and the step executions it recorded so far. Returns its id.
    pub async fn record_run(
        &self,
        run: &NewRun<'_>,
        steps: &[StepRecord],
        end: Option<(RunStatus, Option<&str>)>,
    ) -> Result<RunId> {
        let user = super::current_user();
        let (status, report, finished_at) = match end {
            Some((status, report)) => (status.as_str(), report, Some(now_rfc3339())),
            None => (RunStatus::Running.as_str(), None, None),
        };
        retry("recording a run", || async {
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(db("starting a run"))?;
            let id = super::next_id(&mut tx, "run", "allocating a run id").await?;
            sqlx::query(
                "INSERT INTO runs \
                 (id, project, command, started_at, status, host, pid, git_commit, user_name, \
                  report, finished_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(id)
            .bind(run.project)
            .bind(run.command)
            .bind(run.started_at)
            .bind(status)
            .bind(host_name())
            .bind(i64::from(std::process::id()))
            .bind(run.git_commit)
            .bind(user.as_str())
            .bind(report)
            .bind(finished_at.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(db("recording a run"))?;
            insert_steps(&mut tx, id, steps).await?;
            tx.commit().await.map_err(db("recording a run"))?;
            Ok(Some(id))
        })
        .await
    }

    /// Records how a run ended and its report.
    pub async fn finish_run(
        &self,
        run: RunId,
        status: RunStatus,
        report: Option<&str>,
    ) -> Result<()> {
        retry("finishing a run", || async {
            let done = sqlx::query(
                "UPDATE runs SET status = $1, report = $2, finished_at = $3 WHERE id = $4",
            )
            .bind(status.as_str())
            .bind(report)
            .bind(now_rfc3339())
            .bind(run)
            .execute(&mut *self.conn().await?)
            .await
            .map_err(db("finishing a run"))?;
            if done.rows_affected() == 0 {
                return Err(RegistryError::UnknownRun(run));
            }
            Ok(Some(()))
        })
        .await
    }

    /// Records one step execution.
    pub async fn record_step(&self, run: RunId, step: &StepRecord) -> Result<()> {
        let sql = steps_sql(1);
        retry("recording a step", || async {
            steps_query(&sql, run, std::slice::from_ref(step))
                .execute(&mut *self.conn().await?)
                .await
                .map_err(db("recording a step"))?;
            Ok(Some(()))
        })
        .await
    }

    /// Records that a step execution starts (not a cached or restored step: one that runs).
    pub async fn start_step(&self, run: RunId, step: &str, attempt: u32) -> Result<()> {
        if self.schema < super::schema::STEP_STARTS {
            return Ok(());
        }
        retry("recording a step's start", || async {
            sqlx::query(
                "UPDATE runs SET current_step = $1, current_attempt = $2, current_since = $3 \
                 WHERE id = $4",
            )
            .bind(step)
            .bind(i64::from(attempt))
            .bind(now_rfc3339())
            .bind(run)
            .execute(&mut *self.conn().await?)
            .await
            .map_err(db("recording a step's start"))?;
            Ok(Some(()))
        })
        .await
    }

    /// The runs of project `$1` recorded as `running` on host `$2`: found through the index
    /// `runs_running` (schema 7), not by reading every run.
    pub(super) const RUNNING_HERE: &str = "SELECT id, pid FROM runs \
         WHERE status = 'running' AND project = $1 AND host = $2 AND pid IS NOT NULL";

    /// Marks `interrupted` the runs of `project` still recorded as `running` that were started
    /// on this host by a process that no longer exists (killed, or the machine rebooted), and
    /// returns their ids. The caller must hold the project's run lock, so that no run of the
    /// project is under way. Runs of other hosts (a shared Postgres registry) and runs whose
    /// host or pid was not recorded are never touched; a pid that was reused by a new process
    /// keeps its run `running` until that process is gone too.
    pub async fn mark_interrupted(&self, project: &str) -> Result<Vec<RunId>> {
        let host = host_name();
        let rows = sqlx::query(Self::RUNNING_HERE)
            .bind(project)
            .bind(&host)
            .fetch_all(&mut *self.conn().await?)
            .await
            .map_err(db("reading the running runs"))?;
        let mut marked = Vec::new();
        for row in rows {
            let get = |e: sqlx::Error| RegistryError::Corrupt(format!("run row: {e}"));
            let id: i64 = row.try_get(0).map_err(get)?;
            let pid: i64 = row.try_get(1).map_err(get)?;
            if pid == i64::from(std::process::id()) || process_exists(pid) {
                continue;
            }
            let done = retry("marking a run interrupted", || async {
                sqlx::query(
                    "UPDATE runs SET status = 'interrupted', finished_at = $1 \
                     WHERE id = $2 AND status = 'running'",
                )
                .bind(now_rfc3339())
                .bind(id)
                .execute(&mut *self.conn().await?)
                .await
                .map_err(db("marking a run interrupted"))
                .map(Some)
            })
            .await?;
            if done.rows_affected() > 0 {
                marked.push(id);
            }
        }
        Ok(marked)
    }

    /// A run by id.
    pub async fn run(&self, id: RunId) -> Result<Option<Run>> {
        let row = sqlx::query(&format!("{} WHERE id = $1", self.run_select()))
            .bind(id)
            .fetch_optional(&mut *self.conn().await?)
            .await
            .map_err(db("reading a run"))?;
        row.map(|row| run_from_row(&row)).transpose()
    }

    /// The `limit` most recent runs, newest first.
    pub async fn recent_runs(&self, limit: u32) -> Result<Vec<Run>> {
        let rows = sqlx::query(&format!("{} ORDER BY id DESC LIMIT $1", self.run_select()))
            .bind(i64::from(limit))
            .fetch_all(&mut *self.conn().await?)
            .await
            .map_err(db("reading the recent runs"))?;
        rows.iter().map(run_from_row).collect()
    }

    /// The `SELECT` of a run row: the origin columns when the schema has them, else nulls (a
    /// registry read at an older schema, [`Registry::open_read`]).
    fn run_select(&self) -> &'static str {
        if self.schema >= super::schema::STEP_STARTS {
            "SELECT id, project, command, started_at, finished_at, status, report, \
             git_commit, user_name, error, current_step, current_attempt, current_since FROM runs"
        } else if self.schema >= super::schema::RUN_ORIGIN {
            "SELECT id, project, command, started_at, finished_at, status, report, \
             git_commit, user_name, error, NULL, NULL, NULL FROM runs"
        } else {
            "SELECT id, project, command, started_at, finished_at, status, report, \
             NULL, NULL, NULL, NULL, NULL, NULL FROM runs"
        }
    }

    /// Keeps the error a failed run ended with, as the CLI printed it.
    pub async fn record_error(&self, run: RunId, error: &str) -> Result<()> {
        retry("recording a run's error", || async {
            sqlx::query("UPDATE runs SET error = $1 WHERE id = $2")
                .bind(error)
                .bind(run)
                .execute(&mut *self.conn().await?)
                .await
                .map_err(db("recording a run's error"))?;
            Ok(Some(()))
        })
        .await
    }

    /// A page of runs, newest first: `limit` runs after skipping the `offset` newest.
    pub async fn runs_page(&self, offset: u32, limit: u32) -> Result<Vec<Run>> {
        let rows = sqlx::query(&format!(
            "{} ORDER BY id DESC LIMIT $1 OFFSET $2",
            self.run_select()
        ))
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db("reading a page of runs"))?;
        rows.iter().map(run_from_row).collect()
    }

    /// A page of runs with their step counts, newest first.
    pub async fn run_summaries(&self, offset: u32, limit: u32) -> Result<Vec<RunSummary>> {
        let mut out = Vec::new();
        for run in self.runs_page(offset, limit).await? {
            let steps = self.steps(run.id).await?;
            let counts = StepStatus::ALL
                .iter()
                .map(|s| {
                    let n = steps.iter().filter(|r| r.status == *s).count();
                    (s.as_str().to_string(), n)
                })
                .collect();
            out.push(RunSummary { run, steps: counts });
        }
        Ok(out)
    }

    /// How many runs this registry holds.
    pub async fn run_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM runs")
            .fetch_one(&mut *self.conn().await?)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db("counting the runs"))?;
        Ok(n.max(0) as u64)
    }

    /// The steps recorded for a run, in the order they were recorded.
    pub async fn steps(&self, run: RunId) -> Result<Vec<StepRecord>> {
        // `recorded_at` has millisecond precision; steps recorded within the same millisecond
        // come back in an unspecified order.
        let rows = sqlx::query(
            "SELECT step, attempt, status, step_key, duration_ms, reason, recorded_at \
             FROM step_runs WHERE run = $1 ORDER BY recorded_at",
        )
        .bind(run)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(db("reading a run's steps"))?;
        rows.iter()
            .map(|row| {
                let get = |e: sqlx::Error| RegistryError::Corrupt(format!("step row: {e}"));
                Ok(StepRecord {
                    step: row.try_get(0).map_err(get)?,
                    attempt: row.try_get::<i64, _>(1).map_err(get)? as u32,
                    status: parse_status(row.try_get(2).map_err(get)?)?,
                    key: row.try_get(3).map_err(get)?,
                    duration_ms: row.try_get::<i64, _>(4).map_err(get)? as u64,
                    reason: row.try_get(5).map_err(get)?,
                    at: row.try_get(6).map_err(get)?,
                })
            })
            .collect()
    }
}

/// This machine's host name, as recorded with each run (`unknown` if it cannot be read).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL either way.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match String::from_utf8_lossy(&buf[..end]).trim() {
        name if ok && !name.is_empty() => name.to_string(),
        _ => "unknown".to_string(),
    }
}

/// Whether a process with this pid exists on this host (a zombie counts as existing).
pub(crate) fn process_exists(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn run_from_row(row: &AnyRow) -> Result<Run> {
    let get = |e: sqlx::Error| RegistryError::Corrupt(format!("run row: {e}"));
    Ok(Run {
        id: row.try_get(0).map_err(get)?,
        project: row.try_get(1).map_err(get)?,
        command: row.try_get(2).map_err(get)?,
        started_at: row.try_get(3).map_err(get)?,
        finished_at: row.try_get(4).map_err(get)?,
        status: parse_status(row.try_get(5).map_err(get)?)?,
        report: row.try_get(6).map_err(get)?,
        git_commit: row.try_get(7).map_err(get)?,
        user: row.try_get(8).map_err(get)?,
        error: row.try_get(9).map_err(get)?,
        current: {
            let step: Option<String> = row.try_get(10).map_err(get)?;
            let attempt: Option<i64> = row.try_get(11).map_err(get)?;
            let since: Option<String> = row.try_get(12).map_err(get)?;
            match (step, attempt, since) {
                (Some(step), Some(attempt), Some(since)) => Some(StepStart {
                    step,
                    attempt: u32::try_from(attempt).unwrap_or(0),
                    since,
                }),
                _ => None,
            }
        },
    })
}

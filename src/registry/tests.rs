//! Registry tests. Each behaviour runs on SQLite (a temp file) and, when
//! `MLBUILD_TEST_POSTGRES_URL` is set, on a fresh Postgres database created for the test.

use std::collections::BTreeSet;

use serde_json::json;

use super::*;
use crate::status::{RunStatus, StepStatus};

struct TestDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    /// Postgres: the server URL and the database to drop afterwards.
    drop: Option<(String, String)>,
}

impl TestDb {
    async fn cleanup(self) {
        if let Some((base, name)) = self.drop {
            let pool = sqlx::AnyPool::connect(&base).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&pool)
                .await
                .unwrap();
        }
    }
}

fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    TestDb {
        url: sqlite_url(&dir.path().join("state.db")),
        _dir: Some(dir),
        drop: None,
    }
}

/// A fresh database on the server of `MLBUILD_TEST_POSTGRES_URL`, or `None` (with a note).
async fn postgres_db() -> Option<TestDb> {
    let Ok(base) = std::env::var("MLBUILD_TEST_POSTGRES_URL") else {
        eprintln!("note: MLBUILD_TEST_POSTGRES_URL is not set; skipping the Postgres variant");
        return None;
    };
    sqlx::any::install_default_drivers();
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "mlbuild_test_{}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let pool = sqlx::AnyPool::connect(&base)
        .await
        .expect("connect to Postgres");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create a test database");
    pool.close().await;
    let (without_query, query) = match base.split_once('?') {
        Some((url, query)) => (url, format!("?{query}")),
        None => (base.as_str(), String::new()),
    };
    let (scheme, rest) = without_query.split_once("://").unwrap();
    let authority = rest.split('/').next().unwrap();
    Some(TestDb {
        url: format!("{scheme}://{authority}/{name}{query}"),
        _dir: None,
        drop: Some((base.clone(), name)),
    })
}

/// Runs `async fn $name(url: &str)` once per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let db = super::sqlite_db();
                super::$name(&db.url).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(db) = super::postgres_db().await {
                    super::$name(&db.url).await;
                    db.cleanup().await;
                }
            }
        }
    )*};
}

on_both_backends!(
    a_persistent_conflict_is_reported_not_retried_as_busy,
    a_cached_run_is_written_whole_at_its_end,
    a_run_that_executes_is_written_before_its_first_step,
    migrations_are_idempotent,
    register_is_idempotent,
    ids_sort_by_creation,
    move_tag_and_history,
    rollback_walks_back,
    rollback_to,
    runs_and_steps,
    run_origin_and_error,
    a_step_start_is_recorded_before_its_end,
    concurrent_moves_lose_nothing,
    concurrent_moves_and_rollbacks_keep_the_chain,
    concurrent_registration_creates_one_version,
    concurrent_runs_get_distinct_ids,
    dead_runs_of_this_host_are_marked_interrupted,
    the_interrupted_run_check_uses_the_running_index,
    reads_create_and_write_nothing,
    repairs_are_a_versions_history,
    experiments_keep_their_points,
);

fn hex(n: u64) -> String {
    format!("{:064x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn new_version(n: u64) -> NewVersion {
    NewVersion {
        model: hex(n + 1_000_000),
        canonical: hex(n),
        algo: "GBM".into(),
        metrics: json!({"auc": 0.8 + n as f64 / 1000.0, "logloss": 0.4}),
        card: hex(n + 2_000_000),
        provenance: json!({"git": {"commit": "abc", "dirty": false}}),
        run: None,
    }
}

async fn versions(registry: &Registry, count: u64) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        ids.push(registry.register(new_version(n)).await.unwrap().0.id);
    }
    ids
}

/// Every event's `from` is the previous event's `to`, and the last `to` is the tag's version.
async fn assert_chain(registry: &Registry, tag: &str) -> Vec<TagEvent> {
    let history = registry.history(tag).await.unwrap();
    assert_eq!(history[0].from, None);
    for pair in history.windows(2) {
        assert_eq!(
            pair[1].from.as_deref(),
            Some(pair[0].to.as_str()),
            "{history:#?}"
        );
        assert_ne!(pair[1].from.as_deref(), Some(pair[1].to.as_str()));
    }
    let tags = registry.tags().await.unwrap();
    assert_eq!(tags[tag], history.last().unwrap().to);
    history
}

async fn migrations_are_idempotent(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    assert_eq!(
        schema::read_version(&mut registry.conn().await.unwrap())
            .await
            .unwrap(),
        schema::current()
    );
    let (version, _) = registry.register(new_version(1)).await.unwrap();
    registry
        .move_tag("staging", &version.id, "ann", "test")
        .await
        .unwrap();
    registry.close().await;

    // Reopening (twice at once, too) applies nothing and keeps the data.
    let (a, b) = tokio::join!(Registry::open(url), Registry::open(url));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        schema::read_version(&mut a.conn().await.unwrap())
            .await
            .unwrap(),
        schema::current()
    );
    assert_eq!(a.versions().await.unwrap(), vec![version.clone()]);
    assert_eq!(b.tags().await.unwrap()["staging"], version.id);
}

async fn register_is_idempotent(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    let mut new = new_version(7);
    new.run = Some(registry.begin_run("demo", "run", None).await.unwrap());
    let (first, created) = registry.register(new.clone()).await.unwrap();
    assert!(created);
    assert_eq!(first.canonical, new.canonical);
    assert_eq!(first.metrics, new.metrics);
    assert_eq!(first.provenance, new.provenance);
    assert_eq!(first.run, new.run);

    // Same canonical digest, other MOJO bytes (H2O never exports identical zips): same version.
    let mut again = new.clone();
    again.model = hex(99);
    again.metrics = json!({"auc": 0.1});
    let (second, created) = registry.register(again).await.unwrap();
    assert!(!created);
    assert_eq!(second, first);

    assert_eq!(
        registry.find_by_canonical(&new.canonical).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(registry.get(&first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(registry.get("v19700101.000000-000000").await.unwrap(), None);
    assert_eq!(registry.find_by_canonical(&hex(8)).await.unwrap(), None);
    assert_eq!(registry.versions().await.unwrap().len(), 1);

    let mut bad = new_version(9);
    bad.canonical = "not hex".into();
    assert!(matches!(
        registry.register(bad).await,
        Err(RegistryError::InvalidValue { .. })
    ));
}

async fn ids_sort_by_creation(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    // Registered within the same second: ids still sort by creation.
    let ids = versions(&registry, 5).await;
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 5);
    let listed: Vec<String> = registry
        .versions()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.id)
        .collect();
    assert_eq!(listed, ids);
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(id.len(), "v20250314.093012-3fa9c1".len());
        assert!(id.starts_with('v'));
        assert!(id.ends_with(&hex(n as u64)[..6]), "{id}");
    }
}

async fn move_tag_and_history(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    let v = versions(&registry, 2).await;

    // A tag names `models/<TAG>.zip`: nothing that could leave that directory is accepted.
    for bad in ["../prod", "a/b", "", ".hidden", "-x", "tag with space"] {
        assert!(
            matches!(
                registry.move_tag(bad, &v[0], "ann", "promote").await,
                Err(RegistryError::InvalidTag(_))
            ),
            "{bad:?}"
        );
    }

    let first = registry
        .move_tag("staging", &v[0], "ann", "conclude")
        .await
        .unwrap();
    assert_eq!(
        first,
        TagMove {
            tag: "staging".into(),
            from: None,
            to: v[0].clone()
        }
    );
    assert!(first.changed());
    let second = registry
        .move_tag("staging", &v[1], "bob", "promote")
        .await
        .unwrap();
    assert_eq!(second.from.as_deref(), Some(v[0].as_str()));

    // No-op: nothing recorded.
    let same = registry
        .move_tag("staging", &v[1], "bob", "promote")
        .await
        .unwrap();
    assert!(!same.changed());
    assert_eq!(registry.history("staging").await.unwrap().len(), 2);

    // Unknown version: error with a hint, tag unchanged.
    let err = registry
        .move_tag("staging", "v1-nope", "bob", "promote")
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::UnknownVersion(_)), "{err}");
    assert!(err.hint().unwrap().contains("mlbuild versions"));
    let err = registry
        .move_tag("fresh", "v1-nope", "bob", "promote")
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::UnknownVersion(_)));

    registry
        .move_tag("production", &v[0], "ann", "promote")
        .await
        .unwrap();
    let tags = registry.tags().await.unwrap();
    assert_eq!(tags.len(), 2);
    assert_eq!(tags["staging"], v[1]);
    assert_eq!(tags["production"], v[0]);

    let history = assert_chain(&registry, "staging").await;
    assert_eq!(
        history
            .iter()
            .map(|e| (e.by.as_str(), e.reason.as_str()))
            .collect::<Vec<_>>(),
        [("ann", "conclude"), ("bob", "promote")]
    );
    assert!(chrono::DateTime::parse_from_rfc3339(&history[0].at).is_ok());
    assert!(history[0].at.ends_with('Z'));
    let json = serde_json::to_value(&history[1]).unwrap();
    assert_eq!(
        json,
        json!({"tag": "staging", "from": v[0], "to": v[1], "at": history[1].at, "by": "bob", "reason": "promote"})
    );

    let err = registry.history("nope").await.unwrap_err();
    assert!(matches!(err, RegistryError::UnknownTag(_)));
    assert!(err.hint().unwrap().contains("mlbuild tags"));
}

async fn rollback_walks_back(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    let v = versions(&registry, 4).await;
    for id in &v[..3] {
        registry
            .move_tag("prod", id, "ann", "promote")
            .await
            .unwrap();
    }
    // A → B → C; rollbacks go C → B → A, never back to C.
    let back = registry.rollback("prod", None, "bob").await.unwrap();
    assert_eq!(
        (back.from.as_deref(), back.to.as_str()),
        (Some(v[2].as_str()), v[1].as_str())
    );
    let back = registry.rollback("prod", None, "bob").await.unwrap();
    assert_eq!(
        (back.from.as_deref(), back.to.as_str()),
        (Some(v[1].as_str()), v[0].as_str())
    );
    let err = registry.rollback("prod", None, "bob").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::NothingToRollBack { .. }),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("mlbuild history prod"));

    // A new move after rollbacks is undone first; then there is again nothing left.
    registry
        .move_tag("prod", &v[3], "ann", "promote")
        .await
        .unwrap();
    let back = registry.rollback("prod", None, "bob").await.unwrap();
    assert_eq!(back.to, v[0]);
    assert!(registry.rollback("prod", None, "bob").await.is_err());

    let history = assert_chain(&registry, "prod").await;
    let reasons: Vec<&str> = history.iter().map(|e| e.reason.as_str()).collect();
    let rollback_to = |i: usize| format!("rollback to {}", v[i]);
    assert_eq!(
        reasons,
        [
            "promote",
            "promote",
            "promote",
            rollback_to(1).as_str(),
            rollback_to(0).as_str(),
            "promote",
            rollback_to(0).as_str()
        ]
    );
    assert_eq!(history[3].by, "bob");

    // A tag's first assignment cannot be rolled back; unknown tags are an error.
    registry
        .move_tag("fresh", &v[0], "ann", "promote")
        .await
        .unwrap();
    assert!(matches!(
        registry.rollback("fresh", None, "bob").await,
        Err(RegistryError::NothingToRollBack { .. })
    ));
    assert!(matches!(
        registry.rollback("nope", None, "bob").await,
        Err(RegistryError::UnknownTag(_))
    ));
}

async fn rollback_to(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    let v = versions(&registry, 5).await;
    for id in &v[..4] {
        registry
            .move_tag("prod", id, "ann", "promote")
            .await
            .unwrap();
    }
    // A B C D: --to B pops D and C.
    let moved = registry.rollback("prod", Some(&v[1]), "bob").await.unwrap();
    assert_eq!(
        (moved.from.as_deref(), moved.to.as_str()),
        (Some(v[3].as_str()), v[1].as_str())
    );
    // The next plain rollback continues below: to A.
    assert_eq!(
        registry.rollback("prod", None, "bob").await.unwrap().to,
        v[0]
    );
    // --to D: held before but not on the stack any more, so a new, undoable move.
    let moved = registry.rollback("prod", Some(&v[3]), "bob").await.unwrap();
    assert_eq!(moved.to, v[3]);
    assert_eq!(
        registry.rollback("prod", None, "bob").await.unwrap().to,
        v[0]
    );
    // --to the current version: no-op.
    let before = registry.history("prod").await.unwrap().len();
    assert!(!registry
        .rollback("prod", Some(&v[0]), "bob")
        .await
        .unwrap()
        .changed());
    assert_eq!(registry.history("prod").await.unwrap().len(), before);

    let err = registry
        .rollback("prod", Some(&v[4]), "bob")
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NeverHeld { .. }), "{err}");
    assert!(err.hint().unwrap().contains("mlbuild history prod"));
    let err = registry
        .rollback("prod", Some("v1-nope"), "bob")
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::UnknownVersion(_)), "{err}");

    let history = assert_chain(&registry, "prod").await;
    assert_eq!(history[4].reason, format!("rollback to {}", v[1]));
}

/// A run records who started it at which commit, and the error it ended with (migration 4).
async fn run_origin_and_error(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    let started = registry
        .begin_run("prostate", "run", Some(&"c".repeat(40)))
        .await
        .unwrap();
    let plain = registry.begin_run("prostate", "run", None).await.unwrap();
    registry
        .record_error(started, "error: step `execute` failed\nhint: fix it")
        .await
        .unwrap();
    let origin = registry.run(started).await.unwrap().unwrap();
    assert_eq!(origin.git_commit, Some("c".repeat(40)));
    assert_eq!(origin.user, Some(current_user()));
    assert_eq!(
        origin.error.as_deref(),
        Some("error: step `execute` failed\nhint: fix it")
    );
    let plain = registry.run(plain).await.unwrap().unwrap();
    assert_eq!((plain.git_commit, plain.error), (None, None));
}

/// A step that starts is the run's step under way until its record is written (migration 5),
/// and nothing is under way once the run ended.
async fn a_step_start_is_recorded_before_its_end(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    let run = registry.begin_run("prostate", "run", None).await.unwrap();
    let read = || async {
        let r = registry.run(run).await.unwrap().unwrap();
        let steps = registry.steps(run).await.unwrap();
        r.under_way(&steps).map(|s| (s.step.clone(), s.attempt))
    };
    assert_eq!(read().await, None);
    registry.start_step(run, "execute", 2).await.unwrap();
    assert_eq!(read().await, Some(("execute".into(), 2)));
    let since = registry
        .run(run)
        .await
        .unwrap()
        .unwrap()
        .current
        .unwrap()
        .since;
    assert!(since.ends_with('Z'), "{since}");
    registry
        .record_step(
            run,
            &StepRecord::now("execute", 2, StepStatus::Ran, "k", 5, "forced"),
        )
        .await
        .unwrap();
    assert_eq!(read().await, None, "its record closes it");
    registry.start_step(run, "monitor", 2).await.unwrap();
    assert_eq!(read().await, Some(("monitor".into(), 2)));
    registry
        .finish_run(run, RunStatus::Interrupted, None)
        .await
        .unwrap();
    assert_eq!(read().await, None, "an ended run has nothing under way");
}

/// A run-id counter set back behind its table makes every new run's id conflict: that is
/// reported as the conflict it is, after a few tries, not as "the database stayed busy" after
/// sixty.
async fn a_persistent_conflict_is_reported_not_retried_as_busy(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    registry.begin_run("prostate", "run", None).await.unwrap();
    registry.begin_run("prostate", "run", None).await.unwrap();
    sqlx::query("UPDATE counters SET value = 0 WHERE name = 'run'")
        .execute(&mut *registry.conn().await.unwrap())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = registry
        .begin_run("prostate", "run", None)
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

fn cached(step: &str) -> StepRecord {
    StepRecord::now(step, 1, StepStatus::Cached, "k", 0, "key unchanged")
}

/// A run that executes nothing: no row until it ends, then the run and its steps, as they
/// happened.
async fn a_cached_run_is_written_whole_at_its_end(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    let opened = Opening::ready(registry.clone());
    let printer = crate::report::Printer::new(true, true, 0, crate::report::ColorChoice::Never);
    let run = RunRecorder::new(&opened, &printer, "prostate", "run", Some("abc".into()));
    for step in ["define", "locate", "prepare"] {
        run.step(cached(step)).await.unwrap();
    }
    assert_eq!(run.known_id(), None);
    assert!(
        registry.recent_runs(10).await.unwrap().is_empty(),
        "nothing is written before the end"
    );
    run.finish(RunStatus::Ok, None).await.unwrap();
    let id = run.known_id().expect("an id once written");
    let recorded = registry.run(id).await.unwrap().unwrap();
    assert_eq!(recorded.status, RunStatus::Ok);
    assert_eq!(recorded.command, "run");
    assert_eq!(recorded.git_commit.as_deref(), Some("abc"));
    assert!(recorded.started_at <= *recorded.finished_at.as_ref().unwrap());
    let steps = registry.steps(id).await.unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(names, ["define", "locate", "prepare"]);
    assert!(steps.iter().all(|s| s.status == StepStatus::Cached));
    assert!(steps.iter().all(|s| s.at >= recorded.started_at));
    // A failed run's error is kept with it.
    run.record_error("error: boom").await.unwrap();
    assert_eq!(
        registry.run(id).await.unwrap().unwrap().error.as_deref(),
        Some("error: boom")
    );
}

/// A run that executes a step: its row (with the steps before it) is written before that step
/// starts, so a reader sees it `running` with the step under way; later rows follow one by one.
async fn a_run_that_executes_is_written_before_its_first_step(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    // A dead run of the project, left `running`, is found when this run's row is written.
    let dead = registry.begin_run("prostate", "run", None).await.unwrap();
    sqlx::query("UPDATE runs SET pid = 999999999 WHERE id = $1")
        .bind(dead)
        .execute(&mut *registry.conn().await.unwrap())
        .await
        .unwrap();
    let opened = Opening::ready(registry.clone());
    let printer = crate::report::Printer::new(true, true, 0, crate::report::ColorChoice::Never);
    let run = RunRecorder::new(&opened, &printer, "prostate", "run", None);
    run.step(cached("define")).await.unwrap();
    assert_eq!(
        registry.run(dead).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    run.start_step("locate", 1).await.unwrap();
    let id = run.known_id().expect("written before the step");
    assert!(id > dead);
    assert_eq!(
        registry.run(dead).await.unwrap().unwrap().status,
        RunStatus::Interrupted
    );
    let recorded = registry.run(id).await.unwrap().unwrap();
    assert_eq!(recorded.status, RunStatus::Running);
    let steps = registry.steps(id).await.unwrap();
    assert_eq!(steps.len(), 1, "the steps before it come with it");
    assert_eq!(
        recorded.under_way(&steps).map(|s| s.step.as_str()),
        Some("locate")
    );
    run.step(StepRecord::now(
        "locate",
        1,
        StepStatus::Ran,
        "k2",
        7,
        "never run",
    ))
    .await
    .unwrap();
    assert_eq!(
        registry.steps(id).await.unwrap().len(),
        2,
        "written at once"
    );
    assert_eq!(run.id().await.unwrap(), id, "one row");
    run.finish(RunStatus::Failed, Some("boom")).await.unwrap();
    let recorded = registry.run(id).await.unwrap().unwrap();
    assert_eq!(recorded.status, RunStatus::Failed);
    assert_eq!(recorded.report.as_deref(), Some("boom"));
    assert_eq!(registry.recent_runs(10).await.unwrap().len(), 2);
}

async fn runs_and_steps(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    let run = registry
        .begin_run("prostate", "run --json", None)
        .await
        .unwrap();
    let other = registry.begin_run("prostate", "run", None).await.unwrap();
    assert!(other > run);
    assert_eq!(
        registry.run(run).await.unwrap().unwrap().status,
        RunStatus::Running
    );

    registry
        .record_step(
            run,
            &StepRecord::now("define", 1, StepStatus::Cached, &hex(1), 3, "key unchanged"),
        )
        .await
        .unwrap();
    registry
        .record_step(
            run,
            &StepRecord::now(
                "execute",
                2,
                StepStatus::Ran,
                &hex(2),
                12_345,
                "threshold missed",
            ),
        )
        .await
        .unwrap();
    registry
        .finish_run(run, RunStatus::Escalated, Some("# report\nauc 0.6 < 0.7"))
        .await
        .unwrap();

    let recorded = registry.run(run).await.unwrap().unwrap();
    assert_eq!(recorded.status, RunStatus::Escalated);
    assert_eq!(recorded.project, "prostate");
    assert_eq!(recorded.report.as_deref(), Some("# report\nauc 0.6 < 0.7"));
    assert!(recorded.finished_at.is_some());
    let steps = registry.steps(run).await.unwrap();
    assert_eq!(steps.len(), 2);
    let execute = steps.iter().find(|s| s.step == "execute").unwrap();
    assert_eq!(
        (execute.attempt, execute.duration_ms, execute.status),
        (2, 12_345, StepStatus::Ran)
    );
    assert!(registry.steps(other).await.unwrap().is_empty());
    let recent: Vec<RunId> = registry
        .recent_runs(5)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(recent, vec![other, run], "newest first");
    assert_eq!(registry.recent_runs(1).await.unwrap()[0].id, other);
    assert!(registry.recent_runs(0).await.unwrap().is_empty());

    assert!(matches!(
        registry.finish_run(9_999, RunStatus::Ok, None).await,
        Err(RegistryError::UnknownRun(9_999))
    ));
    assert_eq!(registry.run(9_999).await.unwrap(), None);

    // A status this version does not know (a newer mlbuild wrote it) is named, not guessed.
    sqlx::query("UPDATE runs SET status = 'paused' WHERE id = $1")
        .bind(other)
        .execute(&mut *registry.conn().await.unwrap())
        .await
        .unwrap();
    let err = registry.run(other).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid RunStatus `paused` (expected one of: running, ok, escalated, failed, gate_failed, interrupted)"
    );
}

const TASKS: u64 = 8;
const MOVES: u64 = 10;

async fn concurrent_moves_lose_nothing(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    // One version per move, so that every move changes the tag.
    let ids = versions(&registry, TASKS * MOVES).await;
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let url = url.to_string();
            let ids = ids.clone();
            tokio::spawn(async move {
                let registry = Registry::open(&url).await.unwrap();
                for m in 0..MOVES {
                    let id = &ids[(task * MOVES + m) as usize];
                    registry
                        .move_tag("staging", id, &format!("task{task}"), "promote")
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    eprintln!(
        "{} concurrent tag moves ({TASKS} tasks, each with its own pool) on {}: {:?}",
        TASKS * MOVES,
        url.split(':').next().unwrap(),
        started.elapsed()
    );
    let history = assert_chain(&registry, "staging").await;
    assert_eq!(history.len() as u64, TASKS * MOVES);
    let targets: BTreeSet<&str> = history.iter().map(|e| e.to.as_str()).collect();
    assert_eq!(targets, ids.iter().map(String::as_str).collect());
}

async fn concurrent_moves_and_rollbacks_keep_the_chain(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    let ids = versions(&registry, 6).await;
    registry
        .move_tag("prod", &ids[0], "setup", "promote")
        .await
        .unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let url = url.to_string();
            let ids = ids.clone();
            tokio::spawn(async move {
                let registry = Registry::open(&url).await.unwrap();
                let mut changes = 0;
                for m in 0..MOVES {
                    let result = if (task + m) % 3 == 0 {
                        registry.rollback("prod", None, "r").await
                    } else {
                        registry
                            .move_tag("prod", &ids[((task + m) % 6) as usize], "m", "promote")
                            .await
                    };
                    match result {
                        Ok(moved) => changes += u32::from(moved.changed()),
                        Err(RegistryError::NothingToRollBack { .. }) => {}
                        Err(e) => panic!("{e}: {:?}", e.hint()),
                    }
                }
                changes
            })
        })
        .collect();
    let mut changes = 0;
    for task in tasks {
        changes += task.await.unwrap();
    }
    let history = assert_chain(&registry, "prod").await;
    assert_eq!(history.len() as u32, changes + 1);
}

async fn concurrent_registration_creates_one_version(url: &str) {
    Registry::open(url).await.unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let url = url.to_string();
            tokio::spawn(async move {
                let registry = Registry::open(&url).await.unwrap();
                registry.register(new_version(42)).await.unwrap()
            })
        })
        .collect();
    let mut created = 0;
    let mut ids = BTreeSet::new();
    for task in tasks {
        let (version, new) = task.await.unwrap();
        created += u32::from(new);
        ids.insert(version.id);
    }
    assert_eq!((created, ids.len()), (1, 1));
}

async fn concurrent_runs_get_distinct_ids(url: &str) {
    Registry::open(url).await.unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let url = url.to_string();
            tokio::spawn(async move {
                let registry = Registry::open(&url).await.unwrap();
                let mut ids = Vec::new();
                for _ in 0..5 {
                    ids.push(registry.begin_run("demo", "run", None).await.unwrap());
                }
                ids
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    assert_eq!(all.len() as u64, TASKS * 5);
}

/// `open_read` (status, versions, tags, predict, …): a database that does not exist reads as
/// empty and is not created; an existing one is read, never written.
async fn reads_create_and_write_nothing(url: &str) {
    let empty = Registry::open_read(url).await.unwrap();
    assert!(empty.versions().await.unwrap().is_empty());
    assert!(empty.tags().await.unwrap().is_empty());
    assert!(empty.version_events("v1").await.unwrap().is_empty());
    empty.close().await;
    if url.starts_with("sqlite:") {
        use std::str::FromStr;
        let file = sqlx::sqlite::SqliteConnectOptions::from_str(url).unwrap();
        assert!(!file.get_filename().exists(), "a read created the file");
    } else {
        let pool = sqlx::AnyPool::connect(url).await.unwrap();
        let tables = sqlx::query(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'schema_version'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(sqlx::Row::get::<i64, _>(&tables, 0), 0, "a read migrated");
        pool.close().await;
    }
    let writer = Registry::open(url).await.unwrap();
    let (v, _) = writer.register(new_version(1)).await.unwrap();
    writer
        .move_tag("staging", &v.id, "ann", "test")
        .await
        .unwrap();
    let reader = Registry::open_read(url).await.unwrap();
    assert_eq!(reader.tags().await.unwrap()["staging"], v.id);
    assert!(
        reader.register(new_version(2)).await.is_err(),
        "a read-only registry refuses writes"
    );
    assert_eq!(writer.versions().await.unwrap().len(), 1);
}

/// A version's bytes restored or replaced: the pointer moves (compare-and-set on the old
/// digest), the identity does not, and each repair is an event.
async fn repairs_are_a_versions_history(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    let mut new = new_version(7);
    new.provenance = json!({"plots": {"roc": hex(1), "shap": hex(2)}});
    let (v, _) = registry.register(new).await.unwrap();
    let rebuilt = hex(99);
    assert!(registry
        .repair_blob(&v.id, &Blob::Mojo, &v.model, &rebuilt, "ann", "rebuilt")
        .await
        .unwrap());
    // A second repair from the old digest lost the race: nothing changes.
    assert!(!registry
        .repair_blob(&v.id, &Blob::Mojo, &v.model, &hex(98), "bob", "late")
        .await
        .unwrap());
    assert!(registry
        .repair_blob(
            &v.id,
            &Blob::Plot("roc".into()),
            &hex(1),
            &hex(3),
            "ann",
            "plot"
        )
        .await
        .unwrap());
    assert!(registry
        .repair_blob(
            &v.id,
            &Blob::Card,
            &v.card,
            &v.card,
            "ann",
            "from the remote"
        )
        .await
        .unwrap());
    let after = registry.get(&v.id).await.unwrap().unwrap();
    assert_eq!(after.model, rebuilt);
    assert_eq!(after.canonical, v.canonical);
    assert_eq!(after.card, v.card);
    assert_eq!(
        after.provenance["plots"],
        json!({"roc": hex(3), "shap": hex(2)})
    );
    let events = registry.version_events(&v.id).await.unwrap();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.blob.as_str(), e.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("mojo", "replaced"),
            ("plot:roc", "replaced"),
            ("card", "restored")
        ]
    );
    assert_eq!(
        (events[0].from.as_str(), events[0].to.as_str()),
        (v.model.as_str(), rebuilt.as_str())
    );
    assert_eq!(events[0].by, "ann");
    assert!(registry.version_events("nope").await.unwrap().is_empty());
}

#[test]
fn ids_never_go_back_in_time() {
    let at = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
    let canonical = "3fa9c1e2ffff";
    assert_eq!(
        next_id_for(None, at("2025-03-14 09:30:12"), canonical),
        "v20250314.093012-3fa9c1"
    );
    // Same second as the newest: bumped by one second.
    assert_eq!(
        next_id_for(
            Some("v20250314.093012-aaaaaa"),
            at("2025-03-14 09:30:12"),
            canonical
        ),
        "v20250314.093013-3fa9c1"
    );
    // A clock behind the newest id (another machine): still after it.
    assert_eq!(
        next_id_for(
            Some("v20250314.235959-aaaaaa"),
            at("2025-03-14 09:30:12"),
            canonical
        ),
        "v20250315.000000-3fa9c1"
    );
    // An unparseable newest id is ignored.
    assert_eq!(
        next_id_for(Some("garbage"), at("2025-03-14 09:30:12"), canonical),
        "v20250314.093012-3fa9c1"
    );
}

fn next_id_for(newest: Option<&str>, now: chrono::NaiveDateTime, canonical: &str) -> String {
    versions::next_id(newest, now, canonical)
}

#[test]
fn sqlite_urls_escape_what_sqlx_decodes() {
    assert_eq!(
        sqlite_url(std::path::Path::new("/tmp/state.db")),
        "sqlite:///tmp/state.db?mode=rwc"
    );
    assert_eq!(
        sqlite_url(std::path::Path::new("/tmp/a?b#c%d.db")),
        "sqlite:///tmp/a%3Fb%23c%25d.db?mode=rwc"
    );
}

#[tokio::test]
async fn odd_paths_and_urls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("we?ird #%20.db");
    let registry = Registry::open(&sqlite_url(&path)).await.unwrap();
    registry.register(new_version(1)).await.unwrap();
    assert!(path.exists());
    // A plain `sqlite://PATH` (no mode) also creates the file.
    let plain = dir.path().join("plain.db");
    Registry::open(&format!("sqlite://{}", plain.display()))
        .await
        .unwrap();
    assert!(plain.exists());
    // WAL is on, so readers do not block on a writer.
    let mode: String = sqlx::Row::get(
        &sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut *registry.conn().await.unwrap())
            .await
            .unwrap(),
        0,
    );
    assert_eq!(mode, "wal");

    let err = Registry::open("mysql://u:secret@h/db").await.unwrap_err();
    assert!(matches!(err, RegistryError::UnsupportedUrl { .. }));
    assert!(!err.to_string().contains("secret"), "{err}");
    assert!(err.hint().unwrap().contains("MLBUILD_STATE_URL"));
    let err = Registry::open(&sqlite_url(&dir.path().join("missing/dir/state.db")))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Open { .. }), "{err}");
    assert!(err.hint().is_some());
}

#[test]
fn urls_in_messages_hide_passwords() {
    assert_eq!(
        crate::redact::safe_url("postgres://ann:s3cret@db:5432/ml"),
        "postgres://ann:***@db:5432/ml"
    );
    assert_eq!(
        crate::redact::safe_url("postgres://ann@db/ml"),
        "postgres://ann@db/ml"
    );
    assert_eq!(
        crate::redact::safe_url("sqlite:///tmp/x.db?mode=rwc"),
        "sqlite:///tmp/x.db?mode=rwc"
    );
}

#[test]
fn tables_align_and_shorten_digests() {
    let version = |id: &str, algo: &str| Version {
        id: id.into(),
        created_at: "2025-03-14T09:30:12.345Z".into(),
        model: hex(1),
        canonical: hex(2),
        algo: algo.into(),
        metrics: json!({"logloss": 0.41, "auc": 0.8123, "note": "x"}),
        card: hex(3),
        provenance: json!({}),
        run: Some(3),
    };
    let out = render_versions(&[
        version("v20250314.093012-3fa9c1", "GBM"),
        version("v20250314.093013-aaaaaa", "StackedEnsemble"),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3);
    let column = |line: &str, word: &str| line.find(word).unwrap();
    assert_eq!(
        column(lines[0], "CANONICAL"),
        column(lines[1], &hex(2)[..12])
    );
    assert_eq!(
        column(lines[0], "CANONICAL"),
        column(lines[2], &hex(2)[..12])
    );
    assert!(!out.contains(&hex(2)[..13]));
    assert!(lines[1].ends_with("auc=0.8123 logloss=0.4100"), "{out}");
    assert!(lines[1].contains("2025-03-14 09:30:12Z"));

    let tags = [
        ("production".to_string(), "v1".to_string()),
        ("dev".into(), "v2".into()),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        render_tags(&tags),
        "TAG         VERSION\ndev         v2\nproduction  v1\n"
    );
    assert_eq!(render_tags(&Default::default()), "no tags yet\n");

    let event = TagEvent {
        tag: "prod".into(),
        from: None,
        to: "v1".into(),
        at: "2025-03-14T09:30:12.345Z".into(),
        by: "ann".into(),
        reason: "promote".into(),
    };
    assert_eq!(
        render_history(&[event]),
        "AT                    FROM  TO  BY   REASON\n2025-03-14 09:30:12Z  -     v1  ann  promote\n"
    );
}

#[test]
fn current_user_is_never_empty() {
    assert!(!current_user().is_empty());
}

/// The interrupted-run check, on every `run`, reads the running runs through their index, not
/// the whole history (on SQLite, as its query plan says; Postgres's planner may prefer a scan of
/// a small table, so only that the index exists there).
async fn the_interrupted_run_check_uses_the_running_index(url: &str) {
    use sqlx::Row;
    let registry = Registry::open(url).await.unwrap();
    let mut conn = registry.conn().await.unwrap();
    if url.starts_with("sqlite:") {
        let plan: Vec<String> =
            sqlx::query(&format!("EXPLAIN QUERY PLAN {}", Registry::RUNNING_HERE))
                .bind("p")
                .bind("h")
                .fetch_all(&mut *conn)
                .await
                .unwrap()
                .iter()
                .map(|row| row.try_get::<String, _>(3).unwrap())
                .collect();
        assert_eq!(plan, ["SEARCH runs USING INDEX runs_running (project=?)"]);
    } else {
        let n: i64 =
            sqlx::query("SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'runs_running'")
                .fetch_one(&mut *conn)
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
        assert_eq!(n, 1);
    }
}

/// A run whose process is gone on this host becomes `interrupted`; a live one, one of another
/// host (a shared Postgres registry), one of another project, and one without a recorded pid
/// stay `running`.
async fn dead_runs_of_this_host_are_marked_interrupted(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    let begin = || registry.begin_run("p", "run", None);
    let (dead, alive, elsewhere, unrecorded) = (
        begin().await.unwrap(),
        begin().await.unwrap(),
        begin().await.unwrap(),
        begin().await.unwrap(),
    );
    let other_project = registry.begin_run("q", "run", None).await.unwrap();
    // A pid that no process has: a child that has exited and been reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = i64::from(child.id());
    child.wait().unwrap();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let set = |id: RunId, host: Option<String>, pid: Option<i64>| {
        let registry = &registry;
        async move {
            sqlx::query("UPDATE runs SET host = $1, pid = $2 WHERE id = $3")
                .bind(host)
                .bind(pid)
                .bind(id)
                .execute(&mut *registry.conn().await.unwrap())
                .await
        }
    };
    let here = Some(runs::host_name());
    set(dead, here.clone(), Some(gone)).await.unwrap();
    set(alive, here.clone(), Some(i64::from(sleeper.id())))
        .await
        .unwrap();
    set(elsewhere, Some("another-host".into()), Some(gone))
        .await
        .unwrap();
    set(unrecorded, None, None).await.unwrap();
    set(other_project, here, Some(gone)).await.unwrap();

    assert_eq!(registry.mark_interrupted("p").await.unwrap(), vec![dead]);
    let registry = &registry;
    let status = |id| async move { registry.run(id).await.unwrap().unwrap() };
    let marked = status(dead).await;
    assert_eq!(marked.status, RunStatus::Interrupted);
    assert!(marked.finished_at.is_some());
    for id in [alive, elsewhere, unrecorded, other_project] {
        assert_eq!(status(id).await.status, RunStatus::Running, "run {id}");
    }
    assert!(registry.mark_interrupted("p").await.unwrap().is_empty());
    // Ctrl-C records it too (it used to be refused as an unknown status).
    registry
        .finish_run(alive, RunStatus::Interrupted, None)
        .await
        .unwrap();
    assert_eq!(status(alive).await.status, RunStatus::Interrupted);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// An experiment's points are recorded (and re-recorded) by number; the newest experiment of a
/// project is read back with them, another project's never (migration 6).
async fn experiments_keep_their_points(url: &str) {
    let registry = Registry::open(url).await.unwrap();
    assert_eq!(registry.latest_experiment("prostate").await.unwrap(), None);
    let grid = vec!["execute.max_models=2,4".to_string()];
    let first = registry.begin_experiment("prostate", &grid).await.unwrap();
    let other = registry.begin_experiment("iris", &grid).await.unwrap();
    let second = registry.begin_experiment("prostate", &grid).await.unwrap();
    assert!(first < other && other < second);
    let point = |n: u32, status: &str| crate::registry::Point {
        point: n,
        overrides: vec![format!("execute.max_models={}", 2 * n)],
        run: Some(i64::from(n)),
        version: (status == "ok").then(|| format!("v{n}")),
        status: status.to_string(),
    };
    registry
        .record_point(second, &point(2, "running"))
        .await
        .unwrap();
    registry
        .record_point(second, &point(1, "ok"))
        .await
        .unwrap();
    registry
        .record_point(second, &point(2, "failed"))
        .await
        .unwrap();
    let exp = registry
        .latest_experiment("prostate")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exp.id, second);
    assert_eq!(exp.grid, grid);
    assert_eq!(exp.points, vec![point(1, "ok"), point(2, "failed")]);
    let iris = registry.latest_experiment("iris").await.unwrap().unwrap();
    assert_eq!((iris.id, iris.points.len()), (other, 0));
}

/// A connection's settings are one statement string (one round trip): every PRAGMA in it
/// takes effect, for a writer (busy timeout, `synchronous = NORMAL`) and a reader (busy
/// timeout, `query_only`).
#[tokio::test]
async fn each_connection_has_all_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("state.db"));
    async fn pragma(registry: &Registry, name: &str) -> i64 {
        let row = sqlx::query(&format!("PRAGMA {name}"))
            .fetch_one(&mut *registry.conn().await.unwrap())
            .await
            .unwrap();
        sqlx::Row::get::<i64, _>(&row, 0)
    }
    let writer = Registry::open(&url).await.unwrap();
    let timeout = i64::try_from(super::SQLITE_BUSY_TIMEOUT_MS).unwrap();
    assert_eq!(pragma(&writer, "busy_timeout").await, timeout);
    // 1 = NORMAL (the default is 2, FULL).
    assert_eq!(pragma(&writer, "synchronous").await, 1);
    assert_eq!(pragma(&writer, "query_only").await, 0);
    writer.close().await;
    let reader = Registry::open_read(&url).await.unwrap();
    assert_eq!(pragma(&reader, "busy_timeout").await, timeout);
    assert_eq!(pragma(&reader, "query_only").await, 1);
}

/// SQLite's connection is held between statements, not given back to the pool after each (the
/// pool pings a returned connection: a round trip to SQLite's thread per statement), and it is
/// closed with the registry: no `-wal` or `-shm` is left.
#[tokio::test]
async fn the_sqlite_connection_is_held_until_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let registry = Registry::open(&sqlite_url(&path)).await.unwrap();
    registry.register(new_version(1)).await.unwrap();
    registry.tags().await.unwrap();
    assert_eq!(registry.pool.size(), 1);
    assert_eq!(
        registry.pool.num_idle(),
        0,
        "the connection went back to the pool"
    );
    assert!(registry.held.lock().await.is_some());
    registry.close().await;
    assert!(registry.held.lock().await.is_none());
    for leftover in ["state.db-wal", "state.db-shm"] {
        assert!(
            !dir.path().join(leftover).exists(),
            "{leftover} left behind"
        );
    }
}

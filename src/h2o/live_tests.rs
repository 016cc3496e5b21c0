//! Live tests against a real H2O node. Ignored by default; run with
//! `cargo test --lib h2o -- --ignored --nocapture`. The jar comes from `MLBUILD_H2O_JAR`, else
//! the tool cache (provisioned there if needed).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::*;

fn jar() -> PathBuf {
    let explicit = std::env::var_os("MLBUILD_H2O_JAR").map(PathBuf::from);
    locate_or_provision_jar(explicit.as_deref(), &default_tool_cache(), &|m| {
        eprintln!("{m}")
    })
    .unwrap()
}

fn prostate_columns() -> Vec<(String, ColumnKind)> {
    [
        "ID", "CAPSULE", "AGE", "RACE", "DPROS", "DCAPS", "PSA", "VOL", "GLEASON",
    ]
    .iter()
    .map(|n| {
        let kind = if *n == "CAPSULE" || *n == "RACE" {
            ColumnKind::Enum
        } else {
            ColumnKind::Numeric
        };
        (n.to_string(), kind)
    })
    .collect()
}

fn alive(pid: u32) -> bool {
    // A zombie still has /proc/<pid>; treat it as dead only when reaped.
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
#[allow(
    clippy::too_many_lines,
    reason = "a test that walks one pipeline against a live node, step by step"
)]
async fn live_pipeline() {
    let work = tempfile::tempdir().unwrap();
    let cfg = EngineConfig {
        url: None,
        jar: Some(jar()),
        version: PINNED_VERSION.into(),
        nodes: 1,
        threads: None,
        memory: "2g".into(),
        exchange_dir: None,
        work_dir: work.path().join("h2o"),
        tool_cache: default_tool_cache(),
    };
    let t = Instant::now();
    let engine = Engine::start(&cfg, &|m| eprintln!("{m}")).await.unwrap();
    eprintln!("engine start: {:.2} s", t.elapsed().as_secs_f64());
    let pid = engine.launched_pid().unwrap();
    assert!(alive(pid));
    let c = &engine.client;

    let info = c.cloud().await.unwrap();
    assert_eq!(info.version, PINNED_VERSION);
    assert!(info.cloud_name.starts_with("mlbuild-"));
    // Fingerprint mismatches are reported with declared vs found.
    let declared = |version: &str, nodes: u32| crate::h2o::Declared {
        version: version.into(),
        nodes,
        threads: None,
    };
    let e = c
        .check_fingerprint(&declared("3.46.0.12", 1))
        .await
        .unwrap_err();
    assert!(matches!(e, H2oError::VersionMismatch { .. }), "{e}");
    let e = c
        .check_fingerprint(&declared(PINNED_VERSION, 2))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("1 node(s), but 2 are declared"),
        "{e}"
    );

    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/prostate.csv");
    let cols = prostate_columns();
    let t = Instant::now();
    let train = c.load_csv(&csv, "pr train", &cols).await.unwrap();
    eprintln!("upload+parse: {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(train.rows, 380);
    assert_eq!(train.columns.len(), 9);
    assert_eq!(train.id, "pr train");
    let hold = c.load_csv(&csv, "pr_holdout", &cols).await.unwrap();
    assert_eq!(hold.rows, 380);

    // Declared columns that do not match the header are refused.
    let mut wrong = cols.clone();
    wrong.swap(0, 1);
    let e = c.load_csv(&csv, "pr_wrong", &wrong).await.unwrap_err();
    assert!(matches!(e, H2oError::ColumnMismatch { .. }), "{e}");

    let spec = AutoMlSpec {
        project_name: format!("mlbuild_live_{}", std::process::id()),
        training_frame: train.id.clone(),
        leaderboard_frame: Some(hold.id.clone()),
        response_column: "CAPSULE".into(),
        ignored_columns: vec!["ID".into()],
        seed: 1,
        max_models: 2,
        nfolds: 2,
        include_algos: vec![],
        exclude_algos: vec!["DeepLearning".into()],
        sort_metric: "AUC".into(),
    };
    let t = Instant::now();
    let last = std::sync::Mutex::new((0.0, String::new()));
    let run = c
        .automl(&spec, &|p, m| *last.lock().unwrap() = (p, m.to_string()))
        .await
        .unwrap();
    eprintln!(
        "automl: {:.2} s, last progress {:?}",
        t.elapsed().as_secs_f64(),
        last.lock().unwrap()
    );
    assert!(c.running_jobs().is_empty());
    assert_eq!(run.key, format!("{}@@CAPSULE", spec.project_name));
    let lb = &run.leaderboard;
    eprintln!("{}", serde_json::to_string_pretty(lb).unwrap());
    assert_eq!(lb.sort_metric, "auc");
    assert!(lb.rows.len() >= 2);
    for w in lb.rows.windows(2) {
        assert!(w[0].metrics["auc"] >= w[1].metrics["auc"]);
    }
    assert!(lb.rows[0].metrics.contains_key("training_time_ms"));
    assert!(lb.rows[0].metrics.contains_key("logloss"));
    let leader = lb.rows[0].model_id.clone();

    let summary = c.model_summary(&leader).await.unwrap();
    assert_eq!(summary["model_id"]["name"], leader.as_str());
    assert!(summary["algo"].is_string());
    assert!(summary["parameters"].is_array());

    let t = Instant::now();
    let mojo = c.download_mojo(&leader).await.unwrap();
    eprintln!(
        "mojo: {} B in {:.2} s",
        mojo.len(),
        t.elapsed().as_secs_f64()
    );
    let zip = zip::ZipArchive::new(std::io::Cursor::new(&mojo)).unwrap();
    assert!(zip.file_names().any(|n| n == "model.ini"));

    c.predict(&leader, &hold.id, "pr_pred").await.unwrap();
    let pred = c.download_frame_csv("pr_pred").await.unwrap();
    let text = String::from_utf8(pred).unwrap();
    eprintln!(
        "prediction csv head:\n{}",
        text.lines().take(3).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(text.lines().count(), 381);
    assert!(text.lines().next().unwrap().contains("p1"));

    // A frame lacking a feature column: H2O only warns; we fail.
    let no_psa: Vec<_> = cols.iter().filter(|(n, _)| n != "PSA").cloned().collect();
    let short_csv = work.path().join("no_psa.csv");
    let short: String = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            [&f[..6], &f[7..]].concat().join(",") + "\n"
        })
        .collect();
    std::fs::write(&short_csv, short).unwrap();
    c.load_csv(&short_csv, "pr_no_psa", &no_psa).await.unwrap();
    let e = c
        .predict(&leader, "pr_no_psa", "pr_pred2")
        .await
        .unwrap_err();
    assert!(matches!(e, H2oError::PredictionWarnings { .. }), "{e}");
    eprintln!("missing column: {e}");

    // Unknown model → H2OErrorV3 decoded.
    let e = c.predict("nomodel", &hold.id, "x").await.unwrap_err();
    eprintln!("unknown model: {e}");
    assert!(matches!(e, H2oError::Api { status: 404, .. }), "{e}");

    // Tearing down with nothing running cancels nothing.
    assert!(c.running_jobs().is_empty());

    c.delete_automl(&run.key).await.unwrap();
    c.delete_automl(&run.key).await.unwrap(); // idempotent
    for f in ["pr train", "pr_holdout", "pr_pred", "pr_no_psa"] {
        c.delete(f, false).await.unwrap();
    }
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
    let e = c.model_summary(&leader).await.unwrap_err();
    assert!(matches!(e, H2oError::Api { status: 404, .. }), "{e}");

    let log = engine.local_node().unwrap().log_path().to_path_buf();
    let t = Instant::now();
    engine.shutdown().await.unwrap();
    eprintln!("shutdown: {:.2} s", t.elapsed().as_secs_f64());
    assert!(!alive(pid), "the JVM {pid} is still there");
    assert!(log.exists(), "logs are kept");
    assert!(
        !log.with_file_name("ice_root").exists(),
        "ice_root is removed"
    );
}

/// Cancelling a running AutoML, and dropping the engine without shutdown (the Drop path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn live_cancel_and_drop() {
    let work = tempfile::tempdir().unwrap();
    let cfg = EngineConfig {
        url: None,
        jar: Some(jar()),
        version: PINNED_VERSION.into(),
        nodes: 1,
        threads: None,
        memory: "1g".into(),
        exchange_dir: None,
        work_dir: work.path().to_path_buf(),
        tool_cache: default_tool_cache(),
    };
    let engine = Engine::start(&cfg, &|_| {}).await.unwrap();
    let pid = engine.launched_pid().unwrap();
    let c = engine.client.clone();
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/prostate.csv");
    let fr = c.load_csv(&csv, "pr", &prostate_columns()).await.unwrap();
    let spec = AutoMlSpec {
        project_name: "cancel_me".into(),
        training_frame: fr.id,
        leaderboard_frame: None,
        response_column: "CAPSULE".into(),
        ignored_columns: vec!["ID".into()],
        seed: 1,
        max_models: 20,
        nfolds: 5,
        include_algos: vec![],
        exclude_algos: vec![],
        sort_metric: "AUC".into(),
    };
    let c2 = c.clone();
    let canceller = tokio::spawn(async move {
        while c2.running_jobs().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        for job in c2.running_jobs() {
            c2.cancel_job(&job).await.unwrap();
        }
    });
    let t = Instant::now();
    let e = c.automl(&spec, &|_, _| {}).await.unwrap_err();
    eprintln!("cancelled after {:.2} s: {e}", t.elapsed().as_secs_f64());
    assert!(matches!(e, H2oError::JobCancelled { .. }), "{e}");
    canceller.await.unwrap();

    // No shutdown: Drop must kill and reap the JVM synchronously.
    let t = Instant::now();
    drop(engine);
    eprintln!("drop: {:.2} s", t.elapsed().as_secs_f64());
    assert!(!alive(pid));
}

/// Provisioning into an empty tool cache with pip (network), then the fast marker path.
#[test]
#[ignore]
fn live_provision() {
    let cache = tempfile::tempdir().unwrap();
    let t = Instant::now();
    // Two concurrent provisioners: the lock makes the second wait and reuse the first's jar.
    let downloads = std::sync::atomic::AtomicUsize::new(0);
    let jar = std::thread::scope(|s| {
        let run = || {
            locate_or_provision_jar(None, cache.path(), &|m| {
                eprintln!("{m}");
                if m.starts_with("downloading") {
                    downloads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
            .unwrap()
        };
        let a = s.spawn(run);
        let b = s.spawn(run);
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert_eq!(a, b);
        a
    });
    assert_eq!(downloads.load(std::sync::atomic::Ordering::SeqCst), 1);
    eprintln!("provision: {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(jar, provision::cached_jar_path(cache.path()));
    assert!(jar.with_file_name("h2o.jar.verified").exists());
    let t = Instant::now();
    locate_or_provision_jar(None, cache.path(), &|_| {}).unwrap();
    let warm = t.elapsed();
    eprintln!("warm lookup: {:?}", warm);
    assert!(warm.as_millis() < 100);
    // Touching the jar invalidates the marker: one re-hash, then fast again.
    let f = std::fs::File::options().append(true).open(&jar).unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    let t = Instant::now();
    locate_or_provision_jar(None, cache.path(), &|_| {}).unwrap();
    eprintln!("re-hash after mtime change: {:?}", t.elapsed());
}

/// For the manual parent-death check: launches a node, prints its pid and sleeps. Kill this
/// test process with SIGKILL and watch the JVM disappear (docs/h2o.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn live_hold_node() {
    let work = std::env::temp_dir().join("mlbuild-hold-node");
    let spec = LaunchSpec {
        java: find_java().unwrap().path,
        jar: jar(),
        memory: "1g".into(),
        work_dir: work,
        nodes: 1,
        threads: None,
        class_data: ClassData::None,
        native_libs: None,
    };
    let node = LocalNode::launch(&spec).await.unwrap();
    eprintln!(
        "HOLD test pid {} jvm pid {} url {} log {}",
        std::process::id(),
        node.pid(),
        node.url(),
        node.log_path().display()
    );
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    node.shutdown().await.unwrap();
}

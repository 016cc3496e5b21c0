//! Nothing lost (issue 11, points 1–3): read-only commands write nothing, a version whose bytes
//! were damaged is repaired by the next run, and `models/TAG.zip` always holds the tag's version.

use std::path::Path;

use serde_json::Value;

use crate::support::*;

fn json(run: Run) -> Value {
    let run = run.ok();
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr))
}

fn blake3_of(path: &Path) -> String {
    blake3::hash(&std::fs::read(path).unwrap())
        .to_hex()
        .to_string()
}

fn blob(p: &Project, digest: &str) -> std::path::PathBuf {
    p.file(&format!("cache/v1/cas/{}/{digest}", &digest[..2]))
}

/// A trained project plus a second version (a fixture MOJO deployed to tag `other`), without
/// training again. Returns (project, staging's version, the other version).
pub(crate) fn two_versions() -> (Project, Value, Value) {
    let p = trained().clone_trained();
    std::fs::copy(
        repo_root().join("tests/fixtures/mojo/gbm_bin.zip"),
        p.file("gbm_bin.zip"),
    )
    .unwrap();
    p.mlbuild_offline(&["deploy", "--mojo", "gbm_bin.zip", "--tag", "other"])
        .ok();
    let versions = json(p.mlbuild_offline(&["versions", "--json"]));
    let tags = json(p.mlbuild_offline(&["tags", "--json"]));
    let find = |tag: &str| {
        versions
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == tags[tag])
            .unwrap()
            .clone()
    };
    let (staging, other) = (find("staging"), find("other"));
    assert_ne!(staging["id"], other["id"]);
    (p, staging, other)
}

/// A tag never moves to a version whose transform (what predict and serve replay) is missing
/// here: the MOJO alone was checked, and such a version could not be served. `cache verify`
/// names the missing transform (it checked the MOJO, card and plots only).
#[test]
fn a_tag_never_moves_to_a_version_whose_transform_is_missing() {
    let (p, staging, other) = two_versions();
    let (trained, deployed) = (
        staging["id"].as_str().unwrap(),
        other["id"].as_str().unwrap(),
    );
    let transform = staging["provenance"]["transform"]
        .as_str()
        .unwrap_or_else(|| panic!("a trained version records its transform: {staging}"))
        .to_string();
    let blob = p.file(&format!("cache/v1/cas/{}/{transform}", &transform[..2]));
    let bytes = std::fs::read(&blob).unwrap();
    std::fs::remove_file(&blob).unwrap();
    // `cache verify` names it for the tagged version.
    let verify = p.mlbuild_offline(&["cache", "verify"]);
    assert_eq!(verify.code, 1, "{}", verify.stderr);
    assert!(
        verify.stdout.contains(&format!(
            "version {trained} [staging]: its transform {} is missing",
            &transform[..12]
        )),
        "{}",
        verify.stdout
    );
    p.mlbuild_offline(&["promote", "staging", deployed]).ok();
    let tags = json(p.mlbuild_offline(&["tags", "--json"]));
    let run = p.mlbuild_offline(&["rollback", "staging"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "tag `staging` cannot point at version `{trained}`: it cannot be served from this store (its transform: "
        )),
        "{}",
        run.stderr
    );
    assert_eq!(json(p.mlbuild_offline(&["tags", "--json"])), tags);
    std::fs::write(&blob, bytes).unwrap();
    p.mlbuild_offline(&["rollback", "staging"]).ok();
    assert_eq!(
        json(p.mlbuild_offline(&["tags", "--json"]))["staging"],
        trained
    );
}

/// `cache gc` keeps what a tagged version's transform names (its Word2Vec vectors), not only
/// the digests of its provenance: a tag rolled back to an older text model, whose run and
/// `ml.lock` entries gc no longer keeps, lost its vectors and could not be served.
#[test]
fn gc_keeps_the_word2vec_vectors_of_a_tagged_version() {
    let p = text_project();
    let toml = p.read("ml.toml") + "\n[cache]\nkeep_runs = 0\n";
    p.write("ml.toml", &toml);
    p.mlbuild(&["run"]).ok();
    let first = json(p.mlbuild_offline(&["tags", "--json"]))["staging"].clone();
    p.edit("vec_size = 8", "vec_size = 6");
    p.mlbuild(&["run"]).ok();
    assert_ne!(
        json(p.mlbuild_offline(&["tags", "--json"]))["staging"],
        first
    );
    p.mlbuild_offline(&["rollback", "staging"]).ok();
    assert_eq!(
        json(p.mlbuild_offline(&["tags", "--json"]))["staging"],
        first
    );
    let before = p
        .mlbuild_offline(&["predict", "--model", "staging", "data/reviews.csv"])
        .ok()
        .stdout;
    p.mlbuild_offline(&["cache", "gc"]).ok();
    let after = p.mlbuild_offline(&["predict", "--model", "staging", "data/reviews.csv"]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert_eq!(after.stdout, before);
    p.mlbuild_offline(&["cache", "verify"]).ok();
}

// ---- 1. read-only commands never write -------------------------------------------------------

/// The CI layout of docs/ci.md: the store is cached, the registry is not. `status`, `explain`
/// and `run --dry-run` must not register the version, move `staging`, write `models/` or fire
/// the deploy hook; `run` then does all of that.
#[test]
fn planning_in_the_ci_layout_registers_nothing_and_fires_no_hook() {
    let p = trained().clone_trained();
    let text = p.read("ml.toml");
    // Hooks do not enter conclude's key: conclude stays cached.
    p.write(
        "ml.toml",
        &format!("{text}\n[conclude.deploy]\ncommand = \"echo fired >> hook.log\"\n"),
    );
    for f in ["cache/state.db", "cache/state.db-wal", "cache/state.db-shm"] {
        let _ = std::fs::remove_file(p.file(f));
    }
    std::fs::remove_dir_all(p.file("models")).unwrap();
    let lock = p.read("ml.lock");
    let runs: [&[&str]; 5] = [
        &["status"],
        &["status", "--json"],
        &["explain", "conclude"],
        &["explain", "conclude", "--json"],
        &["run", "--dry-run"],
    ];
    for args in runs {
        let run = p.mlbuild_offline(args).ok();
        assert!(
            !run.stderr.contains("Registered"),
            "{args:?} registered a version:\n{}",
            run.stderr
        );
        for f in ["cache/state.db", "models", "hook.log"] {
            assert!(!p.file(f).exists(), "{args:?} created `{f}`");
        }
        assert_eq!(p.read("ml.lock"), lock, "{args:?} rewrote ml.lock");
    }
    // What they say instead.
    let status = p.mlbuild_offline(&["status"]).ok().stdout;
    let line = status.lines().find(|l| l.contains("conclude")).unwrap();
    assert!(
        line.contains("fresh")
            && line.contains("not in this registry")
            && line.contains("`mlbuild run` registers it"),
        "{status}"
    );
    let doc = json(p.mlbuild_offline(&["status", "--json"]));
    let rows = doc.as_array().unwrap();
    assert_eq!(rows.len(), 8, "{doc}");
    for row in rows {
        assert_eq!(row["state"], "fresh", "{doc}");
        assert!(
            row["reason"].is_string() && row["step"].is_string(),
            "{doc}"
        );
    }
    let explained = json(p.mlbuild_offline(&["explain", "conclude", "--json"]));
    assert!(
        explained["message"]
            .as_str()
            .unwrap()
            .contains("not in this registry"),
        "{explained}"
    );

    // `run` replays conclude and registers it, as docs/ci.md promises: tag, file and hook.
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_eq!(run.done()["status"], "ok");
    assert!(run.stderr.contains("Registered"), "{}", run.stderr);
    let versions = json(p.mlbuild_offline(&["versions", "--json"]));
    assert_eq!(versions.as_array().unwrap().len(), 1);
    assert_eq!(
        blake3_of(&p.file("models/staging.zip")),
        versions[0]["model"].as_str().unwrap()
    );
    assert_eq!(p.read("hook.log").trim(), "fired");
}

/// A cached escalation: `run` replays it and notifies the escalation hook (with the run's id,
/// even when every step is cached); planning reports it and notifies nobody.
#[test]
fn planning_a_cached_escalation_runs_no_hook() {
    let p = trained().clone_trained();
    p.edit("threshold = 0.70", "threshold = 0.999");
    p.edit("max_attempts = 2", "max_attempts = 1");
    let text = p.read("ml.toml");
    p.write(
        "ml.toml",
        &format!("{text}\n[modify.escalate]\ncommand = \"cat >> hook.log; echo >> hook.log\"\n"),
    );
    // monitor and modify rerun from stored artifacts (no H2O) and escalate.
    let run = p.mlbuild_offline(&["run", "--json"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(p.read("hook.log").lines().count(), 1);
    // Replayed whole from the cache: the hook's report names this run, as recorded.
    let again = p.mlbuild_offline(&["run", "--json"]);
    assert_eq!(again.code, 3, "{}", again.stderr);
    assert!(again.statuses().values().all(|s| s == "cached"));
    let reports: Vec<Value> = p
        .read("hook.log")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let runs: Value =
        serde_json::from_str(&p.mlbuild_offline(&["runs", "--json"]).ok().stdout).unwrap();
    let newest = runs.as_array().unwrap()[0]["id"].clone();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[1]["run"], newest, "{reports:?}");
    assert_ne!(reports[1]["run"], reports[0]["run"]);
    for args in [
        &["status"][..],
        &["explain", "modify"],
        &["run", "--dry-run"],
    ] {
        let run = p.mlbuild_offline(args).ok();
        assert!(run.stdout.contains("modify"), "{args:?}: {}", run.stdout);
        assert_eq!(
            p.read("hook.log").lines().count(),
            2,
            "{args:?} ran the escalation hook"
        );
    }
}

/// `versions`, `tags`, `history`, `show`, `diff`, `predict` in a project that has never run:
/// nothing is created (no cache dir, no state DB), and a missing `-C` directory is an error
/// naming it, not a new directory.
#[test]
fn read_commands_create_no_file_or_directory() {
    let p = Project::from_fixture("prostate");
    let missing = p.file("nowhere");
    let run = p.mlbuild_offline(&["-C", "nowhere", "versions"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("nowhere") && run.stderr.contains("does not exist"),
        "{}",
        run.stderr
    );
    assert!(!missing.exists(), "`-C nowhere versions` created it");

    assert_eq!(
        json(p.mlbuild_offline(&["versions", "--json"])),
        serde_json::json!([])
    );
    assert_eq!(
        json(p.mlbuild_offline(&["tags", "--json"])),
        serde_json::json!({})
    );
    p.mlbuild_offline(&["versions"]).ok();
    for args in [
        &["history", "staging"][..],
        &["show", "v20250101.000000-abcdef"],
        &["diff", "v20250101.000000-abcdef", "v20250101.000001-abcdef"],
        &["predict", "--model", "staging", "data/prostate.csv"],
    ] {
        let run = p.mlbuild_offline(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
    }
    // Checking an empty store, or listing what gc would collect, makes none.
    p.mlbuild_offline(&["cache", "verify"]).ok();
    p.mlbuild_offline(&["cache", "gc", "--dry-run"]).ok();
    assert!(
        !p.file("cache").exists(),
        "a read command created the cache dir"
    );
    assert!(!p.file("models").exists());
}

/// A read command takes an older schema as it is (no migration writes); the next writing
/// command upgrades it.
#[test]
fn read_commands_never_migrate_an_older_schema() {
    let p = trained().clone_trained();
    let url = format!("sqlite://{}", p.file("cache/state.db").display());
    // The schema before version events (migration 3), run origins (migration 4), step
    // starts (migration 5), experiments (migration 6) and the running runs' index (migration 7)
    // existed.
    exec(
        &url,
        &[
            "DROP INDEX runs_running".to_string(),
            "DROP TABLE experiment_points".to_string(),
            "DROP TABLE experiments".to_string(),
            "DELETE FROM counters WHERE name = 'experiment'".to_string(),
            "DROP TABLE version_events".to_string(),
            "ALTER TABLE runs DROP COLUMN current_step".to_string(),
            "ALTER TABLE runs DROP COLUMN current_attempt".to_string(),
            "ALTER TABLE runs DROP COLUMN current_since".to_string(),
            "ALTER TABLE runs DROP COLUMN git_commit".to_string(),
            "ALTER TABLE runs DROP COLUMN user_name".to_string(),
            "ALTER TABLE runs DROP COLUMN error".to_string(),
            "UPDATE schema_version SET version = 2".to_string(),
        ],
    );
    let schema = || {
        runtime().block_on(async {
            use sqlx::{Connection, Row};
            let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
            let v: i64 = sqlx::query("SELECT version FROM schema_version")
                .fetch_one(&mut conn)
                .await
                .unwrap()
                .get(0);
            conn.close().await.unwrap();
            v
        })
    };
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(p.file("cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    let versions = json(p.mlbuild_offline(&["versions", "--json"]));
    let id = versions[0]["id"].as_str().unwrap().to_string();
    let shown = json(p.mlbuild_offline(&["show", &id, "--json"]));
    assert_eq!(shown["history"], serde_json::json!([]), "{shown}");
    p.mlbuild_offline(&["tags"]).ok();
    p.mlbuild_offline(&["history", "staging"]).ok();
    p.mlbuild_offline(&["status"]).ok();
    p.mlbuild_offline(&["predict", "--model", "staging", "data/prostate.csv"])
        .ok();
    // Runs of the older schema read, without what migration 4 records.
    let runs = json(p.mlbuild_offline(&["runs", "--json"]));
    assert!(
        runs[0]["user"].is_null() && runs[0]["error"].is_null() && runs[0]["current"].is_null(),
        "{runs}"
    );
    // Not even SQLite's `-wal`/`-shm` files are left behind.
    assert_eq!(listing(), before);
    assert_eq!(schema(), 2, "a read command migrated the database");
    p.mlbuild_offline(&["promote", "canary", &id]).ok();
    assert!(schema() > 2, "a writing command upgrades it");
}

// ---- 2. a version never becomes unservable for good ----------------------------------------

#[test]
fn a_corrupt_mojo_is_quarantined_named_by_verify_and_repaired_by_run() {
    let p = trained().clone_trained();
    let versions = json(p.mlbuild_offline(&["versions", "--json"]));
    let v = versions[0].clone();
    let id = v["id"].as_str().unwrap().to_string();
    let model = v["model"].as_str().unwrap().to_string();
    let path = blob(&p, &model);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    // predict refuses it clearly, and keeps the bad bytes in the quarantine.
    let run = p.mlbuild_offline(&["predict", "--model", "staging", "data/prostate.csv"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&id) && run.stderr.contains("corrupt"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("quarantine"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    let quarantined = p.file(&format!("cache/v1/quarantine/{model}"));
    assert_eq!(std::fs::read(&quarantined).unwrap(), bytes);
    assert!(!path.exists());

    // cache verify names the version and the command that repairs it, and fails.
    let verify = p.mlbuild_offline(&["cache", "verify"]);
    assert_eq!(verify.code, 1, "{}\n{}", verify.stdout, verify.stderr);
    let line = verify
        .stdout
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("verify names {id}:\n{}", verify.stdout));
    assert!(
        line.contains("MOJO") && line.contains("corrupt") && line.contains("`mlbuild run`"),
        "{line}"
    );

    // run rebuilds the MOJO (other bytes, same canonical digest) and points the version at it.
    let run = p.mlbuild(&["run", "--json"]).ok();
    assert_eq!(run.step("execute")["status"], "ran", "{}", run.stderr);
    assert_eq!(run.done()["version"], id.as_str(), "the same version");
    let after = json(p.mlbuild_offline(&["show", &id, "--json"]));
    let new_model = after["model"].as_str().unwrap().to_string();
    assert_ne!(new_model, model);
    assert_eq!(after["canonical"], v["canonical"]);
    let history = after["history"].as_array().unwrap();
    let mojo = history
        .iter()
        .find(|e| e["blob"] == "mojo")
        .unwrap_or_else(|| panic!("show records the repair: {after}"));
    assert_eq!(mojo["kind"], "replaced");
    assert_eq!(mojo["from"], model.as_str());
    assert_eq!(mojo["to"], new_model.as_str());
    assert!(
        mojo["reason"].as_str().unwrap().contains("quarantined"),
        "{mojo}"
    );
    let shown = p.mlbuild_offline(&["show", &id]).ok().stdout;
    assert!(
        shown.contains("history") && shown.contains("replaced"),
        "{shown}"
    );
    assert_eq!(blake3_of(&p.file("models/staging.zip")), new_model);

    // Servable again, and the store verifies.
    let predicted = p
        .mlbuild_offline(&["predict", "--model", "staging", "data/prostate.csv"])
        .ok();
    assert!(predicted.stdout.lines().count() > 300);
    p.mlbuild_offline(&["cache", "verify"]).ok();
}

// ---- 3. models/TAG.zip always holds the tag's version ----------------------------------------

#[test]
fn racing_promotes_always_leave_the_file_matching_the_tag() {
    let (p, a, b) = two_versions();
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let model_of = |id: &str| {
        let v = if id == a_id { &a } else { &b };
        v["model"].as_str().unwrap().to_string()
    };
    let rounds = 60;
    let mut wrong = Vec::new();
    for round in 0..rounds {
        let (first, second) = if round % 2 == 0 {
            (a_id, b_id)
        } else {
            (b_id, a_id)
        };
        let children: Vec<_> = [first, second]
            .iter()
            .map(|id| {
                p.command(&["promote", "staging", id])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
        let tags = json(p.mlbuild_offline(&["tags", "--json"]));
        let holder = tags["staging"].as_str().unwrap().to_string();
        if blake3_of(&p.file("models/staging.zip")) != model_of(&holder) {
            wrong.push(round);
        }
    }
    assert!(
        wrong.is_empty(),
        "models/staging.zip disagreed with the tag after rounds {wrong:?} of {rounds}"
    );
    // Every move is in the history, as a chain.
    let history = json(p.mlbuild_offline(&["history", "staging", "--json"]));
    let events = history.as_array().unwrap();
    for pair in events.windows(2) {
        assert_eq!(pair[1]["from"], pair[0]["to"], "{history}");
    }
}

#[test]
fn a_stale_model_file_is_reported_by_readers_and_repaired_by_writers() {
    let (p, staging, other) = two_versions();
    let staging_id = staging["id"].as_str().unwrap();
    let other_id = other["id"].as_str().unwrap();
    let stale = || {
        std::fs::copy(p.file("models/other.zip"), p.file("models/staging.zip")).unwrap();
    };
    let fresh = || blake3_of(&p.file("models/staging.zip")) == staging["model"].as_str().unwrap();

    stale();
    let says = |run: &Run| {
        run.stderr.contains("`models/staging.zip` is stale")
            && run.stderr.contains(&format!("it holds version {other_id}"))
            && run
                .stderr
                .contains(&format!("`mlbuild promote staging {staging_id}`"))
    };
    for args in [
        &["tags"][..],
        &["tags", "--json"],
        &["show", staging_id],
        &["status"],
    ] {
        let run = p.mlbuild_offline(args).ok();
        assert!(says(&run), "{args:?} warns:\n{}", run.stderr);
        assert!(!fresh(), "{args:?} only reads");
    }
    // `show` of the other version says nothing about staging's file.
    let run = p.mlbuild_offline(&["show", other_id]).ok();
    assert!(!run.stderr.contains("staging.zip"), "{}", run.stderr);

    // Any writer repairs every tag's file: a promote of another tag…
    let run = p.mlbuild_offline(&["promote", "other", other_id]).ok();
    assert!(run.stderr.contains("Repaired"), "{}", run.stderr);
    assert!(fresh());
    // …a rollback…
    stale();
    p.mlbuild_offline(&["promote", "canary", other_id]).ok();
    stale();
    p.mlbuild_offline(&["promote", "canary", staging_id]).ok();
    assert!(fresh());
    stale();
    p.mlbuild_offline(&["rollback", "canary"]).ok();
    assert!(fresh());
    // …and a run (all cached), also when the file is missing.
    stale();
    p.mlbuild_offline(&["run"]).ok();
    assert!(fresh());
    std::fs::remove_file(p.file("models/staging.zip")).unwrap();
    let run = p.mlbuild_offline(&["tags"]).ok();
    assert!(
        run.stderr.contains("`models/staging.zip` is missing"),
        "{}",
        run.stderr
    );
    p.mlbuild_offline(&["run"]).ok();
    assert!(fresh());
    let run = p.mlbuild_offline(&["tags"]).ok();
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    // A run that finds every file fresh writes nothing in `models/`, not even its lock.
    std::fs::remove_file(p.file("models/.lock")).unwrap();
    let modified = || {
        std::fs::metadata(p.file("models/staging.zip"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = modified();
    let run = p.mlbuild_offline(&["run"]).ok();
    assert!(!run.stderr.contains("Repaired"), "{}", run.stderr);
    assert!(
        !p.file("models/.lock").exists(),
        "a no-op run took the lock"
    );
    assert_eq!(modified(), before);
    assert!(fresh());
}

/// The tags' files are checked by stat once hashed (`v1/stat-models.json`, saved by writers
/// only), and a file changed in place (same size, same inode, a new mtime, or the old mtime put
/// back) is hashed again.
#[test]
fn a_tag_file_is_checked_by_stat_once_hashed_and_hashed_again_when_changed() {
    let (p, staging, _) = two_versions();
    let fresh = || blake3_of(&p.file("models/staging.zip")) == staging["model"].as_str().unwrap();
    p.mlbuild_offline(&["run"]).ok();
    let stats = p.file("cache/v1/stat-models.json");
    let remembered = std::fs::read_to_string(&stats).unwrap();
    assert!(
        remembered.contains("staging.zip")
            && remembered.contains(staging["model"].as_str().unwrap()),
        "{remembered}"
    );
    std::fs::remove_file(&stats).unwrap();
    p.mlbuild_offline(&["tags"]).ok();
    p.mlbuild_offline(&["status"]).ok();
    assert!(!stats.exists(), "a reader saved the stat cache");
    p.mlbuild_offline(&["run"]).ok();
    assert!(stats.exists());
    std::thread::sleep(std::time::Duration::from_millis(20));
    flip_byte(&p.file("models/staging.zip"));
    let run = p.mlbuild_offline(&["tags"]).ok();
    assert!(
        run.stderr
            .contains("`models/staging.zip` is stale: it holds the bytes of no registered version"),
        "{}",
        run.stderr
    );
    let run = p.mlbuild_offline(&["run"]).ok();
    assert!(run.stderr.contains("Repaired"), "{}", run.stderr);
    assert!(fresh());

    // Bytes changed in place with the size, inode and mtime put back: the change time, which
    // no program sets, still moves, and readers see it (this was the stat cache's limit).
    let zip = p.file("models/staging.zip");
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let file = std::fs::OpenOptions::new().write(true).open(&zip).unwrap();
    file.set_modified(an_hour_ago).unwrap();
    // Recorded more than the racy window after the file's last change: a settled entry.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    p.mlbuild_offline(&["run"]).ok();
    let run = p.mlbuild_offline(&["tags"]).ok();
    assert!(!run.stderr.contains("stale"), "{}", run.stderr);
    flip_byte(&zip);
    file.set_modified(an_hour_ago).unwrap();
    assert!(!fresh(), "the bytes did change");
    let run = p.mlbuild_offline(&["tags"]).ok();
    assert!(
        run.stderr.contains("is stale"),
        "seen by its ctime: {}",
        run.stderr
    );
}

/// Flips one byte of `path` in place (same size, same inode).
fn flip_byte(path: &std::path::Path) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, 100).unwrap();
    file.write_all_at(&[byte[0] ^ 1], 100).unwrap();
}

/// `cache verify` counts damaged versions as versions: one version with two missing blobs is
/// two problems and one damaged version (it said "2 versions cannot be served"); the summary
/// counts each kind apart (the entries whose outputs those blobs were are damaged too).
#[test]
fn verify_counts_a_version_with_two_damaged_blobs_once() {
    let (p, staging, _) = two_versions();
    let id = staging["id"].as_str().unwrap();
    for digest in [&staging["card"], &staging["provenance"]["transform"]] {
        let digest = digest
            .as_str()
            .unwrap_or_else(|| panic!("a trained version has a card and a transform: {staging}"));
        std::fs::remove_file(blob(&p, digest)).unwrap();
    }
    let verify = p.mlbuild_offline(&["cache", "verify"]);
    assert_eq!(verify.code, 1, "{}", verify.stderr);
    let lines = verify.stdout.lines().filter(|l| l.contains(id)).count();
    assert_eq!(lines, 2, "{}", verify.stdout);
    assert!(
        verify
            .stderr
            .contains("2 versions: 2 damaged entries, 1 damaged version\n"),
        "{}",
        verify.stderr
    );
    assert!(
        verify
            .stderr
            .contains("the store has 4 problems; one version cannot be served or shown whole"),
        "{}",
        verify.stderr
    );
}

//! `mlbuild mojo validate` and `mlbuild deploy --mojo` (issue 5, point 4): MOJOs made
//! elsewhere, checked and registered without H2O (every command here runs offline).

use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;

use crate::support::*;

fn fixture(name: &str) -> PathBuf {
    repo_root()
        .join("tests/fixtures/mojo")
        .join(format!("{name}.zip"))
}

fn json(run: Run) -> Value {
    let run = run.ok();
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr))
}

/// A project directory without `ml.toml`: deploy needs none.
fn bare() -> Project {
    let p = Project::from_fixture("prostate");
    std::fs::remove_file(p.file("ml.toml")).unwrap();
    p
}

/// Copies a fixture MOJO into the project under `incoming/`, returning its relative path.
fn incoming(p: &Project, name: &str) -> String {
    std::fs::create_dir_all(p.file("incoming")).unwrap();
    let rel = format!("incoming/{name}.zip");
    std::fs::copy(fixture(name), p.file(&rel)).unwrap();
    rel
}

/// gbm_bin without one domain file and one tree, plus an entry escaping the archive.
fn bad_zip(p: &Project) -> String {
    let bytes = std::fs::read(fixture("gbm_bin")).unwrap();
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for i in 0..src.len() {
        let mut f = src.by_index(i).unwrap();
        let name = f.name().to_string();
        if name == "domains/d001.txt" || name == "trees/t00_002.bin" {
            continue;
        }
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut data).unwrap();
        out.start_file(name, opts).unwrap();
        out.write_all(&data).unwrap();
    }
    out.start_file("../evil", opts).unwrap();
    out.write_all(b"x").unwrap();
    let bytes = out.finish().unwrap().into_inner();
    std::fs::write(p.file("bad.zip"), bytes).unwrap();
    "bad.zip".to_string()
}

fn blake3_of(path: &std::path::Path) -> String {
    blake3::hash(&std::fs::read(path).unwrap())
        .to_hex()
        .to_string()
}

#[test]
fn mojo_validate_reports_fields_and_refuses_a_bad_zip() {
    let p = bare();
    let file = fixture("gbm_bin");
    let report = json(p.mlbuild_offline(&["mojo", "validate", file.to_str().unwrap(), "--json"]));
    assert_eq!(report["valid"], true, "{report:#}");
    assert_eq!(report["algorithm"], "gbm");
    assert_eq!(report["h2o_version"], "3.46.0.11");
    assert_eq!(report["mojo_version"], "1.40");
    assert_eq!(report["category"], "Binomial");
    assert_eq!(report["n_features"], 7);
    assert_eq!(report["n_classes"], 2);
    assert_eq!(report["response"], "CAPSULE");
    assert_eq!(report["columns"].as_array().unwrap().len(), 7);
    assert_eq!(
        report["columns"][1],
        serde_json::json!({"name": "RACE", "type": "categorical", "levels": 3})
    );
    assert_eq!(report["canonical"].as_str().unwrap().len(), 64);
    assert_eq!(report["scorable"], true);
    assert_eq!(report["errors"], serde_json::json!([]));
    assert_eq!(report["file"], file.to_str().unwrap());

    // Human output: the fields on stdout, exit 0.
    let human = p
        .mlbuild_offline(&["mojo", "validate", file.to_str().unwrap()])
        .ok();
    assert!(human.stdout.contains("valid      yes"), "{}", human.stdout);
    assert!(human.stdout.contains("RACE (3 levels)"), "{}", human.stdout);

    // A bad zip: exit 1, every problem with its path on stderr.
    let bad = bad_zip(&p);
    let run = p.mlbuild_offline(&["mojo", "validate", &bad]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: `bad.zip` is not a valid MOJO: 3 problems"),
        "{}",
        run.stderr
    );
    for path in ["`../evil`", "`domains/d001.txt`", "`trees/t00_002.bin`"] {
        assert!(run.stderr.contains(path), "{path} in:\n{}", run.stderr);
    }
    let run = p.mlbuild_offline(&["mojo", "validate", &bad, "--json"]);
    assert_eq!(run.code, 1);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["valid"], false);
    let codes: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["unsafe_path", "missing_file", "missing_file"]);

    // A file that is not there is an ordinary error naming it.
    let run = p.mlbuild_offline(&["mojo", "validate", "nope.zip"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("error: cannot read `nope.zip`"),
        "{}",
        run.stderr
    );
}

#[test]
fn deploy_registers_a_version_moves_the_tag_and_writes_the_model_file() {
    let p = bare();
    let file = incoming(&p, "gbm_bin");
    let out =
        json(p.mlbuild_offline(&["deploy", "--mojo", &file, "--tag", "production", "--json"]));
    let version = out["version"].as_str().unwrap().to_string();
    assert_eq!(out["created"], true, "{out:#}");
    assert_eq!(out["tag"], "production");
    assert_eq!(out["from"], Value::Null);
    assert_eq!(out["model"], blake3_of(&p.file(&file)));
    assert_eq!(out["canonical"].as_str().unwrap().len(), 64);

    let tags = json(p.mlbuild_offline(&["tags", "--json"]));
    assert_eq!(tags, serde_json::json!({ "production": version }));
    assert_eq!(
        std::fs::read(p.file("models/production.zip")).unwrap(),
        std::fs::read(p.file(&file)).unwrap()
    );
    let history = json(p.mlbuild_offline(&["history", "production", "--json"]));
    assert_eq!(history.as_array().unwrap().len(), 1);
    assert_eq!(history[0]["to"], version.as_str());
    assert_eq!(history[0]["reason"], "deploy --mojo gbm_bin.zip");

    let versions = json(p.mlbuild_offline(&["versions", "--json"]));
    let v = &versions[0];
    assert_eq!(v["id"], version.as_str());
    assert_eq!(v["algo"], "GBM");
    assert_eq!(v["run"], Value::Null);
    assert_eq!(v["metrics"], serde_json::json!({}));
    assert_eq!(v["canonical"], out["canonical"]);
    let prov = &v["provenance"];
    assert_eq!(prov["source"], "deploy");
    assert_eq!(
        prov["file"], "gbm_bin.zip",
        "the file name only, never a path"
    );
    assert_eq!(prov["h2o_version"], "3.46.0.11");
    assert_eq!(prov["mojo_version"], "1.40");
    assert_eq!(prov["mlbuild_version"], env!("CARGO_PKG_VERSION"));
    assert!(prov["deployed_by"].is_string());
    let shown = json(p.mlbuild_offline(&["show", &version, "--json"]));
    let card = std::fs::read_to_string(shown["card_path"].as_str().unwrap()).unwrap();
    assert!(card.contains("external MOJO `gbm_bin.zip`"), "{card}");
    let text = p.mlbuild_offline(&["show", &version]).ok().stdout;
    assert!(
        text.contains("source    deploy --mojo gbm_bin.zip by ")
            && text.contains("trained by H2O 3.46.0.11 (MOJO 1.40)"),
        "{text}"
    );

    // The same MOJO to another tag keeps its version, with a reason of our own.
    let again = json(p.mlbuild_offline(&[
        "deploy",
        "--mojo",
        &file,
        "--tag",
        "staging",
        "--reason",
        "same model for staging",
        "--json",
    ]));
    assert_eq!(again["created"], false);
    assert_eq!(again["version"], version.as_str());
    let versions = json(p.mlbuild_offline(&["versions", "--json"]));
    assert_eq!(versions.as_array().unwrap().len(), 1);
    let history = json(p.mlbuild_offline(&["history", "staging", "--json"]));
    assert_eq!(history[0]["reason"], "same model for staging");

    // Another model to production, then a rollback: models/production.zip follows the tag.
    let glm = incoming(&p, "glm_bin");
    let second =
        json(p.mlbuild_offline(&["deploy", "--mojo", &glm, "--tag", "production", "--json"]));
    assert_eq!(second["created"], true);
    assert_eq!(second["from"], version.as_str());
    assert_eq!(
        blake3_of(&p.file("models/production.zip")),
        blake3_of(&p.file(&glm))
    );
    p.mlbuild_offline(&["rollback", "production"]).ok();
    let tags = json(p.mlbuild_offline(&["tags", "--json"]));
    assert_eq!(tags["production"], version.as_str());
    assert_eq!(
        blake3_of(&p.file("models/production.zip")),
        blake3_of(&p.file(&file))
    );
}

#[test]
fn deploying_an_invalid_zip_changes_nothing() {
    let p = bare();
    let bad = bad_zip(&p);
    let run = p.mlbuild_offline(&["deploy", "--mojo", &bad, "--tag", "production"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("refusing to deploy") && run.stderr.contains("`../evil`"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("valid      no"), "{}", run.stdout);
    // A malformed tag is refused before anything is read or written, as a usage error.
    let good = incoming(&p, "gbm_bin");
    let run = p.mlbuild_offline(&["deploy", "--mojo", &good, "--tag", "../escape"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(!p.file("cache").exists(), "nothing stored");
    assert!(!p.file("models").exists(), "no models file");
    assert_eq!(
        json(p.mlbuild_offline(&["versions", "--json"])),
        serde_json::json!([])
    );
    assert_eq!(
        json(p.mlbuild_offline(&["tags", "--json"])),
        serde_json::json!({})
    );
}

/// A bare project where `production` moved from a GBM (`old`, untagged now, its MOJO still
/// stored at `blob`) to a GLM (`new`).
struct Moved {
    p: Project,
    gbm: String,
    glm: String,
    old: String,
    new: String,
    /// blake3 of the GBM: its blob's name.
    model: String,
    blob: PathBuf,
}

fn moved() -> Moved {
    let p = bare();
    let gbm = incoming(&p, "gbm_bin");
    let deploy = |file: &str| -> String {
        let out =
            json(p.mlbuild_offline(&["deploy", "--mojo", file, "--tag", "production", "--json"]));
        out["version"].as_str().unwrap().to_string()
    };
    let old = deploy(&gbm);
    let glm = incoming(&p, "glm_bin");
    let new = deploy(&glm);
    let model = blake3_of(&p.file(&gbm));
    let blob = p.file(&format!("cache/v1/cas/{}/{model}", &model[..2]));
    assert!(blob.exists());
    Moved {
        p,
        gbm,
        glm,
        old,
        new,
        model,
        blob,
    }
}

/// Runs SQL statements on the project's state database (a damaged or concurrent writer's row).
fn sql(p: &Project, statements: &[String]) {
    exec(
        &format!("sqlite://{}", p.file("cache/state.db").display()),
        statements,
    );
}

/// A tag never moves to a version whose MOJO this store cannot give: `rollback` and `promote`
/// are refused with the repair, and the tag, its history and `models/TAG.zip` stay as they were.
#[test]
fn a_tag_never_moves_to_a_version_whose_mojo_is_missing_or_damaged() {
    let Moved {
        p,
        glm,
        old,
        model,
        blob,
        ..
    } = moved();
    let good = std::fs::read(&blob).unwrap();
    let before = |p: &Project| {
        (
            json(p.mlbuild_offline(&["tags", "--json"])),
            json(p.mlbuild_offline(&["history", "production", "--json"])),
            blake3_of(&p.file("models/production.zip")),
        )
    };
    let kept = before(&p);
    assert_eq!(kept.2, blake3_of(&p.file(&glm)));

    std::fs::remove_file(&blob).unwrap();
    for args in [
        vec!["rollback", "production"],
        vec!["promote", "production", old.as_str()],
        vec!["rollback", "production", "--to", old.as_str()],
    ] {
        let run = p.mlbuild_offline(&args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "tag `production` cannot point at version `{old}`: it cannot be served from this store (its MOJO: "
            )) && run.stderr.contains("is missing")
                && run.stderr.contains("hint: `mlbuild cache pull`"),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(before(&p), kept, "{args:?} changed something");
    }

    // Damaged bytes: refused the same way, and the bad blob goes to the quarantine.
    let mut bad = good.clone();
    bad[100] ^= 1;
    std::fs::write(&blob, &bad).unwrap();
    let run = p.mlbuild_offline(&["rollback", "production"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("is corrupt"), "{}", run.stderr);
    assert_eq!(before(&p), kept);
    assert!(!blob.exists() && p.file(&format!("cache/v1/quarantine/{model}")).exists());

    // With its bytes back, the same rollback moves the tag and writes the file.
    std::fs::write(&blob, &good).unwrap();
    p.mlbuild_offline(&["rollback", "production"]).ok();
    assert_eq!(
        json(p.mlbuild_offline(&["tags", "--json"]))["production"],
        old.as_str()
    );
    assert_eq!(blake3_of(&p.file("models/production.zip")), model);
}

/// `cache gc` and a tag move serialise on the lock of `models/`: a version that takes a tag
/// while gc waits has its MOJO kept. Here the test holds the lock and moves the tag as
/// `promote` would (its transaction, under the lock); gc must wait and then keep the blob.
#[test]
fn cache_gc_waits_for_a_tag_move_and_keeps_the_version_it_tagged() {
    use fs4::fs_std::FileExt;
    let Moved { p, old, blob, .. } = moved();

    let lock = std::fs::File::open(p.file("models/.lock")).unwrap();
    lock.lock_exclusive().unwrap();
    let log = p.file("gc.log");
    let mut gc = p.command(&["cache", "gc"]);
    gc.stderr(std::fs::File::create(&log).unwrap());
    let mut gc = gc.spawn().unwrap();
    let waiting = wait_until(20, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("writing `models/`")
            || gc.try_wait().unwrap().is_some()
    });
    assert!(waiting, "gc neither waited nor ended");
    sql(
        &p,
        &[format!(
            "UPDATE tags SET version = '{old}' WHERE tag = 'production'"
        )],
    );
    FileExt::unlock(&lock).unwrap();
    assert!(
        gc.wait().unwrap().success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(
        blob.exists(),
        "gc deleted the MOJO of the version that took the tag: {}",
        std::fs::read_to_string(&log).unwrap()
    );
}

/// A writer killed after its commit leaves its log in `state.db-wal`; commands that only read
/// see what it committed and leave the database and its log byte for byte as they were (the
/// next writer folds the log in).
#[test]
fn read_commands_leave_a_killed_writers_log_as_it_is() {
    let Moved { p, gbm, old, .. } = moved();
    let killed = p
        .command(&["promote", "production", &old])
        .env("MLBUILD_H2O_URL", "http://127.0.0.1:9")
        .env("MLBUILD_FAULTPOINT", "tags.after-commit")
        .output()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&killed.status),
        Some(9)
    );
    let files = || {
        ["cache/state.db", "cache/state.db-wal"].map(|f| {
            std::fs::read(p.file(f))
                .map(|b| blake3::hash(&b).to_hex().to_string())
                .ok()
        })
    };
    let left = files();
    assert!(
        std::fs::metadata(p.file("cache/state.db-wal")).is_ok_and(|m| m.len() > 0),
        "the killed promote left no log"
    );
    for args in [
        vec!["tags", "--json"],
        vec!["versions", "--json"],
        vec!["history", "production", "--json"],
        vec!["show", old.as_str(), "--json"],
    ] {
        let run = p.mlbuild_offline(&args).ok();
        if args[0] == "tags" {
            let tags: Value = serde_json::from_str(&run.stdout).unwrap();
            assert_eq!(
                tags["production"],
                old.as_str(),
                "the committed move is read"
            );
        }
        assert_eq!(
            files(),
            left,
            "`{}` changed the database or its log",
            args[0]
        );
    }
    // The next writer folds the log in and repairs the file.
    p.mlbuild_offline(&["deploy", "--mojo", &gbm, "--tag", "production"])
        .ok();
    assert!(!p.file("cache/state.db-wal").exists());
    assert_eq!(
        blake3_of(&p.file("models/production.zip")),
        blake3_of(&p.file(&gbm))
    );
}

/// `serve --model TAG` in a directory that only `deploy --mojo` made (no `ml.toml`) follows the
/// tag; a version that cannot be loaded is tried again until it loads, and `/health` says the
/// server is stale meanwhile (it said "ok" and never retried).
#[test]
fn serve_retries_a_version_that_failed_to_load_and_reports_it_stale_meanwhile() {
    let Moved {
        p, old, new, blob, ..
    } = moved();
    let good = std::fs::read(&blob).unwrap();

    let server = listen(p.command(&["serve", "--model", "production", "--port", "0"]));
    // Always 200: the served version answers every request, stale or not.
    let health = || -> Value {
        runtime().block_on(async {
            let r = reqwest::get(format!("{}/health", server.url))
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.json().await.unwrap()
        })
    };
    assert_eq!(
        health(),
        serde_json::json!({ "status": "ok", "version": new })
    );

    // The tag moves to a version whose MOJO is gone (a registry shared with a machine that
    // has it; `promote` here would refuse): the old model keeps answering, /health says so.
    std::fs::remove_file(&blob).unwrap();
    sql(
        &p,
        &[format!(
            "UPDATE tags SET version = '{old}' WHERE tag = 'production'"
        )],
    );
    assert!(
        wait_until(20, || health()["status"] == "stale"),
        "{}",
        server.log.lock().unwrap()
    );
    let h = health();
    assert_eq!(
        (h["version"].as_str(), h["tag_version"].as_str()),
        (Some(new.as_str()), Some(old.as_str()))
    );
    assert!(h["error"].as_str().unwrap().contains("is missing"), "{h}");

    // Its bytes come back: the next retry loads it.
    std::fs::write(&blob, &good).unwrap();
    assert!(
        wait_until(30, || health()
            == serde_json::json!({ "status": "ok", "version": old })),
        "{}\n{}",
        health(),
        server.log.lock().unwrap()
    );
    let log = server.log.lock().unwrap().clone();
    assert_eq!(
        log.matches("cannot be loaded").count(),
        1,
        "one warning per error: {log}"
    );
    assert!(
        log.contains(&format!("Swapped tag `production` → {old}")),
        "{log}"
    );
}

/// A writer killed between writing `models/.tmp…` and renaming it leaves the temp file; the next
/// writer (which holds the lock of `models/`, so no write is under way) removes it.
#[test]
fn the_next_writer_removes_a_killed_writers_temp_file_in_models() {
    let p = bare();
    let gbm = incoming(&p, "gbm_bin");
    p.mlbuild_offline(&["deploy", "--mojo", &gbm, "--tag", "production"])
        .ok();
    std::fs::write(p.file("models/.tmpKILLED"), b"half a model").unwrap();
    p.mlbuild_offline(&["tags"]).ok();
    assert!(
        p.file("models/.tmpKILLED").exists(),
        "readers change nothing"
    );
    p.mlbuild_offline(&["deploy", "--mojo", &gbm, "--tag", "staging"])
        .ok();
    assert!(!p.file("models/.tmpKILLED").exists());
}

/// A bare name is the registry's tag before it is a file: a stray file `production` in the
/// working directory does not shadow the tag (it was read as a MOJO and refused).
#[test]
fn a_file_named_like_a_tag_does_not_shadow_the_tag() {
    let p = bare();
    let gbm = incoming(&p, "gbm_bin");
    p.mlbuild_offline(&["deploy", "--mojo", &gbm, "--tag", "production"])
        .ok();
    std::fs::write(p.file("production"), b"notes about production").unwrap();
    let input = repo_root().join("tests/fixtures/mojo/prostate.in.csv");
    let input = input.to_str().unwrap();
    let by_tag = p
        .mlbuild_offline(&["predict", "--model", "production", input])
        .ok();
    let by_file = p.mlbuild_offline(&["predict", "--model", &gbm, input]).ok();
    assert_eq!(by_tag.stdout, by_file.stdout);
    assert!(by_tag.stderr.contains("with v"), "{}", by_tag.stderr);
    // A name with a `/` is a file.
    let run = p.mlbuild_offline(&["predict", "--model", "./production", input]);
    assert_eq!(run.code, 1, "{}", run.stderr);
}

/// A promote to the version the tag already names says so (it printed `Tagged … → V (was V)`);
/// a tag's file that cannot be written is reported with the OS's reason; a MOJO file that does
/// not load is named.
#[test]
fn tag_moves_and_model_files_say_what_happened() {
    let p = bare();
    let gbm = incoming(&p, "gbm_bin");
    let first =
        json(p.mlbuild_offline(&["deploy", "--mojo", &gbm, "--tag", "production", "--json"]));
    let v = first["version"].as_str().unwrap().to_string();
    let same = p.mlbuild_offline(&["promote", "production", &v]).ok();
    assert!(
        same.stderr
            .contains(&format!("Unchanged tag `production` already names {v}"))
            && !same.stderr.contains("Tagged"),
        "{}",
        same.stderr
    );
    std::fs::create_dir(p.file("models/staging.zip")).unwrap();
    let blocked = p.mlbuild_offline(&["promote", "staging", &v]).ok();
    assert!(
        blocked
            .stderr
            .contains("`models/staging.zip` cannot hold version")
            && blocked.stderr.contains("Is a directory"),
        "{}",
        blocked.stderr
    );
    std::fs::write(p.file("junk.zip"), b"not a zip").unwrap();
    let input = repo_root().join("tests/fixtures/mojo/prostate.in.csv");
    let run = p.mlbuild_offline(&["predict", "--model", "junk.zip", input.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("`junk.zip` cannot be loaded as a MOJO")
            && run
                .stderr
                .contains("hint: `mlbuild mojo validate junk.zip`"),
        "{}",
        run.stderr
    );
}

/// A tag name read from the registry is data: a damaged row naming `../escaped` must not make
/// a writer write (or a reader read) `models/../escaped.zip`.
#[test]
fn a_tag_row_with_a_bad_name_has_no_file_and_reaches_nothing_outside_models() {
    let p = bare();
    let file = incoming(&p, "gbm_bin");
    p.mlbuild_offline(&["deploy", "--mojo", &file, "--tag", "production"])
        .ok();
    sql(
        &p,
        &["UPDATE tags SET tag = '../escaped' WHERE tag = 'production'".to_string()],
    );
    let outside = p.file("escaped.zip");
    std::fs::write(&outside, b"the user's own file").unwrap();

    let tags = p.mlbuild_offline(&["tags"]).ok();
    assert!(
        tags.stderr.contains("not a valid tag name") && tags.stderr.contains("`../escaped`"),
        "{}",
        tags.stderr
    );
    // A writer syncs every tag's file: the bad one is reported and left alone.
    let glm = incoming(&p, "glm_bin");
    let deployed = p
        .mlbuild_offline(&["deploy", "--mojo", &glm, "--tag", "staging"])
        .ok();
    assert!(
        deployed.stderr.contains("`../escaped`"),
        "{}",
        deployed.stderr
    );
    assert_eq!(std::fs::read(&outside).unwrap(), b"the user's own file");
    assert_eq!(
        blake3_of(&p.file("models/staging.zip")),
        blake3_of(&p.file(&glm))
    );
    let mut names: Vec<String> = std::fs::read_dir(p.file("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".lock", "production.zip", "staging.zip"]);
}

#[test]
fn deploy_runs_the_projects_deploy_hooks_when_the_tag_moves() {
    let p = Project::from_fixture("prostate");
    let text = p.read("ml.toml");
    p.write(
        "ml.toml",
        &format!("{text}\n[conclude.deploy]\ncommand = \"cat > hook.json\"\n"),
    );
    let file = incoming(&p, "xgb_bin");
    let out =
        json(p.mlbuild_offline(&["deploy", "--mojo", &file, "--tag", "production", "--json"]));
    let payload: Value = serde_json::from_str(&p.read("hook.json")).unwrap();
    assert_eq!(payload["event"], "deployed");
    assert_eq!(payload["tag"], "production");
    assert_eq!(payload["version"], out["version"]);
    assert_eq!(payload["model"], out["model"]);
    assert_eq!(payload["canonical"], out["canonical"]);
    assert_eq!(payload["source"], "deploy");
    assert_eq!(payload["file"], "xgb_bin.zip");
    assert_eq!(payload["run"], Value::Null);
    assert!(payload["card"].as_str().is_some_and(|c| c.len() == 64));

    // Deploying it again to the same tag moves nothing, so no hook runs.
    std::fs::remove_file(p.file("hook.json")).unwrap();
    p.mlbuild_offline(&["deploy", "--mojo", &file, "--tag", "production"])
        .ok();
    assert!(!p.file("hook.json").exists());

    // A broken ml.toml stops the deploy before anything changes.
    p.write(
        "ml.toml",
        &text.replace("[conclude]\n", "[conclude]\nbogus = 1\n"),
    );
    let run = p.mlbuild_offline(&["deploy", "--mojo", &file, "--tag", "canary"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("conclude.bogus"), "{}", run.stderr);
    assert!(!p.file("models/canary.zip").exists());
}

/// Ctrl-C during `predict -o OUT` stops it with exit 130, removes its temporary file and leaves
/// an existing OUT as it was (the temporary `.mlbuild-predict-…` file used to stay behind).
#[test]
fn an_interrupted_predict_leaves_out_as_it_was_and_no_temporary_file() {
    let p = bare();
    let rows =
        std::fs::read_to_string(repo_root().join("tests/fixtures/mojo/prostate.in.csv")).unwrap();
    let (header, body) = rows.split_once('\n').unwrap();
    {
        // ~3M rows: seconds of scoring, so that the signal comes while it is under way.
        let mut big = std::io::BufWriter::new(std::fs::File::create(p.file("big.csv")).unwrap());
        writeln!(big, "{header}").unwrap();
        for _ in 0..8_000 {
            big.write_all(body.as_bytes()).unwrap();
        }
    }
    p.write("out.csv", "earlier predictions\n");
    let temporary = |p: &Project| -> Vec<String> {
        std::fs::read_dir(&p.path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".mlbuild-predict-"))
            .collect()
    };
    let gbm = fixture("gbm_bin");
    let child = p
        .command(&[
            "predict",
            "--model",
            gbm.to_str().unwrap(),
            "big.csv",
            "-o",
            "out.csv",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Under way: its temporary file has predictions in it.
    let started = wait_until(60, || {
        temporary(&p)
            .iter()
            .any(|n| std::fs::metadata(p.file(n)).is_ok_and(|m| m.len() > 0))
    });
    assert!(started, "predict never started writing");
    // SAFETY: signals a child this test started and has not waited for.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 130, "{}", run.stderr);
    assert!(run.stderr.contains("interrupted"), "{}", run.stderr);
    assert_eq!(p.read("out.csv"), "earlier predictions\n");
    assert_eq!(temporary(&p), Vec::<String>::new());
}

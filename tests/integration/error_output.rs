//! The exact stderr and exit code of representative errors, one per error type with a hint and
//! a few of the commands' own: `error:`, each `Caused by:`, every `hint:` (snapshots in
//! `snapshots/`, reviewed with `cargo insta review`). The project's directory is shown as
//! `[PROJECT]`. None of these reaches H2O.

use crate::support::*;

/// What a user sees of a failed command: its exit code, then its stderr, with this project's
/// path replaced.
fn seen(p: &Project, run: &Run) -> String {
    let project = p.path.display().to_string();
    let canonical = p
        .path
        .canonicalize()
        .map(|c| c.display().to_string())
        .unwrap_or_else(|_| project.clone());
    let stderr = run
        .stderr
        .replace(&canonical, "[PROJECT]")
        .replace(&project, "[PROJECT]");
    format!("exit {}\n{stderr}", run.code)
}

fn fails(p: &Project, cmd: &mut std::process::Command) -> String {
    let run = Run::from(cmd.output().unwrap());
    assert_ne!(run.code, 0, "{}", run.stderr);
    seen(p, &run)
}

#[test]
fn config_not_found() {
    let p = Project::from_fixture("prostate");
    std::fs::remove_file(p.file("ml.toml")).unwrap();
    insta::assert_snapshot!(fails(&p, &mut p.command(&["run"])));
}

#[test]
fn config_unknown_key() {
    let p = Project::from_fixture("prostate");
    p.edit("threshold = 0.70", "treshold = 0.70");
    insta::assert_snapshot!(fails(&p, &mut p.command(&["run", "-q"])));
}

#[test]
fn config_wrong_type() {
    let p = Project::from_fixture("prostate");
    p.edit("max_models = 2", "max_models = \"two\"");
    insta::assert_snapshot!(fails(&p, &mut p.command(&["run", "-q"])));
}

#[test]
fn config_bad_override() {
    let p = Project::from_fixture("prostate");
    insta::assert_snapshot!(fails(
        &p,
        &mut p.command(&["status", "--set", "define.threshold"])
    ));
}

#[test]
fn table_not_utf8() {
    let p = Project::from_fixture("prostate");
    let mut bytes = std::fs::read(p.file("data/prostate.csv")).unwrap();
    bytes.extend_from_slice(b"999,1,65,1,2,1,1.4,0,6\xe9\n");
    std::fs::write(p.file("data/prostate.csv"), bytes).unwrap();
    insta::assert_snapshot!(fails(&p, &mut p.command(&["run", "-q"])));
}

#[test]
fn locate_path_is_a_directory() {
    let p = Project::from_fixture("prostate");
    p.edit("path = \"data/prostate.csv\"", "path = \"data\"");
    insta::assert_snapshot!(fails(&p, &mut p.command(&["run", "-q"])));
}

#[test]
fn locate_bad_glob() {
    let p = Project::from_fixture("prostate");
    p.edit("path = \"data/prostate.csv\"", "path = \"data/part-[.csv\"");
    insta::assert_snapshot!(fails(&p, &mut p.command(&["run", "-q"])));
}

#[test]
fn table_duplicate_column() {
    let p = Project::from_fixture("prostate");
    let text = p.read("data/prostate.csv").replacen("VOL,", "AGE,", 1);
    p.write("data/prostate.csv", &text);
    insta::assert_snapshot!(fails(&p, &mut p.command(&["run", "-q"])));
}

#[test]
fn remote_bad_scheme() {
    let p = Project::from_fixture("prostate");
    let mut cmd = p.command(&["run", "-q"]);
    cmd.env("MLBUILD_REMOTE_CACHE", "ftp://cache.example.org");
    insta::assert_snapshot!(fails(&p, &mut cmd));
}

#[test]
fn remote_unreadable_ca() {
    let p = Project::from_fixture("prostate");
    let mut cmd = p.command(&["cache", "pull"]);
    cmd.env("MLBUILD_REMOTE_CACHE", "https://127.0.0.1:9/cache")
        .env("MLBUILD_REMOTE_CA", "certs/none.pem");
    insta::assert_snapshot!(fails(&p, &mut cmd));
}

#[test]
fn registry_unsupported_url() {
    let p = Project::from_fixture("prostate");
    let mut cmd = p.command(&["versions"]);
    cmd.env("MLBUILD_STATE_URL", "mysql://db.example.org/mlbuild");
    insta::assert_snapshot!(fails(&p, &mut cmd));
}

#[test]
fn registry_unknown_version() {
    let p = Project::from_fixture("prostate");
    insta::assert_snapshot!(fails(
        &p,
        &mut p.command(&["promote", "staging", "v20260101.000000-000000"])
    ));
}

#[test]
fn h2o_jar_not_found() {
    let p = Project::from_fixture("prostate");
    let mut cmd = p.command(&["run", "-q"]);
    cmd.env("MLBUILD_H2O_JAR", "jars/h2o.jar");
    insta::assert_snapshot!(fails(&p, &mut cmd));
}

#[test]
fn mojo_not_a_zip() {
    let p = Project::from_fixture("prostate");
    p.write("model.zip", "not a zip\n");
    insta::assert_snapshot!(fails(
        &p,
        &mut p.command(&["mojo", "validate", "model.zip"])
    ));
}

#[test]
fn frozen_without_a_lock() {
    let p = Project::from_fixture("prostate");
    insta::assert_snapshot!(fails(&p, &mut p.command(&["run", "--frozen"])));
}

/// A store error's hint reaches stderr too: `predict` of a version whose MOJO left the store.
/// (A metrics error's cannot be reached from the command line: its rendering is unit-tested in
/// `commands::diagnostics`.)
#[test]
fn store_missing_blob() {
    let p = trained().clone_trained();
    let json = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&p.mlbuild_offline(args).ok().stdout).unwrap()
    };
    let tags = json(&["tags", "--json"]);
    let version = tags["staging"].as_str().unwrap();
    let show = json(&["show", version, "--json"]);
    let model = show["model"].as_str().unwrap();
    std::fs::remove_file(p.file(&format!("cache/v1/cas/{}/{model}", &model[..2]))).unwrap();
    let run = p.mlbuild_offline(&["predict", "--model", "staging", "data/prostate.csv"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("stored blob {model} is missing"))),
        "{}",
        run.stderr
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("hint: `mlbuild run` makes it again")),
        "{}",
        run.stderr
    );
}

//! Errors that help: each exits non-zero with `error:` and `hint:` lines (issue #2 point 7).

use crate::support::*;

fn assert_error(run: &Run, code: i32, error: &str, hint: &str) {
    assert_eq!(run.code, code, "exit code\nstderr:\n{}", run.stderr);
    assert!(run.stderr.contains("error: "), "{}", run.stderr);
    assert!(
        run.stderr.contains(error),
        "expected `{error}` in:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("hint: {hint}")) || run.stderr.contains(hint),
        "expected hint `{hint}` in:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn missing_ml_toml_suggests_init() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .args(["run"])
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_error(&run, 1, "ml.toml", "mlbuild init");
}

#[test]
fn unknown_key_names_line_and_column_and_suggests() {
    let p = Project::from_fixture("prostate");
    p.edit("threshold = 0.70", "treshold = 0.70");
    let run = p.mlbuild_offline(&["run"]);
    assert_error(
        &run,
        1,
        "ml.toml:8:1: unknown key `define.treshold`",
        "did you mean `threshold`?",
    );
}

#[test]
fn wrong_type_names_the_key_and_what_was_expected() {
    let p = Project::from_fixture("prostate");
    p.edit("max_models = 2", "max_models = \"two\"");
    let run = p.mlbuild_offline(&["run"]);
    assert_error(
        &run,
        1,
        "`execute.max_models` expects a non-negative integer, found a string",
        "",
    );
    assert!(run.stderr.contains("ml.toml:24:14"), "{}", run.stderr);
}

#[test]
fn absent_target_column_lists_the_columns() {
    let p = Project::from_fixture("prostate");
    p.edit("target = \"CAPSULE\"", "target = \"CAPSUEL\"");
    let run = p.mlbuild_offline(&["run"]);
    assert_error(
        &run,
        1,
        "target column `CAPSUEL` is not in the data",
        "did you mean `CAPSULE`?",
    );
}

#[test]
fn missing_java_says_how_to_get_one() {
    let p = Project::from_fixture("prostate");
    let mut cmd = p.command(&["run"]);
    cmd.env("PATH", "/nonexistent").env_remove("JAVA_HOME");
    let run = Run::from(cmd.output().unwrap());
    assert_error(&run, 1, "java", "MLBUILD_H2O_URL");
    // Everything before execute completed and is cached for next time.
    assert!(run.stderr.contains("confirm"), "{}", run.stderr);
}

#[test]
fn bad_csv_names_file_and_line() {
    let p = Project::from_fixture("prostate");
    let mut text = p.read("data/prostate.csv");
    text.push_str("999,1,65\n");
    p.write("data/prostate.csv", &text);
    let run = p.mlbuild_offline(&["run"]);
    assert_error(&run, 1, "line 382", "fields");
}

#[test]
fn usage_errors_exit_2() {
    // Not a step name at all: clap refuses it.
    let run = Run::from(
        std::process::Command::new(BIN)
            .args(["run", "--force", "no such step"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    // A name, but of no step of this project: the project's steps decide, still a usage error.
    let p = Project::from_fixture("prostate");
    let run = p.mlbuild_offline(&["run", "--force", "nosuchstep"]);
    assert_error(
        &run,
        2,
        "there is no step `nosuchstep`",
        "the steps are define",
    );
}

#[test]
fn unknown_drop_column_suggests() {
    let p = Project::from_fixture("prostate");
    p.edit(
        "types = { RACE = \"enum\" }",
        "types = { RACE = \"enum\" }\ndrop = [\"VOLUME\"]",
    );
    let run = p.mlbuild_offline(&["run"]);
    assert_error(
        &run,
        1,
        "`prepare.drop` names column `VOLUME`",
        "did you mean `VOL`?",
    );
}

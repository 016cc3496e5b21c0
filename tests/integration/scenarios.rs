//! Edit scenarios: after each edit, exactly which steps run (DESIGN.md §5.1, issue #2 point 5).

use crate::support::*;

#[test]
fn nothing_changed_replays_all_eight_without_h2o() {
    let p = trained().clone_trained();
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&run, &[]);
    let done = run.done();
    assert_eq!(done["status"], "ok");
    assert_eq!(done["h2o_started"], false);
    assert!(done["version"].as_str().unwrap().starts_with('v'));
    assert_eq!(done["model"].as_str().unwrap().len(), 64);
    assert_eq!(done["tags"]["staging"], done["version"]);
    assert!(p.file("models/staging.zip").is_file());
    for e in run.events().iter().filter(|e| e["event"] == "step") {
        assert_eq!(e["key"].as_str().unwrap().len(), 64);
        assert_eq!(e["reason"], "up to date");
    }
}

#[test]
fn comment_and_whitespace_edits_change_nothing() {
    let p = trained().clone_trained();
    let text = p.read("ml.toml");
    p.write(
        "ml.toml",
        &format!(
            "# a new comment\n\n{}\n\n   # trailing\n",
            text.replace("max_models = 2", "max_models   =   2   # spaced")
        ),
    );
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&run, &[]);
    assert_eq!(run.done()["h2o_started"], false);
}

#[test]
fn spelling_out_a_default_changes_nothing() {
    let p = trained().clone_trained();
    p.edit(
        "[modify]",
        "[monitor]\nbaseline = \"production\"\nmin_improvement = 0.0\n\n[modify]",
    );
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&run, &[]);
}

#[test]
fn loosened_threshold_reruns_monitor_only_without_h2o() {
    let p = trained().clone_trained();
    p.edit("threshold = 0.70", "threshold = 0.60");
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    // conclude sees the same chosen model (early cutoff), so it stays cached.
    assert_ran(&run, &["monitor", "modify"]);
    assert_eq!(run.done()["h2o_started"], false);
    assert!(
        run.step("monitor")["reason"]
            .as_str()
            .unwrap()
            .contains("threshold: 0.7 → 0.6"),
        "{}",
        run.stdout
    );
}

#[test]
fn touching_the_data_file_reruns_nothing() {
    let p = trained().clone_trained();
    let data = p.file("data/prostate.csv");
    let text = std::fs::read(&data).unwrap();
    std::fs::write(&data, text).unwrap(); // same bytes, new mtime
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&run, &[]);
}

#[test]
fn changed_data_reruns_locate_onward() {
    let p = trained().clone_trained();
    let text = p.read("data/prostate.csv");
    // Drop the last 30 rows: a real content change.
    let lines: Vec<&str> = text.lines().collect();
    p.write(
        "data/prostate.csv",
        &(lines[..lines.len() - 30].join("\n") + "\n"),
    );
    let run = p.mlbuild(&["run", "--json"]).ok();
    assert_ran(
        &run,
        &[
            "locate", "prepare", "confirm", "execute", "monitor", "modify", "conclude",
        ],
    );
    assert_eq!(run.done()["h2o_started"], true);
    assert!(
        run.step("locate")["reason"]
            .as_str()
            .unwrap()
            .contains("source"),
        "{}",
        run.stdout
    );
    // A new model version, and staging moved to it.
    let versions: serde_json::Value =
        serde_json::from_str(&p.mlbuild(&["versions", "--json"]).ok().stdout).unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 2);
}

#[test]
fn max_models_change_reruns_execute_onward() {
    let p = trained().clone_trained();
    p.edit("max_models = 2", "max_models = 3");
    let run = p.mlbuild(&["run", "--json"]).ok();
    let statuses = run.statuses();
    for step in ["define", "locate", "prepare", "confirm"] {
        assert_eq!(statuses[step], "cached", "{statuses:?}");
    }
    assert_eq!(statuses["execute"], "ran");
    assert!(
        run.step("execute")["reason"]
            .as_str()
            .unwrap()
            .contains("execute.max_models: 2 → 3"),
        "{}",
        run.stdout
    );
    // Downstream reruns exactly when execute's outputs changed (early cutoff on the canonical digest).
    let same_model = statuses["monitor"] == "cached";
    for step in ["monitor", "modify", "conclude"] {
        assert_eq!(statuses[step] == "cached", same_model, "{statuses:?}");
    }
}

#[test]
fn force_execute_reruns_execute_onward() {
    let p = trained().clone_trained();
    let run = p.mlbuild(&["run", "--json", "--force", "execute"]).ok();
    assert_ran(&run, &["execute", "monitor", "modify", "conclude"]);
    assert_eq!(run.step("execute")["reason"], "forced with --force");
    // Retraining with the same seed reproduces the model: same canonical digest, same version.
    let versions: serde_json::Value =
        serde_json::from_str(&p.mlbuild(&["versions", "--json"]).ok().stdout).unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
}

#[test]
fn set_override_enters_keys_like_an_edit_and_keeps_the_lock() {
    let p = trained().clone_trained();
    let lock = p.read("ml.lock");
    let run = p
        .mlbuild_offline(&["run", "--json", "--set", "define.threshold=0.65"])
        .ok();
    assert_ran(&run, &["monitor", "modify"]);
    assert_eq!(p.read("ml.lock"), lock, "--set does not rewrite ml.lock");
    let bad = p.mlbuild_offline(&["run", "--set", "execute.max_modles=3"]);
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("did you mean `max_models`"),
        "{}",
        bad.stderr
    );
}

#[test]
fn escalation_then_loosening_runs_monitor_onward_without_h2o() {
    let p = Project::from_fixture("prostate");
    p.edit("threshold = 0.70", "threshold = 0.999");
    p.edit("max_attempts = 2", "max_attempts = 1");
    let run = p.mlbuild(&["run", "--json"]);
    assert_eq!(run.code, 3, "escalated exits 3:\n{}", run.stderr);
    assert_eq!(run.done()["status"], "escalated");
    assert_eq!(run.step("monitor")["verdict"], "fail");
    assert_eq!(run.step("modify")["verdict"], "fail");
    assert!(
        run.stderr
            .contains("escalated: the threshold was not met after 1 attempt"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    // An escalated run registers nothing and moves no tag.
    assert_eq!(p.mlbuild(&["versions", "--json"]).ok().stdout.trim(), "[]");
    // The verdict is cached: the same run replays the escalation without H2O.
    let again = p.mlbuild_offline(&["run", "--json"]);
    assert_eq!(again.code, 3);
    assert!(
        again.statuses().values().all(|s| s == "cached"),
        "{:?}",
        again.statuses()
    );

    p.edit("threshold = 0.999", "threshold = 0.6");
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&run, &["monitor", "modify", "conclude"]);
    assert_eq!(run.done()["h2o_started"], false);
    assert!(p.file("models/staging.zip").is_file());
}

#[test]
fn feedback_attempt_widens_params_and_replays() {
    let p = Project::from_fixture("prostate");
    p.edit("threshold = 0.70", "threshold = 0.999");
    let run = p.mlbuild(&["run", "--json"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let statuses = run.statuses();
    assert_eq!(statuses["execute#2"], "ran", "{statuses:?}");
    // monitor#2 replays attempt 1's verdict when the wider search picked the same model.
    assert!(statuses.contains_key("monitor#2"), "{statuses:?}");
    assert!(
        run.stderr.contains("max_models 4"),
        "attempt 2 doubled max_models:\n{}",
        run.stderr
    );
    let again = p.mlbuild_offline(&["run", "--json"]);
    assert_eq!(again.code, 3);
    assert_eq!(again.statuses()["execute#2"], "cached");
}

#[test]
fn run_until_a_step_stops_there() {
    let p = Project::from_fixture("prostate");
    let run = p.mlbuild_offline(&["run", "confirm", "--json"]).ok();
    assert_eq!(run.ran(), vec!["define", "locate", "prepare", "confirm"]);
    assert_eq!(run.done()["h2o_started"], false);
    assert!(!p.file("ml.lock").exists(), "a partial run writes no lock");
}

#[test]
fn confirm_gate_fails_with_exit_4_naming_the_column() {
    let p = Project::from_fixture("prostate");
    // Blank out most of VOL.
    let text = p.read("data/prostate.csv");
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let mut fields: Vec<&str> = line.split(',').collect();
        if i > 0 && i % 2 == 0 {
            fields[7] = "";
        }
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    p.write("data/prostate.csv", &out);
    let run = p.mlbuild_offline(&["run", "--json"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(run.step("confirm")["verdict"], "fail");
    assert!(run.stderr.contains("column `VOL`"), "{}", run.stderr);
    assert!(run.stderr.contains("max_null_fraction"), "{}", run.stderr);
    assert_eq!(run.done()["status"], "failed");
    assert!(
        !run.statuses().contains_key("execute"),
        "nothing trains after a failed gate"
    );
}

#[test]
fn frozen_passes_when_unchanged_and_fails_when_the_lock_would_change() {
    let p = trained().clone_trained();
    p.mlbuild_offline(&["run", "--frozen", "--json"]).ok();
    p.edit("max_models = 2", "max_models = 5");
    let run = p.mlbuild_offline(&["run", "--frozen"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("`ml.lock` is out of date"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("execute.max_models: 2 → 5"),
        "{}",
        run.stderr
    );
}

#[test]
fn lock_is_byte_identical_after_a_rerun() {
    let p = trained().clone_trained();
    let before = p.read("ml.lock");
    assert!(before.contains("\"canonical\"") || before.contains("\"mojo\""));
    p.mlbuild(&["run", "--force", "execute"]).ok();
    assert_eq!(
        p.read("ml.lock"),
        before,
        "retraining the same inputs writes the same lock"
    );
}

#[test]
fn status_reports_fresh_and_stale_without_h2o() {
    let p = trained().clone_trained();
    let out = p.mlbuild_offline(&["status", "--json"]).ok();
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "fresh"),
        "{rows}"
    );
    p.edit("seed = 7", "seed = 8");
    let out = p.mlbuild_offline(&["status", "--json"]).ok();
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let exec = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["step"] == "execute")
        .unwrap();
    assert_eq!(exec["state"], "stale");
    assert!(
        exec["reason"]
            .as_str()
            .unwrap()
            .contains("execute.seed: 7 → 8"),
        "{rows}"
    );
}

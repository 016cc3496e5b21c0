//! The precision table (issue #3 point 7, `docs/precision.md`): for each edit to the fixture
//! project, the EXACT set of steps that rerun. Every row of the doc's table is a test here or in
//! `scenarios.rs`. Tests that start from the trained fixture and must not train use
//! `mlbuild_offline`, which proves the run needed no H2O.
//!
//! The last four tests were found as bugs by this table and fixed (see the doc's "Fixed
//! imprecisions").

use serde_json::Value;

use crate::support::*;

/// Exactly `expected` ran and every other step of the eight replayed from the cache.
/// The reason a step gave in the run's events.
fn reason(run: &Run, step: &str) -> String {
    run.step(step)["reason"].as_str().unwrap_or("").to_string()
}

fn assert_reason(run: &Run, step: &str, needle: &str) {
    let r = reason(run, step);
    assert!(
        r.contains(needle),
        "{step}'s reason `{r}` should mention `{needle}`"
    );
}

fn lock_outputs(p: &Project, step: &str) -> Value {
    locked_entry(p, step)["outputs"].clone()
}

fn json_of(run: Run) -> Value {
    serde_json::from_str(&run.ok().stdout).unwrap()
}

fn versions(p: &Project) -> usize {
    json_of(p.mlbuild_offline(&["versions", "--json"]))
        .as_array()
        .unwrap()
        .len()
}

fn tags(p: &Project) -> Value {
    json_of(p.mlbuild_offline(&["tags", "--json"]))
}

/// Appends a column to the data file; `value(i)` gives row `i`'s cell (0-based, header excluded).
fn add_column(p: &Project, name: &str, value: impl Fn(usize) -> String) {
    let text = p.read("data/prostate.csv");
    let mut lines = text.lines();
    let mut out = format!("{},{name}\n", lines.next().unwrap());
    for (i, line) in lines.enumerate() {
        out.push_str(&format!("{line},{}\n", value(i)));
    }
    p.write("data/prostate.csv", &out);
}

// ---- define ----

#[test]
fn declaring_the_inferred_problem_reruns_define_only() {
    let p = trained().clone_trained();
    p.edit("metric = \"auc\"", "problem = \"binary\"\nmetric = \"auc\"");
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    // define records "declared" instead of "inferred"; the resolved problem is the same.
    assert_ran(&run, &["define"]);
    assert_reason(&run, "define", "define.problem: null → binary");
    assert_eq!(run.done()["h2o_started"], false);
}

#[test]
fn omitting_the_default_metric_reruns_define_only() {
    let p = trained().clone_trained();
    p.edit("metric = \"auc\"\n", "");
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    // define's key holds the config as written (the default depends on the problem define
    // infers); it resolves to auc again, so monitor's and execute's keys are unchanged.
    assert_ran(&run, &["define"]);
    assert_reason(&run, "define", "define.metric: auc → null");
}

#[test]
fn changed_metric_retrains_with_the_new_sort_metric() {
    let p = trained().clone_trained();
    p.edit("metric = \"auc\"", "metric = \"logloss\"");
    p.edit("threshold = 0.70", "threshold = 0.65"); // logloss: lower is better
    let run = p.mlbuild(&["run", "--json"]).ok();
    // execute.sort_metric defaults to define.metric, so AutoML ranks by logloss now; it picks
    // the same GLM, so conclude (keyed by the model) replays, while monitor judges the new metric.
    assert_ran(&run, &["define", "execute", "monitor", "modify"]);
    assert_reason(&run, "execute", "problem.sort_metric: auc → logloss");
    assert_reason(&run, "monitor", "threshold");
    assert_eq!(run.step("monitor")["verdict"], "pass");
    assert_eq!(run.done()["h2o_started"], true);
    assert_eq!(versions(&p), 1);
}

#[test]
fn changed_metric_with_a_pinned_sort_metric_does_not_retrain() {
    let p = trained().clone_trained();
    p.edit(
        "include_algos = [\"GLM\", \"GBM\"]",
        "include_algos = [\"GLM\", \"GBM\"]\nsort_metric = \"auc\"",
    );
    // Setup (spelling out the default sort metric retrains today, see the BUG test below).
    p.mlbuild(&["run", "--json"]).ok();
    p.edit("\nmetric = \"auc\"", "\nmetric = \"logloss\"");
    p.edit("threshold = 0.70", "threshold = 0.65");
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&run, &["define", "monitor", "modify"]);
    assert_reason(&run, "monitor", "threshold");
    assert_eq!(run.done()["h2o_started"], false);
}

#[test]
fn ignoring_another_column_retrains_but_keeps_the_prepared_data() {
    let p = trained().clone_trained();
    p.edit("ignore = [\"ID\"]", "ignore = [\"ID\", \"RACE\"]");
    let run = p.mlbuild(&["run", "--json"]).ok();
    // `ignore` is part of the problem spec execute sees, not of prepare's key: the prepared
    // data (and so confirm's gate) stays, AutoML trains without RACE, a new model follows.
    assert_ran(
        &run,
        &["define", "execute", "monitor", "modify", "conclude"],
    );
    assert_reason(&run, "define", "define.ignore");
    assert_reason(&run, "execute", "problem.ignore");
    assert_eq!(run.done()["h2o_started"], true);
    assert_eq!(versions(&p), 2);
}

#[test]
fn misspelt_ignore_fails_warm_as_it_does_cold() {
    // Cold, the run fails in prepare: "`define.ignore` names column `IDX`, which is not in the data".
    let cold = Project::from_fixture("prostate");
    cold.edit("ignore = [\"ID\"]", "ignore = [\"IDX\"]");
    let run = cold.mlbuild_offline(&["run", "--json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("`IDX`"), "{}", run.stderr);

    // Warm, the same ml.toml must fail the same way, before any training.
    let p = trained().clone_trained();
    p.edit("ignore = [\"ID\"]", "ignore = [\"IDX\"]");
    let run = p.mlbuild_offline(&["run", "--json"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("`IDX`"), "{}", run.stderr);
    assert!(run.stderr.contains("did you mean `ID`"), "{}", run.stderr);
    assert_eq!(versions(&p), 1, "nothing was registered");
}

#[test]
fn reordering_ignore_does_not_retrain() {
    let p = trained().clone_trained();
    p.edit("ignore = [\"ID\"]", "ignore = [\"ID\", \"RACE\"]");
    p.mlbuild(&["run", "--json"]).ok();
    p.edit("ignore = [\"ID\", \"RACE\"]", "ignore = [\"RACE\", \"ID\"]");
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&run, &[]);
}

// ---- locate ----

#[test]
fn same_bytes_at_a_new_path_rerun_locate_only() {
    let p = trained().clone_trained();
    std::fs::copy(p.file("data/prostate.csv"), p.file("data/copy.csv")).unwrap();
    p.edit("path = \"data/prostate.csv\"", "path = \"data/copy.csv\"");
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    // locate.path is in locate's key; the snapshot is the same blob, so prepare's key is too.
    assert_ran(&run, &["locate"]);
    assert_reason(
        &run,
        "locate",
        "locate.path: data/prostate.csv → data/copy.csv",
    );
}

#[test]
fn new_column_in_the_data_reruns_all_eight() {
    let p = trained().clone_trained();
    add_column(&p, "EXTRA", |i| (i % 7).to_string());
    let run = p.mlbuild(&["run", "--json"]).ok();
    // define sees the column names; the prepared data gains the column; AutoML may use it.
    assert_ran(&run, &ALL_STEPS);
    assert_reason(&run, "define", "columns");
    assert_reason(&run, "locate", "source");
    assert_eq!(run.done()["h2o_started"], true);
    assert_eq!(versions(&p), 2);
}

#[test]
fn new_column_that_prepare_drops_stops_at_prepare() {
    let p = trained().clone_trained();
    let prepared = lock_outputs(&p, "prepare");
    add_column(&p, "EXTRA", |i| (i % 7).to_string());
    p.edit("holdout = 0.25", "drop = [\"EXTRA\"]\nholdout = 0.25");
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    // prepare's outputs (train, holdout, schema) are byte-identical to before: early cutoff.
    assert_ran(&run, &["define", "locate", "prepare"]);
    assert_eq!(lock_outputs(&p, "prepare"), prepared);
    assert_eq!(run.done()["h2o_started"], false);
}

#[test]
fn new_values_in_an_ignored_column_retrain_the_same_model() {
    let p = trained().clone_trained();
    // Renumber ID (ignored): new data, new prepared data, but AutoML never looks at ID.
    let text = p.read("data/prostate.csv");
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for line in lines {
        let (id, rest) = line.split_once(',').unwrap();
        out.push_str(&format!("{},{rest}\n", id.parse::<u32>().unwrap() + 1000));
    }
    p.write("data/prostate.csv", &out);
    let run = p.mlbuild(&["run", "--json"]).ok();
    // Same canonical MOJO and predictions: monitor onward replays (early cutoff after execute).
    assert_ran(&run, &["locate", "prepare", "confirm", "execute"]);
    assert_eq!(run.done()["h2o_started"], true);
    assert_eq!(versions(&p), 1);
}

// ---- prepare ----

#[test]
fn prepare_seed_change_resplits_and_retrains() {
    let p = trained().clone_trained();
    p.edit("seed = 42", "seed = 43");
    let run = p.mlbuild(&["run", "--json"]).ok();
    // A new split: new train and holdout rows, a new model, a new version.
    assert_ran(
        &run,
        &[
            "prepare", "confirm", "execute", "monitor", "modify", "conclude",
        ],
    );
    assert_reason(&run, "prepare", "prepare.seed: 42 → 43");
    assert_reason(&run, "execute", "prepared.train");
    assert_eq!(run.done()["h2o_started"], true);
    assert_eq!(versions(&p), 2);
    assert_eq!(run.done()["tags"]["staging"], run.done()["version"]);
}

#[test]
fn prepare_holdout_change_resplits_and_retrains() {
    let p = trained().clone_trained();
    p.edit("holdout = 0.25", "holdout = 0.3");
    let run = p.mlbuild(&["run", "--json"]).ok();
    assert_ran(
        &run,
        &[
            "prepare", "confirm", "execute", "monitor", "modify", "conclude",
        ],
    );
    assert_reason(&run, "prepare", "prepare.holdout: 0.25 → 0.3");
    assert_eq!(run.done()["h2o_started"], true);
    assert_eq!(versions(&p), 2);
}

#[test]
fn prepare_edit_with_identical_output_does_not_retrain() {
    // Issue #3: "a prepare edit that yields identical prepared data does not retrain".
    let p = trained().clone_trained();
    let prepared = lock_outputs(&p, "prepare");
    // VOL is numeric already: declaring it changes prepare's key, not its outputs.
    p.edit(
        "types = { RACE = \"enum\" }",
        "types = { RACE = \"enum\", VOL = \"numeric\" }",
    );
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&run, &["prepare"]);
    assert_reason(&run, "prepare", "prepare.types.VOL: (none) → numeric");
    assert_eq!(
        lock_outputs(&p, "prepare"),
        prepared,
        "byte-identical outputs"
    );
    assert_eq!(run.done()["h2o_started"], false);
}

// ---- confirm ----

#[test]
fn confirm_min_rows_change_reruns_confirm_only() {
    let p = trained().clone_trained();
    p.edit("min_rows = 100", "min_rows = 50");
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    // execute's key holds confirm's verdict only: still "pass", so nothing retrains.
    assert_ran(&run, &["confirm"]);
    assert_eq!(run.step("confirm")["verdict"], "pass");
    assert_reason(&run, "confirm", "confirm.min_rows: 100 → 50");
    assert_eq!(run.done()["h2o_started"], false);
}

#[test]
fn confirm_max_null_fraction_change_reruns_confirm_only() {
    let p = trained().clone_trained();
    p.edit("max_null_fraction = 0.3", "max_null_fraction = 0.5");
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&run, &["confirm"]);
    assert_eq!(run.step("confirm")["verdict"], "pass");
    assert_reason(&run, "confirm", "confirm.max_null_fraction: 0.3 → 0.5");
}

// ---- execute ----

#[test]
fn execute_seed_change_retrains_the_same_model() {
    let p = trained().clone_trained();
    p.edit("seed = 7", "seed = 8");
    let run = p.mlbuild(&["run", "--json"]).ok();
    // The leader is the GLM, whose fit (no cross-validation) does not use the seed: the same
    // canonical MOJO and predictions, so monitor onward replays (early cutoff after execute).
    assert_ran(&run, &["execute"]);
    assert_reason(&run, "execute", "execute.seed: 7 → 8");
    assert_eq!(run.done()["h2o_started"], true);
    assert_eq!(versions(&p), 1);
}

#[test]
fn execute_nfolds_change_retrains_a_new_model() {
    let p = trained().clone_trained();
    p.edit("nfolds = 0", "nfolds = 3");
    let run = p.mlbuild(&["run", "--json"]).ok();
    // Cross-validation changes the GLM's lambda search: a new model and version.
    assert_ran(&run, &["execute", "monitor", "modify", "conclude"]);
    assert_reason(&run, "execute", "execute.nfolds: 0 → 3");
    assert_eq!(versions(&p), 2);
}

#[test]
fn algorithm_names_in_another_case_change_nothing() {
    let p = trained().clone_trained();
    p.edit(
        "include_algos = [\"GLM\", \"GBM\"]",
        "include_algos = [\"glm\", \"gbm\"]",
    );
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&run, &[]);
}

#[test]
fn spelling_out_the_default_sort_metric_changes_nothing() {
    let p = trained().clone_trained();
    // The default of execute.sort_metric is define.metric, "auc" here.
    p.edit(
        "include_algos = [\"GLM\", \"GBM\"]",
        "include_algos = [\"GLM\", \"GBM\"]\nsort_metric = \"auc\"",
    );
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&run, &[]);
}

#[test]
fn reordering_include_algos_changes_nothing() {
    let p = trained().clone_trained();
    p.edit(
        "include_algos = [\"GLM\", \"GBM\"]",
        "include_algos = [\"GBM\", \"GLM\"]",
    );
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&run, &[]);
}

// ---- monitor, modify, conclude ----

#[test]
fn monitor_min_improvement_change_reruns_monitor_and_modify() {
    let p = trained().clone_trained();
    p.edit("[modify]", "[monitor]\nmin_improvement = 0.01\n\n[modify]");
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    // modify's key holds each attempt's monitor key, so it re-decides (same decision); conclude
    // is keyed by the model, which did not change.
    assert_ran(&run, &["monitor", "modify"]);
    assert_reason(&run, "monitor", "monitor.min_improvement: 0.0 → 0.01");
    assert_eq!(run.done()["h2o_started"], false);
}

#[test]
fn promoting_a_baseline_reruns_monitor_and_modify() {
    let p = trained().clone_trained();
    let version = tags(&p)["staging"].as_str().unwrap().to_string();
    p.mlbuild_offline(&["promote", "production", &version]).ok();
    let status = json_of(p.mlbuild_offline(&["status", "--json"]));
    let monitor = status
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["step"] == "monitor")
        .unwrap()
        .clone();
    assert_eq!(monitor["state"], "stale", "{status}");
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    // The baseline's canonical digest enters monitor's key, and production's training rows
    // enter confirm's (its drift reference); execute sees only confirm's verdict.
    assert_ran(&run, &["confirm", "monitor", "modify"]);
    assert_reason(&run, "confirm", "baseline");
    assert_reason(&run, "monitor", "baseline");
    let after = tags(&p);
    assert_eq!(after["production"], version.as_str());
    assert_eq!(after["staging"], version.as_str());
}

#[test]
fn modify_max_attempts_change_reruns_modify_only() {
    let p = trained().clone_trained();
    p.edit("max_attempts = 2", "max_attempts = 3");
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    // Attempt 1 passes, so no attempt is added; conclude's model is the same.
    assert_ran(&run, &["modify"]);
    assert_eq!(run.step("modify")["verdict"], "pass");
    assert_reason(&run, "modify", "modify.max_attempts: 2 → 3");
    assert!(!run.statuses().contains_key("execute#2"));
}

#[test]
fn conclude_promote_change_reruns_conclude_only_and_moves_no_tag() {
    let p = trained().clone_trained();
    let before = tags(&p);
    p.edit(
        "promote = [\"staging\"]",
        "promote = [\"staging\", \"candidate\"]",
    );
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&run, &["conclude"]);
    assert_reason(&run, "conclude", "conclude.promote");
    // DESIGN §5.3: conclude moves tags only when it registers a version new to the registry.
    // The model is already registered, so `candidate` is not set (use `mlbuild promote`).
    assert_eq!(tags(&p), before);
    assert!(!p.file("models/candidate.zip").exists());
    assert_eq!(versions(&p), 1);
}

#[test]
fn project_name_change_changes_nothing() {
    let p = trained().clone_trained();
    p.edit("name = \"prostate-test\"", "name = \"renamed\"");
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    // project.name is in no key (it is only printed in the model card of a new version).
    assert_ran(&run, &[]);
}

// ---- commands ----

#[test]
fn force_monitor_reruns_monitor_onward_without_h2o() {
    let p = trained().clone_trained();
    let run = p
        .mlbuild_offline(&["run", "--json", "--force", "monitor"])
        .ok();
    // --force STEP reruns the step and everything downstream, whatever their keys say.
    assert_ran(&run, &["monitor", "modify", "conclude"]);
    for step in ["monitor", "modify", "conclude"] {
        assert_eq!(reason(&run, step), "forced with --force");
    }
    assert_eq!(run.done()["h2o_started"], false);
    assert_eq!(versions(&p), 1, "the same model keeps its version");
}

#[test]
fn status_after_an_edit_names_the_stale_step_without_running_it() {
    let p = trained().clone_trained();
    let lock = p.read("ml.lock");
    p.edit("min_rows = 100", "min_rows = 50");
    let rows = json_of(p.mlbuild_offline(&["status", "--json"]));
    let rows = rows.as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["step"].as_str().unwrap()).collect();
    assert_eq!(names, ALL_STEPS, "every step, in pipeline order");
    for r in &rows[..3] {
        assert_eq!(r["state"], "fresh", "{r}");
    }
    assert_eq!(rows[3]["state"], "stale");
    assert!(
        rows[3]["reason"]
            .as_str()
            .unwrap()
            .contains("confirm.min_rows: 100 → 50"),
        "{}",
        rows[3]
    );
    // status cannot key a step whose upstream is stale without running it: an upper bound.
    for r in &rows[4..] {
        assert_eq!(r["state"], "stale", "{r}");
        assert_eq!(r["reason"], "upstream step `confirm` is stale");
    }
    assert_eq!(p.read("ml.lock"), lock, "status writes nothing");
    // The run itself then reruns confirm only (same verdict).
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_ran(&run, &["confirm"]);
}

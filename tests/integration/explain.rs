//! `mlbuild explain STEP`: one test per reason of the closed set (issue #3 point 3).

use serde_json::Value;

use crate::support::*;

fn explain(p: &Project, args: &[&str]) -> Value {
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    all.push("--json");
    serde_json::from_str(&p.mlbuild_offline(&all).ok().stdout).unwrap()
}

fn locked_key(p: &Project, step: &str) -> String {
    locked_entry(p, step)["key"].as_str().unwrap().to_string()
}

#[test]
fn up_to_date() {
    let p = trained().clone_trained();
    let doc = explain(&p, &["execute"]);
    assert_eq!(doc["state"], "fresh");
    assert_eq!(doc["reason"]["kind"], "cached");
}

#[test]
fn config_key_changed_names_old_and_new() {
    let p = trained().clone_trained();
    p.edit("max_models = 2", "max_models = 3");
    let doc = explain(&p, &["execute"]);
    assert_eq!(doc["state"], "stale");
    assert_eq!(doc["reason"]["kind"], "config_changed");
    let change = &doc["reason"]["changes"][0];
    assert_eq!(
        (
            change["field"].as_str(),
            change["old"].as_str(),
            change["new"].as_str()
        ),
        (Some("execute.max_models"), Some("2"), Some("3"))
    );
    assert_eq!(doc["message"], "config changed: execute.max_models: 2 → 3");
    // Human form.
    let human = p.mlbuild_offline(&["explain", "execute"]).ok();
    assert_eq!(
        human.stdout.trim(),
        "execute is stale: config changed: execute.max_models: 2 → 3"
    );
}

#[test]
fn data_snapshot_changed_gives_digests_and_rows() {
    let p = trained().clone_trained();
    let text = p.read("data/prostate.csv");
    let lines: Vec<&str> = text.lines().collect();
    p.write(
        "data/prostate.csv",
        &(lines[..lines.len() - 30].join("\n") + "\n"),
    );
    let doc = explain(&p, &["locate"]);
    assert_eq!(doc["reason"]["kind"], "data_changed");
    assert_eq!(doc["reason"]["old_rows"], 380);
    assert_eq!(doc["reason"]["new_rows"], 350);
    assert_eq!(doc["reason"]["old"].as_str().unwrap().len(), 64);
    assert_ne!(doc["reason"]["old"], doc["reason"]["new"]);
}

#[test]
fn upstream_output_changed_names_the_step() {
    let p = trained().clone_trained();
    p.edit("seed = 42", "seed = 43");
    p.mlbuild_offline(&["run", "prepare"]).ok();
    let doc = explain(&p, &["confirm"]);
    assert_eq!(doc["reason"]["kind"], "upstream_changed", "{doc}");
    assert_eq!(doc["reason"]["step"], "prepare");
    assert!(
        doc["reason"]["changes"][0]["field"]
            .as_str()
            .unwrap()
            .starts_with("prepared."),
        "{doc}"
    );
}

#[test]
fn engine_changed_names_version_and_nodes() {
    let p = trained().clone_trained();
    let doc = explain(&p, &["execute", "--set", "h2o.version=3.46.0.12"]);
    assert_eq!(doc["reason"]["kind"], "engine_changed");
    assert_eq!(doc["reason"]["changes"][0]["field"], "engine.version");
    let doc = explain(&p, &["execute", "--set", "h2o.nodes=2"]);
    assert_eq!(doc["reason"]["kind"], "engine_changed");
    assert_eq!(doc["reason"]["changes"][0]["field"], "engine.nodes");
}

#[test]
fn forced() {
    let p = trained().clone_trained();
    let doc = explain(&p, &["monitor", "--force", "monitor"]);
    assert_eq!(doc["reason"]["kind"], "forced");
}

#[test]
fn never_run() {
    let p = Project::from_fixture("prostate");
    let doc = explain(&p, &["define"]);
    assert_eq!(doc["reason"]["kind"], "never_run");
    let doc = explain(&p, &["execute"]);
    assert_eq!(doc["reason"]["kind"], "upstream_stale");
    assert_eq!(doc["upstream"]["step"], "define");
    assert_eq!(doc["upstream"]["reason"]["kind"], "never_run");
}

#[test]
fn cache_entry_missing_corrupt_or_output_missing() {
    let p = trained().clone_trained();
    let key = locked_key(&p, "monitor");
    let entry = p.file(&format!("cache/v1/ac/{key}.json"));
    let saved = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, "{not json").unwrap();
    assert_eq!(
        explain(&p, &["monitor"])["reason"]["kind"],
        "cache_entry_corrupt"
    );
    std::fs::remove_file(&entry).unwrap();
    assert_eq!(
        explain(&p, &["monitor"])["reason"]["kind"],
        "cache_entry_missing"
    );
    std::fs::write(&entry, &saved).unwrap();
    let report = serde_json::from_slice::<Value>(&saved).unwrap()["outputs"]["report"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(p.file(&format!("cache/v1/cas/{}/{report}", &report[..2]))).unwrap();
    let doc = explain(&p, &["monitor"]);
    assert_eq!(doc["reason"]["kind"], "output_missing");
    assert_eq!(doc["reason"]["digest"], report.as_str());
    // The run repairs it: monitor reruns, nothing else.
    let run = p.mlbuild_offline(&["run", "--json"]).ok();
    assert_eq!(run.ran(), vec!["monitor"]);
}

#[test]
fn baseline_changed_when_production_moves() {
    let p = trained().clone_trained();
    let versions: Value =
        serde_json::from_str(&p.mlbuild_offline(&["versions", "--json"]).ok().stdout).unwrap();
    let v = versions[0]["id"].as_str().unwrap();
    p.mlbuild_offline(&["promote", "production", v]).ok();
    // confirm is the first step to see it (production's training rows are its drift reference).
    let doc = explain(&p, &["confirm"]);
    assert_eq!(doc["reason"]["kind"], "baseline_changed", "{doc}");
    assert_eq!(doc["reason"]["old"], Value::Null);
}

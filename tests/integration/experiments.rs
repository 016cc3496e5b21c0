//! `mlbuild exp`: a grid of `--set` values, every point an ordinary run that registers its
//! version and moves no tag; shared steps run once; a rerun of the grid starts no engine.

use serde_json::Value;

use crate::support::{trained, Project, Run};

fn json_lines(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn tags(p: &Project) -> Value {
    serde_json::from_str(&p.mlbuild_offline(&["tags", "--json"]).ok().stdout).unwrap()
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: the grid, its rerun, the ranking and the promotion"
)]
fn a_grid_runs_each_point_once_moves_no_tag_and_reruns_for_free() {
    let p = trained().clone_trained();
    // A deploy hook that would leave a file: no point may fire it.
    p.edit(
        "promote = [\"staging\"]",
        "promote = [\"staging\"]\ndeploy = { command = \"touch hook-fired\" }",
    );
    p.mlbuild_offline(&["run"]).ok();
    let lock_before = p.read("ml.lock");
    let tags_before = tags(&p);
    // `prepare.holdout=0.25` is the file's own value: one value, so not a differing key.
    let grid = [
        "exp",
        "run",
        "--set",
        "execute.max_models=1,2",
        "--set",
        "prepare.seed=1,2",
        "--set",
        "prepare.holdout=0.25",
        "--json",
    ];
    let run = p.mlbuild(&grid).ok();
    let events = json_lines(&run);
    let ran = |step: &str| {
        events
            .iter()
            .filter(|e| e["event"] == "step" && e["step"] == step && e["status"] == "ran")
            .count()
    };
    assert_eq!(ran("prepare"), 2, "one prepare per seed: {}", run.stdout);
    assert_eq!(ran("execute"), 4, "{}", run.stdout);
    let done: Vec<&Value> = events.iter().filter(|e| e["event"] == "done").collect();
    assert_eq!(done.len(), 4);
    let exp = events
        .iter()
        .find(|e| e["event"] == "experiment")
        .expect("the experiment event");
    let points = exp["points"].as_array().unwrap();
    assert_eq!(points.len(), 4);
    for (i, point) in points.iter().enumerate() {
        assert_eq!(point["point"], i + 1);
        assert_eq!(point["status"], "ok", "{point}");
        assert!(point["version"].is_string(), "{point}");
    }
    assert_eq!(
        points[2]["overrides"],
        serde_json::json!([
            "execute.max_models=2",
            "prepare.seed=1",
            "prepare.holdout=0.25"
        ])
    );
    // No tag moved, no hook fired, no ml.lock written.
    assert_eq!(tags(&p), tags_before);
    assert_eq!(p.read("ml.lock"), lock_before);
    assert!(
        !p.file("hook-fired").exists(),
        "a point fired the deploy hook"
    );

    // The same grid again: every step cached, and no engine was reachable.
    let mut again = p.command(&grid);
    again.env("MLBUILD_H2O_URL", "http://127.0.0.1:9");
    let again = Run::from(again.output().unwrap()).ok();
    let statuses: Vec<String> = json_lines(&again)
        .iter()
        .filter(|e| e["event"] == "step")
        .map(|e| e["status"].as_str().unwrap().to_string())
        .collect();
    assert!(statuses.iter().all(|s| s == "cached"), "{statuses:?}");
    assert!(json_lines(&again)
        .iter()
        .filter(|e| e["event"] == "done")
        .all(|d| d["h2o_started"] == false));

    // Ranked best first by the primary metric; only the differing keys.
    let shown: Value =
        serde_json::from_str(&p.mlbuild_offline(&["exp", "show", "--json"]).ok().stdout).unwrap();
    assert_eq!(shown["metric"], "auc");
    let ranked = shown["points"].as_array().unwrap();
    let aucs: Vec<f64> = ranked
        .iter()
        .map(|r| r["metric"].as_f64().unwrap())
        .collect();
    assert!(aucs.windows(2).all(|w| w[0] >= w[1]), "{aucs:?}");
    assert_eq!(
        ranked[0]["set"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["execute.max_models", "prepare.seed"],
        "only the keys that differ"
    );
    let every: Value = serde_json::from_str(
        &p.mlbuild_offline(&["exp", "show", "--json", "--all"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(every["points"][0]["set"]["prepare.holdout"], "0.25");
    let table = p.mlbuild_offline(&["exp", "show"]).ok();
    assert!(
        table
            .stdout
            .contains("best first by auc (higher is better)"),
        "{}",
        table.stdout
    );

    // Promote the best point, exactly as `promote` does.
    let best = ranked[0]["point"].as_u64().unwrap().to_string();
    let version = ranked[0]["version"].as_str().unwrap().to_string();
    p.mlbuild_offline(&["exp", "promote", &best, "candidate"])
        .ok();
    assert_eq!(tags(&p)["candidate"], version);
    let missing = p.mlbuild_offline(&["exp", "promote", "9", "candidate"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("has no point 9"),
        "{}",
        missing.stderr
    );
}

use std::sync::{Arc, Mutex};

use super::*;

const TOML: &str = r#"
[define]
target = "y"
threshold = 0.7

[locate]
path = "d.csv"

[execute]
max_models = 4
"#;

fn planner(log: Arc<Mutex<Vec<String>>>) -> Planner {
    let db = PlanDb::with_events(move |e| {
        if let salsa::EventKind::WillExecute { database_key } = &e.kind {
            log.lock().unwrap().push(format!("{database_key:?}"));
        }
    });
    let mut p = Planner::new(db, "ml.toml".into(), TOML.into(), Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("d.csv");
    std::fs::write(&csv, "x,y\n1,0\n2,1\n3,0\n").unwrap();
    p.set_data("s".repeat(64), &crate::table::profile_csv(&csv).unwrap());
    let empty = std::collections::BTreeMap::new();
    let digests = |names: &[&str]| {
        names
            .iter()
            .map(|n| (n.to_string(), "d".repeat(64)))
            .collect()
    };
    p.record(
        Step::Define,
        1,
        "k",
        &empty,
        &json!({"problem": "binary", "metric": "auc"}),
    );
    p.record(Step::Locate, 1, "k", &digests(&["snapshot"]), &json!({}));
    p.record(
        Step::Prepare,
        1,
        "k",
        &digests(&["train", "holdout", "schema"]),
        &json!({}),
    );
    p.record(
        Step::Confirm,
        1,
        "k",
        &digests(&["report"]),
        &json!({"verdict": "pass"}),
    );
    p.record(
        Step::Execute,
        1,
        "k",
        &digests(&["mojo", "predictions"]),
        &json!({}),
    );
    p
}

fn executed(log: &Arc<Mutex<Vec<String>>>, query: &str) -> bool {
    log.lock().unwrap().iter().any(|l| l.starts_with(query))
}

#[test]
fn a_threshold_edit_recomputes_monitor_but_not_execute() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut p = planner(log.clone());
    let execute_before = key(&p.db, p.input, Step::Execute, 1).unwrap();
    let monitor_before = key(&p.db, p.input, Step::Monitor, 1).unwrap();
    log.lock().unwrap().clear();

    p.set_text(
        TOML.replace("threshold = 0.7", "threshold = 0.6"),
        Vec::new(),
    );
    let execute_after = key(&p.db, p.input, Step::Execute, 1).unwrap();
    let monitor_after = key(&p.db, p.input, Step::Monitor, 1).unwrap();

    assert_eq!(execute_before, execute_after);
    assert_ne!(monitor_before, monitor_after);
    let events = log.lock().unwrap().clone();
    assert!(
        executed(&log, "parsed"),
        "the text changed, so it is parsed again: {events:?}"
    );
    assert!(
        executed(&log, "key_inputs") && executed(&log, "key("),
        "monitor's key is recomputed: {events:?}"
    );
    // Exactly one key_inputs/key ran: monitor's. execute's slice compared equal (early cutoff).
    let keys_run = events
        .iter()
        .filter(|l| l.starts_with("key_inputs"))
        .count();
    assert_eq!(
        keys_run, 1,
        "only monitor's key inputs re-executed: {events:?}"
    );
}

/// Monitor computes SHAP natively on `monitor.shap_rows` rows (issue 17): the count is in its
/// key, and not in execute's (which asks H2O only for leaders monitor cannot explain).
#[test]
fn a_shap_rows_edit_recomputes_monitor_but_not_execute() {
    let p = planner(Arc::new(Mutex::new(Vec::new())));
    let before = [Step::Execute, Step::Monitor].map(|s| key(&p.db, p.input, s, 1).unwrap());
    let mut p = p;
    p.set_text(format!("{TOML}\n[monitor]\nshap_rows = 20\n"), Vec::new());
    let after = [Step::Execute, Step::Monitor].map(|s| key(&p.db, p.input, s, 1).unwrap());
    assert_eq!(before[0], after[0], "execute's key moved");
    assert_ne!(before[1], after[1], "monitor's key ignores shap_rows");
}

#[test]
fn a_comment_edit_recomputes_no_key() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut p = planner(log.clone());
    for step in [Step::Define, Step::Locate, Step::Execute, Step::Monitor] {
        key(&p.db, p.input, step, 1).unwrap();
    }
    log.lock().unwrap().clear();
    p.set_text(format!("# a comment\n{TOML}\n\n"), Vec::new());
    for step in [Step::Define, Step::Locate, Step::Execute, Step::Monitor] {
        key(&p.db, p.input, step, 1).unwrap();
    }
    let events = log.lock().unwrap().clone();
    assert!(executed(&log, "parsed"));
    assert!(!executed(&log, "key_inputs"), "{events:?}");
}

#[test]
fn an_override_enters_keys_like_an_edit() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut p = planner(log);
    let edited = {
        p.set_text(TOML.replace("max_models = 4", "max_models = 8"), Vec::new());
        key(&p.db, p.input, Step::Execute, 1).unwrap()
    };
    p.set_text(TOML.into(), vec!["execute.max_models=8".into()]);
    assert_eq!(key(&p.db, p.input, Step::Execute, 1).unwrap(), edited);
}

/// Every field a key is built from is in the table `explain` reads, and every entry of the table
/// is a field some key has.
#[test]
fn every_key_field_has_a_reason_class() {
    let mut p = planner(Arc::default());
    p.record(
        Step::Monitor,
        1,
        "km",
        &Default::default(),
        &json!({"verdict": "pass", "value": 0.8}),
    );
    p.record(
        Step::Modify,
        1,
        "k",
        &Default::default(),
        &json!({"verdict": "pass", "chosen_attempt": 1}),
    );
    let mut seen = Vec::new();
    for step in Step::ALL {
        let inputs = p.key_inputs(step, 1).unwrap();
        for field in inputs.as_object().unwrap().keys() {
            assert!(
                crate::fingerprint::class_of(step, field).is_some(),
                "{step}.{field} has no entry in KEY_FIELDS"
            );
            seen.push((step, field.clone()));
        }
    }
    for (step, field, _) in crate::fingerprint::KEY_FIELDS {
        // Present only when an ignored column has missing values, and only with text columns
        // (see `key_inputs`; the latter is tested below).
        if *field == "ignored_with_missing" || (*step == Step::Prepare && *field == "engine") {
            continue;
        }
        assert!(
            seen.contains(&(*step, field.to_string())),
            "KEY_FIELDS lists {step}.{field}, which no key has"
        );
    }
}

/// A recorded step that lacks what a key reads is an error naming the step and the field,
/// never a `null` in the key.
#[test]
fn a_missing_recorded_field_is_an_error_not_a_null() {
    let mut p = planner(Arc::default());
    p.record(Step::Locate, 1, "k", &Default::default(), &json!({}));
    assert_eq!(
        p.key_inputs(Step::Prepare, 1).unwrap_err(),
        "step `locate` recorded no output `snapshot`"
    );
    p.record(Step::Confirm, 1, "k", &Default::default(), &json!({}));
    assert_eq!(
        p.key_inputs(Step::Execute, 1).unwrap_err(),
        "step `confirm` recorded no result field `verdict`"
    );
}

/// Word2Vec is fit on H2O, so the declared engine enters prepare's key when `prepare.text`
/// names a column, and only then (a project without text keeps its prepare key).
#[test]
fn the_engine_enters_prepares_key_only_with_text_columns() {
    let mut p = planner(Arc::default());
    let plain = key(&p.db, p.input, Step::Prepare, 1).unwrap();
    p.set_text(format!("{TOML}\n[h2o]\nnodes = 2\n"), Vec::new());
    assert_eq!(key(&p.db, p.input, Step::Prepare, 1).unwrap(), plain);
    let text = format!("{TOML}\n[prepare.text]\nx = {{ vec_size = 16 }}\n");
    p.set_text(text.clone(), Vec::new());
    let one_node = key(&p.db, p.input, Step::Prepare, 1).unwrap();
    p.set_text(format!("{text}\n[h2o]\nnodes = 2\n"), Vec::new());
    assert_ne!(key(&p.db, p.input, Step::Prepare, 1).unwrap(), one_node);
}

/// Every step's key for one fixed project, as the planner computed it before its queries were
/// restructured (the config read once for every slice, the profile once for every key: the
/// values below come from the tree before that change). A key that changes reruns every
/// project's steps: any change to these strings must be deliberate.
#[test]
fn every_steps_key_is_what_it_was() {
    let toml = r#"
[define]
target = "y"
threshold = 0.7
ignore = ["z", "w"]

[locate]
path = "d.csv"

[prepare]
drop = ["w"]

[execute]
max_models = 4
include_algos = ["GLM", "GBM"]

[modify]
max_attempts = 2
"#;
    let mut p = Planner::new(PlanDb::default(), "ml.toml".into(), toml.into(), Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("d.csv");
    std::fs::write(&csv, "x,y,z,w\n1,0,,a\n2,1,b,b\n3,0,c,\n").unwrap();
    p.set_data("s".repeat(64), &crate::table::profile_csv(&csv).unwrap());
    let outputs = |names: &[&str]| {
        names
            .iter()
            .map(|n| (n.to_string(), "d".repeat(64)))
            .collect()
    };
    let recorded = [
        (
            Step::Define,
            outputs(&[]),
            json!({"problem": "binary", "metric": "auc"}),
        ),
        (Step::Locate, outputs(&["snapshot"]), json!({})),
        (
            Step::Prepare,
            outputs(&["train", "holdout", "schema"]),
            json!({}),
        ),
        (
            Step::Confirm,
            outputs(&["report"]),
            json!({"verdict": "pass"}),
        ),
        (Step::Execute, outputs(&["mojo", "predictions"]), json!({})),
        (
            Step::Monitor,
            outputs(&["report"]),
            json!({"verdict": "pass", "value": 0.91}),
        ),
        (Step::Modify, outputs(&[]), json!({"chosen_attempt": 1})),
    ];
    let mut keys = Vec::new();
    for (step, outputs, result) in recorded {
        let k = key(&p.db, p.input, step, 1).unwrap();
        p.record(step, 1, &k, &outputs, &result);
        keys.push(format!("{step} {k}"));
    }
    keys.push(format!(
        "conclude {}",
        key(&p.db, p.input, Step::Conclude, 1).unwrap()
    ));
    assert_eq!(
        keys,
        [
            "define dda7d89bc91fb95cc6fdff649a37e38cd1600c63e12b2794617268e7eb5b857d",
            "locate 9220ae4a3b9db4bda4ffc9abd0a31927cb002c7d9ec483fa0e6c25380f441cc0",
            "prepare 69a3d0f163000362a5beece7c793ec4dba5e7b4eb6a56fae0999a0a4878051c0",
            "confirm 0ff6f15616d4271a9539e5dd922d2086dc7491cb5f6daaaeffac99eb8b44b43c",
            "execute 8b70a798934972f95cbf0089b7760d927bef25826bc6d5e967c901fdba210755",
            "monitor 7540fe5b1f4febe2264e42fcdac3c30e33f25088f138c842260a69bb94995f47",
            "modify 8b817ab6c65a9ed217f060b10be0dea90167f5ff9721a99477959aef8f137519",
            "conclude a20456434d4b063b262785f6bef86ddb140423f891c3a2e8ea6d18b39e413e3a",
        ]
    );
}

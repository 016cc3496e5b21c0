//! Each step's typed result reads the JSON entries hold and writes it back unchanged: the
//! shapes below are what the steps recorded as `serde_json::Value`s before the types existed
//! (field for field), plus the older shapes that lack fields added since.

use serde_json::{json, Value};

use super::conclude::ConcludeResult;
use super::confirm::ConfirmResult;
use super::define::DefineResult;
use super::execute::ExecuteResult;
use super::locate::LocateResult;
use super::modify::ModifyResult;
use super::monitor::MonitorResult;
use super::prepare::PrepareResult;
use super::StepResult;

fn round_trip<R: StepResult>(v: Value) -> R {
    let r = R::read(&v).unwrap_or_else(|e| panic!("{e:#}\n{v}"));
    assert_eq!(r.to_value(), v, "{} writes what it read", R::STEP);
    r
}

const D: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn results_read_and_write_todays_json() {
    let r: DefineResult = round_trip(json!({
        "problem": "binary", "inferred": true, "metric": "auc", "classes": ["0", "1"],
    }));
    assert_eq!(r.summary(), "binary (inferred), metric auc");

    let r: LocateResult = round_trip(json!({"rows": 380, "columns": 9, "bytes": 9338}));
    assert_eq!(r.summary(), "380 rows × 9 columns");
    let r: LocateResult = round_trip(json!({
        "rows": 40, "columns": 3, "bytes": 900,
        "extraction": {"source": "glob", "files": 4},
    }));
    assert_eq!(r.summary(), "40 rows × 3 columns from 4 files");

    let r: PrepareResult = round_trip(json!({
        "train_rows": 304, "holdout_rows": 76, "columns": 8, "split": "stratified",
        "imputed": 1, "derived": 0, "text": 0,
    }));
    assert_eq!(
        r.summary(),
        "304 train / 76 holdout rows, 8 columns (stratified, 1 imputed)"
    );

    let r: ConfirmResult = round_trip(json!({
        "verdict": "fail", "rows": 380, "drift": null,
        "failures": [{"rule": "max_null_fraction", "column": "AGE", "pass": false, "message": "AGE: 3% missing"}],
    }));
    assert_eq!(r.summary(), "gate failed: 1 rule(s)");

    let r: ExecuteResult = round_trip(json!({
        "leader": "GLM_1_AutoML_1", "algo": "glm", "sort_metric": "auc",
        "leaderboard_metrics": {"auc": 0.91, "logloss": null}, "models": 3,
        "mojo": D, "canonical": D, "params": {"max_models": 2, "seed": 1},
        "shap": {"method": "background", "rows": 76, "background_rows": 100},
    }));
    assert_eq!(
        r.summary(),
        "leader GLM_1_AutoML_1 (glm), holdout auc 0.9100 of 3 models"
    );

    let r: MonitorResult = round_trip(json!({
        "verdict": "pass", "metric": "auc", "value": 0.912, "threshold": 0.7,
        "higher_is_better": true, "threshold_pass": true, "metrics": {"auc": 0.912},
        "baseline": {"status": "skipped", "reason": "no baseline"}, "shap": {},
    }));
    assert_eq!(r.summary(), "holdout auc 0.9120 meets threshold ≥ 0.7");

    let r: ModifyResult = round_trip(json!({
        "verdict": "fail", "chosen_attempt": null, "escalated": true,
        "attempts": [{"attempt": 1, "verdict": "fail"}, {"attempt": 2, "verdict": "fail"}],
    }));
    assert_eq!(r.summary(), "escalated after 2 attempt(s)");

    let r: ConcludeResult = round_trip(json!({
        "canonical": D, "model": D, "card": D, "algo": "glm",
        "metrics": {"auc": 0.912}, "provenance": {"data_snapshot": D},
    }));
    assert_eq!(r.summary(), "model 0123456789ab (glm)");
}

/// Entries recorded before a field existed still read.
#[test]
fn older_results_without_later_fields_read() {
    let m = MonitorResult::read(&json!({
        "verdict": "fail", "metric": "auc", "value": 0.6, "threshold": 0.7,
        "metrics": {"auc": 0.6},
    }))
    .unwrap();
    assert!(!m.met_threshold());
    assert_eq!(m.summary(), "holdout auc 0.6000 misses threshold ≤ 0.7");
    let e = ExecuteResult::read(&json!({
        "leader": "GBM_1", "algo": "gbm", "sort_metric": "auc", "leaderboard_metrics": {},
        "models": 1, "mojo": D, "canonical": D, "params": {},
    }))
    .unwrap();
    assert_eq!(e.shap, None);
    let c = ConfirmResult::read(&json!({"verdict": "pass", "rows": 10, "failures": []})).unwrap();
    assert_eq!(c.drift, None);
}

/// A result that lacks a field it must have is an error naming the step, never a default.
#[test]
fn a_result_missing_a_field_is_an_error() {
    let e = DefineResult::read(&json!({"problem": "binary", "inferred": false, "classes": []}))
        .unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains("step `define`") && text.contains("missing field `metric`"),
        "{text}"
    );
}

//! Step 6, monitor: judge the leader on the holdout, from stored artifacts only (no JVM).
//!
//! The metrics are recomputed by mlbuild from the holdout's true target and the leader's
//! stored holdout predictions (`metrics`), and compared with `define.threshold` on the primary
//! metric (`value >= threshold` for auc/aucpr, `value <= threshold` for error metrics). A miss
//! is a verdict, not an error: it is recorded and cached like any result, and modify decides.
//! Without a threshold every model passes. The baseline check (scoring the model tagged
//! `monitor.baseline` on the same holdout) needs the native scorer and is reported as skipped.

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::config::{self, Problem};
use crate::metrics;
use crate::pipeline::{Ctx, ProblemSpec, StepOutput};
use crate::store::ActionEntry;

pub fn run(
    ctx: &mut Ctx<'_>,
    prepare: &ActionEntry,
    execute: &ActionEntry,
    spec: &ProblemSpec,
) -> Result<StepOutput> {
    let holdout = ctx.store.read_verified(&prepare.outputs["holdout"])?;
    let predictions = ctx.store.read_verified(&execute.outputs["predictions"])?;
    let actual =
        metrics::read_column(&holdout, &spec.target).context("reading the holdout's target")?;
    let table =
        metrics::read_predictions(&predictions).context("reading the stored predictions")?;
    let task = match spec.problem {
        Problem::Regression => metrics::Task::Regression,
        Problem::Binary | Problem::Multiclass => metrics::Task::classification(&spec.classes)?,
    };
    let computed =
        metrics::evaluate(&task, &actual, &table).context("computing holdout metrics")?;
    let value = computed
        .get(&spec.metric)
        .with_context(|| format!("metric `{}` was not computed", spec.metric))?;
    let threshold = ctx.config.define.threshold;
    let higher = config::metric_is_higher_better(&spec.metric);
    let pass = match threshold {
        None => true,
        Some(t) if higher => value >= t,
        Some(t) => value <= t,
    };
    let verdict = if pass { "pass" } else { "fail" };
    let report = json!({
        "verdict": verdict,
        "metric": spec.metric,
        "value": value,
        "threshold": threshold,
        "direction": if higher { "higher is better" } else { "lower is better" },
        "metrics": computed.values,
        "nobs": computed.nobs,
        "skipped_rows": computed.skipped,
        "leaderboard_metrics": execute.result["leaderboard_metrics"],
        "baseline": "skipped: baseline scoring needs the native MOJO scorer (not built yet)",
    });
    let digest = ctx.store.put_bytes(&serde_json::to_vec_pretty(&report)?)?;
    Ok(StepOutput {
        outputs: super::outputs([("report", digest)]),
        output_digests: None,
        result: json!({
            "verdict": verdict,
            "metric": spec.metric,
            "value": value,
            "threshold": threshold,
            "higher_is_better": higher,
            "metrics": computed.values,
        }),
    })
}

pub fn summary(result: &Value) -> String {
    let value = result["value"]
        .as_f64()
        .map(|v| format!("{v:.4}"))
        .unwrap_or_else(|| "?".into());
    let metric = result["metric"].as_str().unwrap_or("?");
    match result["threshold"].as_f64() {
        None => format!("holdout {metric} {value} (no threshold)"),
        Some(t) => {
            let op = if result["higher_is_better"] == true {
                "≥"
            } else {
                "≤"
            };
            let ok = if result["verdict"] == "pass" {
                "meets"
            } else {
                "misses"
            };
            format!("holdout {metric} {value} {ok} threshold {op} {t}")
        }
    }
}

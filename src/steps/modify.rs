//! Step 7, modify: the feedback loop. When monitor's verdict is "fail", execute and monitor run
//! again with deterministically widened AutoML params, up to `modify.max_attempts` attempts in
//! all; when every attempt misses, the run escalates (exit 3) with a report.
//!
//! The strategy per attempt (documented in `docs/pipeline.md`):
//! - attempt 1: `[execute]` as written;
//! - attempt 2: twice the models (`max_models × 2`);
//! - attempt 3: four times the models and every algorithm except DeepLearning
//!   (`include_algos` cleared, `exclude_algos = ["DeepLearning"]`);
//! - attempt n ≥ 4: `max_models × 2^(n-1)`, as attempt 3 otherwise, and `nfolds` at least 5.
//!
//! Each attempt's params enter its execute key, so a rerun replays all attempts from the cache.
//!
//! Escalation: exit 3 with the attempts listed, and the optional `[modify.escalate]` hooks
//! (`webhook`: JSON POST of [`escalation_report`], three tries 0.5 s / 1 s apart; `command`:
//! the report on stdin and in `MLBUILD_HOOK_JSON`). A failing hook is a warning, not fatal.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::execute::ExecuteResult;
use super::monitor::MonitorResult;
use super::{Ctx, StepOutput, StepResult, Verdict};
use crate::config::Execute;
use crate::error::{Diagnostic, Exit};
use crate::project::Step;
use crate::store::ActionEntry;

/// The AutoML params of one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptParams {
    pub max_models: u32,
    pub seed: u64,
    pub nfolds: u32,
    pub include_algos: Vec<String>,
    pub exclude_algos: Vec<String>,
    pub sort_metric: Option<String>,
}

pub fn attempt_params(execute: &Execute, attempt: u32) -> AttemptParams {
    let mut p = AttemptParams {
        max_models: execute.max_models,
        seed: execute.seed,
        nfolds: execute.nfolds,
        include_algos: execute.include_algos.clone(),
        exclude_algos: execute.exclude_algos.clone(),
        sort_metric: execute.sort_metric.clone(),
    };
    if attempt >= 2 {
        p.max_models = execute
            .max_models
            .saturating_mul(1u32 << (attempt - 1).min(16));
    }
    if attempt >= 3 {
        p.include_algos.clear();
        p.exclude_algos = vec!["DeepLearning".to_string()];
    }
    if attempt >= 4 {
        p.nfolds = p.nfolds.max(5);
    }
    p
}

pub fn run(_ctx: &mut Ctx<'_>, attempts: &[(ActionEntry, ActionEntry)]) -> Result<StepOutput> {
    let mut summary = Vec::new();
    let mut chosen = None;
    for (i, (e, m)) in attempts.iter().enumerate() {
        let (e, m) = (
            ExecuteResult::read(&e.result)?,
            MonitorResult::read(&m.result)?,
        );
        if chosen.is_none() && m.verdict == Verdict::Pass {
            chosen = Some(i as u32 + 1);
        }
        summary.push(json!({
            "attempt": i + 1,
            "leader": e.leader,
            "params": e.params,
            "verdict": m.verdict,
            "metric": m.metric,
            "value": m.value,
            "threshold": m.threshold,
            "threshold_pass": m.threshold_pass,
            "higher_is_better": m.higher_is_better,
            "baseline": m.baseline["status"],
            "baseline_check": m.baseline,
        }));
    }
    Ok(StepOutput {
        outputs: Default::default(),
        output_digests: None,
        result: ModifyResult {
            verdict: Verdict::of(chosen.is_some()),
            chosen_attempt: chosen,
            attempts: summary,
            escalated: chosen.is_none(),
        }
        .to_value(),
    })
}

/// What modify decided over the attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModifyResult {
    /// Pass when an attempt passed monitor.
    pub verdict: Verdict,
    /// The first attempt that passed (1-based); null when none did.
    pub chosen_attempt: Option<u32>,
    /// One object per attempt: `attempt`, `leader`, `params`, `verdict`, `metric`, `value`,
    /// `threshold`, `threshold_pass`, `higher_is_better`, `baseline`, `baseline_check`
    /// (docs/monitor.md).
    pub attempts: Vec<Value>,
    pub escalated: bool,
}

impl StepResult for ModifyResult {
    const STEP: Step = Step::Modify;

    fn summary(&self) -> String {
        let n = self.attempts.len();
        match self.chosen_attempt {
            Some(1) => "nothing to do: attempt 1 passed".to_string(),
            Some(k) => format!("attempt {k} of {n} passed"),
            None => format!("escalated after {n} attempt(s)"),
        }
    }
}

/// The escalation report sent to the `[modify.escalate]` hooks (`docs/monitor.md`).
pub fn escalation_report(ctx: &Ctx<'_>, result: &ModifyResult, run: i64) -> Value {
    json!({
        "event": "escalated",
        "project": ctx.config.project.name.clone().unwrap_or_else(|| {
            ctx.paths
                .project
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        }),
        "run": run,
        "metric": result.attempts.first().map(|a| a["metric"].clone()),
        "threshold": result.attempts.first().map(|a| a["threshold"].clone()),
        "attempts": result.attempts,
    })
}

/// Escalation: runs the `[modify.escalate]` hooks (failures are warnings) and returns the
/// exit-3 error.
pub async fn escalate(ctx: &Ctx<'_>, result: &ModifyResult) -> Diagnostic {
    let hooks = &ctx.config.modify.escalate;
    // An experiment's point that escalates is reported in `exp show`, not to the hooks.
    if !hooks.is_empty() && !ctx.experiment {
        // The run's row is written first if it is not yet (a fully cached escalation): the
        // report names a run the registry has.
        let run = ctx.run_id().await.unwrap_or(0);
        let report = escalation_report(ctx, result, run);
        crate::report::hooks::notify(
            ctx.printer,
            "escalation",
            hooks,
            &report,
            &ctx.paths.project,
        )
        .await;
    }
    escalation_error(result)
}

/// The exit-3 error: no attempt passed monitor. It says which check each attempt failed — the
/// threshold, or the baseline check (naming the baseline, its metric and the margin) — and
/// gives the hint that fits.
pub fn escalation_error(result: &ModifyResult) -> Diagnostic {
    let attempts = &result.attempts;
    // Entries recorded before `threshold_pass` was kept: a failed attempt missed the threshold.
    let missed_threshold = |a: &Value| a["threshold_pass"].as_bool() != Some(true);
    let threshold_misses = attempts.iter().filter(|a| missed_threshold(a)).count();
    let lines: Vec<String> = attempts.iter().map(attempt_line).collect();
    let n = attempts.len();
    let plural = if n == 1 { "" } else { "s" };
    let (headline, hint) = if threshold_misses == n {
        (
            format!("escalated: the threshold was not met after {n} attempt{plural}"),
            "loosen `define.threshold`, raise `modify.max_attempts`, or improve the data; no version was registered".to_string(),
        )
    } else {
        let b = &attempts
            .iter()
            .find(|a| !missed_threshold(a))
            .map(|a| a["baseline_check"].clone())
            .unwrap_or_default();
        let baseline = format!(
            "the baseline `{}` (version {})",
            b["tag"].as_str().unwrap_or("production"),
            b["version"].as_str().unwrap_or("?")
        );
        let headline = if threshold_misses == 0 {
            format!("escalated: the threshold was met, but no attempt beat {baseline} after {n} attempt{plural}")
        } else {
            format!("escalated: no attempt passed both the threshold and the check against {baseline} after {n} attempt{plural}")
        };
        (
            headline,
            format!(
                "a new model must beat {baseline} by `monitor.min_improvement` ({} {}); lower it, point `monitor.baseline` at another tag, or ship this model anyway with `mlbuild promote`; no version was registered",
                b["min_improvement"],
                b["metric"].as_str().unwrap_or("")
            ),
        )
    };
    Diagnostic::new(format!("{headline}\n{}", lines.join("\n")))
        .hint(hint)
        .exit(Exit::Escalated)
}

/// One attempt of the escalation error: its leader, value, and the check that failed.
fn attempt_line(a: &Value) -> String {
    let metric = a["metric"].as_str().unwrap_or("?");
    let value = a["value"].as_f64().unwrap_or(f64::NAN);
    let cmp = if a["higher_is_better"] == false {
        "≤"
    } else {
        "≥"
    };
    let threshold = match &a["threshold"] {
        Value::Null => "no threshold".to_string(),
        t => format!("threshold {cmp} {t}"),
    };
    let b = &a["baseline_check"];
    let check = if a["threshold_pass"] != true {
        format!("misses {threshold}")
    } else if b["status"] == "fail" {
        format!(
            "meets {threshold}, but beats baseline `{}` ({} {} = {:.4}) by {:.4}, less than min_improvement {}",
            b["tag"].as_str().unwrap_or("?"),
            b["version"].as_str().unwrap_or("?"),
            metric,
            b["baseline_value"].as_f64().unwrap_or(f64::NAN),
            b["improvement"].as_f64().unwrap_or(f64::NAN),
            b["min_improvement"],
        )
    } else {
        format!("failed monitor ({threshold})")
    };
    format!(
        "  - attempt {}: {} {metric} = {value:.4} {check}; max_models {}",
        a["attempt"],
        a["leader"].as_str().unwrap_or("?"),
        a["params"]["max_models"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(attempts: Value) -> ModifyResult {
        ModifyResult {
            verdict: Verdict::Fail,
            chosen_attempt: None,
            attempts: serde_json::from_value(attempts).unwrap(),
            escalated: true,
        }
    }

    #[test]
    fn escalation_names_the_check_that_failed() {
        let baseline_fail = json!({
            "status": "fail", "tag": "production", "version": "v20260101.000000-abcdef",
            "metric": "auc", "baseline_value": 0.912, "leader_value": 0.915,
            "improvement": 0.003, "min_improvement": 0.01,
        });
        let met = json!({
            "attempt": 1, "leader": "GBM_1", "params": {"max_models": 2}, "verdict": "fail",
            "metric": "auc", "value": 0.915, "threshold": 0.7, "threshold_pass": true,
            "higher_is_better": true, "baseline": "fail", "baseline_check": baseline_fail,
        });
        let d = escalation_error(&entry(json!([met])));
        assert_eq!(
            d.message,
            "escalated: the threshold was met, but no attempt beat the baseline `production` (version v20260101.000000-abcdef) after 1 attempt\n  - attempt 1: GBM_1 auc = 0.9150 meets threshold ≥ 0.7, but beats baseline `production` (v20260101.000000-abcdef auc = 0.9120) by 0.0030, less than min_improvement 0.01; max_models 2"
        );
        let hint = d.hint.unwrap();
        assert!(
            hint.contains("`monitor.min_improvement` (0.01 auc)"),
            "{hint}"
        );
        assert!(!hint.contains("define.threshold"), "{hint}");

        // A miss of the threshold keeps today's words; an old entry (no threshold_pass) too.
        let missed = json!({
            "attempt": 1, "leader": "GLM_1", "params": {"max_models": 2}, "verdict": "fail",
            "metric": "rmse", "value": 3.5, "threshold": 3.0, "threshold_pass": false,
            "higher_is_better": false, "baseline": "skipped",
        });
        let d = escalation_error(&entry(json!([missed])));
        assert!(
            d.message.starts_with("escalated: the threshold was not met after 1 attempt\n  - attempt 1: GLM_1 rmse = 3.5000 misses threshold ≤ 3.0"),
            "{}",
            d.message
        );
        assert!(d.hint.unwrap().contains("define.threshold"));
        let old = json!({"attempt": 1, "leader": "GLM_1", "params": {"max_models": 2},
            "verdict": "fail", "metric": "auc", "value": 0.6, "threshold": 0.7, "baseline": "skipped"});
        let d = escalation_error(&entry(json!([old])));
        assert!(d
            .message
            .starts_with("escalated: the threshold was not met"));

        // Mixed attempts: both checks are named.
        let d = escalation_error(&entry(json!([missed, met])));
        assert!(
            d.message.starts_with("escalated: no attempt passed both the threshold and the check against the baseline `production`"),
            "{}",
            d.message
        );
    }

    #[test]
    fn attempts_widen_deterministically() {
        let e = Execute::default();
        assert_eq!(attempt_params(&e, 1).max_models, e.max_models);
        assert_eq!(attempt_params(&e, 2).max_models, e.max_models * 2);
        let a3 = attempt_params(&e, 3);
        assert_eq!(a3.max_models, e.max_models * 4);
        assert!(a3.include_algos.is_empty());
        assert_eq!(attempt_params(&e, 3), attempt_params(&e, 3));
    }
}

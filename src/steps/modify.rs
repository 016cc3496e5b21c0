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

use crate::config::Execute;
use crate::error::{Diagnostic, Exit};
use crate::pipeline::{Ctx, StepOutput};
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
    let summary: Vec<Value> = attempts
        .iter()
        .enumerate()
        .map(|(i, (e, m))| {
            json!({
                "attempt": i + 1,
                "leader": e.result["leader"],
                "params": e.result["params"],
                "verdict": m.result["verdict"],
                "metric": m.result["metric"],
                "value": m.result["value"],
                "threshold": m.result["threshold"],
                "baseline": m.result["baseline"]["status"],
            })
        })
        .collect();
    let chosen = attempts
        .iter()
        .position(|(_, m)| m.result["verdict"] == "pass");
    let verdict = if chosen.is_some() { "pass" } else { "fail" };
    Ok(StepOutput {
        outputs: Default::default(),
        output_digests: None,
        result: json!({
            "verdict": verdict,
            "chosen_attempt": chosen.map(|i| i + 1),
            "attempts": summary,
            "escalated": chosen.is_none(),
        }),
    })
}

/// The escalation report sent to the `[modify.escalate]` hooks (`docs/monitor.md`).
pub fn escalation_report(ctx: &Ctx<'_>, entry: &ActionEntry) -> Value {
    json!({
        "event": "escalated",
        "project": ctx.config.project.name.clone().unwrap_or_else(|| {
            ctx.paths
                .project
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        }),
        "run": ctx.run_id,
        "metric": entry.result["attempts"][0]["metric"],
        "threshold": entry.result["attempts"][0]["threshold"],
        "attempts": entry.result["attempts"],
    })
}

/// Escalation: runs the `[modify.escalate]` hooks (failures are warnings) and returns the
/// exit-3 error.
pub async fn escalate(ctx: &Ctx<'_>, entry: &ActionEntry) -> Diagnostic {
    let hooks = &ctx.config.modify.escalate;
    if !hooks.is_empty() {
        let report = escalation_report(ctx, entry);
        crate::report::hooks::notify(
            ctx.printer,
            "escalation",
            hooks,
            &report,
            &ctx.paths.project,
        )
        .await;
    }
    escalation_error(entry)
}

/// The exit-3 error: every attempt missed the threshold.
pub fn escalation_error(entry: &ActionEntry) -> Diagnostic {
    let attempts = entry.result["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let lines: Vec<String> = attempts
        .iter()
        .map(|a| {
            format!(
                "  - attempt {}: {} {} = {:.4} (threshold {}), max_models {}",
                a["attempt"],
                a["leader"].as_str().unwrap_or("?"),
                a["metric"].as_str().unwrap_or("?"),
                a["value"].as_f64().unwrap_or(f64::NAN),
                a["threshold"],
                a["params"]["max_models"],
            )
        })
        .collect();
    Diagnostic::new(format!(
        "escalated: the threshold was not met after {} attempt{}\n{}",
        attempts.len(),
        if attempts.len() == 1 { "" } else { "s" },
        lines.join("\n")
    ))
    .hint("loosen `define.threshold`, raise `modify.max_attempts`, or improve the data; no version was registered")
    .exit(Exit::Escalated)
}

pub fn summary(result: &Value) -> String {
    let n = result["attempts"].as_array().map(|a| a.len()).unwrap_or(0);
    match result["chosen_attempt"].as_u64() {
        Some(1) => "nothing to do: attempt 1 passed".to_string(),
        Some(k) => format!("attempt {k} of {n} passed"),
        None => format!("escalated after {n} attempt(s)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

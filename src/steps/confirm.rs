//! Step 4, confirm: the data-quality gate on the prepared data.
//!
//! Rules: at least `confirm.min_rows` rows (train + holdout); the target column present and not
//! constant in the training rows; every column's missing fraction at most
//! `confirm.max_null_fraction`. The gate's verdict is cached like any result: a failing gate
//! replays as failing (exit 4) until its inputs change. The report (JSON) is stored in the CAS
//! and its failures are printed, each naming the column, the value and the limit.

use anyhow::Result;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{Diagnostic, Exit};
use crate::pipeline::{Ctx, ProblemSpec, StepOutput};
use crate::store::ActionEntry;
use crate::table::profile_csv;

#[derive(Debug, Serialize)]
struct Failure {
    rule: &'static str,
    column: Option<String>,
    value: Value,
    limit: Value,
    message: String,
}

pub fn run(ctx: &mut Ctx<'_>, prepare: &ActionEntry, spec: &ProblemSpec) -> Result<StepOutput> {
    let confirm = &ctx.config.confirm;
    let train = profile_csv(&ctx.store.verified_path(&prepare.outputs["train"])?)?;
    let holdout = profile_csv(&ctx.store.verified_path(&prepare.outputs["holdout"])?)?;
    let rows = train.rows + holdout.rows;
    let mut failures = Vec::new();
    if rows < confirm.min_rows {
        failures.push(Failure {
            rule: "min_rows",
            column: None,
            value: json!(rows),
            limit: json!(confirm.min_rows),
            message: format!(
                "{rows} rows, fewer than `confirm.min_rows` = {}",
                confirm.min_rows
            ),
        });
    }
    match train.column(&spec.target) {
        None => failures.push(Failure {
            rule: "target_present",
            column: Some(spec.target.clone()),
            value: Value::Null,
            limit: Value::Null,
            message: format!(
                "target column `{}` is missing from the prepared data (dropped?)",
                spec.target
            ),
        }),
        Some(col) if col.distinct.len() < 2 => failures.push(Failure {
            rule: "target_not_constant",
            column: Some(spec.target.clone()),
            value: json!(col.distinct.len()),
            limit: json!(2),
            message: format!(
                "target column `{}` is constant in the training rows ({} distinct value{})",
                spec.target,
                col.distinct.len(),
                if col.distinct.len() == 1 { "" } else { "s" }
            ),
        }),
        Some(_) => {}
    }
    let mut nulls = serde_json::Map::new();
    for (t, h) in train.columns.iter().zip(&holdout.columns) {
        let fraction = if rows == 0 {
            0.0
        } else {
            (t.missing + h.missing) as f64 / rows as f64
        };
        nulls.insert(t.name.clone(), json!(fraction));
        if fraction > confirm.max_null_fraction {
            failures.push(Failure {
                rule: "max_null_fraction",
                column: Some(t.name.clone()),
                value: json!(fraction),
                limit: json!(confirm.max_null_fraction),
                message: format!(
                    "column `{}` is {:.1}% missing, above `confirm.max_null_fraction` = {}",
                    t.name,
                    fraction * 100.0,
                    confirm.max_null_fraction
                ),
            });
        }
    }
    let verdict = if failures.is_empty() { "pass" } else { "fail" };
    let report = json!({
        "verdict": verdict,
        "rows": rows,
        "null_fraction": nulls,
        "failures": failures,
        "drift": "skipped: no model is tagged `production`",
    });
    let digest = ctx.store.put_bytes(&serde_json::to_vec_pretty(&report)?)?;
    Ok(StepOutput {
        outputs: super::outputs([("report", digest)]),
        output_digests: None,
        result: json!({ "verdict": verdict, "rows": rows, "failures": failures }),
    })
}

/// The exit-4 error for a failing gate, naming each failing rule and column.
pub fn gate_error(entry: &ActionEntry) -> Diagnostic {
    let lines: Vec<String> = entry.result["failures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["message"].as_str())
                .map(|m| format!("  - {m}"))
                .collect()
        })
        .unwrap_or_default();
    Diagnostic::new(format!(
        "data-quality gate failed ({} rule{}):\n{}\nreport: {}",
        lines.len(),
        if lines.len() == 1 { "" } else { "s" },
        lines.join("\n"),
        entry
            .outputs
            .get("report")
            .map(|d| format!("cache blob {d}"))
            .unwrap_or_default()
    ))
    .hint("fix the data, or adjust the limits under `[confirm]` in `ml.toml`")
    .exit(Exit::GateFailed)
}

pub fn summary(result: &Value) -> String {
    match result["verdict"].as_str() {
        Some("pass") => format!("gate passed on {} rows", result["rows"]),
        _ => format!(
            "gate failed: {} rule(s)",
            result["failures"].as_array().map(|a| a.len()).unwrap_or(0)
        ),
    }
}

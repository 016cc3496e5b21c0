//! Step 4, confirm: the data-quality gate on the prepared data.
//!
//! Rules, each checked on train + holdout unless said otherwise:
//! - `min_rows`: at least this many rows;
//! - the target present, and not constant in the training rows;
//! - `max_null_fraction`: each column's missing fraction at most this;
//! - `max_null_fraction_overall`: the missing fraction of all cells at most this;
//! - `required`: these columns present, with these types (as prepared);
//! - `min_class_fraction` (classification): every class of the target holds at least this
//!   share of the rows;
//! - `unique`: no non-missing value repeats in these columns (each column on its own);
//! - `drift` (`[confirm.drift]`): each feature column's PSI (see `drift`) between the training
//!   rows of the version tagged `production` and this run's training rows at most `psi`. The
//!   target, `define.ignore` columns and Word2Vec features (vectors of different fits are not
//!   comparable) are left out. Without such a version, drift is skipped and the report says so.
//!
//! The verdict is cached like any result: a failing gate replays as failing (exit 4) until its
//! inputs change. The report is stored twice, as JSON (`report`) and markdown (`report_md`);
//! both list every check, and every failure names the rule, the column, the value and the limit.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Ctx, ProblemSpec, StepOutput, StepResult, Verdict};
use crate::config::{ColumnType, Problem};
use crate::error::{Diagnostic, Exit};
use crate::project::Step;
use crate::store::ActionEntry;
use crate::table::{self, is_missing};

/// The training snapshot drift is measured against.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReference {
    /// The version tagged `production`.
    pub version: String,
    /// Digest of its prepared training rows (a CSV in the store).
    pub train: String,
}

#[derive(Debug, Serialize)]
struct Check {
    rule: &'static str,
    column: Option<String>,
    value: Value,
    limit: Value,
    pass: bool,
    message: String,
}

#[allow(
    clippy::too_many_lines,
    reason = "one rule after another (rows, nulls, classes, duplicates, required, drift), as docs/confirm.md lists them"
)]
pub fn run(
    ctx: &mut Ctx<'_>,
    prepare: &ActionEntry,
    spec: &ProblemSpec,
    reference: Option<&DriftReference>,
) -> Result<StepOutput> {
    let confirm = &ctx.config.confirm;
    let train_path = ctx.store.verified_path(&prepare.outputs["train"])?;
    let holdout_path = ctx.store.verified_path(&prepare.outputs["holdout"])?;
    let schema = super::prepare::schema(ctx.store, &prepare.outputs["schema"])?;
    // Prepare profiled both files as it wrote them; computed here only when it did not (an
    // entry restored from a remote cache).
    let train = super::locate::profile(ctx.store, &train_path, &prepare.outputs["train"])?;
    let holdout = super::locate::profile(ctx.store, &holdout_path, &prepare.outputs["holdout"])?;
    let rows = train.rows + holdout.rows;
    let mut checks = Vec::new();
    checks.push(Check {
        rule: "min_rows",
        column: None,
        value: json!(rows),
        limit: json!(confirm.min_rows),
        pass: rows >= confirm.min_rows,
        message: format!(
            "{rows} rows, fewer than `confirm.min_rows` = {}",
            confirm.min_rows
        ),
    });
    match train.column(&spec.target) {
        None => checks.push(Check {
            rule: "target_present",
            column: Some(spec.target.clone()),
            value: Value::Null,
            limit: Value::Null,
            pass: false,
            message: format!(
                "target column `{}` is missing from the prepared data (dropped?)",
                spec.target
            ),
        }),
        Some(col) => checks.push(Check {
            rule: "target_not_constant",
            column: Some(spec.target.clone()),
            value: json!(col.distinct.len()),
            limit: json!(2),
            pass: col.distinct.len() >= 2,
            message: format!(
                "target column `{}` is constant in the training rows ({} distinct value{})",
                spec.target,
                col.distinct.len(),
                if col.distinct.len() == 1 { "" } else { "s" }
            ),
        }),
    }
    let mut nulls = serde_json::Map::new();
    let (mut missing_cells, mut cells) = (0u64, 0u64);
    for (t, h) in train.columns.iter().zip(&holdout.columns) {
        // Ignored columns never reach the model: their missing values are no one's concern.
        if ctx.config.define.ignore.contains(&t.name) {
            continue;
        }
        let missing = t.missing + h.missing;
        missing_cells += missing;
        cells += rows;
        let fraction = if rows == 0 {
            0.0
        } else {
            missing as f64 / rows as f64
        };
        nulls.insert(t.name.clone(), json!(fraction));
        checks.push(Check {
            rule: "max_null_fraction",
            column: Some(t.name.clone()),
            value: json!(fraction),
            limit: json!(confirm.max_null_fraction),
            pass: fraction <= confirm.max_null_fraction,
            message: format!(
                "column `{}` is {:.1}% missing, above `confirm.max_null_fraction` = {}",
                t.name,
                fraction * 100.0,
                confirm.max_null_fraction
            ),
        });
    }
    let overall = if cells == 0 {
        0.0
    } else {
        missing_cells as f64 / cells as f64
    };
    if let Some(limit) = confirm.max_null_fraction_overall {
        checks.push(Check {
            rule: "max_null_fraction_overall",
            column: None,
            value: json!(overall),
            limit: json!(limit),
            pass: overall <= limit,
            message: format!(
                "{:.1}% of all cells are missing, above `confirm.max_null_fraction_overall` = {limit}",
                overall * 100.0
            ),
        });
    }
    for (column, want) in &confirm.required {
        let found = schema
            .columns
            .iter()
            .find(|(n, _)| n == column)
            .map(|(_, t)| *t);
        checks.push(Check {
            rule: "required",
            column: Some(column.clone()),
            value: found.map_or(Value::Null, |t| json!(t.as_str())),
            limit: json!(want.as_str()),
            pass: found == Some(*want),
            message: match found {
                None => {
                    let names: Vec<String> =
                        schema.columns.iter().map(|(n, _)| n.clone()).collect();
                    let hint = crate::suggest::closest(column, &names)
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default();
                    format!("required column `{column}` is not in the prepared data{hint}")
                }
                Some(t) => format!(
                    "required column `{column}` is {}, `confirm.required` wants {}",
                    t.as_str(),
                    want.as_str()
                ),
            },
        });
    }
    let scan = scan(
        [&train_path, &holdout_path],
        &spec.target,
        confirm.min_class_fraction.is_some() && spec.problem != Problem::Regression,
        &confirm.unique,
    )?;
    if let (Some(limit), false) = (
        confirm.min_class_fraction,
        spec.problem == Problem::Regression,
    ) {
        for (class, n) in &scan.classes {
            let fraction = if rows == 0 {
                0.0
            } else {
                *n as f64 / rows as f64
            };
            let shown = if class.is_empty() {
                "(missing)"
            } else {
                class.as_str()
            };
            checks.push(Check {
                rule: "min_class_fraction",
                column: Some(spec.target.clone()),
                value: json!({ "class": shown, "fraction": fraction }),
                limit: json!(limit),
                pass: fraction >= limit,
                message: format!(
                    "class `{shown}` of target `{}` is {:.1}% of the rows, below `confirm.min_class_fraction` = {limit}",
                    spec.target,
                    fraction * 100.0
                ),
            });
        }
    }
    for column in &confirm.unique {
        let (pass, value, message) = match scan.duplicates.get(column) {
            None => (
                false,
                Value::Null,
                format!("`confirm.unique` names column `{column}`, which is not in the prepared data"),
            ),
            Some((n, example)) => (
                *n == 0,
                json!(n),
                format!(
                    "column `{column}` has {n} duplicate value{} (e.g. `{}`), `confirm.unique` allows none",
                    if *n == 1 { "" } else { "s" },
                    example.as_deref().unwrap_or("")
                ),
            ),
        };
        checks.push(Check {
            rule: "unique",
            column: Some(column.clone()),
            value,
            limit: json!(0),
            pass,
            message,
        });
    }
    let drift = drift(
        ctx,
        prepare,
        spec,
        reference,
        &train_path,
        &schema.columns,
        &mut checks,
    )?;

    let failures: Vec<&Check> = checks.iter().filter(|c| !c.pass).collect();
    let verdict = Verdict::of(failures.is_empty());
    let report = json!({
        "verdict": verdict,
        "rows": rows,
        "train_rows": train.rows,
        "holdout_rows": holdout.rows,
        "null_fraction": nulls,
        "null_fraction_overall": overall,
        "checks": checks,
        "failures": failures,
        "drift": drift,
    });
    let digest = ctx.store.put_bytes(&serde_json::to_vec_pretty(&report)?)?;
    let markdown = ctx.store.put_bytes(markdown(&report).as_bytes())?;
    Ok(StepOutput {
        outputs: super::outputs([("report", digest), ("report_md", markdown)]),
        output_digests: None,
        result: ConfirmResult {
            verdict,
            rows,
            failures: failures
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?,
            drift: drift["status"].as_str().map(str::to_string),
        }
        .to_value(),
    })
}

/// What one pass over the prepared rows finds: class counts and duplicates per unique column.
struct Scan {
    classes: BTreeMap<String, u64>,
    /// Column → (duplicate values, one example); absent when the column is not in the data.
    duplicates: BTreeMap<String, (u64, Option<String>)>,
}

fn scan(files: [&Path; 2], target: &str, classes: bool, unique: &[String]) -> Result<Scan> {
    let mut out = Scan {
        classes: BTreeMap::new(),
        duplicates: BTreeMap::new(),
    };
    if !classes && unique.is_empty() {
        return Ok(out);
    }
    // One 64-bit hash per value: 8 bytes a row per unique column.
    let mut seen: Vec<HashSet<u64>> = vec![HashSet::new(); unique.len()];
    for path in files {
        let (mut rdr, names) = table::open(path)?;
        let t = names.iter().position(|n| n == target);
        let u: Vec<Option<usize>> = unique
            .iter()
            .map(|c| names.iter().position(|n| n == c))
            .collect();
        for (c, i) in unique.iter().zip(&u) {
            if i.is_some() {
                out.duplicates.entry(c.clone()).or_insert((0, None));
            }
        }
        let mut record = csv::StringRecord::new();
        while table::next_record(path, &mut rdr, &mut record)? {
            if let (true, Some(t)) = (classes, t) {
                let v = record.get(t).unwrap_or("");
                let class = if is_missing(v) { "" } else { v.trim() };
                *out.classes.entry(class.to_string()).or_default() += 1;
            }
            for (k, i) in u.iter().enumerate() {
                let Some(i) = i else { continue };
                let v = record.get(*i).unwrap_or("");
                if is_missing(v) {
                    continue;
                }
                let h = u64::from_le_bytes(
                    blake3::hash(v.trim().as_bytes()).as_bytes()[..8]
                        .try_into()
                        .unwrap(),
                );
                if !seen[k].insert(h) {
                    let entry = out
                        .duplicates
                        .get_mut(&unique[k])
                        .expect("registered above");
                    entry.0 += 1;
                    entry.1.get_or_insert_with(|| v.trim().to_string());
                }
            }
        }
    }
    Ok(out)
}

/// The drift section of the report; adds a `drift_psi` check per compared column.
fn drift(
    ctx: &Ctx<'_>,
    prepare: &ActionEntry,
    spec: &ProblemSpec,
    reference: Option<&DriftReference>,
    train: &Path,
    schema: &[(String, ColumnType)],
    checks: &mut Vec<Check>,
) -> Result<Value> {
    let limit = ctx.config.confirm.drift.psi;
    if !ctx.config.confirm.drift.enabled {
        return Ok(
            json!({ "status": "skipped", "reason": "drift skipped: disabled (`confirm.drift.enabled = false`)" }),
        );
    }
    let Some(reference) = reference else {
        return Ok(json!({
            "status": "skipped",
            "reason": "drift skipped: no model tagged `production` with a recorded training snapshot",
        }));
    };
    if !ctx.store.contains(&reference.train) {
        return Err(Diagnostic::new(format!(
            "the training rows of production version {} (blob {}) are not in the cache",
            reference.version,
            crate::store::short_digest(&reference.train)
        ))
        .hint("restore the cache (e.g. `mlbuild cache pull`), or set `[confirm.drift] enabled = false`")
        .into());
    }
    let ref_path = ctx.store.verified_path(&reference.train)?;
    let manifest: Value =
        serde_json::from_slice(&ctx.store.read_verified(&prepare.outputs["transform"])?)
            .context("reading prepare's transform manifest")?;
    let mut excluded: Vec<String> = vec![spec.target.clone()];
    excluded.extend(spec.ignore.iter().cloned());
    for step in manifest["steps"].as_array().into_iter().flatten() {
        if step["op"] == "word2vec" {
            excluded.extend(
                step["outputs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string)),
            );
        }
    }
    let columns: Vec<(String, ColumnType)> = schema
        .iter()
        .filter(|(n, _)| !excluded.contains(n))
        .cloned()
        .collect();
    let results = crate::drift::compare(&ref_path, train, &columns)?;
    for d in &results {
        if let Some(psi) = d.psi {
            checks.push(Check {
                rule: "drift_psi",
                column: Some(d.column.clone()),
                value: json!(psi),
                limit: json!(limit),
                pass: psi <= limit,
                message: format!(
                    "column `{}` drifted from production version {}: PSI {psi:.4} above `confirm.drift.psi` = {limit}",
                    d.column, reference.version
                ),
            });
        }
    }
    Ok(json!({
        "status": "checked",
        "reference": { "version": reference.version, "train": reference.train },
        "limit": limit,
        "epsilon": crate::drift::EPSILON,
        "excluded": excluded,
        "columns": results,
    }))
}

/// The markdown form of the report.
fn markdown(r: &Value) -> String {
    let cell = |v: &Value| match v {
        Value::Null => "—".to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.4}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    };
    let mut s = format!(
        "# Data-quality gate: {}\n\nRows: {} ({} train, {} holdout). Missing cells overall: {:.2}%.\n\n",
        if r["verdict"] == "pass" { "passed" } else { "FAILED" },
        r["rows"],
        r["train_rows"],
        r["holdout_rows"],
        r["null_fraction_overall"].as_f64().unwrap_or(0.0) * 100.0
    );
    let failures = r["failures"].as_array().cloned().unwrap_or_default();
    if !failures.is_empty() {
        s.push_str("## Failures\n\n| rule | column | value | limit | |\n|---|---|---|---|---|\n");
        for f in &failures {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                cell(&f["rule"]),
                cell(&f["column"]),
                cell(&f["value"]),
                cell(&f["limit"]),
                cell(&f["message"]).replace('|', "\\|")
            ));
        }
        s.push('\n');
    }
    s.push_str("## Checks\n\n| rule | column | value | limit | result |\n|---|---|---|---|---|\n");
    for c in r["checks"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            cell(&c["rule"]),
            cell(&c["column"]),
            cell(&c["value"]),
            cell(&c["limit"]),
            if c["pass"] == true {
                "pass"
            } else {
                "**fail**"
            }
        ));
    }
    s.push_str("\n## Drift\n\n");
    let d = &r["drift"];
    if d["status"] == "checked" {
        s.push_str(&format!(
            "PSI against the training rows of production version `{}`, limit {} (empty bins count as {}).\n\n| column | kind | bins | PSI | note |\n|---|---|---|---|---|\n",
            cell(&d["reference"]["version"]),
            cell(&d["limit"]),
            d["epsilon"]
        ));
        for c in d["columns"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                cell(&c["column"]),
                cell(&c["kind"]),
                cell(&c["bins"]),
                cell(&c["psi"]),
                c["note"].as_str().unwrap_or("")
            ));
        }
    } else {
        s.push_str(&format!(
            "{}.\n",
            d["reason"].as_str().unwrap_or("drift skipped")
        ));
    }
    s
}

/// The exit-4 error for a failing gate, naming each failing rule and column, and the paths of
/// its reports (relative to `project` when inside it) for a user to open.
pub fn gate_error(
    entry: &ActionEntry,
    store: &crate::store::Store,
    project: &std::path::Path,
) -> Diagnostic {
    let failures = ConfirmResult::read(&entry.result)
        .map(|r| r.failures)
        .unwrap_or_default();
    let lines: Vec<String> = failures
        .iter()
        .filter_map(|f| f["message"].as_str())
        .map(|m| format!("  - {m}"))
        .collect();
    let blob = |name: &str| {
        entry
            .outputs
            .get(name)
            .map(|d| {
                let path = store.blob_path(d);
                let shown = path.strip_prefix(project).unwrap_or(&path);
                shown.display().to_string()
            })
            .unwrap_or_default()
    };
    Diagnostic::new(format!(
        "data-quality gate failed ({} rule{}):\n{}\nreport: {} (markdown: {})",
        lines.len(),
        if lines.len() == 1 { "" } else { "s" },
        lines.join("\n"),
        blob("report"),
        blob("report_md"),
    ))
    .hint("fix the data, or adjust the limits under `[confirm]` in `ml.toml`")
    .exit(Exit::GateFailed)
}

/// The gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmResult {
    pub verdict: Verdict,
    pub rows: u64,
    /// The failing rules, each with `rule`, `column` where there is one, and `message`.
    pub failures: Vec<Value>,
    /// The drift check's status (`checked`, `skipped`), null when it was not configured.
    #[serde(default)]
    pub drift: Option<String>,
}

impl StepResult for ConfirmResult {
    const STEP: Step = Step::Confirm;

    fn summary(&self) -> String {
        let drift = match self.drift.as_deref() {
            Some("checked") => ", drift checked",
            Some("skipped") => ", drift skipped",
            _ => "",
        };
        match self.verdict {
            Verdict::Pass => format!("gate passed on {} rows{drift}", self.rows),
            Verdict::Fail => format!("gate failed: {} rule(s){drift}", self.failures.len()),
        }
    }
}

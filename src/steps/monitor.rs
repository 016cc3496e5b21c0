//! Step 6, monitor: judge the leader on the holdout, from stored artifacts only (no JVM).
//!
//! - **Metrics**: every metric of the problem type (`metrics::evaluate`), recomputed by mlbuild
//!   from the holdout's true target and the leader's stored holdout predictions.
//! - **Threshold**: `define.threshold` on the primary metric (`value >= threshold` for
//!   auc/aucpr, `value <= threshold` for error metrics); without one every model passes it.
//! - **Baseline check**: the model tagged `monitor.baseline` (default `production`) is scored
//!   natively (`crate::mojo`) on the *same* stored holdout, bound by column names, and its
//!   primary metric computed the same way; the leader must beat it by `monitor.min_improvement`
//!   in the metric's direction. No such model, its MOJO missing from the store, or a column it
//!   needs missing from the holdout: the check is skipped, and the report says why.
//! - **SHAP**: the leader's contributions on at most `monitor.shap_rows` holdout rows, computed
//!   natively from its MOJO (TreeSHAP for GBM/DRF/XRT/XGBoost, exact for GLM), or for the
//!   leaders that cannot be (StackedEnsemble, DeepLearning) the ones H2O gave execute;
//!   summarised as mean |contribution| per feature.
//!
//! The verdict is "fail" when the threshold or the baseline check fails. A miss is a verdict,
//! not an error: it is recorded and cached like any result, and modify decides. The report's
//! format is documented in `docs/monitor.md`.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::execute::ExecuteResult;
use super::{Ctx, ProblemSpec, StepOutput, StepResult, Verdict};
use crate::config;
use crate::metrics;
use crate::mojo::{Mojo, MojoError, Prediction};
use crate::project::Step;
use crate::store::ActionEntry;

pub async fn run(
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
    let task = spec.task()?;
    let computed =
        metrics::evaluate(&task, &actual, &table).context("computing holdout metrics")?;
    let value = computed
        .get(&spec.metric)
        .with_context(|| format!("metric `{}` was not computed", spec.metric))?;
    let threshold = ctx.config.define.threshold;
    let higher = config::metric_is_higher_better(&spec.metric);
    let threshold_pass = match threshold {
        None => true,
        Some(t) if higher => value >= t,
        Some(t) => value <= t,
    };
    let baseline = baseline_check(ctx, &holdout, &actual, &task, spec, value).await;
    let baseline_pass = baseline["status"] != "fail";
    let pass = threshold_pass && baseline_pass;
    let verdict = Verdict::of(pass);
    let executed = ExecuteResult::read(&execute.result)?;
    let shap = explain(ctx, execute, &executed, &holdout)?;
    let report = json!({
        "verdict": verdict,
        "metric": spec.metric,
        "value": value,
        "threshold": threshold,
        "threshold_pass": threshold_pass,
        "direction": if higher { "higher is better" } else { "lower is better" },
        "metrics": computed.values,
        "nobs": computed.nobs,
        "skipped_rows": computed.skipped,
        "leaderboard_metrics": executed.leaderboard_metrics,
        "baseline": baseline,
        "shap": shap,
    });
    let digest = ctx.store.put_bytes(&serde_json::to_vec_pretty(&report)?)?;
    Ok(StepOutput {
        outputs: super::outputs([("report", digest)]),
        output_digests: None,
        result: MonitorResult {
            verdict,
            metric: spec.metric.clone(),
            value: Some(value),
            threshold,
            higher_is_better: Some(higher),
            threshold_pass: Some(threshold_pass),
            metrics: json!(computed.values),
            baseline,
            shap,
        }
        .to_value(),
    })
}

/// The report's `shap`: the leader's contributions on at most `monitor.shap_rows` holdout rows
/// (evenly spaced, the rows execute would sample), summarised per feature. Computed natively
/// from the leader's MOJO when it can be explained natively ([`native_shap`]); otherwise
/// (StackedEnsemble, DeepLearning) from the contributions H2O gave execute. Never an error
/// for the run: what failed is the object's `error`.
fn explain(
    ctx: &Ctx<'_>,
    execute: &ActionEntry,
    executed: &ExecuteResult,
    holdout: &[u8],
) -> Result<Value> {
    let rows = ctx.config.monitor.shap_rows() as usize;
    if rows == 0 {
        return Ok(json!({ "skipped": "monitor.shap_rows = 0" }));
    }
    // Native when the MOJO loads and can be explained; otherwise what H2O gave execute.
    let refusal = match execute.outputs.get("mojo") {
        None => "execute recorded no MOJO for the leader".to_string(),
        Some(digest) => match Mojo::load(&ctx.store.read_verified(digest)?) {
            Err(e) => format!("its MOJO does not load natively: {e:#}"),
            Ok(mojo) => match mojo.contribution_layout() {
                Ok(_) => {
                    let method = native_method(mojo.algo());
                    return Ok(native_shap(&mojo, holdout, rows).unwrap_or_else(|e| {
                        json!({ "method": method, "algo": mojo.algo(), "error": format!("{e:#}") })
                    }));
                }
                Err(refusal) => format!("a {refusal} model cannot be explained natively"),
            },
        },
    };
    Ok(match execute.outputs.get("shap") {
        Some(d) => {
            let csv = ctx.store.read_verified(d)?;
            let info = executed.shap.clone().unwrap_or_default();
            match shap_importance(&csv) {
                Ok(importance) => json!({
                    "method": info["method"],
                    "rows": info["rows"],
                    "background_rows": info["background_rows"],
                    "importance": importance,
                }),
                Err(e) => json!({ "error": format!("reading the contributions: {e:#}") }),
            }
        }
        None => match &executed.shap {
            Some(info) if info.get("skipped").is_none() => info.clone(),
            _ => json!({
                "error": format!("{refusal}, and H2O gave no contributions"),
            }),
        },
    })
}

/// What monitor records as the method of native contributions.
pub fn native_method(algo: &str) -> &'static str {
    if algo.eq_ignore_ascii_case("glm") {
        "exact linear (native)"
    } else {
        "TreeSHAP (native)"
    }
}

/// Native contributions ([`Mojo::contributions`]) of at most `rows` evenly spaced holdout rows,
/// as the report's `shap`: `importance` is each feature's mean |contribution| (summed over the
/// classes when several are explained; `BiasTerm` left out), largest first; `by_class` holds
/// each class's own when there are several.
pub fn native_shap(mojo: &Mojo, holdout: &[u8], rows: usize) -> Result<Value> {
    let layout = mojo
        .contribution_layout()
        .map_err(|algo| anyhow::anyhow!("a {algo} model cannot be explained natively"))?;
    let (sample, _) = super::execute::sample_csv(holdout, rows)?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(sample.as_slice());
    let header: Vec<String> = rdr.headers()?.iter().map(str::to_string).collect();
    let binding = mojo.bind(&header)?;
    let width = layout.names.len();
    let mut sums = vec![0.0f64; width * layout.sets.len()];
    let (mut raw, mut out, mut n) = (Vec::new(), Vec::new(), 0usize);
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec?;
        let fields: Vec<&str> = rec.iter().collect();
        binding
            .encode(&fields, &mut raw)
            .with_context(|| format!("holdout row {}", i + 1))?;
        mojo.contributions(&raw, &mut out);
        anyhow::ensure!(out.len() == sums.len(), "the model gave no contributions");
        for (sum, v) in sums.iter_mut().zip(&out) {
            *sum += v.abs();
        }
        n += 1;
    }
    anyhow::ensure!(n > 0, "the holdout has no rows");
    let features = width - 1;
    let ranked = |values: Vec<(String, f64)>| {
        let mut values = values;
        values.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        json!(values)
    };
    let per_set: Vec<&[f64]> = sums.chunks(width).collect();
    let total = (0..features)
        .map(|j| {
            let sum: f64 = per_set.iter().map(|set| set[j]).sum();
            (layout.names[j].clone(), sum / n as f64)
        })
        .collect();
    let mut report = json!({
        "method": native_method(mojo.algo()),
        "algo": mojo.algo(),
        "rows": n,
        "background_rows": null,
        "importance": ranked(total),
    });
    if layout.sets.len() > 1 {
        let by_class: serde_json::Map<String, Value> = layout
            .sets
            .iter()
            .zip(&per_set)
            .map(|(class, set)| {
                let values = (0..features)
                    .map(|j| (layout.names[j].clone(), set[j] / n as f64))
                    .collect();
                (class.clone(), ranked(values))
            })
            .collect();
        report["by_class"] = Value::Object(by_class);
    }
    Ok(report)
}

/// The baseline check, as the report's `baseline` object: `status` is `pass`, `fail` or
/// `skipped` (with `reason`).
async fn baseline_check(
    ctx: &Ctx<'_>,
    holdout: &[u8],
    actual: &[Option<String>],
    task: &metrics::Task,
    spec: &ProblemSpec,
    leader_value: f64,
) -> Value {
    let tag = &ctx.config.monitor.baseline;
    let min_improvement = ctx.config.monitor.min_improvement;
    let skipped = |reason: String, version: Option<&str>| json!({ "status": "skipped", "tag": tag, "version": version, "reason": reason });
    let registry = match ctx.registry().await {
        Ok(registry) => registry,
        Err(e) => return skipped(format!("opening the registry: {e:#}"), None),
    };
    let version = match registry.tags().await {
        Err(e) => return skipped(format!("reading the registry's tags: {e:#}"), None),
        Ok(tags) => match tags.get(tag) {
            None => return skipped(format!("no version is tagged `{tag}`"), None),
            Some(id) => match registry.get(id).await {
                Ok(Some(v)) => v,
                Ok(None) => return skipped(format!("version {id} is not registered"), None),
                Err(e) => return skipped(format!("reading version {id}: {e:#}"), None),
            },
        },
    };
    let id = Some(version.id.as_str());
    let bytes = match ctx.store.read_verified(&version.model) {
        Ok(b) => b,
        Err(e) => return skipped(format!("its MOJO is not in the store: {e:#}"), id),
    };
    let value = match score_baseline(&bytes, holdout, actual, task, &spec.metric) {
        Ok(v) => v,
        Err(BaselineError::Incompatible(missing)) => {
            return json!({
                "status": "skipped",
                "tag": tag,
                "version": id,
                "reason": format!(
                    "incompatible: the baseline needs column{} {} that the holdout lacks",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
                ),
                "missing_columns": missing,
            })
        }
        Err(BaselineError::Other(e)) => return skipped(format!("scoring it natively: {e:#}"), id),
    };
    let higher = config::metric_is_higher_better(&spec.metric);
    let improvement = if higher {
        leader_value - value
    } else {
        value - leader_value
    };
    // NaN (e.g. auc on one class) never passes. The tolerance absorbs the last-bit differences
    // between H2O's predictions (the leader's) and the native scorer's (the baseline's), so a
    // leader identical to its baseline meets `min_improvement = 0`.
    let pass = improvement >= min_improvement - 1e-9;
    json!({
        "status": if pass { "pass" } else { "fail" },
        "tag": tag,
        "version": id,
        "metric": spec.metric,
        "baseline_value": value,
        "leader_value": leader_value,
        "improvement": improvement,
        "min_improvement": min_improvement,
    })
}

#[derive(Debug)]
pub enum BaselineError {
    /// The holdout lacks these columns of the baseline's signature.
    Incompatible(Vec<String>),
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for BaselineError {
    fn from(e: E) -> Self {
        BaselineError::Other(e.into())
    }
}

/// Scores a MOJO natively on a holdout CSV (bound by column names) and returns `metric`.
pub fn score_baseline(
    mojo: &[u8],
    holdout: &[u8],
    actual: &[Option<String>],
    task: &metrics::Task,
    metric: &str,
) -> Result<f64, BaselineError> {
    let mojo = Mojo::load(mojo)?;
    let table = score_csv(&mojo, holdout)?;
    let m = metrics::evaluate(task, actual, &table)?;
    m.get(metric)
        .ok_or_else(|| BaselineError::Other(anyhow::anyhow!("metric `{metric}` was not computed")))
}

/// The predictions of `mojo` on every row of a CSV, as a table named like H2O's.
pub fn score_csv(mojo: &Mojo, csv_bytes: &[u8]) -> Result<metrics::PredictionTable, BaselineError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(csv_bytes);
    let header: Vec<String> = rdr.headers()?.iter().map(str::to_string).collect();
    let binding = match mojo.bind(&header) {
        Ok(b) => b,
        Err(MojoError::MissingColumns { missing, .. }) => {
            return Err(BaselineError::Incompatible(missing))
        }
        Err(e) => return Err(e.into()),
    };
    let mut rows = Vec::new();
    let mut raw = Vec::new();
    for rec in rdr.records() {
        let rec = rec?;
        let fields: Vec<&str> = rec.iter().collect();
        binding.encode(&fields, &mut raw)?;
        let p = mojo.score_encoded(&raw);
        rows.push(match p {
            Prediction::Value(v) => vec![v.to_string()],
            Prediction::Class {
                label,
                probabilities,
            } => {
                let mut row = vec![mojo
                    .classes()
                    .and_then(|c| c.get(label).cloned())
                    .unwrap_or_default()];
                row.extend(probabilities.iter().map(|p| p.to_string()));
                row
            }
        });
    }
    Ok(metrics::PredictionTable::new(mojo.output_names(), rows)?)
}

/// Mean |contribution| per feature (the `BiasTerm` column left out), largest first.
pub fn shap_importance(csv_bytes: &[u8]) -> Result<Vec<(String, f64)>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(csv_bytes);
    let header: Vec<String> = rdr.headers()?.iter().map(str::to_string).collect();
    let mut sums = vec![0.0f64; header.len()];
    let mut n = 0usize;
    for rec in rdr.records() {
        let rec = rec?;
        for (i, cell) in rec.iter().enumerate().take(header.len()) {
            if let Ok(v) = cell.trim().parse::<f64>() {
                if v.is_finite() {
                    sums[i] += v.abs();
                }
            }
        }
        n += 1;
    }
    anyhow::ensure!(n > 0, "no contribution rows");
    let mut out: Vec<(String, f64)> = header
        .into_iter()
        .zip(sums)
        .filter(|(name, _)| name != "BiasTerm")
        .map(|(name, s)| (name, s / n as f64))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// What monitor judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorResult {
    /// Pass when the threshold and the baseline check both pass.
    pub verdict: Verdict,
    /// The primary metric and its holdout value (null when it is not a number).
    pub metric: String,
    pub value: Option<f64>,
    /// `define.threshold`, null when none is set.
    pub threshold: Option<f64>,
    /// Absent from results recorded before the baseline check existed.
    #[serde(default)]
    pub higher_is_better: Option<bool>,
    #[serde(default)]
    pub threshold_pass: Option<bool>,
    /// Every holdout metric: name → value.
    pub metrics: Value,
    /// The baseline check: `status` (`pass`, `fail`, `skipped`), `version`, `baseline_value`,
    /// `improvement`, or `reason` (docs/monitor.md).
    #[serde(default)]
    pub baseline: Value,
    #[serde(default)]
    pub shap: Value,
}

impl MonitorResult {
    /// Whether the threshold was met (results recorded before `threshold_pass` existed failed
    /// only on the threshold, so their verdict says).
    pub fn met_threshold(&self) -> bool {
        self.threshold_pass.unwrap_or(self.verdict == Verdict::Pass)
    }
}

impl StepResult for MonitorResult {
    const STEP: Step = Step::Monitor;

    fn summary(&self) -> String {
        let base = self.threshold_summary();
        let b = &self.baseline;
        match b["status"].as_str() {
            Some("pass") | Some("fail") => format!(
                "{base}; {} baseline {} ({:.4}, {:+.4})",
                if b["status"] == "pass" {
                    "beats"
                } else {
                    "does not beat"
                },
                b["version"].as_str().unwrap_or("?"),
                b["baseline_value"].as_f64().unwrap_or(f64::NAN),
                b["improvement"].as_f64().unwrap_or(f64::NAN),
            ),
            _ => base,
        }
    }
}

impl MonitorResult {
    fn threshold_summary(&self) -> String {
        let value = self
            .value
            .map(|v| format!("{v:.4}"))
            .unwrap_or_else(|| "?".into());
        let metric = &self.metric;
        match self.threshold {
            None => format!("holdout {metric} {value} (no threshold)"),
            Some(t) => {
                let op = if self.higher_is_better == Some(true) {
                    "≥"
                } else {
                    "≤"
                };
                let ok = if self.met_threshold() {
                    "meets"
                } else {
                    "misses"
                };
                format!("holdout {metric} {value} {ok} threshold {op} {t}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/mojo")
                .join(name),
        )
        .unwrap()
    }

    /// Mean |contribution| per feature, computed here from `Mojo::contributions` on the rows
    /// `native_shap` samples, set by set (`width` names each).
    fn mean_abs(mojo: &Mojo, holdout: &[u8], rows: usize, width: usize) -> Vec<Vec<f64>> {
        let (sample, _) = super::super::execute::sample_csv(holdout, rows).unwrap();
        let mut rdr = csv::Reader::from_reader(sample.as_slice());
        let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
        let binding = mojo.bind(&header).unwrap();
        let (mut raw, mut out, mut all) = (Vec::new(), Vec::new(), Vec::new());
        for rec in rdr.records() {
            let rec = rec.unwrap();
            binding
                .encode(&rec.iter().collect::<Vec<_>>(), &mut raw)
                .unwrap();
            mojo.contributions(&raw, &mut out);
            all.push(out.clone());
        }
        let n = all.len() as f64;
        (0..out.len() / width)
            .map(|set| {
                (0..width - 1)
                    .map(|j| all.iter().map(|r| r[set * width + j].abs()).sum::<f64>() / n)
                    .collect()
            })
            .collect()
    }

    fn lookup(ranked: &Value, name: &str) -> f64 {
        let row = ranked.as_array().unwrap().iter().find(|r| r[0] == name);
        row.unwrap_or_else(|| panic!("{name} not in {ranked}"))[1]
            .as_f64()
            .unwrap()
    }

    #[test]
    fn native_shap_summarises_each_class_and_their_total() {
        let holdout = fixture("iris.in.csv");
        let mojo = Mojo::load(&fixture("gbm_multi.zip")).unwrap();
        let r = native_shap(&mojo, &holdout, 40).unwrap();
        assert_eq!(r["method"], "TreeSHAP (native)", "{r}");
        assert_eq!(r["rows"], 40, "{r}");
        let layout = mojo.contribution_layout().unwrap();
        assert_eq!(layout.sets.len(), 3);
        let expected = mean_abs(&mojo, &holdout, 40, layout.names.len());
        let features = &layout.names[..layout.names.len() - 1];
        for (j, feature) in features.iter().enumerate() {
            let mut total = 0.0;
            for (set, class) in layout.sets.iter().enumerate() {
                let got = lookup(&r["by_class"][class], feature);
                assert!(
                    (got - expected[set][j]).abs() < 1e-12,
                    "{class} {feature}: {r}"
                );
                total += got;
            }
            assert!(
                (lookup(&r["importance"], feature) - total).abs() < 1e-12,
                "{r}"
            );
        }
        // Largest first, no bias.
        let values: Vec<f64> = r["importance"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v[1].as_f64().unwrap())
            .collect();
        assert!(values.windows(2).all(|w| w[0] >= w[1]), "{r}");
        assert_eq!(values.len(), features.len());
    }

    #[test]
    fn native_shap_of_a_glm_is_exact_linear_and_refuses_deep_learning() {
        let holdout = fixture("prostate.in.csv");
        let mojo = Mojo::load(&fixture("glm_bin.zip")).unwrap();
        let r = native_shap(&mojo, &holdout, 25).unwrap();
        assert_eq!(r["method"], "exact linear (native)", "{r}");
        assert!(r.get("by_class").is_none(), "{r}");
        let layout = mojo.contribution_layout().unwrap();
        let expected = mean_abs(&mojo, &holdout, 25, layout.names.len());
        for (j, feature) in layout.names[..layout.names.len() - 1].iter().enumerate() {
            assert!((lookup(&r["importance"], feature) - expected[0][j]).abs() < 1e-12);
        }
        let dl = Mojo::load(&fixture("dl_bin.zip")).unwrap();
        let e = native_shap(&dl, &holdout, 25).unwrap_err().to_string();
        assert!(e.to_lowercase().contains("deeplearning"), "{e}");
    }

    #[test]
    fn baseline_scores_natively_on_the_holdout_by_column_names() {
        let holdout = fixture("prostate.in.csv");
        let actual = metrics::read_column(&holdout, "CAPSULE").unwrap();
        let task = metrics::Task::classification(["0", "1"]).unwrap();
        let auc = score_baseline(&fixture("gbm_bin.zip"), &holdout, &actual, &task, "auc").unwrap();
        assert!(auc > 0.5 && auc <= 1.0, "auc {auc}");
        // Named like H2O's prediction frame, one row per holdout row.
        let mojo = Mojo::load(&fixture("gbm_bin.zip")).unwrap();
        let table = score_csv(&mojo, &holdout).unwrap();
        assert_eq!(table.columns(), ["predict", "p0", "p1"]);
        assert_eq!(table.len(), actual.len());
    }

    #[test]
    fn a_missing_column_is_incompatible_and_named() {
        let holdout = fixture("prostate.in.csv");
        let text = String::from_utf8(holdout)
            .unwrap()
            .replace("GLEASON", "GLEASON_X");
        let actual = metrics::read_column(text.as_bytes(), "CAPSULE").unwrap();
        let task = metrics::Task::classification(["0", "1"]).unwrap();
        match score_baseline(
            &fixture("gbm_bin.zip"),
            text.as_bytes(),
            &actual,
            &task,
            "auc",
        ) {
            Err(BaselineError::Incompatible(missing)) => assert_eq!(missing, ["GLEASON"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shap_importance_is_mean_absolute_without_bias() {
        let csv = b"A,B,BiasTerm\n1,-4,9\n-3,2,9\n";
        let imp = shap_importance(csv).unwrap();
        assert_eq!(imp, vec![("B".to_string(), 3.0), ("A".to_string(), 2.0)]);
    }
}

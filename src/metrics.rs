//! Holdout metrics computed without the JVM, from stored artifacts: the holdout CSV (true target)
//! and H2O's prediction CSV for the same rows, in the same order.
//!
//! Metric names are spelled as on H2O's leaderboard. See `docs/metrics.md` for the formulas and
//! how each value relates to what H2O itself would report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Probabilities are clamped to `[LOGLOSS_EPS, 1 - LOGLOSS_EPS]` before taking the log, as H2O does.
pub const LOGLOSS_EPS: f64 = 1e-15;

/// What kind of model is being judged, with its response domain for classification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Task {
    /// Two classes. `classes` is the domain in H2O order; `positive` is `classes[1]`, the class
    /// whose probability H2O ranks for AUC (second label of the sorted domain).
    Binary {
        positive: String,
        classes: Vec<String>,
    },
    /// Three or more classes, domain in H2O order.
    Multiclass { classes: Vec<String> },
    /// Numeric response.
    Regression,
}

impl Task {
    /// A classification task from the distinct labels of the response (any order, duplicates
    /// allowed): the domain is sorted as H2O sorts it ([`h2o_domain`]); two labels give
    /// [`Task::Binary`] with the second as positive, more give [`Task::Multiclass`].
    pub fn classification<I, S>(labels: I) -> Result<Task, MetricsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let classes = h2o_domain(labels);
        match classes.len() {
            0 | 1 => Err(MetricsError::InvalidTask(format!(
                "a classification response needs at least 2 classes, found {}: {:?}",
                classes.len(),
                classes
            ))),
            2 => Ok(Task::Binary {
                positive: classes[1].clone(),
                classes,
            }),
            _ => Ok(Task::Multiclass { classes }),
        }
    }

    /// The class domain (empty for regression).
    pub fn classes(&self) -> &[String] {
        match self {
            Task::Binary { classes, .. } | Task::Multiclass { classes } => classes,
            Task::Regression => &[],
        }
    }
}

/// Distinct labels sorted the way H2O orders a categorical domain: numerically when every label
/// parses as a number (a numeric column turned into a factor: `2 < 10`), else lexicographically.
pub fn h2o_domain<I, S>(labels: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut v: Vec<String> = labels.into_iter().map(|s| s.as_ref().to_string()).collect();
    v.sort();
    v.dedup();
    let nums: Option<Vec<f64>> = v.iter().map(|s| s.trim().parse::<f64>().ok()).collect();
    if let Some(nums) = nums {
        let mut pairs: Vec<(f64, String)> = nums.into_iter().zip(v).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        pairs.into_iter().map(|(_, s)| s).collect()
    } else {
        v
    }
}

/// H2O's prediction frame as downloaded (CSV with header), kept as text; cells are parsed by
/// [`evaluate`] so that errors can name the column and row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredictionTable {
    columns: Vec<String>,
    /// Row-major cells; every row has `columns.len()` cells.
    rows: Vec<Vec<String>>,
}

impl PredictionTable {
    /// Build a table from a header and rows (each row must have one cell per column).
    pub fn new(columns: Vec<String>, rows: Vec<Vec<String>>) -> Result<Self, MetricsError> {
        if columns.is_empty() {
            return Err(MetricsError::Malformed(
                "the prediction table has no columns".into(),
            ));
        }
        for (i, r) in rows.iter().enumerate() {
            if r.len() != columns.len() {
                return Err(MetricsError::Malformed(format!(
                    "prediction row {} has {} fields, the header has {}",
                    i + 1,
                    r.len(),
                    columns.len()
                )));
            }
        }
        Ok(PredictionTable { columns, rows })
    }
    /// Column names, in file order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }
    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    /// Index of the column named exactly `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
    /// The probability column for a class: the column named exactly `label`, else `p<label>`
    /// (H2O names them `p0,p1` for a domain `0,1`). The `predict` column never matches.
    pub fn probability_column(&self, label: &str) -> Option<usize> {
        let find = |name: &str| {
            self.columns
                .iter()
                .enumerate()
                .position(|(i, c)| c == name && !self.is_predict(i))
        };
        find(label).or_else(|| find(&format!("p{label}")))
    }
    fn is_predict(&self, i: usize) -> bool {
        self.column_index("predict") == Some(i)
    }
    fn cell(&self, row: usize, col: usize) -> &str {
        &self.rows[row][col]
    }
}

/// Metric values by H2O leaderboard name, plus how many rows were used and skipped.
///
/// `NaN` values (e.g. `rmsle` with a value below −1, `auc` with one class only) serialize as JSON
/// `null` and read back as `NaN`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Rows evaluated (actual present).
    pub nobs: usize,
    /// Rows skipped because their actual value was missing (empty or `NA`).
    pub skipped: usize,
    /// Metric name → value.
    #[serde(with = "nan_as_null")]
    pub values: BTreeMap<String, f64>,
}

impl Metrics {
    /// The value of one metric, if computed.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.get(name).copied()
    }
}

mod nan_as_null {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        let m: BTreeMap<&String, Option<f64>> = m
            .iter()
            .map(|(k, v)| (k, if v.is_finite() { Some(*v) } else { None }))
            .collect();
        m.serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let m: BTreeMap<String, Option<f64>> = BTreeMap::deserialize(d)?;
        Ok(m.into_iter()
            .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
            .collect())
    }
}

/// Why metrics could not be computed. Row numbers are 1-based data rows (the header is not
/// counted).
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot read {what} CSV: {source}")]
    Csv {
        what: &'static str,
        #[source]
        source: csv::Error,
    },
    #[error("{0}")]
    Malformed(String),
    #[error(
        "column `{column}` not found in the {what} CSV (columns: {})",
        crate::report::list_names(available)
    )]
    MissingColumn {
        what: &'static str,
        column: String,
        available: Vec<String>,
    },
    #[error("column `{column}` appears more than once in the {what} CSV")]
    DuplicateColumn { what: &'static str, column: String },
    #[error(
        "no probability column for class `{class}` in the predictions (looked for `{class}` and `p{class}`; columns: {})",
        available.join(", ")
    )]
    MissingProbabilityColumn {
        class: String,
        available: Vec<String>,
    },
    #[error(
        "row count mismatch: the holdout has {actual} rows, the predictions have {predictions}"
    )]
    RowCountMismatch { actual: usize, predictions: usize },
    #[error("row {row}, column `{column}`: `{value}` is not a finite number")]
    ParseNumber {
        column: String,
        row: usize,
        value: String,
    },
    #[error("row {row}, column `{column}`: label `{value}` is not one of the classes {classes:?}")]
    UnknownLabel {
        column: String,
        row: usize,
        value: String,
        classes: Vec<String>,
    },
    #[error("invalid task: {0}")]
    InvalidTask(String),
    #[error("no rows to evaluate: all {skipped} holdout rows have a missing actual value")]
    NoRows { skipped: usize },
}

impl MetricsError {
    /// A short suggestion for the user, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            MetricsError::MissingColumn { .. } => {
                Some("check the target column name against the holdout file's header".into())
            }
            MetricsError::MissingProbabilityColumn { .. } | MetricsError::UnknownLabel { .. } => Some(
                "the task's class domain must match the model's response domain; was the predictions file made by this model?"
                    .into(),
            ),
            MetricsError::RowCountMismatch { .. } => Some(
                "the predictions must be H2O's output for exactly the holdout rows, in order; re-run prediction"
                    .into(),
            ),
            _ => None,
        }
    }
}

fn header_of(
    rdr: &mut csv::Reader<&[u8]>,
    what: &'static str,
) -> Result<Vec<String>, MetricsError> {
    Ok(rdr
        .headers()
        .map_err(|source| MetricsError::Csv { what, source })?
        .iter()
        .map(str::to_string)
        .collect())
}

/// Parse H2O's prediction CSV (header required). Cells stay text until [`evaluate`].
pub fn read_predictions(csv_bytes: &[u8]) -> Result<PredictionTable, MetricsError> {
    const WHAT: &str = "predictions";
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(csv_bytes);
    let columns = header_of(&mut rdr, WHAT)?;
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|source| MetricsError::Csv { what: WHAT, source })?;
        rows.push(rec.iter().map(str::to_string).collect());
    }
    PredictionTable::new(columns, rows)
}

/// Pull one column out of a CSV with a header, by exact name. An empty field or `NA` gives
/// `None`; other values are returned as written.
pub fn read_column(csv_bytes: &[u8], column: &str) -> Result<Vec<Option<String>>, MetricsError> {
    const WHAT: &str = "holdout";
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(csv_bytes);
    let header = header_of(&mut rdr, WHAT)?;
    let mut hits = header
        .iter()
        .enumerate()
        .filter(|(_, c)| c.as_str() == column)
        .map(|(i, _)| i);
    let idx = match (hits.next(), hits.next()) {
        (Some(i), None) => i,
        (Some(_), Some(_)) => {
            return Err(MetricsError::DuplicateColumn {
                what: WHAT,
                column: column.to_string(),
            })
        }
        (None, _) => {
            return Err(MetricsError::MissingColumn {
                what: WHAT,
                column: column.to_string(),
                available: header,
            })
        }
    };
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|source| MetricsError::Csv { what: WHAT, source })?;
        let v = rec.get(idx).unwrap_or("");
        out.push(if crate::table::is_missing(v) {
            None
        } else {
            Some(v.to_string())
        });
    }
    Ok(out)
}

const ACTUAL: &str = "<actual>";

fn parse_num(s: &str, column: &str, row: usize) -> Result<f64, MetricsError> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(MetricsError::ParseNumber {
            column: column.to_string(),
            row: row + 1,
            value: s.to_string(),
        }),
    }
}

fn class_index(
    classes: &[String],
    value: &str,
    column: &str,
    row: usize,
) -> Result<usize, MetricsError> {
    classes
        .iter()
        .position(|c| c == value)
        .ok_or_else(|| MetricsError::UnknownLabel {
            column: column.to_string(),
            row: row + 1,
            value: value.to_string(),
            classes: classes.to_vec(),
        })
}

fn required_column(p: &PredictionTable, name: &str) -> Result<usize, MetricsError> {
    p.column_index(name)
        .ok_or_else(|| MetricsError::MissingColumn {
            what: "predictions",
            column: name.to_string(),
            available: p.columns.clone(),
        })
}

fn prob_columns(p: &PredictionTable, classes: &[String]) -> Result<Vec<usize>, MetricsError> {
    classes
        .iter()
        .map(|c| {
            p.probability_column(c)
                .ok_or_else(|| MetricsError::MissingProbabilityColumn {
                    class: c.clone(),
                    available: p.columns.clone(),
                })
        })
        .collect()
}

fn clamp_prob(p: f64) -> f64 {
    p.clamp(LOGLOSS_EPS, 1.0 - LOGLOSS_EPS)
}

/// H2O's `ConfusionMatrix.mean_per_class_error`: mean over all classes of
/// `(row total − correct) / row total`, a class with no actual rows counting as 0.
fn mean_per_class_error(cm: &[Vec<usize>]) -> f64 {
    let k = cm.len();
    let sum: f64 = cm
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let s: usize = row.iter().sum();
            if s == 0 {
                0.0
            } else {
                (s - row[i]) as f64 / s as f64
            }
        })
        .sum();
    sum / k as f64
}

/// Evaluate predictions against the actual values (same order, same length). Rows whose actual
/// is `None` are skipped and counted in [`Metrics::skipped`]; their prediction cells are not read.
pub fn evaluate(
    task: &Task,
    actual: &[Option<String>],
    predictions: &PredictionTable,
) -> Result<Metrics, MetricsError> {
    if actual.len() != predictions.len() {
        return Err(MetricsError::RowCountMismatch {
            actual: actual.len(),
            predictions: predictions.len(),
        });
    }
    let rows: Vec<(usize, &str)> = actual
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.as_deref().map(|a| (i, a)))
        .collect();
    let skipped = actual.len() - rows.len();
    if rows.is_empty() {
        return Err(MetricsError::NoRows { skipped });
    }
    let values = match task {
        Task::Binary { positive, classes } => binary(positive, classes, &rows, predictions)?,
        Task::Multiclass { classes } => multiclass(classes, &rows, predictions)?,
        Task::Regression => regression(&rows, predictions)?,
    };
    Ok(Metrics {
        nobs: rows.len(),
        skipped,
        values,
    })
}

fn binary(
    positive: &str,
    classes: &[String],
    rows: &[(usize, &str)],
    p: &PredictionTable,
) -> Result<BTreeMap<String, f64>, MetricsError> {
    if classes.len() != 2 {
        return Err(MetricsError::InvalidTask(format!(
            "a binary task needs exactly 2 classes, got {classes:?}"
        )));
    }
    let pos_idx = classes.iter().position(|c| c == positive).ok_or_else(|| {
        MetricsError::InvalidTask(format!(
            "positive class `{positive}` is not one of {classes:?}"
        ))
    })?;
    let cols = prob_columns(p, classes)?;
    let n = rows.len() as f64;
    let (mut sse, mut ll) = (0.0, 0.0);
    // (score of the positive class, is the actual positive)
    let mut scored: Vec<(f64, bool)> = Vec::with_capacity(rows.len());
    for &(r, a) in rows {
        let iact = class_index(classes, a, ACTUAL, r)?;
        let probs = [
            parse_num(p.cell(r, cols[0]), &p.columns[cols[0]], r)?,
            parse_num(p.cell(r, cols[1]), &p.columns[cols[1]], r)?,
        ];
        let p_true = probs[iact];
        sse += (1.0 - p_true).powi(2);
        ll -= clamp_prob(p_true).ln();
        scored.push((probs[pos_idx], iact == pos_idx));
    }
    let curve = binary_curve(&scored);
    let mse = sse / n;
    let mut m = BTreeMap::new();
    m.insert("auc".into(), curve.auc);
    m.insert("aucpr".into(), curve.aucpr);
    m.insert("logloss".into(), ll / n);
    m.insert("mean_per_class_error".into(), curve.mean_per_class_error);
    m.insert("mse".into(), mse);
    m.insert("rmse".into(), mse.sqrt());
    Ok(m)
}

/// Exact ranking metrics of a binary score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinaryCurve {
    /// ROC AUC (Mann–Whitney, ties count one half). NaN without both classes.
    pub auc: f64,
    /// Trapezoid area under the precision–recall points of every distinct threshold. NaN without
    /// positives.
    pub aucpr: f64,
    /// Threshold maximising F1 (predict positive when score ≥ threshold).
    pub max_f1_threshold: f64,
    /// Mean per-class error of the confusion matrix at `max_f1_threshold`.
    pub mean_per_class_error: f64,
}

/// Compute [`BinaryCurve`] from `(score, is_positive)` pairs. Thresholds are the distinct scores,
/// swept from high to low; tied scores move together.
pub fn binary_curve(scored: &[(f64, bool)]) -> BinaryCurve {
    let mut v: Vec<(f64, bool)> = scored.to_vec();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let total_pos = v.iter().filter(|x| x.1).count() as f64;
    let total_neg = v.len() as f64 - total_pos;
    let (mut tp, mut fp) = (0.0f64, 0.0f64);
    let mut roc_area = 0.0; // in units of (positives × negatives)
    let mut pr_area = 0.0;
    let (mut prev_recall, mut prev_precision) = (0.0, f64::NAN);
    let mut best = (f64::NEG_INFINITY, f64::NAN, 0.0, 0.0); // (f1, threshold, tp, fp)
    let mut i = 0;
    while i < v.len() {
        let t = v[i].0;
        let (mut gp, mut gn) = (0.0, 0.0);
        while i < v.len() && v[i].0 == t {
            if v[i].1 {
                gp += 1.0
            } else {
                gn += 1.0
            }
            i += 1;
        }
        roc_area += gn * (tp + gp / 2.0);
        tp += gp;
        fp += gn;
        let precision = tp / (tp + fp);
        let recall = if total_pos > 0.0 { tp / total_pos } else { 0.0 };
        if prev_precision.is_nan() {
            prev_precision = precision; // the curve starts flat at the first point's precision
        }
        pr_area += (recall - prev_recall) * (precision + prev_precision) / 2.0;
        prev_recall = recall;
        prev_precision = precision;
        let f1 = 2.0 * tp / (2.0 * tp + fp + (total_pos - tp));
        let f1 = if f1.is_nan() { 0.0 } else { f1 };
        if f1 > best.0 {
            best = (f1, t, tp, fp);
        }
    }
    let auc = if total_pos > 0.0 && total_neg > 0.0 {
        roc_area / (total_pos * total_neg)
    } else {
        f64::NAN
    };
    let aucpr = if total_pos > 0.0 { pr_area } else { f64::NAN };
    let (_, thr, btp, bfp) = best;
    let pos_err = if total_pos > 0.0 {
        (total_pos - btp) / total_pos
    } else {
        0.0
    };
    let neg_err = if total_neg > 0.0 {
        bfp / total_neg
    } else {
        0.0
    };
    BinaryCurve {
        auc,
        aucpr,
        max_f1_threshold: thr,
        mean_per_class_error: (pos_err + neg_err) / 2.0,
    }
}

fn multiclass(
    classes: &[String],
    rows: &[(usize, &str)],
    p: &PredictionTable,
) -> Result<BTreeMap<String, f64>, MetricsError> {
    if classes.len() < 2 {
        return Err(MetricsError::InvalidTask(format!(
            "a multiclass task needs at least 2 classes, got {classes:?}"
        )));
    }
    let predict = required_column(p, "predict")?;
    let cols = prob_columns(p, classes)?;
    let k = classes.len();
    let mut cm = vec![vec![0usize; k]; k];
    let n = rows.len() as f64;
    let (mut sse, mut ll) = (0.0, 0.0);
    for &(r, a) in rows {
        let iact = class_index(classes, a, ACTUAL, r)?;
        let ipred = class_index(classes, p.cell(r, predict), "predict", r)?;
        let col = cols[iact];
        let p_true = parse_num(p.cell(r, col), &p.columns[col], r)?;
        // Validate the other probability cells too, so a broken file is reported.
        for &c in &cols {
            parse_num(p.cell(r, c), &p.columns[c], r)?;
        }
        sse += (1.0 - p_true).powi(2);
        ll -= clamp_prob(p_true).ln();
        cm[iact][ipred] += 1;
    }
    let mse = sse / n;
    let mut m = BTreeMap::new();
    m.insert("logloss".into(), ll / n);
    m.insert("mean_per_class_error".into(), mean_per_class_error(&cm));
    m.insert("mse".into(), mse);
    m.insert("rmse".into(), mse.sqrt());
    Ok(m)
}

fn regression(
    rows: &[(usize, &str)],
    p: &PredictionTable,
) -> Result<BTreeMap<String, f64>, MetricsError> {
    let predict = required_column(p, "predict")?;
    let n = rows.len() as f64;
    let (mut sse, mut sae, mut sle) = (0.0, 0.0, 0.0);
    let (mut sy, mut syy) = (0.0, 0.0);
    for &(r, a) in rows {
        let y = parse_num(a, ACTUAL, r)?;
        let yhat = parse_num(p.cell(r, predict), "predict", r)?;
        let e = y - yhat;
        sse += e * e;
        sae += e.abs();
        if y < -1.0 || yhat < -1.0 {
            sle = f64::NAN;
        } else {
            sle += (yhat.ln_1p() - y.ln_1p()).powi(2);
        }
        sy += y;
        syy += y * y;
    }
    let mse = sse / n;
    // Population variance of the actuals, as H2O's weightedSigma() (no n−1 correction).
    let var = if rows.len() <= 1 {
        0.0
    } else {
        (syy / n - (sy / n) * (sy / n)).max(0.0)
    };
    let r2 = if var > 0.0 { 1.0 - mse / var } else { f64::NAN };
    let mut m = BTreeMap::new();
    m.insert("mae".into(), sae / n);
    m.insert("mean_residual_deviance".into(), mse);
    m.insert("mse".into(), mse);
    m.insert("r2".into(), r2);
    m.insert("rmse".into(), mse.sqrt());
    m.insert("rmsle".into(), (sle / n).sqrt());
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }
    macro_rules! assert_close {
        ($a:expr, $b:expr) => {{
            let (a, b) = ($a, $b);
            assert!(close(a, b), "{} = {a}, expected {b}", stringify!($a));
        }};
    }

    fn some(v: &[&str]) -> Vec<Option<String>> {
        v.iter()
            .map(|s| {
                if s.is_empty() {
                    None
                } else {
                    Some(s.to_string())
                }
            })
            .collect()
    }

    fn bin_task() -> Task {
        Task::classification(["1", "0"]).unwrap()
    }

    /// Build a `predict,p0,p1` table from p1 scores.
    fn bin_preds(p1: &[f64]) -> PredictionTable {
        let mut csv = String::from("predict,p0,p1\n");
        for &p in p1 {
            csv += &format!("{},{},{}\n", if p >= 0.5 { 1 } else { 0 }, 1.0 - p, p);
        }
        read_predictions(csv.as_bytes()).unwrap()
    }

    #[test]
    fn task_domain_sorting() {
        assert_eq!(
            bin_task(),
            Task::Binary {
                positive: "1".into(),
                classes: vec!["0".into(), "1".into()]
            }
        );
        let t = Task::classification(["YES", "NO", "YES"]).unwrap();
        assert_eq!(
            t,
            Task::Binary {
                positive: "YES".into(),
                classes: vec!["NO".into(), "YES".into()]
            }
        );
        assert_eq!(h2o_domain(["10", "2", "1"]), vec!["1", "2", "10"]);
        assert_eq!(h2o_domain(["b", "a", "B"]), vec!["B", "a", "b"]);
        assert!(Task::classification(["x"]).is_err());
        assert!(matches!(
            Task::classification(["a", "b", "c"]).unwrap(),
            Task::Multiclass { .. }
        ));
    }

    #[test]
    fn auc_perfect_inverse_random() {
        let actual = some(&["0", "0", "1", "1"]);
        let m = evaluate(&bin_task(), &actual, &bin_preds(&[0.1, 0.2, 0.8, 0.9])).unwrap();
        assert_close!(m.get("auc").unwrap(), 1.0);
        assert_close!(m.get("aucpr").unwrap(), 1.0);
        assert_close!(m.get("mean_per_class_error").unwrap(), 0.0);
        let m = evaluate(&bin_task(), &actual, &bin_preds(&[0.9, 0.8, 0.2, 0.1])).unwrap();
        assert_close!(m.get("auc").unwrap(), 0.0);
        // All scores equal: AUC one half; PR is the flat line at the positive rate.
        let m = evaluate(&bin_task(), &actual, &bin_preds(&[0.5, 0.5, 0.5, 0.5])).unwrap();
        assert_close!(m.get("auc").unwrap(), 0.5);
        assert_close!(m.get("aucpr").unwrap(), 0.5);
        // Interleaved: pairs (pos,neg) ordered correctly 3 of 4 -> 0.75.
        let actual = some(&["0", "1", "0", "1"]);
        let m = evaluate(&bin_task(), &actual, &bin_preds(&[0.1, 0.2, 0.3, 0.4])).unwrap();
        assert_close!(m.get("auc").unwrap(), 0.75);
    }

    #[test]
    fn auc_with_ties_and_aucpr_by_hand() {
        // scores: neg .2, pos .5, neg .5, pos .8
        // pairs: (.5p,.2n)=1 (.5p,.5n)=.5 (.8p,.2n)=1 (.8p,.5n)=1 -> 3.5/4
        let c = binary_curve(&[(0.2, false), (0.5, true), (0.5, false), (0.8, true)]);
        assert_close!(c.auc, 0.875);
        // PR points: t=.8 (R .5, P 1); t=.5 (R 1, P 2/3); t=.2 (R 1, P .5)
        // area = .5*1 + .5*(1+2/3)/2 + 0 = 0.5 + 5/12
        assert_close!(c.aucpr, 0.5 + 5.0 / 12.0);
        // F1: t=.8 -> 2/(2+0+1)=2/3; t=.5 -> 4/(4+1+0)=0.8; t=.2 -> 4/(4+2)=2/3
        assert_close!(c.max_f1_threshold, 0.5);
        // at t=.5: FN=0, FP=1 of 2 negatives -> (0 + .5)/2
        assert_close!(c.mean_per_class_error, 0.25);
    }

    #[test]
    fn binary_logloss_mse_and_clamping() {
        let actual = some(&["1", "0"]);
        let m = evaluate(&bin_task(), &actual, &bin_preds(&[0.8, 0.4])).unwrap();
        // p_true = .8 and .6
        assert_close!(
            m.get("logloss").unwrap(),
            -(0.8f64.ln() + 0.6f64.ln()) / 2.0
        );
        assert_close!(m.get("mse").unwrap(), (0.04 + 0.16) / 2.0);
        assert_close!(m.get("rmse").unwrap(), 0.1f64.sqrt());
        // A confidently wrong prediction: p_true = 0 -> clamped to 1e-15.
        let m = evaluate(&bin_task(), &some(&["1"]), &bin_preds(&[0.0])).unwrap();
        assert_close!(m.get("logloss").unwrap(), -(1e-15f64).ln());
        assert!(m.get("logloss").unwrap().is_finite());
        // p_true = 1 -> clamped to 1 - 1e-15, logloss tiny but positive.
        let m = evaluate(&bin_task(), &some(&["1"]), &bin_preds(&[1.0])).unwrap();
        let ll = m.get("logloss").unwrap();
        assert!(ll > 0.0 && ll < 1e-14, "{ll}");
        assert!(m.get("auc").unwrap().is_nan());
    }

    #[test]
    fn skips_missing_actuals() {
        let actual = vec![Some("0".to_string()), None, Some("1".to_string())];
        // The skipped row's prediction cells are never read, even if broken.
        let p = read_predictions(b"predict,p0,p1\n0,0.9,0.1\n,,\n1,0.2,0.8\n").unwrap();
        let m = evaluate(&bin_task(), &actual, &p).unwrap();
        assert_eq!((m.nobs, m.skipped), (2, 1));
        assert_close!(m.get("auc").unwrap(), 1.0);
        let none = vec![None, None, None];
        assert!(matches!(
            evaluate(&bin_task(), &none, &p),
            Err(MetricsError::NoRows { skipped: 3 })
        ));
    }

    #[test]
    fn column_matching_labels_and_p_prefix() {
        let t = Task::classification(["NO", "YES"]).unwrap();
        let p = read_predictions(b"predict,NO,YES\nYES,0.3,0.7\nNO,0.6,0.4\n").unwrap();
        assert_eq!(p.probability_column("YES"), Some(2));
        let m = evaluate(&t, &some(&["YES", "NO"]), &p).unwrap();
        assert_close!(m.get("auc").unwrap(), 1.0);
        let p = read_predictions(b"predict,p0,p1\n1,0.3,0.7\n").unwrap();
        assert_eq!(p.probability_column("0"), Some(1));
        assert_eq!(p.probability_column("1"), Some(2));
        // Exact label wins over the p-prefixed name.
        let p = read_predictions(b"predict,p1,1\n1,0.3,0.7\n").unwrap();
        assert_eq!(p.probability_column("1"), Some(2));
        // `predict` is never a probability column.
        let p = read_predictions(b"predict,ppredict\nx,0.5\n").unwrap();
        assert_eq!(p.probability_column("predict"), Some(1));
        // Missing class column: error names the class.
        let p = read_predictions(b"predict,NO,MAYBE\nNO,0.5,0.5\n").unwrap();
        let e = evaluate(&t, &some(&["NO"]), &p).unwrap_err();
        assert!(
            matches!(&e, MetricsError::MissingProbabilityColumn { class, .. } if class == "YES")
        );
        assert!(e.to_string().contains("`pYES`"), "{e}");
    }

    #[test]
    fn multiclass_by_hand() {
        let t = Task::classification(["a", "b", "c"]).unwrap();
        let p = read_predictions(
            b"predict,a,b,c\n\
              a,0.7,0.2,0.1\n\
              b,0.1,0.8,0.1\n\
              a,0.5,0.3,0.2\n\
              c,0.2,0.2,0.6\n",
        )
        .unwrap();
        let actual = some(&["a", "b", "b", "c"]);
        let m = evaluate(&t, &actual, &p).unwrap();
        // p_true: .7 .8 .3 .6
        let ll = -(0.7f64.ln() + 0.8f64.ln() + 0.3f64.ln() + 0.6f64.ln()) / 4.0;
        assert_close!(m.get("logloss").unwrap(), ll);
        // H2O: mean of (1 - p_true)^2 = (.09 + .04 + .49 + .16)/4
        assert_close!(m.get("mse").unwrap(), 0.78 / 4.0);
        assert_close!(m.get("rmse").unwrap(), (0.78f64 / 4.0).sqrt());
        // class errors: a 0/1, b 1/2, c 0/1 -> (0 + .5 + 0)/3
        assert_close!(m.get("mean_per_class_error").unwrap(), 0.5 / 3.0);
        assert_eq!(m.values.len(), 4);
        // Unknown predicted label names the column and row.
        let p = read_predictions(b"predict,a,b,c\nz,0.7,0.2,0.1\n").unwrap();
        let e = evaluate(&t, &some(&["a"]), &p).unwrap_err();
        assert!(
            matches!(&e, MetricsError::UnknownLabel { column, row: 1, .. } if column == "predict"),
            "{e}"
        );
    }

    #[test]
    fn multiclass_class_without_rows_counts_zero() {
        let t = Task::Multiclass {
            classes: vec!["a".into(), "b".into(), "c".into()],
        };
        let p = read_predictions(b"predict,a,b,c\nb,0.4,0.5,0.1\nb,0.2,0.7,0.1\n").unwrap();
        let m = evaluate(&t, &some(&["a", "b"]), &p).unwrap();
        assert_close!(m.get("mean_per_class_error").unwrap(), 1.0 / 3.0);
    }

    #[test]
    fn regression_by_hand() {
        let p = read_predictions(b"predict\n1.5\n2\n2.5\n4\n").unwrap();
        let actual = some(&["1", "2", "3", "4"]);
        let m = evaluate(&Task::Regression, &actual, &p).unwrap();
        // errors: -.5 0 .5 0 -> sse .5
        assert_close!(m.get("mse").unwrap(), 0.125);
        assert_close!(m.get("rmse").unwrap(), 0.125f64.sqrt());
        assert_close!(m.get("mae").unwrap(), 0.25);
        assert_close!(m.get("mean_residual_deviance").unwrap(), 0.125);
        // population variance of 1..4 = 1.25
        assert_close!(m.get("r2").unwrap(), 1.0 - 0.125 / 1.25);
        let sle = (2.5f64.ln() - 2f64.ln()).powi(2) + (3.5f64.ln() - 4f64.ln()).powi(2);
        assert_close!(m.get("rmsle").unwrap(), (sle / 4.0).sqrt());
        // A value below -1 makes rmsle NaN, the rest stay.
        let p = read_predictions(b"predict\n-2\n0\n").unwrap();
        let m = evaluate(&Task::Regression, &some(&["0", "1"]), &p).unwrap();
        assert!(m.get("rmsle").unwrap().is_nan());
        assert_close!(m.get("mse").unwrap(), 2.5);
        // NaN round-trips through JSON as null.
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"rmsle\":null"), "{json}");
        let back: Metrics = serde_json::from_str(&json).unwrap();
        assert!(back.get("rmsle").unwrap().is_nan());
        assert_eq!(back.get("mse"), m.get("mse"));
    }

    #[test]
    fn errors_name_column_and_row() {
        let p = read_predictions(b"predict\n1\noops\n").unwrap();
        let e = evaluate(&Task::Regression, &some(&["1", "2"]), &p).unwrap_err();
        assert!(
            matches!(&e, MetricsError::ParseNumber { column, row: 2, value } if column == "predict" && value == "oops")
        );
        assert!(
            e.to_string().contains("row 2") && e.to_string().contains("`predict`"),
            "{e}"
        );
        let e = evaluate(&Task::Regression, &some(&["1"]), &p).unwrap_err();
        assert!(matches!(
            e,
            MetricsError::RowCountMismatch {
                actual: 1,
                predictions: 2
            }
        ));
        assert!(e.hint().is_some());
        let p = read_predictions(b"predict,p0,p1\n1,0.1,x\n").unwrap();
        let e = evaluate(&bin_task(), &some(&["1"]), &p).unwrap_err();
        assert!(
            matches!(&e, MetricsError::ParseNumber { column, row: 1, .. } if column == "p1"),
            "{e}"
        );
        let e = evaluate(&bin_task(), &some(&["2"]), &p).unwrap_err();
        assert!(
            matches!(&e, MetricsError::UnknownLabel { row: 1, .. }),
            "{e}"
        );
        let p = read_predictions(b"p0,p1\n0.1,0.9\n").unwrap();
        let e = evaluate(&Task::Regression, &some(&["1"]), &p).unwrap_err();
        assert!(matches!(&e, MetricsError::MissingColumn { column, .. } if column == "predict"));
        assert!(read_predictions(b"predict,p0\n1,0.1,0.9\n").is_err());
    }

    #[test]
    fn read_column_by_name() {
        let csv = b"x,target,y\n1,a,2\n2,,3\n3,NA,4\n4,b,5\n";
        assert_eq!(
            read_column(csv, "target").unwrap(),
            some(&["a", "", "", "b"])
        );
        let e = read_column(csv, "nope").unwrap_err();
        assert!(
            e.to_string().contains("`nope`") && e.to_string().contains("target"),
            "{e}"
        );
        assert!(matches!(
            read_column(b"t,t\n1,2\n", "t"),
            Err(MetricsError::DuplicateColumn { .. })
        ));
    }
}

//! The AutoML leaderboard, decoded from H2O's column-major TwoDimTable.
//!
//! `GET /99/Leaderboards/{project@@response}?extensions=ALL` returns `table.columns[c].name` and
//! `table.data[c][row]` (column-major, G7). Column 0 (named "") is the row index as strings;
//! `model_id` and `algo` are strings; every other column is numeric, where numbers may also be
//! the strings "NaN", "Infinity", "-Infinity" (G8). All numeric columns land in `metrics`,
//! including `training_time_ms` and `predict_time_per_row_ms`.
//!
//! Serialized metrics keep non-finite values as those same strings (plain serde_json would turn
//! NaN into `null` and then refuse to read it back).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// As H2O reports it, lowercase (`auc`, `logloss`, `rmse`).
    pub sort_metric: String,
    /// The table's column names, without the row-index column.
    pub columns: Vec<String>,
    /// Best first.
    pub rows: Vec<LeaderboardRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardRow {
    pub model_id: String,
    pub algo: String,
    #[serde(with = "finite_map")]
    pub metrics: BTreeMap<String, f64>,
}

impl Leaderboard {
    pub fn leader(&self) -> Option<&LeaderboardRow> {
        self.rows.first()
    }
}

/// A JSON number, or one of H2O's non-finite strings.
pub(crate) fn json_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// Decodes the `/99/Leaderboards` response body.
pub fn decode_leaderboard(body: &Value) -> Result<Leaderboard, String> {
    let table = body.get("table").ok_or("no `table`")?;
    let cols = table
        .get("columns")
        .and_then(Value::as_array)
        .ok_or("no `table.columns`")?;
    let data = table
        .get("data")
        .and_then(Value::as_array)
        .ok_or("no `table.data`")?;
    if data.len() != cols.len() {
        return Err(format!(
            "{} columns but {} data columns",
            cols.len(),
            data.len()
        ));
    }
    let names: Vec<String> = cols
        .iter()
        .map(|c| {
            c.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let nrows = table
        .get("rowcount")
        .and_then(Value::as_u64)
        .map(|n| n as usize)
        .or_else(|| data.first().and_then(Value::as_array).map(Vec::len))
        .unwrap_or(0);
    let cell = |c: usize, r: usize| data[c].as_array().and_then(|col| col.get(r));

    let model_col = names
        .iter()
        .position(|n| n == "model_id")
        .ok_or("no `model_id` column")?;
    let algo_col = names.iter().position(|n| n == "algo");
    let mut rows = Vec::with_capacity(nrows);
    for r in 0..nrows {
        let model_id = cell(model_col, r)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("row {r} has no model_id"))?
            .to_string();
        let algo = algo_col
            .and_then(|c| cell(c, r))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| algo_from_model_id(&model_id));
        let mut metrics = BTreeMap::new();
        for (c, name) in names.iter().enumerate() {
            if name.is_empty() || c == model_col || Some(c) == algo_col {
                continue;
            }
            let declared_string = cols[c].get("type").and_then(Value::as_str) == Some("string");
            if declared_string {
                continue;
            }
            if let Some(x) = cell(c, r).and_then(json_f64) {
                metrics.insert(name.clone(), x);
            }
        }
        rows.push(LeaderboardRow {
            model_id,
            algo,
            metrics,
        });
    }
    let sort_metric = body
        .get("sort_metric")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| names.get(2).cloned())
        .unwrap_or_default();
    Ok(Leaderboard {
        sort_metric,
        columns: names.into_iter().filter(|n| !n.is_empty()).collect(),
        rows,
    })
}

/// `StackedEnsemble_AllModels_1_AutoML_…` → `StackedEnsemble`; `GBM_1_AutoML_…` → `GBM`.
fn algo_from_model_id(id: &str) -> String {
    id.split('_').next().unwrap_or(id).to_string()
}

mod finite_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        let v: BTreeMap<&String, Value> = m
            .iter()
            .map(|(k, x)| {
                let v = if x.is_nan() {
                    Value::from("NaN")
                } else if *x == f64::INFINITY {
                    Value::from("Infinity")
                } else if *x == f64::NEG_INFINITY {
                    Value::from("-Infinity")
                } else {
                    Value::from(*x)
                };
                (k, v)
            })
            .collect();
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let v = BTreeMap::<String, Value>::deserialize(d)?;
        v.into_iter()
            .map(|(k, x)| match super::json_f64(&x) {
                Some(f) => Ok((k, f)),
                None if x.is_null() => Ok((k, f64::NAN)),
                None => Err(serde::de::Error::custom(format!(
                    "metric `{k}` is not a number: {x}"
                ))),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of reference/h2o-rest.md §5, with a NaN cell and a column without `type`.
    const SAMPLE: &str = r#"{"project_name":"pr_aml1@@CAPSULE","models":[{"name":"GLM_1_AutoML_1_20261126_40641"}],
     "leaderboard_frame":null,"sort_metric":"auc","sort_decreasing":true,"sort_metrics":[0.8111,0.8090,0.7794],
     "table":{"name":"Leaderboard for project pr_aml1@@CAPSULE","rowcount":3,
       "columns":[{"name":"","type":"string"},{"name":"model_id","type":"string"},{"name":"auc","type":"double"},
                  {"name":"logloss"},{"name":"training_time_ms","type":"long"},{"name":"algo","type":"string"}],
       "data":[["0","1","2"],
               ["GLM_1_AutoML_1_20261126_40641","StackedEnsemble_AllModels_1_AutoML_1_20261126_40641","GBM_1_AutoML_1_20261126_40641"],
               [0.8111,0.8090,0.7794],
               [0.51,"NaN",0.55],
               [37,3688,109],
               ["GLM","StackedEnsemble","GBM"]]}}"#;

    #[test]
    fn decodes_column_major() {
        let body: Value = serde_json::from_str(SAMPLE).unwrap();
        let lb = decode_leaderboard(&body).unwrap();
        assert_eq!(lb.sort_metric, "auc");
        assert_eq!(
            lb.columns,
            ["model_id", "auc", "logloss", "training_time_ms", "algo"]
        );
        assert_eq!(lb.rows.len(), 3);
        assert_eq!(lb.rows[0].model_id, "GLM_1_AutoML_1_20261126_40641");
        assert_eq!(lb.rows[0].algo, "GLM");
        assert_eq!(lb.rows[0].metrics["auc"], 0.8111);
        assert_eq!(lb.rows[0].metrics["training_time_ms"], 37.0);
        assert_eq!(lb.rows[1].algo, "StackedEnsemble");
        assert!(lb.rows[1].metrics["logloss"].is_nan());
        assert_eq!(lb.rows[2].metrics["logloss"], 0.55);
        assert_eq!(lb.rows[2].metrics.len(), 3);
        assert_eq!(lb.leader().unwrap().model_id, lb.rows[0].model_id);
    }

    #[test]
    fn round_trips_nan_through_json() {
        let body: Value = serde_json::from_str(SAMPLE).unwrap();
        let lb = decode_leaderboard(&body).unwrap();
        let text = serde_json::to_string(&lb).unwrap();
        assert!(text.contains("\"logloss\":\"NaN\""), "{text}");
        let back: Leaderboard = serde_json::from_str(&text).unwrap();
        assert!(back.rows[1].metrics["logloss"].is_nan());
        assert_eq!(back.rows[0], lb.rows[0]);
    }

    #[test]
    fn algo_fallback_and_errors() {
        assert_eq!(algo_from_model_id("XGBoost_2_AutoML_1_x"), "XGBoost");
        let bad: Value = serde_json::json!({"table":{"columns":[{"name":"a"}],"data":[]}});
        assert!(decode_leaderboard(&bad).is_err());
    }
}

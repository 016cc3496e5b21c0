//! Metric and algorithm names: which are valid where, their direction, and H2O's spelling.
//!
//! `ml.toml` spells metrics in lowercase; H2O AutoML's `sort_metric` has its own spelling
//! ([`h2o_metric_name`]). Algorithm names use H2O's spelling (`DeepLearning`).

use super::schema::Problem;

pub const BINARY_METRICS: &[&str] = &[
    "auc",
    "aucpr",
    "logloss",
    "mean_per_class_error",
    "rmse",
    "mse",
];
pub const MULTICLASS_METRICS: &[&str] = &["logloss", "mean_per_class_error", "rmse", "mse"];
pub const REGRESSION_METRICS: &[&str] = &["rmse", "mse", "mae", "rmsle", "mean_residual_deviance"];

/// Every metric valid for some problem type, for checks made before the problem is known.
pub const ALL_METRICS: &[&str] = &[
    "auc",
    "aucpr",
    "logloss",
    "mean_per_class_error",
    "rmse",
    "mse",
    "mae",
    "rmsle",
    "mean_residual_deviance",
];

/// The algorithms `execute.include_algos` / `exclude_algos` may name, in H2O's spelling.
pub const ALGORITHMS: &[&str] = &[
    "GLM",
    "DRF",
    "GBM",
    "DeepLearning",
    "StackedEnsemble",
    "XGBoost",
];

/// The metrics that make sense for `problem`.
pub fn metrics_for(problem: Problem) -> &'static [&'static str] {
    match problem {
        Problem::Binary => BINARY_METRICS,
        Problem::Multiclass => MULTICLASS_METRICS,
        Problem::Regression => REGRESSION_METRICS,
    }
}

/// True when a larger value of `metric` is better (auc, aucpr); error metrics are lower-better.
pub fn metric_is_higher_better(metric: &str) -> bool {
    matches!(metric, "auc" | "aucpr")
}

/// The primary metric when `define.metric` is omitted.
pub fn default_metric(problem: Problem) -> &'static str {
    match problem {
        Problem::Binary => "auc",
        Problem::Multiclass => "logloss",
        Problem::Regression => "rmse",
    }
}

/// The spelling H2O AutoML's `sort_metric` expects. Unknown names (which validation rejects)
/// map to `AUTO`, H2O's own default.
pub fn h2o_metric_name(metric: &str) -> &'static str {
    match metric {
        "auc" => "AUC",
        "aucpr" => "AUCPR",
        "logloss" => "logloss",
        "rmse" => "RMSE",
        "mse" => "MSE",
        "mae" => "MAE",
        "rmsle" => "RMSLE",
        "mean_per_class_error" => "mean_per_class_error",
        "mean_residual_deviance" => "deviance",
        _ => "AUTO",
    }
}

//! Rules on well-typed values: ranges, known names, and consistency between keys.
//!
//! Runs after typed deserialisation, on the `Config`, and finds positions in the spanned tree.
//! Algorithm names are matched ignoring case and stored in H2O's spelling, so `xgboost` and
//! `XGBoost` give the same config (and the same step keys).

use super::document::{Entry, Node, Value};
use super::error::{ConfigError, Place};
use super::keys::{closest, list, Locator};
use super::metric::{metrics_for, ALGORITHMS, ALL_METRICS};
use super::schema::{Config, Problem};

struct Checker<'a> {
    doc: &'a Node,
    at: &'a Locator<'a>,
}

impl Checker<'_> {
    /// The place of the value at `path`, or the file when the value is a default.
    fn place(&self, path: &[&str]) -> Place {
        match self.doc.lookup(path) {
            Some(entry) => self.at.value_place(entry),
            None => Place::WholeFile {
                path: self.at.path.into(),
            },
        }
    }

    /// The place of element `index` of the array at `path`.
    fn element_place(&self, path: &[&str], index: usize) -> Place {
        let Some(entry) = self.doc.lookup(path) else {
            return self.place(path);
        };
        match &entry.node.value {
            Value::Array(items) if index < items.len() => {
                let element = Entry {
                    key: String::new(),
                    key_origin: entry.node.origin.clone(),
                    node: items[index].clone(),
                };
                self.at.value_place(&element)
            }
            _ => self.at.value_place(entry),
        }
    }

    fn invalid(&self, path: &[&str], message: String, hint: Option<String>) -> ConfigError {
        ConfigError::InvalidValue {
            at: Box::new(self.place(path)),
            key: path.join("."),
            message,
            hint,
        }
    }
}

pub(crate) fn validate(config: &mut Config, doc: &Node, at: &Locator) -> Result<(), ConfigError> {
    let check = Checker { doc, at };
    let define = &config.define;

    if define.target.trim().is_empty() {
        return Err(check.invalid(
            &["define", "target"],
            "`define.target` must name a column, found an empty string".to_string(),
            Some("e.g. `target = \"CAPSULE\"`".to_string()),
        ));
    }
    if let Some(metric) = &define.metric {
        check_metric(&check, &["define", "metric"], metric, define.problem)?;
    }
    if let Some(threshold) = define.threshold {
        finite(&check, &["define", "threshold"], threshold)?;
    }
    for (list_key, columns) in [
        ("define.ignore", &define.ignore),
        ("prepare.drop", &config.prepare.drop),
    ] {
        if let Some(index) = columns.iter().position(|c| *c == define.target) {
            let path: Vec<&str> = list_key.split('.').collect();
            return Err(ConfigError::InvalidValue {
                at: Box::new(check.element_place(&path, index)),
                key: format!("{list_key}[{index}]"),
                message: format!(
                    "the target `{}` is also listed in `{list_key}`",
                    define.target
                ),
                hint: Some(format!(
                    "remove it from `{list_key}`: the target is what the model predicts"
                )),
            });
        }
    }

    if config.locate.path.trim().is_empty() {
        return Err(check.invalid(
            &["locate", "path"],
            "`locate.path` must name a data file, found an empty string".to_string(),
            Some("e.g. `path = \"data/train.csv\"`".to_string()),
        ));
    }

    let holdout = config.prepare.holdout;
    if !(holdout > 0.0 && holdout < 1.0) {
        return Err(check.invalid(
            &["prepare", "holdout"],
            format!("`prepare.holdout` must be in (0, 1), found {holdout}"),
            Some("it is the fraction of rows held out for evaluation, e.g. `holdout = 0.2`".into()),
        ));
    }

    if let Some(sample) = config.prepare.sample {
        if !(sample > 0.0 && sample <= 1.0) {
            return Err(check.invalid(
                &["prepare", "sample"],
                format!("`prepare.sample` must be in (0, 1], found {sample}"),
                Some(
                    "it is the fraction of rows kept before the split, e.g. `sample = 0.1`".into(),
                ),
            ));
        }
    }

    let max_null = config.confirm.max_null_fraction;
    if !(0.0..=1.0).contains(&max_null) {
        return Err(check.invalid(
            &["confirm", "max_null_fraction"],
            format!("`confirm.max_null_fraction` must be in [0, 1], found {max_null}"),
            Some("it is the largest fraction of missing values allowed per column".into()),
        ));
    }

    for key in ["include_algos", "exclude_algos"] {
        let algos = match key {
            "include_algos" => &mut config.execute.include_algos,
            _ => &mut config.execute.exclude_algos,
        };
        for (index, algo) in algos.iter_mut().enumerate() {
            match ALGORITHMS.iter().find(|a| a.eq_ignore_ascii_case(algo)) {
                Some(spelling) => *algo = spelling.to_string(),
                None => {
                    let hint = match closest(algo, ALGORITHMS) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("valid algorithms: {}", list(ALGORITHMS)),
                    };
                    return Err(ConfigError::InvalidValue {
                        at: Box::new(check.element_place(&["execute", key], index)),
                        key: format!("execute.{key}[{index}]"),
                        message: format!("`execute.{key}` names an unknown algorithm {algo:?}"),
                        hint: Some(hint),
                    });
                }
            }
        }
    }
    if let Some(metric) = &config.execute.sort_metric {
        check_metric(
            &check,
            &["execute", "sort_metric"],
            metric,
            config.define.problem,
        )?;
    }

    finite(
        &check,
        &["monitor", "min_improvement"],
        config.monitor.min_improvement,
    )?;

    if config.modify.max_attempts < 1 {
        return Err(check.invalid(
            &["modify", "max_attempts"],
            format!(
                "`modify.max_attempts` must be at least 1, found {}",
                config.modify.max_attempts
            ),
            Some("1 means a single training attempt, without feedback retries".into()),
        ));
    }

    if config.h2o.nodes < 1 {
        return Err(check.invalid(
            &["h2o", "nodes"],
            "`h2o.nodes` must be at least 1, found 0".to_string(),
            None,
        ));
    }
    Ok(())
}

fn finite(check: &Checker, path: &[&str], value: f64) -> Result<(), ConfigError> {
    if value.is_finite() {
        return Ok(());
    }
    Err(check.invalid(
        path,
        format!(
            "`{}` must be a finite number, found {value}",
            path.join(".")
        ),
        None,
    ))
}

fn check_metric(
    check: &Checker,
    path: &[&str],
    metric: &str,
    problem: Option<Problem>,
) -> Result<(), ConfigError> {
    let key = path.join(".");
    let valid = problem.map_or(ALL_METRICS, metrics_for);
    if valid.contains(&metric) {
        return Ok(());
    }
    let for_problem = problem
        .map(|p| format!(" for a {} problem", problem_name(p)))
        .unwrap_or_default();
    if let (true, Some(problem)) = (ALL_METRICS.contains(&metric), problem) {
        return Err(check.invalid(
            path,
            format!(
                "`{key}` {metric:?} does not apply to a {} problem",
                problem_name(problem)
            ),
            Some(format!("use one of {}", list(valid))),
        ));
    }
    let hint = match closest(metric, valid) {
        Some(s) if s.eq_ignore_ascii_case(metric) => {
            format!("did you mean `{s}`? metric names are lowercase in `ml.toml`")
        }
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("valid metrics{for_problem}: {}", list(valid)),
    };
    Err(check.invalid(
        path,
        format!("`{key}` names an unknown metric {metric:?}"),
        Some(hint),
    ))
}

fn problem_name(problem: Problem) -> &'static str {
    match problem {
        Problem::Binary => "binary",
        Problem::Multiclass => "multiclass",
        Problem::Regression => "regression",
    }
}

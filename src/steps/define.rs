//! Step 1, define: the problem's scope. Infers the problem type from the target column when
//! `problem` is omitted and defaults the metric by problem type.
//!
//! Inference: a categorical target is binary with at most two levels, else multiclass; a
//! numeric target is binary with at most two distinct values (0/1 labels), else regression.
//! A numeric column of class codes with more levels must say `problem = "multiclass"`.

use anyhow::Result;
use serde_json::{json, Value};

use crate::config::{self, Config, Problem};
use crate::error::Diagnostic;
use crate::pipeline::{ProblemSpec, StepOutput};
use crate::table::{Kind, Profile};

fn target_missing(config: &Config, profile: &Profile) -> Diagnostic {
    let names = profile.names();
    let mut d = Diagnostic::new(format!(
        "target column `{}` is not in the data ({} has columns: {})",
        config.define.target,
        crate::source::describe(&config.locate),
        names.join(", ")
    ));
    if let Some(c) = super::closest(&config.define.target, names.iter()) {
        d = d.hint(format!(
            "did you mean `{c}`? set `[define] target` in `ml.toml`"
        ));
    } else {
        d = d.hint("set `[define] target` in `ml.toml` to one of the data's columns");
    }
    d
}

/// Fails with a helpful error when the target column is not in the data.
/// Also checks `define.ignore`, which names columns of the data too.
pub fn check_columns(config: &Config, profile: &Profile) -> Result<()> {
    if profile.column(&config.define.target).is_none() {
        return Err(target_missing(config, profile).into());
    }
    let names = profile.names();
    for name in &config.define.ignore {
        if !names.contains(name) {
            let d = Diagnostic::new(format!(
                "`define.ignore` names column `{name}`, which is not in the data"
            ));
            let d = match super::closest(name, names.iter()) {
                Some(c) => d.hint(format!("did you mean `{c}`?")),
                None => d.hint(format!("the data's columns are: {}", names.join(", "))),
            };
            return Err(d.into());
        }
    }
    Ok(())
}

pub fn run(config: &Config, profile: &Profile) -> Result<StepOutput> {
    let target = profile
        .column(&config.define.target)
        .ok_or_else(|| target_missing(config, profile))?;
    let levels = target.distinct.len();
    let inferred = match (target.kind, levels) {
        (_, 0..=2) if !target.distinct_capped => Problem::Binary,
        (Kind::Categorical, _) => Problem::Multiclass,
        (Kind::Numeric, _) => Problem::Regression,
    };
    let problem = match config.define.problem {
        None => inferred,
        Some(Problem::Regression) if target.kind == Kind::Categorical => {
            return Err(Diagnostic::new(format!(
                "`define.problem` is \"regression\" but target `{}` is not numeric",
                config.define.target
            ))
            .hint("use problem = \"binary\" or \"multiclass\", or fix the column")
            .into())
        }
        Some(Problem::Binary) if levels > 2 || target.distinct_capped => {
            return Err(Diagnostic::new(format!(
                "`define.problem` is \"binary\" but target `{}` has {}{} distinct values",
                config.define.target,
                levels,
                if target.distinct_capped { "+" } else { "" }
            ))
            .hint("use problem = \"multiclass\" (or \"regression\" for a numeric target)")
            .into())
        }
        Some(p) => p,
    };
    let metric = config
        .define
        .metric
        .clone()
        .unwrap_or_else(|| config::default_metric(problem).to_string());
    if !config::metrics_for(problem).contains(&metric.as_str()) {
        return Err(Diagnostic::new(format!(
            "metric `{metric}` does not apply to a {} problem",
            problem_name(problem)
        ))
        .hint(format!(
            "use one of: {}",
            config::metrics_for(problem).join(", ")
        ))
        .into());
    }
    let classes: Vec<String> = if problem == Problem::Regression {
        Vec::new()
    } else {
        target.distinct.clone()
    };
    Ok(StepOutput {
        outputs: Default::default(),
        output_digests: None,
        result: json!({
            "problem": problem,
            "inferred": config.define.problem.is_none(),
            "metric": metric,
            "classes": classes,
        }),
    })
}

pub fn problem_name(p: Problem) -> &'static str {
    match p {
        Problem::Binary => "binary",
        Problem::Multiclass => "multiclass",
        Problem::Regression => "regression",
    }
}

/// The resolved problem spec, from define's recorded result.
pub fn spec(config: &Config, result: &Value) -> Result<ProblemSpec> {
    let problem: Problem = serde_json::from_value(result["problem"].clone())?;
    Ok(ProblemSpec {
        target: config.define.target.clone(),
        problem,
        metric: result["metric"].as_str().unwrap_or("auc").to_string(),
        ignore: config.define.ignore.clone(),
        classes: serde_json::from_value(result["classes"].clone()).unwrap_or_default(),
    })
}

pub fn summary(result: &Value) -> String {
    format!(
        "{} ({}), metric {}",
        result["problem"].as_str().unwrap_or("?"),
        if result["inferred"] == true {
            "inferred"
        } else {
            "declared"
        },
        result["metric"].as_str().unwrap_or("?")
    )
}

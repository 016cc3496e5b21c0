//! Step 1, define: the problem's scope. Infers the problem type from the target column when
//! `problem` is omitted and defaults the metric by problem type.
//!
//! Inference: a categorical target is binary with at most two levels, else multiclass; a
//! numeric target is binary with at most two distinct values (0/1 labels), else regression.
//! A numeric column of class codes with more levels must say `problem = "multiclass"`.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ProblemSpec, StepOutput, StepResult};
use crate::config::{self, Config, Problem};
use crate::error::Diagnostic;
use crate::project::Step;
use crate::table::{Kind, Profile};

fn target_missing(config: &Config, profile: &Profile) -> Diagnostic {
    let names = profile.names();
    let mut d = Diagnostic::new(format!(
        "target column `{}` is not in the data ({} has columns: {})",
        config.define.target,
        crate::source::describe(&config.locate),
        crate::report::list_names(&names)
    ));
    if let Some(c) = crate::suggest::closest(&config.define.target, &names) {
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
            let d = match crate::suggest::closest(name, &names) {
                Some(c) => d.hint(format!("did you mean `{c}`?")),
                None => d.hint(format!(
                    "the data's columns are: {}",
                    crate::report::list_names(&names)
                )),
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
    if problem != Problem::Regression && target.distinct_capped {
        // The profile keeps at most DISTINCT_CAP values: the classes would not be exact, and
        // monitor would fail on every rerun when the model knows classes define does not.
        return Err(Diagnostic::new(format!(
            "target `{}` has more than {} distinct values: too many classes for a {} problem",
            config.define.target,
            crate::table::DISTINCT_CAP,
            problem_name(problem)
        ))
        .hint(match target.kind {
            Kind::Numeric => "a numeric target with this many values is a regression: set `define.problem = \"regression\"`".to_string(),
            Kind::Categorical => format!(
                "mlbuild classifies at most {} classes; group rare classes into fewer (e.g. with `[prepare.derive]`), or choose another `define.target`",
                crate::table::DISTINCT_CAP
            ),
        })
        .into());
    }
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
        result: DefineResult {
            problem,
            inferred: config.define.problem.is_none(),
            metric: metric.to_string(),
            classes,
        }
        .to_value(),
    })
}

pub fn problem_name(p: Problem) -> &'static str {
    match p {
        Problem::Binary => "binary",
        Problem::Multiclass => "multiclass",
        Problem::Regression => "regression",
    }
}

/// What define decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefineResult {
    pub problem: Problem,
    /// Whether the problem was inferred from the target column (else declared).
    pub inferred: bool,
    /// The primary metric (declared, or the problem's default).
    pub metric: String,
    /// The target's classes (empty for regression).
    pub classes: Vec<String>,
}

impl StepResult for DefineResult {
    const STEP: Step = Step::Define;

    fn summary(&self) -> String {
        format!(
            "{} ({}), metric {}",
            problem_name(self.problem),
            if self.inferred {
                "inferred"
            } else {
                "declared"
            },
            self.metric
        )
    }
}

/// The resolved problem spec, from define's recorded result.
pub fn spec(config: &Config, result: &Value) -> Result<ProblemSpec> {
    let define = DefineResult::read(result)?;
    Ok(ProblemSpec {
        target: config.define.target.clone(),
        problem: define.problem,
        metric: define.metric,
        ignore: config.define.ignore.clone(),
        classes: define.classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile_of(csv: &str) -> Profile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.csv");
        std::fs::write(&path, csv).unwrap();
        crate::table::profile_csv(&path).unwrap()
    }

    fn config(target: &str, problem: Option<&str>) -> Config {
        let problem = problem
            .map(|p| format!("problem = \"{p}\"\n"))
            .unwrap_or_default();
        let text =
            format!("[define]\ntarget = \"{target}\"\n{problem}[locate]\npath = \"d.csv\"\n");
        crate::config::parse(std::path::Path::new("ml.toml"), &text, &[]).unwrap()
    }

    #[test]
    fn more_classes_than_the_profile_counts_are_refused_up_front() {
        let classes = crate::table::DISTINCT_CAP + 44;
        let mut csv = String::from("x,label,n\n");
        for i in 0..classes * 2 {
            csv.push_str(&format!("{i},class{},{}\n", i % classes, i % classes));
        }
        let profile = profile_of(&csv);
        let Err(e) = run(&config("label", None), &profile) else {
            panic!("300 classes were accepted")
        };
        let d = e.downcast_ref::<Diagnostic>().unwrap();
        assert!(
            d.message
                .contains("target `label` has more than 256 distinct values: too many classes for a multiclass problem"),
            "{}",
            d.message
        );
        assert!(d.hint.as_deref().unwrap().contains("group rare classes"));
        // Declared multiclass on a numeric column: the same, with the regression hint.
        let Err(e) = run(&config("n", Some("multiclass")), &profile) else {
            panic!("300 numeric classes were accepted")
        };
        let d = e.downcast_ref::<Diagnostic>().unwrap();
        assert!(d.hint.as_deref().unwrap().contains("regression"), "{d:?}");
        // A numeric target with that many values is inferred a regression, which is fine.
        let out = run(&config("n", None), &profile).unwrap();
        assert_eq!(out.result["problem"], "regression");
        // Exactly the cap is still exact, and allowed.
        let mut csv = String::from("label\n");
        for i in 0..crate::table::DISTINCT_CAP {
            csv.push_str(&format!("c{i}\n"));
        }
        let out = run(&config("label", None), &profile_of(&csv)).unwrap();
        assert_eq!(
            out.result["classes"].as_array().unwrap().len(),
            crate::table::DISTINCT_CAP
        );
    }
}

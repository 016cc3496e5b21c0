//! Rules on well-typed values: ranges, known names, and consistency between keys.
//!
//! Runs after typed deserialisation, on the `Config`, and finds positions in the spanned tree.
//! Algorithm names are matched ignoring case and stored in H2O's spelling, so `xgboost` and
//! `XGBoost` give the same config (and the same step keys).

use super::document::{Entry, Node, Value};
use super::error::{ConfigError, Place};
use super::keys::{list, Locator};
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

    /// The place of characters `at..at+len` inside the string value at `path` (e.g. a position
    /// in a derive expression), when the string is written without escapes; else the value.
    fn inner_place(&self, path: &[&str], text: &str, at: usize, len: usize) -> Place {
        let Some(entry) = self.doc.lookup(path) else {
            return self.place(path);
        };
        if let super::document::Origin::File(span) = &entry.node.origin {
            let src = self.at.source;
            let open = span.start + 1;
            if src.get(open..open + text.len()) == Some(text) {
                let start: usize = text.chars().take(at).map(char::len_utf8).sum();
                let width: usize = text
                    .chars()
                    .skip(at)
                    .take(len.max(1))
                    .map(char::len_utf8)
                    .sum();
                return Place::in_file(self.at.path, src, open + start..open + start + width);
            }
        }
        self.at.value_place(entry)
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

#[allow(
    clippy::too_many_lines,
    reason = "one check per `ml.toml` rule, in the order docs/config.md lists them"
)]
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

    validate_locate(&check, &config.locate)?;

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

    check_prepare(&check, config)?;
    check_confirm(&check, config)?;

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
                    let hint = match crate::suggest::closest(algo, ALGORITHMS.iter().copied()) {
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
    // H2O reads `max_models = 0` as "no limit" (it built 300+ models in 40 s), and refuses
    // `nfolds = 1` only once the JVM runs: both are refused here, before any engine starts.
    if config.execute.max_models < 1 {
        return Err(check.invalid(
            &["execute", "max_models"],
            "`execute.max_models` must be at least 1, found 0".to_string(),
            Some("H2O would read 0 as \"no limit\" and train until stopped; give the number of models to build, e.g. `max_models = 4`".into()),
        ));
    }
    if config.execute.nfolds == 1 {
        return Err(check.invalid(
            &["execute", "nfolds"],
            "`execute.nfolds` must be 0 (no cross-validation) or at least 2, found 1".to_string(),
            Some("cross-validation needs two folds or more; `nfolds = 0` trains on the training rows and ranks on AutoML's validation split".into()),
        ));
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

    if config.h2o.threads == Some(0) {
        return Err(check.invalid(
            &["h2o", "threads"],
            "`h2o.threads` must be at least 1, found 0".to_string(),
            Some(
                "leave it out to use every core (it enters execute's key only when `nodes` > 1)"
                    .into(),
            ),
        ));
    }

    if let Some(remote) = &config.cache.remote {
        let lower = remote.to_ascii_lowercase();
        if !lower.starts_with("http://") && !lower.starts_with("https://") {
            return Err(check.invalid(
                &["cache", "remote"],
                format!(
                    "`cache.remote` must be an `http://` or `https://` URL, found `{}`",
                    crate::redact::safe_url(remote)
                ),
                Some(
                    "e.g. `remote = \"https://cache.example.org/mlbuild\"` (see docs/ci.md)".into(),
                ),
            ));
        }
    }

    for (index, tag) in config.conclude.promote.iter().enumerate() {
        if !crate::registry::is_valid_tag(tag) {
            return Err(ConfigError::InvalidValue {
                at: Box::new(check.element_place(&["conclude", "promote"], index)),
                key: format!("conclude.promote[{index}]"),
                message: format!("`conclude.promote` names an invalid tag {tag:?}"),
                hint: Some(crate::registry::TAG_RULE.to_string()),
            });
        }
    }
    super::user_step::check(config, doc, at)
}

/// `[locate]`: exactly one of `path` and `sql`, and only the options that fit the source.
#[allow(
    clippy::too_many_lines,
    reason = "one check per `[locate]` rule, in the order docs/sources.md lists them"
)]
fn validate_locate(check: &Checker, locate: &super::schema::Locate) -> Result<(), ConfigError> {
    let given = |key: &str| check.doc.lookup(&["locate", key]).is_some();
    match (&locate.path, &locate.sql) {
        (None, None) => {
            return Err(ConfigError::MissingKey {
                at: Box::new(check.place(&["locate"])),
                key: "locate.path".to_string(),
                is_table: false,
                example: "path = \"data/train.csv\"` (a file or glob) or `sql = \"SELECT …\""
                    .to_string(),
            })
        }
        (Some(_), Some(_)) => {
            return Err(check.invalid(
                &["locate", "sql"],
                "`[locate]` has both `path` and `sql`; a project reads one source".to_string(),
                Some("remove one of them".to_string()),
            ))
        }
        _ => {}
    }
    if let Some(path) = &locate.path {
        if path.trim().is_empty() {
            return Err(check.invalid(
                &["locate", "path"],
                "`locate.path` must name a data file, found an empty string".to_string(),
                Some("e.g. `path = \"data/train.csv\"`".to_string()),
            ));
        }
        for key in ["url_env", "params", "incremental"] {
            if given(key) {
                return Err(check.invalid(
                    &["locate", key],
                    format!("`locate.{key}` applies to a `sql` source, not to `path`"),
                    Some(format!("remove `{key}`, or read the data with `sql`")),
                ));
            }
        }
        if let Some(d) = &locate.delimiter {
            if d.len() != 1 || !d.is_ascii() || d == "\"" || d == "\n" || d == "\r" {
                return Err(check.invalid(
                    &["locate", "delimiter"],
                    format!("`locate.delimiter` must be one ASCII character, found {d:?}"),
                    Some("e.g. `delimiter = \";\"` or `delimiter = \"\\t\"`".to_string()),
                ));
            }
        }
    }
    if let Some(sql) = &locate.sql {
        if sql.trim().is_empty() {
            return Err(check.invalid(
                &["locate", "sql"],
                "`locate.sql` must be a query, found an empty string".to_string(),
                None,
            ));
        }
        for key in ["delimiter", "header", "na_strings"] {
            if given(key) {
                return Err(check.invalid(
                    &["locate", key],
                    format!("`locate.{key}` is a file option; it does not apply to `sql`"),
                    Some(format!("remove `{key}`")),
                ));
            }
        }
        match &locate.url_env {
            None => {
                return Err(check.invalid(
                    &["locate", "sql"],
                    "`locate.sql` needs `url_env`, the environment variable that holds the database URL".to_string(),
                    Some("e.g. `url_env = \"FEATURES_URL\"` with `FEATURES_URL=postgres://…` in the environment".to_string()),
                ))
            }
            Some(name) if name.trim().is_empty() => {
                return Err(check.invalid(
                    &["locate", "url_env"],
                    "`locate.url_env` must name an environment variable, found an empty string"
                        .to_string(),
                    None,
                ))
            }
            Some(_) => {}
        }
        if let Some(inc) = &locate.incremental {
            if inc.column.trim().is_empty() {
                return Err(check.invalid(
                    &["locate", "incremental", "column"],
                    "`locate.incremental.column` must name a column, found an empty string"
                        .to_string(),
                    None,
                ));
            }
        }
    }
    Ok(())
}

/// `prepare.rename`, `derive` (parsed here, so a syntax error points into `ml.toml`) and `text`.
#[allow(
    clippy::too_many_lines,
    reason = "one check per `prepare` key (drop, rename, types, impute, derive, text), in stage order"
)]
fn check_prepare(check: &Checker, config: &Config) -> Result<(), ConfigError> {
    let prepare = &config.prepare;
    let target = &config.define.target;
    let mut new_names = std::collections::BTreeSet::new();
    for (old, new) in &prepare.rename {
        let path = ["prepare", "rename", old.as_str()];
        if new.trim().is_empty() {
            return Err(check.invalid(
                &path,
                format!("`prepare.rename.{old}` must be a column name, found an empty string"),
                None,
            ));
        }
        if old == target || config.define.ignore.contains(old) {
            return Err(check.invalid(
                &path,
                format!("`prepare.rename` cannot rename `{old}`: `define` refers to it by name"),
                Some("rename the column in the data, or leave it as it is".into()),
            ));
        }
        if !new_names.insert(new.as_str()) {
            return Err(check.invalid(
                &path,
                format!("`prepare.rename` gives two columns the name `{new}`"),
                None,
            ));
        }
    }
    for (name, text) in &prepare.derive {
        let path = ["prepare", "derive", name.as_str()];
        if let Err(e) = crate::transform::expr::parse(text) {
            return Err(ConfigError::InvalidValue {
                at: Box::new(check.inner_place(&path, text, e.at, e.len)),
                key: path.join("."),
                message: format!(
                    "`prepare.derive.{name}` is not a valid expression: {} (at character {} of {text:?})",
                    e.message,
                    e.at + 1
                ),
                hint: Some(
                    "expressions use + - * /, parentheses, numbers, column names (`quoted name` in backticks) and log, exp, sqrt, abs, min, max"
                        .into(),
                ),
            });
        }
        if name == target {
            return Err(check.invalid(
                &path,
                format!("`prepare.derive` cannot define the target `{target}`"),
                None,
            ));
        }
    }
    for (column, spec) in &prepare.text {
        if column == target {
            return Err(check.invalid(
                &["prepare", "text", column.as_str()],
                format!("the target `{target}` cannot be a text feature column"),
                None,
            ));
        }
        for (field, value, min) in [
            ("vec_size", spec.vec_size, 1),
            ("epochs", spec.epochs, 1),
            ("min_word_freq", spec.min_word_freq, 1),
            ("window_size", spec.window_size, 1),
        ] {
            if value < min {
                return Err(check.invalid(
                    &["prepare", "text", column.as_str(), field],
                    format!(
                        "`prepare.text.{column}.{field}` must be at least {min}, found {value}"
                    ),
                    None,
                ));
            }
        }
    }
    if let Some(column) = prepare.impute.keys().find(|c| *c == target) {
        return Err(check.invalid(
            &["prepare", "impute", column.as_str()],
            format!("`prepare.impute` cannot fill the target `{target}`"),
            Some("rows with a missing target should be fixed or dropped in the data".into()),
        ));
    }
    Ok(())
}

/// Ranges of the `[confirm]` limits.
fn check_confirm(check: &Checker, config: &Config) -> Result<(), ConfigError> {
    let confirm = &config.confirm;
    for (key, value) in [
        (
            "max_null_fraction_overall",
            confirm.max_null_fraction_overall,
        ),
        ("min_class_fraction", confirm.min_class_fraction),
    ] {
        if let Some(v) = value {
            if !(0.0..=1.0).contains(&v) {
                return Err(check.invalid(
                    &["confirm", key],
                    format!("`confirm.{key}` must be in [0, 1], found {v}"),
                    None,
                ));
            }
        }
    }
    let psi = confirm.drift.psi;
    if !(psi.is_finite() && psi > 0.0) {
        return Err(check.invalid(
            &["confirm", "drift", "psi"],
            format!("`confirm.drift.psi` must be a positive number, found {psi}"),
            Some("0.1 is a common warning level, 0.2 or 0.25 a common alarm".into()),
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
    let hint = match crate::suggest::closest(metric, valid.iter().copied()) {
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

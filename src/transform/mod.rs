//! prepare's declarative transforms: what happens to each row between the data snapshot and the
//! prepared `train`/`holdout` CSVs, in this order:
//!
//! 1. **drop** `prepare.drop` (the data's names);
//! 2. **rename** `prepare.rename` (`old = "new"`, the data's names; every later key uses the
//!    new names);
//! 3. **impute** `prepare.impute`: `mean`/`median` (numeric columns), `mode` (any column; ties
//!    go to the smallest value in byte order) or `{ constant = … }`, *fitted on the training
//!    rows only* and applied to both sides;
//! 4. **derive** `prepare.derive`: numeric columns computed from the imputed columns (see
//!    [`expr`]), appended in name order; they may not use the target, a text column or each
//!    other;
//! 5. **text** `prepare.text`: each text column is replaced in place by `<col>_w2v_1..n`, the
//!    average of its tokens' word vectors (see [`text`]); the vectors are fitted by H2O on the
//!    training rows and stored, so applying them is mlbuild's own, reproducible work.
//!
//! Passes over the snapshot (each streaming): the stratified split reads the target (8 bytes a
//! row); the fit pass reads the training rows for imputation statistics (a median keeps the
//! column's training values) and writes the training documents of each text column; the apply
//! pass writes `train` and `holdout`. On a cold run the source's profile pass has already
//! collected the target's classes and held the imputed columns' values ([`held_columns`],
//! `table::Held`), so the split and the fit read nothing. The fit (without text columns) and apply passes read the
//! file in one chunk per core when it is unquoted ([`table::indexed_chunks`]) and combine the
//! chunks so that values, bytes and profiles are exactly those of one sequential pass (see
//! [`Plan::fit`] and [`Plan::apply`]).

mod apply;
pub mod expr;
mod fit;
pub mod replay;
pub mod text;

use std::collections::BTreeMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{ColumnType, Impute, ImputeStrategy, Prepare, Problem, Scalar, TextSpec};
use crate::error::Diagnostic;
use crate::steps::ProblemSpec;
use crate::table::{self, is_missing, Kind, Profile, Split};

/// Version of the transform manifest's format.
pub const MANIFEST_FORMAT: u32 = 1;

/// A column between rename and the output: where it comes from and its type.
#[derive(Debug, Clone)]
struct StageColumn {
    name: String,
    /// Index in the data's header.
    source: usize,
    ty: ColumnType,
    /// Whether the data's profile found only numbers (or missing values) in the column.
    numeric: bool,
    /// The column's distinct values, when the data's profile kept them all (sorted).
    distinct: Option<Vec<String>>,
}

/// One output column.
#[derive(Debug, Clone)]
enum Out {
    Stage(usize),
    Derived(usize),
    /// Text column `.0` (index into `Plan::text`), vector component `.1`.
    Word2Vec(usize, usize),
}

/// A derive rule, bound to stage columns.
#[derive(Debug, Clone)]
struct Derived {
    name: String,
    source: String,
    expr: expr::Expr,
}

/// The transform, resolved against the data's columns and checked.
#[derive(Debug, Clone)]
pub struct Plan {
    input: Vec<String>,
    stage: Vec<StageColumn>,
    /// Index of the target in the data's header.
    pub target_source: usize,
    impute: Vec<(usize, Impute)>,
    derive: Vec<Derived>,
    /// Text columns: stage index and parameters.
    pub text: Vec<(usize, TextSpec)>,
    outputs: Vec<Out>,
    rename: BTreeMap<String, String>,
}

fn unknown_column(key: &str, name: &str, names: &[String]) -> Diagnostic {
    let d = Diagnostic::new(format!(
        "`{key}` names column `{name}`, which is not in the data"
    ));
    match crate::suggest::closest(name, names) {
        Some(c) => d.hint(format!("did you mean `{c}`?")),
        None => d.hint(format!(
            "the columns at this point are: {}",
            crate::report::list_names(names)
        )),
    }
}

fn bad(message: String, hint: impl Into<String>) -> anyhow::Error {
    Diagnostic::new(message).hint(hint).into()
}

/// `prepare.impute.COL` as written, for messages.
fn impute_name(rule: &Impute) -> String {
    match rule {
        Impute::Strategy(ImputeStrategy::Mean) => "\"mean\"".into(),
        Impute::Strategy(ImputeStrategy::Median) => "\"median\"".into(),
        Impute::Strategy(ImputeStrategy::Mode) => "\"mode\"".into(),
        Impute::Constant { constant } => format!("{{ constant = {} }}", scalar_text(constant)),
    }
}

fn scalar_text(s: &Scalar) -> String {
    match s {
        Scalar::Integer(i) => i.to_string(),
        Scalar::Float(f) => format_number(*f),
        Scalar::String(s) => s.clone(),
    }
}

/// A number as written into prepared CSVs: Rust's shortest round-trip form (`66`, `0.1`).
pub fn format_number(x: f64) -> String {
    format!("{x}")
}

/// The data's columns that `prepare.drop` keeps: (index in the data, the data's name).
fn kept_columns<'a>(
    prepare: &'a Prepare,
    input: &'a [String],
) -> impl Iterator<Item = (usize, &'a String)> + 'a {
    input
        .iter()
        .enumerate()
        .filter(|(_, n)| !prepare.drop.contains(n))
}

/// A kept column's name from rename on (`prepare.rename`'s new name, or its own).
fn stage_name<'a>(prepare: &'a Prepare, name: &'a String) -> &'a String {
    prepare.rename.get(name).unwrap_or(name)
}

/// The columns whose values the fit pass reads, for the source's profile pass to hold
/// ([`table::Held`], so that a cold run's fit need not read the data again): each imputed
/// column's index in the data `header` and how its rule reads it (a mean or median a number,
/// a mode a text; a constant reads nothing), in `prepare.impute`'s order. Empty when the fit
/// reads the data anyway (text columns: their documents) or a rule names no column ([`Plan::new`]
/// reports it).
pub fn held_columns(prepare: &Prepare, header: &[String]) -> Vec<(usize, table::Hold)> {
    if !prepare.text.is_empty() {
        return Vec::new();
    }
    let mut held = Vec::new();
    for (name, rule) in &prepare.impute {
        let Some(how) = fit::hold_of(rule) else {
            continue;
        };
        let Some((source, _)) =
            kept_columns(prepare, header).find(|(_, n)| stage_name(prepare, n) == name)
        else {
            return Vec::new();
        };
        held.push((source, how));
    }
    held
}

impl Plan {
    /// Resolves `prepare` against the data's profile, with errors that name the key, the
    /// column and the closest real column.
    #[allow(
        clippy::too_many_lines,
        reason = "resolves the five prepare stages in order, each with its own errors"
    )]
    pub fn new(prepare: &Prepare, profile: &Profile, spec: &ProblemSpec) -> Result<Plan> {
        let input = profile.names();
        for name in &prepare.drop {
            if !input.contains(name) {
                return Err(unknown_column("prepare.drop", name, &input).into());
            }
        }
        for name in &spec.ignore {
            if !input.contains(name) {
                return Err(unknown_column("define.ignore", name, &input).into());
            }
        }
        // (source index, name) of the columns kept; indices, not name lookups, so that a
        // plan over 100,000 columns stays linear.
        let kept: Vec<(usize, &String)> = kept_columns(prepare, &input).collect();
        let kept_names: Vec<String> = kept.iter().map(|(_, n)| n.to_string()).collect();
        for (old, new) in &prepare.rename {
            if !kept_names.contains(old) {
                return Err(
                    unknown_column(&format!("prepare.rename.{old}"), old, &kept_names).into(),
                );
            }
            if kept_names.contains(new) && !prepare.rename.contains_key(new) {
                return Err(bad(
                    format!("`prepare.rename` renames `{old}` to `{new}`, but the data already has a column `{new}`"),
                    "pick another name, or drop the other column",
                ));
            }
        }
        let target_source = input
            .iter()
            .position(|n| *n == spec.target)
            .ok_or_else(|| unknown_column("define.target", &spec.target, &input))?;
        let mut stage = Vec::new();
        for (source, name) in kept {
            stage.push(StageColumn {
                name: stage_name(prepare, name).clone(),
                source,
                ty: ColumnType::Numeric,
                numeric: profile.columns[source].kind == crate::table::Kind::Numeric,
                distinct: (!profile.columns[source].distinct_capped)
                    .then(|| profile.columns[source].distinct.clone()),
            });
        }
        let names: Vec<String> = stage.iter().map(|c| c.name.clone()).collect();
        let find = |key: &str, name: &str| -> Result<usize> {
            names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| unknown_column(key, name, &names).into())
        };
        for name in prepare.types.keys() {
            find("prepare.types", name)?;
        }
        let mut text = Vec::new();
        for (name, spec_t) in &prepare.text {
            let i = find(&format!("prepare.text.{name}"), name)?;
            if spec.ignore.contains(name) {
                return Err(bad(
                    format!("text column `{name}` is also listed in `define.ignore`"),
                    "a text column is replaced by its Word2Vec features; drop it instead if it is not a feature",
                ));
            }
            text.push((i, spec_t.clone()));
        }
        // Types: the target's by problem, then `prepare.types`, then what the values look like.
        for c in &mut stage {
            // `input` is the profile's column names, in its order.
            let col = &profile.columns[c.source];
            c.ty = if c.source == target_source {
                match spec.problem {
                    Problem::Regression => ColumnType::Numeric,
                    _ => ColumnType::Enum,
                }
            } else if prepare.text.contains_key(&c.name) {
                ColumnType::String
            } else if let Some(t) = prepare.types.get(&c.name) {
                *t
            } else if col.kind == Kind::Numeric {
                ColumnType::Numeric
            } else {
                ColumnType::Enum
            };
            if c.ty == ColumnType::Numeric && col.kind == Kind::Categorical {
                let hint = if c.source == target_source {
                    "a regression target must be numeric".to_string()
                } else {
                    format!(
                        "remove `{}` from `prepare.types` or clean the column",
                        c.name
                    )
                };
                return Err(bad(
                    format!(
                        "column `{}` is declared numeric but holds non-numeric values",
                        c.name
                    ),
                    hint,
                ));
            }
        }
        let mut impute = Vec::new();
        for (name, rule) in &prepare.impute {
            let i = find(&format!("prepare.impute.{name}"), name)?;
            let c = &stage[i];
            let numeric_only = matches!(
                rule,
                Impute::Strategy(ImputeStrategy::Mean | ImputeStrategy::Median)
            );
            let ty_name = c.ty.as_str();
            if numeric_only && c.ty != ColumnType::Numeric {
                return Err(bad(
                    format!(
                        "`prepare.impute.{name}` = {} needs a numeric column, but `{name}` is {ty_name}",
                        impute_name(rule)
                    ),
                    "use \"mode\" or `{ constant = \"…\" }` for a categorical column",
                ));
            }
            if let Impute::Constant {
                constant: Scalar::String(s),
            } = rule
            {
                if c.ty == ColumnType::Numeric && s.trim().parse::<f64>().is_err() {
                    return Err(bad(
                        format!("`prepare.impute.{name}` fills numeric column `{name}` with the text {s:?}"),
                        "use a number, e.g. `{ constant = 0 }`",
                    ));
                }
            }
            if matches!(rule, Impute::Constant { constant: Scalar::String(s) } if is_missing(s)) {
                return Err(bad(
                    format!("`prepare.impute.{name}` fills `{name}` with a missing value"),
                    "use a value that is not empty or `NA`",
                ));
            }
            impute.push((i, rule.clone()));
        }
        let mut derive = Vec::new();
        for (name, source) in &prepare.derive {
            let key = format!("prepare.derive.{name}");
            if names.contains(name) {
                return Err(bad(
                    format!("`{key}` defines column `{name}`, which the data already has"),
                    "pick another name, or drop or rename the existing column",
                ));
            }
            let mut e = expr::parse(source).map_err(|e| {
                bad(
                    format!("`{key}` is not a valid expression: {} (at character {} of {source:?})", e.message, e.at + 1),
                    "expressions use + - * /, parentheses, numbers, column names and log, exp, sqrt, abs, min, max",
                )
            })?;
            let mut problem: Option<anyhow::Error> = None;
            let bound = e.bind(&|col| {
                let i = names.iter().position(|n| n == col)?;
                Some(i)
            });
            if let Err((col, at, len)) = bound {
                let marker = format!(
                    "{}{}",
                    " ".repeat(source[..].chars().take(at).count()),
                    "^".repeat(len.max(1))
                );
                let mut d = Diagnostic::new(format!(
                    "`{key}` uses column `{col}` (character {} of the expression), which is not in the data\n  |\n  | {source}\n  | {marker}",
                    at + 1
                ));
                let mut candidates = names.clone();
                candidates.extend(prepare.derive.keys().filter(|k| *k != name).cloned());
                d = match crate::suggest::closest(&col, &candidates) {
                    Some(c) if prepare.derive.contains_key(c) => d.hint(format!("`{c}` is another derived column; derived columns cannot use each other, repeat its expression instead")),
                    Some(c) => d.hint(format!("did you mean `{c}`? quote names with spaces or symbols in backticks: `my column`")),
                    None => d.hint(format!("the columns are: {}", crate::report::list_names(&names))),
                };
                return Err(d.into());
            }
            for (col, at, _) in e.columns() {
                let i = names.iter().position(|n| n == col).expect("bound");
                let c = &stage[i];
                let why = if c.source == target_source {
                    Some("is the target (a feature computed from the target leaks it)".to_string())
                } else if c.ty != ColumnType::Numeric {
                    Some(format!("is not numeric (it is {})", c.ty.as_str()))
                } else {
                    None
                };
                if let Some(why) = why {
                    problem = Some(bad(
                        format!("`{key}` uses column `{col}` (character {} of the expression), which {why}", at + 1),
                        "derived columns compute on numeric feature columns",
                    ));
                    break;
                }
            }
            if let Some(p) = problem {
                return Err(p);
            }
            derive.push(Derived {
                name: name.clone(),
                source: source.clone(),
                expr: e,
            });
        }
        // Outputs: stage columns in order, text columns replaced in place, derived at the end.
        let mut outputs = Vec::new();
        let mut out_names = Vec::new();
        for (i, c) in stage.iter().enumerate() {
            match text.iter().position(|(t, _)| *t == i) {
                Some(k) => {
                    for (d, n) in text::feature_names(&c.name, text[k].1.vec_size as usize)
                        .into_iter()
                        .enumerate()
                    {
                        outputs.push(Out::Word2Vec(k, d));
                        out_names.push(n);
                    }
                }
                None => {
                    outputs.push(Out::Stage(i));
                    out_names.push(c.name.clone());
                }
            }
        }
        for (j, d) in derive.iter().enumerate() {
            outputs.push(Out::Derived(j));
            out_names.push(d.name.clone());
        }
        let mut seen = std::collections::BTreeSet::new();
        for n in &out_names {
            if !seen.insert(n) {
                return Err(bad(
                    format!("two prepared columns would be called `{n}`"),
                    "rename one of them (`prepare.rename`, or the `prepare.derive` name)",
                ));
            }
        }
        Ok(Plan {
            input,
            stage,
            target_source,
            impute,
            derive,
            text,
            outputs,
            rename: prepare.rename.clone(),
        })
    }

    /// The prepared columns and the type H2O must parse each as.
    pub fn schema(&self) -> Vec<(String, ColumnType)> {
        self.outputs
            .iter()
            .flat_map(|o| match o {
                Out::Stage(i) => vec![(self.stage[*i].name.clone(), self.stage[*i].ty)],
                Out::Derived(j) => vec![(self.derive[*j].name.clone(), ColumnType::Numeric)],
                Out::Word2Vec(k, d) => {
                    let name = &self.stage[self.text[*k].0].name;
                    vec![(format!("{name}_w2v_{}", d + 1), ColumnType::Numeric)]
                }
            })
            .collect()
    }

    /// The name of a text column (by its index in `text`).
    pub fn text_name(&self, k: usize) -> &str {
        &self.stage[self.text[k].0].name
    }

    /// The manifest of the whole transform, in order (`transform.json`). `artifacts` names the
    /// stored artifacts by output name (`impute`, `word2vec.COL`) → digest.
    pub fn manifest(
        &self,
        split: &Split,
        holdout: f64,
        seed: u64,
        sample: Option<f64>,
        fitted: &Fitted,
        artifacts: &BTreeMap<String, String>,
    ) -> Manifest {
        let mut steps = Vec::new();
        if !self.rename.is_empty() {
            steps.push(json!({ "op": "rename", "columns": self.rename }));
        }
        if !self.impute.is_empty() {
            steps.push(json!({
                "op": "impute",
                "fitted_on": "train",
                "artifact": artifacts.get("impute"),
                "columns": fitted.impute,
            }));
        }
        if !self.derive.is_empty() {
            steps.push(json!({
                "op": "derive",
                "columns": self.derive.iter().map(|d| json!({ "name": d.name, "expression": d.source })).collect::<Vec<_>>(),
                "semantics": "missing input, division by zero, log(x<=0), sqrt(x<0) or a non-finite result give a missing value",
            }));
        }
        for (k, (_, spec)) in self.text.iter().enumerate() {
            let name = self.text_name(k);
            steps.push(json!({
                "op": "word2vec",
                "column": name,
                "params": spec,
                "tokenizer": text::TOKENIZER,
                "aggregate": "average of known tokens; no known token gives missing features",
                "vectors": artifacts.get(&format!("word2vec.{name}")),
                "outputs": text::feature_names(name, spec.vec_size as usize),
            }));
        }
        Manifest {
            format: MANIFEST_FORMAT,
            // The columns the transform reads (the data's names, in order): what a row must
            // have. Dropped and unknown columns are not listed, so a new column that
            // `prepare.drop` removes changes nothing downstream.
            input_columns: self
                .stage
                .iter()
                .map(|c| self.input[c.source].clone())
                .collect(),
            steps,
            split: json!({
                "method": if split.is_stratified() { "stratified" } else { "random" },
                "holdout": holdout,
                "seed": seed,
                "sample": sample,
                "hash": "splitmix64(seed ^ splitmix64(row_index))",
            }),
            schema: self.schema(),
        }
    }
}

/// An imputation value fitted on the training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImputedValue {
    pub column: String,
    pub strategy: String,
    /// The value written for a missing field, as text.
    pub value: String,
    /// How many training values the fit saw (0 for a constant).
    pub fitted_on_rows: u64,
}

/// What the fit pass learned.
#[derive(Debug, Clone)]
pub struct Fitted {
    pub impute: Vec<ImputedValue>,
    pub train_rows: u64,
    /// Training documents per text column.
    pub documents: Vec<u64>,
}

/// What [`Plan::apply`] wrote: rows, blake3 digests and profiles of `train` and `holdout`.
#[derive(Debug)]
pub struct Applied {
    pub rows: [u64; 2],
    pub digests: [String; 2],
    pub profiles: [table::Profile; 2],
}

/// `transform.json`: everything `predict`/`serve` need to prepare a row as training did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub input_columns: Vec<String>,
    pub steps: Vec<serde_json::Value>,
    pub split: serde_json::Value,
    pub schema: Vec<(String, ColumnType)>,
}

#[cfg(test)]
mod tests;

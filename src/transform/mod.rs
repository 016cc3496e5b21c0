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
//! pass writes `train` and `holdout`. The fit (without text columns) and apply passes read the
//! file in one chunk per core when it is unquoted ([`table::indexed_chunks`]) and combine the
//! chunks so that values, bytes and profiles are exactly those of one sequential pass (see
//! [`Plan::fit`] and [`Plan::apply`]).

pub mod expr;
pub mod replay;
pub mod text;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{ColumnType, Impute, ImputeStrategy, Prepare, Problem, Scalar, TextSpec};
use crate::error::Diagnostic;
use crate::steps::ProblemSpec;
use crate::table::{self, is_missing, Kind, Profile, Side, Split};

/// Version of the transform manifest's format.
pub const MANIFEST_FORMAT: u32 = 1;

/// A column between rename and the output: where it comes from and its type.
#[derive(Debug, Clone)]
struct StageColumn {
    name: String,
    /// Index in the data's header.
    source: usize,
    ty: ColumnType,
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

impl Plan {
    /// Resolves `prepare` against the data's profile, with errors that name the key, the
    /// column and the closest real column.
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
        let kept: Vec<(usize, &String)> = input
            .iter()
            .enumerate()
            .filter(|(_, n)| !prepare.drop.contains(n))
            .collect();
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
            let new = prepare.rename.get(name).unwrap_or(name).clone();
            stage.push(StageColumn {
                name: new,
                source,
                ty: ColumnType::Numeric,
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
            let ty_name = match c.ty {
                ColumnType::Numeric => "numeric",
                ColumnType::Enum => "enum",
                ColumnType::String => "text",
            };
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
                    Some(format!(
                        "is not numeric (it is {})",
                        match c.ty {
                            ColumnType::Enum => "enum",
                            _ => "text",
                        }
                    ))
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

    /// Pass 2: fits imputation on the training rows, and writes each text column's training
    /// documents (`i,doc`: row index, tokens joined by spaces; rows without tokens left out)
    /// to `docs[k]`. Returns the fitted values.
    ///
    /// Without text columns the input is read in chunks ([`table::indexed_chunks`]) when it
    /// can be. Counts, medians (sorted) and modes do not depend on the order rows are seen
    /// in; a mean's sum does (floating point), so a later chunk keeps its values and they are
    /// added to chunk 0's sum in file order: the same additions, in the same order, as one
    /// sequential pass (8 bytes a training row of the later chunks, per mean column).
    pub fn fit(&self, input: &Path, split: &Split, docs: &[&Path]) -> Result<Fitted> {
        let accumulators = |first: bool| -> Vec<Acc> {
            self.impute
                .iter()
                .map(|(_, rule)| match rule {
                    Impute::Strategy(ImputeStrategy::Mean) if first => Acc::Mean(0.0, 0),
                    Impute::Strategy(ImputeStrategy::Mean) => Acc::MeanValues(Vec::new()),
                    Impute::Strategy(ImputeStrategy::Median) => Acc::Median(vec![Vec::new()]),
                    Impute::Strategy(ImputeStrategy::Mode) => Acc::Mode(HashMap::default()),
                    Impute::Constant { .. } => Acc::Constant,
                })
                .collect()
        };
        let mut writers = Vec::new();
        for path in docs {
            let mut w = table::create(path)?;
            w.write_record(["i", "doc"])
                .map_err(table::write_err(path))?;
            writers.push(w);
        }
        let mut doc_counts = vec![0u64; docs.len()];
        if self.impute.is_empty() && self.text.is_empty() {
            // Nothing to fit: no pass over the data (`train_rows` is only informative).
            for (w, path) in writers.into_iter().zip(docs) {
                table::finish(path, w)?;
            }
            return Ok(Fitted {
                impute: Vec::new(),
                train_rows: 0,
                documents: doc_counts,
            });
        }
        let chunked = if self.text.is_empty() {
            table::indexed_chunks(
                input,
                self.input.len(),
                |k| (accumulators(k == 0), 0u64),
                |(acc, n), i, record| {
                    if split.side(i, record) == Some(Side::Train) {
                        *n += 1;
                        self.fit_row(acc, record);
                    }
                },
            )
        } else {
            None
        };
        let (acc, train_rows) = match chunked {
            Some(parts) => {
                let mut parts = parts.into_iter().map(|(part, _)| part);
                let (mut acc, mut train_rows) = parts.next().expect("chunk 0");
                for (later, n) in parts {
                    train_rows += n;
                    for (a, b) in acc.iter_mut().zip(later) {
                        a.merge(b);
                    }
                }
                (acc, train_rows)
            }
            None => {
                let mut acc = accumulators(true);
                let (mut rdr, _) = table::open(input)?;
                let mut record = csv::StringRecord::new();
                let mut index = 0u64;
                let mut train_rows = 0u64;
                while table::next_record(input, &mut rdr, &mut record)? {
                    let i = index;
                    index += 1;
                    if split.side(i, &record) != Some(Side::Train) {
                        continue;
                    }
                    train_rows += 1;
                    self.fit_row(&mut acc, &record);
                    for (k, (c, _)) in self.text.iter().enumerate() {
                        let field = record.get(self.stage[*c].source).unwrap_or("");
                        let tokens = text::tokenize(field);
                        if tokens.is_empty() || is_missing(field) {
                            continue;
                        }
                        let path = docs[k];
                        writers[k]
                            .write_record([i.to_string(), tokens.join(" ")])
                            .map_err(table::write_err(path))?;
                        doc_counts[k] += 1;
                    }
                }
                (acc, train_rows)
            }
        };
        for (w, path) in writers.into_iter().zip(docs) {
            table::finish(path, w)?;
        }
        let mut values = Vec::new();
        for ((c, rule), a) in self.impute.iter().zip(acc) {
            let name = &self.stage[*c].name;
            let none = || {
                bad(
                    format!(
                        "cannot impute `{name}` with {}: no training row has a value",
                        impute_name(rule)
                    ),
                    "use `{ constant = … }`, or drop the column",
                )
            };
            let (value, observed) = match a {
                Acc::Mean(sum, n) if n > 0 => (format_number(sum / n as f64), n),
                Acc::Median(mut parts) if parts.iter().any(|v| !v.is_empty()) => {
                    for v in &mut parts {
                        v.sort_unstable_by(f64::total_cmp);
                    }
                    let n = parts.iter().map(Vec::len).sum::<usize>();
                    let mut sorted = SortedUnion::new(&parts);
                    let m = if n % 2 == 1 {
                        sorted.nth(n / 2).expect("n / 2 < n")
                    } else {
                        let lower = sorted.nth(n / 2 - 1).expect("n / 2 - 1 < n");
                        (lower + sorted.next().expect("n / 2 < n")) / 2.0
                    };
                    (format_number(m), n as u64)
                }
                Acc::Mode(counts) if !counts.is_empty() => {
                    let n: u64 = counts.values().sum();
                    // Most frequent; ties to the smallest value, so the fit is deterministic.
                    let best = counts
                        .into_iter()
                        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
                        .expect("not empty");
                    (String::from(best.0), n)
                }
                Acc::Constant => match rule {
                    Impute::Constant { constant } => (scalar_text(constant), 0),
                    _ => unreachable!("constant accumulators belong to constant rules"),
                },
                Acc::MeanValues(_) => unreachable!("merged into chunk 0's mean"),
                _ => return Err(none()),
            };
            values.push(ImputedValue {
                column: name.clone(),
                strategy: match rule {
                    Impute::Strategy(ImputeStrategy::Mean) => "mean",
                    Impute::Strategy(ImputeStrategy::Median) => "median",
                    Impute::Strategy(ImputeStrategy::Mode) => "mode",
                    Impute::Constant { .. } => "constant",
                }
                .to_string(),
                value,
                fitted_on_rows: observed,
            });
        }
        Ok(Fitted {
            impute: values,
            train_rows,
            documents: doc_counts,
        })
    }

    /// Adds a training row to the imputation accumulators.
    fn fit_row(&self, acc: &mut [Acc], record: &csv::StringRecord) {
        for ((c, _), a) in self.impute.iter().zip(acc.iter_mut()) {
            let field = record.get(self.stage[*c].source).unwrap_or("");
            if is_missing(field) {
                continue;
            }
            let f = table::trim(field);
            match a {
                Acc::Mean(sum, n) => {
                    if let Ok(x) = f.parse::<f64>() {
                        *sum += x;
                        *n += 1;
                    }
                }
                Acc::MeanValues(v) => {
                    if let Ok(x) = f.parse::<f64>() {
                        v.push(x);
                    }
                }
                Acc::Median(parts) => {
                    if let Ok(x) = f.parse::<f64>() {
                        parts[0].push(x);
                    }
                }
                Acc::Mode(counts) => match counts.get_mut(f) {
                    Some(n) => *n += 1,
                    None => {
                        counts.insert(f.into(), 1);
                    }
                },
                Acc::Constant => {}
            }
        }
    }

    /// Pass 3: writes the prepared `train` and `holdout` CSVs.
    ///
    /// On two or more cores the input is read in chunks ([`table::indexed_chunks`]): chunk 0
    /// writes straight into `out`, each later chunk into its own part files beside them, which
    /// are then appended in order (and hashed as they are). Rows, their order, the bytes and
    /// the profiles (merged in file order) are exactly those of one sequential pass, which is
    /// what runs when the input cannot be chunked (quoted fields, errors to report).
    pub fn apply(
        &self,
        input: &Path,
        split: &Split,
        fitted: &Fitted,
        vectors: &[text::Vectors],
        out: [&Path; 2],
    ) -> Result<Applied> {
        let header: Vec<String> = self.schema().into_iter().map(|(n, _)| n).collect();
        // Per stage column: the imputed value for a missing field, if any.
        let mut fill: Vec<Option<&str>> = vec![None; self.stage.len()];
        for ((c, _), v) in self.impute.iter().zip(&fitted.impute) {
            fill[*c] = Some(v.value.as_str());
        }
        let rows = Rows {
            plan: self,
            split,
            fill,
            vectors,
        };
        let part_path = |k: usize, s: usize| {
            let mut p = out[s].as_os_str().to_owned();
            p.push(format!(".part{k}"));
            std::path::PathBuf::from(p)
        };
        // Whatever the chunks leave behind is removed when this pass ends, however it ends.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let _part_files = PartFiles(
            (1..threads)
                .flat_map(|k| [part_path(k, 0), part_path(k, 1)])
                .collect(),
        );
        let chunked = table::indexed_chunks(
            input,
            self.input.len(),
            |k| {
                let paths = if k == 0 {
                    out.map(Path::to_path_buf)
                } else {
                    [part_path(k, 0), part_path(k, 1)]
                };
                Part::new(paths, k == 0, &header)
            },
            |part, i, record| {
                if let Ok(p) = part {
                    if let Err(e) = rows.apply(p, i, record) {
                        *part = Err(e);
                    }
                }
            },
        );
        let mut parts = match chunked {
            Some(chunks) => chunks
                .into_iter()
                .map(|(p, _)| p)
                .collect::<Result<Vec<Part>, _>>()?,
            None => {
                let mut part = Part::new(out.map(Path::to_path_buf), true, &header)?;
                let (mut rdr, _) = table::open(input)?;
                let mut record = csv::StringRecord::new();
                let mut index = 0u64;
                while table::next_record(input, &mut rdr, &mut record)? {
                    rows.apply(&mut part, index, &record)?;
                    index += 1;
                }
                vec![part]
            }
        };
        let later = parts.split_off(1);
        let first = parts.pop().expect("chunk 0");
        let mut n = first.rows;
        let [mut p_train, mut p_hold] = first.profilers;
        let mut tails: [Vec<std::path::PathBuf>; 2] = Default::default();
        for part in later {
            let [w_train, w_hold] = part.writers;
            let [path_train, path_hold] = part.paths;
            table::finish_part(&path_train, w_train)?;
            table::finish_part(&path_hold, w_hold)?;
            tails[0].push(path_train);
            tails[1].push(path_hold);
            let [pt, ph] = part.profilers;
            p_train.merge(pt);
            p_hold.merge(ph);
            n[0] += part.rows[0];
            n[1] += part.rows[1];
        }
        let [w_train, w_hold] = first.writers;
        let tail = |s: usize| tails[s].iter().map(|p| p.as_path()).collect::<Vec<_>>();
        let train_digest = table::finish_hashed(out[0], w_train, &tail(0))?;
        let holdout_digest = table::finish_hashed(out[1], w_hold, &tail(1))?;
        let names = || header.iter().map(|h| h.trim().to_string()).collect();
        Ok(Applied {
            rows: n,
            digests: [train_digest, holdout_digest],
            profiles: [p_train.finish(names()), p_hold.finish(names())],
        })
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

/// An imputation's accumulator in the fit pass.
enum Acc {
    /// Sum and count.
    Mean(f64, u64),
    /// A later chunk's values of a mean column, in file order (see [`Plan::fit`]).
    MeanValues(Vec<f64>),
    /// Each chunk's values (one list until merged; see [`SortedUnion`]).
    Median(Vec<Vec<f64>>),
    Mode(HashMap<Box<str>, u64, table::FastHash>),
    Constant,
}

impl Acc {
    /// Folds in the accumulator of the rows that come right after this one's.
    fn merge(&mut self, later: Acc) {
        match (self, later) {
            (Acc::Mean(sum, n), Acc::MeanValues(v)) => {
                for x in v {
                    *sum += x;
                    *n += 1;
                }
            }
            (Acc::Median(v), Acc::Median(w)) => v.extend(w),
            (Acc::Mode(counts), Acc::Mode(more)) => {
                for (value, n) in more {
                    *counts.entry(value).or_default() += n;
                }
            }
            (Acc::Constant, Acc::Constant) => {}
            _ => unreachable!("chunks have the same accumulators, a mean's first one a sum"),
        }
    }
}

/// The values of several sorted lists, in `f64::total_cmp` order: a median's order statistics
/// without concatenating the chunks' lists (which would briefly hold every value twice).
/// Values equal under `total_cmp` have the same bits, so this is exactly the sorted whole.
struct SortedUnion<'a> {
    parts: &'a [Vec<f64>],
    at: Vec<usize>,
}

impl<'a> SortedUnion<'a> {
    fn new(parts: &'a [Vec<f64>]) -> SortedUnion<'a> {
        SortedUnion {
            parts,
            at: vec![0; parts.len()],
        }
    }
}

impl Iterator for SortedUnion<'_> {
    type Item = f64;
    fn next(&mut self) -> Option<f64> {
        let (k, x) = self
            .parts
            .iter()
            .zip(&self.at)
            .enumerate()
            .filter_map(|(k, (v, &i))| v.get(i).map(|x| (k, *x)))
            .min_by(|a, b| a.1.total_cmp(&b.1))?;
        self.at[k] += 1;
        Some(x)
    }
}

/// What every row of the apply pass needs, shared by its chunks.
struct Rows<'a> {
    plan: &'a Plan,
    split: &'a Split,
    /// Per stage column: the imputed value for a missing field, if any.
    fill: Vec<Option<&'a str>>,
    vectors: &'a [text::Vectors],
}

/// One chunk's share of the apply pass: its writers, profilers, row counts and row buffers.
struct Part {
    paths: [std::path::PathBuf; 2],
    writers: [csv::Writer<std::io::BufWriter<table::HashingFile>>; 2],
    profilers: [table::Profiler; 2],
    rows: [u64; 2],
    /// The row's stage values and output fields, reused from row to row.
    stage: Vec<String>,
    row: Vec<String>,
}

impl Part {
    /// The first part writes (and hashes) `train` and `holdout` with their header; a later
    /// part writes rows only, into files appended to the first part's.
    fn new(
        paths: [std::path::PathBuf; 2],
        first: bool,
        header: &[String],
    ) -> Result<Part, table::TableError> {
        let mut writers = Vec::with_capacity(2);
        for path in &paths {
            let w = if first {
                let mut w = table::create_hashed(path)?;
                w.write_record(header).map_err(table::write_err(path))?;
                w
            } else {
                table::create_part(path)?
            };
            writers.push(w);
        }
        let writers: [_; 2] = writers.try_into().ok().expect("two writers");
        Ok(Part {
            paths,
            writers,
            // The outputs are profiled as they are written (the fields read back the same),
            // so confirm need not read them again.
            profilers: [
                table::Profiler::new(header.len()),
                table::Profiler::new(header.len()),
            ],
            rows: [0, 0],
            stage: Vec::new(),
            row: Vec::new(),
        })
    }
}

/// Later parts' files, removed when dropped.
struct PartFiles(Vec<std::path::PathBuf>);

impl Drop for PartFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Rows<'_> {
    /// Transforms data row `i` and writes it to its side of `part`.
    fn apply(
        &self,
        part: &mut Part,
        i: u64,
        record: &csv::StringRecord,
    ) -> Result<(), table::TableError> {
        let plan = self.plan;
        let Some(side) = self.split.side(i, record) else {
            return Ok(());
        };
        let stage = &mut part.stage;
        stage.resize(plan.stage.len(), String::new());
        for (j, (s, c)) in stage.iter_mut().zip(&plan.stage).enumerate() {
            let field = record.get(c.source).unwrap_or("");
            s.clear();
            if !is_missing(field) {
                s.push_str(table::trim(field));
            } else if let Some(v) = self.fill[j] {
                s.push_str(v);
            }
        }
        let averages: Vec<Option<Vec<f64>>> = plan
            .text
            .iter()
            .zip(self.vectors)
            .map(|((c, _), v)| v.average(&stage[*c]))
            .collect();
        // Computed fields (derived, Word2Vec) go through `row`, whose buffers are reused from
        // row to row; a stage field is written from `stage` as is.
        let row = &mut part.row;
        row.resize(plan.outputs.len(), String::new());
        for (o, out) in plan.outputs.iter().zip(row.iter_mut()) {
            match o {
                Out::Stage(_) => {}
                Out::Derived(j) => {
                    out.clear();
                    if let Some(x) = plan.derive[*j].expr.eval(&|c| stage[c].parse::<f64>().ok()) {
                        out.push_str(&format_number(x));
                    }
                }
                Out::Word2Vec(k, d) => {
                    out.clear();
                    if let Some(v) = averages[*k].as_ref() {
                        out.push_str(&text::format_feature(v[*d]));
                    }
                }
            }
        }
        let (stage, row) = (&part.stage, &part.row);
        let fields = plan.outputs.iter().zip(row).map(|(o, out)| match o {
            Out::Stage(c) => stage[*c].as_str(),
            _ => out.as_str(),
        });
        let s = match side {
            Side::Train => 0,
            Side::Holdout => 1,
        };
        part.writers[s]
            .write_record(fields.clone())
            .map_err(table::write_err(&part.paths[s]))?;
        part.rows[s] += 1;
        let profiler = &mut part.profilers[s];
        profiler.row();
        for (j, f) in fields.enumerate() {
            profiler.field(j, f);
        }
        Ok(())
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
mod tests {
    use super::*;
    use crate::config::Prepare;

    fn spec(problem: Problem) -> ProblemSpec {
        ProblemSpec {
            target: "y".into(),
            problem,
            metric: "auc".into(),
            ignore: vec![],
            classes: vec!["0".into(), "1".into()],
        }
    }

    fn fixture(text: &str) -> (tempfile::TempDir, std::path::PathBuf, Profile) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        std::fs::write(&p, text).unwrap();
        let profile = table::profile_csv(&p).unwrap();
        (dir, p, profile)
    }

    fn prepare(toml_prepare: &str) -> Prepare {
        let text = format!(
            "[define]\ntarget = \"y\"\n[locate]\npath = \"d.csv\"\n[prepare]\n{toml_prepare}\n"
        );
        crate::config::parse(Path::new("ml.toml"), &text, &[])
            .unwrap()
            .prepare
    }

    #[test]
    fn sorted_union_is_the_sorted_concatenation() {
        let mut parts = vec![
            vec![3.0, -0.0, 1e300, f64::NAN, 2.5],
            vec![],
            vec![0.0, -1.0, 2.5, f64::INFINITY],
        ];
        let mut all: Vec<f64> = parts.concat();
        all.sort_by(f64::total_cmp);
        for v in &mut parts {
            v.sort_unstable_by(f64::total_cmp);
        }
        let union: Vec<u64> = SortedUnion::new(&parts).map(f64::to_bits).collect();
        assert_eq!(union, all.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    }

    #[test]
    fn chunked_fit_and_apply_equal_the_sequential_pass() {
        // Values whose floating-point sum depends on the order of the additions.
        let mut csv = String::from("a,b,c,y\n");
        for i in 0..20_000u64 {
            let r = table::splitmix64(i);
            let a = if r.is_multiple_of(11) {
                "NA".to_string()
            } else {
                format!(
                    "{}",
                    (r % 100_000) as f64 / 7.0 + 1e12 * ((r >> 20) % 3) as f64
                )
            };
            let b = if r.is_multiple_of(13) {
                String::new()
            } else {
                format!("{}.{}", (r >> 8) % 50, (r >> 16) % 1000)
            };
            let c = if r.is_multiple_of(17) {
                ""
            } else {
                ["p", "q", "r"][(r >> 30) as usize % 3]
            };
            csv.push_str(&format!("{a},{b},{c},{}\n", (r >> 40) % 2));
        }
        let (dir, path, profile) = fixture(&csv);
        let prep = prepare(
            "holdout = 0.3\nseed = 5\nimpute = { a = \"mean\", b = \"median\", c = \"mode\" }",
        );
        let spec = spec(Problem::Binary);
        let plan = Plan::new(&prep, &profile, &spec).unwrap();
        let run = |min_bytes: u64, tag: &str| {
            table::TEST_PARALLEL_MIN_BYTES.with(|m| m.set(min_bytes));
            let split = Split::stratified(&path, plan.target_source, 5, 0.3, None).unwrap();
            let fitted = plan.fit(&path, &split, &[]).unwrap();
            let (t, h) = (
                dir.path().join(format!("t-{tag}.csv")),
                dir.path().join(format!("h-{tag}.csv")),
            );
            let applied = plan.apply(&path, &split, &fitted, &[], [&t, &h]).unwrap();
            let bytes = [std::fs::read(&t).unwrap(), std::fs::read(&h).unwrap()];
            for (b, d) in bytes.iter().zip(&applied.digests) {
                assert_eq!(&blake3::hash(b).to_hex().to_string(), d);
            }
            (
                fitted.impute,
                fitted.train_rows,
                applied.rows,
                applied.profiles,
                bytes,
            )
        };
        let sequential = run(u64::MAX, "seq");
        let chunked = run(0, "par");
        table::TEST_PARALLEL_MIN_BYTES.with(|m| m.set(0));
        assert!(
            table::indexed_chunks(&path, 4, |_| (), |_, _, _| ()).is_some(),
            "the chunked path was taken"
        );
        table::TEST_PARALLEL_MIN_BYTES.with(|m| m.set(u64::MAX));
        assert_eq!(chunked, sequential);
        // No part files are left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".part"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn imputation_is_fitted_on_training_rows_only() {
        // Holdout rows carry huge values: a fit that saw them would move far from train's.
        let mut csv = String::from("a,c,y\n");
        for i in 0..200u64 {
            let held = table::in_holdout(42, i, 0.25);
            let a = if i % 10 == 0 {
                String::new()
            } else if held {
                "1000".into()
            } else {
                (i % 7).to_string()
            };
            let c = if i % 10 == 5 {
                ""
            } else if held {
                "zzz"
            } else if i % 3 == 0 {
                "p"
            } else {
                "q"
            };
            csv.push_str(&format!("{a},{c},{}\n", i % 2));
        }
        let (dir, path, profile) = fixture(&csv);
        let prep = prepare("holdout = 0.25\nimpute = { a = \"mean\", c = \"mode\" }");
        let plan = Plan::new(&prep, &profile, &spec(Problem::Regression)).unwrap();
        let split = Split::random(42, 0.25, None);
        let fitted = plan.fit(&path, &split, &[]).unwrap();
        let (mut sum, mut n) = (0.0, 0u64);
        for i in 0..200u64 {
            if !table::in_holdout(42, i, 0.25) && i % 10 != 0 {
                sum += (i % 7) as f64;
                n += 1;
            }
        }
        assert_eq!(fitted.impute[0].value, format_number(sum / n as f64));
        assert!(sum / (n as f64) < 7.0);
        assert_eq!(fitted.impute[0].fitted_on_rows, n);
        assert_eq!(
            fitted.impute[1].value, "q",
            "the holdout's `zzz` never counts"
        );
        // Applied to both sides: no missing `a` or `c` remains, holdout filled with train's value.
        let (t, h) = (dir.path().join("t.csv"), dir.path().join("h.csv"));
        plan.apply(&path, &split, &fitted, &[], [&t, &h]).unwrap();
        let held = std::fs::read_to_string(&h).unwrap();
        assert!(
            held.lines()
                .skip(1)
                .all(|l| !l.starts_with(',') && !l.contains(",,")),
            "{held}"
        );
        assert!(
            held.contains(&format!("{},", fitted.impute[0].value)),
            "{held}"
        );
    }

    #[test]
    fn median_mode_ties_and_constants() {
        let (_d, path, profile) = fixture("a,b,y\n1,x,0\n3,y,1\n2,y,0\n10,x,1\n,,0\n");
        let prep = prepare("holdout = 0.01\nimpute = { a = \"median\", b = \"mode\" }");
        let plan = Plan::new(&prep, &profile, &spec(Problem::Regression)).unwrap();
        let split = Split::random(1, 1e-9, None);
        let f = plan.fit(&path, &split, &[]).unwrap();
        assert_eq!(f.impute[0].value, "2.5");
        assert_eq!(f.impute[1].value, "x", "a tie goes to the smallest value");
        let prep = prepare("impute = { a = { constant = 0 }, b = { constant = \"none\" } }");
        let plan = Plan::new(&prep, &profile, &spec(Problem::Regression)).unwrap();
        let f = plan.fit(&path, &split, &[]).unwrap();
        assert_eq!(
            (f.impute[0].value.as_str(), f.impute[1].value.as_str()),
            ("0", "none")
        );
    }

    #[test]
    fn bad_input_gets_clear_errors() {
        let (_d, _p, profile) = fixture("AGE,RACE,y\n1,x,0\n2,y,1\n");
        let err = |p: &str| {
            let e = Plan::new(&prepare(p), &profile, &spec(Problem::Binary)).unwrap_err();
            let d = e.downcast_ref::<Diagnostic>().unwrap();
            format!("{} | {}", d.message, d.hint.clone().unwrap_or_default())
        };
        let e = err("impute = { AGEE = \"mean\" }");
        assert!(
            e.contains("`prepare.impute.AGEE` names column `AGEE`")
                && e.contains("did you mean `AGE`?"),
            "{e}"
        );
        let e = err("impute = { RACE = \"mean\" }");
        assert!(
            e.contains("needs a numeric column, but `RACE` is enum"),
            "{e}"
        );
        let e = err("rename = { AGX = \"age\" }");
        assert!(
            e.contains("`prepare.rename.AGX`") && e.contains("did you mean `AGE`"),
            "{e}"
        );
        let e = err("derive = { r = \"AGE / AGEE\" }");
        assert!(
            e.contains("uses column `AGEE` (character 7")
                && e.contains("^^^^")
                && e.contains("did you mean `AGE`"),
            "{e}"
        );
        let e = err("derive = { r = \"AGE * RACE\" }");
        assert!(e.contains("`RACE`") && e.contains("is not numeric"), "{e}");
        let e = err("derive = { r = \"y + 1\" }");
        assert!(e.contains("is the target"), "{e}");
        let e = err("text = { REVIEW = {} }");
        assert!(
            e.contains("`prepare.text.REVIEW`")
                && e.contains("the columns at this point are: AGE, RACE, y"),
            "{e}"
        );
        // After a rename, later keys use the new name.
        let e = err("rename = { AGE = \"age\" }\nimpute = { AGE = \"mean\" }");
        assert!(e.contains("did you mean `age`?"), "{e}");
        let ok = Plan::new(
            &prepare("rename = { AGE = \"age\" }\nderive = { twice = \"age * 2\" }"),
            &profile,
            &spec(Problem::Binary),
        )
        .unwrap();
        let names: Vec<String> = ok.schema().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["age", "RACE", "y", "twice"]);
    }
}

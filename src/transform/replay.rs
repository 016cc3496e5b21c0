//! Replaying a stored transform (`transform.json`) on new rows, one row at a time: what
//! `predict` and `serve` do so a model sees its inputs exactly as training did.
//!
//! The row-wise twin of [`Plan::apply`](super::Plan::apply), built from the [`Manifest`]
//! alone (no `ml.toml`, no data profile): a field is trimmed, a missing one takes its fitted
//! imputation value, derived columns are evaluated on the imputed text, Word2Vec features are
//! averaged from the stored vectors and written in single precision. Outputs are text, in the
//! prepared CSV's form, so the scorer parses exactly what H2O parsed.
//!
//! Limits: `format` 1 only; the target and ignored columns are listed in `input_columns` but a
//! row need not carry them ([`Replay::needed`] says which inputs an output depends on).

use anyhow::{bail, Context, Result};

use super::{expr, format_number, text, Manifest, MANIFEST_FORMAT};
use crate::table::is_missing;

#[derive(Debug, Clone)]
enum Out {
    Stage(usize),
    Derived(usize),
    Word2Vec(usize, usize),
}

/// A manifest resolved for row-wise application.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The data's names of the columns read, in the manifest's order.
    input: Vec<String>,
    /// The same columns after `rename`.
    stage: Vec<String>,
    /// Per stage column: the fitted value for a missing field.
    fill: Vec<Option<String>>,
    derive: Vec<(String, expr::Expr)>,
    /// Text columns: stage index and vectors.
    text: Vec<(usize, text::Vectors)>,
    outputs: Vec<(String, Out)>,
}

impl Replay {
    /// The replay of the transform stored as blob `digest` (its `transform.json`), with the
    /// Word2Vec artifacts it names read from `store`; every blob verified as it is read.
    pub fn stored(store: &crate::store::Store, digest: &str) -> Result<Replay> {
        let bytes = store.read_verified(digest)?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).context("reading its transform.json")?;
        Replay::new(&manifest, |d| Ok(store.read_verified(d)?))
    }

    /// Resolves `manifest`; `vectors(digest)` returns a stored `word2vec.COL` artifact.
    #[allow(
        clippy::too_many_lines,
        reason = "rebuilds the five stages from transform.json in order, each checked"
    )]
    pub fn new(
        manifest: &Manifest,
        mut vectors: impl FnMut(&str) -> Result<Vec<u8>>,
    ) -> Result<Replay> {
        if manifest.format != MANIFEST_FORMAT {
            bail!(
                "transform format {} is not supported (this mlbuild reads format {MANIFEST_FORMAT})",
                manifest.format
            );
        }
        let input = manifest.input_columns.clone();
        let mut stage = input.clone();
        let mut fill = vec![None; input.len()];
        let mut derive = Vec::new();
        let mut text = Vec::new();
        let position = |stage: &[String], name: &str| {
            stage.iter().position(|n| n == name).with_context(|| {
                format!("the transform names column `{name}`, which it never reads")
            })
        };
        for step in &manifest.steps {
            match step["op"].as_str().unwrap_or("") {
                "rename" => {
                    let map = step["columns"]
                        .as_object()
                        .context("a rename without columns")?;
                    for (old, new) in map {
                        let i = position(&input, old)?;
                        stage[i] = new
                            .as_str()
                            .context("a rename to a non-string")?
                            .to_string();
                    }
                }
                "impute" => {
                    let columns: Vec<super::ImputedValue> =
                        serde_json::from_value(step["columns"].clone())
                            .context("reading the transform's imputed values")?;
                    for c in columns {
                        let i = position(&stage, &c.column)?;
                        fill[i] = Some(c.value);
                    }
                }
                "derive" => {
                    for c in step["columns"]
                        .as_array()
                        .context("a derive without columns")?
                    {
                        let name = c["name"]
                            .as_str()
                            .context("a derived column without a name")?;
                        let source = c["expression"].as_str().unwrap_or("");
                        let mut e = expr::parse(source).map_err(|e| {
                            anyhow::anyhow!("derived column `{name}`: {} in {source:?}", e.message)
                        })?;
                        e.bind(&|col| stage.iter().position(|n| n == col)).map_err(
                            |(col, _, _)| {
                                anyhow::anyhow!(
                                    "derived column `{name}` uses unknown column `{col}`"
                                )
                            },
                        )?;
                        derive.push((name.to_string(), e));
                    }
                }
                "word2vec" => {
                    let column = step["column"]
                        .as_str()
                        .context("a word2vec step without a column")?;
                    let digest = step["vectors"].as_str().with_context(|| {
                        format!("the word vectors of `{column}` are not recorded")
                    })?;
                    let bytes = vectors(digest)
                        .with_context(|| format!("reading the word vectors of `{column}`"))?;
                    text.push((position(&stage, column)?, text::Vectors::from_csv(&bytes)?));
                }
                other => bail!("the transform has an unknown step `{other}`"),
            }
        }
        let mut outputs = Vec::new();
        for (name, _) in &manifest.schema {
            let out = if let Some(j) = derive.iter().position(|(n, _)| n == name) {
                Out::Derived(j)
            } else if let Some(i) = stage.iter().position(|n| n == name) {
                Out::Stage(i)
            } else {
                let found = text.iter().enumerate().find_map(|(k, (i, v))| {
                    text::feature_names(&stage[*i], v.dim)
                        .iter()
                        .position(|f| f == name)
                        .map(|d| Out::Word2Vec(k, d))
                });
                found.with_context(|| {
                    format!("the transform's schema has column `{name}`, which no step makes")
                })?
            };
            outputs.push((name.clone(), out));
        }
        Ok(Replay {
            input,
            stage,
            fill,
            derive,
            text,
            outputs,
        })
    }

    /// The data's columns the transform reads, in order: what [`Replay::apply`] takes.
    pub fn input_columns(&self) -> &[String] {
        &self.input
    }

    /// The prepared columns, in order: what [`Replay::apply`] writes.
    pub fn output_names(&self) -> Vec<String> {
        self.outputs.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Indices (into [`Replay::input_columns`]) of the inputs that prepared column `name`
    /// depends on; `None` when the transform has no such output.
    pub fn needed(&self, name: &str) -> Option<Vec<usize>> {
        let (_, out) = self.outputs.iter().find(|(n, _)| n == name)?;
        Some(match out {
            Out::Stage(i) => vec![*i],
            Out::Word2Vec(k, _) => vec![self.text[*k].0],
            Out::Derived(j) => {
                let mut v: Vec<usize> = self.derive[*j]
                    .1
                    .columns()
                    .iter()
                    .filter_map(|(c, _, _)| self.stage.iter().position(|n| n == c))
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            }
        })
    }

    /// Prepares one row: `fields` holds one field per input column (`""` when absent);
    /// `out` receives one text per output column (empty = missing), as `prepare` writes it.
    pub fn apply<S: AsRef<str>>(
        &self,
        fields: &[S],
        stage: &mut Vec<String>,
        out: &mut Vec<String>,
    ) {
        stage.resize(self.stage.len(), String::new());
        for (j, s) in stage.iter_mut().enumerate() {
            let field = fields.get(j).map_or("", |f| f.as_ref());
            s.clear();
            if !is_missing(field) {
                s.push_str(field.trim());
            } else if let Some(v) = &self.fill[j] {
                s.push_str(v);
            }
        }
        let averages: Vec<Option<Vec<f64>>> = self
            .text
            .iter()
            .map(|(c, v)| v.average(&stage[*c]))
            .collect();
        out.resize(self.outputs.len(), String::new());
        for (o, (_, kind)) in out.iter_mut().zip(&self.outputs) {
            o.clear();
            match kind {
                Out::Stage(c) => o.push_str(&stage[*c]),
                Out::Derived(j) => {
                    if let Some(x) = self.derive[*j].1.eval(&|c| stage[c].parse::<f64>().ok()) {
                        o.push_str(&format_number(x));
                    }
                }
                Out::Word2Vec(k, d) => {
                    if let Some(v) = &averages[*k] {
                        o.push_str(&text::format_feature(v[*d]));
                    }
                }
            }
        }
    }
}

//! MOJO archives: the canonical digest, and native scoring of H2O-3 MOJOs without a JVM.
//!
//! [`Mojo::load`] reads a MOJO zip once (model.ini, domains, trees, booster, nested models) into
//! pre-decoded, immutable structures; a [`Mojo`] is `Send + Sync` and scores rows from many
//! threads. Scoring follows H2O's genmodel (3.46) step by step, in its order of floating-point
//! operations, so that results match `PredictCsv` bit for bit except where Java's `Math.exp`/
//! `Math.log` intrinsics differ from the platform libm by one ulp (see docs/mojo.md).
//!
//! | algo (`model.ini` `algo`) | MOJO versions | file |
//! |---|---|---|
//! | `gbm`, `drf` (and XRT, which is DRF) | 1.20–1.40 | `tree.rs` |
//! | `glm` (binomial, multinomial, regression families) | 1.00 | `glm.rs` |
//! | `xgboost` (gbtree booster) | 1.10 | `xgboost.rs` |
//! | `deeplearning` (not autoencoders) | 1.00–1.10 | `deeplearning.rs` |
//! | `stackedensemble` | 1.00–1.01 | `ensemble.rs` |
//!
//! Everything else (other algorithms, newer MOJO versions, ordinal and uplift models, offset
//! columns, non-default categorical encodings) is refused at load time with
//! [`MojoError::Unsupported`], naming the algorithm and MOJO version.
//!
//! Input conversion is genmodel's `EasyPredictModelWrapper` with unknown levels converted to NA
//! (what `PredictCsv` does): a row holds one [`Value`] per input column of the
//! [`Mojo::signature`]; a categorical level not in the column's domain becomes missing.
//! Calibrated probabilities (`calib_method`) are not applied, as in `PredictCsv`'s output.

mod bytes;
mod canonical;
mod deeplearning;
mod ensemble;
mod glm;
mod hex;
mod ini;
mod model;
mod prediction;
#[cfg(test)]
mod properties;
mod row;
mod shap;
mod tree;
pub mod validate;
mod xgboost;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io::{Cursor, Read};

pub use canonical::canonical_digest;
/// The canonical digest's error (a MOJO that is not a zip, or has no `model.ini`).
pub use canonical::MojoError as DigestError;
pub use hex::java_hex;
pub use row::{Binding, Value};

use model::Model;

/// Why a MOJO could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MojoError {
    #[error("not a MOJO archive: {0}")]
    NotZip(String),
    #[error("MOJO archive has no `{0}`")]
    MissingEntry(String),
    #[error("unsupported MOJO: algorithm `{algo}`, MOJO version {version}: {reason}")]
    Unsupported {
        algo: String,
        version: String,
        reason: String,
    },
    #[error("malformed `model.ini`: {0}")]
    Ini(String),
    #[error("malformed MOJO: {0}")]
    Format(String),
    #[error("the input has no column {}; the model needs: {}", quoted(.missing), quoted(.required))]
    MissingColumns {
        missing: Vec<String>,
        required: Vec<String>,
    },
}

/// Why one row could not be scored.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScoreError {
    #[error("the row has {got} values, the model has {expected} input columns")]
    Width { got: usize, expected: usize },
    #[error("column `{column}`: `{value}` is not a number")]
    NotANumber { column: String, value: String },
}

/// The signature as `name (type)` lines for error messages.
fn mojo_columns(mojo: &Mojo) -> Vec<String> {
    mojo.signature
        .iter()
        .map(|c| match &c.kind {
            ColumnKind::Numeric => format!("{} (numeric)", c.name),
            ColumnKind::Categorical(levels) => {
                let shown: Vec<&str> = levels.iter().take(8).map(String::as_str).collect();
                let more = if levels.len() > 8 { ", …" } else { "" };
                format!("{} (categorical: {}{more})", c.name, shown.join(", "))
            }
        })
        .collect()
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kind of prediction a model makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Binomial,
    Multinomial,
    Regression,
}

/// One input column of the model's signature.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnKind {
    Numeric,
    /// The levels, in the order the model indexes them.
    Categorical(Vec<String>),
}

/// A scored row.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// Classification: the index of the predicted class in [`Mojo::classes`], and one
    /// probability per class.
    Class {
        label: usize,
        probabilities: Vec<f64>,
    },
    /// Regression.
    Value(f64),
}

/// A loaded MOJO, ready to score. Immutable, `Send + Sync`.
#[derive(Debug)]
pub struct Mojo {
    model: Model,
    signature: Vec<Column>,
}

/// The zip's entries by name; `experimental/` is skipped, no scorer needs it.
pub(crate) struct Archive {
    entries: HashMap<String, Vec<u8>>,
}

/// Reads one entry's bytes, at most its declared size and at most `budget` (what is left of
/// [`validate::MAX_UNCOMPRESSED`] for the whole archive), which it reduces. A declared size is
/// not trusted for an allocation: a damaged header may declare gigabytes (or `u64::MAX`, a
/// capacity overflow) for a few bytes.
pub(crate) fn read_entry<R: Read>(
    file: &mut zip::read::ZipFile<'_, R>,
    budget: &mut u64,
) -> Result<Vec<u8>, String> {
    let declared = file.size();
    if declared > *budget {
        return Err(format!(
            "declares {declared} bytes, past the {} MiB mlbuild reads from one archive",
            validate::MAX_UNCOMPRESSED >> 20
        ));
    }
    // Grows as it reads; one byte more than declared shows an entry that inflates past it.
    let mut data = Vec::with_capacity(declared.min(1 << 20) as usize);
    file.take(declared + 1)
        .read_to_end(&mut data)
        .map_err(|e| e.to_string())?;
    if data.len() as u64 > declared {
        return Err(format!(
            "inflates to more than the {declared} bytes its header declares"
        ));
    }
    if data.len() as u64 != declared {
        return Err(format!(
            "inflates to {} bytes, its header declares {declared}",
            data.len()
        ));
    }
    *budget -= declared;
    Ok(data)
}

impl Archive {
    fn read(bytes: &[u8]) -> Result<Archive, MojoError> {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| MojoError::NotZip(e.to_string()))?;
        let mut entries = HashMap::with_capacity(zip.len().min(validate::MAX_ENTRIES));
        let mut budget = validate::MAX_UNCOMPRESSED;
        for i in 0..zip.len() {
            let mut file = zip
                .by_index(i)
                .map_err(|e| MojoError::NotZip(e.to_string()))?;
            let name = file.name().to_string();
            if file.is_dir() || name.starts_with("experimental/") || name.contains("/experimental/")
            {
                continue;
            }
            let data = read_entry(&mut file, &mut budget)
                .map_err(|e| MojoError::NotZip(format!("`{name}`: {e}")))?;
            entries.insert(name, data);
        }
        Ok(Archive { entries })
    }

    pub(crate) fn get(&self, name: &str) -> Result<&[u8], MojoError> {
        self.entries
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| MojoError::MissingEntry(name.to_string()))
    }

    pub(crate) fn exists(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The number of files in the archive: a bound for counts `model.ini` declares.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn text(&self, name: &str) -> Result<&str, MojoError> {
        std::str::from_utf8(self.get(name)?)
            .map_err(|_| MojoError::Format(format!("`{name}` is not UTF-8")))
    }
}

/// How a row's contributions are laid out ([`Mojo::contribution_layout`]): `sets.len()` sets
/// back to back, each `names.len()` long.
#[derive(Debug, Clone, PartialEq)]
pub struct ContributionLayout {
    /// One set's columns: the inputs (XGBoost: its one-hot names), then `BiasTerm`.
    pub names: Vec<String>,
    /// Each set's label: the class it explains (several sets), or one empty label.
    pub sets: Vec<String>,
}

impl Mojo {
    /// Reads a MOJO zip. Trees are decoded here once, so scoring does no parsing.
    pub fn load(bytes: &[u8]) -> Result<Mojo, MojoError> {
        let archive = Archive::read(bytes)?;
        let model = Model::load(&archive, "", 0)?;
        let signature = model.meta.signature();
        Ok(Mojo { model, signature })
    }

    /// The input columns, in the order [`Mojo::score`] takes them, with their types and levels.
    pub fn signature(&self) -> &[Column] {
        &self.signature
    }

    /// `model.ini`'s `algo` (`gbm`, `drf`, `glm`, `xgboost`, `deeplearning`, `stackedensemble`).
    pub fn algo(&self) -> &str {
        &self.model.meta.algo
    }

    pub fn mojo_version(&self) -> &str {
        &self.model.meta.mojo_version
    }

    pub fn category(&self) -> Category {
        self.model.meta.category
    }

    /// The response column's name.
    pub fn response(&self) -> Option<&str> {
        self.model.meta.response()
    }

    /// The class names, for classifiers.
    pub fn classes(&self) -> Option<&[String]> {
        self.model.meta.classes()
    }

    /// genmodel's output column names, as `PredictCsv` writes them: `predict`, then one column
    /// per class, integer class names prefixed with `p` (`p0`, `p1`).
    pub fn output_names(&self) -> Vec<String> {
        let mut names = vec!["predict".to_string()];
        if let Some(classes) = self.classes() {
            names.extend(classes.iter().map(|c| match c.parse::<i32>() {
                Ok(_) => format!("p{c}"),
                Err(_) => c.clone(),
            }));
        }
        names
    }

    /// The class name of a classification.
    pub fn label<'a>(&'a self, prediction: &Prediction) -> Option<&'a str> {
        match prediction {
            Prediction::Class { label, .. } => self.classes()?.get(*label).map(String::as_str),
            Prediction::Value(_) => None,
        }
    }

    /// Scores one row given in signature order.
    pub fn score(&self, row: &[Value]) -> Result<Prediction, ScoreError> {
        let mut raw = Vec::with_capacity(self.signature.len());
        self.encode(row, &mut raw)?;
        Ok(self.score_encoded(&raw))
    }

    /// Converts a row given in signature order to genmodel's `double[]`: numbers as they are,
    /// levels as their index, missing values and unseen levels as NaN.
    pub fn encode(&self, row: &[Value], out: &mut Vec<f64>) -> Result<(), ScoreError> {
        self.encode_iter(row.iter().cloned(), out)
    }

    /// [`Mojo::encode`] from an iterator of values: a caller that maps its fields on the fly
    /// allocates nothing per row.
    pub fn encode_iter<'v>(
        &self,
        row: impl ExactSizeIterator<Item = Value<'v>>,
        out: &mut Vec<f64>,
    ) -> Result<(), ScoreError> {
        if row.len() != self.signature.len() {
            return Err(ScoreError::Width {
                got: row.len(),
                expected: self.signature.len(),
            });
        }
        out.clear();
        for (value, column) in row.zip(&self.signature) {
            out.push(row::encode_value(&value, column)?);
        }
        Ok(())
    }

    /// Scores a row already encoded by [`Mojo::encode`] or [`Binding::encode`]: the fast path
    /// for batches (reuse one buffer for every row).
    pub fn score_encoded(&self, raw: &[f64]) -> Prediction {
        let meta = &self.model.meta;
        let mut preds = vec![0.0; meta.preds_len()];
        self.model.score0(raw, &mut preds);
        match meta.category {
            Category::Regression => Prediction::Value(preds[0]),
            _ => {
                // The label goes; the buffer becomes the probabilities (one allocation a row).
                let label = preds.remove(0) as usize;
                Prediction::Class {
                    label,
                    probabilities: preds,
                }
            }
        }
    }

    /// The columns of [`Mojo::contributions`]: one per input column, then `BiasTerm`; for a
    /// model that explains several classes (multinomial, DRF with `binomial_double_trees`),
    /// that set per class, each name prefixed by the class and a dot (`setosa.petal_len`).
    /// `Err` names the algorithm when this model cannot be explained natively (yet: GBM, DRF
    /// and XRT with their trees' node weights, MOJO 1.10 and later; GLM with mean imputation).
    pub fn contribution_names(&self) -> Result<Vec<String>, String> {
        let layout = self.contribution_layout()?;
        if layout.sets.len() == 1 {
            return Ok(layout.names);
        }
        Ok(layout
            .sets
            .iter()
            .flat_map(|class| {
                layout
                    .names
                    .iter()
                    .map(move |name| format!("{class}.{name}"))
            })
            .collect())
    }

    /// How [`Mojo::contributions`] lays out a row: the names of one set (inputs, then
    /// `BiasTerm`) and the label of each set: the class it explains when several are (the
    /// class's index when the model names none), one empty label otherwise. `Err` as
    /// [`Mojo::contribution_names`].
    pub fn contribution_layout(&self) -> Result<ContributionLayout, String> {
        let meta = &self.model.meta;
        let features = || meta.features().to_vec();
        let (sets, mut names) = match &self.model.scorer {
            model::Scorer::Tree(t) if t.explainable() => (t.explained_sets(), features()),
            model::Scorer::Tree(_) => {
                return Err(format!(
                    "{} (this MOJO, version {}, has no node weights for its trees)",
                    meta.algo, meta.mojo_version
                ))
            }
            model::Scorer::Glm(g) => match g.unexplainable() {
                None => (g.explained_sets(meta), features()),
                Some(why) => return Err(format!("{} ({why})", meta.algo)),
            },
            model::Scorer::XGBoost(x) => match x.unexplainable() {
                None => (x.explained_sets(), x.feature_names(meta)),
                Some(why) => return Err(format!("{} ({why})", meta.algo)),
            },
            _ => return Err(meta.algo.clone()),
        };
        names.push("BiasTerm".to_string());
        let classes = meta.classes().unwrap_or_default();
        let sets = match sets {
            1 => vec![String::new()],
            n => (0..n)
                .map(|c| classes.get(c).map_or_else(|| c.to_string(), String::clone))
                .collect(),
        };
        Ok(ContributionLayout { names, sets })
    }

    /// The contributions of a row encoded by [`Mojo::encode`] or [`Binding::encode`], in the
    /// order of [`Mojo::contribution_names`], into `out`: per explained class, each input
    /// column's contribution (TreeSHAP for trees, exact for GLM), then the bias; they add up to
    /// the class's raw score (docs/serve.md, "`--explain`"). Leaves `out` empty when the model
    /// cannot be explained.
    pub fn contributions(&self, raw: &[f64], out: &mut Vec<f64>) {
        out.clear();
        let meta = &self.model.meta;
        let sets = match &self.model.scorer {
            model::Scorer::Tree(t) => t.contributions(meta, raw),
            model::Scorer::Glm(g) => g.contributions(meta, raw),
            model::Scorer::XGBoost(x) if x.unexplainable().is_none() => Some(x.contributions(raw)),
            _ => None,
        };
        out.extend(sets.into_iter().flatten().flatten());
    }

    /// Scores many encoded rows (each `signature().len()` wide, laid out back to back).
    pub fn score_batch(&self, rows: &[f64]) -> Vec<Prediction> {
        let width = self.signature.len().max(1);
        rows.chunks_exact(width)
            .map(|raw| self.score_encoded(raw))
            .collect()
    }

    /// Maps a CSV header to the model's inputs by name. Every input column must be present
    /// (extra columns are ignored); a missing one is an error listing the model's signature.
    pub fn bind<S: AsRef<str>>(&self, header: &[S]) -> Result<Binding<'_>, MojoError> {
        Binding::new(self, header)
    }
}

/// Models are shared by `predict` and `serve` threads.
#[allow(dead_code)]
fn assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Mojo>();
}

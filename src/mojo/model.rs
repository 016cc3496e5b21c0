//! One model inside a MOJO: the common `model.ini` header (genmodel's `ModelMojoReader.readAll`)
//! and the algorithm's scorer, picked by `algo` and checked against the MOJO versions we read.

use super::deeplearning::DeepLearning;
use super::ensemble::Ensemble;
use super::glm::Glm;
use super::ini::{unescape_level, Ini};
use super::prediction;
use super::tree::TreeModel;
use super::xgboost::XGBoost;
use super::{Archive, Category, Column, ColumnKind, MojoError};

/// What every algorithm shares: columns, domains, the response and the class priors.
#[derive(Debug)]
pub(crate) struct Meta {
    pub algo: String,
    pub mojo_version: String,
    /// Every column, the response last when supervised.
    pub columns: Vec<String>,
    pub domains: Vec<Option<Vec<String>>>,
    pub nfeatures: usize,
    pub category: Category,
    pub nclasses: usize,
    pub default_threshold: f64,
    pub prior_class_distrib: Option<Vec<f64>>,
    pub model_class_distrib: Option<Vec<f64>>,
    pub balance_classes: bool,
}

impl Meta {
    pub fn features(&self) -> &[String] {
        &self.columns[..self.nfeatures]
    }

    pub fn response(&self) -> Option<&str> {
        (self.columns.len() > self.nfeatures).then(|| self.columns[self.columns.len() - 1].as_str())
    }

    pub fn classes(&self) -> Option<&[String]> {
        if self.category == Category::Regression {
            return None;
        }
        self.domains.last()?.as_deref()
    }

    /// genmodel's `preds` length: the label then one probability per class, or the value.
    pub fn preds_len(&self) -> usize {
        match self.category {
            Category::Regression => 1,
            _ => self.nclasses + 1,
        }
    }

    pub fn signature(&self) -> Vec<Column> {
        self.features()
            .iter()
            .zip(&self.domains)
            .map(|(name, domain)| Column {
                name: name.clone(),
                kind: match domain {
                    Some(levels) => ColumnKind::Categorical(levels.clone()),
                    None => ColumnKind::Numeric,
                },
            })
            .collect()
    }

    /// The number of levels of a categorical input column.
    pub fn domain_len(&self, col: usize) -> Option<usize> {
        self.domains.get(col)?.as_ref().map(Vec::len)
    }

    /// Balance-class correction and the label, shared by every classifier
    /// (`GenModel.correctProbabilities` then `getPrediction`).
    pub fn finish_classification(&self, row: &[f64], preds: &mut [f64]) {
        if self.balance_classes {
            if let (Some(prior), Some(model)) =
                (&self.prior_class_distrib, &self.model_class_distrib)
            {
                prediction::correct_probabilities(preds, prior, model);
            }
        }
        preds[0] = prediction::label(
            preds,
            self.prior_class_distrib.as_deref(),
            row,
            self.default_threshold,
        ) as f64;
    }
}

/// Builds the "unsupported MOJO" error for this model from a reason.
pub(crate) type Refuse<'a> = &'a dyn Fn(&str) -> MojoError;

#[derive(Debug)]
pub(crate) enum Scorer {
    Tree(TreeModel),
    Glm(Glm),
    XGBoost(XGBoost),
    DeepLearning(DeepLearning),
    Ensemble(Ensemble),
}

#[derive(Debug)]
pub(crate) struct Model {
    pub meta: Meta,
    pub scorer: Scorer,
}

/// The newest MOJO version each reader understands (genmodel 3.46's `mojoVersion()`), and the
/// oldest we accept.
fn supported(algo: &str) -> Option<(f64, f64)> {
    Some(match algo {
        // 1.00 and 1.10 encode trees differently (ScoreTree0/1); not read here.
        "gbm" | "drf" => (1.20, 1.40),
        "glm" => (1.00, 1.00),
        "xgboost" => (1.00, 1.10),
        "deeplearning" => (1.00, 1.10),
        "stackedensemble" => (1.00, 1.01),
        _ => return None,
    })
}

/// StackedEnsembles nest models; deeper than this is a loop (a member whose directory is the
/// ensemble's own) or an attack, and would overflow the stack.
pub(crate) const MAX_NESTING: usize = 4;

/// Checks the one-hot layout shared by GLM, XGBoost and DeepLearning: `cats + 1` offsets from
/// 0, never decreasing, and `cats + nums` features at most. Every number comes from
/// `model.ini`, so the arithmetic is checked.
pub(crate) fn one_hot_layout_ok(
    cats: usize,
    nums: usize,
    cat_offsets: &[usize],
    nfeatures: usize,
) -> bool {
    cats.checked_add(1) == Some(cat_offsets.len())
        && cats.checked_add(nums).is_some_and(|n| n <= nfeatures)
        && cat_offsets.first() == Some(&0)
        && cat_offsets.windows(2).all(|w| w[0] <= w[1])
        && cat_offsets[cats].checked_add(nums).is_some()
}

impl Model {
    /// Reads the model whose files are under `dir` (`""` for the top level, or a nested
    /// StackedEnsemble member's `models/…/`, `depth` levels down).
    #[allow(
        clippy::too_many_lines,
        reason = "dispatches over every algorithm's model.ini fields in genmodel's order"
    )]
    pub fn load(archive: &Archive, dir: &str, depth: usize) -> Result<Model, MojoError> {
        if depth > MAX_NESTING {
            return Err(MojoError::Format(format!(
                "models nested deeper than {MAX_NESTING} levels (at `{dir}`)"
            )));
        }
        let ini = Ini::parse(archive.text(&format!("{dir}model.ini"))?)?;
        let algo = ini.str("algo")?.to_string();
        let version = ini.str("mojo_version")?.to_string();
        let unsupported = |reason: &str| MojoError::Unsupported {
            algo: algo.clone(),
            version: version.clone(),
            reason: reason.to_string(),
        };
        let (oldest, newest) = supported(&algo).ok_or_else(|| {
            unsupported(
                "only gbm, drf, glm, xgboost, deeplearning and stackedensemble are supported",
            )
        })?;
        let v: f64 = version
            .parse()
            .map_err(|_| MojoError::Ini(format!("bad `mojo_version` `{version}`")))?;
        if v > newest || v < oldest {
            return Err(unsupported(&format!(
                "this reader supports {algo} MOJO versions {oldest:.2} to {newest:.2}"
            )));
        }
        let category = match ini.str("category")? {
            "Binomial" => Category::Binomial,
            "Multinomial" => Category::Multinomial,
            "Regression" => Category::Regression,
            other => {
                return Err(unsupported(&format!(
                    "model category `{other}` (only Binomial, Multinomial and Regression)"
                )))
            }
        };
        for key in ["treatment_column", "offset_column"] {
            if ini.raw(key).is_some() {
                return Err(unsupported(&format!("models with a `{key}`")));
            }
        }
        if let Some(encoding) = ini.raw("_genmodel_encoding") {
            if !matches!(
                encoding,
                "AUTO" | "Enum" | "SortByResponse" | "OneHotInternal"
            ) {
                return Err(unsupported(&format!(
                    "categorical encoding `{encoding}` (only AUTO)"
                )));
            }
        }

        let columns = ini.columns.clone();
        let supervised = ini.bool_or("supervised", true)?;
        let nfeatures = match ini.opt_usize("n_features")? {
            Some(n) => n,
            None => columns
                .len()
                .checked_sub(usize::from(supervised))
                .ok_or_else(|| MojoError::Ini("`[columns]` is empty".into()))?,
        };
        if nfeatures > columns.len() {
            return Err(MojoError::Ini("`n_features` exceeds `[columns]`".into()));
        }
        let escape = ini.bool_or("escape_domain_values", false)?;
        let mut domains: Vec<Option<Vec<String>>> = vec![None; columns.len()];
        for (col, n, file) in &ini.domains {
            if *col >= columns.len() {
                continue;
            }
            let text = archive.text(&format!("{dir}domains/{file}"))?;
            let levels: Vec<String> = text
                .lines()
                .map(|l| {
                    if escape {
                        unescape_level(l)
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            if levels.len() != *n {
                return Err(MojoError::Format(format!(
                    "`domains/{file}` has {} levels, model.ini says {n}",
                    levels.len()
                )));
            }
            domains[*col] = Some(levels);
        }
        let meta = Meta {
            nclasses: ini.usize("n_classes")?,
            default_threshold: ini.opt_f64("default_threshold")?.unwrap_or(0.5),
            prior_class_distrib: ini.opt_f64s("prior_class_distrib")?,
            model_class_distrib: ini.opt_f64s("model_class_distrib")?,
            balance_classes: ini.bool_or("balance_classes", false)?,
            algo: algo.clone(),
            mojo_version: version.clone(),
            columns,
            domains,
            nfeatures,
            category,
        };
        for (key, distribution) in [
            ("prior_class_distrib", &meta.prior_class_distrib),
            ("model_class_distrib", &meta.model_class_distrib),
        ] {
            if distribution
                .as_ref()
                .is_some_and(|d| meta.category != Category::Regression && d.len() != meta.nclasses)
            {
                return Err(MojoError::Format(format!(
                    "`{key}` does not have one value per class ({})",
                    meta.nclasses
                )));
            }
        }
        if meta.category != Category::Regression
            && meta.classes().map(<[_]>::len) != Some(meta.nclasses)
        {
            return Err(MojoError::Format(format!(
                "the response has no domain of {} classes",
                meta.nclasses
            )));
        }
        let refuse: Refuse = &unsupported;
        let scorer = match algo.as_str() {
            "gbm" | "drf" => Scorer::Tree(TreeModel::load(&ini, &meta, archive, dir, refuse)?),
            "glm" => Scorer::Glm(Glm::load(&ini, &meta, refuse)?),
            "xgboost" => Scorer::XGBoost(XGBoost::load(&ini, &meta, archive, dir, refuse)?),
            "deeplearning" => Scorer::DeepLearning(DeepLearning::load(&ini, &meta, refuse)?),
            "stackedensemble" => {
                Scorer::Ensemble(Ensemble::load(&ini, &meta, archive, dir, depth, refuse)?)
            }
            _ => unreachable!("checked by `supported`"),
        };
        Ok(Model { meta, scorer })
    }

    /// genmodel's `score0`: `row` holds the features in this model's column order.
    pub fn score0(&self, row: &[f64], preds: &mut [f64]) {
        match &self.scorer {
            Scorer::Tree(m) => m.score0(&self.meta, row, preds),
            Scorer::Glm(m) => m.score0(&self.meta, row, preds),
            Scorer::XGBoost(m) => m.score0(&self.meta, row, preds),
            Scorer::DeepLearning(m) => m.score0(&self.meta, row, preds),
            Scorer::Ensemble(m) => m.score0(&self.meta, row, preds),
        }
    }
}

//! StackedEnsemble (genmodel's `StackedEnsembleMojoModel`): every base model is a complete MOJO
//! nested under `models/…/`, fed the ensemble's row re-mapped to its own column order by name.
//! Their predictions (p1 for binomial, every class probability for multinomial, the value for
//! regression) form the metalearner's row; a base model the metalearner dropped has no
//! `base_model<i>` key and leaves 0 in its slot. With `metalearner_transform = Logit` each value
//! becomes `max(−19, log(p/(1−p)))` with p clamped to [1e-9, 1−1e-9].

use super::ini::Ini;
use super::model::{Meta, Model, Refuse};
use super::{Archive, Category, MojoError};

#[derive(Debug)]
struct Member {
    model: Model,
    /// For each of the member's features, its index in the ensemble's row.
    mapping: Vec<usize>,
}

#[derive(Debug)]
pub(crate) struct Ensemble {
    /// One slot per base model; `None` when the metalearner dropped it.
    members: Vec<Option<Member>>,
    metalearner: Box<Model>,
    logit: bool,
}

impl Ensemble {
    pub fn load(
        ini: &Ini,
        meta: &Meta,
        archive: &Archive,
        dir: &str,
        depth: usize,
        refuse: Refuse,
    ) -> Result<Ensemble, MojoError> {
        let logit = match ini.raw("metalearner_transform").unwrap_or("NONE") {
            "NONE" => false,
            "Logit" => true,
            other => return Err(refuse(&format!("metalearner transform `{other}`"))),
        };
        let count = ini.opt_usize("submodel_count")?.unwrap_or(0);
        // Counts come from the file: a submodel needs a `model.ini` of its own.
        if count > archive.len() {
            return Err(MojoError::Format(format!(
                "StackedEnsemble: {count} submodels in an archive of {} files",
                archive.len()
            )));
        }
        let mut submodels = Vec::with_capacity(count);
        for i in 0..count {
            let key = ini.str(&format!("submodel_key_{i}"))?.to_string();
            let sub_dir = ini.str(&format!("submodel_dir_{i}"))?;
            let model = Model::load(archive, &format!("{dir}{sub_dir}"), depth + 1)?;
            submodels.push((key, Some(model)));
        }
        let mut take = |key: &str| -> Result<Model, MojoError> {
            submodels
                .iter_mut()
                .find(|(k, m)| k == key && m.is_some())
                .and_then(|(_, m)| m.take())
                .ok_or_else(|| MojoError::Format(format!("StackedEnsemble: no submodel `{key}`")))
        };
        let metalearner = take(ini.str("metalearner")?)?;
        let n = ini.opt_usize("base_models_num")?.unwrap_or(0);
        // Base models the metalearner dropped have no submodel, so only a loose bound holds.
        if n > super::validate::MAX_ENTRIES {
            return Err(MojoError::Format(format!(
                "StackedEnsemble: {n} base models (at most {} are read)",
                super::validate::MAX_ENTRIES
            )));
        }
        let mut members = Vec::with_capacity(n);
        for i in 0..n {
            let Some(key) = ini.raw(&format!("base_model{i}")) else {
                members.push(None);
                continue;
            };
            let model = take(key)?;
            let mapping = model
                .meta
                .features()
                .iter()
                .map(|f| {
                    meta.features().iter().position(|c| c == f).ok_or_else(|| {
                        MojoError::Format(format!(
                            "StackedEnsemble: base model `{key}` needs column `{f}`, which the ensemble lacks"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if model.meta.category != meta.category || model.meta.nclasses != meta.nclasses {
                return Err(MojoError::Format(format!(
                    "StackedEnsemble: base model `{key}` is not a {:?} model of {} classes",
                    meta.category, meta.nclasses
                )));
            }
            members.push(Some(Member { model, mapping }));
        }
        let width = match meta.category {
            Category::Multinomial => n * meta.nclasses,
            _ => n,
        };
        if metalearner.meta.nfeatures != width
            || metalearner.meta.category != meta.category
            || metalearner.meta.nclasses != meta.nclasses
        {
            return Err(MojoError::Format(format!(
                "StackedEnsemble: the metalearner takes {} inputs, the base models give {width}",
                metalearner.meta.nfeatures
            )));
        }
        Ok(Ensemble {
            members,
            metalearner: Box::new(metalearner),
            logit,
        })
    }

    pub fn score0(&self, meta: &Meta, row: &[f64], preds: &mut [f64]) {
        let per_model = if meta.category == Category::Multinomial {
            meta.nclasses
        } else {
            1
        };
        let mut base = vec![0.0; self.members.len() * per_model];
        let mut sub_row = Vec::new();
        let mut sub_preds = vec![0.0; preds.len()];
        for (i, member) in self.members.iter().enumerate() {
            let Some(member) = member else { continue };
            sub_row.clear();
            sub_row.extend(member.mapping.iter().map(|&j| row[j]));
            member.model.score0(&sub_row, &mut sub_preds);
            match meta.category {
                Category::Multinomial => {
                    base[i * per_model..(i + 1) * per_model]
                        .copy_from_slice(&sub_preds[1..=per_model]);
                }
                Category::Binomial => base[i] = sub_preds[2],
                Category::Regression => base[i] = sub_preds[0],
            }
        }
        if self.logit && meta.category != Category::Regression {
            for p in &mut base {
                let q = p.clamp(1e-9, 1.0 - 1e-9);
                let x = q / (1.0 - q);
                *p = if x == 0.0 { -19.0 } else { x.ln().max(-19.0) };
            }
        }
        self.metalearner.score0(&base, preds);
    }
}

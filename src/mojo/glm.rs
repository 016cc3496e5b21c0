//! GLM (genmodel's `GlmMojoModel` and `GlmMultinomialMojoModel`).
//!
//! Coefficients are stored de-standardized, so scoring is `eta = Σ β·x + intercept` over the
//! one-hot categoricals (columns come categoricals first) and the numerics, then the inverse link.
//! With `mean_imputation`, a missing categorical takes its mode and a missing numeric its mean.
//! A multinomial model has one block of coefficients per class and a softmax whose maximum is
//! clamped at ≥ 0; its label is the first strict maximum (no random tie-break).

use super::ini::Ini;
use super::model::{one_hot_layout_ok, Meta, Refuse};
use super::{Category, MojoError};

#[derive(Debug, Clone, Copy)]
enum Link {
    Identity,
    Logit,
    Log,
    Inverse,
    Tweedie(f64),
}

#[derive(Debug)]
pub(crate) struct Glm {
    use_all_levels: bool,
    cats: usize,
    cat_offsets: Vec<usize>,
    nums: usize,
    mean_imputation: bool,
    cat_modes: Vec<f64>,
    num_means: Vec<f64>,
    beta: Vec<f64>,
    /// Coefficients per class (the whole β for one-output models).
    p: usize,
    link: Link,
    binomial: bool,
}

impl Glm {
    pub fn load(ini: &Ini, meta: &Meta, refuse: Refuse) -> Result<Glm, MojoError> {
        let family = ini.str("family")?;
        let multinomial = meta.category == Category::Multinomial;
        if family == "ordinal" {
            return Err(refuse("ordinal GLM"));
        }
        let link = if multinomial {
            Link::Identity
        } else {
            match ini.str("link")? {
                "identity" => Link::Identity,
                "logit" => Link::Logit,
                "log" => Link::Log,
                "inverse" => Link::Inverse,
                "tweedie" => Link::Tweedie(ini.opt_f64("tweedie_link_power")?.unwrap_or(0.0)),
                other => return Err(refuse(&format!("GLM link `{other}`"))),
            }
        };
        let cats = ini.usize("cats")?;
        let nums = ini.usize("nums")?;
        let cat_offsets = ini.usizes("cat_offsets")?;
        let mean_imputation = ini.bool_or("mean_imputation", false)?;
        let beta = ini.f64s("beta")?;
        let p = if multinomial {
            beta.len() / meta.nclasses.max(1)
        } else {
            beta.len()
        };
        let bad = |what: &str| MojoError::Format(format!("GLM: {what}"));
        // Every count comes from the file: checked arithmetic, so a lie is an error.
        if !one_hot_layout_ok(cats, nums, &cat_offsets, meta.nfeatures) {
            return Err(bad(
                "`cat_offsets`, `cats` and `nums` disagree with the columns",
            ));
        }
        if multinomial && p.checked_mul(meta.nclasses) != Some(beta.len()) {
            return Err(bad("β is not one block per class"));
        }
        // β holds one coefficient per one-hot level and numeric, then the intercept.
        if cat_offsets[cats].checked_add(nums + 1) != Some(p) {
            return Err(bad(
                "β's length is not the one-hot width plus the intercept",
            ));
        }
        let (cat_modes, num_means) = if mean_imputation {
            let modes: Vec<f64> = ini
                .usizes("cat_modes")?
                .into_iter()
                .map(|m| m as f64)
                .collect();
            let means = ini.f64s("num_means")?;
            if modes.len() != cats || means.len() != nums {
                return Err(bad("`cat_modes`/`num_means` lengths"));
            }
            (modes, means)
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Glm {
            use_all_levels: ini.bool_or("use_all_factor_levels", false)?,
            cats,
            cat_offsets,
            nums,
            mean_imputation,
            cat_modes,
            num_means,
            beta,
            p,
            link,
            binomial: matches!(family, "binomial" | "fractionalbinomial" | "quasibinomial"),
        })
    }

    fn value(&self, row: &[f64], i: usize) -> f64 {
        let x = row[i];
        if x.is_nan() && self.mean_imputation {
            if i < self.cats {
                self.cat_modes[i]
            } else {
                self.num_means[i - self.cats]
            }
        } else {
            x
        }
    }

    /// Adds the categorical coefficients of class block `base` to `eta`. A level that is not
    /// an integer (NaN without mean imputation) makes genmodel throw; here it adds nothing.
    fn categorical_terms(&self, row: &[f64], base: usize, mut eta: f64) -> f64 {
        for i in 0..self.cats {
            if let Some(term) = self.categorical_term(i, self.value(row, i), base) {
                eta += term;
            }
        }
        eta
    }

    /// The coefficient categorical column `i` adds at level `x` in class block `base`: none for
    /// the reference level (without `use_all_factor_levels`), a level outside the column's
    /// one-hot range, or a value that is not a level.
    fn categorical_term(&self, i: usize, x: f64, base: usize) -> Option<f64> {
        if x.is_nan() || x.fract() != 0.0 {
            return None;
        }
        let level = if self.use_all_levels {
            x as i64
        } else if x != 0.0 {
            x as i64 - 1
        } else {
            return None;
        };
        // `x` is any double (a level index, or whatever a numeric column holds).
        let idx = level.checked_add(self.cat_offsets[i] as i64)?;
        (idx >= 0 && (idx as usize) < self.cat_offsets[i + 1])
            .then(|| self.beta[idx as usize + base])
    }

    /// Why this GLM cannot be explained, if it cannot: its contributions are measured from the
    /// training means and modes, which a MOJO keeps only with mean imputation.
    pub(crate) fn unexplainable(&self) -> Option<&'static str> {
        (!self.mean_imputation).then_some(
            "its MOJO keeps no column means (`missing_values_handling` was not MeanImputation)",
        )
    }

    /// How many classes are explained: one per class for multinomial, else one.
    pub(crate) fn explained_sets(&self, meta: &Meta) -> usize {
        match meta.category {
            Category::Multinomial => meta.nclasses,
            _ => 1,
        }
    }

    /// Each explained class's contributions for `row`: per column, its term of the linear
    /// predictor `eta` minus the term at the training reference (a numeric's mean, a
    /// categorical's mode level), then the bias (the intercept plus the reference's terms), so
    /// that they add up to `eta` (the raw score, before the link or the softmax). A missing
    /// value is imputed as scoring does, so it contributes 0. Exact for a linear model.
    pub(crate) fn contributions(&self, meta: &Meta, row: &[f64]) -> Option<Vec<Vec<f64>>> {
        if self.unexplainable().is_some() {
            return None;
        }
        let noff = self.cat_offsets[self.cats];
        let sets = (0..self.explained_sets(meta))
            .map(|c| {
                let base = c * self.p;
                let mut phi = Vec::with_capacity(meta.nfeatures + 1);
                let mut bias = self.beta[base + self.p - 1];
                for i in 0..self.cats {
                    let at = |x| self.categorical_term(i, x, base).unwrap_or(0.0);
                    let reference = at(self.cat_modes[i]);
                    phi.push(at(self.value(row, i)) - reference);
                    bias += reference;
                }
                for j in 0..self.nums {
                    let beta = self.beta[base + noff + j];
                    let mean = self.num_means[j];
                    phi.push(beta * (self.value(row, self.cats + j) - mean));
                    bias += beta * mean;
                }
                phi.push(bias);
                phi
            })
            .collect();
        Some(sets)
    }

    pub fn score0(&self, meta: &Meta, row: &[f64], preds: &mut [f64]) {
        let noff = self.cat_offsets[self.cats];
        if meta.category == Category::Multinomial {
            let p = self.p;
            for c in 0..meta.nclasses {
                let base = c * p;
                let mut eta = self.categorical_terms(row, base, 0.0);
                for i in 0..self.nums {
                    eta += self.beta[noff + i + base] * self.value(row, i + self.cats);
                }
                eta += self.beta[p - 1 + base];
                preds[c + 1] = eta;
            }
            let max = preds[1..]
                .iter()
                .fold(0.0f64, |m, &x| if x > m { x } else { m });
            let mut sum = 0.0;
            for x in &mut preds[1..] {
                *x = (*x - max).exp();
                sum += *x;
            }
            let inv = 1.0 / sum;
            let mut max_p = 0.0;
            preds[0] = 0.0;
            for c in 1..preds.len() {
                preds[c] *= inv;
                if preds[c] > max_p {
                    max_p = preds[c];
                    preds[0] = (c - 1) as f64;
                }
            }
            return;
        }
        let mut eta = self.categorical_terms(row, 0, 0.0);
        // genmodel walks i from `cats` to `beta.len() - 1 - (noff - cats)`, i.e. the numerics.
        let noff_shift = noff - self.cats;
        for i in self.cats..self.beta.len() - 1 - noff_shift {
            eta += self.beta[noff_shift + i] * self.value(row, i);
        }
        eta += self.beta[self.beta.len() - 1];
        let mu = match self.link {
            Link::Identity => eta,
            Link::Logit => 1.0 / ((-eta).exp() + 1.0),
            Link::Log => eta.exp(),
            Link::Inverse => {
                1.0 / if eta < 0.0 {
                    eta.min(-1e-5)
                } else {
                    eta.max(1e-5)
                }
            }
            Link::Tweedie(power) => {
                if power == 0.0 {
                    eta.exp().max(2e-16)
                } else {
                    eta.powf(1.0 / power)
                }
            }
        };
        if self.binomial {
            preds[0] = if mu >= meta.default_threshold {
                1.0
            } else {
                0.0
            };
            preds[1] = 1.0 - mu;
            preds[2] = mu;
        } else {
            preds[0] = mu;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mojo::tests::encoded_fixture;
    use crate::mojo::{model::Scorer, Prediction};

    /// The GLM's linear predictors read back from its *scored* prediction (an independent
    /// path from `contributions`): `eta` through the link's inverse for one output; for
    /// classes, each class's log-probability relative to the first (`eta_c − eta_0` for
    /// multinomial; `eta` itself for binomial), which is all a softmax keeps.
    fn etas(glm: &Glm, p: &Prediction) -> Vec<f64> {
        match p {
            Prediction::Value(mu) => vec![match glm.link {
                Link::Log => mu.ln(),
                _ => *mu,
            }],
            Prediction::Class { probabilities, .. } => probabilities[1..]
                .iter()
                .map(|pc| pc.ln() - probabilities[0].ln())
                .collect(),
        }
    }

    /// Shapley values of `v(S)` = the scored linear predictors with the columns outside `S` at
    /// the training reference (mean, mode level), by every subset: the definition, computed
    /// without `contributions`.
    #[test]
    fn glm_contributions_are_the_shapley_values_of_the_scored_model() {
        let mut worst = 0f64;
        for name in ["glm_bin", "glm_reg", "glm_poisson", "glm_syn", "glm_multi"] {
            let (mojo, rows) = encoded_fixture(name);
            let Scorer::Glm(glm) = &mojo.model.scorer else {
                panic!("{name} is not a GLM")
            };
            let reference: Vec<f64> = glm
                .cat_modes
                .iter()
                .chain(&glm.num_means)
                .copied()
                .collect();
            let n = reference.len();
            assert!(n <= 10, "{name}: {n} columns");
            let weight = |size: usize| {
                let fact = |k: usize| (1..=k).map(|i| i as f64).product::<f64>();
                fact(size) * fact(n - size - 1) / fact(n)
            };
            for row in rows.iter().take(60) {
                let value = |set: usize| {
                    let x: Vec<f64> = (0..n)
                        .map(|j| {
                            if set >> j & 1 == 1 {
                                row[j]
                            } else {
                                reference[j]
                            }
                        })
                        .collect();
                    etas(glm, &mojo.score_encoded(&x))
                };
                let values: Vec<Vec<f64>> = (0..1usize << n).map(value).collect();
                let mut out = Vec::new();
                mojo.contributions(row, &mut out);
                let sets = out.len() / (n + 1);
                for j in 0..n {
                    let mut phi = vec![0.0; values[0].len()];
                    for set in (0..1usize << n).filter(|s| s >> j & 1 == 0) {
                        let w = weight(set.count_ones() as usize);
                        for (k, p) in phi.iter_mut().enumerate() {
                            *p += w * (values[set | 1 << j][k] - values[set][k]);
                        }
                    }
                    for (k, p) in phi.iter().enumerate() {
                        // Binomial and regression: the one set; multinomial: class k+1
                        // relative to class 0.
                        let ours = if sets == 1 {
                            out[j]
                        } else {
                            out[(k + 1) * (n + 1) + j] - out[j]
                        };
                        worst = worst.max((ours - p).abs());
                        assert!((ours - p).abs() < 1e-9, "{name} column {j}: {ours} vs {p}");
                    }
                }
            }
        }
        eprintln!("GLM contributions vs brute force: worst {worst:e}");
    }
}

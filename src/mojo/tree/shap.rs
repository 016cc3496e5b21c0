//! TreeSHAP for GBM, DRF and XRT ([`crate::mojo::shap`]) over the decoded forest.
//!
//! A feature is a model column (a categorical column is one feature, as H2O names them). The
//! cover of a split's branches is from the node's record in the tree's aux file (`weightL`,
//! `weightR`), divided, as genmodel divides it, by the weight the node's parent recorded for it
//! (`SharedTreeNode.getWeight`; a root's is its branches' sum). The two differ: on the 50-tree
//! benchmark GBM, enough to move contributions by ~2e-4 if one took `weightL + weightR`
//! instead. Genmodel computes in f32, mlbuild in f64.

use super::{Forest, TreeModel};
use crate::mojo::model::Meta;
use crate::mojo::shap::{tree_shap, Explained, Paths};

/// The forest, bound to one row (and its view).
struct Bound<'a> {
    forest: &'a Forest,
    view: &'a [f32],
    row: &'a [f64],
}

impl Explained for Bound<'_> {
    fn children(&self, node: u32) -> Option<[u32; 2]> {
        self.forest.children_of(node)
    }
    fn cover(&self, node: u32) -> [f64; 2] {
        self.forest.weights[node as usize]
    }
    fn weight(&self, node: u32) -> f64 {
        self.forest.weight[node as usize]
    }
    fn feature(&self, node: u32) -> usize {
        self.forest.column_of(node)
    }
    fn goes_right(&self, node: u32) -> bool {
        self.forest.goes_right(node, self.view, self.row)
    }
    fn leaf(&self, node: u32) -> f64 {
        f64::from(self.forest.leaf_value(node))
    }
}

impl TreeModel {
    /// Whether every tree has its node weights (the aux files of MOJO 1.10 and later).
    pub(crate) fn explainable(&self) -> bool {
        self.forest.weights.len() == self.forest.nodes.len()
    }

    /// The raw score of each class that has trees (one for regression and binomial models):
    /// what [`TreeModel::contributions`] add up to. GBM: the trees' sum plus `init_f` (the
    /// margin before the link; multinomial classes have no `init_f`). DRF and XRT: the trees'
    /// sum over the number of trees, the averaged probability; for binomial (one tree per
    /// group, voting for class 0) that of class 1, `1 - sum / n_trees`.
    #[cfg(test)]
    pub(crate) fn raw_scores(&self, meta: &Meta, row: &[f64]) -> Vec<f64> {
        let mut view = vec![0f32; self.forest.view.len()];
        let mut sums = vec![0.0; self.classes.len()];
        self.sum_trees(row, &mut view, &mut sums);
        let (offset, scale) = self.raw_form(meta);
        sums.iter().map(|s| s * scale + offset).collect()
    }

    /// The raw score's offset and scale over the trees' sum.
    fn raw_form(&self, meta: &Meta) -> (f64, f64) {
        match self.kind {
            super::Kind::Gbm { family, init_f, .. } => match family {
                super::Family::Multinomial => (0.0, 1.0),
                _ => (init_f, 1.0),
            },
            super::Kind::Drf {
                binomial_double_trees,
            } => {
                let per_tree = 1.0 / self.groups as f64;
                let votes_for_class_0 = meta.category != crate::mojo::Category::Regression
                    && meta.nclasses == 2
                    && !binomial_double_trees;
                match votes_for_class_0 {
                    true => (1.0, -per_tree),
                    false => (0.0, per_tree),
                }
            }
        }
    }

    /// How many sets of contributions a row gets: one per class with trees (one for a
    /// regression or binomial model, whose raw score is the margin or probability of class 1).
    pub(crate) fn explained_sets(&self) -> usize {
        self.classes.len()
    }

    /// TreeSHAP contributions of `row`, per class that has trees: one value per model column,
    /// then the bias, adding up to [`TreeModel::raw_scores`]. `None` when a tree lacks its node
    /// weights ([`TreeModel::explainable`]).
    pub(crate) fn contributions(&self, meta: &Meta, row: &[f64]) -> Option<Vec<Vec<f64>>> {
        if !self.explainable() {
            return None;
        }
        let forest = &self.forest;
        let mut view = vec![0f32; forest.view.len()];
        forest.view.fill(row, &mut view);
        let (offset, scale) = self.raw_form(meta);
        let out = self
            .classes
            .iter()
            .map(|blocks| {
                let mut phi = vec![0.0; meta.nfeatures + 1];
                phi[meta.nfeatures] = offset;
                let bound = Bound {
                    forest,
                    view: &view,
                    row,
                };
                let mut paths = Paths::default();
                for block in blocks {
                    for &root in &block.roots {
                        tree_shap(
                            &bound,
                            root,
                            block.depth as usize,
                            &mut phi,
                            scale,
                            &mut paths,
                        );
                    }
                }
                phi
            })
            .collect();
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mojo::model::Scorer;
    use crate::mojo::Mojo;

    /// The value of the feature set `set` (a bit mask) for `row`: the tree's output with the
    /// features outside the set averaged over by cover — the value function TreeSHAP's Shapley
    /// values are of, computed here without its path bookkeeping.
    fn value(forest: &Forest, node: u32, view: &[f32], row: &[f64], set: u64) -> f64 {
        match forest.children_of(node) {
            None => forest.leaf_value(node) as f64,
            Some([left, right]) => {
                let col = forest.column_of(node);
                if set & (1 << col) != 0 {
                    let next = if forest.goes_right(node, view, row) {
                        right
                    } else {
                        left
                    };
                    return value(forest, next, view, row, set);
                }
                let [wl, wr] = forest.weights[node as usize];
                (wl * value(forest, left, view, row, set)
                    + wr * value(forest, right, view, row, set))
                    / forest.weight[node as usize]
            }
        }
    }

    /// Shapley values by their definition: every subset of the other features, weighted by
    /// |S|! (M - |S| - 1)! / M!.
    fn brute_force(model: &TreeModel, meta: &Meta, row: &[f64]) -> Vec<Vec<f64>> {
        let m = meta.nfeatures;
        assert!(m <= 12, "{m} features: too many subsets");
        let forest = &model.forest;
        let mut view = vec![0f32; forest.view.len()];
        forest.view.fill(row, &mut view);
        let (offset, scale) = model.raw_form(meta);
        let factorial = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
        model
            .classes
            .iter()
            .map(|blocks| {
                let roots: Vec<u32> = blocks.iter().flat_map(|b| b.roots.clone()).collect();
                let v = |set: u64| -> f64 {
                    roots
                        .iter()
                        .map(|&r| value(forest, r, &view, row, set))
                        .sum::<f64>()
                        * scale
                };
                let mut phi: Vec<f64> = (0..m)
                    .map(|i| {
                        (0..(1u64 << m))
                            .filter(|set| set & (1 << i) == 0)
                            .map(|set| {
                                let s = set.count_ones() as usize;
                                let w = factorial(s) * factorial(m - s - 1) / factorial(m);
                                w * (v(set | 1 << i) - v(set))
                            })
                            .sum()
                    })
                    .collect();
                phi.push(v(0) + offset);
                phi
            })
            .collect()
    }

    fn fixture(name: &str) -> (Mojo, Vec<Vec<f64>>) {
        crate::mojo::tests::encoded_fixture(name)
    }

    fn tree_model(mojo: &Mojo) -> (&TreeModel, &Meta) {
        match &mojo.model.scorer {
            Scorer::Tree(t) => (t, &mojo.model.meta),
            _ => panic!("not a tree model"),
        }
    }

    #[test]
    fn contributions_add_up_to_the_raw_score_on_every_tree_fixture() {
        let names = [
            "gbm_bin",
            "gbm_reg",
            "gbm_multi",
            "gbm_poisson",
            "gbm_syn",
            "gbm_bin_balanced",
            "drf_bin",
            "drf_bin_double",
            "drf_reg",
            "drf_multi",
            "drf_syn",
            "xrt_bin",
            "xrt_reg",
            "xrt_multi",
        ];
        for name in names {
            let (mojo, rows) = fixture(name);
            let (model, meta) = tree_model(&mojo);
            assert!(model.explainable(), "{name}");
            let mut worst = 0f64;
            for row in rows {
                let phi = model.contributions(meta, &row).unwrap();
                let raw = model.raw_scores(meta, &row);
                assert_eq!(phi.len(), raw.len(), "{name}");
                for (p, r) in phi.iter().zip(&raw) {
                    assert!(
                        p[..meta.nfeatures].iter().any(|c| *c != 0.0),
                        "{name}: {p:?}"
                    );
                    let sum: f64 = p.iter().sum();
                    worst = worst.max((sum - r).abs());
                    assert!((sum - r).abs() <= 1e-9, "{name}: {sum} vs raw {r}");
                }
            }
            eprintln!("{name}: worst |sum - raw| {worst:e}");
        }
    }

    #[test]
    fn contributions_are_the_shapley_values_of_the_cover_weighted_value() {
        for name in ["gbm_bin", "gbm_multi", "drf_bin", "drf_reg", "xrt_multi"] {
            let (mojo, rows) = fixture(name);
            let (model, meta) = tree_model(&mojo);
            let mut worst = 0f64;
            for row in rows.iter().take(8) {
                let fast = model.contributions(meta, row).unwrap();
                let slow = brute_force(model, meta, row);
                for (f, s) in fast.iter().zip(&slow) {
                    for (a, b) in f.iter().zip(s) {
                        worst = worst.max((a - b).abs());
                        assert!((a - b).abs() <= 1e-9, "{name}: {f:?}\n vs {s:?}");
                    }
                }
            }
            eprintln!("{name}: worst |TreeSHAP - brute force| {worst:e}");
        }
    }

    /// Genmodel's `predictContributions` (f32) on the fixtures it answers for
    /// (`scripts/mojo_contributions.sh`): ours agree within 1e-5 relative or 1e-6 absolute,
    /// column for column, under the same names.
    #[test]
    fn contributions_agree_with_genmodels() {
        for name in [
            "gbm_bin",
            "gbm_reg",
            "gbm_syn",
            "gbm_bin_balanced",
            "gbm_poisson",
        ] {
            let (mojo, rows) = fixture(name);
            let (model, meta) = tree_model(&mojo);
            crate::mojo::tests::agree_with_genmodels_contributions(name, &mojo, &rows, |row| {
                model.contributions(meta, row).unwrap().remove(0)
            });
        }
    }
}

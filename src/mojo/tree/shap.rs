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
use crate::mojo::shap::{prepare, Explained, Limits, Prepared, Scratch, LIMITS};

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
    /// weights ([`TreeModel::explainable`]). The trees are prepared on the first call.
    pub(crate) fn contributions(&self, meta: &Meta, row: &[f64]) -> Option<Vec<Vec<f64>>> {
        if !self.explainable() {
            return None;
        }
        let explainer = self.explainer.get_or_init(|| self.prepare(LIMITS));
        Some(self.explain(explainer, meta, row))
    }

    /// Prepares every tree, class by class in tree order, within `limits`.
    fn prepare(&self, limits: Limits) -> Explainer {
        let forest = &self.forest;
        // Nothing the preparation reads depends on the row.
        let bound = Bound {
            forest,
            view: &[],
            row: &[],
        };
        let mut budget = limits.budget;
        let classes = self
            .classes
            .iter()
            .map(|blocks| {
                blocks
                    .iter()
                    .flat_map(|block| block.roots.iter().map(|&root| (root, block.depth)))
                    .map(|(root, depth)| prepare(&bound, root, depth as usize, limits, &mut budget))
                    .collect()
            })
            .collect();
        Explainer { classes }
    }

    /// [`TreeModel::contributions`] with the trees prepared as `explainer`.
    fn explain(&self, explainer: &Explainer, meta: &Meta, row: &[f64]) -> Vec<Vec<f64>> {
        let forest = &self.forest;
        let mut view = vec![0f32; forest.view.len()];
        forest.view.fill(row, &mut view);
        let (offset, scale) = self.raw_form(meta);
        let bound = Bound {
            forest,
            view: &view,
            row,
        };
        let mut scratch = Scratch::default();
        explainer
            .classes
            .iter()
            .map(|trees| {
                let mut phi = vec![0.0; meta.nfeatures + 1];
                phi[meta.nfeatures] = offset;
                for tree in trees {
                    tree.add(&bound, &mut phi, scale, &mut scratch);
                }
                phi
            })
            .collect()
    }
}

/// A model's trees prepared for TreeSHAP ([`crate::mojo::shap::prepare`]), per class in tree
/// order.
#[derive(Debug)]
pub(crate) struct Explainer {
    classes: Vec<Vec<Prepared>>,
}

impl Explainer {
    /// How many trees have a table, how many walk, and the tables' bytes.
    #[cfg(test)]
    fn census(&self) -> (usize, usize, usize) {
        use crate::mojo::shap::Method;
        let mut census = (0, 0, 0);
        for tree in self.classes.iter().flatten() {
            match &tree.method {
                Method::Table(table) => {
                    census.0 += 1;
                    census.2 += table.bytes();
                }
                Method::Walk { .. } => census.1 += 1,
            }
        }
        census
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
        for name in TREE_FIXTURES {
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
        for name in [
            "gbm_bin",
            "gbm_multi",
            "drf_bin",
            "drf_reg",
            "xrt_reg",
            "xrt_multi",
        ] {
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

    const TREE_FIXTURES: [&str; 14] = [
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

    /// The largest difference between the contributions of two preparations over `rows`, relative
    /// to the larger magnitude when that is above 1 (regression contributions are in the units
    /// of the response).
    fn largest_difference(
        model: &TreeModel,
        meta: &Meta,
        rows: &[Vec<f64>],
        a: &Explainer,
        b: &Explainer,
    ) -> f64 {
        let mut worst = 0f64;
        for row in rows {
            let (x, y) = (model.explain(a, meta, row), model.explain(b, meta, row));
            for (x, y) in x.iter().flatten().zip(y.iter().flatten()) {
                worst = worst.max((x - y).abs() / x.abs().max(y.abs()).max(1.0));
            }
        }
        worst
    }

    /// Every tree tabled (no limit) against every tree walked (no table fits a limit of 0). The
    /// walk's divisions (unwinding a feature) lose the most: 1e-12 relative on `xrt_reg`, whose
    /// tables are within 2e-14 of the brute force.
    #[test]
    fn tables_agree_with_the_walk_on_every_tree_fixture() {
        let tabled = Limits {
            unique: 24,
            budget: usize::MAX,
        };
        let walked = Limits {
            unique: 0,
            budget: 0,
        };
        for name in TREE_FIXTURES {
            let (mojo, rows) = fixture(name);
            let (model, meta) = tree_model(&mojo);
            let (tables, walks) = (model.prepare(tabled), model.prepare(walked));
            let (t, w, bytes) = tables.census();
            // DRF trees may have paths of more than 24 features; all GBM trees fit.
            assert!(t > 0, "{name}: {t} tabled, {w} walk");
            assert!(w == 0 || !name.starts_with("gbm"), "{name}: {w} walk");
            // Only a tree that is a single leaf has a table of no features.
            let (t, w, _) = walks.census();
            assert!(w > 0, "{name}: {t} tabled, {w} walk");
            let worst = largest_difference(model, meta, &rows, &tables, &walks);
            eprintln!("{name}: {bytes} bytes of tables, worst |table - walk| {worst:e}");
            assert!(worst <= 1e-11, "{name}: {worst:e}");
        }
    }

    /// Trees whose paths have more distinct features than the limit, or whose tables would
    /// exceed the budget, walk; the rest keep their tables, and the contributions do not change.
    #[test]
    fn trees_beyond_the_limits_walk() {
        let (mojo, rows) = fixture("drf_bin");
        let (model, meta) = tree_model(&mojo);
        let all = model.prepare(LIMITS);
        let narrow = model.prepare(Limits {
            unique: 5,
            ..LIMITS
        });
        let (_, _, bytes) = all.census();
        let small = model.prepare(Limits {
            budget: bytes / 8 / 2,
            ..LIMITS
        });
        let (t_all, w_all, _) = all.census();
        for (what, explainer) in [("5 features", &narrow), ("half the budget", &small)] {
            let (t, w, _) = explainer.census();
            assert!(
                t > 0 && t < t_all && w > w_all,
                "{what}: {t} tabled, {w} walk"
            );
            let worst = largest_difference(model, meta, &rows, &all, explainer);
            assert!(worst <= 1e-12, "{what}: {worst:e}");
        }
    }

    /// The bytes of the tables of a GBM of 5 levels (as the benchmark's).
    #[test]
    fn a_gbm_tables_every_tree() {
        for name in ["gbm_bin", "gbm_multi"] {
            let (mojo, _) = fixture(name);
            let (model, _) = tree_model(&mojo);
            let (t, w, bytes) = model.prepare(LIMITS).census();
            eprintln!("{name}: {t} trees tabled in {bytes} bytes");
            assert!(w == 0 && t > 0, "{name}: {w} trees walk");
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

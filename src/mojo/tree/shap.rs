//! Path-dependent TreeSHAP (Lundberg, Erion & Lee, "Consistent individualized feature
//! attribution for tree ensembles", Algorithm 2) over the decoded forest, in f64.
//!
//! A feature is a model column (a categorical column is one feature, as H2O names them). The
//! value of a set of features S for a row is the tree's output averaged over the paths the row
//! cannot decide: at a split on a feature in S the row's branch is followed, at any other split
//! both branches are, weighted by their training cover. The cover of a node's two branches comes
//! from the node's own record in the tree's aux file (`weightL`, `weightR`), so at every split the
//! two weights add up to one: each row's contributions plus the bias (the tree's cover-weighted
//! mean leaf) equal the tree's output, up to f64 rounding.
//!
//! genmodel divides a child's weight by the weight the parent recorded for the node instead
//! (`SharedTreeNode.getWeight`), which differs from `weightL + weightR` in the last f32 bits; and
//! it computes in f32. Both differences are below its single-precision output.

use super::{Forest, TreeModel};
use crate::mojo::model::Meta;

/// One element of the path from the root to the node being visited: a feature the path split
/// on, the fraction of the cover that follows the path when the feature is unknown (`zero`),
/// whether the row follows it when it is known (`one`: 1 or 0), and the weight of the subsets
/// of that size (`weight`).
#[derive(Debug, Clone, Copy, Default)]
struct Element {
    feature: usize,
    zero: f64,
    one: f64,
    weight: f64,
}

/// The path of the root has no feature.
const NO_FEATURE: usize = usize::MAX;

/// Adds a feature to the path of length `depth` (the new element is at `depth`), updating the
/// weights of the subset sizes.
fn extend(path: &mut [Element], depth: usize, zero: f64, one: f64, feature: usize) {
    path[depth] = Element {
        feature,
        zero,
        one,
        weight: if depth == 0 { 1.0 } else { 0.0 },
    };
    let n = (depth + 1) as f64;
    for i in (0..depth).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f64 / n;
        path[i].weight = zero * path[i].weight * (depth - i) as f64 / n;
    }
}

/// Removes the element at `at` from the path of length `depth + 1` (undoing [`extend`]).
fn unwind(path: &mut [Element], depth: usize, at: usize) {
    let Element { one, zero, .. } = path[at];
    let n = (depth + 1) as f64;
    let mut next = path[depth].weight;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let kept = path[i].weight;
            path[i].weight = next * n / ((i + 1) as f64 * one);
            next = kept - path[i].weight * zero * (depth - i) as f64 / n;
        } else {
            path[i].weight = path[i].weight * n / (zero * (depth - i) as f64);
        }
    }
    for i in at..depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
}

/// The total weight of the path's subsets with the element at `at` removed, without removing it.
fn unwound_sum(path: &[Element], depth: usize, at: usize) -> f64 {
    let Element { one, zero, .. } = path[at];
    let n = (depth + 1) as f64;
    let mut next = path[depth].weight;
    let mut total = 0.0;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let w = next * n / ((i + 1) as f64 * one);
            total += w;
            next = path[i].weight - w * zero * (depth - i) as f64 / n;
        } else if zero != 0.0 {
            total += path[i].weight / zero * n / (depth - i) as f64;
        }
    }
    total
}

/// The walk of one tree for one row.
struct Walk<'a> {
    forest: &'a Forest,
    view: &'a [f32],
    row: &'a [f64],
    /// Contributions by feature, scaled by `scale` as they are added.
    phi: &'a mut [f64],
    scale: f64,
}

impl Walk<'_> {
    /// Visits `node`, whose path so far is `path[..=depth]` after extending it with the split
    /// that led here (`zero`, `one`, `feature`). `path` holds this level's copy at its start and
    /// room for the levels below after it.
    fn visit(&mut self, node: u32, path: &mut [Element], depth: usize, split: (f64, f64, usize)) {
        let (zero, one, feature) = split;
        extend(path, depth, zero, one, feature);
        let forest = self.forest;
        let Some([left, right]) = forest.children_of(node) else {
            let leaf = forest.leaf_value(node) as f64;
            for i in 1..=depth {
                let w = unwound_sum(path, depth, i);
                let e = path[i];
                self.phi[e.feature] += w * (e.one - e.zero) * leaf * self.scale;
            }
            return;
        };
        let col = forest.column_of(node);
        let [wl, wr] = forest.weights[node as usize];
        let total = wl + wr;
        let goes_right = forest.goes_right(node, self.view, self.row);
        let (hot, cold, hot_w, cold_w) = match goes_right {
            true => (right, left, wr, wl),
            false => (left, right, wl, wr),
        };
        // A feature split on again above: its element leaves the path and its fractions carry
        // on into this split's.
        let mut depth = depth;
        let (mut in_zero, mut in_one) = (1.0, 1.0);
        if let Some(at) = (1..=depth).find(|&i| path[i].feature == col) {
            in_zero = path[at].zero;
            in_one = path[at].one;
            unwind(path, depth, at);
            depth -= 1;
        }
        let (here, below) = path.split_at_mut(depth + 1);
        for (child, w, one) in [(hot, hot_w, in_one), (cold, cold_w, 0.0)] {
            below[..=depth].copy_from_slice(here);
            let zero = if total > 0.0 { w / total } else { 0.0 };
            self.visit(child, below, depth + 1, (zero * in_zero, one, col));
        }
    }
}

/// The cover-weighted mean of the leaves below `node` (a tree's expected output).
fn expected(forest: &Forest, node: u32) -> f64 {
    match forest.children_of(node) {
        None => forest.leaf_value(node) as f64,
        Some([left, right]) => {
            let [wl, wr] = forest.weights[node as usize];
            let total = wl + wr;
            if total > 0.0 {
                (wl * expected(forest, left) + wr * expected(forest, right)) / total
            } else {
                0.0
            }
        }
    }
}

/// Contributions of one tree for `row`, added to `phi` (one slot per feature, then the bias),
/// each scaled by `scale`.
fn tree_shap(
    forest: &Forest,
    root: u32,
    depth: u32,
    view: &[f32],
    row: &[f64],
    phi: &mut [f64],
    scale: f64,
) {
    let bias = phi.len() - 1;
    phi[bias] += expected(forest, root) * scale;
    // Level k's copy of the path has k + 1 elements (k = 0 … depth + 1).
    let levels = depth as usize + 2;
    let mut path = vec![Element::default(); levels * (levels + 1) / 2];
    let mut walk = Walk {
        forest,
        view,
        row,
        phi: &mut phi[..bias],
        scale,
    };
    walk.visit(root, &mut path, 0, (1.0, 1.0, NO_FEATURE));
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

    /// The classes whose raw scores are explained, in order: class 0 for a regression or
    /// binomial model (whose raw score is the margin or probability of class 1 for binomial),
    /// each class with trees otherwise.
    pub(crate) fn explained_classes(&self) -> Vec<usize> {
        (0..self.classes.len()).collect()
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
                for block in blocks {
                    for &root in &block.roots {
                        tree_shap(forest, root, block.depth, &view, row, &mut phi, scale);
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
                    / (wl + wr)
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

    /// A fixture MOJO and its input rows, encoded as the model reads them.
    fn fixture(name: &str) -> (Mojo, Vec<Vec<f64>>) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mojo");
        let bytes = std::fs::read(dir.join(format!("{name}.zip"))).unwrap();
        let mojo = Mojo::load(&bytes).unwrap();
        let data = if name.contains("multi") {
            "iris"
        } else if name.contains("syn") {
            "syn"
        } else {
            "prostate"
        };
        let text = std::fs::read_to_string(dir.join(format!("{data}.in.csv"))).unwrap();
        let mut lines = text.lines().filter(|l| !l.is_empty());
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let binding = mojo.bind(&header).unwrap();
        let rows = lines
            .map(|l| {
                let record: Vec<&str> = l.split(',').collect();
                let mut raw = Vec::new();
                binding.encode(&record, &mut raw).unwrap();
                raw
            })
            .collect();
        (mojo, rows)
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
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mojo");
            let text = std::fs::read_to_string(dir.join(format!("{name}.contrib.csv"))).unwrap();
            let mut lines = text.lines();
            let header: Vec<&str> = lines.next().unwrap().split(',').collect();
            assert_eq!(header, mojo.contribution_names().unwrap(), "{name}");
            let (mut worst_abs, mut worst_rel) = (0f64, 0f64);
            let mut compared = 0;
            for (row, line) in rows.iter().zip(lines) {
                let theirs: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
                let ours = &model.contributions(meta, row).unwrap()[0];
                for (a, b) in ours.iter().zip(&theirs) {
                    let abs = (a - b).abs();
                    let rel = abs / b.abs().max(f64::MIN_POSITIVE);
                    assert!(
                        abs <= 1e-6 || rel <= 1e-5,
                        "{name}: {ours:?}\n vs genmodel {theirs:?}"
                    );
                    worst_abs = worst_abs.max(abs);
                    if abs > 1e-6 {
                        worst_rel = worst_rel.max(rel);
                    }
                    compared += 1;
                }
            }
            assert_eq!(compared, rows.len() * header.len(), "{name}");
            eprintln!("{name}: {compared} values, worst |ours - genmodel| {worst_abs:e}, worst relative beyond 1e-6 {worst_rel:e}");
        }
    }

    #[test]
    fn a_path_that_splits_twice_on_a_feature_unwinds_it() {
        let mut path = vec![Element::default(); 4];
        extend(&mut path, 0, 1.0, 1.0, NO_FEATURE);
        extend(&mut path, 1, 0.3, 1.0, 2);
        extend(&mut path, 2, 0.6, 0.0, 5);
        let before: Vec<f64> = path.iter().map(|e| e.weight).collect();
        extend(&mut path, 3, 0.5, 1.0, 7);
        unwind(&mut path, 3, 3);
        for (e, w) in path.iter().zip(&before).take(3) {
            assert!((e.weight - w).abs() < 1e-12, "{:?} vs {before:?}", path);
        }
    }
}

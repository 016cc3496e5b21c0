//! Path-dependent TreeSHAP (Lundberg, Erion & Lee, "Consistent individualized feature
//! attribution for tree ensembles", Algorithm 2), in f64, over any binary tree that can say, for
//! one row, where the row goes at each split and how much training cover each branch had
//! ([`Explained`]): H2O's GBM/DRF forests (`tree/shap.rs`) and XGBoost's trees.
//!
//! The value of a set of features S for a row is the tree's output averaged over the paths the
//! row cannot decide: at a split on a feature in S the row's branch is followed, at any other
//! split both are, weighted by their cover: each branch's cover over the node's (its weight as
//! recorded, which genmodel and XGBoost take and which need not be the branches' sum). Each row's
//! contributions plus the bias (the tree's cover-weighted mean leaf, with the same fractions)
//! equal the tree's output, up to f64 rounding.

/// A tree as TreeSHAP reads it, bound to one row.
pub(crate) trait Explained {
    /// A split node's children (left, right); `None` for a leaf.
    fn children(&self, node: u32) -> Option<[u32; 2]>;
    /// The training cover of a split node's left and right branch.
    fn cover(&self, node: u32) -> [f64; 2];
    /// A node's own cover, the denominator of its branches' fractions. Genmodel and XGBoost
    /// take the weight recorded for the node (by its parent, or its own statistics), which
    /// need not be its branches' sum: whatever it is, the contributions are the Shapley values
    /// of the value function with these fractions, and add up to the output minus the bias
    /// computed with them.
    fn weight(&self, node: u32) -> f64;
    /// The feature a split node tests.
    fn feature(&self, node: u32) -> usize;
    /// Whether the row goes right at a split node.
    fn goes_right(&self, node: u32) -> bool;
    /// A leaf's value.
    fn leaf(&self, node: u32) -> f64;
}

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

/// `1 / k`, from a table for the depths trees have: the walk's divisions by small integers
/// become multiplications (they were most of its time).
fn recip(k: usize) -> f64 {
    static TABLE: std::sync::LazyLock<Vec<f64>> =
        std::sync::LazyLock::new(|| (0..512).map(|k| 1.0 / k as f64).collect());
    match TABLE.get(k) {
        Some(r) => *r,
        None => 1.0 / k as f64,
    }
}

/// Adds a feature to the path of length `depth` (the new element is at `depth`), updating the
/// weights of the subset sizes.
fn extend(path: &mut [Element], depth: usize, zero: f64, one: f64, feature: usize) {
    path[depth] = Element {
        feature,
        zero,
        one,
        weight: if depth == 0 { 1.0 } else { 0.0 },
    };
    let inv_n = recip(depth + 1);
    for i in (0..depth).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f64 * inv_n;
        path[i].weight = zero * path[i].weight * (depth - i) as f64 * inv_n;
    }
}

/// Removes the element at `at` from the path of length `depth + 1` (undoing [`extend`]).
fn unwind(path: &mut [Element], depth: usize, at: usize) {
    let Element { one, zero, .. } = path[at];
    let n = (depth + 1) as f64;
    let inv_n = recip(depth + 1);
    let mut next = path[depth].weight;
    if one != 0.0 {
        let scale = n / one;
        for i in (0..depth).rev() {
            let kept = path[i].weight;
            path[i].weight = next * scale * recip(i + 1);
            next = kept - path[i].weight * zero * (depth - i) as f64 * inv_n;
        }
    } else {
        let scale = n / zero;
        for i in (0..depth).rev() {
            path[i].weight *= scale * recip(depth - i);
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
    let inv_n = recip(depth + 1);
    let mut next = path[depth].weight;
    let mut total = 0.0;
    if one != 0.0 {
        let scale = n / one;
        for i in (0..depth).rev() {
            let w = next * scale * recip(i + 1);
            total += w;
            next = path[i].weight - w * zero * (depth - i) as f64 * inv_n;
        }
    } else if zero != 0.0 {
        let scale = n / zero;
        for i in (0..depth).rev() {
            total += path[i].weight * scale * recip(depth - i);
        }
    }
    total
}

/// The walk of one tree for one row.
struct Walk<'a, T> {
    tree: &'a T,
    /// Contributions by feature, scaled by `scale` as they are added.
    phi: &'a mut [f64],
    scale: f64,
}

impl<T: Explained> Walk<'_, T> {
    /// Visits `node`, whose path so far is `path[..=depth]` after extending it with the split
    /// that led here (`zero`, `one`, `feature`). `path` holds this level's copy at its start and
    /// room for the levels below after it.
    fn visit(&mut self, node: u32, path: &mut [Element], depth: usize, split: (f64, f64, usize)) {
        let (zero, one, feature) = split;
        extend(path, depth, zero, one, feature);
        let tree = self.tree;
        let Some([left, right]) = tree.children(node) else {
            let leaf = tree.leaf(node);
            for i in 1..=depth {
                let w = unwound_sum(path, depth, i);
                let e = path[i];
                self.phi[e.feature] += w * (e.one - e.zero) * leaf * self.scale;
            }
            return;
        };
        let col = tree.feature(node);
        let [wl, wr] = tree.cover(node);
        let total = tree.weight(node);
        let goes_right = tree.goes_right(node);
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
            // A node without weight splits its share evenly (as genmodel does).
            let zero = if total != 0.0 { w / total } else { 0.5 };
            self.visit(child, below, depth + 1, (zero * in_zero, one, col));
        }
    }
}

/// The cover-weighted mean of the leaves below `node` (a tree's expected output).
fn expected<T: Explained>(tree: &T, node: u32) -> f64 {
    let total = tree.weight(node);
    if total == 0.0 {
        return 0.0;
    }
    match tree.children(node) {
        None => tree.leaf(node),
        Some([left, right]) => {
            let [wl, wr] = tree.cover(node);
            (wl * expected(tree, left) + wr * expected(tree, right)) / total
        }
    }
}

/// The room the paths of a walk take, reused from tree to tree.
#[derive(Debug, Default)]
pub(crate) struct Paths(Vec<Element>);

/// Contributions of one tree (rooted at `root`, at most `depth` splits deep) for its row,
/// added to `phi` (one slot per feature, then the bias), each scaled by `scale`.
pub(crate) fn tree_shap<T: Explained>(
    tree: &T,
    root: u32,
    depth: usize,
    phi: &mut [f64],
    scale: f64,
    paths: &mut Paths,
) {
    let bias = phi.len() - 1;
    phi[bias] += expected(tree, root) * scale;
    // Level k's copy of the path has k + 1 elements (k = 0 … depth + 1).
    let levels = depth + 2;
    let needed = levels * (levels + 1) / 2;
    if paths.0.len() < needed {
        paths.0.resize(needed, Element::default());
    }
    let mut walk = Walk {
        tree,
        phi: &mut phi[..bias],
        scale,
    };
    walk.visit(root, &mut paths.0, 0, (1.0, 1.0, NO_FEATURE));
}

#[cfg(test)]
mod tests {
    use super::*;

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

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
//!
//! A model's trees are [`prepare`]d once, on its first explanation: each tree's bias, and, when
//! the tree's paths have at most [`LIMITS`]`.unique` distinct features and its tables fit what
//! is left of the model's budget, a [`Table`] of each leaf's contributions by which of its
//! path's features the row follows (a row then costs one test per split and a few additions per
//! leaf). Other trees (deep DRF trees) take the recursive walk of Algorithm 2 ([`Walk`]) for
//! every row. Both compute the same Shapley values; the tables in closed form without the
//! walk's divisions, which on the fixtures puts them nearer the brute-force values (tests in
//! `tree/shap.rs` and `xgboost.rs` hold each against the other on every tree fixture).

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
struct Paths(Vec<Element>);

/// The recursive walk of one tree for its row: its contributions added to `phi` (one slot per
/// feature, no bias), each scaled by `scale`.
fn walk<T: Explained>(
    tree: &T,
    root: u32,
    depth: usize,
    phi: &mut [f64],
    scale: f64,
    paths: &mut Paths,
) {
    // Level k's copy of the path has k + 1 elements (k = 0 … depth + 1).
    let levels = depth + 2;
    let needed = levels * (levels + 1) / 2;
    if paths.0.len() < needed {
        paths.0.resize(needed, Element::default());
    }
    let mut walk = Walk { tree, phi, scale };
    walk.visit(root, &mut paths.0, 0, (1.0, 1.0, NO_FEATURE));
}

/// How large the path tables of [`prepare`] may grow before a tree is left to the walk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The most distinct features a root-to-leaf path may have: a leaf's table has
    /// `2^unique × unique` values.
    pub unique: usize,
    /// The most table values (f64) of all the trees prepared with these limits together.
    pub budget: usize,
}

/// 2^10 × 10 values (80 KiB) for a leaf at most, 32 MiB for a model: H2O's GBM defaults (depth 5)
/// and XGBoost's (6) fit many times over; DRF's depth-20 trees mostly walk. Filling the whole
/// budget with 10-feature leaves takes ~0.25 s, once (59 ns a value, release, on a synthetic
/// full tree of depth 10).
pub(crate) const LIMITS: Limits = Limits {
    unique: 10,
    budget: 4 << 20,
};

/// One split of a [`Table`]: the tree's node, the bit of its feature in the masks of the leaves
/// below it, and where its node and its children are in the masks of a row.
#[derive(Debug, Clone, Copy)]
struct TableSplit {
    node: u32,
    bit: u32,
    at: u32,
    children: [u32; 2],
}

/// One leaf of a [`Table`]: where its mask is, how many distinct features its path has (`width`),
/// and where its values and features start.
#[derive(Debug, Clone, Copy)]
struct TableLeaf {
    at: u32,
    width: u32,
    values: u32,
    features: u32,
}

/// A tree's contributions by leaf and by which features of its path a row follows.
///
/// The features of a leaf's path, duplicates merged, are numbered in the order the path meets
/// them; a merged feature's zero fraction is the product of the path's fractions for it, and the
/// row's one fraction is 1 exactly when the row follows the path at every split on it. The row's
/// ones form a bit mask; the contributions of the path's features to the leaf's term are a
/// function of the mask alone, tabled when the tree is prepared (`2^d × d` values for `d`
/// features). A row then costs one direction per split (which gives every leaf's mask, top
/// down: the child the row does not take clears the split's bit) and `d` additions per leaf.
/// This is the path formulation of GPUTreeShap and FastTreeSHAP v2.
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// In pre-order, so that a split's mask is known before its children's.
    splits: Vec<TableSplit>,
    leaves: Vec<TableLeaf>,
    values: Vec<f64>,
    features: Vec<u32>,
    /// How many nodes (splits and leaves) the tree has: the masks a row needs.
    nodes: usize,
}

/// How a prepared tree is explained.
#[derive(Debug)]
pub(crate) enum Method {
    Table(Table),
    /// The recursive walk ([`Walk`]), for trees whose tables would be too large.
    Walk {
        root: u32,
        depth: usize,
    },
}

/// A tree prepared once for explaining many rows: its bias and its [`Method`].
#[derive(Debug)]
pub(crate) struct Prepared {
    pub bias: f64,
    pub method: Method,
}

/// Why a tree has no table.
struct TooLarge;

/// Builds a [`Table`] by a walk over the tree, holding the path's distinct features.
struct Builder<'a, T> {
    tree: &'a T,
    limits: Limits,
    /// Table values the tree may still take.
    room: usize,
    table: Table,
    /// The path's distinct features with their zero fractions, in the order it meets them.
    path: Vec<(usize, f64)>,
}

impl<T: Explained> Builder<'_, T> {
    /// Adds `node` (and its subtree) in pre-order; returns its index among the tree's nodes.
    fn visit(&mut self, node: u32) -> Result<u32, TooLarge> {
        let at = self.table.nodes as u32;
        self.table.nodes += 1;
        let tree = self.tree;
        let Some(children) = tree.children(node) else {
            self.leaf(at, tree.leaf(node))?;
            return Ok(at);
        };
        let feature = tree.feature(node);
        let (slot, new) = match self.path.iter().position(|&(f, _)| f == feature) {
            Some(slot) => (slot, false),
            None if self.path.len() < self.limits.unique => {
                self.path.push((feature, 1.0));
                (self.path.len() - 1, true)
            }
            None => return Err(TooLarge),
        };
        let index = self.table.splits.len();
        self.table.splits.push(TableSplit {
            node,
            bit: 1 << slot,
            at,
            children: [0; 2],
        });
        let cover = tree.cover(node);
        let total = tree.weight(node);
        for side in 0..2 {
            let kept = self.path[slot].1;
            // The walk's fractions exactly: each split's, times those above on the feature.
            let zero = if total != 0.0 {
                cover[side] / total
            } else {
                0.5
            };
            self.path[slot].1 = zero * kept;
            self.table.splits[index].children[side] = self.visit(children[side])?;
            self.path[slot].1 = kept;
        }
        if new {
            self.path.pop();
        }
        Ok(at)
    }

    /// Tables the contributions of a leaf of value `value` under the current path.
    fn leaf(&mut self, at: u32, value: f64) -> Result<(), TooLarge> {
        let d = self.path.len();
        let size = d << d;
        // The offsets are u32.
        if size > self.room || self.table.values.len() + size > u32::MAX as usize {
            return Err(TooLarge);
        }
        self.room -= size;
        let table = &mut self.table;
        table.leaves.push(TableLeaf {
            at,
            width: d as u32,
            values: table.values.len() as u32,
            features: table.features.len() as u32,
        });
        table
            .features
            .extend(self.path.iter().map(|&(f, _)| f as u32));
        // The Shapley weight of a subset of k of the other d - 1 features: k! (d-1-k)! / d!.
        let weights: Vec<f64> = (0..d)
            .map(|k| {
                let choose = (0..k).fold(1.0, |c, i| c * (d - 1 - i) as f64 / (i + 1) as f64);
                1.0 / (d as f64 * choose)
            })
            .collect();
        let mut poly = Vec::with_capacity(d);
        for mask in 0..1usize << d {
            let one = |i: usize| ((mask >> i) & 1) as f64;
            for (j, &(_, zero_j)) in self.path.iter().enumerate() {
                // The coefficients of ∏_{i≠j} (zero_i + one_i t): by the number of known features.
                poly.clear();
                poly.push(1.0);
                for (i, &(_, zero)) in self.path.iter().enumerate() {
                    if i == j {
                        continue;
                    }
                    let o = one(i);
                    poly.push(0.0);
                    for k in (0..poly.len()).rev() {
                        let below = if k > 0 { poly[k - 1] } else { 0.0 };
                        poly[k] = zero * poly[k] + o * below;
                    }
                }
                let sum: f64 = poly.iter().zip(&weights).map(|(c, w)| c * w).sum();
                table.values.push(sum * (one(j) - zero_j) * value);
            }
        }
        Ok(())
    }
}

impl Table {
    /// The bytes the table holds.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        use std::mem::size_of;
        self.splits.len() * size_of::<TableSplit>()
            + self.leaves.len() * size_of::<TableLeaf>()
            + self.values.len() * size_of::<f64>()
            + self.features.len() * size_of::<u32>()
    }

    /// Adds the tree's contributions for its row to `phi` (one slot per feature), scaled by
    /// `scale`; `masks` is room reused from row to row.
    fn add<T: Explained>(&self, tree: &T, phi: &mut [f64], scale: f64, masks: &mut Vec<u32>) {
        if masks.len() < self.nodes {
            masks.resize(self.nodes, 0);
        }
        masks[0] = u32::MAX;
        for split in &self.splits {
            let mask = masks[split.at as usize];
            let right = usize::from(tree.goes_right(split.node));
            masks[split.children[right] as usize] = mask;
            masks[split.children[right ^ 1] as usize] = mask & !split.bit;
        }
        for leaf in &self.leaves {
            let d = leaf.width as usize;
            let mask = (masks[leaf.at as usize] & ((1u32 << d) - 1)) as usize;
            let values = &self.values[leaf.values as usize + mask * d..][..d];
            let features = &self.features[leaf.features as usize..][..d];
            for (&f, &v) in features.iter().zip(values) {
                phi[f as usize] += v * scale;
            }
        }
    }
}

/// Prepares the tree rooted at `root` (at most `depth` splits deep) for explaining rows: its bias,
/// and a [`Table`] when it fits `limits`, taking its values from `budget` (the values left of
/// [`Limits::budget`]); otherwise the walk. `tree` may be bound to any row: only what does not
/// depend on the row is read.
pub(crate) fn prepare<T: Explained>(
    tree: &T,
    root: u32,
    depth: usize,
    limits: Limits,
    budget: &mut usize,
) -> Prepared {
    let bias = expected(tree, root);
    let mut builder = Builder {
        tree,
        limits: Limits {
            // Masks are u32.
            unique: limits.unique.min(24),
            ..limits
        },
        room: *budget,
        table: Table::default(),
        path: Vec::new(),
    };
    let method = match builder.visit(root) {
        Ok(_) => {
            *budget = builder.room;
            Method::Table(builder.table)
        }
        Err(TooLarge) => Method::Walk { root, depth },
    };
    Prepared { bias, method }
}

/// Room a row's explanation reuses from tree to tree.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    paths: Paths,
    masks: Vec<u32>,
}

impl Prepared {
    /// Adds the tree's contributions for its row to `phi` (one slot per feature, then the bias),
    /// each scaled by `scale`.
    pub(crate) fn add<T: Explained>(
        &self,
        tree: &T,
        phi: &mut [f64],
        scale: f64,
        scratch: &mut Scratch,
    ) {
        let bias = phi.len() - 1;
        phi[bias] += self.bias * scale;
        match &self.method {
            Method::Table(table) => table.add(tree, &mut phi[..bias], scale, &mut scratch.masks),
            &Method::Walk { root, depth } => {
                walk(
                    tree,
                    root,
                    depth,
                    &mut phi[..bias],
                    scale,
                    &mut scratch.paths,
                );
            }
        }
    }
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

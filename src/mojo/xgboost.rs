//! XGBoost: the `boosterBytes` native booster (XGBoost's legacy binary model format), scored as
//! H2O's bundled pure-Java predictor does — never libxgboost.
//!
//! Layout read here (little-endian): `binf`; `LearnerModelParam` (136 bytes: base_score f32,
//! num_feature u32, num_class i32, contain_extra_attrs, contain_eval_metrics, major u32,
//! minor u32, 27 reserved ints); objective and booster names (u64 length + bytes);
//! `GBTreeModelParam` (160 bytes, num_trees first); per tree a
//! `TreeParam` (148 bytes, num_nodes at byte 4), 20-byte nodes (parent, left, right,
//! split index with default-left in bit 31, f32 split or leaf) and 16-byte stats; then one
//! class-group id per tree.
//!
//! Inputs are f32: categoricals one-hot with an extra NA level per factor (genmodel's
//! `setCats`), numerics cast to f32; with `sparse`, cold slots and numeric zeros are NaN
//! (missing). NaN follows the node's default direction, else left iff `value < split`. Leaves
//! are summed in f32 per class group, then the objective's transform (f32 too).

use super::bytes::Cursor;
use super::ini::Ini;
use super::model::{one_hot_layout_ok, Meta, Refuse};
use super::row::one_hot_index;
use super::{Archive, Category, MojoError};
use crate::mojo::shap::{prepare, Limits, Prepared, Scratch, LIMITS};

#[derive(Debug, Clone, Copy)]
struct Node {
    left: i32,
    right: i32,
    feature: u32,
    default_left: bool,
    /// The split threshold, or the leaf value when `left == -1`.
    value: f32,
}

#[derive(Debug)]
struct RegTree {
    nodes: Vec<Node>,
    /// Each node's cover (`sum_hess` in its stats): for explanations only.
    cover: Vec<f32>,
    /// The most splits on a path from the root (the room an explanation's paths take).
    depth: usize,
}

impl RegTree {
    #[inline]
    fn leaf(&self, x: &[f32]) -> f32 {
        let mut i = 0usize;
        loop {
            let n = &self.nodes[i];
            if n.left == -1 {
                return n.value;
            }
            let v = x.get(n.feature as usize).copied().unwrap_or(f32::NAN);
            let next = if v.is_nan() {
                if n.default_left {
                    n.left
                } else {
                    n.right
                }
            } else if v < n.value {
                n.left
            } else {
                n.right
            };
            i = next as usize;
        }
    }
}

/// The deepest tree explained (H2O caps its own trees' depth at 256): the walk and the tables'
/// preparation recurse once a level, so a deeper (hostile) tree is refused, not a stack overflow.
const MAX_EXPLAINED_DEPTH: usize = 256;

/// Why trees over `width` one-hot features cannot be explained, if they cannot: a split on a
/// feature past the width (scoring reads it as missing), a cover that is not a finite weight,
/// or a tree deeper than [`MAX_EXPLAINED_DEPTH`].
fn refusal(groups: &[Vec<RegTree>], width: usize) -> Option<&'static str> {
    for tree in groups.iter().flatten() {
        if tree.depth > MAX_EXPLAINED_DEPTH {
            return Some("a tree is deeper than 256 levels");
        }
        let splits_inside = tree
            .nodes
            .iter()
            .all(|n| n.left == -1 || (n.feature as usize) < width);
        if !splits_inside {
            return Some("a tree splits on a feature past the model's inputs");
        }
        if !tree.cover.iter().all(|c| c.is_finite() && *c >= 0.0) {
            return Some("a tree's node covers are not weights");
        }
    }
    None
}

/// The most splits on a path from node 0 of `nodes` (a checked tree, [`is_tree`]).
fn depth_of(nodes: &[Node]) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(0usize, 0usize)];
    while let Some((i, d)) = stack.pop() {
        let n = &nodes[i];
        if n.left == -1 {
            deepest = deepest.max(d);
        } else {
            stack.push((n.left as usize, d + 1));
            stack.push((n.right as usize, d + 1));
        }
    }
    deepest
}

/// A tree bound to one row's features, for TreeSHAP.
struct Bound<'a> {
    tree: &'a RegTree,
    x: &'a [f32],
}

impl crate::mojo::shap::Explained for Bound<'_> {
    fn children(&self, node: u32) -> Option<[u32; 2]> {
        let n = &self.tree.nodes[node as usize];
        (n.left != -1).then_some([n.left as u32, n.right as u32])
    }
    fn cover(&self, node: u32) -> [f64; 2] {
        let n = &self.tree.nodes[node as usize];
        let cover = |i: i32| f64::from(self.tree.cover[i as usize]);
        [cover(n.left), cover(n.right)]
    }
    fn weight(&self, node: u32) -> f64 {
        f64::from(self.tree.cover[node as usize])
    }
    fn feature(&self, node: u32) -> usize {
        self.tree.nodes[node as usize].feature as usize
    }
    fn goes_right(&self, node: u32) -> bool {
        let n = &self.tree.nodes[node as usize];
        let v = self.x.get(n.feature as usize).copied().unwrap_or(f32::NAN);
        if v.is_nan() {
            !n.default_left
        } else {
            v >= n.value
        }
    }
    fn leaf(&self, node: u32) -> f64 {
        f64::from(self.tree.nodes[node as usize].value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Objective {
    Logistic,
    Softprob,
    Identity,
    Exp,
}

#[derive(Debug)]
pub(crate) struct XGBoost {
    cats: usize,
    nums: usize,
    cat_offsets: Vec<usize>,
    use_all_levels: bool,
    sparse: bool,
    /// Trees per output group, in file order.
    groups: Vec<Vec<RegTree>>,
    /// The global bias, already in margin space.
    base_margin: f32,
    /// Booster ≤ 1.2 sums the leaves from 0 and adds the bias after; newer ones start from it.
    bias_first: bool,
    objective: Objective,
    /// Why the model cannot be explained, if it cannot ([`refusal`]), decided once at load.
    refusal: Option<&'static str>,
    /// The trees of each group prepared for TreeSHAP, on the first explanation.
    explainer: std::sync::OnceLock<Vec<Vec<Prepared>>>,
}

type Reader<'a> = Cursor<'a, MojoError>;

/// The widest one-hot feature vector read (a vector is allocated per scored row).
const MAX_FEATURES: usize = 1 << 24;

/// Checks that the nodes form a tree from node 0: every child index inside the tree and no
/// node reached twice (a cycle would make scoring loop forever).
fn is_tree(nodes: &[Node]) -> bool {
    if nodes.is_empty() {
        return false;
    }
    let mut seen = vec![false; nodes.len()];
    let mut stack = vec![0usize];
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            return false;
        }
        let n = &nodes[i];
        if n.left == -1 {
            continue;
        }
        for child in [n.left, n.right] {
            match usize::try_from(child) {
                Ok(c) if c < nodes.len() => stack.push(c),
                _ => return false,
            }
        }
    }
    true
}

impl XGBoost {
    #[allow(
        clippy::too_many_lines,
        reason = "reads the XGBoost booster's binary layout field by field"
    )]
    pub fn load(
        ini: &Ini,
        meta: &Meta,
        archive: &Archive,
        dir: &str,
        refuse: Refuse,
    ) -> Result<XGBoost, MojoError> {
        let booster = ini.str("booster")?;
        if booster != "gbtree" {
            return Err(refuse(&format!(
                "XGBoost booster `{booster}` (only gbtree)"
            )));
        }
        if ini.bool_or("has_offset", false)? {
            return Err(refuse("XGBoost with an offset"));
        }
        if meta.mojo_version == "1.00" {
            return Err(refuse("XGBoost MOJO 1.00 one-hot layout"));
        }
        let cats = ini.usize("cats")?;
        let nums = ini.usize("nums")?;
        let cat_offsets = ini.usizes("cat_offsets")?;
        if !one_hot_layout_ok(cats, nums, &cat_offsets, meta.nfeatures)
            || cat_offsets[cats] + nums > MAX_FEATURES
        {
            return Err(MojoError::Format(
                "XGBoost: `cat_offsets`, `cats` and `nums` disagree with the columns".into(),
            ));
        }
        let bytes = archive.get(&format!("{dir}boosterBytes"))?;
        let mut r = Reader::new(bytes, || {
            MojoError::Format("`boosterBytes` ends early".into())
        });
        if r.take(4)? != b"binf" {
            return Err(refuse("a `boosterBytes` without the `binf` header"));
        }
        let base_score = r.f32()?;
        let _num_feature = r.u32()?;
        let num_class = r.i32()?;
        let _extra_attrs = r.i32()?;
        let _eval_metrics = r.i32()?;
        let major = r.u32()?;
        let minor = r.u32()?;
        r.take(136 - 28)?;
        let objective_name = r.string()?;
        let booster_name = r.string()?;
        if booster_name != "gbtree" {
            return Err(refuse(&format!(
                "XGBoost booster `{booster_name}` (only gbtree)"
            )));
        }
        let objective = match objective_name.as_str() {
            "binary:logistic" | "reg:logistic" => Objective::Logistic,
            "multi:softprob" | "multi:softmax" => Objective::Softprob,
            "reg:squarederror" | "reg:linear" | "reg:pseudohubererror" | "reg:absoluteerror" => {
                Objective::Identity
            }
            "count:poisson" | "reg:gamma" | "reg:tweedie" => Objective::Exp,
            other => return Err(refuse(&format!("XGBoost objective `{other}`"))),
        };
        // GBTreeModelParam: 160 bytes.
        let param = r.take(160)?;
        let num_trees = i32::from_le_bytes(param[0..4].try_into().unwrap());
        // XGBoost ≥ 1.0 leaves GBTreeModelParam's output group count at 1 (deprecated): the
        // learner's class count says how many groups there are.
        let num_groups = (num_class.max(1) as usize)
            .max(i32::from_le_bytes(param[24..28].try_into().unwrap()).max(1) as usize);
        let expected_groups = if meta.category == Category::Multinomial {
            meta.nclasses
        } else {
            1
        };
        if num_groups != expected_groups || (num_class > 1 && num_class as usize != num_groups) {
            return Err(MojoError::Format(format!(
                "XGBoost: {num_groups} output groups for a model with {} classes",
                meta.nclasses
            )));
        }
        let mut trees = Vec::new();
        for _ in 0..num_trees.max(0) {
            let tree_param = r.take(148)?;
            let num_nodes = i32::from_le_bytes(tree_param[4..8].try_into().unwrap());
            let leaf_vector = i32::from_le_bytes(tree_param[20..24].try_into().unwrap());
            if leaf_vector != 0 {
                return Err(refuse("XGBoost trees with leaf vectors"));
            }
            // 20 bytes a node: the bytes left bound what a declared count may reserve.
            let mut nodes = Vec::with_capacity((num_nodes.max(0) as usize).min(r.remaining() / 20));
            for _ in 0..num_nodes.max(0) {
                let _parent = r.i32()?;
                let left = r.i32()?;
                let right = r.i32()?;
                let sindex = r.u32()?;
                let value = r.f32()?;
                nodes.push(Node {
                    left,
                    right,
                    feature: sindex & 0x7FFF_FFFF,
                    default_left: sindex >> 31 != 0,
                    value,
                });
            }
            // Node stats (loss_chg, sum_hess, base_weight, leaf_child_cnt): scoring needs none;
            // explanations use sum_hess, the node's cover.
            let mut cover = Vec::with_capacity(nodes.len());
            for _ in 0..num_nodes.max(0) {
                let stats = r.take(16)?;
                cover.push(f32::from_le_bytes(stats[4..8].try_into().unwrap()));
            }
            if !is_tree(&nodes) {
                return Err(MojoError::Format(
                    "XGBoost: a tree's nodes point outside the tree or back into it".into(),
                ));
            }
            let depth = depth_of(&nodes);
            trees.push(RegTree {
                nodes,
                cover,
                depth,
            });
        }
        let mut groups: Vec<Vec<RegTree>> = (0..num_groups).map(|_| Vec::new()).collect();
        for tree in trees {
            let g = r.i32()?;
            groups
                .get_mut(g as usize)
                .ok_or_else(|| MojoError::Format("XGBoost: tree group out of range".into()))?
                .push(tree);
        }
        let base_margin = if major >= 1 && objective == Objective::Logistic {
            -((1.0f32 / base_score - 1.0f32) as f64).ln() as f32
        } else {
            base_score
        };
        let refusal = refusal(&groups, cat_offsets[cats] + nums);
        Ok(XGBoost {
            cats,
            nums,
            cat_offsets,
            use_all_levels: ini.bool_or("use_all_factor_levels", true)?,
            sparse: ini.bool_or("sparse", false)?,
            groups,
            base_margin,
            bias_first: (major, minor) > (1, 2),
            objective,
            refusal,
            explainer: std::sync::OnceLock::new(),
        })
    }

    /// The names of the one-hot features, as genmodel names its contributions: per categorical
    /// column `COL.LEVEL` for each level with a slot (all of them, or all but the first without
    /// `use_all_factor_levels`) and `COL.missing(NA)`, then the numeric columns.
    pub(crate) fn feature_names(&self, meta: &Meta) -> Vec<String> {
        let mut names = Vec::with_capacity(self.cat_offsets[self.cats] + self.nums);
        for i in 0..self.cats {
            let column = &meta.columns[i];
            let levels = meta.domains[i].as_deref().unwrap_or_default();
            let slots = self.cat_offsets[i + 1] - self.cat_offsets[i];
            let skip = usize::from(!self.use_all_levels);
            for s in 0..slots {
                names.push(match levels.get(s + skip) {
                    Some(level) if s + 1 < slots => format!("{column}.{level}"),
                    _ => format!("{column}.missing(NA)"),
                });
            }
        }
        names.extend(
            meta.columns[self.cats..self.cats + self.nums]
                .iter()
                .cloned(),
        );
        names
    }

    /// Why this model cannot be explained, if it cannot ([`refusal`]).
    pub(crate) fn unexplainable(&self) -> Option<&'static str> {
        self.refusal
    }

    /// How many output groups are explained: one per class for multinomial, else one.
    pub(crate) fn explained_sets(&self) -> usize {
        self.groups.len()
    }

    /// TreeSHAP contributions of `row` per output group, over the one-hot features
    /// ([`XGBoost::feature_names`]), then the bias; they add up to the margin before the
    /// objective's transform, summed in f64 (scoring sums the leaves in f32, so the margin
    /// the probability came from differs from it in the last f32 bits).
    pub(crate) fn contributions(&self, row: &[f64]) -> Vec<Vec<f64>> {
        let explainer = self.explainer.get_or_init(|| self.prepare(LIMITS));
        self.explain(explainer, row)
    }

    /// Prepares every tree, group by group, within `limits` ([`crate::mojo::shap::prepare`]).
    fn prepare(&self, limits: Limits) -> Vec<Vec<Prepared>> {
        let mut budget = limits.budget;
        self.groups
            .iter()
            .map(|trees| {
                trees
                    .iter()
                    .map(|tree| {
                        // Nothing the preparation reads depends on the row.
                        let bound = Bound { tree, x: &[] };
                        prepare(&bound, 0, tree.depth, limits, &mut budget)
                    })
                    .collect()
            })
            .collect()
    }

    /// [`XGBoost::contributions`] with the trees prepared as `explainer`.
    fn explain(&self, explainer: &[Vec<Prepared>], row: &[f64]) -> Vec<Vec<f64>> {
        let x = self.features(row);
        let mut scratch = Scratch::default();
        self.groups
            .iter()
            .zip(explainer)
            .map(|(trees, prepared)| {
                let mut phi = vec![0.0; x.len() + 1];
                phi[x.len()] = f64::from(self.base_margin);
                for (tree, prepared) in trees.iter().zip(prepared) {
                    prepared.add(&Bound { tree, x: &x }, &mut phi, 1.0, &mut scratch);
                }
                phi
            })
            .collect()
    }

    /// The margin per output group, summed in f64: what [`XGBoost::contributions`] add up to.
    #[cfg(test)]
    pub(crate) fn margins(&self, row: &[f64]) -> Vec<f64> {
        let x = self.features(row);
        self.groups
            .iter()
            .map(|trees| {
                trees.iter().map(|t| f64::from(t.leaf(&x))).sum::<f64>()
                    + f64::from(self.base_margin)
            })
            .collect()
    }

    /// The f32 feature vector (`OneHotEncoderFactory.fromArray`).
    fn features(&self, row: &[f64]) -> Vec<f32> {
        let width = self.cat_offsets[self.cats] + self.nums;
        let cold = if self.sparse { f32::NAN } else { 0.0 };
        let mut x = vec![cold; width];
        for (i, &d) in row[..self.cats].iter().enumerate() {
            let (lo, hi) = (self.cat_offsets[i], self.cat_offsets[i + 1]);
            if let Some(h) = one_hot_index(d, lo, hi, self.use_all_levels) {
                x[h] = 1.0;
            }
        }
        let start = self.cat_offsets[self.cats];
        for i in 0..self.nums {
            let v = row[self.cats + i] as f32;
            x[start + i] = if self.sparse && v == 0.0 { f32::NAN } else { v };
        }
        x
    }

    pub fn score0(&self, meta: &Meta, row: &[f64], preds: &mut [f64]) {
        let x = self.features(row);
        let mut out: Vec<f32> = self
            .groups
            .iter()
            .map(|trees| {
                if self.bias_first {
                    trees.iter().fold(self.base_margin, |s, t| s + t.leaf(&x))
                } else {
                    trees.iter().fold(0.0f32, |s, t| s + t.leaf(&x)) + self.base_margin
                }
            })
            .collect();
        match self.objective {
            Objective::Logistic => {
                for v in &mut out {
                    *v = 1.0f32 / (1.0f32 + ((-*v) as f64).exp() as f32);
                }
            }
            Objective::Softprob => {
                let max = out.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let mut sum = 0.0f64;
                for v in &mut out {
                    *v = ((*v - max) as f64).exp() as f32;
                    sum += *v as f64;
                }
                for v in &mut out {
                    *v /= sum as f32;
                }
            }
            Objective::Exp => {
                for v in &mut out {
                    *v = (*v as f64).exp() as f32;
                }
            }
            Objective::Identity => {}
        }
        match meta.category {
            Category::Multinomial => {
                for (p, v) in preds[1..].iter_mut().zip(&out) {
                    *p = *v as f64;
                }
                meta.finish_classification(row, preds);
            }
            Category::Binomial => {
                preds[1] = (1.0f32 - out[0]) as f64;
                preds[2] = out[0] as f64;
                meta.finish_classification(row, preds);
            }
            Category::Regression => preds[0] = out[0] as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Bound, Limits, Prepared};
    use crate::mojo::model::Scorer;
    use crate::mojo::shap::Explained;
    use crate::mojo::tests::{agree_with_genmodels_contributions, encoded_fixture};

    /// Every tree tabled against every tree walked (no table fits a limit of 0).
    #[test]
    fn tables_agree_with_the_walk_on_every_xgboost_fixture() {
        use crate::mojo::shap::Method;
        for name in ["xgb_bin", "xgb_reg", "xgb_syn", "xgb_multi"] {
            let (mojo, rows) = encoded_fixture(name);
            let Scorer::XGBoost(model) = &mojo.model.scorer else {
                panic!("{name} is not an XGBoost model");
            };
            let tables = model.prepare(Limits {
                unique: 24,
                budget: usize::MAX,
            });
            let walks = model.prepare(Limits {
                unique: 0,
                budget: 0,
            });
            let walked = |p: &Prepared| matches!(p.method, Method::Walk { .. });
            assert!(!tables.iter().flatten().any(walked), "{name}");
            assert!(walks.iter().flatten().any(walked), "{name}");
            let mut worst = 0f64;
            for row in &rows {
                let (a, b) = (model.explain(&tables, row), model.explain(&walks, row));
                for (a, b) in a.iter().flatten().zip(b.iter().flatten()) {
                    worst = worst.max((a - b).abs() / a.abs().max(b.abs()).max(1.0));
                }
            }
            eprintln!("{name}: worst |table - walk| {worst:e}");
            assert!(worst <= 1e-11, "{name}: {worst:e}");
        }
    }

    #[test]
    fn contributions_add_up_to_the_margin_and_agree_with_genmodels() {
        for name in ["xgb_bin", "xgb_reg", "xgb_syn", "xgb_multi"] {
            let (mojo, rows) = encoded_fixture(name);
            let Scorer::XGBoost(model) = &mojo.model.scorer else {
                panic!("{name} is not an XGBoost model");
            };
            assert_eq!(model.unexplainable(), None, "{name}");
            let mut worst = 0f64;
            for row in &rows {
                let sets = model.contributions(row);
                for (phi, margin) in sets.iter().zip(model.margins(row)) {
                    let sum: f64 = phi.iter().sum();
                    worst = worst.max((sum - margin).abs());
                    assert!((sum - margin).abs() <= 1e-9, "{name}: {sum} vs {margin}");
                }
            }
            eprintln!("{name}: worst |sum - margin| {worst:e}");
            if name != "xgb_multi" {
                agree_with_genmodels_contributions(name, &mojo, &rows, |row| {
                    model.contributions(row).remove(0)
                });
            }
        }
    }

    /// A chain of splits on one feature, `depth` levels deep: refused for explanations past
    /// [`super::MAX_EXPLAINED_DEPTH`] (the walk recurses once a level), and scored as ever.
    #[test]
    fn a_tree_deeper_than_the_cap_is_refused_not_walked() {
        let leaf = |value: f32| super::Node {
            left: -1,
            right: -1,
            feature: 0,
            default_left: true,
            value,
        };
        // Split i is node 2i: its right child (2i + 1) a leaf, its left the next split.
        let chain = |depth: usize| {
            let mut nodes = Vec::new();
            for i in 0..depth {
                nodes.push(super::Node {
                    left: (2 * i + 2) as i32,
                    right: (2 * i + 1) as i32,
                    feature: 0,
                    default_left: true,
                    value: i as f32,
                });
                nodes.push(leaf(1.0));
            }
            nodes.push(leaf(2.0));
            let depth = super::depth_of(&nodes);
            super::RegTree {
                cover: vec![1.0; nodes.len()],
                nodes,
                depth,
            }
        };
        let shallow = chain(256);
        assert_eq!(shallow.depth, 256);
        assert_eq!(super::refusal(&[vec![shallow]], 1), None);
        let deep = chain(257);
        // Scoring walks it iteratively: left at every split (x < each threshold) to the end.
        assert_eq!(deep.leaf(&[-1.0]), 2.0);
        assert_eq!(
            super::refusal(&[vec![deep]], 1),
            Some("a tree is deeper than 256 levels")
        );
    }

    /// The value of the feature set `set` (a bit mask over the one-hot features) for a bound
    /// tree: its output with the features outside the set averaged over by cover, through the
    /// same [`Explained`] answers TreeSHAP reads, without its path bookkeeping.
    fn value(tree: &Bound<'_>, node: u32, set: u64) -> f64 {
        match tree.children(node) {
            None => tree.leaf(node),
            Some([left, right]) if set >> tree.feature(node) & 1 == 1 => {
                value(tree, if tree.goes_right(node) { right } else { left }, set)
            }
            Some([left, right]) => {
                let [cl, cr] = tree.cover(node);
                (cl * value(tree, left, set) + cr * value(tree, right, set)) / tree.weight(node)
            }
        }
    }

    /// Issue 17 point 2: neither genmodel nor the H2O server explains a multinomial XGBoost;
    /// its contributions are the Shapley values of the cover-weighted value function, by every
    /// subset of its features, class by class.
    #[test]
    fn multinomial_contributions_are_the_shapley_values_of_the_cover_weighted_value() {
        let (mojo, rows) = encoded_fixture("xgb_multi");
        let Scorer::XGBoost(model) = &mojo.model.scorer else {
            panic!("xgb_multi is not an XGBoost model");
        };
        let mut worst = 0f64;
        for row in rows.iter().take(40) {
            let x = model.features(row);
            let m = x.len();
            assert!(m <= 12, "{m} features");
            let fact = |k: usize| (1..=k).map(|i| i as f64).product::<f64>();
            let sets = model.contributions(row);
            assert_eq!(sets.len(), 3);
            for (trees, ours) in model.groups.iter().zip(&sets) {
                let v = |set: u64| -> f64 {
                    trees
                        .iter()
                        .map(|tree| value(&Bound { tree, x: &x }, 0, set))
                        .sum()
                };
                for (i, ours) in ours.iter().take(m).enumerate() {
                    let phi: f64 = (0..1u64 << m)
                        .filter(|set| set >> i & 1 == 0)
                        .map(|set| {
                            let s = set.count_ones() as usize;
                            fact(s) * fact(m - s - 1) / fact(m) * (v(set | 1 << i) - v(set))
                        })
                        .sum();
                    worst = worst.max((ours - phi).abs());
                    assert!((ours - phi).abs() < 1e-9, "feature {i}: {ours} vs {phi}");
                }
                let bias = v(0) + f64::from(model.base_margin);
                assert!((ours[m] - bias).abs() < 1e-9, "bias {} vs {bias}", ours[m]);
            }
        }
        eprintln!("xgb_multi vs brute force: worst {worst:e}");
    }
}

//! GBM and DRF (XRT is DRF): compressed trees decoded once into one flat array of nodes, then
//! scored as genmodel's `SharedTreeMojoModel` (ScoreTree2, MOJO ≥ 1.20) does, bit for bit.
//!
//! A tree file `trees/tCC_GGG.bin` is the pre-order byte encoding of `DTree.compress`:
//! `u8 node type, u16 column, u8 NA direction, split payload, [left subtree size], left, right`,
//! where a child that is a leaf is its `f32` value (layout in docs/mojo.md). A row goes right when
//! its value is NA — NaN, outside a bitset's range, or a level index beyond the column's domain —
//! and the node sends NAs right, or else when `value >= split` (numeric, compared in f64 against
//! the widened f32) or its level's bit is set. Leaves are summed in f64 per class in
//! (class, group) order, which keeps the sums bit-identical to genmodel's.
//!
//! How a row is scored (the speed comes from here; the results do not change):
//! * Every node is 16 bytes in one array: a test and the indices of its two children. A leaf is
//!   a node whose children are itself, so a tree is walked a fixed number of steps (its depth)
//!   without asking whether a leaf was reached.
//! * A numeric split on a numeric column, the common case, reads a [`View`] of the row made
//!   once per row (the value as an f32 rounded down, NaN already turned to the node's NA side)
//!   and subtracts the threshold: the sign bit is the direction, exactly genmodel's f64
//!   comparison (proof at [`View`]), with no branch on the row's data. Splits on categorical
//!   columns (bitsets, the domain check) and non-finite thresholds take genmodel's test in full
//!   ([`Special`]).
//! * Up to [`BLOCK`] trees of a class are walked level by level together, so their independent
//!   node loads overlap instead of each waiting for the one before. Their leaves are then added
//!   in tree order.
//!
//! The tests below hold every tree of the tree fixtures against a walk over the raw bytes
//! written after genmodel's `scoreTree`, on rows probing each split point, NaN, ±∞, ±0 and
//! unseen or fractional levels.
//!
//! Not reproduced (nor was it before this layout): genmodel reuses one bitset object along a
//! walk, so an NA-vs-rest node whose type byte has the bitset bits set, reached after a bitset
//! split, also range-checks the value against that earlier split's bitset. Here NA-vs-rest tests
//! NA (and the domain) only; the fixtures have no such node (the test's oracle does keep the
//! bitset).

use super::bytes::Cursor;
use super::ini::Ini;
use super::model::{Meta, Refuse};
use super::prediction::gbm_rescale;
use super::{Archive, Category, MojoError};

/// How many trees of a class are walked together (the cursors live on the stack).
const BLOCK: usize = 64;

/// `Node::slot` of a node whose test is a [`Special`].
const SPECIAL: u32 = u32::MAX;

/// One node of a [`Forest`].
#[derive(Debug, Clone, Copy)]
struct Node {
    /// A split goes right when `view[slot] >= f32::from_bits(payload)` (see [`View`]).
    /// A leaf holds its value's bits, with slot 0 (either way it stays where it is).
    /// A special split (`slot == SPECIAL`) holds an index into `Forest::special`.
    payload: u32,
    slot: u32,
    /// Left, then right; a leaf's are its own index.
    children: [u32; 2],
}

/// A split that is not "value >= finite threshold" on a numeric column, decided by genmodel's
/// test in full.
#[derive(Debug, Clone, Copy)]
struct Special {
    col: u32,
    split: Split,
    /// Where NA goes: genmodel's `!leftward`.
    na_right: bool,
    /// The column's number of levels when categorical (levels beyond it are NA).
    domain_len: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
enum Split {
    /// Goes right when `value >= threshold`.
    Numeric(f32),
    /// Goes right when the level's bit is set; `start` indexes the forest's bitset bytes.
    Bitset { offset: i32, nbits: i32, start: u32 },
    /// Non-NA values go left.
    NaVsRest,
}

/// The row as the fast splits see it: three f32 per numeric column that some split reads, at
/// `3 * i + view`, so that every such split is one subtraction, `value - threshold`, whose sign
/// bit is clear exactly when the row goes right:
///
/// | view | the value | NaN becomes | read by |
/// |---|---|---|---|
/// | 0 | rounded down to f32 | -∞, below every threshold | splits that send NA left |
/// | 1 | rounded down to f32 | +∞, above every threshold | splits that send NA right |
/// | 2 | 0 | 1 | NA-vs-rest splits, threshold 0.5 |
///
/// Why this is exactly genmodel's `d >= (double) t` for an f64 value `d` and an f32 threshold
/// `t`:
/// * `d >= t` holds exactly when the largest f32 not above `d` is `>= t` (`t` is an f32).
/// * For f32 `v >= t`, with `t` finite and neither a -0: `v - t` is +0 when `v == t` and
///   otherwise has the sign of the exact difference (it cannot round to zero, nor overflow to
///   NaN). -0 becomes +0 in the view and in thresholds; they compare equal anyway.
/// * Infinite values keep their side (+∞ goes right, -∞ left, as in genmodel). Thresholds that
///   are not finite, where ±∞ could not stand for NA, are special splits.
#[derive(Debug)]
struct View {
    /// The numeric columns the fast splits read, each once.
    columns: Vec<u32>,
    /// Per model column, its index in `columns` (`u32::MAX`: not read).
    index: Vec<u32>,
}

impl View {
    fn slot(&mut self, col: usize, view: u32) -> u32 {
        if self.index[col] == u32::MAX {
            self.index[col] = self.columns.len() as u32;
            self.columns.push(col as u32);
        }
        3 * self.index[col] + view
    }

    /// At least one value: a leaf reads slot 0.
    fn len(&self) -> usize {
        (3 * self.columns.len()).max(1)
    }

    fn fill(&self, row: &[f64], out: &mut [f32]) {
        for (&c, out) in self.columns.iter().zip(out.chunks_exact_mut(3)) {
            let d = row[c as usize];
            let mut f = d as f32; // to nearest; then down if that went up
            if f as f64 > d {
                f = f.next_down();
            }
            let f = f + 0.0; // -0 → +0
            let nan = d.is_nan();
            out[0] = if nan { f32::NEG_INFINITY } else { f };
            out[1] = if nan { f32::INFINITY } else { f };
            out[2] = if nan { 1.0 } else { 0.0 };
        }
    }
}

thread_local! {
    /// Each scoring thread's buffer for a [`View`] too large for the stack, reused row after row.
    static VIEW: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The deepest tree decoded. Decoding recurses once per level, and scoring threads (serve's
/// tokio workers) have 2 MiB stacks: 1,000 levels overflowed a debug build's 2 MiB test thread
/// (found by the MOJO property test). H2O's defaults are 5 (GBM) and 20 (DRF) levels.
const MAX_TREE_DEPTH: usize = 256;

/// Every tree of a model in one array of nodes (each tree's in pre-order), with the side
/// tables of its special splits.
#[derive(Debug)]
struct Forest {
    nodes: Vec<Node>,
    special: Vec<Special>,
    bits: Vec<u8>,
    view: View,
    /// Per node, the training weight (cover) of its left and right branch, from the trees' aux
    /// files (for TreeSHAP, [`shap`]); empty when a tree has none (MOJO 1.00).
    weights: Vec<[f64; 2]>,
    /// Per node, its weight as its parent's aux record gives it (a root's: its two branches'),
    /// the denominator of its branches' fractions, as genmodel takes it.
    weight: Vec<f64>,
}

/// A tree's place in the forest: its root node, and how many steps reach its deepest leaf.
#[derive(Debug, Clone, Copy)]
struct Tree {
    root: u32,
    depth: u32,
}

/// Up to [`BLOCK`] consecutive trees of one class, walked together.
#[derive(Debug)]
struct Block {
    /// Their roots, in tree order.
    roots: Vec<u32>,
    /// The deepest of the trees.
    depth: u32,
}

impl Forest {
    fn new(meta: &Meta) -> Forest {
        Forest {
            nodes: Vec::new(),
            special: Vec::new(),
            bits: Vec::new(),
            view: View {
                columns: Vec::new(),
                index: vec![u32::MAX; meta.nfeatures],
            },
            weights: Vec::new(),
            weight: Vec::new(),
        }
    }

    /// Reads a tree's aux file (`trees/tCC_GGG_aux.bin`: 40 bytes per split node, `nid`, a
    /// reserved i32, `weightL`, `weightR`, `predL`, `predR`, `sqErrL`, `sqErrR` as f32, `nidL`,
    /// `nidR`) and records each split's branch weights, matching nodes by walking the decoded
    /// tree from the root (node id 0) along `nidL`/`nidR`, as genmodel's `computeTreeGraph` does.
    fn attach_weights(&mut self, root: u32, aux: &[u8]) -> Result<(), String> {
        let mut records = std::collections::HashMap::new();
        let mut r = Reader::new(aux, || "aux bytes end early".to_string());
        while r.remaining() > 0 {
            let nid = r.i32()?;
            let _reserved = r.i32()?;
            let wl = r.f32()?;
            let wr = r.f32()?;
            r.take(16)?;
            let (nl, nr) = (r.i32()?, r.i32()?);
            records.insert(nid, ([f64::from(wl), f64::from(wr)], nl, nr));
        }
        self.weights.resize(self.nodes.len(), [0.0; 2]);
        self.weight.resize(self.nodes.len(), 0.0);
        let mut stack = vec![(root, 0i32, None)];
        while let Some((node, nid, recorded)) = stack.pop() {
            let Some([left, right]) = self.children_of(node) else {
                self.weight[node as usize] = recorded.unwrap_or(0.0);
                continue;
            };
            let &(w, nl, nr) = records
                .get(&nid)
                .ok_or_else(|| format!("no aux record for node {nid}"))?;
            if !w.iter().all(|w| w.is_finite() && *w >= 0.0) {
                return Err(format!("node {nid} has weights {w:?}"));
            }
            self.weights[node as usize] = w;
            self.weight[node as usize] = recorded.unwrap_or(w[0] + w[1]);
            stack.push((left, nl, Some(w[0])));
            stack.push((right, nr, Some(w[1])));
        }
        Ok(())
    }

    /// A split node's children (left, right); `None` for a leaf.
    fn children_of(&self, node: u32) -> Option<[u32; 2]> {
        let children = self.nodes[node as usize].children;
        (children[0] != node).then_some(children)
    }

    /// The model column a split node tests.
    fn column_of(&self, node: u32) -> usize {
        let n = &self.nodes[node as usize];
        match n.slot {
            SPECIAL => self.special[n.payload as usize].col as usize,
            slot => self.view.columns[slot as usize / 3] as usize,
        }
    }

    /// Whether `row` goes right at split node `node` (genmodel's test, as [`Forest::step`]).
    fn goes_right(&self, node: u32, view: &[f32], row: &[f64]) -> bool {
        self.step(node, view, row) == self.nodes[node as usize].children[1]
    }

    /// Decodes one tree file into the forest.
    fn decode(&mut self, bytes: &[u8], meta: &Meta) -> Result<Tree, String> {
        // Every node takes at least 4 bytes, so this bounds the node indices.
        if self.nodes.len() + bytes.len() >= u32::MAX as usize {
            return Err("too many tree nodes".into());
        }
        let mut reader = Reader::new(bytes, || "tree bytes end early".to_string());
        if bytes.len() >= 3 && bytes[1] == 0xFF && bytes[2] == 0xFF {
            reader.pos = 3;
            let value = reader.f32()?;
            return Ok(Tree {
                root: self.leaf(value),
                depth: 0,
            });
        }
        let (root, depth) = self.node(&mut reader, meta, 0)?;
        Ok(Tree { root, depth })
    }

    fn leaf(&mut self, value: f32) -> u32 {
        let index = self.nodes.len() as u32;
        self.nodes.push(Node {
            payload: value.to_bits(),
            slot: 0,
            children: [index, index],
        });
        index
    }

    /// Decodes the node at the reader's position (and its subtrees); returns its index and the
    /// depth of its subtree.
    #[allow(
        clippy::too_many_lines,
        reason = "genmodel's node encoding, read field by field in its byte order"
    )]
    fn node(&mut self, r: &mut Reader, meta: &Meta, depth: usize) -> Result<(u32, u32), String> {
        if depth > MAX_TREE_DEPTH {
            return Err(format!("tree deeper than {MAX_TREE_DEPTH} levels"));
        }
        let node_type = r.u8()?;
        let col = r.u16()? as usize;
        let na_dir = r.u8()?;
        let equal = node_type & 12;
        let split = if na_dir == NA_VS_REST {
            Split::NaVsRest
        } else {
            match equal {
                0 => Split::Numeric(r.f32()?),
                8 => {
                    let start = self.bits.len() as u32;
                    self.bits.extend_from_slice(r.take(4)?);
                    Split::Bitset {
                        offset: 0,
                        nbits: 32,
                        start,
                    }
                }
                12 => {
                    let offset = r.u16()? as i32;
                    let nbits = r.i32()?;
                    if nbits < 0 {
                        return Err("negative bitset size".into());
                    }
                    let start = self.bits.len() as u32;
                    let nbytes = ((nbits - 1) >> 3) + 1;
                    self.bits.extend_from_slice(r.take(nbytes.max(0) as usize)?);
                    Split::Bitset {
                        offset,
                        nbits,
                        start,
                    }
                }
                _ => return Err(format!("unsupported split type {equal}")),
            }
        };
        let lmask = node_type & 51;
        let left_leaf = lmask & 16 != 0;
        let right_leaf = (node_type & 0xC0) >> 2 & 16 != 0;
        let left_size = if left_leaf {
            4
        } else {
            match lmask {
                0 => r.u8()? as usize,
                1 => r.u16()? as usize,
                2 => r.u24()? as usize,
                3 => usize::try_from(r.i32()?).map_err(|_| "negative subtree size".to_string())?,
                _ => return Err(format!("bad node type {node_type}")),
            }
        };
        if col >= meta.nfeatures {
            return Err(format!("a split on column {col} of {}", meta.nfeatures));
        }
        let na_right = !(na_dir == NA_LEFT || na_dir == LEFT);
        let domain_len = meta.domain_len(col).map(|n| n as u32);
        let (payload, slot) = match (split, domain_len) {
            (Split::Numeric(t), None) if t.is_finite() => {
                let t = t + 0.0; // -0 → +0
                (t.to_bits(), self.view.slot(col, u32::from(na_right)))
            }
            (Split::NaVsRest, None) => (0.5f32.to_bits(), self.view.slot(col, 2)),
            _ => {
                self.special.push(Special {
                    col: col as u32,
                    split,
                    na_right,
                    domain_len,
                });
                (self.special.len() as u32 - 1, SPECIAL)
            }
        };
        let index = self.nodes.len();
        self.nodes.push(Node {
            payload,
            slot,
            children: [0, 0],
        });
        let left_start = r.pos;
        let (left, left_depth) = if left_leaf {
            (self.leaf(r.f32()?), 0)
        } else {
            self.node(r, meta, depth + 1)?
        };
        // The right subtree starts where the left one ends; a size that points back (or
        // past the end) would decode bytes twice, up to exponentially often.
        r.pos = match left_start.checked_add(left_size) {
            Some(at) if at >= r.pos && at <= r.len() => at,
            _ => {
                return Err(format!(
                    "a node's left subtree size {left_size} does not fit"
                ))
            }
        };
        let (right, right_depth) = if right_leaf {
            (self.leaf(r.f32()?), 0)
        } else {
            self.node(r, meta, depth + 1)?
        };
        self.nodes[index].children = [left, right];
        Ok((index as u32, 1 + left_depth.max(right_depth)))
    }

    /// One step down from node `at`: the child the row goes to (a leaf's is itself).
    #[inline(always)]
    fn step(&self, at: u32, view: &[f32], row: &[f64]) -> u32 {
        let node = &self.nodes[at as usize];
        let left = if node.slot != SPECIAL {
            // `value >= threshold` is the sign bit of `value - threshold` (see `View`), read
            // without a compare: a compare's flag, turned into an index, ties each walk to the
            // one before it through a partial register on some CPUs.
            let diff = view[node.slot as usize] - f32::from_bits(node.payload);
            diff.to_bits() >> 31
        } else {
            u32::from(!self.special_goes_right(&self.special[node.payload as usize], row))
        };
        node.children[left as usize ^ 1]
    }

    /// genmodel's test, in full: NA (NaN, a level outside the bitset's range or beyond the
    /// column's domain) goes the node's NA way; otherwise NA-vs-rest goes left, a numeric split
    /// right when `value >= split` (in f64 against the widened f32), a bitset right when the
    /// level's bit is set.
    #[cold]
    fn special_goes_right(&self, special: &Special, row: &[f64]) -> bool {
        let d = row[special.col as usize];
        let di = d as i32; // Java's (int): truncating, saturating, NaN → 0
        let out_of_range = match special.split {
            Split::Bitset { offset, nbits, .. } => {
                let b = di.wrapping_sub(offset);
                b < 0 || b >= nbits
            }
            _ => false,
        };
        let beyond_domain = special.domain_len.is_some_and(|n| (n as i64) <= di as i64);
        if d.is_nan() || out_of_range || beyond_domain {
            return special.na_right;
        }
        match special.split {
            Split::NaVsRest => false,
            Split::Numeric(t) => d >= t as f64,
            Split::Bitset { offset, start, .. } => {
                let b = (di - offset) as usize;
                self.bits[start as usize + (b >> 3)] & (1 << (b & 7)) != 0
            }
        }
    }

    fn leaf_value(&self, at: u32) -> f32 {
        f32::from_bits(self.nodes[at as usize].payload)
    }

    /// Adds the leaves `row` reaches in the blocks' trees to `sum`, in tree order (the f64 sum
    /// genmodel makes).
    fn sum(&self, blocks: &[Block], view: &[f32], row: &[f64], sum: &mut f64) {
        let mut cursors = [0u32; BLOCK];
        for block in blocks {
            let at = &mut cursors[..block.roots.len()];
            at.copy_from_slice(&block.roots);
            for _ in 0..block.depth {
                for a in at.iter_mut() {
                    *a = self.step(*a, view, row);
                }
            }
            for &a in at.iter() {
                *sum += self.leaf_value(a) as f64;
            }
        }
    }
}

mod shap;

const NA_VS_REST: u8 = 1;
const NA_LEFT: u8 = 2;
const LEFT: u8 = 4;

type Reader<'a> = Cursor<'a, String>;

#[derive(Debug)]
enum Kind {
    Gbm {
        family: Family,
        link: Link,
        init_f: f64,
    },
    Drf {
        binomial_double_trees: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Family {
    /// bernoulli, quasibinomial, modified_huber: one tree per group, p1 = linkInv(f).
    Binomial,
    Multinomial,
    Regression,
}

/// GBM's inverse links (`GbmMojoModel.linkInv`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    Identity,
    Logit,
    Log,
    Inverse,
    Ologlog,
    Oprobit,
}

#[derive(Debug)]
pub(crate) struct TreeModel {
    kind: Kind,
    groups: usize,
    forest: Forest,
    /// Per class, its trees in group order (less those the MOJO leaves out), in blocks.
    classes: Vec<Vec<Block>>,
    /// The trees prepared for TreeSHAP, on the first explanation ([`shap`]).
    explainer: std::sync::OnceLock<shap::Explainer>,
}

/// `GbmMojoModel.exp`: Math.exp capped at 1e19.
fn capped_exp(x: f64) -> f64 {
    x.exp().min(1e19)
}

impl Link {
    fn inverse(self, f: f64) -> f64 {
        match self {
            Link::Identity => f,
            Link::Logit => 1.0 / (1.0 + capped_exp(-f)),
            Link::Log => capped_exp(f),
            Link::Ologlog => 1.0 - capped_exp(-capped_exp(f)),
            Link::Oprobit => 0.0,
            // genmodel clamps positives with max(-1e-5, f), i.e. not at all; kept as is.
            Link::Inverse => 1.0 / if f < 0.0 { f.min(-1e-5) } else { f.max(-1e-5) },
        }
    }
}

impl TreeModel {
    #[allow(
        clippy::too_many_lines,
        reason = "reads a tree model's ini fields and trees in genmodel's order"
    )]
    pub fn load(
        ini: &Ini,
        meta: &Meta,
        archive: &Archive,
        dir: &str,
        refuse: Refuse,
    ) -> Result<TreeModel, MojoError> {
        let double_trees = ini.bool_or("binomial_double_trees", false)?;
        let per_group = match ini.opt_usize("n_trees_per_class")? {
            Some(n) => n,
            None if meta.nclasses == 2 && !double_trees => 1,
            None => meta.nclasses,
        };
        let groups = ini.usize("n_trees")?;
        // Counts come from the file: each tree is a file of the archive, and a class group per
        // class at most.
        if groups > archive.len() || per_group > meta.nclasses.max(1) {
            return Err(MojoError::Format(format!(
                "{groups} trees per class and {per_group} classes of trees in an archive of {} files for {} classes",
                archive.len(),
                meta.nclasses
            )));
        }
        let kind = if meta.algo == "gbm" {
            let distribution = ini.str("distribution")?;
            let family = match distribution {
                "bernoulli" | "quasibinomial" | "modified_huber" => Family::Binomial,
                "multinomial" => Family::Multinomial,
                "gaussian" | "poisson" | "gamma" | "tweedie" | "laplace" | "quantile" | "huber" => {
                    Family::Regression
                }
                other => return Err(refuse(&format!("GBM distribution `{other}`"))),
            };
            // The scorer writes the prediction the family's way: it must fit the category.
            let fits = match family {
                Family::Binomial => meta.category == Category::Binomial,
                Family::Multinomial => meta.category != Category::Regression,
                Family::Regression => meta.category == Category::Regression,
            };
            if !fits {
                return Err(MojoError::Format(format!(
                    "GBM distribution `{distribution}` in a {:?} model",
                    meta.category
                )));
            }
            let link = match ini.raw("link_function") {
                Some("identity") => Link::Identity,
                Some("logit") | Some("ologit") => Link::Logit,
                Some("log") => Link::Log,
                Some("inverse") => Link::Inverse,
                Some("ologlog") => Link::Ologlog,
                Some("oprobit") => Link::Oprobit,
                Some(other) => return Err(refuse(&format!("GBM link function `{other}`"))),
                None => match distribution {
                    "bernoulli" | "quasibinomial" | "modified_huber" => Link::Logit,
                    "poisson" | "gamma" | "tweedie" => Link::Log,
                    _ => Link::Identity,
                },
            };
            Kind::Gbm {
                family,
                link,
                init_f: ini.f64("init_f")?,
            }
        } else {
            Kind::Drf {
                binomial_double_trees: double_trees,
            }
        };
        let mut forest = Forest::new(meta);
        let mut unweighed = false;
        let mut classes = Vec::with_capacity(per_group);
        for class in 0..per_group {
            let mut trees = Vec::with_capacity(groups);
            for group in 0..groups {
                let name = format!("{dir}trees/t{class:02}_{group:03}.bin");
                if archive.exists(&name) {
                    let tree = forest
                        .decode(archive.get(&name)?, meta)
                        .map_err(|e| MojoError::Format(format!("`{name}`: {e}")))?;
                    // Node weights are for explanations only: a tree without them (or with
                    // unreadable ones) still scores, and the model cannot be explained.
                    let aux = format!("{dir}trees/t{class:02}_{group:03}_aux.bin");
                    let weighed = archive.exists(&aux)
                        && match archive.get(&aux) {
                            Ok(bytes) => forest.attach_weights(tree.root, bytes).is_ok(),
                            Err(_) => false,
                        };
                    unweighed |= !weighed;
                    trees.push(tree);
                }
            }
            let blocks = trees.chunks(BLOCK).map(|chunk| Block {
                roots: chunk.iter().map(|t| t.root).collect(),
                depth: chunk.iter().map(|t| t.depth).max().unwrap_or(0),
            });
            classes.push(blocks.collect());
        }
        if unweighed {
            forest.weights = Vec::new();
            forest.weight = Vec::new();
        } else {
            forest.weights.resize(forest.nodes.len(), [0.0; 2]);
            forest.weight.resize(forest.nodes.len(), 0.0);
        }
        Ok(TreeModel {
            kind,
            groups,
            forest,
            classes,
            explainer: std::sync::OnceLock::new(),
        })
    }

    /// genmodel's `scoreAllTrees`: each class's tree sum into `sums`.
    fn sum_trees(&self, row: &[f64], view: &mut [f32], sums: &mut [f64]) {
        self.forest.view.fill(row, view);
        for (blocks, sum) in self.classes.iter().zip(sums) {
            self.forest.sum(blocks, view, row, sum);
        }
    }

    /// `scoreAllTrees` then `unifyPreds`.
    pub fn score0(&self, meta: &Meta, row: &[f64], preds: &mut [f64]) {
        preds.fill(0.0);
        let first = usize::from(meta.category != Category::Regression);
        // The view lives on the stack unless the trees read many columns.
        let mut stack = [0f32; 96];
        let n = self.forest.view.len();
        if n <= stack.len() {
            self.sum_trees(row, &mut stack[..n], &mut preds[first..]);
        } else {
            VIEW.with_borrow_mut(|view| {
                view.resize(n, 0.0);
                self.sum_trees(row, view, &mut preds[first..]);
            });
        }
        match self.kind {
            Kind::Gbm {
                family,
                link,
                init_f,
            } => match family {
                Family::Binomial => {
                    let f = preds[1] + init_f;
                    preds[2] = link.inverse(f);
                    preds[1] = 1.0 - preds[2];
                    meta.finish_classification(row, preds);
                }
                Family::Multinomial => {
                    if meta.nclasses == 2 {
                        preds[1] += init_f;
                        preds[2] = -preds[1];
                    }
                    gbm_rescale(preds);
                    meta.finish_classification(row, preds);
                }
                Family::Regression => preds[0] = link.inverse(preds[0] + init_f),
            },
            Kind::Drf {
                binomial_double_trees,
            } => {
                if meta.category == Category::Regression {
                    preds[0] /= self.groups as f64;
                    return;
                }
                if meta.nclasses == 2 && !binomial_double_trees {
                    preds[1] /= self.groups as f64;
                    preds[2] = 1.0 - preds[1];
                } else {
                    let sum: f64 = preds[1..=meta.nclasses].iter().sum();
                    if sum > 0.0 {
                        for p in &mut preds[1..=meta.nclasses] {
                            *p /= sum;
                        }
                    }
                }
                meta.finish_classification(row, preds);
            }
        }
    }
}

/// How often each kind of split occurs, to show which decoder paths a fixture exercises.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Census {
    pub numeric: usize,
    pub bitset32: usize,
    pub bitset_large: usize,
    pub na_vs_rest: usize,
    pub na_left: usize,
    pub na_right: usize,
    pub stumps: usize,
}

#[cfg(test)]
impl TreeModel {
    pub(crate) fn census(&self) -> Census {
        let forest = &self.forest;
        let is_leaf = |i: u32| forest.nodes[i as usize].children[0] == i;
        let mut c = Census::default();
        for block in self.classes.iter().flatten() {
            c.stumps += block.roots.iter().filter(|&&r| is_leaf(r)).count();
        }
        for (i, node) in forest.nodes.iter().enumerate() {
            if is_leaf(i as u32) {
                continue;
            }
            let (split, na_right) = match node.slot {
                SPECIAL => {
                    let s = &forest.special[node.payload as usize];
                    (s.split, s.na_right)
                }
                slot if slot % 3 == 2 => (Split::NaVsRest, true),
                slot => (Split::Numeric(f32::from_bits(node.payload)), slot % 3 == 1),
            };
            match split {
                Split::Numeric(_) => c.numeric += 1,
                Split::Bitset {
                    offset: 0,
                    nbits: 32,
                    ..
                } => c.bitset32 += 1,
                Split::Bitset { .. } => c.bitset_large += 1,
                Split::NaVsRest => c.na_vs_rest += 1,
            }
            if na_right {
                c.na_right += 1;
            } else {
                c.na_left += 1;
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mojo::model::Scorer;
    use crate::mojo::Mojo;

    /// genmodel's `scoreTree` (ScoreTree2) read straight off the bytes, apart from the decoder,
    /// as the oracle. Like genmodel it keeps the last bitset along the walk (see the module doc).
    fn genmodel_score_tree(tree: &[u8], row: &[f64], domains: &[Option<usize>]) -> f32 {
        let u16_at = |p: usize| u16::from_le_bytes([tree[p], tree[p + 1]]) as usize;
        let i32_at = |p: usize| i32::from_le_bytes(tree[p..p + 4].try_into().unwrap());
        let f32_at = |p: usize| f32::from_le_bytes(tree[p..p + 4].try_into().unwrap());
        let mut p = 0;
        // (offset, nbits, byte position) of the last bitset read.
        let mut bitset: Option<(i32, i32, usize)> = None;
        loop {
            let node_type = tree[p];
            let col = u16_at(p + 1);
            p += 3;
            if col == 65535 {
                return f32_at(p);
            }
            let na_dir = tree[p];
            p += 1;
            let na_vs_rest = na_dir == 1;
            let leftward = na_dir == 2 || na_dir == 4;
            let mut lmask = node_type & 51;
            let equal = node_type & 12;
            let mut split = -1.0f32;
            if !na_vs_rest {
                match equal {
                    0 => {
                        split = f32_at(p);
                        p += 4;
                    }
                    8 => {
                        bitset = Some((0, 32, p));
                        p += 4;
                    }
                    _ => {
                        let (offset, nbits) = (u16_at(p) as i32, i32_at(p + 2));
                        bitset = Some((offset, nbits, p + 6));
                        p += 6 + (((nbits - 1) >> 3) + 1) as usize;
                    }
                }
            }
            let d = row[col];
            let di = d as i32;
            let out_of_range = equal != 0
                && bitset.is_some_and(|(offset, nbits, _)| {
                    let b = di.wrapping_sub(offset);
                    !(b >= 0 && b < nbits)
                });
            let beyond_domain = domains[col].is_some_and(|n| n as i64 <= di as i64);
            let right = if d.is_nan() || out_of_range || beyond_domain {
                !leftward
            } else {
                !na_vs_rest
                    && if equal == 0 {
                        d >= split as f64
                    } else {
                        let (offset, _, at) = bitset.unwrap();
                        let b = (di - offset) as usize;
                        tree[at + (b >> 3)] & (1 << (b & 7)) != 0
                    }
            };
            if right {
                p += match lmask {
                    0 => 1 + tree[p] as usize,
                    1 => 2 + u16_at(p),
                    2 => 3 + (u16_at(p) | (tree[p + 2] as usize) << 16),
                    3 => 4 + i32_at(p) as usize,
                    _ => 4,
                };
                lmask = (node_type & 0xC0) >> 2;
            } else if lmask <= 3 {
                p += lmask as usize + 1;
            }
            if lmask & 16 != 0 {
                return f32_at(p);
            }
        }
    }

    /// Values around every split point of a column, and the edges of f64.
    fn probes(thresholds: &[f32], levels: Option<usize>) -> Vec<f64> {
        let mut v = vec![
            f64::NAN,
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN,
            1e-310,
            -1e-310,
            1e10,
            -1e10,
            0.5,
            -1.0,
        ];
        for &t in thresholds {
            let d = t as f64;
            let (up, down) = (t.next_up() as f64, t.next_down() as f64);
            v.extend([
                d,
                d.next_up(),
                d.next_down(),
                (d + up) / 2.0,
                (d + down) / 2.0,
            ]);
        }
        if let Some(n) = levels {
            v.extend((0..n + 3).map(|l| l as f64));
            v.extend([1.5, n as f64 - 0.5, i32::MAX as f64 + 10.0, -3e9]);
        }
        v
    }

    /// Every tree of every tree fixture, on the fixture rows and on rows with each column
    /// set to values at and around the splits, NaN, ±∞, ±0, unseen and fractional levels:
    /// the leaf reached is the one genmodel's walk over the bytes reaches, bit for bit.
    #[test]
    #[allow(
        clippy::too_many_lines,
        reason = "one test over every fixture model and row"
    )]
    fn every_tree_walks_to_genmodels_leaf() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mojo");
        let mut checked = 0usize;
        for name in [
            "gbm_bin",
            "drf_bin",
            "xrt_bin",
            "gbm_multi",
            "drf_multi",
            "gbm_reg",
            "drf_reg",
            "gbm_syn",
            "drf_syn",
            "drf_bin_double",
            "gbm_poisson",
        ] {
            let bytes = std::fs::read(dir.join(format!("{name}.zip"))).unwrap();
            let mojo = Mojo::load(&bytes).unwrap();
            let Scorer::Tree(model) = &mojo.model.scorer else {
                panic!("{name} is not a tree model")
            };
            let meta = &mojo.model.meta;
            let archive = crate::mojo::Archive::read(&bytes).unwrap();
            let mut files: Vec<&String> = archive
                .entries
                .keys()
                .filter(|k| k.starts_with("trees/t") && !k.ends_with("_aux.bin"))
                .collect();
            files.sort(); // tCC_GGG: class, then group, as the model orders them
            let trees: Vec<(u32, u32)> = model
                .classes
                .iter()
                .flatten()
                .flat_map(|b| b.roots.iter().map(move |&r| (r, b.depth)))
                .collect();
            assert_eq!(trees.len(), files.len(), "{name}");

            let domains: Vec<Option<usize>> =
                (0..meta.nfeatures).map(|c| meta.domain_len(c)).collect();
            let forest = &model.forest;
            let mut thresholds: Vec<Vec<f32>> = vec![Vec::new(); meta.nfeatures];
            for node in &forest.nodes {
                match node.slot {
                    SPECIAL => {
                        let s = &forest.special[node.payload as usize];
                        if let Split::Numeric(t) = s.split {
                            thresholds[s.col as usize].push(t);
                        }
                    }
                    slot if node.children[0] != node.children[1] => {
                        let col = forest.view.columns[slot as usize / 3];
                        thresholds[col as usize].push(f32::from_bits(node.payload));
                    }
                    _ => {}
                }
            }
            let columns: Vec<Vec<f64>> = (0..meta.nfeatures)
                .map(|c| probes(&thresholds[c], domains[c]))
                .collect();

            let (header, body) = {
                let data = std::fs::read_to_string(dir.join(format!(
                    "{}.in.csv",
                    if name.contains("multi") {
                        "iris"
                    } else if name.contains("syn") {
                        "syn"
                    } else {
                        "prostate"
                    }
                )))
                .unwrap();
                let mut lines = data.lines().map(|l| l.split(',').map(str::to_string));
                let header: Vec<String> = lines.next().unwrap().collect();
                (
                    header,
                    lines.map(Iterator::collect).collect::<Vec<Vec<_>>>(),
                )
            };
            let binding = mojo.bind(&header).unwrap();
            let mut rows = Vec::new();
            let mut raw = Vec::new();
            for record in body.iter().take(40) {
                binding.encode(record, &mut raw).unwrap();
                rows.push(raw.clone());
                for (c, values) in columns.iter().enumerate() {
                    for &v in values {
                        let mut probe = raw.clone();
                        probe[c] = v;
                        rows.push(probe);
                    }
                }
            }
            // And rows where every column is a probe at once (a fixed xorshift sequence).
            let mut seed = 0x9E37_79B9_7F4A_7C15u64;
            for _ in 0..2000 {
                let row = columns
                    .iter()
                    .map(|values| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        values[(seed % values.len() as u64) as usize]
                    })
                    .collect();
                rows.push(row);
            }

            let mut view = vec![0f32; forest.view.len()];
            for row in &rows {
                forest.view.fill(row, &mut view);
                for (&(root, depth), file) in trees.iter().zip(&files) {
                    let mut at = root;
                    for _ in 0..depth {
                        at = forest.step(at, &view, row);
                    }
                    let got = forest.leaf_value(at);
                    let want = genmodel_score_tree(archive.get(file).unwrap(), row, &domains);
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{name} {file}: row {row:?}: {got} vs genmodel {want}"
                    );
                    checked += 1;
                }
            }
        }
        eprintln!("{checked} tree walks identical to genmodel's");
    }

    /// The fast split's subtraction against `d >= (double) t` on both NA sides, over edge
    /// values and a sweep of f64 values between neighbouring f32s.
    #[test]
    fn fast_split_is_genmodels_comparison() {
        let thresholds = [
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            0.1,
            -0.1,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-45,
            -1e-45,
            16_777_217.0,
            3.4e38,
        ];
        let mut values = probes(&thresholds, None);
        let mut seed = 12345u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            values.push(f64::from_bits(seed));
        }
        for t in thresholds {
            for na_right in [false, true] {
                let mut forest = Forest {
                    nodes: Vec::new(),
                    special: Vec::new(),
                    bits: Vec::new(),
                    view: View {
                        columns: Vec::new(),
                        index: vec![u32::MAX],
                    },
                    weights: Vec::new(),
                    weight: Vec::new(),
                };
                let slot = forest.view.slot(0, u32::from(na_right));
                forest.nodes.push(Node {
                    payload: (t + 0.0).to_bits(),
                    slot,
                    children: [1, 2],
                });
                forest.leaf(-1.0);
                forest.leaf(1.0);
                let mut view = vec![0f32; forest.view.len()];
                for &d in &values {
                    forest.view.fill(&[d], &mut view);
                    let right = forest.step(0, &view, &[d]) == 2;
                    let want = if d.is_nan() { na_right } else { d >= t as f64 };
                    assert_eq!(right, want, "d = {d:e} ({:#x}), t = {t:e}", d.to_bits());
                }
            }
        }
    }
}

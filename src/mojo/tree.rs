//! GBM and DRF (XRT is DRF): compressed trees decoded once into flat node arrays, then scored
//! as genmodel's `SharedTreeMojoModel` (ScoreTree2, MOJO ≥ 1.20) does.
//!
//! A tree file `trees/tCC_GGG.bin` is the pre-order byte encoding of `DTree.compress`:
//! `u8 node type, u16 column, u8 NA direction, split payload, [left subtree size], left, right`,
//! where a child that is a leaf is its `f32` value (layout in docs/mojo.md). A row goes right when
//! its value is NA — NaN, outside a bitset's range, or a level index beyond the column's domain —
//! and the node sends NAs right, or else when `value >= split` (numeric, compared in f64 against
//! the widened f32) or its level's bit is set. Leaves are summed in f64 per class in
//! (class, group) order, which keeps the sums bit-identical to genmodel's.

use super::ini::Ini;
use super::model::{Meta, Refuse};
use super::prediction::gbm_rescale;
use super::{Archive, Category, MojoError};

#[derive(Debug, Clone, Copy)]
enum Child {
    Node(u32),
    Leaf(f32),
}

#[derive(Debug, Clone, Copy)]
enum Split {
    /// Goes right when `value >= threshold`.
    Numeric(f32),
    /// Goes right when the level's bit is set; `start` indexes the tree's bitset bytes.
    Bitset { offset: i32, nbits: i32, start: u32 },
    /// Non-NA values go left.
    NaVsRest,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    col: u32,
    split: Split,
    na_left: bool,
    /// The column's number of levels when categorical (levels beyond it are NA).
    domain_len: Option<u32>,
    left: Child,
    right: Child,
}

#[derive(Debug)]
pub(crate) struct Tree {
    root: Child,
    nodes: Vec<Node>,
    bits: Vec<u8>,
}

impl Tree {
    fn decode(bytes: &[u8], meta: &Meta) -> Result<Tree, String> {
        let mut tree = Tree {
            root: Child::Leaf(0.0),
            nodes: Vec::new(),
            bits: Vec::new(),
        };
        let mut reader = Reader { bytes, pos: 0 };
        tree.root = if bytes.len() >= 3 && bytes[1] == 0xFF && bytes[2] == 0xFF {
            reader.pos = 3;
            Child::Leaf(reader.f32()?)
        } else {
            tree.node(&mut reader, meta, 0)?
        };
        Ok(tree)
    }

    /// Decodes the node at the reader's position (and its subtrees) and returns it.
    fn node(&mut self, r: &mut Reader, meta: &Meta, depth: usize) -> Result<Child, String> {
        if depth > 1000 {
            return Err("tree deeper than 1000 levels".into());
        }
        let node_type = r.u8()?;
        let col = r.u16()?;
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
                3 => r.i32()? as usize,
                _ => return Err(format!("bad node type {node_type}")),
            }
        };
        let index = self.nodes.len();
        self.nodes.push(Node {
            col: col as u32,
            split,
            na_left: na_dir == NA_LEFT || na_dir == LEFT,
            domain_len: meta.domain_len(col as usize).map(|n| n as u32),
            left: Child::Leaf(0.0),
            right: Child::Leaf(0.0),
        });
        let left_start = r.pos;
        let left = if left_leaf {
            Child::Leaf(r.f32()?)
        } else {
            self.node(r, meta, depth + 1)?
        };
        r.pos = left_start + left_size;
        let right = if right_leaf {
            Child::Leaf(r.f32()?)
        } else {
            self.node(r, meta, depth + 1)?
        };
        self.nodes[index].left = left;
        self.nodes[index].right = right;
        Ok(Child::Node(index as u32))
    }

    #[inline]
    fn score(&self, row: &[f64]) -> f32 {
        let mut at = self.root;
        loop {
            match at {
                Child::Leaf(v) => return v,
                Child::Node(i) => {
                    let node = &self.nodes[i as usize];
                    let d = row[node.col as usize];
                    let di = d as i32; // Java's (int): truncating, saturating, NaN → 0
                    let out_of_range = match node.split {
                        Split::Bitset { offset, nbits, .. } => {
                            let b = di.wrapping_sub(offset);
                            b < 0 || b >= nbits
                        }
                        _ => false,
                    };
                    let beyond_domain = node.domain_len.is_some_and(|n| (n as i64) <= di as i64);
                    let right = if d.is_nan() || out_of_range || beyond_domain {
                        !node.na_left
                    } else {
                        match node.split {
                            Split::NaVsRest => false,
                            Split::Numeric(t) => d >= t as f64,
                            Split::Bitset { offset, start, .. } => {
                                let b = (di - offset) as usize;
                                self.bits[start as usize + (b >> 3)] & (1 << (b & 7)) != 0
                            }
                        }
                    };
                    at = if right { node.right } else { node.left };
                }
            }
        }
    }
}

const NA_VS_REST: u8 = 1;
const NA_LEFT: u8 = 2;
const LEFT: u8 = 4;

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self
            .bytes
            .get(self.pos..self.pos + n)
            .ok_or("tree bytes end early")?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u24(&mut self) -> Result<u32, String> {
        let b = self.take(3)?;
        Ok(u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16)
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn f32(&mut self) -> Result<f32, String> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
}

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
    per_group: usize,
    /// Indexed `class * groups + group`; `None` for trees the MOJO leaves out.
    trees: Vec<Option<Tree>>,
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
        let mut trees = Vec::with_capacity(groups * per_group);
        for class in 0..per_group {
            for group in 0..groups {
                let name = format!("{dir}trees/t{class:02}_{group:03}.bin");
                trees.push(if archive.exists(&name) {
                    let tree = Tree::decode(archive.get(&name)?, meta)
                        .map_err(|e| MojoError::Format(format!("`{name}`: {e}")))?;
                    Some(tree)
                } else {
                    None
                });
            }
        }
        let model = TreeModel {
            kind,
            groups,
            per_group,
            trees,
        };
        for tree in model.trees.iter().flatten() {
            for node in &tree.nodes {
                if node.col as usize >= meta.nfeatures {
                    return Err(MojoError::Format(format!(
                        "a tree splits on column {} of {}",
                        node.col, meta.nfeatures
                    )));
                }
            }
        }
        Ok(model)
    }

    /// `scoreAllTrees` then `unifyPreds`.
    pub fn score0(&self, meta: &Meta, row: &[f64], preds: &mut [f64]) {
        preds.fill(0.0);
        let first = usize::from(meta.category != Category::Regression);
        for class in 0..self.per_group {
            let k = first + class;
            for tree in self.trees[class * self.groups..(class + 1) * self.groups]
                .iter()
                .flatten()
            {
                preds[k] += tree.score(row) as f64;
            }
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
        let mut c = Census::default();
        for tree in self.trees.iter().flatten() {
            if matches!(tree.root, Child::Leaf(_)) {
                c.stumps += 1;
            }
            for node in &tree.nodes {
                match node.split {
                    Split::Numeric(_) => c.numeric += 1,
                    Split::Bitset {
                        offset: 0,
                        nbits: 32,
                        ..
                    } => c.bitset32 += 1,
                    Split::Bitset { .. } => c.bitset_large += 1,
                    Split::NaVsRest => c.na_vs_rest += 1,
                }
                if node.na_left {
                    c.na_left += 1;
                } else {
                    c.na_right += 1;
                }
            }
        }
        c
    }
}

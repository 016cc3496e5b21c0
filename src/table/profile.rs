//! The streaming profile of a CSV: each column's kind, missing count and first distinct
//! values (capped at [`DISTINCT_CAP`]), mergeable across blocks of one file.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::chunks::blocks;
use super::csv_io::{csv_err, headers, read_header, reader};
use super::error::TableError;
use super::field::{is_number, value_of};
use super::held::{Held, Hold, Holding, HOLD_BYTES};
use super::split::{ClassRows, Strata};

/// Distinct values kept per column; past this a column is "high cardinality".
pub const DISTINCT_CAP: usize = 256;

/// What the column's values look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Numeric,
    Categorical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    pub kind: Kind,
    pub missing: u64,
    /// Sorted distinct non-missing values, at most [`DISTINCT_CAP`].
    pub distinct: Vec<String>,
    /// True when there were more distinct values than kept.
    pub distinct_capped: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
}

impl Profile {
    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns.iter().find(|c| c.name == name)
    }
    pub fn names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }
}

/// FxHash (rustc's): the distinct-value sets are looked up once per field, where SipHash's
/// flood resistance buys nothing (the set is capped) and costs a tenth of the profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastHash;

impl std::hash::BuildHasher for FastHash {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Accumulates a [`Profile`] field by field: the sequential reader, each block of a parallel pass and
/// prepare's writer (which profiles `train` and `holdout` as it writes them) share it.
///
/// Distinct values are kept in first-seen order (a hash set beside it for lookups), so that two
/// profilers of consecutive parts of a file [`merge`](Profiler::merge) into exactly what one
/// profiler of the whole file keeps: the first [`DISTINCT_CAP`] values in file order.
#[derive(Debug, Clone)]
pub struct Profiler {
    rows: u64,
    numeric: Vec<bool>,
    /// False for a column known to hold only numbers ([`Profiler::known_numeric`]).
    check_number: Vec<bool>,
    /// How many distinct values a column can hold at most ([`Profiler::known_values`]).
    possible: Vec<usize>,
    missing: Vec<u64>,
    seen: Vec<std::collections::HashSet<Box<str>, FastHash>>,
    order: Vec<Vec<Box<str>>>,
    capped: Vec<bool>,
}

impl Profiler {
    pub fn new(columns: usize) -> Profiler {
        Profiler {
            rows: 0,
            numeric: vec![true; columns],
            check_number: vec![true; columns],
            possible: vec![usize::MAX; columns],
            missing: vec![0; columns],
            seen: vec![Default::default(); columns],
            order: vec![Vec::new(); columns],
            capped: vec![false; columns],
        }
    }

    /// Column `i`'s fields are known to be numbers or missing (a subset of a numeric column's
    /// values): they are not parsed again. The profile is the same, only cheaper.
    pub fn known_numeric(&mut self, i: usize) {
        self.check_number[i] = false;
    }

    /// Column `i` holds at most `n` distinct values (a subset of a column whose profile kept
    /// them all): once `n` were seen, its fields are not looked up any more. The profile is
    /// the same, only cheaper.
    pub fn known_values(&mut self, i: usize, n: usize) {
        self.possible[i] = n;
    }

    /// Counts one row; call [`field`](Profiler::field) for each of its fields.
    pub fn row(&mut self) {
        self.rows += 1;
    }

    pub fn field(&mut self, i: usize, field: &str) {
        match value_of(field) {
            Some(f) => self.value(i, f),
            None => self.missing(i),
        }
    }

    /// Counts a missing field of column `i` ([`field`](Profiler::field) of one).
    pub fn missing(&mut self, i: usize) {
        self.missing[i] += 1;
    }

    /// [`field`](Profiler::field) of a field known to hold value `f`: what
    /// [`value_of`] returned for it (trimmed, not missing), so it is not looked at again.
    pub fn value(&mut self, i: usize, f: &str) {
        if self.numeric[i] && self.check_number[i] && !is_number(f) {
            self.numeric[i] = false;
        }
        if !self.capped[i] && self.seen[i].len() < self.possible[i] && !self.seen[i].contains(f) {
            if self.seen[i].len() >= DISTINCT_CAP {
                self.capped[i] = true;
            } else {
                self.seen[i].insert(f.into());
                self.order[i].push(f.into());
            }
        }
    }

    /// Folds in the profiler of the rows that come right after this one's.
    pub fn merge(&mut self, later: Profiler) {
        self.rows += later.rows;
        for i in 0..self.numeric.len() {
            self.numeric[i] &= later.numeric[i];
            self.missing[i] += later.missing[i];
            if self.capped[i] {
                continue;
            }
            for v in &later.order[i] {
                if self.seen[i].contains(v) {
                    continue;
                }
                if self.seen[i].len() >= DISTINCT_CAP {
                    self.capped[i] = true;
                    break;
                }
                self.seen[i].insert(v.clone());
                self.order[i].push(v.clone());
            }
            // More distinct values than `later` kept: some were never offered above.
            self.capped[i] |= later.capped[i];
        }
    }

    pub fn finish(self, names: Vec<String>) -> Profile {
        let columns = names
            .into_iter()
            .zip(self.order)
            .enumerate()
            .map(|(i, (name, order))| {
                let mut distinct: Vec<String> = order.into_iter().map(String::from).collect();
                distinct.sort_unstable();
                ColumnProfile {
                    name,
                    // An all-missing column stays numeric: nothing says it is text (H2O agrees).
                    kind: if self.numeric[i] {
                        Kind::Numeric
                    } else {
                        Kind::Categorical
                    },
                    missing: self.missing[i],
                    distinct,
                    distinct_capped: self.capped[i],
                }
            })
            .collect();
        Profile {
            rows: self.rows,
            columns,
        }
    }
}

/// Profiles a CSV file in one streaming pass (in blocks on every core when it is large and
/// unquoted, see [`blocks`]).
pub fn profile_csv(path: &Path) -> Result<Profile, TableError> {
    profile_collecting(path, None, |_| Vec::new()).map(|(profile, _)| profile)
}

/// What the profile pass collects for prepare beside the profile, when it reads the file in
/// blocks (else nothing: prepare reads the file itself).
#[derive(Default)]
pub struct Collected {
    /// The rows by class of the target: what a stratified split of these bytes needs.
    pub strata: Option<Strata>,
    /// The values of the columns prepare's fit reads ([`Held`]), within [`HOLD_BYTES`].
    pub held: Option<Held>,
}

/// [`profile_csv`], and from the same pass what prepare needs of these bytes ([`Collected`]):
/// the rows by class of column `target` (when it is one of the file's) and the values of the
/// columns `hold` names (given the file's header).
pub fn profile_collecting(
    path: &Path,
    target: Option<&str>,
    hold: impl FnOnce(&[String]) -> Vec<(usize, Hold)>,
) -> Result<(Profile, Collected), TableError> {
    let names = read_header(path)?;
    let n = names.len();
    let target = target.and_then(|t| names.iter().position(|c| c == t));
    let held_columns = hold(&names);
    let file_bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    let holding = Holding::new(&held_columns, HOLD_BYTES, file_bytes);
    let mut gathered = holding.gather();
    // Block by block, merged in file order as they come.
    let mut all: Option<Profiler> = None;
    let mut strata = Vec::new();
    let whole = blocks(
        path,
        n,
        |_| (Profiler::new(n), ClassRows::default(), holding.part()),
        |(p, classes, held), i, rec| {
            p.row();
            for (i, f) in rec.iter().enumerate() {
                p.field(i, f);
            }
            if let Some(t) = target {
                classes.note(i, rec, t);
            }
            holding.row(held, rec);
        },
        |(p, classes, held), rows| {
            match &mut all {
                Some(all) => all.merge(p),
                None => all = Some(p),
            }
            if target.is_some() {
                strata.push((classes, rows));
            }
            gathered.deliver(held, rows);
        },
    );
    if let (true, Some(all)) = (whole, all) {
        let collected = Collected {
            strata: target.map(|t| Strata::new(t, strata)),
            held: gathered.finish(),
        };
        return Ok((all.finish(names), collected));
    }
    let mut rdr = reader(path)?;
    headers(path, &mut rdr)?;
    let mut profiler = Profiler::new(n);
    let mut record = csv::StringRecord::new();
    while rdr.read_record(&mut record).map_err(|e| csv_err(path, e))? {
        profiler.row();
        for (i, field) in record.iter().enumerate() {
            profiler.field(i, field);
        }
    }
    Ok((profiler.finish(names), Collected::default()))
}

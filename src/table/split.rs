//! The seeded train/holdout split: SplitMix64 row hashes, random or stratified by class, the
//! same on every machine and in every version.

use std::collections::HashMap;
use std::path::Path;

use super::chunks::chunks;
use super::csv_io::{csv_err, headers, read_header, reader};
use super::error::TableError;
use super::field::{is_missing, trim};
use super::profile::FastHash;
use super::row::Record;

/// SplitMix64: a tiny, well-mixed, fully specified generator, so the split is the same on every
/// machine and in every version (independent of H2O's chunk layout).
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// True when row `index` (0-based, data rows) falls into the holdout.
pub fn in_holdout(seed: u64, index: u64, fraction: f64) -> bool {
    let u = (splitmix64(seed ^ splitmix64(index)) >> 11) as f64 / (1u64 << 53) as f64;
    u < fraction
}

/// Salt that makes the sampling draw independent of the holdout draw for the same seed.
pub(super) const SAMPLE_SALT: u64 = 0x5A4D_504C_4531_0001;

/// The seeded position of data row `index` in the split order: a bijection of the index (two
/// SplitMix64 rounds), so no two rows ever tie.
pub fn row_hash(seed: u64, index: u64) -> u64 {
    splitmix64(seed ^ splitmix64(index))
}

/// Per class of the target: the largest row hash in the holdout (none: no row held out).
type Cuts = HashMap<String, Option<u64>, FastHash>;

/// Which side of the split a row falls on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Train,
    Holdout,
}

/// The train/holdout split (and the optional sample before it).
///
/// *Random* (regression, or `stratify = false`): row *i* goes to the holdout when
/// `row_hash(seed, i)` maps below `holdout` (see [`in_holdout`]).
/// *Stratified* (classification by default): within each class of the target (a missing
/// target is a class of its own), rows are ordered by `row_hash(seed, i)` and the first
/// `round(holdout × n_class)` go to the holdout. Fitting reads the target once and keeps one
/// `u64` per sampled row (8 bytes × rows); the split itself then streams.
///
/// Stratified from [`Strata`] (which know every row's class), the split also keeps each row's
/// side as bits over the data rows (1 bit a row, and 1 more for the sample: 1.2 MB per 10M
/// rows), set from the same cuts, so [`Split::side`] gives what the class lookup would give
/// without reading the record.
#[derive(Debug, Clone)]
pub struct Split {
    seed: u64,
    holdout: f64,
    sample: Option<f64>,
    /// Stratified: the target's column index and, per class, the largest hash in the holdout.
    strata: Option<(usize, Cuts)>,
    /// Stratified from [`Strata`]: each row's side, by its index.
    sides: Option<Sides>,
}

/// The sides of data rows `0..rows` as bits (bit *i* of word *i*/64): `held`, set when the
/// row is in the holdout, and, with a sample, `kept`, set when the sample keeps the row.
#[derive(Clone)]
struct Sides {
    rows: u64,
    held: Vec<u64>,
    kept: Option<Vec<u64>>,
}

impl Sides {
    fn new(rows: u64, sample: bool) -> Sides {
        let words = rows.div_ceil(64) as usize;
        Sides {
            rows,
            held: vec![0; words],
            kept: sample.then(|| vec![0; words]),
        }
    }
}

fn set(bits: &mut [u64], i: u64) {
    bits[(i >> 6) as usize] |= 1 << (i & 63);
}

fn get(bits: &[u64], i: u64) -> bool {
    bits[(i >> 6) as usize] >> (i & 63) & 1 == 1
}

/// The counts, not the bits (a megabyte per 8M rows).
impl std::fmt::Debug for Sides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ones = |b: &[u64]| b.iter().map(|w| w.count_ones() as u64).sum::<u64>();
        f.debug_struct("Sides")
            .field("rows", &self.rows)
            .field("held", &ones(&self.held))
            .field("kept", &self.kept.as_deref().map(ones))
            .finish()
    }
}

impl Split {
    pub fn random(seed: u64, holdout: f64, sample: Option<f64>) -> Split {
        Split {
            seed,
            holdout,
            sample,
            strata: None,
            sides: None,
        }
    }

    /// A stratified split on column `target` of `input`: from the rows by class in `known`
    /// when they are of that column (an earlier pass over the same bytes collected them, see
    /// [`Strata`]), else from one streaming pass (chunked when the file allows).
    pub fn stratified(
        input: &Path,
        target: usize,
        seed: u64,
        holdout: f64,
        sample: Option<f64>,
        known: Option<Strata>,
    ) -> Result<Split, TableError> {
        let mut split = Split::random(seed, holdout, sample);
        let usable = |s: &Strata| s.target == target && s.parts.iter().all(|p| !p.0.too_many);
        let strata = match known.filter(usable) {
            Some(s) => Some(s),
            None => {
                let n = read_header(input)?.len();
                chunks(
                    input,
                    n,
                    |_| ClassRows::default(),
                    |m, i, rec| {
                        m.note(i, rec, target);
                    },
                )
                .map(|parts| Strata { target, parts })
                .filter(usable)
            }
        };
        let mut classes: HashMap<String, Vec<u64>, FastHash> = HashMap::default();
        let mut sides = None;
        match &strata {
            Some(Strata { parts, .. }) => {
                // The indices become global and the hashes are computed chunk by chunk.
                let total = parts.iter().map(|(_, rows)| rows).sum();
                let mut bits = Sides::new(total, sample.is_some());
                let mut offset = 0u64;
                for (m, rows) in parts {
                    for (class, local) in &m.rows {
                        if !classes.contains_key(class) {
                            classes.insert(class.clone(), Vec::new());
                        }
                        let hashes = classes.get_mut(class).expect("just inserted");
                        for &l in local {
                            let i = offset + l as u64;
                            if split.sampled(i) {
                                hashes.push(row_hash(seed, i));
                                if let Some(kept) = &mut bits.kept {
                                    set(kept, i);
                                }
                            }
                        }
                    }
                    offset += rows;
                }
                sides = Some(bits);
            }
            None => split.read_classes(input, target, &mut classes)?,
        }
        let cuts: Cuts = classes
            .into_iter()
            .map(|(class, mut hashes)| {
                let k = (holdout * hashes.len() as f64).round() as usize;
                let cut = (k > 0).then(|| *hashes.select_nth_unstable(k - 1).1);
                (class, cut)
            })
            .collect();
        if let (Some(Strata { parts, .. }), Some(bits)) = (strata, &mut sides) {
            // The same test as `side`'s class lookup, once a row, the hash computed again
            // (cheaper than keeping each hash's row).
            let mut offset = 0u64;
            for (m, rows) in parts {
                for (class, local) in m.rows {
                    let Some(&Some(cut)) = cuts.get(&class) else {
                        continue;
                    };
                    for l in local {
                        let i = offset + l as u64;
                        let kept = bits.kept.as_deref().is_none_or(|k| get(k, i));
                        if kept && row_hash(seed, i) <= cut {
                            set(&mut bits.held, i);
                        }
                    }
                }
                offset += rows;
            }
        }
        split.strata = Some((target, cuts));
        split.sides = sides;
        Ok(split)
    }

    /// The sampled rows' hashes by class, from one sequential pass.
    fn read_classes(
        &self,
        input: &Path,
        target: usize,
        classes: &mut HashMap<String, Vec<u64>, FastHash>,
    ) -> Result<(), TableError> {
        let mut rdr = reader(input)?;
        headers(input, &mut rdr)?;
        let mut record = csv::StringRecord::new();
        let mut index = 0u64;
        while rdr
            .read_record(&mut record)
            .map_err(|e| csv_err(input, e))?
        {
            let i = index;
            index += 1;
            if !self.sampled(i) {
                continue;
            }
            let class = class_of(record.get(target).unwrap_or(""));
            classes
                .entry(class.to_string())
                .or_default()
                .push(row_hash(self.seed, i));
        }
        Ok(())
    }

    pub fn is_stratified(&self) -> bool {
        self.strata.is_some()
    }

    fn sampled(&self, index: u64) -> bool {
        self.sample
            .is_none_or(|rate| in_holdout(self.seed ^ SAMPLE_SALT, index, rate))
    }

    /// [`side`](Split::side) by a row's index alone, when its fields are not needed: a random
    /// split, or a stratified one whose sides were set for `rows` data rows (from [`Strata`]).
    /// `None` when the split reads each row's target.
    pub fn by_index(&self, rows: u64) -> Option<impl Fn(u64) -> Option<Side> + '_> {
        /// A row whose fields are never read.
        struct NoFields;
        impl Record for NoFields {
            fn get(&self, _: usize) -> Option<&str> {
                None
            }
        }
        let known = match &self.sides {
            Some(sides) => sides.rows == rows,
            None => self.strata.is_none(),
        };
        known.then_some(move |i| self.side(i, &NoFields))
    }

    /// The side of data row `index` (0-based), or `None` when the sample leaves it out.
    pub fn side(&self, index: u64, record: &impl Record) -> Option<Side> {
        if let Some(sides) = self.sides.as_ref().filter(|s| index < s.rows) {
            if sides.kept.as_deref().is_some_and(|k| !get(k, index)) {
                return None;
            }
            return Some(if get(&sides.held, index) {
                Side::Holdout
            } else {
                Side::Train
            });
        }
        if !self.sampled(index) {
            return None;
        }
        let held = match &self.strata {
            None => in_holdout(self.seed, index, self.holdout),
            Some((target, cuts)) => {
                let class = class_of(record.get(*target).unwrap_or(""));
                match cuts.get(class) {
                    Some(Some(cut)) => row_hash(self.seed, index) <= *cut,
                    _ => false,
                }
            }
        };
        Some(if held { Side::Holdout } else { Side::Train })
    }
}

/// The data rows of each class of the target, as chunked passes collect them: what a
/// stratified split needs from the data, whatever its seed, fraction or sample. The source's
/// profile pass collects them too (`profile_collecting`), so that a cold run's prepare need
/// not read the data once more for its split.
pub struct Strata {
    /// The target's column index.
    pub target: usize,
    /// Each chunk's rows by class, and its row count, in file order.
    parts: Vec<(ClassRows, u64)>,
}

impl Strata {
    pub(super) fn new(target: usize, parts: Vec<(ClassRows, u64)>) -> Strata {
        Strata { target, parts }
    }
}

/// One chunk's rows by class of the target (chunk-local indices, 4 bytes a row).
#[derive(Default)]
pub(super) struct ClassRows {
    rows: HashMap<String, Vec<u32>, FastHash>,
    /// More classes than a classification target may have, or more rows than a `u32`
    /// counts: the split reads the data itself.
    too_many: bool,
}

impl ClassRows {
    /// Notes row `local` (of its chunk), whose target is field `target` of `rec`.
    pub(super) fn note(&mut self, local: u64, rec: &impl Record, target: usize) {
        if self.too_many {
            return;
        }
        let Ok(i) = u32::try_from(local) else {
            self.too_many = true;
            self.rows.clear();
            return;
        };
        let class = class_of(rec.get(target).unwrap_or(""));
        if let Some(v) = self.rows.get_mut(class) {
            v.push(i);
        } else if self.rows.len() > super::DISTINCT_CAP {
            self.too_many = true;
            self.rows.clear();
        } else {
            self.rows.insert(class.to_string(), vec![i]);
        }
    }
}

/// A target value as a stratum: trimmed, missing as the empty class.
pub(super) fn class_of(field: &str) -> &str {
    if is_missing(field) {
        ""
    } else {
        trim(field)
    }
}

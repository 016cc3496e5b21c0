//! Tabular data as mlbuild reads it: CSV profiling, column kinds and the seeded split.
//!
//! Everything here streams row by row, so memory stays bounded by the number of columns (and
//! the capped set of distinct values kept per column), not by the file size.
//! A field is missing when it is empty or `NA` (after trimming), as H2O's parser treats them.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Distinct values kept per column; past this a column is "high cardinality".
pub const DISTINCT_CAP: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot read `{path}`")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` line {line}: {message}")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("`{path}` has no header row")]
    Empty { path: PathBuf },
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl TableError {
    pub fn hint(&self) -> Option<String> {
        match self {
            TableError::Csv { .. } => Some("every row must have as many fields as the header; quote fields that contain commas".into()),
            _ => None,
        }
    }
}

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

pub fn is_missing(field: &str) -> bool {
    let f = field.trim();
    f.is_empty() || f == "NA"
}

fn reader(path: &Path) -> Result<csv::Reader<BufReader<File>>, TableError> {
    let file = File::open(path).map_err(|source| TableError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(BufReader::with_capacity(1 << 20, file)))
}

fn csv_err(path: &Path, e: csv::Error) -> TableError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("expected {expected_len} fields (as in the header), found {len}")
        }
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".to_string(),
        _ => e.to_string(),
    };
    TableError::Csv {
        path: path.to_path_buf(),
        line,
        message,
    }
}

fn headers(path: &Path, rdr: &mut csv::Reader<BufReader<File>>) -> Result<Vec<String>, TableError> {
    let h = rdr.headers().map_err(|e| csv_err(path, e))?;
    if h.is_empty() {
        return Err(TableError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(h.iter().map(|s| s.trim().to_string()).collect())
}

/// Reads just the header row.
pub fn read_header(path: &Path) -> Result<Vec<String>, TableError> {
    headers(path, &mut reader(path)?)
}

/// Profiles a CSV file in one streaming pass.
pub fn profile_csv(path: &Path) -> Result<Profile, TableError> {
    let mut rdr = reader(path)?;
    let names = headers(path, &mut rdr)?;
    let n = names.len();
    let mut numeric = vec![true; n];
    let mut missing = vec![0u64; n];
    let mut distinct: Vec<BTreeSet<String>> = vec![BTreeSet::new(); n];
    let mut capped = vec![false; n];
    let mut rows = 0u64;
    let mut record = csv::StringRecord::new();
    while rdr.read_record(&mut record).map_err(|e| csv_err(path, e))? {
        rows += 1;
        for (i, field) in record.iter().enumerate() {
            if is_missing(field) {
                missing[i] += 1;
                continue;
            }
            let f = field.trim();
            if numeric[i] && f.parse::<f64>().is_err() {
                numeric[i] = false;
            }
            if !capped[i] && !distinct[i].contains(f) {
                if distinct[i].len() >= DISTINCT_CAP {
                    capped[i] = true;
                } else {
                    distinct[i].insert(f.to_string());
                }
            }
        }
    }
    let columns = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| ColumnProfile {
            name,
            // An all-missing column stays numeric: nothing says it is text (H2O agrees).
            kind: if numeric[i] {
                Kind::Numeric
            } else {
                Kind::Categorical
            },
            missing: missing[i],
            distinct: distinct[i].iter().cloned().collect(),
            distinct_capped: capped[i],
        })
        .collect();
    Ok(Profile { rows, columns })
}

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
const SAMPLE_SALT: u64 = 0x5A4D_504C_4531_0001;

/// The seeded position of data row `index` in the split order: a bijection of the index (two
/// SplitMix64 rounds), so no two rows ever tie.
pub fn row_hash(seed: u64, index: u64) -> u64 {
    splitmix64(seed ^ splitmix64(index))
}

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
#[derive(Debug, Clone)]
pub struct Split {
    seed: u64,
    holdout: f64,
    sample: Option<f64>,
    /// Stratified: the target's column index and, per class, the largest hash in the holdout.
    strata: Option<(usize, HashMap<String, Option<u64>>)>,
}

impl Split {
    pub fn random(seed: u64, holdout: f64, sample: Option<f64>) -> Split {
        Split {
            seed,
            holdout,
            sample,
            strata: None,
        }
    }

    /// A stratified split on column `target` of `input` (one streaming pass).
    pub fn stratified(
        input: &Path,
        target: usize,
        seed: u64,
        holdout: f64,
        sample: Option<f64>,
    ) -> Result<Split, TableError> {
        let mut split = Split::random(seed, holdout, sample);
        let mut rdr = reader(input)?;
        headers(input, &mut rdr)?;
        let mut classes: HashMap<String, Vec<u64>> = HashMap::new();
        let mut record = csv::StringRecord::new();
        let mut index = 0u64;
        while rdr
            .read_record(&mut record)
            .map_err(|e| csv_err(input, e))?
        {
            let i = index;
            index += 1;
            if !split.sampled(i) {
                continue;
            }
            let class = class_of(record.get(target).unwrap_or(""));
            classes
                .entry(class.to_string())
                .or_default()
                .push(row_hash(seed, i));
        }
        let cuts = classes
            .into_iter()
            .map(|(class, mut hashes)| {
                let k = (holdout * hashes.len() as f64).round() as usize;
                let cut = (k > 0).then(|| *hashes.select_nth_unstable(k - 1).1);
                (class, cut)
            })
            .collect();
        split.strata = Some((target, cuts));
        Ok(split)
    }

    pub fn is_stratified(&self) -> bool {
        self.strata.is_some()
    }

    fn sampled(&self, index: u64) -> bool {
        self.sample
            .is_none_or(|rate| in_holdout(self.seed ^ SAMPLE_SALT, index, rate))
    }

    /// The side of data row `index` (0-based), or `None` when the sample leaves it out.
    pub fn side(&self, index: u64, record: &csv::StringRecord) -> Option<Side> {
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

/// A target value as a stratum: trimmed, missing as the empty class.
fn class_of(field: &str) -> &str {
    if is_missing(field) {
        ""
    } else {
        field.trim()
    }
}

/// Opens a CSV reader on `path` (header row expected).
pub fn open(path: &Path) -> Result<(csv::Reader<BufReader<File>>, Vec<String>), TableError> {
    let mut rdr = reader(path)?;
    let names = headers(path, &mut rdr)?;
    Ok((rdr, names))
}

/// Reads the next record, naming the file and line on error.
pub fn next_record(
    path: &Path,
    rdr: &mut csv::Reader<BufReader<File>>,
    record: &mut csv::StringRecord,
) -> Result<bool, TableError> {
    rdr.read_record(record).map_err(|e| csv_err(path, e))
}

/// A buffered CSV writer on a new file at `path`.
pub fn create(path: &Path) -> Result<csv::Writer<BufWriter<File>>, TableError> {
    let f = File::create(path).map_err(|source| TableError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(csv::Writer::from_writer(BufWriter::with_capacity(
        1 << 20,
        f,
    )))
}

/// Maps a CSV write error to [`TableError::Write`] for `path`.
pub fn write_err(path: &Path) -> impl Fn(csv::Error) -> TableError + '_ {
    move |e| TableError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Flushes a writer created by [`create`].
pub fn finish(path: &Path, mut w: csv::Writer<BufWriter<File>>) -> Result<(), TableError> {
    w.flush().map_err(|source| TableError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_infers_kinds_and_counts_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        std::fs::write(&p, "a,b,c\n1,x,\n2.5,y,NA\nNA,x,\n").unwrap();
        let prof = profile_csv(&p).unwrap();
        assert_eq!(prof.rows, 3);
        assert_eq!(prof.columns[0].kind, Kind::Numeric);
        assert_eq!(prof.columns[0].missing, 1);
        assert_eq!(prof.columns[1].kind, Kind::Categorical);
        assert_eq!(prof.columns[1].distinct, vec!["x", "y"]);
        assert_eq!(prof.columns[2].missing, 3);
    }

    #[test]
    fn split_is_deterministic_and_near_the_fraction() {
        let held: usize = (0..10_000).filter(|&i| in_holdout(42, i, 0.2)).count();
        assert!((1800..2200).contains(&held), "{held}");
        let again: usize = (0..10_000).filter(|&i| in_holdout(42, i, 0.2)).count();
        assert_eq!(held, again);
        let other: Vec<bool> = (0..100).map(|i| in_holdout(7, i, 0.2)).collect();
        let base: Vec<bool> = (0..100).map(|i| in_holdout(42, i, 0.2)).collect();
        assert_ne!(other, base, "the seed matters");
    }

    #[test]
    fn stratified_split_holds_out_round_fraction_of_each_class() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        // 70 of class a, 25 of b, 5 of c, 3 missing targets, interleaved.
        let mut text = String::from("x,y\n");
        let mut expected: HashMap<&str, usize> = HashMap::new();
        for i in 0..103 {
            let class = match i {
                100..=102 => "",
                _ if i % 20 == 0 => "c",
                _ if i % 4 == 1 => "b",
                _ => "a",
            };
            *expected.entry(class).or_default() += 1;
            text.push_str(&format!("{i},{class}\n"));
        }
        assert_eq!(expected["c"], 5);
        std::fs::write(&p, &text).unwrap();
        let split = Split::stratified(&p, 1, 42, 0.2, None).unwrap();
        assert!(split.is_stratified());
        let mut rdr = reader(&p).unwrap();
        let mut held: HashMap<String, usize> = HashMap::new();
        let mut rec = csv::StringRecord::new();
        let mut i = 0;
        while rdr.read_record(&mut rec).unwrap() {
            if split.side(i, &rec) == Some(Side::Holdout) {
                *held.entry(rec[1].to_string()).or_default() += 1;
            }
            i += 1;
        }
        for (class, n) in &expected {
            let want = (0.2 * *n as f64).round() as usize;
            assert_eq!(
                held.get(*class).copied().unwrap_or(0),
                want,
                "class {class:?} of {n}"
            );
        }
        // Deterministic; another seed picks other rows of the same sizes.
        let again = Split::stratified(&p, 1, 42, 0.2, None).unwrap();
        let other = Split::stratified(&p, 1, 7, 0.2, None).unwrap();
        let sides = |s: &Split| -> Vec<Option<Side>> {
            let mut rdr = reader(&p).unwrap();
            let mut rec = csv::StringRecord::new();
            let mut out = Vec::new();
            let mut i = 0;
            while rdr.read_record(&mut rec).unwrap() {
                out.push(s.side(i, &rec));
                i += 1;
            }
            out
        };
        assert_eq!(sides(&split), sides(&again));
        assert_ne!(sides(&split), sides(&other));
        let count = |v: Vec<Option<Side>>| v.iter().filter(|s| **s == Some(Side::Holdout)).count();
        assert_eq!(count(sides(&split)), count(sides(&other)));
    }

    #[test]
    fn random_split_is_the_historical_one() {
        let s = Split::random(42, 0.2, None);
        let rec = csv::StringRecord::new();
        for i in 0..1000 {
            let want = if in_holdout(42, i, 0.2) {
                Side::Holdout
            } else {
                Side::Train
            };
            assert_eq!(s.side(i, &rec), Some(want));
        }
    }

    #[test]
    fn unequal_rows_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        std::fs::write(&p, "a,b\n1,2\n3\n").unwrap();
        let err = profile_csv(&p).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
    }
}

//! Tabular data as mlbuild reads it: CSV profiling, column kinds and the seeded split.
//!
//! Everything here streams row by row, so memory stays bounded by the number of columns (and
//! the capped set of distinct values kept per column), not by the file size.
//! A field is missing when it is empty or `NA` (after trimming), as H2O's parser treats them.

use std::collections::BTreeSet;
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

/// Result of [`split_csv`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitCounts {
    pub train_rows: u64,
    pub holdout_rows: u64,
}

/// Salt that makes the sampling draw independent of the holdout draw for the same seed.
const SAMPLE_SALT: u64 = 0x5A4D_504C_4531_0001;

/// How rows are split: the seed, the holdout fraction, and an optional sampling fraction.
#[derive(Debug, Clone, Copy)]
pub struct SplitSpec {
    pub seed: u64,
    pub holdout: f64,
    pub sample: Option<f64>,
}

/// Streams `input` into `train` and `holdout`, keeping only `keep` columns (in input order),
/// with the seeded per-row split (rows outside the sample are skipped first). Output CSV is
/// normalised (trimmed fields, minimal quoting).
pub fn split_csv(
    input: &Path,
    keep: &[String],
    spec: SplitSpec,
    train: &Path,
    holdout: &Path,
) -> Result<SplitCounts, TableError> {
    let SplitSpec {
        seed,
        holdout: fraction,
        sample,
    } = spec;
    let mut rdr = reader(input)?;
    let names = headers(input, &mut rdr)?;
    let idx: Vec<usize> = keep
        .iter()
        .filter_map(|k| names.iter().position(|n| n == k))
        .collect();
    let open = |p: &Path| -> Result<csv::Writer<BufWriter<File>>, TableError> {
        let f = File::create(p).map_err(|source| TableError::Write {
            path: p.to_path_buf(),
            source,
        })?;
        Ok(csv::Writer::from_writer(BufWriter::with_capacity(
            1 << 20,
            f,
        )))
    };
    let mut w_train = open(train)?;
    let mut w_hold = open(holdout)?;
    let werr = |p: &Path| {
        let p = p.to_path_buf();
        move |e: csv::Error| TableError::Write {
            path: p.clone(),
            source: std::io::Error::other(e.to_string()),
        }
    };
    let header: Vec<&str> = idx.iter().map(|&i| names[i].as_str()).collect();
    w_train.write_record(&header).map_err(werr(train))?;
    w_hold.write_record(&header).map_err(werr(holdout))?;
    let mut counts = SplitCounts {
        train_rows: 0,
        holdout_rows: 0,
    };
    let mut record = csv::StringRecord::new();
    let mut row = 0u64;
    while rdr
        .read_record(&mut record)
        .map_err(|e| csv_err(input, e))?
    {
        let index = row;
        row += 1;
        if let Some(rate) = sample {
            if !in_holdout(seed ^ SAMPLE_SALT, index, rate) {
                continue;
            }
        }
        let out = idx.iter().map(|&i| record.get(i).unwrap_or("").trim());
        if in_holdout(seed, index, fraction) {
            w_hold.write_record(out).map_err(werr(holdout))?;
            counts.holdout_rows += 1;
        } else {
            w_train.write_record(out).map_err(werr(train))?;
            counts.train_rows += 1;
        }
    }
    w_train.flush().map_err(|source| TableError::Write {
        path: train.to_path_buf(),
        source,
    })?;
    w_hold.flush().map_err(|source| TableError::Write {
        path: holdout.to_path_buf(),
        source,
    })?;
    Ok(counts)
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
    fn unequal_rows_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        std::fs::write(&p, "a,b\n1,2\n3\n").unwrap();
        let err = profile_csv(&p).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
    }
}

//! Drift between two prepared data sets: the population stability index (PSI) per column.
//!
//! `PSI = Σ_bins (a − e) · ln(a / e)`, where `e` is the bin's share of the *reference* rows
//! (the training data of the version tagged `production`) and `a` its share of the *current*
//! rows (this run's prepared training rows).
//!
//! Bins. Numeric columns: the reference's deciles — cut points at the 10th, 20th, …, 90th
//! percentile of its non-missing values (duplicates removed, so a column with few distinct
//! values has fewer bins); a value goes to the first bin whose upper cut is ≥ it, values above
//! the last cut to the last bin. Categorical columns: one bin per value seen in either data set
//! (a new category is drift too). Both kinds get one more bin for missing values, so a change
//! in the null rate shows up. The cut points come from a deterministic reservoir sample of at
//! most [`RESERVOIR`] reference values per column, so memory stays bounded by the number of
//! columns; bins are then counted over all rows of both data sets.
//!
//! Empty bins: a share of 0 is replaced by [`EPSILON`] (1e-4) before the formula (without
//! renormalising), so a bin present on one side only contributes a large but finite term; a bin
//! empty on both sides contributes nothing. Categorical columns with more than
//! [`MAX_CATEGORIES`] distinct values are not compared (reported as skipped).

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use crate::config::ColumnType;
use crate::table::{self, is_missing, splitmix64, TableError};

/// Stands in for a bin share of zero.
pub const EPSILON: f64 = 1e-4;
/// Reference values kept per numeric column to find the decile cut points.
pub const RESERVOIR: usize = 65_536;
/// Categorical columns with more distinct values than this are skipped.
pub const MAX_CATEGORIES: usize = 10_000;

/// PSI of `actual` bin counts against `expected` bin counts (same bins, same order).
pub fn psi(expected: &[u64], actual: &[u64]) -> f64 {
    let (ne, na) = (
        expected.iter().sum::<u64>().max(1) as f64,
        actual.iter().sum::<u64>().max(1) as f64,
    );
    expected
        .iter()
        .zip(actual)
        .filter(|(e, a)| **e > 0 || **a > 0)
        .map(|(e, a)| {
            let e = (*e as f64 / ne).max(EPSILON);
            let a = (*a as f64 / na).max(EPSILON);
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// Decile cut points of `values` (sorted in place), duplicates removed.
pub fn decile_cuts(values: &mut [f64]) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let mut cuts: Vec<f64> = Vec::new();
    if n == 0 {
        return cuts;
    }
    for k in 1..10 {
        // The k-th decile: the smallest value with at least k/10 of the values at or below it.
        let idx = ((k * n).div_ceil(10)).max(1) - 1;
        let c = values[idx.min(n - 1)];
        if cuts.last() != Some(&c) {
            cuts.push(c);
        }
    }
    // A cut at the maximum leaves its upper bin empty in the reference: drop it.
    if cuts.last() == values.last() {
        cuts.pop();
    }
    cuts
}

/// The bin of a numeric value given the cut points (`cuts.len()` bins + 1).
fn numeric_bin(cuts: &[f64], x: f64) -> usize {
    cuts.partition_point(|c| *c < x)
}

/// One column's comparison.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ColumnDrift {
    pub column: String,
    pub kind: &'static str,
    /// `None` when the column was not compared (see `note`).
    pub psi: Option<f64>,
    pub bins: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

enum Acc {
    Numeric {
        sample: Vec<f64>,
        seen: u64,
        cuts: Vec<f64>,
        reference: Vec<u64>,
        current: Vec<u64>,
    },
    Categorical {
        reference: HashMap<String, u64>,
        current: HashMap<String, u64>,
        too_many: bool,
    },
}

/// Compares `columns` (name, type; types as prepared now) of `current` against `reference`.
/// Columns absent from the reference are reported with a note and no PSI.
#[allow(
    clippy::too_many_lines,
    reason = "the PSI comparison: bins from one side, counts from the other, per column, sharing the bins"
)]
pub fn compare(
    reference: &Path,
    current: &Path,
    columns: &[(String, ColumnType)],
) -> Result<Vec<ColumnDrift>, TableError> {
    let ref_names = table::read_header(reference)?;
    let cur_names = table::read_header(current)?;
    let mut out = Vec::new();
    // (column, index in reference, index in current, accumulator)
    let mut cols: Vec<(String, usize, usize, Acc)> = Vec::new();
    for (name, ty) in columns {
        let kind = if *ty == ColumnType::Numeric {
            "numeric"
        } else {
            "categorical"
        };
        let (Some(r), Some(c)) = (
            ref_names.iter().position(|n| n == name),
            cur_names.iter().position(|n| n == name),
        ) else {
            out.push(ColumnDrift {
                column: name.clone(),
                kind,
                psi: None,
                bins: 0,
                note: Some("not in the reference data".into()),
            });
            continue;
        };
        let acc = if *ty == ColumnType::Numeric {
            Acc::Numeric {
                sample: Vec::new(),
                seen: 0,
                cuts: Vec::new(),
                reference: Vec::new(),
                current: Vec::new(),
            }
        } else {
            Acc::Categorical {
                reference: HashMap::new(),
                current: HashMap::new(),
                too_many: false,
            }
        };
        cols.push((name.clone(), r, c, acc));
    }
    let mut record = csv::StringRecord::new();
    // Pass 1: reservoir samples (numeric) and category counts (reference).
    let (mut rdr, _) = table::open(reference)?;
    let mut row = 0u64;
    while table::next_record(reference, &mut rdr, &mut record)? {
        row += 1;
        for (ci, (_, r, _, acc)) in cols.iter_mut().enumerate() {
            let field = record.get(*r).unwrap_or("");
            match acc {
                Acc::Numeric { sample, seen, .. } => {
                    let Some(x) = parse(field) else { continue };
                    *seen += 1;
                    if sample.len() < RESERVOIR {
                        sample.push(x);
                    } else {
                        // Algorithm R with a fixed generator: the same file gives the same sample.
                        let j = splitmix64(row ^ ((ci as u64) << 48)) % *seen;
                        if (j as usize) < RESERVOIR {
                            sample[j as usize] = x;
                        }
                    }
                }
                Acc::Categorical {
                    reference,
                    too_many,
                    ..
                } => count(reference, field, too_many),
            }
        }
    }
    for (_, _, _, acc) in cols.iter_mut() {
        if let Acc::Numeric {
            sample,
            cuts,
            reference,
            current,
            ..
        } = acc
        {
            *cuts = decile_cuts(sample);
            *sample = Vec::new();
            *reference = vec![0; cuts.len() + 2];
            *current = vec![0; cuts.len() + 2];
        }
    }
    // Pass 2 (reference, numeric bins) and pass 3 (current, everything).
    for (path, is_ref) in [(reference, true), (current, false)] {
        if is_ref && !cols.iter().any(|c| matches!(c.3, Acc::Numeric { .. })) {
            continue;
        }
        let (mut rdr, _) = table::open(path)?;
        while table::next_record(path, &mut rdr, &mut record)? {
            for (_, r, c, acc) in cols.iter_mut() {
                let field = record.get(if is_ref { *r } else { *c }).unwrap_or("");
                match acc {
                    Acc::Numeric {
                        cuts,
                        reference,
                        current,
                        ..
                    } => {
                        let bin = parse(field).map_or(cuts.len() + 1, |x| numeric_bin(cuts, x));
                        if is_ref {
                            reference[bin] += 1
                        } else {
                            current[bin] += 1
                        }
                    }
                    Acc::Categorical {
                        current, too_many, ..
                    } if !is_ref => count(current, field, too_many),
                    Acc::Categorical { .. } => {}
                }
            }
        }
    }
    for (name, _, _, acc) in cols {
        out.push(match acc {
            Acc::Numeric {
                reference, current, ..
            } => ColumnDrift {
                column: name,
                kind: "numeric",
                psi: Some(psi(&reference, &current)),
                bins: reference.len(),
                note: None,
            },
            Acc::Categorical { too_many: true, .. } => ColumnDrift {
                column: name,
                kind: "categorical",
                psi: None,
                bins: 0,
                note: Some(format!(
                    "more than {MAX_CATEGORIES} distinct values: not compared"
                )),
            },
            Acc::Categorical {
                reference, current, ..
            } => {
                let mut keys: Vec<&String> = reference.keys().chain(current.keys()).collect();
                keys.sort();
                keys.dedup();
                let e: Vec<u64> = keys
                    .iter()
                    .map(|k| reference.get(*k).copied().unwrap_or(0))
                    .collect();
                let a: Vec<u64> = keys
                    .iter()
                    .map(|k| current.get(*k).copied().unwrap_or(0))
                    .collect();
                ColumnDrift {
                    column: name,
                    kind: "categorical",
                    psi: Some(psi(&e, &a)),
                    bins: keys.len(),
                    note: None,
                }
            }
        });
    }
    Ok(out)
}

fn parse(field: &str) -> Option<f64> {
    if is_missing(field) {
        return None;
    }
    field.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Counts a categorical value; missing values count under the empty key (their own bin).
fn count(counts: &mut HashMap<String, u64>, field: &str, too_many: &mut bool) {
    if *too_many {
        return;
    }
    let key = if is_missing(field) { "" } else { field.trim() };
    if let Some(n) = counts.get_mut(key) {
        *n += 1;
    } else if counts.len() >= MAX_CATEGORIES {
        *too_many = true;
        counts.clear();
    } else {
        counts.insert(key.to_string(), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_matches_a_hand_computation() {
        // Shares 0.5/0.5 → 0.25/0.75: (0.25−0.5)·ln(0.5) + (0.75−0.5)·ln(1.5)
        let want = (0.25f64 - 0.5) * (0.5f64).ln() + (0.75f64 - 0.5) * (1.5f64).ln();
        assert!((psi(&[50, 50], &[25, 75]) - want).abs() < 1e-12);
        assert!((want - 0.274653).abs() < 1e-6);
        assert_eq!(
            psi(&[10, 20, 30], &[1, 2, 3]),
            0.0,
            "same shares, any sizes"
        );
        // A bin empty in the reference: its share becomes EPSILON.
        let eps = (0.5 - EPSILON) * (0.5 / EPSILON).ln() + (0.5f64 - 1.0) * (0.5f64).ln();
        assert!((psi(&[0, 10], &[5, 5]) - eps).abs() < 1e-12);
        assert_eq!(
            psi(&[0, 10, 0], &[0, 10, 0]),
            0.0,
            "bins empty on both sides count nothing"
        );
    }

    #[test]
    fn deciles_of_one_to_a_hundred() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(
            decile_cuts(&mut v),
            [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
        );
        let mut few = vec![1.0, 1.0, 1.0, 2.0, 2.0];
        assert_eq!(
            decile_cuts(&mut few),
            [1.0],
            "duplicates collapse; no cut at the maximum"
        );
        assert_eq!(numeric_bin(&[10.0, 20.0], 10.0), 0);
        assert_eq!(numeric_bin(&[10.0, 20.0], 10.5), 1);
        assert_eq!(numeric_bin(&[10.0, 20.0], 99.0), 2);
    }

    #[test]
    fn compare_finds_a_shift_and_not_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("r.csv");
        let c = dir.path().join("c.csv");
        let s = dir.path().join("s.csv");
        let mut rt = String::from("x,k\n");
        let mut st = String::from("x,k\n");
        for i in 0..1000 {
            rt.push_str(&format!(
                "{},{}\n",
                i % 100,
                if i % 2 == 0 { "a" } else { "b" }
            ));
            st.push_str(&format!(
                "{},{}\n",
                i % 100 + 50,
                if i % 10 == 0 { "a" } else { "b" }
            ));
        }
        std::fs::write(&r, &rt).unwrap();
        std::fs::write(&c, &rt).unwrap();
        std::fs::write(&s, &st).unwrap();
        let cols = [
            ("x".to_string(), ColumnType::Numeric),
            ("k".to_string(), ColumnType::Enum),
        ];
        let same = compare(&r, &c, &cols).unwrap();
        assert!(same.iter().all(|d| d.psi == Some(0.0)), "{same:?}");
        let shifted = compare(&r, &s, &cols).unwrap();
        assert!(shifted[0].psi.unwrap() > 1.0, "{shifted:?}");
        assert_eq!(shifted[0].bins, 11, "ten decile bins + missing");
        assert!(shifted[1].psi.unwrap() > 0.2, "{shifted:?}");
    }
}

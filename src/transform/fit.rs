//! Pass 2 of prepare's transforms: imputation fitted on the training rows (in blocks when the
//! file allows, combined exactly as one sequential pass), and the text columns' training
//! documents.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;

use super::*;
use crate::config::{Impute, ImputeStrategy};
use crate::table::{self, is_missing, Side, Split};

impl Plan {
    /// Pass 2: fits imputation on the training rows, and writes each text column's training
    /// documents (`i,doc`: row index, tokens joined by spaces; rows without tokens left out)
    /// to `docs[k]`. Returns the fitted values.
    ///
    /// Without text columns the input is read in blocks ([`table::indexed_blocks`]) when it
    /// can be, each merged into the first as its turn comes. Counts, medians and modes do not
    /// depend on the order rows are seen in; a mean's sum does (floating point), so a later
    /// block keeps its values until it is merged, when they are added to the sum in file
    /// order: the same additions, in the same order, as one sequential pass.
    ///
    /// `held`: the imputed columns' values, held by the source's profile pass over the same
    /// bytes ([`held_columns`]); when they are of this plan's columns and the split's sides
    /// are known by row index, the fit is computed from them and the input is not read.
    #[allow(
        clippy::too_many_lines,
        reason = "the fit pass, in blocks or sequential, and the exact merge of means and medians"
    )]
    pub fn fit(
        &self,
        input: &Path,
        split: &Split,
        docs: &[&Path],
        held: Option<&table::Held>,
    ) -> Result<Fitted> {
        let accumulators = |first: bool| -> Vec<Acc> {
            self.impute
                .iter()
                .map(|(_, rule)| match rule {
                    Impute::Strategy(ImputeStrategy::Mean) if first => Acc::Mean(0.0, 0),
                    Impute::Strategy(ImputeStrategy::Mean) => Acc::MeanValues(Vec::new()),
                    Impute::Strategy(ImputeStrategy::Median) => Acc::Median(Vec::new()),
                    Impute::Strategy(ImputeStrategy::Mode) => Acc::Mode(HashMap::default()),
                    Impute::Constant { .. } => Acc::Constant,
                })
                .collect()
        };
        let mut writers = Vec::new();
        for path in docs {
            let mut w = table::create(path)?;
            w.write_record(["i", "doc"])
                .map_err(table::write_err(path))?;
            writers.push(w);
        }
        let mut doc_counts = vec![0u64; docs.len()];
        if self.impute.is_empty() && self.text.is_empty() {
            // Nothing to fit: no pass over the data (`train_rows` is only informative).
            for (w, path) in writers.into_iter().zip(docs) {
                table::finish(path, w)?;
            }
            return Ok(Fitted {
                impute: Vec::new(),
                train_rows: 0,
                documents: doc_counts,
            });
        }
        // Block by block, each merged into the first as its turn comes (file order).
        let mut merged = held.and_then(|h| self.fit_held(h, split));
        let whole = merged.is_some()
            || (self.text.is_empty()
                && table::indexed_blocks(
                    input,
                    self.input.len(),
                    |k| (accumulators(k == 0), 0u64),
                    |(acc, n), i, record| {
                        if split.side(i, record) == Some(Side::Train) {
                            *n += 1;
                            self.fit_row(acc, record);
                        }
                    },
                    |(later, n), _| match &mut merged {
                        None => merged = Some((later, n)),
                        Some((acc, train_rows)) => {
                            *train_rows += n;
                            for (a, b) in acc.iter_mut().zip(later) {
                                a.merge(b);
                            }
                        }
                    },
                ));
        let (acc, train_rows) = match merged.filter(|_| whole) {
            Some(merged) => merged,
            None => {
                let mut acc = accumulators(true);
                let (mut rdr, _) = table::open(input)?;
                let mut record = csv::StringRecord::new();
                let mut index = 0u64;
                let mut train_rows = 0u64;
                while table::next_record(input, &mut rdr, &mut record)? {
                    let i = index;
                    index += 1;
                    if split.side(i, &record) != Some(Side::Train) {
                        continue;
                    }
                    train_rows += 1;
                    self.fit_row(&mut acc, &record);
                    for (k, (c, _)) in self.text.iter().enumerate() {
                        let field = record.get(self.stage[*c].source).unwrap_or("");
                        let tokens = text::tokenize(field);
                        if tokens.is_empty() || is_missing(field) {
                            continue;
                        }
                        let path = docs[k];
                        writers[k]
                            .write_record([i.to_string(), tokens.join(" ")])
                            .map_err(table::write_err(path))?;
                        doc_counts[k] += 1;
                    }
                }
                (acc, train_rows)
            }
        };
        for (w, path) in writers.into_iter().zip(docs) {
            table::finish(path, w)?;
        }
        let mut values = Vec::new();
        for ((c, rule), a) in self.impute.iter().zip(acc) {
            let name = &self.stage[*c].name;
            let none = || {
                bad(
                    format!(
                        "cannot impute `{name}` with {}: no training row has a value",
                        impute_name(rule)
                    ),
                    "use `{ constant = … }`, or drop the column",
                )
            };
            let (value, observed) = match a {
                Acc::Mean(sum, n) if n > 0 => (format_number(sum / n as f64), n),
                Acc::Median(mut v) if !v.is_empty() => {
                    let n = v.len();
                    (format_number(median(&mut v)), n as u64)
                }
                Acc::Mode(counts) if !counts.is_empty() => {
                    let n: u64 = counts.values().sum();
                    // Most frequent; ties to the smallest value, so the fit is deterministic.
                    let best = counts
                        .into_iter()
                        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
                        .expect("not empty");
                    (String::from(best.0), n)
                }
                Acc::Constant => match rule {
                    Impute::Constant { constant } => (scalar_text(constant), 0),
                    _ => unreachable!("constant accumulators belong to constant rules"),
                },
                Acc::MeanValues(_) => unreachable!("merged into chunk 0's mean"),
                _ => return Err(none()),
            };
            values.push(ImputedValue {
                column: name.clone(),
                strategy: match rule {
                    Impute::Strategy(ImputeStrategy::Mean) => "mean",
                    Impute::Strategy(ImputeStrategy::Median) => "median",
                    Impute::Strategy(ImputeStrategy::Mode) => "mode",
                    Impute::Constant { .. } => "constant",
                }
                .to_string(),
                value,
                fitted_on_rows: observed,
            });
        }
        Ok(Fitted {
            impute: values,
            train_rows,
            documents: doc_counts,
        })
    }

    /// The fit's accumulators and training rows from values the profile pass held, read in
    /// file order as the pass reads them (so a mean adds the same numbers in the same order);
    /// `None` when they are not this plan's columns or the split needs each row's fields.
    fn fit_held(&self, held: &table::Held, split: &Split) -> Option<(Vec<Acc>, u64)> {
        let rows = held.rows();
        let side = split.by_index(rows)?;
        let wanted: Vec<(usize, table::Hold)> = self
            .impute
            .iter()
            .filter_map(|(c, rule)| Some((self.stage[*c].source, hold_of(rule)?)))
            .collect();
        if !self.text.is_empty() || held.columns != wanted {
            return None;
        }
        let train = |i| side(i) == Some(Side::Train);
        let train_rows = (0..rows).filter(|&i| train(i)).count() as u64;
        let mut k = 0;
        let mut acc = Vec::new();
        for (_, rule) in &self.impute {
            let numbers = || {
                held.numbers(k)
                    .filter(|(i, _)| train(*i))
                    .filter_map(|(_, x)| x)
            };
            acc.push(match rule {
                Impute::Strategy(ImputeStrategy::Mean) => {
                    let (sum, n) = numbers().fold((0.0, 0), |(sum, n), x| (sum + x, n + 1));
                    Acc::Mean(sum, n)
                }
                Impute::Strategy(ImputeStrategy::Median) => Acc::Median(numbers().collect()),
                Impute::Strategy(ImputeStrategy::Mode) => Acc::Mode(held.text_counts(k, train)),
                Impute::Constant { .. } => Acc::Constant,
            });
            k += usize::from(hold_of(rule).is_some());
        }
        Some((acc, train_rows))
    }

    /// Adds a training row to the imputation accumulators.
    fn fit_row(&self, acc: &mut [Acc], record: &impl table::Record) {
        for ((c, _), a) in self.impute.iter().zip(acc.iter_mut()) {
            let field = record.get(self.stage[*c].source).unwrap_or("");
            if is_missing(field) {
                continue;
            }
            let f = table::trim(field);
            match a {
                Acc::Mean(sum, n) => {
                    if let Ok(x) = f.parse::<f64>() {
                        *sum += x;
                        *n += 1;
                    }
                }
                Acc::MeanValues(v) => {
                    if let Ok(x) = f.parse::<f64>() {
                        v.push(x);
                    }
                }
                Acc::Median(v) => {
                    if let Ok(x) = f.parse::<f64>() {
                        v.push(x);
                    }
                }
                Acc::Mode(counts) => match counts.get_mut(f) {
                    Some(n) => *n += 1,
                    None => {
                        counts.insert(f.into(), 1);
                    }
                },
                Acc::Constant => {}
            }
        }
    }
}

/// How the profile pass holds an imputed column for `rule` ([`held_columns`]): `None` for a
/// constant, which reads nothing.
pub(super) fn hold_of(rule: &Impute) -> Option<table::Hold> {
    match rule {
        Impute::Strategy(ImputeStrategy::Mean | ImputeStrategy::Median) => {
            Some(table::Hold::Number)
        }
        Impute::Strategy(ImputeStrategy::Mode) => Some(table::Hold::Text),
        Impute::Constant { .. } => None,
    }
}

/// An imputation's accumulator in the fit pass.
enum Acc {
    /// Sum and count.
    Mean(f64, u64),
    /// A later block's values of a mean column, in file order (see [`Plan::fit`]).
    MeanValues(Vec<f64>),
    /// The values, blocks' lists appended in file order.
    Median(Vec<f64>),
    Mode(HashMap<Box<str>, u64, table::FastHash>),
    Constant,
}

impl Acc {
    /// Folds in the accumulator of the rows that come right after this one's.
    fn merge(&mut self, later: Acc) {
        match (self, later) {
            (Acc::Mean(sum, n), Acc::MeanValues(v)) => {
                for x in v {
                    *sum += x;
                    *n += 1;
                }
            }
            (Acc::Median(v), Acc::Median(w)) => v.extend(w),
            (Acc::Mode(counts), Acc::Mode(more)) => {
                for (value, n) in more {
                    *counts.entry(value).or_default() += n;
                }
            }
            (Acc::Constant, Acc::Constant) => {}
            _ => unreachable!("blocks have the same accumulators, a mean's first one a sum"),
        }
    }
}

/// The median of `v` (not empty), as the middle of its `f64::total_cmp` order (the mean of the
/// two middle values for an even count): one selection and a scan of the lower half, no sort. Values equal under
/// `total_cmp` have the same bits, so this is exactly the sorted list's middle.
pub(super) fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    let (lower, upper, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        return upper;
    }
    // The largest of the lower half is the other middle value.
    let lower = lower
        .iter()
        .copied()
        .max_by(f64::total_cmp)
        .expect("an even count of at least 2");
    (lower + upper) / 2.0
}

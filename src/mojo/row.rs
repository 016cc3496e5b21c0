//! Input rows: from [`Value`]s or CSV text to genmodel's `double[]`, the way
//! `EasyPredictModelWrapper` (`RowToRawDataConverter`) does it with unknown levels as NA.
//!
//! * Numeric column: a number as is; text is trimmed and parsed as a double (Rust's parser:
//!   Java's `1d` or hex spellings are not accepted); unparseable text is an error, as in
//!   genmodel without `setConvertInvalidNumbersToNa`.
//! * Categorical column: exact lookup of the level in the domain; an unseen level becomes NA.
//!   A number given for a categorical column is looked up by its shortest text (`1.0` → `1`),
//!   a convenience for JSON clients that genmodel does not offer.
//! * CSV cells `""`, `NA`, `N/A` and `-` are missing (`PredictCsv`).

use super::{mojo_columns, Column, ColumnKind, Mojo, MojoError, Prediction, ScoreError};

/// One cell of an input row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Number(f64),
    /// Text: a categorical level, or a number to parse for a numeric column.
    Text(&'a str),
    Missing,
}

pub(crate) fn encode_value(value: &Value, column: &Column) -> Result<f64, ScoreError> {
    match (value, &column.kind) {
        (Value::Missing, _) => Ok(f64::NAN),
        (Value::Number(x), ColumnKind::Numeric) => Ok(*x),
        (Value::Text(s), ColumnKind::Numeric) => {
            let t = s.trim_matches(|c: char| c <= ' ');
            t.parse().map_err(|_| ScoreError::NotANumber {
                column: column.name.clone(),
                value: s.to_string(),
            })
        }
        (Value::Text(s), ColumnKind::Categorical(levels)) => Ok(level_index(levels, s)),
        (Value::Number(x), ColumnKind::Categorical(levels)) => {
            if x.is_nan() {
                Ok(f64::NAN)
            } else {
                Ok(level_index(levels, &format!("{x}")))
            }
        }
    }
}

/// genmodel's `setCats` for one categorical: the one-hot slot of level `d` in `lo..hi`, where
/// the last slot is the NA level. NaN and levels past the end take the NA slot; without
/// `use_all_levels` level 0 has no slot.
pub(crate) fn one_hot_index(d: f64, lo: usize, hi: usize, use_all_levels: bool) -> Option<usize> {
    // A categorical with no slot has no NA slot either (only a damaged `cat_offsets` says so).
    let na = hi.checked_sub(1).filter(|&na| na >= lo)?;
    if d.is_nan() {
        return Some(na);
    }
    // `d` may be any double when a damaged model calls a numeric column categorical:
    // saturating arithmetic keeps such a value past one end, as it would be.
    let c = d as i64;
    let at = if use_all_levels {
        c.saturating_add(lo as i64)
    } else if c != 0 {
        c.saturating_sub(1).saturating_add(lo as i64)
    } else {
        return None;
    };
    match at {
        a if a < 0 => None,
        a if a >= hi as i64 => Some(na),
        a => Some(a as usize),
    }
}

fn level_index(levels: &[String], s: &str) -> f64 {
    levels
        .iter()
        .position(|l| l == s)
        .map_or(f64::NAN, |i| i as f64)
}

/// A CSV header bound to a model's inputs: which record field feeds each input column.
#[derive(Debug)]
pub struct Binding<'m> {
    mojo: &'m Mojo,
    fields: Vec<usize>,
    /// Per input column, the level → index map (categoricals only), for fast lookups.
    lookups: Vec<Option<std::collections::HashMap<&'m str, f64>>>,
}

impl<'m> Binding<'m> {
    pub(crate) fn new<S: AsRef<str>>(mojo: &'m Mojo, header: &[S]) -> Result<Self, MojoError> {
        let mut fields = Vec::new();
        let mut missing = Vec::new();
        for column in mojo.signature() {
            match header.iter().position(|h| h.as_ref() == column.name) {
                Some(i) => fields.push(i),
                None => missing.push(column.name.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(MojoError::MissingColumns {
                missing,
                required: mojo_columns(mojo),
            });
        }
        let lookups = mojo
            .signature()
            .iter()
            .map(|c| match &c.kind {
                ColumnKind::Numeric => None,
                ColumnKind::Categorical(levels) => Some(
                    levels
                        .iter()
                        .enumerate()
                        .map(|(i, l)| (l.as_str(), i as f64))
                        .collect(),
                ),
            })
            .collect();
        Ok(Binding {
            mojo,
            fields,
            lookups,
        })
    }

    /// Encodes one CSV record (all fields of the bound header) into `out`.
    pub fn encode<S: AsRef<str>>(
        &self,
        record: &[S],
        out: &mut Vec<f64>,
    ) -> Result<(), ScoreError> {
        out.clear();
        for ((column, &field), lookup) in self
            .mojo
            .signature()
            .iter()
            .zip(&self.fields)
            .zip(&self.lookups)
        {
            let cell = record.get(field).map_or("", |s| s.as_ref());
            let value = if crate::table::is_missing_to_score(cell) {
                f64::NAN
            } else {
                match lookup {
                    Some(map) => map.get(cell).copied().unwrap_or(f64::NAN),
                    None => encode_value(&Value::Text(cell), column)?,
                }
            };
            out.push(value);
        }
        Ok(())
    }

    /// Encodes and scores one CSV record.
    pub fn score<S: AsRef<str>>(&self, record: &[S]) -> Result<Prediction, ScoreError> {
        let mut raw = Vec::with_capacity(self.fields.len());
        self.encode(record, &mut raw)?;
        Ok(self.mojo.score_encoded(&raw))
    }
}

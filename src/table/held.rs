//! A few columns' values held from the source's profile pass, so that prepare's fit (the
//! training rows' means, medians and modes) need not read the data again: on a cold run the
//! profile pass is the only pass before the split that sees every row.
//!
//! A value is held as the fit reads it: a number as its field's trimmed text parses (a field
//! that is missing or not a number holds nothing), a text as its trimmed, non-missing field.
//! Held memory is bounded ([`HOLD_BYTES`]): once the blocks read so far say the whole file
//! would pass it (or it is passed), every held value is dropped and the fit reads the data as
//! before, so a large file costs what it did, plus its first blocks' holding.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use super::field::value_of;
use super::profile::FastHash;
use super::row::Record;

/// At most this many bytes of held values (8 a number, 4 a text, per row): 64 MB is ~3M rows
/// of the bench's three imputed columns.
pub const HOLD_BYTES: usize = 64 << 20;

/// How a column's values are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The field parsed as an `f64` (a mean's or a median's input).
    Number,
    /// The trimmed field (a mode's input).
    Text,
}

/// A number column's row that holds no number: a NaN whose payload no parse gives (`"NaN"`
/// parses to the canonical NaN), so the row's 8 bytes say both.
const NO_NUMBER: u64 = 0x7FF4_0000_DEAD_0001;

/// The held values of one block of rows (in the block's order).
#[derive(Debug, Default)]
pub(super) struct HeldPart {
    rows: u64,
    /// The bytes of the block's rows (as read, with their line ends).
    read: u64,
    /// Per number column: each row's value as bits, [`NO_NUMBER`] when it has none.
    numbers: Vec<Vec<u64>>,
    /// Per text column: each row's value as an index into its names.
    texts: Vec<Texts>,
}

/// A text column's values in one block.
#[derive(Debug, Default)]
struct Texts {
    /// Each row's value as an index into `names`, `u32::MAX` for none.
    ids: Vec<u32>,
    /// The distinct values, in first-seen order.
    names: Vec<Box<str>>,
    /// Where each of `names` is (emptied once the pass is over).
    index: HashMap<Box<str>, u32, FastHash>,
}

impl HeldPart {
    fn bytes(&self) -> usize {
        let numbers: usize = self.numbers.iter().map(|v| v.len() * 8).sum();
        let texts: usize = self
            .texts
            .iter()
            // A name is kept twice while the pass runs (list and lookup), with their headers.
            .map(|t| t.ids.len() * 4 + t.names.iter().map(|n| 2 * n.len() + 48).sum::<usize>())
            .sum();
        numbers + texts
    }
}

/// What a pass holds while it runs: the columns asked for, and whether the budget was passed
/// (shared by the pass's workers; see [`Gathered`] for the parts taken in file order).
pub(super) struct Holding<'a> {
    columns: &'a [(usize, Hold)],
    /// Past the budget: blocks stop holding.
    over: AtomicBool,
    budget: usize,
    /// The size of the file read.
    file_bytes: u64,
}

impl<'a> Holding<'a> {
    /// Holds `columns` (index in the file, how) of a file of `file_bytes` within `budget`
    /// bytes.
    pub fn new(columns: &'a [(usize, Hold)], budget: usize, file_bytes: u64) -> Holding<'a> {
        Holding {
            columns,
            over: AtomicBool::new(columns.is_empty()),
            budget,
            file_bytes,
        }
    }

    /// An empty part for a block.
    pub fn part(&self) -> HeldPart {
        let mut part = HeldPart::default();
        for (_, how) in self.columns {
            match how {
                Hold::Number => part.numbers.push(Vec::new()),
                Hold::Text => part.texts.push(Default::default()),
            }
        }
        part
    }

    /// Holds the next row of `part`'s block.
    pub fn row(&self, part: &mut HeldPart, rec: &impl Record) {
        if self.over.load(Ordering::Relaxed) {
            return;
        }
        part.rows += 1;
        part.read += rec.line().map_or(0, |l| l.len() as u64 + 1);
        let (mut n, mut t) = (0, 0);
        for &(c, how) in self.columns {
            let value = value_of(rec.get(c).unwrap_or(""));
            match how {
                Hold::Number => {
                    let x = value.and_then(|v| v.parse::<f64>().ok());
                    part.numbers[n].push(x.map_or(NO_NUMBER, f64::to_bits));
                    n += 1;
                }
                Hold::Text => {
                    let Texts { ids, names, index } = &mut part.texts[t];
                    let id = match value {
                        None => u32::MAX,
                        Some(v) => match index.get(v) {
                            Some(&id) => id,
                            None => {
                                // A block has fewer than 2^32 rows (each at least 2 bytes, a
                                // block a few MB), so fewer distinct values.
                                let id = names.len() as u32;
                                names.push(v.into());
                                index.insert(v.into(), id);
                                id
                            }
                        },
                    };
                    ids.push(id);
                    t += 1;
                }
            }
        }
    }

    /// The collector of the blocks' parts, in file order.
    pub fn gather(&self) -> Gathered<'_, 'a> {
        Gathered {
            holding: self,
            bytes: 0,
            read: 0,
            parts: Vec::new(),
        }
    }
}

/// The parts of a [`Holding`] pass's blocks, taken in file order.
pub(super) struct Gathered<'h, 'a> {
    holding: &'h Holding<'a>,
    bytes: usize,
    /// The bytes of the rows held so far.
    read: u64,
    parts: Vec<HeldPart>,
}

impl Gathered<'_, '_> {
    /// Takes the next block's part (in file order) with the block's row count.
    pub fn deliver(&mut self, part: HeldPart, rows: u64) {
        let over = &self.holding.over;
        if over.load(Ordering::Relaxed) {
            return;
        }
        self.bytes += part.bytes();
        self.read += part.read;
        // The whole file, held at the rate of the blocks so far (rows are alike enough).
        let projected =
            self.bytes as u128 * u128::from(self.holding.file_bytes) / u128::from(self.read.max(1));
        let budget = self.holding.budget;
        // A part that missed rows (the budget was passed while it ran) is of no use either.
        if self.bytes > budget || projected > budget as u128 || part.rows != rows {
            over.store(true, Ordering::Relaxed);
            self.parts = Vec::new();
            return;
        }
        self.parts.push(part);
    }

    /// The held values, unless the budget was passed (or nothing was asked for).
    pub fn finish(self) -> Option<Held> {
        if self.holding.over.load(Ordering::Relaxed) {
            return None;
        }
        let parts = self
            .parts
            .into_iter()
            .map(|mut p| {
                // The lookups are done with.
                for t in &mut p.texts {
                    t.index = HashMap::default();
                }
                p
            })
            .collect();
        Some(Held {
            columns: self.holding.columns.to_vec(),
            parts,
        })
    }
}

/// The values of some columns of every data row of a file, held by its profile pass.
#[derive(Debug)]
pub struct Held {
    /// The columns (index in the file, how), in the order they were asked for.
    pub columns: Vec<(usize, Hold)>,
    parts: Vec<HeldPart>,
}

impl Held {
    /// The data rows held.
    pub fn rows(&self) -> u64 {
        self.parts.iter().map(|p| p.rows).sum()
    }

    /// Held column `k` (a [`Hold::Number`]): each row's index and number, in file order.
    pub fn numbers(&self, k: usize) -> impl Iterator<Item = (u64, Option<f64>)> + '_ {
        let n = self.nth_of(k, Hold::Number);
        let mut base = 0;
        self.parts.iter().flat_map(move |p| {
            let start = base;
            base += p.rows;
            p.numbers[n].iter().enumerate().map(move |(l, &bits)| {
                let x = (bits != NO_NUMBER).then(|| f64::from_bits(bits));
                (start + l as u64, x)
            })
        })
    }

    /// Held column `k` (a [`Hold::Text`]): how many rows `keep` (given each row's index) holds
    /// of each value.
    pub fn text_counts(
        &self,
        k: usize,
        keep: impl Fn(u64) -> bool,
    ) -> HashMap<Box<str>, u64, FastHash> {
        let t = self.nth_of(k, Hold::Text);
        let mut counts: HashMap<Box<str>, u64, FastHash> = HashMap::default();
        let mut base = 0;
        for p in &self.parts {
            let Texts { ids, names, .. } = &p.texts[t];
            let mut local = vec![0u64; names.len()];
            for (l, &id) in ids.iter().enumerate() {
                if id != u32::MAX && keep(base + l as u64) {
                    local[id as usize] += 1;
                }
            }
            for (name, n) in names.iter().zip(local) {
                if n > 0 {
                    *counts.entry(name.clone()).or_default() += n;
                }
            }
            base += p.rows;
        }
        counts
    }

    /// The position of column `k` among the held columns of its kind.
    fn nth_of(&self, k: usize, how: Hold) -> usize {
        assert_eq!(
            self.columns[k].1, how,
            "held column {k} is not held that way"
        );
        self.columns[..k].iter().filter(|c| c.1 == how).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(fields: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(fields.to_vec())
    }

    /// Two blocks of rows of columns 0 (a number) and 2 (a text), held within `budget`.
    fn hold(budget: usize) -> Option<Held> {
        let columns = [(0, Hold::Number), (2, Hold::Text)];
        let holding = Holding::new(&columns, budget, 0);
        let mut gathered = holding.gather();
        for block in [
            &[["1.5", "x", " b "], ["NA", "x", "a"], ["NaN", "x", ""]][..],
            &[["oops", "x", "b"], [" -0 ", "x", "NA"]][..],
        ] {
            let mut part = holding.part();
            for row in block {
                holding.row(&mut part, &rec(row));
            }
            gathered.deliver(part, block.len() as u64);
        }
        gathered.finish()
    }

    #[test]
    fn values_are_held_as_the_fit_reads_them_in_file_order() {
        let held = hold(HOLD_BYTES).expect("within the budget");
        assert_eq!(held.rows(), 5);
        let numbers: Vec<(u64, Option<u64>)> = held
            .numbers(0)
            .map(|(i, x)| (i, x.map(f64::to_bits)))
            .collect();
        assert_eq!(
            numbers,
            [
                (0, Some(1.5f64.to_bits())),
                (1, None),
                (2, Some(f64::NAN.to_bits())),
                (3, None),
                (4, Some((-0.0f64).to_bits())),
            ]
        );
        let counts = held.text_counts(1, |i| i != 1);
        let mut counts: Vec<(&str, u64)> = counts.iter().map(|(k, v)| (&**k, *v)).collect();
        counts.sort_unstable();
        assert_eq!(counts, [("b", 2)], "`a` is on row 1, which is left out");
    }

    #[test]
    fn past_the_budget_nothing_is_held() {
        assert!(hold(40).is_none());
        // Nothing asked, nothing held.
        let holding = Holding::new(&[], HOLD_BYTES, 0);
        assert!(holding.gather().finish().is_none());
    }

    /// A row read as a line, as the block passes read them.
    struct Line(&'static str);

    impl Record for Line {
        fn get(&self, i: usize) -> Option<&str> {
            self.0.split(',').nth(i)
        }
        fn line(&self) -> Option<&str> {
            Some(self.0)
        }
    }

    /// One block of 100 rows of `1.5,x` (100 × 6 bytes read, 800 bytes held) from a file of
    /// `file_bytes`, held within 2,000 bytes.
    fn first_block_of(file_bytes: u64) -> Option<Held> {
        let columns = [(0, Hold::Number)];
        let holding = Holding::new(&columns, 2_000, file_bytes);
        let mut gathered = holding.gather();
        let mut part = holding.part();
        for _ in 0..100 {
            holding.row(&mut part, &Line("1.5,x"));
        }
        gathered.deliver(part, 100);
        gathered.finish()
    }

    #[test]
    fn a_file_whose_first_blocks_say_it_would_pass_the_budget_is_not_held() {
        // 600 bytes read held 800: the whole of 600 bytes fits, of 1,500 (2,000 held) just,
        // of 1,800 (2,400 held) not, though the block itself is within the budget.
        assert!(first_block_of(600).is_some());
        assert!(first_block_of(1_500).is_some());
        assert!(first_block_of(1_800).is_none());
    }

    #[test]
    fn a_block_that_missed_rows_spoils_the_held_values() {
        let columns = [(0, Hold::Number)];
        let holding = Holding::new(&columns, HOLD_BYTES, 0);
        let mut gathered = holding.gather();
        let mut part = holding.part();
        holding.row(&mut part, &rec(&["1"]));
        gathered.deliver(part, 2);
        assert!(gathered.finish().is_none());
    }
}

//! Pass 3 of prepare's transforms: every row imputed, derived and vectorised into the
//! prepared `train` and `holdout` CSVs, block by block on every core, written in file order.

use std::path::Path;

use anyhow::Result;

use super::*;
use crate::table::{self, Side, Split};

impl Plan {
    /// Pass 3: writes the prepared `train` and `holdout` CSVs.
    ///
    /// On two or more cores the input is read in blocks ([`table::indexed_blocks`]), each
    /// transformed into its rows' bytes and profiles in memory, which are written to `out`
    /// (hashed as written) and merged in file order as each block's turn comes: no part
    /// files, no second copy. Rows, their order, the bytes and the profiles are exactly those
    /// of one sequential pass, which is what runs when the input cannot be read in blocks
    /// (quoted fields, errors to report).
    #[allow(
        clippy::too_many_lines,
        reason = "the apply pass, in blocks or sequential, and what it knows of its outputs"
    )]
    pub fn apply(
        &self,
        input: &Path,
        split: &Split,
        fitted: &Fitted,
        vectors: &[text::Vectors],
        out: [&Path; 2],
    ) -> Result<Applied> {
        let header: Vec<String> = self.schema().into_iter().map(|(n, _)| n).collect();
        // Per stage column: the imputed value for a missing field, if any.
        let mut fill: Vec<Option<&str>> = vec![None; self.stage.len()];
        for ((c, _), v) in self.impute.iter().zip(&fitted.impute) {
            fill[*c] = Some(v.value.as_str());
        }
        // What the data's profile tells of each output column, so its profile here costs less
        // (see `Known`).
        let known: Vec<Known> = self
            .outputs
            .iter()
            .map(|o| match o {
                Out::Stage(c) => Known::of(&self.stage[*c], fill[*c]),
                _ => Known::default(),
            })
            .collect();
        let rows = Rows {
            plan: self,
            split,
            identity: self.input.len() == self.outputs.len()
                && self
                    .outputs
                    .iter()
                    .enumerate()
                    .all(|(j, o)| matches!(o, Out::Stage(c) if self.stage[*c].source == j)),
            plain_fill: fill.iter().flatten().all(|f| !table::needs_quotes(f)),
            computed: self.outputs.iter().any(|o| !matches!(o, Out::Stage(_))),
            fill,
            vectors,
        };
        let mut output = Output::create(out, &header)?;
        // Block by block on every core, each block's rows written (and hashed) in file order
        // as its turn comes.
        let whole = table::indexed_blocks(
            input,
            self.input.len(),
            |_| Part::new(header.len(), &known),
            |part, i, record| rows.apply(part, i, record),
            |part, _| output.take(part),
        );
        if !whole && output.error.is_none() {
            // The sequential pass, from the start: it reports a bad row with its line. (A
            // write error is reported as it is, by `finish`.)
            drop(output);
            output = Output::create(out, &header)?;
            let mut part = Part::new(header.len(), &known);
            let (mut rdr, _) = table::open(input)?;
            let mut record = csv::StringRecord::new();
            let mut index = 0u64;
            while table::next_record(input, &mut rdr, &mut record)? {
                rows.apply(&mut part, index, &record);
                index += 1;
                if part.bufs.iter().any(|b| b.len() >= 1 << 20) {
                    output.take(std::mem::replace(
                        &mut part,
                        Part::new(header.len(), &known),
                    ));
                }
            }
            output.take(part);
        }
        output.finish(&header)
    }
}

/// The prepared files as they are written: their writers, profiles and row counts, taking
/// parts (blocks of rows) in file order.
struct Output {
    files: [table::HashedFile; 2],
    profilers: Option<[table::Profiler; 2]>,
    rows: [u64; 2],
    /// The first error, after which nothing more is written.
    error: Option<table::TableError>,
}

impl Output {
    fn create(out: [&Path; 2], header: &[String]) -> Result<Output, table::TableError> {
        let mut head = Vec::new();
        table::push_row(&mut head, header.iter().map(String::as_str));
        let mut files = Vec::with_capacity(2);
        for path in out {
            let mut f = table::HashedFile::create(path)?;
            f.write(&head)?;
            files.push(f);
        }
        Ok(Output {
            files: files.try_into().ok().expect("two files"),
            profilers: None,
            rows: [0, 0],
            error: None,
        })
    }

    /// Writes the part that comes next in the file.
    fn take(&mut self, part: Part) {
        if self.error.is_some() {
            return;
        }
        for (f, bytes) in self.files.iter_mut().zip(&part.bufs) {
            if let Err(e) = f.write(bytes) {
                self.error = Some(e);
                return;
            }
        }
        self.rows[0] += part.rows[0];
        self.rows[1] += part.rows[1];
        match &mut self.profilers {
            None => self.profilers = Some(part.profilers),
            Some([train, holdout]) => {
                let [t, h] = part.profilers;
                train.merge(t);
                holdout.merge(h);
            }
        }
    }

    fn finish(self, header: &[String]) -> Result<Applied> {
        if let Some(e) = self.error {
            return Err(e.into());
        }
        let [train, holdout] = self.files;
        let digests = [train.finish()?, holdout.finish()?];
        let names = || header.iter().map(|h| h.trim().to_string()).collect();
        let [p_train, p_hold] = self
            .profilers
            .unwrap_or_else(|| [0, 1].map(|_| table::Profiler::new(header.len())));
        Ok(Applied {
            rows: self.rows,
            digests,
            profiles: [p_train.finish(names()), p_hold.finish(names())],
        })
    }
}

/// What every row of the apply pass needs, shared by its blocks.
struct Rows<'a> {
    plan: &'a Plan,
    split: &'a Split,
    /// Per stage column: the imputed value for a missing field, if any.
    fill: Vec<Option<&'a str>>,
    /// No imputed value needs quotes: a stage field of a [`table::Record::PLAIN`] row is
    /// written as it is, without looking for what would need them (computed fields, numbers,
    /// never do).
    plain_fill: bool,
    /// Some output is computed (derived, Word2Vec), not a stage column.
    computed: bool,
    /// The outputs are the input's columns, in order: a row whose every field is a value
    /// as it stands (not missing, nothing to trim) is written as the line it was read from.
    identity: bool,
    vectors: &'a [text::Vectors],
}

/// One block's share of the apply pass: its rows as written (train, holdout), their
/// profiles and counts, and the row buffers.
struct Part {
    bufs: [Vec<u8>; 2],
    profilers: [table::Profiler; 2],
    rows: [u64; 2],
    /// The row's computed output fields (derived, Word2Vec), reused from row to row.
    row: Vec<String>,
}

impl Part {
    fn new(columns: usize, known: &[Known]) -> Part {
        Part {
            bufs: [Vec::new(), Vec::new()],
            // The outputs are profiled as they are written (the fields read back the same),
            // so confirm need not read them again.
            profilers: [0, 1].map(|_| {
                let mut p = table::Profiler::new(columns);
                for (j, k) in known.iter().enumerate() {
                    if k.numeric {
                        p.known_numeric(j);
                    }
                    if let Some(n) = k.values {
                        p.known_values(j, n);
                    }
                }
                p
            }),
            rows: [0, 0],
            row: Vec::new(),
        }
    }
}

/// What is known of an output column's fields before they are written: a stage column holds
/// the data's (trimmed) values of its source column, and the imputed value where the field is
/// missing.
#[derive(Debug, Clone, Copy, Default)]
struct Known {
    /// Every field is a number or missing: the source column is numeric and the imputed
    /// value (if any) a number.
    numeric: bool,
    /// At most this many distinct values: the source column's, all kept by its profile, and
    /// the imputed value if it is another.
    values: Option<usize>,
}

impl Known {
    fn of(column: &StageColumn, fill: Option<&str>) -> Known {
        let fill = fill.and_then(table::value_of);
        Known {
            numeric: column.numeric && fill.is_none_or(table::is_number),
            values: column.distinct.as_ref().map(|d| {
                d.len()
                    + usize::from(
                        fill.is_some_and(|f| d.binary_search_by(|v| v.as_str().cmp(f)).is_err()),
                    )
            }),
        }
    }
}

impl<'a> Rows<'a> {
    /// Stage column `j` of `record`: its trimmed field, or the imputed value (or nothing)
    /// when the field is missing.
    fn value<'r>(&'r self, record: &'r impl table::Record, j: usize) -> &'r str {
        table::value_of(record.get(self.plan.stage[j].source).unwrap_or(""))
            .or(self.fill[j])
            .unwrap_or("")
    }

    /// Writes `record` as the line it was read from, profiling its fields, when that is what
    /// the apply pass would write: every field a value as it stands (not missing, nothing to
    /// trim), in a plan whose outputs are the input's columns ([`Rows::identity`]). False
    /// (nothing written) otherwise.
    fn as_read(
        &self,
        buf: &mut Vec<u8>,
        profiler: &mut table::Profiler,
        record: &impl table::Record,
    ) -> bool {
        let Some(line) = record.line() else {
            return false;
        };
        let n = self.plan.outputs.len();
        let field = |j| record.get(j).unwrap_or("");
        let stands = |f: &str| table::value_of(f).is_some_and(|v| v.len() == f.len());
        if !(0..n).all(|j| stands(field(j))) {
            return false;
        }
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        // Each field is its value (checked above).
        for j in 0..n {
            profiler.value(j, field(j));
        }
        true
    }

    /// Transforms data row `i` and writes it to its side of `part` (the bytes of
    /// [`table::push_row`]), profiling its fields as written.
    fn apply<R: table::Record>(&self, part: &mut Part, i: u64, record: &R) {
        let plan = self.plan;
        let Some(side) = self.split.side(i, record) else {
            return;
        };
        let Part {
            bufs,
            profilers,
            rows,
            row,
        } = part;
        // Computed fields (derived, Word2Vec) go through `row`, whose buffers are reused from
        // row to row; a stage field is written from the record (or the fill) as is.
        if self.computed {
            let averages: Vec<Option<Vec<f64>>> = plan
                .text
                .iter()
                .zip(self.vectors)
                .map(|((c, _), v)| v.average(self.value(record, *c)))
                .collect();
            row.resize(plan.outputs.len(), String::new());
            for (o, out) in plan.outputs.iter().zip(row.iter_mut()) {
                match o {
                    Out::Stage(_) => {}
                    Out::Derived(j) => {
                        out.clear();
                        let x = plan.derive[*j]
                            .expr
                            .eval(&|c| self.value(record, c).parse::<f64>().ok());
                        if let Some(x) = x {
                            out.push_str(&format_number(x));
                        }
                    }
                    Out::Word2Vec(k, d) => {
                        out.clear();
                        if let Some(v) = averages[*k].as_ref() {
                            out.push_str(&text::format_feature(v[*d]));
                        }
                    }
                }
            }
        }
        let s = match side {
            Side::Train => 0,
            Side::Holdout => 1,
        };
        let (buf, profiler) = (&mut bufs[s], &mut profilers[s]);
        rows[s] += 1;
        profiler.row();
        if self.identity && self.as_read(buf, profiler, record) {
            return;
        }
        let start = buf.len();
        for (j, o) in plan.outputs.iter().enumerate() {
            // The field, whether it can need quotes, and its value when known to be one.
            let (f, plain_field, value) = match o {
                Out::Stage(c) => {
                    let read = table::value_of(record.get(plan.stage[*c].source).unwrap_or(""));
                    match (read, self.fill[*c]) {
                        (Some(v), _) => (v, R::PLAIN, Some(v)),
                        (None, Some(fill)) => (fill, self.plain_fill, None),
                        (None, None) => ("", true, None),
                    }
                }
                _ => (row[j].as_str(), true, None),
            };
            if j > 0 {
                buf.push(b',');
            }
            if plain_field {
                buf.extend_from_slice(f.as_bytes());
            } else {
                table::push_field(buf, f);
            }
            match value {
                Some(v) => profiler.value(j, v),
                None => profiler.field(j, f),
            }
        }
        // A row of one empty field, as `push_row` writes it.
        if plan.outputs.len() == 1 && buf.len() == start {
            buf.extend_from_slice(b"\"\"");
        }
        buf.push(b'\n');
    }
}

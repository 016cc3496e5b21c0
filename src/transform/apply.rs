//! Pass 3 of prepare's transforms: every row imputed, derived and vectorised into the
//! prepared `train` and `holdout` CSVs, in chunks appended in file order when the file allows.

use std::path::Path;

use anyhow::Result;

use super::*;
use crate::table::{self, is_missing, Side, Split};

impl Plan {
    /// Pass 3: writes the prepared `train` and `holdout` CSVs.
    ///
    /// On two or more cores the input is read in chunks ([`table::indexed_chunks`]): chunk 0
    /// writes straight into `out`, each later chunk into its own part files beside them, which
    /// are then appended in order (and hashed as they are). Rows, their order, the bytes and
    /// the profiles (merged in file order) are exactly those of one sequential pass, which is
    /// what runs when the input cannot be chunked (quoted fields, errors to report).
    #[allow(
        clippy::too_many_lines,
        reason = "the apply pass, chunked or sequential, and the in-order merge of parts"
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
            fill,
            vectors,
        };
        let part_path = |k: usize, s: usize| {
            let mut p = out[s].as_os_str().to_owned();
            p.push(format!(".part{k}"));
            std::path::PathBuf::from(p)
        };
        // Whatever the chunks leave behind is removed when this pass ends, however it ends.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let _part_files = PartFiles(
            (1..threads)
                .flat_map(|k| [part_path(k, 0), part_path(k, 1)])
                .collect(),
        );
        let chunked = table::indexed_chunks(
            input,
            self.input.len(),
            |k| {
                let paths = if k == 0 {
                    out.map(Path::to_path_buf)
                } else {
                    [part_path(k, 0), part_path(k, 1)]
                };
                Part::new(paths, k == 0, &header, &known)
            },
            |part, i, record| {
                if let Ok(p) = part {
                    if let Err(e) = rows.apply(p, i, record) {
                        *part = Err(e);
                    }
                }
            },
        );
        let mut parts = match chunked {
            Some(chunks) => chunks
                .into_iter()
                .map(|(p, _)| p)
                .collect::<Result<Vec<Part>, _>>()?,
            None => {
                let mut part = Part::new(out.map(Path::to_path_buf), true, &header, &known)?;
                let (mut rdr, _) = table::open(input)?;
                let mut record = csv::StringRecord::new();
                let mut index = 0u64;
                while table::next_record(input, &mut rdr, &mut record)? {
                    rows.apply(&mut part, index, &record)?;
                    index += 1;
                }
                vec![part]
            }
        };
        let later = parts.split_off(1);
        let first = parts.pop().expect("chunk 0");
        let mut n = first.rows;
        let [mut p_train, mut p_hold] = first.profilers;
        let mut tails: [Vec<std::path::PathBuf>; 2] = Default::default();
        for part in later {
            let [w_train, w_hold] = part.writers;
            let [path_train, path_hold] = part.paths;
            table::finish_part(w_train)?;
            table::finish_part(w_hold)?;
            tails[0].push(path_train);
            tails[1].push(path_hold);
            let [pt, ph] = part.profilers;
            p_train.merge(pt);
            p_hold.merge(ph);
            n[0] += part.rows[0];
            n[1] += part.rows[1];
        }
        let [w_train, w_hold] = first.writers;
        let tail = |s: usize| tails[s].iter().map(|p| p.as_path()).collect::<Vec<_>>();
        let train_digest = table::finish_hashed(w_train, &tail(0))?;
        let holdout_digest = table::finish_hashed(w_hold, &tail(1))?;
        let names = || header.iter().map(|h| h.trim().to_string()).collect();
        Ok(Applied {
            rows: n,
            digests: [train_digest, holdout_digest],
            profiles: [p_train.finish(names()), p_hold.finish(names())],
        })
    }
}

/// What every row of the apply pass needs, shared by its chunks.
struct Rows<'a> {
    plan: &'a Plan,
    split: &'a Split,
    /// Per stage column: the imputed value for a missing field, if any.
    fill: Vec<Option<&'a str>>,
    vectors: &'a [text::Vectors],
}

/// One chunk's share of the apply pass: its writers, profilers, row counts and row buffers.
struct Part {
    paths: [std::path::PathBuf; 2],
    writers: [table::RowWriter; 2],
    profilers: [table::Profiler; 2],
    rows: [u64; 2],
    /// The row's computed output fields (derived, Word2Vec), reused from row to row.
    row: Vec<String>,
}

impl Part {
    /// The first part writes (and hashes) `train` and `holdout` with their header; a later
    /// part writes rows only, into files appended to the first part's.
    fn new(
        paths: [std::path::PathBuf; 2],
        first: bool,
        header: &[String],
        known: &[Known],
    ) -> Result<Part, table::TableError> {
        let mut writers = Vec::with_capacity(2);
        for path in &paths {
            let w = if first {
                let mut w = table::create_hashed(path)?;
                w.write_row(header.iter().map(String::as_str))?;
                w
            } else {
                table::create_part(path)?
            };
            writers.push(w);
        }
        let writers: [_; 2] = writers.try_into().ok().expect("two writers");
        Ok(Part {
            paths,
            writers,
            // The outputs are profiled as they are written (the fields read back the same),
            // so confirm need not read them again.
            profilers: [0, 1].map(|_| {
                let mut p = table::Profiler::new(header.len());
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
        })
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
        let fill = fill.map(table::trim).filter(|f| !is_missing(f));
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

/// Later parts' files, removed when dropped.
struct PartFiles(Vec<std::path::PathBuf>);

impl Drop for PartFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl<'a> Rows<'a> {
    /// Stage column `j` of `record`: its trimmed field, or the imputed value (or nothing)
    /// when the field is missing.
    fn value<'r>(&'r self, record: &'r impl table::Record, j: usize) -> &'r str {
        let field = table::trim(record.get(self.plan.stage[j].source).unwrap_or(""));
        // `is_missing`, on the trimmed field.
        if field.is_empty() || field == "NA" {
            self.fill[j].unwrap_or("")
        } else {
            field
        }
    }

    /// Transforms data row `i` and writes it to its side of `part`.
    fn apply(
        &self,
        part: &mut Part,
        i: u64,
        record: &impl table::Record,
    ) -> Result<(), table::TableError> {
        let plan = self.plan;
        let Some(side) = self.split.side(i, record) else {
            return Ok(());
        };
        let stage: Vec<&str> = (0..plan.stage.len())
            .map(|j| self.value(record, j))
            .collect();
        let averages: Vec<Option<Vec<f64>>> = plan
            .text
            .iter()
            .zip(self.vectors)
            .map(|((c, _), v)| v.average(stage[*c]))
            .collect();
        // Computed fields (derived, Word2Vec) go through `row`, whose buffers are reused from
        // row to row; a stage field is written from the record (or the fill) as is.
        let row = &mut part.row;
        row.resize(plan.outputs.len(), String::new());
        for (o, out) in plan.outputs.iter().zip(row.iter_mut()) {
            match o {
                Out::Stage(_) => {}
                Out::Derived(j) => {
                    out.clear();
                    let x = plan.derive[*j].expr.eval(&|c| stage[c].parse::<f64>().ok());
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
        let fields = plan.outputs.iter().zip(&part.row).map(|(o, out)| match o {
            Out::Stage(c) => stage[*c],
            _ => out.as_str(),
        });
        let s = match side {
            Side::Train => 0,
            Side::Holdout => 1,
        };
        part.writers[s].write_row(fields.clone())?;
        part.rows[s] += 1;
        let profiler = &mut part.profilers[s];
        profiler.row();
        for (j, f) in fields.enumerate() {
            profiler.field(j, f);
        }
        Ok(())
    }
}

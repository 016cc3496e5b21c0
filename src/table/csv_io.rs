//! Reading and writing CSV files: readers with errors that name the file and line, writers
//! that hash what they write, and atomic finishing.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use super::error::TableError;

pub(super) fn reader(path: &Path) -> Result<csv::Reader<BufReader<File>>, TableError> {
    let file = File::open(path).map_err(|source| TableError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(BufReader::with_capacity(1 << 20, file)))
}

/// The line of `path` a `csv` position is on, as an editor numbers it. The `csv` crate counts a
/// record's line before it consumes the `\n` of the previous record's `\r\n`, so in a file
/// whose lines end `\r\n` every record after the first says the line before its own. Called
/// for messages only: it reads the file's first line to tell which ending the file uses.
pub fn line_of(path: &Path, pos: &csv::Position) -> u64 {
    pos.line() + u64::from(pos.record() > 0 && ends_lines_with_crlf(path))
}

/// Whether the file's first line ends with `\r\n`.
fn ends_lines_with_crlf(path: &Path) -> bool {
    use std::io::{BufRead, Read};
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut first = Vec::new();
    let read = BufReader::new(file.take(1 << 20)).read_until(b'\n', &mut first);
    read.is_ok() && first.ends_with(b"\r\n")
}

/// A `csv` read error of `path` as a [`TableError`], with the line as an editor numbers it
/// ([`line_of`]): the data path and `predict` say a bad row the same way.
pub fn csv_err(path: &Path, e: csv::Error) -> TableError {
    let line = e.position().map_or(0, |p| line_of(path, p));
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("expected {expected_len} fields (as in the header), found {len}")
        }
        csv::ErrorKind::Utf8 { err, .. } => {
            return TableError::NotUtf8 {
                path: path.to_path_buf(),
                line,
                field: err.field() + 1,
            }
        }
        _ => e.to_string(),
    };
    TableError::Csv {
        path: path.to_path_buf(),
        line,
        message,
    }
}

pub(super) fn headers(
    path: &Path,
    rdr: &mut csv::Reader<BufReader<File>>,
) -> Result<Vec<String>, TableError> {
    let h = rdr.headers().map_err(|e| csv_err(path, e))?;
    if h.is_empty() {
        return Err(TableError::Empty {
            path: path.to_path_buf(),
        });
    }
    let names: Vec<String> = h.iter().map(|s| s.trim().to_string()).collect();
    unique_names(path, &names)?;
    Ok(names)
}

/// Columns are read by name, so a header must not repeat one: the first name that appears
/// twice is an error naming both of its (1-based) columns.
pub fn unique_names(path: &Path, names: &[String]) -> Result<(), TableError> {
    let mut seen = std::collections::HashMap::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        if let Some(first) = seen.insert(name.as_str(), i) {
            return Err(TableError::DuplicateColumn {
                path: path.to_path_buf(),
                name: name.clone(),
                first: first + 1,
                second: i + 1,
            });
        }
    }
    Ok(())
}

/// Reads just the header row.
pub fn read_header(path: &Path) -> Result<Vec<String>, TableError> {
    headers(path, &mut reader(path)?)
}

/// Calls `f` with each of the first `limit` records after the header.
pub fn for_each_record(
    path: &Path,
    limit: usize,
    mut f: impl FnMut(&csv::StringRecord),
) -> Result<(), TableError> {
    let mut rdr = reader(path)?;
    headers(path, &mut rdr)?;
    let mut record = csv::StringRecord::new();
    for _ in 0..limit {
        match rdr.read_record(&mut record) {
            Ok(true) => f(&record),
            Ok(false) => break,
            Err(e) => return Err(csv_err(path, e)),
        }
    }
    Ok(())
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

/// Appends one CSV row to `out`: the bytes the `csv` crate writes (`\n` after the row, a field
/// quoted only when it holds `,`, `"`, `\r` or `\n`, a row of one empty field written `""`),
/// without its per-byte state machine, since prepare's fields almost never need quotes.
pub fn push_row<'f>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = &'f str>) {
    let start = out.len();
    let mut n = 0;
    for f in fields {
        if n > 0 {
            out.push(b',');
        }
        n += 1;
        push_field(out, f);
    }
    if n == 1 && out.len() == start {
        out.extend_from_slice(b"\"\"");
    }
    out.push(b'\n');
}

/// Appends one field as [`push_row`] writes it: quoted when it holds `,`, `"`, `\r` or `\n`.
pub fn push_field(out: &mut Vec<u8>, f: &str) {
    if needs_quotes(f) {
        push_quoted(out, f);
    } else {
        out.extend_from_slice(f.as_bytes());
    }
}

/// Appends `f` quoted (RFC 4180: in `"`s, each `"` doubled).
pub fn push_quoted(out: &mut Vec<u8>, f: &str) {
    out.push(b'"');
    for b in f.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Whether [`push_field`] quotes `f`.
pub fn needs_quotes(f: &str) -> bool {
    f.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
}

/// A new file that hashes (blake3) what is written to it, so a written output needs no second
/// read for its digest.
pub struct HashedFile {
    path: std::path::PathBuf,
    out: BufWriter<File>,
    hasher: blake3::Hasher,
}

impl HashedFile {
    pub fn create(path: &Path) -> Result<HashedFile, TableError> {
        let file = File::create(path).map_err(|source| TableError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(HashedFile {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            hasher: blake3::Hasher::new(),
        })
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<(), TableError> {
        use std::io::Write;
        // Large writes (a block's rows) on every core; blake3 splits them itself.
        if bytes.len() >= 1 << 20 {
            self.hasher.update_rayon(bytes);
        } else {
            self.hasher.update(bytes);
        }
        self.out
            .write_all(bytes)
            .map_err(|source| TableError::Write {
                path: self.path.clone(),
                source,
            })
    }

    /// Flushes the file; returns the blake3 (hex) of its bytes.
    pub fn finish(self) -> Result<String, TableError> {
        let path = self.path;
        self.out.into_inner().map_err(|e| TableError::Write {
            path,
            source: e.into_error(),
        })?;
        Ok(self.hasher.finalize().to_hex().to_string())
    }
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

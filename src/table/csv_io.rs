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

pub(super) fn csv_err(path: &Path, e: csv::Error) -> TableError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
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
    Ok(h.iter().map(|s| s.trim().to_string()).collect())
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

/// A file writer that hashes (blake3) what it writes, so a written output needs no second read
/// for its digest. A part of a file written in parallel ([`create_part`]) is not hashed: its
/// bytes are hashed when they are appended to the file's first part ([`finish_hashed`]).
pub struct HashingFile {
    file: File,
    hasher: Option<blake3::Hasher>,
}

impl std::io::Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A CSV writer of plain rows on a [`HashingFile`]: the bytes the `csv` crate writes
/// (`\n` after each row, a field quoted only when it holds `,`, `"`, `\r` or `\n`, a row of
/// one empty field written `""`), without its per-byte state machine, since prepare's fields
/// almost never need quotes.
pub struct RowWriter {
    path: std::path::PathBuf,
    out: BufWriter<HashingFile>,
    line: Vec<u8>,
}

impl RowWriter {
    fn create(path: &Path, hasher: Option<blake3::Hasher>) -> Result<RowWriter, TableError> {
        let file = File::create(path).map_err(|source| TableError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(RowWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, HashingFile { file, hasher }),
            line: Vec::with_capacity(256),
        })
    }

    /// Writes one row.
    pub fn write_row<'f>(
        &mut self,
        fields: impl IntoIterator<Item = &'f str>,
    ) -> Result<(), TableError> {
        use std::io::Write;
        let line = &mut self.line;
        line.clear();
        let mut n = 0;
        for f in fields {
            if n > 0 {
                line.push(b',');
            }
            n += 1;
            if f.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
                line.push(b'"');
                for b in f.bytes() {
                    if b == b'"' {
                        line.push(b'"');
                    }
                    line.push(b);
                }
                line.push(b'"');
            } else {
                line.extend_from_slice(f.as_bytes());
            }
        }
        if n == 1 && line.is_empty() {
            line.extend_from_slice(b"\"\"");
        }
        line.push(b'\n');
        self.out
            .write_all(line)
            .map_err(|source| TableError::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn into_file(self) -> Result<HashingFile, TableError> {
        let path = self.path;
        self.out.into_inner().map_err(|e| TableError::Write {
            path,
            source: e.into_error(),
        })
    }
}

/// A [`RowWriter`] on a new file at `path` that hashes its bytes ([`finish_hashed`]).
pub fn create_hashed(path: &Path) -> Result<RowWriter, TableError> {
    RowWriter::create(path, Some(blake3::Hasher::new()))
}

/// A writer like [`create_hashed`]'s for a later part of a file written in parallel; flush it
/// with [`finish_part`], then hand its path to [`finish_hashed`] of the first part.
pub fn create_part(path: &Path) -> Result<RowWriter, TableError> {
    RowWriter::create(path, None)
}

/// Flushes a writer created by [`create_part`].
pub fn finish_part(w: RowWriter) -> Result<(), TableError> {
    w.into_file().map(drop)
}

/// Flushes a writer created by [`create_hashed`], first appending the files `parts` (in order,
/// written by [`create_part`]); returns the blake3 (hex) of the whole file's bytes.
pub fn finish_hashed(w: RowWriter, parts: &[&Path]) -> Result<String, TableError> {
    use std::io::{Read, Write};
    let path = w.path.clone();
    let mut h = w.into_file()?;
    let mut buf = vec![0u8; 1 << 20];
    for part in parts {
        let read = |source| TableError::Open {
            path: part.to_path_buf(),
            source,
        };
        let mut f = File::open(part).map_err(read)?;
        loop {
            let n = f.read(&mut buf).map_err(read)?;
            if n == 0 {
                break;
            }
            h.write_all(&buf[..n]).map_err(|source| TableError::Write {
                path: path.clone(),
                source,
            })?;
        }
    }
    Ok(h.hasher
        .expect("created by `create_hashed`")
        .finalize()
        .to_hex()
        .to_string())
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

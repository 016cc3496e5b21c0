//! The canonical CSV form of a data snapshot (DESIGN.md §5.2), shared by SQL results, Parquet
//! files, globs and CSV files read with non-default options.
//!
//! | value | written as |
//! |---|---|
//! | header | the column names, first line |
//! | NULL / missing | empty field |
//! | integer | decimal digits, `-` sign (`42`, `-7`) |
//! | float | shortest form that reads back to the same value (`0.1`, `2`, `1e300`, `NaN`, `Inf`) |
//! | exact decimal (Postgres `numeric`, Parquet `DECIMAL`) | plain decimal text without trailing zeros (`1.5`, `100`, `-0.005`): the value, not the column's scale |
//! | boolean | `true` / `false` |
//! | timestamp | RFC 3339 in UTC with `Z` (`2024-05-01T10:00:00Z`, fractions only when non-zero) |
//! | date | `YYYY-MM-DD` |
//! | bytes | lowercase hex |
//! | text | as is; quoted (RFC 4180) only when it holds `,`, `"`, CR or LF, or starts/ends with a space |
//! | a row (or header) of one empty field | `""`, not a blank line, which readers skip (since canonical version 2) |
//!
//! Lines end with `\n`. The bytes are hashed while they are written, so a snapshot's digest
//! costs no second read.

use std::io::Write;

use serde::{Deserialize, Serialize};

/// One value of a row, typed as far as the source knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Exact decimal text (Postgres `numeric`, Parquet decimals).
    Decimal(String),
    /// RFC 3339 UTC text, as [`timestamp`] writes it.
    Timestamp(String),
    /// `YYYY-MM-DD`.
    Date(String),
    Text(String),
    Bytes(Vec<u8>),
}

impl Cell {
    /// The field text of the canonical form.
    pub fn render(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Bool(b) => b.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => float(*f),
            Cell::Decimal(s) | Cell::Timestamp(s) | Cell::Date(s) | Cell::Text(s) => s.clone(),
            Cell::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        }
    }

    /// The value and its kind for messages: `` `3` (integer) ``, `` `n/a` (text) ``.
    pub fn described(&self) -> String {
        let kind = match self {
            Cell::Null => return "NULL".into(),
            Cell::Bool(_) => "boolean",
            Cell::Int(_) => "integer",
            Cell::Float(_) => "float",
            Cell::Decimal(_) => "decimal",
            Cell::Timestamp(_) => "timestamp",
            Cell::Date(_) => "date",
            Cell::Text(_) => "text",
            Cell::Bytes(_) => "bytes",
        };
        let mut shown = self.render();
        if shown.chars().count() > 40 {
            shown = shown.chars().take(40).collect::<String>() + "…";
        }
        format!("`{shown}` ({kind})")
    }

    /// Ordering for watermarks: numbers numerically, everything else by its text (RFC 3339 UTC
    /// timestamps with the same precision sort as text). `None` for NULL or mixed kinds.
    pub fn compare(&self, other: &Cell) -> Option<std::cmp::Ordering> {
        use Cell::*;
        match (self, other) {
            (Null, _) | (_, Null) => None,
            (Int(a), Int(b)) => Some(a.cmp(b)),
            (Int(a), Float(b)) => (*a as f64).partial_cmp(b),
            (Float(a), Int(b)) => a.partial_cmp(&(*b as f64)),
            (Float(a), Float(b)) => a.partial_cmp(b),
            (Decimal(a), Decimal(b)) => {
                let (x, y) = (a.parse::<f64>().ok()?, b.parse::<f64>().ok()?);
                x.partial_cmp(&y)
            }
            (Timestamp(a), Timestamp(b)) => {
                let x = chrono::DateTime::parse_from_rfc3339(a).ok()?;
                let y = chrono::DateTime::parse_from_rfc3339(b).ok()?;
                Some(x.cmp(&y))
            }
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            (Date(a), Date(b)) | (Text(a), Text(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// The shortest text that parses back to `f`: plain digits in the usual range, exponent form
/// outside it (so `1e300` is not three hundred zeros).
pub fn float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Inf".into() } else { "-Inf".into() };
    }
    let a = f.abs();
    if a != 0.0 && !(1e-5..1e16).contains(&a) {
        format!("{f:e}")
    } else if f == 0.0 {
        // -0.0 and 0.0 are the same value for a model.
        "0".into()
    } else {
        format!("{f}")
    }
}

/// Plain decimal text without trailing fractional zeros (`1.50` → `1.5`, `2.0` → `2`).
pub fn decimal(text: &str) -> String {
    let t = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    };
    if t == "-0" || t.is_empty() {
        "0".to_string()
    } else {
        t.to_string()
    }
}

/// A float that was a 32-bit float in the source: shortest for its own precision.
pub fn float32(f: f32) -> String {
    if !f.is_finite() {
        return float(f as f64);
    }
    let a = f.abs();
    if a != 0.0 && !(1e-5..1e16).contains(&a) {
        format!("{f:e}")
    } else if f == 0.0 {
        "0".into()
    } else {
        format!("{f}")
    }
}

/// A UTC instant as canonical RFC 3339 text (`Z`, fractional seconds only when non-zero).
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Where canonical rows go: the snapshot's [`CanonicalWriter`], or [`Rows`] in memory.
pub trait RowSink {
    /// One row, its fields already in canonical text.
    fn row<'a>(&mut self, fields: impl Iterator<Item = &'a str>) -> std::io::Result<()>;

    /// One row of typed cells.
    fn cells(&mut self, cells: &[Cell]) -> std::io::Result<()> {
        let texts: Vec<String> = cells.iter().map(Cell::render).collect();
        self.row(texts.iter().map(String::as_str))
    }
}

/// Appends one line of canonical CSV to `line`.
fn encode<'a>(line: &mut Vec<u8>, fields: impl Iterator<Item = &'a str>) {
    let start = line.len();
    let mut n = 0;
    for f in fields {
        if n > 0 {
            line.push(b',');
        }
        n += 1;
        if needs_quotes(f) {
            crate::table::push_quoted(line, f);
        } else {
            line.extend_from_slice(f.as_bytes());
        }
    }
    // A row of one empty field would be a blank line, which readers skip: the row would be lost.
    if n == 1 && line.len() == start {
        line.extend_from_slice(b"\"\"");
    }
    line.push(b'\n');
}

/// Whether a field must be quoted: it holds the delimiter, a quote or a line break, or starts
/// or ends with a space (which some readers would trim).
fn needs_quotes(field: &str) -> bool {
    field
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
        || field.starts_with(' ')
        || field.ends_with(' ')
}

/// Canonical rows (no header) in memory: one file of a glob, converted on a core of its own
/// before [`CanonicalWriter::append`] adds it to the snapshot in its place. Held in pieces of
/// [`PIECE`] bytes: freed pieces of that size are reused by the allocator for the next files,
/// where buffers the size of whole files would each be new pages, and stay resident once freed.
#[derive(Debug, Default)]
pub struct Rows {
    pieces: Vec<Vec<u8>>,
    /// Rows that were canonical text already: a mapped file, from this offset.
    verbatim: Option<(memmap2::Mmap, usize)>,
    count: u64,
}

impl Rows {
    /// `count` rows that are canonical text as they are: `map` from `from` on, each line
    /// ending with `\n` but perhaps the last.
    pub fn verbatim(map: memmap2::Mmap, from: usize, count: u64) -> Rows {
        Rows {
            pieces: Vec::new(),
            verbatim: Some((map, from)),
            count,
        }
    }
}

const PIECE: usize = 1 << 20;

impl RowSink for Rows {
    fn row<'a>(&mut self, fields: impl Iterator<Item = &'a str>) -> std::io::Result<()> {
        let piece = match self.pieces.last_mut() {
            Some(piece) if piece.len() < PIECE => piece,
            _ => {
                self.pieces.push(Vec::with_capacity(PIECE + 4096));
                self.pieces.last_mut().expect("just pushed")
            }
        };
        encode(piece, fields);
        self.count += 1;
        Ok(())
    }
}

/// Writes canonical CSV to a file while hashing it: lines are gathered into blocks of
/// [`BLOCK`] bytes, each hashed and written at once (blake3 hashes a large input several chunks
/// at a time; a line at a time it cannot).
pub struct CanonicalWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    block: Vec<u8>,
    pub rows: u64,
}

const BLOCK: usize = 64 << 10;

impl<W: Write> CanonicalWriter<W> {
    /// A writer whose first line is `header` (written with the first block).
    pub fn new(inner: W, header: &[String]) -> Self {
        let mut block = Vec::with_capacity(BLOCK + 1024);
        encode(&mut block, header.iter().map(String::as_str));
        CanonicalWriter {
            inner,
            hasher: blake3::Hasher::new(),
            block,
            rows: 0,
        }
    }

    fn write_block(&mut self) -> std::io::Result<()> {
        self.hasher.update(&self.block);
        self.inner.write_all(&self.block)?;
        self.block.clear();
        Ok(())
    }

    pub fn write_row(&mut self, cells: &[Cell]) -> std::io::Result<()> {
        self.cells(cells)
    }

    /// A row already in canonical text (e.g. copied from a previous snapshot).
    pub fn write_texts(&mut self, fields: &[String]) -> std::io::Result<()> {
        self.row(fields.iter().map(String::as_str))
    }

    /// Rows converted elsewhere, after those written so far.
    pub fn append(&mut self, rows: Rows) -> std::io::Result<()> {
        self.write_block()?;
        for piece in rows.pieces {
            self.hasher.update(&piece);
            self.inner.write_all(&piece)?;
        }
        self.rows += rows.count;
        match &rows.verbatim {
            Some((map, from)) => self.append_text(&map[*from..], 0),
            None => Ok(()),
        }
    }

    /// `rows` rows that are canonical text already, after those written so far: `text`, whole
    /// lines each ending with `\n` but perhaps the last (whose `\n` is added).
    pub fn append_text(&mut self, text: &[u8], rows: u64) -> std::io::Result<()> {
        self.write_block()?;
        self.hasher.update(text);
        self.inner.write_all(text)?;
        if !text.is_empty() && !text.ends_with(b"\n") {
            self.hasher.update(b"\n");
            self.inner.write_all(b"\n")?;
        }
        self.rows += rows;
        Ok(())
    }

    /// Flushes and returns the inner writer and the blake3 of everything written.
    pub fn finish(mut self) -> std::io::Result<(W, String)> {
        self.write_block()?;
        self.inner.flush()?;
        let digest = self.hasher.finalize().to_hex().to_string();
        Ok((self.inner, digest))
    }
}

impl<W: Write> RowSink for CanonicalWriter<W> {
    fn row<'a>(&mut self, fields: impl Iterator<Item = &'a str>) -> std::io::Result<()> {
        encode(&mut self.block, fields);
        self.rows += 1;
        if self.block.len() >= BLOCK {
            self.write_block()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_of(header: &[&str], rows: &[Vec<Cell>]) -> String {
        let header: Vec<String> = header.iter().map(|s| s.to_string()).collect();
        let mut w = CanonicalWriter::new(Vec::new(), &header);
        for r in rows {
            w.write_row(r).unwrap();
        }
        let (bytes, digest) = w.finish().unwrap();
        assert_eq!(digest, blake3::hash(&bytes).to_hex().to_string());
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn rows_appended_are_the_rows_written_one_by_one() {
        let header = vec!["id".to_string(), "text".to_string()];
        let row = |i: u32| [i.to_string(), format!("text, {i} \"q\"")];
        let mut direct = CanonicalWriter::new(Vec::new(), &header);
        let mut joined = CanonicalWriter::new(Vec::new(), &header);
        let mut rows = Rows::default();
        for i in 0..70_000 {
            direct.write_texts(&row(i)).unwrap();
            match i {
                // Rows written before and after the appended ones keep their places.
                0..10 | 69_990.. => joined.write_texts(&row(i)).unwrap(),
                _ => rows.row(row(i).iter().map(String::as_str)).unwrap(),
            }
            if i == 69_989 {
                assert!(rows.pieces.len() > 1, "more than one piece");
                joined.append(std::mem::take(&mut rows)).unwrap();
            }
        }
        assert_eq!((direct.rows, joined.rows), (70_000, 70_000));
        let (direct, digest) = direct.finish().unwrap();
        assert_eq!(joined.finish().unwrap(), (direct, digest));
    }

    #[test]
    fn numbers_have_one_spelling() {
        assert_eq!(float(0.1), "0.1");
        assert_eq!(float(2.0), "2");
        assert_eq!(float(-0.0), "0");
        assert_eq!(float(1e300), "1e300");
        assert_eq!(float(1.5e-7), "1.5e-7");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(123456.789), "123456.789");
        assert_eq!(float32(0.1f32), "0.1");
        assert_eq!(decimal("1.5000"), "1.5");
        assert_eq!(decimal("-0.000"), "0");
        assert_eq!(decimal("100"), "100");
        for x in [0.1, 1.0 / 3.0, 1e300, 1.5e-7, 6.02214076e23, -2.5] {
            assert_eq!(float(x).parse::<f64>().unwrap(), x, "{x} round-trips");
        }
    }

    #[test]
    fn rows_are_written_in_the_canonical_form() {
        let t = chrono::DateTime::parse_from_rfc3339("2024-05-01T12:00:00+02:00")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let text = csv_of(
            &["id", "x", "ok", "at", "name"],
            &[
                vec![
                    Cell::Int(1),
                    Cell::Float(0.5),
                    Cell::Bool(true),
                    Cell::Timestamp(timestamp(t)),
                    Cell::Text("plain".into()),
                ],
                vec![
                    Cell::Int(-2),
                    Cell::Null,
                    Cell::Bool(false),
                    Cell::Null,
                    Cell::Text("a, \"b\"".into()),
                ],
                vec![
                    Cell::Int(3),
                    Cell::Float(1e20),
                    Cell::Null,
                    Cell::Null,
                    Cell::Text(" padded".into()),
                ],
            ],
        );
        assert_eq!(
            text,
            "id,x,ok,at,name\n1,0.5,true,2024-05-01T10:00:00Z,plain\n-2,,false,,\"a, \"\"b\"\"\"\n3,1e20,,,\" padded\"\n"
        );
    }

    #[test]
    fn a_row_of_one_empty_field_is_read_back() {
        let rows = [
            vec![Cell::Int(1)],
            vec![Cell::Null],
            vec![Cell::Text(String::new())],
        ];
        let text = csv_of(&["x"], &rows);
        assert_eq!(text, "x\n1\n\"\"\n\"\"\n");
        let mut read = csv::Reader::from_reader(text.as_bytes());
        let back: Vec<String> = read.records().map(|r| r.unwrap()[0].to_string()).collect();
        assert_eq!(back, ["1", "", ""]);
        // The same through the rows of a glob's file, appended in their place.
        let mut rows = Rows::default();
        rows.row([""].into_iter()).unwrap();
        let mut w = CanonicalWriter::new(Vec::new(), &["x".to_string()]);
        w.append(rows).unwrap();
        assert_eq!(w.finish().unwrap().0, b"x\n\"\"\n");
    }

    #[test]
    fn watermarks_compare_by_type() {
        use std::cmp::Ordering::*;
        assert_eq!(Cell::Int(10).compare(&Cell::Int(9)), Some(Greater));
        assert_eq!(Cell::Float(0.5).compare(&Cell::Int(1)), Some(Less));
        assert_eq!(
            Cell::Timestamp("2024-01-01T00:00:00.5Z".into())
                .compare(&Cell::Timestamp("2024-01-01T00:00:00Z".into())),
            Some(Greater)
        );
        assert_eq!(Cell::Null.compare(&Cell::Int(1)), None);
    }
}

//! File sources: a CSV file, a Parquet file, or a glob of several, read as one table.
//!
//! A single CSV read with the default options is the snapshot as is (its raw bytes). Anything
//! else — a CSV with another delimiter, NA strings or no header, a Parquet file, a glob — is
//! converted to the canonical CSV form ([`super::canonical`]). Files of a glob are read in the
//! order of their paths (byte-wise sort of the path relative to the project), and every file
//! must have the same columns as the first.
//!
//! Parquet is read with the `parquet` crate's record API (no Arrow): flat schemas of
//! booleans, integers, floats, decimals, strings, binary, dates and timestamps. Nested columns
//! (groups, lists, maps) are refused with the column's name.

use std::fs::{self, File};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::canonical::{self, CanonicalWriter, Cell, RowSink};
use crate::config::Locate;
use crate::error::Diagnostic;

/// How a `path` source is read.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    pub delimiter: u8,
    pub header: bool,
    pub na_strings: Vec<String>,
}

impl CsvOptions {
    pub fn of(locate: &Locate) -> CsvOptions {
        CsvOptions {
            delimiter: locate
                .delimiter
                .as_deref()
                .and_then(|d| d.bytes().next())
                .unwrap_or(b','),
            header: locate.header.unwrap_or(true),
            na_strings: locate.na_strings.clone(),
        }
    }

    pub fn is_default(&self) -> bool {
        self.delimiter == b',' && self.header && self.na_strings.is_empty()
    }
}

/// Whether `path` has glob characters (`*`, `?`, `[`).
pub fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// Whether the `path` source is read as a glob: it has glob characters and names no file as
/// written. A file whose name has `[` (`data/train[1].csv`) is that file, not the pattern
/// that would match `data/train1.csv`.
pub fn reads_as_glob(project: &Path, path: &str) -> bool {
    is_glob(path) && !project.join(path).is_file()
}

pub fn is_parquet(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("parquet" | "pq")
    )
}

/// The regular files `pattern` (a path or a glob, relative to `project`) names now.
pub fn glob_files(project: &Path, pattern: &str) -> Result<Vec<PathBuf>, glob::PatternError> {
    Ok(glob::glob(&project.join(pattern).to_string_lossy())?
        .flatten()
        .filter(|f| f.is_file())
        .collect())
}

/// The files a `path` names, in reading order: the file itself, or a glob's matches sorted by
/// path. Each comes with the path as the user would write it (relative to the project).
pub fn expand(project: &Path, path: &str) -> Result<Vec<(PathBuf, String)>> {
    Ok(expand_stat(project, path)?
        .into_iter()
        .map(|(file, shown, _)| (file, shown))
        .collect())
}

/// [`expand`], with each file's metadata (of the file a symlink names): one `stat` a file, which
/// the stat cache takes as it is. A glob whose wildcards are all in its last component
/// (`parts/*.csv`, the usual case) reads that one directory and stats each match relative to it
/// (a 10,000-file source costs one directory read and 10,000 short lookups); any other glob goes
/// through the `glob` crate.
pub fn expand_stat(project: &Path, path: &str) -> Result<Vec<(PathBuf, String, fs::Metadata)>> {
    let no_match = || {
        Diagnostic::new(format!("no file matches `{path}`"))
            .hint("check `[locate] path` in `ml.toml`; paths are relative to the project directory")
    };
    if !reads_as_glob(project, path) {
        let file = project.join(path);
        return match fs::metadata(&file) {
            Ok(meta) if meta.is_file() => Ok(vec![(file, path.to_string(), meta)]),
            Ok(meta) if meta.is_dir() => Err(Diagnostic::new(format!(
                "`{path}` is a directory, not a data file"
            ))
            .hint(format!(
                "name one file, or read all of its files as one table with a glob: `path = \"{}/*.csv\"`",
                path.trim_end_matches('/')
            ))
            .into()),
            Ok(_) => Err(Diagnostic::new(format!(
                "`{path}` is not a regular file (a device, a FIFO or a socket)"
            ))
            .hint("copy the data to a file and name it in `[locate] path`")
            .into()),
            Err(_) => Err(Diagnostic::new(format!("data file `{path}` does not exist"))
                .hint("check `[locate] path` in `ml.toml`; paths are relative to the project directory")
                .into()),
        };
    }
    let invalid = |e: glob::PatternError| {
        Diagnostic::new(format!(
            "`locate.path` is not a valid glob: {} at character {} of `{path}`",
            e.msg,
            e.pos + 1
        ))
        .hint(
            "`*` matches within a name, `**` across directories, `?` one character, `[abc]` a set; `[[]` is a literal `[`",
        )
    };
    // Checked as written, so that the position counts in `path`, not in the joined path.
    glob::Pattern::new(path).map_err(invalid)?;
    let mut files = match simple_glob(path) {
        Some((dir, name)) => {
            let pattern = glob::Pattern::new(name).map_err(invalid)?;
            one_directory(project, dir, &pattern)?
        }
        None => {
            let pattern = project.join(path);
            let entries = glob::glob(&pattern.to_string_lossy()).map_err(invalid)?;
            let mut files = Vec::new();
            for entry in entries {
                let file =
                    entry.map_err(|e| anyhow::anyhow!("reading `{}`: {e}", e.path().display()))?;
                if let Some(meta) = regular(fs::metadata(&file)) {
                    let shown = file
                        .strip_prefix(project)
                        .unwrap_or(&file)
                        .to_string_lossy()
                        .into_owned();
                    files.push((file, shown, meta));
                }
            }
            files
        }
    };
    if files.is_empty() {
        return Err(no_match().into());
    }
    files.sort_by(|a, b| a.1.as_bytes().cmp(b.1.as_bytes()));
    Ok(files)
}

/// A glob whose wildcards are all in its last component, as (directory, name pattern): `**`
/// and wildcards in directories are left to the `glob` crate.
fn simple_glob(path: &str) -> Option<(&str, &str)> {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    (!is_glob(dir) && !name.contains("**") && !name.is_empty() && !dir.starts_with('/'))
        .then_some((dir, name))
}

/// Matches from which [`one_directory`] stats on every core.
const PARALLEL_STATS: usize = 256;

/// The regular files of `project/dir` whose names match `pattern` (following symlinks, as the
/// `glob` crate does), with their metadata.
fn one_directory(
    project: &Path,
    dir: &str,
    pattern: &glob::Pattern,
) -> Result<Vec<(PathBuf, String, fs::Metadata)>> {
    let base = project.join(dir);
    let entries = match fs::read_dir(&base) {
        Ok(entries) => entries,
        // No such directory: no match (the caller says so).
        Err(_) => return Ok(Vec::new()),
    };
    let mut matching = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| anyhow::anyhow!("reading `{}`: {e}", base.display()))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| pattern.matches(n))
        {
            matching.push(entry);
        }
    }
    let stat = |entry: std::fs::DirEntry| {
        // `DirEntry::metadata` does not follow a symlink (a stat relative to the directory);
        // a symlink is stat'ed through its path.
        let meta = match entry.file_type() {
            Ok(t) if t.is_symlink() => fs::metadata(entry.path()),
            _ => entry.metadata(),
        };
        let meta = regular(meta)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let shown = match dir {
            "" => name,
            dir => format!("{dir}/{name}"),
        };
        Some((entry.path(), shown, meta))
    };
    // The stats on every core when there are many: with thousands of files they are most of
    // a no-op run; for a few, starting threads costs more than it saves.
    use rayon::prelude::*;
    let files = match matching.len() >= PARALLEL_STATS {
        true => matching.into_par_iter().filter_map(stat).collect(),
        false => matching.into_iter().filter_map(stat).collect(),
    };
    Ok(files)
}

/// The metadata of a regular file, else none.
fn regular(meta: std::io::Result<fs::Metadata>) -> Option<fs::Metadata> {
    meta.ok().filter(fs::Metadata::is_file)
}

/// How much of a glob is converted in memory at once.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// A file up to this size is converted in memory, several at once on every core; a larger
    /// one is streamed into the snapshot on its own. (A Parquet file counts
    /// [`PARQUET_GROWTH`] times its size: its CSV is larger than its compressed columns.)
    in_memory: u64,
    /// The most input converted at once: a window of consecutive files. The next window is
    /// converted while the last one's rows are hashed and written, so at most two are in
    /// memory.
    window: u64,
    /// How much of a streamed file is read at once: its lines are taken as they are a
    /// window at a time ([`stream_rows`]).
    stream: usize,
}

const LIMITS: Limits = Limits {
    in_memory: 16 << 20,
    window: 32 << 20,
    stream: 8 << 20,
};
const PARQUET_GROWTH: u64 = 4;

/// Writes the files, in order, as one canonical CSV to `out`. Returns the writer back, the
/// digest of what was written, and the number of rows. The bytes, and the first error met in
/// file order, are those of converting the files one after another.
pub fn convert<W: Write + Send>(
    files: &[(PathBuf, String)],
    options: &CsvOptions,
    out: W,
) -> Result<(W, String, u64)> {
    convert_in(files, options, out, LIMITS)
}

fn convert_in<W: Write + Send>(
    files: &[(PathBuf, String)],
    options: &CsvOptions,
    out: W,
    limits: Limits,
) -> Result<(W, String, u64)> {
    use rayon::prelude::*;
    let mut joined = Joined {
        writer: None,
        out: Some(out),
        first: None,
    };
    let mut converted: Vec<(&(PathBuf, String), Converted)> = Vec::new();
    // The streamed files' two windows, reused from file to file.
    let mut buffers = [Vec::new(), Vec::new()];
    let weights: Vec<u64> = files.iter().map(|(file, _)| weight(file)).collect();
    let mut done = 0;
    while done < files.len() {
        let window = window(&weights[done..], limits);
        let now = &files[done..done + window];
        let streamed = window == 1 && weights[done] > limits.in_memory;
        done += window;
        if streamed {
            joined.add_all(std::mem::take(&mut converted))?;
            let (file, shown) = &now[0];
            let mut table = open(file, shown, options)?;
            let w = joined.header(table.header(), shown)?;
            match options.is_default() {
                true => stream_rows(file, &mut table, w, limits.stream, &mut buffers).map(drop)?,
                false => table.copy_rows(w)?,
            }
            continue;
        }
        let last = std::mem::take(&mut converted);
        let (added, next) = rayon::join(
            || joined.add_all(last),
            || {
                now.par_iter()
                    .map(|f| (f, convert_one(&f.0, &f.1, options)))
                    .collect()
            },
        );
        added?;
        converted = next;
    }
    joined.add_all(converted)?;
    let w = joined.writer.expect("at least one file");
    let rows = w.rows;
    let (out, digest) = w.finish()?;
    Ok((out, digest, rows))
}

/// How many of the files of these [`weight`]s (at least one) are converted together:
/// consecutive small files up to a window's bytes of input.
fn window(weights: &[u64], limits: Limits) -> usize {
    let mut total = 0;
    for (n, &w) in weights.iter().enumerate() {
        if n > 0 && (w > limits.in_memory || total + w > limits.window) {
            return n;
        }
        total += w;
    }
    weights.len()
}

/// What a file's conversion holds in memory, about.
fn weight(file: &Path) -> u64 {
    let len = fs::metadata(file).map_or(0, |m| m.len());
    match is_parquet(file) {
        true => len.saturating_mul(PARQUET_GROWTH),
        false => len,
    }
}

/// One file converted on its own: its header, and its rows or the error that stopped them
/// (the header is checked first, as when the files are read one after another).
type Converted = Result<(Vec<String>, Result<canonical::Rows>)>;

fn convert_one(file: &Path, shown: &str, options: &CsvOptions) -> Converted {
    let mut table = open(file, shown, options)?;
    if options.is_default() && matches!(table, Table::Csv { .. }) {
        if let Some(rows) = verbatim_rows(file, table.header().len()) {
            return Ok((table.header(), Ok(rows)));
        }
    }
    let mut rows = canonical::Rows::default();
    let copied = table.copy_rows(&mut rows).map(|()| rows);
    Ok((table.header(), copied))
}

/// The rows of a CSV file read with the default options, as they are, when they are already
/// canonical text ([`body_start`] and [`canonical_lines`]): then the CSV reader would return the
/// fields as they are written and the canonical writer write them back unchanged, so the
/// file's bytes after its header are the conversion (plus a last `\n`), found without parsing
/// a field. Otherwise none, and the file is converted field by field (which also reports what
/// is wrong with it).
fn verbatim_rows(file: &Path, width: usize) -> Option<canonical::Rows> {
    let f = File::open(file).ok()?;
    // SAFETY: as for any map of a file, a concurrent truncation would fault; source files are
    // mapped to be hashed the same way (`store::hash_file`).
    // Populated in one call, since every page is read.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&f) }.ok()?;
    let start = body_start(&map)?;
    let rows = canonical_lines(&map[start..], width)?;
    Some(canonical::Rows::verbatim(map, start, rows))
}

/// Where the rows start in a file that begins with `data`: after a header line that is
/// UTF-8 with no `"` and no `\r`, and not blank even without a UTF-8 BOM (the CSV reader strips
/// the BOM and skips blank lines, so the header it read would be a later line). None when the
/// header line is not such a line, or does not end within `data`.
fn body_start(data: &[u8]) -> Option<usize> {
    let end = memchr::memchr(b'\n', data)?;
    let line = &data[..end];
    let clean = memchr::memchr2(b'"', b'\r', line).is_none() && std::str::from_utf8(line).is_ok();
    let blank = line
        .strip_prefix("\u{feff}".as_bytes())
        .unwrap_or(line)
        .is_empty();
    (clean && !blank).then_some(end + 1)
}

/// The number of rows in `body`, whole lines (each ending with `\n` but perhaps the last),
/// when they are canonical text already: UTF-8 with no `"` and no `\r`, every line of `width`
/// fields, none blank, no field starting or ending with a space. None otherwise.
fn canonical_lines(body: &[u8], width: usize) -> Option<u64> {
    if memchr::memchr2(b'"', b'\r', body).is_some() || std::str::from_utf8(body).is_err() {
        return None;
    }
    let edge = |b: Option<&u8>| matches!(b, None | Some(b',' | b'\n'));
    for at in memchr::memchr_iter(b' ', body) {
        if edge(at.checked_sub(1).map(|i| &body[i])) || edge(body.get(at + 1)) {
            return None;
        }
    }
    let fields = |line: &[u8]| line.iter().filter(|&&b| b == b',').count() + 1;
    let mut rows = 0;
    let mut start = 0;
    while start < body.len() {
        let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |n| start + n);
        let line = &body[start..end];
        if line.is_empty() || fields(line) != width {
            return None;
        }
        rows += 1;
        start = end + 1;
    }
    Some(rows)
}

/// A file too large to convert in memory, streamed into `w`, read with the default options:
/// its lines are read `window` bytes at a time, and each window of whole lines that is
/// canonical text already ([`canonical_lines`]) is written as it is. From the first window
/// that is not (or a line longer than a window), the CSV reader converts the rest field by
/// field, starting at that window's first line: the bytes, and any error with its line number,
/// are those of converting the whole file field by field. Returns the rows taken as they are.
fn stream_rows<W: Write + Send>(
    file: &Path,
    table: &mut Table,
    w: &mut CanonicalWriter<W>,
    window: usize,
    buffers: &mut [Vec<u8>; 2],
) -> Result<u64> {
    let Table::Csv {
        reader,
        header,
        shown,
        ..
    } = table
    else {
        return table.copy_rows(w).map(|()| 0);
    };
    let (width, shown) = (header.len(), shown.clone());
    let read = |e: std::io::Error| anyhow::anyhow!("cannot read `{shown}`: {e}");
    let mut f = File::open(file).map_err(read)?;
    let [buf, next] = buffers;
    buf.clear();
    buf.reserve(window.max(1) + 4096);
    let mut eof = fill(&mut f, buf, window).map_err(read)?;
    let Some(mut at) = body_start(buf) else {
        // The CSV reader is right after the header it read.
        return table.copy_rows(w).map(|()| 0);
    };
    // Where `buf` starts in the file, and the rows written as they are.
    let (mut base, mut rows) = (0u64, 0u64);
    let mut lines = whole_lines(&buf[at..], eof, width);
    next.clear();
    next.reserve(buf.capacity());
    // Each window is hashed and written while the next is read and checked.
    while let Some((end, n)) = lines {
        let cut = at + end;
        // A line the window's end cut starts the next window.
        next.clear();
        next.extend_from_slice(&buf[cut..]);
        let (written, read_next) = rayon::join(
            || w.append_text(&buf[at..cut], n),
            || match eof {
                true => Ok((true, None)),
                false => fill(&mut f, next, window).map(|eof| (eof, whole_lines(next, eof, width))),
            },
        );
        written?;
        rows += n;
        if eof {
            return Ok(rows);
        }
        (eof, lines) = read_next.map_err(read)?;
        std::mem::swap(buf, next);
        base += cut as u64;
        at = 0;
    }
    // The rest field by field, from the first line not written: line 1 is the header.
    let mut position = csv::Position::new();
    position
        .set_byte(base + at as u64)
        .set_line(rows + 2)
        .set_record(rows + 1);
    reader.seek(position).map_err(|e| csv_error(&shown, e))?;
    table.copy_rows(w).map(|()| rows)
}

/// The whole lines at the start of `data` (all of it once the file `ended`), when they are
/// canonical text already ([`canonical_lines`]): their length and number. None when they are
/// not, or when no line ends in `data`.
fn whole_lines(data: &[u8], ended: bool, width: usize) -> Option<(usize, u64)> {
    let end = match ended {
        true => data.len(),
        false => memchr::memrchr(b'\n', data)? + 1,
    };
    Some((end, canonical_lines(&data[..end], width)?))
}

/// Reads from `f` onto the end of `buf` until it holds `window` bytes (at least one more) or
/// the file ends; whether it ended.
fn fill(f: &mut File, buf: &mut Vec<u8>, window: usize) -> std::io::Result<bool> {
    use std::io::Read;
    let want = window.saturating_sub(buf.len()).max(1) as u64;
    let got = f.take(want).read_to_end(buf)?;
    Ok((got as u64) < want)
}

/// The snapshot as its files are added, in order.
struct Joined<W: Write> {
    writer: Option<CanonicalWriter<W>>,
    out: Option<W>,
    /// The first file's header, and its name.
    first: Option<(Vec<String>, String)>,
}

impl<W: Write> Joined<W> {
    /// The writer for file `shown`'s rows, once its header is the first file's (the first
    /// file's header starts the snapshot).
    fn header(&mut self, header: Vec<String>, shown: &str) -> Result<&mut CanonicalWriter<W>> {
        match &self.first {
            None => {
                let out = self.out.take().expect("the first file");
                self.writer = Some(CanonicalWriter::new(out, &header));
                self.first = Some((header, shown.to_string()));
            }
            Some((expected, first)) if *expected != header => {
                return Err(Diagnostic::new(format!(
                    "`{shown}` has different columns from `{first}`: [{}] instead of [{}]",
                    header.join(", "),
                    expected.join(", ")
                ))
                .hint("every file of a glob must have the same header, in the same order")
                .into());
            }
            Some(_) => {}
        }
        Ok(self.writer.as_mut().expect("made for the first file"))
    }

    fn add_all(&mut self, converted: Vec<(&(PathBuf, String), Converted)>) -> Result<()> {
        for ((_, shown), c) in converted {
            let (header, rows) = c?;
            let w = self.header(header, shown)?;
            w.append(rows?)?;
        }
        Ok(())
    }
}

enum Table {
    Csv {
        reader: csv::Reader<BufReader<File>>,
        header: Vec<String>,
        first: Option<csv::StringRecord>,
        shown: String,
        na: Vec<String>,
    },
    Parquet {
        reader: parquet::file::serialized_reader::SerializedFileReader<File>,
        header: Vec<String>,
        shown: String,
    },
}

fn open(file: &Path, shown: &str, options: &CsvOptions) -> Result<Table> {
    let f = File::open(file).map_err(|e| anyhow::anyhow!("cannot read `{shown}`: {e}"))?;
    if is_parquet(file) {
        use parquet::file::reader::FileReader;
        // The `parquet` crate panics on some damaged files: its calls go through the boundary.
        let opened = crate::panic_boundary::catch(|| {
            let reader = parquet::file::serialized_reader::SerializedFileReader::new(f)?;
            let header = reader
                .metadata()
                .file_metadata()
                .schema_descr()
                .root_schema()
                .get_fields()
                .iter()
                .map(|t| t.name().to_string())
                .collect();
            Ok::<_, parquet::errors::ParquetError>((reader, header))
        })
        .map_err(|p| decoder_failed(shown, "its footer and schema", p))?;
        let (reader, header) = opened.map_err(|e| unreadable(shown, "Parquet", e))?;
        return Ok(Table::Parquet {
            reader,
            header,
            shown: shown.to_string(),
        });
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(options.delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 20, f));
    let mut first = csv::StringRecord::new();
    let got = reader
        .read_record(&mut first)
        .map_err(|e| csv_error(shown, e))?;
    if !got {
        return Err(Diagnostic::new(format!("`{shown}` is empty"))
            .hint("a CSV file needs a header row (or `header = false` and at least one row)")
            .into());
    }
    let (header, first) = if options.header {
        (first.iter().map(str::to_string).collect(), None)
    } else {
        (
            (1..=first.len()).map(|i| format!("C{i}")).collect(),
            Some(first),
        )
    };
    Ok(Table::Csv {
        reader,
        header,
        first,
        shown: shown.to_string(),
        na: options.na_strings.clone(),
    })
}

fn unreadable(shown: &str, format: &str, e: impl std::fmt::Display) -> anyhow::Error {
    Diagnostic::new(format!("`{shown}` is not a readable {format} file: {e}"))
        .hint("check the file, or its extension (`.parquet`/`.pq` are read as Parquet, anything else as CSV)")
        .into()
}

/// A panic inside the `parquet` crate, caught at the boundary, as an unreadable file.
fn decoder_failed(shown: &str, what: &str, p: crate::panic_boundary::Panic) -> anyhow::Error {
    Diagnostic::new(format!(
        "`{shown}` is not a readable Parquet file: the Parquet decoder failed while reading {what} ({})",
        p.message
    ))
    .hint("the file is probably damaged or truncated: write it again, or check that another Parquet reader opens it")
    .into()
}

fn csv_error(shown: &str, e: csv::Error) -> anyhow::Error {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    if let csv::ErrorKind::Utf8 { err, .. } = e.kind() {
        return Diagnostic::new(format!(
            "`{shown}` line {line}: field {} is not UTF-8 text",
            err.field() + 1
        ))
        .hint(format!("mlbuild reads CSV as UTF-8; re-encode the file, e.g. `iconv -f latin1 -t utf-8 {shown} > {shown}.utf8` (if it is Latin-1), and point `[locate] path` at the result"))
        .into();
    }
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields (as in the first row), found {len}"),
        _ => e.to_string(),
    };
    Diagnostic::new(format!("`{shown}` line {line}: {message}"))
        .hint("every row must have as many fields as the header; check `[locate] delimiter` and quoting")
        .into()
}

impl Table {
    fn header(&self) -> Vec<String> {
        match self {
            Table::Csv { header, .. } | Table::Parquet { header, .. } => header.clone(),
        }
    }

    fn copy_rows(&mut self, w: &mut impl RowSink) -> Result<()> {
        match self {
            Table::Csv {
                reader,
                header,
                first,
                shown,
                na,
            } => {
                let width = header.len();
                let mut record = first.take().unwrap_or_default();
                let mut pending = !record.is_empty();
                loop {
                    if !pending
                        && !reader
                            .read_record(&mut record)
                            .map_err(|e| csv_error(shown, e))?
                    {
                        break;
                    }
                    pending = false;
                    if record.len() != width {
                        let line = record.position().map(|p| p.line()).unwrap_or(0);
                        return Err(Diagnostic::new(format!(
                            "`{shown}` line {line}: expected {width} fields (as in the header), found {}",
                            record.len()
                        ))
                        .hint("every row must have as many fields as the header; check `[locate] delimiter` and quoting")
                        .into());
                    }
                    let missing = |f: &str| na.iter().any(|n| n == f || n == f.trim());
                    w.row(record.iter().map(|f| if missing(f) { "" } else { f }))?;
                }
                Ok(())
            }
            Table::Parquet {
                reader,
                header,
                shown,
            } => {
                use parquet::file::reader::FileReader;
                let mut rows = crate::panic_boundary::catch(|| reader.get_row_iter(None))
                    .map_err(|p| decoder_failed(shown, "its schema", p))?
                    .map_err(|e| unreadable(shown, "Parquet", e))?;
                let mut cells = Vec::with_capacity(header.len());
                let mut index = 0u64;
                loop {
                    index += 1;
                    let row = crate::panic_boundary::catch(|| rows.next())
                        .map_err(|p| decoder_failed(shown, &format!("row {index}"), p))?;
                    let Some(row) = row else { break };
                    let row = row.map_err(|e| unreadable(shown, "Parquet", e))?;
                    cells.clear();
                    for (name, field) in row.get_column_iter() {
                        cells.push(parquet_cell(shown, name, field)?);
                    }
                    w.cells(&cells)?;
                }
                Ok(())
            }
        }
    }
}

fn parquet_cell(shown: &str, name: &str, field: &parquet::record::Field) -> Result<Cell> {
    use parquet::record::Field as F;
    Ok(match field {
        F::Null => Cell::Null,
        F::Bool(b) => Cell::Bool(*b),
        F::Byte(v) => Cell::Int(*v as i64),
        F::Short(v) => Cell::Int(*v as i64),
        F::Int(v) => Cell::Int(*v as i64),
        F::Long(v) => Cell::Int(*v),
        F::UByte(v) => Cell::Int(*v as i64),
        F::UShort(v) => Cell::Int(*v as i64),
        F::UInt(v) => Cell::Int(*v as i64),
        F::ULong(v) => match i64::try_from(*v) {
            Ok(i) => Cell::Int(i),
            Err(_) => Cell::Decimal(v.to_string()),
        },
        F::Float16(v) => Cell::Decimal(canonical::float32(v.to_f32())),
        F::Float(v) => Cell::Decimal(canonical::float32(*v)),
        F::Double(v) => Cell::Float(*v),
        F::Decimal(d) => Cell::Decimal(decimal_text(d.data(), d.scale()).ok_or_else(|| {
            Diagnostic::new(format!(
                "`{shown}`: column `{name}` holds a decimal mlbuild cannot read ({} bytes, scale {}; at most 16 bytes and a scale of ±{MAX_DECIMAL_SCALE})",
                d.data().len(),
                d.scale()
            ))
        })?),
        F::Str(s) => Cell::Text(s.clone()),
        F::Bytes(b) => Cell::Bytes(b.data().to_vec()),
        F::Date(days) => Cell::Date(
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                .expect("epoch")
                .checked_add_signed(chrono::Duration::days(i64::from(*days)))
                .ok_or_else(|| {
                    Diagnostic::new(format!(
                        "`{shown}`: column `{name}` holds a date {days} days from 1970-01-01, past the years mlbuild can write"
                    ))
                    .hint("check the column's values; a date type holding something else (an id, a timestamp) is a common cause")
                })?
                .format("%Y-%m-%d")
                .to_string(),
        ),
        F::TimestampMillis(ms) => Cell::Timestamp(
            chrono::DateTime::from_timestamp_millis(*ms)
                .map(canonical::timestamp)
                .unwrap_or_default(),
        ),
        F::TimestampMicros(us) => Cell::Timestamp(
            chrono::DateTime::from_timestamp_micros(*us)
                .map(canonical::timestamp)
                .unwrap_or_default(),
        ),
        F::Group(_) | F::ListInternal(_) | F::MapInternal(_) => {
            return Err(Diagnostic::new(format!(
                "`{shown}`: column `{name}` is nested (a struct, list or map), which mlbuild cannot read as a table column"
            ))
            .hint("flatten it when writing the file, or read the data with `[locate] sql`")
            .into())
        }
    })
}

/// The largest decimal scale (either sign) read: Parquet allows 0 to 38, so anything far past
/// that is a damaged schema, and a scale of `i32::MIN` would ask for 2 GB of zeros.
const MAX_DECIMAL_SCALE: i32 = 100;

/// The plain decimal text of a big-endian two's-complement unscaled value and its scale.
fn decimal_text(bytes: &[u8], scale: i32) -> Option<String> {
    if bytes.len() > 16 || !(-MAX_DECIMAL_SCALE..=MAX_DECIMAL_SCALE).contains(&scale) {
        return None;
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut buf = if negative { [0xffu8; 16] } else { [0u8; 16] };
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    let value = i128::from_be_bytes(buf);
    let digits = value.unsigned_abs().to_string();
    let sign = if value < 0 { "-" } else { "" };
    if scale <= 0 {
        return Some(format!("{sign}{digits}{}", "0".repeat((-scale) as usize)));
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    Some(canonical::decimal(&format!("{sign}{int}.{frac}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(decimal_text(&150i32.to_be_bytes(), 2).unwrap(), "1.5");
        assert_eq!(decimal_text(&(-5i64).to_be_bytes(), 3).unwrap(), "-0.005");
        assert_eq!(decimal_text(&[0x01], 0).unwrap(), "1");
        assert_eq!(decimal_text(&[0x01], -2).unwrap(), "100");
        // A damaged schema's scale: refused, not an overflow or gigabytes of zeros.
        assert_eq!(decimal_text(&[0x01], i32::MIN), None);
        assert_eq!(decimal_text(&[0x01], i32::MAX), None);
    }

    #[test]
    fn csv_options_read_a_semicolon_file_without_header() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.csv");
        std::fs::write(&f, "1;x;?\n2;y z;3\n").unwrap();
        let options = CsvOptions {
            delimiter: b';',
            header: false,
            na_strings: vec!["?".into()],
        };
        let (out, digest, rows) = convert(&[(f, "a.csv".into())], &options, Vec::new()).unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "C1,C2,C3\n1,x,\n2,y z,3\n"
        );
        assert_eq!(rows, 2);
        assert_eq!(digest, blake3::hash(&out).to_hex().to_string());
    }

    /// The one-directory path finds what the `glob` crate finds: the same files, names and
    /// order, symlinks followed, directories and broken links left out, hidden files matched.
    #[test]
    fn a_simple_glob_finds_what_the_glob_crate_finds() {
        let dir = tempfile::tempdir().unwrap();
        let parts = dir.path().join("parts");
        std::fs::create_dir_all(parts.join("sub.csv")).unwrap();
        for name in ["b.csv", "a.csv", ".hidden.csv", "c.txt", "d e.csv"] {
            std::fs::write(parts.join(name), "a\n1\n").unwrap();
        }
        std::os::unix::fs::symlink(parts.join("a.csv"), parts.join("link.csv")).unwrap();
        std::os::unix::fs::symlink(parts.join("gone.csv"), parts.join("broken.csv")).unwrap();
        std::fs::write(dir.path().join("top.csv"), "a\n1\n").unwrap();
        for pattern in [
            "parts/*.csv",
            "parts/?.csv",
            "parts/[ab].csv",
            "*.csv",
            "parts/*",
        ] {
            let ours = expand(dir.path(), pattern).unwrap();
            let mut theirs: Vec<(PathBuf, String)> =
                glob::glob(&dir.path().join(pattern).to_string_lossy())
                    .unwrap()
                    .flatten()
                    .filter(|f| f.is_file())
                    .map(|f| {
                        let shown = f
                            .strip_prefix(dir.path())
                            .unwrap()
                            .to_string_lossy()
                            .into_owned();
                        (f, shown)
                    })
                    .collect();
            theirs.sort_by(|a, b| a.1.as_bytes().cmp(b.1.as_bytes()));
            assert_eq!(ours, theirs, "{pattern}");
        }
        let names: Vec<String> = expand(dir.path(), "parts/*.csv")
            .unwrap()
            .into_iter()
            .map(|(_, shown)| shown)
            .collect();
        assert_eq!(
            names,
            [
                "parts/.hidden.csv",
                "parts/a.csv",
                "parts/b.csv",
                "parts/d e.csv",
                "parts/link.csv"
            ]
        );
        // Enough matches to stat them on every core: the same answer.
        let many = dir.path().join("many");
        std::fs::create_dir(&many).unwrap();
        for i in 0..PARALLEL_STATS + 10 {
            std::fs::write(many.join(format!("p{i}.csv")), "a\n1\n").unwrap();
        }
        std::fs::create_dir(many.join("p0.dir.csv")).unwrap();
        let found = expand(dir.path(), "many/p*.csv").unwrap();
        let theirs = glob::glob(&many.join("p*.csv").to_string_lossy())
            .unwrap()
            .flatten()
            .filter(|f| f.is_file())
            .count();
        assert_eq!(
            (found.len(), theirs),
            (PARALLEL_STATS + 10, PARALLEL_STATS + 10)
        );
        assert!(found.windows(2).all(|w| w[0].1 < w[1].1), "sorted");
        let e = expand(dir.path(), "nowhere/*.csv").unwrap_err();
        assert_eq!(e.to_string(), "no file matches `nowhere/*.csv`");
    }

    /// Limits that stream every file (read a byte at a time, or a few lines), put every file
    /// in one window, and a few in between.
    const EVERY_LIMIT: [Limits; 5] = [
        Limits {
            in_memory: 0,
            window: 0,
            stream: 1,
        },
        Limits {
            in_memory: 0,
            window: 0,
            stream: 24,
        },
        Limits {
            in_memory: 400,
            window: 1000,
            stream: 64,
        },
        Limits {
            in_memory: u64::MAX,
            window: u64::MAX,
            stream: 1,
        },
        LIMITS,
    ];

    /// `files` converted field by field, one after another: what any other way must make of
    /// them (bytes, digest and rows, or the error).
    fn field_by_field(
        files: &[(PathBuf, String)],
        options: &CsvOptions,
    ) -> Result<(Vec<u8>, String, u64)> {
        let mut joined = Joined {
            writer: None,
            out: Some(Vec::new()),
            first: None,
        };
        for (file, shown) in files {
            let mut table = open(file, shown, options)?;
            table.copy_rows(joined.header(table.header(), shown)?)?;
        }
        let w = joined.writer.expect("at least one file");
        let rows = w.rows;
        let (out, digest) = w.finish()?;
        Ok((out, digest, rows))
    }

    /// Whether `a` and `b` are the same conversion, or the same error.
    fn same(a: &Result<(Vec<u8>, String, u64)>, b: &Result<(Vec<u8>, String, u64)>) -> bool {
        match (a, b) {
            (Ok(a), Ok(b)) => a == b,
            (Err(a), Err(b)) => a.to_string() == b.to_string(),
            _ => false,
        }
    }

    /// `n` CSV files of 0 to ~60 rows with quotes, NA strings, padded and empty fields and
    /// CRLF line ends, in `dir`, in glob order.
    fn parts(dir: &Path, n: usize) -> Vec<(PathBuf, String)> {
        let mut files = Vec::new();
        for k in 0..n {
            let mut text = String::from("id,name,score\r\n");
            for r in 0..(k * 7) % 61 {
                let name = match (k + r) % 5 {
                    0 => "\"a, \"\"quoted\"\" one\"".to_string(),
                    1 => " padded ".to_string(),
                    2 => "NA".to_string(),
                    3 => String::new(),
                    _ => format!("n{k}-{r}"),
                };
                text.push_str(&format!("{k}{r},{name},{}\n", (r as f64) / 8.0));
            }
            let shown = format!("part-{k:03}.csv");
            std::fs::write(dir.join(&shown), text).unwrap();
            files.push((dir.join(&shown), shown));
        }
        files
    }

    #[test]
    fn a_glob_converted_in_windows_is_its_files_one_after_another() {
        let dir = tempfile::tempdir().unwrap();
        let files = parts(dir.path(), 40);
        let options = CsvOptions {
            na_strings: vec!["NA".into()],
            ..CsvOptions::of(&Locate::default())
        };
        // Each file converted on its own, field by field, then joined: the header once, every
        // file's rows in order.
        let mut expected = String::new();
        let mut expected_rows = 0;
        for (k, file) in files.iter().enumerate() {
            let (out, _, rows) = field_by_field(std::slice::from_ref(file), &options).unwrap();
            let text = String::from_utf8(out).unwrap();
            let body = text.split_once('\n').unwrap().1;
            expected.push_str(if k == 0 { &text } else { body });
            expected_rows += rows;
        }
        assert!(expected.contains("\"a, \"\"quoted\"\" one\""), "{expected}");
        assert!(expected.contains(",\" padded \","), "{expected}");
        for limits in EVERY_LIMIT {
            let (out, digest, rows) = convert_in(&files, &options, Vec::new(), limits).unwrap();
            assert_eq!(
                String::from_utf8(out.clone()).unwrap(),
                expected,
                "{limits:?}"
            );
            assert_eq!(
                digest,
                blake3::hash(&out).to_hex().to_string(),
                "{limits:?}"
            );
            assert_eq!(rows, expected_rows, "{limits:?}");
        }
    }

    /// A file whose rows are taken as they are converts to what the field-by-field conversion
    /// makes of it, and a file that is not taken is left to that conversion: random files of
    /// fields, commas, spaces, quotes, CRs, blank lines and non-ASCII text, with and without a
    /// last line end, converted both ways (or failing with the same error).
    #[test]
    fn rows_taken_as_they_are_are_those_converted_field_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let options = CsvOptions::of(&Locate::default());
        let alphabet = [
            "a", "bc", ",", ",", "\n", "\n", " ", "\"", "\r\n", "é", "1.5", "",
        ];
        let mut state = 11u64;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        let (mut taken, mut streamed_as_they_are) = (0, 0);
        for case in 0..3000 {
            // A UTF-8 BOM the CSV reader strips from the header; blank first lines it skips.
            let header = [
                "x,y\n",
                "x,y,z\n",
                " x,y\n",
                "\u{feff}x,y\n",
                "\nx,y\n",
                "\n\nx,y\n",
                "\u{feff}\nx,y\n",
                // A quoted header: one spanning two lines, one with a comma in a name.
                "\"x\ny\",z\n",
                "\"x,y\",z\n",
            ][next(9)];
            let mut text = header.to_string();
            for _ in 0..next(40) {
                text.push_str(alphabet[next(alphabet.len())]);
            }
            if case % 3 == 0 {
                // Mostly well-formed rows, so that many files are taken as they are.
                text = header.to_string();
                for r in 0..next(6) {
                    let width = header.matches(',').count() + 1;
                    let row: Vec<String> = (0..width)
                        .map(|c| format!("{}{r}", ["a", "", "b c", "1.5"][(c + r) % 4]))
                        .collect();
                    text.push_str(&row.join(","));
                    if r < 5 || next(2) == 0 {
                        text.push('\n');
                    }
                }
            }
            let file = dir.path().join(format!("case-{case}.csv"));
            std::fs::write(&file, &text).unwrap();
            let files = [(file.clone(), "case.csv".to_string())];
            let width = header.matches(',').count() + 1;
            taken += usize::from(verbatim_rows(&file, width).is_some());
            if header.trim_start_matches('\u{feff}').starts_with('\n') {
                assert!(verbatim_rows(&file, width).is_none(), "{text:?}");
            }
            // Streamed (in windows of a byte, of a few lines, or at once) and in memory.
            let expected = field_by_field(&files, &options);
            for limits in EVERY_LIMIT {
                let got = convert_in(&files, &options, Vec::new(), limits);
                assert!(
                    same(&expected, &got),
                    "{text:?} {limits:?}: {:?} vs {:?}",
                    expected.as_ref().map(|x| x.2).map_err(ToString::to_string),
                    got.as_ref().map(|x| x.2).map_err(ToString::to_string),
                );
            }
            for window in [7, 24, 1 << 20] {
                let mut w = CanonicalWriter::new(Vec::new(), &[]);
                let mut table = open(&file, "case.csv", &options).unwrap();
                if let Ok(n) =
                    stream_rows(&file, &mut table, &mut w, window, &mut Default::default())
                {
                    streamed_as_they_are += n;
                }
            }
        }
        assert!(taken > 400, "{taken} of 3000 files taken as they are");
        assert!(
            streamed_as_they_are > 1500,
            "{streamed_as_they_are} rows streamed as they are"
        );
    }

    /// A large file is taken as it is window by window, up to the first window that is not
    /// canonical text; from there it is converted field by field, and an error in it names
    /// its line in the whole file.
    #[test]
    fn a_streamed_file_is_taken_as_it_is_up_to_a_line_that_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big.csv");
        let files = [(file.clone(), "big.csv".to_string())];
        let options = CsvOptions::of(&Locate::default());
        let mut clean = String::from("id,name,score\n");
        for r in 0..300 {
            clean.push_str(&format!("{r},n{r},{}\n", r as f64 / 4.0));
        }
        let streamed = Limits {
            in_memory: 0,
            window: 0,
            stream: 256,
        };
        let as_they_are = |text: &str| {
            std::fs::write(&file, text).unwrap();
            let mut w = CanonicalWriter::new(Vec::new(), &[]);
            let mut table = open(&file, "big.csv", &options).unwrap();
            let n = stream_rows(&file, &mut table, &mut w, 256, &mut Default::default());
            let got = convert_in(&files, &options, Vec::new(), streamed);
            assert!(same(&field_by_field(&files, &options), &got), "{text:?}");
            (
                n.map_err(|e| e.to_string()),
                got.map(|x| x.2).map_err(|e| e.to_string()),
            )
        };
        // All of it, without a last line end too.
        assert_eq!(as_they_are(&clean), (Ok(300), Ok(300)));
        assert_eq!(as_they_are(clean.trim_end()), (Ok(300), Ok(300)));
        // A quoted field on line 202: the windows before it are taken as they are.
        let quoted = clean.replace("200,n200,", "200,\"n,200\",");
        let (n, rows) = as_they_are(&quoted);
        assert_eq!(rows, Ok(300));
        assert!((150..200).contains(&n.clone().unwrap()), "{n:?}");
        // A short row on line 252: reported with its line in the file.
        let short = clean.replace("250,n250,62.5\n", "250,n250\n");
        let (n, rows) = as_they_are(&short);
        let error = "`big.csv` line 252: expected 3 fields (as in the header), found 2";
        assert_eq!((n, rows), (Err(error.into()), Err(error.into())));
        // A header longer than a window: all of it field by field.
        let wide = clean.replace("id,name,score", &format!("id,name,{}", "s".repeat(300)));
        assert_eq!(as_they_are(&wide), (Ok(0), Ok(300)));
        // Several files streamed one after another share their windows: each file's own rows,
        // whether the last ended cleanly, mid-window, or in its field-by-field rest.
        let half = clean.lines().take(151).collect::<Vec<_>>().join("\n");
        let glob: Vec<(PathBuf, String)> = [&clean, &quoted, clean.trim_end(), &half]
            .iter()
            .enumerate()
            .map(|(k, text)| {
                let shown = format!("part-{k}.csv");
                std::fs::write(dir.path().join(&shown), text).unwrap();
                (dir.path().join(&shown), shown)
            })
            .collect();
        let got = convert_in(&glob, &options, Vec::new(), streamed);
        assert!(same(&field_by_field(&glob, &options), &got));
        assert_eq!(got.unwrap().2, 300 * 3 + 150, "rows");
    }

    #[test]
    fn a_glob_stops_at_its_first_bad_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = parts(dir.path(), 12);
        let options = CsvOptions::of(&Locate::default());
        let write = |k: usize, text: &str| std::fs::write(&files[k].0, text).unwrap();
        // Three bad files; the first in order is the one reported, whichever converts first.
        write(4, "id,name,score\n1,a,2\n1,a,2,extra\n");
        write(7, "id,other,score\n1,a,2\n");
        write(9, "");
        assert_eq!(
            first_error(&files, &options),
            "`part-004.csv` line 3: expected 3 fields (as in the header), found 4"
        );
        // A file whose header differs is reported for its header, before its bad rows.
        write(4, "id,name,score\n1,a,2\n");
        write(7, "id,other,score\n1,a\n");
        assert_eq!(
            first_error(&files, &options),
            "`part-007.csv` has different columns from `part-000.csv`: [id, other, score] instead of [id, name, score]"
        );
        write(7, "id,name,score\n");
        files.truncate(10);
        assert_eq!(first_error(&files, &options), "`part-009.csv` is empty");
    }

    /// The error converting `files` stops at: the same whether they are streamed one by one or
    /// converted in windows of any shape.
    fn first_error(files: &[(PathBuf, String)], options: &CsvOptions) -> String {
        let errors: Vec<String> = EVERY_LIMIT
            .iter()
            .map(|&limits| {
                convert_in(files, options, Vec::new(), limits)
                    .unwrap_err()
                    .to_string()
            })
            .collect();
        assert!(errors.iter().all(|e| *e == errors[0]), "{errors:#?}");
        errors[0].clone()
    }

    #[test]
    fn glob_headers_must_agree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("part-1.csv"), "a,b\n1,2\n").unwrap();
        std::fs::write(dir.path().join("part-2.csv"), "a,c\n3,4\n").unwrap();
        let files = expand(dir.path(), "part-*.csv").unwrap();
        let e = convert(&files, &CsvOptions::of(&Locate::default()), Vec::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`part-2.csv` has different columns from `part-1.csv`: [a, c] instead of [a, b]"
        );
    }
}

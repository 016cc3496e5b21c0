//! Tabular data as mlbuild reads it: CSV profiling, column kinds and the seeded split.
//!
//! Everything here streams row by row, so memory stays bounded by the number of columns (and
//! the capped set of distinct values kept per column), not by the file size.
//! A field is missing when it is empty or `NA` (after trimming), as H2O's parser treats them.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Distinct values kept per column; past this a column is "high cardinality".
pub const DISTINCT_CAP: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot read `{path}`")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` line {line}: {message}")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("`{path}` line {line}: field {field} is not UTF-8 text")]
    NotUtf8 {
        path: PathBuf,
        line: u64,
        field: usize,
    },
    #[error("`{path}` has no header row")]
    Empty { path: PathBuf },
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl TableError {
    pub fn hint(&self) -> Option<String> {
        match self {
            TableError::Csv { .. } => Some("every row must have as many fields as the header; quote fields that contain commas".into()),
            TableError::NotUtf8 { path, .. } => Some(format!(
                "mlbuild reads CSV as UTF-8; re-encode the file, e.g. `iconv -f latin1 -t utf-8 {0} > {0}.utf8` (if it is Latin-1), and point `[locate] path` at the result",
                path.display()
            )),
            _ => None,
        }
    }
}

/// What the column's values look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Numeric,
    Categorical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    pub kind: Kind,
    pub missing: u64,
    /// Sorted distinct non-missing values, at most [`DISTINCT_CAP`].
    pub distinct: Vec<String>,
    /// True when there were more distinct values than kept.
    pub distinct_capped: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
}

impl Profile {
    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns.iter().find(|c| c.name == name)
    }
    pub fn names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }
}

pub fn is_missing(field: &str) -> bool {
    let f = trim(field);
    f.is_empty() || f == "NA"
}

/// `str::trim`, with a shortcut for the usual field that starts and ends with a printable ASCII
/// character (which is never whitespace).
pub fn trim(field: &str) -> &str {
    let printable = |b: Option<&u8>| b.is_some_and(|b| (0x21..=0x7E).contains(b));
    let b = field.as_bytes();
    if printable(b.first()) && printable(b.last()) {
        field
    } else {
        field.trim()
    }
}

/// `f.parse::<f64>().is_ok()`, without computing the value for the usual decimal forms: `f`
/// matching `[+-]? (d+ | d+ '.' d* | d* '.' d+) ([eE] [+-]? d+)?` is a valid `f64` by the
/// grammar of `f64::from_str`; anything else is left to it.
pub fn is_number(f: &str) -> bool {
    let b = f.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let mut n = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        n += digits(&mut i);
    }
    if n > 0 && i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if digits(&mut j) > 0 {
            i = j;
        }
    }
    if n > 0 && i == b.len() {
        return true;
    }
    f.parse::<f64>().is_ok()
}

fn reader(path: &Path) -> Result<csv::Reader<BufReader<File>>, TableError> {
    let file = File::open(path).map_err(|source| TableError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(BufReader::with_capacity(1 << 20, file)))
}

fn csv_err(path: &Path, e: csv::Error) -> TableError {
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

fn headers(path: &Path, rdr: &mut csv::Reader<BufReader<File>>) -> Result<Vec<String>, TableError> {
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

/// FxHash (rustc's): the distinct-value sets are looked up once per field, where SipHash's
/// flood resistance buys nothing (the set is capped) and costs a tenth of the profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastHash;

impl std::hash::BuildHasher for FastHash {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Accumulates a [`Profile`] field by field: the sequential reader, each parallel chunk and
/// prepare's writer (which profiles `train` and `holdout` as it writes them) share it.
///
/// Distinct values are kept in first-seen order (a hash set beside it for lookups), so that two
/// profilers of consecutive parts of a file [`merge`](Profiler::merge) into exactly what one
/// profiler of the whole file keeps: the first [`DISTINCT_CAP`] values in file order.
#[derive(Debug, Clone)]
pub struct Profiler {
    rows: u64,
    numeric: Vec<bool>,
    missing: Vec<u64>,
    seen: Vec<std::collections::HashSet<Box<str>, FastHash>>,
    order: Vec<Vec<Box<str>>>,
    capped: Vec<bool>,
}

impl Profiler {
    pub fn new(columns: usize) -> Profiler {
        Profiler {
            rows: 0,
            numeric: vec![true; columns],
            missing: vec![0; columns],
            seen: vec![Default::default(); columns],
            order: vec![Vec::new(); columns],
            capped: vec![false; columns],
        }
    }

    /// Counts one row; call [`field`](Profiler::field) for each of its fields.
    pub fn row(&mut self) {
        self.rows += 1;
    }

    pub fn field(&mut self, i: usize, field: &str) {
        if is_missing(field) {
            self.missing[i] += 1;
            return;
        }
        let f = trim(field);
        if self.numeric[i] && !is_number(f) {
            self.numeric[i] = false;
        }
        if !self.capped[i] && !self.seen[i].contains(f) {
            if self.seen[i].len() >= DISTINCT_CAP {
                self.capped[i] = true;
            } else {
                self.seen[i].insert(f.into());
                self.order[i].push(f.into());
            }
        }
    }

    /// Folds in the profiler of the rows that come right after this one's.
    pub fn merge(&mut self, later: Profiler) {
        self.rows += later.rows;
        for i in 0..self.numeric.len() {
            self.numeric[i] &= later.numeric[i];
            self.missing[i] += later.missing[i];
            if self.capped[i] {
                continue;
            }
            for v in &later.order[i] {
                if self.seen[i].contains(v) {
                    continue;
                }
                if self.seen[i].len() >= DISTINCT_CAP {
                    self.capped[i] = true;
                    break;
                }
                self.seen[i].insert(v.clone());
                self.order[i].push(v.clone());
            }
            // More distinct values than `later` kept: some were never offered above.
            self.capped[i] |= later.capped[i];
        }
    }

    pub fn finish(self, names: Vec<String>) -> Profile {
        let columns = names
            .into_iter()
            .zip(self.order)
            .enumerate()
            .map(|(i, (name, order))| {
                let mut distinct: Vec<String> = order.into_iter().map(String::from).collect();
                distinct.sort_unstable();
                ColumnProfile {
                    name,
                    // An all-missing column stays numeric: nothing says it is text (H2O agrees).
                    kind: if self.numeric[i] {
                        Kind::Numeric
                    } else {
                        Kind::Categorical
                    },
                    missing: self.missing[i],
                    distinct,
                    distinct_capped: self.capped[i],
                }
            })
            .collect();
        Profile {
            rows: self.rows,
            columns,
        }
    }
}

/// Profiles a CSV file in one streaming pass (in parallel chunks when it is large and
/// unquoted, see [`chunks`]).
pub fn profile_csv(path: &Path) -> Result<Profile, TableError> {
    let names = read_header(path)?;
    let n = names.len();
    if let Some(parts) = chunks(
        path,
        n,
        |_| Profiler::new(n),
        |p, _, rec| {
            p.row();
            for (i, f) in rec.iter().enumerate() {
                p.field(i, f);
            }
        },
    ) {
        let mut parts = parts.into_iter().map(|(p, _)| p);
        let mut all = parts.next().expect("at least one chunk");
        for p in parts {
            all.merge(p);
        }
        return Ok(all.finish(names));
    }
    let mut rdr = reader(path)?;
    headers(path, &mut rdr)?;
    let mut profiler = Profiler::new(n);
    let mut record = csv::StringRecord::new();
    while rdr.read_record(&mut record).map_err(|e| csv_err(path, e))? {
        profiler.row();
        for (i, field) in record.iter().enumerate() {
            profiler.field(i, field);
        }
    }
    Ok(profiler.finish(names))
}

/// Files smaller than this are read by one thread.
const PARALLEL_MIN_BYTES: u64 = 16 << 20;

#[cfg(not(test))]
fn parallel_min_bytes() -> u64 {
    PARALLEL_MIN_BYTES
}

#[cfg(test)]
thread_local! {
    /// Tests set this to take the chunked paths on small files (per thread: tests run in
    /// parallel).
    pub static TEST_PARALLEL_MIN_BYTES: std::cell::Cell<u64> =
        const { std::cell::Cell::new(PARALLEL_MIN_BYTES) };
}

#[cfg(test)]
fn parallel_min_bytes() -> u64 {
    TEST_PARALLEL_MIN_BYTES.with(|m| m.get())
}

/// Reads the data rows of `path` in one chunk per core, `step(state, local_index, record)` on
/// each row of a chunk, in order; returns each chunk's state and row count, in file order.
///
/// Chunks start right after a `\n`. That is a row boundary only when no quoted field spans
/// lines, so a chunk that sees a `"` gives up, as does one that meets a row of the wrong width
/// or invalid UTF-8: `None` then means "read the file sequentially", which also reports errors
/// with their line. Small files, and machines with one core, return `None` at once.
pub fn chunks<S: Send>(
    path: &Path,
    columns: usize,
    init: impl Fn(usize) -> S + Sync,
    step: impl Fn(&mut S, u64, &csv::StringRecord) + Sync,
) -> Option<Vec<(S, u64)>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    chunks_of(
        path,
        columns,
        threads,
        parallel_min_bytes(),
        Index::Local,
        init,
        step,
    )
}

/// [`chunks`], but `step` gets each row's index in the whole file (0-based, data rows), as a
/// sequential pass would number it.
///
/// A chunk's first index is predicted before the chunks run, by counting the `\n`s of the
/// chunks before it (one cheap read of those bytes); after they ran, each chunk's row count
/// must equal its prediction, otherwise (blank lines, lone `\r`s) the result is `None` and the
/// caller reads sequentially. So an index is never wrong, only the fast path missed.
pub fn indexed_chunks<S: Send>(
    path: &Path,
    columns: usize,
    init: impl Fn(usize) -> S + Sync,
    step: impl Fn(&mut S, u64, &csv::StringRecord) + Sync,
) -> Option<Vec<(S, u64)>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    chunks_of(
        path,
        columns,
        threads,
        parallel_min_bytes(),
        Index::Global,
        init,
        step,
    )
}

/// How [`chunks_of`] numbers the rows it hands to `step`.
#[derive(Clone, Copy, PartialEq)]
enum Index {
    /// From 0 in each chunk.
    Local,
    /// In the whole file.
    Global,
}

/// The number of `\n` bytes in `path` between `from` and `to`.
fn count_newlines(path: &Path, from: u64, to: u64) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path).ok()?;
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut f = f.take(to - from);
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let got = f.read(&mut buf).ok()?;
        if got == 0 {
            return Some(n);
        }
        // Branch-free, so it vectorises.
        n += buf[..got]
            .iter()
            .map(|&b| u64::from(b == b'\n'))
            .sum::<u64>();
    }
}

fn chunks_of<S: Send>(
    path: &Path,
    columns: usize,
    threads: usize,
    min_bytes: u64,
    index: Index,
    init: impl Fn(usize) -> S + Sync,
    step: impl Fn(&mut S, u64, &csv::StringRecord) + Sync,
) -> Option<Vec<(S, u64)>> {
    use std::io::{Read, Seek, SeekFrom};
    let len = std::fs::metadata(path).ok()?.len();
    if threads < 2 || len < min_bytes {
        return None;
    }
    // Where the data rows start: after the header record.
    let start = {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(BufReader::new(File::open(path).ok()?));
        let mut header = csv::ByteRecord::new();
        if !rdr.read_byte_record(&mut header).ok()? || header.as_slice().contains(&b'"') {
            return None;
        }
        // The header's terminator may not be consumed yet: start after it, so the first
        // chunk's newlines are its rows' (blank lines are skipped by the reader either way).
        let mut at = rdr.position().byte();
        let mut f = File::open(path).ok()?;
        f.seek(SeekFrom::Start(at)).ok()?;
        let mut next = [0u8; 64];
        let n = f.read(&mut next).ok()?;
        at += next[..n]
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count() as u64;
        at
    };
    // Cut points: each nominal offset moved to just past the next newline.
    let mut cuts = vec![start];
    let mut file = File::open(path).ok()?;
    for k in 1..threads as u64 {
        let nominal = (start + (len - start) * k / threads as u64).max(*cuts.last()?);
        file.seek(SeekFrom::Start(nominal)).ok()?;
        let mut buf = [0u8; 1 << 16];
        let mut at = nominal;
        loop {
            let n = file.read(&mut buf).ok()?;
            if n == 0 {
                at = len;
                break;
            }
            if let Some(p) = buf[..n].iter().position(|&b| b == b'\n') {
                at += p as u64 + 1;
                break;
            }
            at += n as u64;
        }
        cuts.push(at);
    }
    cuts.push(len);
    // Each chunk's first row index: predicted from the newlines before it (checked below).
    let mut bases = vec![0u64];
    if index == Index::Global {
        for w in cuts.windows(2).take(threads - 1) {
            let last = *bases.last()?;
            bases.push(last + count_newlines(path, w[0], w[1])?);
        }
    } else {
        bases.resize(threads, 0);
    }
    let abort = std::sync::atomic::AtomicBool::new(false);
    let results: Vec<Option<(S, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = cuts
            .windows(2)
            .enumerate()
            .map(|(k, w)| {
                let (from, to) = (w[0], w[1]);
                let base = bases[k];
                let (init, step, abort) = (&init, &step, &abort);
                scope.spawn(move || -> Option<(S, u64)> {
                    let mut f = File::open(path).ok()?;
                    f.seek(SeekFrom::Start(from)).ok()?;
                    let spy = QuoteSpy {
                        inner: f.take(to - from),
                        quoted: false,
                    };
                    let mut rdr = csv::ReaderBuilder::new()
                        .has_headers(false)
                        .flexible(true)
                        .from_reader(BufReader::with_capacity(1 << 20, spy));
                    let mut state = init(k);
                    let mut record = csv::StringRecord::new();
                    let mut rows = 0u64;
                    loop {
                        match rdr.read_record(&mut record) {
                            Ok(true) => {}
                            Ok(false) => break,
                            Err(_) => return None,
                        }
                        if record.len() != columns
                            || rdr.get_ref().get_ref().quoted
                            || (rows & 0xFFFF == 0
                                && abort.load(std::sync::atomic::Ordering::Relaxed))
                        {
                            abort.store(true, std::sync::atomic::Ordering::Relaxed);
                            return None;
                        }
                        step(&mut state, base + rows, &record);
                        rows += 1;
                    }
                    if rdr.get_ref().get_ref().quoted {
                        return None;
                    }
                    Some((state, rows))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    let results: Vec<(S, u64)> = results.into_iter().collect::<Option<_>>()?;
    if index == Index::Global
        && results
            .iter()
            .zip(bases.windows(2))
            .any(|((_, rows), b)| *rows != b[1] - b[0])
    {
        return None;
    }
    Some(results)
}

/// A reader that notes whether a `"` went through it.
struct QuoteSpy<R> {
    inner: R,
    quoted: bool,
}

impl<R: std::io::Read> std::io::Read for QuoteSpy<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.quoted && buf[..n].contains(&b'"') {
            self.quoted = true;
        }
        Ok(n)
    }
}

/// SplitMix64: a tiny, well-mixed, fully specified generator, so the split is the same on every
/// machine and in every version (independent of H2O's chunk layout).
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// True when row `index` (0-based, data rows) falls into the holdout.
pub fn in_holdout(seed: u64, index: u64, fraction: f64) -> bool {
    let u = (splitmix64(seed ^ splitmix64(index)) >> 11) as f64 / (1u64 << 53) as f64;
    u < fraction
}

/// Salt that makes the sampling draw independent of the holdout draw for the same seed.
const SAMPLE_SALT: u64 = 0x5A4D_504C_4531_0001;

/// The seeded position of data row `index` in the split order: a bijection of the index (two
/// SplitMix64 rounds), so no two rows ever tie.
pub fn row_hash(seed: u64, index: u64) -> u64 {
    splitmix64(seed ^ splitmix64(index))
}

/// Which side of the split a row falls on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Train,
    Holdout,
}

/// The train/holdout split (and the optional sample before it).
///
/// *Random* (regression, or `stratify = false`): row *i* goes to the holdout when
/// `row_hash(seed, i)` maps below `holdout` (see [`in_holdout`]).
/// *Stratified* (classification by default): within each class of the target (a missing
/// target is a class of its own), rows are ordered by `row_hash(seed, i)` and the first
/// `round(holdout × n_class)` go to the holdout. Fitting reads the target once and keeps one
/// `u64` per sampled row (8 bytes × rows); the split itself then streams.
#[derive(Debug, Clone)]
pub struct Split {
    seed: u64,
    holdout: f64,
    sample: Option<f64>,
    /// Stratified: the target's column index and, per class, the largest hash in the holdout.
    strata: Option<(usize, HashMap<String, Option<u64>>)>,
}

impl Split {
    pub fn random(seed: u64, holdout: f64, sample: Option<f64>) -> Split {
        Split {
            seed,
            holdout,
            sample,
            strata: None,
        }
    }

    /// A stratified split on column `target` of `input` (one streaming pass).
    pub fn stratified(
        input: &Path,
        target: usize,
        seed: u64,
        holdout: f64,
        sample: Option<f64>,
    ) -> Result<Split, TableError> {
        let mut split = Split::random(seed, holdout, sample);
        let mut classes: HashMap<String, Vec<u64>> = HashMap::new();
        let n = read_header(input)?.len();
        // In parallel: each chunk lists its rows by class (local indices, 4 bytes a row), then
        // the indices become global and the hashes are computed chunk by chunk.
        let parts = chunks(
            input,
            n,
            |_| HashMap::<String, Vec<u32>>::new(),
            |m, i, rec| {
                let class = class_of(rec.get(target).unwrap_or(""));
                match m.get_mut(class) {
                    Some(v) => v.push(i as u32),
                    None => {
                        m.insert(class.to_string(), vec![i as u32]);
                    }
                }
            },
        );
        if let Some(parts) = parts.filter(|p| p.iter().all(|(_, rows)| *rows <= u32::MAX as u64)) {
            let mut offset = 0u64;
            for (m, rows) in parts {
                for (class, local) in m {
                    let hashes = classes.entry(class).or_default();
                    for l in local {
                        let i = offset + l as u64;
                        if split.sampled(i) {
                            hashes.push(row_hash(seed, i));
                        }
                    }
                }
                offset += rows;
            }
        } else {
            let mut rdr = reader(input)?;
            headers(input, &mut rdr)?;
            let mut record = csv::StringRecord::new();
            let mut index = 0u64;
            while rdr
                .read_record(&mut record)
                .map_err(|e| csv_err(input, e))?
            {
                let i = index;
                index += 1;
                if !split.sampled(i) {
                    continue;
                }
                let class = class_of(record.get(target).unwrap_or(""));
                classes
                    .entry(class.to_string())
                    .or_default()
                    .push(row_hash(seed, i));
            }
        }
        let cuts = classes
            .into_iter()
            .map(|(class, mut hashes)| {
                let k = (holdout * hashes.len() as f64).round() as usize;
                let cut = (k > 0).then(|| *hashes.select_nth_unstable(k - 1).1);
                (class, cut)
            })
            .collect();
        split.strata = Some((target, cuts));
        Ok(split)
    }

    pub fn is_stratified(&self) -> bool {
        self.strata.is_some()
    }

    fn sampled(&self, index: u64) -> bool {
        self.sample
            .is_none_or(|rate| in_holdout(self.seed ^ SAMPLE_SALT, index, rate))
    }

    /// The side of data row `index` (0-based), or `None` when the sample leaves it out.
    pub fn side(&self, index: u64, record: &csv::StringRecord) -> Option<Side> {
        if !self.sampled(index) {
            return None;
        }
        let held = match &self.strata {
            None => in_holdout(self.seed, index, self.holdout),
            Some((target, cuts)) => {
                let class = class_of(record.get(*target).unwrap_or(""));
                match cuts.get(class) {
                    Some(Some(cut)) => row_hash(self.seed, index) <= *cut,
                    _ => false,
                }
            }
        };
        Some(if held { Side::Holdout } else { Side::Train })
    }
}

/// A target value as a stratum: trimmed, missing as the empty class.
fn class_of(field: &str) -> &str {
    if is_missing(field) {
        ""
    } else {
        trim(field)
    }
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

fn create_writer(
    path: &Path,
    hasher: Option<blake3::Hasher>,
) -> Result<csv::Writer<BufWriter<HashingFile>>, TableError> {
    let file = File::create(path).map_err(|source| TableError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(csv::Writer::from_writer(BufWriter::with_capacity(
        1 << 20,
        HashingFile { file, hasher },
    )))
}

/// A buffered CSV writer on a new file at `path` that hashes its bytes ([`finish_hashed`]).
pub fn create_hashed(path: &Path) -> Result<csv::Writer<BufWriter<HashingFile>>, TableError> {
    create_writer(path, Some(blake3::Hasher::new()))
}

/// A writer like [`create_hashed`]'s for a later part of a file written in parallel; flush it
/// with [`finish_part`], then hand its path to [`finish_hashed`] of the first part.
pub fn create_part(path: &Path) -> Result<csv::Writer<BufWriter<HashingFile>>, TableError> {
    create_writer(path, None)
}

fn into_file(
    path: &Path,
    w: csv::Writer<BufWriter<HashingFile>>,
) -> Result<HashingFile, TableError> {
    let write = |source| TableError::Write {
        path: path.to_path_buf(),
        source,
    };
    let buf = w
        .into_inner()
        .map_err(|e| write(std::io::Error::other(e.to_string())))?;
    buf.into_inner()
        .map_err(|e| write(std::io::Error::other(e.to_string())))
}

/// Flushes a writer created by [`create_part`].
pub fn finish_part(path: &Path, w: csv::Writer<BufWriter<HashingFile>>) -> Result<(), TableError> {
    into_file(path, w).map(drop)
}

/// Flushes a writer created by [`create_hashed`], first appending the files `parts` (in order,
/// written by [`create_part`]); returns the blake3 (hex) of the whole file's bytes.
pub fn finish_hashed(
    path: &Path,
    w: csv::Writer<BufWriter<HashingFile>>,
    parts: &[&Path],
) -> Result<String, TableError> {
    use std::io::{Read, Write};
    let mut h = into_file(path, w)?;
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
                path: path.to_path_buf(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_infers_kinds_and_counts_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        std::fs::write(&p, "a,b,c\n1,x,\n2.5,y,NA\nNA,x,\n").unwrap();
        let prof = profile_csv(&p).unwrap();
        assert_eq!(prof.rows, 3);
        assert_eq!(prof.columns[0].kind, Kind::Numeric);
        assert_eq!(prof.columns[0].missing, 1);
        assert_eq!(prof.columns[1].kind, Kind::Categorical);
        assert_eq!(prof.columns[1].distinct, vec!["x", "y"]);
        assert_eq!(prof.columns[2].missing, 3);
    }

    #[test]
    fn split_is_deterministic_and_near_the_fraction() {
        let held: usize = (0..10_000).filter(|&i| in_holdout(42, i, 0.2)).count();
        assert!((1800..2200).contains(&held), "{held}");
        let again: usize = (0..10_000).filter(|&i| in_holdout(42, i, 0.2)).count();
        assert_eq!(held, again);
        let other: Vec<bool> = (0..100).map(|i| in_holdout(7, i, 0.2)).collect();
        let base: Vec<bool> = (0..100).map(|i| in_holdout(42, i, 0.2)).collect();
        assert_ne!(other, base, "the seed matters");
    }

    #[test]
    fn stratified_split_holds_out_round_fraction_of_each_class() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        // 70 of class a, 25 of b, 5 of c, 3 missing targets, interleaved.
        let mut text = String::from("x,y\n");
        let mut expected: HashMap<&str, usize> = HashMap::new();
        for i in 0..103 {
            let class = match i {
                100..=102 => "",
                _ if i % 20 == 0 => "c",
                _ if i % 4 == 1 => "b",
                _ => "a",
            };
            *expected.entry(class).or_default() += 1;
            text.push_str(&format!("{i},{class}\n"));
        }
        assert_eq!(expected["c"], 5);
        std::fs::write(&p, &text).unwrap();
        let split = Split::stratified(&p, 1, 42, 0.2, None).unwrap();
        assert!(split.is_stratified());
        let mut rdr = reader(&p).unwrap();
        let mut held: HashMap<String, usize> = HashMap::new();
        let mut rec = csv::StringRecord::new();
        let mut i = 0;
        while rdr.read_record(&mut rec).unwrap() {
            if split.side(i, &rec) == Some(Side::Holdout) {
                *held.entry(rec[1].to_string()).or_default() += 1;
            }
            i += 1;
        }
        for (class, n) in &expected {
            let want = (0.2 * *n as f64).round() as usize;
            assert_eq!(
                held.get(*class).copied().unwrap_or(0),
                want,
                "class {class:?} of {n}"
            );
        }
        // Deterministic; another seed picks other rows of the same sizes.
        let again = Split::stratified(&p, 1, 42, 0.2, None).unwrap();
        let other = Split::stratified(&p, 1, 7, 0.2, None).unwrap();
        let sides = |s: &Split| -> Vec<Option<Side>> {
            let mut rdr = reader(&p).unwrap();
            let mut rec = csv::StringRecord::new();
            let mut out = Vec::new();
            let mut i = 0;
            while rdr.read_record(&mut rec).unwrap() {
                out.push(s.side(i, &rec));
                i += 1;
            }
            out
        };
        assert_eq!(sides(&split), sides(&again));
        assert_ne!(sides(&split), sides(&other));
        let count = |v: Vec<Option<Side>>| v.iter().filter(|s| **s == Some(Side::Holdout)).count();
        assert_eq!(count(sides(&split)), count(sides(&other)));
    }

    #[test]
    fn random_split_is_the_historical_one() {
        let s = Split::random(42, 0.2, None);
        let rec = csv::StringRecord::new();
        for i in 0..1000 {
            let want = if in_holdout(42, i, 0.2) {
                Side::Holdout
            } else {
                Side::Train
            };
            assert_eq!(s.side(i, &rec), Some(want));
        }
    }

    #[test]
    fn chunked_profile_is_the_sequential_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        // 300 distinct values in column b, so the kept 256 depend on the file order.
        let mut text = String::from("a,b,c\n");
        for i in 0..5000u64 {
            let a = if i % 97 == 0 {
                "NA".to_string()
            } else {
                (i % 13).to_string()
            };
            let c = if i == 4321 { "x" } else { "1.5" };
            text.push_str(&format!("{a},v{},{c}\n", splitmix64(i) % 300));
        }
        std::fs::write(&p, &text).unwrap();
        let sequential = profile_csv(&p).unwrap();
        assert!(sequential.columns[1].distinct_capped);
        let names = read_header(&p).unwrap();
        for threads in [2, 3, 7] {
            let parts = chunks_of(
                &p,
                3,
                threads,
                0,
                Index::Local,
                |_| Profiler::new(3),
                |pr, _, rec| {
                    pr.row();
                    for (i, f) in rec.iter().enumerate() {
                        pr.field(i, f);
                    }
                },
            )
            .expect("unquoted: chunked");
            assert_eq!(parts.len(), threads);
            let mut parts = parts.into_iter().map(|(p, _)| p);
            let mut all = parts.next().unwrap();
            parts.for_each(|p| all.merge(p));
            assert_eq!(all.finish(names.clone()), sequential, "{threads} threads");
        }
        // A quote anywhere, or a short row, sends the caller back to one sequential pass.
        std::fs::write(&p, format!("{text}1,\"q\",2\n")).unwrap();
        assert!(chunks_of(&p, 3, 2, 0, Index::Local, |_| (), |_, _, _| ()).is_none());
        std::fs::write(&p, format!("{text}1,2\n")).unwrap();
        assert!(chunks_of(&p, 3, 2, 0, Index::Local, |_| (), |_, _, _| ()).is_none());
    }

    #[test]
    fn global_chunk_indices_are_the_sequential_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        let mut text = String::from("a,b\n");
        for i in 0..3000u64 {
            text.push_str(&format!("{i},x\r\n"));
        }
        std::fs::write(&p, &text).unwrap();
        for threads in [2, 3, 7] {
            let parts = chunks_of(
                &p,
                2,
                threads,
                0,
                Index::Global,
                |_| Vec::new(),
                |v: &mut Vec<(u64, u64)>, i, rec| v.push((i, rec[0].parse().unwrap())),
            )
            .expect("unquoted: chunked");
            let all: Vec<(u64, u64)> = parts.into_iter().flat_map(|(v, _)| v).collect();
            assert_eq!(all.len(), 3000);
            assert!(all.iter().all(|(i, v)| i == v), "{threads} threads");
        }
        // A blank line makes the newline count overshoot the rows: no chunked result.
        std::fs::write(&p, text.replacen("5,x\r\n", "5,x\r\n\n", 1)).unwrap();
        assert!(chunks_of(&p, 2, 2, 0, Index::Global, |_| (), |_, _, _| ()).is_none());
    }

    #[test]
    fn number_and_trim_shortcuts_agree_with_std() {
        for f in [
            "",
            "1",
            "-1",
            "+1",
            "1.",
            ".5",
            "-.5",
            ".",
            "-",
            "1e5",
            "1E+5",
            "1e-5",
            "1e",
            "1e+",
            "e5",
            ".e5",
            "1.5e3",
            "1..2",
            "1.2.3",
            "inf",
            "-Infinity",
            "NaN",
            "nan",
            "0x10",
            "1_000",
            " 1",
            "1 ",
            "١",
            "12345678901234567890123e400",
            "++1",
            "1e5.5",
            "1,5",
        ] {
            assert_eq!(is_number(f), f.parse::<f64>().is_ok(), "{f:?}");
            for g in [
                f.to_string(),
                format!(" {f}\t"),
                format!("\u{a0}{f}\u{2003}"),
            ] {
                assert_eq!(trim(&g), g.trim(), "{g:?}");
            }
        }
    }

    #[test]
    fn unequal_rows_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        std::fs::write(&p, "a,b\n1,2\n3\n").unwrap();
        let err = profile_csv(&p).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
    }
}

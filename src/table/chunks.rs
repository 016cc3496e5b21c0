//! Reading one CSV file on every core: chunks that start at row boundaries, or `None` when
//! the file must be read sequentially (quoted newlines, bad rows, small files).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::row::{unquoted_rows, Row};

/// Files smaller than this are read by one thread.
pub(super) const PARALLEL_MIN_BYTES: u64 = 16 << 20;

#[cfg(not(test))]
pub(super) fn parallel_min_bytes() -> u64 {
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
pub(super) fn parallel_min_bytes() -> u64 {
    TEST_PARALLEL_MIN_BYTES.with(|m| m.get())
}

/// Reads the data rows of `path` in one chunk per core, `step(state, local_index, record)` on
/// each row of a chunk, in order; returns each chunk's state and row count, in file order.
///
/// Chunks start right after a `\n`. That is a row boundary only when no quoted field spans
/// lines, so a chunk that sees a `"` gives up, as does one that meets a row of the wrong width
/// or invalid UTF-8. Without quotes a row is a line split at `,`, which [`unquoted_rows`] does
/// without the `csv` crate's state machine (a third of the passes' time went there): `None` then means "read the file sequentially", which also reports errors
/// with their line. Small files, and machines with one core, return `None` at once.
pub fn chunks<S: Send>(
    path: &Path,
    columns: usize,
    init: impl Fn(usize) -> S + Sync,
    step: impl Fn(&mut S, u64, &Row<'_>) + Sync,
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
    step: impl Fn(&mut S, u64, &Row<'_>) + Sync,
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
pub(super) enum Index {
    /// From 0 in each chunk.
    Local,
    /// In the whole file.
    Global,
}

/// The number of `\n` bytes in `path` between `from` and `to`.
pub(super) fn count_newlines(path: &Path, from: u64, to: u64) -> Option<u64> {
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

#[allow(
    clippy::too_many_lines,
    reason = "the chunked read: split points, workers and the ordered merge, sharing the file's state"
)]
pub(super) fn chunks_of<S: Send>(
    path: &Path,
    columns: usize,
    threads: usize,
    min_bytes: u64,
    index: Index,
    init: impl Fn(usize) -> S + Sync,
    step: impl Fn(&mut S, u64, &Row<'_>) + Sync,
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
    // Each chunk's first row index: the rows an earlier pass over the same file and chunks
    // counted, else predicted from the newlines before it (checked below either way).
    let identity = Identity::of(len, &cuts);
    let mut bases = vec![0u64];
    if index == Index::Global {
        let counted = identity.counted();
        for (k, w) in cuts.windows(2).take(threads - 1).enumerate() {
            let last = *bases.last()?;
            let rows = match &counted {
                Some(rows) => rows[k],
                None => count_newlines(path, w[0], w[1])?,
            };
            bases.push(last + rows);
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
                    let mut state = init(k);
                    let mut rows = 0u64;
                    let whole = unquoted_rows(f.take(to - from), columns, |row| {
                        if rows & 0xFFFF == 0 && abort.load(std::sync::atomic::Ordering::Relaxed) {
                            return false;
                        }
                        step(&mut state, base + rows, row);
                        rows += 1;
                        true
                    });
                    if !whole {
                        abort.store(true, std::sync::atomic::Ordering::Relaxed);
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
    identity.remember(results.iter().map(|(_, rows)| *rows).collect());
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

/// A file as one chunked pass read it: its size and cut points. Passes over the same bytes
/// (the source's profile, then prepare's over the snapshot) remember each chunk's row count,
/// so a pass that numbers rows need not count the newlines of the chunks before (a sequential
/// read of all but the last chunk). Another file of the same size and cuts would be given
/// wrong counts, which the pass then finds (each chunk's rows are checked against them) and
/// reads sequentially: a count is never trusted, only tried.
#[derive(PartialEq)]
struct Identity {
    len: u64,
    cuts: Vec<u64>,
}

/// The last chunked pass's file and row counts (one entry: passes over one file follow each
/// other).
static COUNTED: std::sync::Mutex<Option<(Identity, Vec<u64>)>> = std::sync::Mutex::new(None);

impl Identity {
    fn of(len: u64, cuts: &[u64]) -> Identity {
        Identity {
            len,
            cuts: cuts.to_vec(),
        }
    }

    fn counted(&self) -> Option<Vec<u64>> {
        let memo = COUNTED.lock().ok()?;
        memo.as_ref()
            .filter(|(id, _)| id == self)
            .map(|(_, rows)| rows.clone())
    }

    fn remember(self, rows: Vec<u64>) {
        if let Ok(mut memo) = COUNTED.lock() {
            *memo = Some((self, rows));
        }
    }
}

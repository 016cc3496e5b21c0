//! Reading one CSV file on every core: blocks that start at row boundaries, delivered in file
//! order, or a "no" when the file must be read sequentially (quoted newlines, bad rows, small
//! files).

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

/// Bytes of the file per block: the unit of work handed to a core and of what waits, in
/// memory, to be delivered in order (see [`blocks_of`]).
pub(super) const BLOCK_BYTES: u64 = 8 << 20;

/// Reads the data rows of `path` in blocks on every core, `step(state, local_index, record)`
/// on each row of a block, in order; returns each block's state and row count, in file order.
///
/// Blocks start right after a `\n`. That is a row boundary only when no quoted field spans
/// lines, so a block that sees a `"` gives up, as does one that meets a row of the wrong width
/// or invalid UTF-8. Without quotes a row is a line split at `,`, which [`unquoted_rows`] does
/// without the `csv` crate's state machine (a third of the passes' time went there). `None`
/// then means "read the file sequentially", which also reports errors with their line. Small
/// files, and machines with one core, return `None` at once.
pub fn chunks<S: Send>(
    path: &Path,
    columns: usize,
    init: impl Fn(usize) -> S + Sync,
    step: impl Fn(&mut S, u64, &Row<'_>) + Sync,
) -> Option<Vec<(S, u64)>> {
    let mut all = Vec::new();
    blocks(path, columns, init, step, |s, rows| all.push((s, rows))).then_some(all)
}

/// [`chunks`], each block's state handed to `deliver` in file order as soon as it can be (see
/// [`indexed_blocks`]) instead of kept.
pub fn blocks<S: Send>(
    path: &Path,
    columns: usize,
    init: impl Fn(usize) -> S + Sync,
    step: impl Fn(&mut S, u64, &Row<'_>) + Sync,
    deliver: impl FnMut(S, u64) + Send,
) -> bool {
    on_every_core(path, columns, Index::Local, init, step, deliver)
}

/// [`blocks_of`] with every block's state kept, for tests.
#[cfg(test)]
pub(super) fn chunks_of<S: Send>(
    path: &Path,
    columns: usize,
    threads: usize,
    min_bytes: u64,
    index: Index,
    init: impl Fn(usize) -> S + Sync,
    step: impl Fn(&mut S, u64, &Row<'_>) + Sync,
) -> Option<Vec<(S, u64)>> {
    let mut all = Vec::new();
    blocks_of(
        path,
        columns,
        threads,
        min_bytes,
        index,
        init,
        step,
        |s, rows| {
            all.push((s, rows));
        },
    )
    .then_some(all)
}

/// [`chunks`], but `step` gets each row's index in the whole file (0-based, data rows), as a
/// sequential pass would number it, and each block's state goes to `deliver` (with its row
/// count) as soon as the blocks before it went: in file order, one at a time, while later
/// blocks are still read. So a pass can write its output in order as it goes, and keeps only
/// the few blocks that wait for an earlier one. Returns false when the file must be read
/// sequentially (after `deliver` may have had some blocks: the caller starts over).
///
/// A block's first index comes from the row counts of an earlier pass over the same bytes
/// (see [`Identity`]) or, without one, from the newlines of the blocks before it, counted on
/// every core first. After a block ran, its row count must equal the prediction, otherwise
/// (blank lines, lone `\r`s) the pass stops and the caller reads sequentially. So an index
/// is never wrong, only the fast path missed.
pub fn indexed_blocks<S: Send>(
    path: &Path,
    columns: usize,
    init: impl Fn(usize) -> S + Sync,
    step: impl Fn(&mut S, u64, &Row<'_>) + Sync,
    deliver: impl FnMut(S, u64) + Send,
) -> bool {
    on_every_core(path, columns, Index::Global, init, step, deliver)
}

/// [`blocks_of`] with a worker per core, for files past the parallel threshold.
fn on_every_core<S: Send>(
    path: &Path,
    columns: usize,
    index: Index,
    init: impl Fn(usize) -> S + Sync,
    step: impl Fn(&mut S, u64, &Row<'_>) + Sync,
    deliver: impl FnMut(S, u64) + Send,
) -> bool {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    blocks_of(
        path,
        columns,
        threads,
        parallel_min_bytes(),
        index,
        init,
        step,
        deliver,
    )
}

/// How [`blocks_of`] numbers the rows it hands to `step`.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Index {
    /// From 0 in each block.
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
        n += memchr::memchr_iter(b'\n', &buf[..got]).count() as u64;
    }
}

/// Where the data rows of `path` start: after the header record (`None`: a quoted header,
/// which the sequential reader handles).
fn data_start(path: &Path) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(BufReader::new(File::open(path).ok()?));
    let mut header = csv::ByteRecord::new();
    if !rdr.read_byte_record(&mut header).ok()? || header.as_slice().contains(&b'"') {
        return None;
    }
    // The header's terminator may not be consumed yet: start after it, so the first
    // block's newlines are its rows' (blank lines are skipped by the reader either way).
    let mut at = rdr.position().byte();
    let mut f = File::open(path).ok()?;
    f.seek(SeekFrom::Start(at)).ok()?;
    let mut next = [0u8; 64];
    let n = f.read(&mut next).ok()?;
    at += next[..n]
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count() as u64;
    Some(at)
}

/// The blocks' boundaries: `blocks` nominal offsets from `start`, each moved to just past the
/// next newline (so some blocks may be empty), and the file's end.
fn cut_points(path: &Path, start: u64, len: u64, blocks: u64) -> Option<Vec<u64>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut cuts = vec![start];
    let mut file = File::open(path).ok()?;
    for k in 1..blocks {
        let nominal = (start + (len - start) * k / blocks).max(*cuts.last()?);
        file.seek(SeekFrom::Start(nominal)).ok()?;
        let mut buf = [0u8; 1 << 16];
        let mut at = nominal;
        loop {
            let n = file.read(&mut buf).ok()?;
            if n == 0 {
                at = len;
                break;
            }
            if let Some(p) = memchr::memchr(b'\n', &buf[..n]) {
                at += p as u64 + 1;
                break;
            }
            at += n as u64;
        }
        cuts.push(at);
    }
    cuts.push(len);
    Some(cuts)
}

/// Each block's first row index: the rows an earlier pass over the same bytes counted, else
/// the newlines of the blocks before it, counted on every core (checked by [`blocks_of`]
/// either way).
fn first_indices(path: &Path, cuts: &[u64], identity: &Identity) -> Option<Vec<u64>> {
    use rayon::prelude::*;
    let n = cuts.len() - 1;
    let counts = match identity.counted() {
        Some(rows) => rows,
        None => cuts
            .par_windows(2)
            .take(n - 1)
            .map(|w| count_newlines(path, w[0], w[1]))
            .collect::<Option<Vec<u64>>>()?,
    };
    let mut bases = vec![0u64; n];
    for k in 1..n {
        bases[k] = bases[k - 1] + counts[k - 1];
    }
    Some(bases)
}

/// What the workers of [`blocks_of`] share to deliver blocks in order.
struct Delivery<S> {
    /// The next block to deliver.
    next: usize,
    /// Blocks done before their turn.
    waiting: std::collections::BTreeMap<usize, (S, u64)>,
    /// Whether a worker is delivering (it delivers every block whose turn comes meanwhile).
    busy: bool,
    /// Each delivered block's row count.
    counted: Vec<u64>,
}

/// The block pipeline behind [`chunks`] and [`indexed_blocks`]: at least `threads` blocks
/// (more for a large file, about [`BLOCK_BYTES`] each), read by `threads` workers that take
/// the next block as they finish one; a finished block is delivered once every block before it
/// has been, by the worker that finished it or the one delivering at that moment, outside the
/// shared lock (the others go on reading). A worker may run at most `2 × threads` blocks ahead
/// of the delivery (it waits otherwise), which bounds the blocks held in memory.
#[allow(
    clippy::too_many_arguments,
    reason = "the pass's file, its shape, and the three callbacks of a block's life"
)]
#[allow(
    clippy::too_many_lines,
    reason = "the workers, the ordered delivery and its back-pressure share one scope's state"
)]
pub(super) fn blocks_of<S: Send, D: FnMut(S, u64) + Send>(
    path: &Path,
    columns: usize,
    threads: usize,
    min_bytes: u64,
    index: Index,
    init: impl Fn(usize) -> S + Sync,
    step: impl Fn(&mut S, u64, &Row<'_>) + Sync,
    deliver: D,
) -> bool {
    use std::io::{Seek, SeekFrom};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let Some(len) = std::fs::metadata(path).ok().map(|m| m.len()) else {
        return false;
    };
    if threads < 2 || len < min_bytes {
        return false;
    }
    let Some(start) = data_start(path) else {
        return false;
    };
    let blocks = ((len - start) / BLOCK_BYTES).max(threads as u64);
    let Some(cuts) = cut_points(path, start, len, blocks) else {
        return false;
    };
    let n = cuts.len() - 1;
    let identity = Identity::of(len, &cuts);
    let bases = match index {
        Index::Local => vec![0; n],
        Index::Global => match first_indices(path, &cuts, &identity) {
            Some(bases) => bases,
            None => return false,
        },
    };
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let delivery = std::sync::Mutex::new(Delivery {
        next: 0,
        waiting: std::collections::BTreeMap::new(),
        busy: false,
        counted: Vec::with_capacity(n),
    });
    // Taken by one worker at a time (the one whose `busy` it is): a block is delivered outside
    // the `delivery` lock, so the other workers go on reading blocks meanwhile.
    let deliver = std::sync::Mutex::new(deliver);
    let turn = std::sync::Condvar::new();
    let window = 2 * threads;
    let stop = || {
        abort.store(true, Ordering::Relaxed);
        turn.notify_all();
    };
    let run = |k: usize| -> Option<(S, u64)> {
        let (from, to) = (cuts[k], cuts[k + 1]);
        let mut f = File::open(path).ok()?;
        f.seek(SeekFrom::Start(from)).ok()?;
        let mut state = init(k);
        let mut rows = 0u64;
        let whole = unquoted_rows(std::io::Read::take(f, to - from), columns, |row| {
            if rows & 0xFFFF == 0 && abort.load(Ordering::Relaxed) {
                return false;
            }
            step(&mut state, bases[k] + rows, row);
            rows += 1;
            true
        });
        // A block's rows must be the ones its successor's first index assumed.
        let as_predicted = index == Index::Local || k + 1 == n || bases[k] + rows == bases[k + 1];
        (whole && as_predicted).then_some((state, rows))
    };
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n || abort.load(Ordering::Relaxed) {
                    return;
                }
                {
                    let Ok(mut d) = delivery.lock() else {
                        return stop();
                    };
                    while k >= d.next + window && !abort.load(Ordering::Relaxed) {
                        d = match turn.wait(d) {
                            Ok(d) => d,
                            Err(_) => return stop(),
                        };
                    }
                }
                let Some(done) = run(k) else {
                    return stop();
                };
                let Ok(mut d) = delivery.lock() else {
                    return stop();
                };
                if abort.load(Ordering::Relaxed) {
                    return;
                }
                d.waiting.insert(k, done);
                if d.busy {
                    // The worker delivering now takes this block too, in its turn.
                    continue;
                }
                d.busy = true;
                loop {
                    let at = d.next;
                    let Some((state, rows)) = d.waiting.remove(&at) else {
                        d.busy = false;
                        break;
                    };
                    drop(d);
                    match deliver.lock() {
                        Ok(mut deliver) => (*deliver)(state, rows),
                        Err(_) => return stop(),
                    }
                    d = match delivery.lock() {
                        Ok(d) => d,
                        Err(_) => return stop(),
                    };
                    d.counted.push(rows);
                    d.next += 1;
                    turn.notify_all();
                }
            });
        }
    });
    let Ok(d) = delivery.into_inner() else {
        return false;
    };
    if abort.load(Ordering::Relaxed) || d.next != n {
        return false;
    }
    identity.remember(d.counted);
    true
}

/// A file as one block pass read it: its size and cut points. Passes over the same bytes
/// (the source's profile, then prepare's over the snapshot) remember each block's row count,
/// so a pass that numbers rows need not count the newlines of the blocks before. Another file
/// of the same size and cuts would be given wrong counts, which the pass then finds (each
/// block's rows are checked against them) and reads sequentially: a count is never trusted,
/// only tried.
#[derive(PartialEq)]
struct Identity {
    len: u64,
    cuts: Vec<u64>,
}

/// The row counts of the last block passes' files, newest first: passes over one file follow
/// each other, and a few entries keep passes over other files (tests run in parallel) from
/// pushing them out.
static COUNTED: std::sync::Mutex<Vec<(Identity, Vec<u64>)>> = std::sync::Mutex::new(Vec::new());

/// How many files [`COUNTED`] remembers.
const COUNTED_FILES: usize = 16;

impl Identity {
    fn of(len: u64, cuts: &[u64]) -> Identity {
        Identity {
            len,
            cuts: cuts.to_vec(),
        }
    }

    fn counted(&self) -> Option<Vec<u64>> {
        let memo = COUNTED.lock().ok()?;
        memo.iter()
            .find(|(id, _)| id == self)
            .map(|(_, rows)| rows.clone())
    }

    fn remember(self, rows: Vec<u64>) {
        if let Ok(mut memo) = COUNTED.lock() {
            memo.retain(|(id, _)| *id != self);
            memo.insert(0, (self, rows));
            memo.truncate(COUNTED_FILES);
        }
    }
}

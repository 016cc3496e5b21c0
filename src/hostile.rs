//! The harness of the property and mutation tests for every parser of untrusted bytes
//! (`docs/testing.md`). Test-only.
//!
//! Each parser's test calls [`check`] with a generator (bytes made from scratch, or a real seed
//! file mutated by [`mutate`]) and a property. Every case:
//! - is deterministic: case `i` of parser `P` draws from its own seed, derived from the base
//!   seed, `P` and `i`, so one case reruns alone (`MLBUILD_PROPTEST_CASE=i`);
//! - runs under [`panic_boundary::catch`]: a panic fails the test, with its message and place;
//! - runs under a deadline: a case that finishes late fails; one still running at the deadline
//!   aborts the whole test binary with the case's description (a hang must not hang CI);
//! - runs under a memory budget: a counting global allocator (this test binary only) tracks the
//!   bytes live on the case's thread, and an allocation that would pass the budget aborts the
//!   binary with the case's description before the allocator is asked for it.
//!
//! A failure names the parser, the case, its seed and how the input was made, writes the input
//! to `$TMPDIR/mlbuild-proptest/`, and says how to rerun it. A crash that no handler reports (a
//! stack overflow) leaves the running case's description in `<parser>-current.txt` there.
//!
//! Environment: `MLBUILD_PROPTEST_CASES` (cases per parser, default [`DEFAULT_CASES`]),
//! `MLBUILD_PROPTEST_SEED` (base seed, decimal or `0x` hex), `MLBUILD_PROPTEST_CASE` (run only
//! this case index), `MLBUILD_PROPTEST_KEEP_GOING` (report every failing case, not only the
//! first), `MLBUILD_PROPTEST_BACKTRACE` (print a backtrace of the allocation that
//! passed the memory budget).
//!
//! Limits: memory is counted on the case's own thread (threads a parser spawns are not
//! counted); the deadline is wall-clock time on a shared machine, so it is generous.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::panic_boundary;

/// Cases per parser in a plain `cargo test`.
pub const DEFAULT_CASES: usize = 500;
const DEFAULT_SEED: u64 = 0x6d6c_6275_696c_6431;

// ---------------------------------------------------------------------------------------------
// Randomness

/// SplitMix64: small, fully specified, the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }

    /// Random bytes, at most `max` of them, as (lossy) text.
    pub fn junk(&mut self, max: usize) -> String {
        let n = self.between(0, max);
        String::from_utf8_lossy(&self.bytes(n)).into_owned()
    }

    /// A number as text that parsers find awkward: huge, tiny, negative, non-finite, long.
    pub fn awkward_number(&mut self) -> String {
        const FIXED: &[&str] = &[
            "0",
            "-0",
            "1",
            "-1",
            "2147483647",
            "2147483648",
            "-2147483649",
            "4294967296",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
            "99999999999999999999999999999999999999",
            "1e308",
            "1e309",
            "-1e309",
            "4.9e-324",
            "1e-400",
            "NaN",
            "nan",
            "inf",
            "-inf",
            "Infinity",
            "-Infinity",
            "0x7fffffff",
            "1_000",
            "0.1e",
            "+",
            "-",
            ".",
            "1.7976931348623157e308",
        ];
        match self.below(10) {
            0 => "9".repeat(self.between(20, 400)),
            1 | 2 => format!("{}", self.next_u64() as i64),
            3 | 4 => format!("{:e}", f64::from_bits(self.next_u64())),
            _ => self.pick(FIXED).to_string(),
        }
    }
}

/// One generated input, and how it was made (for the failure report).
#[derive(Debug, Clone)]
pub struct Input {
    pub bytes: Vec<u8>,
    pub how: String,
    /// Extra arguments some parsers take besides the bytes (`--set` overrides, CSV options).
    pub args: Vec<String>,
}

impl Input {
    pub fn new(bytes: Vec<u8>, how: impl Into<String>) -> Input {
        Input {
            bytes,
            how: how.into(),
            args: Vec::new(),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations of real files

/// Tokens that break parsers: separators, quotes, brackets, escapes, huge numbers, NUL, BOM,
/// invalid UTF-8.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"\r",
    b"\"",
    b"'",
    b",",
    b";",
    b"\t",
    b"=",
    b"[",
    b"]",
    b"{",
    b"}",
    b"[[",
    b"]]",
    b"\\",
    b"\\u0000",
    b"\\uD800",
    b"#",
    b":",
    b".",
    b"\0",
    b"\xEF\xBB\xBF",
    b"\xFF\xFE",
    b"\xC3",
    b"\xED\xA0\x80",
    b"\"\"\"",
    b"'''",
    b"null",
    b"true",
    b"NA",
    b"-",
    b"9999999999999999999999",
    b"-9223372036854775809",
    b"1e999",
    b"NaN",
    b"2024-13-45T25:61:61Z",
    b"1979-05-27",
];

/// Applies 1–4 random edits to `bytes`: bit flips, byte writes, truncation, insertion of
/// random bytes or awkward tokens, deletion, duplication of a range (a repeated section), a
/// range repeated many times, and deep nesting. Returns what it did.
#[allow(
    clippy::too_many_lines,
    reason = "a flat match over the kinds of mutation"
)]
pub fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) -> String {
    let mut done = Vec::new();
    for _ in 0..rng.between(1, 4) {
        let len = bytes.len();
        let at = if len == 0 { 0 } else { rng.below(len + 1) };
        match rng.below(12) {
            0 if len > 0 => {
                let i = rng.below(len);
                bytes[i] ^= 1 << rng.below(8);
                done.push(format!("flip bit at {i}"));
            }
            1 if len > 0 => {
                let i = rng.below(len);
                bytes[i] = rng.byte();
                done.push(format!("set byte {i}"));
            }
            2 => {
                bytes.truncate(at);
                done.push(format!("truncate to {at}"));
            }
            3 => {
                let n = rng.between(1, 16);
                let junk = rng.bytes(n);
                bytes.splice(at..at, junk);
                done.push(format!("insert {n} random bytes at {at}"));
            }
            4 | 5 => {
                let t = rng.pick(TOKENS);
                bytes.splice(at..at, t.iter().copied());
                done.push(format!("insert {:?} at {at}", String::from_utf8_lossy(t)));
            }
            6 if len > 0 => {
                let from = rng.below(len);
                let to = (from + rng.between(1, 64)).min(len);
                bytes.drain(from..to);
                done.push(format!("delete {from}..{to}"));
            }
            7 if len > 0 => {
                let from = rng.below(len);
                let to = (from + rng.between(1, 512)).min(len);
                let copy = bytes[from..to].to_vec();
                let at = rng.below(bytes.len() + 1);
                bytes.splice(at..at, copy);
                done.push(format!("duplicate {from}..{to} at {at}"));
            }
            8 if len > 0 => {
                let from = rng.below(len);
                let to = (from + rng.between(1, 32)).min(len);
                let copy = bytes[from..to].to_vec();
                let times = rng.between(2, 2000);
                let repeated: Vec<u8> = copy
                    .iter()
                    .copied()
                    .cycle()
                    .take(copy.len() * times)
                    .collect();
                bytes.splice(to..to, repeated);
                done.push(format!("repeat {from}..{to} {times} times"));
            }
            9 => {
                let (open, close) =
                    *rng.pick(&[("[", "]"), ("{", "}"), ("[[", "]]"), ("{\"a\":", "}")]);
                let depth = rng.between(100, 20_000);
                let mut nest = open.repeat(depth).into_bytes();
                if rng.percent(50) {
                    nest.extend(close.repeat(depth).into_bytes());
                }
                bytes.splice(at..at, nest);
                done.push(format!("nest {open} {depth} deep at {at}"));
            }
            10 => {
                let n = rng.awkward_number();
                bytes.splice(at..at, n.bytes());
                done.push(format!("insert number {n} at {at}"));
            }
            _ if len > 1 => {
                // Swap two ranges (fields, sections or records change places).
                let a = rng.below(len);
                let b = rng.below(len);
                let (a, b) = (a.min(b), a.max(b));
                let n = rng.between(1, 64).min(b - a).min(len - b);
                for k in 0..n {
                    bytes.swap(a + k, b + k);
                }
                done.push(format!("swap {n} bytes at {a} and {b}"));
            }
            _ => {
                bytes.push(rng.byte());
                done.push("append a byte".into());
            }
        }
    }
    done.join(", ")
}

/// A file of the repository (tests' seeds), read at test time.
pub fn repo_file(relative: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading seed `{}`: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Memory: a counting allocator for the test binary

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Counting;

/// Zeroed allocations at least this large may be charged as reserved address space instead of
/// live memory (see [`Property::reserved`]): the system allocator maps them from the kernel,
/// whose zero pages become resident only when written.
const LAZY_ZEROED: usize = 1 << 20;
/// Reserved blocks tracked at once (no allocation may happen inside the allocator).
const RESERVED_SLOTS: usize = 16;

thread_local! {
    /// Bytes allocated minus bytes freed on this thread since the budget was armed.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// The budget while a case runs; `isize::MAX` otherwise.
    static BUDGET: Cell<isize> = const { Cell::new(isize::MAX) };
    /// Large zeroed blocks charged as reserved, not live: (address, size); and the budget and
    /// peak of those (0 budget: none allowed, they count as live).
    static RESERVED: Cell<[(usize, usize); RESERVED_SLOTS]> = const { Cell::new([(0, 0); RESERVED_SLOTS]) };
    static RESERVED_BUDGET: Cell<usize> = const { Cell::new(0) };
    static RESERVED_PEAK: Cell<usize> = const { Cell::new(0) };
    /// What to print when the budget or the deadline is blown (rendered before the case runs,
    /// because the allocator must not allocate).
    static ABOUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn over_budget(what: &[u8]) -> ! {
    BUDGET.with(|b| b.set(isize::MAX));
    RESERVED_BUDGET.with(|b| b.set(0));
    write_stderr(what);
    let _ = ABOUT.try_with(|about| {
        if let Ok(about) = about.try_borrow() {
            write_stderr(&about);
        }
    });
    // The budget is off now, so the allocator may be re-entered to show who asked.
    if std::env::var_os("MLBUILD_PROPTEST_BACKTRACE").is_some() {
        let trace = std::backtrace::Backtrace::force_capture().to_string();
        write_stderr(trace.as_bytes());
    }
    std::process::abort();
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(delta);
        live.set(now);
        if now > BUDGET.try_with(Cell::get).unwrap_or(isize::MAX) {
            over_budget(b"\nproperty test: memory budget exceeded\n");
        }
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

/// Charges a large zeroed block as reserved when the case allows it; false if it must count
/// as live memory.
fn reserve(ptr: *mut u8, size: usize) -> bool {
    let budget = RESERVED_BUDGET.try_with(Cell::get).unwrap_or(0);
    if budget == 0 || size < LAZY_ZEROED || ptr.is_null() {
        return false;
    }
    let Ok(mut slots) = RESERVED.try_with(Cell::get) else {
        return false;
    };
    let Some(free) = slots.iter().position(|&(p, _)| p == 0) else {
        return false;
    };
    slots[free] = (ptr as usize, size);
    RESERVED.with(|r| r.set(slots));
    let total: usize = slots.iter().map(|&(_, n)| n).sum();
    if total > budget {
        over_budget(b"\nproperty test: reserved (zeroed) memory budget exceeded\n");
    }
    RESERVED_PEAK.with(|p| p.set(p.get().max(total)));
    true
}

/// Releases a reserved block; false if `ptr` was not one.
fn unreserve(ptr: *mut u8) -> bool {
    let Ok(mut slots) = RESERVED.try_with(Cell::get) else {
        return false;
    };
    match slots.iter().position(|&(p, _)| p == ptr as usize) {
        Some(i) => {
            slots[i] = (0, 0);
            RESERVED.with(|r| r.set(slots));
            true
        }
        None => false,
    }
}

fn write_stderr(bytes: &[u8]) {
    // SAFETY: writing a valid buffer to fd 2; the result is irrelevant (we abort next).
    unsafe {
        libc::write(2, bytes.as_ptr().cast(), bytes.len());
    }
}

// SAFETY: every call is forwarded to `System`; the counting never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let lazy =
            layout.size() >= LAZY_ZEROED && RESERVED_BUDGET.try_with(Cell::get).unwrap_or(0) > 0;
        if !lazy {
            note(layout.size() as isize);
            return System.alloc_zeroed(layout);
        }
        let ptr = System.alloc_zeroed(layout);
        if !reserve(ptr, layout.size()) {
            note(layout.size() as isize);
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !unreserve(ptr) {
            note(-(layout.size() as isize));
        }
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A reserved block that grows or shrinks is written to: from now on it is live.
        let was_reserved = unreserve(ptr);
        note(
            new_size as isize
                - if was_reserved {
                    0
                } else {
                    layout.size() as isize
                },
        );
        System.realloc(ptr, layout, new_size)
    }
}

/// Runs `f` with at most `limit` bytes live on this thread (a regression test's guard: past
/// it the binary aborts, naming `what`).
pub fn within_memory(limit: usize, what: &str, f: impl FnOnce()) {
    ABOUT.with(|a| *a.borrow_mut() = format!("{what}\n").into_bytes());
    LIVE.with(|l| l.set(0));
    BUDGET.with(|b| b.set(limit as isize));
    f();
    BUDGET.with(|b| b.set(isize::MAX));
}

// ---------------------------------------------------------------------------------------------
// Time: a watchdog for hung cases

struct Armed {
    thread: std::thread::ThreadId,
    deadline: Instant,
    about: Vec<u8>,
}

fn watchdog() -> &'static Mutex<Vec<Armed>> {
    static ARMED: OnceLock<Mutex<Vec<Armed>>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_millis(100));
            let armed = watchdog().lock().unwrap_or_else(|e| e.into_inner());
            if let Some(late) = armed.iter().find(|a| Instant::now() > a.deadline) {
                write_stderr(b"\nproperty test: a case is still running past its deadline\n");
                write_stderr(&late.about);
                std::process::abort();
            }
        });
        Mutex::new(Vec::new())
    })
}

// ---------------------------------------------------------------------------------------------
// The run loop

/// What one parser's test promises about each case.
pub struct Property {
    /// The parser, as named in reports (`ml.toml`, `mojo`).
    pub parser: &'static str,
    /// Each case must finish within this (debug build, busy machine).
    pub deadline: Duration,
    /// Bytes a case may have live on its thread at any moment.
    pub memory: usize,
    /// Bytes of large zeroed allocations a case may hold as reserved address space on top of
    /// `memory` (0: none; they count as live). Only for third-party decoders known to reserve
    /// a buffer of a declared length before reading it (docs/testing.md).
    pub reserved: usize,
    /// Where a failing case can be rerun: `cargo test --lib FILTER`.
    pub test_filter: &'static str,
}

/// How a property run went, for the summary line.
#[derive(Debug, Default)]
pub struct Summary {
    pub cases: usize,
    pub elapsed: Duration,
    pub slowest: Duration,
    /// Time spent making inputs (the rest is the parser's).
    pub generating: Duration,
    pub peak_bytes: usize,
    /// Peak of large zeroed blocks charged as reserved ([`Property::reserved`]).
    pub peak_reserved: usize,
    /// How many cases ended each way (the label the property returned), to show how deep
    /// the inputs reach.
    pub outcomes: std::collections::BTreeMap<String, usize>,
}

struct Settings {
    cases: usize,
    seed: u64,
    only: Option<usize>,
    /// Report every failing case instead of stopping at the first.
    keep_going: bool,
}

fn number_var(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}=`{v}` is not a number")))
}

fn settings() -> Settings {
    Settings {
        cases: number_var("MLBUILD_PROPTEST_CASES").map_or(DEFAULT_CASES, |n| n as usize),
        seed: number_var("MLBUILD_PROPTEST_SEED").unwrap_or(DEFAULT_SEED),
        only: number_var("MLBUILD_PROPTEST_CASE").map(|n| n as usize),
        keep_going: std::env::var_os("MLBUILD_PROPTEST_KEEP_GOING").is_some(),
    }
}

fn case_seed(base: u64, parser: &str, case: usize) -> u64 {
    let mut h = base;
    for b in parser.bytes().chain((case as u64).to_le_bytes()) {
        h = Rng::new(h ^ u64::from(b)).next_u64();
    }
    h
}

/// `$TMPDIR/mlbuild-proptest/`, created once.
fn breadcrumbs() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join("mlbuild-proptest");
        std::fs::create_dir_all(&dir).ok().map(|()| dir)
    })
    .as_deref()
}

fn file_name(parser: &str) -> String {
    parser
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn save(parser: &str, case: usize, input: &Input) -> Option<PathBuf> {
    let path = breadcrumbs()?.join(format!("{}-case{case}.bin", file_name(parser)));
    std::fs::write(&path, &input.bytes).ok()?;
    Some(path)
}

/// Runs `property` on the cases `generate` makes (see the module doc) and panics with a
/// reproducible report on the first failure.
#[allow(
    clippy::too_many_lines,
    reason = "the harness's one loop: generate, run under the budget, shrink, report"
)]
pub fn check(
    p: &Property,
    mut generate: impl FnMut(&mut Rng) -> Input,
    property: impl Fn(&Input) -> Result<String, String>,
) -> Summary {
    let s = settings();
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut failures = 0;
    let range = match s.only {
        Some(i) => i..i + 1,
        None => 0..s.cases,
    };
    for case in range {
        let seed = case_seed(s.seed, p.parser, case);
        let made = Instant::now();
        let input = generate(&mut Rng::new(seed));
        summary.generating += made.elapsed();
        let rerun = format!(
            "MLBUILD_PROPTEST_SEED={:#x} MLBUILD_PROPTEST_CASE={case} cargo test --lib {}",
            s.seed, p.test_filter
        );
        let about = format!(
            "parser `{}`, case {case} (seed {seed:#x}): {}{}\nrerun: {rerun}\n",
            p.parser,
            input.how,
            if input.args.is_empty() {
                String::new()
            } else {
                format!(" with {:?}", input.args)
            },
        );
        ABOUT.with(|a| *a.borrow_mut() = about.clone().into_bytes());
        // What no handler can report (a stack overflow aborts at once) is left in this file.
        if let Some(dir) = breadcrumbs() {
            let _ = std::fs::write(
                dir.join(format!("{}-current.txt", file_name(p.parser))),
                &about,
            );
        }
        let thread = std::thread::current().id();
        let deadline = Instant::now() + p.deadline;
        watchdog()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Armed {
                thread,
                // The watchdog aborts only well past the deadline: a slow case fails below.
                deadline: deadline + p.deadline * 3,
                about: about.clone().into_bytes(),
            });
        LIVE.with(|l| l.set(0));
        PEAK.with(|l| l.set(0));
        RESERVED.with(|r| r.set([(0, 0); RESERVED_SLOTS]));
        RESERVED_PEAK.with(|r| r.set(0));
        RESERVED_BUDGET.with(|b| b.set(p.reserved));
        BUDGET.with(|b| b.set(p.memory as isize));
        let t = Instant::now();
        let outcome = panic_boundary::catch(|| property(&input));
        let took = t.elapsed();
        BUDGET.with(|b| b.set(isize::MAX));
        RESERVED_BUDGET.with(|b| b.set(0));
        summary.peak_reserved = summary.peak_reserved.max(RESERVED_PEAK.with(Cell::get));
        watchdog()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|a| a.thread != thread);
        let peak = PEAK.with(Cell::get).max(0) as usize;
        summary.cases += 1;
        summary.slowest = summary.slowest.max(took);
        summary.peak_bytes = summary.peak_bytes.max(peak);
        let failure = match outcome {
            Err(panic) => Some(format!("panicked: {panic}")),
            Ok(Err(why)) => Some(why),
            Ok(Ok(_)) if took > p.deadline => Some(format!(
                "took {took:?}, past the deadline of {:?}",
                p.deadline
            )),
            Ok(Ok(label)) => {
                *summary.outcomes.entry(label).or_default() += 1;
                None
            }
        };
        if let Some(failure) = failure {
            let saved = save(p.parser, case, &input)
                .map(|f| format!("\ninput saved to {}", f.display()))
                .unwrap_or_default();
            if !s.keep_going {
                panic!("{about}failure: {failure}{saved}");
            }
            eprintln!("{about}failure: {failure}{saved}\n");
            failures += 1;
        }
    }
    assert_eq!(
        failures, 0,
        "{failures} failing cases of `{}` (listed above)",
        p.parser
    );
    summary.elapsed = started.elapsed();
    eprintln!(
        "property `{}`: {} cases in {:.2?} ({:.2?} making inputs; slowest case {:.2?}, peak {:.1} MiB live)",
        p.parser,
        summary.cases,
        summary.elapsed,
        summary.generating,
        summary.slowest,
        summary.peak_bytes as f64 / f64::from(1u32 << 20)
    );
    if summary.peak_reserved > 0 {
        eprintln!(
            "  zeroed address space reserved by a decoder: peak {:.1} MiB (resident only where written)",
            summary.peak_reserved as f64 / f64::from(1u32 << 20)
        );
    }
    let outcomes: Vec<String> = summary
        .outcomes
        .iter()
        .map(|(label, n)| format!("{label}: {n}"))
        .collect();
    eprintln!("  outcomes: {}", outcomes.join(", "));
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_deterministic_and_distinct() {
        assert_eq!(case_seed(1, "a", 0), case_seed(1, "a", 0));
        assert_ne!(case_seed(1, "a", 0), case_seed(1, "a", 1));
        assert_ne!(case_seed(1, "a", 0), case_seed(1, "b", 0));
        let mut a = Rng::new(5);
        let mut b = Rng::new(5);
        let mut x = b"hello, world".to_vec();
        let mut y = x.clone();
        assert_eq!(mutate(&mut a, &mut x), mutate(&mut b, &mut y));
        assert_eq!(x, y);
    }

    #[test]
    fn the_allocator_counts_this_thread() {
        LIVE.with(|l| l.set(0));
        let v: Vec<u8> = Vec::with_capacity(1 << 20);
        assert!(LIVE.with(Cell::get) >= 1 << 20);
        drop(v);
        assert!(LIVE.with(Cell::get) < 1 << 10);
    }

    #[test]
    fn a_failing_case_is_reported_with_its_seed() {
        if settings().only.is_some() {
            return;
        }
        let p = Property {
            parser: "demo",
            deadline: Duration::from_secs(5),
            memory: 1 << 20,
            reserved: 0,
            test_filter: "hostile::tests",
        };
        let report = panic_boundary::catch(|| {
            check(
                &p,
                |rng| Input::new(vec![rng.byte()], "one byte"),
                |input| {
                    if input.bytes[0] > 200 {
                        panic!("too big");
                    }
                    Ok("fine".into())
                },
            )
        })
        .unwrap_err();
        assert!(
            report.message.contains("parser `demo`, case"),
            "{}",
            report.message
        );
        assert!(
            report.message.contains("panicked: too big"),
            "{}",
            report.message
        );
        assert!(
            report.message.contains("MLBUILD_PROPTEST_CASE="),
            "{}",
            report.message
        );
    }
}

//! One data row as the passes over a CSV see it, whichever reader produced it: the `csv`
//! crate's (quoted fields, errors with their line) or the unquoted fast path of the block
//! passes ([`unquoted_rows`]), which splits lines at `,` without a CSV state machine.

use std::io::Read;

/// The fields of one CSV row.
pub trait Record {
    /// Whether no field of such a row can hold a `,`, `"`, `\r` or `\n` (the unquoted fast
    /// path's rows; the `csv` crate's records can hold them, quoted).
    const PLAIN: bool = false;

    /// Field `i`, if the row has one.
    fn get(&self, i: usize) -> Option<&str>;
}

impl Record for csv::StringRecord {
    fn get(&self, i: usize) -> Option<&str> {
        csv::StringRecord::get(self, i)
    }
}

/// A row of an unquoted CSV: one line and where each of its fields ends.
pub struct Row<'a> {
    line: &'a str,
    /// The end of each field in `line` (a `,` or the line's end).
    ends: &'a [usize],
}

impl<'a> Row<'a> {
    pub fn get(&self, i: usize) -> Option<&'a str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] + 1 };
        Some(&self.line[start..end])
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        (0..self.ends.len()).map(|i| self.get(i).expect("in range"))
    }
}

impl Record for Row<'_> {
    const PLAIN: bool = true;

    fn get(&self, i: usize) -> Option<&str> {
        Row::get(self, i)
    }
}

/// How many bytes [`unquoted_rows`] reads at a time (a longer line grows its buffer).
const READ_BYTES: usize = 1 << 20;

/// Calls `each` on every row of `input`, an unquoted CSV body (no header), as the `csv` crate
/// would read it: rows end at `\n` or `\r\n` (and at the end of the input), blank lines are
/// skipped, fields are split at `,` and kept as they are (untrimmed).
///
/// Returns `false` as soon as the bytes need the real CSV reader, which also reports errors
/// with their line: a `"` anywhere, a `\r` not ending a line (the `csv` crate ends a row
/// there), a row not `columns` wide, invalid UTF-8, or a read error. It also returns `false`
/// when `each` does (asked to stop).
pub fn unquoted_rows(
    mut input: impl Read,
    columns: usize,
    mut each: impl FnMut(&Row<'_>) -> bool,
) -> bool {
    let mut buf = vec![0u8; READ_BYTES];
    let mut filled = 0;
    let mut ends = Vec::with_capacity(columns);
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = match input.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        if memchr::memchr(b'"', &buf[filled..filled + n]).is_some() {
            return false;
        }
        filled += n;
        let eof = n == 0;
        // Whole lines only: up to the last `\n`, or everything at the end of the input.
        let end = if eof {
            filled
        } else {
            match memchr::memrchr(b'\n', &buf[..filled]) {
                Some(p) => p + 1,
                None => continue,
            }
        };
        // A `\n` never falls inside a UTF-8 sequence: `end` is a character boundary.
        let Ok(text) = std::str::from_utf8(&buf[..end]) else {
            return false;
        };
        let mut lines = Lines {
            text,
            cr: memchr::memchr(b'\r', text.as_bytes()).is_some(),
            start: 0,
            ends: &mut ends,
            columns,
        };
        let whole = separators(text.as_bytes(), |at, byte| {
            if byte == b',' {
                lines.ends.push(at - lines.start);
                true
            } else {
                lines.line_ends_at(at, &mut each)
            }
        });
        // The last line of the input may have no `\n`.
        if !whole || (eof && lines.start < end && !lines.line_ends_at(end, &mut each)) {
            return false;
        }
        if eof {
            return true;
        }
        buf.copy_within(end..filled, 0);
        filled -= end;
    }
}

/// The lines of one block of [`unquoted_rows`], cut as its separators are met.
struct Lines<'t, 'e> {
    text: &'t str,
    /// Whether the block has a `\r` at all (usually not: no line needs a second look).
    cr: bool,
    /// Where the current line starts.
    start: usize,
    /// The current line's field ends so far (relative to `start`).
    ends: &'e mut Vec<usize>,
    columns: usize,
}

impl Lines<'_, '_> {
    /// Ends the current line at `at` (its `\n`, or the end of the input) and hands it to
    /// `each`; false to stop.
    fn line_ends_at(&mut self, at: usize, each: &mut impl FnMut(&Row<'_>) -> bool) -> bool {
        let mut line = &self.text[self.start..at];
        self.start = at + 1;
        if self.cr {
            line = line.strip_suffix('\r').unwrap_or(line);
            if line.contains('\r') {
                return false;
            }
        }
        // A blank line is skipped, as the `csv` crate does.
        let go = (line.is_empty() && self.ends.is_empty()) || {
            self.ends.push(line.len());
            self.ends.len() == self.columns
                && each(&Row {
                    line,
                    ends: self.ends,
                })
        };
        self.ends.clear();
        go
    }
}

/// Calls `f(position, byte)` on each `,` and `\n` of `bytes`, in order, until it returns false
/// (then false). Eight bytes at a time: a word's `,`s and `\n`s are found with a few integer
/// operations (no branch per byte), since fields are too short for `memchr` to pay off.
fn separators(bytes: &[u8], mut f: impl FnMut(usize, u8) -> bool) -> bool {
    const LOW: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    // The high bit of each byte of `w` that is zero, exactly (no borrow between bytes).
    let zeros = |w: u64| !(((w & LOW) + LOW) | w | LOW);
    let commas = u64::from_le_bytes([b','; 8]);
    let newlines = u64::from_le_bytes([b'\n'; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut base = 0;
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let mut hits = zeros(w ^ commas) | zeros(w ^ newlines);
        while hits != 0 {
            let at = base + (hits.trailing_zeros() / 8) as usize;
            if !f(at, bytes[at]) {
                return false;
            }
            hits &= hits - 1;
        }
        base += 8;
    }
    for (k, &b) in words.remainder().iter().enumerate() {
        if (b == b',' || b == b'\n') && !f(base + k, b) {
            return false;
        }
    }
    true
}

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

    /// The row's fields as they were read, joined by `,` (no line end), when the reader has
    /// them so ([`Row`]).
    fn line(&self) -> Option<&str> {
        None
    }
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

    fn line(&self) -> Option<&str> {
        Some(self.line)
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
/// (then false). Sixty-four bytes at a time: their `,`s and `\n`s become the bits of one mask
/// ([`separator_mask`]), whose set bits are visited in order; no branch per byte, since fields
/// are too short for `memchr` to pay off.
fn separators(bytes: &[u8], mut f: impl FnMut(usize, u8) -> bool) -> bool {
    let chunks = bytes.chunks_exact(64);
    // The last bytes, padded with zeros (never a separator), go through the same mask.
    let mut tail = [0u8; 64];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    let masks = chunks
        .map(|chunk| separator_mask(chunk.try_into().expect("64 bytes")))
        .chain([separator_mask(&tail)]);
    for (k, mut hits) in masks.enumerate() {
        while hits != 0 {
            let at = 64 * k + hits.trailing_zeros() as usize;
            if !f(at, bytes[at]) {
                return false;
            }
            hits &= hits - 1;
        }
    }
    true
}

/// Bit `i` set when byte `i` of `chunk` is a `,` or a `\n`: four 16-byte compares with SSE2,
/// which every x86_64 processor has. Over the separators of a 105 MB file on one thread: 24 ms,
/// against 37 ms for [`separator_mask_words`] and 46 ms for the eight-byte loop before them
/// (docs/performance.md, the data path's fifth round).
#[cfg(target_arch = "x86_64")]
fn separator_mask(chunk: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut mask = 0;
    for (k, lane) in chunk.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of the x86_64 baseline, so these instructions exist on every
        // processor this code runs on; `lane` is 16 readable bytes, and `_mm_loadu_si128`
        // reads 16 bytes from any alignment.
        let bits = unsafe {
            let v = _mm_loadu_si128(lane.as_ptr().cast());
            let comma = _mm_cmpeq_epi8(v, _mm_set1_epi8(b',' as i8));
            let newline = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8));
            _mm_movemask_epi8(_mm_or_si128(comma, newline))
        };
        mask |= u64::from(bits as u16) << (16 * k);
    }
    mask
}

#[cfg(not(target_arch = "x86_64"))]
fn separator_mask(chunk: &[u8; 64]) -> u64 {
    separator_mask_words(chunk)
}

/// [`separator_mask`] eight bytes at a time with integer operations, for other processors.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn separator_mask_words(chunk: &[u8; 64]) -> u64 {
    const LOW: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    // The high bit of each byte of `w` that is zero, exactly (no borrow between bytes).
    let zeros = |w: u64| !(((w & LOW) + LOW) | w | LOW);
    let commas = u64::from_le_bytes([b','; 8]);
    let newlines = u64::from_le_bytes([b'\n'; 8]);
    let mut mask = 0;
    for (j, word) in chunk.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let high = zeros(w ^ commas) | zeros(w ^ newlines);
        // Byte i's high bit (bit 8i + 7) to bit 56 + i: the products never overlap.
        let bits = ((high >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56;
        mask |= bits << (8 * j);
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both masks are the byte-by-byte answer, on random chunks dense in separators.
    #[test]
    fn the_separator_masks_are_the_bytes_that_are_separators() {
        let alphabet = [
            b',',
            b'\n',
            b'a',
            b'0',
            b'\r',
            0xC3,
            0xA9,
            0x2C ^ 0x80,
            0x0A | 0x80,
        ];
        let mut seed = 1u64;
        for _ in 0..20_000 {
            let mut chunk = [0u8; 64];
            for b in &mut chunk {
                seed += 1;
                *b = alphabet[(crate::table::splitmix64(seed) % alphabet.len() as u64) as usize];
            }
            let expected = chunk.iter().enumerate().fold(0u64, |m, (i, &b)| {
                m | u64::from(b == b',' || b == b'\n') << i
            });
            assert_eq!(separator_mask(&chunk), expected, "{chunk:?}");
            assert_eq!(separator_mask_words(&chunk), expected, "{chunk:?}");
        }
    }

    /// Every separator in order, across chunk boundaries and the tail, and a stop is a stop.
    #[test]
    fn separators_are_visited_in_order_and_stop_when_asked() {
        let text: Vec<u8> = (0..1000u32)
            .map(|i| match crate::table::splitmix64(u64::from(i)) % 5 {
                0 => b',',
                1 => b'\n',
                _ => b'x',
            })
            .collect();
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 1000] {
            let bytes = &text[..len];
            let expected: Vec<(usize, u8)> = bytes
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b',' || b == b'\n')
                .map(|(i, &b)| (i, b))
                .collect();
            let mut seen = Vec::new();
            assert!(separators(bytes, |at, b| {
                seen.push((at, b));
                true
            }));
            assert_eq!(seen, expected, "length {len}");
            if let Some(stop) = expected.len().checked_sub(1).map(|n| n / 2) {
                let mut calls = 0;
                assert!(!separators(bytes, |_, _| {
                    calls += 1;
                    calls <= stop
                }));
                assert_eq!(calls, stop + 1, "length {len}: stopped at the first false");
            }
        }
    }
}

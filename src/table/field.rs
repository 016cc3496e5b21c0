//! What one CSV field means: missing (empty or `NA` after trimming, as H2O's parser reads
//! them; scoring also takes genmodel's `N/A` and `-`), trimmed, or a number.

/// Whether a data field is missing: empty or `NA` after trimming (H2O's parser's defaults).
/// Every reading of the data (profile, split, transforms, drift, metrics) asks this.
pub fn is_missing(field: &str) -> bool {
    value_of(field).is_none()
}

/// A data field's value: the field trimmed, or `None` when it is missing ([`is_missing`]).
pub fn value_of(field: &str) -> Option<&str> {
    let f = trim(field);
    (!f.is_empty() && f != "NA").then_some(f)
}

/// Whether a cell given to `predict` or `serve` is missing: as genmodel's `PredictCsv` reads
/// them, `""`, `NA`, `N/A` and `-`, after trimming (docs/mojo.md, serve.md).
pub fn is_missing_to_score(cell: &str) -> bool {
    matches!(trim(cell), "" | "NA" | "N/A" | "-")
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

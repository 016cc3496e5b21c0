//! Java's `Double.toHexString`, the exact-bits form `PredictCsv` writes by default.

/// Formats `x` as Java's `Double.toHexString` does: `0x1.8p1`, `-0x0.0p0`, `0x0.0000000000001p-1022`,
/// `NaN`, `Infinity`.
pub fn java_hex(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let bits = x.to_bits();
    let sign = if bits >> 63 == 1 { "-" } else { "" };
    let exponent = ((bits >> 52) & 0x7FF) as i64;
    let mantissa = bits & ((1 << 52) - 1);
    if exponent == 0 && mantissa == 0 {
        return format!("{sign}0x0.0p0");
    }
    let digits = format!("{mantissa:013x}");
    let trimmed = digits.trim_end_matches('0');
    let digits = if trimmed.is_empty() { "0" } else { trimmed };
    if exponent == 0 {
        format!("{sign}0x0.{digits}p-1022")
    } else {
        format!("{sign}0x1.{digits}p{}", exponent - 1023)
    }
}

#[cfg(test)]
mod tests {
    use super::java_hex;

    #[test]
    fn matches_java() {
        assert_eq!(java_hex(1.0), "0x1.0p0");
        assert_eq!(java_hex(-2.5), "-0x1.4p1");
        assert_eq!(java_hex(0.0), "0x0.0p0");
        assert_eq!(java_hex(-0.0), "-0x0.0p0");
        assert_eq!(java_hex(f64::MIN_POSITIVE / 4.0), "0x0.4p-1022");
        // jshell: Double.toHexString(Double.MIN_VALUE * 3), Double.toHexString(-0.1)
        assert_eq!(java_hex(3.0 * 4.9e-324), "0x0.0000000000003p-1022");
        assert_eq!(java_hex(-0.1), "-0x1.999999999999ap-4");
        assert_eq!(java_hex(0.6969005479296446), "0x1.64d0260bd8384p-1");
    }
}

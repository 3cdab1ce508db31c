//! Redis's strict decimal integer syntax (`string2ll` in redis `util.c`), shared by the request
//! framing (multibulk and bulk counts) and the command arguments (`INCRBY 5`, `EX 10`).
//!
//! Invariant: accepts exactly what `string2ll` accepts: an optional `-`, then `0` alone or a
//! digit 1-9 followed by digits, fitting an `i64`; no `+`, no spaces, no leading zeros, no `-0`.

/// Parses `bytes` as Redis does; `None` when Redis would answer "not an integer".
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    if bytes == b"0" {
        return Some(0);
    }
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let first = *digits.first()?;
    if !(b'1'..=b'9').contains(&first) {
        return None;
    }
    // Accumulate as a negative number so that i64::MIN, whose magnitude has no positive i64, fits.
    let mut value: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

/// Parses an unsigned length (a count or a byte length) the same way; `None` for negatives too.
pub fn parse_len(bytes: &[u8]) -> Option<u64> {
    parse_i64(bytes).and_then(|v| u64::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_string2ll_accepts() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"7"), Some(7));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
    }

    #[test]
    fn refuses_what_string2ll_refuses() {
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"-0",
            b"00",
            b"1.0",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"123456789012345678901",
            b"1a",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn lengths_are_not_negative() {
        assert_eq!(parse_len(b"5"), Some(5));
        assert_eq!(parse_len(b"-1"), None);
    }
}

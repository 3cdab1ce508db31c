//! The request target: its path and query, and percent-decoding of the parts the API reads
//! (`/kv/{key}`: a key is any bytes, sent percent-encoded).
//!
//! Invariants: decoding writes only into the caller's buffer (no allocation beyond its growth);
//! a `%` not followed by two hex digits is an error, never passed through.

/// `target` split at its first `?`: the path and the query (empty when none).
pub fn split(target: &[u8]) -> (&[u8], &[u8]) {
    match target.iter().position(|&b| b == b'?') {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, &[]),
    }
}

/// Appends `src` percent-decoded to `out` (`+` stays `+`: this is a path, not a form). Returns
/// false on a malformed escape (what was appended is then meaningless).
pub fn percent_decode(src: &[u8], out: &mut Vec<u8>) -> bool {
    let mut i = 0;
    while i < src.len() {
        if src[i] == b'%' {
            let (Some(hi), Some(lo)) = (src.get(i + 1).and_then(hex), src.get(i + 2).and_then(hex)) else {
                return false;
            };
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(src[i]);
            i += 1;
        }
    }
    true
}

fn hex(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The raw (still encoded) value of the first `name=value` pair named `name` in `query`.
pub fn query_param<'a>(query: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=').unwrap_or(pair.len());
        (&pair[..eq] == name).then(|| pair.get(eq + 1..).unwrap_or(&[]))
    })
}

/// Decodes a query value (`+` is a space there, as in forms).
pub fn query_decode(src: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    if !percent_decode(src, out) {
        return false;
    }
    // A `+` that came from `%2B` must stay: decode `+` before escapes instead.
    out.truncate(start);
    let mut i = 0;
    while i < src.len() {
        match src[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                percent_decode(&src[i..i + 3], out);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_decoded_and_bad_escapes_refused() {
        let mut out = Vec::new();
        assert!(percent_decode(b"a%20b%2Fc+d", &mut out));
        assert_eq!(out, b"a b/c+d");
        for bad in [&b"%"[..], b"%4", b"%zz", b"a%g1"] {
            out.clear();
            assert!(!percent_decode(bad, &mut out), "{bad:?}");
        }
        out.clear();
        assert!(query_decode(b"a+b%2Bc", &mut out));
        assert_eq!(out, b"a b+c");
        assert_eq!(split(b"/watch?key=a&x"), (&b"/watch"[..], &b"key=a&x"[..]));
        assert_eq!(query_param(b"key=a&prefix=b", b"prefix"), Some(&b"b"[..]));
        assert_eq!(query_param(b"key", b"key"), Some(&b""[..]));
        assert_eq!(query_param(b"keys=1", b"key"), None);
    }
}

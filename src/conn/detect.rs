//! Which protocol a new TCP connection speaks, from its first bytes, and the key of its first
//! request (the acceptor hands the connection to the shard that owns that key, so a client that
//! works on one key, or a few nearby, is served without a hop between shards).
//!
//! - protocol v1 over TCP: a 4-byte length, then a datagram starting with the magic `VG`;
//! - HTTP/1.x: a method, a space and a `/` (`GET /kv/a HTTP/1.1`): told apart so that it is never
//!   taken for an inline RESP command;
//! - RESP: a `*` (an array of bulk strings, what every client library sends) or any other printable
//!   byte (an inline command: `PING\r\n`).
//!
//! Invariants: never panics and never reads past its input, whatever the bytes; answers
//! `NeedMore` only while fewer than `FIRST_BYTES_MAX` bytes were seen, so a connection is classified
//! after a bounded number of bytes; the routing key, when given, lies inside the input.

/// The most bytes looked at; a connection still undecided then is classified without a key.
pub const FIRST_BYTES_MAX: usize = 512;

/// What the first bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// Protocol v1 datagrams with a length prefix.
    Binary,
    /// RESP, with the byte range of the first request's key when it has one.
    Resp {
        /// `input[start..end]`: the key.
        key: Option<(usize, usize)>,
    },
    /// An HTTP request.
    Http,
    /// Not enough bytes yet.
    NeedMore,
    /// Nothing served here (a TLS handshake, binary garbage).
    Unknown,
}

const HTTP_METHODS: [&[u8]; 7] = [b"GET", b"PUT", b"POST", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH"];

/// RESP commands whose first argument is not a key.
const KEYLESS: [&[u8]; 12] = [
    b"PING", b"ECHO", b"HELLO", b"AUTH", b"CLIENT", b"COMMAND", b"CONFIG", b"INFO", b"SELECT", b"QUIT",
    b"DBSIZE", b"MULTI",
];

/// Classifies a connection by its first bytes.
pub fn detect(input: &[u8]) -> Detected {
    let Some(&first) = input.first() else { return Detected::NeedMore };
    if input.len() >= 6 && input[4..6] == *b"VG" {
        return Detected::Binary;
    }
    if first == b'*' {
        return resp_array(input);
    }
    if is_http(input) {
        return Detected::Http;
    }
    let text = |b: &u8| b.is_ascii_graphic() || matches!(b, b' ' | b'\r' | b'\n' | b'\t');
    if first.is_ascii_graphic() && input.iter().all(text) {
        // An inline command: wait for its line (a method name alone could still become HTTP).
        if !input.contains(&b'\n') && input.len() < FIRST_BYTES_MAX {
            return Detected::NeedMore;
        }
        return Detected::Resp { key: None };
    }
    if input.len() < 6 {
        return Detected::NeedMore; // a length prefix still short of the magic
    }
    Detected::Unknown
}

fn is_http(input: &[u8]) -> bool {
    HTTP_METHODS.iter().any(|m| {
        input.len() > m.len() + 1
            && input.starts_with(m)
            && input[m.len()] == b' '
            && input[m.len() + 1] == b'/'
    })
}

/// A RESP array: the second bulk string is the key unless the command has none. Input that cannot
/// be a request (a bad count or length on a complete line) is RESP without a key: the session
/// answers its protocol error.
fn resp_array(input: &[u8]) -> Detected {
    // Not decidable yet: the part that failed to parse is still arriving.
    let undecided = |at: usize| {
        let line_open = !input.get(at..).unwrap_or(&[]).contains(&b'\n');
        if line_open && input.len() < FIRST_BYTES_MAX {
            Detected::NeedMore
        } else {
            Detected::Resp { key: None }
        }
    };
    let Some((count, at)) = line_number(input, 0, b'*') else { return undecided(0) };
    if count < 2 {
        return Detected::Resp { key: None };
    }
    let name = match bulk(input, at) {
        Bulk::Whole(start, end, next) => (start, end, next),
        Bulk::Short if input.len() < FIRST_BYTES_MAX => return Detected::NeedMore,
        Bulk::Short | Bulk::Invalid => return Detected::Resp { key: None },
    };
    let command = &input[name.0..name.1];
    // The candle commands name no key (a LIGHT runs on the receiving shard: spread them).
    let candle = command.get(..7).is_some_and(|p| p.eq_ignore_ascii_case(b"CANDLE."));
    if candle || KEYLESS.iter().any(|k| k.eq_ignore_ascii_case(command)) {
        return Detected::Resp { key: None };
    }
    match bulk(input, name.2) {
        Bulk::Whole(start, end, _) => Detected::Resp { key: Some((start, end)) },
        Bulk::Short if input.len() < FIRST_BYTES_MAX => Detected::NeedMore,
        Bulk::Short | Bulk::Invalid => Detected::Resp { key: None },
    }
}

/// A bulk string at some position.
enum Bulk {
    /// Its bytes' range and where the next element starts.
    Whole(usize, usize, usize),
    /// Not all of it is in yet.
    Short,
    /// It cannot be one.
    Invalid,
}

/// `<prefix><digits>\r\n` at `at`: the number and where the next line starts.
fn line_number(input: &[u8], at: usize, prefix: u8) -> Option<(i64, usize)> {
    if *input.get(at)? != prefix {
        return None;
    }
    let rest = input.get(at + 1..)?;
    let end = rest.iter().take(20).position(|&b| b == b'\r')?;
    if rest.get(end + 1) != Some(&b'\n') {
        return None;
    }
    let n = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    Some((n, at + 1 + end + 2))
}

/// The bulk string at `at`.
fn bulk(input: &[u8], at: usize) -> Bulk {
    let Some((len, start)) = line_number(input, at, b'$') else {
        let line_open = !input.get(at..).unwrap_or(&[]).contains(&b'\n');
        return if line_open { Bulk::Short } else { Bulk::Invalid };
    };
    let Some(end) = usize::try_from(len).ok().and_then(|l| start.checked_add(l)) else {
        return Bulk::Invalid;
    };
    match input.get(end..end + 2) {
        None => Bulk::Short,
        Some(b"\r\n") => Bulk::Whole(start, end, end + 2),
        Some(_) => Bulk::Invalid,
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn protocols_are_told_apart_by_their_first_bytes() {
        let set = b"*3\r\n$3\r\nSET\r\n$3\r\nabc\r\n$1\r\nv\r\n";
        assert_eq!(detect(set), Detected::Resp { key: Some((17, 20)) });
        assert_eq!(&set[17..20], b"abc");
        assert_eq!(detect(b"*1\r\n$4\r\nPING\r\n"), Detected::Resp { key: None });
        assert_eq!(detect(b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n"), Detected::Resp { key: None });
        assert_eq!(detect(b"*2\r\n$3\r\nGET\r\n$3\r\nab"), Detected::NeedMore);
        assert_eq!(detect(b"PING\r\n"), Detected::Resp { key: None });
        let light = b"*3\r\n$12\r\nCANDLE.LIGHT\r\n$4\r\nnome\r\n$3\r\nAna\r\n";
        assert_eq!(detect(light), Detected::Resp { key: None }, "candles are spread, not keyed");
        assert_eq!(detect(b"PIN"), Detected::NeedMore);
        assert_eq!(detect(b"GET /kv/a HTTP/1.1\r\n"), Detected::Http);
        assert_eq!(detect(b"GET a\r\n"), Detected::Resp { key: None });
        assert_eq!(detect(b"\x20\x00\x00\x00VG\x01"), Detected::Binary);
        assert_eq!(detect(b"\x20\x00"), Detected::NeedMore);
        assert_eq!(detect(b"\x16\x03\x01\x02\x00\x01"), Detected::Unknown, "a TLS hello");
        assert_eq!(detect(b""), Detected::NeedMore);
        assert_eq!(detect(b"*abc\r\n"), Detected::Resp { key: None }, "answered with its protocol error");
        assert_eq!(detect(b"*1\r\n+PING\r\n"), Detected::Resp { key: None });
        assert_eq!(detect(b"*ab"), Detected::NeedMore);
    }

    proptest! {
        #[test]
        fn never_panics_and_decides_within_the_bound(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let d = detect(&bytes);
            if bytes.len() >= FIRST_BYTES_MAX {
                prop_assert_ne!(d, Detected::NeedMore);
            }
            if let Detected::Resp { key: Some((s, e)) } = d {
                prop_assert!(s <= e && e <= bytes.len());
            }
        }
    }
}

//! Request framing tests: multibulk and inline, pipelining and every split point, limits, and
//! Redis's error texts.

use super::*;

const LIMITS: RespLimits =
    RespLimits { args_max: 16, arg_bytes_max: 64, inline_bytes_max: 128, request_bytes_max: 512 };

/// Parses every request of `buf`, returning each request's arguments (empty requests skipped).
fn parse_all(buf: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, RespError> {
    let mut table = ArgTable::new(&LIMITS);
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        match parse_request(&buf[pos..], &mut table, &LIMITS)? {
            Parsed::Incomplete => return Ok(out),
            Parsed::Empty { consumed } => pos += consumed,
            Parsed::Request { consumed } => {
                let args = table.view(&buf[pos..]);
                out.push((0..args.len()).map(|i| args.get(i).to_vec()).collect());
                pos += consumed;
            }
        }
    }
}

fn one(buf: &[u8]) -> Vec<Vec<u8>> {
    let mut all = parse_all(buf).unwrap();
    assert_eq!(all.len(), 1, "{:?}", String::from_utf8_lossy(buf));
    all.pop().unwrap()
}

fn strs(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn err_text(buf: &[u8]) -> String {
    let err = parse_all(buf).unwrap_err();
    let mut out = Vec::new();
    err.write_message(&mut out);
    assert!(err.closes_connection());
    String::from_utf8(out).unwrap()
}

#[test]
fn limits_validate() {
    assert_eq!(LIMITS.validate(), Ok(()));
    assert!(RespLimits { args_max: 0, ..LIMITS }.validate().is_err());
    assert!(RespLimits { inline_bytes_max: 1024, ..LIMITS }.validate().is_err());
    assert!(RespLimits { request_bytes_max: usize::MAX, ..LIMITS }.validate().is_err());
}

#[test]
fn multibulk_request() {
    assert_eq!(one(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n"), strs(&["SET", "k", "hello"]));
    assert_eq!(one(b"*1\r\n$0\r\n\r\n"), strs(&[""]));
    // Binary bytes, CRLF inside an argument.
    assert_eq!(one(b"*2\r\n$4\r\nECHO\r\n$4\r\na\r\n\0\r\n"), vec![b"ECHO".to_vec(), b"a\r\n\0".to_vec()]);
}

#[test]
fn empty_requests_are_skipped() {
    let mut table = ArgTable::new(&LIMITS);
    assert_eq!(parse_request(b"*0\r\n", &mut table, &LIMITS), Ok(Parsed::Empty { consumed: 4 }));
    assert_eq!(parse_request(b"*-1\r\n", &mut table, &LIMITS), Ok(Parsed::Empty { consumed: 5 }));
    assert_eq!(parse_request(b"\r\n", &mut table, &LIMITS), Ok(Parsed::Empty { consumed: 2 }));
    assert_eq!(parse_request(b"   \n", &mut table, &LIMITS), Ok(Parsed::Empty { consumed: 4 }));
    assert_eq!(parse_all(b"\r\n*0\r\nPING\r\n").unwrap(), vec![strs(&["PING"])]);
}

#[test]
fn inline_requests() {
    assert_eq!(one(b"PING\r\n"), strs(&["PING"]));
    assert_eq!(one(b"PING\n"), strs(&["PING"]));
    assert_eq!(one(b"  set  k\tv \r\n"), strs(&["set", "k", "v"]));
    assert_eq!(one(b"set k \"a b\"\r\n"), strs(&["set", "k", "a b"]));
    assert_eq!(one(b"set k 'a b'\r\n"), strs(&["set", "k", "a b"]));
    assert_eq!(one(b"echo \"\\x41\\n\\t\\\\\\\"\"\r\n"), vec![b"echo".to_vec(), b"A\n\t\\\"".to_vec()]);
    assert_eq!(one(b"echo 'it\\'s'\r\n"), strs(&["echo", "it's"]));
    assert_eq!(one(b"echo 'a\\nb'\r\n"), strs(&["echo", "a\\nb"]));
    assert_eq!(one(b"echo a\"b c\"\r\n"), strs(&["echo", "ab c"]));
    assert_eq!(one(b"echo \"\"\r\n"), strs(&["echo", ""]));
    // `\x` without two hex digits is `x`; a NUL ends the line, as in C.
    assert_eq!(one(b"echo \"\\xZZ\"\r\n"), strs(&["echo", "xZZ"]));
    assert_eq!(one(b"echo a\0 b\r\n"), strs(&["echo", "a"]));
    // A vertical tab separates only as leading blank (isspace), not inside an unquoted argument.
    assert_eq!(one(b"echo \x0ba\x0bb\r\n"), vec![b"echo".to_vec(), b"a\x0bb".to_vec()]);
}

#[test]
fn inline_unbalanced_quotes() {
    for bad in
        [&b"echo \"a\r\n"[..], b"echo 'a\r\n", b"echo \"a\"b\r\n", b"echo 'a'b\r\n", b"echo \"a\\\"\r\n"]
    {
        assert_eq!(err_text(bad), "ERR Protocol error: unbalanced quotes in request", "{:?}", bad);
    }
}

#[test]
fn multibulk_error_texts() {
    assert_eq!(err_text(b"*x\r\n"), "ERR Protocol error: invalid multibulk length");
    assert_eq!(err_text(b"*2147483648\r\n"), "ERR Protocol error: invalid multibulk length");
    assert_eq!(err_text(b"*1\r\nx\r\n"), "ERR Protocol error: expected '$', got 'x'");
    assert_eq!(err_text(b"*1\r\n\r\n"), "ERR Protocol error: expected '$', got ' '");
    assert_eq!(err_text(b"*1\r\n$a\r\n"), "ERR Protocol error: invalid bulk length");
    assert_eq!(err_text(b"*1\r\n$-1\r\n"), "ERR Protocol error: invalid bulk length");
    assert_eq!(err_text(b"*1\r\n$01\r\n"), "ERR Protocol error: invalid bulk length");
    assert_eq!(err_text(b"*1\r\n$1\r\nab\r\n"), "ERR Protocol error: invalid bulk length");
    assert_eq!(err_text(b"*1\rx"), "ERR Protocol error: invalid bulk length");
}

#[test]
fn limits_give_clean_errors() {
    assert_eq!(err_text(b"*17\r\n"), "ERR Protocol error: invalid multibulk length");
    assert_eq!(err_text(b"*1\r\n$65\r\n"), "ERR Protocol error: invalid bulk length");
    let long_count = [b"*".as_slice(), &[b'1'; 129]].concat();
    assert_eq!(err_text(&long_count), "ERR Protocol error: too big mbulk count string");
    let long_bulk_count = [b"*1\r\n$".as_slice(), &[b'1'; 129]].concat();
    assert_eq!(err_text(&long_bulk_count), "ERR Protocol error: too big bulk count string");
    let long_inline = vec![b'a'; 129];
    assert_eq!(err_text(&long_inline), "ERR Protocol error: too big inline request");
    let long_line = [vec![b'a'; 129], b"\r\n".to_vec()].concat();
    assert_eq!(err_text(&long_line), "ERR Protocol error: too big inline request");
    let many_inline = "a ".repeat(17) + "\r\n";
    assert_eq!(err_text(many_inline.as_bytes()), "ERR Protocol error: too big inline request");
    // 9 arguments of 60 bytes: each within arg_bytes_max, the request over request_bytes_max.
    let mut big = b"*9\r\n".to_vec();
    for _ in 0..9 {
        big.extend_from_slice(b"$60\r\n");
        big.extend_from_slice(&[b'v'; 60]);
        big.extend_from_slice(b"\r\n");
    }
    assert_eq!(err_text(&big), "ERR Protocol error: too big request");
    // Declared lengths are refused before their bytes arrive: nothing is buffered for them.
    assert_eq!(err_text(&big[..4 + 9 * 67 - 70]), "ERR Protocol error: too big request");
}

#[test]
fn incomplete_until_whole() {
    let mut table = ArgTable::new(&LIMITS);
    for partial in
        [&b""[..], b"*", b"*2", b"*2\r", b"*2\r\n$3\r\nGET", b"*2\r\n$3\r\nGET\r\n$1\r\nk\r", b"PIN"]
    {
        assert_eq!(parse_request(partial, &mut table, &LIMITS), Ok(Parsed::Incomplete), "{partial:?}");
        assert!(table.is_empty());
    }
}

#[test]
fn every_split_point_gives_the_same_requests() {
    let stream: &[u8] = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\nset a \"b c\"\n*0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";
    let whole = parse_all(stream).unwrap();
    assert_eq!(whole.len(), 4);
    for split in 0..=stream.len() {
        // Feed the first part, take what parses, then append the rest (as a connection would).
        let mut table = ArgTable::new(&LIMITS);
        let mut buf = stream[..split].to_vec();
        let mut got = Vec::new();
        let mut fed_all = false;
        loop {
            match parse_request(&buf, &mut table, &LIMITS).unwrap() {
                Parsed::Request { consumed } => {
                    let args = table.view(&buf);
                    got.push((0..args.len()).map(|i| args.get(i).to_vec()).collect::<Vec<_>>());
                    buf.drain(..consumed);
                }
                Parsed::Empty { consumed } => {
                    buf.drain(..consumed);
                }
                Parsed::Incomplete if !fed_all => {
                    buf.extend_from_slice(&stream[split..]);
                    fed_all = true;
                }
                Parsed::Incomplete => break,
            }
        }
        assert_eq!(got, whole, "split at {split}");
        assert!(buf.is_empty());
    }
}

#[test]
fn parsing_keeps_the_table_capacities() {
    let mut table = ArgTable::new(&LIMITS);
    let before = table.capacities();
    let stream = b"*16\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n";
    assert!(matches!(parse_request(stream, &mut table, &LIMITS), Ok(Parsed::Request { .. })));
    assert_eq!(table.len(), 16);
    let inline = [b"echo \"".as_slice(), &[b'x'; 64], b"\" ", &[b'y'; 50], b"\r\n"].concat();
    assert!(matches!(parse_request(&inline, &mut table, &LIMITS), Ok(Parsed::Request { .. })));
    assert_eq!(table.capacities(), before);
}

#[test]
fn garbage_never_panics() {
    let mut table = ArgTable::new(&LIMITS);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        let mut buf = Vec::new();
        for _ in 0..(seed % 64) {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            buf.push(b"*$\r\n01-9a\" '\\x"[(seed >> 33) as usize % 14]);
        }
        let _ = parse_request(&buf, &mut table, &LIMITS);
    }
}

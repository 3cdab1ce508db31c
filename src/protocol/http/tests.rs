use super::*;
use proptest::prelude::*;

const LIMITS: HttpLimits = HttpLimits { head_bytes_max: HEAD_BYTES_MAX, body_bytes_max: 1024 };

fn request(input: &[u8]) -> (Head<'_>, &[u8], usize) {
    match parse_request(input, &LIMITS) {
        Ok(Parsed::Request { head, body, consumed }) => (head, body, consumed),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_put_with_its_headers_and_body() {
    let input = b"PUT /kv/a%20b?x=1 HTTP/1.1\r\nHost: h\r\nContent-Type: application/json; charset=utf-8\r\n\
If-Match: \"42\"\r\nContent-Length: 5\r\nAccept: text/plain, application/json\r\n\r\nhelloGET";
    let (head, body, consumed) = request(input);
    assert_eq!(head.method, Method::Put);
    assert_eq!(head.target, b"/kv/a%20b?x=1");
    assert!(head.keep_alive && head.json_body && head.accept_json);
    assert_eq!(head.if_match.and_then(parse_etag), Some(42));
    assert_eq!(body, b"hello");
    assert_eq!(&input[consumed..], b"GET");
}

#[test]
fn connection_and_versions() {
    let (h, _, _) = request(b"GET / HTTP/1.0\r\n\r\n");
    assert!(!h.keep_alive, "1.0 closes by default");
    let (h, _, _) = request(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(h.keep_alive);
    let (h, _, _) = request(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(!h.keep_alive);
    let (h, _, _) = request(
        b"GET /watch?key=a HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(h.upgrade_websocket);
    assert_eq!(h.websocket_key, Some(&b"dGhlIHNhbXBsZSBub25jZQ=="[..]));
    assert_eq!(parse_request(b"GET / HTTP/2.0\r\n\r\n", &LIMITS), Err(HttpError::Version));
}

#[test]
fn every_split_point_is_incomplete_until_the_whole_request_is_in() {
    let input = b"PUT /kv/k HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc";
    let head_len = input.len() - 3;
    for cut in 0..input.len() {
        match parse_request(&input[..cut], &LIMITS) {
            Ok(Parsed::Incomplete { expect_continue }) => {
                assert_eq!(expect_continue, cut >= head_len, "{cut}")
            }
            other => panic!("cut {cut}: {other:?}"),
        }
    }
    assert_eq!(request(input).2, input.len());
}

#[test]
fn pipelined_requests_come_one_at_a_time() {
    let one = b"GET /kv/a HTTP/1.1\r\n\r\nDELETE /kv/b HTTP/1.1\r\n\r\nPUT /kv/c HTTP/1.1\r\nContent-Length: 1\r\n\r\nx";
    let mut at = 0;
    let mut methods = Vec::new();
    while at < one.len() {
        let (head, _, consumed) = request(&one[at..]);
        methods.push(head.method);
        at += consumed;
    }
    assert_eq!(methods, [Method::Get, Method::Delete, Method::Put]);
}

#[test]
fn bounds_and_refusals_have_their_codes() {
    let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(TARGET_BYTES_MAX + 1));
    assert_eq!(parse_request(long_target.as_bytes(), &LIMITS), Err(HttpError::UriTooLong));
    // Still arriving, but already past the bound: refused without waiting for the rest.
    let open_target = format!("GET /{}", "a".repeat(TARGET_BYTES_MAX + 64));
    assert_eq!(parse_request(open_target.as_bytes(), &LIMITS), Err(HttpError::UriTooLong));
    let many: String = (0..HEADERS_MAX + 1).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert_eq!(parse_request(many.as_bytes(), &LIMITS), Err(HttpError::HeadersTooLarge));
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "v".repeat(HEAD_BYTES_MAX));
    assert_eq!(parse_request(big.as_bytes(), &LIMITS), Err(HttpError::HeadersTooLarge));
    let body = b"PUT /kv/a HTTP/1.1\r\nContent-Length: 1025\r\n\r\n";
    assert_eq!(parse_request(body, &LIMITS), Err(HttpError::BodyTooLarge));
    assert_eq!(parse_request(b"PUT /kv/a HTTP/1.1\r\n\r\n", &LIMITS), Err(HttpError::LengthRequired));
    assert!(matches!(
        parse_request(b"POST /api/admin/snapshot HTTP/1.1\r\n\r\n", &LIMITS),
        Ok(Parsed::Request { body: b"", .. })
    ));
    let chunked = b"PUT /kv/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert_eq!(parse_request(chunked, &LIMITS), Err(HttpError::TransferEncoding));
    let two = b"PUT /kv/a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
    assert!(matches!(parse_request(two, &LIMITS), Err(HttpError::BadRequest(_))));
    let bad_len = b"PUT /kv/a HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
    assert!(matches!(parse_request(bad_len, &LIMITS), Err(HttpError::BadRequest(_))));
    for garbage in [
        &b"\x16\x03\x01\x00\x00\r\n\r\n"[..],
        b"GET\0/ HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nNo colon\r\n\r\n",
    ] {
        assert!(matches!(parse_request(garbage, &LIMITS), Err(HttpError::BadRequest(_))), "{garbage:?}");
    }
}

#[test]
fn etags_are_versions() {
    assert_eq!(parse_etag(b"\"7\""), Some(7));
    assert_eq!(parse_etag(b" W/\"7\" "), Some(7));
    for bad in [&b"7"[..], b"\"\"", b"\"x\"", b"*", b"\"99999999999999999999999\""] {
        assert_eq!(parse_etag(bad), None, "{bad:?}");
    }
}

proptest! {
    #[test]
    fn never_panics_and_stays_inside_its_input(bytes in proptest::collection::vec(any::<u8>(), 0..10_000)) {
        if let Ok(Parsed::Request { consumed, body, .. }) = parse_request(&bytes, &LIMITS) {
            prop_assert!(consumed <= bytes.len() && body.len() <= consumed);
        }
        if bytes.len() > LIMITS.head_bytes_max + LIMITS.body_bytes_max {
            let waits = matches!(parse_request(&bytes, &LIMITS), Ok(Parsed::Incomplete { .. }));
            prop_assert!(!waits, "a head past its bound is refused, not waited for");
        }
    }

    #[test]
    fn a_valid_request_parses_whatever_its_key_and_body(
        key in proptest::collection::vec(b'a'..=b'z', 0..64),
        body in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        let mut input = format!("PUT /kv/{} HTTP/1.1\r\nContent-Length: {}\r\n\r\n", String::from_utf8(key).unwrap(), body.len()).into_bytes();
        input.extend_from_slice(&body);
        let (head, got, consumed) = request(&input);
        prop_assert_eq!(head.method, Method::Put);
        prop_assert_eq!(got, &body[..]);
        prop_assert_eq!(consumed, input.len());
    }
}

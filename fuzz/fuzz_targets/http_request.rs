//! HTTP/1.x requests (`protocol::http`): the first byte picks a split point, the rest is a
//! connection's byte stream, framed with `parse_request`, its target split and percent-decoded and
//! its ETags parsed as `conn::http` does, its `Authorization` checked as the admin operations do
//! (`metrics::admin::check_token`), every refusal written with the response writer. Checks:
//! nothing panics; every request consumes bytes within the buffer and its body lies inside them;
//! the requests and the final error are the same whether the stream arrives whole or in two reads
//! split at the chosen point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::protocol::http::response::Response;
use vigil::protocol::http::{parse_etag, parse_request, target, HttpError, HttpLimits, Parsed};

const LIMITS: HttpLimits = HttpLimits { head_bytes_max: 2048, body_bytes_max: 1024 };

/// A request as seen: method, target, body, and the key its path decodes to (if it names one).
type Seen = (String, Vec<u8>, Vec<u8>, Option<Vec<u8>>, Option<u64>);

fn run(stream: &[u8], split: usize) -> (Vec<Seen>, Option<HttpError>) {
    let mut buf = stream[..split].to_vec();
    let mut fed_all = split == stream.len();
    let mut requests = Vec::new();
    let mut out = Vec::new();
    loop {
        match parse_request(&buf, &LIMITS) {
            Err(err) => {
                Response::start(&mut out, err.status()).finish(Some("text/plain"), err.to_string().as_bytes(), false);
                assert!(out.starts_with(b"HTTP/1.1 "));
                return (requests, Some(err));
            }
            Ok(Parsed::Incomplete { .. }) if fed_all => return (requests, None),
            Ok(Parsed::Incomplete { .. }) => {
                buf.extend_from_slice(&stream[split..]);
                fed_all = true;
            }
            Ok(Parsed::Request { head, body, consumed }) => {
                assert!(consumed > 0 && consumed <= buf.len());
                assert!(body.len() <= LIMITS.body_bytes_max && body.len() < consumed);
                let (path, query) = target::split(head.target);
                let mut key = Vec::new();
                let key = path.strip_prefix(b"/kv/").and_then(|k| target::percent_decode(k, &mut key).then_some(key));
                if let Some(v) = target::query_param(query, b"key") {
                    let _ = target::query_decode(v, &mut Vec::new());
                }
                let etag = head.if_match.and_then(parse_etag);
                let _ = vigil::metrics::admin::check_token(head.authorization, "fuzz-admin-token-0123");
                requests.push((format!("{:?}", head.method), head.target.to_vec(), body.to_vec(), key, etag));
                buf.drain(..consumed);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else { return };
    let split = usize::from(split).min(stream.len());
    assert_eq!(run(stream, stream.len()), run(stream, split), "the split changed the outcome");
});

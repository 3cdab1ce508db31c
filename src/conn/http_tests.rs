//! The HTTP session over a real KV projection (writes applied at once, without the log: the real
//! parser, request bodies, state machine and responses), fed a pipelined stream whole and split at
//! every point: the responses are the same bytes, in request order, and a refused request closes
//! the connection after the responses owed before it.

use super::*;
use crate::dispatch::{Dispatcher, Handler, Request};
use crate::engine::{Engine, EngineLimits};
use crate::kv::protocol::{parse_write, render_result};
use crate::kv::KvLimits;
use crate::projection::{Owner, Quota, Router};
use std::cell::RefCell;
use std::rc::Rc;
use vigil_pmd::{ConnId, Nanos, Peer};

/// Applies writes straight to a projection (one lsn per write): answers are all `Now`.
struct DirectKv(Rc<RefCell<Router>>);

impl Handler for DirectKv {
    fn handle(&mut self, req: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status> {
        let mut kv = self.0.borrow_mut();
        if req.opcode == opcode::GET {
            return kv.kv().answer_get(req.body, out).map(Answer::Now);
        }
        let cmd = parse_write(req.opcode, req.client_id, req.request_id, req.body)
            .map_err(|_| Status::BadRequest)?;
        let lsn = kv.applied_lsn() + 1;
        let result = kv.apply_kv(lsn, &cmd);
        render_result(&result, out).map(Answer::Now)
    }
}

/// An engine whose KV writes apply at once (`DirectKv`); also the connection tests' (`guard_tests.rs`).
pub(crate) fn engine() -> Engine {
    let kv = Rc::new(RefCell::new(Router::new(KvLimits::small(), Vec::new())));
    let mut d = Dispatcher::new();
    crate::ops::register_all(&mut d).unwrap();
    for op in [opcode::GET, opcode::SET, opcode::DEL, opcode::INCR, opcode::CAS, opcode::CAD] {
        d.register(op, "direct-kv", Box::new(DirectKv(kv.clone()))).unwrap();
    }
    Engine::new(d, EngineLimits { requests_per_datagram_max: 8 })
}

const LIMITS: HttpLimits = HttpLimits { head_bytes_max: 8192, body_bytes_max: 1472 };

/// Feeds `stream` in two reads split at `split`; returns the output and whether it closed.
fn run(stream: &[u8], split: usize) -> (Vec<u8>, bool) {
    run_with(stream, split, &crate::conn::TcpAuth::open()).0
}

/// `run` checked against `auth`; also returns what was refused.
fn run_with(
    stream: &[u8],
    split: usize,
    auth: &crate::conn::TcpAuth,
) -> ((Vec<u8>, bool), crate::conn::AuthRefusals) {
    run_on(&mut engine(), stream, split, auth)
}

/// `run_with` on `engine`.
fn run_on(
    engine: &mut Engine,
    stream: &[u8],
    split: usize,
    auth: &crate::conn::TcpAuth,
) -> ((Vec<u8>, bool), crate::conn::AuthRefusals) {
    let mut refusals = crate::conn::AuthRefusals::default();
    let mut session = HttpSession::new();
    let (mut output, mut scratch, mut input) = (Vec::new(), vec![0u8; 1472], Vec::new());
    for chunk in [&stream[..split], &stream[split..]] {
        input.extend_from_slice(chunk);
        let mut cx = Cx {
            engine: &mut *engine,
            peer: Peer::connection(ConnId { slot: 0, generation: 0 }),
            now: Nanos(0),
            output: &mut output,
            scratch: &mut scratch,
            datagram_bytes_max: 1472,
            output_bytes_max: 1 << 20,
            auth,
            refusals: &mut refusals,
            // As `conn::run_session` starts every session's step.
            owner: auth.anonymous_owner,
        };
        match session.run(&input, &LIMITS, 1024, &mut cx) {
            Step::Consumed(n) => drop(input.drain(..n)),
            Step::Close { .. } => return ((output, true), refusals),
            other => panic!("{other:?}: every answer here is given at once"),
        }
    }
    ((output, false), refusals)
}

fn statuses(output: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(output);
    text.match_indices("HTTP/1.1 ").map(|(at, _)| text[at + 9..at + 12].to_string()).collect()
}

#[test]
fn a_pipelined_stream_is_answered_in_order_whatever_its_split() {
    let stream: &[u8] = b"PUT /kv/a HTTP/1.1\r\nContent-Length: 3\r\n\r\none\
GET /kv/a HTTP/1.1\r\nAccept: application/json\r\n\r\n\
PUT /kv/a HTTP/1.1\r\nIf-Match: \"99\"\r\nContent-Length: 1\r\n\r\nx\
PUT /kv/a HTTP/1.1\r\nIf-None-Match: *\r\nContent-Length: 1\r\n\r\nx\
PUT /kv/b%2F1 HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"value\":\"two\"}\
GET /kv/b%2F1 HTTP/1.1\r\n\r\n\
HEAD /kv/nope HTTP/1.1\r\n\r\n\
DELETE /kv/a HTTP/1.1\r\n\r\n\
DELETE /kv/a HTTP/1.1\r\n\r\n\
POST /kv/a HTTP/1.1\r\nContent-Length: 0\r\n\r\n\
GET /health HTTP/1.1\r\n\r\n\
GET /kv/%zz HTTP/1.1\r\n\r\n\
PUT /kv/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
GET /kv/b%2F1 HTTP/1.1\r\n\r\n";
    let (whole, closed) = run(stream, stream.len());
    assert!(closed, "the chunked PUT is refused and closes the connection");
    assert_eq!(
        statuses(&whole),
        ["204", "200", "412", "412", "204", "200", "404", "204", "404", "405", "200", "400", "501"],
        "{}",
        String::from_utf8_lossy(&whole)
    );
    let text = String::from_utf8_lossy(&whole);
    assert!(text.contains(r#"{"key":"a","value":"one","version":65536}"#), "{text}");
    assert!(text.contains("ETag: \"65536\""), "{text}");
    assert!(text.contains("\r\n\r\ntwoHTTP/1.1 404"), "{text}");
    assert!(text.contains("Allow: GET, HEAD, PUT, DELETE\r\n"), "{text}");
    assert!(text.ends_with("transfer encodings are not implemented\n"), "the rest is not answered: {text}");
    for split in 0..stream.len() {
        assert_eq!(run(stream, split), (whole.clone(), true), "split at {split}");
    }
}

#[test]
fn http_1_0_and_connection_close_end_the_connection_after_their_answer() {
    let (out, closed) = run(b"GET /kv/x HTTP/1.0\r\n\r\nGET /kv/y HTTP/1.1\r\n\r\n", 0);
    assert!(closed);
    assert_eq!(statuses(&out), ["404"]);
    assert!(String::from_utf8_lossy(&out).contains("Connection: close\r\n"));
    let (out, closed) =
        run(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\n\r\n", 7);
    assert!(!closed);
    assert_eq!(statuses(&out), ["200", "200"]);
    assert!(String::from_utf8_lossy(&out).contains("Connection: keep-alive\r\n"));
}

#[test]
fn a_watch_upgrade_answers_101_and_then_reads_frames() {
    let mut stream = b"GET /watch?key=a%20b HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        .to_vec();
    // A masked ping "hi", then a masked close 1000.
    stream.extend_from_slice(&[0x89, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
    stream.extend_from_slice(&[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xE8 ^ 2]);
    let (out, closed) = run(&stream, stream.len());
    assert!(closed);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{text}");
    assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(
        out.ends_with(&[0x8A, 0x02, b'h', b'i', 0x88, 0x02, 0x03, 0xE8]),
        "a pong, then the close echoed"
    );
    for split in 0..stream.len() {
        assert_eq!(run(&stream, split), (out.clone(), true), "split at {split}");
    }
}

/// DELETE with `If-Match` deletes only at the version named (412 on another, or on no key);
/// If-None-Match on DELETE is a client error.
#[test]
fn a_conditional_delete_deletes_only_the_version_it_names() {
    let put: &[u8] = b"PUT /kv/x HTTP/1.1\r\nContent-Length: 1\r\n\r\n1";
    let (first, _) = run(put, put.len());
    let text = String::from_utf8_lossy(&first);
    let etag = text.split("ETag: ").nth(1).and_then(|t| t.split("\r\n").next()).expect("an ETag").to_string();
    let mut stream = put.to_vec();
    stream.extend_from_slice(b"DELETE /kv/x HTTP/1.1\r\nIf-Match: \"1\"\r\n\r\n");
    stream.extend_from_slice(b"DELETE /kv/x HTTP/1.1\r\nIf-None-Match: *\r\n\r\n");
    stream.extend_from_slice(format!("DELETE /kv/x HTTP/1.1\r\nIf-Match: {etag}\r\n\r\n").as_bytes());
    stream.extend_from_slice(b"GET /kv/x HTTP/1.1\r\n\r\n");
    stream.extend_from_slice(format!("DELETE /kv/x HTTP/1.1\r\nIf-Match: {etag}\r\n\r\n").as_bytes());
    let (out, closed) = run(&stream, stream.len());
    assert!(!closed);
    assert_eq!(
        statuses(&out),
        ["204", "412", "400", "204", "404", "412"],
        "{}",
        String::from_utf8_lossy(&out)
    );
}

/// Two principals (read-only, read-write) and no anonymous access; tokens as in `conn::auth`.
pub(crate) fn two_principals(anonymous: Option<crate::auth::Acl>) -> crate::conn::TcpAuth {
    use crate::config::auth::{AuthConfig, ClientConfig};
    let client = |name: &str, key_id: u32, acl: &str| ClientConfig {
        key: None,
        ..crate::config::auth::test_client(name, key_id, u64::from(key_id) * 100, acl)
    };
    let clients = vec![client("reader", 1, "+@read"), client("writer", 2, "+@read +@write")];
    let table = crate::auth::KeyTable::from_config(&AuthConfig { clients, ..AuthConfig::default() }).unwrap();
    crate::conn::TcpAuth::new(table.shared(), anonymous, None)
}

/// The quota of `quota_principals`' principal `capped`.
pub(crate) const CAPPED_QUOTA: Quota = Quota { keys_max: 2, bytes_max: u64::MAX };
/// The quota of `quota_principals`' anonymous requests.
pub(crate) const ANONYMOUS_QUOTA: Quota = Quota { keys_max: u64::MAX, bytes_max: 64 };

/// `two_principals`' writer, a principal `capped` (key id 3, `CAPPED_QUOTA`), anonymous
/// read-write requests under `ANONYMOUS_QUOTA`; tokens as in `conn::auth`.
pub(crate) fn quota_principals() -> crate::conn::TcpAuth {
    use crate::config::auth::{test_client, AuthConfig, ClientConfig};
    let writer = ClientConfig { key: None, ..test_client("writer", 2, 200, "+@read +@write") };
    let capped = ClientConfig { key: None, keys_max: Some(2), ..test_client("capped", 3, 300, "+@all") };
    let clients = vec![writer, capped];
    let table = crate::auth::KeyTable::from_config(&AuthConfig { clients, ..AuthConfig::default() }).unwrap();
    crate::conn::TcpAuth::new(table.shared(), Some(crate::auth::Acl::ALL), Some(ANONYMOUS_QUOTA))
}

/// Records who each request is for, and answers it OK, or `QUOTA_EXCEEDED` when its body ends
/// with `over` (the store's refusal, to see how each protocol words it).
pub(crate) struct Owners(pub(crate) Rc<RefCell<Vec<Owner>>>);

impl Handler for Owners {
    fn handle(&mut self, req: &Request<'_>, _out: &mut [u8]) -> Result<Answer, Status> {
        self.0.borrow_mut().push(req.owner);
        match req.body.ends_with(b"over") {
            true => Err(Status::QuotaExceeded),
            false => Ok(Answer::Now(0)),
        }
    }
}

/// An engine whose KV requests go to `Owners`, and what it records.
pub(crate) fn owners_engine() -> (Engine, Rc<RefCell<Vec<Owner>>>) {
    let owners = Rc::new(RefCell::new(Vec::new()));
    let mut d = Dispatcher::new();
    crate::ops::register_all(&mut d).unwrap();
    for op in [
        opcode::GET,
        opcode::SET,
        opcode::SETX,
        opcode::MSET,
        opcode::DEL,
        opcode::INCR,
        opcode::CAS,
        opcode::CAD,
    ] {
        d.register(op, "owners", Box::new(Owners(owners.clone()))).unwrap();
    }
    (Engine::new(d, EngineLimits { requests_per_datagram_max: 8 }), owners)
}

/// Each request's writes are for the principal its bearer token names, or for the anonymous
/// owner with the anonymous quota; a write past a quota is 507 with its own text.
#[test]
fn each_request_writes_for_its_token_s_principal_and_a_quota_refusal_is_507() {
    let auth = quota_principals();
    let (mut engine, owners) = owners_engine();
    let put = |token: Option<&str>, value: &str| {
        let header = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        format!("PUT /kv/k HTTP/1.1\r\n{header}Content-Length: {}\r\n\r\n{value}", value.len()).into_bytes()
    };
    let (capped, writer) = ("password-of-capped-0123456789", "password-of-writer-0123456789");
    let stream =
        [put(Some(capped), "v"), put(None, "v"), put(Some(writer), "v"), put(Some(capped), "over")].concat();
    let ((out, closed), _) = run_on(&mut engine, &stream, stream.len(), &auth);
    assert!(!closed);
    assert_eq!(statuses(&out), ["204", "204", "204", "507"]);
    let text = String::from_utf8_lossy(&out);
    assert!(text.ends_with("\r\n\r\nthis principal's quota of keys or bytes is used up (auth.clients keys_max/bytes_max, or auth.anonymous_keys_max/anonymous_bytes_max); nothing written\n"), "{text}");
    let capped = Owner { key_id: 3, quota: Some(CAPPED_QUOTA) };
    let anonymous = Owner { key_id: 0, quota: Some(ANONYMOUS_QUOTA) };
    let writer = Owner { key_id: 2, quota: None };
    assert_eq!(*owners.borrow(), [capped, anonymous, writer, capped]);
}

/// FULL and QUOTA_EXCEEDED are both 507, told apart by their text.
#[test]
fn full_and_quota_exceeded_are_told_apart() {
    let render = |status: Status| {
        let mut out = Vec::new();
        write_failure(&mut out, Reply { close: false, http10: false, head_only: false }, status);
        String::from_utf8(out).unwrap()
    };
    let (full, quota) = (render(Status::Full), render(Status::QuotaExceeded));
    assert!(full.starts_with("HTTP/1.1 507 ") && quota.starts_with("HTTP/1.1 507 "), "{full}{quota}");
    assert!(full.contains("the store is full") && quota.contains("quota"), "{full}{quota}");
    assert_ne!(full.split("\r\n\r\n").nth(1), quota.split("\r\n\r\n").nth(1));
}

#[test]
fn bearer_tokens_gate_the_api_by_method_and_refusals_are_counted() {
    let auth = two_principals(None);
    let req = |method: &str, token: Option<&str>| {
        let header = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        format!("{method} /kv/k HTTP/1.1\r\n{header}Content-Length: 1\r\n\r\nv").into_bytes()
    };
    let (reader, writer) = ("password-of-reader-0123456789", "password-of-writer-0123456789");
    let mut stream = Vec::new();
    for (method, token) in [
        ("GET", None),
        ("GET", Some("wrong-wrong-wrong-wrong")),
        ("PUT", Some(reader)),
        ("PUT", Some(writer)),
        ("GET", Some(reader)),
    ] {
        stream.extend_from_slice(&req(method, token));
    }
    stream.extend_from_slice(b"GET /health HTTP/1.1\r\n\r\n");
    let ((out, closed), refusals) = run_with(&stream, stream.len(), &auth);
    assert!(!closed);
    assert_eq!(statuses(&out), ["401", "401", "403", "204", "200", "200"]);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("WWW-Authenticate: Bearer realm=\"vigil\"\r\n").count(), 2, "{text}");
    assert_eq!((refusals.http_unauthorized, refusals.http_forbidden), (2, 1));
    // Anonymous reads on: a GET needs no token, a PUT without one is told to authenticate.
    let ro = two_principals(Some(crate::auth::Acl::READ));
    let ((out, _), refusals) = run_with(&[req("GET", None), req("PUT", None)].concat(), 0, &ro);
    assert_eq!(statuses(&out), ["404", "401"]);
    assert_eq!(refusals.http_unauthorized, 1);
}

#[test]
fn a_watch_upgrade_needs_a_read_token_in_its_header_or_its_query() {
    let auth = two_principals(None);
    let upgrade = |query: &str, header: &str| {
        format!(
            "GET /watch?key=k{query} HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{header}\r\n"
        )
        .into_bytes()
    };
    let ((out, _), refusals) = run_with(&upgrade("", ""), 0, &auth);
    assert_eq!(statuses(&out), ["401"]);
    assert_eq!(refusals.ws_unauthorized, 1);
    let ((out, _), _) = run_with(&upgrade("&access_token=nope-nope-nope-nope", ""), 0, &auth);
    assert_eq!(statuses(&out), ["401"]);
    let ((out, _), refusals) =
        run_with(&upgrade("&access_token=password-of-reader-0123456789", ""), 0, &auth);
    assert!(out.starts_with(b"HTTP/1.1 101 "), "{}", String::from_utf8_lossy(&out));
    assert_eq!(refusals, crate::conn::AuthRefusals::default());
    let header = "Authorization: Bearer password-of-writer-0123456789\r\n";
    let ((out, _), _) = run_with(&upgrade("", header), 0, &auth);
    assert!(out.starts_with(b"HTTP/1.1 101 "));
}

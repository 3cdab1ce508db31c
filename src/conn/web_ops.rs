//! The operators' pages on the web port, beside the candle page (`web.rs`); docs/OPERATIONS.md.
//!
//! - `GET /`: the dashboard (`metrics::dashboard`), copied from its latest rendering;
//!   `GET /dashboard.js`: its script.
//! - `GET /api/live`: server-sent events, one per rendering (every second), each the dashboard's
//!   live part. The stream takes no more requests; an event a slow reader has no room for
//!   (`output_bytes_max`) is skipped, never queued without bound: the next one replaces it anyway.
//! - `GET /api/status`, `/api/shards`, `/api/partitions`, `/api/config`: the JSON API
//!   (`metrics::api`).
//! - With `admin.read_token` set, every request here but the admin operations must carry
//!   `Authorization: Bearer <admin.read_token or admin.token>`: 401 otherwise (counted).
//! - `/api/admin/...` (bearer token of `admin.token`; 401 without one, 403 for a wrong one or with
//!   admin off): `POST snapshot` (202: every partition's snapshot is started), `POST compact`
//!   (200 once every partition's snapshot is stored and its log checkpointed, with the log bytes
//!   in use before and after; 504 after `COMPACT_WAIT_NS`), `GET`/`PUT log-level` (the process's
//!   log filter). A body over `ADMIN_BODY_BYTES_MAX` is 413.
//!
//! Nothing here runs a request through the engine: the pages come from what the shards and the
//! dashboard thread published, and admin requests reach the shards through their mailbox
//! (`metrics::admin`). A session waiting on one (a live stream, a compaction) is run again by
//! `Connections` every `TICK_NS` (`OpsWait::ticks`).
//!
//! Invariants: every request is answered exactly once, a compaction included (200 or 504); a
//! refused admin request changes nothing; no text from a client is echoed into HTML.

use super::Cx;
use crate::metrics::admin::{check_token, read_allowed, TokenRefusal};
use crate::metrics::api::OpsView;
use crate::metrics::dashboard::SCRIPT;
use crate::metrics::PartitionTotals;
use crate::protocol::http::response::Response;
use crate::protocol::http::{target, Head, Method};
use serde_json::json;

/// How often a waiting operator session is run again.
pub const TICK_NS: u64 = 100_000_000;
/// How long a compaction is waited for before the answer says it still runs (504).
pub const COMPACT_WAIT_NS: u64 = 30_000_000_000;
/// The largest body an admin request may carry (a log filter).
pub const ADMIN_BODY_BYTES_MAX: usize = 1024;

/// The policy of the dashboard's pages: its own script and event stream, inline style, nothing
/// else (no frames, no forms, no other origin).
const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What an operator session waits on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OpsWait {
    /// Nothing: requests are parsed as they come.
    #[default]
    Free,
    /// A live stream: the last rendering sent, and whether events are chunks (HTTP/1.1).
    Live { sent: u64, chunked: bool },
    /// A compaction: its generation, its deadline, the log bytes in use when asked, and how the
    /// answer goes out.
    Compact { generation: u64, deadline_ns: u64, used_before: u64, close: bool, http10: bool },
}

impl OpsWait {
    /// Whether the session must be run again on a timer (`TICK_NS`).
    pub fn ticks(&self) -> bool {
        *self != OpsWait::Free
    }
}

/// What the session may do after `tick`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Take the next request.
    Free,
    /// A live stream: take no request (its input is dropped).
    Live,
    /// Waiting for the shards: take nothing yet.
    Waiting,
}

/// Sends what a waiting session owes now: a new live event, or the compaction's answer once
/// every shard finished it (or its deadline passed).
pub fn tick(wait: &mut OpsWait, ops: Option<&OpsView>, cx: &mut Cx<'_>) -> Tick {
    let Some(ops) = ops else { return Tick::Free };
    match *wait {
        OpsWait::Free => Tick::Free,
        OpsWait::Live { sent, chunked } => {
            if let Some(r) = ops.dashboard.latest().filter(|r| r.seq > sent) {
                if cx.output_has_room(r.event.len() + 16) {
                    write_stream(cx.output, r.event.as_bytes(), chunked);
                }
                *wait = OpsWait::Live { sent: r.seq, chunked };
            }
            Tick::Live
        }
        OpsWait::Compact { generation, deadline_ns, used_before, close, http10 } => {
            let done = ops.admin.shards_done(generation);
            let all = ops.admin.shards();
            let (status, body) = if done == all {
                let t = PartitionTotals::of(&ops.board.latest());
                let used_after = t.log_used_bytes;
                tracing::info!(target: "vigil", "admin: compaction {generation} done: {used_before} -> {used_after} log bytes in use");
                let body = json!({
                    "operation": "compact", "generation": generation, "partitions": t.partitions,
                    "snapshots_total": t.snapshots, "log_used_bytes_before": used_before,
                    "log_used_bytes_after": used_after,
                });
                (200, body)
            } else if cx.now.0 >= deadline_ns {
                let why = format!(
                    "{done} of {all} shards finished within {} s; the snapshots go on (see /api/partitions)",
                    COMPACT_WAIT_NS / 1_000_000_000
                );
                (504, json!({ "error": why, "generation": generation }))
            } else {
                return Tick::Waiting;
            };
            json_answer(cx.output, status, &body.to_string(), (close, http10, false), None);
            *wait = OpsWait::Free;
            Tick::Free
        }
    }
}

/// Answers `head` if it is an operators' request (true), else leaves it to the candle page.
pub fn route(
    head: &Head<'_>,
    body: &[u8],
    ops: Option<&OpsView>,
    close: bool,
    wait: &mut OpsWait,
    cx: &mut Cx<'_>,
) -> bool {
    let (path, _) = target::split(head.target);
    let http10 = head.minor_version == 0;
    let head_only = head.method == Method::Head;
    let readable = matches!(head.method, Method::Get | Method::Head);
    let operators = matches!(path, b"/" | b"/dashboard.js") || path.starts_with(b"/api/");
    if operators
        && !path.starts_with(b"/api/admin/")
        && ops.is_some_and(|o| !read_allowed(head.authorization, &o.read_token, &o.admin_token))
    {
        cx.refusals.web_unauthorized += 1;
        json_answer(
            cx.output,
            401,
            r#"{"error":"the operator pages need `Authorization: Bearer <admin.read_token>`"}"#,
            (close, http10, head_only),
            Some(("WWW-Authenticate", "Bearer realm=\"vigil\"")),
        );
        return true;
    }
    match path {
        b"/" | b"/dashboard.js" | b"/api/live" if !readable => {
            let mut r = Response::start(cx.output, 405);
            r.header("Allow", "GET, HEAD");
            r.connection(close, http10);
            r.finish(Some("text/plain; charset=utf-8"), b"method not allowed\n", false);
        }
        b"/" => match ops.and_then(|o| o.dashboard.latest()) {
            Some(rendered) => {
                let mut r = Response::start(cx.output, 200);
                r.header("Cache-Control", "no-store");
                r.header("Content-Security-Policy", CSP);
                r.connection(close, http10);
                r.finish(Some("text/html; charset=utf-8"), rendered.page.as_bytes(), head_only);
            }
            None => json_answer(
                cx.output,
                503,
                r#"{"error":"the dashboard is not rendered yet: retry in a second"}"#,
                (close, http10, head_only),
                None,
            ),
        },
        b"/dashboard.js" => {
            let mut r = Response::start(cx.output, 200);
            r.header("Cache-Control", "max-age=300");
            r.connection(close, http10);
            r.finish(Some("text/javascript; charset=utf-8"), SCRIPT.as_bytes(), head_only);
        }
        b"/api/live" => start_live(ops, head_only, http10, wait, cx),
        _ if path.starts_with(b"/api/admin/") => admin(head, path, body, ops, close, wait, cx),
        _ if path.starts_with(b"/api/") => api(head, path, ops, close, cx),
        _ => return false,
    }
    true
}

/// `GET /api/live`: the event stream's head and, at once, the latest rendering.
fn start_live(ops: Option<&OpsView>, head_only: bool, http10: bool, wait: &mut OpsWait, cx: &mut Cx<'_>) {
    if ops.is_none() {
        json_answer(
            cx.output,
            503,
            r#"{"error":"the dashboard is not served by this node"}"#,
            (true, http10, head_only),
            None,
        );
        return;
    }
    let mut r = Response::start(cx.output, 200);
    r.header("Content-Type", "text/event-stream");
    r.header("Cache-Control", "no-store");
    if head_only {
        r.header("Content-Length", 0);
        r.connection(false, http10);
        cx.output.extend_from_slice(b"\r\n");
        return;
    }
    // HTTP/1.0 has no chunks: the stream is the rest of the connection.
    let chunked = !http10;
    if chunked {
        r.header("Transfer-Encoding", "chunked");
    } else {
        r.header("Connection", "close");
    }
    cx.output.extend_from_slice(b"\r\n");
    // Reconnect after 2 s if the stream breaks.
    write_stream(cx.output, b"retry: 2000\n\n", chunked);
    *wait = OpsWait::Live { sent: 0, chunked };
    tick(wait, ops, cx);
}

/// `bytes` as the stream's next piece (a chunk when `chunked`).
fn write_stream(out: &mut Vec<u8>, bytes: &[u8], chunked: bool) {
    if chunked {
        let _ = std::io::Write::write_fmt(out, format_args!("{:x}\r\n", bytes.len()));
    }
    out.extend_from_slice(bytes);
    if chunked {
        out.extend_from_slice(b"\r\n");
    }
}

/// `/api/<what>`: the JSON API (`metrics::api`), GET only.
fn api(head: &Head<'_>, path: &[u8], ops: Option<&OpsView>, close: bool, cx: &mut Cx<'_>) {
    let what = std::str::from_utf8(&path[b"/api/".len()..]).unwrap_or("");
    let (status, body) = match (head.method, ops) {
        (Method::Get | Method::Head, Some(ops)) => match ops.answer(what, cx.now.0) {
            Some(json) => (200, json),
            None => (404, r#"{"error":"no such API: /api/status, /api/shards, /api/partitions, /api/config, /api/live, /api/admin/..."}"#.into()),
        },
        (Method::Get | Method::Head, None) => (503, r#"{"error":"the API is not served by this node"}"#.into()),
        _ => (405, r#"{"error":"the API answers GET only"}"#.into()),
    };
    let allow = (status == 405).then_some(("Allow", "GET, HEAD"));
    json_answer(
        cx.output,
        status,
        &body,
        (close, head.minor_version == 0, head.method == Method::Head),
        allow,
    );
}

/// `/api/admin/<op>`: the token first, then the operation.
fn admin(
    head: &Head<'_>,
    path: &[u8],
    body: &[u8],
    ops: Option<&OpsView>,
    close: bool,
    wait: &mut OpsWait,
    cx: &mut Cx<'_>,
) {
    let http10 = head.minor_version == 0;
    let Some(ops) = ops else {
        json_answer(
            cx.output,
            503,
            r#"{"error":"the admin API is not served by this node"}"#,
            (close, http10, false),
            None,
        );
        return;
    };
    if let Err(refusal) = check_token(head.authorization, &ops.admin_token) {
        let (status, why) = match refusal {
            TokenRefusal::Missing => (401, "an admin operation needs `Authorization: Bearer <admin.token>`"),
            TokenRefusal::Wrong => (403, "wrong admin token"),
            TokenRefusal::Off => (403, "admin operations are off: set admin.token in the config"),
        };
        let challenge = (status == 401).then_some(("WWW-Authenticate", "Bearer realm=\"vigil-admin\""));
        json_answer(
            cx.output,
            status,
            &json!({ "error": why }).to_string(),
            (close, http10, false),
            challenge,
        );
        return;
    }
    if body.len() > ADMIN_BODY_BYTES_MAX {
        let why = format!("an admin request's body is at most {ADMIN_BODY_BYTES_MAX} bytes");
        json_answer(cx.output, 413, &json!({ "error": why }).to_string(), (close, http10, false), None);
        return;
    }
    let op = &path[b"/api/admin/".len()..];
    let (status, answer) = match (op, head.method) {
        (b"snapshot", Method::Post) => {
            let generation = ops.admin.ask_snapshot();
            tracing::info!(target: "vigil", "admin: snapshot {generation} of every partition asked");
            (
                202,
                json!({ "operation": "snapshot", "generation": generation, "shards": ops.admin.shards(), "progress": "/api/partitions" }),
            )
        }
        (b"compact", Method::Post) => {
            let generation = ops.admin.ask_snapshot();
            tracing::info!(target: "vigil", "admin: compaction {generation} of every partition asked");
            let used_before = PartitionTotals::of(&ops.board.latest()).log_used_bytes;
            let deadline_ns = cx.now.0.saturating_add(COMPACT_WAIT_NS);
            *wait = OpsWait::Compact { generation, deadline_ns, used_before, close, http10 };
            tick(wait, Some(ops), cx);
            return;
        }
        (b"log-level", Method::Get | Method::Head) => match &ops.log {
            Some(log) => (200, json!({ "filter": log.current() })),
            None => (503, json!({ "error": "this process's log filter cannot change while it runs" })),
        },
        (b"log-level", Method::Put | Method::Post) => set_log(ops, body),
        (b"clients", Method::Get | Method::Head | Method::Post) => clients(ops, head.method, body),
        (name, Method::Delete) if name.starts_with(b"clients/") => revoke(ops, &name[b"clients/".len()..]),
        (b"snapshot" | b"compact", _) => (405, json!({ "error": "POST only" })),
        (b"log-level", _) => (405, json!({ "error": "GET or PUT only" })),
        (b"clients", _) => (405, json!({ "error": "GET or POST only" })),
        (name, _) if name.starts_with(b"clients/") => (405, json!({ "error": "DELETE only" })),
        _ => (404, json!({ "error": "no such admin operation: snapshot, compact, log-level, clients" })),
    };
    let allow = match op {
        b"log-level" => "GET, HEAD, PUT, POST",
        b"clients" => "GET, HEAD, POST",
        _ if op.starts_with(b"clients/") => "DELETE",
        _ => "POST",
    };
    let allow = (status == 405).then_some(("Allow", allow));
    json_answer(cx.output, status, &answer.to_string(), (close, http10, head.method == Method::Head), allow);
}

/// `GET /api/admin/clients`: the principals (no secrets) and revoked key ids; `POST`: adds one
/// from a JSON body (`auth::admin::AddRequest`), answering it with its secrets, this once.
fn clients(ops: &OpsView, method: Method, body: &[u8]) -> (u16, serde_json::Value) {
    let Some(control) = &ops.clients else {
        return (503, json!({ "error": "this node's principals cannot change while it runs" }));
    };
    if method != Method::Post {
        let (clients, revoked) = control.list();
        return (200, json!({ "clients": clients, "revoked_key_ids": revoked }));
    }
    let request = match serde_json::from_slice::<crate::auth::admin::AddRequest>(body) {
        Ok(r) => r,
        Err(e) => return (400, json!({ "error": format!("the body is a principal as JSON: {e}") })),
    };
    match control.add(request) {
        Ok((client, persisted)) => (201, json!({ "client": client, "persisted": persisted })),
        Err(why) => (409, json!({ "error": why })),
    }
}

/// `DELETE /api/admin/clients/{name}`: revokes the principal; its key id is never accepted again.
fn revoke(ops: &OpsView, name: &[u8]) -> (u16, serde_json::Value) {
    let Some(control) = &ops.clients else {
        return (503, json!({ "error": "this node's principals cannot change while it runs" }));
    };
    let Ok(name) = std::str::from_utf8(name) else {
        return (404, json!({ "error": "no principal by that name" }));
    };
    match control.revoke(name) {
        Ok(persisted) => (200, json!({ "revoked": name, "persisted": persisted })),
        Err(why) => (404, json!({ "error": why })),
    }
}

/// `PUT /api/admin/log-level`: the body (a level, or `tracing` directives) as the new filter.
fn set_log(ops: &OpsView, body: &[u8]) -> (u16, serde_json::Value) {
    let Some(log) = &ops.log else {
        return (503, json!({ "error": "this process's log filter cannot change while it runs" }));
    };
    let spec = match std::str::from_utf8(body).map(str::trim) {
        Ok(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ') => s,
        _ => {
            return (
                400,
                json!({ "error": "the body is the filter: a level (error, warn, info, debug, trace) or RUST_LOG directives" }),
            )
        }
    };
    match log.set(spec) {
        Ok(()) => {
            tracing::info!(target: "vigil", "admin: log filter set to {spec:?}");
            (200, json!({ "filter": log.current() }))
        }
        Err(why) => (400, json!({ "error": format!("not a log filter: {why}") })),
    }
}

/// A JSON answer (with `extra`, one more header: `Allow` of a 405, `WWW-Authenticate` of a 401).
fn json_answer(
    out: &mut Vec<u8>,
    status: u16,
    body: &str,
    (close, http10, head_only): (bool, bool, bool),
    extra: Option<(&str, &str)>,
) {
    let mut r = Response::start(out, status);
    if let Some((name, value)) = extra {
        r.header(name, value);
    }
    r.header("Cache-Control", "no-store");
    r.connection(close, http10);
    r.finish(Some("application/json"), body.as_bytes(), head_only);
}

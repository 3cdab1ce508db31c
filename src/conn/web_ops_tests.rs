//! The web port's operator pages through `Connections` over simulated streams (no shard: the
//! pages read the operators' view, never the engine): the admin token's refusals, a snapshot
//! asked through the mailbox, a compaction answered only once the shards marked it done (or 504
//! at its deadline), and a live stream sending each new rendering on the timer.

use super::web_ops::{COMPACT_WAIT_NS, TICK_NS};
use super::{protocol_tag, ConnLimits, Connections, ReadGuard};
use crate::conn::resp::RespSettings;
use crate::dispatch::Dispatcher;
use crate::engine::{Engine, EngineLimits};
use crate::metrics::api::OpsView;
use crate::metrics::dashboard::Rendered;
use crate::metrics::StatsBoard;
use crate::protocol::resp::RespLimits;
use std::sync::Arc;
use vigil_pmd::sim::SimStreams;
use vigil_pmd::{ConnId, Nanos};

const TOKEN: &str = "unit-test-admin-token";

struct Rig {
    streams: SimStreams,
    conns: Connections,
    engine: Engine,
    ops: Arc<OpsView>,
    t: u64,
}

impl Rig {
    fn new() -> Self {
        Self::with_read_token("")
    }

    /// A rig whose config sets `admin.read_token` (empty: none).
    fn with_read_token(read_token: &str) -> Self {
        let mut config = crate::config::Config::dev();
        config.admin.token = TOKEN.into();
        config.admin.read_token = read_token.into();
        let ops = Arc::new(OpsView::new(StatsBoard::new(2), &config, 0));
        ops.dashboard.store(Rendered::new(1, "<html>page 1</html>".into(), "<p>live 1</p>"));
        let streams = SimStreams::new(4096, 1 << 20);
        let limits = ConnLimits {
            input_bytes_max: 1 << 16,
            output_bytes_max: 1 << 16,
            datagram_bytes_max: 1472,
            connections_max: 4,
            page_candles_max: 8,
        };
        let settings = RespSettings {
            limits: RespLimits {
                args_max: 16,
                arg_bytes_max: 1024,
                inline_bytes_max: 1024,
                request_bytes_max: 4096,
            },
            pipeline_max: 8,
            requirepass: Vec::new(),
            auth: crate::conn::TcpAuth::open(),
            placement: crate::inbox::Placement::new(1, 1).expect("one partition"),
            mset_body_bytes_max: 512,
            key_bytes_max: 64,
            value_bytes_max: 256,
        };
        let conns = Connections::new(Box::new(streams.clone()), limits, settings).with_ops(Some(ops.clone()));
        let mut d = Dispatcher::new();
        crate::ops::register_all(&mut d).expect("the opcodes");
        let engine = Engine::new(d, EngineLimits { requests_per_datagram_max: 8 });
        Self { streams, conns, engine, ops, t: 1 }
    }

    /// Polls for `ns` of simulated time, in steps of a millisecond; returns what `c` got.
    fn run(&mut self, c: ConnId, ns: u64) -> String {
        let mut got = Vec::new();
        let end = self.t + ns;
        while self.t < end {
            self.t += 1_000_000;
            self.conns.poll(&mut self.engine, Nanos(self.t), &ReadGuard::NONE);
            got.extend(self.streams.client_take(c));
        }
        String::from_utf8(got).expect("text")
    }

    /// Sends `request` on a new web connection and runs `ns`.
    fn ask(&mut self, request: &str, ns: u64) -> (ConnId, String) {
        let c = self.streams.open(protocol_tag::WEB);
        self.streams.client_send(c, request.as_bytes());
        (c, self.run(c, ns))
    }
}

fn admin(op: &str, method: &str, auth: &str) -> String {
    format!("{method} /api/admin/{op} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\n\r\n")
}

#[test]
fn admin_requests_need_the_token_and_a_snapshot_is_asked_through_the_mailbox() {
    let mut r = Rig::new();
    let (_, got) = r.ask(&admin("snapshot", "POST", ""), 5_000_000);
    assert!(got.starts_with("HTTP/1.1 401 ") && got.contains("WWW-Authenticate: Bearer"), "{got}");
    let (_, got) =
        r.ask(&admin("snapshot", "POST", "Authorization: Bearer not-the-token-at-all\r\n"), 5_000_000);
    assert!(got.starts_with("HTTP/1.1 403 "), "{got}");
    assert_eq!(r.ops.admin.asked(), 0, "a refused request asks nothing");
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let (_, got) = r.ask(&admin("snapshot", "POST", &auth), 5_000_000);
    assert!(got.starts_with("HTTP/1.1 202 ") && got.contains("\"generation\":1"), "{got}");
    assert_eq!(r.ops.admin.asked(), 1);
    let (_, got) = r.ask(&admin("snapshot", "GET", &auth), 5_000_000);
    assert!(got.starts_with("HTTP/1.1 405 ") && got.contains("Allow: POST"), "{got}");
}

#[test]
fn a_compaction_is_answered_once_every_shard_is_done_or_at_its_deadline() {
    let mut r = Rig::new();
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let (c, got) = r.ask(&admin("compact", "POST", &auth), 10 * TICK_NS);
    assert_eq!(got, "", "no answer before the shards are done");
    r.ops.admin.mark_done(0, 1);
    assert_eq!(r.run(c, 3 * TICK_NS), "", "one shard of two");
    r.ops.admin.mark_done(1, 1);
    let got = r.run(c, 2 * TICK_NS);
    assert!(got.starts_with("HTTP/1.1 200 ") && got.contains("\"operation\":\"compact\""), "{got}");
    // The connection takes requests again; the next compaction, never done, times out.
    r.streams.client_send(c, admin("compact", "POST", &auth).as_bytes());
    assert_eq!(r.run(c, COMPACT_WAIT_NS - 2 * TICK_NS), "");
    let got = r.run(c, 4 * TICK_NS);
    assert!(got.starts_with("HTTP/1.1 504 ") && got.contains("0 of 2 shards"), "{got}");
}

#[test]
fn a_live_stream_sends_each_new_rendering_and_takes_no_requests() {
    let mut r = Rig::new();
    let (c, got) = r.ask("GET /api/live HTTP/1.1\r\nHost: x\r\n\r\n", 5_000_000);
    assert!(got.starts_with("HTTP/1.1 200 ") && got.contains("Content-Type: text/event-stream"), "{got}");
    assert!(got.contains("Transfer-Encoding: chunked") && got.contains("retry: 2000"), "{got}");
    assert!(got.contains("id: 1\ndata: <p>live 1</p>\n\n"), "the latest at once: {got}");
    assert_eq!(r.run(c, 3 * TICK_NS), "", "nothing new, nothing sent");
    r.ops.dashboard.store(Rendered::new(2, "<html>page 2</html>".into(), "<p>live 2</p>"));
    // A request sent on the stream is dropped, not answered.
    r.streams.client_send(c, b"GET / HTTP/1.1\r\n\r\n");
    let got = r.run(c, 2 * TICK_NS);
    assert!(got.contains("id: 2\ndata: <p>live 2</p>\n\n") && !got.contains("HTTP/1.1"), "{got}");
    let (_, page) = r.ask("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5_000_000);
    assert!(page.starts_with("HTTP/1.1 200 ") && page.ends_with("<html>page 2</html>"), "{page}");
}

#[test]
fn with_a_read_token_the_operator_pages_need_it_or_the_admin_token_and_refusals_are_counted() {
    let read = "unit-test-read-token";
    let mut r = Rig::with_read_token(read);
    // The simulated streams never reuse a slot (4 here): each connection carries several requests.
    let refused: String = ["/", "/dashboard.js", "/api/status", "/api/live"]
        .map(|p| format!("GET {p} HTTP/1.1\r\nHost: x\r\n\r\n"))
        .concat();
    let (_, got) = r.ask(&refused, 5_000_000);
    assert_eq!(got.matches("HTTP/1.1 401 ").count(), 4, "{got}");
    assert_eq!(got.matches("WWW-Authenticate: Bearer realm=\"vigil\"").count(), 4, "{got}");
    let allowed: String = [read, TOKEN]
        .map(|t| format!("GET /api/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\r\n"))
        .concat();
    let (_, got) = r.ask(&allowed, 5_000_000);
    assert_eq!(got.matches("HTTP/1.1 200 ").count(), 2, "{got}");
    // The admin operations keep needing admin.token exactly: the read token is a wrong one there.
    let (_, got) = r.ask(&admin("snapshot", "POST", &format!("Authorization: Bearer {read}\r\n")), 2_000_000);
    assert!(got.starts_with("HTTP/1.1 403 "), "{got}");
    assert_eq!(r.conns.counters().0.auth_refusals.web_unauthorized, 4);
}

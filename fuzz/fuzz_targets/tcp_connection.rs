//! A TCP connection's byte stream through the acceptor's protocol detection (`conn::detect`) and a
//! shard's `conn::Connections` (RESP, HTTP, the web port's page and form, or the binary protocol
//! with a length prefix; on the web port also the dashboard, its live stream, the JSON API and the
//! admin operations behind their token), over simulated streams that deliver a few bytes per read and take a few
//! per send (the first two bytes pick those sizes), with the engine's PING and ECHO. Checks:
//! nothing panics or hangs; the connection's output stays within the limits (answers bounded by
//! what came in); detection decides within its byte bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::conn::detect::{detect, Detected, FIRST_BYTES_MAX};
use vigil::conn::resp::RespSettings;
use vigil::conn::{protocol_tag, ConnLimits, Connections};
use vigil::dispatch::Dispatcher;
use vigil::engine::{Engine, EngineLimits};
use vigil::protocol::resp::RespLimits;
use vigil_pmd::sim::SimStreams;
use vigil_pmd::Nanos;

const LIMITS: ConnLimits = ConnLimits {
    input_bytes_max: 4096,
    output_bytes_max: 4096,
    datagram_bytes_max: 512,
    connections_max: 2,
    page_candles_max: 8,
};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (chunk, window, input) = (1 + usize::from(data[0] % 32), 1 + usize::from(data[1]), &data[2..]);
    let decided = detect(input);
    if input.len() >= FIRST_BYTES_MAX {
        assert_ne!(decided, Detected::NeedMore);
    }
    // HTTP goes to the KV API's session or, with the top bit of the first byte, to the web
    // port's (the candle page and its form).
    let tag = match decided {
        Detected::Binary => protocol_tag::BINARY,
        Detected::Http if data[0] & 0x80 != 0 => protocol_tag::WEB,
        Detected::Http => protocol_tag::HTTP,
        _ => protocol_tag::RESP,
    };
    let streams = SimStreams::new(chunk, window);
    let mut d = Dispatcher::new();
    vigil::ops::register_all(&mut d).unwrap();
    let mut engine = Engine::new(d, EngineLimits { requests_per_datagram_max: 8 });
    let settings = RespSettings {
        limits: RespLimits { args_max: 16, arg_bytes_max: 1024, inline_bytes_max: 1024, request_bytes_max: 4096 },
        pipeline_max: 8,
        requirepass: Vec::new(),
        // Everything allowed: the fuzzer reaches every command, not only the refusals.
        auth: vigil::conn::TcpAuth::open(),
        placement: vigil::inbox::Placement::new(1, 1).expect("one partition"),
        mset_body_bytes_max: 512,
        key_bytes_max: 64,
        value_bytes_max: 256,
    };
    let ops = ops_view();
    let page = ops.dashboard.latest().map_or(0, |r| r.page.len());
    let mut conns = Connections::new(Box::new(streams.clone()), LIMITS, settings).with_ops(Some(ops));
    let c = streams.open(tag);
    streams.client_send(c, input);
    streams.client_close(c);
    let mut out = 0usize;
    for t in 0..(input.len() + 16) * 4 {
        conns.poll(&mut engine, Nanos(t as u64), &vigil::conn::ReadGuard::NONE);
        out += streams.client_take(c).len();
        if streams.server_closed(c) {
            break;
        }
    }
    assert!(streams.server_closed(c), "the connection was closed after the client hung up");
    // Each request of at least 4 bytes gets one answer, and no answer is larger than a datagram,
    // an ECHO of the request's own bytes or (`GET /`, at least 9 bytes) the dashboard's page.
    let bound = (input.len() + 1) * 600 + (input.len() / 9 + 1) * page;
    assert!(out <= bound, "{out} bytes out for {} in", input.len());
});

/// The web port's operators' view: a node of one shard, admin on (token `FUZZ_TOKEN`), its
/// dashboard rendered once; made once for the whole run (an admin request only raises the
/// mailbox's generation).
fn ops_view() -> std::sync::Arc<vigil::metrics::api::OpsView> {
    static VIEW: std::sync::OnceLock<std::sync::Arc<vigil::metrics::api::OpsView>> = std::sync::OnceLock::new();
    VIEW.get_or_init(make_ops_view).clone()
}

fn make_ops_view() -> std::sync::Arc<vigil::metrics::api::OpsView> {
    use vigil::metrics::dashboard::{render, NodeView};
    let mut config = vigil::config::Config::dev();
    config.admin.token = FUZZ_TOKEN.into();
    let board = vigil::metrics::StatsBoard::new(1);
    board.publish(vigil::metrics::ShardStats::default());
    let view = vigil::metrics::api::OpsView::new(board, &config, 0);
    let history = vigil::metrics::history::History::new(4);
    let latest = view.board.latest();
    let node = NodeView {
        node_id: 1,
        started_ns: 0,
        now_ns: 0,
        shards_total: 1,
        latest: &latest,
        history: &history,
        process: Default::default(),
        config_toml: "",
        admin_on: true,
        disk: None,
    };
    view.dashboard.store(render(&node, 1));
    std::sync::Arc::new(view)
}

/// The admin token (the seeds carry it: `examples/fuzz_seeds.rs`).
const FUZZ_TOKEN: &str = "fuzz-admin-token-0123";

//! TCP serving, for either backend: `prepare` binds the listeners (a start that cannot have them
//! is refused before any shard starts) and makes each shard's connection table and hand-off;
//! `TcpServing::start` runs the acceptor thread; each shard thread takes its `Connections`
//! (`TcpRunning::take`, joined to the node's watch hub); `TcpRunning::finish` joins the acceptor and
//! says what it counted.

use super::acceptor::{self, AcceptorCounters, Listeners};
use super::ServeError;
use crate::config::Config;
use crate::conn::hub::WatchHub;
use crate::conn::resp::RespSettings;
use crate::conn::TcpAuth;
use crate::conn::{ConnLimits, Connections};
use crate::inbox::Placement;
use crate::protocol::resp::RespLimits;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use vigil_pmd::tcp::{Handoff, TcpStreams, TcpStreamsConfig};

/// Readiness events a shard takes from epoll per poll.
const EVENTS_PER_POLL: usize = 1024;
/// Connections waiting for a shard to adopt them.
const HANDOFF_MAX: usize = 1024;
/// Arguments of one RESP command (the argument table's size, allocated per connection).
const RESP_ARGS_MAX: usize = 1024;
/// Longest inline RESP command (Redis's PROTO_INLINE_MAX_SIZE).
const RESP_INLINE_BYTES_MAX: usize = 64 << 10;

/// The TCP side of a starting node.
pub struct TcpServing {
    listeners: Listeners,
    handoffs: Vec<Arc<Handoff>>,
    shards: ShardStreams,
    /// Where it listens.
    pub addrs: Vec<SocketAddr>,
    /// Where the web port listens (the dashboard, the candle page, the operators' API).
    pub web_addrs: Vec<SocketAddr>,
}

/// The TCP side of a running node: the acceptor thread and the shards' connection tables.
pub struct TcpRunning {
    acceptor: JoinHandle<std::io::Result<AcceptorCounters>>,
    shards: Arc<ShardStreams>,
}

/// Binds the listeners and makes the shards' tables; `None` when `tcp.enabled` is false or there
/// is nothing to listen on. `default_addr` is the kernel backend's UDP address (`None` for DPDK);
/// `keys` the node's principals (`auth::NodeAuth`'s table, which every connection checks against).
pub fn prepare(
    config: &Config,
    default_addr: Option<SocketAddrV4>,
    keys: &crate::auth::SharedKeys,
) -> Result<Option<TcpServing>, ServeError> {
    let tcp = &config.tcp;
    let addrs: Vec<SocketAddr> = match (tcp.listen.is_empty(), default_addr) {
        (false, _) => tcp.listen.iter().map(|a| SocketAddr::V4(*a)).collect(),
        (true, Some(a)) => vec![SocketAddr::V4(a)],
        (true, None) => return Ok(None),
    };
    if !tcp.enabled {
        return Ok(None);
    }
    let web: Vec<SocketAddr> = tcp.web_listen.iter().map(|a| SocketAddr::V4(*a)).collect();
    let listeners = Listeners::bind(&addrs, &web)
        .map_err(|e| ServeError::Tcp(format!("cannot listen on {addrs:?} and {web:?}: {e}")))?;
    let stream_config = TcpStreamsConfig {
        connections_max: tcp.connections_per_shard_max,
        handoff_max: HANDOFF_MAX,
        events_max: EVENTS_PER_POLL,
    };
    let mut streams = Vec::with_capacity(config.node.shards);
    let mut handoffs = Vec::with_capacity(config.node.shards);
    for shard in 0..config.node.shards {
        let s = TcpStreams::new(stream_config)
            .map_err(|e| ServeError::Tcp(format!("shard {shard}: cannot make its epoll set: {e}")))?;
        handoffs.push(s.handoff());
        streams.push(Mutex::new(Some(s)));
    }
    let limits = ConnLimits {
        input_bytes_max: tcp.input_bytes_max,
        output_bytes_max: tcp.output_bytes_max,
        datagram_bytes_max: config.net.datagram_bytes_max,
        connections_max: tcp.connections_per_shard_max,
        page_candles_max: tcp.page_candles_max,
    };
    let addrs = listeners.addrs();
    let web_addrs = listeners.web_addrs();
    let resp = RespSettings {
        limits: RespLimits {
            args_max: RESP_ARGS_MAX,
            arg_bytes_max: tcp.input_bytes_max,
            inline_bytes_max: RESP_INLINE_BYTES_MAX.min(tcp.input_bytes_max),
            request_bytes_max: tcp.input_bytes_max,
        },
        pipeline_max: tcp.pipeline_max,
        requirepass: tcp.requirepass.as_bytes().to_vec(),
        // The node's one key table (`NodeAuth`'s, which the admin API swaps): never a copy.
        auth: TcpAuth::new(
            std::sync::Arc::clone(keys),
            config.auth.anonymous.acl(),
            config.auth.anonymous_quota(),
        ),
        placement: Placement::new(config.storage.partitions(config.node.shards), config.node.shards)
            .map_err(|e| ServeError::Tcp(format!("the placement of keys: {e}")))?,
        mset_body_bytes_max: mset_body_bytes_max(config),
        key_bytes_max: config.kv.key_bytes_max,
        value_bytes_max: config.kv.value_bytes_max,
    };
    resp.limits.validate().map_err(|e| ServeError::Tcp(format!("the RESP limits from [tcp]: {e}")))?;
    let hub = Arc::new(WatchHub::new(config.node.shards));
    let shards = ShardStreams { slots: streams, limits, resp, hub, ops: None };
    Ok(Some(TcpServing { listeners, handoffs, shards, addrs, web_addrs }))
}

impl TcpServing {
    /// Has the web port serve the operators' JSON API from `ops`.
    pub(super) fn set_ops(&mut self, ops: Arc<crate::metrics::api::OpsView>) {
        self.shards.ops = Some(ops);
    }

    /// Starts the acceptor thread; it stops with `stop`.
    pub fn start(self, config: &Config, stop: Arc<AtomicBool>) -> Result<TcpRunning, ServeError> {
        let Self { listeners, handoffs, shards, .. } = self;
        let placement = Placement::new(config.storage.partitions(config.node.shards), config.node.shards)
            .map_err(|e| ServeError::Tcp(e.to_string()))?;
        let tcp = config.tcp.clone();
        let acceptor = std::thread::Builder::new()
            .name("vigil-acceptor".into())
            .spawn(move || acceptor::run(listeners, handoffs, placement, &tcp, &stop))
            .map_err(|e| ServeError::Tcp(format!("cannot spawn the acceptor thread: {e}")))?;
        Ok(TcpRunning { acceptor, shards: Arc::new(shards) })
    }
}

impl TcpRunning {
    /// The tables shard threads take their connections from.
    pub fn shards(&self) -> Arc<ShardStreams> {
        Arc::clone(&self.shards)
    }

    /// Joins the acceptor thread (the node is stopping) and says what it counted.
    pub fn finish(self) -> String {
        match self.acceptor.join() {
            Ok(Ok(c)) => {
                format!(
                "tcp acceptor: accepted {} handed {} refused-pending {} timed-out {} unknown-protocol {} \
                 refused-shard-busy {}",
                c.accepted, c.handed, c.refused_pending, c.timed_out, c.unknown_protocol, c.refused_shard_busy
            )
            }
            Ok(Err(e)) => format!("tcp acceptor failed: {e}"),
            Err(_) => "tcp acceptor panicked".to_string(),
        }
    }
}

/// Each shard's connection table, taken once by its thread.
pub struct ShardStreams {
    slots: Vec<Mutex<Option<TcpStreams>>>,
    limits: ConnLimits,
    resp: RespSettings,
    /// Changes for prefix watchers, forwarded between the shards (`conn::hub`).
    hub: Arc<WatchHub>,
    /// The operators' JSON API's view, when the web port serves it (`set_ops`).
    ops: Option<Arc<crate::metrics::api::OpsView>>,
}

impl ShardStreams {
    /// Shard `id`'s connections (once), joined to the watch hub.
    pub fn take(&self, id: usize) -> Option<Connections> {
        let streams = self.slots.get(id)?.lock().expect("slot").take()?;
        let conns = Connections::new(Box::new(streams), self.limits, self.resp.clone());
        Some(conns.with_hub(Arc::clone(&self.hub), id).with_ops(self.ops.clone()))
    }
}

/// The largest MSET request body: one command in one log record (`storage.batch_bytes_max` less
/// the batch header, the command's frame and its header), and no more than a request forwarded
/// to another shard holds (`net.datagram_bytes_max`).
fn mset_body_bytes_max(config: &Config) -> usize {
    use crate::partition::batch::{BATCH_HEADER_LEN, COMMAND_FRAME_LEN};
    let record = config
        .storage
        .batch_bytes_max
        .saturating_sub(BATCH_HEADER_LEN + COMMAND_FRAME_LEN + crate::projection::COMMAND_HEADER_LEN);
    record.min(config.net.datagram_bytes_max)
}

//! TCP serving at start-up: binds the listeners (a start that cannot have them is refused before
//! any shard starts), makes each shard's connection table and hand-off, runs the acceptor thread,
//! and gives each shard its `Connections`.

use super::acceptor::{self, AcceptorCounters, Listeners};
use super::ServeError;
use crate::config::Config;
use crate::conn::resp::RespSettings;
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
    listeners: Option<Listeners>,
    streams: Vec<Mutex<Option<TcpStreams>>>,
    handoffs: Vec<Arc<Handoff>>,
    limits: ConnLimits,
    resp: RespSettings,
    /// Where it listens.
    pub addrs: Vec<SocketAddr>,
}

/// Binds the listeners and makes the shards' tables; `None` when `tcp.enabled` is false or there
/// is nothing to listen on. `default_addr` is the kernel backend's UDP address (`None` for DPDK).
pub fn prepare(
    config: &Config,
    default_addr: Option<SocketAddrV4>,
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
    let listeners =
        Listeners::bind(&addrs).map_err(|e| ServeError::Tcp(format!("cannot listen on {addrs:?}: {e}")))?;
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
    };
    let addrs = listeners.addrs();
    let resp = RespSettings {
        limits: RespLimits {
            args_max: RESP_ARGS_MAX,
            arg_bytes_max: tcp.input_bytes_max,
            inline_bytes_max: RESP_INLINE_BYTES_MAX.min(tcp.input_bytes_max),
            request_bytes_max: tcp.input_bytes_max,
        },
        pipeline_max: tcp.pipeline_max,
        requirepass: tcp.requirepass.as_bytes().to_vec(),
        partitions: u16::try_from(config.storage.partitions(config.node.shards)).unwrap_or(u16::MAX),
    };
    resp.limits.validate().map_err(|e| ServeError::Tcp(format!("the RESP limits from [tcp]: {e}")))?;
    Ok(Some(TcpServing { listeners: Some(listeners), streams, handoffs, limits, resp, addrs }))
}

impl TcpServing {
    /// Starts the acceptor thread; it stops with `stop`.
    pub fn spawn_acceptor(
        &mut self,
        config: &Config,
        stop: Arc<AtomicBool>,
    ) -> Result<JoinHandle<std::io::Result<AcceptorCounters>>, ServeError> {
        let listeners = self.listeners.take().expect("one acceptor");
        let handoffs = self.handoffs.clone();
        let placement = Placement::new(config.storage.partitions(config.node.shards), config.node.shards)
            .map_err(|e| ServeError::Tcp(e.to_string()))?;
        let tcp = config.tcp.clone();
        std::thread::Builder::new()
            .name("vigil-acceptor".into())
            .spawn(move || acceptor::run(listeners, handoffs, placement, &tcp, &stop))
            .map_err(|e| ServeError::Tcp(format!("cannot spawn the acceptor thread: {e}")))
    }

    /// The slots shard threads take their connections from.
    pub fn shard_slots(&self) -> Arc<ShardStreams> {
        Arc::new(ShardStreams {
            slots: self.streams.iter().map(|s| Mutex::new(s.lock().expect("slot").take())).collect(),
            limits: self.limits,
            resp: self.resp.clone(),
        })
    }
}

/// Each shard's connection table, taken once by its thread.
pub struct ShardStreams {
    slots: Vec<Mutex<Option<TcpStreams>>>,
    limits: ConnLimits,
    resp: RespSettings,
}

impl ShardStreams {
    /// Shard `id`'s connections (once).
    pub fn take(&self, id: usize) -> Option<Connections> {
        let streams = self.slots.get(id)?.lock().expect("slot").take()?;
        Some(Connections::new(Box::new(streams), self.limits, self.resp.clone()))
    }
}

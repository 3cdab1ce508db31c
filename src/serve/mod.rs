//! Start-up and shutdown of a node: turns a validated `Config` into running shards.
//!
//! The main thread builds the packet backend (DPDK: EAL, one mempool and one queue pair per shard;
//! kernel: nothing shared, each shard binds its own SO_REUSEPORT socket), spawns one pinned thread
//! per shard, waits until every shard is ready, then sleeps until the stop flag is set (by
//! SIGINT/SIGTERM in the binary). It then joins the shards and returns what each one counted.
//!
//! Before anything else the data directory is locked and checked ([`storage`]): a start that would
//! serve the wrong data (a second process on the same directory, a changed partition count, a
//! lost or truncated log file) is refused before any partition is opened, leaving every file as it
//! was.
//!
//! Invariants: DPDK objects outlive the shards that use them (the port and pools are dropped only
//! after every shard thread has been joined); a shard that fails to start stops the whole node with
//! that shard's error; when DPDK cannot start and `net.fallback = "kernel"`, the reason is reported
//! before the kernel backend takes over, never silently; the data directory's lock is held until
//! every shard has been joined; a log is formatted only when its store is created
//! ([`storage::open_for_serve`], `vigil format`), never by a start (`format_if_blank = false`).

pub mod acceptor;
mod auth_store;
pub mod check;
pub mod cluster;
mod dashboard_thread;
pub mod device_store;
mod gate;
pub mod log_source;
mod metrics_http;
mod partition_io;
mod shard_thread;
pub mod snapfile;
pub mod storage;
pub mod tcp;
pub mod wall_clock;

use crate::config::{Backend, Config, Fallback, StorageBackend};
use crate::dispatch::{Dispatcher, Subsystem};
use crate::engine::{Engine, EngineLimits};
use crate::inbox::{InboxConfig, Placement, Router};
use crate::ops;
use crate::ops::kv::{Kv, KvService, KvShard};
use crate::partition::{Partition, PartitionConfig};
use crate::raft::RaftGroupConfig;
use crate::shard::{Shard, ShardReport, ShardService};
use gate::Starting;
use partition_io::{partition_line, snapshot_store, ReplayBar};
use shard_thread::{run_shard, ShardParts, ShardResult};
use std::cell::RefCell;
use std::net::SocketAddrV4;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;
use vigil_pmd::block::memory::MemoryBlockIo;
use vigil_pmd::block::BlockIo;
use vigil_pmd::kernel::{KernelUdpConfig, KernelUdpIo};
use vigil_pmd::{Clock, PacketIo};
use wall_clock::WallClock;

/// Why the node could not start; nothing is left running.
#[derive(Debug, Error)]
pub enum ServeError {
    /// A core in `node.cores` does not exist or the thread could not be pinned to it.
    #[error("node.cores: cannot pin shard {shard} to core {core}: {reason}")]
    Pin {
        /// The shard.
        shard: usize,
        /// The core.
        core: usize,
        /// Why.
        reason: String,
    },
    /// A kernel socket could not be opened.
    #[error("kernel backend: shard {shard} cannot bind {addr}: {source}")]
    Bind {
        /// The shard.
        shard: usize,
        /// The address.
        addr: SocketAddrV4,
        /// The OS error.
        source: std::io::Error,
    },
    /// DPDK could not start (EAL, port, pool or queue).
    #[error("dpdk backend: {0}")]
    Dpdk(String),
    /// The storage could not be opened or recovered.
    #[error("storage: {0}")]
    Storage(String),
    /// The data directory is locked by another process, or does not hold what the config says.
    #[error(transparent)]
    Store(#[from] storage::StoreError),
    /// The UDP address is already served by another process (possibly another Vigil, which would
    /// share the clients through `SO_REUSEPORT`).
    #[error(
        "net.port: udp {addr} is already in use by another process (another Vigil?): {error}; stop it \
         or choose another port"
    )]
    PortInUse {
        /// The address.
        addr: SocketAddrV4,
        /// What bind(2) said.
        error: std::io::Error,
    },
    /// The TCP listeners or their acceptor could not start.
    #[error("tcp: {0}")]
    Tcp(String),
    /// The cluster this config describes cannot be served by this build.
    #[error("{0}")]
    Cluster(String),
    /// Access control could not be set up (the principals, the cookie secret); nothing was created.
    #[error("auth: {0}")]
    Auth(String),
    /// The metrics endpoint could not be set up (its port, its thread); nothing was created.
    #[error("{0}")]
    Metrics(String),
    /// A shard thread could not be spawned or died.
    #[error("shard {shard}: {reason}")]
    Shard {
        /// The shard.
        shard: usize,
        /// Why.
        reason: String,
    },
}

/// Which backend ended up serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActiveBackend {
    /// Kernel UDP sockets.
    Kernel,
    /// DPDK.
    Dpdk,
    /// Kernel sockets because DPDK could not start.
    KernelFallback,
}

/// What a node counted, for the shutdown report.
#[derive(Debug)]
pub struct ServeReport {
    /// The backend that served.
    pub backend: ActiveBackend,
    /// Each shard's counters.
    pub shards: Vec<ShardReport>,
    /// Calls per registered opcode, summed over shards: (opcode, name, calls).
    pub opcode_calls: Vec<(u8, &'static str, u64)>,
    /// Port counters, DPDK only.
    pub port_stats: Option<String>,
    /// One line per partition: its Raft, log and KV counters.
    pub partitions: Vec<String>,
}

/// Called once every shard is ready, with a line describing what is being served.
pub type ReadyHook<'a> = &'a mut dyn FnMut(&str);

/// Runs the node until `stop` is set; returns what it counted. `log`, when given, lets the admin
/// API change the process's log filter while it runs.
pub fn serve(
    config: &Config,
    stop: Arc<AtomicBool>,
    ready: ReadyHook<'_>,
    log: Option<Arc<dyn crate::metrics::admin::LogControl>>,
) -> Result<ServeReport, ServeError> {
    check_cores(config)?;
    if let Some(why) = cluster_refusal(config) {
        return Err(ServeError::Cluster(why));
    }
    let (auth, clients) = node_auth(config)?;
    if config.cluster.replicated() {
        tracing::info!(
            target: "vigil",
            "node {} of cluster {:016x}, voters {:?}: partitions elect leaders over the data plane",
            config.cluster.node_id,
            cluster::cluster_id(config),
            config.cluster.voters()
        );
    }
    // Before the data directory is touched: a start refused for its ports creates no store.
    let started = std::time::SystemTime::now();
    // The shards publish their counters for the metrics endpoint and the web port's JSON API.
    let board = publishes(config).then(|| crate::metrics::StatsBoard::new(config.node.shards));
    let port_source = metrics_http::PortSource::default();
    let metrics = match &board {
        Some(b) => metrics_http::prepare(config, b.clone(), port_source.clone())?,
        None => None,
    };
    let mut kernel_tcp = None;
    if config.net.backend == Backend::Kernel {
        let addr = SocketAddrV4::new(config.kernel.bind_ip, config.net.port);
        probe_port(addr)?;
        kernel_tcp = tcp::prepare(config, Some(addr), &auth.keys)?;
    }
    // Held until this function returns, after every shard has been joined.
    let (_lock, log_source) = log_source::prepare(config)?;
    let started_ns = wall_clock::unix_ns(started);
    let board = board.map(|board| Publish {
        view: Arc::new(
            crate::metrics::api::OpsView::new(board, config, started_ns).with_log(log).with_clients(clients),
        ),
        every_ns: config.metrics.publish_ms * 1_000_000,
        port: port_source,
    });
    // The dashboard is rendered whenever the web port serves it.
    let dashboard = match &board {
        Some(b) if web_port_on(config) => {
            Some(dashboard_thread::start(config, b.view.clone(), stop.clone(), started)?)
        }
        _ => None,
    };
    let metrics_line =
        metrics.as_ref().map_or(String::new(), |m| format!(" and metrics {:?} (/metrics)", m.addrs()));
    let metrics = metrics.map(|m| m.start(stop.clone(), started)).transpose()?;
    let mut on_ready = |line: &str| {
        if let Some(m) = &metrics {
            m.mark_ready();
        }
        ready(&format!("{line}{metrics_line}"));
    };
    let shared = NodeShared { board, auth, log: log_source };
    let served = serve_backend(config, stop.clone(), &mut on_ready, kernel_tcp, shared);
    stop.store(true, Ordering::Relaxed);
    if let Some(m) = metrics {
        m.finish();
    }
    if let Some(d) = dashboard {
        let _ = d.join();
    }
    served
}

/// Whether the shards publish their counters: for the metrics endpoint, or for the web port's
/// JSON API.
fn publishes(config: &Config) -> bool {
    config.metrics.enabled() || web_port_on(config)
}

/// Whether the web port (the candle page, the dashboard, the JSON and admin API) is served.
fn web_port_on(config: &Config) -> bool {
    config.tcp.enabled && !config.tcp.web_listen.is_empty()
}

/// The JSON API's view, whose board the shards publish their counters to (`metrics`), and how
/// often.
#[derive(Clone)]
pub(super) struct Publish {
    pub(super) view: Arc<crate::metrics::api::OpsView>,
    pub(super) every_ns: u64,
    /// Where the DPDK backend registers its port's counters for the scrapes.
    #[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
    pub(super) port: metrics_http::PortSource,
}

/// What every shard of the node shares, whichever packet backend serves: the counters' board, the
/// principals, and where the partitions' logs are.
pub(super) struct NodeShared {
    pub(super) board: Option<Publish>,
    pub(super) auth: crate::auth::NodeAuth,
    pub(super) log: log_source::LogSource,
}

impl NodeShared {
    /// Attaches the log's device once the packet path settled the EAL (`LogSource::attach`).
    fn attach_log(self, config: &Config, eal_running: bool) -> Result<Self, ServeError> {
        Ok(Self { log: self.log.attach(config, eal_running)?, ..self })
    }
}

/// Serves on the configured backend (falling back to the kernel's sockets where allowed).
fn serve_backend(
    config: &Config,
    stop: Arc<AtomicBool>,
    ready: ReadyHook<'_>,
    kernel_tcp: Option<tcp::TcpServing>,
    shared: NodeShared,
) -> Result<ServeReport, ServeError> {
    match config.net.backend {
        Backend::Kernel => {
            let shared = shared.attach_log(config, false)?;
            serve_kernel(config, stop, ready, ActiveBackend::Kernel, kernel_tcp, shared)
        }
        Backend::Dpdk => {
            #[cfg(feature = "dpdk")]
            let started = dpdk_backend::start(config);
            #[cfg(not(feature = "dpdk"))]
            let started: Result<std::convert::Infallible, ServeError> = Err(ServeError::Dpdk(
                "this build has no DPDK support (built without the `dpdk` feature)".into(),
            ));
            match started {
                #[cfg(feature = "dpdk")]
                Ok(node) => {
                    // SPDK joins the EAL the packet path started.
                    dpdk_backend::serve(config, node, stop, ready, shared.attach_log(config, true)?)
                }
                #[cfg(not(feature = "dpdk"))]
                Ok(never) => match never {},
                Err(e) if config.net.fallback == Fallback::Kernel => {
                    tracing::warn!(target: "vigil", "DPDK could not start: {e}");
                    tracing::warn!(
                        target: "vigil",
                        "falling back to kernel UDP sockets on {}:{} (net.fallback = \"kernel\"); \
                         run as root with DPDK installed for the poll-mode data path",
                        config.kernel.bind_ip, config.net.port
                    );
                    let addr = SocketAddrV4::new(config.kernel.bind_ip, config.net.port);
                    let tcp = tcp::prepare(config, Some(addr), &shared.auth.keys)?;
                    let shared = shared.attach_log(config, false)?;
                    serve_kernel(config, stop, ready, ActiveBackend::KernelFallback, tcp, shared)
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// Why this build cannot serve the config's cluster, if it cannot (refused before anything is
/// created): a replicated node must be one of the nodes it lists, at the address it serves.
pub fn cluster_refusal(config: &Config) -> Option<String> {
    if !config.cluster.replicated() {
        return None;
    }
    let own = config.cluster.address_of(config.cluster.node_id)?;
    // Every address the node may serve on: the DPDK port's, and the kernel's where the node runs
    // on sockets or falls back to them.
    let mut serves = Vec::new();
    if let (Backend::Dpdk, Some(d)) = (&config.net.backend, &config.dpdk) {
        serves.push((d.ip, "dpdk.ip, net.port"));
    }
    if config.net.backend == Backend::Kernel || config.net.fallback == Fallback::Kernel {
        serves.push((config.kernel.bind_ip, "kernel.bind_ip, net.port"));
    }
    let (ip, keys) = serves
        .into_iter()
        .find(|(ip, _)| own.port() != config.net.port || (own.ip() != ip && !ip.is_unspecified()))?;
    Some(format!(
        "cluster.nodes: this node ({}) is listed at {own}, but it serves udp {ip}:{} ({keys}); \
         its peers would send its Raft messages where nobody listens",
        config.cluster.node_id, config.net.port
    ))
}

/// The node's access control (its cookie secret drawn from the OS's random source), with the
/// admin API's changes to `[auth]` applied, and the admin API's hold on them.
fn node_auth(
    config: &Config,
) -> Result<(crate::auth::NodeAuth, Arc<dyn crate::auth::admin::ClientControl>), ServeError> {
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret)
        .map_err(|e| ServeError::Auth(format!("no random cookie secret: {e}")))?;
    let auth = crate::auth::NodeAuth::new(&config.auth, secret).map_err(ServeError::Auth)?;
    let path = auth_store::changes_path(config);
    let changes = auth_store::load(path.as_deref()).map_err(ServeError::Auth)?;
    let table = changes
        .apply((**auth.keys.load()).clone())
        .map_err(|e| ServeError::Auth(format!("{}: {e}", crate::auth::admin::CHANGES_FILE)))?;
    auth.keys.store(Arc::new(table));
    let store = auth_store::ClientStore::new(auth.keys.clone(), path, changes);
    Ok((auth, store))
}

/// Refuses cores the machine does not have, naming the key.
fn check_cores(config: &Config) -> Result<(), ServeError> {
    if config.node.cores.is_empty() {
        return Ok(());
    }
    let available = core_affinity::get_core_ids().unwrap_or_default();
    for (shard, &core) in config.node.cores.iter().enumerate() {
        if !available.iter().any(|c| c.id == core) {
            let ids: Vec<usize> = available.iter().map(|c| c.id).collect();
            return Err(ServeError::Pin { shard, core, reason: format!("this machine's cores are {ids:?}") });
        }
    }
    Ok(())
}

/// Pins the calling shard thread to `core` (none: left to the scheduler).
fn pin(core: Option<usize>, shard: usize) -> Result<(), ServeError> {
    let Some(core) = core else { return Ok(()) };
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        Err(ServeError::Pin { shard, core, reason: "sched_setaffinity refused".into() })
    }
}

/// A shard's engine with the stateless subsystems registered (PING, ECHO).
pub fn build_engine(config: &Config) -> Engine {
    build_engine_with(config, |_| Ok(()))
}

/// A shard's engine with the stateless subsystems and those `more` registers.
fn build_engine_with(
    config: &Config,
    more: impl FnOnce(&mut Dispatcher) -> Result<(), crate::dispatch::DispatchError>,
) -> Engine {
    let mut dispatcher = Dispatcher::new();
    ops::register_all(&mut dispatcher).expect("built-in subsystems register disjoint opcodes");
    more(&mut dispatcher).expect("built-in subsystems register disjoint opcodes");
    Engine::new(dispatcher, EngineLimits { requests_per_datagram_max: config.net.requests_per_datagram_max })
}

/// The cross-shard fabric: one router per shard, each taken once by its shard's thread; none
/// with a single shard.
type RouterSlots = Arc<Vec<Mutex<Option<Router>>>>;

fn build_routers(config: &Config) -> Result<RouterSlots, ServeError> {
    let shards = config.node.shards;
    if shards == 1 {
        return Ok(Arc::new(vec![Mutex::new(None)]));
    }
    let in_flight_max = 1024;
    let inbox = InboxConfig {
        shards,
        partitions: config.storage.partitions(shards),
        inbox_capacity: 4096,
        in_flight_max,
        pool_slots: shards * in_flight_max * 2,
        slot_bytes: (config.net.datagram_bytes_max + 64).next_power_of_two(),
    };
    let routers =
        crate::inbox::build(&inbox).map_err(|e| ServeError::Storage(format!("cross-shard inboxes: {e}")))?;
    Ok(Arc::new(routers.into_iter().map(|r| Mutex::new(Some(r))).collect()))
}

/// The partition settings every partition of this node runs with. A durable log is never
/// formatted by a start (a blank one is refused); a memory device is blank at every start.
pub fn partition_config(config: &Config) -> PartitionConfig {
    let format_if_blank = config.storage.backend == StorageBackend::Memory;
    PartitionConfig {
        ual: crate::log::UalConfig { format_if_blank, ..config.storage.ual() },
        raft: RaftGroupConfig {
            proposals_pending_max: config.storage.writes_waiting_max,
            tick_interval_ns: config.cluster.tick_ms * 1_000_000,
            ..RaftGroupConfig::default()
        },
        kv: config.kv.limits(),
        projections: projections(config),
        snapshot_every_entries: config.storage.snapshot_every_entries,
        node_id: config.cluster.node_id,
        voters: config.cluster.voters(),
        batch: config.storage.batch(),
        inflight_bytes_max: config.storage.inflight_bytes_max(),
        follower_read_staleness_ns: config.cluster.follower_read_staleness_ms * 1_000_000,
        quiesce_idle: config.cluster.quiesce_idle,
    }
}

/// The projections every partition runs besides KV: the candle store unless `[candle]` turns it
/// off.
pub(crate) fn projections(config: &Config) -> crate::projection::ProjectionSet {
    let set = crate::projection::ProjectionSet::default();
    if !config.candle.enabled {
        return set;
    }
    let limits = config.candle.limits();
    set.with(std::sync::Arc::new(move || Box::new(crate::candle::CandleProjection::new(limits))))
}

/// Spawns `config.node.shards` threads running `body(shard_id, ready)`, waits until each is ready,
/// calls `ready_hook`, then waits for `stop` and joins them.
fn run_shards<F>(
    config: &Config,
    stop: &Arc<AtomicBool>,
    ready_line: &str,
    ready_hook: ReadyHook<'_>,
    body: F,
) -> Result<Vec<ShardResult>, ServeError>
where
    F: Fn(usize, &Starting) -> Option<ShardResult> + Send + Sync + Clone + 'static,
{
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    let starting = Arc::new(Starting::new(config.node.shards, tx));
    let mut handles: Vec<JoinHandle<Option<ShardResult>>> = Vec::with_capacity(config.node.shards);
    for id in 0..config.node.shards {
        let (gate, body) = (Arc::clone(&starting), body.clone());
        let core = config.node.cores.get(id).copied();
        // Every shard thread is pinned to its core (if the config names one) before its body runs.
        let spawned = std::thread::Builder::new().name(format!("vigil-shard-{id}")).spawn(move || {
            if let Err(e) = pin(core, id) {
                gate.refuse(false, e);
                return None;
            }
            body(id, &gate)
        });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                // The shards already started wait at the gate: release them, then stop them.
                (id..config.node.shards).for_each(|_| starting.abandon());
                stop.store(true, Ordering::Relaxed);
                handles.into_iter().for_each(|h| drop(h.join()));
                return Err(ServeError::Shard { shard: id, reason: format!("cannot spawn its thread: {e}") });
            }
        }
    }
    drop(starting);
    let mut first_error = None;
    for _ in 0..config.node.shards {
        match rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error
                    .get_or_insert(ServeError::Shard { shard: 0, reason: "a shard died starting".into() });
                break;
            }
        }
    }
    if first_error.is_none() {
        ready_hook(&format!("{ready_line} (serving {} ms after start)", started.elapsed().as_millis()));
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::with_capacity(handles.len());
    for (id, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Some(r)) => results.push(r),
            Ok(None) => {}
            Err(_) => {
                first_error.get_or_insert(ServeError::Shard { shard: id, reason: "panicked".into() });
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(results),
    }
}

fn serve_kernel(
    config: &Config,
    stop: Arc<AtomicBool>,
    ready: ReadyHook<'_>,
    backend: ActiveBackend,
    tcp: Option<tcp::TcpServing>,
    shared: NodeShared,
) -> Result<ServeReport, ServeError> {
    let NodeShared { board, auth, log } = shared;
    let mut tcp = tcp;
    if let (Some(t), Some(b)) = (tcp.as_mut(), &board) {
        t.set_ops(Arc::clone(&b.view));
    }
    let addr = SocketAddrV4::new(config.kernel.bind_ip, config.net.port);
    probe_port(addr)?;
    let io_config = KernelUdpConfig {
        bind: addr,
        reuse_port: true,
        burst_size_max: config.net.burst_size_max,
        datagram_bytes_max: config.net.datagram_bytes_max,
        pool_buffers: config.kernel.pool_buffers,
        idle_wait: (config.kernel.idle_wait_us > 0)
            .then(|| Duration::from_micros(config.kernel.idle_wait_us)),
        recv_buffer_bytes: (config.kernel.recv_buffer_bytes > 0).then_some(config.kernel.recv_buffer_bytes),
        send_buffer_bytes: (config.kernel.send_buffer_bytes > 0).then_some(config.kernel.send_buffer_bytes),
    };
    let tcp_line = tcp.as_ref().map_or(String::new(), |t| {
        let web = match t.web_addrs.is_empty() {
            true => String::new(),
            false => format!(" and web {:?} (the dashboard at /, the candle page at /candles)", t.web_addrs),
        };
        format!(" and tcp {:?} (RESP, HTTP, WebSocket, binary){web}", t.addrs)
    });
    let line = format!(
        "backend={} shards={} listening on udp {addr}{tcp_line} (kernel sockets)",
        if backend == ActiveBackend::KernelFallback { "kernel-fallback" } else { "kernel" },
        config.node.shards
    );
    let shard_config = Arc::new(config.clone());
    let stop_for_shards = stop.clone();
    let routers = build_routers(config)?;
    let node_cluster = cluster::NodeCluster::new(config);
    let tcp = tcp.map(|t| t.start(config, stop.clone())).transpose()?;
    let streams = tcp.as_ref().map(tcp::TcpRunning::shards);
    let results = run_shards(config, &stop, &line, ready, move |id, ready| {
        let config = &shard_config;
        let router = routers[id].lock().expect("router slot").take();
        let conns = streams.as_ref().and_then(|s| s.take(id));
        match KernelUdpIo::bind(&io_config) {
            Ok(io) => {
                let (cluster, board, auth, log) =
                    (node_cluster.clone(), board.clone(), auth.clone(), log.clone());
                run_shard(
                    config,
                    ShardParts {
                        id,
                        io,
                        router,
                        conns,
                        stop: &stop_for_shards,
                        ready,
                        cluster,
                        board,
                        auth,
                        log,
                    },
                )
            }
            Err(source) => {
                ready.refuse(false, ServeError::Bind { shard: id, addr, source });
                None
            }
        }
    });
    stop.store(true, Ordering::Relaxed);
    let acceptor_line = tcp.map(tcp::TcpRunning::finish);
    let mut report = report(backend, results?, None);
    report.partitions.extend(acceptor_line);
    Ok(report)
}

/// Refuses an address another process already serves. The shards bind with `SO_REUSEPORT`, which
/// would silently join another Vigil's group of sockets (the kernel would then split the clients
/// between two stores); a plain bind (no `SO_REUSEPORT`) fails with `EADDRINUSE` on any address in
/// use. The probe is closed before the shards bind: a process that binds the port in between (a
/// window of microseconds at start-up) is not caught.
fn probe_port(addr: SocketAddrV4) -> Result<(), ServeError> {
    match std::net::UdpSocket::bind(addr) {
        Ok(probe) => {
            drop(probe);
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
            Err(ServeError::PortInUse { addr, error })
        }
        // Other errors (an address not on this host...) are reported by the shards' own binds.
        Err(_) => Ok(()),
    }
}

fn report(backend: ActiveBackend, results: Vec<ShardResult>, port_stats: Option<String>) -> ServeReport {
    let mut opcode_calls: Vec<(u8, &'static str, u64)> = Vec::new();
    let mut shards = Vec::with_capacity(results.len());
    let mut partitions = Vec::new();
    for (shard, calls, lines) in results {
        shards.push(shard);
        partitions.extend(lines);
        for (op, name, n) in calls {
            match opcode_calls.iter_mut().find(|(o, _, _)| *o == op) {
                Some(entry) => entry.2 += n,
                None => opcode_calls.push((op, name, n)),
            }
        }
    }
    ServeReport { backend, shards, opcode_calls, port_stats, partitions }
}

impl std::fmt::Display for ServeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "vigil: final counters (backend {:?})", self.backend)?;
        for s in &self.shards {
            let (c, e, io) = (&s.shard_counters, &s.engine, &s.io);
            writeln!(
                f,
                "  shard {}: polls {} rx {} tx {} | requests {} ok {} errors {} later {} late-answers {} late-datagrams {} | dropped: short {} bad-magic {} response {} \
                 no-buffer {} queue-full {} unanswered {} | version-mismatch {} too-many {} framing {} | peer rx {} tx {} \
                 tx-no-buffer {} | lease-lapsed {}",
                s.shard,
                c.polls,
                c.rx_datagrams,
                c.tx_datagrams,
                e.requests,
                e.answers_ok,
                e.answers_error,
                e.answers_later,
                c.late_answers,
                c.late_datagrams,
                e.dropped_short,
                e.dropped_bad_magic,
                e.dropped_response,
                c.tx_no_buffer,
                c.tx_queue_full,
                e.unanswered_no_room,
                e.version_mismatch,
                e.too_many_requests,
                e.framing_errors,
                c.rx_peer_datagrams,
                c.tx_peer_datagrams,
                c.tx_peer_no_buffer,
                c.tx_lease_lapsed
            )?;
            writeln!(f, "  shard {} io: {io}", s.shard)?;
        }
        for (op, name, calls) in &self.opcode_calls {
            writeln!(f, "  opcode {op:#04x} {name}: {calls} calls")?;
        }
        for line in &self.partitions {
            writeln!(f, "  {line}")?;
        }
        if let Some(p) = &self.port_stats {
            writeln!(f, "  port: {p}")?;
        }
        Ok(())
    }
}

#[cfg(feature = "dpdk")]
mod dpdk_backend;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// A real node on kernel sockets: answers a PING over loopback, then stops on the flag.
    #[test]
    fn kernel_node_answers_and_stops() {
        let text = crate::config::DEV_TOML
            .replace("port = 9000", "port = 39517")
            .replace("backend = \"uring\"", "backend = \"memory\"");
        let config = Config::parse(&text).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let node_stop = stop.clone();
        let node = std::thread::spawn(move || {
            let mut hook = |line: &str| ready_tx.send(line.to_string()).unwrap();
            serve(&config, node_stop, &mut hook, None)
        });
        let line = ready_rx.recv_timeout(Duration::from_secs(10)).expect("node ready");
        assert!(line.contains("backend=kernel"), "{line}");
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let mut w = crate::wire::DatagramWriter::request(&mut buf, 1).unwrap();
        w.push(crate::wire::opcode::PING, 0, 99, b"").unwrap();
        let n = w.finish();
        client.send_to(&buf[..n], "127.0.0.1:39517").unwrap();
        let mut resp = [0u8; 1500];
        let got = client.recv(&mut resp).unwrap();
        let h = crate::wire::decode_header(&resp[..got]).unwrap();
        let f = crate::wire::Frames::new(&resp[..got], h.count).next().unwrap().unwrap();
        assert_eq!((f.request_id, f.status), (99, 0));
        stop.store(true, Ordering::Relaxed);
        let report = node.join().unwrap().unwrap();
        assert_eq!(report.shards[0].engine.requests, 1);
        assert!(report.to_string().contains("ping: 1 calls"));
    }
}

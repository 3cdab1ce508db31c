//! Start-up and shutdown of a node: turns a validated `Config` into running shards.
//!
//! The main thread builds the packet backend (DPDK: EAL, one mempool and one queue pair per shard;
//! kernel: nothing shared, each shard binds its own SO_REUSEPORT socket), spawns one pinned thread
//! per shard, waits until every shard is ready, then sleeps until the stop flag is set (by
//! SIGINT/SIGTERM in the binary). It then joins the shards and returns what each one counted.
//!
//! Invariants: DPDK objects outlive the shards that use them (the port and pools are dropped only
//! after every shard thread has been joined); a shard that fails to start stops the whole node with
//! that shard's error; when DPDK cannot start and `net.fallback = "kernel"`, the reason is reported
//! before the kernel backend takes over, never silently.

use crate::config::{Backend, Config, DurableMode, Fallback, StorageBackend};
use crate::dispatch::{Dispatcher, Subsystem};
use crate::engine::{Engine, EngineLimits};
use crate::inbox::{InboxConfig, Placement, Router};
use crate::ops;
use crate::ops::kv::{Kv, KvService, KvShard};
use crate::partition::snapfile::SnapshotFile;
use crate::partition::{Partition, PartitionConfig};
use crate::raft::RaftGroupConfig;
use crate::shard::{Shard, ShardReport, ShardService};
use std::cell::RefCell;
use std::net::SocketAddrV4;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;
use vigil_pmd::block::memory::MemoryBlockIo;
use vigil_pmd::block::uring::{UringBlockIo, UringConfig};
use vigil_pmd::block::BlockIo;
use vigil_pmd::kernel::{KernelUdpConfig, KernelUdpIo};
use vigil_pmd::{Clock, MonotonicClock, PacketIo};

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

/// Runs the node until `stop` is set; returns what it counted.
pub fn serve(
    config: &Config,
    stop: Arc<AtomicBool>,
    ready: ReadyHook<'_>,
) -> Result<ServeReport, ServeError> {
    check_cores(config)?;
    prepare_storage(config)?;
    match config.net.backend {
        Backend::Kernel => serve_kernel(config, stop, ready, ActiveBackend::Kernel),
        Backend::Dpdk => {
            #[cfg(feature = "dpdk")]
            let started = dpdk_backend::start(config);
            #[cfg(not(feature = "dpdk"))]
            let started: Result<std::convert::Infallible, ServeError> = Err(ServeError::Dpdk(
                "this build has no DPDK support (built without the `dpdk` feature)".into(),
            ));
            match started {
                #[cfg(feature = "dpdk")]
                Ok(node) => dpdk_backend::serve(config, node, stop, ready),
                #[cfg(not(feature = "dpdk"))]
                Ok(never) => match never {},
                Err(e) if config.net.fallback == Fallback::Kernel => {
                    eprintln!("vigil: DPDK could not start: {e}");
                    eprintln!(
                        "vigil: falling back to kernel UDP sockets on {}:{} (net.fallback = \"kernel\"); \
                         run as root with DPDK installed for the poll-mode data path",
                        config.kernel.bind_ip, config.net.port
                    );
                    serve_kernel(config, stop, ready, ActiveBackend::KernelFallback)
                }
                Err(e) => Err(e),
            }
        }
    }
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

fn pin(config: &Config, shard: usize) -> Result<(), ServeError> {
    let Some(&core) = config.node.cores.get(shard) else { return Ok(()) };
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

/// Creates the storage directory; refuses a config whose storage cannot work before any thread
/// starts.
fn prepare_storage(config: &Config) -> Result<(), ServeError> {
    let Some(dir) = &config.storage.dir else { return Ok(()) };
    if config.storage.backend != StorageBackend::Uring {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| ServeError::Storage(format!("storage.dir {}: cannot create it: {e}", dir.display())))
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

/// The partition settings every partition of this node runs with.
fn partition_config(config: &Config) -> PartitionConfig {
    PartitionConfig {
        ual: config.storage.ual(),
        raft: RaftGroupConfig {
            proposals_pending_max: config.storage.writes_waiting_max,
            ..RaftGroupConfig::default()
        },
        kv: config.kv.limits(),
        snapshot_every_entries: config.storage.snapshot_every_entries,
        node_id: 1,
        voters: vec![1],
        snapshot_in_background: true,
    }
}

/// What a shard thread returns.
type ShardResult = (ShardReport, Vec<(u8, &'static str, u64)>, Vec<String>);

/// What a shard thread brings to its shard: its id, queue, inbox end, and the node's signals.
struct ShardParts<'a, P> {
    id: usize,
    io: P,
    router: Option<Router>,
    stop: &'a AtomicBool,
    ready: &'a mpsc::Sender<Result<usize, ServeError>>,
}

/// Runs one shard on the current thread until `stop`; `ready` hears once it is serving (after its
/// partitions are recovered).
fn run_shard<P: PacketIo>(config: &Config, parts: ShardParts<'_, P>) -> Option<ShardResult> {
    let st = &config.storage;
    match st.backend {
        StorageBackend::Memory => {
            let blocks = st.ual().device_blocks();
            let open = |_| Ok(MemoryBlockIo::new(blocks, st.queue_depth as usize));
            run_shard_on(config, parts, open, None)
        }
        StorageBackend::Uring => {
            let dir = st.dir.clone().expect("validated: uring has a dir");
            let open = |p: u16| {
                UringBlockIo::open(&UringConfig {
                    path: dir.join(format!("partition-{p}.ual")),
                    create_blocks: Some(st.ual().device_blocks()),
                    queue_depth: st.queue_depth,
                    durable_mode: match st.durable_mode {
                        DurableMode::Dsync => vigil_pmd::block::uring::DurableMode::Dsync,
                        DurableMode::Flush => vigil_pmd::block::uring::DurableMode::Flush,
                    },
                })
                .map_err(|e| format!("storage.dir: {e}"))
            };
            run_shard_on(config, parts, open, Some(&dir))
        }
    }
}

/// Opens this shard's partitions on devices from `open_device`, then serves.
fn run_shard_on<P: PacketIo, D: BlockIo + 'static>(
    config: &Config,
    parts: ShardParts<'_, P>,
    open_device: impl Fn(u16) -> Result<D, String>,
    snapshot_dir: Option<&std::path::Path>,
) -> Option<ShardResult> {
    let ShardParts { id, io, router, stop, ready } = parts;
    let shards = config.node.shards;
    let total = config.storage.partitions(shards);
    let pconfig = partition_config(config);
    let mut partitions = Vec::new();
    for p in (id as u32..total).step_by(shards) {
        let p = p as u16;
        let opened = open_device(p).and_then(|dev| {
            let file = snapshot_dir.map(|d| SnapshotFile::new(d, p));
            Partition::open(p, dev, &pconfig, file).map_err(|e| e.to_string())
        });
        match opened {
            Ok((partition, report)) => {
                println!("vigil: partition {p} (shard {id}) recovered: {report}");
                partitions.push(partition);
            }
            Err(e) => {
                let _ = ready.send(Err(ServeError::Storage(format!("partition {p}: {e}"))));
                return None;
            }
        }
    }
    let placement = Placement::new(total, shards).expect("validated partitions");
    let kv =
        Rc::new(RefCell::new(KvShard::new(partitions, placement, router, config.net.datagram_bytes_max)));
    let engine = build_engine_with(config, |d| Kv(Rc::clone(&kv)).register(d));
    let clock = MonotonicClock::new();
    // Ready only once every partition leads and re-applied its log (no request is answered yet).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut service = KvService(Rc::clone(&kv));
    while !kv.borrow().serves_reads() {
        if Instant::now() >= deadline {
            let reason = "partitions did not become leader and catch up within 30 s".to_string();
            let _ = ready.send(Err(ServeError::Storage(reason)));
            return None;
        }
        service.poll(clock.now(), &mut |_| {});
    }
    let limits = crate::shard::ShardLimits::of(&config.net);
    let mut shard = Shard::new(id, io, engine, limits).with_service(Box::new(service));
    let _ = ready.send(Ok(id));
    shard.run(&clock, stop);
    // Writes already proposed get their answers (or fail) before the shard goes.
    let deadline = Instant::now() + Duration::from_secs(2);
    while shard.service_busy() && Instant::now() < deadline {
        shard.poll_once(clock.now());
    }
    let calls = shard.engine().dispatcher().registered().collect();
    let kv = kv.borrow();
    let mut lines: Vec<String> = kv.partitions().iter().map(partition_line).collect();
    let c = kv.counters();
    lines.push(format!(
        "shard {id} kv: forwarded {} forward-refused {} served-for-others {} stale {} busy-unreserved {}",
        c.forwarded, c.forward_refused, c.served_for_others, c.stale, c.busy_unreserved
    ));
    Some((shard.report(), calls, lines))
}

fn partition_line<D: BlockIo>(p: &Partition<D>) -> String {
    let (c, r, u) = (p.counters(), p.raft().counters(), p.raft().store().ual().counters());
    format!(
        "partition {}: keys {} applied {} | proposed {} answered-now {} busy {} snapshots {} snapshot-failures {} | \
         raft term {} commit {} readies {} | log appends {} writes {} write-blocks {} superblock-writes {}",
        p.id(),
        p.kv().len(),
        c.applied,
        c.proposed,
        c.answered_now,
        c.busy,
        c.snapshots,
        c.snapshot_failures,
        p.raft().term(),
        p.raft().commit_index(),
        r.readies,
        u.appends,
        u.writes,
        u.write_blocks,
        u.superblock_writes
    )
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
    F: Fn(usize, &mpsc::Sender<Result<usize, ServeError>>) -> Option<ShardResult>
        + Send
        + Sync
        + Clone
        + 'static,
{
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    let mut handles: Vec<JoinHandle<Option<ShardResult>>> = Vec::with_capacity(config.node.shards);
    for id in 0..config.node.shards {
        let (tx, body) = (tx.clone(), body.clone());
        let handle = std::thread::Builder::new()
            .name(format!("vigil-shard-{id}"))
            .spawn(move || body(id, &tx))
            .map_err(|e| ServeError::Shard { shard: id, reason: format!("cannot spawn its thread: {e}") })?;
        handles.push(handle);
    }
    drop(tx);
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
) -> Result<ServeReport, ServeError> {
    let addr = SocketAddrV4::new(config.kernel.bind_ip, config.net.port);
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
    let line = format!(
        "backend={} shards={} listening on udp {addr} (kernel sockets)",
        if backend == ActiveBackend::KernelFallback { "kernel-fallback" } else { "kernel" },
        config.node.shards
    );
    let shard_config = Arc::new(config.clone());
    let stop_for_shards = stop.clone();
    let routers = build_routers(config)?;
    let results = run_shards(config, &stop, &line, ready, move |id, ready| {
        let config = &shard_config;
        if let Err(e) = pin(config, id) {
            let _ = ready.send(Err(e));
            return None;
        }
        let router = routers[id].lock().expect("router slot").take();
        match KernelUdpIo::bind(&io_config) {
            Ok(io) => run_shard(config, ShardParts { id, io, router, stop: &stop_for_shards, ready }),
            Err(source) => {
                let _ = ready.send(Err(ServeError::Bind { shard: id, addr, source }));
                None
            }
        }
    })?;
    Ok(report(backend, results, None))
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
                "  shard {}: polls {} rx {} tx {} | requests {} ok {} errors {} later {} late-answers {} | dropped: short {} bad-magic {} response {} \
                 no-buffer {} queue-full {} unanswered {} | version-mismatch {} too-many {} framing {}",
                s.shard,
                c.polls,
                c.rx_datagrams,
                c.tx_datagrams,
                e.requests,
                e.answers_ok,
                e.answers_error,
                e.answers_later,
                c.late_answers,
                e.dropped_short,
                e.dropped_bad_magic,
                e.dropped_response,
                c.tx_no_buffer,
                c.tx_queue_full,
                e.unanswered_no_room,
                e.version_mismatch,
                e.too_many_requests,
                e.framing_errors
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
mod dpdk_backend {
    //! The DPDK side of start-up: EAL, pools, port and queues; each shard builds its `DpdkUdpIo`
    //! on its own thread after registering it as an EAL thread (so mempool caches work).

    use super::*;
    use crate::config::MBUF_DATA_ROOM;
    use vigil_pmd::dpdk::{DpdkUdpIo, Eal, EalConfig, Mempool, Port, PortConfig, RxTxQueue};
    use vigil_pmd::net::LocalAddr;

    /// A shard's queue pair and pool, taken once by the shard's thread.
    type QueueSlot = std::sync::Mutex<Option<(RxTxQueue, Arc<Mempool>)>>;

    /// A started DPDK port with its queues, ready for shards.
    pub(super) struct DpdkNode {
        eal: Eal,
        port: Port,
        pools: Vec<Arc<Mempool>>,
        queues: Vec<RxTxQueue>,
        local: LocalAddr,
    }

    fn err(what: &str, e: impl std::fmt::Display) -> ServeError {
        ServeError::Dpdk(format!("{what}: {e}"))
    }

    pub(super) fn start(config: &Config) -> Result<DpdkNode, ServeError> {
        let d = config.dpdk.as_ref().expect("validated: backend dpdk has a [dpdk] table");
        let eal = Eal::init(&EalConfig {
            main_lcore: d.main_lcore,
            no_pci: d.no_pci,
            no_huge: d.no_huge,
            memory_mb: d.memory_mb,
            file_prefix: d.file_prefix.clone(),
            vdevs: d.vdevs.clone(),
            extra_args: d.extra_eal_args.clone(),
            log_level: d.log_level.clone(),
        })
        .map_err(|e| {
            err(
                "EAL init failed (check dpdk.vdevs and dpdk.port; DPDK needs root here, and DPDK installed)",
                e,
            )
        })?;
        let port_id = match d.port.parse::<u16>() {
            Ok(index) => index,
            Err(_) => {
                eal.port_by_name(&d.port).map_err(|e| err(&format!("dpdk.port {:?} not found", d.port), e))?
            }
        };
        let shards = config.node.shards;
        let data_room = (MBUF_DATA_ROOM + usize::from(Mempool::HEADROOM)) as u16;
        let mut pools = Vec::with_capacity(shards);
        for i in 0..shards {
            let pool = Mempool::new(
                &eal,
                &format!("vigil_s{i}"),
                d.mbufs_per_shard,
                d.mbuf_cache,
                data_room,
                eal.socket_id(),
            )
            .map_err(|e| err(&format!("mempool for shard {i} (dpdk.mbufs_per_shard, dpdk.memory_mb)"), e))?;
            pools.push(Arc::new(pool));
        }
        let port_config = PortConfig {
            port_id,
            rx_queues: shards as u16,
            tx_queues: shards as u16,
            rx_ring_size: d.rx_ring_size,
            tx_ring_size: d.tx_ring_size,
            mtu: None,
            rss: d.rss,
            promiscuous: true,
        };
        let port = Port::configure(&eal, &port_config, &pools).map_err(|e| err("port configure", e))?;
        port.start().map_err(|e| err("port start", e))?;
        let mac = port.mac_addr().map_err(|e| err("port MAC address", e))?;
        let mut queues = Vec::with_capacity(shards);
        for q in 0..shards as u16 {
            queues.push(port.queue(q).map_err(|e| err(&format!("queue {q}"), e))?);
        }
        let local = LocalAddr { mac, ip: d.ip, udp_port: config.net.port };
        Ok(DpdkNode { eal, port, pools, queues, local })
    }

    pub(super) fn serve(
        config: &Config,
        node: DpdkNode,
        stop: Arc<AtomicBool>,
        ready: ReadyHook<'_>,
    ) -> Result<ServeReport, ServeError> {
        let DpdkNode { eal, port, pools, queues, local } = node;
        let m = local.mac;
        let line = format!(
            "backend=dpdk shards={} port {} mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} ip {} udp port {} link {}",
            config.node.shards,
            config.dpdk.as_ref().map(|d| d.port.as_str()).unwrap_or("?"),
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5],
            local.ip,
            local.udp_port,
            if port.link_up().unwrap_or(false) { "up" } else { "down (waiting for the peer)" }
        );
        // Each shard takes its own queue and pool; the slots are emptied as threads start.
        let slots: Arc<Vec<QueueSlot>> = Arc::new(
            queues.into_iter().zip(pools.iter().cloned()).map(|qp| std::sync::Mutex::new(Some(qp))).collect(),
        );
        let shard_config = Arc::new(config.clone());
        let stop_for_shards = stop.clone();
        let eal_for_shards = eal.clone();
        let routers = build_routers(config)?;
        let results = run_shards(config, &stop, &line, ready, move |id, ready| {
            let config = &shard_config;
            if let Err(e) = pin(config, id) {
                let _ = ready.send(Err(e));
                return None;
            }
            let _lcore = match eal_for_shards.register_current_thread() {
                Ok(guard) => guard,
                Err(e) => {
                    let _ = ready.send(Err(err(&format!("shard {id}: rte_thread_register"), e)));
                    return None;
                }
            };
            let (queue, pool) =
                slots[id].lock().expect("slot lock").take().expect("each shard takes its queue once");
            let mut io = DpdkUdpIo::new(queue, pool, local, config.net.burst_size_max);
            io.set_payload_max(config.net.datagram_bytes_max);
            let router = routers[id].lock().expect("router slot").take();
            run_shard(config, ShardParts { id, io, router, stop: &stop_for_shards, ready })
        })?;
        let stats = port.stats().map(|s| format!("{s:?}")).ok();
        drop(port);
        drop(pools);
        drop(eal);
        Ok(report(ActiveBackend::Dpdk, results, stats))
    }
}

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
            serve(&config, node_stop, &mut hook)
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

//! The DPDK side of start-up: EAL, pools, port and queues; each shard builds its `DpdkUdpIo`
//! on its own thread after registering it as an EAL thread (so mempool caches work).
//!
//! With `dpdk.exception_iface`, a second port, a `net_tap` named so, is the exception path: it
//! takes the data port's MAC, its kernel interface gets `dpdk.ip` and is brought up, each shard
//! gets a queue pair of it (`DpdkUdpIo::set_exception`), and the TCP acceptor listens on
//! `dpdk.ip`:`net.port` through the kernel (docs/CLIENTS.md).

use super::*;
use crate::config::MBUF_DATA_ROOM;
use std::net::SocketAddrV4;
use vigil_pmd::dpdk::{DpdkUdpIo, Eal, EalConfig, Mempool, Port, PortConfig, RxTxQueue};
use vigil_pmd::net::LocalAddr;

/// A shard's queue pair and pool, taken once by the shard's thread.
type QueueSlot = std::sync::Mutex<Option<(RxTxQueue, Arc<Mempool>)>>;

/// The vdev name of the exception path's tap (the `net_tap` driver matches the prefix).
const EXCEPTION_VDEV: &str = "net_tap_vigil_exc";

/// A started DPDK port with its queues, ready for shards.
pub(super) struct DpdkNode {
    eal: Eal,
    port: Port,
    pools: Vec<Arc<Mempool>>,
    queues: Vec<RxTxQueue>,
    local: LocalAddr,
    /// The exception path's port and one queue pair per shard.
    exception: Option<(Port, Vec<RxTxQueue>)>,
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
        vdevs: d
            .vdevs
            .iter()
            .cloned()
            .chain(d.exception_iface.as_ref().map(|iface| format!("{EXCEPTION_VDEV},iface={iface}")))
            .collect(),
        extra_args: d.extra_eal_args.clone(),
        log_level: d.log_level.clone(),
    })
    .map_err(|e| {
        err("EAL init failed (check dpdk.vdevs and dpdk.port; DPDK needs root here, and DPDK installed)", e)
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
    let exception = match &d.exception_iface {
        Some(iface) => Some(start_exception(config, &eal, &pools, iface, mac)?),
        None => None,
    };
    Ok(DpdkNode { eal, port, pools, queues, local, exception })
}

/// Starts the exception path's tap with the data port's MAC, one queue pair per shard, and gives
/// its kernel interface `dpdk.ip` and brings it up.
fn start_exception(
    config: &Config,
    eal: &Eal,
    pools: &[Arc<Mempool>],
    iface: &str,
    mac: [u8; 6],
) -> Result<(Port, Vec<RxTxQueue>), ServeError> {
    let d = config.dpdk.as_ref().expect("validated");
    let shards = config.node.shards as u16;
    let port_id = eal.port_by_name(EXCEPTION_VDEV).map_err(|e| err("dpdk.exception_iface: its tap", e))?;
    let port_config = PortConfig {
        port_id,
        rx_queues: shards,
        tx_queues: shards,
        rx_ring_size: d.rx_ring_size,
        tx_ring_size: d.tx_ring_size,
        mtu: None,
        rss: false,
        promiscuous: true,
    };
    let port = Port::configure(eal, &port_config, pools).map_err(|e| err("exception port configure", e))?;
    port.start().map_err(|e| err("exception port start", e))?;
    port.set_mac_addr(mac).map_err(|e| err("exception port: the data port's MAC", e))?;
    let addr = format!("{}/{}", d.ip, d.exception_prefix_len);
    for args in [vec!["addr", "replace", addr.as_str(), "dev", iface], vec!["link", "set", iface, "up"]] {
        let status = std::process::Command::new("ip").args(&args).status();
        if !matches!(status, Ok(s) if s.success()) {
            return Err(err(
                &format!("dpdk.exception_iface {iface}: `ip {}`", args.join(" ")),
                format!("{status:?}"),
            ));
        }
    }
    let mut queues = Vec::with_capacity(usize::from(shards));
    for q in 0..shards {
        queues.push(port.queue(q).map_err(|e| err(&format!("exception queue {q}"), e))?);
    }
    Ok((port, queues))
}

pub(super) fn serve(
    config: &Config,
    node: DpdkNode,
    stop: Arc<AtomicBool>,
    ready: ReadyHook<'_>,
    shared: super::NodeShared,
) -> Result<ServeReport, ServeError> {
    let super::NodeShared { board, auth, log } = shared;
    let DpdkNode { eal, port, pools, queues, local, exception } = node;
    let d = config.dpdk.as_ref().expect("validated");
    // TCP through the exception path's kernel interface (none without it).
    let tcp_default = exception.as_ref().map(|_| SocketAddrV4::new(d.ip, config.net.port));
    let mut tcp = tcp::prepare(config, tcp_default, &auth.keys)?;
    if let (Some(t), Some(b)) = (tcp.as_mut(), &board) {
        t.set_ops(Arc::clone(&b.view));
    }
    let tcp_line = tcp
        .as_ref()
        .map_or(String::new(), |t| format!(" and tcp {:?} (RESP, binary; exception path)", t.addrs));
    let (exception_port, exception_queues) = match exception {
        Some((p, q)) => (Some(p), q.into_iter().map(Some).collect()),
        None => (None, Vec::new()),
    };
    let exception_slots: Arc<Vec<std::sync::Mutex<Option<RxTxQueue>>>> =
        Arc::new(exception_queues.into_iter().map(std::sync::Mutex::new).collect());
    let m = local.mac;
    let line = format!(
        "backend=dpdk shards={} port {} mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} ip {} udp port {} link {}{tcp_line}",
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
    let node_cluster = cluster::NodeCluster::new(config);
    // The scrapes read the port's counters from the metrics thread until the port goes.
    let port_reader = port.stats_reader();
    if let Some(b) = &board {
        let reader = port_reader.clone();
        if let Ok(mut source) = b.port.lock() {
            *source = Some(Box::new(move || reader.read().map(|(s, x)| port_report(&s, x))));
        }
    }
    let tcp = tcp.map(|t| t.start(config, stop.clone())).transpose()?;
    let streams = tcp.as_ref().map(tcp::TcpRunning::shards);
    let results = run_shards(config, &stop, &line, ready, move |id, ready| {
        let config = &shard_config;
        let _lcore = match eal_for_shards.register_current_thread() {
            Ok(guard) => guard,
            Err(e) => {
                ready.refuse(false, err(&format!("shard {id}: rte_thread_register"), e));
                return None;
            }
        };
        let (queue, pool) =
            slots[id].lock().expect("slot lock").take().expect("each shard takes its queue once");
        let mut io = DpdkUdpIo::new(queue, pool, local, config.net.burst_size_max);
        io.set_payload_max(config.net.datagram_bytes_max);
        if let Some(q) = exception_slots.get(id).and_then(|s| s.lock().expect("slot lock").take()) {
            io.set_exception(q);
        }
        let router = routers[id].lock().expect("router slot").take();
        let conns = streams.as_ref().and_then(|s| s.take(id));
        let (cluster, board) = (node_cluster.clone(), board.clone());
        let (auth, log) = (auth.clone(), log.clone());
        run_shard(
            config,
            ShardParts { id, io, router, conns, stop: &stop_for_shards, ready, cluster, board, auth, log },
        )
    });
    stop.store(true, Ordering::Relaxed);
    let acceptor_line = tcp.map(tcp::TcpRunning::finish);
    let results = results?;
    let stats = port.stats().map(|s| format!("{s:?}")).ok();
    port_reader.close();
    drop(exception_port);
    drop(port);
    drop(pools);
    drop(eal);
    let mut report = report(ActiveBackend::Dpdk, results, stats);
    report.partitions.extend(acceptor_line);
    Ok(report)
}

/// A DPDK port's counters as the metrics encode them.
fn port_report(
    s: &vigil_pmd::dpdk::PortStats,
    xstats: Vec<(String, u64)>,
) -> crate::metrics::prom::PortReport {
    crate::metrics::prom::PortReport {
        rx_packets: s.ipackets,
        tx_packets: s.opackets,
        rx_bytes: s.ibytes,
        tx_bytes: s.obytes,
        dropped: vec![
            ("imissed", s.imissed),
            ("ierrors", s.ierrors),
            ("oerrors", s.oerrors),
            ("rx_nombuf", s.rx_nombuf),
        ],
        xstats,
    }
}

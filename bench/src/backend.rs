//! Setting up the packet backend the command line asks for, and running the generator over it.
//!
//! Kernel: one non-blocking UDP socket (`KernelUdpIo`) bound to an ephemeral port, busy-polled
//! (no idle wait: a sleeping receive would delay the next scheduled send).
//! DPDK: EAL, one pool, one port with one queue pair, link up (bounded wait), the server's MAC by
//! ARP (a request every 100 ms, bounded wait) unless given, then `DpdkUdpIo`.
//!
//! Invariants: every setup step that can fail does so with an error that names what to fix, before
//! the schedule starts; the generator thread is pinned (when asked) before any buffer is allocated,
//! so its memory is local to its core.

use crate::cli::{BackendKind, Cli};
use crate::run::{run, LoadSpec, RunOutcome};
use anyhow::{bail, Context, Result};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::AtomicBool;
use vigil_pmd::kernel::{KernelUdpConfig, KernelUdpIo};
use vigil_pmd::{MonotonicClock, Peer};

/// Runs `spec` on the backend `cli` selects.
pub fn run_selected(cli: &Cli, spec: &LoadSpec, stop: &AtomicBool) -> Result<RunOutcome> {
    match cli.backend {
        BackendKind::Kernel => run_kernel(cli, spec, stop),
        BackendKind::Dpdk => run_dpdk(cli, spec, stop),
    }
}

fn pin(core: Option<usize>) -> Result<()> {
    if let Some(id) = core {
        let known = core_affinity::get_core_ids().unwrap_or_default();
        if !known.iter().any(|c| c.id == id) {
            bail!(
                "--core {id}: not a CPU this process may run on ({:?})",
                known.iter().map(|c| c.id).collect::<Vec<_>>()
            );
        }
        if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
            bail!("--core {id}: could not pin the generator thread");
        }
    }
    Ok(())
}

/// The kernel backend's configuration for `spec`.
pub fn kernel_config(spec: &LoadSpec) -> KernelUdpConfig {
    let burst = spec.burst.max(spec.rx_burst);
    KernelUdpConfig {
        bind: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
        reuse_port: false,
        burst_size_max: burst,
        // Answers are as long as requests (ECHO) or shorter; leave room for a server that pads.
        datagram_bytes_max: (spec.datagram_len() + 64).clamp(2048, 65_535),
        // Received datagrams are dropped within the iteration and transmit buffers live until
        // tx_burst takes them: one burst of each, plus slack for datagrams the queue refused.
        pool_buffers: spec.burst + spec.rx_burst + 64,
        idle_wait: None,
        recv_buffer_bytes: Some(8 << 20),
        send_buffer_bytes: Some(8 << 20),
    }
}

/// Runs `spec` against `server` over a kernel UDP socket.
pub fn run_kernel_to(server: SocketAddrV4, spec: &LoadSpec, stop: &AtomicBool) -> Result<RunOutcome> {
    let mut io = KernelUdpIo::bind(&kernel_config(spec)).context("binding the kernel UDP socket")?;
    let peer = Peer::from_ip_port(*server.ip(), server.port());
    run(&mut io, &MonotonicClock::new(), peer, spec, stop)
}

fn run_kernel(cli: &Cli, spec: &LoadSpec, stop: &AtomicBool) -> Result<RunOutcome> {
    pin(cli.core)?;
    run_kernel_to(cli.server, spec, stop)
}

#[cfg(not(feature = "dpdk"))]
fn run_dpdk(_cli: &Cli, _spec: &LoadSpec, _stop: &AtomicBool) -> Result<RunOutcome> {
    bail!("this vigil-loadgen was built without the `dpdk` feature; rebuild with it or use --backend kernel")
}

#[cfg(feature = "dpdk")]
fn run_dpdk(cli: &Cli, spec: &LoadSpec, stop: &AtomicBool) -> Result<RunOutcome> {
    use crate::cli::seconds;
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use vigil_pmd::dpdk::{DpdkUdpIo, Eal, EalConfig, Mempool, Port, PortConfig, BURST_SIZE_MAX};
    use vigil_pmd::net::{self, LocalAddr, MAC_BROADCAST};

    let link_timeout = seconds("link-timeout", cli.link_timeout)?;
    let arp_timeout = seconds("arp-timeout", cli.arp_timeout)?;
    if spec.datagram_len() > net::UDP_PAYLOAD_MAX_MTU1500 {
        bail!(
            "a datagram of {} bytes does not fit one 1500-byte-MTU frame ({} bytes of UDP payload); \
             lower --batch or --payload-bytes",
            spec.datagram_len(),
            net::UDP_PAYLOAD_MAX_MTU1500
        );
    }
    let eal = Eal::init(&EalConfig {
        main_lcore: cli.core.unwrap_or(0),
        no_pci: true,
        no_huge: cli.no_huge,
        memory_mb: cli.memory_mb,
        file_prefix: cli.file_prefix(),
        vdevs: cli.vdev.clone(),
        // The telemetry thread is of no use to a load generator and competes for the cores.
        extra_args: std::iter::once("--no-telemetry".to_owned()).chain(cli.eal_arg.iter().cloned()).collect(),
        log_level: Some(cli.eal_log_level.clone()),
    })
    .context("initialising the DPDK EAL")?;
    let port_id = match cli.port_name() {
        Some(name) => eal.port_by_name(&name).with_context(|| format!("no DPDK port named {name:?}"))?,
        None if eal.port_count() > 0 => 0,
        None => bail!("no DPDK port: give --vdev (e.g. net_memif0,role=client,socket=/tmp/vigil-memif.sock)"),
    };
    let cache = (cli.mbufs / 4).clamp(0, 256);
    let pool = Arc::new(
        Mempool::new(&eal, "loadgen_pool", cli.mbufs, cache, Mempool::DEFAULT_DATA_ROOM, eal.socket_id())
            .with_context(|| format!("creating a pool of {} mbufs (raise --memory-mb?)", cli.mbufs))?,
    );
    let port = Port::configure(
        &eal,
        &PortConfig {
            port_id,
            rx_queues: 1,
            tx_queues: 1,
            rx_ring_size: 1024,
            tx_ring_size: 1024,
            mtu: None,
            rss: false,
            promiscuous: false,
        },
        std::slice::from_ref(&pool),
    )
    .with_context(|| format!("configuring DPDK port {port_id}"))?;
    bring_up(&port, link_timeout, stop)?;
    let local = LocalAddr { mac: port.mac_addr()?, ip: cli.local_ip, udp_port: cli.local_port };
    let queue = port.queue(0)?;
    let burst = spec.burst.max(spec.rx_burst).min(BURST_SIZE_MAX);
    let mut io = DpdkUdpIo::new(queue, Arc::clone(&pool), local, burst);

    let server_ip = *cli.server.ip();
    let server_mac = match cli.server_mac {
        Some(m) => m.0,
        None if cli.reflector => MAC_BROADCAST,
        None => resolve_mac(&mut io, server_ip, arp_timeout, stop)?,
    };
    eprintln!(
        "vigil-loadgen: dpdk port {port_id} {} {}:{} -> {} {}",
        fmt_mac(local.mac),
        local.ip,
        local.udp_port,
        fmt_mac(server_mac),
        cli.server
    );
    let peer = Peer { mac: server_mac, ip: server_ip, port: cli.server.port() };
    let out = run(&mut io, &MonotonicClock::new(), peer, spec, stop);
    // A memif client must go before its server; dropping the queue, port and pool here (before the
    // caller prints) keeps shutdown order explicit: io (queue), then port, then pool, then EAL.
    drop(io);
    drop(port);
    drop(pool);
    drop(eal);
    return out;

    /// Starts the port and waits for its link, within `timeout` in all. A memif client cannot start
    /// before its server listens on the socket, and one that connected while the server's port was
    /// not yet started may never see the link come up: so a failed start is retried every 250 ms, and
    /// a link still down after 2 s gets a stop and a fresh start (a reconnect). The generator may thus
    /// be started before its server.
    fn bring_up(port: &Port, timeout: Duration, stop: &AtomicBool) -> Result<()> {
        use std::sync::atomic::Ordering;
        let deadline = Instant::now() + timeout;
        let mut last_err = None;
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            match port.start() {
                Ok(()) => {
                    last_err = None;
                    let left = deadline.saturating_duration_since(Instant::now());
                    if port
                        .wait_link_up(left.min(Duration::from_secs(2)))
                        .context("reading the link state")?
                    {
                        return Ok(());
                    }
                    port.stop().context("stopping the DPDK port to reconnect")?;
                }
                Err(e) => {
                    last_err = Some(e);
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
        let why = match last_err {
            Some(e) => format!("the port would not start: {e}"),
            None => "the link stayed down".to_owned(),
        };
        bail!(
            "DPDK port {}: no link after {:.1} s; {why} (for a memif client: is the server side, vigil or \
             testpmd, up and listening on its socket?)",
            port.id(),
            timeout.as_secs_f64()
        )
    }

    /// Asks `ip`'s MAC every 100 ms, polling the queue (which learns ARP replies) in between.
    fn resolve_mac(
        io: &mut DpdkUdpIo,
        ip: Ipv4Addr,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<[u8; 6]> {
        use std::sync::atomic::Ordering;
        use vigil_pmd::{Batch, PacketIo};
        let mut rx = Batch::with_capacity(32);
        let deadline = Instant::now() + timeout;
        let mut asked = 0u32;
        loop {
            if io.send_arp_request(ip) {
                asked += 1;
            }
            let next = Instant::now() + Duration::from_millis(100);
            while Instant::now() < next {
                io.rx_burst(&mut rx);
                // Datagrams before the run starts are nobody's answers.
                rx.clear();
                if let Some(mac) = io.arp_lookup(ip) {
                    return Ok(mac);
                }
                if stop.load(Ordering::Relaxed) {
                    bail!("stopped while resolving {ip} by ARP");
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            if Instant::now() >= deadline {
                bail!(
                    "no ARP reply from {ip} after {:.1} s ({asked} requests sent): \
                     is the server up on this link \
                     with that address? (or give --server-mac)",
                    timeout.as_secs_f64()
                );
            }
        }
    }
}

#[cfg(feature = "dpdk")]
fn fmt_mac(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

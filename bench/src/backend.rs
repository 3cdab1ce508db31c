//! Setting up the packet backend the command line asks for, and running the generator (or the
//! search) over it with one or more generator threads.
//!
//! Kernel: one non-blocking UDP socket (`KernelUdpIo`) per generator thread, each bound to its own
//! ephemeral port, busy-polled (no idle wait: a sleeping receive would delay the next scheduled
//! send). DPDK: EAL, one pool, one port with one queue pair per generator thread, link up (bounded
//! wait), the server's MAC by ARP on queue 0 (a request every 100 ms, bounded wait) unless given,
//! then one `DpdkUdpIo` per thread on its own queue pair (memif: the server must offer as many
//! queues; testpmd `--rxq=N --txq=N`, vigil `node.shards = N`).
//!
//! Before the run, a target that is not loopback, without credentials, is asked for this source's
//! address cookie (`seal::fetch_cookies`, over the run's own backend: the cookie is bound to the
//! source address the node sees), which every datagram then carries.
//!
//! Invariants: every setup step that can fail does so with an error that names what to fix, before
//! the schedule starts; each generator thread is pinned (when asked) before it builds its
//! `PacketIo`, so its buffers are local to its core; the backend is built once per process and
//! reused by every search trial (EAL initialises once per process).

use crate::cli::{BackendKind, Cli};
use crate::multi::with_workers;
use crate::progress::{Printer, Progress};
use crate::run::{LoadSpec, RunOutcome};
use crate::search::{search, SearchResult, SearchSpec};
use anyhow::{Context, Result};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use vigil_pmd::kernel::{KernelUdpConfig, KernelUdpIo};
use vigil_pmd::{MonotonicClock, PacketIo, Peer};

/// What a session produced: the run's outcome (in search mode: the best trial's, else the last
/// trial's) and the search, if one ran.
#[derive(Debug)]
pub struct Finished {
    /// The outcome reported.
    pub out: RunOutcome,
    /// The search's trials and result.
    pub search: Option<SearchResult>,
}

/// How a session runs, beside the spec.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// CPUs to pin the generator threads to (one per thread), or none.
    pub cores: Vec<usize>,
    /// Print the progress line on stderr.
    pub progress: bool,
    /// Search mode.
    pub search: Option<SearchSpec>,
}

/// Runs `spec` (or the search) on the backend `cli` selects.
pub fn run_selected(cli: &Cli, spec: &LoadSpec, opts: &Options, stop: &AtomicBool) -> Result<Finished> {
    match cli.backend {
        BackendKind::Kernel => run_kernel(cli.seed(), spec, opts, stop),
        BackendKind::Dpdk => run_dpdk(cli, spec, opts, stop),
    }
}

/// Runs the session over `threads` generator threads, each building its `PacketIo` with
/// `make_io(i)`.
fn drive<P, G, F>(
    make_io: F,
    peer: Peer,
    spec: &LoadSpec,
    opts: &Options,
    stop: &AtomicBool,
) -> Result<Finished>
where
    P: PacketIo,
    F: Fn(u32) -> Result<(P, G)> + Sync,
{
    let progress = Arc::new(Progress::new(spec.threads as usize));
    let clock = MonotonicClock::new();
    let show = opts.progress;
    with_workers(spec.threads, &opts.cores, make_io, &clock, peer, stop, Some(&progress), |w| {
        let mut run = |s: &LoadSpec| {
            // Zeroed before the printer takes its first reading, so its first rates are this run's.
            progress.reset();
            let printer = show.then(|| Printer::start(Arc::clone(&progress), Duration::from_secs(1)));
            let out = w.run(s);
            if let Some(p) = printer {
                p.finish();
            }
            out
        };
        match &opts.search {
            None => Ok(Finished { out: run(spec)?, search: None }),
            Some(sp) => {
                let on_trial = |t: &crate::search::Trial| {
                    eprintln!(
                        "vigil-loadgen: trial {:>12.0} req/s: achieved {:>12.1}/s, p99 {:>9.1} us, loss {:.5}: {}",
                        t.rate,
                        t.achieved_rps,
                        t.p99_ns as f64 / 1e3,
                        t.loss,
                        if t.pass { "pass" } else { "FAIL" }
                    )
                };
                let (result, out) = search(spec, sp, stop, &mut run, on_trial)?;
                Ok(Finished { out, search: Some(result) })
            }
        }
    })
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

/// Runs `spec` (or the search in `opts`) against `server` over kernel UDP sockets, one per
/// generator thread.
pub fn run_kernel(
    server: SocketAddrV4,
    spec: &LoadSpec,
    opts: &Options,
    stop: &AtomicBool,
) -> Result<Finished> {
    spec.validate()?;
    let peer = Peer::from_ip_port(*server.ip(), server.port());
    let mut spec = spec.clone();
    let mut probe = KernelUdpIo::bind(&kernel_config(&spec)).context("binding a kernel UDP socket")?;
    crate::seal::fetch_cookies(&mut probe, peer, &mut spec, stop)?;
    drop(probe);
    let cfg = kernel_config(&spec);
    let make_io = |_| Ok((KernelUdpIo::bind(&cfg).context("binding a kernel UDP socket")?, ()));
    drive(make_io, peer, &spec, opts, stop)
}

/// Runs `spec` against `server` over kernel UDP sockets (`spec.threads` of them), no progress line.
pub fn run_kernel_to(server: SocketAddrV4, spec: &LoadSpec, stop: &AtomicBool) -> Result<RunOutcome> {
    Ok(run_kernel(server, spec, &Options::default(), stop)?.out)
}

#[cfg(not(feature = "dpdk"))]
fn run_dpdk(_cli: &Cli, _spec: &LoadSpec, _opts: &Options, _stop: &AtomicBool) -> Result<Finished> {
    anyhow::bail!(
        "this vigil-loadgen was built without the `dpdk` feature; rebuild with it or use --backend kernel"
    )
}

#[cfg(feature = "dpdk")]
fn run_dpdk(cli: &Cli, spec: &LoadSpec, opts: &Options, stop: &AtomicBool) -> Result<Finished> {
    use crate::cli::seconds;
    use anyhow::bail;
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
    spec.validate()?;
    let queues = u16::try_from(spec.threads).context("--threads: too many DPDK queues")?;
    let eal = Eal::init(&EalConfig {
        main_lcore: opts.cores.first().copied().or(cli.core).unwrap_or(0),
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
            rx_queues: queues,
            tx_queues: queues,
            rx_ring_size: 1024,
            tx_ring_size: 1024,
            mtu: None,
            rss: false,
            promiscuous: false,
        },
        // One pool shared by every receive queue (DPDK pools are multi-producer/multi-consumer).
        &vec![Arc::clone(&pool); usize::from(queues)],
    )
    .with_context(|| {
        format!(
            "configuring DPDK port {port_id} with {queues} queue pair(s) (one per generator thread; \
             does the device support that many?)"
        )
    })?;
    bring_up(&port, link_timeout, stop)?;
    let local = LocalAddr { mac: port.mac_addr()?, ip: cli.local_ip, udp_port: cli.local_port };
    let burst = spec.burst.max(spec.rx_burst).min(BURST_SIZE_MAX);

    let seed = cli.seed();
    let server_ip = *seed.ip();
    let mut spec = spec.clone();
    let server_mac = match cli.server_mac {
        Some(m) => m.0,
        None if cli.reflector => MAC_BROADCAST,
        None => {
            // ARP on queue 0, given back before the generator threads take their queues; the
            // other cluster nodes' MACs too (a node a hint names and no --cluster lists is sent to
            // by address: the queue resolves its MAC by ARP, broadcasting until then).
            let mut io = DpdkUdpIo::new(port.queue(0)?, Arc::clone(&pool), local, burst);
            for node in &mut spec.cluster {
                node.mac = resolve_mac(&mut io, node.ip, arp_timeout, stop)?;
            }
            resolve_mac(&mut io, server_ip, arp_timeout, stop)?
        }
    };
    let peer = Peer { mac: server_mac, ip: server_ip, port: seed.port() };
    {
        // On queue 0 too, given back before the generator threads take their queues.
        let mut io = DpdkUdpIo::new(port.queue(0)?, Arc::clone(&pool), local, burst);
        crate::seal::fetch_cookies(&mut io, peer, &mut spec, stop)?;
    }
    let spec = &spec;
    eprintln!(
        "vigil-loadgen: dpdk port {port_id} ({queues} queue pair{}) {} {}:{} -> {} {}",
        if queues == 1 { "" } else { "s" },
        fmt_mac(local.mac),
        local.ip,
        local.udp_port,
        fmt_mac(server_mac),
        cli.targets()
    );
    let make_io = |i: u32| -> Result<(DpdkUdpIo, vigil_pmd::dpdk::LcoreGuard)> {
        // An lcore id gives this thread a per-lcore mempool cache (else every mbuf alloc and free
        // goes to the pool's shared ring).
        let guard = eal.register_current_thread().context("registering the generator thread with EAL")?;
        let q = u16::try_from(i).expect("queues fit u16");
        let queue = port.queue(q).with_context(|| format!("taking queue pair {q}"))?;
        Ok((DpdkUdpIo::new(queue, Arc::clone(&pool), local, burst), guard))
    };
    let out = drive(make_io, peer, spec, opts, stop);
    // A memif client must go before its server; dropping the port and pool here (before the
    // caller prints) keeps shutdown order explicit: queues (dropped by their threads), then port,
    // then pool, then EAL.
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

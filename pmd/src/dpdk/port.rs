//! Ethdev ports and their queues: configure, start, read link/MAC/stats, and burst mbufs in and out.
//!
//! Invariants: a port is configured by one [`Port`] at a time per process (claimed in a static
//! table); each queue pair is handed out once ([`Port::queue`]) as an [`RxTxQueue`], so no two
//! threads ever poll the same DPDK queue (DPDK queues are not thread-safe); the device is stopped
//! and closed when the `Port` and every `RxTxQueue` of it are gone (they share the port's state
//! through an `Arc`), and the pools its rx queues fill outlive it (held as `Arc<Mempool>`).

use super::eal::Eal;
use super::error::{check, DpdkError};
use super::mbuf::Mbuf;
use super::mempool::Mempool;
use crate::Batch;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest burst handed to one `rte_eth_{rx,tx}_burst` call (the pointer array lives on the stack).
pub const QUEUE_BURST_MAX: usize = 64;

const MAX_PORTS: usize = dpdk_sys::RTE_MAX_ETHPORTS as usize;

/// Which port ids a live `Port` has configured in this process.
static PORT_CLAIMED: [AtomicBool; MAX_PORTS] = [const { AtomicBool::new(false) }; MAX_PORTS];

/// How to configure a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// The ethdev port id (see [`Eal::port_by_name`]).
    pub port_id: u16,
    /// Receive queues (one per shard).
    pub rx_queues: u16,
    /// Transmit queues (one per shard).
    pub tx_queues: u16,
    /// Descriptors per receive ring (the driver may round it).
    pub rx_ring_size: u16,
    /// Descriptors per transmit ring (the driver may round it).
    pub tx_ring_size: u16,
    /// MTU to set, if not the device default (1500).
    pub mtu: Option<u16>,
    /// Spread flows over the receive queues with RSS (IPv4/UDP hash), when there are several and the
    /// device can hash.
    pub rss: bool,
    /// Receive frames for any destination MAC.
    pub promiscuous: bool,
}

/// Port counters from `rte_eth_stats_get`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received.
    pub ipackets: u64,
    /// Frames sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Frames the device dropped because a receive ring was full.
    pub imissed: u64,
    /// Erroneous frames received.
    pub ierrors: u64,
    /// Frames that failed to send.
    pub oerrors: u64,
    /// Receive failures for want of an mbuf (pool empty).
    pub rx_nombuf: u64,
}

struct PortInner {
    port_id: u16,
    rx_queues: u16,
    tx_queues: u16,
    started: AtomicBool,
    queue_taken: Mutex<Vec<bool>>,
    rss_hf: u64,
    // Dropped after the device is closed (field order: Drop::drop runs first, then fields).
    _pools: Vec<Arc<Mempool>>,
    _eal: Eal,
}

impl Drop for PortInner {
    fn drop(&mut self) {
        if self.started.load(Ordering::SeqCst) {
            // SAFETY: the port is configured and started; no RxTxQueue is left (they hold this Arc).
            let rc = unsafe { dpdk_sys::rte_eth_dev_stop(self.port_id) };
            if let Err(e) = check("rte_eth_dev_stop", rc) {
                eprintln!("vigil-pmd: port {}: {e}", self.port_id);
            }
        }
        // SAFETY: the port is stopped and nothing uses it; close releases its queues and mbufs
        // held in its rings back to the pools, which are still alive (dropped after this).
        let rc = unsafe { dpdk_sys::rte_eth_dev_close(self.port_id) };
        if let Err(e) = check("rte_eth_dev_close", rc) {
            eprintln!("vigil-pmd: port {}: {e}", self.port_id);
        }
        PORT_CLAIMED[usize::from(self.port_id)].store(false, Ordering::SeqCst);
    }
}

/// A configured ethdev port. Stopped and closed once it and all its queues are dropped.
pub struct Port {
    inner: Arc<PortInner>,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("port_id", &self.inner.port_id)
            .field("rx_queues", &self.inner.rx_queues)
            .field("tx_queues", &self.inner.tx_queues)
            .field("rss_hf", &self.inner.rss_hf)
            .finish()
    }
}

/// Releases a port claim if configuration fails part way.
struct ClaimGuard(u16, bool);

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if self.1 {
            PORT_CLAIMED[usize::from(self.0)].store(false, Ordering::SeqCst);
        }
    }
}

impl Port {
    /// Configures port `config.port_id` with its queues; `pools` gives one pool per receive queue
    /// (several queues may share one pool). Does not start it: call [`Port::start`].
    ///
    /// RSS (IPv4 + UDP hash) is enabled only when `config.rss` and there are several receive queues,
    /// and only with the hash types the device supports; a device that hashes nothing (most vdevs)
    /// gets a warning and all traffic lands on queue 0.
    pub fn configure(eal: &Eal, config: &PortConfig, pools: &[Arc<Mempool>]) -> Result<Port, DpdkError> {
        let port_id = config.port_id;
        if usize::from(port_id) >= MAX_PORTS {
            return Err(DpdkError::InvalidArgument(format!("port id {port_id} out of range")));
        }
        if config.rx_queues == 0 || config.tx_queues == 0 {
            return Err(DpdkError::InvalidArgument("a port needs at least one rx and one tx queue".into()));
        }
        if pools.len() != usize::from(config.rx_queues) {
            return Err(DpdkError::InvalidArgument(format!(
                "{} pools for {} rx queues (need one per queue)",
                pools.len(),
                config.rx_queues
            )));
        }
        if PORT_CLAIMED[usize::from(port_id)].swap(true, Ordering::SeqCst) {
            return Err(DpdkError::InvalidArgument(format!(
                "port {port_id} is already configured by another Port"
            )));
        }
        let mut claim = ClaimGuard(port_id, true);

        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: info is a valid out pointer; the call fails cleanly for an invalid port id.
        check("rte_eth_dev_info_get", unsafe { dpdk_sys::rte_eth_dev_info_get(port_id, &mut info) })?;
        if config.rx_queues > info.max_rx_queues || config.tx_queues > info.max_tx_queues {
            return Err(DpdkError::InvalidArgument(format!(
                "port {port_id} supports at most {} rx and {} tx queues, {} and {} asked",
                info.max_rx_queues, info.max_tx_queues, config.rx_queues, config.tx_queues
            )));
        }

        let mut conf = dpdk_sys::rte_eth_conf::default();
        let mut rss_hf = 0u64;
        if config.rss && config.rx_queues > 1 {
            let wanted = u64::from(dpdk_sys::VIGIL_RTE_ETH_RSS_IP | dpdk_sys::VIGIL_RTE_ETH_RSS_UDP);
            rss_hf = wanted & info.flow_type_rss_offloads;
            if rss_hf == 0 {
                eprintln!(
                    "vigil-pmd: port {port_id}: device supports no IP/UDP RSS hash; {} rx queues without RSS \
                     (all traffic on queue 0)",
                    config.rx_queues
                );
            } else {
                conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut(); // the driver's default key
                conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            }
        }
        // SAFETY: conf is a valid, fully initialised configuration; the port is not started.
        check("rte_eth_dev_configure", unsafe {
            dpdk_sys::rte_eth_dev_configure(port_id, config.rx_queues, config.tx_queues, &conf)
        })?;

        let mut nb_rxd = config.rx_ring_size;
        let mut nb_txd = config.tx_ring_size;
        // SAFETY: valid out pointers; the port is configured.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut nb_rxd, &mut nb_txd)
        })?;

        if let Some(mtu) = config.mtu {
            // SAFETY: the port is configured and stopped.
            check("rte_eth_dev_set_mtu", unsafe { dpdk_sys::rte_eth_dev_set_mtu(port_id, mtu) })?;
        }

        // SAFETY: plain query.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(port_id) };
        // SOCKET_ID_ANY (-1) is passed through as its unsigned bit pattern, as DPDK expects.
        let socket = socket as u32;
        for (q, pool) in pools.iter().enumerate() {
            let q = u16::try_from(q).expect("queue count is a u16");
            // SAFETY: the port is configured; null rx_conf means the driver's defaults; the pool is
            // a valid pktmbuf pool kept alive by the PortInner that holds the Arc.
            check("rte_eth_rx_queue_setup", unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(port_id, q, nb_rxd, socket, std::ptr::null(), pool.as_ptr())
            })?;
        }
        for q in 0..config.tx_queues {
            // SAFETY: the port is configured; null tx_conf means the driver's defaults.
            check("rte_eth_tx_queue_setup", unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(port_id, q, nb_txd, socket, std::ptr::null())
            })?;
        }
        if config.promiscuous {
            // SAFETY: plain control call on a configured port.
            let rc = unsafe { dpdk_sys::rte_eth_promiscuous_enable(port_id) };
            // Virtual devices without a MAC filter report ENOTSUP: they deliver everything anyway.
            if rc < 0 && rc != -libc::ENOTSUP {
                check("rte_eth_promiscuous_enable", rc)?;
            }
        }

        claim.1 = false;
        let queues = usize::from(config.rx_queues.min(config.tx_queues));
        Ok(Port {
            inner: Arc::new(PortInner {
                port_id,
                rx_queues: config.rx_queues,
                tx_queues: config.tx_queues,
                started: AtomicBool::new(false),
                queue_taken: Mutex::new(vec![false; queues]),
                rss_hf,
                _pools: pools.to_vec(),
                _eal: eal.clone(),
            }),
        })
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.inner.port_id
    }

    /// The RSS hash types in use (0: no RSS).
    pub fn rss_hf(&self) -> u64 {
        self.inner.rss_hf
    }

    /// Starts the device (`rte_eth_dev_start`); its queues can then be polled.
    pub fn start(&self) -> Result<(), DpdkError> {
        // SAFETY: the port is configured with all its queues set up.
        check("rte_eth_dev_start", unsafe { dpdk_sys::rte_eth_dev_start(self.inner.port_id) })?;
        self.inner.started.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Stops the device. Bursts on its queues then return nothing (DPDK 22.11 swaps in dummy burst
    /// functions), but stop the threads polling it first: that swap is not synchronised with them.
    pub fn stop(&self) -> Result<(), DpdkError> {
        // SAFETY: the port is configured; stopping a stopped port is harmless.
        check("rte_eth_dev_stop", unsafe { dpdk_sys::rte_eth_dev_stop(self.inner.port_id) })?;
        self.inner.started.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// The port's Ethernet address.
    pub fn mac_addr(&self) -> Result<[u8; 6], DpdkError> {
        let mut addr = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid out pointer.
        check("rte_eth_macaddr_get", unsafe {
            dpdk_sys::rte_eth_macaddr_get(self.inner.port_id, &mut addr)
        })?;
        Ok(addr.addr_bytes)
    }

    /// Sets the port's Ethernet address (the exception path's tap takes the data port's, so the
    /// kernel behind it answers for the same address).
    pub fn set_mac_addr(&self, mac: [u8; 6]) -> Result<(), DpdkError> {
        let mut addr = dpdk_sys::rte_ether_addr { addr_bytes: mac };
        // SAFETY: valid pointer to an initialized address for the duration of the call.
        check("rte_eth_dev_default_mac_addr_set", unsafe {
            dpdk_sys::rte_eth_dev_default_mac_addr_set(self.inner.port_id, &mut addr)
        })?;
        Ok(())
    }

    /// Whether the link is up now (without waiting).
    pub fn link_up(&self) -> Result<bool, DpdkError> {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: valid out pointer; the nowait variant never blocks.
        check("rte_eth_link_get_nowait", unsafe {
            dpdk_sys::rte_eth_link_get_nowait(self.inner.port_id, &mut link)
        })?;
        Ok(u32::from(link.link_status()) == dpdk_sys::RTE_ETH_LINK_UP)
    }

    /// Polls the link every 10 ms until it is up or `timeout` passes; returns whether it came up.
    pub fn wait_link_up(&self, timeout: Duration) -> Result<bool, DpdkError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.link_up()? {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The port's counters.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        port_stats(self.inner.port_id)
    }

    /// Hands out queue pair `q` (receive queue `q` and transmit queue `q`) for one thread to poll.
    /// Each queue pair can be out once at a time: a second call before the first `RxTxQueue` is
    /// dropped is an error.
    pub fn queue(&self, q: u16) -> Result<RxTxQueue, DpdkError> {
        let mut taken = self.inner.queue_taken.lock().expect("queue table lock poisoned");
        let slot = taken.get_mut(usize::from(q)).ok_or_else(|| {
            DpdkError::InvalidArgument(format!("port {} has no queue pair {q}", self.inner.port_id))
        })?;
        if *slot {
            return Err(DpdkError::InvalidArgument(format!(
                "queue pair {q} of port {} is already in use",
                self.inner.port_id
            )));
        }
        *slot = true;
        Ok(RxTxQueue { port: Arc::clone(&self.inner), queue_id: q })
    }
}

/// A port's counters for another thread (a metrics endpoint) while the shards poll its queues:
/// the port id behind a lock that the port's owner closes (`close`) before the port goes, so no
/// read reaches a port that was stopped or an EAL that was cleaned up.
#[derive(Clone, Debug)]
pub struct PortStatsReader {
    port_id: Arc<Mutex<Option<u16>>>,
}

impl Port {
    /// A reader of this port's counters for another thread; `PortStatsReader::close` it before
    /// the port is dropped.
    pub fn stats_reader(&self) -> PortStatsReader {
        PortStatsReader { port_id: Arc::new(Mutex::new(Some(self.inner.port_id))) }
    }
}

impl PortStatsReader {
    /// The port's basic counters and its extended ones (name, value); `None` once closed or if
    /// the driver refuses.
    pub fn read(&self) -> Option<(PortStats, Vec<(String, u64)>)> {
        let guard = self.port_id.lock().ok()?;
        let port_id = (*guard)?;
        let stats = port_stats(port_id).ok()?;
        Some((stats, port_xstats(port_id).unwrap_or_default()))
    }

    /// No more reads: returns once a read in progress finished.
    pub fn close(&self) {
        if let Ok(mut g) = self.port_id.lock() {
            *g = None;
        }
    }
}

/// The extended counters of `port_id` (`rte_eth_xstats_get_names`, `rte_eth_xstats_get`).
fn port_xstats(port_id: u16) -> Result<Vec<(String, u64)>, DpdkError> {
    // SAFETY: a null array of size 0 asks for the count only.
    let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(port_id, std::ptr::null_mut(), 0) };
    if n <= 0 {
        return Ok(Vec::new());
    }
    let n = n as usize;
    let mut names = vec![dpdk_sys::rte_eth_xstat_name { name: [0; 64] }; n];
    let mut values = vec![dpdk_sys::rte_eth_xstat { id: 0, value: 0 }; n];
    // SAFETY: both arrays hold `n` entries, the size passed.
    let got_names = unsafe { dpdk_sys::rte_eth_xstats_get_names(port_id, names.as_mut_ptr(), n as u32) };
    // SAFETY: as above.
    let got = unsafe { dpdk_sys::rte_eth_xstats_get(port_id, values.as_mut_ptr(), n as u32) };
    if got_names < 0 || got < 0 {
        return Err(DpdkError::InvalidArgument(format!("port {port_id}: xstats unavailable")));
    }
    let count = (got_names.min(got) as usize).min(n);
    Ok(values[..count]
        .iter()
        .filter_map(|v| {
            let name = names.get(v.id as usize)?;
            let bytes: Vec<u8> = name.name.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
            Some((String::from_utf8_lossy(&bytes).into_owned(), v.value))
        })
        .collect())
}

fn port_stats(port_id: u16) -> Result<PortStats, DpdkError> {
    let mut s = dpdk_sys::rte_eth_stats::default();
    // SAFETY: valid out pointer; reading counters is allowed while queues are polled.
    check("rte_eth_stats_get", unsafe { dpdk_sys::rte_eth_stats_get(port_id, &mut s) })?;
    Ok(PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    })
}

/// One receive/transmit queue pair of a port, owned by the one thread that polls it. `Send`, so
/// it can be moved to its shard thread; its `&mut self` bursts keep polling single-threaded.
pub struct RxTxQueue {
    port: Arc<PortInner>,
    queue_id: u16,
}

impl std::fmt::Debug for RxTxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxTxQueue")
            .field("port_id", &self.port.port_id)
            .field("queue_id", &self.queue_id)
            .finish()
    }
}

impl Drop for RxTxQueue {
    fn drop(&mut self) {
        if let Ok(mut taken) = self.port.queue_taken.lock() {
            taken[usize::from(self.queue_id)] = false;
        }
    }
}

impl RxTxQueue {
    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.port.port_id
    }

    /// The queue id.
    pub fn queue_id(&self) -> u16 {
        self.queue_id
    }

    /// The port's counters.
    pub fn port_stats(&self) -> Result<PortStats, DpdkError> {
        port_stats(self.port.port_id)
    }

    /// Receives up to `out.len()` (at most `u16::MAX`) raw mbufs; returns how many were written to
    /// the front of `out`. The caller owns them (wrap each with [`Mbuf::from_raw`] or free it).
    #[inline]
    pub fn rx_burst_raw(&mut self, out: &mut [*mut dpdk_sys::rte_mbuf]) -> usize {
        let n = u16::try_from(out.len()).unwrap_or(u16::MAX);
        // SAFETY: the queue exists on a configured port (queue ids are checked in Port::queue), out
        // is valid for n writes, and &mut self plus the one-handle-per-queue rule keep this thread the
        // only one polling the queue. Before start or after stop DPDK's dummy burst returns 0.
        let got = unsafe {
            dpdk_sys::vigil_rte_eth_rx_burst(self.port.port_id, self.queue_id, out.as_mut_ptr(), n)
        };
        usize::from(got)
    }

    /// Sends raw mbufs from the front of `pkts`; returns how many the driver took (it now owns
    /// them); the rest stay the caller's.
    ///
    /// # Safety
    /// Every pointer in `pkts` must be a valid mbuf the caller owns, with its data and lengths set.
    #[inline]
    pub unsafe fn tx_burst_raw(&mut self, pkts: &mut [*mut dpdk_sys::rte_mbuf]) -> usize {
        let n = u16::try_from(pkts.len()).unwrap_or(u16::MAX);
        // SAFETY: the caller vouches for the mbufs; queue validity and exclusivity as in rx_burst_raw.
        let sent = unsafe {
            dpdk_sys::vigil_rte_eth_tx_burst(self.port.port_id, self.queue_id, pkts.as_mut_ptr(), n)
        };
        usize::from(sent)
    }

    /// Receives up to `batch.room()` mbufs into `batch`; returns how many were added.
    #[inline]
    pub fn rx_burst(&mut self, batch: &mut Batch<Mbuf>) -> usize {
        let mut ptrs = [std::ptr::null_mut(); QUEUE_BURST_MAX];
        let mut total = 0;
        while batch.room() > 0 {
            let want = batch.room().min(QUEUE_BURST_MAX);
            let got = self.rx_burst_raw(&mut ptrs[..want]);
            for &p in &ptrs[..got] {
                let p = NonNull::new(p).expect("rte_eth_rx_burst returned a null mbuf");
                // SAFETY: rx_burst handed us ownership of this mbuf; its pool is held by the port.
                let m = unsafe { Mbuf::from_raw(p) };
                if batch.push(m).is_err() {
                    unreachable!("at most batch.room() mbufs were asked for");
                }
            }
            total += got;
            if got < want {
                break;
            }
        }
        total
    }

    /// Sends mbufs from the front of `batch`; returns how many were taken. Those the transmit ring
    /// had no room for stay in the batch, in order.
    #[inline]
    pub fn tx_burst(&mut self, batch: &mut Batch<Mbuf>) -> usize {
        let mut ptrs = [std::ptr::null_mut(); QUEUE_BURST_MAX];
        let mut total = 0;
        while !batch.is_empty() {
            let n = batch.len().min(QUEUE_BURST_MAX);
            for (slot, m) in ptrs.iter_mut().zip(&batch.as_slice()[..n]) {
                *slot = m.as_ptr();
            }
            // SAFETY: the pointers are valid mbufs owned by the batch; the ones taken are released
            // from the batch below without freeing them (the driver owns them now).
            let sent = unsafe { self.tx_burst_raw(&mut ptrs[..n]) };
            for m in batch.consume_front(sent) {
                let _ = m.into_raw();
            }
            total += sent;
            if sent < n {
                break;
            }
        }
        total
    }
}

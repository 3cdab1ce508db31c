//! The kernel UDP socket backend of [`PacketIo`]: the fallback where DPDK cannot start (no root, no
//! DPDK, a laptop) and the embedded development default.
//!
//! One backend is one non-blocking IPv4 UDP socket on one shard thread. Shards bind the same
//! address with `SO_REUSEPORT`, so the kernel spreads flows across them by hashing the 4-tuple.
//! Datagrams move in bursts: one `recvmmsg(2)` per `rx_burst` and (in the common case) one
//! `sendmmsg(2)` per `tx_burst`.
//!
//! Invariants:
//! - No allocation after [`KernelUdpIo::bind`]: the `pool_buffers` payload buffers (each
//!   `datagram_bytes_max` bytes) and the `mmsghdr`/`iovec`/`sockaddr_in` arrays (each
//!   `burst_size_max` long) are allocated there once; the pool's free list has room reserved for
//!   every buffer, so giving one back never grows it.
//! - At most `pool_buffers` datagrams (received plus being built) are alive at once; when the pool
//!   is empty `rx_burst` leaves datagrams queued in the kernel and `tx_alloc` returns `None`
//!   (counted).
//! - A datagram longer than `datagram_bytes_max` is never handed over truncated: it is counted in
//!   `rx_malformed` and dropped.
//! - The backend is single-threaded (`!Send`): the pool is an `Rc<RefCell<..>>` shared with the
//!   datagrams it lent, which may outlive the backend and still return their buffers.
//! - Datagrams the kernel drops before we read them (the socket's receive queue was full) are
//!   counted in `rx_kernel_dropped`: the socket has `SO_RXQ_OVFL` set, so each datagram received
//!   carries the socket's drop count as a control message (one small buffer per syscall message,
//!   allocated at bind); the count is as of the last datagram received.
//!
//! Linux only (`recvmmsg`/`sendmmsg`).

use crate::{Batch, IoCounters, PacketIo, Peer, RxDatagram, TxDatagram};
use socket2::{Domain, Protocol, Socket, Type};
use std::cell::RefCell;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

/// How a kernel UDP backend is set up; every size is a limit allocated once at bind.
#[derive(Debug, Clone)]
pub struct KernelUdpConfig {
    /// Address to bind (port 0: an ephemeral port, see [`KernelUdpIo::local_addr`]).
    pub bind: SocketAddrV4,
    /// Sets `SO_REUSEPORT` so several shards can bind `bind` and the kernel spreads flows across
    /// them.
    pub reuse_port: bool,
    /// Most datagrams moved by one `recvmmsg`/`sendmmsg` call (the syscall arrays' length).
    pub burst_size_max: usize,
    /// Size of each pool buffer: the largest datagram received (longer ones are dropped) or sent.
    pub datagram_bytes_max: usize,
    /// Number of pool buffers, shared by received datagrams and transmit buffers.
    pub pool_buffers: usize,
    /// When `rx_burst` finds nothing, wait up to this long for the socket to become readable and
    /// try once more (an idle server sleeps instead of burning a core). `None`: pure busy-poll.
    pub idle_wait: Option<Duration>,
    /// `SO_RCVBUF` to request (the kernel doubles it and caps it at `net.core.rmem_max`).
    pub recv_buffer_bytes: Option<usize>,
    /// `SO_SNDBUF` to request (the kernel doubles it and caps it at `net.core.wmem_max`).
    pub send_buffer_bytes: Option<usize>,
}

/// Fixed set of equal-size payload buffers, lent to datagrams and given back when they drop.
struct BufferPool {
    /// Buffers not lent out. Capacity reserved for all of them at creation, so a push never
    /// allocates.
    free: RefCell<Vec<Box<[u8]>>>,
}

impl BufferPool {
    fn new(buffers: usize, buffer_bytes: usize) -> Self {
        let mut free = Vec::with_capacity(buffers);
        free.extend((0..buffers).map(|_| vec![0u8; buffer_bytes].into_boxed_slice()));
        Self { free: RefCell::new(free) }
    }

    #[inline]
    fn take(&self) -> Option<Box<[u8]>> {
        self.free.borrow_mut().pop()
    }

    #[inline]
    fn give_back(&self, buf: Box<[u8]>) {
        let mut free = self.free.borrow_mut();
        // Only buffers this pool lent come back, so there is always reserved room: no allocation.
        debug_assert!(free.len() < free.capacity());
        free.push(buf);
    }

    #[inline]
    fn free_count(&self) -> usize {
        self.free.borrow().len()
    }
}

/// A received datagram; owns a pool buffer and gives it back when dropped.
pub struct KernelRx {
    buf: Box<[u8]>,
    len: usize,
    peer: Peer,
    pool: Rc<BufferPool>,
}

impl RxDatagram for KernelRx {
    #[inline]
    fn payload(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    #[inline]
    fn peer(&self) -> Peer {
        self.peer
    }
}

impl Drop for KernelRx {
    fn drop(&mut self) {
        // An empty boxed slice does not allocate.
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

impl std::fmt::Debug for KernelRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelRx").field("len", &self.len).field("peer", &self.peer).finish()
    }
}

/// A datagram being built; owns a pool buffer (given back when dropped, sent or not) and its peer.
pub struct KernelTx {
    buf: Box<[u8]>,
    len: usize,
    peer: Peer,
    pool: Rc<BufferPool>,
}

impl KernelTx {
    /// Where it will be sent.
    #[inline]
    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// Bytes that will be sent (0 until [`TxDatagram::set_len`]).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing will be sent but an empty datagram.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl TxDatagram for KernelTx {
    #[inline]
    fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    #[inline]
    fn set_len(&mut self, len: usize) {
        assert!(len <= self.buf.len(), "set_len {len} past the {}-byte buffer", self.buf.len());
        self.len = len;
    }

    #[inline]
    fn set_peer(&mut self, peer: &Peer) {
        self.peer = *peer;
    }
}

impl Drop for KernelTx {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

impl std::fmt::Debug for KernelTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelTx").field("len", &self.len).field("peer", &self.peer).finish()
    }
}

/// One shard's kernel UDP socket, moving datagrams with `recvmmsg`/`sendmmsg`.
pub struct KernelUdpIo {
    socket: UdpSocket,
    local_addr: SocketAddrV4,
    burst_size_max: usize,
    idle_wait: Option<Duration>,
    /// The descriptors of one idle wait (the socket and the caller's), allocated once.
    pollfds: Vec<libc::pollfd>,
    pool: Rc<BufferPool>,
    /// Syscall arrays, `burst_size_max` long each, allocated at bind. Their pointers are re-aimed
    /// at each call (cheap stores), so nothing depends on where `self` lives.
    msgs: Vec<libc::mmsghdr>,
    iovecs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_in>,
    /// One control-message buffer per syscall message (for `SO_RXQ_OVFL`), allocated at bind.
    controls: Vec<ControlBuf>,
    /// The socket's drop count as last reported by `SO_RXQ_OVFL` (a wrapping `u32` in the kernel).
    kernel_drops_seen: u32,
    /// Buffers lent to the current `recvmmsg` call; capacity `burst_size_max`, empty between calls.
    rx_staged: Vec<Box<[u8]>>,
    counters: IoCounters,
}

impl std::fmt::Debug for KernelUdpIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelUdpIo")
            .field("local_addr", &self.local_addr)
            .field("burst_size_max", &self.burst_size_max)
            .field("pool_buffers_free", &self.pool.free_count())
            .field("counters", &self.counters)
            .finish()
    }
}

/// `EAGAIN`-like outcomes: the queue is full or the call was interrupted; nothing is wrong with the
/// datagram, so it stays in the batch for the caller to retry or drop.
fn is_transient(errno: i32) -> bool {
    errno == libc::EAGAIN
        || errno == libc::EWOULDBLOCK
        || errno == libc::ENOBUFS
        || errno == libc::ENOMEM
        || errno == libc::EINTR
}

fn invalid_config(key: &str, reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("kernel udp config: {key}: {reason}"))
}

fn sockaddr_in_of(peer: &Peer) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: peer.port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(peer.ip).to_be() },
        sin_zero: [0; 8],
    }
}

fn peer_of(addr: &libc::sockaddr_in) -> Peer {
    Peer::from_ip_port(Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)), u16::from_be(addr.sin_port))
}

/// Room for one control message carrying a `u32` (`CMSG_SPACE(4)`, 24 bytes on 64-bit Linux),
/// aligned for `cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct ControlBuf([u8; 32]);

/// Descriptors besides the socket one idle wait may sleep on (`rx_burst_or_wait`); with more, the
/// backend does not sleep.
pub const WAIT_FDS_MAX: usize = 64;

#[allow(unused_unsafe)]
// SAFETY: CMSG_SPACE is pure arithmetic on its argument; libc marks it `unsafe` only by its macro
// convention.
const CONTROL_SPACE: usize = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u32>() as libc::c_uint) } as usize;
const _: () = assert!(CONTROL_SPACE <= std::mem::size_of::<ControlBuf>());

/// Asks the kernel to attach the socket's drop count to every datagram it hands over.
fn enable_rxq_ovfl(socket: &Socket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, and a pointer to a live c_int with its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The `SO_RXQ_OVFL` drop count a received message carries, if any (the kernel attaches it only
/// once the socket has dropped something).
fn rxq_ovfl_of(hdr: &libc::msghdr) -> Option<u32> {
    // SAFETY: `hdr` was filled by recvmmsg: msg_control points at a live ControlBuf and
    // msg_controllen says how much of it the kernel wrote; the CMSG_* walk stays inside that.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SO_RXQ_OVFL {
                return Some(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<u32>()));
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

fn zeroed_mmsghdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is a plain C struct of integers and raw pointers (plus private padding on
    // some libcs, which is why it is not built field by field); all-zero is a valid value for each.
    unsafe { std::mem::zeroed() }
}

impl KernelUdpIo {
    /// Opens a non-blocking UDP socket bound to `cfg.bind` (with `SO_REUSEPORT`, `SO_RCVBUF` and
    /// `SO_SNDBUF` as asked) and allocates the pool and syscall arrays. A zero size is an
    /// `InvalidInput` error naming the key.
    pub fn bind(cfg: &KernelUdpConfig) -> io::Result<Self> {
        if cfg.burst_size_max == 0 {
            return Err(invalid_config("burst_size_max", "must be at least 1"));
        }
        if cfg.datagram_bytes_max == 0 {
            return Err(invalid_config("datagram_bytes_max", "must be at least 1"));
        }
        if cfg.pool_buffers == 0 {
            return Err(invalid_config("pool_buffers", "must be at least 1"));
        }
        // recvmmsg/sendmmsg take the count as an unsigned int.
        if libc::c_uint::try_from(cfg.burst_size_max).is_err() {
            return Err(invalid_config("burst_size_max", "too large for recvmmsg"));
        }

        // socket2 opens it with SOCK_CLOEXEC; options that must precede bind are set first.
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        if cfg.reuse_port {
            socket.set_reuse_port(true)?;
        }
        if let Some(bytes) = cfg.recv_buffer_bytes {
            socket.set_recv_buffer_size(bytes)?;
        }
        if let Some(bytes) = cfg.send_buffer_bytes {
            socket.set_send_buffer_size(bytes)?;
        }
        socket.set_nonblocking(true)?;
        enable_rxq_ovfl(&socket)?;
        socket.bind(&SocketAddr::V4(cfg.bind).into())?;
        let socket: UdpSocket = socket.into();
        let local_addr = match socket.local_addr()? {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(a) => {
                return Err(io::Error::other(format!("IPv4 socket reports IPv6 address {a}")))
            }
        };

        let burst = cfg.burst_size_max;
        let empty_addr = sockaddr_in_of(&Peer::from_ip_port(Ipv4Addr::UNSPECIFIED, 0));
        let empty_iovec = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        Ok(Self {
            socket,
            local_addr,
            burst_size_max: burst,
            idle_wait: cfg.idle_wait,
            pollfds: Vec::with_capacity(WAIT_FDS_MAX + 1),
            pool: Rc::new(BufferPool::new(cfg.pool_buffers, cfg.datagram_bytes_max)),
            msgs: (0..burst).map(|_| zeroed_mmsghdr()).collect(),
            iovecs: vec![empty_iovec; burst],
            addrs: vec![empty_addr; burst],
            controls: vec![ControlBuf([0; 32]); burst],
            kernel_drops_seen: 0,
            rx_staged: Vec::with_capacity(burst),
            counters: IoCounters::default(),
        })
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local_addr
    }

    /// Pool buffers not lent out right now (for metrics and tests).
    pub fn pool_buffers_free(&self) -> usize {
        self.pool.free_count()
    }

    /// Points message `i` of the syscall arrays at `addrs[i]` and `iovecs[i]` (and, to receive,
    /// at `controls[i]`). Called after every write to those arrays for this call, so the pointers
    /// it takes are the last ones derived.
    #[inline]
    fn aim_msg(&mut self, i: usize, receive: bool) {
        // as_mut_ptr does not materialise a reference to the whole slice, so these pointers stay
        // valid while the other messages are aimed.
        let name = self.addrs.as_mut_ptr().wrapping_add(i);
        let iov = self.iovecs.as_mut_ptr().wrapping_add(i);
        let control = self.controls.as_mut_ptr().wrapping_add(i);
        let hdr = &mut self.msgs[i].msg_hdr;
        hdr.msg_name = name.cast();
        hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        hdr.msg_iov = iov;
        hdr.msg_iovlen = 1;
        if receive {
            hdr.msg_control = control.cast();
            hdr.msg_controllen = CONTROL_SPACE as _;
        } else {
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
        }
        hdr.msg_flags = 0;
        self.msgs[i].msg_len = 0;
    }

    /// One `recvmmsg` for up to `want` datagrams. Returns (datagrams taken from the kernel queue,
    /// datagrams added to `batch`); the first is 0 when the queue was empty or on error.
    fn recv_once(&mut self, batch: &mut Batch<KernelRx>, want: usize) -> (usize, usize) {
        debug_assert!(self.rx_staged.is_empty());
        while self.rx_staged.len() < want {
            let Some(buf) = self.pool.take() else {
                break;
            };
            self.rx_staged.push(buf);
        }
        let lent = self.rx_staged.len();
        if lent == 0 {
            // Pool empty: leave the datagrams queued in the kernel until buffers come back.
            return (0, 0);
        }
        // Buffers are aimed at only once they sit in `rx_staged`, where they stay until the call
        // returns.
        for (iov, buf) in self.iovecs.iter_mut().zip(self.rx_staged.iter_mut()) {
            *iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        }
        for i in 0..lent {
            self.aim_msg(i, true);
        }

        // SAFETY: msgs[..lent] each point at a live sockaddr_in in `addrs`, a live ControlBuf in
        // `controls` and one iovec in `iovecs`, which spans a live buffer held in `rx_staged` (boxed, so it does not move);
        // none of these are touched until the call returns. lent <= burst_size_max fits c_uint
        // (checked at bind).
        let got = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                lent as libc::c_uint,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        // -1: EAGAIN (nothing queued), EINTR, or a pending socket error reported once; either way
        // nothing was received and the next burst tries again.
        let got = usize::try_from(got).unwrap_or(0);
        assert!(got <= lent);

        let mut added = 0;
        for (i, buf) in self.rx_staged.drain(..).enumerate() {
            if i >= got {
                self.pool.give_back(buf);
                continue;
            }
            self.counters.rx_packets += 1;
            let msg = &self.msgs[i];
            if let Some(drops) = rxq_ovfl_of(&msg.msg_hdr) {
                // The kernel's count wraps at 2^32; successive reports never go back.
                self.counters.rx_kernel_dropped += u64::from(drops.wrapping_sub(self.kernel_drops_seen));
                self.kernel_drops_seen = drops;
            }
            if msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                // Longer than datagram_bytes_max: the tail is lost, so the datagram is useless.
                self.counters.rx_malformed += 1;
                self.pool.give_back(buf);
                continue;
            }
            let len = msg.msg_len as usize;
            assert!(len <= buf.len());
            let rx = KernelRx { buf, len, peer: peer_of(&self.addrs[i]), pool: Rc::clone(&self.pool) };
            // want <= batch.room(), so this cannot fail.
            let pushed = batch.push(rx);
            assert!(pushed.is_ok());
            added += 1;
        }
        self.counters.rx_datagrams += added as u64;
        (got, added)
    }

    /// Aims the first `m` syscall messages at the first `m` datagrams of `batch` (the common case
    /// does this once per `tx_burst`; again only after a partial send).
    fn aim_tx_front(&mut self, batch: &Batch<KernelTx>, m: usize) {
        for (i, tx) in batch.as_slice()[..m].iter().enumerate() {
            self.addrs[i] = sockaddr_in_of(&tx.peer);
            // sendmmsg only reads through iov_base; the C type just has no const.
            self.iovecs[i] = libc::iovec { iov_base: tx.buf.as_ptr() as *mut libc::c_void, iov_len: tx.len };
        }
        for i in 0..m {
            self.aim_msg(i, false);
        }
    }

    /// Sleeps until the socket or one of `extra` is readable, or `wait` has passed (a signal may
    /// end it sooner). `extra` beyond `WAIT_FDS_MAX` are not waited on (the caller checked).
    fn wait_readable(&mut self, wait: Duration, extra: &[i32]) {
        let timeout_ms = wait.as_nanos().div_ceil(1_000_000).min(libc::c_int::MAX as u128);
        self.pollfds.clear();
        self.pollfds.push(libc::pollfd { fd: self.socket.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        for &fd in extra.iter().take(WAIT_FDS_MAX) {
            self.pollfds.push(libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
        }
        // SAFETY: `pollfds` holds `len()` valid pollfds living across the call. The result is not
        // needed: readable, timed out or interrupted, the caller tries recvmmsg once either way.
        unsafe {
            libc::poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                timeout_ms as libc::c_int,
            )
        };
    }

    /// `rx_burst`, sleeping on the socket and `extra` when nothing arrived (see `idle_wait`).
    fn rx_burst_waiting(&mut self, batch: &mut Batch<KernelRx>, extra: &[i32]) -> usize {
        let want = batch.room().min(self.burst_size_max);
        if want == 0 {
            return 0;
        }
        let (taken, added) = self.recv_once(batch, want);
        if taken > 0 || self.pool.free_count() == 0 || extra.len() > WAIT_FDS_MAX {
            // Traffic is flowing (even if all of it was malformed), there is no buffer to receive
            // into, or more descriptors than a wait takes: sleeping would only delay the caller.
            return added;
        }
        match self.idle_wait {
            Some(wait) => {
                self.wait_readable(wait, extra);
                self.recv_once(batch, want).1
            }
            None => 0,
        }
    }
}

impl PacketIo for KernelUdpIo {
    type Rx = KernelRx;
    type Tx = KernelTx;

    fn rx_burst(&mut self, batch: &mut Batch<KernelRx>) -> usize {
        self.rx_burst_waiting(batch, &[])
    }

    fn sleeps_when_idle(&self) -> bool {
        self.idle_wait.is_some()
    }

    fn rx_burst_or_wait(&mut self, batch: &mut Batch<KernelRx>, fds: &[i32]) -> usize {
        self.rx_burst_waiting(batch, fds)
    }

    fn rx_burst_no_wait(&mut self, batch: &mut Batch<KernelRx>) -> usize {
        let want = batch.room().min(self.burst_size_max);
        if want == 0 {
            return 0;
        }
        self.recv_once(batch, want).1
    }

    fn tx_alloc(&mut self, peer: &Peer) -> Option<KernelTx> {
        match self.pool.take() {
            Some(buf) => Some(KernelTx { buf, len: 0, peer: *peer, pool: Rc::clone(&self.pool) }),
            None => {
                self.counters.tx_alloc_failed += 1;
                None
            }
        }
    }

    /// One `sendmmsg` for the batch front (up to `burst_size_max`). Datagrams refused for lack of
    /// room (`EAGAIN`, `ENOBUFS`) stay in the batch. A datagram the kernel rejects outright (e.g.
    /// `EINVAL` for port 0, `EMSGSIZE`) is counted in `tx_dropped` and removed, and the call goes
    /// on with the rest, so one bad datagram cannot stall the queue. Returns how many were removed.
    fn tx_burst(&mut self, batch: &mut Batch<KernelTx>) -> usize {
        let n = batch.len().min(self.burst_size_max);
        // `done` counts datagrams removed from the front so far; each pass sends the next `m`.
        let mut done = 0;
        while done < n {
            let m = n - done;
            self.aim_tx_front(batch, m);
            // SAFETY: msgs[..m] were just aimed at sockaddr_ins in `addrs` and iovecs in `iovecs`,
            // each spanning the first `len` bytes of a boxed buffer owned by one of the first `m`
            // KernelTx in `batch`, which is not touched until the call returns. m <=
            // burst_size_max fits c_uint (checked at bind).
            let sent = unsafe {
                libc::sendmmsg(
                    self.socket.as_raw_fd(),
                    self.msgs.as_mut_ptr(),
                    m as libc::c_uint,
                    libc::MSG_DONTWAIT as _,
                )
            };
            if sent > 0 {
                let sent = sent as usize;
                assert!(sent <= m);
                // Dropping them returns their buffers to the pool.
                batch.consume_front(sent);
                self.counters.tx_datagrams += sent as u64;
                done += sent;
                // A short count means the next message failed and its error was lost; the next
                // pass starts at it and learns why (EAGAIN ends the call, a rejection drops it).
                continue;
            }
            let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
            if sent == 0 || is_transient(errno) {
                break;
            }
            batch.consume_front(1);
            self.counters.tx_dropped += 1;
            done += 1;
        }
        done
    }

    fn counters(&self) -> IoCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> KernelUdpConfig {
        KernelUdpConfig {
            bind: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            reuse_port: false,
            burst_size_max: 4,
            datagram_bytes_max: 64,
            pool_buffers: 4,
            idle_wait: None,
            recv_buffer_bytes: None,
            send_buffer_bytes: None,
        }
    }

    #[test]
    fn zero_sizes_are_rejected_naming_the_key() {
        for (key, cfg) in [
            ("burst_size_max", KernelUdpConfig { burst_size_max: 0, ..config() }),
            ("datagram_bytes_max", KernelUdpConfig { datagram_bytes_max: 0, ..config() }),
            ("pool_buffers", KernelUdpConfig { pool_buffers: 0, ..config() }),
        ] {
            let err = KernelUdpIo::bind(&cfg).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn pool_reserves_room_so_giving_back_never_grows_it() {
        let pool = BufferPool::new(3, 8);
        let cap = pool.free.borrow().capacity();
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        assert_eq!(a.len(), 8);
        assert_eq!(pool.free_count(), 1);
        pool.give_back(a);
        pool.give_back(b);
        assert_eq!(pool.free_count(), 3);
        assert_eq!(pool.free.borrow().capacity(), cap);
    }

    #[test]
    fn datagrams_outliving_the_backend_still_return_their_buffers() {
        let mut io = KernelUdpIo::bind(&config()).unwrap();
        let tx = io.tx_alloc(&Peer::from_ip_port(Ipv4Addr::LOCALHOST, 9)).unwrap();
        let pool = Rc::clone(&io.pool);
        drop(io);
        assert_eq!(pool.free_count(), 3);
        drop(tx);
        assert_eq!(pool.free_count(), 4);
    }

    #[test]
    #[should_panic(expected = "past the")]
    fn set_len_past_the_buffer_panics() {
        let mut io = KernelUdpIo::bind(&config()).unwrap();
        let mut tx = io.tx_alloc(&Peer::from_ip_port(Ipv4Addr::LOCALHOST, 9)).unwrap();
        tx.set_len(65);
    }

    #[test]
    fn an_idle_wait_wakes_when_an_extra_descriptor_becomes_readable() {
        // Twenty seconds of idle wait: only the extra descriptor can end it early.
        let cfg = KernelUdpConfig { idle_wait: Some(Duration::from_secs(20)), ..config() };
        let mut io = KernelUdpIo::bind(&cfg).unwrap();
        let other = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let sender = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        sender.send_to(b"done", other.local_addr().unwrap()).unwrap();
        let mut batch = Batch::with_capacity(4);
        let started = std::time::Instant::now();
        assert_eq!(io.rx_burst_or_wait(&mut batch, &[other.as_raw_fd()]), 0);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the wait did not end when the descriptor was readable"
        );
        // More descriptors than a wait takes: no sleep at all.
        let many = vec![other.as_raw_fd(); WAIT_FDS_MAX + 1];
        assert_eq!(io.rx_burst_or_wait(&mut batch, &many), 0);
    }
}

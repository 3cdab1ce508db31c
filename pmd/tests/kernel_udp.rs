//! The kernel UDP backend against real loopback sockets: round trips, truncation, pool exhaustion,
//! SO_REUSEPORT and the idle wait. Every wait is bounded by a deadline so a broken backend fails
//! instead of hanging.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};
use vigil_pmd::kernel::{KernelRx, KernelTx, KernelUdpConfig, KernelUdpIo};
use vigil_pmd::{Batch, PacketIo, Peer, RxDatagram, TxDatagram};

const DEADLINE: Duration = Duration::from_secs(5);

fn config(pool_buffers: usize, burst_size_max: usize, datagram_bytes_max: usize) -> KernelUdpConfig {
    KernelUdpConfig {
        bind: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
        reuse_port: false,
        burst_size_max,
        datagram_bytes_max,
        pool_buffers,
        // Short, so the receive loops below sleep instead of spinning while loopback delivers.
        idle_wait: Some(Duration::from_millis(10)),
        recv_buffer_bytes: Some(1 << 20),
        send_buffer_bytes: Some(1 << 20),
    }
}

fn client() -> UdpSocket {
    let c = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    c
}

fn peer_of(sock: &UdpSocket) -> Peer {
    match sock.local_addr().unwrap() {
        SocketAddr::V4(a) => Peer::from_ip_port(*a.ip(), a.port()),
        SocketAddr::V6(a) => panic!("IPv6 client {a}"),
    }
}

/// Calls `rx_burst` until `batch` holds `n` datagrams (or panics at the deadline).
fn receive(io: &mut KernelUdpIo, batch: &mut Batch<KernelRx>, n: usize) {
    let start = Instant::now();
    while batch.len() < n {
        assert!(start.elapsed() < DEADLINE, "received {} of {n}", batch.len());
        io.rx_burst(batch);
    }
}

/// Calls `tx_burst` until `batch` is empty (or panics at the deadline).
fn send_all(io: &mut KernelUdpIo, batch: &mut Batch<KernelTx>) {
    let start = Instant::now();
    while !batch.is_empty() {
        assert!(start.elapsed() < DEADLINE, "{} left unsent", batch.len());
        io.tx_burst(batch);
    }
}

#[test]
fn round_trip_with_empty_and_full_size_datagrams() {
    let max = 1500;
    let mut io = KernelUdpIo::bind(&config(16, 4, max)).unwrap();
    let server = io.local_addr();
    assert_ne!(server.port(), 0);
    let c = client();
    let me = peer_of(&c);

    let payloads: Vec<Vec<u8>> = vec![
        vec![],
        b"a".to_vec(),
        b"hello".to_vec(),
        (0..max).map(|i| i as u8).collect(),
        vec![7; 100],
        b"last".to_vec(),
    ];
    for p in &payloads {
        c.send_to(p, server).unwrap();
    }

    // Batch bigger than a burst: several rx_burst calls, each taking at most burst_size_max.
    let mut rx = Batch::with_capacity(payloads.len());
    let start = Instant::now();
    while rx.len() < payloads.len() {
        assert!(start.elapsed() < DEADLINE);
        let before = rx.len();
        let got = io.rx_burst(&mut rx);
        assert_eq!(rx.len() - before, got);
        assert!(got <= 4);
    }
    for (d, p) in rx.as_slice().iter().zip(&payloads) {
        assert_eq!(d.payload(), &p[..]);
        assert_eq!(d.peer(), me);
    }
    assert_eq!(io.pool_buffers_free(), 16 - payloads.len());

    // Echo each back reversed, written in place into the transmit buffer.
    let mut tx = Batch::with_capacity(payloads.len());
    for d in rx.drain() {
        let mut t = io.tx_alloc(&d.peer()).unwrap();
        assert_eq!(t.payload_mut().len(), max);
        let n = d.payload().len();
        for (o, i) in t.payload_mut()[..n].iter_mut().zip(d.payload().iter().rev()) {
            *o = *i;
        }
        t.set_len(n);
        tx.push(t).unwrap();
    }
    send_all(&mut io, &mut tx);

    let mut buf = vec![0u8; max + 1];
    for p in &payloads {
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!(from, SocketAddr::V4(server));
        let want: Vec<u8> = p.iter().rev().copied().collect();
        assert_eq!(&buf[..n], &want[..]);
    }

    let k = io.counters();
    assert_eq!(k.rx_packets, payloads.len() as u64);
    assert_eq!(k.rx_datagrams, payloads.len() as u64);
    assert_eq!(k.tx_datagrams, payloads.len() as u64);
    assert_eq!(k.tx_dropped, 0);
    assert_eq!(k.rx_malformed, 0);
    assert_eq!(io.pool_buffers_free(), 16);
}

#[test]
fn oversized_datagram_is_counted_malformed_and_later_traffic_flows() {
    let max = 64;
    let mut io = KernelUdpIo::bind(&config(8, 8, max)).unwrap();
    let c = client();
    c.send_to(&[1u8; 65], io.local_addr()).unwrap();
    c.send_to(&[2u8; 64], io.local_addr()).unwrap();
    c.send_to(&[3u8; 1000], io.local_addr()).unwrap();
    c.send_to(b"ok", io.local_addr()).unwrap();

    let mut rx = Batch::with_capacity(8);
    receive(&mut io, &mut rx, 2);
    assert_eq!(rx.as_slice()[0].payload(), &[2u8; 64][..]);
    assert_eq!(rx.as_slice()[1].payload(), b"ok");
    // Both oversized ones arrived before "ok", so they have been counted by now.
    let k = io.counters();
    assert_eq!(k.rx_malformed, 2);
    assert_eq!(k.rx_packets, 4);
    assert_eq!(k.rx_datagrams, 2);
    rx.clear();
    assert_eq!(io.pool_buffers_free(), 8);
}

#[test]
fn pool_exhaustion_leaves_datagrams_queued_and_fails_tx_alloc() {
    let mut io = KernelUdpIo::bind(&config(4, 8, 32)).unwrap();
    let c = client();
    let me = peer_of(&c);
    for i in 0..6u8 {
        c.send_to(&[i], io.local_addr()).unwrap();
    }

    let mut held = Batch::with_capacity(8);
    receive(&mut io, &mut held, 4);
    assert_eq!(io.pool_buffers_free(), 0);
    // No buffer: nothing more is taken from the kernel, and no idle wait is spent on it.
    let start = Instant::now();
    for _ in 0..3 {
        assert_eq!(io.rx_burst(&mut held), 0);
    }
    assert!(start.elapsed() < Duration::from_millis(500));
    assert_eq!(held.len(), 4);
    assert!(io.tx_alloc(&me).is_none());
    assert!(io.tx_alloc(&me).is_none());
    assert_eq!(io.counters().tx_alloc_failed, 2);
    assert_eq!(io.counters().rx_packets, 4);

    // Buffers come back on drop; the two datagrams still queued in the kernel then arrive, in
    // order.
    let firsts: Vec<u8> = held.drain().map(|d| d.payload()[0]).collect();
    assert_eq!(firsts, vec![0, 1, 2, 3]);
    assert_eq!(io.pool_buffers_free(), 4);
    receive(&mut io, &mut held, 2);
    let rest: Vec<u8> = held.drain().map(|d| d.payload()[0]).collect();
    assert_eq!(rest, vec![4, 5]);

    let t = io.tx_alloc(&me).unwrap();
    assert_eq!(io.pool_buffers_free(), 3);
    drop(t);
    assert_eq!(io.pool_buffers_free(), 4);
    assert_eq!(io.counters().tx_alloc_failed, 2);
}

#[test]
fn reuse_port_lets_two_shards_bind_the_same_port() {
    let mut cfg = config(2, 2, 32);
    cfg.reuse_port = true;
    let a = KernelUdpIo::bind(&cfg).unwrap();
    cfg.bind = a.local_addr();
    let b = KernelUdpIo::bind(&cfg).unwrap();
    assert_eq!(a.local_addr(), b.local_addr());
    // Without the option the same bind is refused, so the option is what made it work.
    cfg.reuse_port = false;
    let err = KernelUdpIo::bind(&cfg).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
}

#[test]
fn idle_wait_bounds_an_empty_rx_burst() {
    let mut cfg = config(2, 2, 32);
    cfg.idle_wait = Some(Duration::from_millis(20));
    let mut io = KernelUdpIo::bind(&cfg).unwrap();
    let mut rx = Batch::with_capacity(2);
    let start = Instant::now();
    assert_eq!(io.rx_burst(&mut rx), 0);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(10), "returned after {waited:?}");
    assert!(waited < Duration::from_secs(1), "returned after {waited:?}");

    // Busy-poll mode returns at once.
    cfg.idle_wait = None;
    let mut io = KernelUdpIo::bind(&cfg).unwrap();
    let start = Instant::now();
    assert_eq!(io.rx_burst(&mut rx), 0);
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn idle_wait_wakes_when_a_datagram_arrives() {
    let mut cfg = config(2, 2, 32);
    cfg.idle_wait = Some(Duration::from_secs(30));
    let mut io = KernelUdpIo::bind(&cfg).unwrap();
    let server = io.local_addr();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        client().send_to(b"wake", server).unwrap();
    });
    let mut rx = Batch::with_capacity(2);
    let start = Instant::now();
    assert_eq!(io.rx_burst(&mut rx), 1);
    assert!(start.elapsed() < DEADLINE);
    assert_eq!(rx.as_slice()[0].payload(), b"wake");
    sender.join().unwrap();
}

#[test]
fn rejected_datagrams_are_dropped_and_counted_without_stalling_the_rest() {
    // 65,508 bytes is one past the largest UDP payload over IPv4: EMSGSIZE. Port 0: EINVAL.
    let max = 65_508;
    let mut io = KernelUdpIo::bind(&config(4, 4, max)).unwrap();
    let c = client();
    let me = peer_of(&c);

    let mut tx = Batch::with_capacity(4);
    let mut bad_port = io.tx_alloc(&Peer::from_ip_port(Ipv4Addr::LOCALHOST, 0)).unwrap();
    bad_port.set_len(1);
    tx.push(bad_port).unwrap();
    let mut good = io.tx_alloc(&me).unwrap();
    good.payload_mut()[..4].copy_from_slice(b"good");
    good.set_len(4);
    tx.push(good).unwrap();
    let mut too_big = io.tx_alloc(&me).unwrap();
    too_big.set_len(max);
    tx.push(too_big).unwrap();
    let mut empty = io.tx_alloc(&me).unwrap();
    empty.set_len(0);
    tx.push(empty).unwrap();

    send_all(&mut io, &mut tx);
    let k = io.counters();
    assert_eq!(k.tx_dropped, 2);
    assert_eq!(k.tx_datagrams, 2);
    assert_eq!(io.pool_buffers_free(), 4);

    let mut buf = [0u8; 16];
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"good");
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(n, 0);
}

/// Drains every datagram queued on the socket; returns how many there were.
fn drain(io: &mut KernelUdpIo) -> usize {
    let mut total = 0;
    loop {
        let mut batch = Batch::with_capacity(16);
        let got = io.rx_burst_no_wait(&mut batch);
        if got == 0 {
            return total;
        }
        total += got;
    }
}

#[test]
fn datagrams_the_kernel_drops_on_a_full_receive_queue_are_counted() {
    // The smallest receive buffer the kernel allows; nothing reads while the client floods it.
    let cfg = KernelUdpConfig { recv_buffer_bytes: Some(1), idle_wait: None, ..config(64, 16, 256) };
    let mut io = KernelUdpIo::bind(&cfg).unwrap();
    let server = io.local_addr();
    let c = client();
    let flood = 500;
    let mut expected_drops = 0;
    for round in 0..2 {
        for i in 0..flood {
            c.send_to(&[round as u8, i as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], server).unwrap();
        }
        let queued = drain(&mut io);
        assert!(queued < flood, "round {round}: all {flood} datagrams fit; the buffer is not small");
        expected_drops += (flood - queued) as u64;
        // The datagrams queued before the queue filled carry no drop count; the next one to arrive
        // carries the socket's drops so far.
        c.send_to(b"after the flood", server).unwrap();
        let mut batch = Batch::with_capacity(1);
        receive(&mut io, &mut batch, 1);
        assert_eq!(batch.as_slice()[0].payload(), b"after the flood");
        assert_eq!(io.counters().rx_kernel_dropped, expected_drops, "round {round}");
    }
    assert!(io.counters().to_string().contains(&format!("rx_kernel_dropped {expected_drops}")));
}

//! Real DPDK, one EAL per test binary: two `DpdkUdpIo` endpoints on the two ends of an in-process
//! `net_memif` link. A resolves B's MAC with ARP, sends B a datagram, B answers through
//! `tx_alloc`/`tx_burst`, A receives the answer; B answers a ping on its own; a truncated frame and
//! one with a bad UDP checksum are counted as drops.
//!
//! Needs DPDK installed and root; fails loudly, never skips, when the EAL cannot start.
#![cfg(feature = "dpdk")]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_pmd::dpdk::{DpdkRx, DpdkUdpIo, Eal, EalConfig, Mempool, Port, PortConfig};
use vigil_pmd::net::{self, LocalAddr};
use vigil_pmd::{Batch, IoCounters, PacketIo, Peer, RxDatagram, TxDatagram};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const PORT_A: u16 = 40_000;
const PORT_B: u16 = 7_000;
const WAIT: Duration = Duration::from_secs(5);

fn port_config(port_id: u16) -> PortConfig {
    PortConfig {
        port_id,
        rx_queues: 1,
        tx_queues: 1,
        rx_ring_size: 512,
        tx_ring_size: 512,
        mtu: None,
        rss: false,
        promiscuous: false,
    }
}

/// Polls both ends until `done` holds or `WAIT` passes; returns whether it held. Datagrams B and A
/// receive meanwhile are collected into their batches.
fn poll_until(
    a: &mut DpdkUdpIo,
    b: &mut DpdkUdpIo,
    rx_a: &mut Batch<DpdkRx>,
    rx_b: &mut Batch<DpdkRx>,
    mut done: impl FnMut(&DpdkUdpIo, &DpdkUdpIo, &Batch<DpdkRx>, &Batch<DpdkRx>) -> bool,
) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        b.rx_burst(rx_b);
        a.rx_burst(rx_a);
        if done(a, b, rx_a, rx_b) {
            return true;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    false
}

#[test]
fn udp_io_over_memif_arp_udp_ping_and_drops() {
    let pid = std::process::id();
    let socket = format!("/tmp/vigil-test-udp-io-{pid}.sock");
    let mac = |m: [u8; 6]| m.map(|b| format!("{b:02x}")).join(":");
    let eal = Eal::init(&EalConfig {
        main_lcore: 0,
        no_pci: true,
        no_huge: true,
        memory_mb: 256,
        file_prefix: format!("vigil-test-udp-io-{pid}"),
        vdevs: vec![
            format!("net_memif0,role=server,socket={socket},id=0,mac={}", mac(MAC_A)),
            format!("net_memif1,role=client,socket={socket},id=0,mac={}", mac(MAC_B)),
        ],
        extra_args: vec!["--no-telemetry".to_owned()],
        log_level: Some("warning".to_owned()),
    })
    .expect("EAL init failed (is DPDK installed and are we root?)");

    let pool_a = Arc::new(Mempool::new(&eal, "pool_a", 2047, 64, Mempool::DEFAULT_DATA_ROOM, 0).unwrap());
    let pool_b = Arc::new(Mempool::new(&eal, "pool_b", 2047, 64, Mempool::DEFAULT_DATA_ROOM, 0).unwrap());
    let port_a = Port::configure(
        &eal,
        &port_config(eal.port_by_name("net_memif0").unwrap()),
        std::slice::from_ref(&pool_a),
    )
    .expect("configure memif server");
    let port_b = Port::configure(
        &eal,
        &port_config(eal.port_by_name("net_memif1").unwrap()),
        std::slice::from_ref(&pool_b),
    )
    .expect("configure memif client");
    port_a.start().unwrap();
    port_b.start().unwrap();
    let t0 = Instant::now();
    assert!(port_a.wait_link_up(Duration::from_secs(10)).unwrap(), "memif server link up");
    assert!(port_b.wait_link_up(Duration::from_secs(10)).unwrap(), "memif client link up");
    eprintln!("memif links up after {:?}", t0.elapsed());
    assert_eq!(port_a.mac_addr().unwrap(), MAC_A);
    assert_eq!(port_b.mac_addr().unwrap(), MAC_B);

    let local_a = LocalAddr { mac: MAC_A, ip: IP_A, udp_port: PORT_A };
    let local_b = LocalAddr { mac: MAC_B, ip: IP_B, udp_port: PORT_B };
    let mut a = DpdkUdpIo::new(port_a.queue(0).unwrap(), pool_a.clone(), local_a, 32);
    let mut b = DpdkUdpIo::new(port_b.queue(0).unwrap(), pool_b.clone(), local_b, 32);
    let mut rx_a = Batch::with_capacity(32);
    let mut rx_b = Batch::with_capacity(32);

    // ARP: A learns B's MAC; B answered the request on its own.
    assert_eq!(a.arp_lookup(IP_B), None);
    assert!(a.send_arp_request(IP_B));
    assert!(
        poll_until(&mut a, &mut b, &mut rx_a, &mut rx_b, |a, _, _, _| a.arp_lookup(IP_B).is_some()),
        "ARP resolution of B within {WAIT:?}"
    );
    assert_eq!(a.arp_lookup(IP_B), Some(MAC_B));
    assert_eq!(b.counters().arp_replies, 1);

    // A -> B: a peer known by IP only; tx_alloc fills in the MAC ARP learned.
    let mut tx_a = Batch::with_capacity(4);
    let mut d = a.tx_alloc(&Peer::from_ip_port(IP_B, PORT_B)).expect("tx buffer");
    assert_eq!(d.peer().mac, MAC_B);
    assert_eq!(d.payload_mut().len(), net::UDP_PAYLOAD_MAX_MTU1500);
    d.payload_mut()[..11].copy_from_slice(b"hello vigil");
    d.set_len(11);
    tx_a.push(d).unwrap();
    assert_eq!(a.tx_burst(&mut tx_a), 1);
    assert!(tx_a.is_empty());
    assert!(poll_until(&mut a, &mut b, &mut rx_a, &mut rx_b, |_, _, _, rx_b| !rx_b.is_empty()), "B receives");
    assert_eq!(rx_b.len(), 1);
    let got = rx_b.drain().next().unwrap();
    assert_eq!(got.payload(), b"hello vigil");
    assert_eq!(got.peer(), Peer { mac: MAC_A, ip: IP_A, port: PORT_A });

    // B -> A: the reply, written in place in a transmit mbuf.
    let mut tx_b = Batch::with_capacity(4);
    let mut r = b.tx_alloc(&got.peer()).expect("tx buffer");
    r.payload_mut()[..4].copy_from_slice(b"pong");
    r.set_len(4);
    drop(got);
    tx_b.push(r).unwrap();
    assert_eq!(b.tx_burst(&mut tx_b), 1);
    assert!(poll_until(&mut a, &mut b, &mut rx_a, &mut rx_b, |_, _, rx_a, _| !rx_a.is_empty()), "A receives");
    let got = rx_a.drain().next().unwrap();
    assert_eq!(got.payload(), b"pong");
    assert_eq!(got.peer(), Peer { mac: MAC_B, ip: IP_B, port: PORT_B });
    drop(got);

    // Ping: an ICMP echo request A -> B is answered by B's rx_burst; A drops the reply (not UDP).
    let mut frame = [0u8; 64];
    let data = b"vigil-ping";
    let icmp_len = net::icmp::write_echo_request(&mut frame[34..], 7, 1, data);
    net::write_eth_header(&mut frame, MAC_B, MAC_A, net::ETHERTYPE_IPV4);
    net::ipv4::write_header(&mut frame[14..34 + icmp_len], 1, IP_A, IP_B);
    assert!(a.send_raw_frame(&frame[..34 + icmp_len]));
    let not_for_us_before = a.counters().rx_not_for_us;
    assert!(
        poll_until(&mut a, &mut b, &mut rx_a, &mut rx_b, |a, b, _, _| b.counters().icmp_echo_replies == 1
            && a.counters().rx_not_for_us > not_for_us_before),
        "B answers the ping and A sees the reply"
    );

    // Malformed: an IPv4 EtherType with a truncated header.
    let mut runt = [0u8; 20];
    net::write_eth_header(&mut runt, MAC_B, MAC_A, net::ETHERTYPE_IPV4);
    runt[14] = 0x45;
    assert!(a.send_raw_frame(&runt));
    assert!(
        poll_until(&mut a, &mut b, &mut rx_a, &mut rx_b, |_, b, _, _| b.counters().rx_malformed == 1),
        "B counts the runt as malformed"
    );

    // Bad checksum: a valid datagram with one payload byte flipped after the headers were written.
    let mut bad = [0u8; net::UDP_PAYLOAD_OFFSET + 8];
    bad[net::UDP_PAYLOAD_OFFSET..].copy_from_slice(b"corrupt!");
    let len = net::write_udp_headers(&mut bad, &local_a, &Peer { mac: MAC_B, ip: IP_B, port: PORT_B }, 8);
    bad[len - 1] ^= 0xFF;
    assert!(a.send_raw_frame(&bad[..len]));
    assert!(
        poll_until(&mut a, &mut b, &mut rx_a, &mut rx_b, |_, b, _, _| b.counters().rx_bad_checksum == 1),
        "B counts the corrupted datagram as a bad checksum"
    );
    assert!(rx_a.is_empty() && rx_b.is_empty(), "no stray datagrams were handed up");

    let ca: IoCounters = a.counters();
    let cb: IoCounters = b.counters();
    eprintln!("A: {ca:?}\nB: {cb:?}");
    assert_eq!(ca.tx_datagrams, 1);
    assert_eq!(cb.tx_datagrams, 1);
    assert_eq!(ca.rx_datagrams, 1);
    assert_eq!(cb.rx_datagrams, 1);
    assert_eq!(cb.rx_packets, 5, "ARP request, datagram, ping, runt, corrupted datagram");
    let stats_b = b.port_stats().unwrap();
    assert!(stats_b.ipackets >= 5);

    // The memif client goes first: a client whose server vanished first has been seen to crash.
    drop(b);
    drop(port_b);
    drop(a);
    drop(port_a);
    assert_eq!(pool_a.in_use(), 0);
    assert_eq!(pool_b.in_use(), 0);
    drop((pool_a, pool_b, eal));
    // rte_eal_cleanup leaves the runtime directory behind; remove it so runs do not pile up.
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/vigil-test-udp-io-{pid}"));
}

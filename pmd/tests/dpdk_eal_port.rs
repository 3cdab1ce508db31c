//! Real DPDK, one EAL per test binary: EAL init (and its refusal to run twice), a mempool and mbuf
//! round trip, lcore registration, and a `net_ring` port looping frames from its tx to its rx.
//!
//! Needs DPDK installed and root (or the rights to create DPDK's runtime files); fails loudly,
//! never skips, when the EAL cannot start.
#![cfg(feature = "dpdk")]

use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_pmd::dpdk::{DpdkError, Eal, EalConfig, Mbuf, Mempool, Port, PortConfig};
use vigil_pmd::Batch;

fn eal_config() -> EalConfig {
    EalConfig {
        main_lcore: 0,
        no_pci: true,
        no_huge: true,
        memory_mb: 256,
        file_prefix: format!("vigil-test-eal-port-{}", std::process::id()),
        // A ring PMD created from EAL arguments uses one ring for rx and tx: a loopback port.
        vdevs: vec!["net_ring0".to_owned()],
        extra_args: vec!["--no-telemetry".to_owned()],
        log_level: Some("warning".to_owned()),
    }
}

fn cpu_affinity() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; set is a valid out pointer of the given size.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(rc, 0, "sched_getaffinity failed");
    // SAFETY: CPU_ISSET only reads the set.
    (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
}

#[test]
fn eal_mempool_mbuf_port_round_trip() {
    let eal = Eal::init(&eal_config()).expect("EAL init failed (is DPDK installed and are we root?)");
    assert!(matches!(Eal::init(&eal_config()), Err(DpdkError::AlreadyInitialised)));

    // Lcore registration on a non-EAL thread: gets an lcore id, gives it back on drop.
    let eal2 = eal.clone();
    let (lcore, before, after) = std::thread::spawn(move || {
        let before = cpu_affinity();
        let guard = eal2.register_current_thread().expect("rte_thread_register");
        let after = cpu_affinity();
        (guard.lcore_id(), before, after)
    })
    .join()
    .unwrap();
    assert_ne!(lcore, vigil_pmd::dpdk::sys::LCORE_ID_ANY);
    eprintln!("registered lcore {lcore}; thread affinity before {before:?}, after {after:?}");
    let main_guard = eal.register_current_thread().expect("main thread is an lcore already");
    assert_eq!(main_guard.lcore_id(), 0);
    drop(main_guard);

    // Mempool and mbuf round trip.
    let pool = Arc::new(
        Mempool::new(&eal, "t_pool", 1023, 32, Mempool::DEFAULT_DATA_ROOM, Mempool::SOCKET_ANY)
            .expect("mempool"),
    );
    assert_eq!(pool.in_use(), 0);
    let mut m = Mbuf::alloc(&pool).expect("mbuf");
    assert_eq!(pool.in_use(), 1);
    assert!(m.is_empty());
    assert_eq!(m.capacity(), usize::from(Mempool::DEFAULT_DATA_ROOM - Mempool::HEADROOM));
    m.room_mut()[..5].copy_from_slice(b"hello");
    m.set_len(5);
    assert_eq!(m.data(), b"hello");
    let raw = m.into_raw();
    // SAFETY: raw came from into_raw just above and is handed straight back.
    let m = unsafe { Mbuf::from_raw(raw) };
    drop(m);
    assert_eq!(pool.in_use(), 0);
    assert!(Mempool::new(&eal, "t_pool", 1023, 32, Mempool::DEFAULT_DATA_ROOM, Mempool::SOCKET_ANY).is_err());

    // Port: configure, start, loop frames through the ring.
    assert!(eal.port_count() >= 1);
    let port_id = eal.port_by_name("net_ring0").expect("net_ring0 exists");
    assert!(eal.port_by_name("no_such_port").is_err());
    let config = PortConfig {
        port_id,
        rx_queues: 1,
        tx_queues: 1,
        rx_ring_size: 256,
        tx_ring_size: 256,
        mtu: None,
        rss: true, // one queue: RSS stays off
        promiscuous: true,
    };
    assert!(Port::configure(&eal, &config, &[]).is_err(), "one pool per rx queue is required");
    let port = Port::configure(&eal, &config, &[Arc::clone(&pool)]).expect("configure");
    assert!(Port::configure(&eal, &config, &[Arc::clone(&pool)]).is_err(), "a port is configured once");
    assert_eq!(port.rss_hf(), 0);
    port.start().expect("start");
    assert!(port.wait_link_up(Duration::from_secs(5)).unwrap(), "net_ring link is up once started");
    let _mac = port.mac_addr().expect("mac");
    let mut queue = port.queue(0).expect("queue 0");
    assert!(port.queue(0).is_err(), "a queue pair is handed out once");
    assert!(port.queue(1).is_err(), "there is no queue 1");

    let mut tx = Batch::with_capacity(8);
    for i in 0..4u8 {
        let mut m = Mbuf::alloc(&pool).unwrap();
        m.room_mut()[..64].fill(i);
        m.set_len(64);
        tx.push(m).unwrap();
    }
    assert_eq!(queue.tx_burst(&mut tx), 4);
    assert!(tx.is_empty());

    let mut rx = Batch::with_capacity(8);
    let deadline = Instant::now() + Duration::from_secs(5);
    while rx.len() < 4 && Instant::now() < deadline {
        queue.rx_burst(&mut rx);
    }
    assert_eq!(rx.len(), 4, "all four frames come back through the ring");
    for (i, m) in rx.as_slice().iter().enumerate() {
        assert_eq!(m.len(), 64);
        assert!(m.data().iter().all(|&b| usize::from(b) == i), "frame {i} in order and intact");
    }
    rx.clear();
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");
    let stats = port.stats().unwrap();
    assert_eq!(stats.opackets, 4);
    assert_eq!(stats.ipackets, 4);

    drop(queue);
    drop(port);
    drop(pool);
    drop(eal);
    // rte_eal_cleanup leaves the runtime directory behind; remove it so runs do not pile up.
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", eal_config().file_prefix));
}

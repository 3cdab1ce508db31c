//! The SPDK block backend (`vigil_pmd::block::spdk`) against SPDK's own NVMe-over-TCP target on
//! loopback, started and stopped by `common::nvmf::NvmfTarget`: no NVMe drive, hugepages or PCI
//! access needed, only an SPDK build (`nvmf_tgt` and its `scripts/rpc.py`, see `common/nvmf.rs`).
//!
//! `PKG_CONFIG_PATH=/usr/local/lib/pkgconfig VIGIL_SPDK_RPC=<spdk>/scripts/rpc.py cargo test
//! --features spdk --test spdk_nvmf_block`. Built only with the `spdk` feature, which asks for it: a
//! missing SPDK fails the test, it is not skipped. SPDK's environment starts once per process, so
//! everything runs in one test: two targets at once (4 KiB and 512-byte sectors), each checked
//! with plain, multi-block and durable (FUA) writes, reads back, a flush, a range check and a
//! second qpair seeing the first's data.
#![cfg(feature = "spdk")]

mod common;

use common::nvmf::NvmfTarget;
use std::sync::Arc;
use vigil_pmd::block::spdk::{SpdkBlockIo, SpdkController, SpdkEnv, SpdkEnvConfig, SpdkError};
use vigil_pmd::block::{blocking, BlockBuf, BlockIo, BlockOp, SubmitError, BLOCK_SIZE};
use vigil_pmd::Batch;

/// The client side's DPDK heap without hugepages: the qpairs' request pools and bounce buffers of
/// the backends below fit many times over.
const CLIENT_MEM_MIB: u32 = 256;

/// A block whose every byte is `seed` mixed with its offset, so misplaced data shows.
fn pattern(blocks: usize, seed: u8) -> BlockBuf {
    let mut b = BlockBuf::new(blocks);
    for (i, x) in b.iter_mut().enumerate() {
        *x = seed ^ (i % 251) as u8;
    }
    b
}

/// Plain, multi-block and durable writes read back, a flush, and a range check on namespace 1.
fn exercise(ctrlr: &Arc<SpdkController>, target: &NvmfTarget) {
    let mut dev = SpdkBlockIo::open_on(ctrlr.clone(), 1, 8, 4).expect("open namespace 1");
    let capacity = target.capacity_bytes() / BLOCK_SIZE as u64;
    assert_eq!(dev.capacity_blocks(), capacity, "namespace size on {}", target.trid());
    assert_eq!(dev.block_size(), BLOCK_SIZE);

    // A fresh malloc bdev reads as zeroes.
    assert!(blocking::read(&mut dev, 3, 1).expect("read").iter().all(|&x| x == 0));
    for lba in 0..4 {
        blocking::write(&mut dev, lba, pattern(1, lba as u8), false).expect("plain write");
    }
    blocking::write(&mut dev, 10, pattern(4, 0xa5), false).expect("4-block write");
    blocking::write(&mut dev, capacity - 1, pattern(1, 0x5a), true).expect("durable write, last block");
    for lba in 0..4 {
        assert_eq!(*blocking::read(&mut dev, lba, 1).expect("read"), *pattern(1, lba as u8), "block {lba}");
    }
    assert_eq!(*blocking::read(&mut dev, 10, 4).expect("read 4"), *pattern(4, 0xa5));
    assert_eq!(*blocking::read(&mut dev, capacity - 1, 1).expect("read last"), *pattern(1, 0x5a));

    let mut out = Batch::with_capacity(4);
    dev.submit_flush(77).expect("flush accepted");
    let c = vigil_pmd::block::memory::wait_one(&mut dev, &mut out);
    assert_eq!((c.tag, c.op, c.result), (77, BlockOp::Flush, Ok(())));

    match dev.submit_write(1, capacity, BlockBuf::new(1), true) {
        Err(SubmitError::OutOfRange { lba, capacity: cap, .. }) => {
            assert_eq!((lba, cap), (capacity, capacity))
        }
        other => panic!("a write past the end was not refused: {other:?}"),
    }
    assert_eq!(dev.qpair_failures(), 0);
    drop(dev);

    // A second qpair on the same controller sees what the first wrote (the data lives in the target).
    let mut again = SpdkBlockIo::open_on(ctrlr.clone(), 1, 2, 4).expect("reopen namespace 1");
    assert_eq!(*blocking::read(&mut again, 10, 4).expect("read 4 again"), *pattern(4, 0xa5));
    assert!(ctrlr.process_admin_completions() >= 0, "admin queue failed on {}", target.trid());

    // The target's default max_queue_depth (128) bounds the I/O queues: refused up front, by name.
    match SpdkBlockIo::open_on(ctrlr.clone(), 1, 128, 1) {
        Err(SpdkError::QueueDepth { queue_depth: 128, max: 127, .. }) => {}
        other => panic!("queue_depth 128 on NVMe/TCP: {other:?}"),
    }
}

#[test]
fn spdk_backend_over_nvmf_tcp_targets() {
    // Targets first, so they are dropped (stopped) after the controllers are detached.
    let started = std::time::Instant::now();
    let four_k = NvmfTarget::start(64, 4096);
    let small = NvmfTarget::start(16, 512);
    eprintln!("two nvmf_tgt up in {:?}: {} and {}", started.elapsed(), four_k.trid(), small.trid());
    assert_ne!(four_k.port(), small.port());
    assert_ne!(four_k.nqn(), small.nqn());

    let env = SpdkEnv::init(&SpdkEnvConfig {
        name: format!("vigil-nvmf-test-{}", std::process::id()),
        no_huge: true,
        mem_size_mb: CLIENT_MEM_MIB,
    })
    .expect("SPDK environment without hugepages");

    for target in [&four_k, &small] {
        let ctrlr = SpdkController::connect(&env, target.trid())
            .unwrap_or_else(|e| panic!("{e}\n--- target output ---\n{}", target.log_tail()));
        assert_eq!(ctrlr.transport_id(), target.trid());
        exercise(&ctrlr, target);
    }
    // The EAL's runtime directory of this process (empty without hugepages); nothing removes it.
    let _ = std::fs::remove_dir(format!("/var/run/dpdk/spdk_pid{}", std::process::id()));
}

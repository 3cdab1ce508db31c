//! The SPDK NVMe block backend against a real (or QEMU-emulated) NVMe controller: the shared
//! conformance checks, durability across a reopen, and many commands in flight.
//!
//! Built only with the `spdk` feature (SPDK installed), and then it needs a controller bound to
//! vfio-pci/uio (SPDK's scripts/setup.sh) and named by `VIGIL_SPDK_TRID`, e.g.
//! `VIGIL_SPDK_TRID="trtype:PCIe traddr:0000:00:04.0" cargo test -p vigil-pmd --features spdk --test
//! block_spdk`; namespace 1 is overwritten. `VIGIL_SPDK_NO_HUGE=1` starts the environment without
//! hugepages. SPDK's environment starts once per process, so everything runs in one test.
//!
//! Without an NVMe drive, SPDK's own NVMe/TCP target serves: `nvmf_tgt --no-huge -s 1024 -m 0x2 -u
//! -r /tmp/t.sock` (with `LD_LIBRARY_PATH=/usr/local/lib` where ldconfig does not know SPDK), then
//! `rpc.py -s /tmp/t.sock` (`PYTHONPATH=<spdk>/python`) with `nvmf_create_transport -t TCP`,
//! `bdev_malloc_create -b Malloc0 64 4096`, `nvmf_create_subsystem NQN -a`,
//! `nvmf_subsystem_add_ns NQN Malloc0`, `nvmf_subsystem_add_listener NQN -t tcp -a 127.0.0.1 -s
//! 4420`, and `VIGIL_SPDK_NO_HUGE=1 VIGIL_SPDK_TRID="trtype:TCP adrfam:IPv4 traddr:127.0.0.1
//! trsvcid:4420 subnqn:NQN"`. The root crate's `tests/spdk_nvmf_block.rs` does all that itself
//! (`tests/common/nvmf.rs`).
#![cfg(feature = "spdk")]

use std::collections::HashSet;
use vigil_pmd::block::memory::{conformance, wait_one};
use vigil_pmd::block::spdk::{SpdkBlockIo, SpdkController, SpdkEnv, SpdkEnvConfig};
use vigil_pmd::block::{BlockBuf, BlockIo, BlockOp};
use vigil_pmd::Batch;

#[test]
fn spdk_namespace_conforms_and_keeps_data() {
    // Built only with `--features spdk`, which asks for this test: without a controller it fails.
    let trid = std::env::var("VIGIL_SPDK_TRID")
        .expect("VIGIL_SPDK_TRID must name the NVMe controller to test (see this file's header)");
    let env = SpdkEnv::init(&SpdkEnvConfig {
        name: format!("vigil-block-test-{}", std::process::id()),
        no_huge: std::env::var_os("VIGIL_SPDK_NO_HUGE").is_some(),
        mem_size_mb: 512,
    })
    .expect("SPDK environment");
    let ctrlr = SpdkController::connect(&env, &trid).expect("attach controller");
    {
        let mut dev = SpdkBlockIo::open_on(ctrlr.clone(), 1, 32, 4).expect("open namespace 1");
        conformance(&mut dev);
        // Many in flight, mixed durable and plain, completing exactly once.
        for i in 0..32u64 {
            let mut b = BlockBuf::new(1);
            b.fill(i as u8);
            dev.submit_write(i, 100 + i, b, i % 2 == 0).expect("accepted");
        }
        let mut out = Batch::with_capacity(8);
        let mut seen = HashSet::new();
        while seen.len() < 32 {
            let c = wait_one(&mut dev, &mut out);
            assert_eq!((c.op, c.lba, c.result.clone()), (BlockOp::Write, 100 + c.tag, Ok(())));
            assert!(seen.insert(c.tag), "tag {} twice", c.tag);
        }
        dev.submit_flush(99).expect("flush accepted");
        assert_eq!(wait_one(&mut dev, &mut out).result, Ok(()));
    }
    // A second qpair on the same controller sees what the first wrote.
    let mut dev = SpdkBlockIo::open_on(ctrlr, 1, 4, 1).expect("reopen namespace 1");
    let mut out = Batch::with_capacity(4);
    dev.submit_read(7, 107, BlockBuf::new(1)).expect("read accepted");
    let c = wait_one(&mut dev, &mut out);
    assert!(c.buf.expect("buffer back").iter().all(|&x| x == 7));
    assert!(matches!(
        SpdkEnv::init(&SpdkEnvConfig { name: "again".into(), no_huge: true, mem_size_mb: 64 }),
        Err(vigil_pmd::block::spdk::SpdkError::EnvAlreadyInitialised)
    ));
    // The EAL's runtime directory of this process (empty without hugepages); nothing removes it.
    let _ = std::fs::remove_dir(format!("/var/run/dpdk/spdk_pid{}", std::process::id()));
}

//! The io_uring block backend against real files: the shared conformance checks, durability across a
//! reopen in both durable modes, many requests in flight, queue-full and out-of-range refusals, and
//! zeros from never-written blocks.
//!
//! Files live in a scratch directory on a real filesystem (tmpfs is refused by the backend): the
//! first of `VIGIL_BLOCK_TEST_DIR`, cargo's per-target temp dir and `/var/tmp` that is not a memory
//! filesystem. Set `VIGIL_BLOCK_TEST_DEVICE=/dev/loopN` to also run the conformance checks on a raw
//! block device (it is overwritten). Every wait is bounded (`wait_one`: 10 s).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vigil_pmd::block::memory::{conformance, wait_one};
use vigil_pmd::block::uring::{DurableMode, UringBlockIo, UringConfig, UringOpenError};
use vigil_pmd::block::{BlockBuf, BlockError, BlockIo, BlockOp, Completion, SubmitError, BLOCK_SIZE};
use vigil_pmd::Batch;

/// A file path in the scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path = scratch_dir().join(format!("vigil-block-{}-{name}.img", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Scratch(path)
    }

    fn config(&self, blocks: u64, queue_depth: u32, durable_mode: DurableMode) -> UringConfig {
        UringConfig { path: self.0.clone(), create_blocks: Some(blocks), queue_depth, durable_mode }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn scratch_dir() -> PathBuf {
    let candidates = [
        std::env::var_os("VIGIL_BLOCK_TEST_DIR").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR"))),
        Some(PathBuf::from("/var/tmp")),
    ];
    for dir in candidates.into_iter().flatten() {
        if std::fs::create_dir_all(&dir).is_ok() && !is_memory_fs(&dir) {
            return dir;
        }
    }
    panic!("no scratch directory on a real filesystem; set VIGIL_BLOCK_TEST_DIR");
}

fn is_memory_fs(dir: &std::path::Path) -> bool {
    std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .map(|o| matches!(String::from_utf8_lossy(&o.stdout).trim(), "tmpfs" | "ramfs"))
        .unwrap_or(false)
}

fn filled(blocks: usize, seed: u8) -> BlockBuf {
    let mut b = BlockBuf::new(blocks);
    for (i, x) in b.iter_mut().enumerate() {
        *x = seed.wrapping_add((i % 251) as u8);
    }
    b
}

/// Polls until `n` completions arrived (bounded: 10 s), checking none arrive beyond them.
fn wait_n<B: BlockIo>(dev: &mut B, n: usize) -> Vec<Completion> {
    let mut out = Batch::with_capacity(dev.queue_depth().max(1));
    let mut got = Vec::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < n {
        dev.poll_completions(&mut out);
        got.extend(out.drain());
        assert!(Instant::now() < deadline, "{} of {n} completions within 10 s", got.len());
    }
    assert_eq!(got.len(), n, "more completions than requests");
    got
}

fn read_back<B: BlockIo>(dev: &mut B, lba: u64, blocks: usize) -> BlockBuf {
    let mut out = Batch::with_capacity(4);
    dev.submit_read(77, lba, BlockBuf::new(blocks)).expect("read accepted");
    let c = wait_one(dev, &mut out);
    assert_eq!((c.tag, c.op, c.lba, c.result), (77, BlockOp::Read, lba, Ok(())));
    c.buf.expect("read returns its buffer")
}

#[test]
fn conforms_in_both_durable_modes() {
    for mode in [DurableMode::Dsync, DurableMode::Flush] {
        let f = Scratch::new(&format!("conform-{mode:?}"));
        let mut dev = UringBlockIo::open(&f.config(64, 8, mode)).expect("open");
        assert_eq!(dev.capacity_blocks(), 64);
        assert_eq!(dev.queue_depth(), 8);
        assert_eq!(dev.block_size(), BLOCK_SIZE);
        conformance(&mut dev);
    }
}

#[test]
fn durable_writes_survive_reopen_in_both_modes() {
    for mode in [DurableMode::Dsync, DurableMode::Flush] {
        let f = Scratch::new(&format!("reopen-{mode:?}"));
        {
            let mut dev = UringBlockIo::open(&f.config(32, 4, mode)).expect("open");
            let mut out = Batch::with_capacity(4);
            dev.submit_write(1, 5, filled(3, 11), true).expect("durable write accepted");
            let c = wait_one(&mut dev, &mut out);
            assert_eq!((c.tag, c.op, c.lba, c.result), (1, BlockOp::Write, 5, Ok(())));
            assert_eq!(dev.in_flight(), 0);
            // A plain write made durable by a later flush.
            dev.submit_write(2, 20, filled(1, 99), false).expect("write accepted");
            assert_eq!(wait_one(&mut dev, &mut out).result, Ok(()));
            dev.submit_flush(3).expect("flush accepted");
            let c = wait_one(&mut dev, &mut out);
            assert_eq!((c.tag, c.op, c.result), (3, BlockOp::Flush, Ok(())));
            assert!(c.buf.is_none());
        }
        // Reopen without create_blocks: the size comes from the file.
        let cfg = UringConfig { create_blocks: None, ..f.config(0, 4, mode) };
        let mut dev = UringBlockIo::open(&cfg).expect("reopen");
        assert_eq!(dev.capacity_blocks(), 32);
        assert!(read_back(&mut dev, 5, 3)[..] == filled(3, 11)[..], "durable write lost ({mode:?})");
        assert!(read_back(&mut dev, 20, 1)[..] == filled(1, 99)[..], "flushed write lost ({mode:?})");
    }
}

#[test]
fn never_written_blocks_read_as_zeros() {
    let f = Scratch::new("zeros");
    let mut dev = UringBlockIo::open(&f.config(16, 2, DurableMode::Dsync)).expect("open");
    let mut buf = BlockBuf::new(2);
    buf.fill(0xAB);
    let mut out = Batch::with_capacity(2);
    dev.submit_read(1, 14, buf).expect("read accepted");
    let c = wait_one(&mut dev, &mut out);
    assert_eq!(c.result, Ok(()));
    assert!(c.buf.expect("buffer back").iter().all(|&x| x == 0));
}

#[test]
fn many_requests_in_flight_complete_exactly_once_with_their_tags() {
    for mode in [DurableMode::Dsync, DurableMode::Flush] {
        const DEPTH: u32 = 64;
        let f = Scratch::new(&format!("many-{mode:?}"));
        let mut dev = UringBlockIo::open(&f.config(256, DEPTH, mode)).expect("open");
        // Mixed: durable and plain writes, a flush in the middle; all queued before one poll.
        for i in 0..u64::from(DEPTH) {
            let tag = 1000 + i;
            if i == 31 {
                dev.submit_flush(tag).expect("flush accepted");
            } else {
                dev.submit_write(tag, i * 2, filled(2, i as u8), i % 3 == 0).expect("write accepted");
            }
        }
        assert_eq!(dev.in_flight(), DEPTH as usize);
        let got = wait_n(&mut dev, DEPTH as usize);
        let mut seen = HashSet::new();
        for c in &got {
            assert!(seen.insert(c.tag), "tag {} completed twice", c.tag);
            assert_eq!(c.result, Ok(()), "tag {}", c.tag);
            let i = c.tag - 1000;
            if i == 31 {
                assert_eq!(c.op, BlockOp::Flush);
            } else {
                assert_eq!((c.op, c.lba), (BlockOp::Write, i * 2));
                assert!(c.buf.as_ref().expect("buffer back")[..] == filled(2, i as u8)[..]);
            }
        }
        assert_eq!(seen.len(), DEPTH as usize);
        assert_eq!(dev.in_flight(), 0);
        let mut out = Batch::with_capacity(8);
        assert_eq!(dev.poll_completions(&mut out), 0, "nothing completes twice");

        // Read everything back, all in flight at once.
        for i in 0..u64::from(DEPTH) {
            dev.submit_read(i, i * 2, BlockBuf::new(2)).expect("read accepted");
        }
        for c in wait_n(&mut dev, DEPTH as usize) {
            assert_eq!((c.op, c.lba, c.result.clone()), (BlockOp::Read, c.tag * 2, Ok(())));
            let got = c.buf.expect("buffer back");
            if c.tag == 31 {
                assert!(got.iter().all(|&x| x == 0));
            } else {
                assert!(got[..] == filled(2, c.tag as u8)[..], "block {} read back wrong", c.tag * 2);
            }
        }
    }
}

#[test]
fn a_small_batch_takes_completions_over_several_polls() {
    let f = Scratch::new("small-batch");
    let mut dev = UringBlockIo::open(&f.config(16, 8, DurableMode::Dsync)).expect("open");
    for i in 0..8 {
        dev.submit_write(i, i, filled(1, 1), false).expect("accepted");
    }
    let mut out = Batch::with_capacity(3);
    let mut tags = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tags.len() < 8 {
        let n = dev.poll_completions(&mut out);
        assert!(n <= 3);
        tags.extend(out.drain().map(|c| c.tag));
        assert!(Instant::now() < deadline);
    }
    tags.sort_unstable();
    assert_eq!(tags, (0..8).collect::<Vec<_>>());
}

#[test]
fn queue_full_hands_the_buffer_back() {
    let f = Scratch::new("full");
    let mut dev = UringBlockIo::open(&f.config(16, 2, DurableMode::Flush)).expect("open");
    dev.submit_write(1, 0, BlockBuf::new(1), true).expect("first accepted");
    dev.submit_read(2, 1, BlockBuf::new(1)).expect("second accepted");
    match dev.submit_write(3, 2, BlockBuf::new(3), false) {
        Err(SubmitError::QueueFull(Some(b))) => assert_eq!(b.blocks(), 3),
        other => panic!("expected QueueFull with the buffer, got {other:?}"),
    }
    match dev.submit_read(4, 2, BlockBuf::new(1)) {
        Err(SubmitError::QueueFull(Some(b))) => assert_eq!(b.blocks(), 1),
        other => panic!("expected QueueFull with the buffer, got {other:?}"),
    }
    assert!(matches!(dev.submit_flush(5), Err(SubmitError::QueueFull(None))));
    assert_eq!(dev.in_flight(), 2);
    let mut tags: Vec<_> = wait_n(&mut dev, 2).into_iter().map(|c| c.tag).collect();
    tags.sort_unstable();
    assert_eq!(tags, vec![1, 2]);
    dev.submit_flush(6).expect("room again");
    assert_eq!(wait_n(&mut dev, 1)[0].tag, 6);
}

#[test]
fn out_of_range_is_refused_with_the_buffer() {
    let f = Scratch::new("range");
    let mut dev = UringBlockIo::open(&f.config(8, 2, DurableMode::Dsync)).expect("open");
    match dev.submit_read(1, 8, BlockBuf::new(1)) {
        Err(SubmitError::OutOfRange { lba, end, capacity, buf }) => {
            assert_eq!((lba, end, capacity, buf.blocks()), (8, 9, 8, 1))
        }
        other => panic!("expected OutOfRange, got {other:?}"),
    }
    match dev.submit_write(2, u64::MAX, BlockBuf::new(1), true) {
        Err(SubmitError::OutOfRange { capacity: 8, .. }) => {}
        other => panic!("expected OutOfRange, got {other:?}"),
    }
    assert_eq!(dev.in_flight(), 0);
    // The last block itself is fine.
    dev.submit_write(3, 7, filled(1, 3), true).expect("last block accepted");
    assert_eq!(wait_n(&mut dev, 1)[0].result, Ok(()));
}

#[test]
fn dropping_with_requests_in_flight_waits_for_them() {
    let f = Scratch::new("drop");
    let mut dev = UringBlockIo::open(&f.config(64, 16, DurableMode::Flush)).expect("open");
    for i in 0..16 {
        dev.submit_write(i, i * 4, filled(4, 7), true).expect("accepted");
    }
    // Submitted to the kernel but not reaped: Drop must wait before freeing the buffers.
    let mut out = Batch::with_capacity(1);
    dev.poll_completions(&mut out);
    drop(out);
    drop(dev);
    let mut dev = UringBlockIo::open(&f.config(64, 2, DurableMode::Flush)).expect("reopen");
    assert!(read_back(&mut dev, 60, 4)[..] == filled(4, 7)[..]);
}

#[test]
fn bad_configurations_fail_with_the_path_named() {
    let f = Scratch::new("bad");
    match UringBlockIo::open(&f.config(8, 0, DurableMode::Dsync)) {
        Err(UringOpenError::QueueDepth(0)) => {}
        other => panic!("{other:?}"),
    }
    let missing = UringConfig { create_blocks: None, ..f.config(8, 4, DurableMode::Dsync) };
    let err = UringBlockIo::open(&missing).expect_err("missing file without create_blocks");
    assert!(err.to_string().contains(&*f.0.to_string_lossy()), "{err}");
    // An empty existing file holds no block.
    std::fs::File::create(&f.0).unwrap();
    assert!(matches!(UringBlockIo::open(&missing), Err(UringOpenError::Empty { bytes: 0, .. })));
    // With create_blocks, an existing file of another size is refused and left as it is: a short
    // log is a lost tail, never room to grow into.
    let sized = f.config(8, 4, DurableMode::Dsync);
    match UringBlockIo::open(&sized) {
        Err(UringOpenError::SizeMismatch { expected: 32768, actual: 0, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::metadata(&f.0).unwrap().len(), 0, "the short file was not extended");
    std::fs::write(&f.0, vec![0u8; 40960]).unwrap();
    assert!(matches!(UringBlockIo::open(&sized), Err(UringOpenError::SizeMismatch { actual: 40960, .. })));
    assert_eq!(std::fs::metadata(&f.0).unwrap().len(), 40960, "the long file was not cut");
    let dir = UringConfig { path: scratch_dir(), ..missing.clone() };
    assert!(UringBlockIo::open(&dir).is_err(), "a directory is no device");
    // tmpfs: refused (older kernels refuse O_DIRECT there; newer accept it but nothing is durable).
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() && is_memory_fs(shm) {
        let path = shm.join(format!("vigil-block-{}.img", std::process::id()));
        let cfg = UringConfig { path: path.clone(), ..f.config(8, 4, DurableMode::Dsync) };
        let err = UringBlockIo::open(&cfg).expect_err("tmpfs refused");
        let _ = std::fs::remove_file(&path);
        assert!(
            matches!(
                err,
                UringOpenError::VolatileFilesystem { .. } | UringOpenError::DirectIoUnsupported { .. }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }
}

#[test]
fn errors_on_an_io_are_reported_not_panicked() {
    // A file that shrank under the backend: the read past its new end comes back short (0 bytes).
    let f = Scratch::new("shrunk");
    let mut dev = UringBlockIo::open(&f.config(8, 2, DurableMode::Dsync)).expect("open");
    std::fs::OpenOptions::new().write(true).open(&f.0).unwrap().set_len(4 * BLOCK_SIZE as u64).unwrap();
    dev.submit_read(1, 6, BlockBuf::new(1)).expect("accepted: the backend still thinks 8 blocks");
    let c = wait_n(&mut dev, 1).pop().unwrap();
    match c.result {
        Err(BlockError::Io(msg)) => assert!(msg.contains("short read"), "{msg}"),
        other => panic!("expected a short read error, got {other:?}"),
    }
    assert!(c.buf.is_some(), "the buffer comes back with the error");
}

/// A loop device over a file of its own, detached (and the file removed) when dropped.
struct LoopDevice {
    device: PathBuf,
    file: PathBuf,
}

impl LoopDevice {
    /// Attaches a new 8 MiB file in /var/tmp (a disk, not tmpfs) to the first free loop device.
    /// Needs root (CI runs as root): fails loudly otherwise.
    fn new() -> Self {
        let file = PathBuf::from(format!("/var/tmp/vigil-block-uring-{}.img", std::process::id()));
        std::fs::write(&file, vec![0u8; 8 << 20]).expect("creating the loop device's file");
        let out = std::process::Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&file)
            .output()
            .expect("running losetup (util-linux)");
        assert!(
            out.status.success(),
            "losetup -f --show {} failed (this test needs root and loop devices): {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let device = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Self { device, file }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup").arg("-d").arg(&self.device).status();
        let _ = std::fs::remove_file(&self.file);
    }
}

#[test]
fn raw_block_device_conforms() {
    // Destructive on the device: `VIGIL_BLOCK_TEST_DEVICE=/dev/...` runs it on a device of yours;
    // without it, on a loop device of its own.
    let mut own_loop = None;
    let path = match std::env::var_os("VIGIL_BLOCK_TEST_DEVICE") {
        Some(dev_path) => PathBuf::from(dev_path),
        None => own_loop.insert(LoopDevice::new()).device.clone(),
    };
    let cfg = UringConfig {
        path: path.clone(),
        create_blocks: Some(8),
        queue_depth: 8,
        durable_mode: DurableMode::Flush,
    };
    let refused = UringBlockIo::open(&cfg);
    assert!(matches!(refused, Err(UringOpenError::CreateOnDevice { .. })), "{refused:?}");
    for durable_mode in [DurableMode::Dsync, DurableMode::Flush] {
        let cfg = UringConfig { create_blocks: None, durable_mode, ..cfg.clone() };
        let mut dev = UringBlockIo::open(&cfg).expect("open block device");
        let bytes = std::fs::metadata("/sys/block")
            .ok()
            .and_then(|_| {
                let name = path.file_name()?.to_str()?.to_owned();
                std::fs::read_to_string(format!("/sys/block/{name}/size")).ok()
            })
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|sectors| sectors * 512);
        if let Some(bytes) = bytes {
            assert_eq!(dev.capacity_blocks(), bytes / BLOCK_SIZE as u64, "BLKGETSIZE64 agrees with sysfs");
        }
        conformance(&mut dev);
    }
}

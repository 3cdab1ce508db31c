//! Recovery time of one partition whose log holds N SET entries (default 10,000,000), on an io_uring
//! `O_DIRECT` file, with and without a snapshot, against reading the same bytes raw from the same
//! file in the same run.
//!
//! What it does, in order (one partition, one core, the server's default log geometry: 4 MiB
//! segments, 64-block group-commit writes, 8 in flight, queue depth 32, `RWF_DSYNC`):
//!
//! 1. **Fill**: `Partition::open` on a fresh file, then N SETs through `Partition::write` (the
//!    server's write path: parse, client table, Raft propose, group commit into the UAL), polled
//!    until every one is acknowledged (durable). Keys: `VIGIL_RECOVERY_KEYS` (default 1,000,000)
//!    distinct 16-byte decimal keys, visited in a scrambled order; values: 16 bytes naming the
//!    entry. The ring is sized for the whole log plus as much again, so that no snapshot is taken
//!    and nothing is recycled (`snapshot_every_entries` is above N too).
//! 2. **Baselines**: the log region's bytes (block 2 up to the block holding the last record) read
//!    sequentially in 1 MiB chunks, with `O_DIRECT` (the reference, ratio 1: the page cache plays no
//!    part) and with plain buffered `std::fs::File` reads after dropping the page cache (root only;
//!    the table says whether caches were dropped). Also `Ual::open` alone (scan and checksums, no
//!    projection) to split the recovery time.
//! 3. **(a)** `Partition::open` with no snapshot file: replays all N entries into the projection.
//! 4. `snapshot_now()` (the snapshot file is written and fsynced, then the log checkpointed), polls
//!    until the checkpoint's superblock write is done, then `VIGIL_RECOVERY_TAIL` (default 100,000)
//!    more SETs.
//! 5. **(b)** `Partition::open` with the snapshot: loads it, replays the tail. Its baseline is the
//!    snapshot file plus the live log region (the segments after the checkpoint) read raw.
//!
//! Correctness is checked after every recovery, outside the timed part, so the bench cannot pass on
//! a broken recovery: entries replayed, the snapshot's index, the number of keys, and the value of
//! every key against the last entry that wrote it.
//!
//! Caches: when the bench can write `/proc/sys/vm/drop_caches` (root), it runs `sync` and drops the
//! page cache before every timed read and every recovery (the UAL reads with `O_DIRECT` anyway; the
//! snapshot file is read through the cache). `VIGIL_BENCH_NO_DROP=1` turns that off.
//!
//! Run: `cargo bench -p vigil --bench recovery` (about 2 GB of disk and a few minutes for 10 M
//! entries; `VIGIL_RECOVERY_ENTRIES=1000000` for a quick run). The directory is `target/recovery-bench`
//! or `VIGIL_BENCH_DIR`; it must be on a real filesystem (not tmpfs). The progress bar of a long
//! replay draws only when stderr is a terminal.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vigil::kv::protocol::{encode_write_body, request_body_len};
use vigil::kv::{ApplyResult, KvLimits, Op};
use vigil::log::{Ual, UalConfig};
use vigil::partition::{Origin, Partition, PartitionConfig, RecoveryReport, Waiter, WriteOutcome};
use vigil::raft::RaftGroupConfig;
use vigil::serve::snapfile::SnapshotFile;
use vigil::wire::{opcode, Status};
use vigil_pmd::block::uring::{DurableMode, UringBlockIo, UringConfig};
use vigil_pmd::{Clock, MonotonicClock, Peer};

const BLOCK: u64 = 4096;
const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 16;
/// The client every SET comes from (sequence numbers = entry number + 1).
const CLIENT: u64 = 7;
/// Bytes of one log record: 32-byte header, 17-byte command header, u16 key length, key, u32 value
/// length, value.
const RECORD_BYTES: u64 = 32 + 17 + 2 + KEY_BYTES as u64 + 4 + VALUE_BYTES as u64;
/// Raw reads are done in chunks of this size.
const CHUNK: usize = 1 << 20;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.replace('_', "").parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

/// Entry `i`: key `perm(i % keys)` as 16 decimal digits, value `i` as 16 hex digits.
struct Workload {
    keys: u64,
    stride: u64,
}

impl Workload {
    fn new(keys: u64) -> Self {
        let gcd = |mut a: u64, mut b: u64| {
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a
        };
        // A multiplier coprime with `keys` visits every key once per `keys` entries, scrambled.
        let mut stride = 0x9E37_79B9 % keys.max(1);
        while keys > 1 && gcd(stride, keys) != 1 {
            stride += 1;
        }
        Self { keys, stride: stride.max(1) }
    }

    fn key(&self, r: u64) -> [u8; KEY_BYTES] {
        let k = (r % self.keys) * self.stride % self.keys;
        let mut out = [0u8; KEY_BYTES];
        out.copy_from_slice(format!("{k:016}").as_bytes());
        out
    }

    fn value(i: u64) -> [u8; VALUE_BYTES] {
        let mut out = [0u8; VALUE_BYTES];
        out.copy_from_slice(format!("{i:016x}").as_bytes());
        out
    }

    /// Distinct keys after `written` entries.
    fn distinct(&self, written: u64) -> u64 {
        written.min(self.keys)
    }

    /// The last entry below `written` that wrote key residue `r`.
    fn last_writer(&self, r: u64, written: u64) -> Option<u64> {
        (r < written).then(|| r + (written - 1 - r) / self.keys * self.keys)
    }
}

fn peer() -> Peer {
    Peer::from_ip_port(std::net::Ipv4Addr::LOCALHOST, 40000)
}

/// Polls until nothing is in flight and the partition serves reads, at most `limit`.
fn settle(p: &mut Partition<UringBlockIo>, clock: &MonotonicClock, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let busy = p.poll(clock.now(), &mut |d| panic!("nobody waits, yet {d:?}"));
        if !busy && p.serves_reads() {
            return;
        }
        assert!(Instant::now() < deadline, "the partition did not settle within {limit:?}: {p:?}");
    }
}

/// Writes entries `from..to` through `Partition::write` and polls until each is acknowledged.
fn fill(p: &mut Partition<UringBlockIo>, clock: &MonotonicClock, w: &Workload, from: u64, to: u64) {
    let mut body = [0u8; 2 + KEY_BYTES + VALUE_BYTES];
    let (mut next, mut acked) = (from, 0u64);
    let mut bad = None;
    while acked < to - from {
        while next < to {
            let (key, value) = (w.key(next), Workload::value(next));
            let op = Op::Set { key: &key, value: &value };
            debug_assert_eq!(request_body_len(&op), body.len());
            encode_write_body(&op, &mut body).expect("the body fits");
            let waiter = Waiter {
                origin: Origin::Client { peer: peer(), client_id: CLIENT, arrived: vigil_pmd::Nanos(0) },
                opcode: opcode::SET,
                request_id: next + 1,
                owner: Default::default(),
            };
            match p.write(waiter, CLIENT, &body) {
                WriteOutcome::Later => next += 1,
                WriteOutcome::Refused(Status::Busy) => break,
                other => panic!("entry {next}: {other:?}"),
            }
        }
        p.poll(clock.now(), &mut |d| {
            if !matches!(d.result, Ok(ApplyResult::Stored { .. })) {
                bad.get_or_insert(d);
            }
            acked += 1;
        });
        if let Some(d) = bad {
            panic!("a SET was not stored: {d:?}");
        }
    }
    settle(p, clock, Duration::from_secs(60));
}

/// Checks the projection against the workload after `written` entries: every key's value.
fn check(p: &Partition<UringBlockIo>, w: &Workload, written: u64) {
    let kv = p.kv();
    assert_eq!(kv.len() as u64, w.distinct(written), "keys after recovery");
    for r in 0..w.keys.min(written) {
        let i = w.last_writer(r, written).expect("r < written");
        let key = w.key(r);
        let Some((value, _version)) = kv.get(&key) else {
            panic!("key {} (last written by entry {i}) is missing", String::from_utf8_lossy(&key))
        };
        assert_eq!(
            value,
            Workload::value(i),
            "key {} after {written} entries",
            String::from_utf8_lossy(&key)
        );
    }
}

/// Drops the page cache (root only); says whether it did.
fn drop_caches() -> bool {
    if std::env::var("VIGIL_BENCH_NO_DROP").is_ok_and(|v| v == "1") {
        return false;
    }
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", b"3\n").is_ok()
}

/// Reads `len` bytes from `offset` sequentially in 1 MiB chunks; O_DIRECT or buffered. Returns the
/// time taken and the bytes read.
fn raw_read(path: &Path, offset: u64, len: u64, direct: bool) -> (Duration, u64) {
    let mut opts = OpenOptions::new();
    opts.read(true);
    if direct {
        opts.custom_flags(libc::O_DIRECT);
    }
    let file = opts.open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut storage = vec![0u8; CHUNK + BLOCK as usize];
    let at = storage.as_ptr().align_offset(BLOCK as usize);
    let buf = &mut storage[at..at + CHUNK];
    let started = Instant::now();
    let (mut pos, end, mut total) = (offset, offset + len, 0u64);
    while pos < end {
        // O_DIRECT: whole blocks; the last chunk is rounded up to a block (and cut at end of file).
        let want = ((end - pos).min(CHUNK as u64)).div_ceil(BLOCK) * BLOCK;
        let n = file.read_at(&mut buf[..want as usize], pos).expect("read");
        if n == 0 {
            break;
        }
        std::hint::black_box(&buf[..n]);
        pos += n as u64;
        total += n as u64;
    }
    (started.elapsed(), total.min(len))
}

/// Reads a whole file through the page cache.
fn read_file(path: &Path) -> (Duration, u64) {
    let started = Instant::now();
    let mut f = File::open(path).expect("open");
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        std::hint::black_box(&buf[..n]);
        total += n as u64;
    }
    (started.elapsed(), total)
}

fn device(path: &Path, cfg: &PartitionConfig) -> UringBlockIo {
    UringBlockIo::open(&UringConfig {
        path: path.to_path_buf(),
        create_blocks: Some(cfg.ual.device_blocks()),
        queue_depth: 32,
        durable_mode: DurableMode::Dsync,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `Ual::open` alone (scan, checksums, index; no projection): its time and the byte range of the
/// live log region on the device, from its first block to the end of the block holding the last
/// record.
fn ual_open_alone(path: &Path, cfg: &PartitionConfig) -> (Duration, u64, u64, u64) {
    let started = Instant::now();
    let (mut ual, report) = Ual::open(device(path, cfg), cfg.ual).expect("Ual::open");
    let took = started.elapsed();
    let first = ual.device_offset(ual.first_lsn()).expect("first record") / BLOCK * BLOCK;
    let last = ual.device_offset(ual.last_lsn()).expect("last record");
    let end = (last / BLOCK + 1) * BLOCK;
    assert!(end > first, "the live region does not wrap (the ring is sized for the whole log)");
    (took, first, end - first, report.records)
}

fn timed_open(
    path: &Path,
    cfg: &PartitionConfig,
    snapshot: SnapshotFile,
    clock: &MonotonicClock,
) -> (Partition<UringBlockIo>, RecoveryReport, Duration, Duration) {
    let started = Instant::now();
    let (mut p, report) =
        Partition::open(0, device(path, cfg), cfg, Some(Box::new(snapshot))).expect("Partition::open");
    let opened = started.elapsed();
    settle(&mut p, clock, Duration::from_secs(60));
    (p, report, opened, started.elapsed())
}

struct Row {
    what: String,
    entries: Option<u64>,
    bytes: u64,
    took: Duration,
    base: Duration,
    note: String,
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| step | entries | bytes | time | entries/s | MB/s | time ÷ raw O_DIRECT read | note |");
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let s = r.took.as_secs_f64();
        let entries = r.entries.map_or("-".into(), group);
        let rate = r.entries.map_or("-".into(), |e| group((e as f64 / s) as u64));
        println!(
            "| {} | {} | {} | {:.3} s | {} | {:.0} | {:.2} | {} |",
            r.what,
            entries,
            group(r.bytes),
            s,
            rate,
            r.bytes as f64 / s / 1e6,
            s / r.base.as_secs_f64(),
            r.note
        );
    }
    println!();
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fs_type(dir: &Path) -> String {
    std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let entries = env_u64("VIGIL_RECOVERY_ENTRIES", 10_000_000);
    let keys = env_u64("VIGIL_RECOVERY_KEYS", 1_000_000);
    let tail = env_u64("VIGIL_RECOVERY_TAIL", 100_000);
    assert!(entries > 0 && keys > 0, "entries and keys must be positive");
    let dir: PathBuf = match std::env::var_os("VIGIL_BENCH_DIR") {
        Some(d) => d.into(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/recovery-bench"),
    };
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let fs = fs_type(&dir);
    assert!(
        !fs.contains("tmpfs") && !fs.contains("ramfs"),
        "{} is on {fs}: O_DIRECT needs a real filesystem",
        dir.display()
    );
    let log_path = dir.join("partition-0.ual");
    let snap = SnapshotFile::new(&dir, 0);
    for f in [log_path.clone(), snap.path().to_path_buf(), dir.join("partition-0.snap.tmp")] {
        let _ = std::fs::remove_file(f);
    }

    // The server's defaults (config.rs) except the ring, sized for everything plus as much again so
    // that no snapshot is due ("half the ring used") and nothing is recycled while filling.
    let segment_blocks = 1024u32;
    let per_block = BLOCK / RECORD_BYTES;
    let blocks = (entries + tail + 16).div_ceil(per_block) + 2;
    let used_segments = blocks.div_ceil(u64::from(segment_blocks)) + 1;
    let segment_count = u32::try_from(2 * used_segments + 8).expect("segment count fits u32");
    let cfg = PartitionConfig {
        ual: UalConfig {
            segment_blocks,
            segment_count,
            write_blocks_max: 64,
            writes_in_flight_max: 8,
            format_if_blank: true,
            atomic_write_bytes: vigil::log::ATOMIC_WRITE_BLOCK,
        },
        raft: RaftGroupConfig::default(),
        projections: Default::default(),
        kv: KvLimits {
            key_bytes_max: 256,
            value_bytes_max: 1024,
            keys_max: (keys as usize).max(10_000_000),
            data_bytes_max: 4 << 30,
            dedup_clients_max: 65536,
            sequence_ahead_max: vigil::kv::SEQUENCE_AHEAD_MAX_DEFAULT,
        },
        snapshot_every_entries: entries + tail + 1_000_000,
        node_id: 1,
        voters: vec![1],
        batch: vigil::partition::batch::BatchLimits::default(),
        inflight_bytes_max: vigil::config::INFLIGHT_BYTES_DEFAULT,
        follower_read_staleness_ns: 0,
        quiesce_idle: true,
    };
    let w = Workload::new(keys);
    let clock = MonotonicClock::new();
    println!(
        "recovery bench: {} entries over {} keys ({KEY_BYTES}-byte keys, {VALUE_BYTES}-byte values, {RECORD_BYTES}-byte records), \
         tail {} entries; log {} ({fs}), ring {segment_count} x {} MiB segments",
        group(entries),
        group(keys),
        group(tail),
        log_path.display(),
        (u64::from(segment_blocks) * BLOCK) >> 20
    );

    // 1. Fill through the write path.
    let started = Instant::now();
    let (mut p, _) =
        Partition::open(0, device(&log_path, &cfg), &cfg, Some(Box::new(snap.clone()))).expect("open fresh");
    settle(&mut p, &clock, Duration::from_secs(10));
    fill(&mut p, &clock, &w, 0, entries);
    let fill_time = started.elapsed();
    assert_eq!(p.counters().snapshots, 0, "no snapshot while filling: {:?}", p.counters());
    assert_eq!(p.counters().applied, entries);
    check(&p, &w, entries);
    let u = p.raft().store().ual().counters();
    println!(
        "filled in {:.1} s through Partition::write: {} durable SETs/s, {} group-commit writes ({:.0} entries, {:.1} blocks each)",
        fill_time.as_secs_f64(),
        group((entries as f64 / fill_time.as_secs_f64()) as u64),
        group(u.writes),
        entries as f64 / u.writes as f64,
        u.write_blocks as f64 / u.writes as f64
    );
    drop(p.into_device());

    // 2. Baselines over the whole log: UAL scan alone, raw reads.
    let mut rows = Vec::new();
    let dropped = drop_caches();
    let caches = if dropped { "caches dropped" } else { "caches NOT dropped" };
    let (scan_time, region_start, log_bytes, records) = ual_open_alone(&log_path, &cfg);
    drop_caches();
    let (direct_a, read_a) = raw_read(&log_path, region_start, log_bytes, true);
    assert_eq!(read_a, log_bytes);
    drop_caches();
    let (buffered_a, _) = raw_read(&log_path, region_start, log_bytes, false);
    rows.push(Row {
        what: "raw read of the log, O_DIRECT, 1 MiB".into(),
        entries: None,
        bytes: log_bytes,
        took: direct_a,
        base: direct_a,
        note: "baseline".into(),
    });
    rows.push(Row {
        what: "raw read of the log, buffered, 1 MiB".into(),
        entries: None,
        bytes: log_bytes,
        took: buffered_a,
        base: direct_a,
        note: caches.into(),
    });
    rows.push(Row {
        what: "`Ual::open` alone (scan, CRC, index)".into(),
        entries: Some(records),
        bytes: log_bytes,
        took: scan_time,
        base: direct_a,
        note: "no projection".into(),
    });

    // 3. (a) Recovery without a snapshot: replay everything.
    drop_caches();
    let (mut p, report, open_a, serving_a) = timed_open(&log_path, &cfg, snap.clone(), &clock);
    println!("(a) {report}");
    assert_eq!(report.snapshot_index, None);
    assert_eq!(report.replayed, entries, "(a) replays every SET");
    assert_eq!(report.keys as u64, w.distinct(entries));
    check(&p, &w, entries);
    let reads_a = p.raft().store().ual().counters().reads;
    rows.push(Row {
        what: "**(a) `Partition::open`, no snapshot**".into(),
        entries: Some(report.replayed),
        bytes: log_bytes,
        took: open_a,
        base: direct_a,
        note: format!(
            "{reads_a} blocking device reads (2 superblocks, then each of the {} segments read by the scan and \
             again by the replay, but the 2 last, kept in memory); serving after {:.3} s",
            log_bytes.div_ceil(u64::from(segment_blocks) * BLOCK),
            serving_a.as_secs_f64()
        ),
    });

    // 4. Snapshot, checkpoint, then the tail.
    let before = p.counters().snapshots;
    p.snapshot_now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.counters().snapshots == before {
        p.poll(clock.now(), &mut |d| panic!("{d:?}"));
        assert!(Instant::now() < deadline, "the checkpoint was never accepted: {:?}", p.counters());
    }
    // The checkpoint's superblock write is one 4 KiB write; polling 200 ms reaps it. Step 5 checks
    // it landed: the scan starts at the checkpoint, not at the log's beginning.
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        p.poll(clock.now(), &mut |d| panic!("{d:?}"));
    }
    let snapshot_index = p.router().applied_lsn();
    fill(&mut p, &clock, &w, entries, entries + tail);
    check(&p, &w, entries + tail);
    drop(p.into_device());

    // 5. (b) Recovery from the snapshot and the tail, and its baseline.
    let snap_bytes = std::fs::metadata(snap.path()).expect("the snapshot file").len();
    drop_caches();
    let (scan_b, tail_start, tail_bytes, tail_records) = ual_open_alone(&log_path, &cfg);
    drop_caches();
    let (snap_read, got) = read_file(snap.path());
    assert_eq!(got, snap_bytes);
    drop_caches();
    let (direct_b, read_b) = raw_read(&log_path, tail_start, tail_bytes, true);
    assert_eq!(read_b, tail_bytes);
    let base_b = snap_read + direct_b;
    rows.push(Row {
        what: "raw read of snapshot file (buffered) + live log (O_DIRECT)".into(),
        entries: None,
        bytes: snap_bytes + tail_bytes,
        took: base_b,
        base: base_b,
        note: format!(
            "baseline of (b): {} + {} bytes, {:.3} + {:.3} s, {caches}",
            group(snap_bytes),
            group(tail_bytes),
            snap_read.as_secs_f64(),
            direct_b.as_secs_f64()
        ),
    });
    rows.push(Row {
        what: "`Ual::open` alone, after the checkpoint".into(),
        entries: Some(tail_records),
        bytes: tail_bytes,
        took: scan_b,
        base: base_b,
        note: "no projection".into(),
    });
    drop_caches();
    let (p, report, open_b, serving_b) = timed_open(&log_path, &cfg, snap.clone(), &clock);
    println!("(b) {report}");
    assert_eq!(report.snapshot_index, Some(snapshot_index), "(b) loads the snapshot");
    assert_eq!(report.replayed, tail, "(b) replays the tail only");
    assert!(
        report.log.records < tail + 2 * u64::from(segment_blocks) * per_block,
        "(b) the scan starts at the checkpoint, so the checkpoint was durable: {report}"
    );
    check(&p, &w, entries + tail);
    rows.push(Row {
        what: "**(b) `Partition::open`, snapshot + tail**".into(),
        entries: Some(report.replayed),
        bytes: snap_bytes + tail_bytes,
        took: open_b,
        base: base_b,
        note: format!(
            "snapshot of {} keys at index {}; serving after {:.3} s; {:.4} × (a)",
            group(report.keys as u64),
            group(snapshot_index),
            serving_b.as_secs_f64(),
            open_b.as_secs_f64() / open_a.as_secs_f64()
        ),
    });
    drop(p);
    print_table(&rows);
    println!(
        "page cache: {}; checks passed: entries replayed, snapshot index, key count, every key's value.",
        if dropped {
            "dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every timed step"
        } else {
            "not dropped (not root, or VIGIL_BENCH_NO_DROP=1); O_DIRECT reads bypass it anyway"
        }
    );
    if std::env::var("VIGIL_BENCH_KEEP").is_err() {
        let _ = std::fs::remove_file(&log_path);
        let _ = std::fs::remove_file(snap.path());
    }
}

//! The Unified Append Log under the simulator's disk, crashed at any point.
//!
//! For each seed a driver appends random-size records with non-decreasing random terms, calls
//! `flush_step` and `poll`, advances the virtual clock, checkpoints now and then (so the ring wraps
//! and segments are recycled), and remembers every record `durable_lsn()` has covered (acknowledged).
//! At a random step it pulls the power (`SimDisk::crash`: in-flight writes lost, landed or torn at
//! sector granularity, possibly scattered), reopens, and checks:
//! - every acknowledged record at or past the recovered `first_lsn` is there, byte for byte, with
//!   its term and kind; every recovered record is one this run appended (no stale one comes back);
//! - lsns are contiguous; `first_lsn` never moves back across opens nor past the snapshot;
//! - the `OpenReport` agrees with the log (records, last lsn and term, a cut only for Torn/Gap);
//! - a second crash-and-reopen of the recovered log finds exactly the same log and no cut (open
//!   erased all the debris the crash left);
//! - each seed draws the device's atomic write unit, 512 or 4096 bytes, for both the disk (the unit
//!   a torn write is cut at) and the log (`atomic_write_bytes`); with 4096 a crash never makes a
//!   record fail its checksum (no `Torn` stop at all: a torn write shows as End, Stale or Gap),
//!   and a flipped bit in an acknowledged record that nothing claims durable after the crash (the
//!   last group commits) is refused as corruption at its lsn, after which the operator's repair
//!   (`accept_loss_from`) cuts it;
//!
//! then goes on appending (several crash cycles per seed). A second test turns write errors on: the
//! log must poison itself (every call `LogError::Io`, `durable_lsn` frozen) and never acknowledge a
//! record whose write failed (a failed write lands a seeded subset of its blocks, possibly none, so
//! a wrongly acknowledged record is missing after the crash).
//!
//! Seeds: `VIGIL_SIM_SEED=x` reruns one seed; `VIGIL_SIM_SEEDS=n` runs n seeds (default 1000, about a
//! second). A failure prints the seed and the command replaying it. `--nocapture` prints what was
//! exercised (crashes, torn writes, scan stops, poisoned runs).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use vigil::log::{
    LogError, Lsn, OpenReport, RecoverOptions, ScanStop, Ual, UalConfig, ATOMIC_WRITE_BLOCK,
    ATOMIC_WRITE_SECTOR,
};
use vigil_pmd::block::memory::MemoryBlockIo;
use vigil_pmd::block::BLOCK_SIZE;
use vigil_pmd::sim::{SimClock, SimDisk, SimDiskConfig, SimDiskFaults, SplitMix64};
use vigil_pmd::Clock;

const DEFAULT_SEEDS: u64 = 1000;

thread_local! {
    /// What the runs exercised (printed with `--nocapture`, to see the faults really happen).
    static STATS: RefCell<BTreeMap<String, u64>> = const { RefCell::new(BTreeMap::new()) };
}

fn count(what: impl Into<String>, n: u64) {
    STATS.with(|s| *s.borrow_mut().entry(what.into()).or_default() += n);
}

/// The log's config for a device that writes `atomic` bytes whole.
fn ual_config(atomic: u32) -> UalConfig {
    UalConfig {
        segment_blocks: 8,
        segment_count: 6,
        write_blocks_max: 4,
        writes_in_flight_max: 3,
        format_if_blank: true,
        atomic_write_bytes: atomic,
    }
}

/// The seed's atomic write unit, 512 or 4096, from a generator of its own (so it shifts no other
/// draw of the seed).
fn atomic_unit(seed: u64) -> u32 {
    if SplitMix64::new(seed ^ 0x0A70_41C0_0000).chance(0.5) {
        ATOMIC_WRITE_BLOCK
    } else {
        ATOMIC_WRITE_SECTOR
    }
}

/// `faults` on a disk that tears writes at `atomic` bytes.
fn tearing_at(atomic: u32, faults: SimDiskFaults) -> SimDiskFaults {
    SimDiskFaults { torn_sector_bytes: atomic as usize, ..faults }
}

fn disk_config(atomic: u32, faults: SimDiskFaults) -> SimDiskConfig {
    SimDiskConfig {
        faults: tearing_at(atomic, faults),
        ..SimDiskConfig::new(ual_config(atomic).device_blocks())
    }
}

/// One record as appended: (term, kind, payload), at index lsn - 1.
type Model = Vec<(u64, u8, Vec<u8>)>;

/// Runs `f(seed)` for the configured seeds; on a panic, prints the seed and how to replay it.
fn for_seeds(test: &str, salt: u64, f: impl Fn(u64)) {
    let seeds: Vec<u64> = match std::env::var("VIGIL_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("VIGIL_SIM_SEED is a u64")],
        Err(_) => {
            let n = std::env::var("VIGIL_SIM_SEEDS").map_or(DEFAULT_SEEDS, |s| s.parse().expect("a count"));
            (0..n).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt).collect()
        }
    };
    for seed in seeds {
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| f(seed))) {
            eprintln!(
                "\n*** {test} failed at seed {seed}\n*** replay: VIGIL_SIM_SEED={seed} \
                 cargo test --test sim_ual_crash {test} -- --nocapture\n"
            );
            std::panic::resume_unwind(e);
        }
    }
    STATS.with(|s| eprintln!("{test}: {:?}", s.borrow()));
}

/// The driver's state across crash cycles.
struct Run {
    rng: SplitMix64,
    clock: SimClock,
    model: Model,
    /// The highest lsn `durable_lsn()` has reported (acknowledged) in this incarnation or recovered.
    acked: Lsn,
    /// `first_lsn` found by the previous open.
    first_lsn: Lsn,
    epoch: u32,
    /// The device's atomic write unit (the disk's tear unit and the log's `atomic_write_bytes`).
    atomic: u32,
}

impl Run {
    fn payload(&mut self) -> Vec<u8> {
        // Mostly small records, some near a block, a few of every size up to the limit.
        let len = match self.rng.below(10) {
            0..=5 => self.rng.range(0, 100),
            6..=8 => self.rng.range(100, 1500),
            _ => self.rng.range(1500, vigil::log::PAYLOAD_MAX as u64),
        } as usize;
        let mut p = vec![0; len];
        self.rng.fill(&mut p);
        p
    }

    /// Appends, flushes, polls and checkpoints for `steps` steps, checking `durable_lsn` as it goes.
    /// Returns the first device error, if one poisoned the log.
    fn drive(&mut self, ual: &mut Ual<SimDisk>, steps: u64) -> Option<LogError> {
        for _ in 0..steps {
            for _ in 0..self.rng.below(5) {
                let term = ual.last_term() + u64::from(self.rng.chance(0.03));
                let kind = self.rng.below(256) as u8;
                let payload = self.payload();
                match ual.append(term, kind, &payload) {
                    Ok(lsn) => {
                        assert_eq!(lsn, self.model.len() as u64 + 1, "lsns are contiguous");
                        self.model.push((term, kind, payload));
                    }
                    Err(LogError::Busy | LogError::Full) => break,
                    Err(e @ LogError::Io(_)) => return Some(e),
                    Err(e) => panic!("append: {e}"),
                }
            }
            if self.rng.chance(0.8) {
                if let Err(e) = ual.flush_step() {
                    return Some(e);
                }
            }
            self.clock.advance(self.rng.range(0, 60_000));
            if let Err(e) = ual.poll(self.clock.now()) {
                return Some(e);
            }
            let d = ual.durable_lsn();
            assert!(d >= self.acked, "durable_lsn went back from {} to {d}", self.acked);
            assert!(d <= ual.last_lsn());
            self.acked = d;
            if self.rng.chance(0.08) && self.acked >= 1 {
                let (snap, _) = ual.snapshot();
                let lsn = self.rng.range(snap.max(self.acked.saturating_sub(20)), self.acked);
                if lsn >= 1 {
                    let term = self.model[lsn as usize - 1].0;
                    match ual.checkpoint(lsn, term) {
                        Ok(()) | Err(LogError::Busy) => {}
                        Err(e @ LogError::Io(_)) => return Some(e),
                        Err(e) => panic!("checkpoint({lsn}): {e}"),
                    }
                }
            }
        }
        None
    }

    /// Checks a freshly opened log against the model; returns its records' lsns range.
    fn verify_open(&mut self, ual: &mut Ual<SimDisk>, rep: &OpenReport, what: &str) {
        let (first, last) = (rep.first_lsn, rep.last_lsn);
        assert_eq!((ual.first_lsn(), ual.last_lsn()), (first, last), "{what}: report vs log");
        assert_eq!(ual.durable_lsn(), last, "{what}: everything recovered is durable");
        assert!(rep.epoch > self.epoch, "{what}: epoch {} not above {}", rep.epoch, self.epoch);
        assert!(first >= self.first_lsn, "{what}: first_lsn went back from {} to {first}", self.first_lsn);
        let (snap, snap_term) = ual.snapshot();
        assert!(first <= snap + 1, "{what}: first_lsn {first} past snapshot {snap} + 1");
        assert!(snap <= self.acked, "{what}: snapshot {snap} past the acknowledged {}", self.acked);
        assert!(
            last >= self.acked || self.acked < first,
            "{what}: acknowledged lsn {} lost (recovered {first}..={last}, {rep:?})",
            self.acked
        );
        assert!(last <= self.model.len() as u64, "{what}: lsn {last} was never appended");
        assert_eq!(rep.records, last + 1 - first, "{what}: record count");
        let want_term = if last >= first { self.model[last as usize - 1].0 } else { snap_term };
        assert_eq!(rep.last_term, want_term, "{what}: last_term");
        match rep.stop {
            ScanStop::Torn | ScanStop::Gap => {
                assert_eq!(rep.truncated_at_lsn, Some(last + 1), "{what}: cut lsn {rep:?}")
            }
            _ => assert_eq!((rep.truncated_at_lsn, rep.truncated_bytes), (None, 0), "{what}: {rep:?}"),
        }
        let mut expect = first;
        let model = &self.model;
        let n = ual
            .replay(first, last, |r| {
                assert_eq!(r.meta.lsn, expect, "{what}: lsns contiguous");
                let (term, kind, payload) = &model[r.meta.lsn as usize - 1];
                assert_eq!((r.meta.term, r.meta.kind), (*term, *kind), "{what}: lsn {} meta", r.meta.lsn);
                assert!(r.payload == &payload[..], "{what}: lsn {} payload differs", r.meta.lsn);
                expect += 1;
            })
            .unwrap_or_else(|e| panic!("{what}: replay {first}..={last}: {e}"));
        assert_eq!(n, last + 1 - first, "{what}: replayed count");
    }

    /// With 4096-byte atomicity, after a crash: flips a bit of an acknowledged record that nothing
    /// claims durable (found by recovering an undamaged copy); the open must refuse it as
    /// corruption at its lsn; then the operator accepts that loss (`vigil repair --accept-loss`).
    /// Returns the repaired disk and the acknowledged lsn that still must survive.
    fn flip_unclaimed_and_repair(&mut self, disk: SimDisk, acked: Lsn) -> (SimDisk, Lsn) {
        let cfg = ual_config(self.atomic);
        let image = disk.volatile_image();
        let mut copy = MemoryBlockIo::new((image.len() / BLOCK_SIZE) as u64, 8);
        copy.bytes_mut().copy_from_slice(&image);
        let (mut ual, rep) = Ual::open(copy, cfg).expect("the undamaged crash image opens");
        let from = (rep.durable_watermark + 1).max(ual.first_lsn()).max(ual.snapshot().0 + 1);
        if from > acked {
            count("unclaimed_acked_none", 1);
            return (disk, acked);
        }
        let lsn = self.rng.range(from, acked);
        let at = ual.device_offset(lsn).unwrap()
            + self.rng.below(32 + self.model[lsn as usize - 1].2.len() as u64);
        let (lba, bit) =
            (at / BLOCK_SIZE as u64, (at % BLOCK_SIZE as u64) as usize * 8 + self.rng.below(8) as usize);
        let mut disk = disk;
        disk.flip_bit(lba, bit);
        let damaged = disk.volatile_image();
        match Ual::open(disk, cfg) {
            Err(LogError::Corruption(c)) => {
                assert_eq!(
                    c.first_bad_lsn, lsn,
                    "acknowledged lsn {lsn} flipped (watermark {}): {c}",
                    rep.durable_watermark
                );
            }
            Err(e) => panic!("acknowledged unclaimed lsn {lsn} flipped: {e}"),
            Ok((_, r)) => panic!("acknowledged unclaimed lsn {lsn} flipped, yet it opened: {r:?}"),
        }
        count("unclaimed_acked_flips_refused", 1);
        let disk = SimDisk::from_image(
            disk_config(self.atomic, SimDiskFaults::none()),
            self.clock.clone(),
            self.rng.next_u64(),
            damaged,
        );
        let opts = RecoverOptions { accept_loss_from: Some(lsn), ..RecoverOptions::default() };
        let (ual, repaired) = Ual::recover(disk, cfg, opts).expect("repair").commit().expect("repair commit");
        assert_eq!((repaired.last_lsn, repaired.truncated_at_lsn), (lsn - 1, Some(lsn)), "{repaired:?}");
        // The operator accepted the loss from `lsn` on.
        self.acked = lsn - 1;
        let disk = ual.into_device();
        disk.faults_handle().set(SimDiskFaults::none());
        (disk, lsn - 1)
    }

    /// Crash, reopen, verify; then crash the idle recovered log and reopen again: same log, no cut.
    fn crash_and_recover(&mut self, ual: Ual<SimDisk>, faults: SimDiskFaults) -> Ual<SimDisk> {
        let acked_at_crash = self.acked;
        let disk = ual.into_device();
        disk.faults_handle().set(tearing_at(self.atomic, faults));
        let (disk, crash) = {
            let mut d = disk;
            d.crash_with_report()
        };
        count("crashes", 1);
        count("crash_in_flight_writes", crash.in_flight_writes);
        count("crash_torn", crash.torn);
        count("crash_lost", crash.lost);
        count("records_acked", self.acked);
        let (disk, acked_at_crash) = if self.atomic == ATOMIC_WRITE_BLOCK && self.rng.chance(0.3) {
            self.flip_unclaimed_and_repair(disk, acked_at_crash)
        } else {
            (disk, acked_at_crash)
        };
        let (mut ual, rep) = Ual::open(disk, ual_config(self.atomic)).expect("reopen after crash");
        self.verify_open(&mut ual, &rep, "after crash");
        count(format!("stop_{:?}_atomic_{}", rep.stop, self.atomic), 1);
        if self.atomic == ATOMIC_WRITE_BLOCK {
            // Whole blocks only: no record fails its checksum after a crash.
            assert_ne!(rep.stop, ScanStop::Torn, "a crash tore a 4 KiB block: {rep:?}");
        }
        count("records_past_ack_recovered", rep.last_lsn.saturating_sub(acked_at_crash));
        count("records_appended_lost", (self.model.len() as u64).saturating_sub(rep.last_lsn));
        count("checkpointed_first_lsn_moves", u64::from(rep.first_lsn > self.first_lsn));
        self.model.truncate(rep.last_lsn as usize);
        self.acked = rep.last_lsn.max(acked_at_crash.min(rep.first_lsn.saturating_sub(1)));
        self.first_lsn = rep.first_lsn;
        self.epoch = rep.epoch;

        let disk = ual.into_device().crash();
        let (mut ual, rep2) = Ual::open(disk, ual_config(self.atomic)).expect("second reopen");
        self.verify_open(&mut ual, &rep2, "second reopen");
        assert_eq!((rep2.first_lsn, rep2.last_lsn), (rep.first_lsn, rep.last_lsn), "the log moved");
        // Open erases every block the writes in flight at the crash can have reached
        // (writes_in_flight_max × write_blocks_max from the cut, across segments), so the idle
        // recovered log holds no debris that could be cut again.
        assert!(
            !matches!(rep2.stop, ScanStop::Torn | ScanStop::Gap),
            "the cut came back: {rep:?} then {rep2:?}"
        );
        self.epoch = rep2.epoch;
        ual
    }
}

fn start(seed: u64, faults: SimDiskFaults) -> (Run, Ual<SimDisk>) {
    let mut rng = SplitMix64::new(seed);
    let clock = SimClock::new();
    let atomic = atomic_unit(seed);
    count(format!("seeds_atomic_{atomic}"), 1);
    let disk = SimDisk::new(disk_config(atomic, faults), clock.clone(), rng.next_u64());
    let (ual, rep) = Ual::open(disk, ual_config(atomic)).expect("format");
    assert!(rep.formatted);
    let run = Run { rng, clock, model: Vec::new(), acked: 0, first_lsn: 1, epoch: rep.epoch, atomic };
    (run, ual)
}

#[test]
fn acknowledged_records_survive_crashes_at_any_point() {
    for_seeds("acknowledged_records_survive_crashes_at_any_point", 0, |seed| {
        let faults = SimDiskFaults::crashes();
        let (mut run, mut ual) = start(seed, faults);
        let cycles = run.rng.range(2, 5);
        for _ in 0..cycles {
            let steps = run.rng.range(1, 300);
            if let Some(e) = run.drive(&mut ual, steps) {
                panic!("no write errors are injected, yet: {e}");
            }
            ual = run.crash_and_recover(ual, faults);
        }
    });
}

#[test]
fn failed_writes_poison_the_log_and_are_never_acknowledged() {
    for_seeds("failed_writes_poison_the_log_and_are_never_acknowledged", 0xFA11, |seed| {
        let (mut run, mut ual) = start(seed, SimDiskFaults::none());
        // Write errors only after the format (open's own writes would just fail open).
        let handle = ual.device().faults_handle();
        handle.set(tearing_at(run.atomic, SimDiskFaults { write_error: 0.05, ..SimDiskFaults::crashes() }));
        let steps = run.rng.range(50, 400);
        let err = run.drive(&mut ual, steps);
        if let Some(e) = err {
            count("poisoned_runs", 1);
            assert!(matches!(e, LogError::Io(_)), "{e}");
            assert!(ual.device().counters().write_errors > 0, "an Io error without an injected fault");
            let frozen = ual.durable_lsn();
            for _ in 0..20 {
                run.clock.advance(100_000);
                assert!(matches!(ual.poll(run.clock.now()), Err(LogError::Io(_))));
                assert!(matches!(ual.flush_step(), Err(LogError::Io(_))));
                assert!(matches!(ual.append(ual.last_term(), 0, b"x"), Err(LogError::Io(_))));
                assert_eq!(ual.durable_lsn(), frozen, "durable_lsn moved after poisoning");
            }
            // The failing poll may have reaped good completions first: what it made durable
            // before the failure counts as acknowledged (and must survive).
            assert!(frozen >= run.acked);
            run.acked = frozen;
        }
        // Recovery (with errors off) keeps every acknowledged record.
        let mut ual = run.crash_and_recover(ual, SimDiskFaults::crashes());
        if run.drive(&mut ual, 100).is_some() {
            panic!("no write errors after recovery");
        }
        run.crash_and_recover(ual, SimDiskFaults::crashes());
    });
}

/// The same seed drives the same run: the recovered logs and the disks' counters agree.
#[test]
fn a_seed_replays_exactly() {
    let once = |seed| {
        let (mut run, mut ual) = start(seed, SimDiskFaults::crashes());
        run.drive(&mut ual, 200);
        let ual = run.crash_and_recover(ual, SimDiskFaults::crashes());
        (run.model.len(), run.acked, ual.last_lsn(), ual.device().volatile_image().to_vec())
    };
    assert_eq!(once(11), once(11));
}

//! `Ual::reset_to_snapshot`: the log restarts empty after a snapshot received from elsewhere, the
//! metadata commits with it, appends go on after it across reopens; and a crash after any number
//! of its writes (the next one lost, or torn at every sector) reopens as the old log and metadata
//! or the new ones, never a mix, never a corruption report, with a ring that had free segments
//! and with a full one.

use super::*;
use std::collections::VecDeque;
use vigil_pmd::block::{BlockBuf, BlockIo, BlockOp, Completion, SubmitError};

/// A memory device that loses power after `writes_left` writes: the next write lands only its
/// first `torn_bytes` bytes, every later one nothing; all of them complete as if they landed (the
/// program runs on, its writes go nowhere: the device image is the crash image).
struct CrashDisk {
    dev: MemoryBlockIo,
    writes_left: Option<u64>,
    torn_bytes: usize,
    /// Writes submitted (landed or not).
    writes: u64,
    swallowed: VecDeque<Completion>,
}

impl CrashDisk {
    fn new(dev: MemoryBlockIo, writes_left: Option<u64>, torn_bytes: usize) -> Self {
        Self { dev, writes_left, torn_bytes, writes: 0, swallowed: VecDeque::new() }
    }
}

impl BlockIo for CrashDisk {
    fn block_size(&self) -> usize {
        self.dev.block_size()
    }
    fn capacity_blocks(&self) -> u64 {
        self.dev.capacity_blocks()
    }
    fn queue_depth(&self) -> usize {
        self.dev.queue_depth()
    }
    fn in_flight(&self) -> usize {
        self.dev.in_flight() + self.swallowed.len()
    }
    fn submit_write(&mut self, tag: u64, lba: u64, buf: BlockBuf, durable: bool) -> Result<(), SubmitError> {
        self.writes += 1;
        match self.writes_left {
            Some(0) => {
                let at = lba as usize * BLOCK_SIZE;
                let n = std::mem::take(&mut self.torn_bytes).min(buf.len());
                self.dev.bytes_mut()[at..at + n].copy_from_slice(&buf[..n]);
                self.swallowed.push_back(Completion {
                    tag,
                    op: BlockOp::Write,
                    lba,
                    result: Ok(()),
                    buf: Some(buf),
                });
                Ok(())
            }
            Some(ref mut left) => {
                *left -= 1;
                self.dev.submit_write(tag, lba, buf, durable)
            }
            None => self.dev.submit_write(tag, lba, buf, durable),
        }
    }
    fn submit_read(&mut self, tag: u64, lba: u64, buf: BlockBuf) -> Result<(), SubmitError> {
        self.dev.submit_read(tag, lba, buf)
    }
    fn submit_flush(&mut self, tag: u64) -> Result<(), SubmitError> {
        self.dev.submit_flush(tag)
    }
    fn poll_completions(&mut self, out: &mut vigil_pmd::Batch<Completion>) -> usize {
        let mut n = 0;
        while out.room() > 0 {
            let Some(c) = self.swallowed.pop_front() else { break };
            out.push(c).expect("room checked");
            n += 1;
        }
        n + self.dev.poll_completions(out)
    }
}

const SNAP_TERM: u64 = 7;

/// A log after `records` appends (checkpointed every 150 when `checkpoints`, so the ring has
/// turned and holds older laps' records) with metadata `b"old"`, closed cleanly: its device
/// image and its model.
fn old_log(cfg: UalConfig, records: u64, checkpoints: bool) -> (Vec<u8>, Model) {
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    if checkpoints {
        churn(&mut ual, &mut model, records, 150);
    } else {
        for lsn in 1..=records {
            append(&mut ual, &mut model, 2, 0, payload(lsn, 300, 4));
        }
    }
    ual.set_meta(b"old", true).unwrap();
    (ual.close().unwrap().bytes().to_vec(), model)
}

/// Opens the old log on a `CrashDisk` and resets it to `snapshot_lsn` with metadata `b"new"`;
/// returns the device image after the crash and the writes the reset submitted.
fn reset_crashing(
    cfg: UalConfig,
    old: &[u8],
    snapshot_lsn: Lsn,
    crash: Option<(u64, usize)>,
) -> (Vec<u8>, u64) {
    let (writes_left, torn) = crash.map_or((None, 0), |(n, torn)| (Some(n), torn));
    let (mut ual, _) = Ual::open(CrashDisk::new(device_from(old), None, 0), cfg).expect("open");
    ual.sync_blocking().unwrap();
    let dev = ual.device_mut();
    let before = dev.writes;
    dev.writes_left = writes_left;
    dev.torn_bytes = torn;
    ual.reset_to_snapshot(snapshot_lsn, SNAP_TERM, b"new").expect("reset");
    let dev = ual.into_device();
    (dev.dev.bytes().to_vec(), dev.writes - before)
}

/// What a reopened crash image holds.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Old,
    New,
}

/// Opens `image` (twice: the second open of the idle recovered log must find the same log and no
/// cut) and says whether it is the old log and metadata or the new ones, checking every record.
fn found(cfg: UalConfig, image: &[u8], model: &Model, snapshot_lsn: Lsn) -> Found {
    let (ual, rep) = open(device_from(image), cfg);
    assert_eq!(rep.truncated_at_lsn, None, "a reset leaves nothing to cut: {rep:?}");
    let (mut ual, again) = open(ual.into_device(), cfg);
    assert_eq!(
        (again.first_lsn, again.last_lsn, again.truncated_at_lsn),
        (rep.first_lsn, rep.last_lsn, None)
    );
    if ual.meta() == b"old" {
        assert_eq!(rep.last_lsn, model.len() as u64, "{rep:?}");
        check_against(&mut ual, model);
        return Found::Old;
    }
    assert_eq!(ual.meta(), b"new", "the metadata is the old or the new, whole");
    assert_eq!(
        (rep.first_lsn, rep.last_lsn, rep.snapshot_lsn),
        (snapshot_lsn + 1, snapshot_lsn, snapshot_lsn)
    );
    assert_eq!((ual.snapshot(), ual.last_term()), ((snapshot_lsn, SNAP_TERM), SNAP_TERM));
    // The new log takes appends after the snapshot and keeps them across a reopen.
    for i in 1..=40 {
        let lsn = loop {
            match ual.append(SNAP_TERM, 0, &payload(snapshot_lsn + i, 200, 9)) {
                Ok(lsn) => break lsn,
                Err(LogError::Busy) => {
                    ual.flush_step().unwrap();
                    ual.poll(NOW).unwrap();
                }
                Err(e) => panic!("append after reset: {e}"),
            }
        };
        assert_eq!(lsn, snapshot_lsn + i);
    }
    let (mut ual, rep) = open(ual.close().unwrap(), cfg);
    assert_eq!((rep.first_lsn, rep.last_lsn), (snapshot_lsn + 1, snapshot_lsn + 40));
    let mut n = 0;
    ual.replay(snapshot_lsn + 1, snapshot_lsn + 40, |r| {
        n += 1;
        assert_eq!(r.payload, &payload(r.meta.lsn, 200, 9)[..]);
        assert_eq!(r.meta.term, SNAP_TERM);
    })
    .unwrap();
    assert_eq!(n, 40);
    Found::New
}

/// Crashes the reset of `old` after every number of its writes, the next write lost or torn at
/// every sector boundary (at `cfg`'s atomic unit): each image opens old or new, old up to some
/// write and new from then on, new once the reset returned.
fn crash_at_every_write(cfg: UalConfig, old: &[u8], model: &Model, snapshot_lsn: Lsn) {
    let (image, writes) = reset_crashing(cfg, old, snapshot_lsn, None);
    assert_eq!(found(cfg, &image, model, snapshot_lsn), Found::New);
    assert!(writes >= 3, "an erase and two superblock writes: {writes}");
    let unit = cfg.atomic_write_bytes as usize;
    let mut became_new = None;
    for n in 0..writes {
        for torn in (0..BLOCK_SIZE).step_by(unit) {
            let (image, _) = reset_crashing(cfg, old, snapshot_lsn, Some((n, torn)));
            let f = found(cfg, &image, model, snapshot_lsn);
            match became_new {
                Some(at) => assert!(f == Found::New || n < at, "crash after {n} writes (torn {torn}): {f:?}"),
                None if f == Found::New => became_new = Some(n),
                None => {}
            }
        }
    }
    assert!(became_new.is_some_and(|n| n > 0), "the first write is not the commit point: {became_new:?}");
}

#[test]
fn a_reset_log_starts_after_the_snapshot_and_keeps_appending() {
    let cfg = small();
    let (old, model) = old_log(cfg, 2000, true);
    for snapshot_lsn in [1995, 2000, 2500] {
        // Inside the log (a conflicting history), at its end, beyond it.
        let (image, _) = reset_crashing(cfg, &old, snapshot_lsn, None);
        assert_eq!(found(cfg, &image, &model, snapshot_lsn), Found::New);
    }
}

#[test]
fn a_reset_is_refused_below_the_snapshot_and_changes_nothing() {
    let cfg = small();
    let (old, model) = old_log(cfg, 2000, true);
    let (mut ual, _) = open(device_from(&old), cfg);
    let (snap, _) = ual.snapshot();
    assert!(snap > 1);
    assert!(matches!(ual.reset_to_snapshot(snap - 1, SNAP_TERM, b"new"), Err(LogError::BadLsn { .. })));
    check_against(&mut ual, &model);
}

#[test]
fn a_crash_at_any_write_of_a_reset_leaves_the_old_log_or_the_new_one() {
    let cfg = small();
    let (old, model) = old_log(cfg, 2000, true);
    for snapshot_lsn in [1990, 2600] {
        crash_at_every_write(cfg, &old, &model, snapshot_lsn);
    }
}

#[test]
fn a_crash_at_any_write_of_a_reset_tearing_sectors_leaves_the_old_log_or_the_new_one() {
    let cfg = UalConfig { atomic_write_bytes: ATOMIC_WRITE_SECTOR, ..small() };
    let (old, model) = old_log(cfg, 2000, true);
    crash_at_every_write(cfg, &old, &model, 2600);
}

#[test]
fn a_reset_of_a_full_ring_commits_before_it_erases_and_still_crashes_cleanly() {
    let cfg = small();
    // No checkpoint: the ring fills up until the segment after the tail is still live.
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    let mut lsn = 0;
    loop {
        lsn += 1;
        match ual.append(2, 0, &payload(lsn, 300, 4)) {
            Ok(_) => model.push((2, 0, payload(lsn, 300, 4))),
            Err(LogError::Busy) => {
                lsn -= 1;
                ual.flush_step().unwrap();
                ual.poll(NOW).unwrap();
            }
            Err(LogError::Full) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ual.segments_free(), 0);
    ual.set_meta(b"old", true).unwrap();
    let old = ual.close().unwrap().bytes().to_vec();
    crash_at_every_write(cfg, &old, &model, model.len() as u64 + 10);
}

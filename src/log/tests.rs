//! The UAL over `MemoryBlockIo`: round trips, group commit, durability, every torn tail, garbage
//! that must stay dead, checkpoints and recycling, superblock fallback, and a model-based property
//! test against a plain `Vec` with crash, corruption and reopen steps.

use super::*;
use proptest::prelude::*;
use vigil_pmd::block::memory::MemoryBlockIo;
use vigil_pmd::Nanos;

const NOW: Nanos = Nanos(0);

fn small() -> UalConfig {
    UalConfig {
        segment_blocks: 8,
        segment_count: 4,
        write_blocks_max: 4,
        writes_in_flight_max: 2,
        format_if_blank: true,
        atomic_write_bytes: ATOMIC_WRITE_BLOCK,
    }
}

fn device(cfg: UalConfig) -> MemoryBlockIo {
    MemoryBlockIo::new(cfg.device_blocks(), 8)
}

fn open(dev: MemoryBlockIo, cfg: UalConfig) -> (Ual<MemoryBlockIo>, OpenReport) {
    Ual::open(dev, cfg).expect("open")
}

/// A device holding a copy of `bytes`.
fn device_from(bytes: &[u8]) -> MemoryBlockIo {
    let mut dev = MemoryBlockIo::new((bytes.len() / BLOCK_SIZE) as u64, 8);
    dev.bytes_mut().copy_from_slice(bytes);
    dev
}

/// Opens a log whose record `lsn` was damaged after it was durable: refused as corruption at
/// exactly `lsn`, then opened accepting the loss from it (what `vigil repair --accept-loss` does).
fn open_accepting_loss(dev: MemoryBlockIo, cfg: UalConfig, lsn: Lsn) -> (Ual<MemoryBlockIo>, OpenReport) {
    let bytes = dev.bytes().to_vec();
    let report = refused(&bytes, cfg, RecoverOptions::default());
    assert_eq!(report.first_bad_lsn, lsn, "{report}");
    let opts = RecoverOptions { accept_loss_from: Some(lsn), ..RecoverOptions::default() };
    let (ual, open) = Ual::recover(dev, cfg, opts).expect("accepted loss").commit().expect("commit");
    assert_eq!(open.accepted_loss, Some(report));
    (ual, open)
}

/// Recovers a copy of `bytes`, which must be refused as corruption without a byte written.
fn refused(bytes: &[u8], cfg: UalConfig, opts: RecoverOptions) -> CorruptionReport {
    let shared = shared::Shared::new(device_from(bytes));
    match Ual::recover(shared.clone(), cfg, opts) {
        Err(LogError::Corruption(report)) => {
            assert!(shared.bytes() == bytes, "a refused recovery wrote to the device: {report}");
            report
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(r) => panic!("expected corruption, got {:?}", r.report()),
    }
}

fn payload(lsn: Lsn, len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (lsn as u8).wrapping_mul(31).wrapping_add(i as u8).wrapping_add(salt)).collect()
}

/// (term, kind, payload) of lsn 1, 2, ...
type Model = Vec<(u64, u8, Vec<u8>)>;

fn settle(ual: &mut Ual<MemoryBlockIo>) {
    ual.sync_blocking().expect("sync");
    assert_eq!(ual.durable_lsn(), ual.last_lsn());
}

/// Appends, flushing and polling on `Busy`.
fn append(ual: &mut Ual<MemoryBlockIo>, model: &mut Model, term: u64, kind: u8, body: Vec<u8>) -> Lsn {
    let lsn = loop {
        match ual.append(term, kind, &body) {
            Ok(lsn) => break lsn,
            Err(LogError::Busy) => {
                ual.flush_step().unwrap();
                ual.poll(NOW).unwrap();
            }
            Err(e) => panic!("append: {e}"),
        }
    };
    model.push((term, kind, body));
    assert_eq!(lsn as usize, model.len());
    lsn
}

fn check_against(ual: &mut Ual<MemoryBlockIo>, model: &Model) {
    assert_eq!(ual.last_lsn() as usize, model.len(), "last lsn");
    let first = ual.first_lsn();
    if first > ual.last_lsn() {
        return;
    }
    let mut got = Vec::new();
    ual.replay(first, ual.last_lsn(), |r| {
        got.push((r.meta.lsn, r.meta.term, r.meta.kind, r.payload.to_vec()))
    })
    .expect("replay");
    assert_eq!(got.len() as u64, ual.last_lsn() + 1 - first);
    for (lsn, term, kind, body) in got {
        let (t, k, b) = &model[lsn as usize - 1];
        assert_eq!((term, kind, &body), (*t, *k, b), "record {lsn}");
    }
}

#[test]
fn append_flush_poll_read_round_trip() {
    let cfg = small();
    let (mut ual, report) = open(device(cfg), cfg);
    assert!(report.formatted);
    assert_eq!((report.records, report.last_lsn, ual.first_lsn()), (0, 0, 1));
    let mut model = Model::new();
    for i in 0..200u64 {
        let len = (i as usize * 37) % 600;
        append(&mut ual, &mut model, 1 + i / 50, (i % 7) as u8, payload(i + 1, len, 0));
        if i % 10 == 9 {
            ual.flush_step().unwrap();
            ual.poll(NOW).unwrap();
        }
    }
    settle(&mut ual);
    check_against(&mut ual, &model);
    let mut out = Vec::new();
    let meta = ual.read(77, &mut out).unwrap();
    assert_eq!((meta.lsn, meta.term, meta.kind, meta.len as usize), (77, 2, 76 % 7, out.len()));
    assert_eq!(out, model[76].2);
    assert_eq!(ual.term_of(200).unwrap(), 4);
    assert!(matches!(ual.read(201, &mut out), Err(LogError::Unavailable { lsn: 201, .. })));
    assert!(matches!(ual.read(0, &mut out), Err(LogError::Unavailable { lsn: 0, .. })));
}

#[test]
fn durable_lsn_advances_only_after_the_write_completes() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    for i in 1..=3 {
        assert_eq!(ual.append(1, 0, b"abc").unwrap(), i);
    }
    assert_eq!((ual.last_lsn(), ual.durable_lsn()), (3, 0));
    assert_eq!(ual.flush_step().unwrap(), 1);
    assert_eq!(ual.durable_lsn(), 0, "submitted is not durable");
    assert_eq!(ual.writes_in_flight(), 1);
    ual.append(1, 0, b"def").unwrap();
    // The tail block is in flight: the record goes to the next block (the rest of the tail block
    // stays zero padding), so the next group commit is submitted at once instead of waiting.
    assert!(ual.counters().padded_bytes > 0);
    assert_eq!(ual.flush_step().unwrap(), 1);
    assert_eq!(ual.writes_in_flight(), 2);
    assert_eq!(ual.durable_lsn(), 0);
    assert_eq!(ual.poll(NOW).unwrap(), 2);
    assert_eq!(ual.durable_lsn(), 4);
    // Nothing staged: no write.
    assert_eq!(ual.flush_step().unwrap(), 0);
}

#[test]
fn group_commit_issues_one_write_per_flush_step() {
    // 10 rounds of ~7 blocks stay inside one 128-block segment (a flush that crosses a segment
    // end issues one write per segment).
    let cfg = UalConfig { segment_blocks: 128, segment_count: 4, write_blocks_max: 16, ..small() };
    let (mut ual, _) = open(device(cfg), cfg);
    let body = [7u8; 64];
    for round in 0..10u64 {
        let writes_before = ual.counters().writes;
        for _ in 0..300 {
            ual.append(1, 1, &body).unwrap();
        }
        assert_eq!(ual.flush_step().unwrap(), 1, "round {round}");
        assert_eq!(ual.counters().writes, writes_before + 1);
        ual.poll(NOW).unwrap();
        assert_eq!(ual.durable_lsn(), (round + 1) * 300);
    }
}

#[test]
fn staging_and_ring_push_back_instead_of_growing() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let body = vec![1u8; 2000];
    // Two records per block, four blocks per write: the ninth append of one iteration is refused.
    for _ in 0..8 {
        ual.append(1, 0, &body).unwrap();
    }
    assert_eq!(ual.append(1, 0, &body), Err(LogError::Busy));
    assert_eq!(ual.last_lsn(), 8);
    ual.flush_step().unwrap();
    ual.poll(NOW).unwrap();
    // Fill the ring: 4 segments x 8 blocks x 2 records.
    let mut full = false;
    for _ in 0..100 {
        match ual.append(1, 0, &body) {
            Ok(_) => {}
            Err(LogError::Busy) => {
                ual.flush_step().unwrap();
                ual.poll(NOW).unwrap();
            }
            Err(LogError::Full) => {
                full = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(full);
    assert_eq!(ual.last_lsn(), 64);
    assert_eq!(ual.append(0, 0, b"x"), Err(LogError::TermRegression { term: 0, last_term: 1 }));
    assert!(matches!(ual.append(1, 0, &vec![0; PAYLOAD_MAX + 1]), Err(LogError::TooLarge { .. })));
}

#[test]
fn reopen_after_clean_close_recovers_everything() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    for i in 0..150u64 {
        append(&mut ual, &mut model, 3, 2, payload(i + 1, (i as usize * 13) % 300, 1));
    }
    let dev = ual.close().unwrap();
    let (mut ual, report) = open(dev, cfg);
    assert!(!report.formatted);
    assert_eq!((report.records, report.last_lsn, report.last_term), (150, 150, 3));
    assert_eq!(report.stop, ScanStop::End);
    assert_eq!(report.truncated_at_lsn, None);
    assert_eq!(ual.durable_lsn(), 150);
    check_against(&mut ual, &model);
    for i in 150..170u64 {
        append(&mut ual, &mut model, 4, 2, payload(i + 1, 100, 1));
    }
    let dev = ual.close().unwrap();
    let (mut ual, report) = open(dev, cfg);
    assert_eq!(report.last_lsn, 170);
    check_against(&mut ual, &model);
}

/// Lays down `before` durable records, then one more write; returns the images before and after
/// that write, the model, and the records of the last write as (lsn, device offset, total length).
/// A record's (lsn, device byte offset, header + payload length).
type Placed = (Lsn, usize, usize);

fn last_write_fixture(cfg: UalConfig) -> (Vec<u8>, Vec<u8>, Model, Vec<Placed>) {
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    for i in 0..30u64 {
        append(&mut ual, &mut model, 1, 0, payload(i + 1, 40 + (i as usize * 29) % 160, 2));
    }
    settle(&mut ual);
    let img0 = ual.device().bytes().to_vec();
    let before = ual.last_lsn();
    for i in 30..60u64 {
        append(&mut ual, &mut model, 2, 1, payload(i + 1, 40 + (i as usize * 29) % 160, 2));
    }
    assert_eq!(ual.flush_step().unwrap(), 1, "the last batch is one write");
    ual.poll(NOW).unwrap();
    let recs = (before + 1..=ual.last_lsn())
        .map(|lsn| {
            let off = ual.device_offset(lsn).unwrap() as usize;
            (lsn, off, RECORD_HEADER_LEN + model[lsn as usize - 1].2.len())
        })
        .collect();
    let img1 = ual.into_device().bytes().to_vec();
    (img0, img1, model, recs)
}

#[test]
fn every_torn_tail_recovers_exactly_the_records_before_it() {
    // Torn at every byte: a device that writes only 512-byte sectors whole (or less).
    let cfg = UalConfig { atomic_write_bytes: ATOMIC_WRITE_SECTOR, ..small() };
    let (img0, img1, model, recs) = last_write_fixture(cfg);
    let lo = img0.iter().zip(&img1).position(|(a, b)| a != b).unwrap();
    let hi = img0.len() - img0.iter().rev().zip(img1.iter().rev()).position(|(a, b)| a != b).unwrap();
    let before = recs[0].0 - 1;
    for cut in lo..=hi {
        // The write landed up to byte `cut` and no further.
        let mut image = img0.clone();
        image[lo..cut].copy_from_slice(&img1[lo..cut]);
        let (mut ual, report) = open(device_from(&image), cfg);
        let whole = recs.iter().filter(|(_, off, len)| off + len <= cut).count() as u64;
        let expected_last = before + whole;
        assert_eq!(report.last_lsn, expected_last, "cut at byte {cut}");
        let partial = recs.iter().find(|(_, off, len)| *off < cut && cut < off + len);
        match partial {
            Some((lsn, off, _)) if image[*off..cut].iter().any(|&b| b != 0) => {
                assert_eq!(report.truncated_at_lsn, Some(*lsn), "cut at byte {cut}");
                assert!(report.truncated_bytes > 0);
            }
            _ => assert_eq!(report.truncated_at_lsn, None, "cut at byte {cut}: {report:?}"),
        }
        check_against(&mut ual, &model[..expected_last as usize].to_vec());
        if cut % 61 == 0 || cut == hi {
            // New records after the cut, then another reopen: nothing of the old write comes back.
            let mut m = model[..expected_last as usize].to_vec();
            for i in 0..5 {
                append(&mut ual, &mut m, 7, 9, payload(1000 + i, 33, 3));
            }
            let dev = ual.close().unwrap();
            let (mut ual, report) = open(dev, cfg);
            assert_eq!(report.last_lsn, expected_last + 5);
            assert_eq!(report.truncated_at_lsn, None);
            check_against(&mut ual, &m);
        }
    }
}

#[test]
fn every_corrupt_byte_of_the_last_write_cuts_at_its_record() {
    // With 512-byte atomicity a damaged, unacknowledged last write reads as a torn one (with 4096 it
    // is corruption: `tests/atomic.rs`).
    let cfg = UalConfig { atomic_write_bytes: ATOMIC_WRITE_SECTOR, ..small() };
    let (_, img1, model, recs) = last_write_fixture(cfg);
    for &(lsn, off, len) in &recs {
        for at in off..off + len {
            let mut image = img1.clone();
            image[at] ^= 0x5a;
            let (mut ual, report) = open(device_from(&image), cfg);
            assert_eq!(report.last_lsn, lsn - 1, "flip at {at} in record {lsn}");
            assert_eq!(report.truncated_at_lsn, Some(lsn));
            assert!(matches!(report.stop, ScanStop::Torn | ScanStop::Gap));
            check_against(&mut ual, &model[..lsn as usize - 1].to_vec());
        }
    }
}

/// Records of 1024 bytes: four to a block, so lsn 4k ends a block and 4k+1 starts the next.
fn quarter_block(lsn: Lsn, salt: u8) -> Vec<u8> {
    payload(lsn, 1024 - RECORD_HEADER_LEN, salt)
}

#[test]
fn garbage_after_a_cut_tail_is_never_resurrected() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    for lsn in 1..=60 {
        append(&mut ual, &mut model, 1, 0, quarter_block(lsn, 0));
    }
    let at = ual.device_offset(12).unwrap() as usize + 100;
    let mut dev = ual.close().unwrap();
    dev.bytes_mut()[at] ^= 1;
    let (mut ual, report) = open_accepting_loss(dev, cfg, 12);
    assert_eq!((report.last_lsn, report.truncated_at_lsn, report.stop), (11, Some(12), ScanStop::Torn));
    model.truncate(11);
    // Open erased the reach of every write that can be in flight past the cut (2 × 4 blocks:
    // blocks 2..10); the old records 41.. (valid, at the start of block 10, and next in lsn order
    // once 12..40 are written again) must stay dead.
    for lsn in 12..=40 {
        append(&mut ual, &mut model, 1, 0, quarter_block(lsn, 9));
    }
    let dev = ual.close().unwrap();
    let (mut ual, report) = open(dev, cfg);
    assert_eq!((report.last_lsn, report.stop, report.truncated_at_lsn), (40, ScanStop::Stale, None));
    check_against(&mut ual, &model);
    // The second open does not report the first cut again.
    let (mut ual, report) = open(ual.close().unwrap(), cfg);
    assert_eq!((report.last_lsn, report.truncated_at_lsn), (40, None));
    // And again after more appends and a crash without flushing.
    append(&mut ual, &mut model, 1, 0, quarter_block(41, 9));
    settle(&mut ual);
    ual.append(1, 0, &quarter_block(42, 9)).unwrap();
    let (mut ual, report) = open(ual.into_device(), cfg);
    assert_eq!(report.last_lsn, 41);
    check_against(&mut ual, &model);
}

#[test]
fn truncate_suffix_discards_for_good() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    for lsn in 1..=24 {
        append(&mut ual, &mut model, 1 + lsn / 10, 0, quarter_block(lsn, 0));
    }
    settle(&mut ual);
    // Crash right after the truncation: the discarded records stay discarded.
    ual.truncate_suffix(11).unwrap();
    assert_eq!((ual.last_lsn(), ual.durable_lsn(), ual.last_term()), (11, 11, 2));
    model.truncate(11);
    let (mut ual, report) = open(ual.into_device(), cfg);
    assert_eq!(report.last_lsn, 11);
    check_against(&mut ual, &model);
    // Replace the suffix with a higher term, as a Raft follower does.
    append(&mut ual, &mut model, 5, 3, quarter_block(12, 5));
    append(&mut ual, &mut model, 5, 3, payload(13, 10, 5));
    let dev = ual.close().unwrap();
    let (mut ual, report) = open(dev, cfg);
    assert_eq!((report.last_lsn, report.last_term), (13, 5));
    // The old 14.. are still on the device, 14 at the start of the next block: dead by epoch.
    assert_eq!(report.stop, ScanStop::Stale);
    check_against(&mut ual, &model);
    // Truncating within the tail segment image, and to an empty log.
    ual.truncate_suffix(12).unwrap();
    ual.truncate_suffix(0).unwrap();
    assert_eq!(ual.last_lsn(), 0);
    model.clear();
    append(&mut ual, &mut model, 6, 0, payload(1, 50, 6));
    let dev = ual.close().unwrap();
    let (mut ual, _) = open(dev, cfg);
    check_against(&mut ual, &model);
}

/// Appends `count` records, checkpointing at the durable lsn whenever the ring is full and every
/// `every` records.
fn churn(ual: &mut Ual<MemoryBlockIo>, model: &mut Model, count: u64, every: u64) {
    for i in 0..count {
        let lsn = model.len() as u64 + 1;
        let body = payload(lsn, 100 + (lsn as usize * 7) % 200, 4);
        loop {
            match ual.append(2, 0, &body) {
                Ok(got) => {
                    assert_eq!(got, lsn);
                    model.push((2, 0, body));
                    break;
                }
                Err(LogError::Busy) => {
                    ual.flush_step().unwrap();
                    ual.poll(NOW).unwrap();
                }
                Err(LogError::Full) => {
                    ual.sync_blocking().unwrap();
                    let _ = ual.checkpoint(ual.durable_lsn(), 2);
                    ual.sync_blocking().unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        if i % every == every - 1 {
            ual.flush_step().unwrap();
            ual.poll(NOW).unwrap();
            let _ = ual.checkpoint(ual.durable_lsn(), 2);
        }
    }
}

#[test]
fn checkpoints_recycle_segments_and_reopen_reads_the_live_records() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    // About 3.5 rings' worth.
    churn(&mut ual, &mut model, 2000, 150);
    assert!(ual.first_lsn() > 1, "segments were recycled");
    let first = ual.first_lsn();
    let dev = ual.close().unwrap();
    let (mut ual, report) = open(dev, cfg);
    assert_eq!(report.last_lsn, 2000);
    assert_eq!(report.first_lsn, first);
    assert!(matches!(report.stop, ScanStop::End | ScanStop::Stale), "{report:?}");
    check_against(&mut ual, &model);
    assert!(matches!(ual.read(first - 1, &mut Vec::new()), Err(LogError::Unavailable { .. })));
    // Keep going across the reopen.
    churn(&mut ual, &mut model, 500, 150);
    let dev = ual.close().unwrap();
    let (mut ual, _) = open(dev, cfg);
    check_against(&mut ual, &model);
}

#[test]
fn a_corrupt_superblock_copy_falls_back_to_the_other() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    churn(&mut ual, &mut model, 1500, 120);
    let mut dev = ual.close().unwrap();
    let seq = |dev: &MemoryBlockIo, copy: usize| {
        Superblock::decode(&dev.bytes()[copy * BLOCK_SIZE..(copy + 1) * BLOCK_SIZE]).unwrap().sequence
    };
    let newest = usize::from(seq(&dev, 1) > seq(&dev, 0));
    let other_seq = seq(&dev, 1 - newest);
    dev.bytes_mut()[newest * BLOCK_SIZE + 40] ^= 0xff;
    let (mut ual, report) = open(dev, cfg);
    assert_eq!(report.superblock_copy, 1 - newest);
    assert_eq!(report.superblock_sequence, other_seq);
    assert!(report.other_copy_invalid);
    assert_eq!(report.last_lsn, 1500);
    let first = ual.first_lsn();
    check_against(&mut ual, &model);
    // The rewrite repaired the damaged copy; a further reopen sees both valid.
    let dev = ual.close().unwrap();
    let (_, report) = open(dev, cfg);
    assert!(!report.other_copy_invalid);
    assert_eq!(report.first_lsn, first);
}

#[test]
fn both_superblocks_bad_is_refused_and_blank_needs_consent() {
    let cfg = small();
    let (ual, _) = open(device(cfg), cfg);
    let mut dev = ual.close().unwrap();
    dev.bytes_mut()[3] ^= 1;
    dev.bytes_mut()[BLOCK_SIZE + 3] ^= 1;
    assert!(matches!(Ual::open(dev, cfg), Err(LogError::NoSuperblock(_))));
    let no_format = UalConfig { format_if_blank: false, ..cfg };
    assert!(matches!(Ual::open(device(cfg), no_format), Err(LogError::NoSuperblock(_))));
    let bad = UalConfig { write_blocks_max: 3, ..cfg };
    assert!(matches!(Ual::open(device(cfg), bad), Err(LogError::Config(_))));
    let (ual, _) = open(device(cfg), cfg);
    let dev = ual.close().unwrap();
    let other = UalConfig { segment_blocks: 4, segment_count: 8, ..cfg };
    assert!(matches!(Ual::open(dev, other), Err(LogError::Config(_))));
}

#[test]
fn checkpoint_rules() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    for lsn in 1..=10 {
        append(&mut ual, &mut model, 1, 0, payload(lsn, 10, 0));
    }
    assert!(matches!(ual.checkpoint(5, 1), Err(LogError::BadLsn { .. })), "not durable yet");
    settle(&mut ual);
    ual.checkpoint(5, 1).unwrap();
    assert_eq!(ual.checkpoint(6, 1), Err(LogError::Busy), "one superblock write at a time");
    ual.poll(NOW).unwrap();
    assert!(matches!(ual.checkpoint(4, 1), Err(LogError::BadLsn { .. })), "older than the current");
    assert_eq!(ual.snapshot(), (5, 1));
    assert!(matches!(ual.truncate_suffix(3), Err(LogError::BadLsn { .. })));
    assert_eq!(ual.term_of(5).unwrap(), 1);
}

#[derive(Clone, Debug)]
enum Op {
    Append { n: usize, len: usize, bump_term: bool },
    Flush,
    Poll,
    Checkpoint,
    Truncate { back: u64 },
    Reset { ahead: u64 },
    Reopen,
    Crash,
    Corrupt { pick: u64, at: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..40, 0usize..700, prop::bool::weighted(0.1))
            .prop_map(|(n, len, bump_term)| Op::Append { n, len, bump_term }),
        3 => Just(Op::Flush),
        3 => Just(Op::Poll),
        1 => Just(Op::Checkpoint),
        1 => (0u64..40).prop_map(|back| Op::Truncate { back }),
        1 => (0u64..60).prop_map(|ahead| Op::Reset { ahead }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => (any::<u64>(), any::<usize>()).prop_map(|(pick, at)| Op::Corrupt { pick, at }),
    ]
}

fn reopen_crashed(ual: Ual<MemoryBlockIo>, cfg: UalConfig) -> (Ual<MemoryBlockIo>, OpenReport) {
    open(ual.into_device(), cfg)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_log_matches_a_vec_model_through_crashes_and_corruption(ops in prop::collection::vec(op(), 1..60)) {
        model_run(ops)?;
    }
}

/// The model test's body: `ops` against a `Vec`, through crashes, corruption and reopens.
fn model_run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    let mut term = 1u64;
    for op in ops {
        match op {
            Op::Append { n, len, bump_term } => {
                term += u64::from(bump_term);
                for i in 0..n {
                    let lsn = model.len() as u64 + 1;
                    let body = payload(lsn, (len + i * 17) % 700, term as u8);
                    let mut tries = 0;
                    let got = loop {
                        tries += 1;
                        match ual.append(term, (lsn % 5) as u8, &body) {
                            Ok(lsn) => break Some(lsn),
                            Err(LogError::Busy) if tries < 4 => {
                                ual.flush_step().unwrap();
                                ual.poll(NOW).unwrap();
                            }
                            Err(LogError::Full) if tries < 4 => {
                                ual.sync_blocking().unwrap();
                                let d = ual.durable_lsn();
                                let t = ual.term_of(d).unwrap_or(0);
                                let _ = ual.checkpoint(d, t);
                                ual.sync_blocking().unwrap();
                            }
                            Err(LogError::Busy | LogError::Full) => break None,
                            Err(e) => panic!("append: {e}"),
                        }
                    };
                    match got {
                        Some(got) => {
                            prop_assert_eq!(got, lsn);
                            model.push((term, (lsn % 5) as u8, body));
                        }
                        None => break,
                    }
                }
            }
            Op::Flush => {
                ual.flush_step().unwrap();
            }
            Op::Poll => {
                ual.poll(NOW).unwrap();
            }
            Op::Checkpoint => {
                let d = ual.durable_lsn();
                if d >= ual.snapshot().0 && d >= ual.first_lsn() {
                    let t = ual.term_of(d).unwrap();
                    let _ = ual.checkpoint(d, t);
                }
            }
            Op::Truncate { back } => {
                let keep = ual.last_lsn().saturating_sub(back);
                if keep >= ual.snapshot().0 && keep + 1 >= ual.first_lsn() {
                    ual.truncate_suffix(keep).unwrap();
                    model.truncate(keep as usize);
                    term = term.max(ual.last_term());
                }
            }
            Op::Reset { ahead } => {
                // A snapshot from elsewhere, inside the log (20 back) or beyond it.
                let at = (ual.last_lsn() + ahead).saturating_sub(20).max(ual.snapshot().0).max(1);
                term = term.max(ual.last_term()) + 1;
                ual.reset_to_snapshot(at, term, b"reset").unwrap();
                prop_assert_eq!((ual.first_lsn(), ual.last_lsn(), ual.snapshot()), (at + 1, at, (at, term)));
                // Lsns up to the snapshot are no longer readable: placeholders in the model.
                model.resize(at as usize, (0, 0, Vec::new()));
            }
            Op::Reopen => {
                let dev = ual.close().unwrap();
                let (u, report) = open(dev, cfg);
                ual = u;
                prop_assert_eq!(report.last_lsn as usize, model.len());
                prop_assert_eq!(report.truncated_at_lsn, None);
            }
            Op::Crash => {
                let (durable, last) = (ual.durable_lsn(), ual.last_lsn());
                let (u, report) = reopen_crashed(ual, cfg);
                ual = u;
                prop_assert!(
                    report.last_lsn >= durable && report.last_lsn <= last,
                    "recovered {} outside {}..={}",
                    report.last_lsn,
                    durable,
                    last
                );
                model.truncate(report.last_lsn as usize);
            }
            Op::Corrupt { pick, at } => {
                ual.sync_blocking().unwrap();
                let (first, last) = (ual.first_lsn(), ual.last_lsn());
                if last < first {
                    continue;
                }
                let lsn = first + pick % (last + 1 - first);
                let off = ual.device_offset(lsn).unwrap() as usize;
                let len = RECORD_HEADER_LEN + model[lsn as usize - 1].2.len();
                let ual_snapshot = ual.snapshot().0;
                let mut dev = ual.into_device();
                dev.bytes_mut()[off + at % len] ^= 0x81;
                if lsn <= ual_snapshot {
                    // The snapshot covers it: skipped, nothing lost; unless live records share
                    // its block and no later block resumes the log (they are lost with it): then
                    // corruption from the first live lsn.
                    match Ual::recover(device_from(dev.bytes()), cfg, RecoverOptions::default()) {
                        Ok(recovered) => {
                            let (u, report) = recovered.commit().expect("commit");
                            ual = u;
                            let skipped = report.skipped.expect("a covered record is skipped");
                            prop_assert!(skipped.first_lsn <= lsn && lsn <= skipped.last_lsn);
                            prop_assert_eq!(report.last_lsn as usize, model.len());
                        }
                        Err(LogError::Corruption(c)) => {
                            prop_assert_eq!(c.first_bad_lsn, ual_snapshot + 1, "{}", c);
                            let (u, report) = open_accepting_loss(dev, cfg, c.first_bad_lsn);
                            ual = u;
                            prop_assert_eq!(report.last_lsn, ual_snapshot);
                            model.truncate(ual_snapshot as usize);
                        }
                        Err(e) => panic!("open: {e}"),
                    }
                    continue;
                }
                // A durable record damaged: corruption, refused without a write, unless the
                // loss is accepted.
                let (u, report) = open_accepting_loss(dev, cfg, lsn);
                ual = u;
                prop_assert_eq!(report.last_lsn, lsn - 1);
                prop_assert_eq!(report.truncated_at_lsn, Some(lsn));
                model.truncate(lsn as usize - 1);
            }
        }
        prop_assert!(ual.durable_lsn() <= ual.last_lsn());
        check_against(&mut ual, &model);
        term = term.max(ual.last_term());
    }
    let dev = ual.close().unwrap();
    let (mut ual, report) = open(dev, cfg);
    prop_assert_eq!(report.last_lsn as usize, model.len());
    check_against(&mut ual, &model);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The metadata section (format version 2)

/// Rewrites both superblock copies on `dev` as format version 1 (no metadata section).
fn downgrade_to_v1(dev: &mut MemoryBlockIo) {
    for copy in 0..2 {
        let block = &mut dev.bytes_mut()[copy * BLOCK_SIZE..(copy + 1) * BLOCK_SIZE];
        let Ok(sb) = Superblock::decode(block) else { continue };
        sb.encode(block);
        block[8..12].copy_from_slice(&FORMAT_VERSION_V1.to_le_bytes());
        let crc = crc32c::crc32c(&block[..SUPERBLOCK_LEN - 4]);
        block[SUPERBLOCK_LEN - 4..SUPERBLOCK_LEN].copy_from_slice(&crc.to_le_bytes());
    }
}

#[test]
fn urgent_metadata_is_durable_after_its_superblock_write_and_survives_a_crash() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    assert_eq!(ual.meta(), b"");
    let seq = ual.set_meta(b"term=3 vote=2", true).unwrap();
    assert_eq!((ual.meta_seq(), ual.meta_durable_seq()), (seq, 0));
    // Lost if the power goes before the write: the staged metadata is memory only.
    let (ual2, _) = open(device_from(ual.device().bytes()), cfg);
    assert_eq!(ual2.meta(), b"");
    assert_eq!(ual.flush_step().unwrap(), 1, "one superblock write, no log write");
    assert_eq!(ual.meta_durable_seq(), 0, "submitted is not durable");
    ual.poll(NOW).unwrap();
    assert_eq!(ual.meta_durable_seq(), seq);
    assert_eq!(ual.flush_step().unwrap(), 0, "nothing left to write");
    // Crash (no close): the metadata comes back, and is carried by open's own superblock write.
    let (ual, _) = open(ual.into_device(), cfg);
    assert_eq!(ual.meta(), b"term=3 vote=2");
    let (ual, _) = open(ual.into_device(), cfg);
    assert_eq!(ual.meta(), b"term=3 vote=2");
}

#[test]
fn lazy_metadata_rides_the_next_superblock_write_and_records_and_metadata_commit_together() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    let lazy = ual.set_meta(b"commit=1", false).unwrap();
    append(&mut ual, &mut model, 1, 0, b"x".to_vec());
    assert_eq!(ual.flush_step().unwrap(), 1, "the log write only");
    ual.poll(NOW).unwrap();
    assert_eq!((ual.durable_lsn(), ual.meta_durable_seq()), (1, 0));
    let (crashed, _) = open(device_from(ual.device().bytes()), cfg);
    assert_eq!(crashed.meta(), b"", "a lazy update waits for a superblock write");
    // A record and urgent metadata in one flush: one log write and one superblock write.
    append(&mut ual, &mut model, 2, 0, b"y".to_vec());
    let urgent = ual.set_meta(b"term=2", true).unwrap();
    assert!(urgent > lazy);
    assert_eq!(ual.flush_step().unwrap(), 2);
    // A second urgent update while the first superblock write is in flight waits for it.
    let again = ual.set_meta(b"term=2 vote=1", true).unwrap();
    assert_eq!(ual.flush_step().unwrap(), 0);
    ual.poll(NOW).unwrap();
    assert_eq!((ual.durable_lsn(), ual.meta_durable_seq()), (2, urgent));
    assert_eq!(ual.flush_step().unwrap(), 1);
    ual.poll(NOW).unwrap();
    assert_eq!(ual.meta_durable_seq(), again);
    // Checkpoints and truncations carry the metadata too.
    settle(&mut ual);
    ual.set_meta(b"after-truncate", false).unwrap();
    ual.truncate_suffix(1).unwrap();
    assert_eq!(ual.meta_durable_seq(), ual.meta_seq());
    let (mut ual, report) = open(ual.into_device(), cfg);
    assert_eq!((ual.meta(), report.last_lsn), (&b"after-truncate"[..], 1));
    assert!(matches!(
        ual.set_meta(&vec![0; META_MAX + 1], true),
        Err(LogError::TooLarge { len, max: META_MAX }) if len == META_MAX + 1
    ));
    assert_eq!(ual.meta(), b"after-truncate", "a refused update changes nothing");
}

#[test]
fn a_torn_metadata_write_falls_back_to_the_other_copy() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    ual.set_meta(b"old", true).unwrap();
    settle(&mut ual);
    ual.set_meta(b"new", true).unwrap();
    settle(&mut ual);
    let mut dev = ual.into_device();
    let seq = |dev: &MemoryBlockIo, copy: usize| {
        Superblock::decode(&dev.bytes()[copy * BLOCK_SIZE..(copy + 1) * BLOCK_SIZE]).unwrap().sequence
    };
    let newest = usize::from(seq(&dev, 1) > seq(&dev, 0));
    // Tear the newest copy inside its metadata section: the older copy (and its metadata) wins.
    dev.bytes_mut()[newest * BLOCK_SIZE + META_OFFSET + 1] ^= 0xff;
    let (ual, report) = open(dev, cfg);
    assert_eq!(report.superblock_copy, 1 - newest);
    assert_eq!(ual.meta(), b"old");
}

#[test]
fn a_version_1_device_opens_with_empty_metadata_and_is_upgraded() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    for i in 0..30u64 {
        append(&mut ual, &mut model, 1, 0, payload(i + 1, 40, 1));
    }
    let mut dev = ual.close().unwrap();
    downgrade_to_v1(&mut dev);
    let (mut ual, report) = open(dev, cfg);
    assert_eq!((report.last_lsn, ual.meta()), (30, &b""[..]));
    check_against(&mut ual, &model);
    let dev = ual.into_device();
    let versions: Vec<u32> = (0..2)
        .map(|c| u32::from_le_bytes(dev.bytes()[c * BLOCK_SIZE + 8..c * BLOCK_SIZE + 12].try_into().unwrap()))
        .collect();
    assert!(versions.contains(&FORMAT_VERSION), "open wrote a version-2 copy: {versions:?}");
}

#[test]
fn peek_serves_records_in_memory_without_io() {
    let cfg = UalConfig { segment_blocks: 4, segment_count: 8, write_blocks_max: 4, ..small() };
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    for i in 0..200u64 {
        append(&mut ual, &mut model, 1 + i / 100, 3, payload(i + 1, 200, 2));
    }
    let reads = ual.counters().reads;
    let r = ual.peek(200).expect("the tail is in memory");
    assert_eq!((r.meta.lsn, r.meta.term, r.meta.kind, r.payload), (200, 2, 3, &model[199].2[..]));
    assert!(ual.peek(1).is_none(), "an old segment needs a device read");
    assert!(ual.peek(201).is_none());
    assert!(ual.peek(0).is_none());
    assert_eq!(ual.counters().reads, reads, "peek never reads the device");
    // Once read into the cache, its segment is served from memory too.
    settle(&mut ual);
    ual.read_meta(1).unwrap();
    assert_eq!(ual.peek(1).unwrap().payload, &model[0].2[..]);
}

#[test]
fn open_erases_the_reach_of_every_write_in_flight_across_segments() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    for lsn in 1..=60 {
        append(&mut ual, &mut model, 1, 0, quarter_block(lsn, 0));
    }
    // A torn record in segment 0's last block (7), and torn debris of a later write in segment 1
    // (block 8, the next segment's first, within 2 × 4 blocks of the cut).
    let torn = ual.device_offset(30).unwrap() as usize + 100;
    let debris = ual.device_offset(33).unwrap() as usize + 100;
    let mut dev = ual.close().unwrap();
    dev.bytes_mut()[torn] ^= 1;
    dev.bytes_mut()[debris] ^= 1;
    let (ual, report) = open_accepting_loss(dev, cfg, 30);
    assert_eq!((report.last_lsn, report.truncated_at_lsn, report.stop), (29, Some(30), ScanStop::Torn));
    model.truncate(29);
    let (mut ual, report) = open(ual.close().unwrap(), cfg);
    assert_eq!((report.last_lsn, report.truncated_at_lsn, report.stop), (29, None, ScanStop::End));
    check_against(&mut ual, &model);
}

#[test]
fn open_erases_no_further_than_the_ring() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    // Blocks 0..31 of the 32-block ring; block 0 (lsns 1..4) is live and one block on from 31.
    for lsn in 1..=124 {
        append(&mut ual, &mut model, 1, 0, quarter_block(lsn, 0));
    }
    let at = ual.device_offset(122).unwrap() as usize + 100;
    let mut dev = ual.close().unwrap();
    dev.bytes_mut()[at] ^= 1;
    let (mut ual, report) = open_accepting_loss(dev, cfg, 122);
    assert_eq!((report.last_lsn, report.truncated_at_lsn, report.stop), (121, Some(122), ScanStop::Torn));
    model.truncate(121);
    check_against(&mut ual, &model);
    let (mut ual, report) = open(ual.close().unwrap(), cfg);
    assert_eq!((report.first_lsn, report.last_lsn, report.truncated_at_lsn), (1, 121, None));
    check_against(&mut ual, &model);
}

// ---------------------------------------------------------------------------------------------
// Torn tails told from corruption, covered records, damaged padding: in `tests/faults.rs`.

mod atomic;
mod faults;
mod reset;

pub(crate) mod shared {
    //! A `MemoryBlockIo` the test keeps a handle on while the log owns it, to compare its bytes
    //! after a refused recovery (which drops the log's handle), and to fail one read on purpose.
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use vigil_pmd::block::memory::MemoryBlockIo;
    use vigil_pmd::block::{BlockBuf, BlockError, BlockIo, BlockOp, Completion, SubmitError};

    #[derive(Clone)]
    pub(crate) struct Shared {
        dev: Rc<RefCell<MemoryBlockIo>>,
        /// A read to fail: (its first block, successful reads of it to let through first).
        fail: Rc<Cell<Option<(u64, u32)>>>,
        /// Failed reads waiting to be polled.
        failed: Rc<RefCell<Vec<Completion>>>,
    }

    impl Shared {
        pub(crate) fn new(dev: MemoryBlockIo) -> Self {
            Self { dev: Rc::new(RefCell::new(dev)), fail: Rc::default(), failed: Rc::default() }
        }
        pub(crate) fn bytes(&self) -> Vec<u8> {
            self.dev.borrow().bytes().to_vec()
        }
        pub(crate) fn flip(&self, at: usize, mask: u8) {
            self.dev.borrow_mut().bytes_mut()[at] ^= mask;
        }
        /// The read starting at `lba` that comes after `skip` successful ones fails, once (a
        /// transient read error), reading nothing.
        pub(crate) fn fail_read(&self, lba: u64, skip: u32) {
            self.fail.set(Some((lba, skip)));
        }
        /// Whether the read `fail_read` names has not happened yet.
        pub(crate) fn read_failure_armed(&self) -> bool {
            self.fail.get().is_some()
        }
    }

    impl BlockIo for Shared {
        fn block_size(&self) -> usize {
            self.dev.borrow().block_size()
        }
        fn capacity_blocks(&self) -> u64 {
            self.dev.borrow().capacity_blocks()
        }
        fn queue_depth(&self) -> usize {
            self.dev.borrow().queue_depth()
        }
        fn in_flight(&self) -> usize {
            self.dev.borrow().in_flight() + self.failed.borrow().len()
        }
        fn submit_write(
            &mut self,
            tag: u64,
            lba: u64,
            buf: BlockBuf,
            durable: bool,
        ) -> Result<(), SubmitError> {
            self.dev.borrow_mut().submit_write(tag, lba, buf, durable)
        }
        fn submit_read(&mut self, tag: u64, lba: u64, buf: BlockBuf) -> Result<(), SubmitError> {
            match self.fail.get() {
                Some((at, 0)) if at == lba => {
                    self.fail.set(None);
                    let result = Err(BlockError::Io(format!("test: read error at block {lba}")));
                    self.failed.borrow_mut().push(Completion {
                        tag,
                        op: BlockOp::Read,
                        lba,
                        result,
                        buf: Some(buf),
                    });
                    Ok(())
                }
                Some((at, skip)) if at == lba => {
                    self.fail.set(Some((at, skip - 1)));
                    self.dev.borrow_mut().submit_read(tag, lba, buf)
                }
                _ => self.dev.borrow_mut().submit_read(tag, lba, buf),
            }
        }
        fn submit_flush(&mut self, tag: u64) -> Result<(), SubmitError> {
            self.dev.borrow_mut().submit_flush(tag)
        }
        fn poll_completions(&mut self, out: &mut vigil_pmd::Batch<Completion>) -> usize {
            let mut n = 0;
            while out.room() > 0 {
                let Some(c) = self.failed.borrow_mut().pop() else { break };
                out.push(c).expect("room checked");
                n += 1;
            }
            n + self.dev.borrow_mut().poll_completions(out)
        }
    }
}

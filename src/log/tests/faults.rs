//! Damaged records at open: a flipped byte of an acknowledged record is corruption (refused with
//! the device untouched) whether the records after it or the superblock's watermark say it was
//! durable; a torn last write is still cut; damaged padding is stepped over; damaged records a
//! snapshot covers are skipped; the operator's accepted loss cuts exactly where the damage is.

use super::*;

/// A log of `n` quarter-block records (four to a block: block k holds lsns 4k+1..=4k+4), each
/// acknowledged before the next is appended, left without a clean close (as after a crash).
fn acked_one_by_one(cfg: UalConfig, n: u64) -> (Ual<MemoryBlockIo>, Model) {
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    for lsn in 1..=n {
        append(&mut ual, &mut model, 1, 0, quarter_block(lsn, 5));
        while ual.durable_lsn() < lsn {
            ual.flush_step().unwrap();
            ual.poll(NOW).unwrap();
        }
    }
    (ual, model)
}

#[test]
fn every_flipped_byte_of_an_acknowledged_record_with_records_after_it_is_corruption() {
    let cfg = small();
    let (mut ual, _) = acked_one_by_one(cfg, 40);
    let (lsn, off) = (18, ual.device_offset(18).unwrap() as usize);
    // No clean close: the records after it say it was durable.
    let image = ual.into_device().bytes().to_vec();
    for at in off..off + 1024 {
        let mut bad = image.clone();
        bad[at] ^= 0x24;
        let report = refused(&bad, cfg, RecoverOptions::default());
        assert_eq!(report.first_bad_lsn, lsn, "flip at {at}");
        // Records 19..=40 follow it: two in its own block (found by trying every offset), 20 after.
        assert_eq!((report.highest_valid_after, report.valid_after), (Some(40), 22), "flip at {at}");
        assert!(report.durable_watermark >= lsn);
    }
    let mut bad = image.clone();
    bad[off + 200] ^= 1;
    let line = refused(&bad, cfg, RecoverOptions::default()).to_string();
    assert!(!line.contains('\n') && line.contains("record 18") && line.contains("up to lsn 40"), "{line}");
}

#[test]
fn a_flipped_last_record_after_a_clean_close_is_corruption() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    for lsn in 1..=30 {
        append(&mut ual, &mut model, 1, 0, payload(lsn, 70, 1));
    }
    let off = ual.device_offset(30).unwrap() as usize;
    let mut dev = ual.close().unwrap();
    dev.bytes_mut()[off + 40] ^= 1;
    let report = refused(dev.bytes(), cfg, RecoverOptions::default());
    assert_eq!((report.first_bad_lsn, report.durable_watermark, report.valid_after), (30, 30, 0));
    // The operator accepts the loss: cut there, and the next open is clean.
    let (mut ual, open1) = open_accepting_loss(dev, cfg, 30);
    assert_eq!((open1.last_lsn, open1.truncated_at_lsn), (29, Some(30)));
    model.truncate(29);
    check_against(&mut ual, &model);
    let (mut ual, open2) = open(ual.close().unwrap(), cfg);
    assert_eq!((open2.last_lsn, open2.truncated_at_lsn, open2.accepted_loss), (29, None, None));
    check_against(&mut ual, &model);
}

#[test]
fn accept_loss_only_at_the_lsn_found() {
    let cfg = small();
    let (mut ual, _) = acked_one_by_one(cfg, 20);
    let off = ual.device_offset(9).unwrap() as usize;
    let mut image = ual.into_device().bytes().to_vec();
    image[off + 3] ^= 8;
    let other = RecoverOptions { accept_loss_from: Some(10), ..RecoverOptions::default() };
    assert_eq!(refused(&image, cfg, other).first_bad_lsn, 9);
    let (_, report) = open_accepting_loss(device_from(&image), cfg, 9);
    assert_eq!(report.last_lsn, 8);
}

#[test]
fn a_torn_last_write_is_still_cut() {
    // A write torn inside a record: only a device that tears inside a 4 KiB block does that.
    let cfg = UalConfig { atomic_write_bytes: ATOMIC_WRITE_SECTOR, ..small() };
    let (mut ual, mut model) = acked_one_by_one(cfg, 20);
    for lsn in 21..=24 {
        append(&mut ual, &mut model, 1, 0, quarter_block(lsn, 5));
    }
    assert_eq!(ual.flush_step().unwrap(), 1);
    let off = ual.device_offset(22).unwrap() as usize;
    let mut dev = ual.into_device();
    // The write landed (the memory device writes at submit) but tore inside record 22.
    dev.bytes_mut()[off + 500] ^= 0x10;
    let (mut ual, report) = open(dev, cfg);
    assert_eq!((report.last_lsn, report.truncated_at_lsn, report.stop), (21, Some(22), ScanStop::Torn));
    model.truncate(21);
    check_against(&mut ual, &model);
}

#[test]
fn a_flipped_byte_in_a_blocks_padding_is_stepped_over() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    // Three 1032-byte records to a block, then 1000 bytes of zero padding.
    for lsn in 1..=20 {
        append(&mut ual, &mut model, 1, 0, payload(lsn, 1000, 3));
    }
    let block = ual.device_offset(4).unwrap() as usize - BLOCK_SIZE;
    let mut dev = ual.close().unwrap();
    for pad in [3 * 1032, 3 * 1032 + 5, 3 * 1032 + 31] {
        let mut d = device_from(dev.bytes());
        d.bytes_mut()[block + pad] ^= 0x40;
        let (mut ual, report) = open(d, cfg);
        assert_eq!((report.last_lsn, report.truncated_at_lsn), (20, None), "flip at {pad}");
        assert_eq!(report.padding_damaged_blocks, 1);
        check_against(&mut ual, &model);
        // Reopened (and appended to), the damage is stepped over again; nothing is lost.
        append(&mut ual, &mut model, 1, 0, payload(21, 10, 3));
        let (mut ual, report) = open(ual.close().unwrap(), cfg);
        assert_eq!((report.last_lsn, report.padding_damaged_blocks), (21, 1));
        check_against(&mut ual, &model);
        model.truncate(20);
    }
    dev.bytes_mut()[block + 3 * 1032 + 5] ^= 0x40;
    let (_, report) = open(dev, cfg);
    assert_eq!(report.last_lsn, 20);
}

#[test]
fn a_flipped_record_the_snapshot_covers_is_skipped() {
    let cfg = small();
    let (mut ual, mut model) = acked_one_by_one(cfg, 60);
    // Checkpointed at 50: the log's start moves to segment 1 (lsn 33); 40 is covered.
    ual.checkpoint(50, 1).unwrap();
    settle(&mut ual);
    let off = ual.device_offset(40).unwrap() as usize;
    let mut dev = ual.close().unwrap();
    dev.bytes_mut()[off + 7] ^= 2;
    let image = dev.bytes().to_vec();
    let (mut ual, report) = open(dev, cfg);
    let skipped = SkippedRange { first_lsn: 40, last_lsn: 40, records: 1, blocks: 1 };
    assert_eq!((report.last_lsn, report.truncated_at_lsn, report.skipped), (60, None, Some(skipped)));
    assert_eq!(ual.first_lsn(), 41);
    let mut got = Vec::new();
    ual.replay(51, 60, |r| got.push(r.payload.to_vec())).unwrap();
    assert_eq!(got, model[50..60].iter().map(|m| m.2.clone()).collect::<Vec<_>>());
    // It keeps working: appends, a checkpoint that would start in the damaged block keeps the
    // old start, reopen.
    for lsn in 61..=70 {
        append(&mut ual, &mut model, 1, 0, quarter_block(lsn, 5));
    }
    settle(&mut ual);
    let (mut ual, report) = open(ual.close().unwrap(), cfg);
    assert_eq!((report.last_lsn, report.skipped.map(|s| s.first_lsn)), (70, Some(40)));
    ual.replay(51, 70, |_| {}).unwrap();
    // Without a snapshot covering it, the same damage is corruption.
    let mut image = image;
    for copy in 0..2 {
        let block = &mut image[copy * BLOCK_SIZE..(copy + 1) * BLOCK_SIZE];
        let sb = Superblock::decode(block).unwrap();
        Superblock { snapshot_lsn: 0, snapshot_term: 0, ..sb }.encode(block);
    }
    assert_eq!(refused(&image, cfg, RecoverOptions::default()).first_bad_lsn, 40);
}

#[test]
fn a_flipped_record_covered_only_by_the_callers_snapshot_is_skipped_and_live_ones_are_not() {
    let cfg = small();
    let (mut ual, _) = acked_one_by_one(cfg, 30);
    let off = ual.device_offset(10).unwrap() as usize;
    let mut image = ual.into_device().bytes().to_vec();
    image[off + 900] ^= 0x80;
    // Not covered: corruption.
    assert_eq!(refused(&image, cfg, RecoverOptions::default()).first_bad_lsn, 10);
    // Covered by the caller's snapshot at 12 (blocks: 9..=12 hold 9..12, the next starts at 13).
    let opts = RecoverOptions { covered_lsn: 12, accept_loss_from: None };
    let (mut ual, report) = Ual::recover(device_from(&image), cfg, opts).unwrap().commit().unwrap();
    let skipped = SkippedRange { first_lsn: 10, last_lsn: 12, records: 3, blocks: 1 };
    assert_eq!((report.last_lsn, report.skipped), (30, Some(skipped)));
    assert_eq!(ual.first_lsn(), 13);
    ual.replay(13, 30, |_| {}).unwrap();
    // Covered only up to 11: resuming at 13 would skip live record 12: corruption, and the first
    // lsn lost is 12.
    let opts = RecoverOptions { covered_lsn: 11, accept_loss_from: None };
    assert_eq!(refused(&image, cfg, opts).first_bad_lsn, 12);
}

/// A found case: a record the snapshot covers is damaged in a block that also holds live records
/// (acknowledged after a crash), and no later block resumes the log within the snapshot: those live
/// records are lost with the block, so it is corruption from the first live lsn.
#[test]
fn a_covered_record_damaged_in_a_block_with_live_records_is_corruption_from_the_first_live_lsn() {
    use Op::*;
    let ops = vec![
        Append { n: 16, len: 0, bump_term: false },
        Append { n: 23, len: 183, bump_term: false },
        Append { n: 10, len: 0, bump_term: false },
        Corrupt { pick: 2024922541915722524, at: 0 },
        Checkpoint,
        Append { n: 7, len: 0, bump_term: false },
        Crash,
        Poll,
        Checkpoint,
        Append { n: 12, len: 407, bump_term: true },
        Corrupt { pick: 8792056448016092512, at: 12408504094516232453 },
    ];
    model_run(ops).unwrap();
}

#[test]
fn a_damaged_last_block_the_snapshot_covers_resumes_the_log_after_it() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    for lsn in 1..=12u64 {
        append(&mut ual, &mut model, 1, 0, payload(lsn, (lsn as usize * 17) % 700, 1));
    }
    settle(&mut ual);
    ual.checkpoint(9, 1).unwrap();
    settle(&mut ual);
    // Record 5 of the only block is damaged; the snapshot covers 1..=9, but 10..=12 were durable
    // and share the block: corruption from 10, the first live lsn.
    let off = ual.device_offset(5).unwrap() as usize;
    let mut dev = ual.into_device();
    dev.bytes_mut()[off] ^= 0x81;
    let report = refused(dev.bytes(), cfg, RecoverOptions::default());
    assert_eq!((report.first_bad_lsn, report.durable_watermark), (10, 12));
    // Accepting that loss: the log resumes after the snapshot, in the next block.
    let (mut ual, rep) = open_accepting_loss(dev, cfg, 10);
    let skipped = SkippedRange { first_lsn: 5, last_lsn: 9, records: 5, blocks: 1 };
    assert_eq!((rep.last_lsn, rep.skipped), (9, Some(skipped)));
    model.truncate(9);
    for lsn in 10..=70u64 {
        append(&mut ual, &mut model, 1, 0, payload(lsn, 480, 1));
    }
    settle(&mut ual);
    ual.replay(10, 70, |_| {}).unwrap();
    // Reopened, the covered damage is skipped again and nothing is cut.
    let (mut ual, rep) = open(ual.close().unwrap(), cfg);
    assert_eq!((rep.last_lsn, rep.truncated_at_lsn, rep.skipped.map(|s| s.first_lsn)), (70, None, Some(5)));
    check_against(&mut ual, &model);
    // A later live record damaged is still told: corruption at its lsn.
    let off = ual.device_offset(64).unwrap() as usize;
    let mut dev = ual.into_device();
    dev.bytes_mut()[off + 3] ^= 0x81;
    assert_eq!(refused(dev.bytes(), cfg, RecoverOptions::default()).first_bad_lsn, 64);
}

/// The simulator's seed 99239146113420: a record the snapshot covers damaged, and the one live
/// record after it in the same block claimed durable by nothing (a crash right after it was
/// acknowledged). Recovery resumed the log after the snapshot and dropped it silently; a reader
/// cannot step past a damaged record inside a block, so it must refuse.
#[test]
fn a_covered_record_damaged_before_an_unclaimed_live_record_in_its_block_is_corruption() {
    let cfg = small();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    for lsn in 1..=11u64 {
        append(&mut ual, &mut model, 1, 0, payload(lsn, 40, 1));
    }
    settle(&mut ual);
    ual.checkpoint(11, 1).unwrap();
    settle(&mut ual);
    append(&mut ual, &mut model, 1, 0, payload(12, 40, 1));
    settle(&mut ual);
    assert_eq!(ual.durable_lsn(), 12, "record 12 was acknowledged");
    let (at5, at12) = (ual.device_offset(5).unwrap() as usize, ual.device_offset(12).unwrap() as usize);
    assert_eq!(at5 / BLOCK_SIZE, at12 / BLOCK_SIZE, "one block");
    let mut dev = ual.into_device();
    dev.bytes_mut()[at5 + 40] ^= 0x10;
    let report = refused(dev.bytes(), cfg, RecoverOptions::default());
    assert_eq!((report.first_bad_lsn, report.highest_valid_after), (12, Some(12)), "{report}");
    assert!(report.why.contains("in its block"), "{report}");
}

#[test]
fn every_refused_recovery_leaves_the_device_byte_for_byte() {
    let cfg = small();
    let expect_untouched = |bytes: &[u8], cfg: UalConfig, want: fn(&LogError) -> bool| {
        let dev = shared::Shared::new(device_from(bytes));
        let err = Ual::recover(dev.clone(), cfg, RecoverOptions::default()).expect_err("refused");
        assert!(want(&err), "{err}");
        assert!(dev.bytes() == bytes, "refused with {err}, but the device was written");
    };
    // Blank, formatting not allowed.
    let blank = vec![0u8; cfg.device_blocks() as usize * BLOCK_SIZE];
    let no_format = UalConfig { format_if_blank: false, ..cfg };
    expect_untouched(&blank, no_format, |e| matches!(e, LogError::NoSuperblock(_)));
    // A blank device is only formatted by the commit: recovering it writes nothing.
    let dev = shared::Shared::new(device_from(&blank));
    let recovered = Ual::recover(dev.clone(), cfg, RecoverOptions::default()).unwrap();
    assert!(recovered.report().formatted && dev.bytes() == blank, "recover formatted the device");
    drop(recovered);
    // Both superblocks damaged; a geometry other than the device's; corruption.
    let (mut ual, _) = acked_one_by_one(cfg, 30);
    let off = ual.device_offset(12).unwrap() as usize;
    let image = ual.into_device().bytes().to_vec();
    let mut bad = image.clone();
    bad[3] ^= 1;
    bad[BLOCK_SIZE + 3] ^= 1;
    expect_untouched(&bad, cfg, |e| matches!(e, LogError::NoSuperblock(_)));
    let other = UalConfig { segment_blocks: 4, segment_count: 8, ..cfg };
    expect_untouched(&image, other, |e| matches!(e, LogError::Config(_)));
    let mut bad = image.clone();
    bad[off + 50] ^= 1;
    expect_untouched(&bad, cfg, |e| matches!(e, LogError::Corruption(_)));
}

#[test]
fn a_lost_covered_record_at_a_blocks_end_is_skipped_from_the_next_block() {
    let cfg = small();
    let (mut ual, _) = acked_one_by_one(cfg, 30);
    // Record 12, the last of block 2 (9..=12), zeroed: the block ends early and block 3 starts
    // with 13, a gap at a block's start.
    let off = ual.device_offset(12).unwrap() as usize;
    let mut image = ual.into_device().bytes().to_vec();
    image[off..off + 1024].fill(0);
    assert_eq!(refused(&image, cfg, RecoverOptions::default()).first_bad_lsn, 12);
    let opts = RecoverOptions { covered_lsn: 20, accept_loss_from: None };
    let (mut ual, report) = Ual::recover(device_from(&image), cfg, opts).unwrap().commit().unwrap();
    let skipped = SkippedRange { first_lsn: 12, last_lsn: 12, records: 1, blocks: 0 };
    assert_eq!((report.last_lsn, report.skipped), (30, Some(skipped)));
    assert_eq!(ual.first_lsn(), 13);
    ual.replay(13, 30, |_| {}).unwrap();
}

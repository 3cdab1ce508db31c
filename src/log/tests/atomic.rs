//! `atomic_write_bytes = 4096`: the device writes a 4 KiB block whole or not at all, so a crash
//! leaves every block wholly old or wholly new, and a record failing its checksum can only be media
//! damage. A flipped byte in any acknowledged record of the last group commit (which no later record
//! claims durable after a crash) is corruption, refused with the device untouched; a write torn at
//! block granularity (any subset of its blocks) is a clean cut keeping every durable record; a flipped
//! bit in the zeros after the last record, or in an older lap's block past the log's end, loses
//! nothing and starts. With 512 the same flips in the last group commit are cut as torn writes.

use super::*;

fn cfg4096() -> UalConfig {
    UalConfig { atomic_write_bytes: ATOMIC_WRITE_BLOCK, ..small() }
}

/// Appends one record and waits until it is acknowledged (durable).
fn append_acked(ual: &mut Ual<MemoryBlockIo>, model: &mut Model, body: Vec<u8>) -> Lsn {
    let lsn = append(ual, model, 1, 0, body);
    while ual.durable_lsn() < lsn {
        ual.flush_step().unwrap();
        ual.poll(NOW).unwrap();
    }
    lsn
}

/// 20 records acknowledged one by one, then records 21..=26 in one group commit, acknowledged,
/// then a crash (no clean close): nothing claims 21..=26 durable. Returns the device image, the
/// model and the last group commit's records.
fn acknowledged_last_group_commit(cfg: UalConfig) -> (Vec<u8>, Model, Vec<Placed>) {
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    for lsn in 1..=20 {
        append_acked(&mut ual, &mut model, payload(lsn, 300 + (lsn as usize * 37) % 500, 7));
    }
    for lsn in 21..=26 {
        append(&mut ual, &mut model, 1, 0, payload(lsn, 200 + (lsn as usize * 53) % 700, 7));
    }
    assert_eq!(ual.flush_step().unwrap(), 1, "one group commit");
    ual.poll(NOW).unwrap();
    assert_eq!(ual.durable_lsn(), 26, "the last group commit was acknowledged");
    let recs = (21..=26)
        .map(|lsn| {
            let off = ual.device_offset(lsn).unwrap() as usize;
            (lsn, off, RECORD_HEADER_LEN + model[lsn as usize - 1].2.len())
        })
        .collect();
    (ual.into_device().bytes().to_vec(), model, recs)
}

#[test]
fn with_4096_a_flipped_byte_in_the_unclaimed_last_group_commit_is_corruption() {
    let cfg = cfg4096();
    let (image, _, recs) = acknowledged_last_group_commit(cfg);
    // Undamaged, it opens with everything, and nothing claims the last group commit.
    let (_, report) = open(device_from(&image), cfg);
    assert_eq!((report.last_lsn, report.durable_watermark), (26, 20), "{report:?}");
    for &(lsn, off, len) in &recs {
        for at in off..off + len {
            let mut bad = image.clone();
            bad[at] ^= 0x42;
            // `refused` also checks that the device is byte for byte unchanged.
            let report = refused(&bad, cfg, RecoverOptions::default());
            assert_eq!(report.first_bad_lsn, lsn, "flip at {at}: {report}");
            assert!(report.why.contains("atomic_write_bytes = 4096"), "flip at {at}: {report}");
            assert_eq!(report.durable_watermark, 20, "nothing claims it: {report}");
        }
    }
    // The operator's repair cuts it, as any corruption.
    let (lsn, off, _) = recs[2];
    let mut bad = image.clone();
    bad[off + 40] ^= 1;
    let (_, report) = open_accepting_loss(device_from(&bad), cfg, lsn);
    assert_eq!((report.last_lsn, report.truncated_at_lsn), (lsn - 1, Some(lsn)));
}

#[test]
fn with_512_the_same_flips_are_cut_as_torn_writes() {
    let cfg = UalConfig { atomic_write_bytes: ATOMIC_WRITE_SECTOR, ..small() };
    let (image, model, recs) = acknowledged_last_group_commit(cfg);
    for &(lsn, off, len) in &recs {
        for at in (off..off + len).step_by(7) {
            let mut bad = image.clone();
            bad[at] ^= 0x42;
            let (mut ual, report) = open(device_from(&bad), cfg);
            assert_eq!((report.last_lsn, report.truncated_at_lsn), (lsn - 1, Some(lsn)), "flip at {at}");
            check_against(&mut ual, &model[..lsn as usize - 1].to_vec());
        }
    }
}

#[test]
fn with_4096_a_write_torn_at_block_granularity_is_a_clean_cut() {
    let cfg = UalConfig { segment_blocks: 16, segment_count: 4, write_blocks_max: 8, ..cfg4096() };
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    for lsn in 1..=20 {
        append_acked(&mut ual, &mut model, payload(lsn, 100 + (lsn as usize * 71) % 900, 3));
    }
    let img0 = ual.device().bytes().to_vec();
    // One group commit of several blocks, the first of them the partly filled tail block.
    for lsn in 21..=40 {
        append(&mut ual, &mut model, 2, 1, payload(lsn, 100 + (lsn as usize * 71) % 900, 3));
    }
    assert_eq!(ual.flush_step().unwrap(), 1, "one write");
    let block_of = |ual: &mut Ual<MemoryBlockIo>, lsn| ual.device_offset(lsn).unwrap() as usize / BLOCK_SIZE;
    let rec_blocks: Vec<(Lsn, usize)> = (21..=40).map(|lsn| (lsn, block_of(&mut ual, lsn))).collect();
    let img1 = ual.into_device().bytes().to_vec();
    let blocks: Vec<usize> = (0..img0.len() / BLOCK_SIZE)
        .filter(|b| img0[b * BLOCK_SIZE..(b + 1) * BLOCK_SIZE] != img1[b * BLOCK_SIZE..(b + 1) * BLOCK_SIZE])
        .collect();
    assert!(blocks.len() >= 4 && blocks.len() <= 8, "the write covers {blocks:?}");
    // Every subset of the write's blocks landed, the others not (prefixes and scattered).
    for landed in 0u32..1 << blocks.len() {
        let mut image = img0.clone();
        for (i, &b) in blocks.iter().enumerate() {
            if landed & (1 << i) != 0 {
                image[b * BLOCK_SIZE..(b + 1) * BLOCK_SIZE]
                    .copy_from_slice(&img1[b * BLOCK_SIZE..(b + 1) * BLOCK_SIZE]);
            }
        }
        let whole = |b: usize| blocks.iter().position(|&x| x == b).is_none_or(|i| landed & (1 << i) != 0);
        let expected = rec_blocks.iter().take_while(|(_, b)| whole(*b)).last().map_or(20, |(lsn, _)| *lsn);
        let (mut ual, report) = Ual::open(device_from(&image), cfg)
            .unwrap_or_else(|e| panic!("blocks {landed:b} of {blocks:?} landed: {e}"));
        assert_eq!(report.last_lsn, expected, "blocks {landed:b} of {blocks:?} landed: {report:?}");
        assert_ne!(report.stop, ScanStop::Torn, "a whole-block tear fails no checksum: {report:?}");
        check_against(&mut ual, &model[..expected as usize].to_vec());
        // The cut stays cut: a second open finds the same log and no cut.
        let (mut ual, again) = open(ual.close().unwrap(), cfg);
        assert_eq!((again.last_lsn, again.truncated_at_lsn), (expected, None), "{again:?}");
        check_against(&mut ual, &model[..expected as usize].to_vec());
    }
}

#[test]
fn with_4096_a_flipped_bit_in_the_zeros_after_the_last_record_loses_nothing() {
    let cfg = cfg4096();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    for lsn in 1..=10 {
        append_acked(&mut ual, &mut model, payload(lsn, 500, 9));
    }
    // Crash after the last record was acknowledged: nothing claims it, and zeros follow it in its
    // block and in the next.
    let end = ual.device_offset(10).unwrap() as usize + RECORD_HEADER_LEN + 500;
    let image = ual.into_device().bytes().to_vec();
    let next_block_end = (end / BLOCK_SIZE + 2) * BLOCK_SIZE;
    assert!(image[end..next_block_end].iter().all(|&b| b == 0));
    for at in (end..next_block_end).step_by(3) {
        let mut bad = image.clone();
        bad[at] ^= 1 << (at % 8);
        let (mut ual, report) = open(device_from(&bad), cfg);
        assert_eq!(report.last_lsn, 10, "flip at {at}: {report:?}");
        check_against(&mut ual, &model);
        // Two flipped bytes are still padding.
        bad[(at + 17).min(next_block_end - 1)] ^= 0x80;
        let (_, report) = open(device_from(&bad), cfg);
        assert_eq!(report.last_lsn, 10, "flips at {at}: {report:?}");
    }
    // More than `PADDING_FLIP_BYTES_MAX` non-zero bytes where a record would start read as one:
    // refused (a real record header has at least four).
    let mut bad = image.clone();
    bad[end..end + 3].fill(0xff);
    let report = refused(&bad, cfg, RecoverOptions::default());
    assert_eq!(report.first_bad_lsn, 11, "{report}");
}

#[test]
fn with_4096_a_flipped_bit_in_an_older_laps_block_past_the_end_loses_nothing() {
    let cfg = cfg4096();
    let (mut ual, _) = open(device(cfg), cfg);
    let mut model = Model::new();
    // Quarter-block records, acknowledged one by one, checkpointed as the ring fills: the ring
    // wraps, and the block after the last full one still holds records of the previous lap.
    let mut lsn = 0;
    while lsn < 160 {
        lsn += 1;
        match ual.append(1, 0, &quarter_block(lsn, 1)) {
            Ok(got) => {
                assert_eq!(got, lsn);
                model.push((1, 0, quarter_block(lsn, 1)));
                ual.sync_blocking().unwrap();
            }
            Err(LogError::Full) => {
                let d = ual.durable_lsn();
                ual.checkpoint(d, 1).unwrap();
                ual.sync_blocking().unwrap();
                lsn -= 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let next = ual.device_offset(160).unwrap() as usize + 1024;
    assert_eq!(next % BLOCK_SIZE, 0, "160 ends a block");
    let image = ual.into_device().bytes().to_vec();
    let old = decode_record(&image[next..next + BLOCK_SIZE], 0);
    assert!(matches!(old, Slot::Record(h) if h.lsn < 160), "an older lap follows: {old:?}");
    for at in [next + 3, next + 9, next + 30, next + 500] {
        let mut bad = image.clone();
        bad[at] ^= 0x10;
        let (mut ual, report) = open(device_from(&bad), cfg);
        assert_eq!(report.last_lsn, 160, "flip at {at}: {report:?}");
        let first = ual.first_lsn() as usize;
        let mut got = Vec::new();
        ual.replay(first as u64, 160, |r| got.push(r.payload.to_vec())).unwrap();
        assert_eq!(got, model[first - 1..].iter().map(|m| m.2.clone()).collect::<Vec<_>>());
    }
}

#[test]
fn atomic_write_bytes_is_512_or_4096() {
    for bad in [0, 1024, 8192] {
        let cfg = UalConfig { atomic_write_bytes: bad, ..small() };
        match Ual::open(device(cfg), cfg) {
            Err(LogError::Config(why)) => assert!(why.starts_with("atomic_write_bytes"), "{why}"),
            Err(e) => panic!("{bad}: {e}"),
            Ok(_) => panic!("{bad} accepted"),
        }
    }
}

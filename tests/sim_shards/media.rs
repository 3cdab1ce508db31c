//! Media faults and refused starts: while the node is down, a restart may find a flipped bit in a
//! written block of a partition's log device, a latent sector error (every read of the block
//! fails until it is written again), or a flipped bit in its snapshot file; while it starts, any
//! read may fail once (a transient error).
//!
//! The rule checked at every restart: acknowledged data is never silently dropped. Either the
//! partition starts with every acknowledged write (`check_recovered`, the model check), or
//! `Partition::open` refuses. A refusal is legitimate only on a partition whose media were
//! damaged, or while a transient read error was injected; any other refusal is a violation.
//! A refusal a transient read error may explain is retried (the operator starts the node again;
//! transient errors are off from the `TRANSIENT_RETRIES_MAX`-th retry on, so a retry can settle
//! it); any other ends the seed as "refused, detected": the partition, and with it the node, stays
//! down for the rest of the seed. Which outcome a damaged partition gets is not required (a
//! latent sector error in records a snapshot covers may or may not stop a start): only that a
//! start that succeeds lost nothing acknowledged.
//!
//! Invariant: injections draw from the seed's generator only, once per restart (not again at its
//! retries), and only into blocks that hold something (`SimDisk::written_blocks`).

use super::*;

/// Refused starts in a row a transient read error may explain before transient errors are turned
/// off for the next attempt.
const TRANSIENT_RETRIES_MAX: u32 = 3;

impl Sim {
    /// A restart's media faults on partition `p` (its first attempt only).
    pub(crate) fn inject_media_faults(&mut self, p: u16, disk: &mut SimDisk) {
        let m = self.p.media;
        if !m.any() || self.refusals_in_row > 0 {
            return;
        }
        let written = disk.written_blocks();
        if self.rng.chance(m.bit_flip) && !written.is_empty() {
            let lba = written[self.rng.below(written.len() as u64) as usize];
            let bit = self.rng.below(BLOCK_SIZE as u64 * 8) as usize;
            if self.unclaimed_blocks(disk).contains(&lba) {
                // The one fault a log alone cannot tell from a torn write (docs/STORAGE.md section 6,
                // "What stays ambiguous"): damage to the last group commits that no later record
                // and no superblock claims durable, after a crash. Not injected; counted.
                self.count("bit flips not injected: in the unclaimed last group commits", 1);
            } else {
                disk.flip_bit(lba, bit);
                self.damage(
                    p,
                    format!("bit {bit} of block {lba} of the log flipped"),
                    "bits flipped in log devices",
                );
            }
        }
        if self.rng.chance(m.latent) && !written.is_empty() {
            let lba = written[self.rng.below(written.len() as u64) as usize];
            disk.mark_latent_error(lba);
            self.damage(p, format!("latent sector error at block {lba}"), "latent sector errors injected");
        }
        if self.rng.chance(m.snapshot_flip) {
            let path = SnapshotFile::new(&self.snap_dir.0, p).path().to_path_buf();
            if let Ok(mut bytes) = std::fs::read(&path) {
                if !bytes.is_empty() {
                    let bit = self.rng.below(bytes.len() as u64 * 8) as usize;
                    bytes[bit / 8] ^= 1 << (bit % 8);
                    std::fs::write(&path, &bytes).expect("rewrite the snapshot file");
                    self.damage(
                        p,
                        format!("bit {bit} of the snapshot file flipped"),
                        "snapshot files with a flipped bit",
                    );
                }
            }
        }
    }

    /// The device blocks holding records that nothing claims durable: the records past the durable
    /// watermark a recovery of the undamaged device finds (on a copy, so nothing is written).
    fn unclaimed_blocks(&self, disk: &SimDisk) -> Vec<u64> {
        let image = disk.volatile_image();
        let mut copy = MemoryBlockIo::new((image.len() / BLOCK_SIZE) as u64, 16);
        copy.bytes_mut().copy_from_slice(&image);
        let Ok((mut ual, report)) = Ual::open(copy, self.p.partition_config().ual) else { return Vec::new() };
        let mut blocks: Vec<u64> = (report.durable_watermark + 1..=ual.last_lsn())
            .filter_map(|lsn| ual.device_offset(lsn).ok())
            .map(|at| at / BLOCK_SIZE as u64)
            .collect();
        blocks.dedup();
        blocks
    }

    fn damage(&mut self, p: u16, what: String, stat: &'static str) {
        trace!(self, "MEDIA FAULT partition {p}: {what}");
        self.count(stat, 1);
        self.damaged[usize::from(p)] = true;
        self.damage_log[usize::from(p)].push(what);
    }

    /// The disk's faults while a partition opens at a restart (the first start formats a blank
    /// device, with no fault): transient read errors, unless starts were refused too often in a
    /// row.
    pub(crate) fn open_faults(&self) -> SimDiskFaults {
        let read_error =
            if self.refusals_in_row < TRANSIENT_RETRIES_MAX { self.p.media.read_error } else { 0.0 };
        SimDiskFaults { read_error, ..SimDiskFaults::none() }
    }

    /// What the faults injected into partition `p` so far were, for a violation's text.
    pub(crate) fn damage_of(&self, p: u16) -> String {
        match &self.damage_log[usize::from(p)] {
            d if d.is_empty() => String::new(),
            d => format!(" (media faults injected into partition {p}: {})", d.join("; ")),
        }
    }

    /// `Partition::open` of `p` refused with `error`; `before`: the device's image before it. A
    /// refused start writes nothing (recovery decides, and replays, before its first write): a
    /// violation otherwise.
    pub(crate) fn on_refused_open(&mut self, p: u16, error: &str, before: &[u8], disk: &SimDisk) {
        let c = disk.counters();
        trace!(
            self,
            "partition {p} REFUSED to start ({} transient and {} latent read errors): {error}",
            c.read_errors - c.latent_read_errors,
            c.latent_read_errors
        );
        if *before != disk.volatile_image() {
            self.violation(format!("the refused start of partition {p} wrote to its device first: {error}"));
        }
    }

    /// A start was refused: retried when a transient read error may explain it, else the end of
    /// the seed (when the media were damaged) or a violation (when they were not).
    pub(crate) fn on_refused_start(&mut self, r: Refused) {
        let p = r.partition;
        if r.transient && self.refusals_in_row < TRANSIENT_RETRIES_MAX {
            // A read that failed once may succeed the next time: an operator (or a supervisor)
            // starts the node again, and refusing to start on an unreadable block is what a store
            // that never guesses must do. Ending the seed here would hide what the retry finds.
            self.refusals_in_row += 1;
            self.count("starts refused after a transient read error (retried)", 1);
            let up_at = self.now() + self.rng.range(0, self.p.down_ns_max);
            self.down = Some((r.disks, up_at));
            return;
        }
        if !self.damaged[usize::from(p)] {
            self.violation(format!("partition {p} does not recover: {}", r.error));
        }
        trace!(self, "seed ends: partition {p} refused to start, detected: {}", r.error);
        self.count("seeds refused, detected (the node stays down)", 1);
        self.refused = Some(format!("partition {p}: {}{}", r.error, self.damage_of(p)));
    }
}

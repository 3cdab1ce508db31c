//! Media faults and refused starts: while the node is down, a restart may find a flipped bit in a
//! written block of a partition's log device, a latent sector error (every read of the block
//! fails until it is written again), or a flipped bit in its snapshot file, or the file lost; while it starts, any
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
//! Bit flips land in the unclaimed last group commits too when the seed's devices write 4 KiB
//! whole (`atomic_write_bytes = 4096`); with 512 they are skipped there (counted): the log cannot
//! tell such damage from a torn write.
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
            let mut lba = written[self.rng.below(written.len() as u64) as usize];
            let mut bit = self.rng.below(BLOCK_SIZE as u64 * 8) as usize;
            let records = self.unclaimed_records(disk);
            let atomic_block = self.p.ual.atomic_write_bytes >= BLOCK_SIZE as u32;
            if atomic_block && !records.is_empty() && self.rng.chance(0.5) {
                // Aim at the bytes of a record nothing claims durable (acknowledged or not): a
                // random bit of a block mostly lands in padding, and this is the damage that was
                // once cut silently. The start must refuse it.
                let (at, len) = records[self.rng.below(records.len() as u64) as usize];
                let byte = at + self.rng.below(len);
                lba = byte / BLOCK_SIZE as u64;
                bit = (byte % BLOCK_SIZE as u64) as usize * 8 + self.rng.below(8) as usize;
                self.count("bit flips aimed at unclaimed records (atomic 4096)", 1);
            }
            // Records never span blocks: a record's block is the one it starts in.
            let unclaimed = records.iter().any(|&(at, _)| at / BLOCK_SIZE as u64 == lba);
            if unclaimed && !atomic_block {
                // With 512-byte atomicity, the one fault a log alone cannot tell from a torn write
                // (docs/STORAGE.md section 6, "What remains at 512"): damage to the last group
                // commits that no later record and no superblock claims durable, after a crash.
                // Not injected; counted.
                self.count("bit flips not injected: in the unclaimed last group commits (atomic 512)", 1);
            } else {
                // With 4096 a crash cannot tear a block, so a checksum failure there is corruption:
                // the start must refuse (or the flip hit padding and loses nothing).
                disk.flip_bit(lba, bit);
                self.damage(
                    p,
                    format!("bit {bit} of block {lba} of the log flipped"),
                    "bits flipped in log devices",
                );
                if unclaimed {
                    self.count("bit flips injected into the unclaimed last group commits (atomic 4096)", 1);
                }
            }
        }
        if self.rng.chance(m.latent) && !written.is_empty() {
            let lba = written[self.rng.below(written.len() as u64) as usize];
            disk.mark_latent_error(lba);
            self.damage(p, format!("latent sector error at block {lba}"), "latent sector errors injected");
        }
        let shelf = Rc::clone(&self.shelves[usize::from(p)]);
        let stored = shelf.borrow().durable.as_ref().map_or(0, |b| b.len() as u64);
        if stored > 0 && self.rng.chance(m.snapshot_flip) {
            let bit = self.rng.below(stored * 8) as usize;
            shelf.borrow_mut().durable.as_mut().expect("stored")[bit / 8] ^= 1 << (bit % 8);
            self.damage(
                p,
                format!("bit {bit} of the snapshot file flipped"),
                "snapshot files with a flipped bit",
            );
        }
        if stored > 0 && self.rng.chance(m.snapshot_lost) {
            // Deleted by an operator, or a file system that lost it: a start must refuse if the
            // log no longer holds what it covered, and may start from the log alone if it does.
            shelf.borrow_mut().durable = None;
            self.damage(p, "the snapshot file was lost".to_string(), "snapshot files lost");
        }
    }

    /// The records that nothing claims durable, as (device byte offset, header + payload bytes):
    /// the records past the durable watermark a recovery of the undamaged device finds (on a copy,
    /// so nothing is written).
    fn unclaimed_records(&self, disk: &SimDisk) -> Vec<(u64, u64)> {
        let image = disk.volatile_image();
        let mut copy = MemoryBlockIo::new((image.len() / BLOCK_SIZE) as u64, 16);
        copy.bytes_mut().copy_from_slice(&image);
        let Ok((mut ual, report)) = Ual::open(copy, self.p.partition_config().ual) else { return Vec::new() };
        (report.durable_watermark.max(ual.first_lsn().saturating_sub(1)) + 1..=ual.last_lsn())
            .filter_map(|lsn| {
                let at = ual.device_offset(lsn).ok()?;
                let len = ual.read_meta(lsn).ok()?.len;
                Some((at, (vigil::log::RECORD_HEADER_LEN as u32 + len).into()))
            })
            .collect()
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

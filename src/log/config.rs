//! The log's configuration (`UalConfig`, checked against the device by `validate`) and its
//! error type (`LogError`): what every layer above the UAL is given and told. Split from
//! `mod.rs`, which holds the log itself.

use super::recovery::CorruptionReport;
use super::{Lsn, SUPERBLOCK_BLOCKS};
use thiserror::Error;
use vigil_pmd::block::BLOCK_SIZE;

/// The log's configuration; capacities are allocated once in `open`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UalConfig {
    /// Blocks per segment, a power of two (the unit of recycling and of the in-memory tail image).
    pub segment_blocks: u32,
    /// Segments in the ring; at least 2. Must match the superblock of a formatted device.
    pub segment_count: u32,
    /// Most blocks one write (one flush_step's worth of records) may touch; a power of two, at
    /// most `segment_blocks`. Appends beyond it in one iteration get `LogError::Busy`.
    pub write_blocks_max: u32,
    /// Most log writes in flight at once.
    pub writes_in_flight_max: u32,
    /// Format a blank device (both superblock blocks all zero) instead of refusing it.
    pub format_if_blank: bool,
    /// The unit the device is trusted to write whole across a power loss: `ATOMIC_WRITE_BLOCK`
    /// (4096: a record failing its checksum can then only be media damage, so recovery refuses
    /// it whatever the watermark says) or `ATOMIC_WRITE_SECTOR` (512: a write may tear inside a
    /// block, so a checksum failure nothing claims durable is cut as a torn tail).
    /// docs/STORAGE.md section 6.
    pub atomic_write_bytes: u32,
}

/// `UalConfig::atomic_write_bytes` of a device that writes a 4 KiB block whole or not at all.
pub const ATOMIC_WRITE_BLOCK: u32 = BLOCK_SIZE as u32;
/// `UalConfig::atomic_write_bytes` of a device that only writes a 512-byte sector whole.
pub const ATOMIC_WRITE_SECTOR: u32 = 512;

impl UalConfig {
    /// Blocks of device the log needs: the two superblocks plus the ring.
    pub fn device_blocks(&self) -> u64 {
        SUPERBLOCK_BLOCKS + u64::from(self.segment_blocks) * u64::from(self.segment_count)
    }

    /// Checks the numbers agree with each other and with a device of `capacity_blocks`.
    pub fn validate(&self, capacity_blocks: u64) -> Result<(), LogError> {
        let bad = |key: &str, why: String| Err(LogError::Config(format!("{key}: {why}")));
        if !self.segment_blocks.is_power_of_two() {
            return bad("segment_blocks", format!("{} is not a power of two", self.segment_blocks));
        }
        if self.segment_count < 2 {
            return bad(
                "segment_count",
                format!("{} < 2 (the ring needs a segment to move to)", self.segment_count),
            );
        }
        if self.write_blocks_max < 2 {
            // A record that does not fit the rest of a submitted, partly filled tail block is staged
            // across that block and the next: one block of staging could never take it.
            return bad(
                "write_blocks_max",
                format!("{} < 2 (a record may straddle two blocks)", self.write_blocks_max),
            );
        }
        if !self.write_blocks_max.is_power_of_two() || self.write_blocks_max > self.segment_blocks {
            return bad(
                "write_blocks_max",
                format!(
                    "{} must be a power of two <= segment_blocks {}",
                    self.write_blocks_max, self.segment_blocks
                ),
            );
        }
        if self.writes_in_flight_max == 0 {
            return bad("writes_in_flight_max", "must be at least 1".into());
        }
        if !matches!(self.atomic_write_bytes, ATOMIC_WRITE_SECTOR | ATOMIC_WRITE_BLOCK) {
            return bad(
                "atomic_write_bytes",
                format!(
                    "{} is not {ATOMIC_WRITE_SECTOR} or {ATOMIC_WRITE_BLOCK} (the unit the device writes whole)",
                    self.atomic_write_bytes
                ),
            );
        }
        if self.device_blocks() > capacity_blocks {
            return bad(
                "segment_count",
                format!("the log needs {} blocks, the device has {capacity_blocks}", self.device_blocks()),
            );
        }
        Ok(())
    }
}

/// What went wrong; each variant says what happened to the log's state.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum LogError {
    /// The staging area (`write_blocks_max` blocks since the last submitted write) is full, or a
    /// superblock write is already in flight. Nothing was appended or changed: call `flush_step`
    /// and `poll`, then retry.
    #[error("log busy: staging area full or a write still in flight")]
    Busy,
    /// No free segment: the ring holds only live records. Nothing was appended; a `checkpoint`
    /// (once its superblock write completes, and the one after it) frees segments.
    #[error("log full: no free segment until a checkpoint frees one")]
    Full,
    /// The payload is longer than `PAYLOAD_MAX`. Nothing was appended.
    #[error("payload of {len} bytes exceeds the {max}-byte record limit")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The term is lower than the last record's. Nothing was appended.
    #[error("term {term} is below the log's last term {last_term}")]
    TermRegression {
        /// The term given.
        term: u64,
        /// The last record's term.
        last_term: u64,
    },
    /// The lsn is not in the log (below `first_lsn`, or above `last_lsn`). Nothing changed.
    #[error("lsn {lsn} is outside the log's {first}..={last}")]
    Unavailable {
        /// The lsn asked for.
        lsn: Lsn,
        /// The first readable lsn.
        first: Lsn,
        /// The last lsn.
        last: Lsn,
    },
    /// A checkpoint names an lsn that is not yet durable, or one below the current snapshot, or a
    /// truncation reaches below the snapshot. Nothing changed.
    #[error("lsn {lsn} is not allowed here: {why}")]
    BadLsn {
        /// The lsn given.
        lsn: Lsn,
        /// Why it was refused.
        why: &'static str,
    },
    /// A record read back failed its checksum or did not carry the expected lsn (media
    /// corruption of acknowledged data). Nothing changed; the record cannot be served.
    #[error("record {lsn} is corrupt on the device: {why}")]
    Corrupt {
        /// The lsn being read.
        lsn: Lsn,
        /// What was wrong.
        why: &'static str,
    },
    /// The device failed a request or stopped answering. The log is poisoned: every later call
    /// returns this error and `durable_lsn` no longer moves; reopen to recover.
    #[error("device error, log poisoned: {0}")]
    Io(String),
    /// `open`: neither superblock copy is valid and the device is not blank (or blank and
    /// `format_if_blank` is off). Nothing was written.
    #[error("no valid superblock: {0}")]
    NoSuperblock(String),
    /// `open`: the configuration is inconsistent or disagrees with the device. Nothing was written.
    #[error("bad log configuration: {0}")]
    Config(String),
    /// `open`/`recover`: records that were acknowledged are damaged (not a torn tail): opening would
    /// lose them and what follows. Nothing was written; the device is as it was. An operator may
    /// accept the loss (`RecoverOptions::accept_loss_from`). (Not `Corrupt`, which is a read's.)
    #[error("the log is corrupt: {0}")]
    Corruption(CorruptionReport),
}

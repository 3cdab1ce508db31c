//! The device label: how several partition logs share one raw block device or NVMe namespace.
//!
//! A store on a device (`storage.device`, or `storage.backend = "spdk"`) starts with one label
//! block (block 0), then one region per partition: partition `p`'s log (its two superblocks and its
//! segment ring, exactly [`UalConfig::device_blocks`] blocks) starts at
//! `first_block + p * stride_blocks`. Regions start 1 MiB apart on 1 MiB boundaries, so every
//! log write is aligned as it is in a file.
//!
//! The label names the store (the same id as the manifest in `storage.dir`) and its placement. It
//! is written once, last, when `vigil format` has formatted every region, and never again; a start
//! reads it before anything else and refuses a device whose label is missing, damaged, of another
//! store or of another placement. Superblocks say nothing about which partition they belong to:
//! the label is what stops a changed partition count from reading one partition's log as
//! another's.
//!
//! Layout (little-endian): magic `VIGILDEV` (8), version (4), block size (4), store id (16),
//! partitions (4), segment_blocks (4), segment_count (4), reserved zero (4), first_block (8),
//! stride_blocks (8), partition_blocks (8), crc32c of the bytes before it (4); the rest of the
//! block is zero.

use super::UalConfig;
use vigil_pmd::block::BLOCK_SIZE;

/// The label's magic number.
pub const LABEL_MAGIC: u64 = u64::from_le_bytes(*b"VIGILDEV");
/// The label format this build writes and reads.
pub const LABEL_VERSION: u32 = 1;
/// Where regions are aligned, in blocks (1 MiB).
pub const REGION_ALIGN_BLOCKS: u64 = 256;
const CRC_AT: usize = 72;

/// Where each partition's log lives on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceLayout {
    /// Partitions on the device.
    pub partitions: u32,
    /// The block where partition 0's region starts.
    pub first_block: u64,
    /// Blocks from one region's start to the next's.
    pub stride_blocks: u64,
    /// Blocks of each partition's log (its superblocks and ring).
    pub partition_blocks: u64,
}

impl DeviceLayout {
    /// The layout of `partitions` logs of `ual`'s geometry.
    pub fn new(partitions: u32, ual: &UalConfig) -> Self {
        let partition_blocks = ual.device_blocks();
        Self {
            partitions,
            first_block: REGION_ALIGN_BLOCKS,
            stride_blocks: partition_blocks.div_ceil(REGION_ALIGN_BLOCKS) * REGION_ALIGN_BLOCKS,
            partition_blocks,
        }
    }

    /// The first block of partition `p`'s region.
    pub fn region_start(&self, p: u32) -> u64 {
        self.first_block + u64::from(p) * self.stride_blocks
    }

    /// Blocks the device needs: the label, the gap to the first region, and every region.
    pub fn device_blocks_needed(&self) -> u64 {
        self.region_start(self.partitions.saturating_sub(1)) + self.partition_blocks
    }
}

/// What the label block holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceLabel {
    /// The store's id (the manifest's `store_id`, as bytes).
    pub store_id: [u8; 16],
    /// Each log's segment size in blocks.
    pub segment_blocks: u32,
    /// Segments in each log's ring.
    pub segment_count: u32,
    /// Where the logs are.
    pub layout: DeviceLayout,
}

/// Why block 0 is not a label this build can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelError {
    /// All zeros: no store was ever made here (or its format did not finish).
    Blank,
    /// Something else is there (another program's data, a file system).
    Magic,
    /// Ours, but damaged.
    Checksum,
    /// A label version this build does not read.
    Version(u32),
    /// A block size other than 4096, or a layout that does not add up.
    Geometry,
}

impl std::fmt::Display for LabelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Blank => {
                write!(f, "block 0 is blank: no Vigil store on this device (create one with `vigil format`)")
            }
            Self::Magic => write!(f, "block 0 holds no Vigil label: the device holds something else"),
            Self::Checksum => write!(f, "the Vigil label in block 0 fails its checksum: damaged"),
            Self::Version(v) => {
                write!(f, "label version {v}, this Vigil reads {LABEL_VERSION}: use the Vigil that made it")
            }
            Self::Geometry => write!(f, "the Vigil label in block 0 describes an impossible layout"),
        }
    }
}

impl DeviceLabel {
    /// The whole label block.
    pub fn encode(&self) -> [u8; BLOCK_SIZE] {
        let mut b = [0u8; BLOCK_SIZE];
        b[0..8].copy_from_slice(&LABEL_MAGIC.to_le_bytes());
        b[8..12].copy_from_slice(&LABEL_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(BLOCK_SIZE as u32).to_le_bytes());
        b[16..32].copy_from_slice(&self.store_id);
        b[32..36].copy_from_slice(&self.layout.partitions.to_le_bytes());
        b[36..40].copy_from_slice(&self.segment_blocks.to_le_bytes());
        b[40..44].copy_from_slice(&self.segment_count.to_le_bytes());
        b[48..56].copy_from_slice(&self.layout.first_block.to_le_bytes());
        b[56..64].copy_from_slice(&self.layout.stride_blocks.to_le_bytes());
        b[64..72].copy_from_slice(&self.layout.partition_blocks.to_le_bytes());
        let crc = crc32c::crc32c(&b[..CRC_AT]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Reads a label from block 0's bytes (at least [`BLOCK_SIZE`]; shorter input is `Magic`).
    pub fn decode(b: &[u8]) -> Result<Self, LabelError> {
        if b.len() < BLOCK_SIZE {
            return Err(LabelError::Magic);
        }
        if b[..BLOCK_SIZE].iter().all(|&x| x == 0) {
            return Err(LabelError::Blank);
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if u64_at(0) != LABEL_MAGIC {
            return Err(LabelError::Magic);
        }
        if crc32c::crc32c(&b[..CRC_AT]) != u32_at(CRC_AT) {
            return Err(LabelError::Checksum);
        }
        if u32_at(8) != LABEL_VERSION {
            return Err(LabelError::Version(u32_at(8)));
        }
        let label = Self {
            store_id: b[16..32].try_into().expect("16 bytes"),
            segment_blocks: u32_at(36),
            segment_count: u32_at(40),
            layout: DeviceLayout {
                partitions: u32_at(32),
                first_block: u64_at(48),
                stride_blocks: u64_at(56),
                partition_blocks: u64_at(64),
            },
        };
        let l = &label.layout;
        let sane = u32_at(12) == BLOCK_SIZE as u32
            && l.partitions > 0
            && l.first_block > 0
            && l.stride_blocks >= l.partition_blocks
            && u64::from(l.partitions)
                .checked_mul(l.stride_blocks)
                .and_then(|s| s.checked_add(l.first_block))
                .is_some();
        if !sane {
            return Err(LabelError::Geometry);
        }
        Ok(label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ual(segment_blocks: u32, segment_count: u32) -> UalConfig {
        UalConfig { segment_blocks, segment_count, ..crate::config::Config::dev().storage.ual() }
    }

    #[test]
    fn regions_are_aligned_disjoint_and_after_the_label() {
        let l = DeviceLayout::new(3, &ual(16, 4));
        assert_eq!(l.partition_blocks, 2 + 64);
        assert_eq!((l.first_block, l.stride_blocks), (256, 256));
        assert_eq!(l.region_start(2), 768);
        assert_eq!(l.device_blocks_needed(), 768 + 66);
        let big = DeviceLayout::new(2, &ual(1024, 64));
        assert_eq!(big.stride_blocks, 65_536 + 256, "two superblocks push it past 256 MiB");
        assert!(big.region_start(1) >= big.region_start(0) + big.partition_blocks);
    }

    #[test]
    fn a_label_round_trips_and_every_damage_is_named() {
        let label = DeviceLabel {
            store_id: [7; 16],
            segment_blocks: 16,
            segment_count: 4,
            layout: DeviceLayout::new(2, &ual(16, 4)),
        };
        let b = label.encode();
        assert_eq!(DeviceLabel::decode(&b), Ok(label));
        assert_eq!(DeviceLabel::decode(&[0; BLOCK_SIZE]), Err(LabelError::Blank));
        let mut other = [0u8; BLOCK_SIZE];
        other[1080] = 0x53; // an ext4 superblock's magic, say
        assert_eq!(DeviceLabel::decode(&other), Err(LabelError::Magic));
        let mut flipped = b;
        flipped[40] ^= 1;
        assert_eq!(DeviceLabel::decode(&flipped), Err(LabelError::Checksum));
        assert_eq!(DeviceLabel::decode(&b[..100]), Err(LabelError::Magic));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics() {
        let mut b = DeviceLabel {
            store_id: [1; 16],
            segment_blocks: 2,
            segment_count: 2,
            layout: DeviceLayout::new(1, &ual(16, 4)),
        }
        .encode();
        for i in 0..CRC_AT {
            for bit in 0..8 {
                b[i] ^= 1 << bit;
                let _ = DeviceLabel::decode(&b);
                b[i] ^= 1 << bit;
            }
        }
    }
}

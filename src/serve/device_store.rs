//! A store whose log is on a device (`storage.device` through io_uring, or an NVMe namespace
//! through SPDK): formatting it, and checking it before a start, through any `BlockIo`.
//!
//! The device holds a label (block 0) and one region per partition (`crate::log::DeviceLayout`);
//! `storage.dir` still holds the manifest, the lock and the snapshots. The manifest and the label
//! carry the same store id, so a start refuses a device of another store (a swapped drive, a
//! renumbered `/dev/nvme*`) as firmly as a mismatched config.
//!
//! Invariants:
//! - creating a store on a device is only ever `vigil format` (a start never formats a device, which
//!   may hold someone else's data): it refuses a device whose label block or any region's
//!   superblocks are not blank, unless told to overwrite; it formats every region, then writes the
//!   label (durably), and the caller writes the manifest last;
//! - checking reads only: the label, then both superblock copies of every region; nothing is
//!   written, so a refused start leaves the device as it was.

use super::storage::{self, Manifest, StoreError};
use crate::config::Config;
use crate::log::{DeviceLabel, DeviceLayout, LabelError, Superblock, Ual, UalConfig};
use vigil_pmd::block::{blocking, BlockBuf, BlockIo, Region, BLOCK_SIZE};

/// Opens the whole device, once per call (a new handle: a new io_uring, or a new SPDK qpair).
pub type OpenDevice<'a, D> = &'a dyn Fn() -> Result<D, String>;

/// `vigil format` of a store whose log is on a device: with `storage.dir` locked and free of store
/// files, formats the device (`device_store::format`), then writes the manifest.
pub fn format_store<D: BlockIo>(
    config: &Config,
    open: OpenDevice<'_, D>,
    device: &str,
    overwrite: bool,
) -> Result<Manifest, StoreError> {
    let dir = config.storage.dir.clone().expect("validated: a device store has a dir");
    std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
        path: dir.clone(),
        what: "cannot create storage.dir",
        source,
    })?;
    let _lock = storage::lock(&dir)?;
    let files = storage::store_files(&dir)?;
    if !files.is_empty() {
        return Err(StoreError::NotEmpty { dir, files: files.join(", ") });
    }
    let m = storage::new_manifest(config, "format")?;
    let id = store_id_bytes(&m.store_id).expect("new_manifest writes 32 hex digits");
    format(config, open, device, id, overwrite)?;
    storage::write_manifest(&dir, &m)?;
    Ok(m)
}

/// The layout `config` places on a device.
pub fn layout(config: &Config) -> DeviceLayout {
    DeviceLayout::new(config.storage.partitions(config.node.shards), &config.storage.ual())
}

fn device_err(device: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Device { device: device.to_string(), reason: reason.into() }
}

/// The store id's bytes from the manifest's hex.
pub fn store_id_bytes(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(id)
}

/// Checks the device holds `layout` whole.
fn fits(dev: &impl BlockIo, device: &str, layout: &DeviceLayout) -> Result<(), StoreError> {
    let needed = layout.device_blocks_needed();
    let has = dev.capacity_blocks();
    if has < needed {
        return Err(device_err(
            device,
            format!(
                "holds {has} blocks of 4 KiB ({} MiB); the store needs {needed} ({} MiB: a label, then {} partitions \
                 x {} blocks, each region 1 MiB aligned): lower storage.segment_count or storage.partitions, or use \
                 a larger device",
                has >> 8,
                needed.div_ceil(256),
                layout.partitions,
                layout.partition_blocks
            ),
        ));
    }
    Ok(())
}

fn read(dev: &mut impl BlockIo, device: &str, lba: u64, blocks: usize) -> Result<BlockBuf, StoreError> {
    blocking::read(dev, lba, blocks).map_err(|e| device_err(device, format!("reading block {lba}: {e}")))
}

/// Creates the store's logs on the device: refuses a device that is not blank where the store goes
/// (unless `overwrite`), formats each partition's region, then writes the label.
pub fn format<D: BlockIo>(
    config: &Config,
    open: OpenDevice<'_, D>,
    device: &str,
    store_id: [u8; 16],
    overwrite: bool,
) -> Result<(), StoreError> {
    let layout = layout(config);
    let mut dev = open().map_err(|e| device_err(device, e))?;
    fits(&dev, device, &layout)?;
    // Block 0 and every region's superblocks: where the store's own structures go.
    let mut places = vec![(0u64, 1usize)];
    places.extend((0..layout.partitions).map(|p| (layout.region_start(p), 2)));
    for &(lba, blocks) in &places {
        let found = read(&mut dev, device, lba, blocks)?;
        if found.iter().all(|&b| b == 0) {
            continue;
        }
        if !overwrite {
            let what = match (lba, DeviceLabel::decode(&found)) {
                (0, Ok(l)) => format!("a Vigil store ({} partitions) already", l.layout.partitions),
                (0, Err(_)) => {
                    "data that is not a Vigil label (a file system, another program's data?)".into()
                }
                _ => "data where a partition's superblocks go".into(),
            };
            return Err(device_err(
                device,
                format!(
                    "block {lba} holds {what}; format creates a store only on a blank device and changed \
                     nothing. If nothing on it is wanted, run `vigil format --overwrite-device` (or blank \
                     it: `blkdiscard`, `nvme format`)"
                ),
            ));
        }
        // Overwriting: block 0 first, so that an interrupted format leaves no old label to trust.
        let zeros = BlockBuf::new(blocks);
        blocking::write(&mut dev, lba, zeros, true)
            .map_err(|e| device_err(device, format!("blanking block {lba}: {e}")))?;
    }
    drop(dev);
    let ual = UalConfig { format_if_blank: true, ..config.storage.ual() };
    for p in 0..layout.partitions {
        let region = region(open, device, &layout, p)?;
        let (_, report) =
            Ual::open(region, ual).map_err(|e| device_err(device, format!("partition {p}: {e}")))?;
        if !report.formatted {
            return Err(device_err(
                device,
                format!("partition {p}: its region was not blank: not formatted"),
            ));
        }
    }
    let label = DeviceLabel {
        store_id,
        segment_blocks: config.storage.segment_blocks,
        segment_count: config.storage.segment_count,
        layout,
    };
    let mut buf = BlockBuf::new(1);
    buf.copy_from_slice(&label.encode());
    let mut dev = open().map_err(|e| device_err(device, e))?;
    blocking::write(&mut dev, 0, buf, true).map_err(|e| device_err(device, format!("writing the label: {e}")))
}

/// Partition `p`'s region of a new handle on the device.
pub fn region<D: BlockIo>(
    open: OpenDevice<'_, D>,
    device: &str,
    layout: &DeviceLayout,
    p: u32,
) -> Result<Region<D>, StoreError> {
    let dev = open().map_err(|e| device_err(device, e))?;
    Region::new(dev, layout.region_start(p), layout.partition_blocks)
        .map_err(|e| device_err(device, format!("partition {p}'s region: {e}")))
}

/// Checks, reading only, that the device holds the store `m` describes as `config` places it: its
/// label (this store, this placement), and a valid superblock of the config's geometry in every
/// region.
pub fn verify<D: BlockIo>(
    config: &Config,
    open: OpenDevice<'_, D>,
    device: &str,
    m: &Manifest,
) -> Result<DeviceLabel, StoreError> {
    let layout = layout(config);
    let mut dev = open().map_err(|e| device_err(device, e))?;
    let block0 = read(&mut dev, device, 0, 1)?;
    let label = DeviceLabel::decode(&block0).map_err(|e| match e {
        LabelError::Blank => device_err(
            device,
            format!(
                "{e}, but the manifest in storage.dir names store {}: this is not the device it was made on \
                 (or it was erased)",
                m.store_id
            ),
        ),
        other => device_err(device, other.to_string()),
    })?;
    let ours = store_id_bytes(&m.store_id);
    if ours != Some(label.store_id) {
        let theirs: String = label.store_id.iter().map(|b| format!("{b:02x}")).collect();
        return Err(device_err(
            device,
            format!(
                "holds store {theirs}, but the manifest in storage.dir names store {}: the wrong device (or the \
                 wrong storage.dir); nothing was changed",
                m.store_id
            ),
        ));
    }
    let geometry = (config.storage.segment_blocks, config.storage.segment_count);
    if label.layout != layout || (label.segment_blocks, label.segment_count) != geometry {
        return Err(device_err(
            device,
            format!(
                "its label places {} partitions of segment_blocks {} x segment_count {} ({:?}); the config places \
                 {} partitions of {} x {} ({:?}): set the config back",
                label.layout.partitions,
                label.segment_blocks,
                label.segment_count,
                label.layout,
                layout.partitions,
                geometry.0,
                geometry.1,
                layout
            ),
        ));
    }
    fits(&dev, device, &layout)?;
    for p in 0..layout.partitions {
        let head = read(&mut dev, device, layout.region_start(p), 2)?;
        check_superblocks(config, &head)
            .map_err(|why| device_err(device, format!("partition {p}: {why}")))?;
    }
    Ok(label)
}

/// Checks both superblock copies (`head`: the region's first two blocks) hold a valid one of the
/// config's geometry.
pub fn check_superblocks(config: &Config, head: &[u8]) -> Result<(), String> {
    let copies =
        [Superblock::decode(&head[..BLOCK_SIZE]), Superblock::decode(&head[BLOCK_SIZE..2 * BLOCK_SIZE])];
    let Some(sb) = copies.iter().filter_map(|c| c.as_ref().ok()).max_by_key(|sb| sb.sequence) else {
        return Err(format!("has no valid superblock (copy 0: {:?}, copy 1: {:?})", copies[0], copies[1]));
    };
    let st = &config.storage;
    if (sb.segment_blocks, sb.segment_count) != (st.segment_blocks, st.segment_count) {
        return Err(format!(
            "its log has segment_blocks = {}, segment_count = {}; the config says {} and {}",
            sb.segment_blocks, sb.segment_count, st.segment_blocks, st.segment_count
        ));
    }
    Ok(())
}

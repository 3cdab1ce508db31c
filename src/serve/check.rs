//! `vigil check` against the data directory: what a start would refuse, found without starting.
//!
//! Reads only (the manifest, file sizes, superblocks, snapshots); never takes the lock nor writes,
//! so it can run beside a serving node. Each finding is one line; any failed one makes the check
//! fail.

use super::storage::{self, Manifest};
use crate::config::{Config, StorageBackend};
use crate::kv::KvLimits;
use crate::projection::snapshot::applied_lsn_of;
use crate::projection::Router;
use std::path::Path;

/// One line of the check: whether it passed, and what was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// True when this is fine for a start.
    pub ok: bool,
    /// One line saying what was checked and found.
    pub line: String,
}

fn ok(line: String) -> Finding {
    Finding { ok: true, line }
}

fn fail(line: String) -> Finding {
    Finding { ok: false, line }
}

/// What the config allocates at start-up and what its KV maps may grow to, against the machine's
/// memory (start-up allocations above it were already refused by config validation).
pub fn memory(config: &Config) -> Vec<Finding> {
    let e = config.memory_estimate();
    let machine = crate::config::machine_memory_bytes();
    let shown = machine.map_or("unknown".to_string(), |m| format!("{} MiB", m >> 20));
    let mut out = vec![ok(format!(
        "memory: {} MiB allocated at start-up (machine: {shown}); the KV maps may grow to {} MiB when full, the candle rings to {} MiB",
        e.at_start_total() >> 20,
        e.kv_maps_max >> 20,
        e.candle_rings_max >> 20
    ))];
    if machine.is_some_and(|m| e.candle_rings_max > m) {
        out.push(ok(format!(
            "warning: full candle rings (storage.partitions x 7 x (candle.candles_per_day_max x 128 B + 3 x candle.overflow_bytes_per_field_day_max) = {} bytes) would not fit this machine's memory; lower them to have LIGHT refused (FULL) before memory runs out",
            e.candle_rings_max
        )));
    }
    if machine.is_some_and(|m| e.kv_maps_max > m) {
        out.push(ok(format!(
            "warning: full KV maps (storage.partitions x (kv.data_bytes_max + {} B x kv.keys_max) = {} bytes) would not fit this machine's memory; lower kv.data_bytes_max or kv.keys_max to have writes refused (FULL) before memory runs out",
            crate::kv::KEY_OVERHEAD_BYTES_MAX,
            e.kv_maps_max
        )));
    }
    out
}

/// Whether this build serves the config's cluster (`super::cluster_refusal`).
pub fn cluster(config: &crate::config::Config) -> Finding {
    match super::cluster_refusal(config) {
        Some(why) => fail(why),
        None => ok(format!("cluster: node {}, voters {:?}", config.cluster.node_id, config.cluster.voters())),
    }
}

/// Checks `storage.dir` against `config`: manifest (partitions, geometry), partition files, and
/// the limits the stored snapshots already exceed.
pub fn inspect(config: &Config) -> Vec<Finding> {
    let Some(dir) =
        config.storage.dir.as_deref().filter(|_| config.storage.backend != StorageBackend::Memory)
    else {
        return vec![ok("storage.backend = \"memory\": no data directory to check".into())];
    };
    let on_device = storage::log_device_kind(config).is_some();
    let creates = if on_device {
        "`vigil format` creates the store (a start never formats a device)"
    } else {
        "the first start creates the store"
    };
    if !dir.exists() {
        return vec![ok(format!("storage.dir {}: does not exist yet; {creates}", dir.display()))];
    }
    let manifest = match storage::read_manifest(dir) {
        Ok(m) => m,
        Err(e) => return vec![fail(e.to_string())],
    };
    let Some(m) = manifest else {
        return match storage::store_files(dir) {
            Ok(files) if files.is_empty() => {
                vec![ok(format!("storage.dir {}: holds no store yet; {creates}", dir.display()))]
            }
            Ok(files) => {
                vec![fail(
                    storage::StoreError::NoManifest { dir: dir.into(), files: files.join(", ") }.to_string(),
                )]
            }
            Err(e) => vec![fail(e.to_string())],
        };
    };
    let mut out = vec![ok(format!(
        "storage.dir {}: store {} made by {} ({}), {} partitions, segment_blocks {}, segment_count {}",
        dir.display(),
        m.store_id,
        m.created_by,
        m.created_how,
        m.partitions,
        m.segment_blocks,
        m.segment_count
    ))];
    let mismatches = storage::mismatches(config, dir, &m);
    let placed_right = mismatches.is_empty();
    out.extend(mismatches.into_iter().map(|e| fail(e.to_string())));
    if placed_right {
        out.extend(partition_findings(config, dir, &m));
    }
    out
}

/// The log's device, read without taking it (a serving node may hold it): its label and every
/// partition's superblocks. An SPDK namespace is checked by a start only (checking it would mean
/// starting SPDK and attaching the controller a serving node owns).
fn device_finding(config: &Config, m: &Manifest) -> Finding {
    let st = &config.storage;
    match (&st.device, &st.spdk) {
        (Some(path), _) => {
            let name = path.display().to_string();
            let open = super::log_source::uring_opener(config, path);
            match super::device_store::verify(config, &open, &name, m) {
                Ok(label) => ok(format!(
                    "log device {name}: label of store {}, {} partitions of {} blocks from block {}; every superblock valid",
                    m.store_id, label.layout.partitions, label.layout.partition_blocks, label.layout.first_block
                )),
                Err(e) => fail(e.to_string()),
            }
        }
        (None, Some(s)) => ok(format!(
            "log device {} namespace {} (SPDK): not read by check (SPDK's driver takes the controller); a start checks its label and superblocks before anything is written",
            s.transport_id, s.namespace_id
        )),
        (None, None) => ok("log: one file per partition in storage.dir".into()),
    }
}

fn partition_findings(config: &Config, dir: &Path, m: &Manifest) -> Vec<Finding> {
    let mut out = vec![device_finding(config, m)];
    for p in 0..m.partitions {
        if let Some(f) = snapshot_finding(config, &dir.join(format!("partition-{p}.snap"))) {
            out.push(f);
        }
        if m.log_device.is_some() {
            continue;
        }
        let path = storage::partition_path(dir, p);
        match storage::check_partition_file(config, dir, p)
            .and_then(|()| storage::check_superblock(config, &path))
        {
            Ok(()) => out.push(ok(format!(
                "{}: present, {} bytes, superblock valid",
                path.display(),
                storage::partition_bytes(config)
            ))),
            Err(e) => out.push(fail(e.to_string())),
        }
    }
    out
}

/// What the snapshot (if any) says against the KV limits: what `Router::restore_from` would
/// refuse at start-up, with the numbers where the snapshot gives them. The file is read as the
/// start reads it, streamed (its checksum, then its content), never whole in memory.
fn snapshot_finding(config: &Config, path: &Path) -> Option<Finding> {
    let mut file = std::fs::File::open(path).ok()?;
    let shown = path.display();
    if let Err(e) = applied_lsn_of(&mut file) {
        return Some(fail(format!("{shown}: {e}: a start would refuse it")));
    }
    let limits = config.kv.limits();
    let restore = |limits| match std::fs::File::open(path) {
        // The projections a start runs (the candle store unless `[candle]` turns it off).
        Ok(mut f) => Router::restore_from(&mut f, limits, super::projections(config).make()),
        Err(e) => Err(crate::projection::SnapshotError::Io(e.to_string())),
    };
    Some(match restore(limits) {
        Ok(r) => {
            ok(format!("{shown}: {} keys at index {}, within the kv limits", r.kv().len(), r.applied_lsn()))
        }
        Err(e) => {
            // Loaded again without the size limits (the checksum held), for the numbers.
            let relaxed = KvLimits {
                keys_max: usize::MAX,
                data_bytes_max: usize::MAX,
                key_bytes_max: crate::kv::KEY_BYTES_LIMIT,
                value_bytes_max: u32::MAX as usize,
                ..limits
            };
            let keys = restore(relaxed).map_or(0, |r| r.kv().len());
            if keys > limits.keys_max {
                fail(format!(
                    "{shown}: holds {keys} keys but kv.keys_max = {}: a start would refuse it; raise kv.keys_max to at least {keys}",
                    limits.keys_max
                ))
            } else {
                fail(format!(
                    "{shown}: {e}: a start would refuse it (see kv.keys_max, kv.data_bytes_max, kv.key_bytes_max, \
                     kv.value_bytes_max, kv.dedup_clients_max)"
                ))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Command, Op};

    /// `vigil check` reads a snapshot file as a start does (streamed): a good one is reported with
    /// its keys, a damaged one and one over the limits fail with what a start would say.
    #[test]
    fn snapshot_files_are_checked_as_a_start_reads_them() {
        let dir = std::env::temp_dir().join(format!("vigil-check-snap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("partition-0.snap");
        let mut config = Config::dev();
        assert!(snapshot_finding(&config, &path).is_none(), "no file, nothing to say");
        let mut router = Router::new(config.kv.limits(), Vec::new());
        for lsn in 1..=3u64 {
            let key = format!("k{lsn}");
            router.apply_kv(
                lsn,
                &Command { client_id: 0, seq: 0, op: Op::Set { key: key.as_bytes(), value: b"v" } },
            );
        }
        let mut bytes = Vec::new();
        router.snapshot(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        let f = snapshot_finding(&config, &path).unwrap();
        assert!(f.ok && f.line.contains("3 keys at index 3"), "{f:?}");
        config.kv.keys_max = 2;
        let f = snapshot_finding(&config, &path).unwrap();
        assert!(!f.ok && f.line.contains("holds 3 keys but kv.keys_max = 2"), "{f:?}");
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let f = snapshot_finding(&config, &path).unwrap();
        assert!(!f.ok && f.line.contains("checksum"), "{f:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

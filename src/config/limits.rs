//! Upper bounds of every size in the config: hard maxima per key, and the memory the node will
//! allocate at start-up measured against the machine's.
//!
//! Invariant: a config that passes `validate_sizes` allocates at start-up (pools, log images and
//! write buffers, exactly-once tables, inbox pools, memory devices) no more than the machine's
//! memory (`MemTotal` in /proc/meminfo, where it can be read), so a start never aborts on an
//! allocation the config asked for. The KV maps are not reserved: they grow with the data, up to
//! `kv.keys_max` and `kv.data_bytes_max`, and their bound is reported by [`Config::memory_estimate`]
//! separately (`vigil check` warns when it exceeds the machine's memory).

use super::{invalid, Backend, Config, ConfigError, Fallback, StorageBackend};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Hard maxima, whatever the machine: (key, value, maximum).
fn hard_maxima(c: &Config) -> Vec<(&'static str, u64, u64)> {
    let (k, st, kv) = (&c.kernel, &c.storage, &c.kv);
    let mut out = vec![
        ("kernel.pool_buffers", k.pool_buffers as u64, 1 << 20),
        ("kernel.recv_buffer_bytes", k.recv_buffer_bytes as u64, GIB),
        ("kernel.send_buffer_bytes", k.send_buffer_bytes as u64, GIB),
        ("storage.segment_blocks", st.segment_blocks.into(), 1 << 18),
        ("storage.segment_count", st.segment_count.into(), 1 << 16),
        ("storage.writes_in_flight_max", st.writes_in_flight_max.into(), 4096),
        ("storage.snapshot_every_entries", st.snapshot_every_entries, 1 << 40),
        ("kv.keys_max", kv.keys_max as u64, 1 << 32),
        ("kv.data_bytes_max", kv.data_bytes_max as u64, 1 << 40),
        ("kv.dedup_clients_max", kv.dedup_clients_max as u64, 1 << 24),
    ];
    if let Some(d) = &c.dpdk {
        out.push(("dpdk.mbufs_per_shard", d.mbufs_per_shard.into(), 1 << 22));
        out.push(("dpdk.memory_mb", d.memory_mb.into(), 1 << 20));
    }
    out
}

/// One part of the memory a node allocates: the keys that size it and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPart {
    /// The config keys that size it, as a formula.
    pub keys: &'static str,
    /// Bytes.
    pub bytes: u64,
}

/// What a node will allocate, and what its KV maps may grow to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Allocated at start-up.
    pub at_start: Vec<MemoryPart>,
    /// The bound of the KV maps of all partitions once full (`data_bytes_max + keys_max *
    /// kv::KEY_OVERHEAD_BYTES_MAX` each, see `kv::KvLimits`); not reserved.
    pub kv_maps_max: u64,
    /// The bound of the candle rings of all partitions once every day is full (seven days of
    /// `candle.candles_per_day_max` slots and three full overflow pools); 0 when `[candle]` is
    /// off; not reserved.
    pub candle_rings_max: u64,
}

impl MemoryEstimate {
    /// Bytes allocated at start-up.
    pub fn at_start_total(&self) -> u64 {
        self.at_start.iter().map(|p| p.bytes).fold(0, u64::saturating_add)
    }
}

fn mul(xs: &[u64]) -> u64 {
    xs.iter().fold(1, |a, &x| a.saturating_mul(x))
}

impl Config {
    /// The big allocations this config makes at start-up (each a saturating product).
    pub fn memory_estimate(&self) -> MemoryEstimate {
        let (st, kv) = (&self.storage, &self.kv);
        let shards = self.node.shards as u64;
        let partitions = u64::from(st.partitions(self.node.shards));
        let mut at_start = Vec::new();
        let kernel_used = self.net.backend == Backend::Kernel || self.net.fallback == Fallback::Kernel;
        if kernel_used {
            at_start.push(MemoryPart {
                keys: "node.shards x kernel.pool_buffers x net.datagram_bytes_max",
                bytes: mul(&[shards, self.kernel.pool_buffers as u64, self.net.datagram_bytes_max as u64]),
            });
        }
        if let (Some(d), Backend::Dpdk) = (&self.dpdk, self.net.backend) {
            at_start.push(MemoryPart { keys: "dpdk.memory_mb", bytes: mul(&[d.memory_mb.into(), MIB]) });
        }
        let segment = mul(&[st.segment_blocks.into(), 4 * KIB]);
        let region_blocks = mul(&[st.segment_blocks.into(), st.segment_count.into()]);
        // Two tail images and a read cache of one segment each, an lsn per block of the ring, and
        // the write buffers (one pool per power of two up to write_blocks_max).
        let log = mul(&[3, segment]).saturating_add(mul(&[region_blocks, 8])).saturating_add(mul(&[
            st.writes_in_flight_max.into(),
            2,
            st.write_blocks_max.into(),
            4 * KIB,
        ]));
        at_start.push(MemoryPart {
            keys: "storage.partitions x (3 x storage.segment_blocks x 4 KiB + 8 B x storage.segment_blocks x \
                   storage.segment_count + storage.writes_in_flight_max x 2 x storage.write_blocks_max x 4 KiB)",
            bytes: mul(&[partitions, log]),
        });
        if st.backend == StorageBackend::Memory {
            at_start.push(MemoryPart {
                keys: "storage.backend = \"memory\": storage.partitions x storage.segment_blocks x \
                       storage.segment_count x 4 KiB",
                bytes: mul(&[partitions, region_blocks, 4 * KIB]),
            });
        }
        at_start.push(MemoryPart {
            keys: "storage.partitions x kv.dedup_clients_max x 112 B (kv::CLIENT_RECORD_BYTES)",
            bytes: mul(&[partitions, kv.dedup_clients_max as u64, crate::kv::CLIENT_RECORD_BYTES]),
        });
        at_start.push(MemoryPart {
            keys: "storage.partitions x storage.writes_waiting_max x 64 B",
            bytes: mul(&[partitions, st.writes_waiting_max as u64, 64]),
        });
        if shards > 1 {
            // serve::build_routers: 1024 envelopes in flight per shard, two slots each.
            let slot = (self.net.datagram_bytes_max as u64 + 64).next_power_of_two();
            at_start.push(MemoryPart {
                keys: "node.shards x 2048 x net.datagram_bytes_max (cross-shard inbox pool)",
                bytes: mul(&[shards, 2048, slot]),
            });
        }
        let per_key = crate::kv::KEY_OVERHEAD_BYTES_MAX;
        let kv_map = (kv.data_bytes_max as u64).saturating_add(mul(&[per_key, kv.keys_max as u64]));
        let c = &self.candle;
        let candle_day = mul(&[u64::from(c.candles_per_day_max), crate::candle::SLOT_BYTES as u64])
            .saturating_add(mul(&[3, u64::from(c.overflow_bytes_per_field_day_max)]));
        let candle_rings_max = if c.enabled { mul(&[partitions, 7, candle_day]) } else { 0 };
        MemoryEstimate { at_start, kv_maps_max: mul(&[partitions, kv_map]), candle_rings_max }
    }

    /// Checks every size against its hard maximum and, when `machine_bytes` is known, the memory
    /// allocated at start-up against the machine's.
    pub fn validate_sizes(&self, machine_bytes: Option<u64>) -> Result<(), ConfigError> {
        for (key, value, max) in hard_maxima(self) {
            if value > max {
                return Err(invalid(key, format!("{value} is above the maximum {max}")));
            }
        }
        let Some(machine) = machine_bytes else { return Ok(()) };
        let estimate = self.memory_estimate();
        let total = estimate.at_start_total();
        if total > machine {
            let parts: Vec<String> =
                estimate.at_start.iter().map(|p| format!("{} = {} bytes", p.keys, p.bytes)).collect();
            let largest = estimate.at_start.iter().max_by_key(|p| p.bytes).expect("at least the log");
            return Err(invalid(
                first_key(largest.keys),
                format!(
                    "the node would allocate {total} bytes at start-up, more than this machine's {machine} bytes \
                     of memory (MemTotal): {}",
                    parts.join("; ")
                ),
            ));
        }
        Ok(())
    }
}

/// The key the error names: the first dotted key of a part's formula other than the multipliers
/// shared by all parts (`node.shards`, `storage.partitions`).
fn first_key(keys: &'static str) -> &'static str {
    keys.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
        .find(|w| w.contains('.') && *w != "node.shards" && *w != "storage.partitions")
        .unwrap_or("storage")
}

/// `MemTotal` from /proc/meminfo in bytes; `None` where it cannot be read.
pub fn machine_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * KIB)
}

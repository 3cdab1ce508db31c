//! Configuration: a TOML file read with serde (`deny_unknown_fields`) and validated before anything
//! starts.
//!
//! Invariants: a `Config` that `Config::parse` returned has passed `validate`, so every later stage
//! may rely on its limits (non-zero bursts, ring sizes that are powers of two, a core per shard for
//! DPDK, every size below its maximum and what start-up allocates within the machine's memory:
//! see `limits`). Errors name the key (`net.burst_size_max`) and the reason. What matters on bare metal has
//! no silent default: `node.cores`, `dpdk.port` and `dpdk.vdevs` must be written out; tuning knobs
//! (ring sizes, pool sizes) have documented defaults.

use serde::Deserialize;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The embedded default configuration (`config/dev.toml`): kernel UDP sockets on loopback.
pub const DEV_TOML: &str = include_str!("../config/dev.toml");

/// Largest UDP payload over IPv4.
pub const UDP_PAYLOAD_MAX: usize = 65_507;

/// A configuration that could not be used; nothing was started.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML does not parse or names an unknown key.
    #[error("config does not parse: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of range or inconsistent.
    #[error("config key `{key}`: {reason}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, reason: reason.into() }
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Shards and cores.
    pub node: NodeConfig,
    /// The data plane, whatever the backend.
    pub net: NetConfig,
    /// The kernel-socket backend.
    #[serde(default)]
    pub kernel: KernelConfig,
    /// The DPDK backend; required when `net.backend = "dpdk"`.
    pub dpdk: Option<DpdkConfig>,
    /// Where the log lives and how partitions are laid out.
    pub storage: StorageConfig,
    /// Limits of the KV projection (the same on every replica).
    #[serde(default)]
    pub kv: KvConfig,
}

/// Which block device backs each partition's log.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// io_uring with `O_DIRECT` on one preallocated file per partition in `storage.dir`: durable.
    Uring,
    /// Memory: nothing survives a restart. For tests and demos of the request path only.
    Memory,
}

/// How a durable write is made durable (io_uring backend).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DurableMode {
    /// `RWF_DSYNC` on each log write (FUA where the device has it).
    #[default]
    Dsync,
    /// Each log write followed by a linked `fdatasync`.
    Flush,
}

/// The log: one Unified Append Log per partition.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The block backend.
    pub backend: StorageBackend,
    /// Directory of the log files (`partition-<p>.ual`) and snapshots (`partition-<p>.snap`);
    /// required for `uring`, created if missing. Must be on a filesystem with `O_DIRECT` (not tmpfs).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Partitions in the node (default: one per shard); partition `p` runs on shard
    /// `p % node.shards`. Part of the placement of keys: never change it for existing data.
    #[serde(default)]
    pub partitions: Option<u32>,
    /// How log writes are made durable.
    #[serde(default)]
    pub durable_mode: DurableMode,
    /// io_uring queue depth per partition.
    #[serde(default = "defaults::queue_depth")]
    pub queue_depth: u32,
    /// 4 KiB blocks per log segment (a power of two): the unit of recycling.
    #[serde(default = "defaults::segment_blocks")]
    pub segment_blocks: u32,
    /// Segments in each partition's log ring (the file is `segment_blocks * segment_count` blocks
    /// plus two superblocks).
    #[serde(default = "defaults::segment_count")]
    pub segment_count: u32,
    /// Most blocks one group-commit write covers (a power of two, at most `segment_blocks`).
    #[serde(default = "defaults::write_blocks_max")]
    pub write_blocks_max: u32,
    /// Most log writes in flight per partition.
    #[serde(default = "defaults::writes_in_flight_max")]
    pub writes_in_flight_max: u32,
    /// The unit the log's device writes whole across a power loss: 4096 (default: NVMe namespaces
    /// formatted with 4 KiB LBAs, a page-cache file) or 512. With 4096 a record failing its
    /// checksum is corruption (refused) wherever it is; with 512 one that nothing claims durable is
    /// cut as a torn write (docs/STORAGE.md section 6). Not part of the placement of data.
    #[serde(default = "defaults::atomic_write_bytes")]
    pub atomic_write_bytes: u32,
    /// Snapshot a partition after this many applied entries (and whenever half its log ring is
    /// in use), so recovery replays at most about this many entries.
    #[serde(default = "defaults::snapshot_every_entries")]
    pub snapshot_every_entries: u64,
    /// Writes proposed and not yet answered, per partition; beyond it writes are answered `BUSY`.
    #[serde(default = "defaults::writes_waiting_max")]
    pub writes_waiting_max: usize,
    /// Most bytes of one batch entry: the writes a partition accepts in one poll iteration go into
    /// one Raft entry, one log record (so at most 4064 bytes).
    #[serde(default = "defaults::batch_bytes_max")]
    pub batch_bytes_max: usize,
    /// Most writes in one batch entry.
    #[serde(default = "defaults::batch_writes_max")]
    pub batch_writes_max: usize,
}

/// Limits of the KV projection.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KvConfig {
    /// Longest key in bytes.
    #[serde(default = "defaults::key_bytes_max")]
    pub key_bytes_max: usize,
    /// Longest value in bytes.
    #[serde(default = "defaults::value_bytes_max")]
    pub value_bytes_max: usize,
    /// Most keys per partition.
    #[serde(default = "defaults::keys_max")]
    pub keys_max: usize,
    /// Most bytes of keys plus values per partition.
    #[serde(default = "defaults::data_bytes_max")]
    pub data_bytes_max: usize,
    /// Clients remembered per partition for exactly-once writes.
    #[serde(default = "defaults::dedup_clients_max")]
    pub dedup_clients_max: usize,
    /// How far past a client's last write's sequence number a new one may be (docs/PROTOCOL.md).
    #[serde(default = "defaults::sequence_ahead_max")]
    pub sequence_ahead_max: u64,
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            key_bytes_max: defaults::key_bytes_max(),
            value_bytes_max: defaults::value_bytes_max(),
            keys_max: defaults::keys_max(),
            data_bytes_max: defaults::data_bytes_max(),
            dedup_clients_max: defaults::dedup_clients_max(),
            sequence_ahead_max: defaults::sequence_ahead_max(),
        }
    }
}

impl KvConfig {
    /// The projection's limits.
    pub fn limits(&self) -> crate::kv::KvLimits {
        crate::kv::KvLimits {
            key_bytes_max: self.key_bytes_max,
            value_bytes_max: self.value_bytes_max,
            keys_max: self.keys_max,
            data_bytes_max: self.data_bytes_max,
            dedup_clients_max: self.dedup_clients_max,
            sequence_ahead_max: self.sequence_ahead_max,
        }
    }
}

impl StorageConfig {
    /// The partitions of the node.
    pub fn partitions(&self, shards: usize) -> u32 {
        self.partitions.unwrap_or(shards as u32)
    }

    /// The bounds of a partition's batch entries.
    pub fn batch(&self) -> crate::partition::batch::BatchLimits {
        crate::partition::batch::BatchLimits {
            bytes_max: self.batch_bytes_max,
            writes_max: self.batch_writes_max,
        }
    }

    /// The log geometry of each partition, for opening an existing log: a blank device is refused
    /// (only creating a store formats, see `serve::storage`).
    pub fn ual(&self) -> crate::log::UalConfig {
        crate::log::UalConfig {
            segment_blocks: self.segment_blocks,
            segment_count: self.segment_count,
            write_blocks_max: self.write_blocks_max,
            writes_in_flight_max: self.writes_in_flight_max,
            format_if_blank: false,
            atomic_write_bytes: self.atomic_write_bytes,
        }
    }
}

/// Shards and the cores they are pinned to.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Number of shards (one thread and one queue pair each).
    pub shards: usize,
    /// The CPU core of each shard, in shard order; `[]` leaves them unpinned (development only;
    /// refused for DPDK).
    pub cores: Vec<usize>,
}

/// Which packet backend serves the data plane.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Kernel UDP sockets (recvmmsg/sendmmsg), one SO_REUSEPORT socket per shard.
    Kernel,
    /// DPDK poll-mode driver, one rx/tx queue pair per shard.
    Dpdk,
}

/// What to do when the DPDK backend cannot start.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Fail with the error.
    #[default]
    None,
    /// Say why, then serve on kernel sockets (`kernel.bind_ip`).
    Kernel,
}

/// The data plane.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// The backend.
    pub backend: Backend,
    /// When DPDK cannot start.
    #[serde(default)]
    pub fallback: Fallback,
    /// UDP port of the binary protocol.
    #[serde(default = "defaults::port")]
    pub port: u16,
    /// Largest request or response datagram payload, in bytes.
    #[serde(default = "defaults::datagram_bytes_max")]
    pub datagram_bytes_max: usize,
    /// Most datagrams taken from or given to a queue in one burst.
    #[serde(default = "defaults::burst_size_max")]
    pub burst_size_max: usize,
    /// Most requests one datagram may carry.
    #[serde(default = "defaults::requests_per_datagram_max")]
    pub requests_per_datagram_max: u16,
    /// Most answers one shard may owe at once: requests taken over to be answered later (writes
    /// waiting for their log entry, requests forwarded to another shard). Each holds a transmit
    /// buffer reserved when it is admitted, so its answer can always be sent; beyond it such
    /// requests are answered `BUSY` at once. The backend's pool must cover it
    /// (`kernel.pool_buffers`, `dpdk.mbufs_per_shard`).
    #[serde(default = "defaults::answers_reserved_max")]
    pub answers_reserved_max: usize,
}

/// The kernel-socket backend.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    /// Address the sockets bind to.
    #[serde(default = "defaults::bind_ip")]
    pub bind_ip: Ipv4Addr,
    /// How long an idle shard waits in poll(2) before polling again, in µs; 0 busy-polls.
    #[serde(default = "defaults::idle_wait_us")]
    pub idle_wait_us: u64,
    /// Datagram buffers per shard (shared by receive and transmit).
    #[serde(default = "defaults::pool_buffers")]
    pub pool_buffers: usize,
    /// SO_RCVBUF in bytes; 0 keeps the kernel's default.
    #[serde(default)]
    pub recv_buffer_bytes: usize,
    /// SO_SNDBUF in bytes; 0 keeps the kernel's default.
    #[serde(default)]
    pub send_buffer_bytes: usize,
}

impl Default for KernelConfig {
    fn default() -> Self {
        Self {
            bind_ip: defaults::bind_ip(),
            idle_wait_us: defaults::idle_wait_us(),
            pool_buffers: defaults::pool_buffers(),
            recv_buffer_bytes: 0,
            send_buffer_bytes: 0,
        }
    }
}

/// The DPDK backend.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DpdkConfig {
    /// The IPv4 address this port answers for (ARP, ICMP echo, UDP).
    pub ip: Ipv4Addr,
    /// The ethdev to use: its EAL name (`net_memif0`, `0000:03:00.0`) or its port index.
    pub port: String,
    /// Virtual devices to create (`--vdev`), e.g. `net_memif0,role=server,socket=/tmp/vigil.sock`.
    pub vdevs: Vec<String>,
    /// The EAL main lcore (the thread that initialises DPDK; shards run on `node.cores`).
    #[serde(default)]
    pub main_lcore: usize,
    /// Skip the PCI bus (`--no-pci`): virtual devices only.
    #[serde(default)]
    pub no_pci: bool,
    /// Run without hugepages (`--no-huge`): slower, but needs no set-up.
    #[serde(default)]
    pub no_huge: bool,
    /// Memory for EAL in MiB (`-m`).
    #[serde(default = "defaults::memory_mb")]
    pub memory_mb: u32,
    /// EAL `--file-prefix`: unique per process on one host.
    #[serde(default = "defaults::file_prefix")]
    pub file_prefix: String,
    /// Mbufs in each shard's pool.
    #[serde(default = "defaults::mbufs_per_shard")]
    pub mbufs_per_shard: u32,
    /// Per-core mbuf cache size.
    #[serde(default = "defaults::mbuf_cache")]
    pub mbuf_cache: u32,
    /// Descriptors per rx queue (power of two).
    #[serde(default = "defaults::ring_size")]
    pub rx_ring_size: u16,
    /// Descriptors per tx queue (power of two).
    #[serde(default = "defaults::ring_size")]
    pub tx_ring_size: u16,
    /// Spread flows over the shards' queues with RSS where the device supports it.
    #[serde(default = "defaults::yes")]
    pub rss: bool,
    /// EAL log level (`--log-level`), e.g. `notice` or `debug`.
    #[serde(default)]
    pub log_level: Option<String>,
    /// Further EAL arguments, passed as they are.
    #[serde(default)]
    pub extra_eal_args: Vec<String>,
}

mod defaults {
    use std::net::Ipv4Addr;
    pub fn port() -> u16 {
        9000
    }
    pub fn datagram_bytes_max() -> usize {
        1472
    }
    pub fn burst_size_max() -> usize {
        32
    }
    pub fn requests_per_datagram_max() -> u16 {
        64
    }
    pub fn answers_reserved_max() -> usize {
        4096
    }
    pub fn bind_ip() -> Ipv4Addr {
        Ipv4Addr::LOCALHOST
    }
    pub fn idle_wait_us() -> u64 {
        1000
    }
    pub fn pool_buffers() -> usize {
        5120
    }
    pub fn memory_mb() -> u32 {
        512
    }
    pub fn file_prefix() -> String {
        "vigil".into()
    }
    pub fn mbufs_per_shard() -> u32 {
        8191
    }
    pub fn mbuf_cache() -> u32 {
        256
    }
    pub fn ring_size() -> u16 {
        1024
    }
    pub fn yes() -> bool {
        true
    }
    pub fn queue_depth() -> u32 {
        32
    }
    pub fn segment_blocks() -> u32 {
        1024
    }
    pub fn segment_count() -> u32 {
        64
    }
    pub fn write_blocks_max() -> u32 {
        64
    }
    pub fn writes_in_flight_max() -> u32 {
        8
    }
    pub fn atomic_write_bytes() -> u32 {
        crate::log::ATOMIC_WRITE_BLOCK
    }
    pub fn snapshot_every_entries() -> u64 {
        1_000_000
    }
    pub fn writes_waiting_max() -> usize {
        16_384
    }
    pub fn batch_bytes_max() -> usize {
        crate::partition::batch::BatchLimits::default().bytes_max
    }
    pub fn batch_writes_max() -> usize {
        crate::partition::batch::BatchLimits::default().writes_max
    }
    pub fn key_bytes_max() -> usize {
        256
    }
    pub fn value_bytes_max() -> usize {
        1024
    }
    pub fn keys_max() -> usize {
        10_000_000
    }
    pub fn data_bytes_max() -> usize {
        4 << 30
    }
    pub fn dedup_clients_max() -> usize {
        65_536
    }
    pub fn sequence_ahead_max() -> u64 {
        crate::kv::SEQUENCE_AHEAD_MAX_DEFAULT
    }
}

/// Bytes of an mbuf's data room: 2048 plus the standard headroom.
pub const MBUF_DATA_ROOM: usize = 2048;

impl Config {
    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    /// The embedded development default.
    pub fn dev() -> Config {
        Self::parse(DEV_TOML).expect("the embedded config/dev.toml is valid")
    }

    /// Checks every limit and cross-key rule; the first violation is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_node()?;
        self.validate_net()?;
        self.validate_kernel()?;
        self.validate_storage()?;
        self.validate_kv()?;
        self.validate_sizes(limits::machine_memory_bytes())?;
        match (&self.dpdk, self.net.backend) {
            (Some(d), _) => d.validate(self)?,
            (None, Backend::Dpdk) => {
                return Err(invalid("dpdk", "net.backend is \"dpdk\" but there is no [dpdk] table"))
            }
            (None, Backend::Kernel) => {}
        }
        if self.net.fallback == Fallback::Kernel && self.net.backend == Backend::Kernel {
            return Err(invalid(
                "net.fallback",
                "a fallback to \"kernel\" only makes sense with backend \"dpdk\"",
            ));
        }
        Ok(())
    }

    fn validate_node(&self) -> Result<(), ConfigError> {
        let n = &self.node;
        if !(1..=64).contains(&n.shards) {
            return Err(invalid("node.shards", format!("{} is not in 1..=64", n.shards)));
        }
        if !n.cores.is_empty() && n.cores.len() != n.shards {
            return Err(invalid(
                "node.cores",
                format!(
                    "lists {} cores for {} shards: give one core per shard, or [] to leave them unpinned",
                    n.cores.len(),
                    n.shards
                ),
            ));
        }
        let mut seen = n.cores.clone();
        seen.sort_unstable();
        if seen.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("node.cores", "lists a core twice: shards do not share cores"));
        }
        if self.net.backend == Backend::Dpdk && n.cores.is_empty() {
            return Err(invalid(
                "node.cores",
                "the dpdk backend needs one core per shard (poll-mode shards spin)",
            ));
        }
        Ok(())
    }

    fn validate_net(&self) -> Result<(), ConfigError> {
        let n = &self.net;
        let min = crate::wire::HEADER_LEN + 2 * crate::wire::FRAME_HEADER_LEN;
        if n.datagram_bytes_max < min || n.datagram_bytes_max > UDP_PAYLOAD_MAX {
            return Err(invalid(
                "net.datagram_bytes_max",
                format!("{} is not in {min}..={UDP_PAYLOAD_MAX}", n.datagram_bytes_max),
            ));
        }
        if !(1..=1024).contains(&n.burst_size_max) {
            return Err(invalid("net.burst_size_max", format!("{} is not in 1..=1024", n.burst_size_max)));
        }
        if !(1..=1024).contains(&n.requests_per_datagram_max) {
            return Err(invalid(
                "net.requests_per_datagram_max",
                format!("{} is not in 1..=1024", n.requests_per_datagram_max),
            ));
        }
        if n.port == 0 {
            return Err(invalid("net.port", "0 is not a port to serve on"));
        }
        if !(1..=1 << 20).contains(&n.answers_reserved_max) {
            return Err(invalid(
                "net.answers_reserved_max",
                format!("{} is not in 1..={}", n.answers_reserved_max, 1 << 20),
            ));
        }
        Ok(())
    }

    fn validate_storage(&self) -> Result<(), ConfigError> {
        let st = &self.storage;
        let no_dir = st.dir.as_deref().is_none_or(|d| d.as_os_str().is_empty());
        if st.backend == StorageBackend::Uring && no_dir {
            return Err(invalid("storage.dir", "backend \"uring\" needs a directory for the log files"));
        }
        let partitions = st.partitions(self.node.shards);
        if partitions < self.node.shards as u32 || partitions > crate::inbox::PARTITIONS_MAX {
            return Err(invalid(
                "storage.partitions",
                format!(
                    "{partitions} is not in node.shards..={} (each shard owns at least one partition)",
                    crate::inbox::PARTITIONS_MAX
                ),
            ));
        }
        if !(1..=4096).contains(&st.queue_depth) {
            return Err(invalid("storage.queue_depth", format!("{} is not in 1..=4096", st.queue_depth)));
        }
        if !(1..=1 << 20).contains(&st.writes_waiting_max) {
            return Err(invalid(
                "storage.writes_waiting_max",
                format!("{} is not in 1..={}", st.writes_waiting_max, 1 << 20),
            ));
        }
        if st.snapshot_every_entries == 0 {
            return Err(invalid("storage.snapshot_every_entries", "must be at least 1"));
        }
        let batch_bytes = crate::partition::batch::BATCH_BYTES_MIN..=crate::raft::ENTRY_DATA_MAX;
        if !batch_bytes.contains(&st.batch_bytes_max) {
            return Err(invalid(
                "storage.batch_bytes_max",
                format!("{} is not in {batch_bytes:?} (one log record)", st.batch_bytes_max),
            ));
        }
        let batch_writes = 1..=crate::partition::batch::BATCH_WRITES_LIMIT;
        if !batch_writes.contains(&st.batch_writes_max) {
            return Err(invalid(
                "storage.batch_writes_max",
                format!("{} is not in {batch_writes:?}", st.batch_writes_max),
            ));
        }
        if !matches!(st.atomic_write_bytes, crate::log::ATOMIC_WRITE_SECTOR | crate::log::ATOMIC_WRITE_BLOCK)
        {
            return Err(invalid(
                "storage.atomic_write_bytes",
                format!(
                    "{} is not 512 or 4096 (the unit the log's device writes whole across a power loss)",
                    st.atomic_write_bytes
                ),
            ));
        }
        let ual = st.ual();
        ual.validate(ual.device_blocks()).map_err(|e| invalid("storage", e.to_string()))?;
        if st.segment_count < 4 {
            return Err(invalid(
                "storage.segment_count",
                format!("{} < 4: the ring needs room to snapshot before it fills", st.segment_count),
            ));
        }
        // One poll's worth of writes must fit well inside a segment, so that the free segments kept
        // in reserve (see partition::SEGMENTS_FREE_MIN) always absorb what is already proposed.
        let burst_bytes = self.net.burst_size_max as u64 * self.net.datagram_bytes_max as u64 * 4;
        let segment_bytes = u64::from(st.segment_blocks) * 4096;
        if segment_bytes < burst_bytes {
            return Err(invalid(
                "storage.segment_blocks",
                format!(
                    "{segment_bytes}-byte segments are too small for bursts of {} datagrams: need at least {burst_bytes} bytes",
                    self.net.burst_size_max
                ),
            ));
        }
        Ok(())
    }

    fn validate_kv(&self) -> Result<(), ConfigError> {
        let kv = &self.kv;
        kv.limits().validate().map_err(|e| invalid("kv", e.to_string()))?;
        // A SET or CAS command is one log record: header, key and value must fit.
        let command_max =
            crate::kv::command::COMMAND_HEADER_LEN + 8 + 2 + 4 + kv.key_bytes_max + kv.value_bytes_max;
        if command_max > crate::raft::ENTRY_DATA_MAX {
            return Err(invalid(
                "kv.value_bytes_max",
                format!(
                    "key_bytes_max + value_bytes_max = {} does not fit one log record ({} bytes with the command header)",
                    kv.key_bytes_max + kv.value_bytes_max,
                    crate::raft::ENTRY_DATA_MAX
                ),
            ));
        }
        if kv.key_bytes_max == 0 {
            return Err(invalid("kv.key_bytes_max", "must be at least 1"));
        }
        Ok(())
    }

    fn validate_kernel(&self) -> Result<(), ConfigError> {
        let k = &self.kernel;
        // Each shard holds up to a burst of received datagrams, a burst of replies and the buffers
        // reserved for late answers at once.
        let needed = 2 * self.net.burst_size_max + self.net.answers_reserved_max;
        if k.pool_buffers < needed {
            return Err(invalid(
                "kernel.pool_buffers",
                format!(
                    "{} is below 2 x net.burst_size_max + net.answers_reserved_max = {needed}",
                    k.pool_buffers
                ),
            ));
        }
        if k.idle_wait_us > 1_000_000 {
            return Err(invalid(
                "kernel.idle_wait_us",
                "more than 1 s would make shutdown and latency sluggish",
            ));
        }
        Ok(())
    }
}

impl DpdkConfig {
    fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        if self.port.trim().is_empty() {
            return Err(invalid(
                "dpdk.port",
                "is empty: name the ethdev (e.g. net_memif0) or give its index",
            ));
        }
        if self.vdevs.is_empty() && self.no_pci {
            return Err(invalid(
                "dpdk.vdevs",
                "is empty while no_pci = true: there would be no device at all",
            ));
        }
        if self.file_prefix.is_empty() || self.file_prefix.contains('/') {
            return Err(invalid("dpdk.file_prefix", "must be a non-empty name without '/'"));
        }
        if self.memory_mb < 64 {
            return Err(invalid(
                "dpdk.memory_mb",
                format!("{} MiB is below the 64 MiB EAL needs", self.memory_mb),
            ));
        }
        for (key, size) in
            [("dpdk.rx_ring_size", self.rx_ring_size), ("dpdk.tx_ring_size", self.tx_ring_size)]
        {
            if !size.is_power_of_two() || !(64..=16384).contains(&size) {
                return Err(invalid(key, format!("{size} is not a power of two in 64..=16384")));
            }
        }
        let burst = config.net.burst_size_max as u64;
        let needed = u64::from(self.rx_ring_size)
            + u64::from(self.tx_ring_size)
            + 2 * burst
            + u64::from(self.mbuf_cache)
            + config.net.answers_reserved_max as u64;
        if u64::from(self.mbufs_per_shard) < needed {
            return Err(invalid(
                "dpdk.mbufs_per_shard",
                format!("{} cannot fill the rx ring, the tx ring, two bursts, the cache and net.answers_reserved_max: need at least {needed}", self.mbufs_per_shard),
            ));
        }
        if self.mbuf_cache > 512 {
            return Err(invalid(
                "dpdk.mbuf_cache",
                format!("{} exceeds DPDK's limit of 512", self.mbuf_cache),
            ));
        }
        let room = MBUF_DATA_ROOM - vigil_pmd::net::UDP_PAYLOAD_OFFSET;
        if config.net.datagram_bytes_max > room {
            return Err(invalid(
                "net.datagram_bytes_max",
                format!("{} does not fit one {MBUF_DATA_ROOM}-byte mbuf after the headers (at most {room} with dpdk)", config.net.datagram_bytes_max),
            ));
        }
        Ok(())
    }
}

mod limits;
pub use limits::{machine_memory_bytes, MemoryEstimate, MemoryPart};

#[cfg(test)]
mod tests;

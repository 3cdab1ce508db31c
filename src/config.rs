//! Configuration: a TOML file read with serde (`deny_unknown_fields`) and validated before anything
//! starts.
//!
//! Invariants: a `Config` that `Config::parse` returned has passed `validate`, so every later stage
//! may rely on its limits (non-zero bursts, ring sizes that are powers of two, a core per shard for
//! DPDK, every size below its maximum and what start-up allocates within the machine's memory:
//! see `limits`). Errors name the key (`net.burst_size_max`) and the reason. What matters on bare metal has
//! no silent default: `node.cores`, `dpdk.port` and `dpdk.vdevs` must be written out; tuning knobs
//! (ring sizes, pool sizes) have documented defaults.

use serde::{Deserialize, Serialize};
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
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
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
    /// TCP clients on the data plane's port (RESP, the binary protocol over TCP).
    #[serde(default)]
    pub tcp: TcpConfig,
    /// The candle store's ring limits (the same on every replica).
    #[serde(default)]
    pub candle: CandleConfig,
    /// This node's id, the cluster's nodes and every partition's replicas (none: a node alone).
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// The Prometheus endpoint (none by default).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The node's log lines.
    #[serde(default)]
    pub log: LogConfig,
    /// The admin operations on the web port (off by default).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Who may use the data plane (docs/SECURITY.md); by default nobody without credentials.
    #[serde(default)]
    pub auth: AuthConfig,
}

/// Which block device backs each partition's log.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// io_uring with `O_DIRECT` on one preallocated file per partition in `storage.dir`, or on one
    /// region per partition of the raw block device `storage.device`: durable.
    Uring,
    /// SPDK's user-space NVMe driver on one region per partition of the namespace `[storage.spdk]`
    /// names, polled by the shard cores (builds with `--features spdk` only): durable.
    Spdk,
    /// Memory: nothing survives a restart. For tests and demos of the request path only.
    Memory,
}

/// How a durable write is made durable (io_uring backend).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DurableMode {
    /// `RWF_DSYNC` on each log write (FUA where the device has it).
    #[default]
    Dsync,
    /// Each log write followed by a linked `fdatasync`.
    Flush,
}

/// The log: one Unified Append Log per partition.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The block backend.
    pub backend: StorageBackend,
    /// Directory of the store's manifest, lock and snapshots (`partition-<p>.snap`), and of the log
    /// files (`partition-<p>.ual`) unless the log is on a device; required for `uring` and `spdk`,
    /// created if missing. Log files need a filesystem with `O_DIRECT` (not tmpfs).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// `uring` only: the log on this raw block device (e.g. `/dev/nvme0n1`), one region per
    /// partition after a label block, instead of files in `dir`. `vigil format` creates the store
    /// on it (a start never does); it is opened exclusively while a node serves.
    #[serde(default)]
    pub device: Option<PathBuf>,
    /// `spdk` only: the NVMe namespace and SPDK's environment.
    #[serde(default)]
    pub spdk: Option<SpdkStorageConfig>,
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
    /// Bytes of log the writes proposed and not yet answered may take, per partition (the window
    /// of writes in flight, counted at twice their encoded size: a record may pad the rest of a
    /// block); beyond it writes are answered `BUSY`. Default: 4 MiB, or one segment when segments
    /// are smaller (then everything not yet applied is still in the log's memory, the tail
    /// segment and the one before it). At most half the ring (writes in flight cannot be
    /// snapshotted, and a snapshot is due when half the ring is in use). Larger than a segment,
    /// the leader reads entries back from the device (blocking, a segment at a time) to apply
    /// them when its apply trails by more than the log's memory.
    #[serde(default)]
    pub inflight_bytes_max: Option<u64>,
    /// Most bytes of one batch entry: the writes a partition accepts in one poll iteration go into
    /// one Raft entry, one log record (so at most 4064 bytes).
    #[serde(default = "defaults::batch_bytes_max")]
    pub batch_bytes_max: usize,
    /// Most writes in one batch entry.
    #[serde(default = "defaults::batch_writes_max")]
    pub batch_writes_max: usize,
}

/// `[storage.spdk]`: where the log's NVMe namespace is, for `storage.backend = "spdk"`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SpdkStorageConfig {
    /// SPDK's transport ID of the controller: `trtype:PCIe traddr:0000:00:04.0` for a local drive
    /// (bound to vfio-pci by `scripts/deploy/bind`, which reads it here), or an NVMe-oF target such as
    /// `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:NQN`.
    pub transport_id: String,
    /// The namespace (usually 1); no default: it names where the data is.
    pub namespace_id: u32,
    /// Start SPDK's environment without hugepages (development only: a PCIe drive then needs an
    /// IOMMU). Ignored with `net.backend = "dpdk"`, whose EAL SPDK joins.
    #[serde(default)]
    pub no_huge: bool,
    /// Memory SPDK's environment reserves, in MiB (ignored with `net.backend = "dpdk"`: the EAL's
    /// `dpdk.memory_mb` is what there is). It holds each partition's bounce buffers:
    /// `storage.queue_depth x storage.segment_blocks x 4 KiB`.
    #[serde(default = "defaults::spdk_mem_size_mb")]
    pub mem_size_mb: u32,
}

/// `storage.inflight_bytes_max` when not set (clamped to one segment).
pub const INFLIGHT_BYTES_DEFAULT: u64 = 4 << 20;
/// The least `storage.inflight_bytes_max`: one block.
pub const INFLIGHT_BYTES_MIN: u64 = vigil_pmd::block::BLOCK_SIZE as u64;

/// Limits of the KV projection.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
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

    /// `inflight_bytes_max`, or its default: 4 MiB, at most one segment.
    pub fn inflight_bytes_max(&self) -> u64 {
        let segment_bytes = u64::from(self.segment_blocks) * vigil_pmd::block::BLOCK_SIZE as u64;
        self.inflight_bytes_max.unwrap_or(INFLIGHT_BYTES_DEFAULT.min(segment_bytes))
    }

    /// The bytes of a partition's log ring.
    pub fn ring_bytes(&self) -> u64 {
        u64::from(self.segment_blocks) * u64::from(self.segment_count) * vigil_pmd::block::BLOCK_SIZE as u64
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
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Number of shards (one thread and one queue pair each).
    pub shards: usize,
    /// The CPU core of each shard, in shard order; `[]` leaves them unpinned (development only;
    /// refused for DPDK).
    pub cores: Vec<usize>,
}

/// Which packet backend serves the data plane.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Kernel UDP sockets (recvmmsg/sendmmsg), one SO_REUSEPORT socket per shard.
    Kernel,
    /// DPDK poll-mode driver, one rx/tx queue pair per shard.
    Dpdk,
}

/// What to do when the DPDK backend cannot start.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Fail with the error.
    #[default]
    None,
    /// Say why, then serve on kernel sockets (`kernel.bind_ip`).
    Kernel,
}

/// The data plane.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
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
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
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
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
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
    /// The exception path: the name of a kernel interface (a `net_tap` Vigil creates, with the
    /// port's MAC and `dpdk.ip`) that gets every frame the fast path does not serve (TCP, other
    /// UDP ports, ARP replies, IPv6), and whose frames go out of the port; TCP clients (RESP, the
    /// binary protocol) then reach `dpdk.ip`:`net.port` through the kernel (docs/CLIENTS.md).
    /// Unset: no exception path, and no TCP on the DPDK port.
    #[serde(default)]
    pub exception_iface: Option<String>,
    /// The prefix length of `dpdk.ip` on the exception interface (its subnet).
    #[serde(default = "defaults::exception_prefix_len")]
    pub exception_prefix_len: u8,
}

mod defaults {
    use std::net::Ipv4Addr;
    pub fn exception_prefix_len() -> u8 {
        24
    }
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
    pub fn spdk_mem_size_mb() -> u32 {
        1024
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

    /// This config with its secrets (`tcp.requirepass`, `admin.token`, the keys and passwords of
    /// `auth.clients`) replaced by `"(set)"`,
    /// for showing (the JSON API, the dashboard).
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        for secret in [&mut c.tcp.requirepass, &mut c.admin.token, &mut c.admin.read_token] {
            if !secret.is_empty() {
                *secret = "(set)".into();
            }
        }
        for client in &mut c.auth.clients {
            for secret in [&mut client.key, &mut client.password].into_iter().flatten() {
                *secret = "(set)".into();
            }
        }
        c
    }

    /// Checks every limit and cross-key rule; the first violation is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_node()?;
        self.validate_net()?;
        self.validate_kernel()?;
        self.validate_storage()?;
        self.validate_kv()?;
        self.tcp.validate(self.net.datagram_bytes_max)?;
        self.candle.validate()?;
        self.cluster.validate()?;
        self.metrics.validate()?;
        self.log.validate()?;
        self.admin.validate()?;
        self.auth.validate()?;
        self.auth.validate_exposure(self)?;
        admin::check_exposure(self)?;
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
}

mod admin;
pub mod auth;
mod candle;
mod cluster;
mod limits;
mod log;
mod metrics;
mod tcp;
mod validate;
pub use admin::AdminConfig;
pub use auth::{Anonymous, AuthConfig, ClientConfig};
pub use candle::CandleConfig;
pub use cluster::{ClusterConfig, PeerConfig, REPLICAS_MAX};
pub use limits::{machine_memory_bytes, MemoryEstimate, MemoryPart};
pub use log::LogConfig;
pub use metrics::MetricsConfig;
pub use tcp::TcpConfig;

#[cfg(test)]
mod tests;

//! The checks of `Config::validate`, one function per table: every limit and cross-key rule,
//! the first violation returned naming its key.

use super::*;

impl Config {
    pub(super) fn validate_node(&self) -> Result<(), ConfigError> {
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

    pub(super) fn validate_net(&self) -> Result<(), ConfigError> {
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

    pub(super) fn validate_storage(&self) -> Result<(), ConfigError> {
        let st = &self.storage;
        let no_dir = st.dir.as_deref().is_none_or(|d| d.as_os_str().is_empty());
        if st.backend == StorageBackend::Uring && no_dir {
            return Err(invalid("storage.dir", "backend \"uring\" needs a directory for the log files"));
        }
        if st.backend == StorageBackend::Spdk && no_dir {
            return Err(invalid(
                "storage.dir",
                "backend \"spdk\" needs a directory for the store's manifest, lock and snapshots",
            ));
        }
        if st.device.is_some() && st.backend != StorageBackend::Uring {
            return Err(invalid(
                "storage.device",
                "is for backend \"uring\" only (spdk names its namespace in [storage.spdk])",
            ));
        }
        if st.device.as_deref().is_some_and(|d| !d.is_absolute()) {
            return Err(invalid("storage.device", "must be an absolute path such as /dev/nvme0n1"));
        }
        match (&st.spdk, st.backend) {
            (None, StorageBackend::Spdk) => {
                return Err(invalid(
                    "storage.spdk",
                    "backend \"spdk\" needs [storage.spdk] with transport_id and namespace_id",
                ))
            }
            (Some(_), b) if b != StorageBackend::Spdk => {
                return Err(invalid("storage.spdk", "is for backend \"spdk\" only"))
            }
            (Some(s), _) if s.transport_id.trim().is_empty() || s.transport_id.contains('\0') => {
                return Err(invalid(
                    "storage.spdk.transport_id",
                    "is empty (e.g. \"trtype:PCIe traddr:0000:00:04.0\")",
                ))
            }
            (Some(s), _) if s.namespace_id == 0 => {
                return Err(invalid("storage.spdk.namespace_id", "0 is not a namespace (they start at 1)"))
            }
            (Some(s), _) if s.mem_size_mb == 0 => return Err(invalid("storage.spdk.mem_size_mb", "0 MiB")),
            (Some(s), _) if self.net.backend == Backend::Kernel => {
                // SPDK's own heap holds every partition's bounce buffers (pmd/src/block/spdk.rs),
                // with a quarter left for SPDK itself.
                let bounce = u64::from(st.partitions(self.node.shards))
                    * u64::from(st.queue_depth)
                    * u64::from(st.segment_blocks)
                    * 4096;
                if bounce > u64::from(s.mem_size_mb) * (3 << 20) / 4 {
                    return Err(invalid(
                        "storage.spdk.mem_size_mb",
                        format!(
                            "{} MiB cannot hold the bounce buffers of storage.partitions x storage.queue_depth x \
                             storage.segment_blocks x 4 KiB = {} MiB plus SPDK's own quarter: raise it to at least {}",
                            s.mem_size_mb,
                            bounce >> 20,
                            (bounce * 4 / 3).div_ceil(1 << 20)
                        ),
                    ));
                }
            }
            _ => {}
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
        // Writes in flight are not applied yet, so no snapshot can cover them: they must fit in the
        // half of the ring a snapshot keeps free.
        let inflight = super::INFLIGHT_BYTES_MIN..=st.ring_bytes() / 2;
        if !inflight.contains(&st.inflight_bytes_max()) {
            return Err(invalid(
                "storage.inflight_bytes_max",
                format!(
                    "{} is not in {inflight:?} (one block to half the log ring: writes in flight cannot be snapshotted)",
                    st.inflight_bytes_max()
                ),
            ));
        }
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

    pub(super) fn validate_kv(&self) -> Result<(), ConfigError> {
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

    pub(super) fn validate_kernel(&self) -> Result<(), ConfigError> {
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
    pub(super) fn validate(&self, config: &Config) -> Result<(), ConfigError> {
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
        if let Some(iface) = &self.exception_iface {
            let ok = (1..=15).contains(&iface.len())
                && iface.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if !ok {
                return Err(invalid(
                    "dpdk.exception_iface",
                    format!("{iface:?} is not an interface name (1 to 15 of A-Z a-z 0-9 - _ .)"),
                ));
            }
        }
        if !(1..=32).contains(&self.exception_prefix_len) {
            return Err(invalid("dpdk.exception_prefix_len", "must be in 1..=32"));
        }
        let burst = config.net.burst_size_max as u64;
        // The exception interface's receive ring fills from the shard's pool too.
        let exception_ring = if self.exception_iface.is_some() { u64::from(self.rx_ring_size) } else { 0 };
        let needed = exception_ring
            + u64::from(self.rx_ring_size)
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

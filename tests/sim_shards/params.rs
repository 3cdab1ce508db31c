//! The seed's parameters: everything a seed decides before the run starts (the node's shape, the
//! clients, the network's and the disks' faults, the crash schedule, the media faults, the log's
//! geometry), drawn from the seed's `SplitMix64` alone.
//!
//! Invariant: every configuration drawn is one the product accepts and runs as deployed: a
//! partition on a persistent device always has its snapshot file (as `serve` gives it), so a
//! checkpoint is never a configuration error.

use super::*;
use vigil::partition::batch::BatchLimits;

#[derive(Clone, Debug)]
pub(crate) struct Params {
    pub(crate) clean: bool,
    pub(crate) shards: usize,
    pub(crate) partitions: u32,
    pub(crate) clients: usize,
    pub(crate) registers: usize,
    pub(crate) counters: usize,
    pub(crate) steps: u64,
    pub(crate) step_ns_max: u64,
    pub(crate) think_ns_max: u64,
    pub(crate) timeout_ns: u64,
    pub(crate) retries_max: u32,
    pub(crate) net: SimNetConfig,
    pub(crate) net_partitions: bool,
    /// Back-pressure: cross-shard inbox sizes, Raft's pending proposals, the shard burst.
    pub(crate) inbox_capacity: usize,
    pub(crate) inbox_in_flight: usize,
    pub(crate) proposals_pending_max: usize,
    pub(crate) burst: usize,
    pub(crate) disk: SimDiskConfig,
    /// Faults once a partition is open (none while it opens: a device failing at start-up is
    /// another story than a node losing its log while it runs).
    pub(crate) run_faults: SimDiskFaults,
    pub(crate) crash_steps: Vec<u64>,
    pub(crate) restart_on_unavailable: bool,
    pub(crate) down_ns_max: u64,
    /// Media faults while the node is down, and transient read errors while it starts.
    pub(crate) media: MediaFaults,
    /// The log's ring is small (snapshots every `snapshot_every` entries, segments recycled) or
    /// large (`snapshot_every` is out of reach: a snapshot is taken only if half the ring fills,
    /// which a crowd seed can do; most seeds replay their whole log at every restart).
    pub(crate) small_ring: bool,
    /// Entries between snapshots (to the partition's file in the seed's temp dir).
    pub(crate) snapshot_every: u64,
    pub(crate) ual: UalConfig,
    /// The window of writes in flight in bytes of log (`storage.inflight_bytes_max`): half a
    /// segment (all of it in the log's memory), or up to three segments (capped at half the
    /// ring), so that the leader reads committed entries back from the device to apply them.
    pub(crate) inflight_bytes_max: u64,
    /// The bounds of batch entries: the server's, or small ones so batches fill (by count and
    /// by bytes) and seal in the middle of a poll iteration.
    pub(crate) batch: BatchLimits,
    /// The snapshot store's faults (`snapshots.rs`).
    pub(crate) snapshots: SnapshotFaults,
}

/// Media faults, injected into a partition's device (and snapshot file) while the node is down,
/// each at each restart with its probability; and transient read errors while the node starts.
/// `MediaFaults::default()` is none.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct MediaFaults {
    /// A bit of a written block of the log's device flips (bit rot of acknowledged data, or of
    /// stale blocks, padding or a superblock copy: the block is any one that holds something).
    pub(crate) bit_flip: f64,
    /// A written block of the log's device gets a latent sector error: every read of it fails
    /// until it is written again (kept across restarts).
    pub(crate) latent: f64,
    /// A bit of the partition's snapshot file flips (when it has one).
    pub(crate) snapshot_flip: f64,
    /// The partition's snapshot file is lost (when it has one).
    pub(crate) snapshot_lost: f64,
    /// Each read while a partition opens fails with this probability (a transient error).
    pub(crate) read_error: f64,
}

impl MediaFaults {
    /// A seed's media faults: none for three seeds in four; else each kind on or off.
    fn draw(rng: &mut SplitMix64) -> Self {
        if !rng.chance(0.25) {
            return Self::default();
        }
        let mut on =
            |p: f64, lo: u64, hi: u64| if rng.chance(p) { rng.range(lo, hi) as f64 / 1000.0 } else { 0.0 };
        Self {
            bit_flip: on(0.6, 100, 600),
            latent: on(0.4, 50, 400),
            snapshot_flip: on(0.2, 20, 200),
            snapshot_lost: on(0.4, 50, 300),
            read_error: on(0.4, 1, 30),
        }
    }

    /// Whether any media fault is on.
    pub(crate) fn any(&self) -> bool {
        *self != Self::default()
    }
}

impl Params {
    pub(crate) fn draw(rng: &mut SplitMix64) -> Self {
        // The unit the devices write whole across a power loss, for the disks' torn writes and the
        // logs' `atomic_write_bytes` together: 512 or 4096, half the seeds each. Drawn from a copy
        // of the generator, so it shifts no other draw of the seed.
        let atomic = if SplitMix64::new(rng.clone().next_u64() ^ 0x0A70_41C0).chance(0.5) {
            vigil::log::ATOMIC_WRITE_BLOCK
        } else {
            vigil::log::ATOMIC_WRITE_SECTOR
        };
        let clean = rng.below(7) == 0;
        let shards = 1 + rng.below(3) as usize;
        let partitions = (shards * (1 + rng.below(2) as usize)) as u32;
        // One seed in four is a crowd: many clients, no think time, small queues (BUSY, drops).
        let crowd = rng.chance(0.25);
        let clients = if crowd { 8 + rng.below(33) as usize } else { 2 + rng.below(5) as usize };
        let (inbox_capacity, inbox_in_flight, proposals_pending_max, burst) = if crowd {
            (
                rng.range(1, 16) as usize,
                rng.range(1, 16) as usize,
                rng.range(1, 16) as usize,
                rng.range(1, 32) as usize,
            )
        } else {
            (64, 32, 4096, 32)
        };
        let registers = 2 + rng.below(14) as usize;
        let counters = 1 + rng.below(4) as usize;
        let steps = rng.range(2_000, 8_000);
        let step_ns_max = rng.range(5_000, 60_000);
        let think_ns_max = if crowd { rng.range(0, 50_000) } else { rng.range(0, 300_000) };
        let timeout_ns = rng.range(1_500_000, 4_000_000);
        // The clean class never gives up: BUSY under a crowd is back-pressure, not a fault, and the plain
        // model needs every write's outcome.
        let retries_max = if clean { 1_000 } else { rng.range(10, 40) as u32 };
        let mut net = SimNetConfig {
            delay_ns: (rng.range(5_000, 20_000), rng.range(20_000, 150_000)),
            ..SimNetConfig::default()
        };
        let mut disk = SimDiskConfig::new(0);
        disk.write_latency_ns = (rng.range(5_000, 30_000), rng.range(30_000, 400_000));
        disk.read_latency_ns = (5_000, rng.range(5_000, 100_000));
        disk.flush_latency_ns = (50_000, rng.range(50_000, 1_000_000));
        disk.queue_depth = 8 + rng.below(25) as usize;
        let mut run_faults = SimDiskFaults { torn_sector_bytes: atomic as usize, ..SimDiskFaults::none() };
        let mut media = MediaFaults::default();
        let mut crash_steps = Vec::new();
        let mut net_partitions = false;
        let mut restart_on_unavailable = false;
        if !clean {
            let lossy = rng.chance(0.7);
            net.loss = if lossy { rng.range(0, 100) as f64 / 1000.0 } else { 0.0 };
            net.duplicate = if lossy { rng.range(0, 60) as f64 / 1000.0 } else { 0.0 };
            net.reorder = if rng.chance(0.6) { rng.range(0, 300) as f64 / 1000.0 } else { 0.0 };
            net.reorder_extra_ns = rng.range(50_000, 2_000_000);
            net.inbox_max = if rng.chance(0.2) { rng.range(4, 64) as usize } else { 4096 };
            net_partitions = rng.chance(0.4);
            let crashes = rng.below(5);
            for _ in 0..crashes {
                crash_steps.push(rng.range(1, steps));
            }
            crash_steps.sort_unstable();
            run_faults = SimDiskFaults {
                write_error: if rng.chance(0.4) { rng.range(1, 20) as f64 / 1000.0 } else { 0.0 },
                read_error: if rng.chance(0.2) { rng.range(1, 20) as f64 / 1000.0 } else { 0.0 },
                latent_on_write: 0.0,
                writeback: rng.range(0, 100) as f64 / 1000.0,
                crash_keep_dirty: rng.range(0, 1000) as f64 / 1000.0,
                crash_torn: rng.range(0, 1000) as f64 / 1000.0,
                torn_scatter: rng.chance(0.5),
                torn_sector_bytes: atomic as usize,
            };
            restart_on_unavailable = true;
            // A generator of its own (one draw here): new kinds of media faults shift nothing else.
            media = MediaFaults::draw(&mut rng.fork());
        }
        let down_ns_max = rng.range(0, 5_000_000);
        // Every partition has its snapshot file, as `serve` gives one to every partition on a
        // persistent device. (Seeds once ran without one on a large ring, asserting that no
        // snapshot happens; seed 118215866939488, a crowd of 35 clients, half filled the ring and
        // the partition checkpointed into memory, as it does on a device that does not persist:
        // a configuration `serve` never builds, and one that loses the checkpointed entries at
        // the next crash.)
        let small_ring = rng.chance(0.5);
        let (snapshot_every, ual) = if small_ring {
            // A small ring that must recycle: snapshots, checkpoints.
            let ual = UalConfig {
                segment_blocks: 4 << rng.below(2),
                segment_count: 4 + rng.below(5) as u32,
                write_blocks_max: write_blocks_max(rng, 2),
                writes_in_flight_max: 1 + rng.below(4) as u32,
                format_if_blank: true,
                atomic_write_bytes: atomic,
            };
            (rng.range(3, 80), ual)
        } else {
            // A ring most seeds never fill halfway, even when every group commit is a single
            // record padded to its own block (the log pads the tail block while a write of it is
            // in flight): long replays, no snapshot; a crowd may still fill it (a snapshot then).
            let ual = UalConfig {
                segment_blocks: 64,
                segment_count: 64,
                write_blocks_max: write_blocks_max(rng, 3),
                writes_in_flight_max: 1 + rng.below(4) as u32,
                format_if_blank: true,
                atomic_write_bytes: atomic,
            };
            (SNAPSHOT_NEVER, ual)
        };
        disk.capacity_blocks = ual.device_blocks();
        // From a copy of the generator, as `atomic`: it shifts no other draw of the seed.
        let inflight_bytes_max = {
            let mut own = SplitMix64::new(rng.clone().next_u64() ^ 0x1F11_6447);
            let segment_bytes = u64::from(ual.segment_blocks) * 4096;
            let ring_half = segment_bytes * u64::from(ual.segment_count) / 2;
            if own.chance(0.5) {
                segment_bytes / 2
            } else {
                (segment_bytes * own.range(1, 4)).min(ring_half)
            }
        };
        // Above the largest command KvLimits::small() allows, so every write fits a batch alone.
        let batch = if rng.chance(0.5) {
            BatchLimits::default()
        } else {
            BatchLimits { bytes_max: rng.range(1200, 4064) as usize, writes_max: rng.range(1, 5) as usize }
        };
        let snapshots = SnapshotFaults::draw(rng, clean);
        Params {
            clean,
            shards,
            partitions,
            clients,
            registers,
            counters,
            steps,
            step_ns_max,
            think_ns_max,
            timeout_ns,
            retries_max,
            net,
            net_partitions,
            inbox_capacity,
            inbox_in_flight,
            proposals_pending_max,
            burst,
            disk,
            run_faults,
            crash_steps,
            restart_on_unavailable,
            down_ns_max,
            media,
            small_ring,
            snapshot_every,
            ual,
            inflight_bytes_max,
            batch,
            snapshots,
        }
    }

    pub(crate) fn partition_config(&self) -> PartitionConfig {
        PartitionConfig {
            ual: self.ual,
            raft: RaftGroupConfig {
                election_timeout: ElectionTimeout::Fixed(10),
                proposals_pending_max: self.proposals_pending_max,
                ..RaftGroupConfig::default()
            },
            kv: KvLimits::small(),
            projections: Default::default(),
            snapshot_every_entries: self.snapshot_every,
            node_id: 1,
            voters: vec![1],
            batch: self.batch,
            inflight_bytes_max: self.inflight_bytes_max,
            follower_read_staleness_ns: 0,
            quiesce_idle: true,
        }
    }
}

/// `snapshot_every` of a large ring: no seed applies this many entries.
const SNAPSHOT_NEVER: u64 = 1 << 40;

/// `write_blocks_max` for a seed: 2, 4 .. 2^max_log2 (`UalConfig::validate` refuses 1).
pub(crate) fn write_blocks_max(rng: &mut SplitMix64, max_log2: u64) -> u32 {
    1 << rng.range(1, max_log2)
}

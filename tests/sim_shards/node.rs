//! The node's life: the shards' packet and block devices, starting a node (opening every
//! partition on a `SimDisk`, checking what it recovered against the model), power cuts and
//! restarts, and the projection scans.
//!
//! Invariant: the node's devices are owned by the partitions while it runs; the simulator keeps a
//! handle on each disk only to take its image when a start is refused or the power fails.

use super::*;

pub(crate) struct Ep(Rc<RefCell<SimEndpoint>>);

impl PacketIo for Ep {
    type Rx = VecRx;
    type Tx = VecTx;

    fn rx_burst(&mut self, batch: &mut Batch<VecRx>) -> usize {
        self.0.borrow_mut().rx_burst(batch)
    }

    fn tx_alloc(&mut self, peer: &Peer) -> Option<VecTx> {
        self.0.borrow_mut().tx_alloc(peer)
    }

    fn tx_burst(&mut self, batch: &mut Batch<VecTx>) -> usize {
        self.0.borrow_mut().tx_burst(batch)
    }

    fn counters(&self) -> IoCounters {
        self.0.borrow().counters()
    }
}

/// A partition's device: the `SimDisk`, or (`lie`, the checker's self-test only) a disk that
/// completes durable writes without making them durable (into its volatile cache, lost at a
/// crash): the bug "acknowledged before durable" the simulator must catch. The disk is shared
/// with the simulator, which takes its image when `Partition::open` refuses (and drops the
/// device): a refused start leaves the device as it left it, and the next start gets that.
pub(crate) struct SimDev {
    pub(crate) disk: Rc<RefCell<SimDisk>>,
    pub(crate) lie: bool,
}

impl BlockIo for SimDev {
    fn block_size(&self) -> usize {
        self.disk.borrow().block_size()
    }

    fn capacity_blocks(&self) -> u64 {
        self.disk.borrow().capacity_blocks()
    }

    fn queue_depth(&self) -> usize {
        self.disk.borrow().queue_depth()
    }

    fn in_flight(&self) -> usize {
        self.disk.borrow().in_flight()
    }

    fn submit_write(&mut self, tag: u64, lba: u64, buf: BlockBuf, durable: bool) -> Result<(), SubmitError> {
        self.disk.borrow_mut().submit_write(tag, lba, buf, durable && !self.lie)
    }

    fn submit_read(&mut self, tag: u64, lba: u64, buf: BlockBuf) -> Result<(), SubmitError> {
        self.disk.borrow_mut().submit_read(tag, lba, buf)
    }

    fn submit_flush(&mut self, tag: u64) -> Result<(), SubmitError> {
        self.disk.borrow_mut().submit_flush(tag)
    }

    fn poll_completions(&mut self, out: &mut Batch<Completion>) -> usize {
        self.disk.borrow_mut().poll_completions(out)
    }
}

/// The running node: its shards and their KV state.
pub(crate) struct Node {
    pub(crate) shards: Vec<Shard<Ep>>,
    pub(crate) kvs: Vec<Rc<RefCell<KvShard<SimDev>>>>,
}

/// A partition's device while the node is down: what the media hold, and its latent sector
/// errors (on the media: they outlive the process, until the block is written again).
pub(crate) struct DownDisk {
    pub(crate) image: Vec<u8>,
    pub(crate) latent: Vec<u64>,
}

impl DownDisk {
    /// What a power cut leaves of `disk` (draws from the disk's generator). The disk is done
    /// with: its partition is gone, so this is its last handle and its image is taken, not copied.
    fn of(disk: Rc<RefCell<SimDisk>>) -> (Self, CrashReport) {
        let disk =
            Rc::try_unwrap(disk).unwrap_or_else(|_| panic!("a crashed disk is still shared")).into_inner();
        let latent = disk.latent_blocks();
        let (image, report) = disk.into_crash_image();
        (Self { image, latent }, report)
    }
}

/// A start `Partition::open` refused: the partition, why, whether a transient read error was
/// injected while it opened, and every partition's device as the refused start left it.
pub(crate) struct Refused {
    pub(crate) partition: u16,
    pub(crate) error: String,
    pub(crate) transient: bool,
    pub(crate) disks: Vec<DownDisk>,
}

impl Sim {
    // ----- the node's life -----

    /// Opens every partition (fresh disks, or the devices a crash left), checks what each
    /// recovered against the model, and assembles the shards as `serve::run_shard_on` does. A
    /// restart first injects the seed's media faults (`media.rs`). A refused start is returned
    /// (only where a media fault or a transient read error makes one legitimate: else it is a
    /// violation) with every device as it stands.
    pub(crate) fn start_node(&mut self, disks: Option<Vec<DownDisk>>) -> Result<Node, Refused> {
        let shards = self.p.shards;
        let routers: Vec<Option<Router>> = if shards == 1 {
            vec![None]
        } else {
            let cfg = InboxConfig {
                shards,
                partitions: self.p.partitions,
                inbox_capacity: self.p.inbox_capacity,
                in_flight_max: self.p.inbox_in_flight,
                pool_slots: shards * self.p.inbox_in_flight * 2,
                slot_bytes: (DATAGRAM_MAX + 64).next_power_of_two(),
            };
            inbox::build(&cfg).expect("inbox config").into_iter().map(Some).collect()
        };
        let restart = disks.is_some();
        let mut disks: Vec<Option<DownDisk>> = match disks {
            Some(v) => v.into_iter().map(Some).collect(),
            None => (0..self.p.partitions).map(|_| None).collect(),
        };
        // Every partition's disk, for the images of a refused start.
        let mut handles: Vec<Option<Rc<RefCell<SimDisk>>>> = vec![None; self.p.partitions as usize];
        let mut node = Node { shards: Vec::new(), kvs: Vec::new() };
        for (id, router) in routers.into_iter().enumerate() {
            let mut partitions = Vec::new();
            for p in (id as u32..self.p.partitions).step_by(shards) {
                let p = p as u16;
                let disk = self.new_disk(disks[usize::from(p)].take());
                handles[usize::from(p)] = Some(Rc::clone(&disk));
                match self.open_partition(p, id, disk, restart) {
                    Ok(part) => partitions.push(part),
                    Err(error) => {
                        let transient = {
                            let c = handles[usize::from(p)].as_ref().expect("set").borrow().counters();
                            c.read_errors > c.latent_read_errors
                        };
                        drop((partitions, node));
                        let disks = self.refused_disks(handles, disks);
                        return Err(Refused { partition: p, error, transient, disks });
                    }
                }
            }
            let kv = Rc::new(RefCell::new(KvShard::new(partitions, self.placement, router, DATAGRAM_MAX)));
            let mut d = Dispatcher::new();
            ops::register_all(&mut d).expect("built-ins register");
            Kv(Rc::clone(&kv)).register(&mut d).expect("kv registers");
            let engine = Engine::new(d, EngineLimits { requests_per_datagram_max: 64 });
            // Reservations for late answers: as many as can wait, within reason (a crowd's small
            // limits make them back-pressure too).
            let reserved = (self.p.proposals_pending_max + self.p.inbox_in_flight).min(256);
            let limits = ShardLimits { burst_size_max: self.p.burst, answers_reserved_max: reserved };
            let shard = Shard::new(id, Ep(Rc::clone(&self.shard_eps[id])), engine, limits)
                .with_service(Box::new(KvService(Rc::clone(&kv))));
            node.shards.push(shard);
            node.kvs.push(kv);
        }
        Ok(node)
    }

    /// A partition's disk: blank, or the device a crash left (with its latent sector errors).
    fn new_disk(&mut self, down: Option<DownDisk>) -> Rc<RefCell<SimDisk>> {
        let cfg = SimDiskConfig { faults: SimDiskFaults::none(), ..self.p.disk };
        let seed = self.rng.next_u64();
        let disk = match down {
            None => SimDisk::new(cfg, self.clock.clone(), seed),
            Some(DownDisk { image, latent }) => {
                let mut disk = SimDisk::from_image(cfg, self.clock.clone(), seed, image);
                for lba in latent {
                    disk.mark_latent_error(lba);
                }
                disk
            }
        };
        Rc::new(RefCell::new(disk))
    }

    /// Opens partition `p` of shard `id` on `disk` (after the media faults of a restart), checks
    /// what it recovered, and turns the run's faults on. `Err`: the refusal's text.
    fn open_partition(
        &mut self,
        p: u16,
        id: usize,
        disk: Rc<RefCell<SimDisk>>,
        restart: bool,
    ) -> Result<Partition<SimDev>, String> {
        if restart {
            self.inject_media_faults(p, &mut disk.borrow_mut());
        }
        let faults = disk.borrow().faults_handle();
        faults.set(if restart { self.open_faults() } else { SimDiskFaults::none() });
        let before = disk.borrow().volatile_image();
        let seed = self.rng.next_u64();
        let store = SimSnapshots::new(p, Rc::clone(&self.shelves[usize::from(p)]), seed, self.p.snapshots);
        let (mut part, report) = match Partition::open(
            p,
            SimDev { disk: Rc::clone(&disk), lie: self.lie },
            &self.p.partition_config(),
            Some(Box::new(store)),
        ) {
            Ok(x) => x,
            Err(e) => {
                self.on_refused_open(p, &e.to_string(), &before, &disk.borrow());
                return Err(e.to_string());
            }
        };
        trace!(self, "partition {p} (shard {id}) recovered: {report}");
        let c = disk.borrow().counters();
        self.count("read errors at starts that succeeded (transient)", c.read_errors - c.latent_read_errors);
        self.count("read errors at starts that succeeded (latent sector)", c.latent_read_errors);
        if report.snapshot_index.is_some() {
            self.count("recoveries from a snapshot file", 1);
        }
        if report.log.truncated_at_lsn.is_some() {
            self.count("recoveries that cut a torn tail", 1);
        }
        self.count("entries replayed at recovery", report.replayed);
        self.settle(&mut part);
        self.check_recovered(&part);
        faults.set(self.p.run_faults);
        Ok(part)
    }

    /// Every partition's device after a refused start: as the partitions opened so far left
    /// theirs (a power cut), the others untouched.
    fn refused_disks(
        &mut self,
        handles: Vec<Option<Rc<RefCell<SimDisk>>>>,
        mut untouched: Vec<Option<DownDisk>>,
    ) -> Vec<DownDisk> {
        handles
            .into_iter()
            .enumerate()
            .map(|(p, h)| match h {
                Some(disk) => DownDisk::of(disk).0,
                None => untouched[p].take().expect("a partition not opened keeps its device"),
            })
            .collect()
    }

    /// Polls a freshly opened partition until it leads and serves reads (bounded, in sim time).
    pub(crate) fn settle(&mut self, part: &mut Partition<SimDev>) {
        for _ in 0..SETTLE_POLLS_MAX {
            if part.serves_reads() {
                return;
            }
            self.clock.advance(10_000);
            let now = Nanos(self.now());
            part.poll(now, &mut |d| panic!("a waiter right after open: {d:?}"));
        }
        self.violation(format!("partition {} never served reads after recovery: {part:?}", part.id()));
    }

    /// Power cut: every partition's device as the crash leaves it; the node stays down a while.
    pub(crate) fn crash(&mut self, why: &str) {
        let Some(node) = self.node.take() else { return };
        trace!(self, "CRASH ({why})");
        self.count("crashes", 1);
        let mut disks: Vec<Option<DownDisk>> = (0..self.p.partitions).map(|_| None).collect();
        let Node { shards, kvs } = node;
        drop(shards);
        for kv in kvs {
            let kv = match Rc::try_unwrap(kv) {
                Ok(kv) => kv.into_inner(),
                Err(_) => panic!("the shard's KV state is still shared after the shard is gone"),
            };
            let c = kv.counters();
            self.count("requests forwarded across shards", c.forwarded);
            self.count("forwards refused (BUSY)", c.forward_refused);
            for part in kv.into_partitions() {
                let id = part.id();
                let c = part.counters();
                if !self.p.small_ring {
                    self.count("snapshots taken on a large ring (half full)", c.snapshots);
                }
                self.count("snapshots taken", c.snapshots);
                self.count("writes refused BUSY by partitions", c.busy);
                self.count("entries applied", c.applied);
                self.count("writes proposed", c.proposed);
                let mut shelf = self.shelves[usize::from(id)].borrow_mut();
                let (failed, interrupted) = (std::mem::take(&mut shelf.failed), shelf.in_flight);
                shelf.leftover |= interrupted;
                shelf.in_flight = false;
                drop(shelf);
                self.count("snapshot stores failed", failed);
                self.count("snapshot stores a crash interrupted", u64::from(interrupted));
                self.count("batch entries proposed", c.batches);
                let disk = part.into_device().disk;
                let dc = disk.borrow().counters();
                self.count("disk write errors", dc.write_errors);
                self.count("disk read errors", dc.read_errors);
                let (down, rep) = DownDisk::of(disk);
                self.count("writes in flight at crashes", rep.in_flight_writes);
                self.count("torn writes at crashes", rep.torn);
                self.count("in-flight writes lost at crashes", rep.lost);
                self.count("dirty blocks lost at crashes", rep.dirty_blocks - rep.dirty_kept);
                trace!(self, "  partition {id}: {rep:?}");
                disks[usize::from(id)] = Some(down);
            }
        }
        let disks = disks.into_iter().map(|d| d.expect("every partition is on a shard")).collect();
        // What the NIC had received dies with the process.
        self.drain_shard_endpoints();
        let down = self.rng.range(0, self.p.down_ns_max);
        self.down = Some((disks, self.now() + down));
        self.restart_at = None;
    }

    pub(crate) fn drain_shard_endpoints(&mut self) {
        let mut b = Batch::with_capacity(256);
        for ep in &self.shard_eps {
            while ep.borrow_mut().rx_burst(&mut b) > 0 {
                self.stats
                    .entry("datagrams lost while the node was down")
                    .and_modify(|n| *n += b.len() as u64)
                    .or_insert(b.len() as u64);
                b.clear();
            }
        }
    }

    pub(crate) fn restart(&mut self) {
        let (disks, _) = self.down.take().expect("down");
        trace!(self, "RESTART");
        let node = match self.start_node(Some(disks)) {
            Ok(node) => node,
            Err(refused) => return self.on_refused_start(refused),
        };
        self.node = Some(node);
        self.refusals_in_row = 0;
        self.count("recoveries", 1);
        if self.p.restart_on_unavailable && self.rng.chance(0.15) {
            // A crash storm: power fails again while the fresh node re-commits and serves.
            self.restart_at = Some(self.now() + self.rng.range(0, 300_000));
            self.count("crashes right after a restart", 1);
        }
    }

    /// After recovery, before serving: every model key owned by `part` reads as the model allows,
    /// and the projection holds no key the model never wrote.
    pub(crate) fn check_recovered(&mut self, part: &Partition<SimDev>) {
        let now = self.now();
        let what = format!("after recovery{}", self.damage_of(part.id()));
        let mut out = vec![0u8; 4096];
        for key in 0..self.keys.len() {
            let name = self.keys[key].name.clone();
            if self.placement.partition_of(&name) != part.id() {
                continue;
            }
            let result = match part.get(&name, &mut out) {
                Ok(n) => ReadResult::Found {
                    version: u64::from_le_bytes(out[..8].try_into().expect("8 bytes")),
                    value: out[8..n].to_vec(),
                },
                Err(Status::NotFound) => ReadResult::Absent,
                Err(s) => self.violation(format!(
                    "recovered partition {} answers GET {:?} with {s:?}",
                    part.id(),
                    name
                )),
            };
            self.check_read(key, now, now, &result, &what, true);
            self.count("keys checked after recovery", 1);
        }
        for (k, _, _) in part.kv().iter() {
            if !self.key_by_name.contains_key(k) {
                self.violation(format!("recovered partition {} holds key {k:?} nobody wrote", part.id()));
            }
        }
    }

    /// Every few steps: every model key's state in its partition's projection (applied = committed
    /// = durable) must be one the model allows now, and no other key may exist.
    pub(crate) fn scan_projections(&mut self) {
        let Some(node) = self.node.as_ref() else { return };
        let mut found = Vec::new();
        for kv in &node.kvs {
            for part in kv.borrow().partitions() {
                for (k, v, ver) in part.kv().iter() {
                    match self.key_by_name.get(k) {
                        Some(&key) => {
                            found.push((key, ReadResult::Found { version: ver, value: v.to_vec() }))
                        }
                        None => {
                            self.violation(format!("partition {} holds key {k:?} nobody wrote", part.id()))
                        }
                    }
                }
            }
        }
        let mut results: Vec<ReadResult> = vec![ReadResult::Absent; self.keys.len()];
        for (key, r) in found {
            results[key] = r;
        }
        let now = self.now();
        for (key, r) in results.iter().enumerate() {
            self.check_read(key, now, now, r, "projection scan", false);
        }
        self.count("projection scans", 1);
    }
}

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
/// crash): the bug "acknowledged before durable" the simulator must catch.
pub(crate) struct SimDev {
    pub(crate) disk: SimDisk,
    pub(crate) lie: bool,
}

impl BlockIo for SimDev {
    fn block_size(&self) -> usize {
        self.disk.block_size()
    }

    fn capacity_blocks(&self) -> u64 {
        self.disk.capacity_blocks()
    }

    fn queue_depth(&self) -> usize {
        self.disk.queue_depth()
    }

    fn in_flight(&self) -> usize {
        self.disk.in_flight()
    }

    fn submit_write(&mut self, tag: u64, lba: u64, buf: BlockBuf, durable: bool) -> Result<(), SubmitError> {
        self.disk.submit_write(tag, lba, buf, durable && !self.lie)
    }

    fn submit_read(&mut self, tag: u64, lba: u64, buf: BlockBuf) -> Result<(), SubmitError> {
        self.disk.submit_read(tag, lba, buf)
    }

    fn submit_flush(&mut self, tag: u64) -> Result<(), SubmitError> {
        self.disk.submit_flush(tag)
    }

    fn poll_completions(&mut self, out: &mut Batch<Completion>) -> usize {
        self.disk.poll_completions(out)
    }
}

/// The running node: its shards and their KV state.
pub(crate) struct Node {
    pub(crate) shards: Vec<Shard<Ep>>,
    pub(crate) kvs: Vec<Rc<RefCell<KvShard<SimDev>>>>,
}

/// Removes the seed's snapshot directory, also when the seed fails.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Sim {
    // ----- the node's life -----

    /// Opens every partition (fresh disks, or the images a crash left), checks what each
    /// recovered against the model, and assembles the shards as `serve::run_shard_on` does.
    pub(crate) fn start_node(&mut self, images: Option<Vec<Vec<u8>>>) -> Node {
        let pcfg = self.p.partition_config();
        let total = self.p.partitions;
        let shards = self.p.shards;
        let routers: Vec<Option<Router>> = if shards == 1 {
            vec![None]
        } else {
            let cfg = InboxConfig {
                shards,
                partitions: total,
                inbox_capacity: self.p.inbox_capacity,
                in_flight_max: self.p.inbox_in_flight,
                pool_slots: shards * self.p.inbox_in_flight * 2,
                slot_bytes: (DATAGRAM_MAX + 64).next_power_of_two(),
            };
            inbox::build(&cfg).expect("inbox config").into_iter().map(Some).collect()
        };
        let mut images = images.map(|v| v.into_iter().map(Some).collect::<Vec<_>>());
        let mut node = Node { shards: Vec::new(), kvs: Vec::new() };
        for (id, router) in routers.into_iter().enumerate() {
            let mut partitions = Vec::new();
            for p in (id as u32..total).step_by(shards) {
                let p = p as u16;
                let disk_cfg = SimDiskConfig { faults: SimDiskFaults::none(), ..self.p.disk };
                let seed = self.rng.next_u64();
                let disk = SimDev {
                    lie: self.lie,
                    disk: match images.as_mut() {
                        None => SimDisk::new(disk_cfg, self.clock.clone(), seed),
                        Some(imgs) => SimDisk::from_image(
                            disk_cfg,
                            self.clock.clone(),
                            seed,
                            imgs[usize::from(p)].take().expect("one image per partition"),
                        ),
                    },
                };
                let faults = disk.disk.faults_handle();
                let file = self.p.snapshot_every.map(|_| SnapshotFile::new(&self.snap_dir.0, p));
                let (mut part, report) = match Partition::open(p, disk, &pcfg, file) {
                    Ok(x) => x,
                    Err(e) => self.violation(format!("partition {p} does not recover: {e}")),
                };
                trace!(self, "partition {p} (shard {id}) recovered: {report}");
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
                partitions.push(part);
            }
            let kv = Rc::new(RefCell::new(KvShard::new(partitions, self.placement, router, DATAGRAM_MAX)));
            let mut d = Dispatcher::new();
            ops::register_all(&mut d).expect("built-ins register");
            Kv(Rc::clone(&kv)).register(&mut d).expect("kv registers");
            let engine = Engine::new(d, EngineLimits { requests_per_datagram_max: 64 });
            let shard = Shard::new(id, Ep(Rc::clone(&self.shard_eps[id])), engine, self.p.burst)
                .with_service(Box::new(KvService(Rc::clone(&kv))));
            node.shards.push(shard);
            node.kvs.push(kv);
        }
        node
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
        let mut images = vec![Vec::new(); self.p.partitions as usize];
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
                if self.p.snapshot_every.is_none() && c.snapshots > 0 {
                    panic!(
                        "sim configuration error (seed {}): partition {id} checkpointed without a snapshot file; \
                         make the ring larger",
                        self.seed
                    );
                }
                self.count("snapshots taken", c.snapshots);
                self.count("writes refused BUSY by partitions", c.busy);
                self.count("entries applied", c.applied);
                let mut disk = part.into_device().disk;
                let dc = disk.counters();
                self.count("disk write errors", dc.write_errors);
                self.count("disk read errors", dc.read_errors);
                let (img, rep) = disk.crash_image();
                self.count("writes in flight at crashes", rep.in_flight_writes);
                self.count("torn writes at crashes", rep.torn);
                self.count("in-flight writes lost at crashes", rep.lost);
                self.count("dirty blocks lost at crashes", rep.dirty_blocks - rep.dirty_kept);
                trace!(self, "  partition {id}: {rep:?}");
                images[usize::from(id)] = img;
            }
        }
        // What the NIC had received dies with the process.
        self.drain_shard_endpoints();
        let down = self.rng.range(0, self.p.down_ns_max);
        self.down = Some((images, self.now() + down));
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
        let (images, _) = self.down.take().expect("down");
        trace!(self, "RESTART");
        let node = self.start_node(Some(images));
        self.node = Some(node);
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
            self.check_read(key, now, now, &result, "after recovery", true);
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

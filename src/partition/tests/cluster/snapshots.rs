//! The three-node simulator's snapshot side (`super`): each replica's snapshot store, which
//! outlives its crashes, and the tests of followers catching up by snapshot: a follower down
//! while the leader's log recycles, and the crashes around the log's reset to a received snapshot
//! that the simulator's own crashes cannot land in.

use super::*;

/// A replica's snapshot store's contents, which outlive its crashes.
#[derive(Default)]
pub(super) struct SnapDisk {
    snap: Option<Vec<u8>>,
    recv: Option<Vec<u8>>,
    /// What the last promotion replaced, and what it promoted (the crash tests rebuild the
    /// store as it was before it).
    before_promote: Option<(Option<Vec<u8>>, Vec<u8>)>,
}

/// A replica's snapshot store: in memory, written whole when a write returns (like a file after
/// its `fsync` and rename), handing the bytes back so the leader keeps them for followers.
pub(super) struct SimSnapshots {
    disk: Rc<RefCell<SnapDisk>>,
    writing: Option<(u64, SnapshotEncoder<io::Cursor<Vec<u8>>>)>,
    spares: Vec<SnapshotChunk>,
    finished: Option<Written>,
}

impl SimSnapshots {
    pub(super) fn boxed(disk: &Rc<RefCell<SnapDisk>>) -> Snapshots {
        Some(Box::new(Self { disk: disk.clone(), writing: None, spares: Vec::new(), finished: None }))
    }
}

fn cursor(bytes: Option<Vec<u8>>) -> Option<Box<dyn SnapshotRead>> {
    bytes.map(|b| Box::new(io::Cursor::new(b)) as Box<dyn SnapshotRead>)
}

impl SnapshotStore for SimSnapshots {
    fn name(&self) -> String {
        "the simulated snapshot store".into()
    }
    fn read(&mut self) -> io::Result<Option<Box<dyn SnapshotRead>>> {
        Ok(cursor(self.disk.borrow().snap.clone()))
    }
    fn remove_leftovers(&mut self) -> io::Result<()> {
        self.disk.borrow_mut().recv = None;
        Ok(())
    }
    fn begin(&mut self, index: u64, header: SnapshotHeader) {
        self.writing =
            Some((index, SnapshotEncoder::begin(io::Cursor::new(Vec::new()), header).expect("into memory")));
    }
    fn put(&mut self, mut chunk: SnapshotChunk) {
        if let Some((_, encoder)) = self.writing.as_mut() {
            encoder.put(&chunk);
        }
        chunk.clear();
        self.spares.push(chunk);
    }
    fn finish(&mut self) {
        if let Some((index, encoder)) = self.writing.take() {
            let bytes = encoder.finish().expect("into memory").into_inner();
            self.disk.borrow_mut().snap = Some(bytes.clone());
            self.finished = Some((index, Some(bytes), Ok(())));
        }
    }
    fn spare(&mut self) -> Option<SnapshotChunk> {
        self.spares.pop()
    }
    fn poll(&mut self) -> Option<Written> {
        self.finished.take()
    }
    fn stage_received(&mut self, body: &[u8]) -> io::Result<()> {
        self.disk.borrow_mut().recv = Some(body.to_vec());
        Ok(())
    }
    fn read_received(&mut self) -> io::Result<Option<Box<dyn SnapshotRead>>> {
        Ok(cursor(self.disk.borrow().recv.clone()))
    }
    fn promote_received(&mut self) -> io::Result<()> {
        let mut disk = self.disk.borrow_mut();
        let recv =
            disk.recv.take().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "nothing staged"))?;
        disk.before_promote = Some((disk.snap.take(), recv.clone()));
        disk.snap = Some(recv);
        Ok(())
    }
}

/// Seeds of `a_follower_down_while_the_log_recycles_catches_up_by_snapshot`.
const RECYCLE_SEEDS: u64 = 12;

#[test]
fn a_follower_down_while_the_log_recycles_catches_up_by_snapshot() {
    let mut total = Stats::default();
    for seed in 0..RECYCLE_SEEDS {
        let mut sim = Sim::with(seed, false, true, true);
        sim.random_faults = seed % 2 == 0;
        for _ in 0..FAULT_STEPS {
            sim.tick(true);
        }
        sim.heal();
        sim.check_replicas();
        sim.final_reads();
        for n in &sim.nodes {
            sim.stats.count(n.part.as_ref().expect("every node is up after healing"));
        }
        let verdict = check(&sim.history, &CheckConfig::default());
        if !verdict.is_linearizable() {
            println!("seed {seed} of the recycling scenario");
            verdict.expect_linearizable();
        }
        assert!(
            sim.stats.installs > 0,
            "seed {seed}: the follower did not catch up by snapshot: {:?}",
            sim.stats
        );
        total.add(&sim.stats);
    }
    println!("{RECYCLE_SEEDS} seeds, the log recycling: {total:?}");
    assert!(total.snapshots > RECYCLE_SEEDS * 10, "the logs recycled: {total:?}");
}

/// The KV contents of a partition.
fn contents(p: &Partition<SimDisk>) -> Vec<(Vec<u8>, Vec<u8>)> {
    p.kv().iter().map(|(k, v, _)| (k.to_vec(), v.to_vec())).collect()
}

/// The two crashes the simulator cannot land (the follower stages a snapshot, resets its log to
/// it and promotes it within one step): the log reset and the staged snapshot not yet promoted,
/// which recovery loads and promotes; and a snapshot staged but the log not reset to it, which
/// recovery drops, starting from the old snapshot and log.
#[test]
fn a_crash_around_the_log_reset_starts_from_the_old_state_or_the_received_one() {
    let mut sim = Sim::with(1, false, true, true);
    sim.random_faults = false;
    let mut images: Vec<Vec<u8>>;
    let id = loop {
        assert!(sim.step < FAULT_STEPS, "no follower installed a snapshot");
        images = sim
            .nodes
            .iter()
            .map(|n| {
                n.part
                    .as_ref()
                    .map_or_else(Vec::new, |p| p.raft().store().ual().device().durable_image().to_vec())
            })
            .collect();
        let installed = |p: &Partition<SimDisk>| p.counters().snapshots_installed > 0;
        let before = sim.nodes.iter().map(|n| n.part.as_ref().is_some_and(installed)).collect::<Vec<_>>();
        sim.tick(true);
        let now = sim.nodes.iter().position(|n| n.part.as_ref().is_some_and(installed));
        if let Some(i) = now.filter(|&i| !before[i]) {
            break sim.nodes[i].id;
        }
    };
    let ticks = sim.node(id).election_ticks;
    let cfg = node_config(&sim.cfg, id, ticks);
    let node = sim.node(id);
    let part = node.part.take().expect("up");
    let installed_at = part.raft().store().snapshot_meta().index;
    let installed = contents(&part);
    let (old_snap, body) = node.snaps.borrow().before_promote.clone().expect("promoted");
    let (reset_image, _) = part.into_device().into_crash_image();
    let open = |image: Vec<u8>, disk: &Rc<RefCell<SnapDisk>>| {
        let device = SimDisk::from_image(sim.disk, sim.clock.clone(), 9, image);
        Partition::open(0, device, &cfg, SimSnapshots::boxed(disk)).expect("recovers")
    };

    // The log reset, the promotion not done: the staged snapshot is loaded and promoted.
    let disk = Rc::new(RefCell::new(SnapDisk {
        snap: old_snap.clone(),
        recv: Some(body.clone()),
        ..SnapDisk::default()
    }));
    let (p, report) = open(reset_image, &disk);
    assert_eq!(report.snapshot_index, Some(installed_at));
    assert_eq!(contents(&p), installed);
    assert_eq!((disk.borrow().snap.as_ref(), disk.borrow().recv.as_ref()), (Some(&body), None));

    // Staged, the log not reset (the image before the step): the old state, the staged one dropped.
    let old_image = std::mem::take(&mut images[(id - 1) as usize]);
    let disk =
        Rc::new(RefCell::new(SnapDisk { snap: old_snap.clone(), recv: Some(body), ..SnapDisk::default() }));
    let (p, report) = open(old_image, &disk);
    assert!(report.snapshot_index.unwrap_or(0) < installed_at, "{report}");
    assert!(p.raft().last_index() < installed_at, "the old log: it could not serve the follower");
    assert_eq!((disk.borrow().snap.as_ref(), disk.borrow().recv.as_ref()), (old_snap.as_ref(), None));
}

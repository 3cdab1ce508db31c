//! One shard's thread: open its partitions (deciding every start before any of them writes,
//! `gate.rs`), assemble the engine, the KV subsystem, its peer link and the shard loop, serve
//! until the stop flag, drain the writes in flight, and report what it counted.
//!
//! Invariants: a refused start (a partition's recovery, a device, the peer link) is reported
//! through `Starting` and leaves no partition written; a replicated node is ready at once (its
//! partitions elect their leaders over the shard's own queue), a node alone only once every
//! partition leads and re-applied its log.

use super::*;

/// What a shard thread returns.
pub(super) type ShardResult = (ShardReport, Vec<(u8, &'static str, u64)>, Vec<String>);

/// What a shard thread brings to its shard: its id, queue, inbox end, and the node's signals.
pub(super) struct ShardParts<'a, P> {
    pub(super) id: usize,
    pub(super) io: P,
    pub(super) router: Option<Router>,
    /// Its TCP connections, when the node serves TCP.
    pub(super) conns: Option<crate::conn::Connections>,
    pub(super) stop: &'a AtomicBool,
    pub(super) ready: &'a Starting,
    /// The node's cluster state (leader table, incarnation).
    pub(super) cluster: cluster::NodeCluster,
    /// Where the shard publishes its counters (the metrics endpoint is on).
    pub(super) board: Option<super::Publish>,
    /// The node's principals and cookie secret: the shard's engine admits datagrams with them.
    pub(super) auth: crate::auth::NodeAuth,
    /// Where its partitions' logs are.
    pub(super) log: super::log_source::LogSource,
}

/// Runs one shard on the current thread until `stop`; `ready` hears once it is serving (after its
/// partitions are recovered).
pub(super) fn run_shard<P: PacketIo>(config: &Config, parts: ShardParts<'_, P>) -> Option<ShardResult> {
    use super::log_source::LogSource;
    let st = &config.storage;
    let source = parts.log.clone();
    let snapshots = source.snapshot_dir(config).map(std::path::Path::to_path_buf);
    let snapshots = snapshots.as_deref();
    match source {
        LogSource::Memory => {
            let blocks = st.ual().device_blocks();
            let open = |_| Ok(MemoryBlockIo::new(blocks, st.queue_depth as usize));
            run_shard_on(config, parts, open, snapshots)
        }
        LogSource::Files(dir) => {
            let open = |p: u16| {
                // Checked before any thread started (storage::open_for_serve): the file exists
                // with exactly the log's size; never created or extended here.
                super::log_source::uring_open(config, &super::storage::partition_path(&dir, p.into()))
                    .map_err(|e| format!("storage.dir: {e}"))
            };
            run_shard_on(config, parts, open, snapshots)
        }
        LogSource::Device { path, layout, .. } => {
            let opener = super::log_source::uring_opener(config, &path);
            let name = path.display().to_string();
            let open = |p: u16| {
                super::device_store::region(&opener, &name, &layout, p.into()).map_err(|e| e.to_string())
            };
            run_shard_on(config, parts, open, snapshots)
        }
        #[cfg(feature = "spdk")]
        LogSource::Spdk(log) => {
            let open = |p: u16| super::log_source::spdk::open_partition(config, &log, p.into());
            run_shard_on(config, parts, open, snapshots)
        }
        LogSource::SpdkPending(_) => unreachable!("the packet backend attaches SPDK before shards start"),
    }
}

/// Opens this shard's partitions on devices from `open_device`, then serves.
fn run_shard_on<P: PacketIo, D: BlockIo + 'static>(
    config: &Config,
    parts: ShardParts<'_, P>,
    open_device: impl Fn(u16) -> Result<D, String>,
    snapshot_dir: Option<&std::path::Path>,
) -> Option<ShardResult> {
    let ShardParts { id, io, router, conns, stop, ready, cluster, board, auth, log: _ } = parts;
    let shards = config.node.shards;
    let total = config.storage.partitions(shards);
    let pconfig = partition_config(config);
    // Decide every partition's start (read-only), then wait for every other shard's decision
    // before any partition writes (gate.rs).
    let mut decided = Vec::new();
    for p in (id as u32..total).step_by(shards) {
        let p = p as u16;
        // A PartitionError names its partition; a device error does not.
        let started = Instant::now();
        let recovery = open_device(p).map_err(|e| format!("partition {p}: {e}")).and_then(|dev| {
            let snapshots = snapshot_store(snapshot_dir, p)?;
            let mut bar = ReplayBar::new(p);
            Partition::recover(p, dev, &pconfig, snapshots, &mut |done, total| bar.at(done, total))
                .map_err(|e| e.to_string())
        });
        match recovery {
            Ok(r) => decided.push((r, started)),
            Err(e) => {
                ready.refuse(false, ServeError::Storage(e));
                return None;
            }
        }
    }
    if !ready.decided(id) {
        return None;
    }
    let mut partitions = Vec::with_capacity(decided.len());
    for (recovery, started) in decided {
        let p = recovery.id();
        match recovery.commit(&pconfig) {
            Ok((mut partition, report)) => {
                let ms = started.elapsed().as_secs_f64() * 1e3;
                tracing::info!(target: "vigil", "partition {p} (shard {id}) recovered: {report}; in {ms:.1} ms");
                partition.note_recovery_ns(started.elapsed().as_nanos() as u64);
                partition.set_event_sink(Box::new(log_event));
                partitions.push(partition);
            }
            Err(e) => {
                ready.refuse(true, ServeError::Storage(e.to_string()));
                return None;
            }
        }
    }
    let placement = Placement::new(total, shards).expect("validated partitions");
    let link = match cluster.peer_link(config) {
        Ok(link) => link,
        Err(e) => {
            ready.refuse(true, ServeError::Cluster(e));
            return None;
        }
    };
    let replicated = link.is_some();
    let kv = KvShard::new(partitions, placement, router, config.net.datagram_bytes_max)
        .with_cluster(cluster.leaders.clone(), link);
    let kv = Rc::new(RefCell::new(kv));
    let engine = build_engine_with(config, |d| Kv(Rc::clone(&kv)).register(d)).with_gate(auth.gate());
    // Unix-epoch time: batch timestamps are wall time, so expiry means the same after a restart.
    let clock = WallClock::process();
    // Ready only once every partition leads and re-applied its log (no request is answered yet).
    // A replicated partition elects its leader over the shard's packet queue, so its shard serves
    // at once: requests get NOT_LEADER (with the leader's address once one is known) until then.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut service = KvService(Rc::clone(&kv));
    while !replicated && !kv.borrow().serves_reads() {
        if Instant::now() >= deadline {
            let reason = "partitions did not become leader and catch up within 30 s".to_string();
            ready.refuse(true, ServeError::Storage(reason));
            return None;
        }
        service.poll(clock.now(), &mut |_| {});
    }
    let limits = crate::shard::ShardLimits::of(&config.net);
    let mut shard = Shard::new(id, io, engine, limits).with_service(Box::new(service));
    if let Some(conns) = conns {
        shard = shard.with_connections(conns);
    }
    ready.ready(id);
    match &board {
        None => shard.run(&clock, stop),
        Some(board) => run_publishing(&mut shard, &kv, &clock, stop, board),
    }
    // Writes already proposed get their answers (or fail) before the shard goes.
    let deadline = Instant::now() + Duration::from_secs(2);
    while shard.service_busy() && Instant::now() < deadline {
        shard.poll_once_on(&clock);
    }
    let calls = shard.engine().dispatcher().registered().collect();
    let report = shard.report();
    let mut lines: Vec<String> = kv.borrow().partitions().iter().map(partition_line).collect();
    if let Some(conns) = shard.connections() {
        let (c, s) = conns.counters();
        lines.push(format!(
            "shard {id} tcp: opened {} closed {} refused-full {} closed-by-session {} closed-input-too-large {} \
             answers-for-closed {} rx-bytes {} tx-bytes {} watchers {} watch-frames {} watchers-closed-slow {} \
             watchers-closed-lost {} closed-lease-lapsed {}",
            c.opened, c.closed, s.refused_full, c.closed_by_session, c.closed_input_too_large,
            c.answers_for_closed, s.rx_bytes, s.tx_bytes, c.watchers_opened, c.watch_frames,
            c.watchers_closed_slow, c.watchers_closed_lost, c.closed_lease_lapsed
        ));
    }
    let c = kv.borrow().counters();
    lines.push(format!(
        "shard {id} kv: forwarded {} forward-refused {} served-for-others {} stale {} busy-unreserved {}",
        c.forwarded, c.forward_refused, c.served_for_others, c.stale, c.busy_unreserved
    ));
    if let Some(link) = kv.borrow().peer_link() {
        lines.push(format!("shard {id} {}", link.report_line()));
    }
    // The engine's handlers and the service hold the other references to the KV state.
    drop(shard);
    match Rc::try_unwrap(kv) {
        Ok(kv) => {
            for partition in kv.into_inner().into_partitions() {
                let p = partition.id();
                if let Err(e) = partition.close() {
                    lines.push(format!("partition {p}: not closed cleanly: {e}"));
                }
            }
        }
        Err(_) => lines.push(format!("shard {id}: partitions not closed (still referenced)")),
    }
    Some((report, calls, lines))
}

/// Iterations between two looks at the clock for the next publication: the loop reads the clock
/// once per iteration already, and one more read per iteration would cost a busy shard a few
/// percent; once every 64 costs nothing measurable.
const PUBLISH_CHECK_EVERY: u32 = 64;

/// The shard loop of a node whose metrics endpoint or web port is on: as `Shard::run`, and every
/// `board.every_ns` a snapshot of the shard's counters goes to the board (`metrics`); at the same
/// check, the admin mailbox's requests are taken (`metrics::admin`).
fn run_publishing<P: PacketIo, D: BlockIo>(
    shard: &mut Shard<P>,
    kv: &RefCell<KvShard<D>>,
    clock: &WallClock,
    stop: &AtomicBool,
    board: &super::Publish,
) {
    let mut next_at = 0u64;
    let mut polls = 0u32;
    let mut turn = crate::metrics::admin::AdminTurn::default();
    while !stop.load(Ordering::Relaxed) {
        shard.poll_once_on(clock);
        polls = polls.wrapping_add(1);
        if polls % PUBLISH_CHECK_EVERY == 1 {
            let admin_done = admin_step(&mut turn, kv, &board.view.admin);
            let now = clock.now().0;
            if now >= next_at || admin_done.is_some() {
                let stats = crate::metrics::ShardStats::collect(shard, &kv.borrow(), now);
                let id = stats.shard;
                board.view.board.publish(stats);
                next_at = now.saturating_add(board.every_ns);
                // Done only once the board shows the shard after its snapshots.
                if let Some(generation) = admin_done {
                    board.view.admin.mark_done(id, generation);
                }
            }
        }
    }
}

/// Takes the admin mailbox's request (`metrics::admin`): starts the partitions' snapshots for a
/// new generation; returns the generation once they are all stored.
fn admin_step<D: BlockIo>(
    turn: &mut crate::metrics::admin::AdminTurn,
    kv: &RefCell<KvShard<D>>,
    mailbox: &crate::metrics::admin::AdminMailbox,
) -> Option<u64> {
    use crate::metrics::admin::AdminStep;
    match turn.step(mailbox.asked()) {
        AdminStep::Idle => None,
        AdminStep::Start => {
            kv.borrow_mut().snapshot_now();
            None
        }
        AdminStep::Finish(generation) if !kv.borrow().snapshots_in_progress() => {
            turn.finished(generation);
            Some(generation)
        }
        AdminStep::Finish(_) => None,
    }
}

/// A partition's event as a log line: failures as errors, the rest (leadership, snapshots) as
/// information. Events come a few times per leader change or snapshot, never per request.
fn log_event(p: u16, event: &crate::partition::seams::PartitionEvent) {
    use crate::partition::seams::PartitionEvent;
    match event {
        PartitionEvent::Failed { .. } | PartitionEvent::SnapshotFailed { .. } => {
            tracing::error!(target: "vigil", "partition {p}: {event}")
        }
        _ => tracing::info!(target: "vigil", "partition {p}: {event}"),
    }
}

//! Recovery of a partition: deciding how it starts without writing anything (`Partition::recover`:
//! the snapshot file read, the log scanned, the log replayed into the projection), then doing it
//! (`PartitionRecovery::commit`: the log's new epoch and cut, the leftover snapshot `.tmp` removed,
//! the Raft group started), and what it reports.
//!
//! Invariants: nothing is written before `commit`; a snapshot that does not belong to its log, or a
//! log whose acknowledged records are damaged, is refused by `recover` with every file as it was;
//! `open` = `recover` then `commit`.

use super::waiters::Waiters;
use super::*;
use crate::log::{LogError, OpenReport, RecoverOptions, Ual};
use crate::raft::{RaftGroup, RaftOutput, StoreReplay, UalRaftStore};

/// Entries replayed between two reports of the replay's progress.
pub const PROGRESS_EVERY_ENTRIES: u64 = 4096;

/// Snapshot stores handed to recovery (`None`: snapshots are kept in memory only).
pub type Snapshots = Option<Box<dyn SnapshotStore>>;

/// Where the replay's progress goes: (entries replayed so far, entries to replay), called every
/// `PROGRESS_EVERY_ENTRIES` entries and once at the end (the server draws a bar for long replays).
pub type ProgressFn<'a> = &'a mut dyn FnMut(u64, u64);

/// What recovery found and did.
#[derive(Clone, Debug)]
pub struct RecoveryReport {
    /// The log's own report (torn tail cut, superblock used).
    pub log: OpenReport,
    /// The snapshot's index, if one was loaded.
    pub snapshot_index: Option<u64>,
    /// Entries replayed from the log into the projection.
    pub replayed: u64,
    /// The index the projection holds after replay.
    pub applied_index: u64,
    /// The log's last index.
    pub last_index: u64,
    /// Keys in the projection.
    pub keys: usize,
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snapshot = match self.snapshot_index {
            Some(i) => format!("snapshot at {i}"),
            None => "no snapshot".to_string(),
        };
        write!(
            f,
            "{snapshot}, replayed {} entries to index {} (log ends at {}), {} keys; log: {:?}",
            self.replayed, self.applied_index, self.last_index, self.keys, self.log
        )
    }
}

impl<D: BlockIo> Partition<D> {
    /// Opens partition `id` on `device`: recovers the log, loads the snapshot in `snapshots`
    /// (none: snapshots stay in memory, for devices that do not persist), replays, and starts its
    /// Raft group (a group of one voter elects itself at once). `recover` then `commit`.
    pub fn open(
        id: u16,
        device: D,
        config: &PartitionConfig,
        snapshots: Snapshots,
    ) -> Result<(Self, RecoveryReport), PartitionError> {
        Self::recover(id, device, config, snapshots, &mut |_, _| {})?.commit(config)
    }

    /// The first half of `open`: decides how partition `id` starts without writing anything (the
    /// snapshot file is only read, the log only scanned), so a node whose other partitions refuse
    /// to start can still leave every file as it was. The replay into the projection happens
    /// here too (it only reads), reporting to `progress`. `PartitionRecovery::commit` does the
    /// rest.
    pub fn recover(
        id: u16,
        device: D,
        config: &PartitionConfig,
        mut snapshots: Snapshots,
        progress: ProgressFn<'_>,
    ) -> Result<PartitionRecovery<D>, PartitionError> {
        let (mut router, mut snapshot_index) = load_snapshot(id, snapshots.as_deref_mut(), config)?;
        let opts = RecoverOptions { covered_lsn: snapshot_index.unwrap_or(0), accept_loss_from: None };
        let mut log = Ual::recover(device, config.ual, opts).map_err(|e| recover_error(id, e))?;
        let (log_start, last_index) = (log.report().snapshot_lsn, log.report().last_lsn);
        // A log reset to a snapshot received from the leader, and a crash before that snapshot was
        // promoted to the current one: it is staged (it was stored before the reset).
        let mut promote = false;
        if snapshot_index.unwrap_or(0) < log_start {
            if let Some((received, index)) = load_received(id, snapshots.as_deref_mut(), config)? {
                if index == log_start {
                    (router, snapshot_index, promote) = (received, Some(index), true);
                }
            }
        }
        let applied_from = snapshot_index.unwrap_or(0);
        if applied_from < log_start || applied_from > last_index {
            return Err(PartitionError::Snapshot {
                partition: id,
                path: snapshots.as_ref().map_or("(none)".into(), |f| f.name()),
                reason: format!(
                    "the snapshot covers up to index {applied_from} but the log holds {}..={last_index}: \
                     the snapshot file and the log do not belong together (nothing was changed)",
                    log_start + 1
                ),
            });
        }
        let total = last_index.saturating_sub(applied_from);
        let mut replayed = 0u64;
        // The replay reads only: a read error here refuses the start before anything is written
        // (the simulator's transient read errors found starts refused after the new epoch).
        let store = UalRaftStore::replay(log.log_mut(), applied_from, &mut |lsn, payload| {
            router.apply_entry(lsn, payload, &mut |_, _| {});
            replayed += 1;
            if replayed.is_multiple_of(PROGRESS_EVERY_ENTRIES) {
                progress((lsn - applied_from).min(total), total);
            }
        });
        progress(total, total);
        let store = store.map_err(|source| PartitionError::Log { partition: id, source })?;
        Ok(PartitionRecovery { id, log, router, store, replayed, snapshot_index, promote, snapshots })
    }
}

/// A partition whose start is decided and nothing written yet (`Partition::recover`).
pub struct PartitionRecovery<D: BlockIo> {
    id: u16,
    log: crate::log::Recovered<D>,
    router: Router,
    /// What the replay read for the Raft store.
    store: StoreReplay,
    /// Entries replayed into the projection.
    replayed: u64,
    snapshot_index: Option<u64>,
    /// The snapshot loaded is the one received from the leader and staged: promote it.
    promote: bool,
    snapshots: Snapshots,
}

impl<D: BlockIo> std::fmt::Debug for PartitionRecovery<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionRecovery")
            .field("id", &self.id)
            .field("snapshot_index", &self.snapshot_index)
            .finish()
    }
}

impl<D: BlockIo> PartitionRecovery<D> {
    /// The partition's id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Does what `Partition::recover` decided: commits the log's recovery (its writes), removes a
    /// leftover snapshot `.tmp` and starts the Raft group over the projection already replayed.
    pub fn commit(self, config: &PartitionConfig) -> Result<(Partition<D>, RecoveryReport), PartitionError> {
        let PartitionRecovery { id, log, router, store, replayed, snapshot_index, promote, mut snapshots } =
            self;
        let log_err = |source| PartitionError::Log { partition: id, source };
        let applied_from = snapshot_index.unwrap_or(0);
        let last_index = log.report().last_lsn;
        let (ual, log_report) = log.commit().map_err(log_err)?;
        if let Some(store) = snapshots.as_mut() {
            let path = store.name();
            let snapshot_err =
                |reason: String| PartitionError::Snapshot { partition: id, path: path.clone(), reason };
            if promote {
                store.promote_received().map_err(|e| {
                    snapshot_err(format!("cannot promote the snapshot received from the leader: {e}"))
                })?;
            }
            store
                .remove_leftovers()
                .map_err(|e| snapshot_err(format!("cannot remove what an interrupted write left: {e}")))?;
        }
        let applied_index = store.applied_index();
        let store = UalRaftStore::assemble(ual, store);
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raft_err = |source| PartitionError::Raft { partition: id, source };
        let mut raft = RaftGroup::new(
            u32::from(id),
            config.node_id,
            &config.voters,
            store,
            &config.raft,
            applied_index,
            &logger,
        )
        .map_err(raft_err)?;
        let conf = raft.store().conf_state();
        let alone = conf.voters == [config.node_id] && conf.learners.is_empty();
        if alone {
            raft.campaign().map_err(raft_err)?;
        }
        let report = RecoveryReport {
            log: log_report,
            snapshot_index,
            replayed,
            applied_index,
            last_index,
            keys: router.len(),
        };
        let partition = Partition {
            id,
            out: RaftOutput::new(&config.raft),
            waiters: Waiters::new(config.raft.proposals_pending_max),
            waiting_bytes: 0,
            waiting_bytes_max: config.inflight_bytes_max,
            snapshots,
            snapshot_in_flight: None,
            batch: super::batch::BatchWriter::new(config.batch),
            open_chain: None,
            refused: VecDeque::with_capacity(config.raft.proposals_pending_max),
            now: Nanos(0),
            events: Events::Kept(RecentEvents::default()),
            snapshot_every_entries: config.snapshot_every_entries,
            snapshot_index: applied_from,
            snapshot_started_at: Nanos(0),
            checkpoint_pending: None,
            upkeep_pending: false,
            snapshot_pump: Default::default(),
            read_barrier: (0, u64::MAX),
            peers: (!alone).then(|| {
                super::Peers::new(&config.raft, config.follower_read_staleness_ns, config.quiesce_idle)
            }),
            results: Vec::new(),
            counters: PartitionCounters::default(),
            feed: Default::default(),
            raft,
            router,
            projection_set: config.projections.clone(),
        };
        Ok((partition, report))
    }
}

/// Loads the snapshot file, if any: the projections it holds (behind their router) and its index.
pub(crate) fn load_snapshot(
    id: u16,
    store: Option<&mut (dyn SnapshotStore + 'static)>,
    config: &PartitionConfig,
) -> Result<(Router, Option<u64>), PartitionError> {
    let fresh = || Router::new(config.kv, config.projections.make());
    let Some(file) = store else { return Ok((fresh(), None)) };
    let path = file.name();
    let err = |reason: String| PartitionError::Snapshot { partition: id, path: path.clone(), reason };
    let src = file.read().map_err(|e| err(e.to_string()))?;
    match load_from(src, config).map_err(err)? {
        None => Ok((fresh(), None)),
        Some((router, index)) => Ok((router, Some(index))),
    }
}

/// Loads the snapshot received from the leader and staged (`SnapshotStore::read_received`), if
/// any: its projections and its index.
fn load_received(
    id: u16,
    store: Option<&mut (dyn SnapshotStore + 'static)>,
    config: &PartitionConfig,
) -> Result<Option<(Router, u64)>, PartitionError> {
    let Some(file) = store else { return Ok(None) };
    let path = format!("{} (received from the leader)", file.name());
    let err = |reason: String| PartitionError::Snapshot { partition: id, path: path.clone(), reason };
    let src = file.read_received().map_err(|e| err(e.to_string()))?;
    load_from(src, config).map_err(err)
}

/// Projections loaded from `src`, streamed: the checksum over the file first, then the content,
/// in bounded memory.
fn load_from(
    src: Option<Box<dyn crate::projection::SnapshotRead>>,
    config: &PartitionConfig,
) -> Result<Option<(Router, u64)>, String> {
    let Some(mut src) = src else { return Ok(None) };
    let router =
        Router::restore_from(&mut *src, config.kv, config.projections.make()).map_err(|e| e.to_string())?;
    let index = router.applied_lsn();
    Ok(Some((router, index)))
}

/// A refused recovery as the partition's error: corruption names the partition and the repair.
pub(crate) fn recover_error(partition: u16, e: LogError) -> PartitionError {
    match e {
        LogError::Corruption(report) => PartitionError::Corrupt { partition, report },
        source => PartitionError::Log { partition, source },
    }
}

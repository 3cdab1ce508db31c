//! Recovery of a partition: deciding how it starts without writing anything (`Partition::recover`:
//! the snapshot file read, the log scanned, the log replayed into the projection), then doing it
//! (`PartitionRecovery::commit`: the log's new epoch and cut, the leftover snapshot `.tmp` removed,
//! the Raft group started), and what it reports.
//!
//! Invariants: nothing is written before `commit`; a snapshot that does not belong to its log, or a
//! log whose acknowledged records are damaged, is refused by `recover` with every file as it was;
//! `open` = `recover` then `commit`.

use super::snapfile::{SnapshotFile, SnapshotWriter};
use super::waiters::Waiters;
use super::*;
use crate::log::{LogError, OpenReport, RecoverOptions, Ual};
use crate::raft::{RaftGroup, RaftOutput, StoreReplay, UalRaftStore};
use std::time::{Duration, Instant};

/// Entries a replay must have before it shows a progress bar.
const PROGRESS_ENTRIES_MIN: u64 = 100_000;

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
    /// Time taken.
    pub elapsed: Duration,
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snapshot = match self.snapshot_index {
            Some(i) => format!("snapshot at {i}"),
            None => "no snapshot".to_string(),
        };
        write!(
            f,
            "{snapshot}, replayed {} entries to index {} (log ends at {}), {} keys, in {:.1} ms; log: {:?}",
            self.replayed,
            self.applied_index,
            self.last_index,
            self.keys,
            self.elapsed.as_secs_f64() * 1e3,
            self.log
        )
    }
}

impl<D: BlockIo> Partition<D> {
    /// Opens partition `id` on `device`: recovers the log, loads the snapshot in `snapshot_file`
    /// (none: snapshots stay in memory, for devices that do not persist), replays, and starts its
    /// Raft group (a group of one voter elects itself at once). `recover` then `commit`.
    pub fn open(
        id: u16,
        device: D,
        config: &PartitionConfig,
        snapshot_file: Option<SnapshotFile>,
    ) -> Result<(Self, RecoveryReport), PartitionError> {
        Self::recover(id, device, config, snapshot_file)?.commit(config)
    }

    /// The first half of `open`: decides how partition `id` starts without writing anything (the
    /// snapshot file is only read, the log only scanned), so a node whose other partitions refuse
    /// to start can still leave every file as it was. `PartitionRecovery::commit` does the rest.
    pub fn recover(
        id: u16,
        device: D,
        config: &PartitionConfig,
        snapshot_file: Option<SnapshotFile>,
    ) -> Result<PartitionRecovery<D>, PartitionError> {
        let started = Instant::now();
        let (mut kv, snapshot_index) = load_snapshot(id, snapshot_file.as_ref(), config.kv)?;
        let applied_from = snapshot_index.unwrap_or(0);
        let opts = RecoverOptions { covered_lsn: applied_from, accept_loss_from: None };
        let mut log = Ual::recover(device, config.ual, opts).map_err(|e| recover_error(id, e))?;
        let (log_start, last_index) = (log.report().snapshot_lsn, log.report().last_lsn);
        if applied_from < log_start || applied_from > last_index {
            return Err(PartitionError::Snapshot {
                partition: id,
                path: snapshot_file.as_ref().map_or("(none)".into(), |f| f.path().display().to_string()),
                reason: format!(
                    "the snapshot covers up to index {applied_from} but the log holds {}..={last_index}: \
                     the snapshot file and the log do not belong together (nothing was changed)",
                    log_start + 1
                ),
            });
        }
        let progress = Progress::new(id, last_index.saturating_sub(applied_from));
        let mut replayed = 0u64;
        // The replay reads only: a read error here refuses the start before anything is written
        // (the simulator's transient read errors found starts refused after the new epoch).
        let store = UalRaftStore::replay(log.log_mut(), applied_from, &mut |lsn, payload| {
            kv.apply_entry(lsn, payload);
            replayed += 1;
            progress.at(lsn - applied_from);
        });
        progress.finish();
        let store = store.map_err(|source| PartitionError::Log { partition: id, source })?;
        Ok(PartitionRecovery { id, log, kv, store, replayed, snapshot_index, snapshot_file, started })
    }
}

/// A partition whose start is decided and nothing written yet (`Partition::recover`).
pub struct PartitionRecovery<D: BlockIo> {
    id: u16,
    log: crate::log::Recovered<D>,
    kv: KvProjection,
    /// What the replay read for the Raft store.
    store: StoreReplay,
    /// Entries replayed into the projection.
    replayed: u64,
    snapshot_index: Option<u64>,
    snapshot_file: Option<SnapshotFile>,
    started: Instant,
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
        let PartitionRecovery { id, log, kv, store, replayed, snapshot_index, snapshot_file, started } = self;
        let log_err = |source| PartitionError::Log { partition: id, source };
        let applied_from = snapshot_index.unwrap_or(0);
        let last_index = log.report().last_lsn;
        let (ual, log_report) = log.commit().map_err(log_err)?;
        if let Some(file) = &snapshot_file {
            file.remove_leftover_tmp().map_err(|e| PartitionError::Snapshot {
                partition: id,
                path: file.path().display().to_string(),
                reason: format!("cannot remove the leftover .tmp: {e}"),
            })?;
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
        if conf.voters == [config.node_id] && conf.learners.is_empty() {
            raft.campaign().map_err(raft_err)?;
        }
        let report = RecoveryReport {
            log: log_report,
            snapshot_index,
            replayed,
            applied_index,
            last_index,
            keys: kv.len(),
            elapsed: started.elapsed(),
        };
        let snapshots = match snapshot_file {
            None => SnapshotSink::Memory,
            Some(file) if config.snapshot_in_background => {
                let path = file.path().display().to_string();
                let writer = SnapshotWriter::spawn(file, id).map_err(|e| PartitionError::Snapshot {
                    partition: id,
                    path,
                    reason: format!("cannot start its writer thread: {e}"),
                })?;
                SnapshotSink::Background(writer, None)
            }
            Some(file) => SnapshotSink::Inline(file),
        };
        let partition = Partition {
            id,
            out: RaftOutput::new(&config.raft),
            waiters: Waiters::new(config.raft.proposals_pending_max),
            waiting_bytes: 0,
            waiting_bytes_max: u64::from(config.ual.segment_blocks) * BLOCK_SIZE as u64 / 2,
            command: vec![0; crate::raft::ENTRY_DATA_MAX],
            snapshots,
            snapshot_every_entries: config.snapshot_every_entries,
            snapshot_index: applied_from,
            checkpoint_pending: None,
            read_barrier: (0, u64::MAX),
            counters: PartitionCounters::default(),
            raft,
            kv,
        };
        Ok((partition, report))
    }
}

/// Loads the snapshot file, if any: the projection it holds and its index.
pub(crate) fn load_snapshot(
    id: u16,
    file: Option<&SnapshotFile>,
    limits: KvLimits,
) -> Result<(KvProjection, Option<u64>), PartitionError> {
    let Some(file) = file else { return Ok((KvProjection::new(limits), None)) };
    let err = |reason: String| PartitionError::Snapshot {
        partition: id,
        path: file.path().display().to_string(),
        reason,
    };
    match file.read().map_err(|e| err(e.to_string()))? {
        None => Ok((KvProjection::new(limits), None)),
        Some(bytes) => {
            let kv = KvProjection::restore(&bytes, limits).map_err(|e| err(e.to_string()))?;
            let index = kv.applied_lsn();
            Ok((kv, Some(index)))
        }
    }
}

/// A refused recovery as the partition's error: corruption names the partition and the repair.
pub(crate) fn recover_error(partition: u16, e: LogError) -> PartitionError {
    match e {
        LogError::Corruption(report) => PartitionError::Corrupt { partition, report },
        source => PartitionError::Log { partition, source },
    }
}

/// The replay's progress bar: drawn (on a terminal) only for long replays.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(partition: u16, entries: u64) -> Self {
        let bar = (entries >= PROGRESS_ENTRIES_MIN).then(|| {
            let bar = indicatif::ProgressBar::new(entries);
            let style = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} entries ({percent}%, eta {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(format!("vigil: partition {partition}: replaying the log"));
            bar
        });
        Self { bar }
    }

    fn at(&self, done: u64) {
        if let Some(bar) = &self.bar {
            if done.is_multiple_of(4096) {
                bar.set_position(done);
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

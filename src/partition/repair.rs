//! The operator's repair of a partition whose log holds damaged acknowledged records (what
//! `vigil repair` runs): find the damage without writing anything, and, only when the operator
//! accepts the loss, cut the log there as recovery cuts a torn tail.
//!
//! Invariants: without `accept_loss` nothing is written; with it, the only writes are the log's
//! commit after a cut at exactly the first damaged lsn found by the read-only pass (the new-epoch
//! superblock and the erase of the blocks past the cut). The snapshot file is only read.

use super::seams::SnapshotStore;
use super::{recover_error, PartitionError};
use crate::log::{CorruptionReport, LogError, OpenReport, RecoverOptions, Ual, UalConfig};
use vigil_pmd::block::BlockIo;

/// What `repair` found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairOutcome {
    /// No corruption: a start opens the partition as it is (a torn tail, if any, is cut then).
    /// Nothing was written.
    Healthy(OpenReport),
    /// Corruption found; nothing was written (the loss was not accepted).
    Corrupt(CorruptionReport),
    /// Corruption found and cut at its first lsn: what was damaged, and the log as committed.
    Cut(CorruptionReport, OpenReport),
}

/// Examines partition `id`'s log (on devices from `open_device`, called once, or twice when the
/// loss is accepted: a refused recovery consumes its device handle) and its snapshot store
/// (read-only, for what it covers); with `accept_loss`, cuts the log at the first damaged
/// acknowledged record found.
pub fn repair<D: BlockIo>(
    id: u16,
    mut open_device: impl FnMut() -> Result<D, PartitionError>,
    ual: UalConfig,
    config: &super::PartitionConfig,
    snapshots: Option<&mut (dyn SnapshotStore + 'static)>,
    accept_loss: bool,
) -> Result<RepairOutcome, PartitionError> {
    let (_, snapshot_index) = super::load_snapshot(id, snapshots, config)?;
    let covered_lsn = snapshot_index.unwrap_or(0);
    let opts = RecoverOptions { covered_lsn, accept_loss_from: None };
    let report = match Ual::recover(open_device()?, ual, opts) {
        Ok(recovered) => return Ok(RepairOutcome::Healthy(*recovered.report())),
        Err(LogError::Corruption(report)) => report,
        Err(e) => return Err(recover_error(id, e)),
    };
    if !accept_loss {
        return Ok(RepairOutcome::Corrupt(report));
    }
    let opts = RecoverOptions { covered_lsn, accept_loss_from: Some(report.first_bad_lsn) };
    let recovered = Ual::recover(open_device()?, ual, opts).map_err(|e| recover_error(id, e))?;
    let (log, committed) =
        recovered.commit().map_err(|source| PartitionError::Log { partition: id, source })?;
    drop(log);
    Ok(RepairOutcome::Cut(report, committed))
}

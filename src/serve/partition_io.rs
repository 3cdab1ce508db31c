//! The server's side of a partition's seams: its snapshot store (the file, written by a thread
//! of its own), the progress bar of its replay, and the line its counters print at shutdown.

use super::snapfile::{SnapshotFile, SnapshotWriter};
use crate::partition::Partition;
use vigil_pmd::block::BlockIo;

/// The snapshot store of partition `p`: its file in `dir`, written by a thread of its own (the
/// shard keeps serving while the file is written and `fsync`ed); none without a directory.
pub(super) fn snapshot_store(
    dir: Option<&std::path::Path>,
    p: u16,
) -> Result<crate::partition::Snapshots, String> {
    let Some(dir) = dir else { return Ok(None) };
    let file = SnapshotFile::new(dir, p);
    let path = file.path().display().to_string();
    let writer = SnapshotWriter::spawn(file, p)
        .map_err(|e| format!("partition {p}: snapshot {path}: cannot start its writer thread: {e}"))?;
    Ok(Some(Box::new(writer)))
}

/// Entries a replay must have before it draws a progress bar.
const PROGRESS_ENTRIES_MIN: u64 = 100_000;

/// The replay's progress bar: drawn (on a terminal) only for long replays.
pub(super) struct ReplayBar {
    partition: u16,
    bar: Option<indicatif::ProgressBar>,
}

impl ReplayBar {
    pub(super) fn new(partition: u16) -> Self {
        Self { partition, bar: None }
    }

    pub(super) fn at(&mut self, done: u64, total: u64) {
        if total < PROGRESS_ENTRIES_MIN {
            return;
        }
        let partition = self.partition;
        let bar = self.bar.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new(total);
            let style = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} entries ({percent}%, eta {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(format!("vigil: partition {partition}: replaying the log"));
            bar
        });
        bar.set_position(done);
        if done >= total {
            bar.finish_and_clear();
        }
    }
}

pub(super) fn partition_line<D: BlockIo>(p: &Partition<D>) -> String {
    let (c, r, u) = (p.counters(), p.raft().counters(), p.raft().store().ual().counters());
    format!(
        "partition {}: keys {} expiring {} applied {} | proposed {} expiry-proposals {} answered-now {} busy {} (log-ring {} waiters {} window {} proposals {} raft {}) snapshots {} snapshot-failures {} sent {} installed {} refused {} | \
         raft term {} commit {} leader {} readies {} | peers in {} out {} refused {} outbox-full {} votes-ignored-after-start {} \
         quiesced {} woken-by-request {} woken-by-message {} woken-by-due-work {} woken-by-leader-lost {} woken-by-peer-back {} | log appends {} writes {} write-blocks {} superblock-writes {}",
        p.id(),
        p.kv().len(),
        p.kv().expiring(),
        c.applied,
        c.proposed,
        c.expiry_proposals,
        c.answered_now,
        c.busy,
        c.busy_log_ring,
        c.busy_waiters,
        c.busy_window,
        c.busy_proposals,
        c.busy_raft,
        c.snapshots,
        c.snapshot_failures,
        c.snapshots_sent,
        c.snapshots_installed,
        c.snapshots_refused,
        p.raft().term(),
        p.raft().commit_index(),
        p.leader_hint().unwrap_or(0),
        r.readies,
        c.messages_in,
        c.messages_out,
        c.messages_refused,
        c.messages_outbox_full,
        c.votes_ignored_after_start,
        c.quiesced,
        c.woken_by_request,
        c.woken_by_message,
        c.woken_by_due_work,
        c.woken_by_leader_lost,
        c.woken_by_peer_back,
        u.appends,
        u.writes,
        u.write_blocks,
        u.superblock_writes
    )
}

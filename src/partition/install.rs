//! Snapshots between replicas: a follower the leader's log can no longer serve catches up from the
//! leader's snapshot (docs/REPLICATION.md, "Snapshots to followers").
//!
//! - **Leader.** raft-rs asks the log store for a snapshot (`RaftLogStore::snapshot`). The store
//!   keeps the bytes of the last one taken in this run when the snapshot store handed them back;
//!   otherwise (after a restart, or a store that streams to a file) it notes the request and the
//!   partition reads the stored snapshot back (`bring_snapshot_bytes`: checked whole, length and
//!   CRC, before it is used), or takes a new one when none is stored at the log's start. raft-rs
//!   asks again at the follower's next heartbeat answer. The one `MsgSnapshot` raft-rs makes is
//!   not sent as it is: `chunks.rs` streams its body in chunks of at most `chunk_bytes`, a few per
//!   poll. raft-rs waits on a snapshot it sent until told how it went: a follower that has not
//!   caught up after `retry_after_ns` is reported failed, and raft-rs sends a new one.
//! - **Follower.** The chunks are reassembled (`chunks.rs`); the whole snapshot is checked and
//!   loaded into new projections (`Router::restore`, the path recovery loads snapshot files
//!   with) before anything changes, then stored whole beside the current snapshot
//!   (`SnapshotStore::stage_received`, durable), and only then stepped into raft-rs. Its `Ready`
//!   resets the log to it (`UalRaftStore::apply_snapshot`: the log, the hard state and the
//!   membership in one superblock write, the commit point), and the partition swaps the new
//!   projections in and promotes the staged snapshot to the current one
//!   (`SnapshotStore::promote_received`). A crash before the reset leaves the old log and the
//!   old snapshot (the staged one is a leftover); a crash after it leaves a log that starts after
//!   the staged snapshot, which recovery loads and promotes.
//!
//! Invariants: a follower never steps a snapshot it has not checked, loaded and staged; it takes
//! none while one of its own is being written (that write would rename an older snapshot over
//! the received one), the leader sends again; the projections are replaced only by a snapshot
//! the log was reset to.

use super::seams::PartitionEvent;
use super::{Partition, Router};
use crate::projection::snapshot::applied_lsn_of;
use crate::raft::{RaftError, RaftLogStore, StoreSnapshot};
use raft::eraftpb::Message;
use std::io::{self, Read, Seek, SeekFrom};
use vigil_pmd::block::BlockIo;
use vigil_pmd::Nanos;

/// A snapshot received whole, checked and loaded, waiting for raft-rs's `Ready` to install it.
pub(super) struct Received {
    index: u64,
    router: Router,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received").field("index", &self.index).finish()
    }
}

/// Snapshots this partition is sending and receiving (a group with peers only).
#[derive(Debug, Default)]
pub(super) struct Transfers {
    /// The one received and staged, until installed.
    pub(super) received: Option<Received>,
    /// (follower, when its snapshot went out): raft-rs waits on each until told how it went.
    pub(super) sent: Vec<(u64, Nanos)>,
    /// The chunk streams (`chunks.rs`).
    pub(super) chunks: super::chunks::Chunks,
}

impl<D: BlockIo> Partition<D> {
    /// A whole snapshot from the leader (reassembled): checked, loaded into new projections and
    /// staged in the snapshot store, then stepped into raft-rs (module header). A snapshot that
    /// cannot be taken now is dropped (counted): the leader sends again.
    pub(super) fn receive_snapshot(&mut self, m: Message) -> Result<(), RaftError> {
        let index = m.snapshot.as_ref().and_then(|s| s.metadata.as_ref()).map_or(0, |md| md.index);
        if index <= self.raft.commit_index() {
            // raft-rs answers it from its log; nothing to install.
            return self.raft.step(m);
        }
        if self.snapshot_in_progress() {
            self.counters.snapshots_refused += 1;
            return Ok(());
        }
        let data = m.snapshot.as_ref().map_or(&[][..], |s| &s.data[..]);
        let router = match Router::restore(data, *self.kv().limits(), self.projection_set.make()) {
            Ok(router) if router.applied_lsn() == index => router,
            Ok(_) | Err(_) => {
                self.counters.snapshots_refused += 1;
                return Ok(());
            }
        };
        if let Some(store) = self.snapshots.as_mut() {
            if let Err(e) = store.stage_received(data) {
                let store = store.name();
                self.counters.snapshots_refused += 1;
                self.report(PartitionEvent::SnapshotFailed { store, error: e.to_string() });
                return Ok(());
            }
        }
        if let Some(peers) = self.peers.as_mut() {
            peers.transfers.received = Some(Received { index, router });
        }
        self.raft.step(m)
    }

    /// Installs a snapshot raft-rs applied to the log (`RaftOutput::snapshot`): the projections
    /// loaded from it replace the old ones and the staged snapshot becomes the current one.
    pub(super) fn install_snapshot(&mut self, snapshot: StoreSnapshot) {
        let index = snapshot.meta.index;
        let staged = self.peers.as_mut().and_then(|p| p.transfers.received.take());
        self.router = match staged {
            Some(r) if r.index == index => r.router,
            // Only a snapshot `receive_snapshot` checked reaches the log: this is that one.
            _ => Router::restore(&snapshot.data, *self.kv().limits(), self.projection_set.make())
                .unwrap_or_else(|e| {
                    panic!("partition {}: a snapshot the log holds does not load: {e}", self.id)
                }),
        };
        self.snapshot_index = index;
        self.counters.snapshots_installed += 1;
        if let Some(store) = self.snapshots.as_mut() {
            if let Err(e) = store.promote_received() {
                // The log starts after it and it is staged durably: the next start promotes it,
                // and the next snapshot taken here replaces it anyway.
                let store = store.name();
                self.report(PartitionEvent::SnapshotFailed { store, error: e.to_string() });
            }
        }
    }

    /// After each poll's install: drops a received snapshot raft-rs did not install. The
    /// leader's side: brings back the bytes of the snapshot the log follows when
    /// raft-rs wanted them, reports snapshots a follower did not take in time, and sends the
    /// next chunks.
    pub(super) fn serve_snapshots(&mut self) {
        let now = self.now;
        let Some(peers) = self.peers.as_mut() else { return };
        // A snapshot raft-rs did not install in this poll's `Ready` (it rejected it, or took
        // another way): the loaded projections are not kept (an install after all would load
        // them again from the snapshot it holds).
        peers.transfers.received = None;
        let retry_after_ns = peers.election_ns.saturating_mul(RETRY_ELECTIONS);
        let raft = &mut self.raft;
        let mut resent = 0;
        // A follower that took its snapshot is no longer waited on; one that did not, in time,
        // gets a new one.
        peers.transfers.sent.retain(|&(to, at)| {
            if !raft.snapshot_pending(to) {
                return false;
            }
            if now.0.saturating_sub(at.0) < retry_after_ns {
                return true;
            }
            raft.report_snapshot_failed(to);
            resent += 1;
            false
        });
        self.counters.snapshots_resent += resent;
        self.send_chunks();
        if self.raft.store().take_snapshot_wanted().is_some() && self.raft.is_leader() {
            self.bring_snapshot_bytes();
        }
    }

    /// The bytes of the snapshot the log follows, read back from the snapshot store; or a new
    /// snapshot when none is stored at the log's start.
    fn bring_snapshot_bytes(&mut self) {
        if self.raft.store().has_snapshot_data() || self.snapshot_in_progress() {
            return;
        }
        let index = self.raft.store().snapshot_meta().index;
        match self.read_stored_snapshot() {
            Ok(Some((stored, bytes))) if stored == index => {
                self.counters.snapshots_read_back += 1;
                self.raft.store_mut().set_snapshot_data(index, bytes);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let store = self.snapshots.as_ref().map_or_else(String::new, |s| s.name());
                self.report(PartitionEvent::SnapshotFailed { store, error: e.to_string() });
            }
        }
        let applied = self.router.applied_lsn();
        if applied >= index {
            self.take_snapshot(applied);
        }
    }

    /// The stored snapshot, checked whole (length and CRC), and its index.
    fn read_stored_snapshot(&mut self) -> io::Result<Option<(u64, Vec<u8>)>> {
        let Some(store) = self.snapshots.as_mut() else { return Ok(None) };
        let Some(mut src) = store.read()? else { return Ok(None) };
        let index = applied_lsn_of(&mut *src)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        src.seek(SeekFrom::Start(0))?;
        let mut bytes = Vec::new();
        src.read_to_end(&mut bytes)?;
        Ok(Some((index, bytes)))
    }

    /// Notes that a snapshot went out to `to` (its last chunk): raft-rs waits on it.
    pub(super) fn snapshot_sent(&mut self, to: u64) {
        let now = self.now;
        let Some(peers) = self.peers.as_mut() else { return };
        peers.transfers.sent.retain(|&(t, _)| t != to);
        peers.transfers.sent.push((to, now));
        self.counters.snapshots_sent += 1;
    }
}

/// Election timeouts a follower has to take a snapshot before the leader sends it again.
const RETRY_ELECTIONS: u64 = 4;

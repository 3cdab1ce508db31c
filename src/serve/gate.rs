//! The start gate: no shard writes to its storage until every shard has decided, read-only, how its
//! partitions start.
//!
//! Recovery of a partition first decides (`Partition::recover`: the snapshot read, the log scanned)
//! and only then writes (`PartitionRecovery::commit`: the new epoch, the cut of a torn tail). With
//! several partitions on several shard threads, one partition's refusal (a corrupt record, a
//! snapshot that does not belong to its log) must stop the node before any other partition has
//! written: a refused start leaves every file as it was. So each shard reports its decision here
//! and waits until all shards have; a shard that fails before deciding (pinning, a queue, a device)
//! counts as a refusal without waiting.
//!
//! Invariants: each shard calls exactly one of `refuse` or `decided` (then `ready` or `refuse` for a
//! failure after the gate); the first message on the channel for a refused start is the reason of
//! a shard that refused (it is sent before that shard's decision is counted); `decided` returns
//! only once every shard's decision is in.

use super::ServeError;
use std::sync::{mpsc, Condvar, Mutex};

/// What the shard threads of a starting node share with the main thread.
#[derive(Debug)]
pub(super) struct Starting {
    /// Each shard's outcome for the main thread: its id once serving, or why it did not start.
    messages: mpsc::Sender<Result<usize, ServeError>>,
    /// Shards decided so far, and whether any refused.
    decisions: Mutex<(usize, bool)>,
    all_decided: Condvar,
    shards: usize,
}

impl Starting {
    /// The gate of a node of `shards` shards, whose outcomes go to `messages`.
    pub(super) fn new(shards: usize, messages: mpsc::Sender<Result<usize, ServeError>>) -> Self {
        Self { messages, decisions: Mutex::new((0, false)), all_decided: Condvar::new(), shards }
    }

    /// This shard could not start: says why, and counts as a refusal if it had not decided yet.
    pub(super) fn refuse(&self, decided: bool, reason: ServeError) {
        let _ = self.messages.send(Err(reason));
        if !decided {
            self.record(false);
        }
    }

    /// This shard decided (read-only) that its partitions can start; waits for every other shard's
    /// decision and returns whether all can, so that it may write. When not, it tells the main
    /// thread it did not start.
    pub(super) fn decided(&self, shard: usize) -> bool {
        let all_ok = self.record(true);
        if !all_ok {
            let reason = "not started: another shard's partition refused to start (nothing was written)";
            let _ = self.messages.send(Err(ServeError::Shard { shard, reason: reason.into() }));
        }
        all_ok
    }

    /// This shard is serving.
    pub(super) fn ready(&self, shard: usize) {
        let _ = self.messages.send(Ok(shard));
    }

    /// A shard that cannot even start its thread counts as having refused.
    pub(super) fn abandon(&self) {
        self.record(false);
    }

    fn record(&self, ok: bool) -> bool {
        let mut d = self.decisions.lock().expect("start gate");
        d.0 += 1;
        d.1 |= !ok;
        self.all_decided.notify_all();
        while d.0 < self.shards {
            if !ok {
                // A refusal does not wait for the others.
                return false;
            }
            d = self.all_decided.wait(d).expect("start gate");
        }
        !d.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn every_shard_waits_for_all_decisions_and_one_refusal_stops_all() {
        let (tx, rx) = mpsc::channel();
        let gate = Arc::new(Starting::new(3, tx));
        let waiting: Vec<_> = (0..2)
            .map(|shard| {
                let gate = Arc::clone(&gate);
                std::thread::spawn(move || gate.decided(shard))
            })
            .collect();
        gate.refuse(false, ServeError::Storage("partition 2: corrupt".into()));
        for w in waiting {
            assert!(!w.join().unwrap(), "a refusal anywhere stops every shard before it writes");
        }
        let first = rx.recv().unwrap().unwrap_err().to_string();
        assert!(first.contains("corrupt"), "the refusing shard's reason comes first: {first}");
    }

    #[test]
    fn all_decided_lets_every_shard_start() {
        let (tx, rx) = mpsc::channel();
        let gate = Arc::new(Starting::new(2, tx));
        let other = {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || gate.decided(1))
        };
        assert!(gate.decided(0));
        assert!(other.join().unwrap());
        gate.ready(0);
        assert_eq!(rx.recv().unwrap().unwrap(), 0);
    }
}

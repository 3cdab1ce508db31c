//! The client table: exactly-once for retried writes, bounded.
//!
//! For each remembered client it keeps the sequence number of the client's last applied write, the
//! digest of that write's command (XXH3-64 of its bytes, `router`), the lsn at which it was applied (its
//! last activity) and its [`ApplyResult`]. An incoming write `(client_id, seq, digest)` is
//! classified ([`ClientTable::classify`]) against the client's record. A client not remembered
//! (new, or evicted) has no record: its write is executed, whatever its seq, and its seq becomes
//! the base the window below is counted from (clients number their writes from any point: the load
//! generator puts its thread and trial in the high bits). For a remembered client:
//! - `seq` equal to the last one and the same digest: a retry; it gets the remembered result and
//!   changes nothing. A record restored from a version-1 snapshot has no digest: its retries are
//!   answered as before digests existed (the remembered result, whatever the command);
//! - `seq` equal to the last one and another digest: the pair is reused for another command;
//!   refused (`SequenceReused`), nothing done, nothing recorded;
//! - an older seq: stale; refused (`Stale`), nothing done;
//! - a newer seq more than `ahead_max` past the last one: refused (`SequenceTooFar`), nothing done,
//!   nothing recorded, so one datagram with a huge sequence number cannot make every later write of
//!   the client stale;
//! - otherwise: executed, and it becomes the remembered one.
//!
//! Bound and eviction: at most `capacity` clients are remembered. Recording a new client when the
//! table is full evicts the least recently active one, the one whose last write has the smallest
//! lsn; LSNs are unique, so the choice is deterministic and the same on every replica. Clients are
//! kept in a doubly linked list in activity order inside a slot array allocated once, with a hash
//! index sized once: recording and looking up allocate nothing after creation.
//!
//! The guarantee: a retry of a client's latest write gets the original result, with no second
//! execution, as long as fewer than `capacity` other clients have written since that write (the
//! client is still in the table). A client evicted and then retrying is taken for a new client and
//! its write is executed again. A client retrying an older write than its latest one gets `Stale`
//! (the older write may or may not have been applied: a client that needs to know keeps one write in
//! flight, or reads). Retries are also only deduplicated against writes applied with the same
//! limits; anonymous clients (id 0) are never recorded.
//!
//! Invariants: the list holds exactly the indexed clients, ordered by non-decreasing `last_lsn`
//! (one batch entry holds writes of several clients) from head (oldest) to tail (newest);
//! `len <= capacity`.

use super::ApplyResult;
use std::collections::HashMap;

const NIL: u32 = u32::MAX;

/// What the table says about an incoming `(client_id, seq)`, before its command is known (see
/// [`ClientTable::check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Not seen (new client, or a newer seq): execute it.
    New,
    /// The client's last applied write: answer with its result, change nothing.
    Duplicate(ApplyResult),
    /// Older than the client's last applied write (`last_seq`): refuse it.
    Stale {
        /// The client's last applied seq.
        last_seq: u64,
    },
}

/// What the table says about an incoming write, its command's digest included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Execute it (then record it).
    Execute,
    /// A retry of the client's last applied write: answer with its result, change nothing.
    Duplicate(ApplyResult),
    /// Refuse it with this result (`Stale`, `SequenceReused` or `SequenceTooFar`), change nothing.
    Refuse(ApplyResult),
}

/// One remembered client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    /// The client.
    pub client_id: u64,
    /// Its last applied seq.
    pub last_seq: u64,
    /// The lsn at which that write was applied.
    pub last_lsn: u64,
    /// The digest of that write's command; `None` for a record restored from a version-1 snapshot,
    /// which did not keep digests.
    pub digest: Option<u64>,
    /// Its result.
    pub result: ApplyResult,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    record: ClientRecord,
    prev: u32,
    next: u32,
}

/// The bounded client table.
#[derive(Clone, Debug)]
pub struct ClientTable {
    capacity: usize,
    index: HashMap<u64, u32>,
    slots: Vec<Slot>,
    head: u32,
    tail: u32,
    evictions: u64,
}

impl ClientTable {
    /// An empty table for at most `capacity` clients (allocated now).
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0);
        assert!(capacity < NIL as usize);
        Self {
            capacity,
            index: HashMap::with_capacity(capacity),
            slots: Vec::with_capacity(capacity),
            head: NIL,
            tail: NIL,
            evictions: 0,
        }
    }

    /// Most clients remembered.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Clients remembered.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Clients evicted so far (not part of the replicated state).
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Classifies `(client_id, seq)` without the command: `Stale` for a seq older than the client's
    /// last, `New` otherwise. It never says `Duplicate`: whether a same-seq write is a retry depends
    /// on its command, which [`ClientTable::classify`] checks.
    pub fn check(&self, client_id: u64, seq: u64) -> Check {
        match self.get(client_id) {
            Some(r) if seq < r.last_seq => Check::Stale { last_seq: r.last_seq },
            _ => Check::New,
        }
    }

    /// Classifies the write `seq` of `client_id` whose command has `digest` (see the module doc);
    /// `ahead_max` is the most a new seq may exceed the client's last (0 for an unknown client).
    pub fn classify(&self, client_id: u64, seq: u64, digest: u64, ahead_max: u64) -> Verdict {
        let Some(r) = self.get(client_id) else {
            return Verdict::Execute;
        };
        let last_seq = r.last_seq;
        if seq == last_seq {
            match r.digest {
                Some(d) if d != digest => Verdict::Refuse(ApplyResult::SequenceReused { last_seq }),
                _ => Verdict::Duplicate(r.result),
            }
        } else if seq < last_seq {
            Verdict::Refuse(ApplyResult::Stale { last_seq })
        } else {
            Self::ahead(last_seq, seq, ahead_max)
        }
    }

    fn ahead(last_seq: u64, seq: u64, ahead_max: u64) -> Verdict {
        if seq - last_seq > ahead_max {
            Verdict::Refuse(ApplyResult::SequenceTooFar { last_seq })
        } else {
            Verdict::Execute
        }
    }

    /// The record of `client_id`, if remembered.
    pub fn get(&self, client_id: u64) -> Option<&ClientRecord> {
        self.index.get(&client_id).map(|&i| &self.slots[i as usize].record)
    }

    /// Records `record` (the client's write `last_seq`, whose command has `digest`, was applied at
    /// `last_lsn` with `result`), making it the most recently active client; evicts the least
    /// recently active one if a new client needs room. `last_lsn` must be at or above every lsn
    /// recorded so far.
    pub fn record(&mut self, record: ClientRecord) {
        let ClientRecord { client_id, last_lsn: lsn, .. } = record;
        if self.tail != NIL {
            // Writes of several clients share an lsn when they share a batch entry.
            assert!(
                lsn >= self.slots[self.tail as usize].record.last_lsn,
                "client activity must not go back"
            );
        }
        let i = if let Some(&i) = self.index.get(&client_id) {
            self.unlink(i);
            i
        } else if self.slots.len() < self.capacity {
            self.slots.push(Slot { record, prev: NIL, next: NIL });
            let i = u32::try_from(self.slots.len() - 1).expect("capacity < u32::MAX");
            self.index.insert(client_id, i);
            i
        } else {
            let i = self.head;
            assert!(i != NIL);
            self.unlink(i);
            let evicted = self.slots[i as usize].record.client_id;
            self.index.remove(&evicted);
            self.index.insert(client_id, i);
            self.evictions += 1;
            i
        };
        self.slots[i as usize].record = record;
        self.push_tail(i);
        assert!(self.index.len() <= self.capacity);
    }

    /// The records from the least to the most recently active.
    pub fn iter(&self) -> impl Iterator<Item = &ClientRecord> + '_ {
        let mut at = self.head;
        std::iter::from_fn(move || {
            if at == NIL {
                return None;
            }
            let slot = &self.slots[at as usize];
            at = slot.next;
            Some(&slot.record)
        })
    }

    fn unlink(&mut self, i: u32) {
        let Slot { prev, next, .. } = self.slots[i as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
    }

    fn push_tail(&mut self, i: u32) {
        let slot = &mut self.slots[i as usize];
        slot.prev = self.tail;
        slot.next = NIL;
        if self.tail == NIL {
            self.head = i;
        } else {
            self.slots[self.tail as usize].next = i;
        }
        self.tail = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: ApplyResult = ApplyResult::Stored { version: 1 };
    const AHEAD: u64 = 100;

    fn rec(client_id: u64, last_seq: u64, last_lsn: u64) -> ClientRecord {
        ClientRecord { client_id, last_seq, last_lsn, digest: Some(7), result: R }
    }

    #[test]
    fn duplicate_reused_stale_new_and_too_far_seqs() {
        let mut t = ClientTable::new(4);
        assert_eq!(t.classify(1, 5, 7, AHEAD), Verdict::Execute);
        t.record(rec(1, 5, 10));
        assert_eq!(t.classify(1, 5, 7, AHEAD), Verdict::Duplicate(R));
        assert_eq!(t.classify(1, 5, 8, AHEAD), Verdict::Refuse(ApplyResult::SequenceReused { last_seq: 5 }));
        assert_eq!(t.classify(1, 4, 7, AHEAD), Verdict::Refuse(ApplyResult::Stale { last_seq: 5 }));
        assert_eq!(t.classify(1, 6, 7, AHEAD), Verdict::Execute);
        assert_eq!(t.classify(1, 105, 7, AHEAD), Verdict::Execute);
        assert_eq!(
            t.classify(1, 106, 7, AHEAD),
            Verdict::Refuse(ApplyResult::SequenceTooFar { last_seq: 5 })
        );
        assert_eq!(
            t.classify(1, u64::MAX, 7, AHEAD),
            Verdict::Refuse(ApplyResult::SequenceTooFar { last_seq: 5 })
        );
        // A client not remembered: its first write sets the base, whatever its seq.
        assert_eq!(t.classify(2, 0, 7, AHEAD), Verdict::Execute);
        assert_eq!(t.classify(2, u64::MAX - 1, 7, AHEAD), Verdict::Execute);
        assert_eq!(t.check(1, 4), Check::Stale { last_seq: 5 });
        assert_eq!(t.check(1, 5), Check::New);
    }

    #[test]
    fn a_record_without_digest_answers_any_retry() {
        let mut t = ClientTable::new(4);
        t.record(ClientRecord { digest: None, ..rec(1, 5, 10) });
        assert_eq!(t.classify(1, 5, 8, AHEAD), Verdict::Duplicate(R));
    }

    #[test]
    fn evicts_the_least_recently_active_client() {
        let mut t = ClientTable::new(2);
        t.record(rec(1, 1, 1));
        t.record(rec(2, 1, 2));
        t.record(rec(1, 2, 3)); // 1 is now more recent than 2.
        t.record(rec(3, 1, 4)); // evicts 2.
        assert_eq!(t.evictions(), 1);
        assert!(t.get(2).is_none());
        assert_eq!(t.iter().map(|r| r.client_id).collect::<Vec<_>>(), vec![1, 3]);
        t.record(rec(4, 1, 5)); // evicts 1.
        assert_eq!(t.iter().map(|r| (r.client_id, r.last_lsn)).collect::<Vec<_>>(), vec![(3, 4), (4, 5)]);
        assert_eq!(t.len(), 2);
    }

    #[test]
    #[should_panic(expected = "client activity must not go back")]
    fn activity_must_not_go_back() {
        let mut t = ClientTable::new(2);
        t.record(rec(1, 1, 5));
        t.record(rec(2, 1, 5)); // The same batch entry.
        t.record(rec(3, 1, 4));
    }
}

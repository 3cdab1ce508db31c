//! A shard's inbox: two bounded MPSC rings of envelopes, one for requests and one for answers.
//!
//! Every other shard holds an [`InboxSender`]; the shard itself owns the one [`Inbox`] (not `Clone`,
//! so there is a single consumer). The rings are crossbeam `ArrayQueue`s: fixed capacity allocated
//! at construction, lock-free push and pop, head and tail on separate cache lines.
//!
//! Why two rings: answers must never be refused, or a request would go unanswered. Requests and
//! answers in one ring would compete for room; in separate rings the answer ring can be sized to the
//! origin's in-flight limit (see [`Router`](super::Router)), so an answer always finds room, while a
//! full request ring is back-pressure that the sender sees at once as [`Busy`].
//!
//! Invariants: `try_send` never blocks and never drops: it either enqueues the envelope or hands it
//! back in `Busy`; `drain` takes answers before requests (finishing work frees pool slots and
//! credits before new work is started) and never takes more than the batch has room for.

use super::envelope::{Envelope, Kind};
use crossbeam_queue::ArrayQueue;
use std::sync::Arc;
use thiserror::Error;
use vigil_pmd::Batch;

/// The receiving shard's ring for this kind of envelope is full; the envelope is handed back
/// unsent (its payload slot is still the sender's).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("inbox full")]
pub struct Busy(pub Envelope);

struct Rings {
    requests: ArrayQueue<Envelope>,
    answers: ArrayQueue<Envelope>,
}

/// What the receiving end counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InboxCounters {
    /// Requests drained.
    pub received_requests: u64,
    /// Answers drained.
    pub received_answers: u64,
    /// Drain calls that found nothing.
    pub empty_drains: u64,
}

/// What one sending end counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderCounters {
    /// Envelopes enqueued.
    pub sent: u64,
    /// Envelopes refused because the ring was full.
    pub busy_rejections: u64,
}

/// The receiving end of a shard's inbox, owned by that shard.
pub struct Inbox {
    rings: Arc<Rings>,
    counters: InboxCounters,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("requests", &self.rings.requests.len())
            .field("answers", &self.rings.answers.len())
            .field("counters", &self.counters)
            .finish()
    }
}

/// A sending end of a shard's inbox; clone one for each other shard. Clones count separately.
pub struct InboxSender {
    rings: Arc<Rings>,
    counters: SenderCounters,
}

impl std::fmt::Debug for InboxSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxSender").field("counters", &self.counters).finish()
    }
}

impl Clone for InboxSender {
    fn clone(&self) -> Self {
        Self { rings: Arc::clone(&self.rings), counters: SenderCounters::default() }
    }
}

impl Inbox {
    /// An inbox with room for `request_capacity` requests and `answer_capacity` answers (allocated
    /// now, never grown), and its first sender.
    pub fn new(request_capacity: usize, answer_capacity: usize) -> (Inbox, InboxSender) {
        assert!(request_capacity > 0, "an inbox needs room for a request");
        assert!(answer_capacity > 0, "an inbox needs room for an answer");
        let rings = Arc::new(Rings {
            requests: ArrayQueue::new(request_capacity),
            answers: ArrayQueue::new(answer_capacity),
        });
        let sender = InboxSender { rings: Arc::clone(&rings), counters: SenderCounters::default() };
        (Inbox { rings, counters: InboxCounters::default() }, sender)
    }

    /// Moves waiting envelopes into `out`, answers first, up to `out.room()`; returns how many.
    pub fn drain(&mut self, out: &mut Batch<Envelope>) -> usize {
        let mut n = 0;
        while out.room() > 0 {
            let Some(env) = self.rings.answers.pop() else { break };
            debug_assert_eq!(env.kind(), Kind::Answer);
            out.push(env).expect("room was checked");
            self.counters.received_answers += 1;
            n += 1;
        }
        while out.room() > 0 {
            let Some(env) = self.rings.requests.pop() else { break };
            debug_assert_eq!(env.kind(), Kind::Request);
            out.push(env).expect("room was checked");
            self.counters.received_requests += 1;
            n += 1;
        }
        if n == 0 {
            self.counters.empty_drains += 1;
        }
        n
    }

    /// Envelopes waiting now (a snapshot).
    pub fn len(&self) -> usize {
        self.rings.requests.len() + self.rings.answers.len()
    }

    /// True when nothing is waiting now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Requests the inbox can hold.
    pub fn request_capacity(&self) -> usize {
        self.rings.requests.capacity()
    }

    /// Answers the inbox can hold.
    pub fn answer_capacity(&self) -> usize {
        self.rings.answers.capacity()
    }

    /// What the receiving end counted.
    pub fn counters(&self) -> InboxCounters {
        self.counters
    }
}

impl InboxSender {
    /// Enqueues `env` in the ring for its kind, or hands it back in [`Busy`] if that ring is full.
    /// Never blocks.
    pub fn try_send(&mut self, env: Envelope) -> Result<(), Busy> {
        let ring = match env.kind() {
            Kind::Request => &self.rings.requests,
            Kind::Answer => &self.rings.answers,
        };
        match ring.push(env) {
            Ok(()) => {
                self.counters.sent += 1;
                Ok(())
            }
            Err(env) => {
                self.counters.busy_rejections += 1;
                Err(Busy(env))
            }
        }
    }

    /// What this sending end counted.
    pub fn counters(&self) -> SenderCounters {
        self.counters
    }
}

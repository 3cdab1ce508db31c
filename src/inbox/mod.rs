//! Cross-shard inboxes: requests that land on a shard that does not own their partition go to the
//! owner, and the answer comes back, over bounded lock-free MPSC rings of 32-byte envelopes whose
//! payloads sit in a shared pool of fixed slots (DESIGN.md sections 1 and 4; seed 003).
//!
//! - [`Envelope`]: the 32-byte message (kind, source shard, partition, payload handle, length,
//!   correlation, status).
//! - [`PayloadPool`]: fixed-size slots shared by all shards; handles carry a generation that catches
//!   double frees and uses after free.
//! - [`Inbox`] / [`InboxSender`]: one shard's receiving end and the others' sending ends.
//! - [`Placement`] and [`Router`]: key → partition → shard, and the forward / answer / complete steps
//!   the shard loop calls from its drain step.
//!
//! Invariants (each part's header has its own):
//! - bounded everything: ring capacities, slots, slot size and in-flight requests come from a
//!   validated [`InboxConfig`] and are allocated once in [`build`]; nothing allocates afterwards;
//! - nothing blocks: a full ring, a full pool or too many requests in flight is an immediate
//!   [`ForwardError`] whose `client_status()` is `BUSY`, never a wait and never a silent drop;
//! - every forwarded request is answered exactly once (the answer ring always has room for it, and
//!   slot generations refuse a second answer or completion).

mod envelope;
mod pool;
mod ring;
mod router;

pub use envelope::{Envelope, Kind, ENVELOPE_BYTES};
pub use pool::{Handle, PayloadPool, PoolCounters, PoolError};
pub use ring::{Busy, Inbox, InboxCounters, InboxSender, SenderCounters};
pub use router::{
    fnv1a64, ForwardError, Placement, Route, Router, RouterCounters, PARTITIONS_MAX, SHARDS_MAX,
};

use std::sync::Arc;
use thiserror::Error;

/// Largest ring (requests or answers) one inbox may have.
pub const INBOX_CAPACITY_MAX: usize = 1 << 20;
/// Largest slot: a UDP datagram (65,507 bytes) fits.
pub const SLOT_BYTES_MAX: usize = 1 << 16;
/// Largest pool, in bytes (`pool_slots * slot_bytes`).
pub const POOL_BYTES_MAX: usize = 1 << 30;

/// Sizes of the cross-shard fabric, all fixed at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboxConfig {
    /// Shards on this node (1..=256).
    pub shards: usize,
    /// Partitions in the cluster (`shards..=65536`); part of the placement, never changed.
    pub partitions: u32,
    /// Requests each shard's inbox holds; a forward to a full inbox is answered BUSY.
    pub inbox_capacity: usize,
    /// Forwarded requests one shard may await answers for; also the size of each answer ring.
    pub in_flight_max: usize,
    /// Payload slots shared by all shards.
    pub pool_slots: usize,
    /// Bytes per slot: the largest request or answer body that crosses shards.
    pub slot_bytes: usize,
}

/// A fabric configuration that cannot be used; nothing was built.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("inbox config `{field}`: {reason}")]
pub struct InboxConfigError {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl InboxConfigError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }
}

fn in_range(field: &'static str, value: usize, max: usize) -> Result<(), InboxConfigError> {
    if value == 0 || value > max {
        return Err(InboxConfigError::new(field, format!("{value} is not in 1..={max}")));
    }
    Ok(())
}

impl InboxConfig {
    /// Checks every field; the error names the first one at fault.
    pub fn validate(&self) -> Result<Placement, InboxConfigError> {
        let placement = Placement::new(self.partitions, self.shards)?;
        in_range("inbox_capacity", self.inbox_capacity, INBOX_CAPACITY_MAX)?;
        in_range("in_flight_max", self.in_flight_max, INBOX_CAPACITY_MAX)?;
        in_range("slot_bytes", self.slot_bytes, SLOT_BYTES_MAX)?;
        in_range("pool_slots", self.pool_slots, POOL_BYTES_MAX / self.slot_bytes)?;
        Ok(placement)
    }
}

/// Builds the whole fabric: the pool, one inbox per shard and one [`Router`] per shard (index =
/// shard id), each to be moved to its shard's thread. All memory is allocated here.
pub fn build(config: &InboxConfig) -> Result<Vec<Router>, InboxConfigError> {
    let placement = config.validate()?;
    let pool = Arc::new(PayloadPool::new(config.pool_slots, config.slot_bytes));
    let (inboxes, senders): (Vec<Inbox>, Vec<InboxSender>) =
        (0..config.shards).map(|_| Inbox::new(config.inbox_capacity, config.in_flight_max)).unzip();
    let routers = inboxes
        .into_iter()
        .enumerate()
        .map(|(shard, inbox)| {
            let peers: Box<[InboxSender]> = senders.iter().cloned().collect();
            Router::new(shard as u8, placement, Arc::clone(&pool), inbox, peers, config.in_flight_max)
        })
        .collect();
    Ok(routers)
}

#[cfg(test)]
mod tests;

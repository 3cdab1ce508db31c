//! Placement and the per-shard router: which shard owns a key, and forwarding to it and back.
//!
//! Placement (DESIGN.md section 4, seed 003): `partition_of(key) = fnv1a64(key) % partitions` and
//! `owner(partition) = partition % shards`. FNV-1a 64 over the raw key bytes (offset basis
//! `0xcbf29ce484222325`, prime `0x100000001b3`) is part of the cluster's on-disk and on-wire contract:
//! every node must place a key in the same partition forever, across builds, platforms and
//! versions, so the hash is written out here (eight lines) rather than taken from a crate or from
//! `std::hash`, whose algorithms may change; the test vectors in `tests.rs` pin it.
//!
//! A [`Router`] is one shard's end of the fabric, owned by that shard's thread (`&mut self`, plain
//! counters): its own [`Inbox`], a sender to every other shard's inbox and the shared
//! [`PayloadPool`]. It is sans-IO: it moves envelopes and payloads, and the shard loop decides what
//! to run and what to tell clients. The life of a forwarded request:
//! 1. origin: [`Router::forward`] copies the request into a pool slot and sends a request envelope
//!    to the owner, or refuses with a [`ForwardError`] whose [`ForwardError::client_status`] is the
//!    answer for the client (`BUSY`: back-pressure, never a block and never a silent drop);
//! 2. owner: [`Router::drain`], [`Router::with_request`] to read it, run it, [`Router::answer`]: the
//!    answer body is written into the same slot (no second allocation, so answering cannot fail for
//!    want of a slot) and sent back to the origin's answer ring;
//! 3. origin: [`Router::drain`], [`Router::complete`] reads the answer and frees the slot.
//!
//! Invariants:
//! - credits: a router has at most `in_flight_max` forwarded requests whose answers it has not
//!   drained, and every answer ring holds `in_flight_max` answers, so an answer always finds room
//!   (asserted: a full answer ring is a bug, not load);
//! - exactly once: each forwarded request's slot handle is single-use. `answer` rewrites the slot
//!   with a new generation, so a second answer to the same request is refused as stale and nothing
//!   is sent; `complete` frees it, so a second completion is refused too;
//! - a refused `forward` leaves nothing behind: the slot it took is given back.

use super::envelope::{Envelope, Kind};
use super::pool::{PayloadPool, PoolError};
use super::ring::{Busy, Inbox, InboxSender};
use super::InboxConfigError;
use crate::wire::Status;
use std::sync::Arc;
use thiserror::Error;
use vigil_pmd::Batch;

/// FNV-1a 64 offset basis.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bits, over `bytes`: the placement hash. Never change it (see the module header).
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET_BASIS;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash
}

/// Most shards: `src_shard` is a `u8`.
pub const SHARDS_MAX: usize = 256;
/// Most partitions: `partition_id` is a `u16`.
pub const PARTITIONS_MAX: u32 = 1 << 16;

/// Key → partition → shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    partitions: u32,
    shards: u32,
}

impl Placement {
    /// `partitions` spread over `shards`; every shard must own at least one partition.
    pub fn new(partitions: u32, shards: usize) -> Result<Self, InboxConfigError> {
        if shards == 0 || shards > SHARDS_MAX {
            return Err(InboxConfigError::new("shards", format!("{shards} is not in 1..={SHARDS_MAX}")));
        }
        if partitions == 0 || partitions > PARTITIONS_MAX {
            return Err(InboxConfigError::new(
                "partitions",
                format!("{partitions} is not in 1..={PARTITIONS_MAX} (partition ids are u16)"),
            ));
        }
        if (partitions as usize) < shards {
            return Err(InboxConfigError::new(
                "partitions",
                format!("{partitions} partitions leave some of the {shards} shards with none"),
            ));
        }
        Ok(Self { partitions, shards: shards as u32 })
    }

    /// Partitions in the cluster.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Shards on this node.
    pub fn shards(&self) -> usize {
        self.shards as usize
    }

    /// The partition of `key`: `fnv1a64(key) % partitions`.
    pub fn partition_of(&self, key: &[u8]) -> u16 {
        (fnv1a64(key) % u64::from(self.partitions)) as u16
    }

    /// The shard that owns `partition`: `partition % shards`.
    pub fn owner(&self, partition: u16) -> u8 {
        assert!(u32::from(partition) < self.partitions, "partition out of range");
        (u32::from(partition) % self.shards) as u8
    }
}

/// Where a key's requests run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// On this shard.
    Local {
        /// The key's partition.
        partition: u16,
    },
    /// On another shard: forward it.
    Remote {
        /// The key's partition.
        partition: u16,
        /// The shard that owns it.
        owner: u8,
    },
}

/// Why a request was not forwarded; in every case nothing was sent and no slot is held.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum ForwardError {
    /// The owner's request ring is full (it is behind): the slot was given back.
    #[error("shard {owner}'s inbox is full")]
    Busy {
        /// The owner.
        owner: u8,
    },
    /// Every payload slot is in use; nothing was allocated.
    #[error("payload pool full")]
    PoolFull,
    /// This shard already waits on `in_flight_max` answers; nothing was allocated.
    #[error("too many forwarded requests in flight")]
    InFlightFull,
    /// The request does not fit in a slot; nothing was allocated.
    #[error("request of {len} bytes does not fit a {slot_bytes}-byte slot")]
    TooLarge {
        /// Request bytes.
        len: usize,
        /// Slot size.
        slot_bytes: usize,
    },
}

impl ForwardError {
    /// What the origin answers the client: `BUSY` for every kind of back-pressure (retrying later can
    /// succeed), `BAD_LENGTH` for a request that can never fit a slot (retrying cannot).
    pub fn client_status(&self) -> Status {
        match self {
            ForwardError::Busy { .. } | ForwardError::PoolFull | ForwardError::InFlightFull => Status::Busy,
            ForwardError::TooLarge { .. } => Status::BadLength,
        }
    }
}

/// What a router counted; plain integers owned by the shard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterCounters {
    /// Envelopes this shard enqueued to others (requests and answers).
    pub sent: u64,
    /// Envelopes this shard drained (requests and answers).
    pub received: u64,
    /// Envelopes refused by a full ring (forwards answered BUSY).
    pub busy_rejections: u64,
    /// Forwards refused because the pool was full (answered BUSY).
    pub pool_full: u64,
    /// Forwards refused because `in_flight_max` answers were awaited (answered BUSY).
    pub in_flight_full: u64,
    /// Forwards refused because the request does not fit a slot.
    pub too_large: u64,
    /// Requests forwarded.
    pub forwarded: u64,
    /// Requests received from other shards.
    pub requests_received: u64,
    /// Answers sent back.
    pub answers_sent: u64,
    /// Answers whose body did not fit a slot, sent as `RESPONSE_TOO_LARGE` with no body.
    pub answers_too_large: u64,
    /// Answers received and completed.
    pub answers_completed: u64,
    /// Handles refused by the pool (double answer, double completion, duplicated envelope).
    pub stale_handles: u64,
}

/// One shard's end of the cross-shard fabric. Build all of them with [`build`](super::build).
pub struct Router {
    shard: u8,
    placement: Placement,
    pool: Arc<PayloadPool>,
    inbox: Inbox,
    /// One sender per shard, indexed by shard; our own entry is never used.
    peers: Box<[InboxSender]>,
    in_flight: usize,
    in_flight_max: usize,
    counters: RouterCounters,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("shard", &self.shard)
            .field("in_flight", &self.in_flight)
            .field("counters", &self.counters)
            .finish()
    }
}

impl Router {
    pub(super) fn new(
        shard: u8,
        placement: Placement,
        pool: Arc<PayloadPool>,
        inbox: Inbox,
        peers: Box<[InboxSender]>,
        in_flight_max: usize,
    ) -> Self {
        assert_eq!(peers.len(), placement.shards());
        assert!((shard as usize) < placement.shards());
        assert!(in_flight_max > 0);
        Self {
            shard,
            placement,
            pool,
            inbox,
            peers,
            in_flight: 0,
            in_flight_max,
            counters: RouterCounters::default(),
        }
    }

    /// This router's shard.
    pub fn shard(&self) -> u8 {
        self.shard
    }

    /// The placement it routes by.
    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// The shared payload pool.
    pub fn pool(&self) -> &PayloadPool {
        &self.pool
    }

    /// Forwarded requests whose answers have not been drained yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Envelopes waiting in this shard's inbox (requests from other shards and answers to its
    /// forwards), sampled: the shard drains it every iteration.
    pub fn inbox_depth(&self) -> usize {
        self.inbox.len()
    }

    /// What this router counted.
    pub fn counters(&self) -> RouterCounters {
        self.counters
    }

    /// Where requests for `key` run.
    pub fn route(&self, key: &[u8]) -> Route {
        let partition = self.placement.partition_of(key);
        let owner = self.placement.owner(partition);
        if owner == self.shard {
            Route::Local { partition }
        } else {
            Route::Remote { partition, owner }
        }
    }

    /// Copies `request` into the pool and sends it to the owner of `partition`, tagged with
    /// `correlation` (which its answer will carry). On error nothing was sent and no slot is held;
    /// answer the client with [`ForwardError::client_status`]. `partition` must not be local.
    pub fn forward(&mut self, partition: u16, request: &[u8], correlation: u64) -> Result<(), ForwardError> {
        let owner = self.placement.owner(partition);
        assert_ne!(owner, self.shard, "a local partition is run here, not forwarded");
        if request.len() > self.pool.slot_bytes() {
            self.counters.too_large += 1;
            return Err(ForwardError::TooLarge { len: request.len(), slot_bytes: self.pool.slot_bytes() });
        }
        if self.in_flight >= self.in_flight_max {
            self.counters.in_flight_full += 1;
            return Err(ForwardError::InFlightFull);
        }
        let handle = match self.pool.alloc(request) {
            Ok(h) => h,
            Err(PoolError::Full) => {
                self.counters.pool_full += 1;
                return Err(ForwardError::PoolFull);
            }
            Err(e) => unreachable!("alloc of a request that fits a slot: {e}"),
        };
        let env = Envelope::request(self.shard, partition, handle, request.len() as u32, correlation);
        match self.peers[owner as usize].try_send(env) {
            Ok(()) => {
                self.in_flight += 1;
                self.counters.sent += 1;
                self.counters.forwarded += 1;
                Ok(())
            }
            Err(Busy(env)) => {
                self.pool.free(env.payload()).expect("the slot was ours and never sent");
                self.counters.busy_rejections += 1;
                Err(ForwardError::Busy { owner })
            }
        }
    }

    /// Moves waiting envelopes into `out` (answers first), up to its room; returns how many. Every
    /// request drained must be answered with [`answer`](Self::answer) and every answer completed with
    /// [`complete`](Self::complete), or its slot stays taken.
    pub fn drain(&mut self, out: &mut Batch<Envelope>) -> usize {
        let start = out.len();
        let n = self.inbox.drain(out);
        for env in &out.as_slice()[start..] {
            match env.kind() {
                Kind::Answer => {
                    assert!(self.in_flight > 0, "an answer to a request this shard did not forward");
                    self.in_flight -= 1;
                }
                Kind::Request => self.counters.requests_received += 1,
            }
        }
        self.counters.received += n as u64;
        n
    }

    /// Runs `f` over the bytes of a drained request.
    pub fn with_request<R>(
        &mut self,
        request: &Envelope,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, PoolError> {
        assert_eq!(request.kind(), Kind::Request);
        let r = self.pool.with(request.payload(), f);
        if r.is_err() {
            self.counters.stale_handles += 1;
        }
        r
    }

    /// Answers a drained request with `status` and `body`, through the request's own slot, and
    /// returns the status sent: `status`, or `RESPONSE_TOO_LARGE` (with no body) when `body` does not
    /// fit a slot. A stale request (already answered) is refused and nothing is sent.
    pub fn answer(&mut self, request: &Envelope, status: Status, body: &[u8]) -> Result<Status, PoolError> {
        assert_eq!(request.kind(), Kind::Request);
        assert_ne!(request.src_shard(), self.shard, "a shard does not forward to itself");
        let (status, body) = if body.len() > self.pool.slot_bytes() {
            self.counters.answers_too_large += 1;
            (Status::ResponseTooLarge, &[][..])
        } else {
            (status, body)
        };
        let handle = self.pool.rewrite(request.payload(), body).inspect_err(|_| {
            self.counters.stale_handles += 1;
        })?;
        let env = Envelope::answer(request, self.shard, handle, body.len() as u32, status);
        // Room is guaranteed by the origin's credits (module header); a full ring here is a bug.
        self.peers[request.src_shard() as usize]
            .try_send(env)
            .expect("answer rings hold in_flight_max answers, and origins keep to it");
        self.counters.sent += 1;
        self.counters.answers_sent += 1;
        Ok(status)
    }

    /// Runs `f` over a drained answer's status and body, then frees its slot. A stale answer
    /// (already completed) is refused and `f` is not run.
    pub fn complete<R>(
        &mut self,
        answer: &Envelope,
        f: impl FnOnce(Status, &[u8]) -> R,
    ) -> Result<R, PoolError> {
        assert_eq!(answer.kind(), Kind::Answer);
        let status = answer.status();
        match self.pool.take(answer.payload(), |bytes| f(status, bytes)) {
            Ok(r) => {
                self.counters.answers_completed += 1;
                Ok(r)
            }
            Err(e) => {
                self.counters.stale_handles += 1;
                Err(e)
            }
        }
    }
}

//! The payload pool: fixed-size slots shared by all shards, for the bytes an envelope points at.
//!
//! All slots are allocated once in [`PayloadPool::new`]; after that `alloc`, `rewrite` and `free`
//! never allocate. Free slot indices wait in a lock-free bounded queue (crossbeam `ArrayQueue`); each
//! slot's bytes sit behind their own `Mutex`. A slot has one owner at a time (whoever holds the
//! handle with its current generation), so its mutex is only ever taken by one thread at a time and
//! costs an uncontended lock/unlock pair (two atomic operations, no syscall); it is there so that the
//! crate needs no `unsafe`, not to arbitrate. Each slot is cache-line padded so that two shards
//! touching neighbouring slots do not share a line.
//!
//! A [`Handle`] is a slot index plus the slot's generation. `free` and `rewrite` bump the generation,
//! so any copy of an older handle (a double free, a use after free, a duplicated envelope) is refused
//! with [`PoolError::Stale`] and counted, and the slot is left as it was.
//!
//! Invariants:
//! - a slot is either live (exactly one current handle names it) or in the free queue, never both:
//!   `in_use() + free queue length == slots()` whenever no call is in progress;
//! - `len <= slot_bytes` for every live slot;
//! - every refused call leaves the pool unchanged.
//!
//! Counters: only refusals are counted here (rare, so their shared cache line stays put);
//! allocations and frees are counted by each shard's router in its own plain counters. Measured on
//! the 2-core dev box (release, 100-byte payloads, alloc + rewrite + take, a loaded machine, so
//! rough): 60-100 ns alone and 110-230 ns per operation with two threads hammering the pool; with
//! shared alloc/free counters the contended figure was about 380 ns, which is why they went. The
//! per-slot `Mutex` is never
//! contended (one owner at a time), so a lock-free slot state would only save the uncontended
//! lock/unlock pair; the shared free queue is the cost that remains.
//!
//! Generations are `u32` and wrap: a handle kept across 2^32 reuses of its slot would be taken for
//! current. Envelopes live for microseconds, so this is accepted and written down here.

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use thiserror::Error;

/// A payload in the pool: slot index and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle {
    slot: u32,
    generation: u32,
}

impl Handle {
    pub(crate) fn new(slot: u32, generation: u32) -> Self {
        Self { slot, generation }
    }

    /// The slot index.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The slot's generation when this handle was issued.
    pub fn generation(&self) -> u32 {
        self.generation
    }
}

/// Why the pool refused a call; in every case the pool is unchanged.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum PoolError {
    /// Every slot is in use; nothing was allocated.
    #[error("payload pool full")]
    Full,
    /// The bytes do not fit in one slot; nothing was stored.
    #[error("payload of {len} bytes does not fit a {slot_bytes}-byte slot")]
    TooLarge {
        /// Bytes offered.
        len: usize,
        /// The slot size.
        slot_bytes: usize,
    },
    /// The handle names no slot of this pool; nothing was touched.
    #[error("handle names slot {slot}, past the pool's {slots} slots")]
    NoSuchSlot {
        /// The slot index in the handle.
        slot: u32,
        /// Slots in the pool.
        slots: usize,
    },
    /// The handle is not the slot's current one (freed or rewritten since: double free, use after
    /// free, or a duplicated envelope); nothing was touched.
    #[error("stale handle: slot {slot} generation {generation} is no longer current")]
    Stale {
        /// The slot index.
        slot: u32,
        /// The generation in the handle.
        generation: u32,
    },
}

/// What the pool has counted (shared by all shards, read off the hot path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCounters {
    /// Slots in use when the counters were read (a snapshot).
    pub in_use: u64,
    /// Allocations refused: every slot in use.
    pub full: u64,
    /// Calls refused: payload larger than a slot.
    pub too_large: u64,
    /// Calls refused: stale or unknown handle.
    pub stale: u64,
}

struct SlotState {
    generation: u32,
    live: bool,
    len: u32,
    bytes: Box<[u8]>,
}

#[derive(Default)]
struct AtomicCounters {
    full: AtomicU64,
    too_large: AtomicU64,
    stale: AtomicU64,
}

/// Fixed-size payload slots shared by every shard.
pub struct PayloadPool {
    slot_bytes: usize,
    slots: Box<[CachePadded<Mutex<SlotState>>]>,
    free: ArrayQueue<u32>,
    counters: AtomicCounters,
}

impl std::fmt::Debug for PayloadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadPool")
            .field("slots", &self.slots.len())
            .field("slot_bytes", &self.slot_bytes)
            .field("in_use", &self.in_use())
            .finish()
    }
}

impl PayloadPool {
    /// Allocates `slots` slots of `slot_bytes` each, once. Sizes come from a validated
    /// [`InboxConfig`](super::InboxConfig); zero or out-of-range sizes are programmer errors.
    pub fn new(slots: usize, slot_bytes: usize) -> Self {
        assert!(slots > 0, "a pool needs at least one slot");
        assert!(slots <= u32::MAX as usize, "slot indices are u32");
        assert!(slot_bytes > 0, "a slot needs at least one byte");
        assert!(slot_bytes <= u32::MAX as usize, "payload lengths are u32");
        let slot_states = (0..slots)
            .map(|_| {
                CachePadded::new(Mutex::new(SlotState {
                    generation: 0,
                    live: false,
                    len: 0,
                    bytes: vec![0u8; slot_bytes].into_boxed_slice(),
                }))
            })
            .collect();
        let free = ArrayQueue::new(slots);
        for i in 0..slots {
            free.push(i as u32).expect("the free queue holds every slot");
        }
        Self { slot_bytes, slots: slot_states, free, counters: AtomicCounters::default() }
    }

    /// Bytes per slot.
    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Slots in the pool.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Slots in use now (a snapshot: other shards may change it at once).
    pub fn in_use(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// What the pool has counted so far.
    pub fn counters(&self) -> PoolCounters {
        let c = &self.counters;
        PoolCounters {
            in_use: self.in_use() as u64,
            full: c.full.load(Ordering::Relaxed),
            too_large: c.too_large.load(Ordering::Relaxed),
            stale: c.stale.load(Ordering::Relaxed),
        }
    }

    /// Copies `bytes` into a free slot and returns its handle.
    pub fn alloc(&self, bytes: &[u8]) -> Result<Handle, PoolError> {
        self.check_fits(bytes)?;
        let Some(slot) = self.free.pop() else {
            self.counters.full.fetch_add(1, Ordering::Relaxed);
            return Err(PoolError::Full);
        };
        let mut state = self.lock(slot);
        assert!(!state.live, "a slot in the free queue is not live");
        state.live = true;
        store(&mut state, bytes);
        let handle = Handle::new(slot, state.generation);
        Ok(handle)
    }

    /// Runs `f` over the payload of `handle` (the slot stays locked meanwhile; keep `f` short).
    pub fn with<R>(&self, handle: Handle, f: impl FnOnce(&[u8]) -> R) -> Result<R, PoolError> {
        let state = self.current(handle)?;
        Ok(f(&state.bytes[..state.len as usize]))
    }

    /// Replaces the payload of `handle` with `bytes`, keeping the slot, and returns the new handle;
    /// `handle` is stale from then on (so a request's slot can carry its answer back without a second
    /// allocation, and the request cannot be answered twice).
    pub fn rewrite(&self, handle: Handle, bytes: &[u8]) -> Result<Handle, PoolError> {
        self.check_fits(bytes)?;
        let mut state = self.current(handle)?;
        state.generation = state.generation.wrapping_add(1);
        store(&mut state, bytes);
        Ok(Handle::new(handle.slot, state.generation))
    }

    /// Gives the slot of `handle` back; `handle` is stale from then on.
    pub fn free(&self, handle: Handle) -> Result<(), PoolError> {
        self.take(handle, |_| ())
    }

    /// Runs `f` over the payload of `handle`, then frees the slot (one lock for both).
    pub fn take<R>(&self, handle: Handle, f: impl FnOnce(&[u8]) -> R) -> Result<R, PoolError> {
        let mut state = self.current(handle)?;
        let r = f(&state.bytes[..state.len as usize]);
        state.generation = state.generation.wrapping_add(1);
        state.live = false;
        state.len = 0;
        drop(state);
        self.free.push(handle.slot).expect("a slot is in the free queue at most once");
        Ok(r)
    }

    fn check_fits(&self, bytes: &[u8]) -> Result<(), PoolError> {
        if bytes.len() > self.slot_bytes {
            self.counters.too_large.fetch_add(1, Ordering::Relaxed);
            return Err(PoolError::TooLarge { len: bytes.len(), slot_bytes: self.slot_bytes });
        }
        Ok(())
    }

    fn lock(&self, slot: u32) -> MutexGuard<'_, SlotState> {
        // A panic while holding a slot leaves its state whole (fields are written before the guard
        // drops and none is half-updated across a call that can panic), so poisoning is ignored.
        self.slots[slot as usize].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The slot of `handle`, locked, if `handle` is its current live handle.
    fn current(&self, handle: Handle) -> Result<MutexGuard<'_, SlotState>, PoolError> {
        if handle.slot as usize >= self.slots.len() {
            self.counters.stale.fetch_add(1, Ordering::Relaxed);
            return Err(PoolError::NoSuchSlot { slot: handle.slot, slots: self.slots.len() });
        }
        let state = self.lock(handle.slot);
        if !state.live || state.generation != handle.generation {
            drop(state);
            self.counters.stale.fetch_add(1, Ordering::Relaxed);
            return Err(PoolError::Stale { slot: handle.slot, generation: handle.generation });
        }
        Ok(state)
    }
}

fn store(state: &mut SlotState, bytes: &[u8]) {
    assert!(bytes.len() <= state.bytes.len(), "checked by check_fits");
    state.bytes[..bytes.len()].copy_from_slice(bytes);
    state.len = bytes.len() as u32;
}

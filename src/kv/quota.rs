//! Quotas in the KV projection (`projection::owner`): a key belongs to the principal whose write
//! stored it last (its block carries the owner's key id, `map`), and `usage` counts, per owner, its keys and the bytes
//! of those keys and their values. A write whose owner has a quota (stamped in its entry with the
//! command, `Applied::owner`) and that would take the owner's usage past it, in keys or in bytes,
//! is `QuotaExceeded`; a write that does not grow the owner's usage (an overwrite of its own key
//! with a value no longer) always passes, so a quota lowered below what a principal holds never
//! stops it from shrinking. An overwrite by another principal moves the key (all its bytes) to the
//! writer; DEL, CAD and expiry give the key's bytes back to its owner. `usage` is derived state:
//! rebuilt from the blocks when a snapshot loads, never written. The writer's quota check also
//! counts what it holds in the partition's other projections (`Applied::others`).
//!
//! Invariants: `usage` always equals what a recount of the blocks' owners gives (`quota_tests`);
//! a write never grows an owner with a quota past it.

use super::projection::KvProjection;
use crate::projection::owner::ANONYMOUS_OWNER;
use crate::projection::{ApplyResult, Usage};

impl KvProjection {
    /// The keys and bytes `owner` (a key id; 0 anonymous) holds here.
    pub fn usage_of(&self, owner: u32) -> Usage {
        self.usage.get(owner)
    }

    /// Keys that have an owner other than anonymous (a snapshot writes 4 bytes more for each).
    pub(crate) fn owned_keys(&self) -> usize {
        let anonymous = self.usage_of(ANONYMOUS_OWNER).keys as usize;
        self.map.len() - anonymous
    }

    /// Counts a key of `bytes` (key and value) stored for `owner`.
    pub(super) fn usage_add(&mut self, owner: u32, bytes: usize) {
        self.usage.add(owner, Usage { keys: 1, bytes: bytes as u64 });
    }

    /// Counts a key of `bytes` that `owner` held as gone.
    pub(crate) fn usage_remove(&mut self, owner: u32, bytes: usize) {
        self.usage.remove(owner, Usage { keys: 1, bytes: bytes as u64 });
    }

    /// `QuotaExceeded` if the writer has a quota and adding `keys` keys and `bytes` bytes to what
    /// it holds would take it past the quota (see the module header: only growth is refused).
    pub(super) fn quota_refuses(&self, keys: u64, bytes: u64) -> Option<ApplyResult> {
        let quota = self.writing.quota?;
        let held = self.usage_of(self.writing.key_id).plus(self.writer_elsewhere);
        quota.refuses(held, Usage { keys, bytes }).then_some(ApplyResult::QuotaExceeded)
    }
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;

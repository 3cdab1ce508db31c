//! Key expiry in the KV projection: the index of keys that have an expiry, the writes that set,
//! keep or drop one (SETX, EXPIRE, PERSIST), and the reclaim of keys past their expiry.
//!
//! Time: a key's expiry is a Unix time in milliseconds in its block (`map`: only keys that have
//! one pay its 8 bytes). Relative times (EX, PX, EXPIRE) are resolved when the entry is applied,
//! from the leader's timestamp of the entry (`Applied::time_ns`), so every replica and every
//! replay computes the same deadline. The projection's clock (`now_ms`) is the latest entry
//! timestamp it applied (never going back). A key is expired at time `t` when `t > expiry`
//! (Redis's `keyIsExpired`); an expired key is invisible to every read at a time past its expiry
//! and counts as absent for every write applied past it (the write deletes it first).
//!
//! Reclaim without a scan: `ExpiryIndex` orders the keys that have an expiry by (expiry, key).
//! Every command applied first deletes at most `RECLAIM_PER_COMMAND` keys due at its entry's time
//! (bounded work per apply), and the leader proposes an EXPIRE_DUE command (which deletes up to
//! `RECLAIM_PER_TICK`) when the earliest expiry has passed and no write is waiting
//! (`partition`), so memory comes back with no traffic. Both are functions of the entries only.
//!
//! Invariants: the index holds exactly the keys whose block carries an expiry, each under its
//! block's expiry; the order of reclaim is the index's (expiry, then key bytes): deterministic.

use super::command::{expire_flags, set_flags, Ttl};
use super::map::KeyMap;
use super::projection::{ApplyResult, KvProjection};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Keys past their expiry that any command deletes before it runs.
pub const RECLAIM_PER_COMMAND: usize = 4;
/// Keys past their expiry one EXPIRE_DUE command deletes.
pub const RECLAIM_PER_TICK: usize = 256;

/// The keys that have an expiry, by (expiry in Unix ms, key). A copy of each such key: paid only
/// by keys with an expiry.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExpiryIndex {
    set: BTreeSet<(u64, Box<[u8]>)>,
}

impl ExpiryIndex {
    /// Keys with an expiry.
    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }

    /// The earliest expiry.
    pub(crate) fn first(&self) -> Option<u64> {
        self.set.first().map(|(at, _)| *at)
    }

    /// Replaces `key`'s entry: `old` is the expiry its block had, `new` the one it gets.
    pub(crate) fn change(&mut self, key: &[u8], old: Option<u64>, new: Option<u64>) {
        if old == new {
            return;
        }
        if let Some(at) = old {
            let removed = self.set.remove(&(at, Box::<[u8]>::from(key)));
            debug_assert!(removed, "a key with an expiry is indexed");
        }
        if let Some(at) = new {
            self.set.insert((at, key.into()));
        }
    }

    /// The first key due at `now_ms` (expiry before it), taken out of the index.
    fn pop_due(&mut self, now_ms: u64) -> Option<Box<[u8]>> {
        match self.set.first() {
            Some((at, _)) if *at < now_ms => self.set.pop_first().map(|(_, key)| key),
            _ => None,
        }
    }
}

/// Whether an entry with expiry `expiry` is visible at `now_ms`.
pub(crate) fn live(expiry: Option<u64>, now_ms: u64) -> bool {
    expiry.is_none_or(|at| now_ms <= at)
}

/// A deadline in Unix ms as the index keeps it (a negative one is long past: 0).
fn deadline(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

impl KvProjection {
    /// Moves the projection's clock to an entry's timestamp (never back).
    pub(crate) fn advance(&mut self, time_ns: u64) {
        self.now_ms = self.now_ms.max(time_ns / 1_000_000);
    }

    /// Deletes at most `max` keys past their expiry at the projection's time; returns how many.
    pub(crate) fn reclaim(&mut self, max: usize) -> u32 {
        let mut n = 0;
        while n < max {
            let Some(key) = self.expiries.pop_due(self.now_ms) else { break };
            let (value_len, owner) = self.map.remove(&key).expect("an indexed key exists");
            self.data_bytes -= key.len() + value_len;
            self.usage_remove(owner, key.len() + value_len);
            if let Some(log) = self.expired.as_mut() {
                log.push((self.applying, key));
            }
            n += 1;
        }
        n as u32
    }

    /// Deletes `key` if it is past its expiry at the projection's time, so a write sees it absent.
    pub(crate) fn drop_if_expired(&mut self, key: &[u8]) {
        let Some(expiry) = self.map.entry(key).and_then(|e| e.expiry) else { return };
        if !live(Some(expiry), self.now_ms) {
            self.remove_key(key);
            self.note_expired(key);
        }
    }

    /// Starts (or stops, dropping what is kept) recording the keys expiry deletes, for watchers.
    pub fn record_expired(&mut self, on: bool) {
        self.expired = on.then(Vec::new);
    }

    /// The keys expiry deleted since the last call, each with the index of the command in its
    /// entry whose apply deleted it, in the order deleted (empty when not recording).
    pub fn take_expired(&mut self, into: &mut Vec<(u16, Box<[u8]>)>) {
        if let Some(log) = self.expired.as_mut() {
            into.append(log);
        }
    }

    /// Records `key` as deleted by expiry while someone watches (a copy: only then).
    fn note_expired(&mut self, key: &[u8]) {
        if let Some(log) = self.expired.as_mut() {
            log.push((self.applying, key.into()));
        }
    }

    /// Removes `key` and its index entry; returns whether it existed.
    pub(crate) fn remove_key(&mut self, key: &[u8]) -> bool {
        let expiry = self.map.entry(key).and_then(|e| e.expiry);
        match self.map.remove(key) {
            Some((value_len, owner)) => {
                self.expiries.change(key, expiry, None);
                self.data_bytes -= key.len() + value_len;
                self.usage_remove(owner, key.len() + value_len);
                true
            }
            None => false,
        }
    }

    /// SET with options (see `Op::SetX`); with GET the old block is kept for the answer
    /// (`returned`).
    pub(crate) fn set_x(
        &mut self,
        version: u64,
        key: &[u8],
        value: &[u8],
        flags: u8,
        ttl: Ttl,
    ) -> ApplyResult {
        self.drop_if_expired(key);
        let at = self.map.lookup(key);
        let old = self.map.entry_at(&at).map(|e| (e.version, e.expiry));
        let existed = old.is_some();
        if flags & set_flags::GET != 0 {
            if let Some(block) = self.map.block_at(&at) {
                self.returned.push((version, block));
            }
        }
        let refused = (flags & set_flags::NX != 0 && existed) || (flags & set_flags::XX != 0 && !existed);
        if refused {
            return ApplyResult::SetX { stored: false, version: old.map_or(0, |o| o.0), existed };
        }
        let expiry = match ttl.deadline_ms(self.now_ms) {
            Some(None) => None,
            None => old.and_then(|o| o.1),
            Some(Some(ms)) if deadline(ms) <= self.now_ms => {
                // Already past (PXAT in the past): the key is gone, as in Redis.
                self.remove_key(key);
                return ApplyResult::SetX { stored: true, version: 0, existed };
            }
            Some(Some(ms)) => Some(deadline(ms)),
        };
        match self.store(key, value, version, Some(expiry)) {
            Ok(()) => ApplyResult::SetX { stored: true, version, existed },
            Err(full) => full,
        }
    }

    /// EXPIRE / PEXPIRE (see `Op::Expire`): Redis's conditions; a deadline already past deletes
    /// the key (and counts as set).
    pub(crate) fn expire(&mut self, key: &[u8], flags: u8, ttl: Ttl) -> ApplyResult {
        self.drop_if_expired(key);
        let at = self.map.lookup(key);
        let Some(current) = self.map.entry_at(&at).map(|e| e.expiry) else {
            return ApplyResult::Changed { changed: false };
        };
        let new = match ttl.deadline_ms(self.now_ms) {
            Some(Some(ms)) => ms,
            _ => return ApplyResult::Malformed,
        };
        // Redis compares in signed ms; no expiry is +infinity for GT and LT.
        let current_ms = current.map(|c| c as i64);
        let holds = match (flags, current_ms) {
            (f, Some(_)) if f & expire_flags::NX != 0 => false,
            (f, None) if f & expire_flags::XX != 0 => false,
            (f, None) if f & expire_flags::GT != 0 => false,
            (f, Some(c)) if f & expire_flags::GT != 0 => new > c,
            (f, Some(c)) if f & expire_flags::LT != 0 => new < c,
            _ => true,
        };
        if !holds {
            return ApplyResult::Changed { changed: false };
        }
        // At or before the entry's time: already expired (Redis's `checkAlreadyExpired`).
        if new < 0 || (new as u64) <= self.now_ms {
            self.remove_key(key);
            self.note_expired(key);
            return ApplyResult::Changed { changed: true };
        }
        self.map.set_expiry(&at, Some(new as u64));
        self.expiries.change(key, current, Some(new as u64));
        ApplyResult::Changed { changed: true }
    }

    /// PERSIST: drops the key's expiry; `changed` if it had one.
    pub(crate) fn persist(&mut self, key: &[u8]) -> ApplyResult {
        self.drop_if_expired(key);
        let at = self.map.lookup(key);
        match self.map.entry_at(&at).and_then(|e| e.expiry) {
            Some(current) => {
                self.map.set_expiry(&at, None);
                self.expiries.change(key, Some(current), None);
                ApplyResult::Changed { changed: true }
            }
            None => ApplyResult::Changed { changed: false },
        }
    }

    /// The old block a SETX with GET at `version` kept, if the key existed (kept until the
    /// next entry is applied).
    pub fn returned(&self, version: u64) -> Option<&Arc<[u8]>> {
        self.returned.iter().find(|(v, _)| *v == version).map(|(_, b)| b)
    }

    /// The earliest expiry of any key (Unix ms): when the leader should reclaim.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiries.first()
    }

    /// A returned block's value (`returned`).
    pub fn value_of(block: &[u8]) -> &[u8] {
        super::map::value_of(block)
    }

    /// Keys that have an expiry.
    pub fn expiring(&self) -> usize {
        self.expiries.len()
    }

    /// The projection's time: the latest entry timestamp it applied, in Unix ms.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// A key's remaining time to live at `now_ms`, in ms: `None` absent (or expired), `Some(-1)`
    /// no expiry (Redis's TTL replies, before the caller's unit).
    pub fn ttl_ms(&self, key: &[u8], now_ms: u64) -> Option<i64> {
        let e = self.map.entry(key)?;
        if !live(e.expiry, now_ms) {
            return None;
        }
        Some(e.expiry.map_or(-1, |at| (at - now_ms) as i64))
    }

    /// A key's value and version if it is visible at `now_ms`; allocates nothing.
    pub fn get_at(&self, key: &[u8], now_ms: u64) -> Option<(&[u8], u64)> {
        self.map.entry(key).filter(|e| live(e.expiry, now_ms)).map(|e| (e.value, e.version))
    }
}

/// Rebuilds the index of a map loaded from a snapshot (its blocks' expiries).
pub(crate) fn index_of(map: &KeyMap) -> ExpiryIndex {
    let mut index = ExpiryIndex::default();
    for block in map.iter_blocks() {
        if let Some(at) = super::map::expiry_of(block) {
            index.change(super::map::key_of(block), None, Some(at));
        }
    }
    index
}

#[cfg(test)]
#[path = "expiry_tests.rs"]
mod tests;

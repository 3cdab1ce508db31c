//! The KV projection's key map: key to (value, version), in as few bytes per key as it can.
//!
//! Layout: every key is one [`Slot`] in a dense `Vec`: a pointer to ONE shared heap block (`Arc<[u8]>`)
//! holding `u64 version, u16 key_len, key, value`; a `hashbrown::HashTable<u32>` indexes the slots
//! by the hash of their key. At 1 M keys of 16-byte keys and values that is about 92 bytes per
//! key: the index's 4-byte entry and control byte over at most 2.3 buckets per key (~11 B), the
//! 16-byte slot (~17 B with the `Vec`'s slack), and the 64-byte allocator chunk holding the block's
//! 42 bytes and its two 8-byte reference counts. A `HashMap<Box<[u8]>, {Vec<u8>, u64}>` took ~164:
//! a 48-byte bucket over the same 2.3 buckets per key and two heap blocks.
//!
//! Snapshots without a stall: blocks are shared, so [`KeyMap::capture`] takes the whole state by
//! cloning each slot's block pointer (16 bytes a key, no copy of keys, values or versions), and the
//! snapshot writer's thread sorts and encodes that [`Capture`] while the shard goes on. A write to
//! a block a capture still holds gets a new block (copy-on-write); otherwise a same-length
//! overwrite stays in place, version included.
//!
//! Hashing: the standard library's keyed SipHash (`RandomState`, random keys per process): clients
//! choose the keys, so no hash flooding. Nothing depends on the hash or on the slots' order:
//! [`KeyMap::iter_sorted`] sorts by key, so snapshots stay deterministic.
//!
//! Invariants:
//! - the index holds exactly one entry per slot, `i` for `slots[i]`, under the hash of its key;
//!   keys are unique;
//! - a slot's block is exactly `10 + key_len + value_len` bytes (the value's length is implicit);
//! - lookups by `&[u8]` allocate nothing; overwriting a value with one of the same length copies
//!   it in place and allocates nothing; any other write allocates one block (and may grow the
//!   `Vec` or the index, amortized); removing frees the block and moves the last slot into the hole.
//! - at most 2^32 keys (indices are `u32`; the config's maximum of `kv.keys_max` is 2^32).

use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

/// Bytes of a block's version field.
const VERSION_BYTES: usize = 8;
/// Bytes of a block's header: the version and the key's length.
const HEADER_BYTES: usize = VERSION_BYTES + 2;

/// One key: its version, key and value in one block, shared with snapshot captures:
/// `u64 version, u16 key_len (little-endian), key, value`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot {
    data: Arc<[u8]>,
}

/// Where the value starts in a block.
fn value_at(data: &[u8]) -> usize {
    HEADER_BYTES + usize::from(u16::from_le_bytes([data[VERSION_BYTES], data[VERSION_BYTES + 1]]))
}

/// A block's key.
fn key_of(data: &[u8]) -> &[u8] {
    &data[HEADER_BYTES..value_at(data)]
}

/// A block's value.
fn value_of(data: &[u8]) -> &[u8] {
    &data[value_at(data)..]
}

/// A block's version.
fn version_of(data: &[u8]) -> u64 {
    u64::from_le_bytes(data[..VERSION_BYTES].try_into().expect("8 bytes"))
}

/// A block of `version`, `key_field` (the key's length field and the key) and `value`, in one
/// allocation (the chained iterator has an exact length).
fn block(version: u64, key_field: &[u8], value: &[u8]) -> Arc<[u8]> {
    version.to_le_bytes().iter().chain(key_field).chain(value).copied().collect()
}

impl Slot {
    /// A slot for `key` (at most `u16::MAX` bytes: the limits keep it there) and `value`.
    fn new(key: &[u8], value: &[u8], version: u64) -> Self {
        let key_len = u16::try_from(key.len()).expect("keys are at most key_bytes_max <= u16::MAX");
        let header = version.to_le_bytes().into_iter().chain(key_len.to_le_bytes());
        let data: Arc<[u8]> = header.chain(key.iter().copied()).chain(value.iter().copied()).collect();
        Self { data }
    }

    fn version(&self) -> u64 {
        version_of(&self.data)
    }

    fn value_at(&self) -> usize {
        value_at(&self.data)
    }

    fn key(&self) -> &[u8] {
        key_of(&self.data)
    }

    fn value(&self) -> &[u8] {
        value_of(&self.data)
    }

    /// Replaces the value: in place when the length is the same and no capture shares the block,
    /// else in a new block.
    fn set_value(&mut self, value: &[u8], version: u64) {
        let at = self.value_at();
        if self.data.len() - at == value.len() {
            if let Some(data) = Arc::get_mut(&mut self.data) {
                data[..VERSION_BYTES].copy_from_slice(&version.to_le_bytes());
                data[at..].copy_from_slice(value);
                return;
            }
        }
        self.data = block(version, &self.data[VERSION_BYTES..at], value);
    }
}

/// Keys with their values and versions (see the module header).
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyMap {
    index: HashTable<u32>,
    slots: Vec<Slot>,
    hasher: RandomState,
}

/// Where a key is, or where it would go: [`KeyMap::lookup`]'s answer, for one [`KeyMap::store`].
#[derive(Debug)]
pub(crate) struct Lookup {
    hash: u64,
    slot: Option<usize>,
}

/// A slot's index as stored in the index table.
fn slot_id(i: usize) -> u32 {
    u32::try_from(i).expect("at most 2^32 keys (kv.keys_max)")
}

impl KeyMap {
    /// An empty map with room for `keys` keys.
    pub(crate) fn with_capacity(keys: usize) -> Self {
        Self {
            index: HashTable::with_capacity(keys),
            slots: Vec::with_capacity(keys),
            hasher: RandomState::new(),
        }
    }

    /// Keys stored.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The slot index of `key`.
    fn find(&self, key: &[u8]) -> Option<usize> {
        let slots = &self.slots;
        self.index.find(self.hash(key), |&i| slots[i as usize].key() == key).map(|&i| i as usize)
    }

    /// A key's value and version; allocates nothing.
    pub(crate) fn get(&self, key: &[u8]) -> Option<(&[u8], u64)> {
        self.find(key).map(|i| (self.slots[i].value(), self.slots[i].version()))
    }

    /// Where `key` is (or would go): look it up once, check limits against
    /// [`Lookup::value_len`], then [`KeyMap::store`] there.
    pub(crate) fn lookup(&self, key: &[u8]) -> Lookup {
        let hash = self.hash(key);
        let slots = &self.slots;
        match self.index.find(hash, |&i| slots[i as usize].key() == key) {
            Some(&i) => Lookup { hash, slot: Some(i as usize) },
            None => Lookup { hash, slot: None },
        }
    }

    /// The length of the value a lookup found (`None`: the key is absent).
    pub(crate) fn value_len(&self, at: &Lookup) -> Option<usize> {
        at.slot.map(|i| self.slots[i].value().len())
    }

    /// Stores `value` at `version` under `key`, where `at` (this map's lookup of `key`, with no
    /// change in between) found it or its place. Allocates nothing when the key exists with a
    /// value of the same length.
    pub(crate) fn store(&mut self, at: Lookup, key: &[u8], value: &[u8], version: u64) {
        if let Some(i) = at.slot {
            debug_assert_eq!(self.slots[i].key(), key);
            self.slots[i].set_value(value, version);
            return;
        }
        let id = slot_id(self.slots.len());
        self.slots.push(Slot::new(key, value, version));
        let Self { index, slots, hasher } = self;
        index.insert_unique(at.hash, id, |&i| hasher.hash_one(slots[i as usize].key()));
    }

    /// Stores `value` at `version` under `key`; returns the length of the value it replaced
    /// (`None`: a new key).
    pub(crate) fn set(&mut self, key: &[u8], value: &[u8], version: u64) -> Option<usize> {
        let at = self.lookup(key);
        let old = self.value_len(&at);
        self.store(at, key, value, version);
        old
    }

    /// Removes `key`; returns the length of its value (`None`: it was absent).
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<usize> {
        let slots = &self.slots;
        let entry = self.index.find_entry(self.hash(key), |&i| slots[i as usize].key() == key).ok()?;
        let (i, _) = entry.remove();
        let i = i as usize;
        let removed = self.slots.swap_remove(i);
        if i < self.slots.len() {
            // The last slot moved into the hole: point its index entry at its new place.
            let moved = slot_id(self.slots.len());
            let hash = self.hash(self.slots[i].key());
            *self.index.find_mut(hash, |&j| j == moved).expect("every slot is indexed") = slot_id(i);
        }
        Some(removed.data.len() - removed.value_at())
    }

    /// The whole map as it is now, for a snapshot encoded later on another thread: each slot's
    /// block (shared, not copied). Allocates 16 bytes a key.
    pub(crate) fn capture(&self) -> Capture {
        Capture { blocks: self.slots.iter().map(|s| Arc::clone(&s.data)).collect() }
    }

    /// Every key with its value and version, in ascending key order (allocates 4 bytes per key
    /// for the order while it runs).
    pub(crate) fn iter_sorted(&self) -> impl Iterator<Item = (&[u8], &[u8], u64)> + '_ {
        let mut order: Vec<u32> = (0..self.slots.len()).map(slot_id).collect();
        order.sort_unstable_by(|&a, &b| self.slots[a as usize].key().cmp(self.slots[b as usize].key()));
        order.into_iter().map(|i| {
            let slot = &self.slots[i as usize];
            (slot.key(), slot.value(), slot.version())
        })
    }
}

/// The map's keys, values and versions at a capture ([`KeyMap::capture`]); `Send`, so the
/// snapshot writer's thread encodes it while the map changes on (copy-on-write).
#[derive(Debug)]
pub(crate) struct Capture {
    blocks: Vec<Arc<[u8]>>,
}

impl Capture {
    /// Keys captured.
    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Bytes of keys plus values captured.
    pub(crate) fn data_bytes(&self) -> usize {
        self.blocks.iter().map(|d| d.len() - HEADER_BYTES).sum()
    }

    /// Every key with its value and version, in ascending key order (sorts the capture).
    pub(crate) fn sorted(&mut self) -> impl Iterator<Item = (&[u8], &[u8], u64)> + '_ {
        self.blocks.sort_unstable_by(|a, b| key_of(a).cmp(key_of(b)));
        self.blocks.iter().map(|d| (key_of(d), value_of(d), version_of(d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn same_length_overwrites_stay_in_their_block() {
        let mut m = KeyMap::default();
        assert_eq!(m.set(b"k", b"abcd", 1), None);
        let before = m.slots[0].data.as_ptr();
        assert_eq!(m.set(b"k", b"wxyz", 2), Some(4));
        assert_eq!(m.slots[0].data.as_ptr(), before, "a same-length value is copied in place");
        assert_eq!(m.get(b"k"), Some((&b"wxyz"[..], 2)));
        assert_eq!(m.set(b"k", b"", 3), Some(4));
        assert_eq!(m.get(b"k"), Some((&b""[..], 3)));
        assert_eq!(
            &*m.slots[0].data,
            &[3, 0, 0, 0, 0, 0, 0, 0, 1, 0, b'k'],
            "the block is exactly version, key_len, key, value"
        );
        assert_eq!(m.set(b"", b"empty key", 4), None);
        assert_eq!(m.get(b""), Some((&b"empty key"[..], 4)));
    }

    /// A capture keeps the state it took while the map changes on: a block it shares is copied
    /// before a write (copy-on-write); once the capture is gone, writes are in place again.
    #[test]
    fn a_capture_keeps_its_state_and_writes_copy_shared_blocks() {
        let mut m = KeyMap::default();
        m.set(b"a", b"1111", 1);
        m.set(b"b", b"2222", 2);
        m.set(b"c", b"3333", 3);
        let mut capture = m.capture();
        let shared = m.slots[0].data.as_ptr();
        m.set(b"a", b"9999", 4);
        assert_ne!(m.slots[0].data.as_ptr(), shared, "a shared block is not written in place");
        m.remove(b"b");
        m.set(b"d", b"4444", 5);
        let taken: Vec<_> = capture.sorted().map(|(k, v, n)| (k.to_vec(), v.to_vec(), n)).collect();
        assert_eq!(
            taken,
            [
                (b"a".to_vec(), b"1111".to_vec(), 1),
                (b"b".to_vec(), b"2222".to_vec(), 2),
                (b"c".to_vec(), b"3333".to_vec(), 3)
            ]
        );
        assert_eq!((capture.len(), capture.data_bytes()), (3, 15));
        drop(capture);
        let own = m.slots[0].data.as_ptr();
        m.set(b"a", b"8888", 6);
        assert_eq!(m.slots[0].data.as_ptr(), own, "in place again once no capture shares it");
        assert_eq!(m.get(b"a"), Some((&b"8888"[..], 6)));
    }

    #[derive(Clone, Debug)]
    enum Step {
        Set(u8, u8),
        Remove(u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (0u8..40, 0u8..6).prop_map(|(k, v)| Step::Set(k, v)),
            1 => (0u8..40).prop_map(Step::Remove),
        ]
    }

    proptest! {
        /// Against a `BTreeMap`: every answer, the length, the sorted iteration, and the index
        /// pointing every key at its slot after removals moved slots around.
        #[test]
        fn behaves_like_a_sorted_map(steps in proptest::collection::vec(step(), 1..300)) {
            let mut m = KeyMap::default();
            let mut model: BTreeMap<Vec<u8>, (Vec<u8>, u64)> = BTreeMap::new();
            for (n, s) in steps.iter().enumerate() {
                let version = n as u64 + 1;
                match *s {
                    Step::Set(k, v) => {
                        let key = vec![b'k'; usize::from(k)];
                        let value = vec![v; usize::from(v)];
                        let old = model.insert(key.clone(), (value.clone(), version)).map(|(v, _)| v.len());
                        prop_assert_eq!(m.set(&key, &value, version), old);
                    }
                    Step::Remove(k) => {
                        let key = vec![b'k'; usize::from(k)];
                        prop_assert_eq!(m.remove(&key), model.remove(&key).map(|(v, _)| v.len()));
                    }
                }
                prop_assert_eq!(m.len(), model.len());
                prop_assert_eq!(m.index.len(), m.slots.len());
            }
            for k in 0..40u8 {
                let key = vec![b'k'; usize::from(k)];
                let want = model.get(&key).map(|(v, n)| (v.as_slice(), *n));
                prop_assert_eq!(m.get(&key), want);
            }
            let got: Vec<_> = m.iter_sorted().map(|(k, v, n)| (k.to_vec(), (v.to_vec(), n))).collect();
            let want: Vec<_> = model.into_iter().collect();
            prop_assert_eq!(got, want);
        }
    }
}

//! The KV projection's key map: key to (value, version), in as few bytes per key as it can.
//!
//! Layout: every key is one [`Slot`] in a dense `Vec` (its key and value in ONE heap block,
//! `u16 key_len, key, value`, beside its version), and a `hashbrown::HashTable<u32>` indexes the
//! slots by the hash of their key. At 1 M keys of 16-byte keys and values that is about 84 bytes
//! per key: the index's 4-byte entry and control byte over at most 2.3 buckets per key (~11 B),
//! the 24-byte slot (~25 B with the `Vec`'s slack), and the 48-byte allocator chunk holding the 34
//! bytes of the block. A `HashMap<Box<[u8]>, {Vec<u8>, u64}>` took ~164: a 48-byte bucket over the
//! same 2.3 buckets per key and two heap blocks.
//!
//! Hashing: the standard library's keyed SipHash (`RandomState`, random keys per process): clients
//! choose the keys, so no hash flooding. Nothing depends on the hash or on the slots' order:
//! [`KeyMap::iter_sorted`] sorts by key, so snapshots stay deterministic.
//!
//! Invariants:
//! - the index holds exactly one entry per slot, `i` for `slots[i]`, under the hash of its key;
//!   keys are unique;
//! - a slot's block is exactly `2 + key_len + value_len` bytes (the value's length is implicit);
//! - lookups by `&[u8]` allocate nothing; overwriting a value with one of the same length copies
//!   it in place and allocates nothing; any other write allocates one block (and may grow the
//!   `Vec` or the index, amortized); removing frees the block and moves the last slot into the hole.
//! - at most 2^32 keys (indices are `u32`; the config's maximum of `kv.keys_max` is 2^32).

use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};

/// Bytes of a block's key-length prefix.
const KEY_LEN_BYTES: usize = 2;

/// One key: its key and value in one block, and the version that last wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot {
    /// `u16 key_len (little-endian), key, value`.
    data: Box<[u8]>,
    version: u64,
}

impl Slot {
    /// A slot for `key` (at most `u16::MAX` bytes: the limits keep it there) and `value`.
    fn new(key: &[u8], value: &[u8], version: u64) -> Self {
        let key_len = u16::try_from(key.len()).expect("keys are at most key_bytes_max <= u16::MAX");
        let mut data = Vec::with_capacity(KEY_LEN_BYTES + key.len() + value.len());
        data.extend_from_slice(&key_len.to_le_bytes());
        data.extend_from_slice(key);
        data.extend_from_slice(value);
        // Exact capacity: `into_boxed_slice` keeps the allocation.
        Self { data: data.into_boxed_slice(), version }
    }

    /// Where the value starts in `data`.
    fn value_at(&self) -> usize {
        KEY_LEN_BYTES + usize::from(u16::from_le_bytes([self.data[0], self.data[1]]))
    }

    fn key(&self) -> &[u8] {
        &self.data[KEY_LEN_BYTES..self.value_at()]
    }

    fn value(&self) -> &[u8] {
        &self.data[self.value_at()..]
    }

    /// Replaces the value: in place when the length is the same, else in a new block.
    fn set_value(&mut self, value: &[u8], version: u64) {
        let at = self.value_at();
        if self.data.len() - at == value.len() {
            self.data[at..].copy_from_slice(value);
        } else {
            let mut data = Vec::with_capacity(at + value.len());
            data.extend_from_slice(&self.data[..at]);
            data.extend_from_slice(value);
            self.data = data.into_boxed_slice();
        }
        self.version = version;
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
        self.find(key).map(|i| (self.slots[i].value(), self.slots[i].version))
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

    /// Every key with its value and version, in ascending key order (allocates 4 bytes per key
    /// for the order while it runs).
    pub(crate) fn iter_sorted(&self) -> impl Iterator<Item = (&[u8], &[u8], u64)> + '_ {
        let mut order: Vec<u32> = (0..self.slots.len()).map(slot_id).collect();
        order.sort_unstable_by(|&a, &b| self.slots[a as usize].key().cmp(self.slots[b as usize].key()));
        order.into_iter().map(|i| {
            let slot = &self.slots[i as usize];
            (slot.key(), slot.value(), slot.version)
        })
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
        assert_eq!(&*m.slots[0].data, &[1, 0, b'k'], "the block is exactly key_len, key, value");
        assert_eq!(m.set(b"", b"empty key", 4), None);
        assert_eq!(m.get(b""), Some((&b"empty key"[..], 4)));
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

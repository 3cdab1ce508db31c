//! The KV projection's key map: key to (value, version), in as few bytes per key as it can.
//!
//! Layout: every key is one [`Slot`] in a dense `Vec`: a pointer to ONE shared heap block (`Arc<[u8]>`)
//! holding `u64 version, u16 key_len, key, value`, or, for a key with an expiry (bit 15 of the
//! key length set; keys are at most 32767 bytes), `u64 version, u16 key_len | 0x8000, u64
//! expires_at (Unix ms), key, value`: only keys with an expiry pay its 8 bytes; and a key a
//! principal wrote (bit 63 of the version set: versions stay below 2^63, `LogPos::version`) has
//! `u32 owner` (its key id, `projection::owner`) after the expiry, if any, and before the key:
//! only keys with an owner pay its 4 bytes, anonymous ones are as before quotas; a `hashbrown::HashTable<u32>` indexes the slots
//! by the hash of their key. At 1 M keys of 16-byte keys and values that is about 92 bytes per
//! key: the index's 4-byte entry and control byte over at most 2.3 buckets per key (~11 B), the
//! 16-byte slot (~17 B with the `Vec`'s slack), and the 64-byte allocator chunk holding the block's
//! 42 bytes and its two 8-byte reference counts. A `HashMap<Box<[u8]>, {Vec<u8>, u64}>` took ~164:
//! a 48-byte bucket over the same 2.3 buckets per key and two heap blocks.
//!
//! Snapshots without a stall and without a copy of the map: [`KeyMap::begin_capture`] only notes
//! how many slots there are (`super::capture`: a cursor and a limit); the snapshot is then taken
//! in slot order, a chunk of block pointers at a time ([`KeyMap::capture_chunk`]), while the map
//! changes on. Before a write changes a slot the cursor has not reached yet, the slot's block at
//! the capture is kept as its pre-image (a pointer), so the chunks give the map exactly as it was
//! at the capture; the memory a snapshot costs is the chunks in flight plus the pre-images of what
//! changed meanwhile, never a pointer per key. Blocks are shared: a write to a block a chunk or a
//! pre-image still holds gets a new block (copy-on-write); otherwise a same-length overwrite stays
//! in place, version included.
//!
//! Slot order is a function of the history of the map: a new key goes to the end, a removal moves
//! the last slot into the hole (`swap_remove`), and a map loaded from a snapshot inserts its keys in
//! the file's order, so it has the layout of the map that wrote the file. Two maps that applied the
//! same writes since the same snapshot (or since empty) have the same slot order, so a snapshot in
//! slot order is as deterministic as a sorted one, with no sort. [`KeyMap::iter_sorted`] still sorts
//! by key, for reads and tests that want key order.
//!
//! Hashing: the standard library's keyed SipHash (`RandomState`, random keys per process): clients
//! choose the keys, so no hash flooding. Nothing depends on the hash: the slots' order depends only
//! on the writes (above), the index's on the hash, and nothing reads the index's order.
//!
//! Invariants:
//! - the index holds exactly one entry per slot, `i` for `slots[i]`, under the hash of its key;
//!   keys are unique;
//! - a slot's block is exactly `10 + key_len + value_len` bytes, 8 more with an expiry and 4 more
//!   with an owner (the value's length is implicit);
//! - lookups by `&[u8]` allocate nothing; overwriting a value with one of the same length copies
//!   it in place and allocates nothing; any other write allocates one block (and may grow the
//!   `Vec` or the index, amortized); removing frees the block and moves the last slot into the hole.
//!   With no capture running, a write does nothing more; with one, a write to a slot the cursor has
//!   not reached keeps its pre-image first (once per slot).
//! - at most 2^32 keys (indices are `u32`; the config's maximum of `kv.keys_max` is 2^32).

use super::capture::Capture;
use crate::projection::owner::ANONYMOUS_OWNER;
use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

/// Bytes of a block's version field.
const VERSION_BYTES: usize = 8;
/// Bytes of a block's header: the version and the key's length.
const HEADER_BYTES: usize = VERSION_BYTES + 2;
/// Bit of the key-length field set when the block carries an expiry (keys are at most
/// `KEY_BYTES_LIMIT` bytes, so the bit is free).
const EXPIRY_FLAG: u16 = 0x8000;
/// Bytes of the expiry field of a block that has one.
const EXPIRY_BYTES: usize = 8;
/// The longest key a block can hold (15 bits of key length).
pub const KEY_BYTES_LIMIT: usize = 0x7fff;
/// Bit of the version field set when the block carries an owner.
const OWNER_FLAG: u64 = 1 << 63;
/// Bytes of the owner field of a block that has one.
const OWNER_BYTES: usize = 4;

/// One key: its version, key and value in one block, shared with snapshot captures:
/// `u64 version (little-endian; bit 63: an owner follows the expiry), u16 key_len (bit 15: an
/// expiry follows), [u64 expires_at_ms], [u32 owner], key, value`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot {
    data: Arc<[u8]>,
}

/// A block's raw key-length field.
fn key_field(data: &[u8]) -> u16 {
    u16::from_le_bytes([data[VERSION_BYTES], data[VERSION_BYTES + 1]])
}

/// A block's raw version field (bit 63: an owner follows).
fn version_field(data: &[u8]) -> u64 {
    u64::from_le_bytes(data[..VERSION_BYTES].try_into().expect("8 bytes"))
}

/// Where the owner field is (or would be) in a block: after the expiry, if any.
fn owner_at(data: &[u8]) -> usize {
    if key_field(data) & EXPIRY_FLAG != 0 {
        HEADER_BYTES + EXPIRY_BYTES
    } else {
        HEADER_BYTES
    }
}

/// Where the key starts in a block.
fn key_at(data: &[u8]) -> usize {
    owner_at(data) + if version_field(data) & OWNER_FLAG != 0 { OWNER_BYTES } else { 0 }
}

/// Where the value starts in a block.
pub(super) fn value_at(data: &[u8]) -> usize {
    key_at(data) + usize::from(key_field(data) & !EXPIRY_FLAG)
}

/// A block's key.
pub(super) fn key_of(data: &[u8]) -> &[u8] {
    &data[key_at(data)..value_at(data)]
}

/// A block's value.
pub(super) fn value_of(data: &[u8]) -> &[u8] {
    &data[value_at(data)..]
}

/// A block's version.
pub(super) fn version_of(data: &[u8]) -> u64 {
    version_field(data) & !OWNER_FLAG
}

/// A block's owner (`ANONYMOUS_OWNER` when it has none).
pub(super) fn owner_of(data: &[u8]) -> u32 {
    if version_field(data) & OWNER_FLAG == 0 {
        return ANONYMOUS_OWNER;
    }
    let at = owner_at(data);
    u32::from_le_bytes(data[at..at + OWNER_BYTES].try_into().expect("4 bytes"))
}

/// A block's expiry (Unix milliseconds), if it has one.
pub(super) fn expiry_of(data: &[u8]) -> Option<u64> {
    (key_field(data) & EXPIRY_FLAG != 0).then(|| {
        u64::from_le_bytes(data[HEADER_BYTES..HEADER_BYTES + EXPIRY_BYTES].try_into().expect("8 bytes"))
    })
}

/// A block of `version`, `key`, `expiry`, `owner` and `value`, in one allocation (the chained
/// iterator has an exact length).
fn block(version: u64, key: &[u8], expiry: Option<u64>, owner: u32, value: &[u8]) -> Arc<[u8]> {
    debug_assert_eq!(version & OWNER_FLAG, 0, "versions stay below 2^63");
    let key_len = u16::try_from(key.len()).ok().filter(|&n| usize::from(n) <= KEY_BYTES_LIMIT);
    let key_len = key_len.expect("keys are at most key_bytes_max <= 32767");
    let field = if expiry.is_some() { key_len | EXPIRY_FLAG } else { key_len };
    let owned = owner != ANONYMOUS_OWNER;
    let version = if owned { version | OWNER_FLAG } else { version };
    let exp = expiry.map(u64::to_le_bytes);
    let exp: &[u8] = match &exp {
        Some(b) => b,
        None => &[],
    };
    let owner_bytes = owner.to_le_bytes();
    let own: &[u8] = if owned { &owner_bytes } else { &[] };
    version
        .to_le_bytes()
        .iter()
        .chain(&field.to_le_bytes())
        .chain(exp)
        .chain(own)
        .chain(key)
        .chain(value)
        .copied()
        .collect()
}

impl Slot {
    /// A slot for `key` (at most `KEY_BYTES_LIMIT` bytes: the limits keep it there) and `value`.
    fn new(key: &[u8], value: &[u8], version: u64, expiry: Option<u64>, owner: u32) -> Self {
        Self { data: block(version, key, expiry, owner, value) }
    }

    fn owner(&self) -> u32 {
        owner_of(&self.data)
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

    fn expiry(&self) -> Option<u64> {
        expiry_of(&self.data)
    }

    /// Replaces the value, the expiry and the owner: in place when the length and the presence
    /// of an expiry are the same, the owner the same, and no capture shares the block, else in a
    /// new block.
    fn set_value(&mut self, value: &[u8], version: u64, expiry: Option<u64>, owner: u32) {
        let at = self.value_at();
        let same_shape = self.data.len() - at == value.len()
            && self.expiry().is_some() == expiry.is_some()
            && self.owner() == owner;
        if same_shape {
            if let Some(data) = Arc::get_mut(&mut self.data) {
                let field = if owner == ANONYMOUS_OWNER { version } else { version | OWNER_FLAG };
                data[..VERSION_BYTES].copy_from_slice(&field.to_le_bytes());
                if let Some(e) = expiry {
                    data[HEADER_BYTES..HEADER_BYTES + EXPIRY_BYTES].copy_from_slice(&e.to_le_bytes());
                }
                data[at..].copy_from_slice(value);
                return;
            }
        }
        self.data = block(version, self.key(), expiry, owner, value);
    }
}

/// A key as the map holds it: value, version, expiry (Unix ms) and owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    pub(crate) value: &'a [u8],
    pub(crate) version: u64,
    pub(crate) expiry: Option<u64>,
    pub(crate) owner: u32,
}

/// Keys with their values and versions (see the module header).
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyMap {
    index: HashTable<u32>,
    slots: Vec<Slot>,
    hasher: RandomState,
    /// The snapshot being taken, if any (see the module header).
    pub(super) capture: Option<Box<Capture>>,
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
            capture: None,
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

    /// A key's value, version and expiry; allocates nothing.
    pub(crate) fn entry(&self, key: &[u8]) -> Option<Entry<'_>> {
        self.find(key).map(|i| {
            let s = &self.slots[i];
            Entry { value: s.value(), version: s.version(), expiry: s.expiry(), owner: s.owner() }
        })
    }

    /// The entry a lookup found.
    pub(crate) fn entry_at(&self, at: &Lookup) -> Option<Entry<'_>> {
        at.slot.map(|i| {
            let s = &self.slots[i];
            Entry { value: s.value(), version: s.version(), expiry: s.expiry(), owner: s.owner() }
        })
    }

    /// The block a lookup found (shared: a GET-old-value answer holds it past the write).
    pub(crate) fn block_at(&self, at: &Lookup) -> Option<Arc<[u8]>> {
        at.slot.map(|i| Arc::clone(&self.slots[i].data))
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

    /// Stores `value` at `version` under `key` for `owner`, where `at` (this map's lookup of
    /// `key`, with no change in between) found it or its place. Allocates nothing when the key
    /// exists with a value of the same length and the same owner.
    pub(crate) fn store(
        &mut self,
        at: Lookup,
        key: &[u8],
        value: &[u8],
        version: u64,
        expiry: Option<u64>,
        owner: u32,
    ) {
        if let Some(i) = at.slot {
            debug_assert_eq!(self.slots[i].key(), key);
            if let Some(c) = &mut self.capture {
                c.keep(i, &self.slots[i].data);
            }
            self.slots[i].set_value(value, version, expiry, owner);
            return;
        }
        if let Some(c) = &self.capture {
            c.check_vacated(self.slots.len());
        }
        let id = slot_id(self.slots.len());
        self.slots.push(Slot::new(key, value, version, expiry, owner));
        let Self { index, slots, hasher, .. } = self;
        index.insert_unique(at.hash, id, |&i| hasher.hash_one(slots[i as usize].key()));
    }

    /// Stores `value` at `version` under `key`; returns the length of the value it replaced
    /// (`None`: a new key).
    #[cfg(test)]
    pub(crate) fn set(&mut self, key: &[u8], value: &[u8], version: u64) -> Option<usize> {
        let at = self.lookup(key);
        let old = self.value_len(&at);
        self.store(at, key, value, version, None, ANONYMOUS_OWNER);
        old
    }

    /// Removes `key`; returns the length of its value and its owner (`None`: it was absent).
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<(usize, u32)> {
        let slots = &self.slots;
        let entry = self.index.find_entry(self.hash(key), |&i| slots[i as usize].key() == key).ok()?;
        let (i, _) = entry.remove();
        let i = i as usize;
        if let Some(c) = &mut self.capture {
            // Both ends of the move change: the hole and the last slot.
            let last = self.slots.len() - 1;
            c.keep(i, &self.slots[i].data);
            c.keep(last, &self.slots[last].data);
        }
        let removed = self.slots.swap_remove(i);
        if i < self.slots.len() {
            // The last slot moved into the hole: point its index entry at its new place.
            let moved = slot_id(self.slots.len());
            let hash = self.hash(self.slots[i].key());
            *self.index.find_mut(hash, |&j| j == moved).expect("every slot is indexed") = slot_id(i);
        }
        Some((removed.data.len() - removed.value_at(), removed.owner()))
    }

    /// Gives the key `at` found the expiry `expiry` (its value and version unchanged); in place
    /// when the presence of an expiry does not change and no capture shares the block.
    pub(crate) fn set_expiry(&mut self, at: &Lookup, expiry: Option<u64>) {
        let Some(i) = at.slot else { return };
        if let Some(c) = &mut self.capture {
            c.keep(i, &self.slots[i].data);
        }
        let slot = &mut self.slots[i];
        if slot.expiry().is_some() == expiry.is_some() {
            let Some(e) = expiry else { return };
            if let Some(data) = Arc::get_mut(&mut slot.data) {
                data[HEADER_BYTES..HEADER_BYTES + EXPIRY_BYTES].copy_from_slice(&e.to_le_bytes());
                return;
            }
        }
        slot.data = block(slot.version(), slot.key(), expiry, slot.owner(), slot.value());
    }

    /// Starts a capture of the map as it is now (see the module header), ending any capture
    /// still running; returns the number of keys it will give. Allocates one small box.
    pub(crate) fn begin_capture(&mut self) -> usize {
        self.capture = Some(Box::new(Capture::new(self.slots.len())));
        self.slots.len()
    }

    /// Appends to `out` the blocks of the next at most `max` slots of the running capture, as they
    /// were at its start, in slot order; returns true once the capture has given every slot (it
    /// ends then), or when none is running.
    pub(crate) fn capture_chunk(&mut self, out: &mut Vec<Arc<[u8]>>, max: usize) -> bool {
        let Some(c) = &mut self.capture else { return true };
        let slots = &self.slots;
        let done = c.take(max, out, |i| Arc::clone(&slots[i].data));
        if done {
            self.capture = None;
        }
        done
    }

    /// Ends the running capture, if any (its pre-images are freed).
    #[cfg(test)]
    pub(crate) fn end_capture(&mut self) {
        self.capture = None;
    }

    /// Every key with its value and version in slot order (the order a snapshot writes).
    #[cfg(test)]
    pub(crate) fn iter_slots(&self) -> impl Iterator<Item = (&[u8], &[u8], u64)> + '_ {
        self.slots.iter().map(|s| (s.key(), s.value(), s.version()))
    }

    /// Every block in slot order.
    pub(crate) fn iter_blocks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.slots.iter().map(|s| &*s.data)
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

    #[test]
    fn owners_ride_in_the_block_and_only_owned_keys_pay_for_them() {
        let mut m = KeyMap::default();
        let at = m.lookup(b"k");
        m.store(at, b"k", b"abcd", 5, None, 7);
        assert_eq!(m.slots[0].data.len(), HEADER_BYTES + OWNER_BYTES + 1 + 4);
        let e = m.entry(b"k").unwrap();
        assert_eq!((e.value, e.version, e.expiry, e.owner), (&b"abcd"[..], 5, None, 7));
        m.set_expiry(&m.lookup(b"k"), Some(99));
        let e = m.entry(b"k").unwrap();
        assert_eq!((e.value, e.version, e.expiry, e.owner), (&b"abcd"[..], 5, Some(99), 7));
        let before = m.slots[0].data.as_ptr();
        let at = m.lookup(b"k");
        m.store(at, b"k", b"wxyz", 6, Some(99), 7);
        assert_eq!(m.slots[0].data.as_ptr(), before, "same shape and owner: in place");
        let at = m.lookup(b"k");
        m.store(at, b"k", b"wxyz", 8, Some(99), 9);
        let e = m.entry(b"k").unwrap();
        assert_eq!((e.value, e.version, e.expiry, e.owner), (&b"wxyz"[..], 8, Some(99), 9));
        let at = m.lookup(b"k");
        m.store(at, b"k", b"v", 10, None, ANONYMOUS_OWNER);
        assert_eq!(m.slots[0].data.len(), HEADER_BYTES + 2, "anonymous again: no owner field");
        assert_eq!(m.get(b"k"), Some((&b"v"[..], 10)));
        let at = m.lookup(b"j");
        m.store(at, b"j", b"x", 11, None, 3);
        assert_eq!(m.remove(b"j"), Some((1, 3)));
        assert_eq!(m.remove(b"k"), Some((1, ANONYMOUS_OWNER)));
    }

    /// A capture keeps the state it took while the map changes on: a block a chunk or a
    /// pre-image shares is copied before a write (copy-on-write); once the capture is gone, writes
    /// are in place again.
    #[test]
    fn a_capture_keeps_its_state_and_writes_copy_shared_blocks() {
        let mut m = KeyMap::default();
        m.set(b"a", b"1111", 1);
        m.set(b"b", b"2222", 2);
        m.set(b"c", b"3333", 3);
        assert_eq!(m.begin_capture(), 3);
        let shared = m.slots[0].data.as_ptr();
        m.set(b"a", b"9999", 4);
        assert_ne!(m.slots[0].data.as_ptr(), shared, "a kept block is not written in place");
        m.remove(b"b");
        m.set(b"d", b"4444", 5);
        let mut blocks = Vec::new();
        while !m.capture_chunk(&mut blocks, 2) {}
        let taken: Vec<_> =
            blocks.iter().map(|d| (key_of(d).to_vec(), value_of(d).to_vec(), version_of(d))).collect();
        assert_eq!(
            taken,
            [
                (b"a".to_vec(), b"1111".to_vec(), 1),
                (b"b".to_vec(), b"2222".to_vec(), 2),
                (b"c".to_vec(), b"3333".to_vec(), 3)
            ],
            "slot order at the capture"
        );
        drop(blocks);
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
                        prop_assert_eq!(m.remove(&key).map(|(n, _)| n), model.remove(&key).map(|(v, _)| v.len()));
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

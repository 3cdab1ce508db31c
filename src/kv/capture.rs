//! A capture of the key map for a snapshot (`KeyMap::begin_capture`): a cursor over the slots the
//! map had at the capture, and the pre-images of those the map changed before the cursor got there.
//!
//! At the capture the map has `limit` slots; the snapshot gives slots `0..limit` in order, as they
//! were then. The cursor `next` says how far it got. A write that changes slot `i` (a new value, a
//! removal, or either end of the move a removal makes) first calls [`Capture::keep`] with the
//! slot's block: if `next <= i < limit` and no pre-image of `i` is kept yet, the block (a pointer,
//! shared) is kept as `i`'s pre-image. The cursor takes `i`'s pre-image when there is one, else the
//! slot's block, which then is still the one of the capture (any change would have kept it first).
//! A slot at or past `limit` is never taken (keys inserted since the capture).
//!
//! A slot below `limit` that the map no longer has (it shrank by removals) was vacated by a
//! removal, which kept its pre-image (the last slot is always one end of the move), so the cursor
//! always finds it; an insertion that refills it keeps nothing new ([`Capture::check_vacated`]).
//!
//! Memory: this struct, plus one pointer and a map entry per slot changed ahead of the cursor; a
//! pre-image is freed as soon as the cursor takes it. Nothing per key of the map.
//!
//! Invariants: `next <= limit`; every kept index is in `next..limit`; what `take` gives for slot
//! `i` is the block slot `i` held at the capture.

use std::collections::HashMap;
use std::sync::Arc;

/// A running capture (see the module header).
#[derive(Clone, Debug)]
pub(crate) struct Capture {
    /// Slots at the capture.
    limit: usize,
    /// Slots given so far.
    next: usize,
    /// Blocks at the capture of slots in `next..limit` changed since.
    kept: HashMap<usize, Arc<[u8]>>,
}

impl Capture {
    /// A capture of a map of `limit` slots, none given yet.
    pub(crate) fn new(limit: usize) -> Self {
        Self { limit, next: 0, kept: HashMap::new() }
    }

    /// Slot `i`, whose block is `block`, is about to change: keeps `block` as its pre-image if the
    /// cursor has not reached it and none is kept yet.
    pub(crate) fn keep(&mut self, i: usize, block: &Arc<[u8]>) {
        if (self.next..self.limit).contains(&i) {
            self.kept.entry(i).or_insert_with(|| Arc::clone(block));
        }
    }

    /// A key is inserted at slot `i` (the map's length): a slot below `limit` not reached yet was
    /// vacated by a removal, which kept its pre-image (see the module header).
    pub(crate) fn check_vacated(&self, i: usize) {
        debug_assert!(
            !(self.next..self.limit).contains(&i) || self.kept.contains_key(&i),
            "slot {i} refilled without its pre-image"
        );
    }

    /// Appends the blocks of the next at most `max` slots to `out`: a slot's pre-image, or its
    /// block now (`current`) if it did not change. Returns true once every slot was given.
    pub(crate) fn take(
        &mut self,
        max: usize,
        out: &mut Vec<Arc<[u8]>>,
        current: impl Fn(usize) -> Arc<[u8]>,
    ) -> bool {
        let end = self.limit.min(self.next.saturating_add(max));
        for i in self.next..end {
            out.push(self.kept.remove(&i).unwrap_or_else(|| current(i)));
        }
        self.next = end;
        self.next == self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::super::map::{key_of, value_of, version_of, KeyMap};
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Step {
        /// Set key k (of 0..24) to a value of this length.
        Set(u8, u8),
        Remove(u8),
        /// Take a chunk of at most this many slots.
        Pull(u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..24, 0u8..5).prop_map(|(k, v)| Step::Set(k, v)),
            2 => (0u8..24).prop_map(Step::Remove),
            2 => (1u8..6).prop_map(Step::Pull),
        ]
    }

    type Entry = (Vec<u8>, Vec<u8>, u64);

    fn key(k: u8) -> Vec<u8> {
        vec![b'k'; usize::from(k) + 1]
    }

    /// Applies a write step to the map.
    fn apply(m: &mut KeyMap, s: &Step, version: u64) {
        match *s {
            Step::Set(k, v) => {
                m.set(&key(k), &vec![v; usize::from(v)], version);
            }
            Step::Remove(k) => {
                m.remove(&key(k));
            }
            Step::Pull(_) => {}
        }
    }

    proptest! {
        /// A capture interleaved with sets (in place, resized, new keys), removals (which move the
        /// last slot) and chunk pulls gives exactly the map at the capture, in its slot order; the
        /// map itself ends as the writes made it; and once the capture ends, nothing is kept.
        #[test]
        fn a_capture_gives_the_map_at_the_capture(
            before in proptest::collection::vec(step(), 0..60),
            during in proptest::collection::vec(step(), 0..120),
        ) {
            let mut m = KeyMap::default();
            let mut version = 0;
            for s in &before {
                version += 1;
                apply(&mut m, s, version);
            }
            let at_capture: Vec<Entry> =
                m.iter_slots().map(|(k, v, n)| (k.to_vec(), v.to_vec(), n)).collect();
            let mut model = m.clone();
            prop_assert_eq!(m.begin_capture(), at_capture.len());
            let mut taken = Vec::new();
            let mut done = false;
            for s in &during {
                version += 1;
                match *s {
                    Step::Pull(n) if !done => done = m.capture_chunk(&mut taken, usize::from(n)),
                    _ => {
                        apply(&mut m, s, version);
                        apply(&mut model, s, version);
                    }
                }
            }
            while !done {
                done = m.capture_chunk(&mut taken, 3);
            }
            prop_assert!(m.capture.is_none(), "a finished capture ends");
            let got: Vec<Entry> = taken
                .iter()
                .map(|b| (key_of(b).to_vec(), value_of(b).to_vec(), version_of(b)))
                .collect();
            prop_assert_eq!(got, at_capture);
            drop(taken);
            let now: Vec<Entry> = m.iter_slots().map(|(k, v, n)| (k.to_vec(), v.to_vec(), n)).collect();
            let want: Vec<Entry> = model.iter_slots().map(|(k, v, n)| (k.to_vec(), v.to_vec(), n)).collect();
            prop_assert_eq!(now, want, "the capture changes nothing in the map, slot order included");
        }

        /// A map loaded in a snapshot's (slot) order has the same slot order as the map that
        /// wrote it, so the two write the same snapshot after the same writes.
        #[test]
        fn a_map_loaded_in_slot_order_keeps_the_layout(
            before in proptest::collection::vec(step(), 0..80),
            after in proptest::collection::vec(step(), 0..80),
        ) {
            let mut m = KeyMap::default();
            let mut version = 0;
            for s in &before {
                version += 1;
                apply(&mut m, s, version);
            }
            let mut loaded = KeyMap::default();
            for (k, v, n) in m.iter_slots() {
                loaded.set(k, v, n);
            }
            for s in &after {
                version += 1;
                apply(&mut m, s, version);
                apply(&mut loaded, s, version);
            }
            let a: Vec<Entry> = m.iter_slots().map(|(k, v, n)| (k.to_vec(), v.to_vec(), n)).collect();
            let b: Vec<Entry> = loaded.iter_slots().map(|(k, v, n)| (k.to_vec(), v.to_vec(), n)).collect();
            prop_assert_eq!(a, b);
        }
    }

    /// Pre-images cost only what changed: a capture of a map nobody writes keeps nothing, and a
    /// chunk holds at most what was asked.
    #[test]
    fn an_unchanged_map_keeps_no_pre_image() {
        let mut m = KeyMap::default();
        for i in 0..100u32 {
            m.set(&i.to_le_bytes(), b"v", u64::from(i) + 1);
        }
        m.begin_capture();
        let mut chunk = Vec::new();
        assert!(!m.capture_chunk(&mut chunk, 40));
        assert_eq!(chunk.len(), 40);
        m.set(&50u32.to_le_bytes(), b"w", 1000);
        m.set(&10u32.to_le_bytes(), b"w", 1001);
        assert_eq!(m.capture.as_ref().unwrap().kept.len(), 1, "only the slot ahead of the cursor");
        chunk.clear();
        assert!(!m.capture_chunk(&mut chunk, 40));
        assert_eq!(m.capture.as_ref().unwrap().kept.len(), 0, "taken, freed");
        assert_eq!(value_of(&chunk[10]), b"v");
        chunk.clear();
        assert!(m.capture_chunk(&mut chunk, 40));
        assert_eq!(chunk.len(), 20);
        m.end_capture();
    }
}

//! A fixed-capacity table of requests waiting for their outcome, addressed by a `u64` token.
//!
//! Proposals carry a token as their Raft context; forwarded requests carry one as their envelope's
//! correlation. The table is allocated once; a full table is back-pressure (`insert` hands the item
//! back), never growth. Tokens carry a generation so that a token that was already taken (or a
//! token from before a slot's reuse) finds nothing instead of someone else's request.
//!
//! Invariants: at most `capacity` items; each inserted item is taken at most once.

/// Items waiting, each under a token.
#[derive(Debug)]
pub struct Waiters<T> {
    slots: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
}

impl<T> Waiters<T> {
    /// A table of `capacity` slots (at least 1).
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0 && capacity <= u32::MAX as usize);
        let slots = (0..capacity).map(|_| (0u32, None)).collect();
        let free = (0..capacity as u32).rev().collect();
        Self { slots, free }
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether another insert would be refused.
    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Stores `item`; its token, or the item back when the table is full.
    pub fn insert(&mut self, item: T) -> Result<u64, T> {
        let Some(slot) = self.free.pop() else { return Err(item) };
        let entry = &mut self.slots[slot as usize];
        entry.0 = entry.0.wrapping_add(1);
        entry.1 = Some(item);
        Ok(u64::from(entry.0) << 32 | u64::from(slot))
    }

    /// Takes the item under `token`, if it is still there.
    pub fn take(&mut self, token: u64) -> Option<T> {
        let slot = (token & u64::from(u32::MAX)) as usize;
        let generation = (token >> 32) as u32;
        let entry = self.slots.get_mut(slot)?;
        if entry.0 != generation {
            return None;
        }
        let item = entry.1.take()?;
        self.free.push(slot as u32);
        Some(item)
    }

    /// The item under `token`, if it is still there, to change it in place.
    pub fn get_mut(&mut self, token: u64) -> Option<&mut T> {
        let slot = (token & u64::from(u32::MAX)) as usize;
        let entry = self.slots.get_mut(slot)?;
        if entry.0 != (token >> 32) as u32 {
            return None;
        }
        entry.1.as_mut()
    }

    /// Takes every item (in slot order), e.g. to fail them all.
    pub fn drain(&mut self, mut f: impl FnMut(T)) {
        for (slot, entry) in self.slots.iter_mut().enumerate() {
            if let Some(item) = entry.1.take() {
                self.free.push(slot as u32);
                f(item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_single_use_and_the_table_is_bounded() {
        let mut w = Waiters::new(2);
        let a = w.insert("a").unwrap();
        let b = w.insert("b").unwrap();
        assert_eq!(w.insert("c"), Err("c"));
        assert_eq!(w.take(a), Some("a"));
        assert_eq!(w.take(a), None, "taken once");
        let c = w.insert("c").unwrap();
        assert_ne!(c, a, "a reused slot gets a new generation");
        assert_eq!(w.take(a), None, "an old token does not find the new item");
        let mut rest = Vec::new();
        w.drain(|x| rest.push(x));
        assert_eq!(rest.len(), 2);
        assert!(w.is_empty());
        assert_eq!(w.take(b), None);
    }
}

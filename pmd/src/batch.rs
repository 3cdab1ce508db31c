//! A bounded batch: a vector whose capacity is fixed at construction and never grows.
//!
//! Invariant: `len() <= capacity()` always, and pushing never reallocates; a push into a full batch
//! hands the item back instead (the caller counts it as a drop). This is how "every queue, pool and
//! batch has a named limit" is kept on the hot path.

/// Fixed-capacity batch of items (datagrams, mbufs) moved between pipeline stages.
#[derive(Debug)]
pub struct Batch<T> {
    items: Vec<T>,
    capacity: usize,
}

impl<T> Batch<T> {
    /// Allocates room for `capacity` items once; later pushes never allocate.
    pub fn with_capacity(capacity: usize) -> Self {
        assert!(capacity > 0, "a batch needs room for at least one item");
        Self { items: Vec::with_capacity(capacity), capacity }
    }

    /// Appends `item`, or returns it when the batch is full.
    #[inline]
    pub fn push(&mut self, item: T) -> Result<(), T> {
        if self.items.len() == self.capacity {
            return Err(item);
        }
        self.items.push(item);
        Ok(())
    }

    /// Number of items held.
    #[inline]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no item is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The fixed capacity.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Room left before the batch is full.
    #[inline]
    pub fn room(&self) -> usize {
        self.capacity - self.items.len()
    }

    /// Removes and yields every item, front to back; the capacity stays.
    #[inline]
    pub fn drain(&mut self) -> std::vec::Drain<'_, T> {
        self.items.drain(..)
    }

    /// Drops the first `n` items (those a backend has taken), keeping the rest in order.
    #[inline]
    pub fn consume_front(&mut self, n: usize) -> std::vec::Drain<'_, T> {
        self.items.drain(..n)
    }

    /// Drops every item.
    #[inline]
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// The items as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        &self.items
    }

    /// The items as a mutable slice.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_past_capacity_hands_item_back_without_growing() {
        let mut b = Batch::with_capacity(2);
        assert!(b.push(1).is_ok());
        assert!(b.push(2).is_ok());
        assert_eq!(b.push(3), Err(3));
        assert_eq!(b.len(), 2);
        assert_eq!(b.items.capacity(), 2);
        let got: Vec<_> = b.drain().collect();
        assert_eq!(got, vec![1, 2]);
        assert!(b.is_empty());
        assert_eq!(b.room(), 2);
    }

    #[test]
    fn consume_front_keeps_the_tail_in_order() {
        let mut b = Batch::with_capacity(4);
        for i in 0..4 {
            b.push(i).unwrap();
        }
        assert_eq!(b.consume_front(3).count(), 3);
        assert_eq!(b.as_slice(), &[3]);
    }
}

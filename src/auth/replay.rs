//! The replay window of one (key, client id): the highest nonce accepted and which of the
//! [`WINDOW_NONCES`] nonces below it were (IPsec's and WireGuard's sliding bitmap, RFC 6479).
//!
//! A nonce above the highest is new (the window slides up); one inside the window is new if its
//! bit is clear; one below the window is refused, as one whose bit is set. Together with the
//! timestamp bound (`auth.replay_window_ms`) this refuses every datagram seen before, while one
//! client may send up to [`WINDOW_NONCES`] datagrams ahead of an earlier one that is still on its
//! way (reordering).

/// Nonces the window remembers below the highest.
pub const WINDOW_NONCES: u64 = 1024;
const WORDS: usize = (WINDOW_NONCES / 64) as usize;

/// One window: 136 bytes, made only when its (key, client) first sends.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    highest: u64,
    bits: [u64; WORDS],
    /// The newest timestamp accepted (Unix ms): the window may be forgotten once it is older than
    /// the timestamp bound, since every datagram it saw is then refused by that bound.
    pub newest_ms: u64,
}

impl ReplayWindow {
    /// A window whose first datagram has this nonce (marked seen).
    pub fn first(nonce: u64, timestamp_ms: u64) -> Self {
        let mut w = Self { highest: nonce, bits: [0; WORDS], newest_ms: timestamp_ms };
        w.set(nonce);
        w
    }

    fn bit(nonce: u64) -> (usize, u64) {
        let i = nonce % WINDOW_NONCES;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    fn set(&mut self, nonce: u64) {
        let (w, b) = Self::bit(nonce);
        self.bits[w] |= b;
    }

    /// Accepts `nonce` (marking it) if it was not seen; false for a replay or one too old.
    pub fn accept(&mut self, nonce: u64, timestamp_ms: u64) -> bool {
        if nonce > self.highest {
            let ahead = nonce - self.highest;
            if ahead >= WINDOW_NONCES {
                self.bits = [0; WORDS];
            } else {
                // Clear the bits of the nonces the window slides over.
                for n in self.highest + 1..nonce {
                    let (w, b) = Self::bit(n);
                    self.bits[w] &= !b;
                }
            }
            self.highest = nonce;
            self.set(nonce);
        } else {
            if self.highest - nonce >= WINDOW_NONCES {
                return false;
            }
            let (w, b) = Self::bit(nonce);
            if self.bits[w] & b != 0 {
                return false;
            }
            self.bits[w] |= b;
        }
        self.newest_ms = self.newest_ms.max(timestamp_ms);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_repeats_and_old_nonces() {
        let mut w = ReplayWindow::first(100, 0);
        assert!(!w.accept(100, 0));
        assert!(w.accept(102, 0));
        assert!(w.accept(101, 0), "reordered, not seen");
        assert!(!w.accept(101, 0));
        assert!(w.accept(100 + WINDOW_NONCES + 5, 0));
        assert!(!w.accept(100, 0), "below the window");
        assert!(w.accept(106 + 1, 0), "inside the window, not seen");
        assert!(!w.accept(u64::MAX - 1, 0) || w.accept(u64::MAX, 0));
    }

    #[test]
    fn sliding_clears_old_bits() {
        let mut w = ReplayWindow::first(0, 0);
        for n in 1..5000 {
            assert!(w.accept(n, 0));
        }
        for n in 5000 - WINDOW_NONCES + 1..5000 {
            assert!(!w.accept(n, 0), "{n} was seen");
        }
        assert!(w.accept(5000 + 3, 0));
        assert!(w.accept(5000 + 1, 0), "slid over, never seen");
    }
}

//! Whether each peer node is alive, from the datagrams it sends: one node-level signal that
//! stands in for the heartbeats of every quiesced Raft group (`crate::partition`'s
//! `quiesce.rs`). A sender's outbox sends a keepalive frame to a peer it sent nothing to for
//! `keepalive_ns` (`PeerOutbox::keep_alive`); the receiver's inbox records every datagram that
//! passed its datagram-level checks (`heard`). A peer not heard from for `silence_ns`, or heard
//! from with a new incarnation (it restarted, and lost whatever leadership it held), is lost
//! (`take_lost`): the groups it led quietly wake and elect as if they had been ticking.
//!
//! Invariants: a silence is reported once, until the peer is heard from again; a peer never heard
//! from is never reported (no group can have quiesced under it); a change of incarnation is always
//! reported (an old incarnation's late datagram costs a spurious wake-up, never a missed one).

/// What is known of one peer.
#[derive(Clone, Copy, Debug, Default)]
struct Heard {
    /// When it was last heard from (ns), if ever.
    at: Option<u64>,
    incarnation: u64,
    /// Its silence was reported (and it has not been heard from since).
    silent: bool,
    /// It restarted since the last `take_lost`.
    restarted: bool,
}

/// The liveness of a node's peers (see the module header).
#[derive(Clone, Debug)]
pub struct Liveness {
    peers: Vec<(u64, Heard)>,
    silence_ns: u64,
}

impl Liveness {
    /// Liveness of `peers`, each lost after `silence_ns` without a datagram.
    pub fn new(peers: &[u64], silence_ns: u64) -> Self {
        Self { peers: peers.iter().map(|&id| (id, Heard::default())).collect(), silence_ns }
    }

    /// A datagram from `node`, of its start `incarnation`, arrived at `now_ns`.
    pub fn heard(&mut self, node: u64, incarnation: u64, now_ns: u64) {
        let Some((_, h)) = self.peers.iter_mut().find(|(id, _)| *id == node) else { return };
        if h.at.is_some() && h.incarnation != incarnation {
            h.restarted = true;
        }
        *h = Heard { at: Some(now_ns), incarnation, silent: false, restarted: h.restarted };
    }

    /// Calls `lost` with each peer that restarted, or fell silent at `now_ns`, since the last call.
    pub fn take_lost(&mut self, now_ns: u64, lost: &mut dyn FnMut(u64)) {
        for (id, h) in &mut self.peers {
            let silent = h.at.is_some_and(|at| now_ns.saturating_sub(at) >= self.silence_ns);
            if h.restarted || (silent && !h.silent) {
                h.restarted = false;
                h.silent |= silent;
                lost(*id);
            }
        }
    }

    /// Whether `node` was heard from within `silence_ns` of `now_ns`.
    pub fn is_alive(&self, node: u64, now_ns: u64) -> bool {
        self.peers
            .iter()
            .any(|(id, h)| *id == node && h.at.is_some_and(|at| now_ns.saturating_sub(at) < self.silence_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost_at(l: &mut Liveness, now: u64) -> Vec<u64> {
        let mut out = Vec::new();
        l.take_lost(now, &mut |n| out.push(n));
        out
    }

    #[test]
    fn a_silence_is_reported_once_and_a_restart_always() {
        let mut l = Liveness::new(&[2, 3], 100);
        assert!(lost_at(&mut l, 1_000).is_empty(), "never heard from: never lost");
        l.heard(2, 7, 1_000);
        l.heard(3, 9, 1_000);
        assert!(lost_at(&mut l, 1_099).is_empty());
        assert!(l.is_alive(2, 1_099));
        assert_eq!(lost_at(&mut l, 1_100), vec![2, 3]);
        assert!(!l.is_alive(2, 1_100));
        assert!(lost_at(&mut l, 5_000).is_empty(), "once per silence");
        l.heard(2, 7, 5_000);
        assert!(lost_at(&mut l, 5_050).is_empty(), "heard again: alive");
        l.heard(2, 8, 5_060);
        assert_eq!(lost_at(&mut l, 5_061), vec![2], "a new incarnation: it restarted");
        assert!(lost_at(&mut l, 5_062).is_empty());
        l.heard(4, 1, 5_000);
        assert!(lost_at(&mut l, 9_000).len() == 1, "an unknown sender is ignored; 2 is silent again");
    }
}

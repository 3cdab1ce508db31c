//! Whether each peer node is alive, from the datagrams it sends: one node-level signal that
//! stands in for the heartbeats of every quiesced Raft group (`crate::partition`'s
//! `quiesce.rs`). A sender's outbox sends a keepalive frame to a peer it sent nothing to for
//! `keepalive_ns` (`PeerOutbox::keep_alive`); the receiver's inbox records every datagram that
//! passed its datagram-level checks (`heard`). A peer not heard from for `silence_ns`, or heard
//! from with a new incarnation (it restarted, and lost whatever leadership it held), is lost: the
//! groups it led quietly wake and elect as if they had been ticking. A peer heard from again
//! after a silence, or restarted, is back: the quiet groups this node leads wake to catch it up
//! (it may have missed entries, or a term). `take_changes` reports both.
//!
//! Invariants: a silence is reported once, and its end once; a peer never heard from is never
//! reported lost (no group can have quiesced under it); a change of incarnation is always
//! reported, as lost then back (an old incarnation's late datagram costs a spurious wake-up,
//! never a missed one).

/// A change in a peer's liveness (`Liveness::take_changes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerChange {
    /// Silent for `silence_ns`, or restarted: what it led is lost.
    Lost(u64),
    /// Heard from again after a silence, or restarted: it may be behind.
    Back(u64),
}

/// What is known of one peer.
#[derive(Clone, Copy, Debug, Default)]
struct Heard {
    /// When it was last heard from (ns), if ever.
    at: Option<u64>,
    incarnation: u64,
    /// Its silence was reported (and it has not been heard from since).
    silent: bool,
    /// It restarted since the last `take_changes`.
    restarted: bool,
    /// It was heard from after a reported silence, not yet reported back.
    back: bool,
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
        let restarted = h.restarted || (h.at.is_some() && h.incarnation != incarnation);
        let back = h.back || h.silent;
        *h = Heard { at: Some(now_ns), incarnation, silent: false, restarted, back };
    }

    /// Calls `change` with each peer that restarted (`Lost` then `Back`), fell silent at `now_ns`
    /// (`Lost`), or was heard from after a silence (`Back`), since the last call.
    pub fn take_changes(&mut self, now_ns: u64, change: &mut dyn FnMut(PeerChange)) {
        for (id, h) in &mut self.peers {
            let silent = h.at.is_some_and(|at| now_ns.saturating_sub(at) >= self.silence_ns);
            if h.restarted || (silent && !h.silent) {
                h.silent |= silent;
                change(PeerChange::Lost(*id));
            }
            if std::mem::take(&mut h.restarted) | std::mem::take(&mut h.back) && !h.silent {
                change(PeerChange::Back(*id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes_at(l: &mut Liveness, now: u64) -> Vec<PeerChange> {
        let mut out = Vec::new();
        l.take_changes(now, &mut |c| out.push(c));
        out
    }

    #[test]
    fn a_silence_and_its_end_are_reported_once_and_a_restart_always() {
        use PeerChange::{Back, Lost};
        let mut l = Liveness::new(&[2, 3], 100);
        assert!(changes_at(&mut l, 1_000).is_empty(), "never heard from: never lost");
        l.heard(2, 7, 1_000);
        l.heard(3, 9, 1_000);
        assert!(changes_at(&mut l, 1_099).is_empty(), "first heard: not back from anything");
        assert_eq!(changes_at(&mut l, 1_100), vec![Lost(2), Lost(3)]);
        assert!(changes_at(&mut l, 5_000).is_empty(), "once per silence");
        l.heard(2, 7, 5_000);
        assert_eq!(changes_at(&mut l, 5_050), vec![Back(2)], "heard again: back, once");
        assert!(changes_at(&mut l, 5_051).is_empty());
        l.heard(2, 8, 5_060);
        assert_eq!(changes_at(&mut l, 5_061), vec![Lost(2), Back(2)], "a new incarnation: it restarted");
        assert!(changes_at(&mut l, 5_062).is_empty());
        l.heard(4, 1, 5_000);
        assert_eq!(
            changes_at(&mut l, 9_000),
            vec![Lost(2)],
            "an unknown sender is ignored; 2 is silent again"
        );
    }
}

//! The leader hint in a `NOT_LEADER` answer's body (`wire::LeaderHint`), as a client decodes it
//! from whatever a server, or something posing as one, sent.
//!
//! Checks: nothing panics; whatever decodes names a node, a port and a partition below the
//! partition count, and encodes back to exactly the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::wire::{LeaderHint, LEADER_HINT_LEN};

fuzz_target!(|body: &[u8]| {
    let Some(hint) = LeaderHint::decode(body) else { return };
    assert!(hint.node > 0 && hint.address.port() > 0 && hint.partition < hint.partitions);
    let mut again = [0u8; LEADER_HINT_LEN];
    assert_eq!(hint.encode(&mut again), LEADER_HINT_LEN);
    assert_eq!(&again[..], body, "a decoded hint encodes back to its bytes");
});

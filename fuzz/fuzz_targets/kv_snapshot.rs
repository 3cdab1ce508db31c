//! KV snapshot files (`KvProjection::restore`). Checks: nothing panics; a snapshot that restores
//! snapshots again to bytes that restore to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::kv::{KvLimits, KvProjection};

fuzz_target!(|data: &[u8]| {
    let _ = vigil::kv::snapshot::read_header(data);
    let Ok(kv) = KvProjection::restore(data, KvLimits::small()) else { return };
    let mut again = Vec::new();
    kv.snapshot(&mut again);
    let back = KvProjection::restore(&again, KvLimits::small()).expect("a fresh snapshot restores");
    let mut third = Vec::new();
    back.snapshot(&mut third);
    assert_eq!(again, third, "restore then snapshot is not stable");
});

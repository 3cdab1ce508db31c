//! Partition snapshot files (`projection::Router::restore`: `VGPS`, and the whole-KV `VGKV` files
//! of older builds). Checks: nothing panics; a snapshot that restores snapshots again to bytes that
//! restore to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::kv::KvLimits;
use vigil::projection::Router;

fuzz_target!(|data: &[u8]| {
    let _ = vigil::projection::snapshot::applied_lsn(data);
    let Ok(router) = Router::restore(data, KvLimits::small(), Vec::new()) else { return };
    let mut again = Vec::new();
    router.snapshot(&mut again);
    let back = Router::restore(&again, KvLimits::small(), Vec::new()).expect("a fresh snapshot restores");
    let mut third = Vec::new();
    back.snapshot(&mut third);
    assert_eq!(again, third, "restore then snapshot is not stable");
});

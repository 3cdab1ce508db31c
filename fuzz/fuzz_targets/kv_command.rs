//! KV commands as logged (`kv::Command::decode`) and their application through the router
//! (exactly-once, then the KV projection).
//! Checks: nothing panics; a payload that decodes re-encodes to exactly itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::kv::{Command, KvLimits};
use vigil::projection::Router;

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = Command::decode(data) {
        let mut out = vec![0u8; cmd.encoded_len()];
        assert_eq!(cmd.encode(&mut out), Ok(data.len()));
        assert_eq!(out, data, "a command that decoded does not re-encode to itself");
        let _ = cmd.digest();
    }
    let mut router = Router::new(KvLimits::small(), Vec::new());
    let _ = router.apply_entry(1, data, &mut |_, _| {});
    let _ = router.apply_entry(2, data, &mut |_, _| {});
});

//! KV commands as logged (`kv::Command::decode`) and their application to a projection.
//! Checks: nothing panics; a payload that decodes re-encodes to exactly itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::kv::{Command, KvLimits, KvProjection};

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = Command::decode(data) {
        let mut out = vec![0u8; cmd.encoded_len()];
        assert_eq!(cmd.encode(&mut out), Ok(data.len()));
        assert_eq!(out, data, "a command that decoded does not re-encode to itself");
        let _ = cmd.digest();
    }
    let mut kv = KvProjection::new(KvLimits::small());
    let _ = kv.apply_entry(1, data);
    let _ = kv.apply_entry(2, data);
});

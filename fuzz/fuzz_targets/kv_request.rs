//! KV request and answer bodies (`kv::protocol`): the first byte picks the opcode, the rest is the
//! body. Checks: nothing panics, and a body that parses re-encodes to exactly itself (no trailing
//! bytes, no short fields).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::kv::protocol::{encode_write_body, parse_answer, parse_get, parse_write, request_body_len};

fuzz_target!(|data: &[u8]| {
    let Some((&op, body)) = data.split_first() else { return };
    // 0x10 GET ..= 0x1a KEYS_COUNT (0x18 EXPIRE_DUE is no request: refused).
    let op = 0x10 + op % 11;
    if let Ok(cmd) = parse_write(op, 7, 9, body) {
        assert_eq!(cmd.op.opcode(), op);
        let mut out = vec![0u8; request_body_len(&cmd.op)];
        assert_eq!(encode_write_body(&cmd.op, &mut out), Ok(body.len()));
        assert_eq!(out, body, "a request body that parsed does not re-encode to itself");
        let _ = cmd.digest();
    }
    let _ = parse_get(body);
    let _ = parse_answer(op, body);
});

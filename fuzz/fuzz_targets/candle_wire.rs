//! The client body of a candle (`candle::wire::read`), as LIGHT carries it.
//! Checks: nothing panics; a body that reads re-writes to exactly itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::candle::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(candle) = wire::read(data) {
        let mut out = Vec::new();
        wire::write(&candle, &mut out);
        assert_eq!(out, data, "a body that read does not re-write to itself");
    }
});

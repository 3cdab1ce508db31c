//! The candle store's log commands (`candle::command::parse`): LIGHT (a slot and its overflow
//! values) and ROTATE, as a partition's log and its replicas read them back.
//! Checks: nothing panics; a LIGHT that parses re-writes to exactly itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::candle::command::{light_len, parse, write_light, CandleCommand};
use vigil::candle::Slot;

fuzz_target!(|data: &[u8]| {
    if let Ok(CandleCommand::Light(l)) = parse(data) {
        let mut out = vec![0u8; light_len(&l.overflow)];
        write_light(l.header, &Slot(*l.slot), l.overflow, &mut out);
        assert_eq!(out, data, "a LIGHT that parsed does not re-write to itself");
    }
});

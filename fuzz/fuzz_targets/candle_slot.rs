//! A candle slot and its overflow values (`candle::decode`): the first 128 bytes are the slot;
//! then, for each of the three text fields, a byte (odd: a value follows) and, if so, a u16 LE
//! length and the value.
//! Checks: nothing panics; a slot that decodes to a valid candle re-encodes to a slot that decodes
//! to the same candle.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::candle::{decode, encode, Date, Registry, Slot, TextCodec, SLOT_BYTES};

fn split(mut rest: &[u8]) -> [Option<&[u8]>; 3] {
    let mut out = [None; 3];
    for o in &mut out {
        let Some((&present, tail)) = rest.split_first() else { break };
        rest = tail;
        if present & 1 == 0 || rest.len() < 2 {
            continue;
        }
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        *o = Some(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < SLOT_BYTES {
        return;
    }
    let mut slot = Slot::empty();
    slot.0.copy_from_slice(&data[..SLOT_BYTES]);
    let overflow = split(&data[SLOT_BYTES..]);
    let mut codec = TextCodec::new(Registry::builtin());
    if let Ok(candle) = decode(&slot, overflow, &mut codec) {
        let today = Date::new(2079, 6, 6).expect("date");
        if let Ok(e) = encode(&candle, today, &mut codec) {
            let ov = e.overflow.each_ref().map(|o| o.as_deref());
            assert_eq!(decode(&e.slot, ov, &mut codec).as_ref(), Ok(&candle));
        }
    }
});

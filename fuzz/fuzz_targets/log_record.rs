//! Log records (`vigil::log::decode_record`): the first two bytes give the offset, the rest is the
//! block. Checks: nothing panics, whatever the bytes and the offset.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((off, block)) = data.split_first_chunk::<2>() else { return };
    let off = usize::from(u16::from_le_bytes(*off)) % (block.len() + 1);
    let _ = vigil::log::decode_record(block, off);
});

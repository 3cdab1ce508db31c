//! Superblock copies (`vigil::log::Superblock::decode_with_meta`). Checks: nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vigil::log::Superblock::decode_with_meta(data);
});

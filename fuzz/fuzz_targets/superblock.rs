//! The blocks that head a log device: superblock copies (`vigil::log::Superblock::decode_with_meta`)
//! and the device label of a store on a raw device or NVMe namespace (`vigil::log::DeviceLabel`).
//! Checks: nothing panics; a label that decodes encodes to a block that decodes to it again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vigil::log::Superblock::decode_with_meta(data);
    if let Ok(label) = vigil::log::DeviceLabel::decode(data) {
        assert_eq!(vigil::log::DeviceLabel::decode(&label.encode()), Ok(label));
    }
});

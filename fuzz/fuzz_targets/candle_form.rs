//! The candle page's form (`candle::form`): any urlencoded body a browser or a hostile client
//! posts to the web port, read and checked.
//! Checks: nothing panics; a form that checks out is a candle that validates and encodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::candle::form::Form;
use vigil::candle::{encode, Date, Registry, TextCodec};

fuzz_target!(|data: &[u8]| {
    let today = Date::new(2026, 12, 5).expect("a date");
    if let Ok(candle) = Form::parse(data).candle(today) {
        let mut codec = TextCodec::new(Registry::builtin());
        encode(&candle, today, &mut codec).expect("a checked form encodes");
    }
});

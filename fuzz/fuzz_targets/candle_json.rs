//! The JSON body of `POST /candles` (`conn::candle_json`): any bytes a client posts, read the
//! borrowed way (no allocation) and the owned way (`serde_json::Value`).
//! Checks: nothing panics; whatever the borrowed reading takes, the owned reading takes too and
//! gives the same answer: the same validation error, or the same client body for the shard (the
//! borrowed way is only a faster road to it; an unknown state may keep its case one way and not
//! the other, and is refused either way).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::candle::{wire, Date};
use vigil::conn::candle_json::{read, read_owned, Borrowed};

fuzz_target!(|data: &[u8]| {
    let owned = read_owned(data);
    if let Borrowed::Candle(borrowed) = read(data) {
        let owned = owned.expect("a body read the borrowed way reads the owned way");
        let today = Date::new(2026, 12, 5).expect("a date");
        match (owned.validate(today), borrowed.validate(today)) {
            (Ok(_), Ok(_)) => {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                wire::write(&owned, &mut a);
                wire::write_ref(&borrowed, &mut b);
                assert_eq!(a, b, "both ways give the same body");
            }
            (Err(a), Err(b)) => assert_eq!(a.field_name(), b.field_name(), "both ways refuse the same field"),
            (a, b) => panic!("one way validates and the other does not: {a:?} / {b:?}"),
        }
    }
});

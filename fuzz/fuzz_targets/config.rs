//! Configuration text (`Config::parse`: TOML, then every limit and cross-key rule). Checks: nothing
//! panics; a configuration that validates has usable KV limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = Config::parse(text) {
        assert!(config.kv.limits().validate().is_ok());
    }
});

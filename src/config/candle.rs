//! `[candle]`: the candle store (seed 000, `crate::candle`): whether partitions run it, and the
//! limits of its ring of seven daily buckets, the same on every replica (a LIGHT past a limit is
//! answered FULL, never partially applied).

use super::{invalid, ConfigError};
use crate::candle::CandleLimits;
use serde::{Deserialize, Serialize};

/// The candle store's settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CandleConfig {
    /// Run the candle projection in every partition. Once a partition's snapshot holds a candle
    /// section, a start with it off is refused (the section names a projection it does not run).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Candles one partition stores per day (a day's bucket); 128 bytes each, kept seven days
    /// (default 524,288: 3.7 M live candles a partition, 448 MiB of slots).
    #[serde(default = "candles_per_day_max")]
    pub candles_per_day_max: u32,
    /// Bytes of overflow values (compressed text that did not fit its slot, 2 bytes of length
    /// each) one text field stores per partition per day; at most 16 MiB (a slot's 3-byte offset),
    /// default 8 MiB.
    #[serde(default = "overflow_bytes_per_field_day_max")]
    pub overflow_bytes_per_field_day_max: u32,
    /// Candles one LIST page gives at most.
    #[serde(default = "list_page_max")]
    pub list_page_max: u16,
}

fn yes() -> bool {
    true
}
fn candles_per_day_max() -> u32 {
    1 << 19
}
fn overflow_bytes_per_field_day_max() -> u32 {
    8 << 20
}
fn list_page_max() -> u16 {
    100
}

impl Default for CandleConfig {
    fn default() -> Self {
        Self {
            enabled: yes(),
            candles_per_day_max: candles_per_day_max(),
            overflow_bytes_per_field_day_max: overflow_bytes_per_field_day_max(),
            list_page_max: list_page_max(),
        }
    }
}

impl CandleConfig {
    /// The ring's limits.
    pub fn limits(&self) -> CandleLimits {
        CandleLimits {
            candles_per_day_max: self.candles_per_day_max,
            overflow_bytes_per_field_day_max: self.overflow_bytes_per_field_day_max,
            list_page_max: self.list_page_max,
        }
    }

    /// Checks the limits.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.limits().validate().map_err(|why| {
            let key = match why {
                w if w.starts_with("candles_per_day_max") => "candle.candles_per_day_max",
                w if w.starts_with("overflow") => "candle.overflow_bytes_per_field_day_max",
                _ => "candle.list_page_max",
            };
            invalid(key, why)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_limit_is_checked() {
        assert!(CandleConfig::default().validate().is_ok());
        let bad = [
            (CandleConfig { candles_per_day_max: 0, ..Default::default() }, "candle.candles_per_day_max"),
            (
                CandleConfig { overflow_bytes_per_field_day_max: (16 << 20) + 1, ..Default::default() },
                "candle.overflow_bytes_per_field_day_max",
            ),
            (CandleConfig { list_page_max: 0, ..Default::default() }, "candle.list_page_max"),
        ];
        for (config, key) in bad {
            match config.validate() {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{other:?}"),
            }
        }
    }
}

//! `[metrics]`: the Prometheus endpoint (`/metrics`, 9001 in the dev config) and how often each
//! shard publishes its counters for it (docs/OPERATIONS.md, "Metrics").

use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};
use std::net::SocketAddrV4;

/// The shortest publish interval: a shard copies its counters at most this often.
pub const PUBLISH_MS_MIN: u64 = 10;

/// The metrics endpoint.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Addresses `/metrics` is served on (plain HTTP, by a thread of its own, never a shard);
    /// empty (the default): no endpoint, and the shards publish nothing.
    #[serde(default)]
    pub listen: Vec<SocketAddrV4>,
    /// How often each shard publishes a copy of its counters, in ms (what a scrape sees is at
    /// most this old).
    #[serde(default = "publish_ms")]
    pub publish_ms: u64,
    /// The largest request head the endpoint reads; a longer one is answered 431.
    #[serde(default = "request_bytes_max")]
    pub request_bytes_max: usize,
}

fn publish_ms() -> u64 {
    250
}

fn request_bytes_max() -> usize {
    8192
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { listen: Vec::new(), publish_ms: publish_ms(), request_bytes_max: request_bytes_max() }
    }
}

impl MetricsConfig {
    /// Whether the endpoint is on.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.publish_ms < PUBLISH_MS_MIN || self.publish_ms > 60_000 {
            return Err(invalid(
                "metrics.publish_ms",
                format!("{} is not {PUBLISH_MS_MIN} ..= 60000", self.publish_ms),
            ));
        }
        if !(256..=1 << 20).contains(&self.request_bytes_max) {
            return Err(invalid("metrics.request_bytes_max", "must be 256 ..= 1048576"));
        }
        Ok(())
    }
}

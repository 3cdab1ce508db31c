//! `[log]`: the level of the node's log lines (docs/OPERATIONS.md, "Logs"). `RUST_LOG`, when set,
//! overrides it with any `tracing` filter (`RUST_LOG=vigil=debug`).

use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};

/// The levels a config may name, least to most verbose.
pub const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// The node's log.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The most verbose level written: `error`, `warn`, `info` (the default: starts, stops,
    /// recoveries, leadership; nothing per request), `debug` or `trace`.
    #[serde(default = "info")]
    pub level: String,
}

fn info() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: info() }
    }
}

impl LogConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !LEVELS.contains(&self.level.as_str()) {
            return Err(invalid("log.level", format!("{:?} is not one of {LEVELS:?}", self.level)));
        }
        Ok(())
    }
}

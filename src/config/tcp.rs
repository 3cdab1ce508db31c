//! `[tcp]`: the stream side of the data plane on port 9000 (RESP and the binary protocol over TCP;
//! docs/CLIENTS.md), served by an acceptor thread and the shards' poll loops.
//!
//! Every limit here is a bound the shards allocate to or enforce; nothing grows past them.

use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};
use std::net::SocketAddrV4;

/// The TCP listeners and the limits of their connections.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// Serve TCP at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Addresses to listen on; empty: the kernel backend's `kernel.bind_ip` at `net.port` (the
    /// DPDK backend needs them listed: its port is not the kernel's).
    #[serde(default)]
    pub listen: Vec<SocketAddrV4>,
    /// Addresses of the web port (9002 in the dev config): the candle page at `/candles`, plain
    /// HTTP for browsers (no protocol detection); empty: no web port.
    #[serde(default)]
    pub web_listen: Vec<SocketAddrV4>,
    /// Candles the page shows (the most recent of each partition, up to this many in all).
    #[serde(default = "page_candles_max")]
    pub page_candles_max: usize,
    /// Connections one shard holds at once; the acceptor refuses more (counted).
    #[serde(default = "connections_per_shard_max")]
    pub connections_per_shard_max: usize,
    /// Bytes of one request a connection may buffer (its largest command); past it the connection
    /// gets an error and is closed.
    #[serde(default = "input_bytes_max")]
    pub input_bytes_max: usize,
    /// Unsent answer bytes past which a connection's requests wait for the client to read.
    #[serde(default = "output_bytes_max")]
    pub output_bytes_max: usize,
    /// Commands one RESP connection (or requests one HTTP connection) may have in flight
    /// (pipelined, waiting for their answers); past it the connection's input waits.
    #[serde(default = "pipeline_max")]
    pub pipeline_max: usize,
    /// Connections accepted but not yet classified (their first bytes not in), at once.
    #[serde(default = "pending_max")]
    pub pending_max: usize,
    /// How long a new connection may take to send its first bytes before it is closed, in ms.
    #[serde(default = "first_bytes_timeout_ms")]
    pub first_bytes_timeout_ms: u64,
    /// The password RESP clients give with `AUTH` or `HELLO ... AUTH` (Redis's `requirepass`);
    /// empty: no password.
    #[serde(default)]
    pub requirepass: String,
}

fn yes() -> bool {
    true
}
fn page_candles_max() -> usize {
    120
}
fn connections_per_shard_max() -> usize {
    10_240
}
fn input_bytes_max() -> usize {
    1 << 20
}
fn output_bytes_max() -> usize {
    1 << 20
}
fn pipeline_max() -> usize {
    1024
}
fn pending_max() -> usize {
    1024
}
fn first_bytes_timeout_ms() -> u64 {
    10_000
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: Vec::new(),
            web_listen: Vec::new(),
            page_candles_max: page_candles_max(),
            connections_per_shard_max: connections_per_shard_max(),
            input_bytes_max: input_bytes_max(),
            output_bytes_max: output_bytes_max(),
            pipeline_max: pipeline_max(),
            pending_max: pending_max(),
            first_bytes_timeout_ms: first_bytes_timeout_ms(),
            requirepass: String::new(),
        }
    }
}

impl TcpConfig {
    /// Checks the limits.
    pub(super) fn validate(&self, datagram_bytes_max: usize) -> Result<(), ConfigError> {
        if !(1..=1_000_000).contains(&self.connections_per_shard_max) {
            return Err(invalid("tcp.connections_per_shard_max", "must be in 1..=1000000"));
        }
        if self.input_bytes_max < datagram_bytes_max + 4 || self.input_bytes_max > 512 << 20 {
            return Err(invalid(
                "tcp.input_bytes_max",
                format!(
                    "{} must hold a datagram and its length ({} bytes) and be at most 512 MiB",
                    self.input_bytes_max,
                    datagram_bytes_max + 4
                ),
            ));
        }
        if self.output_bytes_max < 2 * datagram_bytes_max || self.output_bytes_max > 512 << 20 {
            return Err(invalid(
                "tcp.output_bytes_max",
                format!(
                    "must be at least two datagrams ({} bytes) and at most 512 MiB",
                    2 * datagram_bytes_max
                ),
            ));
        }
        if !(1..=10_000).contains(&self.page_candles_max) {
            return Err(invalid("tcp.page_candles_max", "must be in 1..=10000"));
        }
        if !(1..=65_536).contains(&self.pipeline_max) {
            return Err(invalid("tcp.pipeline_max", "must be in 1..=65536"));
        }
        if !(1..=1_000_000).contains(&self.pending_max) {
            return Err(invalid("tcp.pending_max", "must be in 1..=1000000"));
        }
        if !(1..=3_600_000).contains(&self.first_bytes_timeout_ms) {
            return Err(invalid("tcp.first_bytes_timeout_ms", "must be in 1..=3600000"));
        }
        Ok(())
    }
}

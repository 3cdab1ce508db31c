//! Live metrics: what each shard counted, published while it runs, and their Prometheus text.
//!
//! - `latency.rs`: `Latency`, an HDR histogram of durations the shard records into (no
//!   allocation per value) and the metrics thread reads buckets and quantiles from.
//! - `stats.rs`: `ShardStats`, a plain copy of a shard's counters, its partitions' state and its
//!   latency histograms, taken on the shard's own thread (`ShardStats::collect`).
//! - `requests.rs`: `RequestLatencies`, each request's time from its shard taking it in to its
//!   answer, by protocol and opcode (the engine counts, the shard loop gives the times).
//! - `api.rs`: the operators' JSON API on the web port, rendered from the board;
//! - `history.rs`: the dashboard's last minute (rates, window quantiles) from two snapshots;
//! - `dashboard/`: the dashboard page at `/` on the web port, rendered once a second;
//! - `admin.rs`: the admin operations' token check, mailbox to the shards, log filter seam;
//! - `board.rs`: `StatsBoard`, one slot per shard holding its latest `ShardStats` behind an
//!   `ArcSwap`: the shard stores a new snapshot every `metrics.publish_ms` and readers load the
//!   latest, neither ever waiting for the other.
//! - `families.rs`: the metric families, a collector over one scrape's snapshots;
//! - `prom.rs`: the node's metrics as Prometheus text (the `prometheus-client` crate's encoder
//!   over a custom collector that reads the snapshots: its own histogram type takes a lock per
//!   observation, which the shards must not).
//!
//! Invariants: nothing here runs per request except `Latency::record` (an array increment) and
//! `RequestLatencies::answered_now` (a counter increment);
//! the shard's counters are plain shard-local integers (no atomic read-modify-write, no lock on
//! the shard's path); a snapshot is published whole (readers see one shard's counters from one
//! moment); nothing here reads a clock or does I/O (the caller passes the time and the process
//! figures in).

pub mod admin;
pub mod api;
pub mod board;
pub mod dashboard;
mod families;
mod families_auth;
pub mod history;
pub mod latency;
pub mod prom;
pub mod requests;
pub mod stats;

pub use board::StatsBoard;
pub use latency::Latency;
pub use requests::{Protocol, RequestLatencies, RequestStats};
pub use stats::{PartitionStats, PartitionTotals, PeerStats, ShardStats};

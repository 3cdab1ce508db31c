//! The node's metrics as Prometheus text (OpenMetrics, as `prometheus-client` writes it): a
//! custom collector over the shards' latest snapshots, encoded at each scrape.
//!
//! Names and units by Prometheus conventions: every name starts `vigil_` (the process's own
//! `process_`), counters end `_total` (the encoder adds it), durations are `_seconds`, sizes
//! `_bytes`. Labels: `shard`, `partition`, and `reason` / `cause` / `status` / `opcode` where a
//! counter is split. docs/OPERATIONS.md lists every family.
//!
//! Invariants: a family is written once with all its samples (one descriptor, then one sample per
//! label set); nothing here fails but the `fmt::Write` of the encoder.

use super::families::NodeCollector;
use super::ShardStats;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::Arc;

/// The upper bounds of the latency histograms' buckets, seconds.
pub const LATENCY_BUCKETS_S: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// What the process itself reports (read by the metrics thread, outside `src/`'s sans-IO core).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessStats {
    /// Resident and virtual memory, bytes.
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    /// When the process started, Unix seconds.
    pub start_time_s: f64,
    /// How long the start took, from the process's start to every shard serving, seconds.
    pub start_duration_s: f64,
    /// Scrapes of `/metrics` refused 401 (no `admin.read_token`): the endpoint's own count.
    pub metrics_unauthorized: u64,
}

/// A DPDK port's counters at a scrape (`rte_eth_stats_get` and the driver's xstats).
#[derive(Clone, Debug, Default)]
pub struct PortReport {
    /// Frames and bytes in and out.
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Drops and errors by reason (`imissed`, `ierrors`, `oerrors`, `rx_nombuf`).
    pub dropped: Vec<(&'static str, u64)>,
    /// The driver's extended counters, by name.
    pub xstats: Vec<(String, u64)>,
}

/// Writes the node's metrics, from `shards` (the board's latest), `process` and the DPDK `port`
/// (on that backend), into `out`.
pub fn render(
    shards: Vec<Arc<ShardStats>>,
    process: ProcessStats,
    port: Option<PortReport>,
    out: &mut String,
) -> fmt::Result {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(NodeCollector { shards, process, port }));
    prometheus_client::encoding::text::encode(out, &registry)
}

/// The content type of `render`'s text (OpenMetrics).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of `to_prometheus_text`'s (the Prometheus text format, 0.0.4).
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a request's `Accept` header asks for OpenMetrics (Prometheus's scraper does; a
/// browser, curl and `promtool` do not).
pub fn wants_openmetrics(accept: &str) -> bool {
    accept.contains("application/openmetrics-text")
}

/// `render`'s OpenMetrics text in the Prometheus text format (0.0.4), which `promtool check
/// metrics`, older scrapers and people read: a counter's family is named with its `_total`
/// (OpenMetrics names it without), and the `# UNIT` and `# EOF` lines go. Written here because
/// `prometheus-client` writes OpenMetrics only; the samples are the same lines.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + counters.len() * 16);
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let total = if counters.contains(name) { "_total" } else { "" };
                out.push_str(&format!("{kind}{name}{total} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PartitionStats;

    fn sample() -> Vec<Arc<ShardStats>> {
        let mut s = ShardStats { shard: 1, ..ShardStats::default() };
        s.shard_counters.rx_datagrams = 7;
        s.opcodes = vec![(0x11, "kv.set", 5)];
        s.partitions =
            vec![PartitionStats { id: 3, keys: 4, term: 2, is_leader: true, ..PartitionStats::default() }];
        for us in [10u64, 200, 3_000] {
            s.write_latency.record(us * 1_000);
        }
        let mut latency = crate::metrics::Latency::coarse();
        latency.record_n(40_000_000, 2);
        s.requests = vec![crate::metrics::RequestStats {
            protocol: crate::metrics::Protocol::Resp,
            opcode: 0x11,
            name: "kv.set",
            latency,
        }];
        vec![Arc::new(s)]
    }

    #[test]
    fn counters_gauges_and_a_cumulative_histogram_in_both_formats() {
        let mut om = String::new();
        let port = PortReport {
            rx_packets: 9,
            xstats: vec![("rx_good_packets".into(), 9)],
            ..PortReport::default()
        };
        render(sample(), ProcessStats::default(), Some(port), &mut om).unwrap();
        assert!(om.contains("vigil_port_packets_total{direction=\"rx\"} 9"));
        assert!(om.contains("vigil_port_xstats_total{name=\"rx_good_packets\"} 9"));
        assert!(om.ends_with("# EOF\n"));
        assert!(om.contains("# TYPE vigil_rx_datagrams counter\n"));
        assert!(om.contains("vigil_rx_datagrams_total{shard=\"1\"} 7"));
        assert!(om.contains("vigil_requests_total{shard=\"1\",opcode=\"kv.set\",code=\"0x11\"} 5"));
        assert!(om.contains("vigil_keys{shard=\"1\",partition=\"3\"} 4"));
        assert!(om.contains("vigil_raft_is_leader{shard=\"1\",partition=\"3\"} 1"));
        // 10 us, 200 us, 3 ms: cumulative buckets.
        assert!(om.contains("vigil_write_latency_seconds_bucket{le=\"0.00005\",shard=\"1\"} 1\n"), "{om}");
        assert!(om.contains("vigil_write_latency_seconds_bucket{le=\"0.00025\",shard=\"1\"} 2\n"));
        assert!(om.contains("vigil_write_latency_seconds_bucket{le=\"0.005\",shard=\"1\"} 3\n"));
        assert!(om.contains("vigil_write_latency_seconds_bucket{le=\"+Inf\",shard=\"1\"} 3\n"));
        assert!(om.contains("vigil_write_latency_seconds_count{shard=\"1\"} 3\n"));
        let set = "shard=\"1\",protocol=\"resp\",opcode=\"kv.set\"";
        assert!(om.contains("# TYPE vigil_request_duration_seconds histogram\n"));
        assert!(om.contains(&format!("vigil_request_duration_seconds_bucket{{le=\"0.025\",{set}}} 0\n")));
        assert!(om.contains(&format!("vigil_request_duration_seconds_bucket{{le=\"0.05\",{set}}} 2\n")));
        assert!(om.contains(&format!("vigil_request_duration_seconds_bucket{{le=\"+Inf\",{set}}} 2\n")));
        assert!(om.contains(&format!("vigil_request_duration_seconds_count{{{set}}} 2\n")));
        assert!(om.contains(&format!("vigil_request_duration_seconds_sum{{{set}}} 0.08\n")), "{om}");
        let text = to_prometheus_text(&om);
        assert!(text.contains("# TYPE vigil_rx_datagrams_total counter\n"));
        assert!(text.contains("# HELP vigil_rx_datagrams_total Datagrams received.\n"));
        assert!(text.contains("# TYPE vigil_keys gauge\n"));
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
        assert!(wants_openmetrics("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"));
        assert!(!wants_openmetrics("*/*"));
    }
}

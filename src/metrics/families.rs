//! The metric families: a `prometheus-client` collector over the shards' snapshots of one
//! scrape, one descriptor per family and one sample per label set (`prom.rs` renders it). The
//! names, units and labels are docs/OPERATIONS.md's table.
//!
//! Invariants: a family is written once with all its samples; nothing here fails but the
//! `fmt::Write` of the encoder.

use super::prom::{PortReport, ProcessStats, LATENCY_BUCKETS_S};
use super::{Latency, PartitionStats, ShardStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::fmt;
use std::sync::Arc;

/// Labels of one sample.
pub(super) type Labels = Vec<(&'static str, String)>;

/// The collector: the shards' snapshots and the process's figures of one scrape.
#[derive(Debug)]
pub(super) struct NodeCollector {
    pub(super) shards: Vec<Arc<ShardStats>>,
    pub(super) process: ProcessStats,
    pub(super) port: Option<PortReport>,
}

pub(super) fn shard_label(s: &ShardStats) -> Labels {
    vec![("shard", s.shard.to_string())]
}

fn partition_label(s: &ShardStats, p: &PartitionStats) -> Labels {
    vec![("shard", s.shard.to_string()), ("partition", p.id.to_string())]
}

/// One family of `kind` (counter or gauge) with its samples.
fn family<V: Into<f64> + Copy>(
    enc: &mut DescriptorEncoder<'_>,
    (name, help, unit): (&str, &str, Option<Unit>),
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, V)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit.as_ref(), kind)?;
    for (labels, v) in samples {
        let mut sample = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => sample.encode_counter::<(), f64, f64>(&v.into(), None)?,
            _ => sample.encode_gauge(&v.into())?,
        }
    }
    Ok(())
}

/// A family of integer samples, each divided by `per_unit` (1 for counts and bytes, 1e9 for ns
/// in seconds).
fn integers(
    enc: &mut DescriptorEncoder<'_>,
    descriptor: (&str, &str, Option<Unit>),
    kind: MetricType,
    per_unit: f64,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> fmt::Result {
    family(enc, descriptor, kind, samples.into_iter().map(|(l, v)| (l, v as f64 / per_unit)))
}

pub(super) fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> fmt::Result {
    integers(enc, (name, help, None), MetricType::Counter, 1.0, samples)
}

fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> fmt::Result {
    integers(enc, (name, help, None), MetricType::Gauge, 1.0, samples)
}

/// A histogram family from `Latency`s, in seconds (buckets `LATENCY_BUCKETS_S`).
fn latency<'a>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, &'a Latency)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, l) in samples {
        // The encoder takes each bucket's own count (it sums them) and `f64::MAX` for `+Inf`.
        let mut below = 0;
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_S
            .iter()
            .map(|&le| (le, l.count_at_most((le * 1e9) as u64)))
            .chain(std::iter::once((f64::MAX, l.count())))
            .map(|(le, at_most)| {
                let own = at_most.saturating_sub(below);
                below = below.max(at_most);
                (le, own)
            })
            .collect();
        let sum = l.sum_ns() as f64 / 1e9;
        m.encode_family(&labels)?.encode_histogram::<()>(sum, l.count(), &buckets, None)?;
    }
    Ok(())
}

impl Collector for NodeCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        self.encode_loop(&mut enc)?;
        self.encode_requests(&mut enc)?;
        self.encode_auth(&mut enc)?;
        self.encode_partitions(&mut enc)?;
        self.encode_log(&mut enc)?;
        self.encode_peers(&mut enc)?;
        self.encode_port(&mut enc)?;
        self.encode_process(&mut enc)
    }
}

impl NodeCollector {
    fn per_shard(&self, f: impl Fn(&ShardStats) -> u64) -> Vec<(Labels, u64)> {
        self.shards.iter().map(|s| (shard_label(s), f(s))).collect()
    }

    fn per_partition(&self, f: impl Fn(&PartitionStats) -> u64) -> Vec<(Labels, u64)> {
        let mut out = Vec::new();
        for s in &self.shards {
            out.extend(s.partitions.iter().map(|p| (partition_label(s, p), f(p))));
        }
        out
    }

    /// Per shard and reason: every drop a shard's loop, engine and packet backend count.
    fn drops(&self) -> Vec<(Labels, u64)> {
        let mut out = Vec::new();
        for s in &self.shards {
            let reasons = s.drops();
            for (reason, n) in reasons {
                out.push((vec![("shard", s.shard.to_string()), ("reason", reason.to_string())], n));
            }
        }
        out
    }

    fn encode_loop(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        counter(enc, "vigil_polls", "Shard loop iterations.", self.per_shard(|s| s.shard_counters.polls))?;
        counter(
            enc,
            "vigil_idle_polls",
            "Shard loop iterations that received nothing.",
            self.per_shard(|s| s.shard_counters.idle_polls),
        )?;
        counter(
            enc,
            "vigil_rx_datagrams",
            "Datagrams received.",
            self.per_shard(|s| s.shard_counters.rx_datagrams),
        )?;
        counter(
            enc,
            "vigil_tx_datagrams",
            "Answer datagrams handed to the queue.",
            self.per_shard(|s| s.shard_counters.tx_datagrams),
        )?;
        counter(
            enc,
            "vigil_late_answers",
            "Answers sent once their write was durable.",
            self.per_shard(|s| s.shard_counters.late_answers),
        )?;
        counter(enc, "vigil_dropped", "Datagrams and answers dropped, by reason.", self.drops())
    }

    fn encode_requests(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let mut by_opcode = Vec::new();
        for s in &self.shards {
            for &(op, name, n) in &s.opcodes {
                let labels = vec![
                    ("shard", s.shard.to_string()),
                    ("opcode", name.to_string()),
                    ("code", format!("0x{op:02x}")),
                ];
                by_opcode.push((labels, n));
            }
        }
        counter(enc, "vigil_requests", "Requests executed, by opcode (every protocol).", by_opcode)?;
        let mut by_status = Vec::new();
        for s in &self.shards {
            by_status.push((
                vec![("shard", s.shard.to_string()), ("status", "ok".to_string())],
                s.engine.answers_ok,
            ));
            by_status.push((
                vec![("shard", s.shard.to_string()), ("status", "error".to_string())],
                s.engine.answers_error,
            ));
        }
        counter(enc, "vigil_answers", "Datagram answers, by status.", by_status)?;
        counter(
            enc,
            "vigil_forwards",
            "Requests forwarded to the shard that owns their partition.",
            self.per_shard(|s| s.kv.forwarded),
        )?;
        gauge(
            enc,
            "vigil_forwards_in_flight",
            "Forwarded requests waiting for the owner shard's answer (the cross-shard inboxes' load).",
            self.per_shard(|s| s.forwards_in_flight),
        )?;
        gauge(
            enc,
            "vigil_inbox_depth",
            "Envelopes waiting in the shard's cross-shard inbox (sampled at each publication).",
            self.per_shard(|s| s.inbox_depth),
        )?;
        counter(
            enc,
            "vigil_served_for_other_shards",
            "Requests this shard ran for another shard.",
            self.per_shard(|s| s.kv.served_for_others),
        )?;
        let conns = |f: fn(&ShardStats) -> Option<u64>| {
            self.shards.iter().filter_map(|s| f(s).map(|n| (shard_label(s), n))).collect::<Vec<_>>()
        };
        counter(
            enc,
            "vigil_tcp_connections_opened",
            "TCP connections opened.",
            conns(|s| s.conns.map(|c| c.0.opened)),
        )?;
        counter(
            enc,
            "vigil_tcp_connections_closed",
            "TCP connections closed.",
            conns(|s| s.conns.map(|c| c.0.closed)),
        )?;
        gauge(
            enc,
            "vigil_tcp_connections",
            "TCP connections open.",
            conns(|s| s.conns.map(|c| c.0.opened.saturating_sub(c.0.closed))),
        )?;
        latency(
            enc,
            "vigil_write_latency",
            "Durable writes, from their batch's seal to their answer.",
            self.shards.iter().map(|s| (shard_label(s), &s.write_latency)),
        )?;
        let mut by_protocol = Vec::new();
        for s in &self.shards {
            for r in &s.requests {
                let labels = vec![
                    ("shard", s.shard.to_string()),
                    ("protocol", r.protocol.name().to_string()),
                    ("opcode", r.name.to_string()),
                ];
                by_protocol.push((labels, &r.latency));
            }
        }
        latency(
            enc,
            "vigil_request_duration",
            "Requests, from their shard taking them in to their answer, by protocol and opcode.",
            by_protocol,
        )
    }

    fn encode_partitions(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        gauge(enc, "vigil_keys", "Keys in the partition's KV projection.", self.per_partition(|p| p.keys))?;
        gauge(enc, "vigil_raft_term", "The partition's Raft term.", self.per_partition(|p| p.term))?;
        gauge(
            enc,
            "vigil_raft_commit_index",
            "The partition's Raft commit index.",
            self.per_partition(|p| p.commit),
        )?;
        gauge(
            enc,
            "vigil_raft_applied_index",
            "The partition's applied index.",
            self.per_partition(|p| p.applied),
        )?;
        gauge(
            enc,
            "vigil_raft_leader",
            "The node the partition's group follows (0: none known).",
            self.per_partition(|p| p.leader),
        )?;
        gauge(
            enc,
            "vigil_raft_is_leader",
            "1 where this node leads the partition.",
            self.per_partition(|p| u64::from(p.is_leader)),
        )?;
        gauge(
            enc,
            "vigil_raft_quiet",
            "1 where the partition's group is quiesced.",
            self.per_partition(|p| u64::from(p.quiet)),
        )?;
        gauge(
            enc,
            "vigil_writes_waiting",
            "Writes waiting for their entry to commit.",
            self.per_partition(|p| p.waiting),
        )?;
        counter(
            enc,
            "vigil_writes_proposed",
            "Writes proposed.",
            self.per_partition(|p| p.counters.proposed),
        )?;
        counter(
            enc,
            "vigil_entries_applied",
            "Log entries applied.",
            self.per_partition(|p| p.counters.applied),
        )?;
        let mut busy = Vec::new();
        for s in &self.shards {
            for p in &s.partitions {
                let c = &p.counters;
                for (cause, n) in [
                    ("log_ring", c.busy_log_ring),
                    ("waiters", c.busy_waiters),
                    ("window", c.busy_window),
                    ("proposals", c.busy_proposals),
                    ("raft", c.busy_raft),
                ] {
                    let mut labels = partition_label(s, p);
                    labels.push(("cause", cause.to_string()));
                    busy.push((labels, n));
                }
            }
            busy.push((
                vec![("shard", s.shard.to_string()), ("cause", "no_reservation".to_string())],
                s.kv.busy_unreserved,
            ));
        }
        counter(enc, "vigil_busy", "Writes refused BUSY, by cause.", busy)?;
        counter(
            enc,
            "vigil_snapshots",
            "Snapshots taken and checkpointed.",
            self.per_partition(|p| p.counters.snapshots),
        )?;
        counter(
            enc,
            "vigil_snapshot_failures",
            "Snapshots that could not be written (retried).",
            self.per_partition(|p| p.counters.snapshot_failures),
        )?;
        counter(
            enc,
            "vigil_snapshots_installed",
            "Snapshots received from a leader and installed.",
            self.per_partition(|p| p.counters.snapshots_installed),
        )?;
        counter(
            enc,
            "vigil_quiesced",
            "Times the partition's group quiesced.",
            self.per_partition(|p| p.counters.quiesced),
        )?;
        let seconds = |name, help| (name, help, Some(Unit::Seconds));
        integers(
            enc,
            seconds("vigil_snapshot_duration", "Time snapshots took, capture to checkpoint."),
            MetricType::Counter,
            1e9,
            self.per_partition(|p| p.counters.snapshot_ns_total),
        )?;
        integers(
            enc,
            seconds("vigil_snapshot_last_duration", "Time the last snapshot took."),
            MetricType::Gauge,
            1e9,
            self.per_partition(|p| p.counters.snapshot_ns_last),
        )?;
        integers(
            enc,
            seconds("vigil_recovery_duration", "Time the partition's recovery took at the start."),
            MetricType::Gauge,
            1e9,
            self.per_partition(|p| p.counters.recovery_ns),
        )
    }

    fn encode_log(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        counter(enc, "vigil_log_appends", "Log records appended.", self.per_partition(|p| p.log_appends))?;
        counter(enc, "vigil_log_writes", "Log writes submitted.", self.per_partition(|p| p.log_writes))?;
        integers(
            enc,
            ("vigil_log_written", "Bytes of log writes submitted.", Some(Unit::Bytes)),
            MetricType::Counter,
            1.0,
            self.per_partition(|p| p.log_write_blocks * vigil_pmd::block::BLOCK_SIZE as u64),
        )?;
        counter(
            enc,
            "vigil_log_superblock_writes",
            "Log superblock writes.",
            self.per_partition(|p| p.log_superblock_writes),
        )?;
        gauge(enc, "vigil_log_last_lsn", "The last lsn appended.", self.per_partition(|p| p.log_last_lsn))?;
        gauge(
            enc,
            "vigil_log_durable_lsn",
            "The highest durable lsn.",
            self.per_partition(|p| p.log_durable_lsn),
        )?;
        gauge(
            enc,
            "vigil_log_segments_free",
            "Log segments free before the ring is full.",
            self.per_partition(|p| p.log_segments_free),
        )?;
        integers(
            enc,
            ("vigil_log_capacity", "Bytes of the log's ring.", Some(Unit::Bytes)),
            MetricType::Gauge,
            1.0,
            self.per_partition(|p| p.log_segments * p.log_segment_bytes),
        )?;
        integers(
            enc,
            ("vigil_log_used", "Bytes of the log's ring in use (segments not free).", Some(Unit::Bytes)),
            MetricType::Gauge,
            1.0,
            self.per_partition(PartitionStats::log_used_bytes),
        )
    }

    fn encode_peers(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let peers: Vec<_> = self.shards.iter().filter_map(|s| s.peer.as_ref().map(|p| (s, p))).collect();
        if peers.is_empty() {
            return Ok(());
        }
        counter(
            enc,
            "vigil_peer_datagrams_sent",
            "Peer datagrams (Raft) sent.",
            peers.iter().map(|(s, p)| (shard_label(s), p.outbox.datagrams)),
        )?;
        counter(
            enc,
            "vigil_peer_datagrams_received",
            "Peer datagrams (Raft) received.",
            peers.iter().map(|(s, p)| (shard_label(s), p.inbox.datagrams)),
        )?;
        counter(
            enc,
            "vigil_peer_messages_stepped",
            "Raft messages stepped into partitions.",
            peers.iter().map(|(s, p)| (shard_label(s), p.link.stepped)),
        )?;
        counter(
            enc,
            "vigil_peer_keepalives_sent",
            "Keepalive frames sent.",
            peers.iter().map(|(s, p)| (shard_label(s), p.outbox.keepalives)),
        )?;
        let mut drops = Vec::new();
        for (s, p) in &peers {
            for reason in crate::peer::DropReason::ALL {
                let labels =
                    vec![("shard", s.shard.to_string()), ("reason", reason.name().replace('-', "_"))];
                drops.push((labels, p.inbox.dropped(reason)));
            }
        }
        counter(enc, "vigil_peer_dropped", "Peer datagrams and messages dropped, by reason.", drops)
    }

    fn encode_port(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let Some(p) = &self.port else { return Ok(()) };
        let dir = |d: &str| vec![("direction", d.to_string())];
        counter(
            enc,
            "vigil_port_packets",
            "Frames the DPDK port received and sent.",
            [(dir("rx"), p.rx_packets), (dir("tx"), p.tx_packets)],
        )?;
        integers(
            enc,
            ("vigil_port", "Bytes the DPDK port received and sent.", Some(Unit::Bytes)),
            MetricType::Counter,
            1.0,
            [(dir("rx"), p.rx_bytes), (dir("tx"), p.tx_bytes)],
        )?;
        let dropped = p.dropped.iter().map(|(reason, n)| (vec![("reason", reason.to_string())], *n));
        counter(enc, "vigil_port_dropped", "Frames the DPDK port dropped or failed, by reason.", dropped)?;
        let xstats = p.xstats.iter().map(|(name, n)| (vec![("name", name.clone())], *n));
        counter(enc, "vigil_port_xstats", "The DPDK driver's extended counters, by name.", xstats)
    }

    fn encode_process(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let p = &self.process;
        let one = |v: f64| [(Labels::new(), v)];
        family(
            enc,
            ("process_resident_memory", "Resident memory.", Some(Unit::Bytes)),
            MetricType::Gauge,
            one(p.resident_bytes as f64),
        )?;
        family(
            enc,
            ("process_virtual_memory", "Virtual memory.", Some(Unit::Bytes)),
            MetricType::Gauge,
            one(p.virtual_bytes as f64),
        )?;
        family(
            enc,
            ("process_start_time", "When the process started, Unix time.", Some(Unit::Seconds)),
            MetricType::Gauge,
            one(p.start_time_s),
        )?;
        family(
            enc,
            (
                "vigil_start_duration",
                "From the process's start to every shard serving (recovery included).",
                Some(Unit::Seconds),
            ),
            MetricType::Gauge,
            one(p.start_duration_s),
        )
    }
}

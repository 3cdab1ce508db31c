//! The operators' JSON API on the web port (`/api/status`, `/api/shards`, `/api/partitions`,
//! `/api/config`; docs/OPERATIONS.md, "The JSON API"), rendered from the shards' latest
//! snapshots on the `StatsBoard`: a request never asks a shard anything (the shard serving the
//! connection reads the board like the metrics thread does).
//!
//! `OpsView` also holds what the web port's other operator pages share: the dashboard's latest
//! rendering (`dashboard`), the admin operations' mailbox to the shards and token (`admin`), and
//! the process's log filter (`LogControl`, when the binary gave one).
//!
//! Invariants: read-only; the config is rendered once at the start with its secrets
//! (`Config::redacted`) replaced by `"(set)"`; every answer is one JSON document.

use super::admin::{AdminMailbox, LogControl};
use super::dashboard::DashboardSlot;
use super::{ShardStats, StatsBoard};
use crate::config::Config;
use serde_json::{json, Value};
use std::sync::Arc;

/// What the API answers from: the board, the node's identity and its config.
#[derive(Debug)]
pub struct OpsView {
    /// The shards' latest snapshots.
    pub board: StatsBoard,
    /// This node's Raft id (1 for a node alone).
    pub node_id: u64,
    /// When the process started, Unix ns.
    pub started_ns: u64,
    /// The config in force, as JSON, secrets hidden.
    pub config_json: String,
    /// The dashboard's latest rendering (`/`, `/api/live`).
    pub dashboard: DashboardSlot,
    /// The admin requests to the shards, and the token they need (empty: admin off).
    pub admin: AdminMailbox,
    pub admin_token: String,
    /// The token reads of the operator pages need besides `admin_token` (`admin.read_token`;
    /// empty: reads are open).
    pub read_token: String,
    /// The process's log filter, when it can change while running.
    pub log: Option<Arc<dyn LogControl>>,
    /// The principals, for `/api/admin/clients` (none: the API cannot change them).
    pub clients: Option<Arc<dyn crate::auth::admin::ClientControl>>,
}

impl OpsView {
    /// A view of `board` for the node `config` describes, started at `started_ns`.
    pub fn new(board: StatsBoard, config: &Config, started_ns: u64) -> Self {
        Self {
            admin: AdminMailbox::new(board.shards()),
            board,
            node_id: config.cluster.node_id,
            started_ns,
            config_json: config_json(config),
            dashboard: DashboardSlot::default(),
            admin_token: config.admin.token.clone(),
            read_token: config.admin.read_token.clone(),
            log: None,
            clients: None,
        }
    }

    /// The same view, able to change the log filter through `log`.
    pub fn with_log(mut self, log: Option<Arc<dyn LogControl>>) -> Self {
        self.log = log;
        self
    }

    /// The same view, able to list, add and revoke principals through `clients`.
    pub fn with_clients(mut self, clients: Arc<dyn crate::auth::admin::ClientControl>) -> Self {
        self.clients = Some(clients);
        self
    }

    /// The answer to `GET /api/<what>` at `now_ns`; `None` for a path the API does not have.
    pub fn answer(&self, what: &str, now_ns: u64) -> Option<String> {
        let shards = self.board.latest();
        let value = match what {
            "status" => self.status(&shards, now_ns),
            "shards" => Value::Array(shards.iter().map(|s| shard(s)).collect()),
            "partitions" => Value::Array(shards.iter().flat_map(|s| partitions(s)).collect()),
            "config" => return Some(self.config_json.clone()),
            _ => return None,
        };
        Some(value.to_string())
    }

    fn status(&self, shards: &[Arc<ShardStats>], now_ns: u64) -> Value {
        let t = super::PartitionTotals::of(shards);
        json!({
            "node_id": self.node_id,
            "uptime_s": now_ns.saturating_sub(self.started_ns) as f64 / 1e9,
            "shards": self.board.shards(),
            "shards_reporting": shards.len(),
            "partitions": t.partitions,
            "partitions_leading": t.leading,
            "partitions_quiet": t.quiet,
            "keys": t.keys,
            "requests": shards.iter().map(|s| s.engine.requests).sum::<u64>(),
            "writes_latency_p99_us": node_p99_us(shards),
        })
    }
}

/// The p99 of every shard's durable writes together, us (0 without writes).
fn node_p99_us(shards: &[Arc<ShardStats>]) -> u64 {
    let mut all = super::Latency::new();
    for s in shards {
        all.add(&s.write_latency);
    }
    all.quantile_ns(0.99) / 1_000
}

fn shard(s: &ShardStats) -> Value {
    let c = &s.shard_counters;
    let l = &s.write_latency;
    json!({
        "shard": s.shard,
        "at_ns": s.at_ns,
        "polls": c.polls,
        "rx_datagrams": c.rx_datagrams,
        "tx_datagrams": c.tx_datagrams,
        "late_answers": c.late_answers,
        "requests": s.engine.requests,
        "answers_ok": s.engine.answers_ok,
        "answers_error": s.engine.answers_error,
        "forwarded": s.kv.forwarded,
        "forwards_in_flight": s.forwards_in_flight,
        "inbox_depth": s.inbox_depth,
        "tcp_connections": s.conns.map(|(c, _)| c.opened.saturating_sub(c.closed)),
        "requests_latency_us": super::requests::latency_json(s),
        "auth": {
            "authenticated": s.auth.authenticated,
            "anonymous": s.auth.anonymous,
            "refused": s.auth.refusals().iter().filter(|(_, n)| *n > 0).map(|(r, n)| (r.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        },
        "write_latency_us": {
            "count": l.count(),
            "p50": l.quantile_ns(0.5) / 1_000,
            "p99": l.quantile_ns(0.99) / 1_000,
            "p999": l.quantile_ns(0.999) / 1_000,
        },
    })
}

fn partitions(s: &ShardStats) -> Vec<Value> {
    s.partitions
        .iter()
        .map(|p| {
            json!({
                "partition": p.id,
                "shard": s.shard,
                "keys": p.keys,
                "term": p.term,
                "commit": p.commit,
                "applied": p.applied,
                "leader": p.leader,
                "is_leader": p.is_leader,
                "quiet": p.quiet,
                "waiting": p.waiting,
                "snapshots": p.counters.snapshots,
                "log": {
                    "last_lsn": p.log_last_lsn,
                    "durable_lsn": p.log_durable_lsn,
                    "segments": p.log_segments,
                    "segments_free": p.log_segments_free,
                    "used_bytes": p.log_used_bytes(),
                },
            })
        })
        .collect()
}

/// The config as JSON with its secrets hidden.
fn config_json(config: &Config) -> String {
    serde_json::to_value(config.redacted()).unwrap_or(Value::Null).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PartitionStats;

    #[test]
    fn the_answers_come_from_the_board_and_hide_secrets() {
        let board = StatsBoard::new(2);
        let mut s = ShardStats { shard: 1, ..ShardStats::default() };
        s.partitions =
            vec![PartitionStats { id: 1, keys: 5, is_leader: true, term: 3, ..PartitionStats::default() }];
        s.engine.requests = 9;
        board.publish(s);
        let mut config = Config::dev();
        config.tcp.requirepass = "hunter2".into();
        config.admin.token = "a-token-of-twenty-chars".into();
        let view = OpsView::new(board, &config, 1_000_000_000);
        let status: Value = serde_json::from_str(&view.answer("status", 3_000_000_000).unwrap()).unwrap();
        assert_eq!(status["shards"], 2);
        assert_eq!(status["shards_reporting"], 1);
        assert_eq!((status["partitions"].as_u64(), status["keys"].as_u64()), (Some(1), Some(5)));
        assert_eq!(status["uptime_s"], 2.0);
        let parts: Value = serde_json::from_str(&view.answer("partitions", 0).unwrap()).unwrap();
        assert_eq!(parts[0]["term"], 3);
        let shards: Value = serde_json::from_str(&view.answer("shards", 0).unwrap()).unwrap();
        assert_eq!(shards[0]["requests"], 9);
        let cfg = view.answer("config", 0).unwrap();
        assert!(!cfg.contains("hunter2") && cfg.contains("\"requirepass\":\"(set)\""), "{cfg}");
        assert!(!cfg.contains("twenty") && cfg.contains("\"token\":\"(set)\""), "{cfg}");
        assert!(view.answer("nothing", 0).is_none());
    }
}

//! `[cluster]`: this node's Raft id, the nodes of the cluster (id and data-plane address) and the
//! voters every partition's group has (static: membership changes come with the controller).
//! Without the section a node is alone: id 1, every partition a group of one voter.
//!
//! Invariants (checked by `validate`): ids are unique and at least 1; this node is among the
//! nodes and among the replicas; every replica is a node; addresses are unique.

use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::SocketAddrV4;

/// The most staleness follower reads may be configured with (a minute).
pub const STALENESS_MS_MAX: u64 = 60_000;

/// The Raft tick's bounds, in ms (heartbeats every 2 ticks, elections after 10 to 20 silent ticks).
pub const TICK_MS_RANGE: std::ops::RangeInclusive<u64> = 1..=1000;

/// The default Raft tick: 10 ms (heartbeats every 20 ms, elections after 100-200 ms of silence),
/// for nodes on dedicated cores; raise it where shards share cores with other work.
pub const TICK_MS_DEFAULT: u64 = 10;

/// Voters a group may have (raft-rs copes with more; replication cost grows with each).
pub const REPLICAS_MAX: usize = 7;

/// One node of the cluster.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Its Raft id (at least 1).
    pub id: u64,
    /// Its data-plane address (IPv4 and UDP port), where its peers' Raft messages go.
    pub address: SocketAddrV4,
}

/// The cluster's shape (see the module header).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's Raft id.
    pub node_id: u64,
    /// Every node, this one included.
    pub nodes: Vec<PeerConfig>,
    /// The voters of every partition's group (default: every node).
    #[serde(default)]
    pub replicas: Vec<u64>,
    /// Followers answer reads at most this many ms stale (docs/REPLICATION.md, "Follower reads");
    /// 0 (the default): off, only the leader answers reads, never stale.
    #[serde(default)]
    pub follower_read_staleness_ms: u64,
    /// The Raft tick in ms: heartbeats every 2 ticks, elections after 10-20 silent ticks, the
    /// read lease 80% of 10 ticks (docs/REPLICATION.md). Every node of a cluster should use the
    /// same value.
    #[serde(default = "tick_ms_default")]
    pub tick_ms: u64,
    /// Idle groups stop ticking and heartbeating, watched by one keepalive per peer instead
    /// (docs/REPLICATION.md, "Idle groups"); default on.
    #[serde(default = "quiesce_idle_default")]
    pub quiesce_idle: bool,
}

fn quiesce_idle_default() -> bool {
    true
}

fn tick_ms_default() -> u64 {
    TICK_MS_DEFAULT
}

impl Default for ClusterConfig {
    /// A node alone: id 1, no peers.
    fn default() -> Self {
        Self {
            node_id: 1,
            nodes: Vec::new(),
            replicas: Vec::new(),
            follower_read_staleness_ms: 0,
            tick_ms: TICK_MS_DEFAULT,
            quiesce_idle: true,
        }
    }
}

impl ClusterConfig {
    /// The voters of every partition's group.
    pub fn voters(&self) -> Vec<u64> {
        match (self.replicas.is_empty(), self.nodes.is_empty()) {
            (false, _) => self.replicas.clone(),
            (true, false) => self.nodes.iter().map(|n| n.id).collect(),
            (true, true) => vec![self.node_id],
        }
    }

    /// Whether partitions replicate to other nodes.
    pub fn replicated(&self) -> bool {
        self.voters().len() > 1
    }

    /// The address of node `id`, if it is a node of the cluster.
    pub fn address_of(&self, id: u64) -> Option<SocketAddrV4> {
        self.nodes.iter().find(|n| n.id == id).map(|n| n.address)
    }

    /// Checks the invariants of the module header.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(invalid("cluster.node_id", "node ids start at 1"));
        }
        let mut ids = BTreeSet::new();
        let mut addresses = BTreeSet::new();
        for n in &self.nodes {
            if n.id == 0 {
                return Err(invalid("cluster.nodes", "node ids start at 1"));
            }
            if !ids.insert(n.id) {
                return Err(invalid("cluster.nodes", format!("node id {} is listed twice", n.id)));
            }
            if !addresses.insert(n.address) {
                return Err(invalid("cluster.nodes", format!("address {} is listed twice", n.address)));
            }
        }
        if !self.nodes.is_empty() && !ids.contains(&self.node_id) {
            return Err(invalid("cluster.node_id", format!("{} is not among cluster.nodes", self.node_id)));
        }
        if !TICK_MS_RANGE.contains(&self.tick_ms) {
            return Err(invalid("cluster.tick_ms", format!("{TICK_MS_RANGE:?} ms")));
        }
        if self.follower_read_staleness_ms > STALENESS_MS_MAX {
            return Err(invalid(
                "cluster.follower_read_staleness_ms",
                format!("at most {STALENESS_MS_MAX} ms (0: follower reads off)"),
            ));
        }
        self.validate_replicas(&ids)
    }

    fn validate_replicas(&self, ids: &BTreeSet<u64>) -> Result<(), ConfigError> {
        let voters = self.voters();
        let unique: BTreeSet<u64> = voters.iter().copied().collect();
        if unique.len() != voters.len() {
            return Err(invalid("cluster.replicas", "a replica is listed twice"));
        }
        if voters.len() > REPLICAS_MAX {
            return Err(invalid("cluster.replicas", format!("at most {REPLICAS_MAX} voters a group")));
        }
        if let Some(r) = voters.iter().find(|r| !ids.contains(r) && **r != self.node_id) {
            return Err(invalid("cluster.replicas", format!("replica {r} is not among cluster.nodes")));
        }
        if !voters.contains(&self.node_id) {
            return Err(invalid(
                "cluster.replicas",
                format!(
                    "this node ({}) must be a replica: every node holds every partition here",
                    self.node_id
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<ClusterConfig, ConfigError> {
        let c: ClusterConfig = toml::from_str(toml_text)?;
        c.validate()?;
        Ok(c)
    }

    const THREE: &str = r#"
node_id = 2
nodes = [
    { id = 1, address = "10.88.0.1:9000" },
    { id = 2, address = "10.88.0.2:9000" },
    { id = 3, address = "10.88.0.3:9000" },
]
"#;

    #[test]
    fn three_nodes_replicate_to_all_by_default_and_alone_is_one_voter() {
        let c = parse(THREE).unwrap();
        assert_eq!(c.voters(), [1, 2, 3]);
        assert!(c.replicated());
        assert_eq!(c.address_of(3), Some("10.88.0.3:9000".parse().unwrap()));
        assert_eq!(c.address_of(4), None);
        let alone = ClusterConfig::default();
        alone.validate().unwrap();
        assert_eq!(alone.voters(), [1]);
        assert!(!alone.replicated());
    }

    #[test]
    fn every_inconsistency_is_refused_by_name() {
        let cases = [
            (THREE.replace("node_id = 2", "node_id = 0"), "cluster.node_id"),
            (THREE.replace("node_id = 2", "node_id = 9"), "cluster.node_id"),
            (THREE.replace("id = 3,", "id = 2,"), "cluster.nodes"),
            (THREE.replace("10.88.0.3", "10.88.0.2"), "cluster.nodes"),
            (THREE.replace("id = 1,", "id = 0,"), "cluster.nodes"),
            (format!("{THREE}replicas = [1, 3, 4]"), "cluster.replicas"),
            (format!("{THREE}replicas = [1, 3]"), "cluster.replicas"),
            (format!("{THREE}replicas = [2, 2, 3]"), "cluster.replicas"),
            (format!("{THREE}tick_ms = 0"), "cluster.tick_ms"),
            (format!("{THREE}tick_ms = 1001"), "cluster.tick_ms"),
        ];
        for (text, key) in cases {
            match parse(&text) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(parse("node_id = 1\nnodes = []\nextra = 1"), Err(ConfigError::Parse(_))));
        assert!(matches!(
            parse("node_id = 1\nnodes = [{ id = 1, address = \"not an address\" }]"),
            Err(ConfigError::Parse(_))
        ));
    }
}

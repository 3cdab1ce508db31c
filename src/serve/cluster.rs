//! A node's part in its cluster, at start-up: the leader table its shards share (for
//! `NOT_LEADER` hints), the cluster id every peer datagram carries, this start's incarnation, and
//! each shard's peer link (`ops::peer_link`) when the partitions replicate.
//!
//! The cluster id is derived from `cluster.nodes` and `cluster.tick_ms` (FNV-1a over each node's
//! id and address, in id order, and the tick), so nodes configured alike agree on it without a
//! key of its own, and a node given another list or another tick (a stale config, another
//! cluster on the same network) has its datagrams dropped and counted (`wrong-cluster`) instead
//! of stepped: a node that elected leaders faster than its peers expect would break the read
//! lease's bound.
//!
//! Invariants: one `Leaders` per node, cloned into every shard; every shard of a node uses the
//! same incarnation; every node must run the same `node.shards` and `storage.partitions`
//! (docs/REPLICATION.md: a shard's datagrams hold only the partitions that shard owns).

use crate::config::Config;
use crate::inbox::fnv1a64;
use crate::ops::leaders::Leaders;
use crate::ops::peer_link::{PeerLink, PeerLinkConfig};
use crate::peer::PeerLimits;
use std::net::SocketAddrV4;

/// What every shard of the node shares about the cluster.
#[derive(Clone, Debug)]
pub(super) struct NodeCluster {
    /// Who leads each partition (shared by the shards).
    pub(super) leaders: Leaders,
    /// This start's incarnation (the wall clock at start, ns).
    incarnation: u64,
}

impl NodeCluster {
    /// The node's cluster state for `config`, this start.
    pub(super) fn new(config: &Config) -> Self {
        let nodes: Vec<(u64, SocketAddrV4)> =
            config.cluster.nodes.iter().map(|n| (n.id, n.address)).collect();
        let partitions = config.storage.partitions(config.node.shards);
        let incarnation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Self { leaders: Leaders::new(partitions, &nodes), incarnation }
    }

    /// A shard's peer link, when the partitions replicate (`None` for a node alone).
    pub(super) fn peer_link(&self, config: &Config) -> Result<Option<PeerLink>, String> {
        if !config.cluster.replicated() {
            return Ok(None);
        }
        let voters = config.cluster.voters();
        let peers = voters
            .iter()
            .filter(|id| **id != config.cluster.node_id)
            .map(|id| {
                let address = config.cluster.address_of(*id).expect("validated: every replica is a node");
                (*id, address)
            })
            .collect();
        // Keepalives at the heartbeat interval, a peer lost after an election timeout.
        let raft = super::partition_config(config).raft;
        let link = PeerLinkConfig {
            limits: PeerLimits {
                datagram_bytes_max: config.net.datagram_bytes_max,
                keepalive_ns: raft.heartbeat_ns(),
                silence_ns: raft.election_ns(),
                ..PeerLimits::mtu_1500()
            },
            cluster_id: cluster_id(config),
            node_id: config.cluster.node_id,
            incarnation: self.incarnation,
            peers,
            voters,
        };
        PeerLink::new(&link).map(Some).map_err(|e| format!("cluster: {e}"))
    }
}

/// The cluster's id: FNV-1a over the node list in id order (see the module header).
pub fn cluster_id(config: &Config) -> u64 {
    let mut nodes: Vec<_> = config.cluster.nodes.iter().map(|n| (n.id, n.address)).collect();
    nodes.sort();
    let mut text: String = nodes.iter().map(|(id, a)| format!("{id}={a};")).collect();
    // The tick too: the read lease is safe only if no node elects faster than the others expect.
    text.push_str(&format!("tick={}", config.cluster.tick_ms));
    fnv1a64(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(node_id: u64, third: &str) -> Config {
        let text = format!(
            "{}\n[cluster]\nnode_id = {node_id}\nnodes = [\n  {{ id = 2, address = \"10.7.0.2:9000\" }},\n  \
             {{ id = 1, address = \"10.7.0.1:9000\" }},\n  {{ id = 3, address = \"{third}\" }},\n]\n",
            crate::config::DEV_TOML
        );
        Config::parse(&text).expect("a valid config")
    }

    #[test]
    fn nodes_with_one_node_list_share_a_cluster_id_and_another_list_differs() {
        let (a, b) = (config(1, "10.7.0.3:9000"), config(3, "10.7.0.3:9000"));
        assert_eq!(cluster_id(&a), cluster_id(&b));
        assert_ne!(cluster_id(&a), cluster_id(&config(1, "10.7.0.3:9001")));
        let mut faster = a.clone();
        faster.cluster.tick_ms = 5;
        assert_ne!(cluster_id(&a), cluster_id(&faster));
        let cluster = NodeCluster::new(&a);
        let link = cluster.peer_link(&a).unwrap().expect("three voters replicate");
        assert_eq!(link.datagram_bytes_max(), a.net.datagram_bytes_max);
        let alone = Config::parse(crate::config::DEV_TOML).unwrap();
        assert!(NodeCluster::new(&alone).peer_link(&alone).unwrap().is_none());
    }
}

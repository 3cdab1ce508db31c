//! The access-control families of `/metrics` (docs/SECURITY.md, "Refusals"): every refusal by
//! shard, protocol and reason, and what the gate admitted.

use super::families::{counter, NodeCollector};
use prometheus_client::encoding::DescriptorEncoder;
use std::fmt;

impl NodeCollector {
    /// Per shard, protocol and reason: every request or datagram refused for its credentials,
    /// its role or its unproven address.
    fn auth_refusals(&self) -> Vec<(super::families::Labels, u64)> {
        let mut out = Vec::new();
        for s in &self.shards {
            let label = |reason: &str, n: u64| {
                let labels = vec![
                    ("shard", s.shard.to_string()),
                    ("protocol", "udp".to_string()),
                    ("reason", reason.to_string()),
                ];
                (labels, n)
            };
            out.extend(s.auth.refusals().into_iter().map(|(reason, n)| label(reason, n)));
        }
        self.tcp_auth_refusals(&mut out);
        // Quotas are enforced where a write is applied, whichever protocol carried it.
        for s in &self.shards {
            let n = s.partitions.iter().map(|p| p.counters.quota_exceeded).sum();
            let labels = vec![
                ("shard", s.shard.to_string()),
                ("protocol", "all".to_string()),
                ("reason", "quota_exceeded".to_string()),
            ];
            out.push((labels, n));
        }
        // The metrics endpoint's own refusals: it is no shard's.
        let labels = vec![
            ("shard", "none".to_string()),
            ("protocol", "metrics".into()),
            ("reason", "unauthorized".into()),
        ];
        out.push((labels, self.process.metrics_unauthorized));
        out
    }

    /// The stream side's refusals (`conn::AuthRefusals`) of every shard that serves TCP.
    fn tcp_auth_refusals(&self, out: &mut Vec<(super::families::Labels, u64)>) {
        for s in &self.shards {
            let Some((c, _)) = &s.conns else { continue };
            for (protocol, reason, n) in c.auth_refusals.by_reason() {
                let labels = vec![
                    ("shard", s.shard.to_string()),
                    ("protocol", protocol.to_string()),
                    ("reason", reason.to_string()),
                ];
                out.push((labels, n));
            }
        }
    }

    pub(super) fn encode_auth(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        counter(
            enc,
            "vigil_auth_refusals",
            "Requests and datagrams refused by access control, by protocol and reason.",
            self.auth_refusals(),
        )?;
        let admitted = |kind: &'static str, f: fn(&crate::auth::AuthCounters) -> u64| {
            self.shards
                .iter()
                .map(move |s| (vec![("shard", s.shard.to_string()), ("kind", kind.to_string())], f(&s.auth)))
        };
        counter(
            enc,
            "vigil_auth_admitted_datagrams",
            "Datagrams admitted, by kind: authenticated (a valid MAC) or anonymous.",
            admitted("authenticated", |a| a.authenticated).chain(admitted("anonymous", |a| a.anonymous)),
        )
    }
}

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
        out
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

//! Managing principals while the node runs: the admin API's `GET/POST /api/admin/clients` and
//! `DELETE /api/admin/clients/{name}` (docs/SECURITY.md, "Keys").
//!
//! The change itself is a new [`KeyTable`](super::KeyTable) swapped in whole, which every shard
//! sees at its next datagram; what makes it last is the serve layer's (`serve::auth_store`): it
//! writes `auth-clients.toml` in the data directory before the swap, and reads it back at the next
//! start, so a revoked key never comes back with a restart. This module holds the sans-IO parts:
//! the file's shape, how it applies to the config's principals, and the trait the web port calls.

use super::keys::{KeyTable, Principal};
use crate::config::ClientConfig;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// The name of the file the admin API's changes are kept in, in `storage.dir`.
pub const CHANGES_FILE: &str = "auth-clients.toml";

/// The admin API's changes to `[auth]`: principals added, key ids revoked.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    /// Key ids revoked (config principals or added ones), never to be accepted again.
    #[serde(default)]
    pub revoked: Vec<u32>,
    /// Principals added (secrets in clear: the file is the node's own, mode 0600).
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
}

impl Changes {
    /// `table` (the config's principals) with these changes applied, or why they do not apply.
    pub fn apply(&self, table: KeyTable) -> Result<KeyTable, String> {
        let mut t = table;
        for &id in &self.revoked {
            let name = t.by_key_id(id).map(|p| p.name.clone());
            t = match name {
                Some(name) => t.with_revoked(&name)?,
                None => t.with_revoked_id(id),
            };
        }
        for c in &self.clients {
            t = t.with_added(Principal::from_config(c)?)?;
        }
        Ok(t)
    }
}

/// A principal as the admin API lists it: no secret, only whether it has one.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Listed {
    /// Its name.
    pub name: String,
    /// Its key id.
    pub key_id: u32,
    /// Its first client id.
    pub client_id: u64,
    /// How many client ids.
    pub client_ids: u64,
    /// Its ACL.
    pub acl: &'static str,
    /// Whether it has a MAC key (binary protocol).
    pub has_key: bool,
    /// Whether it has a password (RESP, HTTP).
    pub has_password: bool,
    /// When it expires, Unix seconds.
    pub expires_unix_s: Option<u64>,
    /// Its quota of KV keys, node-wide (`None`: no limit).
    pub keys_max: Option<u64>,
    /// Its quota of KV bytes (keys plus values), node-wide (`None`: no limit).
    pub bytes_max: Option<u64>,
}

impl Listed {
    /// How `p` is listed.
    pub fn of(p: &Principal) -> Listed {
        Listed {
            name: p.name.clone(),
            key_id: p.key_id,
            client_id: p.client_id,
            client_ids: p.client_ids,
            acl: p.acl.describe(),
            has_key: p.mac_key.is_some(),
            has_password: p.password_digest.is_some(),
            expires_unix_s: p.expires_unix_s,
            keys_max: p.quota.and_then(|q| limited(q.keys_max)),
            bytes_max: p.quota.and_then(|q| limited(q.bytes_max)),
        }
    }
}

/// A quota figure as configured: `u64::MAX` is what an unset one became (`Quota::of`).
fn limited(max: u64) -> Option<u64> {
    (max != u64::MAX).then_some(max)
}

/// What the admin API asks to add: secrets and the key id may be left to the node.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AddRequest {
    /// Its name.
    pub name: String,
    /// Its key id (default: one above every key id in use or revoked).
    #[serde(default)]
    pub key_id: Option<u32>,
    /// Its first client id.
    pub client_id: u64,
    /// How many client ids (default 1).
    #[serde(default)]
    pub client_ids: Option<u64>,
    /// Its ACL.
    pub acl: String,
    /// Its MAC key, 64 hex digits (default: drawn by the node and answered once).
    #[serde(default)]
    pub key: Option<String>,
    /// Its password (default: drawn by the node and answered once).
    #[serde(default)]
    pub password: Option<String>,
    /// When it expires, Unix seconds.
    #[serde(default)]
    pub expires_unix_s: Option<u64>,
    /// Its quota of KV keys, node-wide (default: none).
    #[serde(default)]
    pub keys_max: Option<u64>,
    /// Its quota of KV bytes, node-wide (default: none).
    #[serde(default)]
    pub bytes_max: Option<u64>,
}

/// The admin API's hold on the principals (implemented by the serve layer, which keeps the file).
pub trait ClientControl: Send + Sync + Debug {
    /// Every principal, without secrets, and the revoked key ids.
    fn list(&self) -> (Vec<Listed>, Vec<u32>);
    /// Adds one; the answer is the principal as stored, secrets included (shown this once), and
    /// whether it was written to disk (false: a node without a data directory, where it lasts
    /// until the process ends).
    fn add(&self, request: AddRequest) -> Result<(ClientConfig, bool), String>;
    /// Revokes the principal named `name`; whether it was written to disk.
    fn revoke(&self, name: &str) -> Result<bool, String>;
}

//! `[auth]`: who may use the data plane, and how they prove it (docs/SECURITY.md).
//!
//! Each `[[auth.clients]]` entry is one principal: a name (its RESP user name), a key id and a
//! 32-byte MAC key for the binary protocol, a password for RESP `AUTH` and HTTP/WebSocket bearer
//! tokens, the binary client id it speaks for (exactly-once writes are bound to it), and an ACL of
//! Redis categories (`+@read`, `+@write`, `+@admin`, `+@all`). Requests without credentials get
//! what `auth.anonymous` says, and a node that would serve them on an address other than loopback
//! refuses to start unless `auth.protected_mode = false` says so explicitly (Redis's protected
//! mode, for lab links).
//!
//! Two principals may speak for the same client id (a key being rotated: the new one added, the
//! clients moved, the old one revoked); anonymous requests may use none of the bound client ids.
//!
//! Invariants after `validate`: names and key ids are unique, key and client ids non-zero; every key
//! is 64 hex digits; every password is at least 16 printable characters; every ACL parses.

use super::{invalid, ConfigError};
use crate::auth::Acl;
use crate::projection::Quota;
use serde::{Deserialize, Serialize};

/// The shortest password accepted (as `admin.token`: a guessable secret protects nothing).
pub const PASSWORD_CHARS_MIN: usize = 16;
/// Most principals a node holds (config plus those added through the admin API).
pub const CLIENTS_MAX_LIMIT: usize = 65_536;

/// What a request that carries no credentials may do.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Anonymous {
    /// Nothing: every request must be authenticated.
    #[default]
    None,
    /// Reads (and PING/ECHO) only.
    ReadOnly,
    /// Reads and writes (never admin commands).
    ReadWrite,
}

impl Anonymous {
    /// The ACL an anonymous request runs with (`None`: refused).
    pub fn acl(self) -> Option<Acl> {
        match self {
            Anonymous::None => None,
            Anonymous::ReadOnly => Some(Acl::READ),
            Anonymous::ReadWrite => Some(Acl::READ.union(Acl::WRITE)),
        }
    }

    /// Its spelling in config.
    pub fn name(self) -> &'static str {
        match self {
            Anonymous::None => "none",
            Anonymous::ReadOnly => "read-only",
            Anonymous::ReadWrite => "read-write",
        }
    }
}

/// The `[auth]` table.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// What requests without credentials may do (default: nothing).
    #[serde(default)]
    pub anonymous: Anonymous,
    /// Refuse to start when anonymous access would be served on an address other than loopback
    /// (default: on). Off only for a private lab link that nobody else can reach.
    #[serde(default = "yes")]
    pub protected_mode: bool,
    /// How far an authenticated datagram's timestamp may be from the node's clock, in ms (older
    /// ones are refused as replays; the per-key nonce window catches replays within it).
    #[serde(default = "replay_window_ms")]
    pub replay_window_ms: u64,
    /// Replay windows (one per key and client id that sent in the last `replay_window_ms`) each
    /// shard holds at most, 136 bytes each, allocated at start; past it a new client's
    /// datagrams are refused (`too_many_sessions`) until one goes idle.
    #[serde(default = "replay_windows_max")]
    pub replay_windows_max: usize,
    /// Source networks counted as proven, like loopback (CIDR, "10.77.0.0/16"): a lab link or a
    /// management network whose edge filters forged source addresses. Answers of any size go to
    /// them without a cookie. Default: none.
    #[serde(default)]
    pub trusted_sources: Vec<String>,
    /// Most principals the node holds, config and admin API together (the key table is sized to
    /// it at start).
    #[serde(default = "clients_max")]
    pub clients_max: usize,
    /// The principals.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// Most keys anonymous requests may hold in the KV store, all together, node-wide (unset: no
    /// quota): so that anonymous clients cannot fill the store for the principals.
    #[serde(default)]
    pub anonymous_keys_max: Option<u64>,
    /// Most bytes of keys and values anonymous requests may hold, node-wide (unset: no quota).
    #[serde(default)]
    pub anonymous_bytes_max: Option<u64>,
}

/// One principal.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Its name: the RESP user name, and how metrics and the admin API name it.
    pub name: String,
    /// The key id its binary datagrams carry (non-zero).
    #[serde(default)]
    pub key_id: u32,
    /// The first binary client id it speaks for (non-zero): anonymous requests may not use it.
    #[serde(default)]
    pub client_id: u64,
    /// The MAC key of its binary datagrams: 64 hex digits (32 bytes; `openssl rand -hex 32`).
    /// Unset: it cannot use the binary protocol.
    #[serde(default)]
    pub key: Option<String>,
    /// How many client ids it speaks for, from `client_id` on (default 1): a load generator's
    /// threads each write as a client of their own.
    #[serde(default = "one")]
    pub client_ids: u64,
    /// Its password for RESP `AUTH`/`HELLO AUTH` and its HTTP/WebSocket bearer token (at least
    /// 16 printable characters). Unset: it cannot use RESP or HTTP.
    #[serde(default)]
    pub password: Option<String>,
    /// What it may do: Redis ACL categories, space-separated: `+@read`, `+@write`, `+@admin`,
    /// `+@all`.
    pub acl: String,
    /// When it stops being accepted, in Unix seconds (unset: never).
    #[serde(default)]
    pub expires_unix_s: Option<u64>,
    /// Most keys it may hold in the KV store, node-wide (unset: no quota). Each partition holds
    /// an even share (`projection::owner`); a write past it is `QUOTA_EXCEEDED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_max: Option<u64>,
    /// Most bytes of keys and values it may hold in the KV store, node-wide (unset: no quota).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_max: Option<u64>,
}

fn one() -> u64 {
    1
}
fn yes() -> bool {
    true
}
fn replay_window_ms() -> u64 {
    30_000
}
fn replay_windows_max() -> usize {
    16_384
}
fn clients_max() -> usize {
    1024
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            anonymous: Anonymous::None,
            protected_mode: true,
            replay_window_ms: replay_window_ms(),
            replay_windows_max: replay_windows_max(),
            trusted_sources: Vec::new(),
            clients_max: clients_max(),
            clients: Vec::new(),
            anonymous_keys_max: None,
            anonymous_bytes_max: None,
        }
    }
}

/// The addresses the data plane serves on, with the key that sets each.
fn data_plane_addresses(config: &super::Config) -> Vec<(std::net::Ipv4Addr, &'static str)> {
    use super::{Backend, Fallback};
    let mut out = Vec::new();
    if let (Backend::Dpdk, Some(d)) = (config.net.backend, &config.dpdk) {
        out.push((d.ip, "dpdk.ip"));
    }
    if config.net.backend == Backend::Kernel || config.net.fallback == Fallback::Kernel {
        out.push((config.kernel.bind_ip, "kernel.bind_ip"));
    }
    if config.tcp.enabled {
        out.extend(config.tcp.listen.iter().map(|a| (*a.ip(), "tcp.listen")));
    }
    out
}

/// A CIDR network `a.b.c.d/n` as (address, prefix length), or why not.
pub fn parse_cidr(text: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    let (ip, len) = text.split_once('/').ok_or_else(|| format!("{text:?} is not a.b.c.d/n"))?;
    let ip: std::net::Ipv4Addr = ip.parse().map_err(|e| format!("{text:?}: {e}"))?;
    let len: u8 =
        len.parse().ok().filter(|n| *n <= 32).ok_or_else(|| format!("{text:?}: the prefix is not 0..=32"))?;
    Ok((ip, len))
}

/// `key` as 32 bytes, or why not.
pub fn parse_key_hex(key: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(key, &mut out).map_err(|e| format!("not 64 hex digits ({e})"))?;
    Ok(out)
}

/// Whether `password` is acceptable, or why not.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.len() < PASSWORD_CHARS_MIN {
        return Err(format!("{} characters; at least {PASSWORD_CHARS_MIN}", password.len()));
    }
    if !password.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("only printable ASCII without spaces".into());
    }
    Ok(())
}

/// Whether `name` is acceptable as a principal's name, or why not.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?}: 1 to 64 characters of A-Z a-z 0-9 - _ ."))
    }
}

impl ClientConfig {
    /// Checks one principal; the reason names the field.
    pub fn check(&self) -> Result<(), String> {
        check_name(&self.name).map_err(|e| format!("name {e}"))?;
        if self.key_id == 0 {
            return Err(format!("{}: key_id must be set and non-zero", self.name));
        }
        if self.client_id == 0 {
            return Err(format!("{}: client_id must be set and non-zero (0 is anonymous)", self.name));
        }
        if self.client_ids == 0 || self.client_id.checked_add(self.client_ids - 1).is_none() {
            return Err(format!(
                "{}: client_ids must be at least 1 and client_id + client_ids - 1 fit in 64 bits",
                self.name
            ));
        }
        if self.key.is_none() && self.password.is_none() {
            return Err(format!(
                "{}: give a key (binary protocol), a password (RESP, HTTP) or both",
                self.name
            ));
        }
        if let Some(key) = &self.key {
            parse_key_hex(key).map_err(|e| format!("{}: key {e}", self.name))?;
        }
        if let Some(password) = &self.password {
            check_password(password).map_err(|e| format!("{}: password {e}", self.name))?;
        }
        Acl::parse(&self.acl).map_err(|e| format!("{}: acl {e}", self.name))?;
        check_quota(self.keys_max, self.bytes_max).map_err(|e| format!("{}: {e}", self.name))?;
        Ok(())
    }

    /// Its KV quota, node-wide (`None`: unlimited).
    pub fn quota(&self) -> Option<Quota> {
        Quota::of(self.keys_max, self.bytes_max)
    }
}

/// Whether a quota's figures are acceptable (at least 1 each when set), or why not.
pub fn check_quota(keys_max: Option<u64>, bytes_max: Option<u64>) -> Result<(), String> {
    match (keys_max, bytes_max) {
        (Some(0), _) => Err("keys_max must be at least 1 (leave it unset for no quota)".into()),
        (_, Some(0)) => Err("bytes_max must be at least 1 (leave it unset for no quota)".into()),
        _ => Ok(()),
    }
}

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.replay_window_ms == 0 || self.replay_window_ms > 3_600_000 {
            return Err(invalid(
                "auth.replay_window_ms",
                format!("{} is not in 1..=3600000", self.replay_window_ms),
            ));
        }
        if !(1..=1 << 20).contains(&self.replay_windows_max) {
            return Err(invalid(
                "auth.replay_windows_max",
                format!("{} is not in 1..={}", self.replay_windows_max, 1 << 20),
            ));
        }
        if !(1..=CLIENTS_MAX_LIMIT).contains(&self.clients_max) {
            return Err(invalid(
                "auth.clients_max",
                format!("{} is not in 1..={CLIENTS_MAX_LIMIT}", self.clients_max),
            ));
        }
        if self.clients.len() > self.clients_max {
            return Err(invalid(
                "auth.clients",
                format!(
                    "{} principals, more than auth.clients_max ({})",
                    self.clients.len(),
                    self.clients_max
                ),
            ));
        }
        if self.trusted_sources.len() > crate::auth::gate::TRUSTED_SOURCES_MAX {
            return Err(invalid(
                "auth.trusted_sources",
                format!(
                    "{} networks; at most {}",
                    self.trusted_sources.len(),
                    crate::auth::gate::TRUSTED_SOURCES_MAX
                ),
            ));
        }
        for net in &self.trusted_sources {
            parse_cidr(net).map_err(|reason| invalid("auth.trusted_sources", reason))?;
        }
        check_quota(self.anonymous_keys_max, self.anonymous_bytes_max)
            .map_err(|reason| invalid("auth.anonymous_keys_max/anonymous_bytes_max", reason))?;
        for c in &self.clients {
            c.check().map_err(|reason| invalid("auth.clients", reason))?;
        }
        for (i, a) in self.clients.iter().enumerate() {
            for b in &self.clients[i + 1..] {
                let clash = if a.name == b.name {
                    Some("name")
                } else if a.key_id == b.key_id {
                    Some("key_id")
                } else {
                    None
                };
                if let Some(field) = clash {
                    return Err(invalid(
                        "auth.clients",
                        format!("{} and {} have the same {field}", a.name, b.name),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Protected mode: anonymous access served on an address other than loopback is refused,
    /// naming the key that exposes it.
    pub(super) fn validate_exposure(&self, config: &super::Config) -> Result<(), ConfigError> {
        if !self.allows_anonymous() || !self.protected_mode {
            return Ok(());
        }
        let exposed = data_plane_addresses(config).into_iter().find(|(ip, _)| !ip.is_loopback());
        match exposed {
            None => Ok(()),
            Some((ip, key)) => Err(invalid(
                "auth.anonymous",
                format!(
                    "is \"{}\" while {key} serves {ip}, which is not loopback: anyone who reaches it \
                     could read and write without credentials. Give clients keys ([[auth.clients]]) \
                     and set anonymous = \"none\", or bind loopback, or (a private lab link only) \
                     set auth.protected_mode = false",
                    self.anonymous.name()
                ),
            )),
        }
    }

    /// The KV quota of anonymous requests, node-wide (`None`: unlimited).
    pub fn anonymous_quota(&self) -> Option<Quota> {
        Quota::of(self.anonymous_keys_max, self.anonymous_bytes_max)
    }

    /// True when some request needs no credentials.
    pub fn allows_anonymous(&self) -> bool {
        self.anonymous != Anonymous::None
    }
}

/// A principal for unit tests: the key is `key_id` in 64 hex digits, the password
/// `password-of-<name>-0123456789`, one client id, no expiry.
#[cfg(test)]
pub(crate) fn test_client(name: &str, key_id: u32, client_id: u64, acl: &str) -> ClientConfig {
    ClientConfig {
        name: name.into(),
        key_id,
        client_id,
        client_ids: 1,
        key: Some(format!("{key_id:064x}")),
        password: Some(format!("password-of-{name}-0123456789")),
        acl: acl.into(),
        expires_unix_s: None,
        keys_max: None,
        bytes_max: None,
    }
}

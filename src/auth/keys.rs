//! The node's principals: who holds which key and password, for which client ids, with which
//! ACL. Built from `[auth]` at start (and rebuilt whole when the admin API adds or revokes one),
//! then shared by every shard and connection behind an `ArcSwap` ([`SharedKeys`]): a lookup is a
//! load and a hash probe, with no lock.
//!
//! Passwords are kept only as BLAKE3 digests: a lookup by bearer token hashes the token and
//! probes by digest, so its time does not depend on how much of a stored password matched.
//!
//! Invariants: key ids and names are unique; a revoked key id stays refused (named as revoked)
//! for the life of the table, and the revocation is never undone by adding a key with its id.

use super::Acl;
use crate::config::auth::{parse_key_hex, AuthConfig, ClientConfig};
use crate::projection::{Owner, Quota};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;

/// The table every shard reads, swapped whole on a change.
pub type SharedKeys = Arc<ArcSwap<KeyTable>>;

/// One principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Its name (the RESP user name).
    pub name: String,
    /// The key id its datagrams carry.
    pub key_id: u32,
    /// The first client id it speaks for.
    pub client_id: u64,
    /// How many client ids it speaks for, from `client_id` on.
    pub client_ids: u64,
    /// Its MAC key (none: no binary protocol).
    pub mac_key: Option<[u8; 32]>,
    /// BLAKE3 of its password (none: no RESP or HTTP).
    pub password_digest: Option<[u8; 32]>,
    /// What it may do.
    pub acl: Acl,
    /// When it stops being accepted, Unix seconds.
    pub expires_unix_s: Option<u64>,
    /// Its KV quota, node-wide (`None`: unlimited).
    pub quota: Option<Quota>,
}

impl Principal {
    /// From a checked config entry.
    pub fn from_config(c: &ClientConfig) -> Result<Principal, String> {
        c.check()?;
        Ok(Principal {
            name: c.name.clone(),
            key_id: c.key_id,
            client_id: c.client_id,
            client_ids: c.client_ids,
            mac_key: c.key.as_deref().map(parse_key_hex).transpose()?,
            password_digest: c.password.as_deref().map(password_digest),
            acl: Acl::parse(&c.acl)?,
            expires_unix_s: c.expires_unix_s,
            quota: c.quota(),
        })
    }

    /// True when `client_id` is one it speaks for.
    pub fn speaks_for(&self, client_id: u64) -> bool {
        client_id.wrapping_sub(self.client_id) < self.client_ids
    }

    /// Who its writes are for: its key id and quota (`projection::owner`).
    pub fn owner(&self) -> Owner {
        Owner { key_id: self.key_id, quota: self.quota }
    }

    /// True when it has expired at `now_unix_s`.
    pub fn expired(&self, now_unix_s: u64) -> bool {
        self.expires_unix_s.is_some_and(|t| now_unix_s >= t)
    }
}

/// The digest a password is kept as.
pub fn password_digest(password: &str) -> [u8; 32] {
    *blake3::hash(password.as_bytes()).as_bytes()
}

/// Why a login (RESP `AUTH`, an HTTP bearer token) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// No principal has this name and password (or this token).
    #[error("invalid username-password pair or user is disabled")]
    WrongPassword,
    /// The principal's key has expired.
    #[error("the credentials have expired")]
    Expired,
}

/// The principals, indexed.
#[derive(Clone, Debug, Default)]
pub struct KeyTable {
    principals: Vec<Principal>,
    by_key_id: HashMap<u32, usize>,
    by_name: HashMap<String, usize>,
    by_password: HashMap<[u8; 32], usize>,
    /// Key ids revoked since start, sorted.
    revoked: Vec<u32>,
    /// The client ids some principal speaks for: merged, sorted ranges `[start, end)`.
    bound: Vec<(u64, u64)>,
}

impl KeyTable {
    /// The table of `[auth]`'s principals.
    pub fn from_config(auth: &AuthConfig) -> Result<KeyTable, String> {
        let principals = auth.clients.iter().map(Principal::from_config).collect::<Result<Vec<_>, _>>()?;
        Ok(Self::build(principals, Vec::new()))
    }

    fn build(principals: Vec<Principal>, mut revoked: Vec<u32>) -> KeyTable {
        revoked.sort_unstable();
        revoked.dedup();
        let mut t = KeyTable { revoked, ..KeyTable::default() };
        let mut ranges = Vec::with_capacity(principals.len());
        for (i, p) in principals.iter().enumerate() {
            t.by_key_id.insert(p.key_id, i);
            t.by_name.insert(p.name.clone(), i);
            if let Some(d) = p.password_digest {
                t.by_password.insert(d, i);
            }
            ranges.push((p.client_id, p.client_id.saturating_add(p.client_ids)));
        }
        ranges.sort_unstable();
        for (s, e) in ranges {
            match t.bound.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => t.bound.push((s, e)),
            }
        }
        t.principals = principals;
        t
    }

    /// The table shared by the shards.
    pub fn shared(self) -> SharedKeys {
        Arc::new(ArcSwap::from_pointee(self))
    }

    /// Every principal.
    pub fn principals(&self) -> &[Principal] {
        &self.principals
    }

    /// Key ids revoked since start.
    pub fn revoked(&self) -> &[u32] {
        &self.revoked
    }

    /// The principal whose key id this is.
    pub fn by_key_id(&self, key_id: u32) -> Option<&Principal> {
        self.by_key_id.get(&key_id).map(|&i| &self.principals[i])
    }

    /// True when `key_id` was revoked.
    pub fn is_revoked(&self, key_id: u32) -> bool {
        self.revoked.binary_search(&key_id).is_ok()
    }

    /// True when some principal speaks for `client_id` (anonymous requests may not use it).
    pub fn is_bound(&self, client_id: u64) -> bool {
        let i = self.bound.partition_point(|&(s, _)| s <= client_id);
        i > 0 && client_id < self.bound[i - 1].1
    }

    /// RESP `AUTH [name] password`: the principal named `name` (or, without a name, the one whose
    /// password this is) if the password is its own and it has not expired.
    pub fn login(
        &self,
        name: Option<&str>,
        password: &str,
        now_unix_s: u64,
    ) -> Result<&Principal, LoginError> {
        let digest = password_digest(password);
        let found = match name {
            Some(n) => self.by_name.get(n).map(|&i| &self.principals[i]).filter(|p| {
                p.password_digest.is_some_and(|d| constant_time_eq::constant_time_eq_32(&d, &digest))
            }),
            None => self.by_password.get(&digest).map(|&i| &self.principals[i]),
        };
        let p = found.ok_or(LoginError::WrongPassword)?;
        if p.expired(now_unix_s) {
            return Err(LoginError::Expired);
        }
        Ok(p)
    }

    /// An HTTP or WebSocket bearer token: the principal whose password it is.
    pub fn bearer(&self, token: &str, now_unix_s: u64) -> Result<&Principal, LoginError> {
        self.login(None, token, now_unix_s)
    }

    /// A copy with `p` added; refused if its name or key id is taken or was revoked.
    pub fn with_added(&self, p: Principal) -> Result<KeyTable, String> {
        if self.by_name.contains_key(&p.name) {
            return Err(format!("a principal named {} exists", p.name));
        }
        if self.by_key_id.contains_key(&p.key_id) || self.is_revoked(p.key_id) {
            return Err(format!("key id {} is in use or was revoked: take another", p.key_id));
        }
        let mut all = self.principals.clone();
        all.push(p);
        Ok(Self::build(all, self.revoked.clone()))
    }

    /// A copy with `key_id` revoked (no principal has it now: one revoked before it was added).
    pub fn with_revoked_id(&self, key_id: u32) -> KeyTable {
        let mut revoked = self.revoked.clone();
        revoked.push(key_id);
        Self::build(self.principals.clone(), revoked)
    }

    /// The least key id above every one in use or revoked.
    pub fn next_key_id(&self) -> u32 {
        let used = self.principals.iter().map(|p| p.key_id).chain(self.revoked.iter().copied());
        used.max().unwrap_or(0).saturating_add(1)
    }

    /// A copy without the principal named `name`, its key id revoked.
    pub fn with_revoked(&self, name: &str) -> Result<KeyTable, String> {
        let i = *self.by_name.get(name).ok_or_else(|| format!("no principal named {name}"))?;
        let mut all = self.principals.clone();
        let gone = all.remove(i);
        let mut revoked = self.revoked.clone();
        revoked.push(gone.key_id);
        Ok(Self::build(all, revoked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::auth::test_client as client;

    fn table() -> KeyTable {
        let mut a = client("loadgen", 2, 1000, "+@read +@write");
        a.client_ids = 64;
        let auth =
            AuthConfig { clients: vec![client("orders", 1, 1111, "+@all"), a], ..AuthConfig::default() };
        KeyTable::from_config(&auth).unwrap()
    }

    #[test]
    fn bound_client_ids() {
        let t = table();
        assert!(t.is_bound(1111));
        assert!(t.is_bound(1000) && t.is_bound(1063));
        assert!(!t.is_bound(1064) && !t.is_bound(999) && !t.is_bound(0));
        assert!(t.by_key_id(2).unwrap().speaks_for(1010));
        assert!(!t.by_key_id(2).unwrap().speaks_for(1111));
    }

    #[test]
    fn logins() {
        let t = table();
        let pw = "password-of-orders-0123456789";
        assert_eq!(t.login(Some("orders"), pw, 0).unwrap().key_id, 1);
        assert_eq!(t.login(None, pw, 0).unwrap().key_id, 1);
        assert_eq!(t.login(Some("loadgen"), pw, 0), Err(LoginError::WrongPassword));
        assert_eq!(t.bearer("nope-nope-nope-nope", 0), Err(LoginError::WrongPassword));
    }

    #[test]
    fn revoke_and_add() {
        let t = table().with_revoked("orders").unwrap();
        assert!(t.by_key_id(1).is_none() && t.is_revoked(1));
        assert!(!t.is_bound(1111));
        let again = Principal::from_config(&client("orders", 1, 1111, "+@read")).unwrap();
        assert!(t.with_added(again).is_err(), "a revoked key id is never reused");
        let other = Principal::from_config(&client("orders", 9, 1111, "+@read")).unwrap();
        assert!(t.with_added(other).unwrap().by_key_id(9).is_some());
    }

    #[test]
    fn expiry() {
        let mut c = client("temp", 3, 5, "+@read");
        c.expires_unix_s = Some(100);
        let t = KeyTable::from_config(&AuthConfig { clients: vec![c], ..AuthConfig::default() }).unwrap();
        assert!(t.login(Some("temp"), "password-of-temp-0123456789", 99).is_ok());
        assert_eq!(t.login(Some("temp"), "password-of-temp-0123456789", 100), Err(LoginError::Expired));
    }
}

//! One shard's admission of a request datagram: who sent it, what it may do, and whether its
//! source address is proven. The engine asks before it reads any frame.
//!
//! The order of the checks: the blocks' framing; then, for an authenticated datagram, the key
//! (known, not revoked), the MAC, the key's expiry, the client id (one the key speaks for), the
//! timestamp (within `auth.replay_window_ms` of the node's clock) and the nonce (not seen in the
//! (key, client) window); for an anonymous one, that anonymous access is on and that its client
//! id is not one a key speaks for. Any failure refuses the whole datagram with one
//! `AUTH_FAILED` frame whose body is the [`Refusal`] byte, counted by reason.
//!
//! A source is proven when it is loopback or in `auth.trusted_sources`, a TCP connection (its
//! handshake proved the address),
//! the datagram carries a valid address cookie, or it is authenticated (fresh and MAC'd: only the
//! key holder made it, and it was not replayed to this shard).
//!
//! Replay windows are per shard and bounded (`auth.replay_windows_max`): one idle past the
//! timestamp bound is forgotten when room is needed (every datagram it saw is refused by that
//! bound anyway); if none is, the datagram is refused (`TooManySessions`), never admitted without
//! a window. A datagram captured and sent to another shard of the same node (another source
//! address or port) within the bound is admitted there once: docs/SECURITY.md says so.

use super::acl::Acl;
use super::cookie::CookieJar;
use super::ext::{self, COOKIE_LEN};
use super::keys::SharedKeys;
use super::mac;
use super::replay::ReplayWindow;
use crate::projection::owner::ANONYMOUS_OWNER;
use crate::projection::{Owner, Quota};
use crate::wire::Header;
use std::collections::HashMap;
use vigil_pmd::{Nanos, Peer};

/// Why a datagram was refused: the body byte of its `AUTH_FAILED` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Refusal {
    /// No credentials, and anonymous access is off.
    CredentialsRequired = 1,
    /// No principal has this key id.
    UnknownKey = 2,
    /// The MAC does not match the datagram under the key.
    BadMac = 3,
    /// The key has expired.
    Expired = 4,
    /// The key was revoked.
    Revoked = 5,
    /// The nonce was seen before (or is below the window): a replay.
    Replayed = 6,
    /// The timestamp is further from the node's clock than `auth.replay_window_ms`.
    StaleTimestamp = 7,
    /// The client id is not one the key speaks for.
    ClientIdNotBound = 8,
    /// An anonymous datagram used a client id that a key speaks for.
    ClientIdReserved = 9,
    /// The datagram ends inside its cookie or authentication block.
    Truncated = 10,
    /// Every replay window of the shard is in use within the timestamp bound.
    TooManySessions = 11,
    /// The principal has no MAC key (it logs in over RESP or HTTP only).
    NoMacKey = 12,
}

/// Every refusal, in byte order (index = byte - 1).
pub const REFUSALS: [Refusal; 12] = [
    Refusal::CredentialsRequired,
    Refusal::UnknownKey,
    Refusal::BadMac,
    Refusal::Expired,
    Refusal::Revoked,
    Refusal::Replayed,
    Refusal::StaleTimestamp,
    Refusal::ClientIdNotBound,
    Refusal::ClientIdReserved,
    Refusal::Truncated,
    Refusal::TooManySessions,
    Refusal::NoMacKey,
];

impl Refusal {
    /// Its name in metrics labels and docs.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::CredentialsRequired => "credentials_required",
            Refusal::UnknownKey => "unknown_key",
            Refusal::BadMac => "bad_mac",
            Refusal::Expired => "expired",
            Refusal::Revoked => "revoked",
            Refusal::Replayed => "replayed",
            Refusal::StaleTimestamp => "stale_timestamp",
            Refusal::ClientIdNotBound => "client_id_not_bound",
            Refusal::ClientIdReserved => "client_id_reserved",
            Refusal::Truncated => "truncated",
            Refusal::TooManySessions => "too_many_sessions",
            Refusal::NoMacKey => "no_mac_key",
        }
    }

    /// The refusal for a body byte.
    pub fn from_u8(b: u8) -> Option<Refusal> {
        REFUSALS.get(usize::from(b).checked_sub(1)?).copied()
    }
}

/// What the gate counted; plain integers owned by the shard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthCounters {
    /// Datagrams refused, by `Refusal` byte - 1.
    pub refused: [u64; REFUSALS.len()],
    /// Datagrams admitted with a valid MAC.
    pub authenticated: u64,
    /// Datagrams admitted without credentials.
    pub anonymous: u64,
    /// Requests refused `FORBIDDEN` (the ACL).
    pub forbidden: u64,
    /// Requests refused `ADDRESS_UNPROVEN` (a cookie sent instead).
    pub unproven: u64,
    /// Immediate answers dropped because they exceeded the amplification bound (a bug if ever
    /// non-zero: every opcode that could is refused before it runs).
    pub amplification_dropped: u64,
}

impl AuthCounters {
    /// Every refusal by its name (`Refusal::name`, then `forbidden`, `address_unproven`,
    /// `amplification_dropped`): one list for the metrics, the dashboard and the JSON API.
    pub fn refusals(&self) -> [(&'static str, u64); REFUSALS.len() + 3] {
        let mut out = [("", 0); REFUSALS.len() + 3];
        for (i, r) in REFUSALS.iter().enumerate() {
            out[i] = (r.name(), self.refused[i]);
        }
        let n = REFUSALS.len();
        out[n] = ("forbidden", self.forbidden);
        out[n + 1] = ("address_unproven", self.unproven);
        out[n + 2] = ("amplification_dropped", self.amplification_dropped);
        out
    }
}

/// An admitted datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// What its requests may do.
    pub acl: Acl,
    /// Whether its source address is proven (answers of any size may go to it).
    pub proven: bool,
    /// Where its first frame starts.
    pub frames_offset: usize,
    /// Who its writes are for: the principal that signed it, or anonymous, with the node-wide
    /// quota (`projection::owner`).
    pub owner: Owner,
}

/// The gate's settings.
#[derive(Clone, Copy, Debug)]
pub struct GateLimits {
    /// What anonymous datagrams may do (`None`: refused).
    pub anonymous: Option<Acl>,
    /// The KV quota of anonymous requests, node-wide (`auth.anonymous_keys_max`,
    /// `anonymous_bytes_max`).
    pub anonymous_quota: Option<Quota>,
    /// The timestamp bound, ms.
    pub replay_window_ms: u64,
    /// Replay windows this shard holds at most.
    pub replay_windows_max: usize,
    /// Source networks counted as proven (`auth.trusted_sources`): (network, mask), at most
    /// [`TRUSTED_SOURCES_MAX`].
    pub trusted: [(u32, u32); TRUSTED_SOURCES_MAX],
    /// How many of `trusted` are in use.
    pub trusted_len: usize,
}

/// Most entries of `auth.trusted_sources`.
pub const TRUSTED_SOURCES_MAX: usize = 16;

impl GateLimits {
    fn trusts(&self, ip: std::net::Ipv4Addr) -> bool {
        let ip = ip.to_bits();
        self.trusted[..self.trusted_len].iter().any(|&(net, mask)| ip & mask == net)
    }
}

/// One shard's gate.
#[derive(Debug)]
pub struct Gate {
    keys: SharedKeys,
    cookies: CookieJar,
    limits: GateLimits,
    windows: HashMap<(u32, u64), ReplayWindow>,
    counters: AuthCounters,
}

impl Gate {
    /// A gate over the node's keys and cookie jar; its replay windows are allocated now.
    pub fn new(keys: SharedKeys, cookies: CookieJar, limits: GateLimits) -> Self {
        assert!(limits.replay_windows_max > 0);
        let windows = HashMap::with_capacity(limits.replay_windows_max);
        Self { keys, cookies, limits, windows, counters: AuthCounters::default() }
    }

    /// Counters so far.
    pub fn counters(&self) -> AuthCounters {
        self.counters
    }

    /// Counts a request refused `FORBIDDEN`.
    pub fn count_forbidden(&mut self) {
        self.counters.forbidden += 1;
    }

    /// Counts an immediate answer dropped for the amplification bound.
    pub fn count_amplification_dropped(&mut self) {
        self.counters.amplification_dropped += 1;
    }

    /// A cookie for `peer` (the body of an `ADDRESS_UNPROVEN` answer), counted.
    pub fn cookie_for(&mut self, peer: &Peer, now: Nanos) -> [u8; COOKIE_LEN] {
        self.counters.unproven += 1;
        self.cookies.issue(peer.ip, now)
    }

    /// Decides on `datagram` (whose header is `header`) from `peer` at `now` (Unix ns).
    pub fn admit(
        &mut self,
        datagram: &[u8],
        header: &Header,
        peer: &Peer,
        now: Nanos,
    ) -> Result<Admission, Refusal> {
        let result = self.decide(datagram, header, peer, now);
        match result {
            Err(r) => self.counters.refused[r as usize - 1] += 1,
            Ok(_) if header.flags & ext::FLAG_AUTH != 0 => self.counters.authenticated += 1,
            Ok(_) => self.counters.anonymous += 1,
        }
        result
    }

    fn decide(
        &mut self,
        datagram: &[u8],
        header: &Header,
        peer: &Peer,
        now: Nanos,
    ) -> Result<Admission, Refusal> {
        let blocks = ext::decode(datagram, header.flags).map_err(|_| Refusal::Truncated)?;
        let Some(auth) = blocks.auth else {
            let acl = self.limits.anonymous.ok_or(Refusal::CredentialsRequired)?;
            if header.client_id != 0 && self.keys.load().is_bound(header.client_id) {
                return Err(Refusal::ClientIdReserved);
            }
            // Only an anonymous datagram needs its source proven, and its cookie only checked
            // (two keyed hashes) when the source is not local already.
            let proven = peer.ip.is_loopback()
                || peer.as_connection().is_some()
                || self.limits.trusts(peer.ip)
                || blocks.cookie.is_some_and(|c| self.cookies.check(peer.ip, &c, now));
            let owner = Owner { key_id: ANONYMOUS_OWNER, quota: self.limits.anonymous_quota };
            return Ok(Admission { acl, proven, frames_offset: blocks.frames_offset, owner });
        };
        let keys = self.keys.load();
        let Some(p) = keys.by_key_id(auth.key_id) else {
            return Err(if keys.is_revoked(auth.key_id) { Refusal::Revoked } else { Refusal::UnknownKey });
        };
        let key = p.mac_key.as_ref().ok_or(Refusal::NoMacKey)?;
        if !mac::verify(key, datagram, auth.mac_offset, &auth.mac) {
            return Err(Refusal::BadMac);
        }
        if p.expired(now.0 / 1_000_000_000) {
            return Err(Refusal::Expired);
        }
        if !p.speaks_for(header.client_id) {
            return Err(Refusal::ClientIdNotBound);
        }
        let (acl, owner) = (p.acl, p.owner());
        drop(keys);
        let now_ms = now.0 / 1_000_000;
        if auth.timestamp_ms.abs_diff(now_ms) > self.limits.replay_window_ms {
            return Err(Refusal::StaleTimestamp);
        }
        self.check_nonce(auth.key_id, header.client_id, auth.nonce, auth.timestamp_ms, now_ms)?;
        Ok(Admission { acl, proven: true, frames_offset: blocks.frames_offset, owner })
    }

    fn check_nonce(
        &mut self,
        key_id: u32,
        client_id: u64,
        nonce: u64,
        ts_ms: u64,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        if let Some(w) = self.windows.get_mut(&(key_id, client_id)) {
            return if w.accept(nonce, ts_ms) { Ok(()) } else { Err(Refusal::Replayed) };
        }
        if self.windows.len() >= self.limits.replay_windows_max {
            // Forget the windows every datagram of which the timestamp bound refuses anyway.
            let bound = self.limits.replay_window_ms;
            self.windows.retain(|_, w| w.newest_ms >= now_ms.saturating_sub(bound));
            if self.windows.len() >= self.limits.replay_windows_max {
                return Err(Refusal::TooManySessions);
            }
        }
        self.windows.insert((key_id, client_id), ReplayWindow::first(nonce, ts_ms));
        Ok(())
    }
}

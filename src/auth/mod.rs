//! Access control for the data plane (docs/SECURITY.md): who sent a request, what they may do,
//! and how much the node may send to where it came from.
//!
//! - [`acl`]: roles as Redis ACL categories, and which category each binary opcode needs;
//! - [`ext`]: the byte layout of a datagram's cookie and authentication blocks;
//! - [`mac`]: the keyed-BLAKE3 MAC over an authenticated datagram;
//! - [`replay`]: the per-(key, client) nonce window that refuses a datagram seen before;
//! - [`cookie`]: the address cookies that prove a source address (the amplification bound);
//! - [`keys`]: the node's principals, built from `[auth]` (and the admin API), shared by the
//!   shards behind an `ArcSwap`;
//! - [`admin`]: principals added and revoked while the node runs (the admin API);
//! - [`gate`]: one shard's admission of a datagram: the decision and its counters.
//!
//! Everything here is sans-IO: the clock and the cookie secret come in as values.
//!
//! Invariants: a datagram that fails admission executes nothing; the MAC is checked before any
//! frame is parsed; an answer to a source that has not proven its address is never larger than
//! [`AMPLIFICATION_FACTOR_MAX`] times the request (checked per datagram by the engine).

pub mod acl;
pub mod admin;
pub mod cookie;
pub mod ext;
pub mod gate;
pub mod keys;
pub mod mac;
pub mod replay;

pub use acl::Acl;
pub use gate::{Admission, AuthCounters, Gate, Refusal};
pub use keys::{KeyTable, Principal, SharedKeys};

/// Most bytes sent to an unproven source per byte it sent (QUIC's and DNS cookies' rule).
pub const AMPLIFICATION_FACTOR_MAX: usize = 3;

/// A client's credentials for the binary protocol: what `sign` needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// The key id.
    pub key_id: u32,
    /// The MAC key.
    pub key: [u8; 32],
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ key_id: {}, key: (hidden) }}", self.key_id)
    }
}

impl Credentials {
    /// From a key id and the key's 64 hex digits (as in `[[auth.clients]]`).
    pub fn from_hex(key_id: u32, key_hex: &str) -> Result<Self, String> {
        Ok(Self { key_id, key: crate::config::auth::parse_key_hex(key_hex)? })
    }
}

/// Signs a finished request datagram (`datagram` is exactly its bytes) that was started with
/// `DatagramWriter::request_with_blocks(.., ext::FLAG_AUTH | ..)`: writes the authentication
/// block (`timestamp_ms`: the client's Unix time in ms; `nonce`: never used before with this key
/// and client id, e.g. a counter started at the client's Unix time in ns) and the MAC. Fill a
/// cookie block (`ext::put_cookie`) before signing: the MAC covers it.
pub fn sign(datagram: &mut [u8], credentials: &Credentials, timestamp_ms: u64, nonce: u64) {
    let flags = datagram[3];
    assert!(flags & ext::FLAG_AUTH != 0, "the header announces no authentication block");
    assert!(
        datagram.len() >= ext::auth_block_offset(flags) + ext::AUTH_BLOCK_LEN,
        "the datagram has no room for its blocks: build it with DatagramWriter::request_with_blocks"
    );
    let mac_offset = ext::put_auth(datagram, flags, credentials.key_id, timestamp_ms, nonce);
    mac::seal(&credentials.key, datagram, mac_offset);
}

/// Finishes a request datagram started with `DatagramWriter::request_with_blocks` (`datagram`
/// is exactly its bytes): puts the cookie in its block, then signs it with `signer` (credentials,
/// timestamp in Unix ms, nonce). The one way clients, tools and tests seal a request.
pub fn seal_request(
    datagram: &mut [u8],
    cookie: Option<&[u8; ext::COOKIE_LEN]>,
    signer: Option<(&Credentials, u64, u64)>,
) {
    if let Some(c) = cookie {
        ext::put_cookie(datagram, c);
    }
    if let Some((credentials, timestamp_ms, nonce)) = signer {
        sign(datagram, credentials, timestamp_ms, nonce);
    }
}

/// What every shard of a node shares for access control: the principals and the cookie secret.
#[derive(Clone, Debug)]
pub struct NodeAuth {
    /// The principals (swapped whole by the admin API).
    pub keys: SharedKeys,
    cookies: cookie::CookieJar,
    limits: gate::GateLimits,
}

impl NodeAuth {
    /// From `[auth]`, with the cookie secret drawn by the caller (at start, from the OS).
    pub fn new(auth: &crate::config::AuthConfig, cookie_secret: [u8; 32]) -> Result<NodeAuth, String> {
        let mut limits = gate::GateLimits {
            anonymous: auth.anonymous.acl(),
            anonymous_quota: auth.anonymous_quota(),
            replay_window_ms: auth.replay_window_ms,
            replay_windows_max: auth.replay_windows_max,
            trusted: [(0, 0); gate::TRUSTED_SOURCES_MAX],
            trusted_len: auth.trusted_sources.len(),
        };
        for (slot, net) in limits.trusted.iter_mut().zip(&auth.trusted_sources) {
            let (ip, len) = crate::config::auth::parse_cidr(net)?;
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            *slot = (ip.to_bits() & mask, mask);
        }
        Ok(NodeAuth {
            keys: KeyTable::from_config(auth)?.shared(),
            cookies: cookie::CookieJar::new(cookie_secret),
            limits,
        })
    }

    /// Who anonymous requests are for: no principal, with the anonymous quota.
    pub fn anonymous_owner(&self) -> crate::projection::Owner {
        crate::projection::Owner { key_id: 0, quota: self.limits.anonymous_quota }
    }

    /// A shard's gate (its replay windows allocated now).
    pub fn gate(&self) -> Gate {
        Gate::new(self.keys.clone(), self.cookies.clone(), self.limits)
    }
}

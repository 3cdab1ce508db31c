//! Address cookies: the proof that a source address receives what the node sends to it (QUIC's
//! address validation tokens, DNS cookies, RFC 7873).
//!
//! A cookie is keyed BLAKE3 over the source IPv4 address and the current period, truncated to 16
//! bytes, under a secret drawn at start (so a restart invalidates every cookie: clients fetch a
//! new one when told `ADDRESS_UNPROVEN`). It is valid in the period it was made and the next one,
//! so a cookie lives between [`PERIOD_NS`] and twice that. Only someone who receives the node's
//! datagrams at that address can know it, so a datagram that carries it did not come from a
//! forged source.

use super::ext::COOKIE_LEN;
use std::net::Ipv4Addr;
use vigil_pmd::Nanos;

/// How long a cookie period lasts: 2 minutes.
pub const PERIOD_NS: u64 = 120_000_000_000;

/// Makes and checks cookies under one secret (the same on every shard of a node).
#[derive(Clone)]
pub struct CookieJar {
    secret: [u8; 32],
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieJar(secret hidden)")
    }
}

impl CookieJar {
    /// A jar under `secret` (drawn from the OS's random source at start).
    pub fn new(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    fn make(&self, ip: Ipv4Addr, period: u64) -> [u8; COOKIE_LEN] {
        let mut h = blake3::Hasher::new_keyed(&self.secret);
        h.update(&ip.octets());
        h.update(&period.to_le_bytes());
        let mut out = [0u8; COOKIE_LEN];
        h.finalize_xof().fill(&mut out);
        out
    }

    /// The cookie to give `ip` now.
    pub fn issue(&self, ip: Ipv4Addr, now: Nanos) -> [u8; COOKIE_LEN] {
        self.make(ip, now.0 / PERIOD_NS)
    }

    /// True when `cookie` was issued to `ip` in this period or the one before.
    pub fn check(&self, ip: Ipv4Addr, cookie: &[u8; COOKIE_LEN], now: Nanos) -> bool {
        let period = now.0 / PERIOD_NS;
        let current = constant_time_eq::constant_time_eq_16(&self.make(ip, period), cookie);
        let previous =
            period > 0 && constant_time_eq::constant_time_eq_16(&self.make(ip, period - 1), cookie);
        current | previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_to_address_and_time() {
        let jar = CookieJar::new([3; 32]);
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let t = Nanos(5 * PERIOD_NS + 7);
        let c = jar.issue(a, t);
        assert!(jar.check(a, &c, t));
        assert!(jar.check(a, &c, Nanos(t.0 + PERIOD_NS)), "valid in the next period");
        assert!(!jar.check(a, &c, Nanos(t.0 + 2 * PERIOD_NS)), "expired");
        assert!(!jar.check(Ipv4Addr::new(10, 0, 0, 2), &c, t), "another address");
        assert!(!CookieJar::new([4; 32]).check(a, &c, t), "another secret (a restart)");
    }
}

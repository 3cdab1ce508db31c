//! What a request datagram carries besides its frame: the address cookie a node gave this client
//! (docs/PROTOCOL.md, "Address validation") and, with credentials, the authentication block and
//! its MAC ("Authentication"). [`Sealer::encode`] writes one attempt's datagram.
//!
//! Every attempt is a new datagram: its frame (client id, request id, opcode, body) is the same
//! as the first attempt's, so a resent write is still exactly-once, but a signed one gets a fresh
//! nonce and timestamp (the node refuses a nonce it saw as a replay) and the cookie the node
//! holds now.
//!
//! Invariants: a nonce is never used twice by one `Sealer`, and a new `Sealer` starts its counter
//! at the Unix time in ns, above any nonce an earlier process under the same key and client id
//! can have reached (unless it sent more than one datagram per ns); a cookie is kept per node
//! address and sent only to that node (cookies are bound to the node's secret and our address).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::SystemTime;
use vigil::auth::ext::{self, COOKIE_LEN, FLAG_AUTH, FLAG_COOKIE};
use vigil::auth::{self, Credentials};
use vigil::wire::{DatagramWriter, NoRoom};

/// An address cookie: the body of an `ADDRESS_UNPROVEN` answer.
pub type Cookie = [u8; COOKIE_LEN];

/// Signs and stamps one client's request datagrams.
#[derive(Debug)]
pub struct Sealer {
    credentials: Option<Credentials>,
    next_nonce: u64,
    cookies: HashMap<SocketAddr, Cookie>,
}

/// Nanoseconds since the Unix epoch now (the server's own reading: `serve::wall_clock::unix_ns`).
fn unix_ns() -> u64 {
    vigil::serve::wall_clock::unix_ns(SystemTime::now())
}

impl Sealer {
    /// A sealer that signs with `credentials` (none: anonymous datagrams).
    pub fn new(credentials: Option<Credentials>) -> Self {
        Self { credentials, next_nonce: unix_ns(), cookies: HashMap::new() }
    }

    /// Whether datagrams are signed.
    pub fn signs(&self) -> bool {
        self.credentials.is_some()
    }

    /// The cookie held for `node`, if any.
    pub fn cookie(&self, node: SocketAddr) -> Option<Cookie> {
        self.cookies.get(&node).copied()
    }

    /// Keeps the cookie `node` sent (an `ADDRESS_UNPROVEN` answer's body); `false` if the body is
    /// not a cookie, or is the cookie just sent (the node refused it: resending cannot help).
    pub fn learn_cookie(&mut self, node: SocketAddr, body: &[u8]) -> bool {
        let Ok(cookie) = Cookie::try_from(body) else { return false };
        self.cookies.insert(node, cookie) != Some(cookie)
    }

    /// Bytes the blocks add to a datagram for `node`.
    pub fn overhead(&self, node: SocketAddr) -> usize {
        ext::extensions_len(self.flags(node))
    }

    fn flags(&self, node: SocketAddr) -> u8 {
        let cookie = if self.cookies.contains_key(&node) { FLAG_COOKIE } else { 0 };
        let signed = if self.credentials.is_some() { FLAG_AUTH } else { 0 };
        cookie | signed
    }

    /// Writes into `out` the datagram of one attempt at request `request_id` (`opcode`, `body`)
    /// from `client_id` to `node`: the cookie held for `node`, then (with credentials) the
    /// authentication block under a fresh nonce. Returns its length.
    pub fn encode(
        &mut self,
        out: &mut [u8],
        node: SocketAddr,
        client_id: u64,
        request_id: u64,
        opcode: u8,
        body: &[u8],
    ) -> Result<usize, NoRoom> {
        let flags = self.flags(node);
        let mut w = DatagramWriter::request_with_blocks(out, client_id, flags)?;
        w.push(opcode, 0, request_id, body)?;
        let len = w.finish();
        let signer = self.credentials.as_ref().map(|creds| {
            let nonce = self.next_nonce;
            self.next_nonce += 1;
            (creds, unix_ns() / 1_000_000, nonce)
        });
        auth::seal_request(&mut out[..len], self.cookies.get(&node), signer);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil::auth::mac;
    use vigil::wire::{self, Frames};

    fn node() -> SocketAddr {
        "10.0.0.1:9000".parse().unwrap()
    }

    fn creds() -> Credentials {
        Credentials::from_hex(7, &"ab".repeat(32)).unwrap()
    }

    #[test]
    fn anonymous_without_a_cookie_is_a_plain_request() {
        let mut s = Sealer::new(None);
        let mut a = [0u8; 256];
        let len = s.encode(&mut a, node(), 5, 9, wire::opcode::GET, b"k").unwrap();
        let mut b = [0u8; 256];
        let mut w = DatagramWriter::request(&mut b, 5).unwrap();
        w.push(wire::opcode::GET, 0, 9, b"k").unwrap();
        assert_eq!(w.finish(), len);
        assert_eq!(a[..len], b[..len], "byte for byte what DatagramWriter::request writes");
        assert_eq!(s.overhead(node()), 0);
    }

    #[test]
    fn a_cookie_goes_to_its_node_only_and_a_refused_one_is_not_learnt_twice() {
        let mut s = Sealer::new(None);
        let cookie = [0x5au8; 16];
        assert!(!s.learn_cookie(node(), &[1, 2, 3]), "not a cookie");
        assert!(s.learn_cookie(node(), &cookie));
        assert!(!s.learn_cookie(node(), &cookie), "the same cookie again: the node refused it");
        let mut d = [0u8; 256];
        let len = s.encode(&mut d, node(), 5, 9, wire::opcode::GET, b"k").unwrap();
        let h = wire::decode_header(&d[..len]).unwrap();
        let blocks = ext::decode(&d[..len], h.flags).unwrap();
        assert_eq!(blocks.cookie, Some(cookie));
        assert!(blocks.auth.is_none());
        let f = Frames::at(&d[..len], blocks.frames_offset, h.count).next().unwrap().unwrap();
        assert_eq!((f.opcode, f.request_id, f.body), (wire::opcode::GET, 9, &b"k"[..]));
        let other: SocketAddr = "10.0.0.2:9000".parse().unwrap();
        let len = s.encode(&mut d, other, 5, 9, wire::opcode::GET, b"k").unwrap();
        assert_eq!(wire::decode_header(&d[..len]).unwrap().flags & FLAG_COOKIE, 0, "another node");
        assert!(s.learn_cookie(node(), &[0x77; 16]), "a new cookie replaces the old");
        assert_eq!(s.cookie(node()), Some([0x77; 16]));
    }

    #[test]
    fn signed_datagrams_verify_and_every_attempt_has_a_fresh_nonce() {
        let mut s = Sealer::new(Some(creds()));
        s.learn_cookie(node(), &[3; 16]);
        assert_eq!(s.overhead(node()), 16 + 40);
        let mut seen = Vec::new();
        for _ in 0..3 {
            let mut d = [0u8; 256];
            let len = s.encode(&mut d, node(), 100_000, 42, wire::opcode::SET, b"body").unwrap();
            let d = &d[..len];
            let h = wire::decode_header(d).unwrap();
            assert_eq!(h.flags & (FLAG_AUTH | FLAG_COOKIE), FLAG_AUTH | FLAG_COOKIE);
            let blocks = ext::decode(d, h.flags).unwrap();
            let a = blocks.auth.unwrap();
            assert_eq!(a.key_id, 7);
            assert!(mac::verify(&creds().key, d, a.mac_offset, &a.mac));
            assert!(!mac::verify(&[0xac; 32], d, a.mac_offset, &a.mac), "another key");
            let now_ms = unix_ns() / 1_000_000;
            assert!(a.timestamp_ms.abs_diff(now_ms) < 5_000, "the Unix time in ms");
            let f = Frames::at(d, blocks.frames_offset, h.count).next().unwrap().unwrap();
            assert_eq!((f.request_id, f.body), (42, &b"body"[..]), "the same frame every attempt");
            seen.push(a.nonce);
        }
        assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "one nonce per datagram: {seen:?}");
        assert!(seen[0] > 1_700_000_000_000_000_000, "started at the Unix time in ns");
        let later = Sealer::new(Some(creds()));
        assert!(later.next_nonce > seen[2], "a restarted client starts above the earlier nonces");
    }

    #[test]
    fn a_datagram_too_small_for_the_blocks_is_no_room() {
        let mut s = Sealer::new(Some(creds()));
        let mut d = [0u8; 16 + 40 + 15];
        assert!(s.encode(&mut d, node(), 1, 1, wire::opcode::PING, &[]).is_err(), "no room for the frame");
    }
}

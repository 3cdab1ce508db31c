//! Access control for the load generator (docs/PROTOCOL.md, "Authentication" and "Address
//! validation"): the credentials a run signs with ([`RunAuth`], from `--credentials FILE`), the
//! client ids its threads and trials use inside the key's range, the address cookies fetched
//! before the run ([`fetch_cookie`]), and the per-thread [`Sealer`] that writes a datagram's
//! blocks and MAC.
//!
//! Cost per datagram: with a cookie, a 16-byte copy; with credentials, the 40-byte block and one
//! keyed BLAKE3 over the datagram (a few hundred ns for a small one), written in place in the
//! transmit buffer.
//!
//! Invariants: nothing here allocates after [`Sealer::new`]; a thread's nonces start at the Unix
//! time in ns when its sealer is made and grow by one per datagram (resends included), so they
//! never repeat for its client id, across trials and across loadgen runs; the client ids of a
//! run's threads and trials are distinct and all inside the key's range (checked before the run).

use crate::leaders::NODES_MAX;
use crate::load::LoadSpec;
use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};
use vigil::auth::ext::{self, COOKIE_LEN, FLAG_AUTH, FLAG_COOKIE};
use vigil::auth::{self, Credentials};
use vigil::wire::{self, opcode, DatagramWriter, Frames, NoRoom, Status};
use vigil_pmd::{Batch, Nanos, PacketIo, Peer, RxDatagram, TxDatagram};

/// An address cookie: the body of an `ADDRESS_UNPROVEN` answer.
pub type Cookie = [u8; COOKIE_LEN];

/// What a run signs with, and the client ids it may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunAuth {
    /// The key.
    pub credentials: Credentials,
    /// The first client id the key speaks for.
    pub client_id: u64,
    /// How many it speaks for, from `client_id` on.
    pub client_ids: u64,
}

impl RunAuth {
    /// Reads `--credentials FILE`: the node's `[[auth.clients]]` entry for the load generator,
    /// either alone (its fields at the top level) or as the one entry of an `[[auth.clients]]`
    /// array, as copied from the node's config. Needs `key_id`, `key`, `client_id` (and
    /// `client_ids`, default 1); the other fields (`name`, `acl`, ...) are read and checked as the
    /// node does.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("--credentials {}", path.display()))
    }

    /// [`RunAuth::load`] from the file's text.
    pub fn parse(text: &str) -> Result<Self> {
        let table: toml::Table = toml::from_str(text)?;
        let entry = match table.get("auth").and_then(|a| a.get("clients")) {
            Some(toml::Value::Array(entries)) if entries.len() == 1 => entries[0].clone(),
            Some(_) => bail!("give one [[auth.clients]] entry (the load generator's), not several"),
            None => toml::Value::Table(table),
        };
        let c: vigil::config::ClientConfig = entry.try_into().context("an [[auth.clients]] entry")?;
        let hex = c.key.as_deref().context("the entry has no `key` (a binary client needs one)")?;
        if c.key_id == 0 || c.client_id == 0 || c.client_ids == 0 {
            bail!("key_id, client_id and client_ids must be non-zero");
        }
        let credentials = Credentials::from_hex(c.key_id, hex).map_err(anyhow::Error::msg)?;
        Ok(Self { credentials, client_id: c.client_id, client_ids: c.client_ids })
    }

    /// The slice of `needed` client ids a run uses, from `first` (`None`: chosen from the process
    /// id, so back-to-back runs likely differ: a run that reuses an earlier run's client ids has
    /// its writes refused `STALE` by the node's exactly-once table). Fails, naming the numbers,
    /// when the key's range cannot hold them.
    pub fn slice(&self, needed: u64, first: Option<u64>) -> Result<u64> {
        let end = self.client_id + self.client_ids;
        if needed > self.client_ids {
            bail!(
                "this run needs {needed} client ids (one per thread and search trial) but the key speaks for \
                 {} ({}..{end}): raise the entry's client_ids to at least {needed}, or run fewer threads or \
                 search steps",
                self.client_ids,
                self.client_id
            );
        }
        let first = match first {
            Some(f) if f < self.client_id || f + needed > end => bail!(
                "--client-id {f}: with --credentials it is the first of the run's {needed} client ids, \
                 which must lie in the key's range {}..{end}",
                self.client_id
            ),
            Some(f) => f,
            None => self.client_id + u64::from(std::process::id()) % (self.client_ids / needed) * needed,
        };
        Ok(first)
    }
}

/// Nanoseconds since the Unix epoch now (the server's own reading: `serve::wall_clock::unix_ns`).
pub fn unix_ns() -> u64 {
    vigil::serve::wall_clock::unix_ns(SystemTime::now())
}

/// One generator thread's datagram blocks: the cookie of each node, the signature.
#[derive(Debug)]
pub struct Sealer {
    client_id: u64,
    credentials: Option<Credentials>,
    /// Per node index (as `Leaders` numbers them): its cookie.
    cookies: [Option<Cookie>; NODES_MAX],
    next_nonce: u64,
    /// Unix ns minus the run clock's ns: the run clock read as Unix time.
    unix_offset_ns: u64,
}

impl Sealer {
    /// A sealer for `client_id`, signing with `credentials` if given; `now` is the run clock's
    /// time (timestamps are the run clock plus its offset to the Unix clock, taken here).
    pub fn new(client_id: u64, credentials: Option<Credentials>, now: Nanos) -> Self {
        let unix = unix_ns();
        Self {
            client_id,
            credentials,
            cookies: [None; NODES_MAX],
            next_nonce: unix,
            unix_offset_ns: unix.wrapping_sub(now.0),
        }
    }

    /// The client id its datagrams carry.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// Sends `cookie` on every later datagram to node `node`.
    pub fn set_cookie(&mut self, node: usize, cookie: Cookie) {
        if let Some(slot) = self.cookies.get_mut(node) {
            *slot = Some(cookie);
        }
    }

    /// Keeps the cookie in an `ADDRESS_UNPROVEN` answer's `body` from node `node`, if it is one.
    #[inline]
    pub fn learn_cookie(&mut self, node: usize, body: &[u8]) {
        if let Ok(cookie) = Cookie::try_from(body) {
            self.set_cookie(node, cookie);
        }
    }

    /// The header flags of a datagram to `node`.
    #[inline]
    fn flags(&self, node: usize) -> u8 {
        let cookie = if self.cookies.get(node).is_some_and(Option::is_some) { FLAG_COOKIE } else { 0 };
        cookie | if self.credentials.is_some() { FLAG_AUTH } else { 0 }
    }

    /// Starts a request datagram to `node` in `buf`, room left for its blocks.
    #[inline]
    pub fn writer<'a>(&self, buf: &'a mut [u8], node: usize) -> Result<DatagramWriter<'a>, NoRoom> {
        DatagramWriter::request_with_blocks(buf, self.client_id, self.flags(node))
    }

    /// Fills the blocks of `datagram` (exactly the bytes [`Sealer::writer`] wrote for `node`):
    /// the cookie, then the authentication block and MAC under the next nonce, stamped `now`.
    #[inline]
    pub fn seal(&mut self, datagram: &mut [u8], node: usize, now: Nanos) {
        let cookie = self.cookies.get(node).and_then(Option::as_ref);
        let signer = self.credentials.as_ref().map(|creds| {
            let nonce = self.next_nonce;
            self.next_nonce += 1;
            (creds, now.0.wrapping_add(self.unix_offset_ns) / 1_000_000, nonce)
        });
        auth::seal_request(datagram, cookie, signer);
    }
}

/// Bytes the blocks add to every datagram of a run (the most: a cookie and a signature).
pub fn blocks_len(signed: bool, cookies: bool) -> usize {
    let flags = if signed { FLAG_AUTH } else { 0 } | if cookies { FLAG_COOKIE } else { 0 };
    ext::extensions_len(flags)
}

/// Whether a run against `ip` without credentials needs a cookie: every source but loopback must
/// prove its address before a node answers it more than it sent (a GET, for one).
pub fn needs_cookie(ip: Ipv4Addr, signed: bool) -> bool {
    !signed && !ip.is_loopback()
}

/// Asks `peer` for this source's address cookie over `io` before the run: sends an anonymous GET
/// (a few tries, 1 s in all) and takes the cookie from its `ADDRESS_UNPROVEN` answer. `None`: the
/// node answered otherwise (it asks no cookie of this source); an error if it refused the
/// datagram (`AUTH_FAILED`: anonymous access is off, say).
pub fn fetch_cookie<P: PacketIo>(
    io: &mut P,
    peer: &Peer,
    client_id: u64,
    stop: &AtomicBool,
) -> Result<Option<Cookie>> {
    const REQUEST_ID: u64 = 1;
    let mut rx = Batch::with_capacity(32);
    let mut tx = Batch::with_capacity(1);
    for _ in 0..4 {
        let Some(mut d) = io.tx_alloc(peer) else { bail!("no transmit buffer to ask for a cookie") };
        let mut w = DatagramWriter::request(d.payload_mut(), client_id).context("a GET datagram")?;
        w.push(opcode::GET, 0, REQUEST_ID, b"vigil-loadgen-cookie").context("a GET datagram")?;
        let len = w.finish();
        d.set_len(len);
        tx.push(d).map_err(|_| anyhow::anyhow!("transmit batch full"))?;
        io.tx_burst(&mut tx);
        tx.clear();
        let deadline = Instant::now() + Duration::from_millis(250);
        while Instant::now() < deadline {
            if stop.load(Ordering::Relaxed) {
                bail!("stopped while asking {}:{} for a cookie", peer.ip, peer.port);
            }
            io.rx_burst(&mut rx);
            for d in rx.drain() {
                if let Some(answer) = cookie_answer(d.payload(), client_id, REQUEST_ID) {
                    return answer.map_err(|why| {
                        anyhow::anyhow!(
                            "{}:{} refused an anonymous GET ({why}): give --credentials",
                            peer.ip,
                            peer.port
                        )
                    });
                }
            }
        }
    }
    bail!(
        "no answer from {}:{} to a GET asking for an address cookie (is it up, and does it speak the binary protocol?)",
        peer.ip,
        peer.port
    )
}

/// Fetches, before the run, the cookie of every node of `spec` (`seed`, then `spec.cluster`) that
/// asks one of this source ([`needs_cookie`]) into `spec.cookies`, over `io`. Nothing against a
/// reflector (`spec.reflector`: dpdk-testpmd sends the GET back, it gives no cookie).
pub fn fetch_cookies<P: PacketIo>(
    io: &mut P,
    seed: Peer,
    spec: &mut LoadSpec,
    stop: &AtomicBool,
) -> Result<()> {
    if spec.reflector {
        return Ok(());
    }
    let signed = spec.credentials.is_some();
    let nodes: Vec<Peer> = std::iter::once(seed).chain(spec.cluster.iter().copied()).collect();
    for node in nodes.into_iter().filter(|n| needs_cookie(n.ip, signed)) {
        if let Some(cookie) = fetch_cookie(io, &node, spec.client_id, stop)? {
            eprintln!(
                "vigil-loadgen: {}:{} gave this source an address cookie; every datagram carries it",
                node.ip, node.port
            );
            spec.cookies.push((node, cookie));
        }
    }
    Ok(())
}

/// The answer to the cookie request in `datagram`: `Ok(Some(cookie))` for `ADDRESS_UNPROVEN`,
/// `Ok(None)` for another status, `Err(reason)` for an `AUTH_FAILED` of the whole datagram;
/// `None` if the datagram does not answer it.
fn cookie_answer(
    datagram: &[u8],
    client_id: u64,
    request_id: u64,
) -> Option<Result<Option<Cookie>, &'static str>> {
    let h = wire::decode_header(datagram).ok()?;
    if !h.is_response() || h.client_id != client_id {
        return None;
    }
    let f = Frames::new(datagram, h.count)
        .map_while(Result::ok)
        .find(|f| f.request_id == request_id || f.opcode == wire::OPCODE_NONE)?;
    Some(match Status::from_u8(f.status) {
        Some(Status::AddressUnproven) => Ok(Cookie::try_from(f.body).ok()),
        Some(Status::AuthFailed) => {
            Err(f.body.first().and_then(|b| auth::Refusal::from_u8(*b)).map_or("auth_failed", |r| r.name()))
        }
        _ if f.request_id == request_id => Ok(None),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil::auth::mac;

    const ENTRY: &str = r#"
name = "loadgen"
key_id = 7
client_id = 100000
client_ids = 4096
key = "1f2e3d4c5b6a79880f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778"
acl = "+@read +@write"
"#;

    #[test]
    fn credentials_come_from_the_nodes_entry_alone_or_as_copied_from_its_config() {
        let a = RunAuth::parse(ENTRY).unwrap();
        assert_eq!((a.credentials.key_id, a.client_id, a.client_ids), (7, 100_000, 4096));
        let copied = format!("[[auth.clients]]{ENTRY}");
        assert_eq!(RunAuth::parse(&copied).unwrap(), a);
        assert!(RunAuth::parse(&format!("{copied}[[auth.clients]]{ENTRY}")).is_err(), "two entries");
        assert!(RunAuth::parse(&ENTRY.replace("key = ", "# key = ")).is_err(), "no key");
        assert!(RunAuth::parse(&ENTRY.replace("1f2e", "1f2")).is_err(), "63 hex digits");
        assert!(RunAuth::parse(&format!("{ENTRY}bogus = 1")).is_err(), "unknown fields, as the node");
        let with_quota = format!("{copied}\nkeys_max = 10\nbytes_max = 4096\n");
        assert_eq!(RunAuth::parse(&with_quota).unwrap(), a, "a quota is the node's business");
    }

    #[test]
    fn a_runs_client_ids_lie_in_the_keys_range_or_the_error_says_how_many_it_needs() {
        let a = RunAuth::parse(ENTRY).unwrap();
        assert_eq!(a.slice(16, Some(100_000)).unwrap(), 100_000);
        assert_eq!(a.slice(16, Some(104_080)).unwrap(), 104_080);
        assert!(a.slice(16, Some(104_081)).is_err(), "past the end");
        assert!(a.slice(16, Some(99_999)).is_err(), "before the start");
        let auto = a.slice(16, None).unwrap();
        assert!((100_000..=104_080).contains(&auto) && (auto - 100_000).is_multiple_of(16));
        let e = a.slice(5000, None).unwrap_err().to_string();
        assert!(e.contains("needs 5000 client ids") && e.contains("4096"), "{e}");
    }

    #[test]
    fn sealed_datagrams_carry_the_cookie_and_a_mac_and_nonces_count_up() {
        let creds = RunAuth::parse(ENTRY).unwrap().credentials;
        let mut s = Sealer::new(100_003, Some(creds), Nanos(5_000_000_000));
        s.set_cookie(1, [9; 16]);
        let mut last = None;
        for node in [0, 1, 1] {
            let mut buf = [0u8; 256];
            let mut w = s.writer(&mut buf, node).unwrap();
            w.push(opcode::PING, 0, 77, &[]).unwrap();
            let len = w.finish();
            s.seal(&mut buf[..len], node, Nanos(6_000_000_000));
            let d = &buf[..len];
            let h = wire::decode_header(d).unwrap();
            assert_eq!(h.client_id, 100_003);
            let b = ext::decode(d, h.flags).unwrap();
            assert_eq!(b.cookie, (node == 1).then_some([9; 16]));
            let a = b.auth.unwrap();
            assert!(mac::verify(&creds.key, d, a.mac_offset, &a.mac));
            let ms = unix_ns() / 1_000_000;
            assert!(a.timestamp_ms.abs_diff(ms + 1000) < 2000, "the run clock as Unix ms, 1 s on");
            assert_eq!(Frames::at(d, b.frames_offset, h.count).next().unwrap().unwrap().request_id, 77);
            if let Some(n) = last {
                assert_eq!(a.nonce, n + 1);
            }
            last = Some(a.nonce);
        }
        let mut anonymous = Sealer::new(5, None, Nanos(0));
        let mut buf = [0u8; 64];
        let mut w = anonymous.writer(&mut buf, 0).unwrap();
        w.push(opcode::PING, 0, 1, &[]).unwrap();
        let len = w.finish();
        anonymous.seal(&mut buf[..len], 0, Nanos(1));
        assert_eq!(len, wire::HEADER_LEN + wire::FRAME_HEADER_LEN, "no blocks at all");
        assert_eq!(blocks_len(true, true), 56);
        assert!(needs_cookie(Ipv4Addr::new(10, 0, 0, 1), false));
        assert!(!needs_cookie(Ipv4Addr::LOCALHOST, false) && !needs_cookie(Ipv4Addr::new(10, 0, 0, 1), true));
    }

    #[test]
    fn a_cookie_is_read_from_the_answer_to_its_request_only() {
        let mut buf = [0u8; 128];
        let mut w = DatagramWriter::response(&mut buf, 3).unwrap();
        w.push(opcode::GET, Status::AddressUnproven as u8, 1, &[4; 16]).unwrap();
        let len = w.finish();
        assert_eq!(cookie_answer(&buf[..len], 3, 1), Some(Ok(Some([4; 16]))));
        assert_eq!(cookie_answer(&buf[..len], 4, 1), None, "another client's");
        let mut w = DatagramWriter::response(&mut buf, 3).unwrap();
        w.push(opcode::GET, Status::NotFound as u8, 1, &[]).unwrap();
        let len = w.finish();
        assert_eq!(cookie_answer(&buf[..len], 3, 1), Some(Ok(None)), "no cookie asked");
        let mut w = DatagramWriter::response(&mut buf, 3).unwrap();
        w.push(wire::OPCODE_NONE, Status::AuthFailed as u8, 0, &[1]).unwrap();
        let len = w.finish();
        assert_eq!(cookie_answer(&buf[..len], 3, 1), Some(Err("credentials_required")));
    }
}

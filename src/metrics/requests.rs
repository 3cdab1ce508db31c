//! `RequestLatencies`: how long a shard took to answer its requests, by protocol and opcode (the
//! `vigil_request_duration_seconds` histograms; docs/OPERATIONS.md, "Request latency").
//!
//! A request's latency runs from the moment its shard took it in to the moment its answer was
//! made, on the shard's monotonic clock, and is counted by the shard that took it in:
//! - taken in: the clock value (`now`) of the poll iteration that received its datagram, or whose
//!   pass over the connections parsed it from its connection's input (bytes that wait in that
//!   input, e.g. behind a RESP request whose answer the session waits for, count from when the
//!   session reads them, like bytes still in the socket's buffer);
//! - answered at once (in the iteration that took it in, whatever its status): the clock read once
//!   after the pass that answered it, so all the requests of one pass count the same duration.
//!   The passes are the datagram burst (its answers go out together after it; the read is the one
//!   its lease check makes anyway, `Shard::answer_burst`), the connections' pass, and the
//!   connections' second pass after late answers freed sessions; each reads the clock at most
//!   once, and only if it answered a request;
//! - answered later: a durable write once its log entry committed, a request forwarded to the
//!   shard owning its partition once that shard's answer came back. Its pending record (the
//!   partition's `Waiter`, `Origin::Client::arrived`; the forwarding table's entry) holds its
//!   arrival; its latency is the clock value `now` of the iteration that delivers the answer minus
//!   that (no clock read: what the delivering iteration did before the answer is left out, at most
//!   one iteration). No read waits on this node (a read its partition cannot serve yet, before its
//!   read barrier or without its lease, is refused `NOT_LEADER` at once).
//!
//! A forwarded request is counted once, on the shard that received it, under the protocol it came
//! over: the owner shard runs it outside its engine and counts nothing. A `BUSY` that a
//! connection's session retries by itself at the next iteration (RESP, HTTP, the web port) is no
//! answer: the request is counted once, when the retry is answered, from that retry's iteration.
//! Requests that reach no handler (an unknown opcode, a datagram that does not frame) and what a
//! connection answers itself (RESP `PING`, `HELLO`, the JSON API) have no opcode here.
//!
//! Protocol (`Protocol::of`): a request from a UDP address is `udp` (binary datagrams over DPDK or
//! kernel sockets); one from a connection carries the acceptor's protocol tag in its peer
//! (`Peer::connection_of`): `tcp` (the binary protocol over TCP), `resp`, `http` (REST and its
//! WebSocket upgrades), `web` (the browser's web port).
//!
//! Cost: per request, an index lookup and a counter increment (`answered_now`; late answers one
//! `Latency::record`); per pass, one `Latency::record_n` per (protocol, opcode) it answered. The
//! histograms are made at start-up, one per protocol and *registered* opcode, at one significant
//! digit (`Latency::coarse`, about 3 KiB each: the 16 bucket bounds Prometheus gets are 2 to 2.5
//! times apart, and a quantile within 1/16 is as fine as Prometheus's own native histograms'
//! default); a snapshot copies only those that counted something.
//!
//! Invariants: nothing here allocates after `new` (the per-pass tally and its list of indices are
//! sized for every index, and an index is listed at most once); nothing reads a clock (the shard
//! passes the times); every request counted by `answered_now` is recorded by the next
//! `record_answered`.

use super::{Latency, ShardStats};
use crate::conn::protocol_tag;
use serde_json::{json, Value};
use vigil_pmd::{Nanos, Peer};

/// The protocol a request came over (see the module header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Binary datagrams over UDP (DPDK or kernel sockets).
    Udp,
    /// The binary protocol over TCP.
    Tcp,
    /// RESP over TCP.
    Resp,
    /// HTTP/1.x over TCP: the REST API and its WebSocket upgrades.
    Http,
    /// HTTP/1.x from a browser on the web port.
    Web,
}

impl Protocol {
    /// Every protocol, in label order.
    pub const ALL: [Protocol; 5] =
        [Protocol::Udp, Protocol::Tcp, Protocol::Resp, Protocol::Http, Protocol::Web];

    /// Its `protocol` label.
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            Protocol::Resp => "resp",
            Protocol::Http => "http",
            Protocol::Web => "web",
        }
    }

    /// The protocol of a request from `peer`; `None` for a connection with no known tag.
    #[inline]
    pub fn of(peer: &Peer) -> Option<Protocol> {
        match peer.connection_protocol() {
            None => Some(Protocol::Udp),
            Some(protocol_tag::BINARY) => Some(Protocol::Tcp),
            Some(protocol_tag::RESP) => Some(Protocol::Resp),
            Some(protocol_tag::HTTP) => Some(Protocol::Http),
            Some(protocol_tag::WEB) => Some(Protocol::Web),
            Some(_) => None,
        }
    }
}

/// One (protocol, opcode)'s latencies in a snapshot.
#[derive(Clone, Debug)]
pub struct RequestStats {
    /// The protocol.
    pub protocol: Protocol,
    /// The opcode, and its name (as `vigil_requests_total` names it).
    pub opcode: u8,
    pub name: &'static str,
    /// Its requests' latencies.
    pub latency: Latency,
}

/// `slot_of` for an opcode nobody registered.
const NOT_REGISTERED: u16 = u16::MAX;

/// A shard's request latencies (see the module header).
#[derive(Debug)]
pub struct RequestLatencies {
    /// Each opcode's place among the registered ones (`NOT_REGISTERED`: none).
    slot_of: [u16; 256],
    /// The registered opcodes and their names, by place.
    opcodes: Vec<(u8, &'static str)>,
    /// One histogram per protocol and registered opcode, at `protocol * opcodes + place`.
    latencies: Vec<Latency>,
    /// Requests answered at once since the last `record_answered`, by the same index ...
    answered: Vec<u32>,
    /// ... and the indices counted there (each once).
    touched: Vec<u16>,
}

impl RequestLatencies {
    /// Histograms for the `registered` opcodes (opcode, name), every protocol.
    pub fn new(registered: impl IntoIterator<Item = (u8, &'static str)>) -> Self {
        let opcodes: Vec<(u8, &'static str)> = registered.into_iter().collect();
        let mut slot_of = [NOT_REGISTERED; 256];
        for (place, &(op, _)) in opcodes.iter().enumerate() {
            slot_of[usize::from(op)] = place as u16;
        }
        let n = opcodes.len() * Protocol::ALL.len();
        assert!(n < usize::from(u16::MAX), "indices fit the tally's list");
        Self {
            slot_of,
            opcodes,
            latencies: (0..n).map(|_| Latency::coarse()).collect(),
            answered: vec![0; n],
            touched: Vec::with_capacity(n),
        }
    }

    #[inline]
    fn index(&self, protocol: Protocol, opcode: u8) -> Option<usize> {
        let place = self.slot_of[usize::from(opcode)];
        (place != NOT_REGISTERED).then(|| protocol as usize * self.opcodes.len() + usize::from(place))
    }

    #[inline]
    fn index_of(&self, peer: &Peer, opcode: u8) -> Option<usize> {
        self.index(Protocol::of(peer)?, opcode)
    }

    /// Counts a request from `peer` of `opcode` answered at once, in the pass under way (recorded
    /// by the next `record_answered`).
    #[inline]
    pub fn answered_now(&mut self, peer: &Peer, opcode: u8) {
        let Some(i) = self.index_of(peer, opcode) else { return };
        if self.answered[i] == 0 {
            // Within capacity: an index is listed once between two `record_answered`.
            self.touched.push(i as u16);
        }
        self.answered[i] += 1;
    }

    /// Whether requests were answered at once since the last `record_answered`.
    #[inline]
    pub fn has_answered(&self) -> bool {
        !self.touched.is_empty()
    }

    /// Records the requests answered at once since the last call, taken in at `taken_in` and
    /// answered by `answered_at`.
    pub fn record_answered(&mut self, taken_in: Nanos, answered_at: Nanos) {
        let ns = answered_at.0.saturating_sub(taken_in.0);
        for &i in &self.touched {
            let i = usize::from(i);
            self.latencies[i].record_n(ns, u64::from(self.answered[i]));
            self.answered[i] = 0;
        }
        self.touched.clear();
    }

    /// Records a late answer to a request from `peer` of `opcode` that arrived at `arrived`,
    /// delivered by the iteration of `now`.
    #[inline]
    pub fn record_late(&mut self, peer: &Peer, opcode: u8, arrived: Nanos, now: Nanos) {
        if let Some(i) = self.index_of(peer, opcode) {
            self.latencies[i].record(now.0.saturating_sub(arrived.0));
        }
    }

    /// The histogram of `protocol` and `opcode` (`None`: not registered).
    pub fn get(&self, protocol: Protocol, opcode: u8) -> Option<&Latency> {
        self.index(protocol, opcode).map(|i| &self.latencies[i])
    }

    /// The histograms that counted something, copied (for a `ShardStats`).
    pub fn snapshot(&self) -> Vec<RequestStats> {
        let mut out = Vec::new();
        for (p, protocol) in Protocol::ALL.into_iter().enumerate() {
            for (place, &(opcode, name)) in self.opcodes.iter().enumerate() {
                let latency = &self.latencies[p * self.opcodes.len() + place];
                if latency.count() > 0 {
                    out.push(RequestStats { protocol, opcode, name, latency: latency.clone() });
                }
            }
        }
        out
    }
}

/// A shard snapshot's request latencies for the JSON API (`/api/shards`): one object per
/// protocol and opcode that counted requests, `{"protocol", "opcode", "code", "count", "p50",
/// "p99", "p999"}`, quantiles in us (the histograms' resolution: within 1/16).
pub fn latency_json(s: &ShardStats) -> Value {
    let one = |r: &RequestStats| {
        let l = &r.latency;
        json!({
            "protocol": r.protocol.name(),
            "opcode": r.name,
            "code": format!("0x{:02x}", r.opcode),
            "count": l.count(),
            "p50": l.quantile_ns(0.5) / 1_000,
            "p99": l.quantile_ns(0.99) / 1_000,
            "p999": l.quantile_ns(0.999) / 1_000,
        })
    };
    Value::Array(s.requests.iter().map(one).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_pmd::ConnId;

    fn udp() -> Peer {
        Peer::from_ip_port(std::net::Ipv4Addr::LOCALHOST, 5)
    }

    fn resp() -> Peer {
        Peer::connection_of(ConnId { slot: 3, generation: 1 }, protocol_tag::RESP)
    }

    fn latencies() -> RequestLatencies {
        RequestLatencies::new([(1, "ping"), (0x11, "kv.set")])
    }

    #[test]
    fn a_pass_records_each_request_it_answered_with_the_pass_s_duration() {
        let mut l = latencies();
        assert!(!l.has_answered());
        for _ in 0..3 {
            l.answered_now(&udp(), 1);
        }
        l.answered_now(&resp(), 0x11);
        l.answered_now(&udp(), 0x42); // not registered: not counted
        assert!(l.has_answered());
        l.record_answered(Nanos(1_000_000), Nanos(1_200_000));
        assert!(!l.has_answered());
        let ping = l.get(Protocol::Udp, 1).unwrap();
        assert_eq!((ping.count(), ping.sum_ns()), (3, 600_000));
        assert_eq!(l.get(Protocol::Resp, 0x11).unwrap().count(), 1);
        assert_eq!(l.get(Protocol::Udp, 0x11).unwrap().count(), 0);
        assert!(l.get(Protocol::Udp, 0x42).is_none());
        // The next pass starts from nothing.
        l.answered_now(&udp(), 1);
        l.record_answered(Nanos(5_000_000), Nanos(5_050_000));
        assert_eq!(l.get(Protocol::Udp, 1).unwrap().count(), 4);
        assert_eq!(l.get(Protocol::Udp, 1).unwrap().sum_ns(), 650_000);
    }

    #[test]
    fn a_late_answer_counts_from_its_arrival_and_a_snapshot_holds_what_counted() {
        let mut l = latencies();
        l.record_late(&resp(), 0x11, Nanos(2_000_000), Nanos(7_000_000));
        let set = l.get(Protocol::Resp, 0x11).unwrap();
        assert_eq!((set.count(), set.sum_ns()), (1, 5_000_000));
        let p99 = set.quantile_ns(0.99);
        assert!(p99.abs_diff(5_000_000) <= 5_000_000 / 16, "{p99}");
        let snap = l.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!((snap[0].protocol, snap[0].opcode, snap[0].name), (Protocol::Resp, 0x11, "kv.set"));
        let s = ShardStats { requests: snap, ..ShardStats::default() };
        let json = latency_json(&s);
        assert_eq!(json[0]["protocol"], "resp");
        assert_eq!(json[0]["opcode"], "kv.set");
        assert_eq!(json[0]["code"], "0x11");
        assert_eq!(json[0]["count"], 1);
    }

    #[test]
    fn each_protocol_is_told_from_its_peer() {
        assert_eq!(Protocol::of(&udp()), Some(Protocol::Udp));
        let conn = |tag| Protocol::of(&Peer::connection_of(ConnId { slot: 0, generation: 0 }, tag));
        assert_eq!(conn(protocol_tag::BINARY), Some(Protocol::Tcp));
        assert_eq!(conn(protocol_tag::RESP), Some(Protocol::Resp));
        assert_eq!(conn(protocol_tag::HTTP), Some(Protocol::Http));
        assert_eq!(conn(protocol_tag::WEB), Some(Protocol::Web));
        assert_eq!(conn(0), None, "a connection with no tag");
        let names: Vec<&str> = Protocol::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["udp", "tcp", "resp", "http", "web"]);
    }
}

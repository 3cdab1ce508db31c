//! The blocking client: one UDP socket, one request in flight, retries with the same request id,
//! and leader following.
//!
//! Every attempt at a request sends the same frame (this client's id, the request's id, opcode
//! and body), so the server answers a write it already applied with its original answer
//! (exactly-once, docs/PROTOCOL.md "Exactly-once writes"). The datagram around it is written per
//! attempt by the [`Sealer`]: the node's address cookie if one is held and, with credentials, a
//! fresh nonce and MAC (an anonymous attempt without a cookie is byte for byte the first one).
//!
//! Where an attempt goes: the leader the [`LeaderTable`] knows for the key's partition, else the
//! current seed. What happens after it:
//! - `NOT_LEADER` with a hint: the table learns it and the same datagram goes to the named node at
//!   once (after a pause if the hint names the node that just refused);
//! - `NOT_LEADER` without a hint (the node knows no leader): the same datagram to the next seed
//!   after `retry_pause` (a follower cut off from the others knows none, the others may);
//! - `BUSY`, `UNAVAILABLE`, `AUTH_FAILED` `too_many_sessions`: the same request to the same node
//!   after `retry_pause`;
//! - `ADDRESS_UNPROVEN`: its body is the node's cookie for our address; it is kept for that node
//!   (and sent on every later datagram to it) and the request resent with it at once (not
//!   executed the first time). A node that refuses the cookie it just gave ends the request;
//! - `AUTH_FAILED` for the whole datagram (opcode 0): the request's result
//!   ([`ClientError::AuthFailed`] names the reason);
//! - no answer within `timeout`: the same datagram to the same node, up to `tries_per_node` times,
//!   then the node is forgotten as a leader and the next seed is tried;
//! - any other answer is the request's result.
//!
//! Invariants: at most `attempts_max` datagrams per request, so every call returns; request ids
//! only grow (one counter for reads and writes, so writes' ids are strictly increasing); answers
//! are matched by client id, request id and opcode, so a late answer to an earlier request (or an
//! earlier attempt's duplicate) is never taken for this one's.

use crate::error::ClientError;
use crate::leader::{decode_hint, LeaderTable};
use crate::seal::Sealer;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::ErrorKind;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};
use vigil::auth::ext;
use vigil::auth::{Credentials, Refusal};
use vigil::wire::{self, Frames, Status};

/// The largest datagram a node accepts by default (`net.datagram_bytes_max`: one 1500-byte MTU).
pub const DATAGRAM_BYTES_DEFAULT: usize = 1472;

/// How a [`Client`] retries.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The client id every datagram carries (non-zero for exactly-once writes); `None`: a random one.
    /// With `credentials`, one of the ids the key speaks for (`client_id .. client_id +
    /// client_ids` of its `[[auth.clients]]` entry): required.
    pub client_id: Option<u64>,
    /// The key every datagram is signed with (`Credentials::from_hex(key_id, "64 hex digits")`);
    /// `None`: anonymous datagrams.
    pub credentials: Option<Credentials>,
    /// How long one attempt waits for its answer.
    pub timeout: Duration,
    /// Unanswered attempts at one node before the next node is tried.
    pub tries_per_node: u32,
    /// Datagrams one request may send in all (attempts, redirects and retries together).
    pub attempts_max: u32,
    /// The pause before resending after `NOT_LEADER` without a hint, `BUSY` or `UNAVAILABLE`.
    pub retry_pause: Duration,
    /// The largest request datagram (the nodes' `net.datagram_bytes_max`).
    pub datagram_bytes_max: usize,
}

impl Default for ClientConfig {
    /// A random client id, 250 ms a try, 3 tries a node, 64 datagrams a request, 20 ms pauses.
    fn default() -> Self {
        Self {
            client_id: None,
            credentials: None,
            timeout: Duration::from_millis(250),
            tries_per_node: 3,
            attempts_max: 64,
            retry_pause: Duration::from_millis(20),
            datagram_bytes_max: DATAGRAM_BYTES_DEFAULT,
        }
    }
}

/// What the client did, since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Datagrams sent (every attempt).
    pub sent: u64,
    /// Attempts resent to the leader a `NOT_LEADER` hint named.
    pub redirects: u64,
    /// Attempts that got no answer within the timeout.
    pub timeouts: u64,
    /// Attempts answered `NOT_LEADER` without a hint, `BUSY` or `UNAVAILABLE`, resent after a pause.
    pub retried: u64,
    /// Attempts answered `ADDRESS_UNPROVEN`: a cookie learnt and the request resent with it.
    pub cookies_learnt: u64,
}

/// One answer frame: its status byte and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The status byte (docs/PROTOCOL.md, "Status codes").
    pub status: u8,
    /// The answer body.
    pub body: Vec<u8>,
    /// The node that gave it.
    pub from: SocketAddr,
}

/// What an attempt got.
enum Outcome {
    Answer(Reply),
    Timeout,
}

/// A blocking client of one Vigil cluster (see the module header).
#[derive(Debug)]
pub struct Client {
    socket: UdpSocket,
    seeds: Vec<SocketAddr>,
    seed: usize,
    client_id: u64,
    next_request_id: u64,
    leaders: LeaderTable,
    sealer: Sealer,
    config: ClientConfig,
    out: Vec<u8>,
    input: Vec<u8>,
    stats: ClientStats,
}

impl Client {
    /// A client of the cluster whose nodes include `seeds`, with the default [`ClientConfig`].
    pub fn connect<A: ToSocketAddrs>(seeds: A) -> Result<Client, ClientError> {
        Self::with_config(seeds, ClientConfig::default())
    }

    /// A client of the cluster whose nodes are listed in `nodes`, comma-separated
    /// (`"10.77.0.1:9000,10.77.0.2:9000"`; names resolve too), with the default [`ClientConfig`].
    pub fn connect_cluster(nodes: &str) -> Result<Client, ClientError> {
        Self::connect_cluster_with(nodes, ClientConfig::default())
    }

    /// As [`Client::connect_cluster`], with `config`.
    pub fn connect_cluster_with(nodes: &str, config: ClientConfig) -> Result<Client, ClientError> {
        let mut seeds = Vec::new();
        for node in nodes.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            seeds.extend(node.to_socket_addrs()?);
        }
        Self::with_config(seeds.as_slice(), config)
    }

    /// A client of the cluster whose nodes include `seeds`.
    pub fn with_config<A: ToSocketAddrs>(seeds: A, config: ClientConfig) -> Result<Client, ClientError> {
        let seeds: Vec<SocketAddr> = seeds.to_socket_addrs()?.collect();
        let Some(first) = seeds.first() else { return Err(ClientError::NoSeeds) };
        let bind: SocketAddr = if first.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
        let socket = UdpSocket::bind(bind)?;
        if config.credentials.is_some() && config.client_id.is_none() {
            return Err(ClientError::NoClientId);
        }
        let client_id = config.client_id.unwrap_or_else(random_client_id);
        Ok(Client {
            socket,
            seeds,
            seed: 0,
            client_id,
            next_request_id: 1,
            leaders: LeaderTable::new(),
            sealer: Sealer::new(config.credentials),
            out: vec![0; config.datagram_bytes_max.max(wire::HEADER_LEN)],
            input: vec![0; 65_536],
            config,
            stats: ClientStats::default(),
        })
    }

    /// This client's id (the datagram header's `client_id`).
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// The leaders learned so far.
    pub fn leaders(&self) -> &LeaderTable {
        &self.leaders
    }

    /// What the client did so far.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// The local address of the client's socket.
    pub fn local_addr(&self) -> Result<SocketAddr, ClientError> {
        Ok(self.socket.local_addr()?)
    }

    /// Takes the next request id. Every request method takes one; take one yourself to send a
    /// request with [`Client::execute`] and to resend it later with the same id.
    pub fn next_request_id(&mut self) -> u64 {
        let id = self.next_request_id;
        self.next_request_id += 1;
        id
    }

    /// Sends request `request_id` (opcode, body), routed by `key` (`None`: to a seed), until it
    /// gets an answer that is not a retry (see the module header); returns that answer, whatever
    /// its status.
    pub fn execute(
        &mut self,
        request_id: u64,
        opcode: u8,
        key: Option<&[u8]>,
        body: &[u8],
    ) -> Result<Reply, ClientError> {
        let mut target = self.route(key);
        let mut tries_here = 0u32;
        let mut last = "timeout";
        for _ in 0..self.config.attempts_max {
            let len = self.encode(target, request_id, opcode, body)?;
            self.socket.send_to(&self.out[..len], target)?;
            self.stats.sent += 1;
            tries_here += 1;
            let reply = match self.await_answer(request_id, opcode)? {
                Outcome::Answer(reply) => reply,
                Outcome::Timeout => {
                    self.stats.timeouts += 1;
                    last = "timeout";
                    if tries_here >= self.config.tries_per_node {
                        target = self.next_node(target);
                        tries_here = 0;
                    }
                    continue;
                }
            };
            match Status::from_u8(reply.status) {
                Some(Status::NotLeader) => {
                    last = Status::NotLeader.name();
                    match decode_hint(&reply.body)? {
                        Some(hint) => {
                            self.leaders.learn(&hint);
                            self.stats.redirects += 1;
                            let leader = SocketAddr::V4(hint.address);
                            if leader == reply.from {
                                // The node names itself (its view is behind): give it a moment.
                                std::thread::sleep(self.config.retry_pause);
                            }
                            if leader != target {
                                tries_here = 0;
                            }
                            target = leader;
                        }
                        None => {
                            // This node knows no leader; another may (or the election ends).
                            self.pause();
                            target = self.next_node(target);
                            tries_here = 0;
                        }
                    }
                }
                Some(s @ (Status::Busy | Status::Unavailable)) => {
                    last = s.name();
                    self.pause();
                }
                Some(Status::AuthFailed) if refusal(&reply) == Some(Refusal::TooManySessions) => {
                    // The node's replay windows are all in use; one frees within its replay bound.
                    last = Refusal::TooManySessions.name();
                    self.pause();
                }
                Some(Status::AddressUnproven) if self.sealer.learn_cookie(target, &reply.body) => {
                    // Not executed: resend it at once with the cookie (a fresh datagram).
                    last = Status::AddressUnproven.name();
                    self.stats.cookies_learnt += 1;
                    tries_here = 0;
                }
                _ => return Ok(reply),
            }
        }
        Err(ClientError::Exhausted { attempts: self.config.attempts_max, last, node: target })
    }

    /// Sends a new request (the next request id) and gives its OK answer's body, or the error
    /// status as [`ClientError::Server`] (for statuses a caller wants as values, use
    /// [`Client::execute`]).
    pub fn request(&mut self, opcode: u8, key: Option<&[u8]>, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        let id = self.next_request_id();
        let reply = self.execute(id, opcode, key, body)?;
        ok_body(reply)
    }

    fn pause(&mut self) {
        self.stats.retried += 1;
        std::thread::sleep(self.config.retry_pause);
    }

    /// Writes one attempt's datagram for `node` into `self.out` (see [`Sealer::encode`]).
    fn encode(
        &mut self,
        node: SocketAddr,
        request_id: u64,
        opcode: u8,
        body: &[u8],
    ) -> Result<usize, ClientError> {
        let bytes = wire::HEADER_LEN + self.sealer.overhead(node) + wire::FRAME_HEADER_LEN + body.len();
        self.sealer
            .encode(&mut self.out, node, self.client_id, request_id, opcode, body)
            .map_err(|_| ClientError::TooLarge { bytes, max: self.config.datagram_bytes_max })
    }

    /// The address cookie held for `node` (learnt from its `ADDRESS_UNPROVEN` answer), if any.
    pub fn cookie(&self, node: SocketAddr) -> Option<[u8; ext::COOKIE_LEN]> {
        self.sealer.cookie(node)
    }

    /// The node a request about `key` goes to first.
    fn route(&self, key: Option<&[u8]>) -> SocketAddr {
        key.and_then(|k| self.leaders.leader_of(k)).unwrap_or(self.seeds[self.seed])
    }

    /// After `tries_per_node` unanswered tries at `node`, or its `NOT_LEADER` without a hint:
    /// forget it as a leader, move to the next seed (skipping `node` itself when there is another).
    fn next_node(&mut self, node: SocketAddr) -> SocketAddr {
        self.leaders.forget_node(node);
        self.seed = (self.seed + 1) % self.seeds.len();
        if self.seeds[self.seed] == node && self.seeds.len() > 1 {
            self.seed = (self.seed + 1) % self.seeds.len();
        }
        self.seeds[self.seed]
    }

    /// Waits up to the timeout for the answer frame of `request_id`, ignoring every other datagram.
    fn await_answer(&mut self, request_id: u64, opcode: u8) -> Result<Outcome, ClientError> {
        let deadline = Instant::now() + self.config.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Outcome::Timeout);
            }
            self.socket.set_read_timeout(Some(left))?;
            let (n, from) = match self.socket.recv_from(&mut self.input) {
                Ok(got) => got,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(Outcome::Timeout)
                }
                // An ICMP port unreachable from an earlier send (a node that is down): as a timeout.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e.into()),
            };
            if let Some(reply) = find_answer(&self.input[..n], self.client_id, request_id, opcode, from) {
                return Ok(Outcome::Answer(reply));
            }
        }
    }
}

/// The frame answering (`client_id`, `request_id`, `opcode`) in a response datagram, if any: the
/// frame with that request id and opcode, or an `AUTH_FAILED` for the whole datagram (opcode 0,
/// request id 0 or ours: one request per datagram, so it refused this one).
fn find_answer(
    datagram: &[u8],
    client_id: u64,
    request_id: u64,
    opcode: u8,
    from: SocketAddr,
) -> Option<Reply> {
    let header = wire::decode_header(datagram).ok()?;
    if !header.is_response() || header.client_id != client_id {
        return None;
    }
    Frames::new(datagram, header.count)
        .map_while(Result::ok)
        .find(|f| {
            let whole = f.opcode == wire::OPCODE_NONE
                && f.status == Status::AuthFailed as u8
                && (f.request_id == 0 || f.request_id == request_id);
            whole || (f.request_id == request_id && f.opcode == opcode)
        })
        .map(|f| Reply { status: f.status, body: f.body.to_vec(), from })
}

/// An OK reply's body, or its status as an error.
pub(crate) fn ok_body(reply: Reply) -> Result<Vec<u8>, ClientError> {
    match Status::from_u8(reply.status) {
        Some(Status::Ok) => Ok(reply.body),
        Some(Status::AuthFailed) => Err(ClientError::AuthFailed(refusal(&reply))),
        Some(Status::Forbidden) => Err(ClientError::Forbidden),
        Some(Status::QuotaExceeded) => Err(ClientError::QuotaExceeded),
        Some(s) => Err(ClientError::Server(s)),
        None => Err(ClientError::UnknownStatus(reply.status)),
    }
}

/// The reason an `AUTH_FAILED` reply gives (its one-byte body), if known.
pub fn refusal(reply: &Reply) -> Option<Refusal> {
    match reply.body.as_slice() {
        [b] => Refusal::from_u8(*b),
        _ => None,
    }
}

/// A random non-zero client id: std's per-process random hash keys over the pid and the time.
fn random_client_id() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    );
    h.finish().max(1)
}

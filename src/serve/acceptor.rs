//! The acceptor thread: accepts TCP connections on the data plane's listeners, waits for each
//! one's first bytes, tells its protocol apart (`conn::detect`) and hands it to a shard: the one
//! that owns its first request's key, or the next in turn when it has none.
//!
//! It never blocks on one connection: listeners and connections still undecided sit in one epoll
//! set (`mio`), looked at every `TICK`; a connection that has not sent enough to decide within
//! `tcp.first_bytes_timeout_ms`, or speaks nothing served here, is closed and counted; at most
//! `tcp.pending_max` wait at once (more are closed at accept, counted).

use crate::config::TcpConfig;
use crate::conn::detect::{detect, Detected, FIRST_BYTES_MAX};
use crate::conn::protocol_tag;
use crate::inbox::Placement;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_pmd::tcp::Handoff;

/// How often the acceptor looks at its deadlines and the stop flag.
const TICK: Duration = Duration::from_millis(50);
/// Listener tokens start here; connection tokens are their pending slot.
const LISTENER_BASE: usize = 1 << 30;

/// What the acceptor counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptorCounters {
    /// Connections accepted.
    pub accepted: u64,
    /// Handed to a shard.
    pub handed: u64,
    /// Closed: too many undecided at once.
    pub refused_pending: u64,
    /// Closed: no first bytes in time.
    pub timed_out: u64,
    /// Closed: a protocol not served.
    pub unknown_protocol: u64,
    /// Closed: the shard's hand-off queue was full.
    pub refused_shard_busy: u64,
}

struct Pending {
    stream: TcpStream,
    deadline: Instant,
}

/// The listeners, bound (so a start that cannot have its port is refused before shards start):
/// the data plane's, then the web port's (from `web_from` on).
pub struct Listeners {
    listeners: Vec<TcpListener>,
    web_from: usize,
}

impl Listeners {
    /// Binds every address: `data` (protocols told apart by their first bytes) and `web` (HTTP
    /// for browsers).
    pub fn bind(data: &[SocketAddr], web: &[SocketAddr]) -> io::Result<Self> {
        let listeners = data.iter().chain(web).map(|a| TcpListener::bind(*a)).collect::<io::Result<_>>()?;
        Ok(Self { listeners, web_from: data.len() })
    }

    /// The data plane's addresses bound (port 0 resolved).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.listeners[..self.web_from].iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// The web port's addresses bound.
    pub fn web_addrs(&self) -> Vec<SocketAddr> {
        self.listeners[self.web_from..].iter().filter_map(|l| l.local_addr().ok()).collect()
    }
}

/// Runs the acceptor until `stop`; returns its counters.
pub fn run(
    listeners: Listeners,
    handoffs: Vec<Arc<Handoff>>,
    placement: Placement,
    config: &TcpConfig,
    stop: &AtomicBool,
) -> io::Result<AcceptorCounters> {
    let poll = Poll::new()?;
    let web_from = listeners.web_from;
    let mut listeners = listeners.listeners;
    for (i, l) in listeners.iter_mut().enumerate() {
        poll.registry().register(l, Token(LISTENER_BASE + i), Interest::READABLE)?;
    }
    let mut a = Acceptor {
        poll,
        pending: (0..config.pending_max).map(|_| None).collect(),
        free: (0..config.pending_max).rev().collect(),
        handoffs,
        placement,
        next_shard: 0,
        timeout: Duration::from_millis(config.first_bytes_timeout_ms),
        counters: AcceptorCounters::default(),
        peek: vec![0; FIRST_BYTES_MAX],
        key: Vec::new(),
    };
    let mut events = Events::with_capacity(1024);
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = a.poll.poll(&mut events, Some(TICK)) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            match event.token().0 {
                t if t >= LISTENER_BASE => {
                    let i = t - LISTENER_BASE;
                    a.accept_all(&listeners[i], i >= web_from)
                }
                slot => a.look(slot),
            }
        }
        a.expire(Instant::now());
    }
    Ok(a.counters)
}

struct Acceptor {
    poll: Poll,
    pending: Vec<Option<Pending>>,
    free: Vec<usize>,
    handoffs: Vec<Arc<Handoff>>,
    placement: Placement,
    next_shard: usize,
    timeout: Duration,
    counters: AcceptorCounters,
    peek: Vec<u8>,
    /// The decoded key of an HTTP request's target.
    key: Vec<u8>,
}

impl Acceptor {
    fn accept_all(&mut self, listener: &TcpListener, web: bool) {
        loop {
            let mut stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // Out of descriptors, a connection reset before accept: try again on the next event.
                Err(_) => return,
            };
            self.counters.accepted += 1;
            if web {
                // Browsers speak HTTP: nothing to tell apart, any shard serves the page.
                let shard = self.turn();
                self.give(shard, std::net::TcpStream::from(stream), protocol_tag::WEB);
                continue;
            }
            let Some(slot) = self.free.pop() else {
                self.counters.refused_pending += 1;
                continue; // dropped: closed
            };
            if self.poll.registry().register(&mut stream, Token(slot), Interest::READABLE).is_err() {
                self.free.push(slot);
                continue;
            }
            self.pending[slot] = Some(Pending { stream, deadline: Instant::now() + self.timeout });
            // Bytes may have come with the connection: look now.
            self.look(slot);
        }
    }

    /// Looks at a pending connection's first bytes; hands it over once they decide.
    fn look(&mut self, slot: usize) {
        let Some(p) = self.pending.get(slot).and_then(Option::as_ref) else { return };
        let n = match p.stream.peek(&mut self.peek) {
            Ok(0) => return self.drop_pending(slot), // closed before it spoke
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(_) => return self.drop_pending(slot),
        };
        let (tag, shard) = match detect(&self.peek[..n]) {
            Detected::NeedMore => return,
            Detected::Binary => (protocol_tag::BINARY, self.turn()),
            Detected::Resp { key: Some((s, e)) } => {
                let shard = self.placement.owner(self.placement.partition_of(&self.peek[s..e]));
                (protocol_tag::RESP, usize::from(shard))
            }
            Detected::Resp { key: None } => (protocol_tag::RESP, self.turn()),
            Detected::Http => {
                let shard = match http_key(&self.peek[..n], &mut self.key) {
                    HttpRoute::Key(key) => {
                        usize::from(self.placement.owner(self.placement.partition_of(key)))
                    }
                    HttpRoute::Prefix | HttpRoute::Any => self.turn(),
                };
                (protocol_tag::HTTP, shard)
            }
            Detected::Unknown => {
                self.counters.unknown_protocol += 1;
                return self.drop_pending(slot);
            }
        };
        let Some(mut p) = self.take(slot) else { return };
        let _ = self.poll.registry().deregister(&mut p.stream);
        // Back to a std stream (still non-blocking): the shard registers it in its own set.
        self.give(shard, std::net::TcpStream::from(p.stream), tag);
    }

    /// Hands a connection to `shard` (closed and counted when its queue is full).
    fn give(&mut self, shard: usize, stream: std::net::TcpStream, tag: u8) {
        match self.handoffs[shard].give(stream, tag) {
            Ok(()) => self.counters.handed += 1,
            Err(_closed) => self.counters.refused_shard_busy += 1,
        }
    }

    /// The next shard in turn, for connections whose first request names no key.
    fn turn(&mut self) -> usize {
        self.next_shard = (self.next_shard + 1) % self.handoffs.len();
        self.next_shard
    }

    fn take(&mut self, slot: usize) -> Option<Pending> {
        let p = self.pending.get_mut(slot)?.take()?;
        self.free.push(slot);
        Some(p)
    }

    fn drop_pending(&mut self, slot: usize) {
        if let Some(mut p) = self.take(slot) {
            let _ = self.poll.registry().deregister(&mut p.stream);
        }
    }

    fn expire(&mut self, now: Instant) {
        for slot in 0..self.pending.len() {
            if self.pending[slot].as_ref().is_some_and(|p| p.deadline <= now) {
                self.counters.timed_out += 1;
                self.drop_pending(slot);
            }
        }
    }
}

/// Where an HTTP connection goes, by its first request.
enum HttpRoute<'a> {
    /// To the owner of this key (`/kv/{key}`, `/watch?key=K`).
    Key(&'a [u8]),
    /// A prefix watch (`/watch?prefix=P`): any shard (it gets every shard's changes, `conn::hub`).
    Prefix,
    /// Anywhere.
    Any,
}

/// The key an HTTP request's first line names (`METHOD /kv/{key}[?...] ` or `/watch?key=K`),
/// decoded into `out`; `Any` when the line is not whole in `first` or names no key.
fn http_key<'a>(first: &[u8], out: &'a mut Vec<u8>) -> HttpRoute<'a> {
    use crate::protocol::http::target;
    let Some(end) = first.iter().position(|&b| b == b'\n') else { return HttpRoute::Any };
    let line = &first[..end];
    let Some(start) = line.iter().position(|&b| b == b' ').map(|s| s + 1) else { return HttpRoute::Any };
    let Some(len) = line[start..].iter().position(|&b| b == b' ') else { return HttpRoute::Any };
    let (path, query) = target::split(&line[start..start + len]);
    out.clear();
    let decoded = match (path.strip_prefix(b"/kv/"), path == b"/watch") {
        (Some(raw), _) => target::percent_decode(raw, out),
        (None, true) => match target::query_param(query, b"key") {
            Some(raw) => target::query_decode(raw, out),
            None if target::query_param(query, b"prefix").is_some() => return HttpRoute::Prefix,
            None => false,
        },
        (None, false) => false,
    };
    if decoded {
        HttpRoute::Key(&out[..])
    } else {
        HttpRoute::Any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_connections_are_routed_by_the_key_their_first_request_names() {
        let mut key = Vec::new();
        assert!(matches!(http_key(b"GET /kv/a%20b?x=1 HTTP/1.1\r\n", &mut key), HttpRoute::Key(b"a b")));
        assert!(matches!(http_key(b"PUT /kv/ HTTP/1.1\r\n", &mut key), HttpRoute::Key(b"")));
        assert!(matches!(http_key(b"GET /watch?key=a+b%2B HTTP/1.1\r\n", &mut key), HttpRoute::Key(b"a b+")));
        assert!(matches!(http_key(b"GET /watch?prefix=u HTTP/1.1\r\n", &mut key), HttpRoute::Prefix));
        for any in [
            &b"GET /health HTTP/1.1\r\n"[..],
            b"GET /kv/a",
            b"GET /kv/%zz HTTP/1.1\r\n",
            b"GET /watch HTTP/1.1\r\n",
        ] {
            assert!(matches!(http_key(any, &mut key), HttpRoute::Any), "{any:?}");
        }
    }
}

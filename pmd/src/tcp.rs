//! The kernel TCP backend of [`StreamIo`]: one shard's non-blocking sockets under one epoll set
//! (`mio`), and the [`Handoff`] through which the acceptor thread gives it connections.
//!
//! The acceptor pushes an accepted socket and its protocol tag into the shard's hand-off queue and
//! wakes the shard's epoll set (`mio::Waker`), so a shard sleeping in its idle wait (which includes
//! [`StreamIo::wait_fd`]) adopts it at once. `poll` adopts what the queue holds, then asks epoll
//! for readiness with a zero timeout: one `epoll_wait` per poll iteration, however many idle
//! connections there are, which is what keeps 10,000 idle connections from slowing active ones.
//!
//! Invariants: at most `connections_max` connections at once (a hand-off beyond it is closed and
//! counted in `refused_full`); the table, the free list and the event list are allocated once at
//! creation; registration is edge-triggered for reads and writes; a slot's generation changes when
//! it is freed, so a stale `ConnId` never reaches a newer connection.

use crate::stream::{ConnId, Received, Sent, StreamCounters, StreamEvent, StreamIo};
use crossbeam_queue::ArrayQueue;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

/// The token of the hand-off waker (connection slots use their index).
const WAKER: Token = Token(usize::MAX);
/// With no connection open, `poll` reads the epoll set only every this many calls.
const IDLE_EPOLL_EVERY: u64 = 1024;

/// Where an acceptor puts connections for one shard.
#[derive(Debug)]
pub struct Handoff {
    queue: ArrayQueue<(std::net::TcpStream, u8)>,
    waker: Waker,
}

impl Handoff {
    /// Gives `stream` (with the acceptor's protocol `tag`) to the shard and wakes it. Hands the
    /// stream back when the queue is full (the shard is not keeping up: close it, and count).
    pub fn give(&self, stream: std::net::TcpStream, tag: u8) -> Result<(), std::net::TcpStream> {
        self.queue.push((stream, tag)).map_err(|(s, _)| s)?;
        // A failed wake only delays adoption to the shard's next poll.
        let _ = self.waker.wake();
        Ok(())
    }
}

/// Sizes of a shard's TCP backend, allocated once.
#[derive(Clone, Copy, Debug)]
pub struct TcpStreamsConfig {
    /// Connections the shard holds at once.
    pub connections_max: usize,
    /// Connections waiting in the hand-off queue.
    pub handoff_max: usize,
    /// Readiness events taken from epoll per poll.
    pub events_max: usize,
}

#[derive(Debug)]
struct Slot {
    stream: Option<TcpStream>,
    generation: u16,
}

/// One shard's TCP connections.
#[derive(Debug)]
pub struct TcpStreams {
    poll: Poll,
    events: Events,
    slots: Vec<Slot>,
    free: Vec<u32>,
    handoff: Arc<Handoff>,
    counters: StreamCounters,
    polls: u64,
}

impl TcpStreams {
    /// A backend with room for `config.connections_max` connections, and its hand-off.
    pub fn new(config: TcpStreamsConfig) -> io::Result<Self> {
        assert!(config.connections_max > 0 && config.connections_max < u32::MAX as usize);
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let handoff = Arc::new(Handoff { queue: ArrayQueue::new(config.handoff_max.max(1)), waker });
        let slots = (0..config.connections_max).map(|_| Slot { stream: None, generation: 0 }).collect();
        // Lowest slots first: popped from the back.
        let free = (0..config.connections_max as u32).rev().collect();
        Ok(Self {
            poll,
            events: Events::with_capacity(config.events_max.max(1)),
            slots,
            free,
            handoff,
            counters: StreamCounters::default(),
            polls: 0,
        })
    }

    /// The hand-off an acceptor gives this shard's connections to.
    pub fn handoff(&self) -> Arc<Handoff> {
        Arc::clone(&self.handoff)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    fn stream(&mut self, conn: ConnId) -> Option<&mut TcpStream> {
        let slot = self.slots.get_mut(conn.slot as usize)?;
        if slot.generation != conn.generation {
            return None;
        }
        slot.stream.as_mut()
    }

    /// Adopts one handed-off stream; `None` when the table is full (the stream is closed).
    fn adopt(&mut self, stream: std::net::TcpStream) -> Option<ConnId> {
        let Some(slot) = self.free.pop() else {
            self.counters.refused_full += 1;
            return None;
        };
        let registered = stream.set_nonblocking(true).and_then(|()| {
            let _ = stream.set_nodelay(true);
            let mut stream = TcpStream::from_std(stream);
            let interest = Interest::READABLE | Interest::WRITABLE;
            self.poll.registry().register(&mut stream, Token(slot as usize), interest)?;
            Ok(stream)
        });
        let Ok(stream) = registered else {
            self.free.push(slot);
            self.counters.closed += 1;
            return None;
        };
        let s = &mut self.slots[slot as usize];
        s.stream = Some(stream);
        self.counters.opened += 1;
        Some(ConnId { slot, generation: s.generation })
    }
}

impl StreamIo for TcpStreams {
    fn poll(&mut self, out: &mut Vec<StreamEvent>) {
        while out.len() < out.capacity() {
            let Some((stream, protocol)) = self.handoff.queue.pop() else { break };
            if let Some(conn) = self.adopt(stream) {
                out.push(StreamEvent::Opened { conn, protocol });
                // Bytes that came with the connection were there before it was registered: an
                // edge-triggered set may not report them, so say it is readable.
                if out.len() < out.capacity() {
                    out.push(StreamEvent::Readable(conn));
                }
            }
        }
        // With no connection open and nothing adopted, epoll has nothing to say but the waker's
        // wake-up: a poll costs one check of the hand-off queue, not a syscall (a spinning DPDK
        // shard polls millions of times a second). Every `IDLE_EPOLL_EVERY`th poll still reads the
        // set, so a wake-up left in it never keeps an idle shard's sleep from sleeping.
        self.polls = self.polls.wrapping_add(1);
        if self.open() == 0 && out.is_empty() && !self.polls.is_multiple_of(IDLE_EPOLL_EVERY) {
            return;
        }
        // Events epoll returns are consumed: take them only when all of them fit.
        if out.capacity() - out.len() < self.events.capacity() {
            return;
        }
        if self.poll.poll(&mut self.events, Some(Duration::ZERO)).is_err() {
            return; // EINTR: the next poll asks again
        }
        for event in self.events.iter() {
            let Token(slot) = event.token();
            if event.token() == WAKER {
                continue;
            }
            let Some(s) = self.slots.get(slot) else { continue };
            if s.stream.is_none() {
                continue;
            }
            let conn = ConnId { slot: slot as u32, generation: s.generation };
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                out.push(StreamEvent::Readable(conn));
            }
            if event.is_writable() {
                out.push(StreamEvent::Writable(conn));
            }
        }
    }

    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Received {
        let Some(stream) = self.stream(conn) else { return Received::Closed };
        loop {
            return match stream.read(buf) {
                Ok(0) => Received::Closed,
                Ok(n) => {
                    self.counters.rx_bytes += n as u64;
                    Received::Data(n)
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => Received::WouldBlock,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => Received::Closed,
            };
        }
    }

    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Sent {
        let Some(stream) = self.stream(conn) else { return Sent::Closed };
        loop {
            return match stream.write(bytes) {
                Ok(n) => {
                    self.counters.tx_bytes += n as u64;
                    Sent::Bytes(n)
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => Sent::Bytes(0),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => Sent::Closed,
            };
        }
    }

    fn close(&mut self, conn: ConnId) {
        let Some(s) = self.slots.get_mut(conn.slot as usize) else { return };
        if s.generation != conn.generation {
            return;
        }
        let Some(mut stream) = s.stream.take() else { return };
        let _ = self.poll.registry().deregister(&mut stream);
        s.generation = s.generation.wrapping_add(1);
        self.free.push(conn.slot);
        self.counters.closed += 1;
    }

    fn wait_fd(&self) -> Option<i32> {
        Some(self.poll.as_raw_fd())
    }

    fn counters(&self) -> StreamCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream as StdStream};

    fn pair(listener: &TcpListener) -> (StdStream, StdStream) {
        let client = StdStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    fn poll_until(s: &mut TcpStreams, want: impl Fn(&StreamEvent) -> bool) -> Vec<StreamEvent> {
        let mut seen = Vec::new();
        for _ in 0..1000 {
            let mut out = Vec::with_capacity(64);
            s.poll(&mut out);
            let hit = out.iter().any(&want);
            seen.extend(out);
            if hit {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("no wanted event in {seen:?}");
    }

    #[test]
    fn handed_off_connections_are_adopted_read_written_closed_and_refused_when_full() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let config = TcpStreamsConfig { connections_max: 1, handoff_max: 4, events_max: 16 };
        let mut s = TcpStreams::new(config).unwrap();
        let (mut client, server) = pair(&listener);
        client.write_all(b"PING\r\n").unwrap();
        s.handoff().give(server, 7).unwrap();
        let events = poll_until(&mut s, |e| matches!(e, StreamEvent::Readable(_)));
        let StreamEvent::Opened { conn, protocol: 7 } = events[0] else { panic!("{events:?}") };
        let mut buf = [0u8; 16];
        let mut got = Vec::new();
        while got.len() < 6 {
            match s.recv(conn, &mut buf) {
                Received::Data(n) => got.extend_from_slice(&buf[..n]),
                Received::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
                Received::Closed => panic!("closed"),
            }
        }
        assert_eq!(got, b"PING\r\n");
        assert_eq!(s.send(conn, b"+PONG\r\n"), Sent::Bytes(7));
        let mut reply = [0u8; 7];
        client.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"+PONG\r\n");

        // A second connection finds the table full: refused and closed.
        let (mut client2, server2) = pair(&listener);
        s.handoff().give(server2, 7).unwrap();
        let mut out = Vec::with_capacity(64);
        s.poll(&mut out);
        assert_eq!(s.counters().refused_full, 1);
        assert_eq!(client2.read(&mut buf).unwrap(), 0, "refused connection is closed");

        // The client hangs up: readable, then recv says closed; close frees the slot.
        drop(client);
        poll_until(&mut s, |e| *e == StreamEvent::Readable(conn));
        assert_eq!(s.recv(conn, &mut buf), Received::Closed);
        s.close(conn);
        assert_eq!(s.open(), 0);
        assert_eq!(s.send(conn, b"x"), Sent::Closed, "a stale id reaches nothing");
    }
}

//! The simulator's byte-stream connections ([`SimStreams`], a [`StreamIo`]): each connection is a
//! pair of in-memory pipes the test writes into and reads from, delivered in chunks of at most
//! `chunk` bytes per `recv` (so every split point of a request gets exercised), with a send side
//! that takes at most `send_window` bytes at a time (so partial sends and `Writable` are too).
//!
//! A `SimStreams` is a handle: clones share the connections, so a test keeps one while the shard's
//! `Connections` owns another.
//!
//! Invariants: events are reported in the order they happened; nothing here reads time or
//! randomness; a closed connection's id never reaches its successor (generations, as the real
//! backend).

use crate::stream::{ConnId, Received, Sent, StreamCounters, StreamEvent, StreamIo};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

#[derive(Debug, Default)]
struct Pipe {
    /// Bytes the client sent and the server has not read.
    to_server: VecDeque<u8>,
    /// Bytes the server sent (the client's to take).
    to_client: Vec<u8>,
    /// The client hung up (after its bytes).
    client_closed: bool,
    /// The server closed it.
    server_closed: bool,
    generation: u16,
    /// Sent bytes not yet "acknowledged" by the window (see `drain_window`).
    in_window: usize,
}

/// In-memory connections for tests and fuzzing (a shared handle).
#[derive(Clone, Debug)]
pub struct SimStreams(Rc<RefCell<Inner>>);

#[derive(Debug)]
struct Inner {
    pipes: Vec<Pipe>,
    events: VecDeque<StreamEvent>,
    chunk: usize,
    send_window: usize,
    counters: StreamCounters,
}

impl SimStreams {
    /// Connections that deliver at most `chunk` bytes per `recv` and take at most `send_window`
    /// bytes the client has not taken yet (`client_take` takes them).
    pub fn new(chunk: usize, send_window: usize) -> Self {
        assert!(chunk > 0 && send_window > 0);
        let inner = Inner {
            pipes: Vec::new(),
            events: VecDeque::new(),
            chunk,
            send_window,
            counters: StreamCounters::default(),
        };
        Self(Rc::new(RefCell::new(inner)))
    }

    /// A new connection speaking `protocol` (the acceptor's tag); reported by the next `poll`.
    pub fn open(&self, protocol: u8) -> ConnId {
        self.0.borrow_mut().open(protocol)
    }

    /// The client sends `bytes`.
    pub fn client_send(&self, conn: ConnId, bytes: &[u8]) {
        self.0.borrow_mut().client_send(conn, bytes)
    }

    /// The client hangs up.
    pub fn client_close(&self, conn: ConnId) {
        self.0.borrow_mut().client_close(conn)
    }

    /// Takes what the server sent to the client so far (the client read it, so the send window
    /// opens again: a `Writable` follows if it was full).
    pub fn client_take(&self, conn: ConnId) -> Vec<u8> {
        self.0.borrow_mut().client_take(conn)
    }

    /// Whether the server closed the connection.
    pub fn server_closed(&self, conn: ConnId) -> bool {
        self.0.borrow().pipes[conn.slot as usize].server_closed
    }
}

impl Inner {
    fn open(&mut self, protocol: u8) -> ConnId {
        let slot = self.pipes.len() as u32;
        self.pipes.push(Pipe::default());
        let conn = ConnId { slot, generation: 0 };
        self.events.push_back(StreamEvent::Opened { conn, protocol });
        conn
    }

    fn client_send(&mut self, conn: ConnId, bytes: &[u8]) {
        let p = &mut self.pipes[conn.slot as usize];
        p.to_server.extend(bytes);
        self.events.push_back(StreamEvent::Readable(conn));
    }

    fn client_close(&mut self, conn: ConnId) {
        self.pipes[conn.slot as usize].client_closed = true;
        self.events.push_back(StreamEvent::Readable(conn));
    }

    fn client_take(&mut self, conn: ConnId) -> Vec<u8> {
        let p = &mut self.pipes[conn.slot as usize];
        let full = p.in_window >= self.send_window;
        p.in_window = 0;
        if full && !p.server_closed {
            self.events.push_back(StreamEvent::Writable(conn));
        }
        std::mem::take(&mut p.to_client)
    }

    fn pipe(&mut self, conn: ConnId) -> Option<&mut Pipe> {
        self.pipes.get_mut(conn.slot as usize).filter(|p| p.generation == conn.generation && !p.server_closed)
    }
}

impl Inner {
    fn poll_events(&mut self, out: &mut Vec<StreamEvent>) {
        while out.len() < out.capacity() {
            let Some(e) = self.events.pop_front() else { return };
            if matches!(e, StreamEvent::Opened { .. }) {
                self.counters.opened += 1;
            }
            out.push(e);
        }
    }

    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Received {
        let chunk = self.chunk;
        let Some(p) = self.pipe(conn) else { return Received::Closed };
        if p.to_server.is_empty() {
            return if p.client_closed { Received::Closed } else { Received::WouldBlock };
        }
        let n = buf.len().min(chunk).min(p.to_server.len());
        for (b, byte) in buf[..n].iter_mut().zip(p.to_server.drain(..n)) {
            *b = byte;
        }
        // Bytes left after a short read are, to the reader, bytes that came later: a new edge.
        let more = n < buf.len() && !p.to_server.is_empty();
        self.counters.rx_bytes += n as u64;
        if more {
            self.events.push_back(StreamEvent::Readable(conn));
        }
        Received::Data(n)
    }

    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Sent {
        let window = self.send_window;
        let Some(p) = self.pipe(conn) else { return Sent::Closed };
        let n = bytes.len().min(window - p.in_window.min(window));
        p.to_client.extend_from_slice(&bytes[..n]);
        p.in_window += n;
        self.counters.tx_bytes += n as u64;
        Sent::Bytes(n)
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(p) = self.pipe(conn) {
            p.server_closed = true;
            p.generation = p.generation.wrapping_add(1);
            self.counters.closed += 1;
        }
    }
}

impl StreamIo for SimStreams {
    fn poll(&mut self, out: &mut Vec<StreamEvent>) {
        self.0.borrow_mut().poll_events(out)
    }

    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Received {
        self.0.borrow_mut().recv(conn, buf)
    }

    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Sent {
        self.0.borrow_mut().send(conn, bytes)
    }

    fn close(&mut self, conn: ConnId) {
        self.0.borrow_mut().close(conn)
    }

    fn wait_fd(&self) -> Option<i32> {
        None
    }

    fn counters(&self) -> StreamCounters {
        self.0.borrow().counters
    }
}

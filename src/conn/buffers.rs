//! A connection's bytes between its socket and its buffers: reads through the shard's read buffer,
//! sends what the output holds, and gives back the capacity an idle connection no longer needs.
//!
//! Invariants: a connection's input grows only by the bytes it received, never past the input
//! limit; reads go on to `WouldBlock` or a hang-up (edge-triggered readiness); output not taken by
//! the socket stays for the next `Writable`.

use super::Conn;
use vigil_pmd::{Received, Sent, StreamIo};

/// Bytes read per `recv`, into the shard's read buffer.
pub(super) const READ_CHUNK: usize = 64 << 10;
/// A connection's buffers keep at most this capacity once empty (more is given back), so that
/// thousands of idle connections hold little memory; a busy connection's buffers keep their size
/// while they hold bytes.
const IDLE_KEEP_BYTES: usize = 64 << 10;

/// Reads what the stream holds, up to the input limit, through the shard's read buffer (so a
/// connection's input grows only by what it received).
pub(super) fn read_some(io: &mut dyn StreamIo, conn: &mut Conn, input_bytes_max: usize, read_buf: &mut [u8]) {
    while conn.readable && conn.input.len() < input_bytes_max {
        let want = read_buf.len().min(input_bytes_max - conn.input.len());
        match io.recv(conn.id, &mut read_buf[..want]) {
            // Read on to `WouldBlock` even after a short read: the hang-up that came with the last
            // bytes raised no edge of its own (the fuzzer found a connection that never closed).
            Received::Data(n) => conn.input.extend_from_slice(&read_buf[..n]),
            Received::WouldBlock => conn.readable = false,
            Received::Closed => {
                conn.readable = false;
                conn.dead = true;
            }
        }
    }
}

/// Gives back what an empty buffer holds beyond `IDLE_KEEP_BYTES`.
pub(super) fn trim(buf: &mut Vec<u8>) {
    if buf.is_empty() && buf.capacity() > IDLE_KEEP_BYTES {
        *buf = Vec::new();
    }
}

/// Sends what the output holds; the rest waits for `Writable`.
pub(super) fn flush(io: &mut dyn StreamIo, conn: &mut Conn) {
    while conn.sent < conn.output.len() {
        match io.send(conn.id, &conn.output[conn.sent..]) {
            Sent::Bytes(0) => return,
            Sent::Bytes(n) => conn.sent += n,
            Sent::Closed => {
                conn.dead = true;
                return;
            }
        }
    }
    conn.output.clear();
    conn.sent = 0;
}

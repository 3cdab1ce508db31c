//! In-memory datagrams: `RxDatagram`/`TxDatagram` over owned vectors, for the fake and simulated
//! `PacketIo` backends of tests, benches and the deterministic simulator.
//!
//! Invariant: these allocate per datagram (a `Vec` each); they are for test and simulation
//! backends only, never for a production data path.

use crate::{Peer, RxDatagram, TxDatagram};

/// A received datagram holding its own bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecRx {
    /// The UDP payload.
    pub payload: Vec<u8>,
    /// Who sent it.
    pub peer: Peer,
}

impl VecRx {
    /// A datagram of `payload` from `peer`.
    pub fn new(payload: Vec<u8>, peer: Peer) -> Self {
        Self { payload, peer }
    }
}

impl RxDatagram for VecRx {
    fn payload(&self) -> &[u8] {
        &self.payload
    }
    fn peer(&self) -> Peer {
        self.peer
    }
}

/// A datagram being built: a buffer of fixed size, the length set so far, and its destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecTx {
    /// The whole payload area.
    pub buf: Vec<u8>,
    /// Bytes of `buf` to send.
    pub len: usize,
    /// The destination.
    pub peer: Peer,
}

impl VecTx {
    /// A zeroed buffer of `capacity` bytes addressed to `peer`.
    pub fn new(capacity: usize, peer: Peer) -> Self {
        Self { buf: vec![0; capacity], len: 0, peer }
    }

    /// The bytes to send.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl TxDatagram for VecTx {
    fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
    fn set_len(&mut self, len: usize) {
        assert!(len <= self.buf.len(), "set_len past the buffer");
        self.len = len;
    }
    fn set_peer(&mut self, peer: &Peer) {
        self.peer = *peer;
    }
}

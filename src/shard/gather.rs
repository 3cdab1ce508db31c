//! Late answers gathered per client: one datagram of several frames instead of one each.
//!
//! When one poll of the service answers several waiting requests of the same client (the writes
//! of one batch entry commit together), their frames go into one response datagram, up to the
//! transmit buffer's payload area (`net.datagram_bytes_max`). A datagram is open for one
//! `(peer, client_id)` pair: the header echoes the client id, so two clients behind one address
//! never share a datagram.
//!
//! Invariants: the table holds at most `OPEN_DATAGRAMS_MAX` open datagrams and never grows; every
//! open datagram is sendable as it stands (its header counts the frames written, its length is
//! set), so closing one early (table full, frame does not fit) only sends it sooner; frames of one
//! client keep the order in which they were added, within a datagram and across the datagrams
//! closed one after the other; the shard closes every open datagram at the end of each iteration.

use super::LateAnswer;
use crate::wire::{DatagramWriter, HEADER_LEN};
use vigil_pmd::{Peer, TxDatagram};

/// Open datagrams per poll iteration, at most. An iteration's late answers come from a few
/// partitions' committed batches, and a batch's writes come from the clients writing at that
/// moment: a load generator or an application server is a handful of `(peer, client_id)` pairs.
/// 32 covers them while the lookup stays a scan of a few cache lines, cheaper than hashing. With
/// more clients answered in one iteration, the oldest open datagram is sent early to make room:
/// more clients cost fewer frames per datagram, never a lost answer or memory.
pub const OPEN_DATAGRAMS_MAX: usize = 32;

/// A response datagram being filled for one client.
#[derive(Debug)]
struct Open<T> {
    tx: T,
    peer: Peer,
    client_id: u64,
    /// Bytes written (header included); also the datagram's length as set on `tx`.
    len: usize,
    /// Frames written.
    frames: u16,
}

/// A datagram taken out of the table: to be sent, carrying `frames` answers.
#[derive(Debug)]
pub struct Closed<T> {
    /// The datagram, its length set.
    pub tx: T,
    /// The answers it carries.
    pub frames: u16,
}

/// What `Gather::append` did with an answer.
#[derive(Debug)]
pub enum Appended<T> {
    /// It joined the datagram open for its client.
    Joined,
    /// No datagram is open for its client: open one (`Gather::open`).
    NoneOpen,
    /// The client's open datagram had no room for it: that datagram was closed (send it) and
    /// the answer needs a new one.
    Full(Closed<T>),
}

/// The fixed table of open datagrams.
#[derive(Debug)]
pub struct Gather<T> {
    open: Vec<Open<T>>,
    /// The slot `open` replaces next when the table is full (round robin: roughly the oldest).
    evict_next: usize,
}

impl<T: TxDatagram> Gather<T> {
    /// An empty table of `OPEN_DATAGRAMS_MAX` entries, allocated once.
    pub fn new() -> Self {
        Self { open: Vec::with_capacity(OPEN_DATAGRAMS_MAX), evict_next: 0 }
    }

    /// Appends `a` to the datagram open for its client, if any and if it fits.
    pub fn append(&mut self, a: &LateAnswer<'_>) -> Appended<T> {
        // Most recent first: consecutive answers usually belong to the same client.
        let Some(i) = self.open.iter().rposition(|o| o.peer == a.peer && o.client_id == a.client_id) else {
            return Appended::NoneOpen;
        };
        let o = &mut self.open[i];
        match write_frame(&mut o.tx, a, o.len, o.frames) {
            Some(len) => {
                o.len = len;
                o.frames += 1;
                Appended::Joined
            }
            None => Appended::Full(close(self.open.swap_remove(i))),
        }
    }

    /// Opens a datagram in `tx` (addressed to `a.peer`) holding `a` as its first frame. Returns the
    /// datagram closed to make room when the table was full, or gives `tx` back when `a` does not
    /// fit even an empty datagram.
    pub fn open(&mut self, mut tx: T, a: &LateAnswer<'_>) -> Result<Option<Closed<T>>, T> {
        // An empty response is its header alone, no frame: the first frame resumes it.
        let Some(len) = write_frame(&mut tx, a, HEADER_LEN, 0) else { return Err(tx) };
        let entry = Open { tx, peer: a.peer, client_id: a.client_id, len, frames: 1 };
        if self.open.len() < OPEN_DATAGRAMS_MAX {
            self.open.push(entry);
            return Ok(None);
        }
        let slot = self.evict_next % OPEN_DATAGRAMS_MAX;
        self.evict_next = slot + 1;
        Ok(Some(close(std::mem::replace(&mut self.open[slot], entry))))
    }

    /// Takes every open datagram out, to be sent (end of the iteration).
    pub fn close_all(&mut self) -> impl Iterator<Item = Closed<T>> + '_ {
        self.evict_next = 0;
        self.open.drain(..).map(close)
    }

    /// Datagrams open now.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no datagram is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

impl<T: TxDatagram> Default for Gather<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn close<T>(o: Open<T>) -> Closed<T> {
    Closed { tx: o.tx, frames: o.frames }
}

/// Appends `a` to the response datagram in `tx` of `len` bytes and `frames` frames (`HEADER_LEN`, 0:
/// a new one), keeping it sendable; returns its new length, or `None` if `a` does not fit.
fn write_frame<T: TxDatagram>(tx: &mut T, a: &LateAnswer<'_>, len: usize, frames: u16) -> Option<usize> {
    let mut w = DatagramWriter::resume_response(tx.payload_mut(), a.client_id, len, frames).ok()?;
    w.push(a.opcode, a.status as u8, a.request_id, a.body).ok()?;
    let len = w.finish();
    tx.set_len(len);
    Some(len)
}

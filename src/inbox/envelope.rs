//! The 32-byte envelope that crosses between shards (seed 003, "32-byte envelopes").
//!
//! Layout (`#[repr(C)]`, little or big endian alike since it never leaves the process):
//!
//! | offset | size | field          | meaning                                                      |
//! |--------|------|----------------|--------------------------------------------------------------|
//! | 0      | 1    | `kind`         | request or answer                                            |
//! | 1      | 1    | `src_shard`    | the shard that sent this envelope                            |
//! | 2      | 2    | `partition_id` | the partition the request is for (echoed in the answer)      |
//! | 4      | 4    | `slot`         | payload slot in the [`PayloadPool`](super::PayloadPool)       |
//! | 8      | 4    | `generation`   | the slot's generation when this envelope was made            |
//! | 12     | 4    | `payload_len`  | bytes of payload in the slot                                 |
//! | 16     | 8    | `sequence`     | the origin's correlation id; an answer carries its request's |
//! | 24     | 1    | `status`       | the answer's [`Status`] (`Ok` in requests)                   |
//! | 25     | 7    | `reserved`     | zero                                                         |
//!
//! The seed's payload pointer becomes a slot index plus a generation (same 8 bytes, and safe: a stale
//! or double-used handle is caught by the pool instead of reading freed memory). The seed's 8 bytes of
//! padding carry the answer status in their first byte, so an answer whose body could not be stored
//! still tells the origin what happened.
//!
//! Invariants: `size_of::<Envelope>() == 32` and `align_of::<Envelope>() == 8` (checked at compile
//! time, with every offset in the table), so two envelopes share a cache line and a ring of `n`
//! envelopes is `32 * n` bytes.

use super::pool::Handle;
use crate::wire::Status;

/// What an envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A request forwarded to the shard that owns its partition; the payload is the request bytes.
    Request = 1,
    /// The answer to a request, sent back to the request's origin; the payload is the answer body.
    Answer = 2,
}

/// One cross-shard message: 32 bytes, payload by handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Envelope {
    kind: Kind,
    src_shard: u8,
    partition_id: u16,
    slot: u32,
    generation: u32,
    payload_len: u32,
    sequence: u64,
    status: Status,
    reserved: [u8; 7],
}

// The seed's layout is part of the design: a change in size is a change in the ring's footprint.
const _: () = assert!(std::mem::size_of::<Envelope>() == 32);
const _: () = assert!(std::mem::align_of::<Envelope>() == 8);
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(Envelope, kind) == 0);
    assert!(offset_of!(Envelope, src_shard) == 1);
    assert!(offset_of!(Envelope, partition_id) == 2);
    assert!(offset_of!(Envelope, slot) == 4);
    assert!(offset_of!(Envelope, generation) == 8);
    assert!(offset_of!(Envelope, payload_len) == 12);
    assert!(offset_of!(Envelope, sequence) == 16);
    assert!(offset_of!(Envelope, status) == 24);
    assert!(offset_of!(Envelope, reserved) == 25);
};

/// Size of one envelope in bytes.
pub const ENVELOPE_BYTES: usize = std::mem::size_of::<Envelope>();

impl Envelope {
    /// A request from `src_shard` for `partition_id` whose `payload_len` bytes sit in `payload`.
    pub fn request(
        src_shard: u8,
        partition_id: u16,
        payload: Handle,
        payload_len: u32,
        sequence: u64,
    ) -> Self {
        Self::new(Kind::Request, src_shard, partition_id, payload, payload_len, sequence, Status::Ok)
    }

    /// The answer to `request`, sent by `src_shard` with `status` and `payload_len` bytes in `payload`.
    pub fn answer(
        request: &Envelope,
        src_shard: u8,
        payload: Handle,
        payload_len: u32,
        status: Status,
    ) -> Self {
        assert_eq!(request.kind, Kind::Request, "only a request can be answered");
        Self::new(
            Kind::Answer,
            src_shard,
            request.partition_id,
            payload,
            payload_len,
            request.sequence,
            status,
        )
    }

    fn new(
        kind: Kind,
        src_shard: u8,
        partition_id: u16,
        payload: Handle,
        payload_len: u32,
        sequence: u64,
        status: Status,
    ) -> Self {
        Self {
            kind,
            src_shard,
            partition_id,
            slot: payload.slot(),
            generation: payload.generation(),
            payload_len,
            sequence,
            status,
            reserved: [0; 7],
        }
    }

    /// Request or answer.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The shard that sent it.
    pub fn src_shard(&self) -> u8 {
        self.src_shard
    }

    /// The partition the request is for.
    pub fn partition_id(&self) -> u16 {
        self.partition_id
    }

    /// The payload's slot and generation.
    pub fn payload(&self) -> Handle {
        Handle::new(self.slot, self.generation)
    }

    /// Bytes of payload.
    pub fn payload_len(&self) -> u32 {
        self.payload_len
    }

    /// The origin's correlation id (an answer carries its request's).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The answer's status (`Ok` for requests).
    pub fn status(&self) -> Status {
        self.status
    }
}

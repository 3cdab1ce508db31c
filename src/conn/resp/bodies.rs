//! The request bodies RESP commands send (the binary protocol's KV opcodes), the values read back
//! from their answers, and the error replies for statuses (Redis's texts where Redis has the case).

use crate::wire::{opcode, Status};

/// A GET request body: the key.
pub(super) fn get_body(body: &mut Vec<u8>, key: &[u8]) -> u8 {
    body.extend_from_slice(key);
    opcode::GET
}

/// A TTL request body: the key.
pub(super) fn ttl_body(body: &mut Vec<u8>, key: &[u8]) -> u8 {
    body.extend_from_slice(key);
    opcode::TTL
}

/// A SET request body: `u16 key_len, key, value`.
pub(super) fn set_body(body: &mut Vec<u8>, key: &[u8], value: &[u8]) -> u8 {
    body.extend_from_slice(&(key.len().min(u16::MAX as usize) as u16).to_le_bytes());
    body.extend_from_slice(key);
    body.extend_from_slice(value);
    opcode::SET
}

/// A GET answer's value (after its version).
pub(super) fn value_of(body: &[u8]) -> &[u8] {
    body.get(8..).unwrap_or(&[])
}

/// The error reply for a status (Redis's texts where Redis has the case).
pub fn status_text(status: Status) -> &'static [u8] {
    match status {
        Status::NotInteger => b"ERR value is not an integer or out of range",
        Status::Overflow => b"ERR increment or decrement would overflow",
        Status::KeyTooLarge => b"ERR key is larger than kv.key_bytes_max",
        Status::ValueTooLarge => b"ERR value is larger than kv.value_bytes_max (or the datagram)",
        Status::BadLength => b"ERR key is longer than 65535 bytes",
        Status::Full => {
            b"OOM the store is full (kv.keys_max or kv.data_bytes_max); the write was not applied"
        }
        Status::QuotaExceeded => {
            b"QUOTA this user's quota of keys or bytes is used up (auth.clients keys_max/bytes_max, or auth.anonymous_keys_max/anonymous_bytes_max); the write was not applied"
        }
        Status::Busy => {
            b"BUSY too many writes in flight on the shard owning this key; the write was not applied, retry"
        }
        Status::NotLeader => b"TRYAGAIN this node does not lead the key's partition now",
        Status::Unavailable => {
            b"ERR the key's partition is unavailable (its log failed); see the server's log"
        }
        _ => b"ERR internal error",
    }
}

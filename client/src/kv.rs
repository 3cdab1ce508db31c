//! The KV operations: GET, SET, DEL, INCR, CAS (docs/PROTOCOL.md, "KV"), each one request with a
//! new request id, routed by its key.
//!
//! Bodies are written by the server's own encoder (`vigil::kv::protocol::encode_write_body`) and
//! answers read by its own parser (`parse_answer`): no second copy of the layouts here. Statuses
//! that are answers rather than failures come back as values: a GET's `NOT_FOUND` as `None`, a
//! CAS's `CAS_MISMATCH` as `None`; every other non-OK status is [`ClientError::Server`].

use crate::client::{ok_body, Client};
use crate::error::ClientError;
use vigil::kv::protocol::{encode_write_body, parse_answer, request_body_len, Answer};
use vigil::kv::{KvError, Op};
use vigil::wire::{opcode, Status};

/// A value read, with its version (the write that last wrote it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The value's bytes.
    pub value: Vec<u8>,
    /// Its version.
    pub version: u64,
}

impl Client {
    /// PING a seed node.
    pub fn ping(&mut self) -> Result<(), ClientError> {
        self.request(opcode::PING, None, &[]).map(drop)
    }

    /// The value of `key` and its version; `None` if the key does not exist.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Versioned>, ClientError> {
        let id = self.next_request_id();
        let reply = self.execute(id, opcode::GET, Some(key), key)?;
        if reply.status == Status::NotFound as u8 {
            return Ok(None);
        }
        let body = ok_body(reply)?;
        match parse(opcode::GET, &body)? {
            Answer::Value { value, version } => Ok(Some(Versioned { value: value.to_vec(), version })),
            _ => Err(bad(opcode::GET, &body)),
        }
    }

    /// Stores `value` under `key`; returns the key's new version. Exactly-once: retries carry the
    /// same request id.
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<u64, ClientError> {
        let body = self.write(&Op::Set { key, value })?;
        version(opcode::SET, &body)
    }

    /// Deletes `key`; returns whether it existed.
    pub fn del(&mut self, key: &[u8]) -> Result<bool, ClientError> {
        let body = self.write(&Op::Del { key })?;
        match parse(opcode::DEL, &body)? {
            Answer::Deleted(existed) => Ok(existed),
            _ => Err(bad(opcode::DEL, &body)),
        }
    }

    /// Adds `delta` to the decimal integer stored under `key` (absent: 0); returns the new value
    /// and version. Exactly-once: a retried INCR is not added twice.
    pub fn incr(&mut self, key: &[u8], delta: i64) -> Result<(i64, u64), ClientError> {
        let body = self.write(&Op::Incr { key, delta })?;
        match parse(opcode::INCR, &body)? {
            Answer::Incremented { value, version } => Ok((value, version)),
            _ => Err(bad(opcode::INCR, &body)),
        }
    }

    /// Stores `value` under `key` if the key's version is `expected_version` (0: only if absent);
    /// returns the new version, or `None` if the version differed (nothing written).
    pub fn cas(
        &mut self,
        key: &[u8],
        expected_version: u64,
        value: &[u8],
    ) -> Result<Option<u64>, ClientError> {
        match self.write(&Op::Cas { key, expected_version, value }) {
            Ok(body) => version(opcode::CAS, &body).map(Some),
            Err(ClientError::Server(Status::CasMismatch)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends the write `op` with a new request id, routed by its key; its OK answer's body.
    fn write(&mut self, op: &Op<'_>) -> Result<Vec<u8>, ClientError> {
        let mut body = vec![0u8; request_body_len(op)];
        encode_write_body(op, &mut body).map_err(|e| match e {
            KvError::KeyTooLong(n) => ClientError::KeyTooLong(n),
            _ => ClientError::TooLarge { bytes: body.len(), max: u16::MAX as usize },
        })?;
        let id = self.next_request_id();
        let reply = self.execute(id, op.opcode(), Some(op.key()), &body)?;
        ok_body(reply)
    }
}

fn parse(opcode: u8, body: &[u8]) -> Result<Answer<'_>, ClientError> {
    parse_answer(opcode, body).map_err(|_| bad(opcode, body))
}

fn bad(opcode: u8, body: &[u8]) -> ClientError {
    ClientError::BadAnswer { opcode, len: body.len() }
}

fn version(opcode: u8, body: &[u8]) -> Result<u64, ClientError> {
    match parse(opcode, body)? {
        Answer::Version(v) => Ok(v),
        _ => Err(bad(opcode, body)),
    }
}

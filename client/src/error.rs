//! The client's one error type. Each variant says what happened to the request: whether the server
//! may have executed it, so the caller knows whether a write may have taken effect.

use crate::leader::HintError;
use std::net::SocketAddr;
use thiserror::Error;
use vigil::auth::Refusal;
use vigil::wire::Status;

/// Why a request failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The client was given no node address to start from; nothing was sent.
    #[error("no node address to send to (give at least one seed)")]
    NoSeeds,
    /// The socket failed to bind, send or receive. A write may or may not have reached a node.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// The request does not fit one datagram (`datagram_bytes_max`); nothing was sent.
    #[error("a request of {bytes} bytes does not fit a datagram of {max} bytes")]
    TooLarge {
        /// The request's datagram length.
        bytes: usize,
        /// The configured limit.
        max: usize,
    },
    /// The key is longer than the protocol's u16 key length; nothing was sent.
    #[error("a key of {0} bytes is longer than the protocol allows (65535)")]
    KeyTooLong(usize),
    /// Every attempt went unanswered or was told to retry (`NOT_LEADER`, `BUSY`, `UNAVAILABLE`).
    /// A write may or may not have been applied; a retry under a new request id may apply it twice.
    #[error("no answer after {attempts} attempts (last: {last})")]
    Exhausted {
        /// Datagrams sent for the request.
        attempts: u32,
        /// What the last attempt got: `timeout` or a status name.
        last: &'static str,
        /// The node the last attempt went to.
        node: SocketAddr,
    },
    /// The node refused the datagram's credentials (`AUTH_FAILED`, docs/PROTOCOL.md
    /// "Authentication"): nothing in it was executed. `None`: a reason byte this client does not
    /// know.
    #[error("authentication refused: {}", .0.map_or("unknown reason", Refusal::name))]
    AuthFailed(Option<Refusal>),
    /// The key's ACL does not allow the opcode (`FORBIDDEN`); nothing was executed.
    #[error("forbidden: the key's ACL does not allow this request")]
    Forbidden,
    /// The client's quota of keys or bytes stored would be exceeded (`QUOTA_EXCEEDED`); nothing
    /// was written.
    #[error("quota exceeded: the write would pass the client's quota of keys or bytes")]
    QuotaExceeded,
    /// Credentials were given without a client id: a key speaks for the client ids its
    /// `[[auth.clients]]` entry names, so the client must be told one; nothing was sent.
    #[error("credentials need a client id (one of the ids the key's [[auth.clients]] entry speaks for)")]
    NoClientId,
    /// The server answered with an error status (docs/PROTOCOL.md, "Status codes"); nothing was
    /// executed unless the status says otherwise.
    #[error("the server answered {}", .0.name())]
    Server(Status),
    /// The server answered with a status byte this client does not know; treat it as an error
    /// whose effect is unknown.
    #[error("the server answered an unknown status {0}")]
    UnknownStatus(u8),
    /// An OK answer whose body does not parse for its opcode: the write (if one) was executed.
    #[error("an OK answer to opcode {opcode:#04x} with a body that does not parse ({len} bytes)")]
    BadAnswer {
        /// The request's opcode.
        opcode: u8,
        /// The answer body's length.
        len: usize,
    },
    /// A `NOT_LEADER` answer whose body is not a leader hint; nothing was executed.
    #[error("a NOT_LEADER answer with a bad hint: {0}")]
    BadHint(#[from] HintError),
}

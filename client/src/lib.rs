//! `vigil-client`: a blocking Rust client for Vigil's binary protocol v1 over UDP
//! (docs/PROTOCOL.md), for applications, tools and tests.
//!
//! ```no_run
//! let mut c = vigil_client::Client::connect_cluster("10.77.0.1:9000,10.77.0.2:9000,10.77.0.3:9000")?;
//! let version = c.set(b"greeting", b"hello")?;
//! assert_eq!(c.get(b"greeting")?.map(|v| v.version), Some(version));
//! # Ok::<(), vigil_client::ClientError>(())
//! ```
//!
//! What it does: one request at a time over one `std::net::UdpSocket`; GET, SET, DEL, INCR, CAS
//! and PING ([`Client::execute`] for any other opcode); a client id (random, non-zero) and
//! increasing request ids, so a write resent after a timeout is applied once and answered with its
//! original answer; a per-attempt timeout and a bounded number of attempts; and leader following
//! in a replicated cluster: a `NOT_LEADER` answer's leader hint ([`LeaderHint`], the server's own
//! `vigil::wire` codec) is learned per
//! partition ([`LeaderTable`]) and the request resent there with the same ids, later requests for
//! the partition's keys go to that leader first, and a node that stops answering is left for the
//! next seed. Access control (docs/PROTOCOL.md, "Authentication" and "Address validation"):
//! with [`ClientConfig::credentials`] every datagram is signed (keyed BLAKE3, a fresh nonce and
//! timestamp per datagram); a node's address cookie (its `ADDRESS_UNPROVEN` answer) is kept per
//! node and sent on every later datagram to it, the refused request resent with it.
//!
//! ```no_run
//! use vigil_client::{Client, ClientConfig, Credentials};
//! let config = ClientConfig {
//!     credentials: Some(Credentials::from_hex(7, &"ab".repeat(32)).map_err(std::io::Error::other)?),
//!     client_id: Some(100_000), // one of the ids the key's [[auth.clients]] entry speaks for
//!     ..ClientConfig::default()
//! };
//! let mut c = Client::with_config("10.77.0.1:9000", config)?;
//! c.set(b"greeting", b"hello")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules: [`leader`] (the hint and the table), [`client`] (sending, retrying, routing), [`seal`]
//! (cookies and signatures), [`kv`] (the KV operations), [`error`] (the one error type).
//!
//! Invariants: the wire codec, the KV bodies and the key placement are the server's own
//! (`vigil::wire` with its `LeaderHint`, `vigil::kv::protocol`, `vigil::inbox::Placement`), never
//! copies; every call
//! returns after at most `attempts_max` datagrams.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod error;
pub mod kv;
pub mod leader;
pub mod seal;

pub use client::{refusal, Client, ClientConfig, ClientStats, Reply, DATAGRAM_BYTES_DEFAULT};
pub use error::ClientError;
pub use kv::Versioned;
pub use leader::{decode_hint, HintError, LeaderHint, LeaderTable, LEADER_HINT_LEN};
pub use vigil::auth::{Credentials, Refusal};
pub use vigil::wire::{opcode, Status};

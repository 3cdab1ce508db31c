//! RESP2/RESP3 for standard Redis clients, sans-IO: request framing into a caller-owned argument
//! table ([`request`], `inline`, [`args`]), command parsing into a borrowed [`Command`]
//! ([`command`], [`options`]), reply encoding into a caller's `Vec<u8>` ([`reply`]), and the static
//! command table ([`table`], its types in [`spec`]) behind `COMMAND`, `COMMAND INFO`, `COMMAND DOCS`
//! and the containers' `HELP` ([`introspect`]). docs/RESP.md is the contract.
//!
//! Flow for one connection: `parse_request(buf, &mut table, &limits)` until `Incomplete`; for each
//! `Request { consumed }`, `parse_command(table.view(buf))`, execute, write the reply with a
//! [`reply::ReplyWriter`], then drop `buf[..consumed]`. A [`RespError`] is replied and the
//! connection closed; a [`CommandError`] is replied and the connection goes on.
//!
//! Invariants: nothing here allocates per request once the `ArgTable` exists (replies grow only the
//! caller's buffer, which the caller bounds); nothing here panics on any input bytes (fuzzed by
//! `fuzz/fuzz_targets/resp_request.rs`, and differential-tested against `redis-protocol`).

pub mod acl;
pub mod args;
pub mod command;
mod command_error;
mod inline;
pub mod introspect;
pub mod number;
pub mod options;
pub mod reply;
pub mod request;
pub mod spec;
pub mod table;

#[cfg(test)]
mod tests_command;
#[cfg(test)]
mod tests_diff;
#[cfg(test)]
mod tests_reply;
#[cfg(test)]
mod tests_request;

pub use args::{ArgList, ArgTable, Args};
pub use command::{parse_command, parse_command_spec, Command, CommandError};
pub use reply::{ReplyWriter, RespVersion};
pub use request::{parse_request, Parsed, RespError, RespLimits};

//! The operators' admin operations on the web port (docs/OPERATIONS.md, "Admin operations"):
//! who may run them (`check_token`, the bearer token of `admin.token`), how a request reaches the
//! shards (`AdminMailbox`) and how the log level changes (`LogControl`).
//!
//! A snapshot request is a generation number in the mailbox: the web session that took the
//! request raises `asked`; each shard looks at it with its publication check (every few dozen
//! loop iterations, never per request), starts a snapshot of each of its partitions
//! (`Partition::snapshot_now`), and once none is still being stored or checkpointed publishes a
//! fresh snapshot of its counters and then raises its `done` to that generation. So a session
//! that sees every shard done also sees the board after the snapshots.
//!
//! Invariants: a shard's `done` only rises, and never past `asked`; the shard takes no lock and
//! waits for nothing; the token comparison takes the same time whatever the bytes compared
//! (`constant_time_eq`), so a wrong token's timing tells nothing about the right one.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

/// The node's mailbox of admin requests to its shards (see the module header).
#[derive(Debug)]
pub struct AdminMailbox {
    asked: AtomicU64,
    done: Box<[AtomicU64]>,
}

impl AdminMailbox {
    /// A mailbox for `shards` shards, nothing asked.
    pub fn new(shards: usize) -> Self {
        Self { asked: AtomicU64::new(0), done: (0..shards).map(|_| AtomicU64::new(0)).collect() }
    }

    /// Asks every shard for a snapshot of its partitions; returns the request's generation.
    pub fn ask_snapshot(&self) -> u64 {
        self.asked.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The newest generation asked (0: none).
    pub fn asked(&self) -> u64 {
        self.asked.load(Ordering::Acquire)
    }

    /// Shard `shard` finished generation `generation` (its snapshots stored, its counters
    /// published after them).
    pub fn mark_done(&self, shard: usize, generation: u64) {
        if let Some(d) = self.done.get(shard) {
            d.fetch_max(generation, Ordering::AcqRel);
        }
    }

    /// Shards that finished `generation` (or a later one).
    pub fn shards_done(&self, generation: u64) -> usize {
        self.done.iter().filter(|d| d.load(Ordering::Acquire) >= generation).count()
    }

    /// Shards in the node.
    pub fn shards(&self) -> usize {
        self.done.len()
    }
}

/// A shard's side of the mailbox: the generation it works on.
#[derive(Debug, Default)]
pub struct AdminTurn {
    taken: u64,
    finished: u64,
}

/// What a shard should do at its check (`AdminTurn::step`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminStep {
    /// Nothing asked since the last generation finished.
    Idle,
    /// A new generation: start a snapshot of every partition.
    Start,
    /// Snapshots started: mark `generation` done once none is in progress (after publishing).
    Finish(u64),
}

impl AdminTurn {
    /// What to do now that the mailbox holds `asked`.
    pub fn step(&mut self, asked: u64) -> AdminStep {
        if asked > self.taken {
            self.taken = asked;
            return AdminStep::Start;
        }
        if self.taken > self.finished {
            return AdminStep::Finish(self.taken);
        }
        AdminStep::Idle
    }

    /// Generation `generation` is finished (its snapshots are stored).
    pub fn finished(&mut self, generation: u64) {
        self.finished = self.finished.max(generation);
    }
}

/// Why an admin request was refused before it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    /// No `Authorization: Bearer` header: 401, with `WWW-Authenticate: Bearer`.
    Missing,
    /// A bearer token that is not the configured one: 403.
    Wrong,
    /// The node has no `admin.token`: admin operations are off (403).
    Off,
}

/// Checks an `Authorization` header's value against `token` (empty: admin off).
pub fn check_token(authorization: Option<&[u8]>, token: &str) -> Result<(), TokenRefusal> {
    if token.is_empty() {
        return Err(TokenRefusal::Off);
    }
    let Some(value) = authorization else { return Err(TokenRefusal::Missing) };
    let Some(given) = strip_bearer(value) else { return Err(TokenRefusal::Missing) };
    if constant_time_eq::constant_time_eq(given, token.as_bytes()) {
        Ok(())
    } else {
        Err(TokenRefusal::Wrong)
    }
}

/// Whether a read of the metrics or the operator pages may go on: `read_token` is empty (reads
/// open), or the request's bearer token is `read_token` or `admin_token` (compared in constant
/// time; an empty `admin_token` matches nothing).
pub fn read_allowed(authorization: Option<&[u8]>, read_token: &str, admin_token: &str) -> bool {
    if read_token.is_empty() {
        return true;
    }
    let Some(given) = authorization.and_then(strip_bearer) else { return false };
    let read = constant_time_eq::constant_time_eq(given, read_token.as_bytes());
    let admin = !admin_token.is_empty() && constant_time_eq::constant_time_eq(given, admin_token.as_bytes());
    read | admin
}

/// The token of a `Bearer <token>` value (the scheme's case ignored, RFC 9110 s. 11.1).
pub fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Changes the process's log filter while it runs (the binary holds the `tracing` subscriber:
/// `src/` only asks).
pub trait LogControl: Send + Sync + Debug {
    /// Sets the filter to `spec` (a level, or `tracing` directives as `RUST_LOG` takes them);
    /// an error says why `spec` is not one.
    fn set(&self, spec: &str) -> Result<(), String>;
    /// The filter in force.
    fn current(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_bearer_token_passes() {
        let t = "s3cret-token-0123456789";
        assert_eq!(check_token(Some(b"Bearer s3cret-token-0123456789"), t), Ok(()));
        assert_eq!(check_token(Some(b"bearer   s3cret-token-0123456789 "), t), Ok(()));
        assert_eq!(check_token(None, t), Err(TokenRefusal::Missing));
        assert_eq!(check_token(Some(b"Basic czNjcmV0"), t), Err(TokenRefusal::Missing));
        assert_eq!(check_token(Some(b"Bearer "), t), Err(TokenRefusal::Missing));
        assert_eq!(check_token(Some(b"Bearer s3cret-token-012345678"), t), Err(TokenRefusal::Wrong));
        assert_eq!(check_token(Some(b"Bearer s3cret"), ""), Err(TokenRefusal::Off));
    }

    #[test]
    fn reads_need_the_read_or_the_admin_token_once_a_read_token_is_set() {
        let (read, admin) = ("read-token-0123456789", "admin-token-0123456789");
        assert!(read_allowed(None, "", admin), "no read token: open");
        assert!(read_allowed(Some(b"Bearer read-token-0123456789"), read, admin));
        assert!(read_allowed(Some(b"Bearer admin-token-0123456789"), read, admin));
        assert!(!read_allowed(Some(b"Bearer admin-token-0123456789"), read, ""));
        assert!(!read_allowed(None, read, admin));
        assert!(!read_allowed(Some(b"Bearer nope"), read, admin));
        assert!(!read_allowed(Some(b"Bearer "), read, ""), "an empty admin token matches nothing");
    }

    #[test]
    fn a_generation_is_started_then_finished_once_per_shard() {
        let mail = AdminMailbox::new(2);
        let mut turn = AdminTurn::default();
        assert_eq!(turn.step(mail.asked()), AdminStep::Idle);
        let g = mail.ask_snapshot();
        assert_eq!(turn.step(mail.asked()), AdminStep::Start);
        assert_eq!(turn.step(mail.asked()), AdminStep::Finish(g));
        assert_eq!(mail.shards_done(g), 0);
        turn.finished(g);
        mail.mark_done(0, g);
        assert_eq!(turn.step(mail.asked()), AdminStep::Idle);
        assert_eq!(mail.shards_done(g), 1);
        // Two requests before the shard looks: one round of snapshots answers both.
        let (g2, g3) = (mail.ask_snapshot(), mail.ask_snapshot());
        assert_eq!(turn.step(mail.asked()), AdminStep::Start);
        assert_eq!(turn.step(mail.asked()), AdminStep::Finish(g3));
        mail.mark_done(1, g3);
        assert_eq!((mail.shards_done(g2), mail.shards_done(g3)), (1, 1));
        mail.mark_done(1, 1);
        assert_eq!(mail.shards_done(g3), 1, "done never goes back");
    }
}

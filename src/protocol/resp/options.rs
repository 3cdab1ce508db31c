//! The option values of parsed commands: SET's condition and TTL, EXPIRE's condition, and expiry
//! times kept relative (EX/PX, EXPIRE) or absolute (EXAT/PXAT) until the executor, which alone
//! knows the time (the leader's clock stamps it; this layer is sans-IO).
//!
//! Invariants: an `Expiry` holds milliseconds already multiplied from seconds without overflow
//! (Redis's `LLONG_MAX / 1000` checks); adding the time is the executor's, through
//! [`Expiry::deadline_ms`], whose `None` is Redis's "invalid expire time" overflow error.

/// SET's NX / XX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetCondition {
    /// No condition: set whether or not the key exists.
    Always,
    /// NX: only if the key does not exist.
    IfAbsent,
    /// XX: only if the key exists.
    IfPresent,
}

/// An expiry time in milliseconds, relative to the command's time or absolute (Unix epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// EX / PX / EXPIRE / PEXPIRE: this many milliseconds after the command's time (may be <= 0
    /// for EXPIRE, which then deletes the key).
    RelativeMs(i64),
    /// EXAT / PXAT: at this Unix time in milliseconds.
    AbsoluteMs(i64),
}

impl Expiry {
    /// The deadline as Unix milliseconds, given the command's time; `None` when it overflows
    /// (reply [`super::CommandError::InvalidExpire`], as Redis does).
    pub fn deadline_ms(self, now_ms: i64) -> Option<i64> {
        match self {
            Expiry::RelativeMs(ms) => now_ms.checked_add(ms),
            Expiry::AbsoluteMs(ms) => Some(ms),
        }
    }
}

/// What SET does to the key's time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTtl {
    /// No option: the new value has no TTL (an old one is discarded).
    Clear,
    /// KEEPTTL: the key keeps its TTL.
    Keep,
    /// EX / PX / EXAT / PXAT: the key expires then (always > 0 ms).
    Expire(Expiry),
}

/// EXPIRE / PEXPIRE's NX, XX, GT, LT (XX may go with GT or LT, as in Redis).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpireCondition {
    /// NX: only if the key has no TTL.
    pub nx: bool,
    /// XX: only if the key has a TTL.
    pub xx: bool,
    /// GT: only if the new TTL is greater (no TTL counts as infinite).
    pub gt: bool,
    /// LT: only if the new TTL is less.
    pub lt: bool,
}

/// CLIENT SETINFO's attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAttr {
    LibName,
    LibVer,
}

/// `COMMAND` and its subcommands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Introspect<'a> {
    /// COMMAND: every command's info.
    List,
    /// COMMAND COUNT.
    Count,
    /// COMMAND INFO [name..] (all when none).
    Info(super::ArgList<'a>),
    /// COMMAND DOCS [name..] (all when none).
    Docs(super::ArgList<'a>),
    /// CONFIG HELP, CLIENT HELP, COMMAND HELP: the container's name (`config`, ...).
    Help(&'static str),
}

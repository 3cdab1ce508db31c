//! The types of the command table ([`super::table`]): a command's spec (Redis 7's `COMMAND INFO`
//! fields and `COMMAND DOCS` entries), its arguments' docs and key specs, and the `const` builders
//! the table is written with.
//!
//! Invariant: everything is `'static` data; nothing here is built at run time.

/// Which parser and executor a spec stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandId {
    Ping,
    Echo,
    Get,
    Set,
    GetSet,
    Del,
    Exists,
    Incr,
    IncrBy,
    Decr,
    DecrBy,
    MGet,
    MSet,
    Expire,
    PExpire,
    Ttl,
    PTtl,
    Persist,
    DbSize,
    Info,
    Command,
    CommandCount,
    CommandDocs,
    CommandInfo,
    Config,
    ConfigGet,
    Hello,
    Client,
    ClientSetName,
    ClientGetName,
    ClientId,
    ClientSetInfo,
    /// `CONFIG HELP`, `CLIENT HELP`, `COMMAND HELP`.
    Help,
    Select,
    Auth,
    /// `ACL` (the container) and `ACL WHOAMI`.
    Acl,
    AclWhoAmI,
    Quit,
    CandleLight,
    CandleGet,
    CandleCount,
    CandleCounts,
    CandleList,
}

/// An argument's type in `COMMAND DOCS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    String,
    Integer,
    Key,
    Pattern,
    UnixTime,
    PureToken,
    OneOf,
    Block,
}

impl ArgKind {
    /// The name `COMMAND DOCS` gives the type.
    pub fn name(self) -> &'static str {
        match self {
            ArgKind::String => "string",
            ArgKind::Integer => "integer",
            ArgKind::Key => "key",
            ArgKind::Pattern => "pattern",
            ArgKind::UnixTime => "unix-time",
            ArgKind::PureToken => "pure-token",
            ArgKind::OneOf => "oneof",
            ArgKind::Block => "block",
        }
    }
}

/// One argument's documentation (`COMMAND DOCS`, redis-cli's hints).
#[derive(Clone, Copy, Debug)]
pub struct ArgDoc {
    pub name: &'static str,
    pub kind: ArgKind,
    /// Index into the command's key specs, for `key` arguments.
    pub key_spec_index: Option<u8>,
    pub token: Option<&'static str>,
    pub since: Option<&'static str>,
    pub optional: bool,
    pub multiple: bool,
    pub args: &'static [ArgDoc],
}

pub(super) const fn arg(name: &'static str, kind: ArgKind) -> ArgDoc {
    ArgDoc {
        name,
        kind,
        key_spec_index: None,
        token: None,
        since: None,
        optional: false,
        multiple: false,
        args: &[],
    }
}
pub(super) const fn key(name: &'static str) -> ArgDoc {
    ArgDoc { key_spec_index: Some(0), ..arg(name, ArgKind::Key) }
}
pub(super) const fn string(name: &'static str) -> ArgDoc {
    arg(name, ArgKind::String)
}
pub(super) const fn integer(name: &'static str) -> ArgDoc {
    arg(name, ArgKind::Integer)
}
pub(super) const fn pure(name: &'static str, token: &'static str) -> ArgDoc {
    ArgDoc { token: Some(token), ..arg(name, ArgKind::PureToken) }
}

impl ArgDoc {
    pub(super) const fn optional(self) -> Self {
        ArgDoc { optional: true, ..self }
    }
    pub(super) const fn multiple(self) -> Self {
        ArgDoc { multiple: true, ..self }
    }
    pub(super) const fn token(self, token: &'static str) -> Self {
        ArgDoc { token: Some(token), ..self }
    }
    pub(super) const fn since(self, since: &'static str) -> Self {
        ArgDoc { since: Some(since), ..self }
    }
}

pub(super) const fn oneof(name: &'static str, args: &'static [ArgDoc]) -> ArgDoc {
    ArgDoc { args, ..arg(name, ArgKind::OneOf) }
}
pub(super) const fn block(name: &'static str, args: &'static [ArgDoc]) -> ArgDoc {
    ArgDoc { args, ..arg(name, ArgKind::Block) }
}

/// A key specification (`COMMAND INFO`'s key specs): keys from argument `begin_index`, up to
/// `last_key` (relative; -1 = the last argument), every `key_step` arguments.
#[derive(Clone, Copy, Debug)]
pub struct KeySpec {
    pub flags: &'static [&'static str],
    pub begin_index: i64,
    pub last_key: i64,
    pub key_step: i64,
}

pub(super) const fn one_key(flags: &'static [&'static str]) -> KeySpec {
    KeySpec { flags, begin_index: 1, last_key: 0, key_step: 1 }
}

/// One command or subcommand.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lowercase; `parent|sub` for a subcommand.
    pub name: &'static str,
    pub id: CommandId,
    pub arity: i64,
    pub flags: &'static [&'static str],
    pub acl_categories: &'static [&'static str],
    pub first_key: i64,
    pub last_key: i64,
    pub key_step: i64,
    pub key_specs: &'static [KeySpec],
    pub group: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
    pub complexity: &'static str,
    pub args: &'static [ArgDoc],
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    /// The name a subcommand is typed with (`get` for `config|get`); the name itself otherwise.
    pub fn short_name(&self) -> &'static str {
        match self.name.split_once('|') {
            Some((_, sub)) => sub,
            None => self.name,
        }
    }

    /// Whether `argc` arguments (the name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }
}

pub(super) const fn spec(name: &'static str, id: CommandId, arity: i64, group: &'static str) -> CommandSpec {
    CommandSpec {
        name,
        id,
        arity,
        flags: &[],
        acl_categories: &[],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        key_specs: &[],
        group,
        summary: "",
        since: "1.0.0",
        complexity: "O(1)",
        args: &[],
        subcommands: &[],
    }
}

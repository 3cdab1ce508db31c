//! Command parsing: a framed request's arguments into a borrowed [`Command`], checked whole
//! (name, subcommand, arity from [`super::table`], then each option) with Redis 7's error texts.
//!
//! Invariants: parsing allocates nothing (keys and values borrow the request; multi-key commands
//! keep an [`ArgList`] range); names and options match case-insensitively; a command that parses is
//! complete (every option known, no conflict), so the executor never sees half a command; checks
//! that need the time or the store (deadline overflow, INCR overflow, auth) are the executor's,
//! with their texts in [`CommandError`].

use super::args::{ArgList, Args};
pub use super::command_error::CommandError;
use super::number::parse_i64;
use super::options::{ClientAttr, ExpireCondition, Expiry, Introspect, SetCondition, SetTtl};
use super::table::{self, CommandId, CommandSpec};

/// One parsed command; byte slices borrow the request buffer (or the argument table's scratch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// PING [message]: `PONG`, or the message as a bulk string.
    Ping { message: Option<&'a [u8]> },
    /// ECHO message.
    Echo { message: &'a [u8] },
    /// GET key.
    Get { key: &'a [u8] },
    /// SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT t|KEEPTTL].
    Set { key: &'a [u8], value: &'a [u8], condition: SetCondition, get: bool, ttl: SetTtl },
    /// GETSET key value (SET key value GET).
    GetSet { key: &'a [u8], value: &'a [u8] },
    /// DEL key [key ...].
    Del { keys: ArgList<'a> },
    /// EXISTS key [key ...].
    Exists { keys: ArgList<'a> },
    /// INCR, DECR, INCRBY, DECRBY: add `delta` (DECR's negated; DECRBY i64::MIN refused).
    IncrBy { key: &'a [u8], delta: i64 },
    /// MGET key [key ...].
    MGet { keys: ArgList<'a> },
    /// MSET key value [key value ...]: `pairs` has an even length.
    MSet { pairs: ArgList<'a> },
    /// EXPIRE / PEXPIRE key time [NX|XX|GT|LT]: `expiry` is relative, in milliseconds.
    Expire { key: &'a [u8], expiry: Expiry, condition: ExpireCondition, command: &'static str },
    /// TTL key (`millis` false) or PTTL key (true).
    Ttl { key: &'a [u8], millis: bool },
    /// PERSIST key.
    Persist { key: &'a [u8] },
    /// DBSIZE.
    DbSize,
    /// INFO [section ...].
    Info { sections: ArgList<'a> },
    /// COMMAND, COMMAND COUNT, COMMAND INFO, COMMAND DOCS; CONFIG, CLIENT and COMMAND HELP.
    Introspect(Introspect<'a>),
    /// CONFIG GET pattern [pattern ...].
    ConfigGet { patterns: ArgList<'a> },
    /// HELLO [protover [AUTH user pass] [SETNAME name]].
    Hello { protover: Option<u8>, auth: Option<(&'a [u8], &'a [u8])>, setname: Option<&'a [u8]> },
    /// CLIENT SETNAME name (empty removes the name).
    ClientSetName { name: &'a [u8] },
    /// CLIENT GETNAME.
    ClientGetName,
    /// CLIENT ID.
    ClientId,
    /// CLIENT SETINFO LIB-NAME|LIB-VER value.
    ClientSetInfo { attr: ClientAttr, value: &'a [u8] },
    /// SELECT index (any integer; the executor refuses all but 0).
    Select { db: i64 },
    /// AUTH [username] password.
    Auth { username: Option<&'a [u8]>, password: &'a [u8] },
    /// ACL WHOAMI: the session's user name.
    AclWhoAmI,
    /// QUIT: reply OK, then close.
    Quit,
    /// CANDLE.LIGHT field value [field value ...]: `fields` has an even length (names and values
    /// are the executor's to check: `conn::resp::candle`).
    CandleLight { fields: ArgList<'a> },
    /// CANDLE.GET id.
    CandleGet { id: u64 },
    /// CANDLE.COUNT: candles alight on the node.
    CandleCount,
    /// CANDLE.COUNTS STATE: candles alight by state.
    CandleCountsByState,
    /// CANDLE.LIST partition [cursor [count]]: `cursor` 0 is the newest.
    CandleList { partition: u16, cursor: u64, count: u16 },
}

/// Parses a framed request (at least one argument; `parse_request` returned `Request`).
pub fn parse_command(args: Args<'_>) -> Result<Command<'_>, CommandError<'_>> {
    parse_command_spec(args).map(|(_, command)| command)
}

/// `parse_command`, with the table entry the command is (its name and ACL category: the session
/// checks the user's rights with it, `super::acl`).
pub fn parse_command_spec(args: Args<'_>) -> Result<(&'static CommandSpec, Command<'_>), CommandError<'_>> {
    if args.is_empty() {
        return Err(CommandError::UnknownCommand { args });
    }
    let spec = resolve(args)?;
    if !spec.arity_ok(args.len()) {
        return Err(CommandError::WrongArity { name: spec.name });
    }
    Ok((spec, parse_checked(spec, args)?))
}

/// The spec the request names: the command, or its subcommand when it is a container and a
/// second argument is present (Redis's `lookupCommand`).
fn resolve(args: Args<'_>) -> Result<&'static CommandSpec, CommandError<'_>> {
    let spec = table::lookup(args.get(0)).ok_or(CommandError::UnknownCommand { args })?;
    if spec.subcommands.is_empty() || args.len() < 2 {
        return Ok(spec);
    }
    table::lookup_sub(spec, args.get(1))
        .ok_or(CommandError::UnknownSubcommand { sub: args.get(1), container: spec.name })
}

fn parse_checked<'a>(spec: &'static CommandSpec, args: Args<'a>) -> Result<Command<'a>, CommandError<'a>> {
    let key = || args.get(1);
    Ok(match spec.id {
        CommandId::Ping => match args.len() {
            1 => Command::Ping { message: None },
            2 => Command::Ping { message: Some(args.get(1)) },
            _ => return Err(CommandError::WrongArity { name: spec.name }),
        },
        CommandId::Echo => Command::Echo { message: args.get(1) },
        CommandId::Get => Command::Get { key: key() },
        CommandId::Set => parse_set(args)?,
        CommandId::GetSet => Command::GetSet { key: key(), value: args.get(2) },
        CommandId::Del => Command::Del { keys: args.list(1, args.len()) },
        CommandId::Exists => Command::Exists { keys: args.list(1, args.len()) },
        CommandId::Incr => Command::IncrBy { key: key(), delta: 1 },
        CommandId::Decr => Command::IncrBy { key: key(), delta: -1 },
        CommandId::IncrBy => Command::IncrBy { key: key(), delta: integer(args.get(2))? },
        CommandId::DecrBy => {
            let by = integer(args.get(2))?;
            Command::IncrBy { key: key(), delta: by.checked_neg().ok_or(CommandError::DecrementOverflow)? }
        }
        CommandId::MGet => Command::MGet { keys: args.list(1, args.len()) },
        CommandId::MSet => {
            if args.len().is_multiple_of(2) {
                return Err(CommandError::WrongArity { name: spec.name });
            }
            Command::MSet { pairs: args.list(1, args.len()) }
        }
        CommandId::Expire => parse_expire(args, 1000, "expire")?,
        CommandId::PExpire => parse_expire(args, 1, "pexpire")?,
        CommandId::Ttl => Command::Ttl { key: key(), millis: false },
        CommandId::PTtl => Command::Ttl { key: key(), millis: true },
        CommandId::Persist => Command::Persist { key: key() },
        CommandId::DbSize => Command::DbSize,
        CommandId::Info => Command::Info { sections: args.list(1, args.len()) },
        CommandId::Command => Command::Introspect(Introspect::List),
        CommandId::CommandCount => Command::Introspect(Introspect::Count),
        CommandId::CommandInfo => Command::Introspect(Introspect::Info(args.list(2, args.len()))),
        CommandId::CommandDocs => Command::Introspect(Introspect::Docs(args.list(2, args.len()))),
        CommandId::ConfigGet => Command::ConfigGet { patterns: args.list(2, args.len()) },
        // A container reached with one argument fails its arity above; these are unreachable
        // with a valid table, and answered as Redis answers a container without a subcommand.
        CommandId::Config | CommandId::Client | CommandId::Acl => {
            return Err(CommandError::WrongArity { name: spec.name })
        }
        CommandId::AclWhoAmI => Command::AclWhoAmI,
        CommandId::Hello => parse_hello(args)?,
        CommandId::ClientSetName => {
            let name = args.get(2);
            if !valid_client_attr(name) {
                return Err(CommandError::InvalidClientName);
            }
            Command::ClientSetName { name }
        }
        CommandId::ClientGetName => Command::ClientGetName,
        CommandId::ClientId => Command::ClientId,
        CommandId::ClientSetInfo => parse_client_setinfo(args)?,
        CommandId::Help => {
            Command::Introspect(Introspect::Help(spec.name.split('|').next().unwrap_or(spec.name)))
        }
        CommandId::Select => Command::Select { db: integer(args.get(1))? },
        CommandId::Auth => match args.len() {
            2 => Command::Auth { username: None, password: args.get(1) },
            3 => Command::Auth { username: Some(args.get(1)), password: args.get(2) },
            _ => return Err(CommandError::Syntax),
        },
        CommandId::Quit => Command::Quit,
        CommandId::CandleLight => {
            if args.len().is_multiple_of(2) {
                return Err(CommandError::WrongArity { name: spec.name });
            }
            Command::CandleLight { fields: args.list(1, args.len()) }
        }
        CommandId::CandleGet => Command::CandleGet { id: unsigned(args.get(1))? },
        CommandId::CandleCount => Command::CandleCount,
        CommandId::CandleCounts => {
            if !args.get(1).eq_ignore_ascii_case(b"state") {
                return Err(CommandError::Syntax);
            }
            Command::CandleCountsByState
        }
        CommandId::CandleList => parse_candle_list(args, spec)?,
    })
}

/// A decimal u64 (candle ids use all 64 bits).
fn unsigned(bytes: &[u8]) -> Result<u64, CommandError<'_>> {
    let digits = !bytes.is_empty() && bytes.len() <= 20 && bytes.iter().all(u8::is_ascii_digit);
    let text = std::str::from_utf8(bytes).ok().filter(|_| digits);
    text.and_then(|t| t.parse().ok()).ok_or(CommandError::NotInteger)
}

/// CANDLE.LIST partition [cursor [count]]: at most four arguments; the count is capped by the
/// server (`candle.list_page_max`), 0 or none meaning its page size.
fn parse_candle_list<'a>(
    args: Args<'a>,
    spec: &'static CommandSpec,
) -> Result<Command<'a>, CommandError<'a>> {
    if args.len() > 4 {
        return Err(CommandError::WrongArity { name: spec.name });
    }
    let partition = u16::try_from(unsigned(args.get(1))?).map_err(|_| CommandError::NotInteger)?;
    let cursor = if args.len() > 2 { unsigned(args.get(2))? } else { 0 };
    let count = if args.len() > 3 { unsigned(args.get(3))?.min(u64::from(u16::MAX)) as u16 } else { 0 };
    Ok(Command::CandleList { partition, cursor, count })
}

fn integer(bytes: &[u8]) -> Result<i64, CommandError<'_>> {
    parse_i64(bytes).ok_or(CommandError::NotInteger)
}

/// Redis's `validateClientAttr`: printable ASCII without spaces (`!`..`~`).
fn valid_client_attr(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// SET's options, as `parseExtendedStringArgumentsOrReply` reads them: a repeated option is allowed
/// (the last time wins), a conflicting one is a syntax error, a time option without a value too.
fn parse_set(args: Args<'_>) -> Result<Command<'_>, CommandError<'_>> {
    let mut condition = SetCondition::Always;
    let mut get = false;
    let mut ttl = SetTtl::Clear;
    // Which time option was given (by its name), to refuse a second, different one.
    let mut time_option: Option<&'static str> = None;
    let mut time_value: &[u8] = b"";
    let mut j = 3;
    while j < args.len() {
        let opt = args.get(j);
        let has_next = j + 1 < args.len();
        let is = |name: &str| opt.eq_ignore_ascii_case(name.as_bytes());
        if is("nx") && condition != SetCondition::IfPresent {
            condition = SetCondition::IfAbsent;
        } else if is("xx") && condition != SetCondition::IfAbsent {
            condition = SetCondition::IfPresent;
        } else if is("get") {
            get = true;
        } else if is("keepttl") && time_option.is_none() {
            ttl = SetTtl::Keep;
        } else if let Some(name) = ["ex", "px", "exat", "pxat"].into_iter().find(|n| is(n)) {
            let conflicts = matches!(ttl, SetTtl::Keep) || time_option.is_some_and(|t| t != name);
            if conflicts || !has_next {
                return Err(CommandError::Syntax);
            }
            time_option = Some(name);
            time_value = args.get(j + 1);
            j += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        j += 1;
    }
    if let Some(name) = time_option {
        ttl = SetTtl::Expire(set_expiry(name, time_value)?);
    }
    Ok(Command::Set { key: args.get(1), value: args.get(2), condition, get, ttl })
}

/// `getExpireMillisecondsOrReply`: an integer > 0, not overflowing when made milliseconds.
fn set_expiry<'a>(option: &'static str, value: &'a [u8]) -> Result<Expiry, CommandError<'a>> {
    let invalid = CommandError::InvalidExpire { command: "set" };
    let n = integer(value)?;
    if n <= 0 {
        return Err(invalid);
    }
    let seconds = option == "ex" || option == "exat";
    let ms = if seconds { n.checked_mul(1000).ok_or(invalid)? } else { n };
    Ok(if option.ends_with("at") { Expiry::AbsoluteMs(ms) } else { Expiry::RelativeMs(ms) })
}

/// EXPIRE / PEXPIRE (`expireGenericCommand`): options first, then the time, which may be <= 0.
fn parse_expire<'a>(
    args: Args<'a>,
    unit_ms: i64,
    command: &'static str,
) -> Result<Command<'a>, CommandError<'a>> {
    let mut condition = ExpireCondition::default();
    for j in 3..args.len() {
        let opt = args.get(j);
        let is = |name: &str| opt.eq_ignore_ascii_case(name.as_bytes());
        if is("nx") {
            condition.nx = true;
        } else if is("xx") {
            condition.xx = true;
        } else if is("gt") {
            condition.gt = true;
        } else if is("lt") {
            condition.lt = true;
        } else {
            return Err(CommandError::UnsupportedExpireOption { option: opt });
        }
    }
    if condition.nx && (condition.xx || condition.gt || condition.lt) {
        return Err(CommandError::ExpireNxConflict);
    }
    if condition.gt && condition.lt {
        return Err(CommandError::ExpireGtLtConflict);
    }
    let when = integer(args.get(2))?;
    let ms = when.checked_mul(unit_ms).ok_or(CommandError::InvalidExpire { command })?;
    Ok(Command::Expire { key: args.get(1), expiry: Expiry::RelativeMs(ms), condition, command })
}

/// HELLO (`helloCommand`): the version first, then AUTH u p and SETNAME n in any order.
fn parse_hello(args: Args<'_>) -> Result<Command<'_>, CommandError<'_>> {
    if args.len() < 2 {
        return Ok(Command::Hello { protover: None, auth: None, setname: None });
    }
    let version = parse_i64(args.get(1)).ok_or(CommandError::HelloVersionNotInteger)?;
    if !(2..=3).contains(&version) {
        return Err(CommandError::NoProto);
    }
    let (mut auth, mut setname) = (None, None);
    let mut j = 2;
    while j < args.len() {
        let opt = args.get(j);
        let more = args.len() - 1 - j;
        if opt.eq_ignore_ascii_case(b"auth") && more >= 2 {
            auth = Some((args.get(j + 1), args.get(j + 2)));
            j += 2;
        } else if opt.eq_ignore_ascii_case(b"setname") && more >= 1 {
            let name = args.get(j + 1);
            if !valid_client_attr(name) {
                return Err(CommandError::InvalidClientName);
            }
            setname = Some(name);
            j += 1;
        } else {
            return Err(CommandError::HelloSyntax { option: opt });
        }
        j += 1;
    }
    Ok(Command::Hello { protover: Some(version as u8), auth, setname })
}

fn parse_client_setinfo(args: Args<'_>) -> Result<Command<'_>, CommandError<'_>> {
    let option = args.get(2);
    let attr = if option.eq_ignore_ascii_case(b"lib-name") {
        ClientAttr::LibName
    } else if option.eq_ignore_ascii_case(b"lib-ver") {
        ClientAttr::LibVer
    } else {
        return Err(CommandError::UnrecognizedClientAttr { option });
    };
    let value = args.get(3);
    if !valid_client_attr(value) {
        return Err(CommandError::InvalidClientAttr { attr: option });
    }
    Ok(Command::ClientSetInfo { attr, value })
}

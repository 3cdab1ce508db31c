//! The RESP commands a connection answers itself, without the store: PING, ECHO, COMMAND, INFO,
//! CONFIG GET, HELLO, CLIENT, SELECT, AUTH, ACL WHOAMI, QUIT. Their replies have Redis 7's shapes, so client
//! libraries (redis-py's handshake, redis-cli's hints, redis-benchmark's CONFIG GET) work.
//!
//! Invariant: each call writes exactly one reply.

use super::auth::{TcpAuth, User};
use super::Cx;
use crate::protocol::resp::introspect::write_introspect;
use crate::protocol::resp::options::ClientAttr;
use crate::protocol::resp::{ArgList, Command, CommandError, ReplyWriter, RespVersion};

/// The version Vigil reports as `redis_version` (the Redis release whose commands and replies it
/// follows; clients gate features on it).
pub const REDIS_VERSION: &str = "7.0.0";

/// The connection state local commands read and change.
pub struct Local<'a> {
    /// RESP2 or RESP3 (HELLO).
    pub version: &'a mut RespVersion,
    /// Who the session runs as (AUTH and HELLO change it).
    pub user: &'a mut User,
    /// The session may run commands (logged in, or anonymous access allows it): HELLO without
    /// AUTH needs it.
    pub admitted: bool,
    /// CLIENT SETNAME.
    pub name: &'a mut Vec<u8>,
    /// CLIENT ID.
    pub id: u64,
    /// `tcp.requirepass` (empty: none).
    pub requirepass: &'a [u8],
}

/// What to do after the reply.
pub enum Outcome {
    /// Go on.
    Replied,
    /// Close once it is sent (QUIT).
    Close,
}

/// Answers a local command.
pub fn run(command: Command<'_>, local: Local<'_>, cx: &mut Cx<'_>) -> Outcome {
    if let Command::Hello { protover, auth, setname } = command {
        hello(cx, local, protover, auth, setname);
        return Outcome::Replied;
    }
    let now_unix_s = cx.now.0 / 1_000_000_000;
    let mut w = ReplyWriter::new(cx.output, *local.version);
    match command {
        Command::Ping { message: None } => w.simple(b"PONG"),
        Command::Ping { message: Some(m) } | Command::Echo { message: m } => w.bulk(m),
        Command::Introspect(what) => write_introspect(&mut w, what),
        Command::Info { sections } => {
            let text = info_text(info_mask(sections), cx.engine.counters().requests, (0, 0));
            w.verbatim(b"txt", text.as_bytes());
        }
        Command::ConfigGet { patterns } => config_get(&mut w, patterns),
        Command::ClientSetName { name } => {
            local.name.clear();
            local.name.extend_from_slice(name);
            w.ok();
        }
        Command::ClientGetName => w.bulk_or_null((!local.name.is_empty()).then_some(&local.name[..])),
        Command::ClientId => w.integer(local.id as i64),
        Command::ClientSetInfo { attr: ClientAttr::LibName | ClientAttr::LibVer, .. } => w.ok(),
        Command::Select { db: 0 } => w.ok(),
        Command::Select { .. } => w.command_error(&CommandError::DbIndexOutOfRange),
        Command::Auth { username, password } => {
            match login(local.requirepass, cx.auth, username, password, now_unix_s) {
                Ok(user) => {
                    *local.user = user;
                    w.ok();
                }
                Err(e) => {
                    cx.refusals.resp_wrongpass += u64::from(matches!(e, CommandError::WrongPass));
                    w.command_error(&e);
                }
            }
        }
        Command::AclWhoAmI => match *local.user {
            User::Principal(key_id) => {
                let keys = cx.auth.keys.load();
                w.bulk(keys.by_key_id(key_id).map_or(&b"default"[..], |p| p.name.as_bytes()));
            }
            User::Anonymous | User::Default => w.bulk(b"default"),
        },
        Command::Quit => {
            w.ok();
            return Outcome::Close;
        }
        // The store's commands are the session's (resp.rs); never routed here.
        _ => w.error(b"ERR internal error: a store command reached the local commands"),
    }
    Outcome::Replied
}

/// AUTH's check: the default user (or none named) with `requirepass`, else the principal named
/// (or, with no name, the one whose password it is) with its password, unexpired. Without
/// `requirepass` and without any principal that has a password, `AUTH <password>` is Redis's
/// "no password configured" error.
fn login(
    requirepass: &[u8],
    auth: &TcpAuth,
    username: Option<&[u8]>,
    password: &[u8],
    now_unix_s: u64,
) -> Result<User, CommandError<'static>> {
    let default_user = username.is_none_or(|u| u == b"default");
    // Compared whole, in time independent of where they differ.
    if default_user && !requirepass.is_empty() && constant_time_eq::constant_time_eq(password, requirepass) {
        return Ok(User::Default);
    }
    let keys = auth.keys.load();
    let no_passwords = !keys.principals().iter().any(|p| p.password_digest.is_some());
    if username.is_none() && requirepass.is_empty() && no_passwords {
        return Err(CommandError::AuthNotConfigured);
    }
    fn text(b: &[u8]) -> Result<&str, CommandError<'static>> {
        std::str::from_utf8(b).map_err(|_| CommandError::WrongPass)
    }
    let name = username.map(text).transpose()?;
    // An expired principal gets the same text as a wrong password (Redis: "or user is disabled").
    keys.login(name, text(password)?, now_unix_s)
        .map(|p| User::Principal(p.key_id))
        .map_err(|_| CommandError::WrongPass)
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]: authenticates and names the connection,
/// switches the protocol, and answers the server's map in the new protocol.
fn hello(
    cx: &mut Cx<'_>,
    local: Local<'_>,
    protover: Option<u8>,
    auth: Option<(&[u8], &[u8])>,
    setname: Option<&[u8]>,
) {
    let output = &mut *cx.output;
    if let Some((user, pass)) = auth {
        match login(local.requirepass, cx.auth, Some(user), pass, cx.now.0 / 1_000_000_000) {
            Ok(u) => *local.user = u,
            Err(e) => {
                cx.refusals.resp_wrongpass += u64::from(matches!(e, CommandError::WrongPass));
                ReplyWriter::new(output, *local.version).command_error(&e);
                return;
            }
        }
    } else if !local.admitted {
        cx.refusals.resp_noauth += 1;
        ReplyWriter::new(output, *local.version).command_error(&CommandError::NoAuth);
        return;
    }
    if let Some(name) = setname {
        local.name.clear();
        local.name.extend_from_slice(name);
    }
    if let Some(v) = protover {
        *local.version = if v == 3 { RespVersion::Resp3 } else { RespVersion::Resp2 };
    }
    let mut w = ReplyWriter::new(output, *local.version);
    w.map(7);
    w.bulk(b"server");
    w.bulk(b"redis");
    w.bulk(b"version");
    w.bulk(REDIS_VERSION.as_bytes());
    w.bulk(b"proto");
    w.integer(if *local.version == RespVersion::Resp3 { 3 } else { 2 });
    w.bulk(b"id");
    w.integer(local.id as i64);
    w.bulk(b"mode");
    w.bulk(b"standalone");
    w.bulk(b"role");
    w.bulk(b"master");
    w.bulk(b"modules");
    w.array(0);
}

/// INFO's server section (`info_mask`).
pub const INFO_SERVER: u8 = 1;
/// INFO's persistence section.
pub const INFO_PERSISTENCE: u8 = 2;
/// INFO's stats section.
pub const INFO_STATS: u8 = 4;
/// INFO's keyspace section.
pub const INFO_KEYSPACE: u8 = 8;

/// The sections INFO asks for (all of them when none is named; unknown names give nothing, as in
/// Redis).
pub fn info_mask(sections: ArgList<'_>) -> u8 {
    let names = [
        ("server", INFO_SERVER),
        ("persistence", INFO_PERSISTENCE),
        ("stats", INFO_STATS),
        ("keyspace", INFO_KEYSPACE),
    ];
    let mut mask = 0;
    for (name, bit) in names {
        let want = sections.is_empty()
            || sections.iter().any(|s| {
                s.eq_ignore_ascii_case(name.as_bytes())
                    || s.eq_ignore_ascii_case(b"all")
                    || s.eq_ignore_ascii_case(b"everything")
                    || s.eq_ignore_ascii_case(b"default")
            });
        if want {
            mask |= bit;
        }
    }
    mask
}

/// INFO's text for the sections in `mask`, with the node's `(keys, keys with an expiry)`: Redis's
/// `db0:` line when there are keys.
pub fn info_text(mask: u8, commands: u64, (keys, expires): (i64, i64)) -> String {
    let mut text = String::with_capacity(512);
    if mask & INFO_SERVER != 0 {
        text.push_str("# Server\r\n");
        text.push_str(&format!("redis_version:{REDIS_VERSION}\r\n"));
        text.push_str(&format!("vigil_version:{}\r\n", env!("CARGO_PKG_VERSION")));
        text.push_str("redis_mode:standalone\r\nos:Linux\r\narch_bits:64\r\nmultiplexing_api:epoll\r\n\r\n");
    }
    if mask & INFO_PERSISTENCE != 0 {
        // Every write is answered once it is in the log on disk: Redis's AOF with fsync always.
        text.push_str("# Persistence\r\nloading:0\r\naof_enabled:1\r\naof_rewrite_in_progress:0\r\n");
        text.push_str("rdb_bgsave_in_progress:0\r\n\r\n");
    }
    if mask & INFO_STATS != 0 {
        text.push_str(&format!("# Stats\r\ntotal_commands_processed:{commands}\r\n\r\n"));
    }
    if mask & INFO_KEYSPACE != 0 {
        text.push_str("# Keyspace\r\n");
        if keys > 0 {
            text.push_str(&format!("db0:keys={keys},expires={expires},avg_ttl=0\r\n"));
        }
    }
    text
}

/// CONFIG GET: what clients ask for (redis-benchmark: `save`, `appendonly`), the rest empty.
fn config_get(w: &mut ReplyWriter<'_>, patterns: ArgList<'_>) {
    const KNOWN: [(&[u8], &[u8]); 4] =
        [(b"save", b""), (b"appendonly", b"yes"), (b"appendfsync", b"always"), (b"databases", b"1")];
    let matches = |name: &[u8]| patterns.iter().any(|p| glob(p, name));
    let n = KNOWN.iter().filter(|(name, _)| matches(name)).count();
    w.map(n);
    for (name, value) in KNOWN.iter().filter(|(name, _)| matches(name)) {
        w.bulk(name);
        w.bulk(value);
    }
}

/// Redis's glob for CONFIG GET patterns: `*`, `?` and literal bytes, case-insensitive.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&pattern[1..], name) || (!name.is_empty() && glob(pattern, &name[1..])),
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p.eq_ignore_ascii_case(n) => glob(&pattern[1..], &name[1..]),
        _ => false,
    }
}

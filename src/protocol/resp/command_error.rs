//! Errors of command parsing and execution, each with Redis 7's exact reply text. Unlike a
//! [`super::RespError`], none closes the connection: the request is answered with the error and the
//! connection reads on.
//!
//! Invariant: [`CommandError::write_message`] writes the bytes Redis writes (user bytes verbatim,
//! truncated as Redis truncates them); the reply writer turns CR and LF into spaces, as Redis does.

use thiserror::Error;

use super::args::Args;

/// Shows user bytes in `Display` (lossy UTF-8); the reply uses the bytes themselves.
#[derive(Debug, Clone, Copy)]
pub struct Lossy<'a>(pub &'a [u8]);

impl std::fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(self.0))
    }
}

/// Why a command was not executed (or, for the executor's variants, not completed). Nothing was
/// changed in every case: commands are checked whole before they run.
#[derive(Debug, Clone, Copy, Error)]
pub enum CommandError<'a> {
    /// The command name is not in the table.
    #[error("ERR unknown command '{}', with args beginning with: ...", Lossy(.args.get(0)))]
    UnknownCommand { args: Args<'a> },
    /// A container command (CONFIG, CLIENT, COMMAND) with a subcommand it does not have.
    #[error("ERR unknown subcommand '{}'. Try {} HELP.", Lossy(.sub), .container.to_ascii_uppercase())]
    UnknownSubcommand { sub: &'a [u8], container: &'static str },
    /// The argument count does not fit the command's arity (`name` is Redis's full name).
    #[error("ERR wrong number of arguments for '{name}' command")]
    WrongArity { name: &'static str },
    /// An unknown or conflicting option.
    #[error("ERR syntax error")]
    Syntax,
    /// An argument (or, at execution, a stored value) is not a decimal 64-bit integer.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// An expire time <= 0 (SET), or one that overflows milliseconds or the deadline.
    #[error("ERR invalid expire time in '{command}' command")]
    InvalidExpire { command: &'static str },
    /// DECRBY by i64::MIN, whose negation does not fit.
    #[error("ERR decrement would overflow")]
    DecrementOverflow,
    /// At execution: INCR/DECR would leave the i64 range; the value is unchanged.
    #[error("ERR increment or decrement would overflow")]
    IncrementOverflow,
    /// EXPIRE with an option other than NX, XX, GT, LT.
    #[error("ERR Unsupported option {}", Lossy(.option))]
    UnsupportedExpireOption { option: &'a [u8] },
    /// EXPIRE with NX and XX, GT or LT.
    #[error("ERR NX and XX, GT or LT options at the same time are not compatible")]
    ExpireNxConflict,
    /// EXPIRE with GT and LT.
    #[error("ERR GT and LT options at the same time are not compatible")]
    ExpireGtLtConflict,
    /// HELLO's protocol version is not an integer.
    #[error("ERR Protocol version is not an integer or out of range")]
    HelloVersionNotInteger,
    /// HELLO asked for a protocol other than 2 and 3.
    #[error("NOPROTO unsupported protocol version")]
    NoProto,
    /// HELLO with an option other than AUTH u p and SETNAME n.
    #[error("ERR Syntax error in HELLO option '{}'", Lossy(.option))]
    HelloSyntax { option: &'a [u8] },
    /// CLIENT SETNAME / HELLO SETNAME with a byte outside `!`..`~`.
    #[error("ERR Client names cannot contain spaces, newlines or special characters.")]
    InvalidClientName,
    /// CLIENT SETINFO with an attribute other than LIB-NAME and LIB-VER.
    #[error("ERR Unrecognized option '{}'", Lossy(.option))]
    UnrecognizedClientAttr { option: &'a [u8] },
    /// CLIENT SETINFO with a value byte outside `!`..`~`.
    #[error("ERR {} cannot contain spaces, newlines or special characters.", Lossy(.attr))]
    InvalidClientAttr { attr: &'a [u8] },
    /// At execution: SELECT of a database other than 0 (Vigil has one).
    #[error("ERR DB index is out of range")]
    DbIndexOutOfRange,
    /// At execution: AUTH / HELLO AUTH with a wrong user or password.
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    /// At execution: AUTH with a password while none is configured.
    #[error(
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    )]
    AuthNotConfigured,
    /// At execution: a command other than AUTH, HELLO, QUIT before authentication.
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    /// At execution: the session's user lacks the ACL category the command needs (`command` is
    /// its full name, `config|get` for a subcommand), Redis 7.2's text.
    #[error("NOPERM User {} has no permissions to run the '{command}' command", Lossy(.user))]
    NoPerm { user: &'a [u8], command: &'static str },
}

impl CommandError<'_> {
    /// The error reply's text (no `-`, no CRLF), byte for byte as Redis writes it.
    pub fn write_message(&self, out: &mut Vec<u8>) {
        match *self {
            CommandError::UnknownCommand { args } => write_unknown_command(args, out),
            CommandError::UnknownSubcommand { sub, container } => {
                out.extend_from_slice(b"ERR unknown subcommand '");
                out.extend_from_slice(&sub[..sub.len().min(128)]);
                out.extend_from_slice(b"'. Try ");
                out.extend(container.bytes().map(|b| b.to_ascii_uppercase()));
                out.extend_from_slice(b" HELP.");
            }
            CommandError::UnsupportedExpireOption { option } => {
                out.extend_from_slice(b"ERR Unsupported option ");
                out.extend_from_slice(option);
            }
            CommandError::HelloSyntax { option } => {
                quoted(out, b"ERR Syntax error in HELLO option '", option, b"'")
            }
            CommandError::UnrecognizedClientAttr { option } => {
                quoted(out, b"ERR Unrecognized option '", option, b"'")
            }
            CommandError::InvalidClientAttr { attr } => {
                quoted(out, b"ERR ", attr, b" cannot contain spaces, newlines or special characters.")
            }
            ref other => {
                use std::io::Write;
                // Writing into a Vec cannot fail.
                let _ = write!(out, "{other}");
            }
        }
    }
}

fn quoted(out: &mut Vec<u8>, before: &[u8], bytes: &[u8], after: &[u8]) {
    out.extend_from_slice(before);
    out.extend_from_slice(bytes);
    out.extend_from_slice(after);
}

/// Redis's text: the name cut at 128 bytes, then `'arg' ` for each argument while the list is
/// under 128 bytes, each argument cut to what is left of the 128 (`processCommand`'s
/// `'%.*s' ` with `128 - sdslen(args)`).
fn write_unknown_command(args: Args<'_>, out: &mut Vec<u8>) {
    let name = if args.is_empty() { &b""[..] } else { args.get(0) };
    out.extend_from_slice(b"ERR unknown command '");
    out.extend_from_slice(&name[..name.len().min(128)]);
    out.extend_from_slice(b"', with args beginning with: ");
    let mut listed = 0usize;
    for i in 1..args.len() {
        if listed >= 128 {
            break;
        }
        let arg = args.get(i);
        let shown = &arg[..arg.len().min(128 - listed)];
        out.push(b'\'');
        out.extend_from_slice(shown);
        out.extend_from_slice(b"' ");
        listed += shown.len() + 3;
    }
}

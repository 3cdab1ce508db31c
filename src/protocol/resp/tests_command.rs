//! Command parsing tests: every command's shapes, options and Redis 7 error texts (the texts were
//! captured from redis-server 7.0 for the same requests).

use super::options::{ClientAttr, ExpireCondition, Expiry, Introspect, SetCondition, SetTtl};
use super::table;
use super::*;

const LIMITS: RespLimits =
    RespLimits { args_max: 64, arg_bytes_max: 4096, inline_bytes_max: 4096, request_bytes_max: 1 << 16 };

/// Parses the inline request `line` and hands its command (or error text) to `check`.
fn with_command<R>(line: &str, check: impl FnOnce(Result<Command<'_>, CommandError<'_>>) -> R) -> R {
    let buf = format!("{line}\r\n").into_bytes();
    let mut table = ArgTable::new(&LIMITS);
    assert!(matches!(parse_request(&buf, &mut table, &LIMITS), Ok(Parsed::Request { .. })), "{line}");
    check(parse_command(table.view(&buf)))
}

fn error_of(line: &str) -> String {
    with_command(line, |result| {
        let err = result.expect_err(line);
        let mut out = Vec::new();
        ReplyWriter::new(&mut out, RespVersion::Resp2).command_error(&err);
        String::from_utf8(out).unwrap()
    })
}

fn assert_error(line: &str, text: &str) {
    assert_eq!(error_of(line), format!("-{text}\r\n"), "{line}");
}

fn keys(list: ArgList<'_>) -> Vec<String> {
    list.iter().map(|k| String::from_utf8(k.to_vec()).unwrap()).collect()
}

#[test]
fn simple_commands() {
    with_command("ping", |c| assert_eq!(c.unwrap(), Command::Ping { message: None }));
    with_command("PING hi", |c| assert_eq!(c.unwrap(), Command::Ping { message: Some(b"hi") }));
    with_command("echo x", |c| assert_eq!(c.unwrap(), Command::Echo { message: b"x" }));
    with_command("GeT k", |c| assert_eq!(c.unwrap(), Command::Get { key: b"k" }));
    with_command("getset k v", |c| assert_eq!(c.unwrap(), Command::GetSet { key: b"k", value: b"v" }));
    with_command("incr k", |c| assert_eq!(c.unwrap(), Command::IncrBy { key: b"k", delta: 1 }));
    with_command("decr k", |c| assert_eq!(c.unwrap(), Command::IncrBy { key: b"k", delta: -1 }));
    with_command("incrby k -5", |c| assert_eq!(c.unwrap(), Command::IncrBy { key: b"k", delta: -5 }));
    with_command("decrby k 5", |c| assert_eq!(c.unwrap(), Command::IncrBy { key: b"k", delta: -5 }));
    with_command("ttl k", |c| assert_eq!(c.unwrap(), Command::Ttl { key: b"k", millis: false }));
    with_command("pttl k", |c| assert_eq!(c.unwrap(), Command::Ttl { key: b"k", millis: true }));
    with_command("persist k", |c| assert_eq!(c.unwrap(), Command::Persist { key: b"k" }));
    with_command("dbsize", |c| assert_eq!(c.unwrap(), Command::DbSize));
    with_command("select 0", |c| assert_eq!(c.unwrap(), Command::Select { db: 0 }));
    with_command("quit", |c| assert_eq!(c.unwrap(), Command::Quit));
    with_command("auth pw", |c| assert_eq!(c.unwrap(), Command::Auth { username: None, password: b"pw" }));
    with_command("auth u pw", |c| {
        assert_eq!(c.unwrap(), Command::Auth { username: Some(b"u"), password: b"pw" })
    });
    with_command("client id", |c| assert_eq!(c.unwrap(), Command::ClientId));
    with_command("CLIENT GETNAME", |c| assert_eq!(c.unwrap(), Command::ClientGetName));
    with_command("client setname app", |c| assert_eq!(c.unwrap(), Command::ClientSetName { name: b"app" }));
    with_command("client setname \"\"", |c| assert_eq!(c.unwrap(), Command::ClientSetName { name: b"" }));
    with_command("client setinfo lib-name redis-py", |c| {
        assert_eq!(c.unwrap(), Command::ClientSetInfo { attr: ClientAttr::LibName, value: b"redis-py" })
    });
    with_command("client setinfo LIB-VER 5.0.1", |c| {
        assert_eq!(c.unwrap(), Command::ClientSetInfo { attr: ClientAttr::LibVer, value: b"5.0.1" })
    });
}

#[test]
fn multi_key_commands_borrow_ranges() {
    with_command("del a b c", |c| match c.unwrap() {
        Command::Del { keys: k } => {
            assert_eq!(keys(k), ["a", "b", "c"]);
            assert_eq!(k.bounds(), (1, 4));
        }
        other => panic!("{other:?}"),
    });
    with_command("exists a", |c| {
        assert!(matches!(c.unwrap(), Command::Exists { keys: k } if keys(k) == ["a"]))
    });
    with_command("mget a b", |c| {
        assert!(matches!(c.unwrap(), Command::MGet { keys: k } if keys(k) == ["a", "b"]))
    });
    with_command("mset a 1 b 2", |c| {
        assert!(matches!(c.unwrap(), Command::MSet { pairs } if keys(pairs) == ["a", "1", "b", "2"]))
    });
    with_command("info", |c| {
        assert!(matches!(c.unwrap(), Command::Info { sections } if sections.is_empty()))
    });
    with_command("info server keyspace", |c| {
        assert!(matches!(c.unwrap(), Command::Info { sections } if keys(sections) == ["server", "keyspace"]))
    });
    with_command("config get save appendonly", |c| {
        assert!(
            matches!(c.unwrap(), Command::ConfigGet { patterns } if keys(patterns) == ["save", "appendonly"])
        )
    });
}

#[test]
fn set_options() {
    let set = |line: &str| {
        with_command(line, |c| match c.unwrap() {
            Command::Set { key, value, condition, get, ttl } => {
                assert_eq!((key, value), (&b"k"[..], &b"v"[..]));
                (condition, get, ttl)
            }
            other => panic!("{other:?}"),
        })
    };
    assert_eq!(set("set k v"), (SetCondition::Always, false, SetTtl::Clear));
    assert_eq!(set("set k v nx"), (SetCondition::IfAbsent, false, SetTtl::Clear));
    assert_eq!(set("set k v XX get"), (SetCondition::IfPresent, true, SetTtl::Clear));
    assert_eq!(set("set k v nx get"), (SetCondition::IfAbsent, true, SetTtl::Clear));
    assert_eq!(
        set("set k v ex 10"),
        (SetCondition::Always, false, SetTtl::Expire(Expiry::RelativeMs(10_000)))
    );
    assert_eq!(set("set k v px 10"), (SetCondition::Always, false, SetTtl::Expire(Expiry::RelativeMs(10))));
    assert_eq!(
        set("set k v exat 10"),
        (SetCondition::Always, false, SetTtl::Expire(Expiry::AbsoluteMs(10_000)))
    );
    assert_eq!(set("set k v pxat 10"), (SetCondition::Always, false, SetTtl::Expire(Expiry::AbsoluteMs(10))));
    assert_eq!(set("set k v keepttl"), (SetCondition::Always, false, SetTtl::Keep));
    // A repeated option is allowed; the last value wins (as in Redis).
    assert_eq!(
        set("set k v ex 1 ex 2 nx nx"),
        (SetCondition::IfAbsent, false, SetTtl::Expire(Expiry::RelativeMs(2000)))
    );
}

#[test]
fn set_errors() {
    for bad in [
        "set k v nx xx",
        "set k v ex 1 px 1",
        "set k v ex 1 keepttl",
        "set k v keepttl ex 1",
        "set k v ex",
        "set k v foo",
        "set k v persist",
    ] {
        assert_error(bad, "ERR syntax error");
    }
    assert_error("set k v ex x", "ERR value is not an integer or out of range");
    assert_error("set k v ex 0", "ERR invalid expire time in 'set' command");
    assert_error("set k v px -1", "ERR invalid expire time in 'set' command");
    assert_error("set k v ex 9223372036854775807", "ERR invalid expire time in 'set' command");
    assert_error("set k v exat 9223372036854775807", "ERR invalid expire time in 'set' command");
    assert_error("set k", "ERR wrong number of arguments for 'set' command");
}

#[test]
fn expiry_deadlines_check_overflow() {
    assert_eq!(Expiry::RelativeMs(5).deadline_ms(1000), Some(1005));
    assert_eq!(Expiry::AbsoluteMs(5).deadline_ms(1000), Some(5));
    assert_eq!(Expiry::RelativeMs(i64::MAX).deadline_ms(1), None);
}

#[test]
fn expire_options_and_errors() {
    let expire = |line: &str| {
        with_command(line, |c| match c.unwrap() {
            Command::Expire { key, expiry, condition, command } => {
                assert_eq!(key, b"k");
                (expiry, condition, command)
            }
            other => panic!("{other:?}"),
        })
    };
    let none = ExpireCondition::default();
    assert_eq!(expire("expire k 10"), (Expiry::RelativeMs(10_000), none, "expire"));
    assert_eq!(expire("expire k -1"), (Expiry::RelativeMs(-1000), none, "expire"));
    assert_eq!(
        expire("pexpire k 10 nx"),
        (Expiry::RelativeMs(10), ExpireCondition { nx: true, ..none }, "pexpire")
    );
    assert_eq!(
        expire("expire k 1 xx gt"),
        (Expiry::RelativeMs(1000), ExpireCondition { xx: true, gt: true, ..none }, "expire")
    );
    assert_error("expire k 1 foo", "ERR Unsupported option foo");
    assert_error("expire k 1 nx xx", "ERR NX and XX, GT or LT options at the same time are not compatible");
    assert_error("expire k 1 gt lt", "ERR GT and LT options at the same time are not compatible");
    assert_error("expire k x", "ERR value is not an integer or out of range");
    assert_error("expire k 9223372036854775807", "ERR invalid expire time in 'expire' command");
    assert_error("expire k", "ERR wrong number of arguments for 'expire' command");
}

#[test]
fn arity_and_integer_errors() {
    assert_error("get", "ERR wrong number of arguments for 'get' command");
    assert_error("get a b", "ERR wrong number of arguments for 'get' command");
    assert_error("ping a b", "ERR wrong number of arguments for 'ping' command");
    assert_error("mset a", "ERR wrong number of arguments for 'mset' command");
    assert_error("mset a b c", "ERR wrong number of arguments for 'mset' command");
    assert_error("dbsize x", "ERR wrong number of arguments for 'dbsize' command");
    assert_error("incrby k 1.5", "ERR value is not an integer or out of range");
    assert_error("incrby k 01", "ERR value is not an integer or out of range");
    assert_error("decrby k -9223372036854775808", "ERR decrement would overflow");
    assert_error("select x", "ERR value is not an integer or out of range");
    assert_error("auth a b c", "ERR syntax error");
}

#[test]
fn unknown_commands_and_subcommands() {
    assert_error("foo a b", "ERR unknown command 'foo', with args beginning with: 'a' 'b' ");
    assert_error("foo", "ERR unknown command 'foo', with args beginning with: ");
    // CR/LF in user bytes become spaces; the argument list stops past 128 bytes.
    assert_error("foo \"a\\r\\nb\"", "ERR unknown command 'foo', with args beginning with: 'a  b' ");
    let long = "x".repeat(200);
    let expected = format!("ERR unknown command 'foo', with args beginning with: '{}' ", "x".repeat(128));
    assert_error(&format!("foo {long} y"), &expected);
    assert_error("config foo", "ERR unknown subcommand 'foo'. Try CONFIG HELP.");
    assert_error("client foo", "ERR unknown subcommand 'foo'. Try CLIENT HELP.");
    assert_error("command foo", "ERR unknown subcommand 'foo'. Try COMMAND HELP.");
    assert_error("config", "ERR wrong number of arguments for 'config' command");
    assert_error("client", "ERR wrong number of arguments for 'client' command");
    assert_error("config get", "ERR wrong number of arguments for 'config|get' command");
    assert_error("client setname", "ERR wrong number of arguments for 'client|setname' command");
    assert_error("client id 1", "ERR wrong number of arguments for 'client|id' command");
    assert_error("command count x", "ERR wrong number of arguments for 'command|count' command");
}

#[test]
fn introspection_commands() {
    with_command("command", |c| assert_eq!(c.unwrap(), Command::Introspect(Introspect::List)));
    with_command("COMMAND COUNT", |c| assert_eq!(c.unwrap(), Command::Introspect(Introspect::Count)));
    with_command("command docs", |c| {
        assert!(matches!(c.unwrap(), Command::Introspect(Introspect::Docs(n)) if n.is_empty()))
    });
    with_command("CONFIG HELP", |c| assert_eq!(c.unwrap(), Command::Introspect(Introspect::Help("config"))));
    with_command("client help", |c| assert_eq!(c.unwrap(), Command::Introspect(Introspect::Help("client"))));
    assert_error("config help x", "ERR wrong number of arguments for 'config|help' command");
    with_command("command info get set", |c| {
        assert!(matches!(c.unwrap(), Command::Introspect(Introspect::Info(n)) if keys(n) == ["get", "set"]))
    });
}

#[test]
fn hello_and_client_names() {
    with_command("hello", |c| {
        assert_eq!(c.unwrap(), Command::Hello { protover: None, auth: None, setname: None })
    });
    with_command("hello 3", |c| {
        assert_eq!(c.unwrap(), Command::Hello { protover: Some(3), auth: None, setname: None })
    });
    with_command("HELLO 2 AUTH u p SETNAME n", |c| {
        assert_eq!(
            c.unwrap(),
            Command::Hello { protover: Some(2), auth: Some((b"u", b"p")), setname: Some(b"n") }
        )
    });
    assert_error("hello 4", "NOPROTO unsupported protocol version");
    assert_error("hello x", "ERR Protocol version is not an integer or out of range");
    assert_error("hello 3 foo", "ERR Syntax error in HELLO option 'foo'");
    assert_error("hello 3 auth u", "ERR Syntax error in HELLO option 'auth'");
    assert_error(
        "hello 3 setname \"a b\"",
        "ERR Client names cannot contain spaces, newlines or special characters.",
    );
    assert_error(
        "client setname \"a b\"",
        "ERR Client names cannot contain spaces, newlines or special characters.",
    );
    assert_error("client setinfo foo bar", "ERR Unrecognized option 'foo'");
    assert_error(
        "client setinfo lib-name \"a b\"",
        "ERR lib-name cannot contain spaces, newlines or special characters.",
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    /// Words a command line is made of: every command and subcommand name, every option, numbers
    /// at the edges of i64, and odd bytes.
    fn word() -> impl Strategy<Value = Vec<u8>> {
        let mut words: Vec<&str> = vec![
            "nx",
            "xx",
            "gt",
            "lt",
            "get",
            "ex",
            "px",
            "exat",
            "pxat",
            "keepttl",
            "auth",
            "setname",
            "lib-name",
            "LIB-VER",
            "0",
            "1",
            "-1",
            "2",
            "3",
            "9223372036854775807",
            "-9223372036854775808",
            "x",
            "a b",
            "",
            "help",
            "count",
            "docs",
            "info",
            "config|get",
            "nosuch",
        ];
        for spec in table::COMMANDS {
            words.push(spec.name);
            words.extend(spec.subcommands.iter().map(|s| s.short_name()));
        }
        prop_oneof![
            4 => prop::sample::select(words).prop_map(|w| w.as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..6),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Any argument list parses or fails with an error whose reply is one well-formed line;
        /// a COMMAND reply is written whole.
        #[test]
        fn parse_command_never_panics(words in prop::collection::vec(word(), 1..7)) {
            let mut buf = format!("*{}\r\n", words.len()).into_bytes();
            for w in &words {
                buf.extend_from_slice(format!("${}\r\n", w.len()).as_bytes());
                buf.extend_from_slice(w);
                buf.extend_from_slice(b"\r\n");
            }
            let mut table = ArgTable::new(&LIMITS);
            let framed = matches!(parse_request(&buf, &mut table, &LIMITS), Ok(Parsed::Request { .. }));
            prop_assert!(framed);
            let mut out = Vec::new();
            let mut w = ReplyWriter::new(&mut out, RespVersion::Resp3);
            match parse_command(table.view(&buf)) {
                Ok(Command::Introspect(what)) => super::super::introspect::write_introspect(&mut w, what),
                Ok(_) => {}
                Err(err) => {
                    w.command_error(&err);
                    prop_assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
                    prop_assert!(out.starts_with(b"-") && out.ends_with(b"\r\n"));
                }
            }
        }
    }
}

#[test]
fn candle_commands_parse_with_their_arities_and_numbers() {
    with_command("CANDLE.LIGHT nome Ana uf SP", |c| match c.unwrap() {
        Command::CandleLight { fields } => assert_eq!(keys(fields), ["nome", "Ana", "uf", "SP"]),
        other => panic!("{other:?}"),
    });
    with_command("candle.get 18446744073709551615", |c| {
        assert_eq!(c.unwrap(), Command::CandleGet { id: u64::MAX })
    });
    with_command("candle.count", |c| assert_eq!(c.unwrap(), Command::CandleCount));
    with_command("candle.counts STATE", |c| assert_eq!(c.unwrap(), Command::CandleCountsByState));
    with_command("candle.list 3", |c| {
        assert_eq!(c.unwrap(), Command::CandleList { partition: 3, cursor: 0, count: 0 })
    });
    with_command("candle.list 3 99 100000", |c| {
        assert_eq!(c.unwrap(), Command::CandleList { partition: 3, cursor: 99, count: u16::MAX })
    });
    assert_error("candle.light nome", "ERR wrong number of arguments for 'candle.light' command");
    assert_error("candle.light", "ERR wrong number of arguments for 'candle.light' command");
    assert_error("candle.get", "ERR wrong number of arguments for 'candle.get' command");
    assert_error("candle.count x", "ERR wrong number of arguments for 'candle.count' command");
    assert_error("candle.list 1 2 3 4", "ERR wrong number of arguments for 'candle.list' command");
    assert_error("candle.counts city", "ERR syntax error");
    assert_error("candle.get -1", "ERR value is not an integer or out of range");
    assert_error("candle.get 18446744073709551616", "ERR value is not an integer or out of range");
    assert_error("candle.list 65536", "ERR value is not an integer or out of range");
    assert!(error_of("candle.nope").starts_with("-ERR unknown command 'candle.nope'"));
}

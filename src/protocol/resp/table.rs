//! The static command table: every command Vigil answers on RESP, with Redis 7's metadata (arity,
//! flags, key positions, ACL categories, group, summary, since, complexity, argument docs). Command
//! parsing looks commands up here (so arity errors and the table agree), and `COMMAND`, `COMMAND
//! INFO` and `COMMAND DOCS` are written from it ([`super::introspect`]).
//!
//! Invariants: names are lowercase, subcommand names are `parent|sub` as in Redis; arity follows
//! Redis (negative = at least that many, the name included); the metadata matches what redis-server
//! 7 reports for the same command, trimmed to the arguments Vigil accepts.

use super::spec::{arg, block, integer, key, one_key, oneof, pure, spec, string};
pub use super::spec::{ArgDoc, ArgKind, CommandId, CommandSpec, KeySpec};

const RO: &[&str] = &["readonly", "fast"];
const RW: &[&str] = &["write", "denyoom", "fast"];
const READ_STRING: &[&str] = &["@read", "@string", "@fast"];
const WRITE_STRING: &[&str] = &["@write", "@string", "@fast"];
const CONN: &[&str] = &["@fast", "@connection"];
const KEY_RO: &[KeySpec] = &[one_key(&["RO", "access"])];
const KEY_RW: &[KeySpec] = &[one_key(&["RW", "access", "update"])];
const KEY_ARG: &[ArgDoc] = &[key("key")];
const KEY_UPDATE: &[KeySpec] = &[one_key(&["RW", "update"])];

const fn string_cmd(name: &'static str, id: CommandId, arity: i64, summary: &'static str) -> CommandSpec {
    CommandSpec {
        flags: RW,
        acl_categories: WRITE_STRING,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        key_specs: KEY_RW,
        summary,
        ..spec(name, id, arity, "string")
    }
}

const EXPIRE_ARGS: &[ArgDoc] = &[
    key("key"),
    integer("seconds"),
    oneof("condition", &[pure("nx", "NX"), pure("xx", "XX"), pure("gt", "GT"), pure("lt", "LT")])
        .optional()
        .since("7.0.0"),
];
const PEXPIRE_ARGS: &[ArgDoc] = &[
    key("key"),
    integer("milliseconds"),
    oneof("condition", &[pure("nx", "NX"), pure("xx", "XX"), pure("gt", "GT"), pure("lt", "LT")])
        .optional()
        .since("7.0.0"),
];

const fn key_cmd(name: &'static str, id: CommandId, summary: &'static str, write: bool) -> CommandSpec {
    CommandSpec {
        flags: if write { &["write", "fast"] } else { RO },
        acl_categories: if write {
            &["@keyspace", "@write", "@fast"]
        } else {
            &["@keyspace", "@read", "@fast"]
        },
        first_key: 1,
        last_key: 1,
        key_step: 1,
        key_specs: if write { KEY_UPDATE } else { KEY_RO },
        summary,
        args: KEY_ARG,
        ..spec(name, id, 2, "generic")
    }
}

const fn help(name: &'static str, group: &'static str) -> CommandSpec {
    CommandSpec {
        flags: &["loading", "stale"],
        acl_categories: &["@slow"],
        summary: "Show helpful text about the different subcommands",
        since: "5.0.0",
        ..spec(name, CommandId::Help, 2, group)
    }
}

const COMMAND_SUBS: &[CommandSpec] = &[
    help("command|help", "server"),
    CommandSpec {
        flags: &["loading", "stale"],
        acl_categories: &["@slow", "@connection"],
        summary: "Get total number of Redis commands",
        since: "2.8.13",
        ..spec("command|count", CommandId::CommandCount, 2, "server")
    },
    CommandSpec {
        flags: &["loading", "stale"],
        acl_categories: &["@slow", "@connection"],
        summary: "Get array of specific Redis command documentation",
        since: "7.0.0",
        complexity: "O(N) where N is the number of commands to look up",
        args: &[string("command-name").optional().multiple()],
        ..spec("command|docs", CommandId::CommandDocs, -2, "server")
    },
    CommandSpec {
        flags: &["loading", "stale"],
        acl_categories: &["@slow", "@connection"],
        summary: "Get array of specific Redis command details, or all when no argument is given.",
        since: "2.8.13",
        complexity: "O(N) where N is the number of commands to look up",
        args: &[string("command-name").optional().multiple()],
        ..spec("command|info", CommandId::CommandInfo, -2, "server")
    },
];

const CONFIG_SUBS: &[CommandSpec] = &[
    help("config|help", "server"),
    CommandSpec {
        flags: &["admin", "noscript", "loading", "stale"],
        acl_categories: &["@admin", "@slow", "@dangerous"],
        summary: "Get the values of configuration parameters",
        since: "2.0.0",
        complexity: "O(N) when N is the number of configuration parameters provided",
        args: &[block("parameter", &[string("parameter")]).multiple()],
        ..spec("config|get", CommandId::ConfigGet, -3, "server")
    },
];

const CLIENT_FLAGS: &[&str] = &["noscript", "loading", "stale"];
const CLIENT_ACL: &[&str] = &["@slow", "@connection"];
const CLIENT_SUBS: &[CommandSpec] = &[
    help("client|help", "connection"),
    CommandSpec {
        flags: CLIENT_FLAGS,
        acl_categories: CLIENT_ACL,
        summary: "Set the current connection name",
        since: "2.6.9",
        args: &[string("connection-name")],
        ..spec("client|setname", CommandId::ClientSetName, 3, "connection")
    },
    CommandSpec {
        flags: CLIENT_FLAGS,
        acl_categories: CLIENT_ACL,
        summary: "Get the current connection name",
        since: "2.6.9",
        ..spec("client|getname", CommandId::ClientGetName, 2, "connection")
    },
    CommandSpec {
        flags: CLIENT_FLAGS,
        acl_categories: CLIENT_ACL,
        summary: "Returns the client ID for the current connection",
        since: "5.0.0",
        ..spec("client|id", CommandId::ClientId, 2, "connection")
    },
    CommandSpec {
        flags: CLIENT_FLAGS,
        acl_categories: CLIENT_ACL,
        summary: "Set client or connection specific info",
        since: "7.2.0",
        args: &[oneof("attr", &[string("libname").token("LIB-NAME"), string("libver").token("LIB-VER")])],
        ..spec("client|setinfo", CommandId::ClientSetInfo, 4, "connection")
    },
];

const ACL_SUBS: &[CommandSpec] = &[
    help("acl|help", "server"),
    CommandSpec {
        flags: &["noscript", "loading", "stale"],
        acl_categories: &["@slow"],
        summary: "Return the name of the user associated to the current connection",
        since: "6.0.0",
        ..spec("acl|whoami", CommandId::AclWhoAmI, 2, "server")
    },
];

const NO_AUTH: &[&str] = &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"];

/// Every command Vigil answers on RESP.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        flags: &["fast"],
        acl_categories: CONN,
        summary: "Ping the server",
        args: &[string("message").optional()],
        ..spec("ping", CommandId::Ping, -1, "connection")
    },
    CommandSpec {
        flags: &["loading", "stale", "fast"],
        acl_categories: CONN,
        summary: "Echo the given string",
        args: &[string("message")],
        ..spec("echo", CommandId::Echo, 2, "connection")
    },
    CommandSpec {
        flags: RO,
        acl_categories: READ_STRING,
        first_key: 1,
        last_key: 1,
        key_step: 1,
        key_specs: KEY_RO,
        summary: "Get the value of a key",
        args: &[key("key")],
        ..spec("get", CommandId::Get, 2, "string")
    },
    CommandSpec {
        flags: &["write", "denyoom"],
        acl_categories: &["@write", "@string", "@slow"],
        key_specs: &[one_key(&["RW", "access", "update", "variable_flags"])],
        summary: "Set the string value of a key",
        args: &[
            key("key"),
            string("value"),
            oneof("condition", &[pure("nx", "NX"), pure("xx", "XX")]).optional().since("2.6.12"),
            pure("get", "GET").optional().since("6.2.0"),
            oneof(
                "expiration",
                &[
                    integer("seconds").token("EX").since("2.6.12"),
                    integer("milliseconds").token("PX").since("2.6.12"),
                    arg("unix-time-seconds", ArgKind::UnixTime).token("EXAT").since("6.2.0"),
                    arg("unix-time-milliseconds", ArgKind::UnixTime).token("PXAT").since("6.2.0"),
                    pure("keepttl", "KEEPTTL").since("6.0.0"),
                ],
            )
            .optional(),
        ],
        ..string_cmd("set", CommandId::Set, -3, "Set the string value of a key")
    },
    CommandSpec {
        args: &[key("key"), string("value")],
        ..string_cmd("getset", CommandId::GetSet, 3, "Set the string value of a key and return its old value")
    },
    CommandSpec {
        flags: &["write"],
        acl_categories: &["@keyspace", "@write", "@slow"],
        first_key: 1,
        last_key: -1,
        key_step: 1,
        key_specs: &[KeySpec { flags: &["RM", "delete"], begin_index: 1, last_key: -1, key_step: 1 }],
        summary: "Delete a key",
        complexity: "O(N) where N is the number of keys that will be removed.",
        args: &[key("key").multiple()],
        ..spec("del", CommandId::Del, -2, "generic")
    },
    CommandSpec {
        flags: RO,
        acl_categories: &["@keyspace", "@read", "@fast"],
        first_key: 1,
        last_key: -1,
        key_step: 1,
        key_specs: &[KeySpec { flags: &["RO"], begin_index: 1, last_key: -1, key_step: 1 }],
        summary: "Determine if a key exists",
        since: "1.0.0",
        complexity: "O(N) where N is the number of keys to check.",
        args: &[key("key").multiple()],
        ..spec("exists", CommandId::Exists, -2, "generic")
    },
    CommandSpec {
        args: &[key("key")],
        ..string_cmd("incr", CommandId::Incr, 2, "Increment the integer value of a key by one")
    },
    CommandSpec {
        args: &[key("key"), integer("increment")],
        ..string_cmd(
            "incrby",
            CommandId::IncrBy,
            3,
            "Increment the integer value of a key by the given amount",
        )
    },
    CommandSpec {
        args: &[key("key")],
        ..string_cmd("decr", CommandId::Decr, 2, "Decrement the integer value of a key by one")
    },
    CommandSpec {
        args: &[key("key"), integer("decrement")],
        ..string_cmd(
            "decrby",
            CommandId::DecrBy,
            3,
            "Decrement the integer value of a key by the given number",
        )
    },
    CommandSpec {
        flags: RO,
        acl_categories: READ_STRING,
        first_key: 1,
        last_key: -1,
        key_step: 1,
        key_specs: &[KeySpec { flags: &["RO", "access"], begin_index: 1, last_key: -1, key_step: 1 }],
        summary: "Get the values of all the given keys",
        complexity: "O(N) where N is the number of keys to retrieve.",
        args: &[key("key").multiple()],
        ..spec("mget", CommandId::MGet, -2, "string")
    },
    CommandSpec {
        flags: &["write", "denyoom"],
        acl_categories: &["@write", "@string", "@slow"],
        first_key: 1,
        last_key: -1,
        key_step: 2,
        key_specs: &[KeySpec { flags: &["OW", "update"], begin_index: 1, last_key: -1, key_step: 2 }],
        summary: "Set multiple keys to multiple values",
        since: "1.0.1",
        complexity: "O(N) where N is the number of keys to set.",
        args: &[block("data", &[key("key"), string("value")]).multiple()],
        ..spec("mset", CommandId::MSet, -3, "string")
    },
    CommandSpec {
        arity: -3,
        args: EXPIRE_ARGS,
        ..key_cmd("expire", CommandId::Expire, "Set a key's time to live in seconds", true)
    },
    CommandSpec {
        arity: -3,
        since: "2.6.0",
        args: PEXPIRE_ARGS,
        ..key_cmd("pexpire", CommandId::PExpire, "Set a key's time to live in milliseconds", true)
    },
    key_cmd("ttl", CommandId::Ttl, "Get the time to live for a key in seconds", false),
    CommandSpec {
        since: "2.6.0",
        ..key_cmd("pttl", CommandId::PTtl, "Get the time to live for a key in milliseconds", false)
    },
    CommandSpec {
        since: "2.2.0",
        ..key_cmd("persist", CommandId::Persist, "Remove the expiration from a key", true)
    },
    CommandSpec {
        flags: RO,
        acl_categories: &["@keyspace", "@read", "@fast"],
        summary: "Return the number of keys in the selected database",
        ..spec("dbsize", CommandId::DbSize, 1, "server")
    },
    CommandSpec {
        flags: &["loading", "stale"],
        acl_categories: &["@slow", "@dangerous"],
        summary: "Get information and statistics about the server",
        complexity: "O(1)",
        args: &[string("section").optional().multiple()],
        ..spec("info", CommandId::Info, -1, "server")
    },
    CommandSpec {
        flags: &["loading", "stale"],
        acl_categories: &["@slow", "@connection"],
        summary: "Get array of Redis command details",
        since: "2.8.13",
        complexity: "O(N) where N is the total number of Redis commands",
        subcommands: COMMAND_SUBS,
        ..spec("command", CommandId::Command, -1, "server")
    },
    CommandSpec {
        acl_categories: &["@slow"],
        summary: "A container for server configuration commands",
        since: "2.0.0",
        complexity: "Depends on subcommand.",
        subcommands: CONFIG_SUBS,
        ..spec("config", CommandId::Config, -2, "server")
    },
    CommandSpec {
        flags: NO_AUTH,
        acl_categories: CONN,
        summary: "Handshake with Redis",
        since: "6.0.0",
        args: &[block(
            "arguments",
            &[
                integer("protover"),
                block("username-password", &[string("username"), string("password")])
                    .token("AUTH")
                    .optional(),
                string("clientname").token("SETNAME").optional(),
            ],
        )
        .optional()],
        ..spec("hello", CommandId::Hello, -1, "connection")
    },
    CommandSpec {
        acl_categories: &["@slow"],
        summary: "A container for client connection commands",
        since: "2.4.0",
        complexity: "Depends on subcommand.",
        subcommands: CLIENT_SUBS,
        ..spec("client", CommandId::Client, -2, "connection")
    },
    CommandSpec {
        flags: &["loading", "stale", "fast"],
        acl_categories: CONN,
        summary: "Change the selected database for the current connection",
        args: &[integer("index")],
        ..spec("select", CommandId::Select, 2, "connection")
    },
    CommandSpec {
        flags: NO_AUTH,
        acl_categories: CONN,
        summary: "Authenticate to the server",
        complexity: "O(N) where N is the number of passwords defined for the user",
        args: &[string("username").optional().since("6.0.0"), string("password")],
        ..spec("auth", CommandId::Auth, -2, "connection")
    },
    CommandSpec {
        acl_categories: &["@slow"],
        summary: "A container for Access List Control commands",
        since: "6.0.0",
        complexity: "Depends on subcommand.",
        subcommands: ACL_SUBS,
        ..spec("acl", CommandId::Acl, -2, "server")
    },
    CommandSpec {
        flags: NO_AUTH,
        acl_categories: CONN,
        summary: "Close the connection",
        ..spec("quit", CommandId::Quit, -1, "connection")
    },
    CommandSpec {
        flags: &["write", "denyoom"],
        acl_categories: CANDLE_WRITE,
        summary: "Light a candle (fields as name/value pairs); returns its id once durable",
        args: &[block("field", &[string("field"), string("value")]).multiple()],
        ..candle("candle.light", CommandId::CandleLight, -3)
    },
    CommandSpec {
        summary: "Get a candle by id: its fields as name/value pairs, or nil",
        args: &[integer("id")],
        ..candle("candle.get", CommandId::CandleGet, 2)
    },
    CommandSpec {
        summary: "Count the candles alight on the node",
        ..candle("candle.count", CommandId::CandleCount, 1)
    },
    CommandSpec {
        summary: "Count the candles alight by state: UF and count pairs",
        args: &[pure("state", "STATE")],
        ..candle("candle.counts", CommandId::CandleCounts, 2)
    },
    CommandSpec {
        summary: "List a partition's candles alight, newest first: next cursor and a page",
        complexity: "O(N) where N is the page's count",
        args: &[
            integer("partition"),
            block("page", &[integer("cursor"), integer("count").optional()]).optional(),
        ],
        ..candle("candle.list", CommandId::CandleList, -2)
    },
];

const CANDLE_READ: &[&str] = &["@read", "@fast"];
const CANDLE_WRITE: &[&str] = &["@write", "@slow"];

/// A candle store command (module-style name, group `candle`), read-only unless overridden.
const fn candle(name: &'static str, id: CommandId, arity: i64) -> CommandSpec {
    CommandSpec { flags: RO, acl_categories: CANDLE_READ, since: "0.1.0", ..spec(name, id, arity, "candle") }
}

/// The command named `name` (any case), if Vigil has it.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

/// The subcommand of `parent` named `name` (any case; `get` for `config|get`).
pub fn lookup_sub(parent: &'static CommandSpec, name: &[u8]) -> Option<&'static CommandSpec> {
    parent.subcommands.iter().find(|spec| spec.short_name().as_bytes().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_unique_and_subcommands_prefixed() {
        for (i, spec) in COMMANDS.iter().enumerate() {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(!spec.summary.is_empty(), "{} has no summary", spec.name);
            assert!(COMMANDS[i + 1..].iter().all(|other| other.name != spec.name), "{} twice", spec.name);
            for sub in spec.subcommands {
                assert!(sub.name.starts_with(&format!("{}|", spec.name)), "{}", sub.name);
                assert!(!sub.summary.is_empty(), "{} has no summary", sub.name);
            }
        }
    }

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(lookup(b"GeT").map(|s| s.id), Some(CommandId::Get));
        assert_eq!(lookup(b"nosuch").map(|s| s.id), None);
        let config = lookup(b"CONFIG").unwrap();
        assert_eq!(lookup_sub(config, b"Get").map(|s| s.id), Some(CommandId::ConfigGet));
        assert_eq!(lookup_sub(config, b"set").map(|s| s.id), None);
    }

    #[test]
    fn arity_follows_redis() {
        let get = lookup(b"get").unwrap();
        assert!(get.arity_ok(2));
        assert!(!get.arity_ok(3));
        let del = lookup(b"del").unwrap();
        assert!(!del.arity_ok(1));
        assert!(del.arity_ok(5));
    }
}

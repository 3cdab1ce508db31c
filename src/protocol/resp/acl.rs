//! Which ACL category (`auth::Acl`) each RESP command needs: one table, next to the command
//! table (`table`), exhaustive over `CommandId` so a new command cannot be added without a
//! decision here.
//!
//! The categories follow Redis's (`@read`, `@write`) where Redis has them; commands Redis files
//! under `@connection` (PING, ECHO, HELLO, AUTH, CLIENT, SELECT, QUIT, COMMAND, ACL WHOAMI) need
//! nothing, so any session may run them. Two choices differ from Redis: INFO and CONFIG GET need
//! `@read`, not `@admin`/`@dangerous`, because Vigil's answers are fixed facts and key counts (no
//! settings, no secrets) and redis-benchmark asks CONFIG GET before a read-only run.
//!
//! Invariant: a command that reads the store needs at least `@read`; one that changes it `@write`.

use super::spec::CommandId;
use crate::auth::Acl;

/// The category `id` needs.
pub fn needed(id: CommandId) -> Acl {
    use CommandId as C;
    match id {
        C::Ping
        | C::Echo
        | C::Hello
        | C::Auth
        | C::Quit
        | C::Select
        | C::Client
        | C::ClientSetName
        | C::ClientGetName
        | C::ClientId
        | C::ClientSetInfo
        | C::Command
        | C::CommandCount
        | C::CommandDocs
        | C::CommandInfo
        | C::Help
        | C::Config
        | C::Acl
        | C::AclWhoAmI => Acl::NONE,
        C::Get
        | C::Exists
        | C::MGet
        | C::Ttl
        | C::PTtl
        | C::DbSize
        | C::Info
        | C::ConfigGet
        | C::CandleGet
        | C::CandleCount
        | C::CandleCounts
        | C::CandleList => Acl::READ,
        C::Set
        | C::GetSet
        | C::Del
        | C::Incr
        | C::IncrBy
        | C::Decr
        | C::DecrBy
        | C::MSet
        | C::Expire
        | C::PExpire
        | C::Persist
        | C::CandleLight => Acl::WRITE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::resp::table::{lookup, COMMANDS};

    #[test]
    fn store_commands_need_their_category_and_connection_commands_nothing() {
        let id = |name: &[u8]| lookup(name).expect("known").id;
        assert_eq!(needed(id(b"get")), Acl::READ);
        assert_eq!(needed(id(b"set")), Acl::WRITE);
        assert_eq!(needed(id(b"candle.light")), Acl::WRITE);
        assert_eq!(needed(id(b"candle.list")), Acl::READ);
        assert_eq!(needed(id(b"ping")), Acl::NONE);
        assert_eq!(needed(id(b"auth")), Acl::NONE);
    }

    #[test]
    fn the_table_agrees_with_redis_categories_where_it_names_read_or_write() {
        for spec in COMMANDS.iter().flat_map(|s| std::iter::once(s).chain(s.subcommands)) {
            let n = needed(spec.id);
            if spec.acl_categories.contains(&"@write") {
                assert_eq!(n, Acl::WRITE, "{}", spec.name);
            } else if spec.acl_categories.contains(&"@read") {
                assert_eq!(n, Acl::READ, "{}", spec.name);
            }
        }
    }
}

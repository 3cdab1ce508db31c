//! Roles as a subset of Redis ACL categories: `+@read`, `+@write`, `+@admin` (and `+@all`).
//!
//! Every protocol maps its commands to the category they need: the binary opcodes here
//! ([`needed_by_opcode`]), RESP commands and HTTP routes in their own modules. PING and ECHO need
//! nothing (Redis's `@connection`). An opcode this table does not know needs `@write`: the
//! stricter guess, so a new write opcode is never open to read-only keys by omission.

use crate::wire::opcode;

/// A set of categories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Acl(u8);

impl Acl {
    /// Nothing (PING, ECHO, AUTH and the like need only this).
    pub const NONE: Acl = Acl(0);
    /// `+@read`: reads of any projection.
    pub const READ: Acl = Acl(1);
    /// `+@write`: writes of any projection.
    pub const WRITE: Acl = Acl(2);
    /// `+@admin`: the node's admin operations and key management.
    pub const ADMIN: Acl = Acl(4);
    /// `+@all`.
    pub const ALL: Acl = Acl(7);

    /// Both sets.
    pub const fn union(self, other: Acl) -> Acl {
        Acl(self.0 | other.0)
    }

    /// True when every category of `needed` is in `self`.
    pub const fn allows(self, needed: Acl) -> bool {
        self.0 & needed.0 == needed.0
    }

    /// Parses `+@read +@write ...` (space-separated; at least one).
    pub fn parse(text: &str) -> Result<Acl, String> {
        let mut acl = Acl::NONE;
        let mut any = false;
        for word in text.split_whitespace() {
            any = true;
            acl = acl.union(match word {
                "+@read" => Acl::READ,
                "+@write" => Acl::WRITE,
                "+@admin" => Acl::ADMIN,
                "+@all" | "allcommands" => Acl::ALL,
                other => return Err(format!("{other:?} is not one of +@read +@write +@admin +@all")),
            });
        }
        if any {
            Ok(acl)
        } else {
            Err("is empty; give categories such as \"+@read +@write\"".into())
        }
    }

    /// The categories as `+@read +@write` (`-@all` for none), Redis's spelling.
    pub fn describe(self) -> &'static str {
        match self.0 {
            0 => "-@all",
            1 => "+@read",
            2 => "+@write",
            3 => "+@read +@write",
            4 => "+@admin",
            5 => "+@read +@admin",
            6 => "+@write +@admin",
            _ => "+@all",
        }
    }
}

/// The category a binary-protocol opcode needs.
pub fn needed_by_opcode(op: u8) -> Acl {
    match op {
        opcode::PING | opcode::ECHO => Acl::NONE,
        opcode::GET
        | opcode::GET_BOUNDED
        | opcode::TTL
        | opcode::KEYS_COUNT
        | opcode::CANDLE_GET
        | opcode::CANDLE_LIST
        | opcode::CANDLE_COUNT
        | opcode::CANDLE_COUNT_CITY
        | opcode::CANDLE_COUNT_STATES => Acl::READ,
        _ => Acl::WRITE,
    }
}

/// True when the answer to this request may be larger than the request itself by more than the
/// amplification bound allows: reads of stored values or lists, and a SETX that asks for the old
/// value. Every other answer is a status and a few fixed bytes (tests/serve_auth.rs measures each
/// opcode), so it goes to any source.
pub fn answer_may_amplify(op: u8, body: &[u8]) -> bool {
    match op {
        opcode::GET
        | opcode::GET_BOUNDED
        | opcode::CANDLE_GET
        | opcode::CANDLE_LIST
        | opcode::CANDLE_COUNT_STATES => true,
        opcode::SETX => body.first().is_some_and(|flags| flags & crate::kv::set_flags::GET != 0),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_categories() {
        assert_eq!(Acl::parse("+@read"), Ok(Acl::READ));
        assert_eq!(Acl::parse("+@read  +@write"), Ok(Acl::READ.union(Acl::WRITE)));
        assert_eq!(Acl::parse("+@all"), Ok(Acl::ALL));
        assert!(Acl::parse("").is_err());
        assert!(Acl::parse("+@read -@write").is_err());
        assert!(Acl::parse("+@dangerous").is_err());
    }

    #[test]
    fn read_only_cannot_write() {
        assert!(Acl::READ.allows(needed_by_opcode(opcode::GET)));
        assert!(!Acl::READ.allows(needed_by_opcode(opcode::SET)));
        assert!(Acl::READ.allows(needed_by_opcode(opcode::PING)));
        assert!(!Acl::READ.allows(needed_by_opcode(0xee)), "unknown opcodes need @write");
        assert!(Acl::ALL.allows(Acl::ADMIN));
        assert_eq!(Acl::READ.union(Acl::WRITE).describe(), "+@read +@write");
    }

    #[test]
    fn setx_amplifies_only_with_get() {
        assert!(answer_may_amplify(opcode::SETX, &[crate::kv::set_flags::GET]));
        assert!(!answer_may_amplify(opcode::SETX, &[crate::kv::set_flags::NX]));
        assert!(!answer_may_amplify(opcode::SETX, &[]));
        assert!(answer_may_amplify(opcode::GET, b"k"));
        assert!(!answer_may_amplify(opcode::SET, b"k"));
    }
}

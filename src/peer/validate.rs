//! Checks a peer's `eraftpb::Message` before raft-rs 0.7 `step`s it.
//!
//! raft-rs trusts its peers: some malformed inputs make it panic (`fatal!`, an index out of
//! bounds, an unknown enum value) or corrupt its log. Each check below names the raft-rs code it
//! keeps from being reached (raft 0.7.0 sources, `raft.rs`, `raft_log.rs`, `log_unstable.rs`,
//! `read_only.rs`, `confchange/`, and raft-proto's generated `get_*_type`).
//!
//! Covered here (a message that fails is dropped and counted, never stepped):
//! - `msg_type` / `entry_type` / conf change types that are not enum values: the generated
//!   `get_msg_type()` and `get_entry_type()` `panic!("Unknown enum variant")`.
//! - local-only types (MsgHup, MsgBeat, MsgUnreachable, MsgSnapStatus, MsgCheckQuorum) and
//!   MsgPropose: raw-node refuses the first ones; an empty forwarded MsgPropose is
//!   `fatal!("stepped empty MsgProp")` on a leader, and Vigil proposes on the leader only
//!   (`RaftGroup::propose` refuses on a follower), so no peer ever forwards a proposal.
//! - `to` is this node, `from` is the datagram's sender and a voter of the partition.
//! - term 0 on a replication message: raft-rs takes term 0 as a local message and skips its term
//!   checks (a stale leader's append would be accepted). MsgReadIndex must carry term 0 (what a
//!   follower forwards). Terms and indexes past `TERM_MAX` / `INDEX_MAX`: `term + 1` and
//!   `index + entries.len()` would overflow (a panic in debug builds).
//! - MsgAppend: `log_term` is 0 exactly when `index` is 0 (a zero `log_term` at an index past our
//!   log "matches" in `match_term`, and `maybe_append` then appends after a gap:
//!   `must_check_outofbounds` panics), entries start at `index + 1` and are contiguous
//!   (`maybe_append` slices `ents[conflict - (index + 1)..]`: underflow or out of bounds), entry
//!   terms are ≥ 1, non-decreasing, ≥ `log_term` and ≤ the message term.
//! - MsgHeartbeat: `commit` ≤ our last index (`handle_heartbeat` -> `commit_to` is
//!   `fatal!("to_commit is out of range")`); MsgAppendResponse that accepts: `index` ≤ our last
//!   index (no follower can hold entries its leader does not).
//! - MsgReadIndex and MsgReadIndexResp carry exactly one entry (the leader's safe read path
//!   indexes `m.entries[0]`); no other type but MsgAppend carries entries.
//! - MsgSnapshot: a snapshot with metadata and a conf state, index and term ≥ 1, term ≤ the
//!   message term, and a conf state raft-rs can restore (`restore` is `fatal!` on "unable to
//!   restore config" and "invalid restore"): voters non-empty, no id 0, no id twice in a list,
//!   learners apart from voters and outgoing voters, learners_next within the outgoing voters and
//!   apart from the voters, auto_leave only in a joint config (and at most `CONF_STATE_IDS_MAX`
//!   ids a list, so the check itself stays cheap).
//! - conf change entries (in MsgAppend) decode as `ConfChange` / `ConfChangeV2` with known change
//!   types and transition, so applying them cannot panic on `get_change_type()`.
//!
//! Not coverable here (they need this node's log, or are raft-rs's own consistency checks): a
//! committed entry overwritten by an append (`maybe_append`: "entry conflict with committed
//! entry", `append`: "after is out of range [committed]"); a storage error other than Compacted
//! or Unavailable (`term()`, `slice()` are `fatal!`: the store's job); `read_only.advance`'s
//! "cannot find correspond read state"; and `find_conflict_by_term`'s "term must be valid" when
//! the store cannot answer the term of its first index less one. A correct leader never sends the
//! first two (they are Raft safety violations); the others are the store's contract.

use raft::eraftpb::{
    ConfChange, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, Message,
    MessageType,
};
use thiserror::Error;

use super::PeerGroups;

/// The largest term accepted: far below `u64::MAX`, so raft-rs's `term + 1` never overflows.
pub const TERM_MAX: u64 = 1 << 62;
/// The largest log index accepted: `index + entries` never overflows.
pub const INDEX_MAX: u64 = 1 << 62;

/// The most ids in one list of a snapshot's conf state (a group has a handful of replicas).
pub const CONF_STATE_IDS_MAX: usize = 256;

/// What the check knows besides the message.
#[derive(Clone, Copy)]
pub struct ValidateContext<'a, G: PeerGroups + ?Sized> {
    /// This node's Raft id.
    pub node_id: u64,
    /// The node that sent the datagram (its header's `from_node`).
    pub from_node: u64,
    /// The partition the frame names.
    pub partition: u32,
    /// This node's groups.
    pub groups: &'a G,
}

/// Why a message was refused; it was not stepped. One counter each (`Invalid::ALL` order).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum Invalid {
    /// `msg_type` is no MessageType value.
    #[error("unknown message type")]
    UnknownType,
    /// A type raft-rs only makes locally, or MsgPropose (never forwarded in Vigil).
    #[error("a message type no peer sends")]
    NotPeerType,
    /// `to` is not this node.
    #[error("addressed to another node")]
    WrongTo,
    /// `from` is not the datagram's sender.
    #[error("from is not the sending node")]
    WrongFrom,
    /// This node does not replicate the partition.
    #[error("unknown partition")]
    UnknownPartition,
    /// The sender is not a voter of the partition's group.
    #[error("the sender is not a voter of the group")]
    NotVoter,
    /// Term 0 on a replication message, a nonzero term on MsgReadIndex, a term past `TERM_MAX`,
    /// or a `log_term` / `commit_term` past the message term.
    #[error("bad term")]
    BadTerm,
    /// An index, commit, hint or snapshot request past `INDEX_MAX`.
    #[error("index out of range")]
    IndexRange,
    /// MsgAppend's `log_term` and `index` disagree (one is 0, the other not).
    #[error("log_term and index disagree")]
    BadLogTerm,
    /// Entries on a type that carries none, or not exactly one on a read-index message.
    #[error("unexpected entries")]
    UnexpectedEntries,
    /// An entry with an unknown type.
    #[error("unknown entry type")]
    UnknownEntryType,
    /// Entries that do not start at `index + 1` or are not contiguous.
    #[error("entries not contiguous after index")]
    EntryIndex,
    /// An entry term of 0, past the message term, below `log_term` or below the previous entry's.
    #[error("bad entry term")]
    EntryTerm,
    /// A conf change entry that does not decode or names an unknown change type.
    #[error("bad conf change entry")]
    BadConfChange,
    /// A commit index past this node's last index (heartbeat), or an acknowledged index past it.
    #[error("index past this node's log")]
    PastLog,
    /// MsgSnapshot without snapshot, metadata or conf state, or with index or term 0, or a term
    /// past the message's.
    #[error("bad snapshot metadata")]
    BadSnapshot,
    /// A snapshot conf state raft-rs cannot restore.
    #[error("bad snapshot conf state")]
    BadConfState,
}

impl Invalid {
    /// Every reason, in counter order.
    pub const ALL: [Invalid; 17] = [
        Invalid::UnknownType,
        Invalid::NotPeerType,
        Invalid::WrongTo,
        Invalid::WrongFrom,
        Invalid::UnknownPartition,
        Invalid::NotVoter,
        Invalid::BadTerm,
        Invalid::IndexRange,
        Invalid::BadLogTerm,
        Invalid::UnexpectedEntries,
        Invalid::UnknownEntryType,
        Invalid::EntryIndex,
        Invalid::EntryTerm,
        Invalid::BadConfChange,
        Invalid::PastLog,
        Invalid::BadSnapshot,
        Invalid::BadConfState,
    ];

    /// Its position in `ALL` (its counter).
    pub fn index(self) -> usize {
        Invalid::ALL.iter().position(|r| *r == self).expect("in ALL")
    }
}

/// Checks `m` from `ctx.from_node` for `ctx.partition`; see the module header for each check.
pub fn validate<G: PeerGroups + ?Sized>(
    m: &Message,
    ctx: &ValidateContext<'_, G>,
) -> Result<MessageType, Invalid> {
    let t = MessageType::from_i32(m.msg_type).ok_or(Invalid::UnknownType)?;
    check_type(t)?;
    check_addresses(m, ctx)?;
    let last_index = ctx.groups.last_index(ctx.partition).ok_or(Invalid::UnknownPartition)?;
    if !ctx.groups.is_voter(ctx.partition, m.from) {
        return Err(Invalid::NotVoter);
    }
    check_terms(m, t)?;
    check_ranges(m)?;
    check_entries_allowed(m, t)?;
    match t {
        MessageType::MsgAppend => check_append(m)?,
        MessageType::MsgHeartbeat if m.commit > last_index => return Err(Invalid::PastLog),
        MessageType::MsgAppendResponse if !m.reject && m.index > last_index => return Err(Invalid::PastLog),
        MessageType::MsgSnapshot => check_snapshot(m)?,
        _ => {}
    }
    Ok(t)
}

fn check_type(t: MessageType) -> Result<(), Invalid> {
    match t {
        MessageType::MsgHup
        | MessageType::MsgBeat
        | MessageType::MsgUnreachable
        | MessageType::MsgSnapStatus
        | MessageType::MsgCheckQuorum
        | MessageType::MsgPropose => Err(Invalid::NotPeerType),
        _ => Ok(()),
    }
}

fn check_addresses<G: PeerGroups + ?Sized>(m: &Message, ctx: &ValidateContext<'_, G>) -> Result<(), Invalid> {
    if m.to != ctx.node_id {
        return Err(Invalid::WrongTo);
    }
    if m.from != ctx.from_node || m.from == ctx.node_id {
        return Err(Invalid::WrongFrom);
    }
    Ok(())
}

fn check_terms(m: &Message, t: MessageType) -> Result<(), Invalid> {
    if t == MessageType::MsgReadIndex {
        // A follower forwards raft-rs's local read request as is: term 0, no log fields.
        return if m.term == 0 && m.log_term == 0 && m.commit_term == 0 {
            Ok(())
        } else {
            Err(Invalid::BadTerm)
        };
    }
    if m.term == 0 || m.term > TERM_MAX || m.log_term > m.term || m.commit_term > m.term {
        return Err(Invalid::BadTerm);
    }
    Ok(())
}

fn check_ranges(m: &Message) -> Result<(), Invalid> {
    let fields = [m.index, m.commit, m.reject_hint, m.request_snapshot];
    if fields.iter().any(|i| *i > INDEX_MAX) {
        return Err(Invalid::IndexRange);
    }
    Ok(())
}

fn check_entries_allowed(m: &Message, t: MessageType) -> Result<(), Invalid> {
    let ok = match t {
        MessageType::MsgAppend => true,
        MessageType::MsgReadIndex | MessageType::MsgReadIndexResp => m.entries.len() == 1,
        _ => m.entries.is_empty(),
    };
    if !ok {
        return Err(Invalid::UnexpectedEntries);
    }
    for e in &m.entries {
        let kind = EntryType::from_i32(e.entry_type).ok_or(Invalid::UnknownEntryType)?;
        if kind != EntryType::EntryNormal {
            check_conf_change(kind, e)?;
        }
    }
    Ok(())
}

fn check_conf_change(kind: EntryType, e: &Entry) -> Result<(), Invalid> {
    use prost::Message as _;
    let known = |c: i32| ConfChangeType::from_i32(c).is_some();
    let ok = match kind {
        EntryType::EntryConfChange => ConfChange::decode(&e.data[..]).is_ok_and(|cc| known(cc.change_type)),
        _ => ConfChangeV2::decode(&e.data[..]).is_ok_and(|cc| {
            ConfChangeTransition::from_i32(cc.transition).is_some()
                && cc.changes.iter().all(|c| known(c.change_type))
        }),
    };
    if ok {
        Ok(())
    } else {
        Err(Invalid::BadConfChange)
    }
}

fn check_append(m: &Message) -> Result<(), Invalid> {
    if (m.index == 0) != (m.log_term == 0) {
        return Err(Invalid::BadLogTerm);
    }
    if m.index + m.entries.len() as u64 > INDEX_MAX {
        return Err(Invalid::IndexRange);
    }
    let mut prev_term = m.log_term;
    for (i, e) in m.entries.iter().enumerate() {
        if e.index != m.index + 1 + i as u64 {
            return Err(Invalid::EntryIndex);
        }
        if e.term == 0 || e.term > m.term || e.term < prev_term {
            return Err(Invalid::EntryTerm);
        }
        prev_term = e.term;
    }
    Ok(())
}

fn check_snapshot(m: &Message) -> Result<(), Invalid> {
    let meta = m.snapshot.as_ref().and_then(|s| s.metadata.as_ref()).ok_or(Invalid::BadSnapshot)?;
    let cs = meta.conf_state.as_ref().ok_or(Invalid::BadSnapshot)?;
    if meta.index == 0 || meta.index > INDEX_MAX || meta.term == 0 || meta.term > m.term {
        return Err(Invalid::BadSnapshot);
    }
    check_conf_state(cs)
}

/// The conf states raft-rs's `confchange::restore` rebuilds exactly (see the module header).
pub fn check_conf_state(cs: &ConfState) -> Result<(), Invalid> {
    let lists = [&cs.voters, &cs.learners, &cs.voters_outgoing, &cs.learners_next];
    // The checks below are quadratic: bound the lists first.
    if lists.iter().any(|l| l.len() > CONF_STATE_IDS_MAX) {
        return Err(Invalid::BadConfState);
    }
    let well_formed = !cs.voters.is_empty()
        && lists.iter().all(|l| l.iter().all(|id| *id != 0) && !has_duplicate(l))
        && disjoint(&cs.learners, &cs.voters)
        && disjoint(&cs.learners, &cs.voters_outgoing)
        && disjoint(&cs.learners_next, &cs.voters)
        && cs.learners_next.iter().all(|id| cs.voters_outgoing.contains(id))
        && (!cs.auto_leave || !cs.voters_outgoing.is_empty());
    if well_formed {
        Ok(())
    } else {
        Err(Invalid::BadConfState)
    }
}

fn has_duplicate(ids: &[u64]) -> bool {
    ids.iter().enumerate().any(|(i, id)| ids[..i].contains(id))
}

fn disjoint(a: &[u64], b: &[u64]) -> bool {
    a.iter().all(|id| !b.contains(id))
}

//! Each validation check; the raft-rs panics it keeps from being reached (shown on a real
//! raft-rs 0.7 `RawNode`); and a real three-node raft-rs cluster whose every message crosses the
//! outbox and inbox and is never refused.

use std::panic::{catch_unwind, AssertUnwindSafe};

use prost::Message as _;
use raft::eraftpb::{ConfChange, ConfState, Entry, EntryType, HardState, Message, MessageType};
use raft::storage::MemStorage;
use raft::{Config, RawNode};

use super::*;
use crate::peer::validate::{check_conf_state, validate, Invalid, ValidateContext, INDEX_MAX, TERM_MAX};

fn check(m: &Message) -> Result<MessageType, Invalid> {
    let groups = Groups::three(4, 100);
    validate(m, &ValidateContext { node_id: ME, from_node: LEADER, partition: 1, groups: &groups })
}

fn refused(why: Invalid, m: &Message) {
    assert_eq!(check(m), Err(why), "{m:?}");
}

#[test]
fn every_peer_type_well_formed_passes() {
    let mut read = msg(MessageType::MsgReadIndex, LEADER, ME, 0);
    read.entries = vec![Entry::default()];
    let mut read_resp = msg(MessageType::MsgReadIndexResp, LEADER, ME, 3);
    read_resp.entries = vec![Entry::default()];
    let mut vote = msg(MessageType::MsgRequestVote, LEADER, ME, 3);
    vote.index = 7;
    vote.log_term = 2;
    let ok = [
        heartbeat(LEADER, ME, 3, 100),
        append(LEADER, ME, 3, 0, 0, 2, 10),
        append(LEADER, ME, 3, 7, 2, 3, 10),
        append(LEADER, ME, 3, 7, 2, 0, 0),
        snapshot_msg(LEADER, ME, 3, 50, vec![1, 2, 3]),
        msg(MessageType::MsgAppendResponse, LEADER, ME, 3),
        msg(MessageType::MsgHeartbeatResponse, LEADER, ME, 3),
        vote,
        msg(MessageType::MsgRequestVoteResponse, LEADER, ME, 3),
        msg(MessageType::MsgRequestPreVote, LEADER, ME, 4),
        msg(MessageType::MsgRequestPreVoteResponse, LEADER, ME, 4),
        msg(MessageType::MsgTransferLeader, LEADER, ME, 3),
        msg(MessageType::MsgTimeoutNow, LEADER, ME, 3),
        read,
        read_resp,
    ];
    for m in &ok {
        assert_eq!(check(m), Ok(m.get_msg_type()), "{m:?}");
    }
}

#[test]
fn each_check_refuses_its_input() {
    let mut m = heartbeat(LEADER, ME, 3, 1);
    m.msg_type = 99;
    refused(Invalid::UnknownType, &m);
    for t in [
        MessageType::MsgHup,
        MessageType::MsgBeat,
        MessageType::MsgUnreachable,
        MessageType::MsgSnapStatus,
        MessageType::MsgCheckQuorum,
        MessageType::MsgPropose,
    ] {
        refused(Invalid::NotPeerType, &msg(t, LEADER, ME, 3));
    }
    refused(Invalid::WrongTo, &heartbeat(LEADER, OTHER, 3, 1));
    refused(Invalid::WrongFrom, &heartbeat(OTHER, ME, 3, 1));
    let groups = Groups::three(4, 100);
    let ctx = ValidateContext { node_id: ME, from_node: LEADER, partition: 9, groups: &groups };
    assert_eq!(validate(&heartbeat(LEADER, ME, 3, 1), &ctx), Err(Invalid::UnknownPartition));
    let mut groups = Groups::three(4, 100);
    groups.voters.insert(1, vec![2, 3, 4]);
    let ctx = ValidateContext { node_id: ME, from_node: LEADER, partition: 1, groups: &groups };
    assert_eq!(validate(&heartbeat(LEADER, ME, 3, 1), &ctx), Err(Invalid::NotVoter));

    refused(Invalid::BadTerm, &heartbeat(LEADER, ME, 0, 1));
    refused(Invalid::BadTerm, &heartbeat(LEADER, ME, TERM_MAX + 1, 1));
    refused(Invalid::BadTerm, &append(LEADER, ME, 3, 7, 4, 0, 0));
    let mut read = msg(MessageType::MsgReadIndex, LEADER, ME, 3);
    read.entries = vec![Entry::default()];
    refused(Invalid::BadTerm, &read);
    let mut m = msg(MessageType::MsgAppendResponse, LEADER, ME, 3);
    m.reject_hint = INDEX_MAX + 1;
    refused(Invalid::IndexRange, &m);
    refused(Invalid::IndexRange, &append(LEADER, ME, 3, INDEX_MAX, 2, 1, 1));

    refused(Invalid::BadLogTerm, &append(LEADER, ME, 3, 7, 0, 1, 1));
    refused(Invalid::BadLogTerm, &append(LEADER, ME, 3, 0, 2, 1, 1));

    let mut m = heartbeat(LEADER, ME, 3, 1);
    m.entries = vec![Entry::default()];
    refused(Invalid::UnexpectedEntries, &m);
    refused(Invalid::UnexpectedEntries, &msg(MessageType::MsgReadIndexResp, LEADER, ME, 3));
    let mut m = append(LEADER, ME, 3, 7, 2, 2, 1);
    m.entries[1].entry_type = 5;
    refused(Invalid::UnknownEntryType, &m);

    let mut m = append(LEADER, ME, 3, 7, 2, 3, 1);
    m.entries[0].index = 7;
    refused(Invalid::EntryIndex, &m);
    let mut m = append(LEADER, ME, 3, 7, 2, 3, 1);
    m.entries[2].index = 11;
    refused(Invalid::EntryIndex, &m);
    for (i, term) in [(0, 0), (1, 4), (0, 1)] {
        let mut m = append(LEADER, ME, 3, 7, 2, 3, 1);
        m.entries[i].term = term;
        refused(Invalid::EntryTerm, &m);
    }
    let mut m = append(LEADER, ME, 3, 7, 2, 3, 1);
    m.entries[1].term = 2;
    refused(Invalid::EntryTerm, &m); // 3 then 2: decreasing

    let mut m = append(LEADER, ME, 3, 7, 2, 1, 1);
    m.entries[0].set_entry_type(EntryType::EntryConfChange);
    m.entries[0].data = vec![0xFF, 0xFF];
    refused(Invalid::BadConfChange, &m);
    let mut cc = ConfChange { change_type: 9, ..Default::default() };
    m.entries[0].data = cc.encode_to_vec();
    refused(Invalid::BadConfChange, &m);
    cc.change_type = 0;
    cc.node_id = 4;
    m.entries[0].data = cc.encode_to_vec();
    assert!(check(&m).is_ok());

    refused(Invalid::PastLog, &heartbeat(LEADER, ME, 3, 101));
    let mut m = msg(MessageType::MsgAppendResponse, LEADER, ME, 3);
    m.index = 101;
    refused(Invalid::PastLog, &m);
    m.reject = true;
    assert!(check(&m).is_ok(), "a rejection's index is the leader's probe");

    refused(Invalid::BadSnapshot, &msg(MessageType::MsgSnapshot, LEADER, ME, 3));
    refused(Invalid::BadSnapshot, &snapshot_msg(LEADER, ME, 3, 0, vec![1, 2, 3]));
    let mut m = snapshot_msg(LEADER, ME, 3, 5, vec![1, 2, 3]);
    m.snapshot.as_mut().unwrap().metadata.as_mut().unwrap().term = 4;
    refused(Invalid::BadSnapshot, &m);
    refused(Invalid::BadConfState, &snapshot_msg(LEADER, ME, 3, 5, vec![]));
}

#[test]
fn conf_states_raft_cannot_restore_are_refused() {
    let cs = |v: &[u64], l: &[u64], vo: &[u64], ln: &[u64], auto: bool| ConfState {
        voters: v.to_vec(),
        learners: l.to_vec(),
        voters_outgoing: vo.to_vec(),
        learners_next: ln.to_vec(),
        auto_leave: auto,
    };
    assert!(check_conf_state(&cs(&[1, 2, 3], &[4], &[], &[], false)).is_ok());
    assert!(check_conf_state(&cs(&[1, 2, 4], &[], &[1, 2, 3], &[3], true)).is_ok());
    let bad = [
        cs(&[], &[4], &[], &[], false),
        cs(&[1, 0], &[], &[], &[], false),
        cs(&[1, 1], &[], &[], &[], false),
        cs(&[1, 2], &[2], &[], &[], false),
        cs(&[1, 2], &[3], &[1, 3], &[], false),
        cs(&[1, 2], &[], &[1, 2], &[3], false),
        cs(&[1, 2], &[], &[1, 2], &[2], false),
        cs(&[1, 2], &[], &[], &[], true),
        cs(&(1..300).collect::<Vec<_>>(), &[], &[], &[], false),
    ];
    for c in &bad {
        assert_eq!(check_conf_state(c), Err(Invalid::BadConfState), "{c:?}");
    }
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// Node 2 of a three-voter group: log 1..=5 at term 1, commit 3, at term 1, a follower.
fn follower() -> RawNode<MemStorage> {
    let storage = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    let entries: Vec<Entry> = (1..=5).map(|i| Entry { index: i, term: 1, ..Default::default() }).collect();
    storage.wl().append(&entries).unwrap();
    storage.wl().set_hardstate(HardState { term: 1, vote: 0, commit: 3 });
    let config = Config { id: ME, election_tick: 10, heartbeat_tick: 1, ..Default::default() };
    RawNode::new(&config, storage, &logger()).unwrap()
}

/// Inputs raft-rs 0.7 panics on, each refused by validation before it could be stepped.
#[test]
fn inputs_that_panic_raft_rs_are_refused() {
    let groups = Groups::three(2, 5);
    let ctx = ValidateContext { node_id: ME, from_node: LEADER, partition: 1, groups: &groups };
    let mut unknown = heartbeat(LEADER, ME, 2, 1);
    unknown.msg_type = 42;
    let mut zero_log_term = append(LEADER, ME, 2, 10, 0, 1, 1);
    zero_log_term.entries[0].term = 2;
    let mut gap = append(LEADER, ME, 2, 3, 1, 1, 1);
    gap.entries[0].index = 10;
    let mut bad_cs = snapshot_msg(LEADER, ME, 2, 9, vec![2]);
    bad_cs.snapshot.as_mut().unwrap().metadata.as_mut().unwrap().conf_state.as_mut().unwrap().learners =
        vec![2];
    let cases = [
        ("unknown message type", unknown, Invalid::UnknownType),
        ("heartbeat commit past the log", heartbeat(LEADER, ME, 2, 1000), Invalid::PastLog),
        ("append with log_term 0 past the log", zero_log_term, Invalid::BadLogTerm),
        ("entries not at index + 1", gap, Invalid::EntryIndex),
        ("snapshot conf state raft cannot restore", bad_cs, Invalid::BadConfState),
    ];
    for (what, m, why) in cases {
        assert_eq!(validate(&m, &ctx), Err(why), "{what}");
        let mut node = follower();
        let stepped = catch_unwind(AssertUnwindSafe(|| {
            let _ = node.step(m);
        }));
        assert!(stepped.is_err(), "raft-rs no longer panics on: {what}");
    }
    // A term at u64::MAX is taken, and the next election overflows `term + 1`.
    let m = heartbeat(LEADER, ME, u64::MAX, 0);
    assert_eq!(validate(&m, &ctx), Err(Invalid::BadTerm));
    let mut node = follower();
    let stepped = catch_unwind(AssertUnwindSafe(|| {
        node.step(m).unwrap();
        node.campaign().unwrap();
    }));
    assert!(stepped.is_err(), "raft-rs no longer overflows the term");
}

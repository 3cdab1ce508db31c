//! The metadata section of a partition's UAL as `UalRaftStore` writes it (the UAL carries it in
//! every superblock write: docs/STORAGE.md section 2.1): Raft's hard state, the current membership
//! and the membership of the snapshot the log follows.
//!
//! Layout: [version u32][reserved u32][term u64][vote u64][commit u64][membership now][membership
//! of the snapshot], a membership being [auto_leave u8][reserved u8][voters u16][learners u16]
//! [voters_outgoing u16][learners_next u16][reserved u16] + the ids (u64), all little-endian.
//!
//! Invariant: `decode_meta(encode_meta(x)) == x`; an empty section is a fresh log (all defaults).

use super::store::HardStateRecord;
use super::ual_store::RAFT_META_VERSION;
use ::raft::eraftpb::ConfState;

/// Bytes before the first membership: version, reserved, term, vote, commit.
pub(super) const META_HEADER_LEN: usize = 32;
const CONF_HEADER_LEN: usize = 12;

fn encode_conf(c: &ConfState, out: &mut Vec<u8>) {
    out.push(u8::from(c.auto_leave));
    out.push(0);
    for list in [&c.voters, &c.learners, &c.voters_outgoing, &c.learners_next] {
        out.extend_from_slice(&(list.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(&[0, 0]);
    for list in [&c.voters, &c.learners, &c.voters_outgoing, &c.learners_next] {
        for id in list.iter() {
            out.extend_from_slice(&id.to_le_bytes());
        }
    }
}

pub(super) fn conf_len(c: &ConfState) -> usize {
    CONF_HEADER_LEN
        + 8 * (c.voters.len() + c.learners.len() + c.voters_outgoing.len() + c.learners_next.len())
}

/// Encodes the metadata section into `out` (cleared first).
pub(super) fn encode_meta(
    hs: &HardStateRecord,
    conf: &ConfState,
    snapshot_conf: &ConfState,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(&RAFT_META_VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    for x in [hs.term, hs.vote, hs.commit] {
        out.extend_from_slice(&x.to_le_bytes());
    }
    encode_conf(conf, out);
    encode_conf(snapshot_conf, out);
}

fn decode_conf(b: &[u8]) -> Result<(ConfState, usize), &'static str> {
    if b.len() < CONF_HEADER_LEN {
        return Err("membership header cut short");
    }
    let count = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]) as usize;
    let counts = [count(2), count(4), count(6), count(8)];
    let len = CONF_HEADER_LEN + 8 * counts.iter().sum::<usize>();
    if b.len() < len {
        return Err("membership ids cut short");
    }
    let mut at = CONF_HEADER_LEN;
    let mut lists: [Vec<u64>; 4] = Default::default();
    for (list, n) in lists.iter_mut().zip(counts) {
        for _ in 0..n {
            list.push(u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes")));
            at += 8;
        }
    }
    let [voters, learners, voters_outgoing, learners_next] = lists;
    let conf = ConfState { voters, learners, voters_outgoing, learners_next, auto_leave: b[0] != 0 };
    Ok((conf, len))
}

/// Decodes a metadata section (empty: a fresh log, all defaults).
pub(super) fn decode_meta(b: &[u8]) -> Result<(HardStateRecord, ConfState, ConfState), &'static str> {
    if b.is_empty() {
        return Ok(Default::default());
    }
    if b.len() < META_HEADER_LEN {
        return Err("raft metadata cut short");
    }
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let version = u32::from_le_bytes(b[0..4].try_into().expect("4 bytes"));
    if version != RAFT_META_VERSION {
        return Err("unknown raft metadata version");
    }
    let hs = HardStateRecord { term: u64_at(8), vote: u64_at(16), commit: u64_at(24) };
    let (conf, n) = decode_conf(&b[META_HEADER_LEN..])?;
    let (snapshot_conf, _) = decode_conf(&b[META_HEADER_LEN + n..])?;
    Ok((hs, conf, snapshot_conf))
}

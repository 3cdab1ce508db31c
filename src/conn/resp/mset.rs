//! MSET over RESP: one MSET request (opcode 0x1b) per partition of the command's keys, each
//! stored whole or not at all, split further only where a partition's pairs exceed one log
//! command (docs/CLIENTS.md).

use super::{status_text, Cx, Kind, Ran, RespSettings, State};
use crate::kv::pairs::{pair_len, PairsWriter, PAIRS_HEAD_LEN};
use crate::protocol::resp::{ArgList, ReplyWriter};
use crate::wire::{opcode, Status};

impl State {
    /// MSET: one MSET request per partition of its keys (each stored whole or not at all, the
    /// last of a repeated key winning), split further only where a partition's pairs exceed one
    /// log command. A pair over the key or value limit refuses the whole command first. The
    /// requests are a deterministic function of the arguments, so a command resumed after BUSY
    /// rebuilds the same ones and goes on from the request it stopped at.
    pub(super) fn mset(&mut self, pairs: ArgList<'_>, settings: &RespSettings, cx: &mut Cx<'_>) -> Ran {
        let n = pairs.len() / 2;
        let oversized = (0..n).find_map(|i| {
            let (key, value) = (pairs.get(2 * i), pairs.get(2 * i + 1));
            (key.len() > settings.key_bytes_max)
                .then_some(Status::KeyTooLarge)
                .or((value.len() > settings.value_bytes_max).then_some(Status::ValueTooLarge))
        });
        if let Some(status) = oversized {
            if !self.pending.is_empty() {
                return Ran::Blocked;
            }
            ReplyWriter::new(cx.output, self.version).error(status_text(status));
            return Ran::Done;
        }
        let mut order = std::mem::take(&mut self.mset_order);
        let mut ends = std::mem::take(&mut self.mset_ends);
        order.clear();
        order.extend((0..n).map(|i| (settings.placement.partition_of(pairs.get(2 * i)), i as u32)));
        order.sort_unstable();
        mset_requests(&order, &pairs, settings.mset_body_bytes_max, &mut ends);
        let ran = self.parts(Kind::Ok, ends.len(), cx, |body, r| {
            let start = if r == 0 { 0 } else { ends[r - 1] as usize };
            let mut w = PairsWriter::begin(body);
            for &(_, i) in &order[start..ends[r] as usize] {
                let i = i as usize;
                w.push(body, pairs.get(2 * i), pairs.get(2 * i + 1));
            }
            opcode::MSET
        });
        self.mset_order = order;
        self.mset_ends = ends;
        ran
    }
}

/// Splits MSET's sorted `order` into requests: each a run of one partition's pairs whose body
/// stays within `body_max` (a pair alone always makes a request: the limits checked it fits);
/// `ends` gets where each request ends.
fn mset_requests(order: &[(u16, u32)], pairs: &ArgList<'_>, body_max: usize, ends: &mut Vec<u32>) {
    ends.clear();
    let mut start = 0usize;
    let mut len = PAIRS_HEAD_LEN;
    for (at, &(partition, i)) in order.iter().enumerate() {
        let i = i as usize;
        let add = pair_len(pairs.get(2 * i), pairs.get(2 * i + 1));
        let same = at == start || order[at - 1].0 == partition;
        if at > start && (!same || len + add > body_max) {
            ends.push(at as u32);
            start = at;
            len = PAIRS_HEAD_LEN;
        }
        len += add;
    }
    if !order.is_empty() {
        ends.push(order.len() as u32);
    }
}

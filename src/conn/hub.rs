//! Changes forwarded between shards for prefix watchers (`conn::watch`).
//!
//! A key's changes are applied on the shard that owns its partition, and a key watch is served
//! there (the acceptor routes it). A prefix spans every partition, so a prefix watcher on shard A
//! also needs the changes applied on every other shard: each shard that applies changes while some
//! other shard has prefix watchers copies them, as the frames its own watchers get, into that
//! shard's queue here, and each shard with prefix watchers takes its queue every poll and pushes
//! the frames to them.
//!
//! Why a queue of bytes behind a mutex and not the inbox fabric: the inbox carries fixed-size
//! envelopes of requests and answers between shards that exchange them on every write; changes are
//! variable-sized frames that flow only while someone watches a prefix, one lock per destination
//! per poll (a shard appends all the changes of its poll at once, the owner swaps the whole buffer
//! out), so the cost is paid only then. Zero cost otherwise: a shard reads one atomic per poll.
//! The counts are sequentially consistent: a watcher is counted before its 101 is sent, so a
//! write a client makes after seeing the 101 is applied by a shard that already records changes.
//!
//! Bounds: each shard's queue holds at most `HUB_BYTES_MAX` bytes between two takes; past it the
//! change is dropped and the queue marked lost, and the owner closes its prefix watchers with
//! 1011 (never a silent gap). Order: a key's changes come from one shard, appended in apply order
//! and taken in order, so per key they stay in commit order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Bytes one shard's queue holds between two takes.
pub const HUB_BYTES_MAX: usize = 4 << 20;

#[derive(Debug, Default)]
struct Queue {
    /// Records: `u16 key_len, key, u32 frame_len, frame`.
    bytes: Vec<u8>,
    lost: bool,
}

/// The queues of a node's shards and their prefix watcher counts.
#[derive(Debug)]
pub struct WatchHub {
    queues: Vec<Mutex<Queue>>,
    prefix_watchers: Vec<AtomicUsize>,
    /// The sum of `prefix_watchers` (the one load a shard does per poll).
    total: AtomicUsize,
}

impl WatchHub {
    /// A hub for `shards` shards.
    pub fn new(shards: usize) -> Self {
        Self {
            queues: (0..shards).map(|_| Mutex::default()).collect(),
            prefix_watchers: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
            total: AtomicUsize::new(0),
        }
    }

    /// Shard `shard` gained (`true`) or lost a prefix watcher.
    pub fn count(&self, shard: usize, gained: bool) {
        let (per, total) = (&self.prefix_watchers[shard], &self.total);
        if gained {
            per.fetch_add(1, Ordering::SeqCst);
            total.fetch_add(1, Ordering::SeqCst);
        } else {
            per.fetch_sub(1, Ordering::SeqCst);
            total.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Whether a shard other than `me` has prefix watchers.
    pub fn others_watch(&self, me: usize) -> bool {
        let total = self.total.load(Ordering::SeqCst);
        total > 0 && total > self.prefix_watchers[me].load(Ordering::SeqCst)
    }

    /// Appends `outbox` (records) to the queue of every shard but `me` that has prefix watchers.
    pub fn send(&self, me: usize, outbox: &[u8]) {
        for (shard, queue) in self.queues.iter().enumerate() {
            if shard == me || self.prefix_watchers[shard].load(Ordering::SeqCst) == 0 {
                continue;
            }
            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
            if q.bytes.len() + outbox.len() > HUB_BYTES_MAX {
                q.lost = true;
            } else {
                q.bytes.extend_from_slice(outbox);
            }
        }
    }

    /// Swaps `me`'s queue with `into` (which must be empty); returns whether changes were lost.
    pub fn take(&self, me: usize, into: &mut Vec<u8>) -> bool {
        let mut q = self.queues[me].lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut q.bytes, into);
        std::mem::take(&mut q.lost)
    }
}

/// Appends one record to an outbox.
pub fn push_record(outbox: &mut Vec<u8>, key: &[u8], frame: &[u8]) {
    outbox.extend_from_slice(&(key.len() as u16).to_le_bytes());
    outbox.extend_from_slice(key);
    outbox.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    outbox.extend_from_slice(frame);
}

/// The records of a queue taken: `(key, frame)`, in order.
pub fn records(bytes: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let key_len = usize::from(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
        let key = bytes.get(at + 2..at + 2 + key_len)?;
        let f = at + 2 + key_len;
        let frame_len = u32::from_le_bytes(bytes.get(f..f + 4)?.try_into().ok()?) as usize;
        let frame = bytes.get(f + 4..f + 4 + frame_len)?;
        at = f + 4 + frame_len;
        Some((key, frame))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_go_only_to_other_shards_with_prefix_watchers_and_overflow_is_lost() {
        let hub = WatchHub::new(3);
        assert!(!hub.others_watch(0));
        hub.count(1, true);
        assert!(hub.others_watch(0) && !hub.others_watch(1));
        let mut outbox = Vec::new();
        push_record(&mut outbox, b"k1", b"frame1");
        push_record(&mut outbox, b"", b"f2");
        hub.send(0, &outbox);
        let mut got = Vec::new();
        assert!(!hub.take(2, &mut got));
        assert!(got.is_empty(), "shard 2 watches nothing");
        assert!(!hub.take(1, &mut got));
        assert_eq!(records(&got).collect::<Vec<_>>(), [(&b"k1"[..], &b"frame1"[..]), (&b""[..], &b"f2"[..])]);
        let big = vec![0u8; HUB_BYTES_MAX + 1];
        hub.send(0, &big);
        got.clear();
        assert!(hub.take(1, &mut got), "lost");
        hub.count(1, false);
        assert!(!hub.others_watch(0));
    }
}

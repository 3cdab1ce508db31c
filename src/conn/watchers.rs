//! A shard's WebSocket watchers (`watch`): the committed changes the shard's feed hands over,
//! pushed as frames to the watchers whose key or prefix matches, and the changes kept for (and
//! taken from) other shards' prefix watchers through the `WatchHub`.
//!
//! Invariants: a watcher whose unsent frames would pass `output_bytes_max` is closed (1008)
//! rather than queued without bound; a watcher is never given a gap: when the feed or the hub
//! lost changes every watcher is closed (1011).

use super::{hub, watch, Connections, Session};
use crate::partition::feed::Change;
use crate::protocol::websocket;

impl Connections {
    /// Whether changes are wanted: this shard has watchers, or another has prefix watchers (the
    /// shard's change feed is on only then).
    pub fn watching(&self) -> bool {
        !self.watchers.is_empty() || self.hub.others_watch(self.shard)
    }

    /// Pushes a committed change to the watchers that match it, and keeps it for other shards'
    /// prefix watchers (called from inside the shard's service step, like `deliver`; `service`
    /// sends; `changes_done` ends the step's changes).
    pub fn publish(&mut self, change: &Change<'_>) {
        watch::change_frame(&mut self.frame, &mut self.json, change);
        let frame = std::mem::take(&mut self.frame);
        self.push_frame(change.key, &frame, false);
        if self.hub.others_watch(self.shard) {
            hub::push_record(&mut self.outbox, change.key, &frame);
        }
        self.frame = frame;
    }

    /// After the step's changes: sends those kept for other shards, and pushes those other shards
    /// sent to this shard's prefix watchers.
    pub fn changes_done(&mut self) {
        if !self.outbox.is_empty() {
            self.hub.send(self.shard, &self.outbox);
            self.outbox.clear();
        }
        if self.prefix_watchers == 0 {
            return;
        }
        let mut inbox = std::mem::take(&mut self.inbox);
        inbox.clear();
        let lost = self.hub.take(self.shard, &mut inbox);
        for (key, frame) in hub::records(&inbox) {
            self.push_frame(key, frame, true);
        }
        self.inbox = inbox;
        if lost {
            self.watchers_lost_changes();
        }
    }

    /// Copies `frame` (the change to `key`) to the matching watchers (only prefix watchers:
    /// `prefix_only`). A watcher whose unsent output would pass `output_bytes_max` is sent a close
    /// (1008) instead and closed.
    fn push_frame(&mut self, key: &[u8], frame: &[u8], prefix_only: bool) {
        for i in 0..self.watchers.len() {
            let id = self.watchers[i];
            let Some(conn) = self.conns.get_mut(id.slot as usize).and_then(Option::as_mut) else { continue };
            let Session::Http(s) = &conn.session else { continue };
            let wanted = s.watch().is_some_and(|w| (w.prefix || !prefix_only) && w.matches(key));
            if conn.closing || !wanted {
                continue;
            }
            if conn.output.len() - conn.sent + frame.len() > self.limits.output_bytes_max {
                websocket::write_close(&mut conn.output, websocket::close::POLICY);
                conn.closing = true;
                self.counters.watchers_closed_slow += 1;
            } else {
                conn.output.extend_from_slice(frame);
                self.counters.watch_frames += 1;
            }
            self.mark(id, |_| {});
        }
    }

    /// The shard's change feed (or the hub) lost changes: every watcher is closed (1011) rather
    /// than given a gap.
    pub fn watchers_lost_changes(&mut self) {
        for i in 0..self.watchers.len() {
            let id = self.watchers[i];
            let Some(conn) = self.get_mut(id) else { continue };
            if !conn.closing {
                websocket::write_close(&mut conn.output, 1011);
                conn.closing = true;
                self.counters.watchers_closed_lost += 1;
            }
            self.mark(id, |_| {});
        }
    }
}

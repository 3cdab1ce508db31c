//! WebSocket watchers (`GET /watch?key=K` or `?prefix=P`, upgraded by `conn::http`): each
//! committed change to a matching key is pushed as a text frame, never polled.
//!
//! Where changes come from: each partition records the KV changes its applied entries made
//! (`partition::feed`) while its shard has watchers, and the shard hands them, after the service
//! step that applied them, to its `Connections::publish`, which writes one frame per change and
//! copies it into every matching watcher's output. No watcher on a shard: the feed is off and
//! nothing is recorded or copied (zero cost).
//!
//! Which shard: a key's changes are applied on the shard that owns its partition, so a key watch
//! is served there: the acceptor hands a connection whose first request is `/watch?key=K` to K's
//! owner, and a watch is only accepted as a connection's first request. A prefix spans every
//! partition: a prefix watcher may be on any shard, and the changes applied on the others reach it
//! through the node's `hub` (each shard's feed is on while any shard has prefix watchers).
//!
//! Frames (JSON text): `{"key":"k","version":n,"value":"v"}`, or `"deleted":true` instead of the
//! value; a key or value that is not UTF-8 comes as `key_base64` / `value_base64`. Per key they
//! come in commit order (a key lives in one partition, whose feed is in apply order).
//!
//! Bounds: a watcher's queue is its connection's unsent output, bounded by `tcp.output_bytes_max`:
//! a watcher that does not read fast enough to stay under it is sent a close frame with status 1008
//! and closed (counted), never given unbounded memory or a silent gap. A feed or hub queue that lost
//! changes (past its bound) closes every watcher of the shard with 1011.
//!
//! From the client: ping is answered with pong, close with close (then the connection closes),
//! anything else is read and dropped; a frame that breaks the protocol closes with its code.

use super::{Cx, Step};
use crate::partition::feed::Change;
use crate::protocol::websocket::{self, close, op};
use base64::Engine as _;

/// What a watcher watches.
#[derive(Debug)]
pub struct Watch {
    /// The key, or the prefix.
    pub pattern: Vec<u8>,
    /// `pattern` is a prefix.
    pub prefix: bool,
}

impl Watch {
    /// Whether a change to `key` is pushed.
    pub fn matches(&self, key: &[u8]) -> bool {
        if self.prefix {
            key.starts_with(&self.pattern)
        } else {
            key == self.pattern.as_slice()
        }
    }
}

/// Runs the client's frames at the front of `input`.
pub fn run_frames(input: &[u8], cx: &mut Cx<'_>) -> Step {
    let mut used = 0;
    loop {
        let frame = match websocket::parse_frame(&input[used..]) {
            Ok(Some(f)) => f,
            Ok(None) => return Step::Consumed(used),
            Err(e) => {
                websocket::write_close(cx.output, e.code);
                return Step::Close { consumed: used };
            }
        };
        let bytes = &input[used..];
        used += frame.consumed;
        match frame.opcode {
            op::PING => {
                let mut payload = [0u8; 125];
                let n = frame.unmask_into(bytes, &mut payload);
                websocket::write_frame(cx.output, op::PONG, &payload[..n]);
            }
            op::CLOSE => {
                let mut payload = [0u8; 125];
                let n = frame.unmask_into(bytes, &mut payload);
                let code = if n >= 2 { u16::from_be_bytes([payload[0], payload[1]]) } else { close::NORMAL };
                websocket::write_close(cx.output, code);
                return Step::Close { consumed: used };
            }
            _ => {} // pong, and data a watcher has no use for
        }
    }
}

/// Writes the text frame of `change` into `frame` (through `json`, the payload's scratch).
pub fn change_frame(frame: &mut Vec<u8>, json: &mut Vec<u8>, change: &Change<'_>) {
    json.clear();
    json.push(b'{');
    string_field(json, "key", change.key);
    let _ = std::io::Write::write_fmt(json, format_args!(",\"version\":{},", change.version));
    match change.value {
        Some(value) => string_field(json, "value", value),
        None => json.extend_from_slice(b"\"deleted\":true"),
    }
    json.push(b'}');
    frame.clear();
    websocket::write_frame(frame, op::TEXT, json);
}

/// `"name":"<utf-8>"`, or `"name_base64":"<base64>"` for bytes that are not UTF-8.
fn string_field(json: &mut Vec<u8>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            let _ = std::io::Write::write_fmt(json, format_args!("\"{name}\":"));
            let _ = serde_json::to_writer(&mut *json, text);
        }
        Err(_) => {
            let _ = std::io::Write::write_fmt(json, format_args!("\"{name}_base64\":\""));
            let start = json.len();
            json.resize(start + bytes.len().div_ceil(3) * 4, 0);
            let n = base64::engine::general_purpose::STANDARD
                .encode_slice(bytes, &mut json[start..])
                .expect("sized above");
            json.truncate(start + n);
            json.push(b'"');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_json_text_frames() {
        let (mut frame, mut json) = (Vec::new(), Vec::new());
        change_frame(&mut frame, &mut json, &Change { key: b"a\"b", version: 9, value: Some(b"v") });
        assert_eq!(&frame[2..], br#"{"key":"a\"b","version":9,"value":"v"}"#);
        assert_eq!(frame[0], 0x81);
        change_frame(&mut frame, &mut json, &Change { key: b"k", version: 10, value: None });
        assert_eq!(&frame[2..], br#"{"key":"k","version":10,"deleted":true}"#);
        change_frame(&mut frame, &mut json, &Change { key: b"k", version: 11, value: Some(&[0xff, 0]) });
        assert_eq!(&frame[2..], br#"{"key":"k","version":11,"value_base64":"/wA="}"#);
        let w = Watch { pattern: b"user:".to_vec(), prefix: true };
        assert!(w.matches(b"user:1") && !w.matches(b"use"));
        let w = Watch { pattern: b"k".to_vec(), prefix: false };
        assert!(w.matches(b"k") && !w.matches(b"k2"));
    }
}

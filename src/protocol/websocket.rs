//! WebSocket (RFC 6455) for the watch endpoint, sans-IO: the handshake's accept key, the frames a
//! client sends (parsed where they lie in the connection's input) and the frames the server sends
//! (written into its output).
//!
//! Hand-written rather than `tungstenite`'s: tungstenite's `WebSocket` owns a `Read + Write`
//! stream and allocates a buffer per message, while a Vigil session works over bytes its shard
//! already read into the connection's input and must write each change once into a frame that
//! many watchers' outputs copy. The subset served is small: the server only pushes text frames and
//! answers control frames; what a client sends besides control frames is read and dropped.
//!
//! Invariants: never panics and never reads past its input; a client frame must be masked (RFC
//! 6455 5.1) and a control frame whole (FIN) and at most 125 bytes, else a protocol error; a data
//! frame longer than `FRAME_BYTES_MAX` is an error (1009) without being buffered; nothing is
//! allocated.

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID the accept key is derived with (RFC 6455 1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The largest client frame payload read (its bytes are dropped, but must be in the input).
pub const FRAME_BYTES_MAX: usize = 4096;

/// Opcodes.
pub mod op {
    /// A continuation of a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// A text message.
    pub const TEXT: u8 = 0x1;
    /// A binary message.
    pub const BINARY: u8 = 0x2;
    /// Close.
    pub const CLOSE: u8 = 0x8;
    /// Ping.
    pub const PING: u8 = 0x9;
    /// Pong.
    pub const PONG: u8 = 0xA;
}

/// Close status codes used here.
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// A protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A policy violation: a watcher too slow to keep up (its queue passed its bound).
    pub const POLICY: u16 = 1008;
    /// A message too big to process.
    pub const TOO_BIG: u16 = 1009;
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    let digest = sha.finalize();
    let mut out = [0u8; 28];
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(digest, &mut out)
        .expect("20 bytes encode to 28");
    debug_assert_eq!(n, 28);
    out
}

/// Whether a `Sec-WebSocket-Key` is well formed: 16 bytes in base64.
pub fn key_is_valid(key: &[u8]) -> bool {
    let mut out = [0u8; 18];
    key.len() == 24 && base64::engine::general_purpose::STANDARD.decode_slice(key, &mut out) == Ok(16)
}

/// A client frame at the front of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Its opcode.
    pub opcode: u8,
    /// The payload's range in the input (still masked).
    pub payload: (usize, usize),
    /// The masking key.
    pub mask: [u8; 4],
    /// Bytes it takes.
    pub consumed: usize,
}

impl Frame {
    /// Unmasks the payload (a control frame's: at most 125 bytes) into `out`; returns its length.
    pub fn unmask_into(&self, input: &[u8], out: &mut [u8; 125]) -> usize {
        let payload = &input[self.payload.0..self.payload.1];
        let n = payload.len().min(out.len());
        for (i, b) in payload[..n].iter().enumerate() {
            out[i] = b ^ self.mask[i % 4];
        }
        n
    }
}

/// A client frame that breaks the protocol: the connection is closed with `code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("websocket: {why} (close {code})")]
pub struct FrameError {
    /// The close code to answer.
    pub code: u16,
    /// What was wrong.
    pub why: &'static str,
}

const fn error(code: u16, why: &'static str) -> FrameError {
    FrameError { code, why }
}

/// Parses the client frame at the front of `input`: `Ok(None)` while it is not whole.
pub fn parse_frame(input: &[u8]) -> Result<Option<Frame>, FrameError> {
    let (Some(&b0), Some(&b1)) = (input.first(), input.get(1)) else { return Ok(None) };
    let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0F);
    if b0 & 0x70 != 0 {
        return Err(error(close::PROTOCOL_ERROR, "reserved bits set (no extension was agreed)"));
    }
    if !matches!(opcode, op::CONTINUATION | op::TEXT | op::BINARY | op::CLOSE | op::PING | op::PONG) {
        return Err(error(close::PROTOCOL_ERROR, "unknown opcode"));
    }
    if b1 & 0x80 == 0 {
        return Err(error(close::PROTOCOL_ERROR, "a client frame must be masked"));
    }
    let (len, at) = match b1 & 0x7F {
        126 => match input.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match input.get(2..10) {
            Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let control = opcode >= op::CLOSE;
    if control && (!fin || len > 125) {
        return Err(error(close::PROTOCOL_ERROR, "a control frame must be whole and at most 125 bytes"));
    }
    if len > FRAME_BYTES_MAX as u64 {
        return Err(error(close::TOO_BIG, "frame larger than the server reads"));
    }
    let Some(mask) = input.get(at..at + 4) else { return Ok(None) };
    let start = at + 4;
    let end = start + len as usize;
    if input.len() < end {
        return Ok(None);
    }
    Ok(Some(Frame { opcode, payload: (start, end), mask: mask.try_into().expect("4 bytes"), consumed: end }))
}

/// The header of a server frame (FIN, unmasked) carrying `len` payload bytes.
pub fn write_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | opcode);
    match len {
        0..=125 => out.push(len as u8),
        126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// A whole server frame.
pub fn write_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    write_header(out, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// A close frame with `code`.
pub fn write_close(out: &mut Vec<u8>, code: u16) {
    write_frame(out, op::CLOSE, &code.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            0..=125 => out.push(0x80 | payload.len() as u8),
            n => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn the_accept_key_is_rfc_6455s_example() {
        assert_eq!(&accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(key_is_valid(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!key_is_valid(b"short"));
        assert!(!key_is_valid(b"dGhlIHNhbXBsZSBub25jZQ!!"));
    }

    #[test]
    fn client_frames_parse_at_every_split_point() {
        let mut stream = client_frame(op::PING, true, b"hi");
        stream.extend(client_frame(op::TEXT, true, &[b'x'; 300]));
        let first = parse_frame(&stream).unwrap().unwrap();
        let mut buf = [0u8; 125];
        assert_eq!((first.opcode, first.unmask_into(&stream, &mut buf)), (op::PING, 2));
        assert_eq!(&buf[..2], b"hi");
        for cut in 0..first.consumed {
            assert_eq!(parse_frame(&stream[..cut]), Ok(None), "{cut}");
        }
        let rest = &stream[first.consumed..];
        for cut in 0..rest.len() {
            assert_eq!(parse_frame(&rest[..cut]), Ok(None), "{cut}");
        }
        assert_eq!(parse_frame(rest).unwrap().unwrap().consumed, rest.len());
    }

    #[test]
    fn protocol_errors_have_their_codes() {
        let unmasked = [0x81, 0x01, b'a'];
        assert_eq!(parse_frame(&unmasked).unwrap_err().code, close::PROTOCOL_ERROR);
        assert_eq!(parse_frame(&client_frame(op::PING, false, b"")).unwrap_err().code, close::PROTOCOL_ERROR);
        assert_eq!(
            parse_frame(&client_frame(op::PING, true, &[0; 126])).unwrap_err().code,
            close::PROTOCOL_ERROR
        );
        assert_eq!(parse_frame(&client_frame(0x3, true, b"")).unwrap_err().code, close::PROTOCOL_ERROR);
        assert_eq!(
            parse_frame(&client_frame(op::TEXT, true, &[0; FRAME_BYTES_MAX + 1])).unwrap_err().code,
            close::TOO_BIG
        );
        let huge = [0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(parse_frame(&huge).unwrap_err().code, close::TOO_BIG);
    }

    #[test]
    fn server_frames_have_the_three_length_forms() {
        for (len, header) in [(5usize, 2usize), (126, 4), (70_000, 10)] {
            let mut out = Vec::new();
            write_frame(&mut out, op::TEXT, &vec![b'a'; len]);
            assert_eq!((out[0], out.len()), (0x81, header + len));
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_inside_its_input(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(Some(f)) = parse_frame(&bytes) {
                prop_assert!(f.payload.0 <= f.payload.1 && f.payload.1 == f.consumed && f.consumed <= bytes.len());
            }
        }
    }
}

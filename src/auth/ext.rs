//! The optional blocks between a datagram's header and its first frame (docs/PROTOCOL.md,
//! "Authentication" and "Address validation"), in this order when both are present:
//!
//! | flag | bytes | block |
//! |---|---:|---|
//! | `FLAG_COOKIE` (0x02) | 16 | the address cookie the node gave this source (`auth::cookie`) |
//! | `FLAG_AUTH` (0x04) | 40 | u32 key id, u32 reserved (0), u64 timestamp (Unix ms), u64 nonce, 16-byte MAC |
//!
//! The MAC covers every byte of the datagram except itself (`auth::mac`). Requests only: a
//! response never carries either block.
//!
//! Invariants: decoding never panics and never reads past the buffer, whatever the bytes (the
//! `wire_datagram` and `auth_datagram` fuzz targets); a block announced by a flag and cut short is
//! an error, never a shorter datagram.

use crate::wire::HEADER_LEN;

/// Header flag: a cookie block follows the header.
pub const FLAG_COOKIE: u8 = 0x02;
/// Header flag: an authentication block follows the header (after the cookie, if any).
pub const FLAG_AUTH: u8 = 0x04;
/// Bytes of an address cookie.
pub const COOKIE_LEN: usize = 16;
/// Bytes of the MAC.
pub const MAC_LEN: usize = 16;
/// Bytes of the authentication block.
pub const AUTH_BLOCK_LEN: usize = 24 + MAC_LEN;

/// The authentication block, borrowed from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthBlock {
    /// The principal's key id.
    pub key_id: u32,
    /// When the client sent it, Unix ms (its clock).
    pub timestamp_ms: u64,
    /// Unique per (key id, client id): the client's datagram counter.
    pub nonce: u64,
    /// The MAC.
    pub mac: [u8; MAC_LEN],
    /// Where the MAC sits in the datagram.
    pub mac_offset: usize,
}

/// What follows the header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// The address cookie, if sent.
    pub cookie: Option<[u8; COOKIE_LEN]>,
    /// The authentication block, if sent.
    pub auth: Option<AuthBlock>,
    /// Where the first frame starts.
    pub frames_offset: usize,
}

/// The blocks are announced but the datagram ends inside them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the datagram ends inside its cookie or authentication block")]
pub struct Truncated;

/// Bytes the blocks announced by `flags` take.
pub fn extensions_len(flags: u8) -> usize {
    let mut n = 0;
    if flags & FLAG_COOKIE != 0 {
        n += COOKIE_LEN;
    }
    if flags & FLAG_AUTH != 0 {
        n += AUTH_BLOCK_LEN;
    }
    n
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the blocks that `flags` announce from `datagram` (whose header was read already).
pub fn decode(datagram: &[u8], flags: u8) -> Result<Extensions, Truncated> {
    let end = HEADER_LEN + extensions_len(flags);
    let blocks = datagram.get(HEADER_LEN..end).ok_or(Truncated)?;
    let mut at = 0;
    let mut ext = Extensions { frames_offset: end, ..Extensions::default() };
    if flags & FLAG_COOKIE != 0 {
        ext.cookie = Some(blocks[..COOKIE_LEN].try_into().expect("16 bytes"));
        at += COOKIE_LEN;
    }
    if flags & FLAG_AUTH != 0 {
        let b = &blocks[at..at + AUTH_BLOCK_LEN];
        ext.auth = Some(AuthBlock {
            key_id: u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")),
            timestamp_ms: u64_at(b, 8),
            nonce: u64_at(b, 16),
            mac: b[24..24 + MAC_LEN].try_into().expect("16 bytes"),
            mac_offset: HEADER_LEN + at + 24,
        });
    }
    Ok(ext)
}

/// Writes a cookie block at its place in `datagram` (whose header announces it).
pub fn put_cookie(datagram: &mut [u8], cookie: &[u8; COOKIE_LEN]) {
    datagram[HEADER_LEN..HEADER_LEN + COOKIE_LEN].copy_from_slice(cookie);
}

/// Where the authentication block starts in a datagram with these flags.
pub fn auth_block_offset(flags: u8) -> usize {
    HEADER_LEN + if flags & FLAG_COOKIE != 0 { COOKIE_LEN } else { 0 }
}

/// Writes an authentication block's fields (the MAC zeroed; `mac::seal` fills it) at its place in
/// `datagram`, whose header has `flags`; returns the MAC's offset.
pub fn put_auth(datagram: &mut [u8], flags: u8, key_id: u32, timestamp_ms: u64, nonce: u64) -> usize {
    let at = auth_block_offset(flags);
    let b = &mut datagram[at..at + AUTH_BLOCK_LEN];
    b[0..4].copy_from_slice(&key_id.to_le_bytes());
    b[4..8].copy_from_slice(&[0; 4]);
    b[8..16].copy_from_slice(&timestamp_ms.to_le_bytes());
    b[16..24].copy_from_slice(&nonce.to_le_bytes());
    b[24..].copy_from_slice(&[0; MAC_LEN]);
    at + 24
}

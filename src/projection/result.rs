//! The result of applying one command, shared by every projection and by exactly-once (which
//! remembers a client's last result and answers its retry with it), and its encoding in snapshots.
//!
//! One closed enum rather than a type per projection: the client table keeps results of every
//! projection side by side, fixed-size and `Copy`, and each protocol renders the variants it
//! speaks. A new projection adds the variants it needs.
//!
//! Invariants: `read` never panics and accepts exactly what `put` writes; refusals of the client
//! table and `Malformed` are never recorded, so they have no encoding.

use super::{FieldRead, SnapshotError};
use crate::wire::Status;

/// The outcome of applying one command; small and `Copy` so the client table can keep it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyResult {
    /// SET or CAS stored the value; the key's version is now `version` (`LogPos::version` of the
    /// write: its entry's lsn times 65536 plus its position in the batch).
    Stored {
        /// The key's new version.
        version: u64,
    },
    /// DEL ran; `existed` says whether the key was there (and is now gone).
    Deleted {
        /// Whether a key was removed.
        existed: bool,
    },
    /// INCR stored `value`; the key's version is now `version`.
    Incremented {
        /// The new value.
        value: i64,
        /// The key's new version.
        version: u64,
    },
    /// SETX ran: `stored` says whether its condition held and the value was stored; `version` is
    /// the key's version now (0: absent); `existed` whether the key existed (unexpired) before.
    /// With GET the old value comes with the answer (`partition::Done::value`).
    SetX {
        /// Whether the value was stored.
        stored: bool,
        /// The key's version after the command (0: absent).
        version: u64,
        /// Whether the key existed before.
        existed: bool,
    },
    /// EXPIRE or PERSIST ran: `changed` says whether the key's expiry changed (Redis's 1/0).
    Changed {
        /// Whether the expiry was set (EXPIRE) or dropped (PERSIST).
        changed: bool,
    },
    /// EXPIRE_DUE deleted `keys` keys past their expiry.
    Reclaimed {
        /// Keys deleted.
        keys: u32,
    },
    /// CAS found version `current_version` (0: absent), not the expected one; nothing changed.
    CasMismatch {
        /// The key's version now, 0 if it does not exist.
        current_version: u64,
    },
    /// INCR on a value that is not a decimal i64; nothing changed.
    NotInteger,
    /// INCR would overflow i64; nothing changed.
    Overflow,
    /// The key is longer than `key_bytes_max`; nothing changed.
    KeyTooLarge,
    /// The value is longer than `value_bytes_max`; nothing changed.
    ValueTooLarge,
    /// `keys_max` or `data_bytes_max` would be exceeded; nothing changed.
    Full,
    /// The writer's quota of keys or bytes in this partition (`projection::owner`) would be
    /// exceeded; nothing changed.
    QuotaExceeded,
    /// The seq is older than the client's last applied one (`last_seq`); nothing changed.
    Stale {
        /// The client's last applied seq.
        last_seq: u64,
    },
    /// The client's last applied write has this seq (`last_seq`) but another command: the pair was
    /// reused; nothing changed, nothing recorded.
    SequenceReused {
        /// The client's last applied seq.
        last_seq: u64,
    },
    /// The seq is more than `sequence_ahead_max` past the client's last applied one (`last_seq`,
    /// 0 for a client not remembered); nothing changed, nothing recorded.
    SequenceTooFar {
        /// The client's last applied seq.
        last_seq: u64,
    },
    /// CANDLE LIGHT stored the candle under `id` (`candle::ring::CandleId`).
    Lit {
        /// The candle's id.
        id: u64,
    },
    /// CANDLE ROTATE dropped `buckets` daily buckets past their seven days.
    Rotated {
        /// Buckets dropped.
        buckets: u32,
    },
    /// The command does not decode, or names no projection of this partition; nothing changed.
    Malformed,
}

impl ApplyResult {
    /// The wire status this result is answered with.
    pub fn status(&self) -> Status {
        match self {
            ApplyResult::Stored { .. }
            | ApplyResult::Deleted { .. }
            | ApplyResult::Incremented { .. }
            | ApplyResult::SetX { .. }
            | ApplyResult::Changed { .. }
            | ApplyResult::Reclaimed { .. }
            | ApplyResult::Lit { .. }
            | ApplyResult::Rotated { .. } => Status::Ok,
            ApplyResult::CasMismatch { .. } => Status::CasMismatch,
            ApplyResult::NotInteger => Status::NotInteger,
            ApplyResult::Overflow => Status::Overflow,
            ApplyResult::KeyTooLarge => Status::KeyTooLarge,
            ApplyResult::ValueTooLarge => Status::ValueTooLarge,
            ApplyResult::Full => Status::Full,
            ApplyResult::QuotaExceeded => Status::QuotaExceeded,
            ApplyResult::Stale { .. } => Status::Stale,
            ApplyResult::SequenceReused { .. } => Status::SequenceReused,
            ApplyResult::SequenceTooFar { .. } => Status::SequenceTooFar,
            ApplyResult::Malformed => Status::BadRequest,
        }
    }
}

/// Writes a recorded result: a tag byte and its fields: 1 Stored(u64 version), 2 Deleted(u8
/// existed), 3 Incremented(i64 value, u64 version), 4 CasMismatch(u64 current_version),
/// 5 NotInteger, 6 Overflow, 7 KeyTooLarge, 8 ValueTooLarge, 9 Full, 10 SetX(u8 stored | existed
/// << 1, u64 version), 11 Changed(u8 changed), 12 Reclaimed(u32 keys), 13 Lit(u64 id),
/// 14 Rotated(u32 buckets), 15 QuotaExceeded.
pub(crate) fn put(out: &mut Vec<u8>, r: &ApplyResult) {
    match *r {
        ApplyResult::Stored { version } => {
            out.push(1);
            out.extend_from_slice(&version.to_le_bytes());
        }
        ApplyResult::Deleted { existed } => out.extend_from_slice(&[2, u8::from(existed)]),
        ApplyResult::Incremented { value, version } => {
            out.push(3);
            out.extend_from_slice(&value.to_le_bytes());
            out.extend_from_slice(&version.to_le_bytes());
        }
        ApplyResult::CasMismatch { current_version } => {
            out.push(4);
            out.extend_from_slice(&current_version.to_le_bytes());
        }
        ApplyResult::NotInteger => out.push(5),
        ApplyResult::Overflow => out.push(6),
        ApplyResult::KeyTooLarge => out.push(7),
        ApplyResult::ValueTooLarge => out.push(8),
        ApplyResult::Full => out.push(9),
        ApplyResult::QuotaExceeded => out.push(15),
        ApplyResult::SetX { stored, version, existed } => {
            out.extend_from_slice(&[10, u8::from(stored) | u8::from(existed) << 1]);
            out.extend_from_slice(&version.to_le_bytes());
        }
        ApplyResult::Changed { changed } => out.extend_from_slice(&[11, u8::from(changed)]),
        ApplyResult::Reclaimed { keys } => {
            out.push(12);
            out.extend_from_slice(&keys.to_le_bytes());
        }
        ApplyResult::Lit { id } => {
            out.push(13);
            out.extend_from_slice(&id.to_le_bytes());
        }
        ApplyResult::Rotated { buckets } => {
            out.push(14);
            out.extend_from_slice(&buckets.to_le_bytes());
        }
        ApplyResult::Stale { .. }
        | ApplyResult::SequenceReused { .. }
        | ApplyResult::SequenceTooFar { .. }
        | ApplyResult::Malformed => unreachable!("refusals and malformed entries are never recorded"),
    }
}

/// Reads a result `put` wrote.
pub(crate) fn read<R: FieldRead + ?Sized>(r: &mut R) -> Result<ApplyResult, SnapshotError> {
    Ok(match r.u8()? {
        1 => ApplyResult::Stored { version: r.u64()? },
        2 => ApplyResult::Deleted {
            existed: match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(SnapshotError::Invalid("a DEL result is neither 0 nor 1")),
            },
        },
        3 => {
            let value = r.i64()?;
            ApplyResult::Incremented { value, version: r.u64()? }
        }
        4 => ApplyResult::CasMismatch { current_version: r.u64()? },
        5 => ApplyResult::NotInteger,
        6 => ApplyResult::Overflow,
        7 => ApplyResult::KeyTooLarge,
        8 => ApplyResult::ValueTooLarge,
        9 => ApplyResult::Full,
        10 => {
            let bits = r.u8()?;
            if bits > 3 {
                return Err(SnapshotError::Invalid("a SETX result has unknown bits"));
            }
            ApplyResult::SetX { stored: bits & 1 != 0, version: r.u64()?, existed: bits & 2 != 0 }
        }
        11 => ApplyResult::Changed {
            changed: match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(SnapshotError::Invalid("an EXPIRE result is neither 0 nor 1")),
            },
        },
        12 => ApplyResult::Reclaimed { keys: r.u32()? },
        13 => ApplyResult::Lit { id: r.u64()? },
        14 => ApplyResult::Rotated { buckets: r.u32()? },
        15 => ApplyResult::QuotaExceeded,
        _ => return Err(SnapshotError::Invalid("unknown result tag in the client table")),
    })
}

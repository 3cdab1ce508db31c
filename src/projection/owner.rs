//! Who a write is for, and the quota it runs under: the principal the leader admitted it from
//! (its key id, `auth::keys`; 0 for anonymous requests) and the most keys and bytes that principal
//! may hold in this partition. The leader stamps both into the log with the command (a batch
//! frame's flags, `partition::batch`), so the quota a write is checked against is the one in force
//! when it was admitted: every replica and every replay enforces the same number whatever its own
//! config says now, and a quota changed later never turns an acknowledged write into a refused one
//! on replay (or the reverse).
//!
//! A quota is set for the node as a whole (`[[auth.clients]] keys_max`, `bytes_max`); each
//! partition enforces an even share of it ([`Quota::share`]): keys spread over partitions by the
//! hash of the key, so a principal meets its quota when its fullest partition does, a little
//! before the node-wide figure.
//!
//! Stamp layout after a frame's `len` (little-endian): with [`STAMP_OWNER`] a `u32` key id, then
//! with [`STAMP_QUOTA`] (only with an owner stamp) `u64 keys_max, u64 bytes_max`. A frame with
//! neither is anonymous and unlimited, as every frame written before quotas was.
//!
//! Invariants: `read_stamp` accepts exactly what `write_stamp` writes (one encoding per owner), never panics and never reads
//! past its input; an anonymous owner without a quota writes no stamp at all.

/// The key id of anonymous requests (no principal).
pub const ANONYMOUS_OWNER: u32 = 0;
/// Frame flag: a `u32` owner key id follows the frame header.
pub const STAMP_OWNER: u8 = 0x01;
/// Frame flag: the owner's quota in this partition follows its key id.
pub const STAMP_QUOTA: u8 = 0x02;
/// Every frame flag this build knows.
pub const STAMP_FLAGS: u8 = STAMP_OWNER | STAMP_QUOTA;
/// Most bytes a stamp takes.
pub const STAMP_BYTES_MAX: usize = 4 + 16;

/// The most keys and bytes (keys plus values, as `kv.data_bytes_max` counts them) one principal
/// may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Most keys.
    pub keys_max: u64,
    /// Most bytes of keys and values.
    pub bytes_max: u64,
}

impl Quota {
    /// No limit on either.
    pub const UNLIMITED: Quota = Quota { keys_max: u64::MAX, bytes_max: u64::MAX };

    /// A quota from optional figures (unset: unlimited); `None` when both are unset.
    pub fn of(keys_max: Option<u64>, bytes_max: Option<u64>) -> Option<Quota> {
        (keys_max.is_some() || bytes_max.is_some()).then(|| Quota {
            keys_max: keys_max.unwrap_or(u64::MAX),
            bytes_max: bytes_max.unwrap_or(u64::MAX),
        })
    }

    /// What one of `partitions` partitions enforces of this node-wide quota: each figure divided
    /// evenly, rounded up (an unlimited figure stays unlimited).
    pub fn share(self, partitions: u16) -> Quota {
        let n = u64::from(partitions.max(1));
        let part = |max: u64| if max == u64::MAX { max } else { max.div_ceil(n) };
        Quota { keys_max: part(self.keys_max), bytes_max: part(self.bytes_max) }
    }

    /// Whether `usage` is within it.
    pub fn allows(&self, usage: Usage) -> bool {
        usage.keys <= self.keys_max && usage.bytes <= self.bytes_max
    }

    /// Whether adding `add` to what its owner `held` takes it past the quota: only growth is
    /// refused, so an owner over a lowered quota may still keep or shrink what it holds.
    pub fn refuses(&self, held: Usage, add: Usage) -> bool {
        let after = held.plus(add);
        (add.keys > 0 && after.keys > self.keys_max) || (add.bytes > 0 && after.bytes > self.bytes_max)
    }
}

/// What one principal holds in a partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Keys it wrote last.
    pub keys: u64,
    /// Bytes of those keys and their values.
    pub bytes: u64,
}

impl Usage {
    /// Both together (saturating: figures read from a damaged snapshot never wrap).
    pub fn plus(self, other: Usage) -> Usage {
        Usage { keys: self.keys.saturating_add(other.keys), bytes: self.bytes.saturating_add(other.bytes) }
    }
}

/// What each owner holds, by ascending key id (anonymous included; an owner holding nothing is
/// not in it). A sorted `Vec`, not a hash map: a handful of owners, a binary search per write and
/// no hashing, and an owner's first key is the only write that may allocate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageTable {
    owners: Vec<(u32, Usage)>,
}

impl UsageTable {
    fn find(&self, owner: u32) -> Result<usize, usize> {
        self.owners.binary_search_by_key(&owner, |(o, _)| *o)
    }

    /// What `owner` holds.
    pub fn get(&self, owner: u32) -> Usage {
        self.find(owner).map_or(Usage::default(), |at| self.owners[at].1)
    }

    /// Counts `add` more for `owner`.
    pub fn add(&mut self, owner: u32, add: Usage) {
        let at = self.find(owner).unwrap_or_else(|at| {
            self.owners.insert(at, (owner, Usage::default()));
            at
        });
        self.owners[at].1 = self.owners[at].1.plus(add);
    }

    /// Counts `gone` less for `owner` (who holds at least that); an owner left with no key
    /// leaves the table.
    pub fn remove(&mut self, owner: u32, gone: Usage) {
        let Ok(at) = self.find(owner) else {
            debug_assert!(false, "removing what owner {owner} does not hold");
            return;
        };
        let u = &mut self.owners[at].1;
        u.keys -= gone.keys;
        u.bytes -= gone.bytes;
        if u.keys == 0 {
            debug_assert_eq!(u.bytes, 0, "no bytes without keys");
            self.owners.remove(at);
        }
    }

    /// Every owner and what it holds, by ascending key id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, Usage)> + '_ {
        self.owners.iter().copied()
    }

    /// Owners in it.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Whether nobody holds anything.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// All together.
    pub fn total(&self) -> Usage {
        self.iter().fold(Usage::default(), |t, (_, u)| t.plus(u))
    }
}

/// Who a write is for and the quota it runs under (see the module header).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// The principal's key id (`ANONYMOUS_OWNER`: none).
    pub key_id: u32,
    /// Its quota (in a partition once stamped: `Quota::share`); `None`: unlimited.
    pub quota: Option<Quota>,
}

/// Why a stamp does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StampError {
    /// Shorter than its flags say.
    Truncated,
    /// Flags this build does not know, or a quota without an owner.
    Flags,
}

impl Owner {
    /// Anonymous and unlimited: what every write was before quotas.
    pub const ANONYMOUS: Owner = Owner { key_id: ANONYMOUS_OWNER, quota: None };

    /// The same owner with its quota's share in one of `partitions` partitions.
    pub fn in_partition_of(self, partitions: u16) -> Owner {
        Owner { key_id: self.key_id, quota: self.quota.map(|q| q.share(partitions)) }
    }

    /// The frame flags its stamp sets.
    pub fn flags(&self) -> u8 {
        if *self == Owner::ANONYMOUS {
            return 0;
        }
        STAMP_OWNER | if self.quota.is_some() { STAMP_QUOTA } else { 0 }
    }

    /// Bytes its stamp takes.
    pub fn stamp_len(&self) -> usize {
        Self::len_of(self.flags())
    }

    /// Bytes a stamp with `flags` takes.
    fn len_of(flags: u8) -> usize {
        let mut n = 0;
        if flags & STAMP_OWNER != 0 {
            n += 4;
        }
        if flags & STAMP_QUOTA != 0 {
            n += 16;
        }
        n
    }

    /// Writes its stamp into the first `stamp_len()` bytes of `out`.
    pub fn write_stamp(&self, out: &mut [u8]) {
        if self.flags() & STAMP_OWNER == 0 {
            return;
        }
        out[..4].copy_from_slice(&self.key_id.to_le_bytes());
        if let Some(q) = self.quota {
            out[4..12].copy_from_slice(&q.keys_max.to_le_bytes());
            out[12..20].copy_from_slice(&q.bytes_max.to_le_bytes());
        }
    }

    /// Reads a stamp of `flags` from the start of `bytes`: the owner and the bytes it took.
    pub fn read_stamp(flags: u8, bytes: &[u8]) -> Result<(Owner, usize), StampError> {
        if flags & !STAMP_FLAGS != 0 || (flags & STAMP_QUOTA != 0 && flags & STAMP_OWNER == 0) {
            return Err(StampError::Flags);
        }
        let len = Self::len_of(flags);
        let stamp = bytes.get(..len).ok_or(StampError::Truncated)?;
        if len == 0 {
            return Ok((Owner::ANONYMOUS, 0));
        }
        let key_id = u32::from_le_bytes(stamp[..4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(stamp[i..i + 8].try_into().expect("8 bytes"));
        let quota = (len == 20).then(|| Quota { keys_max: u64_at(4), bytes_max: u64_at(12) });
        let owner = Owner { key_id, quota };
        if owner.flags() != flags {
            // Anonymous without a quota is written with no stamp: one encoding per owner.
            return Err(StampError::Flags);
        }
        Ok((owner, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(owner: Owner) {
        let mut buf = [0xEEu8; STAMP_BYTES_MAX + 3];
        owner.write_stamp(&mut buf);
        let (read, len) = Owner::read_stamp(owner.flags(), &buf).expect("decodes");
        assert_eq!(len, owner.stamp_len());
        // An anonymous owner stamped with a quota reads back as such; without one it is ANONYMOUS.
        assert_eq!(read, owner);
    }

    #[test]
    fn stamps_round_trip_and_anonymous_takes_no_bytes() {
        assert_eq!(Owner::ANONYMOUS.flags(), 0);
        assert_eq!(Owner::ANONYMOUS.stamp_len(), 0);
        round_trip(Owner::ANONYMOUS);
        round_trip(Owner { key_id: 7, quota: None });
        round_trip(Owner { key_id: 7, quota: Some(Quota { keys_max: 3, bytes_max: 1 << 40 }) });
        round_trip(Owner { key_id: 0, quota: Some(Quota { keys_max: 10, bytes_max: 99 }) });
        assert_eq!(Owner { key_id: 1, quota: Some(Quota::UNLIMITED) }.stamp_len(), 20);
    }

    #[test]
    fn bad_stamps_are_refused_not_misread() {
        assert_eq!(Owner::read_stamp(0x04, &[0; 32]), Err(StampError::Flags));
        assert_eq!(Owner::read_stamp(STAMP_QUOTA, &[0; 32]), Err(StampError::Flags));
        assert_eq!(Owner::read_stamp(STAMP_OWNER, &[0; 3]), Err(StampError::Truncated));
        assert_eq!(Owner::read_stamp(STAMP_FLAGS, &[0; 19]), Err(StampError::Truncated));
        assert_eq!(Owner::read_stamp(STAMP_OWNER, &[0; 4]), Err(StampError::Flags), "not canonical");
    }

    #[test]
    fn a_usage_table_keeps_owners_in_order_and_drops_those_holding_nothing() {
        let mut t = UsageTable::default();
        t.add(9, Usage { keys: 1, bytes: 10 });
        t.add(2, Usage { keys: 2, bytes: 5 });
        t.add(9, Usage { keys: 1, bytes: 1 });
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            [(2, Usage { keys: 2, bytes: 5 }), (9, Usage { keys: 2, bytes: 11 })]
        );
        t.remove(2, Usage { keys: 2, bytes: 5 });
        assert_eq!((t.len(), t.get(2), t.total()), (1, Usage::default(), Usage { keys: 2, bytes: 11 }));
    }

    #[test]
    fn a_share_rounds_up_and_unlimited_stays_unlimited() {
        let q = Quota { keys_max: 10, bytes_max: u64::MAX };
        assert_eq!(q.share(4), Quota { keys_max: 3, bytes_max: u64::MAX });
        assert_eq!(q.share(0), q);
        assert_eq!(Quota::of(None, None), None);
        assert_eq!(Quota::of(Some(5), None), Some(Quota { keys_max: 5, bytes_max: u64::MAX }));
        assert!(q.allows(Usage { keys: 10, bytes: 1 }));
        assert!(!q.allows(Usage { keys: 11, bytes: 1 }));
        let held = Usage { keys: 12, bytes: 1 };
        assert!(!q.refuses(held, Usage { keys: 0, bytes: 0 }), "over a lowered quota, no growth passes");
        assert!(q.refuses(held, Usage { keys: 1, bytes: 0 }));
        assert!(!q.refuses(Usage { keys: 9, bytes: 1 }, Usage { keys: 1, bytes: 5 }));
    }
}

//! What every projection folded from the log shares: a write's place in the log (`LogPos`), which
//! is also its version.
//!
//! Invariant: versions are unique and increase along the log, so a key's version names exactly
//! one write (CAS relies on it).

/// Where a write sits in the log: its entry's lsn and its position in the entry's batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPos {
    /// The entry's lsn (Raft index).
    pub lsn: u64,
    /// The write's position in the batch (0 for a single-command entry).
    pub index: u16,
}

impl LogPos {
    /// The position of a write alone in its entry.
    pub fn single(lsn: u64) -> Self {
        Self { lsn, index: 0 }
    }

    /// The write's version: `lsn * 65536 + index`, unique and increasing along the log (a key's
    /// version names exactly one write).
    pub fn version(&self) -> u64 {
        self.lsn << 16 | u64::from(self.index)
    }
}

/// The version of a write alone in its entry at `lsn` (tests).
#[cfg(test)]
pub(crate) fn v(lsn: u64) -> u64 {
    LogPos::single(lsn).version()
}

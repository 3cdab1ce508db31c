//! The simulator's snapshot store: the partition's `SnapshotStore` seam, in memory, kept across
//! restarts like the disks (`SnapshotShelf`, one per partition), and stored asynchronously like
//! the server's writer thread: a snapshot becomes durable a few polls after it is submitted
//! (`SnapshotFaults::delay_polls_max`), so a crash in between leaves the previous one (and a
//! leftover, as a `.tmp` file would be), and a store may fail (`write_fail`: the old snapshot
//! stays, the partition must not checkpoint). Chunks are encoded as they are put, but handed back
//! (`spare`) only now and then (`SnapshotFaults::spare_chance`), like a writer thread that is
//! behind, and chunks are small (1 or 2 blocks where the server's hold 4096, one or two at a
//! time), so a snapshot of the simulator's few keys still takes several chunks, filled across
//! polls while writes are applied between them (the KV map's cursor and its pre-images at work). At restarts, media.rs may flip a bit of the stored
//! snapshot or lose it altogether.
//!
//! Invariant: the shelf's `durable` bytes change only when a store completes successfully, whole.

use super::*;
use std::io;
use vigil::partition::seams::{
    SnapshotChunk, SnapshotEncoder, SnapshotHeader, SnapshotRead, SnapshotStore, Written,
};

/// What a partition's snapshot "file" holds, across restarts.
#[derive(Debug, Default)]
pub(crate) struct SnapshotShelf {
    /// The last snapshot stored whole.
    pub(crate) durable: Option<Vec<u8>>,
    /// A store was interrupted or failed and its leftover was not removed yet.
    pub(crate) leftover: bool,
    /// A store is in progress (a crash now interrupts it).
    pub(crate) in_flight: bool,
    /// Stores that failed, since the counters were last taken.
    pub(crate) failed: u64,
}

/// The seed's snapshot-store faults.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct SnapshotFaults {
    /// Each store fails with this probability.
    pub(crate) write_fail: f64,
    /// A store completes after 1..=this many polls (1: at the next poll, as an inline file).
    pub(crate) delay_polls_max: u64,
    /// Whether written chunks come back late (each store's own rng draws how late).
    pub(crate) late_spares: bool,
}

impl SnapshotFaults {
    /// None for the clean class; else stores are delayed and sometimes fail.
    pub(crate) fn draw(rng: &mut SplitMix64, clean: bool) -> Self {
        if clean {
            return Self { write_fail: 0.0, delay_polls_max: 1, late_spares: false };
        }
        let write_fail = if rng.chance(0.3) { rng.range(10, 300) as f64 / 1000.0 } else { 0.0 };
        // No draw for late spares: the runs' other parameters stay those of the same seed.
        Self { write_fail, delay_polls_max: rng.range(1, 40), late_spares: true }
    }
}

/// One partition's snapshot store for one run of the node (see the module header).
pub(crate) struct SimSnapshots {
    partition: u16,
    shelf: Rc<RefCell<SnapshotShelf>>,
    rng: SplitMix64,
    faults: SnapshotFaults,
    /// The chance that a written chunk is handed back when the partition asks.
    spare_chance: f64,
    /// Blocks per chunk, and chunks at once.
    chunk_blocks: usize,
    chunks_max: usize,
    /// The snapshot being encoded, between `begin` and `finish`.
    encoding: Option<(u64, SnapshotEncoder<io::Cursor<Vec<u8>>>)>,
    /// Chunks written, not handed back yet.
    spares: Vec<SnapshotChunk>,
    /// The snapshot being stored and the polls left until its store completes.
    pending: Option<(u64, io::Result<Vec<u8>>, u64)>,
}

impl SimSnapshots {
    pub(crate) fn new(
        partition: u16,
        shelf: Rc<RefCell<SnapshotShelf>>,
        seed: u64,
        faults: SnapshotFaults,
    ) -> Self {
        let mut rng = SplitMix64::new(seed);
        let (spare_chance, chunk_blocks, chunks_max) = if faults.late_spares {
            (rng.range(20, 500) as f64 / 1000.0, rng.range(1, 2) as usize, rng.range(1, 2) as usize)
        } else {
            (
                1.0,
                vigil::projection::SNAPSHOT_CHUNK_BLOCKS,
                vigil::partition::seams::SNAPSHOT_CHUNKS_IN_FLIGHT,
            )
        };
        Self {
            partition,
            shelf,
            rng,
            faults,
            spare_chance,
            chunk_blocks,
            chunks_max,
            encoding: None,
            spares: Vec::new(),
            pending: None,
        }
    }
}

impl SnapshotStore for SimSnapshots {
    fn name(&self) -> String {
        format!("sim:partition-{}.snap", self.partition)
    }

    fn read(&mut self) -> io::Result<Option<Box<dyn SnapshotRead>>> {
        let durable = self.shelf.borrow().durable.clone();
        Ok(durable.map(|bytes| Box::new(io::Cursor::new(bytes)) as Box<dyn SnapshotRead>))
    }

    fn remove_leftovers(&mut self) -> io::Result<()> {
        self.shelf.borrow_mut().leftover = false;
        Ok(())
    }

    fn begin(&mut self, index: u64, header: SnapshotHeader) {
        assert!(
            self.pending.is_none() && self.encoding.is_none(),
            "a snapshot was begun while another was being stored"
        );
        let encoder =
            SnapshotEncoder::begin(io::Cursor::new(Vec::new()), header).expect("memory takes every write");
        self.shelf.borrow_mut().in_flight = true;
        self.encoding = Some((index, encoder));
    }

    fn put(&mut self, mut chunk: SnapshotChunk) {
        let (_, encoder) = self.encoding.as_mut().expect("a chunk put between begin and finish");
        encoder.put(&chunk);
        chunk.clear();
        self.spares.push(chunk);
    }

    fn finish(&mut self) {
        let (index, encoder) = self.encoding.take().expect("finish after begin");
        // A body of the wrong length is an error here, as in the file store.
        let data = encoder.finish().map(io::Cursor::into_inner);
        let polls = self.rng.range(1, self.faults.delay_polls_max.max(1));
        self.pending = Some((index, data, polls));
    }

    fn new_chunk(&self) -> SnapshotChunk {
        SnapshotChunk::with_blocks_max(self.chunk_blocks)
    }

    fn chunks_in_flight_max(&self) -> usize {
        self.chunks_max
    }

    fn spare(&mut self) -> Option<SnapshotChunk> {
        if self.spares.is_empty() || !self.rng.chance(self.spare_chance) {
            return None;
        }
        self.spares.pop()
    }

    fn poll(&mut self) -> Option<Written> {
        let (_, _, polls) = self.pending.as_mut()?;
        *polls -= 1;
        if *polls > 0 {
            return None;
        }
        let (index, data, _) = self.pending.take().expect("pending");
        let mut shelf = self.shelf.borrow_mut();
        shelf.in_flight = false;
        let data = match data {
            Ok(data) => data,
            Err(e) => {
                shelf.failed += 1;
                shelf.leftover = true;
                return Some((index, None, Err(e)));
            }
        };
        if self.rng.chance(self.faults.write_fail) {
            shelf.failed += 1;
            shelf.leftover = true;
            return Some((index, None, Err(io::Error::other("sim: the snapshot write failed"))));
        }
        // Like the server's file store: the bytes are on the shelf, not handed back.
        shelf.durable = Some(data);
        Some((index, None, Ok(())))
    }
}

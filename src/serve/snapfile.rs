//! Projection snapshots on disk: one file per partition, replaced atomically. The server's
//! implementations of the partition's `SnapshotStore` seam: `SnapshotFile` writes inline (the
//! simulator, tests, tools), `SnapshotWriter` on a thread of its own (the server).
//!
//! The UAL keeps the log, not the projections' images (docs/STORAGE.md): a snapshot's bytes live
//! in `<dir>/partition-<p>.snap`. Writing one goes to `<name>.tmp`, `fsync`s it, renames it over
//! the old file and `fsync`s the directory, so after a crash at any point the file is the old
//! snapshot or the new one, whole. At open the file is only read (`read`) until the partition's
//! recovery has decided to start; only then is a leftover `.tmp` removed (`remove_leftover_tmp`).
//! Only after `write` returned may the log be checkpointed past the
//! snapshot's index (the caller's duty): the file's index is never below the log's start.
//!
//! The bytes are the partition snapshot's format (`projection::snapshot`: magic, version, applied
//! lsn, length, crc32c): a torn or flipped file is refused by `Router::restore_from`, never
//! half-loaded. The file is read as a stream (`read` gives the open file): the partition checks its
//! checksum in one pass and loads it in a second, through small buffers.
//!
//! Writing is plain blocking file I/O, fed in chunks (`SnapshotStore::begin`, `put`, `finish`):
//! each chunk is encoded into a 1 MiB buffer in front of the `.tmp` file and handed back emptied
//! (`spare`), so neither the snapshot nor a copy of the state is ever whole in memory. The server
//! does it on a `SnapshotWriter` thread per partition, so the shard keeps serving while the file
//! is written and `fsync`ed (tens to hundreds of milliseconds); the shard checkpoints the log when
//! the writer reports the file durable. The simulator and tests write inline (`SnapshotFile`),
//! which keeps them deterministic.

use crate::partition::seams::{
    SnapshotChunk, SnapshotEncoder, SnapshotHeader, SnapshotRead, SnapshotStore, Written,
    SNAPSHOT_CHUNKS_IN_FLIGHT,
};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Bytes buffered while a snapshot is encoded into its file.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// A snapshot being written into the `.tmp` file: its index and its encoder (or the error that
/// stopped it, returned at `finish`).
#[derive(Debug)]
struct Writing {
    index: u64,
    encoder: io::Result<SnapshotEncoder<BufWriter<File>>>,
}

impl Writing {
    /// Writes `chunk` (a failed write is kept for `finish`), then empties it.
    fn put(&mut self, chunk: &mut SnapshotChunk) {
        if let Ok(encoder) = &mut self.encoder {
            encoder.put(chunk);
        }
        chunk.clear();
    }
}

/// Where one partition's snapshot lives; as a `SnapshotStore`, written inline as chunks come.
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    tmp: PathBuf,
    /// A snapshot received from the leader (`SnapshotStore::stage_received`).
    recv: PathBuf,
    /// The snapshot being written, between `begin` and `finish`.
    writing: Option<Writing>,
    /// Chunks written, handed back by `spare`.
    spares: Vec<SnapshotChunk>,
    /// The outcome of the last `finish`, until `poll` takes it.
    finished: Option<Written>,
}

impl SnapshotFile {
    /// The snapshot file of `partition` in `dir`.
    pub fn new(dir: &Path, partition: u16) -> Self {
        let path = dir.join(format!("partition-{partition}.snap"));
        let tmp = dir.join(format!("partition-{partition}.snap.tmp"));
        Self::new_at(path, tmp)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The snapshot's bytes, or `None` if there is none yet. A leftover `.tmp` (a crash while
    /// writing) is removed: it was never renamed, so it never counted.
    pub fn load(&self) -> io::Result<Option<Vec<u8>>> {
        self.remove_leftover_tmp()?;
        self.read()
    }

    /// The snapshot's bytes, or `None` if there is none yet; changes nothing on disk.
    pub fn read(&self) -> io::Result<Option<Vec<u8>>> {
        match fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The snapshot file, open for reading, or `None` if there is none yet; changes nothing on
    /// disk (recovery reads it before it has decided whether the partition may start). A later
    /// rename over the path does not change what this handle reads.
    pub fn open(&self) -> io::Result<Option<File>> {
        match File::open(&self.path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes a leftover `.tmp` (a crash while writing; it was never renamed, so it never
    /// counted) and a `.recv` the log was never reset to (recovery promotes one it was reset to
    /// first). Recovery calls it only once the start is decided.
    pub fn remove_leftover_tmp(&self) -> io::Result<()> {
        for path in [&self.tmp, &self.recv] {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Replaces the snapshot with `bytes`, durably (see the module header).
    pub fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let mut f = self.create_tmp()?;
        f.write_all(bytes)?;
        self.commit(f)
    }

    /// Starts writing a snapshot of `header` into the `.tmp` file, through the write buffer.
    fn begin_write(&self, index: u64, header: SnapshotHeader) -> Writing {
        let encoder = self
            .create_tmp()
            .and_then(|f| SnapshotEncoder::begin(BufWriter::with_capacity(WRITE_BUFFER_BYTES, f), header));
        Writing { index, encoder }
    }

    /// Seals the snapshot `w` wrote (its checksum) and commits it: what `poll` reports.
    fn finish_write(&self, w: Writing) -> Written {
        let result = w.encoder.and_then(|e| e.finish()).and_then(|buffered| {
            let f = buffered.into_inner().map_err(io::IntoInnerError::into_error)?;
            self.commit(f)
        });
        (w.index, None, result)
    }

    fn create_tmp(&self) -> io::Result<File> {
        OpenOptions::new().write(true).create(true).truncate(true).open(&self.tmp)
    }

    /// `fsync`s the written `.tmp` file `f`, renames it over the snapshot and `fsync`s the
    /// directory.
    fn commit(&self, f: File) -> io::Result<()> {
        f.sync_all()?;
        drop(f);
        fs::rename(&self.tmp, &self.path)?;
        self.sync_dir()
    }
}

impl Clone for SnapshotFile {
    /// The same file, with no write of its own.
    fn clone(&self) -> Self {
        Self::new_at(self.path.clone(), self.tmp.clone())
    }
}

impl SnapshotFile {
    fn new_at(path: PathBuf, tmp: PathBuf) -> Self {
        let mut recv = path.clone().into_os_string();
        recv.push(".recv");
        Self { path, tmp, recv: recv.into(), writing: None, spares: Vec::new(), finished: None }
    }

    /// Writes `body` to the `.recv` file durably (the file, then the directory).
    fn stage(&self, body: &[u8]) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&self.recv)?;
        f.write_all(body)?;
        f.sync_all()?;
        drop(f);
        self.sync_dir()
    }

    /// Renames the `.recv` file over the snapshot, durably.
    fn promote(&self) -> io::Result<()> {
        fs::rename(&self.recv, &self.path)?;
        self.sync_dir()
    }

    fn open_received(&self) -> io::Result<Option<Box<dyn SnapshotRead>>> {
        match File::open(&self.recv) {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn sync_dir(&self) -> io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()
    }
}

impl SnapshotStore for SnapshotFile {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn read(&mut self) -> io::Result<Option<Box<dyn SnapshotRead>>> {
        Ok(self.open()?.map(|f| Box::new(f) as Box<dyn SnapshotRead>))
    }

    fn remove_leftovers(&mut self) -> io::Result<()> {
        self.remove_leftover_tmp()
    }

    fn begin(&mut self, index: u64, header: SnapshotHeader) {
        self.writing = Some(self.begin_write(index, header));
    }

    fn put(&mut self, mut chunk: SnapshotChunk) {
        if let Some(w) = &mut self.writing {
            w.put(&mut chunk);
        }
        chunk.clear();
        self.spares.push(chunk);
    }

    fn finish(&mut self) {
        if let Some(w) = self.writing.take() {
            self.finished = Some(self.finish_write(w));
        }
    }

    fn spare(&mut self) -> Option<SnapshotChunk> {
        self.spares.pop()
    }

    fn poll(&mut self) -> Option<Written> {
        self.finished.take()
    }

    fn stage_received(&mut self, body: &[u8]) -> io::Result<()> {
        self.stage(body)
    }

    fn read_received(&mut self) -> io::Result<Option<Box<dyn SnapshotRead>>> {
        self.open_received()
    }

    fn promote_received(&mut self) -> io::Result<()> {
        self.promote()
    }
}

/// What the shard sends a `SnapshotWriter`'s thread.
enum Job {
    Begin(u64, SnapshotHeader),
    Chunk(SnapshotChunk),
    Finish,
}

/// A thread that writes one partition's snapshot files, one at a time, off the shard's thread.
#[derive(Debug)]
pub struct SnapshotWriter {
    path: PathBuf,
    /// The file, for reads and the leftover `.tmp` (the thread writes through its own handle).
    file: SnapshotFile,
    jobs: Option<mpsc::SyncSender<Job>>,
    spares: mpsc::Receiver<SnapshotChunk>,
    done: mpsc::Receiver<Written>,
    thread: Option<JoinHandle<()>>,
}

/// Jobs queued for the writer at most: a snapshot's beginning, its chunks in flight, its end.
const JOBS_MAX: usize = SNAPSHOT_CHUNKS_IN_FLIGHT + 2;

impl SnapshotWriter {
    /// Starts the writer of `file` (a thread named `vigil-snap-<partition>`).
    pub fn spawn(file: SnapshotFile, partition: u16) -> io::Result<Self> {
        let (jobs, job_rx) = mpsc::sync_channel::<Job>(JOBS_MAX);
        let (spare_tx, spares) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let path = file.path().to_path_buf();
        let own = file.clone();
        let thread = std::thread::Builder::new()
            .name(format!("vigil-snap-{partition}"))
            .spawn(move || write_jobs(&file, &job_rx, &spare_tx, &done_tx))?;
        Ok(Self { path, file: own, jobs: Some(jobs), spares, done, thread: Some(thread) })
    }

    /// The file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, job: Job) {
        let jobs = self.jobs.as_ref().expect("the writer runs until dropped");
        // The partition has at most SNAPSHOT_CHUNKS_IN_FLIGHT chunks and one snapshot at a time:
        // never full.
        if jobs.try_send(job).is_err() {
            panic!(
                "snapshot writer {}: more jobs than a snapshot's chunks in flight, or the thread died",
                self.path.display()
            );
        }
    }

    /// A snapshot whose write finished (durably or not), if any.
    pub fn finished(&self) -> Option<Written> {
        self.done.try_recv().ok()
    }
}

/// The writer thread: encodes each snapshot's chunks into its `.tmp` file as they come, hands
/// them back emptied, and reports each snapshot's outcome; ends when the writer is dropped.
fn write_jobs(
    file: &SnapshotFile,
    jobs: &mpsc::Receiver<Job>,
    spares: &mpsc::Sender<SnapshotChunk>,
    done: &mpsc::Sender<Written>,
) {
    let mut writing = None;
    for job in jobs {
        match job {
            Job::Begin(index, header) => writing = Some(file.begin_write(index, header)),
            Job::Chunk(mut chunk) => {
                if let Some(w) = &mut writing {
                    w.put(&mut chunk);
                }
                chunk.clear();
                if spares.send(chunk).is_err() {
                    return;
                }
            }
            Job::Finish => {
                let Some(w) = writing.take() else { continue };
                if done.send(file.finish_write(w)).is_err() {
                    return;
                }
            }
        }
    }
}

impl SnapshotStore for SnapshotWriter {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn read(&mut self) -> io::Result<Option<Box<dyn SnapshotRead>>> {
        SnapshotStore::read(&mut self.file)
    }

    fn remove_leftovers(&mut self) -> io::Result<()> {
        self.file.remove_leftover_tmp()
    }

    fn begin(&mut self, index: u64, header: SnapshotHeader) {
        self.send(Job::Begin(index, header));
    }

    fn put(&mut self, chunk: SnapshotChunk) {
        self.send(Job::Chunk(chunk));
    }

    fn finish(&mut self) {
        self.send(Job::Finish);
    }

    fn spare(&mut self) -> Option<SnapshotChunk> {
        self.spares.try_recv().ok()
    }

    fn poll(&mut self) -> Option<Written> {
        self.finished()
    }

    // A received snapshot is staged and promoted on the shard's thread, through the file's own
    // handle: the partition takes none while one of its own is being written (the writer thread
    // renames `.tmp` over the snapshot, never `.recv`).
    fn stage_received(&mut self, body: &[u8]) -> io::Result<()> {
        self.file.stage(body)
    }

    fn read_received(&mut self) -> io::Result<Option<Box<dyn SnapshotRead>>> {
        self.file.open_received()
    }

    fn promote_received(&mut self) -> io::Result<()> {
        self.file.promote()
    }
}

impl Drop for SnapshotWriter {
    /// Lets a write in progress finish (a half-written `.tmp` would only be deleted at the next
    /// open, but the rename is what makes a snapshot count, so nothing is lost either way).
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_and_load_reads_back_and_drops_a_leftover_tmp() {
        let dir = std::env::temp_dir().join(format!("vigil-snapfile-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let f = SnapshotFile::new(&dir, 3);
        assert_eq!(f.load().unwrap(), None);
        f.write(b"first").unwrap();
        f.write(b"second").unwrap();
        fs::write(dir.join("partition-3.snap.tmp"), b"torn").unwrap();
        assert_eq!(f.load().unwrap().as_deref(), Some(&b"second"[..]));
        assert!(!dir.join("partition-3.snap.tmp").exists());
        fs::write(dir.join("partition-3.snap.tmp"), b"torn").unwrap();
        assert_eq!(f.read().unwrap().as_deref(), Some(&b"second"[..]));
        assert!(dir.join("partition-3.snap.tmp").exists(), "read changes nothing");
        f.remove_leftover_tmp().unwrap();
        f.remove_leftover_tmp().unwrap();
        assert!(!dir.join("partition-3.snap.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_received_snapshot_is_staged_beside_the_current_one_then_promoted_or_dropped() {
        let dir = std::env::temp_dir().join(format!("vigil-snapfile-recv-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let read_all = |src: Option<Box<dyn SnapshotRead>>| {
            src.map(|mut r| {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut r, &mut bytes).unwrap();
                bytes
            })
        };
        for background in [false, true] {
            let file = SnapshotFile::new(&dir, 4);
            file.write(b"current").unwrap();
            let mut store: Box<dyn SnapshotStore> =
                if background { Box::new(SnapshotWriter::spawn(file, 4).unwrap()) } else { Box::new(file) };
            assert_eq!(read_all(store.read_received().unwrap()), None);
            store.stage_received(b"received").unwrap();
            assert_eq!(
                read_all(store.read().unwrap()).as_deref(),
                Some(&b"current"[..]),
                "staging changes nothing"
            );
            assert_eq!(read_all(store.read_received().unwrap()).as_deref(), Some(&b"received"[..]));
            // Never reset to: a leftover.
            store.remove_leftovers().unwrap();
            assert_eq!(read_all(store.read_received().unwrap()), None);
            assert_eq!(read_all(store.read().unwrap()).as_deref(), Some(&b"current"[..]));
            // Reset to: promoted.
            store.stage_received(b"received").unwrap();
            store.promote_received().unwrap();
            assert_eq!(read_all(store.read().unwrap()).as_deref(), Some(&b"received"[..]));
            assert_eq!(read_all(store.read_received().unwrap()), None);
            assert!(store.promote_received().is_err(), "nothing staged");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Streams the router's snapshot into `store` as the partition does (at most
    /// `SNAPSHOT_CHUNKS_IN_FLIGHT` chunks, reused once handed back), calling `between` after each
    /// chunk, and waits for the outcome.
    fn store_snapshot(
        store: &mut dyn SnapshotStore,
        router: &mut crate::projection::Router,
        index: u64,
        mut between: impl FnMut(&mut crate::projection::Router),
    ) -> Written {
        store.begin(index, router.begin_snapshot());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let (mut made, mut complete) = (0, false);
        while !complete {
            let chunk = match store.spare() {
                Some(c) => Some(c),
                None if made < SNAPSHOT_CHUNKS_IN_FLIGHT => {
                    made += 1;
                    Some(store.new_chunk())
                }
                None => None,
            };
            let Some(mut chunk) = chunk else {
                assert!(std::time::Instant::now() < deadline, "the writer never handed a chunk back");
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            };
            complete = router.snapshot_chunk(&mut chunk);
            store.put(chunk);
            between(router);
        }
        store.finish();
        loop {
            if let Some(done) = store.poll() {
                // As the partition does: no chunk outlives its snapshot.
                while store.spare().is_some() {}
                return done;
            }
            assert!(std::time::Instant::now() < deadline, "the writer never finished");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// The writer thread writes each snapshot the shard streams to it, with the bytes of a snapshot
    /// encoded at the capture, while the router goes on applying writes between the chunks (more
    /// keys than a few chunks hold, so the cursor and the pre-images are used).
    #[test]
    fn the_writer_thread_writes_and_reports_each_snapshot() {
        use crate::kv::{Command, Op};
        let dir = std::env::temp_dir().join(format!("vigil-snapwriter-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut w = SnapshotWriter::spawn(SnapshotFile::new(&dir, 1), 1).unwrap();
        let limits = crate::kv::KvLimits { keys_max: 1 << 20, ..crate::kv::KvLimits::small() };
        let mut router = crate::projection::Router::new(limits, Vec::new());
        let keys = 3 * crate::projection::SNAPSHOT_CHUNK_BLOCKS as u64 + 17;
        let mut lsn = 0;
        for k in 0..keys {
            lsn += 1;
            let key = format!("key{k}");
            let op = Op::Set { key: key.as_bytes(), value: b"v" };
            router.apply_kv(lsn, &Command { client_id: 0, seq: 0, op });
        }
        let mut expected = Vec::new();
        for round in 0..2u64 {
            expected.clear();
            router.snapshot(&mut expected);
            let index = router.applied_lsn();
            let (got, data, result) = store_snapshot(&mut w, &mut router, index, |r| {
                // Overwrite, delete (moving the last slot) and insert while the chunks are written.
                for i in 0..50u64 {
                    lsn += 1;
                    let key = format!("key{}", (lsn * 7919 + i) % keys);
                    let op = match i % 3 {
                        0 => Op::Set { key: key.as_bytes(), value: b"changed" },
                        1 => Op::Del { key: key.as_bytes() },
                        _ => Op::Set { key: b"fresh", value: b"x" },
                    };
                    r.apply_kv(lsn, &Command { client_id: 0, seq: 0, op });
                }
            });
            assert_eq!((got, data, result.is_ok()), (index, None, true), "round {round}: streamed, not kept");
            assert!(fs::read(dir.join("partition-1.snap")).unwrap() == expected, "round {round}");
        }
        drop(w);
        assert!(fs::read(dir.join("partition-1.snap")).unwrap() == expected);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The inline store writes the same bytes, and the file it reads back restores.
    #[test]
    fn the_inline_store_writes_the_same_bytes_and_reads_back_as_a_stream() {
        use crate::kv::{Command, Op};
        let dir = std::env::temp_dir().join(format!("vigil-snapinline-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut f = SnapshotFile::new(&dir, 2);
        assert!(SnapshotStore::read(&mut f).unwrap().is_none());
        let limits = crate::kv::KvLimits::small();
        let mut router = crate::projection::Router::new(limits, Vec::new());
        for lsn in 1..30u64 {
            let key = format!("k{}", lsn % 11);
            let op = if lsn % 5 == 0 {
                Op::Del { key: key.as_bytes() }
            } else {
                Op::Set { key: key.as_bytes(), value: b"v" }
            };
            router.apply_kv(lsn, &Command { client_id: lsn % 3, seq: lsn, op });
        }
        let mut expected = Vec::new();
        router.snapshot(&mut expected);
        let (_, _, result) = store_snapshot(&mut f, &mut router, 29, |_| {});
        result.unwrap();
        assert_eq!(f.read().unwrap().unwrap(), expected);
        let mut src = SnapshotStore::read(&mut f).unwrap().unwrap();
        let back = crate::projection::Router::restore_from(&mut *src, limits, Vec::new()).unwrap();
        let mut again = Vec::new();
        back.snapshot(&mut again);
        assert_eq!(again, expected);
        fs::remove_dir_all(&dir).unwrap();
    }
}

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
//! The bytes are the KV projection's own snapshot format (magic, version, applied lsn, length,
//! crc32c): a torn or flipped file is refused by `KvProjection::restore`, never half-loaded.
//!
//! Writing is plain blocking file I/O. The server does it on a `SnapshotWriter` thread per
//! partition, so the shard keeps serving while the file is written and `fsync`ed (tens to hundreds
//! of milliseconds); the shard checkpoints the log when the writer reports the file durable. The
//! simulator and tests write inline (`SnapshotFile::write`), which keeps them deterministic.

use crate::partition::seams::{SnapshotCapture, SnapshotStore, Written};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Bytes buffered while a snapshot is encoded into its file.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// Where one partition's snapshot lives; as a `SnapshotStore`, written inline at `submit`.
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    tmp: PathBuf,
    /// The outcome of the last `submit`, until `poll` takes it.
    finished: Option<Written>,
}

impl SnapshotFile {
    /// The snapshot file of `partition` in `dir`.
    pub fn new(dir: &Path, partition: u16) -> Self {
        let path = dir.join(format!("partition-{partition}.snap"));
        let tmp = dir.join(format!("partition-{partition}.snap.tmp"));
        Self { path, tmp, finished: None }
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

    /// The snapshot's bytes, or `None` if there is none yet; changes nothing on disk (recovery
    /// reads it before it has decided whether the partition may start).
    pub fn read(&self) -> io::Result<Option<Vec<u8>>> {
        match fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes a leftover `.tmp` (a crash while writing; it was never renamed, so it never
    /// counted). Recovery calls it only once the start is decided.
    pub fn remove_leftover_tmp(&self) -> io::Result<()> {
        match fs::remove_file(&self.tmp) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Replaces the snapshot with `bytes`, durably (see the module header).
    pub fn write(&self, bytes: &[u8]) -> io::Result<()> {
        self.write_with(|f| f.write_all(bytes))
    }

    /// Writes the snapshot `capture` holds, encoding it as it goes (a megabyte buffer: the
    /// snapshot is never whole in memory), atomically as `write` does.
    pub fn write_capture(&self, capture: SnapshotCapture) -> io::Result<()> {
        self.write_with(|f| {
            let mut w = BufWriter::with_capacity(WRITE_BUFFER_BYTES, f);
            capture.write_to(&mut w)?;
            w.flush()
        })
    }

    /// Writes the `.tmp` file with `fill`, `fsync`s it, renames it over the snapshot and
    /// `fsync`s the directory.
    fn write_with(&self, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&self.tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&self.tmp, &self.path)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()
    }
}

impl Clone for SnapshotFile {
    /// The same file, with no write of its own finished.
    fn clone(&self) -> Self {
        Self { path: self.path.clone(), tmp: self.tmp.clone(), finished: None }
    }
}

impl SnapshotStore for SnapshotFile {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn read(&mut self) -> io::Result<Option<Vec<u8>>> {
        SnapshotFile::read(self)
    }

    fn remove_leftovers(&mut self) -> io::Result<()> {
        self.remove_leftover_tmp()
    }

    fn submit(&mut self, index: u64, capture: SnapshotCapture) {
        let result = self.write_capture(capture);
        self.finished = Some((index, None, result));
    }

    fn poll(&mut self) -> Option<Written> {
        self.finished.take()
    }
}

/// A thread that writes one partition's snapshot files, one at a time, off the shard's thread.
#[derive(Debug)]
pub struct SnapshotWriter {
    path: PathBuf,
    /// The file, for reads and the leftover `.tmp` (the thread writes through its own handle).
    file: SnapshotFile,
    jobs: Option<mpsc::SyncSender<(u64, SnapshotCapture)>>,
    done: mpsc::Receiver<Written>,
    thread: Option<JoinHandle<()>>,
}

impl SnapshotWriter {
    /// Starts the writer of `file` (a thread named `vigil-snap-<partition>`).
    pub fn spawn(file: SnapshotFile, partition: u16) -> io::Result<Self> {
        // One job at a time: the partition does not start a snapshot while one is being written.
        let (jobs, job_rx) = mpsc::sync_channel::<(u64, SnapshotCapture)>(1);
        let (done_tx, done) = mpsc::channel();
        let path = file.path().to_path_buf();
        let own = file.clone();
        let thread =
            std::thread::Builder::new().name(format!("vigil-snap-{partition}")).spawn(move || {
                for (index, capture) in job_rx {
                    // The encoding too happens here, off the shard's thread, as it is written.
                    let result = file.write_capture(capture);
                    if done_tx.send((index, None, result)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Self { path, file: own, jobs: Some(jobs), done, thread: Some(thread) })
    }

    /// The file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands over a snapshot to encode and write; its outcome comes out of `finished`. The caller
    /// submits the next only after the previous one finished.
    pub fn submit(&self, index: u64, capture: SnapshotCapture) {
        let jobs = self.jobs.as_ref().expect("the writer runs until dropped");
        // The channel holds one job and the caller waits for each to finish: never full.
        if jobs.try_send((index, capture)).is_err() {
            panic!(
                "snapshot writer {}: a job was submitted before the last one finished, or the thread died",
                self.path.display()
            );
        }
    }

    /// A snapshot whose write finished (durably or not), if any.
    pub fn finished(&self) -> Option<Written> {
        self.done.try_recv().ok()
    }
}

impl SnapshotStore for SnapshotWriter {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn read(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.file.read()
    }

    fn remove_leftovers(&mut self) -> io::Result<()> {
        self.file.remove_leftover_tmp()
    }

    fn submit(&mut self, index: u64, capture: SnapshotCapture) {
        SnapshotWriter::submit(self, index, capture);
    }

    fn poll(&mut self) -> Option<Written> {
        self.finished()
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
    fn the_writer_thread_writes_and_reports_each_snapshot() {
        let dir = std::env::temp_dir().join(format!("vigil-snapwriter-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let w = SnapshotWriter::spawn(SnapshotFile::new(&dir, 1), 1).unwrap();
        let mut router = crate::projection::Router::new(crate::kv::KvLimits::small(), Vec::new());
        let mut expected = Vec::new();
        for index in [5u64, 9] {
            let op = crate::kv::Op::Set { key: b"k", value: b"v" };
            router.apply_kv(index, &crate::kv::Command { client_id: 1, seq: index, op });
            expected.clear();
            router.snapshot(&mut expected);
            // Captured on this thread, encoded into the file on the writer's: the same bytes.
            w.submit(index, router.capture());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let (got, data, result) = loop {
                if let Some(done) = w.finished() {
                    break done;
                }
                assert!(std::time::Instant::now() < deadline, "the writer never finished");
                std::thread::sleep(std::time::Duration::from_millis(1));
            };
            assert_eq!((got, data, result.is_ok()), (index, None, true), "streamed, not kept");
            assert_eq!(fs::read(dir.join("partition-1.snap")).unwrap(), expected);
        }
        drop(w);
        assert_eq!(fs::read(dir.join("partition-1.snap")).unwrap(), expected);
        fs::remove_dir_all(&dir).unwrap();
    }
}

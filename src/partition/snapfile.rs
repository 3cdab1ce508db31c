//! Projection snapshots on disk: one file per partition, replaced atomically.
//!
//! The UAL keeps the log, not the projections' images (docs/STORAGE.md): a snapshot's bytes live
//! in `<dir>/partition-<p>.snap`. Writing one goes to `<name>.tmp`, `fsync`s it, renames it over
//! the old file and `fsync`s the directory, so after a crash at any point the file is the old
//! snapshot or the new one, whole. Only after `write` returned may the log be checkpointed past the
//! snapshot's index (the caller's duty): the file's index is never below the log's start.
//!
//! The bytes are the KV projection's own snapshot format (magic, version, applied lsn, length,
//! crc32c): a torn or flipped file is refused by `KvProjection::restore`, never half-loaded.
//!
//! This is plain blocking file I/O, done by the shard thread when a snapshot is due (every
//! `storage.snapshot_every_entries` entries): it pauses that shard for the time of one write and
//! two `fsync`s, not the others.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where one partition's snapshot lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    path: PathBuf,
    tmp: PathBuf,
}

impl SnapshotFile {
    /// The snapshot file of `partition` in `dir`.
    pub fn new(dir: &Path, partition: u16) -> Self {
        let path = dir.join(format!("partition-{partition}.snap"));
        let tmp = dir.join(format!("partition-{partition}.snap.tmp"));
        Self { path, tmp }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The snapshot's bytes, or `None` if there is none yet. A leftover `.tmp` (a crash while
    /// writing) is removed: it was never renamed, so it never counted.
    pub fn load(&self) -> io::Result<Option<Vec<u8>>> {
        match fs::remove_file(&self.tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the snapshot with `bytes`, durably (see the module header).
    pub fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&self.tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&self.tmp, &self.path)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()
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
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! The data directory (`storage.dir`): its lock, its manifest, its creation, and the checks that
//! come before any partition is opened.
//!
//! A directory holds one store: `partition-<p>.ual` (each partition's log, exactly
//! `storage.ual().device_blocks()` blocks), `partition-<p>.snap` (snapshots), the manifest
//! [`MANIFEST`] and the lock file [`LOCK`].
//!
//! Invariants:
//! - one process at a time: whoever serves, formats or adopts the directory holds an exclusive
//!   `flock` on [`LOCK`] (created if absent, never removed; the holder's pid written in it) for as
//!   long as it uses the directory;
//! - creating a store is an explicit act: `vigil format`, or the first start of a directory that
//!   has never held one (no store file at all). Its files are created and formatted first, the
//!   manifest written last (tmp + fsync + rename + fsync of the directory), so a manifest always
//!   describes complete, formatted files;
//! - with a manifest, a start goes on only if the config places data as the manifest says
//!   (partitions, log geometry) and every partition file exists with exactly the expected size:
//!   nothing is ever created, extended or cut in an existing store;
//! - a refused start or check writes nothing (the lock file aside).

use crate::config::{Config, DurableMode};
use crate::log::{Ual, UalConfig};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;
use vigil_pmd::block::uring::{UringBlockIo, UringConfig};

/// The manifest's file name in the data directory.
pub const MANIFEST: &str = "vigil-store.toml";
/// The lock file's name in the data directory.
pub const LOCK: &str = "vigil.lock";
/// The manifest format this build writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
const BLOCK: u64 = 4096;

/// Why the data directory cannot be used; the directory's store files were left as they were.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A file or directory operation failed.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Another process holds the directory's lock.
    #[error(
        "storage.dir {}: in use by another process (pid {holder}, lock file {}); stop it first, or give \
         this one its own storage.dir",
        dir.display(), lock.display()
    )]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The pid written by the holder (as read from the file).
        holder: String,
    },
    /// The manifest cannot be read or is not one this build understands.
    #[error("{}: {reason}", path.display())]
    Manifest {
        /// The manifest's path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The config places data differently from the store.
    #[error(
        "config key `{key}` is {config} but the store in {} was created with {stored} (manifest {}): \
         it decides where data lives and cannot change for existing data; set it back to {stored}",
        dir.display(), manifest.display()
    )]
    Mismatch {
        /// The dotted config key.
        key: &'static str,
        /// The value in the manifest.
        stored: u64,
        /// The value in the config.
        config: u64,
        /// The directory.
        dir: PathBuf,
        /// The manifest's path.
        manifest: PathBuf,
    },
    /// A partition's log file is missing or has the wrong size.
    #[error(
        "{}: {}, expected exactly {expected} bytes: the store's log is damaged (lost or truncated); it \
         was left as it is, nothing was created or extended",
        path.display(),
        match actual { Some(a) => format!("is {a} bytes"), None => "is missing".to_string() }
    )]
    PartitionFile {
        /// The file.
        path: PathBuf,
        /// Its expected size in bytes.
        expected: u64,
        /// Its size, `None` when missing.
        actual: Option<u64>,
    },
    /// Store files without a manifest: made by an older Vigil, or a creation interrupted before
    /// its manifest was written.
    #[error(
        "storage.dir {} holds store files but no manifest {MANIFEST} ({files}): made by an older Vigil \
         (or a creation that was interrupted). Vigil will not guess what it is. If these files are this \
         store's, adopt them with `vigil format --adopt --config FILE` (checks every file first, then \
         writes the manifest); otherwise move them away",
        dir.display()
    )]
    NoManifest {
        /// The directory.
        dir: PathBuf,
        /// The store files found.
        files: String,
    },
    /// `vigil format` on a directory that already holds store files.
    #[error("storage.dir {} already holds store files ({files}): format creates a store only in a directory without one; nothing was changed", dir.display())]
    NotEmpty {
        /// The directory.
        dir: PathBuf,
        /// The store files found.
        files: String,
    },
    /// The log's device cannot be used (missing, too small, not blank for a format, of another
    /// store or placement); it was left as it was.
    #[error("log device {device}: {reason}")]
    Device {
        /// The device (a path, or SPDK's transport ID and namespace).
        device: String,
        /// What is wrong.
        reason: String,
    },
    /// The config puts the log somewhere other than where the store has it.
    #[error(
        "the store in {} keeps its log {stored} (manifest {}), but the config puts it {config}: set          storage.backend and storage.device back",
        dir.display(), manifest.display()
    )]
    Medium {
        /// Where the manifest says the log is.
        stored: String,
        /// Where the config puts it.
        config: String,
        /// The directory.
        dir: PathBuf,
        /// The manifest's path.
        manifest: PathBuf,
    },
    /// A file to adopt or a file just created does not hold what it should.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { path: path.to_path_buf(), what, source }
}

/// What the manifest records: what makes the store and places its data.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The manifest format ([`MANIFEST_VERSION`]).
    pub format_version: u32,
    /// A random id given at creation (128 bits, hex).
    pub store_id: String,
    /// `storage.partitions` at creation.
    pub partitions: u32,
    /// `storage.segment_blocks` at creation.
    pub segment_blocks: u32,
    /// `storage.segment_count` at creation.
    pub segment_count: u32,
    /// The Vigil that created (or adopted) the store.
    pub created_by: String,
    /// When, in seconds since the Unix epoch.
    pub created_unix_secs: u64,
    /// `"format"`, `"first start"` or `"adopt"`.
    pub created_how: String,
    /// Where the log is: absent for files in the directory, `"block"` for `storage.device`, `"spdk"`
    /// for an NVMe namespace through SPDK (the device itself is known by its label, which carries
    /// `store_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_device: Option<String>,
}

/// Where `config` puts the log, as the manifest's `log_device` says it.
pub fn log_device_kind(config: &Config) -> Option<String> {
    match (config.storage.backend, &config.storage.device) {
        (crate::config::StorageBackend::Spdk, _) => Some("spdk".into()),
        (_, Some(_)) => Some("block".into()),
        _ => None,
    }
}

fn describe_medium(kind: Option<&str>) -> String {
    match kind {
        None => "in files in storage.dir".into(),
        Some("block") => "on a raw block device (storage.device)".into(),
        Some("spdk") => "on an NVMe namespace through SPDK (storage.backend = \"spdk\")".into(),
        Some(other) => format!("on {other:?}, which this Vigil does not know"),
    }
}

/// The exclusive lock on a data directory; held until dropped (or the process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// How a start found its store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// The directory held no store: one was created.
    Created(Manifest),
    /// The manifest matched the config and every partition file is there, sized right.
    Verified(Manifest),
}

fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST)
}

/// The log file of partition `p`.
pub fn partition_path(dir: &Path, p: u32) -> PathBuf {
    dir.join(format!("partition-{p}.ual"))
}

/// Bytes of each partition's log file.
pub fn partition_bytes(config: &Config) -> u64 {
    config.storage.ual().device_blocks() * BLOCK
}

/// Locks `dir` (creating the lock file if absent) or says who holds it.
pub fn lock(dir: &Path) -> Result<DirLock, StoreError> {
    let path = dir.join(LOCK);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path, "cannot open the lock file"))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = if holder.trim().is_empty() { "unknown".into() } else { holder.trim().to_string() };
            return Err(StoreError::Locked { dir: dir.to_path_buf(), lock: path, holder });
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_err(&path, "cannot lock the lock file")(e)),
    }
    file.set_len(0).map_err(io_err(&path, "cannot write the lock file"))?;
    writeln!(file, "{}", std::process::id()).map_err(io_err(&path, "cannot write the lock file"))?;
    Ok(DirLock { _file: file })
}

/// The store files in `dir` (sorted names): partition logs and snapshots, the manifest and their
/// temporary files. Other files (the lock file, anything else) do not make a store.
pub fn store_files(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir, "cannot list the directory")(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry.map_err(io_err(dir, "cannot list the directory"))?.file_name();
        let name = name.to_string_lossy().to_string();
        let partition_file = name.starts_with("partition-")
            && [".ual", ".snap", ".snap.tmp"].iter().any(|ext| name.ends_with(ext));
        if partition_file || name.starts_with(MANIFEST) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Reads and parses the manifest; `None` when there is none.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>, StoreError> {
    let path = manifest_path(dir);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path, "cannot read the manifest")(e)),
    };
    let m: Manifest = toml::from_str(&text)
        .map_err(|e| StoreError::Manifest { path: path.clone(), reason: format!("does not parse: {e}") })?;
    if m.format_version != MANIFEST_VERSION {
        return Err(StoreError::Manifest {
            path,
            reason: format!(
                "format_version {} is not {MANIFEST_VERSION}, the one this Vigil reads: use the Vigil that made it",
                m.format_version
            ),
        });
    }
    Ok(Some(m))
}

/// Each way the config disagrees with the manifest.
pub fn mismatches(config: &Config, dir: &Path, m: &Manifest) -> Vec<StoreError> {
    let st = &config.storage;
    let pairs: [(&'static str, u32, u32); 3] = [
        ("storage.partitions", m.partitions, st.partitions(config.node.shards)),
        ("storage.segment_blocks", m.segment_blocks, st.segment_blocks),
        ("storage.segment_count", m.segment_count, st.segment_count),
    ];
    let mut out: Vec<StoreError> = pairs
        .into_iter()
        .filter(|(_, stored, config)| stored != config)
        .map(|(key, stored, config)| StoreError::Mismatch {
            key,
            stored: stored.into(),
            config: config.into(),
            dir: dir.to_path_buf(),
            manifest: manifest_path(dir),
        })
        .collect();
    let wanted = log_device_kind(config);
    if m.log_device != wanted {
        out.push(StoreError::Medium {
            stored: describe_medium(m.log_device.as_deref()),
            config: describe_medium(wanted.as_deref()),
            dir: dir.to_path_buf(),
            manifest: manifest_path(dir),
        });
    }
    out
}

/// Checks partition `p`'s log file exists with exactly the expected size.
pub fn check_partition_file(config: &Config, dir: &Path, p: u32) -> Result<(), StoreError> {
    let path = partition_path(dir, p);
    let expected = partition_bytes(config);
    match fs::metadata(&path) {
        Ok(meta) if meta.len() == expected => Ok(()),
        Ok(meta) => Err(StoreError::PartitionFile { path, expected, actual: Some(meta.len()) }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(StoreError::PartitionFile { path, expected, actual: None })
        }
        Err(e) => Err(io_err(&path, "cannot read its size")(e)),
    }
}

/// Prepares `storage.dir` for serving: creates it if absent, locks it, then verifies the store
/// against the config, or creates the store if the directory never held one.
pub fn open_for_serve(config: &Config) -> Result<(DirLock, Opened), StoreError> {
    let dir = config.storage.dir.clone().expect("validated: uring has a dir");
    fs::create_dir_all(&dir).map_err(io_err(&dir, "cannot create storage.dir"))?;
    let lock = lock(&dir)?;
    let opened = match read_manifest(&dir)? {
        Some(m) => {
            if let Some(e) = mismatches(config, &dir, &m).into_iter().next() {
                return Err(e);
            }
            // A log on a device is checked by whoever opens the device (`LogSource::attach`).
            // Every file is checked before any partition opens (and recovery writes its own
            // superblock): a lost, cut or blanked file is refused while all files are as they were.
            if m.log_device.is_none() {
                for p in 0..m.partitions {
                    check_partition_file(config, &dir, p)?;
                    check_superblock(config, &partition_path(&dir, p))?;
                }
            }
            Opened::Verified(m)
        }
        None => {
            let files = store_files(&dir)?;
            if !files.is_empty() {
                return Err(StoreError::NoManifest { dir, files: files.join(", ") });
            }
            if log_device_kind(config).is_some() {
                return Err(StoreError::Manifest {
                    path: manifest_path(&dir),
                    reason: "is missing: no store was made for this log device. A start never formats a \
                             device (it may hold data); create the store with `vigil format --config FILE`"
                        .into(),
                });
            }
            Opened::Created(create(config, &dir, "first start")?)
        }
    };
    Ok((lock, opened))
}

/// `vigil format`: creates a store in `storage.dir` (refusing a directory that holds any store
/// file), or with `adopt` writes the manifest for the files an older Vigil left, after checking
/// them.
pub fn format(config: &Config, adopt: bool) -> Result<Manifest, StoreError> {
    assert!(log_device_kind(config).is_none(), "a store on a device is made by device_store::format_store");
    let dir = config.storage.dir.clone().expect("validated: uring has a dir");
    fs::create_dir_all(&dir).map_err(io_err(&dir, "cannot create storage.dir"))?;
    let _lock = lock(&dir)?;
    let files = store_files(&dir)?;
    if !adopt {
        if !files.is_empty() {
            return Err(StoreError::NotEmpty { dir, files: files.join(", ") });
        }
        return create(config, &dir, "format");
    }
    if read_manifest(&dir)?.is_some() {
        return Err(StoreError::Manifest {
            path: manifest_path(&dir),
            reason: "already exists: the store has its manifest, there is nothing to adopt".into(),
        });
    }
    if files.is_empty() {
        return Err(StoreError::Invalid {
            path: dir,
            reason: "holds no store files: nothing to adopt (run `vigil format` without --adopt to create a store)"
                .into(),
        });
    }
    check_adoptable(config, &dir, &files)?;
    let m = new_manifest(config, "adopt")?;
    write_manifest(&dir, &m)?;
    Ok(m)
}

/// Every partition file of the config is there, sized right, with a superblock of the config's
/// geometry; no partition file beyond the config's count; every snapshot has a valid header.
fn check_adoptable(config: &Config, dir: &Path, files: &[String]) -> Result<(), StoreError> {
    let partitions = config.storage.partitions(config.node.shards);
    for name in files {
        let p =
            name.strip_prefix("partition-").and_then(|r| r.split('.').next()).and_then(|n| n.parse().ok());
        if let Some(p) = p.filter(|&p: &u32| p >= partitions) {
            return Err(StoreError::Invalid {
                path: dir.join(name),
                reason: format!(
                    "belongs to partition {p}, but storage.partitions is {partitions}: set it to the count the \
                     store was made with"
                ),
            });
        }
    }
    for p in 0..partitions {
        check_partition_file(config, dir, p)?;
        check_superblock(config, &partition_path(dir, p))?;
        let snap = dir.join(format!("partition-{p}.snap"));
        if let Ok(mut file) = File::open(&snap) {
            crate::projection::snapshot::applied_lsn_of(&mut file)
                .map_err(|e| StoreError::Invalid { path: snap.clone(), reason: e.to_string() })?;
        }
    }
    Ok(())
}

/// Reads both superblock copies of a log file (without writing anything) and checks that one is
/// valid and of the config's geometry.
pub fn check_superblock(config: &Config, path: &Path) -> Result<(), StoreError> {
    let mut head = vec![0u8; 2 * BLOCK as usize];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(io_err(path, "cannot read its superblocks"))?;
    super::device_store::check_superblocks(config, &head)
        .map_err(|reason| StoreError::Invalid { path: path.to_path_buf(), reason })
}

/// io_uring settings for one handle on `path` (an existing file or raw device at its own size;
/// `create_blocks` to create one).
pub(super) fn uring_config(config: &Config, path: &Path) -> UringConfig {
    let st = &config.storage;
    UringConfig {
        path: path.to_path_buf(),
        create_blocks: None,
        queue_depth: st.queue_depth,
        durable_mode: match st.durable_mode {
            DurableMode::Dsync => vigil_pmd::block::uring::DurableMode::Dsync,
            DurableMode::Flush => vigil_pmd::block::uring::DurableMode::Flush,
        },
    }
}

/// Creates and formats every partition's log file, then writes the manifest.
fn create(config: &Config, dir: &Path, how: &str) -> Result<Manifest, StoreError> {
    let st = &config.storage;
    let ual = UalConfig { format_if_blank: true, ..st.ual() };
    for p in 0..st.partitions(config.node.shards) {
        let path = partition_path(dir, p);
        let dev = UringBlockIo::open(&UringConfig {
            create_blocks: Some(ual.device_blocks()),
            ..uring_config(config, &path)
        })
        .map_err(|e| StoreError::Invalid { path: path.clone(), reason: e.to_string() })?;
        let (_, report) = Ual::open(dev, ual)
            .map_err(|e| StoreError::Invalid { path: path.clone(), reason: e.to_string() })?;
        if !report.formatted {
            return Err(StoreError::Invalid { path, reason: "was not blank: not formatted".into() });
        }
    }
    let m = new_manifest(config, how)?;
    write_manifest(dir, &m)?;
    Ok(m)
}

pub(super) fn new_manifest(config: &Config, how: &str) -> Result<Manifest, StoreError> {
    let mut id = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut id))
        .map_err(io_err(Path::new("/dev/urandom"), "cannot read a random store id"))?;
    let created_unix_secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok(Manifest {
        format_version: MANIFEST_VERSION,
        store_id: id.iter().map(|b| format!("{b:02x}")).collect(),
        partitions: config.storage.partitions(config.node.shards),
        segment_blocks: config.storage.segment_blocks,
        segment_count: config.storage.segment_count,
        created_by: format!("vigil {} (git {})", env!("CARGO_PKG_VERSION"), env!("VIGIL_GIT_SHA")),
        created_unix_secs,
        created_how: how.to_string(),
        log_device: log_device_kind(config),
    })
}

/// Writes the manifest atomically: a temporary file, fsync, rename, fsync of the directory.
pub(super) fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), StoreError> {
    let path = manifest_path(dir);
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    let body = toml::to_string(m).expect("a manifest serializes");
    let text = format!(
        "# Vigil store manifest: what this directory holds and how its data is placed.\n\
         # Written once when the store was created; never edit it.\n{body}"
    );
    let mut f = File::create(&tmp).map_err(io_err(&tmp, "cannot create the manifest"))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io_err(&tmp, "cannot write the manifest"))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io_err(&path, "cannot rename the manifest into place"))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir, "cannot fsync the directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vigil-storage-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_locked_directory_names_the_holder_and_frees_with_the_guard() {
        let d = dir("lock");
        let held = lock(&d).unwrap();
        match lock(&d) {
            Err(StoreError::Locked { holder, lock, .. }) => {
                assert_eq!(holder, std::process::id().to_string());
                assert_eq!(lock, d.join(LOCK));
            }
            other => panic!("{other:?}"),
        }
        drop(held);
        let _again = lock(&d).expect("the lock goes with its guard");
        assert!(store_files(&d).unwrap().is_empty(), "the lock file makes no store");
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn the_manifest_round_trips_and_other_versions_are_refused() {
        let d = dir("manifest");
        assert_eq!(read_manifest(&d).unwrap(), None);
        let m = new_manifest(&Config::dev(), "format").unwrap();
        assert_eq!(m.store_id.len(), 32);
        write_manifest(&d, &m).unwrap();
        assert_eq!(read_manifest(&d).unwrap(), Some(m.clone()));
        assert!(!d.join(format!("{MANIFEST}.tmp")).exists());
        assert!(mismatches(&Config::dev(), &d, &m).is_empty());
        let text =
            fs::read_to_string(d.join(MANIFEST)).unwrap().replace("format_version = 1", "format_version = 9");
        fs::write(d.join(MANIFEST), text).unwrap();
        assert!(matches!(read_manifest(&d), Err(StoreError::Manifest { .. })));
        fs::write(d.join("partition-3.snap.tmp"), b"").unwrap();
        fs::write(d.join("notes.txt"), b"").unwrap();
        assert_eq!(store_files(&d).unwrap(), vec!["partition-3.snap.tmp".to_string(), MANIFEST.to_string()]);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_changed_placement_names_each_key_and_both_values() {
        let m = new_manifest(&Config::dev(), "format").unwrap();
        let text = crate::config::DEV_TOML
            .replace("[storage]", "[storage]\npartitions = 2")
            .replace("segment_count = 64", "segment_count = 32");
        let config = Config::parse(&text).unwrap();
        let errors: Vec<String> =
            mismatches(&config, Path::new("d"), &m).iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("`storage.partitions` is 2") && errors[0].contains("created with 1"),
            "{errors:?}"
        );
        assert!(errors[1].contains("`storage.segment_count` is 32") && errors[1].contains("created with 64"));
    }
}

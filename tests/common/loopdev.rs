//! A loop block device over a file in the test's directory: how tests put a log on a raw block
//! device (`storage.device`) on a machine without a spare disk. Needs root and `losetup`; a test
//! that cannot get one fails (it never passes by not running).

use std::path::{Path, PathBuf};
use std::process::Command;

/// An attached loop device; detached (by its own path, never another's) when dropped.
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
}

impl LoopDevice {
    /// Creates `file` of `bytes` (sparse, so blank) and attaches it with direct I/O, so the log's
    /// O_DIRECT writes reach the file without a second page cache.
    pub fn attach(file: &Path, bytes: u64) -> LoopDevice {
        std::fs::File::create(file).and_then(|f| f.set_len(bytes)).expect("creating the loop device's file");
        let out = Command::new("losetup")
            .args(["--find", "--show", "--direct-io=on"])
            .arg(file)
            .output()
            .unwrap_or_else(|e| panic!("losetup (util-linux) is needed for a loop device: {e}"));
        assert!(
            out.status.success(),
            "losetup --find --show {} failed (this test needs root and loop devices): {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(printed.starts_with("/dev/loop"), "losetup printed {printed:?}");
        LoopDevice { path: PathBuf::from(printed) }
    }

    /// The device, e.g. `/dev/loop3`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}

//! The process allocator's settings that matter for a long-running server with large tables.
//!
//! glibc's malloc serves requests above a threshold with their own `mmap` and gives them back on
//! `free`; below it they come from the heap, whose freed memory mostly stays resident. The
//! threshold is dynamic by default: every time an `mmap`ed block is freed it rises to that block's
//! size (up to 32 MiB). A server whose tables grow by doubling (the KV map's slot vector and index)
//! and whose snapshots capture a vector of the whole map frees exactly such blocks, so the
//! threshold climbs and every later table and capture lands in the heap, where what they free stays
//! resident: measured, 25 MB of 148 MB at 1 M keys (docs/BENCHMARKS.md, "Memory per key"). Fixing
//! the threshold keeps large blocks in `mmap`, returned to the system when freed.
//!
//! Invariant: called once, at start-up, before any thread; on an allocator other than glibc's it
//! does nothing and says so.

/// The mmap threshold the server fixes: glibc's own starting value, 128 KiB.
pub const MMAP_THRESHOLD_BYTES: i32 = 128 * 1024;

/// Fixes glibc's mmap threshold at `bytes` (which also turns its dynamic adjustment off). Returns
/// whether the allocator took it (`false` on a libc without `mallopt`).
pub fn fix_mmap_threshold(bytes: i32) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets an allocator parameter, under glibc's own lock; it reads
        // no memory of ours, and glibc returns 0 for a value it refuses, changing nothing then.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = bytes;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_takes_the_threshold() {
        assert!(fix_mmap_threshold(MMAP_THRESHOLD_BYTES));
    }
}

//! The DPDK layer's one error type: every C return code is turned into it here.
//!
//! Invariant: an `Err` means the call had no effect on the object it was made on (DPDK's calls
//! are all-or-nothing for the ones wrapped here), unless the variant's doc says otherwise.

use std::ffi::{c_int, CStr};

/// An error from the DPDK layer.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// `Eal::init` was called a second time in this process; DPDK cannot initialise twice (not even
    /// after cleanup). Nothing was changed.
    #[error("the DPDK EAL was already initialised in this process (rte_eal_init runs once per process)")]
    AlreadyInitialised,
    /// A DPDK call returned an error code; the object it was made on is unchanged.
    #[error("{call} failed: {text} (errno {errno})")]
    Call {
        /// The C function that failed.
        call: &'static str,
        /// The positive errno value (from the return code or `rte_errno`).
        errno: i32,
        /// `rte_strerror(errno)`.
        text: String,
    },
    /// An argument was rejected before reaching DPDK (bad name, zero sizes, ...); nothing happened.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl DpdkError {
    /// An error for `call` with the positive errno value `errno`.
    pub(crate) fn from_errno(call: &'static str, errno: c_int) -> Self {
        let errno = errno.abs();
        // SAFETY: rte_strerror accepts any value and returns a pointer to a NUL-terminated string
        // (static, or in a per-thread buffer valid until the next call on this thread); it is copied
        // out at once.
        let text = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(errno)) }.to_string_lossy().into_owned();
        Self::Call { call, errno, text }
    }

    /// An error for `call` from this thread's `rte_errno` (for calls returning -1 or null).
    pub(crate) fn from_rte_errno(call: &'static str) -> Self {
        // SAFETY: reading this thread's rte_errno through the shim has no preconditions.
        let errno = unsafe { dpdk_sys::vigil_rte_errno() };
        Self::from_errno(call, errno)
    }

    /// The errno value, for `Call` errors.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Call { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// Turns a DPDK return code (negative errno on failure, the ethdev convention) into a `Result`.
#[inline]
pub(crate) fn check(call: &'static str, rc: c_int) -> Result<c_int, DpdkError> {
    if rc < 0 {
        Err(DpdkError::from_errno(call, -rc))
    } else {
        Ok(rc)
    }
}

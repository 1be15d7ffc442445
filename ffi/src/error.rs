//! Errors from DPDK calls, with the failing call's name and DPDK's message.

use std::ffi::CStr;

use crate::sys;

/// An error from a DPDK call or from a wrapper's argument checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FfiError {
    /// `rte_eal_init` may run once per process.
    #[error("EAL is already initialised in this process")]
    EalAlreadyInitialised,
    /// A wrapper needs EAL but it has not been initialised.
    #[error("EAL is not initialised")]
    EalNotInitialised,
    /// A DPDK call failed; `errno` is `rte_errno` or the negative return value.
    #[error("{call} failed: {message} (errno {errno})")]
    Dpdk {
        call: &'static str,
        errno: i32,
        message: String,
    },
    /// An argument was refused before reaching DPDK.
    #[error("invalid argument to {call}: {reason}")]
    InvalidArgument { call: &'static str, reason: String },
    /// No ethdev port with that name (for example a vdev that was not created).
    #[error("no DPDK port named {0:?}")]
    NoSuchPort(String),
}

impl FfiError {
    /// Builds an error from an errno value, with DPDK's message for it.
    pub fn from_errno(call: &'static str, errno: i32) -> Self {
        let errno = errno.abs();
        FfiError::Dpdk {
            call,
            errno,
            message: strerror(errno),
        }
    }

    /// Builds an error from the calling thread's `rte_errno`.
    pub fn last(call: &'static str) -> Self {
        // SAFETY: reads a thread-local int through the shim.
        let errno = unsafe { sys::_rte_errno() };
        Self::from_errno(call, errno)
    }

    /// The errno value, when the error came from DPDK.
    pub fn errno(&self) -> Option<i32> {
        match self {
            FfiError::Dpdk { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// DPDK's message for an errno value (covers DPDK's own codes too).
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string that stays valid until the next call on this thread.
    unsafe {
        let p = sys::rte_strerror(errno);
        if p.is_null() {
            return format!("errno {errno}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Turns DPDK's return conventions into results, one call per expression:
/// `unsafe { sys::rte_x(..) }.into_result("rte_x")?`.
pub trait ToResult {
    type Ok;
    fn into_result(self, call: &'static str) -> Result<Self::Ok, FfiError>;
}

/// `int` returns: negative is `-errno` (ethdev) or `-1` with `rte_errno` set.
impl ToResult for i32 {
    type Ok = u32;
    fn into_result(self, call: &'static str) -> Result<u32, FfiError> {
        match self {
            n if n >= 0 => Ok(n as u32),
            -1 => {
                // SAFETY: thread-local read.
                let e = unsafe { sys::_rte_errno() };
                // Some calls return -1 without setting rte_errno.
                Err(FfiError::from_errno(call, if e != 0 { e } else { 1 }))
            }
            n => Err(FfiError::from_errno(call, -n)),
        }
    }
}

/// Pointer returns: null means failure with `rte_errno` set.
impl<T> ToResult for *mut T {
    type Ok = std::ptr::NonNull<T>;
    fn into_result(self, call: &'static str) -> Result<Self::Ok, FfiError> {
        std::ptr::NonNull::new(self).ok_or_else(|| FfiError::last(call))
    }
}

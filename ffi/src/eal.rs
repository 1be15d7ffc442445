//! EAL initialisation (once per process) and lcore launch helpers.

use std::ffi::{c_int, c_void, CString};
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{FfiError, ToResult};
use crate::ids::LcoreId;
use crate::sys;

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;
const CLEANED: u8 = 4;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);

/// Process type of this EAL instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessType {
    Primary,
    Secondary,
}

/// The initialised Environment Abstraction Layer. There is at most one per
/// process; dropping it calls `rte_eal_cleanup` (close ports first).
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Initialises EAL from arguments, as on a DPDK command line without the
    /// program name (for example `["--no-huge", "-m", "256", "--no-pci",
    /// "--vdev=net_ring0"]`).
    ///
    /// A second call in the same process, successful or not, is refused:
    /// DPDK cannot re-run its initialisation.
    pub fn init<I, S>(args: I) -> Result<Eal, FfiError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        if STATE
            .compare_exchange(UNINIT, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(FfiError::EalAlreadyInitialised);
        }
        let mut owned: Vec<CString> = vec![CString::new("dmpd").unwrap()];
        for a in args {
            match CString::new(a.as_ref()) {
                Ok(c) => owned.push(c),
                Err(_) => {
                    STATE.store(UNINIT, Ordering::Release);
                    return Err(FfiError::InvalidArgument {
                        call: "rte_eal_init",
                        reason: format!("argument {:?} contains a NUL byte", a.as_ref()),
                    });
                }
            }
        }
        // EAL may keep pointers into argv (device arguments, prefixes) for
        // the life of the process, so the strings are leaked on purpose.
        let mut argv: Vec<*mut std::ffi::c_char> =
            owned.into_iter().map(|c| c.into_raw()).collect();
        let argc = argv.len() as c_int;
        argv.push(std::ptr::null_mut());
        let argv = Box::leak(argv.into_boxed_slice());
        // SAFETY: argv is a NULL-terminated array of valid C strings that
        // outlive the process; STATE guarantees a single caller.
        let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        match rc.into_result("rte_eal_init") {
            Ok(_) => {
                STATE.store(READY, Ordering::Release);
                Ok(Eal { _private: () })
            }
            Err(e) => {
                STATE.store(FAILED, Ordering::Release);
                Err(e)
            }
        }
    }

    /// True once `init` succeeded (and until cleanup).
    pub fn is_initialised() -> bool {
        STATE.load(Ordering::Acquire) == READY
    }

    /// Primary or secondary process.
    pub fn process_type(&self) -> ProcessType {
        // SAFETY: getter on EAL config.
        match unsafe { sys::rte_eal_process_type() } {
            sys::RTE_PROC_SECONDARY => ProcessType::Secondary,
            _ => ProcessType::Primary,
        }
    }

    /// Number of lcores EAL enabled (main included).
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: getter.
        unsafe { sys::rte_lcore_count() }
    }

    /// The worker lcores (all enabled lcores but the main one).
    pub fn workers(&self) -> Vec<LcoreId> {
        let mut out = Vec::new();
        // SAFETY: iteration over EAL's lcore table; RTE_MAX_LCORE ends it.
        let mut i = unsafe { sys::rte_get_next_lcore(u32::MAX, 1, 0) };
        while i < sys::RTE_MAX_LCORE {
            out.push(LcoreId::new(i));
            // SAFETY: as above.
            i = unsafe { sys::rte_get_next_lcore(i, 1, 0) };
        }
        out
    }

    /// Runs `f` on worker lcore `lcore`. Collect its result with [`Eal::wait`].
    pub fn launch<F>(&self, lcore: LcoreId, f: F) -> Result<(), FfiError>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        type Job = Box<dyn FnOnce() -> i32 + Send>;
        unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
            // SAFETY: arg was produced by Box::into_raw below, exactly once.
            let job: Box<Job> = unsafe { Box::from_raw(arg as *mut Job) };
            // A panic must not unwind into C.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or(-1)
        }
        let job: Box<Job> = Box::new(Box::new(f));
        let arg = Box::into_raw(job) as *mut c_void;
        // SAFETY: trampoline has the lcore_function_t signature; arg is owned
        // by the callee on success.
        let rc = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore.raw()) };
        if rc != 0 {
            // SAFETY: the job was not started, so we still own it.
            drop(unsafe { Box::from_raw(arg as *mut Job) });
            return Err(FfiError::from_errno("rte_eal_remote_launch", rc));
        }
        Ok(())
    }

    /// Waits for the job on `lcore` and returns its exit value.
    pub fn wait(&self, lcore: LcoreId) -> i32 {
        // SAFETY: plain blocking wait.
        unsafe { sys::rte_eal_wait_lcore(lcore.raw()) }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        if STATE
            .compare_exchange(READY, CLEANED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // SAFETY: EAL was initialised by this process and is torn down once.
            unsafe { sys::rte_eal_cleanup() };
        }
    }
}

/// The TSC and its frequency, for loops that time themselves like l2fwd.
pub mod cycles {
    use crate::sys;

    /// Reads the time-stamp counter.
    #[inline]
    pub fn rdtsc() -> u64 {
        // SAFETY: reads a CPU register.
        unsafe { sys::_rte_rdtsc() }
    }

    /// TSC ticks per second (valid after EAL init).
    pub fn tsc_hz() -> u64 {
        // SAFETY: getter.
        unsafe { sys::_rte_get_tsc_hz() }
    }

    /// A spin-loop hint.
    #[inline]
    pub fn pause() {
        // SAFETY: the pause instruction.
        unsafe { sys::_rte_pause() }
    }
}

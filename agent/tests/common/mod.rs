//! Helpers shared by the tests that run an agent process.

pub mod cluster;

use std::process::Child;
use std::time::{Duration, Instant};

/// SIGTERM, then the exit code; SIGKILL (and `None`) after 20 s.
// Not every test binary that includes this module stops agents itself.
#[allow(dead_code)]
pub fn stop_gracefully(mut child: Child) -> Option<i32> {
    // SAFETY: sends a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

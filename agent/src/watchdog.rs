//! The control loop's watchdog, outside that loop (SPEC 1: self-monitoring).
//! It counts a stall when the loop's heartbeat counter has not moved for
//! `limit`; the loop, when it runs again, leaves the cluster and rejoins
//! with a new incarnation, so the table never keeps a half-dead node.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

pub fn spawn(
    alive: Arc<AtomicU64>,
    stalled: Arc<AtomicU64>,
    limit: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("dmpd-watchdog".into())
        .spawn(move || {
            let mut last = alive.load(Relaxed);
            let mut in_stall = false;
            loop {
                std::thread::sleep(limit);
                let now = alive.load(Relaxed);
                if now == last {
                    if !in_stall {
                        tracing::error!(?limit, "control loop stalled");
                        stalled.fetch_add(1, Relaxed);
                        in_stall = true;
                    }
                } else {
                    in_stall = false;
                }
                last = now;
            }
        })
        .expect("spawn watchdog")
}

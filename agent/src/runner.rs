//! Running the engine as a process: configuration, signals, the control
//! socket and the watchdog, with an optional in-process application.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::AgentConfig;
use crate::{ctl, watchdog, Engine, EngineHandle};

/// Set by SIGINT/SIGTERM (or by an application that is done).
pub static QUIT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    QUIT.store(true, Ordering::SeqCst);
}

/// Installs the SIGINT/SIGTERM handler that sets [`QUIT`].
pub fn install_quit_handler() {
    // SAFETY: installs an async-signal-safe handler that only stores an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Runs an agent from a configuration file until a signal (or `QUIT`).
/// `app`, if given, runs on its own thread with the engine's handle. The
/// control loop runs on the calling thread (EAL's main lcore).
pub fn run_agent(
    config: &Path,
    app: Option<Box<dyn FnOnce(EngineHandle, &'static AtomicBool) + Send>>,
) -> ExitCode {
    let cfg = match AgentConfig::from_file(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    install_quit_handler();
    let mut engine = match Engine::start(&cfg) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = ctl::serve(
        cfg.control_socket.clone(),
        engine.control.status.clone(),
        engine.handle(),
    ) {
        eprintln!(
            "error: control socket {}: {e}",
            cfg.control_socket.display()
        );
        return ExitCode::from(2);
    }
    if let Some(addr) = cfg.metrics_addr {
        if let Err(e) = crate::metrics::serve(addr, engine.control.status.clone()) {
            eprintln!("error: metrics address {addr}: {e}");
            return ExitCode::from(2);
        }
    }
    if let Err(e) = crate::telemetry::register(engine.control.status.clone()) {
        tracing::warn!("DPDK telemetry commands not registered: {e}");
    }
    watchdog::spawn(
        engine.control.alive.clone(),
        engine.control.stalled.clone(),
        cfg.heartbeat_period() * crate::engine::control::STALL_PERIODS,
    );
    tracing::info!(node = cfg.node, "agent running");
    let app_thread = app.map(|f| {
        let h = engine.handle();
        std::thread::Builder::new()
            .name("dmpd-app".into())
            .spawn(move || f(h, &QUIT))
            .expect("spawn application thread")
    });
    engine.run(&QUIT);
    if let Some(t) = app_thread {
        let _ = t.join();
    }
    let _ = std::fs::remove_file(&cfg.control_socket);
    ExitCode::SUCCESS
}

//! The local control socket: line-delimited JSON requests and replies over
//! a Unix stream socket (mode 0600). Served by its own thread so a slow
//! client never delays the control loop; it reads the status the control
//! loop publishes and changes only atomics.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::engine::pipe::PipeParams;
use crate::engine::status::Status;
use crate::engine::EngineHandle;

/// A request on the control socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// The whole status (cluster table, ports, pipes, balancer).
    Status,
    /// Turns the balancer on or off (the experiment compares both).
    Balancing { on: bool },
    /// Changes a pipe's priority, threshold or buffer at run time.
    SetPipe {
        id: u16,
        priority: Option<u8>,
        threshold_bps: Option<u64>,
        buffer: Option<u32>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// Serves the socket until the process exits.
pub fn serve(
    path: PathBuf,
    status: Arc<Mutex<Status>>,
    engine: EngineHandle,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let h = std::thread::Builder::new()
        .name("dmpd-ctl".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => {
                        if let Err(e) = handle(s, &status, &engine) {
                            debug!(%e, "control socket client");
                        }
                    }
                    Err(e) => warn!(%e, "control socket accept"),
                }
            }
        })?;
    Ok(h)
}

fn handle(s: UnixStream, status: &Mutex<Status>, engine: &EngineHandle) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while r.read_line(&mut line)? > 0 {
        let reply = match serde_json::from_str::<Request>(line.trim()) {
            Ok(req) => answer(req, status, engine),
            Err(e) => Reply {
                ok: false,
                error: Some(format!("bad request: {e}")),
                status: None,
            },
        };
        serde_json::to_writer(&mut w, &reply)?;
        w.write_all(b"\n")?;
        line.clear();
    }
    Ok(())
}

fn answer(req: Request, status: &Mutex<Status>, engine: &EngineHandle) -> Reply {
    let ok = Reply {
        ok: true,
        error: None,
        status: None,
    };
    match req {
        Request::Status => Reply {
            status: serde_json::to_value(&*status.lock()).ok(),
            ..ok
        },
        Request::Balancing { on } => {
            engine.set_balancing(on);
            ok
        }
        Request::SetPipe {
            id,
            priority,
            threshold_bps,
            buffer,
        } => match engine.shared().pipes.get(id) {
            None => Reply {
                ok: false,
                error: Some(format!("pipe {id} is not open")),
                status: None,
            },
            Some(p) => {
                use std::sync::atomic::Ordering::Relaxed;
                if let Some(v) = priority {
                    p.priority.store(v, Relaxed);
                    engine.reorder_pipes();
                }
                if let Some(v) = threshold_bps {
                    p.threshold_bps.store(v, Relaxed);
                }
                if let Some(v) = buffer {
                    p.buffer.store(
                        v.clamp(1, crate::engine::pipe::PIPE_RING_SLOTS - 1),
                        Relaxed,
                    );
                }
                let _: PipeParams = p.params();
                ok
            }
        },
    }
}

/// Sends one request and returns the reply (for `dmpd-agent status` and tests).
pub fn request(path: &Path, req: &Request) -> Result<Reply, String> {
    let s = UnixStream::connect(path)
        .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    serde_json::to_writer(&mut w, req).map_err(|e| e.to_string())?;
    w.write_all(b"\n").map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| format!("no reply from {}: {e}", path.display()))?;
    serde_json::from_str(&line).map_err(|e| format!("bad reply: {e}"))
}

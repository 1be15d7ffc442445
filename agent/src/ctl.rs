//! The local control socket: line-delimited JSON requests and replies over
//! a Unix stream socket (mode 0600). Served by its own threads (one per
//! connection) so a slow client never delays the control loop; it reads the
//! status the control loop publishes and changes only atomics.
//!
//! `open_pipe` lets a DPDK secondary process (see [`crate::client`]) use a
//! pipe: the agent creates it and answers with the names of its rings and of
//! the mbuf pool. A pipe opened this way belongs to the connection that
//! opened it and is closed when that connection ends (the application
//! exited or was killed), so a dead application leaves no open pipe.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::engine::pipe::{pool_name, ring_names, Pipe, PipeParams};
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
    /// Opens a pipe for a secondary process; the reply's `attach` says
    /// where its rings are. Closed by `close_pipe` or when the connection
    /// that opened it ends.
    OpenPipe {
        id: u16,
        #[serde(default)]
        priority: u8,
        #[serde(default)]
        threshold_bps: u64,
        #[serde(default = "default_buffer")]
        buffer: u32,
    },
    /// Closes a pipe opened with `open_pipe` on this connection.
    ClosePipe { id: u16 },
}

fn default_buffer() -> u32 {
    PipeParams::default().buffer
}

/// What a secondary process needs to use a pipe the agent opened for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachInfo {
    /// Named `rte_ring`s: application to agent, agent to application.
    pub tx_ring: String,
    pub rx_ring: String,
    /// The agent's mbuf pool (frames are built in it).
    pub pool: String,
    pub ethertype: u16,
    pub cluster_id: u32,
    pub node: u16,
    pub max_payload: usize,
    /// Most messages queued for sending (after clamping).
    pub buffer: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<AttachInfo>,
}

impl Reply {
    fn ok() -> Reply {
        Reply {
            ok: true,
            error: None,
            status: None,
            attach: None,
        }
    }

    fn err(e: String) -> Reply {
        Reply {
            ok: false,
            error: Some(e),
            ..Reply::ok()
        }
    }
}

/// Pipes opened over the socket, with the connection that owns each.
type Opened = Mutex<HashMap<u16, (u64, Pipe)>>;

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
    let opened: Arc<Opened> = Arc::new(Mutex::new(HashMap::new()));
    let h = std::thread::Builder::new()
        .name("dmpd-ctl".into())
        .spawn(move || {
            let next_conn = AtomicU64::new(1);
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => {
                        let conn = next_conn.fetch_add(1, Ordering::Relaxed);
                        let (status, engine, opened) =
                            (status.clone(), engine.clone(), opened.clone());
                        let spawned = std::thread::Builder::new()
                            .name("dmpd-ctl-conn".into())
                            .spawn(move || {
                                if let Err(e) = handle(s, conn, &status, &engine, &opened) {
                                    debug!(%e, "control socket client");
                                }
                                close_owned(conn, &engine, &opened);
                            });
                        if let Err(e) = spawned {
                            warn!(%e, "control socket: cannot spawn a connection thread");
                        }
                    }
                    Err(e) => warn!(%e, "control socket accept"),
                }
            }
        })?;
    Ok(h)
}

/// Closes the pipes connection `conn` opened (it ended).
fn close_owned(conn: u64, engine: &EngineHandle, opened: &Opened) {
    let mut o = opened.lock();
    let ids: Vec<u16> = o
        .iter()
        .filter(|(_, (c, _))| *c == conn)
        .map(|(&id, _)| id)
        .collect();
    for id in ids {
        o.remove(&id);
        engine.close_pipe(id);
        tracing::info!(pipe = id, "pipe of a closed control connection closed");
    }
}

fn handle(
    s: UnixStream,
    conn: u64,
    status: &Mutex<Status>,
    engine: &EngineHandle,
    opened: &Opened,
) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while r.read_line(&mut line)? > 0 {
        let reply = match serde_json::from_str::<Request>(line.trim()) {
            Ok(req) => answer(req, conn, status, engine, opened),
            Err(e) => Reply::err(format!("bad request: {e}")),
        };
        if reply.attach.is_some() {
            // The connection owns a pipe now: it stays open as long as the
            // application lives, idle or not.
            r.get_ref().set_read_timeout(None)?;
        }
        serde_json::to_writer(&mut w, &reply)?;
        w.write_all(b"\n")?;
        line.clear();
    }
    Ok(())
}

fn answer(
    req: Request,
    conn: u64,
    status: &Mutex<Status>,
    engine: &EngineHandle,
    opened: &Opened,
) -> Reply {
    let ok = Reply::ok();
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
            None => Reply::err(format!("pipe {id} is not open")),
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
                ok
            }
        },
        Request::OpenPipe {
            id,
            priority,
            threshold_bps,
            buffer,
        } => {
            let params = PipeParams {
                priority,
                threshold_bps,
                buffer,
            };
            match engine.open_pipe(id, params) {
                Err(e) => Reply::err(e.to_string()),
                Ok(pipe) => {
                    let tpl = pipe.template();
                    let (tx_ring, rx_ring) = ring_names(tpl.node, id);
                    let attach = AttachInfo {
                        tx_ring,
                        rx_ring,
                        pool: pool_name(tpl.node),
                        ethertype: tpl.ethertype,
                        cluster_id: tpl.cluster_id,
                        node: tpl.node,
                        max_payload: tpl.max_payload,
                        buffer: pipe.params().buffer,
                    };
                    opened.lock().insert(id, (conn, pipe));
                    tracing::info!(pipe = id, "pipe opened for a secondary process");
                    Reply {
                        attach: Some(attach),
                        ..ok
                    }
                }
            }
        }
        Request::ClosePipe { id } => {
            // Only the owner: another process may still use the rings, and
            // they are freed with the pipe.
            let mut o = opened.lock();
            match o.get(&id) {
                Some((owner, _)) if *owner == conn => {
                    o.remove(&id);
                    drop(o);
                    engine.close_pipe(id);
                    ok
                }
                _ => Reply::err(format!("pipe {id} was not opened on this connection")),
            }
        }
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

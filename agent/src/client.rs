//! Using an agent's pipes from another process: the application attaches
//! to the running agent as a DPDK secondary process (shared hugepage
//! memory), asks the agent over its control socket to open a pipe, and
//! then moves frames through the pipe's named rings itself, without a
//! copy through the agent's process. See docs/architecture-secondary.md.
//!
//! ```no_run
//! use agent::client::attach;
//! use agent::engine::pipe::PipeIo;
//! use agent::PipeParams;
//! let a = attach("run/node1.sock".as_ref(), "dmpd-n1", &[]).unwrap();
//! let p = a.open_pipe(5, PipeParams::default()).unwrap();
//! p.send(2, 5, b"hello").unwrap();
//! ```
//!
//! The agent must run on hugepages (not `--no-huge`). The connection to
//! the control socket stays open while the [`Attached`] lives: the agent
//! closes the pipes it opened for this process when it ends, whether the
//! process exits or is killed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use ffi::{Eal, FfiError, Mempool, ProcessType, Ring};
use parking_lot::Mutex;

use crate::ctl::{AttachInfo, Reply, Request};
use crate::engine::pipe::{
    dequeue_message, enqueue_frame, FrameTemplate, Message, PipeIo, PipeParams, SendError,
    SendMeta, PIPE_RING_SLOTS,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("control socket {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("control socket: bad reply: {0}")]
    BadReply(String),
    #[error("agent refused: {0}")]
    Refused(String),
    #[error("EAL (secondary process, file prefix {prefix}): {source}")]
    Eal { prefix: String, source: FfiError },
    #[error("EAL started as a primary process: no agent runs with file prefix {0} (or it runs with --no-huge)")]
    NotSecondary(String),
    #[error("looking up {name} in the agent's memory: {source}")]
    Lookup { name: String, source: FfiError },
}

/// One line-delimited JSON connection to the agent's control socket.
struct Conn {
    w: UnixStream,
    r: BufReader<UnixStream>,
}

impl Conn {
    fn request(&mut self, req: &Request) -> Result<Reply, ClientError> {
        serde_json::to_writer(&mut self.w, req)
            .map_err(|e| ClientError::BadReply(e.to_string()))?;
        self.w.write_all(b"\n")?;
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(ClientError::BadReply(
                "connection closed by the agent".into(),
            ));
        }
        let reply: Reply =
            serde_json::from_str(&line).map_err(|e| ClientError::BadReply(e.to_string()))?;
        if !reply.ok {
            return Err(ClientError::Refused(reply.error.unwrap_or_default()));
        }
        Ok(reply)
    }
}

struct Inner {
    // Field order is drop order: the connection (and with it the pipes the
    // agent opened for us) goes before EAL is cleaned up.
    conn: Mutex<Conn>,
    node: u16,
    _eal: Eal,
}

/// A process attached to a running agent as a DPDK secondary process.
/// Cheap to clone; the pipes it opened keep it alive.
#[derive(Clone)]
pub struct Attached {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Attached(node {})", self.inner.node)
    }
}

/// EAL arguments of a secondary process attached to the agent whose EAL
/// file prefix is `file_prefix`: no PCI scan and no `--vdev` (the agent's
/// devices belong to the agent), and a main lcore id of its own (mempool
/// caches are per lcore id and shared between processes).
pub fn eal_args(file_prefix: &str, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--proc-type=secondary".to_string(),
        format!("--file-prefix={file_prefix}"),
        "--no-pci".to_string(),
        "--log-level=lib.eal:error".to_string(),
    ];
    let has_lcores = extra
        .iter()
        .any(|a| a.starts_with("--lcores") || *a == "-l" || a.starts_with("-l"));
    if !has_lcores {
        let cpus = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .map(|c| c.trim().to_string())
            })
            .unwrap_or_else(|| "0".into());
        v.push(format!("--lcores={}@({cpus})", secondary_lcore()));
    }
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// The main lcore id of a secondary: high ids, away from the agent's
/// (0, 1, ...), spread by pid so that several secondaries of one agent
/// rarely share one (pass `--lcores=ID@CPUS` to choose).
fn secondary_lcore() -> u32 {
    let max = ffi::sys::RTE_MAX_LCORE;
    let span = (max / 2).max(1);
    max - 1 - (std::process::id() % span)
}

/// Attaches to the agent serving `socket`, whose EAL file prefix is
/// `file_prefix` (`eal.file_prefix` of its configuration). Initialises EAL
/// as a secondary process (once per process).
pub fn attach(
    socket: &Path,
    file_prefix: &str,
    extra_eal_args: &[&str],
) -> Result<Attached, ClientError> {
    let s = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: socket.display().to_string(),
        source,
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut conn = Conn {
        w: s.try_clone()?,
        r: BufReader::new(s),
    };
    let st = conn
        .request(&Request::Status)?
        .status
        .ok_or_else(|| ClientError::BadReply("no status".into()))?;
    let node = st["node"]
        .as_u64()
        .ok_or_else(|| ClientError::BadReply("status without node".into()))? as u16;
    let eal =
        Eal::init(eal_args(file_prefix, extra_eal_args)).map_err(|source| ClientError::Eal {
            prefix: file_prefix.to_string(),
            source,
        })?;
    if eal.process_type() != ProcessType::Secondary {
        return Err(ClientError::NotSecondary(file_prefix.to_string()));
    }
    Ok(Attached {
        inner: Arc::new(Inner {
            conn: Mutex::new(conn),
            node,
            _eal: eal,
        }),
    })
}

impl Attached {
    /// The agent's node number.
    pub fn node(&self) -> u16 {
        self.inner.node
    }

    /// Sends one request on this process's control connection.
    pub fn request(&self, req: &Request) -> Result<Reply, ClientError> {
        self.inner.conn.lock().request(req)
    }

    /// The agent's status (as `dmpd-agent status` prints it).
    pub fn status(&self) -> Result<serde_json::Value, ClientError> {
        self.request(&Request::Status)?
            .status
            .ok_or_else(|| ClientError::BadReply("no status".into()))
    }

    /// Nodes the agent can reach now (up in its cluster table, itself
    /// excluded), from its published status.
    pub fn reachable_nodes(&self) -> Result<Vec<u16>, ClientError> {
        let st = self.status()?;
        let mut v: Vec<u16> = st["cluster"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|n| n["state"] == "up")
                    .filter_map(|n| n["node"].as_u64().map(|x| x as u16))
                    .filter(|&n| n != self.inner.node)
                    .collect()
            })
            .unwrap_or_default();
        v.sort_unstable();
        Ok(v)
    }

    /// Has the agent open pipe `id` for this process and attaches to it.
    pub fn open_pipe(&self, id: u16, params: PipeParams) -> Result<RemotePipe, ClientError> {
        let reply = self.request(&Request::OpenPipe {
            id,
            priority: params.priority,
            threshold_bps: params.threshold_bps,
            buffer: params.buffer,
        })?;
        let a: AttachInfo = reply
            .attach
            .ok_or_else(|| ClientError::BadReply("open_pipe reply without attach".into()))?;
        let lookup_err = |name: &str| {
            let name = name.to_string();
            move |source| ClientError::Lookup { name, source }
        };
        let looked_up = (|| {
            let tx = Ring::lookup(&a.tx_ring).map_err(lookup_err(&a.tx_ring))?;
            let rx = Ring::lookup(&a.rx_ring).map_err(lookup_err(&a.rx_ring))?;
            let pool = Mempool::lookup(&a.pool).map_err(lookup_err(&a.pool))?;
            Ok::<_, ClientError>((tx, rx, pool))
        })();
        let (tx, rx, pool) = match looked_up {
            Ok(x) => x,
            Err(e) => {
                let _ = self.request(&Request::ClosePipe { id });
                return Err(e);
            }
        };
        Ok(RemotePipe {
            inner: Arc::new(RemoteInner {
                id,
                tx,
                rx,
                pool,
                tpl: FrameTemplate {
                    ethertype: a.ethertype,
                    cluster_id: a.cluster_id,
                    node: a.node,
                    max_payload: a.max_payload,
                },
                buffer: AtomicU32::new(a.buffer),
                params: Mutex::new(PipeParams {
                    buffer: a.buffer,
                    ..params
                }),
                attached: self.clone(),
            }),
        })
    }
}

struct RemoteInner {
    id: u16,
    tx: Ring,
    rx: Ring,
    pool: Mempool,
    tpl: FrameTemplate,
    /// The buffer limit as the agent last confirmed it (the agent's own
    /// atomic lives in its private heap, not in shared memory).
    buffer: AtomicU32,
    params: Mutex<PipeParams>,
    attached: Attached,
}

impl Drop for RemoteInner {
    fn drop(&mut self) {
        // Best effort: the agent also closes it when the connection ends.
        let _ = self.attached.request(&Request::ClosePipe { id: self.id });
    }
}

/// A pipe used from a secondary process: the same API as [`crate::Pipe`].
/// Clones share the pipe; the last one dropped closes it.
#[derive(Clone)]
pub struct RemotePipe {
    inner: Arc<RemoteInner>,
}

impl std::fmt::Debug for RemotePipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemotePipe({})", self.inner.id)
    }
}

impl RemotePipe {
    pub fn id(&self) -> u16 {
        self.inner.id
    }

    pub fn node(&self) -> u16 {
        self.inner.tpl.node
    }

    pub fn max_payload(&self) -> usize {
        self.inner.tpl.max_payload
    }

    /// Sends `payload` to pipe `dst_pipe` of node `dst_node`, best effort.
    pub fn send(&self, dst_node: u16, dst_pipe: u16, payload: &[u8]) -> Result<(), SendError> {
        self.send_with(dst_node, dst_pipe, SendMeta::default(), payload)
    }

    /// Sends with explicit header fields (reliable streams use this).
    /// Refusals are not counted in the agent's `tx_refused` (the agent's
    /// counters are not in shared memory).
    pub fn send_with(
        &self,
        dst_node: u16,
        dst_pipe: u16,
        meta: SendMeta,
        payload: &[u8],
    ) -> Result<(), SendError> {
        let i = &self.inner;
        enqueue_frame(
            &i.tx,
            &i.pool,
            &i.tpl,
            i.buffer.load(Relaxed),
            i.id,
            (dst_node, dst_pipe),
            meta,
            payload,
        )
    }

    /// Takes one received message, if any.
    pub fn recv(&self) -> Option<Message> {
        dequeue_message(&self.inner.rx)
    }

    /// Messages waiting to be sent.
    pub fn queued(&self) -> u32 {
        self.inner.tx.count()
    }

    fn set(
        &self,
        priority: Option<u8>,
        threshold_bps: Option<u64>,
        buffer: Option<u32>,
    ) -> Result<(), ClientError> {
        self.inner
            .attached
            .request(&Request::SetPipe {
                id: self.inner.id,
                priority,
                threshold_bps,
                buffer,
            })
            .map(|_| ())
    }

    /// Changes the priority (through the agent's control socket).
    pub fn set_priority(&self, p: u8) -> Result<(), ClientError> {
        self.set(Some(p), None, None)?;
        self.inner.params.lock().priority = p;
        Ok(())
    }

    /// Flow threshold in bits per second on the wire (0 = unlimited).
    pub fn set_threshold_bps(&self, bps: u64) -> Result<(), ClientError> {
        self.set(None, Some(bps), None)?;
        self.inner.params.lock().threshold_bps = bps;
        Ok(())
    }

    /// Most messages queued; clamped to the ring's size. Returns the limit.
    pub fn set_buffer(&self, messages: u32) -> Result<u32, ClientError> {
        let b = messages.clamp(1, PIPE_RING_SLOTS - 1);
        self.set(None, None, Some(b))?;
        self.inner.buffer.store(b, Relaxed);
        self.inner.params.lock().buffer = b;
        Ok(b)
    }

    /// The parameters as this process last set them (the agent's feedback
    /// controller may run the pipe below its threshold: see the status).
    pub fn params(&self) -> PipeParams {
        *self.inner.params.lock()
    }
}

impl PipeIo for RemotePipe {
    fn id(&self) -> u16 {
        RemotePipe::id(self)
    }
    fn node(&self) -> u16 {
        RemotePipe::node(self)
    }
    fn max_payload(&self) -> usize {
        RemotePipe::max_payload(self)
    }
    fn send_with(
        &self,
        dst_node: u16,
        dst_pipe: u16,
        meta: SendMeta,
        payload: &[u8],
    ) -> Result<(), SendError> {
        RemotePipe::send_with(self, dst_node, dst_pipe, meta, payload)
    }
    fn recv(&self) -> Option<Message> {
        RemotePipe::recv(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secondary_eal_args_scan_nothing_and_use_a_high_lcore() {
        let a = eal_args("dmpd-n1", &[]);
        assert_eq!(a[0], "--proc-type=secondary");
        assert!(a.contains(&"--file-prefix=dmpd-n1".to_string()));
        assert!(a.contains(&"--no-pci".to_string()));
        assert!(!a
            .iter()
            .any(|x| x.contains("vdev") || x.contains("no-huge")));
        let l = a.iter().find(|x| x.starts_with("--lcores=")).unwrap();
        let id: u32 = l["--lcores=".len()..]
            .split('@')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((ffi::sys::RTE_MAX_LCORE / 2..ffi::sys::RTE_MAX_LCORE).contains(&id));
        let b = eal_args("x", &["--lcores=5@(0)"]);
        assert_eq!(b.iter().filter(|x| x.starts_with("--lcores")).count(), 1);
    }
}

//! The engine: EAL, ports, rings, the polling lcores and the control loop,
//! put together from an [`AgentConfig`]. Applications in the same process
//! open pipes through an [`EngineHandle`].

pub mod control;
pub mod counters;
pub mod pacer;
pub mod pipe;
pub mod shared;
pub mod status;
pub mod worker;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use ffi::{Eal, FfiError, LcoreId, Mempool, Port, PortConfig, Ring, RingFlags, SocketId};
use lb::balancer::{BalancerConfig, Controller};
use tracing::{info, warn};

use crate::config::AgentConfig;
use control::Control;
use counters::{LcoreCounters, QueueCounters};
use pipe::{FrameTemplate, Pipe, PipeParams, PipeShared, MAX_PIPES};
use shared::{DataPathCounters, LcoreSync, PipeTable, PortRt, Routes, Shared};

/// Why the engine could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("DPDK: {0}")]
    Dpdk(#[from] FfiError),
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("protocol configuration: {0}")]
    Protocol(#[from] dmpd::ConfigError),
    #[error("balancer configuration: {0}")]
    Balancer(#[from] lb::LbError),
    #[error("key {id}: {reason}")]
    Key { id: u8, reason: String },
    #[error("pipe {0} is out of range (0..{MAX_PIPES})")]
    PipeId(u16),
    #[error("pipe {0} is already open")]
    PipeOpen(u16),
    #[error("port {name}: {source}")]
    Port { name: String, source: FfiError },
}

/// What applications in the engine's process use.
#[derive(Clone)]
pub struct EngineHandle {
    shared: Arc<Shared>,
    pool: Arc<Mempool>,
    tpl: FrameTemplate,
}

impl EngineHandle {
    /// Opens pipe `id` with its parameters.
    pub fn open_pipe(&self, id: u16, params: PipeParams) -> Result<Pipe, EngineError> {
        if id as usize >= MAX_PIPES {
            return Err(EngineError::PipeId(id));
        }
        if self.shared.pipes.contains(id) {
            return Err(EngineError::PipeOpen(id));
        }
        let p = Arc::new(PipeShared::create(self.shared.node, id, params)?);
        self.shared.pipes.insert(p.clone());
        Ok(Pipe::new(p, self.pool.clone(), self.tpl))
    }

    /// Closes a pipe; frames still queued in it are freed and counted.
    pub fn close_pipe(&self, id: u16) {
        if let Some((p, version)) = self.shared.pipes.remove(id) {
            p.state.store(pipe::PipeState::Closed as u8, Relaxed);
            // No lcore may deliver into its rings after they are drained
            // (those frames would be lost with the rings), and none may
            // hold it after this returns (its ring names are free again).
            if !self
                .shared
                .wait_for_lcores(version, std::time::Duration::from_secs(1))
            {
                warn!(
                    pipe = id,
                    "a polling lcore did not let go of the pipe within 1 s"
                );
            }
            let mut b: ffi::MbufBurst<32> = ffi::MbufBurst::new();
            while p.tx.dequeue_mbufs(&mut b) > 0 || p.rx.dequeue_mbufs(&mut b) > 0 {
                p.counters.tx_dropped.fetch_add(b.len() as u64, Relaxed);
                b.clear();
            }
        }
    }

    /// Republishes pipe priority order after `Pipe::set_priority`.
    pub fn reorder_pipes(&self) {
        self.shared.pipes.reorder();
    }

    pub fn set_balancing(&self, on: bool) {
        self.shared.balancing.store(on, Relaxed);
    }

    pub fn node(&self) -> u16 {
        self.shared.node
    }

    /// Nodes this engine can reach now (in the table, up).
    pub fn reachable_nodes(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.shared.routes.load().nodes.keys().copied().collect();
        v.sort_unstable();
        v
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

pub struct Engine {
    pub control: Control,
    handle: EngineHandle,
    workers: Vec<WorkerThread>,
    eal: Option<Eal>,
}

enum WorkerThread {
    Lcore(LcoreId),
    Thread(std::thread::JoinHandle<i32>),
}

impl Engine {
    /// Initialises EAL from the configuration and starts ports and workers.
    pub fn start(cfg: &AgentConfig) -> Result<Engine, EngineError> {
        cfg.validate()?;
        let keys = cfg.load_keys()?;
        let eal = Eal::init(cfg.eal_args())?;
        let workers = eal.workers();
        let n_workers = workers.len().max(1);
        let n_ports = cfg.ports.len();

        // Enough mbufs for every rx/tx descriptor, the rings and pipes in
        // flight, plus per-lcore caches.
        let per_port: u32 = cfg
            .ports
            .iter()
            .map(|p| (p.rx_queues as u32 + p.tx_queues.max(n_workers as u16) as u32) * 512)
            .sum();
        // 12288 more for the public and control rings and messages queued
        // in pipes; a full pool makes sends fail with NoBuffers (reported).
        let n_mbufs = (per_port + 12288).next_power_of_two() - 1;
        let pool = Arc::new(Mempool::new_pktmbuf(
            &format!("dmpd{}_pool", cfg.node),
            n_mbufs,
            256,
            ffi::MBUF_DEFAULT_BUF_SIZE.max(cfg.mtu + 128 + 18),
            SocketId::ANY,
        )?);

        let mut ports = Vec::with_capacity(n_ports);
        for (i, pc) in cfg.ports.iter().enumerate() {
            let name = pc.name().to_string();
            let wrap = |source| EngineError::Port {
                name: name.clone(),
                source,
            };
            let port = Port::by_name(&name).map_err(wrap)?;
            let tx_queues = pc.tx_queues.max(n_workers as u16);
            let pcfg = PortConfig {
                rx_queues: pc.rx_queues,
                tx_queues,
                rx_desc: 512,
                tx_desc: 512,
                rss: true,
                promiscuous: true,
                mtu: (cfg.mtu != 1500).then_some(cfg.mtu),
            };
            port.configure(&pcfg, &pool).map_err(wrap)?;
            port.start().map_err(wrap)?;
            let mac = match pc.mac_addr() {
                None => port.mac().map_err(wrap)?,
                Some(mac) => {
                    if let Err(e) = port.set_mac(&mac) {
                        // Promiscuous ports receive frames to any address:
                        // the configured one serves in software.
                        info!(port = %name, %e, "device keeps its MAC; the configured one is used in frames");
                    }
                    mac
                }
            };
            let ctl_tx = Ring::create(
                &format!("dmpd{}_ctl{}", cfg.node, i),
                1024,
                SocketId::ANY,
                RingFlags {
                    single_producer: true,
                    single_consumer: true,
                },
            )?;
            info!(port = %name, mac = %status::mac_str(&mac), "port started");
            ports.push(PortRt {
                index: i as u8,
                port,
                name,
                mac,
                rx_queues: pc.rx_queues,
                tx_queues,
                bandwidth_bps: pc.bandwidth_bps(),
                pace: pc.pace,
                ctl_tx,
                rx_counters: (0..pc.rx_queues)
                    .map(|_| QueueCounters::default())
                    .collect(),
                tx_counters: (0..tx_queues).map(|_| QueueCounters::default()).collect(),
                ctl_counters: QueueCounters::default(),
            });
        }
        let public_ring = Ring::create(
            &format!("dmpd{}_public", cfg.node),
            4096,
            SocketId::ANY,
            RingFlags {
                single_producer: n_workers == 1,
                single_consumer: true,
            },
        )?;
        let shared = Arc::new(Shared {
            node: cfg.node,
            cluster_id: cfg.cluster_id,
            ethertype: cfg.ethertype,
            ports,
            public_ring,
            pipes: PipeTable::default(),
            routes: shared::Published::new(Routes::default()),
            lcores: (0..n_workers).map(|_| LcoreCounters::default()).collect(),
            lcore_sync: (0..n_workers).map(|_| LcoreSync::default()).collect(),
            datapath: DataPathCounters::default(),
            quit: AtomicBool::new(false),
            balancing: AtomicBool::new(cfg.balancer.enabled),
        });

        // Protocol node.
        let auth = if keys.is_empty() {
            warn!("control frames are NOT authenticated (allow_unauthenticated = true)");
            dmpd::AuthMode::None
        } else {
            let mut ring: Option<dmpd::KeyRing> = None;
            for (id, key) in &keys {
                let res = match ring.as_mut() {
                    None => dmpd::KeyRing::new(*id, key).map(|r| ring = Some(r)),
                    Some(r) => r.add(*id, key),
                };
                res.map_err(|e| EngineError::Key {
                    id: *id,
                    reason: format!("{e:?}"),
                })?;
            }
            let mut ring = ring.expect("at least one key");
            let last = keys.last().expect("non-empty").0;
            ring.set_send_key(last).map_err(|e| EngineError::Key {
                id: last,
                reason: format!("{e:?}"),
            })?;
            dmpd::AuthMode::Hmac(ring)
        };
        let macs: Vec<dmpd::wire::EthernetAddress> = shared
            .ports
            .iter()
            .map(|p| dmpd::wire::EthernetAddress(p.mac))
            .collect();
        let incarnation = control::wall_clock_ns();
        let mut ncfg = dmpd::NodeConfig::new(cfg.node, cfg.cluster_id, &macs, auth)
            .with_period(dmpd::Duration::from_millis(cfg.heartbeat_ms));
        ncfg.priority = cfg.priority;
        ncfg.ethertype = cfg.ethertype;
        ncfg.miss_limit = cfg.miss_limit;
        ncfg.node_expiry_periods = cfg.node_expiry_periods;
        ncfg.mtu = cfg.mtu as usize;
        ncfg.incarnation = incarnation;
        ncfg.rng_seed = incarnation ^ ((cfg.node as u64) << 48);

        let lbc = Controller::new(n_ports, cfg.balancer.load_config())?;
        let bcfg = BalancerConfig {
            idle_gap_ns: worker::balancer_idle_gap_ns(cfg.balancer.idle_gap_ms),
            ..BalancerConfig::default()
        };

        let tpl = FrameTemplate {
            ethertype: cfg.ethertype,
            cluster_id: cfg.cluster_id,
            node: cfg.node,
            max_payload: cfg.mtu as usize - (dmpd::wire::data::HEADER_LEN - 14),
        };
        let backoff = worker::Backoff {
            after_polls: cfg.idle.backoff_after_polls,
            max_sleep_us: cfg.idle.max_sleep_us,
        };
        let mut threads = Vec::new();
        for w in 0..n_workers {
            let wk = worker::Worker {
                index: w,
                ports: (0..n_ports).filter(|p| p % n_workers == w).collect(),
                balancer: lbc.balancer(bcfg)?,
                backoff,
            };
            let sh = shared.clone();
            match workers.get(w) {
                Some(&lcore) => {
                    eal.launch(lcore, move || worker::run(sh, wk))?;
                    threads.push(WorkerThread::Lcore(lcore));
                }
                None => {
                    // A single-lcore EAL: poll from an ordinary thread.
                    let h = std::thread::Builder::new()
                        .name(format!("dmpd-worker{w}"))
                        .spawn(move || worker::run(sh, wk))
                        .expect("spawn worker thread");
                    threads.push(WorkerThread::Thread(h));
                }
            }
        }
        let rest = || -> Result<(Control, EngineHandle), EngineError> {
            let mut control = Control::new(
                shared.clone(),
                pool.clone(),
                ncfg,
                lbc,
                std::time::Duration::from_millis(cfg.heartbeat_ms),
            )?;
            control.status_json = cfg.status_json.clone();
            let handle = EngineHandle {
                shared: shared.clone(),
                pool: pool.clone(),
                tpl,
            };
            for pc in &cfg.pipes {
                let pipe = handle.open_pipe(
                    pc.id,
                    PipeParams {
                        priority: pc.priority,
                        threshold_bps: (pc.threshold_mbps * 1e6) as u64,
                        buffer: pc.buffer,
                    },
                )?;
                pipe.set_echo(pc.echo);
            }
            Ok((control, handle))
        };
        match rest() {
            Ok((control, handle)) => Ok(Engine {
                control,
                handle,
                workers: threads,
                eal: Some(eal),
            }),
            Err(e) => {
                // The workers are running: stop them before EAL goes, or
                // its clean-up waits for them for ever.
                shared.quit.store(true, Relaxed);
                for w in threads {
                    match w {
                        WorkerThread::Lcore(l) => {
                            eal.wait(l);
                        }
                        WorkerThread::Thread(h) => {
                            let _ = h.join();
                        }
                    }
                }
                Err(e)
            }
        }
    }

    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Runs the control loop until `quit` is set, then leaves the cluster
    /// and stops everything.
    pub fn run(&mut self, quit: &AtomicBool) {
        while !quit.load(Relaxed) {
            let wait = self.control.poll();
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
        self.shutdown();
    }

    /// Sends LEAVE on every port, lets the workers push it out, stops them
    /// and the ports.
    pub fn shutdown(&mut self) {
        if self.eal.is_none() {
            return;
        }
        self.control.leave();
        let shared = self.handle.shared.clone();
        // Give the workers time to drain the control rings.
        for _ in 0..200 {
            if shared.ports.iter().all(|p| p.ctl_tx.count() == 0) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        shared.quit.store(true, Relaxed);
        let eal = self.eal.take().expect("running");
        for w in self.workers.drain(..) {
            match w {
                WorkerThread::Lcore(l) => {
                    eal.wait(l);
                }
                WorkerThread::Thread(h) => {
                    let _ = h.join();
                }
            }
        }
        for p in &shared.ports {
            if let Err(e) = p.port.stop() {
                warn!(port = %p.name, %e, "stop failed");
            }
        }
        info!("engine stopped");
        // EAL stays initialised until process exit: pipes and rings held by
        // applications may still be dropped after this.
        std::mem::forget(eal);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

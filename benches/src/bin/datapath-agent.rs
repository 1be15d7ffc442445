//! The agent's data path on `net_ring` loopback ports, driven through the
//! agent's own engine: `Engine::start` (EAL, ports, one polling lcore),
//! an echo pipe, and DMPD data frames preloaded through `Pipe::send_with`.
//!
//! Each `net_ring` port without arguments is a loopback: what the port
//! sends it receives. So every frame goes round, on the polling lcore:
//! rx burst -> parse and check the DMPD header -> the echo pipe (turned
//! around onto the pipe's tx ring) -> Toeplitz hash of the DMPD five-tuple
//! -> balancer decision -> destination MAC from the routes -> staging ->
//! tx burst, and back. This is `engine::worker::run`, unchanged; the
//! process only sets up what a cluster would: a route to this node (its
//! own ports' MACs, since the ports loop back) and, once per period, the
//! balancer's port samples (what `engine::control` does from the port
//! counters), then counts.
//!
//! Prints one JSON line: frames forwarded by the polling lcore per second
//! over the measured interval, and the checks (drops, per-port share).
//! `benches/datapath.sh` runs it next to `dpdk-testpmd` on the same ports.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::config::AgentConfig;
use agent::engine::pipe::{PipeParams, SendMeta};
use agent::engine::shared::Routes;
use agent::Engine;
use clap::Parser;
use dmpd::wire::data::HEADER_LEN;
use lb::load::PortSample;

#[derive(Parser, Debug)]
#[command(about = "The agent's forwarding path on net_ring loopback ports, in Mpps")]
struct Args {
    /// net_ring loopback ports (net_ring0..).
    #[arg(long, default_value_t = 4)]
    ports: u8,
    /// Frame buffer bytes without FCS (60 = a 64-byte frame on the wire).
    #[arg(long, default_value_t = 60)]
    size: usize,
    /// Frames in flight per port (testpmd's --tx-first sends one burst, 32).
    #[arg(long, default_value_t = 32)]
    inflight: usize,
    /// Distinct flows (packet types 0..flows of the same pipe pair).
    #[arg(long, default_value_t = 64)]
    flows: u8,
    /// Balancing on (the balancer decides every frame) or off (hash modulo
    /// the port count, the paper's baseline).
    #[arg(long, default_value = "on")]
    balancing: String,
    /// EAL --lcores: lcore 0 (this thread) and lcore 1 (the polling lcore).
    #[arg(long, default_value = "0@0,1@1")]
    lcores: String,
    /// EAL memory: `nohuge` (4 KiB pages, `--no-huge -m 256`: runs on any
    /// machine) or `huge` (the 2 MB hugepages scripts/setup reserves, as
    /// DPDK runs in production).
    #[arg(long, default_value = "nohuge")]
    memory: String,
    /// EAL --file-prefix.
    #[arg(long, default_value = "dmpd-datapath")]
    file_prefix: String,
    /// Seconds before counting.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Print the rate every second on stderr.
    #[arg(long)]
    progress: bool,
    /// Seconds counted.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
}

const NODE: u16 = 1;
const PIPE: u16 = 1;
/// Period of the balancer's samples (the agent's heartbeat period would be
/// 1 s by default; shorter here so that several refreshes fall in a run).
const SAMPLE_PERIOD: Duration = Duration::from_millis(100);

fn main() {
    let a = Args::parse();
    if let Err(e) = run(&a) {
        eprintln!("datapath-agent: {e}");
        std::process::exit(1);
    }
}

fn run(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let balancing = match a.balancing.as_str() {
        "on" => true,
        "off" => false,
        other => return Err(format!("--balancing {other}: on or off").into()),
    };
    let mem = match a.memory.as_str() {
        "nohuge" => "\"--no-huge\", \"--no-shconf\", ",
        // Unlinked once mapped: no page files left in /dev/hugepages.
        "huge" => "\"--huge-unlink\", ",
        other => return Err(format!("--memory {other}: huge or nohuge").into()),
    };
    if !(60..=1514).contains(&a.size) {
        return Err(format!("--size {}: 60..=1514 bytes", a.size).into());
    }
    if a.ports == 0 || a.ports > 16 {
        return Err("--ports: 1..=16".into());
    }
    let mut toml = format!(
        r#"
node = {NODE}
cluster_id = 7
allow_unauthenticated = true
[eal]
args = [{mem}"-m", "256", "--no-pci", "--log-level=lib.eal:error"]
file_prefix = "{prefix}"
lcores = "{lcores}"
[balancer]
enabled = {balancing}
[idle]
# Busy polling, as testpmd does.
max_sleep_us = 0
"#,
        prefix = a.file_prefix,
        lcores = a.lcores,
        mem = mem,
    );
    for i in 0..a.ports {
        // Bandwidth: what the samples' utilisation is relative to.
        toml.push_str(&format!(
            "[[port]]\ndevargs = \"net_ring{i}\"\nbandwidth_mbps = 100000\n\
             mac = \"02:00:00:00:00:{:02x}\"\n",
            i + 1
        ));
    }
    let cfg = AgentConfig::from_toml_str(&toml)?;
    let mut engine = Engine::start(&cfg)?;
    let handle = engine.handle();
    let shared = handle.shared().clone();
    if shared.lcores.len() != 1 {
        return Err(format!(
            "expected one polling lcore, EAL gave {} (--lcores {})",
            shared.lcores.len(),
            a.lcores
        )
        .into());
    }
    let n_ports = shared.ports.len();

    // What the control lcore would learn from the cluster: the route to the
    // destination node. The ports loop back, so the destination is this
    // node and its rx ports are our own.
    let macs: Vec<[u8; 6]> = shared.ports.iter().map(|p| p.mac).collect();
    let all = ((1u32 << n_ports) - 1) as u16;
    {
        let lb = &mut engine.control.lb;
        lb.set_remote_node(NODE, &vec![0.0; n_ports], all)?;
        lb.record_samples(&vec![PortSample::default(); n_ports])?;
        lb.publish();
    }
    shared.routes.store(Arc::new(Routes {
        nodes: HashMap::from([(NODE, macs)]),
    }));

    let pipe = handle.open_pipe(
        PIPE,
        PipeParams {
            buffer: 8192,
            ..PipeParams::default()
        },
    )?;
    pipe.set_echo(true);
    let payload = vec![0xa5u8; a.size - HEADER_LEN];
    let total = a.inflight * n_ports;
    for i in 0..total {
        let meta = SendMeta {
            ptype: (i % a.flows.max(1) as usize) as u8,
            seq: i as u32,
            ..SendMeta::default()
        };
        pipe.send_with(NODE, PIPE, meta, &payload)
            .map_err(|e| format!("preloading frame {i}: {e}"))?;
    }

    // Warm-up, then count; the balancer gets each port's utilisation every
    // period, as the control lcore would give it.
    let tx_of = |i: usize| -> u64 {
        shared.ports[i]
            .tx_counters
            .iter()
            .map(|c| c.tx_packets.load(Relaxed))
            .sum()
    };
    let lc = &shared.lcores[0];
    let wire_bits = (a.size.max(60) as f64 + 24.0) * 8.0;
    let mut prev: Vec<u64> = (0..n_ports).map(tx_of).collect();
    let mut prev_at = Instant::now();
    let mut sample = |lb: &mut lb::balancer::Controller| -> Result<(), lb::LbError> {
        let now = Instant::now();
        let dt = now.duration_since(prev_at).as_secs_f64().max(1e-9);
        let cur: Vec<u64> = (0..n_ports).map(tx_of).collect();
        let samples: Vec<PortSample> = (0..n_ports)
            .map(|i| PortSample {
                // tx and rx are the same frames on a loopback port.
                utilisation: (2.0 * (cur[i] - prev[i]) as f64 * wire_bits
                    / (shared.ports[i].bandwidth_bps as f64 * dt))
                    .min(1.0),
                drop_rate: 0.0,
                overflow_rate: 0.0,
            })
            .collect();
        prev = cur;
        prev_at = now;
        lb.record_samples(&samples)?;
        lb.publish();
        Ok(())
    };
    let warm_end = Instant::now() + Duration::from_secs_f64(a.warmup);
    while Instant::now() < warm_end {
        std::thread::sleep(SAMPLE_PERIOD);
        sample(&mut engine.control.lb)?;
    }
    let worker_task = worker_task()?;
    let cpu0 = on_cpu_ns(&worker_task)?;
    let t0 = Instant::now();
    let lc0 = lc.snapshot();
    let ports0: Vec<u64> = (0..n_ports).map(tx_of).collect();
    let pipe0 = pipe.counters();
    let end = t0 + Duration::from_secs_f64(a.seconds);
    // Per-second rates on stderr with --progress: whether a slow run is
    // slow throughout (placement) or in spells (neighbours).
    let (mut p_frames, mut p_cpu, mut p_at) = (lc0.tx_packets, cpu0, t0);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep(SAMPLE_PERIOD.min(end - now));
        sample(&mut engine.control.lb)?;
        if a.progress && p_at.elapsed() >= Duration::from_secs(1) {
            let (f, c) = (lc.snapshot().tx_packets, on_cpu_ns(&worker_task)?);
            eprintln!(
                "progress: {:.1} Mpps per CPU second",
                (f - p_frames) as f64 / ((c - p_cpu) as f64 / 1e9).max(1e-9) / 1e6
            );
            (p_frames, p_cpu, p_at) = (f, c, Instant::now());
        }
    }
    let lc1 = lc.snapshot();
    let dt = t0.elapsed().as_secs_f64();
    let cpu = (on_cpu_ns(&worker_task)? - cpu0) as f64 / 1e9;
    let ports1: Vec<u64> = (0..n_ports).map(tx_of).collect();
    let pipe1 = pipe.counters();
    let frames = lc1.tx_packets - lc0.tx_packets;
    let per_port: Vec<u64> = (0..n_ports).map(|i| ports1[i] - ports0[i]).collect();
    let dp = &shared.datapath;
    let drops = serde_json::json!({
        "foreign": dp.foreign.load(Relaxed),
        "misdelivered": dp.misdelivered.load(Relaxed),
        "no_pipe": dp.no_pipe.load(Relaxed),
        "malformed": dp.malformed.load(Relaxed),
        "no_route": dp.no_route.load(Relaxed),
        "no_port": dp.no_port.load(Relaxed),
        "pipe_rx_dropped": pipe1.rx_dropped,
        "pipe_tx_dropped": pipe1.tx_dropped,
    });
    let echo = serde_json::json!({
        "direct": dp.echo_direct.load(Relaxed),
        "queued": dp.echo_queued.load(Relaxed),
    });
    let out = serde_json::json!({
        "tool": "dmpd-agent",
        "mode": if balancing { "echo+balancing" } else { "echo" },
        "size": a.size,
        "ports": n_ports,
        "inflight": total,
        "seconds": dt,
        "frames": frames,
        "mpps": frames as f64 / dt / 1e6,
        "cpu_seconds": cpu,
        "mpps_per_cpu": frames as f64 / cpu.max(1e-9) / 1e6,
        "rx_frames": lc1.rx_packets - lc0.rx_packets,
        "echoed": pipe1.rx_msgs - pipe0.rx_msgs,
        "per_port_tx": per_port,
        "busy_ratio": lc1.busy_ratio_since(&lc0),
        "frames_per_poll": frames as f64 / (lc1.polls - lc0.polls).max(1) as f64,
        "drops": drops,
        "echo": echo,
        "balancing_active": engine.control.lb.snapshot().balancing(),
    });
    println!("{out}");
    drop(pipe);
    engine.shutdown();
    Ok(())
}

/// The polling lcore's thread: EAL names it `rte-worker-<lcore>`.
fn worker_task() -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    for e in std::fs::read_dir("/proc/self/task")? {
        let dir = e?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with("rte-worker-") {
            return Ok(dir);
        }
    }
    Err("no rte-worker-* thread in /proc/self/task".into())
}

/// Time the thread has run on a CPU, in ns (first field of `schedstat`):
/// on a shared machine the rate per CPU second is the rate per lcore.
fn on_cpu_ns(task: &std::path::Path) -> Result<u64, Box<dyn std::error::Error>> {
    let s = std::fs::read_to_string(task.join("schedstat"))?;
    Ok(s.split_whitespace()
        .next()
        .ok_or("empty schedstat")?
        .parse()?)
}

//! `dmpd-stream`: the example application. It runs the engine in-process
//! (it is a full agent for its node), or attaches to a running agent as a
//! DPDK secondary process (`--attach`), and streams sequenced messages through
//! a pipe to other nodes' pipes, checking what it receives: per source,
//! every message exactly once and in order (reliable mode), or counts of
//! losses, duplicates and reordering (best effort). It writes a JSON report.
//!
//! ```text
//! dmpd-stream --config node1.toml \
//!     --stream pipe=1,to=2:1+3:1,count=10000,rate=2000,reliable \
//!     --stream pipe=2,to=2:2,rate=0,size=1000,priority=7 --report /tmp/n1.json
//! dmpd-stream --attach run/cluster/node1.sock --file-prefix dmpd-n1 \
//!     --stream pipe=5,to=2:5,count=2000,reliable --exit-when-done
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agent::engine::pipe::PipeIo;
use agent::reliable::{ReliableConfig, ReliablePipe};
use agent::{EngineHandle, PipeParams};
use bytes::Bytes;
use clap::Parser;
use serde::Serialize;

#[derive(Parser, Clone)]
#[command(
    name = "dmpd-stream",
    about = "Stream sequenced messages between nodes through DMPD pipes"
)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["config", "attach"])))]
struct Args {
    /// This node's agent configuration (the engine runs in this process).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Instead of running an engine, attach to the agent serving this
    /// control socket as a DPDK secondary process (the agent must run on
    /// hugepages); needs --file-prefix.
    #[arg(long, requires = "file_prefix")]
    attach: Option<PathBuf>,
    /// The agent's EAL file prefix (`eal.file_prefix`, default `dmpd-NODE`).
    #[arg(long, requires = "attach")]
    file_prefix: Option<String>,
    /// A stream: `pipe=ID[,to=NODE:PIPE[+NODE:PIPE...]][,count=N][,rate=MSGS_PER_S]
    /// [,burst=N][,size=BYTES][,reliable][,priority=P][,threshold_mbps=M][,buffer=N]`.
    /// `burst`: messages sent back to back to each destination per send
    /// event (default 1); events then come every burst/rate seconds.
    /// Repeatable; a stream without `to` only receives.
    #[arg(long = "stream", value_parser = parse_stream, required = true)]
    streams: Vec<StreamSpec>,
    /// Stop sending after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Keep running this long after sending is done (to receive, to be acked).
    #[arg(long, default_value_t = 3.0)]
    linger: f64,
    /// Exit when done (otherwise keep serving as an agent until a signal).
    #[arg(long)]
    exit_when_done: bool,
    /// Write the JSON report here (every 500 ms and at the end).
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Debug, Clone)]
struct StreamSpec {
    pipe: u16,
    to: Vec<(u16, u16)>,
    /// Messages per destination (0: until --duration).
    count: u64,
    /// Messages per second per destination (0: as fast as the pipe takes).
    rate: u64,
    /// Messages per destination per send event (trains).
    burst: u64,
    size: usize,
    reliable: bool,
    priority: u8,
    threshold_mbps: f64,
    buffer: u32,
}

fn parse_peer(s: &str) -> Result<(u16, u16), String> {
    let (n, p) = s.split_once(':').ok_or("expected NODE:PIPE")?;
    Ok((
        n.parse().map_err(|e| format!("node: {e}"))?,
        p.parse().map_err(|e| format!("pipe: {e}"))?,
    ))
}

fn parse_stream(s: &str) -> Result<StreamSpec, String> {
    let mut sp = StreamSpec {
        pipe: u16::MAX,
        to: Vec::new(),
        count: 1000,
        rate: 1000,
        burst: 1,
        size: 64,
        reliable: false,
        priority: 0,
        threshold_mbps: 0.0,
        buffer: 1024,
    };
    for kv in s.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{k}: {e}"));
        match k {
            "pipe" => sp.pipe = num(v)? as u16,
            "to" => {
                sp.to = v.split('+').map(parse_peer).collect::<Result<_, _>>()?;
            }
            "count" => sp.count = num(v)?,
            "rate" => sp.rate = num(v)?,
            "burst" => sp.burst = num(v)?,
            "size" => sp.size = num(v)? as usize,
            "reliable" => sp.reliable = true,
            "priority" => sp.priority = num(v)? as u8,
            "threshold_mbps" => sp.threshold_mbps = v.parse().map_err(|e| format!("{k}: {e}"))?,
            "buffer" => sp.buffer = num(v)? as u32,
            _ => return Err(format!("unknown stream field {k:?}")),
        }
    }
    if sp.pipe == u16::MAX {
        return Err("a stream needs pipe=ID".into());
    }
    if sp.size < 16 {
        return Err("size must be at least 16".into());
    }
    if sp.burst == 0 {
        return Err("burst must be at least 1".into());
    }
    Ok(sp)
}

#[derive(Serialize, Default, Clone)]
struct SentStats {
    pushed: u64,
    delivered: u64,
    refused: u64,
    resends: u64,
}

#[derive(Serialize, Default, Clone)]
struct RecvStats {
    messages: u64,
    in_order: u64,
    duplicates: u64,
    out_of_order: u64,
    corrupt: u64,
    /// Highest sequence seen + 1.
    next_expected: u64,
    /// Sequences below next_expected never received (best effort).
    missing: u64,
}

#[derive(Serialize, Default, Clone)]
struct StreamReport {
    pipe: u16,
    /// Payload bytes per message.
    size: usize,
    /// Bytes per frame on the wire without FCS (DMPD data header included,
    /// padded to Ethernet's 60-byte minimum).
    frame_bytes: usize,
    reliable: bool,
    sending_done: bool,
    all_delivered: bool,
    sent: BTreeMap<String, SentStats>,
    received: BTreeMap<String, RecvStats>,
}

#[derive(Serialize, Default, Clone)]
struct Report {
    node: u16,
    elapsed_s: f64,
    done: bool,
    streams: Vec<StreamReport>,
}

fn payload(node: u16, pipe: u16, seq: u64, size: usize) -> Bytes {
    let mut v = vec![0u8; size.max(16)];
    v[0..2].copy_from_slice(&node.to_be_bytes());
    v[2..4].copy_from_slice(&pipe.to_be_bytes());
    v[4..12].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in v[12..].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_add(i as u8);
    }
    Bytes::from(v)
}

/// Checks a received payload; returns its sequence when intact.
fn check(p: &[u8]) -> Option<u64> {
    if p.len() < 16 {
        return None;
    }
    let seq = u64::from_be_bytes(p[4..12].try_into().ok()?);
    p[12..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (seq as u8).wrapping_add(i as u8))
        .then_some(seq)
}

struct Seen {
    stats: RecvStats,
    got: Vec<u64>, // bitmap of seen sequences (best effort)
}

impl Seen {
    fn record(&mut self, seq: u64, reliable: bool) {
        let s = &mut self.stats;
        s.messages += 1;
        let word = (seq / 64) as usize;
        if self.got.len() <= word {
            self.got.resize(word + 1, 0);
        }
        let bit = 1u64 << (seq % 64);
        if self.got[word] & bit != 0 {
            s.duplicates += 1;
            return;
        }
        self.got[word] |= bit;
        if seq == s.next_expected {
            s.in_order += 1;
        } else if seq < s.next_expected {
            s.out_of_order += 1;
        } else {
            if reliable {
                s.out_of_order += 1;
            } else {
                s.in_order += 1;
            }
        }
        s.next_expected = s.next_expected.max(seq + 1);
        let seen: u64 = self.got.iter().map(|w| w.count_ones() as u64).sum();
        s.missing = s.next_expected - seen;
    }
}

struct Stream<P: PipeIo> {
    spec: StreamSpec,
    pipe: P,
    rp: ReliablePipe<P>,
    next_seq: BTreeMap<(u16, u16), u64>,
    sent: BTreeMap<(u16, u16), SentStats>,
    seen: BTreeMap<(u16, u16), Seen>,
    interval: Option<Duration>,
    next_send: Instant,
}

impl<P: PipeIo> Stream<P> {
    fn all_sent(&self, time_up: bool) -> bool {
        self.spec.to.is_empty()
            || time_up
            || (self.spec.count > 0 && self.next_seq.values().all(|&s| s >= self.spec.count))
    }

    fn all_delivered(&self) -> bool {
        !self.spec.reliable || self.rp.is_idle()
    }

    fn step(&mut self, me: u16, reachable: &[u16], time_up: bool, start: Instant) {
        let now = Instant::now();
        let sp = &self.spec;
        if !self.all_sent(time_up) && self.interval.is_none_or(|_| now >= self.next_send) {
            for (&dst, seq) in self.next_seq.iter_mut() {
                if !reachable.contains(&dst.0) {
                    continue;
                }
                let st = self.sent.get_mut(&dst).unwrap();
                for _ in 0..sp.burst {
                    if sp.count > 0 && *seq >= sp.count {
                        break;
                    }
                    let p = payload(me, sp.pipe, *seq, sp.size);
                    let ok = if sp.reliable {
                        self.rp.send(dst, p).is_ok()
                    } else {
                        self.pipe.send(dst.0, dst.1, &p).is_ok()
                    };
                    if ok {
                        *seq += 1;
                        st.pushed += 1;
                    } else {
                        st.refused += 1;
                        break;
                    }
                }
            }
            if let Some(i) = self.interval {
                self.next_send += i;
                if self.next_send < now {
                    self.next_send = now;
                }
            }
        }
        self.rp.poll(start.elapsed().as_nanos() as u64);
        let mut incoming: Vec<((u16, u16), Bytes)> = Vec::new();
        while let Some(d) = self.rp.recv() {
            incoming.push((d.from, d.payload));
        }
        for m in self.rp.other.drain(..) {
            incoming.push(((m.src_node, m.src_pipe), m.payload));
        }
        for (from, p) in incoming {
            let s = self.seen.entry(from).or_insert(Seen {
                stats: RecvStats::default(),
                got: Vec::new(),
            });
            match check(&p) {
                Some(seq) => s.record(seq, self.spec.reliable),
                None => s.stats.corrupt += 1,
            }
        }
        if self.spec.reliable {
            for (&dst, st) in self.sent.iter_mut() {
                st.delivered = self.rp.delivered(dst) as u64;
                st.resends = self.rp.resends(dst);
            }
        }
    }

    fn report(&self, time_up: bool) -> StreamReport {
        StreamReport {
            pipe: self.spec.pipe,
            size: self.spec.size,
            frame_bytes: (dmpd::wire::data::HEADER_LEN + self.spec.size).max(60),
            reliable: self.spec.reliable,
            sending_done: self.all_sent(time_up),
            all_delivered: self.all_sent(time_up) && self.all_delivered(),
            sent: self
                .sent
                .iter()
                .map(|(k, v)| (format!("{}:{}", k.0, k.1), v.clone()))
                .collect(),
            received: self
                .seen
                .iter()
                .map(|(k, v)| (format!("{}:{}", k.0, k.1), v.stats.clone()))
                .collect(),
        }
    }
}

fn params(spec: &StreamSpec) -> PipeParams {
    PipeParams {
        priority: spec.priority,
        threshold_bps: (spec.threshold_mbps * 1e6) as u64,
        buffer: spec.buffer,
    }
}

/// The in-process application: pipes from the engine's handle.
fn app(args: Args, h: EngineHandle, quit: &'static AtomicBool) {
    run_streams(
        &args,
        h.node(),
        |spec| {
            h.open_pipe(spec.pipe, params(spec))
                .map_err(|e| e.to_string())
        },
        || h.reachable_nodes(),
        quit,
    );
}

/// Attached to a running agent: pipes through its control socket and
/// shared memory; reachability from its status (polled every 200 ms).
fn attached_app(args: Args, socket: PathBuf, prefix: String) -> ExitCode {
    let a = match agent::client::attach(&socket, &prefix, &[]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    static QUIT: AtomicBool = AtomicBool::new(false);
    let mut reachable = Vec::new();
    let mut polled: Option<Instant> = None;
    // The loop runs on a thread EAL does not know (lcore id "any"): its
    // mbuf allocations bypass the per-lcore mempool caches, which are
    // shared with the agent by lcore id.
    let a2 = a.clone();
    let t = std::thread::Builder::new()
        .name("dmpd-stream".into())
        .spawn(move || {
            let a = a2;
            run_streams(
                &args,
                a.node(),
                |spec| {
                    a.open_pipe(spec.pipe, params(spec))
                        .map_err(|e| e.to_string())
                },
                || {
                    if polled.is_none_or(|t| t.elapsed() >= Duration::from_millis(200)) {
                        polled = Some(Instant::now());
                        match a.reachable_nodes() {
                            Ok(v) => reachable = v,
                            Err(e) => {
                                eprintln!("error: agent status: {e}");
                                QUIT.store(true, Ordering::SeqCst);
                            }
                        }
                    }
                    reachable.clone()
                },
                &QUIT,
            )
        })
        .expect("spawn the stream thread");
    let ok = t.join().unwrap_or(false);
    drop(a);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The stream loop, over either kind of pipe. Returns false when a pipe
/// could not be opened.
fn run_streams<P: PipeIo + Clone>(
    args: &Args,
    me: u16,
    mut open: impl FnMut(&StreamSpec) -> Result<P, String>,
    mut reachable_nodes: impl FnMut() -> Vec<u16>,
    quit: &AtomicBool,
) -> bool {
    let mut streams = Vec::new();
    for spec in &args.streams {
        let pipe = match open(spec) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: pipe {}: {e}", spec.pipe);
                quit.store(true, Ordering::SeqCst);
                return false;
            }
        };
        streams.push(Stream {
            rp: ReliablePipe::new(pipe.clone(), ReliableConfig::default()),
            pipe,
            next_seq: spec.to.iter().map(|&d| (d, 0)).collect(),
            sent: spec.to.iter().map(|&d| (d, SentStats::default())).collect(),
            seen: BTreeMap::new(),
            interval: (spec.rate > 0)
                .then(|| Duration::from_secs_f64(spec.burst as f64 / spec.rate as f64)),
            next_send: Instant::now(),
            spec: spec.clone(),
        });
    }
    let start = Instant::now();
    let mut last_report = Instant::now();
    let mut done_at: Option<Instant> = None;
    while !quit.load(Ordering::Relaxed) {
        let el = start.elapsed().as_secs_f64();
        let time_up = args.duration.is_some_and(|d| el >= d);
        let reachable = reachable_nodes();
        for s in streams.iter_mut() {
            s.step(me, &reachable, time_up, start);
        }
        let done = streams
            .iter()
            .all(|s| s.all_sent(time_up) && s.all_delivered());
        if done && done_at.is_none() {
            done_at = Some(Instant::now());
        }
        let finished = done_at.is_some_and(|t| t.elapsed().as_secs_f64() >= args.linger);
        if last_report.elapsed() >= Duration::from_millis(500) || finished {
            last_report = Instant::now();
            if let Some(path) = &args.report {
                let r = Report {
                    node: me,
                    elapsed_s: el,
                    done,
                    streams: streams.iter().map(|s| s.report(time_up)).collect(),
                };
                let tmp = path.with_extension("tmp");
                if std::fs::write(&tmp, serde_json::to_vec_pretty(&r).unwrap()).is_ok() {
                    let _ = std::fs::rename(&tmp, path);
                }
            }
        }
        if finished && args.exit_when_done {
            quit.store(true, Ordering::SeqCst);
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match (
        args.config.clone(),
        args.attach.clone(),
        args.file_prefix.clone(),
    ) {
        (Some(config), _, _) => {
            agent::runner::run_agent(&config, Some(Box::new(move |h, q| app(args, h, q))))
        }
        (None, Some(socket), Some(prefix)) => attached_app(args, socket, prefix),
        _ => unreachable!("clap requires --config or --attach with --file-prefix"),
    }
}

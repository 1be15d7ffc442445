//! The data path's echo cut-through on real ports (its own test binary: EAL
//! initialises once per process).
//!
//! The agent's engine runs on four `net_ring` loopback ports (what a port
//! sends it receives), so a node talks to itself: pipe 2 sends numbered
//! messages of 16 flows (packet types) to pipe 1, an echo pipe; the polling
//! lcore receives them, turns them round and sends them straight back out
//! through the flow cache and the balancer; they come in again and land in
//! pipe 2's rx ring. Checked, as an application relies on it: every message
//! comes back exactly once, in order within its flow, with source and
//! destination turned round and the payload intact; the pipes' and the
//! data path's counters add up; the traffic used several ports.
//!
//! The ports are paced to 1 Mb/s. Then 2,048 frames are put on the wire
//! faster than that (32 every 2 ms, on a second tx queue of port 0, from
//! the test thread), so that the staging queues of the paced ports fill:
//! the echo must then queue frames on the pipe's tx ring instead, and the
//! frames of the same flows that come after them too, without losing or
//! reordering any. Both paths must have been taken.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::config::AgentConfig;
use agent::engine::pipe::{enqueue_frame, pool_name, Pipe, PipeParams, SendError, SendMeta};
use agent::engine::shared::{Routes, Shared};
use agent::{Engine, EngineError, EngineHandle};
use ffi::{MbufBurst, Mempool, QueueId, Ring, RingFlags};
use lb::load::PortSample;

const NODE: u16 = 1;
const ECHO: u16 = 1;
const SENDER: u16 = 2;
const PORTS: usize = 4;
const FLOWS: u32 = 16;
/// Messages sent through the sender pipe, and frames put on the wire at once.
const TOTAL: u32 = 6_000;
const BURST_TOTAL: u32 = 2_048;

fn config(prefix: &str, pace_mbps: Option<u32>) -> AgentConfig {
    // Unpaced ports are "10 Gb/s"; paced ones send at most `pace_mbps`.
    let mut toml = format!(
        r#"
node = {NODE}
cluster_id = 7
allow_unauthenticated = true
[eal]
args = ["--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--log-level=lib.eal:error"]
file_prefix = "{prefix}"
lcores = "0@0,1@1"
[balancer]
enabled = true
"#
    );
    for i in 0..PORTS {
        let (bw, pace) = match pace_mbps {
            Some(m) => (m, true),
            None => (10_000, false),
        };
        toml.push_str(&format!(
            "[[port]]\ndevargs = \"net_ring_echo{i}\"\nbandwidth_mbps = {bw}\npace = {pace}\n\
             rx_queues = 2\ntx_queues = 2\n\
             mac = \"02:00:00:00:01:{:02x}\"\n",
            i + 1
        ));
    }
    AgentConfig::from_toml_str(&toml).expect("test config")
}

/// Echo counters and port use over one phase.
struct Outcome {
    echo_direct: u64,
    echo_queued: u64,
    ports_used: usize,
}

fn tx_of(shared: &Shared, i: usize) -> u64 {
    shared.ports[i]
        .tx_counters
        .iter()
        .map(|c| c.tx_packets.load(Relaxed))
        .sum()
}

/// Message `n` of the run: flow `n % FLOWS`, sequence `n / FLOWS` within
/// it, payload `n` repeated.
fn meta_of(n: u32) -> (SendMeta, Vec<u8>) {
    let meta = SendMeta {
        ptype: (n % FLOWS) as u8,
        seq: n / FLOWS,
        ..SendMeta::default()
    };
    (meta, n.to_be_bytes().repeat(8))
}

/// Runs `send` (which puts messages `0..total` on their way to the echo
/// pipe, returning how many it has sent so far, called until all are) and
/// checks what comes back to `sender`.
fn phase(
    shared: &Shared,
    echo: &Pipe,
    sender: &Pipe,
    total: u32,
    mut send: impl FnMut(u32) -> u32,
) -> Outcome {
    let ports0: Vec<u64> = (0..PORTS).map(|i| tx_of(shared, i)).collect();
    let dp = &shared.datapath;
    let (direct0, queued0) = (dp.echo_direct.load(Relaxed), dp.echo_queued.load(Relaxed));
    let (echo0, sender0) = (echo.counters(), sender.counters());
    let mut next_seq = vec![0u32; FLOWS as usize];
    let mut sent = 0u32;
    let mut received = 0u32;
    let deadline = Instant::now() + Duration::from_secs(60);
    while received < total {
        assert!(
            Instant::now() < deadline,
            "only {received} of {total} came back (sent {sent}); data path {:?}",
            shared.datapath
        );
        if sent < total {
            sent = send(sent);
        }
        let mut got_any = false;
        while let Some(m) = sender.recv() {
            got_any = true;
            assert_eq!((m.src_node, m.src_pipe), (NODE, ECHO), "turned round");
            let flow = u32::from(m.ptype);
            assert!(flow < FLOWS, "packet type {flow}");
            assert_eq!(
                m.seq, next_seq[flow as usize],
                "flow {flow}: out of order or lost"
            );
            next_seq[flow as usize] += 1;
            let n = m.seq * FLOWS + flow;
            assert_eq!(&m.payload[..], &meta_of(n).1[..], "payload of {n}");
            received += 1;
        }
        if !got_any {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    // Nothing more arrives: each message came back once.
    std::thread::sleep(Duration::from_millis(100));
    assert!(sender.recv().is_none(), "a message came back twice");

    let (c, s) = (echo.counters(), sender.counters());
    let total = u64::from(total);
    assert_eq!(c.rx_msgs - echo0.rx_msgs, total, "echo pipe received");
    assert_eq!(c.tx_msgs - echo0.tx_msgs, total, "echo pipe sent");
    assert_eq!((c.rx_dropped, c.tx_dropped), (0, 0));
    assert_eq!(s.rx_msgs - sender0.rx_msgs, total, "sender received");
    for (name, v) in [
        ("no_pipe", &dp.no_pipe),
        ("misdelivered", &dp.misdelivered),
        ("malformed", &dp.malformed),
        ("no_route", &dp.no_route),
        ("no_port", &dp.no_port),
    ] {
        assert_eq!(v.load(Relaxed), 0, "data path {name}");
    }
    let echo_direct = dp.echo_direct.load(Relaxed) - direct0;
    let echo_queued = dp.echo_queued.load(Relaxed) - queued0;
    assert_eq!(echo_direct + echo_queued, total, "every echo counted once");
    Outcome {
        echo_direct,
        echo_queued,
        ports_used: (0..PORTS).filter(|&i| tx_of(shared, i) > ports0[i]).count(),
    }
}

/// Puts frames `0..BURST_TOTAL` from the sender pipe to the echo pipe on
/// `wire`, for the test to send on a port itself.
fn put_on_wire(wire: &Ring, pool: &Mempool, sender: &Pipe) {
    for n in 0..BURST_TOTAL {
        let (meta, payload) = meta_of(n);
        enqueue_frame(
            wire,
            pool,
            &sender.template(),
            u32::MAX,
            SENDER,
            (NODE, ECHO),
            meta,
            &payload,
        )
        .unwrap();
    }
}

/// Opens the echo pipe.
fn open_echo(handle: &EngineHandle) -> Result<Pipe, EngineError> {
    let echo = handle.open_pipe(
        ECHO,
        PipeParams {
            buffer: 4096,
            ..PipeParams::default()
        },
    )?;
    echo.set_echo(true);
    Ok(echo)
}

/// A `send` for [`phase`]: messages `sent..total` from `sender` to the
/// echo pipe, as many as the sender pipe takes.
fn send_through(sender: &Pipe, total: u32) -> impl FnMut(u32) -> u32 + '_ {
    move |mut sent| {
        while sent < total {
            let (meta, payload) = meta_of(sent);
            match sender.send_with(NODE, ECHO, meta, &payload) {
                Ok(()) => sent += 1,
                Err(SendError::Full(_)) => break,
                Err(e) => panic!("send {sent}: {e}"),
            }
        }
        sent
    }
}

#[test]
fn echo_turns_every_message_round_once_and_in_order() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (DPDK vdevs)");
        return;
    }
    let mut engine = Engine::start(&config("dmpd-echo-test", Some(1))).expect("engine");
    let handle = engine.handle();
    let shared = handle.shared().clone();
    // What the control lcore would learn from the cluster: the route to
    // this node is its own ports (they loop back).
    let macs: Vec<[u8; 6]> = shared.ports.iter().map(|p| p.mac).collect();
    {
        let lb = &mut engine.control.lb;
        lb.set_remote_node(NODE, &[0.0; PORTS], 0b1111).unwrap();
        lb.record_samples(&[PortSample::default(); PORTS]).unwrap();
        lb.publish();
    }
    shared.routes.store(Arc::new(Routes {
        nodes: HashMap::from([(NODE, macs)]),
    }));
    let echo = open_echo(&handle).unwrap();
    let sender = handle
        .open_pipe(
            SENDER,
            PipeParams {
                buffer: 256,
                ..PipeParams::default()
            },
        )
        .unwrap();

    // Every mbuf taken from the pool is back in it (or in a cache) when
    // the test is done.
    let pool = Mempool::lookup(&pool_name(NODE)).unwrap();
    let in_use0 = pool.in_use_count();

    // 1. Through the sender pipe: pulled, balanced and paced by the worker.
    let piped = phase(&shared, &echo, &sender, TOTAL, send_through(&sender, TOTAL));
    eprintln!(
        "piped: {TOTAL} messages, {} straight back, {} through the tx ring, {} ports used",
        piped.echo_direct, piped.echo_queued, piped.ports_used
    );
    assert!(piped.ports_used >= 2, "16 flows on one port");
    assert!(piped.echo_direct > 0, "the cut-through never ran");

    // 2. Frames from pipe 2 put on port 0's wire by the test, on tx queue
    // 1 (the worker uses queue 0), faster than the paced ports drain.
    let wire = Ring::create(
        "echo_test_wire",
        4096,
        ffi::SocketId::ANY,
        RingFlags::default(),
    )
    .unwrap();
    put_on_wire(&wire, &pool, &sender);
    // net_ring loops tx queue 1 back to rx queue 1, which the worker
    // polls like queue 0.
    let port0 = &shared.ports[0].port;
    // 32 frames every 2 ms: faster than the paced ports drain, and spread
    // out, so that frames keep arriving while earlier ones of their flow
    // wait on the pipe's tx ring (they must not overtake them).
    let mut b: MbufBurst<32> = MbufBurst::new();
    let mut next_at = Instant::now();
    let burst = phase(&shared, &echo, &sender, BURST_TOTAL, |mut sent| {
        if Instant::now() < next_at {
            return sent;
        }
        if b.is_empty() && wire.dequeue_mbufs(&mut b) == 0 {
            return sent;
        }
        sent += port0.tx_burst(QueueId::new(1), &mut b) as u32;
        if b.is_empty() {
            next_at += Duration::from_millis(2);
        }
        sent
    });
    eprintln!(
        "burst: {BURST_TOTAL} frames, {} straight back, {} through the tx ring, {} ports used",
        burst.echo_direct, burst.echo_queued, burst.ports_used
    );
    assert!(
        burst.echo_queued > 0,
        "staging never filled: the ring fallback was not exercised"
    );
    // Every data frame the worker placed (echoes and the sender's frames)
    // went through its flow cache, and the counts are published: at most
    // a handful of flows per snapshot miss.
    std::thread::sleep(Duration::from_millis(20));
    let lc = shared.lcores[0].snapshot();
    eprintln!(
        "flow cache: {} hits, {} misses",
        lc.flow_hits, lc.flow_misses
    );
    assert!(lc.flow_misses > 0, "no flow was ever decided");
    assert!(
        lc.flow_hits > 10 * lc.flow_misses,
        "flow cache: {} hits, {} misses",
        lc.flow_hits,
        lc.flow_misses
    );

    // 3. The echo pipe closed and opened again at once, under the same id
    // (an application that reconnects): closing waits until the polling
    // lcore lets go of the old pipe, so its ring names are free, and the
    // lcore's view of the table takes in the new one.
    drop(echo);
    handle.close_pipe(ECHO);
    let echo = open_echo(&handle).expect("the id of a closed pipe can be opened again at once");
    assert_eq!(echo.counters().rx_msgs, 0, "a new pipe");
    let again = phase(
        &shared,
        &echo,
        &sender,
        TOTAL / 4,
        send_through(&sender, TOTAL / 4),
    );
    assert!(
        again.echo_direct > 0,
        "the reopened pipe was not echoed directly"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        pool.in_use_count(),
        in_use0,
        "mbufs not returned to the pool"
    );

    // 4. The echo pipe closed while frames pour in and the lcore queues
    // them on its tx ring (the paced ports' staging is full): closing
    // drains the rings only once the lcore has let go of the pipe, so no
    // frame is left in them to be lost with them. Frames that arrive
    // after are counted as for no pipe and freed; the echoes still on
    // their way reach the sender (or its full ring, counted and freed).
    put_on_wire(&wire, &pool, &sender);
    let queued0 = shared.datapath.echo_queued.load(Relaxed);
    let mut echo = Some(echo);
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent < BURST_TOTAL as usize {
        assert!(Instant::now() < deadline, "port 0 took only {sent} frames");
        if b.is_empty() {
            wire.dequeue_mbufs(&mut b);
        }
        sent += port0.tx_burst(QueueId::new(1), &mut b);
        if echo.is_some() && shared.datapath.echo_queued.load(Relaxed) > queued0 + 64 {
            drop(echo.take());
            handle.close_pipe(ECHO);
        }
    }
    assert!(
        echo.is_none(),
        "the lcore never queued on the pipe's tx ring"
    );
    // Until the lcore idles, then drain what came back to the sender.
    let mut quiet = 0;
    while quiet < 20 {
        std::thread::sleep(Duration::from_millis(20));
        quiet += 1;
        while sender.recv().is_some() {
            quiet = 0;
        }
    }
    assert!(
        shared.datapath.no_pipe.load(Relaxed) > 0,
        "no frame arrived after the close"
    );
    assert_eq!(
        pool.in_use_count(),
        in_use0,
        "mbufs lost with a closed pipe's rings"
    );
    drop(sender);
    engine.shutdown();
}

//! The Prometheus exporter, checked with the real tools: `promtool check
//! metrics` on a rendered status (and on a running agent's output), the
//! exporter's HTTP server, and a real Prometheus server (Debian's
//! `prometheus`) scraping a real single-port agent and answering PromQL.
//!
//! Needs `promtool` and `prometheus` (package `prometheus`, installed by
//! `scripts/setup`); when they are missing and cannot be installed the tests
//! print why and pass.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use agent::engine::counters::{LcoreSnapshot, QueueSnapshot};
use agent::engine::pipe::PipeCountersSnapshot;
use agent::engine::status::*;
use agent::PipeParams;

// ---------------------------------------------------------------------------
// Helpers

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("dmpd-metrics-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Finds `name` on PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The Prometheus tools, installing Debian's `prometheus` package once if
/// they are missing and we may (root with apt-get). `None` = skip, with the
/// reason printed.
fn prometheus_tools() -> Option<(PathBuf, PathBuf)> {
    static TRIED: StdMutex<bool> = StdMutex::new(false);
    let mut tried = TRIED.lock().unwrap_or_else(|e| e.into_inner());
    if (which("promtool").is_none() || which("prometheus").is_none()) && !*tried {
        *tried = true;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 && which("apt-get").is_some() {
            eprintln!("installing Debian's prometheus package (scripts/setup does this too)");
            let _ = Command::new("apt-get")
                .args([
                    "install",
                    "-y",
                    "-qq",
                    "--no-install-recommends",
                    "prometheus",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status();
        }
    }
    match (which("promtool"), which("prometheus")) {
        (Some(t), Some(p)) => Some((t, p)),
        _ => {
            eprintln!("SKIP: promtool/prometheus not installed and not installable (run scripts/setup as root)");
            None
        }
    }
}

/// A TCP port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.0 GET: (status code, headers, body).
fn http_get(addr: SocketAddr, target: &str) -> std::io::Result<(u16, String, String)> {
    http_request(addr, "GET", target)
}

fn http_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {target} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, head.to_owned(), body.to_owned()))
}

/// Percent-encodes a PromQL expression for a query string.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs `promtool check metrics` on `text`: (success, combined output).
fn promtool_check(promtool: &Path, text: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && msg.trim().is_empty(), msg)
}

/// A running `dmpd-agent run` with one `net_ring0` port; killed on drop.
struct Agent {
    child: Option<Child>,
    metrics: SocketAddr,
    prefix: String,
    _dir: TempDir,
}

impl Agent {
    fn start(dir: TempDir) -> Agent {
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let prefix = format!("dmpd-obs-m-{}", std::process::id());
        let cfg = format!(
            r#"node = 1
cluster_id = 7
heartbeat_ms = 100
allow_unauthenticated = true
control_socket = "{ctl}"
metrics_addr = "{metrics}"

[eal]
args = ["--no-huge", "-m", "256", "--no-pci", "--no-shconf"]
file_prefix = "{prefix}"

[[port]]
devargs = "net_ring0"
"#,
            ctl = dir.path().join("ctl.sock").display(),
        );
        let file = dir.path().join("node.toml");
        std::fs::write(&file, cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_dmpd-agent"))
            .arg("run")
            .arg("--config")
            .arg(&file)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dmpd-agent");
        Agent {
            child: Some(child),
            metrics,
            prefix,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("agent.log")).unwrap_or_default()
    }

    /// Waits until `/metrics` answers 200 with a port series; the body.
    fn wait_ready(&mut self, timeout: Duration) -> String {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("agent exited early ({st}):\n{}", self.log());
            }
            if let Ok((200, _, body)) = http_get(self.metrics, "/metrics") {
                if body.contains("dmpd_port_rx_packets_total{")
                    && body.contains("dmpd_rounds_total{node=\"1\"} ")
                {
                    return body;
                }
            }
            assert!(
                t0.elapsed() < timeout,
                "agent's /metrics not ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then the exit code (SIGKILL after 20 s).
    fn stop(&mut self) -> Option<i32> {
        common::stop_gracefully(self.child.take()?)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // EAL's runtime directory (root: /var/run/dpdk/<prefix>).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&self.prefix));
        }
    }
}

/// A child process killed (SIGTERM, then SIGKILL) on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        // SAFETY: sends a signal to our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------
// A hand-built status

fn sample_status() -> Status {
    let mut st = Status {
        node: 1,
        cluster_id: 7,
        incarnation: 1_700_000_000,
        role: "master".into(),
        master: Some(1),
        term: 4,
        uptime_ms: 12_345,
        heartbeat_ms: 100,
        ..Default::default()
    };
    for (n, state) in [(1u16, "alive"), (2, "alive"), (3, "suspect")] {
        st.cluster.push(NodeStatus {
            node: n,
            state: state.into(),
            priority: 100,
            incarnation: 99,
            version: 1,
            last_heard_ms_ago: 50,
            cores: 2,
            cpu_util: 0.25,
            load1: 0.5,
            mem_util: 0.4,
            ports: vec![
                PeerPortStatus {
                    idx: 0,
                    mac: "02:00:00:00:00:01".into(),
                    up: true,
                    reachable: true,
                    usable: true,
                    utilisation: 0.1,
                    load: 0.12,
                    rtt_us: 35.5,
                },
                PeerPortStatus {
                    idx: 1,
                    mac: "02:00:00:00:00:02".into(),
                    up: false,
                    reachable: false,
                    ..Default::default()
                },
            ],
            pipes: vec![],
        });
    }
    for i in 0..2u8 {
        st.ports.push(LocalPortStatus {
            idx: i,
            name: if i == 0 {
                "net_ring0".into()
            } else {
                "weird \"name\\\n".into()
            },
            mac: format!("02:00:00:00:01:0{i}"),
            link_up: true,
            up: i == 0,
            bandwidth_mbps: 1000,
            rate_bps: 1.5e6,
            utilisation: 0.0015,
            loss_rate: 0.0,
            overflow_rate: f64::NAN,
            load: 0.002,
            counters: QueueSnapshot {
                rx_packets: 100 + u64::from(i),
                rx_bytes: 6400,
                tx_packets: 90,
                tx_bytes: 5760,
                drops: 1,
                errors: 2,
                ring_full: 3,
            },
            ethdev_rx_packets: 101,
            ethdev_tx_packets: 91,
            ethdev_rx_bytes: 6464,
            ethdev_tx_bytes: 5824,
            ethdev_rx_missed: 0,
            ethdev_rx_errors: 0,
            ethdev_tx_errors: 0,
        });
    }
    st.balancer = BalancerStatus {
        enabled: true,
        mean: 0.001,
        balance_degree: 0.1,
        threshold: 1.86,
        balancing: false,
        loads: vec![0.002, 0.0],
    };
    st.pipes.push(PipeStatus {
        id: 5,
        params: PipeParams {
            priority: 3,
            threshold_bps: 10_000_000,
            buffer: 512,
        },
        cap_bps: 0,
        state: "open".into(),
        queued: 7,
        tx_rate_bps: 8000.0,
        counters: PipeCountersSnapshot {
            tx_msgs: 11,
            tx_bytes: 1100,
            rx_msgs: 12,
            rx_bytes: 1200,
            tx_refused: 1,
            rx_dropped: 2,
            tx_dropped: 3,
            tx_deferred: 4,
        },
    });
    st.rejects = vec![
        ("frame for another cluster".into(), 5),
        ("authentication tag mismatch".into(), 0),
        ("Some New Reason, not known yet!".into(), 1),
    ];
    st.datapath = vec![("foreign".into(), 9), ("no_pipe".into(), 0)];
    st.echo = vec![("direct".into(), 70), ("queued".into(), 3)];
    st.lcores = vec![
        LcoreSnapshot {
            rx_packets: 10,
            tx_packets: 20,
            polls: 1000,
            idle_polls: 900,
            sleeps: 5,
            flow_hits: 400,
            flow_misses: 6,
        };
        2
    ];
    st.round = RoundStatus {
        rounds: 123,
        frames_sent: 246,
        bytes_sent: 30_000,
        frames_received: 240,
        last_round_bytes: 244,
        last_round_wire_bytes: 300,
        last_round_frames: 2,
        control_loop_max_us: 1500,
    };
    st.system = SystemStatus {
        cores: 2,
        cpu_util: 0.3,
        load1: 0.7,
        load5: 0.6,
        load15: 0.5,
        io_load: 0.01,
        mem_total_bytes: 8 << 30,
        mem_util: 0.45,
        temperature_c: Some(48.5),
        hugepage_size_bytes: 2 << 20,
        rss_bytes: 50 << 20,
    };
    st.watchdog_stalls = 0;
    st
}

/// Sample lines as (series, value); checks every sample has a TYPE above.
fn samples(text: &str) -> Vec<(String, String)> {
    let mut typed = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_whitespace().next().unwrap();
            assert!(typed.insert(name.to_owned()), "TYPE twice for {name}");
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            assert!(typed.contains(name), "sample without TYPE: {line}");
            out.push((series.to_owned(), value.to_owned()));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn render_has_expected_series() {
    let text = agent::metrics::render(&sample_status());
    let s = samples(&text);
    let get = |series: &str| -> &str {
        &s.iter()
            .find(|(k, _)| k == series)
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .1
    };
    let memory = (8u64 << 30).to_string();
    let rss = (50u64 << 20).to_string();
    let expected: [(&str, &str); 38] = [
        (r#"dmpd_port_rx_packets_total{node="1",port="0"}"#, "100"),
        (r#"dmpd_port_rx_packets_total{node="1",port="1"}"#, "101"),
        (r#"dmpd_port_ring_full_total{node="1",port="0"}"#, "3"),
        (
            r#"dmpd_port_utilisation_ratio{node="1",port="0"}"#,
            "0.0015",
        ),
        (r#"dmpd_port_overflow_ratio{node="1",port="0"}"#, "NaN"),
        (r#"dmpd_port_up{node="1",port="1"}"#, "0"),
        (r#"dmpd_port_link_up{node="1",port="1"}"#, "1"),
        (
            r#"dmpd_port_info{node="1",port="1",name="weird \"name\\\n",mac="02:00:00:00:01:01"}"#,
            "1",
        ),
        (
            r#"dmpd_frames_rejected_total{node="1",reason="wrong_cluster"}"#,
            "5",
        ),
        (
            r#"dmpd_frames_rejected_total{node="1",reason="bad_mac"}"#,
            "0",
        ),
        (
            r#"dmpd_frames_rejected_total{node="1",reason="some_new_reason_not_known_yet"}"#,
            "1",
        ),
        (
            r#"dmpd_datapath_dropped_frames_total{node="1",reason="foreign"}"#,
            "9",
        ),
        (
            r#"dmpd_datapath_echo_frames_total{node="1",path="direct"}"#,
            "70",
        ),
        (
            r#"dmpd_datapath_echo_frames_total{node="1",path="queued"}"#,
            "3",
        ),
        (
            r#"dmpd_lcore_flow_cache_hits_total{node="1",lcore="1"}"#,
            "400",
        ),
        (
            r#"dmpd_lcore_flow_cache_misses_total{node="1",lcore="0"}"#,
            "6",
        ),
        (r#"dmpd_master{node="1",master="1"}"#, "1"),
        (r#"dmpd_is_master{node="1"}"#, "1"),
        (r#"dmpd_term{node="1"}"#, "4"),
        (r#"dmpd_cluster_nodes{node="1",state="alive"}"#, "2"),
        (r#"dmpd_cluster_nodes{node="1",state="suspect"}"#, "1"),
        (
            r#"dmpd_peer_port_rtt_seconds{node="1",peer="2",port="0"}"#,
            "0.0000355",
        ),
        (r#"dmpd_pipe_tx_messages_total{node="1",pipe="5"}"#, "11"),
        (
            r#"dmpd_pipe_threshold_bytes_per_second{node="1",pipe="5"}"#,
            "1250000",
        ),
        (r#"dmpd_pipe_priority{node="1",pipe="5"}"#, "3"),
        (r#"dmpd_pipe_queued_messages{node="1",pipe="5"}"#, "7"),
        (r#"dmpd_pipe_tx_refused_total{node="1",pipe="5"}"#, "1"),
        (r#"dmpd_balance_degree{node="1"}"#, "0.1"),
        (r#"dmpd_balancer_active{node="1"}"#, "0"),
        (r#"dmpd_balancer_mean_load_ratio{node="1"}"#, "0.001"),
        (r#"dmpd_node_load1{node="1"}"#, "0.7"),
        (r#"dmpd_node_memory_bytes{node="1"}"#, &memory),
        (r#"dmpd_node_temperature_celsius{node="1"}"#, "48.5"),
        (r#"dmpd_lcore_idle_polls_total{node="1",lcore="1"}"#, "900"),
        (r#"dmpd_round_bytes{node="1"}"#, "244"),
        (r#"dmpd_control_loop_max_seconds{node="1"}"#, "0.0015"),
        (r#"dmpd_rss_bytes{node="1"}"#, &rss),
        (r#"dmpd_watchdog_stalls_total{node="1"}"#, "0"),
    ];
    for (series, want) in expected {
        assert_eq!(get(series), want, "{series}");
    }
    // No series twice.
    let mut keys: Vec<&String> = s.iter().map(|x| &x.0).collect();
    keys.sort();
    let n = keys.len();
    keys.dedup();
    assert_eq!(n, keys.len(), "duplicate series");
    // No master: no dmpd_master series, is_master 0.
    let mut st = sample_status();
    st.master = None;
    let text = agent::metrics::render(&st);
    assert!(!text.contains("dmpd_master{"));
    assert!(text.contains("dmpd_is_master{node=\"1\"} 0\n"));
    // An empty status renders too.
    samples(&agent::metrics::render(&Status::default()));
}

#[test]
fn promtool_accepts_rendered_status() {
    let Some((promtool, _)) = prometheus_tools() else {
        return;
    };
    for st in [sample_status(), Status::default()] {
        let text = agent::metrics::render(&st);
        let (ok, msg) = promtool_check(&promtool, &text);
        assert!(
            ok,
            "promtool check metrics failed:\n{msg}\n--- input ---\n{text}"
        );
    }
}

#[test]
fn http_server_serves_metrics_only() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let status = Arc::new(parking_lot::Mutex::new(sample_status()));
    agent::metrics::serve(addr, status.clone()).expect("serve");
    // A client that connects and says nothing must not block others forever.
    let _idle = TcpStream::connect(addr).unwrap();
    let t0 = Instant::now();
    let (code, head, body) = http_get(addr, "/metrics").unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(code, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(body.contains("dmpd_port_rx_packets_total{node=\"1\",port=\"0\"} 100\n"));
    assert_eq!(http_get(addr, "/metrics?x=1").unwrap().0, 200);
    // The server reads the live status each time.
    status.lock().term = 77;
    assert!(http_get(addr, "/metrics")
        .unwrap()
        .2
        .contains("dmpd_term{node=\"1\"} 77\n"));
    assert_eq!(http_get(addr, "/").unwrap().0, 404);
    assert_eq!(http_get(addr, "/metricsx").unwrap().0, 404);
    assert_eq!(http_request(addr, "POST", "/metrics").unwrap().0, 405);
    let (code, _, body) = http_request(addr, "HEAD", "/metrics").unwrap();
    assert_eq!((code, body.as_str()), (200, ""));
    // A second exporter on the same address is an error, not a panic.
    assert!(agent::metrics::serve(addr, status).is_err());
}

/// A real agent scraped by a real Prometheus server, queried with PromQL.
#[test]
fn prometheus_scrapes_a_running_agent() {
    let Some((promtool, prometheus)) = prometheus_tools() else {
        return;
    };
    let mut agent = Agent::start(TempDir::new("agent"));
    let body = agent.wait_ready(Duration::from_secs(60));
    // The live output passes promtool too.
    let (ok, msg) = promtool_check(&promtool, &body);
    assert!(ok, "promtool on the agent's output:\n{msg}\n{body}");

    let dir = TempDir::new("prometheus");
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: dmpd\n    static_configs:\n      - targets: ['{}']\n",
            agent.metrics
        ),
    )
    .unwrap();
    let (ok, msg) = {
        let out = Command::new(&promtool)
            .args(["check", "config"])
            .arg(&cfg)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(ok, "promtool check config: {msg}");
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let prom = Killed(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let prom_log =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    // PromQL over the HTTP API until the series shows up.
    let query = |q: &str| -> Option<serde_json::Value> {
        let (code, _, body) =
            http_get(web, &format!("/api/v1/query?query={}", urlencode(q))).ok()?;
        if code != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["status"] == "success").then(|| v["data"]["result"].clone())
    };
    let t0 = Instant::now();
    let series = loop {
        if let Some(r) = query("dmpd_port_rx_packets_total") {
            if let Some(s) = r.as_array().and_then(|a| a.first()) {
                break s.clone();
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "Prometheus never returned dmpd_port_rx_packets_total\n--- prometheus ---\n{}\n--- agent ---\n{}",
            prom_log(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("PromQL dmpd_port_rx_packets_total -> {series}");
    let m = &series["metric"];
    assert_eq!(m["__name__"], "dmpd_port_rx_packets_total");
    assert_eq!(m["node"], "1");
    assert_eq!(m["port"], "0");
    assert_eq!(m["job"], "dmpd");
    assert_eq!(m["instance"], agent.metrics.to_string());

    // The scrape is healthy (Prometheus parsed every line) ...
    let up = query("up{job=\"dmpd\"}").unwrap();
    assert_eq!(up[0]["value"][1], "1", "{up}");
    let (_, _, targets) = http_get(web, "/api/v1/targets").unwrap();
    let targets: serde_json::Value = serde_json::from_str(&targets).unwrap();
    let t = &targets["data"]["activeTargets"][0];
    assert_eq!(t["health"], "up", "{t}");
    assert_eq!(t["lastError"], "", "{t}");
    // ... and PromQL arithmetic works on our series: rounds advance (at most
    // one per 100 ms heartbeat; fewer on a loaded machine), the port's
    // label joins with its info series.
    let t0 = Instant::now();
    loop {
        let r = query("rate(dmpd_rounds_total[5s])").unwrap_or_default();
        let rate: f64 = r[0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if rate > 0.5 {
            eprintln!("PromQL rate(dmpd_rounds_total[5s]) -> {rate}");
            assert!(rate < 20.0, "rounds rate {rate}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "rounds do not advance: {r}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let joined = query("dmpd_port_up * on(node, port) group_left(name) dmpd_port_info").unwrap();
    eprintln!("PromQL port_up joined with info -> {joined}");
    assert_eq!(joined[0]["metric"]["name"], "net_ring0", "{joined}");
    let hb = query("dmpd_heartbeat_period_seconds").unwrap();
    assert_eq!(hb[0]["value"][1], "0.1", "{hb}");

    drop(prom);
    assert_eq!(agent.stop(), Some(0), "agent exit code\n{}", agent.log());
}

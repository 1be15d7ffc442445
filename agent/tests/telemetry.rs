//! The agent's DPDK telemetry commands, queried with Debian's
//! `dpdk-telemetry.py` (package `dpdk`) against a real single-port agent,
//! next to DPDK's built-in `/ethdev/list`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const CLIENT: &str = "dpdk-telemetry.py";

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// DPDK's runtime directory for a file prefix (EAL's and the client's rule).
fn runtime_dir(prefix: &str) -> PathBuf {
    let base = match std::env::var_os("RUNTIME_DIRECTORY") {
        Some(d) => PathBuf::from(d),
        // SAFETY: getuid has no preconditions.
        None if unsafe { libc::getuid() } == 0 => PathBuf::from("/var/run"),
        None => std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp")),
    };
    base.join("dpdk").join(prefix)
}

/// A running single-port agent; killed and cleaned up on drop.
struct Agent {
    child: Option<Child>,
    dir: PathBuf,
    prefix: String,
}

impl Agent {
    fn start(name: &str) -> Agent {
        let dir =
            std::env::temp_dir().join(format!("dmpd-telemetry-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let prefix = format!("dmpd-obs-t-{}-{name}", std::process::id());
        // No --no-shconf: the telemetry socket lives in the runtime
        // directory named after the file prefix.
        let cfg = format!(
            r#"node = 1
cluster_id = 7
heartbeat_ms = 100
allow_unauthenticated = true
control_socket = "{ctl}"

[eal]
args = ["--no-huge", "-m", "256", "--no-pci"]
file_prefix = "{prefix}"

[[port]]
devargs = "net_ring0"
"#,
            ctl = dir.join("ctl.sock").display(),
        );
        let file = dir.join("node.toml");
        std::fs::write(&file, cfg).unwrap();
        let log = std::fs::File::create(dir.join("agent.log")).unwrap();
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
            dir,
            prefix,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    fn socket(&self) -> PathBuf {
        runtime_dir(&self.prefix).join("dpdk_telemetry.v2")
    }

    fn check_alive(&mut self) {
        if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("agent exited early ({st}):\n{}", self.log());
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
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(runtime_dir(&self.prefix));
    }
}

/// Runs the client with `cmds` on stdin: one parsed JSON reply per command.
fn query(client: &Path, prefix: &str, cmds: &[&str]) -> Vec<Value> {
    let mut child = Command::new(client)
        .args(["-f", prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dpdk-telemetry.py");
    let mut input = cmds.join("\n");
    input.push('\n');
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{CLIENT} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON from {CLIENT} ({e}): {l}"))
        })
        .collect()
}

#[test]
fn dpdk_telemetry_py_queries_dmpd_commands() {
    let Some(client) = which(CLIENT) else {
        eprintln!("SKIP: {CLIENT} not installed (package dpdk; run scripts/setup)");
        return;
    };
    let mut agent = Agent::start("a");
    // Wait for the socket, then for a status with a few rounds.
    let t0 = Instant::now();
    let status = loop {
        agent.check_alive();
        if agent.socket().exists() {
            let r = query(&client, &agent.prefix, &["/dmpd/status"]);
            if let Some(s) = r.first().map(|v| v["/dmpd/status"].clone()) {
                if s["rounds"].as_u64().unwrap_or(0) >= 3 {
                    break s;
                }
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no telemetry from the agent at {}\n{}",
            agent.socket().display(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    eprintln!("/dmpd/status -> {status}");
    assert_eq!(status["node"], 1);
    assert_eq!(status["cluster_id"], 7);
    assert_eq!(status["ports"], 1);
    assert_eq!(status["heartbeat_ms"], 100);
    assert!(status["role"].is_string());
    assert!(status["rejects"].is_object(), "{status}");

    let cmds = [
        "/",
        "/dmpd/ports",
        "/dmpd/ports,0",
        "/dmpd/ports,9",
        "/dmpd/cluster",
        "/dmpd/pipes",
        "/dmpd/lb",
        "/ethdev/list",
        "/help,/dmpd/ports",
        "/dmpd/cluster,1",
    ];
    let r = query(&client, &agent.prefix, &cmds);
    assert_eq!(r.len(), cmds.len(), "{r:?}");
    for (c, v) in cmds.iter().zip(&r) {
        eprintln!("{c} -> {v}");
    }

    // Our commands are listed next to DPDK's.
    let list: Vec<&str> = r[0]["/"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for c in [
        "/dmpd/status",
        "/dmpd/cluster",
        "/dmpd/ports",
        "/dmpd/pipes",
        "/dmpd/lb",
        "/ethdev/list",
    ] {
        assert!(list.contains(&c), "{c} not in {list:?}");
    }

    // /dmpd/ports: port 0 is net_ring0, with counters that match the PMD's.
    let ports = &r[1]["/dmpd/ports"];
    let p0 = &ports["0"];
    assert_eq!(p0["name"], "net_ring0", "{ports}");
    assert_eq!(p0["idx"], 0);
    assert!(p0["mac"].as_str().unwrap().len() == 17, "{p0}");
    assert!(
        p0["tx_packets"].as_u64().unwrap() > 0,
        "heartbeats were sent: {p0}"
    );
    assert!(p0["bandwidth_mbps"].as_u64().unwrap() == 1000);
    assert!(p0["utilisation_ppm"].is_u64());
    // The single-port form.
    assert_eq!(r[2]["/dmpd/ports"]["name"], "net_ring0", "{}", r[2]);
    // A port that does not exist answers null, and the agent survives it.
    assert!(r[3]["/dmpd/ports"].is_null(), "{}", r[3]);

    // /dmpd/cluster: term and master as the status says; a dict per node.
    let cl = &r[4]["/dmpd/cluster"];
    assert!(cl["term"].is_u64(), "{cl}");
    assert!(cl["nodes"].is_u64(), "{cl}");
    let me = &cl["1"];
    assert_eq!(me["node"], 1, "{cl}");
    assert_eq!(me["ports"], 1, "{cl}");
    assert_eq!(
        me["ports_up_mask"], 1,
        "port 0 hears its own heartbeats: {cl}"
    );
    // The single-node form carries the node's ports.
    let one = &r[9]["/dmpd/cluster"];
    assert_eq!(one["node"], 1, "{one}");
    assert_eq!(one["port0"]["up"], 1, "{one}");
    assert!(one["port0"]["rtt_ns"].is_u64(), "{one}");
    assert!(r[5]["/dmpd/pipes"].is_object(), "{}", r[5]);
    let lb = &r[6]["/dmpd/lb"];
    assert!(
        lb["enabled"].is_u64() && lb["mean_load_ppm"].is_u64(),
        "{lb}"
    );
    assert_eq!(lb["loads_ppm"].as_array().map(|a| a.len()), Some(1), "{lb}");
    assert!(
        lb["balance_degree_pct"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .is_ok(),
        "{lb}"
    );

    // DPDK's built-in command answers too: one ethdev, port 0.
    assert_eq!(r[7]["/ethdev/list"], serde_json::json!([0]), "{}", r[7]);
    assert!(
        r[8]["/help"]["/dmpd/ports"]
            .as_str()
            .unwrap()
            .contains("DMPD"),
        "{}",
        r[8]
    );

    // The agent stayed up through all of it and stops cleanly.
    agent.check_alive();
    assert_eq!(agent.stop(), Some(0), "agent exit code\n{}", agent.log());
}

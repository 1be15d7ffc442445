//! The TOML configuration: defaults, every validation rule, the example
//! file, key files.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use agent::config::{AgentConfig, ConfigError};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("dmpd-config-{}-{n}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = self.0.join(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const TOP: &str = "node = 3\ncluster_id = 7\nallow_unauthenticated = true\n";
const PORT: &str = "[[port]]\ndevargs = \"net_af_packet0,iface=p0\"\n";

/// The minimal valid configuration plus `top` (top-level keys) and
/// `tables` (sections after the port).
fn cfg(top: &str, tables: &str) -> Result<AgentConfig, ConfigError> {
    AgentConfig::from_toml_str(&format!("{TOP}{top}\n{PORT}{tables}\n"))
}

/// Asserts that `r` is an `Invalid` error for `field` and that its message
/// names the field.
fn assert_invalid(r: Result<AgentConfig, ConfigError>, field: &str) {
    match r {
        Err(e @ ConfigError::Invalid { .. }) => {
            let ConfigError::Invalid { field: f, reason } = &e else {
                unreachable!()
            };
            assert_eq!(f, field, "wrong field; reason: {reason}");
            assert!(!reason.is_empty());
            let msg = e.to_string();
            assert!(msg.contains(field), "{msg:?} does not name {field}");
        }
        other => panic!("expected Invalid for {field}, got {other:?}"),
    }
}

#[test]
fn defaults_are_applied() {
    let c = cfg("", "").unwrap();
    assert_eq!(c.node, 3);
    assert_eq!(c.priority, 100);
    assert_eq!(c.cluster_id, 7);
    assert_eq!(c.ethertype, 0x88B5);
    assert_eq!(c.heartbeat_ms, 1000);
    assert_eq!(c.heartbeat_period(), std::time::Duration::from_secs(1));
    assert_eq!(c.miss_limit, 3);
    assert_eq!(c.node_expiry_periods, 5);
    assert_eq!(c.mtu, 1500);
    assert_eq!(c.key_file, None);
    assert!(c.allow_unauthenticated);
    assert_eq!(c.control_socket, Path::new("/run/dmpd/dmpd-3.sock"));
    assert_eq!(c.metrics_addr, None);
    assert_eq!(c.status_json, None);
    assert_eq!(c.eal.args, ["--no-huge", "-m", "256", "--no-pci"]);
    assert_eq!(c.eal.file_prefix.as_deref(), Some("dmpd-3"));
    assert_eq!(c.eal.lcores, None);
    assert_eq!(c.ports.len(), 1);
    let p = &c.ports[0];
    assert_eq!(p.name(), "net_af_packet0");
    assert!(p.is_vdev());
    assert_eq!(p.bandwidth_mbps, 1000);
    assert_eq!(p.bandwidth_bps(), 1_000_000_000);
    assert!(!p.pace);
    assert_eq!((p.rx_queues, p.tx_queues), (1, 1));
    let b = &c.balancer;
    assert!(b.enabled);
    assert_eq!(b.weights, [0.84, 0.09, 0.07]);
    assert_eq!(b.gamma, 0.8);
    assert_eq!(b.threshold, 1.86);
    assert_eq!(b.expected_load, None);
    assert_eq!(b.idle_gap_ms, 50);
    assert_eq!(b.load_config(), lb::load::LoadConfig::default());
    assert_eq!(c.idle.backoff_after_polls, 256);
    assert_eq!(c.idle.max_sleep_us, 1000);
    assert!(c.pipes.is_empty());
    assert_eq!(
        c.eal_args(),
        [
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--file-prefix=dmpd-3",
            "--vdev=net_af_packet0,iface=p0"
        ]
    );
}

#[test]
fn explicit_values_are_kept() {
    let c = cfg(
        "priority = 0\nethertype = 0x88B6\nheartbeat_ms = 250\nmtu = 9000\n\
         control_socket = \"/tmp/x.sock\"\nmetrics_addr = \"127.0.0.1:9100\"\n\
         status_json = \"/tmp/s.json\"",
        "[[port]]\ndevargs = \"net_tap0,iface=t0\"\nbandwidth_mbps = 100\npace = true\n\
         rx_queues = 2\ntx_queues = 4\n\
         [eal]\nargs = [\"--no-huge\"]\nfile_prefix = \"x\"\nlcores = \"(0,1)@(0-1)\"\n\
         [balancer]\nenabled = false\nweights = [1.0, 0.0, 0.0]\nexpected_load = 0.5\n\
         [idle]\nmax_sleep_us = 0\n\
         [[pipe]]\nid = 1\npriority = 7\nthreshold_mbps = 10.5\nbuffer = 256\nreliable = true\n\
         [[pipe]]\nid = 2",
    )
    .unwrap();
    assert_eq!(c.priority, 0);
    assert_eq!(c.ethertype, 0x88B6);
    assert_eq!(c.mtu, 9000);
    assert_eq!(c.metrics_addr, Some("127.0.0.1:9100".parse().unwrap()));
    assert_eq!(c.ports[1].name(), "net_tap0");
    assert!(c.ports[1].pace);
    assert_eq!((c.ports[1].rx_queues, c.ports[1].tx_queues), (2, 4));
    assert!(!c.balancer.enabled);
    assert_eq!(c.balancer.expected_load, Some(0.5));
    assert_eq!(c.idle.max_sleep_us, 0);
    assert_eq!(c.pipes.len(), 2);
    assert_eq!(
        (c.pipes[0].priority, c.pipes[0].buffer, c.pipes[0].reliable),
        (7, 256, true)
    );
    assert_eq!(
        (
            c.pipes[1].priority,
            c.pipes[1].threshold_mbps,
            c.pipes[1].buffer
        ),
        (0, 0.0, 1024)
    );
    assert_eq!(
        c.eal_args(),
        [
            "--no-huge",
            "--file-prefix=x",
            "--lcores=(0,1)@(0-1)",
            "--vdev=net_af_packet0,iface=p0",
            "--vdev=net_tap0,iface=t0"
        ]
    );
    assert!(c.to_string().contains("net_af_packet0 net_tap0"));
}

#[test]
fn top_level_rules() {
    assert_invalid(
        AgentConfig::from_toml_str(&format!("node = 0\ncluster_id = 1\n{PORT}")),
        "node",
    );
    assert_invalid(
        AgentConfig::from_toml_str(&format!(
            "node = 65535\ncluster_id = 1\nallow_unauthenticated = true\n{PORT}"
        )),
        "node",
    );
    assert_invalid(cfg("ethertype = 0x05DC", ""), "ethertype");
    assert_invalid(cfg("heartbeat_ms = 9", ""), "heartbeat_ms");
    assert_invalid(cfg("heartbeat_ms = 60001", ""), "heartbeat_ms");
    assert!(cfg("heartbeat_ms = 10", "").is_ok());
    assert!(cfg("heartbeat_ms = 60000", "").is_ok());
    assert_invalid(cfg("miss_limit = 0", ""), "miss_limit");
    assert_invalid(cfg("node_expiry_periods = 0", ""), "node_expiry_periods");
    // dmpd needs room for a full control segment: 1500 at least.
    assert_invalid(cfg("mtu = 1499", ""), "mtu");
    assert_invalid(cfg("mtu = 9001", ""), "mtu");
    assert!(cfg("mtu = 1500", "").is_ok());
    assert!(cfg("mtu = 9000", "").is_ok());
    assert_invalid(
        cfg("control_socket = \"\"\nstatus_json = \"\"", ""),
        "status_json",
    );
    assert_invalid(cfg("key_file = \"\"", ""), "key_file");
}

#[test]
fn key_file_or_explicit_unauthenticated() {
    let no_key = format!("node = 1\ncluster_id = 1\n{PORT}");
    assert_invalid(AgentConfig::from_toml_str(&no_key), "key_file");
    let e = AgentConfig::from_toml_str(&no_key).unwrap_err().to_string();
    assert!(e.contains("allow_unauthenticated"), "{e}");
    let with_key = format!("node = 1\ncluster_id = 1\nkey_file = \"/etc/dmpd/k\"\n{PORT}");
    assert!(AgentConfig::from_toml_str(&with_key).is_ok());
}

#[test]
fn eal_rules() {
    assert_invalid(cfg("", "[eal]\nfile_prefix = \"a/b\""), "eal.file_prefix");
    assert_invalid(cfg("", "[eal]\nfile_prefix = \"\""), "eal.file_prefix");
    assert_invalid(cfg("", "[eal]\nlcores = \"\""), "eal.lcores");
    assert_invalid(cfg("", "[eal]\nargs = [\"--file-prefix=x\"]"), "eal.args");
    assert_invalid(cfg("", "[eal]\nargs = [\"--lcores\", \"0@0\"]"), "eal.args");
    assert_invalid(
        cfg("", "[eal]\nargs = [\"-l\", \"0\"]\nlcores = \"0\""),
        "eal.args",
    );
    assert!(cfg("", "[eal]\nargs = [\"-l\", \"0\"]").is_ok());
}

#[test]
fn port_rules() {
    let none = AgentConfig::from_toml_str(TOP);
    assert_invalid(none, "port");
    let mut many = TOP.to_owned();
    for i in 0..17 {
        many += &format!("[[port]]\ndevargs = \"net_null{i}\"\n");
    }
    assert_invalid(AgentConfig::from_toml_str(&many), "port");
    assert!(AgentConfig::from_toml_str(&many[..many.rfind("[[port]]").unwrap()]).is_ok());
    assert_invalid(
        cfg("", "[[port]]\ndevargs = \"net_af_packet0,iface=p1\""),
        "port[1].devargs",
    );
    assert_invalid(cfg("", "[[port]]\ndevargs = \"\""), "port[1].devargs");
    assert_invalid(
        cfg("", "[[port]]\ndevargs = \",iface=x\""),
        "port[1].devargs",
    );
    assert_invalid(
        cfg("", "[[port]]\ndevargs = \"net_tap0, iface=x\""),
        "port[1].devargs",
    );
    assert_invalid(
        cfg("", "[[port]]\ndevargs = \"0000:01:00.0\""),
        "port[1].devargs",
    );
    assert!(cfg("", "[[port]]\ndevargs = \"0000:01:00.0\"\n[eal]\nargs = []").is_ok());
    assert_invalid(
        cfg("", "[[port]]\ndevargs = \"net_null0\"\nbandwidth_mbps = 0"),
        "port[1].bandwidth_mbps",
    );
    assert_invalid(
        cfg("", "[[port]]\ndevargs = \"net_null0\"\nrx_queues = 0"),
        "port[1].rx_queues",
    );
    assert_invalid(
        cfg("", "[[port]]\ndevargs = \"net_null0\"\ntx_queues = 1025"),
        "port[1].tx_queues",
    );
    let mac = |m: &str| {
        cfg(
            "",
            &format!("[[port]]\ndevargs = \"net_ring0\"\nmac = \"{m}\""),
        )
    };
    let ok = mac("02:00:00:00:0a:FF").unwrap();
    assert_eq!(ok.ports[1].mac_addr(), Some([2, 0, 0, 0, 0x0a, 0xff]));
    assert_eq!(ok.ports[0].mac_addr(), None, "default: the device's");
    assert!(mac("02-00-00-00-00-01").is_ok());
    for bad in [
        "02:00:00:00:00",
        "02:00:00:00:00:01:02",
        "2:00:00:00:00:01",
        "zz:00:00:00:00:01",
        "01:00:5e:00:00:01",
        "00:00:00:00:00:00",
    ] {
        assert_invalid(mac(bad), "port[1].mac");
    }
}

#[test]
fn balancer_rules() {
    let b = |s: &str| cfg("", &format!("[balancer]\n{s}"));
    assert_invalid(b("weights = [1.5, -0.5, 0.0]"), "balancer.weights[0]");
    assert_invalid(b("weights = [0.5, 0.5, -0.0001]"), "balancer.weights[2]");
    assert_invalid(b("weights = [0.5, 0.4, 0.0]"), "balancer.weights");
    assert!(b("weights = [0.5, 0.3, 0.2]").is_ok());
    assert_invalid(b("gamma = 1.01"), "balancer.gamma");
    assert_invalid(b("gamma = nan"), "balancer.gamma");
    assert_invalid(b("threshold = -0.1"), "balancer.threshold");
    assert_invalid(b("threshold = inf"), "balancer.threshold");
    assert_invalid(b("hysteresis = 2.0"), "balancer.hysteresis");
    assert_invalid(b("rx_margin = -1.0"), "balancer.rx_margin");
    assert_invalid(b("expected_load = 1.5"), "balancer.expected_load");
    // Whatever this crate accepts, the lb crate accepts too.
    let c =
        b("weights = [0.2, 0.3, 0.5]\ngamma = 0.0\nthreshold = 0.0\nexpected_load = 1.0").unwrap();
    assert_eq!(c.balancer.load_config().validate(), Ok(()));
}

#[test]
fn idle_and_pipe_rules() {
    assert_invalid(
        cfg("", "[idle]\nbackoff_after_polls = 0"),
        "idle.backoff_after_polls",
    );
    assert_invalid(
        cfg("", "[idle]\nmax_sleep_us = 1000001"),
        "idle.max_sleep_us",
    );
    let p = |s: &str| cfg("", &format!("[[pipe]]\nid = 1\n{s}"));
    assert_invalid(p("buffer = 1000"), "pipe[0].buffer");
    assert_invalid(p("buffer = 1"), "pipe[0].buffer");
    assert_invalid(p("buffer = 2097152"), "pipe[0].buffer");
    assert!(p("buffer = 2").is_ok());
    assert_invalid(p("threshold_mbps = -1.0"), "pipe[0].threshold_mbps");
    assert_invalid(p("[[pipe]]\nid = 1"), "pipe[1].id");
}

#[test]
fn schema_errors_are_parse_errors_with_position() {
    for (text, needle) in [
        (format!("{TOP}colour = 1\n{PORT}"), "unknown field `colour`"),
        (
            format!("{TOP}{PORT}[balancer]\nwieghts = [1.0, 0.0, 0.0]\n"),
            "unknown field `wieghts`",
        ),
        (format!("{TOP}{PORT}speed = 10\n"), "unknown field `speed`"),
        (format!("cluster_id = 1\n{PORT}"), "missing field `node`"),
        (format!("{TOP}priority = 300\n{PORT}"), "priority"),
        (
            format!("{TOP}heartbeat_ms = \"fast\"\n{PORT}"),
            "heartbeat_ms",
        ),
        (
            format!("{TOP}metrics_addr = \"localhost\"\n{PORT}"),
            "metrics_addr",
        ),
        (
            format!("{TOP}{PORT}[balancer]\nweights = [1.0, 0.0]\n"),
            "weights",
        ),
    ] {
        match AgentConfig::from_toml_str(&text) {
            Err(ConfigError::Parse { path, message }) => {
                assert_eq!(path, Path::new("<string>"));
                assert!(message.contains(needle), "{message:?} lacks {needle:?}");
                assert!(message.contains("line"), "{message:?} has no position");
            }
            other => panic!("expected a parse error for {needle}, got {other:?}"),
        }
    }
}

#[test]
fn from_file_reports_path_and_resolves_relative_paths() {
    let dir = TempDir::new("file");
    let missing = dir.0.join("nope.toml");
    let e = AgentConfig::from_file(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("nope.toml") && msg.contains("No such file"),
        "{msg}"
    );

    let bad = dir.write("bad.toml", "node = 1\nnode = 2\n", 0o644);
    let msg = AgentConfig::from_file(&bad).unwrap_err().to_string();
    assert!(msg.contains("bad.toml") && msg.contains("line 2"), "{msg}");

    let text =
        format!("node = 2\ncluster_id = 1\nkey_file = \"k\"\nstatus_json = \"/abs.json\"\n{PORT}");
    let good = dir.write("node.toml", &text, 0o644);
    let c = AgentConfig::from_file(&good).unwrap();
    assert_eq!(c.key_file, Some(dir.0.join("k")));
    assert_eq!(c.status_json.as_deref(), Some(Path::new("/abs.json")));
    assert_eq!(c.control_socket, Path::new("/run/dmpd/dmpd-2.sock"));
}

#[test]
fn example_file_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/node.toml");
    let c = AgentConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.node, 1);
    assert!(c.key_file.is_some());
    assert!(!c.ports.is_empty());
    // The example spells out the defaults: it must agree with the code.
    let minimal = cfg("", "").unwrap();
    assert_eq!(c.balancer, minimal.balancer);
    assert_eq!(c.idle, minimal.idle);
    assert_eq!(
        (
            c.priority,
            c.ethertype,
            c.miss_limit,
            c.node_expiry_periods,
            c.mtu
        ),
        (100, 0x88B5, 3, 5, 1500)
    );
}

const KEY_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn keys_of(dir: &TempDir, text: &str, mode: u32) -> Result<Vec<(u8, Vec<u8>)>, ConfigError> {
    let path = dir.write("cluster.key", text, mode);
    let mut c = cfg("", "").unwrap();
    c.key_file = Some(path);
    c.load_keys()
}

#[test]
fn key_file_good() {
    let dir = TempDir::new("keygood");
    let long = "ab".repeat(64);
    let text = format!(
        "# cluster keys\n\n  3:{KEY_A}  # old\n200:{}\n1:{long}\n",
        KEY_A.to_uppercase()
    );
    let keys = keys_of(&dir, &text, 0o600).unwrap();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0].0, 3);
    assert_eq!(keys[0].1[..4], [0x00, 0x11, 0x22, 0x33]);
    assert_eq!(keys[0].1.len(), 32);
    assert_eq!(keys[1], (200, keys[0].1.clone()));
    // The last line is the send key.
    assert_eq!(keys.last().unwrap().0, 1);
    assert_eq!(keys[2].1, vec![0xab; 64]);
    assert!(keys_of(&dir, &format!("1:{KEY_A}\n"), 0o400).is_ok());
    // No key file configured: no keys.
    assert_eq!(cfg("", "").unwrap().load_keys().unwrap(), vec![]);
}

#[test]
fn key_file_readable_by_others_is_refused() {
    let dir = TempDir::new("keymode");
    for mode in [0o644, 0o640, 0o604, 0o601] {
        let e = keys_of(&dir, &format!("1:{KEY_A}\n"), mode).unwrap_err();
        match &e {
            ConfigError::KeyFilePermissions { path, mode: m } => {
                assert!(path.ends_with("cluster.key"));
                assert_eq!(*m, mode);
            }
            other => panic!("expected KeyFilePermissions, got {other:?}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains("cluster.key") && msg.contains(&format!("{mode:04o}")),
            "{msg}"
        );
    }
}

#[test]
fn key_file_format_errors() {
    let dir = TempDir::new("keyfmt");
    for (text, line, needle) in [
        (format!("1:{}zz\n", &KEY_A[2..]), 1, "hex digit"),
        (format!("1:{}\n", &KEY_A[1..]), 1, "odd number"),
        (format!("# c\n1:{}\n", &KEY_A[..62]), 2, "31 bytes"),
        (format!("1:{}\n", "ab".repeat(65)), 1, "65 bytes"),
        (format!("0:{KEY_A}\n"), 1, "reserved"),
        (format!("256:{KEY_A}\n"), 1, "key id"),
        (format!("x:{KEY_A}\n"), 1, "key id"),
        (KEY_A.to_owned(), 1, "KEYID:HEX"),
        (format!("1:{KEY_A}\n1:{KEY_A}\n"), 2, "twice"),
        (
            (1..=9).map(|i| format!("{i}:{KEY_A}\n")).collect(),
            9,
            "more than 8",
        ),
        ("# nothing\n\n".to_owned(), 0, "no key"),
        (String::new(), 0, "no key"),
    ] {
        match keys_of(&dir, &text, 0o600) {
            Err(e @ ConfigError::KeyFormat { .. }) => {
                let ConfigError::KeyFormat {
                    line: l, reason, ..
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!(*l, line, "{reason}");
                assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
                assert!(e.to_string().contains("cluster.key"));
            }
            other => panic!("expected KeyFormat ({needle}), got {other:?}"),
        }
    }
}

#[test]
fn key_file_missing() {
    let mut c = cfg("", "").unwrap();
    c.key_file = Some(PathBuf::from("/nonexistent/dmpd/cluster.key"));
    let e = c.load_keys().unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("/nonexistent/dmpd/cluster.key") && msg.contains("No such file"),
        "{msg}"
    );
}

//! The emulated cluster, for real: network namespaces, veth pairs, a Linux
//! bridge as the switch, one agent process per node over net_af_packet.
//! Heartbeat period 250 ms (two cores carry every process). Clocks start
//! when a fault is injected. Needs root; tests run one at a time because
//! the namespaces have fixed names.

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agent::ctl::{request, Request};
use serde_json::Value;

mod common;

use common::cluster::Cluster;

const PERIOD_MS: u64 = 250;
static SERIAL: Mutex<()> = Mutex::new(());

fn periods(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0 / PERIOD_MS as f64
}

/// Every node in `live` answers, agrees on one master among `live`, and
/// lists every node of `live` as up with `ports` ports up.
fn converged(c: &Cluster, live: &[u16], ports: usize) -> Option<u16> {
    let mut master = None;
    let mut masters = 0;
    for &i in live {
        let st = c.status(i)?;
        let m = st["master"].as_u64()? as u16;
        if *master.get_or_insert(m) != m || !live.contains(&m) {
            return None;
        }
        if st["role"] == "master" {
            masters += 1;
        }
        for &j in live {
            let n = st["cluster"]
                .as_array()?
                .iter()
                .find(|n| n["node"] == j as u64)?;
            if n["state"] != "up" {
                return None;
            }
            let ps = n["ports"].as_array()?;
            if ps.len() != ports || !ps.iter().all(|p| p["usable"] == true) {
                return None;
            }
        }
    }
    (masters == 1).then_some(master?)
}

fn all_answer(c: &Cluster, nodes: &[u16]) -> bool {
    nodes.iter().all(|&i| c.status(i).is_some())
}

#[test]
fn three_nodes_elect_a_master_and_converge_then_fail_over_and_rejoin() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = Cluster::up("failover", 3, 4, PERIOD_MS);
    for i in 1..=3 {
        c.start(i, &[]);
    }
    let all = [1u16, 2, 3];
    c.wait(Duration::from_secs(20), |c| all_answer(c, &all))
        .unwrap_or_else(|| panic!("agents did not start\n{}", c.logs()));
    let t = c
        .wait(Duration::from_secs(10), |c| converged(c, &all, 4).is_some())
        .unwrap_or_else(|| panic!("no convergence\n{}", c.logs()));
    eprintln!(
        "converged {:.1} periods after every agent answered",
        periods(t)
    );
    assert!(
        periods(t) <= 3.0 + 1.0,
        "convergence took {:.1} periods",
        periods(t)
    );
    let master = converged(&c, &all, 4).unwrap();

    // The status JSON says what the test observes.
    let st = c.status(master).unwrap();
    assert_eq!(st["role"], "master");
    assert_eq!(st["ports"].as_array().unwrap().len(), 4);
    assert!(st["ports"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["up"] == true));
    assert_eq!(st["cluster"].as_array().unwrap().len(), 3);
    let term = st["term"].as_u64().unwrap();

    // SIGKILL the master: the others elect a new one within 4 periods.
    let rest: Vec<u16> = all.iter().copied().filter(|&i| i != master).collect();
    c.kill(master, "KILL");
    let t = c
        .wait(Duration::from_secs(10), |c| {
            rest.iter().all(|&i| {
                c.status(i).is_some_and(|s| {
                    s["master"].as_u64().is_some_and(|m| m as u16 != master)
                        && s["master"] == c.status(rest[0]).unwrap()["master"]
                })
            })
        })
        .unwrap_or_else(|| panic!("no failover\n{}", c.logs()));
    eprintln!("failover in {:.2} periods", periods(t));
    assert!(periods(t) <= 4.0, "failover took {:.2} periods", periods(t));
    let new_master = c.status(rest[0]).unwrap()["master"].as_u64().unwrap() as u16;
    let new_term = c.status(new_master).unwrap()["term"].as_u64().unwrap();
    assert!(new_term > term, "a new master runs a higher term");

    // The killed node restarts and rejoins without disturbing the master.
    c.start(master, &[]);
    let mut disturbed = false;
    c.wait(Duration::from_secs(15), |c| {
        for &i in &rest {
            if let Some(s) = c.status(i) {
                if s["master"].as_u64() != Some(new_master as u64)
                    || s["term"].as_u64() != Some(new_term)
                {
                    disturbed = true;
                }
            }
        }
        converged(c, &all, 4) == Some(new_master)
    })
    .unwrap_or_else(|| panic!("restarted node did not rejoin\n{}", c.logs()));
    assert!(!disturbed, "the rejoin changed the master or the term");
    assert_eq!(
        c.status(new_master).unwrap()["term"].as_u64(),
        Some(new_term)
    );
}

#[test]
fn a_port_down_is_seen_everywhere_and_reliable_streams_lose_nothing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = Cluster::up("portdown", 3, 4, PERIOD_MS);
    let count = 6000;
    c.start(3, &[]);
    let s1 = format!("pipe=1,to=2:1,count={count},rate=1000,size=200,reliable");
    let s2 = format!("pipe=1,to=1:1,count={count},rate=1000,size=200,reliable");
    let r1 = c.run.join("app1.json");
    let r2 = c.run.join("app2.json");
    c.start(1, &["--stream", &s1, "--report", r1.to_str().unwrap()]);
    c.start(2, &["--stream", &s2, "--report", r2.to_str().unwrap()]);
    let all = [1u16, 2, 3];
    c.wait(Duration::from_secs(20), |c| converged(c, &all, 4).is_some())
        .unwrap_or_else(|| panic!("no convergence\n{}", c.logs()));
    // Let traffic flow over every port for a while.
    std::thread::sleep(Duration::from_millis(1500));
    let tx_before: u64 = port_tx(&c, 2, 1);
    assert!(tx_before > 0);

    c.port_down(2, 1);
    let t = c
        .wait(Duration::from_secs(10), |c| {
            all.iter().all(|&i| {
                c.status(i).is_some_and(|s| {
                    s["cluster"].as_array().is_some_and(|ns| {
                        ns.iter().any(|n| {
                            n["node"] == 2
                                && n["ports"].as_array().is_some_and(|ps| {
                                    ps.iter().any(|p| p["idx"] == 1 && p["usable"] == false)
                                })
                        })
                    })
                })
            })
        })
        .unwrap_or_else(|| panic!("port down not seen\n{}", c.logs()));
    eprintln!("port down seen on every node in {:.2} periods", periods(t));
    // K = 3 periods without responses on that port, then the next round's
    // table (a quarter period later) carries it to every node.
    assert!(periods(t) <= 3.0 + 2.0, "took {:.2} periods", periods(t));

    // Traffic moved: node 2 no longer sends data on its dead port.
    let a = port_tx(&c, 2, 1);
    std::thread::sleep(Duration::from_millis(1000));
    let b = port_tx(&c, 2, 1);
    assert!(
        b - a <= 8,
        "node 2 still sends on its dead port ({} frames in 1 s)",
        b - a
    );

    // Every message exactly once, in order, both ways.
    let done = |c: &Cluster| {
        ["app1.json", "app2.json"].iter().all(|f| {
            c.report(f).is_some_and(|r| {
                // The receiver's report is rewritten every 500 ms: wait
                // until it shows every message, not merely some.
                r["streams"][0]["all_delivered"] == true
                    && r["streams"][0]["received"]
                        .as_object()
                        .is_some_and(|m| m.values().any(|v| v["messages"].as_u64() >= Some(count)))
            })
        })
    };
    c.wait(Duration::from_secs(40), done)
        .unwrap_or_else(|| panic!("streams did not finish\n{}", c.logs()));
    for f in ["app1.json", "app2.json"] {
        let r = c.report(f).unwrap();
        let s = &r["streams"][0];
        for (_, v) in s["sent"].as_object().unwrap() {
            assert_eq!(v["delivered"], count, "{f}: {s}");
        }
        for (_, v) in s["received"].as_object().unwrap() {
            assert_eq!(
                v["messages"].as_u64().unwrap() - v["duplicates"].as_u64().unwrap(),
                count
            );
            assert_eq!(v["in_order"], count, "{f}: {s}");
            assert_eq!(v["out_of_order"], 0, "{f}");
            assert_eq!(v["corrupt"], 0, "{f}");
        }
    }
}

/// Data frames node `i` sent on port `p` (our tx counters, control excluded
/// is not possible from the status; control adds a few frames a period).
fn port_tx(c: &Cluster, i: u16, p: usize) -> u64 {
    c.status(i).unwrap()["ports"][p]["counters"]["tx_packets"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_paced_port_carries_exactly_what_was_sent_at_its_bandwidth() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = Cluster::up("pacing", 2, 1, PERIOD_MS);
    // Node 1's single port is paced to 20 Mb/s.
    c.edit_config(1, |s| {
        s.replace("bandwidth_mbps = 1000", "bandwidth_mbps = 20")
            .replace("pace = false", "pace = true")
    });
    let n = 8000u64;
    let size = 1000usize; // payload; frame = 40-byte header + payload
    let s1 = format!("pipe=1,to=2:1,count={n},rate=0,size={size},buffer=512");
    let r1 = c.run.join("app1.json");
    let r2 = c.run.join("app2.json");
    c.start(2, &["--stream", "pipe=1", "--report", r2.to_str().unwrap()]);
    // Node 1 floods as soon as node 2 is in its table; record who leads.
    c.start(1, &["--stream", &s1, "--report", r1.to_str().unwrap()]);
    let master0 = c
        .wait(Duration::from_secs(20), |c| {
            converged(c, &[1, 2], 1).is_some()
        })
        .and_then(|_| converged(&c, &[1, 2], 1))
        .map(|m| Value::from(m as u64))
        .unwrap_or_else(|| panic!("no convergence\n{}", c.logs()));
    let term0 = c.status(1).unwrap()["term"].clone();
    // Sample node 1's reported utilisation while it sends.
    let mut utils = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(PERIOD_MS));
        let Some(st) = c.status(1) else { continue };
        let pushed = c
            .report("app1.json")
            .and_then(|r| r["streams"][0]["sent"]["2:1"]["pushed"].as_u64())
            .unwrap_or(0);
        if pushed > n / 5 && pushed < n * 4 / 5 {
            utils.push(st["ports"][0]["utilisation"].as_f64().unwrap());
        }
        if c.report("app2.json")
            .is_some_and(|r| r["streams"][0]["received"]["1:1"]["messages"].as_u64() == Some(n))
        {
            break;
        }
    }
    let r2 = c.report("app2.json").expect("receiver report");
    let got = &r2["streams"][0]["received"]["1:1"];
    assert_eq!(got["messages"], n, "every frame arrived: {got}");
    assert_eq!(got["missing"], 0);
    assert_eq!(got["duplicates"], 0);
    // The engines' own counters agree (their status is rebuilt each period).
    c.wait(Duration::from_secs(3), |c| {
        c.status(1)
            .is_some_and(|s| s["pipes"][0]["counters"]["tx_msgs"] == n)
            && c.status(2)
                .is_some_and(|s| s["pipes"][0]["counters"]["rx_msgs"] == n)
    })
    .unwrap_or_else(|| {
        panic!(
            "engine counters differ: tx {} rx {}",
            c.status(1).unwrap()["pipes"][0]["counters"],
            c.status(2).unwrap()["pipes"][0]["counters"]
        )
    });
    // The saturated port did not delay heartbeats into a false failover.
    for i in [1, 2] {
        let st = c.status(i).unwrap();
        assert_eq!(st["term"], term0, "node {i}: term changed under load");
        assert_eq!(st["master"], master0, "node {i}: master changed under load");
    }
    // Mid-run utilisation is the paced rate: 100% of 20 Mb/s within 5%.
    utils.sort_by(f64::total_cmp);
    assert!(utils.len() >= 3, "too few samples: {utils:?}");
    let median = utils[utils.len() / 2];
    eprintln!("utilisation samples {utils:?}, median {median:.4}");
    assert!(
        (0.95..=1.05).contains(&median),
        "reported utilisation {median} not within 5% of the paced rate"
    );
}

#[test]
fn pipe_thresholds_priorities_and_runtime_changes() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = Cluster::up("pipes", 2, 1, PERIOD_MS);
    c.edit_config(1, |s| {
        s.replace("bandwidth_mbps = 1000", "bandwidth_mbps = 20")
            .replace("pace = false", "pace = true")
    });
    // Pipe 1: threshold 4 Mb/s, offered without limit.
    // Pipe 2: high priority, offered 16 Mb/s (80% of the port).
    // Pipe 3: low priority, offered without limit: total demand > 2x.
    let size = 1000;
    let wire_bits = ((40 + size) + 24) * 8;
    let hi_rate = 16_000_000 / wire_bits; // messages per second
    let streams = [
        format!("pipe=1,to=2:1,count=0,rate=0,size={size},threshold_mbps=4,priority=3"),
        format!("pipe=2,to=2:2,count=0,rate={hi_rate},size={size},priority=7"),
        format!("pipe=3,to=2:3,count=0,rate=0,size={size},priority=0"),
    ];
    c.start(
        2,
        &[
            "--stream", "pipe=1", "--stream", "pipe=2", "--stream", "pipe=3",
        ],
    );
    let mut args = Vec::new();
    for s in &streams {
        args.push("--stream");
        args.push(s.as_str());
    }
    args.extend(["--duration", "60"]);
    c.start(1, &args);
    c.wait(Duration::from_secs(20), |c| {
        c.status(1)
            .is_some_and(|s| s["pipes"].as_array().is_some_and(|p| p.len() == 3))
            && c.status(2).is_some()
            && converged(c, &[1, 2], 1).is_some()
    })
    .unwrap_or_else(|| panic!("no start\n{}", c.logs()));
    let lead = |c: &Cluster| {
        let st = c.status(2).unwrap();
        (st["master"].clone(), st["term"].clone())
    };
    let lead0 = lead(&c);
    std::thread::sleep(Duration::from_secs(2));

    let rates = |c: &Cluster, secs: f64| -> Vec<f64> {
        let msgs = |c: &Cluster| -> Vec<u64> {
            let st = c.status(1).unwrap();
            let mut v = vec![0; 4];
            for p in st["pipes"].as_array().unwrap() {
                v[p["id"].as_u64().unwrap() as usize] = p["counters"]["tx_msgs"].as_u64().unwrap();
            }
            v
        };
        let a = msgs(c);
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        let b = msgs(c);
        let dt = t.elapsed().as_secs_f64();
        (0..4)
            .map(|i| (b[i] - a[i]) as f64 * wire_bits as f64 / dt)
            .collect()
    };
    let r = rates(&c, 4.0);
    eprintln!(
        "rates b/s: pipe1 {:.0} pipe2 {:.0} pipe3 {:.0}",
        r[1], r[2], r[3]
    );
    assert!(r[1] <= 4e6 * 1.05, "pipe 1 above its threshold: {}", r[1]);
    let hi_demand = hi_rate as f64 * wire_bits as f64;
    assert!(
        r[2] >= 0.9 * hi_demand,
        "high-priority pipe got {} of its {} demand",
        r[2],
        hi_demand
    );

    // Swap priorities at run time: pipe 3 now outranks pipe 2.
    let sock = c.run.join("node1.sock");
    for (id, prio) in [(2u16, 0u8), (3, 9)] {
        let rep = request(
            &sock,
            &Request::SetPipe {
                id,
                priority: Some(prio),
                threshold_bps: None,
                buffer: None,
            },
        )
        .unwrap();
        assert!(rep.ok, "{:?}", rep.error);
    }
    std::thread::sleep(Duration::from_secs(2));
    let r2 = rates(&c, 4.0);
    eprintln!(
        "after swap b/s: pipe1 {:.0} pipe2 {:.0} pipe3 {:.0}",
        r2[1], r2[2], r2[3]
    );
    assert!(
        r2[3] > r[3] * 1.5,
        "raising pipe 3's priority did not raise its rate ({} -> {})",
        r[3],
        r2[3]
    );
    // A buffer change takes effect: the status reports it.
    let rep = request(
        &sock,
        &Request::SetPipe {
            id: 1,
            priority: None,
            threshold_bps: None,
            buffer: Some(64),
        },
    )
    .unwrap();
    assert!(rep.ok);
    let pipe1 = |c: &Cluster| -> Value {
        c.status(1).unwrap()["pipes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == 1)
            .unwrap()
            .clone()
    };
    c.wait(Duration::from_secs(3), |c| {
        pipe1(c)["params"]["buffer"] == 64
    })
    .expect("buffer change visible");
    // Enforced: the queue no longer grows, and further sends are refused
    // (the frames already queued drain at the pipe's rate).
    let a = pipe1(&c);
    std::thread::sleep(Duration::from_millis(1500));
    let b = pipe1(&c);
    let q = |v: &Value| v["queued"].as_u64().unwrap();
    let refused = |v: &Value| v["counters"]["tx_refused"].as_u64().unwrap();
    assert!(q(&b) <= q(&a).max(64), "queue grew: {} -> {}", q(&a), q(&b));
    assert!(
        refused(&b) > refused(&a),
        "sends not refused at the new buffer"
    );
    // Control frames go ahead of the data flood: no false failover.
    assert_eq!(
        lead(&c),
        lead0,
        "master or term changed under a saturated port"
    );
    // The feedback controller's caps are traced in the log.
    assert!(
        c.log(1).contains("pipe cap changed"),
        "no controller trace in node 1's log"
    );
}

#[test]
fn secondary_processes_attach_to_agents_and_stream_reliably() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Like Cluster::up, with --huge: a secondary needs the agent's memory
    // in shared hugepages.
    let run = std::env::temp_dir().join(format!("dmpd-test-secondary-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run);
    Cluster::script(&run, &["down"]);
    let out = Cluster::script(
        &run,
        &[
            "up",
            "-n",
            "2",
            "-p",
            "2",
            "--period-ms",
            &PERIOD_MS.to_string(),
            "--no-start",
            "--no-build",
            "--huge",
        ],
    );
    assert!(
        out.status.success(),
        "cluster up --huge: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = Cluster { run, nodes: 2 };
    c.start(1, &[]);
    c.start(2, &[]);
    let both = [1u16, 2];
    let master = c
        .wait(Duration::from_secs(20), |c| {
            converged(c, &both, 2).is_some()
        })
        .and_then(|_| converged(&c, &both, 2))
        .unwrap_or_else(|| panic!("no convergence\n{}", c.logs()));
    let term = c.status(1).unwrap()["term"].clone();
    // The agent's EAL file prefix, as scripts/cluster wrote it.
    let prefix = |i: u16| -> String {
        let t = std::fs::read_to_string(c.config(i)).unwrap();
        let l = t.lines().find(|l| l.starts_with("file_prefix")).unwrap();
        l.split('"').nth(1).unwrap().to_string()
    };
    let secondary = |i: u16, in_ns: bool, stream: &str, report: &str| {
        let sock = c.run.join(format!("node{i}.sock"));
        let mut args: Vec<String> = vec![
            "--attach".into(),
            sock.to_str().unwrap().into(),
            "--file-prefix".into(),
            prefix(i),
            "--stream".into(),
            stream.into(),
            "--report".into(),
            c.run.join(report).to_str().unwrap().into(),
            "--exit-when-done".into(),
            "--linger".into(),
            "1".into(),
        ];
        let bin = env!("CARGO_BIN_EXE_dmpd-stream");
        let mut cmd = if in_ns {
            // DPDK multi-process goes through files (runtime directory,
            // hugepages), not the network: either way works.
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &prefix(i), bin]);
            cmd
        } else {
            Command::new(bin)
        };
        args.drain(..).for_each(|a| {
            cmd.arg(a);
        });
        cmd.env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(c.run.join(format!("{report}.log"))).unwrap())
            .spawn()
            .expect("start dmpd-stream --attach")
    };
    let pipe_ids = |c: &Cluster, i: u16| -> Vec<u64> {
        c.status(i)
            .and_then(|s| {
                s["pipes"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|p| p["id"].as_u64()).collect())
            })
            .unwrap_or_default()
    };
    let count = 2000;
    let mut a1 = secondary(
        1,
        false,
        &format!("pipe=5,to=2:5,count={count},rate=2000,reliable"),
        "sec1.json",
    );
    let mut a2 = secondary(
        2,
        true,
        &format!("pipe=5,to=1:5,count={count},rate=2000,reliable"),
        "sec2.json",
    );
    let applogs = |c: &Cluster| {
        format!(
            "{}\n--- sec1\n{}\n--- sec2\n{}",
            c.logs(),
            std::fs::read_to_string(c.run.join("sec1.json.log")).unwrap_or_default(),
            std::fs::read_to_string(c.run.join("sec2.json.log")).unwrap_or_default()
        )
    };
    // The agents own the pipes: their status lists them like any other.
    let listed = c.wait(Duration::from_secs(10), |c| {
        both.iter().all(|&i| pipe_ids(c, i).contains(&5))
    });
    let t0 = Instant::now();
    let (mut s1, mut s2) = (None, None);
    while listed.is_some()
        && t0.elapsed() < Duration::from_secs(40)
        && (s1.is_none() || s2.is_none())
    {
        s1 = s1.or_else(|| a1.try_wait().unwrap());
        s2 = s2.or_else(|| a2.try_wait().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (Some(s1), Some(s2)) = (s1, s2) else {
        for a in [&mut a1, &mut a2] {
            let _ = a.kill();
            let _ = a.wait();
        }
        assert!(listed.is_some(), "pipe 5 not in the agents' status");
        panic!("secondaries did not finish\n{}", applogs(&c));
    };
    assert!(
        s1.success() && s2.success(),
        "exit {s1} / {s2}\n{}",
        applogs(&c)
    );
    for (f, peer) in [("sec1.json", "2:5"), ("sec2.json", "1:5")] {
        let r = c.report(f).unwrap_or_else(|| panic!("no {f}"));
        let s = &r["streams"][0];
        assert_eq!(s["all_delivered"], true, "{f}: {s}");
        assert_eq!(s["sent"][peer]["delivered"], count, "{f}: {s}");
        let got = &s["received"][peer];
        assert_eq!(got["messages"], count, "{f}: {s}");
        assert_eq!(got["in_order"], count, "{f}: {s}");
        for k in ["duplicates", "out_of_order", "missing", "corrupt"] {
            assert_eq!(got[k], 0, "{f}: {k}: {s}");
        }
    }
    // A normal exit closes the pipes; the agents carry on undisturbed.
    c.wait(Duration::from_secs(5), |c| {
        both.iter().all(|&i| !pipe_ids(c, i).contains(&5))
    })
    .unwrap_or_else(|| panic!("pipe 5 still open after exit\n{}", c.logs()));

    // kill -9 of a secondary: the agent closes its pipe (the control
    // connection ended) and keeps its role.
    let mut a3 = secondary(1, true, "pipe=6,to=2:6,count=0,rate=2000", "sec3.json");
    let opened = c.wait(Duration::from_secs(10), |c| pipe_ids(c, 1).contains(&6));
    std::thread::sleep(Duration::from_millis(500));
    // `ip netns exec` execs the program: this is dmpd-stream's own pid.
    a3.kill().unwrap();
    let _ = a3.wait();
    assert!(opened.is_some(), "pipe 6 not opened\n{}", applogs(&c));
    c.wait(Duration::from_secs(5), |c| !pipe_ids(c, 1).contains(&6))
        .unwrap_or_else(|| panic!("pipe 6 still open after kill -9\n{}", c.logs()));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(converged(&c, &both, 2), Some(master), "\n{}", c.logs());
    for i in both {
        assert_eq!(c.status(i).unwrap()["term"], term, "node {i}: term changed");
    }
}

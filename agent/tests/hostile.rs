//! Hostile frames on the emulated cluster (root): `dmpd-inject` on an extra
//! switch port captures real frames, then floods every agent with frames
//! signed with a wrong key, forged higher terms, replays (as they were and
//! with the term edited), truncated and oversized frames and garbage with
//! the DMPD EtherType, aiming at more than 100,000 frames/s.
//!
//! Checked: the master, the term and every table stay as they were at every
//! sample; every frame an agent read is accepted (the cluster's own
//! traffic) or rejected and counted by reason; each hostile class shows up
//! in its reject counters; RSS grows by less than 10 MB; the master's
//! heartbeat rounds keep their period.
//!
//! The injector addresses its frames to the agents' port MACs in turn
//! (unicast: the bridge forwards each frame to one port), so that the
//! frames the agents read are the frames injected; `DMPD_HOSTILE_BROADCAST=1`
//! sends every frame to the broadcast address instead (the bridge copies it
//! to all 6 agent ports).
//!
//! Reported, not asserted (they depend on the machine's load): the
//! injector's rate, the rate at which the agents rejected hostile frames
//! (from their own counters over the flood), and the frames the kernel
//! delivered to an agent's veth but dropped before the agent read them
//! (`net_af_packet` counts no such drop; the veth's `rx_packets` minus the
//! agent's `rx_packets`).
//!
//! Flood length: `DMPD_HOSTILE_SECS` (default 15 s; scripts/full: 300 s);
//! injector's target rate: `DMPD_HOSTILE_RATE` (default 110,000 frames/s,
//! so that at least 100,000 frames/s reach the agents when the injector
//! gets the CPU it asks for).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::cluster::{ns, Cluster};

const PERIOD_MS: u64 = 250;
const NODES: u16 = 3;
const PORTS: u16 = 2;

/// Master, term and (node, state) of the table.
type View = (u64, u64, Vec<(u64, String)>);

/// The [`View`] of one node's status.
fn view(st: &Value) -> Option<View> {
    let table = st["cluster"]
        .as_array()?
        .iter()
        .map(|n| {
            (
                n["node"].as_u64().unwrap_or(0),
                n["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    Some((st["master"].as_u64()?, st["term"].as_u64()?, table))
}

fn converged(c: &Cluster) -> Option<(u64, u64)> {
    let mut first: Option<(u64, u64)> = None;
    for i in 1..=NODES {
        let (m, t, table) = view(&c.status(i)?)?;
        if table.len() != NODES as usize || table.iter().any(|(_, s)| s != "up") {
            return None;
        }
        if *first.get_or_insert((m, t)) != (m, t) {
            return None;
        }
    }
    first
}

fn pairs(v: &Value) -> Vec<(String, u64)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p[0].as_str()?.to_string(), p[1].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Reject counts by short name (`bad_mac`, ...).
fn rejects(st: &Value) -> Vec<(String, u64)> {
    pairs(&st["rejects"])
        .into_iter()
        .map(|(r, n)| {
            let name = dmpd::Reject::ALL
                .iter()
                .find(|x| x.to_string() == r)
                .map_or(r, |x| x.name().to_string());
            (name, n)
        })
        .collect()
}

fn get(v: &[(String, u64)], k: &str) -> u64 {
    v.iter().find(|(n, _)| n == k).map_or(0, |x| x.1)
}

/// Frames the agent read, and frames it accounted for: accepted control
/// frames + rejects + datapath drops + ring-full drops.
fn accounting(st: &Value) -> (u64, u64) {
    let ports = st["ports"].as_array().cloned().unwrap_or_default();
    let rx: u64 = ports
        .iter()
        .map(|p| p["counters"]["rx_packets"].as_u64().unwrap_or(0))
        .sum();
    let ring: u64 = ports
        .iter()
        .map(|p| p["counters"]["ring_full"].as_u64().unwrap_or(0))
        .sum();
    let acc = st["round"]["frames_received"].as_u64().unwrap_or(0);
    let rej: u64 = rejects(st).iter().map(|x| x.1).sum();
    let dp: u64 = pairs(&st["datapath"]).iter().map(|x| x.1).sum();
    (rx, acc + rej + dp + ring)
}

fn ring_full(st: &Value) -> u64 {
    st["ports"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| p["counters"]["ring_full"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

fn rss(st: &Value) -> u64 {
    st["system"]["rss_bytes"].as_u64().unwrap_or(0)
}

/// Frames the kernel received on each node's veths (`rx_packets` of
/// `p0`.. in the node's namespace): what the agent could have read.
fn kernel_rx() -> Vec<u64> {
    (1..=NODES)
        .map(|i| {
            (0..PORTS)
                .map(|j| {
                    let out = Command::new("ip")
                        .args(["netns", "exec", &format!("{}-n{i}", ns()), "cat"])
                        .arg(format!("/sys/class/net/p{j}/statistics/rx_packets"))
                        .output()
                        .expect("read veth counters");
                    String::from_utf8_lossy(&out.stdout)
                        .trim()
                        .parse::<u64>()
                        .unwrap_or_else(|_| panic!("node {i} p{j}: no rx_packets"))
                })
                .sum()
        })
        .collect()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn hostile_flood_is_rejected_counted_and_harmless() {
    let secs: f64 = std::env::var("DMPD_HOSTILE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15.0);
    let rate: u64 = std::env::var("DMPD_HOSTILE_RATE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(110_000);
    let broadcast = std::env::var("DMPD_HOSTILE_BROADCAST").is_ok_and(|v| v == "1");
    let c = Cluster::up("hostile", NODES, PORTS, PERIOD_MS);
    // The attacker's port on the switch: veth hinj (attacker) <-> hinjb (bridge).
    for cmd in [
        "ip link add hinj type veth peer name hinjb",
        "ip link set hinjb master dmpdbr0",
        "ip link set hinjb up",
        "ip link set hinj up",
    ] {
        let mut a = vec!["exec", "sw"];
        a.extend(cmd.split(' '));
        c.sh(&a);
    }
    for i in 1..=NODES {
        c.start(i, &[]);
    }
    let t0 = Instant::now();
    let mut base = None;
    while t0.elapsed() < Duration::from_secs(30) && base.is_none() {
        base = converged(&c);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (master, term) = base.unwrap_or_else(|| panic!("no convergence\n{}", c.logs()));
    // settle: tables full, RTTs measured
    std::thread::sleep(Duration::from_millis(4 * PERIOD_MS));
    assert_eq!(
        converged(&c),
        Some((master, term)),
        "unstable before the flood\n{}",
        c.logs()
    );

    let before: Vec<Value> = (1..=NODES).map(|i| c.status(i).unwrap()).collect();
    let krx_before = kernel_rx();
    let load_before = loadavg();
    // the agents' port MACs, from their status
    let mut dst = Vec::new();
    if !broadcast {
        for st in &before {
            for p in st["ports"].as_array().expect("ports") {
                dst.push("--dst".to_string());
                dst.push(p["mac"].as_str().expect("port mac").to_string());
            }
        }
        assert_eq!(dst.len(), 2 * (NODES * PORTS) as usize, "port MACs");
    }
    let inject = Command::new("ip")
        .args(["netns", "exec", &format!("{}-sw", ns())])
        .arg(env!("CARGO_BIN_EXE_dmpd-inject"))
        .args([
            "--iface",
            "hinj",
            "--capture-iface",
            "n2p0",
            "--capture-secs",
            "3",
        ])
        .args([
            "--cluster-id",
            "7",
            "--rate",
            &rate.to_string(),
            "--seconds",
            &secs.to_string(),
        ])
        .args(&dst)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dmpd-inject");
    // The capture takes 3 s; then the flood. Sample every 100 ms meanwhile.
    let flood_start = Instant::now() + Duration::from_secs(3);
    let mut changed = Vec::new();
    let mut rss_max = vec![0u64; NODES as usize];
    let mut rounds: Vec<(Instant, u64)> = Vec::new();
    let out = {
        let mut child = inject;
        loop {
            for i in 1..=NODES {
                let Some(st) = c.status(i) else { continue };
                let v = view(&st);
                let ok = v.as_ref().is_some_and(|(m, t, table)| {
                    (*m, *t) == (master, term)
                        && table.len() == NODES as usize
                        && table.iter().all(|(_, s)| s == "up")
                });
                if !ok {
                    changed.push((i, format!("{v:?}")));
                }
                rss_max[i as usize - 1] = rss_max[i as usize - 1].max(rss(&st));
                if i as u64 == master && Instant::now() >= flood_start {
                    rounds.push((Instant::now(), st["round"]["rounds"].as_u64().unwrap_or(0)));
                }
            }
            if child.try_wait().unwrap().is_some() {
                break child.wait_with_output().unwrap();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert!(
        out.status.success(),
        "dmpd-inject: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("injector JSON");
    eprintln!("injector: {report}");
    // Let the queues drain and the status refresh (it is sampled each period).
    std::thread::sleep(Duration::from_millis(3 * PERIOD_MS));
    let after: Vec<Value> = (1..=NODES).map(|i| c.status(i).unwrap()).collect();
    let krx_after = kernel_rx();
    let load_after = loadavg();

    assert!(report["captured"].as_u64().unwrap() > 0, "nothing captured");
    for (class, n) in report["sent_by_class"].as_object().unwrap() {
        assert!(n.as_u64().unwrap() > 0, "no {class} frame sent");
    }
    assert!(
        changed.is_empty(),
        "state changed during the flood: {changed:?}\n{}",
        c.logs()
    );
    assert_eq!(
        converged(&c),
        Some((master, term)),
        "state after the flood\n{}",
        c.logs()
    );

    let mut total_hostile_rx = 0;
    let mut total_rejected = 0;
    let mut total_kernel = 0;
    for i in 0..NODES as usize {
        let (rx0, acc0) = accounting(&before[i]);
        let (rx1, acc1) = accounting(&after[i]);
        let (rx, acc) = (rx1 - rx0, acc1 - acc0);
        let r0 = rejects(&before[i]);
        let r1 = rejects(&after[i]);
        let d = |k: &str| get(&r1, k) - get(&r0, k);
        let dp0 = pairs(&before[i]["datapath"]);
        let dp1 = pairs(&after[i]["datapath"]);
        let dd = |k: &str| get(&dp1, k) - get(&dp0, k);
        let grown = rss_max[i].saturating_sub(rss(&before[i]));
        let krx = krx_after[i] - krx_before[i];
        // rejected: by reason, by the datapath, or dropped on a full
        // public ring (counted, never parsed)
        let rejected: u64 = r1.iter().map(|x| x.1).sum::<u64>()
            - r0.iter().map(|x| x.1).sum::<u64>()
            + dp1.iter().map(|x| x.1).sum::<u64>()
            - dp0.iter().map(|x| x.1).sum::<u64>()
            + ring_full(&after[i])
            - ring_full(&before[i]);
        // (a difference of a few frames either way: counters read at
        // slightly different times)
        eprintln!(
            "node {}: kernel delivered {krx} frames to its veths, the agent read {rx} \
             (kernel drops {}), rejected {rejected}",
            i + 1,
            krx as i64 - rx as i64
        );
        total_rejected += rejected;
        total_kernel += krx;
        eprintln!(
            "node {}: read {rx} frames, accounted {acc}; bad_mac {} unknown_key_id {} \
             duplicate {} replay {} truncated {} bad_length {} bad_version {} bad_kind {} \
             wrong_cluster {} bad_field {} own_frame {}; datapath foreign {} malformed {} \
             misdelivered {} no_pipe {}; RSS {} -> max {} (+{} KiB)",
            i + 1,
            d("bad_mac"),
            d("unknown_key_id"),
            d("duplicate"),
            d("replay"),
            d("truncated"),
            d("bad_length"),
            d("bad_version"),
            d("bad_kind"),
            d("wrong_cluster"),
            d("bad_field"),
            d("own_frame"),
            dd("foreign"),
            dd("malformed"),
            dd("misdelivered"),
            dd("no_pipe"),
            rss(&before[i]),
            rss_max[i],
            grown / 1024
        );
        // every frame read is accounted for (a few in flight at the sample)
        assert!(
            rx.abs_diff(acc) <= 64,
            "node {}: read {rx} frames but accounted for {acc}",
            i + 1
        );
        // each hostile class reached its check
        assert!(
            d("bad_mac") > 0,
            "node {}: no bad_mac (wrong key, forged term)",
            i + 1
        );
        assert!(d("unknown_key_id") > 0, "node {}: no unknown_key_id", i + 1);
        assert!(
            d("truncated") + d("bad_length") > 0,
            "node {}: no truncated",
            i + 1
        );
        assert!(
            d("bad_version") > 0,
            "node {}: no bad_version (garbage)",
            i + 1
        );
        assert!(
            dd("malformed") + dd("misdelivered") + dd("no_pipe") > 0,
            "node {}: no data garbage",
            i + 1
        );
        // every injected frame has the DMPD EtherType (and the cluster sends
        // nothing else): none may be filed as someone else's traffic
        assert_eq!(
            dd("foreign"),
            0,
            "node {}: DMPD frames counted as foreign",
            i + 1
        );
        assert!(
            grown < 10 << 20,
            "node {}: RSS grew by {} KiB",
            i + 1,
            grown / 1024
        );
        total_hostile_rx += rx;
    }
    // replays reach their check on the node they were addressed to (the
    // capture port's node, the master for responses): over the cluster
    let replays: u64 = (0..NODES as usize)
        .map(|i| {
            let g = |k: &str| get(&rejects(&after[i]), k) - get(&rejects(&before[i]), k);
            g("duplicate") + g("replay") + g("own_frame")
        })
        .sum();
    assert!(replays > 0, "no replay rejected");

    // heartbeats kept their period: the master's rounds over the flood
    let (ta, ra) = *rounds.first().expect("round samples");
    let (tb, rb) = *rounds.last().unwrap();
    let want = (tb - ta).as_secs_f64() * 1000.0 / PERIOD_MS as f64;
    let ratio = (rb - ra) as f64 / want;
    eprintln!(
        "master {master}: {} rounds in {:.2} s ({want:.1} expected, ratio {ratio:.3}); \
         agents read {total_hostile_rx} frames in total",
        rb - ra,
        (tb - ta).as_secs_f64()
    );
    // the flood's rates: what the injector sent, what the agents rejected
    let flood_secs = report["seconds"].as_f64().unwrap_or(secs);
    let sent = report["sent"].as_u64().unwrap_or(0);
    eprintln!(
        "flood ({}): injector sent {sent} frames in {flood_secs:.2} s = {:.0} frames/s \
         (target {rate}); the kernel delivered {total_kernel} to the agents' veths, \
         the agents read {total_hostile_rx} and rejected {total_rejected} = {:.0} frames/s \
         (kernel drops {}, {:.2} %); loadavg before {load_before}, after {load_after}",
        if broadcast {
            "broadcast"
        } else {
            "unicast to the 6 agent ports"
        },
        sent as f64 / flood_secs,
        total_rejected as f64 / flood_secs,
        total_kernel as i64 - total_hostile_rx as i64,
        100.0 * (total_kernel as f64 - total_hostile_rx as f64) / total_kernel.max(1) as f64
    );
    assert!(
        (0.9..=1.1).contains(&ratio),
        "heartbeat rounds off their period: ratio {ratio:.3}"
    );
}

//! Human-readable tables of a status reply (for `dmpd-agent status`).

use serde_json::Value;
use std::fmt::Write;

fn f(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}
fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}
fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

pub fn status_table(st: &Value) -> String {
    let mut o = String::new();
    let master = st
        .get("master")
        .and_then(Value::as_u64)
        .map(|m| m.to_string())
        .unwrap_or_else(|| "none".into());
    let _ = writeln!(
        o,
        "node {}  role {}  master {}  term {}  uptime {:.1}s  period {} ms",
        u(st, "node"),
        s(st, "role"),
        master,
        u(st, "term"),
        u(st, "uptime_ms") as f64 / 1000.0,
        u(st, "heartbeat_ms")
    );
    let _ = writeln!(
        o,
        "\nCLUSTER\n{:>6} {:>7} {:>5} {:>8} {:>6} {:>6}  ports (load%/rtt us)",
        "node", "state", "prio", "heard ms", "cpu%", "mem%"
    );
    for n in st
        .get("cluster")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ports: Vec<String> = n
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}{}:{:.1}/{:.0}",
                    u(p, "idx"),
                    if p.get("up").and_then(Value::as_bool) == Some(true) {
                        ""
                    } else {
                        "!"
                    },
                    f(p, "load") * 100.0,
                    f(p, "rtt_us")
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "{:>6} {:>7} {:>5} {:>8} {:>6.1} {:>6.1}  {}",
            u(n, "node"),
            s(n, "state"),
            u(n, "priority"),
            u(n, "last_heard_ms_ago"),
            f(n, "cpu_util") * 100.0,
            f(n, "mem_util") * 100.0,
            ports.join(" ")
        );
    }
    let _ = writeln!(
        o,
        "\nPORTS\n{:>3} {:<18} {:<17} {:>4} {:>12} {:>7} {:>7} {:>7} {:>10} {:>10}",
        "idx", "name", "mac", "up", "rate Mb/s", "util%", "loss%", "load%", "rx pkts", "tx pkts"
    );
    for p in st
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let c = p.get("counters").cloned().unwrap_or(Value::Null);
        let _ = writeln!(
            o,
            "{:>3} {:<18} {:<17} {:>4} {:>12.3} {:>7.2} {:>7.2} {:>7.2} {:>10} {:>10}",
            u(p, "idx"),
            s(p, "name"),
            s(p, "mac"),
            if p.get("up").and_then(Value::as_bool) == Some(true) {
                "yes"
            } else {
                "NO"
            },
            f(p, "rate_bps") / 1e6,
            f(p, "utilisation") * 100.0,
            f(p, "loss_rate") * 100.0,
            f(p, "load") * 100.0,
            u(&c, "rx_packets"),
            u(&c, "tx_packets")
        );
    }
    if let Some(b) = st.get("balancer") {
        let _ = writeln!(
            o,
            "\nBALANCER enabled {}  mean {:.2}%  WL {:.3} (threshold {:.2})  balancing {}",
            b.get("enabled").and_then(Value::as_bool).unwrap_or(false),
            f(b, "mean") * 100.0,
            f(b, "balance_degree"),
            f(b, "threshold"),
            b.get("balancing").and_then(Value::as_bool).unwrap_or(false)
        );
    }
    let pipes: Vec<&Value> = st
        .get("pipes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if !pipes.is_empty() {
        let _ = writeln!(
            o,
            "\nPIPES\n{:>5} {:>5} {:>12} {:>12} {:>7} {:>8} {:>10} {:>10} {:>8}",
            "id",
            "prio",
            "thresh Mb/s",
            "rate Mb/s",
            "buffer",
            "state",
            "tx msgs",
            "rx msgs",
            "refused"
        );
        for p in pipes {
            let pa = p.get("params").cloned().unwrap_or(Value::Null);
            let c = p.get("counters").cloned().unwrap_or(Value::Null);
            let _ = writeln!(
                o,
                "{:>5} {:>5} {:>12.3} {:>12.3} {:>7} {:>8} {:>10} {:>10} {:>8}",
                u(p, "id"),
                u(&pa, "priority"),
                u(&pa, "threshold_bps") as f64 / 1e6,
                f(p, "tx_rate_bps") / 1e6,
                u(&pa, "buffer"),
                s(p, "state"),
                u(&c, "tx_msgs"),
                u(&c, "rx_msgs"),
                u(&c, "tx_refused")
            );
        }
    }
    let rejects: Vec<String> = st
        .get("rejects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let a = r.as_array()?;
            let n = a.get(1)?.as_u64()?;
            let name = a.first()?.as_str()?;
            (n > 0).then(|| format!("{name}={n}"))
        })
        .collect();
    let _ = writeln!(
        o,
        "\nREJECTED {}",
        if rejects.is_empty() {
            "none".into()
        } else {
            rejects.join(" ")
        }
    );
    o
}

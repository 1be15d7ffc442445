//! `dmpd-agent record`: samples running agents (over their control sockets)
//! and `dmpd-stream` report files at a fixed interval and appends one JSON
//! object per line to a file. `dmpd-plot` turns such a recording into
//! charts. The format is documented in docs/observability.md, "Recording a
//! run"; [`FORMAT_VERSION`] changes when a field changes meaning.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::ctl::{self, Request};

/// The `version` field of the `meta` line.
pub const FORMAT_VERSION: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("agent at {socket}: {msg}")]
    Agent { socket: PathBuf, msg: String },
    #[error("nothing to record: give at least one --socket or --stream-report")]
    NothingToRecord,
    #[error("--interval-ms must be at least 10")]
    Interval,
}

/// What to record and for how long.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    pub sockets: Vec<PathBuf>,
    pub stream_reports: Vec<PathBuf>,
    pub interval: Duration,
    /// Stop after this long (None: until `quit`).
    pub duration: Option<Duration>,
    pub out: PathBuf,
    pub label: String,
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}
fn f(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}
fn b(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

/// Per-port counters of the previous sample of one node, for rates.
#[derive(Debug, Clone, Default)]
pub struct PrevPorts {
    t: f64,
    /// (rx_packets, tx_packets, rx_bytes, tx_bytes, drops) per port index.
    counters: Vec<(u8, [u64; 5])>,
}

/// Builds the `node` line from a status reply (`dmpd-agent status --json`)
/// taken `t` seconds after the recording started. Rates per second come from
/// the difference with `prev` (the previous sample of the same node) and
/// are `null` on a node's first sample; `prev` is updated.
pub fn node_line(t: f64, st: &Value, prev: &mut Option<PrevPorts>) -> Value {
    let bal = st.get("balancer").cloned().unwrap_or(Value::Null);
    let mut ports = Vec::new();
    let mut now = PrevPorts {
        t,
        counters: Vec::new(),
    };
    for p in st
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let c = p.get("counters").cloned().unwrap_or(Value::Null);
        let idx = u(p, "idx") as u8;
        let cur = [
            u(&c, "rx_packets"),
            u(&c, "tx_packets"),
            u(&c, "rx_bytes"),
            u(&c, "tx_bytes"),
            u(&c, "drops"),
        ];
        now.counters.push((idx, cur));
        let per_s = |k: usize| -> Value {
            let rate = || -> Option<Value> {
                let pv = prev.as_ref()?;
                let dt = t - pv.t;
                let (_, old) = pv.counters.iter().find(|(i, _)| *i == idx)?;
                (dt > 0.0).then(|| json!(cur[k].wrapping_sub(old[k]) as f64 / dt))
            };
            rate().unwrap_or(Value::Null)
        };
        ports.push(json!({
            "idx": idx,
            "up": b(p, "up"),
            "bandwidth_mbps": u(p, "bandwidth_mbps"),
            "rate_bps": f(p, "rate_bps"),
            "utilisation": f(p, "utilisation"),
            "loss_rate": f(p, "loss_rate"),
            "overflow_rate": f(p, "overflow_rate"),
            "load": f(p, "load"),
            "rx_packets": cur[0],
            "tx_packets": cur[1],
            "rx_bytes": cur[2],
            "tx_bytes": cur[3],
            "drops": cur[4],
            "ring_full": u(&c, "ring_full"),
            "ethdev_rx_packets": u(p, "ethdev_rx_packets"),
            "ethdev_tx_packets": u(p, "ethdev_tx_packets"),
            "ethdev_rx_missed": u(p, "ethdev_rx_missed"),
            "rx_pps": per_s(0),
            "tx_pps": per_s(1),
            "rx_bytes_per_s": per_s(2),
            "tx_bytes_per_s": per_s(3),
            "drops_per_s": per_s(4),
        }));
    }
    *prev = Some(now);
    json!({
        "kind": "node",
        "t": t,
        "node": u(st, "node"),
        "role": st.get("role").cloned().unwrap_or(Value::Null),
        "balancing_enabled": b(&bal, "enabled"),
        "balancing_active": b(&bal, "balancing"),
        "balance_degree": f(&bal, "balance_degree"),
        "threshold": f(&bal, "threshold"),
        "mean_load": f(&bal, "mean"),
        "ports": ports,
    })
}

/// Builds the `stream` line from a `dmpd-stream --report` file's contents.
/// Sent and received figures are summed over destinations and sources.
pub fn stream_line(t: f64, file: &Path, report: &Value) -> Value {
    let mut streams = Vec::new();
    for s in report
        .get("streams")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let sum = |side: &str, k: &str| -> u64 {
            s.get(side)
                .and_then(Value::as_object)
                .map(|m| m.values().map(|v| u(v, k)).sum())
                .unwrap_or(0)
        };
        streams.push(json!({
            "pipe": u(s, "pipe"),
            "size": s.get("size").cloned().unwrap_or(Value::Null),
            "frame_bytes": s.get("frame_bytes").cloned().unwrap_or(Value::Null),
            "pushed": sum("sent", "pushed"),
            "refused": sum("sent", "refused"),
            "delivered": sum("sent", "delivered"),
            "received": sum("received", "messages"),
            "missing": sum("received", "missing"),
            "duplicates": sum("received", "duplicates"),
            "out_of_order": sum("received", "out_of_order"),
            "corrupt": sum("received", "corrupt"),
        }));
    }
    json!({
        "kind": "stream",
        "t": t,
        "file": file.display().to_string(),
        "node": report.get("node").cloned().unwrap_or(Value::Null),
        "elapsed_s": f(report, "elapsed_s"),
        "done": b(report, "done"),
        "streams": streams,
    })
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Records until the duration is over or `quit` is set. A stream report
/// that does not exist (yet) or does not parse is skipped for that sample;
/// an agent that does not answer ends the recording with an error (the
/// lines written so far stay in the file).
pub fn record(opts: &RecordOptions, quit: &AtomicBool) -> Result<u64, RecordError> {
    if opts.sockets.is_empty() && opts.stream_reports.is_empty() {
        return Err(RecordError::NothingToRecord);
    }
    if opts.interval < Duration::from_millis(10) {
        return Err(RecordError::Interval);
    }
    let file = File::create(&opts.out).map_err(|source| RecordError::Create {
        path: opts.out.clone(),
        source,
    })?;
    let mut w = BufWriter::new(file);
    let put = |w: &mut BufWriter<File>, v: &Value| -> Result<(), RecordError> {
        let werr = |source| RecordError::Write {
            path: opts.out.clone(),
            source,
        };
        serde_json::to_writer(&mut *w, v).map_err(|e| werr(e.into()))?;
        w.write_all(b"\n").map_err(werr)?;
        w.flush().map_err(werr)
    };
    let mut meta = Map::new();
    meta.insert("kind".into(), json!("meta"));
    meta.insert("version".into(), json!(FORMAT_VERSION));
    meta.insert("label".into(), json!(opts.label));
    meta.insert("started_unix_ms".into(), json!(now_unix_ms()));
    meta.insert(
        "interval_ms".into(),
        json!(opts.interval.as_millis() as u64),
    );
    meta.insert(
        "sockets".into(),
        json!(opts
            .sockets
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()),
    );
    put(&mut w, &Value::Object(meta))?;
    let start = Instant::now();
    let mut prev: Vec<Option<PrevPorts>> = vec![None; opts.sockets.len()];
    let mut samples = 0u64;
    let mut next = start;
    loop {
        let t = start.elapsed().as_secs_f64();
        for (i, sock) in opts.sockets.iter().enumerate() {
            let r = ctl::request(sock, &Request::Status).map_err(|msg| RecordError::Agent {
                socket: sock.clone(),
                msg,
            })?;
            let st = match (r.ok, r.status) {
                (true, Some(st)) => st,
                (_, _) => {
                    return Err(RecordError::Agent {
                        socket: sock.clone(),
                        msg: r.error.unwrap_or_else(|| "no status in the reply".into()),
                    })
                }
            };
            put(&mut w, &node_line(t, &st, &mut prev[i]))?;
        }
        for path in &opts.stream_reports {
            let Ok(text) = std::fs::read(path) else {
                continue;
            };
            let Ok(rep) = serde_json::from_slice::<Value>(&text) else {
                continue;
            };
            put(&mut w, &stream_line(t, path, &rep))?;
        }
        samples += 1;
        next += opts.interval;
        let done = opts.duration.is_some_and(|d| start.elapsed() >= d);
        if done || quit.load(Ordering::Relaxed) {
            return Ok(samples);
        }
        while Instant::now() < next {
            if quit.load(Ordering::Relaxed) {
                return Ok(samples);
            }
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(50)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(rx: u64, enabled: bool) -> Value {
        json!({
            "node": 4, "role": "member",
            "balancer": {"enabled": enabled, "balancing": true, "balance_degree": 3.5,
                         "threshold": 1.86, "mean": 0.2, "loads": [0.1, 0.3]},
            "ports": [
                {"idx": 0, "up": true, "bandwidth_mbps": 1000, "rate_bps": 1.0e8,
                 "utilisation": 0.1, "loss_rate": 0.0, "overflow_rate": 0.0, "load": 0.1,
                 "counters": {"rx_packets": rx, "tx_packets": 2 * rx, "rx_bytes": 100 * rx,
                              "tx_bytes": 0, "drops": 0, "errors": 0, "ring_full": 0}},
                {"idx": 1, "up": false, "bandwidth_mbps": 1000, "rate_bps": 0.0,
                 "utilisation": 0.3, "loss_rate": 0.5, "overflow_rate": 0.0, "load": 0.3,
                 "counters": {"rx_packets": 0, "tx_packets": 0, "rx_bytes": 0,
                              "tx_bytes": 0, "drops": 7, "errors": 0, "ring_full": 1}}
            ]
        })
    }

    #[test]
    fn node_line_takes_status_fields_and_rates_from_the_previous_sample() {
        let mut prev = None;
        let a = node_line(1.0, &status(1000, true), &mut prev);
        assert_eq!(a["kind"], "node");
        assert_eq!(a["node"], 4);
        assert_eq!(a["balancing_enabled"], true);
        assert_eq!(a["balance_degree"], 3.5);
        assert_eq!(a["ports"][1]["up"], false);
        assert_eq!(a["ports"][1]["drops"], 7);
        assert_eq!(a["ports"][0]["utilisation"], 0.1);
        assert!(
            a["ports"][0]["rx_pps"].is_null(),
            "no rate on a first sample"
        );
        let b = node_line(1.5, &status(3000, false), &mut prev);
        assert_eq!(b["balancing_enabled"], false);
        assert_eq!(b["ports"][0]["rx_pps"], 4000.0);
        assert_eq!(b["ports"][0]["tx_pps"], 8000.0);
        assert_eq!(b["ports"][0]["rx_bytes_per_s"], 400_000.0);
        assert_eq!(b["ports"][1]["drops_per_s"], 0.0);
    }

    #[test]
    fn stream_line_sums_destinations_and_sources() {
        let rep = json!({"node": 1, "elapsed_s": 2.5, "done": false, "streams": [
            {"pipe": 3, "size": 100, "frame_bytes": 140, "sent": {
                "2:3": {"pushed": 10, "delivered": 0, "refused": 1, "resends": 0},
                "3:3": {"pushed": 5, "delivered": 0, "refused": 2, "resends": 0}},
             "received": {"2:3": {"messages": 7, "missing": 2, "duplicates": 0,
                                  "out_of_order": 1, "corrupt": 0}}}]});
        let l = stream_line(2.0, Path::new("/tmp/r.json"), &rep);
        assert_eq!(l["kind"], "stream");
        assert_eq!(l["streams"][0]["pushed"], 15);
        assert_eq!(l["streams"][0]["refused"], 3);
        assert_eq!(l["streams"][0]["received"], 7);
        assert_eq!(l["streams"][0]["missing"], 2);
        assert_eq!(l["streams"][0]["frame_bytes"], 140);
    }

    #[test]
    fn refuses_to_record_nothing_or_too_fast() {
        let q = AtomicBool::new(false);
        let mut o = RecordOptions {
            sockets: vec![],
            stream_reports: vec![],
            interval: Duration::from_millis(100),
            duration: Some(Duration::from_millis(1)),
            out: std::env::temp_dir().join("dmpd-record-unit.jsonl"),
            label: "x".into(),
        };
        assert!(matches!(record(&o, &q), Err(RecordError::NothingToRecord)));
        o.stream_reports.push("/nonexistent/report.json".into());
        o.interval = Duration::from_millis(1);
        assert!(matches!(record(&o, &q), Err(RecordError::Interval)));
    }

    #[test]
    fn an_agent_that_does_not_answer_is_an_error() {
        let q = AtomicBool::new(false);
        let o = RecordOptions {
            sockets: vec!["/nonexistent/agent.sock".into()],
            stream_reports: vec![],
            interval: Duration::from_millis(100),
            duration: Some(Duration::from_millis(1)),
            out: std::env::temp_dir()
                .join(format!("dmpd-record-unit-{}.jsonl", std::process::id())),
            label: "x".into(),
        };
        let e = record(&o, &q).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/agent.sock"), "{e}");
        let _ = std::fs::remove_file(&o.out);
    }
}

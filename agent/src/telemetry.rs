//! DPDK telemetry commands next to DPDK's built-in ones (`/ethdev/*`, ...):
//! query a running agent with `dpdk-telemetry.py -f <file-prefix>`.
//!
//! | command | parameter | reply |
//! |---|---|---|
//! | `/dmpd/status` | - | node, role, master, term, counts, round and system summary |
//! | `/dmpd/cluster` | optional node number | the cluster table, one dict per node (ports in the single-node form) |
//! | `/dmpd/ports` | optional port index | local ports with counters, one dict per port |
//! | `/dmpd/pipes` | optional pipe id | local pipes with parameters and counters |
//! | `/dmpd/lb` | - | the balancer: mean load, balance degree, per-port loads |
//!
//! DPDK 22.11 telemetry has no floating-point values, so fractions are
//! exported as integers in parts per million (`*_ppm`), times in
//! microseconds or milliseconds (`*_us`, `*_ms`), and values with a unit of
//! their own as decimal strings (`load1`, `balance_degree_pct`). Keys hold
//! only `[A-Za-z0-9_/]` (telemetry's rule), strings are cut to 63 bytes,
//! dicts to 256 entries, a reply to about 15 000 JSON bytes (telemetry's
//! buffer is 16 KiB) and 64 nested containers: the callbacks never fail on
//! large tables, they truncate and add `"truncated": 1`.

use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use ffi::sys;
use parking_lot::Mutex;

use crate::engine::status::{LocalPortStatus, NodeStatus, PipeStatus, Status};

/// The status the callbacks read (set by [`register`]).
static STATUS: RwLock<Option<Arc<Mutex<Status>>>> = RwLock::new(None);
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Longest string (value or key) we hand to telemetry, in bytes; DPDK
/// versions before 22.11 allowed 64 including the terminating NUL.
pub const MAX_STRING: usize = 63;
/// Most entries of one dict or array (`RTE_TEL_MAX_DICT_ENTRIES`).
pub const MAX_ENTRIES: usize = sys::RTE_TEL_MAX_DICT_ENTRIES as usize;

type Callback = unsafe extern "C" fn(*const c_char, *const c_char, *mut sys::rte_tel_data) -> c_int;

const COMMANDS: [(&str, Callback, &str); 5] = [
    (
        "/dmpd/status",
        cb_status,
        "DMPD agent summary: node, role, master, term, counts. No parameters.",
    ),
    (
        "/dmpd/cluster",
        cb_cluster,
        "DMPD cluster table. Parameter: node number (optional).",
    ),
    (
        "/dmpd/ports",
        cb_ports,
        "DMPD local ports with counters, utilisation and load. Parameter: port index (optional).",
    ),
    (
        "/dmpd/pipes",
        cb_pipes,
        "DMPD local pipes with parameters and counters. Parameter: pipe id (optional).",
    ),
    (
        "/dmpd/lb",
        cb_lb,
        "DMPD multi-port load balancer: mean load, balance degree, per-port loads. No parameters.",
    ),
];

/// Registers the `/dmpd/*` commands; call after EAL initialisation. The
/// callbacks read `status` (a later call replaces it and does not register
/// the commands twice).
pub fn register(status: Arc<Mutex<Status>>) -> Result<(), String> {
    *STATUS.write().unwrap_or_else(|e| e.into_inner()) = Some(status);
    if REGISTERED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    for (cmd, cb, help) in COMMANDS {
        let c = CString::new(cmd).expect("command has no NUL");
        let h = CString::new(help).expect("help has no NUL");
        // SAFETY: both strings are NUL-terminated; telemetry copies them
        // (strlcpy) and keeps only the function pointer, which is 'static.
        let rc = unsafe { sys::rte_telemetry_register_cmd(c.as_ptr(), Some(cb), h.as_ptr()) };
        if rc != 0 {
            return Err(format!(
                "rte_telemetry_register_cmd({cmd}): {}",
                ffi::strerror(-rc)
            ));
        }
    }
    Ok(())
}

fn snapshot() -> Option<Status> {
    let g = STATUS.read().unwrap_or_else(|e| e.into_inner());
    g.as_ref().map(|s| s.lock().clone())
}

/// What is left for one reply: telemetry's output buffer is 16 KiB
/// (entries past it are silently left out) and every nested container costs
/// a ~68 KB allocation until the reply is written, so both are rationed.
struct Budget {
    bytes: usize,
    containers: usize,
    truncated: bool,
}

/// Estimated JSON bytes one reply may use (of telemetry's 16384, leaving
/// room for the `{"/cmd": ...}` wrapper and the `truncated` flag).
pub const MAX_REPLY_BYTES: usize = 15_000;
/// Most nested containers (dicts, arrays) in one reply.
pub const MAX_CONTAINERS: usize = 64;

/// A dict being filled: keys sanitised, values truncated, entries and the
/// reply's size budget counted.
struct Dict {
    d: *mut sys::rte_tel_data,
    n: usize,
    budget: std::rc::Rc<std::cell::RefCell<Budget>>,
}

/// Cuts `s` to [`MAX_STRING`] bytes at a character boundary and replaces
/// characters that DPDK 22.11's JSON writer does not escape.
fn clean_value(s: &str) -> CString {
    let mut out = String::with_capacity(s.len().min(MAX_STRING));
    for c in s.chars() {
        let c = if c == '"' || c == '\\' || c.is_control() {
            '_'
        } else {
            c
        };
        if out.len() + c.len_utf8() > MAX_STRING {
            break;
        }
        out.push(c);
    }
    CString::new(out).unwrap_or_default()
}

/// Telemetry keys may hold only alphanumerics, `_` and `/`.
fn clean_key(s: &str) -> CString {
    let k: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '/' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_STRING)
        .collect();
    CString::new(if k.is_empty() { "_".to_owned() } else { k }).unwrap_or_default()
}

/// A fraction as parts per million (negative and non-finite read 0).
fn ppm(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        (x * 1e6).round().min(u64::MAX as f64) as u64
    } else {
        0
    }
}

/// Decimal digits of `v` (its JSON length).
fn digits(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |d| d as usize + 1)
}

fn dec(x: f64, places: usize) -> String {
    if x.is_finite() {
        format!("{x:.places$}")
    } else {
        "nan".into()
    }
}

impl Dict {
    /// Starts a dict in `d`.
    ///
    /// # Safety
    /// `d` must be a valid telemetry data struct (the callback's `info` or
    /// one from `rte_tel_data_alloc`).
    unsafe fn start(d: *mut sys::rte_tel_data) -> Dict {
        // SAFETY: per the contract above.
        unsafe { sys::rte_tel_data_start_dict(d) };
        Dict {
            d,
            n: 0,
            budget: std::rc::Rc::new(std::cell::RefCell::new(Budget {
                bytes: MAX_REPLY_BYTES,
                containers: MAX_CONTAINERS,
                truncated: false,
            })),
        }
    }

    /// A dict nested in this one, sharing its budget.
    ///
    /// # Safety
    /// As [`Dict::start`].
    unsafe fn nested(&self, d: *mut sys::rte_tel_data) -> Dict {
        // SAFETY: per the contract.
        let mut inner = unsafe { Dict::start(d) };
        inner.budget = self.budget.clone();
        inner
    }

    /// Whether another entry of about `bytes` JSON bytes (key included)
    /// fits; takes it from the budget if so.
    fn room(&mut self, bytes: usize) -> bool {
        let mut b = self.budget.borrow_mut();
        if self.n >= MAX_ENTRIES || b.bytes < bytes + 4 {
            b.truncated = true;
            return false;
        }
        b.bytes -= bytes + 4;
        self.n += 1;
        true
    }

    /// Takes a container from the budget (with `bytes` for its key).
    fn room_container(&mut self, bytes: usize) -> bool {
        {
            let mut b = self.budget.borrow_mut();
            if b.containers == 0 || b.bytes < bytes + 16 {
                b.truncated = true;
                return false;
            }
            b.containers -= 1;
        }
        self.room(bytes + 2)
    }

    /// Whether something was left out of the reply for lack of room.
    fn truncated(&self) -> bool {
        self.budget.borrow().truncated
    }

    /// Marks the reply as truncated (`"truncated": 1`), outside the budget.
    fn mark_truncated(&mut self) {
        if self.truncated() && self.n < MAX_ENTRIES {
            self.n += 1;
            // SAFETY: `self.d` is a started dict; the key is NUL-terminated.
            unsafe { sys::rte_tel_data_add_dict_u64(self.d, c"truncated".as_ptr(), 1) };
        }
    }

    fn u64(&mut self, k: &str, v: u64) -> &mut Self {
        if self.room(k.len() + 2 + digits(v)) {
            let k = clean_key(k);
            // SAFETY: `self.d` is a started dict; `k` is NUL-terminated.
            unsafe { sys::rte_tel_data_add_dict_u64(self.d, k.as_ptr(), v) };
        }
        self
    }

    fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.u64(k, u64::from(v))
    }

    fn str(&mut self, k: &str, v: &str) -> &mut Self {
        let (k, v) = (clean_key(k), clean_value(v));
        if self.room(k.as_bytes().len() + v.as_bytes().len() + 4) {
            // SAFETY: as above; telemetry copies both strings.
            unsafe { sys::rte_tel_data_add_dict_string(self.d, k.as_ptr(), v.as_ptr()) };
        }
        self
    }

    /// A nested dict filled by `f`. Freed here if it cannot be added.
    fn dict(&mut self, k: &str, f: impl FnOnce(&mut Dict)) -> &mut Self {
        if !self.room_container(k.len() + 2) {
            return self;
        }
        // SAFETY: alloc returns a fresh container or NULL.
        let c = unsafe { sys::rte_tel_data_alloc() };
        if c.is_null() {
            return self;
        }
        // SAFETY: `c` is a valid container.
        let mut inner = unsafe { self.nested(c) };
        f(&mut inner);
        let k = clean_key(k);
        // SAFETY: keep = 0 hands `c` to telemetry, which frees it with the
        // parent; on failure it stays ours and we free it.
        let rc = unsafe { sys::rte_tel_data_add_dict_container(self.d, k.as_ptr(), c, 0) };
        if rc != 0 {
            // SAFETY: `c` was not taken.
            unsafe { sys::rte_tel_data_free(c) };
        }
        self
    }

    /// A nested array of u64 (at most `RTE_TEL_MAX_ARRAY_ENTRIES`).
    fn u64_array(&mut self, k: &str, vals: impl IntoIterator<Item = u64>) -> &mut Self {
        if !self.room_container(k.len() + 2) {
            return self;
        }
        // SAFETY: as in `dict`.
        let c = unsafe { sys::rte_tel_data_alloc() };
        if c.is_null() {
            return self;
        }
        // SAFETY: `c` is a valid container.
        unsafe { sys::rte_tel_data_start_array(c, sys::RTE_TEL_U64_VAL) };
        for v in vals
            .into_iter()
            .take(sys::RTE_TEL_MAX_ARRAY_ENTRIES as usize)
        {
            if !self.room(digits(v)) {
                break;
            }
            // SAFETY: `c` is a started u64 array.
            unsafe { sys::rte_tel_data_add_array_u64(c, v) };
        }
        let k = clean_key(k);
        // SAFETY: as in `dict`.
        let rc = unsafe { sys::rte_tel_data_add_dict_container(self.d, k.as_ptr(), c, 0) };
        if rc != 0 {
            // SAFETY: `c` was not taken.
            unsafe { sys::rte_tel_data_free(c) };
        }
        self
    }
}

/// The parameter after the comma, if any (`/dmpd/ports,1` -> `1`).
///
/// # Safety
/// `params` is NULL or a NUL-terminated string.
unsafe fn param(params: *const c_char) -> Option<String> {
    if params.is_null() {
        return None;
    }
    // SAFETY: per the contract.
    let p = unsafe { CStr::from_ptr(params) }
        .to_string_lossy()
        .trim()
        .to_owned();
    (!p.is_empty()).then_some(p)
}

/// Runs a callback body with the status snapshot, never unwinding into C.
///
/// # Safety
/// `params` and `info` are the callback's arguments.
unsafe fn run(
    params: *const c_char,
    info: *mut sys::rte_tel_data,
    body: fn(&Status, Option<&str>, &mut Dict) -> bool,
) -> c_int {
    if info.is_null() {
        return -1;
    }
    // SAFETY: per the contract.
    let p = unsafe { param(params) };
    let Some(st) = snapshot() else { return -1 };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `info` is the data struct telemetry passed in.
        let mut d = unsafe { Dict::start(info) };
        let ok = body(&st, p.as_deref(), &mut d);
        d.mark_truncated();
        ok
    }));
    match r {
        Ok(true) => 0,
        _ => -1,
    }
}

unsafe extern "C" fn cb_status(
    _: *const c_char,
    params: *const c_char,
    info: *mut sys::rte_tel_data,
) -> c_int {
    // SAFETY: telemetry's arguments.
    unsafe { run(params, info, status_body) }
}
unsafe extern "C" fn cb_cluster(
    _: *const c_char,
    params: *const c_char,
    info: *mut sys::rte_tel_data,
) -> c_int {
    // SAFETY: telemetry's arguments.
    unsafe { run(params, info, cluster_body) }
}
unsafe extern "C" fn cb_ports(
    _: *const c_char,
    params: *const c_char,
    info: *mut sys::rte_tel_data,
) -> c_int {
    // SAFETY: telemetry's arguments.
    unsafe { run(params, info, ports_body) }
}
unsafe extern "C" fn cb_pipes(
    _: *const c_char,
    params: *const c_char,
    info: *mut sys::rte_tel_data,
) -> c_int {
    // SAFETY: telemetry's arguments.
    unsafe { run(params, info, pipes_body) }
}
unsafe extern "C" fn cb_lb(
    _: *const c_char,
    params: *const c_char,
    info: *mut sys::rte_tel_data,
) -> c_int {
    // SAFETY: telemetry's arguments.
    unsafe { run(params, info, lb_body) }
}

fn status_body(st: &Status, _: Option<&str>, d: &mut Dict) -> bool {
    d.u64("node", st.node.into())
        .u64("cluster_id", st.cluster_id.into())
        .u64("incarnation", st.incarnation)
        .str("role", &st.role)
        .str(
            "master",
            &st.master
                .map(|m| m.to_string())
                .unwrap_or_else(|| "none".into()),
        )
        .bool("is_master", st.master == Some(st.node))
        .u64("term", st.term)
        .u64("uptime_ms", st.uptime_ms)
        .u64("heartbeat_ms", st.heartbeat_ms)
        .u64("cluster_nodes", st.cluster.len() as u64)
        .u64("ports", st.ports.len() as u64)
        .u64("ports_up", st.ports.iter().filter(|p| p.up).count() as u64)
        .u64("pipes", st.pipes.len() as u64)
        .u64("rounds", st.round.rounds)
        .u64("last_round_bytes", st.round.last_round_bytes)
        .u64("last_round_frames", st.round.last_round_frames)
        .u64("control_loop_max_us", st.round.control_loop_max_us)
        .u64("frames_rejected", st.rejects.iter().map(|r| r.1).sum())
        .u64("watchdog_stalls", st.watchdog_stalls)
        .u64("cpu_util_ppm", ppm(st.system.cpu_util))
        .u64("mem_util_ppm", ppm(st.system.mem_util))
        .str("load1", &dec(st.system.load1, 2))
        .u64("rss_bytes", st.system.rss_bytes);
    d.dict("rejects", |r| {
        for (reason, n) in &st.rejects {
            r.u64(&crate::metrics::reason_label(reason), *n);
        }
    });
    d.dict("datapath", |r| {
        for (reason, n) in &st.datapath {
            r.u64(&crate::metrics::snake_case(reason), *n);
        }
    });
    true
}

/// One node of the table; its ports as nested dicts only if `ports` (the
/// single-node form), else as counts and a bitmap (the listing stays small).
fn node_dict(n: &NodeStatus, d: &mut Dict, ports: bool) {
    let up_mask = n
        .ports
        .iter()
        .filter(|p| p.up && p.idx < 64)
        .fold(0u64, |m, p| m | 1 << p.idx);
    d.u64("node", n.node.into())
        .str("state", &n.state)
        .u64("priority", n.priority.into())
        .u64("incarnation", n.incarnation)
        .u64("version", n.version.into())
        .u64("last_heard_ms_ago", n.last_heard_ms_ago)
        .u64("cores", n.cores.into())
        .u64("cpu_util_ppm", ppm(n.cpu_util))
        .str("load1", &dec(n.load1, 2))
        .u64("mem_util_ppm", ppm(n.mem_util))
        .u64("ports", n.ports.len() as u64)
        .u64("ports_up", n.ports.iter().filter(|p| p.up).count() as u64)
        .u64("ports_up_mask", up_mask)
        .u64("pipes", n.pipes.len() as u64);
    if !ports {
        return;
    }
    for p in &n.ports {
        d.dict(&format!("port{}", p.idx), |q| {
            q.str("mac", &p.mac)
                .bool("up", p.up)
                .bool("reachable", p.reachable)
                .u64("utilisation_ppm", ppm(p.utilisation))
                .u64("load_ppm", ppm(p.load))
                .u64("rtt_ns", (p.rtt_us * 1e3).max(0.0) as u64);
        });
    }
}

fn cluster_body(st: &Status, p: Option<&str>, d: &mut Dict) -> bool {
    if let Some(p) = p {
        let Some(n) = p
            .parse::<u16>()
            .ok()
            .and_then(|id| st.cluster.iter().find(|n| n.node == id))
        else {
            return false;
        };
        node_dict(n, d, true);
        return true;
    }
    d.str(
        "master",
        &st.master
            .map(|m| m.to_string())
            .unwrap_or_else(|| "none".into()),
    )
    .u64("term", st.term)
    .u64("nodes", st.cluster.len() as u64);
    for n in &st.cluster {
        d.dict(&n.node.to_string(), |q| node_dict(n, q, false));
    }
    true
}

fn port_dict(p: &LocalPortStatus, d: &mut Dict) {
    let c = &p.counters;
    d.u64("idx", p.idx.into())
        .str("name", &p.name)
        .str("mac", &p.mac)
        .bool("up", p.up)
        .bool("link_up", p.link_up)
        .u64("bandwidth_mbps", p.bandwidth_mbps)
        .u64("rate_bps", p.rate_bps.max(0.0) as u64)
        .u64("utilisation_ppm", ppm(p.utilisation))
        .u64("load_ppm", ppm(p.load))
        .u64("loss_ppm", ppm(p.loss_rate))
        .u64("overflow_ppm", ppm(p.overflow_rate))
        .u64("rx_packets", c.rx_packets)
        .u64("tx_packets", c.tx_packets)
        .u64("rx_bytes", c.rx_bytes)
        .u64("tx_bytes", c.tx_bytes)
        .u64("drops", c.drops)
        .u64("errors", c.errors)
        .u64("ring_full", c.ring_full)
        .u64("ethdev_rx_packets", p.ethdev_rx_packets)
        .u64("ethdev_tx_packets", p.ethdev_tx_packets)
        .u64("ethdev_rx_bytes", p.ethdev_rx_bytes)
        .u64("ethdev_tx_bytes", p.ethdev_tx_bytes)
        .u64("ethdev_rx_missed", p.ethdev_rx_missed)
        .u64("ethdev_rx_errors", p.ethdev_rx_errors)
        .u64("ethdev_tx_errors", p.ethdev_tx_errors);
}

fn ports_body(st: &Status, p: Option<&str>, d: &mut Dict) -> bool {
    if let Some(p) = p {
        let Some(port) = p
            .parse::<u8>()
            .ok()
            .and_then(|i| st.ports.iter().find(|q| q.idx == i))
        else {
            return false;
        };
        port_dict(port, d);
        return true;
    }
    for port in &st.ports {
        d.dict(&port.idx.to_string(), |q| port_dict(port, q));
    }
    true
}

fn pipe_dict(p: &PipeStatus, d: &mut Dict) {
    let c = &p.counters;
    d.u64("id", p.id.into())
        .str("state", &p.state)
        .u64("priority", p.params.priority.into())
        .u64("threshold_bps", p.params.threshold_bps)
        .u64("buffer", p.params.buffer.into())
        .u64("cap_bps", p.cap_bps)
        .u64("queued", p.queued.into())
        .u64("tx_rate_bps", p.tx_rate_bps.max(0.0) as u64)
        .u64("tx_msgs", c.tx_msgs)
        .u64("tx_bytes", c.tx_bytes)
        .u64("rx_msgs", c.rx_msgs)
        .u64("rx_bytes", c.rx_bytes)
        .u64("tx_refused", c.tx_refused)
        .u64("tx_dropped", c.tx_dropped)
        .u64("rx_dropped", c.rx_dropped)
        .u64("tx_deferred", c.tx_deferred);
}

fn pipes_body(st: &Status, p: Option<&str>, d: &mut Dict) -> bool {
    if let Some(p) = p {
        let Some(pipe) = p
            .parse::<u16>()
            .ok()
            .and_then(|i| st.pipes.iter().find(|q| q.id == i))
        else {
            return false;
        };
        pipe_dict(pipe, d);
        return true;
    }
    for pipe in &st.pipes {
        d.dict(&pipe.id.to_string(), |q| pipe_dict(pipe, q));
    }
    true
}

fn lb_body(st: &Status, _: Option<&str>, d: &mut Dict) -> bool {
    let b = &st.balancer;
    d.bool("enabled", b.enabled)
        .bool("balancing", b.balancing)
        .u64("mean_load_ppm", ppm(b.mean))
        .str("balance_degree_pct", &dec(b.balance_degree, 4))
        .str("threshold_pct", &dec(b.threshold, 4))
        .u64_array("loads_ppm", b.loads.iter().map(|l| ppm(*l)));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_are_cleaned() {
        assert_eq!(clean_key("a b-c/d_0").to_str().unwrap(), "a_b_c/d_0");
        assert_eq!(clean_key("").to_str().unwrap(), "_");
        let long = "é".repeat(100);
        let v = clean_value(&long);
        assert!(v.as_bytes().len() <= MAX_STRING);
        assert!(v.to_str().is_ok());
        assert_eq!(clean_value("a\"b\\c\n").to_str().unwrap(), "a_b_c_");
        assert_eq!(ppm(0.5), 500_000);
        assert_eq!(ppm(f64::NAN), 0);
        assert_eq!(ppm(-1.0), 0);
    }

    /// Tables past telemetry's limits (300 nodes, long and hostile strings)
    /// are truncated, not errors; bad parameters answer an error. Telemetry
    /// data structs work without EAL, so the callbacks run here directly.
    #[test]
    fn callbacks_respect_limits() {
        use crate::engine::status::PeerPortStatus;
        let mut st = Status {
            node: 1,
            role: "x".repeat(500),
            ..Default::default()
        };
        for n in 0..300u16 {
            st.cluster.push(NodeStatus {
                node: n,
                state: "\"quoted\\state\"\n".repeat(20),
                ports: (0..16u8)
                    .map(|idx| PeerPortStatus {
                        idx,
                        rtt_us: f64::NAN,
                        utilisation: f64::INFINITY,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            });
        }
        for i in 0..16u8 {
            st.ports.push(LocalPortStatus {
                idx: i,
                name: format!(
                    "net_ring{i},with=a very long device argument string {}",
                    "y".repeat(200)
                ),
                ..Default::default()
            });
        }
        st.balancer.loads = vec![0.5; 1000];
        st.rejects = (0..400)
            .map(|i| (format!("reason number {i}"), i))
            .collect();
        *STATUS.write().unwrap() = Some(Arc::new(Mutex::new(st)));
        let cbs: [Callback; 5] = [cb_status, cb_cluster, cb_ports, cb_pipes, cb_lb];
        let call = |cb: Callback, param: Option<&str>| -> c_int {
            let p = param.map(|p| CString::new(p).unwrap());
            // SAFETY: a fresh container, freed below; `p` outlives the call.
            unsafe {
                let d = sys::rte_tel_data_alloc();
                assert!(!d.is_null());
                let rc = cb(
                    c"/dmpd/x".as_ptr(),
                    p.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
                    d,
                );
                sys::rte_tel_data_free(d);
                rc
            }
        };
        for cb in cbs {
            assert_eq!(call(cb, None), 0);
            assert_eq!(call(cb, Some("")), 0);
        }
        assert_eq!(call(cb_ports, Some("15")), 0);
        assert_eq!(call(cb_ports, Some("16")), -1);
        assert_eq!(call(cb_ports, Some("abc")), -1);
        assert_eq!(call(cb_cluster, Some("299")), 0);
        assert_eq!(call(cb_cluster, Some("70000")), -1);
        assert_eq!(call(cb_pipes, Some("1")), -1);
        // The listing stopped at the reply budget and says so.
        let st = snapshot().unwrap();
        // SAFETY: a fresh container, freed below.
        unsafe {
            let c = sys::rte_tel_data_alloc();
            let mut d = Dict::start(c);
            assert!(cluster_body(&st, None, &mut d));
            assert!(d.truncated());
            let b = d.budget.borrow();
            assert!(
                b.containers < MAX_CONTAINERS && b.bytes < 1000,
                "{} {}",
                b.containers,
                b.bytes
            );
            assert!(d.n < 100, "{} nodes listed", d.n);
            drop(b);
            d.mark_truncated();
            sys::rte_tel_data_free(c);
        }
        *STATUS.write().unwrap() = None;
        assert_eq!(call(cb_status, None), -1);
    }
}

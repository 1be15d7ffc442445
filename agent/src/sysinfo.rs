//! Local system metrics from `/proc` and `/sys` (SPEC section 3: cores, CPU
//! utilisation, load 1/5/15, IO load, memory, temperature, voltage,
//! hugepages).
//!
//! [`SystemSampler`] reads under a root directory (`/` normally; tests pass
//! a fake tree). Rates come from deltas between two samples, so the first
//! sample reports 0 for them. Nothing here panics on missing or odd files: a
//! value that cannot be read is 0 (or `None` for sensors) and counts in
//! [`SystemMetrics::read_errors`]. Absent sensors (no hwmon, no thermal
//! zone) are not errors; a sensor file that exists but cannot be read is.
//!
//! Files read each sample: `proc/stat` (first `cpu` line),
//! `proc/loadavg`, `proc/meminfo`, `proc/diskstats`,
//! `sys/devices/system/cpu/online`, `sys/class/hwmon/*/temp*_input`,
//! `sys/class/hwmon/*/in*_input`, `sys/class/thermal/thermal_zone*/temp`.
//! Some hwmon drivers take milliseconds to answer; sample from the control
//! lcore, never from a polling one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One sample of the local system.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SystemMetrics {
    /// Online CPUs (`/sys/devices/system/cpu/online`, else the `cpuN` lines
    /// of `/proc/stat`).
    pub cores: u32,
    /// CPU utilisation over all CPUs since the previous sample, 0..=1
    /// (busy = all but idle and iowait). 0 on the first sample.
    pub cpu_util: f64,
    /// Load averages (`/proc/loadavg`).
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    /// Fraction of the time since the previous sample during which the
    /// busiest block device was doing I/O (`/proc/diskstats` field 13),
    /// 0..=1; 0 on the first sample. `loop` and `ram` devices are ignored.
    pub io_load: f64,
    /// `MemTotal` in bytes.
    pub mem_total_bytes: u64,
    /// `1 - MemAvailable / MemTotal`, 0..=1.
    pub mem_util: f64,
    /// Hottest sensor in degrees Celsius (hwmon `temp*_input` and thermal
    /// zones), if any is readable.
    pub temperature_c: Option<f32>,
    /// First hwmon voltage input (`in*_input`) in volts, if any.
    pub voltage_v: Option<f32>,
    /// `Hugepagesize` in bytes (0 when unknown).
    pub hugepage_size_bytes: u64,
    /// `HugePages_Free` (pages of the default size).
    pub hugepages_free: u64,
    /// Reads or parses that failed since the sampler was created.
    pub read_errors: u64,
}

/// CPU time counters of the aggregate `cpu` line, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuTimes {
    busy: u64,
    total: u64,
}

/// Counter state kept between samples.
#[derive(Debug, Clone)]
struct Previous {
    now_ns: u64,
    cpu: Option<CpuTimes>,
    disk_io_ms: HashMap<String, u64>,
}

/// Samples [`SystemMetrics`] under a root directory.
#[derive(Debug)]
pub struct SystemSampler {
    root: PathBuf,
    epoch: Instant,
    previous: Option<Previous>,
    read_errors: u64,
}

impl SystemSampler {
    /// A sampler reading `<root>/proc` and `<root>/sys`.
    pub fn new(root: PathBuf) -> Self {
        SystemSampler {
            root,
            epoch: Instant::now(),
            previous: None,
            read_errors: 0,
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads or parses that failed so far.
    pub fn read_errors(&self) -> u64 {
        self.read_errors
    }

    /// Samples now (monotonic clock).
    pub fn sample(&mut self) -> SystemMetrics {
        let now_ns = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.sample_at(now_ns)
    }

    /// Samples at `now_ns`, a monotonic time in nanoseconds (any origin;
    /// only differences between samples are used).
    pub fn sample_at(&mut self, now_ns: u64) -> SystemMetrics {
        let mut m = SystemMetrics::default();
        let previous = self.previous.take();

        // CPU utilisation and the core count fallback.
        let stat = self.read("proc/stat");
        let cpu = stat.as_deref().and_then(parse_cpu_times);
        if stat.is_some() && cpu.is_none() {
            self.read_errors += 1;
        }
        if let (Some(now), Some(before)) = (cpu, previous.as_ref().and_then(|p| p.cpu)) {
            let total = now.total.saturating_sub(before.total);
            let busy = now.busy.saturating_sub(before.busy).min(total);
            if total > 0 {
                m.cpu_util = busy as f64 / total as f64;
            }
        }
        m.cores = match self
            .read_opt("sys/devices/system/cpu/online")
            .as_deref()
            .map(parse_cpu_list)
        {
            Some(Some(n)) => n,
            found => {
                if found.is_some() {
                    self.read_errors += 1;
                }
                let n = stat.as_deref().map_or(0, count_stat_cpus);
                if n == 0 {
                    self.read_errors += 1;
                }
                n
            }
        };

        // Load averages.
        if let Some(text) = self.read("proc/loadavg") {
            match parse_loadavg(&text) {
                Some((l1, l5, l15)) => (m.load1, m.load5, m.load15) = (l1, l5, l15),
                None => self.read_errors += 1,
            }
        }

        // Memory and hugepages.
        if let Some(text) = self.read("proc/meminfo") {
            let info = parse_meminfo(&text);
            match info.total_kb {
                Some(total) if total > 0 => {
                    m.mem_total_bytes = total.saturating_mul(1024);
                    let available = info.available_kb.or_else(|| {
                        Some(
                            info.free_kb?
                                + info.buffers_kb.unwrap_or(0)
                                + info.cached_kb.unwrap_or(0),
                        )
                    });
                    match available {
                        Some(a) => m.mem_util = (1.0 - a as f64 / total as f64).clamp(0.0, 1.0),
                        None => self.read_errors += 1,
                    }
                }
                _ => self.read_errors += 1,
            }
            m.hugepage_size_bytes = info.hugepage_kb.unwrap_or(0).saturating_mul(1024);
            m.hugepages_free = info.hugepages_free.unwrap_or(0);
        }

        // IO load: the busiest device's busy time over the elapsed time.
        let mut disk_io_ms = HashMap::new();
        if let Some(text) = self.read("proc/diskstats") {
            match parse_diskstats(&text) {
                Some(d) => disk_io_ms = d,
                None => self.read_errors += 1,
            }
        }
        if let Some(before) = &previous {
            let elapsed_ns = now_ns.saturating_sub(before.now_ns);
            let busiest_ms = disk_io_ms
                .iter()
                .filter_map(|(dev, ms)| Some(ms.saturating_sub(*before.disk_io_ms.get(dev)?)))
                .max()
                .unwrap_or(0);
            if elapsed_ns > 0 {
                m.io_load = (busiest_ms as f64 * 1e6 / elapsed_ns as f64).clamp(0.0, 1.0);
            }
        }

        // Sensors.
        m.temperature_c = self.temperature();
        m.voltage_v = self.voltage();

        self.previous = Some(Previous {
            now_ns,
            cpu: cpu.or(previous.and_then(|p| p.cpu)),
            disk_io_ms,
        });
        m.read_errors = self.read_errors;
        m
    }

    /// Reads a file that should exist; a failure counts.
    fn read(&mut self, rel: &str) -> Option<String> {
        match std::fs::read_to_string(self.root.join(rel)) {
            Ok(s) => Some(s),
            Err(_) => {
                self.read_errors += 1;
                None
            }
        }
    }

    /// Reads a file that may be absent; only other failures count.
    fn read_opt(&mut self, rel: &str) -> Option<String> {
        self.read_path_opt(&self.root.join(rel))
    }

    fn read_path_opt(&mut self, path: &Path) -> Option<String> {
        match std::fs::read_to_string(path) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(_) => {
                self.read_errors += 1;
                None
            }
        }
    }

    /// Reads a sensor file holding an integer in thousandths (millidegrees,
    /// millivolts); a failure counts.
    fn read_milli(&mut self, path: &Path) -> Option<f32> {
        let text = self.read_path_opt(path)?;
        match text.trim().parse::<i64>() {
            Ok(v) => Some(v as f32 / 1000.0),
            Err(_) => {
                self.read_errors += 1;
                None
            }
        }
    }

    /// The hottest readable sensor, in degrees Celsius.
    fn temperature(&mut self) -> Option<f32> {
        let mut files = self.hwmon_inputs("temp");
        for zone in sorted_entries(&self.root.join("sys/class/thermal"), "thermal_zone") {
            files.push(zone.join("temp"));
        }
        let mut hottest: Option<f32> = None;
        for f in files {
            if let Some(t) = self.read_milli(&f) {
                // Disconnected inputs read as absurd values; skip them.
                if (-100.0..=250.0).contains(&t) {
                    hottest = Some(hottest.map_or(t, |h| h.max(t)));
                }
            }
        }
        hottest
    }

    /// The first readable hwmon voltage input, in volts.
    fn voltage(&mut self) -> Option<f32> {
        for f in self.hwmon_inputs("in") {
            if let Some(v) = self.read_milli(&f) {
                return Some(v);
            }
        }
        None
    }

    /// `sys/class/hwmon/hwmon*/<kind><n>_input` files, in natural order.
    fn hwmon_inputs(&self, kind: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for dir in sorted_entries(&self.root.join("sys/class/hwmon"), "hwmon") {
            for f in sorted_entries(&dir, kind) {
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let index = name
                    .strip_prefix(kind)
                    .and_then(|r| r.strip_suffix("_input"));
                if index.is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit())) {
                    out.push(f);
                }
            }
        }
        out
    }
}

/// Entries of `dir` whose names start with `prefix`, shorter names first
/// then by name (so `hwmon2` comes before `hwmon10`). Empty if `dir` is
/// missing.
fn sorted_entries(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    names.into_iter().map(|n| dir.join(n)).collect()
}

/// The aggregate `cpu` line of `/proc/stat`: user nice system idle iowait
/// irq softirq steal (guest time is already inside user and nice).
fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().fold(0u64, |a, &x| a.saturating_add(x));
    let idle = v[3].saturating_add(v.get(4).copied().unwrap_or(0));
    Some(CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

/// Number of `cpuN` lines in `/proc/stat`.
fn count_stat_cpus(stat: &str) -> u32 {
    let n = stat
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .and_then(|w| w.strip_prefix("cpu"))
                .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
        })
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A CPU list such as `0-3,8,10-11` -> its size.
fn parse_cpu_list(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut n: u32 = 0;
    for part in text.split(',') {
        let count = match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                b.checked_sub(a)?.checked_add(1)?
            }
            None => {
                part.trim().parse::<u32>().ok()?;
                1
            }
        };
        n = n.checked_add(count)?;
    }
    Some(n)
}

fn parse_loadavg(text: &str) -> Option<(f64, f64, f64)> {
    let mut f = text
        .split_whitespace()
        .map(|w| w.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0));
    Some((f.next()??, f.next()??, f.next()??))
}

#[derive(Debug, Default)]
struct MemInfo {
    total_kb: Option<u64>,
    available_kb: Option<u64>,
    free_kb: Option<u64>,
    buffers_kb: Option<u64>,
    cached_kb: Option<u64>,
    hugepage_kb: Option<u64>,
    hugepages_free: Option<u64>,
}

fn parse_meminfo(text: &str) -> MemInfo {
    let mut m = MemInfo::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let value = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok());
        let slot = match key.trim() {
            "MemTotal" => &mut m.total_kb,
            "MemAvailable" => &mut m.available_kb,
            "MemFree" => &mut m.free_kb,
            "Buffers" => &mut m.buffers_kb,
            "Cached" => &mut m.cached_kb,
            "Hugepagesize" => &mut m.hugepage_kb,
            "HugePages_Free" => &mut m.hugepages_free,
            _ => continue,
        };
        *slot = value;
    }
    m
}

/// Device name -> milliseconds spent doing I/O (field 13). `None` if lines
/// were present but none of them could be parsed.
fn parse_diskstats(text: &str) -> Option<HashMap<String, u64>> {
    let mut out = HashMap::new();
    let (mut lines, mut parsed) = (0, 0);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        lines += 1;
        let (Some(name), Some(ms)) = (f.get(2), f.get(12).and_then(|v| v.parse::<u64>().ok()))
        else {
            continue;
        };
        parsed += 1;
        if !name.starts_with("loop") && !name.starts_with("ram") {
            out.insert((*name).to_owned(), ms);
        }
    }
    if lines > 0 && parsed == 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_list() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn cpu_times() {
        let t = parse_cpu_times("cpu  10 0 10 70 10 0 0 0 5 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(
            t,
            CpuTimes {
                busy: 20,
                total: 100
            }
        );
        assert_eq!(parse_cpu_times("cpu 1 2\n"), None);
        assert_eq!(parse_cpu_times("cpu a b c d\n"), None);
        assert_eq!(parse_cpu_times(""), None);
        assert_eq!(count_stat_cpus("cpu 1 2 3 4\ncpu0 1\ncpu1 2\nintr 5\n"), 2);
    }

    #[test]
    fn loadavg_and_diskstats() {
        assert_eq!(
            parse_loadavg("0.50 1.00 2.25 1/100 42\n"),
            Some((0.5, 1.0, 2.25))
        );
        assert_eq!(parse_loadavg("0.50 x"), None);
        let d = parse_diskstats(
            "   8       0 sda 1 2 3 4 5 6 7 8 0 1234 99\n   7 0 loop0 1 2 3 4 5 6 7 8 0 999 1\nshort\n",
        )
        .unwrap();
        assert_eq!(d.get("sda"), Some(&1234));
        assert!(!d.contains_key("loop0"));
        assert_eq!(parse_diskstats("garbage line here\n"), None);
        assert_eq!(parse_diskstats(""), Some(HashMap::new()));
    }
}

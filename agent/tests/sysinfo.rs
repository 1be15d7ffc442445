//! System metrics from a fake /proc and /sys tree, and a sanity check on the
//! real one.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use agent::sysinfo::{SystemMetrics, SystemSampler};

/// A fresh directory under the system temp dir, removed on drop.
struct FakeRoot(PathBuf);

impl FakeRoot {
    fn new(name: &str) -> FakeRoot {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("dmpd-sysinfo-{}-{n}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        FakeRoot(dir)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for FakeRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const SECOND: u64 = 1_000_000_000;

fn stat(user: u64, system: u64, idle: u64, iowait: u64) -> String {
    format!(
        "cpu  {user} 0 {system} {idle} {iowait} 0 0 0 0 0\n\
         cpu0 1 0 1 1 0 0 0 0 0 0\ncpu1 1 0 1 1 0 0 0 0 0 0\n\
         intr 12345 0 0\nctxt 99\nbtime 1700000000\n"
    )
}

/// A diskstats line with `ms` in field 13 (ms doing I/O).
fn disk(major: u32, name: &str, ms: u64) -> String {
    format!("   {major}       0 {name} 100 0 800 50 200 0 1600 70 0 {ms} 120 0 0 0 0 0 0\n")
}

fn fake_tree(root: &FakeRoot) {
    root.write("proc/stat", &stat(100, 100, 700, 100));
    root.write("proc/loadavg", "0.25 1.50 2.75 3/456 7890\n");
    root.write(
        "proc/meminfo",
        "MemTotal:        1000000 kB\nMemFree:          100000 kB\nMemAvailable:     250000 kB\n\
         Buffers:            1000 kB\nCached:            20000 kB\nHugePages_Total:      64\n\
         HugePages_Free:       10\nHugePages_Rsvd:        0\nHugepagesize:       2048 kB\n",
    );
    root.write(
        "proc/diskstats",
        &(disk(8, "sda", 1000) + &disk(8, "sdb", 500) + &disk(7, "loop0", 0)),
    );
    root.write("sys/devices/system/cpu/online", "0-3,6\n");
    root.write("sys/class/hwmon/hwmon0/name", "coretemp\n");
    root.write("sys/class/hwmon/hwmon0/temp1_input", "45000\n");
    root.write("sys/class/hwmon/hwmon0/temp2_input", "52500\n");
    root.write("sys/class/hwmon/hwmon0/temp2_label", "Core 0\n");
    root.write("sys/class/hwmon/hwmon0/in0_input", "1200\n");
    root.write("sys/class/hwmon/hwmon10/in0_input", "3300\n");
    root.write("sys/class/thermal/thermal_zone0/temp", "48000\n");
}

#[test]
fn two_samples_give_exact_rates() {
    let root = FakeRoot::new("exact");
    fake_tree(&root);
    let mut s = SystemSampler::new(root.path().to_path_buf());
    let first = s.sample_at(5 * SECOND);
    let expected_static = SystemMetrics {
        cores: 5,
        cpu_util: 0.0,
        load1: 0.25,
        load5: 1.5,
        load15: 2.75,
        io_load: 0.0,
        mem_total_bytes: 1_000_000 * 1024,
        mem_util: 0.75,
        temperature_c: Some(52.5),
        voltage_v: Some(1.2),
        hugepage_size_bytes: 2 << 20,
        hugepages_free: 10,
        read_errors: 0,
    };
    assert_eq!(first, expected_static);

    // One second later: 400 ticks of which 100 busy (iowait counts as
    // idle); sdb was busy 400 ms, sda 250 ms.
    root.write("proc/stat", &stat(150, 150, 950, 150));
    root.write(
        "proc/diskstats",
        &(disk(8, "sda", 1250) + &disk(8, "sdb", 900) + &disk(7, "loop0", 999_999)),
    );
    root.write("sys/class/thermal/thermal_zone0/temp", "61000\n");
    let second = s.sample_at(6 * SECOND);
    assert_eq!(
        second,
        SystemMetrics {
            cpu_util: 0.25,
            io_load: 0.4,
            temperature_c: Some(61.0),
            ..expected_static
        }
    );

    // Half a second later, a fully busy CPU and disk.
    root.write("proc/stat", &stat(350, 150, 950, 150));
    root.write(
        "proc/diskstats",
        &(disk(8, "sda", 1250 + 600) + &disk(8, "sdb", 900)),
    );
    let third = s.sample_at(6 * SECOND + SECOND / 2);
    assert_eq!((third.cpu_util, third.io_load), (1.0, 1.0));
}

#[test]
fn counters_going_backwards_or_no_time_passing_give_zero() {
    let root = FakeRoot::new("backwards");
    fake_tree(&root);
    let mut s = SystemSampler::new(root.path().to_path_buf());
    s.sample_at(SECOND);
    root.write("proc/stat", &stat(10, 10, 10, 10));
    root.write("proc/diskstats", &disk(8, "sda", 10));
    let m = s.sample_at(2 * SECOND);
    assert_eq!((m.cpu_util, m.io_load), (0.0, 0.0));
    let m = s.sample_at(2 * SECOND);
    assert_eq!((m.cpu_util, m.io_load), (0.0, 0.0));
    // A new disk appearing has no previous value: not counted yet.
    root.write(
        "proc/diskstats",
        &(disk(8, "sda", 10) + &disk(8, "sdc", 5000)),
    );
    assert_eq!(s.sample_at(3 * SECOND).io_load, 0.0);
    assert_eq!(s.read_errors(), 0);
}

#[test]
fn missing_tree_gives_zeroes_and_counts_errors() {
    let root = FakeRoot::new("empty");
    let mut s = SystemSampler::new(root.path().to_path_buf());
    let m = s.sample_at(0);
    assert_eq!(m.cores, 0);
    assert_eq!(m.cpu_util, 0.0);
    assert_eq!((m.load1, m.load5, m.load15), (0.0, 0.0, 0.0));
    assert_eq!((m.mem_total_bytes, m.mem_util), (0, 0.0));
    assert_eq!((m.temperature_c, m.voltage_v), (None, None));
    assert_eq!((m.hugepage_size_bytes, m.hugepages_free), (0, 0));
    // stat, loadavg, meminfo, diskstats, and no core count from anywhere.
    assert_eq!(m.read_errors, 5);
    let m = s.sample_at(SECOND);
    assert_eq!(m.read_errors, 10);
    assert_eq!((m.cpu_util, m.io_load), (0.0, 0.0));
}

#[test]
fn odd_files_do_not_panic() {
    let root = FakeRoot::new("odd");
    root.write("proc/stat", "cpu x y z\n");
    root.write("proc/loadavg", "nan 1\n");
    root.write("proc/meminfo", "MemTotal: lots kB\nHugepagesize: 2048 kB\n");
    root.write("proc/diskstats", "  8 0 sda 1 2\n");
    root.write("sys/devices/system/cpu/online", "\n");
    root.write("sys/class/hwmon/hwmon0/temp1_input", "not a number\n");
    root.write("sys/class/hwmon/hwmon0/temp2_input", "-999999\n");
    root.write("sys/class/hwmon/hwmon0/in1_input", "\u{0}\u{1}");
    root.write("sys/class/hwmon/hwmon0/in2_input", "900\n");
    root.write("sys/class/hwmon/hwmon0/inx_input", "5\n");
    let mut s = SystemSampler::new(root.path().to_path_buf());
    let m = s.sample_at(0);
    assert_eq!(m.cores, 0);
    assert_eq!(m.load1, 0.0);
    assert_eq!(m.mem_total_bytes, 0);
    assert_eq!(m.hugepage_size_bytes, 2048 * 1024);
    // The out-of-range reading is ignored; the bad voltage file is skipped.
    assert_eq!(m.temperature_c, None);
    assert_eq!(m.voltage_v, Some(0.9));
    // stat, online, no cpuN lines, loadavg, MemTotal, diskstats,
    // temp1_input, in1_input.
    assert_eq!(m.read_errors, 8);
    // A binary or huge file in place of a counter does not panic either.
    root.write("proc/stat", &"cpu ".repeat(10_000));
    root.write(
        "proc/diskstats",
        &format!("1 2 {} 4\n", "x".repeat(100_000)),
    );
    s.sample_at(SECOND);
}

#[test]
fn core_count_falls_back_to_proc_stat() {
    let root = FakeRoot::new("cores");
    fake_tree(&root);
    fs::remove_file(root.path().join("sys/devices/system/cpu/online")).unwrap();
    let m = SystemSampler::new(root.path().to_path_buf()).sample_at(0);
    assert_eq!(m.cores, 2);
    assert_eq!(m.read_errors, 0);
}

#[test]
fn mem_available_falls_back_to_free_buffers_cached() {
    let root = FakeRoot::new("memfree");
    fake_tree(&root);
    root.write(
        "proc/meminfo",
        "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 350 kB\n",
    );
    let m = SystemSampler::new(root.path().to_path_buf()).sample_at(0);
    assert_eq!(m.mem_util, 0.5);
    assert_eq!((m.hugepage_size_bytes, m.hugepages_free), (0, 0));
}

#[test]
fn real_system_is_in_range() {
    let mut s = SystemSampler::new(PathBuf::from("/"));
    let first = s.sample();
    // Some work between the samples, so that the CPU counters move.
    let mut x = 0u64;
    let until = std::time::Instant::now() + std::time::Duration::from_millis(50);
    while std::time::Instant::now() < until {
        x = x.wrapping_mul(31).wrapping_add(7);
    }
    std::hint::black_box(x);
    let m = s.sample();
    for m in [&first, &m] {
        assert!(m.cores >= 1, "{m:?}");
        assert!((0.0..=1.0).contains(&m.cpu_util), "{m:?}");
        assert!((0.0..=1.0).contains(&m.io_load), "{m:?}");
        assert!(
            (0.0..=1.0).contains(&m.mem_util) && m.mem_util > 0.0,
            "{m:?}"
        );
        assert!(m.load1 >= 0.0 && m.load5 >= 0.0 && m.load15 >= 0.0, "{m:?}");
        assert!(m.mem_total_bytes > 1 << 26, "{m:?}");
        assert!(m.hugepage_size_bytes >= 4096, "{m:?}");
        if let Some(t) = m.temperature_c {
            assert!((-100.0..=250.0).contains(&t), "{m:?}");
        }
    }
    assert_eq!(first.cpu_util, 0.0);
    assert!(m.cpu_util > 0.0, "{m:?}");
}

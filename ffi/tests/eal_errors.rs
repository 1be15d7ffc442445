//! EAL errors are clear messages and exit codes, never crashes. Each case
//! runs the smoke binary as its own process, because EAL initialises once.

use std::process::Command;

fn smoke(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dmpd-ffi-smoke"))
        .args(args)
        .output()
        .expect("run dmpd-ffi-smoke");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BASE: [&str; 5] = ["--no-huge", "-m", "256", "--no-pci", "--no-shconf"];

#[test]
fn bad_eal_argument_is_a_clear_error() {
    let mut a = vec!["--port", "net_ring0", "--"];
    a.extend(BASE);
    a.push("--definitely-not-an-eal-flag");
    let (code, _out, err) = smoke(&a);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("error: rte_eal_init failed"), "{err}");
    assert!(err.contains("Invalid argument"), "{err}");
}

#[test]
fn unknown_vdev_driver_is_a_clear_error() {
    let mut a = vec!["--port", "net_bogus0", "--"];
    a.extend(BASE);
    a.push("--vdev=net_bogus0");
    let (code, _out, err) = smoke(&a);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("error: rte_eal_init failed"), "{err}");
}

#[test]
fn port_that_was_not_created_is_named_in_the_error() {
    let mut a = vec!["--port", "net_ring7", "--"];
    a.extend(BASE);
    a.push("--vdev=net_ring0");
    let (code, _out, err) = smoke(&a);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no DPDK port named \"net_ring7\""), "{err}");
}

#[test]
fn loopback_smoke_run_passes() {
    let mut a = vec!["--frames", "300", "--port", "net_ring0", "--"];
    a.extend(BASE);
    a.push("--vdev=net_ring0");
    let (code, out, err) = smoke(&a);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("sent 300, received 300, payloads identical"),
        "{out}"
    );
    assert!(out.contains("smoke: OK"), "{out}");
}

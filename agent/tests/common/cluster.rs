//! The emulated cluster (`scripts/cluster`) driven from integration tests:
//! one namespace per node, agents started from this package's binaries.
// Each test binary uses a different part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent::ctl::{request, Request};
use serde_json::Value;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The namespace prefix `scripts/cluster` uses (`DMPD_NS`, default dmpd).
pub fn ns() -> String {
    std::env::var("DMPD_NS").unwrap_or_else(|_| "dmpd".into())
}

pub struct Cluster {
    pub run: PathBuf,
    pub nodes: u16,
}

impl Cluster {
    pub fn script(run: &Path, args: &[&str]) -> std::process::Output {
        Command::new("bash")
            .arg(repo().join("scripts/cluster"))
            .args(args)
            .env("DMPD_RUN", run)
            .env("DMPD_AGENT", env!("CARGO_BIN_EXE_dmpd-agent"))
            .env("DMPD_STREAM", env!("CARGO_BIN_EXE_dmpd-stream"))
            .env("RUST_LOG", "info")
            .output()
            .expect("run scripts/cluster")
    }

    /// Runs `scripts/cluster ARGS` for this cluster; panics on failure.
    pub fn sh(&self, args: &[&str]) {
        let out = Self::script(&self.run, args);
        assert!(
            out.status.success(),
            "cluster {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn up(name: &str, nodes: u16, ports: u16, period_ms: u64) -> Cluster {
        let run = std::env::temp_dir().join(format!("dmpd-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&run);
        Self::script(&run, &["down"]);
        let out = Self::script(
            &run,
            &[
                "up",
                "-n",
                &nodes.to_string(),
                "-p",
                &ports.to_string(),
                "--period-ms",
                &period_ms.to_string(),
                "--no-start",
                "--no-build",
            ],
        );
        assert!(
            out.status.success(),
            "cluster up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Cluster { run, nodes }
    }

    pub fn config(&self, i: u16) -> PathBuf {
        self.run.join(format!("node{i}.toml"))
    }

    /// Appends TOML to a node's generated configuration (before start).
    pub fn edit_config(&self, i: u16, f: impl FnOnce(String) -> String) {
        let p = self.config(i);
        let s = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, f(s)).unwrap();
    }

    pub fn start(&self, i: u16, app: &[&str]) {
        let mut args = vec!["start".to_string(), i.to_string()];
        args.extend(app.iter().map(|s| s.to_string()));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = Self::script(&self.run, &a);
        assert!(
            out.status.success(),
            "start {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn kill(&self, i: u16, sig: &str) {
        let out = Self::script(&self.run, &["kill", &i.to_string(), sig]);
        assert!(out.status.success(), "kill {i}");
    }

    pub fn port_down(&self, i: u16, p: u16) {
        let out = Self::script(&self.run, &["port-down", &i.to_string(), &p.to_string()]);
        assert!(out.status.success(), "port-down");
    }

    pub fn status(&self, i: u16) -> Option<Value> {
        let r = request(&self.run.join(format!("node{i}.sock")), &Request::Status).ok()?;
        r.status
    }

    pub fn log(&self, i: u16) -> String {
        std::fs::read_to_string(self.run.join(format!("node{i}.log"))).unwrap_or_default()
    }

    pub fn logs(&self) -> String {
        (1..=self.nodes)
            .map(|i| {
                let l = self.log(i);
                let tail: Vec<&str> = l.lines().rev().take(25).collect();
                format!(
                    "--- node {i}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Polls `f` every 20 ms; returns how long it took to hold.
    pub fn wait(&self, timeout: Duration, mut f: impl FnMut(&Cluster) -> bool) -> Option<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if f(self) {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn report(&self, name: &str) -> Option<Value> {
        let s = std::fs::read_to_string(self.run.join(name)).ok()?;
        serde_json::from_str(&s).ok()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        Self::script(&self.run, &["down"]);
    }
}

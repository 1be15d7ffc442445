//! `dmpd-inject`: a hostile host on the cluster's LAN. It captures real DMPD
//! control frames off one interface, then floods another with frames that
//! every agent must reject: frames signed with a wrong key, forged higher
//! terms (validly framed, wrong key), replays of the captured frames as they
//! were and with their term edited, truncated frames, frames at the link's
//! maximum size whose length fields lie, and random garbage with the DMPD
//! EtherType. Raw `AF_PACKET` sockets (root); prints a JSON report.
//!
//! ```text
//! ip netns exec dmpd-sw dmpd-inject --iface hinj --capture-iface n2p0 \
//!     --cluster-id 7 --seconds 10 --rate 110000 \
//!     --dst 02:dd:00:01:00:01 --dst 02:dd:00:01:01:01 ...
//! ```
//!
//! With `--dst` the frames go round-robin to the given MACs (a learning
//! switch forwards each to one port); without it, to the broadcast address
//! (the switch copies each to every port, inside the sender's syscall on a
//! Linux bridge: ~6x the kernel work per frame with 6 ports).
//!
//! Every injected frame carries the injector's own source MAC (spoofing a
//! node's MAC would poison the bridge's learning table, an attack on the
//! switch that no protocol above it can prevent).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use clap::Parser;
use dmpd::wire::{
    AnnounceRepr, AuthMode, ControlFrame, ControlRepr, EthernetAddress, HeaderRepr, HeartbeatRepr,
    KeyRing, Kind, LeaveReason, LeaveRepr, Message, NodeRecord, NodeState, TableRepr,
    DEFAULT_ETHERTYPE, VERSION,
};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "dmpd-inject",
    about = "Flood a DMPD cluster with hostile frames"
)]
struct Args {
    /// Interface to inject on (a port of the cluster's switch).
    #[arg(long)]
    iface: String,
    /// Interface to capture real frames from (for the replays).
    #[arg(long)]
    capture_iface: String,
    /// How long to capture before flooding.
    #[arg(long, default_value_t = 3.0)]
    capture_secs: f64,
    /// At most this many distinct captured frames are kept.
    #[arg(long, default_value_t = 256)]
    capture_max: usize,
    /// The cluster id (frames for another cluster stop at the first check).
    #[arg(long, default_value_t = 7)]
    cluster_id: u32,
    #[arg(long, default_value_t = DEFAULT_ETHERTYPE)]
    ethertype: u16,
    /// Flood duration.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Target rate, frames per second (0: as fast as possible).
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// Frames per sendmmsg(2) call (at most 1024).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Seed of the garbage generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Address frames to this MAC (repeatable; frames go round-robin over
    /// the targets, and a learning switch forwards each to one port).
    /// Without `--dst`, every frame goes to the broadcast address and the
    /// switch copies it to every port.
    #[arg(long, value_parser = parse_dst)]
    dst: Vec<EthernetAddress>,
    /// Sender threads, each with its own socket; the targets are dealt
    /// out among them (thread t sends to targets t, t + threads, ...) and
    /// the rate is split evenly.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Pin sender thread t to CPU `cpus[t % len]` (comma separated).
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
}

fn parse_dst(s: &str) -> Result<EthernetAddress, String> {
    agent::config::parse_mac(s)
        .map(EthernetAddress)
        .ok_or_else(|| format!("not a MAC address: {s}"))
}

/// The hostile frame classes, in the order they are interleaved.
const CLASSES: [&str; 7] = [
    "wrong_key",
    "forged_term",
    "replay",
    "replay_term_edited",
    "truncated",
    "oversized",
    "garbage",
];

#[derive(Serialize)]
struct Report {
    iface: String,
    captured: usize,
    captured_kinds: BTreeMap<String, u64>,
    max_captured_term: u64,
    seconds: f64,
    target_rate: u64,
    /// Destination MACs (`ff:ff:ff:ff:ff:ff` alone: broadcast).
    targets: Vec<String>,
    threads: usize,
    batch: usize,
    sent: u64,
    rate: f64,
    sent_by_class: BTreeMap<String, u64>,
    sent_by_target: BTreeMap<String, u64>,
    send_errors: BTreeMap<String, u64>,
    /// CPU time of the whole process over the flood, as a share of one
    /// CPU (user + system; the kernel's forwarding work in the sending
    /// syscall is system time).
    cpu_user: f64,
    cpu_system: f64,
    /// What the kernel said to one 9014-byte frame (the veth MTU is 1500).
    jumbo_send: String,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

const INJECTOR_MAC: [u8; 6] = [0x02, 0xee, 0x00, 0x00, 0x00, 0x01];
const MAX_FRAME: usize = 1514;

fn open(iface: &str, proto: u16) -> io::Result<OwnedFd> {
    let name = CString::new(iface).map_err(|_| io::Error::other("bad interface name"))?;
    // SAFETY: plain libc calls with valid arguments; the fd is owned below.
    unsafe {
        let idx = libc::if_nametoindex(name.as_ptr());
        if idx == 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(proto.to_be()),
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto.to_be();
        sll.sll_ifindex = idx as i32;
        if libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        ) < 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }
}

fn set_int(fd: &OwnedFd, level: i32, opt: i32, v: i32) {
    // SAFETY: setsockopt with a valid int option value.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            &v as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as u32,
        );
    }
}

/// Real control frames seen on `iface` for `secs` (distinct, at most `max`).
fn capture(iface: &str, et: u16, secs: f64, max: usize) -> io::Result<Vec<Vec<u8>>> {
    // ETH_P_ALL: on a bridge port, only the taps that see every protocol
    // run before the bridge takes the frame.
    let fd = open(iface, libc::ETH_P_ALL as u16)?;
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: setsockopt with a valid timeval.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        );
    }
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut buf = vec![0u8; 9216];
    while Instant::now() < end && out.len() < max {
        // SAFETY: recv into a buffer we own.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n <= 0 {
            continue;
        }
        let f = &buf[..n as usize];
        let Ok(cf) = ControlFrame::new_checked(f) else {
            continue;
        };
        if cf.ethertype() != et || cf.kind() == Kind::Data || out.iter().any(|o| o == f) {
            continue;
        }
        out.push(f.to_vec());
    }
    Ok(out)
}

struct Builder {
    et: u16,
    cluster: u32,
    wrong: AuthMode,
    wrong_id: AuthMode,
    captured: Vec<Vec<u8>>,
    senders: Vec<(u16, u64)>,
    max_term: u64,
}

impl Builder {
    fn emit(
        &self,
        sender: u16,
        inc: u64,
        term: u64,
        seq: u64,
        m: Message<'_>,
        a: &AuthMode,
    ) -> Vec<u8> {
        let c = ControlRepr {
            dst: EthernetAddress::BROADCAST,
            src: EthernetAddress(INJECTOR_MAC),
            header: HeaderRepr {
                kind: Kind::Heartbeat,
                flags: 0,
                key_id: 0,
                cluster_id: self.cluster,
                sender,
                incarnation: inc,
                term,
                seq,
                timestamp: 1,
                body_len: 0,
            },
            message: m,
        };
        let mut buf = vec![0u8; c.buffer_len()];
        let n = c.emit(&mut buf, self.et, a).unwrap_or(0);
        buf.truncate(n);
        buf
    }

    fn sender(&self, rng: &mut Rng) -> (u16, u64) {
        if self.senders.is_empty() || rng.below(8) == 0 {
            (rng.below(300) as u16 + 1, rng.next())
        } else {
            self.senders[rng.below(self.senders.len() as u64) as usize]
        }
    }

    /// A plausible message of any kind.
    fn message<'e>(&self, rng: &mut Rng, enc: &'e mut Vec<u8>) -> Message<'e> {
        match rng.below(4) {
            0 => Message::Heartbeat(HeartbeatRepr {
                round: rng.next() >> 20,
                period_ns: 250_000_000,
                priority: 255,
                flags: 0,
                table_nodes: 3,
            }),
            1 => {
                // a table segment declaring a node down
                let mut r = NodeRecord::new(rng.below(4) as u16 + 1, 1);
                r.version = u32::MAX;
                r.state = NodeState::Down;
                enc.clear();
                enc.resize(r.buffer_len(), 0);
                r.emit(enc);
                Message::Table(TableRepr {
                    round: rng.next() >> 20,
                    seg_idx: 0,
                    seg_count: 1,
                    flags: 1,
                    count: 1,
                    records: enc,
                })
            }
            2 => Message::Announce(AnnounceRepr {
                priority: 255,
                flags: 0,
                last_master: None,
            }),
            _ => Message::Leave(LeaveRepr {
                reason: LeaveReason::Admin,
            }),
        }
    }

    fn class(&self, class: &str, rng: &mut Rng) -> Vec<u8> {
        let mut enc = Vec::new();
        let enc = &mut enc;
        let pick =
            |rng: &mut Rng| self.captured[rng.below(self.captured.len() as u64) as usize].clone();
        let mut f = match class {
            "wrong_key" => {
                let (s, inc) = self.sender(rng);
                let m = self.message(rng, enc);
                let a = if rng.below(4) == 0 {
                    &self.wrong_id
                } else {
                    &self.wrong
                };
                self.emit(s, inc, self.max_term, rng.next() >> 1, m, a)
            }
            "forged_term" => {
                let (s, inc) = self.sender(rng);
                let hb = Message::Heartbeat(HeartbeatRepr {
                    round: 1,
                    period_ns: 250_000_000,
                    priority: 255,
                    flags: 0,
                    table_nodes: 3,
                });
                let term = self.max_term + 1 + rng.below(1_000_000);
                self.emit(s, inc, term, rng.next() >> 1, hb, &self.wrong)
            }
            "replay" if !self.captured.is_empty() => pick(rng),
            "replay_term_edited" if !self.captured.is_empty() => {
                let mut f = pick(rng);
                if let Ok(mut cf) = ControlFrame::new_checked(&mut f[..]) {
                    let t = cf.term();
                    cf.set_term(t.max(self.max_term) + 1 + rng.below(1000));
                }
                f
            }
            "truncated" => {
                let f = if self.captured.is_empty() || rng.below(2) == 0 {
                    let (s, inc) = self.sender(rng);
                    let m = self.message(rng, enc);
                    self.emit(s, inc, self.max_term, rng.next() >> 1, m, &self.wrong)
                } else {
                    pick(rng)
                };
                let n = 14 + rng.below(f.len() as u64 - 14) as usize;
                f[..n].to_vec()
            }
            "oversized" => {
                // the largest frame the link carries, whose body length
                // claims more than the frame holds (or a real frame padded
                // to the maximum with garbage: a replay whatever follows)
                let mut f = if self.captured.is_empty() || rng.below(2) == 0 {
                    let (s, inc) = self.sender(rng);
                    let m = self.message(rng, enc);
                    self.emit(s, inc, self.max_term, rng.next() >> 1, m, &self.wrong)
                } else {
                    pick(rng)
                };
                let at = f.len();
                f.resize(MAX_FRAME, 0);
                rng.fill(&mut f[at..]);
                if rng.below(2) == 0 {
                    if let Ok(mut cf) = ControlFrame::new_checked(&mut f[..]) {
                        let h = HeaderRepr::parse(&cf).ok();
                        if let Some(mut h) = h {
                            h.body_len =
                                (MAX_FRAME as u16).saturating_add(rng.below(60_000) as u16);
                            h.emit(&mut cf);
                        }
                    }
                }
                f
            }
            _ => {
                // garbage: random length and bytes with the DMPD EtherType;
                // half with the right version, a quarter with our cluster id
                let n = 14 + rng.below((MAX_FRAME - 14) as u64 + 1) as usize;
                let mut g = vec![0u8; n];
                rng.fill(&mut g);
                g[12..14].copy_from_slice(&self.et.to_be_bytes());
                if n > 14 && rng.below(2) == 0 {
                    g[14] = VERSION;
                }
                if n >= 22 && rng.below(4) == 0 {
                    g[18..22].copy_from_slice(&self.cluster.to_be_bytes());
                }
                g
            }
        };
        if f.len() >= 12 {
            f[6..12].copy_from_slice(&INJECTOR_MAC);
        }
        f
    }
}

fn main() -> std::process::ExitCode {
    let a = Args::parse();
    match run(&a) {
        Ok(r) => {
            use std::io::Write;
            let s = serde_json::to_string_pretty(&r).unwrap_or_default();
            // a closed stdout (`| head`) is not an error of the flood
            let _ = writeln!(io::stdout(), "{s}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dmpd-inject: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(a: &Args) -> io::Result<Report> {
    let et = a.ethertype;
    let captured = capture(&a.capture_iface, et, a.capture_secs, a.capture_max)?;
    let mut kinds = BTreeMap::new();
    let mut senders = Vec::new();
    let mut max_term = 0;
    for f in &captured {
        if let Ok(cf) = ControlFrame::new_checked(&f[..]) {
            *kinds
                .entry(format!("{:?}", cf.kind()).to_lowercase())
                .or_insert(0u64) += 1;
            max_term = max_term.max(cf.term());
            let s = (cf.sender(), cf.incarnation());
            if !senders.contains(&s) {
                senders.push(s);
            }
        }
    }
    let mut rng = Rng(a.seed.max(1) ^ 0x9e37_79b9_7f4a_7c15);
    let mut key = [0u8; 32];
    rng.fill(&mut key);
    let b = Builder {
        et,
        cluster: a.cluster_id,
        wrong: AuthMode::Hmac(KeyRing::new(1, &key).map_err(io::Error::other)?),
        wrong_id: AuthMode::Hmac(KeyRing::new(200, &key).map_err(io::Error::other)?),
        captured,
        senders,
        max_term,
    };
    // A pool per class, cycled through (building frames is slower than
    // sending them; 1024 variants per class keep the mix varied).
    let pools: Vec<Vec<Vec<u8>>> = CLASSES
        .iter()
        .map(|c| (0..1024).map(|_| b.class(c, &mut rng)).collect())
        .collect();

    let targets: Vec<EthernetAddress> = if !a.dst.is_empty() {
        a.dst.clone()
    } else {
        vec![EthernetAddress::BROADCAST]
    };
    let threads = a.threads.clamp(1, targets.len());
    let batch = a.batch.clamp(1, 1024);

    let jumbo_send = {
        let fd = open(&a.iface, et)?;
        let jumbo = vec![0u8; 9014];
        // SAFETY: send from a buffer we own.
        let r = unsafe {
            libc::send(
                fd.as_raw_fd(),
                jumbo.as_ptr() as *const libc::c_void,
                jumbo.len(),
                0,
            )
        };
        if r < 0 {
            format!("refused: {}", io::Error::last_os_error())
        } else {
            format!("sent {r} bytes")
        }
    };

    let cpu0 = cpu_times();
    let t0 = Instant::now();
    let results: Vec<io::Result<Sent>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<EthernetAddress> =
                    targets.iter().copied().skip(t).step_by(threads).collect();
                let cpu = (!a.cpus.is_empty()).then(|| a.cpus[t % a.cpus.len()]);
                // the rate split evenly; thread t starts at its own offset
                // in the pools so that threads do not send the same frames
                let job = Job {
                    iface: &a.iface,
                    et,
                    pools: pools.clone(),
                    targets: mine,
                    rate: a.rate as f64 / threads as f64,
                    seconds: a.seconds,
                    batch,
                    cpu,
                    start: t * 997,
                };
                sc.spawn(move || flood(job))
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("sender panicked")))
            })
            .collect()
    });
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_times();
    let mut sent = 0u64;
    let mut sent_by = vec![0u64; CLASSES.len()];
    let mut by_target: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for r in results {
        let r = r?;
        sent += r.sent;
        for (c, n) in r.by_class.iter().enumerate() {
            sent_by[c] += n;
        }
        for (t, n) in r.by_target {
            *by_target.entry(t.to_string()).or_insert(0) += n;
        }
        for (e, n) in r.errors {
            *errors.entry(e).or_insert(0) += n;
        }
    }
    Ok(Report {
        iface: a.iface.clone(),
        captured: b.captured.len(),
        captured_kinds: kinds,
        max_captured_term: max_term,
        seconds: secs,
        target_rate: a.rate,
        targets: targets.iter().map(|t| t.to_string()).collect(),
        threads,
        batch,
        sent,
        rate: sent as f64 / secs,
        sent_by_class: CLASSES
            .iter()
            .zip(sent_by)
            .map(|(c, n)| (c.to_string(), n))
            .collect(),
        sent_by_target: by_target,
        send_errors: errors,
        cpu_user: (cpu1.0 - cpu0.0) / secs,
        cpu_system: (cpu1.1 - cpu0.1) / secs,
        jumbo_send,
    })
}

/// User and system CPU seconds of this process so far.
fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage fills a struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (s(ru.ru_utime), s(ru.ru_stime))
}

/// One sender thread's work.
struct Job<'a> {
    iface: &'a str,
    et: u16,
    pools: Vec<Vec<Vec<u8>>>,
    targets: Vec<EthernetAddress>,
    rate: f64,
    seconds: f64,
    batch: usize,
    cpu: Option<usize>,
    start: usize,
}

/// What one sender thread sent.
struct Sent {
    sent: u64,
    by_class: Vec<u64>,
    by_target: Vec<(EthernetAddress, u64)>,
    errors: BTreeMap<String, u64>,
}

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET stays in bounds (the
    // set holds 1024 CPUs, more than `cpu` is checked to be below).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu < 8 * std::mem::size_of::<libc::cpu_set_t>() {
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

/// Sends the pools' frames round-robin over classes and targets with
/// `sendmmsg(2)` until `seconds` have passed, paced to `rate` (0: as fast
/// as possible).
fn flood(mut j: Job<'_>) -> io::Result<Sent> {
    if let Some(c) = j.cpu {
        pin(c);
    }
    let fd = open(j.iface, j.et)?;
    set_int(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, 8 << 20);
    // PACKET_QDISC_BYPASS: straight to the driver.
    set_int(&fd, libc::SOL_PACKET, 20, 1);
    let nc = CLASSES.len();
    let nt = j.targets.len();
    let mut by_class = vec![0u64; nc];
    let mut by_target = vec![0u64; nt];
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    // (class, index in its pool, target) of each frame of the batch
    let mut picks: Vec<(usize, usize, usize)> = Vec::with_capacity(j.batch);
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(j.batch);
    let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(j.batch);
    let mut k = j.start * nc;
    let t0 = Instant::now();
    let dur = Duration::from_secs_f64(j.seconds);
    let mut sent = 0u64;
    while t0.elapsed() < dur {
        if j.rate > 0.0 {
            let due = Duration::from_secs_f64(sent as f64 / j.rate);
            let el = t0.elapsed();
            if due > el {
                std::thread::sleep((due - el).min(Duration::from_millis(5)));
                continue;
            }
        }
        picks.clear();
        for _ in 0..j.batch {
            let c = k % nc;
            let i = (k / nc) % j.pools[c].len();
            let t = (k / nc) % nt;
            k += 1;
            // every frame is at least 14 bytes: its destination is ours
            j.pools[c][i][..6].copy_from_slice(j.targets[t].as_bytes());
            picks.push((c, i, t));
        }
        iov.clear();
        for &(c, i, _) in &picks {
            let f = &j.pools[c][i];
            iov.push(libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            });
        }
        msgs.clear();
        for v in iov.iter_mut() {
            // SAFETY: zeroed msghdr is valid; pointers live until sendmmsg returns.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = v as *mut libc::iovec;
            h.msg_hdr.msg_iovlen = 1;
            msgs.push(h);
        }
        // SAFETY: msgs and the buffers they point to are valid for the call.
        let n = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as u32, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            *errors.entry(e.to_string()).or_insert(0) += 1;
            if e.raw_os_error() == Some(libc::ENOBUFS) || e.raw_os_error() == Some(libc::EAGAIN) {
                std::thread::sleep(Duration::from_micros(100));
            }
            // the frames not sent are sent next time
            k -= j.batch;
            continue;
        }
        let n = n as usize;
        for &(c, _, t) in &picks[..n] {
            by_class[c] += 1;
            by_target[t] += 1;
        }
        // frames the call did not take are sent next time
        k -= j.batch - n;
        sent += n as u64;
    }
    Ok(Sent {
        sent,
        by_class,
        by_target: j.targets.iter().copied().zip(by_target).collect(),
        errors,
    })
}

//! Smoke run of the binding: initialise EAL, then send frames of several
//! sizes between two ports (or through one loopback port) and check every
//! byte and counter.
//!
//! ```text
//! dmpd-ffi-smoke [--frames N] --port NAME [--port NAME] -- EAL ARGS...
//! ```
//! Exit codes: 0 ok, 1 frames lost or corrupted, 2 set-up error.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use ffi::{Eal, FfiError, Mbuf, MbufBurst, Mempool, Port, PortConfig, QueueId, SocketId};

const ETHERTYPE: u16 = 0x88b5;
const SIZES: [usize; 6] = [60, 64, 128, 512, 1024, 1514];

struct Args {
    frames: usize,
    ports: Vec<String>,
    eal: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        frames: 600,
        ports: Vec::new(),
        eal: Vec::new(),
    };
    while let Some(x) = it.next() {
        match x.as_str() {
            "--frames" => {
                a.frames = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--frames needs a number")?
            }
            "--port" => a.ports.push(it.next().ok_or("--port needs a device name")?),
            "--" => {
                a.eal = it.collect();
                break;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?} (see --help in the source)"
                ))
            }
        }
    }
    if a.ports.is_empty() || a.ports.len() > 2 {
        return Err("give one (loopback) or two --port names".into());
    }
    Ok(a)
}

fn frame(src: usize, i: usize, size: usize) -> Vec<u8> {
    let mut f = vec![0u8; size];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, src as u8]);
    f[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    f[14..18].copy_from_slice(&(i as u32).to_be_bytes());
    for (j, b) in f[18..].iter_mut().enumerate() {
        *b = (i * 13 + j + src) as u8;
    }
    f
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<bool, FfiError> {
    let _eal = Eal::init(&args.eal)?;
    let pool = Mempool::new_pktmbuf("smoke_pool", 8191, 32, 2176, SocketId::ANY)?;
    let full = pool.avail_count();
    let ports: Vec<Port> = args
        .ports
        .iter()
        .map(|n| Port::by_name(n))
        .collect::<Result<_, _>>()?;
    let cfg = PortConfig {
        rx_desc: 512,
        tx_desc: 512,
        ..PortConfig::default()
    };
    for p in &ports {
        p.configure(&cfg, &pool)?;
        p.start()?;
        p.reset_stats()?;
    }
    let pairs: Vec<(usize, usize)> = if ports.len() == 1 {
        vec![(0, 0)]
    } else {
        vec![(0, 1), (1, 0)]
    };
    let mut ok = true;
    for &(s, d) in &pairs {
        let want: Vec<Vec<u8>> = (0..args.frames)
            .map(|i| frame(s, i, SIZES[i % SIZES.len()]))
            .collect();
        // Send in bursts, receiving as we go so small kernel rings keep up.
        let mut got: Vec<Vec<u8>> = Vec::with_capacity(want.len());
        let mut rx: MbufBurst<32> = MbufBurst::new();
        let mut next = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < want.len() && Instant::now() < deadline {
            if next < want.len() {
                let mut tx: MbufBurst<32> = MbufBurst::new();
                while next < want.len() && !tx.is_full() {
                    tx.push(Mbuf::from_slice(&pool, &want[next])?).ok();
                    next += 1;
                }
                while !tx.is_empty() && Instant::now() < deadline {
                    ports[s].tx_burst(QueueId::new(0), &mut tx);
                }
            }
            ports[d].rx_burst(QueueId::new(0), &mut rx);
            for m in rx.drain() {
                let b = m.data();
                // Kernel-side noise (e.g. IPv6 on a veth) is not ours.
                if b.len() >= 18 && b[12..14] == ETHERTYPE.to_be_bytes() && b[11] == s as u8 {
                    got.push(b.to_vec());
                }
            }
            if next >= want.len() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let same = got == want;
        println!(
            "{} -> {}: sent {}, received {}, payloads {}",
            args.ports[s],
            args.ports[d],
            want.len(),
            got.len(),
            if same { "identical" } else { "DIFFER" }
        );
        ok &= same;
    }
    for (p, name) in ports.iter().zip(&args.ports) {
        let st = p.stats()?;
        println!(
            "{name}: rx {} pkts {} B, tx {} pkts {} B, missed {}, errors rx {} tx {}",
            st.rx_packets,
            st.rx_bytes,
            st.tx_packets,
            st.tx_bytes,
            st.rx_missed,
            st.rx_errors,
            st.tx_errors
        );
        ok &= st.tx_packets >= args.frames as u64;
        p.stop()?;
        p.close()?;
    }
    let back = pool.avail_count();
    println!("mempool: {back}/{full} mbufs free after close");
    ok &= back == full;
    println!("{}", if ok { "smoke: OK" } else { "smoke: FAILED" });
    Ok(ok)
}

//! Real EAL, real vdev ports. One EAL per process, so every check that needs
//! it lives in this one test binary and shares the instance.

use std::sync::{Mutex, OnceLock};

use ffi::{Eal, Mbuf, MbufBurst, Mempool, Port, PortConfig, QueueId, SocketId};

struct Env {
    _eal: Eal,
}

fn env() -> &'static Mutex<Env> {
    static ENV: OnceLock<Mutex<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let eal = Eal::init([
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--no-shconf",
            "--log-level=lib.eal:error",
            "--vdev=net_ring0",
            "--vdev=net_null0",
            "--vdev=net_tap0,iface=dmpdffi0",
            "-l",
            "0",
        ])
        .expect("EAL init with net_ring0 and net_null0");
        Mutex::new(Env { _eal: eal })
    })
}

/// A frame whose bytes depend on its index and size, so a mix-up shows.
fn frame(i: usize, size: usize) -> Vec<u8> {
    let mut f = vec![0u8; size];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    for (j, b) in f[14..].iter_mut().enumerate() {
        *b = (i * 31 + j * 7 + size) as u8;
    }
    f
}

#[test]
fn net_ring_loopback_carries_frames_of_several_sizes() {
    let _g = env().lock().unwrap_or_else(|e| e.into_inner());
    let pool = Mempool::new_pktmbuf("ring_lb_pool", 4095, 0, 2176, SocketId::ANY).unwrap();
    let full = pool.avail_count();
    let port = Port::by_name("net_ring0").unwrap();
    port.configure(&PortConfig::default(), &pool).unwrap();
    port.start().unwrap();
    port.reset_stats().unwrap();

    let sizes = [60usize, 64, 128, 256, 512, 1024, 1514];
    let per_size = 40;
    let mut sent_bytes = 0u64;
    let mut expected = Vec::new();
    for (k, &size) in sizes.iter().enumerate() {
        let mut burst: MbufBurst<32> = MbufBurst::new();
        for i in 0..per_size {
            let idx = k * per_size + i;
            let f = frame(idx, size);
            sent_bytes += size as u64;
            expected.push(f.clone());
            if let Err(m) = burst.push(Mbuf::from_slice(&pool, &f).unwrap()) {
                send_all(&port, &mut burst);
                burst.push(m).unwrap();
            }
        }
        send_all(&port, &mut burst);
    }

    let mut got = Vec::new();
    let mut rx: MbufBurst<32> = MbufBurst::new();
    for _ in 0..1000 {
        if got.len() == expected.len() {
            break;
        }
        port.rx_burst(QueueId::new(0), &mut rx);
        for m in rx.drain() {
            // The inline accessors read the same bytes DPDK's functions do.
            assert_eq!(m.data_raw_c(), (m.data().as_ptr(), m.len()));
            got.push(m.data().to_vec());
        }
    }
    assert_eq!(got.len(), expected.len(), "every frame comes back");
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "frame {i} payload");
    }

    let s = port.stats().unwrap();
    let n = expected.len() as u64;
    assert_eq!(s.tx_packets, n);
    assert_eq!(s.rx_packets, n);
    // DPDK 22.11's net_ring counts packets only (bytes stay 0); the byte
    // counters are checked on net_null below, whose PMD counts them.
    let _ = sent_bytes;
    assert_eq!(s.q_tx_packets[0], n);
    assert_eq!(s.tx_errors, 0);

    port.stop().unwrap();
    assert_eq!(pool.avail_count(), full, "every mbuf back in the pool");
    assert_eq!(pool.in_use_count(), 0);
}

fn send_all(port: &Port, burst: &mut MbufBurst<32>) {
    for _ in 0..100 {
        if burst.is_empty() {
            return;
        }
        port.tx_burst(QueueId::new(0), burst);
    }
    panic!("net_ring did not take {} frames", burst.len());
}

#[test]
fn net_null_counts_tx_and_generates_rx() {
    let _g = env().lock().unwrap_or_else(|e| e.into_inner());
    let pool = Mempool::new_pktmbuf("null_pool", 1023, 0, 2176, SocketId::ANY).unwrap();
    let full = pool.avail_count();
    let port = Port::by_name("net_null0").unwrap();
    assert_eq!(port.info().unwrap().driver_name, "net_null");
    port.configure(&PortConfig::default(), &pool).unwrap();
    port.start().unwrap();
    port.reset_stats().unwrap();

    let mut burst: MbufBurst<32> = MbufBurst::new();
    for i in 0..32 {
        burst
            .push(Mbuf::from_slice(&pool, &frame(i, 100)).unwrap())
            .unwrap();
    }
    assert_eq!(port.tx_burst(QueueId::new(0), &mut burst), 32);
    let mut rx: MbufBurst<32> = MbufBurst::new();
    assert_eq!(
        port.rx_burst(QueueId::new(0), &mut rx),
        32,
        "net_null always has frames"
    );
    // net_null's default packet size.
    assert!(rx.as_slice().iter().all(|m| m.len() == 64));
    // Draining hands every frame out once, in order; a drain dropped
    // half-way frees the rest (the pool count at the end checks both).
    let order: Vec<usize> = rx.as_slice().iter().map(|m| m.as_ptr() as usize).collect();
    let mut frames = rx.drain_prefetched();
    let first: Vec<usize> = frames
        .by_ref()
        .take(5)
        .map(|m| m.as_ptr() as usize)
        .collect();
    assert_eq!(first, order[..5]);
    drop(frames);
    assert!(rx.is_empty());

    let s = port.stats().unwrap();
    assert_eq!(s.tx_packets, 32);
    assert_eq!(s.rx_packets, 32);
    // net_null counts packets only; bytes are checked on net_tap.
    assert_ne!(port.mac().unwrap(), [0; 6], "net_null has a random MAC");
    assert!(
        !port.xstats().unwrap().is_empty(),
        "xstats list the basic counters"
    );
    port.stop().unwrap();
    assert_eq!(pool.avail_count(), full);
}

#[test]
fn port_queries_and_errors_are_clear() {
    let _g = env().lock().unwrap_or_else(|e| e.into_inner());
    let err = Port::by_name("net_missing9").unwrap_err();
    assert!(err.to_string().contains("net_missing9"), "{err}");
    let port = Port::by_name("net_ring0").unwrap();
    assert_eq!(port.name().unwrap(), "net_ring0");
    // net_ring's MAC is all zeros in 22.11; the call itself must work.
    port.mac().unwrap();
    let pool = Mempool::new_pktmbuf("err_pool", 255, 0, 2176, SocketId::ANY).unwrap();
    let bad = PortConfig {
        rx_queues: 999,
        ..PortConfig::default()
    };
    let e = port.configure(&bad, &pool).unwrap_err();
    assert!(e.to_string().contains("999 rx queues"), "{e}");
    // A second EAL init in the same process is refused, not a crash.
    assert_eq!(
        Eal::init(["--no-huge"]).unwrap_err(),
        ffi::FfiError::EalAlreadyInitialised
    );
    // A pool name taken twice gives DPDK's own message.
    let dup = Mempool::new_pktmbuf("err_pool", 255, 0, 2176, SocketId::ANY).unwrap_err();
    assert_eq!(dup.errno(), Some(libc::EEXIST), "{dup}");
    // Ring round trip of mbufs.
    let ring = ffi::Ring::create("t_ring", 64, SocketId::ANY, ffi::RingFlags::default()).unwrap();
    let mut b: MbufBurst<8> = MbufBurst::new();
    for i in 0..8 {
        b.push(Mbuf::from_slice(&pool, &frame(i, 70)).unwrap())
            .unwrap();
    }
    assert_eq!(ring.enqueue_mbufs(&mut b), 8);
    assert_eq!(ring.count(), 8);
    assert_eq!(ring.dequeue_mbufs_max(&mut b, 3), 3, "bounded dequeue");
    assert_eq!(ring.count(), 5);
    assert_eq!(ring.dequeue_mbufs(&mut b), 5);
    assert_eq!(b.as_slice()[3].data(), &frame(3, 70)[..]);
    drop(b);
    assert_eq!(pool.in_use_count(), 0);
}

fn kernel_counter(iface: &str, name: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/statistics/{name}"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn net_tap_counts_bytes_and_the_kernel_sees_the_frames() {
    let _g = env().lock().unwrap_or_else(|e| e.into_inner());
    let pool = Mempool::new_pktmbuf("tap_pool", 1023, 0, 2176, SocketId::ANY).unwrap();
    let full = pool.avail_count();
    let port = Port::by_name("net_tap0").unwrap();
    // net_tap fills its rx ring with mbufs up front: keep it small.
    let cfg = PortConfig {
        rx_desc: 128,
        tx_desc: 128,
        ..PortConfig::default()
    };
    port.configure(&cfg, &pool).unwrap();
    port.start().unwrap();
    port.reset_stats().unwrap();
    let k_before = kernel_counter("dmpdffi0", "rx_packets");
    let kb_before = kernel_counter("dmpdffi0", "rx_bytes");

    let sizes = [64usize, 300, 1000, 1514];
    let mut bytes = 0u64;
    let mut sent = 0u64;
    for (k, &size) in sizes.iter().enumerate() {
        let mut burst: MbufBurst<32> = MbufBurst::new();
        for i in 0..16 {
            burst
                .push(Mbuf::from_slice(&pool, &frame(k * 16 + i, size)).unwrap())
                .unwrap();
            bytes += size as u64;
            sent += 1;
        }
        send_all(&port, &mut burst);
    }
    let s = port.stats().unwrap();
    assert_eq!(s.tx_packets, sent);
    assert_eq!(s.tx_bytes, bytes);
    // The kernel received exactly what the PMD sent on the tap.
    assert_eq!(kernel_counter("dmpdffi0", "rx_packets") - k_before, sent);
    assert_eq!(kernel_counter("dmpdffi0", "rx_bytes") - kb_before, bytes);
    assert_ne!(port.mac().unwrap(), [0; 6]);
    port.stop().unwrap();
    // net_tap keeps its rx ring's mbufs until the queues are released.
    port.close().unwrap();
    assert_eq!(pool.avail_count(), full, "every mbuf back in the pool");
}

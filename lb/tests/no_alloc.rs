//! The per-packet paths (hashing and deciding, through the flow cache or
//! not, including taking in a new snapshot) never allocate. A counting global allocator that counts only
//! on threads that asked for it, so the test harness's own threads cannot
//! disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use lb::balancer::{BalancerConfig, Controller, Decision};
use lb::flowcache::FlowCache;
use lb::load::{LoadConfig, PortSample};
use lb::toeplitz::Toeplitz;
use lb::tuple::DmpdTuple;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // A const-initialised Cell has no destructor, so touching it from the
    // allocator never allocates itself.
    static COUNT_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNT_HERE.with(|c| c.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn hashing_and_deciding_do_not_allocate() {
    COUNT_HERE.with(|c| c.set(true));
    let toeplitz = Toeplitz::default();
    let mut controller = Controller::new(8, LoadConfig::default()).unwrap();
    controller
        .set_remote_node(3, &[0.1, 0.2, 0.3, 0.4], 0b1111)
        .unwrap();
    let mut balancer = controller.balancer(BalancerConfig::default()).unwrap();
    let mut cached = controller.balancer(BalancerConfig::default()).unwrap();
    let mut cache = FlowCache::new();
    let tuples: Vec<[u8; 9]> = (0..32u16)
        .map(|i| {
            DmpdTuple {
                snode: 1,
                dnode: 3,
                spipe: i,
                dpipe: i,
                ptype: 0,
            }
            .to_bytes()
        })
        .collect();
    let mut hashes = [0u32; 32];
    let dsts = [3u16; 32];
    let mut out = [Decision::default(); 32];
    let samples: Vec<PortSample> = (0..8)
        .map(|p| PortSample {
            utilisation: 0.1 * p as f64,
            ..PortSample::default()
        })
        .collect();

    for round in 0..100u64 {
        // Control side (allowed to allocate): a new snapshot every 10 rounds.
        if round % 10 == 0 {
            controller.record_samples(&samples).unwrap();
            controller
                .set_port_available((round / 10 % 8) as usize, round % 20 != 0)
                .unwrap();
            controller.publish();
        }
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        toeplitz.hash_burst(&tuples, &mut hashes);
        let single = toeplitz.hash(&tuples[0]);
        balancer.decide_burst(round * 100_000, &hashes, &dsts, &mut out);
        let one = balancer.decide(round * 100_000 + 1, single, 3);
        // The flow cache: misses after a new snapshot, hits otherwise.
        cached.refresh(round * 100_000);
        for t in &tuples {
            cache.decide(&mut cached, &toeplitz, round * 100_000, t);
        }
        let after = ALLOCATIONS.load(Ordering::Relaxed);
        assert_eq!(after, before, "round {round} allocated");
        assert!(one.tx_port < 8);
    }
    assert!(balancer.counters().refreshes >= 10);
    let k = cache.counters();
    assert!(k.hits > 0 && k.misses > 0, "{k:?}");
}

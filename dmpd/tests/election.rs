//! Election and liveness over many seeds in the deterministic simulator.
//!
//! Fast lane (default): see `SEEDS_*` below. Full lane:
//! `cargo test -p dmpd --release --test election -- --ignored --nocapture`
//! Every failure message carries the seed; `replay_one` reruns one seed.

mod common;

use common::{Sim, SimParams};
use dmpd::{Duration, Instant};
use rand::Rng;

#[derive(Debug, Default, Clone, Copy)]
struct Measured {
    /// Boot (first node) to one agreed master.
    initial: Duration,
    /// Master crash to one agreed new master.
    failover: Duration,
    /// Partition heal to at most one master.
    heal: Duration,
    /// Heal to one agreed master.
    heal_agree: Duration,
    /// Master changes during the stable phase (must be 0).
    flaps: u32,
}

fn scenario(
    nodes: usize,
    seed: u64,
    loss: f64,
    auth: bool,
    stable_periods: u64,
) -> Result<Measured, String> {
    let mut params = SimParams::new(nodes, seed);
    params.loss = loss;
    params.auth = auth;
    let mut sim = Sim::new(params);
    let p = sim.period();
    let mut m = Measured::default();
    let fail = |what: &str, sim: &Sim| {
        format!(
            "seed {seed} nodes {nodes} loss {loss}: {what} at {} (masters {:?})",
            sim.now,
            sim.masters()
        )
    };

    // 1. initial election
    sim.start();
    let t0 = sim.now;
    let t = sim
        .run_until_pred(t0 + p * 12, p / 20, |s| s.agreed_master().is_some())
        .ok_or_else(|| fail("no initial master", &sim))?;
    m.initial = t - t0;
    let first = sim.agreed_master().unwrap();
    if Some(first) != sim.best_live(None) {
        return Err(fail(
            &format!("initial master {first} is not the best-ranked"),
            &sim,
        ));
    }

    // 2. stability under loss: no flapping, never two masters
    let mut last = sim.masters();
    for _ in 0..stable_periods * 4 {
        sim.run_for(p / 4);
        let now = sim.masters();
        if now.len() > 1 {
            return Err(fail("two masters while stable", &sim));
        }
        if now != last {
            m.flaps += 1;
            last = now;
        }
    }
    if m.flaps > 0 {
        return Err(fail(
            &format!("{} master changes while stable", m.flaps),
            &sim,
        ));
    }

    // 3. crash the master at a random point of the period
    let off = Duration::from_nanos(sim.rng.gen_range(0..p.total_nanos()));
    sim.run_for(off);
    let old = sim
        .agreed_master()
        .ok_or_else(|| fail("no agreed master before crash", &sim))?;
    let old_idx = sim.index_of(old);
    sim.crash(old_idx);
    let tc = sim.now;
    let t = sim
        .run_until_pred(tc + p * 10, p / 40, |s| s.agreed_master().is_some())
        .ok_or_else(|| fail("no master after crash", &sim))?;
    m.failover = t - tc;
    let new = sim.agreed_master().unwrap();
    if m.failover > p * 4 {
        return Err(fail(&format!("failover took {}", m.failover), &sim));
    }
    if Some(new) != sim.best_live(None) {
        return Err(fail(
            &format!("new master {new} is not the best-ranked live node"),
            &sim,
        ));
    }

    // 4. the old master restarts (new incarnation): it must not disrupt
    sim.restart(old_idx);
    for _ in 0..20 * 4 {
        sim.run_for(p / 4);
        if sim.masters() != vec![new] {
            return Err(fail("rejoining old master disrupted the master", &sim));
        }
    }
    if sim.agreed_master() != Some(new) {
        return Err(fail(
            "rejoined old master does not follow the new master",
            &sim,
        ));
    }
    let ni = sim.index_of(new);
    let back = sim
        .node(ni)
        .unwrap()
        .table()
        .get(old)
        .map(|e| e.record.incarnation);
    if back != Some(2) {
        return Err(fail(
            &format!("restarted node's new incarnation not in table ({back:?})"),
            &sim,
        ));
    }

    // 5. partition into two random halves, then heal
    let mut groups = vec![0u32; nodes];
    loop {
        for g in groups.iter_mut() {
            *g = u32::from(sim.rng.gen_bool(0.5));
        }
        if groups.contains(&0) && groups.contains(&1) {
            break;
        }
    }
    sim.group = groups;
    sim.run_for(p * 8);
    let split = sim.masters();
    if split.len() != 2 {
        return Err(fail(
            "each side of the partition should have elected a master",
            &sim,
        ));
    }
    sim.group = vec![0; nodes];
    let th = sim.now;
    let t = sim
        .run_until_pred(th + p * 10, p / 40, |s| s.masters().len() <= 1)
        .ok_or_else(|| fail("two masters persist after heal", &sim))?;
    m.heal = t - th;
    if m.heal > p * 2 {
        return Err(fail(
            &format!("two masters for {} after heal", m.heal),
            &sim,
        ));
    }
    let t = sim
        .run_until_pred(th + p * 10, p / 40, |s| s.agreed_master().is_some())
        .ok_or_else(|| fail("no agreement after heal", &sim))?;
    m.heal_agree = t - th;
    for _ in 0..5 * 4 {
        sim.run_for(p / 4);
        if sim.masters().len() > 1 {
            return Err(fail("two masters again after heal", &sim));
        }
    }
    Ok(m)
}

fn run_many(
    nodes: usize,
    seeds: std::ops::Range<u64>,
    loss: f64,
    auth: bool,
    stable: u64,
) -> Measured {
    let mut worst = Measured::default();
    let n = seeds.end - seeds.start;
    for seed in seeds {
        match scenario(nodes, seed, loss, auth, stable) {
            Ok(m) => {
                worst.initial = worst.initial.max(m.initial);
                worst.failover = worst.failover.max(m.failover);
                worst.heal = worst.heal.max(m.heal);
                worst.heal_agree = worst.heal_agree.max(m.heal_agree);
            }
            Err(e) => panic!("{e}"),
        }
    }
    println!(
        "nodes={nodes} seeds={n} loss={loss} auth={auth}: worst initial {} ms, failover {} ms, \
         heal (<=1 master) {} ms, heal (agreed) {} ms",
        worst.initial.total_millis(),
        worst.failover.total_millis(),
        worst.heal.total_millis(),
        worst.heal_agree.total_millis()
    );
    worst
}

#[test]
fn election_10_nodes_many_seeds_10pct_loss() {
    run_many(10, 0..24, 0.10, false, 30);
}

#[test]
fn election_10_nodes_hmac_10pct_loss() {
    run_many(10, 100..104, 0.10, true, 20);
}

#[test]
fn election_30_nodes_10pct_loss() {
    run_many(30, 200..206, 0.10, false, 30);
}

#[test]
fn election_100_nodes_10pct_loss() {
    run_many(100, 300..302, 0.10, false, 10);
}

/// Full lane: `cargo test -p dmpd --release --test election -- --ignored --nocapture`
#[test]
#[ignore]
fn election_full_lane() {
    run_many(10, 1000..1200, 0.10, false, 50);
    run_many(10, 1200..1220, 0.10, true, 30);
    run_many(30, 2000..2050, 0.10, false, 50);
    run_many(100, 3000..3020, 0.10, false, 50);
    run_many(100, 4000..4010, 0.0, false, 50);
}

/// Rerun one seed: `DMPD_SEED=7 DMPD_NODES=30 cargo test -p dmpd --test election replay_one -- --ignored --nocapture`
#[test]
#[ignore]
fn replay_one() {
    let seed = std::env::var("DMPD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let nodes = std::env::var("DMPD_NODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    println!("{:?}", scenario(nodes, seed, 0.10, false, 30));
}

#[test]
fn leave_drops_node_at_once_and_master_leave_triggers_election() {
    let mut sim = Sim::new(SimParams::new(6, 77));
    let p = sim.period();
    sim.start();
    sim.run_until_pred(Instant::ZERO + p * 12, p / 20, |s| {
        s.agreed_master().is_some()
    })
    .expect("master");
    sim.run_for(p * 10);
    let master = sim.agreed_master().unwrap();
    // a follower leaves: everybody marks it Left within one latency
    let leaver = if master == 6 { 5 } else { 6 };
    let li = sim.index_of(leaver);
    let now = sim.now;
    sim.node_mut(li)
        .unwrap()
        .leave(now, dmpd::LeaveReason::SelfFaulty);
    sim.kick(li);
    sim.run_for(Duration::from_millis(1));
    sim.crash(li);
    for (i, n) in sim.nodes.iter().enumerate() {
        if i == li {
            continue;
        }
        let e = n.node.as_ref().unwrap().table().get(leaver).expect("entry");
        assert_eq!(
            e.record.state,
            dmpd::NodeState::Left,
            "node {} still has {leaver} up",
            n.num
        );
    }
    // the master leaves: a new master well within the crash bound
    let mi = sim.index_of(master);
    let now = sim.now;
    sim.node_mut(mi)
        .unwrap()
        .leave(now, dmpd::LeaveReason::Shutdown);
    sim.kick(mi);
    sim.run_for(Duration::from_millis(1));
    sim.crash(mi);
    let t0 = sim.now;
    let t = sim
        .run_until_pred(t0 + p * 4, p / 40, |s| s.agreed_master().is_some())
        .expect("new master");
    assert!(
        t - t0 <= p * 2,
        "master leave -> new master took {}",
        t - t0
    );
}

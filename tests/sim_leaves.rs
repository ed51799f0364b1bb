//! Graceful leaves asked for at the same instant, in the deterministic simulator: during a run
//! (the leaves queue up and are carried out one at a time, nothing lost), and every node of the
//! overlay at once after it (the leave that leaves too few nodes for the tables drops the
//! overlay, and the leaves queued behind it must still be answered). Every leaver exits.
//!
//! A failure names its seed; the same seed replays it exactly.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use overlay::routing::Fingers;
use overlay::sim::{Sim, Who};

mod sim_common;
use sim_common::{STEPS_MAX, check, config, fingers_by_seed, setup};

/// Types `exit-overlay` at each of `leavers` at the same instant (no step between them) and
/// runs until every one has exited with status 0, within 10 s of virtual time.
fn leave_at_once(sim: &mut Sim, leavers: &[usize], context: &str) {
    for &i in leavers {
        sim.command(Who::Node(i), "exit-overlay");
    }
    let asked = sim.now();
    let exited = sim.run_until(
        |sim| {
            leavers
                .iter()
                .all(|&i| sim.exit_code(Who::Node(i)).is_some())
                || sim.now() > asked + 10_000_000_000
        },
        STEPS_MAX,
    );
    let stuck: Vec<usize> = leavers
        .iter()
        .copied()
        .filter(|&i| sim.exit_code(Who::Node(i)) != Some(0))
        .collect();
    if exited.is_err() || !stuck.is_empty() {
        for line in sim.printed(Who::Registry) {
            eprintln!("registry: {line}");
        }
        for &i in &stuck {
            for line in sim.printed(Who::Node(i)) {
                eprintln!("node {i}: {line}");
            }
        }
        panic!(
            "{context}: leavers {stuck:?} of {leavers:?} did not exit with 0 within 10 s \
             ({exited:?})"
        );
    }
    let said = sim.printed(Who::Registry).join("\n");
    assert!(!said.contains("no answer from"), "{context}:\n{said}");
}

/// Seeded: during a run, three nodes ask to leave at the same instant; the run passes with
/// nothing lost and all three exit. Then every node left asks to leave at the same instant:
/// the overlay carries out the leaves it can take, the one that would leave too few nodes for
/// the tables drops it (set up again before the next run), and every leaver exits, the ones
/// queued behind that leave too (before the fix they waited for an answer for ever: the
/// stuck node of four SIGTERMed at once, tests/churn.rs). Both finger rules.
#[test]
fn leaves_asked_for_at_the_same_instant_all_complete() {
    const NODES: usize = 12;
    for seed in 0..8u64 {
        // Even seeds: from 9 to 15 nodes fit NR 3, so three leaves during the run are never
        // refused.
        let fingers = fingers_by_seed(seed);
        let context = format!("seed {seed}, {fingers:?}");
        let mut sim = Sim::new(config(NODES, seed));
        setup(&mut sim, fingers);
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x1EAF);
        sim.command(Who::Registry, "start 600");
        let at = rng.random_range(0..20_000u64);
        sim.run_until(|_| false, at).unwrap_or_default();
        let mut order: Vec<usize> = (0..NODES).collect();
        for k in 0..NODES {
            let j = rng.random_range(k..NODES);
            order.swap(k, j);
        }
        let (during, after) = order.split_at(3);
        leave_at_once(&mut sim, during, &format!("{context}, during the run"));
        sim.run_until(|sim| !sim.results().is_empty(), STEPS_MAX)
            .unwrap_or_else(|e| panic!("{context}: the run did not end: {e}"));
        let result = sim.results()[0].clone();
        if !result.passed() {
            for line in sim.printed(Who::Registry) {
                eprintln!("registry: {line}");
            }
        }
        check(&result, &format!("{context}, the run"));
        assert_eq!(result.nodes, NODES, "{context}");
        leave_at_once(&mut sim, after, &format!("{context}, after the run"));
        assert_eq!(sim.registry().node_count(), 0, "{context}");
        assert!(!sim.registry().membership_changing(), "{context}");
    }
}

/// Issue note, leave bug 2 (seed 150 of `many_seeded_churns` on the branch whose hello carries
/// a protocol version): a leave whose `Leave` stage is under way when the run ends. The
/// registry asks every node for its final report while the last acknowledgements of `Leave`
/// are on their way, so the leaver gives its final report (which clears the counts a drain
/// compares) before its `Drain` comes, naming what the others sent it before theirs: it
/// waited for those packets again, out the stall timeout (600 s). A leave is asked for at
/// every step of the last stretch of a run, each in a fresh simulation of the same seed
/// (deterministic until then): every run passes with nothing lost, every leaver exits within
/// 10 s, and no stage waits out the stall timeout.
#[test]
fn a_leave_asked_for_as_the_run_ends_completes() {
    const NODES: usize = 8;
    const PACKETS: u64 = 60;
    let start = |seed: u64| {
        let mut sim = Sim::new(config(NODES, seed));
        setup(&mut sim, Fingers::Positions { nr: 3 });
        sim.command(Who::Registry, &format!("start {PACKETS}"));
        sim
    };
    for seed in 0..2u64 {
        // Where the run ends without a leave.
        let mut probe = start(seed);
        let began = probe.steps();
        probe
            .run_until(|sim| !sim.results().is_empty(), STEPS_MAX)
            .expect("the run ends");
        let took = probe.steps() - began;
        let mut raced = 0;
        for at in took.saturating_sub(400)..took + 20 {
            let context = format!("seed {seed}, leave asked {at} steps into the run");
            let mut sim = start(seed);
            sim.run_until(|_| false, at).unwrap_or_default();
            let leaver = (seed as usize + at as usize) % NODES;
            sim.command(Who::Node(leaver), "exit-overlay");
            let asked = sim.now();
            sim.run_until(
                |sim| {
                    (!sim.results().is_empty() && sim.exit_code(Who::Node(leaver)).is_some())
                        || sim.now() > asked + 10_000_000_000
                },
                STEPS_MAX,
            )
            .unwrap_or_else(|e| panic!("{context}: {e}"));
            let said = sim.printed(Who::Registry).join("\n");
            let result = sim
                .results()
                .front()
                .cloned()
                .unwrap_or_else(|| panic!("{context}: the run did not end\n{said}"));
            check(&result, &context);
            assert_eq!(
                sim.exit_code(Who::Node(leaver)),
                Some(0),
                "{context}: the leaver did not exit within 10 s\n{said}"
            );
            assert!(!said.contains("no answer from"), "{context}:\n{said}");
            // The leave was under way when the run's summary came.
            let leaving = said.find("is leaving").expect("the leave began");
            let summary = said.find("Run 1 summary").expect("the summary");
            raced += usize::from(leaving < summary && said[summary..].contains(" left ("));
        }
        assert!(
            raced > 0,
            "seed {seed}: no leave was under way as the run ended"
        );
    }
}

//! The classic encoding in the deterministic simulator: our registry and nodes speaking
//! the reference's format end to end (no acks, no polls, traces that grow per relay), the
//! settle-time end of a run, and a hung node failing the run in bounded time.

use overlay::registry::RegistryConfig;
use overlay::routing::{Ring, transmissions};
use overlay::sim::{READY_LINE, Sim, SimConfig, Who};
use overlay::wire::Counters;
use overlay::wire::classic::Classic;

const STEPS_MAX: u64 = 20_000_000;

#[test]
fn classic_overlays_verify_in_the_simulator() {
    for seed in 1..=4u64 {
        let nodes = 8 + seed as usize;
        let nr = 3;
        let packets = 300;
        let context = format!("seed {seed}, {nodes} nodes");
        let mut sim: Sim<Classic> = Sim::with_codec(SimConfig::new(nodes, seed));
        sim.register_all(STEPS_MAX).expect("registration");
        sim.setup_overlay(nr, STEPS_MAX).expect("setup");
        assert!(sim.printed_contains(Who::Registry, READY_LINE));
        assert!(sim.printed_contains(Who::Registry, "no window (classic wire format)"));
        for run in 0..2 {
            sim.clear_tap();
            let result = sim.run_packets(packets, STEPS_MAX).expect("run");
            assert!(
                result.passed(),
                "{context} run {run}: {}",
                result.verdict_line()
            );
            let expected = nodes as u64 * packets;
            assert_eq!(result.packets_sent, expected, "{context}");
            assert_eq!(result.packets_received, expected, "{context}");
            assert_eq!(result.sum_sent, result.sum_received, "{context}");
            assert_eq!(sim.ack_transmissions(), 0, "{context}: classic has no acks");
            // Each arrival's trace holds exactly the relays of its route.
            let ring = Ring::new(sim.registry().node_ids());
            let mut relays = 0;
            for arrival in sim.arrivals() {
                let from = ring.position(arrival.source).unwrap();
                let to = ring.position(arrival.sink).unwrap();
                let distance = ring.distance(from, to) as u64;
                assert_eq!(u64::from(arrival.relays) + 1, transmissions(distance, nr));
                relays += u64::from(arrival.relays);
            }
            assert_eq!(result.packets_relayed, relays, "{context}");
            for i in 0..nodes {
                assert_eq!(sim.counters(i), Counters::default(), "{context}: reset");
            }
        }
    }
}

#[test]
fn classic_registry_refuses_what_the_format_cannot_carry() {
    let mut sim: Sim<Classic> = Sim::with_codec(SimConfig::new(4, 9));
    sim.register_all(STEPS_MAX).expect("registration");
    sim.setup_overlay(2, STEPS_MAX).expect("setup");
    sim.command(Who::Registry, "start 10 16");
    sim.run_until_quiet(STEPS_MAX).expect("quiet");
    assert!(sim.printed_contains(Who::Registry, "start refused"));
    assert!(sim.printed_contains(Who::Registry, "extra payload"));
    assert!(sim.results().is_empty());
    sim.command(Who::Registry, "start 3000000000");
    sim.run_until_quiet(STEPS_MAX).expect("quiet");
    assert!(sim.results().is_empty());
}

/// With no polls, a hung node is noticed by its missing task-finished: the run fails within
/// the stall timeout after the others finished, naming it, with the others' final counts.
#[test]
fn a_hung_classic_node_fails_the_run_naming_it() {
    let mut config = SimConfig::new(6, 21);
    config.registry = RegistryConfig {
        stall_timeout: Some(2_000_000_000),
        ..config.registry
    };
    let mut sim: Sim<Classic> = Sim::with_codec(config);
    sim.register_all(STEPS_MAX).expect("registration");
    sim.setup_overlay(2, STEPS_MAX).expect("setup");
    let hung = sim.node_id(4).unwrap();
    sim.stall(4, true);
    let result = sim.run_packets(100, STEPS_MAX).expect("a result");
    assert!(!result.passed());
    let line = result.verdict_line();
    assert!(
        line.contains(&format!("node {hung} did not report task finished")),
        "{line}"
    );
    assert!(sim.now() < 60_000_000_000, "bounded: {} ns", sim.now());
}

//! Whole overlays in the deterministic simulator (`overlay::sim`): random overlays from seeds,
//! repeated runs, tiny buffers with a stalled node, refusals, a node lost mid-run.
//!
//! A failure names its seed; `Sim::new(SimConfig::new(nodes, seed))` replays it exactly.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use overlay::limits::{MANIFESTS_OUTSTANDING_MAX, TRACE_SLOTS_MAX};
use overlay::registry::RegistryConfig;
use overlay::routing::{Ring, Router, check_nr, longest_path_relays, transmissions};
use overlay::sim::{READY_LINE, Sim, SimConfig, Who};
use overlay::summary::PASS_WITH_CRASHES;
use overlay::wire::native::{ACK_FRAME_BYTES, Native, data_frame_bytes};
use overlay::wire::{Codec, Control, Counters, DataShape, NodeId, Status};

const STEPS_MAX: u64 = 5_000_000;

fn localhost() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// NR values an overlay of `nodes` nodes accepts, and whose longest path fits the trace.
fn usable_nrs(nodes: usize) -> Vec<usize> {
    (1..=7)
        .filter(|&nr| {
            check_nr(nodes, nr).is_ok() && longest_path_relays(nodes, nr) <= TRACE_SLOTS_MAX
        })
        .collect()
}

/// Routes every (source, sink) pair hop by hop with each node's own `Router` and checks that
/// the packet arrives, visits no node twice, and takes exactly the formula's transmissions.
fn check_every_route(ids: &[NodeId], nr: usize, context: &str) {
    let ring = Ring::new(ids.to_vec());
    let routers: Vec<Router> = ring
        .ids()
        .iter()
        .map(|&id| Router::new(ring.clone(), nr, id).expect("own ID is in the ring"))
        .collect();
    // Each node's table as ring positions.
    let tables: Vec<Vec<usize>> = (0..ring.len())
        .map(|at| {
            ring.table(at, nr)
                .iter()
                .map(|&id| ring.position(id).expect("table entries are in the ring"))
                .collect()
        })
        .collect();
    let mut visited = vec![false; ring.len()];
    for (from, &source) in ring.ids().iter().enumerate() {
        for (to, &sink) in ring.ids().iter().enumerate() {
            if from == to {
                assert_eq!(
                    routers[from].next_hop(sink),
                    None,
                    "{context}: next hop to self"
                );
                continue;
            }
            visited.fill(false);
            visited[from] = true;
            let mut at = from;
            let mut hops = 0u64;
            let mut relays = Vec::new();
            while at != to {
                let entry = routers[at].next_hop(sink).unwrap_or_else(|| {
                    panic!("{context}: {} has no hop to {sink}", ring.ids()[at])
                });
                assert!(entry < nr, "{context}: entry {entry} out of the table");
                at = tables[at][entry];
                assert!(
                    !std::mem::replace(&mut visited[at], true),
                    "{context}: {source} -> {sink} visits {} twice",
                    ring.ids()[at]
                );
                hops += 1;
                assert!(
                    hops <= ids.len() as u64,
                    "{context}: {source} -> {sink} loops"
                );
                if at != to {
                    relays.push(ring.ids()[at]);
                }
            }
            let distance = ring.distance(from, to) as u64;
            assert_eq!(
                hops,
                transmissions(distance, nr),
                "{context}: {source} -> {sink} ({distance} positions)"
            );
            // The sink accepts the walk's trace, which is the route it would compute.
            assert_eq!(
                routers[to].check_route(source, relays.len(), false, relays.iter().copied()),
                Ok(from),
                "{context}: {source} -> {sink} trace {relays:?}"
            );
            let mut computed = Vec::new();
            ring.relays(from, to, nr, &mut computed);
            assert_eq!(relays, computed, "{context}: {source} -> {sink} trace");
        }
    }
}

/// Builds an overlay of `nodes` nodes, sets it up with `nr` and runs `packets` per node,
/// checking everything a run must satisfy.
fn random_overlay(seed: u64, nodes: usize, nr: usize, packets: u64) {
    let context = format!("seed {seed}, {nodes} nodes, NR {nr}, {packets} packets");
    let mut sim = Sim::new(SimConfig::new(nodes, seed));
    sim.register_all(STEPS_MAX)
        .unwrap_or_else(|e| panic!("{context}: registration: {e}"));
    assert_eq!(sim.registry().node_ids().len(), nodes, "{context}");
    sim.setup_overlay(nr, STEPS_MAX)
        .unwrap_or_else(|e| panic!("{context}: setup: {e}"));
    assert!(sim.printed_contains(Who::Registry, READY_LINE), "{context}");
    let ids = sim.registry().node_ids();
    check_every_route(&ids, nr, &context);

    let result = sim
        .run_packets(packets, STEPS_MAX)
        .unwrap_or_else(|e| panic!("{context}: run: {e}"));
    assert!(result.passed(), "{context}: {}", result.verdict_line());
    let account = result
        .accounting
        .as_ref()
        .expect("native runs account per link");
    assert_eq!(
        (account.lost_on_links, account.unaccounted),
        (0, 0),
        "{context}"
    );
    let expected = nodes as u64 * packets;
    assert_eq!(result.nodes, nodes, "{context}");
    assert_eq!(result.packets_sent, expected, "{context}");
    assert_eq!(result.packets_received, expected, "{context}");
    assert_eq!(result.sum_sent, result.sum_received, "{context}");
    assert_eq!(result.corrupted, 0, "{context}");
    assert_eq!(result.dropped, 0, "{context}");

    // Hop counts, from the frames themselves: every packet's relays match the formula, and
    // the nodes' relayed counters add up to the relays of all packets.
    let ring = Ring::new(ids.clone());
    assert_eq!(sim.arrivals().len() as u64, expected, "{context}: arrivals");
    let mut relays_total = 0u64;
    for arrival in sim.arrivals() {
        let from = ring.position(arrival.source).expect("source in ring");
        let to = ring.position(arrival.sink).expect("sink in ring");
        let distance = ring.distance(from, to) as u64;
        assert_eq!(
            u64::from(arrival.relays) + 1,
            transmissions(distance, nr),
            "{context}: {} -> {}",
            arrival.source,
            arrival.sink
        );
        relays_total += u64::from(arrival.relays);
    }
    assert_eq!(result.packets_relayed, relays_total, "{context}: relayed");
    assert_eq!(
        sim.data_transmissions(),
        expected + relays_total,
        "{context}: data frames on the links"
    );
    // After the final report every counter restarts from zero.
    for i in 0..nodes {
        assert_eq!(sim.counters(i), Counters::default(), "{context}: node {i}");
    }
}

/// Seeds `seeds`, overlay sizes drawn from `sizes`.
fn random_overlays(seeds: std::ops::Range<u64>, sizes: std::ops::RangeInclusive<usize>) {
    for seed in seeds {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5EED);
        let nodes = rng.random_range(sizes.clone());
        let nrs = usable_nrs(nodes);
        let nr = nrs[rng.random_range(0..nrs.len())];
        let packets = rng.random_range(1..=3);
        random_overlay(seed, nodes, nr, packets);
    }
}

#[test]
fn random_small_overlays_pass() {
    random_overlays(0..100, 2..=16);
}

#[test]
fn random_medium_overlays_pass() {
    random_overlays(100..120, 17..=64);
}

#[test]
fn random_large_overlays_pass() {
    random_overlays(200..206, 65..=128);
}

#[test]
fn every_nr_at_the_edges() {
    // The extremes: 2 nodes NR 1, 128 nodes with the smallest and largest usable NR.
    random_overlay(7, 2, 1, 3);
    let nrs = usable_nrs(128);
    random_overlay(8, 128, nrs[0], 1);
    random_overlay(9, 128, *nrs.last().expect("some NR"), 1);
}

#[test]
fn routes_every_pair_of_many_rings() {
    // Cheap without running packets: many rings and every NR they allow.
    for seed in 0..60u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let nodes = rng.random_range(2..=128);
        let mut ids: Vec<NodeId> = (0..128).collect();
        for i in 0..nodes {
            let j = rng.random_range(i..128);
            ids.swap(i, j);
        }
        ids.truncate(nodes);
        for nr in usable_nrs(nodes) {
            check_every_route(
                &ids,
                nr,
                &format!("ring seed {seed}, {nodes} nodes, NR {nr}"),
            );
        }
    }
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut sim = Sim::new(SimConfig::new(12, seed));
        sim.register_all(STEPS_MAX).expect("registration");
        sim.setup_overlay(3, STEPS_MAX).expect("setup");
        let result = sim.run_packets(20, STEPS_MAX).expect("run");
        (sim.registry().node_ids(), result, sim.steps(), sim.now())
    };
    assert_eq!(run(42), run(42));
}

#[test]
fn two_runs_in_one_overlay_both_pass() {
    for seed in 0..4 {
        let mut sim = Sim::new(SimConfig::new(10, seed));
        sim.register_all(STEPS_MAX).expect("registration");
        sim.setup_overlay(3, STEPS_MAX).expect("setup");
        for run in 0..2 {
            sim.clear_tap();
            let result = sim.run_packets(25, STEPS_MAX).expect("run");
            assert!(
                result.passed(),
                "seed {seed} run {run}: {}",
                result.verdict_line()
            );
            assert_eq!(result.packets_sent, 250, "seed {seed} run {run}");
            assert_eq!(result.packets_received, 250, "seed {seed} run {run}");
            assert_eq!(sim.arrivals().len(), 250, "seed {seed} run {run}");
            for i in 0..10 {
                assert_eq!(sim.counters(i), Counters::default(), "seed {seed} node {i}");
            }
        }
        assert_eq!(sim.results().len(), 2);
    }
}

/// 16 nodes, a small window, 256-byte links, one node stalled for a long stretch: every node's
/// queue stays within the flow-control bound, and the run completes once the node resumes.
fn stalled_node_with_tiny_buffers(seed: u64, nr: usize) {
    const NODES: usize = 16;
    const WINDOW_BYTES: u64 = 2048;
    const CAPACITY_BYTES: usize = 256;
    let context = format!("seed {seed}, NR {nr}");
    let mut config = SimConfig::new(NODES, seed);
    // A stall shorter than the registry's stall timeout: the run must survive it.
    const STALL_TIMEOUT: u64 = 60_000_000_000;
    config.registry = RegistryConfig {
        window_bytes: Some(WINDOW_BYTES),
        stall_timeout: Some(STALL_TIMEOUT),
        ..config.registry
    };
    config.capacity_bytes = Some(CAPACITY_BYTES);
    let mut sim = Sim::new(config);
    sim.register_all(STEPS_MAX).expect("registration");
    sim.setup_overlay(nr, STEPS_MAX).expect("setup");

    // The bound (docs/ARCHITECTURE.md): a source may exceed its window by at most one frame;
    // every ack in flight acknowledges at least ack_every = window / (2 nodes) bytes of a
    // source's unacknowledged data, so per source at most (window + frame) / ack_every + 1
    // acks are in flight.
    let frame = data_frame_bytes(DataShape {
        trace_slots: longest_path_relays(NODES, nr),
        slot_bytes: 4,
        extra_payload_bytes: 0,
        run_tag: 0,
    }) as u64;
    let per_source_data = WINDOW_BYTES + frame;
    let ack_every = (WINDOW_BYTES / (2 * NODES as u64)).max(1);
    let per_source_acks = (per_source_data / ack_every + 1) * ACK_FRAME_BYTES as u64;
    let bound = NODES as u64 * (per_source_data + per_source_acks);

    let mut peak = 0usize;
    let mut check = |sim: &Sim| {
        for i in 0..NODES {
            let queued = sim.queued_bytes(i);
            peak = peak.max(queued);
            assert!(
                queued as u64 <= bound,
                "{context}: node {i} queues {queued} bytes, bound {bound}"
            );
        }
    };

    sim.command(Who::Registry, "start 400");
    // Let traffic flow, then stall one node.
    for _ in 0..3_000 {
        assert!(sim.step());
        check(&sim);
    }
    let stalled = (seed as usize * 7 + 3) % NODES;
    sim.stall(stalled, true);
    let mut stalled_steps = 0u64;
    // The stall lasts until nothing but the registry's timers could happen (or 200,000 steps).
    let stall_ends = sim.now() + STALL_TIMEOUT / 2;
    while stalled_steps < 200_000 && sim.step_within(stall_ends) {
        stalled_steps += 1;
        check(&sim);
    }
    assert!(
        sim.results().is_empty(),
        "{context}: the run ended with a node stalled"
    );
    assert!(
        sim.in_transit_max() <= CAPACITY_BYTES,
        "{context}: a link held {} bytes",
        sim.in_transit_max()
    );
    sim.stall(stalled, false);
    let mut steps = 0u64;
    while sim.results().is_empty() {
        assert!(sim.step(), "{context}: deadlock after the node resumed");
        check(&sim);
        steps += 1;
        assert!(steps < STEPS_MAX, "{context}: no end");
    }
    let result = &sim.results()[0];
    assert!(result.passed(), "{context}: {}", result.verdict_line());
    assert_eq!(result.packets_received, NODES as u64 * 400, "{context}");
    assert!(
        sim.in_transit_max() <= CAPACITY_BYTES,
        "{context}: a link held {} bytes",
        sim.in_transit_max()
    );
    assert!(peak > 0, "{context}: nothing was ever queued");

    // The next run (a new flow-control epoch) passes on the same tiny links.
    let again = sim.run_packets(100, STEPS_MAX).expect("second run");
    assert!(again.passed(), "{context}: {}", again.verdict_line());
}

#[test]
fn stalled_node_with_tiny_buffers_nr3() {
    stalled_node_with_tiny_buffers(1, 3);
}

#[test]
fn stalled_node_with_tiny_buffers_nr4() {
    stalled_node_with_tiny_buffers(2, 4);
}

/// Reads the one status reply that arrived on a raw connection.
fn one_status(sim: &mut Sim, raw: overlay::sim::RawId) -> (Status, String) {
    // Until the reply is whole (not until quiet: that would jump to the registry's timer for
    // connections that never register, and close them).
    sim.run_until(
        |sim| matches!(Native::frame_len(sim.raw_received(raw)), Ok(Some(_))),
        STEPS_MAX,
    )
    .expect("a reply");
    let mut replies = sim.raw_take_controls(raw);
    assert_eq!(replies.len(), 1, "{replies:?}");
    match replies.pop().expect("one reply") {
        Control::RegisterStatus { status, info } | Control::DeregisterStatus { status, info } => {
            (status, info)
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn registry_refuses_duplicates_and_spoofed_addresses() {
    let mut sim = Sim::new(SimConfig::new(0, 3));
    let listen = SocketAddr::new(localhost(), 20_000);

    let first = sim.raw_connect(localhost(), Who::Registry);
    sim.raw_send_control(
        first,
        &Control::Register {
            addr: listen,
            group: None,
        },
    );
    let (status, info) = one_status(&mut sim, first);
    let Status::Ok(id) = status else {
        panic!("first registration refused: {info}");
    };

    // The same connection registering again.
    sim.raw_send_control(
        first,
        &Control::Register {
            addr: listen,
            group: None,
        },
    );
    let (status, info) = one_status(&mut sim, first);
    assert_eq!(status, Status::Failed, "{info}");

    // The same address from another connection of the same IP.
    let second = sim.raw_connect(localhost(), Who::Registry);
    sim.raw_send_control(
        second,
        &Control::Register {
            addr: listen,
            group: None,
        },
    );
    let (status, info) = one_status(&mut sim, second);
    assert_eq!(status, Status::Failed, "{info}");
    assert!(info.contains("already registered"), "{info}");

    // A registration claiming another IP than the connection's.
    let spoofer = sim.raw_connect(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), Who::Registry);
    sim.raw_send_control(
        spoofer,
        &Control::Register {
            addr: SocketAddr::new(localhost(), 20_001),
            group: None,
        },
    );
    let (status, info) = one_status(&mut sim, spoofer);
    assert_eq!(status, Status::Failed, "{info}");
    assert!(
        info.contains("10.0.0.9") && info.contains("127.0.0.1"),
        "{info}"
    );

    // Deregistering someone else's node from the spoofing connection.
    sim.raw_send_control(spoofer, &Control::Deregister { addr: listen, id });
    let (status, info) = one_status(&mut sim, spoofer);
    assert_eq!(status, Status::Failed, "{info}");
    assert_eq!(sim.registry().node_ids(), [id]);

    // Deregister twice: the second time is an error.
    sim.raw_send_control(first, &Control::Deregister { addr: listen, id });
    let (status, info) = one_status(&mut sim, first);
    assert_eq!(status, Status::Ok(id), "{info}");
    assert!(sim.registry().node_ids().is_empty());
    sim.raw_send_control(first, &Control::Deregister { addr: listen, id });
    let (status, info) = one_status(&mut sim, first);
    assert_eq!(status, Status::Failed, "{info}");
    assert!(info.contains("not registered"), "{info}");
}

#[test]
fn the_129th_node_is_refused_for_lack_of_ids() {
    let mut sim = Sim::new(SimConfig::new(129, 5));
    sim.register_all(STEPS_MAX).expect("registration");
    assert_eq!(sim.registry().node_ids().len(), 128);
    let refused: Vec<usize> = (0..129).filter(|&i| sim.node_id(i).is_none()).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let who = Who::Node(refused[0]);
    let line = sim
        .printed(who)
        .iter()
        .find(|l| l.contains("Registration refused"))
        .unwrap_or_else(|| panic!("no refusal printed: {:?}", sim.printed(who)))
        .clone();
    assert!(line.contains("all 128 IDs"), "{line}");
    // Said once: not "Registration refused: registration refused: ...".
    assert!(
        line.starts_with("Registration refused: ") && line.matches("refused").count() == 1,
        "{line}"
    );
    assert_eq!(sim.exit_code(who), Some(1));
    // Every ID is taken exactly once.
    let ids: BTreeSet<NodeId> = sim.registry().node_ids().into_iter().collect();
    assert_eq!(ids, (0..128).collect());
}

/// A node killed during a run: the others route around it and send all their packets, and the
/// run ends as PASS with crashes, naming it, with every packet accounted for.
#[test]
fn a_node_lost_during_a_run_is_routed_around_and_named() {
    for seed in 0..10 {
        let mut sim = Sim::new(SimConfig::new(12, seed));
        sim.register_all(STEPS_MAX).expect("registration");
        sim.setup_overlay(3, STEPS_MAX).expect("setup");
        sim.command(Who::Registry, "start 500");
        sim.run_until(|sim| (0..12).all(|i| sim.counters(i).sent > 0), STEPS_MAX)
            .expect("traffic");
        let victim = seed as usize % 12;
        let id = sim.node_id(victim).expect("registered");
        sim.kill(victim);
        sim.run_until(|sim| !sim.results().is_empty(), STEPS_MAX)
            .expect("a result");
        let result = &sim.results()[0];
        assert!(!result.passed(), "seed {seed}");
        let line = result.verdict_line();
        assert_eq!(result.verdict, PASS_WITH_CRASHES, "seed {seed}: {line}");
        assert_eq!(result.crashed, vec![id], "seed {seed}");
        // Every packet is accounted for, the ones handed to the dead node included.
        let account = result.accounting.as_ref().expect("per-link account");
        assert_eq!(account.lost_nodes, vec![id], "seed {seed}");
        assert_eq!(account.unaccounted, 0, "seed {seed}: {line}");
        assert!(
            line.starts_with(&format!("PASS with crashes: node {id} crashed")),
            "seed {seed}: {line}"
        );
        // The others sent everything.
        assert_eq!(result.packets_sent, 11 * 500, "seed {seed}: {line}");
        assert_eq!((result.dropped, result.corrupted), (0, 0), "seed {seed}");
        // The rest settles without panics.
        sim.run_until_quiet(STEPS_MAX).expect("quiet");
        assert_eq!(sim.registry().node_ids().len(), 11);
    }
}

/// Two nodes SIGKILLed at different points of a run on tiny links (256 bytes in transit, so
/// frames wait queued at every node), under both finger rules: the nodes that
/// had links to them route around them at once (backup entries, `chord::churn`), so no packet
/// is dropped and none is found corrupted (the detoured ones pass the sink's check); the
/// others send all their packets, and the run ends as PASS with crashes, every packet
/// accounted for, those handed to the dead nodes included.
#[test]
fn crashes_are_routed_around_with_tiny_buffers() {
    const NODES: usize = 14;
    for seed in 0..40u64 {
        let chord = seed % 2 == 1;
        let context = format!("seed {seed}, {}", if chord { "chord" } else { "positions" });
        let mut config = SimConfig::new(NODES, seed);
        // The default window: packets and acks lost with a crashed node are never
        // acknowledged, so they shrink their sources' windows for the rest of the run (a
        // window of a few KiB stalls it: docs/ARCHITECTURE.md, "Crashes").
        config.capacity_bytes = Some(256);
        let mut sim = Sim::new(config);
        sim.register_all(STEPS_MAX).expect("registration");
        if chord {
            sim.command(Who::Registry, "setup-overlay chord 32");
            sim.run_until(|sim| sim.is_ready(), STEPS_MAX)
                .expect("setup");
        } else {
            sim.setup_overlay(2 + seed as usize % 3, STEPS_MAX)
                .expect("setup");
        }
        sim.command(Who::Registry, "start 300");
        let mut rng = SmallRng::seed_from_u64(seed);
        let first = rng.random_range(0..NODES);
        let second = (first + rng.random_range(1..NODES)) % NODES;
        let mut lost = Vec::new();
        for victim in [first, second] {
            // Each at its own point: after some traffic, a random number of steps later.
            let after = rng.random_range(500..4000);
            for _ in 0..after {
                if !sim.step() {
                    break;
                }
            }
            lost.push(sim.node_id(victim).expect("registered"));
            sim.kill(victim);
        }
        lost.sort_unstable();
        sim.run_until(|sim| !sim.results().is_empty(), STEPS_MAX)
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        let result = &sim.results()[0];
        let account = result.accounting.as_ref().expect("per-link account");
        let line = result.verdict_line();
        assert_eq!(account.lost_nodes, lost, "{context}: {line}");
        let mut crashed = result.crashed.clone();
        crashed.sort_unstable();
        assert_eq!(crashed, lost, "{context}: {line}");
        assert_eq!(
            (account.unaccounted, account.lost_on_links, account.foreign),
            (0, 0, 0),
            "{context}: {line}"
        );
        assert_eq!(
            (result.dropped, result.corrupted),
            (0, 0),
            "{context}: {line}"
        );
        assert_eq!(result.verdict, PASS_WITH_CRASHES, "{context}: {line}");
        assert_eq!(
            result.packets_sent,
            (NODES as u64 - 2) * 300,
            "{context}: {line}"
        );
        sim.run_until_quiet(STEPS_MAX).expect("quiet");
    }
}

#[test]
fn setup_and_start_refusals() {
    let mut sim = Sim::new(SimConfig::new(4, 11));
    sim.register_all(STEPS_MAX).expect("registration");

    sim.command(Who::Registry, "start 5");
    assert!(sim.printed_contains(Who::Registry, "start refused"));

    sim.command(Who::Registry, "setup-overlay 3");
    let printed = sim.printed(Who::Registry).join("\n");
    assert!(
        printed.contains("cannot fill") && printed.contains("use at most 2"),
        "{printed}"
    );
    sim.run_until_quiet(STEPS_MAX).expect("quiet");
    assert!(!sim.is_ready());
    sim.command(Who::Registry, "start 5");
    let refusals = sim
        .printed(Who::Registry)
        .iter()
        .filter(|l| l.contains("start refused"))
        .count();
    assert_eq!(refusals, 2);

    // Then a good setup works, and start is accepted.
    sim.setup_overlay(2, STEPS_MAX).expect("setup");
    let result = sim.run_packets(5, STEPS_MAX).expect("run");
    assert!(result.passed(), "{}", result.verdict_line());
}

#[test]
fn setup_again_then_run() {
    for seed in 0..4 {
        let mut sim = Sim::new(SimConfig::new(9, seed));
        sim.register_all(STEPS_MAX).expect("registration");
        sim.setup_overlay(3, STEPS_MAX).expect("setup");
        let first = sim.run_packets(10, STEPS_MAX).expect("run");
        assert!(first.passed(), "seed {seed}: {}", first.verdict_line());
        // A second setup replaces every table and its connections.
        sim.command(Who::Registry, "setup-overlay 4");
        sim.run_until(|sim| sim.is_ready(), STEPS_MAX)
            .expect("second setup");
        let second = sim.run_packets(10, STEPS_MAX).expect("run");
        assert!(second.passed(), "seed {seed}: {}", second.verdict_line());
        assert_eq!(second.nr, 4);
    }
}

#[test]
fn extra_payload_bytes_pass() {
    let mut sim = Sim::new(SimConfig::new(10, 77));
    sim.register_all(STEPS_MAX).expect("registration");
    sim.setup_overlay(3, STEPS_MAX).expect("setup");
    sim.command(Who::Registry, "start 20 1000");
    sim.run_until(|sim| !sim.results().is_empty(), STEPS_MAX)
        .expect("run");
    let result = &sim.results()[0];
    let problems: Vec<&String> = (0..10)
        .flat_map(|i| sim.printed(Who::Node(i)))
        .filter(|line| line.contains("corrupted"))
        .take(3)
        .collect();
    assert!(result.passed(), "{}\n{problems:#?}", result.verdict_line());
    assert_eq!(result.extra_payload_bytes, 1000);
}

#[test]
fn exit_overlay_before_setup_deregisters() {
    let mut sim = Sim::new(SimConfig::new(5, 13));
    sim.register_all(STEPS_MAX).expect("registration");
    let id = sim.node_id(2).expect("registered");
    sim.command(Who::Node(2), "exit-overlay");
    sim.run_until_quiet(STEPS_MAX).expect("quiet");
    assert_eq!(sim.exit_code(Who::Node(2)), Some(0));
    assert!(sim.printed_contains(Who::Node(2), "Deregistered"));
    assert!(!sim.registry().node_ids().contains(&id));
    assert_eq!(sim.registry().node_ids().len(), 4);
    // The other four still make an overlay that passes.
    sim.setup_overlay(2, STEPS_MAX).expect("setup");
    let result = sim.run_packets(10, STEPS_MAX).expect("run");
    assert!(result.passed(), "{}", result.verdict_line());
    assert_eq!(result.nodes, 4);
}

/// Many more seeds, on demand:
/// `SIM_SOAK_SEEDS=500 cargo test --release --test sim soak -- --ignored --nocapture`.
#[test]
#[ignore = "soak: long; run on demand"]
fn soak() {
    let seeds: u64 = std::env::var("SIM_SOAK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    random_overlays(1_000..1_000 + seeds, 2..=128);
    for seed in 0..seeds / 10 {
        stalled_node_with_tiny_buffers(seed, 3 + seed as usize % 2);
    }
}

#[test]
fn a_node_that_hangs_fails_the_run_after_the_stall_timeout() {
    let mut config = SimConfig::new(8, 21);
    config.registry.stall_timeout = Some(1_000_000_000);
    let mut sim = Sim::new(config);
    sim.register_all(STEPS_MAX).expect("registration");
    sim.setup_overlay(3, STEPS_MAX).expect("setup");
    sim.command(Who::Registry, "start 20");
    sim.run_until(|sim| (0..8).all(|i| sim.counters(i).sent == 20), STEPS_MAX)
        .expect("every node originated its packets");
    let id = sim.node_id(0).expect("registered");
    sim.stall(0, true);
    let outcome = sim.run_until(|sim| !sim.results().is_empty(), STEPS_MAX);
    assert!(
        outcome.is_ok(),
        "the run never ends with node {id} hung: {outcome:?} at {} ns",
        sim.now()
    );
    let result = &sim.results()[0];
    assert!(!result.passed());
    assert!(result.failures.join("; ").contains(&format!("node {id}")));
}

/// Without `--stall-timeout` the timeout grows with the run's nodes (10 s + 10 ms a node): a
/// node of 100 that hangs once it has sent fails the run after the registry's deadlines of one
/// timeout each have passed (3 here: 33 s), later than the fixed 10 s default would (30 s).
#[test]
fn the_default_stall_timeout_grows_with_the_nodes() {
    let nodes = 100;
    let mut sim = Sim::new(SimConfig::new(nodes, 22));
    sim.register_all(STEPS_MAX).expect("registration");
    sim.setup_overlay(7, STEPS_MAX).expect("setup");
    sim.command(Who::Registry, "start 20");
    sim.run_until(
        |sim| (0..nodes).all(|i| sim.counters(i).sent == 20),
        STEPS_MAX,
    )
    .expect("every node originated its packets");
    sim.stall(0, true);
    let hung_at = sim.now();
    sim.run_until(|sim| !sim.results().is_empty(), STEPS_MAX)
        .expect("the run ends");
    let after = sim.now() - hung_at;
    let timeout = overlay::limits::stall_timeout_for(nodes);
    assert_eq!(timeout, 11_000_000_000);
    assert!(
        (3 * timeout..4 * timeout).contains(&after),
        "failed {after} ns after the node hung"
    );
    assert!(!sim.results()[0].passed());
}

#[test]
fn a_node_lost_during_setup_then_setup_again() {
    for seed in 0..3 {
        let mut sim = Sim::new(SimConfig::new(10, seed));
        sim.register_all(STEPS_MAX).expect("registration");
        sim.command(Who::Registry, "setup-overlay 3");
        for _ in 0..(5 + seed * 20) {
            sim.step();
        }
        sim.kill(seed as usize);
        sim.run_until_quiet(STEPS_MAX).expect("quiet");
        assert!(!sim.is_ready(), "seed {seed}");
        assert_eq!(sim.registry().node_ids().len(), 9);
        sim.setup_overlay(3, STEPS_MAX).expect("setup again");
        let result = sim.run_packets(10, STEPS_MAX).expect("run");
        assert!(result.passed(), "seed {seed}: {}", result.verdict_line());
        assert_eq!(result.nodes, 9);
    }
}

/// `stop` in the middle of a run with extra payload, packets on their way: the run is STOPPED
/// with every packet it sent verified, and the next run starts from zero. A run by time
/// (`start 0.05s`) ends by itself and passes.
#[test]
fn stop_with_packets_in_flight_and_a_run_by_time() {
    for seed in 0..3 {
        let mut sim = Sim::new(SimConfig::new(10, seed));
        sim.register_all(STEPS_MAX).expect("registration");
        sim.setup_overlay(3, STEPS_MAX).expect("setup");
        sim.command(Who::Registry, "start 1000000 1000");
        sim.run_until(
            |sim| (0..10).map(|i| sim.counters(i).received).sum::<u64>() > 500,
            STEPS_MAX,
        )
        .expect("packets arrive");
        sim.command(Who::Registry, "stop");
        sim.run_until(|sim| !sim.results().is_empty(), STEPS_MAX)
            .expect("the stopped run ends");
        let result = &sim.results()[0];
        assert_eq!(
            result.verdict,
            "STOPPED",
            "seed {seed}: {}",
            result.verdict_line()
        );
        assert_eq!(result.corrupted, 0, "seed {seed}");
        assert!(result.packets_sent < 10_000_000, "seed {seed}");
        assert_eq!(result.packets_received, result.packets_sent, "seed {seed}");

        sim.command(Who::Registry, "start 0.05s");
        sim.run_until(|sim| sim.results().len() == 2, STEPS_MAX)
            .expect("the run by time ends");
        let timed = &sim.results()[1];
        assert!(timed.passed(), "seed {seed}: {}", timed.verdict_line());
        assert_eq!(timed.duration_goal_s, Some(0.05));
        assert!(
            timed.packets_sent > 0 && timed.duration_s >= 0.05,
            "seed {seed}"
        );
    }
}

/// The registry sends manifests a bounded number at a time: with the nodes at the first
/// `MANIFESTS_OUTSTANDING_MAX` ring positions stalled (they never answer theirs), the other
/// nodes get none; once those answer, the rest follow, never more than the bound setting up at
/// once, and the overlay becomes ready.
#[test]
fn manifests_go_out_a_bounded_number_at_a_time() {
    let nodes = MANIFESTS_OUTSTANDING_MAX + 64;
    let mut config = SimConfig::new(nodes, 17);
    config.registry.id_bits = 9;
    let mut sim = Sim::new(config);
    sim.register_all(STEPS_MAX).expect("registration");
    let ring = Ring::new(sim.registry().node_ids());
    let first: Vec<usize> = ring.ids()[..MANIFESTS_OUTSTANDING_MAX]
        .iter()
        .map(|&id| sim.node_index(id).expect("a node"))
        .collect();
    for &i in &first {
        sim.stall(i, true);
    }
    sim.command(Who::Registry, "setup-overlay 7");
    sim.run_until_quiet(STEPS_MAX)
        .expect("quiet with the first nodes stalled");
    // Every other node's table holds a stalled node (of the 96, those at 32..64 have entry 6,
    // 64 positions ahead, at 0..32; those at 64..96 entry 5, 32 ahead), so a manifest would
    // leave it setting up.
    let served = (0..nodes).filter(|&i| sim.node(i).setting_up()).count();
    assert_eq!(served, 0, "manifests went past the bound");
    for &i in &first {
        sim.stall(i, false);
    }
    let mut most = 0;
    sim.run_until(
        |sim| {
            let setting_up = (0..nodes).filter(|&i| sim.node(i).setting_up()).count();
            most = most.max(setting_up);
            assert!(
                setting_up <= MANIFESTS_OUTSTANDING_MAX,
                "{setting_up} nodes setting up at once"
            );
            sim.is_ready()
        },
        STEPS_MAX,
    )
    .expect("setup");
    assert!(most > 0);
    let result = sim.run_packets(5, STEPS_MAX).expect("run");
    assert!(result.passed(), "{}", result.verdict_line());
}

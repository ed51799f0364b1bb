use super::*;

#[test]
fn defaults_for_a_node_count_fit_it() {
    assert_eq!(nr_for(2), 1);
    assert_eq!(nr_for(8), 3);
    assert_eq!(nr_for(10), 4);
    assert_eq!(nr_for(1000), 10);
    assert_eq!(nr_for(10_000), 14);
    assert_eq!(id_bits_for(100), ID_BITS_DEFAULT);
    assert_eq!(id_bits_for(129), 8);
    assert_eq!(id_bits_for(10_000), 14);
    for nodes in 2..=4096 {
        let nr = nr_for(nodes);
        assert!(check_overlay(nodes, nr).is_ok(), "{nodes} nodes, NR {nr}");
        // The next size up would not fit: ceil(log2 N) is the largest table.
        assert!(
            check_nr(nodes, nr + 1).is_err(),
            "{nodes} nodes, NR {}",
            nr + 1
        );
        assert!(1u64 << id_bits_for(nodes) >= nodes as u64);
    }
}

fn example_b() -> Ring {
    Ring::new(vec![97, 4, 18, 19, 33, 60, 82, 119])
}

#[test]
fn example_a_tables() {
    let ring = Ring::new(vec![10, 21, 32, 43, 54, 61, 77, 87, 99, 101, 103]);
    assert_eq!(ring.table(ring.position(10).unwrap(), 3), [21, 32, 54]);
    assert_eq!(ring.table(ring.position(101).unwrap(), 3), [103, 10, 32]);
}

#[test]
fn example_b_tables() {
    let ring = example_b();
    let expected: [(NodeId, [NodeId; 3]); 8] = [
        (4, [18, 19, 60]),
        (18, [19, 33, 82]),
        (19, [33, 60, 97]),
        (33, [60, 82, 119]),
        (60, [82, 97, 4]),
        (82, [97, 119, 18]),
        (97, [119, 4, 19]),
        (119, [4, 18, 33]),
    ];
    for (node, table) in expected {
        assert_eq!(
            ring.table(ring.position(node).unwrap(), 3),
            table,
            "node {node}"
        );
    }
}

#[test]
fn route_97_to_82_goes_through_19_and_60() {
    let ring = example_b();
    let mut path = vec![97];
    let mut at = 97;
    while at != 82 {
        let router = Router::new(ring.clone(), 3, at).unwrap();
        let entry = router.next_hop(82).unwrap();
        at = ring.table(router.self_position(), 3)[entry];
        path.push(at);
    }
    assert_eq!(path, [97, 19, 60, 82]);
    let sink = Router::new(ring.clone(), 3, 82).unwrap();
    let mut relays = Vec::new();
    ring.relays(
        ring.position(97).unwrap(),
        sink.self_position(),
        3,
        &mut relays,
    );
    assert_eq!(relays, [19, 60]);
    let check = |source: NodeId, trace: &[NodeId]| {
        sink.check_route(source, trace.len(), false, trace.iter().copied())
    };
    assert_eq!(check(97, &[19, 60]), Ok(ring.position(97).unwrap()));
    // 97 is 7 positions before 82: 3 transmissions, 2 relays, each strictly closer.
    assert_eq!(
        check(97, &[19]),
        Err(RouteFault::Hops {
            relays: 1,
            expected: 2,
            distance: 7
        })
    );
    assert_eq!(
        check(97, &[60, 19]),
        Err(RouteFault::OffRoute {
            relay: 60,
            expected: 19
        })
    );
    assert_eq!(
        check(97, &[19, 19]),
        Err(RouteFault::NoProgress {
            relay: 19,
            before: 19
        })
    );
    assert_eq!(
        check(97, &[97, 60]),
        Err(RouteFault::NoProgress {
            relay: 97,
            before: 97
        })
    );
    assert_eq!(
        check(97, &[19, 82]),
        Err(RouteFault::NoProgress {
            relay: 82,
            before: 19
        })
    );
    assert_eq!(
        check(97, &[19, 61]),
        Err(RouteFault::NotMember { relay: 61 })
    );
    // 4 is 5 positions before 82: its route passes 60; 33 would progress as well, with the
    // right hop count, but is off the route (the position rule's routes are exact).
    assert_eq!(check(4, &[60]), Ok(ring.position(4).unwrap()));
    assert_eq!(
        check(4, &[33]),
        Err(RouteFault::OffRoute {
            relay: 33,
            expected: 60
        })
    );
    assert_eq!(check(82, &[]), Err(RouteFault::Source { origin: 82 }));
    assert_eq!(check(5, &[]), Err(RouteFault::Source { origin: 5 }));
    // More relays than any route passes: refused before the trace is read.
    assert_eq!(
        check(97, &[4; 3]),
        Err(RouteFault::TooLong {
            relays: 3,
            longest: 2
        })
    );
    // Every route every node takes passes its sink's check; backwards it does not.
    for nr in 1..=3 {
        for &node in ring.ids() {
            let router = Router::new(ring.clone(), nr, node).unwrap();
            for &source in ring.ids().iter().filter(|&&s| s != node) {
                let from = ring.position(source).unwrap();
                relays.clear();
                ring.relays(from, router.self_position(), nr, &mut relays);
                assert_eq!(
                    router.check_route(source, relays.len(), false, relays.iter().copied()),
                    Ok(from)
                );
                if relays.len() >= 2 {
                    let mut reversed = relays.clone();
                    reversed.reverse();
                    assert!(matches!(
                        router.check_route(source, reversed.len(), false, reversed.iter().copied()),
                        Err(RouteFault::OffRoute { .. })
                    ));
                }
                let source_table = ring.table(from, nr);
                assert_eq!(router.held_by(source), source_table.contains(&node));
            }
        }
    }
}

/// Every trace of up to `length` relays drawn from `candidates`.
fn traces(candidates: &[NodeId], length: usize) -> Vec<Vec<NodeId>> {
    let mut traces: Vec<Vec<NodeId>> = vec![Vec::new()];
    let mut last = vec![Vec::new()];
    for _ in 0..length {
        last = last
            .iter()
            .flat_map(|trace: &Vec<NodeId>| {
                candidates.iter().map(move |&relay| {
                    let mut next = trace.clone();
                    next.push(relay);
                    next
                })
            })
            .collect();
        traces.extend(last.iter().cloned());
    }
    traces
}

/// The sink's check against independent statements of its rules, for every trace of up
/// to 3 relays over a small ring (members and strangers): under the position rule it
/// accepts exactly the route; with Chord fingers exactly the traces of members whose
/// distance to the sink, in identifier order, falls strictly at each step, no longer than
/// the longest route.
#[test]
fn the_route_check_accepts_exactly_what_its_rules_allow() {
    let ids: Vec<NodeId> = vec![2, 5, 6, 9, 11, 14, 20];
    let ring = Ring::new(ids.clone());
    let nodes = ring.len();
    let all = traces(&(0..=21).collect::<Vec<NodeId>>(), 3);
    for nr in 1..=3 {
        for &sink in ring.ids() {
            let router = Router::new(ring.clone(), nr, sink).unwrap();
            for &source in ring.ids() {
                let mut route = Vec::new();
                if source != sink {
                    let from = ring.position(source).unwrap();
                    ring.relays(from, router.self_position(), nr, &mut route);
                }
                for trace in &all {
                    let checked =
                        router.check_route(source, trace.len(), false, trace.iter().copied());
                    assert_eq!(
                        checked.is_ok(),
                        source != sink && *trace == route,
                        "NR {nr}, {source} -> {sink} via {trace:?}: {checked:?}"
                    );
                    // The node's own entry point (exact route inline) says the same.
                    let delivered = router.check_delivered_route(
                        source,
                        trace.len(),
                        false,
                        trace.iter().copied(),
                    );
                    assert_eq!(delivered, checked.clone().map(Some));
                }
            }
        }
    }
    // Chord: identifiers in another order than the IDs, so that identifier order matters.
    let space = IdSpace::new(8).unwrap();
    let identifiers: Vec<Id> = [200u128, 13, 77, 140, 31, 250, 99]
        .into_iter()
        .map(Id::from)
        .collect();
    let layout = ChordLayout::new(&ring, space, &identifiers).unwrap();
    let longest = layout.longest_route_relays();
    // Identifier order of each ID: its place among the identifiers.
    let mut sorted = identifiers.clone();
    sorted.sort_unstable();
    let place = |id: NodeId| {
        ring.position(id)
            .map(|p| sorted.binary_search(&identifiers[p]).unwrap())
    };
    let view = Arc::new(View::chord(ring.clone(), layout, longest));
    for &sink in ring.ids() {
        let router = Router::of(Arc::clone(&view), sink).unwrap();
        let me = place(sink).unwrap();
        let to_sink = |id: NodeId| place(id).map(|p| (me + nodes - p) % nodes);
        for &source in ring.ids() {
            for trace in &all {
                let mut chain = vec![to_sink(source)];
                chain.extend(trace.iter().map(|&id| to_sink(id)));
                let structural = source != sink
                    && chain.iter().all(Option::is_some)
                    && chain.windows(2).all(|w| w[1] < w[0])
                    && chain.last().copied().flatten() != Some(0);
                let expected = structural && trace.len() <= longest;
                let checked = router.check_route(source, trace.len(), false, trace.iter().copied());
                assert_eq!(
                    checked.is_ok(),
                    expected,
                    "Chord, {source} -> {sink} via {trace:?}: {checked:?}"
                );
                let delivered =
                    router.check_delivered_route(source, trace.len(), false, trace.iter().copied());
                assert_eq!(delivered, checked.clone().map(Some));
                // A detoured packet is held to the structural rule alone, at any length.
                let detoured = router.check_route(source, trace.len(), true, trace.iter().copied());
                assert_eq!(
                    detoured.is_ok(),
                    structural,
                    "Chord, detoured, {source} -> {sink} via {trace:?}: {detoured:?}"
                );
            }
        }
    }
}

#[test]
fn next_hop_matches_the_reference_rule_on_ids() {
    // The reference states the rule on ID distance mod 128; check both agree everywhere.
    let ring = Ring::new(vec![3, 9, 14, 40, 41, 42, 77, 90, 100, 126, 127]);
    for nr in 1..=4 {
        for &node in ring.ids() {
            let router = Router::new(ring.clone(), nr, node).unwrap();
            let table = ring.table(router.self_position(), nr);
            for &sink in ring.ids().iter().filter(|&&s| s != node) {
                let dist = |e: NodeId| (e + 128 - node) % 128;
                let reference = if table.contains(&sink) {
                    sink
                } else {
                    *table
                        .iter()
                        .filter(|&&e| dist(e) < dist(sink))
                        .max_by_key(|&&e| dist(e))
                        .unwrap()
                };
                assert_eq!(table[router.next_hop(sink).unwrap()], reference);
            }
        }
    }
}

#[test]
fn transmissions_formula() {
    assert_eq!(transmissions(1, 3), 1);
    assert_eq!(transmissions(3, 3), 2);
    assert_eq!(transmissions(7, 3), 3);
    assert_eq!(transmissions(9, 3), 3);
    assert_eq!(transmissions(127, 3), 33);
    assert_eq!(transmissions(63, 6), 6);
    assert_eq!(longest_path_relays(128, 3), 32);
    assert_eq!(longest_path_relays(10, 3), 2);
    assert_eq!(longest_path_relays(64, 6), 5);
    assert_eq!(longest_path_relays(2, 1), 0);
}

#[test]
fn nr_bounds() {
    assert!(check_nr(10, 3).is_ok());
    assert!(check_nr(10, 4).is_ok()); // 8 <= 9
    assert!(check_nr(9, 4).is_ok());
    assert!(check_nr(8, 4).is_err()); // 8 positions ahead is the node itself
    assert!(check_nr(2, 1).is_ok());
    assert!(check_nr(1, 1).is_err());
    assert!(check_nr(10, 0).is_err());
    let message = check_nr(4, 3).unwrap_err();
    assert!(message.contains("use at most 2"), "{message}");
}

/// A Chord router's next hops and expected routes are the walks of `crate::chord` (what
/// `overlay simulate` counts), with dense and with sparse node IDs; keys route to their
/// owner the same way.
#[test]
fn chord_routers_walk_as_the_simulator_does() {
    use crate::chord::lookup;
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
    let space = IdSpace::new(160).unwrap();
    for ids in [
        (0..40).map(|i| i * 3).collect::<Vec<NodeId>>(),
        (0..40).map(|i| i * 100_000_007).collect(),
    ] {
        let ring = Ring::new(ids.clone());
        let identifiers: Vec<Id> = (0..ring.len()).map(|_| space.random(&mut rng)).collect();
        let layout = ChordLayout::new(&ring, space, &identifiers).unwrap();
        let membership = Membership::new(space, identifiers.clone()).unwrap();
        let tables = FingerTable::all(FingerRule::Chord, &membership).unwrap();
        let longest_relays = layout.longest_route_relays();
        let view = Arc::new(View::chord(ring.clone(), layout.clone(), longest_relays));
        let routers: Vec<Router> = ids
            .iter()
            .map(|&id| Router::of(Arc::clone(&view), id).unwrap())
            .collect();
        // The dense next-hop tables answer for every ID as the lookup per key does.
        for router in routers.iter().filter(|router| router.next_hops.is_some()) {
            for id in 0..=ids[ids.len() - 1] + 1 {
                assert_eq!(router.next_hop(id), router.next_hop_sparse(id), "ID {id}");
            }
        }
        let mut longest = 0;
        for from in 0..ring.len() {
            for to in (0..ring.len()).filter(|&to| to != from) {
                // Hop by hop with each node's own router.
                let mut at = from;
                let mut relays = Vec::new();
                while at != to {
                    let entry = routers[at].next_hop(ring.ids()[to]).unwrap();
                    at = ring.position(routers[at].entry_ids()[entry]).unwrap();
                    if at != to {
                        relays.push(ring.ids()[at]);
                    }
                }
                // The route the nodes took is the simulator's walk, and its sink
                // accepts it; backwards it makes no progress.
                let mut walked = Vec::new();
                layout.route(from, layout.id(to), &mut walked);
                let walked: Vec<NodeId> = walked.iter().map(|&p| ring.ids()[p]).collect();
                assert_eq!(walked, relays);
                let source = ring.ids()[from];
                assert_eq!(
                    routers[to].check_route(source, relays.len(), false, relays.iter().copied()),
                    Ok(from)
                );
                if relays.len() >= 2 {
                    assert!(matches!(
                        routers[to].check_route(
                            source,
                            relays.len(),
                            false,
                            relays.iter().rev().copied()
                        ),
                        Err(RouteFault::NoProgress { .. })
                    ));
                }
                assert_eq!(
                    routers[to].held_by(ring.ids()[from]),
                    routers[from].entry_ids().contains(&ring.ids()[to])
                );
                let walked = lookup(&membership, &tables, 0, identifiers[to]);
                assert_eq!(membership.id(walked.owner), identifiers[to]);
                let hops = lookup(
                    &membership,
                    &tables,
                    membership.position(identifiers[from]).unwrap(),
                    identifiers[to],
                )
                .hops;
                assert_eq!(hops as usize, relays.len() + 1);
                longest = longest.max(relays.len());
            }
        }
        assert_eq!(longest_relays, longest);
        // A key goes to its owner, and passes the relays its owner's identifier would.
        for _ in 0..200 {
            let key = space.random(&mut rng);
            let from = rng.random_range(0..ring.len());
            let mut relays = Vec::new();
            let owner = layout.route(from, key, &mut relays);
            assert_eq!(layout.id(owner), membership.id(membership.successor(key)));
            let mut by_identifier = Vec::new();
            layout.route(from, layout.id(owner), &mut by_identifier);
            assert_eq!(relays, by_identifier);
        }
    }
}

/// Under the position rule too, the dense next-hop table is the rule for every ID.
#[test]
fn dense_next_hops_are_the_position_rule() {
    let ring = Ring::new((0..50).map(|i| i * 7 + 3).collect());
    for nr in 1..=5 {
        for &id in ring.ids() {
            let router = Router::new(ring.clone(), nr, id).unwrap();
            assert!(router.next_hops.is_some());
            for probe in 0..=400 {
                assert_eq!(router.next_hop(probe), router.next_hop_sparse(probe));
            }
        }
    }
}

#[test]
fn wide_ids_use_the_sparse_index() {
    let ring = Ring::new(vec![5, 1 << 30, u32::MAX]);
    let router = Router::new(ring, 1, 5).unwrap();
    assert!(router.view.positions.is_none() && router.next_hops.is_none());
    assert_eq!(router.next_hop(u32::MAX), Some(0));
    assert_eq!(router.next_hop(7), None);
    assert_eq!(router.next_hop(5), None);
}

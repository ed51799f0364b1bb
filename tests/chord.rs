//! Property tests of the identifier routing core (`overlay::chord`): random rings and keys in
//! spaces of 1 to 160 bits, every node to every owner, under both finger rules.

use overlay::chord::{FingerRule, FingerTable, Id, IdSpace, Membership, Step, lookup, walk};
use overlay::routing::{Ring, transmissions};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

/// A ring of `nodes` members in a `bits`-bit space from `seed`; `clustered` puts every
/// identifier within 64 of the wrap-around point 2^m = 0.
fn ring(bits: u32, nodes: usize, seed: u64, clustered: bool) -> Membership {
    let space = IdSpace::new(bits).unwrap();
    let nodes = if bits < 7 {
        nodes.min(1 << bits)
    } else {
        nodes
    };
    let mut rng = SmallRng::seed_from_u64(seed);
    if !clustered || bits < 7 {
        return Membership::random(space, nodes, &mut rng).unwrap();
    }
    // offset - 64 mod 2^m: the 128 identifiers from 2^m - 64 to 63.
    let mut ids: Vec<Id> = (0..128u128)
        .map(|offset| space.distance(Id::from(64), Id::from(offset)))
        .collect();
    ids.shuffle(&mut rng);
    ids.truncate(nodes);
    Membership::new(space, ids).unwrap()
}

fn keys(space: IdSpace, count: usize, seed: u64, ring: &Membership) -> Vec<Id> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6b65_7973);
    let mut keys: Vec<Id> = (0..count).map(|_| space.random(&mut rng)).collect();
    // Every member's identifier and its neighbours are keys too: the edges of ownership.
    for &id in ring.ids() {
        keys.push(id);
        keys.push(space.add(id, Id::from(1)));
        keys.push(space.distance(Id::from(1), id));
    }
    keys
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Chord fingers are exactly {successor(n + 2^i) : i < m} without n, by distance.
    #[test]
    fn chord_fingers_are_the_distinct_successors(
        bits in 1u32..=160, nodes in 2usize..40, seed: u64, clustered: bool,
    ) {
        let ring = ring(bits, nodes, seed, clustered);
        let space = ring.space();
        for (position, table) in FingerTable::all(FingerRule::Chord, &ring).unwrap().iter().enumerate() {
            let id = ring.id(position);
            let mut expected: Vec<u32> = (0..bits)
                .map(|i| ring.successor(space.add(id, space.power_of_two(i))))
                .filter(|&finger| finger != position)
                .map(|finger| finger as u32)
                .collect();
            expected.dedup();
            prop_assert_eq!(table.entries(), &expected[..]);
            let distances: Vec<Id> = expected.iter().map(|&f| space.distance(id, ring.id(f as usize))).collect();
            prop_assert!(distances.windows(2).all(|pair| pair[0] < pair[1]));
            prop_assert_eq!(expected[0] as usize, (position + 1) % ring.len());
        }
    }

    /// The next hop is Chord's rule, checked by brute force: the owner delivers; a key owned
    /// by the successor goes there; any other goes to the last finger strictly before it.
    #[test]
    fn chord_next_hop_is_the_closest_preceding_finger(
        bits in 1u32..=160, nodes in 2usize..40, seed: u64, clustered: bool,
    ) {
        let ring = ring(bits, nodes, seed, clustered);
        let space = ring.space();
        let tables = FingerTable::all(FingerRule::Chord, &ring).unwrap();
        for key in keys(space, 16, seed, &ring) {
            let owner = ring.successor(key);
            for (position, table) in tables.iter().enumerate() {
                let id = ring.id(position);
                let expected = if owner == position {
                    Step::Owner
                } else if owner == table.entries()[0] as usize {
                    Step::Deliver(0)
                } else {
                    let before = |&f: &u32| space.distance(id, ring.id(f as usize)) < space.distance(id, key);
                    Step::Forward(table.entries().iter().rposition(before).unwrap())
                };
                prop_assert_eq!(table.next_hop(&ring, key), expected);
            }
        }
    }

    /// Every Chord lookup ends at successor(key); each forward more than halves the clockwise
    /// distance left to the key's predecessor, the last node a lookup forwards to (so at most
    /// m forwards); hops = forwards + 1 unless the source owns the key.
    #[test]
    fn chord_lookups_reach_the_owner_halving_the_distance(
        bits in 1u32..=160, nodes in 2usize..40, seed: u64, clustered: bool,
    ) {
        let ring = ring(bits, nodes, seed, clustered);
        let space = ring.space();
        let tables = FingerTable::all(FingerRule::Chord, &ring).unwrap();
        for key in keys(space, 16, seed, &ring) {
            let owner = ring.successor(key);
            let predecessor = ring.id(ring.predecessor_of(owner));
            for from in 0..ring.len() {
                let mut before: Option<Id> = None;
                let found = walk(&ring, &tables, from, key, |at, step| {
                    let left = space.distance(ring.id(at), predecessor);
                    if let Some(before) = before {
                        assert!(left < before && left <= (before >> 1), "a forward did not halve the distance");
                    }
                    // Only a forward promises progress; a delivery ends at the owner.
                    before = matches!(step, Step::Forward(_)).then_some(left);
                });
                prop_assert_eq!(found.owner, owner);
                prop_assert!(found.forwards <= bits);
                if from == owner {
                    prop_assert_eq!((found.hops, found.forwards), (0, 0));
                } else {
                    prop_assert_eq!(found.hops, found.forwards + 1);
                }
            }
        }
    }

    /// Under the positions rule, node-addressed lookups take exactly routing::transmissions
    /// hops and pass the relays routing::Ring::relays names; a key goes to its owner the same
    /// way.
    #[test]
    fn positions_rule_agrees_with_routing(
        bits in 6u32..=160, nodes in 2usize..40, seed: u64, nr_pick in 0usize..8,
    ) {
        let ring = ring(bits, nodes, seed, false);
        let nr = 1 + nr_pick % ((ring.len() - 1).ilog2() as usize + 1);
        let tables = FingerTable::all(FingerRule::Positions { nr }, &ring).unwrap();
        let positions = Ring::new((0..ring.len() as u32).collect());
        for from in 0..ring.len() {
            for sink in 0..ring.len() {
                let distance = ring.positions_between(from, sink) as u64;
                let mut relays = Vec::new();
                let found = walk(&ring, &tables, from, ring.id(sink), |at, _| {
                    if at != from && at != sink {
                        relays.push(at as u32);
                    }
                });
                prop_assert_eq!(found.owner, sink);
                let expected = if distance == 0 { 0 } else { transmissions(distance, nr) };
                prop_assert_eq!(u64::from(found.hops), expected);
                let mut expected_relays = Vec::new();
                positions.relays(from, sink, nr, &mut expected_relays);
                prop_assert_eq!(relays, expected_relays);
            }
        }
        for key in keys(ring.space(), 16, seed, &ring) {
            let owner = ring.successor(key);
            for from in 0..ring.len() {
                let found = lookup(&ring, &tables, from, key);
                prop_assert_eq!(found.owner, owner);
                let distance = ring.positions_between(from, owner) as u64;
                prop_assert_eq!(u64::from(found.hops), if distance == 0 { 0 } else { transmissions(distance, nr) });
            }
        }
    }
}

/// In random rings of 2^10 members and 160-bit identifiers, no lookup takes more than
/// 3 log2 N forwards (Chord's O(log N) with high probability; the mean is about half log2 N).
#[test]
fn chord_lookups_stay_logarithmic_in_a_large_ring() {
    let space = IdSpace::new(160).unwrap();
    let mut rng = SmallRng::seed_from_u64(14);
    let ring = Membership::random(space, 1024, &mut rng).unwrap();
    let tables = FingerTable::all(FingerRule::Chord, &ring).unwrap();
    let distinct_max = tables.iter().map(|t| t.entries().len()).max().unwrap();
    assert!(distinct_max < 40, "{distinct_max} distinct fingers");
    let mut total = 0u64;
    let lookups = 20_000;
    for _ in 0..lookups {
        let from = rand::Rng::random_range(&mut rng, 0..ring.len());
        let found = lookup(&ring, &tables, from, space.random(&mut rng));
        assert!(found.forwards <= 30, "{found:?}");
        total += u64::from(found.forwards);
    }
    let mean = total as f64 / f64::from(lookups);
    assert!((4.0..6.0).contains(&mean), "mean forwards {mean}");
}

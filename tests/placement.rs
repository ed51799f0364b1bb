//! Where the registry places the nodes of processes of several nodes (`overlay node --count
//! K`, `overlay registry --placement`): by default a process's nodes spread over the ring and
//! the processes interleaved, so that with two processes every other position is the same
//! process's and a route's hops of an even number of positions stay in memory
//! (docs/ARCHITECTURE.md, "Placement"); `--placement random` draws every ID at random.

mod common;

use common::{group_registered, groups, registry};

/// Nodes per process: two processes of 12 alternate by chance once in C(24, 12) / 2, about
/// 1.4 million, draws at random.
const PER: usize = 12;

/// The process (its index in `binds`) of each ring position, in ring order, for a registry
/// started with `extra` and a process of [`PER`] nodes on each of `binds`.
fn ring_of(extra: &[&str], binds: &[&str]) -> Vec<usize> {
    let (_reg, port) = registry(extra, false);
    let processes = groups(port, PER, binds);
    let mut ring: Vec<(u32, usize)> = processes
        .iter()
        .enumerate()
        .flat_map(|(process, group)| {
            group_registered(group, PER)
                .into_iter()
                .map(move |node| (node.id, process))
        })
        .collect();
    ring.sort_unstable();
    ring.into_iter().map(|(_, process)| process).collect()
}

fn alternates(ring: &[usize]) -> bool {
    repeats_every(ring, 2)
}

/// Whether the processes take the ring's positions in an order that repeats every `period`
/// positions, each position's neighbour another process's.
fn repeats_every(ring: &[usize], period: usize) -> bool {
    ring.iter().enumerate().all(|(position, &process)| {
        process != ring[(position + 1) % ring.len()]
            && process == ring[(position + period) % ring.len()]
    })
}

#[test]
fn two_processes_nodes_alternate_on_the_ring_unless_placed_at_random() {
    let placed = ring_of(&[], &["127.0.9.1", "127.0.9.2"]);
    assert_eq!(placed.len(), 2 * PER);
    assert!(alternates(&placed), "{placed:?}");
    // A wider ID space: the same.
    let wide = ring_of(&["--id-bits", "20"], &["127.0.9.3", "127.0.9.4"]);
    assert!(alternates(&wide), "{wide:?}");
    let random = ring_of(&["--placement", "random"], &["127.0.9.5", "127.0.9.6"]);
    assert!(!alternates(&random), "{random:?}");
}

/// Three processes: placed in a repeating order when the registry does not know how many
/// nodes to expect; when it does, in arcs, one for each bit of three: two processes
/// alternating over two thirds of the ring, then the third's nodes in a row (docs/ARCHITECTURE.md,
/// "Placement"), so that hops of an even number of positions stay in memory within the first
/// arc and short hops within the second.
#[test]
fn three_processes_are_placed_in_arcs_when_the_registry_knows_they_are_three() {
    let binds = ["127.0.9.7", "127.0.9.8", "127.0.9.9"];
    let placed = ring_of(&[], &binds);
    assert_eq!(placed.len(), 3 * PER);
    assert!(repeats_every(&placed, 3), "{placed:?}");
    let nodes = (3 * PER).to_string();
    let scripted = ring_of(&["--nodes", &nodes, "--start", "10"], &binds);
    assert_eq!(scripted.len(), 3 * PER);
    assert!(!repeats_every(&scripted, 3), "{scripted:?}");
    // The ring starts at ID 0, where the first arc starts.
    let (pair, single) = scripted.split_at(2 * PER);
    assert!(repeats_every(pair, 2), "{scripted:?}");
    assert!(single.iter().all(|&p| p == single[0]), "{scripted:?}");
    assert!(!pair.contains(&single[0]), "{scripted:?}");
    let random = ring_of(
        &["--nodes", &nodes, "--start", "10", "--placement", "random"],
        &binds,
    );
    let (pair, single) = random.split_at(2 * PER);
    assert!(
        !(repeats_every(pair, 2) && single.iter().all(|&p| p == single[0])),
        "{random:?}"
    );
}

//! Chord mode with real processes: a registry and its nodes over TCP on 127.0.0.1, the tables
//! Chord's fingers over 160-bit identifiers. Every sink checks each packet's trace against the
//! Chord route from its source (a packet off that route fails the run), and the run's mean hop
//! count equals what the simulator's code (`overlay::chord`, which `overlay simulate` runs)
//! computes for the same membership.

mod common;

use std::net::SocketAddr;

use common::{Proc, mean_hops, nodes, registry, scripted_session};
use overlay::chord::{FingerRule, FingerTable, IdSpace, Membership, lookup};
use serde_json::Value;

/// A scripted Chord session of `count` nodes sending `packets` each; the result file.
fn chord_session(name: &str, count: usize, packets: u64, extra: &[&str]) -> (Value, Proc) {
    let packets_arg = packets.to_string();
    let mut args = vec!["--start", packets_arg.as_str(), "--fingers", "chord"];
    args.extend_from_slice(extra);
    scripted_session(name, count, &args)
}

/// 64 nodes, identifiers hashed from their addresses (SHA-256, 160 bits): the run passes, and
/// its mean hops are within 2% of the mean over every pair of nodes that the simulator's code
/// walks for the same identifiers (each packet goes to a random other node, so that mean is
/// what the run samples; each packet's own route is checked exactly at its sink).
#[test]
fn chord_run_of_64_nodes_agrees_with_the_simulator() {
    const NODES: usize = 64;
    const PACKETS: u64 = 2000;
    let (result, reg) = chord_session("chord64", NODES, PACKETS, &["--chord-ids", "hash"]);
    let run = &result["runs"][0];
    assert_eq!(run["verdict"], "PASS", "{run:#}");
    assert_eq!(run["finger_rule"], "chord", "{run:#}");
    assert_eq!(run["chord_bits"], 160, "{run:#}");
    assert_eq!(result["finger_rule"], "chord");
    let expected = NODES as u64 * PACKETS;
    assert_eq!(run["packets_received"].as_u64(), Some(expected), "{run:#}");
    assert_eq!(run["corrupted"].as_u64(), Some(0), "{run:#}");
    assert_eq!(run["sum_sent"], run["sum_received"]);

    // The same membership: the registry hashes each address in the order of node IDs.
    let mut rows: Vec<(u64, String)> = run["node"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["id"].as_u64().unwrap(),
                row["address"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort();
    let addresses: Vec<String> = rows.into_iter().map(|(_, address)| address).collect();
    assert!(addresses.iter().all(|a| a.parse::<SocketAddr>().is_ok()));
    let space = IdSpace::new(160).unwrap();
    let (membership, _) = Membership::hashed(space, &addresses).unwrap();
    let tables = FingerTable::all(FingerRule::Chord, &membership).unwrap();
    let mut hops = 0u64;
    for from in 0..NODES {
        for to in (0..NODES).filter(|&to| to != from) {
            hops += u64::from(lookup(&membership, &tables, from, membership.id(to)).hops);
        }
    }
    let simulated = hops as f64 / (NODES * (NODES - 1)) as f64;
    let real = mean_hops(run);
    eprintln!("{NODES} nodes: mean hops {real:.4} in the run, {simulated:.4} simulated");
    assert!(
        (real - simulated).abs() <= 0.02 * simulated,
        "mean hops {real} in the run, {simulated} simulated\n{}",
        reg.dump()
    );
    let out = reg.out.text();
    assert!(
        out.contains("Chord fingers, 160-bit identifiers hashed from each node's address"),
        "{out}"
    );
}

/// Identifiers drawn at random in a narrow space (12 bits, so fingers repeat and gaps are
/// uneven) also route every packet on its Chord route: the run passes.
#[test]
fn chord_run_with_random_narrow_identifiers_passes() {
    let (result, _reg) = chord_session("chord-narrow", 12, 3000, &["--chord-bits", "12"]);
    let run = &result["runs"][0];
    assert_eq!(run["verdict"], "PASS", "{run:#}");
    assert_eq!(run["chord_bits"], 12, "{run:#}");
    assert_eq!(run["packets_received"].as_u64(), Some(36_000), "{run:#}");
}

/// The registry's console: `setup-overlay chord 16 hash` gives each node the first 16 bits of
/// SHA-256 of its address; `list-routing-tables` names the rule and shows every identifier and
/// finger (each finger is successor(n + 2^i)); a run passes; `setup-overlay 2` goes back to
/// position fingers, and classic `setup-overlay` refusals still name the problem.
#[test]
fn console_sets_up_chord_fingers_and_lists_them() {
    use common::{Registered, registered};
    const NODES: usize = 6;
    let (mut reg, port) = registry(&[], true);
    let nodes = nodes(NODES, port, &[]);
    let all: Vec<Registered> = nodes.iter().map(registered).collect();
    reg.wait_line("(6 nodes)", 0);

    let mark = reg.mark();
    reg.send("setup-overlay chord 200");
    let (line, _) = reg.wait_line("BITS must be between 1 and 160", mark);
    assert!(line.contains("200"), "{line}");

    let mark = reg.mark();
    reg.send("setup-overlay chord 16 hash");
    let (line, _) = reg.wait_line("Setting up the overlay", mark);
    assert!(
        line.contains("Chord fingers, 16-bit identifiers hashed"),
        "{line}"
    );
    reg.wait_line("Registry now ready to initiate tasks.", mark);

    // What the listing must show: each node's identifier, then its fingers.
    let space = IdSpace::new(16).unwrap();
    let mut by_id = all.clone();
    by_id.sort_by_key(|r| r.id);
    let addresses: Vec<String> = by_id.iter().map(|r| r.addr.to_string()).collect();
    let (membership, identifiers) = Membership::hashed(space, &addresses).unwrap();
    let tables = FingerTable::all(FingerRule::Chord, &membership).unwrap();
    let mut blocks = Vec::new();
    for (me, identifier) in by_id.iter().zip(&identifiers) {
        let mut block = format!("Node {} at {}, identifier {identifier:x}\n", me.id, me.addr);
        let member = membership.position(*identifier).unwrap();
        for (i, &finger) in tables[member].entries().iter().enumerate() {
            let finger_id = membership.id(finger as usize);
            let node = identifiers.iter().position(|&id| id == finger_id).unwrap();
            block += &format!(
                "  f{i:<4} node {:>10} at {}, identifier {finger_id:x}\n",
                by_id[node].id, by_id[node].addr
            );
        }
        blocks.push(block);
    }
    let mark = reg.mark();
    reg.send("list-routing-tables");
    reg.wait_until("every node's identifier and fingers", mark, |text| {
        let text = text.to_string() + "\n";
        blocks
            .iter()
            .all(|block| text.contains(block))
            .then_some(())
    });

    let mark = reg.mark();
    reg.send("start 2000");
    let (line, _) = reg.wait_line_starting("PASS", mark);
    assert!(line.contains("12,000 packets"), "{line}");

    let mark = reg.mark();
    reg.send("setup-overlay 2");
    let (line, _) = reg.wait_line("Setting up the overlay", mark);
    assert!(line.contains("2 table entries each"), "{line}");
    reg.wait_line("Registry now ready to initiate tasks.", mark);
    let mark = reg.mark();
    reg.send("start 1000");
    reg.wait_line_starting("PASS", mark);
}

//! Keys, the DHT operation, with real processes over TCP on 127.0.0.1: runs whose packets go to
//! random keys (each routed by its key at every hop and delivered at the key's owner, which
//! checks that it owns it) verify as node-addressed runs do, and their hop counts are what the
//! simulator's code (`overlay::chord`, which `overlay simulate` runs) expects for random keys
//! over the same membership.

mod common;

use std::net::SocketAddr;

use common::{Proc, node, registry, temp_path, wait_file};
use overlay::chord::{FingerRule, FingerTable, Id, IdSpace, Membership, lookup};
use serde_json::Value;

fn nodes(count: usize, port: u16) -> Vec<Proc> {
    (0..count)
        .map(|i| node(&format!("node{i}"), port, &[], false))
        .collect()
}

/// A scripted session of `count` nodes sending `packets` each to keys; the result file.
fn keyed_session(name: &str, count: usize, packets: u64, extra: &[&str]) -> (Value, Proc) {
    let json = temp_path(&format!("{name}.json"));
    let (count_arg, packets_arg) = (count.to_string(), packets.to_string());
    let mut args = vec![
        "--nodes",
        count_arg.as_str(),
        "--start",
        packets_arg.as_str(),
        "--targets",
        "keys",
        "--json",
        json.arg(),
    ];
    args.extend_from_slice(extra);
    let (mut reg, port) = registry(&args, false);
    let _nodes = nodes(count, port);
    let status = reg.wait_exit();
    assert!(status.success(), "registry: {status}\n{}", reg.dump());
    let result = wait_file(&json.0, |text| serde_json::from_str::<Value>(text).ok());
    (result, reg)
}

/// Mean transmissions per packet of a run, from the sinks' counts by relays passed.
fn mean_hops(run: &Value) -> f64 {
    let by_relays: Vec<u64> = run["stats"]["packets_by_relays"]
        .as_array()
        .unwrap_or_else(|| panic!("no packets_by_relays in {run:#}"))
        .iter()
        .map(|count| count.as_u64().unwrap())
        .collect();
    let total: u64 = by_relays.iter().sum();
    let weighted: u64 = by_relays
        .iter()
        .enumerate()
        .map(|(relays, &count)| (relays as u64 + 1) * count)
        .sum();
    weighted as f64 / total as f64
}

fn as_f64(id: Id) -> f64 {
    id.to_be_bytes()
        .iter()
        .fold(0.0, |value, &byte| value * 256.0 + f64::from(byte))
}

/// The mean hops of packets to random keys when every member sends as many, each to a key
/// drawn uniformly from those another member owns: member o owns (predecessor, o], so from
/// source s it is the owner with probability arc(o) / (2^m - arc(s)).
fn expected_hops_to_keys(membership: &Membership, rule: FingerRule) -> f64 {
    let tables = FingerTable::all(rule, membership).unwrap();
    let space = membership.space();
    let count = membership.len();
    let arc = |o: usize| {
        as_f64(space.distance(
            membership.id(membership.predecessor_of(o)),
            membership.id(o),
        ))
    };
    let arcs: Vec<f64> = (0..count).map(arc).collect();
    let whole: f64 = arcs.iter().sum();
    let mut mean = 0.0;
    for source in 0..count {
        let mut weighted = 0.0;
        for owner in (0..count).filter(|&o| o != source) {
            let hops = lookup(membership, &tables, source, membership.id(owner)).hops;
            weighted += arcs[owner] * f64::from(hops);
        }
        mean += weighted / (whole - arcs[source]) / count as f64;
    }
    mean
}

/// The node rows of a run by ID: (ID, address, Chord identifier if any).
fn rows(run: &Value) -> Vec<(u64, String, Option<String>)> {
    let mut rows: Vec<(u64, String, Option<String>)> = run["node"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["id"].as_u64().unwrap(),
                row["address"].as_str().unwrap().to_string(),
                row["chord_id"].as_str().map(str::to_string),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// 24 nodes in Chord mode (identifiers hashed from their addresses, 160 bits), 4,000 packets
/// each to random keys: the run passes (every packet delivered at its key's owner with the
/// route its owner's identifier takes, counts, sums and CRCs verified), the result records the
/// keys and every node's identifier, and the mean hops are within 2% of what the simulator's
/// tables give for random keys over the same identifiers.
#[test]
fn chord_run_to_keys_passes_and_agrees_with_the_simulator() {
    const NODES: usize = 24;
    const PACKETS: u64 = 4000;
    let (result, reg) = keyed_session(
        "keys-chord",
        NODES,
        PACKETS,
        &["--fingers", "chord", "--chord-ids", "hash"],
    );
    let run = &result["runs"][0];
    assert_eq!(run["verdict"], "PASS", "{run:#}");
    assert_eq!(run["targets"], "keys", "{run:#}");
    assert_eq!(result["settings"]["targets"], "keys", "{result:#}");
    let expected = NODES as u64 * PACKETS;
    assert_eq!(run["packets_received"].as_u64(), Some(expected), "{run:#}");
    assert_eq!(run["corrupted"].as_u64(), Some(0), "{run:#}");
    assert_eq!(run["sum_sent"], run["sum_received"]);
    let out = reg.out.text();
    assert!(
        out.contains("each to a random key of 160 bits, delivered at its owner"),
        "{out}"
    );

    // The same membership: the registry hashes each address in the order of node IDs, and
    // the result names every node's identifier.
    let rows = rows(run);
    let addresses: Vec<String> = rows.iter().map(|(_, address, _)| address.clone()).collect();
    assert!(addresses.iter().all(|a| a.parse::<SocketAddr>().is_ok()));
    let space = IdSpace::new(160).unwrap();
    let (membership, identifiers) = Membership::hashed(space, &addresses).unwrap();
    for ((id, _, chord_id), identifier) in rows.iter().zip(&identifiers) {
        assert_eq!(
            chord_id.as_deref(),
            Some(format!("{identifier:x}").as_str()),
            "node {id}"
        );
    }
    let simulated = expected_hops_to_keys(&membership, FingerRule::Chord);
    let real = mean_hops(run);
    eprintln!("{NODES} nodes, keys: mean hops {real:.4} in the run, {simulated:.4} expected");
    assert!(
        (real - simulated).abs() <= 0.02 * simulated,
        "mean hops {real} in the run, {simulated} expected\n{}",
        reg.dump()
    );
}

/// Position fingers: a key is a number of the node-ID space (here 7 bits, 0..=127), owned by
/// the first node whose ID is at or after it. A run to keys passes, and its mean hops are what
/// the position tables give for random keys over the same IDs; the rows have no identifiers.
#[test]
fn position_run_to_keys_passes_and_agrees_with_the_simulator() {
    const NODES: usize = 16;
    const PACKETS: u64 = 4000;
    let (result, _reg) = keyed_session("keys-positions", NODES, PACKETS, &["--nr", "3"]);
    let run = &result["runs"][0];
    assert_eq!(run["verdict"], "PASS", "{run:#}");
    assert_eq!(run["targets"], "keys", "{run:#}");
    assert_eq!(
        run["packets_received"].as_u64(),
        Some(NODES as u64 * PACKETS),
        "{run:#}"
    );
    let rows = rows(run);
    assert!(rows.iter().all(|(_, _, chord_id)| chord_id.is_none()));
    let space = IdSpace::new(7).unwrap();
    let ids: Vec<Id> = rows
        .iter()
        .map(|(id, _, _)| Id::from(*id as u128))
        .collect();
    let membership = Membership::new(space, ids).unwrap();
    let simulated = expected_hops_to_keys(&membership, FingerRule::Positions { nr: 3 });
    let real = mean_hops(run);
    eprintln!("{NODES} nodes, positions, keys: mean hops {real:.4}, {simulated:.4} expected");
    assert!(
        (real - simulated).abs() <= 0.02 * simulated,
        "mean hops {real} in the run, {simulated} expected"
    );
}

/// The classic wire carries node IDs only: a run to keys is refused before anything starts.
#[test]
fn classic_refuses_runs_to_keys() {
    let mut reg = Proc::spawn(
        "registry",
        &[
            "registry",
            "--wire",
            "classic",
            "--nodes",
            "2",
            "--start",
            "1",
            "--targets",
            "keys",
        ],
        false,
    );
    let status = reg.wait_exit();
    assert!(!status.success());
    reg.wait_err_line("--targets keys is native only");
}

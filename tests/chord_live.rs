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

/// Manifests larger than a frame, end to end: 3,000 members with 160-bit identifiers (hashed
/// from their addresses) are 72,000 bytes of members per manifest against a 64 KiB frame.
/// Eight are real node processes; the other 2,992 are this test's connections, each
/// registered with a listener of its own (so real nodes' links to them connect), each reading
/// its manifest as the registry sent it: a start and then continuations, put back together
/// into the whole membership in the registry's order, with the fingers Chord gives it. Every
/// real node puts its own manifest together and sets up (it checks its table against the
/// fingers its membership implies), and owns exactly the keys after its predecessor in the
/// whole membership. (Members played by connections keep the test to eight node processes.)
#[test]
fn manifests_larger_than_a_frame_come_in_several_and_every_node_puts_them_together() {
    use std::net::TcpListener;

    use common::{Client, Registered, node, raise_nofile, registered, say_skipped};
    use overlay::chord::Id;
    use overlay::wire::{Control, ManifestAssembly, Status};
    const REAL: usize = 8;
    const MEMBERS: usize = 3_000;
    const _: () = assert!(MEMBERS * (4 + 20) > overlay::limits::FRAME_BYTES_MAX);
    // A connection and a listener for each member played here.
    let limit = raise_nofile(20_000);
    if limit < 2 * MEMBERS as u64 + 1_000 {
        say_skipped(
            "manifests_larger_than_a_frame_come_in_several_and_every_node_puts_them_together",
            &format!(
                "open files are limited to {limit}, and it needs {}",
                2 * MEMBERS + 1_000
            ),
        );
        return;
    }
    let (mut reg, port) = registry(&["--id-bits", "12"], true);
    let mut real: Vec<Proc> = (0..REAL)
        .map(|i| node(&format!("node{i}"), port, &[], true))
        .collect();
    let mut played: Vec<(u32, SocketAddr, Client, TcpListener)> = (0..MEMBERS - REAL)
        .map(|_| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut client = Client::connect(port);
            match client.request(&Control::Register { addr, group: None }) {
                Control::RegisterStatus {
                    status: Status::Ok(id),
                    ..
                } => (id, addr, client, listener),
                other => panic!("registration: {other:?}"),
            }
        })
        .collect();
    let reals: Vec<Registered> = real.iter().map(registered).collect();
    reg.wait_line(&format!("({MEMBERS} nodes)"), 0);
    let mark = reg.mark();
    reg.send("setup-overlay chord 160 hash");

    let mut members: Vec<(u32, SocketAddr)> = played
        .iter()
        .map(|(id, addr, ..)| (*id, *addr))
        .chain(reals.iter().map(|r| (r.id, r.addr)))
        .collect();
    members.sort();
    let ids: Vec<u32> = members.iter().map(|m| m.0).collect();
    let addresses: Vec<String> = members.iter().map(|m| m.1.to_string()).collect();
    let space = IdSpace::new(160).unwrap();
    let (membership, identifiers) = Membership::hashed(space, &addresses).unwrap();
    let tables = FingerTable::all(FingerRule::Chord, &membership).unwrap();
    let node_of = |identifier: Id| ids[identifiers.iter().position(|&i| i == identifier).unwrap()];
    // In the registry's order (by ID), so that its pacing always has the next one to send.
    played.sort_by_key(|p| p.0);
    for (id, _, client, _) in &mut played {
        let (manifest, announced) = match client.recv() {
            Control::ManifestStart { manifest, members } => (manifest, members),
            other => panic!("node {id}: not the start of a manifest: {other:?}"),
        };
        assert_eq!(announced, MEMBERS, "node {id}");
        let mut assembly = ManifestAssembly::start(manifest, announced);
        let whole = loop {
            match client.recv() {
                Control::ManifestMore(more) => {
                    if let Some(whole) = assembly.more(more).unwrap() {
                        break whole;
                    }
                }
                other => panic!("node {id}: not a manifest continuation: {other:?}"),
            }
        };
        assert_eq!(*whole.all_ids, ids[..], "node {id}");
        let chord = whole.chord.as_ref().unwrap();
        assert_eq!((chord.bits, &chord.ids), (160, &identifiers), "node {id}");
        let own = identifiers[ids.iter().position(|i| i == id).unwrap()];
        let fingers: Vec<u32> = tables[membership.position(own).unwrap()]
            .entries()
            .iter()
            .map(|&finger| node_of(membership.id(finger as usize)))
            .collect();
        let entries: Vec<u32> = whole.entries.iter().map(|e| e.id).collect();
        assert_eq!(entries, fingers, "node {id}");
        client.send(&Control::SetupStatus {
            status: Status::Ok(*id),
            info: "set up".into(),
        });
    }
    reg.wait_line("Registry now ready to initiate tasks.", mark);

    // Each real node owns the keys after its predecessor, and not its predecessor's own.
    let marks: Vec<usize> = real.iter().map(Proc::mark).collect();
    let keys: Vec<(Id, Id)> = reals
        .iter()
        .map(|r| {
            let own = identifiers[ids.iter().position(|&i| i == r.id).unwrap()];
            let at = membership.position(own).unwrap();
            let before = membership.id((at + MEMBERS - 1) % MEMBERS);
            (before, space.add(before, Id::from(1)))
        })
        .collect();
    for (node, (before, after)) in real.iter_mut().zip(&keys) {
        node.send(&format!("lookup 0x{after:x}"));
        node.send(&format!("lookup 0x{before:x}"));
    }
    for ((node, mark), (before, after)) in real.iter().zip(marks).zip(&keys) {
        let (line, _) = node.wait_line(&format!("Lookup 0x{after:x}"), mark);
        assert!(line.contains("0 hops; this node owns it"), "{line}");
        let (line, _) = node.wait_line(&format!("Lookup 0x{before:x}"), mark);
        assert!(!line.contains("this node owns it"), "{line}");
    }
}

/// `overlay simulate --membership` takes a run's membership from its result file: a Chord run
/// of 32 nodes with random identifiers (known only from the file's chord_id) to nodes, and one
/// of 16 nodes to keys. For each, the report names the run, its mean hops are the run's, and
/// its exact mean hops for the run's draw are what `chord::lookup` gives over the same
/// identifiers and within 2% of what the run measured.
#[test]
fn simulate_takes_a_runs_membership_and_agrees_with_it() {
    use common::temp_path;
    use overlay::chord::{Id, simulate::exact_mean_hops};
    for (name, count, targets) in [("members32", 32, "nodes"), ("members16", 16, "keys")] {
        let (result, _reg) = chord_session(name, count, 2000, &["--targets", targets]);
        let run = &result["runs"][0];
        assert_eq!(run["verdict"], "PASS", "{run:#}");
        let file = temp_path(&format!("{name}-result.json"));
        std::fs::write(&file.0, result.to_string()).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_overlay"))
            .args(["simulate", "--membership", file.arg(), "--json"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["nodes"], count, "{report:#}");
        assert_eq!(report["ids"], "given", "{report:#}");
        assert_eq!(report["targets"], targets, "{report:#}");
        assert!(
            report["membership"]
                .as_str()
                .unwrap()
                .contains("run 1 of 1")
        );
        let real = mean_hops(run);
        let reported = report["run_mean_hops"].as_f64().unwrap();
        assert!((reported - real).abs() < 1e-9, "{reported} {real}");
        // The same identifiers, walked here.
        let space = IdSpace::new(160).unwrap();
        let identifiers: Vec<Id> = run["node"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                space
                    .parse_key(&format!("0x{}", row["chord_id"].as_str().unwrap()), false)
                    .unwrap()
            })
            .collect();
        let membership = Membership::new(space, identifiers).unwrap();
        let tables = FingerTable::all(FingerRule::Chord, &membership).unwrap();
        let exact = if targets == "keys" {
            exact_mean_hops(&membership, &tables, true)
        } else {
            let pairs = (0..count).flat_map(|from| (0..count).map(move |to| (from, to)));
            let hops: u64 = pairs
                .filter(|(from, to)| from != to)
                .map(|(from, to)| {
                    u64::from(lookup(&membership, &tables, from, membership.id(to)).hops)
                })
                .sum();
            hops as f64 / (count * (count - 1)) as f64
        };
        let simulated = report["exact_mean_hops"].as_f64().unwrap();
        assert!((simulated - exact).abs() < 1e-9, "{simulated} {exact}");
        eprintln!("{name}: mean hops {real:.4} in the run, {exact:.4} exact");
        assert!(
            (real - exact).abs() <= 0.02 * exact,
            "mean hops {real} in the run, {exact} exact"
        );
    }
}

//! Keys, the DHT operation, with real processes over TCP on 127.0.0.1: runs whose packets go to
//! random keys (each routed by its key at every hop and delivered at the key's owner, which
//! checks that it owns it) verify as node-addressed runs do, and their hop counts are what the
//! simulator's code (`overlay::chord`, which `overlay simulate` runs) expects for random keys
//! over the same membership.

mod common;

use std::net::SocketAddr;

use common::{Proc, mean_hops, node, registry, scripted_session};
use overlay::chord::{FingerRule, FingerTable, Id, IdSpace, Membership, lookup, walk};
use serde_json::Value;

/// A scripted session of `count` nodes sending `packets` each to keys; the result file.
fn keyed_session(name: &str, count: usize, packets: u64, extra: &[&str]) -> (Value, Proc) {
    let packets_arg = packets.to_string();
    let mut args = vec!["--start", packets_arg.as_str(), "--targets", "keys"];
    args.extend_from_slice(extra);
    scripted_session(name, count, &args)
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

/// The path a lookup of `key` from node `asker` takes by the tables of `rule` over
/// `membership` (members in the order of `ids`' identifiers `identifiers`): the node IDs
/// visited, the asker first and the owner last.
fn walked(
    membership: &Membership,
    rule: FingerRule,
    ids: &[u32],
    identifiers: &[Id],
    asker: u32,
    key: Id,
) -> Vec<u32> {
    let tables = FingerTable::all(rule, membership).unwrap();
    let node_of = |member: usize| {
        ids[identifiers
            .iter()
            .position(|&identifier| identifier == membership.id(member))
            .unwrap()]
    };
    let asker_identifier = identifiers[ids.iter().position(|&id| id == asker).unwrap()];
    let from = membership.position(asker_identifier).unwrap();
    let mut path = Vec::new();
    walk(membership, &tables, from, key, |at, _| {
        path.push(node_of(at))
    });
    path
}

/// What a lookup line must say: the owner (the walk's last node), its identifier if any, its
/// address, and the path with its hop count.
fn assert_lookup_line(line: &str, path: &[u32], identifier: Option<Id>, addr: SocketAddr) {
    let owner = path.last().unwrap();
    assert!(line.contains(&format!("owner node {owner}")), "{line}");
    if let Some(identifier) = identifier {
        assert!(
            line.contains(&format!("identifier {identifier:x}")),
            "{line}"
        );
    }
    assert!(line.contains(&format!("at {addr}")), "{line}");
    let shown: Vec<String> = path.iter().map(u32::to_string).collect();
    let hops = path.len() - 1;
    assert!(
        line.contains(&format!("path {}, {hops} hop", shown.join(" -> "))),
        "{line}\nexpected path {shown:?}"
    );
}

/// Ten node processes with consoles set up in Chord mode, 32-bit identifiers hashed from their
/// addresses, and what the membership implies: the nodes in ID order and their identifiers.
struct ChordConsoles {
    reg: Proc,
    nodes: Vec<Proc>,
    /// In the order of `nodes`.
    all: Vec<common::Registered>,
    by_id: Vec<common::Registered>,
    ids: Vec<u32>,
    space: IdSpace,
    membership: Membership,
    /// In the order of `ids`.
    identifiers: Vec<Id>,
}

fn chord_consoles() -> ChordConsoles {
    let (mut reg, port) = registry(&[], true);
    let nodes: Vec<Proc> = (0..10)
        .map(|i| node(&format!("node{i}"), port, &[], true))
        .collect();
    let all: Vec<common::Registered> = nodes.iter().map(common::registered).collect();
    reg.wait_line("(10 nodes)", 0);
    let mark = reg.mark();
    reg.send("setup-overlay chord 32 hash");
    reg.wait_line("Registry now ready to initiate tasks.", mark);
    let mut by_id = all.clone();
    by_id.sort_by_key(|r| r.id);
    let ids: Vec<u32> = by_id.iter().map(|r| r.id).collect();
    let addresses: Vec<String> = by_id.iter().map(|r| r.addr.to_string()).collect();
    let space = IdSpace::new(32).unwrap();
    let (membership, identifiers) = Membership::hashed(space, &addresses).unwrap();
    ChordConsoles {
        reg,
        nodes,
        all,
        by_id,
        ids,
        space,
        membership,
        identifiers,
    }
}

/// `lookup KEY` at nodes' consoles and at the registry's, in Chord mode (32-bit identifiers
/// hashed from the addresses) and then with position fingers: each answer names the owner
/// that the membership says owns the key (successor(KEY)), with its identifier and address,
/// and the path the tables imply, hop by hop. A string is hashed into the space in Chord
/// mode only; under position fingers a key is a node ID.
#[test]
fn lookups_at_the_consoles_follow_the_tables_to_the_owner() {
    let ChordConsoles {
        mut reg,
        mut nodes,
        all,
        by_id,
        ids,
        space,
        membership,
        identifiers,
    } = chord_consoles();
    let addr_of = |id: u32| by_id.iter().find(|r| r.id == id).unwrap().addr;
    let identifier_of = |id: u32| identifiers[ids.iter().position(|&i| i == id).unwrap()];
    for (asker, text, key) in [
        (0, "hello", space.hash(b"hello")),
        (3, "0x1234abcd", Id::from(0x1234_abcd)),
        (5, "42", Id::from(42)),
    ] {
        // The asker's own identifier: it owns the key, a lookup of 0 hops.
        let mark = nodes[asker].mark();
        nodes[asker].send(&format!("lookup {text}"));
        let (line, _) = nodes[asker].wait_line(&format!("Lookup {text}"), mark);
        let path = walked(
            &membership,
            FingerRule::Chord,
            &ids,
            &identifiers,
            all[asker].id,
            key,
        );
        let owner = *path.last().unwrap();
        assert_eq!(
            membership.id(membership.successor(key)),
            identifier_of(owner)
        );
        assert_lookup_line(&line, &path, Some(identifier_of(owner)), addr_of(owner));
    }
    // A node's own identifier is its own: 0 hops.
    let own = format!("0x{:x}", identifier_of(all[1].id));
    let mark = nodes[1].mark();
    nodes[1].send(&format!("lookup {own}"));
    let (line, _) = nodes[1].wait_line(&format!("Lookup {own}"), mark);
    assert!(line.contains("0 hops; this node owns it"), "{line}");

    // At the registry: through a node named, and through one it picks.
    let mark = reg.mark();
    reg.send(&format!("lookup hello {}", all[2].id));
    let (line, _) = reg.wait_line("Lookup hello (key", mark);
    let path = walked(
        &membership,
        FingerRule::Chord,
        &ids,
        &identifiers,
        all[2].id,
        space.hash(b"hello"),
    );
    let owner = *path.last().unwrap();
    assert_lookup_line(&line, &path, Some(identifier_of(owner)), addr_of(owner));
    assert!(
        line.contains(&format!("asked of node {}", all[2].id)),
        "{line}"
    );
    let mark = reg.mark();
    reg.send("lookup 0x2a");
    let (line, _) = reg.wait_line("Lookup 0x2a", mark);
    assert!(
        line.contains(&format!(
            "owner node {}",
            ids[identifiers
                .iter()
                .position(|&i| i == membership.id(membership.successor(Id::from(42))))
                .unwrap()]
        )),
        "{line}"
    );
    let mark = reg.mark();
    reg.send("lookup hello 4000000000");
    reg.wait_line("no node 4000000000 is registered", mark);

    // Position fingers: keys are node IDs (32-bit, the first node at or after a key owns it).
    let mark = reg.mark();
    reg.send("setup-overlay 2");
    reg.wait_line("Registry now ready to initiate tasks.", mark);
    let mark = nodes[0].mark();
    nodes[0].send("lookup hello");
    let (line, _) = nodes[0].wait_line("Lookup hello failed", mark);
    assert!(line.contains("a key is a node ID"), "{line}");
    let positions = Membership::new(
        IdSpace::new(32).unwrap(),
        ids.iter().map(|&id| Id::from(u128::from(id))).collect(),
    )
    .unwrap();
    let as_identifiers: Vec<Id> = ids.iter().map(|&id| Id::from(u128::from(id))).collect();
    for target in [all[7].id, all[7].id + 1, all[4].id] {
        let mark = nodes[0].mark();
        nodes[0].send(&format!("lookup {target}"));
        let (line, _) = nodes[0].wait_line(&format!("Lookup {target}"), mark);
        let path = walked(
            &positions,
            FingerRule::Positions { nr: 2 },
            &ids,
            &as_identifiers,
            all[0].id,
            Id::from(u128::from(target)),
        );
        let owner = *path.last().unwrap();
        assert!(!line.contains("identifier"), "{line}");
        assert_lookup_line(&line, &path, None, addr_of(owner));
    }
}

/// Lookups and their replies go around nodes that died, as data does: 10 nodes in Chord mode
/// (32-bit identifiers hashed from their addresses). Two lookups are picked: one whose route
/// from its asker passes relay R1 first, and one whose owner's reply passes relay R2 on its
/// way back (a Chord reply goes on clockwise from the owner to the asker, so never through the
/// lookup's own relays). The registry is stopped (SIGSTOP) first, so that only the nodes' own
/// backup entries and route-around serve, as in the moments before its repair (once it runs
/// it repairs the tables at once, and the holders may then drop a dead link as an old entry
/// before they see it close). R1 and R2 are killed and their neighbours see their links close; then
/// the first asker takes another link instead of failing with "the link ... is down", the
/// second owner's reply gets around R2, and both reach the key's owner (successor(KEY), alive)
/// on a path without the dead nodes.
#[test]
fn lookups_and_replies_go_around_nodes_that_died() {
    let ChordConsoles {
        // Kept to the end: dropping it would stop the registry.
        reg,
        mut nodes,
        all,
        by_id: _,
        ids,
        space,
        membership,
        identifiers,
    } = chord_consoles();
    let identifier_of = |id: u32| identifiers[ids.iter().position(|&i| i == id).unwrap()];
    let process_of = |id: u32| all.iter().position(|r| r.id == id).unwrap();
    let walk = |from: u32, key: Id| {
        walked(
            &membership,
            FingerRule::Chord,
            &ids,
            &identifiers,
            from,
            key,
        )
    };
    // Every lookup of keys "key0".."key199" from every node: (asker, text, path there, relays
    // of the reply's route back).
    let mut routes = Vec::new();
    for &asker in &ids {
        for n in 0..200 {
            let text = format!("key{n}");
            let path = walk(asker, space.hash(text.as_bytes()));
            let owner = *path.last().unwrap();
            let back = walk(owner, identifier_of(asker));
            let back = back[1..back.len().max(2) - 1].to_vec();
            routes.push((asker, text, path, back));
        }
    }
    let pair = routes
        .iter()
        .filter(|(_, _, path, _)| path.len() >= 3)
        .find_map(|first| {
            let r1 = first.2[1];
            routes.iter().find_map(|second| {
                let r2 = *second.3.first()?;
                let ends = [first.0, *first.2.last()?, second.0, *second.2.last()?];
                (r2 != r1 && !ends.contains(&r1) && !ends.contains(&r2))
                    .then_some((first, second, r1, r2))
            })
        });
    let (first, second, r1, r2) = pair.expect("two such lookups among 2,000");
    eprintln!(
        "{} from {}: path {:?} (R1 {r1}); {} from {}: reply back through {:?} (R2 {r2})",
        first.1, first.0, first.2, second.1, second.0, second.3
    );

    let tables = FingerTable::all(FingerRule::Chord, &membership).unwrap();
    reg.signal(libc::SIGSTOP);
    for dead in [r1, r2] {
        nodes[process_of(dead)].kill();
    }
    // Every node whose table holds a dead one sees its link close.
    for &holder in ids.iter().filter(|&&id| id != r1 && id != r2) {
        let at = membership.position(identifier_of(holder)).unwrap();
        for dead in [r1, r2] {
            let holds = tables[at]
                .entries()
                .iter()
                .any(|&finger| membership.id(finger as usize) == identifier_of(dead));
            if holds {
                nodes[process_of(holder)].wait_line(&format!("(node {dead} at "), 0);
            }
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    for (asker, text, path, _) in [first, second] {
        let owner = *path.last().unwrap();
        assert_eq!(
            membership.id(membership.successor(space.hash(text.as_bytes()))),
            identifier_of(owner)
        );
        let asking = &mut nodes[process_of(*asker)];
        let mark = asking.mark();
        asking.send(&format!("lookup {text}"));
        let (line, _) = asking.wait_line(&format!("Lookup {text}"), mark);
        assert!(line.contains(&format!("owner node {owner}")), "{line}");
        let shown: Vec<u32> = line
            .split("path ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_else(|| panic!("no path in {line}"))
            .split(" -> ")
            .map(|id| id.trim().parse().unwrap())
            .collect();
        assert_eq!(
            (shown[0], *shown.last().unwrap()),
            (*asker, owner),
            "{line}"
        );
        assert!(!shown.contains(&r1) && !shown.contains(&r2), "{line}");
    }
    reg.signal(libc::SIGCONT);
}

/// The registry checks the owner a node answers for its `lookup` against its own membership:
/// three registered peers played by the test (each set up as a node would be); the one asked
/// answers once truthfully and once naming another member, and the registry names the
/// contradiction (issue 14: a node may lie).
#[test]
fn the_registry_names_a_lookup_owner_its_membership_contradicts() {
    use common::Client;
    use overlay::wire::{Control, LookupAnswer, Status};

    let (mut reg, port) = registry(&[], true);
    let mut played: Vec<(u32, Client, std::net::TcpListener)> = (0..3)
        .map(|_| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut client = Client::connect(port);
            match client.request(&Control::Register { addr, group: None }) {
                Control::RegisterStatus {
                    status: Status::Ok(id),
                    ..
                } => (id, client, listener),
                other => panic!("registration: {other:?}"),
            }
        })
        .collect();
    reg.wait_line("(3 nodes)", 0);
    let mark = reg.mark();
    reg.send("setup-overlay 1");
    for (id, client, _) in &mut played {
        match client.recv() {
            Control::Manifest(_) => {}
            other => panic!("node {id}: not a manifest: {other:?}"),
        }
        client.send(&Control::SetupStatus {
            status: Status::Ok(*id),
            info: "set up".into(),
        });
    }
    reg.wait_line("Registry now ready to initiate tasks.", mark);
    played.sort_by_key(|p| p.0);
    let ids: Vec<u32> = played.iter().map(|p| p.0).collect();
    // Key = the second node's ID: it owns it (position fingers: a key is a node ID).
    let key = ids[1];
    let asked = &mut played[0].1;
    for (owner, lie) in [(ids[1], false), (ids[2], true)] {
        let mark = reg.mark();
        reg.send(&format!("lookup {key} {}", ids[0]));
        let number = match asked.recv() {
            Control::Lookup { number, key: text } => {
                assert_eq!(text, key.to_string());
                number
            }
            other => panic!("not a lookup: {other:?}"),
        };
        asked.send(&Control::LookupResult {
            number,
            result: Ok(LookupAnswer {
                key: format!("{key:x}"),
                owner,
                path: vec![ids[0], owner],
                round_trip_ns: 1_000,
            }),
        });
        // The answer's line, not "Lookup N asked of node ..." (N, the lookup's number, may
        // equal the key).
        let (line, _) = reg.wait_line(": owner node ", mark);
        assert!(line.starts_with(&format!("Lookup {key}")), "{line}");
        assert!(line.contains(&format!("owner node {owner}")), "{line}");
        if lie {
            assert!(
                line.contains(&format!(
                    "but by the registry's membership node {} owns it",
                    ids[1]
                )),
                "{line}"
            );
        } else {
            assert!(!line.contains("but by the registry"), "{line}");
        }
    }
}

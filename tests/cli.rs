//! End-to-end tests of the `overlay` binary: a real registry and real messaging nodes as
//! separate processes, over TCP on 127.0.0.1 (and 127.0.0.N with `--bind`).

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use common::{
    Client, Proc, Registered, node, nodes, read_json, registered, registry, scripted_session,
    temp_path, wait_file,
};
use overlay::wire::{Control, Status};
use serde_json::Value;

fn u64_of(value: &Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a number in {value}"))
}

/// The checks every passing run of `nodes` nodes sending `packets` each must meet.
fn assert_run_passed(run: &Value, nodes: usize, packets: u64) {
    let expected = nodes as u64 * packets;
    assert_eq!(run["verdict"], "PASS", "{run:#}");
    assert_eq!(u64_of(run, "packets_sent"), expected, "{run:#}");
    assert_eq!(u64_of(run, "packets_received"), expected, "{run:#}");
    assert_eq!(run["sum_sent"], run["sum_received"], "{run:#}");
    assert_eq!(u64_of(run, "corrupted"), 0, "{run:#}");
    assert_eq!(u64_of(run, "dropped"), 0, "{run:#}");
    assert!(run["duration_s"].as_f64().unwrap() > 0.0, "{run:#}");
    let rows = run["node"].as_array().expect("node array");
    assert_eq!(rows.len(), nodes, "{run:#}");
    let ids: BTreeSet<u64> = rows.iter().map(|n| u64_of(n, "id")).collect();
    assert_eq!(ids.len(), nodes, "node IDs must be distinct: {run:#}");
    let mut received = 0;
    for row in rows {
        assert!(u64_of(row, "id") <= 127, "{row}");
        assert_eq!(u64_of(row, "packets_sent"), packets, "{row}");
        received += u64_of(row, "packets_received");
        for key in ["packets_relayed", "sum_sent", "sum_received"] {
            assert!(row[key].is_number(), "{key} missing in {row}");
        }
    }
    assert_eq!(received, expected);
}

/// 1. A scripted run of 10 nodes; every process has /dev/null as stdin (end of input at once)
///    and still does its work.
#[test]
fn scripted_ten_node_run_passes() {
    let json = temp_path("scripted.json");
    let port_file = temp_path("scripted.port");
    let (json_arg, port_arg) = (json.arg(), port_file.arg());
    let mut reg = Proc::spawn(
        "registry",
        &[
            "registry",
            "--nodes",
            "10",
            "--start",
            "10000",
            "--json",
            json_arg,
            "--port-file",
            port_arg,
        ],
        false,
    );
    let port: u16 = wait_file(&port_file.0, |text| {
        text.ends_with('\n')
            .then(|| text.trim().parse().ok())
            .flatten()
    });
    let mut nodes = nodes(10, port, &[]);
    let status = reg.wait_exit();
    assert!(status.success(), "registry: {status}\n{}", reg.dump());

    let out = reg.out.text();
    let sum = out
        .lines()
        .find(|l| l.starts_with("Sum"))
        .unwrap_or_else(|| panic!("no Sum row\n{out}"));
    assert_eq!(sum.matches("100,000").count(), 2, "{sum}");
    assert!(out.lines().any(|l| l.starts_with("PASS")), "{out}");

    let result = read_json(&json);
    assert_eq!(u64_of(&result, "nodes"), 10);
    // No --nr: ceil(log2 10) entries.
    assert_eq!(u64_of(&result, "nr"), 4);
    assert_run_passed(&result, 10, 10_000);

    // Every node was registered and took part; its ID is in the result.
    let ids: BTreeSet<u64> = result["node"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| u64_of(n, "id"))
        .collect();
    for node in &mut nodes {
        let me = registered(node);
        assert!(ids.contains(&u64::from(me.id)), "{me:?} not in {ids:?}");
    }
}

/// 2. Two runs in a row: each run's counters start from zero.
#[test]
fn scripted_two_runs_reset_counters() {
    let (result, reg) = scripted_session("two-runs", 10, &["--start", "10000", "--runs", "2"]);
    let runs = result["runs"].as_array().expect("runs array");
    assert_eq!(runs.len(), 2, "{result:#}");
    for run in runs {
        assert_run_passed(run, 10, 10_000);
    }
    assert_eq!(result["verdict"], "PASS");
    assert_eq!(u64_of(&result, "packets_sent"), 200_000);
    assert_eq!(u64_of(&result, "packets_received"), 200_000);
    let out = reg.out.text();
    assert!(out.contains("Run 1 summary:"), "{out}");
    assert!(out.contains("Run 2 summary:"), "{out}");
}

/// 2a. A session of more runs than the registry keeps in full: memory stays bounded (the last
///     runs are kept, the total covers every run), and the result file says how many ran.
#[test]
fn many_runs_keep_a_bounded_tail_and_a_whole_total() {
    let kept = overlay::limits::RESULTS_KEPT_RUNS_MAX;
    let count = kept + 6;
    let runs = count.to_string();
    let (result, reg) = scripted_session(
        "many-runs",
        4,
        &["--nr", "2", "--start", "20", "--runs", &runs],
    );
    assert_eq!(result["verdict"], "PASS", "{result:#}");
    assert_eq!(u64_of(&result, "runs_completed"), count as u64);
    assert_eq!(result["runs"].as_array().expect("runs").len(), kept);
    assert_eq!(u64_of(&result, "packets_received"), 4 * 20 * count as u64);
    let out = reg.out.text();
    assert!(out.contains(&format!("Run {count} summary:")), "{out}");
}

/// 2b. Nodes that busy-poll (`--busy-poll-us 2000`, and the adaptive poll of the default)
///     still pace their sends by ticks and deliver every packet: a paced run, then an unpaced
///     one. The paced run is light load, where the adaptive poll turns on.
#[test]
fn busy_polling_nodes_pass_paced_and_unpaced_runs() {
    for (flags, rate, packets) in [
        (&["--busy-poll-us", "2000"][..], "1000", "300"),
        (&["--busy-poll-us", "2000"][..], "0", "20000"),
        (&[][..], "1000", "300"),
    ] {
        let json = temp_path("busy-poll.json");
        let (mut reg, port) = registry(
            &[
                "--nodes",
                "4",
                "--nr",
                "2",
                "--start",
                packets,
                "--rate",
                rate,
                "--json",
                json.arg(),
            ],
            false,
        );
        let port = port.to_string();
        let mut nodes: Vec<Proc> = (0..4)
            .map(|i| {
                Proc::spawn_logging(
                    &format!("node{i}"),
                    &[&["node", "127.0.0.1", &port][..], flags].concat(),
                    "warn,overlay::io=info",
                )
            })
            .collect();
        let status = reg.wait_exit();
        assert!(status.success(), "registry: {status}\n{}", reg.dump());
        let result = read_json(&json);
        assert_run_passed(&result, 4, packets.parse().unwrap());
        if rate != "0" {
            // 300 packets at 1,000 per second take at least 0.3 s.
            let seconds = result["duration_s"].as_f64().unwrap();
            assert!(seconds >= 0.29, "a paced run ended after {seconds} s");
        }
        // The flag reached the loop: each node's totals at exit count polls begun.
        for node in &mut nodes {
            node.wait_exit();
            let log = node.err.text();
            let polls: u64 = log
                .split_whitespace()
                .find_map(|word| word.strip_prefix("polls="))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no polls= in the loop's totals\n{}", node.dump()));
            assert!(polls > 0, "{}", node.dump());
        }
    }
}

/// Parses `list-routing-tables` output: (node header line, entry lines) per node.
fn parse_tables(text: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if line.starts_with("Node ") && line.contains(" at ") {
            blocks.push((line.to_string(), Vec::new()));
        } else if line.trim_start().starts_with('+')
            && let Some(block) = blocks.last_mut()
        {
            block.1.push(line.to_string());
        }
    }
    blocks
}

/// 3. The operator's consoles: registry commands, refusals, a run, and a node leaving.
#[test]
fn interactive_consoles() {
    let (mut reg, port) = registry(&[], true);
    // Node 0 is typed at; the others have /dev/null as stdin.
    let mut typed = node("node0", port, &[], true);
    let mut others = (1..10)
        .map(|i| node(&format!("node{i}"), port, &[], i == 1))
        .collect::<Vec<_>>();
    // Node 1's stdin is a pipe closed at once: it must keep working (it takes part in the runs).
    others[0].close_stdin();
    let mut all: Vec<Registered> = vec![registered(&typed)];
    all.extend(others.iter().map(registered));
    reg.wait_line("(10 nodes)", 0);

    // A node's console: unknown commands print the help; end of input stops nothing.
    let mark = typed.mark();
    typed.send("frobnicate");
    let (line, after) = typed.wait_line("frobnicate", mark);
    assert!(line.contains("unknown"), "{line}");
    typed.wait_line("exit-overlay", after);

    // start before setup is refused.
    let mark = reg.mark();
    reg.send("start 5");
    let (line, _) = reg.wait_line("start refused", mark);
    assert!(line.contains("not set up"), "{line}");

    // list-messaging-nodes: host, port and ID of each node.
    let mark = reg.mark();
    reg.send("list-messaging-nodes");
    for me in &all {
        let expected = format!("{} {} {}", me.addr.ip(), me.addr.port(), me.id);
        reg.wait_line_starting(&expected, mark);
    }

    // An unknown command prints the help.
    let mark = reg.mark();
    reg.send("frobnicate");
    let (line, after) = reg.wait_line("frobnicate", mark);
    assert!(line.contains("unknown"), "{line}");
    reg.wait_line("setup-overlay", after);

    // 10 nodes cannot fill 9 table entries.
    let mark = reg.mark();
    reg.send("setup-overlay 9");
    let (line, _) = reg.wait_line("setup-overlay refused", mark);
    assert!(line.contains('9') && line.contains("10 nodes"), "{line}");

    let mark = reg.mark();
    reg.send("setup-overlay 3");
    reg.wait_line("Registry now ready to initiate tasks.", mark);

    // list-routing-tables shows every node with its 3 entries, 1, 2 and 4 positions ahead.
    let mark = reg.mark();
    reg.send("list-routing-tables");
    let mut ring: Vec<Registered> = all.clone();
    ring.sort_by_key(|r| r.id);
    let blocks = reg.wait_until("10 routing tables", mark, |text| {
        let blocks = parse_tables(text);
        (blocks.len() == 10 && blocks.iter().all(|b| b.1.len() == 3)).then_some(blocks)
    });
    for (position, me) in ring.iter().enumerate() {
        let (header, entries) = &blocks[position];
        assert!(
            header.contains(&format!("Node {} ", me.id)) && header.contains(&me.addr.to_string()),
            "{header} is not {me:?}"
        );
        for (hop, entry) in entries.iter().enumerate() {
            let target = ring[(position + (1 << hop)) % ring.len()];
            let words: Vec<&str> = entry.split_whitespace().collect();
            assert!(
                words.contains(&target.id.to_string().as_str())
                    && words.contains(&target.addr.to_string().as_str()),
                "entry {hop} of node {}: {entry:?}, expected {target:?}",
                me.id
            );
        }
    }

    // A run.
    let mark = reg.mark();
    reg.send("start 1000");
    let (_, after) = reg.wait_line("Run 1 summary:", mark);
    let (sum, _) = reg.wait_line_starting("Sum", after);
    assert_eq!(sum.matches("10,000").count(), 2, "{sum}");
    let (verdict, _) = reg.wait_line_starting("PASS", after);
    assert!(verdict.contains("10,000 packets"), "{verdict}");

    // The node console.
    let me = all[0];
    let mark = typed.mark();
    typed.send("print-counters-and-diagnostics");
    let (header, after) = typed.wait_line("Packets Sent", mark);
    assert!(header.contains("Packets Received"), "{header}");
    let (row, _) = typed.wait_line_starting(&format!("{:>10} ", me.id), after);
    assert!(row.split_whitespace().count() >= 8, "{row}");

    let mark = reg.mark();
    typed.send("exit-overlay");
    let status = typed.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", typed.dump());
    assert!(
        typed.out.text().contains("Deregistered"),
        "{}",
        typed.dump()
    );
    // A leave is live: the others' tables change without it, and only those that must.
    let (line, _) = reg.wait_line(&format!("Node {} left (9 nodes)", me.id), mark);
    assert!(line.contains("got new tables"), "{line}");

    // The node is gone from the list.
    let mark = reg.mark();
    reg.send("list-messaging-nodes");
    let last = all[9];
    let (_, after) = reg.wait_line(&format!("{} {}", last.addr.port(), last.id), mark);
    let listed = &reg.out.text()[mark..after];
    assert!(
        !listed.contains(&format!("{} {} {}", me.addr.ip(), me.addr.port(), me.id)),
        "{listed}"
    );

    // The overlay stays set up: the next run goes at once, over the nine left.
    let mark = reg.mark();
    reg.send("start 5");
    let (_, after) = reg.wait_line("Run 2 summary:", mark);
    let (sum, _) = reg.wait_line_starting("Sum", after);
    let fields: Vec<&str> = sum.split_whitespace().collect();
    assert_eq!(fields[1..3], ["45", "45"], "{sum}");
    reg.wait_line_starting("PASS", after);

    // A new node joins the set-up overlay; the run after it counts it.
    let mark = reg.mark();
    let newcomer = node("node10", port, &[], false);
    let joined = registered(&newcomer);
    let (line, _) = reg.wait_line(&format!("Node {} joined", joined.id), mark);
    assert!(line.contains("got new tables"), "{line}");
    let mark = reg.mark();
    reg.send("start 500");
    let (_, after) = reg.wait_line("Run 3 summary:", mark);
    let (sum, _) = reg.wait_line_starting("Sum", after);
    assert_eq!(sum.matches("5,000").count(), 2, "{sum}");
    reg.wait_line_starting("PASS", after);
    drop(others);
}

fn register(addr: SocketAddr) -> Control {
    Control::Register { addr, group: None }
}

fn refusal(answer: Control) -> String {
    match answer {
        Control::RegisterStatus {
            status: Status::Failed,
            info,
        }
        | Control::DeregisterStatus {
            status: Status::Failed,
            info,
        } => info,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn registered_id(answer: Control) -> u32 {
    match answer {
        Control::RegisterStatus {
            status: Status::Ok(id),
            info,
        } => {
            assert!(!info.is_empty());
            id
        }
        other => panic!("expected a registration, got {other:?}"),
    }
}

/// 4a-c. Duplicate registration, a foreign address, deregistering twice.
#[test]
fn registry_refuses_bad_registrations() {
    let (_reg, port) = registry(&[], false);
    let claimed: SocketAddr = "127.0.0.1:40001".parse().unwrap();

    // (a) The same address twice, from two connections.
    let mut first = Client::connect(port);
    let id = registered_id(first.request(&register(claimed)));
    assert!(id <= 127);
    let mut second = Client::connect(port);
    let why = refusal(second.request(&register(claimed)));
    assert!(why.contains("already registered"), "{why}");
    assert!(why.contains(&claimed.to_string()), "{why}");
    // The same connection registering again.
    let why = refusal(first.request(&register("127.0.0.1:40002".parse().unwrap())));
    assert!(why.contains("already registered"), "{why}");

    // (b) Another IP than the connection's.
    let mut liar = Client::connect(port);
    let why = refusal(liar.request(&register("127.0.0.9:40003".parse().unwrap())));
    assert!(
        why.contains("127.0.0.9") && why.contains("127.0.0.1"),
        "{why}"
    );
    // ... also for deregistration of someone else's node.
    let why = refusal(liar.request(&Control::Deregister {
        addr: "127.0.0.9:40001".parse().unwrap(),
        id,
    }));
    assert!(why.contains("127.0.0.9"), "{why}");

    // (c) Deregister twice: OK, then refused.
    match first.request(&Control::Deregister { addr: claimed, id }) {
        Control::DeregisterStatus {
            status: Status::Ok(got),
            ..
        } => assert_eq!(got, id),
        other => panic!("expected deregistration success, got {other:?}"),
    }
    let why = refusal(first.request(&Control::Deregister { addr: claimed, id }));
    assert!(why.contains("not registered"), "{why}");

    // The address is free again.
    registered_id(second.request(&register(claimed)));
}

/// 4d. The default ID space holds 128 nodes; the 129th is refused.
#[test]
fn registry_refuses_the_129th_node() {
    let (_reg, port) = registry(&[], false);
    let mut clients = Vec::new();
    let mut ids = BTreeSet::new();
    for i in 0..128u16 {
        let mut client = Client::connect(port);
        let addr = SocketAddr::from(([127, 0, 0, 1], 20_000 + i));
        let id = registered_id(client.request(&register(addr)));
        assert!(id <= 127, "ID {id}");
        assert!(ids.insert(id), "ID {id} given twice");
        clients.push(client);
    }
    assert_eq!(ids, (0..=127).collect());
    let mut last = Client::connect(port);
    let why = refusal(last.request(&register(SocketAddr::from(([127, 0, 0, 1], 20_128)))));
    assert!(why.contains("IDs") && why.contains("127"), "{why}");
}

/// 4e. Garbage closes the connection that sent it; the registry keeps serving.
#[test]
fn registry_survives_garbage() {
    let (_reg, port) = registry(&[], false);
    let mut survivor = Client::connect(port);
    let addr: SocketAddr = "127.0.0.1:41000".parse().unwrap();
    let id = registered_id(survivor.request(&register(addr)));

    // A 4 GiB length prefix.
    let mut huge = Client::connect(port);
    huge.send_raw(&[0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0]);
    assert!(huge.closed_by_peer(), "a 4 GiB frame was not refused");

    // A zero length prefix.
    let mut empty = Client::connect(port);
    empty.send_raw(&[0, 0, 0, 0]);
    assert!(empty.closed_by_peer(), "an empty frame was not refused");

    // A well-framed message of an unknown type.
    let mut unknown = Client::connect(port);
    unknown.send_raw(&[5, 0, 0, 0, 0xee, 1, 2, 3, 4]);
    assert!(
        unknown.closed_by_peer(),
        "an unknown message was not refused"
    );

    // Random bytes (a fixed xorshift stream), then end of input.
    let mut random = Client::connect(port);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    random.send_raw(&bytes);
    let _ = random.stream.shutdown(std::net::Shutdown::Write);
    assert!(random.closed_by_peer(), "random bytes were not refused");

    // A message the registry only sends.
    let mut wrong = Client::connect(port);
    wrong.send(&Control::SummaryRequest {
        reset: true,
        links: false,
    });
    assert!(
        wrong.closed_by_peer(),
        "a registry-only message was accepted"
    );

    // The registry still serves: a new registration works, the old node is still there.
    let mut later = Client::connect(port);
    let other = registered_id(later.request(&register("127.0.0.1:41001".parse().unwrap())));
    assert_ne!(other, id);
    match survivor.request(&Control::Deregister { addr, id }) {
        Control::DeregisterStatus {
            status: Status::Ok(got),
            ..
        } => assert_eq!(got, id),
        other => panic!("expected deregistration success, got {other:?}"),
    }
}

/// 5. Nodes on 127.0.0.2..=127.0.0.7 register with those addresses and a scripted run passes.
#[test]
fn distinct_loopback_hosts() {
    let json = temp_path("hosts.json");
    let (mut reg, port) = registry(
        &["--nodes", "6", "--start", "1000", "--json", json.arg()],
        true,
    );
    let hosts: Vec<String> = (2..=7).map(|n| format!("127.0.0.{n}")).collect();
    let mut procs: Vec<Proc> = hosts[..5]
        .iter()
        .map(|h| node(h, port, &["--bind", h], false))
        .collect();
    let mut seen: Vec<Registered> = procs.iter().map(registered).collect();
    for (me, host) in seen.iter().zip(&hosts) {
        assert_eq!(me.addr.ip().to_string(), *host);
    }
    reg.wait_line("(5 nodes)", 0);
    let mark = reg.mark();
    reg.send("list-messaging-nodes");
    for me in &seen {
        reg.wait_line_starting(
            &format!("{} {} {}", me.addr.ip(), me.addr.port(), me.id),
            mark,
        );
    }
    // The sixth node starts the scripted run.
    procs.push(node(&hosts[5], port, &["--bind", &hosts[5]], false));
    seen.push(registered(&procs[5]));
    let status = reg.wait_exit();
    assert!(status.success(), "registry: {status}\n{}", reg.dump());
    let result = read_json(&json);
    assert_run_passed(&result, 6, 1000);
    let addresses: BTreeSet<String> = result["node"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["address"].as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = seen.iter().map(|r| r.addr.to_string()).collect();
    assert_eq!(addresses, expected);
}

/// 6. A node killed during a run is a crash the run accounts for.
///
/// The registry names it and goes on without it, the others routing around it. Every packet
/// is accounted for, so the run is PASS with crashes, and the scripted registry exits with
/// status 3 (not 0, not 1), its JSON naming the crashed node.
#[test]
fn killed_node_is_a_crash_the_run_accounts_for() {
    let json = temp_path("killed.json");
    let (mut reg, port) = registry(
        &[
            "--nodes",
            "10",
            "--start",
            "20000",
            "--rate",
            "10000",
            "--json",
            json.arg(),
        ],
        false,
    );
    let mut nodes = nodes(10, port, &[]);
    let victim = registered(&nodes[3]);
    reg.wait_line("Run 1:", 0);
    // A registrant during a run is a join; this one never connects to its table entries nor
    // answers anything (it keeps its connection open to the end): it must hold up neither the
    // run nor the repair after the crash.
    let mut late = Client::connect(port);
    let silent = registered_id(late.request(&register("127.0.0.1:42000".parse().unwrap())));
    let mark = reg.mark();
    nodes[3].kill();
    let needle = format!("node {} at {}", victim.id, victim.addr);
    let (line, _) = reg.wait_line(&needle, mark);
    assert!(line.contains("left"), "{line}");
    let status = reg.wait_exit();
    assert_eq!(
        status.code(),
        Some(3),
        "registry exited with {status}\n{}",
        reg.dump()
    );
    let result = read_json(&json);
    assert_eq!(result["verdict"], "PASS_WITH_CRASHES", "{result:#}");
    assert_eq!(
        result["runs"][0]["crashed"],
        serde_json::json!([victim.id]),
        "{result:#}"
    );
    assert_eq!(
        result["runs"][0]["accounting"]["unaccounted"], 0,
        "{result:#}"
    );
    assert!(
        reg.out
            .text()
            .contains(&format!("PASS with crashes: node {} crashed", victim.id)),
        "{}",
        reg.dump()
    );
    // The silent registrant was never part of the run: never polled, never waited for.
    let said = reg.out.text() + &reg.err.text();
    assert!(!said.contains("no progress"), "{}", reg.dump());
    assert!(
        !said.contains(&format!("no answer from node {silent}")),
        "{}",
        reg.dump()
    );
    let rows = result["runs"][0]["node"].as_array().expect("node rows");
    assert!(
        rows.iter().all(|row| row["id"] != silent),
        "the silent registrant {silent} has a row: {result:#}"
    );
    drop(late);
}

/// 7. A node whose registry is not there says so and exits non-zero.
#[test]
fn node_without_registry_fails() {
    // A socket bound and never listening holds the port for the whole test: connections to
    // it are refused, and no other test's process can take it meanwhile.
    let held = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    held.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let port = held.local_addr().unwrap().as_socket().unwrap().port();
    // Bound to another loopback address: connecting from 127.0.0.1 to a free port of
    // 127.0.0.1 can pick that same port as its source and connect to itself (a TCP
    // simultaneous open), or reach the node's own listener on that port.
    let mut lonely = node(
        "lonely",
        port,
        &["--registry-wait", "1", "--bind", "127.0.0.2"],
        false,
    );
    let status = lonely.wait_exit();
    assert!(!status.success(), "{status}");
    let said = lonely.out.text() + &lonely.err.text();
    assert!(said.contains("cannot reach the registry"), "{said}");
    assert!(said.contains("gave up after"), "{said}");
    assert!(said.contains(&port.to_string()), "{said}");
}

//! The adaptive busy poll (the default, `--busy-poll-us auto`; `src/io/busy_poll.rs`): a node
//! polls only after recent work, so once traffic stops it sleeps and uses no CPU; at most one
//! process polls on a core at a time (`src/io/core_token.rs`); and nothing wakes an idle
//! overlay (no check at an interval: signals come through the ring, `src/io/signals.rs`).

mod common;

use std::time::{Duration, Instant};

use common::{Proc, cpu_ticks, group_registered, groups, nodes, registered, registry, sleeps};
use overlay::limits::STREAM_BURST_GAP_NS;

/// The four `nodes` register with `reg` and it sets up an overlay of NR 2.
fn set_up(reg: &mut Proc, nodes: &[Proc]) {
    for n in nodes {
        registered(n);
    }
    set_up_registered(reg);
}

/// Once four nodes are registered with `reg`, it sets up an overlay of NR 2.
fn set_up_registered(reg: &mut Proc) {
    reg.wait_line("(4 nodes)", 0);
    let mark = reg.mark();
    reg.send("setup-overlay 2");
    reg.wait_line("Registry now ready to initiate tasks.", mark);
}

/// Run 1 (`start PACKETS`) passes with `total` (e.g. "2,000 packets") in its verdict.
fn run_passes(reg: &mut Proc, packets: u32, total: &str) {
    let mark = reg.mark();
    reg.send(&format!("start {packets}"));
    let (_, after) = reg.wait_line("Run 1 summary:", mark);
    let (verdict, _) = reg.wait_line_starting("PASS", after);
    assert!(verdict.contains(total), "{verdict}");
}

/// Four nodes with the default flags carry a paced run (light load, where they poll), then
/// sit idle: over 3 s each uses at most one clock tick (10 ms) of CPU. A node that kept
/// polling would use about 300; one that polled for a millisecond after every timer or
/// keepalive would show up too.
#[test]
fn default_nodes_use_no_cpu_once_light_traffic_stops() {
    let (mut reg, port) = registry(&["--rate", "1000"], true);
    let nodes: Vec<Proc> = nodes(4, port, &[]);
    set_up(&mut reg, &nodes);
    run_passes(&mut reg, 500, "2,000 packets");
    // The last summary request's work and its poll are long over after this.
    std::thread::sleep(Duration::from_millis(500));
    let before: Vec<u64> = nodes.iter().map(|n| cpu_ticks(n.id()).unwrap()).collect();
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<u64> = nodes.iter().map(|n| cpu_ticks(n.id()).unwrap()).collect();
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(
            a - b <= 1,
            "idle node {i} used {} clock ticks of CPU in 3 s",
            a - b
        );
    }
}

/// An overlay set up and idle sleeps until something happens: over 3 s, no node and not the
/// registry wakes more than twice (a thread's voluntary context switches). A node that looked
/// for SIGTERM every 250 ms woke 12 times (the check this replaced); CPU time does not show
/// such wake-ups (each costs microseconds), and 64 nodes paid 15-28 clock ticks in 10 s for it
/// (docs/PERFORMANCE.md, the idle row). Nor does an accepted link wake its node at what was
/// its handshake deadline (1-3 wake-ups per node 5 s after set-up, before `Strangers` dropped
/// the deadlines of connections that showed who they are).
#[test]
fn an_idle_overlay_sleeps_until_something_happens() {
    let (mut reg, port) = registry(&[], true);
    let mut nodes: Vec<Proc> = nodes(4, port, &[]);
    set_up(&mut reg, &nodes);
    // The set-up's last messages and any poll after them are long over after this.
    std::thread::sleep(Duration::from_millis(500));
    let processes: Vec<(String, u32)> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("node {i}"), n.id()))
        .chain([("the registry".to_string(), reg.id())])
        .collect();
    let before: Vec<u64> = processes
        .iter()
        .map(|(_, id)| sleeps(*id).unwrap())
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    for ((name, id), before) in processes.iter().zip(before) {
        let woke = sleeps(*id).unwrap() - before;
        assert!(woke <= 2, "idle {name} woke {woke} times in 3 s");
    }
    // Still awake to what matters: SIGTERM at a node is a graceful leave.
    let node = &mut nodes[0];
    node.signal(libc::SIGTERM);
    node.wait_line("Deregistered", 0);
    assert!(node.wait_exit().success(), "{}", node.dump());
}

/// Two processes of two nodes each (trunks, the default for groups) carry a run as fast as
/// the window allows, which grows their streams' queues in bursts, then sit idle: once the
/// kept queues' sweep has given them back (`STREAM_BURST_GAP_NS`, at most two of it after
/// the last burst) nothing wakes either process: at most two wake-ups and one clock tick of
/// CPU in 3 s. A sweep that kept itself due would wake each process every second.
#[test]
fn idle_groups_with_trunks_sleep_once_their_bursts_are_over() {
    let (mut reg, port) = registry(&[], true);
    let groups: Vec<Proc> = groups(port, 2, &["127.0.8.1", "127.0.8.2"]);
    for group in &groups {
        group_registered(group, 2);
    }
    set_up_registered(&mut reg);
    run_passes(&mut reg, 200_000, "800,000 packets");
    std::thread::sleep(Duration::from_nanos(2 * STREAM_BURST_GAP_NS) + Duration::from_millis(500));
    let woke_before: Vec<u64> = groups.iter().map(|g| sleeps(g.id()).unwrap()).collect();
    let cpu_before: Vec<u64> = groups.iter().map(|g| cpu_ticks(g.id()).unwrap()).collect();
    std::thread::sleep(Duration::from_secs(3));
    for (i, group) in groups.iter().enumerate() {
        let woke = sleeps(group.id()).unwrap() - woke_before[i];
        let cpu = cpu_ticks(group.id()).unwrap() - cpu_before[i];
        assert!(woke <= 2, "idle group {i} woke {woke} times in 3 s");
        assert!(
            cpu <= 1,
            "idle group {i} used {cpu} clock ticks of CPU in 3 s"
        );
    }
}

/// The totals a node's loop logs at exit (`RUST_LOG=overlay::io=info`): `name=value` pairs
/// of the "event loop totals" line.
fn loop_total(node: &Proc, name: &str) -> u64 {
    let text = node.err.text();
    let line = text
        .lines()
        .find(|line| line.contains("event loop totals"))
        .unwrap_or_else(|| panic!("no loop totals from {}: {text}", node.name));
    let key = format!(" {name}=");
    let at = line
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + key.len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no number for {name} in {line}"))
}

/// Four nodes pinned to one core carry a paced run with the default flags: each would poll
/// after its work (light, recent traffic), but only the holder of the core's token does, so
/// their polls never overlap and together last no longer than the nodes lived. Every node
/// polling (the rule before the token) polled about four times that on a quiet machine.
#[test]
fn one_process_at_a_time_polls_on_a_core() {
    let (mut reg, port) = registry(&["--rate", "500"], true);
    let port = port.to_string();
    let born = Instant::now();
    let mut nodes: Vec<Proc> = (0..4)
        .map(|i| {
            Proc::spawn_logging(
                &format!("node{i}"),
                &["node", "127.0.0.1", &port, "--core", "0"],
                "overlay::io=info",
            )
        })
        .collect();
    set_up(&mut reg, &nodes);
    run_passes(&mut reg, 1500, "6,000 packets");
    // The nodes exit with the registry (each prints its loop's totals as it exits). Not
    // with SIGTERM: four graceful leaves at once can leave one node waiting past a minute
    // (a churn bug of its own, recorded in the issue note), which is not what this tests.
    reg.kill();
    for node in &mut nodes {
        let exited = node.wait_exit_within(Duration::from_secs(15)).is_some();
        assert!(
            exited,
            "the registry died and the node runs on\n{}",
            node.dump()
        );
        assert!(
            node.out.text().contains("the registry connection closed"),
            "{}",
            node.dump()
        );
        // Every packet was sent on this machine after the run began at its sink: each
        // latency is read (7 of 24 nodes on one core printed this, in 6 such runs, when the
        // driver handed input over with a time read before it arrived).
        assert!(
            !node.out.text().contains("latency not recorded"),
            "{}",
            node.dump()
        );
    }
    let lived_ms = born.elapsed().as_millis() as u64;
    let wanted: u64 = nodes
        .iter()
        .map(|n| loop_total(n, "polls") + loop_total(n, "polls_declined"))
        .sum();
    let polled_ms: u64 = nodes.iter().map(|n| loop_total(n, "poll_ms")).sum();
    // The nodes wanted to poll (else the bound below says nothing): a 3 s paced run is the
    // light, recent traffic the adaptive poll is for.
    assert!(wanted > 0, "no node tried to poll");
    assert!(
        polled_ms <= lived_ms,
        "the four nodes on core 0 polled {polled_ms} ms in all in {lived_ms} ms: polls overlapped"
    );
}

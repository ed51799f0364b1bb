//! Many nodes in one process (`overlay node --count K`), with real processes and real TCP: a
//! group of 8 and three nodes alone in their processes form one overlay and verify a run; on the
//! wire each of the 8 is a node of its own, so killing their process loses 8 nodes.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{
    Proc, Registered, cpu_ticks, group_registered, groups, node, nodes, poll, registered, registry,
};

const GROUP: usize = 8;
const ALONE: usize = 3;

/// The verdict line of the run whose summary starts after `from`.
fn verdict(reg: &Proc, from: usize) -> (String, String) {
    let (_, after) = reg.wait_line(" summary:", from);
    reg.wait_until("the run's verdict", after, |text| {
        let line = text
            .lines()
            .find(|line| line.starts_with("PASS: ") || line.starts_with("FAIL: "))?;
        let end = text.find(line)?;
        Some((line.to_string(), text[..end].to_string()))
    })
}

#[test]
fn a_group_of_nodes_is_as_many_nodes_in_one_overlay() {
    let (mut reg, port) = registry(&[], true);
    let count = GROUP.to_string();
    // Every link a connection of its own (the trunks' test is below).
    let mut group = node("group", port, &["--count", &count, "--no-trunks"], false);
    let alone: Vec<Proc> = nodes(ALONE, port, &[]);
    let members = group_registered(&group, GROUP);
    let singles: Vec<Registered> = alone.iter().map(registered).collect();
    let total = GROUP + ALONE;
    reg.wait_line(&format!("({total} nodes)"), 0);
    // Eight listeners, eight IDs, eight registrations.
    let mut addrs: Vec<SocketAddr> = members.iter().map(|m| m.addr).collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), GROUP, "{members:?}");

    let mark = reg.mark();
    reg.send("setup-overlay 3");
    reg.wait_line("Registry now ready to initiate tasks.", mark);
    reg.send("start 2000");
    let (line, report) = verdict(&reg, mark);
    assert!(line.starts_with("PASS"), "{line}\n{}", reg.dump());
    assert!(line.contains("22,000 packets"), "{line}");
    for m in members.iter().chain(&singles) {
        assert!(
            report.contains(&format!("Node {} ", m.id)),
            "no row for {m:?}: {report}"
        );
    }

    // A long run; the group's process is killed once it works: the registry sees 8 nodes go.
    let mark = reg.mark();
    reg.send("start 50000000");
    reg.wait_line("Run 2:", mark);
    let pid = group.id();
    let idle = cpu_ticks(pid).unwrap_or(0);
    poll(Duration::from_secs(10), || {
        (cpu_ticks(pid).unwrap_or(0) >= idle + 3).then_some(())
    });
    group.kill();
    for m in &members {
        let (line, _) = reg.wait_line(&format!("node {} at {}", m.id, m.addr), mark);
        assert!(line.contains("left"), "{line}");
    }
    let (line, report) = verdict(&reg, mark);
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(!line.contains("unaccounted"), "{line}");
    for m in &members {
        assert!(
            !report.contains(&format!("Node {} ", m.id)),
            "a row for {m:?}: {report}"
        );
    }
    for m in &singles {
        assert!(
            report.contains(&format!("Node {} ", m.id)),
            "no row for {m:?}: {report}"
        );
    }
    reg.wait_line(&format!("({ALONE} nodes)"), mark);
    eprintln!("after the kill: {line}");
    for mut single in alone {
        assert!(
            single.try_exit().is_none(),
            "{} exited\n{}",
            single.name,
            single.dump()
        );
    }
}

/// Established IPv4 TCP sockets of this namespace (`/proc/net/tcp`): (local, remote).
fn established() -> Vec<(SocketAddr, SocketAddr)> {
    let address = |field: &str| -> Option<SocketAddr> {
        let (ip, port) = field.split_once(':')?;
        let ip = u32::from_str_radix(ip, 16).ok()?;
        let port = u16::from_str_radix(port, 16).ok()?;
        Some(SocketAddr::from((ip.to_ne_bytes(), port)))
    };
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(3) == Some(&"01"))
                .then(|| Some((address(fields.get(1)?)?, address(fields.get(2)?)?)))?
        })
        .collect()
}

/// Three groups of four nodes (trunks by default), each process on a loopback address of its own,
/// and two nodes alone: their links between processes of several nodes share one connection per process
/// pair (two when both dialed at once), the links within a process none, and a link to a node
/// alone is a connection of its own as before. The overlay verifies runs; the four nodes of
/// one group leave gracefully during a run (SIGTERM) and it still verifies with nothing lost;
/// another group is killed during a run, which ends PASS with crashes.
#[test]
fn the_nodes_of_a_process_share_a_connection_to_each_other_process() {
    const SIGTERM: i32 = 15;
    const PER: usize = 4;
    const BINDS: [&str; 3] = ["127.0.7.1", "127.0.7.2", "127.0.7.3"];
    let (mut reg, port) = registry(&[], true);
    let groups: Vec<Proc> = groups(port, PER, &BINDS);
    let alone: Vec<Proc> = nodes(ALONE - 1, port, &[]);
    let members: Vec<Vec<Registered>> = groups.iter().map(|g| group_registered(g, PER)).collect();
    let total = BINDS.len() * PER + alone.len();
    reg.wait_line(&format!("({total} nodes)"), 0);
    let mark = reg.mark();
    reg.send("setup-overlay 3");
    reg.wait_line("Registry now ready to initiate tasks.", mark);
    reg.send("start 20000");
    let (line, _) = verdict(&reg, mark);
    assert!(line.starts_with("PASS"), "{line}\n{}", reg.dump());

    // Connections between two group processes: one or two (a trunk each way), where each
    // node's three table links and backups gave tens.
    let ip = |addr: &SocketAddr| addr.ip().to_string();
    let sockets = established();
    for a in BINDS {
        for b in BINDS.iter().filter(|&&b| b != a) {
            let between = sockets
                .iter()
                .filter(|(local, remote)| ip(local) == a && ip(remote) == *b)
                .count();
            assert!(
                (1..=2).contains(&between),
                "{between} connections from {a} to {b}: {sockets:?}"
            );
        }
        // Nothing from a group to one of its own nodes.
        assert!(
            !sockets
                .iter()
                .any(|(local, remote)| ip(local) == a && ip(remote) == a),
            "a connection within {a}"
        );
    }
    let links_per_pair: usize = members[0]
        .iter()
        .map(|m| m.addr)
        .filter(|addr| sockets.iter().any(|(_, remote)| remote == addr))
        .count();
    eprintln!(
        "{} established sockets; group 0's nodes reached by {links_per_pair} of them",
        sockets.len()
    );

    // The nodes of group 2 leave gracefully during a run by time: nothing is lost.
    let mark = reg.mark();
    reg.send("start 6s");
    reg.wait_line("Run 2:", mark);
    std::thread::sleep(Duration::from_millis(500));
    groups[2].signal(SIGTERM);
    for m in &members[2] {
        reg.wait_line(&format!("Node {} left", m.id), mark);
    }
    let (line, _) = verdict(&reg, mark);
    assert!(
        line.starts_with("PASS: "),
        "a graceful leave lost nothing: {line}\n{}",
        reg.dump()
    );
    let mut groups = groups;
    let status = groups[2].wait_exit_within(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        groups[2].dump()
    );

    // Group 1 is killed during a run: its four nodes crash, the rest is accounted for.
    let mark = reg.mark();
    reg.send("start 6s");
    reg.wait_line("Run 3:", mark);
    std::thread::sleep(Duration::from_millis(500));
    groups[1].kill();
    let (_, after) = reg.wait_line(" summary:", mark);
    let (line, _) = reg.wait_line("PASS with crashes", after);
    assert!(
        line.starts_with("PASS with crashes"),
        "{line}\n{}",
        reg.dump()
    );
    assert!(groups[0].try_exit().is_none(), "{}", groups[0].dump());
}

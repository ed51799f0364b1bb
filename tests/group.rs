//! Many nodes in one process (`overlay node --count K`), with real processes and real TCP: a
//! group of 8 and three nodes alone in their processes form one overlay and verify a run; on the
//! wire each of the 8 is a node of its own, so killing their process loses 8 nodes.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{
    Proc, Registered, cpu_ticks, group_registered, node, nodes, poll, registered, registry,
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
    let mut group = node("group", port, &["--count", &count], false);
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

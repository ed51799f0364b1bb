//! Membership that changes while a run flows, with real processes on 127.0.0.1: three nodes
//! join and three leave gracefully (`exit-overlay` at their consoles) during a run, which
//! verifies with nothing lost; the runs after the churn verify too.

mod common;

use common::{Proc, node, registry};

/// The verdict line (PASS or FAIL ...) of run `run`, whose summary comes after `mark`.
fn verdict(reg: &Proc, run: u32, mark: usize) -> String {
    let (_, at) = reg.wait_line(&format!("Run {run} summary:"), mark);
    reg.wait_until("a verdict", at, |text| {
        text.lines()
            .find(|line| line.starts_with("PASS") || line.starts_with("FAIL"))
            .filter(|_| text.contains('\n'))
            .map(str::to_string)
    })
}

#[test]
fn three_join_and_three_leave_during_a_run_and_nothing_is_lost() {
    let (mut reg, port) = registry(&["--stall-timeout", "60"], true);
    let mut nodes: Vec<Proc> = (0..12)
        .map(|i| node(&format!("node{i}"), port, &[], true))
        .collect();
    reg.wait_line("(12 nodes)", 0);
    let mark = reg.mark();
    // NR 3: from 9 to 15 nodes fit (the routes of 15 fit the traces of 12, and 9 fill the
    // tables), whatever the order of the joins and leaves.
    reg.send("setup-overlay 3");
    reg.wait_line("Registry now ready to initiate tasks.", mark);

    // A run by time, long enough for the churn; three nodes join while it flows, and three
    // leave gracefully at their consoles.
    let mark = reg.mark();
    reg.send("start 6s");
    reg.wait_line("Run 1:", mark);
    for i in 12..15 {
        nodes.push(node(&format!("node{i}"), port, &[], true));
    }
    for node in nodes.iter_mut().take(3) {
        node.send("exit-overlay");
    }
    for newcomer in &nodes[12..15] {
        let id = common::registered(newcomer).id;
        reg.wait_line(&format!("Node {id} joined"), mark);
    }
    for node in nodes.iter_mut().take(3) {
        node.wait_line("Deregistered", 0);
        let status = node.wait_exit();
        assert!(status.success(), "{}", node.dump());
    }
    let line = verdict(&reg, 1, mark);
    assert!(line.starts_with("PASS"), "{line}\n{}", reg.dump());
    let text = reg.dump();
    assert!(
        text.matches(" joined: ").count() == 3 && text.matches(" left (").count() == 3,
        "{text}"
    );

    // Runs after the churn verify, with the newcomers sending too: 12 nodes.
    for run in 2..4 {
        let mark = reg.mark();
        reg.send("start 300");
        let line = verdict(&reg, run, mark);
        assert!(
            line.starts_with("PASS") && line.contains("3,600 packets in"),
            "{line}\n{}",
            reg.dump()
        );
    }
}

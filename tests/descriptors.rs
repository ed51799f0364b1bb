//! A node out of file descriptors (issue 12, item 6): more connections than it has descriptors
//! must not make its accept spin (it once logged "accept failed ... Too many open files" 1.6
//! million times in 5 s on a whole core). It pauses the accept, warns once per interval, keeps
//! its links, and a run verifies once the extra connections are gone. See docs/RELIABILITY.md.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::{BIN, Proc, cpu_ticks, node, poll, raise_nofile, registered, registry};

/// Descriptors the starved node may open.
const NODE_NOFILE: u64 = 64;
/// Connections opened to it: far more than it has descriptors (the kernel completes them into
/// the listen queue, which holds 1024).
const EXTRA_CONNECTIONS: usize = 200;
/// How long its CPU time is watched while it is starved.
const WATCH: Duration = Duration::from_secs(3);

fn warnings(node: &Proc) -> usize {
    node.err
        .text()
        .lines()
        .filter(|line| line.contains("accept"))
        .count()
}

#[test]
fn a_node_out_of_descriptors_does_not_spin_and_keeps_its_links() {
    raise_nofile(4096);
    let (mut reg, port) = registry(&[], true);
    let script = format!("ulimit -n {NODE_NOFILE} && exec {BIN} node 127.0.0.1 {port}");
    let starved = Proc::spawn_program("starved", "sh", &["-c", &script], false);
    let others: Vec<Proc> = (0..2)
        .map(|i| node(&format!("node{i}"), port, &[], false))
        .collect();
    let me = registered(&starved);
    for other in &others {
        registered(other);
    }
    reg.wait_line("(3 nodes)", 0);
    let mark = reg.mark();
    reg.send("setup-overlay 2");
    reg.wait_line("Registry now ready to initiate tasks.", mark);

    let clients: Vec<TcpStream> = (0..EXTRA_CONNECTIONS)
        .map(|_| TcpStream::connect(me.addr).expect("the listen queue takes the connection"))
        .collect();
    poll(Duration::from_secs(20), || {
        (warnings(&starved) > 0).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no accept warning from the starved node\n{}",
            starved.dump()
        )
    });

    // A spinning loop accrues about 100 ticks a second; a paused accept almost none.
    let before = cpu_ticks(starved.id()).expect("the node runs");
    std::thread::sleep(WATCH);
    let after = cpu_ticks(starved.id()).expect("the node runs");
    let ticks = after - before;
    assert!(
        ticks < 30,
        "the starved node used {ticks} CPU ticks in {WATCH:?}\n{}",
        starved.dump()
    );
    let seen = warnings(&starved);
    eprintln!("starved node: {ticks} CPU ticks in {WATCH:?}, {seen} accept warnings");
    assert!(
        seen <= 5,
        "{seen} accept warnings, expected a handful\n{}",
        starved
            .err
            .text()
            .lines()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );

    drop(clients);
    let mark = reg.mark();
    reg.send("start 5000");
    let (_, after) = reg.wait_line("summary:", mark);
    let (verdict, _) = reg.wait_line(" packets in ", after);
    assert!(verdict.starts_with("PASS"), "{verdict}\n{}", reg.dump());
    assert!(verdict.contains("15,000 packets"), "{verdict}");
}

//! A node or a registry out of file descriptors (issue 12, item 6): more connections than it
//! has descriptors must not make its accept spin (a node once logged "accept failed ... Too
//! many open files" 1.6 million times in 5 s on a whole core). It pauses the accept, warns
//! once per interval, keeps its links, and a run verifies once the extra connections are gone.
//! See docs/RELIABILITY.md.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{BIN, Proc, cpu_ticks, node, nodes, poll, raise_nofile, registered, registry};

/// Descriptors the starved process may open.
const NODE_NOFILE: u64 = 64;
/// Connections opened to it: far more than it has descriptors (the kernel completes them into
/// the listen queue, which holds 1024).
const EXTRA_CONNECTIONS: usize = 200;
/// How long its CPU time is watched while it is starved.
const WATCH: Duration = Duration::from_secs(3);

fn warnings(process: &Proc) -> usize {
    process
        .err
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
    let starved = Proc::spawn_program("starved node", "sh", &["-c", &script], false);
    let others: Vec<Proc> = nodes(2, port, &[]);
    let me = registered(&starved);
    for other in &others {
        registered(other);
    }
    reg.wait_line("(3 nodes)", 0);
    let mark = reg.mark();
    reg.send("setup-overlay 2");
    reg.wait_line("Registry now ready to initiate tasks.", mark);

    let clients = starve(&starved, me.addr);
    drop(clients);
    let mark = reg.mark();
    reg.send("start 5000");
    let (_, after) = reg.wait_line("summary:", mark);
    let (verdict, _) = reg.wait_line(" packets in ", after);
    assert!(verdict.starts_with("PASS"), "{verdict}\n{}", reg.dump());
    assert!(verdict.contains("15,000 packets"), "{verdict}");
}

/// Opens `EXTRA_CONNECTIONS` to `to`, waits for `starved`'s first accept warning, and checks
/// that it neither spins nor floods its log while they stay open; returns them.
fn starve(starved: &Proc, to: SocketAddr) -> Vec<TcpStream> {
    let clients: Vec<TcpStream> = (0..EXTRA_CONNECTIONS)
        .map(|_| TcpStream::connect(to).expect("the listen queue takes the connection"))
        .collect();
    poll(Duration::from_secs(20), || {
        (warnings(starved) > 0).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no accept warning from {}\n{}",
            starved.name,
            starved.dump()
        )
    });
    let before = cpu_ticks(starved.id()).expect("it runs");
    std::thread::sleep(WATCH);
    let ticks = cpu_ticks(starved.id()).expect("it runs") - before;
    let seen = warnings(starved);
    eprintln!(
        "{}: {ticks} CPU ticks in {WATCH:?}, {seen} accept warnings",
        starved.name
    );
    assert!(
        ticks < 30,
        "{} used {ticks} CPU ticks in {WATCH:?}",
        starved.name
    );
    assert!(seen <= 5, "{seen} accept warnings, expected a handful");
    clients
}

/// The registry shares the driver: starved, it keeps its registrations, and nodes that come
/// once the extra connections are gone register and run.
#[test]
fn a_registry_out_of_descriptors_does_not_spin() {
    raise_nofile(4096);
    let script = format!("ulimit -n {NODE_NOFILE} && exec {BIN} registry --bind 127.0.0.1");
    let mut reg = Proc::spawn_program("starved registry", "sh", &["-c", &script], true);
    let (line, _) = reg.wait_line("Registry listening on ", 0);
    let port: u16 = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let first = node("node0", port, &[], false);
    registered(&first);
    let clients = starve(&reg, SocketAddr::from(([127, 0, 0, 1], port)));
    drop(clients);
    let second = node("node1", port, &[], false);
    registered(&second);
    reg.wait_line("(2 nodes)", 0);
    let mark = reg.mark();
    reg.send("setup-overlay 1");
    reg.wait_line("Registry now ready to initiate tasks.", mark);
    reg.send("start 5000");
    let (_, after) = reg.wait_line("summary:", mark);
    let (verdict, _) = reg.wait_line(" packets in ", after);
    assert!(verdict.starts_with("PASS"), "{verdict}\n{}", reg.dump());
    assert!(verdict.contains("10,000 packets"), "{verdict}");
}

//! Which connections probe their peer while idle (TCP keepalive), read from the kernel's own
//! socket table (`/proc/net/tcp`) for a real overlay: only each node's connection to its
//! registry, never a table link or an accepted connection. Probes on every link flooded
//! loopback at a few thousand nodes (`limits::KEEPALIVE_CONNECTIONS_PER_NODE`,
//! docs/SCALE.md).

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use common::{Registered, group_registered, node, nodes, poll, registered, registry};
use overlay::limits::KEEPALIVE_CONNECTIONS_PER_NODE;

/// One established TCP socket of `/proc/net/tcp`: its two ends, and whether its keepalive
/// timer is armed (the `tr` column: 2 is the socket timer, which TCP uses for keepalive; 1, a
/// retransmission, hides it while data is in flight).
#[derive(Debug, Clone, Copy)]
struct Socket {
    local: SocketAddr,
    remote: SocketAddr,
    timer: u8,
}

/// `0100007F:1F90` (the address as the kernel holds it, the port in host order).
fn address(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(ip.to_ne_bytes()),
        port,
    )))
}

/// The established IPv4 TCP sockets of this network namespace.
fn established() -> Vec<Socket> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&"01") {
                return None;
            }
            let timer = fields.get(5)?.split(':').next()?.parse().ok()?;
            Some(Socket {
                local: address(fields.get(1)?)?,
                remote: address(fields.get(2)?)?,
                timer,
            })
        })
        .collect()
}

/// Where the sockets of one overlay stand: each node's registry connection, the registry's
/// side of them, and both ends of every table link.
#[derive(Debug, Default)]
struct Census {
    to_registry: Vec<Socket>,
    at_registry: Vec<Socket>,
    links: Vec<Socket>,
}

fn census(registry: SocketAddr, nodes: &[Registered]) -> Census {
    let node = |addr: SocketAddr| nodes.iter().any(|n| n.addr == addr);
    let mut census = Census::default();
    for socket in established() {
        if socket.remote == registry {
            census.to_registry.push(socket);
        } else if socket.local == registry {
            census.at_registry.push(socket);
        } else if node(socket.remote) || node(socket.local) {
            census.links.push(socket);
        }
    }
    census
}

/// A registry, a group of six nodes in one process and two nodes alone, with the overlay set
/// up (NR 3, and backup entries): every node's connection to the registry has its keepalive
/// timer armed; the registry's side of those connections and both ends of every table link
/// have none (nothing is in flight once the overlay is idle, so no other timer hides it).
#[test]
fn only_a_nodes_registry_connection_probes_while_idle() {
    const GROUP: usize = 6;
    const ALONE: usize = 2;
    let (mut reg, port) = registry(&[], true);
    let registry_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let count = GROUP.to_string();
    // Every link a connection of its own, whose sockets are looked at.
    let group = node("group", port, &["--count", &count, "--no-trunks"], false);
    let alone = nodes(ALONE, port, &[]);
    let total = GROUP + ALONE;
    reg.wait_line(&format!("({total} nodes)"), 0);
    let mark = reg.mark();
    reg.send("setup-overlay 3");
    reg.wait_line("Registry now ready to initiate tasks.", mark);
    let mut members: Vec<Registered> = alone.iter().map(registered).collect();
    members.extend(group_registered(&group, GROUP));
    assert_eq!(members.len(), total);

    // Each node holds a link to each of its entries (three, and three backups, some the
    // same nodes): both ends of each are sockets of the census.
    let census = poll(Duration::from_secs(20), || {
        let census = census(registry_addr, &members);
        let settled = census.to_registry.len() == total
            && census.at_registry.len() == total
            && census.links.len() >= 2 * 3 * total
            && census.to_registry.iter().all(|s| s.timer != 1)
            && census.links.iter().all(|s| s.timer != 1);
        settled.then_some(census)
    })
    .unwrap_or_else(|| {
        panic!(
            "the overlay's sockets did not settle: {:?}",
            census(registry_addr, &members)
        )
    });
    assert_eq!(KEEPALIVE_CONNECTIONS_PER_NODE, 1);
    for socket in &census.to_registry {
        assert_eq!(socket.timer, 2, "no keepalive to the registry: {socket:?}");
    }
    for socket in census.at_registry.iter().chain(&census.links) {
        assert_ne!(socket.timer, 2, "keepalive on {socket:?}\n{census:?}");
    }
    eprintln!(
        "{} registry connections probed; {} registry-side and {} link sockets not",
        census.to_registry.len(),
        census.at_registry.len(),
        census.links.len()
    );
    drop(group);
    drop(alone);
}

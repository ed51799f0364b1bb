//! The overlay's own processes: a registry on a free port, its nodes, and what a node says once
//! registered.

use std::net::SocketAddr;

use super::{Proc, temp_path, wait_file};

/// A registry started with `extra` arguments on a free port; returns it and the port it
/// printed.
pub fn registry(extra: &[&str], piped: bool) -> (Proc, u16) {
    let mut args = vec!["registry", "--bind", "127.0.0.1"];
    args.extend_from_slice(extra);
    let proc = Proc::spawn("registry", &args, piped);
    let (line, _) = proc.wait_line("Registry listening on ", 0);
    let port = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (proc, port)
}

/// A registry started with `extra` arguments on a free port that it writes to a file (for a
/// registry whose standard output carries JSON only); returns it and the port.
pub fn registry_port_file(extra: &[&str], piped: bool) -> (Proc, u16) {
    static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let count = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let port_file = temp_path(&format!("registry-{count}.port"));
    let mut args = vec![
        "registry",
        "--bind",
        "127.0.0.1",
        "--port-file",
        port_file.arg(),
    ];
    args.extend_from_slice(extra);
    let proc = Proc::spawn("registry", &args, piped);
    let port = wait_file(&port_file.0, |text| text.trim().parse().ok());
    (proc, port)
}

/// A messaging node of the registry at 127.0.0.1:`port`.
pub fn node(name: &str, port: u16, extra: &[&str], piped: bool) -> Proc {
    let port = port.to_string();
    let mut args = vec!["node", "127.0.0.1", port.as_str()];
    args.extend_from_slice(extra);
    Proc::spawn(name, &args, piped)
}

/// `count` nodes (`node0`, `node1`, ...; standard input /dev/null) of the registry at
/// 127.0.0.1:`port`.
pub fn nodes(count: usize, port: u16, extra: &[&str]) -> Vec<Proc> {
    (0..count)
        .map(|i| node(&format!("node{i}"), port, extra, false))
        .collect()
}

/// One process of `per` nodes (`group0`, `group1`, ...; `overlay node --count`) on each of
/// the loopback addresses `binds`, of the registry at 127.0.0.1:`port`: trunks between them,
/// the default for a process of several nodes.
pub fn groups(port: u16, per: usize, binds: &[&str]) -> Vec<Proc> {
    let count = per.to_string();
    binds
        .iter()
        .enumerate()
        .map(|(i, bind)| {
            node(
                &format!("group{i}"),
                port,
                &["--count", &count, "--bind", bind],
                false,
            )
        })
        .collect()
}

/// What a node printed about itself once registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub id: u32,
    pub addr: SocketAddr,
}

/// Waits for the node's `Node listening on ADDR` and `Registered as node N` lines.
pub fn registered(node: &Proc) -> Registered {
    let (line, _) = node.wait_line("Node listening on ", 0);
    let addr = line["Node listening on ".len()..]
        .split(',')
        .next()
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let (line, _) = node.wait_line("Registered as node ", 0);
    let id = line["Registered as node ".len()..]
        .split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ID in {line:?}"));
    Registered { id, addr }
}

/// Every `node ADDR: Registered as node N` line of a group of `count`.
pub fn group_registered(group: &Proc, count: usize) -> Vec<Registered> {
    group.wait_until("every node of the group registered", 0, |text| {
        let found: Vec<Registered> = text
            .lines()
            .filter_map(|line| {
                let (addr, rest) = line.strip_prefix("node ")?.split_once(": ")?;
                let id = rest
                    .strip_prefix("Registered as node ")?
                    .split(':')
                    .next()?;
                Some(Registered {
                    id: id.trim().parse().ok()?,
                    addr: addr.parse::<SocketAddr>().ok()?,
                })
            })
            .collect();
        (found.len() == count).then_some(found)
    })
}

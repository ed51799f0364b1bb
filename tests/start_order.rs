//! Start order does not matter: a node started before its registry keeps trying and joins
//! once the registry listens (native and classic wire); an attempt that something accepts but
//! never answers is given up on and made again on a fresh connection; and a node that never
//! gets an answer says once why it gives up. docs/RELIABILITY.md.

mod common;

use std::io::Read as _;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{Proc, poll};

/// A port nothing listens on now (bound, then released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts a node of a registry at 127.0.0.1:`port` that logs its attempts, and waits until it
/// has failed to reach the registry at least once.
fn node_trying(name: &str, port: u16, extra: &[&str]) -> Proc {
    let port = port.to_string();
    let mut args = vec!["node", "127.0.0.1", &port];
    args.extend_from_slice(extra);
    let node = Proc::spawn_logging(name, &args, "overlay=info");
    poll(Duration::from_secs(30), || {
        node.err.text().contains("not reached").then_some(())
    })
    .unwrap_or_else(|| panic!("the node did not retry\n{}", node.dump()));
    node
}

fn registry_on(port: u16, extra: &[&str]) -> Proc {
    let port = port.to_string();
    let mut args = vec!["registry", "--bind", "127.0.0.1", &port];
    args.extend_from_slice(extra);
    let registry = Proc::spawn("registry", &args, true);
    registry.wait_line("Registry listening on ", 0);
    registry
}

fn joins_a_registry_started_after_it(wire: &[&str]) {
    let port = free_port();
    let node = node_trying("early node", port, wire);
    let registry = registry_on(port, wire);
    let (line, _) = node.wait_line("Registered as node", 0);
    registry.wait_line("Registered node", 0);
    eprintln!("{wire:?}: {line}");
}

#[test]
fn a_node_started_before_its_registry_joins_it() {
    joins_a_registry_started_after_it(&[]);
}

#[test]
fn a_classic_node_started_before_its_registry_joins_it() {
    joins_a_registry_started_after_it(&["--wire", "classic"]);
}

/// Reads what arrives on `stream` for a moment: the registration a node sends at once.
fn first_bytes(stream: &mut std::net::TcpStream) -> usize {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 256];
    stream.read(&mut buf).unwrap_or(0)
}

#[test]
fn an_unanswered_registration_is_made_again_then_given_up_clearly() {
    // Something that accepts and reads, but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let started = Instant::now();
    let mut node = Proc::spawn(
        "unanswered node",
        &["node", "127.0.0.1", &port, "--registry-wait", "6"],
        false,
    );
    let (mut first, _) = silent.accept().unwrap();
    assert!(first_bytes(&mut first) > 0, "no registration sent");
    // The second attempt comes on a fresh connection, with the registration again.
    let (mut second, _) = silent.accept().unwrap();
    let again = started.elapsed();
    assert!(
        first_bytes(&mut second) > 0,
        "no registration on the second connection"
    );
    assert!(
        again >= Duration::from_secs(4),
        "tried again after {again:?}, before the attempt timeout"
    );
    // Past --registry-wait the node gives up with one line that says why, and exits 1.
    let status = node
        .wait_exit_within(Duration::from_secs(30))
        .expect("the node gives up");
    assert_eq!(status.code(), Some(1), "{}", node.dump());
    let out = node.out.text();
    let line = out
        .lines()
        .find(|l| l.contains("cannot reach the registry"))
        .unwrap_or_else(|| panic!("no reason given\n{}", node.dump()));
    assert!(
        line.contains("no answer within 5 s") && line.contains("gave up after 2 attempts"),
        "{line}"
    );
    assert_eq!(out.matches("cannot reach the registry").count(), 1, "{out}");
}

/// A node and a registry started with different `--wire`: the registry names the format the
/// peer speaks and tells the node in the node's format, and the node stops at once and says
/// which format the registry speaks instead of retrying for its whole wait (or guessing).
#[test]
fn a_node_of_the_other_wire_format_is_told_what_to_check() {
    for (registry_wire, node_wire, theirs) in [
        ("native", "classic", "classic"),
        ("classic", "native", "native"),
    ] {
        let registry = Proc::spawn_logging(
            "registry",
            &["registry", "--bind", "127.0.0.1", "--wire", registry_wire],
            "warn",
        );
        let (line, _) = registry.wait_line("Registry listening on ", 0);
        let port = line.rsplit(':').next().unwrap().trim().to_string();
        let started = Instant::now();
        let mut node = Proc::spawn(
            "node",
            &["node", "127.0.0.1", &port, "--wire", node_wire],
            false,
        );
        let status = node
            .wait_exit_within(Duration::from_secs(20))
            .expect("the node stops");
        assert_eq!(status.code(), Some(1), "{}", node.dump());
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the node retried for {:?}",
            started.elapsed()
        );
        let said = node.out.text();
        let told = format!("speaks the {registry_wire} wire format, not the {node_wire} one");
        assert!(said.contains(&told), "{said}");
        assert!(
            said.contains("start both sides with the same --wire"),
            "{said}"
        );
        // Said once: not again as a warning in the log.
        let all = said.clone() + &node.err.text();
        assert_eq!(all.matches(&told).count(), 1, "{all}");
        let needle = format!("the peer speaks the {theirs} wire format");
        poll(Duration::from_secs(10), || {
            registry.err.text().contains(&needle).then_some(())
        })
        .unwrap_or_else(|| panic!("registry log lacks {needle:?}\n{}", registry.dump()));
    }
}

//! Interop in the classic wire format (issue 4), with real processes on 127.0.0.1: our
//! registry and nodes (`--wire classic`) with the independent Python classic peer of
//! `tests/support/classic_peer.py` (written from the reference's description alone, now in
//! docs/PROTOCOL.md, sharing no code with our codec). Every overlay must verify: packets sent == received and the sums equal.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

use common::{DEADLINE, Proc};

/// The independent classic peer (a node or a registry), written in Python from the reference's
/// description (docs/PROTOCOL.md).
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/classic_peer.py");

/// The port in a `Registry listening on HOST:PORT` line.
fn listening_port(proc: &Proc) -> u16 {
    let (line, _) = proc.wait_line("Registry listening on ", 0);
    line.rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// Our registry in classic mode on a free port of 127.0.0.1.
fn our_registry(extra: &[&str]) -> (Proc, u16) {
    let mut args = vec!["registry", "--bind", "127.0.0.1", "--wire", "classic"];
    args.extend_from_slice(extra);
    let proc = Proc::spawn("registry", &args, false);
    let port = listening_port(&proc);
    (proc, port)
}

/// The Python classic registry on a free port.
fn classic_registry(extra: &[&str]) -> (Proc, u16) {
    let mut args = vec![PEER, "registry"];
    args.extend_from_slice(extra);
    let proc = Proc::spawn_program("classic-registry", "python3", &args, false);
    let port = listening_port(&proc);
    (proc, port)
}

/// Our node in classic mode.
fn our_node(name: &str, port: u16) -> Proc {
    let port = port.to_string();
    Proc::spawn(
        name,
        &["node", "127.0.0.1", port.as_str(), "--wire", "classic"],
        false,
    )
}

/// A Python classic node.
fn classic_node(name: &str, port: u16, extra: &[&str]) -> Proc {
    let port = port.to_string();
    let mut args = vec![PEER, "node", "127.0.0.1", port.as_str()];
    args.extend_from_slice(extra);
    Proc::spawn_program(name, "python3", &args, false)
}
use serde_json::Value;

/// A result file, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("classic-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TempFile(path)
    }
    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn u64_of(value: &Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a number in {value}"))
}

/// Waits for our scripted registry to exit with 0 and checks its JSON result.
fn assert_our_registry_passed(registry: &mut Proc, json: &TempFile, nodes: usize, packets: u64) {
    let status = registry.wait_exit();
    let text = std::fs::read_to_string(&json.0).unwrap_or_default();
    assert!(
        status.success(),
        "registry exit {status}\n{text}\n{}",
        registry.dump()
    );
    let result: Value = serde_json::from_str(&text).expect("JSON result");
    let run = &result["runs"][0];
    let run = if run.is_null() { &result } else { run };
    let expected = nodes as u64 * packets;
    assert_eq!(run["verdict"], "PASS", "{run:#}");
    assert_eq!(u64_of(run, "packets_sent"), expected, "{run:#}");
    assert_eq!(u64_of(run, "packets_received"), expected, "{run:#}");
    assert_eq!(run["sum_sent"], run["sum_received"], "{run:#}");
    let rows = run["node"].as_array().expect("node rows");
    assert_eq!(rows.len(), nodes, "{run:#}");
    for row in rows {
        assert_eq!(u64_of(row, "packets_sent"), packets, "{row}");
    }
    // Classic nodes cannot be polled: the duration and rates include the settle wait after
    // the last task finished, and the verdict line and the result say so.
    let duration = run["duration_s"].as_f64().unwrap();
    let settle = run["settle_s"].as_f64().expect("settle_s");
    let all_sent = run["all_sent_s"].as_f64().expect("all_sent_s");
    assert!(
        settle > 0.0 && all_sent + settle <= duration + 1e-3,
        "{run:#}"
    );
    let (line, _) = registry.wait_line_starting("PASS: ", 0);
    assert!(
        line.contains(" settle wait: classic nodes cannot be polled; every packet was sent by "),
        "{line}"
    );
}

/// The Python registry's verdict line: `RESULT PASS sent=.. received=..`.
fn assert_classic_registry_passed(registry: &mut Proc, nodes: usize, packets: u64) {
    let (line, _) = registry.wait_line("RESULT ", 0);
    let status = registry.wait_exit();
    let expected = nodes as u64 * packets;
    assert!(
        line.starts_with("RESULT PASS")
            && line.contains(&format!(" sent={expected} "))
            && line.contains(&format!(" received={expected} ")),
        "{line}\n{}",
        registry.dump()
    );
    assert!(status.success(), "{}", registry.dump());
}

/// No Python node saw a trace other than the route it computes; none of ours saw a bad packet.
fn assert_clean(python: &[Proc], ours: &[Proc]) {
    for node in python {
        assert!(
            !node.err.text().contains("TRACE MISMATCH"),
            "{}",
            node.dump()
        );
    }
    for node in ours {
        assert!(!node.out.text().contains("corrupted"), "{}", node.dump());
    }
}

/// (1) Our registry with classic nodes written by others: one connects late, one sends its
/// summary a byte at a time, and a stray connection sits idle the whole run. None of that
/// stalls the others.
#[test]
fn our_registry_runs_classic_python_nodes() {
    let json = TempFile::new("python-nodes.json");
    let (mut registry, port) = our_registry(&[
        "--nodes",
        "5",
        "--start",
        "1500",
        "--settle-ms",
        "400",
        "--json",
        json.arg(),
    ]);
    let idle = TcpStream::connect(("127.0.0.1", port)).expect("an idle connection");
    let mut nodes = vec![
        classic_node("py-late", port, &["--delay-ms", "700"]),
        classic_node("py-slow", port, &["--slow-summary"]),
    ];
    for i in 0..3 {
        nodes.push(classic_node(&format!("py{i}"), port, &[]));
    }
    assert_our_registry_passed(&mut registry, &json, 5, 1500);
    assert_clean(&nodes, &[]);
    drop(idle);
}

/// (2) Our nodes under a registry written by others.
#[test]
fn our_nodes_run_under_a_classic_python_registry() {
    let (mut registry, port) = classic_registry(&["--nodes", "5", "--packets", "5000"]);
    let nodes: Vec<Proc> = (0..5)
        .map(|i| our_node(&format!("node{i}"), port))
        .collect();
    assert_classic_registry_passed(&mut registry, 5, 5000);
    assert_clean(&[], &nodes);
}

/// (3) A mixed overlay under our registry: our nodes relay for Python nodes and the reverse.
#[test]
fn mixed_overlay_under_our_registry() {
    let json = TempFile::new("mixed.json");
    let (mut registry, port) = our_registry(&[
        "--nodes",
        "6",
        "--start",
        "1500",
        "--settle-ms",
        "400",
        "--json",
        json.arg(),
    ]);
    let ours: Vec<Proc> = (0..3)
        .map(|i| our_node(&format!("node{i}"), port))
        .collect();
    let python: Vec<Proc> = (0..3)
        .map(|i| classic_node(&format!("py{i}"), port, &[]))
        .collect();
    assert_our_registry_passed(&mut registry, &json, 6, 1500);
    assert_clean(&python, &ours);
}

/// (4) A mixed overlay under the Python registry.
#[test]
fn mixed_overlay_under_a_classic_python_registry() {
    let (mut registry, port) = classic_registry(&["--nodes", "5", "--packets", "1500"]);
    let ours: Vec<Proc> = (0..3)
        .map(|i| our_node(&format!("node{i}"), port))
        .collect();
    let python: Vec<Proc> = (0..2)
        .map(|i| classic_node(&format!("py{i}"), port, &[]))
        .collect();
    assert_classic_registry_passed(&mut registry, 5, 1500);
    assert_clean(&python, &ours);
}

/// Reads one classic frame (4-byte big-endian length, then the message).
fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).expect("a frame length");
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut body).expect("a frame body");
    body
}

/// (status, info) of a code 3 or 5 message.
fn status_of(body: &[u8], code: u8) -> (i32, String) {
    assert_eq!(body[0], code, "{body:?}");
    let status = i32::from_be_bytes(body[1..5].try_into().unwrap());
    let len = usize::from(body[5]);
    assert_eq!(body.len(), 6 + len, "{body:?}");
    (status, String::from_utf8(body[6..].to_vec()).unwrap())
}

/// Byte-exact control exchange with our registry: the reference's registration frame, a
/// spoofed address, and deregistration identified by the connection and ID (a different port
/// is tolerated, a second deregistration is refused with a reason).
#[test]
fn our_registry_speaks_the_reference_bytes() {
    let (_registry, port) = our_registry(&[]);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
        .write_all(&[
            0x00, 0x00, 0x00, 0x0A, 0x02, 0x04, 0x7F, 0x00, 0x00, 0x01, 0x00, 0x00, 0xAA, 0xF5,
        ])
        .unwrap();
    let (id, info) = status_of(&read_frame(&mut stream), 3);
    assert!((0..=127).contains(&id), "{id} {info}");
    assert!(info.contains("(1)"), "{info}");

    // Someone else's address from another connection: refused with a reason, -1.
    let mut liar = TcpStream::connect(("127.0.0.1", port)).unwrap();
    liar.set_read_timeout(Some(DEADLINE)).unwrap();
    liar.write_all(&[0, 0, 0, 10, 2, 4, 10, 0, 0, 1, 0, 0, 0x13, 0x88])
        .unwrap();
    let (status, info) = status_of(&read_frame(&mut liar), 3);
    assert_eq!(status, -1);
    assert!(info.contains("10.0.0.1"), "{info}");

    // Deregistration naming port 1 instead of 43765, on the node's own connection: accepted.
    let mut deregister = vec![0, 0, 0, 14, 4, 4, 127, 0, 0, 1, 0, 0, 0, 1];
    deregister.extend_from_slice(&id.to_be_bytes());
    stream.write_all(&deregister).unwrap();
    let (status, info) = status_of(&read_frame(&mut stream), 5);
    assert_eq!(status, id, "{info}");
    // Twice: refused, with the reason.
    stream.write_all(&deregister).unwrap();
    let (status, info) = status_of(&read_frame(&mut stream), 5);
    assert_eq!(status, -1);
    assert!(info.contains("not registered"), "{info}");
}

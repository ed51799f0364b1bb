//! `--secret-file`: every connection starts with a challenge-response keyed by a shared
//! secret. With it a run verifies; without it (or with another secret) a host can neither
//! register, nor deregister or report, nor inject packets into a node.

mod common;

use std::os::unix::fs::PermissionsExt as _;

use overlay::auth::Secret;
use overlay::wire::native::Native;
use overlay::wire::{Codec, Control, DataShape, Status};

use common::{Client, Proc, node, registered, registry, temp_path, wait_file};

const SECRET: &str = "a shared secret of enough bytes";

fn secret_file(name: &str, text: &str) -> common::TempFile {
    let file = temp_path(name);
    std::fs::write(&file.0, format!("{text}\n")).unwrap();
    // Only the owner may read a secret file (refused otherwise, as ssh refuses keys).
    std::fs::set_permissions(&file.0, std::fs::Permissions::from_mode(0o600)).unwrap();
    file
}

/// Waits (bounded) for `needle` in a process's log (standard error).
fn wait_stderr(proc: &Proc, needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !proc.err.text().contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} in the log\n{}",
            proc.dump()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The challenge a fresh connection receives first.
fn challenge(client: &mut Client) -> [u8; 32] {
    match client.recv() {
        Control::Challenge { nonce } => nonce,
        other => panic!("expected a challenge first, got {other:?}"),
    }
}

#[test]
fn a_run_with_the_secret_verifies() {
    let file = secret_file("secret-run", SECRET);
    let json = temp_path("secret-run-result.json");
    let (mut reg, port) = registry(
        &[
            "--nodes",
            "6",
            "--start",
            "5000",
            "--secret-file",
            file.arg(),
            "--json",
            json.arg(),
        ],
        false,
    );
    let _nodes: Vec<Proc> = (0..6)
        .map(|i| {
            node(
                &format!("node{i}"),
                port,
                &["--secret-file", file.arg()],
                false,
            )
        })
        .collect();
    let status = reg.wait_exit();
    assert!(status.success(), "{}", reg.dump());
    let text = wait_file(&json.0, |t| t.contains("verdict").then(|| t.to_string()));
    let result: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(result["verdict"], "PASS");
    assert_eq!(result["packets_received"], 30_000);
}

#[test]
fn the_registry_refuses_hosts_without_the_secret() {
    let file = secret_file("secret-registry", SECRET);
    let (reg, port) = registry(&["--secret-file", file.arg()], true);
    let secret = Secret::from_file_contents(SECRET.as_bytes()).unwrap();

    // A registration without answering the challenge: closed, nothing registered.
    let mut client = Client::connect(port);
    let addr = client.local_addr();
    challenge(&mut client);
    client.send(&Control::Register { addr });
    assert!(client.closed_by_peer(), "registered without the secret");
    wait_stderr(&reg, "registration before authenticating");

    // A wrong answer: closed.
    let mut client = Client::connect(port);
    let nonce = challenge(&mut client);
    let mut wrong = secret.respond(&nonce);
    wrong[0] ^= 1;
    client.send(&Control::Response { mac: wrong });
    assert!(client.closed_by_peer(), "a wrong response was accepted");
    wait_stderr(&reg, "authentication failed");

    // A node with another secret, and one with none: refused, they exit.
    let other = secret_file("other", "another secret, also long enough");
    let mut outsider = node("outsider", port, &["--secret-file", other.arg()], false);
    assert!(!outsider.wait_exit().success(), "{}", outsider.dump());
    let mut plain = node("plain", port, &[], false);
    assert!(!plain.wait_exit().success(), "{}", plain.dump());

    // The right answer: registration, deregistration and status work as usual.
    let mut client = Client::connect(port);
    let addr = client.local_addr();
    let nonce = challenge(&mut client);
    client.send(&Control::Response {
        mac: secret.respond(&nonce),
    });
    let Control::RegisterStatus {
        status: Status::Ok(id),
        ..
    } = client.request(&Control::Register { addr })
    else {
        panic!("registration with the secret refused");
    };
    assert!(matches!(
        client.request(&Control::Deregister { addr, id }),
        Control::DeregisterStatus {
            status: Status::Ok(_),
            ..
        }
    ));
    // A node with the secret registers.
    let good = node("good", port, &["--secret-file", file.arg()], false);
    registered(&good);
}

#[test]
fn nodes_refuse_packets_from_hosts_without_the_secret() {
    let file = secret_file("secret-nodes", SECRET);
    let (mut reg, port) = registry(&["--secret-file", file.arg()], true);
    let nodes: Vec<Proc> = (0..4)
        .map(|i| {
            node(
                &format!("node{i}"),
                port,
                &["--secret-file", file.arg()],
                false,
            )
        })
        .collect();
    let me: Vec<_> = nodes.iter().map(registered).collect();
    reg.send("setup-overlay 2");
    reg.wait_line("Registry now ready to initiate tasks.", 0);

    // An outsider connects to a node and sends a data packet for another node without
    // answering the challenge: the node closes the link and relays nothing.
    let mut outsider = Client::connect(me[0].addr.port());
    challenge(&mut outsider);
    let mut frame = Vec::new();
    let shape = DataShape {
        trace_slots: 1,
        extra_payload_bytes: 0,
    };
    Native::append_data(
        &mut frame,
        me[1].id,
        me[2].id,
        shape,
        1,
        &7i32.to_le_bytes(),
    );
    outsider.send_raw(&frame);
    assert!(
        outsider.closed_by_peer(),
        "a node took a packet without authentication"
    );

    // The overlay still verifies: no foreign packet was counted anywhere.
    let mark = reg.mark();
    reg.send("start 1000");
    let (verdict, _) = reg.wait_line_starting("PASS", mark);
    assert!(verdict.contains("4,000 packets"), "{verdict}");
}

#[test]
fn classic_mode_cannot_use_a_secret() {
    let file = secret_file("secret-classic", SECRET);
    let mut reg = Proc::spawn(
        "registry",
        &["registry", "--wire", "classic", "--secret-file", file.arg()],
        false,
    );
    assert!(!reg.wait_exit().success());
    let stderr = reg.err.text();
    assert!(
        stderr.contains("--secret-file needs the native wire"),
        "{stderr}"
    );
}

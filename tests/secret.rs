//! `--secret-file`: every connection starts with a mutual handshake keyed by a shared secret
//! and bound to who speaks to whom (`src/auth.rs`). With it a run verifies; without it (or
//! with another secret, or by relaying the handshake through a node pointed at the wrong
//! port) a host can neither register, nor deregister or report, nor inject packets into a
//! node; and a side that lacks the secret, or has one the other lacks, is told so.

mod common;

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use overlay::auth::{Binding, Direction, Role, Secret, Transcript};
use overlay::wire::native::{Native, PROTOCOL_VERSION, kind};
use overlay::wire::{Codec, Control, DataShape, Refusal, Status};

use common::{Client, Proc, node, nodes, registered, registry, temp_path, wait_file};

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

/// The registry at 127.0.0.1:`port`, as a connector's handshake names it.
fn registry_binding(port: u16) -> Binding {
    Binding {
        acceptor: Role::Registry,
        acceptor_addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// Plays a connector's side of the handshake with `secret`: hello, the acceptor's challenge
/// (its proof checked against `binding`), our response.
fn authenticate(client: &mut Client, secret: &Secret, binding: Binding) {
    let connector_nonce = [0x5a; 32];
    client.send(&Control::Hello {
        nonce: Some(connector_nonce),
        version: PROTOCOL_VERSION,
    });
    let Control::Challenge { nonce, proof } = client.recv() else {
        panic!("expected a challenge in answer to the hello");
    };
    let transcript = Transcript {
        binding,
        connector_nonce,
        acceptor_nonce: nonce,
    };
    assert_eq!(
        proof,
        secret.proof(Direction::Acceptor, &transcript),
        "the registry's proof"
    );
    client.send(&Control::Response {
        proof: secret.proof(Direction::Connector, &transcript),
    });
}

/// The refusal the peer sends before it closes the connection.
fn refusal(client: &mut Client) -> Refusal {
    match client.recv() {
        Control::Refused(refusal) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
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
    let _nodes: Vec<Proc> = nodes(6, port, &["--secret-file", file.arg()]);
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

    // A registration without the handshake: told that a secret is required, closed.
    let mut client = Client::connect(port);
    let addr = client.local_addr();
    client.send(&Control::Register { addr, group: None });
    assert_eq!(refusal(&mut client), Refusal::SecretRequired);
    assert!(client.closed_by_peer(), "registered without the secret");
    wait_stderr(&reg, "has no shared secret, which this side requires");

    // A wrong proof: told so, closed.
    let mut client = Client::connect(port);
    let connector_nonce = [1; 32];
    client.send(&Control::Hello {
        nonce: Some(connector_nonce),
        version: PROTOCOL_VERSION,
    });
    let Control::Challenge { nonce, .. } = client.recv() else {
        panic!("expected a challenge");
    };
    let mut wrong = secret.proof(
        Direction::Connector,
        &Transcript {
            binding: registry_binding(port),
            connector_nonce,
            acceptor_nonce: nonce,
        },
    );
    wrong[0] ^= 1;
    client.send(&Control::Response { proof: wrong });
    assert_eq!(refusal(&mut client), Refusal::WrongSecret);
    assert!(client.closed_by_peer(), "a wrong proof was accepted");
    wait_stderr(&reg, "authentication failed");

    // A node with another secret, and one with none: refused, they exit and say why.
    let other = secret_file("other", "another secret, also long enough");
    let mut outsider = node("outsider", port, &["--secret-file", other.arg()], false);
    assert!(!outsider.wait_exit().success(), "{}", outsider.dump());
    outsider.wait_line("does not match the shared secret", 0);
    let mut plain = node("plain", port, &[], false);
    assert!(!plain.wait_exit().success(), "{}", plain.dump());
    plain.wait_line(
        "requires a shared secret (--secret-file) and this side has none",
        0,
    );

    // The right handshake: registration, deregistration and status work as usual.
    let mut client = Client::connect(port);
    let addr = client.local_addr();
    authenticate(&mut client, &secret, registry_binding(port));
    let Control::RegisterStatus {
        status: Status::Ok(id),
        ..
    } = client.request(&Control::Register { addr, group: None })
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

/// A node with a secret and a registry without one (issue 17): the node is told so, says
/// it and exits, rather than waiting for a challenge that never comes.
#[test]
fn a_registry_without_a_secret_says_so_to_a_node_with_one() {
    let file = secret_file("secret-lopsided", SECRET);
    let (reg, port) = registry(&[], true);
    let mut with = node("with secret", port, &["--secret-file", file.arg()], false);
    assert!(!with.wait_exit().success(), "{}", with.dump());
    let said = "has no shared secret: start both sides with the same --secret-file";
    with.wait_line(said, 0);
    // Said once: not again as a warning in the log.
    let all = with.out.text() + &with.err.text();
    assert_eq!(all.matches(said).count(), 1, "{all}");
    wait_stderr(&reg, "offered a shared secret and this side has none");
    // A plain node still registers.
    let plain = node("plain", port, &[], false);
    registered(&plain);
}

/// Mixed builds (issue 16: the 24-byte data header is protocol version 2, trace slots as wide
/// as the ID space 3): the hello of an older build names no version and reads as 1, and a
/// registry and a node each refuse such a hello, one of version 2 and one naming a later
/// version, with their own version, saying so in their logs; a hello of this version
/// registers as before.
#[test]
fn a_peer_of_another_protocol_version_is_refused_with_a_clear_message() {
    let (reg, port) = registry(&[], true);
    let said = format!(
        "speaks native protocol version 1, this side {PROTOCOL_VERSION}: run the same build"
    );
    let said = said.as_str();
    // An older build's hello (no version), then its registration.
    let mut older = Client::connect(port);
    older.send_raw(&[2, 0, 0, 0, kind::HELLO, 0]);
    let addr = older.local_addr();
    older.send(&Control::Register { addr, group: None });
    assert_eq!(
        refusal(&mut older),
        Refusal::Version {
            ours: PROTOCOL_VERSION
        }
    );
    assert!(
        older.closed_by_peer(),
        "registered a peer of another version"
    );
    wait_stderr(&reg, said);
    let mut later = Client::connect(port);
    later.send(&Control::Hello {
        nonce: None,
        version: PROTOCOL_VERSION + 1,
    });
    assert_eq!(
        refusal(&mut later),
        Refusal::Version {
            ours: PROTOCOL_VERSION
        }
    );
    wait_stderr(
        &reg,
        &format!(
            "speaks native protocol version {}, this side {PROTOCOL_VERSION}",
            PROTOCOL_VERSION + 1
        ),
    );
    // The build before registrations named their group (version 3).
    let mut three = Client::connect(port);
    three.send(&Control::Hello {
        nonce: None,
        version: 3,
    });
    assert_eq!(
        refusal(&mut three),
        Refusal::Version {
            ours: PROTOCOL_VERSION
        }
    );
    wait_stderr(
        &reg,
        &format!("speaks native protocol version 3, this side {PROTOCOL_VERSION}"),
    );
    // A node refuses an older build's data link the same way.
    let n = node("current", port, &[], false);
    let me = registered(&n);
    let mut link = Client::connect_to(me.addr, None);
    link.send_raw(&[2, 0, 0, 0, kind::HELLO, 0]);
    assert_eq!(
        refusal(&mut link),
        Refusal::Version {
            ours: PROTOCOL_VERSION
        }
    );
    wait_stderr(&n, said);
}

#[test]
fn nodes_refuse_packets_from_hosts_without_the_secret() {
    let file = secret_file("secret-nodes", SECRET);
    let (mut reg, port) = registry(&["--secret-file", file.arg()], true);
    let nodes: Vec<Proc> = nodes(4, port, &["--secret-file", file.arg()]);
    let me: Vec<_> = nodes.iter().map(registered).collect();
    reg.send("setup-overlay 2");
    reg.wait_line("Registry now ready to initiate tasks.", 0);

    // An outsider connects to a node and sends a data packet for another node without the
    // handshake: the node says a secret is required and closes the link, relaying nothing.
    let mut outsider = Client::connect_to(me[0].addr, None);
    outsider.send_raw(&data_frame(me[1].id, me[2].id));
    assert_eq!(refusal(&mut outsider), Refusal::SecretRequired);
    assert!(
        outsider.closed_by_peer(),
        "a node took a packet without authentication"
    );

    // The overlay still verifies: no foreign packet was counted anywhere.
    let mark = reg.mark();
    reg.send("start 1000");
    let (verdict, _) = reg.wait_line_starting("PASS", mark);
    assert!(
        verdict.contains("4,000 packets"),
        "{verdict}\n{}",
        reg.dump()
    );
}

/// A data packet from `source` to `sink` with one trace slot (the overlays here have NR 2
/// over 4 nodes: at most one relay).
fn data_frame(source: u32, sink: u32) -> Vec<u8> {
    let mut frame = Vec::new();
    let shape = DataShape {
        trace_slots: 1,
        slot_bytes: 1,
        extra_payload_bytes: 0,
        run_tag: 0,
    };
    Native::append_data(&mut frame, source, sink, shape, 1, &7i32.to_le_bytes());
    frame
}

/// An outsider at `listener` (where a node with the secret was pointed by mistake as its
/// registry) relays whole frames between that node's connection and `real` (a connection the
/// outsider opened to a real party), whatever the handshake is, until either side closes or
/// a few seconds pass. It keeps the lured node's registration to itself. This is the
/// reflection of issue 12, item 3: with a handshake that is not bound to who speaks to whom,
/// the lured node answers the real party's challenge for the outsider.
fn relay_from_lured_node(listener: &TcpListener, real: &mut TcpStream) {
    let (mut lured, _) = listener.accept().expect("the lured node connects");
    let tick = Some(Duration::from_millis(20));
    lured.set_read_timeout(tick).unwrap();
    real.set_read_timeout(tick).unwrap();
    let (mut from_lured, mut from_real) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if !pass(&mut lured, real, &mut from_lured, true)
            || !pass(real, &mut lured, &mut from_real, false)
        {
            return;
        }
    }
}

/// Reads what `from` has (waiting a tick at most) and forwards its whole frames to `to`,
/// except registrations from the lured node; false once either side closed.
fn pass(from: &mut TcpStream, to: &mut TcpStream, buffer: &mut Vec<u8>, lured: bool) -> bool {
    let mut chunk = [0u8; 4096];
    match from.read(&mut chunk) {
        Ok(0) => return false,
        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Err(_) => return false,
    }
    while let Ok(Some(len)) = Native::frame_len(buffer) {
        let frame: Vec<u8> = buffer.drain(..len).collect();
        let registration = frame[4] == overlay::wire::native::kind::REGISTER;
        if !(lured && registration) && to.write_all(&frame).is_err() {
            return false;
        }
    }
    true
}

/// Issue 12, item 3, against live processes: an outsider relays the handshake between a node
/// with the secret that was pointed at the outsider's port (a typo in the registry port) and
/// a real node, then injects a packet into the real node; and the same relay toward the real
/// registry, then registers itself. Both fail: the lured node finds that the proof it is
/// shown was made by a node (not a registry) and for another address, proves nothing, and
/// says so; the real node and the registry close the outsider's connections; nothing foreign
/// is counted and the overlay verifies. (With the handshake of before, where the connector
/// answered a bare nonce, the packet was taken and the registration accepted.)
#[test]
fn an_outsider_cannot_reflect_the_handshake_through_a_misdirected_node() {
    let file = secret_file("secret-reflection", SECRET);
    let (mut reg, port) = registry(&["--secret-file", file.arg()], true);
    let nodes: Vec<Proc> = nodes(4, port, &["--secret-file", file.arg()]);
    let me: Vec<_> = nodes.iter().map(registered).collect();
    reg.wait_line("(4 nodes)", 0);
    reg.send("setup-overlay 2");
    reg.wait_line("Registry now ready to initiate tasks.", 0);

    // Into a real node.
    let outsider = TcpListener::bind("127.0.0.1:0").unwrap();
    let outsider_port = outsider.local_addr().unwrap().port();
    let mut lured = node(
        "lured",
        outsider_port,
        &["--secret-file", file.arg()],
        false,
    );
    let mut victim = Client::connect_to(me[0].addr, None);
    relay_from_lured_node(&outsider, &mut victim.stream);
    victim
        .stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    victim.try_send_raw(&data_frame(me[1].id, me[2].id));
    assert!(
        victim.closed_by_peer(),
        "the victim node took the outsider's relayed handshake and its packet"
    );
    assert!(!lured.wait_exit().success(), "{}", lured.dump());
    lured.wait_line("does not match the shared secret", 0);

    // Into the registry.
    let outsider = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake = outsider.local_addr().unwrap();
    let mut lured = node("lured2", fake.port(), &["--secret-file", file.arg()], false);
    let mut real = Client::connect(port);
    relay_from_lured_node(&outsider, &mut real.stream);
    real.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut registration = Vec::new();
    Native::encode_control(
        &Control::Register {
            addr: fake,
            group: None,
        },
        &mut registration,
    );
    real.try_send_raw(&registration);
    assert!(
        real.closed_by_peer(),
        "the registry took the outsider's relayed handshake and answered its registration"
    );
    assert!(!lured.wait_exit().success(), "{}", lured.dump());
    assert!(
        !reg.out.text().contains(&format!("at {fake}")),
        "the outsider registered\n{}",
        reg.dump()
    );

    // Nothing foreign was counted: the overlay verifies exactly.
    let mark = reg.mark();
    reg.send("start 1000");
    let (verdict, _) = reg.wait_line_starting("PASS", mark);
    assert!(
        verdict.contains("4,000 packets"),
        "{verdict}\n{}",
        reg.dump()
    );
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

/// A port forward (a byte-for-byte TCP relay, as DNAT or a published container port would be)
/// on 127.0.0.1:`listener` toward 127.0.0.1:`port`, for one connection, until either side
/// closes or a few seconds pass.
fn forward_one(listener: TcpListener, port: u16) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (near, _) = listener.accept().expect("the node connects");
        let far = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let tick = Some(Duration::from_millis(20));
        near.set_read_timeout(tick).unwrap();
        far.set_read_timeout(tick).unwrap();
        let mut ways = [
            (near.try_clone().unwrap(), far.try_clone().unwrap()),
            (far, near),
        ];
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut chunk = [0u8; 4096];
        while Instant::now() < deadline {
            for (from, to) in &mut ways {
                match from.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) if to.write_all(&chunk[..n]).is_err() => return,
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => return,
                }
            }
        }
    })
}

/// The proofs bind the address as dialed (docs/PROTOCOL.md, "Address translation"): a node
/// with the secret that reaches the registry through a port forward fails the handshake and
/// says that an address translated on the way is a cause; without a secret the same forward
/// works. (Before, the message named only another secret or an impostor.)
#[test]
fn a_port_forward_breaks_the_handshake_and_the_node_says_it_may() {
    let file = secret_file("secret-forward", SECRET);
    let (_reg, port) = registry(&["--secret-file", file.arg()], true);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let forwarded = listener.local_addr().unwrap().port();
    let forward = forward_one(listener, port);
    let mut with = node(
        "forwarded",
        forwarded,
        &["--secret-file", file.arg()],
        false,
    );
    assert!(!with.wait_exit().success(), "{}", with.dump());
    with.wait_line("an address translated on the way", 0);
    forward.join().unwrap();

    let (_plain_reg, plain_port) = registry(&[], true);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let forwarded = listener.local_addr().unwrap().port();
    let _forward = forward_one(listener, plain_port);
    let plain = node("forwarded plain", forwarded, &[], false);
    registered(&plain);
}

//! The mux without sockets: a peer process's side of a trunk played by hand.

mod credit;

use super::*;
use crate::limits::{
    STREAM_BURST_GAP_NS, STREAM_QUEUE_KEPT_BYTES, TRUNK_CREDIT_BYTES,
    TRUNK_CREDIT_BYTES_USER_TIMEOUT,
};
use crate::wire::NodeId;
use crate::wire::native::{Native, PROTOCOL_VERSION};
use segment::ADDR_BYTES;
use trunk::{TRUNK_STALL_NS, frames_within, put_control};

const NODES: usize = 2;

fn config(port: u16, secret: Option<&Secret>) -> NodeConfig {
    NodeConfig {
        listen: SocketAddr::from(([127, 0, 0, 2], port)),
        registry: "127.0.0.1:9".parse().unwrap(),
        seed: u64::from(port),
        secret: secret.cloned(),
        link_buffer_bytes: 0,
        registry_wait: 0,
        group: None,
    }
}

fn mux(secret: Option<&Secret>) -> Mux<Native> {
    let configs = (0..NODES as u16)
        .map(|i| config(4000 + i, secret))
        .collect();
    let mut mux = Mux::<Native>::new(configs, TrunkCredit::by_frames());
    mux.on_start(0);
    effects(&mut mux);
    mux
}

fn effects(mux: &mut Mux<Native>) -> Vec<Effect> {
    let mut into = Vec::new();
    mux.take_effects(&mut into);
    into
}

fn listener(index: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 2], 4000 + index as u16))
}

const PEER: &str = "127.0.0.3:5555";
const PEER_LISTENER: &str = "127.0.0.3:6000";

/// An accepted connection on node 0's listener.
fn accept(mux: &mut Mux<Native>, sequence: u64) -> ConnId {
    let conn = ConnId::inbound(sequence);
    mux.on_accepted(1, conn, PEER.parse().unwrap(), listener(0));
    conn
}

fn control(message: &Control) -> Vec<u8> {
    let mut out = Vec::new();
    put_control::<Native>(&mut out, message);
    out
}

/// The segments in `bytes`: (kind, stream, payload).
fn segments(bytes: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
    let mut at = 0;
    let mut out = Vec::new();
    while let Some(header) = segment::header(&bytes[at..]) {
        let start = at + HEADER_BYTES;
        out.push((
            header.kind,
            header.stream,
            bytes[start..start + header.len].to_vec(),
        ));
        at = start + header.len;
    }
    assert_eq!(at, bytes.len(), "whole segments");
    out
}

fn sent(mux: &mut Mux<Native>, trunk: ConnId) -> Vec<(u8, u32, Vec<u8>)> {
    let mut buf = Vec::new();
    mux.swap_outgoing(trunk, &mut buf);
    segments(&buf)
}

/// A trunk from a peer without a secret, up: its hello and listeners in, ours out.
fn trunk_up(mux: &mut Mux<Native>) -> ConnId {
    let trunk = accept(mux, 1);
    let mut bytes = MAGIC.to_vec();
    bytes.extend(control(&Control::Hello {
        nonce: None,
        version: PROTOCOL_VERSION,
    }));
    segment::put_listeners(&mut bytes, &[PEER_LISTENER.parse().unwrap()]);
    assert_eq!(mux.on_received(2, trunk, &bytes), bytes.len());
    assert!(effects(mux).contains(&Effect::Send(trunk)));
    let ours = sent(mux, trunk);
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0].0, LISTENERS);
    assert_eq!(
        segment::listeners(&ours[0].2).unwrap(),
        vec![listener(0), listener(1)]
    );
    assert_eq!(mux.carried().0, 1);
    trunk
}

#[test]
fn a_trunk_carries_a_link_from_its_open_to_its_close() {
    let mut mux = mux(None);
    let trunk = trunk_up(&mut mux);
    // The peer's node opens a link to node 1 and says hello on it, in one receive cut in the
    // middle of the hello.
    let mut bytes = Vec::new();
    segment::put_open(&mut bytes, 1, listener(1));
    let mut hello = Vec::new();
    Native::encode_control(
        &Control::Hello {
            nonce: None,
            version: PROTOCOL_VERSION,
        },
        &mut hello,
    );
    segment::put_data(&mut bytes, 1, &hello);
    let cut = bytes.len() - 2;
    assert_eq!(mux.on_received(3, trunk, &bytes[..cut]), cut);
    assert_eq!(mux.carried(), (1, 0, 1));
    assert_eq!(mux.on_received(3, trunk, &bytes[cut..]), 2);
    // A link needs no answer; the trunk credits back the DATA bytes each receive consumed.
    assert_eq!(effects(&mut mux), vec![Effect::Send(trunk)]);
    let cut_data = cut - HEADER_BYTES - ADDR_BYTES - HEADER_BYTES;
    let credits: Vec<usize> = sent(&mut mux, trunk)
        .iter()
        .map(|(kind, stream, payload)| {
            assert_eq!((*kind, *stream), (CREDIT, 0));
            segment::credit(payload).unwrap()
        })
        .collect();
    assert_eq!(credits, vec![cut_data, hello.len() - cut_data]);
    // The peer closes it: node 1 sees it closed, nothing goes back.
    let mut close = Vec::new();
    segment::put_header(&mut close, CLOSE, 1, 0);
    assert_eq!(mux.on_received(4, trunk, &close), close.len());
    assert_eq!(mux.carried(), (1, 0, 0));
    // A segment for the closed stream that crossed the close is dropped; a stream never
    // opened is garbage.
    let mut late = Vec::new();
    segment::put_data(&mut late, 1, b"late");
    assert_eq!(mux.on_received(5, trunk, &late), late.len());
    assert!(!effects(&mut mux).contains(&Effect::Close(trunk)));
    let mut stray = Vec::new();
    segment::put_data(&mut stray, 7, b"stray");
    mux.on_received(6, trunk, &stray);
    assert!(effects(&mut mux).contains(&Effect::Close(trunk)));
    assert_eq!(mux.carried(), (0, 0, 0));
}

#[test]
fn an_open_to_no_listener_of_ours_is_refused_and_one_out_of_turn_closes_the_trunk() {
    let mut mux = mux(None);
    let trunk = trunk_up(&mut mux);
    let mut bytes = Vec::new();
    segment::put_open(&mut bytes, 1, "127.0.0.9:1".parse().unwrap());
    mux.on_received(3, trunk, &bytes);
    assert_eq!(sent(&mut mux, trunk), vec![(CLOSE, 1, Vec::new())]);
    // Stream 1 again, and an even stream (this side's to open): garbage.
    for stream in [1, 4] {
        let mut mux = self::mux(None);
        let trunk = trunk_up(&mut mux);
        let mut bytes = Vec::new();
        segment::put_open(&mut bytes, 1, listener(1));
        segment::put_open(&mut bytes, stream, listener(0));
        mux.on_received(3, trunk, &bytes);
        assert!(
            effects(&mut mux).contains(&Effect::Close(trunk)),
            "{stream}"
        );
        assert_eq!(mux.carried(), (0, 0, 0), "the link on it is closed too");
    }
}

#[test]
fn nothing_is_carried_before_the_handshake_and_garbage_closes_the_trunk() {
    let secret = Secret::from_file_contents(b"correct horse battery staple").unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("an open before the hello", {
            let mut b = Vec::new();
            segment::put_open(&mut b, 1, listener(0));
            b
        }),
        ("data before the hello", {
            let mut b = Vec::new();
            segment::put_data(&mut b, 1, b"x");
            b
        }),
        ("listeners before the proof", {
            let mut b = control(&Control::Hello {
                nonce: Some([1; auth::NONCE_BYTES]),
                version: PROTOCOL_VERSION,
            });
            segment::put_listeners(&mut b, &[]);
            b
        }),
        (
            "a kind that does not exist",
            vec![9, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        (
            "a handshake message too long",
            vec![CONTROL, 0, 0, 0, 0, 0, 2, 0, 0],
        ),
        (
            "no secret",
            control(&Control::Hello {
                nonce: None,
                version: PROTOCOL_VERSION,
            }),
        ),
    ];
    for (what, garbage) in cases {
        let mut mux = mux(Some(&secret));
        let trunk = accept(&mut mux, 1);
        let mut bytes = MAGIC.to_vec();
        bytes.extend(&garbage);
        mux.on_received(2, trunk, &bytes);
        assert!(
            effects(&mut mux).contains(&Effect::Close(trunk)),
            "{what}: not closed"
        );
        assert_eq!(mux.carried(), (0, 0, 0), "{what}");
    }
    // A peer without the secret is told so before the close.
    let mut mux = mux(Some(&secret));
    let trunk = accept(&mut mux, 1);
    let mut bytes = MAGIC.to_vec();
    bytes.extend(control(&Control::Hello {
        nonce: None,
        version: PROTOCOL_VERSION,
    }));
    mux.on_received(2, trunk, &bytes);
    let told = sent(&mut mux, trunk);
    assert_eq!(
        told,
        vec![(
            CONTROL,
            0,
            control(&Control::Refused(crate::wire::Refusal::SecretRequired))[HEADER_BYTES..]
                .to_vec()
        )]
    );
}

#[test]
fn a_trunk_with_the_secret_comes_up_and_one_that_never_proves_itself_is_closed_in_time() {
    let secret = Secret::from_file_contents(b"correct horse battery staple").unwrap();
    let mut mux = mux(Some(&secret));
    let trunk = accept(&mut mux, 1);
    // The peer plays the connector of `crate::auth`.
    let mut nonces = StdRng::seed_from_u64(7);
    let binding = Binding {
        acceptor: auth::Role::Trunk,
        acceptor_addr: listener(0),
    };
    let (mut connector, hello) = Handshake::connect(Some(&secret), binding, &mut nonces);
    let mut bytes = MAGIC.to_vec();
    bytes.extend(control(&hello));
    mux.on_received(2, trunk, &bytes);
    let challenge = sent(&mut mux, trunk);
    assert_eq!(challenge.len(), 1);
    let message = Native::decode_control(&challenge[0].2).unwrap();
    let Outcome::Done(Some(response)) =
        connector.on_message(Some(&secret), Some(&message), &mut nonces)
    else {
        panic!("the mux proved itself as the trunk's acceptor");
    };
    let mut bytes = control(&response);
    segment::put_listeners(&mut bytes, &[PEER_LISTENER.parse().unwrap()]);
    mux.on_received(3, trunk, &bytes);
    assert_eq!(sent(&mut mux, trunk)[0].0, LISTENERS);
    assert_eq!(mux.carried().0, 1);
    // A node's proof is no trunk's: the same exchange bound to the node role fails.
    let mut other = mux_with_stranger(&secret);
    let node_binding = Binding {
        acceptor: auth::Role::Node,
        acceptor_addr: listener(0),
    };
    let (mut connector, hello) = Handshake::connect(Some(&secret), node_binding, &mut nonces);
    let mut bytes = MAGIC.to_vec();
    bytes.extend(control(&hello));
    other.on_received(2, ConnId::inbound(1), &bytes);
    let challenge = sent(&mut other, ConnId::inbound(1));
    let message = Native::decode_control(&challenge[0].2).unwrap();
    assert!(matches!(
        connector.on_message(Some(&secret), Some(&message), &mut nonces),
        Outcome::Failed(auth::Failure::WrongProof)
    ));
    // A trunk that stops after its magic is a stranger with a deadline.
    let mut idle = mux_with_stranger(&secret);
    idle.on_received(2, ConnId::inbound(1), MAGIC);
    let deadline = idle.next_tick().unwrap();
    assert!(deadline <= 2 + NODE_HANDSHAKE_TIMEOUT_NS, "{deadline}");
    idle.on_tick(2 + NODE_HANDSHAKE_TIMEOUT_NS - 1);
    assert!(!effects(&mut idle).contains(&Effect::Close(ConnId::inbound(1))));
    idle.on_tick(2 + NODE_HANDSHAKE_TIMEOUT_NS);
    assert!(effects(&mut idle).contains(&Effect::Close(ConnId::inbound(1))));
}

fn mux_with_stranger(secret: &Secret) -> Mux<Native> {
    let mut mux = mux(Some(secret));
    accept(&mut mux, 1);
    mux
}

#[test]
fn a_connection_that_is_no_trunk_is_its_nodes() {
    let mut mux = mux(None);
    let conn = accept(&mut mux, 1);
    let mut hello = Vec::new();
    Native::encode_control(
        &Control::Hello {
            nonce: None,
            version: PROTOCOL_VERSION,
        },
        &mut hello,
    );
    // Fewer bytes than the magic, not its start: the node's at once.
    assert_eq!(mux.on_received(2, conn, &hello), hello.len());
    assert!(effects(&mut mux).is_empty());
    assert_eq!(mux.carried(), (0, 0, 0));
    // The start of the magic waits for more.
    let other = accept(&mut mux, 2);
    assert_eq!(mux.on_received(2, other, &MAGIC[..3]), 0);
}

#[test]
fn a_failed_trunk_closes_its_links_whatever_it_held_unsent() {
    let mut mux = mux(None);
    let trunk = trunk_up(&mut mux);
    let mut bytes = Vec::new();
    segment::put_open(&mut bytes, 1, listener(1));
    mux.on_received(3, trunk, &bytes);
    // A buffer of two streams' data, the first handed over whole, the second cut.
    let mut taken = Vec::new();
    segment::put_data(&mut taken, 1, &[0; 10]);
    segment::put_data(&mut taken, 99, &[0; 10]);
    mux.on_unsent(4, trunk, &taken, 12);
    mux.on_closed(4, trunk, CloseReason::PeerClosed);
    assert_eq!(mux.carried(), (0, 0, 0));
}

#[test]
fn bytes_outstanding_without_credit_for_the_link_timeout_close_the_trunk() {
    let mut mux = mux(None);
    let trunk = trunk_up(&mut mux);
    effects(&mut mux);
    // 100 bytes of ours went at 10; a credit for 40 at 5 s keeps it; nothing more for 10 s
    // closes it.
    mux.trunks.get_mut(&trunk).unwrap().sent_data(10, 100);
    let deadline = |mux: &Mux<Native>| mux.trunks[&trunk].stall_deadline();
    assert_eq!(deadline(&mux), Some(10 + TRUNK_STALL_NS));
    let mut credit = Vec::new();
    segment::put_credit(&mut credit, 40);
    let at = 5_000_000_000;
    assert_eq!(mux.on_received(at, trunk, &credit), credit.len());
    mux.on_tick(10 + TRUNK_STALL_NS);
    assert!(!effects(&mut mux).contains(&Effect::Close(trunk)));
    assert_eq!(deadline(&mux), Some(at + TRUNK_STALL_NS));
    mux.on_tick(at + TRUNK_STALL_NS);
    assert!(effects(&mut mux).contains(&Effect::Close(trunk)));
    assert_eq!(mux.carried().0, 0);
}

#[test]
fn a_credit_for_more_than_was_sent_closes_the_trunk() {
    let mut mux = mux(None);
    let trunk = trunk_up(&mut mux);
    mux.trunks.get_mut(&trunk).unwrap().sent_data(10, 100);
    let mut credit = Vec::new();
    segment::put_credit(&mut credit, 100);
    mux.on_received(20, trunk, &credit);
    assert!(!effects(&mut mux).contains(&Effect::Close(trunk)));
    // All of it is credited: nothing is outstanding, nothing can stall.
    assert_eq!(mux.trunks[&trunk].stall_deadline(), None);
    mux.on_received(30, trunk, &credit);
    assert!(effects(&mut mux).contains(&Effect::Close(trunk)));
}

#[test]
fn the_credit_takes_whole_frames_up_to_the_one_that_reaches_it() {
    let mut frames = Vec::new();
    for len in [10, 20, 30] {
        let mut frame = Vec::new();
        Native::encode_control(
            &Control::Hello {
                nonce: (len > 10).then_some([len as u8; crate::auth::NONCE_BYTES]),
                version: PROTOCOL_VERSION,
            },
            &mut frame,
        );
        frames.push(frame);
    }
    let all: Vec<u8> = frames.concat();
    let first = frames[0].len();
    assert_eq!(frames_within::<Native>(&all, all.len()), all.len());
    assert_eq!(frames_within::<Native>(&all, 1), first);
    assert_eq!(frames_within::<Native>(&all, first), first);
    assert_eq!(
        frames_within::<Native>(&all, first + 1),
        first + frames[1].len()
    );
    // Bytes that are no frames go whole.
    assert_eq!(frames_within::<Native>(&[0xff; 40], 4), 40);
}

#[test]
fn the_process_exits_once_its_trunks_bytes_are_consumed_or_at_the_deadline() {
    let mut mux = mux(None);
    let trunk = trunk_up(&mut mux);
    effects(&mut mux);
    // The group's last node exited with 100 bytes of its links not yet credited back: the
    // process waits for the peer to consume them, then closes the trunk and exits.
    mux.trunks.get_mut(&trunk).unwrap().sent_data(5, 100);
    mux.route(10, Effect::Exit(0));
    assert!(effects(&mut mux).is_empty());
    let mut credit = Vec::new();
    segment::put_credit(&mut credit, 60);
    mux.on_received(11, trunk, &credit);
    assert!(effects(&mut mux).is_empty());
    segment::put_credit(&mut credit, 40);
    mux.on_received(12, trunk, &credit[credit.len() / 2..]);
    assert_eq!(
        effects(&mut mux),
        vec![Effect::Close(trunk), Effect::Exit(0)]
    );

    // A peer that does not consume them is given up at the deadline.
    let mut mux = self::mux(None);
    let trunk = trunk_up(&mut mux);
    effects(&mut mux);
    mux.trunks.get_mut(&trunk).unwrap().sent_data(5, 100);
    mux.route(10, Effect::Exit(3));
    mux.route(11, Effect::Exit(3));
    assert!(effects(&mut mux).is_empty());
    mux.on_tick(10 + LEAVE_FLUSH_TIMEOUT_NS - 1);
    assert!(!effects(&mut mux).contains(&Effect::Exit(3)));
    mux.on_tick(10 + LEAVE_FLUSH_TIMEOUT_NS);
    // (Its nodes never started here: the tick starts them too.)
    let last = effects(&mut mux);
    assert!(last.contains(&Effect::Close(trunk)), "{last:?}");
    assert_eq!(last.last(), Some(&Effect::Exit(3)));
}

/// The peer process's two nodes, both listening on one host (one dial finds them both).
const PEER_NODES: [(NodeId, &str); 2] = [(20, "127.0.0.3:6000"), (30, "127.0.0.3:6001")];

/// Node 0 of a fresh mux, registered as node 10 and given a table of the peer's two nodes
/// (a run's window of `window_bytes`): its two links wait for one trunk, dialed, whose credit
/// is `credit`. Returns the mux, node 0's registry connection and the trunk.
fn table_of_peer_nodes(window_bytes: u64, credit: usize) -> (Mux<Native>, ConnId, ConnId) {
    let configs = (0..NODES as u16).map(|i| config(4000 + i, None)).collect();
    let mut mux = Mux::<Native>::new(configs, TrunkCredit::fixed(credit));
    mux.on_start(0);
    let registry = effects(&mut mux)
        .into_iter()
        .find_map(|effect| match effect {
            Effect::Connect {
                conn,
                keepalive: true,
                ..
            } if conn.group() == 0 => Some(conn),
            _ => None,
        })
        .expect("node 0 connects to the registry");
    mux.on_connected(1, registry);
    effects(&mut mux);
    let ring = crate::routing::Ring::new(vec![10, PEER_NODES[0].0, PEER_NODES[1].0]);
    let addr = |id: NodeId| {
        PEER_NODES
            .iter()
            .find(|(peer, _)| *peer == id)
            .map(|(_, addr)| addr.parse().unwrap())
            .unwrap()
    };
    let mut bytes = Vec::new();
    for message in [
        Control::RegisterStatus {
            status: crate::wire::Status::Ok(10),
            info: String::new(),
        },
        Control::Manifest(crate::wire::Manifest {
            entries: ring
                .table(ring.position(10).unwrap(), 2)
                .into_iter()
                .map(|id| crate::wire::ManifestEntry { id, addr: addr(id) })
                .collect(),
            all_ids: ring.ids().into(),
            chord: None,
            trace_slots: 4,
            // 4-byte slots (36-byte frames): the burst test below counts on a window that
            // no whole number of frames fills exactly.
            trace_slot_bytes: 4,
            window_bytes,
            backups: Vec::new(),
            epoch: 0,
        }),
    ] {
        Native::encode_control(&message, &mut bytes);
    }
    assert_eq!(mux.on_received(2, registry, &bytes), bytes.len());
    // One dial for both links, to the host of the first; neither link is a connection.
    let dials: Vec<(ConnId, SocketAddr)> = effects(&mut mux)
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::Connect { conn, addr, .. } => Some((conn, addr)),
            _ => None,
        })
        .collect();
    assert_eq!(dials.len(), 1, "{dials:?}");
    let (trunk, dialed) = dials[0];
    assert_eq!(trunk.group(), TRUNK_GROUP);
    assert_eq!(dialed.ip(), addr(20).ip());
    assert_eq!(mux.carried(), (0, 0, 0));
    (mux, registry, trunk)
}

/// The dialed trunk of [`table_of_peer_nodes`] comes up: the peer (an acceptor without a
/// secret) answers with its listeners. Returns what the trunk sent after that, at once.
fn dialed_trunk_up(mux: &mut Mux<Native>, trunk: ConnId) -> Vec<(u8, u32, Vec<u8>)> {
    mux.on_connected(3, trunk);
    assert_eq!(effects(mux), vec![Effect::Send(trunk)]);
    let mut first = Vec::new();
    mux.swap_outgoing(trunk, &mut first);
    assert!(first.starts_with(MAGIC));
    let kinds: Vec<u8> = segments(&first[MAGIC.len()..])
        .iter()
        .map(|s| s.0)
        .collect();
    assert_eq!(kinds, vec![CONTROL, LISTENERS]);
    let listeners: Vec<SocketAddr> = PEER_NODES.iter().map(|(_, a)| a.parse().unwrap()).collect();
    let mut bytes = Vec::new();
    segment::put_listeners(&mut bytes, &listeners);
    assert_eq!(mux.on_received(4, trunk, &bytes), bytes.len());
    // What the trunk coming up led to is asked for in the same call, not at a later event.
    assert!(effects(mux).contains(&Effect::Send(trunk)));
    sent(mux, trunk)
}

#[test]
fn a_dialed_trunk_carries_the_links_that_waited_for_it_at_once() {
    let (mut mux, _, trunk) = table_of_peer_nodes(1 << 20, TRUNK_CREDIT_BYTES);
    let after = dialed_trunk_up(&mut mux, trunk);
    assert_eq!(mux.carried(), (1, 0, 2));
    // Each waiting link is opened as a stream of the connector's parity, to its listener, and
    // its node's hello follows on it in the same bytes.
    let opens: Vec<(u32, SocketAddr)> = after
        .iter()
        .filter(|s| s.0 == OPEN)
        .map(|s| (s.1, segment::open_addr(&s.2).unwrap()))
        .collect();
    let mut to: Vec<SocketAddr> = opens.iter().map(|o| o.1).collect();
    to.sort();
    let listeners: Vec<SocketAddr> = PEER_NODES.iter().map(|(_, a)| a.parse().unwrap()).collect();
    assert_eq!(to, listeners, "{after:?}");
    let mut streams: Vec<u32> = opens.iter().map(|o| o.0).collect();
    streams.sort();
    assert_eq!(streams, vec![1, 3]);
    for (stream, _) in &opens {
        let data: Vec<u8> = after
            .iter()
            .filter(|s| s.0 == DATA && s.1 == *stream)
            .flat_map(|s| s.2.clone())
            .collect();
        let hello = Native::decode_control(&data[..Native::frame_len(&data).unwrap().unwrap()]);
        assert!(
            matches!(hello, Ok(Control::Hello { nonce: None, .. })),
            "stream {stream}: {hello:?}"
        );
    }
    // The DATA is what the trunk has outstanding until the peer credits it back.
    let data: usize = after
        .iter()
        .filter(|s| s.0 == DATA)
        .map(|s| s.2.len())
        .sum();
    assert_eq!(mux.trunks[&trunk].outstanding, data);
}

/// The capacity of each stream's queue in its node (swapped out and back to be looked at).
fn stream_queue_capacities(mux: &mut Mux<Native>) -> Vec<usize> {
    let streams: Vec<ConnId> = mux
        .links
        .iter()
        .filter(|(_, link)| matches!(link, Link::Stream { .. }))
        .map(|(conn, _)| *conn)
        .collect();
    streams
        .into_iter()
        .map(|conn| {
            let mut queue = Vec::new();
            mux.group.swap_outgoing(conn, &mut queue);
            let capacity = queue.capacity();
            mux.group.swap_outgoing(conn, &mut queue);
            capacity
        })
        .collect()
}

/// The registry (its connection `registry`) starts run 1 of 1,000,000 packets per node, far
/// more than any window or credit, at time 5.
fn start_a_long_run(mux: &mut Mux<Native>, registry: ConnId) {
    let mut bytes = Vec::new();
    Native::encode_control(
        &Control::TaskInitiate {
            run: 1,
            packets: 1_000_000,
            extra_payload_bytes: 0,
            rate_per_s: 0,
            targets: crate::wire::Targets::Nodes,
        },
        &mut bytes,
    );
    assert_eq!(mux.on_received(5, registry, &bytes), bytes.len());
}

#[test]
fn a_stream_queue_grown_in_a_burst_is_given_back_once_the_burst_is_over() {
    let (mut mux, registry, trunk) = table_of_peer_nodes(1 << 20, TRUNK_CREDIT_BYTES);
    dialed_trunk_up(&mut mux, trunk);
    start_a_long_run(&mut mux, registry);
    // The burst: node 0 fills its 1 MiB window (the peers never acknowledge) while the trunk
    // takes nothing.
    let mut now = 6;
    for _ in 0..100 {
        now += 1_000_000;
        mux.on_tick(now);
    }
    effects(&mut mux);
    let grown = stream_queue_capacities(&mut mux);
    assert!(
        grown.iter().any(|&c| c > 4 * STREAM_QUEUE_KEPT_BYTES),
        "{grown:?}"
    );
    // The peer credits back all it gets until the trunk has sent everything: the window is
    // full, so the node queues nothing more.
    let mut data_sent = 0;
    for round in 0..100 {
        let data: usize = sent(&mut mux, trunk)
            .iter()
            .filter(|s| s.0 == DATA)
            .map(|s| s.2.len())
            .sum();
        if data == 0 && mux.trunks[&trunk].wanting.is_empty() {
            break;
        }
        data_sent += data;
        let mut credit = Vec::new();
        segment::put_credit(&mut credit, data);
        now += 1;
        assert_eq!(
            mux.on_received(now, trunk, &credit),
            credit.len(),
            "round {round}"
        );
        effects(&mut mux);
    }
    assert!(data_sent >= 1 << 19, "{data_sent}");
    // Within a second of the burst's last heavy take the grown queues are kept (another
    // burst may come), and the mux wakes to look at them again.
    let kept = stream_queue_capacities(&mut mux);
    assert!(
        kept.iter().any(|&c| c > 4 * STREAM_QUEUE_KEPT_BYTES),
        "{grown:?} -> {kept:?}"
    );
    let sweep = mux.next_tick().expect("a sweep is due");
    assert!(sweep <= now + STREAM_BURST_GAP_NS, "{sweep} {now}");
    // The burst is over: once the sweeps are due, no stream's queue keeps what it grew to,
    // and nothing more wakes the mux for them.
    now += 2 * STREAM_BURST_GAP_NS;
    mux.on_tick(now);
    effects(&mut mux);
    let after = stream_queue_capacities(&mut mux);
    assert!(
        after.iter().all(|&c| c <= STREAM_QUEUE_KEPT_BYTES),
        "{grown:?} -> {kept:?} -> {after:?}"
    );
    assert_eq!(mux.grown.sweep_at(), None);
}

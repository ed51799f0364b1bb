//! The node's state machine driven by hand: links, holds, bounds, forged acks, corrupted
//! traces, keyed packets and lookups, without sockets.

use super::*;
use crate::machine::LinkError;
use crate::sim::{ReadyNode, task_initiate, task_initiate_to};
use crate::wire::LinkCount;
use crate::wire::native::Native;
use crate::wire::{DataShape, Peek, Targets};

fn link_counts(node: &Node<Native>) -> Vec<LinkCount> {
    node.overlay.as_ref().expect("an overlay").link_counts()
}

/// The whole frames of `bytes`, in order.
fn frames(bytes: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    let mut offset = 0;
    while let Ok(Some(len)) = Native::frame_len(&bytes[offset..]) {
        frames.push(&bytes[offset..offset + len]);
        offset += len;
    }
    frames
}

/// The sinks of the data frames of `bytes`, in order.
fn sinks(bytes: &[u8]) -> Vec<NodeId> {
    frames(bytes)
        .into_iter()
        .filter_map(|frame| match Native::peek(frame) {
            Ok(Peek::Data(data)) => Some(data.sink()),
            _ => None,
        })
        .collect()
}

/// The counters of the final report `node` sends when the registry asks for one at `now`.
fn final_counters(node: &mut Node<Native>, registry: ConnId, now: Nanos) -> Counters {
    let mut request = Vec::new();
    let ask = crate::wire::Control::SummaryRequest {
        reset: true,
        links: false,
    };
    Native::encode_control(&ask, &mut request);
    assert_eq!(node.on_received(now, registry, &request), request.len());
    let mut bytes = Vec::new();
    node.swap_outgoing(registry, &mut bytes);
    frames(&bytes)
        .into_iter()
        .find_map(|frame| match Native::decode_control(frame) {
            Ok(crate::wire::Control::Summary { counters, .. }) => Some(counters),
            _ => None,
        })
        .expect("a final report")
}

/// Packets held with no live way on (`overlay::Stuck`), at `node`.
fn held(node: &Node<Native>) -> u64 {
    node.overlay.as_ref().expect("an overlay").stuck.packets
}

/// Asserts that `node` printed a line `what` accepts since its effects were last taken.
fn assert_printed(node: &mut Node<Native>, what: impl Fn(&str) -> bool) {
    let mut effects = Vec::new();
    node.take_effects(&mut effects);
    assert!(
        effects
            .iter()
            .any(|effect| matches!(effect, Effect::Print(line) if what(line))),
        "{effects:?}"
    );
}

/// Node 10 (at 127.0.0.1:10) accepts the inbound link `conn` from 127.0.0.1:9 at `now`.
fn accept(node: &mut Node<Native>, now: Nanos, conn: ConnId) {
    let (peer, local) = ("127.0.0.1:9".parse(), "127.0.0.1:10".parse());
    node.on_accepted(now, conn, peer.unwrap(), local.unwrap());
}

#[test]
fn packets_the_driver_could_not_send_on_a_dead_link_go_on_or_are_counted() {
    // Node 10 of the ring 10 20 30 40, NR 1: its one entry is 20, and it has no backups.
    let ReadyNode {
        mut node,
        registry,
        entries,
    } = ReadyNode::new(10, &[10, 20, 30, 40], 1, 2, 0);
    let entry = entries[0];
    node.on_received(0, registry, &task_initiate(5));
    node.on_tick(1);
    assert_eq!(node.counters().sent, 5);
    // The driver takes the five frames, gets one and a half into the kernel, then the link
    // dies: three and a half never left, so three whole frames plus the cut one never
    // arrived. With no other link, those for node 20 stay handed to it (lost with it, if
    // it died), the others are held until the table changes.
    let mut taken = Vec::new();
    node.swap_outgoing(entry, &mut taken);
    let frame = taken.len() / 5;
    let unsent = &sinks(&taken)[1..];
    let for_dead = unsent.iter().filter(|&&sink| sink == 20).count() as u64;
    node.on_unsent(2, entry, &taken, frame + frame / 2);
    node.on_closed(2, entry, CloseReason::SendFailed(LinkError::Reset));
    assert_eq!((node.counters().dropped, held(&node)), (0, 4 - for_dead));
    // The link counts agree: 5 handed over, the held ones taken back.
    assert_eq!(link_counts(&node)[0].sent, 1 + for_dead);
    // No table change came: the final report counts the held ones dropped.
    assert_eq!(final_counters(&mut node, registry, 3).dropped, 4 - for_dead);
    assert_eq!(held(&node), 0);
}

#[test]
fn a_table_link_the_node_closes_itself_is_down() {
    // Node 10 of the ring 10 20 30 40, NR 1: its one entry is 20, which sends garbage.
    let ReadyNode {
        mut node,
        registry,
        entries,
    } = ReadyNode::new(10, &[10, 20, 30, 40], 1, 2, 0);
    let garbage = [0u8; 8]; // a zero length prefix: a bad frame
    assert_eq!(node.on_received(0, entries[0], &garbage), garbage.len());
    let mut effects = Vec::new();
    node.take_effects(&mut effects);
    assert!(effects.contains(&Effect::Close(entries[0])), "{effects:?}");
    node.on_received(1, registry, &task_initiate(5));
    node.on_tick(2);
    // Nothing is queued for the closed link, and there is no other: the packets for node
    // 20 are handed to its dead link (lost with it), the others held (dropped at the final
    // report if the table never changes), all five counted.
    assert_eq!(node.counters().sent, 5);
    assert_eq!(node.queued_bytes(), 0);
    let lost_with = link_counts(&node)[0].sent;
    assert_eq!(
        node.counters().dropped + held(&node) + lost_with,
        5,
        "{:?}",
        link_counts(&node)
    );
    assert_eq!(
        final_counters(&mut node, registry, 3).dropped,
        5 - lost_with
    );
}

/// Node 10 of the ring 10 20 30 40 (NR 1: its one entry 20, no backups), whose link to 20
/// died, holds the packets for the live 30 and 40 (no live entry short of them), counting
/// nothing dropped; the registry's repair around 20 gives it the table 30, and they go on
/// on the link to 30, marked as detoured.
#[test]
fn packets_with_no_live_way_on_are_held_until_the_table_changes() {
    use crate::wire::native::FLAG_DETOURED;
    let ReadyNode {
        mut node,
        registry,
        entries,
    } = ReadyNode::new(10, &[10, 20, 30, 40], 1, 2, 0);
    node.on_closed(1, entries[0], CloseReason::SendFailed(LinkError::Reset));
    let inbound = ConnId::inbound(1);
    accept(&mut node, 2, inbound);
    let shape = DataShape {
        trace_slots: 2,
        slot_bytes: 1,
        ..DataShape::default()
    };
    let payload = 7i32.to_le_bytes();
    let crc = crate::wire::native::crc32(&payload);
    // Relayed from 40: for 30 and 40 (held), and for the dead 20 (lost with it).
    let mut from_40 = Vec::new();
    for sink in [30, 40, 20] {
        Native::append_data_with_crc(&mut from_40, 40, sink, shape, 1, &payload, crc);
    }
    assert_eq!(node.on_received(3, inbound, &from_40), from_40.len());
    assert_eq!((node.counters().dropped, held(&node)), (0, 2));
    // The repair: 20 is out, node 10's table is 30.
    let mut repair = Vec::new();
    let to_30 = crate::wire::ManifestEntry {
        id: 30,
        addr: "127.0.0.1:20030".parse().unwrap(),
    };
    Native::encode_control(
        &crate::wire::Control::Membership(crate::wire::MembershipChange {
            version: 1,
            change: crate::wire::Change::Repair { ids: vec![20] },
            table: Some(crate::wire::NewTable {
                entries: vec![to_30],
                backups: Vec::new(),
            }),
        }),
        &mut repair,
    );
    assert_eq!(node.on_received(4, registry, &repair), repair.len());
    let mut effects = Vec::new();
    node.take_effects(&mut effects);
    let link_30 = effects
        .iter()
        .find_map(|effect| match effect {
            Effect::Connect { conn, .. } => Some(*conn),
            _ => None,
        })
        .expect("a link to the new entry 30");
    // Held until the switch (make before break: once the link to 30 is up).
    assert_eq!(held(&node), 2);
    node.on_connected(5, link_30);
    assert_eq!(held(&node), 0);
    let mut bytes = Vec::new();
    node.swap_outgoing(link_30, &mut bytes);
    let data: Vec<&[u8]> = frames(&bytes)
        .into_iter()
        .filter(|frame| matches!(Native::peek(frame), Ok(Peek::Data(_))))
        .collect();
    assert_eq!(sinks(&bytes), [30, 40]);
    for frame in data {
        assert_ne!(frame[7] & FLAG_DETOURED, 0, "{frame:?}");
    }
    // Relayed: the two that went on (the one for 20 is lost with it).
    let counters = final_counters(&mut node, registry, 6);
    assert_eq!((counters.relayed, counters.dropped), (2, 0));
}

/// What is held with no live way on is bounded as what links queue is
/// (`limits::relay_queued_bytes_max`, window 1000 bytes): past it, packets are dropped and
/// counted.
#[test]
fn a_full_hold_drops_and_counts() {
    let ReadyNode {
        mut node, entries, ..
    } = ReadyNode::new(10, &[10, 20, 30, 40], 1, 2, 1000);
    node.on_closed(1, entries[0], CloseReason::SendFailed(LinkError::Reset));
    let inbound = ConnId::inbound(1);
    accept(&mut node, 2, inbound);
    let shape = DataShape {
        trace_slots: 2,
        slot_bytes: 1,
        ..DataShape::default()
    };
    let bound = crate::limits::relay_queued_bytes_max(4, 1000);
    let payload = vec![0; 1000];
    let crc = crate::wire::native::crc32(&payload);
    let mut frame = Vec::new();
    Native::append_data_with_crc(&mut frame, 40, 30, shape, 1, &payload, crc);
    let fit = (bound / frame.len()) as u64;
    let sent = fit + 10;
    for _ in 0..sent {
        assert_eq!(node.on_received(3, inbound, &frame), frame.len());
    }
    assert_eq!((held(&node), node.counters().dropped), (fit, sent - fit));
    let stuck = &node.overlay.as_ref().expect("an overlay").stuck.bytes;
    assert!(stuck.len() <= bound);
}

#[test]
fn what_links_queue_is_bounded_a_link_alone_past_it_is_cut() {
    // Node 10 of the ring 10 20 30 40, NR 2, window 1000 bytes: at most 2 x 4 x (1000 +
    // 64 Ki) bytes may be queued on behalf of inbound links.
    let ReadyNode {
        mut node, entries, ..
    } = ReadyNode::new(10, &[10, 20, 30, 40], 2, 1, 1000);
    let bound = crate::limits::relay_queued_bytes_max(4, 1000);
    let shares = |node: &Node<Native>| {
        let shares = &node.overlay.as_ref().expect("an overlay").shares;
        (shares.total, shares.links_cut, shares.frames_dropped)
    };
    let shape = DataShape {
        trace_slots: 1,
        slot_bytes: 1,
        extra_payload_bytes: 0,
        run_tag: 0,
    };
    let mut frame = Vec::new();
    Native::append_data(&mut frame, 40, 20, shape, 1, &7i32.to_le_bytes());
    let (a, b) = (ConnId::inbound(1), ConnId::inbound(2));
    let local: SocketAddr = "127.0.0.1:10".parse().unwrap();
    node.on_accepted(0, a, "127.0.0.1:9".parse().unwrap(), local);
    node.on_accepted(0, b, "127.0.0.1:11".parse().unwrap(), local);
    // Relayed frames count for the link until the driver takes them.
    let hundred = frame.repeat(100);
    node.on_received(1, a, &hundred);
    assert_eq!(shares(&node), (hundred.len(), 0, 0));
    let mut taken = Vec::new();
    node.swap_outgoing(entries[0], &mut taken);
    assert_eq!(shares(&node), (0, 0, 0));
    // Two links that each stay under the bound but together pass it: the frames past it
    // are dropped, and no link is cut.
    let half = frame.repeat(bound / 2 / frame.len() + 1);
    node.on_received(2, a, &half);
    node.on_received(2, b, &half);
    let (total, cut, dropped) = shares(&node);
    assert!(
        total <= bound && cut == 0 && dropped > 0,
        "{total} {cut} {dropped}"
    );
    assert_eq!(node.counters().dropped, dropped);
    let mut effects = Vec::new();
    node.take_effects(&mut effects);
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Close(_))),
        "{effects:?}"
    );
    // The driver takes them; then one link alone passes the bound: it is cut.
    taken.clear();
    node.swap_outgoing(entries[0], &mut taken);
    assert_eq!(shares(&node).0, 0);
    let past = frame.repeat(bound / frame.len() + 1);
    assert_eq!(node.on_received(3, a, &past), past.len());
    node.take_effects(&mut effects);
    assert!(effects.contains(&Effect::Close(a)), "{effects:?}");
    let (total, cut, _) = shares(&node);
    assert!(total <= bound && cut == 1, "{total} {cut}");
    // Its bytes still count until the driver takes them.
    taken.clear();
    node.swap_outgoing(entries[0], &mut taken);
    assert_eq!(shares(&node).0, 0);
}

#[test]
fn forged_acks_do_not_grow_what_a_source_queues_toward_a_stalled_first_hop() {
    forged_acks_hold_a_source_whose_first_hop_is_stalled(&task_initiate(20_000));
}

#[test]
fn forged_acks_do_not_grow_what_a_source_of_keyed_packets_queues() {
    forged_acks_hold_a_source_whose_first_hop_is_stalled(&task_initiate_to(
        20_000,
        Targets::Keys { bits: 7 },
    ));
}

/// Node 10 of the ring 10 20 30 40, NR 1, window 1000 bytes, told to send 20,000 packets
/// by `task`: every packet goes to its one entry, 20, whose driver takes nothing (the
/// first hop is stalled). An outsider acks everything in flight, as sink 30, again and
/// again; what the source queues of its own stays within the bound.
fn forged_acks_hold_a_source_whose_first_hop_is_stalled(task: &[u8]) {
    let ReadyNode {
        mut node,
        registry,
        entries,
    } = ReadyNode::new(10, &[10, 20, 30, 40], 1, 1, 1000);
    let bound = crate::limits::own_queued_bytes_max(1000);
    let packets = 20_000;
    node.on_received(0, registry, task);
    let outsider = ConnId::inbound(1);
    let local: SocketAddr = "127.0.0.1:10".parse().unwrap();
    node.on_accepted(0, outsider, "127.0.0.1:9".parse().unwrap(), local);
    let mut acked = 0;
    let mut forge = |node: &mut Node<Native>, now: Nanos| {
        let flow = &node.overlay.as_ref().expect("an overlay").flow;
        acked += flow.in_flight_bytes;
        let mut ack = Vec::new();
        Native::append_ack(&mut ack, 30, 10, flow.epoch, acked);
        assert_eq!(node.on_received(now, outsider, &ack), ack.len());
    };
    let queued = |node: &Node<Native>| {
        let overlay = node.overlay.as_ref().expect("an overlay");
        (overlay.own_queued, overlay.entries[0].pending.len())
    };
    for now in 1..200 {
        node.on_tick(now);
        forge(&mut node, now);
        let (own, pending) = queued(&node);
        // All but a handshake's few bytes are its own packets.
        assert!(
            own <= pending && pending <= bound,
            "{own} {pending} {bound}"
        );
    }
    let overlay = node.overlay.as_ref().expect("an overlay");
    assert!(
        overlay.flow.may_send() && overlay.next_send().is_none(),
        "held"
    );
    assert!(node.counters().sent < packets);
    // The stall ends: each time the driver takes the bytes, origination is woken and goes
    // on, until the run has originated all its packets.
    let mut taken = Vec::new();
    let mut now = 200;
    while node.counters().sent < packets {
        now += 1;
        taken.clear();
        node.swap_outgoing(entries[0], &mut taken);
        assert!(!taken.is_empty() && node.next_tick().is_some());
        node.on_tick(now);
        forge(&mut node, now);
        assert!(queued(&node).1 <= bound);
    }
}

#[test]
fn a_registry_that_does_not_read_is_given_up_on() {
    // Summary requests, and never a byte read: the node's answers pile up until it has
    // more than NODE_REGISTRY_QUEUED_BYTES_MAX queued for the registry, then it exits.
    let ReadyNode {
        mut node, registry, ..
    } = ReadyNode::new(10, &[10, 20, 30, 40], 2, 1, 0);
    let mut request = Vec::new();
    Native::encode_control(
        &crate::wire::Control::SummaryRequest {
            reset: false,
            links: false,
        },
        &mut request,
    );
    let batch = request.repeat(1000);
    let mut effects = Vec::new();
    for _ in 0..1000 {
        node.on_received(1, registry, &batch);
        node.take_effects(&mut effects);
        if effects.contains(&Effect::Exit(1)) {
            break;
        }
        effects.clear();
    }
    assert!(effects.contains(&Effect::Exit(1)), "{effects:?}");
    assert!(effects.contains(&Effect::Close(registry)), "{effects:?}");
}

#[test]
fn a_packet_whose_trace_is_not_its_route_is_corrupted() {
    // Node 10 of the ring 10 20 30 40, NR 2: from 40 (its predecessor) packets come
    // direct, with no relay in their trace.
    let ReadyNode { mut node, .. } = ReadyNode::new(10, &[10, 20, 30, 40], 2, 2, 0);
    let inbound = ConnId::inbound(1);
    accept(&mut node, 0, inbound);
    let shape = DataShape {
        trace_slots: 2,
        slot_bytes: 1,
        extra_payload_bytes: 0,
        run_tag: 0,
    };
    let mut direct = Vec::new();
    Native::append_data(&mut direct, 40, 10, shape, 1, &7i32.to_le_bytes());
    let mut detour = Vec::new();
    let Ok(Peek::Data(data)) = Native::peek(&direct) else {
        panic!("a data frame");
    };
    Native::append_relayed(&data, 30, &mut detour);
    let mut bytes = direct.clone();
    bytes.extend_from_slice(&detour);
    assert_eq!(node.on_received(2, inbound, &bytes), bytes.len());
    let counters = node.counters();
    assert_eq!((counters.received, counters.corrupted), (1, 1));
    assert_printed(&mut node, |line| {
        line.contains("corrupted packet") && line.contains("30")
    });
    // Both came over the link from 40: the first packet names it.
    let links = link_counts(&node);
    let from_40 = links
        .iter()
        .find(|link| link.peer == 40)
        .expect("a row for 40");
    assert_eq!(from_40.received, 2);
    // A frame whose trace slots are 4 bytes wide in this overlay of 1-byte slots is
    // corrupted, as one of other trace slots is, and said so.
    for shape in [
        DataShape {
            slot_bytes: 4,
            ..shape
        },
        DataShape {
            trace_slots: 3,
            ..shape
        },
    ] {
        let mut other = Vec::new();
        Native::append_data(&mut other, 40, 10, shape, 1, &7i32.to_le_bytes());
        let before = node.counters().corrupted;
        assert_eq!(node.on_received(3, inbound, &other), other.len());
        assert_eq!(node.counters().corrupted, before + 1);
        assert_printed(&mut node, |line| line.contains("this overlay uses 2 of 1"));
    }
}

/// Large frames relayed from a lent receive buffer go out as the copied ones would, byte
/// for byte, with their unchanged parts held rather than copied (and queued on behalf of
/// their link alike); on a link that dies they go around it as copied ones do.
#[test]
fn frames_held_in_a_lent_buffer_go_out_as_copied_ones_do() {
    let shape = DataShape {
        trace_slots: 2,
        slot_bytes: 1,
        ..DataShape::default()
    };
    let mut frames = Vec::new();
    for (extra, value) in [(4096usize, 1i32), (0, 2), (5000, 3), (4096, 4)] {
        let mut payload = value.to_le_bytes().to_vec();
        payload.extend((0..extra).map(|i| (i % 251) as u8));
        let crc = crate::wire::native::crc32(&payload);
        Native::append_data_with_crc(&mut frames, 20, 40, shape, 1, &payload, crc);
    }
    let buffer: std::sync::Arc<[u8]> = std::sync::Arc::from(frames.clone());
    let inbound = ConnId::inbound(1);
    // Node 10 of the ring 10 20 30 40, NR 2: packets for 40 go on the entry to 30. With
    // `dies`, that link fails before the driver takes them: they go around it, to 20.
    let relay = |lend: bool, dies: bool| {
        let ReadyNode {
            mut node, entries, ..
        } = ReadyNode::new(10, &[10, 20, 30, 40], 2, 2, 0);
        node.on_accepted(
            2,
            inbound,
            "127.0.0.1:9".parse().unwrap(),
            "127.0.0.1:10".parse().unwrap(),
        );
        let consumed = if lend {
            node.on_received_in(3, inbound, &buffer, Lent::new(&buffer))
        } else {
            node.on_received(3, inbound, &frames)
        };
        assert_eq!(consumed, frames.len());
        let overlay = node.overlay.as_ref().unwrap();
        let share = overlay.shares.of(inbound);
        let held = overlay.entries[1].held.len();
        let (entry, queued) = if dies {
            node.on_closed(4, entries[1], CloseReason::SendFailed(LinkError::Reset));
            (
                entries[0],
                node.overlay.as_ref().unwrap().shares.of(inbound),
            )
        } else {
            (entries[1], share)
        };
        let (mut bytes, mut holes) = (Vec::new(), Vec::new());
        node.swap_outgoing_held(entry, &mut bytes, &mut holes);
        (gathered(&bytes, &holes), holes.len(), held, share, queued)
    };
    let (copied, no_holes, none_held, share, _) = relay(false, false);
    assert_eq!((no_holes, none_held), (0, 0));
    assert_eq!(sinks(&copied), [40, 40, 40, 40]);
    let (sent, holes, _, held_share, _) = relay(true, false);
    assert_eq!(
        holes, 3,
        "the three large frames are held, the small one copied"
    );
    assert!(
        sent == copied,
        "held frames went out differently from copied ones"
    );
    assert_eq!(held_share, share);
    let (around_copied, _, _, _, copied_queued) = relay(false, true);
    let (around_held, around_holes, held, _, held_queued) = relay(true, true);
    assert_eq!((held, around_holes), (3, 0));
    assert_eq!(sinks(&around_copied), [40, 40, 40, 40]);
    assert!(around_held == around_copied);
    assert_eq!(held_queued, copied_queued);
}

mod keyed;

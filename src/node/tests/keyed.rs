//! Keyed packets and lookups at a node driven by hand: delivered only at the key's owner,
//! routed around dead links as node-addressed packets are, answered, timed out, ignored.

use super::*;

/// The trace of a lookup in the tests' overlay of IDs 10..=40 (1-byte slots).
const LOOKUP_SHAPE: DataShape = DataShape {
    trace_slots: 2,
    slot_bytes: 1,
    extra_payload_bytes: 0,
    run_tag: 0,
};

/// Keyed packets at node 10 of the ring 10 20 30 40 (position fingers, NR 2: entries 20
/// and 30; keys are 4-byte IDs, a key's owner the first node at or after it): a key it
/// owns is delivered here, one it does not own is relayed toward its owner and never
/// counted as received here, and a key of the wrong width is corrupted.
#[test]
fn keyed_packets_are_delivered_only_at_the_keys_owner() {
    let ReadyNode {
        mut node, entries, ..
    } = ReadyNode::new(10, &[10, 20, 30, 40], 2, 2, 0);
    let inbound = ConnId::inbound(1);
    accept(&mut node, 0, inbound);
    let shape = DataShape {
        trace_slots: 2,
        slot_bytes: 1,
        ..DataShape::default()
    };
    let payload = 7i32.to_le_bytes();
    let crc = crate::wire::native::crc32(&payload);
    let keyed = |key: &[u8]| {
        let mut frame = Vec::new();
        Native::append_keyed_with_crc(&mut frame, 40, key, shape, 1, &payload, crc);
        frame
    };
    // Keys 5 and 41 (wrapping past 40) are 10's: delivered, from 40 with no relay.
    for key in [5u32, 41] {
        let frame = keyed(&key.to_be_bytes());
        assert_eq!(node.on_received(1, inbound, &frame), frame.len());
    }
    assert_eq!((node.counters().received, node.counters().relayed), (2, 0));
    // Key 15 is 20's: relayed on entry 0 with this node in its trace, not delivered.
    let frame = keyed(&15u32.to_be_bytes());
    node.on_received(2, inbound, &frame);
    let counters = node.counters();
    assert_eq!((counters.received, counters.relayed), (2, 1));
    // The keyed frames queued for an entry (after the link's hello): (trace, key).
    let queued = |node: &mut Node<Native>, entry: ConnId| {
        let mut bytes = Vec::new();
        node.swap_outgoing(entry, &mut bytes);
        let mut keyed = Vec::new();
        for frame in frames(&bytes) {
            if let Ok(Peek::Keyed(frame)) = Native::peek(frame) {
                let key = u32::from_be_bytes(Native::key(&frame).try_into().unwrap());
                keyed.push((frame.trace().collect::<Vec<_>>(), key));
            }
        }
        keyed
    };
    assert_eq!(queued(&mut node, entries[0]), [(vec![10], 15)]);
    // A 3-byte key is no key of this overlay.
    node.on_received(3, inbound, &keyed(&[0, 0, 5]));
    let counters = node.counters();
    assert_eq!((counters.received, counters.corrupted), (2, 1));
    // A run to keys sends keyed frames to keys other nodes own, (10, 40] of 0..2^7.
    let ReadyNode {
        mut node,
        registry,
        entries,
    } = ReadyNode::new(10, &[10, 20, 30, 40], 2, 2, 0);
    node.on_received(
        0,
        registry,
        &task_initiate_to(200, Targets::Keys { bits: 7 }),
    );
    node.on_tick(1);
    assert_eq!(node.counters().sent, 200);
    let mut keys = Vec::new();
    for (index, &entry) in entries.iter().enumerate() {
        for (trace, key) in queued(&mut node, entry) {
            // Entry 0 (20) takes the keys 20 owns, entry 1 (30) those of 30 and 40.
            assert!((11..=40).contains(&key), "{key}");
            assert_eq!(index, usize::from(key > 20), "{key}");
            assert!(trace.is_empty());
            keys.push(key);
        }
    }
    assert_eq!(keys.len(), 200);
    // A run to keys too narrow for the node IDs (3 bits: 0..8) is refused.
    node.on_received(2, registry, &task_initiate_to(5, Targets::Keys { bits: 3 }));
    assert_printed(&mut node, |line| line.contains("Task initiate refused"));
}

/// A keyed packet whose link toward its key's owner is dead goes around it as a
/// node-addressed packet to that owner does: node 10 of the ring 10 20 30 40 (position
/// fingers, NR 2: entries 20 and 30) with the link to 30 dead sends both, for key 35 and
/// for node 40, on the link to 20, relayed and marked as detoured.
#[test]
fn keyed_packets_are_routed_around_a_dead_link_as_node_packets_are() {
    use crate::wire::native::FLAG_DETOURED;
    let ReadyNode {
        mut node, entries, ..
    } = ReadyNode::new(10, &[10, 20, 30, 40], 2, 2, 0);
    node.on_closed(1, entries[1], CloseReason::SendFailed(LinkError::Reset));
    let inbound = ConnId::inbound(1);
    accept(&mut node, 2, inbound);
    let shape = DataShape {
        trace_slots: 2,
        slot_bytes: 1,
        ..DataShape::default()
    };
    let payload = 7i32.to_le_bytes();
    let crc = crate::wire::native::crc32(&payload);
    // Packets from 20 (one for key 35, one for node 40): both routes to 40 pass 30.
    let mut from_20 = Vec::new();
    Native::append_keyed_with_crc(
        &mut from_20,
        20,
        &35u32.to_be_bytes(),
        shape,
        1,
        &payload,
        crc,
    );
    Native::append_data_with_crc(&mut from_20, 20, 40, shape, 1, &payload, crc);
    assert_eq!(node.on_received(3, inbound, &from_20), from_20.len());
    let counters = node.counters();
    assert_eq!((counters.relayed, counters.dropped), (2, 0));
    let mut bytes = Vec::new();
    node.swap_outgoing(entries[0], &mut bytes);
    let mut seen = Vec::new();
    for frame in frames(&bytes) {
        match Native::peek(frame) {
            Ok(Peek::Keyed(keyed)) => seen.push(("keyed", keyed.trace().collect::<Vec<_>>())),
            Ok(Peek::Data(data)) => seen.push(("data", data.trace().collect::<Vec<_>>())),
            _ => continue,
        }
        assert_ne!(frame[7] & FLAG_DETOURED, 0, "{frame:?}");
    }
    assert_eq!(seen, [("keyed", vec![10]), ("data", vec![10])]);
}

/// `lookup KEY` at node 10 of the ring 10 20 30 40 (position fingers, NR 2): a key it
/// owns is answered at once with 0 hops; a key 20 owns goes out as a lookup frame on
/// entry 0 and, with no reply, fails after the timeout; a reply no lookup waits for is
/// ignored; a text key is refused under position fingers.
#[test]
fn lookups_answer_time_out_and_ignore_strays() {
    let ReadyNode {
        mut node, entries, ..
    } = ReadyNode::new(10, &[10, 20, 30, 40], 2, 2, 0);
    let mut effects = Vec::new();
    let mut lines = |node: &mut Node<Native>| {
        effects.clear();
        node.take_effects(&mut effects);
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Print(line) => Some(line.clone()),
                _ => None,
            })
            .collect::<Vec<String>>()
    };
    node.on_command(1, "lookup 5");
    let printed = lines(&mut node);
    assert!(
        printed.iter().any(
            |l| l.contains("owner node 10") && l.contains("path 10, 0 hops; this node owns it")
        ),
        "{printed:?}"
    );
    node.on_command(2, "lookup hello");
    let printed = lines(&mut node);
    assert!(
        printed.iter().any(|l| l.contains("a key is a node ID")),
        "{printed:?}"
    );
    node.on_command(3, "lookup 0x0f");
    let mut sent = Vec::new();
    node.swap_outgoing(entries[0], &mut sent);
    let mut found = None;
    for frame in frames(&sent) {
        if let Ok(Peek::Lookup(lookup)) = Native::peek(frame) {
            found = Some((lookup.source(), Native::key(&lookup).to_vec()));
        }
    }
    assert_eq!(found, Some((10, 15u32.to_be_bytes().to_vec())));
    // The node asks to be woken when the lookup times out.
    assert!(
        node.next_tick()
            .is_some_and(|tick| tick <= 3 + crate::limits::LOOKUP_TIMEOUT_NS)
    );
    node.on_tick(3 + crate::limits::LOOKUP_TIMEOUT_NS);
    let printed = lines(&mut node);
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("Lookup 0x0f failed: no reply within 5 s")),
        "{printed:?}"
    );
    // A reply to lookup 0, which no longer waits: ignored, and nothing is counted.
    let mut lookup = Vec::new();
    Native::append_lookup(&mut lookup, 10, &15u32.to_be_bytes(), LOOKUP_SHAPE, 0, 3);
    let Ok(Peek::Lookup(view)) = Native::peek(&lookup) else {
        panic!("a lookup");
    };
    let mut reply = Vec::new();
    Native::append_lookup_reply(&mut reply, &view, 20, "127.0.0.1:20".parse().unwrap());
    let inbound = ConnId::inbound(1);
    accept(&mut node, 9, inbound);
    assert_eq!(node.on_received(9, inbound, &reply), reply.len());
    let printed = lines(&mut node);
    assert!(
        printed
            .iter()
            .any(|l| l.contains("that no lookup waits for")),
        "{printed:?}"
    );
    assert_eq!(node.counters(), crate::wire::Counters::default());
}

/// Lookups go around a dead link as keyed packets do: node 10 of the ring 10 20 30 40
/// (position fingers, NR 2: entries 20 and 30) with the link to 30 dead sends its own
/// lookup of key 35 (owner 40, first hop 30) on the link to 20 instead of failing, and
/// relays there a lookup of key 35 from 20 and a lookup reply to node 40 (next hop 30),
/// none counted as a packet. With the owner's link dead and none short of it, or with
/// every link dead, a lookup fails and says why.
#[test]
fn lookups_and_their_replies_are_routed_around_a_dead_link() {
    let ReadyNode {
        mut node, entries, ..
    } = ReadyNode::new(10, &[10, 20, 30, 40], 2, 2, 0);
    let mut effects = Vec::new();
    let mut printed = |node: &mut Node<Native>| {
        effects.clear();
        node.take_effects(&mut effects);
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Print(line) => Some(line.clone()),
                _ => None,
            })
            .collect::<Vec<String>>()
    };
    node.on_closed(1, entries[1], CloseReason::SendFailed(LinkError::Reset));
    printed(&mut node);
    node.on_command(2, "lookup 35");
    let lines = printed(&mut node);
    assert!(!lines.iter().any(|l| l.contains("Lookup")), "{lines:?}");
    let inbound = ConnId::inbound(1);
    node.on_accepted(
        3,
        inbound,
        "127.0.0.1:9".parse().unwrap(),
        "127.0.0.1:10".parse().unwrap(),
    );
    let mut from_20 = Vec::new();
    Native::append_lookup(&mut from_20, 20, &35u32.to_be_bytes(), LOOKUP_SHAPE, 7, 3);
    let mut asked_by_40 = Vec::new();
    Native::append_lookup(
        &mut asked_by_40,
        40,
        &15u32.to_be_bytes(),
        LOOKUP_SHAPE,
        8,
        3,
    );
    let Ok(Peek::Lookup(asked)) = Native::peek(&asked_by_40) else {
        panic!("a lookup");
    };
    Native::append_lookup_reply(&mut from_20, &asked, 20, "127.0.0.1:20".parse().unwrap());
    assert_eq!(node.on_received(4, inbound, &from_20), from_20.len());
    let mut bytes = Vec::new();
    node.swap_outgoing(entries[0], &mut bytes);
    let mut seen = Vec::new();
    let mut offset = 0;
    while let Ok(Some(len)) = Native::frame_len(&bytes[offset..]) {
        let frame = &bytes[offset..offset + len];
        offset += len;
        let (what, view) = match Native::peek(frame) {
            Ok(Peek::Lookup(view)) => ("lookup", view),
            Ok(Peek::LookupReply(view)) => ("reply", view),
            _ => continue,
        };
        seen.push((what, view.source(), view.trace().collect::<Vec<_>>()));
    }
    assert_eq!(
        seen,
        [
            ("lookup", 10, vec![]),
            ("lookup", 20, vec![10]),
            ("reply", 20, vec![])
        ]
    );
    assert_eq!(node.counters(), crate::wire::Counters::default());
    // Then the link to 20 dies too: key 15 is 20's, and no live link lies short of it.
    node.on_closed(5, entries[0], CloseReason::SendFailed(LinkError::Reset));
    printed(&mut node);
    node.on_command(6, "lookup 15");
    let lines = printed(&mut node);
    assert!(
        lines.iter().any(|l| l.starts_with("Lookup 15 failed")
            && l.contains("the key's owner, node 20, is down")),
        "{lines:?}"
    );
    node.on_command(7, "lookup 35");
    let lines = printed(&mut node);
    assert!(
        lines.iter().any(|l| l.starts_with("Lookup 35 failed")
            && l.contains("the link to node 30 is down, and no live link leads toward")),
        "{lines:?}"
    );
}

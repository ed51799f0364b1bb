//! Data frames and acks in the native encoding: golden vectors, relays' traces at every slot
//! width, send times, run tags, and frames that lie.

use super::*;

#[test]
fn data_frame_golden_vector() {
    let mut out = Vec::new();
    let len = Native::append_data(&mut out, 97, 82, SHAPE, SENT_NS, &1i32.to_le_bytes());
    #[rustfmt::skip]
    let expected = [
        32, 0, 0, 0,  9, 2, 0, 0,     // len (after itself), kind, trace slots, hops, flags
        97, 0, 0, 0,  82, 0, 0, 0,    // source, sink
        0x79, 0xb8, 0xf8, 0x99,       // CRC32 of the payload
        2, 1, 0, 0,                   // send time (us)
        0, 0, 0, 0,   0, 0, 0, 0,     // trace
        1, 0, 0, 0,                   // payload: the rest of the frame
    ];
    assert_eq!(out, expected);
    assert_eq!(len, expected.len());
    assert_eq!(len, data_frame_bytes(SHAPE));
}

/// The send time (issue 16): microseconds modulo 2^32, read by the sink as one time since its
/// epoch began, or not at all.
#[test]
fn send_times_are_read_within_half_a_microsecond_or_not_at_all() {
    let wrap = SendStamp::WRAP_NS;
    let epoch = 5 * wrap + 123_456_789; // the sink's epoch began here
    // Sent 1.2345 ms after the epoch began, received 25.25 us later: exact within 0.5 us.
    let sent = epoch + 1_234_500;
    let latency = SendStamp::at(sent)
        .latency_ns(sent + 25_250, epoch)
        .unwrap();
    assert!(latency.abs_diff(25_250) <= 500, "{latency}");
    // Across the stamp's wrap (sent just before a multiple of 2^32 us, received after).
    let sent = 6 * wrap - 3_000;
    assert!(sent > epoch);
    let latency = SendStamp::at(sent).latency_ns(sent + 7_000, epoch).unwrap();
    assert!(latency.abs_diff(7_000) <= 500, "{latency}");
    assert!(
        SendStamp::at(sent).0 > SendStamp::at(sent + 7_000).0,
        "the stamp wrapped"
    );
    // Received early in the microsecond it was sent in: at least 1 ns.
    let early = epoch - epoch % 1_000 + 100;
    assert_eq!(SendStamp::at(early).latency_ns(early, epoch), Some(1));
    // Sent 60 minutes after the epoch began and held a minute: still one time.
    let sent = epoch + 3_600_000_000_000;
    let held = 60_000_000_000;
    let latency = SendStamp::at(sent).latency_ns(sent + held, epoch).unwrap();
    assert!(latency.abs_diff(held) <= 500);
    // Once the epoch is older than the wrap, a packet could be a whole wrap older than its
    // stamp says: not read, however fresh it looks.
    let now = epoch + wrap + 1_000_000;
    assert_eq!(SendStamp::at(now - 10_000).latency_ns(now, epoch), None);
    // A stamp naming a time before the epoch began (another machine's clock): not read.
    let now = epoch + 1_000_000_000;
    assert_eq!(SendStamp::at(epoch - 2_000).latency_ns(now, epoch), None);
    // A clock near its start (the stamp's time would be before 0): not read.
    assert_eq!(SendStamp(u32::MAX).latency_ns(10_000, 0), None);
    // A stamp a few microseconds after "now" names the time a wrap earlier, before the
    // epoch: not read. On one machine that is only a "now" read before the packet arrived,
    // which the driver never hands over (tests/driver/stops.rs
    // `bytes_come_with_a_time_no_earlier_than_their_arrival`).
    let now = epoch + 1_000_000_000;
    assert_eq!(SendStamp::at(now + 3_000).latency_ns(now, epoch), None);
}

/// The run tag (issue 12): bits 4-7 of `flags`, written by the source, copied by relays
/// (with the overflow bit beside it), compared by the sink.
#[test]
fn data_frames_carry_their_run_tag_through_relays() {
    let later = DataShape {
        run_tag: 3,
        ..SHAPE
    };
    let mut tagged = Vec::new();
    Native::append_data(&mut tagged, 97, 82, later, SENT_NS, &1i32.to_le_bytes());
    let mut untagged = Vec::new();
    Native::append_data(&mut untagged, 97, 82, SHAPE, SENT_NS, &1i32.to_le_bytes());
    assert_eq!(tagged[7], 0x30, "flags");
    untagged[7] = 0x30;
    assert_eq!(tagged, untagged, "nothing else differs");
    assert!(Native::of_run(&data(&tagged), later));
    assert!(!Native::of_run(&data(&tagged), SHAPE));
    let mut hop1 = Vec::new();
    Native::append_relayed(&data(&tagged), 19, &mut hop1);
    let mut hop2 = Vec::new();
    Native::append_relayed(&data(&hop1), 60, &mut hop2);
    let mut hop3 = Vec::new();
    Native::append_relayed(&data(&hop2), 61, &mut hop3);
    assert_eq!(hop3[7], 0x30 | FLAG_TRACE_OVERFLOW);
    assert!(Native::of_run(&data(&hop3), later));
    assert_eq!(
        Native::check_delivered(&data(&hop3), later),
        Err(Corruption::TraceOverflow { slots: 2 })
    );
    assert_eq!(DataShape::run_tag_of(19), 3);
}

#[test]
fn relays_fill_the_trace_and_the_sink_reads_it() {
    let mut frame = Vec::new();
    Native::append_data(&mut frame, 97, 82, SHAPE, 5_000, &(-7i32).to_le_bytes());
    assert_eq!(data(&frame).sink(), 82);
    assert_eq!(data(&frame).previous_hop(), Some(97));
    let mut hop1 = Vec::new();
    Native::append_relayed(&data(&frame), 19, &mut hop1);
    let mut hop2 = vec![0xAA]; // relays append behind what is queued
    Native::append_relayed(&data(&hop1), 60, &mut hop2);
    let at_sink = data(&hop2[1..]);
    let delivered = Native::check_delivered(&at_sink, SHAPE).unwrap();
    assert_eq!(at_sink.trace().collect::<Vec<_>>(), [19, 60]);
    assert_eq!(at_sink.previous_hop(), Some(60));
    assert_eq!(data(&hop1).trace().collect::<Vec<_>>(), [19]);
    assert_eq!(data(&frame).trace().count(), 0);
    assert_eq!(
        delivered,
        Delivered {
            source: 97,
            value: -7,
            sent: Some(SendStamp(5)),
            relays: 2,
            detoured: false,
        }
    );
    // A third relay has no slot left: flagged, and the sink calls it corrupted.
    let mut hop3 = Vec::new();
    Native::append_relayed(&at_sink, 61, &mut hop3);
    assert_eq!(
        Native::check_delivered(&data(&hop3), SHAPE),
        Err(Corruption::TraceOverflow { slots: 2 })
    );
    assert_eq!(data(&hop3).previous_hop(), None);
    // Unless some node routed it around a dead link: then the sink checks the relays the
    // trace recorded, by the structural rule (`Router::check_route`).
    Native::mark_detoured(&mut hop3);
    assert_eq!(hop3[7], FLAG_TRACE_OVERFLOW | FLAG_DETOURED);
    let detoured = Native::check_delivered(&data(&hop3), SHAPE).unwrap();
    assert_eq!((detoured.relays, detoured.detoured), (2, true));
    // Acks carry no flags: marking leaves them alone.
    let mut ack = Vec::new();
    Native::append_ack(&mut ack, 82, 97, 0, 1);
    let before = ack.clone();
    Native::mark_detoured(&mut ack);
    assert_eq!(ack, before);
}

#[test]
fn a_flipped_payload_bit_fails_the_crc() {
    let mut frame = Vec::new();
    let shape = DataShape {
        trace_slots: 1,
        slot_bytes: 4,
        extra_payload_bytes: 100,
        run_tag: 0,
    };
    let payload: Vec<u8> = (0..104u8).collect();
    Native::append_data(&mut frame, 1, 2, shape, 0, &payload);
    let last = frame.len() - 1;
    frame[last] ^= 0x10;
    assert!(matches!(
        Native::check_delivered(&data(&frame), shape),
        Err(Corruption::Crc { .. })
    ));
}

#[test]
fn inconsistent_data_headers_are_refused_by_peek() {
    let mut frame = Vec::new();
    Native::append_data(&mut frame, 1, 2, SHAPE, 0, &[0; 4]);
    frame[5] = 3; // claims a third trace slot: the value's bytes, leaving no payload
    assert!(Native::peek(&frame).is_err());
    frame[5] = 4; // claims trace slots beyond the frame
    assert!(Native::peek(&frame).is_err());
    frame[5] = 2;
    frame[6] = 3; // more hops than slots
    assert!(Native::peek(&frame).is_err());
    assert!(Native::peek(&frame[..20]).is_err());
}

#[test]
fn acks_roundtrip_and_route_by_sink() {
    let mut out = Vec::new();
    Native::append_ack(&mut out, 3, 9, 4, 123_456);
    assert_eq!(out.len(), ACK_FRAME_BYTES);
    assert_eq!(Native::frame_len(&out), Ok(Some(ACK_FRAME_BYTES)));
    let Ok(Peek::Ack(ack)) = Native::peek(&out) else {
        panic!("not an ack: {:?}", Native::peek(&out));
    };
    assert_eq!(ack.bytes(), out);
    assert_eq!(
        (ack.source(), ack.sink(), ack.epoch(), ack.acked_bytes()),
        (3, 9, 4, 123_456)
    );
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(Some(len)) = Native::frame_len(&bytes) {
            let frame = &bytes[..len];
            if let Ok(peek) = Native::peek(frame) {
                match peek {
                    Peek::Control => { let _ = Native::decode_control(frame); }
                    Peek::Data(data) => {
                        let mut out = Vec::new();
                        Native::append_relayed(&data, 1, &mut out);
                        prop_assert!(Native::peek(&out).is_ok(), "a relayed frame still peeks");
                        let _ = Native::check_delivered(&data, SHAPE);
                        let _ = data.previous_hop();
                        let _ = data.trace().count();
                    }
                    Peek::Keyed(keyed) => {
                        let mut out = Vec::new();
                        Native::append_relayed(&keyed, 1, &mut out);
                        prop_assert!(
                            matches!(Native::peek(&out), Ok(Peek::Keyed(_))),
                            "a relayed keyed frame still peeks"
                        );
                        prop_assert!((1..=ID_BYTES).contains(&Native::key(&keyed).len()));
                        let _ = Native::check_keyed_delivered(&keyed, SHAPE);
                    }
                    Peek::Lookup(lookup) => {
                        let mut reply = Vec::new();
                        let owner: SocketAddr = "[::1]:7".parse().unwrap();
                        Native::append_lookup_reply(&mut reply, &lookup, 3, owner);
                        let Ok(Peek::LookupReply(reply)) = Native::peek(&reply) else {
                            panic!("a lookup's reply peeks");
                        };
                        prop_assert_eq!(Native::lookup_reply(&reply).1, owner);
                    }
                    Peek::LookupReply(reply) => {
                        let _ = Native::lookup_reply(&reply);
                    }
                    Peek::Ack(ack) => prop_assert_eq!(ack.bytes().len(), ACK_FRAME_BYTES),
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn crc32_is_crc32fast(payload in proptest::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(crc32(&payload), crc32fast::hash(&payload));
    }
}

proptest! {
    /// Origination's copy of one frame per batch, with the sink, value and CRC set per packet,
    /// is byte for byte the frame built for that packet.
    #[test]
    fn a_batch_frame_set_for_a_packet_is_the_packets_frame(
        sink in any::<u32>(),
        value in any::<[u8; 4]>(),
        trace_slots in 1usize..=16,
        slot_bytes in prop_oneof![Just(1usize), Just(2), Just(4)],
        extra in proptest::collection::vec(any::<u8>(), 0..64),
        send_time in any::<u64>(),
        run_tag in 0..crate::wire::RUN_TAGS as u8,
    ) {
        let shape = DataShape { trace_slots, slot_bytes, extra_payload_bytes: extra.len(), run_tag };
        let payload = |value: [u8; 4]| [&value[..], &extra[..]].concat();
        let mut direct = Vec::new();
        Native::append_data(&mut direct, 7, sink, shape, send_time, &payload(value));
        let mut copied = Vec::new();
        Native::append_data(&mut copied, 7, 9, shape, send_time, &payload([1, 2, 3, 4]));
        Native::set_originated(&mut copied, shape, sink, value, crc32(&payload(value)));
        prop_assert_eq!(copied, direct);
    }
}

/// Trace slots as wide as the ID space (issue 16): the flags' bits 2..=3 say the width (0 = 4
/// bytes, 1 = 1 byte, 2 = 2 bytes), a relay writes its ID's low bytes, the trace is read by
/// width.
#[test]
fn data_frame_golden_vectors_with_1_and_2_byte_slots() {
    let one = DataShape {
        slot_bytes: 1,
        ..SHAPE
    };
    let mut out = Vec::new();
    let len = Native::append_data(&mut out, 97, 82, one, SENT_NS, &1i32.to_le_bytes());
    #[rustfmt::skip]
    let expected = [
        26, 0, 0, 0,  9, 2, 0, 0x04,  // len (after itself), kind, trace slots, hops, flags
        97, 0, 0, 0,  82, 0, 0, 0,    // source, sink
        0x79, 0xb8, 0xf8, 0x99,       // CRC32 of the payload
        2, 1, 0, 0,                   // send time (us)
        0, 0,                         // trace: two 1-byte slots
        1, 0, 0, 0,                   // payload
    ];
    assert_eq!(out, expected);
    assert_eq!((len, data_frame_bytes(one)), (30, 30));
    let mut hop1 = Vec::new();
    Native::append_relayed(&data(&out), 119, &mut hop1);
    assert_eq!(&hop1[5..8], [2, 1, 0x04], "slots, hops, flags");
    assert_eq!(&hop1[24..26], [119, 0]);
    let at_sink = data(&hop1);
    assert_eq!(at_sink.slot_bytes(), 1);
    assert_eq!(at_sink.trace().collect::<Vec<_>>(), [119]);
    assert_eq!(at_sink.previous_hop(), Some(119));
    assert_eq!(Native::relayed_head(&at_sink), Some(26));
    let delivered = Native::check_delivered(&at_sink, one).unwrap();
    assert_eq!((delivered.value, delivered.relays), (1, 1));

    let two = DataShape {
        slot_bytes: 2,
        ..SHAPE
    };
    let mut out = Vec::new();
    Native::append_data(&mut out, 97, 82, two, SENT_NS, &1i32.to_le_bytes());
    #[rustfmt::skip]
    let expected = [
        28, 0, 0, 0,  9, 2, 0, 0x08,  // len (after itself), kind, trace slots, hops, flags
        97, 0, 0, 0,  82, 0, 0, 0,    // source, sink
        0x79, 0xb8, 0xf8, 0x99,       // CRC32 of the payload
        2, 1, 0, 0,                   // send time (us)
        0, 0,   0, 0,                 // trace: two 2-byte slots
        1, 0, 0, 0,                   // payload
    ];
    assert_eq!(out, expected);
    assert_eq!(data_frame_bytes(two), 32);
    let mut hop1 = Vec::new();
    Native::append_relayed(&data(&out), 0x1234, &mut hop1);
    let mut hop2 = Vec::new();
    Native::append_relayed(&data(&hop1), 0xfffe, &mut hop2);
    assert_eq!(
        &hop2[24..28],
        [0x34, 0x12, 0xfe, 0xff],
        "little-endian, as 4-byte slots"
    );
    let at_sink = data(&hop2);
    assert_eq!(at_sink.trace().collect::<Vec<_>>(), [0x1234, 0xfffe]);
    assert_eq!(at_sink.previous_hop(), Some(0xfffe));
    assert_eq!(Native::check_delivered(&at_sink, two).unwrap().relays, 2);
    // A third relay overflows, at any width.
    let mut hop3 = Vec::new();
    Native::append_relayed(&at_sink, 7, &mut hop3);
    assert_eq!(hop3[7], 0x08 | FLAG_TRACE_OVERFLOW);
    assert_eq!(&hop3[24..28], [0x34, 0x12, 0xfe, 0xff]);
}

/// Hostile width bits: the value that names no width (3), a width that would put the trace
/// past the frame, a width other than the overlay's: refused with a clear error, never a
/// panic.
#[test]
fn frames_whose_width_bits_lie_are_refused() {
    let one = DataShape {
        slot_bytes: 1,
        ..SHAPE
    };
    let width_bits = |frame: &[u8], code: u8| {
        let mut frame = frame.to_vec();
        frame[7] = frame[7] & !SLOT_WIDTH_MASK | code << SLOT_WIDTH_SHIFT;
        frame
    };
    let mut narrow = Vec::new();
    Native::append_data(&mut narrow, 97, 82, one, 0, &1i32.to_le_bytes());
    // No width: refused, saying so.
    let Err(WireError::BadField { what, detail }) = Native::peek(&width_bits(&narrow, 3)) else {
        panic!("width bits 3 are no width");
    };
    assert_eq!(what, "data header");
    assert!(detail.contains("no width (width bits 3)"), "{detail}");
    // 30 bytes cannot hold 2 slots of 2 or 4 bytes and the value.
    for code in [0, 2] {
        assert!(matches!(
            Native::peek(&width_bits(&narrow, code)),
            Err(WireError::BadField {
                what: "data header",
                ..
            })
        ));
    }
    // A 4-byte frame that says 1: its trace fits, so `peek` takes it; the sink of a 4-byte
    // overlay refuses it for its width, as for other trace slots.
    let mut wide = Vec::new();
    Native::append_data(&mut wide, 97, 82, SHAPE, 0, &1i32.to_le_bytes());
    let lying = width_bits(&wide, 1);
    let view = data(&lying);
    assert_eq!((view.slot_bytes(), view.trace_slots()), (1, 2));
    assert_eq!(
        Native::check_delivered(&view, SHAPE),
        Err(Corruption::Header(
            "2 trace slots of 1 bytes, this overlay uses 2 of 4".into()
        ))
    );
    assert!(matches!(
        Native::check_delivered(&view, one),
        Err(Corruption::Crc { .. })
    ));
    // A 1-byte frame at a 2-byte overlay's sink.
    let two = DataShape {
        slot_bytes: 2,
        ..SHAPE
    };
    assert!(matches!(
        Native::check_delivered(&data(&narrow), two),
        Err(Corruption::Header(_))
    ));
    // Keyed frames, lookups and replies: width bits 3 refused too.
    let mut keyed_frame = Vec::new();
    let payload = 1i32.to_le_bytes();
    Native::append_keyed_with_crc(
        &mut keyed_frame,
        97,
        &[1],
        one,
        0,
        &payload,
        crc32(&payload),
    );
    assert!(Native::peek(&width_bits(&keyed_frame, 3)).is_err());
    let mut lookup = Vec::new();
    Native::append_lookup(&mut lookup, 97, &[1], one, 7, 0);
    assert!(Native::peek(&width_bits(&lookup, 3)).is_err());
    let Ok(Peek::Lookup(view)) = Native::peek(&lookup) else {
        panic!("a lookup");
    };
    let mut reply = Vec::new();
    Native::append_lookup_reply(&mut reply, &view, 60, "127.0.0.1:9".parse().unwrap());
    assert!(Native::peek(&reply).is_ok());
    assert!(Native::peek(&width_bits(&reply, 3)).is_err());
    assert!(
        Native::peek(&width_bits(&reply, 0)).is_err(),
        "trace past the frame"
    );
}

proptest! {
    /// At every width, a frame relayed by IDs that fit its slots carries them in order to a
    /// sink of the same width, and is refused by a sink of any other; its width bits set to
    /// any value are refused or read within the frame, never a panic.
    #[test]
    fn traces_of_every_width_carry_their_relays(
        slot_bytes in prop_oneof![Just(1usize), Just(2), Just(4)],
        trace_slots in 1usize..=TRACE_SLOTS_MAX,
        relays in proptest::collection::vec(any::<u32>(), 0..=8),
        extra in proptest::collection::vec(any::<u8>(), 0..16),
        code in 0u8..4,
    ) {
        let shape = DataShape { trace_slots, slot_bytes, extra_payload_bytes: extra.len(), run_tag: 0 };
        let bits = 8 * slot_bytes as u32;
        let relays: Vec<u32> = relays
            .into_iter()
            .map(|id| if bits >= 32 { id } else { id & ((1 << bits) - 1) })
            .collect();
        let payload = [&5i32.to_le_bytes()[..], &extra[..]].concat();
        let mut frame = Vec::new();
        Native::append_data(&mut frame, 1, 2, shape, 0, &payload);
        prop_assert_eq!(frame.len(), data_frame_bytes(shape));
        for &relay in &relays {
            let mut next = Vec::new();
            Native::append_relayed(&data(&frame), relay, &mut next);
            frame = next;
        }
        let view = data(&frame);
        let recorded = relays.len().min(trace_slots);
        prop_assert_eq!(view.trace().collect::<Vec<_>>(), relays[..recorded].to_vec());
        prop_assert_eq!(view.overflowed(), relays.len() > trace_slots);
        if relays.len() <= trace_slots {
            prop_assert_eq!(Native::check_delivered(&view, shape).map(|d| d.relays), Ok(recorded));
        }
        for other in [1usize, 2, 4].into_iter().filter(|&w| w != slot_bytes) {
            let other = DataShape { slot_bytes: other, ..shape };
            prop_assert!(Native::check_delivered(&view, other).is_err());
        }
        let mut lying = frame.clone();
        lying[7] = lying[7] & !SLOT_WIDTH_MASK | code << SLOT_WIDTH_SHIFT;
        if let Ok(Peek::Data(view)) = Native::peek(&lying) {
            prop_assert!(code != 3);
            prop_assert!(24 + view.slot_bytes() * view.trace_slots() + 4 <= lying.len());
            let _ = view.trace().count();
            let _ = view.previous_hop();
            let _ = Native::check_delivered(&view, shape);
            let mut relayed = Vec::new();
            Native::append_relayed(&view, 3, &mut relayed);
            prop_assert!(Native::peek(&relayed).is_ok());
        } else {
            prop_assert!(code != (frame[7] & SLOT_WIDTH_MASK) >> SLOT_WIDTH_SHIFT);
        }
    }
}

/// The receive loop's look ahead names the source only of a data frame for the given sink
/// whose header is all there: not of a frame for another node, an ack, or a cut header.
#[test]
fn the_look_ahead_names_a_data_frames_source_only_at_its_sink() {
    let mut frame = Vec::new();
    Native::append_data(&mut frame, 97, 82, SHAPE, SENT_NS, &1i32.to_le_bytes());
    assert_eq!(Native::source_if_for(&frame, 82), Some(97));
    assert_eq!(Native::source_if_for(&frame, 97), None);
    assert_eq!(
        Native::source_if_for(&frame[..DATA_HEADER_BYTES - 1], 82),
        None
    );
    assert_eq!(Native::source_if_for(&[], 82), None);
    let mut ack = Vec::new();
    Native::append_ack(&mut ack, 97, 82, 0, 1);
    assert_eq!(Native::source_if_for(&ack, 82), None);
    assert_eq!(Native::source_if_for(&ack, 97), None);
}

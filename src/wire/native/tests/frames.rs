//! Data frames, keyed frames, lookups and acks in the native encoding: golden vectors, relays'
//! traces at every slot width, send times, run tags, and frames that lie.

use super::*;

const SHAPE: DataShape = DataShape {
    trace_slots: 2,
    slot_bytes: 4,
    extra_payload_bytes: 0,
    run_tag: 0,
};

/// The golden vectors' send time: 0x0102 microseconds (and 999 ns the stamp drops).
const SENT_NS: u64 = 0x0102 * 1_000 + 999;

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
    // which the driver never hands over (tests/driver.rs
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
fn task_initiate_golden_vector_and_key_bits() {
    let task = Control::TaskInitiate {
        run: 1,
        packets: 2,
        extra_payload_bytes: 0,
        rate_per_s: 0,
        targets: Targets::Keys { bits: 7 },
    };
    #[rustfmt::skip]
    let expected = [
        22, 0, 0, 0,  8,              // len, type
        1, 0, 0, 0,                   // run
        2, 0, 0, 0, 0, 0, 0, 0,       // packets
        0, 0, 0, 0,   0, 0, 0, 0,     // extra payload bytes, rate
        7,                            // key bits (0: node-addressed)
    ];
    assert_eq!(encode(&task), expected);
    assert_eq!(Native::decode_control(&expected), Ok(task));
    let mut wide = expected;
    wide[25] = 161;
    assert!(matches!(
        Native::decode_control(&wide),
        Err(WireError::BadField {
            what: "task key bits",
            ..
        })
    ));
}

/// The view of a frame `peek` must accept as keyed data.
fn keyed(frame: &[u8]) -> DataFrame<'_, Native> {
    match Native::peek(frame) {
        Ok(Peek::Keyed(keyed)) => keyed,
        other => panic!("not a keyed frame: {other:?}"),
    }
}

#[test]
fn keyed_frame_golden_vector() {
    let mut out = Vec::new();
    let key = [0x12, 0x34, 0x56];
    let len =
        Native::append_keyed_with_crc(&mut out, 97, &key, SHAPE, SENT_NS, &1i32.to_le_bytes(), {
            crc32(&1i32.to_le_bytes())
        });
    #[rustfmt::skip]
    let expected = [
        35, 0, 0, 0,  18, 2, 0, 0,    // len (after itself), kind, trace slots, hops, flags
        97, 0, 0, 0,  3, 0, 0, 0,     // source, the key's width (no sink: routed by the key)
        0x79, 0xb8, 0xf8, 0x99,       // CRC32 of the payload
        2, 1, 0, 0,                   // send time (us)
        0, 0, 0, 0,   0, 0, 0, 0,     // trace
        0x12, 0x34, 0x56,             // key, big-endian (here 24 bits wide)
        1, 0, 0, 0,                   // payload
    ];
    assert_eq!(out, expected);
    assert_eq!(len, expected.len());
    let at_source = keyed(&out);
    assert_eq!(Native::key(&at_source), key);
    assert_eq!(at_source.previous_hop(), Some(97));
    // Relayed as a node-addressed frame is (the trace gains the relay); the owner's checks.
    let mut hop1 = Vec::new();
    Native::append_relayed(&at_source, 19, &mut hop1);
    let mut hop2 = Vec::new();
    Native::append_relayed(&keyed(&hop1), 60, &mut hop2);
    let at_owner = keyed(&hop2);
    assert_eq!(Native::key(&at_owner), key);
    assert_eq!(at_owner.trace().collect::<Vec<_>>(), [19, 60]);
    assert_eq!(
        Native::check_keyed_delivered(&at_owner, SHAPE),
        Ok(Delivered {
            source: 97,
            value: 1,
            sent: Some(SendStamp(0x0102)),
            relays: 2,
            detoured: false,
        })
    );
    // A third relay overflows the trace: corrupted at the owner, as a node-addressed frame
    // is, unless a node routed it around a dead link (marked as a node-addressed one is).
    let mut hop3 = Vec::new();
    Native::append_relayed(&at_owner, 61, &mut hop3);
    assert_eq!(
        Native::check_keyed_delivered(&keyed(&hop3), SHAPE),
        Err(Corruption::TraceOverflow { slots: 2 })
    );
    Native::mark_detoured(&mut hop3);
    assert_eq!(hop3[7], FLAG_TRACE_OVERFLOW | FLAG_DETOURED);
    let detoured = Native::check_keyed_delivered(&keyed(&hop3), SHAPE).unwrap();
    assert_eq!((detoured.relays, detoured.detoured), (2, true));
    assert_eq!(Native::key(&keyed(&hop3)), key);
    let last = hop2.len() - 1;
    hop2[last] ^= 1;
    assert!(matches!(
        Native::check_keyed_delivered(&keyed(&hop2), SHAPE),
        Err(Corruption::Crc { .. })
    ));
}

#[test]
fn lookup_and_reply_golden_vectors() {
    let mut lookup = Vec::new();
    Native::append_lookup(&mut lookup, 97, &[0x12, 0x34], SHAPE, 7, SENT_NS);
    #[rustfmt::skip]
    let expected = [
        34, 0, 0, 0,  19, 2, 0, 0,    // len, kind (lookup), trace slots, hops, flags
        97, 0, 0, 0,  2, 0, 0, 0,     // source (the asker), the key's width
        0xa5, 0xe7, 0x93, 0xbc,       // CRC32 of the payload
        2, 1, 0, 0,                   // send time (us)
        0, 0, 0, 0,   0, 0, 0, 0,     // trace
        0x12, 0x34,                   // key
        7, 0, 0, 0,                   // the asker's lookup number
    ];
    assert_eq!(lookup, expected);
    let Ok(Peek::Lookup(view)) = Native::peek(&lookup) else {
        panic!("a lookup: {:?}", Native::peek(&lookup));
    };
    assert_eq!(Native::key(&view), [0x12, 0x34]);
    // Relayed by 19 (its trace gains the relay), answered by 60 at 10.0.0.1:4000.
    let mut relayed = Vec::new();
    Native::append_relayed(&view, 19, &mut relayed);
    let Ok(Peek::Lookup(at_owner)) = Native::peek(&relayed) else {
        panic!("a relayed lookup");
    };
    let mut reply = Vec::new();
    Native::append_lookup_reply(&mut reply, &at_owner, 60, "10.0.0.1:4000".parse().unwrap());
    #[rustfmt::skip]
    let expected = [
        38, 0, 0, 0,  20, 2, 1, 0,    // len, kind (reply), trace slots, hops (the lookup's), flags
        60, 0, 0, 0,  97, 0, 0, 0,    // source (the owner), sink (the asker)
        0xc2, 0x25, 0xa0, 0x82,       // CRC32 of the payload
        2, 1, 0, 0,                   // the lookup's send time
        19, 0, 0, 0,  0, 0, 0, 0,     // the lookup's trace
        7, 0, 0, 0,  0xa0, 0x0f,      // number, the owner's port
        10, 0, 0, 1,                  // the owner's address
    ];
    assert_eq!(reply, expected);
    let Ok(Peek::LookupReply(view)) = Native::peek(&reply) else {
        panic!("a lookup reply: {:?}", Native::peek(&reply));
    };
    assert_eq!((view.source(), view.sink()), (60, 97));
    assert_eq!(view.trace().collect::<Vec<_>>(), [19]);
    assert_eq!(
        Native::lookup_reply(&view),
        (7, "10.0.0.1:4000".parse().unwrap())
    );
    // A lookup's payload is its number alone; a reply's a number, a port and an address.
    let mut long = lookup.clone();
    long.push(0);
    long[0] += 1;
    assert!(Native::peek(&long).is_err());
    let mut short = reply.clone();
    short.truncate(short.len() - 1);
    short[0] -= 1;
    assert!(Native::peek(&short).is_err());
}

#[test]
fn lookup_messages_roundtrip() {
    roundtrip(Control::Lookup {
        number: 3,
        key: "hello".into(),
    });
    roundtrip(Control::LookupResult {
        number: 3,
        result: Ok(LookupAnswer {
            key: "2cf24dba".into(),
            owner: 97,
            path: vec![10, 19, 97],
            round_trip_ns: 123_456,
        }),
    });
    roundtrip(Control::LookupResult {
        number: 4,
        result: Err("no reply within 5 s".into()),
    });
    let mut too_long = encode(&Control::LookupResult {
        number: 3,
        result: Ok(LookupAnswer {
            key: "1".into(),
            owner: 1,
            path: vec![],
            round_trip_ns: 0,
        }),
    });
    too_long[4 + 1 + 4 + 1 + 2 + 4] = 67; // a path of 67 nodes: more than a trace holds
    assert!(matches!(
        Native::decode_control(&too_long),
        Err(WireError::BadField {
            what: "lookup path",
            ..
        })
    ));
}

#[test]
fn keyed_frames_need_a_key_of_1_to_20_bytes_within_the_frame() {
    let payload = [0; 4];
    let crc = crc32(&payload);
    for width in [1, 4, 20] {
        let mut frame = Vec::new();
        Native::append_keyed_with_crc(&mut frame, 1, &vec![7; width], SHAPE, 0, &payload, crc);
        assert_eq!(Native::key(&keyed(&frame)).len(), width);
    }
    let mut frame = Vec::new();
    Native::append_keyed_with_crc(&mut frame, 1, &[7; 20], SHAPE, 0, &payload, crc);
    // A key of 21 bytes between trace and payload: no key is that wide.
    let mut wide = frame.clone();
    wide.insert(DATA_HEADER_BYTES + 8, 0);
    wide[0] += 1;
    wide[KEY_BYTES_AT] = 21;
    assert!(matches!(
        Native::peek(&wide),
        Err(WireError::BadField { .. })
    ));
    // No key at all: the payload follows the trace.
    let mut none = Vec::new();
    Native::append_data(&mut none, 1, 0, SHAPE, 0, &payload);
    none[PREFIX_BYTES] = kind::KEYED_DATA;
    assert!(Native::peek(&none).is_err());
    // A key wider than what the frame has after its trace.
    let mut short = Vec::new();
    Native::append_keyed_with_crc(&mut short, 1, &[7], SHAPE, 0, &payload, crc);
    assert!(Native::peek(&short).is_ok());
    short[KEY_BYTES_AT] = 6;
    assert!(Native::peek(&short).is_err());
    // A lookup's payload is its 4-byte number: a key that leaves it 3 bytes is refused.
    let mut lookup = Vec::new();
    Native::append_lookup(&mut lookup, 1, &[7, 7], SHAPE, 9, 0);
    lookup[KEY_BYTES_AT] = 3;
    assert!(Native::peek(&lookup).is_err());
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

/// Keyed frames, lookups and their replies carry the width too; a reply keeps its lookup's.
#[test]
fn keyed_frames_and_lookups_with_1_byte_slots() {
    let one = DataShape {
        slot_bytes: 1,
        ..SHAPE
    };
    let key = [0x12, 0x34];
    let mut out = Vec::new();
    let payload = 1i32.to_le_bytes();
    let len = Native::append_keyed_with_crc(&mut out, 97, &key, one, 0, &payload, crc32(&payload));
    assert_eq!(len, 24 + 2 + 2 + 4);
    let mut hop1 = Vec::new();
    Native::append_relayed(&keyed(&out), 19, &mut hop1);
    let at_owner = keyed(&hop1);
    assert_eq!(Native::key(&at_owner), key);
    assert_eq!(at_owner.trace().collect::<Vec<_>>(), [19]);
    assert_eq!(
        Native::check_keyed_delivered(&at_owner, one)
            .unwrap()
            .relays,
        1
    );
    assert!(matches!(
        Native::check_keyed_delivered(&at_owner, SHAPE),
        Err(Corruption::Header(_))
    ));

    let mut lookup = Vec::new();
    Native::append_lookup(&mut lookup, 97, &key, one, 7, 0);
    let mut relayed = Vec::new();
    let Ok(Peek::Lookup(view)) = Native::peek(&lookup) else {
        panic!("a lookup");
    };
    Native::append_relayed(&view, 19, &mut relayed);
    let Ok(Peek::Lookup(view)) = Native::peek(&relayed) else {
        panic!("a relayed lookup");
    };
    let mut reply = Vec::new();
    Native::append_lookup_reply(&mut reply, &view, 60, "127.0.0.1:9".parse().unwrap());
    let Ok(Peek::LookupReply(reply)) = Native::peek(&reply) else {
        panic!("a reply");
    };
    assert_eq!(reply.slot_bytes(), 1);
    assert_eq!(reply.trace().collect::<Vec<_>>(), [19]);
    assert_eq!(Native::lookup_reply(&reply).0, 7);
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

/// The manifest's slot width: 1, 2 or 4, anything else refused.
#[test]
fn manifests_carry_a_slot_width_of_1_2_or_4_bytes() {
    let addr: SocketAddr = "10.0.0.1:4000".parse().unwrap();
    let manifest = |trace_slot_bytes| Manifest {
        entries: vec![ManifestEntry { id: 19, addr }],
        all_ids: vec![4, 19].into(),
        chord: None,
        trace_slots: 2,
        trace_slot_bytes,
        window_bytes: 1 << 20,
        backups: Vec::new(),
        epoch: 0,
    };
    for width in [1, 2, 4] {
        let bytes = encode(&Control::Manifest(manifest(width)));
        // len, kind, entry count, trace slots, then the width.
        assert_eq!(bytes[4..8], [kind::MANIFEST, 1, 2, width]);
        roundtrip(Control::Manifest(manifest(width)));
    }
    for width in [0, 3, 8] {
        let mut bytes = encode(&Control::Manifest(manifest(1)));
        bytes[7] = width;
        assert!(matches!(
            Native::decode_control(&bytes),
            Err(WireError::BadField {
                what: "manifest trace slot bytes",
                ..
            })
        ));
    }
    assert_eq!(
        [1, 7, 8, 9, 16, 17, 24, 32].map(crate::wire::slot_bytes_for),
        [1, 1, 1, 2, 2, 4, 4, 4]
    );
    assert!(crate::wire::fits_slot(255, 1) && !crate::wire::fits_slot(256, 1));
    assert!(crate::wire::fits_slot(65_535, 2) && !crate::wire::fits_slot(65_536, 2));
    assert!(crate::wire::fits_slot(u32::MAX, 4));
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

//! Keyed frames, lookups and their replies in the native encoding: golden vectors, the key's
//! bounds, and the trace's width.

use super::*;

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

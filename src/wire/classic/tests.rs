//! Golden vectors written by hand from the reference's table (docs/PROTOCOL.md, "Classic
//! encoding"), not produced by this codec, each checked in both directions: encoding the
//! message gives the bytes, decoding the bytes gives the message.

use super::*;
use proptest::prelude::*;

/// The view of a frame `peek` must accept as data.
fn data(frame: &[u8]) -> DataFrame<'_, Classic> {
    match Classic::peek(frame) {
        Ok(Peek::Data(data)) => data,
        other => panic!("not a data frame: {other:?}"),
    }
}

fn encode(message: &Control) -> Vec<u8> {
    let mut out = Vec::new();
    Classic::encode_control(message, &mut out);
    out
}

/// Both directions, and the framing functions agree with the bytes.
fn golden(message: Control, bytes: &[u8]) {
    assert_eq!(encode(&message), bytes, "encoding {message:?}");
    assert_eq!(Classic::frame_len(bytes), Ok(Some(bytes.len())));
    assert_eq!(Classic::frame_len(&bytes[..bytes.len() - 1]), Ok(None));
    assert_eq!(Classic::peek(bytes), Ok(Peek::Control));
    assert_eq!(Classic::decode_control(bytes), Ok(message));
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn registration_is_the_reference_example() {
    #[rustfmt::skip]
    golden(
        Control::Register { addr: addr("127.0.0.1:43765"), group: None },
        &[0x00, 0x00, 0x00, 0x0A, 0x02, 0x04, 0x7F, 0x00, 0x00, 0x01, 0x00, 0x00, 0xAA, 0xF5],
    );
}

#[test]
fn registration_status() {
    #[rustfmt::skip]
    golden(
        Control::RegisterStatus { status: Status::Ok(97), info: "ok".into() },
        &[0, 0, 0, 8,  3,  0, 0, 0, 0x61,  2, b'o', b'k'],
    );
    #[rustfmt::skip]
    golden(
        Control::RegisterStatus { status: Status::Failed, info: String::new() },
        &[0, 0, 0, 6,  3,  0xFF, 0xFF, 0xFF, 0xFF,  0],
    );
}

#[test]
fn deregistration_and_its_status() {
    #[rustfmt::skip]
    golden(
        Control::Deregister { addr: addr("127.0.0.1:43765"), id: 97 },
        &[0, 0, 0, 0x0E,  4,  4, 0x7F, 0, 0, 1,  0, 0, 0xAA, 0xF5,  0, 0, 0, 0x61],
    );
    #[rustfmt::skip]
    golden(
        Control::DeregisterStatus { status: Status::Ok(97), info: "bye".into() },
        &[0, 0, 0, 9,  5,  0, 0, 0, 0x61,  3, b'b', b'y', b'e'],
    );
    #[rustfmt::skip]
    golden(
        Control::DeregisterStatus { status: Status::Failed, info: "no".into() },
        &[0, 0, 0, 8,  5,  0xFF, 0xFF, 0xFF, 0xFF,  2, b'n', b'o'],
    );
}

/// Node 97 of example B (docs/PROTOCOL.md, "The ring and the routing rule"): table 119, 4, 19.
#[test]
fn manifest() {
    let manifest = Manifest {
        entries: vec![
            ManifestEntry {
                id: 119,
                addr: addr("10.0.0.1:5000"),
            },
            ManifestEntry {
                id: 4,
                addr: addr("10.0.0.2:5001"),
            },
            ManifestEntry {
                id: 19,
                addr: addr("10.0.0.3:5002"),
            },
        ],
        all_ids: vec![4, 18, 19, 33, 60, 82, 97, 119].into(),
        chord: None,
        trace_slots: 0,
        trace_slot_bytes: 4,
        window_bytes: 0,
        backups: Vec::new(),
        epoch: 0,
    };
    #[rustfmt::skip]
    let bytes = [
        0, 0, 0, 0x4A,  6,  3,
        0, 0, 0, 0x77,  4, 10, 0, 0, 1,  0, 0, 0x13, 0x88,
        0, 0, 0, 0x04,  4, 10, 0, 0, 2,  0, 0, 0x13, 0x89,
        0, 0, 0, 0x13,  4, 10, 0, 0, 3,  0, 0, 0x13, 0x8A,
        8,
        0, 0, 0, 4,  0, 0, 0, 0x12,  0, 0, 0, 0x13,  0, 0, 0, 0x21,
        0, 0, 0, 0x3C,  0, 0, 0, 0x52,  0, 0, 0, 0x61,  0, 0, 0, 0x77,
    ];
    golden(Control::Manifest(manifest.clone()), &bytes);
    // The native-only fields are not on the wire.
    let native_fields = Manifest {
        trace_slots: 5,
        trace_slot_bytes: 2,
        window_bytes: 1 << 20,
        backups: Vec::new(),
        epoch: 0,
        ..manifest
    };
    assert_eq!(encode(&Control::Manifest(native_fields)), bytes);
}

#[test]
fn setup_status() {
    #[rustfmt::skip]
    golden(
        Control::SetupStatus { status: Status::Ok(97), info: String::new() },
        &[0, 0, 0, 6,  7,  0, 0, 0, 0x61,  0],
    );
    #[rustfmt::skip]
    golden(
        Control::SetupStatus { status: Status::Failed, info: "x".into() },
        &[0, 0, 0, 7,  7,  0xFF, 0xFF, 0xFF, 0xFF,  1, b'x'],
    );
}

#[test]
fn task_initiate() {
    let bytes = [0, 0, 0, 5, 8, 0x00, 0x01, 0x86, 0xA0];
    golden(
        Control::TaskInitiate {
            run: 0,
            packets: 100_000,
            extra_payload_bytes: 0,
            rate_per_s: 0,
            targets: Targets::Nodes,
        },
        &bytes,
    );
    // The run number is ours; it is not sent.
    let numbered = Control::TaskInitiate {
        run: 7,
        packets: 100_000,
        extra_payload_bytes: 0,
        rate_per_s: 0,
        targets: Targets::Nodes,
    };
    assert_eq!(encode(&numbered), bytes);
}

#[test]
fn task_finished() {
    #[rustfmt::skip]
    golden(
        Control::TaskFinished { addr: addr("127.0.0.1:43765"), id: 97 },
        &[0, 0, 0, 0x0E,  10,  4, 0x7F, 0, 0, 1,  0, 0, 0xAA, 0xF5,  0, 0, 0, 0x61],
    );
}

#[test]
fn summary_request_is_always_final() {
    golden(
        Control::SummaryRequest {
            reset: true,
            links: false,
        },
        &[0, 0, 0, 1, 11],
    );
}

/// Field order: id, sent, relayed, sum sent, received, sum received.
#[test]
fn traffic_summary() {
    let message = Control::Summary {
        id: 97,
        reset: true,
        counters: Counters {
            sent: 3,
            received: 4,
            relayed: 5,
            sum_sent: -2,
            sum_received: 0x0102_0304_0506_0708,
            corrupted: 0,
            dropped: 0,
            ..Counters::default()
        },
        stats: None,
        links: vec![],
    };
    #[rustfmt::skip]
    golden(message, &[
        0, 0, 0, 0x21,  12,
        0, 0, 0, 0x61,                                   // id 97
        0, 0, 0, 3,                                      // sent
        0, 0, 0, 5,                                      // relayed
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,  // sum sent -2
        0, 0, 0, 4,                                      // received
        1, 2, 3, 4, 5, 6, 7, 8,                          // sum received
    ]);
}

#[test]
fn data_packet_grows_by_one_id_per_relay() {
    // Example B of docs/PROTOCOL.md: 97 -> 82 goes 97 -> 19 -> 60 -> 82, value 1.
    let mut frame = Vec::new();
    let shape = DataShape::default();
    let len = Classic::append_data(&mut frame, 97, 82, shape, 123, &1i32.to_le_bytes());
    #[rustfmt::skip]
    let at_source = [
        0, 0, 0, 0x11,  9,
        0, 0, 0, 0x52,  // sink 82
        0, 0, 0, 0x61,  // source 97
        0, 0, 0, 1,     // payload
        0, 0, 0, 0,     // trace_len
    ];
    assert_eq!(frame, at_source);
    assert_eq!(len, at_source.len());
    assert_eq!(Classic::frame_len(&frame), Ok(Some(frame.len())));
    assert_eq!(data(&frame).sink(), 82);
    assert_eq!(data(&frame).previous_hop(), Some(97));

    let mut hop1 = Vec::new();
    Classic::append_relayed(&data(&frame), 19, &mut hop1);
    let mut hop2 = vec![0xAA]; // relays append behind what is queued
    Classic::append_relayed(&data(&hop1), 60, &mut hop2);
    #[rustfmt::skip]
    let at_sink = [
        0, 0, 0, 0x19,  9,
        0, 0, 0, 0x52,
        0, 0, 0, 0x61,
        0, 0, 0, 1,
        0, 0, 0, 2,                  // trace_len
        0, 0, 0, 0x13,  0, 0, 0, 0x3C, // 19, 60
    ];
    assert_eq!(&hop2[1..], at_sink);
    let at_sink = data(&at_sink);
    assert_eq!(at_sink.sink(), 82);
    let delivered = Classic::check_delivered(&at_sink, shape).unwrap();
    assert_eq!(at_sink.trace().collect::<Vec<_>>(), [19, 60]);
    assert_eq!(at_sink.previous_hop(), Some(60));
    assert_eq!(
        delivered,
        Delivered {
            source: 97,
            value: 1,
            sent: None,
            relays: 2,
            detoured: false,
        }
    );
}

#[test]
fn negative_payloads_are_big_endian_twos_complement() {
    let mut frame = Vec::new();
    Classic::append_data(
        &mut frame,
        1,
        2,
        DataShape::default(),
        0,
        &(-2i32).to_le_bytes(),
    );
    assert_eq!(frame[13..17], [0xFF, 0xFF, 0xFF, 0xFE]);
    let frame = data(&frame);
    let delivered = Classic::check_delivered(&frame, DataShape::default()).unwrap();
    assert_eq!(delivered.value, -2);
    assert_eq!(frame.trace().count(), 0);
}

#[test]
fn what_the_format_cannot_carry_is_refused_before_encoding() {
    const { assert!(!Classic::PROGRESS_POLLS && !Classic::HAS_ACKS) };
    let poll = Control::SummaryRequest {
        reset: false,
        links: false,
    };
    assert!(matches!(
        Classic::encodable(&poll),
        Err(WireError::Unencodable { .. })
    ));
    let extra = Control::TaskInitiate {
        run: 1,
        packets: 10,
        extra_payload_bytes: 4,
        rate_per_s: 0,
        targets: Targets::Nodes,
    };
    assert!(Classic::encodable(&extra).is_err());
    let too_many = Control::TaskInitiate {
        run: 1,
        packets: 1 << 31,
        extra_payload_bytes: 0,
        rate_per_s: 0,
        targets: Targets::Nodes,
    };
    assert!(Classic::encodable(&too_many).is_err());
    let keys = Control::TaskInitiate {
        run: 1,
        packets: 10,
        extra_payload_bytes: 0,
        rate_per_s: 0,
        targets: Targets::Keys { bits: 7 },
    };
    let refused = Classic::encodable(&keys).unwrap_err().to_string();
    assert!(refused.contains("a run addressed to keys"), "{refused}");
    let wide_id = Control::RegisterStatus {
        status: Status::Ok(1 << 31),
        info: String::new(),
    };
    assert!(Classic::encodable(&wide_id).is_err());
    let crowded = Control::Manifest(Manifest {
        entries: vec![],
        all_ids: (0..256).collect::<Vec<_>>().into(),
        chord: None,
        trace_slots: 0,
        trace_slot_bytes: 4,
        window_bytes: 0,
        backups: Vec::new(),
        epoch: 0,
    });
    assert!(Classic::encodable(&crowded).is_err());
    let chord = Control::Manifest(Manifest {
        entries: vec![],
        all_ids: vec![1, 2].into(),
        chord: Some(std::sync::Arc::new(crate::wire::ChordIds {
            bits: 7,
            ids: vec![crate::chord::Id::from(3), crate::chord::Id::from(90)],
        })),
        trace_slots: 0,
        trace_slot_bytes: 4,
        window_bytes: 0,
        backups: Vec::new(),
        epoch: 0,
    });
    assert!(Classic::encodable(&chord).is_err());
    assert_eq!(
        Classic::encodable(&Control::SummaryRequest {
            reset: true,
            links: false
        }),
        Ok(())
    );
}

#[test]
fn long_strings_are_cut_to_127_bytes() {
    let bytes = encode(&Control::RegisterStatus {
        status: Status::Failed,
        info: "x".repeat(300),
    });
    assert_eq!(bytes[9], 127);
    assert_eq!(bytes.len(), 4 + 1 + 4 + 1 + 127);
}

#[test]
fn tolerant_where_the_reference_is_loose() {
    // A failure status other than -1, and a length byte above 127.
    let mut bytes = vec![0, 0, 0, 0, 3, 0xFF, 0xFF, 0xFF, 0xFE, 200];
    bytes.extend(std::iter::repeat_n(b'a', 200));
    let len = (bytes.len() - 4) as u32;
    bytes[..4].copy_from_slice(&len.to_be_bytes());
    let Ok(Control::RegisterStatus { status, info }) = Classic::decode_control(&bytes) else {
        panic!("decodes");
    };
    assert_eq!(status, Status::Failed);
    assert_eq!(info.len(), 200);
}

#[test]
fn strict_where_a_field_is_really_wrong() {
    // Port 70000.
    assert!(Classic::decode_control(&[0, 0, 0, 10, 2, 4, 127, 0, 0, 1, 0, 1, 0x11, 0x70]).is_err());
    // A five-byte address.
    assert!(Classic::decode_control(&[0, 0, 0, 11, 2, 5, 1, 2, 3, 4, 5, 0, 0, 0, 1]).is_err());
    // Negative packet count.
    assert!(Classic::decode_control(&[0, 0, 0, 5, 8, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
    // A stray byte after a summary request.
    assert!(Classic::decode_control(&[0, 0, 0, 2, 11, 0]).is_err());
    // Unknown type, and an ack code that only the native format has.
    assert_eq!(
        Classic::peek(&[0, 0, 0, 1, 99]),
        Err(WireError::UnknownType(99))
    );
    assert_eq!(
        Classic::peek(&[0, 0, 0, 1, 13]),
        Err(WireError::UnknownType(13))
    );
    // A data frame whose trace_len does not match its length, or is negative.
    let mut frame = Vec::new();
    Classic::append_data(&mut frame, 1, 2, DataShape::default(), 0, &[0; 4]);
    frame[20] = 1;
    assert!(Classic::peek(&frame).is_err());
    frame[17] = 0xFF;
    assert!(Classic::peek(&frame).is_err());
    // Lengths: zero, above the bound.
    assert!(Classic::frame_len(&[0, 0, 0, 0]).is_err());
    assert!(Classic::frame_len(&[0xFF, 0xFF, 0xFF, 0xFF]).is_err());
    let max = (FRAME_BYTES_MAX - 4) as u32;
    assert_eq!(Classic::frame_len(&max.to_be_bytes()), Ok(None));
    assert!(Classic::frame_len(&(max + 1).to_be_bytes()).is_err());
    // A manifest claiming more entries than its bytes hold.
    assert!(Classic::decode_control(&[0, 0, 0, 3, 6, 255, 0]).is_err());
}

#[test]
fn a_frame_at_the_trace_bound_can_still_be_relayed() {
    let mut frame = Vec::new();
    Classic::append_data(&mut frame, 1, 2, DataShape::default(), 0, &[0; 4]);
    for relay in 0..TRACE_LEN_MAX as u32 {
        let mut next = Vec::new();
        Classic::append_relayed(&data(&frame), relay, &mut next);
        frame = next;
    }
    assert_eq!(data(&frame).sink(), 2);
    let mut next = Vec::new();
    Classic::append_relayed(&data(&frame), 0, &mut next);
    assert!(next.len() <= FRAME_BYTES_MAX);
    assert!(
        Classic::peek(&next).is_err(),
        "one relay too many for a frame"
    );
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(Some(len)) = Classic::frame_len(&bytes) {
            let frame = &bytes[..len];
            if let Ok(peek) = Classic::peek(frame) {
                match peek {
                    Peek::Control => { let _ = Classic::decode_control(frame); }
                    Peek::Data(data) => {
                        let mut out = Vec::new();
                        Classic::append_relayed(&data, 1, &mut out);
                        prop_assert_eq!(Classic::peek(&out[..]).is_ok() || out.len() > FRAME_BYTES_MAX - 4, true);
                        let _ = Classic::check_delivered(&data, DataShape::default());
                        let _ = data.previous_hop();
                        let _ = data.trace().count();
                    }
                    Peek::Ack(_) => prop_assert!(false, "the classic format has no acks"),
                    Peek::Keyed(_) | Peek::Lookup(_) | Peek::LookupReply(_) => {
                        prop_assert!(false, "the classic format has no keyed frames")
                    }
                }
            }
        }
    }

    /// Every encodable control message decodes to itself (with the classic defaults).
    #[test]
    fn summaries_roundtrip(id in 0u32..=i32::MAX as u32, sent in 0u64..=i32::MAX as u64,
                           received in 0u64..=i32::MAX as u64, relayed in 0u64..=i32::MAX as u64,
                           sum_sent in any::<i64>(), sum_received in any::<i64>()) {
        let message = Control::Summary {
            id,
            reset: true,
            counters: Counters { sent, received, relayed, sum_sent, sum_received, corrupted: 0, dropped: 0, ..Counters::default() },
            stats: None,
            links: vec![],
        };
        prop_assert_eq!(Classic::decode_control(&encode(&message)), Ok(message));
    }
}

proptest! {
    /// Origination's copy of one frame per batch, with the sink and value set per packet, is
    /// byte for byte the frame built for that packet.
    #[test]
    fn a_batch_frame_set_for_a_packet_is_the_packets_frame(
        sink in 0..=Classic::ID_MAX,
        value in any::<[u8; 4]>(),
    ) {
        let shape = DataShape { trace_slots: 0, slot_bytes: 4, extra_payload_bytes: 0, run_tag: 0 };
        let mut direct = Vec::new();
        Classic::append_data(&mut direct, 7, sink, shape, 0, &value);
        let mut copied = Vec::new();
        Classic::append_data(&mut copied, 7, 9, shape, 0, &[1, 2, 3, 4]);
        Classic::set_originated(&mut copied, shape, sink, value, 0);
        prop_assert_eq!(copied, direct);
    }
}

//! Control messages in the native encoding: golden vectors, round trips, manifests in one
//! frame or several, and the bounds a decoder checks before it allocates.

use super::*;
use crate::wire::ManifestAssembly;
use proptest::prelude::*;

const SHAPE: DataShape = DataShape {
    trace_slots: 2,
    slot_bytes: 4,
    extra_payload_bytes: 0,
    run_tag: 0,
};

/// The golden vectors' send time: 0x0102 microseconds (and 999 ns the stamp drops).
const SENT_NS: u64 = 0x0102 * 1_000 + 999;

/// The view of a frame `peek` must accept as data.
fn data(frame: &[u8]) -> DataFrame<'_, Native> {
    match Native::peek(frame) {
        Ok(Peek::Data(data)) => data,
        other => panic!("not a data frame: {other:?}"),
    }
}

fn encode(message: &Control) -> Vec<u8> {
    let mut out = Vec::new();
    Native::encode_control(message, &mut out);
    out
}

fn roundtrip(message: Control) {
    let bytes = encode(&message);
    assert_eq!(Native::frame_len(&bytes), Ok(Some(bytes.len())));
    assert_eq!(Native::peek(&bytes), Ok(Peek::Control));
    assert_eq!(Native::decode_control(&bytes), Ok(message));
}

#[test]
fn registration_golden_vector() {
    let message = Control::Register {
        addr: "127.0.0.1:43765".parse().unwrap(),
        group: None,
    };
    let expected = [
        0x08, 0x00, 0x00, 0x00, 0x02, 0x04, 0x7F, 0x00, 0x00, 0x01, 0xF5, 0xAA,
    ];
    assert_eq!(encode(&message), expected);
    assert_eq!(Native::decode_control(&expected), Ok(message));
}

/// A registration that names its group: u64 token and u32 size after the address; a size
/// of 0 or past `NODES_MAX` is refused, and so is a group cut short.
#[test]
fn registration_with_a_group_golden_vector() {
    let message = Control::Register {
        addr: "127.0.0.1:43765".parse().unwrap(),
        group: Some(GroupTag {
            token: 0x0102_0304_0506_0708,
            size: 32,
        }),
    };
    let expected = [
        0x14, 0x00, 0x00, 0x00, 0x02, 0x04, 0x7F, 0x00, 0x00, 0x01, 0xF5, 0xAA, 0x08, 0x07, 0x06,
        0x05, 0x04, 0x03, 0x02, 0x01, 0x20, 0x00, 0x00, 0x00,
    ];
    assert_eq!(encode(&message), expected);
    assert_eq!(Native::decode_control(&expected), Ok(message));
    for size in [0, crate::limits::NODES_MAX as u32 + 1] {
        let mut bad = expected;
        bad[20..24].copy_from_slice(&size.to_le_bytes());
        assert!(
            matches!(
                Native::decode_control(&bad),
                Err(WireError::BadField { .. })
            ),
            "{size}"
        );
    }
    let mut short = expected[..22].to_vec();
    short[0] = 18;
    assert!(Native::decode_control(&short).is_err());
}

#[test]
fn status_golden_vectors() {
    let ok = Control::RegisterStatus {
        status: Status::Ok(97),
        info: "ok".into(),
    };
    assert_eq!(
        encode(&ok),
        [12, 0, 0, 0, 3, 97, 0, 0, 0, 0, 0, 0, 0, 2, b'o', b'k']
    );
    let failed = Control::SetupStatus {
        status: Status::Failed,
        info: String::new(),
    };
    assert_eq!(
        encode(&failed),
        [
            10, 0, 0, 0, 7, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0
        ]
    );
}

/// The hello names the protocol version (issue 16); the builds before named none, and their
/// hello reads as version 1, so that the acceptor can refuse it by its version.
#[test]
fn hello_golden_vectors_and_the_version_of_older_builds() {
    let hello = encode(&Control::Hello {
        nonce: None,
        version: PROTOCOL_VERSION,
    });
    assert_eq!(hello, [4, 0, 0, 0, kind::HELLO, 0, 4, 0]);
    let older = [2, 0, 0, 0, kind::HELLO, 0];
    assert_eq!(
        Native::decode_control(&older),
        Ok(Control::Hello {
            nonce: None,
            version: PROTOCOL_VERSION_UNNAMED,
        })
    );
    let refusal = encode(&Control::Refused(Refusal::Version { ours: 2 }));
    assert_eq!(
        refusal,
        [4, 0, 0, 0, kind::REFUSED, refusal_code::VERSION, 2, 0]
    );
    // A version cut short is refused, not read as an older build's.
    assert!(Native::decode_control(&[3, 0, 0, 0, kind::HELLO, 0, 2]).is_err());
}

#[test]
fn summary_request_golden_vector() {
    assert_eq!(
        encode(&Control::SummaryRequest {
            reset: true,
            links: false
        }),
        [2, 0, 0, 0, 11, 1]
    );
}

#[test]
fn every_control_message_roundtrips() {
    let addr: SocketAddr = "10.1.2.3:9000".parse().unwrap();
    let v6: SocketAddr = "[::1]:5".parse().unwrap();
    roundtrip(Control::Register {
        addr: v6,
        group: None,
    });
    roundtrip(Control::Register {
        addr: v6,
        group: Some(GroupTag {
            token: u64::MAX,
            size: 16_000,
        }),
    });
    roundtrip(Control::Deregister { addr, id: 5 });
    roundtrip(Control::DeregisterStatus {
        status: Status::Failed,
        info: "not registered".into(),
    });
    roundtrip(Control::Manifest(Manifest {
        entries: vec![
            ManifestEntry { id: 19, addr },
            ManifestEntry { id: 60, addr: v6 },
        ],
        all_ids: vec![4, 18, 19, 33, 60, 82, 97, 119].into(),
        chord: None,
        trace_slots: 3,
        trace_slot_bytes: 1,
        window_bytes: 1 << 20,
        backups: Vec::new(),
        epoch: 0,
    }));
    // Backup entries: the last section, present only when there are some.
    roundtrip(Control::Manifest(Manifest {
        entries: vec![ManifestEntry { id: 19, addr }],
        all_ids: vec![4, 18, 19, 33, 60, 82, 97, 119].into(),
        chord: None,
        trace_slots: 3,
        trace_slot_bytes: 2,
        window_bytes: 1 << 20,
        backups: vec![
            ManifestEntry { id: 33, addr: v6 },
            ManifestEntry { id: 60, addr },
        ],
        epoch: 7,
    }));
    roundtrip(Control::TaskInitiate {
        run: 2,
        packets: 100_000,
        extra_payload_bytes: 4096,
        rate_per_s: 0,
        targets: Targets::Nodes,
    });
    roundtrip(Control::TaskInitiate {
        run: 3,
        packets: 5,
        extra_payload_bytes: 0,
        rate_per_s: 1000,
        targets: Targets::Keys { bits: 160 },
    });
    roundtrip(Control::TaskFinished { addr, id: u32::MAX });
    roundtrip(Control::Hello {
        nonce: None,
        version: PROTOCOL_VERSION,
    });
    roundtrip(Control::Hello {
        nonce: Some([5; 32]),
        version: 7,
    });
    roundtrip(Control::Challenge {
        nonce: [9; 32],
        proof: [4; 32],
    });
    roundtrip(Control::Response { proof: [3; 32] });
    for refusal in [
        Refusal::Busy,
        Refusal::SecretRequired,
        Refusal::NoSecret,
        Refusal::WrongSecret,
        Refusal::ClassicWire,
        Refusal::Version { ours: 2 },
    ] {
        roundtrip(Control::Refused(refusal));
    }
    roundtrip(Control::SummaryRequest {
        reset: false,
        links: false,
    });
    roundtrip(Control::SummaryRequest {
        reset: false,
        links: true,
    });
    roundtrip(Control::Summary {
        id: 7,
        reset: true,
        counters: Counters {
            sent: 1,
            received: 2,
            relayed: 3,
            sum_sent: -4,
            sum_received: i64::MIN,
            corrupted: 5,
            dropped: 6,
            stale: 7,
            links_cut: 8,
            relay_bound_drops: 9,
        },
        stats: None,
        links: vec![],
    });
    let mut stats = crate::stats::RunStats::default();
    stats.record(0, Some(1_000));
    stats.record(3, Some(9_000));
    stats.record(3, None);
    roundtrip(Control::Summary {
        id: 8,
        reset: false,
        counters: Counters::default(),
        stats: Some(stats),
        links: vec![
            LinkCount {
                peer: 3,
                sent: 10,
                received: 0,
            },
            LinkCount {
                peer: u32::MAX,
                sent: u64::MAX,
                received: 7,
            },
        ],
    });
}

/// A Chord manifest carries each identifier in ceil(m / 8) bytes, big-endian, after the IDs.
#[test]
fn chord_manifests_carry_identifiers_in_their_width() {
    let addr: SocketAddr = "10.0.0.1:4000".parse().unwrap();
    let space = IdSpace::new(160).unwrap();
    let wide = Control::Manifest(Manifest {
        entries: vec![ManifestEntry { id: 19, addr }],
        all_ids: vec![4, 19, 33].into(),
        chord: Some(std::sync::Arc::new(ChordIds {
            bits: 160,
            ids: vec![space.max(), Id::ZERO, space.power_of_two(130)],
        })),
        trace_slots: 1,
        trace_slot_bytes: 4,
        window_bytes: 1 << 20,
        backups: Vec::new(),
        epoch: 0,
    });
    roundtrip(wide.clone());
    let narrow = Control::Manifest(Manifest {
        chord: Some(std::sync::Arc::new(ChordIds {
            bits: 13,
            ids: vec![Id::from(8191), Id::from(0x1234), Id::from(1)],
        })),
        ..match &wide {
            Control::Manifest(m) => m.clone(),
            _ => unreachable!(),
        }
    });
    let bytes = encode(&narrow);
    assert_eq!(encode(&wide).len() - bytes.len(), 3 * (20 - 2));
    // m = 13, then 0x1fff, 0x1234, 0x0001 in two bytes each, then the window epoch (u32).
    assert_eq!(
        bytes[bytes.len() - 11..],
        [13, 0x1f, 0xff, 0x12, 0x34, 0x00, 0x01, 0, 0, 0, 0]
    );
    roundtrip(narrow);
    // 0x2000 does not fit 13 bits: refused, named.
    let mut outside = bytes.clone();
    let at = outside.len() - 10;
    outside[at] = 0x20;
    let error = Native::decode_control(&outside).unwrap_err();
    assert!(
        error.to_string().contains("outside the 13-bit space"),
        "{error}"
    );
    let mut no_space = bytes.clone();
    let at = no_space.len() - 11;
    no_space[at] = 161;
    assert!(Native::decode_control(&no_space).is_err());
}

/// Every frame of `bytes` (one or more encoded messages), decoded.
fn decode_frames(bytes: &[u8]) -> Vec<Control> {
    let mut messages = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = Native::frame_len(rest).unwrap().unwrap();
        assert!(len <= FRAME_BYTES_MAX, "a frame of {len} bytes");
        messages.push(Native::decode_control(&rest[..len]).unwrap());
        rest = &rest[len..];
    }
    messages
}

/// A manifest of `members` members whose identifiers have `bits` bits.
fn chord_manifest(members: u32, bits: u32) -> Manifest {
    let addr: SocketAddr = "10.0.0.1:4000".parse().unwrap();
    let space = IdSpace::new(bits).unwrap();
    Manifest {
        entries: vec![ManifestEntry { id: 19, addr }],
        all_ids: (0..members).map(|n| n * 3 + 1).collect::<Vec<_>>().into(),
        chord: Some(std::sync::Arc::new(ChordIds {
            bits,
            // Distinct, and the widest ones use every byte.
            ids: (0..members)
                .map(|n| space.distance(Id::from(u128::from(n)), space.max()))
                .collect(),
        })),
        trace_slots: 9,
        trace_slot_bytes: 2,
        window_bytes: 1 << 20,
        backups: vec![ManifestEntry { id: 4, addr }],
        epoch: 3,
    }
}

/// A manifest too large for one frame (3,000 members of 160 bits: 72,000 bytes of members)
/// goes as a start and continuations, each within a frame, and its node's assembly gives back
/// the same manifest; a smaller one stays a single frame.
#[test]
fn a_manifest_larger_than_a_frame_is_sent_in_several_and_put_back_together() {
    for (members, frames) in [(3000, 2), (2000, 1), (16_000, 6)] {
        let manifest = chord_manifest(members, 160);
        assert_eq!(
            Native::encodable(&Control::Manifest(manifest.clone())),
            Ok(())
        );
        let bytes = encode(&Control::Manifest(manifest.clone()));
        let messages = decode_frames(&bytes);
        assert_eq!(messages.len(), frames, "{members} members");
        let mut messages = messages.into_iter();
        let whole = match messages.next().unwrap() {
            Control::Manifest(whole) => {
                assert_eq!(frames, 1);
                whole
            }
            Control::ManifestStart {
                manifest: start,
                members: announced,
            } => {
                assert_eq!(announced, members as usize);
                assert!(start.all_ids.len() < announced);
                assert_eq!(start.entries, manifest.entries);
                assert_eq!(start.backups, manifest.backups);
                let mut assembly = ManifestAssembly::start(start, announced);
                let mut whole = None;
                for (n, message) in messages.by_ref().enumerate() {
                    let Control::ManifestMore(more) = message else {
                        panic!("not a continuation: {message:?}");
                    };
                    assert!(whole.is_none(), "a continuation after the last");
                    whole = assembly.more(more.clone()).unwrap();
                    assert_eq!(whole.is_some(), n + 2 == frames);
                    // Each frame re-encodes to itself.
                    roundtrip(Control::ManifestMore(more));
                }
                whole.unwrap()
            }
            other => panic!("not a manifest: {other:?}"),
        };
        assert_eq!(whole, manifest);
        assert!(bytes.len() <= crate::limits::MANIFEST_BYTES_MAX);
    }
}

/// A node's assembly refuses what does not belong to the manifest it is putting together:
/// more members than announced, an empty continuation, identifiers of another width or none;
/// and a manifest announcing more members than a node takes is refused as it is decoded.
#[test]
fn a_manifest_in_several_frames_is_checked_as_it_comes() {
    let bytes = encode(&Control::Manifest(chord_manifest(3000, 160)));
    let mut messages = decode_frames(&bytes).into_iter();
    let Some(Control::ManifestStart { manifest, members }) = messages.next() else {
        panic!("no start");
    };
    let Some(Control::ManifestMore(more)) = messages.next() else {
        panic!("no continuation");
    };
    let start = || ManifestAssembly::start(manifest.clone(), members);
    let error = |mut assembly: ManifestAssembly, more: Members| assembly.more(more).unwrap_err();

    let mut too_many = more.clone();
    too_many.ids.push(7);
    if let Some(chord) = too_many.chord.as_mut() {
        chord.ids.push(Id::ZERO);
    }
    assert!(error(start(), too_many).contains("continuation of"));
    let empty = Members {
        ids: vec![],
        chord: Some(ChordIds {
            bits: 160,
            ids: vec![],
        }),
    };
    assert!(error(start(), empty).contains("continuation of 0"));
    let mut narrow = more.clone();
    narrow.chord.as_mut().unwrap().bits = 120;
    let why = error(start(), narrow);
    assert!(
        why.contains("120-bit identifiers in a manifest of 160-bit"),
        "{why}"
    );
    let none = Members {
        chord: None,
        ..more.clone()
    };
    assert!(error(start(), none).contains("0-bit identifiers"));
    // The continuation in two halves: the manifest is whole after the second.
    let half = more.ids.len() / 2;
    let identifiers = &more.chord.as_ref().unwrap().ids;
    let part = |range: std::ops::Range<usize>| Members {
        ids: more.ids[range.clone()].to_vec(),
        chord: Some(ChordIds {
            bits: 160,
            ids: identifiers[range].to_vec(),
        }),
    };
    let mut assembly = start();
    assert_eq!(assembly.more(part(0..half)), Ok(None));
    let whole = assembly.more(part(half..more.ids.len())).unwrap().unwrap();
    assert_eq!(whole, chord_manifest(3000, 160));

    // The announced count is bounded before anything is allocated.
    let mut first = Vec::new();
    Native::encode_control(
        &Control::ManifestStart {
            manifest: chord_manifest(2, 160),
            members: crate::limits::MANIFEST_MEMBERS_MAX + 1,
        },
        &mut first,
    );
    let error = Native::decode_control(&first).unwrap_err().to_string();
    assert!(error.contains("manifest members"), "{error}");
    let over = Manifest {
        all_ids: vec![0; crate::limits::MANIFEST_MEMBERS_MAX + 1].into(),
        chord: None,
        ..chord_manifest(1, 160)
    };
    assert!(Native::encodable(&Control::Manifest(over)).is_err());
}

#[test]
fn summary_link_counts_are_bounded_before_allocating() {
    let mut bytes = encode(&Control::Summary {
        id: 1,
        reset: true,
        counters: Counters::default(),
        stats: None,
        links: vec![],
    });
    // The last four bytes are the link count: claim four billion links.
    let at = bytes.len() - 4;
    bytes[at..].copy_from_slice(&u32::MAX.to_le_bytes());
    let error = Native::decode_control(&bytes).unwrap_err();
    assert!(error.to_string().contains("links"), "{error}");
}

#[test]
fn long_strings_are_cut_to_127_bytes() {
    let bytes = encode(&Control::RegisterStatus {
        status: Status::Failed,
        info: "é".repeat(100),
    });
    let Ok(Control::RegisterStatus { info, .. }) = Native::decode_control(&bytes) else {
        panic!("decodes");
    };
    assert_eq!(info.len(), 126);
}

#[test]
fn frame_length_is_checked_before_buffering() {
    assert_eq!(Native::frame_len(&[1, 0]), Ok(None));
    assert_eq!(Native::frame_len(&[5, 0, 0, 0, 2]), Ok(None));
    assert!(Native::frame_len(&[0, 0, 0, 0]).is_err());
    assert!(Native::frame_len(&[0xFF, 0xFF, 0xFF, 0xFF]).is_err());
    let max = (FRAME_BYTES_MAX - 4) as u32;
    assert_eq!(Native::frame_len(&max.to_le_bytes()), Ok(None));
    assert!(Native::frame_len(&(max + 1).to_le_bytes()).is_err());
}

#[test]
fn bad_control_frames_are_errors() {
    assert_eq!(
        Native::peek(&[1, 0, 0, 0, 99]),
        Err(WireError::UnknownType(99))
    );
    // A registration with a 5-byte address.
    assert!(Native::decode_control(&[8, 0, 0, 0, 2, 5, 1, 2, 3, 4, 5, 0]).is_err());
    // Trailing byte.
    assert!(Native::decode_control(&[3, 0, 0, 0, 11, 1, 0]).is_err());
    // Manifest claiming a billion IDs.
    let mut manifest = vec![0, 0, 0, 0, kind::MANIFEST, 0, 0, 1];
    manifest.extend_from_slice(&0u64.to_le_bytes());
    manifest.extend_from_slice(&1_000_000_000u32.to_le_bytes());
    let len = (manifest.len() - 4) as u32;
    manifest[..4].copy_from_slice(&len.to_le_bytes());
    assert!(Native::decode_control(&manifest).is_err());
}

#[test]
fn the_largest_manifest_of_position_fingers_fits_one_frame() {
    use crate::limits::{FRAME_BYTES_MAX, NODES_MAX, NR_MAX};
    let v6: std::net::SocketAddr = "[2001:db8::1]:65535".parse().unwrap();
    let manifest = Manifest {
        entries: (0..NR_MAX as u32)
            .map(|id| ManifestEntry { id, addr: v6 })
            .collect(),
        all_ids: (0..NODES_MAX as u32).collect::<Vec<_>>().into(),
        chord: None,
        trace_slots: 64,
        trace_slot_bytes: 4,
        window_bytes: u64::MAX,
        backups: Vec::new(),
        epoch: 0,
    };
    let bytes = encode(&Control::Manifest(manifest.clone()));
    assert!(bytes.len() <= FRAME_BYTES_MAX);
    roundtrip(Control::Manifest(manifest));
}

/// The largest manifest of all (the most members, each with a 160-bit identifier, the most
/// entries and backups the counts allow, all at IPv6 addresses) is within its bound.
#[test]
fn the_largest_manifest_fits_its_bound() {
    use crate::limits::{MANIFEST_BYTES_MAX, MANIFEST_MEMBERS_MAX};
    let v6: std::net::SocketAddr = "[2001:db8::1]:65535".parse().unwrap();
    let entries: Vec<ManifestEntry> = (0..255).map(|id| ManifestEntry { id, addr: v6 }).collect();
    let manifest = Manifest {
        entries: entries.clone(),
        backups: entries,
        ..chord_manifest(MANIFEST_MEMBERS_MAX as u32, 160)
    };
    let bytes = encode(&Control::Manifest(manifest));
    assert!(bytes.len() <= MANIFEST_BYTES_MAX, "{}", bytes.len());
    assert!(bytes.len() + 100 > MANIFEST_BYTES_MAX, "{}", bytes.len());
    assert_eq!(decode_frames(&bytes).len(), 7);
}

#[test]
fn nodes_lost_together_roundtrip_and_their_count_is_bounded() {
    let entry = |id| ManifestEntry {
        id,
        addr: "127.0.0.1:9000".parse().unwrap(),
    };
    for change in [
        Change::Lost { ids: vec![4] },
        Change::Lost {
            ids: (0..REPAIR_NODES_MAX as NodeId).collect(),
        },
        Change::Repair {
            ids: vec![4, 9, 12],
        },
    ] {
        for table in [
            None,
            Some(NewTable {
                entries: vec![entry(1), entry(2)],
                backups: vec![entry(3)],
            }),
        ] {
            roundtrip(Control::Membership(MembershipChange {
                version: 7,
                change: change.clone(),
                table,
            }));
        }
    }
    // The count (after length, kind, version and change code): none, or more than a repair
    // takes.
    let mut frame = encode(&Control::Membership(MembershipChange {
        version: 7,
        change: Change::Repair { ids: vec![4] },
        table: None,
    }));
    for count in [0, REPAIR_NODES_MAX as u16 + 1] {
        frame[4 + 1 + 4 + 1..4 + 1 + 4 + 1 + 2].copy_from_slice(&count.to_le_bytes());
        assert!(matches!(
            Native::decode_control(&frame),
            Err(WireError::BadField {
                what: "membership change nodes",
                ..
            })
        ));
    }
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

mod frames;
mod keyed;

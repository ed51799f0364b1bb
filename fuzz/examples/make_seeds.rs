//! Writes the seed corpora of every fuzz target into DIR/<target>/ (tools/fuzz.sh runs it):
//! the golden vectors of src/wire/native/tests.rs, one encoding of every control message,
//! data and ack frames, and scripts for the stream targets made of those frames.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example make_seeds -- DIR

use std::net::SocketAddr;
use std::path::Path;

use overlay::wire::classic::Classic;
use overlay::wire::native::{Native, PROTOCOL_VERSION};
use overlay::wire::{
    Codec, Control, Counters, DataShape, Manifest, ManifestEntry, Peek, Refusal, Status,
};

/// The golden vectors of src/wire/native/tests.rs, byte for byte.
const GOLDEN: &[&[u8]] = &[
    // registration from 127.0.0.1:43765
    &[0x08, 0, 0, 0, 0x02, 0x04, 0x7F, 0, 0, 1, 0xF5, 0xAA],
    // registration status OK 97 "ok"
    &[12, 0, 0, 0, 3, 97, 0, 0, 0, 0, 0, 0, 0, 2, b'o', b'k'],
    // setup status failed ""
    &[
        10, 0, 0, 0, 7, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0,
    ],
    // summary request, reset
    &[2, 0, 0, 0, 11, 1],
    // data 97 -> 82, two trace slots, value 1, send time 0x102
    &[
        40, 0, 0, 0, 9, 2, 0, 0, 97, 0, 0, 0, 82, 0, 0, 0, 4, 0, 0, 0, 0x79, 0xb8, 0xf8, 0x99, 2,
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    ],
];

fn controls() -> Vec<Control> {
    let addr: SocketAddr = "127.0.0.1:10020".parse().unwrap();
    let v6: SocketAddr = "[::1]:5".parse().unwrap();
    vec![
        Control::Register { addr },
        Control::Register { addr: v6 },
        Control::RegisterStatus {
            status: Status::Ok(20),
            info: "ok".into(),
        },
        Control::Deregister { addr, id: 20 },
        Control::DeregisterStatus {
            status: Status::Failed,
            info: "not registered".into(),
        },
        Control::Manifest(Manifest {
            entries: vec![
                ManifestEntry {
                    id: 40,
                    addr: "127.0.0.1:10040".parse().unwrap(),
                },
                ManifestEntry {
                    id: 60,
                    addr: "127.0.0.1:10060".parse().unwrap(),
                },
            ],
            all_ids: vec![5, 20, 40, 60, 90, 127].into(),
            chord: None,
            trace_slots: 2,
            trace_slot_bytes: 1,
            window_bytes: 1 << 16,
            backups: vec![ManifestEntry {
                id: 90,
                addr: "127.0.0.1:10090".parse().unwrap(),
            }],
            epoch: 3,
        }),
        Control::SetupStatus {
            status: Status::Ok(20),
            info: "node 20 connected".into(),
        },
        Control::TaskInitiate {
            run: 1,
            packets: 5,
            extra_payload_bytes: 0,
            rate_per_s: 0,
            targets: overlay::wire::Targets::Nodes,
        },
        Control::TaskFinished { addr, id: 20 },
        Control::SummaryRequest {
            reset: false,
            links: false,
        },
        Control::Summary {
            id: 20,
            reset: true,
            counters: Counters {
                sent: 5,
                received: 4,
                relayed: 3,
                sum_sent: -9,
                sum_received: 12,
                corrupted: 0,
                dropped: 1,
                ..Counters::default()
            },
            stats: None,
            links: vec![overlay::wire::LinkCount {
                peer: 3,
                sent: 9,
                received: 2,
            }],
        },
        Control::Hello {
            nonce: None,
            version: PROTOCOL_VERSION,
        },
        Control::Hello {
            nonce: Some([7; 32]),
            version: PROTOCOL_VERSION,
        },
        Control::Challenge {
            nonce: [8; 32],
            proof: [9; 32],
        },
        Control::Response { proof: [10; 32] },
        Control::Refused(Refusal::Busy),
        Control::Refused(Refusal::SecretRequired),
        Control::Refused(Refusal::NoSecret),
        Control::Refused(Refusal::WrongSecret),
    ]
}

fn encode(message: &Control) -> Vec<u8> {
    let mut out = Vec::new();
    Native::encode_control(message, &mut out);
    out
}

/// Data frames as the node-stream target's ring (5 20 40 60 90 127, NR 2, node 20) sees
/// them: delivered to 20, relayed by 20, and acks.
fn data_frames() -> Vec<Vec<u8>> {
    let shape = DataShape {
        trace_slots: 2,
        slot_bytes: 1,
        extra_payload_bytes: 0,
        run_tag: 0,
    };
    let mut frames = Vec::new();
    for (source, sink, relays) in [
        (5u32, 20u32, &[][..]),
        (127, 20, &[5][..]),
        (90, 20, &[127][..]),
        (5, 60, &[][..]),
        (5, 90, &[][..]),
    ] {
        let mut frame = Vec::new();
        Native::append_data(&mut frame, source, sink, shape, 1, &7i32.to_le_bytes());
        for &relay in relays {
            let mut next = Vec::new();
            let Ok(Peek::Data(view)) = Native::peek(&frame) else {
                unreachable!("a frame we made is data");
            };
            Native::append_relayed(&view, relay, &mut next);
            frame = next;
        }
        frames.push(frame);
    }
    for (source, sink, bytes) in [(40u32, 20u32, 4096u64), (90, 5, 100)] {
        let mut frame = Vec::new();
        Native::append_ack(&mut frame, source, sink, 0, bytes);
        frames.push(frame);
    }
    frames
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// One operation of the stream targets' script (see harness::play).
fn op(script: &mut Vec<u8>, op: u8, bytes: &[u8]) {
    for chunk in bytes.chunks(255) {
        script.push(op);
        script.push(chunk.len() as u8);
        script.extend_from_slice(chunk);
    }
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: make_seeds DIR");
    let dir = Path::new(&dir);
    let controls: Vec<Vec<u8>> = controls().iter().map(encode).collect();
    let data = data_frames();

    // wire_native: mode byte (trace slots 2 of 1 byte, CRC fixing on/off) then frames.
    for (i, frame) in GOLDEN
        .iter()
        .copied()
        .chain(controls.iter().map(|c| &c[..]))
        .enumerate()
    {
        write(
            dir,
            "wire_native",
            &format!("control-{i}"),
            &[&[2u8][..], frame].concat(),
        );
    }
    for (i, frame) in data.iter().enumerate() {
        write(
            dir,
            "wire_native",
            &format!("data-{i}"),
            // Fix CRCs, 1-byte slots (bits 5-6: 1), 2 trace slots.
            &[&[0x80u8 | 1 << 5 | 2][..], frame].concat(),
        );
    }
    write(
        dir,
        "wire_native",
        "all",
        &[&[2u8][..], &controls.concat(), &data.concat()].concat(),
    );

    // wire_classic: every control message the classic format carries, and data frames.
    let mut classic_all = Vec::new();
    for (i, message) in self::controls().iter().enumerate() {
        if Classic::encodable(message).is_ok() {
            let mut bytes = Vec::new();
            Classic::encode_control(message, &mut bytes);
            write(dir, "wire_classic", &format!("control-{i}"), &bytes);
            classic_all.extend_from_slice(&bytes);
        }
    }
    let mut frame = Vec::new();
    Classic::append_data(
        &mut frame,
        97,
        82,
        DataShape::default(),
        0,
        &1i32.to_be_bytes(),
    );
    let mut relayed = Vec::new();
    let Ok(Peek::Data(view)) = Classic::peek(&frame) else {
        unreachable!("a frame we made is data");
    };
    Classic::append_relayed(&view, 19, &mut relayed);
    write(dir, "wire_classic", "data", &frame);
    write(dir, "wire_classic", "data-relayed", &relayed);
    classic_all.extend_from_slice(&frame);
    classic_all.extend_from_slice(&relayed);
    write(dir, "wire_classic", "all", &classic_all);

    // console: every command, right and wrong.
    for (i, line) in [
        "list-messaging-nodes",
        "setup-overlay",
        "setup-overlay 3",
        "list-routing-tables",
        "start 100",
        "start 100 4096",
        "help",
        "print-counters-and-diagnostics",
        "exit-overlay",
        "start -5",
        "setup-overlay x y",
    ]
    .iter()
    .enumerate()
    {
        write(dir, "console", &format!("line-{i}"), line.as_bytes());
    }

    // node_stream: phase byte, then operations. Connection 0 is the registry; in phases 2 and
    // 3 connections 1 and 2 are the table entries, 3 and 4 inbound links.
    for phase in 0..4u8 {
        let mut script = vec![phase];
        for frame in &data {
            op(&mut script, 6 | (3 << 3), frame); // data on an inbound link, CRC fixed
        }
        op(&mut script, 4, &[1]);
        for frame in &controls {
            op(&mut script, 0, frame); // controls from the registry
        }
        op(&mut script, 5, b"print-counters-and-diagnostics");
        op(&mut script, 3 | (1 << 3), &[]); // an entry's link closes
        op(&mut script, 6 | (4 << 3), &data.concat());
        write(dir, "node_stream", &format!("phase-{phase}"), &script);
    }

    // registry_stream: phase byte, then operations on connections 0..3 (127.0.0.1..4).
    for phase in 0..4u8 {
        let mut script = vec![phase];
        for (i, frame) in controls.iter().enumerate() {
            op(&mut script, ((i as u8 % 4) << 3) | 1, frame);
        }
        op(&mut script, 5, b"setup-overlay 2");
        op(&mut script, 5, b"start 3");
        op(&mut script, 4, &[0x40, 0, 0, 0, 0]);
        op(&mut script, 7, &[]);
        op(&mut script, 3 | (2 << 3), &[]);
        op(&mut script, 5, b"list-routing-tables");
        write(dir, "registry_stream", &format!("phase-{phase}"), &script);
    }
}

//! The native codec on arbitrary bytes: frame splitting, peek, control decoding (with a
//! re-encoding round trip), relaying and the sink's checks. Nothing may panic, and what the
//! codec accepts must stay consistent (a relayed frame still passes peek, a decoded control
//! message encodes back to the same bytes).
#![no_main]

#[path = "harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;
use overlay::wire::native::Native;
use overlay::wire::{Codec, DataShape, Peek};

fuzz_target!(|data: &[u8]| {
    // First byte: the overlay's trace slots (bits 0..=4) and their width (bits 5..=6: 4, 1,
    // 2 or 4 bytes) for the sink's check, and whether to fix CRCs (bit 7).
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 0x80 != 0 {
        harness::fix_crcs(&mut bytes);
    }
    let shape = DataShape {
        trace_slots: usize::from(mode & 0x1f),
        slot_bytes: [4, 1, 2, 4][usize::from((mode >> 5) & 3)],
        extra_payload_bytes: 0,
        run_tag: 0,
    };
    let mut offset = 0;
    let mut out = Vec::new();
    loop {
        let len = match Native::frame_len(&bytes[offset..]) {
            Ok(Some(len)) => len,
            Ok(None) | Err(_) => break,
        };
        assert!(len > 4 && offset + len <= bytes.len());
        let frame = &bytes[offset..offset + len];
        offset += len;
        match Native::peek(frame) {
            Ok(Peek::Control) => {
                if let Ok(message) = Native::decode_control(frame) {
                    // Encoding normalises (strings are cut to 127 bytes); once normalised, a
                    // message survives encode -> decode -> encode unchanged.
                    out.clear();
                    Native::encode_control(&message, &mut out);
                    let again = Native::decode_control(&out).expect("our encoding decodes");
                    let mut out2 = Vec::new();
                    Native::encode_control(&again, &mut out2);
                    assert_eq!(out, out2);
                }
            }
            Ok(Peek::Data(data)) => {
                out.clear();
                out.push(0xAA);
                Native::append_relayed(&data, 7, &mut out);
                assert_eq!(out.len(), frame.len() + 1);
                let Ok(Peek::Data(relayed)) = Native::peek(&out[1..]) else {
                    panic!("a relayed frame still peeks");
                };
                assert_eq!(relayed.sink(), data.sink());
                assert_eq!(relayed.source(), data.source());
                assert!(relayed.relays() <= relayed.trace_slots());
                assert_eq!(relayed.slot_bytes(), data.slot_bytes());
                assert_eq!(data.trace().count(), data.relays());
                if data.relays() < data.trace_slots() && !data.overflowed() {
                    // Relay 7 fits every width.
                    assert_eq!(relayed.previous_hop(), Some(7));
                }
                if let Ok(delivered) = Native::check_delivered(&data, shape) {
                    assert!(data.trace().count() <= shape.trace_slots);
                    assert_eq!(delivered.relays, data.trace().count());
                }
                let _ = Native::check_delivered(&relayed, shape);
                let _ = data.previous_hop();
            }
            Ok(Peek::Keyed(keyed)) => {
                out.clear();
                Native::append_relayed(&keyed, 7, &mut out);
                let Ok(Peek::Keyed(relayed)) = Native::peek(&out) else {
                    panic!("a relayed keyed frame still peeks");
                };
                assert_eq!(Native::key(&relayed), Native::key(&keyed));
                assert_eq!(relayed.source(), keyed.source());
                let _ = Native::check_keyed_delivered(&relayed, shape);
            }
            Ok(Peek::Lookup(lookup)) => {
                let mut reply = Vec::new();
                Native::append_lookup_reply(&mut reply, &lookup, 3, "127.0.0.1:9".parse().unwrap());
                let Ok(Peek::LookupReply(reply)) = Native::peek(&reply) else {
                    panic!("a lookup's reply peeks");
                };
                assert_eq!(reply.sink(), lookup.source());
                assert_eq!(Native::lookup_reply(&reply).1.port(), 9);
            }
            Ok(Peek::LookupReply(reply)) => {
                let _ = Native::lookup_reply(&reply);
            }
            Ok(Peek::Ack(ack)) => assert_eq!(ack.bytes(), frame),
            Err(_) => {}
        }
    }
});

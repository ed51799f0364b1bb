//! The classic codec on arbitrary bytes: frame splitting, peek, control decoding (with a
//! re-encoding round trip where the format can carry the message), relaying (the trace grows
//! by one ID) and the sink's checks. Nothing may panic, and what the codec accepts must stay
//! consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::wire::classic::Classic;
use overlay::wire::{Codec, DataShape, Peek};

fuzz_target!(|data: &[u8]| {
    let shape = DataShape::default();
    let mut offset = 0;
    let mut out = Vec::new();
    loop {
        let len = match Classic::frame_len(&data[offset..]) {
            Ok(Some(len)) => len,
            Ok(None) | Err(_) => break,
        };
        assert!(len > 4 && offset + len <= data.len());
        let frame = &data[offset..offset + len];
        offset += len;
        match Classic::peek(frame) {
            Ok(Peek::Control) => {
                if let Ok(message) = Classic::decode_control(frame)
                    && Classic::encodable(&message).is_ok()
                {
                    out.clear();
                    Classic::encode_control(&message, &mut out);
                    let again = Classic::decode_control(&out).expect("our encoding decodes");
                    let mut out2 = Vec::new();
                    Classic::encode_control(&again, &mut out2);
                    assert_eq!(out, out2);
                }
            }
            Ok(Peek::Data(data)) => {
                out.clear();
                Classic::append_relayed(&data, 7, &mut out);
                assert!(out.len() >= frame.len());
                let Ok(Peek::Data(relayed)) = Classic::peek(&out) else {
                    panic!("a relayed frame still peeks");
                };
                assert_eq!(relayed.sink(), data.sink());
                assert_eq!(relayed.relays(), data.relays() + 1);
                assert_eq!(relayed.previous_hop(), Some(7));
                let _ = Classic::check_delivered(&data, shape);
                let _ = Classic::check_delivered(&relayed, shape);
            }
            Ok(Peek::Ack(_)) => panic!("the classic format has no acks"),
            Ok(Peek::Keyed(_) | Peek::Lookup(_) | Peek::LookupReply(_)) => {
                panic!("the classic format has no keyed frames")
            }
            Err(_) => {}
        }
    }
});

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
    let mut trace = Vec::new();
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
            Ok(peek @ (Peek::Data { .. } | Peek::Ack { .. })) => {
                out.clear();
                Classic::append_relayed(frame, 7, &mut out);
                assert!(out.len() >= frame.len());
                assert_eq!(Classic::peek(&out), Ok(peek), "a relayed frame still peeks");
                let _ = Classic::check_delivered(frame, shape, &mut trace);
                let _ = Classic::check_delivered(&out, shape, &mut trace);
            }
            Err(_) => {}
        }
    }
});
